//! Flow through states: the state loop, and each state type's own step
//! (Pass, Choice, Wait, Succeed, Fail; Task, Map and Parallel go through
//! `attempt`).

use super::*;

impl Exec<'_> {
    pub(super) fn run_flow<'s>(
        &'s self,
        flow: &'s Flow,
        input: Value,
        branch: &'s mut Branch,
    ) -> futures::future::BoxFuture<'s, Result<Value, Stop>> {
        Box::pin(async move {
            let mut current = flow.start_at.clone();
            let mut input = input;
            loop {
                self.check_deadline(branch)?;
                if self.history_len() > HISTORY_LIMIT {
                    return Err(Stop::Failed(StateError::runtime(format!(
                        "the execution history passed {HISTORY_LIMIT} events"
                    ))));
                }
                let state = flow
                    .states
                    .get(&current)
                    .ok_or_else(|| StateError::runtime(format!("no state named {current:?}")))?;
                let type_name = state.kind.type_name();
                self.emit(
                    branch,
                    &format!("{type_name}StateEntered"),
                    json!({"name": state.name, "input": input.to_string()}),
                );
                let entered = self.clock.now(branch);
                let step = self.run_state(state, input, entered, branch).await?;
                // An output over the limit ends the execution: no Catch sees it.
                self.within_limit(&state.name, "output", &step.output)?;
                self.emit(
                    branch,
                    &format!("{type_name}StateExited"),
                    json!({"name": state.name, "output": step.output.to_string()}),
                );
                match step.next {
                    Some(next) => {
                        current = next;
                        input = step.output;
                    }
                    None => return Ok(step.output),
                }
            }
        })
    }

    pub(super) async fn run_state(
        &self,
        state: &State,
        raw: Value,
        entered: DateTime<Utc>,
        branch: &mut Branch,
    ) -> Result<Step, Stop> {
        let next = match &state.transition {
            Transition::Next(n) => Some(n.clone()),
            Transition::End => None,
        };
        match &state.kind {
            StateKind::Pass {
                parameters,
                result,
                result_path,
            } => {
                let effective = input_path(state, &raw)?;
                let context = self.context_for(&state.name, entered, 0, None);
                let effective = match parameters {
                    Some(t) => t.render(&Scope {
                        input: &effective,
                        context: &context,
                    })?,
                    None => effective,
                };
                let result = result.clone().unwrap_or(effective);
                let output = apply_result_path(&raw, result, result_path)?;
                Ok(Step {
                    output: output_path(state, output)?,
                    next,
                })
            }
            StateKind::Choice { choices, default } => {
                let effective = input_path(state, &raw)?;
                let context = self.context_for(&state.name, entered, 0, None);
                let scope = Scope {
                    input: &effective,
                    context: &context,
                };
                let mut chosen = None;
                for choice in choices {
                    if choice.condition.evaluate(&scope)? {
                        chosen = Some(choice.next.clone());
                        break;
                    }
                }
                let chosen = chosen.or_else(|| default.clone()).ok_or_else(|| {
                    StateError::new(
                        names::NO_CHOICE_MATCHED,
                        format!(
                            "no Choices rule of {:?} matched and it has no Default",
                            state.name
                        ),
                    )
                })?;
                Ok(Step {
                    output: output_path(state, effective)?,
                    next: Some(chosen),
                })
            }
            StateKind::Wait(wait) => {
                let effective = input_path(state, &raw)?;
                let now = self.clock.now(branch);
                let until = match wait {
                    WaitFor::Seconds(s) => now + seconds(*s),
                    WaitFor::SecondsPath(p) => {
                        let s = p
                            .select(&effective)
                            .and_then(|v| v.as_f64())
                            .filter(|s| *s >= 0.0)
                            .ok_or_else(|| {
                                StateError::runtime(format!(
                                    "SecondsPath {p} does not hold a non-negative number"
                                ))
                            })?;
                        now + seconds(s)
                    }
                    WaitFor::Timestamp(t) => *t,
                    WaitFor::TimestampPath(p) => p
                        .select(&effective)
                        .and_then(|v| {
                            v.as_str()
                                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                        })
                        .map(|t| t.with_timezone(&Utc))
                        .ok_or_else(|| {
                            StateError::runtime(format!(
                                "TimestampPath {p} does not hold an RFC 3339 timestamp"
                            ))
                        })?,
                };
                let until = match self.deadline {
                    Some(deadline) if until > deadline => {
                        self.sleep_until(branch, deadline).await;
                        return Err(Stop::TimedOut);
                    }
                    _ => until,
                };
                self.sleep_until(branch, until).await;
                Ok(Step {
                    output: output_path(state, effective)?,
                    next,
                })
            }
            StateKind::Succeed => {
                let effective = input_path(state, &raw)?;
                Ok(Step {
                    output: output_path(state, effective)?,
                    next: None,
                })
            }
            StateKind::Fail {
                error,
                error_dynamic,
                cause,
                cause_dynamic,
            } => {
                let context = self.context_for(&state.name, entered, 0, None);
                let scope = Scope {
                    input: &raw,
                    context: &context,
                };
                let resolve = |fixed: &Option<String>,
                               dynamic: &Option<Dynamic>|
                 -> Result<Option<String>, StateError> {
                    match (fixed, dynamic) {
                        (Some(f), _) => Ok(Some(f.clone())),
                        (None, Some(Dynamic::Path(p))) => Ok(scope.read(p).map(|v| match v {
                            Value::String(s) => s,
                            other => other.to_string(),
                        })),
                        (None, Some(Dynamic::Call(c))) => c.evaluate(&scope).map(|v| match v {
                            Value::String(s) => Some(s),
                            other => Some(other.to_string()),
                        }),
                        (None, None) => Ok(None),
                    }
                };
                let error = resolve(error, error_dynamic)?.unwrap_or_default();
                let cause = resolve(cause, cause_dynamic)?.unwrap_or_default();
                Err(Stop::Failed(StateError::new(error, cause)))
            }
            StateKind::Task {
                retry,
                catch,
                result_selector,
                result_path,
                ..
            }
            | StateKind::Parallel {
                retry,
                catch,
                result_selector,
                result_path,
                ..
            }
            | StateKind::Map {
                retry,
                catch,
                result_selector,
                result_path,
                ..
            } => {
                let effective = input_path(state, &raw)?;
                let mut attempts = vec![0u32; retry.len()];
                let mut retry_count = 0u32;
                loop {
                    let outcome = self
                        .attempt(state, &effective, entered, retry_count, branch)
                        .await;
                    let error = match outcome {
                        Ok(result) => {
                            let context = self.context_for(&state.name, entered, retry_count, None);
                            let result = match result_selector {
                                Some(t) => t.render(&Scope {
                                    input: &result,
                                    context: &context,
                                })?,
                                None => result,
                            };
                            let output = apply_result_path(&raw, result, result_path)?;
                            return Ok(Step {
                                output: output_path(state, output)?,
                                next,
                            });
                        }
                        Err(Stop::TimedOut) => return Err(Stop::TimedOut),
                        Err(Stop::Failed(e)) => e,
                    };
                    if let Some(index) = retry.iter().position(|r| {
                        r.error_equals
                            .iter()
                            .any(|p| error_matches(p, &error.error))
                    }) {
                        let retrier = &retry[index];
                        if attempts[index] < retrier.max_attempts {
                            attempts[index] += 1;
                            retry_count += 1;
                            let mut delay = retrier.delay_seconds(attempts[index]);
                            if retrier.full_jitter {
                                delay *= rand::random::<f64>();
                            }
                            tracing::debug!(state = %state.name, error = %error.error, delay, "retrying");
                            let until = self.clock.now(branch) + seconds(delay);
                            if let Some(deadline) = self.deadline {
                                if until > deadline {
                                    self.sleep_until(branch, deadline).await;
                                    return Err(Stop::TimedOut);
                                }
                            }
                            self.sleep_until(branch, until).await;
                            continue;
                        }
                    }
                    if let Some(catcher) = catch.iter().find(|c| {
                        c.error_equals
                            .iter()
                            .any(|p| error_matches(p, &error.error))
                    }) {
                        let error_output = json!({"Error": error.error, "Cause": error.cause});
                        let output = apply_result_path(&raw, error_output, &catcher.result_path)?;
                        return Ok(Step {
                            output,
                            next: Some(catcher.next.clone()),
                        });
                    }
                    return Err(Stop::Failed(error));
                }
            }
        }
    }

    pub(super) async fn sleep_until(&self, branch: &mut Branch, until: DateTime<Utc>) {
        let now = self.clock.now(branch);
        if let Ok(duration) = (until - now).to_std() {
            self.clock.sleep(branch, duration).await;
        }
    }
}
