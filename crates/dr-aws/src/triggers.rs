//! [`Triggers`] on CloudWatch (DescribeAlarms), EventBridge
//! (ListRuleNamesByTarget, DescribeRule) and EventBridge Scheduler
//! (GetSchedule).

use async_trait::async_trait;
use aws_sdk_eventbridge::types::RuleState;
use dr_core::*;

use crate::errors::map_sdk_error;

#[derive(Debug, Clone)]
pub struct AwsTriggers {
    cloudwatch: aws_sdk_cloudwatch::Client,
    events: aws_sdk_eventbridge::Client,
    scheduler: aws_sdk_scheduler::Client,
}

impl AwsTriggers {
    pub fn new(
        cloudwatch: aws_sdk_cloudwatch::Client,
        events: aws_sdk_eventbridge::Client,
        scheduler: aws_sdk_scheduler::Client,
    ) -> Self {
        AwsTriggers {
            cloudwatch,
            events,
            scheduler,
        }
    }
}

#[async_trait]
impl Triggers for AwsTriggers {
    async fn alarm(&self, name: &str) -> DrResult<Option<AlarmInfo>> {
        let output = self
            .cloudwatch
            .describe_alarms()
            .alarm_names(name)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("describing alarm {name}"), e))?;
        Ok(output
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(name))
            .map(|a| AlarmInfo {
                name: name.to_owned(),
                actions_enabled: a.actions_enabled().unwrap_or(false),
                state: a
                    .state_value()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
            }))
    }

    async fn rules_targeting(&self, target_arn: &str) -> DrResult<Vec<RuleInfo>> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .events
                .list_rule_names_by_target()
                .target_arn(target_arn)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| map_sdk_error(&format!("listing the rules of {target_arn}"), e))?;
            names.extend(page.rule_names().iter().cloned());
            match page.next_token() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        let mut rules = Vec::new();
        for name in names {
            let rule = self
                .events
                .describe_rule()
                .name(&name)
                .send()
                .await
                .map_err(|e| map_sdk_error(&format!("describing rule {name}"), e))?;
            rules.push(RuleInfo {
                enabled: rule.state() == Some(&RuleState::Enabled),
                event_pattern: rule
                    .event_pattern()
                    .and_then(|p| serde_json::from_str(p).ok()),
                name,
            });
        }
        Ok(rules)
    }

    async fn schedule(&self, name: &str) -> DrResult<Option<ScheduleInfo>> {
        match self.scheduler.get_schedule().name(name).send().await {
            Ok(s) => Ok(Some(ScheduleInfo {
                name: name.to_owned(),
                enabled: s.state() == Some(&aws_sdk_scheduler::types::ScheduleState::Enabled),
                target_arn: s.target().map(|t| t.arn().to_owned()).unwrap_or_default(),
            })),
            // ResourceNotFoundException: no such schedule. Anything else
            // (AccessDenied, throttling) is not an answer.
            Err(e) => match map_sdk_error(&format!("reading schedule {name}"), e) {
                DrError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }
}
