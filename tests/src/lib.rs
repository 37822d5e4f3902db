//! What can be known offline about deploying to AWS: every function is built
//! once and serves its own step, every state machine loads with its
//! substitutions and calls only declared functions it may invoke, and every
//! function's IAM policy allows exactly what its code calls, with nothing
//! mutating on `*`. cfn-lint covers the template's and the ASL's syntax.

pub mod runtime_api;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use dr_runner::sam::SamTemplate;
use dr_runner::{LoadOptions, StateMachine};
use dr_scenarios::Function;
use serde_norway::Value as Yaml;

mod one_build;
use one_build::*;
mod tools;
pub use tools::*;
mod worst_case;
pub use worst_case::*;

fn text(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Tagged(t) => text(&t.value).map(|inner| format!("{} {inner}", t.tag)),
        _ => None,
    }
}

fn list(v: Option<&Yaml>) -> Vec<Yaml> {
    match v {
        Some(Yaml::Sequence(items)) => items.clone(),
        Some(other) => vec![other.clone()],
        None => Vec::new(),
    }
}

/// The actions a SAM policy template grants.
fn policy_template_actions(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "SNSPublishMessagePolicy" => &["sns:Publish"],
        "LambdaInvokePolicy" => &["lambda:InvokeFunction"],
        _ => return None,
    })
}

/// What a function's `Policies` allow: action → the resources it is allowed on.
pub fn allowed_actions(properties: &Yaml) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut allowed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for policy in list(properties.get("Policies")) {
        let Some(map) = policy.as_mapping() else {
            return Err(format!("policy {policy:?} is a managed policy name; use statements or SAM policy templates"));
        };
        for (key, body) in map {
            let key = key.as_str().unwrap_or_default();
            if key == "Statement" {
                for statement in list(Some(body)) {
                    if statement.get("Effect").and_then(Yaml::as_str) != Some("Allow") {
                        continue;
                    }
                    // A condition (e.g. cloudwatch:namespace for PutMetricData,
                    // which has no resource type) scopes a `*` resource.
                    let condition =
                        statement
                            .get("Condition")
                            .and_then(Yaml::as_mapping)
                            .map(|operators| {
                                operators
                                    .values()
                                    .filter_map(Yaml::as_mapping)
                                    .flat_map(|keys| keys.keys().filter_map(text))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            });
                    let resources: Vec<String> = list(statement.get("Resource"))
                        .iter()
                        .filter_map(text)
                        .map(|r| match &condition {
                            Some(keys) => format!("{r} when {keys}"),
                            None => r,
                        })
                        .collect();
                    for action in list(statement.get("Action")).iter().filter_map(text) {
                        allowed.entry(action).or_default().extend(resources.clone());
                    }
                }
            } else if let Some(actions) = policy_template_actions(key) {
                let target = body
                    .as_mapping()
                    .and_then(|m| m.values().next())
                    .and_then(text)
                    .unwrap_or_default();
                for action in actions {
                    allowed
                        .entry((*action).to_owned())
                        .or_default()
                        .push(target.clone());
                }
            } else {
                return Err(format!("SAM policy template {key} is not known to the checks; add it to policy_template_actions"));
            }
        }
    }
    Ok(allowed)
}

/// Every JSON file under `dir`, recursively, with its parsed content.
fn documented_events(dir: &Path) -> Vec<(String, serde_json::Value)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(documented_events(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            if let Some(value) = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
            {
                found.push((path.display().to_string(), value));
            }
        }
    }
    found
}

/// The layer that ships AWS's RDS CA bundle to the functions that speak SQL.
const CA_LAYER: &str = "RdsCaBundleLayer";

