//! The report every scenario ends with, success or failure: timeline, every
//! mutation, measured RTO and RPO against the objectives. JSON + Markdown,
//! kept in the report store, summarised to SNS.

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::details::{
    journal_changes, journal_lag, short_cause, Change, ChangeOutcome, FailoverDetails,
};
use crate::Ports;

pub const RTO_OBJECTIVE_SECONDS: f64 = 4.0 * 3600.0;
pub const RPO_OBJECTIVE_SECONDS: f64 = 6.0 * 3600.0;

pub(crate) fn default_rto() -> f64 {
    RTO_OBJECTIVE_SECONDS
}

pub(crate) fn default_rpo() -> f64 {
    RPO_OBJECTIVE_SECONDS
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    FalseAlarm,
    AlreadyRunning,
    /// A person answered no: nothing was changed.
    Rejected,
    /// Nobody answered before the deadline: nothing was changed.
    NotApproved,
    /// Our own probe could not judge, or the views contradicted each other.
    CannotConfirm,
    /// The replica could not take over (not available, past the RPO).
    Blocked,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::FalseAlarm => "false_alarm",
            Outcome::AlreadyRunning => "already_running",
            Outcome::Rejected => "rejected",
            Outcome::NotApproved => "not_approved",
            Outcome::CannotConfirm => "cannot_confirm",
            Outcome::Blocked => "blocked",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionInfo {
    pub id: String,
    pub name: String,
    pub start_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    pub scenario: String,
    pub resource: String,
    pub execution: ExecutionInfo,
    pub outcome: Outcome,
    /// The execution's data: `request`, `steps` (each `{started_at, result}`), `error`.
    pub details: Value,
    /// When the recovery was verified (the end of the RTO).
    #[serde(default)]
    pub recovery_verified_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    #[serde(default)]
    pub topic_arn: Option<String>,
    #[serde(default = "default_rto")]
    pub rto_objective_seconds: f64,
    #[serde(default = "default_rpo")]
    pub rpo_objective_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub step: String,
    pub started_at: String,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub objective_seconds: f64,
    pub achieved_seconds: Option<f64>,
    /// `None` when nothing was measured: never counted as met.
    pub met: Option<bool>,
}

impl Objective {
    pub fn measure(objective_seconds: f64, achieved_seconds: Option<f64>) -> Self {
        Objective {
            objective_seconds,
            achieved_seconds,
            met: achieved_seconds.map(|s| s <= objective_seconds),
        }
    }

    /// Met only when measured and within the objective.
    pub fn is_met(&self) -> bool {
        self.met == Some(true)
    }
}

/// The evidence policy's decision and its reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceSummary {
    pub decision: String,
    pub reasons: Vec<String>,
    pub control_plane_confirms_down: bool,
}

/// The report document (also what is stored as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub resource: String,
    pub execution_id: String,
    pub execution_name: String,
    pub outcome: Outcome,
    pub passed: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub rto: Objective,
    pub rpo: Objective,
    pub evidence: Option<EvidenceSummary>,
    /// Who answered the approval, when and why (or that nobody did).
    pub approval: Option<String>,
    /// Who the question climbed to on the escalation path, when, and who
    /// answered how fast (empty when nobody was asked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation: Vec<String>,
    pub timeline: Vec<TimelineEntry>,
    /// Every change made or tried, with how it ended.
    pub changes: Vec<Change>,
    /// The changes that were made (done ones only).
    pub mutations: Vec<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportOutput {
    pub outcome: Outcome,
    pub passed: bool,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    pub json_location: String,
    pub markdown_location: String,
    pub message_id: Option<String>,
}

