//! `drctl executions [<scenario>]`: the running and recent runs, newest
//! first, with their state as it really is (a run whose process died is
//! ABORTED).

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;
use dr_core::{DrResult, ExecutionState};
use serde::Serialize;

use crate::output::OutputFormat;

#[derive(Debug, Args)]
pub struct ExecutionsArgs {
    /// Only this scenario's runs (the state machine's name, e.g. data-corruption).
    scenario: Option<String>,
    /// The local runner's executions (required: listing a deployment's is
    /// not built yet; on AWS: aws stepfunctions list-executions).
    #[arg(long)]
    local: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(Debug, Serialize)]
struct Row {
    name: String,
    scenario: String,
    state: ExecutionState,
    started_at: DateTime<Utc>,
    stopped_at: Option<DateTime<Utc>>,
    /// Until it stopped, or until now while it runs.
    seconds: f64,
}

pub async fn run(args: ExecutionsArgs) -> DrResult<ExitCode> {
    let home = crate::local::local_only_home(
        args.local,
        "listing a deployment's executions (on AWS: aws stepfunctions list-executions)",
    )?;
    let now = Utc::now();
    let rows: Vec<Row> = dr_local::executions::LocalExecutions::new(&home)
        .list()?
        .into_iter()
        .filter(|r| {
            args.scenario
                .as_deref()
                .is_none_or(|s| s == r.state_machine)
        })
        .map(|r| Row {
            state: r.effective_state(),
            seconds: (r.stopped_at.unwrap_or(now) - r.started_at).num_milliseconds() as f64
                / 1000.0,
            name: r.name,
            scenario: r.state_machine,
            started_at: r.started_at,
            stopped_at: r.stopped_at,
        })
        .collect();
    match args.output {
        OutputFormat::Json => crate::output::print_json(&rows)?,
        OutputFormat::Text => {
            println!(
                "{:<36}  {:<30}  {:<10}  {:<25}  {:>9}",
                "NAME", "SCENARIO", "STATE", "STARTED", "SECONDS"
            );
            for r in &rows {
                println!(
                    "{:<36}  {:<30}  {:<10}  {:<25}  {:>9.1}",
                    r.name,
                    r.scenario,
                    r.state.as_str(),
                    r.started_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    r.seconds
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
