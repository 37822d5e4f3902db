//! Ports: what the domain needs from the outside world.
//!
//! Domain logic and Lambda handlers are generic over these traits; adapters
//! (`aws` on the AWS SDK, `local` on PostgreSQL clusters and moto) implement
//! them. Every method returns [`DrError`](crate::DrError) so a failure always
//! carries a stable name.

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::error::{DrError, DrResult};
use crate::model::*;
use crate::topology::Topology;

mod sql;
pub use sql::*;
mod recovery;
pub use recovery::*;
mod services;
pub use services::*;
mod control;
pub use control::*;

/// Options for deleting an instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteOptions {
    /// Delete even when the instance is not tagged `ephemeral=true`.
    pub force: bool,
}

/// The database control plane: RDS in production, PostgreSQL clusters locally.
///
/// Mutations are idempotent where the contract says so: promoting a standalone
/// instance, creating a replica or restoring into a target that already exists
/// with the same origin return the existing resource instead of failing.
#[async_trait]
pub trait DatabaseControlPlane: Send + Sync {
    async fn describe_instance(&self, id: &InstanceId) -> DrResult<InstanceDescription>;
    /// All instances, sorted by identifier.
    async fn list_instances(&self) -> DrResult<Vec<InstanceDescription>>;
    /// Snapshots, newest first; only those of `instance` when given.
    async fn list_snapshots(
        &self,
        instance: Option<&InstanceId>,
    ) -> DrResult<Vec<SnapshotDescription>>;
    async fn promote_read_replica(&self, id: &InstanceId) -> DrResult<PromotionOutcome>;
    async fn create_read_replica(
        &self,
        request: &CreateReplicaRequest,
    ) -> DrResult<InstanceDescription>;
    async fn create_snapshot(
        &self,
        request: &CreateSnapshotRequest,
    ) -> DrResult<SnapshotDescription>;
    async fn restore_from_snapshot(
        &self,
        request: &RestoreSnapshotRequest,
    ) -> DrResult<InstanceDescription>;
    async fn restore_to_point_in_time(
        &self,
        request: &PointInTimeRestoreRequest,
    ) -> DrResult<InstanceDescription>;
    async fn delete_instance(&self, id: &InstanceId, options: DeleteOptions) -> DrResult<()>;
    async fn delete_snapshot(&self, id: &SnapshotId) -> DrResult<()>;
    /// One snapshot of this region; `NotFound` when it has none by that id.
    async fn describe_snapshot(&self, id: &SnapshotId) -> DrResult<SnapshotDescription>;
    /// Copies a snapshot of `request.source_region` into this control
    /// plane's region, re-encrypted with `request.kms_key_id` (RDS
    /// CopyDBSnapshot called in the destination region). Idempotent: a
    /// target that is already a copy of the same source is returned as it
    /// is (copying or available); one of anything else is `AlreadyExists`.
    async fn copy_snapshot(&self, request: &CopySnapshotRequest) -> DrResult<SnapshotDescription>;
    /// Adds or overwrites tags on a snapshot of this region.
    async fn tag_snapshot(&self, id: &SnapshotId, tags: &Tags) -> DrResult<()>;
    async fn change_master_credentials(
        &self,
        id: &InstanceId,
        new_password: &SecretString,
    ) -> DrResult<()>;
    /// Adds or overwrites tags on an instance or a snapshot.
    async fn add_tags(&self, instance: &InstanceId, tags: &Tags) -> DrResult<()>;
    /// Makes an instance refuse application connections and ends the
    /// existing ones, without deleting it (it may hold writes that never
    /// replicated): RDS moves it to a quarantine security group; the local
    /// platform rejects every client but its own control plane. Tags it
    /// `dr:fenced=<by>`. Idempotent.
    async fn fence_instance(
        &self,
        id: &InstanceId,
        request: &FenceRequest,
    ) -> DrResult<FenceOutcome>;
    /// A drill's fault: makes a throw-away instance stop serving as a
    /// failure would, so the real failover confirms a real failure. RDS
    /// moves it into the quarantine security group (RDS still reports it
    /// `available`: the evidence asks a person, whom the drill answers);
    /// the local platform kills its server (`failed`). Refuses an instance
    /// not tagged `ephemeral=true` (`Unsafe`). Idempotent; returns how.
    async fn inject_failure(&self, id: &InstanceId, request: &FailureRequest) -> DrResult<String>;
    /// Checks a snapshot in place where the platform can; a snapshot that
    /// fails the check is `Corrupt`.
    async fn verify_snapshot(&self, id: &SnapshotId) -> DrResult<SnapshotIntegrity> {
        Ok(SnapshotIntegrity::Deferred {
            reason: format!(
                "snapshot {id} cannot be checked in place here; the restore test proves it"
            ),
        })
    }
}

