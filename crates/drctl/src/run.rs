//! `drctl run`: execute a state machine on this machine with the local runner,
//! and `drctl task success|failure`: answer a `.waitForTaskToken` task.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use dr_core::{DrError, DrResult};
use dr_runner::sam::SamTemplate;
use dr_runner::{
    ExecutionResult, Fault, FaultPlan, FaultRule, Handlers, HistoryEvent, LoadOptions, Runner,
    StateMachine, TimeMode, TokenOutcome,
};
use serde_json::{json, Value};

use crate::output::OutputFormat;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A state machine name (statemachines/<name>.asl.json) or a path to an .asl.json file.
    state_machine: String,
    /// JSON input file ("-" for standard input).
    #[arg(long)]
    input: PathBuf,
    /// Run on this machine with the local runner, in the foreground (required: on AWS, `drctl start`
    /// starts the deployed state machine).
    #[arg(long)]
    local: bool,
    /// Waits and retry intervals advance a simulated clock instead of taking real time.
    #[arg(long)]
    virtual_time: bool,
    /// With --virtual-time: how many real seconds a step waiting for a person (an approval's
    /// tier) waits for an answer before its timeout is taken as passed on the virtual clock.
    /// Without it, such waits take real time.
    #[arg(long, value_name = "SECONDS", requires = "virtual_time", value_parser = clap::value_parser!(u64).range(1..=3600))]
    token_patience: Option<u64>,
    /// Pages this run raises climb the escalation path, each as a `drctl run page-escalation` of
    /// its own with this run's clock (without it, they are kept in pages.jsonl in the home).
    #[arg(long)]
    escalate_pages: bool,
    /// The SAM template holding the DefinitionSubstitutions (default: ./template.yaml when present).
    #[arg(long)]
    template: Option<PathBuf>,
    /// Execution name (default: a UUID).
    #[arg(long)]
    name: Option<String>,
    /// Inject a fault: TASK:CALL:ERROR (fail the CALL-th call of TASK with ERROR), TASK:CALL:timeout,
    /// or TASK:CALL:return=<json> (the function answers that without running); CALL may be a range
    /// N-M. Calls count retries, in each execution (a child's from 1 again). TASK may be
    /// <state machine>/<name> to hit that state machine's executions only (e.g.
    /// database-failover/Report in a drill's rehearsal, not the drill's own Report).
    #[arg(long = "fault", value_name = "TASK:CALL:ERROR")]
    faults: Vec<String>,
    /// Fail a port operation inside a handler: OPERATION:CALL[-LAST]:ERROR (the CALL-th call of
    /// OPERATION in this run fails with ERROR), e.g. LedgerMarkSent:2:Unavailable: a batch
    /// sent and not recorded. Operations: UserNotify, LedgerEntries, LedgerClaim, LedgerMarkSent,
    /// DeleteInstance (the home region's).
    #[arg(long = "port-fault", value_name = "OPERATION:CALL:ERROR")]
    port_faults: Vec<String>,
    /// Where other processes drop task-token answers (default: task-tokens/ in DRCTL_HOME, else a temporary directory).
    #[arg(long, env = "DRCTL_TOKEN_INBOX")]
    token_inbox: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct TaskArgs {
    #[command(subcommand)]
    command: TaskCommand,
    /// The inbox of the running `drctl run` (default: task-tokens/ in DRCTL_HOME).
    #[arg(long, env = "DRCTL_TOKEN_INBOX", global = true)]
    token_inbox: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum TaskCommand {
    /// Approve: the waiting task succeeds with OUTPUT (JSON, default {}).
    Success {
        token: String,
        #[arg(long, default_value = "{}")]
        output: String,
    },
    /// Reject: the waiting task fails with ERROR and CAUSE.
    Failure {
        token: String,
        #[arg(long)]
        error: String,
        #[arg(long, default_value = "")]
        cause: String,
    },
}

/// A fresh execution name, as Step Functions makes one.
fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn default_inbox() -> Option<PathBuf> {
    std::env::var_os("DRCTL_HOME").map(|home| PathBuf::from(home).join("task-tokens"))
}

/// `TASK:CALLS:WHAT`: TASK is a state or function name, or
/// `<state machine>/<name>` for that state machine's executions only (a
/// child's step); CALLS is N or N-M (retries counted, per execution);
/// WHAT is `timeout`, `return=<json>` (the function answers that, without
/// running) or an error name.
fn parse_fault(text: &str) -> DrResult<FaultRule> {
    let bad = |why: &str| {
        DrError::InvalidInput(format!(
            "fault {text:?}: {why} (TASK:CALL[-LAST]:ERROR, TASK:CALL[-LAST]:timeout or TASK:CALL[-LAST]:return=<json>)"
        ))
    };
    let mut parts = text.splitn(3, ':');
    let (Some(task), Some(calls), Some(what)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("three parts are needed"));
    };
    let number = |n: &str| n.parse::<u32>().ok().filter(|n| *n > 0);
    let (call, until_call) = match calls.split_once('-') {
        Some((first, last)) => match (number(first), number(last)) {
            (Some(f), Some(l)) if f <= l => (f, Some(l)),
            _ => return Err(bad("CALL-LAST must be positive numbers, in order")),
        },
        None => (
            number(calls).ok_or_else(|| bad("CALL must be a positive number"))?,
            None,
        ),
    };
    let fault = if what.eq_ignore_ascii_case("timeout") {
        Fault::Timeout
    } else if let Some(json) = what.strip_prefix("return=") {
        Fault::Return {
            output: serde_json::from_str(json)
                .map_err(|e| bad(&format!("return= needs JSON: {e}")))?,
        }
    } else {
        Fault::Fail {
            error: what.to_owned(),
            cause: format!("injected by drctl run --fault {text}"),
        }
    };
    Ok(FaultRule {
        task: task.to_owned(),
        call,
        until_call,
        fault,
    })
}

