//! Ports: what the domain needs from the outside world.
//!
//! Domain logic and Lambda handlers are generic over these traits; adapters
//! (`aws` on the AWS SDK, `local` on PostgreSQL clusters and moto) implement
//! them. Every method returns [`DrError`](crate::DrError) so a failure always
//! carries a stable name.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::error::DrResult;
use crate::model::*;

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
    async fn add_tags(&self, resource: &ResourceId, tags: &Tags) -> DrResult<()>;
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

/// Where and as whom to connect to a database.
#[derive(Debug, Clone)]
pub struct DatabaseTarget {
    pub endpoint: Endpoint,
    pub database: String,
    pub username: String,
    /// Never logged: `SecretString`'s Debug prints a redaction marker.
    pub password: SecretString,
    pub connect_timeout_seconds: u64,
    pub statement_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// `SELECT 1`.
    Read,
    /// `SELECT 1` plus an insert into a dedicated probe table.
    ReadWrite,
}

/// Answer of a SQL probe. `healthy == false` always comes with a reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub healthy: bool,
    pub reason: Option<String>,
    pub in_recovery: Option<bool>,
    pub server_version: Option<String>,
    pub latency_ms: u64,
}

/// A named query that must return no rows (dbt-test style).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCheck {
    pub name: String,
    pub sql: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    pub name: String,
    pub passed: bool,
    pub violating_rows: u64,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// SQL access to a database for probes, counts and checks.
#[async_trait]
pub trait SqlTarget: Send + Sync {
    /// Writes a drill marker row (in a dedicated schema) and returns when.
    async fn write_marker(&self, target: &DatabaseTarget, marker: &str) -> DrResult<DateTime<Utc>>;
    /// Whether the marker row is there (on a replica: whether it replicated).
    async fn marker_present(&self, target: &DatabaseTarget, marker: &str) -> DrResult<bool>;
    /// Never fails for an unreachable database: that is an unhealthy report.
    async fn probe(&self, target: &DatabaseTarget, kind: ProbeKind) -> DrResult<ProbeReport>;
    /// Exact row count of every ordinary table in the `public` schema.
    async fn row_counts(&self, target: &DatabaseTarget) -> DrResult<BTreeMap<String, u64>>;
    async fn run_checks(
        &self,
        target: &DatabaseTarget,
        checks: &[NamedCheck],
    ) -> DrResult<Vec<CheckOutcome>>;
}

/// A DNS record as the platform points it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    pub hosted_zone_id: String,
    pub name: String,
    /// `CNAME` for database endpoints.
    pub record_type: String,
    pub ttl: u32,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DnsChangeStatus {
    Pending,
    Insync,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsChange {
    pub change_id: String,
    pub status: DnsChangeStatus,
}

#[async_trait]
pub trait Dns: Send + Sync {
    /// Creates or replaces the record (idempotent).
    async fn upsert_record(&self, record: &DnsRecord) -> DrResult<DnsChange>;
    async fn change_status(&self, change_id: &str) -> DrResult<DnsChange>;
    async fn get_record(
        &self,
        hosted_zone_id: &str,
        name: &str,
        record_type: &str,
    ) -> DrResult<Option<DnsRecord>>;
}

/// A message a person can act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Topic ARN (or local topic name).
    pub topic: String,
    pub subject: String,
    pub body: String,
    /// Machine-readable attributes (scenario, instance, outcome, ...).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// Who listens on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionCounts {
    pub confirmed: u32,
    pub pending: u32,
}

#[async_trait]
pub trait Notifier: Send + Sync {
    /// Publishes and returns the message id.
    async fn publish(&self, notification: &Notification) -> DrResult<String>;
    /// Confirmed and pending subscriptions of a topic (a topic nobody
    /// listens to is an alert nobody gets).
    async fn subscriptions(&self, topic: &str) -> DrResult<SubscriptionCounts>;
}

/// One datapoint of a custom metric (a CloudWatch metric in AWS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDatum {
    pub name: String,
    pub value: f64,
    /// CloudWatch unit name: `Count`, `Milliseconds`, `None`, ...
    pub unit: String,
    pub dimensions: BTreeMap<String, String>,
    pub timestamp: DateTime<Utc>,
}

/// Where symptom metrics go; alarms on them start the recoveries.
#[async_trait]
pub trait Metrics: Send + Sync {
    async fn put(&self, namespace: &str, data: &[MetricDatum]) -> DrResult<()>;
}

