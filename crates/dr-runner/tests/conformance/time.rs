//! Conformance: time.

use super::*;

#[tokio::test]
async fn a_three_hour_workflow_runs_instantly_on_virtual_time_with_simulated_timestamps() {
    let started = std::time::Instant::now();
    let result = run(
        json!({"StartAt": "Wait1", "States": {
            "Wait1": {"Type": "Wait", "Seconds": 3600, "Next": "Wait2"},
            "Wait2": {"Type": "Wait", "SecondsPath": "$.more", "Next": "Done"},
            "Done": {"Type": "Succeed"}}}),
        json!({"more": 7200}),
    )
    .await;
    assert!(result.succeeded());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "virtual waits must not take real time"
    );
    let simulated = (result.stop_date - result.start_date).num_seconds();
    assert!(
        (10_800..10_805).contains(&simulated),
        "simulated duration {simulated} s"
    );
    let exited = result
        .history
        .iter()
        .find(|e| e.event_type == "WaitStateExited" && e.state_name() == Some("Wait1"))
        .expect("exit");
    assert!((exited.timestamp - result.start_date).num_seconds() >= 3600);
}

#[tokio::test]
async fn execution_timeout_seconds_ends_the_run_timed_out() {
    let result = run(
        json!({"TimeoutSeconds": 60, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}}),
        json!({}),
    )
    .await;
    assert_eq!(result.status, ExecutionStatus::TimedOut);
    assert_eq!(result.error.as_deref(), Some("States.Timeout"));
    assert_eq!(
        result.history.last().map(|e| e.event_type.as_str()),
        Some("ExecutionTimedOut")
    );
}
