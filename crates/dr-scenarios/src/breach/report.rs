//! The security breach's report: containment time, what each containment
//! step did (or why it did not), the impact, every change.

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rotation::RotateOutput;
use super::steps::{Blocked, Impact, RevokeKeysOutput};
use crate::report::{
    journal_of_details, publish_recovery, ExecutionInfo, Objective, Outcome, RecoveryDocument,
};
use crate::Ports;

pub const SCENARIO: &str = "security-breach";
/// The runbook's containment: three commands in 10 minutes.
pub const CONTAINMENT_OBJECTIVE_SECONDS: f64 = 600.0;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreachReportInput {
    pub execution: ExecutionInfo,
    pub outcome: Outcome,
    pub details: Value,
    pub finished_at: DateTime<Utc>,
    pub topic_arn: String,
}

/// One containment step: what it did, or why it did not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepResult<T> {
    Done(T),
    Failed(String),
    NotRun,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreachReport {
    pub scenario: String,
    pub resource: String,
    pub execution_name: String,
    pub outcome: Outcome,
    pub passed: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Start → all three containment steps done (not measured when one failed).
    pub containment: Objective,
    pub api_keys: StepResult<RevokeKeysOutput>,
    pub application_credentials: StepResult<RotateOutput>,
    pub master_credentials: StepResult<RotateOutput>,
    pub firewall: StepResult<Blocked>,
    pub impact: Option<Impact>,
    /// The keys of the users the assessment found (scope affected_users).
    pub affected_keys: StepResult<RevokeKeysOutput>,
    /// Telling the affected users: the approval, and the ledger's truth.
    pub notifications: Notifications,
    /// The restore from before the breach, when asked for.
    pub restore: Option<RestoreSummary>,
    /// The keys revoked again on the restore (they were active in it).
    pub keys_after_restore: StepResult<RevokeKeysOutput>,
    /// The containment steps that did not complete, with why.
    pub not_done: Vec<String>,
    pub changes: Vec<String>,
    pub error: Option<(String, String)>,
}

impl<T> StepResult<T> {
    /// Why the step is not done (`None`: done).
    pub fn not_done(&self) -> Option<String> {
        match self {
            StepResult::Done(_) => None,
            StepResult::Failed(why) => Some(why.clone()),
            StepResult::NotRun => Some("not run".to_owned()),
        }
    }
}

fn step<T: serde::de::DeserializeOwned>(d: &Value, pointer: &str) -> StepResult<T> {
    match d.pointer(pointer) {
        None | Some(Value::Null) => StepResult::NotRun,
        Some(v) => {
            if let Some(result) = v.get("result") {
                match serde_json::from_value(result.clone()) {
                    Ok(t) => StepResult::Done(t),
                    Err(e) => StepResult::Failed(format!("unreadable result: {e}")),
                }
            } else {
                let error = v
                    .get("Error")
                    .or_else(|| v.pointer("/error/Error"))
                    .and_then(Value::as_str)
                    .unwrap_or("error");
                let cause = v
                    .get("Cause")
                    .or_else(|| v.pointer("/error/Cause"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                StepResult::Failed(format!("{error}: {}", crate::details::short_cause(cause)))
            }
        }
    }
}

/// The data-corruption recovery the run started, as it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreSummary {
    /// The moment asked for.
    pub restore_time: Option<String>,
    pub execution: Option<String>,
    /// `SUCCEEDED`, or the child's error.
    pub status: String,
    /// The child's own outcome (`succeeded`, `rejected`, `not_approved`, …).
    pub outcome: Option<String>,
    /// Its report.
    pub report: Option<String>,
    pub error: Option<String>,
}

/// Pure: the restore's summary from the run's data.
pub fn restore_summary(d: &Value) -> Option<RestoreSummary> {
    let asked = d.pointer("/plan/restore").filter(|r| !r.is_null())?;
    let restore_time = asked
        .get("restore_time")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let text = |p: &str| d.pointer(p).and_then(Value::as_str).map(str::to_owned);
    Some(match d.pointer("/steps/restore") {
        None | Some(Value::Null) => RestoreSummary {
            restore_time,
            execution: None,
            status: "not run".to_owned(),
            outcome: None,
            report: None,
            error: None,
        },
        Some(step) if step.get("Error").is_some() => {
            let cause = step
                .get("Cause")
                .and_then(Value::as_str)
                .unwrap_or_default();
            RestoreSummary {
                restore_time,
                // A failed child's cause is its DescribeExecution answer.
                execution: serde_json::from_str::<Value>(cause).ok().and_then(|c| {
                    c.get("ExecutionArn")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                }),
                status: step
                    .get("Error")
                    .and_then(Value::as_str)
                    .unwrap_or("error")
                    .to_owned(),
                outcome: None,
                report: None,
                error: Some(crate::details::short_cause(cause)),
            }
        }
        Some(_) => RestoreSummary {
            restore_time,
            execution: text("/steps/restore/result/execution_arn"),
            status: text("/steps/restore/result/status").unwrap_or_else(|| "?".to_owned()),
            outcome: text("/steps/restore/result/output/conclusion/outcome"),
            report: text("/steps/restore/result/output/report/json_location"),
            error: None,
        },
    })
}

/// Whether, and how, the affected users were told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notifications {
    /// `not_requested`, `nobody_to_tell`, `not_asked` (the run stopped
    /// before), `rejected`, `expired`, `sent`, `incomplete`, `failed`.
    pub status: String,
    /// Who answered, when, and why.
    pub approval: Option<String>,
    /// Who the question climbed to on the escalation path, when, and who
    /// answered how fast (empty when nobody was asked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation: Vec<String>,
    /// What the ledger says (none when nothing was sent).
    pub ledger: Option<super::notify::LedgerSummary>,
    /// Why the sending failed.
    pub error: Option<String>,
}

