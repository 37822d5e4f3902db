//! The quarterly DR drill end to end on the local stack, including its
//! failure paths: each still produces a report and cleans up, and the drill
//! never changes or deletes what it did not make.

mod common;

use common::*;
use dr_core::*;
use serde_json::{json, Value};

fn drill_input() -> Value {
    serde_json::from_slice(&std::fs::read(repo().join("events/dr-drill.json")).expect("event"))
        .expect("json")
}

/// Each database test of a drill that passed them all.
fn every_test_successful() -> Vec<(String, String)> {
    [
        "backup_verification",
        "restore_test",
        "failover_test",
        "corruption_test",
        "region_restore_test",
    ]
    .map(|t| (t.to_owned(), "SUCCESSFUL".to_owned()))
    .to_vec()
}

fn report_of(stack: &Stack) -> Value {
    let dir = stack.home.join("reports/dr-drill");
    let mut reports: Vec<_> = std::fs::read_dir(&dir)
        .expect("reports dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("latest.json"))
        .collect();
    reports.sort();
    serde_json::from_slice(&std::fs::read(reports.last().expect("a report")).expect("read"))
        .expect("json")
}

fn tests_of(report: &Value) -> Vec<(String, String)> {
    report["databases"][0]["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or("").to_owned(),
                t["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// The drill instances in us-east-1 and in us-west-2 (the region-restore
/// rehearsal's).
async fn drill_instances(stack: &Stack) -> Vec<String> {
    let mut instances = stack.platform().list_instances().await.expect("list");
    instances.extend(
        stack
            .platform()
            .in_region("us-west-2")
            .expect("us-west-2")
            .list_instances()
            .await
            .expect("list us-west-2"),
    );
    instances
        .into_iter()
        .map(|i| i.instance_id.to_string())
        .filter(|i| i.starts_with("drill-"))
        .collect()
}

/// The drill's input without the region-restore rehearsal (its test is
/// then SKIPPED): for the tests about another part of the drill.
fn drill_input_without_region() -> Value {
    let mut input = drill_input();
    input.as_object_mut().map(|i| i.remove("region_restore"));
    input
}

/// Everything of production a drill may read but never change: its
/// instances and their roles, its data, its record, its registry entry, its
/// secrets' current versions, and the locks held.
#[derive(Debug, PartialEq)]
struct Production {
    instances: Vec<(String, InstanceRole, Option<InstanceId>)>,
    users: i64,
    record: Option<String>,
    registry: Vec<Value>,
    secrets: Vec<(String, Option<String>)>,
    locks: Vec<String>,
}

async fn production_fingerprint(stack: &Stack) -> Production {
    let clients = stack.moto_clients().await;
    let registry = dr_aws::DynamoDbTopology::new(clients.dynamodb.clone(), "muejam-dr-topology")
        .list()
        .await
        .expect("registry")
        .into_iter()
        .map(|t| json!(t))
        .collect();
    let mut secrets = Vec::new();
    for id in ["muejam/db/master", "muejam/db/app"] {
        let version = clients
            .secrets
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .expect("secret")
            .version_id()
            .map(str::to_owned);
        secrets.push((id.to_owned(), version));
    }
    let locks = stack
        .locks()
        .await
        .into_iter()
        .map(|l| format!("{} {}", l.resource, l.owner))
        .collect();
    let (instances, users) = instances_and_data(stack).await;
    Production {
        instances,
        users,
        record: stack.dns_value_or_none().await,
        registry,
        secrets,
        locks,
    }
}

async fn instances_and_data(
    stack: &Stack,
) -> (Vec<(String, InstanceRole, Option<InstanceId>)>, i64) {
    let instances = stack
        .platform()
        .list_instances()
        .await
        .expect("list")
        .into_iter()
        .filter(|i| !i.instance_id.as_str().starts_with("drill-"))
        .map(|i| (i.instance_id.to_string(), i.role, i.replication_source))
        .collect();
    let users: i64 = stack
        .sql(PRIMARY)
        .await
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .expect("count")
        .get(0);
    (instances, users)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_with_a_good_backup_passes_every_test_and_leaves_production_as_it_was() {
    let stack = Stack::up();
    stack.replicate_to_us_west_2();
    let before = production_fingerprint(&stack).await;
    let (code, result) = stack.run("dr-drill", &drill_input(), &[]);
    assert_eq!(code, 0, "{result:#}");
    let report = report_of(&stack);
    assert_eq!(report["overall_status"], "PASSED", "{report:#}");
    assert_eq!(tests_of(&report), every_test_successful());
    let tests = report["databases"][0]["tests"].as_array().expect("tests");
    assert!(
        tests
            .iter()
            .all(|t| t["duration_seconds"].as_f64().is_some_and(|d| d > 0.0)),
        "real durations: {tests:#?}"
    );
    assert!(report["restore_time"]["achieved_seconds"]
        .as_f64()
        .is_some_and(|s| s > 0.0));
    assert!(report["backup_age"]["achieved_seconds"]
        .as_f64()
        .is_some_and(|s| s > 0.0));
    // The failover test ran the real database-failover state machine on
    // the drill's copy, and says what it came to.
    let failover = &tests[2]["details"];
    assert_eq!(failover["workflow"], "database-failover", "{failover:#}");
    assert_eq!(failover["outcome"], "succeeded", "{failover:#}");
    assert!(
        failover["rto_seconds"].as_f64().is_some_and(|s| s > 0.0),
        "{failover:#}"
    );
    assert!(failover["rpo_seconds"].as_f64().is_some(), "{failover:#}");
    // The rows replicated before the crash all survive; the one written
    // just before it may not (asynchronous replication).
    let lost = failover["rows_lost"].as_u64().expect("rows lost measured");
    assert!(
        lost == 0 || (lost == 1 && failover["in_flight_lost"] == true),
        "{failover:#}"
    );
    assert_eq!(failover["rows_written"], 4, "{failover:#}");
    assert_eq!(
        failover["definition_sha256"].as_str().map(str::len),
        Some(64)
    );
    assert_eq!(failover["definition_sha256"], failover["deployed_sha256"]);
    assert_eq!(
        failover["production_record_points_at"].as_str(),
        Some(stack.address(PRIMARY).await.as_str()),
        "production's record still points at muejam-db-prod"
    );
    let child_report = stack.home.join(format!(
        "reports/{}",
        failover["report"].as_str().expect("the rehearsal's report")
    ));
    let child: Value =
        serde_json::from_slice(&std::fs::read(&child_report).expect("kept")).expect("json");
    assert_eq!(child["passed"], true, "{child:#}");
    // Then the real data-corruption recovery ran on the copy the failover
    // left: it found the drill's damage, restored the last good moment
    // (the rows written before the damage kept, the one after discarded),
    // and switched the drill's record.
    let corruption = &tests[3]["details"];
    assert_eq!(corruption["workflow"], "data-corruption", "{corruption:#}");
    assert_eq!(corruption["outcome"], "succeeded", "{corruption:#}");
    assert!(
        corruption["rto_seconds"].as_f64().is_some_and(|s| s > 0.0),
        "{corruption:#}"
    );
    assert!(
        corruption["rpo_seconds"].as_f64().is_some(),
        "{corruption:#}"
    );
    assert_eq!(corruption["rows_lost"], 0, "{corruption:#}");
    assert_eq!(corruption["rows_written"], 3, "{corruption:#}");
    assert_eq!(corruption["after_damage_discarded"], true, "{corruption:#}");
    assert_eq!(
        corruption["replaced_primary"], failover["new_primary"],
        "the corruption was rehearsed on the copy's primary after the failover"
    );
    assert_ne!(corruption["new_primary"], corruption["replaced_primary"]);
    assert_eq!(
        corruption["definition_sha256"],
        corruption["deployed_sha256"]
    );
    assert_eq!(
        corruption["production_record_points_at"].as_str(),
        Some(stack.address(PRIMARY).await.as_str())
    );
    let child: Value = serde_json::from_slice(
        &std::fs::read(stack.home.join(format!(
            "reports/{}",
            corruption["report"].as_str().expect("the rehearsal's report")
        )))
        .expect("kept"),
    )
    .expect("json");
    assert_eq!(child["passed"], true, "{child:#}");
    assert!(
        child["approval"]
            .as_str()
            .is_some_and(|a| a.starts_with("approved by drill ")),
        "the drill answered its rehearsal's approval: {child:#}"
    );
    let markdown = std::fs::read_to_string(
        std::fs::read_dir(stack.home.join("reports/dr-drill"))
            .expect("reports")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .max()
            .expect("the drill's Markdown"),
    )
    .expect("read");
    assert!(
        markdown.contains("data-corruption on drill-"),
        "the rehearsal's line: {markdown}"
    );
    // The region restore, rehearsed by the real region failover in its
    // rehearsal mode on production's newest copy in us-west-2.
    let region = &tests[4];
    assert_eq!(region["name"], "region_restore_test", "{region:#}");
    assert_eq!(region["details"]["outcome"], "succeeded", "{region:#}");
    assert_eq!(region["details"]["backup_region"], "us-west-2");
    assert!(region["details"]["rto_seconds"]
        .as_f64()
        .is_some_and(|s| s > 0.0));
    assert!(region["details"]["rpo_seconds"]
        .as_f64()
        .is_some_and(|s| s >= 0.0));
    assert_eq!(
        region["details"]["definition_sha256"],
        region["details"]["deployed_sha256"]
    );
    assert!(
        markdown.contains("region-failover on production's newest copy in us-west-2"),
        "the rehearsal's line: {markdown}"
    );
    let region_report = stack.report_named(
        "region-failover",
        region["details"]["execution"].as_str().expect("execution"),
    );
    assert_eq!(region_report["mode"], "rehearsal", "{region_report:#}");
    assert_eq!(region_report["verification"]["baseline_compared"], true);
    assert!(
        !stack.home.join("pages.jsonl").exists(),
        "a rehearsal pages nobody"
    );
    assert_eq!(report["databases"][0]["cleanup_clean"], true);
    assert_eq!(report["cleanup_verified"], true);
    assert!(
        drill_instances(&stack).await.is_empty(),
        "no drill instance remains"
    );
    assert!(
        stack
            .platform()
            .list_snapshots(None)
            .await
            .expect("snapshots")
            .iter()
            .all(|s| !s.snapshot_id.as_str().starts_with("drill-")),
        "the snapshot of the copy went with it"
    );
    assert_eq!(
        production_fingerprint(&stack).await,
        before,
        "production untouched"
    );
    assert!(stack
        .subjects()
        .iter()
        .any(|s| s.starts_with("[MueJam DR] Quarterly drill PASSED")));

    // The next drill compares itself with this one (it stops after its
    // restore test: building its copy fails).
    let (code, _) = stack.run(
        "dr-drill",
        &drill_input(),
        &["--fault", "dr-drill-database/CreateDrillReplica:1:Unsafe"],
    );
    assert_eq!(code, 1);
    let second = report_of(&stack);
    let changes: Vec<&str> = second["changes_since_previous"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        changes.iter().any(|c| c.starts_with("restore time:")),
        "{changes:?}"
    );
    assert!(changes.contains(&"overall: PASSED → FAILED"), "{changes:?}");

    // The quarter's evidence pack holds both drills, charted, each report
    // linked; a browser renders it.
    let pack = stack.home.join("evidence.html");
    let out = drctl(
        &stack.home,
        &["evidence", "--local", "--out", pack.to_str().expect("path")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = render_in_chromium(&pack);
    let dom = &rendered.dom;
    assert!(dom.contains("2 drill(s), 1 passed."), "{dom}");
    for chart in ["restore-chart", "backup-chart", "loss-chart"] {
        assert!(dom.contains(&format!("id=\"{chart}\"")), "{chart}: {dom}");
    }
    for drill in [&report, &second] {
        let name = drill["execution_name"].as_str().expect("name");
        let page = std::fs::read_dir(stack.home.join("reports/dr-drill"))
            .expect("reports")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(&format!("-{name}.html")))
            .expect("each drill's page is kept beside its JSON");
        assert!(
            dom.contains(&format!("href=\"{}\"", page.display())),
            "{name} linked: {dom}"
        );
    }
    assert!(rendered.bar_pixels > 200, "no bar painted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_snapshot_fails_backup_verification_and_skips_the_rest() {
    let stack = Stack::up();
    let platform = stack.platform();
    for snapshot in platform.list_snapshots(None).await.expect("list") {
        platform
            .delete_snapshot(&snapshot.snapshot_id)
            .await
            .expect("delete snapshot");
    }
    let (code, result) = stack.run("dr-drill", &drill_input(), &[]);
    assert_eq!(code, 1, "{result:#}");
    assert_eq!(result["error"], "DrillFailed");
    let report = report_of(&stack);
    assert_eq!(report["overall_status"], "FAILED");
    let tests = report["databases"][0]["tests"].as_array().expect("tests");
    assert_eq!(tests[0]["status"], "FAILED");
    assert!(
        tests[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("has no available snapshot")),
        "{tests:#?}"
    );
    assert_eq!(tests[1]["status"], "SKIPPED");
    assert_eq!(tests[2]["status"], "SKIPPED");
    assert!(drill_instances(&stack).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_with_flipped_bytes_fails_with_the_reason() {
    let stack = Stack::up();
    let platform = stack.platform();
    let newest = platform
        .list_snapshots(None)
        .await
        .expect("list")
        .into_iter()
        .next()
        .expect("a snapshot");
    let file = platform.snapshot_file(&newest.snapshot_id).expect("file");
    let mut bytes = std::fs::read(&file).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).expect("write");

    let (code, _) = stack.run("dr-drill", &drill_input(), &[]);
    assert_eq!(code, 1);
    let report = report_of(&stack);
    let backup = &report["databases"][0]["tests"][0];
    assert_eq!(backup["status"], "FAILED");
    assert!(
        backup["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cannot be decrypted")),
        "{backup:#}"
    );
    assert!(drill_instances(&stack).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_restore_test_still_removes_the_throwaway_instance() {
    let stack = Stack::up();
    let (code, _) = stack.run(
        "dr-drill",
        &drill_input(),
        &["--fault", "CheckRestore:1:Unsafe"],
    );
    assert_eq!(code, 1);
    let report = report_of(&stack);
    let tests = &report["databases"][0]["tests"];
    assert_eq!(tests[0]["status"], "SUCCESSFUL");
    assert_eq!(tests[1]["status"], "FAILED");
    assert!(
        tests[1]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("Unsafe")),
        "{tests:#}"
    );
    let deleted = report["databases"][0]["cleanup_detail"]["deleted"]
        .as_array()
        .expect("deleted")
        .len();
    assert_eq!(deleted, 1, "the restored throw-away instance was deleted");
    assert!(drill_instances(&stack).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_never_touches_an_instance_it_did_not_create() {
    let stack = Stack::up();
    let platform = stack.platform();
    // Make a production instance look like this drill's own resource.
    platform
        .add_tags(
            &id(REPLICA),
            &[
                ("dr:drill".to_owned(), "fixed-drill".to_owned()),
                (EPHEMERAL_TAG.to_owned(), "true".to_owned()),
            ]
            .into(),
        )
        .await
        .expect("tag");
    let before = production_fingerprint(&stack).await;
    let (code, _) = stack.run(
        "dr-drill",
        &drill_input_without_region(),
        &["--name", "fixed-drill"],
    );
    assert_eq!(code, 1, "a drill that cannot clean up does not pass");
    let report = report_of(&stack);
    assert_eq!(report["cleanup_verified"], false);
    assert_eq!(report["leftovers"], json!([REPLICA]));
    assert_eq!(
        production_fingerprint(&stack).await,
        before,
        "the replica was neither deleted nor promoted"
    );

    // Drill steps pointed at production refuse with Unsafe.
    let machine = stack.home.join("fail-production.asl.json");
    std::fs::write(
        &machine,
        serde_json::to_vec(&json!({"StartAt": "Promote", "States": {"Promote": {
            "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "DrillCopyFunction", "Payload": {"action": "fail", "drill_id": "fixed-drill", "instance_id": REPLICA}},
            "End": true}}}))
        .expect("json"),
    )
    .expect("write");
    let (code, result) = stack.run(machine.to_str().expect("path"), &json!({}), &[]);
    assert_eq!(code, 1);
    assert_eq!(result["error"], "Unsafe", "{result:#}");
    assert_eq!(stack.describe(REPLICA).await.role, InstanceRole::Replica);

    let mut input = drill_input();
    input["databases"] = json!(["drill-muejam-db-prod-x"]);
    let (code, result) = stack.run("dr-drill", &input, &[]);
    assert_eq!(
        code, 2,
        "a drill instance is not a database to drill: refused as input, before anything: {result:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_yields_to_a_running_recovery_and_cleans_up() {
    let stack = Stack::up();
    let lock = stack
        // A failover locks the database by its registry name; the drill asks
        // by instance and finds it through the registry.
        .hold_recovery_lock(
            DATABASE,
            "arn:aws:states:local:000000000000:execution:real-failover",
        )
        .await;
    let (code, _) = stack.run("dr-drill", &drill_input(), &[]);
    assert_eq!(code, 1);
    let report = report_of(&stack);
    let backup = &report["databases"][0]["tests"][0];
    assert_eq!(backup["status"], "SKIPPED");
    assert!(
        backup["reason"]
            .as_str()
            .is_some_and(|r| r.contains("real-failover")),
        "{backup:#}"
    );
    assert!(drill_instances(&stack).await.is_empty());
    assert_eq!(
        lock.holder(DATABASE)
            .await
            .expect("holder")
            .map(|h| h.owner)
            .as_deref(),
        Some("arn:aws:states:local:000000000000:execution:real-failover"),
        "the drill leaves the incident's lock alone"
    );
}

/// A real incident that begins while the drill builds its copy: the drill
/// checks once more before its copy's primary fails, yields, and removes
/// the copy; the failover is not rehearsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_yields_to_an_incident_that_begins_while_it_builds_its_copy() {
    let stack = Stack::up();
    let before = production_fingerprint(&stack).await;
    let held = json!({"resource": PRIMARY, "owner": "d", "held": true,
        "holder": "arn:aws:states:local:000000000000:execution:real-failover", "released_stale": []});
    let fault = format!("CheckIncidentBeforeFailure:1:return={held}");
    let (code, result) = stack.run("dr-drill", &drill_input(), &["--fault", &fault]);
    assert_eq!(code, 1, "{result:#}");
    let report = report_of(&stack);
    let statuses = tests_of(&report);
    assert_eq!(
        statuses,
        vec![
            ("backup_verification".to_owned(), "SUCCESSFUL".to_owned()),
            ("restore_test".to_owned(), "SUCCESSFUL".to_owned()),
            ("failover_test".to_owned(), "SKIPPED".to_owned()),
            ("corruption_test".to_owned(), "SKIPPED".to_owned()),
            ("region_restore_test".to_owned(), "SKIPPED".to_owned()),
        ]
    );
    let failover = &report["databases"][0]["tests"][2];
    assert!(
        failover["reason"]
            .as_str()
            .is_some_and(|r| r.contains("real-failover")),
        "{failover:#}"
    );
    let executions = result["children"].as_object().expect("children");
    assert!(
        !executions
            .keys()
            .any(|arn| arn.contains(":execution:database-failover:")),
        "no rehearsal ran: {executions:#?}"
    );
    assert!(
        drill_instances(&stack).await.is_empty(),
        "the copy is removed"
    );
    assert!(drill_records(&stack).await.is_empty(), "its record too");
    assert_eq!(production_fingerprint(&stack).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_input_with_a_typo_or_a_bad_value_is_refused_before_anything_is_created() {
    let stack = Stack::up();
    let before: Vec<InstanceId> = stack.instance_ids().await;
    for (change, says) in [
        (
            json!({"poll_intervall_seconds": 15}),
            "unknown field `poll_intervall_seconds`",
        ),
        (
            json!({"poll_interval_seconds": 0}),
            "poll_interval_seconds must be between 1 and 300",
        ),
        (
            json!({"row_count_tolerance": 2.0}),
            "row_count_tolerance must be between 0 and 1",
        ),
        (
            json!({"runbook_last_updated": "last week"}),
            "is not a date",
        ),
    ] {
        let mut input = drill_input();
        if let (Some(i), Some(c)) = (input.as_object_mut(), change.as_object()) {
            i.extend(c.clone());
        }
        let (code, result) = stack.run("dr-drill", &input, &[]);
        assert_eq!(code, 2, "{change}: {result:#}");
        assert_eq!(result["error"], "InvalidInput");
        assert!(
            result["cause"].as_str().is_some_and(|c| c.contains(says)),
            "{says:?}: {result:#}"
        );
    }
    let after: Vec<InstanceId> = stack.instance_ids().await;
    assert_eq!(after, before, "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_killed_mid_restore_leaves_instances_the_next_drill_removes_first() {
    let stack = Stack::up();
    let snapshot = drctl(
        &stack.home,
        &["local", "snapshot", PRIMARY, "--home", stack.home_str()],
    );
    assert!(snapshot.status.success());
    stack.replicate_to_us_west_2();
    let mut run = Background::start(&stack, "dr-drill", &drill_input(), "killed-drill", &[]);
    run.wait_for_line("✔ StartRestore");
    run.kill();
    let left = drill_instances(&stack).await;
    assert!(!left.is_empty(), "the killed drill left its restore behind");

    // While its execution still counts as running (here: this test process
    // stands in for it), its instances are not another drill's to remove.
    let registry = dr_local::executions::LocalExecutions::new(&stack.home);
    let mut record = registry
        .get("killed-drill")
        .expect("registry")
        .expect("recorded");
    record.pid = std::process::id();
    registry.start(&record).expect("alive again");
    // (It stops at its backup verification: only its sweep matters here.)
    let (code, result) = stack.run(
        "dr-drill",
        &drill_input(),
        &["--name", "second-drill", "--fault", "VerifyBackup:1:Unsafe"],
    );
    assert_eq!(code, 1, "{result:#}");
    for instance in &left {
        assert!(
            drill_instances(&stack).await.contains(instance),
            "{instance} of a running drill was removed"
        );
    }
    registry
        .finish("killed-drill", ExecutionState::Aborted)
        .expect("ended");

    let (code, result) = stack.run("dr-drill", &drill_input(), &["--name", "next-drill"]);
    assert_eq!(code, 0, "{result:#}");
    assert!(drill_instances(&stack).await.is_empty(), "nothing is left");
    let report = report_of(&stack);
    assert_eq!(report["overall_status"], "PASSED");
    let removed: Vec<String> = report["earlier_leftovers_removed"]
        .as_array()
        .expect("removed")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    for instance in &left {
        assert!(
            removed.contains(&instance.to_string()),
            "{instance} not in {removed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drill_sweeper_rule_hands_the_dead_drill_to_its_cleanup() {
    let stack = Stack::up();
    let template =
        dr_runner::sam::SamTemplate::load(&repo().join("template.yaml")).expect("template");
    let rule = template
        .event_rules("DrillCleanupFunction")
        .expect("rules")
        .into_iter()
        .find(|r| r.name == "DrillEnded")
        .expect("the drill sweeper rule");
    let event: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/execution-status-change.json")).expect("event"),
    )
    .expect("json");
    let payload = rule.transform(&event).expect("transforms");
    assert_eq!(payload, json!({"drill_id": "incident-2026-11-26"}));
    let output = stack.invoke("drill-cleanup", &payload);
    assert_eq!(output["clean"], true, "{output}");

    // A backup region the cleanup cannot reach (a typo in the drill's
    // input) is said and makes the cleanup not clean; it never keeps the
    // home region's drill instances.
    let snapshot = stack.platform().list_snapshots(None).await.expect("list")[0]
        .snapshot_id
        .clone();
    let restored = stack.invoke(
        "start-restore",
        &json!({"database": PRIMARY, "snapshot_id": snapshot, "drill_id": "typo-drill"}),
    );
    assert!(!drill_instances(&stack).await.is_empty(), "{restored}");
    let output = stack.invoke(
        "drill-cleanup",
        &json!({"drill_id": "typo-drill", "regions": ["us-west-2", "eu-west-9"]}),
    );
    assert_eq!(output["clean"], false, "{output}");
    assert!(
        output["copies_remaining"]
            .to_string()
            .contains("instances in eu-west-9 were not listed or deleted"),
        "{output}"
    );
    assert!(drill_instances(&stack).await.is_empty(), "{output}");
}

/// Faults that make the drill take its worst path: every poll loop waits
/// until its last poll, and every task with a Retry fails with Throttled as
/// many times as it retries.
fn worst_case_faults(interval: u64) -> Vec<String> {
    let limits = dr_scenarios::drill::poll_limits(interval);
    let mut faults = vec![
        format!(
            "dr-drill-database/DescribeRestore:1-{}:return={}",
            limits.restore_polls - 1,
            json!({"status": "creating"})
        ),
        format!(
            "dr-drill-database/DescribeReplica:1-{}:return={}",
            limits.replica_polls - 1,
            json!({"status": "creating"})
        ),
        format!(
            "dr-drill-database/CheckMarkerReplicated:1-{}:return={}",
            limits.marker_polls - 1,
            json!({"present": false})
        ),
        format!(
            "dr-drill-database/CheckBase:1-{}:return={}",
            limits.base_polls - 1,
            json!({"ready": false, "instance_id": "drill-copy-primary"})
        ),
    ];
    for file in ["dr-drill", "dr-drill-database"] {
        let definition: Value = serde_json::from_slice(
            &std::fs::read(repo().join(format!("statemachines/{file}.asl.json"))).expect("asl"),
        )
        .expect("json");
        let mut states: Vec<(String, Value)> = Vec::new();
        let mut pending = vec![definition];
        while let Some(flow) = pending.pop() {
            for (name, state) in flow["States"].as_object().into_iter().flatten() {
                if let Some(processor) = state.get("ItemProcessor") {
                    pending.push(processor.clone());
                }
                states.push((name.clone(), state.clone()));
            }
        }
        for (name, state) in states {
            let retried = state["Retry"].as_array().into_iter().flatten().find(|r| {
                r["ErrorEquals"]
                    .as_array()
                    .is_some_and(|e| e.contains(&json!("Throttled")))
            });
            if let Some(retrier) = retried {
                let attempts = retrier["MaxAttempts"].as_u64().expect("MaxAttempts");
                // This machine's state only: the rehearsed workflows have
                // states of the same names, with retries of their own.
                faults.push(format!("{file}/{name}:1-{attempts}:Throttled"));
            }
        }
    }
    faults
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worst_case_drill_still_cleans_up_and_reports() {
    use dr_runner::budget::{worst_case, Assumptions};
    let stack = Stack::up();
    stack.replicate_to_us_west_2();
    let input = drill_input();
    let interval = input["poll_interval_seconds"].as_u64().expect("interval");
    let faults = worst_case_faults(interval);
    let mut args = vec!["--virtual-time", "--name", "worst-case-drill"];
    for fault in &faults {
        args.push("--fault");
        args.push(fault);
    }
    let (code, result) = stack.run("dr-drill", &input, &args);
    assert_eq!(
        code,
        0,
        "{}: {:#}",
        result["cause"],
        report_of(&stack)["databases"]
    );
    // Cleanup and the report ran, and the drill still passed.
    assert!(drill_instances(&stack).await.is_empty(), "nothing is left");
    let report = report_of(&stack);
    assert_eq!(report["overall_status"], "PASSED", "{report:#}");

    // What the run measured, beside what the definition's worst case says
    // for the same input and one database.
    // One child per database, each with its rehearsal of the failover.
    let children = result["children"].as_object().expect("children");
    let of = |machine: &str| {
        children
            .iter()
            .filter(|(arn, _)| arn.contains(&format!(":execution:{machine}:")))
            .map(|(_, c)| c)
            .collect::<Vec<_>>()
    };
    assert_eq!(of("dr-drill-database").len(), 1, "{children:#?}");
    assert_eq!(of("database-failover").len(), 1, "{children:#?}");
    assert_eq!(of("data-corruption").len(), 1, "{children:#?}");
    assert_eq!(of("region-failover").len(), 1, "{children:#?}");
    let child = of("dr-drill-database")[0];
    let sam = dr_runner::sam::SamTemplate::load(&repo().join("template.yaml")).expect("template");
    let declared = sam.state_machines().expect("machines");
    let child_machine = declared
        .iter()
        .find(|m| m.logical_id == "DrDrillDatabaseStateMachine")
        .expect("child machine");
    let definition = dr_runner::StateMachine::load(
        &std::fs::read_to_string(repo().join(&child_machine.definition_uri)).expect("asl"),
        &dr_runner::LoadOptions {
            substitutions: child_machine.substitutions.clone(),
            known_functions: None,
        },
    )
    .expect("loads");
    let limits = dr_scenarios::drill::poll_limits(interval);
    let assumptions = Assumptions {
        paths: [
            ("$.request.poll_interval_seconds", interval as f64),
            ("$.limits.restore_polls", limits.restore_polls as f64),
            ("$.limits.replica_polls", limits.replica_polls as f64),
            ("$.limits.marker_polls", limits.marker_polls as f64),
            ("$.limits.base_polls", limits.base_polls as f64),
            (
                "$.limits.damage_gap_seconds",
                limits.damage_gap_seconds as f64,
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        function_seconds: sam.function_timeouts(),
        task_seconds: 3.0,
        // The rehearsed workflows: their events are in their own histories,
        // and the tasks wait for them no longer than their TimeoutSeconds.
        children: declared
            .iter()
            .filter_map(|m| match m.logical_id.as_str() {
                "DatabaseFailoverStateMachine" => Some((m.arn.clone(), 7200.0)),
                "DataCorruptionStateMachine" => Some((m.arn.clone(), 14400.0)),
                "RegionFailoverStateMachine" => Some((m.arn.clone(), 14400.0)),
                _ => None,
            })
            .map(|(arn, seconds)| (arn, dr_runner::budget::Budget { events: 0, seconds }))
            .collect(),
        ..Assumptions::default()
    };
    let model = worst_case(&definition, &assumptions).expect("bounded");
    let child_events = child["history_events"].as_u64().expect("events");
    let parent_events = result["history"].as_array().expect("history").len() as u64;
    println!(
        "worst-case drill run (virtual time, interval {interval} s, {} faults): parent {parent_events} events, largest payload {} bytes; child {child_events} events (model: {}), {:.2} h simulated, largest payload {} bytes",
        faults.len(),
        result["max_payload_bytes"],
        model.events,
        child["seconds"].as_f64().unwrap_or_default() / 3600.0,
        child["max_payload_bytes"],
    );
    // The model bounds what really happens.
    assert!(
        child_events <= model.events,
        "{child_events} > {}",
        model.events
    );
    assert!(child_events < 20_000 && parent_events < 20_000);
    for payload in [&result["max_payload_bytes"], &child["max_payload_bytes"]] {
        assert!(
            payload.as_u64().expect("bytes") < 64 * 1024,
            "payloads stay small: {payload}"
        );
    }
}

/// The drill's records in the production zone (`drill-…`).
async fn drill_records(stack: &Stack) -> Vec<String> {
    let route53 = stack.moto_clients().await.route53;
    let zone = dr_aws::Route53Dns::new(route53.clone())
        .zone_id("muejam.internal")
        .await
        .expect("zone");
    route53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .expect("records")
        .resource_record_sets()
        .iter()
        .map(|r| r.name().to_owned())
        .filter(|n| n.starts_with("drill-"))
        .collect()
}

/// A fault in a step of the rehearsed failover (a child of the drill's
/// child): that rehearsal is FAILED in the report, naming why, the other
/// tests stand, and everything the drill made is removed: instances, the
/// copy's registry entry, its record and its lock. Production is as it was,
/// and nobody is paged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_in_the_rehearsed_failover_fails_that_rehearsal_and_leaves_nothing() {
    let stack = Stack::up();
    let before = production_fingerprint(&stack).await;
    let (code, result) = stack.run(
        "dr-drill",
        &drill_input_without_region(),
        &[
            "--name",
            "faulty-rehearsal",
            "--fault",
            // The failover's step, in the rehearsal only.
            "database-failover/PromoteReplica:1:Unsafe",
        ],
    );
    assert_eq!(code, 1, "the drill fails: {result:#}");
    let report = report_of(&stack);
    assert_eq!(report["overall_status"], "FAILED", "{report:#}");
    assert_eq!(
        tests_of(&report),
        vec![
            ("backup_verification".to_owned(), "SUCCESSFUL".to_owned()),
            ("restore_test".to_owned(), "SUCCESSFUL".to_owned()),
            ("failover_test".to_owned(), "FAILED".to_owned()),
            ("corruption_test".to_owned(), "SKIPPED".to_owned()),
            ("region_restore_test".to_owned(), "SKIPPED".to_owned()),
        ]
    );
    assert!(
        report["databases"][0]["tests"][3]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("the failover rehearsal did not pass")),
        "{report:#}"
    );
    let failover = &report["databases"][0]["tests"][2];
    let reason = failover["reason"].as_str().expect("why");
    assert!(
        reason.contains("the database-failover run failed: ") && reason.contains("Unsafe"),
        "{reason}"
    );
    assert!(reason.contains("ended failed (FAILED)"), "{reason}");
    // Nothing was failed over: the markers are said not counted at once.
    assert!(reason.contains("rows lost not measured"), "{reason}");
    // The run's own report says the same, and was kept.
    assert_eq!(failover["details"]["outcome"], "failed", "{failover:#}");
    assert!(failover["details"]["report"].is_string(), "{failover:#}");
    assert_the_drill_left_nothing(&stack, &report, &before).await;
}

/// The runbook's "verify contact information": a tier of the escalation
/// path whose topic has no confirmed subscriber fails the drill, by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_nobody_is_subscribed_to_fails_the_drill_by_name() {
    let stack = Stack::up();
    stack.replicate_to_us_west_2();
    stack.unsubscribe_all("muejam-dr-tier-3").await;
    let (code, result) = stack.run("dr-drill", &drill_input(), &[]);
    assert_ne!(code, 0, "{result:#}");
    let report = report_of(&stack);
    assert_eq!(report["overall_status"], "FAILED", "{report:#}");
    let items: Vec<(String, String)> = report["runbook_items"]
        .as_array()
        .expect("runbook items")
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap_or_default().to_owned(),
                i["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .filter(|(name, _)| name.starts_with("escalation_tier_"))
        .collect();
    assert_eq!(
        items,
        [1, 2, 3, 4]
            .map(|n| (
                format!("escalation_tier_{n}_has_a_confirmed_subscriber"),
                if n == 3 { "FAILED" } else { "SUCCESSFUL" }.to_owned()
            ))
            .to_vec()
    );
    // The databases' own tests still pass: only the contacts failed.
    assert_eq!(tests_of(&report), every_test_successful());
}

/// Everything the drill made is gone (instances, snapshots, records,
/// registry entries), production is as it was, and nobody was paged.
async fn assert_the_drill_left_nothing(stack: &Stack, report: &Value, before: &Production) {
    // Everything the drill made is gone.
    assert!(drill_instances(stack).await.is_empty(), "no drill instance");
    assert!(drill_records(stack).await.is_empty(), "no drill record");
    assert!(
        report["databases"][0]["cleanup_clean"] == true && report["cleanup_verified"] == true,
        "{report:#}"
    );
    let copies: Vec<String> =
        dr_aws::DynamoDbTopology::new(stack.moto_clients().await.dynamodb, "muejam-dr-topology")
            .list()
            .await
            .expect("registry")
            .into_iter()
            .map(|t| t.database)
            .filter(|d| d.starts_with("drill-"))
            .collect();
    assert!(copies.is_empty(), "the copy left the registry: {copies:?}");
    assert_eq!(
        &production_fingerprint(stack).await,
        before,
        "production untouched: instances, data, record, registry, secrets, locks"
    );
    assert!(
        !stack.home.join("pages.jsonl").exists(),
        "a failed rehearsal pages nobody: the drill's report says it"
    );
}

/// A fault in a step of the rehearsed data-corruption recovery (its DNS
/// switch, after the restore it made) and one in the rehearsed region
/// restore (its verification, after the restore in us-west-2): each
/// rehearsal is FAILED with its run's own reason, the failover's still
/// passed, and the drill removes everything, the recoveries' restores in
/// both regions and its snapshot of the copy too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_in_the_rehearsed_corruption_recovery_or_region_restore_fails_that_rehearsal_and_leaves_nothing(
) {
    let stack = Stack::up();
    stack.replicate_to_us_west_2();
    let before = production_fingerprint(&stack).await;
    let (code, result) = stack.run(
        "dr-drill",
        &drill_input(),
        &[
            "--fault",
            "data-corruption/SwitchDns:1:Unsafe",
            "--fault",
            "region-failover/VerifyRestore:1:Unsafe",
        ],
    );
    assert_eq!(code, 1, "the drill fails: {result:#}");
    let report = report_of(&stack);
    assert_eq!(
        tests_of(&report),
        vec![
            ("backup_verification".to_owned(), "SUCCESSFUL".to_owned()),
            ("restore_test".to_owned(), "SUCCESSFUL".to_owned()),
            ("failover_test".to_owned(), "SUCCESSFUL".to_owned()),
            ("corruption_test".to_owned(), "FAILED".to_owned()),
            ("region_restore_test".to_owned(), "FAILED".to_owned()),
        ]
    );
    let region = &report["databases"][0]["tests"][4];
    let reason = region["reason"].as_str().expect("why");
    assert!(
        reason.contains("the region-failover run failed: ")
            && reason.contains("Unsafe")
            && reason.contains("ended failed (FAILED)"),
        "{reason}"
    );
    assert!(
        !reason.contains("still in us-west-2"),
        "discarded: {reason}"
    );
    assert_eq!(region["details"]["outcome"], "failed", "{region:#}");
    let corruption = &report["databases"][0]["tests"][3];
    let reason = corruption["reason"].as_str().expect("why");
    assert!(
        reason.contains("the data-corruption run ended failed (FAILED)"),
        "{reason}"
    );
    assert!(reason.contains("replaced nothing"), "{reason}");
    assert_eq!(corruption["details"]["outcome"], "failed", "{corruption:#}");
    assert_the_drill_left_nothing(&stack, &report, &before).await;
}