/// Reference to a WAF IP set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpSetRef {
    pub name: String,
    pub id: String,
    /// `REGIONAL` or `CLOUDFRONT`.
    pub scope: String,
}

/// The addresses of an IP set and the optimistic-lock token to update it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpSetContents {
    pub addresses: Vec<String>,
    pub lock_token: String,
}

#[async_trait]
pub trait Firewall: Send + Sync {
    async fn get_ip_set(&self, ip_set: &IpSetRef) -> DrResult<IpSetContents>;
    /// Replaces the addresses; fails with `Conflict` when `lock_token` is stale.
    async fn update_ip_set(
        &self,
        ip_set: &IpSetRef,
        addresses: &[String],
        lock_token: &str,
    ) -> DrResult<()>;
}

#[async_trait]
pub trait Secrets: Send + Sync {
    async fn get_secret(&self, secret_id: &str) -> DrResult<SecretString>;
    /// Stores a new current version and returns its version id.
    async fn put_secret(&self, secret_id: &str, value: &SecretString) -> DrResult<String>;
}

/// Reference to the application fleet (Auto Scaling group + target group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetRef {
    pub auto_scaling_group: String,
    pub target_group_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetInstance {
    pub instance_id: String,
    pub lifecycle_state: String,
    pub health_status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetStatus {
    pub desired_capacity: u32,
    pub min_size: u32,
    pub max_size: u32,
    pub instances: Vec<FleetInstance>,
    pub healthy_targets: u32,
    pub unhealthy_targets: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRefresh {
    pub refresh_id: String,
    /// As Auto Scaling reports it: Pending, InProgress, Successful, Failed, ...
    pub status: String,
    pub percentage_complete: Option<u32>,
    pub started_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait AppFleet: Send + Sync {
    async fn describe_fleet(&self, fleet: &FleetRef) -> DrResult<FleetStatus>;
    async fn set_desired_capacity(&self, fleet: &FleetRef, desired: u32) -> DrResult<()>;
    /// Starts a refresh, or returns the one already in progress.
    async fn start_instance_refresh(&self, fleet: &FleetRef) -> DrResult<InstanceRefresh>;
    async fn describe_instance_refresh(
        &self,
        fleet: &FleetRef,
        refresh_id: &str,
    ) -> DrResult<InstanceRefresh>;
}

/// Where reports are kept: S3 on AWS, a directory locally.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Stores `body` under `key` and returns where it is (s3://… or a path).
    async fn put(&self, key: &str, content_type: &str, body: &[u8]) -> DrResult<String>;
    /// The body under `key`, if any.
    async fn get(&self, key: &str) -> DrResult<Option<Vec<u8>>>;
}

/// Who holds the recovery of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub resource: String,
    pub owner: String,
    pub acquired_at: DateTime<Utc>,
}

/// One recovery per database at a time: a second trigger sees who holds it.
#[async_trait]
pub trait RecoveryLock: Send + Sync {
    /// Takes the lock for `owner`; taking it again as the same owner succeeds
    /// (retries are idempotent); another owner gets `Conflict` naming the holder.
    async fn acquire(&self, resource: &str, owner: &str, ttl_seconds: u64) -> DrResult<LockHolder>;
    /// Releases the lock if `owner` holds it; releasing a free lock is a no-op.
    async fn release(&self, resource: &str, owner: &str) -> DrResult<()>;
    async fn holder(&self, resource: &str) -> DrResult<Option<LockHolder>>;
}

/// What the integrity verifier found, in the terms a drill or a recovery needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegritySummary {
    pub passed: bool,
    /// One line per failed or broken check (name, count, detail).
    pub findings: Vec<String>,
    pub row_counts: BTreeMap<String, u64>,
    pub checks_run: usize,
    pub duration_ms: u64,
}

/// Is this database consistent (orphans, unvalidated constraints, invalid or
/// corrupt indexes, row counts against a baseline)?
#[async_trait]
pub trait IntegrityVerifier: Send + Sync {
    async fn verify(
        &self,
        target: &DatabaseTarget,
        baseline: Option<&BTreeMap<String, u64>>,
        tolerance: f64,
    ) -> DrResult<IntegritySummary>;
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
    SqlRowCounts,
    SqlRunChecks,
    SqlWriteMarker,
    SqlMarkerPresent,
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
}