/// Builds the report from the execution's data, read through the steps'
/// own types (data of another shape is an error, never "n/a"), and from the
/// recovery's journal: the changes of every execution that worked on it.
pub fn build(input: &ReportInput, journal: &[JournalEntry]) -> DrResult<Report> {
    let details = FailoverDetails::parse(&input.details)?;
    let timeline = details
        .timeline()
        .into_iter()
        .map(|(started_at, step, summary)| TimelineEntry {
            step,
            started_at,
            summary,
        })
        .collect();
    let rto_seconds = match (input.outcome, input.recovery_verified_at) {
        (Outcome::Succeeded, Some(at)) => {
            Some((at - input.execution.start_time).num_milliseconds() as f64 / 1000.0)
        }
        _ => None,
    };
    let rpo_seconds = match input.outcome {
        Outcome::Succeeded | Outcome::Failed => details
            .lag_at_promotion_seconds()
            .or_else(|| journal_lag(journal)),
        _ => None,
    };
    let rto = Objective::measure(input.rto_objective_seconds, rto_seconds);
    let rpo = Objective::measure(input.rpo_objective_seconds, rpo_seconds);
    let changes = if journal.is_empty() {
        details.changes()
    } else {
        journal_changes(journal, &input.execution.name)
    };
    let all_done = changes.iter().all(|c| c.outcome == ChangeOutcome::Done);
    let passed = match input.outcome {
        // Not measured never counts as met; a change that failed or never
        // finished (the new replica) fails the report too.
        Outcome::Succeeded => rto.is_met() && rpo.is_met() && all_done,
        Outcome::FalseAlarm | Outcome::AlreadyRunning => true,
        Outcome::Failed
        | Outcome::Rejected
        | Outcome::NotApproved
        | Outcome::CannotConfirm
        | Outcome::Blocked => false,
    };
    let confirm = details
        .steps
        .confirm
        .as_ref()
        .and_then(|c| c.result.as_ref());
    let evidence = confirm.map(|c| EvidenceSummary {
        decision: serde_json::to_value(c.decision)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        reasons: c.reasons.clone(),
        control_plane_confirms_down: c.control_plane_confirms_down,
    });
    let approval = details
        .timeline()
        .into_iter()
        .find(|(_, step, _)| step == "approval" || step == "approval_expiry")
        .map(|(_, _, summary)| summary);
    let mutations = changes
        .iter()
        .filter(|c| c.outcome == ChangeOutcome::Done)
        .map(|c| c.what.clone())
        .collect();
    Ok(Report {
        scenario: input.scenario.clone(),
        resource: input.resource.clone(),
        execution_id: input.execution.id.clone(),
        execution_name: input.execution.name.clone(),
        outcome: input.outcome,
        passed,
        started_at: input.execution.start_time,
        finished_at: input.finished_at,
        rto,
        rpo,
        evidence,
        approval,
        escalation: crate::escalation::lines_of(&input.details),
        timeline,
        changes,
        mutations,
        error: details.error.as_ref().map(|e| e.error.clone()),
        cause: details.error.as_ref().map(|e| short_cause(&e.cause)),
    })
}

pub(crate) fn seconds(s: Option<f64>) -> String {
    match s {
        Some(s) if s >= 3600.0 => format!("{:.2} h", s / 3600.0),
        Some(s) if s >= 60.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{s:.1} s"),
        None => "not measured".to_owned(),
    }
}

pub(crate) fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "MET",
        Some(false) => "MISSED",
        None => "NOT MEASURED (not met)",
    }
}

/// What every recovery report opens with: the result, the execution, RTO
/// and RPO against their objectives, then `extra_rows` of the same table,
/// then the error if any.
#[allow(clippy::too_many_arguments)]
pub(crate) fn headline_md(
    scenario: &str,
    resource: &str,
    passed: bool,
    outcome: Outcome,
    execution_name: &str,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    rto: &Objective,
    rpo: &Objective,
    extra_rows: &str,
    error: Option<(&str, &str)>,
) -> String {
    let mut md = format!(
        "# {scenario} report: {resource}\n\n**Result: {}** (outcome: {})\n\n\
         | | |\n|---|---|\n| Execution | `{execution_name}` |\n| Started | {} |\n| Finished | {} |\n\
         | RTO | {} (objective {}) — {} |\n| RPO (data loss window) | {} (objective {}) — {} |\n{extra_rows}",
        if passed { "PASSED" } else { "FAILED" },
        outcome.as_str(),
        started_at.to_rfc3339(),
        finished_at.to_rfc3339(),
        seconds(rto.achieved_seconds),
        seconds(Some(rto.objective_seconds)),
        verdict(rto.met),
        seconds(rpo.achieved_seconds),
        seconds(Some(rpo.objective_seconds)),
        verdict(rpo.met),
    );
    if let Some((error, cause)) = error {
        md.push_str(&format!("\n## Error\n\n`{error}`: {cause}\n"));
    }
    md
}

