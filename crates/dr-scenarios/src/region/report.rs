//! The region failover's report: the region evidence, the copy and its age,
//! the approval, the restore's verification against the copy's row counts,
//! every change, RTO and RPO. Always sent to the alerts topic: a region
//! failover (or a refusal to do one) is news for everyone on call.

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::steps::{ConfirmRegionOutput, VerifyRegionRestoreOutput};
use super::{ChosenCopy, RegionMode, RegionPlan};
use crate::report::{
    headline_md, journal_of_details, publish_recovery, Objective, Outcome, RecoveryDocument,
};
use crate::Ports;

pub const SCENARIO: &str = "region-failover";

pub type RegionReportInput = crate::report::RecoveryReportInput;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionReport {
    pub scenario: String,
    pub resource: String,
    pub execution_name: String,
    pub outcome: Outcome,
    pub passed: bool,
    pub mode: Option<RegionMode>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub primary_region: Option<String>,
    pub backup_region: Option<String>,
    pub rto: Objective,
    pub rpo: Objective,
    pub evidence: Vec<String>,
    pub copy: Option<ChosenCopy>,
    pub approval: Option<String>,
    /// Who the question climbed to on the escalation path, when, and who
    /// answered how fast (empty when nobody was asked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation: Vec<String>,
    pub verification: Option<VerifyRegionRestoreOutput>,
    /// Planned mode: rows per table at the moment writes stopped (the final
    /// snapshot's) against the restore's; equal means nothing was lost.
    pub rows_lost: Option<u64>,
    pub new_primary: Option<String>,
    pub warnings: Vec<String>,
    pub changes: Vec<String>,
    pub timeline: Vec<(String, String)>,
    pub error: Option<(String, String)>,
}