/// The database control planes of the regions a deployment uses: RDS is
/// regional, so a cross-region step (copying a snapshot into the backup
/// region, restoring there) asks for the plane of the region it acts in.
pub trait RegionalControlPlanes: Send + Sync {
    /// The region whose plane `Ports::control_plane` is.
    fn home_region(&self) -> &str;
    /// The control plane of `region`: `InvalidInput` for a region that is
    /// not a region name (or, locally, one the platform does not have).
    fn control_plane(&self, region: &str) -> DrResult<std::sync::Arc<dyn DatabaseControlPlane>>;
}

/// An AWS region name as we accept one (`us-east-1`, `ap-southeast-2`,
/// `us-gov-west-1`): lower-case words joined by hyphens, ending in a number.
pub fn validate_region(region: &str) -> DrResult<()> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = region.len() <= 32
        && parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts.last().is_some_and(|p| {
            !p.is_empty() && p.len() <= 2 && p.chars().all(|c| c.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(DrError::InvalidInput(format!(
            "{:?} is not an AWS region name (like us-west-2)",
            region.chars().take(40).collect::<String>()
        )))
    }
}

/// Tag an instance carries once fenced: the execution that fenced it.
pub const FENCED_TAG: &str = "dr:fenced";

/// How to fence an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceRequest {
    /// Who fences it (the execution), recorded in the `dr:fenced` tag.
    pub by: String,
    /// The security group that admits nothing (RDS); unused locally.
    pub quarantine_security_group: Option<String>,
}

/// How a drill makes its throw-away primary fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRequest {
    /// The security group that admits nothing (RDS); unused locally.
    pub quarantine_security_group: Option<String>,
}

/// `Unsafe` unless the instance is throw-away: a drill's fault never
/// reaches anything else, whoever asks.
pub fn ensure_failure_target(id: &InstanceId, tags: &Tags) -> DrResult<()> {
    if crate::guard::is_ephemeral(tags) {
        Ok(())
    } else {
        Err(DrError::Unsafe(format!(
            "{id} is not tagged ephemeral=true: only a drill's throw-away instance is made to fail"
        )))
    }
}

/// What fencing did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceOutcome {
    pub already_fenced: bool,
    /// How the instance was fenced, for the report.
    pub method: String,
}

impl PortOperation {
    /// Whether the operation speaks PostgreSQL (needs the database's
    /// network, and no IAM action).
    pub fn speaks_sql(self) -> bool {
        use PortOperation::*;
        matches!(
            self,
            SqlProbe
                | SqlWriteMarker
                | SqlMarkerPresent
                | SqlCommitDamage
                | SqlWriteGrants
                | SqlRevokeWrites
                | SqlGrantWrites
                | SqlRowChanges
                | SqlRevokeApiKeys
                | SqlAuditActivity
                | SqlRowCounts
                | SqlSetRolePassword
                | IntegrityVerify
        )
    }
}

