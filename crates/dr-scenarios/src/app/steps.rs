//! The app-server recovery's steps: raise the group to its floor, refresh
//! it (or join the refresh already running), follow it, and call the health
//! URL.

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use crate::journal::{journaled, JournalRef, Journaled};
use crate::Ports;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum RecoverFleetInput {
    /// Runbook `set-desired-capacity`: raise to `capacity` (never lower).
    Raise {
        fleet: FleetRef,
        capacity: u32,
        journal: JournalRef,
    },
    /// Runbook `start-instance-refresh`: start one, or join the running one.
    Refresh {
        fleet: FleetRef,
        journal: JournalRef,
    },
    /// The refresh's progress and the fleet's healthy count against `capacity`.
    Status {
        fleet: FleetRef,
        refresh_id: String,
        capacity: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverFleetOutput {
    pub auto_scaling_group: String,
    pub desired_capacity: u32,
    pub healthy_targets: u32,
    pub unhealthy_targets: u32,
    #[serde(default)]
    pub refresh: Option<InstanceRefresh>,
    /// The refresh was already running when this run asked for one.
    #[serde(default)]
    pub joined: bool,
    /// Refresh finished successfully and enough targets pass.
    pub ready: bool,
    /// The refresh ended without success: waiting longer will not help.
    pub failed: bool,
    pub mutation: Option<String>,
}

impl Journaled for RecoverFleetOutput {
    fn change(&self) -> Option<String> {
        self.mutation.clone()
    }
}

/// Instance refresh statuses that are final and not a success (Auto Scaling
/// API reference, `InstanceRefresh.Status`).
pub const REFRESH_FAILED: [&str; 5] = [
    "Failed",
    "Cancelled",
    "Cancelling",
    "RollbackSuccessful",
    "RollbackFailed",
];

/// Pure: where a refresh and the fleet stand: (ready, failed).
pub fn refresh_progress(refresh: &InstanceRefresh, healthy: u32, capacity: u32) -> (bool, bool) {
    let failed =
        REFRESH_FAILED.contains(&refresh.status.as_str()) || refresh.status == "RollbackInProgress";
    let ready = refresh.status == "Successful" && healthy >= capacity.max(1);
    (ready, failed)
}

/// Pure: a refresh that began well before we asked was already running
/// (Auto Scaling answers a start with the running one's id): joined, not
/// started. Clocks may differ by a few seconds.
pub fn joined(refresh: &InstanceRefresh, asked_at: DateTime<Utc>) -> bool {
    refresh
        .started_at
        .is_some_and(|s| s < asked_at - chrono::Duration::seconds(5))
}

fn region_of(fleet: &FleetRef) -> DrResult<&str> {
    let region = fleet
        .region
        .as_deref()
        .ok_or_else(|| DrError::InvalidInput("the fleet's region is missing".into()))?;
    validate_region(region)?;
    crate::app::validate_group_name(&fleet.auto_scaling_group)?;
    Ok(region)
}

pub async fn recover_fleet(
    ports: &Ports,
    input: RecoverFleetInput,
) -> DrResult<RecoverFleetOutput> {
    match input {
        RecoverFleetInput::Raise {
            fleet,
            capacity,
            journal,
        } => {
            let region = region_of(&fleet)?.to_owned();
            let group = fleet.auto_scaling_group.clone();
            let what = format!("raising {group} in {region} to {capacity}");
            journaled(ports, Some(&journal), "capacity", &what, async {
                let before = ports.fleet.describe_fleet(&fleet).await?;
                if capacity > before.max_size {
                    return Err(DrError::InvalidInput(format!(
                        "{capacity} servers asked of {group}, whose maximum is {}",
                        before.max_size
                    )));
                }
                let raise = before.desired_capacity < capacity;
                if raise {
                    ports.fleet.set_desired_capacity(&fleet, capacity).await?;
                }
                let after = ports.fleet.describe_fleet(&fleet).await?;
                Ok(RecoverFleetOutput {
                    auto_scaling_group: group.clone(),
                    desired_capacity: after.desired_capacity,
                    healthy_targets: after.healthy_targets,
                    unhealthy_targets: after.unhealthy_targets,
                    refresh: None,
                    joined: false,
                    ready: false,
                    failed: false,
                    mutation: raise.then(|| {
                        format!(
                            "raised {group} in {region} from {} to {capacity} servers",
                            before.desired_capacity
                        )
                    }),
                })
            })
            .await
        }
        RecoverFleetInput::Refresh { fleet, journal } => {
            let region = region_of(&fleet)?.to_owned();
            let group = fleet.auto_scaling_group.clone();
            let what = format!("refreshing every server of {group} in {region}");
            journaled(ports, Some(&journal), "refresh", &what, async {
                let asked_at = dr_core::clock::now();
                let refresh = ports.fleet.start_instance_refresh(&fleet).await?;
                let joined = joined(&refresh, asked_at);
                let after = ports.fleet.describe_fleet(&fleet).await?;
                Ok(RecoverFleetOutput {
                    auto_scaling_group: group.clone(),
                    desired_capacity: after.desired_capacity,
                    healthy_targets: after.healthy_targets,
                    unhealthy_targets: after.unhealthy_targets,
                    mutation: Some(if joined {
                        format!(
                            "joined instance refresh {} of {group} in {region}, already running",
                            refresh.refresh_id
                        )
                    } else {
                        format!(
                            "started instance refresh {} of {group} in {region}",
                            refresh.refresh_id
                        )
                    }),
                    refresh: Some(refresh),
                    joined,
                    ready: false,
                    failed: false,
                })
            })
            .await
        }
        RecoverFleetInput::Status {
            fleet,
            refresh_id,
            capacity,
        } => {
            region_of(&fleet)?;
            let refresh = ports
                .fleet
                .describe_instance_refresh(&fleet, &refresh_id)
                .await?;
            let status = ports.fleet.describe_fleet(&fleet).await?;
            let (ready, failed) = refresh_progress(&refresh, status.healthy_targets, capacity);
            Ok(RecoverFleetOutput {
                auto_scaling_group: fleet.auto_scaling_group.clone(),
                desired_capacity: status.desired_capacity,
                healthy_targets: status.healthy_targets,
                unhealthy_targets: status.unhealthy_targets,
                refresh: Some(refresh),
                joined: false,
                ready,
                failed,
                mutation: None,
            })
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyHealthInput {
    pub url: String,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_expected")]
    pub expected_status: u16,
}

fn default_timeout() -> u64 {
    crate::app::DEFAULT_HEALTH_TIMEOUT_MS
}

fn default_expected() -> u16 {
    200
}

/// `curl <health URL>`: one GET. Down is an answer (`healthy: false`), not
/// an error; only an unusable URL or timeout is refused.
pub async fn verify_health(ports: &Ports, input: VerifyHealthInput) -> DrResult<HealthObservation> {
    if !crate::app::HEALTH_TIMEOUT_MS.contains(&input.timeout_ms) {
        return Err(DrError::InvalidInput(format!(
            "timeout_ms {} is outside {:?}",
            input.timeout_ms,
            crate::app::HEALTH_TIMEOUT_MS
        )));
    }
    if !(100..=599).contains(&input.expected_status) {
        return Err(DrError::InvalidInput(format!(
            "expected_status {} is not an HTTP status",
            input.expected_status
        )));
    }
    validate_health_url(&input.url)?;
    ports
        .health
        .check(&input.url, input.timeout_ms, input.expected_status)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refresh(status: &str, started: Option<&str>) -> InstanceRefresh {
        InstanceRefresh {
            refresh_id: "r".into(),
            status: status.into(),
            percentage_complete: None,
            started_at: started.map(|s| s.parse().expect("t")),
        }
    }

    #[test]
    fn a_refresh_is_ready_only_when_successful_and_enough_targets_pass() {
        // (status, healthy, capacity, ready, failed)
        let cases = [
            ("Pending", 0, 2, false, false),
            ("InProgress", 2, 2, false, false),
            ("Successful", 2, 2, true, false),
            ("Successful", 1, 2, false, false),
            ("Successful", 0, 0, false, false),
            ("Failed", 2, 2, false, true),
            ("Cancelled", 0, 2, false, true),
            ("Cancelling", 0, 2, false, true),
            ("RollbackInProgress", 0, 2, false, true),
            ("RollbackSuccessful", 2, 2, false, true),
            ("RollbackFailed", 0, 2, false, true),
            ("Baking", 2, 2, false, false),
        ];
        for (status, healthy, capacity, ready, failed) in cases {
            assert_eq!(
                refresh_progress(&refresh(status, None), healthy, capacity),
                (ready, failed),
                "{status} {healthy}/{capacity}"
            );
        }
    }

    #[test]
    fn a_refresh_begun_before_we_asked_was_joined() {
        let asked: DateTime<Utc> = "2026-11-28T03:00:00Z".parse().expect("t");
        for (started, expect) in [
            (Some("2026-11-28T02:50:00Z"), true),
            (Some("2026-11-28T02:59:56Z"), false),
            (Some("2026-11-28T03:00:01Z"), false),
            (None, false),
        ] {
            assert_eq!(
                joined(&refresh("InProgress", started), asked),
                expect,
                "{started:?}"
            );
        }
    }
}
