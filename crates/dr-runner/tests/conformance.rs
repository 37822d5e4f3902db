//! Conformance with the Amazon States Language specification and the AWS
//! Step Functions documentation: each case asserts the exact output.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dr_runner::*;
use serde_json::{json, Value};

fn machine(definition: Value) -> StateMachine {
    StateMachine::from_value(&definition, &LoadOptions::default()).expect("definition loads")
}

async fn run_with(runner: &Runner, definition: Value, input: Value) -> ExecutionResult {
    runner
        .execute(&machine(definition), input, Some("test-run"))
        .await
}

async fn run(definition: Value, input: Value) -> ExecutionResult {
    let runner = Runner::new(Handlers::new()).time_mode(TimeMode::Virtual);
    run_with(&runner, definition, input).await
}

async fn output(definition: Value, input: Value) -> Value {
    let result = run(definition, input).await;
    assert!(
        result.succeeded(),
        "{:?}: {:?} {:?}",
        result.status,
        result.error,
        result.cause
    );
    result.output.expect("output")
}

fn single(state: Value) -> Value {
    json!({"StartAt": "S", "States": {"S": state}})
}

// ----- path processing ----------------------------------------------------

#[tokio::test]
async fn input_path_parameters_result_path_output_path_as_in_the_aws_example() {
    // "Example: Manipulating state data with paths in Step Functions".
    let input = json!({
        "comment": "An input comment.",
        "data": {"val1": 23, "val2": 17},
        "extra": "foo",
        "lambda": {"who": "AWS Step Functions"}
    });
    let out = output(
        single(json!({
            "Type": "Pass",
            "InputPath": "$.lambda",
            "Parameters": {"greeting.$": "States.Format('Hello, {}!', $.who)"},
            "ResultPath": "$.data.lambdaresult",
            "OutputPath": "$.data",
            "End": true
        })),
        input,
    )
    .await;
    assert_eq!(
        out,
        json!({"val1": 23, "val2": 17, "lambdaresult": {"greeting": "Hello, AWS Step Functions!"}})
    );
}

#[tokio::test]
async fn a_filter_expression_and_states_hash_work_as_on_aws() {
    // AWS accepts JSONPath filters (Jayway's `[?(...)]`) in InputPath and
    // Parameters, and States.Hash; an indefinite path selects an array.
    let out = output(
        single(json!({
            "Type": "Pass",
            "InputPath": "$.orders[?(@.total > 100)]",
            "Parameters": {
                "ids.$": "$[*].id",
                "first.$": "$[0].id",
                "digest.$": "States.Hash($[0].id, 'SHA-1')"
            },
            "End": true
        })),
        json!({"orders": [
            {"id": "a", "total": 50},
            {"id": "input data", "total": 150},
            {"id": "c", "total": 101}
        ]}),
    )
    .await;
    assert_eq!(
        out,
        json!({
            "ids": ["input data", "c"],
            "first": "input data",
            "digest": "aaff4a450a104cd177d28d18d74485e8cae074b7"
        })
    );
}

#[tokio::test]
async fn result_path_merges_discards_and_replaces() {
    let input = json!({"master": {"detail": [1, 2, 3]}});
    let merged = output(
        single(
            json!({"Type": "Pass", "Result": 6, "ResultPath": "$.master.result.sum", "End": true}),
        ),
        input.clone(),
    )
    .await;
    assert_eq!(
        merged,
        json!({"master": {"detail": [1, 2, 3], "result": {"sum": 6}}})
    );

    let discarded = output(
        single(json!({"Type": "Pass", "Result": "ignored", "ResultPath": null, "End": true})),
        input.clone(),
    )
    .await;
    assert_eq!(discarded, input);

    let replaced = output(
        single(json!({"Type": "Pass", "Result": {"x": 1}, "End": true})),
        input.clone(),
    )
    .await;
    assert_eq!(replaced, json!({"x": 1}));

    let null_paths = output(
        single(json!({"Type": "Pass", "InputPath": null, "OutputPath": "$.result", "ResultPath": "$.result", "End": true})),
        input,
    )
    .await;
    assert_eq!(null_paths, json!({}));
}

#[tokio::test]
async fn a_result_path_through_a_scalar_fails_with_result_path_match_failure() {
    let result = run(
        single(json!({"Type": "Pass", "Result": 1, "ResultPath": "$.a.b", "End": true})),
        json!({"a": "scalar"}),
    )
    .await;
    assert_eq!(result.status, ExecutionStatus::Failed);
    assert_eq!(
        result.error.as_deref(),
        Some("States.ResultPathMatchFailure")
    );
}

