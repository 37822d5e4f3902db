//! [`Permissions`] on Step Functions (DescribeStateMachine), Lambda
//! (GetFunctionConfiguration) and IAM (the role's own policies, then
//! SimulatePrincipalPolicy).
//!
//! The simulator decides an action on the resources it is given, and with
//! none it uses `*`, which a statement scoped to named resources does not
//! match: each action is therefore simulated on the resources the role's
//! own policies name for it, with the values their own conditions name as
//! the request's context. What the simulation then adds to reading the
//! policies is what they cannot show: a permissions boundary, an
//! organization's SCPs, an explicit deny, a statement edited by hand.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum, PolicyEvaluationDecisionType};
use dr_core::*;
use serde_json::Value;

use crate::errors::map_sdk_error;

#[derive(Debug, Clone)]
pub struct AwsPermissions {
    sfn: aws_sdk_sfn::Client,
    lambda: aws_sdk_lambda::Client,
    iam: aws_sdk_iam::Client,
}

impl AwsPermissions {
    pub fn new(
        sfn: aws_sdk_sfn::Client,
        lambda: aws_sdk_lambda::Client,
        iam: aws_sdk_iam::Client,
    ) -> Self {
        AwsPermissions { sfn, lambda, iam }
    }

    /// The identity policies of a role, inline and attached (each
    /// attached policy's default version), as JSON documents.
    pub async fn role_policies(&self, role_arn: &str) -> DrResult<Vec<Value>> {
        let role = role_name(role_arn)?;
        let mut documents = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .iam
                .list_role_policies()
                .role_name(role)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| map_sdk_error(&format!("listing the policies of {role}"), e))?;
            for name in page.policy_names() {
                let policy = self
                    .iam
                    .get_role_policy()
                    .role_name(role)
                    .policy_name(name)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error(&format!("reading policy {name} of {role}"), e))?;
                documents.push(decode_policy(policy.policy_document()).ok_or_else(|| {
                    DrError::Internal(format!("policy {name} of {role} is not a JSON document"))
                })?);
            }
            match (page.is_truncated(), page.marker()) {
                (true, Some(next)) => marker = Some(next.to_owned()),
                _ => break,
            }
        }
        let mut attached = Vec::new();
        loop {
            let page = self
                .iam
                .list_attached_role_policies()
                .role_name(role)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| {
                    map_sdk_error(&format!("listing the attached policies of {role}"), e)
                })?;
            attached.extend(
                page.attached_policies()
                    .iter()
                    .filter_map(|p| p.policy_arn().map(str::to_owned)),
            );
            match (page.is_truncated(), page.marker()) {
                (true, Some(next)) => marker = Some(next.to_owned()),
                _ => break,
            }
        }
        for arn in attached {
            let policy = self
                .iam
                .get_policy()
                .policy_arn(&arn)
                .send()
                .await
                .map_err(|e| map_sdk_error(&format!("reading policy {arn}"), e))?;
            let Some(version) = policy.policy().and_then(|p| p.default_version_id()) else {
                return Err(DrError::Internal(format!(
                    "policy {arn} has no default version"
                )));
            };
            let version = self
                .iam
                .get_policy_version()
                .policy_arn(&arn)
                .version_id(version)
                .send()
                .await
                .map_err(|e| map_sdk_error(&format!("reading policy {arn} {version}"), e))?;
            let document = version
                .policy_version()
                .and_then(|v| v.document())
                .and_then(decode_policy)
                .ok_or_else(|| DrError::Internal(format!("policy {arn} is not a JSON document")))?;
            documents.push(document);
        }
        Ok(documents)
    }
}

