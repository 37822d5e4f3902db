//! The app-server recovery's report: what the fleet looked like and why it
//! was judged down, what was changed (from the journal), where the refresh
//! and the fleet ended, the last health answer, and the RTO. Always sent
//! to the alerts topic: the alarm paged, the report says how it ended.

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::steps::RecoverFleetOutput;
use super::{AppPlan, FleetCheck, SCENARIO};
use crate::region::report::changes;
use crate::report::{
    caught_error, journal_of_details, publish_recovery, seconds, step_result, step_timeline,
    verdict, Objective, Outcome, RecoveryDocument,
};
use crate::Ports;

pub type AppReportInput = crate::report::RecoveryReportInput;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppReport {
    pub scenario: String,
    pub resource: String,
    pub region: Option<String>,
    pub execution_name: String,
    pub outcome: Outcome,
    pub passed: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The alarm (or person) that started the run.
    pub trigger: Option<String>,
    pub rto: Objective,
    /// The fleet when the run began, and why it was judged down.
    pub before: Option<FleetCheck>,
    pub reasons: Vec<String>,
    pub target_capacity: Option<u32>,
    /// The last look at the fleet and its refresh.
    pub after: Option<RecoverFleetOutput>,
    /// The last answer of the health URL.
    pub health: Option<HealthObservation>,
    pub warnings: Vec<String>,
    pub changes: Vec<String>,
    pub timeline: Vec<(String, String)>,
    pub error: Option<(String, String)>,
}

/// Pure: the report from the execution's data and the journal.
pub fn build(input: &AppReportInput, journal: &[JournalEntry]) -> AppReport {
    let d = &input.details;
    let plan: Option<AppPlan> = d
        .get("plan")
        .cloned()
        .and_then(|p| serde_json::from_value(p).ok());
    // The latest fleet view: the last status poll, else the refresh, else the raise.
    let after: Option<RecoverFleetOutput> = step_result(d, "fleet")
        .or_else(|| step_result(d, "refresh"))
        .or_else(|| step_result(d, "capacity"));
    let health: Option<HealthObservation> = step_result(d, "health");
    let verified_at: Option<DateTime<Utc>> = d
        .pointer("/verified/at")
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok());
    let healthy_now = health.as_ref().is_some_and(|h| h.healthy);
    let passed = match input.outcome {
        Outcome::Succeeded => verified_at.is_some() && healthy_now,
        Outcome::FalseAlarm => plan.as_ref().is_some_and(|p| p.assessment.healthy),
        _ => false,
    };
    let rto_seconds = (input.outcome == Outcome::Succeeded)
        .then_some(verified_at)
        .flatten()
        .map(|v| (v - input.execution.start_time).num_milliseconds() as f64 / 1000.0);
    let rto = Objective::measure(
        plan.as_ref()
            .map_or(crate::report::RTO_OBJECTIVE_SECONDS, |p| {
                p.rto_objective_seconds
            }),
        rto_seconds,
    );
    let mut warnings = Vec::new();
    if let Some(refresh) = step_result::<RecoverFleetOutput>(d, "refresh") {
        if refresh.joined {
            warnings.push(
                "an instance refresh was already running: this run followed it instead of starting another"
                    .to_owned(),
            );
        }
    }
    if let Some(a) = &after {
        if a.failed {
            warnings.push(format!(
                "the instance refresh ended {}: servers that fail right after launch point at the release itself (deployment rollback) or at what it depends on (the database)",
                a.refresh.as_ref().map_or("without success", |r| r.status.as_str())
            ));
        }
    }
    if input.outcome == Outcome::Failed && d.pointer("/too_slow").is_some() {
        warnings.push(format!(
            "the fleet was not back within the run's limit ({}): the refresh may still be running; look at it before starting another",
            plan.as_ref().map_or_else(
                || "its maximum wait".to_owned(),
                |p| seconds(Some((p.limits.fleet_polls * p.limits.poll_seconds) as f64))
            )
        ));
    }
    if input.outcome == Outcome::CannotConfirm {
        warnings.push(
            "every server passes its health check but the health URL does not answer as expected: nothing was changed (new servers would not fix a wrong URL, the load balancer, its DNS or certificate); check them"
                .to_owned(),
        );
    }
    if let Some(e) = d.get("release_error") {
        let (error, cause) = caught_error(e);
        warnings.push(format!(
            "the recovery lock was not released ({error}: {cause}): the next recovery of this group takes it over, since this run has ended"
        ));
    }
    let timeline = step_timeline(d);
    AppReport {
        scenario: SCENARIO.to_owned(),
        resource: plan.as_ref().map_or_else(
            || {
                d.pointer("/request/fleet/auto_scaling_group")
                    .and_then(Value::as_str)
                    .map_or_else(|| "unknown".to_owned(), |s| s.chars().take(255).collect())
            },
            |p| p.fleet.auto_scaling_group.clone(),
        ),
        region: plan.as_ref().and_then(|p| p.fleet.region.clone()),
        execution_name: input.execution.name.clone(),
        outcome: input.outcome,
        passed,
        started_at: input.execution.start_time,
        finished_at: input.finished_at,
        trigger: plan
            .as_ref()
            .and_then(|p| p.trigger.as_ref())
            .or_else(|| d.pointer("/request/trigger"))
            .map(|t| {
                t.get("alarm")
                    .and_then(Value::as_str)
                    .map_or_else(|| crate::truncate_message(&t.to_string()), str::to_owned)
            }),
        rto,
        reasons: plan
            .as_ref()
            .map(|p| p.assessment.reasons.clone())
            .unwrap_or_default(),
        before: plan.as_ref().map(|p| p.check.clone()),
        target_capacity: plan.as_ref().map(|p| p.target_capacity),
        after,
        health,
        warnings,
        changes: changes(journal),
        timeline,
        error: d.get("error").map(caught_error),
    }
}

