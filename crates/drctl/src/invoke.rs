//! `drctl invoke`: run one function on a payload against the local stack, as
//! a schedule or a state machine would invoke it in AWS.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use dr_core::{DrError, DrResult};
use dr_scenarios::{dispatch, Function};

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
    /// Fail a port operation inside the function, as for `drctl run --port-fault`:
    /// OPERATION:CALL[-LAST]:ERROR, e.g. DeleteInstance:1:NotReady (RDS refusing an
    /// instance it is still creating).
    #[arg(long = "port-fault", value_name = "OPERATION:CALL:ERROR")]
    port_faults: Vec<String>,
}

pub fn function_named(name: &str) -> DrResult<Function> {
    Function::named(name).ok_or_else(|| {
        DrError::InvalidInput(format!(
            "no function {name:?}; known: {}",
            Function::ALL.map(Function::name).join(", ")
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
    let port_faults = crate::port_faults::parse_all(&args.port_faults)?;
    let payload = crate::output::read_json(&args.payload, "payload")?;
    let home = crate::local::existing_home(std::env::var_os("DRCTL_HOME").map(PathBuf::from))?;
    let platform = dr_local::LocalControlPlane::open(&home, None)?;
    let ports =
        crate::port_faults::inject(crate::wiring::local_ports(&platform).await?, port_faults);
    let output = dispatch(function, &ports, payload).await?;
    crate::output::print_json(&output)?;
    Ok(ExitCode::SUCCESS)
}