/// Pure: the notifications' status from the run's data and the ledger.
pub fn notifications(d: &Value, ledger: Option<super::notify::LedgerSummary>) -> Notifications {
    let approval = d
        .pointer("/steps/approval")
        .map(crate::corruption::report::approval_summary);
    let notify: StepResult<super::notify::NotifyOutput> = step(d, "/steps/notify");
    let requested = d
        .pointer("/plan/notify_users")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let to_notify = d
        .pointer("/steps/assess/result/to_notify")
        .and_then(Value::as_u64);
    let answered = d
        .pointer("/steps/approval/result/approved")
        .and_then(Value::as_bool);
    let approval_status = d
        .pointer("/steps/approval/result/status")
        .and_then(Value::as_str);
    let mut error = None;
    let status = if !requested {
        "not_requested"
    } else if to_notify == Some(0)
        && d.pointer("/steps/approval").is_none()
        && ledger.as_ref().is_none_or(|l| l.sending == 0)
    {
        "nobody_to_tell"
    } else if let StepResult::Failed(why) = &notify {
        error = Some(why.clone());
        "failed"
    } else if ledger
        .as_ref()
        .is_some_and(|l| l.sending > 0 || l.not_sent > 0)
        && matches!(notify, StepResult::Done(_))
    {
        "incomplete"
    } else if matches!(notify, StepResult::Done(_)) {
        "sent"
    } else if d.pointer("/steps/approval/error").is_some() || approval_status == Some("rejected") {
        "rejected"
    } else if approval_status == Some("expired") {
        "expired"
    } else if d.pointer("/steps/approval/Error").is_some() {
        error = d
            .pointer("/steps/approval/Cause")
            .and_then(Value::as_str)
            .map(crate::details::short_cause);
        "failed"
    } else if answered == Some(true) {
        "incomplete"
    } else {
        "not_asked"
    };
    Notifications {
        status: status.to_owned(),
        approval,
        escalation: crate::escalation::lines_of(d),
        ledger,
        error,
    }
}

/// Pure: the report from the execution's data and the journal.
pub fn build(input: &BreachReportInput, journal: &[JournalEntry]) -> BreachReport {
    build_with(input, journal, None)
}

