//! The runbook's steps as handlers over the ports. Every Lambda function and
//! every local Task dispatches here: one [`Function`] per function, one
//! [`dispatch`] for all of them.

pub mod app;
pub mod approval;
pub mod breach;
pub mod corruption;
pub mod details;
pub mod drill;
pub mod drill_report;
pub mod escalation;
pub mod evidence;
pub mod failover;
pub mod html;
pub mod journal;
pub mod lock;
pub mod notify;
pub mod plan;
pub mod probe;
pub mod readiness;
pub mod region;
pub mod replication;
pub mod report;
pub mod restored;
pub mod rollback;
pub mod watch;

use std::sync::Arc;

use dr_core::*;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Everything a handler may need; adapters are chosen by the caller (AWS in a
/// Lambda, the local platform and moto on a laptop).
#[derive(Clone)]
pub struct Ports {
    /// The control plane of the home region (where the databases' primaries
    /// normally are).
    pub control_plane: Arc<dyn DatabaseControlPlane>,
    /// Every region's control plane, for the cross-region steps.
    pub regions: Arc<dyn RegionalControlPlanes>,
    pub sql: Arc<dyn SqlTarget>,
    pub secrets: Arc<dyn Secrets>,
    pub dns: Arc<dyn Dns>,
    pub notifier: Arc<dyn Notifier>,
    pub reports: Arc<dyn ReportStore>,
    pub lock: Arc<dyn RecoveryLock>,
    pub integrity: Arc<dyn IntegrityVerifier>,
    pub metrics: Arc<dyn Metrics>,
    pub topology: Arc<dyn TopologyRegistry>,
    pub approvals: Arc<dyn ApprovalStore>,
    /// Answers a waiting task (an answer recorded between two tiers of an
    /// escalation is handed to the next tier's token).
    pub tokens: Arc<dyn TaskTokens>,
    /// Starts a page's climb of the escalation path.
    pub pager: Arc<dyn Pager>,
    pub journal: Arc<dyn RecoveryJournal>,
    pub executions: Arc<dyn Executions>,
    /// The application servers (Auto Scaling), in any region.
    pub fleet: Arc<dyn AppFleet>,
    /// `curl <health URL>`: every procedure's last check.
    pub health: Arc<dyn HealthCheck>,
    /// The application's deployment (Kubernetes on AWS): revisions,
    /// rollout undo and status, env, migration jobs.
    pub deployment: Arc<dyn AppDeployment>,
    /// The WAF IP set that blocks addresses.
    pub firewall: Arc<dyn Firewall>,
    /// The alarms and rules that start the scenarios.
    pub triggers: Arc<dyn Triggers>,
    /// The deployed roles, simulated against what the steps do.
    pub permissions: Arc<dyn Permissions>,
    /// The platform's users (the user-notification topic).
    pub users: Arc<dyn UserNotifier>,
    /// Who was told of which incident.
    pub ledger: Arc<dyn NotificationLedger>,
    /// How SQL connections are protected (mode and CA bundle).
    pub database_tls: DatabaseTls,
    /// The deployment's initial topologies: registered by the first run
    /// that finds the registry without one, never over an existing record.
    pub initial_topologies: Vec<Topology>,
}

impl Ports {
    /// The control plane of `region`: the home one when none is named (or
    /// the home region is), another region's otherwise.
    pub fn plane(&self, region: Option<&str>) -> DrResult<Arc<dyn DatabaseControlPlane>> {
        match region {
            None => Ok(Arc::clone(&self.control_plane)),
            Some(r) if r == self.regions.home_region() => Ok(Arc::clone(&self.control_plane)),
            Some(r) => self.regions.control_plane(r),
        }
    }
}

/// The functions of the project, by the logical id they have in template.yaml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Function {
    CheckDatabase,
    PromoteReplica,
    DescribeInstance,
    UpdateDns,
    CreateReplica,
    Notify,
    Report,
    RecoveryLock,
    DrillScope,
    VerifyBackup,
    StartRestore,
    RestoreCheck,
    DrillCopy,
    DrillMarker,
    DrillCleanup,
    RunbookReview,
    DrillReport,
    ProbeDatabase,
    ValidateInput,
    ConfirmFailure,
    FenceInstance,
    UpdateTopology,
    RequestApproval,
    CorruptionPlan,
    IntegrityCheck,
    WriteAccess,
    SearchStep,
    PitrRestore,
    AssessLoss,
    CorruptionReport,
    CorruptionCleanup,
    ReplicationPlan,
    SourceSnapshot,
    SnapshotProgress,
    CopySnapshot,
    VerifyCopy,
    PruneCopies,
    ReplicationReport,
    RegionPlan,
    ConfirmRegion,
    ChooseCopy,
    RegionRestore,
    VerifyRegionRestore,
    ScaleFleet,
    RegionReport,
    ProbeRecord,
    BreachPlan,
    RevokeApiKeys,
    RotateCredentials,
    BlockAddresses,
    AssessImpact,
    BreachReport,
    NotifyUsers,
    AppPlan,
    RecoverFleet,
    VerifyHealth,
    AppReport,
    RollbackPlan,
    RollbackStep,
    RollbackReport,
    RestartApp,
    ReadOnlyCleanup,
    Readiness,
}

