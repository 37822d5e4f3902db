//! What a scenario would achieve on AWS: the real state machine, run by
//! the local runner in simulated time over the simulated account, many
//! times with durations drawn from the timing table; and what each run's
//! time was spent on, what its history and payloads came to, and what it
//! costs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use dr_core::clock::{self, Stopwatch};
use dr_core::*;
use dr_runner::{
    ExecutionResult, HandlerError, Handlers, HistoryEvent, Runner, StateMachine, TimeMode,
};
use dr_scenarios::{dispatch, Function};
use serde::Serialize;
use serde_json::{json, Value};

use crate::world::{SimConfig, World};

/// Step Functions Standard: $0.025 per 1,000 state transitions
/// (aws.amazon.com/step-functions/pricing, us-east-1).
pub const USD_PER_TRANSITION: f64 = 0.025 / 1000.0;
/// Lambda on x86: $0.0000166667 per GB-second and $0.20 per million
/// requests (aws.amazon.com/lambda/pricing, us-east-1).
pub const USD_PER_GB_SECOND: f64 = 0.000_016_666_7;
pub const USD_PER_REQUEST: f64 = 0.20 / 1_000_000.0;

/// The runbook's own estimate of each scenario, in minutes (RUNBOOK.md).
pub fn runbook_minutes(scenario: &str) -> Option<f64> {
    match scenario {
        "database-failover" => Some(70.0),
        "app-server-recovery" => Some(45.0),
        "region-failover" => Some(180.0),
        "data-corruption" => Some(100.0),
        "security-breach" => Some(10.0),
        // "Quick Rollback (5 minutes)" and "Database Migration Rollback
        // (15 minutes)".
        "deployment-rollback" => Some(20.0),
        "dr-drill" => Some(180.0),
        _ => None,
    }
}

/// The state machine to estimate, with the machines it may start.
pub struct Machines<'a> {
    pub scenario: &'a str,
    pub machine: &'a StateMachine,
    /// `(ARN, name, machine)` of each child it may start.
    pub children: &'a [(String, String, StateMachine)],
}

/// How to estimate.
#[derive(Debug, Clone)]
pub struct Options {
    pub runs: usize,
    pub databases: usize,
    pub config: SimConfig,
    /// Each function's memory (MiB) and timeout (s), by logical id, from
    /// the template.
    pub memory_mb: BTreeMap<String, f64>,
    pub timeouts: BTreeMap<String, f64>,
    /// How the failover's primary fails.
    pub failure: Failure,
}

/// How the primary fails in a simulated failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// Its host is lost and RDS reports it `failed`: the evidence policy
    /// fails over without asking (the runbook's "primary instance failure").
    Failed,
    /// It stops answering while RDS still reports it `available` (a hung
    /// server, a partition): a person decides.
    Hung,
}

/// What one simulated run came to.
#[derive(Debug, Clone, Serialize)]
pub struct RunMeasure {
    pub seed: u64,
    pub status: String,
    pub outcome: Option<String>,
    /// Why the execution failed, when it did.
    pub error: Option<String>,
    pub cause: Option<String>,
    /// Start to recovery verified, as the run's own report measures it;
    /// `None` when the report does not measure one (never counted as met).
    pub rto_seconds: Option<f64>,
    pub elapsed_seconds: f64,
    pub split: Split,
    pub waits: Vec<WaitMeasure>,
    /// Time from entering to leaving each state of the execution, summed
    /// by state, longest first (the first few).
    pub slowest_states: Vec<(String, f64)>,
    /// How many executions the run took (a drill of more databases than
    /// one execution takes is several).
    pub executions: usize,
    pub history_events: usize,
    /// The most events any one of its child executions had.
    pub child_history_events: usize,
    pub payload_peak_bytes: usize,
    pub transitions: u64,
    pub lambda_invocations: u64,
    pub lambda_gb_seconds: f64,
    pub cost_usd: f64,
}

/// How a span of a run divides: AWS's own asynchronous work we waited for,
/// approvals, retry intervals, polling beyond AWS's work (the poll's
/// granularity), and our own steps (invocations, API calls, probes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Split {
    pub aws_seconds: f64,
    pub approval_seconds: f64,
    /// The checks a recovery or drill must run on the data (the integrity
    /// verifier): work the runbook asks for, not orchestration.
    pub check_seconds: f64,
    pub retry_seconds: f64,
    pub polling_seconds: f64,
    pub steps_seconds: f64,
}

impl Split {
    pub fn total(&self) -> f64 {
        self.aws_seconds
            + self.approval_seconds
            + self.check_seconds
            + self.retry_seconds
            + self.polling_seconds
            + self.steps_seconds
    }

