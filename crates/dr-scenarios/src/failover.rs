//! Runbook "Database Failure": confirm, guard, promote, wait, switch DNS,
//! verify, replace the replica.

use chrono::{DateTime, Utc};
use dr_core::*;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, PartialEq, Serialize)]
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
}

#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// Lag guard first, then promotion; idempotent for a standalone instance.
pub async fn promote_replica(
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

#[derive(Debug, Clone, PartialEq, Serialize)]
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
}

fn default_ttl() -> u32 {
    60
}

#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// Switches the database record, but only to a promoted, available instance:
/// DNS never points at a replica or at an instance that is not up.
pub async fn update_dns(ports: &Ports, input: UpdateDnsInput) -> DrResult<UpdateDnsOutput> {
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
}

#[derive(Debug, Clone, PartialEq, Serialize)]
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

pub async fn create_replica(
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
            replica_id: input.replica_instance_id.clone(),
            source_id: input.source_instance_id.clone(),
            availability_zone: zone,
            tags: input.tags,
        })
        .await?;
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
