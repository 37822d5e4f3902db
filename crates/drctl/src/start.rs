//! `drctl start <scenario> --input F`: start a recovery under a name derived
//! from its trigger, so that starting it twice starts it once.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use dr_core::{DrError, DrResult, StartOutcome};
use dr_scenarios::watch::{derived_name, NAME_LIMIT};

use crate::control::TargetArgs;
use crate::output::OutputFormat;

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The scenario (the state machine's name without the prefix), e.g.
    /// database-failover.
    scenario: String,
    /// JSON input file ("-" for standard input).
    #[arg(long)]
    input: PathBuf,
    /// The execution's name (default: the scenario and a digest of the
    /// input: the same trigger always gets the same name).
    #[arg(long)]
    name: Option<String>,
    /// Locally: waits and retry intervals advance a simulated clock.
    #[arg(long)]
    virtual_time: bool,
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

/// Step Functions' rule for names: 1 to 80 characters, none of the
/// characters it refuses (whitespace, brackets, wildcards, control ones).
fn check_name(name: &str) -> DrResult<()> {
    let refused =
        |c: char| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c);
    if name.is_empty() || name.chars().count() > NAME_LIMIT || name.chars().any(refused) {
        return Err(DrError::InvalidInput(format!(
            "execution name {name:?}: 1 to {NAME_LIMIT} characters, no whitespace nor any of <>{{}}[]?*\"#%\\^|~`$&,;:/"
        )));
    }
    Ok(())
}

pub async fn run(args: StartArgs) -> DrResult<ExitCode> {
    if args.virtual_time && !args.target.local {
        return Err(DrError::InvalidInput(
            "--virtual-time is for the local runner (add --local)".to_owned(),
        ));
    }
    let input = crate::run::read_execution_input(&args.input)?;
    if !input.is_object() {
        return Err(DrError::InvalidInput(
            "the input is a JSON object (see events/<scenario>.json)".to_owned(),
        ));
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| derived_name(&args.scenario, &input));
    check_name(&name)?;
    if args.target.local {
        let definition =
            std::path::Path::new("statemachines").join(format!("{}.asl.json", args.scenario));
        if !definition.is_file() {
            return Err(DrError::NotFound(format!(
                "no scenario {:?} here ({} is missing; run drctl from the project's directory)",
                args.scenario,
                definition.display()
            )));
        }
    }
    let target = args.target.open(args.virtual_time).await?;
    let outcome = target.control.start(&args.scenario, &name, &input).await?;
    let local = if target.local { " --local" } else { "" };
    match args.output {
        OutputFormat::Json => crate::output::print_json(&outcome)?,
        OutputFormat::Text => {
            let s = outcome.summary();
            match &outcome {
                StartOutcome::New(_) => println!("started {} ({})", s.name, s.arn),
                StartOutcome::AlreadyRunning(_) => println!(
                    "already running since {}: {} ({}); nothing new was started",
                    s.started_at.to_rfc3339(),
                    s.name,
                    s.arn
                ),
                StartOutcome::AlreadyRan(_) => println!(
                    "already ran: {} {} (started {}); nothing new was started. To run this trigger again, pass --name",
                    s.name,
                    s.state.as_str(),
                    s.started_at.to_rfc3339()
                ),
            }
            println!("  follow: drctl watch {}{local}", s.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_names_follow_step_functions_rules() {
        for ok in [
            "database-failover-0123456789abcdef",
            "a",
            "drill_2026-Q4",
            &"x".repeat(80),
        ] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "two words",
            "a/b",
            "a:b",
            "tab\there",
            &"x".repeat(81),
            "q?",
        ] {
            assert_eq!(
                check_name(bad).map_err(|e| e.name()),
                Err("InvalidInput"),
                "{bad:?}"
            );
        }
    }
}