    /// What our orchestration adds: everything but AWS's work and people.
    pub fn overhead_seconds(&self) -> f64 {
        self.retry_seconds + self.polling_seconds + self.steps_seconds
    }
}

/// One asynchronous AWS operation a run waited for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitMeasure {
    pub kind: String,
    pub resource: String,
    pub aws_seconds: f64,
    /// From its completion to the poll that saw it.
    pub beyond_seconds: f64,
    /// The Wait state before that poll (the granularity it was seen at).
    pub poll_interval_seconds: Option<f64>,
}

/// Half-open spans of simulated time.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// What one run's time went to, as spans of simulated time.
#[derive(Debug, Clone, Default)]
pub struct Spans {
    pub approvals: Vec<Span>,
    pub aws: Vec<Span>,
    pub checks: Vec<Span>,
    pub retries: Vec<Span>,
    pub polling: Vec<Span>,
}

/// Paints `window` with the categories in priority order (approvals, AWS
/// work, checks, retries, polling); what none covers is our own steps. Pure.
pub fn split(window: Span, spans: &Spans) -> Split {
    let Spans {
        approvals,
        aws,
        checks,
        retries,
        polling,
    } = spans;
    let (start, end) = window;
    if end <= start {
        return Split::default();
    }
    let mut cuts: Vec<DateTime<Utc>> = vec![start, end];
    for (a, b) in approvals
        .iter()
        .chain(aws)
        .chain(checks)
        .chain(retries)
        .chain(polling)
    {
        for t in [*a, *b] {
            if t > start && t < end {
                cuts.push(t);
            }
        }
    }
    cuts.sort();
    cuts.dedup();
    let mut out = Split::default();
    let inside = |spans: &[Span], t: DateTime<Utc>| spans.iter().any(|(a, b)| *a <= t && t < *b);
    for pair in cuts.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let seconds = (b - a).num_milliseconds() as f64 / 1000.0;
        let mid = a + (b - a) / 2;
        let slot = if inside(approvals, mid) {
            &mut out.approval_seconds
        } else if inside(aws, mid) {
            &mut out.aws_seconds
        } else if inside(checks, mid) {
            &mut out.check_seconds
        } else if inside(retries, mid) {
            &mut out.retry_seconds
        } else if inside(polling, mid) {
            &mut out.polling_seconds
        } else {
            &mut out.steps_seconds
        };
        *slot += seconds;
    }
    out
}

/// The retry intervals of a history: from a task's failure to its next
/// attempt. Pure.
pub fn retry_spans(history: &[HistoryEvent]) -> Vec<Span> {
    let by_id: BTreeMap<u64, &HistoryEvent> = history.iter().map(|e| (e.id, e)).collect();
    history
        .iter()
        .filter(|e| e.event_type == "TaskScheduled")
        .filter_map(|e| {
            let previous = by_id.get(&e.previous_event_id)?;
            matches!(previous.event_type.as_str(), "TaskFailed" | "TaskTimedOut")
                .then_some((previous.timestamp, e.timestamp))
        })
        .collect()
}

/// The Wait states of a history, entered to exited. Pure.
pub fn wait_spans(history: &[HistoryEvent]) -> Vec<Span> {
    let by_id: BTreeMap<u64, &HistoryEvent> = history.iter().map(|e| (e.id, e)).collect();
    history
        .iter()
        .filter(|e| e.event_type == "WaitStateExited")
        .filter_map(|exit| {
            // The exit follows its entry in the same branch.
            let entered = by_id.get(&exit.previous_event_id)?;
            (entered.event_type == "WaitStateEntered")
                .then_some((entered.timestamp, exit.timestamp))
        })
        .collect()
}

/// The states that took longest, entered to exited before `until`,
/// summed by name: the first `n`. Pure.
pub fn slowest_states(
    history: &[HistoryEvent],
    until: DateTime<Utc>,
    n: usize,
) -> Vec<(String, f64)> {
    let by_id: BTreeMap<u64, &HistoryEvent> = history.iter().map(|e| (e.id, e)).collect();
    let mut total: BTreeMap<String, f64> = BTreeMap::new();
    for exit in history
        .iter()
        .filter(|e| e.event_type.ends_with("StateExited") && e.timestamp <= until)
    {
        // Walk back along the branch to the same state's entry.
        let mut at = exit.previous_event_id;
        while let Some(event) = by_id.get(&at) {
            if event.event_type.ends_with("StateEntered") && event.state_name() == exit.state_name()
            {
                if let Some(name) = exit.state_name() {
                    *total.entry(name.to_owned()).or_insert(0.0) +=
                        seconds(exit.timestamp - event.timestamp);
                }
                break;
            }
            at = event.previous_event_id;
        }
    }
    let mut sorted: Vec<(String, f64)> = total.into_iter().collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted.truncate(n);
    sorted
}