#[async_trait]
impl Permissions for AwsPermissions {
    async fn state_machine(&self, arn: &str) -> DrResult<DeployedStateMachine> {
        let sm = self
            .sfn
            .describe_state_machine()
            .state_machine_arn(arn)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("describing state machine {arn}"), e))?;
        let definition = serde_json::from_str(sm.definition())
            .map_err(|e| DrError::Internal(format!("the definition of {arn} is not JSON: {e}")))?;
        Ok(DeployedStateMachine {
            arn: arn.to_owned(),
            definition,
            role_arn: sm.role_arn().to_owned(),
        })
    }

    async fn function(&self, arn: &str) -> DrResult<DeployedFunction> {
        let f = self
            .lambda
            .get_function_configuration()
            .function_name(arn)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("reading function {arn}"), e))?;
        Ok(DeployedFunction {
            arn: arn.to_owned(),
            role_arn: f.role().unwrap_or_default().to_owned(),
            dr_function: f
                .environment()
                .and_then(|e| e.variables())
                .and_then(|v| v.get("DR_FUNCTION"))
                .cloned(),
        })
    }

    async fn simulate(
        &self,
        role_arn: &str,
        requests: &[ActionRequest],
    ) -> DrResult<Vec<ActionVerdict>> {
        let needs_policies = requests.iter().any(|r| r.resources.is_empty());
        let policies = if needs_policies {
            self.role_policies(role_arn).await?
        } else {
            Vec::new()
        };
        let mut verdicts = Vec::new();
        for call in plan_simulation(&policies, requests) {
            let context: Vec<ContextEntry> = call
                .context
                .iter()
                .map(|(key, values)| {
                    ContextEntry::builder()
                        .context_key_name(key)
                        .set_context_key_values(Some(values.clone()))
                        .context_key_type(if values.len() > 1 {
                            ContextKeyTypeEnum::StringList
                        } else {
                            ContextKeyTypeEnum::String
                        })
                        .build()
                })
                .collect();
            let mut marker: Option<String> = None;
            loop {
                let page = self
                    .iam
                    .simulate_principal_policy()
                    .policy_source_arn(role_arn)
                    .set_action_names(Some(call.actions.clone()))
                    .set_resource_arns(Some(call.resources.clone()))
                    .set_context_entries(Some(context.clone()))
                    .set_marker(marker.take())
                    .send()
                    .await
                    .map_err(|e| {
                        map_sdk_error(&format!("simulating the policies of {role_arn}"), e)
                    })?;
                for result in page.evaluation_results() {
                    let action = result.eval_action_name().to_owned();
                    let specific = result.resource_specific_results();
                    if specific.is_empty() {
                        verdicts.push(ActionVerdict {
                            action,
                            resource: result.eval_resource_name().unwrap_or("*").to_owned(),
                            decision: decision(result.eval_decision()),
                            missing_context: result.missing_context_values().to_vec(),
                        });
                    } else {
                        for r in specific {
                            verdicts.push(ActionVerdict {
                                action: action.clone(),
                                resource: r.eval_resource_name().to_owned(),
                                decision: decision(r.eval_resource_decision()),
                                missing_context: r.missing_context_values().to_vec(),
                            });
                        }
                    }
                }
                match (page.is_truncated(), page.marker()) {
                    (true, Some(next)) => marker = Some(next.to_owned()),
                    _ => break,
                }
            }
        }
        Ok(verdicts)
    }

    fn actions(&self, operation: PortOperation) -> Vec<String> {
        crate::iam::iam_actions(operation)
            .iter()
            .map(|a| (*a).to_owned())
            .collect()
    }
}

fn decision(d: &PolicyEvaluationDecisionType) -> Decision {
    match d {
        PolicyEvaluationDecisionType::Allowed => Decision::Allowed,
        PolicyEvaluationDecisionType::ExplicitDeny => Decision::ExplicitDeny,
        _ => Decision::ImplicitDeny,
    }
}

/// `arn:aws:iam::123456789012:role/path/name` → `name`.
fn role_name(role_arn: &str) -> DrResult<&str> {
    role_arn
        .split_once(":role/")
        .and_then(|(_, path)| path.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| DrError::InvalidInput(format!("{role_arn:?} is not a role ARN")))
}

/// A policy document as IAM returns it: URL-encoded (RFC 3986) on AWS,
/// plain JSON from moto.
pub fn decode_policy(document: &str) -> Option<Value> {
    let text = document.trim();
    if text.starts_with('{') {
        return serde_json::from_str(text).ok();
    }
    let decoded = percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()?;
    serde_json::from_str(&decoded).ok()
}

/// One SimulatePrincipalPolicy call: the actions that share their
/// resources and context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulationCall {
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub context: BTreeMap<String, Vec<String>>,
}

fn list(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// IAM's wildcards (`*`, `?`); actions compare without case.
pub fn glob(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &v[1..]),
            (Some(a), Some(b)) => a == b && go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let v: Vec<char> = value.to_lowercase().chars().collect();
    go(&p, &v)
}