/// Every operation of every port, so that what a handler may call can be
/// listed, recorded in tests, and mapped to the IAM actions an adapter needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PortOperation {
    DescribeInstance,
    ListInstances,
    ListSnapshots,
    PromoteReadReplica,
    CreateReadReplica,
    CreateSnapshot,
    RestoreFromSnapshot,
    RestoreToPointInTime,
    DeleteInstance,
    DeleteSnapshot,
    DescribeSnapshot,
    CopySnapshot,
    TagSnapshot,
    ChangeMasterCredentials,
    AddTags,
    VerifySnapshot,
    SqlProbe,
    SqlWriteMarker,
    SqlMarkerPresent,
    /// A drill's damage on its throw-away copy.
    SqlCommitDamage,
    SqlWriteGrants,
    SqlRevokeWrites,
    SqlGrantWrites,
    SqlRowChanges,
    SqlRevokeApiKeys,
    SqlAuditActivity,
    SqlRowCounts,
    SqlSetRolePassword,
    DnsUpsert,
    DnsChangeStatus,
    DnsGetRecord,
    /// A drill's record goes (read first: a DELETE names the set exactly).
    DnsDeleteRecord,
    NotifierPublish,
    NotifierSubscriptions,
    SecretsGet,
    SecretsPut,
    SecretsGetStage,
    SecretsPutPending,
    SecretsMoveStage,
    ReportPut,
    ReportGet,
    /// The keys under a prefix (drctl finds a run's report; no function).
    ReportList,
    LockAcquire,
    LockRelease,
    LockHolder,
    IntegrityVerify,
    MetricsPut,
    /// The newest period of a metric (GetMetricStatistics).
    MetricsLatest,
    FenceInstance,
    /// A drill's fault on its throw-away primary (RDS: quarantine group).
    InjectFailure,
    TopologyGet,
    TopologyPut,
    TopologyList,
    /// A drill's copy leaves the registry.
    TopologyDelete,
    ApprovalOpen,
    ApprovalGet,
    ApprovalClose,
    /// SendTaskSuccess / SendTaskFailure: an answer handed to a waiting task.
    TaskAnswer,
    /// StartExecution of the page-escalation state machine.
    PageRaise,
    JournalRecord,
    JournalEntries,
    LockTakeOver,
    LockHolders,
    ExecutionState,
    /// The definition an execution ran and the deployed one
    /// (DescribeStateMachineForExecution, DescribeStateMachine).
    ExecutionDefinition,
    FleetDescribe,
    FleetSetDesiredCapacity,
    FleetStartRefresh,
    FleetDescribeRefresh,
    /// An HTTP GET of a health URL (no AWS API).
    HealthGet,
    /// The application's deployment (Kubernetes): read it and its revisions.
    DeploymentDescribe,
    DeploymentRestart,
    DeploymentRollBack,
    DeploymentSetEnv,
    DeploymentRunMigration,
    DeploymentMigrationState,
    /// Migrations applied and known to a revision (a `showmigrations` job).
    DeploymentMigrations,
    /// An alarm by name (DescribeAlarms).
    TriggerAlarm,
    /// The rules that target a state machine (ListRuleNamesByTarget,
    /// DescribeRule).
    TriggerRules,
    /// A Scheduler schedule (GetSchedule).
    TriggerSchedule,
    /// A deployed state machine (DescribeStateMachine).
    PermissionsStateMachine,
    /// A deployed function (GetFunctionConfiguration).
    PermissionsFunction,
    /// A role's policies read and simulated (IAM).
    PermissionsSimulate,
    FirewallGetIpSet,
    FirewallUpdateIpSet,
    UserNotify,
    LedgerEntries,
    LedgerClaim,
    LedgerMarkSent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_are_checked_before_any_client_is_built() {
        for good in [
            "us-east-1",
            "us-west-2",
            "ap-southeast-2",
            "us-gov-west-1",
            "eu-central-1",
        ] {
            assert!(validate_region(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "us-east",
            "us-east-",
            "US-EAST-1",
            "us_east_1",
            "us-east-1a",
            "us--east-1",
            "us-east-100",
            "east-1",
            "us-east-1 ",
            "../us-east-1",
        ] {
            let error = validate_region(bad).expect_err(bad);
            assert_eq!(error.name(), "InvalidInput", "{bad}");
        }
    }
}
mod app;
pub use app::*;
