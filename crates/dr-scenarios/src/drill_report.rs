//! The drill's report: each test per database with its status, reason and
//! duration; restore time (RTO evidence) and backup age (RPO evidence)
//! against the objectives; the change since the previous drill.

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::drill::{TestResult, TestStatus};
use crate::report::{
    default_rpo, default_rto, publish, seconds, verdict, ExecutionInfo, Objective, Published,
    ReportDocument,
};
use crate::Ports;

/// The newest drill's report, read by the next drill (a copy: the evidence
/// pack skips it).
pub const LATEST_KEY: &str = "dr-drill/latest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseResult {
    pub database: String,
    pub tests: Vec<TestResult>,
    /// Whether every drill resource of this database is gone.
    pub cleanup_clean: bool,
    #[serde(default)]
    pub cleanup_detail: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillReportInput {
    pub drill_id: String,
    pub execution: ExecutionInfo,
    /// One entry per database, as the Map produced them.
    pub results: Vec<Value>,
    #[serde(default)]
    pub runbook: Value,
    /// The drill-wide cleanup: whether anything tagged for this drill is left.
    #[serde(default)]
    pub final_cleanup: Value,
    /// What earlier drills had left behind, removed before this one began.
    #[serde(default)]
    pub earlier_leftovers: Value,
    pub finished_at: DateTime<Utc>,
    #[serde(default)]
    pub topic_arn: Option<String>,
    #[serde(default = "default_rto")]
    pub rto_objective_seconds: f64,
    #[serde(default = "default_rpo")]
    pub rpo_objective_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillReport {
    pub drill_id: String,
    pub execution_name: String,
    pub overall_status: String,
    pub passed: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub databases: Vec<DatabaseResult>,
    pub runbook_items: Vec<TestResult>,
    pub manual_review: Vec<String>,
    /// Longest restore of the drill: what a real restore would take (RTO evidence).
    pub restore_time: Objective,
    /// Oldest newest-backup: the data a restore would lose (RPO evidence).
    pub backup_age: Objective,
    /// Nothing tagged for this drill is left (checked after every database).
    pub cleanup_verified: bool,
    /// What is still tagged for this drill, if anything.
    pub leftovers: Vec<String>,
    /// Instances earlier drills left behind (killed before their cleanup),
    /// removed before this drill began.
    #[serde(default)]
    pub earlier_leftovers_removed: Vec<String>,
    /// Instances tagged by earlier drills that could not be removed (not
    /// made by a drill): for a person to look at.
    #[serde(default)]
    pub earlier_leftovers_remaining: Vec<String>,
    pub changes_since_previous: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillReportOutput {
    pub passed: bool,
    pub overall_status: String,
    pub json_location: String,
    pub markdown_location: String,
    pub message_id: Option<String>,
}

/// Reads one database's entry from the Map output: its tests under
/// `tests.*` and its cleanup under `cleanup`.
fn database_result(entry: &Value) -> DatabaseResult {
    let database = entry["database"].as_str().unwrap_or("unknown").to_owned();
    let mut tests: Vec<TestResult> = ["backup", "restore", "failover", "corruption", "region"]
        .iter()
        .filter_map(|k| entry.pointer(&format!("/tests/{k}")))
        .filter_map(|t| serde_json::from_value(t.clone()).ok())
        .collect();
    let expected = [
        "backup_verification",
        "restore_test",
        "failover_test",
        "corruption_test",
        crate::drill::REGION_TEST,
    ];
    for name in expected {
        if !tests.iter().any(|t| t.name == name) {
            tests.push(TestResult {
                name: name.to_owned(),
                status: TestStatus::Skipped,
                reason: Some(
                    entry["error"]["Cause"]
                        .as_str()
                        .map(|c| format!("not run: the drill stopped earlier ({c})"))
                        .unwrap_or_else(|| "not run: an earlier test failed".to_owned()),
                ),
                duration_seconds: 0.0,
                details: json!({}),
            });
        }
    }
    tests.sort_by_key(|t| expected.iter().position(|n| *n == t.name).unwrap_or(99));
    let cleanup = entry.get("cleanup").cloned().unwrap_or_default();
    DatabaseResult {
        database,
        cleanup_clean: cleanup["clean"].as_bool().unwrap_or(false),
        cleanup_detail: cleanup,
        tests,
    }
}

fn evidence(objective: f64, measured: Option<f64>) -> Objective {
    Objective {
        objective_seconds: objective,
        achieved_seconds: measured,
        met: measured.map(|m| m <= objective),
    }
}

fn max(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.fold(None, |acc, v| Some(acc.map_or(v, |a: f64| a.max(v))))
}

pub fn build(input: &DrillReportInput, previous: Option<&DrillReport>) -> DrillReport {
    let databases: Vec<DatabaseResult> = input.results.iter().map(database_result).collect();
    let runbook_items: Vec<TestResult> = input.runbook["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| serde_json::from_value(t.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    let manual_review = input.runbook["manual"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let restore_seconds = max(databases.iter().flat_map(|d| {
        d.tests
            .iter()
            .filter(|t| t.name == "restore_test")
            .filter_map(|t| t.details["restore_seconds"].as_f64())
    }));
    let backup_age = max(databases.iter().flat_map(|d| {
        d.tests
            .iter()
            .filter(|t| t.name == "backup_verification")
            .filter_map(|t| t.details["age_seconds"].as_f64())
    }));
    let restore_time = evidence(input.rto_objective_seconds, restore_seconds);
    let backup_age = evidence(input.rpo_objective_seconds, backup_age);
    let cleanup_verified = input.final_cleanup["clean"].as_bool().unwrap_or(false);
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let leftovers = names(&input.final_cleanup["remaining"]);
    let earlier_leftovers_removed = names(&input.earlier_leftovers["deleted"]);
    let earlier_leftovers_remaining = names(&input.earlier_leftovers["remaining"]);
    let passed = !databases.is_empty()
        && cleanup_verified
        && databases
            .iter()
            .all(|d| d.cleanup_clean && d.tests.iter().all(|t| t.status == TestStatus::Successful))
        && runbook_items
            .iter()
            .all(|t| t.status != TestStatus::Failed && t.status != TestStatus::TimedOut)
        // Not measured never counts as met.
        && restore_time.met == Some(true)
        && backup_age.met == Some(true);
    let mut changes = Vec::new();
    if let Some(previous) = previous {
        if previous.passed != passed {
            changes.push(format!(
                "overall: {} → {}",
                previous.overall_status,
                if passed { "PASSED" } else { "FAILED" }
            ));
        }
        for db in &databases {
            for test in &db.tests {
                let before = previous
                    .databases
                    .iter()
                    .find(|p| p.database == db.database)
                    .and_then(|p| p.tests.iter().find(|t| t.name == test.name));
                if let Some(before) = before {
                    if before.status != test.status {
                        changes.push(format!(
                            "{} {}: {:?} → {:?}",
                            db.database, test.name, before.status, test.status
                        ));
                    }
                }
            }
        }
        if let (Some(now), Some(then)) = (
            restore_time.achieved_seconds,
            previous.restore_time.achieved_seconds,
        ) {
            changes.push(format!(
                "restore time: {then:.1} s → {now:.1} s ({:+.1} s)",
                now - then
            ));
        }
        if changes.is_empty() {
            changes.push("no change in results".to_owned());
        }
    } else {
        changes.push("no previous drill report".to_owned());
    }
    DrillReport {
        drill_id: input.drill_id.clone(),
        execution_name: input.execution.name.clone(),
        overall_status: if passed { "PASSED" } else { "FAILED" }.to_owned(),
        passed,
        started_at: input.execution.start_time,
        finished_at: input.finished_at,
        databases,
        runbook_items,
        manual_review,
        restore_time,
        backup_age,
        cleanup_verified,
        leftovers,
        earlier_leftovers_removed,
        earlier_leftovers_remaining,
        changes_since_previous: changes,
    }
}