pub fn markdown(r: &AppReport) -> String {
    let mut md = format!(
        "# App-server recovery report: {}\n\n**Result: {}** (outcome: {})\n\n\
         | | |\n|---|---|\n| Execution | `{}` |\n| Region | {} |\n| Started by | {} |\n\
         | Started | {} |\n| Finished | {} |\n| RTO | {} (objective {}) — {} |\n\
         | RPO | not applicable: the app servers hold no data |\n",
        r.resource,
        if r.passed { "PASSED" } else { "FAILED" },
        r.outcome.as_str(),
        r.execution_name,
        r.region.as_deref().unwrap_or("?"),
        r.trigger.as_deref().unwrap_or("a person"),
        r.started_at.to_rfc3339(),
        r.finished_at.to_rfc3339(),
        seconds(r.rto.achieved_seconds),
        seconds(Some(r.rto.objective_seconds)),
        verdict(r.rto.met),
    );
    if let Some((error, cause)) = &r.error {
        md.push_str(&format!("\n## Error\n\n`{error}`: {cause}\n"));
    }
    if !r.warnings.is_empty() {
        md.push_str("\n## Warnings\n\n");
        for w in &r.warnings {
            md.push_str(&format!("- {w}\n"));
        }
    }
    if let Some(b) = &r.before {
        md.push_str(&format!(
            "\n## The fleet when the run began\n\n{} of {} wanted servers healthy, {} failing; {} instance(s); health URL {}\n",
            b.healthy_targets,
            b.desired_capacity,
            b.unhealthy_targets,
            b.instances.len(),
            health_line(&b.health)
        ));
        if r.reasons.is_empty() {
            md.push_str("\nNothing was wrong: a false alarm, nothing was changed.\n");
        }
        for reason in &r.reasons {
            md.push_str(&format!("- {reason}\n"));
        }
    }
    if let Some(a) = &r.after {
        md.push_str(&format!(
            "\n## The fleet at the end\n\n{} of {} wanted servers healthy{}{}\n",
            a.healthy_targets,
            r.target_capacity.unwrap_or(a.desired_capacity),
            if a.unhealthy_targets > 0 {
                format!(", {} failing", a.unhealthy_targets)
            } else {
                String::new()
            },
            a.refresh
                .as_ref()
                .map(|f| format!(
                    "; instance refresh `{}` {}{}",
                    f.refresh_id,
                    f.status,
                    f.percentage_complete
                        .map(|p| format!(" ({p} %)"))
                        .unwrap_or_default()
                ))
                .unwrap_or_default()
        ));
    }
    if let Some(h) = &r.health {
        md.push_str(&format!("\n## Health verified\n\n{}\n", health_line(h)));
    }
    md.push_str(&changes_and_timeline(&r.changes, &r.timeline));
    md
}

/// The report's last two sections: every change, and the steps by time.
pub(crate) fn changes_and_timeline(changes: &[String], timeline: &[(String, String)]) -> String {
    let mut md = String::from("\n## Changes made\n\n");
    if changes.is_empty() {
        md.push_str("- none\n");
    }
    for change in changes {
        md.push_str(&format!("- {change}\n"));
    }
    md.push_str("\n## Timeline\n\n| Started | Step |\n|---|---|\n");
    for (at, name) in timeline {
        md.push_str(&format!("| {at} | {name} |\n"));
    }
    md
}

