//! `drctl watch <execution>`: the execution's timeline as it happens (each
//! state, waits with their polls against the loop's bound, the RTO budget
//! left), then its outcome and its report; the exit code says what the
//! outcome asks of the operator.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use dr_core::{DrError, DrResult, ExecutionState, ReportStore};
use dr_scenarios::report::{report_keys_of, Outcome, RTO_OBJECTIVE_SECONDS};
use dr_scenarios::watch::{exit_code, human_duration, Timeline};
use serde_json::Value;

use crate::control::TargetArgs;

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The execution's name (or ARN).
    execution: String,
    /// Seconds between two looks at the execution (default: 0.25 locally,
    /// 2 on AWS, well within GetExecutionHistory's rate).
    #[arg(long)]
    interval: Option<f64>,
    /// Stop watching after this many seconds (exit 4 while it still runs).
    #[arg(long)]
    timeout: Option<f64>,
    #[command(flatten)]
    target: TargetArgs,
}

/// What the run's JSON report says, when there is one.
struct Reported {
    outcome: Option<Outcome>,
    passed: Option<bool>,
    rto: Option<f64>,
    rto_objective: Option<f64>,
    location: String,
}

async fn reported(
    store: &dyn ReportStore,
    reports_at: &str,
    name: &str,
    scenario: &str,
) -> DrResult<Option<Reported>> {
    let keys = store.list("").await?;
    let Some(key) = report_keys_of(&keys, name, Some(scenario), "json").pop() else {
        return Ok(None);
    };
    let Some(body) = store.get(&key).await? else {
        return Ok(None);
    };
    let report: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let markdown = key.trim_end_matches(".json").to_owned() + ".md";
    Ok(Some(Reported {
        outcome: serde_json::from_value(report["outcome"].clone()).ok(),
        passed: report["passed"].as_bool(),
        rto: report["rto"]["achieved_seconds"].as_f64(),
        rto_objective: report["rto"]["objective_seconds"].as_f64(),
        location: format!("{}/{markdown}", reports_at.trim_end_matches('/')),
    }))
}

pub async fn run(args: WatchArgs) -> DrResult<ExitCode> {
    if args.interval.is_some_and(|i| !(0.05..=600.0).contains(&i)) {
        return Err(DrError::InvalidInput(
            "--interval is between 0.05 and 600 seconds".to_owned(),
        ));
    }
    if args.timeout.is_some_and(|t| !(t > 0.0 && t.is_finite())) {
        return Err(DrError::InvalidInput("--timeout is positive".to_owned()));
    }
    let target = args.target.open(false).await?;
    let control = target.control.as_ref();
    let detail = control.describe(&args.execution).await?.ok_or_else(|| {
        DrError::NotFound(format!(
            "no execution {:?} {}",
            args.execution,
            if target.local {
                "on the local stack (drctl executions --local lists them)"
            } else {
                "in the deployment's state machines (drctl executions lists them)"
            }
        ))
    })?;
    let summary = detail.summary.clone();
    // The loops' bounds and the approvals come from the definition;
    // without it, polls are still counted.
    let definition = match control.definition(&summary.scenario).await {
        Ok(Some(definition)) => definition,
        _ => Value::Null,
    };
    let objective = detail
        .input
        .as_ref()
        .and_then(|i| i.get("rto_objective_seconds"))
        .and_then(Value::as_f64)
        .unwrap_or(RTO_OBJECTIVE_SECONDS);
    println!(
        "{} ({}), started {}, RTO objective {}",
        summary.name,
        summary.scenario,
        summary.started_at.to_rfc3339(),
        human_duration(objective)
    );
    let mut timeline = Timeline::new(summary.started_at, objective, &definition);
    let interval =
        Duration::from_secs_f64(
            args.interval
                .unwrap_or(if target.local { 0.25 } else { 2.0 }),
        );
    let until = args
        .timeout
        .map(|t| std::time::Instant::now() + Duration::from_secs_f64(t));
    let mut last = 0;
    let final_detail = loop {
        // The state first: the events read after it include its last ones.
        let now = control
            .describe(&summary.arn)
            .await?
            .unwrap_or(detail.clone());
        for event in control.events(&summary.arn, last).await? {
            last = last.max(event.id);
            if let Some(line) = timeline.line(&event) {
                println!("{line}");
            }
            if timeline.awaits_answer(&event) {
                let local = if target.local { " --local" } else { "" };
                println!(
                    "           approve: drctl approve {}{local} --reason '…'\n           reject:  drctl reject {}{local} --reason '…'",
                    summary.name, summary.name
                );
            }
        }
        if now.summary.state != ExecutionState::Running {
            break now;
        }
        if until.is_some_and(|u| std::time::Instant::now() >= u) {
            println!(
                "still RUNNING after {}; RTO left {}",
                human_duration((chrono::Utc::now() - summary.started_at).num_seconds() as f64),
                human_duration(timeline.rto_left(chrono::Utc::now()))
            );
            return Ok(ExitCode::from(exit_code(ExecutionState::Running, None)));
        }
        tokio::time::sleep(interval).await;
    };
    let state = final_detail.summary.state;
    let ran = final_detail
        .summary
        .stopped_at
        .map(|s| (s - summary.started_at).num_milliseconds() as f64 / 1000.0);
    println!(
        "{}{}{}",
        state.as_str(),
        ran.map(|r| format!(" after {}", human_duration(r)))
            .unwrap_or_default(),
        final_detail
            .error
            .as_deref()
            .map(|e| format!(": {e} {}", final_detail.cause.as_deref().unwrap_or("")))
            .unwrap_or_default()
            .trim_end()
    );
    let report = match target.reports.as_deref() {
        Some(store) => {
            reported(store, &target.reports_at, &summary.name, &summary.scenario).await?
        }
        None => None,
    };
    match &report {
        Some(r) => {
            let rto = match (r.rto, r.rto_objective) {
                (Some(a), Some(o)) => format!(
                    ", RTO {} of {} ({})",
                    human_duration(a),
                    human_duration(o),
                    if a <= o { "met" } else { "MISSED" }
                ),
                // Not measured is never met.
                _ => ", RTO not measured".to_owned(),
            };
            println!(
                "outcome: {}{}{rto}",
                r.outcome.map(Outcome::as_str).unwrap_or("unknown"),
                match r.passed {
                    Some(true) => ", passed",
                    Some(false) => ", NOT passed",
                    None => "",
                },
            );
            println!("report: {}", r.location);
        }
        None if target.reports.is_none() => println!(
            "report: in {} (pass --reports-bucket to read it here)",
            target.reports_at
        ),
        None => println!("report: none was written for {}", summary.name),
    }
    Ok(ExitCode::from(exit_code(
        state,
        report.and_then(|r| r.outcome),
    )))
}
