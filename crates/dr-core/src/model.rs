//! Resource types shared by the ports and their adapters.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{DrError, DrResult};

/// Tag that marks an instance as safe to delete without `force`
/// (drill and test resources carry it; production never does).
pub const EPHEMERAL_TAG: &str = "ephemeral";
/// The drill that made a resource (its id): a drill acts only on what it
/// made, and its cleanup removes everything that carries its id.
pub const DRILL_TAG: &str = "dr:drill";

pub type Tags = BTreeMap<String, String>;

/// Why `value` is no RDS identifier: 1 to `max` letters, digits or hyphens
/// (and colons where `colon`), starting with a letter, no two hyphens in a
/// row and no trailing hyphen.
fn identifier_problem(value: &str, max: usize, colon: bool) -> Option<String> {
    if value.is_empty() {
        Some("must not be empty".to_owned())
    } else if value.len() > max {
        Some(format!("must be at most {max} characters"))
    } else if !value.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Some("must start with a letter".to_owned())
    } else if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || (colon && c == ':'))
    {
        Some(if colon {
            "may contain only letters, digits, hyphens and colons".to_owned()
        } else {
            "may contain only letters, digits and hyphens".to_owned()
        })
    } else if value.contains("--") || value.ends_with('-') {
        Some("must not contain two consecutive hyphens or end with a hyphen".to_owned())
    } else {
        None
    }
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal, $colon:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> DrResult<Self> {
                match identifier_problem(value, $max, $colon) {
                    Some(why) => Err(DrError::InvalidInput(format!(
                        concat!($what, " identifier {:?} {}"),
                        value, why
                    ))),
                    None => Ok($name(value.to_owned())),
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = DrError;
            fn try_from(value: String) -> DrResult<Self> {
                $name::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }
    };
}

identifier!(
    /// Identifier of a DB instance: 1 to 63 letters, digits or hyphens,
    /// starting with a letter (RDS's rule), checked whenever one is parsed or
    /// deserialised.
    InstanceId,
    "instance",
    63,
    false
);

identifier!(
    /// Identifier of a DB snapshot: as an instance's, up to 255 characters,
    /// and colons are allowed (RDS's automated snapshots are `rds:…`).
    SnapshotId,
    "snapshot",
    255,
    true
);

/// Where a database listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.address, self.port)
    }
}

/// Lifecycle status, spelled as RDS spells `DBInstanceStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceStatus {
    Creating,
    Available,
    BackingUp,
    Modifying,
    Rebooting,
    Stopped,
    Deleting,
    /// Not running although it should (crashed, killed, or failed to start).
    Failed,
}

impl InstanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Creating => "creating",
            InstanceStatus::Available => "available",
            InstanceStatus::BackingUp => "backing-up",
            InstanceStatus::Modifying => "modifying",
            InstanceStatus::Rebooting => "rebooting",
            InstanceStatus::Stopped => "stopped",
            InstanceStatus::Deleting => "deleting",
            InstanceStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Whether an instance accepts writes or replays another's WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceRole {
    Primary,
    Replica,
}

/// How far a replica is behind its source.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReplicaLag {
    /// Age of the newest replayed transaction relative to the source, 0 when
    /// the replica has replayed everything it received.
    pub seconds: f64,
    /// WAL bytes the replica has not replayed yet, when the platform can tell
    /// (PostgreSQL can; RDS reports only seconds).
    pub bytes: Option<u64>,
}

/// What `describe instance` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceDescription {
    pub instance_id: InstanceId,
    pub status: InstanceStatus,
    pub role: InstanceRole,
    pub endpoint: Option<Endpoint>,
    pub engine: String,
    pub engine_version: String,
    pub availability_zone: Option<String>,
    pub storage_encrypted: bool,
    /// The instance this one replicates from; `None` for a standalone primary.
    pub replication_source: Option<InstanceId>,
    pub read_replicas: Vec<InstanceId>,
    /// Present for a replica whose lag could be measured.
    pub replica_lag: Option<ReplicaLag>,
    pub earliest_restorable_time: Option<DateTime<Utc>>,
    pub latest_restorable_time: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub tags: Tags,
    /// Where RDS placed it (subnet group, security groups, parameter
    /// group); `None` where the platform has no network (the local one).
    #[serde(default)]
    pub network: Option<NetworkPlacement>,
}

