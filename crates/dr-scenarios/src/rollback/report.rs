//! The rollback's report: from which revision to which, the migrations
//! undone and the job's last lines, the rollout, the health answer, every
//! change, the RTO. Always to the alerts topic.

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::steps::RollbackStepOutput;
use super::{RollbackPlan, SCENARIO};
use crate::app::report::{changes_and_timeline, health_line};
use crate::region::report::changes;
use crate::report::{
    caught_error, journal_of_details, publish_recovery, seconds, step_result, step_timeline,
    verdict, Objective, Outcome, RecoveryDocument,
};
use crate::Ports;

pub type RollbackReportInput = crate::report::RecoveryReportInput;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackReport {
    pub scenario: String,
    pub resource: String,
    pub execution_name: String,
    pub outcome: Outcome,
    pub passed: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub trigger: Option<String>,
    pub rto: Objective,
    pub from: Option<AppRevision>,
    pub to: Option<AppRevision>,
    /// The revision number the rolled-back template runs as now.
    pub now_revision: Option<u64>,
    /// Migrations the job undid (newest first), and its last lines.
    pub migrations_undone: Vec<String>,
    pub migration_job: Option<RollbackStepOutput>,
    pub rollout: Option<RollbackStepOutput>,
    pub health: Option<HealthObservation>,
    pub warnings: Vec<String>,
    pub changes: Vec<String>,
    pub timeline: Vec<(String, String)>,
    pub error: Option<(String, String)>,
}

/// Pure: the report from the execution's data and the journal.
pub fn build(input: &RollbackReportInput, journal: &[JournalEntry]) -> RollbackReport {
    let d = &input.details;
    let plan: Option<RollbackPlan> = d
        .get("plan")
        .cloned()
        .and_then(|p| serde_json::from_value(p).ok());
    let job: Option<RollbackStepOutput> = step_result(d, "job");
    let undo: Option<RollbackStepOutput> = step_result(d, "undo");
    let rollout: Option<RollbackStepOutput> = step_result(d, "rollout");
    let health: Option<HealthObservation> = step_result(d, "health");
    let verified_at: Option<DateTime<Utc>> = d
        .pointer("/verified/at")
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok());
    let migrated = plan
        .as_ref()
        .and_then(|p| p.migration.as_ref())
        .is_none_or(|_| job.as_ref().is_some_and(|j| j.done));
    let passed = input.outcome == Outcome::Succeeded
        && verified_at.is_some()
        && health.as_ref().is_some_and(|h| h.healthy)
        && rollout.as_ref().is_some_and(|r| r.done)
        && migrated;
    let rto = Objective::measure(
        plan.as_ref()
            .map_or(crate::report::RTO_OBJECTIVE_SECONDS, |p| {
                p.rto_objective_seconds
            }),
        (input.outcome == Outcome::Succeeded)
            .then_some(verified_at)
            .flatten()
            .map(|v| (v - input.execution.start_time).num_milliseconds() as f64 / 1000.0),
    );
    let mut warnings = Vec::new();
    if let (Some(p), Some(j)) = (&plan, &job) {
        if j.failed {
            if let Some(m) = &p.migration {
                warnings.push(format!(
                    "the migration job {} failed: the deployment was NOT rolled back (its code still matches the database); read the job's log before anything else",
                    m.job.name
                ));
            }
        }
    }
    if undo.is_some() && !rollout.as_ref().is_some_and(|r| r.done) {
        warnings.push(
            "the rollback was applied but its rollout did not finish: check `kubectl rollout status` and the new pods' events"
                .to_owned(),
        );
    }
    if let Some(e) = d.get("release_error") {
        let (error, cause) = caught_error(e);
        warnings.push(format!(
            "the recovery lock was not released ({error}: {cause}): the next rollback of this deployment takes it over, since this run has ended"
        ));
    }
    RollbackReport {
        scenario: SCENARIO.to_owned(),
        resource: plan.as_ref().map_or_else(
            || {
                let ns = d
                    .pointer("/request/deployment/namespace")
                    .and_then(Value::as_str);
                let name = d
                    .pointer("/request/deployment/name")
                    .and_then(Value::as_str);
                match (ns, name) {
                    (Some(ns), Some(name)) => crate::truncate_message(&format!("{ns}/{name}")),
                    _ => "unknown".to_owned(),
                }
            },
            |p| p.deployment.to_string(),
        ),
        execution_name: input.execution.name.clone(),
        outcome: input.outcome,
        passed,
        started_at: input.execution.start_time,
        finished_at: input.finished_at,
        trigger: plan
            .as_ref()
            .and_then(|p| p.trigger.as_ref())
            .or_else(|| d.pointer("/request/trigger"))
            .map(|t| crate::truncate_message(&t.to_string())),
        rto,
        from: plan.as_ref().map(|p| p.from.clone()),
        to: plan.as_ref().map(|p| p.to.clone()),
        now_revision: rollout
            .as_ref()
            .and_then(|r| r.revision)
            .or(undo.as_ref().and_then(|u| u.revision)),
        migrations_undone: match (&plan, &job) {
            (Some(p), Some(j)) if j.done => p
                .migration
                .as_ref()
                .map(|m| m.unapplies.clone())
                .unwrap_or_default(),
            _ => Vec::new(),
        },
        migration_job: job,
        rollout,
        health,
        warnings,
        // The recorded plan is a fact of the run, not a change.
        changes: changes(
            &journal
                .iter()
                .filter(|e| e.key != "plan")
                .cloned()
                .collect::<Vec<_>>(),
        ),
        timeline: step_timeline(d),
        error: d.get("error").map(caught_error),
    }
}