impl Function {
    pub const ALL: [Function; 63] = [
        Function::CheckDatabase,
        Function::PromoteReplica,
        Function::DescribeInstance,
        Function::UpdateDns,
        Function::CreateReplica,
        Function::Notify,
        Function::Report,
        Function::RecoveryLock,
        Function::DrillScope,
        Function::VerifyBackup,
        Function::StartRestore,
        Function::RestoreCheck,
        Function::DrillCopy,
        Function::DrillMarker,
        Function::DrillCleanup,
        Function::RunbookReview,
        Function::DrillReport,
        Function::ProbeDatabase,
        Function::ValidateInput,
        Function::ConfirmFailure,
        Function::FenceInstance,
        Function::UpdateTopology,
        Function::RequestApproval,
        Function::CorruptionPlan,
        Function::IntegrityCheck,
        Function::WriteAccess,
        Function::SearchStep,
        Function::PitrRestore,
        Function::AssessLoss,
        Function::CorruptionReport,
        Function::CorruptionCleanup,
        Function::ReplicationPlan,
        Function::SourceSnapshot,
        Function::SnapshotProgress,
        Function::CopySnapshot,
        Function::VerifyCopy,
        Function::PruneCopies,
        Function::ReplicationReport,
        Function::RegionPlan,
        Function::ConfirmRegion,
        Function::ChooseCopy,
        Function::RegionRestore,
        Function::VerifyRegionRestore,
        Function::ScaleFleet,
        Function::RegionReport,
        Function::ProbeRecord,
        Function::BreachPlan,
        Function::RevokeApiKeys,
        Function::RotateCredentials,
        Function::BlockAddresses,
        Function::AssessImpact,
        Function::BreachReport,
        Function::NotifyUsers,
        Function::AppPlan,
        Function::RecoverFleet,
        Function::VerifyHealth,
        Function::AppReport,
        Function::RollbackPlan,
        Function::RollbackStep,
        Function::RollbackReport,
        Function::RestartApp,
        Function::ReadOnlyCleanup,
        Function::Readiness,
    ];