/// A state machine of the template that tasks may start as a child.
pub(crate) struct Child {
    pub arn: String,
    pub name: String,
    pub path: PathBuf,
    pub substitutions: BTreeMap<String, String>,
}

/// The name the runner gives a definition: its file name without `.asl.json`.
fn stem(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(|n| {
            n.trim_end_matches(".json")
                .trim_end_matches(".asl")
                .to_owned()
        })
        .unwrap_or_else(|| "local".to_owned())
}

pub(crate) type Located = (PathBuf, String, BTreeMap<String, String>, Vec<Child>);

fn locate(args: &RunArgs) -> DrResult<Located> {
    locate_machine(&args.state_machine, args.template.as_deref())
}

/// A definition with the template's substitutions, its Task states checked
/// against the functions `known`.
pub(crate) fn load_machine(
    path: &Path,
    substitutions: BTreeMap<String, String>,
    known: &BTreeSet<String>,
) -> DrResult<StateMachine> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DrError::InvalidInput(format!("reading {}: {e}", path.display())))?;
    StateMachine::load(
        &text,
        &LoadOptions {
            substitutions,
            known_functions: Some(known.clone()),
        },
    )
    .map_err(|e| DrError::InvalidInput(format!("{}: {e}", path.display())))
}

/// The definition of `state_machine` (a name or a path), its name, the
/// template's substitutions for it, and the template's other machines.
pub(crate) fn locate_machine(state_machine: &str, template: Option<&Path>) -> DrResult<Located> {
    let direct = PathBuf::from(state_machine);
    let path = if direct.is_file() {
        direct
    } else {
        let candidate = Path::new("statemachines").join(format!("{state_machine}.asl.json"));
        if !candidate.is_file() {
            return Err(DrError::NotFound(format!(
                "no state machine {state_machine:?}: neither a file nor statemachines/{state_machine}.asl.json"
            )));
        }
        candidate
    };
    let name = stem(&path);
    let template = match template.map(Path::to_path_buf) {
        Some(t) => Some(t),
        None => Some(PathBuf::from("template.yaml")).filter(|p| p.is_file()),
    };
    let mut substitutions = BTreeMap::new();
    let mut children = Vec::new();
    if let Some(template) = template {
        let sam = SamTemplate::load(&template).map_err(|e| DrError::InvalidInput(e.to_string()))?;
        let wanted = path.canonicalize().ok();
        for declared in sam
            .state_machines()
            .map_err(|e| DrError::InvalidInput(e.to_string()))?
        {
            let declared_path = sam.dir().join(&declared.definition_uri);
            if declared_path.canonicalize().ok() == wanted {
                substitutions = declared.substitutions;
            } else {
                children.push(Child {
                    arn: declared.arn,
                    name: stem(&declared_path),
                    path: declared_path,
                    substitutions: declared.substitutions,
                });
            }
        }
    }
    Ok((path, name, substitutions, children))
}

