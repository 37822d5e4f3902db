//! Realistic damage to the MueJam sample data, committed on purpose so that
//! the data-corruption recovery can be rehearsed (`drctl local corrupt`).

use chrono::{DateTime, Utc};
pub use dr_core::{Damage, DamageKind};
use dr_core::{DrError, DrResult};
use tokio_postgres::Client;

use crate::connect::map_pg_error;

async fn now(client: &Client) -> DrResult<DateTime<Utc>> {
    Ok(client
        .query_one("SELECT clock_timestamp()", &[])
        .await
        .map_err(|e| map_pg_error("reading the clock", &e))?
        .get(0))
}

/// Where damage committed once per key is recorded, in the same
/// transaction as the damage.
const RECORD: &str = "dr_probe.drill_damage";

/// Commits `rows` rows of damage of `kind` (as the connected superuser).
pub async fn corrupt(client: &Client, kind: DamageKind, rows: u32) -> DrResult<Damage> {
    commit(client, kind, rows, None).await
}

/// [`corrupt`], once per `key`: the damage and its record commit together,
/// so a retry finds either both or neither ([`recorded`]). Two attempts at
/// once: the second fails on the record's key, its damage rolled back.
pub async fn corrupt_once(
    client: &Client,
    key: &str,
    kind: DamageKind,
    rows: u32,
) -> DrResult<Damage> {
    if let Some(done) = recorded(client, key).await? {
        tracing::warn!(key, "the damage was committed already: not again");
        return Ok(done);
    }
    commit(client, kind, rows, Some(key)).await
}

/// The damage committed under `key`, if any.
pub async fn recorded(client: &Client, key: &str) -> DrResult<Option<Damage>> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS dr_probe;
             CREATE TABLE IF NOT EXISTS {RECORD} (
                 key text PRIMARY KEY,
                 kind text NOT NULL,
                 table_name text NOT NULL,
                 rows bigint NOT NULL,
                 before timestamptz NOT NULL,
                 -- Set once committed; empty when the committer died first.
                 at timestamptz)"
        ))
        .await
        .map_err(|e| map_pg_error("creating the damage record", &e))?;
    let Some(row) = client
        .query_opt(
            &format!("SELECT kind, table_name, rows, before, at FROM {RECORD} WHERE key = $1"),
            &[&key],
        )
        .await
        .map_err(|e| map_pg_error("reading the damage record", &e))?
    else {
        return Ok(None);
    };
    let kind: String = row.get(0);
    let rows: i64 = row.get(2);
    // Committed by now, whenever its committer died.
    let at: Option<DateTime<Utc>> = row.get(4);
    let at = match at {
        Some(at) => at,
        None => now(client).await?,
    };
    Ok(Some(Damage {
        kind: serde_json::from_value(serde_json::Value::String(kind.clone()))
            .map_err(|_| DrError::Corrupt(format!("{RECORD} names an unknown damage {kind:?}")))?,
        table: row.get(1),
        rows: u64::try_from(rows).unwrap_or_default(),
        before: row.get(3),
        at,
    }))
}

async fn commit(
    client: &Client,
    kind: DamageKind,
    rows: u32,
    record: Option<&str>,
) -> DrResult<Damage> {
    if rows == 0 || rows > 100_000 {
        return Err(DrError::InvalidInput(
            "rows must be between 1 and 100000".to_owned(),
        ));
    }
    let limit = i64::from(rows);
    let before = now(client).await?;
    let (table, setup, statement) = match kind {
        DamageKind::Orphans => (
            "users",
            Some("SET LOCAL session_replication_role = replica"),
            "DELETE FROM users WHERE id IN (
                 SELECT DISTINCT author_id FROM stories ORDER BY author_id LIMIT $1)",
        ),
        DamageKind::Overwrite => (
            "users",
            None,
            "UPDATE users SET display_name = '' WHERE id IN (
                 SELECT id FROM users WHERE display_name <> '' ORDER BY id LIMIT $1)",
        ),
    };
    let failed = |e: tokio_postgres::Error| map_pg_error("committing the damage", &e);
    client.batch_execute("BEGIN").await.map_err(failed)?;
    if let Some(setup) = setup {
        client.batch_execute(setup).await.map_err(failed)?;
    }
    let changed = match client.execute(statement, &[&limit]).await {
        Ok(changed) => changed,
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(failed(e));
        }
    };
    if let Some(key) = record {
        let kind_name = serde_json::to_value(kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let recorded = client
            .execute(
                &format!(
                    "INSERT INTO {RECORD} (key, kind, table_name, rows, before)
                     VALUES ($1, $2, $3, $4, $5)"
                ),
                &[&key, &kind_name, &table, &(changed as i64), &before],
            )
            .await;
        if let Err(e) = recorded {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(map_pg_error("recording the damage", &e));
        }
    }
    client.batch_execute("COMMIT").await.map_err(failed)?;
    let at = now(client).await?;
    if let Some(key) = record {
        client
            .execute(
                &format!("UPDATE {RECORD} SET at = $2 WHERE key = $1"),
                &[&key, &at],
            )
            .await
            .map_err(|e| map_pg_error("recording when the damage was committed", &e))?;
    }
    Ok(Damage {
        kind,
        table: table.to_owned(),
        rows: changed,
        before,
        at,
    })
}
