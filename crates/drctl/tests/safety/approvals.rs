//! A hung primary goes to a person: approved, rejected, or unanswered.

use super::*;

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

    let mut run = Background::start(
        &stack,
        FAILOVER,
        &stack.alarm_request(ask_quickly(300)),
        "hung-1",
        &[],
    );
    let question = run.wait_for_message(&stack, "APPROVAL NEEDED");
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
    let mut run = Background::start(
        &stack,
        FAILOVER,
        &stack.alarm_request(ask_quickly(300)),
        "hung-2",
        &[],
    );
    run.wait_for_message(&stack, "APPROVAL NEEDED");
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

    // A run that died while it asked: an answer is recorded but reaches
    // nobody, and drctl approve says so instead of "approved" (as Step
    // Functions refuses the token of a stopped execution).
    let mut dead = Background::start(
        &stack,
        FAILOVER,
        &stack.alarm_request(ask_quickly(300)),
        "hung-4",
        &[],
    );
    // Killed once its question is recorded and sent (the runner's
    // "waiting for an answer" comes as soon as the token is issued).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    while !stack.messages().iter().any(|m| {
        m["message"]
            .as_str()
            .is_some_and(|b| b.contains("drctl approve hung-4"))
    }) {
        assert!(std::time::Instant::now() < deadline, "hung-4 never asked");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    dead.kill();
    let late = answer(&stack, "approve", "hung-4", "go");
    let said = String::from_utf8_lossy(&late.stderr);
    assert!(!late.status.success(), "{said}");
    assert!(
        said.contains("nothing takes it: hung-4 is no longer running (ABORTED)"),
        "{said}"
    );
    assert_eq!(stack.describe(REPLICA).await.role, InstanceRole::Replica);
    assert_eq!(stack.dns_value().await, dns_before);
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
