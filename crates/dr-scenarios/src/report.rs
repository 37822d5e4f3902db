//! The report every scenario ends with, success or failure: timeline, every
//! mutation, measured RTO and RPO against the objectives. JSON + Markdown,
//! kept in the report store, summarised to SNS.

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::notify::{mutations, text};
use crate::Ports;

pub const RTO_OBJECTIVE_SECONDS: f64 = 4.0 * 3600.0;
pub const RPO_OBJECTIVE_SECONDS: f64 = 6.0 * 3600.0;

pub(crate) fn default_rto() -> f64 {
    RTO_OBJECTIVE_SECONDS
}

pub(crate) fn default_rpo() -> f64 {
    RPO_OBJECTIVE_SECONDS
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    FalseAlarm,
    AlreadyRunning,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionInfo {
    pub id: String,
    pub name: String,
    pub start_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    pub scenario: String,
    pub resource: String,
    pub execution: ExecutionInfo,
    pub outcome: Outcome,
    /// The execution's data: `request`, `steps` (each `{started_at, result}`), `error`.
    pub details: Value,
    /// When the recovery was verified (the end of the RTO).
    #[serde(default)]
    pub recovery_verified_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    #[serde(default)]
    pub topic_arn: Option<String>,
    #[serde(default = "default_rto")]
    pub rto_objective_seconds: f64,
    #[serde(default = "default_rpo")]
    pub rpo_objective_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub step: String,
    pub started_at: String,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub objective_seconds: f64,
    pub achieved_seconds: Option<f64>,
    /// `None` when nothing was measured (no recovery, no promotion).
    pub met: Option<bool>,
}

/// The report document (also what is stored as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub resource: String,
    pub execution_id: String,
    pub execution_name: String,
    pub outcome: Outcome,
    pub passed: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub rto: Objective,
    pub rpo: Objective,
    pub timeline: Vec<TimelineEntry>,
    pub mutations: Vec<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportOutput {
    pub outcome: Outcome,
    pub passed: bool,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    pub json_location: String,
    pub markdown_location: String,
    pub message_id: Option<String>,
}

fn summarize(result: &Value) -> String {
    if let Some(m) = result.get("mutation").and_then(Value::as_str) {
        return m.to_owned();
    }
    if let Some(healthy) = result.get("healthy").and_then(Value::as_bool) {
        return match (healthy, result.get("reason").and_then(Value::as_str)) {
            (true, _) => format!(
                "{} is healthy",
                result
                    .get("instance_id")
                    .and_then(Value::as_str)
                    .unwrap_or("instance")
            ),
            (false, Some(reason)) => format!("unhealthy: {reason}"),
            (false, None) => "unhealthy".to_owned(),
        };
    }
    if let Some(status) = result.get("status").and_then(Value::as_str) {
        return format!("status {status}");
    }
    if let Some(subject) = result.get("subject").and_then(Value::as_str) {
        return format!("notified: {subject}");
    }
    "done".to_owned()
}

/// Builds the report from the execution's data.
pub fn build(input: &ReportInput) -> Report {
    let mut timeline: Vec<TimelineEntry> = input
        .details
        .get("steps")
        .and_then(Value::as_object)
        .map(|steps| {
            steps
                .iter()
                .filter_map(|(name, step)| {
                    Some(TimelineEntry {
                        step: name.clone(),
                        started_at: step.get("started_at")?.as_str()?.to_owned(),
                        summary: step
                            .get("result")
                            .map(summarize)
                            .unwrap_or_else(|| "done".to_owned()),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    timeline.sort_by(|a, b| {
        a.started_at
            .cmp(&b.started_at)
            .then_with(|| a.step.cmp(&b.step))
    });
    let rto_seconds = match (input.outcome, input.recovery_verified_at) {
        (Outcome::Succeeded, Some(at)) => {
            Some((at - input.execution.start_time).num_milliseconds() as f64 / 1000.0)
        }
        _ => None,
    };
    let rpo_seconds = input
        .details
        .get("steps")
        .and_then(Value::as_object)
        .and_then(|steps| {
            steps.values().find_map(|s| {
                s.pointer("/result/lag_at_promotion_seconds")
                    .and_then(Value::as_f64)
            })
        });
    let rto = Objective {
        objective_seconds: input.rto_objective_seconds,
        achieved_seconds: rto_seconds,
        met: rto_seconds.map(|s| s <= input.rto_objective_seconds),
    };
    let rpo = Objective {
        objective_seconds: input.rpo_objective_seconds,
        achieved_seconds: rpo_seconds,
        met: rpo_seconds.map(|s| s <= input.rpo_objective_seconds),
    };
    let passed = match input.outcome {
        Outcome::Succeeded => rto.met != Some(false) && rpo.met != Some(false),
        Outcome::FalseAlarm | Outcome::AlreadyRunning => true,
        Outcome::Failed => false,
    };
    Report {
        scenario: input.scenario.clone(),
        resource: input.resource.clone(),
        execution_id: input.execution.id.clone(),
        execution_name: input.execution.name.clone(),
        outcome: input.outcome,
        passed,
        started_at: input.execution.start_time,
        finished_at: input.finished_at,
        rto,
        rpo,
        timeline,
        mutations: mutations(&input.details),
        error: text(&input.details, "/error/Error"),
        cause: text(&input.details, "/error/Cause"),
    }
}

pub(crate) fn seconds(s: Option<f64>) -> String {
    match s {
        Some(s) if s >= 3600.0 => format!("{:.2} h", s / 3600.0),
        Some(s) if s >= 60.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{s:.1} s"),
        None => "not measured".to_owned(),
    }
}

pub(crate) fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "MET",
        Some(false) => "MISSED",
        None => "n/a",
    }
}

pub fn markdown(report: &Report) -> String {
    let outcome = serde_json::to_value(report.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut md = format!(
        "# {} report: {}\n\n**Result: {}** (outcome: {outcome})\n\n\
         | | |\n|---|---|\n| Execution | `{}` |\n| Started | {} |\n| Finished | {} |\n\
         | RTO | {} (objective {}) — {} |\n| RPO (data loss window) | {} (objective {}) — {} |\n",
        report.scenario,
        report.resource,
        if report.passed { "PASSED" } else { "FAILED" },
        report.execution_name,
        report.started_at.to_rfc3339(),
        report.finished_at.to_rfc3339(),
        seconds(report.rto.achieved_seconds),
        seconds(Some(report.rto.objective_seconds)),
        verdict(report.rto.met),
        seconds(report.rpo.achieved_seconds),
        seconds(Some(report.rpo.objective_seconds)),
        verdict(report.rpo.met),
    );
    if let Some(error) = &report.error {
        md.push_str(&format!(
            "\n## Error\n\n`{error}`: {}\n",
            report.cause.as_deref().unwrap_or("")
        ));
    }
    md.push_str("\n## Changes made\n\n");
    if report.mutations.is_empty() {
        md.push_str("- none\n");
    }
    for m in &report.mutations {
        md.push_str(&format!("- {m}\n"));
    }
    md.push_str("\n## Timeline\n\n| Started | Step | What happened |\n|---|---|---|\n");
    for entry in &report.timeline {
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            entry.started_at,
            entry.step,
            entry.summary.replace('|', "\\|")
        ));
    }
    md
}

/// A rendered report, ready to be kept and announced.
pub(crate) struct ReportDocument<'a> {
    pub scenario: &'a str,
    pub started_at: DateTime<Utc>,
    pub execution_name: &'a str,
    pub json: &'a [u8],
    pub markdown: &'a str,
    pub passed: bool,
}

pub(crate) struct Published {
    pub json_location: String,
    pub markdown_location: String,
    pub message_id: Option<String>,
}

/// Keeps a report as `<scenario>/<start>-<execution>.json|.md` in the report
/// store and, when a topic is given, sends its Markdown to the people on it.
pub(crate) async fn publish(
    ports: &Ports,
    document: &ReportDocument<'_>,
    topic: Option<&str>,
    subject: String,
) -> DrResult<Published> {
    let name: String = document
        .execution_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let key = format!(
        "{}/{}-{name}",
        document.scenario,
        document.started_at.format("%Y%m%dT%H%M%SZ")
    );
    let json_location = ports
        .reports
        .put(&format!("{key}.json"), "application/json", document.json)
        .await?;
    let markdown_location = ports
        .reports
        .put(
            &format!("{key}.md"),
            "text/markdown",
            document.markdown.as_bytes(),
        )
        .await?;
    let message_id = match topic {
        Some(topic) => Some(
            ports
                .notifier
                .publish(&Notification {
                    topic: topic.to_owned(),
                    subject,
                    body: format!("{}\nFull report: {json_location}\n", document.markdown),
                    attributes: [
                        ("scenario".to_owned(), document.scenario.to_owned()),
                        ("event".to_owned(), "report".to_owned()),
                        ("passed".to_owned(), document.passed.to_string()),
                    ]
                    .into(),
                })
                .await?,
        ),
        None => None,
    };
    Ok(Published {
        json_location,
        markdown_location,
        message_id,
    })
}

pub async fn report(ports: &Ports, input: ReportInput) -> DrResult<ReportOutput> {
    if input.scenario.is_empty()
        || !input
            .scenario
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(DrError::InvalidInput(
            "scenario must be letters, digits and hyphens".to_owned(),
        ));
    }
    let report = build(&input);
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| DrError::Internal(format!("rendering the report: {e}")))?;
    let subject = format!(
        "[MueJam DR] Report: {} of {} {} (RTO {}, RPO {})",
        report.scenario,
        report.resource,
        if report.passed { "PASSED" } else { "FAILED" },
        seconds(report.rto.achieved_seconds),
        seconds(report.rpo.achieved_seconds)
    );
    let Published {
        json_location,
        markdown_location,
        message_id,
    } = publish(
        ports,
        &ReportDocument {
            scenario: &report.scenario,
            started_at: report.started_at,
            execution_name: &report.execution_name,
            json: &json,
            markdown: &markdown(&report),
            passed: report.passed,
        },
        input.topic_arn.as_deref(),
        subject,
    )
    .await?;
    Ok(ReportOutput {
        outcome: report.outcome,
        passed: report.passed,
        rto_seconds: report.rto.achieved_seconds,
        rpo_seconds: report.rpo.achieved_seconds,
        json_location,
        markdown_location,
        message_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(outcome: Outcome, verified: Option<&str>) -> ReportInput {
        ReportInput {
            scenario: "database-failover".to_owned(),
            resource: "muejam-db-prod".to_owned(),
            execution: ExecutionInfo {
                id: "arn:x".to_owned(),
                name: "run-1".to_owned(),
                start_time: "2026-11-26T03:00:00Z".parse().expect("ts"),
            },
            outcome,
            details: json!({"steps": {
                "confirm": {"started_at": "2026-11-26T03:00:00.100Z", "result": {"healthy": false, "reason": "Unavailable: refused"}},
                "promote": {"started_at": "2026-11-26T03:00:01.000Z", "result": {"lag_at_promotion_seconds": 2.5, "mutation": "promoted X"}},
                "dns": {"started_at": "2026-11-26T03:00:40.000Z", "result": {"mutation": "pointed db at X"}}
            }}),
            recovery_verified_at: verified.map(|v| v.parse().expect("ts")),
            finished_at: "2026-11-26T03:02:00Z".parse().expect("ts"),
            topic_arn: None,
            rto_objective_seconds: RTO_OBJECTIVE_SECONDS,
            rpo_objective_seconds: RPO_OBJECTIVE_SECONDS,
        }
    }

    #[test]
    fn rto_is_start_to_verified_and_rpo_the_lag_at_promotion() {
        let report = build(&input(Outcome::Succeeded, Some("2026-11-26T03:01:30Z")));
        assert_eq!(report.rto.achieved_seconds, Some(90.0));
        assert_eq!(report.rto.met, Some(true));
        assert_eq!(report.rpo.achieved_seconds, Some(2.5));
        assert!(report.passed);
        assert_eq!(report.mutations, vec!["promoted X", "pointed db at X"]);
        let steps: Vec<&str> = report.timeline.iter().map(|t| t.step.as_str()).collect();
        assert_eq!(steps, vec!["confirm", "promote", "dns"]);
        let md = markdown(&report);
        assert!(md.contains("**Result: PASSED**"));
        assert!(
            md.contains("| RTO | 1.5 min (objective 4.00 h) — MET |"),
            "{md}"
        );
    }

    #[test]
    fn an_objective_missed_fails_the_report_and_a_failure_has_no_rto() {
        let mut late = input(Outcome::Succeeded, Some("2026-11-26T08:00:00Z"));
        late.rto_objective_seconds = 4.0 * 3600.0;
        let report = build(&late);
        assert_eq!(report.rto.met, Some(false));
        assert!(!report.passed);
        let failed = build(&input(Outcome::Failed, None));
        assert_eq!(failed.rto.achieved_seconds, None);
        assert!(!failed.passed);
    }
}
