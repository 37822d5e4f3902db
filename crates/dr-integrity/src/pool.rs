//! Sessions on one exported snapshot, and the bounded pool of workers that
//! runs the plan, largest unit first.

use crate::*;

/// What one unit of work found.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) checks: Vec<CheckResult>,
    pub(crate) row_count: Option<(String, u64)>,
    /// Dense relations with their keys outside the parent's range (None when
    /// the scan failed), and how long the scan took.
    pub(crate) outside: Vec<(Relation, Option<u64>, u64)>,
    /// A table whose rows a failed join was to count.
    pub(crate) uncounted: Option<String>,
}

pub(crate) async fn session(target: &DatabaseTarget, options: &VerifyOptions) -> DrResult<Client> {
    let client = dr_postgres::connect(target).await?;
    client
        .batch_execute(&format!(
            "SET default_transaction_read_only = on;
             SET statement_timeout = {};
             SET lock_timeout = {};
             SET work_mem = '{}';
             SET max_parallel_workers_per_gather = 0;
             SET jit = off;
             SET application_name = 'muejam-dr-integrity'",
            options.statement_timeout_ms,
            options.lock_timeout_ms,
            options.work_mem.replace('\'', "")
        ))
        .await
        .map_err(|e| dr_postgres::map_pg_error("preparing an integrity session", &e))?;
    Ok(client)
}

pub(crate) const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// A worker's session: one read-only transaction for all its checks, on the
/// catalog session's exported snapshot when there is one, so every check sees
/// the same database (as `pg_dump -j` does).
pub(crate) async fn worker_session(
    target: &DatabaseTarget,
    options: &VerifyOptions,
    snapshot: Option<&str>,
) -> DrResult<Client> {
    let client = session(target, options).await?;
    let mut begin = BEGIN_SNAPSHOT.to_owned();
    if let Some(id) = snapshot {
        begin.push_str(&format!("; SET TRANSACTION SNAPSHOT '{id}'"));
    }
    client
        .batch_execute(&begin)
        .await
        .map_err(|e| dr_postgres::map_pg_error("importing the verification snapshot", &e))?;
    Ok(client)
}

/// Runs one check's statement in a savepoint that is always rolled back: a
/// failed or timed-out check leaves the transaction usable for the next one,
/// and planner `settings` apply to this statement only.
pub(crate) async fn checked_query(
    client: &Client,
    what: &str,
    settings: &[(&str, &str)],
    sql: &str,
) -> DrResult<Vec<tokio_postgres::Row>> {
    let mut prelude = "SAVEPOINT integrity_check;".to_owned();
    for (name, value) in settings {
        prelude.push_str(&format!(" SET LOCAL {name} = {value};"));
    }
    client
        .batch_execute(&prelude)
        .await
        .map_err(|e| dr_postgres::map_pg_error(what, &e))?;
    let rows = client.query(sql, &[]).await;
    let _ = client
        .batch_execute("ROLLBACK TO SAVEPOINT integrity_check; RELEASE SAVEPOINT integrity_check")
        .await;
    rows.map_err(|e| dr_postgres::map_pg_error(what, &e))
}

/// [`checked_query`] keeping the server's SQLSTATE of a failure.
pub(crate) async fn coded_query(
    client: &Client,
    what: &str,
    sql: &str,
) -> Result<Vec<tokio_postgres::Row>, (Option<SqlState>, DrError)> {
    client
        .batch_execute("SAVEPOINT integrity_check")
        .await
        .map_err(|e| (e.code().cloned(), dr_postgres::map_pg_error(what, &e)))?;
    let rows = client.query(sql, &[]).await;
    let _ = client
        .batch_execute("ROLLBACK TO SAVEPOINT integrity_check; RELEASE SAVEPOINT integrity_check")
        .await;
    rows.map_err(|e| (e.code().cloned(), dr_postgres::map_pg_error(what, &e)))
}

/// A catalog query in the catalog session's transaction.
pub(crate) async fn catalog_query(
    client: &Client,
    what: &str,
    sql: &str,
) -> DrResult<Vec<tokio_postgres::Row>> {
    client
        .query(sql, &[])
        .await
        .map_err(|e| dr_postgres::map_pg_error(what, &e))
}

