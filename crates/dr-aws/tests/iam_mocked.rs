//! IAM's policy simulation as AWS answers it (aws-smithy-mocks): moto has
//! no SimulatePrincipalPolicy. A role's policies come back URL-encoded (as
//! AWS sends them); each action is simulated on the resources its policy
//! names, with its condition's values as the context; pages are followed;
//! a decision per resource is kept per resource.

use aws_sdk_iam::operation::get_role_policy::GetRolePolicyOutput;
use aws_sdk_iam::operation::list_attached_role_policies::ListAttachedRolePoliciesOutput;
use aws_sdk_iam::operation::list_role_policies::ListRolePoliciesOutput;
use aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyOutput;
use aws_sdk_iam::types::{EvaluationResult, PolicyEvaluationDecisionType, ResourceSpecificResult};
use aws_sdk_iam::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use dr_aws::AwsPermissions;
use dr_core::*;

const ROLE: &str = "arn:aws:iam::123456789012:role/muejam-ProbeDatabaseFunctionRole-X1";
const TABLE: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/muejam-dr-locks";

fn encoded(policy: &serde_json::Value) -> String {
    percent_encode(&policy.to_string())
}

/// RFC 3986 encoding, as IAM returns policy documents.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn permissions(iam: Client) -> AwsPermissions {
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    AwsPermissions::new(
        aws_sdk_sfn::Client::new(&config),
        aws_sdk_lambda::Client::new(&config),
        iam,
    )
}

fn result(
    action: &str,
    resource: &str,
    decision: PolicyEvaluationDecisionType,
) -> EvaluationResult {
    EvaluationResult::builder()
        .eval_action_name(action)
        .eval_resource_name(resource)
        .eval_decision(decision)
        .build()
        .expect("result")
}

#[tokio::test]
async fn each_action_is_simulated_where_its_policy_scopes_it_and_every_page_is_read() {
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": TABLE},
        {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
         "Condition": {"StringEquals": {"cloudwatch:namespace": "MueJam/DR"}}}
    ]});
    let list = mock!(Client::list_role_policies)
        .match_requests(|r| r.role_name() == Some("muejam-ProbeDatabaseFunctionRole-X1"))
        .then_output(|| {
            ListRolePoliciesOutput::builder()
                .policy_names("ProbeDatabaseFunctionRolePolicy0")
                .is_truncated(false)
                .build()
                .expect("list")
        });
    let document = encoded(&policy);
    let get = mock!(Client::get_role_policy)
        .match_requests(|r| r.policy_name() == Some("ProbeDatabaseFunctionRolePolicy0"))
        .then_output(move || {
            GetRolePolicyOutput::builder()
                .role_name("muejam-ProbeDatabaseFunctionRole-X1")
                .policy_name("ProbeDatabaseFunctionRolePolicy0")
                .policy_document(document.clone())
                .build()
                .expect("policy")
        });
    let attached = mock!(Client::list_attached_role_policies).then_output(|| {
        ListAttachedRolePoliciesOutput::builder()
            .is_truncated(false)
            .build()
    });
    // The table's actions: two pages, the second a decision per resource.
    let table_first = mock!(Client::simulate_principal_policy)
        .match_requests(|r| {
            r.policy_source_arn() == Some(ROLE)
                && r.action_names() == ["dynamodb:GetItem", "dynamodb:PutItem"]
                && r.resource_arns() == [TABLE]
                && r.context_entries().is_empty()
                && r.marker().is_none()
        })
        .then_output(|| {
            SimulatePrincipalPolicyOutput::builder()
                .evaluation_results(result(
                    "dynamodb:GetItem",
                    TABLE,
                    PolicyEvaluationDecisionType::Allowed,
                ))
                .is_truncated(true)
                .marker("page-2")
                .build()
        });
    let table_second = mock!(Client::simulate_principal_policy)
        .match_requests(|r| r.marker() == Some("page-2"))
        .then_output(|| {
            SimulatePrincipalPolicyOutput::builder()
                .evaluation_results(
                    EvaluationResult::builder()
                        .eval_action_name("dynamodb:PutItem")
                        .eval_decision(PolicyEvaluationDecisionType::ImplicitDeny)
                        .resource_specific_results(
                            ResourceSpecificResult::builder()
                                .eval_resource_name(TABLE)
                                .eval_resource_decision(PolicyEvaluationDecisionType::ExplicitDeny)
                                .build()
                                .expect("specific"),
                        )
                        .build()
                        .expect("result"),
                )
                .is_truncated(false)
                .build()
        });
    let metric = mock!(Client::simulate_principal_policy)
        .match_requests(|r| {
            r.action_names() == ["cloudwatch:PutMetricData"]
                && r.resource_arns() == ["*"]
                && r.context_entries().len() == 1
                && r.context_entries()[0].context_key_name() == Some("cloudwatch:namespace")
                && r.context_entries()[0].context_key_values() == ["MueJam/DR"]
        })
        .then_output(|| {
            SimulatePrincipalPolicyOutput::builder()
                .evaluation_results(
                    EvaluationResult::builder()
                        .eval_action_name("cloudwatch:PutMetricData")
                        .eval_resource_name("*")
                        .eval_decision(PolicyEvaluationDecisionType::ImplicitDeny)
                        .missing_context_values("aws:SourceVpc")
                        .build()
                        .expect("result"),
                )
                .is_truncated(false)
                .build()
        });
    let iam = mock_client!(
        aws_sdk_iam,
        RuleMode::MatchAny,
        [&list, &get, &attached, &table_first, &table_second, &metric]
    );
    let request = |a: &str| ActionRequest {
        action: a.into(),
        resources: vec![],
    };
    let verdicts = permissions(iam)
        .simulate(
            ROLE,
            &[
                request("dynamodb:GetItem"),
                request("dynamodb:PutItem"),
                request("cloudwatch:PutMetricData"),
            ],
        )
        .await
        .expect("simulated");
    assert_eq!(
        verdicts,
        vec![
            ActionVerdict {
                action: "dynamodb:GetItem".into(),
                resource: TABLE.into(),
                decision: Decision::Allowed,
                missing_context: vec![],
            },
            ActionVerdict {
                action: "dynamodb:PutItem".into(),
                resource: TABLE.into(),
                decision: Decision::ExplicitDeny,
                missing_context: vec![],
            },
            ActionVerdict {
                action: "cloudwatch:PutMetricData".into(),
                resource: "*".into(),
                decision: Decision::ImplicitDeny,
                missing_context: vec!["aws:SourceVpc".into()],
            },
        ]
    );
    assert_eq!(table_first.num_calls(), 1);
    assert_eq!(table_second.num_calls(), 1);
}

#[tokio::test]
async fn a_role_the_check_may_not_read_is_an_error_not_a_verdict() {
    let denied = mock!(Client::list_role_policies).then_error(|| {
        aws_sdk_iam::operation::list_role_policies::ListRolePoliciesError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code("AccessDenied")
                .message("not authorized to perform: iam:ListRolePolicies")
                .build(),
        )
    });
    let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&denied]);
    let error = permissions(iam)
        .simulate(
            ROLE,
            &[ActionRequest {
                action: "rds:DescribeDBInstances".into(),
                resources: vec![],
            }],
        )
        .await
        .expect_err("not a verdict");
    assert!(error.to_string().contains("AccessDenied"), "{error}");
}
