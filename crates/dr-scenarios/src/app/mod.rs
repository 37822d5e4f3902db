//! Runbook "Application Server Failure": the app servers' Auto Scaling group
//! checked (healthy targets, instances, the health URL), raised to its floor
//! (never lowered), refreshed (or the running refresh joined), waited for,
//! and the health URL verified. Started by the app alarms through
//! EventBridge, or by hand.

pub mod report;
pub mod restart;
pub mod steps;

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::report::ExecutionInfo;
use crate::Ports;

pub const SCENARIO: &str = "app-server-recovery";

/// The group as the request names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetRequest {
    pub auto_scaling_group: String,
    /// Its load balancer target group: the healthy count is the target
    /// group's when given (what the load balancer routes to), the group's
    /// own health otherwise.
    #[serde(default)]
    pub target_group_arn: Option<String>,
    /// Default: the home region.
    #[serde(default)]
    pub region: Option<String>,
}

/// How long the run waits, and how often it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsRequest {
    #[serde(default)]
    pub poll_seconds: Option<u64>,
    /// The longest the run waits (for the refreshed fleet, a job, a rollout).
    #[serde(default)]
    pub max_wait_seconds: Option<u64>,
    /// Health URL checks after the fleet is back, before giving up.
    #[serde(default)]
    pub health_attempts: Option<u64>,
}

/// The execution input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRecoveryRequest {
    pub fleet: FleetRequest,
    /// The fewest servers the group is left with (runbook: 4). Signed here
    /// so that a negative number is refused by name, not by a parse error.
    pub capacity_floor: i64,
    /// `curl https://api.muejam.com/health`.
    pub health_url: String,
    #[serde(default)]
    pub health_timeout_ms: Option<u64>,
    #[serde(default)]
    pub limits: Option<LimitsRequest>,
    /// What started the run (the alarm's name, reason and time); kept for
    /// the report, never acted on.
    #[serde(default)]
    pub trigger: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppPlanInput {
    pub request: Value,
    pub execution: ExecutionInfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppLimits {
    pub poll_seconds: u64,
    /// Fleet status polls before the run gives up (max wait / poll).
    pub fleet_polls: u64,
    pub health_attempts: u64,
    pub health_timeout_ms: u64,
}

/// The fleet as the run found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetCheck {
    pub desired_capacity: u32,
    pub min_size: u32,
    pub max_size: u32,
    pub instances: Vec<FleetInstance>,
    pub healthy_targets: u32,
    pub unhealthy_targets: u32,
    pub health: HealthObservation,
}

/// What the plan concludes from the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assessment {
    /// Healthy: a false alarm, nothing is changed.
    pub healthy: bool,
    /// Every server passes but the health URL does not answer: the URL,
    /// the load balancer's DNS or certificate, or our own configuration is
    /// wrong, none of which new servers fix. Nothing is changed; on-call
    /// is paged.
    #[serde(default)]
    pub cannot_judge: bool,
    /// Why it is not healthy (empty when healthy).
    pub reasons: Vec<String>,
}

/// The validated request and what the fleet looked like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppPlan {
    pub recovery_id: String,
    pub fleet: FleetRef,
    /// What the recovery lock is taken on: one recovery of a group at a time.
    pub lock_resource: String,
    pub capacity_floor: u32,
    /// What the group is raised to: its desired capacity or the floor,
    /// whichever is higher.
    pub target_capacity: u32,
    pub health_url: String,
    pub limits: AppLimits,
    pub check: FleetCheck,
    pub assessment: Assessment,
    #[serde(default)]
    pub trigger: Option<Value>,
    pub rto_objective_seconds: f64,
}

