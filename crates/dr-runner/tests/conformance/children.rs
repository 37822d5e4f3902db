//! Conformance: child executions and payload limits.

use super::*;

const CHILD_ARN: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:child";

/// A child that waits, then doubles its input's n, or fails when told to.
fn child_machine() -> StateMachine {
    machine(json!({
        "StartAt": "Wait", "TimeoutSeconds": 10000,
        "States": {
            "Wait": {"Type": "Wait", "SecondsPath": "$.seconds", "Next": "Fail?"},
            "Fail?": {"Type": "Choice", "Choices": [{"Variable": "$.fail", "BooleanEquals": true, "Next": "Broken"}], "Default": "Double"},
            "Broken": {"Type": "Fail", "Error": "ChildBroke", "Cause": "as asked"},
            "Double": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, $.n)"}, "End": true}
        }
    }))
}

fn parent(child_input: Value) -> Value {
    json!({
        "StartAt": "Run", "States": {
            "Run": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {"StateMachineArn": CHILD_ARN, "Name.$": "$.name", "Input": child_input},
                "ResultSelector": {"output.$": "$.Output", "status.$": "$.Status", "arn.$": "$.ExecutionArn"},
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
                "End": true
            },
            "Caught": {"Type": "Pass", "End": true}
        }
    })
}

#[tokio::test]
async fn a_child_execution_runs_to_its_end_on_the_parents_clock_with_its_own_history() {
    let runner = Runner::new(Handlers::new())
        .time_mode(TimeMode::Virtual)
        .child_machine(CHILD_ARN, "child", child_machine());
    let result = run_with(
        &runner,
        parent(json!({"n.$": "$.n", "seconds": 7200, "fail": false})),
        json!({"n": 21, "name": "child-1"}),
    )
    .await;
    assert!(result.succeeded(), "{:?} {:?}", result.error, result.cause);
    assert_eq!(
        result.output,
        Some(
            json!({"output": {"n": 42}, "status": "SUCCEEDED", "arn": "arn:aws:states:local:000000000000:execution:child:child-1"})
        )
    );
    // Two hours of the child pass on the parent's clock.
    assert!((result.stop_date - result.start_date).num_seconds() >= 7200);
    // The parent records the task only, with its submission.
    let types: Vec<&str> = result
        .history
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSubmitted",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    let children = runner.child_executions();
    let child = &children["arn:aws:states:local:000000000000:execution:child:child-1"];
    assert_eq!(child.status, ExecutionStatus::Succeeded);
    // Started, Wait, Fail?, Double (entered, exited), Succeeded.
    assert_eq!(child.history_events, 8);
    assert!(child.seconds >= 7200.0);
}

#[tokio::test]
async fn a_child_that_fails_or_times_out_fails_the_task_which_the_parent_can_catch() {
    let runner = Runner::new(Handlers::new())
        .time_mode(TimeMode::Virtual)
        .child_machine(CHILD_ARN, "child", child_machine());
    // Fails.
    let result = run_with(
        &runner,
        parent(json!({"n": 1, "seconds": 1, "fail": true})),
        json!({"name": "broken"}),
    )
    .await;
    assert!(result.succeeded());
    let error = &result.output.as_ref().expect("output")["error"];
    assert_eq!(error["Error"], "States.TaskFailed");
    let cause: Value = serde_json::from_str(error["Cause"].as_str().expect("cause")).expect("json");
    assert_eq!(cause["Status"], "FAILED");
    assert_eq!(cause["Error"], "ChildBroke");
    // Times out: its own TimeoutSeconds, which the parent cannot stop being caught.
    let result = run_with(
        &runner,
        parent(json!({"n": 1, "seconds": 20000, "fail": false})),
        json!({"name": "slow"}),
    )
    .await;
    let error = &result.output.as_ref().expect("output")["error"];
    let cause: Value = serde_json::from_str(error["Cause"].as_str().expect("cause")).expect("json");
    assert_eq!(cause["Status"], "TIMED_OUT");
    // A name is never reused.
    let result = run_with(
        &runner,
        parent(json!({"n": 1, "seconds": 1, "fail": false})),
        json!({"name": "slow"}),
    )
    .await;
    assert_eq!(
        result.output.as_ref().expect("output")["error"]["Error"],
        "StepFunctions.ExecutionAlreadyExistsException"
    );
}

#[tokio::test]
async fn an_output_over_256_kib_is_a_data_limit_failure_that_states_all_does_not_catch() {
    let mut handlers = Handlers::new();
    handlers.register_fn("big", |_payload, _context| async move {
        Ok(json!({"blob": "x".repeat(300 * 1024)}))
    });
    let runner = Runner::new(handlers).time_mode(TimeMode::Virtual);
    let definition = json!({
        "StartAt": "Big", "States": {
            "Big": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "big", "Payload": {}},
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                "End": true
            },
            "Caught": {"Type": "Pass", "End": true}
        }
    });
    let result = run_with(&runner, definition, json!({})).await;
    assert_eq!(result.status, ExecutionStatus::Failed);
    assert_eq!(result.error.as_deref(), Some("States.DataLimitExceeded"));
    assert!(!result.states_entered().contains(&"Caught".to_owned()));

    // A state's own output over the limit ends the execution too.
    let result = run(
        json!({"StartAt": "Grow", "States": {
            "Grow": {"Type": "Pass", "Result": "x".repeat(300 * 1024), "ResultPath": "$.blob", "Next": "Never"},
            "Never": {"Type": "Succeed"}
        }}),
        json!({}),
    )
    .await;
    assert_eq!(result.error.as_deref(), Some("States.DataLimitExceeded"));
    assert!(result.max_payload_bytes > 256 * 1024);
}