/// State transitions as Step Functions bills them: every state entered,
/// and every retry of a task. Pure.
pub fn transitions(events: &[(String, u64)]) -> u64 {
    let count = |suffix: &str| {
        events
            .iter()
            .filter(|(t, _)| t.ends_with(suffix))
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    let entered = count("StateEntered");
    let scheduled = count("TaskScheduled");
    let tasks_entered = events
        .iter()
        .filter(|(t, _)| t == "TaskStateEntered")
        .map(|(_, n)| n)
        .sum::<u64>();
    entered + scheduled.saturating_sub(tasks_entered)
}

/// The `p`-th percentile of `values` (nearest rank); `None` for none. Pure.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// Answers the approvals of the simulated account as a person on call
/// would: after a delay drawn from the table, through the same code as
/// `drctl approve`.
struct OnCall {
    world: Arc<World>,
    /// The delay of each execution's answer, by execution ARN.
    delays: Arc<Mutex<BTreeMap<String, Duration>>>,
    /// The approval spans, for the split.
    spans: Arc<Mutex<Vec<Span>>>,
}

impl OnCall {
    async fn answer_pending(&self, answered: &mut BTreeSet<String>) {
        let store = crate::SimServices::new(Arc::clone(&self.world));
        for request in self.world.pending_approvals() {
            if !answered.insert(request.execution_name.clone()) {
                continue;
            }
            let delay = self
                .world
                .draw(self.world.config.timings.approval_answer, 0.0);
            if let Ok(mut delays) = self.delays.lock() {
                delays.insert(request.execution_arn.clone(), delay);
            }
            if let Ok(mut spans) = self.spans.lock() {
                spans.push((request.requested_at, request.requested_at + delay));
            }
            let at = request.requested_at + delay;
            let answered = clock::simulate(
                at,
                dr_scenarios::approval::answer(
                    &store,
                    &store,
                    &store,
                    &request.execution_name,
                    true,
                    "simulated on-call",
                    Some("drctl estimate: approved after the drawn response time"),
                ),
            )
            .await
            .0;
            if let Err(error) = answered {
                tracing::warn!(%error, "the simulated on-call's answer was not taken");
            }
        }
    }
}

/// One invocation of a function, for Lambda's bill.
#[derive(Debug, Clone)]
struct Invocation {
    function: String,
    seconds: f64,
}

fn handlers(
    ports: dr_scenarios::Ports,
    world: Arc<World>,
    invocations: Arc<Mutex<Vec<Invocation>>>,
    timeouts: &BTreeMap<String, f64>,
) -> Handlers {
    let mut handlers = Handlers::new();
    for function in Function::ALL {
        let id = function.logical_id();
        let ports = ports.clone();
        let world = Arc::clone(&world);
        let invocations = Arc::clone(&invocations);
        let timeout = timeouts.get(id).copied();
        handlers.register_fn(id, move |payload, _context| {
            let ports = ports.clone();
            let world = Arc::clone(&world);
            let invocations = Arc::clone(&invocations);
            async move {
                let watch = Stopwatch::start();
                clock::advance(world.invocation_overhead(id));
                let result = dispatch(function, &ports, payload)
                    .await
                    .map_err(HandlerError::from);
                let seconds = watch.seconds();
                if let Ok(mut all) = invocations.lock() {
                    all.push(Invocation {
                        function: id.to_owned(),
                        seconds,
                    });
                }
                match timeout {
                    // Lambda ends a function at its timeout, whatever it
                    // was doing; Step Functions sees Sandbox.Timedout.
                    Some(limit) if seconds > limit => Err(HandlerError::new(
                        "Sandbox.Timedout",
                        format!("Task timed out after {limit:.2} seconds"),
                    )),
                    _ => result,
                }
            }
        });
    }
    handlers
}

/// When the simulated runs begin (a fixed moment: runs are reproducible).
fn epoch() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-03T03:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now())
}

