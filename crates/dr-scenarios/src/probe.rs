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
/// 1 when our own probe could not probe (credentials, TLS, DNS, secret,
/// configuration), 0 when it could. Its alarm pages; it never starts a
/// failover, and a broken probe publishes no `DatabaseProbeSuccess`, so the
/// database alarm keeps its state instead of seeing a false "down".
pub const ERROR_METRIC: &str = "DatabaseProbeError";
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
    /// What went wrong, classified; `None` when it succeeded.
    pub failure: Option<ProbeFailure>,
    /// `database_down` or `probe_broken`; `None` when it succeeded.
    pub class: Option<ProbeClass>,
    /// For a broken probe: what to fix.
    pub remedy: Option<String>,
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

/// The datapoints of one probe: success (1/0) and latency when the probe
/// could judge the database, the probe's own error metric always.
pub fn probe_datapoints(
    probe: &ProbeReport,
    database_label: &str,
    at: DateTime<Utc>,
) -> Vec<MetricDatum> {
    let dimensions = BTreeMap::from([(DATABASE_DIMENSION.to_owned(), database_label.to_owned())]);
    let datum = |name: &str, value: f64, unit: &str| MetricDatum {
        name: name.to_owned(),
        value,
        unit: unit.to_owned(),
        dimensions: dimensions.clone(),
        timestamp: at,
    };
    let broken = probe
        .failure
        .is_some_and(|f| f.class() == ProbeClass::ProbeBroken);
    let mut data = Vec::new();
    if !broken {
        data.push(datum(
            SUCCESS_METRIC,
            if probe.healthy { 1.0 } else { 0.0 },
            "Count",
        ));
    }
    if probe.healthy {
        data.push(datum(
            LATENCY_METRIC,
            probe.latency_ms as f64,
            "Milliseconds",
        ));
    }
    data.push(datum(ERROR_METRIC, if broken { 1.0 } else { 0.0 }, "Count"));
    data
}

/// Probes and publishes. Fails only when the input is bad, a dependency is
/// throttled or the metrics cannot be published: then the alarm sees no
/// datapoint, never a wrong one. A probe that cannot probe (our secret, CA,
/// DNS, configuration) publishes `DatabaseProbeError`, not "database down".
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
    let checked_at = dr_core::clock::now();
    let data = probe_datapoints(&probe, &input.database_label, checked_at);
    ports.metrics.put(&input.namespace, &data).await?;
    let class = probe.failure.map(ProbeFailure::class);
    match (probe.healthy, class) {
        (true, _) => {
            tracing::info!(database = %input.database_label, latency_ms = probe.latency_ms, "database probe succeeded")
        }
        (false, Some(ProbeClass::ProbeBroken)) => {
            tracing::error!(database = %input.database_label, failure = probe.failure.map(ProbeFailure::as_str).unwrap_or(""), reason = probe.reason.as_deref().unwrap_or(""), "the probe cannot probe: fix it (this is not evidence against the database)")
        }
        (false, _) => {
            tracing::warn!(database = %input.database_label, reason = probe.reason.as_deref().unwrap_or(""), "database probe failed")
        }
    }
    Ok(ProbeDatabaseOutput {
        database_label: input.database_label,
        success: probe.healthy,
        failure: probe.failure,
        class,
        remedy: probe
            .failure
            .filter(|f| f.class() == ProbeClass::ProbeBroken)
            .map(|f| f.remedy().to_owned()),
        reason: probe.reason,
        latency_ms: probe.healthy.then_some(probe.latency_ms),
        in_recovery: probe.in_recovery,
        namespace: input.namespace,
        published: data.into_iter().map(|d| d.name).collect(),
        checked_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(healthy: bool, failure: Option<ProbeFailure>) -> ProbeReport {
        ProbeReport {
            healthy,
            reason: failure.map(|f| f.as_str().to_owned()),
            failure,
            in_recovery: None,
            server_version: None,
            latency_ms: 7,
        }
    }

    #[test]
    fn a_broken_probe_never_publishes_a_database_failure() {
        let at = dr_core::clock::now();
        let published = |r: ProbeReport| -> Vec<(String, f64)> {
            probe_datapoints(&r, "db.muejam.internal", at)
                .into_iter()
                .map(|d| (d.name, d.value))
                .collect()
        };
        let table: [(ProbeReport, Vec<(&str, f64)>); 4] = [
            (
                report(true, None),
                vec![
                    (SUCCESS_METRIC, 1.0),
                    (LATENCY_METRIC, 7.0),
                    (ERROR_METRIC, 0.0),
                ],
            ),
            (
                report(false, Some(ProbeFailure::Refused)),
                vec![(SUCCESS_METRIC, 0.0), (ERROR_METRIC, 0.0)],
            ),
            (
                report(false, Some(ProbeFailure::TimedOut)),
                vec![(SUCCESS_METRIC, 0.0), (ERROR_METRIC, 0.0)],
            ),
            (
                report(false, Some(ProbeFailure::Authentication)),
                vec![(ERROR_METRIC, 1.0)],
            ),
        ];
        for (probe, expected) in table {
            let expected: Vec<(String, f64)> = expected
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v))
                .collect();
            assert_eq!(published(probe.clone()), expected, "{probe:?}");
        }
        for broken in [
            ProbeFailure::AccessDenied,
            ProbeFailure::Tls,
            ProbeFailure::DnsUnresolvable,
            ProbeFailure::SecretUnavailable,
            ProbeFailure::Misconfigured,
        ] {
            assert!(
                !published(report(false, Some(broken)))
                    .iter()
                    .any(|(n, _)| n == SUCCESS_METRIC),
                "{broken:?}"
            );
        }
    }
}
