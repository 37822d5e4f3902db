//! Region readiness: keep a recent, verified, re-encrypted copy of every
//! protected database's snapshot in the backup region, so that a region
//! failure has something to restore (the runbook's "Complete AWS Region
//! Failure" assumes one is waiting in us-west-2 and never says who put it
//! there).
//!
//! The scheduled `snapshot-replication` state machine plans (this module),
//! then runs `snapshot-replication-database` per database as a child
//! execution: take or choose the source snapshot, copy it, wait, verify
//! and tag the copy, prune, and publish the backup region's snapshot age.
//! The decisions (which source, which copies to keep, the age) are pure
//! functions below.

use chrono::{DateTime, Duration, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use crate::Ports;

pub mod steps;

/// Tag on every copy: the database it protects (pruning deletes only
/// snapshots that carry it).
pub const COPY_OF_TAG: &str = "dr:copy-of";
/// Tag set on a copy once verified, with the time.
pub const VERIFIED_TAG: &str = "dr:verified";
/// Tag on a snapshot this workflow took itself in the primary region.
pub const REPLICATION_TAG: &str = "dr:replication";
/// The metric the RPO alarm watches.
pub const AGE_METRIC: &str = "BackupRegionSnapshotAgeSeconds";
/// The most databases one run replicates (each is a child execution).
pub const MAX_DATABASES: usize = 20;
/// The most copies kept per database.
pub const MAX_RETAIN: u32 = 30;
/// A copy is waited for at most this long: a cross-region copy of a large
/// snapshot takes hours, and the next scheduled run starts over anyway.
pub const MAX_COPY_WAIT_SECONDS: u64 = 6 * 3600;
/// A snapshot taken in the primary region is waited for at most this long.
pub const MAX_SNAPSHOT_WAIT_SECONDS: u64 = 2 * 3600;
/// Polls of a wait never go beyond this many (history quota).
pub const MAX_POLLS: u64 = 720;
/// A snapshot of the primary takes minutes: polled at least this far apart.
pub const MIN_SNAPSHOT_POLL_SECONDS: u64 = 60;
/// A cross-region copy takes tens of minutes to hours: polled at least
/// this far apart, which keeps the wait's worst case (every poll retried to
/// its function's timeout) within the child execution's timeout.
pub const MIN_COPY_POLL_SECONDS: u64 = 300;

fn default_retain() -> u32 {
    3
}
fn default_rpo() -> u64 {
    crate::report::RPO_OBJECTIVE_SECONDS as u64
}
fn default_fresh() -> u64 {
    3600
}
fn default_poll() -> u64 {
    60
}

/// The execution input (the schedule's, or an operator's).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationRequest {
    /// Where the copies go.
    pub backup_region: String,
    /// The backup region's key the copies are encrypted with (KMS key ARN
    /// or alias on AWS; `local/<region>/snapshots` locally).
    pub kms_key_id: String,
    /// Copies kept per database (at least one).
    #[serde(default = "default_retain")]
    pub retain: u32,
    /// The newest verified copy may be at most this old (RPO): the age
    /// metric's alarm threshold, and the report's verdict.
    #[serde(default = "default_rpo")]
    pub rpo_seconds: u64,
    /// A snapshot of the primary younger than this is copied as it is;
    /// otherwise one is taken.
    #[serde(default = "default_fresh")]
    pub fresh_within_seconds: u64,
    /// How often a wait polls, at least (the snapshot wait polls no more
    /// often than every minute, the copy's every five).
    #[serde(default = "default_poll")]
    pub poll_interval_seconds: u64,
    /// Databases by registry name; every registered one when empty.
    #[serde(default)]
    pub databases: Vec<String>,
    /// Where the age metric goes (the alarm's namespace).
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

fn default_namespace() -> String {
    crate::probe::DEFAULT_NAMESPACE.to_owned()
}

/// One database to replicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationTarget {
    pub database: String,
    pub primary: InstanceId,
    pub source_region: String,
}

/// Bounded waits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationLimits {
    pub snapshot_poll_seconds: u64,
    pub snapshot_polls: u64,
    pub copy_poll_seconds: u64,
    pub copy_polls: u64,
}

impl ReplicationLimits {
    /// The waits' intervals (never below their floors) and bounds.
    pub fn for_interval(poll_interval_seconds: u64) -> Self {
        let snapshot_poll_seconds = poll_interval_seconds.max(MIN_SNAPSHOT_POLL_SECONDS);
        let copy_poll_seconds = poll_interval_seconds.max(MIN_COPY_POLL_SECONDS);
        ReplicationLimits {
            snapshot_poll_seconds,
            snapshot_polls: polls(MAX_SNAPSHOT_WAIT_SECONDS, snapshot_poll_seconds),
            copy_poll_seconds,
            copy_polls: polls(MAX_COPY_WAIT_SECONDS, copy_poll_seconds),
        }
    }
}

