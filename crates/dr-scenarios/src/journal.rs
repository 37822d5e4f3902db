//! The recovery journal in the handlers: every mutating step records that it
//! began and how it ended, under the recovery's id, so that a rerun resumes
//! the same plan and the report lists what every attempt did — including a
//! step an attempt began and never finished, and one that failed.

use std::future::Future;

use dr_core::*;
use serde::{Deserialize, Serialize};

use crate::Ports;

/// Which recovery a step belongs to, and which execution runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalRef {
    pub recovery_id: String,
    pub execution: String,
}

/// The mutating steps of the failover, in the order they run.
pub const MUTATION_KEYS: [&str; 7] = [
    "fence",
    "promote",
    "dns",
    "topology",
    "replica",
    "replica_topology",
    "app_restart",
];

/// What a journaled step reports about itself.
pub trait Journaled {
    /// What it changed; `None` when it found the change already made.
    fn change(&self) -> Option<String>;
    /// Figures to keep with the entry (the lag at promotion).
    fn detail(&self) -> Option<serde_json::Value> {
        None
    }
}

fn entry(
    journal: &JournalRef,
    key: &str,
    status: JournalStatus,
    summary: String,
    detail: Option<serde_json::Value>,
) -> JournalEntry {
    JournalEntry {
        recovery_id: journal.recovery_id.clone(),
        key: key.to_owned(),
        execution: journal.execution.clone(),
        at: dr_core::clock::now(),
        status,
        summary,
        detail,
    }
}

/// Runs a mutating step under the journal: `started` before, `done` or
/// `failed` after. What an earlier attempt finished is never overwritten by
/// a retry that found nothing left to do or failed afterwards.
pub async fn journaled<T, F>(
    ports: &Ports,
    journal: Option<&JournalRef>,
    key: &str,
    what: &str,
    step: F,
) -> DrResult<T>
where
    T: Journaled,
    F: Future<Output = DrResult<T>>,
{
    let Some(journal) = journal else {
        return step.await;
    };
    let earlier_done = ports
        .journal
        .entries(&journal.recovery_id)
        .await?
        .into_iter()
        .any(|e| e.key == key && e.status == JournalStatus::Done);
    if !earlier_done {
        ports
            .journal
            .record(&entry(
                journal,
                key,
                JournalStatus::Started,
                what.to_owned(),
                None,
            ))
            .await?;
    }
    match step.await {
        Ok(output) => {
            let record = match output.change() {
                Some(change) => Some(entry(
                    journal,
                    key,
                    JournalStatus::Done,
                    change,
                    output.detail(),
                )),
                None if !earlier_done => Some(entry(
                    journal,
                    key,
                    JournalStatus::Done,
                    format!("{what}: found already done"),
                    output.detail(),
                )),
                None => None,
            };
            if let Some(record) = record {
                ports.journal.record(&record).await?;
            }
            Ok(output)
        }
        Err(error) => {
            if !earlier_done {
                // The step's own error matters more than a journal failure.
                let _ = ports
                    .journal
                    .record(&entry(
                        journal,
                        key,
                        JournalStatus::Failed,
                        format!("{what}: {}: {error}", error.name()),
                        None,
                    ))
                    .await;
            }
            Err(error)
        }
    }
}

/// Records a non-mutating fact of the recovery (its plan, its decision).
pub async fn note(
    ports: &Ports,
    journal: &JournalRef,
    key: &str,
    summary: String,
    detail: serde_json::Value,
) -> DrResult<()> {
    ports
        .journal
        .record(&entry(
            journal,
            key,
            JournalStatus::Done,
            summary,
            Some(detail),
        ))
        .await
}

/// The mutating steps a recovery began, in workflow order.
pub fn mutations(entries: &[JournalEntry]) -> Vec<&JournalEntry> {
    MUTATION_KEYS
        .iter()
        .filter_map(|key| entries.iter().find(|e| e.key == *key))
        .collect()
}
