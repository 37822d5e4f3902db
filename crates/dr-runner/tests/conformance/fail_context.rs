//! Conformance: fail, context, intrinsics.

use super::*;

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