pub fn markdown(report: &Report) -> String {
    let mut md = headline_md(
        &report.scenario,
        &report.resource,
        report.passed,
        report.outcome,
        &report.execution_name,
        report.started_at,
        report.finished_at,
        &report.rto,
        &report.rpo,
        "",
        report
            .error
            .as_deref()
            .map(|e| (e, report.cause.as_deref().unwrap_or(""))),
    );
    if let Some(evidence) = &report.evidence {
        md.push_str(&format!(
            "\n## Decision: {}\n\n",
            evidence.decision.replace('_', " ")
        ));
        for reason in &evidence.reasons {
            md.push_str(&format!("- {reason}\n"));
        }
    }
    if let Some(approval) = &report.approval {
        md.push_str(&format!("\n## Approval\n\n{approval}\n"));
    }
    if !report.escalation.is_empty() {
        md.push_str("\n## Escalation\n\n");
        for line in &report.escalation {
            md.push_str(&format!("- {line}\n"));
        }
    }
    md.push_str("\n## Changes made\n\n");
    if report.changes.is_empty() {
        md.push_str("- none\n");
    }
    for change in &report.changes {
        md.push_str(&format!("- {}\n", change.what));
    }
    md.push_str("\n## Timeline\n\n| Started | Step | What happened |\n|---|---|---|\n");
    for entry in &report.timeline {
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            entry.started_at,
            entry.step,
            entry.summary.replace('|', "\\|")
        ));
    }
    md
}

/// A rendered report, ready to be kept and announced.
pub(crate) struct ReportDocument<'a> {
    pub scenario: &'a str,
    pub started_at: DateTime<Utc>,
    pub execution_name: &'a str,
    pub json: &'a [u8],
    pub markdown: &'a str,
    pub passed: bool,
}

/// What a recovery's report step is given (region failover, app-server
/// recovery, deployment rollback).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryReportInput {
    pub execution: ExecutionInfo,
    pub outcome: Outcome,
    /// The execution's data: `plan`, `steps` (each `{started_at, result}`
    /// or `{started_at, error}`), `verified.at` (the end of the RTO), `error`.
    pub details: Value,
    pub finished_at: DateTime<Utc>,
    pub topic_arn: String,
}

/// The RPO of a recovery that holds no data (the app tier): not measured,
/// never counted as met.
pub(crate) const RPO_NOT_APPLICABLE: Objective = Objective {
    objective_seconds: RPO_OBJECTIVE_SECONDS,
    achieved_seconds: None,
    met: None,
};

/// What a recovery's report step returns (data corruption, region failover).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryReportOutput {
    pub outcome: Outcome,
    pub passed: bool,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    pub json_location: String,
    pub markdown_location: String,
    pub message_id: Option<String>,
}

/// A step's output as the state machine recorded it (`steps.<name>.result`).
pub(crate) fn step_result<T: serde::de::DeserializeOwned>(
    details: &Value,
    name: &str,
) -> Option<T> {
    details
        .pointer(&format!("/steps/{name}/result"))
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
}

/// A caught error (`{Error, Cause}`) as (name, short cause).
pub(crate) fn caught_error(e: &Value) -> (String, String) {
    (
        e.get("Error")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_owned(),
        crate::details::short_cause(e.get("Cause").and_then(Value::as_str).unwrap_or_default()),
    )
}

/// Every recorded step by when it started.
pub(crate) fn step_timeline(details: &Value) -> Vec<(String, String)> {
    let mut timeline: Vec<(String, String)> = details
        .get("steps")
        .and_then(Value::as_object)
        .map(|steps| {
            steps
                .iter()
                .filter_map(|(name, s)| {
                    s.get("started_at")
                        .and_then(Value::as_str)
                        .map(|t| (t.to_owned(), name.clone()))
                })
                .collect()
        })
        .unwrap_or_default();
    timeline.sort();
    timeline
}

