//! The catalog session: the snapshot every worker imports, and the catalog's
//! own checks.

use crate::*;

/// Opens the catalog session's transaction and exports its snapshot for the
/// workers. A server that cannot export one (some standbys, poolers in
/// transaction mode) still gets every check, each worker on its own snapshot.
pub(crate) async fn begin_catalog(client: &Client) -> DrResult<Option<String>> {
    client
        .batch_execute(BEGIN_SNAPSHOT)
        .await
        .map_err(|e| dr_postgres::map_pg_error("starting the verification transaction", &e))?;
    match client.query_one("SELECT pg_export_snapshot()", &[]).await {
        Ok(row) => {
            let id: String = row.get(0);
            // Interpolated into SET TRANSACTION SNAPSHOT: accept only its format.
            if id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                return Ok(Some(id));
            }
            Err(DrError::Internal(format!("unexpected snapshot id {id:?}")))
        }
        Err(e) => {
            tracing::warn!(error = %e, "no shared snapshot: each worker checks on its own");
            client
                .batch_execute(&format!("ROLLBACK; {BEGIN_SNAPSHOT}"))
                .await
                .map_err(|e| {
                    dr_postgres::map_pg_error("restarting the verification transaction", &e)
                })?;
            Ok(None)
        }
    }
}

pub(crate) fn catalog_check(
    name: &str,
    objects: Vec<serde_json::Value>,
    detail: &str,
    started: Instant,
) -> CheckResult {
    CheckResult {
        name: name.to_owned(),
        kind: "catalog".to_owned(),
        status: if objects.is_empty() {
            CheckStatus::Passed
        } else {
            CheckStatus::Failed
        },
        count: Some(objects.len() as u64),
        samples: objects,
        detail: Some(detail.to_owned()),
        duration_ms: started.elapsed().as_millis() as u64,
    }
}