    /// The logical id in template.yaml (and the local handler name).
    pub fn logical_id(self) -> &'static str {
        match self {
            Function::CheckDatabase => "CheckDatabaseFunction",
            Function::PromoteReplica => "PromoteReplicaFunction",
            Function::DescribeInstance => "DescribeInstanceFunction",
            Function::UpdateDns => "UpdateDnsFunction",
            Function::CreateReplica => "CreateReplicaFunction",
            Function::Notify => "NotifyFunction",
            Function::Report => "ReportFunction",
            Function::RecoveryLock => "RecoveryLockFunction",
            Function::DrillScope => "DrillScopeFunction",
            Function::VerifyBackup => "VerifyBackupFunction",
            Function::StartRestore => "StartRestoreFunction",
            Function::RestoreCheck => "RestoreCheckFunction",
            Function::DrillCopy => "DrillCopyFunction",
            Function::DrillMarker => "DrillMarkerFunction",
            Function::DrillCleanup => "DrillCleanupFunction",
            Function::RunbookReview => "RunbookReviewFunction",
            Function::DrillReport => "DrillReportFunction",
            Function::ProbeDatabase => "ProbeDatabaseFunction",
            Function::ValidateInput => "ValidateInputFunction",
            Function::ConfirmFailure => "ConfirmFailureFunction",
            Function::FenceInstance => "FenceInstanceFunction",
            Function::UpdateTopology => "UpdateTopologyFunction",
            Function::RequestApproval => "RequestApprovalFunction",
            Function::CorruptionPlan => "CorruptionPlanFunction",
            Function::IntegrityCheck => "IntegrityCheckFunction",
            Function::WriteAccess => "WriteAccessFunction",
            Function::SearchStep => "SearchStepFunction",
            Function::PitrRestore => "PitrRestoreFunction",
            Function::AssessLoss => "AssessLossFunction",
            Function::CorruptionReport => "CorruptionReportFunction",
            Function::CorruptionCleanup => "CorruptionCleanupFunction",
            Function::ReplicationPlan => "ReplicationPlanFunction",
            Function::SourceSnapshot => "SourceSnapshotFunction",
            Function::SnapshotProgress => "SnapshotProgressFunction",
            Function::CopySnapshot => "CopySnapshotFunction",
            Function::VerifyCopy => "VerifyCopyFunction",
            Function::PruneCopies => "PruneCopiesFunction",
            Function::ReplicationReport => "ReplicationReportFunction",
            Function::RegionPlan => "RegionPlanFunction",
            Function::ConfirmRegion => "ConfirmRegionFunction",
            Function::ChooseCopy => "ChooseCopyFunction",
            Function::RegionRestore => "RegionRestoreFunction",
            Function::VerifyRegionRestore => "VerifyRegionRestoreFunction",
            Function::ScaleFleet => "ScaleFleetFunction",
            Function::RegionReport => "RegionReportFunction",
            Function::ProbeRecord => "ProbeRecordFunction",
            Function::BreachPlan => "BreachPlanFunction",
            Function::RevokeApiKeys => "RevokeApiKeysFunction",
            Function::RotateCredentials => "RotateCredentialsFunction",
            Function::BlockAddresses => "BlockAddressesFunction",
            Function::AssessImpact => "AssessImpactFunction",
            Function::BreachReport => "BreachReportFunction",
            Function::NotifyUsers => "NotifyUsersFunction",
            Function::AppPlan => "AppPlanFunction",
            Function::RecoverFleet => "RecoverFleetFunction",
            Function::VerifyHealth => "VerifyHealthFunction",
            Function::AppReport => "AppReportFunction",
            Function::RollbackPlan => "RollbackPlanFunction",
            Function::RollbackStep => "RollbackStepFunction",
            Function::RollbackReport => "RollbackReportFunction",
            Function::RestartApp => "RestartAppFunction",
            Function::ReadOnlyCleanup => "ReadOnlyCleanupFunction",
            Function::Readiness => "ReadinessFunction",
        }
    }

    /// Every port operation the handler may call, on any path. The
    /// deployment checks turn this into the IAM actions the function's
    /// policy must allow; the handler tests record real calls against it.
    pub fn port_calls(self) -> &'static [PortOperation] {
        use PortOperation::*;
        match self {
            Function::CheckDatabase => &[DescribeInstance, SecretsGet, SqlProbe],
            Function::PromoteReplica => &[
                DescribeInstance,
                PromoteReadReplica,
                JournalEntries,
                JournalRecord,
            ],
            Function::DescribeInstance => &[DescribeInstance],
            Function::UpdateDns => &[
                DescribeInstance,
                DnsGetRecord,
                DnsUpsert,
                DnsChangeStatus,
                JournalEntries,
                JournalRecord,
            ],
            Function::CreateReplica => &[
                DescribeInstance,
                CreateReadReplica,
                JournalEntries,
                JournalRecord,
            ],
            Function::Notify => &[NotifierPublish, PageRaise],
            Function::Report => &[ReportPut, NotifierPublish, JournalEntries, PageRaise],
            Function::RecoveryLock => &[
                LockAcquire,
                LockRelease,
                LockHolder,
                TopologyList,
                LockTakeOver,
                LockHolders,
                ExecutionState,
                NotifierPublish,
            ],
            Function::DrillScope => &[ListInstances],
            Function::VerifyBackup => &[ListSnapshots, VerifySnapshot],
            Function::StartRestore => &[DescribeInstance, RestoreFromSnapshot],
            Function::RestoreCheck => &[
                DescribeInstance,
                ListSnapshots,
                SecretsGet,
                SqlProbe,
                IntegrityVerify,
                ChangeMasterCredentials,
            ],
            Function::DrillCopy => &[
                DescribeInstance,
                CreateReadReplica,
                TopologyList,
                TopologyGet,
                TopologyPut,
                DnsUpsert,
                DnsGetRecord,
                InjectFailure,
                CreateSnapshot,
                ReportList,
                ReportGet,
                ExecutionDefinition,
                // Is the region-restore rehearsal's instance gone?
                ListInstances,
            ],
            Function::DrillMarker => &[
                DescribeInstance,
                TopologyGet,
                SecretsGet,
                SqlWriteMarker,
                SqlMarkerPresent,
                SqlCommitDamage,
            ],
            Function::DrillCleanup => &[
                ListInstances,
                DeleteInstance,
                ListSnapshots,
                DeleteSnapshot,
                ExecutionState,
                TopologyList,
                TopologyDelete,
                DnsDeleteRecord,
                LockHolder,
                LockRelease,
            ],
            Function::RunbookReview => &[NotifierSubscriptions],
            Function::DrillReport => &[ReportGet, ReportPut, NotifierPublish],
            Function::ProbeDatabase => &[SecretsGet, SqlProbe, MetricsPut],
            Function::ValidateInput => &[
                TopologyGet,
                TopologyPut,
                DescribeInstance,
                DnsGetRecord,
                JournalEntries,
                JournalRecord,
            ],
            Function::ConfirmFailure => &[DescribeInstance, SecretsGet, SqlProbe, JournalRecord],
            Function::FenceInstance => &[FenceInstance, JournalEntries, JournalRecord],
            Function::UpdateTopology => &[TopologyGet, TopologyPut, JournalEntries, JournalRecord],
            Function::RequestApproval => &[
                ApprovalOpen,
                NotifierPublish,
                ApprovalClose,
                ApprovalGet,
                TaskAnswer,
            ],
            Function::CorruptionPlan => &[TopologyGet, DescribeInstance, DeploymentDescribe],
            Function::IntegrityCheck => &[
                DescribeInstance,
                SecretsGet,
                IntegrityVerify,
                SqlProbe,
                ChangeMasterCredentials,
                SqlSetRolePassword,
            ],
            Function::WriteAccess => &[
                DescribeInstance,
                SecretsGet,
                SqlWriteGrants,
                SqlRevokeWrites,
                SqlGrantWrites,
                SqlRowCounts,
                JournalEntries,
                JournalRecord,
            ],
            Function::SearchStep => &[],
            Function::PitrRestore => &[
                DescribeInstance,
                RestoreToPointInTime,
                DeleteInstance,
                ListInstances,
            ],
            Function::AssessLoss => &[DescribeInstance, SecretsGet, SqlRowChanges, ReportPut],
            Function::CorruptionReport => &[JournalEntries, ReportPut, NotifierPublish, PageRaise],
            Function::CorruptionCleanup => &[
                ListInstances,
                DescribeInstance,
                DeleteInstance,
                JournalEntries,
                JournalRecord,
                TopologyGet,
                SecretsGet,
                SqlGrantWrites,
            ],
            Function::ReplicationPlan => &[TopologyList],
            Function::SourceSnapshot => &[ListSnapshots, CreateSnapshot],
            Function::SnapshotProgress => &[DescribeSnapshot],
            Function::CopySnapshot => &[CopySnapshot],
            Function::VerifyCopy => &[DescribeSnapshot, VerifySnapshot, TagSnapshot],
            Function::PruneCopies => &[ListSnapshots, DeleteSnapshot, MetricsPut],
            Function::ReplicationReport => &[ReportPut, NotifierPublish],
            Function::RegionPlan => &[TopologyGet, DnsGetRecord],
            Function::ConfirmRegion => &[DescribeInstance, ListInstances, ListSnapshots],
            Function::ProbeRecord => &[SecretsGet, SqlProbe],
            Function::BreachPlan => &[TopologyGet, FirewallGetIpSet],
            Function::RevokeApiKeys => &[
                DescribeInstance,
                SecretsGet,
                SqlAuditActivity,
                SqlRevokeApiKeys,
                ReportPut,
                ReportGet,
                TopologyGet,
                JournalEntries,
                JournalRecord,
            ],
            Function::RotateCredentials => &[
                DescribeInstance,
                SecretsGet,
                SecretsGetStage,
                SecretsPutPending,
                SecretsMoveStage,
                SqlProbe,
                SqlSetRolePassword,
                ChangeMasterCredentials,
            ],
            Function::BlockAddresses => &[
                FirewallGetIpSet,
                FirewallUpdateIpSet,
                JournalEntries,
                JournalRecord,
            ],
            Function::AssessImpact => &[
                DescribeInstance,
                SecretsGet,
                SqlAuditActivity,
                ReportPut,
                LedgerEntries,
            ],
            Function::BreachReport => &[
                JournalEntries,
                ReportPut,
                ReportGet,
                NotifierPublish,
                LedgerEntries,
                PageRaise,
            ],
            Function::NotifyUsers => &[
                ReportGet,
                LedgerEntries,
                LedgerClaim,
                UserNotify,
                LedgerMarkSent,
            ],
            Function::ChooseCopy => &[ListSnapshots],
            Function::RegionRestore => &[
                TopologyGet,
                DescribeInstance,
                RestoreFromSnapshot,
                AddTags,
                ListInstances,
                DeleteInstance,
                DnsGetRecord,
                JournalEntries,
                JournalRecord,
            ],
            Function::VerifyRegionRestore => &[
                DescribeInstance,
                SecretsGet,
                SqlProbe,
                IntegrityVerify,
                ChangeMasterCredentials,
                SqlSetRolePassword,
            ],
            Function::ScaleFleet => &[
                FleetDescribe,
                FleetSetDesiredCapacity,
                JournalEntries,
                JournalRecord,
            ],
            Function::RegionReport => &[JournalEntries, ReportPut, NotifierPublish, PageRaise],
            Function::AppPlan => &[FleetDescribe, HealthGet],
            Function::RecoverFleet => &[
                FleetDescribe,
                FleetSetDesiredCapacity,
                FleetStartRefresh,
                FleetDescribeRefresh,
                JournalEntries,
                JournalRecord,
            ],
            Function::VerifyHealth => &[HealthGet],
            Function::AppReport => &[JournalEntries, ReportPut, NotifierPublish, PageRaise],
            Function::RollbackPlan => &[
                DeploymentDescribe,
                DeploymentMigrations,
                JournalEntries,
                JournalRecord,
            ],
            Function::RollbackStep => &[
                DeploymentDescribe,
                DeploymentRollBack,
                DeploymentRunMigration,
                DeploymentMigrationState,
                JournalEntries,
                JournalRecord,
            ],
            Function::RollbackReport => &[JournalEntries, ReportPut, NotifierPublish, PageRaise],
            Function::RestartApp => &[
                DeploymentRestart,
                DeploymentDescribe,
                DeploymentSetEnv,
                JournalEntries,
                JournalRecord,
            ],
            Function::ReadOnlyCleanup => &[
                DeploymentSetEnv,
                JournalEntries,
                JournalRecord,
                NotifierPublish,
            ],
            // Outside the VPC: the credentials are judged from the SQL
            // probe's metric, never by a session of its own.
            Function::Readiness => &[
                TopologyGet,
                DescribeInstance,
                ListSnapshots,
                NotifierSubscriptions,
                FirewallGetIpSet,
                FleetDescribe,
                DeploymentDescribe,
                MetricsLatest,
                MetricsPut,
                ReportPut,
                TriggerAlarm,
                TriggerRules,
                TriggerSchedule,
                PermissionsStateMachine,
                PermissionsFunction,
                PermissionsSimulate,
            ],
        }
    }

    /// The function's name: what the template sets in `DR_FUNCTION` for it,
    /// what `drctl invoke` takes, and its sample event's file name.
    pub fn name(self) -> &'static str {
        match self {
            Function::CheckDatabase => "check-database",
            Function::PromoteReplica => "promote-replica",
            Function::DescribeInstance => "describe-instance",
            Function::UpdateDns => "update-dns",
            Function::CreateReplica => "create-replica",
            Function::Notify => "notify",
            Function::Report => "report",
            Function::RecoveryLock => "recovery-lock",
            Function::DrillScope => "drill-scope",
            Function::VerifyBackup => "verify-backup",
            Function::StartRestore => "start-restore",
            Function::RestoreCheck => "restore-check",
            Function::DrillCopy => "drill-copy",
            Function::DrillMarker => "drill-marker",
            Function::DrillCleanup => "drill-cleanup",
            Function::RunbookReview => "runbook-review",
            Function::DrillReport => "drill-report",
            Function::ProbeDatabase => "probe-database",
            Function::ValidateInput => "validate-input",
            Function::ConfirmFailure => "confirm-failure",
            Function::FenceInstance => "fence-instance",
            Function::UpdateTopology => "update-topology",
            Function::RequestApproval => "request-approval",
            Function::CorruptionPlan => "corruption-plan",
            Function::IntegrityCheck => "integrity-check",
            Function::WriteAccess => "write-access",
            Function::SearchStep => "search-step",
            Function::PitrRestore => "pitr-restore",
            Function::AssessLoss => "assess-loss",
            Function::CorruptionReport => "corruption-report",
            Function::CorruptionCleanup => "corruption-cleanup",
            Function::ReplicationPlan => "replication-plan",
            Function::SourceSnapshot => "source-snapshot",
            Function::SnapshotProgress => "snapshot-progress",
            Function::CopySnapshot => "copy-snapshot",
            Function::VerifyCopy => "verify-copy",
            Function::PruneCopies => "prune-copies",
            Function::ReplicationReport => "replication-report",
            Function::RegionPlan => "region-plan",
            Function::ConfirmRegion => "confirm-region",
            Function::ChooseCopy => "choose-copy",
            Function::RegionRestore => "region-restore",
            Function::VerifyRegionRestore => "verify-region-restore",
            Function::ScaleFleet => "scale-fleet",
            Function::RegionReport => "region-report",
            Function::ProbeRecord => "probe-record",
            Function::BreachPlan => "breach-plan",
            Function::RevokeApiKeys => "revoke-api-keys",
            Function::RotateCredentials => "rotate-credentials",
            Function::BlockAddresses => "block-addresses",
            Function::AssessImpact => "assess-impact",
            Function::BreachReport => "breach-report",
            Function::NotifyUsers => "notify-users",
            Function::AppPlan => "app-plan",
            Function::RecoverFleet => "recover-fleet",
            Function::VerifyHealth => "verify-health",
            Function::AppReport => "app-report",
            Function::RollbackPlan => "rollback-plan",
            Function::RollbackStep => "rollback-step",
            Function::RollbackReport => "rollback-report",
            Function::RestartApp => "restart-app",
            Function::ReadOnlyCleanup => "read-only-cleanup",
            Function::Readiness => "readiness",
        }
    }

    /// The function of a name (see [`Function::name`]), exactly.
    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The function of a name or logical id.
    pub fn named(name: &str) -> Option<Function> {
        Function::from_name(name)
            .or_else(|| Function::ALL.into_iter().find(|f| f.logical_id() == name))
    }
}