/// The journal of the recovery a report's details name (`plan.recovery_id`);
/// none when the run never got a plan.
pub(crate) async fn journal_of_details(
    ports: &Ports,
    details: &Value,
) -> DrResult<Vec<JournalEntry>> {
    match details.pointer("/plan/recovery_id").and_then(Value::as_str) {
        Some(id) => ports.journal.entries(id).await,
        None => Ok(Vec::new()),
    }
}

/// A recovery's report, rendered: kept, announced under
/// `[MueJam DR] <title>: <outcome> (passed|FAILED)`.
pub(crate) struct RecoveryDocument<'a> {
    pub scenario: &'a str,
    pub title: String,
    pub outcome: Outcome,
    pub passed: bool,
    pub started_at: DateTime<Utc>,
    pub execution_name: &'a str,
    pub rto: &'a Objective,
    pub rpo: &'a Objective,
    pub json: &'a [u8],
    pub markdown: &'a str,
    /// The execution's details: a drill's rehearsal pages nobody.
    pub details: &'a Value,
}

pub(crate) async fn publish_recovery(
    ports: &Ports,
    document: RecoveryDocument<'_>,
    topic: Option<&str>,
) -> DrResult<RecoveryReportOutput> {
    let subject = format!(
        "[MueJam DR] {}: {} ({})",
        document.title,
        document.outcome.as_str(),
        if document.passed { "passed" } else { "FAILED" }
    );
    let published = publish(
        ports,
        &ReportDocument {
            scenario: document.scenario,
            started_at: document.started_at,
            execution_name: document.execution_name,
            json: document.json,
            markdown: document.markdown,
            passed: document.passed,
        },
        topic,
        subject.clone(),
    )
    .await?;
    if topic.is_some()
        && report_pages(document.outcome, document.passed)
        && drill_of_details(document.details).is_none()
    {
        raise_page(
            ports,
            document.execution_name,
            document.scenario,
            "",
            &subject,
            &format!(
                "{}\nFull report: {}\n",
                document.markdown, published.json_location
            ),
        )
        .await;
    }
    Ok(RecoveryReportOutput {
        outcome: document.outcome,
        passed: document.passed,
        rto_seconds: document.rto.achieved_seconds,
        rpo_seconds: document.rpo.achieved_seconds,
        json_location: published.json_location,
        markdown_location: published.markdown_location,
        message_id: published.message_id,
    })
}

/// Starts a page's climb of the escalation path (tier 1 first), named after
/// the execution that pages so its notification and its report start one
/// climb. The message already went to the alerts topic: a climb that does
/// not start is logged as an error, and the report still goes out.
pub(crate) async fn raise_page(
    ports: &Ports,
    execution: &str,
    scenario: &str,
    resource: &str,
    subject: &str,
    body: &str,
) {
    let page = Page {
        id: execution.to_owned(),
        subject: subject.to_owned(),
        body: body.to_owned(),
        scenario: scenario.to_owned(),
        resource: resource.to_owned(),
        raised_at: dr_core::clock::now(),
    };
    if let Err(error) = ports.pager.raise(&page).await {
        tracing::error!(%error, page = %execution, "the page's climb of the escalation path did not start: only the alerts topic has it");
    }
}

/// The drill a run rehearses for: its plan's `drill`, or, for a run
/// refused before it had a plan, a request triggered by a drill on a
/// drill's copy (`drill-…`; the copy's name is returned). Such a run pages
/// nobody; the drill's own report says how the rehearsal went.
pub(crate) fn drill_of_details(details: &Value) -> Option<&str> {
    if let Some(drill) = details.pointer("/plan/drill").and_then(Value::as_str) {
        return Some(drill);
    }
    let request = details.get("request")?;
    let database = request.get("database").and_then(Value::as_str)?;
    (request.pointer("/trigger/source").and_then(Value::as_str) == Some("drill")
        && database.starts_with(crate::drill::DRILL_PREFIX))
    .then_some(database)
}

/// Whether a report pages: a recovery that did not pass, unless a person
/// decided it (a rejection is that person's answer).
pub(crate) fn report_pages(outcome: Outcome, passed: bool) -> bool {
    !passed && outcome != Outcome::Rejected
}

pub(crate) struct Published {
    pub json_location: String,
    pub markdown_location: String,
    pub message_id: Option<String>,
}

