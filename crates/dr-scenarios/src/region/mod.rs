//! The runbook's "Complete AWS Region Failure": confirm that the primary
//! region (not one instance) is gone and the backup region answers, restore
//! the newest verified snapshot copy there after one approval, verify it
//! against the copy's row counts, scale the backup region's application
//! fleet, move the database record, verify through it, and build a replica.
//! Planned mode (a region evacuation announced in advance) stops writes,
//! takes and copies a final snapshot first, so nothing is lost.
//!
//! This module holds the input, its validation into a plan, and the pure
//! decisions (is the region down, which copy); the steps are in [`steps`].

use chrono::{DateTime, Duration, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use crate::plan::{Trigger, MAX_REASON};
use crate::replication::{is_verified, ReplicationLimits, COPY_OF_TAG};
use crate::report::ExecutionInfo;
use crate::Ports;

pub mod report;
pub mod steps;

/// The longest a person may take to approve a region failover.
pub const MAX_APPROVAL_SECONDS: u64 = 3600;
/// The restore is polled at most this many times (a snapshot restore on
/// RDS takes tens of minutes; this bounds it at two hours at a minute).
pub const MAX_RESTORE_POLLS: u64 = 240;
/// The fleet is waited for at most this many polls.
pub const MAX_FLEET_POLLS: u64 = 60;
/// The record is waited for at most this many polls (Route 53: seconds).
pub const MAX_DNS_POLLS: u64 = 60;

fn default_poll() -> u64 {
    30
}
fn default_approval_timeout() -> u64 {
    1800
}
fn default_port() -> u16 {
    5432
}
fn default_connect_timeout() -> u64 {
    5
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionMode {
    /// The region failed: restore the newest verified copy (its age is the
    /// data lost).
    #[default]
    Unplanned,
    /// An evacuation announced in advance: stop writes, take a final
    /// snapshot, copy it, restore it; nothing is lost.
    Planned,
    /// The quarterly drill's rehearsal: the newest verified copy restored
    /// into a `drill-…` instance in the backup region and verified, then
    /// deleted. No lock, no confirmation, no approval, and nothing of
    /// production (writes, fleet, record, registry) is touched.
    Rehearsal,
}

/// Who runs a rehearsal: the drill, and the production instance it drills
/// (the restore carries the drill's tags, so its cleanup finds it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RehearsalBy {
    pub drill_id: String,
    pub source: InstanceId,
}

/// The backup region's application fleet, raised before DNS moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetTarget {
    pub auto_scaling_group: String,
    pub desired_capacity: u32,
}

/// The execution input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionRequest {
    /// The database's name in the topology registry.
    pub database: String,
    #[serde(default)]
    pub mode: RegionMode,
    pub backup_region: String,
    /// The restored instance's class (RDS); the snapshot's when absent.
    #[serde(default)]
    pub instance_class: Option<String>,
    /// Where the restore goes in the backup region (subnet group, security
    /// groups, parameter group): without them RDS puts it in the default VPC.
    #[serde(default)]
    pub network: Option<NetworkPlacement>,
    /// Zones of the backup region for the new replica.
    #[serde(default)]
    pub availability_zones: Vec<String>,
    #[serde(default)]
    pub fleet: Option<FleetTarget>,
    /// Planned mode: the backup region's key for the final copy.
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// The port the application reaches the database record on.
    #[serde(default = "default_port")]
    pub database_port: u16,
    #[serde(default = "crate::plan::default_rpo")]
    pub rpo_objective_seconds: f64,
    #[serde(default = "crate::plan::default_rto")]
    pub rto_objective_seconds: f64,
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout_seconds: u64,
    #[serde(default = "default_poll")]
    pub poll_interval_seconds: u64,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
    pub trigger: Trigger,
    /// Rehearsal mode: the drill that runs it.
    #[serde(default)]
    pub drill: Option<RehearsalBy>,
}

/// Bounded waits: each polled no more often than its floor, at most so
/// many times, so that the worst case (every poll retried to its
/// function's timeout) stays within the state machine's TimeoutSeconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionLimits {
    pub restore_poll_seconds: u64,
    pub restore_polls: u64,
    pub fleet_poll_seconds: u64,
    pub fleet_polls: u64,
    pub dns_poll_seconds: u64,
    pub dns_polls: u64,
    /// Planned mode's final snapshot and copy.
    pub replication: ReplicationLimits,
}

