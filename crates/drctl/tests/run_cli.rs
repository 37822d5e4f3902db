//! `drctl run` as a user runs it: timeline on stderr, result on stdout,
//! exit code 0 only for SUCCEEDED.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn drctl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drctl"))
        .args(args)
        .current_dir(dir)
        .env_remove("DRCTL_HOME")
        .output()
        .expect("run drctl")
}

fn write(dir: &Path, name: &str, value: &Value) {
    std::fs::write(
        dir.join(name),
        serde_json::to_vec_pretty(value).expect("json"),
    )
    .expect("write");
}

#[test]
fn a_three_hour_machine_runs_on_virtual_time_and_reports_json() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("statemachines")).expect("dir");
    write(
        dir.path(),
        "statemachines/wait-and-decide.asl.json",
        &json!({"StartAt": "Soak", "States": {
            "Soak": {"Type": "Wait", "Seconds": 10800, "Next": "Decide"},
            "Decide": {"Type": "Choice", "Choices": [{"Variable": "$.lag_seconds", "NumericLessThanEquals": 21600, "Next": "Promote"}], "Default": "TooFarBehind"},
            "Promote": {"Type": "Pass", "Parameters": {"promoted.$": "$.replica"}, "End": true},
            "TooFarBehind": {"Type": "Fail", "Error": "ReplicaLagTooHigh", "Cause": "lag above the RPO"}
        }}),
    );
    write(
        dir.path(),
        "ok.json",
        &json!({"replica": "muejam-db-prod-replica", "lag_seconds": 12}),
    );
    write(
        dir.path(),
        "behind.json",
        &json!({"replica": "muejam-db-prod-replica", "lag_seconds": 30000}),
    );

    let ok = drctl(
        dir.path(),
        &[
            "run",
            "wait-and-decide",
            "--input",
            "ok.json",
            "--local",
            "--virtual-time",
            "--output",
            "json",
        ],
    );
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let report: Value = serde_json::from_slice(&ok.stdout).expect("json");
    assert_eq!(report["status"], "SUCCEEDED");
    assert_eq!(
        report["output"],
        json!({"promoted": "muejam-db-prod-replica"})
    );
    assert!(report["error"].is_null());
    let history = report["history"].as_array().expect("history");
    let first = history
        .first()
        .and_then(|e| e["timestamp"].as_str())
        .expect("ts");
    let last = history
        .last()
        .and_then(|e| e["timestamp"].as_str())
        .expect("ts");
    let span = chrono::DateTime::parse_from_rfc3339(last).expect("ts")
        - chrono::DateTime::parse_from_rfc3339(first).expect("ts");
    assert!(
        span.num_seconds() >= 10_800,
        "simulated timestamps span the wait: {span}"
    );
    let timeline = String::from_utf8_lossy(&ok.stderr);
    assert!(
        timeline.contains("▶ Soak (Wait)") && timeline.contains("✔ Promote"),
        "{timeline}"
    );

    let behind = drctl(
        dir.path(),
        &[
            "run",
            "statemachines/wait-and-decide.asl.json",
            "--input",
            "behind.json",
            "--local",
            "--virtual-time",
        ],
    );
    assert_eq!(behind.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&behind.stderr);
    assert!(
        stderr.contains("status: FAILED") && stderr.contains("ReplicaLagTooHigh"),
        "{stderr}"
    );
}

#[test]
fn unsupported_definitions_bad_input_and_unknown_functions_exit_2_naming_the_problem() {
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "input.json", &json!({}));
    write(
        dir.path(),
        "sns.asl.json",
        &json!({"StartAt": "Notify", "States": {"Notify": {"Type": "Task", "Resource": "arn:aws:states:::sns:publish", "End": true}}}),
    );
    let out = drctl(
        dir.path(),
        &["run", "sns.asl.json", "--input", "input.json", "--local"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error[InvalidInput]")
            && stderr.contains("state \"Notify\"")
            && stderr.contains("Resource"),
        "{stderr}"
    );

    write(
        dir.path(),
        "lambda.asl.json",
        &json!({"StartAt": "Promote", "States": {"Promote": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "NoSuchFunction", "Payload.$": "$"}, "End": true}}}),
    );
    let out = drctl(
        dir.path(),
        &["run", "lambda.asl.json", "--input", "input.json", "--local"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NoSuchFunction"));

    std::fs::write(dir.path().join("broken.json"), b"{not json").expect("write");
    let out = drctl(
        dir.path(),
        &["run", "sns.asl.json", "--input", "broken.json", "--local"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("input is not JSON"));

    let out = drctl(
        dir.path(),
        &["run", "sns.asl.json", "--input", "input.json"],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "AWS execution is not built: --local is required"
    );
    let out = drctl(
        dir.path(),
        &["run", "nothing", "--input", "input.json", "--local"],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_malformed_fault_is_rejected_before_anything_runs() {
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "input.json", &json!({}));
    let out = drctl(
        dir.path(),
        &[
            "run",
            "x.asl.json",
            "--input",
            "input.json",
            "--local",
            "--fault",
            "Promote:zero:Throttled",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CALL must be a positive number"));
}
