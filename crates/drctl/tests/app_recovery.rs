//! Runbook "Application Server Failure" end to end on the local stack: the
//! app alarm's event, as its EventBridge rule turns it into the input, starts
//! the app-server recovery against the real app servers behind the local
//! load balancer; what on-call checks is what the tests check (the health
//! URL, the group's capacity and servers, the report, the page).

mod common;

use common::*;
use dr_core::*;
use muejam_app::LocalAppPlatform;
use serde_json::{json, Value};

const MACHINE: &str = "statemachines/app-server-recovery.asl.json";
const SCENARIO: &str = "app-server-recovery";

/// The input the app alarm's rule sends for the sample alarm event, with
/// the local load balancer's health URL (the template's default is the
/// public one) and one-second polls.
fn alarm_input(stack: &Stack, changes: Value) -> Value {
    let template =
        dr_runner::sam::SamTemplate::load(&repo().join("template.yaml")).expect("template");
    let rules = template
        .event_rules("AppServerRecoveryStateMachine")
        .expect("rules");
    let rule = rules
        .iter()
        .find(|r| r.name == "AppAlarms")
        .expect("the app alarms' rule");
    let event: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/app-alarm-state-change.json")).expect("event"),
    )
    .expect("json");
    let mut input = rule.transform(&event).expect("transforms");
    assert_eq!(input["trigger"]["alarm"], "muejam-dr-app-no-healthy-hosts");
    input["health_url"] = json!(stack.app_health_url());
    input["limits"] = json!({"poll_seconds": 1, "max_wait_seconds": 60, "health_attempts": 3});
    if let (Some(i), Some(c)) = (input.as_object_mut(), changes.as_object()) {
        i.extend(c.clone());
    }
    input
}

fn group() -> FleetRef {
    FleetRef {
        auto_scaling_group: "muejam-app".into(),
        target_group_arn: None,
        region: None,
    }
}

async fn fleet(stack: &Stack) -> FleetStatus {
    LocalAppPlatform::new(&stack.home)
        .expect("app")
        .describe_fleet(&group())
        .await
        .expect("fleet")
}

