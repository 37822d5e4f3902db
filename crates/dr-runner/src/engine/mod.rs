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

mod children;
mod flow;
mod tasks;

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
    /// Only simulated time passes: waits and retries advance it, and each
    /// task runs inside [`dr_core::clock::simulate`], its handlers reading
    /// the execution's time and adding what their calls take on the
    /// simulated AWS. Task tokens are answered after the delay the
    /// runner's [`TokenDelay`] gives. What `drctl estimate` runs.
    Simulated,
}

/// How long a person takes to answer the task token of `state` in
/// `execution` (a simulated run adds it to the execution's time).
pub type TokenDelay = Arc<dyn Fn(&str, &str) -> chrono::Duration + Send + Sync>;

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
    token_delay: Option<TokenDelay>,
    /// In [`TimeMode::Virtual`], how long a task waits in real time for a
    /// person's answer before its TimeoutSeconds is taken as passed.
    token_patience: Option<Duration>,
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
            token_delay: None,
            token_patience: None,
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

    /// In [`TimeMode::Simulated`], how long each task token waits for its
    /// answer in simulated time (the answer itself arrives as always).
    pub fn token_delay(mut self, delay: TokenDelay) -> Self {
        self.token_delay = Some(delay);
        self
    }

    /// In [`TimeMode::Virtual`], a task waiting for a token waits at most
    /// `patience` of real time; unanswered by then, its TimeoutSeconds is
    /// taken as passed and the execution's clock moves on by all of it (an
    /// escalation of hours climbs in seconds, and a person can still answer
    /// within the patience). Without it, token waits take real time.
    pub fn token_patience(mut self, patience: Duration) -> Self {
        self.token_patience = Some(patience);
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

    /// Runs one execution named `name` whose clock starts at `start` (a
    /// simulated run's fixed epoch).
    pub async fn execute_at(
        &self,
        machine: &StateMachine,
        input: Value,
        name: &str,
        start: DateTime<Utc>,
    ) -> ExecutionResult {
        self.execute_as(
            &self.state_machine_name,
            machine,
            input,
            name.to_owned(),
            start,
        )
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
        let elapsed = match self.mode {
            TimeMode::Simulated => branch.skipped,
            TimeMode::Real | TimeMode::Virtual => self.started_real.elapsed() + branch.skipped,
        };
        self.started_wall
            + chrono::Duration::from_std(elapsed).unwrap_or_else(|_| chrono::Duration::zero())
    }

    async fn sleep(&self, branch: &mut Branch, duration: Duration) {
        match self.mode {
            TimeMode::Real => tokio::time::sleep(duration).await,
            TimeMode::Virtual | TimeMode::Simulated => branch.skipped += duration,
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
