//! `drctl verify-integrity` as a user runs it; the password in the DSN never
//! shows in its output or logs.

mod common;

use std::process::Command;

use dr_local::lab::Lab;
use secrecy::ExposeSecret;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_integrity_exits_by_its_findings_and_never_prints_the_password() {
    let lab = Lab::new().expect("lab");
    let target = lab.instance("muejam-db-prod").await.expect("instance");
    let client = dr_postgres::connect(&target).await.expect("connect");
    dr_postgres::sample::generate(&client, 0.01)
        .await
        .expect("data");
    let password = target.password.expose_secret().to_owned();
    let dsn = format!(
        "postgresql://{}:{}@{}:{}/{}?sslmode=verify-full&sslrootcert={}",
        target.username,
        password,
        target.endpoint.address,
        target.endpoint.port,
        target.database,
        target.tls.ca_file.as_ref().expect("CA").display()
    );
    let run = |extra: &[&str]| {
        let mut args = vec!["verify-integrity", "--dsn", dsn.as_str()];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_drctl"))
            .args(&args)
            .env("DRCTL_LOG", "info")
            .output()
            .expect("run")
    };

    let clean = run(&["--output", "json", "--expect", "users"]);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let report: Value = serde_json::from_slice(&clean.stdout).expect("json");
    assert_eq!(report["status"], "passed");

    client
        .batch_execute("SET session_replication_role = replica; INSERT INTO chapters (story_id, number, title, body, word_count) VALUES (424242, 1, 't', 'b', 1)")
        .await
        .expect("orphan");
    let dirty = run(&[]);
    assert_eq!(dirty.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&dirty.stdout);
    assert!(
        stdout.contains("fk_chapters_story_id_fkey") && stdout.contains("424242"),
        "{stdout}"
    );
    for output in [&clean, &dirty] {
        assert!(!String::from_utf8_lossy(&output.stdout).contains(&password));
        assert!(!String::from_utf8_lossy(&output.stderr).contains(&password));
    }

    let wrong = Command::new(env!("CARGO_BIN_EXE_drctl"))
        .args([
            "verify-integrity",
            "--dsn",
            &dsn.replace(&password, "wrong-password-123"),
        ])
        .output()
        .expect("run");
    assert_eq!(
        wrong.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    assert!(!String::from_utf8_lossy(&wrong.stderr).contains("wrong-password-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_standby_is_verified_on_one_shared_snapshot() {
    let stack = common::Stack::up();
    let replica = stack
        .platform()
        .database_target(&common::id(common::REPLICA), None)
        .expect("replica target");
    let dsn = format!(
        "postgresql://{}:{}@{}:{}/{}?sslrootcert={}",
        replica.username,
        replica.password.expose_secret(),
        replica.endpoint.address,
        replica.endpoint.port,
        replica.database,
        replica.tls.ca_file.as_ref().expect("CA").display()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_drctl"))
        .args(["verify-integrity", "--dsn", &dsn, "--output", "json"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["status"], "passed");
    assert_eq!(
        report["consistent_snapshot"], true,
        "a standby exports and imports snapshots too"
    );
    let primary = stack.sql(common::PRIMARY).await;
    let chapters: i64 = primary
        .query_one("SELECT count(*) FROM chapters", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        report["row_counts"]["chapters"], chapters,
        "the replica has caught up"
    );
}