/// Pure: the report, with what the notification ledger says.
pub fn build_with(
    input: &BreachReportInput,
    journal: &[JournalEntry],
    ledger: Option<super::notify::LedgerSummary>,
) -> BreachReport {
    let d = &input.details;
    let api_keys: StepResult<RevokeKeysOutput> = step(d, "/steps/contain/keys");
    let application_credentials: StepResult<RotateOutput> =
        step(d, "/steps/contain/credentials/application");
    let master_credentials: StepResult<RotateOutput> = step(d, "/steps/contain/credentials/master");
    let firewall: StepResult<Blocked> = step(d, "/steps/contain/firewall");
    let has_application = d.pointer("/plan/application").is_some_and(|a| !a.is_null());
    let mut not_done = Vec::new();
    if let Some(why) = api_keys.not_done() {
        not_done.push(format!("revoke the API keys: {why}"));
    }
    if has_application {
        if let Some(why) = application_credentials.not_done() {
            not_done.push(format!("rotate the application's credentials: {why}"));
        }
    }
    if let Some(why) = master_credentials.not_done() {
        not_done.push(format!("rotate the master credentials: {why}"));
    }
    if let Some(why) = firewall.not_done() {
        not_done.push(format!("block the addresses: {why}"));
    }
    let contained_at: Option<DateTime<Utc>> = d
        .pointer("/contained/at")
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok());
    let containment = Objective::measure(
        CONTAINMENT_OBJECTIVE_SECONDS,
        contained_at
            .filter(|_| not_done.is_empty())
            .map(|t| (t - input.execution.start_time).num_milliseconds() as f64 / 1000.0),
    );
    let impact = d
        .pointer("/steps/assess/result")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok());
    let error = d.get("error").map(|e| {
        (
            e.get("Error")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .to_owned(),
            crate::details::short_cause(e.get("Cause").and_then(Value::as_str).unwrap_or_default()),
        )
    });
    let notifications = notifications(d, ledger);
    let restore = restore_summary(d);
    BreachReport {
        scenario: SCENARIO.to_owned(),
        resource: d
            .pointer("/plan/database")
            .or_else(|| d.pointer("/request/database"))
            .and_then(Value::as_str)
            .map_or_else(|| "unknown".to_owned(), |s| s.chars().take(63).collect()),
        execution_name: input.execution.name.clone(),
        outcome: input.outcome,
        passed: input.outcome == Outcome::Succeeded
            && containment.is_met()
            && !matches!(notifications.status.as_str(), "failed" | "incomplete")
            && restore
                .as_ref()
                .is_none_or(|r| r.outcome.as_deref() == Some("succeeded")),
        started_at: input.execution.start_time,
        finished_at: input.finished_at,
        containment,
        api_keys,
        application_credentials,
        master_credentials,
        firewall,
        impact,
        affected_keys: step(d, "/steps/revoke_affected"),
        notifications,
        restore,
        keys_after_restore: step(d, "/steps/recontain"),
        not_done,
        changes: crate::region::report::changes(journal),
        error,
    }
}

fn line<T>(name: &str, s: &StepResult<T>, done: impl Fn(&T) -> String) -> String {
    match s {
        StepResult::Done(t) => format!("- {name}: {}\n", done(t)),
        StepResult::Failed(why) => format!("- {name}: **NOT DONE** ({why})\n"),
        StepResult::NotRun => format!("- {name}: not run\n"),
    }
}