/// Where an instance sits in the network, as RDS places it. A restore or a
/// replica made without it lands in the default VPC and security group,
/// where nothing of ours can reach it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetworkPlacement {
    pub subnet_group: Option<String>,
    pub security_groups: Vec<String>,
    pub parameter_group: Option<String>,
}

impl InstanceDescription {
    pub fn is_ephemeral(&self) -> bool {
        crate::guard::is_ephemeral(&self.tags)
    }

    /// What a promotion request meets, decided the same way on every
    /// platform: a standalone, available instance is already promoted (a
    /// retry); anything not available is not ready.
    pub fn promotion_readiness(&self) -> DrResult<PromotionReadiness> {
        let id = &self.instance_id;
        let available = self.status == InstanceStatus::Available;
        match (self.replication_source.is_none(), available) {
            (true, true) => Ok(PromotionReadiness::AlreadyStandalone),
            (false, true) => Ok(PromotionReadiness::Promotable),
            (true, false) => Err(DrError::NotReady(format!(
                "DB instance {id} is {}; it is already standalone but not available",
                self.status
            ))),
            (false, false) => Err(DrError::NotReady(format!(
                "DB instance {id} is {}; a replica can be promoted only when available",
                self.status
            ))),
        }
    }

    /// Promotion has finished when the instance is available and no longer
    /// replicates from anything (DESIGN.md, "Contracts").
    pub fn is_standalone_and_available(&self) -> bool {
        self.status == InstanceStatus::Available && self.replication_source.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotType {
    Manual,
    Automated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotStatus {
    Creating,
    /// A copy on its way into another region (RDS `copying`).
    Copying,
    Available,
    Failed,
}

/// What `list snapshots` answers for each snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotDescription {
    pub snapshot_id: SnapshotId,
    pub source_instance_id: InstanceId,
    pub snapshot_type: SnapshotType,
    pub status: SnapshotStatus,
    pub created_at: DateTime<Utc>,
    pub size_bytes: u64,
    pub encrypted: bool,
    pub engine_version: String,
    /// Region holding this copy; `None` when the platform has no regions.
    pub region: Option<String>,
    pub tags: Tags,
    /// Row counts per table when the snapshot was taken, where the platform
    /// records them (the local platform does; RDS does not).
    #[serde(default)]
    pub row_counts: Option<std::collections::BTreeMap<String, u64>>,
    /// When the data was captured: for a copy, the original snapshot's time
    /// (RDS `OriginalSnapshotCreateTime`), which copying does not change.
    /// The data a restore from it loses is measured from here.
    #[serde(default)]
    pub original_created_at: Option<DateTime<Utc>>,
    /// What this snapshot is a copy of, if it is one.
    #[serde(default)]
    pub copied_from: Option<SnapshotSource>,
    /// The key that encrypts it (a KMS key ARN on AWS; the region's key
    /// name locally).
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// How far a copy or a snapshot has come, when the platform says.
    #[serde(default)]
    pub percent_progress: Option<u8>,
}

/// The snapshot a copy was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSource {
    /// Its identifier (or ARN, as RDS reports it).
    pub snapshot: String,
    /// Its region, when the copy crossed one.
    pub region: Option<String>,
}

impl SnapshotDescription {
    /// The moment the snapshot's data is from: its original time for a
    /// copy, its creation otherwise.
    pub fn data_time(&self) -> DateTime<Utc> {
        self.original_created_at.unwrap_or(self.created_at)
    }
}

/// Request to copy a snapshot into the region of the control plane that
/// receives it (RDS CopyDBSnapshot, called in the destination region).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopySnapshotRequest {
    pub source_snapshot_id: SnapshotId,
    pub source_region: String,
    pub target_snapshot_id: SnapshotId,
    /// The destination region's key the copy is re-encrypted with.
    pub kms_key_id: String,
    #[serde(default)]
    pub tags: Tags,
}

impl SnapshotDescription {
    /// The order every control plane lists snapshots in: newest first, ties
    /// by id, so "the latest snapshot" is the first one everywhere.
    pub fn sort_newest_first(snapshots: &mut [SnapshotDescription]) {
        snapshots.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.snapshot_id.cmp(&b.snapshot_id))
        });
    }
}