pub const DEFAULT_POLL_SECONDS: u64 = 15;
pub const DEFAULT_MAX_WAIT_SECONDS: u64 = 1800;
pub const DEFAULT_HEALTH_ATTEMPTS: u64 = 5;
pub const DEFAULT_HEALTH_TIMEOUT_MS: u64 = 5000;
/// The most fleet polls a run makes: each costs history events (AWS ends an
/// execution at 25,000), so a long wait takes longer polls.
pub const MAX_FLEET_POLLS: u64 = 120;
pub const MAX_POLL_SECONDS: u64 = 300;
/// The longest wait for the fleet: the RTO.
pub const MAX_WAIT_SECONDS: u64 = 4 * 3600;
pub const MAX_HEALTH_ATTEMPTS: u64 = 10;

/// The timeouts a health check may be given, in milliseconds.
pub const HEALTH_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=30_000;

/// The caps of a scenario's polled wait and health checks (each poll costs
/// history events; the wait stays within the RTO).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitCaps {
    pub max_poll_seconds: u64,
    pub max_wait_seconds: u64,
    pub max_polls: u64,
    pub max_health_attempts: u64,
}

/// Pure: the polls of a wait of `max_wait` seconds every `poll_seconds`,
/// and the health checks' attempts and timeout, all within `caps`; else
/// `InvalidInput` naming the limit.
pub(crate) fn checked_waits(
    poll_seconds: u64,
    max_wait: u64,
    health_attempts: u64,
    health_timeout_ms: u64,
    caps: WaitCaps,
) -> DrResult<u64> {
    let WaitCaps {
        max_poll_seconds,
        max_wait_seconds,
        max_polls,
        max_health_attempts,
    } = caps;
    if !(1..=max_poll_seconds).contains(&poll_seconds) {
        return Err(DrError::InvalidInput(format!(
            "limits.poll_seconds {poll_seconds} is outside 1..={max_poll_seconds}"
        )));
    }
    if !(poll_seconds..=max_wait_seconds).contains(&max_wait) {
        return Err(DrError::InvalidInput(format!(
            "limits.max_wait_seconds {max_wait} is outside {poll_seconds}..={max_wait_seconds}"
        )));
    }
    if max_wait.div_ceil(poll_seconds) > max_polls {
        return Err(DrError::InvalidInput(format!(
            "limits: waiting {max_wait} s every {poll_seconds} s is more than {max_polls} polls; poll less often"
        )));
    }
    if !(1..=max_health_attempts).contains(&health_attempts) {
        return Err(DrError::InvalidInput(format!(
            "limits.health_attempts {health_attempts} is outside 1..={max_health_attempts}"
        )));
    }
    if !HEALTH_TIMEOUT_MS.contains(&health_timeout_ms) {
        return Err(DrError::InvalidInput(format!(
            "health_timeout_ms {health_timeout_ms} is outside {}..={}",
            HEALTH_TIMEOUT_MS.start(),
            HEALTH_TIMEOUT_MS.end()
        )));
    }
    Ok(max_wait.div_ceil(poll_seconds))
}

fn limits(request: &AppRecoveryRequest) -> DrResult<AppLimits> {
    let given = request.limits.unwrap_or(LimitsRequest {
        poll_seconds: None,
        max_wait_seconds: None,
        health_attempts: None,
    });
    let poll_seconds = given.poll_seconds.unwrap_or(DEFAULT_POLL_SECONDS);
    let max_wait = given.max_wait_seconds.unwrap_or(DEFAULT_MAX_WAIT_SECONDS);
    let health_attempts = given.health_attempts.unwrap_or(DEFAULT_HEALTH_ATTEMPTS);
    let health_timeout_ms = request
        .health_timeout_ms
        .unwrap_or(DEFAULT_HEALTH_TIMEOUT_MS);
    let fleet_polls = checked_waits(
        poll_seconds,
        max_wait,
        health_attempts,
        health_timeout_ms,
        WaitCaps {
            max_poll_seconds: MAX_POLL_SECONDS,
            max_wait_seconds: MAX_WAIT_SECONDS,
            max_polls: MAX_FLEET_POLLS,
            max_health_attempts: MAX_HEALTH_ATTEMPTS,
        },
    )?;
    Ok(AppLimits {
        poll_seconds,
        fleet_polls,
        health_attempts,
        health_timeout_ms,
    })
}

