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

/// How a SQL connection is protected, named as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain TCP: only when asked for explicitly (RDS for PostgreSQL 15 and
    /// later refuses it by default, `rds.force_ssl=1`).
    Disable,
    /// Encrypted, but the server's certificate is not checked: protects
    /// against eavesdropping, not against impersonation.
    Require,
    /// Encrypted, and the certificate chains to the configured CA bundle;
    /// the host name is not checked (for a name the certificate cannot carry,
    /// such as our own CNAME in front of an RDS endpoint).
    VerifyCa,
    /// Encrypted, the chain checked and the host name matched. The default.
    #[default]
    VerifyFull,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }

    pub fn parse(value: &str) -> DrResult<Self> {
        match value {
            "disable" => Ok(TlsMode::Disable),
            "require" => Ok(TlsMode::Require),
            "verify-ca" => Ok(TlsMode::VerifyCa),
            "verify-full" => Ok(TlsMode::VerifyFull),
            other => Err(DrError::InvalidInput(format!(
                "TLS mode {other:?} is not one of disable, require, verify-ca, verify-full"
            ))),
        }
    }

    /// Whether the server's certificate must chain to a CA we trust.
    pub fn verifies_certificate(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyFull)
    }
}

impl std::fmt::Display for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The TLS policy of SQL connections: a mode and the CA bundle that signs
/// the servers' certificates (AWS's RDS bundle, which no public trust store
/// holds; the local stack's own CA).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabaseTls {
    pub mode: TlsMode,
    pub ca_file: Option<PathBuf>,
}

impl DatabaseTls {
    /// Environment variable naming the mode (default `verify-full`).
    pub const MODE_ENV: &'static str = "DB_TLS_MODE";
    /// Environment variable naming the PEM CA bundle.
    pub const CA_FILE_ENV: &'static str = "DB_TLS_CA_FILE";

    pub fn verify_full(ca_file: impl Into<PathBuf>) -> Self {
        DatabaseTls {
            mode: TlsMode::VerifyFull,
            ca_file: Some(ca_file.into()),
        }
    }

    /// The policy a function is configured with. A bad mode is an error; a
    /// missing bundle is found at the first connection, where it is reported
    /// as our own misconfiguration rather than the database's failure.
    pub fn from_env() -> DrResult<Self> {
        let mode = match std::env::var(Self::MODE_ENV) {
            Ok(v) if !v.trim().is_empty() => TlsMode::parse(v.trim())?,
            _ => TlsMode::default(),
        };
        let ca_file = std::env::var_os(Self::CA_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Ok(DatabaseTls { mode, ca_file })
    }

    /// The same bundle with another mode (an input may lower verify-full
    /// to verify-ca for a CNAME the certificate cannot name).
    pub fn with_mode(&self, mode: TlsMode) -> Self {
        DatabaseTls {
            mode,
            ca_file: self.ca_file.clone(),
        }
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

/// The registry of database topologies (a DynamoDB table).
#[async_trait]
pub trait TopologyRegistry: Send + Sync {
    async fn get(&self, database: &str) -> DrResult<Option<Topology>>;
    /// Stores `topology` as version `expected_version + 1` (1 when
    /// `expected_version` is `None`, which requires that none exists) and
    /// returns what was stored; a stored version other than the expected
    /// one is a `Conflict` (someone else changed the roles meanwhile).
    async fn put(&self, topology: &Topology, expected_version: Option<u64>) -> DrResult<Topology>;
    /// Every registered database.
    async fn list(&self) -> DrResult<Vec<Topology>>;
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    /// Nobody answered before the deadline; the safe default applied.
    Expired,
}

/// Who answered an approval, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalAnswer {
    pub approved: bool,
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A question to a person, waiting for an answer by execution name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub execution_name: String,
    pub execution_arn: String,
    pub scenario: String,
    pub resource: String,
    pub question: String,
    pub facts: Vec<String>,
    pub proposed_action: String,
    pub default_action: String,
    pub requested_at: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    pub status: ApprovalStatus,
    #[serde(default)]
    pub answer: Option<ApprovalAnswer>,
}

/// Where pending approvals wait (a DynamoDB table): what `drctl approve`
/// finds by execution name, with the task token it answers. The token is a
/// capability (whoever holds it decides), so it is kept apart and secret.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Records a pending approval (again, on a retry of the same request).
    async fn open(&self, request: &ApprovalRequest, token: &SecretString) -> DrResult<()>;
    async fn get(&self, execution_name: &str) -> DrResult<Option<(ApprovalRequest, SecretString)>>;
    /// Closes a pending approval with its outcome; one that is no longer
    /// pending is a `Conflict` naming how it was closed.
    async fn close(
        &self,
        execution_name: &str,
        status: ApprovalStatus,
        answer: Option<ApprovalAnswer>,
    ) -> DrResult<ApprovalRequest>;
}

/// Answers a task waiting for a token: Step Functions' SendTaskSuccess and
/// SendTaskFailure on AWS, the local runner's token inbox locally.
#[async_trait]
pub trait TaskTokens: Send + Sync {
    async fn send_success(&self, token: &SecretString, output: &serde_json::Value) -> DrResult<()>;
    async fn send_failure(&self, token: &SecretString, error: &str, cause: &str) -> DrResult<()>;
}

/// How a journaled step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalStatus {
    /// Begun and not known to have ended (the run may have died).
    Started,
    Done,
    Failed,
}

/// What one step of a recovery did, kept across the executions that work
/// on the same recovery (a rerun resumes it), so the report tells the truth
/// about every attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub recovery_id: String,
    /// The step (`plan`, `confirm`, `fence`, `promote`, `dns`, ...).
    pub key: String,
    /// The execution that wrote it.
    pub execution: String,
    pub at: DateTime<Utc>,
    pub status: JournalStatus,
    pub summary: String,
    #[serde(default)]
    pub detail: Option<serde_json::Value>,
}