/// The execution's name as report keys carry it (other characters `_`).
pub fn report_name(execution: &str) -> String {
    execution
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Pure: the keys of an execution's reports in `extension` (`json`, `md`)
/// among `keys` (`<scenario>/<start>-<execution>.<extension>`), of one
/// scenario when given; oldest first.
pub fn report_keys_of(
    keys: &[String],
    execution: &str,
    scenario: Option<&str>,
    extension: &str,
) -> Vec<String> {
    let name = report_name(execution);
    keys.iter()
        .filter(|key| {
            let Some((dir, file)) = key.split_once('/') else {
                return false;
            };
            let Some(stem) = file.strip_suffix(&format!(".{extension}")) else {
                return false;
            };
            // The start (`%Y%m%dT%H%M%SZ`) has no '-': the rest is the name.
            scenario.is_none_or(|s| s == dir)
                && stem.split_once('-').is_some_and(|(_, n)| n == name)
        })
        .cloned()
        .collect()
}

/// Keeps a report as `<scenario>/<start>-<execution>.json|.md` in the report
/// store and, when a topic is given, sends its Markdown to the people on it.
pub(crate) async fn publish(
    ports: &Ports,
    document: &ReportDocument<'_>,
    topic: Option<&str>,
    subject: String,
) -> DrResult<Published> {
    let name = report_name(document.execution_name);
    let key = format!(
        "{}/{}-{name}",
        document.scenario,
        document.started_at.format("%Y%m%dT%H%M%SZ")
    );
    let json_location = ports
        .reports
        .put(&format!("{key}.json"), "application/json", document.json)
        .await?;
    let markdown_location = ports
        .reports
        .put(
            &format!("{key}.md"),
            "text/markdown",
            document.markdown.as_bytes(),
        )
        .await?;
    // The page beside them, rendered from the JSON just kept.
    let report: Value = serde_json::from_slice(document.json)
        .map_err(|e| DrError::Internal(format!("re-reading the report: {e}")))?;
    ports
        .reports
        .put(
            &format!("{key}.html"),
            "text/html; charset=utf-8",
            crate::html::report_html(&report).as_bytes(),
        )
        .await?;
    let message_id = match topic {
        Some(topic) => Some(
            ports
                .notifier
                .publish(&Notification {
                    topic: topic.to_owned(),
                    subject,
                    body: format!("{}\nFull report: {json_location}\n", document.markdown),
                    attributes: [
                        ("scenario".to_owned(), document.scenario.to_owned()),
                        ("event".to_owned(), "report".to_owned()),
                        ("passed".to_owned(), document.passed.to_string()),
                    ]
                    .into(),
                })
                .await?,
        ),
        None => None,
    };
    Ok(Published {
        json_location,
        markdown_location,
        message_id,
    })
}

pub async fn report(ports: &Ports, input: ReportInput) -> DrResult<ReportOutput> {
    if input.scenario.is_empty()
        || !input
            .scenario
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(DrError::InvalidInput(
            "scenario must be letters, digits and hyphens".to_owned(),
        ));
    }
    let recovery_id = input
        .details
        .pointer("/plan/recovery_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let journal = match recovery_id {
        Some(id) => ports.journal.entries(&id).await?,
        None => Vec::new(),
    };
    let report = build(&input, &journal)?;
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| DrError::Internal(format!("rendering the report: {e}")))?;
    let subject = format!(
        "[MueJam DR] Report: {} of {} {} (RTO {}, RPO {})",
        report.scenario,
        report.resource,
        if report.passed { "PASSED" } else { "FAILED" },
        seconds(report.rto.achieved_seconds),
        seconds(report.rpo.achieved_seconds)
    );
    let Published {
        json_location,
        markdown_location,
        message_id,
    } = publish(
        ports,
        &ReportDocument {
            scenario: &report.scenario,
            started_at: report.started_at,
            execution_name: &report.execution_name,
            json: &json,
            markdown: &markdown(&report),
            passed: report.passed,
        },
        input.topic_arn.as_deref(),
        subject.clone(),
    )
    .await?;
    if input.topic_arn.is_some()
        && report_pages(report.outcome, report.passed)
        && drill_of_details(&input.details).is_none()
    {
        raise_page(
            ports,
            &report.execution_name,
            &report.scenario,
            &report.resource,
            &subject,
            &format!("{}\nFull report: {json_location}\n", markdown(&report)),
        )
        .await;
    }
    Ok(ReportOutput {
        outcome: report.outcome,
        passed: report.passed,
        rto_seconds: report.rto.achieved_seconds,
        rpo_seconds: report.rpo.achieved_seconds,
        json_location,
        markdown_location,
        message_id,
    })
}

