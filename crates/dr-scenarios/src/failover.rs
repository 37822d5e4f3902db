//! Runbook "Database Failure": confirm, guard, promote, wait, switch DNS,
//! verify, replace the replica.

use chrono::{DateTime, Utc};
use dr_core::*;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::evidence::{
    approval_window, evidence_policy, ApprovalWindow, ControlPlaneView, Decision, ProbeView,
};
use crate::journal::{journaled, JournalRef, Journaled};
use crate::plan::FailoverPlan;
use crate::Ports;

/// The RPO: a replica further behind than this is not promoted by default.
pub const DEFAULT_MAX_LAG_SECONDS: f64 = 6.0 * 3600.0;

pub(crate) fn default_database() -> String {
    "muejam".to_owned()
}

fn default_connect_timeout() -> u64 {
    3
}

fn default_statement_timeout() -> u64 {
    2000
}

fn default_max_lag() -> f64 {
    DEFAULT_MAX_LAG_SECONDS
}

/// The credentials document in Secrets Manager (the RDS format; extra keys
/// such as host or engine are allowed and ignored).
#[derive(Deserialize)]
struct DatabaseCredentials {
    username: String,
    password: String,
}

/// Where and how to speak SQL to a database, as the credentials of a
/// secret allow.
pub(crate) struct SqlAccess<'a> {
    pub endpoint: &'a Endpoint,
    pub database: &'a str,
    pub secret_id: &'a str,
    pub connect_timeout_seconds: u64,
    pub statement_timeout_ms: u64,
    /// Overrides the function's TLS mode (`DB_TLS_MODE`).
    pub tls_mode: Option<TlsMode>,
}

/// How to reach a database with the credentials of a secret.
pub(crate) async fn target_for(ports: &Ports, access: &SqlAccess<'_>) -> DrResult<DatabaseTarget> {
    let secret_id = access.secret_id;
    let secret = ports.secrets.get_secret(secret_id).await?;
    let credentials: DatabaseCredentials =
        serde_json::from_str(secret.expose_secret()).map_err(|_| {
            // Never echo the secret: only say what shape was expected.
            DrError::InvalidInput(format!(
                "secret {secret_id} is not a JSON document with username and password"
            ))
        })?;
    Ok(DatabaseTarget {
        endpoint: access.endpoint.clone(),
        database: access.database.to_owned(),
        username: credentials.username,
        password: SecretString::from(credentials.password),
        connect_timeout_seconds: access.connect_timeout_seconds,
        statement_timeout_ms: access.statement_timeout_ms,
        tls: match access.tls_mode {
            Some(mode) => ports.database_tls.with_mode(mode),
            None => ports.database_tls.clone(),
        },
    })
}