/// The validated plan every step reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationPlan {
    pub backup_region: String,
    pub kms_key_id: String,
    pub retain: u32,
    pub rpo_seconds: u64,
    pub fresh_within_seconds: u64,
    pub poll_interval_seconds: u64,
    pub limits: ReplicationLimits,
    pub databases: Vec<ReplicationTarget>,
    pub namespace: String,
}

/// The polls a wait of `seconds` needs at `interval`, within the cap.
pub fn polls(seconds: u64, interval: u64) -> u64 {
    seconds.div_ceil(interval.max(1)).clamp(1, MAX_POLLS)
}

/// Checks the input's own fields (no port needed).
pub fn validate_request(request: &ReplicationRequest) -> DrResult<()> {
    validate_region(&request.backup_region)?;
    if request.kms_key_id.trim().is_empty() || request.kms_key_id.len() > 2048 {
        return Err(DrError::InvalidInput(
            "kms_key_id must name the backup region's key (1 to 2048 characters)".into(),
        ));
    }
    if request.kms_key_id.starts_with("arn:") {
        let region = request.kms_key_id.split(':').nth(3).unwrap_or_default();
        if region != request.backup_region {
            return Err(DrError::InvalidInput(format!(
                "kms_key_id is a key of {region:?}, not of the backup region {}: KMS keys are regional",
                request.backup_region
            )));
        }
    }
    if !(1..=MAX_RETAIN).contains(&request.retain) {
        return Err(DrError::InvalidInput(format!(
            "retain must be 1 to {MAX_RETAIN} copies"
        )));
    }
    if !(60..=7 * 86_400).contains(&request.rpo_seconds) {
        return Err(DrError::InvalidInput(
            "rpo_seconds must be 60 to 604800".into(),
        ));
    }
    if request.fresh_within_seconds > request.rpo_seconds {
        return Err(DrError::InvalidInput(format!(
            "fresh_within_seconds ({}) must not exceed rpo_seconds ({}): a snapshot that old could never meet the RPO",
            request.fresh_within_seconds, request.rpo_seconds
        )));
    }
    if !(1..=300).contains(&request.poll_interval_seconds) {
        return Err(DrError::InvalidInput(
            "poll_interval_seconds must be 1 to 300".into(),
        ));
    }
    if request.databases.len() > MAX_DATABASES {
        return Err(DrError::InvalidInput(format!(
            "at most {MAX_DATABASES} databases per run"
        )));
    }
    for database in &request.databases {
        validate_database_name(database)?;
    }
    validate_namespace(&request.namespace)
}

/// A CloudWatch namespace: 1 to 255 printable ASCII characters, not `AWS/`.
pub fn validate_namespace(namespace: &str) -> DrResult<()> {
    let ok = !namespace.is_empty()
        && namespace.len() <= 255
        && namespace.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        && !namespace.starts_with("AWS/");
    if ok {
        Ok(())
    } else {
        Err(DrError::InvalidInput(
            "namespace must be 1 to 255 printable ASCII characters and not start with AWS/".into(),
        ))
    }
}

/// The first step: the whole input checked, every database resolved in the
/// registry (or the deployment's initial topologies), nothing changed.
pub async fn replication_plan(
    ports: &Ports,
    request: ReplicationRequest,
) -> DrResult<ReplicationPlan> {
    validate_request(&request)?;
    ports.regions.control_plane(&request.backup_region)?;
    let known = crate::plan::production_databases(ports).await?;
    let chosen: Vec<Topology> = if request.databases.is_empty() {
        known
    } else {
        let mut chosen = Vec::new();
        for name in &request.databases {
            let topology = known
                .iter()
                .find(|t| &t.database == name)
                .cloned()
                .ok_or_else(|| {
                    DrError::InvalidInput(format!(
                        "database {name:?} is not in the topology registry"
                    ))
                })?;
            if !chosen
                .iter()
                .any(|t: &Topology| t.database == topology.database)
            {
                chosen.push(topology);
            }
        }
        chosen
    };
    if chosen.is_empty() {
        return Err(DrError::InvalidInput(
            "no database is registered: there is nothing to replicate".into(),
        ));
    }
    if chosen.len() > MAX_DATABASES {
        return Err(DrError::InvalidInput(format!(
            "{} databases are registered; one run replicates at most {MAX_DATABASES}: name them in `databases`",
            chosen.len()
        )));
    }
    let mut databases = Vec::with_capacity(chosen.len());
    for topology in chosen {
        let source_region = topology
            .region
            .clone()
            .unwrap_or_else(|| ports.regions.home_region().to_owned());
        if source_region == request.backup_region {
            return Err(DrError::InvalidInput(format!(
                "database {} already lives in {}: its copies must go to another region",
                topology.database, request.backup_region
            )));
        }
        databases.push(ReplicationTarget {
            database: topology.database,
            primary: topology.primary,
            source_region,
        });
    }
    Ok(ReplicationPlan {
        limits: ReplicationLimits::for_interval(request.poll_interval_seconds),
        backup_region: request.backup_region,
        kms_key_id: request.kms_key_id,
        retain: request.retain,
        rpo_seconds: request.rpo_seconds,
        fresh_within_seconds: request.fresh_within_seconds,
        poll_interval_seconds: request.poll_interval_seconds,
        databases,
        namespace: request.namespace,
    })
}