#[tokio::test]
async fn a_missing_input_path_is_a_runtime_error() {
    let result = run(
        single(json!({"Type": "Pass", "InputPath": "$.nope", "End": true})),
        json!({}),
    )
    .await;
    assert_eq!(result.error.as_deref(), Some("States.Runtime"));
}

// ----- choice -------------------------------------------------------------

async fn choose(rule: Value, input: Value) -> bool {
    let mut rule = rule;
    rule["Next"] = json!("Yes");
    let out = output(
        json!({
            "StartAt": "C",
            "States": {
                "C": {"Type": "Choice", "Choices": [rule], "Default": "No"},
                "Yes": {"Type": "Pass", "Result": true, "End": true},
                "No": {"Type": "Pass", "Result": false, "End": true}
            }
        }),
        input,
    )
    .await;
    out == json!(true)
}

#[tokio::test]
async fn every_comparison_operator_and_its_path_form() {
    let input = json!({
        "s": "banana", "s_same": "banana", "s_low": "apple", "s_high": "cherry",
        "n": 10, "n_same": 10.0, "n_low": 3, "n_high": 11.5,
        "b": true, "b_same": true,
        "t": "2026-11-26T02:00:00Z", "t_same": "2026-11-26T03:00:00+01:00",
        "t_low": "2026-01-01T00:00:00Z", "t_high": "2027-01-01T00:00:00Z",
        "file": "report-2026.md"
    });
    // (operator, literal operand, path operand, expected)
    let cases: Vec<(&str, Value, &str, bool)> = vec![
        ("StringEquals", json!("banana"), "$.s_same", true),
        ("StringLessThan", json!("cherry"), "$.s_high", true),
        ("StringGreaterThan", json!("apple"), "$.s_low", true),
        ("StringLessThanEquals", json!("banana"), "$.s_same", true),
        (
            "StringGreaterThanEquals",
            json!("cherry"),
            "$.s_high",
            false,
        ),
        ("NumericEquals", json!(10), "$.n_same", true),
        ("NumericLessThan", json!(11.5), "$.n_high", true),
        ("NumericGreaterThan", json!(3), "$.n_low", true),
        ("NumericLessThanEquals", json!(10), "$.n_same", true),
        ("NumericGreaterThanEquals", json!(11.5), "$.n_high", false),
        ("BooleanEquals", json!(true), "$.b_same", true),
        (
            "TimestampEquals",
            json!("2026-11-26T02:00:00Z"),
            "$.t_same",
            true,
        ),
        (
            "TimestampLessThan",
            json!("2027-01-01T00:00:00Z"),
            "$.t_high",
            true,
        ),
        (
            "TimestampGreaterThan",
            json!("2026-01-01T00:00:00Z"),
            "$.t_low",
            true,
        ),
        (
            "TimestampLessThanEquals",
            json!("2026-11-26T02:00:00Z"),
            "$.t_same",
            true,
        ),
        (
            "TimestampGreaterThanEquals",
            json!("2027-01-01T00:00:00Z"),
            "$.t_high",
            false,
        ),
    ];
    let variable = |op: &str| match &op[..4] {
        "Stri" => "$.s",
        "Nume" => "$.n",
        "Bool" => "$.b",
        _ => "$.t",
    };
    for (op, literal, path, expected) in cases {
        let literal_rule = json!({"Variable": variable(op), op: literal});
        assert_eq!(choose(literal_rule, input.clone()).await, expected, "{op}");
        let path_rule = json!({"Variable": variable(op), format!("{op}Path"): path});
        assert_eq!(choose(path_rule, input.clone()).await, expected, "{op}Path");
    }
    assert!(
        choose(
            json!({"Variable": "$.file", "StringMatches": "report-*.md"}),
            input.clone()
        )
        .await
    );
    assert!(
        !choose(
            json!({"Variable": "$.file", "StringMatches": "log-*"}),
            input.clone()
        )
        .await
    );
    // A comparison between different types is false, not an error.
    assert!(
        !choose(
            json!({"Variable": "$.s", "NumericEquals": 1}),
            input.clone()
        )
        .await
    );
}