/// Every offline check except cfn-lint; each problem is one line.
pub fn check(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let template_path = root.join("template.yaml");
    let source = match std::fs::read_to_string(&template_path) {
        Ok(s) => s,
        Err(e) => return vec![format!("template.yaml: {e}")],
    };
    let doc: Yaml = match serde_norway::from_str(&source) {
        Ok(d) => d,
        Err(e) => return vec![format!("template.yaml is not YAML: {e}")],
    };
    let sam = match SamTemplate::load(&template_path) {
        Ok(s) => s,
        Err(e) => return vec![e.to_string()],
    };
    let resources = doc
        .get("Resources")
        .and_then(Yaml::as_mapping)
        .cloned()
        .unwrap_or_default();
    let resource = |id: &str| {
        resources
            .iter()
            .find(|(k, _)| k.as_str() == Some(id))
            .map(|(_, v)| v.clone())
    };

    // One build for every function: the template's functions, the binary of
    // functions/ and the handler registry agree.
    problems.extend(one_build(root, &sam, &resource));

    // State machines load, resolve every substitution, call declared functions they may invoke.
    let known: BTreeSet<String> = sam.functions().into_iter().collect();
    let mut invoked_anywhere = BTreeSet::new();
    match sam.state_machines() {
        Err(e) => problems.push(e.to_string()),
        Ok(machines) => {
            let declared_machines = machines.clone();
            for machine in machines {
                let path = sam.dir().join(&machine.definition_uri);
                let text_source = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) => {
                        problems.push(format!("{}: {} ({e})", machine.logical_id, path.display()));
                        continue;
                    }
                };
                let loaded = StateMachine::load(
                    &text_source,
                    &LoadOptions {
                        substitutions: machine.substitutions.clone(),
                        known_functions: Some(known.clone()),
                    },
                );
                let loaded = match loaded {
                    Ok(m) => m,
                    Err(e) => {
                        problems.push(format!(
                            "{} ({}): {e}",
                            machine.logical_id,
                            machine.definition_uri.display()
                        ));
                        continue;
                    }
                };
                let invokable: BTreeSet<String> = resource(&machine.logical_id)
                    .map(|r| {
                        list(r.get("Properties").and_then(|p| p.get("Policies")))
                            .iter()
                            .filter_map(|p| {
                                p.get("LambdaInvokePolicy")?
                                    .get("FunctionName")
                                    .and_then(text)
                            })
                            .map(|f| f.trim_start_matches("!Ref ").to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                // A child execution started with .sync: starting it,
                // following it (through the managed rule Step Functions
                // puts on EventBridge) and stopping it with the parent.
                let machine_allowed = resource(&machine.logical_id)
                    .and_then(|r| r.get("Properties").cloned())
                    .map(|p| allowed_actions(&p))
                    .unwrap_or_else(|| Ok(BTreeMap::new()));
                let machine_allowed = match machine_allowed {
                    Ok(a) => a,
                    Err(e) => {
                        problems.push(format!("{}: {e}", machine.logical_id));
                        BTreeMap::new()
                    }
                };
                let children = loaded.children();
                for (state, arn) in &children {
                    let Some(child) = declared_machines.iter().find(|d| &d.arn == arn) else {
                        problems.push(format!(
                            "{} state {state:?} starts {arn}, which is not a state machine of the template",
                            machine.logical_id
                        ));
                        continue;
                    };
                    let reference = format!("!Ref {}", child.logical_id);
                    if !machine_allowed
                        .get("states:StartExecution")
                        .is_some_and(|r| r.contains(&reference))
                    {
                        problems.push(format!(
                            "{} state {state:?} starts {} but may not states:StartExecution on {reference}",
                            machine.logical_id, child.logical_id
                        ));
                    }
                    for action in SYNC_ACTIONS {
                        if !machine_allowed.contains_key(action) {
                            problems.push(format!(
                                "{} state {state:?} waits for {} (.sync) but may not {action}: the task fails with AccessDenied",
                                machine.logical_id, child.logical_id
                            ));
                        }
                    }
                }
                if children.is_empty() && machine_allowed.contains_key("states:StartExecution") {
                    problems.push(format!(
                        "{} may states:StartExecution but starts no child execution: remove the policy",
                        machine.logical_id
                    ));
                }
                for (state, function) in loaded.functions() {
                    invoked_anywhere.insert(function.clone());
                    if !invokable.contains(&function) {
                        problems.push(format!(
                            "{} state {state:?} invokes {function}, which its policies do not allow (LambdaInvokePolicy)",
                            machine.logical_id
                        ));
                    }
                }
                for function in
                    invokable.difference(&loaded.functions().into_iter().map(|(_, f)| f).collect())
                {
                    problems.push(format!(
                        "{} may invoke {function} but never does: remove the policy",
                        machine.logical_id
                    ));
                }
            }
        }
    }
    for id in &known {
        for (_, destination) in sam.lambda_destinations(id) {
            if !known.contains(&destination) {
                problems.push(format!(
                    "{id} hands its asynchronous results to {destination}, which is not a function of the template"
                ));
            }
            invoked_anywhere.insert(destination);
        }
    }
    for id in &known {
        if !invoked_anywhere.contains(id) && !sam.has_events(id) {
            problems.push(format!(
                "{id} is declared but neither a state machine nor an event invokes it"
            ));
        }
    }

    // What a schedule sends is a documented event (events/), which the
    // sample-event tests feed to the handlers.
    let documented: Vec<(String, serde_json::Value)> = documented_events(&root.join("events"));
    for id in resources.keys().filter_map(text) {
        let inputs = match sam.scheduled_inputs(&id) {
            Ok(inputs) => inputs,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        for (event, input) in inputs {
            match serde_json::from_str::<serde_json::Value>(&input) {
                Err(e) => problems.push(format!(
                    "{id} event {event} sends input that is not JSON: {e}"
                )),
                Ok(value) => {
                    if !documented.iter().any(|(_, d)| *d == value) {
                        problems.push(format!(
                            "{id} event {event} sends {value}, which no file under events/ documents"
                        ));
                    }
                }
            }
        }
    }

    // Functions that speak SQL reach the database's network when one is given.
    for function in Function::ALL {
        let speaks_sql = function.port_calls().iter().any(|op| op.speaks_sql());
        let vpc_config = resource(function.logical_id()).and_then(|r| {
            r.get("Properties")
                .and_then(|p| p.get("VpcConfig"))
                .cloned()
        });
        match &vpc_config {
            _ if !speaks_sql => {}
            None => problems.push(format!(
                "{} speaks SQL but has no VpcConfig: it cannot reach a database in the VPC",
                function.logical_id()
            )),
            Some(config)
                if config.get("SubnetIds").and_then(text).as_deref()
                    != Some("!Ref SubnetIds") =>
            {
                problems.push(format!(
                    "{} speaks SQL but its VpcConfig is not always SubnetIds (a condition or another value could deploy it outside the VPC)",
                    function.logical_id()
                ))
            }
            Some(_) => {}
        }
        let layers: Vec<String> = resource(function.logical_id())
            .and_then(|r| r.get("Properties").and_then(|p| p.get("Layers")).cloned())
            .map(|l| list(Some(&l)).iter().filter_map(text).collect())
            .unwrap_or_default();
        if speaks_sql && !layers.iter().any(|l| l == &format!("!Ref {CA_LAYER}")) {
            problems.push(format!(
                "{} speaks SQL but does not ship {CA_LAYER}: RDS certificates chain to AWS's RDS CAs, which no public trust store holds, so every verified connection fails",
                function.logical_id()
            ));
        }
    }

    // The subnets are required: a deploy without them must fail, not put
    // the functions that speak SQL outside the VPC.
    let parameters = doc.get("Parameters").cloned().unwrap_or(Yaml::Null);
    if parameters
        .get("SubnetIds")
        .is_some_and(|p| p.get("Default").is_some())
    {
        problems.push(
            "parameter SubnetIds has a Default: a deploy that does not name the subnets must fail, not run the functions that speak SQL outside the VPC".to_owned(),
        );
    }

    // SQL over TLS: every function is told the mode and where the CA bundle
    // is, and the bundle's layer is the directory it is read from.
    let global_env = doc
        .get("Globals")
        .and_then(|g| g.get("Function"))
        .and_then(|f| f.get("Environment"))
        .and_then(|e| e.get("Variables"))
        .cloned();
    for variable in ["DB_TLS_MODE", "DB_TLS_CA_FILE"] {
        if global_env.as_ref().and_then(|v| v.get(variable)).is_none() {
            problems.push(format!(
                "Globals.Function.Environment has no {variable}: SQL connections would use defaults nobody configured"
            ));
        }
    }
    match resource(CA_LAYER).and_then(|r| {
        r.get("Properties")
            .and_then(|p| p.get("ContentUri"))
            .and_then(text)
    }) {
        Some(dir) if root.join(&dir).is_dir() => {}
        Some(dir) => problems.push(format!("{CA_LAYER} ships {dir}, which does not exist")),
        None => problems.push(format!(
            "{CA_LAYER} is missing: the functions that speak SQL need AWS's RDS CA bundle"
        )),
    }

    // What AWS implies that no port operation names: the keys of encrypted
    // topics (SNS encrypts each message with a data key of the topic's
    // key, as the publisher), and ListBucket on a bucket read by keys that
    // may not exist (without it S3 answers 403, not 404).
    let encrypted_topic_keys: BTreeSet<String> = resources
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Yaml::as_str) == Some("AWS::SNS::Topic"))
        .filter_map(|(_, r)| r.get("Properties")?.get("KmsMasterKeyId").and_then(text))
        .map(|key| match key.strip_prefix("!Ref ") {
            Some(id) => format!("!GetAtt {id}.Arn"),
            None => key,
        })
        .collect();
    let buckets_read: BTreeSet<String> = resources
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Yaml::as_str) == Some("AWS::S3::Bucket"))
        .filter_map(|(id, _)| id.as_str().map(|id| format!("!GetAtt {id}.Arn")))
        .collect();

    // The VPC endpoints the template offers (VpcEndpoints=create), by service.
    let endpoints: BTreeMap<String, String> = resources
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Yaml::as_str) == Some("AWS::EC2::VPCEndpoint"))
        .filter_map(|(id, r)| {
            let name = r.get("Properties")?.get("ServiceName").and_then(text)?;
            let service = name.rsplit("}.").next()?.to_owned();
            Some((service, id.as_str()?.to_owned()))
        })
        .collect();
    let mut endpoints_used = BTreeSet::new();

    // Stateful resources outlive the stack (a deleted stack must not take
    // the reports, the registry, the journal or the key with it).
    for (id, r) in &resources {
        let kind = r.get("Type").and_then(Yaml::as_str).unwrap_or_default();
        if !STATEFUL.contains(&kind) {
            continue;
        }
        for policy in ["DeletionPolicy", "UpdateReplacePolicy"] {
            if r.get(policy).and_then(Yaml::as_str) != Some("Retain") {
                problems.push(format!(
                    "{} ({kind}) has no {policy}: Retain: deleting or replacing the stack would destroy what it holds",
                    id.as_str().unwrap_or_default()
                ));
            }
        }
    }

    // IAM: exactly what the code calls; nothing mutating on *.
    for function in Function::ALL {
        let Some(properties) =
            resource(function.logical_id()).and_then(|r| r.get("Properties").cloned())
        else {
            continue;
        };
        let allowed = match allowed_actions(&properties) {
            Ok(a) => a,
            Err(e) => {
                problems.push(format!("{}: {e}", function.logical_id()));
                continue;
            }
        };
        let implied = implied_permissions(function, &encrypted_topic_keys, &buckets_read);
        let mut required: BTreeSet<&str> = function
            .port_calls()
            .iter()
            .flat_map(|op| dr_aws::iam::iam_actions(*op).iter().copied())
            .collect();
        required.extend(implied.iter().map(|(action, _, _)| *action));
        // A function in the VPC reaches every API it calls through the VPC:
        // an endpoint the template offers, or NAT; an API without any VPC
        // endpoint (Route 53) would need NAT, so it is called from outside.
        if resource(function.logical_id())
            .and_then(|r| r.get("Properties")?.get("VpcConfig").cloned())
            .is_some()
        {
            let services: BTreeSet<&str> = required
                .iter()
                .filter(|a| !a.starts_with("kms:"))
                .filter_map(|a| a.split(':').next())
                .collect();
            for service in services {
                match vpc_endpoint_service(service) {
                    None => problems.push(format!(
                        "{} calls {service} from the VPC, whose API has no VPC endpoint: without NAT the call never connects; make it from a function outside the VPC",
                        function.logical_id()
                    )),
                    Some(endpoint) => {
                        if endpoints.contains_key(endpoint) {
                            endpoints_used.insert(endpoint);
                        } else {
                            problems.push(format!(
                                "{} calls {service} from the VPC, but the template offers no VPC endpoint com.amazonaws.<region>.{endpoint}: with VpcEndpoints=create and no NAT the call never connects",
                                function.logical_id()
                            ));
                        }
                    }
                }
            }
        }
        for action in &required {
            if !allowed.contains_key(*action) {
                match implied.iter().find(|(a, _, _)| a == action) {
                    Some((_, resource, why)) => problems.push(format!(
                        "{} may not {action} on {resource}: {why}",
                        function.logical_id()
                    )),
                    None => problems.push(format!(
                        "{} calls {action} but its policy does not allow it",
                        function.logical_id()
                    )),
                }
            }
        }
        for (action, resource, why) in &implied {
            if let Some(resources) = allowed.get(*action) {
                if !resources
                    .iter()
                    .any(|r| r.starts_with(resource.as_str()) || r == "*")
                {
                    problems.push(format!(
                        "{} may {action} only on {resources:?}, not on {resource}: {why}",
                        function.logical_id()
                    ));
                }
            }
        }
        for (action, resources) in &allowed {
            if !required.contains(action.as_str()) {
                problems.push(format!(
                    "{} is allowed {action}, which its code never calls (least privilege)",
                    function.logical_id()
                ));
            }
            if action.contains('*') {
                problems.push(format!(
                    "{} is allowed the wildcard action {action}",
                    function.logical_id()
                ));
            }
            if dr_aws::iam::is_mutating(action)
                && !dr_aws::iam::WITHOUT_RESOURCE_TYPES.contains(&action.as_str())
                && resources.iter().any(|r| r == "*")
            {
                problems.push(format!(
                    "{} may {action} on every resource (*)",
                    function.logical_id()
                ));
            }
            // The instances a failover acts on change with every failover:
            // their policy follows the dr:managed tag, never a fixed id
            // (after one failover, a fixed id would forbid the fail-back).
            if FOLLOWS_TOPOLOGY.contains(&function) && ROLE_ACTIONS.contains(&action.as_str()) {
                // The instances (db:) follow the tag; the groups they are
                // placed in (og:, pg:, subgrp:) are not the registry's.
                for r in resources.iter().filter(|r| r.contains(":db:")) {
                    if !(r.contains(":db:* when ") && r.contains("dr:managed")) {
                        problems.push(format!(
                            "{} may {action} only on {r}: scope it to db:* by the dr:managed tag, as the registry names other instances after a failover",
                            function.logical_id()
                        ));
                    }
                }
            }
        }
    }
    for (service, id) in &endpoints {
        if !endpoints_used.contains(service.as_str()) {
            problems.push(format!(
                "{id} ({service}) serves no function in the VPC: an interface endpoint costs by the hour in every zone"
            ));
        }
    }
    problems
}

