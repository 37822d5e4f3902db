//! What a switch to the restored moment loses: per table, the rows the
//! corrupt primary has that the restored instance does not (written or
//! changed after the chosen moment), with their keys as a CSV a person can
//! replay by hand; and the rows the restore brings back (deleted since,
//! the damage among them).

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use super::CorruptionPlan;
use crate::Ports;

/// One table's share of the loss.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableLoss {
    pub table: String,
    /// Rows written after the moment: lost by the switch.
    pub inserted: u64,
    /// Rows changed after the moment: their changes are lost.
    pub updated: u64,
    /// Rows deleted after the moment: the switch brings them back.
    pub deleted: u64,
    /// The table has no primary key: only its row counts were compared.
    pub compared_by_count_only: bool,
    pub primary_rows: u64,
    pub restored_rows: u64,
}

/// Pure: the per-table summary, tables with a difference only (and those
/// compared by count whose counts differ).
pub fn summarize(changes: &[TableChanges]) -> Vec<TableLoss> {
    changes
        .iter()
        .filter(|t| {
            t.inserted + t.updated + t.deleted > 0
                || (t.key_columns.is_empty() && t.newer_rows != t.older_rows)
        })
        .map(|t| TableLoss {
            table: t.table.clone(),
            inserted: t.inserted,
            updated: t.updated,
            deleted: t.deleted,
            compared_by_count_only: t.key_columns.is_empty(),
            primary_rows: t.newer_rows,
            restored_rows: t.older_rows,
        })
        .collect()
}

