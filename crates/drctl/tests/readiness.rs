//! `drctl readiness` on the local stack: every scenario ready on a healthy
//! stack with a verified backup-region copy; then each thing that breaks a
//! scenario (the replica down, the copy gone, nobody subscribed to the
//! alerts) makes exactly the scenarios that need it not ready, each with
//! the reason.

mod common;

use common::*;
use dr_core::*;
use serde_json::{json, Value};

const REPLICATION: &str = "statemachines/snapshot-replication.asl.json";

/// `drctl readiness --local --output json`: the exit code and the report.
fn readiness(stack: &Stack, request: &Value) -> (i32, Value) {
    let path = stack.home.join(format!("readiness-{}.json", uuid_like()));
    std::fs::write(&path, request.to_string()).expect("request");
    let out = drctl(
        &stack.home,
        &[
            "readiness",
            "--local",
            "--input",
            path.to_str().expect("path"),
            "--output",
            "json",
        ],
    );
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report)
}

/// The scenarios not ready, with their reasons.
fn not_ready(report: &Value) -> Vec<(String, Vec<String>)> {
    report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .filter(|s| s["ready"] == false)
        .map(|s| {
            (
                s["scenario"].as_str().unwrap_or_default().to_owned(),
                s["reasons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            )
        })
        .collect()
}

fn names(not_ready: &[(String, Vec<String>)]) -> Vec<&str> {
    not_ready.iter().map(|(s, _)| s.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broken_precondition_makes_exactly_its_scenarios_not_ready() {
    let stack = Stack::up();
    // What a deployed stack has: a verified copy in the backup region (the
    // snapshot replication's), and the WAF IP set the breach fills.
    let mut replication: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/snapshot-replication.json")).expect("event"),
    )
    .expect("json");
    replication["kms_key_id"] = json!("local/us-west-2/snapshots");
    replication["poll_interval_seconds"] = json!(1);
    let (code, result) = stack.run(
        REPLICATION,
        &replication,
        &["--virtual-time", "--name", "copy-1"],
    );
    assert_eq!(code, 0, "{result:#}");
    // `drctl executions` lists it, by scenario too.
    let copied = vec![("copy-1".to_owned(), "SUCCEEDED".to_owned())];
    assert_eq!(stack.executions(Some("snapshot-replication")), copied);
    assert_eq!(stack.executions(None), copied);
    assert!(stack.executions(Some("database-failover")).is_empty());
    let ip_set = stack
        .create_ip_set(
            "muejam-blocked",
            aws_sdk_wafv2::types::IpAddressVersion::Ipv4,
            &["198.51.100.1/32"],
        )
        .await;
    let mut request: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/readiness.json")).expect("event"),
    )
    .expect("json");
    request["ip_set"] = json!(ip_set);

    let (code, report) = readiness(&stack, &request);
    assert_eq!(code, 0, "{report:#}");
    assert!(not_ready(&report).is_empty(), "{report:#}");
    assert_eq!(report["scenarios"].as_array().map(Vec::len), Some(7));

    // A careless request is refused, not judged.
    let mut bad = request.clone();
    bad["rpo_seconds"] = json!(0);
    assert_eq!(readiness(&stack, &bad).0, 2);
    let mut unknown = request.clone();
    unknown["database"] = json!("muejam-typo");
    assert_eq!(readiness(&stack, &unknown).0, 2);

    // The replica down: only the failover depends on it.
    stack.crash(REPLICA);
    let (code, report) = readiness(&stack, &request);
    assert_eq!(code, 1, "{report:#}");
    let broken = not_ready(&report);
    assert_eq!(names(&broken), ["database-failover"], "{report:#}");
    assert!(
        broken[0].1[0].starts_with("replica_in_sync: no replica in sync: muejam-db-prod-replica"),
        "{broken:?}"
    );

    // The backup region's copy gone: the region failover cannot restore.
    let west = stack.platform().in_region("us-west-2").expect("west");
    for copy in west.list_snapshots(None).await.expect("copies") {
        west.delete_snapshot(&copy.snapshot_id)
            .await
            .expect("delete");
    }
    let (_, report) = readiness(&stack, &request);
    let broken = not_ready(&report);
    assert_eq!(
        names(&broken),
        ["database-failover", "region-failover"],
        "{report:#}"
    );
    assert_eq!(
        broken[1].1,
        ["backup_copy: no verified copy of muejam in us-west-2"]
    );

    // Nobody subscribed to the alerts: no scenario can tell anyone.
    let sns = stack.moto_clients().await.sns;
    let topic = request["alerts_topic_arn"].as_str().expect("topic");
    let subscriptions = sns
        .list_subscriptions_by_topic()
        .topic_arn(topic)
        .send()
        .await
        .expect("subscriptions");
    for s in subscriptions.subscriptions() {
        sns.unsubscribe()
            .subscription_arn(s.subscription_arn().expect("arn"))
            .send()
            .await
            .expect("unsubscribe");
    }
    let (code, report) = readiness(&stack, &request);
    assert_eq!(code, 1);
    let broken = not_ready(&report);
    assert_eq!(broken.len(), 7, "{report:#}");
    assert!(
        broken.iter().all(|(_, reasons)| reasons.iter().any(|r| r
            .starts_with("alerts_subscriber: nobody will read arn:aws:sns:us-east-1:123456789012:muejam-dr-alerts"))),
        "{broken:?}"
    );
}