fn statements(policy: &Value) -> Vec<&Value> {
    match policy.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(s @ Value::Object(_)) => vec![s],
        _ => Vec::new(),
    }
}

/// The Allow statements of the policies that grant `action`.
fn granting<'a>(policies: &'a [Value], action: &str) -> Vec<&'a Value> {
    policies
        .iter()
        .flat_map(statements)
        .filter(|s| s.get("Effect").and_then(Value::as_str) == Some("Allow"))
        .filter(|s| {
            if s.get("NotAction").is_some() {
                !list(s.get("NotAction")).iter().any(|p| glob(p, action))
            } else {
                list(s.get("Action")).iter().any(|p| glob(p, action))
            }
        })
        .collect()
}

/// The context the statements' own conditions name, as a request that
/// meets them would carry it (a `Null: false` key present; `Null: true`
/// and operators that compare numbers, dates or addresses left out, so the
/// simulation reports them missing).
fn condition_context(statements: &[&Value]) -> BTreeMap<String, Vec<String>> {
    let mut context: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in statements {
        let Some(Value::Object(conditions)) = s.get("Condition") else {
            continue;
        };
        for (operator, keys) in conditions {
            let Value::Object(keys) = keys else { continue };
            let op = operator.trim_end_matches("IfExists");
            let op = op
                .strip_prefix("ForAnyValue:")
                .or_else(|| op.strip_prefix("ForAllValues:"))
                .unwrap_or(op);
            for (key, values) in keys {
                let values: Vec<String> = match op {
                    "StringEquals"
                    | "StringEqualsIgnoreCase"
                    | "StringLike"
                    | "ArnEquals"
                    | "ArnLike"
                    | "Bool" => list(Some(values))
                        .into_iter()
                        .map(|v| v.replace(['*', '?'], "x"))
                        .collect(),
                    "Null" if list(Some(values)) == ["false"] => vec!["present".to_owned()],
                    _ => continue,
                };
                let entry = context.entry(key.clone()).or_default();
                for v in values {
                    if !entry.contains(&v) {
                        entry.push(v);
                    }
                }
            }
        }
    }
    context
}

