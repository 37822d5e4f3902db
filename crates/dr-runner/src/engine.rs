//! Executes a loaded state machine.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::control::{Fault, FaultPlan, TaskTokens, TokenOutcome};
use crate::definition::*;
use crate::error::{error_matches, names, StateError};
use crate::handler::{Handlers, InvocationContext};
use crate::history::{details_key, HistoryEvent};
use crate::intrinsics::Scope;

/// AWS fails an execution whose history passes this many events.
pub const HISTORY_LIMIT: usize = 25_000;
/// The largest input, output or task result a state may have (256 KiB of
/// UTF-8 JSON); beyond it AWS fails the state with `States.DataLimitExceeded`,
/// which `States.ALL` does not catch.
pub const PAYLOAD_LIMIT: usize = 256 * 1024;
const REGION: &str = "local";
const ACCOUNT: &str = "000000000000";

/// The ARN the runner gives an execution (as Step Functions shapes them).
pub fn execution_arn(state_machine_name: &str, name: &str) -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT}:execution:{state_machine_name}:{name}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeMode {
    /// Waits and retry intervals take real time.
    Real,
    /// Waits and retry intervals advance a simulated clock instantly; task
    /// handlers still take the real time they take, which the clock adds.
    Virtual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    /// Only for a child execution under way.
    Running,
    Succeeded,
    Failed,
    TimedOut,
    /// A child stopped because the task waiting for it ended first.
    Aborted,
}

/// The end of an execution.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionResult {
    pub execution_arn: String,
    pub name: String,
    pub status: ExecutionStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub start_date: DateTime<Utc>,
    pub stop_date: DateTime<Utc>,
    pub history: Vec<HistoryEvent>,
    /// The largest state input, output or task result it carried, in bytes.
    pub max_payload_bytes: usize,
}

impl ExecutionResult {
    pub fn succeeded(&self) -> bool {
        self.status == ExecutionStatus::Succeeded
    }

    /// Names of states in the order they were entered.
    pub fn states_entered(&self) -> Vec<String> {
        self.history
            .iter()
            .filter(|e| e.event_type.ends_with("StateEntered"))
            .filter_map(|e| e.state_name().map(str::to_owned))
            .collect()
    }
}

pub type Observer = Arc<dyn Fn(&HistoryEvent) + Send + Sync>;

/// A state machine tasks may start as a child execution.
#[derive(Clone)]
struct ChildMachine {
    name: String,
    machine: Arc<StateMachine>,
}

/// Runs state machines with a set of handlers.
#[derive(Clone)]
pub struct Runner {
    handlers: Arc<Handlers>,
    time: TimeMode,
    faults: Arc<FaultPlan>,
    tokens: TaskTokens,
    observer: Option<Observer>,
    token_inbox: Option<PathBuf>,
    state_machine_name: String,
    children: Arc<BTreeMap<String, ChildMachine>>,
    /// Every child execution started, by ARN (names are never reused).
    started: Arc<Mutex<BTreeMap<String, ChildRecord>>>,
}

/// How a child execution went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildRecord {
    pub status: ExecutionStatus,
    pub history_events: usize,
    pub max_payload_bytes: usize,
    pub seconds: f64,
}

impl ChildRecord {
    fn running() -> Self {
        ChildRecord {
            status: ExecutionStatus::Running,
            history_events: 0,
            max_payload_bytes: 0,
            seconds: 0.0,
        }
    }
}

