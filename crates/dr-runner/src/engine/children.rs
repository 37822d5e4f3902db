//! Child executions (`states:startExecution.sync` and `.sync:2`): their own
//! history and TimeoutSeconds on the parent's clock.

use super::*;

impl Exec<'_> {
    /// `states:startExecution.sync[:2]`: starts a child execution of a
    /// loaded state machine and waits for it. Its history is its own (the
    /// parent records only the task), which is what keeps a long workflow
    /// under the history limit. A child that does not succeed fails the
    /// task with `States.TaskFailed`, its description as the Cause.
    pub(super) async fn run_child(
        &self,
        state: &State,
        json_output: bool,
        rendered: Value,
        timeout: Option<u64>,
        branch: &mut Branch,
    ) -> Result<Value, Stop> {
        let arn = rendered
            .get("StateMachineArn")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        self.emit(
            branch,
            "TaskScheduled",
            json!({"resourceType": "states", "resource": "startExecution.sync", "region": REGION, "parameters": rendered.to_string(), "timeoutInSeconds": timeout}),
        );
        self.emit(
            branch,
            "TaskStarted",
            json!({"resourceType": "states", "resource": "startExecution.sync"}),
        );
        let failed = |this: &Self, branch: &mut Branch, e: StateError| {
            this.emit(branch, "TaskFailed", json!({"resourceType": "states", "resource": "startExecution.sync", "error": e.error, "cause": e.cause}));
            Err(Stop::Failed(e))
        };
        let Some(child) = self.runner.children.get(&arn).cloned() else {
            return failed(
                self,
                branch,
                StateError::new(
                    "StepFunctions.StateMachineDoesNotExistException",
                    format!(
                        "State Machine Does Not Exist: '{arn}' (not loaded by the local runner)"
                    ),
                ),
            );
        };
        let name = match rendered.get("Name") {
            None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
            Some(Value::String(n))
                if !n.is_empty()
                    && n.chars().count() <= 80
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                n.clone()
            }
            Some(other) => {
                return failed(
                    self,
                    branch,
                    StateError::new(
                        "StepFunctions.InvalidNameException",
                        format!("Invalid Name: {other} (1 to 80 letters, digits, - or _)"),
                    ),
                )
            }
        };
        let input = match rendered.get("Input") {
            None | Some(Value::Null) => json!({}),
            Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                Ok(v) => v,
                Err(e) => {
                    return failed(
                        self,
                        branch,
                        StateError::new(
                            "StepFunctions.InvalidExecutionInputException",
                            format!("Invalid Input: {e}"),
                        ),
                    )
                }
            },
            Some(v) => v.clone(),
        };
        let child_arn = execution_arn(&child.name, &name);
        {
            let Ok(mut started) = self.runner.started.lock() else {
                return Err(Stop::Failed(StateError::runtime("poisoned")));
            };
            if started.contains_key(&child_arn) {
                drop(started);
                return failed(
                    self,
                    branch,
                    StateError::new(
                        "StepFunctions.ExecutionAlreadyExistsException",
                        format!("Execution Already Exists: '{child_arn}'"),
                    ),
                );
            }
            started.insert(child_arn.clone(), ChildRecord::running());
        }
        let start = self.clock.now(branch);
        self.emit(
            branch,
            "TaskSubmitted",
            json!({"resourceType": "states", "resource": "startExecution.sync", "output": json!({"ExecutionArn": child_arn, "StartDate": start.timestamp_millis()}).to_string()}),
        );
        let run = self.runner.execute_as(
            &child.name,
            &child.machine,
            input.clone(),
            name.clone(),
            start,
        );
        let result = match (self.runner.time, timeout) {
            (TimeMode::Real, Some(seconds)) => {
                match tokio::time::timeout(Duration::from_secs(seconds), run).await {
                    Ok(r) => r,
                    Err(_) => {
                        // As AWS does when the task ends first: the child is stopped.
                        if let Ok(mut started) = self.runner.started.lock() {
                            if let Some(record) = started.get_mut(&child_arn) {
                                record.status = ExecutionStatus::Aborted;
                            }
                        }
                        return failed(
                            self,
                            branch,
                            StateError::new(
                                names::TIMEOUT,
                                format!(
                                    "Task {:?} did not finish within TimeoutSeconds ({seconds} s)",
                                    state.name
                                ),
                            ),
                        );
                    }
                }
            }
            _ => run.await,
        };
        if let Ok(mut started) = self.runner.started.lock() {
            started.insert(
                child_arn.clone(),
                ChildRecord {
                    status: result.status,
                    history_events: result.history.len(),
                    max_payload_bytes: result.max_payload_bytes,
                    seconds: (result.stop_date - result.start_date).num_milliseconds() as f64
                        / 1000.0,
                },
            );
        }
        // The parent's clock moves on to the child's end.
        self.sleep_until(branch, result.stop_date).await;
        let status = serde_json::to_value(result.status).unwrap_or(Value::Null);
        let text = |v: &Value| {
            if json_output {
                v.clone()
            } else {
                Value::String(v.to_string())
            }
        };
        let mut description = json!({
            "ExecutionArn": child_arn,
            "Input": text(&input),
            "InputDetails": {"Included": true},
            "Name": name,
            "StartDate": result.start_date.timestamp_millis(),
            "StateMachineArn": arn,
            "Status": status,
            "StopDate": result.stop_date.timestamp_millis(),
        });
        if !result.succeeded() {
            if let Some(map) = description.as_object_mut() {
                map.insert("Error".to_owned(), json!(result.error));
                map.insert("Cause".to_owned(), json!(result.cause));
            }
            return failed(
                self,
                branch,
                StateError::new(names::TASK_FAILED, description.to_string()),
            );
        }
        if let Some(map) = description.as_object_mut() {
            map.insert(
                "Output".to_owned(),
                text(result.output.as_ref().unwrap_or(&Value::Null)),
            );
            map.insert("OutputDetails".to_owned(), json!({"Included": true}));
        }
        if let Err(e) = self.within_limit(&state.name, "task result", &description) {
            return failed(self, branch, e);
        }
        self.emit(
            branch,
            "TaskSucceeded",
            json!({"resourceType": "states", "resource": "startExecution.sync", "output": description.to_string()}),
        );
        Ok(description)
    }
}