#[tokio::test]
async fn a_child_history_overflow_fails_the_child_not_the_parent() {
    let looping = machine(json!({
        "StartAt": "Init", "States": {
            "Init": {"Type": "Pass", "Result": {"n": 0}, "ResultPath": "$.c", "Next": "Count"},
            "Count": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.c.n, 1)"}, "ResultPath": "$.c", "Next": "Again"},
            "Again": {"Type": "Choice", "Choices": [{"Variable": "$.c.n", "NumericGreaterThanEquals": 20000, "Next": "Done"}], "Default": "Count"},
            "Done": {"Type": "Succeed"}
        }
    }));
    let runner = Runner::new(Handlers::new())
        .time_mode(TimeMode::Virtual)
        .child_machine(CHILD_ARN, "child", looping);
    let result = run_with(&runner, parent(json!({})), json!({"name": "long"})).await;
    assert!(result.succeeded(), "{:?}", result.error);
    let error = &result.output.as_ref().expect("output")["error"];
    let cause: Value = serde_json::from_str(error["Cause"].as_str().expect("cause")).expect("json");
    assert_eq!(cause["Status"], "FAILED");
    assert_eq!(cause["Error"], "States.Runtime");
}

#[tokio::test]
async fn a_range_of_calls_can_answer_without_running_the_function() {
    let (handlers, calls) = flaky_handlers(0, "unused");
    let runner = Runner::new(handlers)
        .time_mode(TimeMode::Virtual)
        .faults(FaultPlan::new(vec![FaultRule {
            task: "Poll".into(),
            call: 1,
            until_call: Some(3),
            fault: Fault::Return {
                output: json!({"echo": {"done": false}}),
            },
        }]));
    let definition = json!({"StartAt": "Init", "States": {
        "Init": {"Type": "Pass", "Result": {"n": 0}, "ResultPath": "$.c", "Next": "Poll"},
        "Poll": task(json!({"ResultSelector": {"done.$": "$.Payload.echo.done"}, "ResultPath": "$.poll", "End": null, "Next": "Done?"})),
        "Done?": {"Type": "Choice", "Choices": [{"Variable": "$.poll.done", "BooleanEquals": false, "Next": "Count"}], "Default": "Finished"},
        "Count": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.c.n, 1)"}, "ResultPath": "$.c", "Next": "Poll"},
        "Finished": {"Type": "Succeed"}
    }});
    let result = run_with(&runner, definition, json!({"done": true})).await;
    assert!(result.succeeded(), "{:?}", result.cause);
    // Three answers were injected; the fourth call ran the function.
    assert_eq!(result.output.expect("output")["c"]["n"], 3);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A fault named `<state machine>/<state>` hits that state machine's
/// executions only: a child's step can fail while its parent's step of the
/// same name runs; a bare name hits both.
#[tokio::test]
async fn a_fault_qualified_by_state_machine_hits_only_its_executions() {
    let child = machine(json!({"StartAt": "Work", "States": {"Work": task(json!({}))}}));
    let definition = json!({"StartAt": "Work", "States": {
        "Work": task(json!({"ResultPath": "$.work", "End": null, "Next": "Run"})),
        "Run": {
            "Type": "Task",
            "Resource": "arn:aws:states:::states:startExecution.sync:2",
            "Parameters": {"StateMachineArn": CHILD_ARN, "Name": "child-1", "Input": {}},
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
            "ResultPath": "$.run",
            "End": true
        },
        "Caught": {"Type": "Pass", "End": true}
    }});
    for (task, parent_failed, child_failed) in [
        ("child/Work", false, true),
        ("local/Work", true, false),
        ("other/Work", false, false),
    ] {
        let (handlers, _) = flaky_handlers(0, "unused");
        let runner = Runner::new(handlers)
            .time_mode(TimeMode::Virtual)
            .child_machine(CHILD_ARN, "child", child.clone())
            .faults(FaultPlan::new(vec![FaultRule {
                task: task.into(),
                call: 1,
                until_call: None,
                fault: Fault::Fail {
                    error: "Boom".into(),
                    cause: "injected".into(),
                },
            }]));
        let result = run_with(&runner, definition.clone(), json!({})).await;
        assert_eq!(
            !result.succeeded(),
            parent_failed,
            "{task}: {:?}",
            result.error
        );
        let child_status = runner
            .child_executions()
            .get("arn:aws:states:local:000000000000:execution:child:child-1")
            .map(|c| c.status);
        assert_eq!(
            child_status == Some(ExecutionStatus::Failed),
            child_failed,
            "{task}: {child_status:?}"
        );
    }
}