fn status_text(status: TestStatus) -> &'static str {
    match status {
        TestStatus::Successful => "SUCCESSFUL",
        TestStatus::Failed => "FAILED",
        TestStatus::TimedOut => "TIMED_OUT",
        TestStatus::Skipped => "SKIPPED",
    }
}

pub fn markdown(report: &DrillReport) -> String {
    let mut md = format!(
        "# Quarterly DR drill: {}\n\n**Overall: {}**\n\n| | |\n|---|---|\n| Drill | `{}` |\n| Started | {} |\n| Finished | {} |\n\
         | Restore time (RTO evidence) | {} (objective {}) — {} |\n| Backup age (RPO evidence) | {} (objective {}) — {} |\n",
        report.overall_status,
        report.overall_status,
        report.drill_id,
        report.started_at.to_rfc3339(),
        report.finished_at.to_rfc3339(),
        seconds(report.restore_time.achieved_seconds),
        seconds(Some(report.restore_time.objective_seconds)),
        verdict(report.restore_time.met),
        seconds(report.backup_age.achieved_seconds),
        seconds(Some(report.backup_age.objective_seconds)),
        verdict(report.backup_age.met),
    );
    for db in &report.databases {
        md.push_str(&format!(
            "\n## {}\n\n| Test | Status | Duration | Notes |\n|---|---|---|---|\n",
            db.database
        ));
        for t in &db.tests {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                t.name,
                status_text(t.status),
                seconds(Some(t.duration_seconds)),
                t.reason.as_deref().unwrap_or("").replace('|', "\\|")
            ));
        }
        md.push_str(&format!(
            "| cleanup | {} | | {} |\n",
            if db.cleanup_clean {
                "SUCCESSFUL"
            } else {
                "FAILED"
            },
            db.cleanup_detail["deleted"]
                .as_array()
                .map(|d| format!(
                    "deleted {}",
                    d.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .unwrap_or_else(|| "did not run".to_owned())
        ));
    }
    let rehearsals = rehearsal_lines(&serde_json::to_value(report).unwrap_or_default());
    if !rehearsals.is_empty() {
        md.push_str("\n## Rehearsed workflows\n\n");
        for line in rehearsals {
            md.push_str(&format!("- {line}\n"));
        }
    }
    md.push_str("\n## Cleanup check\n\n");
    if report.cleanup_verified {
        md.push_str("- nothing tagged for this drill is left\n");
    } else if report.leftovers.is_empty() {
        md.push_str(
            "- FAILED: the drill-wide cleanup could not run; check for drill-… instances by hand\n",
        );
    } else {
        md.push_str(&format!(
            "- FAILED: still tagged for this drill and not removed (the drill deletes only the drill-… instances it made): {}\n",
            report.leftovers.join(", ")
        ));
    }
    md.push_str("\n## Leftovers of earlier drills\n\n");
    if report.earlier_leftovers_removed.is_empty() && report.earlier_leftovers_remaining.is_empty()
    {
        md.push_str("- none\n");
    }
    if !report.earlier_leftovers_removed.is_empty() {
        md.push_str(&format!(
            "- removed before this drill began (an earlier drill ended before its cleanup): {}\n",
            report.earlier_leftovers_removed.join(", ")
        ));
    }
    if !report.earlier_leftovers_remaining.is_empty() {
        md.push_str(&format!(
            "- tagged by an earlier drill but not made by one, left for a person: {}\n",
            report.earlier_leftovers_remaining.join(", ")
        ));
    }
    md.push_str("\n## Runbook review\n\n");
    for item in &report.runbook_items {
        md.push_str(&format!(
            "- {}: {}{}\n",
            item.name,
            status_text(item.status),
            item.reason
                .as_deref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        ));
    }
    for manual in &report.manual_review {
        md.push_str(&format!("- MANUAL: {manual}\n"));
    }
    md.push_str("\n## Since the previous drill\n\n");
    for change in &report.changes_since_previous {
        md.push_str(&format!("- {change}\n"));
    }
    md
}