#[tokio::test]
async fn type_tests_and_boolean_combinators() {
    let input = json!({"nothing": null, "n": 1, "s": "x", "b": false, "t": "2026-11-26T02:00:00Z"});
    for (rule, expected) in [
        (json!({"Variable": "$.nothing", "IsNull": true}), true),
        (json!({"Variable": "$.n", "IsNull": true}), false),
        (json!({"Variable": "$.missing", "IsPresent": false}), true),
        (json!({"Variable": "$.n", "IsPresent": true}), true),
        (json!({"Variable": "$.n", "IsNumeric": true}), true),
        (json!({"Variable": "$.s", "IsString": true}), true),
        (json!({"Variable": "$.b", "IsBoolean": true}), true),
        (json!({"Variable": "$.t", "IsTimestamp": true}), true),
        (json!({"Variable": "$.s", "IsTimestamp": true}), false),
        (
            json!({"And": [{"Variable": "$.n", "NumericEquals": 1}, {"Variable": "$.s", "StringEquals": "x"}]}),
            true,
        ),
        (
            json!({"Or": [{"Variable": "$.n", "NumericEquals": 2}, {"Variable": "$.s", "StringEquals": "x"}]}),
            true,
        ),
        (
            json!({"Not": {"Variable": "$.b", "BooleanEquals": false}}),
            false,
        ),
        (
            json!({"And": [{"Variable": "$.missing", "IsPresent": true}, {"Variable": "$.missing", "NumericEquals": 1}]}),
            false,
        ),
    ] {
        assert_eq!(
            choose(rule.clone(), input.clone()).await,
            expected,
            "{rule}"
        );
    }
}

#[tokio::test]
async fn no_matching_choice_without_default_fails_and_a_missing_variable_is_a_runtime_error() {
    let no_match = run(
        json!({"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "E"}]},
            "E": {"Type": "Succeed"}}}),
        json!({"n": 2}),
    )
    .await;
    assert_eq!(no_match.error.as_deref(), Some("States.NoChoiceMatched"));
    let missing = run(
        json!({"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "E"}], "Default": "E"},
            "E": {"Type": "Succeed"}}}),
        json!({}),
    )
    .await;
    assert_eq!(missing.error.as_deref(), Some("States.Runtime"));
}

// ----- tasks, retry and catch ----------------------------------------------

fn flaky_handlers(failures_before_success: u32, error: &'static str) -> (Handlers, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let mut handlers = Handlers::new();
    handlers.register_fn("Flaky", move |payload, _ctx| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n <= failures_before_success {
                Err(HandlerError::new(error, format!("call {n} failed")))
            } else {
                Ok(json!({"call": n, "echo": payload}))
            }
        }
    });
    (handlers, calls)
}

fn task(extra: Value) -> Value {
    let mut state = json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:Flaky", "Payload.$": "$"},
        "End": true
    });
    if let (Some(s), Some(e)) = (state.as_object_mut(), extra.as_object()) {
        for (key, value) in e {
            if value.is_null() {
                s.remove(key);
            } else {
                s.insert(key.clone(), value.clone());
            }
        }
    }
    state
}

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

// ----- parallel and map ----------------------------------------------------

#[tokio::test]
async fn parallel_outputs_follow_branch_order_not_finish_order() {
    let out = output(
        single(json!({
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Slow", "States": {"Slow": {"Type": "Wait", "Seconds": 3600, "Next": "A"}, "A": {"Type": "Pass", "Result": "first", "End": true}}},
                {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": "second", "End": true}}}
            ],
            "ResultPath": "$.results",
            "End": true
        })),
        json!({"keep": 1}),
    )
    .await;
    assert_eq!(out, json!({"keep": 1, "results": ["first", "second"]}));
}

#[tokio::test]
async fn map_keeps_item_order_with_item_selector_and_context() {
    let out = output(
        single(json!({
            "Type": "Map",
            "ItemsPath": "$.databases",
            "MaxConcurrency": 2,
            "ItemSelector": {"db.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index", "region.$": "$.region"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "W",
                "States": {
                    "W": {"Type": "Wait", "SecondsPath": "$.index", "Next": "P"},
                    "P": {"Type": "Pass", "Parameters": {"label.$": "States.Format('{}#{}@{}', $.db, $.index, $.region)"}, "End": true}
                }
            },
            "ResultPath": "$.results",
            "End": true
        })),
        json!({"region": "us-east-1", "databases": ["prod", "analytics", "audit"]}),
    )
    .await;
    assert_eq!(
        out["results"],
        json!([{"label": "prod#0@us-east-1"}, {"label": "analytics#1@us-east-1"}, {"label": "audit#2@us-east-1"}])
    );
}

