//! What the Lambda `bootstrap` does: find which function it is (`DR_FUNCTION`,
//! set per function in template.yaml), load the AWS configuration once, build
//! the adapters, and serve that one handler, with each error's stable name as
//! the Lambda `errorType` so state machines can Retry/Catch on it.

use std::sync::Arc;

use async_trait::async_trait;
use dr_aws::{AwsClients, AwsTarget};
use dr_core::*;
use dr_scenarios::{dispatch, Function, Ports};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

/// The environment variables the functions read.
/// Which function this process serves, by [`Function::name`].
pub const FUNCTION_ENV: &str = "DR_FUNCTION";
pub const REPORTS_BUCKET_ENV: &str = "REPORTS_BUCKET";
pub const LOCK_TABLE_ENV: &str = "LOCK_TABLE";
pub const TOPOLOGY_TABLE_ENV: &str = "TOPOLOGY_TABLE";
pub const APPROVALS_TABLE_ENV: &str = "APPROVALS_TABLE";
/// The page-escalation state machine a page's climb is started on.
pub const PAGE_ESCALATION_ENV: &str = "PAGE_ESCALATION_STATE_MACHINE_ARN";
pub const JOURNAL_TABLE_ENV: &str = "JOURNAL_TABLE";
/// Who was told of which incident (the security breach's notifications).
pub const NOTIFICATIONS_TABLE_ENV: &str = "NOTIFICATIONS_TABLE";
/// The deployment's initial topology (JSON), registered by the first run
/// that finds none: the stack parameters are only ever the starting point.
pub const INITIAL_TOPOLOGY_ENV: &str = "INITIAL_TOPOLOGY";