/// CloudWatch Embedded Metric Format, printed where Lambda turns stdout into
/// logs (and so metrics); elsewhere stdout belongs to the caller.
/// Pure: one line per workflow the drill rehearsed (a test whose details
/// name its `workflow`): the database, the run, its outcome, RTO, RPO, the
/// rows it lost, and the definition it ran against the deployed one.
pub fn rehearsal_lines(report: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    for db in report["databases"].as_array().into_iter().flatten() {
        for test in db["tests"].as_array().into_iter().flatten() {
            let d = &test["details"];
            let Some(workflow) = d["workflow"].as_str() else {
                continue;
            };
            let digest = |key: &str| d[key].as_str().map(|h| h.get(..12).unwrap_or(h).to_owned());
            let definition = match (digest("definition_sha256"), digest("deployed_sha256")) {
                (Some(ran), Some(deployed)) if ran == deployed => {
                    format!("definition sha256 {ran}… = deployed")
                }
                (Some(ran), Some(deployed)) => {
                    format!("definition sha256 {ran}… ≠ deployed {deployed}…")
                }
                _ => "definition not read".to_owned(),
            };
            let region = d["backup_region"].as_str();
            let lost = match (d["rows_lost"].as_u64(), d["rows_written"].as_u64()) {
                _ if region.is_some() => if test["status"] == "SUCCESSFUL" {
                    "restored, verified against the copy's row counts and deleted; RPO is the copy's age"
                } else {
                    "see the test's reason"
                }
                .to_owned(),
                (Some(lost), Some(written)) => format!(
                    "{lost} of {written} marker rows lost{}",
                    if d["in_flight_lost"] == true {
                        " (the one written just before the failure)"
                    } else if d["after_damage_discarded"] == true {
                        "; the one written after the damage discarded with it"
                    } else {
                        ""
                    }
                ),
                _ => "rows lost not measured".to_owned(),
            };
            lines.push(format!(
                "{} {workflow} on {} (`{}`): {} — {}; RTO {}, RPO {}; {lost}; {definition}",
                db["database"].as_str().unwrap_or("?"),
                match region {
                    Some(region) => format!("production's newest copy in {region}"),
                    None => d["copy"].as_str().unwrap_or("its copy").to_owned(),
                },
                d["execution"].as_str().unwrap_or("?"),
                test["status"].as_str().unwrap_or("?"),
                d["outcome"].as_str().unwrap_or("no outcome"),
                seconds(d["rto_seconds"].as_f64()),
                seconds(d["rpo_seconds"].as_f64()),
            ));
        }
    }
    lines
}