/// An Auto Scaling group name as AWS allows it (1-255 characters, no
/// colon: a colon would make it an ARN).
/// The deployment a request names, described; one that does not exist is
/// the request's mistake (`InvalidInput`, naming `field`), refused before
/// anything changes.
pub(crate) async fn existing_deployment(
    ports: &Ports,
    d: &DeploymentRef,
    field: &str,
) -> DrResult<DeploymentStatus> {
    ports
        .deployment
        .describe_deployment(d)
        .await
        .map_err(|e| match e {
            DrError::NotFound(m) => DrError::InvalidInput(format!(
                "{field}: {m}: the request names a deployment that does not exist (check namespace and name)"
            )),
            other => other,
        })
}

pub fn validate_group_name(name: &str) -> DrResult<()> {
    if name.is_empty()
        || name.chars().count() > 255
        || name.contains(':')
        || name.chars().any(|c| c.is_control())
    {
        return Err(DrError::InvalidInput(format!(
            "{:?} is not an Auto Scaling group name (1-255 characters, no colon)",
            crate::truncate_message(name)
        )));
    }
    Ok(())
}

/// A target group ARN: `arn:<partition>:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>`,
/// in the group's region (a target group serves its own region only).
pub fn validate_target_group_arn(arn: &str, region: &str) -> DrResult<()> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "elasticloadbalancing"
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5].starts_with("targetgroup/")
        && parts[5].split('/').count() == 3;
    if !ok {
        return Err(DrError::InvalidInput(format!(
            "{:?} is not a target group ARN (arn:aws:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>)",
            crate::truncate_message(arn)
        )));
    }
    if parts[3] != region {
        return Err(DrError::InvalidInput(format!(
            "the target group is in {}, the Auto Scaling group in {region}",
            parts[3]
        )));
    }
    Ok(())
}

/// Pure: is the fleet healthy, and why not. Healthy means the health URL
/// answers as expected, every instance the load balancer routes to passes,
/// and at least as many pass as the group wants (and at least one). Only
/// the servers' own evidence (too few pass, some fail) leads to a
/// recovery: a health URL that fails while every server passes cannot be
/// judged, since a mistyped URL must never replace a healthy fleet.
pub fn assess(check: &FleetCheck) -> Assessment {
    let mut reasons = Vec::new();
    if !check.health.healthy {
        reasons.push(format!(
            "{} answered {}{}",
            check.health.url,
            check
                .health
                .status
                .map_or_else(|| "nothing".to_owned(), |s| s.to_string()),
            check
                .health
                .detail
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ));
    }
    let wanted = check.desired_capacity.max(1);
    if check.healthy_targets < wanted {
        reasons.push(format!(
            "{} healthy server(s) of the {wanted} wanted",
            check.healthy_targets
        ));
    }
    if check.unhealthy_targets > 0 {
        reasons.push(format!(
            "{} server(s) fail their health check",
            check.unhealthy_targets
        ));
    }
    let servers_pass = check.healthy_targets >= wanted && check.unhealthy_targets == 0;
    Assessment {
        healthy: reasons.is_empty(),
        cannot_judge: servers_pass && !check.health.healthy,
        reasons,
    }
}

/// Pure: what the group is raised to; `InvalidInput` for a floor it cannot
/// hold.
pub fn target_capacity(floor: i64, status: &FleetStatus, group: &str) -> DrResult<(u32, u32)> {
    if floor < 1 {
        return Err(DrError::InvalidInput(format!(
            "capacity_floor {floor}: the floor must be at least 1 (a recovery to no server is none)"
        )));
    }
    let floor = u32::try_from(floor).unwrap_or(u32::MAX);
    if floor > status.max_size {
        return Err(DrError::InvalidInput(format!(
            "capacity_floor {floor} is above {group}'s maximum size {}: raise the group's MaxSize first, or ask for less",
            status.max_size
        )));
    }
    Ok((floor, status.desired_capacity.max(floor)))
}