fn ids(status: &FleetStatus) -> Vec<String> {
    let mut ids: Vec<String> = status
        .instances
        .iter()
        .map(|i| i.instance_id.clone())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_killed_the_alarm_brings_them_back_and_a_healthy_fleet_is_a_false_alarm() {
    let stack = Stack::up();
    let url = stack.app_health_url();
    let before = fleet(&stack).await;
    assert_eq!((before.desired_capacity, before.healthy_targets), (2, 2));

    // A careless input is refused before anything is touched.
    for (changes, says) in [
        (json!({"capacity_floor": -1}), "at least 1"),
        (
            json!({"capacity_floor": 7}),
            "above muejam-app's maximum size 6",
        ),
        (
            json!({"fleet": {"auto_scaling_group": "muejam-ap"}}),
            "does not exist",
        ),
        (json!({"health_url": "ftp://x/health"}), "http(s)"),
        (
            json!({"fleet": {"auto_scaling_group": "muejam-app", "region": "us-west-9x"}}),
            "region",
        ),
    ] {
        let (code, result) = stack.run(
            MACHINE,
            &alarm_input(&stack, changes.clone()),
            &["--virtual-time"],
        );
        assert_eq!(code, 2, "{changes}: {result:#}");
        assert_eq!(result["error"], "InvalidInput", "{changes}");
        let cause = result["cause"].as_str().unwrap_or_default();
        assert!(cause.contains(says), "{says:?} not in {cause}");
        let states = state_names(&result);
        assert!(!states.contains(&"AcquireLock".to_owned()), "{states:?}");
        assert!(!states.contains(&"RaiseCapacity".to_owned()), "{states:?}");
    }
    let unchanged = fleet(&stack).await;
    assert_eq!(unchanged.desired_capacity, 2);
    assert_eq!(ids(&unchanged), ids(&before), "no server was touched");
    let refusals = stack
        .subjects()
        .iter()
        .filter(|s| s.contains("app-server recovery of") && s.contains("failed (FAILED)"))
        .count();
    assert_eq!(
        refusals,
        5,
        "each refusal is reported: {:?}",
        stack.subjects()
    );

    // Every server killed: the load balancer has no target.
    stack.kill_app_servers();
    assert_eq!(Stack::http_get(&url).await.0, 503);
    let (code, result) = stack.run(
        MACHINE,
        &alarm_input(&stack, json!({})),
        &["--virtual-time", "--name", "app-1"],
    );
    assert_eq!(code, 0, "{result:#}");
    assert_eq!(result["status"], "SUCCEEDED");
    let (status, body) = Stack::http_get(&url).await;
    assert_eq!(status, 200, "{body}");
    let after = fleet(&stack).await;
    assert_eq!(
        (
            after.desired_capacity,
            after.healthy_targets,
            after.unhealthy_targets
        ),
        (4, 4, 0),
        "raised to the floor of 4, every server healthy: {after:?}"
    );
    assert!(
        ids(&after).iter().all(|id| !ids(&before).contains(id)),
        "every dead server was replaced"
    );
    let report = stack.report_named(SCENARIO, "app-1");
    assert_eq!(report["outcome"], "succeeded");
    assert_eq!(report["passed"], true);
    assert_eq!(report["trigger"], "muejam-dr-app-no-healthy-hosts");
    assert_eq!(report["before"]["healthy_targets"], 0);
    assert_eq!(report["health"]["status"], 200);
    assert!(report["rto"]["achieved_seconds"].is_number());
    let changes: Vec<String> = serde_json::from_value(report["changes"].clone()).expect("changes");
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("raised muejam-app in us-east-1 from 2 to 4 servers")),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("started instance refresh")),
        "{changes:?}"
    );
    assert!(stack
        .subjects()
        .contains(&"[MueJam DR] app-server recovery of muejam-app: succeeded (passed)".to_owned()));
    assert!(
        stack.locks().await.is_empty(),
        "the group's lock was released"
    );

    // The alarm again with a healthy fleet: a false alarm, nothing changed.
    let (code, result) = stack.run(
        MACHINE,
        &alarm_input(&stack, json!({})),
        &["--virtual-time", "--name", "app-2"],
    );
    assert_eq!(code, 0, "{result:#}");
    let states = state_names(&result);
    assert!(!states.contains(&"RaiseCapacity".to_owned()), "{states:?}");
    assert!(!states.contains(&"StartRefresh".to_owned()), "{states:?}");
    let report = stack.report_named(SCENARIO, "app-2");
    assert_eq!(report["outcome"], "false_alarm");
    assert_eq!(report["passed"], true);
    assert_eq!(report["changes"], json!([]));
    let again = fleet(&stack).await;
    assert_eq!(ids(&again), ids(&after), "nothing was touched");
    assert_eq!(again.desired_capacity, 4);

    // A mistyped health URL while every server passes: nothing new servers
    // would fix. Paged, nothing changed.
    let wrong = url.replace("/health", "/healthz");
    let (code, result) = stack.run(
        MACHINE,
        &alarm_input(&stack, json!({"health_url": wrong})),
        &["--virtual-time", "--name", "app-3"],
    );
    assert_eq!(code, 1, "{result:#}");
    assert_eq!(result["error"], "CannotConfirm");
    let states = state_names(&result);
    assert!(!states.contains(&"AcquireLock".to_owned()), "{states:?}");
    assert!(!states.contains(&"RaiseCapacity".to_owned()), "{states:?}");
    let report = stack.report_named(SCENARIO, "app-3");
    assert_eq!(report["outcome"], "cannot_confirm");
    assert_eq!(report["passed"], false);
    assert_eq!(report["changes"], json!([]));
    assert!(stack.subjects().contains(
        &"[MueJam DR] app-server recovery of muejam-app: cannot_confirm (FAILED)".to_owned()
    ));
    let still = fleet(&stack).await;
    assert_eq!(ids(&still), ids(&after), "nothing was touched");
    assert_eq!(still.desired_capacity, 4);
}

