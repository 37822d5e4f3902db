//! A state machine definition, loaded strictly: every field this runner does
//! not implement is rejected with the state and the field named.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::choice::Condition;
use crate::error::{names, LoadError};
use crate::intrinsics::{looks_like_intrinsic, Intrinsic};
use crate::path::JsonPath;
use crate::template::Template;

pub const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";
/// A child execution, waited for (`.sync`: its output as a string;
/// `.sync:2`: as JSON).
pub const START_EXECUTION: &str = "arn:aws:states:::states:startExecution";
const WAIT_FOR_TOKEN: &str = ".waitForTaskToken";

/// `InputPath`, `OutputPath`, `ResultPath`: absent, explicitly null, or a path.
#[derive(Debug, Clone, PartialEq)]
pub enum PathSpec {
    Default,
    Null,
    Path(JsonPath),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Next(String),
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub full_jitter: bool,
}

impl Retrier {
    /// Delay before retry number `attempt` (1-based), without jitter:
    /// IntervalSeconds × BackoffRate^(attempt-1), capped by MaxDelaySeconds.
    pub fn delay_seconds(&self, attempt: u32) -> f64 {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let delay = self.interval_seconds * self.backoff_rate.powi(exponent);
        match self.max_delay_seconds {
            Some(max) => delay.min(max),
            None => delay,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub result_path: PathSpec,
    pub next: String,
}

/// Where a Task sends its work.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    /// `arn:aws:states:::lambda:invoke[.waitForTaskToken]`: FunctionName and
    /// Payload come from Parameters; the result is wrapped with `Payload`.
    LambdaInvoke {
        wait_for_token: bool,
        /// The function when FunctionName is static.
        function: Option<String>,
    },
    /// A bare Lambda ARN: the effective input is the payload, the result is
    /// the function's output.
    LambdaArn { function: String },
    /// `arn:aws:states:::states:startExecution.sync[:2]`: StateMachineArn,
    /// Input and Name come from Parameters; the task waits for the child
    /// execution and fails with `States.TaskFailed` when it does not succeed.
    StartExecution {
        /// `.sync:2`: the child's input and output as JSON, not as strings.
        json_output: bool,
        /// The state machine when StateMachineArn is static.
        state_machine: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    Seconds(f64),
    SecondsPath(JsonPath),
    Timestamp(chrono::DateTime<chrono::Utc>),
    TimestampPath(JsonPath),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Dynamic {
    Path(JsonPath),
    Call(Intrinsic),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceBranch {
    pub condition: Condition,
    pub next: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StateKind {
    Pass {
        parameters: Option<Template>,
        result: Option<Value>,
        result_path: PathSpec,
    },
    Task {
        resource: Resource,
        parameters: Option<Template>,
        result_selector: Option<Template>,
        result_path: PathSpec,
        retry: Vec<Retrier>,
        catch: Vec<Catcher>,
        timeout_seconds: Option<u64>,
        timeout_seconds_path: Option<JsonPath>,
        heartbeat_seconds: Option<u64>,
    },
    Choice {
        choices: Vec<ChoiceBranch>,
        default: Option<String>,
    },
    Wait(WaitFor),
    Succeed,
    Fail {
        error: Option<String>,
        error_dynamic: Option<Dynamic>,
        cause: Option<String>,
        cause_dynamic: Option<Dynamic>,
    },
    Parallel {
        branches: Vec<Flow>,
        parameters: Option<Template>,
        result_selector: Option<Template>,
        result_path: PathSpec,
        retry: Vec<Retrier>,
        catch: Vec<Catcher>,
    },
    Map {
        items_path: Option<JsonPath>,
        item_selector: Option<Template>,
        processor: Box<Flow>,
        max_concurrency: usize,
        result_selector: Option<Template>,
        result_path: PathSpec,
        retry: Vec<Retrier>,
        catch: Vec<Catcher>,
    },
}

impl StateKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            StateKind::Pass { .. } => "Pass",
            StateKind::Task { .. } => "Task",
            StateKind::Choice { .. } => "Choice",
            StateKind::Wait(_) => "Wait",
            StateKind::Succeed => "Succeed",
            StateKind::Fail { .. } => "Fail",
            StateKind::Parallel { .. } => "Parallel",
            StateKind::Map { .. } => "Map",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub name: String,
    pub kind: StateKind,
    pub input_path: PathSpec,
    pub output_path: PathSpec,
    /// `End` for terminal types (Succeed, Fail) and Choice (which uses its rules).
    pub transition: Transition,
}

/// A set of states with a start: the machine itself, a Parallel branch, or a
/// Map item processor.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub start_at: String,
    pub states: BTreeMap<String, State>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateMachine {
    pub flow: Flow,
    pub timeout_seconds: Option<u64>,
    pub comment: Option<String>,
}

/// Options for loading a definition.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `${Name}` → value, as SAM's DefinitionSubstitutions.
    pub substitutions: BTreeMap<String, String>,
    /// When set, every statically named Lambda function must be in it.
    pub known_functions: Option<BTreeSet<String>>,
}

impl StateMachine {
    /// Applies substitutions to the definition text and loads it.
    pub fn load(text: &str, options: &LoadOptions) -> Result<StateMachine, LoadError> {
        let mut substituted = text.to_owned();
        for (name, value) in &options.substitutions {
            let escaped = serde_json::to_string(value)
                .map_err(|e| LoadError::new("substitutions", e.to_string()))?;
            substituted =
                substituted.replace(&format!("${{{name}}}"), &escaped[1..escaped.len() - 1]);
        }
        let value: Value = serde_json::from_str(&substituted)
            .map_err(|e| LoadError::new("definition", format!("not valid JSON: {e}")))?;
        if let Some((location, name)) = unresolved_substitution(&value) {
            return Err(LoadError::new(
                location,
                format!("${{{name}}} has no value: add it to the DefinitionSubstitutions"),
            ));
        }
        Self::from_value(&value, options)
    }

    pub fn from_value(value: &Value, options: &LoadOptions) -> Result<StateMachine, LoadError> {
        let top = value
            .as_object()
            .ok_or_else(|| LoadError::new("definition", "must be a JSON object"))?;
        check_fields(
            "definition",
            top,
            &[
                "StartAt",
                "States",
                "Comment",
                "Version",
                "TimeoutSeconds",
                "QueryLanguage",
            ],
        )?;
        if let Some(language) = top.get("QueryLanguage") {
            if language != "JSONPath" {
                return Err(LoadError::new(
                    "definition",
                    format!("field QueryLanguage: only JSONPath is supported, not {language}"),
                ));
            }
        }
        let loader = Loader { options };
        let flow = loader.flow("definition", top)?;
        Ok(StateMachine {
            flow,
            timeout_seconds: top
                .get("TimeoutSeconds")
                .map(|v| positive_int("definition", "TimeoutSeconds", v))
                .transpose()?,
            comment: top
                .get("Comment")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// Every function the definition names statically, with the state naming it.
    pub fn functions(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        collect_functions(&self.flow, &mut out);
        out
    }

    /// Every state machine it starts as a child execution, with the state
    /// starting it.
    pub fn children(&self) -> Vec<(String, String)> {
        fn collect(flow: &Flow, out: &mut Vec<(String, String)>) {
            for state in flow.states.values() {
                match &state.kind {
                    StateKind::Task {
                        resource:
                            Resource::StartExecution {
                                state_machine: Some(arn),
                                ..
                            },
                        ..
                    } => out.push((state.name.clone(), arn.clone())),
                    StateKind::Parallel { branches, .. } => {
                        branches.iter().for_each(|b| collect(b, out))
                    }
                    StateKind::Map { processor, .. } => collect(processor, out),
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        collect(&self.flow, &mut out);
        out
    }
}

/// The first `${Name}` left in a definition, with the state holding it.
fn unresolved_substitution(value: &Value) -> Option<(String, String)> {
    fn find(value: &Value) -> Option<String> {
        match value {
            Value::String(s) => {
                let start = s.find("${")?;
                let rest = &s[start + 2..];
                let end = rest.find('}')?;
                let name = &rest[..end];
                (!name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .then(|| name.to_owned())
            }
            Value::Array(items) => items.iter().find_map(find),
            Value::Object(map) => map.values().find_map(find),
            _ => None,
        }
    }
    let states = value.get("States").and_then(Value::as_object);
    if let Some(states) = states {
        for (state, body) in states {
            if let Some(name) = find(body) {
                return Some((format!("state {state:?}"), name));
            }
        }
    }
    find(value).map(|name| ("definition".to_owned(), name))
}

fn collect_functions(flow: &Flow, out: &mut Vec<(String, String)>) {
    for state in flow.states.values() {
        match &state.kind {
            StateKind::Task {
                resource:
                    Resource::LambdaInvoke {
                        function: Some(f), ..
                    }
                    | Resource::LambdaArn { function: f },
                ..
            } => out.push((state.name.clone(), f.clone())),
            StateKind::Parallel { branches, .. } => {
                branches.iter().for_each(|b| collect_functions(b, out))
            }
            StateKind::Map { processor, .. } => collect_functions(processor, out),
            _ => {}
        }
    }
}

/// The function name inside a Lambda ARN (or a plain name), without qualifier.
pub fn function_name(arn_or_name: &str) -> Option<String> {
    if let Some(rest) = arn_or_name.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.split(':').collect();
        // aws:lambda:region:account:function:name[:qualifier]
        if parts.len() >= 6
            && parts[1] == "lambda"
            && parts[4] == "function"
            && !parts[5].is_empty()
        {
            return Some(parts[5].to_owned());
        }
        return None;
    }
    let valid = !arn_or_name.is_empty()
        && arn_or_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    valid.then(|| arn_or_name.to_owned())
}

fn check_fields(
    location: &str,
    map: &Map<String, Value>,
    allowed: &[&str],
) -> Result<(), LoadError> {
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(LoadError::new(
                location,
                format!("field {key} is not supported by the local runner"),
            ));
        }
    }
    Ok(())
}

fn positive_int(location: &str, field: &str, v: &Value) -> Result<u64, LoadError> {
    v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
        LoadError::new(
            location,
            format!("field {field} must be a positive integer"),
        )
    })
}

fn number(location: &str, field: &str, v: &Value) -> Result<f64, LoadError> {
    v.as_f64().filter(|n| *n >= 0.0).ok_or_else(|| {
        LoadError::new(
            location,
            format!("field {field} must be a non-negative number"),
        )
    })
}

fn string<'a>(location: &str, field: &str, v: &'a Value) -> Result<&'a str, LoadError> {
    v.as_str()
        .ok_or_else(|| LoadError::new(location, format!("field {field} must be a string")))
}

fn path(location: &str, field: &str, v: &Value) -> Result<JsonPath, LoadError> {
    JsonPath::parse(string(location, field, v)?)
        .map_err(|e| LoadError::new(location, format!("field {field}: {e}")))
}

fn path_spec(
    location: &str,
    map: &Map<String, Value>,
    field: &str,
    reference: bool,
) -> Result<PathSpec, LoadError> {
    match map.get(field) {
        None => Ok(PathSpec::Default),
        Some(Value::Null) => Ok(PathSpec::Null),
        Some(v) => {
            let p = path(location, field, v)?;
            if reference && !p.is_reference() {
                return Err(LoadError::new(
                    location,
                    format!("field {field} must be a reference path (names and indices only)"),
                ));
            }
            Ok(PathSpec::Path(p))
        }
    }
}

fn template(
    location: &str,
    map: &Map<String, Value>,
    field: &str,
) -> Result<Option<Template>, LoadError> {
    map.get(field)
        .map(|v| {
            Template::compile(v)
                .map_err(|e| LoadError::new(location, format!("field {field}: {e}")))
        })
        .transpose()
}

fn dynamic(location: &str, field: &str, v: &Value) -> Result<Dynamic, LoadError> {
    let text = string(location, field, v)?;
    if looks_like_intrinsic(text) {
        Intrinsic::parse(text)
            .map(Dynamic::Call)
            .map_err(|e| LoadError::new(location, format!("field {field}: {e}")))
    } else {
        path(location, field, v).map(Dynamic::Path)
    }
}

struct Loader<'a> {
    options: &'a LoadOptions,
}

impl Loader<'_> {
    fn flow(&self, location: &str, map: &Map<String, Value>) -> Result<Flow, LoadError> {
        let start_at = map
            .get("StartAt")
            .ok_or_else(|| LoadError::new(location, "field StartAt is missing"))
            .and_then(|v| string(location, "StartAt", v))?
            .to_owned();
        let states_map = map
            .get("States")
            .and_then(Value::as_object)
            .ok_or_else(|| LoadError::new(location, "field States must be an object"))?;
        let mut states = BTreeMap::new();
        for (name, body) in states_map {
            states.insert(name.clone(), self.state(name, body)?);
        }
        if !states.contains_key(&start_at) {
            return Err(LoadError::new(
                location,
                format!("StartAt names {start_at:?}, which is not a state"),
            ));
        }
        for state in states.values() {
            for target in targets(state) {
                if !states.contains_key(target) {
                    return Err(LoadError::new(
                        format!("state {:?}", state.name),
                        format!("transition to {target:?}, which is not a state in this scope"),
                    ));
                }
            }
        }
        Ok(Flow { start_at, states })
    }

    fn state(&self, name: &str, body: &Value) -> Result<State, LoadError> {
        let location = format!("state {name:?}");
        let loc = location.as_str();
        if name.is_empty() || name.chars().count() > 80 {
            return Err(LoadError::new(
                loc,
                "state names must have 1 to 80 characters",
            ));
        }
        let map = body
            .as_object()
            .ok_or_else(|| LoadError::new(loc, "must be a JSON object"))?;
        let type_name = map
            .get("Type")
            .and_then(Value::as_str)
            .ok_or_else(|| LoadError::new(loc, "field Type is missing"))?;
        let flow_fields = ["Type", "Comment", "InputPath", "OutputPath", "Next", "End"];
        let with = |extra: &[&'static str]| -> Vec<&'static str> {
            flow_fields
                .iter()
                .copied()
                .chain(extra.iter().copied())
                .collect()
        };
        let (allowed, terminal): (Vec<&str>, bool) = match type_name {
            "Pass" => (with(&["Parameters", "Result", "ResultPath"]), false),
            "Task" => (
                with(&[
                    "Resource",
                    "Parameters",
                    "ResultSelector",
                    "ResultPath",
                    "Retry",
                    "Catch",
                    "TimeoutSeconds",
                    "TimeoutSecondsPath",
                    "HeartbeatSeconds",
                ]),
                false,
            ),
            "Choice" => (
                vec![
                    "Type",
                    "Comment",
                    "InputPath",
                    "OutputPath",
                    "Choices",
                    "Default",
                ],
                true,
            ),
            "Wait" => (
                with(&["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]),
                false,
            ),
            "Succeed" => (vec!["Type", "Comment", "InputPath", "OutputPath"], true),
            "Fail" => (
                vec![
                    "Type",
                    "Comment",
                    "Error",
                    "ErrorPath",
                    "Cause",
                    "CausePath",
                ],
                true,
            ),
            "Parallel" => (
                with(&[
                    "Branches",
                    "Parameters",
                    "ResultSelector",
                    "ResultPath",
                    "Retry",
                    "Catch",
                ]),
                false,
            ),
            "Map" => (
                with(&[
                    "ItemsPath",
                    "ItemSelector",
                    "Parameters",
                    "ItemProcessor",
                    "Iterator",
                    "MaxConcurrency",
                    "ResultSelector",
                    "ResultPath",
                    "Retry",
                    "Catch",
                ]),
                false,
            ),
            other => {
                return Err(LoadError::new(
                    loc,
                    format!("Type {other:?} is not a state type"),
                ))
            }
        };
        check_fields(loc, map, &allowed)?;
        let transition = if terminal {
            Transition::End
        } else {
            match (map.get("Next"), map.get("End")) {
                (Some(next), None) => Transition::Next(string(loc, "Next", next)?.to_owned()),
                (None, Some(Value::Bool(true))) => Transition::End,
                (Some(_), Some(_)) => return Err(LoadError::new(loc, "has both Next and End")),
                _ => return Err(LoadError::new(loc, "needs Next or \"End\": true")),
            }
        };
        let kind = match type_name {
            "Pass" => StateKind::Pass {
                parameters: template(loc, map, "Parameters")?,
                result: map.get("Result").cloned(),
                result_path: path_spec(loc, map, "ResultPath", true)?,
            },
            "Task" => self.task(loc, map)?,
            "Choice" => {
                let rules = map
                    .get("Choices")
                    .and_then(Value::as_array)
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| {
                        LoadError::new(loc, "field Choices must be a non-empty array")
                    })?;
                let mut choices = Vec::new();
                for (i, rule) in rules.iter().enumerate() {
                    let rule_loc = format!("{loc} Choices[{i}]");
                    let rule_map = rule
                        .as_object()
                        .ok_or_else(|| LoadError::new(&rule_loc, "must be an object"))?;
                    let next = rule_map
                        .get("Next")
                        .ok_or_else(|| {
                            LoadError::new(&rule_loc, "a top-level choice rule needs Next")
                        })
                        .and_then(|v| string(&rule_loc, "Next", v))?
                        .to_owned();
                    choices.push(ChoiceBranch {
                        condition: Condition::parse(&rule_loc, rule_map, true)?,
                        next,
                    });
                }
                StateKind::Choice {
                    choices,
                    default: map
                        .get("Default")
                        .map(|v| string(loc, "Default", v).map(str::to_owned))
                        .transpose()?,
                }
            }
            "Wait" => {
                let given: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
                    .into_iter()
                    .filter(|f| map.contains_key(*f))
                    .collect();
                if given.len() != 1 {
                    return Err(LoadError::new(
                        loc,
                        "needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath",
                    ));
                }
                let v = &map[given[0]];
                StateKind::Wait(match given[0] {
                    "Seconds" => WaitFor::Seconds(number(loc, "Seconds", v)?),
                    "SecondsPath" => WaitFor::SecondsPath(path(loc, "SecondsPath", v)?),
                    "Timestamp" => WaitFor::Timestamp(
                        chrono::DateTime::parse_from_rfc3339(string(loc, "Timestamp", v)?)
                            .map_err(|e| LoadError::new(loc, format!("field Timestamp: {e}")))?
                            .with_timezone(&chrono::Utc),
                    ),
                    _ => WaitFor::TimestampPath(path(loc, "TimestampPath", v)?),
                })
            }
            "Succeed" => StateKind::Succeed,
            "Fail" => {
                if map.contains_key("Error") && map.contains_key("ErrorPath") {
                    return Err(LoadError::new(loc, "has both Error and ErrorPath"));
                }
                if map.contains_key("Cause") && map.contains_key("CausePath") {
                    return Err(LoadError::new(loc, "has both Cause and CausePath"));
                }
                StateKind::Fail {
                    error: map
                        .get("Error")
                        .map(|v| string(loc, "Error", v).map(str::to_owned))
                        .transpose()?,
                    error_dynamic: map
                        .get("ErrorPath")
                        .map(|v| dynamic(loc, "ErrorPath", v))
                        .transpose()?,
                    cause: map
                        .get("Cause")
                        .map(|v| string(loc, "Cause", v).map(str::to_owned))
                        .transpose()?,
                    cause_dynamic: map
                        .get("CausePath")
                        .map(|v| dynamic(loc, "CausePath", v))
                        .transpose()?,
                }
            }
            "Parallel" => {
                let branches = map
                    .get("Branches")
                    .and_then(Value::as_array)
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| {
                        LoadError::new(loc, "field Branches must be a non-empty array")
                    })?;
                let mut flows = Vec::new();
                for (i, branch) in branches.iter().enumerate() {
                    let branch_loc = format!("{loc} Branches[{i}]");
                    let branch_map = branch
                        .as_object()
                        .ok_or_else(|| LoadError::new(&branch_loc, "must be an object"))?;
                    check_fields(&branch_loc, branch_map, &["StartAt", "States", "Comment"])?;
                    flows.push(self.flow(&branch_loc, branch_map)?);
                }
                StateKind::Parallel {
                    branches: flows,
                    parameters: template(loc, map, "Parameters")?,
                    result_selector: template(loc, map, "ResultSelector")?,
                    result_path: path_spec(loc, map, "ResultPath", true)?,
                    retry: retriers(loc, map)?,
                    catch: catchers(loc, map)?,
                }
            }
            _ => self.map_state(loc, map)?,
        };
        Ok(State {
            name: name.to_owned(),
            kind,
            input_path: path_spec(loc, map, "InputPath", false)?,
            output_path: path_spec(loc, map, "OutputPath", false)?,
            transition,
        })
    }

    fn task(&self, loc: &str, map: &Map<String, Value>) -> Result<StateKind, LoadError> {
        let resource_text = map
            .get("Resource")
            .ok_or_else(|| LoadError::new(loc, "field Resource is missing"))
            .and_then(|v| string(loc, "Resource", v))?;
        if resource_text.contains("${") {
            return Err(LoadError::new(
                loc,
                format!("field Resource has an unresolved substitution: {resource_text}"),
            ));
        }
        let parameters = template(loc, map, "Parameters")?;
        let resource = if let Some(suffix) = resource_text.strip_prefix(LAMBDA_INVOKE) {
            let wait_for_token = match suffix {
                "" => false,
                WAIT_FOR_TOKEN => true,
                other => {
                    return Err(LoadError::new(
                        loc,
                        format!(
                            "field Resource: the integration pattern {other:?} is not supported"
                        ),
                    ))
                }
            };
            let Some(params) = &parameters else {
                return Err(LoadError::new(
                    loc,
                    "lambda:invoke needs Parameters with FunctionName",
                ));
            };
            let function = match params.static_field("FunctionName") {
                Some(Value::String(f)) => {
                    if f.contains("${") {
                        return Err(LoadError::new(
                            loc,
                            format!(
                                "field Parameters.FunctionName has an unresolved substitution: {f}"
                            ),
                        ));
                    }
                    Some(function_name(f).ok_or_else(|| {
                        LoadError::new(loc, format!("field Parameters.FunctionName {f:?} is not a Lambda function name or ARN"))
                    })?)
                }
                Some(_) => {
                    return Err(LoadError::new(
                        loc,
                        "field Parameters.FunctionName must be a string",
                    ))
                }
                None => {
                    let dynamic = matches!(params, Template::Object(entries) if entries.iter().any(|(k, t)| k == "FunctionName" && !matches!(t, Template::Literal(_))));
                    if !dynamic {
                        return Err(LoadError::new(
                            loc,
                            "lambda:invoke needs Parameters.FunctionName",
                        ));
                    }
                    None
                }
            };
            if let Template::Object(entries) = params {
                for (key, _) in entries {
                    if ![
                        "FunctionName",
                        "Payload",
                        "Qualifier",
                        "InvocationType",
                        "ClientContext",
                        "LogType",
                    ]
                    .contains(&key.as_str())
                    {
                        return Err(LoadError::new(
                            loc,
                            format!("field Parameters.{key} is not a lambda:invoke parameter"),
                        ));
                    }
                    if ["InvocationType", "ClientContext", "LogType"].contains(&key.as_str()) {
                        return Err(LoadError::new(
                            loc,
                            format!("field Parameters.{key} is not supported by the local runner"),
                        ));
                    }
                }
            }
            Resource::LambdaInvoke {
                wait_for_token,
                function,
            }
        } else if let Some(suffix) = resource_text.strip_prefix(START_EXECUTION) {
            let json_output = match suffix {
                ".sync" => false,
                ".sync:2" => true,
                other => {
                    return Err(LoadError::new(
                        loc,
                        format!(
                            "field Resource: the integration pattern {other:?} of startExecution is not supported (only .sync and .sync:2)"
                        ),
                    ))
                }
            };
            let Some(Template::Object(entries)) = &parameters else {
                return Err(LoadError::new(
                    loc,
                    "startExecution needs Parameters with StateMachineArn",
                ));
            };
            let mut state_machine = None;
            let mut named = false;
            for (key, value) in entries {
                match key.as_str() {
                    "StateMachineArn" => {
                        named = true;
                        if let Template::Literal(Value::String(arn)) = value {
                            if !arn.starts_with("arn:") || !arn.contains(":stateMachine:") {
                                return Err(LoadError::new(
                                    loc,
                                    format!("field Parameters.StateMachineArn {arn:?} is not a state machine ARN"),
                                ));
                            }
                            state_machine = Some(arn.clone());
                        }
                    }
                    "Input" | "Name" => {}
                    other => {
                        return Err(LoadError::new(
                            loc,
                            format!("field Parameters.{other} is not a startExecution parameter supported by the local runner"),
                        ))
                    }
                }
            }
            if !named {
                return Err(LoadError::new(
                    loc,
                    "startExecution needs Parameters.StateMachineArn",
                ));
            }
            Resource::StartExecution {
                json_output,
                state_machine,
            }
        } else if resource_text.starts_with("arn:aws:lambda:") {
            let function = function_name(resource_text).ok_or_else(|| {
                LoadError::new(
                    loc,
                    format!("field Resource {resource_text:?} is not a Lambda function ARN"),
                )
            })?;
            Resource::LambdaArn { function }
        } else {
            return Err(LoadError::new(
                loc,
                format!("field Resource {resource_text:?} is not supported by the local runner (Lambda functions and child executions only)"),
            ));
        };
        if let (
            Some(known),
            Resource::LambdaInvoke {
                function: Some(f), ..
            }
            | Resource::LambdaArn { function: f },
        ) = (&self.options.known_functions, &resource)
        {
            if !known.contains(f) {
                return Err(LoadError::new(
                    loc,
                    format!("function {f:?} has no handler registered with the local runner"),
                ));
            }
        }
        if map.contains_key("TimeoutSeconds") && map.contains_key("TimeoutSecondsPath") {
            return Err(LoadError::new(
                loc,
                "has both TimeoutSeconds and TimeoutSecondsPath",
            ));
        }
        Ok(StateKind::Task {
            resource,
            parameters,
            result_selector: template(loc, map, "ResultSelector")?,
            result_path: path_spec(loc, map, "ResultPath", true)?,
            retry: retriers(loc, map)?,
            catch: catchers(loc, map)?,
            timeout_seconds: map
                .get("TimeoutSeconds")
                .map(|v| positive_int(loc, "TimeoutSeconds", v))
                .transpose()?,
            timeout_seconds_path: map
                .get("TimeoutSecondsPath")
                .map(|v| path(loc, "TimeoutSecondsPath", v))
                .transpose()?,
            heartbeat_seconds: map
                .get("HeartbeatSeconds")
                .map(|v| positive_int(loc, "HeartbeatSeconds", v))
                .transpose()?,
        })
    }

    fn map_state(&self, loc: &str, map: &Map<String, Value>) -> Result<StateKind, LoadError> {
        if map.contains_key("ItemSelector") && map.contains_key("Parameters") {
            return Err(LoadError::new(loc, "has both ItemSelector and Parameters"));
        }
        let processor_value = match (map.get("ItemProcessor"), map.get("Iterator")) {
            (Some(p), None) => p,
            (None, Some(i)) => i,
            _ => {
                return Err(LoadError::new(
                    loc,
                    "needs exactly one of ItemProcessor and Iterator",
                ))
            }
        };
        let processor_map = processor_value
            .as_object()
            .ok_or_else(|| LoadError::new(loc, "field ItemProcessor must be an object"))?;
        let processor_loc = format!("{loc} ItemProcessor");
        check_fields(
            &processor_loc,
            processor_map,
            &["StartAt", "States", "Comment", "ProcessorConfig"],
        )?;
        if let Some(config) = processor_map.get("ProcessorConfig") {
            let config = config.as_object().ok_or_else(|| {
                LoadError::new(&processor_loc, "field ProcessorConfig must be an object")
            })?;
            check_fields(&processor_loc, config, &["Mode"])?;
            if let Some(mode) = config.get("Mode").filter(|m| *m != "INLINE") {
                return Err(LoadError::new(
                    &processor_loc,
                    format!("field ProcessorConfig.Mode: {mode} is not supported, only INLINE"),
                ));
            }
        }
        let max_concurrency = match map.get("MaxConcurrency") {
            None => 0,
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    LoadError::new(loc, "field MaxConcurrency must be a non-negative integer")
                })?,
        };
        Ok(StateKind::Map {
            items_path: map
                .get("ItemsPath")
                .map(|v| path(loc, "ItemsPath", v))
                .transpose()?,
            item_selector: match template(loc, map, "ItemSelector")? {
                Some(t) => Some(t),
                None => template(loc, map, "Parameters")?,
            },
            processor: Box::new(self.flow(&processor_loc, processor_map)?),
            max_concurrency,
            result_selector: template(loc, map, "ResultSelector")?,
            result_path: path_spec(loc, map, "ResultPath", true)?,
            retry: retriers(loc, map)?,
            catch: catchers(loc, map)?,
        })
    }
}

