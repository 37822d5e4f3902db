//! Conformance: tasks, retry and catch.

use super::*;

fn gaps_between_attempts(result: &ExecutionResult) -> Vec<f64> {
    let scheduled: Vec<_> = result
        .history
        .iter()
        .filter(|e| e.event_type == "TaskScheduled")
        .map(|e| e.timestamp)
        .collect();
    scheduled
        .windows(2)
        .map(|w| ((w[1] - w[0]).num_milliseconds() as f64 / 1000.0).round())
        .collect()
}

#[tokio::test]
async fn retry_backoff_follows_interval_rate_and_max_delay() {
    let (handlers, calls) = flaky_handlers(4, "Throttled");
    let runner = Runner::new(handlers).time_mode(TimeMode::Virtual);
    let result = run_with(
        &runner,
        single(task(json!({"Retry": [{"ErrorEquals": ["Throttled"], "IntervalSeconds": 3, "BackoffRate": 2.0, "MaxAttempts": 5, "MaxDelaySeconds": 10}]}))),
        json!({"x": 1}),
    )
    .await;
    assert!(result.succeeded(), "{:?}", result.cause);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    // 3, 3×2 = 6, 3×4 = 12 → capped at 10, 3×8 = 24 → 10.
    assert_eq!(gaps_between_attempts(&result), vec![3.0, 6.0, 10.0, 10.0]);
    assert_eq!(
        result.output,
        Some(
            json!({"ExecutedVersion": "$LATEST", "Payload": {"call": 5, "echo": {"x": 1}}, "StatusCode": 200})
        )
    );
}

#[tokio::test]
async fn retries_run_out_then_catch_shapes_error_and_cause() {
    let (handlers, calls) = flaky_handlers(10, "NotReady");
    let runner = Runner::new(handlers).time_mode(TimeMode::Virtual);
    let result = run_with(
        &runner,
        json!({"StartAt": "T", "States": {
            "T": task(json!({
                "End": null,
                "Next": "Done",
                "Retry": [{"ErrorEquals": ["NotReady"], "MaxAttempts": 2}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Handled"}]
            })),
            "Handled": {"Type": "Pass", "End": true},
            "Done": {"Type": "Succeed"}
        }}),
        json!({"request": "promote"}),
    )
    .await;
    assert!(result.succeeded());
    assert_eq!(calls.load(Ordering::SeqCst), 3, "one call and two retries");
    assert_eq!(
        gaps_between_attempts(&result),
        vec![1.0, 2.0],
        "the defaults: 1 s, rate 2"
    );
    let out = result.output.expect("output");
    assert_eq!(
        out["request"], "promote",
        "the catcher's ResultPath keeps the input"
    );
    assert_eq!(out["failure"]["Error"], "NotReady");
    let cause: Value = serde_json::from_str(out["failure"]["Cause"].as_str().expect("cause"))
        .expect("cause is JSON");
    assert_eq!(
        cause,
        json!({"errorMessage": "call 3 failed", "errorType": "NotReady"})
    );
}

#[tokio::test]
async fn catch_with_default_result_path_outputs_only_the_error_and_states_all_skips_runtime() {
    let (handlers, _) = flaky_handlers(10, "Unsafe");
    let runner = Runner::new(handlers).time_mode(TimeMode::Virtual);
    let caught = run_with(
        &runner,
        json!({"StartAt": "T", "States": {
            "T": task(json!({"End": null, "Next": "Ok", "Catch": [{"ErrorEquals": ["Unsafe"], "Next": "Ok"}]})),
            "Ok": {"Type": "Succeed"}}}),
        json!({"ignored": true}),
    )
    .await;
    let out = caught.output.expect("output");
    assert_eq!(out.as_object().map(|m| m.len()), Some(2));
    assert_eq!(out["Error"], "Unsafe");

    let runtime = run(
        json!({"StartAt": "P", "States": {
            "P": {"Type": "Pass", "InputPath": "$.missing", "Next": "Ok"},
            "Ok": {"Type": "Succeed"}}}),
        json!({}),
    )
    .await;
    assert_eq!(
        runtime.status,
        ExecutionStatus::Failed,
        "Pass has no Catch; runtime errors end the run"
    );
}

#[tokio::test]
async fn injected_faults_are_retried_then_caught() {
    let (handlers, calls) = flaky_handlers(0, "unused");
    let runner = Runner::new(handlers)
        .time_mode(TimeMode::Virtual)
        .faults(FaultPlan::new(vec![
            FaultRule {
                task: "Promote".into(),
                call: 1,
                until_call: None,
                fault: Fault::Fail {
                    error: "Throttled".into(),
                    cause: "slow down".into(),
                },
            },
            FaultRule {
                task: "Promote".into(),
                call: 2,
                until_call: None,
                fault: Fault::Timeout,
            },
            FaultRule {
                task: "Promote".into(),
                call: 3,
                until_call: None,
                fault: Fault::Fail {
                    error: "Unsafe".into(),
                    cause: "split brain risk".into(),
                },
            },
        ]));
    let definition = json!({"StartAt": "Promote", "States": {
        "Promote": task(json!({
            "End": null, "Next": "Done",
            "Retry": [{"ErrorEquals": ["Throttled", "States.Timeout"], "MaxAttempts": 5}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Notify"}]
        })),
        "Notify": {"Type": "Pass", "End": true},
        "Done": {"Type": "Succeed"}}});
    let result = run_with(&runner, definition, json!({})).await;
    assert!(result.succeeded());
    assert_eq!(result.states_entered(), vec!["Promote", "Notify"]);
    assert_eq!(result.output.expect("output")["error"]["Error"], "Unsafe");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "faults replace the call");
    assert_eq!(runner.fault_plan().calls("Promote"), 3);
    let kinds: Vec<&str> = result
        .history
        .iter()
        .filter(|e| {
            ["TaskSucceeded", "TaskFailed", "TaskTimedOut"].contains(&e.event_type.as_str())
        })
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(kinds, vec!["TaskFailed", "TaskTimedOut", "TaskFailed"]);
}

#[tokio::test]
async fn a_bare_lambda_arn_passes_input_and_returns_the_raw_result() {
    let (handlers, _) = flaky_handlers(0, "unused");
    let runner = Runner::new(handlers).time_mode(TimeMode::Virtual);
    let result = run_with(
        &runner,
        single(json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:Flaky", "ResultSelector": {"n.$": "$.call"}, "End": true})),
        json!({"a": 1}),
    )
    .await;
    assert_eq!(result.output, Some(json!({"n": 1})));
}

#[tokio::test]
async fn task_timeout_seconds_times_out_a_slow_handler() {
    let mut handlers = Handlers::new();
    handlers.register_fn("Slow", |_p, _c| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(json!({}))
    });
    let runner = Runner::new(handlers);
    let result = run_with(
        &runner,
        single(json!({"Type": "Task", "Resource": "arn:aws:lambda:local:0:function:Slow", "TimeoutSeconds": 1, "End": true})),
        json!({}),
    )
    .await;
    assert_eq!(result.error.as_deref(), Some("States.Timeout"));
}