#[tokio::test]
async fn a_failing_branch_fails_the_parallel_state_and_can_be_caught() {
    let out = output(
        json!({"StartAt": "Par", "States": {
            "Par": {"Type": "Parallel", "Branches": [
                {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "DrillFailed", "Cause": "restore test failed"}}},
                {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}
            ], "Catch": [{"ErrorEquals": ["DrillFailed"], "Next": "Cleanup"}], "Next": "Done"},
            "Cleanup": {"Type": "Pass", "End": true},
            "Done": {"Type": "Succeed"}}}),
        json!({}),
    )
    .await;
    assert_eq!(
        out,
        json!({"Error": "DrillFailed", "Cause": "restore test failed"})
    );
}

// ----- fail, context, intrinsics ---------------------------------------------

#[tokio::test]
async fn fail_takes_error_and_cause_from_paths() {
    let result = run(
        single(json!({"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('lag {} s', $.lag)"})),
        json!({"e": "ReplicaLagTooHigh", "lag": 30000}),
    )
    .await;
    assert_eq!(result.status, ExecutionStatus::Failed);
    assert_eq!(result.error.as_deref(), Some("ReplicaLagTooHigh"));
    assert_eq!(result.cause.as_deref(), Some("lag 30000 s"));
}

#[tokio::test]
async fn the_context_object_carries_execution_and_state() {
    let out = output(
        json!({"StartAt": "First", "States": {
            "First": {"Type": "Pass", "Next": "Ctx"},
            "Ctx": {"Type": "Pass", "Parameters": {
                "name.$": "$$.Execution.Name",
                "id.$": "$$.Execution.Id",
                "input.$": "$$.Execution.Input",
                "start.$": "$$.Execution.StartTime",
                "state.$": "$$.State.Name",
                "entered.$": "$$.State.EnteredTime",
                "retries.$": "$$.State.RetryCount",
                "machine.$": "$$.StateMachine.Name"
            }, "End": true}}}),
        json!({"database": "muejam-db-prod"}),
    )
    .await;
    assert_eq!(out["name"], "test-run");
    assert_eq!(
        out["id"],
        "arn:aws:states:local:000000000000:execution:local:test-run"
    );
    assert_eq!(out["input"], json!({"database": "muejam-db-prod"}));
    assert_eq!(out["state"], "Ctx");
    assert_eq!(out["retries"], 0);
    assert_eq!(out["machine"], "local");
    for field in ["start", "entered"] {
        let text = out[field].as_str().expect("timestamp");
        assert!(
            chrono::DateTime::parse_from_rfc3339(text).is_ok(),
            "{field}: {text}"
        );
    }
}

#[tokio::test]
async fn intrinsics_work_inside_parameters() {
    let out = output(
        single(json!({"Type": "Pass", "Parameters": {
            "subject.$": "States.Format('Failover of {} finished in {} s', $.db, $.seconds)",
            "attempts.$": "States.ArrayLength($.attempts)",
            "next.$": "States.MathAdd($.iteration, 1)",
            "parsed.$": "States.StringToJson($.raw)",
            "text.$": "States.JsonToString($.obj)",
            "pair.$": "States.Array($.db, $.iteration)",
            "id.$": "States.UUID()"
        }, "End": true})),
        json!({"db": "muejam-db-prod", "seconds": 42, "attempts": [1, 2], "iteration": 4, "raw": "{\"a\":[1]}", "obj": {"b": true}}),
    )
    .await;
    assert_eq!(
        out["subject"],
        "Failover of muejam-db-prod finished in 42 s"
    );
    assert_eq!(out["attempts"], 2);
    assert_eq!(out["next"], 5);
    assert_eq!(out["parsed"], json!({"a": [1]}));
    assert_eq!(out["text"], "{\"b\":true}");
    assert_eq!(out["pair"], json!(["muejam-db-prod", 4]));
    assert_eq!(out["id"].as_str().map(str::len), Some(36));
}

// ----- time ---------------------------------------------------------------

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

// ----- history ------------------------------------------------------------

#[tokio::test]
async fn history_is_shaped_like_aws() {
    let result = run(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Succeed"}}}),
        json!({"k": 1}),
    )
    .await;
    let types: Vec<&str> = result
        .history
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(
        types,
        vec![
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "SucceedStateEntered",
            "SucceedStateExited",
            "ExecutionSucceeded"
        ]
    );
    let json = serde_json::to_value(&result.history[1]).expect("serializes");
    assert_eq!(json["type"], "PassStateEntered");
    assert_eq!(json["id"], 2);
    assert_eq!(json["previousEventId"], 1);
    assert_eq!(json["stateEnteredEventDetails"]["name"], "A");
    assert_eq!(json["stateEnteredEventDetails"]["input"], "{\"k\":1}");
}

// ----- child executions and payload limits --------------------------------

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