fn revision_line(r: &AppRevision) -> String {
    format!(
        "revision {} — `{}`{}",
        r.revision,
        r.image,
        r.change_cause
            .as_ref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default()
    )
}

pub fn markdown(r: &RollbackReport) -> String {
    let mut md = format!(
        "# Deployment rollback report: {}\n\n**Result: {}** (outcome: {})\n\n\
         | | |\n|---|---|\n| Execution | `{}` |\n| Started by | {} |\n| Started | {} |\n\
         | Finished | {} |\n| RTO | {} (objective {}) — {} |\n| From | {} |\n| To | {} |\n",
        r.resource,
        if r.passed { "PASSED" } else { "FAILED" },
        r.outcome.as_str(),
        r.execution_name,
        r.trigger.as_deref().unwrap_or("a person"),
        r.started_at.to_rfc3339(),
        r.finished_at.to_rfc3339(),
        seconds(r.rto.achieved_seconds),
        seconds(Some(r.rto.objective_seconds)),
        verdict(r.rto.met),
        r.from
            .as_ref()
            .map_or_else(|| "?".to_owned(), revision_line),
        r.to.as_ref().map_or_else(|| "?".to_owned(), revision_line),
    );
    if let Some(n) = r.now_revision {
        md.push_str(&format!("| Runs now as | revision {n} |\n"));
    }
    if let Some((error, cause)) = &r.error {
        md.push_str(&format!("\n## Error\n\n`{error}`: {cause}\n"));
    }
    if !r.warnings.is_empty() {
        md.push_str("\n## Warnings\n\n");
        for w in &r.warnings {
            md.push_str(&format!("- {w}\n"));
        }
    }
    if let Some(j) = &r.migration_job {
        md.push_str(&format!(
            "\n## Migration rolled back\n\n{}: {}\n",
            if j.done {
                "succeeded"
            } else if j.failed {
                "FAILED"
            } else {
                "not finished"
            },
            j.detail
        ));
        for m in &r.migrations_undone {
            md.push_str(&format!("- undone: `{m}`\n"));
        }
    }
    if let Some(ro) = &r.rollout {
        md.push_str(&format!("\n## Rollout\n\n{}\n", ro.detail));
    }
    if let Some(h) = &r.health {
        md.push_str(&format!("\n## Health verified\n\n{}\n", health_line(h)));
    }
    md.push_str(&changes_and_timeline(&r.changes, &r.timeline));
    md
}

pub type RollbackReportOutput = crate::report::RecoveryReportOutput;

pub async fn rollback_report(
    ports: &Ports,
    input: RollbackReportInput,
) -> DrResult<RollbackReportOutput> {
    let journal = journal_of_details(ports, &input.details).await?;
    let report = build(&input, &journal);
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| DrError::Internal(format!("serializing the report: {e}")))?;
    let md = markdown(&report);
    publish_recovery(
        ports,
        RecoveryDocument {
            scenario: SCENARIO,
            title: format!("deployment rollback of {}", report.resource),
            outcome: report.outcome,
            passed: report.passed,
            started_at: report.started_at,
            execution_name: &report.execution_name,
            rto: &report.rto,
            rpo: &crate::report::RPO_NOT_APPLICABLE,
            json: &json,
            markdown: &md,
            details: &input.details,
        },
        Some(&input.topic_arn),
    )
    .await
}

