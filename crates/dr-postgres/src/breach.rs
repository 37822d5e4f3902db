//! The security breach's SQL: API keys revoked, and the audit log's activity
//! from the suspicious addresses (runbook "Security Breach", steps 1 and 2).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dr_core::{ApiKeysRevoked, AuditActivity, AuditRow, DatabaseTarget, DrError, DrResult};

use crate::connect::{connect, map_pg_error};

/// Deactivates the active keys in scope in one statement; the already
/// inactive ones in scope are counted, never touched (their `revoked_at`
/// keeps its first value).
pub(crate) async fn revoke_api_keys(
    target: &DatabaseTarget,
    users: Option<&[i64]>,
    at: DateTime<Utc>,
) -> DrResult<ApiKeysRevoked> {
    let client = connect(target).await?;
    let users: Option<Vec<i64>> = users.map(<[i64]>::to_vec);
    let rows = client
        .query(
            "UPDATE api_keys SET is_active = false, revoked_at = $1
              WHERE is_active AND ($2::bigint[] IS NULL OR user_id = ANY ($2))
             RETURNING id",
            &[&at, &users],
        )
        .await
        .map_err(|e| map_pg_error("revoking API keys", &e))?;
    let mut revoked: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    revoked.sort_unstable();
    let inactive: i64 = client
        .query_one(
            "SELECT count(*) FROM api_keys
              WHERE NOT is_active AND ($1::bigint[] IS NULL OR user_id = ANY ($1))",
            &[&users],
        )
        .await
        .map_err(|e| map_pg_error("counting inactive API keys", &e))?
        .get(0);
    Ok(ApiKeysRevoked {
        already_inactive: (inactive as u64).saturating_sub(revoked.len() as u64),
        revoked,
    })
}

/// The activity from `networks` in `[from, to)`. The networks are matched
/// with `<<=` (an address inside a block), so the index on `ip_address`
/// serves them.
pub(crate) async fn audit_activity(
    target: &DatabaseTarget,
    networks: &[String],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    max_rows: usize,
) -> DrResult<AuditActivity> {
    if from >= to {
        return Err(DrError::InvalidInput(format!(
            "the window starts at {from} and ends at {to}: it must start before it ends"
        )));
    }
    let client = connect(target).await?;
    // inet[] from text: each block parsed by PostgreSQL, which refuses a
    // malformed one (the input was validated before).
    let scope = "FROM audit_logs a
                  WHERE a.created_at >= $2 AND a.created_at < $3
                    AND a.ip_address <<= ANY ($1::text[]::inet[])";
    let by_action = client
        .query(
            &format!("SELECT a.action_type, count(*) {scope} GROUP BY 1 ORDER BY 1"),
            &[&networks, &from, &to],
        )
        .await
        .map_err(|e| map_pg_error("counting the audit log's activity", &e))?;
    let by_action: BTreeMap<String, u64> = by_action
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect();
    let users: Vec<i64> = client
        .query(
            &format!("SELECT DISTINCT a.user_id {scope} AND a.user_id IS NOT NULL ORDER BY 1"),
            &[&networks, &from, &to],
        )
        .await
        .map_err(|e| map_pg_error("listing the affected users", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let span = client
        .query_one(
            &format!("SELECT min(a.created_at), max(a.created_at) {scope}"),
            &[&networks, &from, &to],
        )
        .await
        .map_err(|e| map_pg_error("reading the activity's span", &e))?;
    let limit = i64::try_from(max_rows).unwrap_or(i64::MAX);
    let rows: Vec<AuditRow> = client
        .query(
            &format!(
                "SELECT a.id, a.user_id, a.action_type, host(a.ip_address), a.created_at {scope}
                  ORDER BY a.created_at, a.id LIMIT $4"
            ),
            &[&networks, &from, &to, &limit],
        )
        .await
        .map_err(|e| map_pg_error("reading the activity", &e))?
        .iter()
        .map(|r| AuditRow {
            id: r.get(0),
            user_id: r.get(1),
            action_type: r.get(2),
            ip_address: r.get(3),
            created_at: r.get(4),
        })
        .collect();
    let events: u64 = by_action.values().sum();
    Ok(AuditActivity {
        events,
        truncated: (rows.len() as u64) < events,
        by_action,
        users,
        first_seen: span.get(0),
        last_seen: span.get(1),
        rows,
    })
}

/// `ALTER ROLE … PASSWORD` with a SCRAM-SHA-256 verifier computed here: the
/// password never crosses the wire, nor reaches a server log or
/// `pg_stat_activity`. The role must exist (`NotFound`).
pub(crate) async fn set_role_password(
    target: &DatabaseTarget,
    role: &str,
    password: &secrecy::SecretString,
) -> DrResult<()> {
    use secrecy::ExposeSecret;
    dr_core::validate_sql_name("role", role)?;
    let client = connect(target).await?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .map_err(|e| map_pg_error("looking up the role", &e))?;
    if exists.is_none() {
        return Err(DrError::NotFound(format!("role {role} does not exist")));
    }
    let verifier = postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes());
    client
        .batch_execute(&format!("ALTER ROLE \"{role}\" PASSWORD '{verifier}'"))
        .await
        .map_err(|e| map_pg_error(&format!("setting the password of {role}"), &e))?;
    Ok(())
}
