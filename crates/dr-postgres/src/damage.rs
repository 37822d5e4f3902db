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

/// Commits `rows` rows of damage of `kind` (as the connected superuser).
pub async fn corrupt(client: &Client, kind: DamageKind, rows: u32) -> DrResult<Damage> {
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
    let changed = client.execute(statement, &[&limit]).await.map_err(failed)?;
    client.batch_execute("COMMIT").await.map_err(failed)?;
    let at = now(client).await?;
    Ok(Damage {
        kind,
        table: table.to_owned(),
        rows: changed,
        before,
        at,
    })
}