#[cfg(test)]
pub(crate) mod tests {

    #[test]
    fn only_a_drills_rehearsal_on_its_copy_pages_nobody() {
        let cases = [
            (json!({"plan": {"drill": "q4"}}), Some("q4")),
            (json!({"plan": {"drill": null}}), None),
            (json!({"plan": {"database": "muejam"}}), None),
            // Refused before it had a plan: a drill's request on a copy.
            (
                json!({"request": {"database": "drill-q4-muejam", "trigger": {"source": "drill"}}}),
                Some("drill-q4-muejam"),
            ),
            // A request that says "drill" about production still pages.
            (
                json!({"request": {"database": "muejam", "trigger": {"source": "drill"}}}),
                None,
            ),
            (
                json!({"request": {"database": "drill-q4-muejam", "trigger": {"source": "manual"}}}),
                None,
            ),
            (json!({}), None),
        ];
        for (details, expected) in cases {
            assert_eq!(drill_of_details(&details), expected, "{details}");
        }
    }

    #[test]
    fn a_report_is_found_by_its_execution_exactly() {
        let keys: Vec<String> = [
            "database-failover/20261128T010000Z-incident-1.json",
            "database-failover/20261128T010000Z-incident-1.md",
            "database-failover/20261128T020000Z-incident-11.json",
            "data-corruption/20261128T030000Z-incident-1.json",
            "data-corruption/incident-1-lost-keys.csv",
            "dr-drill/20261128T040000Z-q4_2026.json",
            "stray.json",
        ]
        .map(str::to_owned)
        .to_vec();
        // (execution, scenario, extension, found)
        let cases: [(&str, Option<&str>, &str, Vec<&str>); 5] = [
            (
                "incident-1",
                None,
                "json",
                vec![
                    "database-failover/20261128T010000Z-incident-1.json",
                    "data-corruption/20261128T030000Z-incident-1.json",
                ],
            ),
            (
                "incident-1",
                Some("database-failover"),
                "md",
                vec!["database-failover/20261128T010000Z-incident-1.md"],
            ),
            ("incident", None, "json", vec![]),
            // The name as the key carries it.
            (
                "q4/2026",
                None,
                "json",
                vec!["dr-drill/20261128T040000Z-q4_2026.json"],
            ),
            ("incident-1", Some("dr-drill"), "json", vec![]),
        ];
        for (execution, scenario, extension, expected) in cases {
            assert_eq!(
                report_keys_of(&keys, execution, scenario, extension),
                expected,
                "{execution} {scenario:?} {extension}"
            );
        }
    }
    use super::*;
    use serde_json::{json, Value};

    pub(crate) fn plan() -> Value {
        json!({
            "database": "muejam", "primary": "muejam-db-prod", "replica": "muejam-db-prod-replica",
            "new_replica": "muejam-db-prod-r1", "db_name": "muejam", "credentials_secret_id": "muejam/db/master",
            "dns": {"hosted_zone": "muejam.internal", "record_name": "db.muejam.internal", "ttl": 60},
            "availability_zones": ["us-east-1a", "us-east-1b"], "allow_data_loss": false,
            "max_lag_seconds": 21600.0, "poll_interval_seconds": 15,
            "approval": {"timeout_cap_seconds": 1800, "timeout_floor_seconds": 60, "expected_remaining_seconds": 900},
            "rto_objective_seconds": 14400.0, "rpo_objective_seconds": 21600.0, "recovery_id": "run-1",
            "topology_version": 1, "trigger": {"source": "cloudwatch-alarm", "alarm": "muejam-db-prod-unreachable"},
            "execution_start": "2026-11-26T03:00:00Z"
        })
    }

