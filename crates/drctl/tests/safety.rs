//! The failover as a careless operator at 3 a.m. would meet it, on the
//! local stack: a hung primary goes to a person; a broken probe never fails
//! over; typos change nothing; a killed run leaves no lock and a rerun
//! finishes what it began; the same alarm fails back.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use dr_core::*;
use serde_json::{json, Value};

/// A `drctl run` of the failover in the background, as on-call would leave
/// it waiting for an approval.
struct Background {
    child: Child,
}

impl Background {
    fn start(stack: &Stack, input: &Value, name: &str, extra: &[&str]) -> Background {
        Self::start_with_env(stack, input, name, extra, &[])
    }

    fn start_with_env(
        stack: &Stack,
        input: &Value,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Background {
        let path = stack.home.join(format!("input-{name}.json"));
        std::fs::write(&path, serde_json::to_vec(input).expect("json")).expect("input");
        let child = Command::new(env!("CARGO_BIN_EXE_drctl"))
            .args([
                "run",
                "statemachines/database-failover.asl.json",
                "--input",
                path.to_str().expect("path"),
                "--local",
                "--output",
                "json",
                "--name",
                name,
            ])
            .args(extra)
            .env("DRCTL_HOME", &stack.home)
            .envs(env.iter().copied())
            .current_dir(repo())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn drctl run");
        Background { child }
    }

    /// Waits for the run to end: its exit code and `--output json`.
    fn finish(self) -> (i32, Value) {
        let out = self.child.wait_with_output().expect("wait");
        let result = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "run printed no JSON: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), result)
    }
}

/// Waits until a message whose subject contains `text` has been delivered.
fn wait_for_message(stack: &Stack, text: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(m) = stack
            .messages()
            .into_iter()
            .find(|m| m["subject"].as_str().is_some_and(|s| s.contains(text)))
        {
            return m;
        }
        assert!(Instant::now() < deadline, "no message with {text:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn answer(stack: &Stack, verb: &str, execution: &str, reason: &str) -> std::process::Output {
    drctl(
        &stack.home,
        &[
            verb, execution, "--local", "--reason", reason, "--by", "alice",
        ],
    )
}

fn report_of(result: &Value) -> Value {
    let path = result["output"]["report"]["result"]["json_location"]
        .as_str()
        .unwrap_or_else(|| panic!("no report: {result:#}"));
    serde_json::from_slice(&std::fs::read(path).expect("report")).expect("json")
}

/// A short approval window for tests.
fn ask_quickly(seconds: u64) -> Value {
    json!({"approval": {"timeout_cap_seconds": seconds, "timeout_floor_seconds": seconds}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_primary_is_failed_over_only_when_a_person_approves_and_then_takes_no_write() {
    let stack = Stack::up();
    // A session the application opened before the primary hung.
    let old_session = stack.sql(PRIMARY).await;
    let dns_before = stack.dns_value().await;
    let hang = drctl(
        &stack.home,
        &["local", "hang", PRIMARY, "--home", stack.home_str()],
    );
    assert!(
        hang.status.success(),
        "{}",
        String::from_utf8_lossy(&hang.stderr)
    );
    assert_eq!(
        stack.describe(PRIMARY).await.status,
        InstanceStatus::Available,
        "the control plane still says available"
    );

    let run = Background::start(
        &stack,
        &stack.alarm_request(ask_quickly(300)),
        "hung-1",
        &[],
    );
    let question = wait_for_message(&stack, "APPROVAL NEEDED");
    let body = question["message"].as_str().unwrap_or_default();
    assert!(body.contains("drctl approve hung-1"), "{body}");
    assert!(
        body.contains("a hung server or a network partition"),
        "{body}"
    );
    assert_eq!(
        stack.dns_value().await,
        dns_before,
        "nothing moves before the answer"
    );
    assert_eq!(stack.describe(REPLICA).await.role, InstanceRole::Replica);

    let approved = answer(
        &stack,
        "approve",
        "hung-1",
        "the host is gone from every zone",
    );
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let (code, result) = run.finish();
    assert_eq!(code, 0, "{result:#}");
    assert!(stack.describe(REPLICA).await.is_standalone_and_available());
    assert_eq!(stack.dns_value().await, stack.address(REPLICA).await);
    let report = report_of(&result);
    assert_eq!(report["evidence"]["decision"], "ask");
    assert!(
        report["approval"]
            .as_str()
            .is_some_and(|a| a.starts_with("approved by alice") && a.contains("every zone")),
        "{report:#}"
    );
    assert!(
        stack.describe(PRIMARY).await.tags.contains_key(FENCED_TAG),
        "the old primary is fenced"
    );

    // The old primary comes back: it accepts no application write, neither
    // on a new connection nor on the session it had before it hung.
    let resume = drctl(
        &stack.home,
        &["local", "resume", PRIMARY, "--home", stack.home_str()],
    );
    assert!(resume.status.success());
    let target = stack
        .platform()
        .database_target(&id(PRIMARY), None)
        .expect("target");
    let refused = dr_postgres::connect_classified(&target)
        .await
        .map(drop)
        .expect_err("a fenced primary refuses the application");
    assert_eq!(refused.failure, ProbeFailure::AccessDenied, "{refused:?}");
    let write = old_session
        .batch_execute("INSERT INTO users (username, email, display_name) VALUES ('split-brain', 's@b.example', 'S')")
        .await
        .expect_err("the session opened before the hang must not write to the fenced primary");
    assert!(
        write
            .as_db_error()
            .is_none_or(|db| db.code().code().starts_with("57P")),
        "the session was ended, not refused by the data: {write:?}"
    );
    let n: i64 = stack
        .sql(REPLICA)
        .await
        .query_one(
            "SELECT count(*) FROM users WHERE username = 'split-brain'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_failover_changes_nothing_and_the_report_says_who_said_no() {
    let stack = Stack::up();
    let dns_before = stack.dns_value().await;
    let hang = drctl(
        &stack.home,
        &["local", "hang", PRIMARY, "--home", stack.home_str()],
    );
    assert!(hang.status.success());
    let run = Background::start(
        &stack,
        &stack.alarm_request(ask_quickly(300)),
        "hung-2",
        &[],
    );
    wait_for_message(&stack, "APPROVAL NEEDED");
    let rejected = answer(
        &stack,
        "reject",
        "hung-2",
        "network maintenance in us-east-1a, it will come back",
    );
    assert!(
        rejected.status.success(),
        "{}",
        String::from_utf8_lossy(&rejected.stderr)
    );
    let (code, result) = run.finish();
    assert_eq!(
        code, 0,
        "a rejection is an answer, not a failure: {result:#}"
    );
    assert_eq!(stack.describe(REPLICA).await.role, InstanceRole::Replica);
    assert_eq!(stack.dns_value().await, dns_before);
    assert!(!stack.describe(PRIMARY).await.tags.contains_key(FENCED_TAG));
    let report = report_of(&result);
    assert_eq!(report["outcome"], "rejected");
    assert_eq!(report["changes"], json!([]));
    assert!(
        report["approval"]
            .as_str()
            .is_some_and(|a| a.starts_with("rejected by alice") && a.contains("maintenance")),
        "{report:#}"
    );
    wait_for_message(&stack, "rejected: nothing was changed");
    // A second answer is refused: it was answered once.
    let again = answer(&stack, "approve", "hung-2", "changed my mind");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already rejected"));
    drctl(
        &stack.home,
        &["local", "resume", PRIMARY, "--home", stack.home_str()],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_before_the_deadline_changes_nothing_and_pages() {
    let stack = Stack::up();
    let dns_before = stack.dns_value().await;
    let hang = drctl(
        &stack.home,
        &["local", "hang", PRIMARY, "--home", stack.home_str()],
    );
    assert!(hang.status.success());
    let (code, result) = stack.alarm_failover(ask_quickly(3), &["--name", "hung-3"]);
    assert_eq!(code, 1, "{result:#}");
    assert_eq!(result["error"], "ApprovalTimedOut");
    assert_eq!(stack.describe(REPLICA).await.role, InstanceRole::Replica);
    assert_eq!(stack.dns_value().await, dns_before);
    let page = wait_for_message(&stack, "NOT done: nobody approved it in time");
    assert_eq!(page["attributes"]["severity"], "critical");
    let late = answer(&stack, "approve", "hung-3", "sorry, I was asleep");
    assert!(!late.status.success(), "a late answer is refused");
    assert!(
        String::from_utf8_lossy(&late.stderr).contains("expired"),
        "{}",
        String::from_utf8_lossy(&late.stderr)
    );
    drctl(
        &stack.home,
        &["local", "resume", PRIMARY, "--home", stack.home_str()],
    );
}

/// A misconfiguration of our own side, with a healthy primary: the run ends
/// "cannot confirm the failure" naming the cause, and nothing is promoted.
async fn refuses_to_fail_over(stack: &Stack, env: &[(&str, &str)], cause: &str) {
    let dns_before = stack.dns_value_or_none().await;
    let (code, result) = Background::start_with_env(
        stack,
        &stack.alarm_request(json!({})),
        "misconfigured",
        &[],
        env,
    )
    .finish();
    assert_eq!(code, 1, "{result:#}");
    assert_eq!(result["error"], "CannotConfirmFailure", "{result:#}");
    assert!(
        !state_names(&result).contains(&"FenceOldPrimary".to_owned()),
        "nothing is touched"
    );
    assert_eq!(stack.describe(REPLICA).await.role, InstanceRole::Replica);
    assert_eq!(
        stack.describe(PRIMARY).await.status,
        InstanceStatus::Available
    );
    assert_eq!(stack.dns_value_or_none().await, dns_before, "DNS untouched");
    let page = wait_for_message(stack, "NOT started: cannot confirm the failure");
    let body = page["message"].as_str().unwrap_or_default();
    assert!(body.contains(cause), "{cause:?} not in {body}");
    assert!(body.contains("- nothing was changed"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_in_the_secret_pages_and_never_fails_over() {
    let stack = Stack::up();
    stack
        .moto_clients()
        .await
        .secrets
        .put_secret_value()
        .secret_id("muejam/db/master")
        .secret_string(
            json!({"username": "muejam_admin", "password": "not-the-password"}).to_string(),
        )
        .send()
        .await
        .expect("put secret");
    refuses_to_fail_over(&stack, &[], "(authentication)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_bundle_that_does_not_match_pages_and_never_fails_over() {
    let stack = Stack::up();
    let stranger = tempfile::tempdir().expect("tmp");
    let ca = dr_local::tls::LocalCa::load_or_create(&stranger.path().join("tls")).expect("CA");
    let ca_file = ca.ca_file();
    refuses_to_fail_over(
        &stack,
        &[("DB_TLS_CA_FILE", ca_file.to_str().expect("path"))],
        "(tls)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_pages_and_never_fails_over() {
    let stack = Stack::up();
    stack
        .moto_clients()
        .await
        .secrets
        .delete_secret()
        .secret_id("muejam/db/master")
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("delete secret");
    refuses_to_fail_over(&stack, &[], "(secret_unavailable)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_record_that_does_not_resolve_pages_and_never_fails_over() {
    let stack = Stack::up();
    stack.delete_dns_record().await;
    refuses_to_fail_over(&stack, &[], "(dns_unresolvable)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_alarm_fails_over_and_then_fails_back_with_nothing_edited() {
    let stack = Stack::up();
    let alarm = alarm_event_input();
    stack.crash(PRIMARY);
    let (code, result) = stack.run("database-failover", &alarm, &["--virtual-time"]);
    assert_eq!(code, 0, "{result:#}");
    assert_eq!(stack.dns_value().await, stack.address(REPLICA).await);

    // The new primary fails too: the very same alarm event fails back.
    stack.crash(REPLICA);
    let (code, result) = stack.run("database-failover", &alarm, &["--virtual-time"]);
    assert_eq!(code, 0, "{result:#}");
    let second = stack.describe(NEW_REPLICA).await;
    assert!(second.is_standalone_and_available(), "{second:?}");
    assert_eq!(
        stack.dns_value().await,
        second.endpoint.expect("endpoint").address,
        "DNS points at the second promoted instance"
    );
    let follower = stack.describe("muejam-db-prod-r2").await;
    assert_eq!(follower.replication_source, Some(id(NEW_REPLICA)));
    let topology = stack.topology().await;
    assert_eq!(topology.primary, id(NEW_REPLICA));
    assert_eq!(topology.replicas, vec![id("muejam-db-prod-r2")]);
    assert_eq!(topology.fenced, vec![id(PRIMARY), id(REPLICA)]);
    let client = stack.sql(NEW_REPLICA).await;
    client
        .batch_execute("INSERT INTO users (username, email, display_name) VALUES ('after-fail-back', 'b@f.example', 'B')")
        .await
        .expect("the second new primary takes writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_primary_or_database_changes_nothing_and_exits_2() {
    let stack = Stack::up();
    let dns_before = stack.dns_value().await;
    for (changes, says) in [
        (
            json!({"primary_instance_id": "muejam-db-prdo"}),
            "primary_instance_id muejam-db-prdo is not the primary of muejam",
        ),
        (
            json!({"database": "muejm"}),
            "muejm\\\" is not registered in the topology registry",
        ),
        (
            json!({"allow_data_los": true}),
            "unknown field `allow_data_los`",
        ),
        (
            json!({"dns": {"hosted_zone": "muejam.internal", "record_name": "db.muejam.internal", "ttl": 0}}),
            "unknown field `dns`",
        ),
        (
            json!({"database": "m".repeat(200 * 1024)}),
            "must be 1 to 63 lower-case letters",
        ),
    ] {
        let (code, result) = stack.failover(changes.clone(), &["--virtual-time"]);
        assert_eq!(code, 2, "{changes}: {result:#}");
        assert_eq!(result["error"], "InvalidInput");
        let cause = result["cause"].as_str().unwrap_or_default();
        assert!(cause.contains(says), "{says:?} not in {cause}");
        assert!(cause.len() < 2000, "no huge echo");
        let states = state_names(&result);
        assert!(!states.contains(&"AcquireLock".to_owned()), "{states:?}");
    }
    // Past 256 KiB, no execution starts at all (as StartExecution refuses it).
    let path = stack.home.join("huge-input.json");
    std::fs::write(
        &path,
        stack
            .request(json!({"database": "m".repeat(1 << 20)}))
            .to_string(),
    )
    .expect("input");
    let out = drctl(
        &stack.home,
        &[
            "run",
            "statemachines/database-failover.asl.json",
            "--input",
            path.to_str().expect("path"),
            "--local",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("Step Functions starts no execution with an input over 262144 bytes"));
    assert_eq!(stack.describe(REPLICA).await.role, InstanceRole::Replica);
    assert_eq!(stack.dns_value().await, dns_before);
    assert!(stack.locks().await.is_empty(), "no lock was taken");
    let subjects = stack.subjects();
    assert_eq!(
        subjects
            .iter()
            .filter(|s| s.contains("NOT started: its input was refused (InvalidInput)"))
            .count(),
        5,
        "each refusal is told: {subjects:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_with_a_zero_ttl_or_a_huge_record_is_refused_before_anything_moves() {
    let stack = Stack::up();
    stack.crash(PRIMARY);
    for (field, value, says) in [
        ("ttl", json!(0), "dns.ttl 0 must be between 1 and 3600"),
        (
            "record_name",
            // (DynamoDB keeps items under 400 KB: a megabyte cannot even be stored.)
            json!("r".repeat(300_000)),
            "300000 characters, at most 253",
        ),
    ] {
        // Written behind the registry's back, as a hand edit would.
        let mut topology = serde_json::to_value(stack.topology().await).expect("json");
        topology["dns"][field] = value;
        stack.write_raw_topology(&topology).await;
        let (code, result) = stack.alarm_failover(json!({}), &["--virtual-time"]);
        assert_eq!(code, 2, "{field}: {result:#}");
        let cause = result["cause"].as_str().unwrap_or_default();
        assert!(cause.contains(says), "{says:?} not in {cause}");
        assert_eq!(stack.describe(REPLICA).await.role, InstanceRole::Replica);
    }
}

/// Starts a failover in the background and kills it (SIGKILL) once the
/// state `after` has finished, while the run sleeps in a retry of the next
/// task (a throttle injected into it).
fn kill_after(stack: &Stack, input: &Value, name: &str, after: &str, next: &str) {
    let fault = format!("{next}:1:Throttled");
    let mut run = Background::start(stack, input, name, &["--fault", &fault]);
    let stderr = run.child.stderr.take().expect("stderr");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let marker = format!("✔ {after}");
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains(&marker) => break,
            Some(Ok(_)) => {}
            _ => panic!("the run ended before {after}"),
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    run.child.kill().expect("kill -9");
    let _ = run.child.wait();
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
    let mut run = Background::start(&stack, &alarm, "replica-kill", &[]);
    let stderr = run.child.stderr.take().expect("stderr");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("▶ CreateReplica") => break,
            Some(Ok(_)) => {}
            _ => panic!("the run ended before CreateReplica"),
        }
    }
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
    run.child.kill().expect("kill -9");
    let _ = run.child.wait();
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
    let file = stack.home.join("sweep.json");
    std::fs::write(&file, payload.to_string()).expect("payload");
    let out = drctl(
        &stack.home,
        &[
            "invoke",
            "recovery-lock",
            "--local",
            "--payload",
            file.to_str().expect("path"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stack.locks().await.is_empty());
    wait_for_message(
        &stack,
        "Released the recovery lock of muejam: its holder ABORTED",
    );
}