impl RegionLimits {
    /// The waits' bounds at a poll interval: a restore up to two hours
    /// (polled at least a minute apart: it takes tens of minutes on RDS),
    /// the fleet half an hour, the record five minutes.
    pub fn for_interval(poll: u64) -> Self {
        let restore = poll.max(60);
        let fleet = poll.max(30);
        let dns = poll.max(10);
        RegionLimits {
            restore_poll_seconds: restore,
            restore_polls: (7200 / restore).clamp(1, MAX_RESTORE_POLLS),
            fleet_poll_seconds: fleet,
            fleet_polls: (1800 / fleet).clamp(1, MAX_FLEET_POLLS),
            dns_poll_seconds: dns,
            dns_polls: (300 / dns).clamp(1, MAX_DNS_POLLS),
            replication: ReplicationLimits::for_interval(poll),
        }
    }
}

/// The validated plan every later step reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionPlan {
    pub database: String,
    pub mode: RegionMode,
    /// The execution's name: journal entries and tags carry it.
    pub recovery_id: String,
    pub primary_region: String,
    pub backup_region: String,
    pub primary: InstanceId,
    pub replicas: Vec<InstanceId>,
    /// The instance the copy is restored into.
    pub restored_instance: InstanceId,
    /// Its replica in the backup region.
    pub new_replica: InstanceId,
    pub db_name: String,
    pub credentials_secret_id: String,
    pub application: Option<ApplicationAccess>,
    pub dns: DnsBinding,
    /// What the record pointed at when the run began (read here, outside
    /// the VPC: Route 53's API has no VPC endpoint).
    pub database_record: Option<String>,
    pub database_port: u16,
    pub instance_class: Option<String>,
    pub network: Option<NetworkPlacement>,
    pub availability_zones: Vec<String>,
    pub fleet: Option<FleetTarget>,
    /// `has_fleet` for the state machine's Choice (a missing field cannot
    /// be tested there without `IsPresent`, which the plan makes needless).
    pub has_fleet: bool,
    pub kms_key_id: Option<String>,
    pub rpo_objective_seconds: f64,
    pub rto_objective_seconds: f64,
    pub approval_timeout_seconds: u64,
    pub poll_interval_seconds: u64,
    pub connect_timeout_seconds: u64,
    pub limits: RegionLimits,
    pub started_at: DateTime<Utc>,
    pub trigger: Trigger,
    /// Rehearsal mode: the drill's id (the report pages nobody for it).
    #[serde(default)]
    pub drill: Option<String>,
    /// Rehearsal mode: the tags of the restore (the drill's).
    #[serde(default)]
    pub instance_tags: Tags,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionPlanInput {
    pub request: RegionRequest,
    pub execution: ExecutionInfo,
}

fn invalid(message: impl Into<String>) -> DrError {
    DrError::InvalidInput(message.into())
}