/// The handlers the local runner dispatches to: every function, over the
/// local stack when one is up; none otherwise (a definition with Task states
/// is then refused at load time, naming the state).
async fn local_handlers(
    port_faults: Vec<crate::port_faults::PortFault>,
    paging: crate::wiring::LocalPaging,
) -> DrResult<(Handlers, Option<PathBuf>)> {
    let Ok(home) = crate::local::existing_home(std::env::var_os("DRCTL_HOME").map(PathBuf::from))
    else {
        return Ok((Handlers::new(), None));
    };
    let platform = dr_local::LocalControlPlane::open(&home, None)?;
    let ports = crate::wiring::local_ports_paging(&platform, paging).await?;
    let ports = crate::port_faults::inject(ports, port_faults);
    Ok((crate::wiring::handlers(ports), Some(home)))
}

fn print_event(event: &HistoryEvent, started: chrono::DateTime<chrono::Utc>) {
    let offset = (event.timestamp - started).num_milliseconds() as f64 / 1000.0;
    let at = format!("{} +{offset:>9.3}s", event.timestamp.format("%H:%M:%S%.3f"));
    let kind = event.event_type.as_str();
    let line = if let Some(state_type) = kind.strip_suffix("StateEntered") {
        format!("▶ {} ({state_type})", event.state_name().unwrap_or("?"))
    } else if kind.ends_with("StateExited") {
        format!("✔ {}", event.state_name().unwrap_or("?"))
    } else if matches!(
        kind,
        "TaskFailed" | "TaskTimedOut" | "ExecutionFailed" | "ExecutionTimedOut"
    ) {
        format!(
            "✘ {kind}: {} {}",
            event.detail("error").and_then(Value::as_str).unwrap_or(""),
            event.detail("cause").and_then(Value::as_str).unwrap_or("")
        )
    } else if matches!(kind, "ExecutionStarted" | "ExecutionSucceeded") {
        kind.to_owned()
    } else {
        return;
    };
    eprintln!("{at}  {line}");
}