/// Prepares the account for `scenario` and adapts its input: the failover
/// finds its primary's host lost; the drill covers every database.
fn prepare(
    world: &World,
    scenario: &str,
    input: &Value,
    topologies: &[Topology],
    failure: Failure,
    at: DateTime<Utc>,
) -> DrResult<Value> {
    let mut input = input.clone();
    match scenario {
        "database-failover" => {
            let topology = named_topology(&input, topologies)?;
            world.lose_host(&topology.primary, at, failure == Failure::Failed)?;
        }
        "app-server-recovery" => {
            // Every server of the group the request names fails its
            // health check: the application on them is down.
            let _ = failure;
            let group = input
                .pointer("/fleet/auto_scaling_group")
                .and_then(Value::as_str)
                .unwrap_or("muejam-app");
            let region = input
                .pointer("/fleet/region")
                .and_then(Value::as_str)
                .unwrap_or(&world.config.home_region);
            world.servers_fail(region, group, at)?;
        }
        "data-corruption" => {
            let _ = failure;
            let topology = named_topology(&input, topologies)?;
            // The application wrote the damage this long before anyone
            // started the recovery.
            world.damage(&topology.primary, at - Duration::hours(DAMAGE_HOURS_AGO))?;
        }
        "deployment-rollback" => {
            // The release the deployment runs answers errors.
            let _ = failure;
            let at_deployment = |k: &str| {
                input
                    .pointer(&format!("/deployment/{k}"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            world.break_current_release(&at_deployment("namespace"), &at_deployment("name"))?;
        }
        "security-breach" => {
            let _ = failure;
            // The intrusion happened in the window the request names;
            // the simulated account's is the last hours before the run, so
            // a window that ends after the run starts is moved back.
            shift_window(&mut input, at)?;
            world.ip_sets_of(&input)?;
        }
        "region-failover" => {
            // Unplanned: the home region is down (its RDS and Auto Scaling
            // do not answer, its databases do not serve). Planned: it still
            // answers, and the evacuation stops the application's writes,
            // copies a final snapshot and restores that.
            let _ = failure;
            if input.get("mode").and_then(Value::as_str) != Some("planned") {
                world.region_down(&world.config.home_region)?;
            }
        }
        "dr-drill" => {
            let databases: Vec<Value> = topologies
                .iter()
                .map(|t| json!(t.primary.as_str()))
                .collect();
            if let Some(map) = input.as_object_mut() {
                map.insert("databases".to_owned(), Value::Array(databases));
            }
        }
        other => {
            return Err(DrError::InvalidInput(format!(
                "the simulated AWS does not model {other} yet: drctl estimate covers {}",
                crate::SUPPORTED.join(", ")
            )))
        }
    }
    Ok(input)
}

/// The topology of the database the request names (`muejam` when it
/// names none).
fn named_topology<'t>(input: &Value, topologies: &'t [Topology]) -> DrResult<&'t Topology> {
    let database = input
        .get("database")
        .and_then(Value::as_str)
        .unwrap_or("muejam");
    topologies
        .iter()
        .find(|t| t.database == database)
        .ok_or_else(|| {
            DrError::InvalidInput(format!(
                "the simulated account has no database {database:?} (it has muejam)"
            ))
        })
}

/// How long before the run the simulated damage was written.
pub const DAMAGE_HOURS_AGO: i64 = 3;

/// Moves a breach request's window to end at `at` (keeping its length)
/// when it ends later: the simulated intrusion is in the hours before the
/// run.
fn shift_window(input: &mut Value, at: DateTime<Utc>) -> DrResult<()> {
    let time = |p: &str| {
        input
            .pointer(p)
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(from), Some(to)) = (time("/window/from"), time("/window/to")) else {
        return Ok(());
    };
    if to <= at {
        return Ok(());
    }
    let length = to - from;
    if let Some(window) = input.get_mut("window").and_then(Value::as_object_mut) {
        window.insert("from".to_owned(), json!((at - length).to_rfc3339()));
        window.insert("to".to_owned(), json!(at.to_rfc3339()));
    }
    Ok(())
}

/// One simulated run: its figures, the account as the run left it, and
/// the execution.
pub struct SimulatedRun {
    pub measure: RunMeasure,
    pub world: Arc<World>,
    pub result: ExecutionResult,
}

/// Runs the scenario once with `seed`, with `faults` injected as `drctl
/// run --fault` does.
pub async fn run(
    machines: &Machines<'_>,
    input: &Value,
    options: &Options,
    seed: u64,
    faults: Vec<dr_runner::FaultRule>,
) -> DrResult<SimulatedRun> {
    let mut config = options.config.clone();
    config.seed = seed;
    let world = World::new(config);
    let start = epoch();
    let topologies = crate::seed_muejam(&world, options.databases, start)?;
    let input = prepare(
        &world,
        machines.scenario,
        input,
        &topologies,
        options.failure,
        start,
    )?;
    let name = format!("estimate-{seed}");
    let arn = dr_runner::engine::execution_arn(machines.scenario, &name);
    world.set_execution(&arn, ExecutionState::Running);

    let invocations = Arc::new(Mutex::new(Vec::new()));
    let ports = crate::ports(&world);
    let handlers = handlers(
        ports,
        Arc::clone(&world),
        Arc::clone(&invocations),
        &options.timeouts,
    );
    let delays: Arc<Mutex<BTreeMap<String, Duration>>> = Arc::default();
    let approval_spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let counted: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let delay_of = Arc::clone(&delays);
    let count = Arc::clone(&counted);
    let mut runner = Runner::new(handlers)
        .state_machine_name(machines.scenario)
        .time_mode(TimeMode::Simulated)
        .faults(dr_runner::FaultPlan::new(faults))
        .token_delay(Arc::new(move |execution: &str, _state: &str| {
            delay_of
                .lock()
                .ok()
                .and_then(|d| d.get(execution).copied())
                .unwrap_or_else(Duration::zero)
        }))
        .observer(Arc::new(move |event: &HistoryEvent| {
            if let Ok(mut counted) = count.lock() {
                *counted.entry(event.event_type.clone()).or_insert(0) += 1;
            }
        }));
    for (child_arn, child_name, child) in machines.children {
        runner = runner.child_machine(child_arn.clone(), child_name.clone(), child.clone());
    }
    let _ = world.definitions.set(
        machines
            .children
            .iter()
            .filter_map(|(arn, _, child)| {
                child
                    .definition_sha256
                    .clone()
                    .map(|digest| (arn.clone(), digest))
            })
            .collect(),
    );
    // Steps answer waiting tasks through this run's runner.
    let _ = world.tokens.set(runner.tokens());
    let on_call = OnCall {
        world: Arc::clone(&world),
        delays: Arc::clone(&delays),
        spans: Arc::clone(&approval_spans),
    };
    let answering = tokio::spawn(async move {
        let mut answered = BTreeSet::new();
        loop {
            on_call.answer_pending(&mut answered).await;
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    });
    let result = runner
        .execute_at(machines.machine, input, &name, start)
        .await;
    answering.abort();

    let report = report_of(&world, &name);
    // A breach's objective is its containment.
    let rto_seconds = report
        .as_ref()
        .and_then(|r| {
            r.pointer("/rto/achieved_seconds")
                .or_else(|| r.pointer("/containment/achieved_seconds"))
        })
        .and_then(Value::as_f64);
    // A recovery's report names its outcome; a drill's says whether it passed.
    let outcome = report.as_ref().and_then(|r| {
        r.get("outcome")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                r.get("passed")
                    .and_then(Value::as_bool)
                    .map(|p| if p { "passed" } else { "failed" }.to_owned())
            })
    });
    let end = match rto_seconds {
        Some(rto) => start + Duration::milliseconds((rto * 1000.0) as i64),
        None => result.stop_date,
    };
    let operations = world.operations();
    let awaited: Vec<_> = operations
        .iter()
        .filter(|o| o.observed.is_some_and(|seen| seen <= end))
        .collect();
    let waits_in_history = wait_spans(&result.history);
    let waits = awaited
        .iter()
        .map(|o| {
            let seen = o.observed.unwrap_or(o.completed);
            WaitMeasure {
                kind: o.kind.to_owned(),
                resource: o.resource.clone(),
                aws_seconds: seconds(o.completed - o.started),
                beyond_seconds: seconds(seen - o.completed),
                poll_interval_seconds: waits_in_history
                    .iter()
                    .filter(|(_, exit)| *exit <= seen)
                    .max_by_key(|(_, exit)| *exit)
                    .map(|(a, b)| seconds(*b - *a)),
            }
        })
        .collect();
    let slowest_states = slowest_states(&result.history, end, 6);
    let approvals = approval_spans.lock().map(|s| s.clone()).unwrap_or_default();
    let split = split(
        (start, end),
        &Spans {
            approvals,
            aws: awaited.iter().map(|o| (o.started, o.completed)).collect(),
            checks: world.checks(),
            retries: retry_spans(&result.history),
            polling: awaited
                .iter()
                .filter_map(|o| o.observed.map(|seen| (o.completed, seen)))
                .collect(),
        },
    );
    let events: Vec<(String, u64)> = counted
        .lock()
        .map(|c| c.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    let transitions = transitions(&events);
    let invocations = invocations.lock().map(|i| i.clone()).unwrap_or_default();
    let lambda_gb_seconds: f64 = invocations
        .iter()
        .map(|i| {
            let memory = options.memory_mb.get(&i.function).copied().unwrap_or(128.0);
            // Billed per started millisecond.
            (i.seconds * 1000.0).ceil() / 1000.0 * memory / 1024.0
        })
        .sum();
    let children = runner.child_executions();
    let cost_usd = transitions as f64 * USD_PER_TRANSITION
        + lambda_gb_seconds * USD_PER_GB_SECOND
        + invocations.len() as f64 * USD_PER_REQUEST;
    let measure = RunMeasure {
        seed,
        status: status_name(&result),
        outcome,
        error: result.error.clone(),
        cause: result.cause.clone(),
        rto_seconds,
        elapsed_seconds: seconds(result.stop_date - result.start_date),
        split,
        waits,
        slowest_states,
        executions: 1,
        history_events: result.history.len(),
        child_history_events: children
            .values()
            .map(|c| c.history_events)
            .max()
            .unwrap_or(0),
        payload_peak_bytes: children
            .values()
            .map(|c| c.max_payload_bytes)
            .max()
            .unwrap_or(0)
            .max(result.max_payload_bytes),
        transitions,
        lambda_invocations: invocations.len() as u64,
        lambda_gb_seconds,
        cost_usd,
    };
    Ok(SimulatedRun {
        measure,
        world,
        result,
    })
}

fn status_name(result: &ExecutionResult) -> String {
    serde_json::to_value(result.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", result.status))
}

fn seconds(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// The run's JSON report, as its report step stored it: the one that
/// names the execution `name` (a child's, as the restore a breach starts,
/// is not the run's), else the first report there is.
fn report_of(world: &World, name: &str) -> Option<Value> {
    let state = world.state().ok()?;
    let reports: Vec<Value> = state
        .reports
        .iter()
        .filter(|(key, _)| key.ends_with(".json"))
        .filter_map(|(_, body)| serde_json::from_slice::<Value>(body).ok())
        .filter(|r| {
            ["rto", "containment", "outcome", "passed"]
                .iter()
                .any(|k| r.get(k).is_some())
        })
        .collect();
    let named = reports
        .iter()
        .position(|r| r.get("execution_name").and_then(Value::as_str) == Some(name));
    match named {
        Some(i) => reports.into_iter().nth(i),
        None => reports.into_iter().next(),
    }
}

/// The runs of one estimate, and what they add up to.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub scenario: String,
    pub databases: usize,
    pub database_gib: f64,
    pub runs: Vec<RunMeasure>,
    pub rto_p50_seconds: Option<f64>,
    pub rto_p95_seconds: Option<f64>,
    pub rto_max_seconds: Option<f64>,
    /// Runs whose report measured no RTO (failed, or not a recovery).
    pub rto_not_measured: usize,
    pub runbook_minutes: Option<f64>,
    /// Start to end of the runs (all their executions, one after another).
    pub duration_p50_seconds: Option<f64>,
    pub duration_p95_seconds: Option<f64>,
    pub executions_per_run: usize,
    /// The mean split of the runs' measured spans.
    pub split_mean: Split,
    /// The largest share of a run's RTO our orchestration took.
    pub overhead_share_max: Option<f64>,
    /// The most any wait went past AWS's work, against its poll interval.
    pub worst_wait: Option<WaitMeasure>,
    pub history_events_max: usize,
    pub child_history_events_max: usize,
    pub payload_peak_bytes: usize,
    pub transitions_mean: f64,
    pub cost_usd_mean: f64,
    pub cost_usd_per_database: f64,
}

/// Runs the scenario `options.runs` times, seeds `seed..seed+runs`.
pub async fn estimate(
    machines: &Machines<'_>,
    input: &Value,
    options: &Options,
    seed: u64,
) -> DrResult<Estimate> {
    let mut runs = Vec::new();
    // One drill execution takes at most MAX_DATABASES databases: a larger
    // fleet is drilled by several, one after the other.
    let per_execution = match machines.scenario {
        "dr-drill" => dr_scenarios::drill::MAX_DATABASES,
        _ => usize::MAX,
    };
    for n in 0..options.runs.max(1) as u64 {
        let mut left = options.databases.max(1);
        let mut parts = Vec::new();
        let mut part = 0;
        while left > 0 {
            let take = left.min(per_execution);
            let batch = Options {
                databases: take,
                ..options.clone()
            };
            let part_seed = (seed + n).wrapping_add(part * 1_000_003);
            parts.push(
                run(machines, input, &batch, part_seed, Vec::new())
                    .await?
                    .measure,
            );
            left -= take;
            part += 1;
        }
        runs.push(combine(seed + n, parts));
    }
    Ok(summarize(machines.scenario, options, runs))
}

/// Executions run one after the other as one run: times, costs and
/// transitions add up; history and payloads are per execution. Pure.
pub fn combine(seed: u64, parts: Vec<RunMeasure>) -> RunMeasure {
    let mut parts = parts.into_iter();
    let Some(mut all) = parts.next() else {
        return RunMeasure {
            seed,
            status: "NOT RUN".to_owned(),
            outcome: None,
            error: None,
            cause: None,
            rto_seconds: None,
            elapsed_seconds: 0.0,
            split: Split::default(),
            waits: Vec::new(),
            slowest_states: Vec::new(),
            executions: 0,
            history_events: 0,
            child_history_events: 0,
            payload_peak_bytes: 0,
            transitions: 0,
            lambda_invocations: 0,
            lambda_gb_seconds: 0.0,
            cost_usd: 0.0,
        };
    };
    all.seed = seed;
    for part in parts {
        if part.status != "SUCCEEDED" {
            all.status = part.status;
            all.error = part.error.or(all.error);
            all.cause = part.cause.or(all.cause);
        }
        if part.outcome != all.outcome {
            all.outcome = part.outcome.or(all.outcome);
        }
        all.rto_seconds = None;
        all.elapsed_seconds += part.elapsed_seconds;
        all.split = Split {
            aws_seconds: all.split.aws_seconds + part.split.aws_seconds,
            approval_seconds: all.split.approval_seconds + part.split.approval_seconds,
            check_seconds: all.split.check_seconds + part.split.check_seconds,
            retry_seconds: all.split.retry_seconds + part.split.retry_seconds,
            polling_seconds: all.split.polling_seconds + part.split.polling_seconds,
            steps_seconds: all.split.steps_seconds + part.split.steps_seconds,
        };
        all.waits.extend(part.waits);
        all.executions += part.executions;
        all.history_events = all.history_events.max(part.history_events);
        all.child_history_events = all.child_history_events.max(part.child_history_events);
        all.payload_peak_bytes = all.payload_peak_bytes.max(part.payload_peak_bytes);
        all.transitions += part.transitions;
        all.lambda_invocations += part.lambda_invocations;
        all.lambda_gb_seconds += part.lambda_gb_seconds;
        all.cost_usd += part.cost_usd;
    }
    all
}

/// What the runs add up to. Pure.
pub fn summarize(scenario: &str, options: &Options, runs: Vec<RunMeasure>) -> Estimate {
    let rtos: Vec<f64> = runs.iter().filter_map(|r| r.rto_seconds).collect();
    let durations: Vec<f64> = runs.iter().map(|r| r.elapsed_seconds).collect();
    let count = runs.len().max(1) as f64;
    let mean = |f: &dyn Fn(&RunMeasure) -> f64| runs.iter().map(f).sum::<f64>() / count;
    let split_mean = Split {
        aws_seconds: mean(&|r| r.split.aws_seconds),
        approval_seconds: mean(&|r| r.split.approval_seconds),
        check_seconds: mean(&|r| r.split.check_seconds),
        retry_seconds: mean(&|r| r.split.retry_seconds),
        polling_seconds: mean(&|r| r.split.polling_seconds),
        steps_seconds: mean(&|r| r.split.steps_seconds),
    };
    let overhead_share_max = runs
        .iter()
        .filter_map(|r| {
            let span = r.split.total();
            (span > 0.0).then(|| r.split.overhead_seconds() / span)
        })
        .max_by(f64::total_cmp);
    let worst_wait = runs
        .iter()
        .flat_map(|r| r.waits.iter())
        .max_by(|a, b| a.beyond_seconds.total_cmp(&b.beyond_seconds))
        .cloned();
    let cost_usd_mean = mean(&|r| r.cost_usd);
    Estimate {
        scenario: scenario.to_owned(),
        databases: options.databases.max(1),
        database_gib: options.config.database_gib,
        rto_p50_seconds: percentile(&rtos, 50.0),
        rto_p95_seconds: percentile(&rtos, 95.0),
        rto_max_seconds: rtos.iter().copied().max_by(f64::total_cmp),
        rto_not_measured: runs.len() - rtos.len(),
        runbook_minutes: runbook_minutes(scenario),
        duration_p50_seconds: percentile(&durations, 50.0),
        duration_p95_seconds: percentile(&durations, 95.0),
        executions_per_run: runs.iter().map(|r| r.executions).max().unwrap_or(0),
        split_mean,
        overhead_share_max,
        worst_wait,
        history_events_max: runs.iter().map(|r| r.history_events).max().unwrap_or(0),
        child_history_events_max: runs
            .iter()
            .map(|r| r.child_history_events)
            .max()
            .unwrap_or(0),
        payload_peak_bytes: runs.iter().map(|r| r.payload_peak_bytes).max().unwrap_or(0),
        transitions_mean: mean(&|r| r.transitions as f64),
        cost_usd_mean,
        cost_usd_per_database: cost_usd_mean / options.databases.max(1) as f64,
        runs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u32) -> DateTime<Utc> {
        epoch() + Duration::seconds(i64::from(s))
    }

    #[test]
    fn a_window_is_painted_by_priority_and_the_rest_is_our_steps() {
        // (window, approvals, aws, retries, polling) -> split
        type Case = (Span, Vec<Span>, Vec<Span>, Vec<Span>, Vec<Span>, Split);
        let cases: Vec<Case> = vec![
            // Nothing but our own steps.
            (
                (at(0), at(10)),
                vec![],
                vec![],
                vec![],
                vec![],
                Split {
                    steps_seconds: 10.0,
                    ..Split::default()
                },
            ),
            // A promotion of 300 s seen 12 s late, after 20 s of steps.
            (
                (at(0), at(340)),
                vec![],
                vec![(at(20), at(320))],
                vec![],
                vec![(at(320), at(332))],
                Split {
                    aws_seconds: 300.0,
                    polling_seconds: 12.0,
                    steps_seconds: 28.0,
                    ..Split::default()
                },
            ),
            // A retry during AWS's work counts as AWS's; past it, as a retry.
            (
                (at(0), at(100)),
                vec![],
                vec![(at(10), at(50))],
                vec![(at(40), at(70))],
                vec![],
                Split {
                    aws_seconds: 40.0,
                    retry_seconds: 20.0,
                    steps_seconds: 40.0,
                    ..Split::default()
                },
            ),
            // An approval outranks everything; spans past the window are cut.
            (
                (at(0), at(60)),
                vec![(at(10), at(40))],
                vec![(at(30), at(90))],
                vec![],
                vec![],
                Split {
                    approval_seconds: 30.0,
                    aws_seconds: 20.0,
                    steps_seconds: 10.0,
                    ..Split::default()
                },
            ),
            // An empty window.
            (
                (at(5), at(5)),
                vec![],
                vec![(at(0), at(9))],
                vec![],
                vec![],
                Split::default(),
            ),
        ];
        for (window, approvals, aws, retries, polling, want) in cases {
            let spans = Spans {
                approvals,
                aws,
                checks: Vec::new(),
                retries,
                polling,
            };
            let got = split(window, &spans);
            assert_eq!(got, want, "{window:?}");
            assert!((got.total() - seconds(window.1 - window.0).max(0.0)).abs() < 1e-9);
        }
    }

    #[test]
    fn checks_rank_below_aws_work_and_above_retries() {
        let spans = Spans {
            aws: vec![(at(0), at(10))],
            checks: vec![(at(5), at(30))],
            retries: vec![(at(20), at(40))],
            ..Spans::default()
        };
        let got = split((at(0), at(50)), &spans);
        assert_eq!(
            got,
            Split {
                aws_seconds: 10.0,
                check_seconds: 20.0,
                retry_seconds: 10.0,
                steps_seconds: 10.0,
                ..Split::default()
            }
        );
        assert_eq!(got.overhead_seconds(), 20.0, "checks are not overhead");
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let values = [5.0, 1.0, 4.0, 2.0, 3.0];
        let cases = [
            (50.0, Some(3.0)),
            (95.0, Some(5.0)),
            (0.0, Some(1.0)),
            (100.0, Some(5.0)),
        ];
        for (p, want) in cases {
            assert_eq!(percentile(&values, p), want, "p{p}");
        }
        assert_eq!(percentile(&[], 50.0), None);
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&twenty, 95.0), Some(19.0));
    }

    #[test]
    fn transitions_count_every_state_entered_and_every_retry() {
        let events = |list: &[(&str, u64)]| -> Vec<(String, u64)> {
            list.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
        };
        let cases = [
            (
                events(&[
                    ("PassStateEntered", 3),
                    ("TaskStateEntered", 4),
                    ("TaskScheduled", 4),
                ]),
                7,
            ),
            // Two retries: two more schedules than task entries.
            (
                events(&[
                    ("TaskStateEntered", 2),
                    ("TaskScheduled", 4),
                    ("WaitStateEntered", 5),
                ]),
                9,
            ),
            (events(&[("ExecutionStarted", 1), ("TaskSucceeded", 3)]), 0),
        ];
        for (list, want) in cases {
            assert_eq!(transitions(&list), want, "{list:?}");
        }
    }

    fn event(id: u64, previous: u64, t: u32, kind: &str) -> HistoryEvent {
        HistoryEvent {
            id,
            previous_event_id: previous,
            timestamp: at(t),
            event_type: kind.to_owned(),
            details: serde_json::Map::new(),
        }
    }

    #[test]
    fn retries_and_waits_are_read_from_the_history() {
        let history = vec![
            event(1, 0, 0, "TaskStateEntered"),
            event(2, 1, 0, "TaskScheduled"),
            event(3, 2, 1, "TaskFailed"),
            event(4, 3, 16, "TaskScheduled"),
            event(5, 4, 17, "TaskSucceeded"),
            event(6, 5, 17, "WaitStateEntered"),
            event(7, 6, 32, "WaitStateExited"),
        ];
        assert_eq!(retry_spans(&history), vec![(at(1), at(16))]);
        assert_eq!(wait_spans(&history), vec![(at(17), at(32))]);
    }
}
