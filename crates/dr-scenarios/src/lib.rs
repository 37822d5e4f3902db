//! The runbook's steps as handlers over the ports. Every Lambda function and
//! every local Task dispatches here: one [`Function`] per function, one
//! [`dispatch`] for all of them.

pub mod drill;
pub mod drill_report;
pub mod failover;
pub mod lock;
pub mod notify;
pub mod probe;
pub mod report;

use std::sync::Arc;

use dr_core::*;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Everything a handler may need; adapters are chosen by the caller (AWS in a
/// Lambda, the local platform and moto on a laptop).
#[derive(Clone)]
pub struct Ports {
    pub control_plane: Arc<dyn DatabaseControlPlane>,
    pub sql: Arc<dyn SqlTarget>,
    pub secrets: Arc<dyn Secrets>,
    pub dns: Arc<dyn Dns>,
    pub notifier: Arc<dyn Notifier>,
    pub reports: Arc<dyn ReportStore>,
    pub lock: Arc<dyn RecoveryLock>,
    pub integrity: Arc<dyn IntegrityVerifier>,
    pub metrics: Arc<dyn Metrics>,
    /// How SQL connections are protected (mode and CA bundle).
    pub database_tls: DatabaseTls,
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
    DrillReplica,
    DrillMarker,
    DrillPromote,
    DrillCleanup,
    RunbookReview,
    DrillReport,
    ProbeDatabase,
}

impl Function {
    pub const ALL: [Function; 19] = [
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
        Function::DrillReplica,
        Function::DrillMarker,
        Function::DrillPromote,
        Function::DrillCleanup,
        Function::RunbookReview,
        Function::DrillReport,
        Function::ProbeDatabase,
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
            Function::DrillReplica => "DrillReplicaFunction",
            Function::DrillMarker => "DrillMarkerFunction",
            Function::DrillPromote => "DrillPromoteFunction",
            Function::DrillCleanup => "DrillCleanupFunction",
            Function::RunbookReview => "RunbookReviewFunction",
            Function::DrillReport => "DrillReportFunction",
            Function::ProbeDatabase => "ProbeDatabaseFunction",
        }
    }

    /// Every port operation the handler may call, on any path. The
    /// deployment checks turn this into the IAM actions the function's
    /// policy must allow; the handler tests record real calls against it.
    pub fn port_calls(self) -> &'static [PortOperation] {
        use PortOperation::*;
        match self {
            Function::CheckDatabase => &[DescribeInstance, SecretsGet, SqlProbe],
            Function::PromoteReplica => &[DescribeInstance, PromoteReadReplica],
            Function::DescribeInstance => &[DescribeInstance],
            Function::UpdateDns => &[DescribeInstance, DnsGetRecord, DnsUpsert, DnsChangeStatus],
            Function::CreateReplica => &[DescribeInstance, CreateReadReplica],
            Function::Notify => &[NotifierPublish],
            Function::Report => &[ReportPut, NotifierPublish],
            Function::RecoveryLock => &[LockAcquire, LockRelease, LockHolder],
            Function::DrillScope => &[ListInstances],
            Function::VerifyBackup => &[ListSnapshots, VerifySnapshot],
            Function::StartRestore => &[RestoreFromSnapshot],
            Function::RestoreCheck => &[
                DescribeInstance,
                ListSnapshots,
                SecretsGet,
                SqlProbe,
                IntegrityVerify,
            ],
            Function::DrillReplica => &[DescribeInstance, CreateReadReplica],
            Function::DrillMarker => &[
                DescribeInstance,
                SecretsGet,
                SqlWriteMarker,
                SqlMarkerPresent,
            ],
            Function::DrillPromote => &[DescribeInstance, PromoteReadReplica],
            Function::DrillCleanup => &[ListInstances, DeleteInstance],
            Function::RunbookReview => &[NotifierSubscriptions],
            Function::DrillReport => &[ReportGet, ReportPut, NotifierPublish],
            Function::ProbeDatabase => &[SecretsGet, SqlProbe, MetricsPut],
        }
    }

    /// The crate under functions/.
    pub fn crate_dir(self) -> &'static str {
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
            Function::DrillReplica => "drill-replica",
            Function::DrillMarker => "drill-marker",
            Function::DrillPromote => "drill-promote",
            Function::DrillCleanup => "drill-cleanup",
            Function::RunbookReview => "runbook-review",
            Function::DrillReport => "drill-report",
            Function::ProbeDatabase => "probe-database",
        }
    }
}

/// Parses a payload strictly: unknown or missing fields are `InvalidInput`,
/// before anything is touched.
pub fn parse<T: DeserializeOwned>(function: Function, payload: Value) -> DrResult<T> {
    serde_json::from_value(payload)
        .map_err(|e| DrError::InvalidInput(format!("{} input: {e}", function.logical_id())))
}

fn to_value(output: impl serde::Serialize) -> DrResult<Value> {
    serde_json::to_value(output).map_err(|e| DrError::Internal(format!("serializing output: {e}")))
}

/// Runs one function on its payload.
pub async fn dispatch(function: Function, ports: &Ports, payload: Value) -> DrResult<Value> {
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
        Function::DrillReplica => {
            to_value(drill::drill_replica(ports, parse(function, payload)?).await?)
        }
        Function::DrillMarker => drill::drill_marker(ports, parse(function, payload)?).await,
        Function::DrillPromote => {
            to_value(drill::drill_promote(ports, parse(function, payload)?).await?)
        }
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
    }
}