/// The page of a run whose report failed.
pub fn unreported(d: &Value) -> (String, String) {
    let resource = match (
        d.pointer("/plan/deployment/namespace")
            .and_then(Value::as_str),
        d.pointer("/plan/deployment/name").and_then(Value::as_str),
    ) {
        (Some(ns), Some(name)) => crate::truncate_message(&format!("{ns}/{name}")),
        _ => "the deployment".to_owned(),
    };
    let outcome = d
        .pointer("/conclusion/outcome")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let (error, cause) = d
        .get("report_error")
        .map(caught_error)
        .unwrap_or_else(|| ("an error".to_owned(), String::new()));
    let state = match (
        d.pointer("/steps/undo/result").is_some(),
        d.pointer("/steps/health/result/healthy")
            .and_then(Value::as_bool),
    ) {
        (true, Some(true)) => "the rollback was applied and the health URL answered healthy",
        (true, _) => "the rollback was applied; the health URL was NOT seen healthy",
        (false, _) => "the deployment was not rolled back",
    };
    (
        format!("[MueJam DR] deployment rollback of {resource}: {outcome}, REPORT FAILED"),
        format!(
            "What happened: the rollback of {resource} ended {outcome}, but its report could not \
             be written or sent ({error}: {cause}).\n\nWhere things stand: {state}.\n\n\
             What to do next:\n- read the execution's history and the recovery journal\n- fix \
             the report's cause (bucket, topic, key permissions) so the next run reports"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ExecutionInfo;
    use serde_json::json;

    fn details(job_done: bool, rollout_done: bool, healthy: bool) -> Value {
        let sample: Value = serde_json::from_str(include_str!(
            "../../../../events/functions/rollback-report.json"
        ))
        .expect("sample");
        let mut d = sample["details"].clone();
        d["steps"]["job"]["result"]["done"] = json!(job_done);
        d["steps"]["job"]["result"]["failed"] = json!(!job_done);
        d["steps"]["rollout"]["result"]["done"] = json!(rollout_done);
        d["steps"]["health"]["result"]["healthy"] = json!(healthy);
        d
    }

    fn input(outcome: Outcome, details: Value) -> RollbackReportInput {
        RollbackReportInput {
            execution: ExecutionInfo {
                id: "arn:x".into(),
                name: "rollback-1".into(),
                start_time: "2026-11-28T03:00:00Z".parse().expect("t"),
            },
            outcome,
            details,
            finished_at: "2026-11-28T03:10:00Z".parse().expect("t"),
            topic_arn: "t".into(),
        }
    }

    #[test]
    fn passed_needs_the_migration_the_rollout_and_the_health() {
        // (outcome, job done, rollout done, healthy, passed)
        let cases = [
            (Outcome::Succeeded, true, true, true, true),
            (Outcome::Succeeded, false, true, true, false),
            (Outcome::Succeeded, true, false, true, false),
            (Outcome::Succeeded, true, true, false, false),
            (Outcome::Failed, true, true, true, false),
        ];
        for (outcome, job, rollout, healthy, passed) in cases {
            let r = build(&input(outcome, details(job, rollout, healthy)), &[]);
            assert_eq!(r.passed, passed, "{outcome:?} {job} {rollout} {healthy}");
            assert_eq!(r.migrations_undone.is_empty(), !job);
        }
    }

    #[test]
    fn a_failed_migration_says_the_deployment_was_not_rolled_back() {
        let mut d = details(false, false, false);
        d["steps"].as_object_mut().map(|s| {
            s.remove("undo");
            s.remove("rollout");
            s.remove("health")
        });
        d.as_object_mut().map(|o| o.remove("verified"));
        d["error"] = json!({"Error": "MigrationFailed", "Cause": "job rollback-1-migrate failed"});
        let r = build(&input(Outcome::Failed, d.clone()), &[]);
        assert!(!r.passed);
        assert!(
            r.warnings[0].contains("NOT rolled back"),
            "{:?}",
            r.warnings
        );
        let md = markdown(&r);
        assert!(md.contains("`MigrationFailed`"));
        assert!(md.contains("revision 2 — `muejam-api:2`"), "{md}");
        d["report_error"] = json!({"Error": "Internal", "Cause": "bucket"});
        let (subject, body) = unreported(&d);
        assert!(subject.contains("muejam/muejam-api"));
        assert!(body.contains("not rolled back"));
    }
}