/// A SQL probe with the credentials of a secret: a read, or a read and a
/// write. A database that does not serve is a report, not an error; so is a
/// secret we cannot use (our probe is broken: never evidence against the
/// database). Only transient failures (throttling) are errors, for retries.
pub(crate) async fn probe_with_secret(
    ports: &Ports,
    access: &SqlAccess<'_>,
    write_probe: bool,
) -> DrResult<ProbeReport> {
    let target = match target_for(ports, access).await {
        Ok(target) => target,
        Err(error) if error.is_transient() => return Err(error),
        Err(error) => {
            return Ok(ProbeReport {
                healthy: false,
                reason: Some(format!(
                    "{}: cannot use secret {}: {error}",
                    error.name(),
                    access.secret_id
                )),
                failure: Some(ProbeFailure::SecretUnavailable),
                in_recovery: None,
                server_version: None,
                latency_ms: 0,
            })
        }
    };
    let kind = if write_probe {
        ProbeKind::ReadWrite
    } else {
        ProbeKind::Read
    };
    ports.sql.probe(&target, kind).await
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckDatabaseInput {
    pub instance_id: InstanceId,
    pub credentials_secret_id: String,
    #[serde(default = "default_database")]
    pub database: String,
    /// Also insert into the probe table (proves the instance takes writes).
    #[serde(default)]
    pub write_probe: bool,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout_ms: u64,
    /// TLS mode of this check; default: the function's (`DB_TLS_MODE`).
    #[serde(default)]
    pub tls_mode: Option<TlsMode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckDatabaseOutput {
    pub instance_id: InstanceId,
    pub healthy: bool,
    /// Why it is unhealthy; `None` when healthy.
    pub reason: Option<String>,
    /// The control plane's status, or `not-found`.
    pub status: String,
    pub endpoint: Option<Endpoint>,
    pub in_recovery: Option<bool>,
    pub probe_latency_ms: Option<u64>,
    pub checked_at: DateTime<Utc>,
}

/// Instance status from the control plane plus a SQL probe with short
/// timeouts. Never fails because the database is down: that is the answer.
pub async fn check_database(
    ports: &Ports,
    input: CheckDatabaseInput,
) -> DrResult<CheckDatabaseOutput> {
    let unhealthy =
        |status: String, endpoint: Option<Endpoint>, reason: String| CheckDatabaseOutput {
            instance_id: input.instance_id.clone(),
            healthy: false,
            reason: Some(reason),
            status,
            endpoint,
            in_recovery: None,
            probe_latency_ms: None,
            checked_at: Utc::now(),
        };
    let described = match ports
        .control_plane
        .describe_instance(&input.instance_id)
        .await
    {
        Ok(d) => d,
        Err(DrError::NotFound(message)) => {
            return Ok(unhealthy("not-found".to_owned(), None, message));
        }
        Err(e) => return Err(e),
    };
    let status = described.status.to_string();
    let Some(endpoint) = described.endpoint.clone() else {
        return Ok(unhealthy(
            status,
            None,
            "the instance has no endpoint".to_owned(),
        ));
    };
    if described.status != InstanceStatus::Available {
        return Ok(unhealthy(
            status.clone(),
            Some(endpoint),
            format!("the control plane reports the instance {status}"),
        ));
    }
    let probe = probe_with_secret(
        ports,
        &SqlAccess {
            endpoint: &endpoint,
            database: &input.database,
            secret_id: &input.credentials_secret_id,
            connect_timeout_seconds: input.connect_timeout_seconds,
            statement_timeout_ms: input.statement_timeout_ms,
            tls_mode: input.tls_mode,
        },
        input.write_probe,
    )
    .await?;
    Ok(CheckDatabaseOutput {
        instance_id: input.instance_id,
        healthy: probe.healthy,
        reason: probe.reason,
        status,
        endpoint: Some(endpoint),
        in_recovery: probe.in_recovery,
        probe_latency_ms: Some(probe.latency_ms),
        checked_at: Utc::now(),
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteReplicaInput {
    pub replica_instance_id: InstanceId,
    #[serde(default = "default_max_lag")]
    pub max_lag_seconds: f64,
    #[serde(default)]
    pub allow_data_loss: bool,
    #[serde(default)]
    pub journal: Option<JournalRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteReplicaOutput {
    pub instance_id: InstanceId,
    pub already_standalone: bool,
    /// The RPO evidence: how far behind the replica was when promoted.
    pub lag_at_promotion_seconds: Option<f64>,
    pub lag_at_promotion_bytes: Option<u64>,
    pub data_loss_accepted: bool,
    pub status: String,
    /// What this call changed, for the report; `None` when it changed nothing.
    pub mutation: Option<String>,
}

/// The lag decision, separate so it can be tested on its own.
pub fn lag_guard(
    lag: Option<ReplicaLag>,
    max_lag_seconds: f64,
    allow_data_loss: bool,
) -> DrResult<()> {
    if allow_data_loss {
        return Ok(());
    }
    match lag {
        Some(lag) if lag.seconds > max_lag_seconds => Err(DrError::ReplicaLagTooHigh {
            lag_seconds: lag.seconds,
            max_lag_seconds,
        }),
        Some(_) => Ok(()),
        None => Err(DrError::Unsafe(
            "the replica's lag cannot be measured, so the data loss of a promotion is unknown; \
             pass allow_data_loss to promote anyway"
                .to_owned(),
        )),
    }
}

impl Journaled for PromoteReplicaOutput {
    fn change(&self) -> Option<String> {
        self.mutation.clone()
    }
    fn detail(&self) -> Option<serde_json::Value> {
        self.lag_at_promotion_seconds
            .map(|lag| serde_json::json!({"lag_at_promotion_seconds": lag}))
    }
}

/// Lag guard first, then promotion; idempotent for a standalone instance.
pub async fn promote_replica(
    ports: &Ports,
    input: PromoteReplicaInput,
) -> DrResult<PromoteReplicaOutput> {
    let what = format!("promoting {}", input.replica_instance_id);
    let journal = input.journal.clone();
    journaled(
        ports,
        journal.as_ref(),
        "promote",
        &what,
        promote_replica_now(ports, input),
    )
    .await
}

async fn promote_replica_now(
    ports: &Ports,
    input: PromoteReplicaInput,
) -> DrResult<PromoteReplicaOutput> {
    if !input.max_lag_seconds.is_finite() || input.max_lag_seconds < 0.0 {
        return Err(DrError::InvalidInput(
            "max_lag_seconds must be a non-negative number".to_owned(),
        ));
    }
    let described = ports
        .control_plane
        .describe_instance(&input.replica_instance_id)
        .await?;
    if described.promotion_readiness()? == PromotionReadiness::Promotable {
        lag_guard(
            described.replica_lag,
            input.max_lag_seconds,
            input.allow_data_loss,
        )?;
    }
    let outcome = ports
        .control_plane
        .promote_read_replica(&input.replica_instance_id)
        .await?;
    let lag = outcome.lag_at_promotion.or(described.replica_lag);
    let mutation = (!outcome.already_standalone).then(|| {
        format!(
            "promoted read replica {} to a standalone primary (lag at promotion: {})",
            input.replica_instance_id,
            lag.map_or("unknown".to_owned(), |l| format!("{:.1} s", l.seconds))
        )
    });
    Ok(PromoteReplicaOutput {
        mutation,
        instance_id: input.replica_instance_id,
        already_standalone: outcome.already_standalone,
        lag_at_promotion_seconds: if outcome.already_standalone {
            None
        } else {
            lag.map(|l| l.seconds)
        },
        lag_at_promotion_bytes: if outcome.already_standalone {
            None
        } else {
            lag.and_then(|l| l.bytes)
        },
        data_loss_accepted: input.allow_data_loss,
        status: outcome.instance.status.to_string(),
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribeInstanceInput {
    pub instance_id: InstanceId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribeInstanceOutput {
    pub instance_id: InstanceId,
    pub status: String,
    pub endpoint: Option<Endpoint>,
    pub replication_source: Option<InstanceId>,
    pub availability_zone: Option<String>,
    /// What the wait loop waits for: available and no replication source.
    pub standalone_and_available: bool,
}

pub async fn describe_instance(
    ports: &Ports,
    input: DescribeInstanceInput,
) -> DrResult<DescribeInstanceOutput> {
    let d = ports
        .control_plane
        .describe_instance(&input.instance_id)
        .await?;
    Ok(DescribeInstanceOutput {
        standalone_and_available: d.is_standalone_and_available(),
        instance_id: d.instance_id,
        status: d.status.to_string(),
        endpoint: d.endpoint,
        replication_source: d.replication_source,
        availability_zone: d.availability_zone,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsAction {
    /// Point the record at the target instance's endpoint.
    Upsert,
    /// Report the status of a change (for the INSYNC wait).
    Status,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateDnsInput {
    pub action: DnsAction,
    /// Hosted zone id or name.
    pub hosted_zone: String,
    pub record_name: String,
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// For `upsert`: the instance the record must point at.
    pub target_instance_id: Option<InstanceId>,
    /// For `status`: the change to look at.
    pub change_id: Option<String>,
    #[serde(default)]
    pub journal: Option<JournalRef>,
}

fn default_ttl() -> u32 {
    60
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateDnsOutput {
    pub change_id: String,
    pub status: DnsChangeStatus,
    pub insync: bool,
    pub record_name: String,
    /// The value the record now has (after an upsert).
    pub value: Option<String>,
    /// The value it had before (after an upsert): what a rollback restores.
    pub previous_value: Option<String>,
    pub mutation: Option<String>,
}

impl Journaled for UpdateDnsOutput {
    fn change(&self) -> Option<String> {
        self.mutation.clone()
    }
}

/// Switches the database record, but only to a promoted, available instance:
/// DNS never points at a replica or at an instance that is not up.
pub async fn update_dns(ports: &Ports, input: UpdateDnsInput) -> DrResult<UpdateDnsOutput> {
    if input.action == DnsAction::Status {
        return update_dns_now(ports, input).await;
    }
    let what = format!(
        "pointing {} at {}",
        crate::truncate_message(&input.record_name),
        input
            .target_instance_id
            .as_ref()
            .map_or_else(|| "?".to_owned(), ToString::to_string)
    );
    let journal = input.journal.clone();
    journaled(
        ports,
        journal.as_ref(),
        "dns",
        &what,
        update_dns_now(ports, input),
    )
    .await
}

async fn update_dns_now(ports: &Ports, input: UpdateDnsInput) -> DrResult<UpdateDnsOutput> {
    // Names are checked before any call: the Route 53 client panics on a
    // request URI it cannot build (a record name of a megabyte).
    validate_dns_name("record_name", &input.record_name)?;
    if input.hosted_zone.is_empty() || input.hosted_zone.len() > MAX_DNS_NAME {
        return Err(DrError::InvalidInput(format!(
            "hosted_zone must be 1 to {MAX_DNS_NAME} characters"
        )));
    }
    if let Some(change) = &input.change_id {
        if change.is_empty() || change.len() > 128 {
            return Err(DrError::InvalidInput(
                "change_id must be 1 to 128 characters".to_owned(),
            ));
        }
    }
    match input.action {
        DnsAction::Status => {
            let change_id = input
                .change_id
                .as_deref()
                .ok_or_else(|| DrError::InvalidInput("action status needs change_id".to_owned()))?;
            let change = ports.dns.change_status(change_id).await?;
            Ok(UpdateDnsOutput {
                insync: change.status == DnsChangeStatus::Insync,
                change_id: change.change_id,
                status: change.status,
                record_name: input.record_name,
                value: None,
                previous_value: None,
                mutation: None,
            })
        }
        DnsAction::Upsert => {
            let target_id = input.target_instance_id.as_ref().ok_or_else(|| {
                DrError::InvalidInput("action upsert needs target_instance_id".to_owned())
            })?;
            if input.ttl == 0 || input.ttl > 86_400 {
                return Err(DrError::InvalidInput(
                    "ttl must be between 1 and 86400 seconds".to_owned(),
                ));
            }
            let target = ports.control_plane.describe_instance(target_id).await?;
            if !target.is_standalone_and_available() {
                return Err(DrError::Unsafe(format!(
                    "refusing to point {} at {target_id}: it is {}{}",
                    input.record_name,
                    target.status,
                    target
                        .replication_source
                        .as_ref()
                        .map(|s| format!(" and still replicates from {s}"))
                        .unwrap_or_default()
                )));
            }
            let endpoint = target
                .endpoint
                .ok_or_else(|| DrError::NotReady(format!("{target_id} has no endpoint yet")))?;
            let previous = ports
                .dns
                .get_record(&input.hosted_zone, &input.record_name, "CNAME")
                .await?;
            let change = ports
                .dns
                .upsert_record(&DnsRecord {
                    hosted_zone_id: input.hosted_zone.clone(),
                    name: input.record_name.clone(),
                    record_type: "CNAME".to_owned(),
                    ttl: input.ttl,
                    value: endpoint.address.clone(),
                })
                .await?;
            let previous_value = previous.map(|r| r.value);
            let mutation =
                (previous_value.as_deref() != Some(endpoint.address.as_str())).then(|| {
                    format!(
                        "pointed {} (CNAME, TTL {} s) at {target_id} ({}), was {}",
                        input.record_name,
                        input.ttl,
                        endpoint.address,
                        previous_value.as_deref().unwrap_or("absent")
                    )
                });
            Ok(UpdateDnsOutput {
                insync: change.status == DnsChangeStatus::Insync,
                change_id: change.change_id,
                status: change.status,
                record_name: input.record_name,
                value: Some(endpoint.address),
                previous_value,
                mutation,
            })
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateReplicaInput {
    pub source_instance_id: InstanceId,
    pub replica_instance_id: InstanceId,
    /// Zones to choose from; the first one that differs from the source's wins.
    #[serde(default)]
    pub availability_zones: Vec<String>,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub journal: Option<JournalRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateReplicaOutput {
    pub replica_instance_id: InstanceId,
    pub source_instance_id: InstanceId,
    pub availability_zone: Option<String>,
    pub status: String,
    pub mutation: Option<String>,
}

/// Picks a zone other than the source's, so one zone's failure cannot take
/// both copies.
pub fn other_zone(source_zone: Option<&str>, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .find(|z| Some(z.as_str()) != source_zone)
        .cloned()
}

impl Journaled for CreateReplicaOutput {
    fn change(&self) -> Option<String> {
        self.mutation.clone()
    }
}

/// A new replica of the new primary in another zone. Idempotent: an
/// existing replica of the same source is the result; one that exists but
/// failed is an error (never reported as done).
pub async fn create_replica(
    ports: &Ports,
    input: CreateReplicaInput,
) -> DrResult<CreateReplicaOutput> {
    let what = format!(
        "creating the replica {} of {}",
        input.replica_instance_id, input.source_instance_id
    );
    let journal = input.journal.clone();
    journaled(
        ports,
        journal.as_ref(),
        "replica",
        &what,
        create_replica_now(ports, input),
    )
    .await
}

async fn create_replica_now(
    ports: &Ports,
    input: CreateReplicaInput,
) -> DrResult<CreateReplicaOutput> {
    let source = ports
        .control_plane
        .describe_instance(&input.source_instance_id)
        .await?;
    if source.replication_source.is_some() {
        return Err(DrError::Unsafe(format!(
            "{} is itself a replica; the new replica must follow the new primary",
            input.source_instance_id
        )));
    }
    let existed = match ports
        .control_plane
        .describe_instance(&input.replica_instance_id)
        .await
    {
        Ok(_) => true,
        Err(DrError::NotFound(_)) => false,
        Err(e) => return Err(e),
    };
    let zone = other_zone(
        source.availability_zone.as_deref(),
        &input.availability_zones,
    );
    if !input.availability_zones.is_empty() && zone.is_none() {
        return Err(DrError::InvalidInput(format!(
            "availability_zones offers no zone other than the source's ({})",
            source.availability_zone.unwrap_or_default()
        )));
    }
    let replica = ports
        .control_plane
        .create_read_replica(&CreateReplicaRequest {
            // The new primary's subnet group, security groups and
            // parameters: where the applications reach it.
            network: source.network.clone(),
            replica_id: input.replica_instance_id.clone(),
            source_id: input.source_instance_id.clone(),
            availability_zone: zone,
            tags: input.tags,
        })
        .await?;
    if replica.status == InstanceStatus::Failed {
        return Err(DrError::Internal(format!(
            "the replica {} exists but is failed ({}): it never served; delete it and run again to build a new one",
            replica.instance_id,
            if existed {
                "left by an earlier attempt"
            } else {
                "its creation failed"
            }
        )));
    }
    let mutation = (!existed).then(|| {
        format!(
            "created read replica {} of {} in {}",
            replica.instance_id,
            input.source_instance_id,
            replica
                .availability_zone
                .as_deref()
                .unwrap_or("an unspecified zone")
        )
    });
    Ok(CreateReplicaOutput {
        mutation,
        replica_instance_id: replica.instance_id,
        source_instance_id: input.source_instance_id,
        availability_zone: replica.availability_zone,
        status: replica.status.to_string(),
    })
}

/// Whether the replica can take over now: available, still a replica, and
/// within the RPO unless data loss is accepted. Pure.
pub fn replica_readiness(
    replica: &InstanceDescription,
    max_lag_seconds: f64,
    allow_data_loss: bool,
) -> DrResult<()> {
    if replica.promotion_readiness()? == PromotionReadiness::Promotable {
        lag_guard(replica.replica_lag, max_lag_seconds, allow_data_loss)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmFailureInput {
    pub plan: FailoverPlan,
    /// The record as the input's validation read it (Route 53's API is not
    /// reachable from a VPC without NAT, where this step runs).
    pub database_record: crate::plan::ObservedRecord,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
    #[serde(default)]
    pub journal: Option<JournalRef>,
}

/// The replica as the confirmation saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaCheck {
    pub instance_id: InstanceId,
    pub status: String,
    pub lag_seconds: Option<f64>,
    pub lag_bytes: Option<u64>,
    /// Why it cannot take over now; `None` when it can.
    pub problem: Option<String>,
}

/// The error a refused run ends with, as Step Functions names errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause")]
    pub cause: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmFailureOutput {
    pub primary: InstanceId,
    pub control_plane: ControlPlaneView,
    pub probe: ProbeView,
    pub probe_reason: Option<String>,
    /// What the database record points at (`None`: the record does not exist).
    pub dns_value: Option<String>,
    pub replica: ReplicaCheck,
    pub decision: Decision,
    pub reasons: Vec<String>,
    pub control_plane_confirms_down: bool,
    /// For `ask`: how long a person has, and until when.
    pub approval: Option<ApprovalWindow>,
    /// For `cannot_confirm` and `blocked`: the error the run ends with.
    pub error: Option<StepError>,
    pub checked_at: DateTime<Utc>,
}

/// Runbook "verify failure": the control plane's view of the primary, a
/// classified SQL probe of its endpoint, the database record (read by the
/// input's validation), and whether the replica can take over, judged by
/// the evidence policy. Only reads.
pub async fn confirm_failure(
    ports: &Ports,
    input: ConfirmFailureInput,
) -> DrResult<ConfirmFailureOutput> {
    let plan = &input.plan;
    let (control, endpoint) = match ports.control_plane.describe_instance(&plan.primary).await {
        Ok(d) => (ControlPlaneView::Status { status: d.status }, d.endpoint),
        Err(DrError::NotFound(_)) => (ControlPlaneView::Gone, None),
        Err(e) => return Err(e),
    };
    let record = input.database_record.value.clone();
    let report = match (&record, &endpoint) {
        (None, _) => ProbeReport {
            healthy: false,
            reason: Some(format!(
                "the database record {} does not exist in {}",
                plan.dns.record_name, plan.dns.hosted_zone
            )),
            failure: Some(ProbeFailure::DnsUnresolvable),
            in_recovery: None,
            server_version: None,
            latency_ms: 0,
        },
        (Some(_), None) => ProbeReport {
            healthy: false,
            reason: Some(format!("{} has no endpoint to connect to", plan.primary)),
            failure: Some(ProbeFailure::Refused),
            in_recovery: None,
            server_version: None,
            latency_ms: 0,
        },
        (Some(_), Some(endpoint)) => {
            probe_with_secret(
                ports,
                &SqlAccess {
                    endpoint,
                    database: &plan.db_name,
                    secret_id: &plan.credentials_secret_id,
                    connect_timeout_seconds: input.connect_timeout_seconds,
                    statement_timeout_ms: default_statement_timeout(),
                    tls_mode: None,
                },
                false,
            )
            .await?
        }
    };
    let probe = ProbeView::of(&report);
    let mut verdict = evidence_policy(&plan.primary, &control, probe);
    if let (Some(record), Some(endpoint)) = (&record, &endpoint) {
        if *record != endpoint.address {
            verdict.reasons.push(format!(
                "{} points at {record}, not at {}'s endpoint {}",
                plan.dns.record_name, plan.primary, endpoint.address
            ));
        }
    }
    let replica = ports.control_plane.describe_instance(&plan.replica).await?;
    let readiness = replica_readiness(&replica, plan.max_lag_seconds, plan.allow_data_loss);
    let replica_check = ReplicaCheck {
        instance_id: plan.replica.clone(),
        status: replica.status.to_string(),
        lag_seconds: replica.replica_lag.map(|l| l.seconds),
        lag_bytes: replica.replica_lag.and_then(|l| l.bytes),
        problem: readiness.as_ref().err().map(ToString::to_string),
    };
    let mut error = None;
    match (verdict.decision, readiness) {
        (Decision::Automatic | Decision::Ask, Err(problem)) => {
            verdict.reasons.push(format!(
                "the replica {} cannot take over: {problem}",
                plan.replica
            ));
            error = Some(StepError {
                error: match problem {
                    DrError::ReplicaLagTooHigh { .. } => "ReplicaLagTooHigh".to_owned(),
                    other => other.name().to_owned(),
                },
                cause: verdict.reasons.join("; "),
            });
            verdict.decision = Decision::Blocked;
        }
        (Decision::CannotConfirm, _) => {
            error = Some(StepError {
                error: "CannotConfirmFailure".to_owned(),
                cause: verdict.reasons.join("; "),
            });
        }
        _ => {}
    }
    if let Some(resume) = &plan.resume {
        // The recovery was decided (and, if it had to be, approved) by the
        // execution that began it; what is observed now is recorded, and
        // the rest is finished.
        verdict.reasons.insert(
            0,
            format!(
                "resuming recovery {} begun by execution {}: {}",
                plan.recovery_id,
                resume.first_execution,
                resume.began.join("; ")
            ),
        );
        verdict.decision = Decision::Resume;
        verdict.control_plane_confirms_down |= resume.control_plane_confirmed_down;
        error = None;
    } else if let Some(journal) = &input.journal {
        crate::journal::note(
            ports,
            journal,
            "confirm",
            verdict.reasons.join("; "),
            serde_json::json!({
                "decision": verdict.decision,
                "control_plane_confirms_down": verdict.control_plane_confirms_down,
            }),
        )
        .await?;
    }
    let now = Utc::now();
    let approval = (verdict.decision == Decision::Ask).then(|| {
        approval_window(
            plan.execution_start,
            now,
            plan.rto_objective_seconds,
            &plan.approval,
        )
    });
    Ok(ConfirmFailureOutput {
        primary: plan.primary.clone(),
        control_plane: control,
        probe,
        probe_reason: report.reason,
        dns_value: record,
        replica: replica_check,
        decision: verdict.decision,
        reasons: verdict.reasons,
        control_plane_confirms_down: verdict.control_plane_confirms_down,
        approval,
        error,
        checked_at: now,
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FenceInstanceInput {
    pub instance_id: InstanceId,
    /// Who fences (the execution id), recorded in the `dr:fenced` tag.
    pub by: String,
    /// RDS: the security group that admits nothing.
    #[serde(default)]
    pub quarantine_security_group: Option<String>,
    #[serde(default)]
    pub journal: Option<JournalRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FenceInstanceOutput {
    pub instance_id: InstanceId,
    pub fenced: bool,
    pub already_fenced: bool,
    pub method: String,
    pub mutation: Option<String>,
}

impl Journaled for FenceInstanceOutput {
    fn change(&self) -> Option<String> {
        self.mutation.clone()
    }
}

/// Runbook: make sure the old primary cannot take application writes any
/// more before DNS moves away from it. Never deletes it. Idempotent.
pub async fn fence_instance(
    ports: &Ports,
    input: FenceInstanceInput,
) -> DrResult<FenceInstanceOutput> {
    let what = format!("fencing {}", input.instance_id);
    let journal = input.journal.clone();
    journaled(
        ports,
        journal.as_ref(),
        "fence",
        &what,
        fence_instance_now(ports, input),
    )
    .await
}

async fn fence_instance_now(
    ports: &Ports,
    input: FenceInstanceInput,
) -> DrResult<FenceInstanceOutput> {
    if input.by.trim().is_empty() || input.by.len() > 2048 {
        return Err(DrError::InvalidInput(
            "by must be 1 to 2048 characters (the execution id)".to_owned(),
        ));
    }
    let outcome = match ports
        .control_plane
        .fence_instance(
            &input.instance_id,
            &FenceRequest {
                by: input.by.clone(),
                quarantine_security_group: input
                    .quarantine_security_group
                    .clone()
                    .filter(|g| !g.is_empty()),
            },
        )
        .await
    {
        Ok(outcome) => outcome,
        // Nothing left to fence: it cannot take writes.
        Err(DrError::NotFound(_)) => {
            return Ok(FenceInstanceOutput {
                instance_id: input.instance_id,
                fenced: true,
                already_fenced: true,
                method: "the instance no longer exists".to_owned(),
                mutation: None,
            })
        }
        Err(e) => return Err(e),
    };
    let mutation = (!outcome.already_fenced).then(|| {
        format!(
            "fenced old primary {} ({})",
            input.instance_id, outcome.method
        )
    });
    Ok(FenceInstanceOutput {
        instance_id: input.instance_id,
        fenced: true,
        already_fenced: outcome.already_fenced,
        method: outcome.method,
        mutation,
    })
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum UpdateTopologyInput {
    /// `new_primary` took over: the old primary is fenced.
    Switch {
        database: String,
        new_primary: InstanceId,
        by: String,
        #[serde(default)]
        journal: Option<JournalRef>,
    },
    /// `replica` now follows the primary.
    AddReplica {
        database: String,
        replica: InstanceId,
        by: String,
        #[serde(default)]
        journal: Option<JournalRef>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTopologyOutput {
    pub database: String,
    pub version: u64,
    pub primary: InstanceId,
    pub replicas: Vec<InstanceId>,
    pub fenced: Vec<InstanceId>,
    pub mutation: Option<String>,
}

impl Journaled for UpdateTopologyOutput {
    fn change(&self) -> Option<String> {
        self.mutation.clone()
    }
}

/// Records a switch or a new replica in the topology registry, so the next
/// trigger finds the roles as they are. Idempotent; a concurrent change is
/// read again and the same change applied to it.
pub async fn update_topology(
    ports: &Ports,
    input: UpdateTopologyInput,
) -> DrResult<UpdateTopologyOutput> {
    let (key, what, journal) = match &input {
        UpdateTopologyInput::Switch {
            database,
            new_primary,
            journal,
            ..
        } => (
            "topology",
            format!("recording {new_primary} as the primary of {database}"),
            journal.clone(),
        ),
        UpdateTopologyInput::AddReplica {
            database,
            replica,
            journal,
            ..
        } => (
            "replica_topology",
            format!("recording {replica} as a replica of {database}"),
            journal.clone(),
        ),
    };
    journaled(
        ports,
        journal.as_ref(),
        key,
        &what,
        update_topology_now(ports, input),
    )
    .await
}

async fn update_topology_now(
    ports: &Ports,
    input: UpdateTopologyInput,
) -> DrResult<UpdateTopologyOutput> {
    let database = match &input {
        UpdateTopologyInput::Switch { database, .. }
        | UpdateTopologyInput::AddReplica { database, .. } => database.clone(),
    };
    validate_database_name(&database)?;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let current = ports.topology.get(&database).await?.ok_or_else(|| {
            DrError::InvalidInput(format!("database {database} is not registered"))
        })?;
        let (next, what) = match &input {
            UpdateTopologyInput::Switch {
                new_primary, by, ..
            } => (
                current.after_switch(new_primary, by)?,
                format!(
                    "topology of {database}: {new_primary} is the primary, {} is fenced",
                    current.primary
                ),
            ),
            UpdateTopologyInput::AddReplica { replica, by, .. } => (
                current.with_replica(replica, by)?,
                format!(
                    "topology of {database}: {replica} replicates from {}",
                    current.primary
                ),
            ),
        };
        let unchanged = next.primary == current.primary
            && next.replicas == current.replicas
            && next.fenced == current.fenced;
        let stored = if unchanged {
            current
        } else {
            match ports.topology.put(&next, Some(current.version)).await {
                Ok(stored) => stored,
                Err(DrError::Conflict(_)) if attempts < 3 => continue,
                Err(e) => return Err(e),
            }
        };
        return Ok(UpdateTopologyOutput {
            database,
            version: stored.version,
            primary: stored.primary,
            replicas: stored.replicas,
            fenced: stored.fenced,
            mutation: (!unchanged).then_some(what),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_guard_follows_the_rpo_unless_data_loss_is_accepted() {
        let lag = |s: f64| {
            Some(ReplicaLag {
                seconds: s,
                bytes: None,
            })
        };
        assert!(lag_guard(lag(10.0), DEFAULT_MAX_LAG_SECONDS, false).is_ok());
        assert!(lag_guard(lag(21_600.0), DEFAULT_MAX_LAG_SECONDS, false).is_ok());
        let err = lag_guard(lag(21_601.0), DEFAULT_MAX_LAG_SECONDS, false).expect_err("too far");
        assert_eq!(err.name(), "ReplicaLagTooHigh");
        assert!(lag_guard(lag(99_999.0), DEFAULT_MAX_LAG_SECONDS, true).is_ok());
        assert_eq!(
            lag_guard(None, DEFAULT_MAX_LAG_SECONDS, false)
                .expect_err("unknown")
                .name(),
            "Unsafe"
        );
        assert!(lag_guard(None, DEFAULT_MAX_LAG_SECONDS, true).is_ok());
    }

    #[test]
    fn the_new_replica_goes_to_another_zone() {
        let zones = vec!["us-east-1a".to_owned(), "us-east-1b".to_owned()];
        assert_eq!(
            other_zone(Some("us-east-1a"), &zones).as_deref(),
            Some("us-east-1b")
        );
        assert_eq!(
            other_zone(Some("us-east-1b"), &zones).as_deref(),
            Some("us-east-1a")
        );
        assert_eq!(other_zone(Some("us-east-1a"), &zones[..1]), None);
    }
}
