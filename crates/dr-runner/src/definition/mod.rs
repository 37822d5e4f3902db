//! A state machine definition, loaded strictly: every field this runner does
//! not implement is rejected with the state and the field named.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::choice::Condition;
use crate::error::{names, LoadError};
use crate::intrinsics::{looks_like_intrinsic, Intrinsic};
use crate::path::JsonPath;
use crate::template::Template;

mod fields;
use fields::*;
mod loader;
use loader::*;
mod retry;
use retry::*;

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
        max_concurrency: MaxConcurrency,
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
/// How many iterations of a Map run at once.
#[derive(Debug, Clone, PartialEq)]
pub enum MaxConcurrency {
    /// `MaxConcurrency`: 0 means no limit.
    Fixed(usize),
    /// `MaxConcurrencyPath`: read from the state's effective input when it
    /// runs; a non-negative integer, or the state fails `States.Runtime`.
    Path(JsonPath),
}

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
    /// The SHA-256 of the definition's text as deployed (substitutions
    /// applied), when it was loaded from text.
    pub definition_sha256: Option<String>,
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
        let substituted = dr_core::render_definition(text, &options.substitutions)
            .map_err(|e| LoadError::new("substitutions", e.to_string()))?;
        let value: Value = serde_json::from_str(&substituted)
            .map_err(|e| LoadError::new("definition", format!("not valid JSON: {e}")))?;
        if let Some((location, name)) = unresolved_substitution(&value) {
            return Err(LoadError::new(
                location,
                format!("${{{name}}} has no value: add it to the DefinitionSubstitutions"),
            ));
        }
        let mut machine = Self::from_value(&value, options)?;
        machine.definition_sha256 = Some(dr_core::definition_sha256(&substituted));
        Ok(machine)
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
            definition_sha256: None,
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