/// Checks the input's own fields (no port needed).
pub fn validate_request(r: &RegionRequest) -> DrResult<()> {
    validate_database_name(&r.database)?;
    validate_region(&r.backup_region)?;
    if let Some(class) = &r.instance_class {
        let ok = class.starts_with("db.")
            && class.len() <= 64
            && class[3..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.');
        if !ok {
            return Err(invalid(format!(
                "instance_class {:?} is not an RDS instance class (db.r6g.large)",
                class.chars().take(70).collect::<String>()
            )));
        }
    }
    for zone in &r.availability_zones {
        let suffix = zone
            .strip_prefix(r.backup_region.as_str())
            .unwrap_or_default();
        if suffix.len() != 1 || !suffix.chars().all(|c| c.is_ascii_lowercase()) {
            return Err(invalid(format!(
                "availability zone {:?} is not a zone of the backup region {}",
                zone.chars().take(40).collect::<String>(),
                r.backup_region
            )));
        }
    }
    if let Some(fleet) = &r.fleet {
        if fleet.auto_scaling_group.is_empty() || fleet.auto_scaling_group.len() > 255 {
            return Err(invalid(
                "fleet.auto_scaling_group must be 1 to 255 characters",
            ));
        }
        if !(1..=1000).contains(&fleet.desired_capacity) {
            return Err(invalid("fleet.desired_capacity must be 1 to 1000"));
        }
    }
    if r.mode == RegionMode::Planned {
        let key = r.kms_key_id.as_deref().unwrap_or_default();
        if key.trim().is_empty() || key.len() > 2048 {
            return Err(invalid(
                "planned mode copies a final snapshot: kms_key_id must name the backup region's key",
            ));
        }
    }
    if !(60.0..=7.0 * 86_400.0).contains(&r.rpo_objective_seconds)
        || !(60.0..=7.0 * 86_400.0).contains(&r.rto_objective_seconds)
    {
        return Err(invalid("objectives must be 60 s to 7 days"));
    }
    if !(60..=MAX_APPROVAL_SECONDS).contains(&r.approval_timeout_seconds) {
        return Err(invalid(format!(
            "approval_timeout_seconds must be 60 to {MAX_APPROVAL_SECONDS}"
        )));
    }
    if !(1..=300).contains(&r.poll_interval_seconds) {
        return Err(invalid("poll_interval_seconds must be 1 to 300"));
    }
    if !(1..=60).contains(&r.connect_timeout_seconds) {
        return Err(invalid("connect_timeout_seconds must be 1 to 60"));
    }
    if r.database_port == 0 {
        return Err(invalid("database_port must be 1 to 65535"));
    }
    let by_drill = r.trigger.source == crate::plan::TriggerSource::Drill;
    match (r.mode, &r.drill, by_drill) {
        (RegionMode::Rehearsal, Some(d), true) => {
            rehearsal_names(&d.source, &d.drill_id)?;
            if r.fleet.is_some() {
                return Err(invalid(
                    "a rehearsal scales no fleet: leave fleet out (the rehearsal restores and verifies only)",
                ));
            }
        }
        (RegionMode::Rehearsal, _, _) => {
            return Err(invalid(
                "mode rehearsal is the drill's: it needs trigger.source drill and drill {drill_id, source}",
            ))
        }
        (_, _, true) => {
            return Err(invalid(
                "trigger.source drill only rehearses: a drill never fails production over (mode rehearsal)",
            ))
        }
        (_, Some(_), false) => {
            return Err(invalid("drill is for mode rehearsal only"));
        }
        (_, None, false) => {}
    }
    if r.trigger
        .reason
        .as_ref()
        .is_some_and(|t| t.len() > MAX_REASON)
    {
        return Err(invalid(format!(
            "trigger.reason is longer than {MAX_REASON} bytes"
        )));
    }
    Ok(())
}

/// The first step: the whole input checked and resolved against the
/// topology registry; nothing is read from the primary region (it may be
/// gone) and nothing is changed.
pub async fn region_plan(ports: &Ports, input: RegionPlanInput) -> DrResult<RegionPlan> {
    let r = input.request;
    validate_request(&r)?;
    let topology = crate::plan::known_topology(ports, &r.database).await?;
    let primary_region = topology
        .region
        .clone()
        .unwrap_or_else(|| ports.regions.home_region().to_owned());
    if primary_region == r.backup_region {
        return Err(invalid(format!(
            "{} already lives in {}: the backup region must be another one",
            r.database, r.backup_region
        )));
    }
    // The backup region must be one this deployment can act in.
    ports.regions.control_plane(&r.backup_region)?;
    if r.mode == RegionMode::Planned && topology.application.is_none() {
        return Err(invalid(format!(
            "planned mode stops the application's writes: the topology of {} names no application role",
            r.database
        )));
    }
    let database_record = ports
        .dns
        .get_record(
            &topology.dns.hosted_zone,
            &topology.dns.record_name,
            "CNAME",
        )
        .await?
        .map(|r| r.value);
    let (restored_instance, new_replica, instance_tags) = match &r.drill {
        Some(by) => {
            let (restored, replica) = rehearsal_names(&by.source, &by.drill_id)?;
            let tags = crate::drill::drill_tags(&by.drill_id, &by.source);
            (restored, replica, tags)
        }
        None => {
            let restored_instance = topology.next_instance_id()?;
            let mut with_restore = topology.clone();
            with_restore.retired.push(restored_instance.clone());
            (
                restored_instance,
                with_restore.next_instance_id()?,
                Tags::new(),
            )
        }
    };
    let poll = r.poll_interval_seconds;
    Ok(RegionPlan {
        database: r.database,
        mode: r.mode,
        recovery_id: input.execution.name,
        primary_region,
        backup_region: r.backup_region,
        primary: topology.primary,
        replicas: topology.replicas,
        restored_instance,
        new_replica,
        db_name: topology.db_name,
        credentials_secret_id: topology.credentials_secret_id,
        application: topology.application,
        dns: topology.dns,
        database_record,
        database_port: r.database_port,
        instance_class: r.instance_class,
        network: r.network,
        availability_zones: r.availability_zones,
        has_fleet: r.fleet.is_some(),
        fleet: r.fleet,
        kms_key_id: r.kms_key_id,
        rpo_objective_seconds: r.rpo_objective_seconds,
        rto_objective_seconds: r.rto_objective_seconds,
        approval_timeout_seconds: r.approval_timeout_seconds,
        poll_interval_seconds: poll,
        connect_timeout_seconds: r.connect_timeout_seconds,
        limits: RegionLimits::for_interval(poll),
        started_at: input.execution.start_time,
        trigger: r.trigger,
        drill: r.drill.map(|d| d.drill_id),
        instance_tags,
    })
}

/// Pure: a rehearsal's restore and the replica name its plan carries (never
/// created): `drill-<instance>-<drill>-region` and `…-region-rep`.
pub fn rehearsal_names(source: &InstanceId, drill_id: &str) -> DrResult<(InstanceId, InstanceId)> {
    let (restore, _) = crate::drill::drill_names(source, drill_id)?;
    // `drill_names` leaves 10 characters of the 63 for its suffixes; this
    // one needs 11.
    let restore: String = restore.as_str().chars().take(63 - 11).collect();
    let restore = restore.trim_end_matches('-');
    Ok((
        InstanceId::parse(&format!("{restore}-region"))?,
        InstanceId::parse(&format!("{restore}-region-rep"))?,
    ))
}

/// What one look at a region's API or a database endpoint found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observation {
    /// It answered (whatever it said).
    Answered { detail: String },
    /// No answer: unreachable, timed out, unavailable.
    Silent { detail: String },
    /// Our own side failed (credentials, configuration): says nothing
    /// about the region.
    Broken { detail: String },
}

