//! Is this database consistent? The runbook's "Identify Corruption Scope" and
//! "Verify Data Integrity", fast enough to sit between a restore and the DNS
//! switch.
//!
//! Consistency: the catalog session exports its snapshot and every worker
//! imports it (as `pg_dump -j` does), so all checks and counts describe one
//! moment of the database even while it takes writes. Every query runs in a
//! READ ONLY transaction with statement and lock timeouts and takes only
//! ACCESS SHARE locks, which never block writers.
//!
//! Speed: each table is scanned once, for its row count and for every
//! foreign key whose parent key is an integer with no gaps (`n` unique keys
//! between `min` and `max` with `max - min + 1 = n`): a child key is then an
//! orphan exactly when it falls outside `min..=max`, so no join is needed.
//! Whether the keys really have no gaps is proved after the scans from the
//! parent's row count in the same snapshot; like PostgreSQL's own foreign-key
//! checks, this trusts the parent's unique index (amcheck checks that index).
//! Every other relation is one join; where the child's key columns lead an
//! index and the parent's key is unique, it is steered to a merge join of two
//! index-only scans (no hash table, no sort, no heap read), about 3x faster
//! than a hash join on warm data. A table with no gap-free parent is counted
//! by one of those joins (a left join to a unique key yields each child row
//! once) instead of a scan of its own. Work runs over a bounded pool of
//! connections, largest first.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dr_core::{DatabaseTarget, DrError, DrResult, NamedCheck};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

mod report;
pub use report::*;
mod plan;
use plan::*;
mod sql;
use sql::*;
mod pool;
use pool::*;
mod catalog;
use catalog::*;

/// Verifies the database behind `target`.
pub async fn verify(target: &DatabaseTarget, options: &VerifyOptions) -> DrResult<IntegrityReport> {
    if options.jobs == 0 {
        return Err(DrError::InvalidInput("jobs must be at least 1".to_owned()));
    }
    let started = Instant::now();
    let catalog = session(target, options).await?;
    let snapshot = begin_catalog(&catalog).await?;
    let mut checks = catalog_checks(&catalog).await?;
    let discovery = discover(&catalog, snapshot.as_deref(), options).await?;
    checks.extend(discovery.checks);

    // Each table scanned once (its rows and its dense relations); the other
    // relations joined. Largest first, so the pool's last job is a short one.
    let mut work = plan(&discovery.tables, discovery.relations);
    work.extend(options.custom_checks.iter().cloned().map(Work::Custom));
    match amcheck_work(&catalog, options).await? {
        Ok(indexes) => work.extend(indexes),
        Err(skipped) => checks.push(skipped),
    }

    let mut row_counts = BTreeMap::new();
    let mut scanned = Vec::new();
    let mut second_pass = Vec::new();
    for outcome in run_pool(target, options, snapshot.as_deref(), work).await? {
        checks.extend(outcome.checks);
        row_counts.extend(outcome.row_count);
        scanned.extend(outcome.outside);
        second_pass.extend(outcome.uncounted.map(|table| Work::Table {
            table,
            dense: vec![],
        }));
    }

    let (settled, joins) = settle_dense(scanned, &row_counts);
    checks.extend(settled);
    second_pass.extend(joins);
    if !second_pass.is_empty() {
        for outcome in run_pool(target, options, snapshot.as_deref(), second_pass).await? {
            checks.extend(outcome.checks);
            row_counts.extend(outcome.row_count);
        }
    }
    let _ = catalog.batch_execute("COMMIT").await;
    drop(catalog);

    checks.extend(row_count_checks(&row_counts, options));

    let status = if checks.iter().any(|c| c.status == CheckStatus::Failed) {
        CheckStatus::Failed
    } else if checks.iter().any(|c| c.status == CheckStatus::Error) {
        CheckStatus::Error
    } else {
        CheckStatus::Passed
    };
    Ok(IntegrityReport {
        status,
        database: target.database.clone(),
        consistent_snapshot: snapshot.is_some(),
        checks,
        row_counts,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// The verifier behind the [`dr_core::IntegrityVerifier`] port.
#[derive(Debug, Clone, Copy)]
pub struct PostgresIntegrityVerifier {
    pub jobs: usize,
}

#[async_trait::async_trait]
impl dr_core::IntegrityVerifier for PostgresIntegrityVerifier {
    async fn verify(
        &self,
        target: &DatabaseTarget,
        baseline: Option<&BTreeMap<String, u64>>,
        tolerance: f64,
        checks: &[NamedCheck],
    ) -> DrResult<dr_core::IntegritySummary> {
        let options = VerifyOptions {
            jobs: self.jobs.max(1),
            baseline: baseline.cloned(),
            tolerance,
            custom_checks: checks.to_vec(),
            ..VerifyOptions::default()
        };
        let report = verify(target, &options).await?;
        let failed: Vec<&CheckResult> = report
            .checks
            .iter()
            .filter(|c| matches!(c.status, CheckStatus::Failed | CheckStatus::Error))
            .collect();
        let failed_checks = failed
            .iter()
            .map(|c| dr_core::IntegrityFinding {
                name: c.name.clone(),
                kind: c.kind.clone(),
                status: if c.status == CheckStatus::Failed {
                    "failed".to_owned()
                } else {
                    "error".to_owned()
                },
                count: c.count,
                samples: c.samples.clone(),
                detail: c.detail.clone(),
            })
            .collect();
        let findings = failed
            .iter()
            .map(|c| {
                format!(
                    "{}{}: {}",
                    c.name,
                    c.count.map(|n| format!(" ({n})")).unwrap_or_default(),
                    c.detail.as_deref().unwrap_or("failed")
                )
            })
            .collect();
        Ok(dr_core::IntegritySummary {
            passed: report.passed(),
            findings,
            failed_checks,
            checks_run: report.checks.len(),
            row_counts: report.row_counts,
            duration_ms: report.duration_ms,
        })
    }
}

#[cfg(test)]
mod tests;
