//! `drctl report <execution>`: the report a run left, as Markdown (to paste
//! into the post-mortem) or JSON.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use dr_core::{DrError, DrResult, ReportStore};
use dr_scenarios::report::report_keys_of;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Md,
    Json,
}

impl ReportFormat {
    fn extension(self) -> &'static str {
        match self {
            ReportFormat::Md => "md",
            ReportFormat::Json => "json",
        }
    }
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The execution's name.
    execution: String,
    /// Only this scenario's report (when two scenarios ran under one name).
    #[arg(long)]
    scenario: Option<String>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    format: ReportFormat,
    #[command(flatten)]
    target: crate::control::TargetArgs,
}

pub async fn run(args: ReportArgs) -> DrResult<ExitCode> {
    let target = args.target.open(false).await?;
    let store = target.reports.as_deref().ok_or_else(|| {
        DrError::InvalidInput(
            "on AWS, pass --reports-bucket (the stack's ReportsBucketName output) or set DRCTL_REPORTS_BUCKET".to_owned(),
        )
    })?;
    let body = find(store, &args).await?;
    print!("{}", String::from_utf8_lossy(&body));
    Ok(ExitCode::SUCCESS)
}

/// The newest report of the execution; several scenarios under one name
/// must be told apart with `--scenario`.
async fn find(store: &dyn ReportStore, args: &ReportArgs) -> DrResult<Vec<u8>> {
    let keys = store.list("").await?;
    let found = report_keys_of(
        &keys,
        &args.execution,
        args.scenario.as_deref(),
        args.format.extension(),
    );
    let scenarios: std::collections::BTreeSet<&str> = found
        .iter()
        .filter_map(|k| k.split_once('/').map(|(s, _)| s))
        .collect();
    if scenarios.len() > 1 {
        return Err(DrError::InvalidInput(format!(
            "{} names runs of several scenarios ({}): pass --scenario",
            args.execution,
            scenarios.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let Some(key) = found.last() else {
        return Err(DrError::NotFound(format!(
            "no {} report of execution {:?}{} (a run writes its report when it ends)",
            args.format.extension(),
            args.execution,
            args.scenario
                .as_deref()
                .map(|s| format!(" in {s}"))
                .unwrap_or_default()
        )));
    };
    store
        .get(key)
        .await?
        .ok_or_else(|| DrError::NotFound(format!("{key} was removed while it was read")))
}
