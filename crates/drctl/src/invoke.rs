//! `drctl invoke`: run one function on a payload against the local stack, as
//! a schedule or a state machine would invoke it in AWS.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use dr_core::{DrError, DrResult};
use dr_scenarios::{dispatch, Function};
use serde_json::Value;

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The function: its crate name (probe-database) or template logical id (ProbeDatabaseFunction).
    function: String,
    /// JSON payload file ("-" for standard input); events/functions/<name>.json documents each.
    #[arg(long)]
    payload: PathBuf,
    /// Run against the local stack (required: invoking deployed functions from drctl is not built yet).
    #[arg(long)]
    local: bool,
}

pub fn function_named(name: &str) -> DrResult<Function> {
    Function::ALL
        .into_iter()
        .find(|f| f.crate_dir() == name || f.logical_id() == name)
        .ok_or_else(|| {
            DrError::InvalidInput(format!(
                "no function {name:?}; known: {}",
                Function::ALL.map(Function::crate_dir).join(", ")
            ))
        })
}

pub async fn run(args: InvokeArgs) -> DrResult<ExitCode> {
    if !args.local {
        return Err(DrError::InvalidInput(
            "invoking deployed functions from drctl is not built yet; pass --local (in AWS: aws lambda invoke)".to_owned(),
        ));
    }
    let function = function_named(&args.function)?;
    let text = if args.payload.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| DrError::InvalidInput(format!("reading standard input: {e}")))?
    } else {
        std::fs::read_to_string(&args.payload).map_err(|e| {
            DrError::InvalidInput(format!("reading {}: {e}", args.payload.display()))
        })?
    };
    let payload: Value = serde_json::from_str(&text)
        .map_err(|e| DrError::InvalidInput(format!("payload is not JSON: {e}")))?;
    let home = crate::local::existing_home(std::env::var_os("DRCTL_HOME").map(PathBuf::from))?;
    let platform = dr_local::LocalControlPlane::open(&home, None)?;
    let ports = crate::wiring::local_ports(&platform).await?;
    let output = dispatch(function, &ports, payload).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&output).map_err(|e| DrError::Internal(e.to_string()))?
    );
    Ok(ExitCode::SUCCESS)
}
