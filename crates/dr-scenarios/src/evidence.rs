//! The evidence policy of a failover, and how long a person may take to
//! decide when the evidence is not enough. Pure: every decision comes from
//! classified observations, and its reasons go in the report.

use chrono::{DateTime, Duration, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use crate::plan::ApprovalSettings;

/// What the control plane says of the primary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ControlPlaneView {
    /// It no longer knows the instance.
    Gone,
    Status {
        status: InstanceStatus,
    },
}

/// What our SQL probe found at the primary's endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeView {
    Answers,
    /// The database does not serve (refused, timed out, ...).
    Silent {
        failure: ProbeFailure,
    },
    /// Our probe cannot probe (credentials, TLS, DNS, secret, ...).
    Broken {
        failure: ProbeFailure,
    },
}

impl ProbeView {
    pub fn of(report: &ProbeReport) -> Self {
        match (report.healthy, report.failure) {
            (true, _) => ProbeView::Answers,
            (false, Some(f)) if f.class() == ProbeClass::DatabaseDown => {
                ProbeView::Silent { failure: f }
            }
            (false, Some(f)) => ProbeView::Broken { failure: f },
            // Unhealthy with no classification: never evidence of "down".
            (false, None) => ProbeView::Broken {
                failure: ProbeFailure::Misconfigured,
            },
        }
    }
}

/// What the failover may do about the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The primary serves: nothing to do.
    FalseAlarm,
    /// The control plane confirms the primary is down: fail over.
    Automatic,
    /// The evidence disagrees (a hung server, a partition, maintenance):
    /// a person decides before anything changes.
    Ask,
    /// We cannot judge (our probe is broken, or the views contradict each
    /// other): change nothing and page with what to fix.
    CannotConfirm,
    /// The primary is down (or may be) but the replica cannot take over
    /// (not available, too far behind): change nothing and page.
    Blocked,
    /// An earlier execution of this recovery decided and began to change
    /// things: finish what it began (every step is idempotent).
    Resume,
}

/// A decision and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub decision: Decision,
    pub reasons: Vec<String>,
    /// Whether the control plane itself says the primary is not available:
    /// then the failover may go on even if fencing fails.
    pub control_plane_confirms_down: bool,
}

/// The evidence policy. Our own broken probe never leads to a failover;
/// only the control plane's word that the primary is not available (or
/// gone) makes one automatic; an endpoint that is silent while the control
/// plane says `available` goes to a person.
pub fn evidence_policy(
    primary: &InstanceId,
    control: &ControlPlaneView,
    probe: ProbeView,
) -> Verdict {
    use InstanceStatus::*;
    let confirms_down = match control {
        ControlPlaneView::Gone => true,
        ControlPlaneView::Status { status } => matches!(status, Failed | Deleting),
    };
    let control_text = match control {
        ControlPlaneView::Gone => "the control plane no longer knows it".to_owned(),
        ControlPlaneView::Status { status } => format!("the control plane reports it {status}"),
    };
    let verdict = |decision, reasons: Vec<String>| Verdict {
        decision,
        reasons,
        control_plane_confirms_down: confirms_down,
    };
    match probe {
        ProbeView::Broken { failure } => verdict(
            Decision::CannotConfirm,
            vec![
                format!(
                    "our SQL probe of {primary} cannot probe ({}): {}",
                    failure.as_str(),
                    failure.remedy()
                ),
                format!("{control_text}; a broken probe is never evidence for a failover"),
            ],
        ),
        ProbeView::Answers => match control {
            ControlPlaneView::Gone => verdict(
                Decision::CannotConfirm,
                vec![format!(
                    "{primary} answers SQL but {control_text}: the registry or the endpoint is wrong"
                )],
            ),
            ControlPlaneView::Status { status } if *status == Available => verdict(
                Decision::FalseAlarm,
                vec![format!("{primary} is available and answers SQL")],
            ),
            ControlPlaneView::Status { .. } => verdict(
                Decision::FalseAlarm,
                vec![format!(
                    "{primary} answers SQL although {control_text}: it serves, so there is nothing to fail over"
                )],
            ),
        },
        ProbeView::Silent { failure } => {
            let silent = format!(
                "{primary} does not serve SQL ({})",
                failure.as_str()
            );
            match control {
                ControlPlaneView::Gone => verdict(Decision::Automatic, vec![silent, control_text]),
                ControlPlaneView::Status { status } => match status {
                    Failed | Deleting => verdict(Decision::Automatic, vec![silent, control_text]),
                    Available => verdict(
                        Decision::Ask,
                        vec![
                            silent,
                            format!(
                                "{control_text}: a hung server or a network partition; promoting while it may still take writes risks a split brain"
                            ),
                        ],
                    ),
                    Stopped => verdict(
                        Decision::Ask,
                        vec![silent, format!("{control_text}: someone may have stopped it on purpose")],
                    ),
                    Rebooting | Modifying | BackingUp | Creating => verdict(
                        Decision::Ask,
                        vec![
                            silent,
                            format!("{control_text}: an operation in progress; it may come back by itself"),
                        ],
                    ),
                },
            }
        }
    }
}

/// How long an approval may wait, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ApprovalWindow {
    pub timeout_seconds: u64,
    pub deadline: DateTime<Utc>,
    /// The RTO budget left when asking.
    pub rto_budget_left_seconds: f64,
    /// Whether even an immediate answer leaves the RTO met.
    pub rto_still_reachable: bool,
}

