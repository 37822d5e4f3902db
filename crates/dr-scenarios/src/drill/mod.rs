//! Runbook "Testing Procedures": the quarterly DR drill. Every resource it
//! makes is named `drill-…` and tagged `ephemeral=true` and `dr:drill=<id>`;
//! it changes nothing else, and it cleans up on every path.

use dr_core::clock::Stopwatch;
use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::failover::{target_for, SqlAccess};
use crate::Ports;

mod scope;
pub use scope::*;
mod restore;
pub use restore::*;
mod failover_test;
pub use failover_test::*;
mod rehearsal;
pub use rehearsal::*;
mod region_test;
pub use region_test::*;
mod cleanup;
pub use cleanup::*;
mod review;
pub use review::*;

pub use dr_core::DRILL_TAG;
pub const DRILL_SOURCE_TAG: &str = "dr:drill-source";
pub const DRILL_PREFIX: &str = "drill-";
/// Instances tagged `DrDrill=in-scope` are drilled when no list is given.
pub const SCOPE_TAG: (&str, &str) = ("DrDrill", "in-scope");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TestStatus {
    Successful,
    Failed,
    TimedOut,
    Skipped,
}

/// One test of the drill, as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    pub name: String,
    pub status: TestStatus,
    pub reason: Option<String>,
    pub duration_seconds: f64,
    #[serde(default)]
    pub details: Value,
}

impl TestResult {
    /// SUCCESSFUL without problems, FAILED with them all as the reason.
    fn from_problems(name: &str, problems: &[String], started: Stopwatch, details: Value) -> Self {
        let status = if problems.is_empty() {
            TestStatus::Successful
        } else {
            TestStatus::Failed
        };
        Self::new(
            name,
            status,
            (!problems.is_empty()).then(|| problems.join("; ")),
            started,
            details,
        )
    }

    fn new(
        name: &str,
        status: TestStatus,
        reason: Option<String>,
        started: Stopwatch,
        details: Value,
    ) -> Self {
        TestResult {
            name: name.to_owned(),
            status,
            reason,
            duration_seconds: started.seconds(),
            details,
        }
    }
}

/// A drill id usable inside an RDS identifier: lowercase letters and digits.
pub fn short_drill_id(drill_id: &str) -> String {
    let cleaned: String = drill_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    cleaned.chars().take(12).collect()
}

/// The throw-away instance names of a drill for one database.
pub fn drill_names(database: &InstanceId, drill_id: &str) -> DrResult<(InstanceId, InstanceId)> {
    let short = short_drill_id(drill_id);
    if short.is_empty() {
        return Err(DrError::InvalidInput(
            "drill_id needs letters or digits".to_owned(),
        ));
    }
    let base: String = database
        .as_str()
        .chars()
        .take(63 - DRILL_PREFIX.len() - short.len() - 10)
        .collect();
    let base = base.trim_end_matches('-');
    let restore = InstanceId::parse(&format!("{DRILL_PREFIX}{base}-{short}"))?;
    let replica = InstanceId::parse(&format!("{DRILL_PREFIX}{base}-{short}-rep"))?;
    Ok((restore, replica))
}

/// The tags of everything a drill makes. `dr:managed=true` too: the
/// rehearsed failover's IAM policies promote and fence only instances
/// that carry it (RDS checks `aws:ResourceTag/dr:managed`).
pub fn drill_tags(drill_id: &str, database: &InstanceId) -> Tags {
    BTreeMap::from([
        ("dr:managed".to_owned(), "true".to_owned()),
        (EPHEMERAL_TAG.to_owned(), "true".to_owned()),
        (DRILL_TAG.to_owned(), drill_id.to_owned()),
        (DRILL_SOURCE_TAG.to_owned(), database.to_string()),
        ("CreatedBy".to_owned(), "muejam-dr-drill".to_owned()),
    ])
}

/// A drill may act only on what it made: named `drill-…`, tagged ephemeral
/// and with its own drill id.
pub(crate) fn ensure_drill_resource(
    description: &InstanceDescription,
    drill_id: &str,
) -> DrResult<()> {
    let ours = description.instance_id.as_str().starts_with(DRILL_PREFIX)
        && description.is_ephemeral()
        && description.tags.get(DRILL_TAG).map(String::as_str) == Some(drill_id);
    if ours {
        Ok(())
    } else {
        Err(DrError::Unsafe(format!(
            "{} was not made by drill {drill_id}; a drill only touches its own drill-… instances",
            description.instance_id
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drill_names_are_valid_rds_identifiers_that_say_drill() {
        let db = InstanceId::parse("muejam-db-prod").expect("id");
        let (restore, replica) =
            drill_names(&db, "3F2A-91c4-7b7e-4d8f-aa00-1234567890ab").expect("names");
        assert_eq!(restore.as_str(), "drill-muejam-db-prod-3f2a91c47b7e");
        assert_eq!(replica.as_str(), "drill-muejam-db-prod-3f2a91c47b7e-rep");
        let long = InstanceId::parse(&"a".repeat(63)).expect("id");
        let (restore, replica) = drill_names(&long, "run").expect("names");
        assert!(restore.as_str().len() <= 63 && replica.as_str().len() <= 63);
        assert!(drill_names(&db, "---").is_err());
    }

    #[test]
    fn poll_limits_follow_the_time_budgets_and_never_pass_the_cap() {
        // (interval, restore, replica)
        let cases = [
            (1, 240, 240),
            (15, 240, 240),
            (30, 240, 120),
            (45, 240, 80),
            (60, 180, 60),
            (301 - 1, 36, 12),
            (7, 240, 240),
            (3600, 3, 1),
        ];
        for (interval, restore, replica) in cases {
            let limits = poll_limits(interval);
            assert_eq!(
                (
                    limits.restore_polls,
                    limits.replica_polls,
                    limits.marker_polls
                ),
                (restore, replica, MARKER_POLLS),
                "interval {interval}"
            );
        }
        // No interval is zero; a zero would be read as one second.
        assert_eq!(poll_limits(0), poll_limits(1));
    }
}
