//! `drctl executions [<scenario>]`: the running and recent runs, newest
//! first, with their state as it really is (a local run whose process died
//! is ABORTED, as Step Functions shows a stopped one).

use std::process::ExitCode;

use chrono::Utc;
use clap::Args;
use dr_core::{DrResult, ExecutionSummary};
use serde::Serialize;

use crate::control::TargetArgs;
use crate::output::OutputFormat;

#[derive(Debug, Args)]
pub struct ExecutionsArgs {
    /// Only this scenario's runs (e.g. data-corruption).
    scenario: Option<String>,
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(Debug, Serialize)]
struct Row {
    #[serde(flatten)]
    summary: ExecutionSummary,
    /// Until it stopped, or until now while it runs.
    seconds: f64,
}

pub async fn run(args: ExecutionsArgs) -> DrResult<ExitCode> {
    let target = args.target.open(false).await?;
    let now = Utc::now();
    let rows: Vec<Row> = target
        .control
        .list(args.scenario.as_deref())
        .await?
        .into_iter()
        .map(|summary| Row {
            seconds: (summary.stopped_at.unwrap_or(now) - summary.started_at).num_milliseconds()
                as f64
                / 1000.0,
            summary,
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
                let s = &r.summary;
                println!(
                    "{:<36}  {:<30}  {:<10}  {:<25}  {:>9.1}",
                    s.name,
                    s.scenario,
                    s.state.as_str(),
                    s.started_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    r.seconds
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
