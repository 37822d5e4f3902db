//! Snapshot replication end to end on the local stack: real snapshots of
//! the primary in us-east-1, copied into us-west-2 re-encrypted with that
//! region's key, verified, pruned, and their age in moto's CloudWatch.

mod common;

use common::*;
use dr_core::*;
use dr_local::sealed::SnapshotKey;
use serde_json::{json, Value};

const REPLICATION: &str = "statemachines/snapshot-replication.asl.json";

/// The sample input with `changes`, pointed at the local backup key.
fn request(changes: Value) -> Value {
    let mut input: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/snapshot-replication.json")).expect("event"),
    )
    .expect("json");
    input["kms_key_id"] = json!("local/us-west-2/snapshots");
    input["poll_interval_seconds"] = json!(1);
    if let (Some(i), Some(c)) = (input.as_object_mut(), changes.as_object()) {
        i.extend(c.clone());
    }
    input
}

fn replicate(stack: &Stack, name: &str, changes: Value, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--virtual-time", "--name", name];
    args.extend_from_slice(extra);
    stack.run(REPLICATION, &request(changes), &args)
}

async fn copies(stack: &Stack) -> Vec<SnapshotDescription> {
    let west = stack.platform().in_region("us-west-2").expect("west");
    west.list_snapshots(None).await.expect("copies")
}

fn names(snapshots: &[SnapshotDescription]) -> Vec<String> {
    snapshots
        .iter()
        .map(|s| s.snapshot_id.to_string())
        .collect()
}

fn report_of(stack: &Stack, name: &str) -> Value {
    stack.report_named("snapshot-replication", name)
}

