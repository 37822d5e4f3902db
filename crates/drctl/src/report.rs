//! `drctl report <execution>`: the report a run left, as Markdown (to paste
//! into the post-mortem), JSON, or a self-contained HTML page with the
//! timeline as a Gantt chart; `drctl evidence`: the quarterly evidence pack
//! of the drills.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use dr_core::{DrError, DrResult, ReportStore};
use dr_scenarios::report::report_keys_of;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Md,
    Json,
    Html,
}

impl ReportFormat {
    fn extension(self) -> &'static str {
        match self {
            ReportFormat::Md => "md",
            ReportFormat::Json => "json",
            ReportFormat::Html => "html",
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
    let body = match find(store, &args, args.format).await {
        // A report kept before pages were written: rendered from its JSON.
        Err(DrError::NotFound(_)) if args.format == ReportFormat::Html => {
            let json = find(store, &args, ReportFormat::Json).await?;
            let report: serde_json::Value = serde_json::from_slice(&json)
                .map_err(|e| DrError::Internal(format!("the JSON report is unreadable: {e}")))?;
            dr_scenarios::html::report_html(&report).into_bytes()
        }
        other => other?,
    };
    print!("{}", String::from_utf8_lossy(&body));
    Ok(ExitCode::SUCCESS)
}

/// The newest report of the execution; several scenarios under one name
/// must be told apart with `--scenario`.
async fn find(
    store: &dyn ReportStore,
    args: &ReportArgs,
    format: ReportFormat,
) -> DrResult<Vec<u8>> {
    let keys = store.list("").await?;
    let found = report_keys_of(
        &keys,
        &args.execution,
        args.scenario.as_deref(),
        format.extension(),
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
            format.extension(),
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

#[derive(Debug, Args)]
pub struct EvidenceArgs {
    /// The quarter, e.g. 2026-Q4 (default: the current one).
    #[arg(long)]
    quarter: Option<String>,
    /// Write the page here (default: standard output).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    #[command(flatten)]
    target: crate::control::TargetArgs,
}

/// `2026-Q4` → [2026-10-01, 2027-01-01).
fn quarter_bounds(
    quarter: &str,
) -> DrResult<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
    use chrono::TimeZone;
    let bad = || DrError::InvalidInput(format!("--quarter {quarter:?}: YYYY-Qn, e.g. 2026-Q4"));
    let (year, q) = quarter.split_once("-Q").ok_or_else(bad)?;
    let year: i32 = year.parse().map_err(|_| bad())?;
    let q: u32 = q
        .parse()
        .ok()
        .filter(|q| (1..=4).contains(q))
        .ok_or_else(bad)?;
    let start = chrono::Utc
        .with_ymd_and_hms(year, (q - 1) * 3 + 1, 1, 0, 0, 0)
        .single()
        .ok_or_else(bad)?;
    let end = if q == 4 {
        chrono::Utc.with_ymd_and_hms(year + 1, 1, 1, 0, 0, 0)
    } else {
        chrono::Utc.with_ymd_and_hms(year, q * 3 + 1, 1, 0, 0, 0)
    }
    .single()
    .ok_or_else(bad)?;
    Ok((start, end))
}

pub async fn evidence(args: EvidenceArgs) -> DrResult<ExitCode> {
    use chrono::Datelike;
    let quarter = args.quarter.clone().unwrap_or_else(|| {
        let now = chrono::Utc::now();
        format!("{}-Q{}", now.year(), (now.month() - 1) / 3 + 1)
    });
    let (from, until) = quarter_bounds(&quarter)?;
    let target = args.target.open(false).await?;
    let store = target.reports.as_deref().ok_or_else(|| {
        DrError::InvalidInput(
            "on AWS, pass --reports-bucket (the stack's ReportsBucketName output) or set DRCTL_REPORTS_BUCKET".to_owned(),
        )
    })?;
    let mut drills = Vec::new();
    for key in store.list("dr-drill/").await? {
        let Some(stem) = key.strip_suffix(".json") else {
            continue;
        };
        if key == dr_scenarios::drill_report::LATEST_KEY {
            continue;
        }
        let Some(body) = store.get(&key).await? else {
            continue;
        };
        let Ok(report) = serde_json::from_slice::<serde_json::Value>(&body) else {
            continue;
        };
        // Next to the pack when it is written beside the reports; the
        // store's own address otherwise.
        let link = format!("{}/{stem}.html", target.reports_at.trim_end_matches('/'));
        if let Some(point) = dr_scenarios::html::drill_point(&report, &link) {
            if point.started_at >= from && point.started_at < until {
                drills.push(point);
            }
        }
    }
    let page = dr_scenarios::html::evidence_html(&quarter, &drills);
    match &args.out {
        Some(path) => {
            std::fs::write(path, page)
                .map_err(|e| DrError::InvalidInput(format!("writing {}: {e}", path.display())))?;
            eprintln!(
                "{} drill(s) of {quarter} in {}",
                drills.len(),
                path.display()
            );
        }
        None => print!("{page}"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarters_are_their_three_months() {
        let cases = [
            ("2026-Q1", Some(("2026-01-01", "2026-04-01"))),
            ("2026-Q4", Some(("2026-10-01", "2027-01-01"))),
            ("2026-Q5", None),
            ("2026-4", None),
            ("Q4-2026", None),
        ];
        for (q, want) in cases {
            let got = quarter_bounds(q).ok().map(|(a, b)| {
                (
                    a.format("%Y-%m-%d").to_string(),
                    b.format("%Y-%m-%d").to_string(),
                )
            });
            assert_eq!(got, want.map(|(a, b)| (a.to_owned(), b.to_owned())), "{q}");
        }
    }
}