/// The VPC endpoint (`com.amazonaws.<region>.<name>`) through which a
/// function in a VPC without NAT reaches an IAM service's API; `None`:
/// the API has none (Route 53's API is global, and AWS PrivateLink does
/// not serve it).
fn vpc_endpoint_service(iam_service: &str) -> Option<&'static str> {
    Some(match iam_service {
        "rds" => "rds",
        "cloudwatch" => "monitoring",
        "secretsmanager" => "secretsmanager",
        "dynamodb" => "dynamodb",
        "s3" => "s3",
        "sns" => "sns",
        "sqs" => "sqs",
        "states" => "states",
        "kms" => "kms",
        "lambda" => "lambda",
        _ => return None,
    })
}

/// What a state machine needs besides states:StartExecution to wait for a
/// child execution (`.sync`).
const SYNC_ACTIONS: [&str; 5] = [
    "states:DescribeExecution",
    "states:StopExecution",
    "events:PutTargets",
    "events:PutRule",
    "events:DescribeRule",
];

/// Resource types whose contents must survive the stack.
const STATEFUL: [&str; 4] = [
    "AWS::S3::Bucket",
    "AWS::DynamoDB::Table",
    "AWS::KMS::Key",
    "AWS::SecretsManager::Secret",
];

/// The permissions AWS requires that no port operation names: (action, the
/// resource it must be allowed on, why).
fn implied_permissions(
    function: Function,
    encrypted_topic_keys: &BTreeSet<String>,
    buckets_read: &BTreeSet<String>,
) -> Vec<(&'static str, String, &'static str)> {
    use dr_core::PortOperation::*;
    let calls = function.port_calls();
    let mut implied = Vec::new();
    if calls.contains(&NotifierPublish) || calls.contains(&UserNotify) {
        for key in encrypted_topic_keys {
            for action in ["kms:GenerateDataKey", "kms:Decrypt"] {
                implied.push((
                    action,
                    key.clone(),
                    "publishing to a topic encrypted with a customer-managed key needs it (else every Publish is AccessDenied)",
                ));
            }
        }
    }
    if calls.contains(&ReportGet) {
        for bucket in buckets_read {
            implied.push((
                "s3:ListBucket",
                bucket.clone(),
                "reading a key that may not exist needs it (else S3 answers 403 AccessDenied, not 404)",
            ));
        }
    }
    implied
}

/// Functions acting on the instances the topology registry names.
const FOLLOWS_TOPOLOGY: [Function; 3] = [
    Function::PromoteReplica,
    Function::CreateReplica,
    Function::FenceInstance,
];
/// What they do to those instances.
const ROLE_ACTIONS: [&str; 3] = [
    "rds:PromoteReadReplica",
    "rds:CreateDBInstanceReadReplica",
    "rds:ModifyDBInstance",
];