/// The ages published for the database in the last hour: the largest,
/// and how many were published.
async fn published_ages(stack: &Stack) -> (f64, f64) {
    let clients = stack.moto_clients().await;
    let now = aws_smithy_types::DateTime::from_secs(chrono::Utc::now().timestamp() + 60);
    let start = aws_smithy_types::DateTime::from_secs(chrono::Utc::now().timestamp() - 3600);
    let stats = clients
        .cloudwatch
        .get_metric_statistics()
        .namespace("MueJam/DR")
        .metric_name("BackupRegionSnapshotAgeSeconds")
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("Database")
                .value(DATABASE)
                .build(),
        )
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("Region")
                .value("us-west-2")
                .build(),
        )
        .start_time(start)
        .end_time(now)
        .period(60)
        .statistics(aws_sdk_cloudwatch::types::Statistic::Maximum)
        .statistics(aws_sdk_cloudwatch::types::Statistic::SampleCount)
        .send()
        .await
        .expect("statistics");
    let points = stats.datapoints();
    (
        points
            .iter()
            .filter_map(|d| d.maximum())
            .fold(0.0, f64::max),
        points.iter().filter_map(|d| d.sample_count()).sum(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_open_only_with_the_backup_key_are_made_once_pruned_to_n_and_measured() {
    let stack = Stack::up();
    let east = stack.platform();
    let west = east.in_region("us-west-2").expect("west");
    let before_messages = stack.messages().len();

    // The stack's automated backup is fresh: it is copied as it is.
    let (code, result) = replicate(&stack, "repl-1", json!({"retain": 2}), &[]);
    assert_eq!(code, 0, "{result:#}");
    let first = copies(&stack).await;
    assert_eq!(first.len(), 1, "{:?}", names(&first));
    let copy = &first[0];
    assert!(copy
        .snapshot_id
        .as_str()
        .starts_with("dr-copy-rds-muejam-db-prod-"));
    assert_eq!(copy.region.as_deref(), Some("us-west-2"));
    assert!(copy.tags.contains_key("dr:verified"), "{:?}", copy.tags);
    assert_eq!(
        copy.tags.get("dr:copy-of").map(String::as_str),
        Some(DATABASE)
    );

    // Sealed for us-west-2: the us-east-1 key cannot open it.
    let file = west.snapshot_file(&copy.snapshot_id).expect("file");
    let scratch = tempfile::tempdir().expect("scratch");
    let east_key = SnapshotKey::load(east.snapshot_key_file()).expect("east key");
    let west_key = SnapshotKey::load(west.snapshot_key_file()).expect("west key");
    assert_eq!(
        east_key
            .open_into_data_dir(&file, &scratch.path().join("east"))
            .expect_err("the us-east-1 key cannot open the copy")
            .name(),
        "Corrupt"
    );
    west_key
        .open_into_data_dir(&file, &scratch.path().join("west"))
        .expect("the us-west-2 key opens it");

    // The report says ready; nobody is paged for a run that went well.
    let report = report_of(&stack, "repl-1");
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(stack.messages().len(), before_messages, "no page");
    let (oldest, published) = published_ages(&stack).await;
    assert_eq!(published, 1.0, "the age reached CloudWatch");
    assert!(oldest < 3600.0, "{oldest}");

    // A second run finds the same fresh snapshot: nothing new is made. A
    // throttle at every task of it is retried.
    let throttles: Vec<String> = ["Plan", "Source", "Copy", "Verify", "Prune", "Report"]
        .iter()
        .map(|t| format!("{t}:1:Throttled"))
        .collect();
    let mut extra = Vec::new();
    for fault in &throttles {
        extra.extend(["--fault", fault.as_str()]);
    }
    let (code, result) = replicate(&stack, "repl-2", json!({"retain": 2}), &extra);
    assert_eq!(code, 0, "{result:#}");
    let second = copies(&stack).await;
    assert_eq!(names(&second), names(&first));
    assert_eq!(second[0].created_at, copy.created_at, "not copied again");
    let east_snapshots = east.list_snapshots(None).await.expect("east");
    assert_eq!(east_snapshots.len(), 1, "{:?}", names(&east_snapshots));

    // Nothing is fresh enough: each run takes a snapshot and copies it;
    // retain 2 keeps exactly the two newest verified copies.
    for run in ["repl-3", "repl-4", "repl-5"] {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let (code, result) = replicate(
            &stack,
            run,
            json!({"retain": 2, "fresh_within_seconds": 0}),
            &[],
        );
        assert_eq!(code, 0, "{run}: {result:#}");
    }
    let pruned = copies(&stack).await;
    assert_eq!(pruned.len(), 2, "{:?}", names(&pruned));
    assert!(pruned
        .iter()
        .all(|c| c.snapshot_id.as_str().starts_with("dr-copy-dr-repl-")));
    let taken = east.list_snapshots(None).await.expect("east");
    assert_eq!(
        taken.len(),
        4,
        "three taken in us-east-1: {:?}",
        names(&taken)
    );
    let newest_source = taken.iter().map(|s| s.created_at).max().expect("a source");
    assert!(
        pruned.iter().any(|c| c.data_time() == newest_source),
        "the newest copy is kept"
    );
    assert_eq!(published_ages(&stack).await.1, 5.0, "one age per run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_region_pages_and_bad_input_or_a_failed_step_leaves_no_copy() {
    let stack = Stack::up();
    let before = stack.messages().len();

    // Bad input: refused before anything is taken or copied.
    for (what, changes) in [
        (
            "a key of the source region",
            json!({"kms_key_id": "arn:aws:kms:us-east-1:1:key/e"}),
        ),
        (
            "the source region as backup",
            json!({"backup_region": "us-east-1"}),
        ),
        (
            "a region the platform lacks",
            json!({"backup_region": "eu-west-9"}),
        ),
        ("an unknown database", json!({"databases": ["billing"]})),
        ("an unknown field", json!({"retian": 2})),
    ] {
        let (code, result) = replicate(&stack, "bad", changes, &[]);
        assert_eq!(code, 2, "{what}: {result:#}");
        assert_eq!(result["error"], "InvalidInput", "{what}: {result:#}");
    }
    assert!(copies(&stack).await.is_empty());

    // A permanent error at any step of the database's run: it fails, the
    // report pages, and no unverified copy counts as ready.
    for task in ["Source", "Copy", "Verify", "Prune"] {
        let name = format!("fault-{}", task.to_lowercase());
        let fault = format!("{task}:1:Unsafe");
        let (code, result) = replicate(&stack, &name, json!({}), &["--fault", &fault]);
        assert_eq!(code, 1, "{task}: {result:#}");
        assert_eq!(
            result["error"], "BackupRegionNotReady",
            "{task}: {result:#}"
        );
        let report = report_of(&stack, &name);
        assert_eq!(report["passed"], false, "{task}");
        let line = report["results"][0]["error"]["Error"].clone();
        assert_eq!(line, "Unsafe", "{task}: {report:#}");
    }
    // The run's own steps: a refused plan takes nothing; a report that
    // cannot be written fails the run (its alarm pages).
    for (task, error) in [("Plan", "Unsafe"), ("Report", "ReportFailed")] {
        let fault = format!("{task}:1:Unsafe");
        let (code, result) = replicate(&stack, "own-steps", json!({}), &["--fault", &fault]);
        assert_eq!(code, 1, "{task}: {result:#}");
        assert_eq!(result["error"], error, "{task}: {result:#}");
    }
    let pages: Vec<Value> = stack.messages()[before..].to_vec();
    assert_eq!(
        pages.len(),
        4,
        "one page per failed database run: {pages:#?}"
    );
    assert!(pages.iter().all(|p| p["subject"]
        .as_str()
        .is_some_and(|s| s.contains("Backup region us-west-2 is NOT ready for muejam"))));
    // The copy made before Verify failed stays unverified; the next good
    // run verifies it instead of copying again.
    let (code, result) = replicate(&stack, "after-faults", json!({}), &[]);
    assert_eq!(code, 0, "{result:#}");
    let made = copies(&stack).await;
    assert_eq!(made.len(), 1, "{:?}", names(&made));
    assert!(made[0].tags.contains_key("dr:verified"));

    // us-east-1 down: the source cannot be read; the page says so, and the
    // age of the copy already in us-west-2 is still published.
    let before = stack.messages().len();
    let ages_before = published_ages(&stack).await.1;
    let out = drctl(
        &stack.home,
        &[
            "local",
            "region-outage",
            "us-east-1",
            "--home",
            stack.home_str(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, result) = replicate(&stack, "east-down", json!({}), &[]);
    assert_eq!(code, 1, "{result:#}");
    let report = report_of(&stack, "east-down");
    assert_eq!(
        report["results"][0]["error"]["Error"], "Unavailable",
        "{report:#}"
    );
    assert_eq!(
        report["results"][0]["prune"]["newest_verified"],
        json!(made[0].snapshot_id.as_str()),
        "{report:#}"
    );
    let page = &stack.messages()[before..];
    assert_eq!(page.len(), 1);
    assert!(page[0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("Unavailable") && m.contains("newest verified copy is")));
    assert_eq!(published_ages(&stack).await.1, ages_before + 1.0);
    assert_eq!(copies(&stack).await.len(), 1, "nothing new, nothing lost");
    let out = drctl(
        &stack.home,
        &[
            "local",
            "region-restore",
            "us-east-1",
            "--home",
            stack.home_str(),
        ],
    );
    assert!(out.status.success());
}
