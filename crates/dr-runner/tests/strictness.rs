//! What the runner does not implement is rejected when a definition loads,
//! naming the state and the field; nothing is silently ignored.

use std::collections::{BTreeMap, BTreeSet};

use dr_runner::{LoadOptions, StateMachine};
use serde_json::{json, Value};

fn load_error(definition: Value) -> String {
    StateMachine::from_value(&definition, &LoadOptions::default())
        .expect_err("must be rejected")
        .to_string()
}

fn one(name: &str, state: Value) -> Value {
    json!({"StartAt": name, "States": {name: state}})
}

#[test]
fn unsupported_fields_and_features_name_the_state_and_the_field() {
    let cases = [
        (
            one(
                "Approve",
                json!({"Type": "Task", "Resource": "arn:aws:states:::sns:publish", "End": true}),
            ),
            "Approve",
            "Resource",
        ),
        (
            one(
                "Load",
                json!({"Type": "Map", "ItemReader": {}, "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}),
            ),
            "Load",
            "ItemReader",
        ),
        (
            one(
                "Batch",
                json!({"Type": "Map", "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}),
            ),
            "Batch",
            "DISTRIBUTED",
        ),
        (
            one(
                "Assign",
                json!({"Type": "Pass", "Assign": {"x": 1}, "End": true}),
            ),
            "Assign",
            "Assign",
        ),
        (
            one(
                "Creds",
                json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "Credentials": {}, "End": true}),
            ),
            "Creds",
            "Credentials",
        ),
        (
            one(
                "Filter",
                json!({"Type": "Pass", "InputPath": "$.items[?(@.x =~ /a.*/)]", "End": true}),
            ),
            "Filter",
            "InputPath",
        ),
        (
            one(
                "Hash",
                json!({"Type": "Pass", "Parameters": {"h.$": "States.Hash($.x)"}, "End": true}),
            ),
            "Hash",
            "Parameters",
        ),
        (
            one(
                "Op",
                json!({"Type": "Choice", "Choices": [{"Variable": "$.x", "StringContains": "a", "Next": "Op"}], "Default": "Op"}),
            ),
            "Op",
            "StringContains",
        ),
        (
            one(
                "Sync",
                json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.sync", "Parameters": {"FunctionName": "f"}, "End": true}),
            ),
            "Sync",
            "Resource",
        ),
        (
            one(
                "Jitter",
                json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "Retry": [{"ErrorEquals": ["X"], "JitterStrategy": "SOME"}], "End": true}),
            ),
            "Jitter",
            "JitterStrategy",
        ),
    ];
    for (definition, state, field) in cases {
        let message = load_error(definition);
        assert!(message.contains(&format!("state \"{state}\"")), "{message}");
        assert!(message.contains(field), "{message} should name {field}");
    }
    let message = load_error(
        json!({"StartAt": "A", "QueryLanguage": "JSONata", "States": {"A": {"Type": "Succeed"}}}),
    );
    assert!(message.contains("QueryLanguage"), "{message}");
}

#[test]
fn structural_mistakes_are_load_errors() {
    for (definition, expected) in [
        (
            json!({"StartAt": "Nope", "States": {"A": {"Type": "Succeed"}}}),
            "StartAt",
        ),
        (one("A", json!({"Type": "Pass", "Next": "B"})), "\"B\""),
        (one("A", json!({"Type": "Pass"})), "Next or"),
        (
            one("A", json!({"Type": "Pass", "Next": "A", "End": true})),
            "both Next and End",
        ),
        (
            one(
                "A",
                json!({"Type": "Wait", "Seconds": 1, "Timestamp": "2026-01-01T00:00:00Z", "End": true}),
            ),
            "exactly one",
        ),
        (
            one(
                "A",
                json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}], "End": true}),
            ),
            "last",
        ),
        (
            one(
                "A",
                json!({"Type": "Pass", "ResultPath": "$.a[*]", "End": true}),
            ),
            "reference path",
        ),
        (
            one(
                "A",
                json!({"Type": "Choice", "Choices": [{"Not": {"Variable": "$.a", "IsNull": true}, "Next": "A", "Comment": "c"}, {"Variable": "$.a", "IsNull": true, "Next": "A", "Extra": 1}]}),
            ),
            "exactly one operator",
        ),
    ] {
        let message = load_error(definition);
        assert!(
            message.contains(expected),
            "{message} should mention {expected}"
        );
    }
}

#[test]
fn substitutions_resolve_and_a_missing_one_names_the_state() {
    let text = r#"{"StartAt": "Promote", "States": {"Promote": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "${PromoteReplicaFunctionArn}", "Payload": {"topic": "${AlertsTopicArn}"}},
        "End": true}}}"#;
    let mut options = LoadOptions {
        substitutions: BTreeMap::from([(
            "PromoteReplicaFunctionArn".to_owned(),
            "arn:aws:lambda:us-east-1:123456789012:function:PromoteReplicaFunction".to_owned(),
        )]),
        known_functions: None,
    };
    let message = StateMachine::load(text, &options)
        .expect_err("missing substitution")
        .to_string();
    assert!(
        message.contains("state \"Promote\"") && message.contains("${AlertsTopicArn}"),
        "{message}"
    );

    options.substitutions.insert(
        "AlertsTopicArn".to_owned(),
        "arn:aws:sns:us-east-1:123456789012:AlertsTopic".to_owned(),
    );
    let machine = StateMachine::load(text, &options).expect("loads");
    assert_eq!(
        machine.functions(),
        vec![("Promote".to_owned(), "PromoteReplicaFunction".to_owned())]
    );

    options.known_functions = Some(BTreeSet::from(["NotifyFunction".to_owned()]));
    let message = StateMachine::load(text, &options)
        .expect_err("no handler")
        .to_string();
    assert!(
        message.contains("state \"Promote\"") && message.contains("PromoteReplicaFunction"),
        "{message}"
    );
}
