//! Runbook symptom "cannot connect to the database", as a metric: a scheduled
//! SQL probe through the address the applications use, publishing 1 (it
//! answered) or 0 (it did not) with its latency. A CloudWatch alarm on that
//! metric starts the database failover, whose first step confirms the failure
//! on its own, so a probe that misjudges once costs a false-alarm report, not
//! a failover.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use crate::failover::{default_database, probe_with_secret, SqlAccess};
use crate::Ports;

pub const DEFAULT_NAMESPACE: &str = "MueJam/DR";
/// 1 when the probe succeeded, 0 when it did not.
pub const SUCCESS_METRIC: &str = "DatabaseProbeSuccess";
/// Round trip of the probe, published only when it succeeded.
pub const LATENCY_METRIC: &str = "DatabaseProbeLatency";
pub const DATABASE_DIMENSION: &str = "Database";

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_owned()
}

fn default_connect_timeout() -> u64 {
    5
}

fn default_statement_timeout() -> u64 {
    3000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeDatabaseInput {
    /// What the applications connect to (in AWS the database DNS record, so
    /// the probe follows a failover).
    pub endpoint: Endpoint,
    pub credentials_secret_id: String,
    #[serde(default = "default_database")]
    pub database: String,
    /// The metric's `Database` dimension; the alarm selects on it.
    pub database_label: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Also write to the probe table: 0 when the database answers but is
    /// read-only.
    #[serde(default)]
    pub write_probe: bool,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout_ms: u64,
    /// TLS mode of the probe; default: the function's (`DB_TLS_MODE`).
    /// Through a CNAME that the certificate cannot name, `verify-ca`.
    #[serde(default)]
    pub tls_mode: Option<TlsMode>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeDatabaseOutput {
    pub database_label: String,
    pub success: bool,
    /// Why the probe failed; `None` when it succeeded.
    pub reason: Option<String>,
    pub latency_ms: Option<u64>,
    pub in_recovery: Option<bool>,
    pub namespace: String,
    pub published: Vec<String>,
    pub checked_at: DateTime<Utc>,
}

fn validate(input: &ProbeDatabaseInput) -> DrResult<()> {
    let bad = |what: String| {
        Err(DrError::InvalidInput(format!(
            "ProbeDatabaseFunction input: {what}"
        )))
    };
    if input.endpoint.address.trim().is_empty() || input.endpoint.port == 0 {
        return bad("endpoint needs an address and a port".to_owned());
    }
    if input.database_label.trim().is_empty() || input.database_label.len() > 1024 {
        return bad("database_label must be 1 to 1024 characters".to_owned());
    }
    if input.namespace.trim().is_empty() || input.namespace.starts_with("AWS/") {
        return bad(format!(
            "namespace {:?} must be set and must not start with AWS/",
            input.namespace
        ));
    }
    if input.connect_timeout_seconds == 0 || input.connect_timeout_seconds > 30 {
        return bad(
            "connect_timeout_seconds must be 1 to 30 (the probe runs every minute)".to_owned(),
        );
    }
    Ok(())
}

/// Probes and publishes. Fails only when the input is bad, the credentials
/// cannot be read or the metric cannot be published: then the alarm sees no
/// datapoint, never a wrong one.
pub async fn probe_database(
    ports: &Ports,
    input: ProbeDatabaseInput,
) -> DrResult<ProbeDatabaseOutput> {
    validate(&input)?;
    let probe = probe_with_secret(
        ports,
        &SqlAccess {
            endpoint: &input.endpoint,
            database: &input.database,
            secret_id: &input.credentials_secret_id,
            connect_timeout_seconds: input.connect_timeout_seconds,
            statement_timeout_ms: input.statement_timeout_ms,
            tls_mode: input.tls_mode,
        },
        input.write_probe,
    )
    .await?;
    let checked_at = Utc::now();
    let dimensions =
        BTreeMap::from([(DATABASE_DIMENSION.to_owned(), input.database_label.clone())]);
    let mut data = vec![MetricDatum {
        name: SUCCESS_METRIC.to_owned(),
        value: if probe.healthy { 1.0 } else { 0.0 },
        unit: "Count".to_owned(),
        dimensions: dimensions.clone(),
        timestamp: checked_at,
    }];
    if probe.healthy {
        data.push(MetricDatum {
            name: LATENCY_METRIC.to_owned(),
            value: probe.latency_ms as f64,
            unit: "Milliseconds".to_owned(),
            dimensions,
            timestamp: checked_at,
        });
    }
    ports.metrics.put(&input.namespace, &data).await?;
    if probe.healthy {
        tracing::info!(database = %input.database_label, latency_ms = probe.latency_ms, "database probe succeeded");
    } else {
        tracing::warn!(database = %input.database_label, reason = probe.reason.as_deref().unwrap_or(""), "database probe failed");
    }
    Ok(ProbeDatabaseOutput {
        database_label: input.database_label,
        success: probe.healthy,
        reason: probe.reason,
        latency_ms: probe.healthy.then_some(probe.latency_ms),
        in_recovery: probe.in_recovery,
        namespace: input.namespace,
        published: data.into_iter().map(|d| d.name).collect(),
        checked_at,
    })
}