impl Observation {
    /// How an API call's outcome reads: an error that is the service's
    /// silence, or ours.
    pub fn of_call<T>(what: &str, result: &DrResult<T>) -> Observation {
        match result {
            Ok(_) | Err(DrError::NotFound(_)) => Observation::Answered {
                detail: format!("{what} answered"),
            },
            Err(e @ (DrError::Unavailable(_) | DrError::Timeout(_))) => Observation::Silent {
                detail: format!("{what}: {e}"),
            },
            // Throttling is an answer: the service is there.
            Err(e @ (DrError::Throttled(_) | DrError::NotReady(_))) => Observation::Answered {
                detail: format!("{what}: {e}"),
            },
            Err(e) => Observation::Broken {
                detail: format!("{what}: {e}"),
            },
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Observation::Answered { detail }
            | Observation::Silent { detail }
            | Observation::Broken { detail } => detail,
        }
    }
}

/// What the confirmation saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionEvidence {
    /// The primary region's RDS API, asked about the primary.
    pub primary_instance: Observation,
    /// The primary region's RDS API, asked for every instance (a second,
    /// independent call: one instance's trouble does not silence it).
    pub primary_listing: Observation,
    /// The database as the application reaches it (the record's target).
    pub endpoint: Observation,
    /// The backup region's RDS API.
    pub backup: Observation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionDecision {
    /// The primary region is gone and the backup answers: fail over (after
    /// the approval).
    RegionDown,
    /// Planned mode, both regions answer: evacuate.
    Evacuate,
    /// The primary region answers: nothing to do here.
    RegionAnswers,
    /// The evidence contradicts itself, or our own checks failed: page,
    /// change nothing.
    CannotConfirm,
}