fn step<T: serde::de::DeserializeOwned>(details: &Value, name: &str) -> Option<T> {
    details
        .pointer(&format!("/steps/{name}/result"))
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

/// Pure: the report from the execution's data and the journal.
pub fn build(input: &RegionReportInput, journal: &[JournalEntry]) -> RegionReport {
    let d = &input.details;
    let plan: Option<RegionPlan> = d
        .get("plan")
        .cloned()
        .and_then(|p| serde_json::from_value(p).ok());
    let confirm: Option<ConfirmRegionOutput> = step(d, "confirm");
    let copy: Option<ChosenCopy> = d
        .pointer("/steps/copy/result/copy")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok());
    let verification: Option<VerifyRegionRestoreOutput> = step(d, "verify");
    let verified_at: Option<DateTime<Utc>> = d
        .pointer("/verified/at")
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok());
    let succeeded = input.outcome == Outcome::Succeeded && verified_at.is_some();
    let rto_objective = plan
        .as_ref()
        .map_or(crate::report::RTO_OBJECTIVE_SECONDS, |p| {
            p.rto_objective_seconds
        });
    let rpo_objective = plan
        .as_ref()
        .map_or(crate::report::RPO_OBJECTIVE_SECONDS, |p| {
            p.rpo_objective_seconds
        });
    let rto = Objective::measure(
        rto_objective,
        verified_at.map(|v| seconds_between(input.execution.start_time, v)),
    );
    let mode = plan.as_ref().map(|p| p.mode);
    let planned = mode == Some(RegionMode::Planned);
    let rehearsal = mode == Some(RegionMode::Rehearsal);
    let rows_lost = match (planned, &verification, &copy) {
        (true, Some(v), Some(c)) if succeeded && v.baseline_compared => {
            c.row_counts.as_ref().map(|base| {
                base.iter()
                    .map(|(t, n)| n.saturating_sub(v.row_counts.get(t).copied().unwrap_or(0)))
                    .sum()
            })
        }
        _ => None,
    };
    // Unplanned: what was written after the copy's data, up to when the
    // region was found down (an upper bound: it died at or before then).
    // Planned: nothing, when the counts prove it.
    // A rehearsal: the copy's age when chosen, what a region failure would
    // have lost at that moment.
    let rpo_seconds = match (succeeded, planned, &copy, &confirm) {
        (true, _, Some(c), _) if rehearsal => Some(c.age_seconds),
        (true, true, _, _) => rows_lost.filter(|n| *n == 0).map(|_| 0.0),
        (true, false, Some(c), Some(confirm)) => {
            Some(seconds_between(c.data_time, confirm.checked_at).max(0.0))
        }
        _ => None,
    };
    let rpo = Objective::measure(rpo_objective, rpo_seconds);
    let mut warnings = Vec::new();
    if let (Some(p), true, Some(RegionMode::Unplanned)) = (&plan, succeeded, mode) {
        warnings.push(format!(
            "{} and its replicas in {} could not be fenced while the region is down: they are retired in the registry; fence them (quarantine security group) as soon as {} answers, before anything connects to them",
            p.primary, p.primary_region, p.primary_region
        ));
    }
    if let Some(c) = &copy {
        if !c.rpo_met {
            warnings.push(format!(
                "the copy was older than the RPO ({}): snapshot replication fell behind",
                crate::report::seconds(Some(rpo_objective))
            ));
        }
    }
    if d.pointer("/steps/replica/error").is_some() {
        warnings.push(
            "the replica in the backup region was not created: the new primary has none".into(),
        );
    }
    if d.pointer("/steps/fleet/error").is_some()
        || d.pointer("/steps/fleet/result/ready") == Some(&Value::Bool(false))
    {
        warnings
            .push("the application fleet in the backup region did not reach its capacity".into());
    }
    warnings.extend(loose_ends(d, plan.as_ref(), succeeded));
    // A rehearsal passes only once its restore is gone again.
    let discarded = plan.as_ref().is_some_and(|p| {
        d.pointer("/steps/discard/result/deleted")
            .and_then(Value::as_array)
            .is_some_and(|deleted| {
                deleted
                    .iter()
                    .any(|i| i.as_str() == Some(p.restored_instance.as_str()))
            })
    });
    if rehearsal && succeeded && !discarded {
        warnings.push(format!(
            "the rehearsal's restore {} was not deleted: the drill's cleanup deletes it",
            plan.as_ref().map_or_else(
                || "of this run".to_owned(),
                |p| p.restored_instance.to_string()
            )
        ));
    }
    if let Some(v) = &verification {
        if !v.baseline_compared {
            warnings.push(
                "no row counts were recorded for the copy: the restore's counts were not compared"
                    .into(),
            );
        }
    }
    let approval = d.pointer("/steps/approval/result").map(approval_line);
    let mut timeline: Vec<(String, String)> = d
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
    let error = d.get("error").map(|e| {
        (
            e.get("Error")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .to_owned(),
            crate::details::short_cause(e.get("Cause").and_then(Value::as_str).unwrap_or_default()),
        )
    });
    RegionReport {
        scenario: SCENARIO.to_owned(),
        // A refused input has no plan: the request names the database.
        resource: plan.as_ref().map_or_else(
            || {
                d.pointer("/request/database")
                    .and_then(Value::as_str)
                    .map_or_else(|| "unknown".to_owned(), |s| s.chars().take(63).collect())
            },
            |p| p.database.clone(),
        ),
        execution_name: input.execution.name.clone(),
        outcome: input.outcome,
        passed: succeeded
            && verification.as_ref().is_some_and(|v| v.passed)
            && (!rehearsal || discarded),
        mode,
        started_at: input.execution.start_time,
        finished_at: input.finished_at,
        primary_region: plan.as_ref().map(|p| p.primary_region.clone()),
        backup_region: plan.as_ref().map(|p| p.backup_region.clone()),
        rto,
        rpo,
        evidence: match (&plan, confirm) {
            (Some(p), _) if rehearsal => vec![format!(
                "a rehearsal by drill {}: nothing was confirmed, asked or switched; production's lock, writes, fleet, record and registry were not touched; the RTO covers choosing, restoring and verifying the copy",
                p.drill.as_deref().unwrap_or("unknown")
            )],
            (_, confirm) => confirm.map(|c| c.reasons).unwrap_or_default(),
        },
        copy,
        approval,
        escalation: crate::escalation::lines_of(d),
        verification,
        rows_lost,
        new_primary: (succeeded && !rehearsal)
            .then(|| plan.as_ref().map(|p| p.restored_instance.to_string()))
            .flatten(),
        warnings,
        changes: {
            // The discard is not journaled (the sweep runs it without a
            // plan): what it deleted is in its result.
            let mut lines = changes(journal);
            lines.extend(
                d.pointer("/steps/discard/result/mutation")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            );
            lines
        },
        timeline,
        error,
    }
}

