//! The loader: a flow and each of its states, field by field, with Task and
//! Map in full.

use super::*;

pub(crate) struct Loader<'a> {
    pub(crate) options: &'a LoadOptions,
}

impl Loader<'_> {
    pub(crate) fn flow(&self, location: &str, map: &Map<String, Value>) -> Result<Flow, LoadError> {
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

    pub(crate) fn state(&self, name: &str, body: &Value) -> Result<State, LoadError> {
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
        let (allowed, terminal) = state_fields(type_name).ok_or_else(|| {
            LoadError::new(loc, format!("Type {type_name:?} is not a state type"))
        })?;
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
            "Choice" => choice_state(loc, map)?,
            "Wait" => wait_state(loc, map)?,
            "Succeed" => StateKind::Succeed,
            "Fail" => fail_state(loc, map)?,
            "Parallel" => self.parallel_state(loc, map)?,
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

    /// A Parallel state: its branches (each a flow) and its data and error fields.
    pub(crate) fn parallel_state(
        &self,
        loc: &str,
        map: &Map<String, Value>,
    ) -> Result<StateKind, LoadError> {
        let branches = map
            .get("Branches")
            .and_then(Value::as_array)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| LoadError::new(loc, "field Branches must be a non-empty array"))?;
        let mut flows = Vec::new();
        for (i, branch) in branches.iter().enumerate() {
            let branch_loc = format!("{loc} Branches[{i}]");
            let branch_map = branch
                .as_object()
                .ok_or_else(|| LoadError::new(&branch_loc, "must be an object"))?;
            check_fields(&branch_loc, branch_map, &["StartAt", "States", "Comment"])?;
            flows.push(self.flow(&branch_loc, branch_map)?);
        }
        Ok(StateKind::Parallel {
            branches: flows,
            parameters: template(loc, map, "Parameters")?,
            result_selector: template(loc, map, "ResultSelector")?,
            result_path: path_spec(loc, map, "ResultPath", true)?,
            retry: retriers(loc, map)?,
            catch: catchers(loc, map)?,
        })
    }

    pub(crate) fn task(&self, loc: &str, map: &Map<String, Value>) -> Result<StateKind, LoadError> {
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

    pub(crate) fn map_state(
        &self,
        loc: &str,
        map: &Map<String, Value>,
    ) -> Result<StateKind, LoadError> {
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
        let max_concurrency = match (map.get("MaxConcurrency"), map.get("MaxConcurrencyPath")) {
            (Some(_), Some(_)) => {
                return Err(LoadError::new(
                    loc,
                    "has both MaxConcurrency and MaxConcurrencyPath",
                ))
            }
            (None, None) => MaxConcurrency::Fixed(0),
            (Some(v), None) => MaxConcurrency::Fixed(
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| {
                        LoadError::new(loc, "field MaxConcurrency must be a non-negative integer")
                    })?,
            ),
            (None, Some(v)) => MaxConcurrency::Path(path(loc, "MaxConcurrencyPath", v)?),
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

/// The fields a state of this type may have, and whether it is terminal
/// (no Next/End); None for a type that is no state type.
pub(crate) fn state_fields(type_name: &str) -> Option<(Vec<&'static str>, bool)> {
    let flow_fields = ["Type", "Comment", "InputPath", "OutputPath", "Next", "End"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        flow_fields
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .collect()
    };
    Some(match type_name {
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
                "MaxConcurrencyPath",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
            ]),
            false,
        ),
        _ => return None,
    })
}

/// A Choice state: its rules (each with Next) and its Default.
pub(crate) fn choice_state(loc: &str, map: &Map<String, Value>) -> Result<StateKind, LoadError> {
    let rules = map
        .get("Choices")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| LoadError::new(loc, "field Choices must be a non-empty array"))?;
    let mut choices = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let rule_loc = format!("{loc} Choices[{i}]");
        let rule_map = rule
            .as_object()
            .ok_or_else(|| LoadError::new(&rule_loc, "must be an object"))?;
        let next = rule_map
            .get("Next")
            .ok_or_else(|| LoadError::new(&rule_loc, "a top-level choice rule needs Next"))
            .and_then(|v| string(&rule_loc, "Next", v))?
            .to_owned();
        choices.push(ChoiceBranch {
            condition: Condition::parse(&rule_loc, rule_map, true)?,
            next,
        });
    }
    Ok(StateKind::Choice {
        choices,
        default: map
            .get("Default")
            .map(|v| string(loc, "Default", v).map(str::to_owned))
            .transpose()?,
    })
}

/// A Wait state: exactly one of Seconds, SecondsPath, Timestamp, TimestampPath.
pub(crate) fn wait_state(loc: &str, map: &Map<String, Value>) -> Result<StateKind, LoadError> {
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
    Ok(StateKind::Wait(match given[0] {
        "Seconds" => WaitFor::Seconds(number(loc, "Seconds", v)?),
        "SecondsPath" => WaitFor::SecondsPath(path(loc, "SecondsPath", v)?),
        "Timestamp" => WaitFor::Timestamp(
            chrono::DateTime::parse_from_rfc3339(string(loc, "Timestamp", v)?)
                .map_err(|e| LoadError::new(loc, format!("field Timestamp: {e}")))?
                .with_timezone(&chrono::Utc),
        ),
        _ => WaitFor::TimestampPath(path(loc, "TimestampPath", v)?),
    }))
}

/// A Fail state: Error or ErrorPath, Cause or CausePath.
pub(crate) fn fail_state(loc: &str, map: &Map<String, Value>) -> Result<StateKind, LoadError> {
    if map.contains_key("Error") && map.contains_key("ErrorPath") {
        return Err(LoadError::new(loc, "has both Error and ErrorPath"));
    }
    if map.contains_key("Cause") && map.contains_key("CausePath") {
        return Err(LoadError::new(loc, "has both Cause and CausePath"));
    }
    Ok(StateKind::Fail {
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
    })
}
