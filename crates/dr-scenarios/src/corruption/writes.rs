//! Stopping the application's writes at the database, and giving them back.
//!
//! What was revoked is recorded in the recovery's journal *before* the
//! revoke, as the union of what an earlier attempt recorded and what the
//! role holds now: a retry after a crash between the revoke and the record
//! still knows what to give back, and giving back restores exactly those
//! privileges and nothing else.

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use crate::journal::JournalRef;
use crate::Ports;

/// The journal key of the record of what was revoked.
pub const WRITES_STOPPED_KEY: &str = "writes_stopped";
/// The journal key of a give-back, followed by the instance's id.
pub const WRITES_RESTORED_PREFIX: &str = "writes_restored:";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteAction {
    /// Revoke the role's write privileges and end its sessions.
    Stop,
    /// Grant back what the recovery's record says was revoked.
    Restore,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteAccessInput {
    pub action: WriteAction,
    pub instance_id: InstanceId,
    /// The SQL database.
    pub database: String,
    /// The master credentials (they own or administer the tables).
    pub credentials_secret_id: String,
    pub application: ApplicationAccess,
    pub journal: JournalRef,
    /// The instance's region (default: the home region).
    #[serde(default)]
    pub region: Option<String>,
    /// Stop: count every table's rows once the writes are stopped (the
    /// baseline a planned region failover's restore must equal).
    #[serde(default)]
    pub count_rows: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteAccessOutput {
    pub action: WriteAction,
    pub instance_id: InstanceId,
    pub role: String,
    /// The privileges revoked (stop) or granted back (restore).
    pub grants: Vec<TableGrant>,
    pub sessions_ended: u64,
    /// SECURITY DEFINER functions the role may still execute (see
    /// [`WritesRevoked::definer_functions`]).
    #[serde(default)]
    pub definer_functions: Vec<String>,
    pub at: DateTime<Utc>,
    /// What changed, for the report; `None` when there was nothing to do.
    pub mutation: Option<String>,
    /// Stop with `count_rows`: rows per table once no write could happen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_counts: Option<std::collections::BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoppedRecord {
    instance_id: Option<InstanceId>,
    grants: Vec<TableGrant>,
}

/// What the recovery recorded as revoked (empty when nothing was).
pub async fn recorded_grants(ports: &Ports, recovery_id: &str) -> DrResult<Vec<TableGrant>> {
    Ok(ports
        .journal
        .entries(recovery_id)
        .await?
        .into_iter()
        .find(|e| e.key == WRITES_STOPPED_KEY)
        .and_then(|e| e.detail)
        .and_then(|d| serde_json::from_value::<StoppedRecord>(d).ok())
        .map(|r| r.grants)
        .unwrap_or_default())
}

/// Pure: whether the recovery's journal says the application's writes are
/// stopped now: a stop that revoked something (or may have: an unreadable
/// record counts as one) and no give-back finished after it.
pub fn writes_still_stopped(entries: &[JournalEntry]) -> bool {
    let Some(stopped) = entries.iter().find(|e| e.key == WRITES_STOPPED_KEY) else {
        return false;
    };
    let revoked = stopped
        .detail
        .clone()
        .and_then(|d| serde_json::from_value::<StoppedRecord>(d).ok())
        .is_none_or(|r| !r.grants.is_empty());
    revoked
        && !entries.iter().any(|e| {
            e.key.starts_with(WRITES_RESTORED_PREFIX)
                && e.status == JournalStatus::Done
                && e.at >= stopped.at
        })
}

/// Pure: what to record as revoked, from an earlier record and what the
/// role holds now; sorted, each privilege once.
pub fn merge_grants(earlier: &[TableGrant], now: &[TableGrant]) -> Vec<TableGrant> {
    let mut all: Vec<TableGrant> = earlier.iter().chain(now.iter()).cloned().collect();
    all.sort();
    all.dedup();
    all
}

fn summary(grants: &[TableGrant]) -> String {
    let tables: std::collections::BTreeSet<&str> =
        grants.iter().map(|g| g.table.as_str()).collect();
    format!("{} privileges on {} tables", grants.len(), tables.len())
}

pub async fn write_access(ports: &Ports, input: WriteAccessInput) -> DrResult<WriteAccessOutput> {
    input.application.validate()?;
    let role = input.application.role.clone();
    let schema = input.application.schema.clone();
    let (_, target) = super::instance_target_in(
        ports,
        input.region.as_deref(),
        &input.instance_id,
        &input.database,
        &input.credentials_secret_id,
        30_000,
    )
    .await?;
    let journal = &input.journal;
    let earlier = recorded_grants(ports, &journal.recovery_id).await?;
    let entry = |status: JournalStatus, summary: String, grants: &[TableGrant]| JournalEntry {
        recovery_id: journal.recovery_id.clone(),
        key: match input.action {
            WriteAction::Stop => WRITES_STOPPED_KEY.to_owned(),
            WriteAction::Restore => format!("{WRITES_RESTORED_PREFIX}{}", input.instance_id),
        },
        execution: journal.execution.clone(),
        at: dr_core::clock::now(),
        status,
        summary,
        detail: Some(serde_json::json!({
            "instance_id": input.instance_id,
            "grants": grants,
        })),
    };
    match input.action {
        WriteAction::Stop => {
            let now = ports.sql.write_grants(&target, &role, &schema).await?;
            let record = merge_grants(&earlier, &now);
            let what = format!(
                "stopping the writes of {role} on {}: revoking {}",
                input.instance_id,
                summary(&record)
            );
            ports
                .journal
                .record(&entry(JournalStatus::Started, what.clone(), &record))
                .await?;
            let revoked = match ports
                .sql
                .revoke_writes(&target, &role, &schema, &record)
                .await
            {
                Ok(revoked) => revoked,
                Err(error) => {
                    // Keep the record: whatever was revoked is given back.
                    let _ = ports
                        .journal
                        .record(&entry(
                            JournalStatus::Failed,
                            format!("{what}: {}: {error}", error.name()),
                            &record,
                        ))
                        .await;
                    return Err(error);
                }
            };
            let mut mutation = format!(
                "stopped the writes of {role} on {}: revoked {} ({} granted now), ended {} session(s)",
                input.instance_id,
                summary(&record),
                now.len(),
                revoked.sessions_ended
            );
            if !revoked.definer_functions.is_empty() {
                mutation.push_str(&format!(
                    "; WARNING: {role} may still execute SECURITY DEFINER function(s) that run with their owner's privileges and may write: {} (revoke EXECUTE by hand if they do)",
                    revoked.definer_functions.join(", ")
                ));
            }
            ports
                .journal
                .record(&entry(JournalStatus::Done, mutation.clone(), &record))
                .await?;
            let at = dr_core::clock::now();
            let row_counts = if input.count_rows {
                Some(ports.sql.row_counts(&target).await?)
            } else {
                None
            };
            Ok(WriteAccessOutput {
                action: input.action,
                instance_id: input.instance_id,
                role,
                grants: record,
                sessions_ended: revoked.sessions_ended,
                definer_functions: revoked.definer_functions,
                at,
                mutation: Some(mutation),
                row_counts,
            })
        }
        WriteAction::Restore => {
            if earlier.is_empty() {
                return Ok(WriteAccessOutput {
                    action: input.action,
                    instance_id: input.instance_id,
                    role,
                    grants: Vec::new(),
                    sessions_ended: 0,
                    definer_functions: Vec::new(),
                    at: dr_core::clock::now(),
                    mutation: None,
                    row_counts: None,
                });
            }
            ports
                .sql
                .grant_writes(&target, &role, &schema, &earlier)
                .await?;
            let mutation = format!(
                "gave {role} its writes back on {}: granted {}",
                input.instance_id,
                summary(&earlier)
            );
            ports
                .journal
                .record(&entry(JournalStatus::Done, mutation.clone(), &earlier))
                .await?;
            Ok(WriteAccessOutput {
                action: input.action,
                instance_id: input.instance_id,
                role,
                grants: earlier,
                sessions_ended: 0,
                definer_functions: Vec::new(),
                at: dr_core::clock::now(),
                mutation: Some(mutation),
                row_counts: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(table: &str, privilege: &str) -> TableGrant {
        TableGrant {
            table: table.into(),
            privilege: privilege.into(),
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).expect("time")
    }

    fn e(
        key: &str,
        status: JournalStatus,
        at_s: i64,
        detail: Option<serde_json::Value>,
    ) -> JournalEntry {
        JournalEntry {
            recovery_id: "r".into(),
            key: key.into(),
            execution: "x".into(),
            at: at(at_s),
            status,
            summary: String::new(),
            detail,
        }
    }

    #[test]
    fn the_journal_says_whether_the_writes_are_still_stopped() {
        use JournalStatus::*;
        let some =
            Some(serde_json::json!({"instance_id": "db-1", "grants": [g("users", "INSERT")]}));
        let none = Some(serde_json::json!({"instance_id": "db-1", "grants": []}));
        let stop = |status, at_s, detail: &Option<serde_json::Value>| {
            e(WRITES_STOPPED_KEY, status, at_s, detail.clone())
        };
        let back = |status, at_s| e("writes_restored:db-2", status, at_s, None);
        // (entries, still stopped)
        let cases = [
            (vec![], false),
            (vec![stop(Done, 1, &some)], true),
            (vec![stop(Started, 1, &some)], true),
            (vec![stop(Failed, 1, &some)], true),
            (vec![stop(Done, 1, &none)], false),
            (vec![stop(Done, 1, &None)], true),
            (vec![stop(Done, 1, &some), back(Done, 5)], false),
            (vec![stop(Done, 1, &some), back(Failed, 5)], true),
            // A rerun stopped them again after an earlier give-back.
            (vec![stop(Done, 9, &some), back(Done, 5)], true),
            (vec![stop(Done, 1, &some), e("fence", Done, 5, None)], true),
        ];
        for (i, (entries, expected)) in cases.into_iter().enumerate() {
            assert_eq!(writes_still_stopped(&entries), expected, "case {i}");
        }
    }

    #[test]
    fn the_record_keeps_what_an_earlier_attempt_revoked() {
        // (earlier record, granted now) -> recorded
        let cases = [
            (
                vec![],
                vec![g("users", "INSERT")],
                vec![g("users", "INSERT")],
            ),
            (
                vec![g("users", "INSERT")],
                vec![],
                vec![g("users", "INSERT")],
            ),
            (
                vec![g("users", "INSERT"), g("stories", "DELETE")],
                vec![g("users", "INSERT"), g("api_keys", "UPDATE")],
                vec![
                    g("api_keys", "UPDATE"),
                    g("stories", "DELETE"),
                    g("users", "INSERT"),
                ],
            ),
            (vec![], vec![], vec![]),
        ];
        for (earlier, now, expected) in cases {
            assert_eq!(merge_grants(&earlier, &now), expected);
        }
    }
}

#[derive(Deserialize)]
struct StoppedOn {
    instance_id: InstanceId,
}

/// After a recovery's execution died (Catch never saw it): the writes it
/// stopped given back on the instance it stopped them on, as its own abort
/// path would have, unless `hold` (given the journal) says why they must
/// stay stopped. Gives back only what the journal records as revoked by this
/// recovery, so another recovery's stop is never undone. In words: what was
/// done.
pub(crate) async fn give_back_after_death(
    ports: &Ports,
    recovery_id: &str,
    database: &str,
    hold: impl Fn(&[JournalEntry]) -> Option<String>,
) -> DrResult<String> {
    let entries = ports.journal.entries(recovery_id).await?;
    let Some(stopped) = entries.iter().find(|e| e.key == WRITES_STOPPED_KEY) else {
        return Ok("the run never stopped the application's writes".to_owned());
    };
    if let Some(why) = hold(&entries) {
        return Ok(why);
    }
    let on: StoppedOn = stopped
        .detail
        .clone()
        .and_then(|d| serde_json::from_value(d).ok())
        .ok_or_else(|| {
            DrError::Internal(format!(
                "the journal of {recovery_id} records stopped writes without the instance"
            ))
        })?;
    let topology = ports.topology.get(database).await?.ok_or_else(|| {
        DrError::InvalidInput(format!(
            "database {database} is not in the topology registry"
        ))
    })?;
    let application = topology.application.clone().ok_or_else(|| {
        DrError::InvalidInput(format!(
            "the topology of {database} names no application role"
        ))
    })?;
    let done = write_access(
        ports,
        WriteAccessInput {
            action: WriteAction::Restore,
            instance_id: on.instance_id,
            database: topology.db_name.clone(),
            credentials_secret_id: topology.credentials_secret_id.clone(),
            application,
            journal: JournalRef {
                recovery_id: recovery_id.to_owned(),
                execution: format!("{recovery_id}:cleanup"),
            },
            region: topology.region.clone(),
            count_rows: false,
        },
    )
    .await?;
    Ok(done
        .mutation
        .unwrap_or_else(|| "nothing was recorded as revoked".to_owned()))
}
