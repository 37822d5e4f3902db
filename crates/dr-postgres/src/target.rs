//! [`SqlTarget`] on tokio-postgres.

use std::collections::BTreeMap;
use std::time::Instant;

use async_trait::async_trait;
use dr_core::{
    ApiKeysRevoked, AuditActivity, DatabaseTarget, DrResult, ProbeFailure, ProbeKind, ProbeReport,
    SqlTarget, TableChanges, TableGrant, WritesRevoked,
};

use crate::connect::{classify, connect, connect_classified, map_pg_error, ConnectFailure};

/// Schema and table of the write probe, kept out of `public` so that row
/// counts and integrity checks of application tables never see it.
pub const PROBE_SCHEMA: &str = "dr_probe";

#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresSqlTarget;

impl PostgresSqlTarget {
    async fn probe_inner(
        target: &DatabaseTarget,
        kind: ProbeKind,
    ) -> Result<ProbeReport, ConnectFailure> {
        let started = Instant::now();
        let client = connect_classified(target).await?;
        let failed = |what: &str, e: tokio_postgres::Error| ConnectFailure {
            failure: classify(&e, false),
            error: map_pg_error(what, &e),
        };
        let row = client
            .query_one(
                "SELECT 1::int AS one, pg_is_in_recovery(), current_setting('server_version')",
                &[],
            )
            .await
            .map_err(|e| failed("read probe", e))?;
        let in_recovery: bool = row.get(1);
        let server_version: String = row.get(2);
        let mut failure = None;
        if kind == ProbeKind::ReadWrite {
            if in_recovery {
                failure = Some(ConnectFailure {
                    failure: ProbeFailure::ReadOnly,
                    error: dr_core::DrError::NotReady(
                        "database is read-only: it is a replica in recovery".to_owned(),
                    ),
                });
            } else {
                client
                    .batch_execute(&format!(
                        "CREATE SCHEMA IF NOT EXISTS {PROBE_SCHEMA};
                         CREATE TABLE IF NOT EXISTS {PROBE_SCHEMA}.write_probe (
                             id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                             probed_at timestamptz NOT NULL DEFAULT clock_timestamp());
                         INSERT INTO {PROBE_SCHEMA}.write_probe DEFAULT VALUES;
                         DELETE FROM {PROBE_SCHEMA}.write_probe
                          WHERE probed_at < clock_timestamp() - interval '1 day';"
                    ))
                    .await
                    .map_err(|e| failed("write probe", e))?;
            }
        }
        Ok(ProbeReport {
            healthy: failure.is_none(),
            reason: failure
                .as_ref()
                .map(|f| format!("{}: {}", f.error.name(), f.error)),
            failure: failure.map(|f| f.failure),
            in_recovery: Some(in_recovery),
            server_version: Some(server_version),
            latency_ms: started.elapsed().as_millis() as u64,
        })
    }
}

#[async_trait]
impl SqlTarget for PostgresSqlTarget {
    async fn commit_damage(
        &self,
        target: &DatabaseTarget,
        key: &str,
        kind: dr_core::DamageKind,
        rows: u32,
        not_before: Option<chrono::DateTime<chrono::Utc>>,
    ) -> DrResult<dr_core::Damage> {
        let client = connect(target).await?;
        // A retry waits no more: the first attempt waited past `not_before`.
        if let Some(at) = not_before {
            // By the database's clock: the moment the search must find is
            // measured by it, whatever the caller's clock says.
            let ahead: f64 = client
                .query_one(
                    "SELECT extract(epoch from ($1::timestamptz - clock_timestamp()))::float8",
                    &[&at],
                )
                .await
                .map_err(|e| map_pg_error("reading the clock", &e))?
                .get(0);
            if ahead > 0.0 {
                let wait = ahead.min(dr_core::MAX_DAMAGE_WAIT_SECONDS as f64);
                tokio::time::sleep(std::time::Duration::from_secs_f64(wait)).await;
            }
        }
        crate::damage::corrupt_once(&client, key, kind, rows).await
    }