/// The tasks of a recovery that changes something, in the order they run.
const RECOVERY_TASKS: &[&str] = &[
    "Plan",
    "AcquireLock",
    "RaiseCapacity",
    "StartRefresh",
    "FleetStatus",
    "VerifyHealth",
    "ReleaseLock",
    "Report",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_at_every_task_are_retried_or_end_with_a_page_and_the_group_is_never_lowered() {
    let stack = Stack::up();
    let url = stack.app_health_url();

    // One throttle at every task: retried, and the recovery still succeeds.
    stack.kill_app_servers();
    let mut extra: Vec<String> = vec!["--virtual-time".into()];
    for task in RECOVERY_TASKS {
        extra.push("--fault".into());
        extra.push(format!("{task}:1:Throttled"));
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let (code, result) = stack.run(MACHINE, &alarm_input(&stack, json!({})), &extra);
    assert_eq!(code, 0, "{result:#}");
    let failed_tasks = result["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|e| e["type"] == "TaskFailed")
        .count();
    assert_eq!(
        failed_tasks,
        RECOVERY_TASKS.len(),
        "each failed once, retried"
    );
    assert_eq!(Stack::http_get(&url).await.0, 200);

    // A permanent error at any task: the run fails, a page says so, the
    // lock is not left held, and the group is never lowered.
    for task in RECOVERY_TASKS {
        stack.kill_app_servers();
        let name = format!("fault-{}", task.to_lowercase());
        let fault = format!("{task}:1:Unsafe");
        let before = stack.subjects().len();
        let (code, result) = stack.run(
            MACHINE,
            &alarm_input(&stack, json!({})),
            &["--virtual-time", "--name", &name, "--fault", &fault],
        );
        let subjects = stack.subjects();
        let new = &subjects[before..];
        match *task {
            // Past the verification: the fleet is back, the run says so.
            "ReleaseLock" => {
                assert_eq!(code, 0, "{task}: {result:#}");
                let report = stack.report_named(SCENARIO, &name);
                assert_eq!(report["passed"], true, "{task}");
                assert!(
                    report["warnings"]
                        .as_array()
                        .is_some_and(|w| w.iter().any(|w| w
                            .as_str()
                            .is_some_and(|w| w.contains("lock was not released")))),
                    "{task}: {report:#}"
                );
            }
            "Report" => {
                assert_eq!(code, 1, "{task}: {result:#}");
                assert!(
                    new.iter().any(|s| s.contains("REPORT FAILED")),
                    "{task}: {new:?}"
                );
            }
            _ => {
                assert_eq!(code, 1, "{task}: {result:#}");
                assert_eq!(result["error"], "Unsafe", "{task}");
                assert!(
                    new.iter()
                        .any(|s| s
                            == "[MueJam DR] app-server recovery of muejam-app: failed (FAILED)"),
                    "{task}: {new:?}"
                );
            }
        }
        assert_eq!(
            fleet(&stack).await.desired_capacity,
            4,
            "{task}: the group is never lowered"
        );
        if *task != "ReleaseLock" {
            assert!(
                stack.locks().await.is_empty(),
                "{task}: a lock was left held"
            );
        }
        // Whatever the fault, a rerun recovers the fleet.
        let (code, result) = stack.run(
            MACHINE,
            &alarm_input(&stack, json!({})),
            &["--virtual-time"],
        );
        assert_eq!(code, 0, "{task} rerun: {result:#}");
        assert_eq!(Stack::http_get(&url).await.0, 200, "{task}");
    }
}
