//! Conformance: history.

use super::*;

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
