//! Planning: which relation each table scan checks without a join, which
//! join counts a table's rows, and the row-count checks against a baseline.

use crate::*;

/// The parent side of a foreign key whose orphans a child scan can count
/// without a join: the parent's unique, non-null integer key holds every value
/// of an interval (as keys from a sequence do until rows are deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DenseKeys {
    /// The parent is empty: every non-null child key is an orphan.
    Empty,
    /// The parent's keys are expected to be exactly `min..=max`.
    Interval { min: i64, max: i64 },
}

impl DenseKeys {
    /// Expected from the catalog: `min`/`max` from the key's index and the
    /// planner's row estimate. Exactness is proved after the scans, from the
    /// parent's counted rows; a wrong guess only costs a join afterwards.
    pub(crate) fn expected(
        estimated_rows: f64,
        min: Option<i64>,
        max: Option<i64>,
    ) -> Option<DenseKeys> {
        let (Some(min), Some(max)) = (min, max) else {
            return Some(DenseKeys::Empty);
        };
        let keys = DenseKeys::Interval { min, max };
        let span = keys.rows() as f64;
        // A negative estimate means "never analyzed": try the interval.
        let far_off =
            estimated_rows >= 0.0 && (estimated_rows - span).abs() > (span * 0.01).max(1.0);
        (!far_off).then_some(keys)
    }

    /// How many rows the parent has when its keys fill the interval. A unique
    /// key counted this many times in `min..=max` takes every value of it.
    pub(crate) fn rows(self) -> u128 {
        match self {
            DenseKeys::Empty => 0,
            DenseKeys::Interval { min, max } => {
                (i128::from(max) - i128::from(min) + 1).max(0) as u128
            }
        }
    }

    /// The child rows whose key cannot be in the parent.
    pub(crate) fn outside(self, column: &str) -> String {
        let column = format!("c.{}", quote_ident(column));
        match self {
            DenseKeys::Empty => format!("{column} IS NOT NULL"),
            DenseKeys::Interval { min, max } => {
                format!("{column} IS NOT NULL AND ({column} < {min} OR {column} > {max})")
            }
        }
    }

    pub(crate) fn describe(self) -> String {
        match self {
            DenseKeys::Empty => "the parent is empty".to_owned(),
            DenseKeys::Interval { min, max } => {
                format!("every key lies in the parent's gap-free key range {min}..={max}")
            }
        }
    }
}

/// A foreign key (or logical relation) as the checks see it.
#[derive(Debug, Clone)]
pub(crate) struct Relation {
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) child: String,
    pub(crate) child_columns: Vec<String>,
    pub(crate) parent: String,
    pub(crate) parent_columns: Vec<String>,
    /// Foreign keys reference a unique key; a logical relation may not.
    pub(crate) parent_unique: bool,
    /// The child's key columns lead one of its indexes.
    pub(crate) child_indexed: bool,
    /// Checked by the child's table scan instead of a join.
    pub(crate) dense: Option<DenseKeys>,
    /// The join also counts the child's rows (its table has no scan of its own).
    pub(crate) counts_child_rows: bool,
}

impl Relation {
    /// Whether its join also counts the child's rows.
    pub(crate) fn counts_rows(&self) -> bool {
        self.counts_child_rows && self.parent_unique && !self.parent_columns.is_empty()
    }

    pub(crate) fn detail(&self) -> String {
        format!(
            "{}({}) -> {}({})",
            self.child,
            self.child_columns.join(", "),
            self.parent,
            self.parent_columns.join(", ")
        )
    }
}

/// One unit of work for the pool.
#[derive(Debug, Clone)]
pub(crate) enum Work {
    /// Counts a table's rows and, in the same scan, the keys of `dense`
    /// relations that fall outside their parent's key range.
    Table {
        table: String,
        dense: Vec<Relation>,
    },
    /// Counts a relation's orphans with an anti-join.
    Relation(Relation),
    Custom(NamedCheck),
    Amcheck {
        index: String,
    },
}