fn error_equals(loc: &str, map: &Map<String, Value>) -> Result<Vec<String>, LoadError> {
    let list = map
        .get("ErrorEquals")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| LoadError::new(loc, "field ErrorEquals must be a non-empty array"))?;
    let names: Vec<String> = list
        .iter()
        .map(|v| string(loc, "ErrorEquals", v).map(str::to_owned))
        .collect::<Result<_, _>>()?;
    if names.iter().any(|n| n == names::ALL) && names.len() > 1 {
        return Err(LoadError::new(
            loc,
            "States.ALL must appear alone in ErrorEquals",
        ));
    }
    Ok(names)
}

fn retriers(loc: &str, map: &Map<String, Value>) -> Result<Vec<Retrier>, LoadError> {
    let Some(list) = map.get("Retry") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| LoadError::new(loc, "field Retry must be an array"))?;
    let mut out = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let rloc = format!("{loc} Retry[{i}]");
        let r = r
            .as_object()
            .ok_or_else(|| LoadError::new(&rloc, "must be an object"))?;
        check_fields(
            &rloc,
            r,
            &[
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            ],
        )?;
        let error_equals = error_equals(&rloc, r)?;
        if error_equals.iter().any(|e| e == names::ALL) && i + 1 != list.len() {
            return Err(LoadError::new(
                &rloc,
                "a retrier with States.ALL must be the last one",
            ));
        }
        let backoff_rate = r
            .get("BackoffRate")
            .map(|v| number(&rloc, "BackoffRate", v))
            .transpose()?
            .unwrap_or(2.0);
        if backoff_rate < 1.0 {
            return Err(LoadError::new(
                &rloc,
                "field BackoffRate must be at least 1.0",
            ));
        }
        out.push(Retrier {
            error_equals,
            interval_seconds: r
                .get("IntervalSeconds")
                .map(|v| positive_int(&rloc, "IntervalSeconds", v))
                .transpose()?
                .unwrap_or(1) as f64,
            max_attempts: r
                .get("MaxAttempts")
                .map(|v| {
                    v.as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| {
                            LoadError::new(
                                &rloc,
                                "field MaxAttempts must be a non-negative integer",
                            )
                        })
                })
                .transpose()?
                .unwrap_or(3),
            backoff_rate,
            max_delay_seconds: r
                .get("MaxDelaySeconds")
                .map(|v| positive_int(&rloc, "MaxDelaySeconds", v).map(|n| n as f64))
                .transpose()?,
            full_jitter: match r
                .get("JitterStrategy")
                .map(|v| string(&rloc, "JitterStrategy", v))
                .transpose()?
            {
                None | Some("NONE") => false,
                Some("FULL") => true,
                Some(other) => {
                    return Err(LoadError::new(
                        &rloc,
                        format!("field JitterStrategy: {other:?} is not FULL or NONE"),
                    ))
                }
            },
        });
    }
    Ok(out)
}

