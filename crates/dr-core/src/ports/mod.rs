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
                | SqlWriteGrants
                | SqlRevokeWrites
                | SqlGrantWrites
                | SqlRowChanges
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
    ChangeMasterCredentials,
    AddTags,
    VerifySnapshot,
    SqlProbe,
    SqlWriteMarker,
    SqlMarkerPresent,
    SqlWriteGrants,
    SqlRevokeWrites,
    SqlGrantWrites,
    SqlRowChanges,
    DnsUpsert,
    DnsChangeStatus,
    DnsGetRecord,
    NotifierPublish,
    NotifierSubscriptions,
    SecretsGet,
    SecretsPut,
    ReportPut,
    ReportGet,
    LockAcquire,
    LockRelease,
    LockHolder,
    IntegrityVerify,
    MetricsPut,
    FenceInstance,
    TopologyGet,
    TopologyPut,
    TopologyList,
    ApprovalOpen,
    ApprovalGet,
    ApprovalClose,
    JournalRecord,
    JournalEntries,
    LockTakeOver,
    LockHolders,
    ExecutionState,
}
