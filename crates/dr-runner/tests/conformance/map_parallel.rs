//! Conformance: parallel and map.

use super::*;

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

/// Four items through a task that takes 30 ms, at the concurrency the input
/// names; returns the result and the most iterations that ran at once.
async fn map_at(concurrency: Value) -> (ExecutionResult, u32) {
    let in_flight = Arc::new(AtomicU32::new(0));
    let most = Arc::new(AtomicU32::new(0));
    let mut handlers = Handlers::new();
    let (now, peak) = (Arc::clone(&in_flight), Arc::clone(&most));
    handlers.register_fn("Slow", move |_payload, _ctx| {
        let (now, peak) = (Arc::clone(&now), Arc::clone(&peak));
        async move {
            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(running, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(30)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            Ok(json!({}))
        }
    });
    let runner = Runner::new(handlers).time_mode(TimeMode::Virtual);
    let result = run_with(
        &runner,
        single(json!({
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrencyPath": "$.k",
            "ItemProcessor": {"StartAt": "T", "States": {"T": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:Slow"},
                "End": true
            }}},
            "ResultPath": null,
            "End": true
        })),
        json!({"items": [1, 2, 3, 4], "k": concurrency}),
    )
    .await;
    (result, most.load(Ordering::SeqCst))
}

#[tokio::test]
async fn max_concurrency_path_reads_the_limit_from_the_input() {
    for (k, most) in [(json!(1), 1), (json!(2), 2), (json!(3), 3), (json!(0), 4)] {
        let (result, seen) = map_at(k.clone()).await;
        assert!(
            result.succeeded(),
            "k={k}: {:?} {:?}",
            result.error,
            result.cause
        );
        assert_eq!(seen, most, "k={k}: at most {most} at once");
    }
    for bad in [json!(-1), json!("2"), json!(1.5), Value::Null] {
        let (result, seen) = map_at(bad.clone()).await;
        assert_eq!(result.error.as_deref(), Some("States.Runtime"), "k={bad}");
        assert_eq!(seen, 0, "nothing ran");
    }
    let both = StateMachine::from_value(
        &single(json!({
            "Type": "Map", "MaxConcurrency": 1, "MaxConcurrencyPath": "$.k",
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
            "End": true
        })),
        &LoadOptions::default(),
    );
    assert!(
        both.is_err(),
        "MaxConcurrency and MaxConcurrencyPath together are refused"
    );
}
