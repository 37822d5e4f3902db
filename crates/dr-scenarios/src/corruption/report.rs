//! The data-corruption report: what was found before and after, the
//! candidates tried, the moment chosen, what the switch lost (with the
//! keys), the approval, every change, RTO and RPO against the objectives.

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::loss::AssessLossOutput;
use super::search::Verdict;
use super::steps::{IntegrityCheckOutput, SearchStepOutput};
use super::writes::WriteAccessOutput;
use super::CorruptionPlan;
use crate::report::{
    caught_error, headline_md, journal_of_details, publish_recovery, step_result, ExecutionInfo,
    Objective, Outcome, RecoveryDocument,
};
use crate::rollback::steps::RollbackStepOutput;
use crate::Ports;

pub const SCENARIO: &str = "data-corruption";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorruptionReportInput {
    pub execution: ExecutionInfo,
    pub outcome: Outcome,
    /// The execution's data: `plan`, `steps` (each `{started_at, result}`),
    /// `search`, `moment`, `error`.
    pub details: Value,
    pub finished_at: DateTime<Utc>,
    #[serde(default)]
    pub topic_arn: Option<String>,
}

/// A step as the state machine keeps it.
#[derive(Debug, Clone, Deserialize)]
struct Step<T> {
    started_at: String,
    #[serde(default = "Option::default")]
    result: Option<T>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Steps {
    scope: Option<Step<IntegrityCheckOutput>>,
    stop_writes: Option<Step<WriteAccessOutput>>,
    verify: Option<Step<IntegrityCheckOutput>>,
    loss: Option<Step<AssessLossOutput>>,
    verified: Option<Step<Value>>,
}

#[derive(Debug, Clone, Deserialize)]
struct Moment {
    at: DateTime<Utc>,
    source: String,
}

#[derive(Debug, Clone, Deserialize)]
struct ErrorInfo {
    #[serde(rename = "Error")]
    error: String,
    #[serde(rename = "Cause", default)]
    cause: String,
}

/// The search as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchSummary {
    pub rounds: u32,
    pub rounds_bound: u32,
    pub candidates: Vec<Verdict>,
}

/// The report document (also what is stored as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorruptionReport {
    pub scenario: String,
    pub resource: String,
    pub execution_id: String,
    pub execution_name: String,
    pub outcome: Outcome,
    pub passed: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub rto: Objective,
    /// The data-loss window: from the chosen moment until writes stopped.
    pub rpo: Objective,
    pub findings_before: Vec<IntegrityFinding>,
    /// How the application's writes were stopped, and when.
    pub writes_stopped: Option<String>,
    pub findings_after: Option<Vec<IntegrityFinding>>,
    pub chosen_moment: Option<DateTime<Utc>>,
    /// `search` or `input`.
    pub moment_source: Option<String>,
    pub search: Option<SearchSummary>,
    pub loss: Option<AssessLossOutput>,
    pub approval: Option<String>,
    /// Who the question climbed to on the escalation path, when, and who
    /// answered how fast (empty when nobody was asked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation: Vec<String>,
    /// The application (when the request named it): its read-only mode,
    /// its rollout after the lift, its health URL's last answer.
    #[serde(default)]
    pub application: Vec<String>,
    /// Every change of the recovery, from its journal, with how it ended.
    pub changes: Vec<String>,
    pub timeline: Vec<(String, String)>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// What the report step returns.
pub type CorruptionReportOutput = crate::report::RecoveryReportOutput;

fn field<T: serde::de::DeserializeOwned>(details: &Value, key: &str) -> DrResult<Option<T>> {
    match details.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
            DrError::InvalidInput(format!(
                "the execution's {key} is not what the steps write: {}",
                crate::truncate_message(&e.to_string())
            ))
        }),
    }
}

