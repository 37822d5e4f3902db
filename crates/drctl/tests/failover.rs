//! The database failover end to end on the local stack: real PostgreSQL,
//! Route 53 / SNS / Secrets Manager / DynamoDB in moto, the very
//! statemachines/database-failover.asl.json run by `drctl run --local`.

use std::time::{Duration, Instant};

use dr_core::*;
use serde_json::{json, Value};

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_primary_fails_over_to_a_writable_replica_with_dns_a_new_replica_messages_and_a_report(
) {
    let stack = Stack::up();
    let primary_address = stack.address(PRIMARY).await;
    assert_eq!(
        stack.dns_value().await,
        primary_address,
        "seeded record points at the primary"
    );
    // The API holds connections to the primary before it dies.
    let app = stack.app_health_url();
    for _ in 0..2 {
        assert_eq!(Stack::http_get(&app).await.0, 200);
    }
    let servers_before = stack.app_servers();
    stack.crash(PRIMARY);

    // As the alarm's rule sends it when AppDeploymentName is configured: the
    // application is restarted (rolling) after the switch.
    let (code, result) = stack.failover(json!({"app": stack.app_target()}), &[]);
    assert_eq!(code, 0, "{result:#}");
    assert_eq!(result["status"], "SUCCEEDED");
    let servers_after = stack.app_servers();
    assert_eq!(servers_after.len(), servers_before.len());
    assert!(
        servers_after.iter().all(|s| !servers_before.contains(s)),
        "every server was replaced by the rolling restart: {servers_before:?} {servers_after:?}"
    );

    let promoted = stack.describe(REPLICA).await;
    assert!(promoted.is_standalone_and_available(), "{promoted:?}");
    let client = stack.sql(REPLICA).await;
    client
        .batch_execute("INSERT INTO users (username, email, display_name) VALUES ('after-failover', 'a@f.example', 'After')")
        .await
        .expect("the new primary takes writes");

    let replica_address = promoted.endpoint.expect("endpoint").address;
    assert_eq!(
        stack.dns_value().await,
        replica_address,
        "db.muejam.internal follows the promotion"
    );
    // The API is healthy again with no manual step (a dead connection is
    // dropped and the record resolved again), on every instance, and its
    // writes land on the new primary.
    let new_primary = stack.describe(REPLICA).await.endpoint.expect("endpoint");
    let new_primary = format!("{}:{}", new_primary.address, new_primary.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Stack::http_get(&app).await.0 != 200 {
        assert!(Instant::now() < deadline, "the API never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..4 {
        let (code, body) = Stack::http_get(&app).await;
        assert_eq!(
            (code, &body["database"]),
            (200, &json!(new_primary)),
            "{body}"
        );
    }
    let written: Value = reqwest::Client::new()
        .post(app.replace("/health", "/stories"))
        .json(&json!({"author_id": 1, "title": "after the failover"}))
        .send()
        .await
        .expect("write")
        .json()
        .await
        .expect("json");
    assert_eq!(written["database"], json!(new_primary), "{written}");

    let new_replica = stack.describe(NEW_REPLICA).await;
    assert_eq!(new_replica.role, InstanceRole::Replica);
    assert_eq!(new_replica.replication_source, Some(id(REPLICA)));
    assert_ne!(new_replica.availability_zone, promoted.availability_zone);
    let follower = stack.sql(NEW_REPLICA).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = follower
            .query_one(
                "SELECT count(*) FROM users WHERE username = 'after-failover'",
                &[],
            )
            .await
            .expect("read replica")
            .get(0);
        if n == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new replica never received the write"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let subjects = stack.subjects();
    assert!(
        subjects
            .iter()
            .any(|s| s.contains("Failover done: muejam-db-prod-replica is now the primary")),
        "{subjects:?}"
    );
    assert!(
        subjects
            .iter()
            .any(|s| s.contains("Report: database-failover of muejam PASSED")),
        "{subjects:?}"
    );

    // The old primary is fenced (kept, never deleted) and the registry
    // follows: the next trigger finds the new roles.
    let old = stack.describe(PRIMARY).await;
    assert!(old.tags.contains_key(FENCED_TAG), "{old:?}");
    let topology = stack.topology().await;
    assert_eq!(topology.primary, id(REPLICA));
    assert_eq!(topology.replicas, vec![id(NEW_REPLICA)]);
    assert_eq!(topology.fenced, vec![id(PRIMARY)]);

    let report_path = result["output"]["report"]["result"]["json_location"]
        .as_str()
        .expect("report location");
    let report: Value =
        serde_json::from_slice(&std::fs::read(report_path).expect("report file")).expect("json");
    assert_eq!(report["outcome"], "succeeded");
    assert!(
        report["rto"]["achieved_seconds"]
            .as_f64()
            .is_some_and(|s| s > 0.0 && s < 14_400.0),
        "{report:#}"
    );
    assert_eq!(report["rto"]["met"], true);
    assert!(
        report["rpo"]["achieved_seconds"].as_f64().is_some(),
        "{report:#}"
    );
    let mutations: Vec<&str> = report["mutations"]
        .as_array()
        .expect("mutations")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(mutations.len(), 7, "{mutations:?}");
    assert!(mutations[0].starts_with("fenced old primary muejam-db-prod"));
    assert!(mutations[1].starts_with("promoted read replica muejam-db-prod-replica"));
    assert!(mutations[2].starts_with("pointed db.muejam.internal"));
    assert!(mutations[3].starts_with("topology of muejam: muejam-db-prod-replica is the primary"));
    assert!(mutations[4].starts_with("created read replica muejam-db-prod-r1"));
    assert!(mutations[5].starts_with("topology of muejam: muejam-db-prod-r1 replicates"));
    assert!(
        mutations[6].starts_with("restarted muejam/muejam-api (rolling)"),
        "{mutations:?}"
    );
    let timeline = report["timeline"].as_array().expect("timeline");
    assert!(
        timeline.iter().any(|t| t["step"] == "app_health"
            && t["summary"]
                .as_str()
                .is_some_and(|s| s.contains("answered 200"))),
        "{timeline:?}"
    );
    assert_eq!(report["evidence"]["decision"], "automatic");
    let markdown = std::fs::read_to_string(report_path.replace(".json", ".md")).expect("markdown");
    assert!(
        markdown.contains("**Result: PASSED**") && markdown.contains("| RTO |"),
        "{markdown}"
    );

    // A second run after success changes nothing and still succeeds.
    let instances_before: Vec<InstanceId> = stack.instance_ids().await;
    // The alarm firing again finds the new primary healthy: nothing changes.
    let (code, again) = stack.alarm_failover(json!({}), &[]);
    assert_eq!(code, 0, "{again:#}");
    assert_eq!(
        again["output"]["report"]["result"]["outcome"],
        "false_alarm"
    );
    let instances_after: Vec<InstanceId> = stack.instance_ids().await;
    assert_eq!(instances_after, instances_before);
    assert_eq!(stack.dns_value().await, replica_address);
    let second_report: Value = serde_json::from_slice(
        &std::fs::read(
            again["output"]["report"]["result"]["json_location"]
                .as_str()
                .expect("location"),
        )
        .expect("file"),
    )
    .expect("json");
    assert_eq!(
        second_report["mutations"],
        json!([]),
        "the re-run is a no-op"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_primary_is_a_false_alarm_with_no_mutation() {
    let stack = Stack::up();
    let dns_before = stack.dns_value().await;
    let (code, result) = stack.failover(json!({}), &["--name", "false-alarm-1"]);
    assert_eq!(code, 0, "{result:#}");
    let states = state_names(&result);
    assert!(
        states.contains(&"ConcludeFalseAlarm".to_owned()),
        "{states:?}"
    );
    assert!(!states.contains(&"PromoteReplica".to_owned()), "{states:?}");
    assert_eq!(stack.dns_value().await, dns_before);
    assert_eq!(stack.describe(REPLICA).await.role, InstanceRole::Replica);
    assert!(stack
        .platform()
        .describe_instance(&id(NEW_REPLICA))
        .await
        .is_err());
    let subjects = stack.subjects();
    assert!(
        subjects
            .iter()
            .any(|s| s == "[MueJam DR] False alarm: muejam-db-prod is healthy, no failover"),
        "{subjects:?}"
    );
    assert_eq!(
        result["output"]["report"]["result"]["outcome"],
        "false_alarm"
    );

    // `drctl report` hands back the report the run stored, by its name.
    let stored = &result["output"]["report"]["result"];
    for (format, location) in [("md", "markdown_location"), ("json", "json_location")] {
        let out = drctl(
            &stack.home,
            &["report", "false-alarm-1", "--local", "--format", format],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = std::fs::read(stored[location].as_str().expect("location")).expect("file");
        assert_eq!(out.stdout, file, "{format}");
    }
    let unknown = drctl(&stack.home, &["report", "false-alarm-2", "--local"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("no md report of execution \"false-alarm-2\""),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_replica_is_not_promoted_unless_data_loss_is_accepted() {
    let stack = Stack::up();
    let dns_before = stack.dns_value().await;
    let replica = stack.sql(REPLICA).await;
    let primary = stack.sql(PRIMARY).await;
    // A first write that reaches the replica dates its replay position.
    primary
        .batch_execute("INSERT INTO users (username, email, display_name) VALUES ('replayed', 'r@f.example', 'R')")
        .await
        .expect("write");
    let deadline = Instant::now() + Duration::from_secs(30);
    while replica
        .query_one(
            "SELECT count(*) FROM users WHERE username = 'replayed'",
            &[],
        )
        .await
        .map(|r| r.get::<_, i64>(0))
        .unwrap_or(0)
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the first write never replicated"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    replica
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .expect("pause replay");
    primary
        .batch_execute("INSERT INTO users (username, email, display_name) VALUES ('unreplayed', 'u@f.example', 'U')")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stack.crash(PRIMARY);

    let (code, result) = stack.failover(json!({"max_lag_seconds": 1}), &["--virtual-time"]);
    assert_eq!(code, 1, "{result:#}");
    assert_eq!(result["error"], "ReplicaLagTooHigh");
    assert!(
        !state_names(&result).contains(&"FenceOldPrimary".to_owned()),
        "nothing is touched when the replica cannot take over"
    );
    assert_eq!(
        stack.describe(REPLICA).await.role,
        InstanceRole::Replica,
        "not promoted"
    );
    assert_eq!(stack.dns_value().await, dns_before, "DNS untouched");
    let failure = stack
        .messages()
        .into_iter()
        .find(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("BLOCKED: ReplicaLagTooHigh"))
        })
        .expect("a failure notification");
    assert!(
        failure["message"]
            .as_str()
            .is_some_and(|m| m.contains("allow_data_loss")),
        "{failure:#}"
    );

    let (code, result) = stack.failover(
        json!({"max_lag_seconds": 1, "allow_data_loss": true}),
        &["--virtual-time"],
    );
    assert_eq!(code, 0, "{result:#}");
    assert!(stack.describe(REPLICA).await.is_standalone_and_available());
    let n: i64 = stack
        .sql(REPLICA)
        .await
        .query_one(
            "SELECT count(*) FROM users WHERE username = 'unreplayed'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 1, "WAL received before promotion is applied, not lost");
}

const SUCCESS_PATH_TASKS: &[&str] = &[
    "ValidateInput",
    "AcquireLock",
    "ConfirmFailure",
    "FenceOldPrimary",
    "PromoteReplica",
    "DescribePromoted",
    "SwitchDns",
    "DnsStatus",
    "RecordSwitch",
    "VerifyNewPrimary",
    "CreateReplica",
    "RecordReplica",
    "NotifySuccess",
    "RestartApp",
    "AppRollout",
    "VerifyAppHealth",
    "ReleaseLock",
    "Report",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_throttle_at_every_task_is_retried_and_the_failover_still_succeeds() {
    let stack = Stack::up();
    stack.crash(PRIMARY);
    let faults: Vec<String> = SUCCESS_PATH_TASKS
        .iter()
        .map(|t| format!("{t}:1:Throttled"))
        .collect();
    let mut extra: Vec<&str> = vec!["--virtual-time"];
    for f in &faults {
        extra.push("--fault");
        extra.push(f);
    }
    let (code, result) = stack.failover(json!({"app": stack.app_target()}), &extra);
    assert_eq!(code, 0, "{result:#}");
    let failed_tasks = result["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|e| e["type"] == "TaskFailed")
        .count();
    assert_eq!(
        failed_tasks,
        SUCCESS_PATH_TASKS.len(),
        "each task failed once and was retried"
    );
    assert!(stack.describe(REPLICA).await.is_standalone_and_available());
    assert_eq!(stack.dns_value().await, stack.address(REPLICA).await);
}

/// A permanent error at any task: the run ends with a notification, DNS
/// only ever points at a promoted primary, and a rerun under the same name
/// resumes the same recovery from the journal (even after the registry has
/// moved on) until it is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_at_any_task_ends_with_a_notification_and_dns_only_ever_points_at_a_promoted_primary(
) {
    let stack = Stack::up();
    let primary_address = stack.address(PRIMARY).await;
    let app = json!({"app": stack.app_target()});
    stack.crash(PRIMARY);
    // Tasks whose failure stops the failover, in the order they run: each run
    // resumes from what the previous one left, as an operator's re-run would.
    for (task, subject) in [
        (
            "ValidateInput",
            "NOT started: its input was refused (Unsafe)",
        ),
        ("AcquireLock", "FAILED: Unsafe"),
        ("ConfirmFailure", "FAILED: Unsafe"),
        ("PromoteReplica", "FAILED: Unsafe"),
        ("DescribePromoted", "FAILED: Unsafe"),
        ("SwitchDns", "FAILED: Unsafe"),
        ("DnsStatus", "FAILED: Unsafe"),
        ("RecordSwitch", "FAILED: Unsafe"),
        ("VerifyNewPrimary", "FAILED: Unsafe"),
        ("Report", "FAILED: Unsafe"),
    ] {
        let fault = format!("{task}:1:Unsafe");
        let before = stack.subjects().len();
        let (code, result) = stack.failover(
            app.clone(),
            &["--virtual-time", "--name", "incident-1", "--fault", &fault],
        );
        assert_eq!(code, 1, "{task}: {result:#}");
        assert_eq!(result["status"], "FAILED", "{task}");
        assert_eq!(result["error"], "Unsafe", "{task}");
        let subjects = stack.subjects();
        assert!(
            subjects[before..].iter().any(|s| s.contains(subject)),
            "{task}: no failure notification in {:?}",
            &subjects[before..]
        );
        let dns = stack.dns_value().await;
        let replica = stack.describe(REPLICA).await;
        let replica_address = replica.endpoint.clone().expect("endpoint").address;
        assert!(
            dns == primary_address
                || (dns == replica_address && replica.is_standalone_and_available()),
            "{task}: DNS points at {dns}, which is not a promoted primary"
        );
    }
    // Failures that do not undo a finished failover: it succeeds and says so.
    // (A fence that fails is passed over because the control plane itself
    // reports the old primary failed.)
    for task in [
        "FenceOldPrimary",
        "CreateReplica",
        "RecordReplica",
        "NotifySuccess",
        // The application's restart and check: reported, never undoing.
        "RestartApp",
        "AppRollout",
        "VerifyAppHealth",
        "ReleaseLock",
    ] {
        let fault = format!("{task}:1:Unsafe");
        let (code, result) = stack.failover(
            app.clone(),
            &["--virtual-time", "--name", "incident-1", "--fault", &fault],
        );
        assert_eq!(code, 0, "{task}: {result:#}");
        assert_eq!(
            result["output"]["steps"]["confirm"]["result"]["decision"], "resume",
            "{task}: the rerun resumes the recovery"
        );
        assert!(
            result["history"]
                .as_array()
                .expect("history")
                .iter()
                .any(|e| e["type"] == "TaskFailed"),
            "{task}: the fault fired"
        );
    }
    let (code, result) = stack.failover(app.clone(), &["--virtual-time", "--name", "incident-1"]);
    assert_eq!(code, 0, "{result:#}");
    assert_eq!(stack.dns_value().await, stack.address(REPLICA).await);
    let report: Value = serde_json::from_slice(
        &std::fs::read(
            result["output"]["report"]["result"]["json_location"]
                .as_str()
                .expect("location"),
        )
        .expect("report"),
    )
    .expect("json");
    let changes: Vec<&str> = report["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["what"].as_str())
        .collect();
    assert!(
        changes[0].starts_with("fenced old primary muejam-db-prod"),
        "the fence of the first attempts is in the journal: {changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("promoted read replica muejam-db-prod-replica")),
        "{changes:?}"
    );
    assert!(report["passed"].as_bool().is_some(), "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_trigger_while_a_recovery_runs_does_nothing() {
    let stack = Stack::up();
    // A live holder: this very test process stands in for the running
    // execution of the first trigger.
    let lock = stack
        .hold_recovery_lock(
            DATABASE,
            "arn:aws:states:local:000000000000:execution:first",
        )
        .await;
    let dns_before = stack.dns_value().await;
    stack.crash(PRIMARY);

    let (code, result) = stack.failover(json!({}), &["--virtual-time"]);
    assert_eq!(code, 0, "{result:#}");
    let states = state_names(&result);
    assert_eq!(
        states.last().map(String::as_str),
        Some("AlreadyRunning"),
        "{states:?}"
    );
    assert!(!states.contains(&"PromoteReplica".to_owned()));
    assert_eq!(stack.describe(REPLICA).await.role, InstanceRole::Replica);
    assert_eq!(stack.dns_value().await, dns_before);
    assert!(stack
        .subjects()
        .iter()
        .any(|s| s.contains("already in progress")));
    assert_eq!(
        lock.holder(DATABASE)
            .await
            .expect("holder")
            .map(|h| h.owner)
            .as_deref(),
        Some("arn:aws:states:local:000000000000:execution:first"),
        "the second trigger does not take or release the first one's lock"
    );
}

#[test]
fn the_alarm_event_maps_to_the_failover_input() {
    let mapped = alarm_event_input();
    let manual: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/database-failover.json")).expect("event"),
    )
    .expect("json");
    assert_eq!(mapped["trigger"]["source"], "cloudwatch-alarm");
    assert_eq!(mapped["trigger"]["alarm"], "muejam-db-prod-unreachable");
    assert_eq!(mapped["trigger"]["time"], "2026-11-26T03:04:05Z");
    assert!(mapped["trigger"]["reason"]
        .as_str()
        .is_some_and(|r| r.starts_with("Threshold Crossed")));
    assert!(
        mapped.get("primary_instance_id").is_none(),
        "the alarm names the database, never instance ids: {mapped:#}"
    );
    // Against the same registry, an alarm plans exactly the failover a
    // person would start.
    let topology: Topology = serde_json::from_value(json!({
        "database": "muejam", "primary": "muejam-db-prod", "replicas": ["muejam-db-prod-replica"],
        "db_name": "muejam", "credentials_secret_id": "muejam/db/master",
        "dns": {"hosted_zone": "muejam.internal", "record_name": "db.muejam.internal", "ttl": 60},
        "instance_prefix": "muejam-db-prod", "version": 1
    }))
    .expect("topology");
    let execution = dr_scenarios::report::ExecutionInfo {
        id: "arn:x".to_owned(),
        name: "x".to_owned(),
        start_time: chrono::Utc::now(),
    };
    let plan = |input: Value| {
        let request: dr_scenarios::plan::FailoverRequest =
            serde_json::from_value(input).expect("a valid request");
        dr_scenarios::plan::check_request(&request).expect("checks");
        let mut plan =
            dr_scenarios::plan::resolve(&request, &topology, &execution).expect("resolves");
        plan.trigger = dr_scenarios::plan::Trigger {
            source: dr_scenarios::plan::TriggerSource::Manual,
            reason: None,
            alarm: None,
            time: None,
        };
        plan.approval = Default::default();
        plan
    };
    assert_eq!(
        plan(mapped),
        plan(manual),
        "an alarm starts exactly the failover a person would start"
    );
}
