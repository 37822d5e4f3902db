//! Conformance: choice.

use super::*;

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