/// Which snapshot of the primary to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceChoice {
    /// The newest available snapshot is fresh enough.
    Use(SnapshotId),
    /// A snapshot is being made (by us or by RDS): wait for it.
    Wait(SnapshotId),
    /// Take a new one under this name.
    Take(SnapshotId),
}

/// The name of the snapshot this run takes: one per run and database, so a
/// retried step finds the one it started instead of taking another.
pub fn taken_snapshot_id(primary: &InstanceId, run_started: DateTime<Utc>) -> DrResult<SnapshotId> {
    SnapshotId::parse(&format!(
        "dr-repl-{primary}-{}",
        run_started.format("%Y%m%d%H%M%S")
    ))
}

/// Chooses the source: the newest available snapshot of the primary when
/// its data is younger than `fresh_within`; the one this run already
/// started when there is one; otherwise a new one. Failed snapshots and
/// copies (made elsewhere) are never sources.
pub fn choose_source(
    snapshots: &[SnapshotDescription],
    taken: &SnapshotId,
    now: DateTime<Utc>,
    fresh_within_seconds: u64,
) -> SourceChoice {
    if let Some(ours) = snapshots.iter().find(|s| &s.snapshot_id == taken) {
        return match ours.status {
            SnapshotStatus::Available => SourceChoice::Use(ours.snapshot_id.clone()),
            _ => SourceChoice::Wait(ours.snapshot_id.clone()),
        };
    }
    let fresh_since = now - Duration::seconds(fresh_within_seconds.min(i64::MAX as u64) as i64);
    let newest = snapshots
        .iter()
        .filter(|s| s.status == SnapshotStatus::Available && s.copied_from.is_none())
        .max_by_key(|s| (s.data_time(), s.snapshot_id.clone()));
    match newest {
        Some(s) if s.data_time() >= fresh_since => SourceChoice::Use(s.snapshot_id.clone()),
        _ => SourceChoice::Take(taken.clone()),
    }
}

/// The name of the copy of a source snapshot: the same source always gives
/// the same copy, so a copy that exists is never made twice.
pub fn copy_id(source: &SnapshotId) -> DrResult<SnapshotId> {
    let flat = source.as_str().replace(':', "-");
    let mut id = format!("dr-copy-{flat}");
    id.truncate(255);
    let id = id.trim_end_matches('-');
    SnapshotId::parse(id)
}

/// What pruning keeps and deletes among a database's copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunePlan {
    pub keep: Vec<SnapshotId>,
    pub delete: Vec<SnapshotId>,
}

/// Keeps the newest `retain` verified copies; deletes older verified ones,
/// and unverified ones older than the newest verified copy (a copy that
/// failed its check, or was never checked). An unverified copy newer than
/// every verified one may still be in progress: it stays. Only snapshots
/// tagged as copies of `database` are considered.
pub fn prune_plan(copies: &[SnapshotDescription], database: &str, retain: u32) -> PrunePlan {
    let mut ours: Vec<&SnapshotDescription> = copies
        .iter()
        .filter(|s| s.tags.get(COPY_OF_TAG).map(String::as_str) == Some(database))
        .collect();
    ours.sort_by(|a, b| {
        b.data_time()
            .cmp(&a.data_time())
            .then_with(|| a.snapshot_id.cmp(&b.snapshot_id))
    });
    let newest_verified = ours.iter().find(|s| is_verified(s)).map(|s| s.data_time());
    let mut keep = Vec::new();
    let mut delete = Vec::new();
    let mut verified_kept = 0u32;
    for copy in ours {
        if is_verified(copy) {
            if verified_kept < retain.max(1) {
                verified_kept += 1;
                keep.push(copy.snapshot_id.clone());
            } else {
                delete.push(copy.snapshot_id.clone());
            }
        } else if newest_verified.is_some_and(|t| copy.data_time() < t) {
            delete.push(copy.snapshot_id.clone());
        } else {
            keep.push(copy.snapshot_id.clone());
        }
    }
    PrunePlan { keep, delete }
}

/// Whether a copy passed its verification (and is available).
pub fn is_verified(copy: &SnapshotDescription) -> bool {
    copy.status == SnapshotStatus::Available && copy.tags.contains_key(VERIFIED_TAG)
}

/// The age of the newest verified copy's data, in whole seconds; `None`
/// when there is none (which never counts as within the RPO).
pub fn newest_verified_age(
    copies: &[SnapshotDescription],
    database: &str,
    now: DateTime<Utc>,
) -> Option<(SnapshotId, u64)> {
    copies
        .iter()
        .filter(|s| s.tags.get(COPY_OF_TAG).map(String::as_str) == Some(database))
        .filter(|s| is_verified(s))
        .max_by_key(|s| s.data_time())
        .map(|s| {
            (
                s.snapshot_id.clone(),
                (now - s.data_time()).num_seconds().max(0) as u64,
            )
        })
}

#[cfg(test)]
mod tests;
