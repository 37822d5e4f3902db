//! The security breach's report: containment time, what each containment
//! step did (or why it did not), the impact, every change.

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rotation::RotateOutput;
use super::steps::{Impact, RevokeKeysOutput};
use super::BlockOutcome;
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
    pub firewall: StepResult<BlockOutcome>,
    pub impact: Option<Impact>,
    /// The keys of the users the assessment found (scope affected_users).
    pub affected_keys: StepResult<RevokeKeysOutput>,
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

/// Pure: the report from the execution's data and the journal.
pub fn build(input: &BreachReportInput, journal: &[JournalEntry]) -> BreachReport {
    let d = &input.details;
    let api_keys: StepResult<RevokeKeysOutput> = step(d, "/steps/contain/keys");
    let application_credentials: StepResult<RotateOutput> =
        step(d, "/steps/contain/credentials/application");
    let master_credentials: StepResult<RotateOutput> = step(d, "/steps/contain/credentials/master");
    let firewall: StepResult<BlockOutcome> = step(d, "/steps/contain/firewall");
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
    BreachReport {
        scenario: SCENARIO.to_owned(),
        resource: d
            .pointer("/plan/database")
            .or_else(|| d.pointer("/request/database"))
            .and_then(Value::as_str)
            .map_or_else(|| "unknown".to_owned(), |s| s.chars().take(63).collect()),
        execution_name: input.execution.name.clone(),
        outcome: input.outcome,
        passed: input.outcome == Outcome::Succeeded && containment.is_met(),
        started_at: input.execution.start_time,
        finished_at: input.finished_at,
        containment,
        api_keys,
        application_credentials,
        master_credentials,
        firewall,
        impact,
        affected_keys: step(d, "/steps/revoke_affected"),
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
    md.push_str(&line("WAF IP set", &r.firewall, |b| {
        format!(
            "{} block(s) added, {} already there, {} entries in {}",
            b.added.len(),
            b.already_blocked.len(),
            b.total,
            b.ip_set
        )
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

pub type BreachReportOutput = crate::report::RecoveryReportOutput;

pub async fn breach_report(
    ports: &Ports,
    input: BreachReportInput,
) -> DrResult<BreachReportOutput> {
    let journal = journal_of_details(ports, &input.details).await?;
    let report = build(&input, &journal);
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
        },
        Some(&input.topic_arn),
    )
    .await
}