/// At most 500 characters of a message that may quote an input (a serde
/// error names the unknown field, which may be huge).
pub(crate) fn truncate_message(message: &str) -> String {
    if message.chars().count() <= 500 {
        message.to_owned()
    } else {
        let head: String = message.chars().take(480).collect();
        format!("{head}… (truncated)")
    }
}

/// Parses a payload strictly: unknown or missing fields are `InvalidInput`,
/// before anything is touched.
pub fn parse<T: DeserializeOwned>(function: Function, payload: Value) -> DrResult<T> {
    serde_json::from_value(payload).map_err(|e| {
        DrError::InvalidInput(format!(
            "{} input: {}",
            function.logical_id(),
            truncate_message(&e.to_string())
        ))
    })
}

pub(crate) fn to_value(output: impl serde::Serialize) -> DrResult<Value> {
    serde_json::to_value(output).map_err(|e| DrError::Internal(format!("serializing output: {e}")))
}

/// Runs one function on its payload. A panic anywhere below (a handler, an
/// adapter, an SDK that `expect`s a request to serialize) is caught and
/// becomes an `Internal` error naming the function, so no input can crash a
/// Lambda or a local run: the state machine catches it and notifies.
pub async fn dispatch(function: Function, ports: &Ports, payload: Value) -> DrResult<Value> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(dispatch_unguarded(function, ports, payload))
        .catch_unwind()
        .await
    {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            tracing::error!(
                function = function.logical_id(),
                panic = truncate_message(what),
                "handler panicked"
            );
            Err(DrError::Internal(format!(
                "{} panicked: {}",
                function.logical_id(),
                truncate_message(what)
            )))
        }
    }
}