/// Stands in for an adapter whose configuration is missing, so that only the
/// function that needs it fails, with a message naming the variable.
struct Unconfigured(&'static str);

impl Unconfigured {
    fn error(&self) -> DrError {
        DrError::Internal(format!(
            "environment variable {} is not set for this function",
            self.0
        ))
    }
}

#[async_trait]
impl ReportStore for Unconfigured {
    async fn put(&self, _key: &str, _content_type: &str, _body: &[u8]) -> DrResult<String> {
        Err(self.error())
    }
    async fn list(&self, _prefix: &str) -> DrResult<Vec<String>> {
        Err(self.error())
    }
    async fn get(&self, _key: &str) -> DrResult<Option<Vec<u8>>> {
        Err(self.error())
    }
}

#[async_trait]
impl RecoveryLock for Unconfigured {
    async fn acquire(
        &self,
        _resource: &str,
        _owner: &str,
        _ttl_seconds: u64,
    ) -> DrResult<LockHolder> {
        Err(self.error())
    }
    async fn take_over(
        &self,
        _resource: &str,
        _owner: &str,
        _stale_owner: &str,
        _ttl_seconds: u64,
    ) -> DrResult<LockHolder> {
        Err(self.error())
    }
    async fn holders(&self) -> DrResult<Vec<LockHolder>> {
        Err(self.error())
    }
    async fn release(&self, _resource: &str, _owner: &str) -> DrResult<()> {
        Err(self.error())
    }
    async fn holder(&self, _resource: &str) -> DrResult<Option<LockHolder>> {
        Err(self.error())
    }
}

#[async_trait]
impl TopologyRegistry for Unconfigured {
    async fn get(&self, _database: &str) -> DrResult<Option<Topology>> {
        Err(self.error())
    }
    async fn put(&self, _topology: &Topology, _expected: Option<u64>) -> DrResult<Topology> {
        Err(self.error())
    }
    async fn list(&self) -> DrResult<Vec<Topology>> {
        Err(self.error())
    }
    async fn delete(&self, _database: &str, _expected: u64) -> DrResult<bool> {
        Err(self.error())
    }
}

#[async_trait]
impl Pager for Unconfigured {
    async fn raise(&self, _page: &Page) -> DrResult<()> {
        Err(self.error())
    }
}

#[async_trait]
impl ApprovalStore for Unconfigured {
    async fn open(&self, _request: &ApprovalRequest, _token: &SecretString) -> DrResult<()> {
        Err(self.error())
    }
    async fn get(
        &self,
        _execution_name: &str,
    ) -> DrResult<Option<(ApprovalRequest, SecretString)>> {
        Err(self.error())
    }
    async fn close(
        &self,
        _execution_name: &str,
        _status: ApprovalStatus,
        _answer: Option<ApprovalAnswer>,
    ) -> DrResult<ApprovalRequest> {
        Err(self.error())
    }
}

#[async_trait]
impl RecoveryJournal for Unconfigured {
    async fn record(&self, _entry: &JournalEntry) -> DrResult<()> {
        Err(self.error())
    }
    async fn entries(&self, _recovery_id: &str) -> DrResult<Vec<JournalEntry>> {
        Err(self.error())
    }
}

#[async_trait]
impl NotificationLedger for Unconfigured {
    async fn entries(&self, _incident: &str) -> DrResult<Vec<LedgerEntry>> {
        Err(self.error())
    }
    async fn claim(
        &self,
        _incident: &str,
        _users: &[i64],
        _at: chrono::DateTime<chrono::Utc>,
    ) -> DrResult<()> {
        Err(self.error())
    }
    async fn mark_sent(
        &self,
        _incident: &str,
        _sent: &[(i64, String)],
        _at: chrono::DateTime<chrono::Utc>,
    ) -> DrResult<()> {
        Err(self.error())
    }
}

/// The initial topology from the environment. A malformed one is logged
/// and ignored: a run then finds the database unregistered and pages,
/// rather than registering a guess.
fn initial_topologies() -> Vec<Topology> {
    let Ok(text) = std::env::var(INITIAL_TOPOLOGY_ENV) else {
        return Vec::new();
    };
    let parsed = serde_json::from_str::<Topology>(&text)
        .map_err(|e| DrError::InvalidInput(e.to_string()))
        .and_then(|t| t.validate().map(|()| t));
    match parsed {
        Ok(topology) => vec![topology],
        Err(error) => {
            tracing::error!(%error, "{INITIAL_TOPOLOGY_ENV} is not a valid topology; ignored");
            Vec::new()
        }
    }
}

/// The AWS adapters behind every port.
/// The EKS cluster the application's deployment runs in.
pub const EKS_CLUSTER_ENV: &str = "EKS_CLUSTER_NAME";

#[async_trait]
impl AppDeployment for Unconfigured {
    async fn describe_deployment(&self, _d: &DeploymentRef) -> DrResult<DeploymentStatus> {
        Err(self.error())
    }
    async fn rollout_restart(&self, _d: &DeploymentRef) -> DrResult<()> {
        Err(self.error())
    }
    async fn roll_back(&self, _d: &DeploymentRef, _to: &AppRevision) -> DrResult<u64> {
        Err(self.error())
    }
    async fn set_env(&self, _d: &DeploymentRef, _n: &str, _v: Option<&str>) -> DrResult<()> {
        Err(self.error())
    }
    async fn run_migration(&self, _d: &DeploymentRef, _j: &MigrationJob) -> DrResult<()> {
        Err(self.error())
    }
    async fn migration_state(&self, _d: &DeploymentRef, _j: &str) -> DrResult<JobState> {
        Err(self.error())
    }
    async fn migrations(
        &self,
        _d: &DeploymentRef,
        _r: u64,
        _a: &str,
    ) -> DrResult<MigrationHistory> {
        Err(self.error())
    }
}

/// The application's deployment: the EKS cluster `EKS_CLUSTER_NAME` names,
/// in the function's region, with the function's own credentials.
fn eks_deployment(config: &dr_aws::SdkConfig) -> Arc<dyn AppDeployment> {
    let cluster = std::env::var(EKS_CLUSTER_ENV)
        .ok()
        .filter(|c| !c.trim().is_empty());
    match (cluster, config.credentials_provider(), config.region()) {
        (Some(cluster), Some(credentials), Some(region)) => Arc::new(
            dr_k8s::KubernetesDeployment::new(dr_k8s::Access::Eks(dr_k8s::EksCluster::new(
                aws_sdk_eks::Client::new(config),
                credentials,
                region.as_ref(),
                cluster.trim(),
            ))),
        ),
        _ => Arc::new(Unconfigured(EKS_CLUSTER_ENV)),
    }
}

pub fn aws_ports(config: &dr_aws::SdkConfig, clients: &AwsClients) -> DrResult<Ports> {
    let reports: Arc<dyn ReportStore> = match std::env::var(REPORTS_BUCKET_ENV) {
        Ok(bucket) => Arc::new(dr_aws::S3ReportStore::new(
            clients.s3.clone(),
            bucket,
            dr_aws::reports::REPORTS_PREFIX,
        )),
        Err(_) => Arc::new(Unconfigured(REPORTS_BUCKET_ENV)),
    };
    let lock: Arc<dyn RecoveryLock> = match std::env::var(LOCK_TABLE_ENV) {
        Ok(table) => Arc::new(dr_aws::DynamoDbLock::new(clients.dynamodb.clone(), table)),
        Err(_) => Arc::new(Unconfigured(LOCK_TABLE_ENV)),
    };
    let topology: Arc<dyn TopologyRegistry> = match std::env::var(TOPOLOGY_TABLE_ENV) {
        Ok(table) => Arc::new(dr_aws::DynamoDbTopology::new(
            clients.dynamodb.clone(),
            table,
        )),
        Err(_) => Arc::new(Unconfigured(TOPOLOGY_TABLE_ENV)),
    };
    let approvals: Arc<dyn ApprovalStore> = match std::env::var(APPROVALS_TABLE_ENV) {
        Ok(table) => Arc::new(dr_aws::DynamoDbApprovals::new(
            clients.dynamodb.clone(),
            table,
        )),
        Err(_) => Arc::new(Unconfigured(APPROVALS_TABLE_ENV)),
    };
    let journal: Arc<dyn RecoveryJournal> = match std::env::var(JOURNAL_TABLE_ENV) {
        Ok(table) => Arc::new(dr_aws::DynamoDbJournal::new(
            clients.dynamodb.clone(),
            table,
        )),
        Err(_) => Arc::new(Unconfigured(JOURNAL_TABLE_ENV)),
    };
    let ledger: Arc<dyn NotificationLedger> = match std::env::var(NOTIFICATIONS_TABLE_ENV) {
        Ok(table) => Arc::new(dr_aws::DynamoDbLedger::new(clients.dynamodb.clone(), table)),
        Err(_) => Arc::new(Unconfigured(NOTIFICATIONS_TABLE_ENV)),
    };
    let control_plane =
        dr_aws::RdsControlPlane::new(clients.rds.clone(), Some(clients.cloudwatch.clone()));
    Ok(Ports {
        control_plane: Arc::new(control_plane.clone()),
        regions: Arc::new(dr_aws::RdsRegions::new(control_plane)),
        sql: Arc::new(dr_postgres::PostgresSqlTarget),
        secrets: Arc::new(dr_aws::SecretsManagerSecrets::new(clients.secrets.clone())),
        dns: Arc::new(dr_aws::Route53Dns::new(clients.route53.clone())),
        notifier: Arc::new(dr_aws::SnsNotifier::new(clients.sns.clone())),
        reports,
        lock,
        integrity: Arc::new(dr_integrity::PostgresIntegrityVerifier { jobs: 2 }),
        metrics: Arc::new(dr_aws::CloudWatchMetrics::new(clients.cloudwatch.clone())),
        // A bad mode falls back to the strictest policy without a bundle:
        // every connection then fails as our own misconfiguration, which
        // pages, instead of connecting less safely than configured.
        database_tls: DatabaseTls::from_env().unwrap_or_else(|error| {
            tracing::error!(%error, "bad SQL TLS configuration");
            DatabaseTls::default()
        }),
        topology,
        approvals,
        tokens: Arc::new(dr_aws::SfnTaskTokens::new(clients.sfn.clone())),
        pager: match std::env::var(PAGE_ESCALATION_ENV) {
            Ok(arn) => Arc::new(dr_aws::SfnPager::new(clients.sfn.clone(), arn)),
            Err(_) => Arc::new(Unconfigured(PAGE_ESCALATION_ENV)),
        },
        journal,
        executions: Arc::new(dr_aws::SfnExecutions::new(clients.sfn.clone())),
        fleet: Arc::new(dr_aws::AutoScalingFleet::new(
            clients.autoscaling.clone(),
            clients.elbv2.clone(),
        )),
        health: Arc::new(dr_http::HttpHealthCheck::new()?),
        deployment: eks_deployment(config),
        firewall: Arc::new(dr_aws::WafFirewall::new(clients.wafv2.clone())),
        triggers: Arc::new(dr_aws::AwsTriggers::new(
            clients.cloudwatch.clone(),
            clients.events.clone(),
            clients.scheduler.clone(),
        )),
        permissions: Arc::new(dr_aws::AwsPermissions::new(
            clients.sfn.clone(),
            clients.lambda.clone(),
            clients.iam.clone(),
        )),
        users: Arc::new(dr_aws::SnsUserNotifier::new(clients.sns.clone())),
        ledger,
        initial_topologies: initial_topologies(),
    })
}

/// The Lambda failure of a function for an error: its stable name, and its
/// message after the function's name (which step failed, in the Cause that
/// Step Functions shows and in the bootstrap's reply).
pub fn diagnostic(function: Function, error: &DrError) -> Diagnostic {
    Diagnostic {
        error_type: error.name().to_owned(),
        error_message: format!("{}: {error}", function.name()),
    }
}

/// The function named by `DR_FUNCTION`: a missing or unknown name is a
/// deployment mistake, refused before the runtime takes any invocation.
pub fn configured_function(value: Option<&str>) -> Result<Function, String> {
    let known = || Function::ALL.map(Function::name).join(", ");
    match value {
        None => Err(format!(
            "{FUNCTION_ENV} is not set: the template names each function's step (one of {})",
            known()
        )),
        Some(name) => Function::from_name(name)
            .ok_or_else(|| format!("{FUNCTION_ENV}={name:?} is no function; known: {}", known())),
    }
}

/// Serves the function `DR_FUNCTION` names until the Lambda runtime stops
/// it; exits with an error (Lambda's `Runtime.ExitError`, logged) when the
/// variable names none.
pub async fn serve_configured() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let value = std::env::var(FUNCTION_ENV).ok();
    let function = configured_function(value.as_deref()).map_err(|message| {
        tracing::error!(%message, "no function to serve");
        message
    })?;
    serve(function).await
}

