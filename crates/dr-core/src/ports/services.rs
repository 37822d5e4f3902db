//! The other services a runbook step calls: DNS, notifications, metrics,
//! the firewall, secrets, the app fleet, the report store and the integrity
//! verifier.

use super::*;

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
    /// Deletes the record if it exists, whatever it points at; `None` when
    /// there was none (idempotent). A record changed between the read and
    /// the delete is a `Conflict`.
    async fn delete_record(
        &self,
        hosted_zone_id: &str,
        name: &str,
        record_type: &str,
    ) -> DrResult<Option<DnsChange>>;
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

/// The most messages one send takes (SNS `PublishBatch` takes ten).
pub const USER_BATCH_MAX: usize = 10;

/// A message to one user of the platform: the user-notification topic
/// carries it to the platform's mailer, which knows the user's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMessage {
    pub user_id: i64,
    /// The same for every attempt to tell this user of this incident
    /// (`<incident>.<user>`): the topic's deduplication id, and what the
    /// mailer deduplicates on.
    pub notification_id: String,
    pub subject: String,
    pub body: String,
}

/// What became of one message of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserDelivery {
    Sent { message_id: String },
    Failed { reason: String },
}

#[async_trait]
pub trait UserNotifier: Send + Sync {
    /// Sends up to [`USER_BATCH_MAX`] messages to `topic` in one call; one
    /// result per message, in order (a batch may partly fail).
    async fn send_batch(
        &self,
        topic: &str,
        messages: &[UserMessage],
    ) -> DrResult<Vec<UserDelivery>>;
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

/// One period of a metric, as GetMetricStatistics gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// The period's start.
    pub at: DateTime<Utc>,
    pub minimum: f64,
    pub maximum: f64,
}

/// Where symptom metrics go; alarms on them start the recoveries.
#[async_trait]
pub trait Metrics: Send + Sync {
    async fn put(&self, namespace: &str, data: &[MetricDatum]) -> DrResult<()>;
    /// The newest one-minute period of a metric (with exactly these
    /// dimensions) since `since`; `None` when nothing was published.
    async fn latest(
        &self,
        namespace: &str,
        metric: &str,
        dimensions: &BTreeMap<String, String>,
        since: DateTime<Utc>,
    ) -> DrResult<Option<MetricPoint>>;
}

/// A CloudWatch alarm, as DescribeAlarms shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmInfo {
    pub name: String,
    /// Whether its state changes act (a disabled alarm still changes state,
    /// and EventBridge still sees it; its own actions do not run).
    pub actions_enabled: bool,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
}

/// An EventBridge rule (default bus), as DescribeRule shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleInfo {
    pub name: String,
    pub enabled: bool,
    /// Its event pattern; `None` for a scheduled rule.
    pub event_pattern: Option<serde_json::Value>,
}

/// An EventBridge Scheduler schedule, as GetSchedule shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleInfo {
    pub name: String,
    pub enabled: bool,
    /// What it starts.
    pub target_arn: String,
}

/// What starts the scenarios: the alarms, and the rules that send their
/// state changes (or GuardDuty's findings) to the state machines.
#[async_trait]
pub trait Triggers: Send + Sync {
    /// An alarm by name; `None` when it does not exist.
    async fn alarm(&self, name: &str) -> DrResult<Option<AlarmInfo>>;
    /// The rules of the default event bus with a target of `target_arn`.
    async fn rules_targeting(&self, target_arn: &str) -> DrResult<Vec<RuleInfo>>;
    /// A schedule of the default group by name; `None` when it does not
    /// exist.
    async fn schedule(&self, name: &str) -> DrResult<Option<ScheduleInfo>>;
}

/// A state machine as deployed: its definition and the role it runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployedStateMachine {
    pub arn: String,
    pub definition: serde_json::Value,
    pub role_arn: String,
}

/// A function as deployed: its role, and which handler it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedFunction {
    pub arn: String,
    pub role_arn: String,
    /// Its `DR_FUNCTION` (none: not one of ours).
    pub dr_function: Option<String>,
}

/// An action to simulate for a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRequest {
    pub action: String,
    /// The resources it acts on; empty: those the role's own policies name
    /// for the action (what the deployment scoped it to).
    pub resources: Vec<String>,
}

/// What IAM's policy simulation decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Decision {
    Allowed,
    ExplicitDeny,
    ImplicitDeny,
}

impl Decision {
    /// IAM's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::ExplicitDeny => "explicitDeny",
            Decision::ImplicitDeny => "implicitDeny",
        }
    }
}

