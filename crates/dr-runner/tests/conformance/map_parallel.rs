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