/// Serves one function until the Lambda runtime stops it.
async fn serve(function: Function) -> Result<(), lambda_runtime::Error> {
    // Init phases, logged once per cold start: `scripts/bench lambda` reads
    // them to tell what dominates init.
    let started = std::time::Instant::now();
    let config = AwsTarget::default().load().await;
    let aws_config_us = started.elapsed().as_micros() as u64;
    let clients = AwsClients::new(&config);
    let clients_us = started.elapsed().as_micros() as u64 - aws_config_us;
    let ports = aws_ports(&config, &clients)?;
    let ports_us = started.elapsed().as_micros() as u64 - aws_config_us - clients_us;
    tracing::info!(
        function = function.name(),
        aws_config_us,
        clients_us,
        ports_us,
        "initialised"
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let ports = ports.clone();
        async move {
            let request_id = event.context.request_id.clone();
            tracing::info!(function = function.logical_id(), %request_id, "invoked");
            dispatch(function, &ports, event.payload).await.map_err(|error| {
                tracing::warn!(function = function.logical_id(), %request_id, error_type = error.name(), %error, "failed");
                diagnostic(function, &error)
            })
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_type_is_the_stable_name() {
        let d = diagnostic(
            Function::PromoteReplica,
            &DrError::ReplicaLagTooHigh {
                lag_seconds: 30000.0,
                max_lag_seconds: 21600.0,
            },
        );
        assert_eq!(d.error_type, "ReplicaLagTooHigh");
        assert!(d.error_message.starts_with("promote-replica: "));
        assert!(d.error_message.contains("30000.0 s behind"));
    }

    #[test]
    fn the_function_is_the_one_dr_function_names_and_nothing_else() {
        for function in Function::ALL {
            assert_eq!(configured_function(Some(function.name())), Ok(function));
        }
        let cases = [
            (None, "DR_FUNCTION is not set"),
            (Some(""), "DR_FUNCTION=\"\" is no function"),
            (Some("Notify"), "is no function"),
            (Some("NotifyFunction"), "is no function"),
            (Some("notify "), "is no function"),
        ];
        for (value, expected) in cases {
            let error = configured_function(value).expect_err("refused");
            assert!(error.contains(expected), "{value:?}: {error}");
            assert!(error.contains("check-database"), "lists the names: {error}");
        }
    }
}