/// Pure: the approval as the state keeps it: the answer `drctl
/// approve|reject` sent, or a status (rejected, expired).
/// What a run left undone on its way out, each caught by its state machine
/// and none allowed to pass silently: writes not given back, a restore not
/// discarded, a replica not registered, a lock not released.
pub fn loose_ends(d: &Value, plan: Option<&RegionPlan>, succeeded: bool) -> Vec<String> {
    let cause = |path: &str| {
        d.pointer(path).map(|e| {
            let error = e.get("Error").and_then(Value::as_str).unwrap_or("error");
            let cause = crate::details::short_cause(
                e.get("Cause").and_then(Value::as_str).unwrap_or_default(),
            );
            if cause.is_empty() {
                error.to_owned()
            } else {
                format!("{error}: {cause}")
            }
        })
    };
    let name =
        |f: fn(&RegionPlan) -> String, fallback: &str| plan.map_or_else(|| fallback.to_owned(), f);
    let mut out = Vec::new();
    if let Some(e) = cause("/writes_error") {
        out.push(if succeeded {
            format!(
                "the application's writes were not given back on the new primary {} ({e}): the application is read-only until they are",
                name(|p| p.restored_instance.to_string(), "the new primary")
            )
        } else {
            format!(
                "the writes stopped on {} were not given back ({e}): the application cannot write until they are",
                name(|p| p.primary.to_string(), "the primary")
            )
        });
    }
    if let Some(e) = cause("/discard_error") {
        out.push(format!(
            "the restore {} in {} was not deleted ({e}): the sweep at the run's end deletes it; if it remains, delete it (it is tagged ephemeral)",
            name(|p| p.restored_instance.to_string(), "of this run"),
            name(|p| p.backup_region.clone(), "the backup region")
        ));
    }
    if let Some(e) = cause("/replica_topology_error") {
        out.push(format!(
            "the replica {} was created but the topology registry does not list it ({e}): a database failover would not find it",
            name(|p| p.new_replica.to_string(), "of this run")
        ));
    }
    if let Some(e) = cause("/release_error") {
        out.push(format!(
            "the recovery lock on {} was not released ({e}): the next recovery of it takes it over, since this run has ended",
            name(|p| p.database.clone(), "the database")
        ));
    }
    out
}