/// The approval deadline: the RTO budget left minus what the remaining
/// steps are expected to take, capped by configuration, never less than
/// the floor (a person must have time to read the question; the report
/// then says the RTO could not be met anyway).
pub fn approval_window(
    started: DateTime<Utc>,
    now: DateTime<Utc>,
    rto_objective_seconds: f64,
    settings: &ApprovalSettings,
) -> ApprovalWindow {
    let elapsed = (now - started).num_milliseconds() as f64 / 1000.0;
    let left = rto_objective_seconds - elapsed;
    let usable = left - settings.expected_remaining_seconds as f64;
    let timeout = if usable.is_finite() && usable > 0.0 {
        (usable.floor() as u64).min(settings.timeout_cap_seconds)
    } else {
        0
    }
    .max(settings.timeout_floor_seconds);
    ApprovalWindow {
        timeout_seconds: timeout,
        deadline: now + Duration::seconds(timeout as i64),
        rto_budget_left_seconds: left,
        rto_still_reachable: usable > 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceStatus::*;

    fn primary() -> InstanceId {
        InstanceId::parse("muejam-db-prod").expect("id")
    }

    #[test]
    fn control_plane_status_times_probe_class_gives_the_decision() {
        let silent = ProbeView::Silent {
            failure: ProbeFailure::TimedOut,
        };
        let refused = ProbeView::Silent {
            failure: ProbeFailure::Refused,
        };
        let broken = ProbeView::Broken {
            failure: ProbeFailure::Authentication,
        };
        let tls = ProbeView::Broken {
            failure: ProbeFailure::Tls,
        };
        let status = |s| ControlPlaneView::Status { status: s };
        let gone = ControlPlaneView::Gone;
        let table = [
            // (control plane, probe) -> decision, control plane confirms down
            (status(Failed), refused, Decision::Automatic, true),
            (status(Deleting), silent, Decision::Automatic, true),
            (gone.clone(), refused, Decision::Automatic, true),
            (status(Available), silent, Decision::Ask, false),
            (status(Available), refused, Decision::Ask, false),
            (status(Rebooting), refused, Decision::Ask, false),
            (status(Modifying), silent, Decision::Ask, false),
            (status(BackingUp), silent, Decision::Ask, false),
            (status(Stopped), refused, Decision::Ask, false),
            (
                status(Available),
                ProbeView::Answers,
                Decision::FalseAlarm,
                false,
            ),
            (
                status(Rebooting),
                ProbeView::Answers,
                Decision::FalseAlarm,
                false,
            ),
            (
                status(Failed),
                ProbeView::Answers,
                Decision::FalseAlarm,
                true,
            ),
            (
                gone.clone(),
                ProbeView::Answers,
                Decision::CannotConfirm,
                true,
            ),
            (status(Available), broken, Decision::CannotConfirm, false),
            (status(Failed), broken, Decision::CannotConfirm, true),
            (gone, tls, Decision::CannotConfirm, true),
            (status(Available), tls, Decision::CannotConfirm, false),
        ];
        for (control, probe, decision, confirms) in table {
            let verdict = evidence_policy(&primary(), &control, probe);
            assert_eq!(verdict.decision, decision, "{control:?} × {probe:?}");
            assert_eq!(verdict.control_plane_confirms_down, confirms, "{control:?}");
            assert!(!verdict.reasons.is_empty());
        }
    }

    #[test]
    fn a_broken_probe_names_what_to_fix() {
        let verdict = evidence_policy(
            &primary(),
            &ControlPlaneView::Status { status: Available },
            ProbeView::Broken {
                failure: ProbeFailure::SecretUnavailable,
            },
        );
        assert!(verdict.reasons[0].contains("secret_unavailable"));
        assert!(verdict.reasons[0].contains("check that it exists"));
    }

    #[test]
    fn an_unclassified_failure_is_never_evidence_of_down() {
        let report = ProbeReport {
            healthy: false,
            reason: Some("?".into()),
            failure: None,
            in_recovery: None,
            server_version: None,
            latency_ms: 0,
        };
        assert!(matches!(ProbeView::of(&report), ProbeView::Broken { .. }));
    }

    #[test]
    fn the_approval_deadline_is_the_rto_budget_left_minus_what_remains_capped_and_floored() {
        let start: DateTime<Utc> = "2026-11-27T03:00:00Z".parse().expect("t");
        let settings = ApprovalSettings {
            timeout_cap_seconds: 1800,
            timeout_floor_seconds: 60,
            expected_remaining_seconds: 900,
        };
        let at = |minutes: i64| start + Duration::minutes(minutes);
        let rto = 4.0 * 3600.0;
        // (minutes since start, RTO) -> timeout, still reachable
        let table = [
            (5, rto, 1800, true),   // plenty left: the cap
            (200, rto, 1500, true), // 40 min left - 15 expected = 25 min
            (224, rto, 60, true),   // 16 min left - 15 = 60 s
            (230, rto, 60, false),  // 10 min left: the floor, RTO lost anyway
            (300, rto, 60, false),  // already past the RTO
            (0, 600.0, 60, false),  // an RTO shorter than what remains
        ];
        for (minutes, rto, timeout, reachable) in table {
            let w = approval_window(start, at(minutes), rto, &settings);
            assert_eq!(w.timeout_seconds, timeout, "at +{minutes} min, RTO {rto}");
            assert_eq!(w.rto_still_reachable, reachable, "at +{minutes} min");
            assert_eq!(w.deadline, at(minutes) + Duration::seconds(timeout as i64));
        }
    }
}