impl Runner {
    pub fn new(handlers: Handlers) -> Self {
        Runner {
            handlers: Arc::new(handlers),
            time: TimeMode::Real,
            faults: Arc::new(FaultPlan::default()),
            tokens: TaskTokens::default(),
            observer: None,
            token_inbox: None,
            state_machine_name: "local".to_owned(),
            children: Arc::new(BTreeMap::new()),
            started: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// A state machine that `states:startExecution.sync` tasks may start,
    /// under the ARN the definitions name it by.
    pub fn child_machine(
        mut self,
        arn: impl Into<String>,
        name: impl Into<String>,
        machine: StateMachine,
    ) -> Self {
        Arc::make_mut(&mut self.children).insert(
            arn.into(),
            ChildMachine {
                name: name.into(),
                machine: Arc::new(machine),
            },
        );
        self
    }

    /// The child executions this runner started, by ARN, with how they ended.
    pub fn child_executions(&self) -> BTreeMap<String, ChildRecord> {
        self.started.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn time_mode(mut self, time: TimeMode) -> Self {
        self.time = time;
        self
    }

    pub fn faults(mut self, plan: FaultPlan) -> Self {
        self.faults = Arc::new(plan);
        self
    }

    pub fn observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// A directory other processes drop task-token outcomes into.
    pub fn token_inbox(mut self, dir: PathBuf) -> Self {
        self.token_inbox = Some(dir);
        self
    }

    pub fn state_machine_name(mut self, name: impl Into<String>) -> Self {
        self.state_machine_name = name.into();
        self
    }

    pub fn handlers(&self) -> &Handlers {
        &self.handlers
    }

    /// Approve / reject waiting tasks from within this process.
    pub fn tokens(&self) -> TaskTokens {
        self.tokens.clone()
    }

    pub fn fault_plan(&self) -> Arc<FaultPlan> {
        Arc::clone(&self.faults)
    }

    pub async fn execute(
        &self,
        machine: &StateMachine,
        input: Value,
        name: Option<&str>,
    ) -> ExecutionResult {
        let name = name
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        self.execute_as(&self.state_machine_name, machine, input, name, Utc::now())
            .await
    }

    /// Runs one execution of the machine named `machine_name`, its clock
    /// starting at `start` (a child starts at its parent's simulated time).
    fn execute_as<'s>(
        &'s self,
        machine_name: &'s str,
        machine: &'s StateMachine,
        input: Value,
        name: String,
        start: DateTime<Utc>,
    ) -> futures::future::BoxFuture<'s, ExecutionResult> {
        Box::pin(self.execute_inner(machine_name, machine, input, name, start))
    }

    async fn execute_inner(
        &self,
        machine_name: &str,
        machine: &StateMachine,
        input: Value,
        name: String,
        start: DateTime<Utc>,
    ) -> ExecutionResult {
        let state_machine_arn =
            format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{machine_name}");
        let execution_arn = execution_arn(machine_name, &name);
        let clock = Clock {
            mode: self.time,
            started_real: Instant::now(),
            started_wall: start,
        };
        let start_date = clock.started_wall;
        let exec = Exec {
            runner: self,
            clock,
            deadline: machine
                .timeout_seconds
                .map(|s| start_date + chrono::Duration::seconds(s as i64)),
            history: Mutex::new(Vec::new()),
            context: json!({
                "Execution": {
                    "Id": execution_arn,
                    "Name": name,
                    "Input": input,
                    "StartTime": stamp(start_date),
                    "RoleArn": format!("arn:aws:iam::{ACCOUNT}:role/local-runner"),
                },
                "StateMachine": {"Id": state_machine_arn, "Name": machine_name},
            }),
            sequence: Mutex::new(HashMap::new()),
            max_payload: Mutex::new(size_of_json(&input)),
        };
        let mut branch = Branch::default();
        exec.emit(
            &mut branch,
            "ExecutionStarted",
            json!({"input": input.to_string(), "roleArn": format!("arn:aws:iam::{ACCOUNT}:role/local-runner")}),
        );
        let inbox_poller = self.token_inbox.clone().map(|dir| {
            let tokens = self.tokens.clone();
            tokio::spawn(async move {
                loop {
                    tokens.drain_inbox(&dir);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        });
        let run = exec.run_flow(&machine.flow, input, &mut branch);
        let outcome = match (self.time, machine.timeout_seconds) {
            (TimeMode::Real, Some(seconds)) => {
                match tokio::time::timeout(Duration::from_secs(seconds), run).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(Stop::TimedOut),
                }
            }
            _ => run.await,
        };
        if let Some(poller) = inbox_poller {
            poller.abort();
        }
        let (status, output, error, cause) = match outcome {
            Ok(output) => {
                exec.emit(
                    &mut branch,
                    "ExecutionSucceeded",
                    json!({"output": output.to_string()}),
                );
                (ExecutionStatus::Succeeded, Some(output), None, None)
            }
            Err(Stop::Failed(e)) => {
                exec.emit(
                    &mut branch,
                    "ExecutionFailed",
                    json!({"error": e.error, "cause": e.cause}),
                );
                (ExecutionStatus::Failed, None, Some(e.error), Some(e.cause))
            }
            Err(Stop::TimedOut) => {
                let cause = format!(
                    "The execution ran longer than its TimeoutSeconds ({} s)",
                    machine.timeout_seconds.unwrap_or_default()
                );
                exec.emit(
                    &mut branch,
                    "ExecutionTimedOut",
                    json!({"error": names::TIMEOUT, "cause": cause}),
                );
                (
                    ExecutionStatus::TimedOut,
                    None,
                    Some(names::TIMEOUT.to_owned()),
                    Some(cause),
                )
            }
        };
        let stop_date = exec.clock.now(&branch);
        let max_payload_bytes = exec.max_payload.into_inner().unwrap_or_default();
        let history = exec.history.into_inner().unwrap_or_default();
        ExecutionResult {
            execution_arn,
            name,
            status,
            output,
            error,
            cause,
            start_date,
            stop_date,
            history,
            max_payload_bytes,
        }
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Debug)]
enum Stop {
    Failed(StateError),
    TimedOut,
}

impl From<StateError> for Stop {
    fn from(e: StateError) -> Self {
        Stop::Failed(e)
    }
}

/// One thread of execution (the machine, a Parallel branch, a Map
/// iteration): its own simulated-time offset and causal event chain.
#[derive(Debug, Clone, Default)]
struct Branch {
    skipped: Duration,
    last_event: u64,
}

struct Clock {
    mode: TimeMode,
    started_real: Instant,
    started_wall: DateTime<Utc>,
}

impl Clock {
    fn now(&self, branch: &Branch) -> DateTime<Utc> {
        let elapsed = self.started_real.elapsed() + branch.skipped;
        self.started_wall
            + chrono::Duration::from_std(elapsed).unwrap_or_else(|_| chrono::Duration::zero())
    }

    async fn sleep(&self, branch: &mut Branch, duration: Duration) {
        match self.mode {
            TimeMode::Real => tokio::time::sleep(duration).await,
            TimeMode::Virtual => branch.skipped += duration,
        }
    }
}

struct Exec<'a> {
    runner: &'a Runner,
    clock: Clock,
    deadline: Option<DateTime<Utc>>,
    history: Mutex<Vec<HistoryEvent>>,
    context: Value,
    sequence: Mutex<HashMap<String, u64>>,
    max_payload: Mutex<usize>,
}

/// The size of a payload as Step Functions measures it: UTF-8 JSON.
fn size_of_json(value: &Value) -> usize {
    serde_json::to_string(value).map(|s| s.len()).unwrap_or(0)
}

/// What a state hands to the next one.
struct Step {
    output: Value,
    next: Option<String>,
}

impl Exec<'_> {
    fn emit(&self, branch: &mut Branch, event_type: &str, details: Value) {
        let timestamp = self.clock.now(branch);
        let Ok(mut history) = self.history.lock() else {
            return;
        };
        let id = history.len() as u64 + 1;
        let mut map = Map::new();
        map.insert(details_key(event_type), details);
        let event = HistoryEvent {
            id,
            previous_event_id: branch.last_event,
            timestamp,
            event_type: event_type.to_owned(),
            details: map,
        };
        branch.last_event = id;
        if let Some(observer) = &self.runner.observer {
            observer(&event);
        }
        history.push(event);
    }

    /// Fails with `States.DataLimitExceeded` when a payload is over the
    /// limit, and keeps the largest size seen.
    fn within_limit(&self, state: &str, what: &str, value: &Value) -> Result<(), StateError> {
        let size = size_of_json(value);
        if let Ok(mut max) = self.max_payload.lock() {
            *max = (*max).max(size);
        }
        if size > PAYLOAD_LIMIT {
            return Err(StateError::new(
                names::DATA_LIMIT_EXCEEDED,
                format!(
                    "The {what} of state {state:?} has {size} bytes, more than the {PAYLOAD_LIMIT} bytes a payload may have"
                ),
            ));
        }
        Ok(())
    }

    fn history_len(&self) -> usize {
        self.history.lock().map(|h| h.len()).unwrap_or(0)
    }

    fn check_deadline(&self, branch: &Branch) -> Result<(), Stop> {
        match self.deadline {
            Some(deadline) if self.clock.now(branch) > deadline => Err(Stop::TimedOut),
            _ => Ok(()),
        }
    }

    fn context_for(
        &self,
        state: &str,
        entered: DateTime<Utc>,
        retry_count: u32,
        token: Option<&str>,
    ) -> Value {
        let mut context = self.context.clone();
        if let Some(map) = context.as_object_mut() {
            map.insert(
                "State".to_owned(),
                json!({"Name": state, "EnteredTime": stamp(entered), "RetryCount": retry_count}),
            );
            if let Some(token) = token {
                map.insert("Task".to_owned(), json!({"Token": token}));
            }
        }
        context
    }

    fn run_flow<'s>(
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

    async fn run_state(
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

    async fn sleep_until(&self, branch: &mut Branch, until: DateTime<Utc>) {
        let now = self.clock.now(branch);
        if let Ok(duration) = (until - now).to_std() {
            self.clock.sleep(branch, duration).await;
        }
    }

    /// One attempt of a Task, Parallel or Map state on its effective input.
    async fn attempt(
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
                let limit = if *max_concurrency == 0 {
                    inputs.len().max(1)
                } else {
                    *max_concurrency
                };
                let parent = branch.clone();
                let results: Result<Vec<(Value, Branch)>, Stop> =
                    futures::stream::iter(inputs.into_iter().enumerate())
                        .map(|(index, input)| {
                            let mut child = parent.clone();
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
                        })
                        .buffered(limit)
                        .try_collect()
                        .await;
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
    async fn run_task(
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
        let result = self
            .call(
                state,
                &function,
                payload,
                token.clone(),
                timeout,
                heartbeat,
                invoke,
            )
            .await;
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

    /// `states:startExecution.sync[:2]`: starts a child execution of a
    /// loaded state machine and waits for it. Its history is its own (the
    /// parent records only the task), which is what keeps a long workflow
    /// under the history limit. A child that does not succeed fails the
    /// task with `States.TaskFailed`, its description as the Cause.
    async fn run_child(
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

    #[allow(clippy::too_many_arguments)]
    async fn call(
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
        let deadline = timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
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
        match outcome? {
            TokenOutcome::Success { output } => Ok(output),
            TokenOutcome::Failure { error, cause } => Err(StateError::new(error, cause)),
        }
    }
}

/// A function failure the way the lambda:invoke integration reports it:
/// Error is the errorType, Cause the JSON error document.
fn function_error(error_type: &str, message: &str) -> StateError {
    let cause = json!({"errorMessage": message, "errorType": error_type}).to_string();
    StateError::new(error_type, cause)
}

fn seconds(s: f64) -> chrono::Duration {
    chrono::Duration::milliseconds((s * 1000.0).round() as i64)
}

fn input_path(state: &State, raw: &Value) -> Result<Value, StateError> {
    match &state.input_path {
        PathSpec::Default => Ok(raw.clone()),
        PathSpec::Null => Ok(json!({})),
        PathSpec::Path(p) => p.select(raw).ok_or_else(|| {
            StateError::runtime(format!(
                "Invalid path '{p}' : No results for path: $['{}'] (InputPath of {:?})",
                p.as_str().trim_start_matches("$."),
                state.name
            ))
        }),
    }
}

fn output_path(state: &State, output: Value) -> Result<Value, StateError> {
    match &state.output_path {
        PathSpec::Default => Ok(output),
        PathSpec::Null => Ok(json!({})),
        PathSpec::Path(p) => p.select(&output).ok_or_else(|| {
            StateError::runtime(format!(
                "Invalid path '{p}' (OutputPath of {:?}) selects nothing",
                state.name
            ))
        }),
    }
}

fn apply_result_path(raw: &Value, result: Value, spec: &PathSpec) -> Result<Value, StateError> {
    match spec {
        PathSpec::Default => Ok(result),
        PathSpec::Null => Ok(raw.clone()),
        PathSpec::Path(p) => {
            let mut doc = raw.clone();
            p.set(&mut doc, result).map_err(|why| {
                StateError::new(
                    names::RESULT_PATH_MATCH_FAILURE,
                    format!("Unable to apply ResultPath \"{p}\" to input {raw}: {why}"),
                )
            })?;
            Ok(doc)
        }
    }
}