    async fn write_marker(
        &self,
        target: &DatabaseTarget,
        marker: &str,
    ) -> DrResult<chrono::DateTime<chrono::Utc>> {
        let client = connect(target).await?;
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {PROBE_SCHEMA};
                 CREATE TABLE IF NOT EXISTS {PROBE_SCHEMA}.drill_markers (
                     marker text PRIMARY KEY,
                     written_at timestamptz NOT NULL DEFAULT clock_timestamp())"
            ))
            .await
            .map_err(|e| map_pg_error("creating the marker table", &e))?;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO {PROBE_SCHEMA}.drill_markers (marker) VALUES ($1)
                     ON CONFLICT (marker) DO UPDATE SET marker = EXCLUDED.marker
                     RETURNING written_at"
                ),
                &[&marker],
            )
            .await
            .map_err(|e| map_pg_error("writing the marker", &e))?;
        Ok(row.get(0))
    }

    async fn marker_present(&self, target: &DatabaseTarget, marker: &str) -> DrResult<bool> {
        let client = connect(target).await?;
        let exists = client
            .query_one(
                &format!("SELECT to_regclass('{PROBE_SCHEMA}.drill_markers') IS NOT NULL"),
                &[],
            )
            .await
            .map_err(|e| map_pg_error("looking for the marker table", &e))?
            .get::<_, bool>(0);
        if !exists {
            return Ok(false);
        }
        let row = client
            .query_one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {PROBE_SCHEMA}.drill_markers WHERE marker = $1)"
                ),
                &[&marker],
            )
            .await
            .map_err(|e| map_pg_error("reading the marker", &e))?;
        Ok(row.get(0))
    }

    async fn probe(&self, target: &DatabaseTarget, kind: ProbeKind) -> DrResult<ProbeReport> {
        let started = Instant::now();
        match Self::probe_inner(target, kind).await {
            Ok(report) => Ok(report),
            Err(ConnectFailure { failure, error }) => Ok(ProbeReport {
                healthy: false,
                reason: Some(format!("{}: {error}", error.name())),
                failure: Some(failure),
                in_recovery: None,
                server_version: None,
                latency_ms: started.elapsed().as_millis() as u64,
            }),
        }
    }

    async fn write_grants(
        &self,
        target: &DatabaseTarget,
        role: &str,
        schema: &str,
    ) -> DrResult<Vec<TableGrant>> {
        crate::writes::write_grants(target, role, schema).await
    }

    async fn revoke_writes(
        &self,
        target: &DatabaseTarget,
        role: &str,
        schema: &str,
        grants: &[TableGrant],
    ) -> DrResult<WritesRevoked> {
        crate::writes::revoke_writes(target, role, schema, grants).await
    }

    async fn grant_writes(
        &self,
        target: &DatabaseTarget,
        role: &str,
        schema: &str,
        grants: &[TableGrant],
    ) -> DrResult<()> {
        crate::writes::grant_writes(target, role, schema, grants).await
    }

    async fn row_changes(
        &self,
        newer: &DatabaseTarget,
        older: &DatabaseTarget,
        schema: &str,
    ) -> DrResult<Vec<TableChanges>> {
        crate::writes::row_changes(newer, older, schema).await
    }

    async fn set_role_password(
        &self,
        target: &DatabaseTarget,
        role: &str,
        password: &secrecy::SecretString,
    ) -> DrResult<()> {
        crate::breach::set_role_password(target, role, password).await
    }

    async fn row_counts(&self, target: &DatabaseTarget) -> DrResult<BTreeMap<String, u64>> {
        let client = connect(target).await?;
        table_row_counts(&client).await
    }

    async fn revoke_api_keys(
        &self,
        target: &DatabaseTarget,
        users: Option<&[i64]>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> DrResult<ApiKeysRevoked> {
        crate::breach::revoke_api_keys(target, users, at).await
    }

    async fn audit_activity(
        &self,
        target: &DatabaseTarget,
        networks: &[String],
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        max_rows: usize,
    ) -> DrResult<AuditActivity> {
        crate::breach::audit_activity(target, networks, from, to, max_rows).await
    }
}

/// Exact `count(*)` of every ordinary or partitioned table in `public`.
pub async fn table_row_counts(client: &tokio_postgres::Client) -> DrResult<BTreeMap<String, u64>> {
    let tables = client
        .query(
            "SELECT c.relname, format('SELECT count(*) FROM %I.%I', n.nspname, c.relname)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
              ORDER BY c.relname",
            &[],
        )
        .await
        .map_err(|e| map_pg_error("listing tables", &e))?;
    let mut counts = BTreeMap::new();
    for table in tables {
        let name: String = table.get(0);
        let count_sql: String = table.get(1);
        let row = client
            .query_one(&count_sql, &[])
            .await
            .map_err(|e| map_pg_error(&format!("counting {name}"), &e))?;
        let count: i64 = row.get(0);
        counts.insert(name, count.max(0) as u64);
    }
    Ok(counts)
}