fn catchers(loc: &str, map: &Map<String, Value>) -> Result<Vec<Catcher>, LoadError> {
    let Some(list) = map.get("Catch") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| LoadError::new(loc, "field Catch must be an array"))?;
    let mut out = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let cloc = format!("{loc} Catch[{i}]");
        let c = c
            .as_object()
            .ok_or_else(|| LoadError::new(&cloc, "must be an object"))?;
        check_fields(&cloc, c, &["ErrorEquals", "ResultPath", "Next", "Comment"])?;
        let error_equals = error_equals(&cloc, c)?;
        if error_equals.iter().any(|e| e == names::ALL) && i + 1 != list.len() {
            return Err(LoadError::new(
                &cloc,
                "a catcher with States.ALL must be the last one",
            ));
        }
        out.push(Catcher {
            error_equals,
            result_path: path_spec(&cloc, c, "ResultPath", true)?,
            next: c
                .get("Next")
                .ok_or_else(|| LoadError::new(&cloc, "field Next is missing"))
                .and_then(|v| string(&cloc, "Next", v))?
                .to_owned(),
        });
    }
    Ok(out)
}

fn targets(state: &State) -> Vec<&String> {
    let mut out = Vec::new();
    if let Transition::Next(next) = &state.transition {
        out.push(next);
    }
    match &state.kind {
        StateKind::Choice { choices, default } => {
            out.extend(choices.iter().map(|c| &c.next));
            out.extend(default.iter());
        }
        StateKind::Task { catch, .. }
        | StateKind::Parallel { catch, .. }
        | StateKind::Map { catch, .. } => {
            out.extend(catch.iter().map(|c| &c.next));
        }
        _ => {}
    }
    out
}
