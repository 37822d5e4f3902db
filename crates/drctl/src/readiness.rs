//! `drctl readiness`: whether each scenario would work now, with the reason
//! when it would not. Exit 0 when every scenario is ready, 1 otherwise, 2
//! for a request that can never be checked.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use dr_core::{DrError, DrResult};
use dr_scenarios::readiness::{readiness, ReadinessRequest};

use crate::output::OutputFormat;

#[derive(Debug, Args)]
pub struct ReadinessArgs {
    /// The request ("-" for standard input): the database, the topics, and
    /// what the scenarios act on (events/readiness.json documents it).
    #[arg(long)]
    input: PathBuf,
    /// Check the local stack (required: checking a deployment from drctl is
    /// not built yet).
    #[arg(long)]
    local: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

pub async fn run(args: ReadinessArgs) -> DrResult<ExitCode> {
    let home = crate::local::local_only_home(args.local, "checking a deployment's readiness")?;
    let request: ReadinessRequest =
        serde_json::from_value(crate::output::read_json(&args.input, "request")?)
            .map_err(|e| DrError::InvalidInput(format!("readiness request: {e}")))?;
    let platform = dr_local::LocalControlPlane::open(&home, None)?;
    let ports = crate::wiring::local_ports(&platform).await?;
    let report = readiness(&ports, request).await?;
    match args.output {
        OutputFormat::Json => crate::output::print_json(&report)?,
        OutputFormat::Text => print!("{}", dr_scenarios::readiness::table(&report)),
    }
    Ok(if report.all_ready() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
