//! `drctl`, the operator CLI of MueJam disaster recovery.

mod app;
mod approve;
mod control;
mod estimate;
mod executions;
mod invoke;
mod local;
mod output;
mod port_faults;
mod readiness;
mod report;
mod run;
mod seed;
mod start;
mod verify;
mod watch;
mod wiring;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use dr_core::DrError;

#[derive(Debug, Parser)]
#[command(
    name = "drctl",
    version,
    about = "MueJam disaster recovery: runbook scenarios as code"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The local stack: PostgreSQL clusters playing RDS, and a moto server.
    Local(local::LocalArgs),
    /// Run a state machine on this machine with the local Step Functions runner.
    Run(run::RunArgs),
    /// Answer a task waiting for a token (approve or reject).
    Task(run::TaskArgs),
    /// Approve what an execution asks (by execution name): it goes on.
    Approve(approve::AnswerArgs),
    /// Reject what an execution asks (by execution name): nothing is changed.
    Reject(approve::AnswerArgs),
    /// Acknowledge a page (by the id its message shows): its climb of the escalation path stops.
    Ack(approve::AnswerArgs),
    /// Invoke one function on a payload, as a schedule or a Task state would.
    Invoke(invoke::InvokeArgs),
    /// Is this database consistent? Orphans per foreign key, unvalidated
    /// constraints, invalid indexes, amcheck, row counts, custom checks.
    VerifyIntegrity(verify::VerifyArgs),
    /// Would each scenario work now? Its preconditions, observed, with the
    /// reason when one is not met (exit 1 when a scenario is not ready).
    Readiness(readiness::ReadinessArgs),
    /// A run's report, by execution name, as Markdown or JSON.
    Report(report::ReportArgs),
    /// The running and recent runs, newest first.
    Executions(executions::ExecutionsArgs),
    /// The quarterly evidence pack: the drills' restore time and backup age
    /// as charts, with their reports linked (one HTML page).
    Evidence(report::EvidenceArgs),
    /// Start a scenario; the same trigger (input) twice starts it once.
    Start(start::StartArgs),
    /// Follow an execution as it runs, to its outcome and report (exit 0
    /// done, 1 someone must act, 3 stopped with nothing changed, 4 still
    /// running at --timeout).
    Watch(watch::WatchArgs),
    /// What RTO a scenario would achieve on AWS: its state machine run many
    /// times in simulated time over a simulated AWS with AWS's documented
    /// durations; where the time goes, its history, payloads and cost.
    Estimate(estimate::EstimateArgs),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DRCTL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    // `drctl local status | head` should end quietly, as other CLIs do.
    // SAFETY: set before any thread starts; restores the default disposition.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error[Internal]: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Local(args) => local::run(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Task(args) => run::task(args),
            Command::Approve(args) => approve::run(args, true).await,
            Command::Reject(args) => approve::run(args, false).await,
            Command::Ack(args) => approve::ack(args).await,
            Command::Invoke(args) => invoke::run(args).await,
            Command::VerifyIntegrity(args) => verify::run(args).await,
            Command::Readiness(args) => readiness::run(args).await,
            Command::Report(args) => report::run(args).await,
            Command::Executions(args) => executions::run(args).await,
            Command::Start(args) => start::run(args).await,
            Command::Evidence(args) => report::evidence(args).await,
            Command::Watch(args) => watch::run(args).await,
            Command::Estimate(args) => estimate::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error[{}]: {error}", error.name());
            exit_code_for(&error)
        }
    }
}

/// 2 for requests that can never succeed as given, 1 for everything else.
fn exit_code_for(error: &DrError) -> ExitCode {
    match error {
        DrError::InvalidInput(_) | DrError::NotFound(_) | DrError::AlreadyExists(_) => {
            ExitCode::from(2)
        }
        _ => ExitCode::FAILURE,
    }
}