/// Runbook step 1, "verify failure": the whole input checked, the group
/// described and the health URL called, before anything is changed.
pub async fn app_plan(ports: &Ports, input: AppPlanInput) -> DrResult<AppPlan> {
    let request: AppRecoveryRequest = serde_json::from_value(input.request).map_err(|e| {
        DrError::InvalidInput(format!(
            "app-server recovery input: {}",
            crate::truncate_message(&e.to_string())
        ))
    })?;
    validate_group_name(&request.fleet.auto_scaling_group)?;
    let region = request
        .fleet
        .region
        .clone()
        .unwrap_or_else(|| ports.regions.home_region().to_owned());
    validate_region(&region)?;
    // The alarm's rule sends "" when no target group is configured.
    let target_group_arn = request
        .fleet
        .target_group_arn
        .clone()
        .filter(|arn| !arn.is_empty());
    if let Some(arn) = &target_group_arn {
        validate_target_group_arn(arn, &region)?;
    }
    validate_health_url(&request.health_url)?;
    let limits = limits(&request)?;
    let fleet = FleetRef {
        auto_scaling_group: request.fleet.auto_scaling_group.clone(),
        target_group_arn,
        region: Some(region.clone()),
    };
    let status = ports
        .fleet
        .describe_fleet(&fleet)
        .await
        .map_err(|e| match e {
            DrError::NotFound(m) => DrError::InvalidInput(format!(
                "{m}: the request names a group that does not exist (check the name and region)"
            )),
            other => other,
        })?;
    let (floor, target) =
        target_capacity(request.capacity_floor, &status, &fleet.auto_scaling_group)?;
    let health = ports
        .health
        .check(&request.health_url, limits.health_timeout_ms, 200)
        .await?;
    let check = FleetCheck {
        desired_capacity: status.desired_capacity,
        min_size: status.min_size,
        max_size: status.max_size,
        instances: status.instances,
        healthy_targets: status.healthy_targets,
        unhealthy_targets: status.unhealthy_targets,
        health,
    };
    let assessment = assess(&check);
    Ok(AppPlan {
        recovery_id: input.execution.name,
        lock_resource: format!("fleet:{region}/{}", fleet.auto_scaling_group),
        fleet,
        capacity_floor: floor,
        target_capacity: target,
        health_url: request.health_url,
        limits,
        check,
        assessment,
        trigger: request.trigger,
        rto_objective_seconds: crate::report::RTO_OBJECTIVE_SECONDS,
    })
}