/// Pure: the report from the execution's data and the recovery's journal.
pub fn build(
    input: &CorruptionReportInput,
    journal: &[JournalEntry],
) -> DrResult<CorruptionReport> {
    let details = &input.details;
    let plan: Option<CorruptionPlan> = field(details, "plan")?;
    let steps: Steps = field(details, "steps")?.unwrap_or_default();
    let search: Option<SearchStepOutput> = field(details, "search")?;
    let moment: Option<Moment> = field(details, "moment")?;
    let error: Option<ErrorInfo> = field(details, "error")?;
    // The abort path's sweep, when it could not delete every candidate
    // (RDS refuses one it is still creating): what it names is left.
    let sweep_error: Option<ErrorInfo> = field(details, "sweep_error")?;
    let verified_at = steps
        .verified
        .as_ref()
        .and_then(|s| s.started_at.parse::<DateTime<Utc>>().ok());
    let loss = steps.loss.as_ref().and_then(|s| s.result.clone());
    let rto_seconds = match (input.outcome, verified_at) {
        (Outcome::Succeeded, Some(at)) => {
            Some((at - input.execution.start_time).num_milliseconds() as f64 / 1000.0)
        }
        _ => None,
    };
    let rpo_seconds = match input.outcome {
        Outcome::Succeeded => loss.as_ref().map(|l| l.data_loss_window_seconds),
        _ => None,
    };
    let (rto_objective, rpo_objective) = plan
        .as_ref()
        .map(|p| (p.rto_objective_seconds, p.rpo_objective_seconds))
        .unwrap_or((
            crate::report::RTO_OBJECTIVE_SECONDS,
            crate::report::RPO_OBJECTIVE_SECONDS,
        ));
    let rto = Objective::measure(rto_objective, rto_seconds);
    let rpo = Objective::measure(rpo_objective, rpo_seconds);
    let mut changes: Vec<String> = journal
        .iter()
        .map(|e| {
            let status = match e.status {
                JournalStatus::Done => "done",
                JournalStatus::Started => "BEGUN, NOT KNOWN TO HAVE ENDED",
                JournalStatus::Failed => "FAILED",
            };
            format!("{} ({status})", e.summary)
        })
        .collect();
    if let Some(left) = &sweep_error {
        changes.push(format!(
            "deleting this run's candidates (FAILED, {}): {}; delete what it names by hand once RDS lets you (aws rds delete-db-instance --skip-final-snapshot)",
            left.error,
            crate::truncate_message(&crate::details::short_cause(&left.cause))
        ));
    }
    let all_done = journal.iter().all(|e| e.status == JournalStatus::Done);
    let passed = match input.outcome {
        Outcome::Succeeded => rto.is_met() && rpo.is_met() && all_done,
        Outcome::FalseAlarm | Outcome::AlreadyRunning => true,
        _ => false,
    };
    let approval = details.pointer("/steps/approval").map(approval_summary);
    let mut timeline: Vec<(String, String)> = details
        .get("steps")
        .and_then(Value::as_object)
        .map(|steps| {
            steps
                .iter()
                .filter_map(|(name, step)| {
                    Some((step.get("started_at")?.as_str()?.to_owned(), name.clone()))
                })
                .collect()
        })
        .unwrap_or_default();
    timeline.sort();
    Ok(CorruptionReport {
        scenario: SCENARIO.to_owned(),
        resource: plan
            .as_ref()
            .map(|p| p.database.clone())
            .unwrap_or_default(),
        execution_id: input.execution.id.clone(),
        execution_name: input.execution.name.clone(),
        outcome: input.outcome,
        passed,
        started_at: input.execution.start_time,
        finished_at: input.finished_at,
        rto,
        rpo,
        findings_before: steps
            .scope
            .as_ref()
            .and_then(|s| s.result.as_ref())
            .map(|r| r.findings.clone())
            .unwrap_or_default(),
        writes_stopped: steps
            .stop_writes
            .as_ref()
            .and_then(|s| s.result.as_ref())
            .and_then(|r| {
                r.mutation
                    .as_ref()
                    .map(|m| format!("{m} at {}", r.at.to_rfc3339()))
            }),
        findings_after: steps
            .verify
            .as_ref()
            .and_then(|s| s.result.as_ref())
            .map(|r| r.findings.clone()),
        chosen_moment: moment.as_ref().map(|m| m.at),
        moment_source: moment.map(|m| m.source),
        search: search.map(|s| SearchSummary {
            rounds: s.state.round,
            rounds_bound: s.rounds_bound,
            candidates: s.state.judged,
        }),
        loss,
        approval,
        escalation: crate::escalation::lines_of(details),
        application: application_lines(details, plan.as_ref()),
        changes,
        timeline,
        error: error.as_ref().map(|e| e.error.clone()),
        cause: error.map(|e| crate::truncate_message(&e.cause)),
    })
}