pub(crate) async fn run_work(client: &Client, work: Work, options: &VerifyOptions) -> Outcome {
    let started = Instant::now();
    let elapsed = || started.elapsed().as_millis() as u64;
    match work {
        Work::Relation(r) => {
            // Two sorted index-only scans merged: no hash table, no heap.
            let settings: &[(&str, &str)] = if r.parent_unique && r.child_indexed {
                &[("enable_hashjoin", "off"), ("enable_nestloop", "off")]
            } else {
                &[]
            };
            let result = checked_query(
                client,
                &format!("checking {}", r.name),
                settings,
                &relation_sql(&r),
            )
            .await;
            tracing::info!(relation = %r.name, child = %r.child, ms = elapsed(), "relation checked");
            let counts_rows = r.counts_rows();
            let mut row_count = None;
            let counted = result.and_then(|rows| {
                if counts_rows {
                    Ok((Some(count_of(&rows, 0)?), count_of(&rows, 1)?))
                } else {
                    Ok((None, count_of(&rows, 0)?))
                }
            });
            let check = match counted {
                Ok((rows_counted, orphans)) => {
                    row_count = rows_counted.map(|n| (r.child.clone(), n));
                    let mut samples = Vec::new();
                    if orphans > 0 && options.sample_limit > 0 {
                        if let Ok(rows) = checked_query(
                            client,
                            "sampling orphans",
                            &[],
                            &orphan_sample_sql(&r, options.sample_limit),
                        )
                        .await
                        {
                            samples = rows.iter().map(row_to_json).collect();
                        }
                    }
                    CheckResult {
                        name: r.name.clone(),
                        kind: r.kind.to_owned(),
                        status: if orphans == 0 {
                            CheckStatus::Passed
                        } else {
                            CheckStatus::Failed
                        },
                        count: Some(orphans),
                        samples,
                        detail: Some(r.detail()),
                        duration_ms: elapsed(),
                    }
                }
                Err(e) => CheckResult {
                    name: r.name.clone(),
                    kind: r.kind.to_owned(),
                    status: CheckStatus::Error,
                    count: None,
                    samples: vec![],
                    detail: Some(format!("{}: {e}", r.detail())),
                    duration_ms: elapsed(),
                },
            };
            // A failed join leaves its table uncounted: count it on its own.
            let uncounted = (counts_rows && row_count.is_none()).then(|| r.child.clone());
            Outcome {
                checks: vec![check],
                row_count,
                uncounted,
                ..Outcome::default()
            }
        }
        Work::Table { table, dense } => {
            let result = checked_query(
                client,
                &format!("counting {table}"),
                &[],
                &table_scan_sql(&table, &dense),
            )
            .await;
            tracing::info!(table = %table, relations = dense.len(), ms = elapsed(), "table scanned");
            let counted = result.and_then(|rows| {
                let total = count_of(&rows, 0)?;
                let outside = (0..dense.len())
                    .map(|i| count_of(&rows, i + 1))
                    .collect::<DrResult<Vec<u64>>>()?;
                Ok((total, outside))
            });
            match counted {
                Ok((total, outside)) => Outcome {
                    row_count: Some((table, total)),
                    outside: dense
                        .into_iter()
                        .zip(outside)
                        .map(|(r, n)| (r, Some(n), elapsed()))
                        .collect(),
                    ..Outcome::default()
                },
                Err(e) => Outcome {
                    checks: vec![CheckResult {
                        name: format!("row_count_{table}"),
                        kind: "row_count".to_owned(),
                        status: CheckStatus::Error,
                        count: None,
                        samples: vec![],
                        detail: Some(e.to_string()),
                        duration_ms: elapsed(),
                    }],
                    outside: dense.into_iter().map(|r| (r, None, 0)).collect(),
                    ..Outcome::default()
                },
            }
        }
        Work::Custom(check) => {
            let body = check.sql.trim().trim_end_matches(';');
            let result = checked_query(
                client,
                &check.name,
                &[],
                &format!("SELECT count(*) FROM ({body}) AS violations"),
            )
            .await;
            let (status, count, detail) = match result.and_then(|rows| count_of(&rows, 0)) {
                Ok(n) => (
                    if n == 0 {
                        CheckStatus::Passed
                    } else {
                        CheckStatus::Failed
                    },
                    Some(n),
                    None,
                ),
                Err(e) => (CheckStatus::Error, None, Some(e.to_string())),
            };
            Outcome {
                checks: vec![CheckResult {
                    name: check.name.clone(),
                    kind: "custom".to_owned(),
                    status,
                    count,
                    samples: vec![],
                    detail,
                    duration_ms: elapsed(),
                }],
                ..Outcome::default()
            }
        }
        Work::Amcheck { index } => {
            let sql = format!(
                "SELECT bt_index_check('{}'::regclass)",
                qualified(&index).replace('\'', "''")
            );
            let result = coded_query(client, &format!("amcheck {index}"), &sql).await;
            let (status, detail) = match result {
                Ok(_) => (CheckStatus::Passed, None),
                // Corruption is what the server says it is: its SQLSTATE.
                Err((Some(code), e))
                    if code == SqlState::INDEX_CORRUPTED || code == SqlState::DATA_CORRUPTED =>
                {
                    (CheckStatus::Failed, Some(e.to_string()))
                }
                Err((_, e)) => (CheckStatus::Error, Some(e.to_string())),
            };
            Outcome {
                checks: vec![CheckResult {
                    name: format!("btree_{index}"),
                    kind: "amcheck".to_owned(),
                    status,
                    count: None,
                    samples: vec![],
                    detail,
                    duration_ms: elapsed(),
                }],
                ..Outcome::default()
            }
        }
    }
}

/// `jobs` sessions pulling work from one queue until it is empty.
pub(crate) async fn run_pool(
    target: &DatabaseTarget,
    options: &VerifyOptions,
    snapshot: Option<&str>,
    work: Vec<Work>,
) -> DrResult<Vec<Outcome>> {
    let workers = options.jobs.min(work.len());
    let queue = Arc::new(Mutex::new(VecDeque::from(work)));
    let mut handles = Vec::new();
    for _ in 0..workers {
        let queue = Arc::clone(&queue);
        let target = target.clone();
        let options = options.clone();
        let snapshot = snapshot.map(str::to_owned);
        handles.push(tokio::spawn(async move {
            let client = worker_session(&target, &options, snapshot.as_deref()).await?;
            let mut outcomes = Vec::new();
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(work) = next else { break };
                outcomes.push(run_work(&client, work, &options).await);
            }
            let _ = client.batch_execute("COMMIT").await;
            Ok::<_, DrError>(outcomes)
        }));
    }
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.extend(
            handle
                .await
                .map_err(|e| DrError::Internal(format!("integrity worker: {e}")))??,
        );
    }
    Ok(outcomes)
}