/// Pure: the keys as CSV (`table,change,key`, the key a JSON object of
/// its columns), lost rows first.
pub fn keys_csv(changes: &[TableChanges]) -> DrResult<Vec<u8>> {
    let failed = |e: csv::Error| DrError::Internal(format!("writing the keys CSV: {e}"));
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(["table", "change", "key"])
        .map_err(failed)?;
    let mut rows: Vec<(RowChange, &str, String)> = Vec::new();
    for table in changes {
        for (change, values) in &table.keys {
            let key: serde_json::Map<String, serde_json::Value> = table
                .key_columns
                .iter()
                .zip(values)
                .map(|(c, v)| (c.clone(), serde_json::Value::String(v.clone())))
                .collect();
            rows.push((
                *change,
                &table.table,
                serde_json::Value::Object(key).to_string(),
            ));
        }
    }
    rows.sort_by_key(|(change, table, _)| (*change == RowChange::Deleted, *change, *table));
    for (change, table, key) in rows {
        let change = match change {
            RowChange::Inserted => "inserted",
            RowChange::Updated => "updated",
            RowChange::Deleted => "deleted",
        };
        writer.write_record([table, change, &key]).map_err(failed)?;
    }
    writer
        .into_inner()
        .map_err(|e| DrError::Internal(format!("writing the keys CSV: {e}")))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessLossInput {
    /// The plan: the corrupt primary (writes stopped) and the restored
    /// instance it names.
    pub plan: Box<CorruptionPlan>,
    pub chosen_moment: DateTime<Utc>,
    /// When the application's writes stopped: the end of the loss window.
    pub writes_stopped_at: DateTime<Utc>,
    /// Where the keys go in the report store (`<scenario>/<execution>`).
    pub report_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessLossOutput {
    pub tables: Vec<TableLoss>,
    pub rows_lost: u64,
    pub rows_brought_back: u64,
    /// From the chosen moment to when the writes stopped (the RPO).
    pub data_loss_window_seconds: f64,
    pub keys_location: String,
    /// The question the operator answers before the switch.
    pub approval: ApprovalDraft,
}

/// A question for a person, with what is known and what either answer does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDraft {
    pub question: String,
    pub facts: Vec<String>,
    pub proposed_action: String,
    pub default_action: String,
}

/// Pure: what the operator is asked before the switch.
pub fn switch_question(
    plan: &CorruptionPlan,
    chosen_moment: DateTime<Utc>,
    window_seconds: f64,
    tables: &[TableLoss],
    keys_location: &str,
) -> ApprovalDraft {
    let mut facts = vec![
        format!(
            "{} is restored as of {} and passed the integrity verifier",
            plan.restored_instance,
            chosen_moment.to_rfc3339()
        ),
        format!(
            "data-loss window: {} (from that moment until the application's writes were stopped)",
            crate::report::seconds(Some(window_seconds))
        ),
    ];
    let lost: u64 = tables.iter().map(|t| t.inserted + t.updated).sum();
    if lost == 0 {
        facts.push("no row written or changed after that moment is lost".to_owned());
    }
    for t in tables {
        if t.compared_by_count_only {
            facts.push(format!(
                "{}: no primary key, compared by count: {} rows now, {} restored",
                t.table, t.primary_rows, t.restored_rows
            ));
        } else if t.inserted + t.updated > 0 {
            facts.push(format!(
                "{}: {} new and {} changed rows are lost",
                t.table, t.inserted, t.updated
            ));
        }
    }
    let back: u64 = tables.iter().map(|t| t.deleted).sum();
    if back > 0 {
        facts.push(format!(
            "{back} rows deleted since come back (the damage among them): {}",
            tables
                .iter()
                .filter(|t| t.deleted > 0)
                .map(|t| format!("{} {}", t.table, t.deleted))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    facts.push(format!(
        "the keys of every row that differs: {keys_location}"
    ));
    ApprovalDraft {
        question: format!(
            "Switch {} to {} (restored as of {})?",
            plan.database,
            plan.restored_instance,
            chosen_moment.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        facts,
        proposed_action: format!(
            "fence {} (kept for forensics, never deleted), point {} at {}, give {} its writes there, record the new roles, then build the replica {}",
            plan.primary,
            plan.dns.record_name,
            plan.restored_instance,
            plan.application.role,
            plan.new_replica
        ),
        default_action: format!(
            "nothing is switched: {} stays the primary{}, and {} is kept for inspection (delete it when done)",
            plan.primary,
            if plan.keep_writes_stopped_on_abort {
                " with the application's writes still stopped"
            } else {
                " and the application gets its writes back"
            },
            plan.restored_instance
        ),
    }
}

pub async fn assess_loss(ports: &Ports, input: AssessLossInput) -> DrResult<AssessLossOutput> {
    let plan = &input.plan;
    let schema = plan.application.schema.as_str();
    validate_sql_name("schema", schema)?;
    if input.report_key.is_empty()
        || input.report_key.len() > 512
        || input.report_key.contains("..")
        || !input
            .report_key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_/".contains(c))
    {
        return Err(DrError::InvalidInput(
            "report_key must be 1 to 512 letters, digits, hyphens, underscores or slashes"
                .to_owned(),
        ));
    }
    let mut targets = Vec::new();
    for id in [&plan.primary, &plan.restored_instance] {
        // Reading every key of every table takes a while.
        let (_, target) = super::instance_target(
            ports,
            id,
            &plan.db_name,
            &plan.credentials_secret_id,
            15 * 60 * 1000,
        )
        .await?;
        targets.push(target);
    }
    let changes = ports
        .sql
        .row_changes(&targets[0], &targets[1], schema)
        .await?;
    let tables = summarize(&changes);
    let keys_location = ports
        .reports
        .put(
            &format!("{}-lost-keys.csv", input.report_key),
            "text/csv",
            &keys_csv(&changes)?,
        )
        .await?;
    let window = ((input.writes_stopped_at - input.chosen_moment).num_milliseconds() as f64
        / 1000.0)
        .max(0.0);
    Ok(AssessLossOutput {
        rows_lost: tables.iter().map(|t| t.inserted + t.updated).sum(),
        rows_brought_back: tables.iter().map(|t| t.deleted).sum(),
        data_loss_window_seconds: window,
        approval: switch_question(plan, input.chosen_moment, window, &tables, &keys_location),
        tables,
        keys_location,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, keys: &[&str], changes: &[(RowChange, &[&str])]) -> TableChanges {
        let count = |c: RowChange| changes.iter().filter(|(x, _)| *x == c).count() as u64;
        TableChanges {
            table: name.into(),
            key_columns: keys.iter().map(|k| (*k).to_owned()).collect(),
            inserted: count(RowChange::Inserted),
            updated: count(RowChange::Updated),
            deleted: count(RowChange::Deleted),
            keys: changes
                .iter()
                .map(|(c, v)| (*c, v.iter().map(|s| (*s).to_owned()).collect()))
                .collect(),
            newer_rows: 10,
            older_rows: 10,
        }
    }

    #[test]
    fn the_csv_lists_lost_rows_first_with_keys_a_person_can_replay() {
        let changes = vec![
            table("users", &["id"], &[(RowChange::Deleted, &["3"])]),
            table(
                "follows",
                &["follower_id", "followee_id"],
                &[(RowChange::Inserted, &["1", "2"])],
            ),
            table(
                "stories",
                &["id"],
                &[
                    (RowChange::Updated, &["7"]),
                    (RowChange::Inserted, &["9,\"x\""]),
                ],
            ),
            table("untouched", &["id"], &[]),
        ];
        let csv = keys_csv(&changes).expect("csv");
        let mut reader = csv::Reader::from_reader(csv.as_slice());
        assert_eq!(
            reader.headers().expect("header").iter().collect::<Vec<_>>(),
            vec!["table", "change", "key"]
        );
        let records: Vec<(String, String, serde_json::Value)> = reader
            .records()
            .map(|r| {
                let r = r.expect("record");
                (
                    r[0].to_owned(),
                    r[1].to_owned(),
                    serde_json::from_str(&r[2]).expect("the key is JSON"),
                )
            })
            .collect();
        use serde_json::json;
        assert_eq!(
            records,
            vec![
                (
                    "follows".into(),
                    "inserted".into(),
                    json!({"follower_id": "1", "followee_id": "2"})
                ),
                (
                    "stories".into(),
                    "inserted".into(),
                    json!({"id": "9,\"x\""})
                ),
                ("stories".into(), "updated".into(), json!({"id": "7"})),
                ("users".into(), "deleted".into(), json!({"id": "3"})),
            ],
            "lost rows first; a key with a comma and quotes survives"
        );
        let summary = summarize(&changes);
        assert_eq!(
            summary
                .iter()
                .map(|t| (t.table.as_str(), t.inserted, t.updated, t.deleted))
                .collect::<Vec<_>>(),
            vec![
                ("users", 0, 0, 1),
                ("follows", 1, 0, 0),
                ("stories", 1, 1, 0)
            ]
        );
    }

    #[test]
    fn a_table_without_a_key_is_compared_by_count_and_said_so() {
        let mut no_key = table("events", &[], &[]);
        no_key.newer_rows = 12;
        let summary = summarize(&[no_key, table("same", &[], &[])]);
        assert_eq!(summary.len(), 1);
        assert!(summary[0].compared_by_count_only);
        assert_eq!(
            (summary[0].primary_rows, summary[0].restored_rows),
            (12, 10)
        );
    }
}