/// Row counts against the baseline (within the tolerance), and the tables
/// that must exist and not be empty.
pub(crate) fn row_count_checks(
    row_counts: &BTreeMap<String, u64>,
    options: &VerifyOptions,
) -> Vec<CheckResult> {
    let mut checks = Vec::new();
    if let Some(baseline) = &options.baseline {
        for (table, expected) in baseline {
            let actual = row_counts.get(table).copied();
            let allowed = (*expected as f64 * options.tolerance).floor() as u64;
            let (status, detail) = match actual {
                None => (
                    CheckStatus::Failed,
                    format!("table {table} is missing (baseline {expected} rows)"),
                ),
                Some(n) if n.abs_diff(*expected) > allowed => (
                    CheckStatus::Failed,
                    format!(
                        "{n} rows, baseline {expected} (tolerance {:.1} %)",
                        options.tolerance * 100.0
                    ),
                ),
                Some(n) => (
                    CheckStatus::Passed,
                    format!("{n} rows, baseline {expected}"),
                ),
            };
            checks.push(CheckResult {
                name: format!("row_count_{table}"),
                kind: "row_count".to_owned(),
                status,
                count: actual,
                samples: vec![],
                detail: Some(detail),
                duration_ms: 0,
            });
        }
    }
    for table in &options.expected_tables {
        let (status, detail) = match row_counts.get(table) {
            None => (
                CheckStatus::Failed,
                format!("expected table {table} is missing"),
            ),
            Some(0) => (
                CheckStatus::Failed,
                format!("expected table {table} is empty"),
            ),
            Some(n) => (CheckStatus::Passed, format!("{n} rows")),
        };
        checks.push(CheckResult {
            name: format!("expected_{table}"),
            kind: "expected_table".to_owned(),
            status,
            count: row_counts.get(table).copied(),
            samples: vec![],
            detail: Some(detail),
            duration_ms: 0,
        });
    }
    checks
}

/// The pool's work, largest first: a table with a dense relation is scanned
/// for it and counted there; otherwise one of its merge joins counts its rows;
/// else it is counted alone. `tables` holds each table with its size in pages.
pub(crate) fn plan(tables: &[(String, i32)], relations: Vec<Relation>) -> Vec<Work> {
    let pages = |table: &str| {
        tables
            .iter()
            .find(|(t, _)| t == table)
            .map_or(0, |(_, p)| i64::from(*p))
    };
    let (dense, mut joined): (Vec<Relation>, Vec<Relation>) =
        relations.into_iter().partition(|r| r.dense.is_some());
    let mut work: Vec<(i64, Work)> = Vec::new();
    for (table, table_pages) in tables {
        let table_dense: Vec<Relation> = dense
            .iter()
            .filter(|r| &r.child == table)
            .cloned()
            .collect();
        if table_dense.is_empty() {
            if let Some(counter) = joined
                .iter_mut()
                .find(|r| &r.child == table && r.parent_unique && r.child_indexed)
            {
                counter.counts_child_rows = true;
                continue;
            }
        }
        work.push((
            i64::from(*table_pages),
            Work::Table {
                table: table.clone(),
                dense: table_dense,
            },
        ));
    }
    work.extend(
        joined
            .into_iter()
            .map(|r| (pages(&r.child), Work::Relation(r))),
    );
    work.sort_by_key(|(cost, _)| std::cmp::Reverse(*cost));
    work.into_iter().map(|(_, w)| w).collect()
}

/// A dense relation passes when the parent, counted in the same snapshot,
/// has exactly as many rows as its key range has values, and no child key
/// fell outside the range. Anything else is settled by a join, which also
/// gives the exact count and the samples. Returns the passed checks and the
/// joins still to run.
pub(crate) fn settle_dense(
    scanned: Vec<(Relation, Option<u64>, u64)>,
    row_counts: &BTreeMap<String, u64>,
) -> (Vec<CheckResult>, Vec<Work>) {
    let mut checks = Vec::new();
    let mut joins = Vec::new();
    for (relation, outside, scan_ms) in scanned {
        let Some(keys) = relation.dense else { continue };
        let parent_rows = row_counts.get(&relation.parent).map(|n| u128::from(*n));
        if outside == Some(0) && parent_rows == Some(keys.rows()) {
            checks.push(CheckResult {
                name: relation.name.clone(),
                kind: relation.kind.to_owned(),
                status: CheckStatus::Passed,
                count: Some(0),
                samples: vec![],
                detail: Some(format!("{}: {}", relation.detail(), keys.describe())),
                duration_ms: scan_ms,
            });
        } else {
            joins.push(Work::Relation(relation));
        }
    }
    (checks, joins)
}