pub async fn run(args: RunArgs) -> DrResult<ExitCode> {
    if !args.local {
        return Err(DrError::InvalidInput(
            "drctl run runs a definition on this machine (pass --local); to start the deployed state machine on AWS, use drctl start <scenario> --input F".to_owned(),
        ));
    }
    let input = read_execution_input(&args.input)?;
    let faults = args
        .faults
        .iter()
        .map(|f| parse_fault(f))
        .collect::<DrResult<Vec<_>>>()?;
    let (path, name, substitutions, children) = locate(&args)?;
    let port_faults = crate::port_faults::parse_all(&args.port_faults)?;
    let paging = if args.escalate_pages {
        crate::wiring::LocalPaging::Climb {
            virtual_time: args.virtual_time,
            token_patience: args.token_patience,
        }
    } else {
        crate::wiring::LocalPaging::Recorded
    };
    let (handlers, home) = local_handlers(port_faults, paging).await?;
    let known: BTreeSet<String> = handlers.names().into_iter().collect();
    let load = |path: &Path, substitutions: BTreeMap<String, String>| {
        load_machine(path, substitutions, &known)
    };
    let machine = load(&path, substitutions)?;
    // The template's other state machines, which tasks may start as child
    // executions (loaded only when this one starts any).
    let mut child_machines = Vec::new();
    // What this run loads, as the local stack's "deployed" definitions: a
    // drill's rehearsal compares the one its child ran with the file now.
    let mut loaded = BTreeMap::new();
    if !machine.children().is_empty() {
        for child in children {
            let child_machine = load(&child.path, child.substitutions.clone())?;
            if let Some(sha256) = child_machine.definition_sha256.clone() {
                loaded.insert(
                    child.arn.clone(),
                    dr_local::executions::LoadedDefinition {
                        sha256,
                        path: child.path.clone(),
                        substitutions: child.substitutions,
                    },
                );
            }
            child_machines.push((child.arn, child.name, child_machine));
        }
    }

    let home_inbox = home.as_ref().map(|h| h.join("task-tokens"));
    let (inbox, _temporary_inbox) = match args
        .token_inbox
        .clone()
        .or(home_inbox)
        .or_else(default_inbox)
    {
        Some(dir) => (dir, None),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("drctl-task-tokens-")
                .tempdir()
                .map_err(|e| DrError::Internal(format!("making a token inbox: {e}")))?;
            (dir.path().to_owned(), Some(dir))
        }
    };
    std::fs::create_dir_all(&inbox)
        .map_err(|e| DrError::InvalidInput(format!("token inbox {}: {e}", inbox.display())))?;

    let execution_name = args.name.clone().unwrap_or_else(uuid_v4);
    // The registry of local executions: what tells a lock held by this run
    // from one held by a run that died.
    let registry = home
        .as_deref()
        .map(dr_local::executions::LocalExecutions::new);
    if let Some(registry) = &registry {
        registry.start(&dr_local::executions::ExecutionRecord {
            name: execution_name.clone(),
            arn: dr_runner::engine::execution_arn(&name, &execution_name),
            state_machine: name.clone(),
            pid: std::process::id(),
            started_at: chrono::Utc::now(),
            state: dr_core::ExecutionState::Running,
            stopped_at: None,
        })?;
        // The input, as DescribeExecution shows it.
        if let Err(error) = registry.set_input(&execution_name, &input) {
            tracing::warn!(%error, "the input was not kept beside the execution");
        }
        registry.record_definitions(&loaded)?;
    }
    let started = chrono::Utc::now();
    let mut runner = Runner::new(handlers)
        .state_machine_name(&name)
        .time_mode(if args.virtual_time {
            TimeMode::Virtual
        } else {
            TimeMode::Real
        })
        .faults(FaultPlan::new(faults))
        .token_inbox(inbox.clone());
    if let Some(seconds) = args.token_patience {
        runner = runner.token_patience(Duration::from_secs(seconds));
    }
    for (arn, child_name, child) in child_machines {
        runner = runner.child_machine(arn, child_name, child);
    }
    // Every event also goes to the execution's history file, which `drctl
    // watch` follows.
    let history = registry.clone().map(|r| (r, execution_name.clone()));
    runner = runner.observer(Arc::new(move |event| {
        print_event(event, started);
        if let Some((registry, name)) = &history {
            let logged = serde_json::to_value(event)
                .map_err(|e| DrError::Internal(format!("serializing an event: {e}")))
                .and_then(|value| registry.append_event(name, &value));
            if let Err(error) = logged {
                tracing::warn!(%error, "the history file missed an event");
            }
        }
    }));
    let tokens = runner.tokens();
    let name_for_hint = execution_name.clone();
    // The task token is a capability: it is not printed. People answer by
    // execution name; `drctl task` remains for tokens read from the history.
    let announcer = tokio::spawn(async move {
        let mut announced = BTreeSet::new();
        loop {
            for token in tokens.pending() {
                if announced.insert(token) {
                    eprintln!(
                        "   waiting for an answer:\n   approve: drctl approve {name_for_hint} --local --reason '...'\n   reject:  drctl reject {name_for_hint} --local --reason '...'"
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let result = runner
        .execute(&machine, input, Some(execution_name.as_str()))
        .await;
    announcer.abort();
    if let Some(registry) = &registry {
        registry.set_result(
            &execution_name,
            &dr_local::executions::ExecutionResultRecord {
                output: result.output.clone(),
                error: result.error.clone(),
                cause: result.cause.clone(),
            },
        )?;
        registry.finish(
            &execution_name,
            match result.status {
                dr_runner::ExecutionStatus::Succeeded => dr_core::ExecutionState::Succeeded,
                dr_runner::ExecutionStatus::Failed => dr_core::ExecutionState::Failed,
                dr_runner::ExecutionStatus::TimedOut => dr_core::ExecutionState::TimedOut,
                dr_runner::ExecutionStatus::Running => dr_core::ExecutionState::Running,
                dr_runner::ExecutionStatus::Aborted => dr_core::ExecutionState::Aborted,
            },
        )?;
    }
    print_result(&result, &runner.child_executions(), args.output)?;
    Ok(exit_code(&result))
}

/// An execution's input from a file ("-": standard input), refused as
/// StartExecution refuses it: not JSON, or past the payload limit.
pub fn read_execution_input(path: &Path) -> DrResult<Value> {
    let input = crate::output::read_json(path, "input")?;
    let size = serde_json::to_string(&input).map(|s| s.len()).unwrap_or(0);
    if size > dr_runner::engine::PAYLOAD_LIMIT {
        return Err(DrError::InvalidInput(format!(
            "the input has {size} bytes; Step Functions starts no execution with an input over {} bytes",
            dr_runner::engine::PAYLOAD_LIMIT
        )));
    }
    Ok(input)
}

/// 0 when the execution succeeded; 2 when it refused its input before
/// touching anything (`InvalidInput`), as every drctl command does for a
/// request that can never succeed as given; 1 for any other failure.
fn exit_code(result: &ExecutionResult) -> ExitCode {
    if result.succeeded() {
        ExitCode::SUCCESS
    } else if result.error.as_deref() == Some("InvalidInput") {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

fn print_result(
    result: &ExecutionResult,
    children: &BTreeMap<String, dr_runner::ChildRecord>,
    format: OutputFormat,
) -> DrResult<()> {
    let text = match format {
        OutputFormat::Json => serde_json::to_string_pretty(&json!({
            "status": result.status,
            "output": result.output,
            "error": result.error,
            "cause": result.cause,
            "history": result.history,
            "max_payload_bytes": result.max_payload_bytes,
            "seconds": (result.stop_date - result.start_date).num_milliseconds() as f64 / 1000.0,
            "children": children,
        })),
        OutputFormat::Text => {
            eprintln!(
                "status: {}",
                serde_json::to_value(result.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            );
            if let Some(error) = &result.error {
                eprintln!(
                    "error: {error}\ncause: {}",
                    result.cause.as_deref().unwrap_or("")
                );
            }
            eprintln!(
                "history: {} events, largest payload {} bytes",
                result.history.len(),
                result.max_payload_bytes
            );
            for (arn, child) in children {
                eprintln!(
                    "child {arn}: {}, {} events, largest payload {} bytes",
                    serde_json::to_value(child.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    child.history_events,
                    child.max_payload_bytes
                );
            }
            serde_json::to_string_pretty(&result.output)
        }
    }
    .map_err(|e| DrError::Internal(format!("rendering the result: {e}")))?;
    println!("{text}");
    Ok(())
}

pub fn task(args: TaskArgs) -> DrResult<ExitCode> {
    let inbox = args.token_inbox.or_else(default_inbox).ok_or_else(|| {
        DrError::InvalidInput(
            "no token inbox: pass --token-inbox (as printed by drctl run) or set DRCTL_HOME"
                .to_owned(),
        )
    })?;
    let (token, outcome) = match args.command {
        TaskCommand::Success { token, output } => {
            let output: Value = serde_json::from_str(&output)
                .map_err(|e| DrError::InvalidInput(format!("--output is not JSON: {e}")))?;
            (token, TokenOutcome::Success { output })
        }
        TaskCommand::Failure {
            token,
            error,
            cause,
        } => (token, TokenOutcome::Failure { error, cause }),
    };
    let path = dr_runner::control::post_to_inbox(&inbox, &token, &outcome)
        .map_err(|e| DrError::InvalidInput(format!("posting to {}: {e}", inbox.display())))?;
    eprintln!("sent to {}", path.display());
    Ok(ExitCode::SUCCESS)
}