pub fn markdown(r: &BreachReport) -> String {
    let mut md = format!(
        "# Security breach of {}: {}\n\nExecution `{}`, {} → {}\n\nContainment: {} (objective {})\n",
        r.resource,
        r.outcome.as_str(),
        r.execution_name,
        r.started_at.to_rfc3339(),
        r.finished_at.to_rfc3339(),
        crate::report::seconds(r.containment.achieved_seconds),
        crate::report::seconds(Some(r.containment.objective_seconds)),
    );
    if !r.not_done.is_empty() {
        md.push_str("\n## NOT contained — do these by hand or re-run under the same name\n\n");
        for n in &r.not_done {
            md.push_str(&format!("- {n}\n"));
        }
    }
    md.push_str("\n## Containment\n\n");
    md.push_str(&line("API keys", &r.api_keys, |k| {
        format!(
            "{} revoked, {} already inactive",
            k.revoked, k.already_inactive
        )
    }));
    md.push_str(&line(
        "application credentials",
        &r.application_credentials,
        |c| {
            c.mutation
                .clone()
                .unwrap_or_else(|| "already rotated".into())
        },
    ));
    md.push_str(&line("master credentials", &r.master_credentials, |c| {
        c.mutation
            .clone()
            .unwrap_or_else(|| "already rotated".into())
    }));
    md.push_str(&line("WAF IP sets", &r.firewall, |b| {
        b.sets
            .iter()
            .map(|s| {
                format!(
                    "{} block(s) added, {} already there, {} entries in {}",
                    s.added.len(),
                    s.already_blocked.len(),
                    s.total,
                    s.ip_set
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }));
    if let Some(i) = &r.impact {
        md.push_str(&format!(
            "\n## Impact (audit log)\n\n- {} event(s) from the suspicious addresses, {} to {}\n- **{} affected user(s)** (first: {:?}); all in {}\n- sensitive actions: {}\n- every event: {}{}\n",
            i.events,
            i.first_seen.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()),
            i.last_seen.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()),
            i.affected_users,
            i.user_sample,
            i.users_location,
            if i.sensitive.is_empty() {
                "none".to_owned()
            } else {
                i.sensitive
                    .iter()
                    .map(|(a, n)| format!("{a} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            i.events_location,
            if i.truncated { " (truncated)" } else { "" }
        ));
    }
    if !matches!(r.affected_keys, StepResult::NotRun) {
        md.push('\n');
        md.push_str(&line(
            "API keys of the affected users",
            &r.affected_keys,
            |k| format!("{} revoked", k.revoked),
        ));
    }
    md.push_str(&notifications_md(&r.notifications));
    if let Some(restore) = &r.restore {
        md.push_str(&format!(
            "\n## Restore from before the breach\n\n- to {}: {}{}\n- execution: {}\n- its report: {}\n",
            restore.restore_time.as_deref().unwrap_or("?"),
            restore.status,
            restore
                .outcome
                .as_deref()
                .map(|o| format!(", {o}"))
                .unwrap_or_default(),
            restore.execution.as_deref().unwrap_or("-"),
            restore.report.as_deref().unwrap_or("-"),
        ));
        if let Some(e) = &restore.error {
            md.push_str(&format!("- **NOT restored**: {e}\n"));
        }
        md.push_str(&line(
            "API keys revoked again on the restore",
            &r.keys_after_restore,
            |k| format!("{} revoked", k.revoked),
        ));
    }
    md.push_str("\n## Changes made\n\n");
    if r.changes.is_empty() {
        md.push_str("- none\n");
    }
    for c in &r.changes {
        md.push_str(&format!("- {c}\n"));
    }
    if let Some((e, c)) = &r.error {
        md.push_str(&format!("\nError: **{e}**: {c}\n"));
    }
    md
}

fn notifications_md(n: &Notifications) -> String {
    let mut md = "\n## Affected users told\n\n".to_owned();
    let what = match n.status.as_str() {
        "not_requested" => "not requested (notify_users: false)".to_owned(),
        "nobody_to_tell" => {
            "nobody to tell: every recipient was told already, or there is none".to_owned()
        }
        "not_asked" => "**not asked**: the run stopped before the question".to_owned(),
        "rejected" => "**nobody was told**: the approval was rejected".to_owned(),
        "expired" => {
            "**nobody was told**: nobody answered the approval before its deadline".to_owned()
        }
        "failed" => format!(
            "**NOT all told**: {}",
            n.error.as_deref().unwrap_or("the sending failed")
        ),
        "incomplete" => "**NOT all told**: see the ledger below".to_owned(),
        other => other.to_owned(),
    };
    md.push_str(&format!("- status: {what}\n"));
    if let Some(a) = &n.approval {
        md.push_str(&format!("- approval: {a}\n"));
    }
    for line in &n.escalation {
        md.push_str(&format!("- escalation: {line}\n"));
    }
    if let Some(l) = &n.ledger {
        md.push_str(&format!(
            "- ledger: {} of {} recipient(s) told once each; {} not told; {} whose send was interrupted{}\n",
            l.sent,
            l.recipients,
            l.not_sent,
            l.sending,
            if l.sending > 0 {
                " (check the mailer's log for their notification ids before re-sending)"
            } else {
                ""
            }
        ));
        if l.retried > 0 {
            md.push_str(&format!(
                "- {} send(s) were retried with the same notification id (a duplicate is dropped by the topic)\n",
                l.retried
            ));
        }
    }
    md
}

pub type BreachReportOutput = crate::report::RecoveryReportOutput;

pub async fn breach_report(
    ports: &Ports,
    input: BreachReportInput,
) -> DrResult<BreachReportOutput> {
    let journal = journal_of_details(ports, &input.details).await?;
    let ledger = match (
        input
            .details
            .pointer("/plan/recovery_id")
            .and_then(Value::as_str),
        input
            .details
            .pointer("/plan/notify_users")
            .and_then(Value::as_bool),
    ) {
        (Some(incident), Some(true)) => match super::notify::recipients(ports, incident).await {
            Ok(recipients) => Some(super::notify::summarise(
                &recipients,
                &ports.ledger.entries(incident).await?,
            )),
            // Not assessed: nobody to count.
            Err(DrError::NotFound(_)) => None,
            Err(e) => return Err(e),
        },
        _ => None,
    };
    let report = build_with(&input, &journal, ledger);
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| DrError::Internal(format!("serializing the report: {e}")))?;
    let md = markdown(&report);
    let not_measured = Objective::measure(0.0, None);
    publish_recovery(
        ports,
        RecoveryDocument {
            scenario: SCENARIO,
            title: format!("security breach of {}", report.resource),
            outcome: report.outcome,
            passed: report.passed,
            started_at: report.started_at,
            execution_name: &report.execution_name,
            rto: &report.containment,
            rpo: &not_measured,
            json: &json,
            markdown: &md,
            details: &input.details,
        },
        Some(&input.topic_arn),
    )
    .await
}