/// What can be said about a snapshot's integrity without restoring it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SnapshotIntegrity {
    /// Decrypted and checked (locally: pg_verifybackup against its manifest).
    Verified { detail: String },
    /// This platform cannot check it in place; the restore test proves it.
    Deferred { reason: String },
}

/// Request to create a read replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateReplicaRequest {
    pub replica_id: InstanceId,
    pub source_id: InstanceId,
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub tags: Tags,
    /// Where to place it (default: where the platform puts it).
    #[serde(default)]
    pub network: Option<NetworkPlacement>,
}

/// Request to restore a snapshot into a new instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreSnapshotRequest {
    pub snapshot_id: SnapshotId,
    pub target_id: InstanceId,
    pub instance_class: Option<String>,
    #[serde(default)]
    pub tags: Tags,
    /// Where to place it (default: where the platform puts it).
    #[serde(default)]
    pub network: Option<NetworkPlacement>,
}

/// Request to restore an instance to a point in time into a new instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointInTimeRestoreRequest {
    pub source_id: InstanceId,
    pub target_id: InstanceId,
    pub restore_time: DateTime<Utc>,
    #[serde(default)]
    pub tags: Tags,
    /// Where to place it (default: where the platform puts it).
    #[serde(default)]
    pub network: Option<NetworkPlacement>,
}

/// Request to take a manual snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateSnapshotRequest {
    pub instance_id: InstanceId,
    pub snapshot_id: SnapshotId,
    #[serde(default)]
    pub tags: Tags,
}

/// See [`InstanceDescription::promotion_readiness`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromotionReadiness {
    AlreadyStandalone,
    Promotable,
}

/// Outcome of a promotion. `already_standalone` makes a retry recognisable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionOutcome {
    pub instance: InstanceDescription,
    pub already_standalone: bool,
    /// The lag the replica had when it was promoted (RPO evidence).
    pub lag_at_promotion: Option<ReplicaLag>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_rds_style_identifiers() {
        for ok in ["muejam-db-prod", "muejam-db-prod-replica", "a", "db1"] {
            assert!(InstanceId::parse(ok).is_ok(), "{ok}");
        }
        assert!(SnapshotId::parse("rds:muejam-db-prod-2026-11-26-06-00").is_ok());
        assert!(SnapshotId::parse(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn rejects_identifiers_rds_would_reject() {
        for bad in ["", "1db", "db--x", "db-", "db_x", "db x", "../etc"] {
            let err = InstanceId::parse(bad).expect_err(bad);
            assert_eq!(err.name(), "InvalidInput");
        }
        assert!(InstanceId::parse(&"a".repeat(64)).is_err());
        assert!(InstanceId::parse("rds:x").is_err());
        assert!(SnapshotId::parse(&"a".repeat(256)).is_err());
        for bad in ["", "1snap", "s--x", "s-", "s_x", "../etc"] {
            assert!(SnapshotId::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn a_parsed_identifier_is_always_a_safe_file_name(s in "\\PC{0,80}") {
            if let Ok(id) = SnapshotId::parse(&s) {
                prop_assert!(!id.as_str().contains('/'));
                prop_assert!(!id.as_str().contains(".."));
                prop_assert!(!id.as_str().starts_with('-'));
            }
        }
    }

    #[test]
    fn identifiers_round_trip_through_json_and_reject_bad_input() {
        let id: InstanceId = serde_json::from_str("\"muejam-db-prod\"").expect("valid");
        assert_eq!(
            serde_json::to_string(&id).expect("ser"),
            "\"muejam-db-prod\""
        );
        let err = serde_json::from_str::<InstanceId>("\"bad id\"").expect_err("invalid");
        assert!(err.to_string().contains("may contain only"));
        // deserialising applies each kind's own rule, not the laxer one
        let err = serde_json::from_str::<InstanceId>("\"rds:snap\"").expect_err("colon");
        assert!(err.to_string().contains("instance identifier"), "{err}");
        let long = format!("\"{}\"", "a".repeat(64));
        assert!(serde_json::from_str::<InstanceId>(&long).is_err());
        assert!(serde_json::from_str::<SnapshotId>(&long).is_ok());
        assert!(serde_json::from_str::<SnapshotId>("\"rds:snap\"").is_ok());
    }
}
