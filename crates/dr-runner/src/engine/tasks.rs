//! Task, Map and Parallel attempts with Retry and Catch, and the resource
//! calls behind a Task (Lambda functions, task tokens, faults).

use super::*;

impl Exec<'_> {
    /// One attempt of a Task, Parallel or Map state on its effective input.
    pub(super) async fn attempt(
        &self,
        state: &State,
        effective: &Value,
        entered: DateTime<Utc>,
        retry_count: u32,
        branch: &mut Branch,
    ) -> Result<Value, Stop> {
        match &state.kind {
            StateKind::Task {
                resource,
                parameters,
                timeout_seconds,
                timeout_seconds_path,
                heartbeat_seconds,
                ..
            } => {
                let token = match resource {
                    Resource::LambdaInvoke {
                        wait_for_token: true,
                        ..
                    } => Some(uuid::Uuid::new_v4().to_string()),
                    _ => None,
                };
                let context = self.context_for(&state.name, entered, retry_count, token.as_deref());
                let scope = Scope {
                    input: effective,
                    context: &context,
                };
                let rendered = match parameters {
                    Some(t) => t.render(&scope)?,
                    None => effective.clone(),
                };
                self.within_limit(&state.name, "input after Parameters", &rendered)?;
                let timeout = match (timeout_seconds, timeout_seconds_path) {
                    (Some(s), _) => Some(*s),
                    (None, Some(p)) => Some(
                        p.select(effective)
                            .and_then(|v| v.as_u64())
                            .filter(|s| *s > 0)
                            .ok_or_else(|| {
                                StateError::runtime(format!(
                                    "TimeoutSecondsPath {p} does not hold a positive integer"
                                ))
                            })?,
                    ),
                    (None, None) => None,
                };
                self.run_task(
                    state,
                    resource,
                    rendered,
                    token,
                    timeout,
                    *heartbeat_seconds,
                    branch,
                )
                .await
            }
            StateKind::Parallel {
                branches,
                parameters,
                ..
            } => {
                let context = self.context_for(&state.name, entered, retry_count, None);
                let input = match parameters {
                    Some(t) => t.render(&Scope {
                        input: effective,
                        context: &context,
                    })?,
                    None => effective.clone(),
                };
                self.emit(branch, "ParallelStateStarted", json!({}));
                let futures = branches.iter().map(|flow| {
                    let mut child = Branch {
                        skipped: branch.skipped,
                        last_event: branch.last_event,
                    };
                    let input = input.clone();
                    async move {
                        let result = self.run_flow(flow, input, &mut child).await;
                        result.map(|v| (v, child))
                    }
                });
                match futures::future::try_join_all(futures).await {
                    Ok(results) => {
                        let latest = results
                            .iter()
                            .map(|(_, b)| b.skipped)
                            .max()
                            .unwrap_or(branch.skipped);
                        branch.skipped = latest;
                        self.emit(branch, "ParallelStateSucceeded", json!({}));
                        Ok(Value::Array(results.into_iter().map(|(v, _)| v).collect()))
                    }
                    Err(stop) => {
                        self.emit(branch, "ParallelStateFailed", json!({}));
                        Err(stop)
                    }
                }
            }
            StateKind::Map {
                items_path,
                item_selector,
                processor,
                max_concurrency,
                ..
            } => {
                let items = match items_path {
                    Some(p) => p.select(effective),
                    None => Some(effective.clone()),
                };
                let Some(Value::Array(items)) = items else {
                    return Err(Stop::Failed(StateError::runtime(format!(
                        "ItemsPath of {:?} does not select an array",
                        state.name
                    ))));
                };
                self.emit(branch, "MapStateStarted", json!({"length": items.len()}));
                let mut inputs = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    inputs.push(match item_selector {
                        Some(t) => {
                            let mut context =
                                self.context_for(&state.name, entered, retry_count, None);
                            if let Some(map) = context.as_object_mut() {
                                map.insert(
                                    "Map".to_owned(),
                                    json!({"Item": {"Index": index, "Value": item}}),
                                );
                            }
                            t.render(&Scope {
                                input: effective,
                                context: &context,
                            })?
                        }
                        None => item.clone(),
                    });
                }
                let limit = match max_concurrency {
                    MaxConcurrency::Fixed(n) => *n,
                    MaxConcurrency::Path(path) => {
                        match path.select(effective).as_ref().and_then(Value::as_u64) {
                            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
                            None => {
                                return Err(Stop::Failed(StateError::runtime(format!(
                                "MaxConcurrencyPath of {:?} does not select a non-negative integer",
                                state.name
                            ))))
                            }
                        }
                    }
                };
                let limit = if limit == 0 {
                    inputs.len().max(1)
                } else {
                    limit
                };
                let parent = branch.clone();
                let iteration = |index: usize, input: Value, mut child: Branch| {
                    let name = state.name.clone();
                    async move {
                        self.emit(
                            &mut child,
                            "MapIterationStarted",
                            json!({"name": name, "index": index}),
                        );
                        match self.run_flow(processor, input, &mut child).await {
                            Ok(v) => {
                                self.emit(
                                    &mut child,
                                    "MapIterationSucceeded",
                                    json!({"name": name, "index": index}),
                                );
                                Ok((v, child))
                            }
                            Err(stop) => {
                                self.emit(
                                    &mut child,
                                    "MapIterationFailed",
                                    json!({"name": name, "index": index}),
                                );
                                Err(stop)
                            }
                        }
                    }
                };
                let results: Result<Vec<(Value, Branch)>, Stop> =
                    if self.runner.time == TimeMode::Simulated {
                        // Only simulated time passes: an iteration starts when
                        // one of the MaxConcurrency slots frees up, as on AWS
                        // (iterations run one after the other here).
                        let mut slots = vec![parent.skipped; limit.min(inputs.len()).max(1)];
                        let mut done = Vec::with_capacity(inputs.len());
                        let mut failure = None;
                        for (index, input) in inputs.into_iter().enumerate() {
                            let (slot, start) = slots
                                .iter()
                                .copied()
                                .enumerate()
                                .min_by_key(|(_, free)| *free)
                                .unwrap_or((0, parent.skipped));
                            let mut child = parent.clone();
                            child.skipped = start;
                            match iteration(index, input, child).await {
                                Ok((v, child)) => {
                                    if let Some(free) = slots.get_mut(slot) {
                                        *free = child.skipped;
                                    }
                                    done.push((v, child));
                                }
                                Err(stop) => {
                                    failure = Some(stop);
                                    break;
                                }
                            }
                        }
                        match failure {
                            Some(stop) => Err(stop),
                            None => Ok(done),
                        }
                    } else {
                        futures::stream::iter(inputs.into_iter().enumerate())
                            .map(|(index, input)| iteration(index, input, parent.clone()))
                            .buffered(limit)
                            .try_collect()
                            .await
                    };
                match results {
                    Ok(results) => {
                        branch.skipped = results
                            .iter()
                            .map(|(_, b)| b.skipped)
                            .max()
                            .unwrap_or(branch.skipped);
                        self.emit(branch, "MapStateSucceeded", json!({}));
                        Ok(Value::Array(results.into_iter().map(|(v, _)| v).collect()))
                    }
                    Err(stop) => {
                        self.emit(branch, "MapStateFailed", json!({}));
                        Err(stop)
                    }
                }
            }
            _ => Err(Stop::Failed(StateError::runtime("not a task-like state"))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_task(
        &self,
        state: &State,
        resource: &Resource,
        rendered: Value,
        token: Option<String>,
        timeout: Option<u64>,
        heartbeat: Option<u64>,
        branch: &mut Branch,
    ) -> Result<Value, Stop> {
        if let Resource::StartExecution { json_output, .. } = resource {
            return self
                .run_child(state, *json_output, rendered, timeout, branch)
                .await;
        }
        let (function, payload, invoke) = match resource {
            Resource::LambdaInvoke { .. } => {
                let function = rendered
                    .get("FunctionName")
                    .and_then(Value::as_str)
                    .and_then(function_name)
                    .ok_or_else(|| {
                        StateError::runtime(format!(
                            "Parameters.FunctionName of {:?} is not a function",
                            state.name
                        ))
                    })?;
                let payload = rendered
                    .get("Payload")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                (function, payload, true)
            }
            Resource::LambdaArn { function } => (function.clone(), rendered, false),
            Resource::StartExecution { .. } => {
                return Err(Stop::Failed(StateError::runtime("not a Lambda task")))
            }
        };
        let resource_name = match resource {
            Resource::LambdaInvoke {
                wait_for_token: true,
                ..
            } => "invoke.waitForTaskToken",
            Resource::LambdaInvoke { .. } => "invoke",
            Resource::LambdaArn { .. } | Resource::StartExecution { .. } => "function",
        };
        let scheduled = json!({
            "resourceType": "lambda",
            "resource": resource_name,
            "region": REGION,
            "parameters": json!({"FunctionName": function, "Payload": payload}).to_string(),
            "timeoutInSeconds": timeout,
        });
        self.emit(branch, "TaskScheduled", scheduled);
        self.emit(
            branch,
            "TaskStarted",
            json!({"resourceType": "lambda", "resource": resource_name}),
        );
        let call = self.call(
            state,
            &function,
            payload,
            token.clone(),
            timeout,
            heartbeat,
            invoke,
        );
        let result = if self.runner.time == TimeMode::Simulated {
            let began = self.clock.now(branch);
            let (result, ended) = dr_core::clock::simulate(began, call).await;
            let took = (ended - began).to_std().unwrap_or_default();
            match timeout.map(Duration::from_secs) {
                // The task's TimeoutSeconds ends it on AWS, whatever the
                // function was still doing.
                Some(limit) if took > limit => {
                    branch.skipped += limit;
                    Err(StateError::new(
                        names::TIMEOUT,
                        format!(
                            "Task {:?} did not finish within TimeoutSeconds ({} s)",
                            state.name,
                            limit.as_secs()
                        ),
                    ))
                }
                _ => {
                    branch.skipped += took;
                    result
                }
            }
        } else {
            let began = Instant::now();
            let result = call.await;
            // A virtual-time wait for a person that ran out of patience:
            // the execution's clock moves on by the whole TimeoutSeconds.
            if let (TimeMode::Virtual, Some(_), Some(_), Some(limit), Err(e)) = (
                self.runner.time,
                self.runner.token_patience,
                &token,
                timeout,
                &result,
            ) {
                if e.error == names::TIMEOUT {
                    branch.skipped += Duration::from_secs(limit).saturating_sub(began.elapsed());
                }
            }
            result
        };
        let result = result.and_then(|output| {
            self.within_limit(&state.name, "task result", &output)?;
            Ok(output)
        });
        match result {
            Ok(output) => {
                self.emit(branch, "TaskSucceeded", json!({"resourceType": "lambda", "resource": resource_name, "output": output.to_string()}));
                Ok(output)
            }
            Err(e) if e.error == names::TIMEOUT || e.error == names::HEARTBEAT_TIMEOUT => {
                self.emit(branch, "TaskTimedOut", json!({"resourceType": "lambda", "resource": resource_name, "error": e.error, "cause": e.cause}));
                Err(Stop::Failed(e))
            }
            Err(e) => {
                self.emit(branch, "TaskFailed", json!({"resourceType": "lambda", "resource": resource_name, "error": e.error, "cause": e.cause}));
                Err(Stop::Failed(e))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn call(
        &self,
        state: &State,
        function: &str,
        payload: Value,
        token: Option<String>,
        timeout: Option<u64>,
        heartbeat: Option<u64>,
        wrap_invoke_result: bool,
    ) -> Result<Value, StateError> {
        let execution = self.context["Execution"]["Id"].as_str().unwrap_or_default();
        if let Some(fault) = self.runner.faults.on_call(execution, &state.name, function) {
            return match fault {
                Fault::Fail { error, cause } => Err(function_error(&error, &cause)),
                Fault::Timeout => Err(StateError::new(
                    names::TIMEOUT,
                    format!("Task {:?} timed out (injected fault)", state.name),
                )),
                Fault::Return { output } => Ok(if wrap_invoke_result {
                    json!({"ExecutedVersion": "$LATEST", "Payload": output, "StatusCode": 200})
                } else {
                    output
                }),
            };
        }
        let handler = self.runner.handlers.get(function).ok_or_else(|| {
            StateError::new(
                "Lambda.ResourceNotFoundException",
                format!(
                    "Function not found: {function} (no handler registered with the local runner)"
                ),
            )
        })?;
        let request_id = {
            let mut seq = self
                .sequence
                .lock()
                .map_err(|_| StateError::runtime("poisoned"))?;
            let n = seq.entry(function.to_owned()).or_insert(0);
            *n += 1;
            format!("{function}-{n}")
        };
        let context = InvocationContext {
            function_name: function.to_owned(),
            state_name: state.name.clone(),
            execution_arn: self.context["Execution"]["Id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            request_id,
            task_token: token.clone(),
        };
        let patience = match (self.runner.time, &token) {
            (TimeMode::Virtual, Some(_)) => self.runner.token_patience,
            _ => None,
        };
        let deadline = timeout.map(|s| {
            let limit = Duration::from_secs(s);
            tokio::time::Instant::now() + patience.map_or(limit, |p| p.min(limit))
        });
        let timed_out = || {
            StateError::new(
                names::TIMEOUT,
                format!(
                    "Task {:?} did not finish within TimeoutSeconds ({} s)",
                    state.name,
                    timeout.unwrap_or_default()
                ),
            )
        };
        let waiter = token.as_ref().map(|t| self.runner.tokens.register(t));
        let invocation = handler.invoke(payload, context);
        let invoked = match deadline {
            Some(d) => tokio::time::timeout_at(d, invocation)
                .await
                .map_err(|_| timed_out()),
            None => Ok(invocation.await),
        };
        let invoked = match invoked {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                if let Some(t) = &token {
                    self.runner.tokens.forget(t);
                }
                return Err(function_error(&e.error_type, &e.error_message));
            }
            Err(e) => {
                if let Some(t) = &token {
                    self.runner.tokens.forget(t);
                }
                return Err(e);
            }
        };
        let Some((mut receiver, beat)) = waiter else {
            return Ok(if wrap_invoke_result {
                json!({"ExecutedVersion": "$LATEST", "Payload": invoked, "StatusCode": 200})
            } else {
                invoked
            });
        };
        let token = token.unwrap_or_default();
        let outcome = loop {
            let heartbeat_sleep = async {
                match heartbeat {
                    Some(h) => tokio::time::sleep(Duration::from_secs(h)).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let overall = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                received = &mut receiver => break received.map_err(|_| StateError::runtime("the task token was dropped")),
                _ = beat.notified() => continue,
                _ = heartbeat_sleep => break Err(StateError::new(names::HEARTBEAT_TIMEOUT, format!("Task {:?} sent no heartbeat within {} s", state.name, heartbeat.unwrap_or_default()))),
                _ = overall => break Err(timed_out()),
            }
        };
        self.runner.tokens.forget(&token);
        if self.runner.time == TimeMode::Simulated {
            if let Some(delay) = &self.runner.token_delay {
                dr_core::clock::advance(delay(execution, &state.name));
            }
        }
        match outcome? {
            TokenOutcome::Success { output } => Ok(output),
            TokenOutcome::Failure { error, cause } => Err(StateError::new(error, cause)),
        }
    }
}
