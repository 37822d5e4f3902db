//! The worst case of every state machine stays within what AWS would let it
//! survive: a history past 25,000 events, a run past TimeoutSeconds or a
//! payload past 256 KiB cannot be caught, so cleanup and the report would
//! never run. Computed from the definitions (`dr_runner::budget`); the
//! table is printed on every run of `./scripts/test`.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn hours(seconds: f64) -> String {
    format!("{:.2} h", seconds / 3600.0)
}

#[test]
fn worst_case_budgets_of_every_state_machine() {
    let cases = deploy_checks::worst_cases(&repo()).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    println!(
        "{:<30} {:>14} {:>9} {:>12} {:>15}",
        "state machine", "history events", "(≤ 20000)", "worst time", "TimeoutSeconds"
    );
    let mut problems = Vec::new();
    for case in &cases {
        println!(
            "{:<30} {:>14} {:>9} {:>12} {:>15}",
            case.logical_id,
            case.events,
            format!(
                "{:.0} %",
                case.events as f64 * 100.0 / deploy_checks::HISTORY_BUDGET as f64
            ),
            hours(case.seconds),
            case.timeout_seconds
                .map_or_else(|| "none".to_owned(), |t| hours(t as f64)),
        );
        if case.events > deploy_checks::HISTORY_BUDGET {
            problems.push(format!(
                "{}: {} history events at worst, more than {}",
                case.logical_id,
                case.events,
                deploy_checks::HISTORY_BUDGET
            ));
        }
        match case.timeout_seconds {
            None => problems.push(format!(
                "{} has no TimeoutSeconds: a stuck execution would run for a year",
                case.logical_id
            )),
            // 10 % of the timeout is the margin.
            Some(t) if case.seconds > 0.9 * t as f64 => problems.push(format!(
                "{}: {} at worst, within 10 % of (or past) its TimeoutSeconds of {}; costliest states: {}",
                case.logical_id,
                hours(case.seconds),
                hours(t as f64),
                case.costliest
                    .iter()
                    .take(6)
                    .map(|(s, b)| format!("{s} {:.0} s", b.seconds))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A copy of the template and the definitions, to break on purpose.
fn copy_with(edit: impl Fn(&str, String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::copy(
        repo().join("template.yaml"),
        dir.path().join("template.yaml"),
    )
    .expect("template");
    std::fs::create_dir_all(dir.path().join("statemachines")).expect("dir");
    for entry in std::fs::read_dir(repo().join("statemachines"))
        .expect("read")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(entry.path()).expect("definition");
        std::fs::write(
            dir.path().join("statemachines").join(&name),
            edit(&name, text),
        )
        .expect("write");
    }
    dir
}

fn edit_state(text: String, state: &str, change: impl Fn(&mut serde_json::Value)) -> String {
    let mut definition: serde_json::Value = serde_json::from_str(&text).expect("json");
    change(&mut definition["States"][state]);
    definition.to_string()
}

#[test]
fn a_poll_loop_that_retries_every_poll_breaks_the_drills_time_budget() {
    // Before issue 12: each poll retried 4 times at the function's 60 s.
    let copy = copy_with(|name, text| {
        if name != "dr-drill-database.asl.json" {
            return text;
        }
        edit_state(text, "DescribeRestore", |s| {
            s.as_object_mut().expect("state").remove("TimeoutSeconds");
            s["Retry"] = serde_json::json!([{"ErrorEquals": ["Throttled"], "IntervalSeconds": 2, "BackoffRate": 2.0, "MaxAttempts": 4}]);
        })
    });
    let cases = deploy_checks::worst_cases(copy.path()).expect("computed");
    let child = cases
        .iter()
        .find(|c| c.logical_id == "DrDrillDatabaseStateMachine")
        .expect("child");
    assert!(
        child.seconds > child.timeout_seconds.expect("timeout") as f64,
        "{child:?}"
    );
    assert_eq!(child.costliest[0].0, "DescribeRestore", "{child:?}");
}

#[test]
fn a_wait_without_a_bound_is_refused() {
    let copy = copy_with(|name, text| {
        if name != "database-failover.asl.json" {
            return text;
        }
        edit_state(text, "RequestApproval", |s| {
            s.as_object_mut()
                .expect("state")
                .remove("TimeoutSecondsPath");
        })
    });
    assert_eq!(
        deploy_checks::worst_cases(copy.path()),
        Err(vec!["DatabaseFailoverStateMachine: callback state \"RequestApproval\" has no TimeoutSeconds: it may wait a year".to_owned()])
    );
    let copy = copy_with(|name, text| {
        if name != "dr-drill-database.asl.json" {
            return text;
        }
        // The counter is never incremented.
        edit_state(text, "CountRestorePoll", |s| {
            s.as_object_mut().expect("state").remove("Parameters");
        })
    });
    let problems = deploy_checks::worst_cases(copy.path()).expect_err("unbounded");
    assert!(
        problems[0].starts_with("DrDrillDatabaseStateMachine: the loop through CountRestorePoll, DescribeRestore, IsRestored, WaitForRestore has no counter cap"),
        "{problems:#?}"
    );
}