/// Who answered the approval and how, from what the step kept: the answer
/// (`drctl approve` sends it as the task's output), a rejection's error, or
/// an expiry's record.
pub(crate) fn approval_summary(step: &Value) -> String {
    let result = step.get("result").unwrap_or(&Value::Null);
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    if result.get("approved").and_then(Value::as_bool) == Some(true) {
        return format!(
            "approved by {} at {}{}",
            text(result, "by").unwrap_or_else(|| "?".to_owned()),
            text(result, "at").unwrap_or_else(|| "?".to_owned()),
            text(result, "reason")
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    if let Some(error) = step.get("error") {
        return format!(
            "rejected: {}",
            text(error, "Cause").unwrap_or_else(|| "no reason given".to_owned())
        );
    }
    match text(result, "status") {
        Some(status) if status == "expired" => {
            "nobody answered before the deadline: nothing was switched".to_owned()
        }
        Some(status) => status,
        None => "no answer recorded".to_owned(),
    }
}

fn findings_md(findings: &[IntegrityFinding]) -> String {
    if findings.is_empty() {
        return "- none: every check passed\n".to_owned();
    }
    findings
        .iter()
        .map(|f| {
            format!(
                "- `{}` ({}, {}){}: {}\n",
                f.name,
                f.kind,
                f.status,
                f.count.map(|n| format!(", {n} rows")).unwrap_or_default(),
                f.detail.as_deref().unwrap_or("")
            )
        })
        .collect()
}

/// Pure: what happened to the application, one line per step that ran (a
/// caught error is kept as `{started_at, error}` in the step's place).
fn application_lines(details: &Value, plan: Option<&CorruptionPlan>) -> Vec<String> {
    let mut lines = Vec::new();
    for (step, what) in [
        ("read_only", "read-only mode"),
        ("read_only_lift", "lift of the read-only mode"),
        ("app_rollout", "rollout"),
        ("app_health", "health"),
    ] {
        let Some(kept) = details.pointer(&format!("/steps/{step}")) else {
            continue;
        };
        if let Some(e) = kept.get("error") {
            let (error, cause) = caught_error(e);
            let mut line = format!("{what}: FAILED ({error}: {cause})");
            if step == "read_only_lift" {
                if let Some(app) = plan.and_then(|p| p.app.as_ref()) {
                    line.push_str(&format!(
                        "; the application may still be in read-only mode: lift it by hand once its writes are back ({})",
                        super::read_only::lift_hint(&app.deployment)
                    ));
                }
            }
            lines.push(line);
            continue;
        }
        let line = match step {
            "app_health" => step_result::<HealthObservation>(details, step)
                .map(|h| crate::app::report::health_line(&h)),
            _ => step_result::<RollbackStepOutput>(details, step).map(|r| {
                if step == "app_rollout" && !r.done {
                    format!("NOT rolled out within the run's limit: {}", r.detail)
                } else {
                    r.detail
                }
            }),
        };
        lines.push(format!(
            "{what}: {}",
            line.unwrap_or_else(|| "no output of the shape the step writes".to_owned())
        ));
    }
    lines
}

pub fn markdown(report: &CorruptionReport) -> String {
    let restored_to = report
        .chosen_moment
        .map(|m| {
            format!(
                "{} ({})",
                m.to_rfc3339(),
                report.moment_source.as_deref().unwrap_or("?")
            )
        })
        .unwrap_or_else(|| "nothing restored".to_owned());
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
        &format!("| Restored to | {restored_to} |\n"),
        report
            .error
            .as_deref()
            .map(|e| (e, report.cause.as_deref().unwrap_or(""))),
    );
    md.push_str("\n## Found on the primary\n\n");
    md.push_str(&findings_md(&report.findings_before));
    if let Some(stopped) = &report.writes_stopped {
        md.push_str(&format!("\n## Writes stopped\n\n{stopped}\n"));
    }
    if let Some(after) = &report.findings_after {
        md.push_str("\n## Found on the restored instance\n\n");
        md.push_str(&findings_md(after));
    }
    if let Some(search) = &report.search {
        md.push_str(&format!(
            "\n## Last-known-good search\n\n{} round(s) of at most {}; candidates:\n\n| Moment | Round | Verdict |\n|---|---|---|\n",
            search.rounds, search.rounds_bound
        ));
        for c in &search.candidates {
            md.push_str(&format!(
                "| {} | {} | {} |\n",
                c.at.to_rfc3339(),
                c.round,
                if c.clean { "clean" } else { "corrupt" }
            ));
        }
    }
    if let Some(loss) = &report.loss {
        md.push_str(&format!(
            "\n## What the switch loses\n\n{} row(s) lost, {} row(s) brought back; keys: {}\n\n| Table | New rows lost | Changes lost | Deleted rows back |\n|---|---|---|---|\n",
            loss.rows_lost, loss.rows_brought_back, loss.keys_location
        ));
        for t in &loss.tables {
            md.push_str(&format!(
                "| {}{} | {} | {} | {} |\n",
                t.table,
                if t.compared_by_count_only {
                    " (no key: by count)"
                } else {
                    ""
                },
                t.inserted,
                t.updated,
                t.deleted
            ));
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
    if !report.application.is_empty() {
        md.push_str("\n## Application\n\n");
        for line in &report.application {
            md.push_str(&format!("- {line}\n"));
        }
    }
    md.push_str("\n## Changes made\n\n");
    if report.changes.is_empty() {
        md.push_str("- none\n");
    }
    for change in &report.changes {
        md.push_str(&format!("- {change}\n"));
    }
    md.push_str("\n## Timeline\n\n| Started | Step |\n|---|---|\n");
    for (at, step) in &report.timeline {
        md.push_str(&format!("| {at} | {step} |\n"));
    }
    md
}

pub async fn corruption_report(
    ports: &Ports,
    input: CorruptionReportInput,
) -> DrResult<CorruptionReportOutput> {
    let journal = journal_of_details(ports, &input.details).await?;
    let report = build(&input, &journal)?;
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| DrError::Internal(format!("serializing the report: {e}")))?;
    let md = markdown(&report);
    publish_recovery(
        ports,
        RecoveryDocument {
            scenario: SCENARIO,
            title: format!("data corruption {}", report.resource),
            outcome: report.outcome,
            passed: report.passed,
            started_at: report.started_at,
            execution_name: &report.execution_name,
            rto: &report.rto,
            rpo: &report.rpo,
            json: &json,
            markdown: &md,
            details: &input.details,
        },
        input.topic_arn.as_deref(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(outcome: Outcome, details: Value) -> CorruptionReportInput {
        CorruptionReportInput {
            execution: ExecutionInfo {
                id: "arn:x".into(),
                name: "run-1".into(),
                start_time: "2026-11-27T09:00:00Z".parse().expect("t"),
            },
            outcome,
            details,
            finished_at: "2026-11-27T09:30:00Z".parse().expect("t"),
            topic_arn: None,
        }
    }

    fn entry(status: JournalStatus) -> JournalEntry {
        JournalEntry {
            recovery_id: "run-1".into(),
            key: "dns".into(),
            execution: "run-1".into(),
            at: dr_core::clock::now(),
            status,
            summary: "pointed the record".into(),
            detail: None,
        }
    }

    #[test]
    fn passed_needs_measured_objectives_and_every_change_done() {
        let verified = json!({"steps": {"verified": {"started_at": "2026-11-27T09:20:00Z"},
            "loss": {"started_at": "2026-11-27T09:10:00Z", "result": {
                "tables": [], "rows_lost": 0, "rows_brought_back": 0, "data_loss_window_seconds": 600.0,
                "keys_location": "k", "approval": {"question": "q", "facts": [], "proposed_action": "p", "default_action": "d"}}}}});
        // (outcome, details, journal) -> passed, rto, rpo
        let cases = [
            (
                Outcome::Succeeded,
                verified.clone(),
                vec![entry(JournalStatus::Done)],
                true,
                Some(1200.0),
                Some(600.0),
            ),
            (
                Outcome::Succeeded,
                verified.clone(),
                vec![entry(JournalStatus::Started)],
                false,
                Some(1200.0),
                Some(600.0),
            ),
            (
                Outcome::Succeeded,
                json!({"steps": {}}),
                vec![],
                false,
                None,
                None,
            ),
            (Outcome::FalseAlarm, json!({}), vec![], true, None, None),
            (
                Outcome::Rejected,
                verified.clone(),
                vec![],
                false,
                None,
                None,
            ),
            (Outcome::Failed, verified, vec![], false, None, None),
        ];
        for (outcome, details, journal, passed, rto, rpo) in cases {
            let report = build(&input(outcome, details), &journal).expect("report");
            assert_eq!(report.passed, passed, "{outcome:?} {journal:?}");
            assert_eq!(report.rto.achieved_seconds, rto, "{outcome:?}");
            assert_eq!(report.rpo.achieved_seconds, rpo, "{outcome:?}");
        }
    }

    #[test]
    fn candidates_the_abort_could_not_delete_are_named_among_the_changes() {
        let details = json!({"sweep_error": {"Error": "NotReady",
            "Cause": "{\"errorType\":\"NotReady\",\"errorMessage\":\"not ready: candidates not deleted: muejam-db-prod-c1 (deleted: muejam-db-prod-c2); muejam-db-prod-c1: DB instance muejam-db-prod-c1 is creating\"}"}});
        let report = build(&input(Outcome::Failed, details), &[]).expect("report");
        let line = report.changes.last().expect("a line");
        assert!(line.starts_with("deleting this run's candidates (FAILED, NotReady): not ready: candidates not deleted: muejam-db-prod-c1"), "{line}");
        assert!(markdown(&report).contains(line.as_str()));
        let clean = build(&input(Outcome::Failed, json!({})), &[]).expect("report");
        assert!(clean.changes.is_empty(), "{:?}", clean.changes);
    }

    #[test]
    fn the_approval_says_who_answered_and_how() {
        let cases = [
            (
                json!({"result": {"approved": true, "by": "alice", "at": "t1", "reason": "ok"}}),
                "approved by alice at t1: ok",
            ),
            (
                json!({"result": {"status": "rejected"}, "error": {"Error": "Rejected", "Cause": "rejected by bob: no"}}),
                "rejected: rejected by bob: no",
            ),
            (
                json!({"result": {"status": "expired"}}),
                "nobody answered before the deadline: nothing was switched",
            ),
            (json!({}), "no answer recorded"),
        ];
        for (step, expected) in cases {
            assert_eq!(approval_summary(&step), expected);
        }
    }

    #[test]
    fn data_of_another_shape_is_an_error_not_a_blank() {
        let err = build(
            &input(Outcome::Failed, json!({"plan": {"database": 1}})),
            &[],
        )
        .expect_err("not a plan");
        assert_eq!(err.name(), "InvalidInput");
    }

    #[test]
    fn the_application_section_says_what_each_app_step_did_or_why_it_failed() {
        let step = |detail: &str, done: bool| json!({"started_at": "t", "result": {"done": done, "failed": false, "detail": detail, "revision": null, "job": null, "mutation": null}});
        let details = json!({"steps": {
            "read_only": step("put muejam/muejam-api in read-only mode", true),
            "read_only_lift": {"started_at": "t", "error": {"Error": "Unavailable", "Cause": "{\"errorMessage\": \"the cluster does not answer\"}"}},
            "app_rollout": step("2 of 4 updated", false),
            "app_health": {"started_at": "t", "result": {"url": "https://api.muejam.com/health", "status": 200, "healthy": true, "latency_ms": 12, "detail": null, "checked_at": "2026-11-27T09:20:00Z"}},
        }});
        let report = build(&input(Outcome::Succeeded, details), &[]).expect("report");
        assert_eq!(report.application.len(), 4, "{:#?}", report.application);
        assert_eq!(
            report.application[0],
            "read-only mode: put muejam/muejam-api in read-only mode"
        );
        assert!(
            report.application[1].starts_with("lift of the read-only mode: FAILED (Unavailable: ")
                && report.application[1].contains("the cluster does not answer"),
            "{}",
            report.application[1]
        );
        assert_eq!(
            report.application[2],
            "rollout: NOT rolled out within the run's limit: 2 of 4 updated"
        );
        assert!(
            report.application[3]
                .starts_with("health: `https://api.muejam.com/health` answered 200"),
            "{}",
            report.application[3]
        );
        assert!(markdown(&report).contains("\n## Application\n\n- read-only mode: "));
        // No app named: no section.
        let none = build(&input(Outcome::Succeeded, json!({})), &[]).expect("report");
        assert!(none.application.is_empty());
        assert!(!markdown(&none).contains("## Application"));
    }
}