async fn dispatch_unguarded(function: Function, ports: &Ports, payload: Value) -> DrResult<Value> {
    match function {
        Function::CheckDatabase => {
            to_value(failover::check_database(ports, parse(function, payload)?).await?)
        }
        Function::PromoteReplica => {
            to_value(failover::promote_replica(ports, parse(function, payload)?).await?)
        }
        Function::DescribeInstance => {
            to_value(failover::describe_instance(ports, parse(function, payload)?).await?)
        }
        Function::UpdateDns => {
            to_value(failover::update_dns(ports, parse(function, payload)?).await?)
        }
        Function::CreateReplica => {
            to_value(failover::create_replica(ports, parse(function, payload)?).await?)
        }
        Function::Notify => to_value(notify::notify(ports, parse(function, payload)?).await?),
        Function::Report => to_value(report::report(ports, parse(function, payload)?).await?),
        Function::RecoveryLock => {
            to_value(lock::recovery_lock(ports, parse(function, payload)?).await?)
        }
        Function::DrillScope => {
            to_value(drill::drill_scope(ports, parse(function, payload)?).await?)
        }
        Function::VerifyBackup => {
            to_value(drill::verify_backup(ports, parse(function, payload)?).await?)
        }
        Function::StartRestore => {
            to_value(drill::start_restore(ports, parse(function, payload)?).await?)
        }
        Function::RestoreCheck => {
            to_value(drill::restore_check(ports, parse(function, payload)?).await?)
        }
        Function::DrillCopy => drill::drill_copy(ports, parse(function, payload)?).await,
        Function::DrillMarker => drill::drill_marker(ports, parse(function, payload)?).await,
        Function::DrillCleanup => {
            to_value(drill::drill_cleanup(ports, parse(function, payload)?).await?)
        }
        Function::RunbookReview => {
            to_value(drill::runbook_review(ports, parse(function, payload)?).await?)
        }
        Function::DrillReport => {
            to_value(drill_report::drill_report(ports, parse(function, payload)?).await?)
        }
        Function::ProbeDatabase => {
            to_value(probe::probe_database(ports, parse(function, payload)?).await?)
        }
        Function::ValidateInput => {
            to_value(plan::validate_input(ports, parse(function, payload)?).await?)
        }
        Function::ConfirmFailure => {
            to_value(failover::confirm_failure(ports, parse(function, payload)?).await?)
        }
        Function::FenceInstance => {
            to_value(failover::fence_instance(ports, parse(function, payload)?).await?)
        }
        Function::UpdateTopology => {
            to_value(failover::update_topology(ports, parse(function, payload)?).await?)
        }
        Function::RequestApproval => {
            to_value(approval::approval(ports, parse(function, payload)?).await?)
        }
        Function::CorruptionPlan => {
            to_value(corruption::corruption_plan(ports, parse(function, payload)?).await?)
        }
        Function::IntegrityCheck => {
            to_value(corruption::steps::integrity_check(ports, parse(function, payload)?).await?)
        }
        Function::WriteAccess => {
            to_value(corruption::writes::write_access(ports, parse(function, payload)?).await?)
        }
        Function::SearchStep => {
            to_value(corruption::steps::search_step(parse(function, payload)?)?)
        }
        Function::PitrRestore => {
            to_value(corruption::steps::pitr_restore(ports, parse(function, payload)?).await?)
        }
        Function::AssessLoss => {
            to_value(corruption::loss::assess_loss(ports, parse(function, payload)?).await?)
        }
        Function::CorruptionReport => {
            to_value(corruption::report::corruption_report(ports, parse(function, payload)?).await?)
        }
        Function::CorruptionCleanup => to_value(
            corruption::cleanup::corruption_cleanup(ports, parse(function, payload)?).await?,
        ),
        Function::ReplicationPlan => {
            to_value(replication::replication_plan(ports, parse(function, payload)?).await?)
        }
        Function::SourceSnapshot => {
            to_value(replication::steps::source_snapshot(ports, parse(function, payload)?).await?)
        }
        Function::SnapshotProgress => {
            to_value(replication::steps::snapshot_status(ports, parse(function, payload)?).await?)
        }
        Function::CopySnapshot => {
            to_value(replication::steps::copy_snapshot(ports, parse(function, payload)?).await?)
        }
        Function::VerifyCopy => {
            to_value(replication::steps::verify_copy(ports, parse(function, payload)?).await?)
        }
        Function::PruneCopies => {
            to_value(replication::steps::prune_copies(ports, parse(function, payload)?).await?)
        }
        Function::ReplicationReport => to_value(
            replication::steps::replication_report(ports, parse(function, payload)?).await?,
        ),
        Function::RegionPlan => {
            to_value(region::region_plan(ports, parse(function, payload)?).await?)
        }
        Function::ConfirmRegion => {
            to_value(region::steps::confirm_region(ports, parse(function, payload)?).await?)
        }
        Function::ChooseCopy => {
            to_value(region::steps::choose_copy_step(ports, parse(function, payload)?).await?)
        }
        Function::RegionRestore => {
            to_value(region::steps::region_restore(ports, parse(function, payload)?).await?)
        }
        Function::VerifyRegionRestore => {
            to_value(region::steps::verify_region_restore(ports, parse(function, payload)?).await?)
        }
        Function::ScaleFleet => {
            to_value(region::steps::scale_fleet(ports, parse(function, payload)?).await?)
        }
        Function::RegionReport => {
            to_value(region::report::region_report(ports, parse(function, payload)?).await?)
        }
        Function::ProbeRecord => {
            to_value(region::steps::probe_record(ports, parse(function, payload)?).await?)
        }
        Function::BreachPlan => {
            to_value(breach::steps::breach_plan(ports, parse(function, payload)?).await?)
        }
        Function::RevokeApiKeys => {
            to_value(breach::steps::revoke_keys(ports, parse(function, payload)?).await?)
        }
        Function::RotateCredentials => {
            to_value(breach::rotation::rotate_credentials(ports, parse(function, payload)?).await?)
        }
        Function::BlockAddresses => {
            to_value(breach::steps::block_step(ports, parse(function, payload)?).await?)
        }
        Function::AssessImpact => {
            to_value(breach::steps::assess_impact(ports, parse(function, payload)?).await?)
        }
        Function::BreachReport => {
            to_value(breach::report::breach_report(ports, parse(function, payload)?).await?)
        }
        Function::NotifyUsers => {
            to_value(breach::notify::notify_users(ports, parse(function, payload)?).await?)
        }
        Function::AppPlan => to_value(app::app_plan(ports, parse(function, payload)?).await?),
        Function::RecoverFleet => {
            to_value(app::steps::recover_fleet(ports, parse(function, payload)?).await?)
        }
        Function::VerifyHealth => {
            to_value(app::steps::verify_health(ports, parse(function, payload)?).await?)
        }
        Function::AppReport => {
            to_value(app::report::app_report(ports, parse(function, payload)?).await?)
        }
        Function::RollbackPlan => {
            to_value(rollback::rollback_plan(ports, parse(function, payload)?).await?)
        }
        Function::RollbackStep => {
            to_value(rollback::steps::rollback_step(ports, parse(function, payload)?).await?)
        }
        Function::RollbackReport => {
            to_value(rollback::report::rollback_report(ports, parse(function, payload)?).await?)
        }
        Function::RestartApp => {
            to_value(app::restart::restart_app(ports, parse(function, payload)?).await?)
        }
        Function::ReadOnlyCleanup => to_value(
            corruption::read_only::read_only_cleanup(ports, parse(function, payload)?).await?,
        ),
        Function::Readiness => {
            to_value(readiness::readiness(ports, parse(function, payload)?).await?)
        }
    }
}
