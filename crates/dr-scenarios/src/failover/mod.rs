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

mod promote;
pub use promote::*;
mod dns;
pub use dns::*;
mod replica;
pub use replica::*;
mod confirm;
pub use confirm::*;
mod fence;
pub use fence::*;
mod topology;
pub use topology::*;

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
    /// The region the instance lives in (default: the home region).
    #[serde(default)]
    pub region: Option<String>,
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
            checked_at: dr_core::clock::now(),
        };
    let described = match ports
        .plane(input.region.as_deref())?
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
        checked_at: dr_core::clock::now(),
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