pub(crate) fn health_line(h: &HealthObservation) -> String {
    format!(
        "`{}` answered {} in {} ms{}{}",
        h.url,
        h.status
            .map_or_else(|| "nothing".to_owned(), |s| s.to_string()),
        h.latency_ms,
        if h.healthy {
            " (healthy)"
        } else {
            " (NOT healthy)"
        },
        h.detail
            .as_ref()
            .filter(|_| !h.healthy)
            .map(|d| format!(": {d}"))
            .unwrap_or_default()
    )
}

pub type AppReportOutput = crate::report::RecoveryReportOutput;

pub async fn app_report(ports: &Ports, input: AppReportInput) -> DrResult<AppReportOutput> {
    let journal = journal_of_details(ports, &input.details).await?;
    let report = build(&input, &journal);
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| DrError::Internal(format!("serializing the report: {e}")))?;
    let md = markdown(&report);
    publish_recovery(
        ports,
        RecoveryDocument {
            scenario: SCENARIO,
            title: format!("app-server recovery of {}", report.resource),
            outcome: report.outcome,
            passed: report.passed,
            started_at: report.started_at,
            execution_name: &report.execution_name,
            rto: &report.rto,
            rpo: &crate::report::RPO_NOT_APPLICABLE,
            json: &json,
            markdown: &md,
            details: &input.details,
        },
        Some(&input.topic_arn),
    )
    .await
}

