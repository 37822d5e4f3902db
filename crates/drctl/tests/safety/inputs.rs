//! Typos and bad registries change nothing.

use super::*;

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
