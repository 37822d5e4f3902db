//! `drctl readiness`: whether each scenario would work now, with the reason
//! when it would not. On the local stack it checks now (`--local --input`);
//! on AWS it shows the scheduled check's newest report from the reports
//! bucket. Exit 0 when every scenario is ready, 1 otherwise (or when the
//! newest check on AWS is too old to say anything about now), 2 for a
//! request that can never be checked.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use dr_core::{DrError, DrResult};
use dr_scenarios::readiness::{
    latest_report_key, readiness, report_prefix, ReadinessReport, ReadinessRequest,
    STALE_AFTER_SECONDS,
};

use crate::control::TargetArgs;
use crate::output::OutputFormat;

#[derive(Debug, Args)]
pub struct ReadinessArgs {
    /// With --local: the request ("-" for standard input): the database, the
    /// topics, and what the scenarios act on (events/readiness.json).
    #[arg(long)]
    input: Option<PathBuf>,
    /// On AWS: the database whose newest scheduled report to show.
    #[arg(long, default_value = "muejam")]
    database: String,
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

pub async fn run(args: ReadinessArgs) -> DrResult<ExitCode> {
    let report = if args.target.local {
        let input = args.input.as_ref().ok_or_else(|| {
            DrError::InvalidInput(
                "--local checks now and needs --input (events/readiness.json)".to_owned(),
            )
        })?;
        let home = crate::local::existing_home(std::env::var_os("DRCTL_HOME").map(PathBuf::from))?;
        let request: ReadinessRequest =
            serde_json::from_value(crate::output::read_json(input, "request")?)
                .map_err(|e| DrError::InvalidInput(format!("readiness request: {e}")))?;
        let platform = dr_local::LocalControlPlane::open(&home, None)?;
        let ports = crate::wiring::local_ports(&platform).await?;
        readiness(&ports, request).await?
    } else {
        if args.input.is_some() {
            return Err(DrError::InvalidInput(
                "on AWS the check runs every 30 minutes (ReadinessFunction); drctl shows its newest report: drop --input, or add --local".to_owned(),
            ));
        }
        newest_scheduled(&args).await?
    };
    let age = (chrono::Utc::now() - report.checked_at).num_seconds();
    let stale = !args.target.local && age > STALE_AFTER_SECONDS;
    match args.output {
        OutputFormat::Json => crate::output::print_json(&report)?,
        OutputFormat::Text => {
            print!("{}", dr_scenarios::readiness::table(&report));
            if stale {
                println!(
                    "\nSTALE: the newest check is {} old (the schedule runs every 30 minutes): it says nothing about now",
                    dr_scenarios::watch::human_duration(age as f64)
                );
            }
        }
    }
    Ok(if report.all_ready() && !stale {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The scheduled check's newest report of the database, from the bucket.
async fn newest_scheduled(args: &ReadinessArgs) -> DrResult<ReadinessReport> {
    let target = args.target.open(false).await?;
    let store = target.reports.as_deref().ok_or_else(|| {
        DrError::InvalidInput(
            "on AWS, pass --reports-bucket (the stack's ReportsBucketName output) or set DRCTL_REPORTS_BUCKET".to_owned(),
        )
    })?;
    let keys = store.list(&report_prefix(&args.database)).await?;
    let key = latest_report_key(&keys, &args.database).ok_or_else(|| {
        DrError::NotFound(format!(
            "no readiness report of {} in {}: has ReadinessFunction's schedule run?",
            args.database, target.reports_at
        ))
    })?;
    let body = store
        .get(&key)
        .await?
        .ok_or_else(|| DrError::NotFound(format!("{key} was removed while it was read")))?;
    serde_json::from_slice(&body)
        .map_err(|e| DrError::Internal(format!("{key} is not a readiness report: {e}")))
}
