//! Our own probe, credentials or configuration broken: pages, never fails over; and the same alarm fails back.

use super::*;

/// A misconfiguration of our own side, with a healthy primary: the run ends
/// "cannot confirm the failure" naming the cause, and nothing is promoted.
async fn refuses_to_fail_over(stack: &Stack, env: &[(&str, &str)], cause: &str) {
    let dns_before = stack.dns_value_or_none().await;
    let (code, result) = Background::start_with_env(
        stack,
        FAILOVER,
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
