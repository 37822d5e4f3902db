//! Notifications a person on call can act on: what happened, what was done,
//! what to do next.

use std::collections::BTreeMap;

use dr_core::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::details::{short_cause, FailoverDetails};
use crate::Ports;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    FalseAlarm,
    AlreadyRunning,
    Succeeded,
    Failed,
    /// The input was refused before anything was touched.
    InputRejected,
    /// A person rejected the failover.
    Rejected,
    /// Nobody answered the approval before its deadline.
    NotApproved,
    /// Our probe could not judge: fix it.
    CannotConfirm,
    /// The replica cannot take over.
    Blocked,
    /// The run ended but its report (which is also its page) could not be
    /// written or sent.
    ReportFailed,
}

impl Event {
    fn as_str(self) -> &'static str {
        match self {
            Event::FalseAlarm => "false_alarm",
            Event::AlreadyRunning => "already_running",
            Event::Succeeded => "succeeded",
            Event::Failed => "failed",
            Event::InputRejected => "input_rejected",
            Event::Rejected => "rejected",
            Event::NotApproved => "not_approved",
            Event::CannotConfirm => "cannot_confirm",
            Event::Blocked => "blocked",
            Event::ReportFailed => "report_failed",
        }
    }

    fn severity(self) -> &'static str {
        match self {
            Event::Failed
            | Event::InputRejected
            | Event::NotApproved
            | Event::CannotConfirm
            | Event::Blocked
            | Event::ReportFailed => "critical",
            Event::Succeeded => "high",
            Event::Rejected | Event::FalseAlarm | Event::AlreadyRunning => "info",
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyOutput {
    pub message_id: String,
    pub subject: String,
}

/// Subject and body for the database failover, from its typed data.
pub fn database_failover_message(event: Event, details: &FailoverDetails) -> (String, String) {
    let plan = details.plan.as_ref();
    let database = plan.map_or_else(|| "the database".to_owned(), |p| p.database.clone());
    let primary = plan.map_or_else(|| "the primary".to_owned(), |p| p.primary.to_string());
    let replica = plan.map_or_else(|| "the replica".to_owned(), |p| p.replica.to_string());
    let record = plan.map_or_else(
        || "the database record".to_owned(),
        |p| p.dns.record_name.clone(),
    );
    let confirm = details
        .steps
        .confirm
        .as_ref()
        .and_then(|c| c.result.as_ref());
    let reasons = confirm.map_or_else(String::new, |c| {
        c.reasons
            .iter()
            .map(|r| format!("- {r}\n"))
            .collect::<String>()
    });
    let changes = details.changes();
    let done_text = if changes.is_empty() {
        "- nothing was changed".to_owned()
    } else {
        changes
            .iter()
            .map(|c| format!("- {}", c.what))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let error = details.error.as_ref();
    let error_name = error.map_or_else(|| "unknown error".to_owned(), |e| e.error.clone());
    let cause = error.map_or_else(String::new, |e| short_cause(&e.cause));
    match event {
        Event::FalseAlarm => (
            format!("[MueJam DR] False alarm: {primary} is healthy, no failover"),
            format!(
                "What happened: a failover of {database} was triggered, but its primary {primary} \
                 answers SQL.\n{reasons}\nWhat was done:\n- nothing was changed\n\n\
                 What to do next:\n- find out why the alarm fired (the probe's metrics, application \
                 logs, network) and tune the alarm if it was noise\n- if the application \
                 still cannot connect, check its configuration and security groups, not the database"
            ),
        ),
        Event::AlreadyRunning => (
            format!("[MueJam DR] Failover of {database} already in progress; this trigger was ignored"),
            format!(
                "What happened: a second failover was triggered for {database} while another one is \
                 running ({cause}).\n\nWhat was done:\n- nothing: this execution stopped to avoid a double failover\n\n\
                 What to do next:\n- follow the running execution (drctl watch, or the Step Functions console)"
            ),
        ),
        Event::InputRejected => (
            format!("[MueJam DR] Failover NOT started: its input was refused ({error_name})"),
            format!(
                "What happened: a database failover was triggered with input that cannot be acted on: \
                 {cause}\n\nWhat was done:\n- nothing: the input is checked before anything is touched\n\n\
                 What to do next:\n- if a person started it: correct the input and start again\n\
                 - if an alarm started it: its input transformer or the topology registry is wrong; fix \
                 it now, the next incident would be refused the same way"
            ),
        ),
        Event::CannotConfirm => (
            format!("[MueJam DR] Failover of {database} NOT started: cannot confirm the failure"),
            format!(
                "What happened: the failover of {database} could not judge whether {primary} is down, \
                 so nothing was promoted:\n{reasons}\nWhat was done:\n- nothing was changed\n\n\
                 What to do next:\n- fix what is named above (our own probe, credentials, CA bundle or DNS record), \
                 then check {primary} by hand\n- if it really is down, start the failover again once the probe works"
            ),
        ),
        Event::Blocked => (
            format!("[MueJam DR] Failover of {database} BLOCKED: {error_name}"),
            {
                let next = if error_name == "ReplicaLagTooHigh" {
                    format!(
                        "- the replica {replica} is too far behind to promote without losing more than the RPO\n\
                         - decide with the incident lead: promote anyway (start again with \"allow_data_loss\": true) \
                         or restore from the latest snapshot / a point in time\n- runbook: Database Failure, step 2"
                    )
                } else {
                    format!(
                        "- the replica {replica} cannot be promoted now (see above)\n\
                         - bring it back, or restore from the latest snapshot (runbook: Database Failure, option C)"
                    )
                };
                format!(
                    "What happened: {primary} is (or may be) down but {replica} cannot take over:\n{reasons}\n\
                     What was done:\n- nothing was changed\n\nWhat to do next:\n{next}"
                )
            },
        ),
        Event::Rejected => (
            format!("[MueJam DR] Failover of {database} rejected: nothing was changed"),
            format!(
                "What happened: the failover of {database} asked for approval and was rejected.\n{reasons}\n\
                 What was done:\n- nothing was changed\n\nWhat to do next:\n- {primary} is still the primary; \
                 follow up on what the person who rejected it decided"
            ),
        ),
        Event::NotApproved => (
            format!("[MueJam DR] Failover of {database} NOT done: nobody approved it in time"),
            format!(
                "What happened: the failover of {database} needed a person's decision and nobody answered \
                 before the deadline:\n{reasons}\nWhat was done:\n- nothing was changed (the safe default)\n\n\
                 What to do next:\n- check {primary} now; if the application is still down, decide with the \
                 incident lead and start the failover again\n- then find out why nobody answered the approval"
            ),
        ),
        Event::Succeeded => {
            let lag = details
                .lag_at_promotion_seconds()
                .map_or_else(|| "not measured".to_owned(), |l| format!("{l} s"));
            (
                format!("[MueJam DR] Failover done: {replica} is now the primary of {database}"),
                format!(
                    "What happened: the primary {primary} was down.\n{reasons}\n\
                     What was done:\n{done_text}\n\nData loss window (replica lag at promotion): {lag}.\n\n\
                     What to do next:\n- restart the application servers so pooled connections follow {record} \
                     (kubectl rollout restart deployment/muejam-backend)\n- watch error rates until they are back to normal\n\
                     - {primary} is fenced and kept for the post-mortem; delete it only after the root cause is known\n\
                     - confirm the new replica becomes available"
                ),
            )
        }
        Event::Failed | Event::ReportFailed => {
            let fenced = details
                .steps
                .fence
                .as_ref()
                .is_some_and(|f| f.result.is_some());
            let promoted = details
                .steps
                .promote
                .as_ref()
                .is_some_and(|p| p.result.is_some());
            let switched = details
                .steps
                .dns
                .as_ref()
                .is_some_and(|d| d.result.is_some());
            let next = if error_name == "ReplicaLagTooHigh" && !promoted {
                format!(
                    "- the replica {replica} is too far behind to promote without losing more than the RPO\n\
                     - decide with the incident lead: promote anyway (start again with \"allow_data_loss\": true) \
                     or restore from the latest snapshot / a point in time\n- runbook: Database Failure, step 2"
                )
            } else if !promoted {
                format!(
                    "- {replica} was not promoted and {record} was not switched{}\n\
                     - fix the cause above and start the failover again; it is safe to re-run\n\
                     - or promote {replica} by hand (runbook: Database Failure, step 2, option B)",
                    if fenced {
                        format!("; {primary} is fenced")
                    } else {
                        String::new()
                    }
                )
            } else if !switched {
                format!(
                    "- {replica} was promoted but {record} still points at the old primary\n\
                     - re-run the failover under the same name (it resumes safely), or point {record} at {replica} by hand\n\
                     - the application is still down until the record moves"
                )
            } else {
                format!(
                    "- {record} now points at {replica}; check the application can write\n\
                     - re-run the failover under the same name to finish the remaining steps (it is idempotent)"
                )
            };
            (
                format!("[MueJam DR] Failover of {database} FAILED: {error_name}"),
                format!(
                    "What happened: the failover of {database} stopped with {error_name}: {cause}\n\n\
                     What was done before it stopped:\n{done_text}\n\nWhat to do next:\n{next}"
                ),
            )
        }
    }
}

pub async fn notify(ports: &Ports, input: NotifyInput) -> DrResult<NotifyOutput> {
    let (subject, body) = match input.scenario.as_str() {
        "database-failover" => {
            database_failover_message(input.event, &FailoverDetails::parse(&input.details)?)
        }
        crate::corruption::report::SCENARIO => {
            crate::corruption::notice::message(input.event, &input.details)
        }
        crate::region::report::SCENARIO if input.event == Event::ReportFailed => {
            crate::region::report::unreported(&input.details)
        }
        crate::app::SCENARIO if input.event == Event::ReportFailed => {
            crate::app::report::unreported(&input.details)
        }
        crate::rollback::SCENARIO if input.event == Event::ReportFailed => {
            crate::rollback::report::unreported(&input.details)
        }
        other => {
            return Err(DrError::InvalidInput(format!(
                "no notification wording for scenario {other:?}"
            )))
        }
    };
    let mut attributes = BTreeMap::from([
        ("scenario".to_owned(), input.scenario.clone()),
        ("event".to_owned(), input.event.as_str().to_owned()),
        ("severity".to_owned(), input.event.severity().to_owned()),
    ]);
    if let Some(database) = input
        .details
        .pointer("/plan/database")
        .and_then(Value::as_str)
    {
        attributes.insert("resource".to_owned(), database.to_owned());
    }
    if let Some(execution) = &input.execution {
        attributes.insert("execution".to_owned(), execution.clone());
    }
    let drill = crate::report::drill_of_details(&input.details);
    if let Some(drill) = drill {
        attributes.insert("drill".to_owned(), drill.to_owned());
    }
    let resource = attributes.get("resource").cloned().unwrap_or_default();
    let message_id = ports
        .notifier
        .publish(&Notification {
            topic: input.topic_arn,
            subject: subject.clone(),
            body: body.clone(),
            attributes,
        })
        .await?;
    // What a person must act on climbs the escalation path until acknowledged.
    // A drill's rehearsal pages nobody: the drill reports it.
    if let (Some(execution), "critical", None) = (&input.execution, input.event.severity(), drill) {
        crate::report::raise_page(
            ports,
            execution,
            &input.scenario,
            &resource,
            &subject,
            &body,
        )
        .await;
    }
    Ok(NotifyOutput {
        message_id,
        subject,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::details;
    use serde_json::json;

    fn typed(value: Value) -> FailoverDetails {
        FailoverDetails::parse(&value).expect("typed")
    }

    #[test]
    fn a_failure_after_promotion_says_dns_was_not_switched_and_what_to_do() {
        let mut d = details(Some(1.5), false);
        d["steps"].as_object_mut().map(|s| s.remove("dns"));
        d["steps"].as_object_mut().map(|s| s.remove("replica"));
        d["error"] = json!({"Error": "Throttled", "Cause": "Rate exceeded"});
        let (subject, body) = database_failover_message(Event::Failed, &typed(d));
        assert_eq!(subject, "[MueJam DR] Failover of muejam FAILED: Throttled");
        assert!(
            body.contains("- promoted read replica muejam-db-prod-replica to a standalone primary")
        );
        assert!(
            body.contains("db.muejam.internal still points at the old primary"),
            "{body}"
        );
    }

    #[test]
    fn a_blocked_failover_offers_the_data_loss_decision() {
        let mut d = details(None, false);
        for step in ["fence", "promote", "dns", "replica"] {
            d["steps"].as_object_mut().map(|s| s.remove(step));
        }
        d["error"] = json!({"Error": "ReplicaLagTooHigh", "Cause": "30000 s behind"});
        let (subject, body) = database_failover_message(Event::Blocked, &typed(d));
        assert!(subject.contains("BLOCKED: ReplicaLagTooHigh"), "{subject}");
        assert!(body.contains("allow_data_loss"), "{body}");
        assert!(body.contains("- nothing was changed"), "{body}");
    }

    #[test]
    fn success_reports_the_data_loss_window_and_next_steps() {
        let (subject, body) =
            database_failover_message(Event::Succeeded, &typed(details(Some(1.5), false)));
        assert!(subject.contains("muejam-db-prod-replica is now the primary of muejam"));
        assert!(body.contains("1.5 s"));
        assert!(body.contains("rollout restart"));
        assert!(body.contains("fenced old primary muejam-db-prod"));
    }

    #[test]
    fn a_probe_that_cannot_judge_says_what_to_fix_and_that_nothing_changed() {
        let mut d = details(None, false);
        for step in ["fence", "promote", "dns", "replica"] {
            d["steps"].as_object_mut().map(|s| s.remove(step));
        }
        d["steps"]["confirm"]["result"]["reasons"] = json!([
            "our SQL probe of muejam-db-prod cannot probe (authentication): the credentials in the secret are not the database's"
        ]);
        let (subject, body) = database_failover_message(Event::CannotConfirm, &typed(d));
        assert!(subject.contains("NOT started: cannot confirm"), "{subject}");
        assert!(
            body.contains("(authentication)") && body.contains("- nothing was changed"),
            "{body}"
        );
    }
}