/// The page of a run whose report failed: the report is the page, so this
/// says what the execution's data shows (where the record points, what was
/// left undone) and where the rest is.
pub fn unreported(d: &Value) -> (String, String) {
    let plan: Option<RegionPlan> = d
        .get("plan")
        .cloned()
        .and_then(|p| serde_json::from_value(p).ok());
    let database = plan
        .as_ref()
        .map_or_else(|| "the database".to_owned(), |p| p.database.clone());
    let outcome = d
        .pointer("/conclusion/outcome")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let switched = d.pointer("/steps/dns/result").is_some();
    let verified = d.pointer("/verified/at").is_some();
    let report_error = d
        .pointer("/report_error/Error")
        .and_then(Value::as_str)
        .unwrap_or("an error");
    let cause = crate::details::short_cause(
        d.pointer("/report_error/Cause")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    let record = plan.as_ref().map_or_else(
        || "the database record".to_owned(),
        |p| p.dns.record_name.clone(),
    );
    let state = match (&plan, switched, verified) {
        (Some(p), true, true) => format!(
            "{record} points at {} in {}, verified",
            p.restored_instance, p.backup_region
        ),
        (Some(p), true, false) => format!(
            "{record} points at {} in {}, NOT verified after the switch",
            p.restored_instance, p.backup_region
        ),
        _ => format!("{record} was not switched"),
    };
    let loose = loose_ends(d, plan.as_ref(), outcome == "succeeded" && verified);
    let loose_text = if loose.is_empty() {
        String::new()
    } else {
        format!(
            "\nLeft undone:\n{}\n",
            loose
                .iter()
                .map(|w| format!("- {w}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    (
        format!("[MueJam DR] region failover of {database}: {outcome}, REPORT FAILED"),
        format!(
            "What happened: the region failover of {database} ended {outcome}, but its report \
             could not be written or sent ({report_error}: {cause}).\n\n\
             Where things stand: {state}.\n{loose_text}\n\
             What to do next:\n- read the execution's history (the console, or drctl) and the \
             recovery journal (every change, by recovery id {})\n- fix the report's cause \
             (bucket, topic, key permissions) so the next run reports",
            plan.as_ref().map_or("?", |p| p.recovery_id.as_str())
        ),
    )
}

pub fn approval_line(a: &Value) -> String {
    let by = a
        .get("by")
        .or_else(|| a.pointer("/answer/by"))
        .and_then(Value::as_str)
        .map(|b| format!(" by {b}"))
        .unwrap_or_default();
    let reason = a
        .get("reason")
        .or_else(|| a.pointer("/answer/reason"))
        .and_then(Value::as_str)
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let status = match a.get("approved").and_then(Value::as_bool) {
        Some(true) => "approved",
        Some(false) => "rejected",
        None => a.get("status").and_then(Value::as_str).unwrap_or("unknown"),
    };
    format!("{status}{by}{reason}")
}

/// Pure: every change the journal holds, one line each; a step begun and
/// never finished is listed as such (the run may have died in it).
pub fn changes(journal: &[JournalEntry]) -> Vec<String> {
    journal
        .iter()
        .filter(|e| {
            e.status != JournalStatus::Started
                || !journal.iter().any(|later| {
                    later.key == e.key && later.at >= e.at && later.status != JournalStatus::Started
                })
        })
        .map(|e| match e.status {
            JournalStatus::Done => format!("{} ({})", e.summary, e.at.to_rfc3339()),
            JournalStatus::Failed => format!("FAILED: {} ({})", e.summary, e.at.to_rfc3339()),
            JournalStatus::Started => {
                format!("BEGUN, NOT FINISHED: {} ({})", e.summary, e.at.to_rfc3339())
            }
        })
        .collect()
}

pub fn markdown(r: &RegionReport) -> String {
    let regions = format!(
        "| Regions | {} → {} ({}) |\n",
        r.primary_region.as_deref().unwrap_or("?"),
        r.backup_region.as_deref().unwrap_or("?"),
        match r.mode {
            Some(RegionMode::Planned) => "planned evacuation",
            Some(RegionMode::Rehearsal) => "the drill's rehearsal: restore and verify only",
            _ => "region failure",
        }
    );
    let mut md = headline_md(
        "Region failover",
        &r.resource,
        r.passed,
        r.outcome,
        &r.execution_name,
        r.started_at,
        r.finished_at,
        &r.rto,
        &r.rpo,
        &regions,
        r.error.as_ref().map(|(e, c)| (e.as_str(), c.as_str())),
    );
    if let Some(primary) = &r.new_primary {
        md.push_str(&format!("\nNew primary: **{primary}**\n"));
    }
    if !r.warnings.is_empty() {
        md.push_str("\n## Warnings\n\n");
        for w in &r.warnings {
            md.push_str(&format!("- {w}\n"));
        }
    }
    md.push_str("\n## Region evidence\n\n");
    for reason in &r.evidence {
        md.push_str(&format!("- {reason}\n"));
    }
    if let Some(c) = &r.copy {
        md.push_str(&format!(
            "\n## Copy restored\n\n`{}`, data as of {} ({} old when chosen; RPO {})\n",
            c.snapshot_id,
            c.data_time.to_rfc3339(),
            crate::report::seconds(Some(c.age_seconds)),
            if c.rpo_met { "met" } else { "MISSED" }
        ));
    }
    if let Some(a) = &r.approval {
        md.push_str(&format!("\n## Approval\n\n{a}\n"));
    }
    if !r.escalation.is_empty() {
        md.push_str("\n## Escalation\n\n");
        for line in &r.escalation {
            md.push_str(&format!("- {line}\n"));
        }
    }
    if let Some(v) = &r.verification {
        md.push_str(&format!(
            "\n## Verification of the restore\n\n{}; {} checks; row counts {}\n",
            if v.passed { "passed" } else { "FAILED" },
            v.checks_run,
            if v.baseline_compared {
                "equal to the copy's, table by table"
            } else {
                "not compared (none recorded)"
            }
        ));
        for p in &v.problems {
            md.push_str(&format!("- {p}\n"));
        }
    }
    if let Some(lost) = r.rows_lost {
        md.push_str(&format!(
            "\nRows lost: **{lost}** (the restore's counts against the counts when writes stopped)\n"
        ));
    }
    md.push_str("\n## Changes made\n\n");
    if r.changes.is_empty() {
        md.push_str("- none\n");
    }
    for change in &r.changes {
        md.push_str(&format!("- {change}\n"));
    }
    md.push_str("\n## Timeline\n\n| Started | Step |\n|---|---|\n");
    for (at, name) in &r.timeline {
        md.push_str(&format!("| {at} | {name} |\n"));
    }
    md
}

/// What the report step returns.
pub type RegionReportOutput = crate::report::RecoveryReportOutput;

pub async fn region_report(
    ports: &Ports,
    input: RegionReportInput,
) -> DrResult<RegionReportOutput> {
    let journal = journal_of_details(ports, &input.details).await?;
    let report = build(&input, &journal);
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| DrError::Internal(format!("serializing the report: {e}")))?;
    let md = markdown(&report);
    publish_recovery(
        ports,
        RecoveryDocument {
            scenario: SCENARIO,
            title: if report.mode == Some(RegionMode::Rehearsal) {
                format!("region restore rehearsal of {}", report.resource)
            } else {
                format!("region failover of {}", report.resource)
            },
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
        Some(&input.topic_arn),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ExecutionInfo;
    use serde_json::json;

    fn input(outcome: Outcome, mode: &str, details: Value) -> RegionReportInput {
        let mut plan: Value = serde_json::from_str(include_str!(
            "../../../../events/functions/region-restore.json"
        ))
        .expect("sample");
        plan["plan"]["mode"] = json!(mode);
        let mut details = details;
        details["plan"] = plan["plan"].take();
        RegionReportInput {
            execution: ExecutionInfo {
                id: "arn:x".into(),
                name: "region-1".into(),
                start_time: "2026-11-27T03:00:00Z".parse().expect("t"),
            },
            outcome,
            details,
            finished_at: "2026-11-27T03:50:00Z".parse().expect("t"),
            topic_arn: "t".into(),
        }
    }

    fn steps(rows_restored: u64) -> Value {
        json!({
            "steps": {
                "confirm": {"started_at": "2026-11-27T03:00:05Z", "result": {
                    "decision": "region_down", "reasons": ["the region is down"],
                    "evidence": {
                        "primary_instance": {"kind": "silent", "detail": "x"},
                        "primary_listing": {"kind": "silent", "detail": "x"},
                        "endpoint": {"kind": "silent", "detail": "x"},
                        "backup": {"kind": "answered", "detail": "x"}},
                    "checked_at": "2026-11-27T03:00:10Z"}},
                "copy": {"started_at": "2026-11-27T03:00:11Z", "result": {"copy": {
                    "snapshot_id": "dr-copy-s1", "data_time": "2026-11-27T01:00:10Z",
                    "age_seconds": 7200.0, "rpo_met": true, "row_counts": {"users": 10, "stories": 5}}}},
                "verify": {"started_at": "2026-11-27T03:30:00Z", "result": {
                    "passed": true, "problems": [], "row_counts": {"users": 10, "stories": rows_restored},
                    "baseline_compared": true, "checks_run": 12}},
                "approval": {"started_at": "2026-11-27T03:01:00Z", "result": {
                    "approved": true, "by": "alice", "at": "2026-11-27T03:05:00Z", "reason": "go"}}
            },
            "verified": {"at": "2026-11-27T03:40:00Z"}
        })
    }

    #[test]
    fn rto_rpo_and_the_rows_lost_come_from_what_was_measured() {
        let cases = [
            // (outcome, mode, stories restored, passed, RTO, RPO, rows lost)
            (
                Outcome::Succeeded,
                "unplanned",
                5,
                true,
                Some(2400.0),
                Some(7200.0),
                None,
            ),
            (
                Outcome::Succeeded,
                "planned",
                5,
                true,
                Some(2400.0),
                Some(0.0),
                Some(0),
            ),
            (
                Outcome::Succeeded,
                "planned",
                4,
                true,
                Some(2400.0),
                None,
                Some(1),
            ),
            (Outcome::Failed, "unplanned", 5, false, None, None, None),
            (Outcome::Rejected, "unplanned", 5, false, None, None, None),
        ];
        for (outcome, mode, restored, passed, rto, rpo, lost) in cases {
            let mut details = steps(restored);
            if outcome != Outcome::Succeeded {
                details.as_object_mut().expect("object").remove("verified");
            }
            let report = build(&input(outcome, mode, details), &[]);
            let what = format!("{outcome:?} {mode} {restored}");
            assert_eq!(report.passed, passed, "{what}");
            assert_eq!(report.rto.achieved_seconds, rto, "{what}");
            assert_eq!(report.rpo.achieved_seconds, rpo, "{what}");
            assert_eq!(report.rows_lost, lost, "{what}");
            // Not measured never counts as met.
            assert_eq!(
                report.rpo.is_met(),
                rpo.is_some_and(|r| r <= 21_600.0),
                "{what}"
            );
        }
    }

    #[test]
    fn a_rehearsal_passes_once_its_verified_restore_is_deleted_again() {
        let rehearsal = |deleted: Value, verified: bool| {
            let mut details = steps(5);
            if !verified {
                details.as_object_mut().map(|d| d.remove("verified"));
            }
            details["steps"]["discard"] = json!({"result": {"deleted": deleted}});
            let mut input = input(Outcome::Succeeded, "rehearsal", details);
            input.details["plan"]["drill"] = json!("drill-1");
            input.details["plan"]["restored_instance"] =
                json!("drill-muejam-db-prod-drill1-region");
            build(&input, &[])
        };
        let restore = json!(["drill-muejam-db-prod-drill1-region"]);
        let passed = rehearsal(restore.clone(), true);
        assert!(passed.passed, "{passed:#?}");
        // RTO: start to the restore verified; RPO: the copy's age when chosen.
        assert_eq!(passed.rto.achieved_seconds, Some(2400.0));
        assert_eq!(passed.rpo.achieved_seconds, Some(7200.0));
        assert_eq!(passed.new_primary, None);
        assert!(passed.evidence[0].contains("rehearsal by drill drill-1"));
        assert!(markdown(&passed).contains("rehearsal: restore and verify only"));
        let kept = rehearsal(json!([]), true);
        assert!(!kept.passed);
        assert!(kept.warnings.iter().any(|w| w.contains("was not deleted")));
        let unverified = rehearsal(restore, false);
        assert!(!unverified.passed);
        assert_eq!(unverified.rto.achieved_seconds, None);
        assert_eq!(unverified.rpo.achieved_seconds, None);
    }

    #[test]
    fn the_approval_and_the_changes_read_as_a_person_would_say_them() {
        let cases = [
            (
                json!({"approved": true, "by": "alice", "reason": "go"}),
                "approved by alice: go",
            ),
            (
                json!({"approved": false, "by": "bob", "reason": "wait"}),
                "rejected by bob: wait",
            ),
            (json!({"status": "rejected"}), "rejected"),
            (json!({"status": "expired", "answer": null}), "expired"),
        ];
        for (answer, expected) in cases {
            assert_eq!(approval_line(&answer), expected);
        }
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("t");
        let entry = |key: &str, t: &str, status, summary: &str| JournalEntry {
            recovery_id: "r".into(),
            key: key.into(),
            execution: "e".into(),
            at: at(t),
            status,
            summary: summary.into(),
            detail: None,
        };
        let journal = [
            entry(
                "restore",
                "2026-11-27T03:10:00Z",
                JournalStatus::Started,
                "restoring",
            ),
            entry(
                "restore",
                "2026-11-27T03:20:00Z",
                JournalStatus::Done,
                "restored",
            ),
            entry(
                "dns",
                "2026-11-27T03:35:00Z",
                JournalStatus::Started,
                "switching",
            ),
        ];
        let lines = changes(&journal);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("restored"));
        assert!(lines[1].starts_with("BEGUN, NOT FINISHED: switching"));
    }

    #[test]
    fn every_loose_end_a_run_leaves_is_a_warning() {
        let plan: RegionPlan = serde_json::from_value(
            input(Outcome::Succeeded, "planned", json!({})).details["plan"].clone(),
        )
        .expect("plan");
        let error = json!({"Error": "Unsafe", "Cause": "{\"errorMessage\": \"boom\"}"});
        // (where the state machine put the error, the run succeeded, what the warning says)
        let table = [
            (
                "writes_error",
                true,
                "writes were not given back on the new primary",
            ),
            (
                "writes_error",
                false,
                "the application cannot write until they are",
            ),
            ("discard_error", false, "was not deleted"),
            (
                "replica_topology_error",
                true,
                "the topology registry does not list it",
            ),
            (
                "release_error",
                true,
                "the recovery lock on muejam was not released",
            ),
        ];
        for (key, succeeded, says) in table {
            let mut details = json!({});
            details[key] = error.clone();
            let warnings = loose_ends(&details, Some(&plan), succeeded);
            assert_eq!(warnings.len(), 1, "{key}: {warnings:?}");
            assert!(warnings[0].contains(says), "{key}: {}", warnings[0]);
            assert!(warnings[0].contains("Unsafe"), "{key}: the error is named");
        }
        // Nothing left undone: no warning; no plan (a refused input): still said.
        assert!(loose_ends(&json!({}), Some(&plan), true).is_empty());
        let warnings = loose_ends(&json!({"release_error": error}), None, false);
        assert!(warnings[0].contains("the database"), "{warnings:?}");
    }

    #[test]
    fn a_run_whose_report_failed_pages_where_things_stand() {
        let error = json!({"Error": "Unavailable", "Cause": "{\"errorMessage\": \"S3 is down\"}"});
        let base = input(Outcome::Succeeded, "unplanned", json!({})).details;
        // (switched, verified, outcome, what the page says about the record)
        let table = [
            (
                true,
                true,
                "succeeded",
                "db.muejam.internal points at muejam-db-prod-r1 in us-west-2, verified",
            ),
            (true, false, "failed", "NOT verified after the switch"),
            (
                false,
                false,
                "not_approved",
                "db.muejam.internal was not switched",
            ),
        ];
        for (switched, verified, outcome, says) in table {
            let mut d = base.clone();
            d["conclusion"] = json!({"outcome": outcome});
            d["report_error"] = error.clone();
            d["release_error"] = error.clone();
            if switched {
                d["steps"] = json!({"dns": {"result": {}}});
            }
            if verified {
                d["verified"] = json!({"at": "2026-11-27T03:40:00Z"});
            }
            let (subject, body) = unreported(&d);
            assert_eq!(
                subject,
                format!("[MueJam DR] region failover of muejam: {outcome}, REPORT FAILED")
            );
            assert!(body.contains(says), "{outcome}: {body}");
            assert!(body.contains("(Unavailable: S3 is down)"), "{body}");
            assert!(
                body.contains("the recovery lock on muejam was not released"),
                "{body}"
            );
            assert!(
                body.contains("region-2026-11-27"),
                "the recovery id: {body}"
            );
        }
    }
}