/// Pure: the calls that simulate `requests`. A request without resources
/// is simulated on those the granting statements name (`*` when none
/// grants it: the simulation then says it is denied), with their
/// conditions' context; requests sharing resources and context share a
/// call.
pub fn plan_simulation(policies: &[Value], requests: &[ActionRequest]) -> Vec<SimulationCall> {
    let mut calls: Vec<SimulationCall> = Vec::new();
    for request in requests {
        let (resources, context) = if request.resources.is_empty() {
            let granting = granting(policies, &request.action);
            let mut resources: BTreeSet<String> = granting
                .iter()
                .flat_map(|s| {
                    if s.get("NotResource").is_some() {
                        vec!["*"]
                    } else {
                        list(s.get("Resource"))
                    }
                })
                .map(str::to_owned)
                .collect();
            if resources.is_empty() {
                resources.insert("*".to_owned());
            }
            (
                resources.into_iter().collect(),
                condition_context(&granting),
            )
        } else {
            let mut r = request.resources.clone();
            r.sort();
            r.dedup();
            (r, BTreeMap::new())
        };
        match calls
            .iter_mut()
            .find(|c| c.resources == resources && c.context == context)
        {
            Some(call) if !call.actions.contains(&request.action) => {
                call.actions.push(request.action.clone())
            }
            Some(_) => {}
            None => calls.push(SimulationCall {
                actions: vec![request.action.clone()],
                resources,
                context,
            }),
        }
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policies_are_read_url_encoded_as_aws_returns_them_or_plain() {
        let plain = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds:DescribeDBInstances","Resource":"*"}]}"#;
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22rds%3ADescribeDBInstances%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D";
        let want: Value = serde_json::from_str(plain).expect("json");
        assert_eq!(decode_policy(plain), Some(want.clone()));
        assert_eq!(decode_policy(encoded), Some(want));
        assert_eq!(decode_policy("%7Bnot json"), None);
        assert_eq!(decode_policy(""), None);
    }

    #[test]
    fn wildcards_match_as_iam_matches_them() {
        for (pattern, value, want) in [
            ("rds:*", "rds:PromoteReadReplica", true),
            ("rds:Describe*", "rds:DescribeDBInstances", true),
            ("RDS:describedbinstances", "rds:DescribeDBInstances", true),
            ("rds:Describe*", "rds:DeleteDBInstance", false),
            ("*", "s3:PutObject", true),
            ("s3:?utObject", "s3:PutObject", true),
            ("s3:?utObject", "s3:PPutObject", false),
            (
                "arn:aws:s3:::b/reports/*",
                "arn:aws:s3:::b/reports/x.json",
                true,
            ),
            (
                "arn:aws:s3:::b/reports/*",
                "arn:aws:s3:::b/other/x.json",
                false,
            ),
            ("", "", true),
            ("", "x", false),
        ] {
            assert_eq!(glob(pattern, value), want, "{pattern} ~ {value}");
        }
    }

    fn request(action: &str) -> ActionRequest {
        ActionRequest {
            action: action.into(),
            resources: vec![],
        }
    }

    #[test]
    fn each_action_is_simulated_on_the_resources_and_conditions_its_policies_name() {
        let table = "arn:aws:dynamodb:us-east-1:1:table/muejam-dr-locks";
        let policies = vec![
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": [table, format!("{table}/index/*")]},
                {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
                 "Condition": {"StringEquals": {"cloudwatch:namespace": "MueJam/DR"}}},
                {"Effect": "Allow", "Action": "rds:PromoteReadReplica", "Resource": "arn:aws:rds:us-east-1:1:db:*",
                 "Condition": {"StringEquals": {"aws:ResourceTag/dr:managed": "true"}, "Null": {"aws:ResourceTag/dr:restored-from": "false"}}},
                {"Effect": "Deny", "Action": "rds:DeleteDBInstance", "Resource": "*"}
            ]}),
            json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "logs:*", "Resource": "*"}}),
        ];
        let calls = plan_simulation(
            &policies,
            &[
                request("dynamodb:GetItem"),
                request("dynamodb:PutItem"),
                request("cloudwatch:PutMetricData"),
                request("rds:PromoteReadReplica"),
                request("logs:PutLogEvents"),
                request("rds:DeleteDBInstance"),
                ActionRequest {
                    action: "lambda:InvokeFunction".into(),
                    resources: vec!["arn:b".into(), "arn:a".into(), "arn:b".into()],
                },
            ],
        );
        let context = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<String>> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                .collect()
        };
        let star = vec!["*".to_owned()];
        assert_eq!(
            calls,
            vec![
                SimulationCall {
                    actions: vec!["dynamodb:GetItem".into(), "dynamodb:PutItem".into()],
                    resources: vec![table.into(), format!("{table}/index/*")],
                    context: BTreeMap::new(),
                },
                SimulationCall {
                    actions: vec!["cloudwatch:PutMetricData".into()],
                    resources: star.clone(),
                    context: context(&[("cloudwatch:namespace", "MueJam/DR")]),
                },
                SimulationCall {
                    actions: vec!["rds:PromoteReadReplica".into()],
                    resources: vec!["arn:aws:rds:us-east-1:1:db:*".into()],
                    context: context(&[
                        ("aws:ResourceTag/dr:managed", "true"),
                        ("aws:ResourceTag/dr:restored-from", "present"),
                    ]),
                },
                // Granted by nothing (the Deny grants nothing): simulated on
                // `*`, with logs:* granted by the second policy.
                SimulationCall {
                    actions: vec!["logs:PutLogEvents".into(), "rds:DeleteDBInstance".into()],
                    resources: star,
                    context: BTreeMap::new(),
                },
                SimulationCall {
                    actions: vec!["lambda:InvokeFunction".into()],
                    resources: vec!["arn:a".into(), "arn:b".into()],
                    context: BTreeMap::new(),
                },
            ]
        );
    }

    #[test]
    fn role_names_come_from_their_arns() {
        assert_eq!(
            role_name("arn:aws:iam::1:role/muejam-PromoteRole-ABC"),
            Ok("muejam-PromoteRole-ABC")
        );
        assert_eq!(role_name("arn:aws:iam::1:role/service-role/x"), Ok("x"));
        assert!(role_name("arn:aws:iam::1:user/x").is_err());
        assert!(role_name("arn:aws:iam::1:role/").is_err());
    }
}
