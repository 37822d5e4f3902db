//! What a verification reports, and what it is asked to check.

use crate::*;
use serde::{Deserialize, Serialize};

/// A relation that must hold although no constraint enforces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogicalRelation {
    pub child_table: String,
    pub child_columns: Vec<String>,
    pub parent_table: String,
    pub parent_columns: Vec<String>,
}

impl LogicalRelation {
    /// `stories.author_id -> users.id`, or with several columns `a.(x,y) -> b.(x,y)`.
    pub fn parse(text: &str) -> DrResult<Self> {
        let bad = || {
            DrError::InvalidInput(format!(
                "logical relation {text:?} must look like child.column -> parent.column"
            ))
        };
        let (child, parent) = text.split_once("->").ok_or_else(bad)?;
        let side = |s: &str| -> DrResult<(String, Vec<String>)> {
            let (table, columns) = s.trim().split_once('.').ok_or_else(bad)?;
            let columns: Vec<String> = columns
                .trim_matches(|c| c == '(' || c == ')')
                .split(',')
                .map(|c| c.trim().to_owned())
                .collect();
            if table.is_empty() || columns.iter().any(String::is_empty) {
                return Err(bad());
            }
            Ok((table.trim().to_owned(), columns))
        };
        let (child_table, child_columns) = side(child)?;
        let (parent_table, parent_columns) = side(parent)?;
        if child_columns.len() != parent_columns.len() {
            return Err(bad());
        }
        Ok(LogicalRelation {
            child_table,
            child_columns,
            parent_table,
            parent_columns,
        })
    }
}

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Connections used in parallel.
    pub jobs: usize,
    /// Orphan keys reported per violation.
    pub sample_limit: usize,
    pub statement_timeout_ms: u64,
    pub lock_timeout_ms: u64,
    /// Row counts to compare with (a previous report, counts at snapshot time).
    pub baseline: Option<BTreeMap<String, u64>>,
    /// Allowed relative drop or growth against the baseline (0.05 = 5 %).
    pub tolerance: f64,
    /// Tables that must exist and not be empty.
    pub expected_tables: Vec<String>,
    pub logical_relations: Vec<LogicalRelation>,
    /// Named queries that must return no rows.
    pub custom_checks: Vec<NamedCheck>,
    /// Run amcheck's bt_index_check on every B-tree index when installed.
    pub amcheck: bool,
    /// Memory for each query's hash joins.
    pub work_mem: String,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            jobs: 2,
            sample_limit: 5,
            statement_timeout_ms: 15 * 60 * 1000,
            lock_timeout_ms: 5_000,
            baseline: None,
            tolerance: 0.0,
            expected_tables: Vec::new(),
            logical_relations: Vec::new(),
            custom_checks: Vec::new(),
            amcheck: true,
            work_mem: "128MB".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Passed,
    Failed,
    Skipped,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub kind: String,
    pub status: CheckStatus,
    /// Violating rows (orphans, invalid objects, ...), when counted.
    pub count: Option<u64>,
    pub samples: Vec<serde_json::Value>,
    pub detail: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrityReport {
    pub status: CheckStatus,
    pub database: String,
    /// Every check read the same snapshot of the database.
    #[serde(default)]
    pub consistent_snapshot: bool,
    pub checks: Vec<CheckResult>,
    pub row_counts: BTreeMap<String, u64>,
    pub duration_ms: u64,
}

impl IntegrityReport {
    pub fn passed(&self) -> bool {
        self.status == CheckStatus::Passed
    }
}