    pub(crate) fn confirm(decision: &str) -> Value {
        json!({
            "primary": "muejam-db-prod", "control_plane": {"kind": "status", "status": "failed"},
            "probe": {"kind": "silent", "failure": "refused"}, "probe_reason": "Unavailable: connection refused",
            "dns_value": "127.0.0.2",
            "replica": {"instance_id": "muejam-db-prod-replica", "status": "available", "lag_seconds": 2.5, "lag_bytes": 0, "problem": null},
            "decision": decision, "reasons": ["muejam-db-prod does not serve SQL (refused)", "the control plane reports it failed"],
            "control_plane_confirms_down": true, "approval": null, "error": null,
            "checked_at": "2026-11-26T03:00:00.200Z"
        })
    }

    /// The data of a failover that got as far as `last` ("promote", "dns",
    /// "replica"), with `replica_failed` making the replica step fail.
    pub(crate) fn details(lag: Option<f64>, replica_failed: bool) -> Value {
        let mut replica = json!({"started_at": "2026-11-26T03:01:00.000Z", "result": {
            "replica_instance_id": "muejam-db-prod-r1", "source_instance_id": "muejam-db-prod-replica",
            "availability_zone": "us-east-1a", "status": "available",
            "mutation": "created read replica muejam-db-prod-r1 of muejam-db-prod-replica in us-east-1a"}});
        if replica_failed {
            replica = json!({"started_at": "2026-11-26T03:01:00.000Z", "error": {"Error": "Internal",
                "Cause": "{\"errorMessage\":\"replica muejam-db-prod-r1 exists but is failed\",\"errorType\":\"Internal\"}"}});
        }
        json!({
            "request": {"database": "muejam"},
            "plan": plan(),
            "lock": {"held": true},
            "steps": {
                "confirm": {"started_at": "2026-11-26T03:00:00.100Z", "result": confirm("automatic")},
                "fence": {"started_at": "2026-11-26T03:00:00.500Z", "result": {"instance_id": "muejam-db-prod", "fenced": true, "already_fenced": false,
                    "method": "pg_hba.conf admits only the control plane", "mutation": "fenced old primary muejam-db-prod (pg_hba.conf admits only the control plane)"}},
                "promote": {"started_at": "2026-11-26T03:00:01.000Z", "result": {"instance_id": "muejam-db-prod-replica", "already_standalone": false,
                    "lag_at_promotion_seconds": lag, "lag_at_promotion_bytes": 0, "data_loss_accepted": false, "status": "available",
                    "mutation": "promoted read replica muejam-db-prod-replica to a standalone primary"}},
                "dns": {"started_at": "2026-11-26T03:00:40.000Z", "result": {"change_id": "c1", "status": "INSYNC", "insync": true,
                    "record_name": "db.muejam.internal", "value": "127.0.0.3", "previous_value": "127.0.0.2",
                    "mutation": "pointed db.muejam.internal at muejam-db-prod-replica"}},
                "replica": replica
            },
            "recovery_verified": {"at": "2026-11-26T03:00:50Z"}
        })
    }

    fn input(outcome: Outcome, verified: Option<&str>, details: Value) -> ReportInput {
        ReportInput {
            scenario: "database-failover".to_owned(),
            resource: "muejam".to_owned(),
            execution: ExecutionInfo {
                id: "arn:x".to_owned(),
                name: "run-1".to_owned(),
                start_time: "2026-11-26T03:00:00Z".parse().expect("ts"),
            },
            outcome,
            details,
            recovery_verified_at: verified.map(|v| v.parse().expect("ts")),
            finished_at: "2026-11-26T03:02:00Z".parse().expect("ts"),
            topic_arn: None,
            rto_objective_seconds: RTO_OBJECTIVE_SECONDS,
            rpo_objective_seconds: RPO_OBJECTIVE_SECONDS,
        }
    }