/// One simulated action on one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionVerdict {
    pub action: String,
    pub resource: String,
    pub decision: Decision,
    /// Condition keys the simulation needed and was not given.
    #[serde(default)]
    pub missing_context: Vec<String>,
}

/// Whether the deployed roles allow what the steps do: the state machines
/// and functions as deployed, and IAM's policy simulation of their roles.
#[async_trait]
pub trait Permissions: Send + Sync {
    async fn state_machine(&self, arn: &str) -> DrResult<DeployedStateMachine>;
    async fn function(&self, arn: &str) -> DrResult<DeployedFunction>;
    /// Simulates the role calling each action on its resources (all
    /// identity policies, permissions boundary and SCPs included).
    async fn simulate(
        &self,
        role_arn: &str,
        requests: &[ActionRequest],
    ) -> DrResult<Vec<ActionVerdict>>;
    /// The IAM actions the adapter of an operation calls.
    fn actions(&self, operation: PortOperation) -> Vec<String>;
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
    /// `IPV4` or `IPV6`: a WAF IP set holds addresses of one version only
    /// (moto takes any; AWS refuses the update).
    #[serde(default)]
    pub ip_version: Option<String>,
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

/// One version of a secret, found by a stage label.
#[derive(Debug, Clone)]
pub struct SecretVersion {
    pub version_id: String,
    /// Never logged: `SecretString`'s Debug prints a redaction marker.
    pub value: SecretString,
    pub stages: Vec<String>,
}

#[async_trait]
pub trait Secrets: Send + Sync {
    /// The `AWSCURRENT` value (always asked for by stage).
    async fn get_secret(&self, secret_id: &str) -> DrResult<SecretString>;
    /// Stores a new current version and returns its version id.
    async fn put_secret(&self, secret_id: &str, value: &SecretString) -> DrResult<String>;
    /// The version `stage` labels (`AWSCURRENT`, `AWSPENDING`, …); `None`
    /// when no version has it.
    async fn get_secret_stage(
        &self,
        secret_id: &str,
        stage: &str,
    ) -> DrResult<Option<SecretVersion>>;
    /// Stores `value` as a new version labelled `AWSPENDING`, its id
    /// `token` (Secrets Manager's client request token: the same token
    /// with the same value stores nothing new). Returns the version id.
    async fn put_secret_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &SecretString,
    ) -> DrResult<String>;
    /// Moves `stage` to `version_id`, from `from` (the version that holds it).
    async fn move_secret_stage(
        &self,
        secret_id: &str,
        stage: &str,
        version_id: &str,
        from: Option<&str>,
    ) -> DrResult<()>;
    /// Takes `stage` off `version_id`.
    async fn remove_secret_stage(
        &self,
        secret_id: &str,
        stage: &str,
        version_id: &str,
    ) -> DrResult<()>;
}

/// Reference to the application fleet (Auto Scaling group + target group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetRef {
    pub auto_scaling_group: String,
    pub target_group_arn: Option<String>,
    /// The group's region (default: the home region).
    #[serde(default)]
    pub region: Option<String>,
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
    /// Every key that starts with `prefix`, sorted.
    async fn list(&self, prefix: &str) -> DrResult<Vec<String>>;
}

/// One check that failed (or could not run), as a report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrityFinding {
    pub name: String,
    /// `foreign_key`, `custom`, `amcheck`, `row_count`, ...
    pub kind: String,
    /// `failed` or `error` (the check could not run).
    pub status: String,
    /// Violating rows, when counted.
    pub count: Option<u64>,
    /// A few violating keys.
    #[serde(default)]
    pub samples: Vec<serde_json::Value>,
    pub detail: Option<String>,
}

/// What the integrity verifier found, in the terms a drill or a recovery needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegritySummary {
    pub passed: bool,
    /// One line per failed or broken check (name, count, detail).
    pub findings: Vec<String>,
    /// The failed or broken checks in full.
    #[serde(default)]
    pub failed_checks: Vec<IntegrityFinding>,
    pub row_counts: BTreeMap<String, u64>,
    pub checks_run: usize,
    pub duration_ms: u64,
}

/// Is this database consistent (orphans, unvalidated constraints, invalid or
/// corrupt indexes, row counts against a baseline, and the named checks:
/// queries that must return no rows)?
#[async_trait]
pub trait IntegrityVerifier: Send + Sync {
    async fn verify(
        &self,
        target: &DatabaseTarget,
        baseline: Option<&BTreeMap<String, u64>>,
        tolerance: f64,
        checks: &[NamedCheck],
    ) -> DrResult<IntegritySummary>;
}
