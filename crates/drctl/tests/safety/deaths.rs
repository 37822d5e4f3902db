//! A killed run leaves no lock, and a rerun finishes what it began.

use super::*;

/// Starts a failover in the background and kills it (SIGKILL) once the
/// state `after` has finished, while the run sleeps in a retry of the next
/// task (a throttle injected into it).
fn kill_after(stack: &Stack, input: &Value, name: &str, after: &str, next: &str) {
    let fault = format!("{next}:1:Throttled");
    let mut run = Background::start(stack, FAILOVER, input, name, &["--fault", &fault]);
    run.wait_for_line(&format!("✔ {after}"));
    std::thread::sleep(Duration::from_millis(300));
    run.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_after_promotion_leaves_no_lock_and_a_rerun_finishes_it() {
    let stack = Stack::up();
    stack.crash(PRIMARY);
    let alarm = stack.alarm_request(json!({}));
    kill_after(
        &stack,
        &alarm,
        "first",
        "PromoteReplica",
        "DescribePromoted",
    );
    assert!(stack.describe(REPLICA).await.is_standalone_and_available());
    assert_eq!(
        stack.dns_value().await,
        stack.address(PRIMARY).await,
        "killed before DNS moved"
    );
    let locks = stack.locks().await;
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert!(locks[0].owner.ends_with(":first"));
    let status = drctl(
        &stack.home,
        &["local", "status", "--home", stack.home_str()],
    );
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("LOCK muejam held by") && status.contains("ABORTED: stale"),
        "{status}"
    );

    // A new execution resumes the same recovery: it takes over the dead
    // run's lock (and says so) and finishes from where it stopped.
    let (code, result) = stack.run(
        "database-failover",
        &stack.alarm_request(json!({"recovery_id": "first"})),
        &["--virtual-time", "--name", "second"],
    );
    assert_eq!(code, 0, "{result:#}");
    assert_eq!(
        result["output"]["steps"]["confirm"]["result"]["decision"],
        "resume"
    );
    assert_eq!(stack.dns_value().await, stack.address(REPLICA).await);
    assert!(stack.describe(NEW_REPLICA).await.replication_source == Some(id(REPLICA)));
    assert!(
        stack.locks().await.is_empty(),
        "no lock outlives its holder"
    );
    assert!(
        stack
            .subjects()
            .iter()
            .any(|s| s.contains("Released the recovery lock of muejam: its holder ABORTED")),
        "{:?}",
        stack.subjects()
    );
    let report = report_of(&result);
    let changes: Vec<String> = report["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["what"].as_str().map(str::to_owned))
        .collect();
    assert!(
        changes[0].starts_with("fenced old primary")
            && changes[0].ends_with("(by execution first)"),
        "{changes:?}"
    );
    assert!(
        changes[1].starts_with("promoted read replica muejam-db-prod-replica")
            && changes[1].ends_with("(by execution first)"),
        "{changes:?}"
    );
    assert!(
        changes[2].starts_with("pointed db.muejam.internal"),
        "{changes:?}"
    );
    assert_eq!(
        report["rpo"]["met"], true,
        "the lag the first run promoted at: {report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_after_a_kill_during_the_new_replica_reports_the_replica_failed() {
    let stack = Stack::up();
    stack.crash(PRIMARY);
    let alarm = stack.alarm_request(json!({}));
    // Killed while CreateReplica builds the replica (its base backup).
    let mut run = Background::start(&stack, FAILOVER, &alarm, "replica-kill", &[]);
    run.wait_for_line("▶ CreateReplica");
    // Once the new instance exists (its base backup is being taken), kill.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stack
        .platform()
        .store()
        .read()
        .expect("state")
        .instances
        .contains_key(&id(NEW_REPLICA))
    {
        assert!(
            Instant::now() < deadline,
            "CreateReplica never began the instance"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    run.kill();
    assert_ne!(
        stack.describe(NEW_REPLICA).await.status,
        InstanceStatus::Available,
        "killed in the middle of building it"
    );

    let (code, result) = stack.run(
        "database-failover",
        &alarm,
        &["--virtual-time", "--name", "replica-kill"],
    );
    assert_eq!(code, 0, "the failover stands: {result:#}");
    let report = report_of(&result);
    assert_eq!(report["passed"], false, "{report:#}");
    let replica = report["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["step"] == "replica")
        .cloned()
        .expect("the replica is in the report");
    assert_ne!(replica["outcome"], "done", "{replica:#}");
    let markdown = std::fs::read_to_string(
        result["output"]["report"]["result"]["markdown_location"]
            .as_str()
            .expect("md"),
    )
    .expect("markdown");
    assert!(markdown.contains("**Result: FAILED**"), "{markdown}");
    assert!(
        markdown.contains("FAILED: creating the replica muejam-db-prod-r1")
            || markdown.contains("BEGUN, NOT FINISHED: creating the replica muejam-db-prod-r1"),
        "{markdown}"
    );
    assert!(!markdown.contains("Changes made\n\n- none"), "{markdown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_releases_the_locks_of_an_execution_that_ended() {
    let stack = Stack::up();
    let owner = "arn:aws:states:local:000000000000:execution:database-failover:gone";
    // The registry knows the execution, and that its process is gone.
    dr_local::executions::LocalExecutions::new(&stack.home)
        .start(&dr_local::executions::ExecutionRecord {
            name: "gone".to_owned(),
            arn: owner.to_owned(),
            state_machine: "database-failover".to_owned(),
            pid: u32::MAX - 7,
            started_at: chrono::Utc::now(),
            state: ExecutionState::Running,
            stopped_at: None,
        })
        .expect("record");
    let _lock = stack.hold_recovery_lock(DATABASE, owner).await;
    let template =
        dr_runner::sam::SamTemplate::load(&repo().join("template.yaml")).expect("template");
    let rule = template
        .event_rules("RecoveryLockFunction")
        .expect("rules")
        .into_iter()
        .find(|r| r.name == "ExecutionEnded")
        .expect("the sweeper rule");
    let mut event: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/execution-status-change.json")).expect("event"),
    )
    .expect("json");
    event["detail"]["executionArn"] = json!(owner);
    let payload = rule.transform(&event).expect("transforms");
    stack.invoke("recovery-lock", &payload);
    assert!(stack.locks().await.is_empty());
    wait_for_message(
        &stack,
        "Released the recovery lock of muejam: its holder ABORTED",
    );
}
