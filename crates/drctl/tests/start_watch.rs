//! `drctl start … --local` then `drctl watch … --local`: the on-call's way
//! to run a recovery and follow it, on the local stack.

mod common;

use std::process::Stdio;

use common::*;
use serde_json::json;

fn out_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_failover_is_watched_live_to_its_report_and_starting_it_again_starts_nothing() {
    let stack = Stack::up();
    stack.crash(PRIMARY);
    let input = stack.home.join("failover.json");
    std::fs::write(
        &input,
        serde_json::to_vec(&stack.request(json!({"poll_interval_seconds": 1}))).expect("json"),
    )
    .expect("input");
    let input = input.to_str().expect("path");

    let started = drctl(
        &stack.home,
        &["start", "database-failover", "--local", "--input", input],
    );
    assert!(started.status.success(), "{}", out_text(&started));
    let shown = out_text(&started);
    assert!(shown.starts_with("started database-failover-"), "{shown}");
    let name = shown.split_whitespace().nth(1).expect("name").to_owned();
    assert!(
        shown.contains(&format!("follow: drctl watch {name} --local")),
        "{shown}"
    );
    // Followed while it runs.
    let watch = std::process::Command::new(env!("CARGO_BIN_EXE_drctl"))
        .args(["watch", &name, "--local"])
        .env("DRCTL_HOME", &stack.home)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("watch");
    let again = drctl(
        &stack.home,
        &["start", "database-failover", "--local", "--input", input],
    );
    assert!(again.status.success(), "{}", out_text(&again));
    assert!(
        out_text(&again).contains(&name) && out_text(&again).starts_with("already "),
        "{}",
        out_text(&again)
    );

    let watched = watch.wait_with_output().expect("watch ends");
    let shown = out_text(&watched);
    assert_eq!(watched.status.code(), Some(0), "{shown}");
    let report = stack.home.join("reports/database-failover");
    let markdown = std::fs::read_dir(&report)
        .expect("reports")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(&format!("-{name}.md")))
        .expect("the run's report");
    for expected in [
        format!("{name} (database-failover), started"),
        "▶ ConfirmFailure (Task)".to_owned(),
        "▶ PromoteReplica (Task)".to_owned(),
        "▶ SwitchDns (Task)".to_owned(),
        "RTO left 3h 59m".to_owned(),
        "SUCCEEDED after".to_owned(),
        "outcome: succeeded, passed, RTO".to_owned(),
        format!("report: {}", markdown.display()),
    ] {
        assert!(shown.contains(&expected), "{expected:?} not in:\n{shown}");
    }
    // What the watch said happened, happened.
    let promoted = stack.describe(REPLICA).await;
    assert!(promoted.is_standalone_and_available(), "{promoted:?}");
    assert_eq!(
        stack.dns_value().await,
        promoted.endpoint.expect("endpoint").address
    );
    // The page of the run, as a browser shows it: the Gantt chart painted,
    // the outcome and the RTO in its text.
    let html = drctl(
        &stack.home,
        &["report", &name, "--local", "--format", "html"],
    );
    assert!(html.status.success(), "{}", out_text(&html));
    let page = stack.home.join("report.html");
    std::fs::write(&page, &html.stdout).expect("page");
    let rendered = render_in_chromium(&page);
    let dom = &rendered.dom;
    assert!(dom.contains("id=\"gantt\""), "{dom}");
    assert!(
        dom.matches("class=\"step\"").count() >= 5,
        "a bar per step: {dom}"
    );
    assert!(dom.contains("Outcome: <strong>succeeded</strong>"), "{dom}");
    assert!(dom.contains("<td>RTO</td>"), "{dom}");
    assert!(dom.contains("promote"), "{dom}");
    assert!(
        rendered.painted_pixels > 20_000,
        "the page is blank: {} pixels painted",
        rendered.painted_pixels
    );
    assert!(
        rendered.bar_pixels > 200,
        "no Gantt bar was painted: {} pixels of the bars' colour",
        rendered.bar_pixels
    );
    // The same trigger once more: nothing new starts.
    let third = drctl(
        &stack.home,
        &["start", "database-failover", "--local", "--input", input],
    );
    assert!(
        out_text(&third).starts_with(&format!("already ran: {name} SUCCEEDED")),
        "{}",
        out_text(&third)
    );
    let runs: Vec<(String, String)> = stack.executions(Some("database-failover"));
    assert_eq!(runs, [(name.clone(), "SUCCEEDED".to_owned())]);
    // Watching a finished run replays it; an unknown one is a bad request.
    let replay = drctl(&stack.home, &["watch", &name, "--local"]);
    assert_eq!(replay.status.code(), Some(0), "{}", out_text(&replay));
    assert!(out_text(&replay).contains("▶ PromoteReplica (Task)"));
    let unknown = drctl(&stack.home, &["watch", "no-such-run", "--local"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", out_text(&unknown));
    // A bad input never starts anything.
    let bad = stack.home.join("bad.json");
    std::fs::write(&bad, "[1, 2]").expect("bad");
    let refused = drctl(
        &stack.home,
        &[
            "start",
            "database-failover",
            "--local",
            "--input",
            bad.to_str().expect("path"),
        ],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", out_text(&refused));
    assert_eq!(stack.executions(None).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_run_that_dies_is_watched_to_aborted_and_someone_must_act() {
    let stack = Stack::up();
    // A scenario of its own that waits a minute, in a project directory of
    // its own: the run is still going when it is killed.
    let project = tempfile::tempdir().expect("project");
    std::fs::create_dir(project.path().join("statemachines")).expect("dir");
    std::fs::write(
        project.path().join("statemachines/slow.asl.json"),
        json!({"StartAt": "WaitForIt", "States": {
            "WaitForIt": {"Type": "Wait", "Seconds": 60, "Next": "Done"},
            "Done": {"Type": "Succeed"}}})
        .to_string(),
    )
    .expect("definition");
    std::fs::write(project.path().join("input.json"), "{}").expect("input");
    let in_project = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_drctl"))
            .args(args)
            .env("DRCTL_HOME", &stack.home)
            .current_dir(project.path())
            .output()
            .expect("drctl")
    };
    let started = in_project(&[
        "start",
        "slow",
        "--local",
        "--input",
        "input.json",
        "--name",
        "incident-7",
    ]);
    assert!(started.status.success(), "{}", out_text(&started));
    let record = dr_local::executions::LocalExecutions::new(&stack.home)
        .get("incident-7")
        .expect("registry")
        .expect("registered");
    // The run is detached from drctl start: it runs on after it.
    assert!(dr_local::state::process_alive(record.pid));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(record.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while dr_local::state::process_alive(record.pid) {
        assert!(std::time::Instant::now() < deadline, "still alive");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let watched = in_project(&["watch", "incident-7", "--local"]);
    let shown = out_text(&watched);
    assert_eq!(watched.status.code(), Some(1), "{shown}");
    assert!(shown.contains("⏳ WaitForIt  wait 1"), "{shown}");
    assert!(shown.contains("ABORTED"), "{shown}");
}