/// The page of a run whose report failed: what the execution's data shows.
pub fn unreported(d: &Value) -> (String, String) {
    let group = d
        .pointer("/plan/fleet/auto_scaling_group")
        .or_else(|| d.pointer("/request/fleet/auto_scaling_group"))
        .and_then(Value::as_str)
        .map_or_else(
            || "the app servers".to_owned(),
            |s| s.chars().take(255).collect(),
        );
    let outcome = d
        .pointer("/conclusion/outcome")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let (error, cause) = d
        .get("report_error")
        .map(caught_error)
        .unwrap_or_else(|| ("an error".to_owned(), String::new()));
    let health = match d
        .pointer("/steps/health/result/healthy")
        .and_then(Value::as_bool)
    {
        Some(true) => "the health URL answered healthy at the end",
        Some(false) => "the health URL did NOT answer healthy at the end",
        None => "the health URL was not checked after the recovery",
    };
    (
        format!("[MueJam DR] app-server recovery of {group}: {outcome}, REPORT FAILED"),
        format!(
            "What happened: the app-server recovery of {group} ended {outcome}, but its report \
             could not be written or sent ({error}: {cause}).\n\nWhere things stand: {health}.\n\n\
             What to do next:\n- read the execution's history and the recovery journal (every \
             change, by the execution's name)\n- fix the report's cause (bucket, topic, key \
             permissions) so the next run reports"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ExecutionInfo;
    use serde_json::json;

    fn plan() -> Value {
        json!({
            "recovery_id": "app-1",
            "fleet": {"auto_scaling_group": "muejam-app", "target_group_arn": null, "region": "us-east-1"},
            "lock_resource": "fleet:us-east-1/muejam-app",
            "capacity_floor": 4,
            "target_capacity": 4,
            "health_url": "https://api.muejam.com/health",
            "limits": {"poll_seconds": 15, "fleet_polls": 120, "health_attempts": 5, "health_timeout_ms": 5000},
            "check": {
                "desired_capacity": 2, "min_size": 1, "max_size": 6, "instances": [],
                "healthy_targets": 0, "unhealthy_targets": 2,
                "health": {"url": "https://api.muejam.com/health", "status": 503, "healthy": false,
                           "latency_ms": 2, "detail": "no healthy targets", "checked_at": "2026-11-28T03:00:01Z"}
            },
            "assessment": {"healthy": false, "reasons": ["https://api.muejam.com/health answered 503", "0 healthy server(s) of the 2 wanted"]},
            "trigger": {"source": "cloudwatch-alarm", "alarm": "muejam-app-no-healthy-hosts"},
            "rto_objective_seconds": 14400.0
        })
    }

    fn input(outcome: Outcome, details: Value) -> AppReportInput {
        AppReportInput {
            execution: ExecutionInfo {
                id: "arn:x".into(),
                name: "app-1".into(),
                start_time: "2026-11-28T03:00:00Z".parse().expect("t"),
            },
            outcome,
            details,
            finished_at: "2026-11-28T03:20:00Z".parse().expect("t"),
            topic_arn: "t".into(),
        }
    }

    fn health(ok: bool) -> Value {
        json!({"url": "https://api.muejam.com/health", "status": if ok {200} else {503}, "healthy": ok,
               "latency_ms": 4, "detail": null, "checked_at": "2026-11-28T03:15:00Z"})
    }

    fn fleet(status: &str, healthy: u32, ready: bool, failed: bool) -> Value {
        json!({"auto_scaling_group": "muejam-app", "desired_capacity": 4, "healthy_targets": healthy,
               "unhealthy_targets": 0,
               "refresh": {"refresh_id": "rf-1", "status": status, "percentage_complete": 100, "started_at": null},
               "joined": false, "ready": ready, "failed": failed, "mutation": null})
    }

    #[test]
    fn passed_and_rto_come_only_from_what_was_verified() {
        // (outcome, verified, health ok, passed, RTO seconds)
        let cases = [
            (Outcome::Succeeded, true, true, true, Some(900.0)),
            (Outcome::Succeeded, false, true, false, None),
            (Outcome::Succeeded, true, false, false, Some(900.0)),
            (Outcome::Failed, false, false, false, None),
            (Outcome::Failed, true, true, false, None),
        ];
        for (outcome, verified, ok, passed, rto) in cases {
            let mut d = json!({"plan": plan(), "steps": {
                "fleet": {"started_at": "2026-11-28T03:10:00Z", "result": fleet("Successful", 4, true, false)},
                "health": {"started_at": "2026-11-28T03:15:00Z", "result": health(ok)}
            }});
            if verified {
                d["verified"] = json!({"at": "2026-11-28T03:15:00Z"});
            }
            let r = build(&input(outcome, d), &[]);
            assert_eq!(r.passed, passed, "{outcome:?} {verified} {ok}");
            assert_eq!(r.rto.achieved_seconds, rto, "{outcome:?} {verified} {ok}");
            assert_eq!(r.rto.met, rto.map(|_| true));
            assert_eq!(r.trigger.as_deref(), Some("muejam-app-no-healthy-hosts"));
        }
    }

    #[test]
    fn a_health_url_that_fails_while_every_server_passes_is_paged_not_passed() {
        let mut p = plan();
        p["assessment"] = json!({"healthy": false, "cannot_judge": true, "reasons": ["https://api.muejam.com/health answered 404"]});
        let r = build(&input(Outcome::CannotConfirm, json!({"plan": p})), &[]);
        assert!(!r.passed);
        assert!(
            r.warnings[0].contains("nothing was changed"),
            "{:?}",
            r.warnings
        );
        assert_eq!(r.rto.met, None);
    }

    #[test]
    fn a_false_alarm_passes_only_when_the_plan_found_the_fleet_healthy() {
        let mut p = plan();
        p["assessment"] = json!({"healthy": true, "reasons": []});
        let r = build(&input(Outcome::FalseAlarm, json!({"plan": p})), &[]);
        assert!(r.passed);
        assert_eq!(r.rto.met, None, "nothing recovered, nothing measured");
        assert!(markdown(&r).contains("false alarm, nothing was changed"));
        let r = build(&input(Outcome::FalseAlarm, json!({"plan": plan()})), &[]);
        assert!(!r.passed);
    }

    #[test]
    fn a_failed_refresh_and_a_slow_fleet_are_warned_of() {
        let d = json!({"plan": plan(), "too_slow": true, "steps": {
            "fleet": {"started_at": "2026-11-28T03:10:00Z", "result": fleet("Failed", 0, false, true)}},
            "error": {"Error": "RefreshFailed", "Cause": "the refresh ended Failed"}});
        let r = build(&input(Outcome::Failed, d), &[]);
        assert!(!r.passed);
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("ended Failed"));
        assert!(r.warnings[1].contains("30.0 min"));
        let md = markdown(&r);
        assert!(md.contains("`RefreshFailed`"));
        assert!(md.contains("instance refresh `rf-1` Failed"));
    }

    #[test]
    fn a_refused_input_names_the_group_it_was_given() {
        let d = json!({"request": {"fleet": {"auto_scaling_group": "muejam-ap"}},
                       "error": {"Error": "InvalidInput", "Cause": "Auto Scaling group muejam-ap not found"}});
        let r = build(&input(Outcome::Failed, d), &[]);
        assert_eq!(r.resource, "muejam-ap");
        assert!(!r.passed);
        assert!(markdown(&r).contains("not found"));
        let (subject, _) =
            unreported(&json!({"request": {"fleet": {"auto_scaling_group": "muejam-ap"}}}));
        assert!(subject.contains("muejam-ap"));
    }
}
