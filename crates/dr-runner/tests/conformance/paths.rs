//! Conformance: path processing.

use super::*;

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