/// The journal of recoveries (a DynamoDB table keyed by recovery and step).
#[async_trait]
pub trait RecoveryJournal: Send + Sync {
    /// Writes the entry of `(recovery_id, key)`, replacing an earlier one.
    async fn record(&self, entry: &JournalEntry) -> DrResult<()>;
    /// Every entry of a recovery, oldest first.
    async fn entries(&self, recovery_id: &str) -> DrResult<Vec<JournalEntry>>;
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
    pub tls: DatabaseTls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// `SELECT 1`.
    Read,
    /// `SELECT 1` plus an insert into a dedicated probe table.
    ReadWrite,
}

/// Why a SQL probe failed, classified by what it says about the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeFailure {
    // The database does not serve: evidence for a failover.
    /// Nothing listens at the endpoint (TCP connection refused).
    Refused,
    /// No answer in time (a hung server, a partition, or a firewall that
    /// drops packets: only the control plane can tell which).
    TimedOut,
    /// The connection broke during the probe.
    ConnectionLost,
    /// The server answers but does not take sessions (starting, shutting
    /// down, in crash recovery).
    NotAccepting,
    /// The server has no connection slot left.
    TooManyConnections,
    /// A write probe met a read-only database.
    ReadOnly,
    /// The probe's query failed on the server.
    QueryFailed,
    // Our probe cannot probe: never evidence for a failover.
    /// The server rejected our credentials (SQLSTATE class 28, password).
    Authentication,
    /// The server rejected our address or user (SQLSTATE class 28, pg_hba).
    AccessDenied,
    /// The TLS handshake or the certificate check failed.
    Tls,
    /// The endpoint's name does not resolve.
    DnsUnresolvable,
    /// The credentials secret is missing, unreadable or malformed.
    SecretUnavailable,
    /// Our own configuration is wrong (no CA bundle, a bad TLS mode, ...).
    Misconfigured,
}

/// What a probe failure says: the database is down, or our probe is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeClass {
    DatabaseDown,
    ProbeBroken,
}

impl ProbeFailure {
    pub fn class(self) -> ProbeClass {
        use ProbeFailure::*;
        match self {
            Refused | TimedOut | ConnectionLost | NotAccepting | TooManyConnections | ReadOnly
            | QueryFailed => ProbeClass::DatabaseDown,
            Authentication | AccessDenied | Tls | DnsUnresolvable | SecretUnavailable
            | Misconfigured => ProbeClass::ProbeBroken,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ProbeFailure::*;
        match self {
            Refused => "refused",
            TimedOut => "timed_out",
            ConnectionLost => "connection_lost",
            NotAccepting => "not_accepting",
            TooManyConnections => "too_many_connections",
            ReadOnly => "read_only",
            QueryFailed => "query_failed",
            Authentication => "authentication",
            AccessDenied => "access_denied",
            Tls => "tls",
            DnsUnresolvable => "dns_unresolvable",
            SecretUnavailable => "secret_unavailable",
            Misconfigured => "misconfigured",
        }
    }

    /// What a person should fix when our probe is broken.
    pub fn remedy(self) -> &'static str {
        use ProbeFailure::*;
        match self {
            Authentication => {
                "the credentials in the secret are not the database's: check the secret's username and password"
            }
            AccessDenied => {
                "the database refuses our address or user: check pg_hba / security groups and the function's VPC"
            }
            Tls => {
                "the TLS handshake failed: check the CA bundle (DB_TLS_CA_FILE) and the TLS mode against the server's certificate"
            }
            DnsUnresolvable => {
                "the endpoint's name does not resolve: check the DNS record and the function's VPC resolver"
            }
            SecretUnavailable => {
                "the credentials secret cannot be read: check that it exists, holds {username, password} and that the function may read it"
            }
            Misconfigured => "the probe's configuration is wrong: see the reason",
            _ => "the database does not serve: see the reason",
        }
    }
}

/// Answer of a SQL probe. `healthy == false` always comes with a reason and
/// a classified failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub healthy: bool,
    pub reason: Option<String>,
    /// `None` exactly when healthy.
    #[serde(default)]
    pub failure: Option<ProbeFailure>,
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
    /// Takes the lock from `stale_owner` (whose execution has ended) for
    /// `owner`; `Conflict` when someone else holds it by now.
    async fn take_over(
        &self,
        resource: &str,
        owner: &str,
        stale_owner: &str,
        ttl_seconds: u64,
    ) -> DrResult<LockHolder>;
    /// Releases the lock if `owner` holds it; releasing a free lock is a no-op.
    async fn release(&self, resource: &str, owner: &str) -> DrResult<()>;
    async fn holder(&self, resource: &str) -> DrResult<Option<LockHolder>>;
    /// Every lock held, by resource.
    async fn holders(&self) -> DrResult<Vec<LockHolder>>;
}

/// Where an execution stands, as Step Functions names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionState {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl ExecutionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionState::Running => "RUNNING",
            ExecutionState::Succeeded => "SUCCEEDED",
            ExecutionState::Failed => "FAILED",
            ExecutionState::TimedOut => "TIMED_OUT",
            ExecutionState::Aborted => "ABORTED",
        }
    }
}

/// The executions of the state machines: Step Functions on AWS, the local
/// runner's registry locally. Used to tell a running holder of a lock from
/// one that died.
#[async_trait]
pub trait Executions: Send + Sync {
    /// The state of an execution by its ARN; `None` when it is not known
    /// here (then nothing can be concluded about it).
    async fn state(&self, execution_arn: &str) -> DrResult<Option<ExecutionState>>;
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