/// When the fleet was seen healthy through the health URL (the end of the
/// RTO), as the state machine records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(ok: bool) -> HealthObservation {
        HealthObservation {
            url: "https://api.muejam.com/health".into(),
            status: Some(if ok { 200 } else { 503 }),
            healthy: ok,
            latency_ms: 3,
            detail: (!ok).then(|| "database unreachable".into()),
            checked_at: "2026-11-28T03:00:00Z".parse().expect("t"),
        }
    }

    fn check(desired: u32, healthy: u32, unhealthy: u32, ok: bool) -> FleetCheck {
        FleetCheck {
            desired_capacity: desired,
            min_size: 0,
            max_size: 6,
            instances: Vec::new(),
            healthy_targets: healthy,
            unhealthy_targets: unhealthy,
            health: health(ok),
        }
    }

    #[test]
    fn a_fleet_is_healthy_only_when_everything_agrees() {
        // (desired, healthy, unhealthy, URL ok, healthy?, cannot judge?, reasons)
        let cases = [
            (2, 2, 0, true, true, false, 0),
            (2, 3, 0, true, true, false, 0),
            (2, 0, 2, false, false, false, 3),
            // Every server passes, the URL does not: never a recovery.
            (2, 2, 0, false, false, true, 1),
            (2, 1, 0, true, false, false, 1),
            (2, 1, 0, false, false, false, 2),
            (2, 2, 1, true, false, false, 1),
            // An empty group is never healthy, whatever answers the URL.
            (0, 0, 0, true, false, false, 1),
            (4, 2, 2, true, false, false, 2),
        ];
        for (desired, healthy, unhealthy, ok, expect, cannot_judge, reasons) in cases {
            let a = assess(&check(desired, healthy, unhealthy, ok));
            let case = format!("{desired} {healthy} {unhealthy} {ok}");
            assert_eq!(a.healthy, expect, "{case}");
            assert_eq!(a.cannot_judge, cannot_judge, "{case}");
            assert_eq!(a.reasons.len(), reasons, "{:?}", a.reasons);
        }
    }

    fn status(desired: u32, max: u32) -> FleetStatus {
        FleetStatus {
            desired_capacity: desired,
            min_size: 0,
            max_size: max,
            instances: Vec::new(),
            healthy_targets: 0,
            unhealthy_targets: 0,
        }
    }

    #[test]
    fn the_target_is_never_below_the_desired_capacity_nor_above_the_maximum() {
        // (floor, desired, max, Ok(target) or Err)
        let cases: [(i64, u32, u32, Option<u32>); 8] = [
            (4, 2, 6, Some(4)),
            (4, 5, 6, Some(5)),
            (4, 4, 4, Some(4)),
            (6, 0, 6, Some(6)),
            (7, 2, 6, None),
            (0, 2, 6, None),
            (-1, 2, 6, None),
            (i64::MAX, 2, 6, None),
        ];
        for (floor, desired, max, expect) in cases {
            let got = target_capacity(floor, &status(desired, max), "muejam-app");
            match expect {
                Some(t) => assert_eq!(got.expect("ok").1, t, "{floor} {desired} {max}"),
                None => assert!(
                    matches!(got, Err(DrError::InvalidInput(_))),
                    "{floor} {desired} {max}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn names_and_arns_are_checked() {
        assert!(validate_group_name("muejam-app").is_ok());
        for bad in ["", "arn:aws:autoscaling:x", "a\nb", &"x".repeat(256)] {
            assert!(validate_group_name(bad).is_err(), "{bad:?}");
        }
        let good = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/muejam-app/73e2d6bc24d8a067";
        assert!(validate_target_group_arn(good, "us-east-1").is_ok());
        assert!(validate_target_group_arn(good, "us-west-2").is_err());
        for bad in [
            "targetgroup/muejam-app/73e2d6bc24d8a067",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/x/1",
            "arn:aws:elasticloadbalancing:us-east-1:1234:targetgroup/muejam-app/73e2",
            "arn:aws:ec2:us-east-1:123456789012:targetgroup/a/b",
        ] {
            assert!(
                validate_target_group_arn(bad, "us-east-1").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn limits_default_and_refuse_nonsense() {
        let request = |limits: Value, timeout: Option<u64>| AppRecoveryRequest {
            fleet: FleetRequest {
                auto_scaling_group: "g".into(),
                target_group_arn: None,
                region: None,
            },
            capacity_floor: 2,
            health_url: "http://x/health".into(),
            health_timeout_ms: timeout,
            limits: serde_json::from_value(limits).expect("limits"),
            trigger: None,
        };
        let l = super::limits(&request(Value::Null, None)).expect("defaults");
        assert_eq!(
            l.fleet_polls,
            DEFAULT_MAX_WAIT_SECONDS / DEFAULT_POLL_SECONDS
        );
        let l = super::limits(&request(
            serde_json::json!({"poll_seconds": 7, "max_wait_seconds": 100}),
            None,
        ))
        .expect("ok");
        assert_eq!(l.fleet_polls, 15, "rounded up");
        for bad in [
            serde_json::json!({"poll_seconds": 0}),
            serde_json::json!({"poll_seconds": 301}),
            serde_json::json!({"max_wait_seconds": 100000}),
            serde_json::json!({"health_attempts": 0}),
            serde_json::json!({"health_attempts": 11}),
            serde_json::json!({"poll_seconds": 1, "max_wait_seconds": 121}),
        ] {
            assert!(super::limits(&request(bad.clone(), None)).is_err(), "{bad}");
        }
        assert!(super::limits(&request(Value::Null, Some(10))).is_err());
    }
}