/// Pure: the decision, with the reasons the report and the page show.
pub fn judge_region(mode: RegionMode, evidence: &RegionEvidence) -> (RegionDecision, Vec<String>) {
    use Observation::*;
    let mut reasons = vec![
        format!(
            "primary region, the primary: {}",
            evidence.primary_instance.detail()
        ),
        format!(
            "primary region, all instances: {}",
            evidence.primary_listing.detail()
        ),
        format!(
            "the database record's target: {}",
            evidence.endpoint.detail()
        ),
        format!("backup region: {}", evidence.backup.detail()),
    ];
    let broken = [
        &evidence.primary_instance,
        &evidence.primary_listing,
        &evidence.endpoint,
        &evidence.backup,
    ]
    .iter()
    .any(|o| matches!(o, Broken { .. }));
    let decision = if broken {
        reasons.push("our own checks failed: they say nothing about the region; fix them".into());
        RegionDecision::CannotConfirm
    } else if !matches!(evidence.backup, Answered { .. }) {
        reasons.push("the backup region does not answer: there is nowhere to fail over to".into());
        RegionDecision::CannotConfirm
    } else {
        let api_answers = matches!(evidence.primary_instance, Answered { .. })
            && matches!(evidence.primary_listing, Answered { .. });
        let api_silent = matches!(evidence.primary_instance, Silent { .. })
            && matches!(evidence.primary_listing, Silent { .. });
        let database_serves = matches!(evidence.endpoint, Answered { .. });
        match mode {
            RegionMode::Planned if api_answers && database_serves => {
                reasons.push("planned evacuation: both regions answer".into());
                RegionDecision::Evacuate
            }
            RegionMode::Planned => {
                reasons.push(
                    "planned mode needs the primary region (to stop writes and take the final snapshot); it does not answer: start the unplanned failover"
                        .into(),
                );
                RegionDecision::CannotConfirm
            }
            RegionMode::Unplanned if api_answers => {
                reasons.push(
                    "the primary region's RDS API answers: this is no region failure (if the database failed, run database-failover)"
                        .into(),
                );
                RegionDecision::RegionAnswers
            }
            RegionMode::Unplanned if api_silent && !database_serves => {
                reasons.push(
                    "the primary region's API and the database are both silent while the backup region answers: the region is down"
                        .into(),
                );
                RegionDecision::RegionDown
            }
            RegionMode::Unplanned if database_serves => {
                reasons.push(
                    "the database still serves: an API outage is no reason to restore from a copy and lose data"
                        .into(),
                );
                RegionDecision::CannotConfirm
            }
            RegionMode::Unplanned => {
                reasons.push(
                    "the primary region's API answers one call and not the other: not conclusive"
                        .into(),
                );
                RegionDecision::CannotConfirm
            }
            RegionMode::Rehearsal => {
                reasons.push("a rehearsal confirms nothing: it never fails production over".into());
                RegionDecision::CannotConfirm
            }
        }
    };
    (decision, reasons)
}

/// The copy a region failover restores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChosenCopy {
    pub snapshot_id: SnapshotId,
    /// When its data was captured: everything after is lost.
    pub data_time: DateTime<Utc>,
    pub age_seconds: f64,
    pub rpo_met: bool,
    /// The row counts recorded for it (the restore's baseline), where the
    /// platform records them.
    pub row_counts: Option<std::collections::BTreeMap<String, u64>>,
}

/// Pure: the newest verified, available copy of `database` (or the one
/// named), with its age against the RPO.
pub fn choose_copy(
    copies: &[SnapshotDescription],
    database: &str,
    named: Option<&SnapshotId>,
    baseline: Option<&std::collections::BTreeMap<String, u64>>,
    now: DateTime<Utc>,
    rpo_seconds: f64,
) -> Option<ChosenCopy> {
    copies
        .iter()
        .filter(|s| s.tags.get(COPY_OF_TAG).map(String::as_str) == Some(database))
        .filter(|s| is_verified(s))
        .filter(|s| named.is_none_or(|n| &s.snapshot_id == n))
        .max_by_key(|s| (s.data_time(), s.snapshot_id.clone()))
        .map(|s| {
            let age = (now - s.data_time()).max(Duration::zero());
            let age_seconds = age.num_milliseconds() as f64 / 1000.0;
            ChosenCopy {
                snapshot_id: s.snapshot_id.clone(),
                data_time: s.data_time(),
                age_seconds,
                rpo_met: age_seconds <= rpo_seconds,
                // Planned mode's counts when writes stopped come first: they
                // are what "no row lost" means (RDS records none for a snapshot).
                row_counts: baseline.cloned().or_else(|| s.row_counts.clone()),
            }
        })
}

#[cfg(test)]
mod tests;