    #[test]
    fn rto_is_start_to_verified_and_rpo_the_lag_at_promotion() {
        let report = build(
            &input(
                Outcome::Succeeded,
                Some("2026-11-26T03:01:30Z"),
                details(Some(2.5), false),
            ),
            &[],
        )
        .expect("report");
        assert_eq!(report.rto.achieved_seconds, Some(90.0));
        assert_eq!(report.rto.met, Some(true));
        assert_eq!(report.rpo.achieved_seconds, Some(2.5));
        assert!(report.passed);
        assert_eq!(report.mutations.len(), 4, "{:?}", report.mutations);
        assert!(report.mutations[0].starts_with("fenced old primary muejam-db-prod"));
        assert!(report.mutations[3].starts_with("created read replica muejam-db-prod-r1"));
        let evidence = report.evidence.as_ref().expect("evidence");
        assert_eq!(evidence.decision, "automatic");
        let md = markdown(&report);
        assert!(md.contains("**Result: PASSED**"));
        assert!(
            md.contains("| RTO | 1.5 min (objective 4.00 h) — MET |"),
            "{md}"
        );
        assert!(md.contains("## Decision: automatic"), "{md}");
    }

    #[test]
    fn an_unmeasured_objective_is_not_measured_and_never_passes() {
        let report = build(
            &input(
                Outcome::Succeeded,
                Some("2026-11-26T03:01:30Z"),
                details(None, false),
            ),
            &[],
        )
        .expect("report");
        assert_eq!(report.rpo.achieved_seconds, None);
        assert_eq!(report.rpo.met, None);
        assert!(!report.passed, "an unmeasured RPO must not pass");
        let md = markdown(&report);
        assert!(md.contains("**Result: FAILED**"), "{md}");
        assert!(
            md.contains("not measured (objective 6.00 h) — NOT MEASURED (not met)"),
            "{md}"
        );
        let no_verification = build(
            &input(Outcome::Succeeded, None, details(Some(1.0), false)),
            &[],
        )
        .expect("report");
        assert!(!no_verification.passed, "an unmeasured RTO must not pass");
    }

    #[test]
    fn a_failed_step_is_reported_as_failed_never_as_done() {
        let report = build(
            &input(
                Outcome::Succeeded,
                Some("2026-11-26T03:01:30Z"),
                details(Some(1.0), true),
            ),
            &[],
        )
        .expect("report");
        let replica = report
            .changes
            .iter()
            .find(|c| c.step == "replica")
            .expect("replica change");
        assert_eq!(replica.outcome, ChangeOutcome::Failed);
        assert!(
            replica.what.contains("creating the replica muejam-db-prod-r1 FAILED: Internal: replica muejam-db-prod-r1 exists but is failed"),
            "{}",
            replica.what
        );
        assert!(!report
            .mutations
            .iter()
            .any(|m| m.contains("muejam-db-prod-r1")));
    }

    #[test]
    fn data_of_another_shape_is_an_error_not_a_silent_na() {
        let mut renamed = details(Some(2.5), false);
        let promote = &mut renamed["steps"]["promote"]["result"];
        if let Some(p) = promote.as_object_mut() {
            let lag = p.remove("lag_at_promotion_seconds").expect("field");
            p.insert("lag_seconds_at_promotion".to_owned(), lag);
        }
        let err = build(
            &input(Outcome::Succeeded, Some("2026-11-26T03:01:30Z"), renamed),
            &[],
        )
        .expect_err("renamed field");
        assert_eq!(err.name(), "Internal");
        assert!(
            err.to_string().contains("lag_seconds_at_promotion"),
            "{err}"
        );
        let mut unknown_step = details(Some(2.5), false);
        unknown_step["steps"]["promotion"] = json!({"started_at": "x"});
        assert!(build(&input(Outcome::Failed, None, unknown_step), &[]).is_err());
    }

    #[test]
    fn an_objective_missed_fails_the_report_and_a_failure_has_no_rto() {
        let mut late = input(
            Outcome::Succeeded,
            Some("2026-11-26T08:00:00Z"),
            details(Some(1.0), false),
        );
        late.rto_objective_seconds = 4.0 * 3600.0;
        let report = build(&late, &[]).expect("report");
        assert_eq!(report.rto.met, Some(false));
        assert!(!report.passed);
        let failed = build(
            &input(Outcome::Failed, None, details(Some(1.0), false)),
            &[],
        )
        .expect("report");
        assert_eq!(failed.rto.achieved_seconds, None);
        assert!(!failed.passed);
    }
}
