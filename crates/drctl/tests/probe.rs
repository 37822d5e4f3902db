//! The SQL probe that feeds the "database unreachable" alarm, on the local
//! stack: what it publishes to CloudWatch (moto) while the primary answers,
//! after it crashed, and when its input is wrong.

mod common;

use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use common::*;
use serde_json::{json, Value};

/// The probe's success datapoints of the last ten minutes: (count, minimum, maximum).
async fn probe_datapoints(stack: &Stack) -> (f64, f64, f64) {
    datapoints(stack, "DatabaseProbeSuccess").await
}

/// A metric's datapoints of the last ten minutes: (count, minimum, maximum).
async fn datapoints(stack: &Stack, metric: &str) -> (f64, f64, f64) {
    let cloudwatch = stack.moto_clients().await.cloudwatch;
    let now = chrono::Utc::now();
    let out = cloudwatch
        .get_metric_statistics()
        .namespace("MueJam/DR")
        .metric_name(metric)
        .dimensions(
            Dimension::builder()
                .name("Database")
                .value("db.muejam.internal")
                .build(),
        )
        .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
            (now - chrono::Duration::minutes(10)).timestamp(),
        ))
        .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
            (now + chrono::Duration::minutes(1)).timestamp(),
        ))
        .period(3600)
        .statistics(Statistic::SampleCount)
        .statistics(Statistic::Minimum)
        .statistics(Statistic::Maximum)
        .send()
        .await
        .expect("metric statistics");
    let points = out.datapoints();
    (
        points.iter().filter_map(|p| p.sample_count()).sum(),
        points
            .iter()
            .filter_map(|p| p.minimum())
            .fold(f64::INFINITY, f64::min),
        points
            .iter()
            .filter_map(|p| p.maximum())
            .fold(f64::NEG_INFINITY, f64::max),
    )
}

fn invoke(stack: &Stack, payload: &Value) -> (i32, String, String) {
    let file = stack.home.join("probe-payload.json");
    std::fs::write(&file, payload.to_string()).expect("payload");
    let out = drctl(
        &stack.home,
        &[
            "invoke",
            "probe-database",
            "--local",
            "--payload",
            file.to_str().unwrap_or(""),
        ],
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_publishes_success_then_failure_when_the_primary_crashes() {
    let stack = Stack::up();
    let endpoint = stack.describe(PRIMARY).await.endpoint.expect("endpoint");
    let payload = json!({
        "endpoint": {"address": endpoint.address, "port": endpoint.port},
        "credentials_secret_id": "muejam/db/master",
        "database_label": "db.muejam.internal",
        "connect_timeout_seconds": 2
    });

    let (code, stdout, stderr) = invoke(&stack, &payload);
    assert_eq!(code, 0, "{stderr}");
    let output: Value = serde_json::from_str(&stdout).expect("JSON output");
    assert_eq!(output["success"], json!(true), "{output}");
    assert_eq!(
        output["published"],
        json!([
            "DatabaseProbeSuccess",
            "DatabaseProbeLatency",
            "DatabaseProbeError"
        ])
    );
    assert_eq!(probe_datapoints(&stack).await, (1.0, 1.0, 1.0));

    stack.crash(PRIMARY);
    let (code, stdout, stderr) = invoke(&stack, &payload);
    assert_eq!(
        code, 0,
        "a database that is down is the answer, not an error: {stderr}"
    );
    let output: Value = serde_json::from_str(&stdout).expect("JSON output");
    assert_eq!(output["success"], json!(false), "{output}");
    assert!(
        output["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{output}"
    );
    assert_eq!(
        output["published"],
        json!(["DatabaseProbeSuccess", "DatabaseProbeError"])
    );
    assert_eq!(output["class"], json!("database_down"), "{output}");
    assert_eq!(output["failure"], json!("refused"), "{output}");
    assert_eq!(
        probe_datapoints(&stack).await,
        (2.0, 0.0, 1.0),
        "a 0 joins the earlier 1: the alarm's minute has a failed probe"
    );
    assert!(
        !stdout.contains("password") && !stderr.contains("password"),
        "no credential material in output"
    );

    let mut bad = payload.clone();
    bad["namespace"] = json!("AWS/RDS");
    let (code, _, stderr) = invoke(&stack, &bad);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("error[InvalidInput]"), "{stderr}");
    let mut unknown = payload.clone();
    unknown["timeout"] = json!(5);
    let (code, _, stderr) = invoke(&stack, &unknown);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        probe_datapoints(&stack).await.0,
        2.0,
        "refused input publishes nothing"
    );
}

/// Our own probe's problems are ours: a wrong password, a CA that does not
/// sign the server's certificate, a name that does not resolve, a missing
/// secret each publish DatabaseProbeError (whose alarm pages) and no
/// DatabaseProbeSuccess at all, so the database alarm never sees "down".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_probe_publishes_its_own_error_and_never_a_database_failure() {
    let stack = Stack::up();
    let endpoint = stack.describe(PRIMARY).await.endpoint.expect("endpoint");
    let payload = json!({
        "endpoint": {"address": endpoint.address, "port": endpoint.port},
        "credentials_secret_id": "muejam/db/master",
        "database_label": "db.muejam.internal",
        "connect_timeout_seconds": 2
    });
    let expect_broken = |payload: &Value, failure: &str, env: &[(&str, &str)]| {
        let file = stack.home.join("probe-payload.json");
        std::fs::write(&file, payload.to_string()).expect("payload");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_drctl"))
            .args(["invoke", "probe-database", "--local", "--payload"])
            .arg(&file)
            .env("DRCTL_HOME", &stack.home)
            .envs(env.iter().copied())
            .current_dir(repo())
            .output()
            .expect("run drctl");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let output: Value = serde_json::from_str(&stdout).expect("JSON output");
        assert_eq!(output["success"], json!(false), "{output}");
        assert_eq!(output["class"], json!("probe_broken"), "{output}");
        assert_eq!(output["failure"], json!(failure), "{output}");
        assert!(output["remedy"].as_str().is_some(), "{output}");
        assert_eq!(output["published"], json!(["DatabaseProbeError"]));
    };

    // A CA bundle that did not sign the server's certificate.
    let stranger = tempfile::tempdir().expect("tmp");
    let ca = dr_local::tls::LocalCa::load_or_create(&stranger.path().join("tls")).expect("CA");
    let ca_file = ca.ca_file();
    expect_broken(
        &payload,
        "tls",
        &[("DB_TLS_CA_FILE", ca_file.to_str().expect("path"))],
    );
    // A name that does not resolve.
    let mut unresolvable = payload.clone();
    unresolvable["endpoint"]["address"] = json!("db.muejam.internal");
    expect_broken(&unresolvable, "dns_unresolvable", &[]);
    // A wrong password in the secret.
    let clients = stack.moto_clients().await;
    clients
        .secrets
        .put_secret_value()
        .secret_id("muejam/db/master")
        .secret_string(
            json!({"username": "muejam_admin", "password": "not-the-password"}).to_string(),
        )
        .send()
        .await
        .expect("put secret");
    expect_broken(&payload, "authentication", &[]);
    // No secret at all.
    clients
        .secrets
        .delete_secret()
        .secret_id("muejam/db/master")
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("delete secret");
    expect_broken(&payload, "secret_unavailable", &[]);

    assert_eq!(
        probe_datapoints(&stack).await.0,
        0.0,
        "no success datapoint at all: the database alarm keeps its state"
    );
    assert_eq!(
        datapoints(&stack, "DatabaseProbeError").await,
        (4.0, 1.0, 1.0)
    );
}
