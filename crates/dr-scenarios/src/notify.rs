//! Notifications a person on call can act on: what happened, what was done,
//! what to do next.

use std::collections::BTreeMap;

use dr_core::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Ports;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    FalseAlarm,
    AlreadyRunning,
    Succeeded,
    Failed,
}

impl Event {
    fn as_str(self) -> &'static str {
        match self {
            Event::FalseAlarm => "false_alarm",
            Event::AlreadyRunning => "already_running",
            Event::Succeeded => "succeeded",
            Event::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyInput {
    pub topic_arn: String,
    pub scenario: String,
    pub event: Event,
    /// The execution's data (request, steps, error): what the message is built from.
    pub details: Value,
    #[serde(default)]
    pub execution: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotifyOutput {
    pub message_id: String,
    pub subject: String,
}

/// A string at a JSON pointer, if any.
pub(crate) fn text(details: &Value, pointer: &str) -> Option<String> {
    match details.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Every `mutation` recorded by a step, in step order of the data.
pub(crate) fn mutations(details: &Value) -> Vec<String> {
    details
        .get("steps")
        .and_then(Value::as_object)
        .map(|steps| {
            let mut found: Vec<(String, String)> = steps
                .values()
                .filter_map(|step| {
                    Some((
                        step.get("started_at")?
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        step.pointer("/result/mutation")?.as_str()?.to_owned(),
                    ))
                })
                .collect();
            found.sort();
            found.into_iter().map(|(_, m)| m).collect()
        })
        .unwrap_or_default()
}

/// Subject and body for the database failover.
pub fn database_failover_message(event: Event, details: &Value) -> (String, String) {
    let primary =
        text(details, "/request/primary_instance_id").unwrap_or_else(|| "the primary".to_owned());
    let replica =
        text(details, "/request/replica_instance_id").unwrap_or_else(|| "the replica".to_owned());
    let record = text(details, "/request/dns/record_name")
        .unwrap_or_else(|| "the database record".to_owned());
    let reason = text(details, "/steps/confirm/result/reason");
    let done = mutations(details);
    let done_text = if done.is_empty() {
        "- nothing was changed".to_owned()
    } else {
        done.iter()
            .map(|m| format!("- {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match event {
        Event::FalseAlarm => (
            format!("[MueJam DR] False alarm: {primary} is healthy, no failover"),
            format!(
                "What happened: a database failover for {primary} was triggered, but the primary is \
                 available and answers SQL ({}).\n\nWhat was done:\n- nothing was changed\n\n\
                 What to do next:\n- find out why the alarm fired (CloudWatch metrics of {primary}, \
                 application logs, network) and tune the alarm if it was noise\n- if the application \
                 still cannot connect, check its configuration and security groups, not the database",
                text(details, "/steps/confirm/result/status").unwrap_or_else(|| "available".to_owned())
            ),
        ),
        Event::AlreadyRunning => (
            format!("[MueJam DR] Failover of {primary} already in progress; this trigger was ignored"),
            format!(
                "What happened: a second failover was triggered for {primary} while another one is \
                 running ({}).\n\nWhat was done:\n- nothing: this execution stopped to avoid a double failover\n\n\
                 What to do next:\n- follow the running execution in the Step Functions console",
                text(details, "/error/Cause").unwrap_or_default()
            ),
        ),
        Event::Succeeded => {
            let lag = text(details, "/steps/promote/result/lag_at_promotion_seconds")
                .map(|l| format!("{l} s"))
                .unwrap_or_else(|| "unknown (already promoted)".to_owned());
            (
                format!("[MueJam DR] Failover done: {replica} is now the primary of MueJam"),
                format!(
                    "What happened: the primary {primary} was down{}.\n\n\
                     What was done:\n{done_text}\n\nData loss window (replica lag at promotion): {lag}.\n\n\
                     What to do next:\n- restart the application servers so pooled connections follow {record} \
                     (kubectl rollout restart deployment/muejam-backend)\n- watch error rates until they are back to normal\n\
                     - keep {primary} for the post-mortem; delete it only after the root cause is known\n\
                     - confirm the new replica becomes available",
                    reason.map(|r| format!(" ({r})")).unwrap_or_default()
                ),
            )
        }
        Event::Failed => {
            let error = text(details, "/error/Error").unwrap_or_else(|| "unknown error".to_owned());
            let cause = text(details, "/error/Cause").unwrap_or_default();
            let promoted = details.pointer("/steps/promote/result").is_some();
            let switched = details.pointer("/steps/dns/result").is_some();
            let next = if !promoted && error == "ReplicaLagTooHigh" {
                format!(
                    "- the replica {replica} is too far behind to promote without losing more than the RPO\n\
                     - decide with the incident lead: promote anyway (start again with \"allow_data_loss\": true) \
                     or restore from the latest snapshot / a point in time\n- runbook: Database Failure, step 2"
                )
            } else if !promoted {
                format!(
                    "- {primary} is still the primary on paper and nothing was switched\n\
                     - fix the cause above and start the failover again; it is safe to re-run\n\
                     - or promote {replica} by hand (runbook: Database Failure, step 2, option B)"
                )
            } else if !switched {
                format!(
                    "- {replica} was promoted but {record} still points at the old primary\n\
                     - point {record} at {replica} by hand, or re-run the failover (it resumes safely)\n\
                     - the application is still down until the record moves"
                )
            } else {
                format!(
                    "- {record} now points at {replica}; check the application can write\n\
                     - re-run the failover to finish the remaining steps (it is idempotent)"
                )
            };
            (
                format!("[MueJam DR] Failover of {primary} FAILED: {error}"),
                format!(
                    "What happened: the failover of {primary} stopped with {error}: {cause}\n\n\
                     What was done before it stopped:\n{done_text}\n\nWhat to do next:\n{next}"
                ),
            )
        }
    }
}

pub async fn notify(ports: &Ports, input: NotifyInput) -> DrResult<NotifyOutput> {
    let (subject, body) = match input.scenario.as_str() {
        "database-failover" => database_failover_message(input.event, &input.details),
        other => {
            return Err(DrError::InvalidInput(format!(
                "no notification wording for scenario {other:?}"
            )))
        }
    };
    let mut attributes = BTreeMap::from([
        ("scenario".to_owned(), input.scenario.clone()),
        ("event".to_owned(), input.event.as_str().to_owned()),
        (
            "severity".to_owned(),
            match input.event {
                Event::Failed => "critical",
                Event::Succeeded => "high",
                Event::FalseAlarm | Event::AlreadyRunning => "info",
            }
            .to_owned(),
        ),
    ]);
    if let Some(primary) = text(&input.details, "/request/primary_instance_id") {
        attributes.insert("resource".to_owned(), primary);
    }
    if let Some(execution) = &input.execution {
        attributes.insert("execution".to_owned(), execution.clone());
    }
    let message_id = ports
        .notifier
        .publish(&Notification {
            topic: input.topic_arn,
            subject: subject.clone(),
            body,
            attributes,
        })
        .await?;
    Ok(NotifyOutput {
        message_id,
        subject,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn details() -> Value {
        json!({
            "request": {"primary_instance_id": "muejam-db-prod", "replica_instance_id": "muejam-db-prod-replica",
                        "dns": {"record_name": "db.muejam.internal"}},
            "steps": {
                "confirm": {"started_at": "2026-11-26T03:00:00.000Z", "result": {"healthy": false, "reason": "Unavailable: connection refused"}},
                "promote": {"started_at": "2026-11-26T03:00:05.000Z", "result": {"lag_at_promotion_seconds": 1.5, "mutation": "promoted read replica muejam-db-prod-replica to a standalone primary"}}
            }
        })
    }

    #[test]
    fn a_failure_after_promotion_says_dns_was_not_switched_and_what_to_do() {
        let mut d = details();
        d["error"] = json!({"Error": "Throttled", "Cause": "Rate exceeded"});
        let (subject, body) = database_failover_message(Event::Failed, &d);
        assert_eq!(
            subject,
            "[MueJam DR] Failover of muejam-db-prod FAILED: Throttled"
        );
        assert!(
            body.contains("- promoted read replica muejam-db-prod-replica to a standalone primary")
        );
        assert!(
            body.contains("db.muejam.internal still points at the old primary"),
            "{body}"
        );
    }

    #[test]
    fn a_lag_refusal_offers_the_data_loss_decision() {
        let mut d = details();
        d["steps"].as_object_mut().map(|s| s.remove("promote"));
        d["error"] = json!({"Error": "ReplicaLagTooHigh", "Cause": "30000 s behind"});
        let (_, body) = database_failover_message(Event::Failed, &d);
        assert!(body.contains("allow_data_loss"), "{body}");
        assert!(body.contains("- nothing was changed"), "{body}");
    }

    #[test]
    fn success_reports_the_data_loss_window_and_next_steps() {
        let (subject, body) = database_failover_message(Event::Succeeded, &details());
        assert!(subject.contains("muejam-db-prod-replica is now the primary"));
        assert!(body.contains("1.5 s"));
        assert!(body.contains("rollout restart"));
    }
}