fn emit_metrics(report: &DrillReport) {
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none() {
        return;
    }
    let mut document = json!({
        "_aws": {
            "Timestamp": dr_core::clock::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "MueJam/DR",
                "Dimensions": [["Scenario"]],
                "Metrics": [
                    {"Name": "DrillStatus", "Unit": "None"},
                    {"Name": "RestoreSeconds", "Unit": "Seconds"},
                    {"Name": "DataLossSeconds", "Unit": "Seconds"}
                ]
            }]
        },
        "Scenario": "dr-drill",
        "DrillStatus": if report.passed { 1 } else { 0 },
    });
    if let Some(s) = report.restore_time.achieved_seconds {
        document["RestoreSeconds"] = json!(s);
    }
    if let Some(s) = report.backup_age.achieved_seconds {
        document["DataLossSeconds"] = json!(s);
    }
    println!("{document}");
}

pub async fn drill_report(ports: &Ports, input: DrillReportInput) -> DrResult<DrillReportOutput> {
    let previous: Option<DrillReport> = ports
        .reports
        .get(LATEST_KEY)
        .await?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let report = build(&input, previous.as_ref());
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| DrError::Internal(format!("rendering the report: {e}")))?;
    ports
        .reports
        .put(LATEST_KEY, "application/json", &json)
        .await?;
    emit_metrics(&report);
    let subject = format!(
        "[MueJam DR] Quarterly drill {}: restore {}, backup age {}",
        report.overall_status,
        seconds(report.restore_time.achieved_seconds),
        seconds(report.backup_age.achieved_seconds)
    );
    let Published {
        json_location,
        markdown_location,
        message_id,
    } = publish(
        ports,
        &ReportDocument {
            scenario: "dr-drill",
            started_at: report.started_at,
            execution_name: &report.execution_name,
            json: &json,
            markdown: &markdown(&report),
            passed: report.passed,
        },
        input.topic_arn.as_deref(),
        subject,
    )
    .await?;
    Ok(DrillReportOutput {
        passed: report.passed,
        overall_status: report.overall_status,
        json_location,
        markdown_location,
        message_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{RPO_OBJECTIVE_SECONDS, RTO_OBJECTIVE_SECONDS};

    fn test(name: &str, status: &str, details: Value) -> Value {
        json!({"name": name, "status": status, "reason": null, "duration_seconds": 1.0, "details": details})
    }

    fn input(restore_status: &str) -> DrillReportInput {
        DrillReportInput {
            drill_id: "d1".to_owned(),
            execution: ExecutionInfo {
                id: "arn".into(),
                name: "d1".into(),
                start_time: "2026-11-26T02:00:00Z".parse().expect("ts"),
            },
            results: vec![json!({
                "database": "muejam-db-prod",
                "tests": {
                    "backup": test("backup_verification", "SUCCESSFUL", json!({"age_seconds": 600.0})),
                    "restore": test("restore_test", restore_status, json!({"restore_seconds": 42.0})),
                    "failover": test("failover_test", "SUCCESSFUL", json!({"rows_lost": 0})),
                    "corruption": test("corruption_test", "SUCCESSFUL", json!({"rows_lost": 0})),
                    "region": test("region_restore_test", "SUCCESSFUL", json!({"backup_region": "us-west-2"}))
                },
                "cleanup": {"clean": true, "deleted": ["drill-muejam-db-prod-d1"], "remaining": []}
            })],
            runbook: json!({"items": [test("alerts_topic_has_a_confirmed_subscriber", "SUCCESSFUL", json!({}))], "manual": ["check contacts"]}),
            final_cleanup: json!({"clean": true, "deleted": [], "remaining": []}),
            earlier_leftovers: json!({"clean": true, "deleted": [], "remaining": []}),
            finished_at: "2026-11-26T02:10:00Z".parse().expect("ts"),
            topic_arn: None,
            rto_objective_seconds: RTO_OBJECTIVE_SECONDS,
            rpo_objective_seconds: RPO_OBJECTIVE_SECONDS,
        }
    }

    #[test]
    fn all_successful_passes_with_restore_and_backup_evidence() {
        let report = build(&input("SUCCESSFUL"), None);
        assert!(report.passed);
        assert_eq!(report.restore_time.achieved_seconds, Some(42.0));
        assert_eq!(report.backup_age.achieved_seconds, Some(600.0));
        let md = markdown(&report);
        assert!(md.contains("**Overall: PASSED**"));
        assert!(md.contains("| restore_test | SUCCESSFUL | 1.0 s |"), "{md}");
        assert!(md.contains("- MANUAL: check contacts"));
    }

    #[test]
    fn a_failed_test_fails_the_drill_and_the_change_is_reported() {
        let previous = build(&input("SUCCESSFUL"), None);
        let report = build(&input("FAILED"), Some(&previous));
        assert!(!report.passed);
        assert!(
            report
                .changes_since_previous
                .iter()
                .any(|c| c == "overall: PASSED → FAILED"),
            "{:?}",
            report.changes_since_previous
        );
        assert!(report
            .changes_since_previous
            .iter()
            .any(|c| c.contains("restore_test: Successful → Failed")));
    }

    #[test]
    fn tests_that_never_ran_are_listed_as_skipped() {
        let mut i = input("SUCCESSFUL");
        i.results = vec![
            json!({"database": "muejam-db-prod", "tests": {"backup": test("backup_verification", "FAILED", json!({}))}, "cleanup": {"clean": true}}),
        ];
        let report = build(&i, None);
        let statuses: Vec<TestStatus> =
            report.databases[0].tests.iter().map(|t| t.status).collect();
        assert_eq!(
            statuses,
            vec![
                TestStatus::Failed,
                TestStatus::Skipped,
                TestStatus::Skipped,
                TestStatus::Skipped,
                TestStatus::Skipped
            ]
        );
        assert!(!report.passed);
    }

    #[test]
    fn each_rehearsed_workflow_says_its_outcome_times_losses_and_definition() {
        let h = |c: char| c.to_string().repeat(64);
        let rehearsal = |details: Value, status: &str| {
            let mut i = input("SUCCESSFUL");
            i.results[0]["tests"]["failover"] = test("failover_test", status, details);
            markdown(&build(&i, None))
        };
        let base = json!({"workflow": "database-failover", "copy": "drill-q4-muejam",
            "execution": "drill-q4-muejam-failover", "outcome": "succeeded",
            "rto_seconds": 312.0, "rpo_seconds": 0.0, "rows_written": 4, "rows_lost": 0,
            "in_flight_lost": false, "definition_sha256": h('a'), "deployed_sha256": h('a')});
        let with = |k: &str, v: Value| {
            let mut d = base.clone();
            d[k] = v;
            d
        };
        let cases = [
            (base.clone(), "SUCCESSFUL", "muejam-db-prod database-failover on drill-q4-muejam (`drill-q4-muejam-failover`): SUCCESSFUL — succeeded; RTO 5.2 min, RPO 0.0 s; 0 of 4 marker rows lost; definition sha256 aaaaaaaaaaaa… = deployed"),
            (with("deployed_sha256", json!(h('b'))), "FAILED", "definition sha256 aaaaaaaaaaaa… ≠ deployed bbbbbbbbbbbb…"),
            (with("rows_lost", Value::Null), "FAILED", "rows lost not measured"),
            ({let mut d = with("rows_lost", json!(1)); d["in_flight_lost"] = json!(true); d}, "SUCCESSFUL", "1 of 4 marker rows lost (the one written just before the failure)"),
            (with("outcome", json!("failed")), "FAILED", "FAILED — failed; RTO"),
        ];
        for (details, status, expected) in cases {
            let md = rehearsal(details.clone(), status);
            assert!(md.contains("## Rehearsed workflows"), "{md}");
            assert!(md.contains(expected), "{expected:?} not in:\n{md}");
        }
        let mut i = input("SUCCESSFUL");
        i.results[0]["tests"]["region"] = test(
            "region_restore_test",
            "SUCCESSFUL",
            json!({"workflow": "region-failover", "backup_region": "us-west-2",
                "execution": "drill-q4-muejam-region", "outcome": "succeeded",
                "rto_seconds": 1500.0, "rpo_seconds": 3600.0,
                "definition_sha256": h('a'), "deployed_sha256": h('a')}),
        );
        let md = markdown(&build(&i, None));
        assert!(
            md.contains("muejam-db-prod region-failover on production's newest copy in us-west-2 (`drill-q4-muejam-region`): SUCCESSFUL — succeeded; RTO ")
                && md.contains("restored, verified against the copy's row counts and deleted; RPO is the copy's age; definition sha256 aaaaaaaaaaaa… = deployed"),
            "{md}"
        );
        // A drill whose failover test rehearsed nothing has no such section.
        assert!(!markdown(&build(&input("SUCCESSFUL"), None)).contains("Rehearsed"));
    }
}
