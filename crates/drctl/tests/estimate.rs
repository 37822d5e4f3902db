//! `drctl estimate`: the real state machines on the simulated AWS, no stack
//! needed. What an operator checks: the figures are there and consistent,
//! the same seed gives the same figures, a bad request exits 2.

mod common;

use common::*;
use serde_json::Value;

fn estimate(args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().expect("home");
    drctl(home.path(), &[&["estimate"], args].concat())
}

fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn a_failover_estimate_gives_its_rto_split_history_and_cost_and_repeats_with_its_seed() {
    let args = [
        "database-failover",
        "--input",
        "events/database-failover.json",
        "--runs",
        "5",
        "--output",
        "json",
    ];
    let first = json(&estimate(&args));
    let e = &first["estimate"];
    assert_eq!(e["runs"].as_array().map(Vec::len), Some(5));
    assert_eq!(e["rto_not_measured"], 0, "{e:#}");
    let p50 = e["rto_p50_seconds"].as_f64().expect("p50");
    let p95 = e["rto_p95_seconds"].as_f64().expect("p95");
    let max = e["rto_max_seconds"].as_f64().expect("max");
    assert!(p50 <= p95 && p95 <= max, "{e:#}");
    // AWS's promotion alone takes minutes: the estimate is not local time.
    assert!(p50 > 120.0, "{e:#}");
    for run in e["runs"].as_array().expect("runs") {
        let split = &run["split"];
        let total: f64 = [
            "aws_seconds",
            "approval_seconds",
            "check_seconds",
            "retry_seconds",
            "polling_seconds",
            "steps_seconds",
        ]
        .iter()
        .map(|k| split[k].as_f64().expect("seconds"))
        .sum();
        let rto = run["rto_seconds"].as_f64().expect("rto");
        assert!((total - rto).abs() < 0.01, "{run:#}");
        assert!(run["cost_usd"].as_f64().expect("cost") > 0.0);
        assert!(run["history_events"].as_u64().expect("events") > 20);
    }
    assert!(first["timings"].as_array().is_some_and(|rows| rows
        .iter()
        .all(|r| !r["basis"].as_str().unwrap_or("").is_empty())));
    let again = json(&estimate(&args));
    assert_eq!(again["estimate"]["rto_p50_seconds"], e["rto_p50_seconds"]);
    let other = json(&estimate(&[&args[..], &["--seed", "99"]].concat()));
    assert_ne!(other["estimate"]["runs"], e["runs"]);

    // Started by the alarm, through the template's EventBridge rule; a
    // primary that only hangs (RDS says available) waits for a person.
    let hung = json(&estimate(&[
        "database-failover",
        "--event",
        "events/alarm-state-change.json",
        "--failure",
        "hung",
        "--runs",
        "2",
        "--output",
        "json",
    ]));
    for run in hung["estimate"]["runs"].as_array().expect("runs") {
        assert_eq!(run["status"], "SUCCEEDED", "{run:#}");
        assert!(
            run["split"]["approval_seconds"].as_f64().expect("s") > 0.0,
            "{run:#}"
        );
    }
    assert_eq!(
        e["split_mean"]["approval_seconds"], 0.0,
        "RDS reported it failed: nobody is asked"
    );
}

#[test]
fn the_text_estimate_names_the_targets() {
    let out = estimate(&[
        "database-failover",
        "--input",
        "events/database-failover.json",
        "--runs",
        "2",
        "--timings",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Route 53 change INSYNC",
        "RTO  p50",
        "where the time goes",
        "AWS's own work",
        "targets:",
        "cost: $",
    ] {
        assert!(text.contains(needle), "{needle:?} in:\n{text}");
    }
}

#[test]
fn a_drill_over_a_fleet_covers_every_database() {
    let e = json(&estimate(&[
        "dr-drill",
        "--input",
        "events/dr-drill.json",
        "--runs",
        "1",
        "--databases",
        "3",
        "--output",
        "json",
    ]));
    let run = &e["estimate"]["runs"][0];
    // The run ends: passed, or failed by a test's finding (with AWS's
    // restore times a rehearsed data-corruption recovery can miss its RTO),
    // never broken.
    assert!(
        run["status"] == "SUCCEEDED" || run["error"] == "DrillFailed",
        "{run:#}"
    );
    assert_eq!(e["estimate"]["databases"], 3);
    let one = json(&estimate(&[
        "dr-drill",
        "--input",
        "events/dr-drill.json",
        "--runs",
        "1",
        "--output",
        "json",
    ]));
    let transitions = |v: &Value| v["estimate"]["transitions_mean"].as_f64().expect("n");
    assert!(
        transitions(&e) > transitions(&one),
        "three databases cost more transitions"
    );
}

#[test]
fn a_bad_request_exits_2_before_anything_runs() {
    for (args, says) in [
        (
            vec![
                "snapshot-replication",
                "--input",
                "events/snapshot-replication.json",
            ],
            "does not model",
        ),
        (
            vec![
                "database-failover",
                "--input",
                "events/database-failover.json",
                "--runs",
                "0",
            ],
            "--runs 0",
        ),
        (
            vec![
                "dr-drill",
                "--input",
                "events/dr-drill.json",
                "--databases",
                "500",
            ],
            "--databases 500",
        ),
        (
            vec![
                "database-failover",
                "--input",
                "events/database-failover.json",
                "--throttle",
                "0.9",
            ],
            "--throttle",
        ),
        (
            vec!["database-failover", "--input", "no-such-file.json"],
            "no-such-file",
        ),
        (
            vec![
                "database-failover",
                "--input",
                "events/database-failover.json",
                "--set",
                "fence=60..5",
            ],
            "0 <= MIN <= MAX",
        ),
        (
            vec![
                "database-failover",
                "--input",
                "events/database-failover.json",
                "--set",
                "dns=1",
            ],
            "no figure is named \"dns\"",
        ),
    ] {
        let out = estimate(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// The app alarm's event through the template's rule: the group's servers
/// are replaced by an instance refresh; the documented deregistration delay
/// is on the RTO's path, and an operator's own figure (`--set`) moves it.
#[test]
fn an_app_recovery_estimate_waits_for_the_refresh_and_takes_the_operators_figures() {
    let rto_p95 = |extra: &[&str]| {
        let mut args = vec![
            "app-server-recovery",
            "--event",
            "events/app-alarm-state-change.json",
            "--runs",
            "20",
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        let e = json(&estimate(&args));
        for run in e["estimate"]["runs"].as_array().expect("runs") {
            assert_eq!(run["status"], "SUCCEEDED", "{run:#}");
            assert_eq!(run["outcome"], "succeeded", "{run:#}");
            assert!(
                run["waits"]
                    .as_array()
                    .expect("waits")
                    .iter()
                    .any(|w| w["kind"] == "instance-refresh"),
                "{run:#}"
            );
        }
        (
            e["estimate"]["rto_p95_seconds"].as_f64().expect("p95"),
            e["timings"].clone(),
        )
    };
    let (aws, timings) = rto_p95(&[]);
    let (quick, set) = rto_p95(&["--set", "deregistration_delay=0..30"]);
    assert!(
        quick < aws,
        "a shorter delay shortens the RTO: {quick} vs {aws}"
    );
    let delay = |t: &Value| {
        t.as_array()
            .expect("rows")
            .iter()
            .find(|r| r["key"] == "deregistration_delay")
            .map(|r| r["range"]["max"].clone())
    };
    assert_eq!(delay(&timings), Some(serde_json::json!(300.0)));
    assert_eq!(delay(&set), Some(serde_json::json!(30.0)));
}
