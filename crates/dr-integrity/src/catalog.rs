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

/// The catalog's own checks: constraints never validated, indexes not valid.
pub(crate) async fn catalog_checks(catalog: &Client) -> DrResult<Vec<CheckResult>> {
    let mut checks = Vec::new();
    let timer = Instant::now();
    let unvalidated = catalog_query(
        catalog,
        "reading unvalidated constraints",
        "SELECT format('%s.%s', conrelid::regclass, conname) FROM pg_constraint c
           JOIN pg_namespace n ON n.oid = c.connamespace
          WHERE NOT convalidated AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .await?;
    checks.push(catalog_check(
        "constraints_validated",
        unvalidated
            .iter()
            .map(|r| serde_json::Value::String(r.get(0)))
            .collect(),
        "constraints with convalidated = false (added NOT VALID and never validated)",
        timer,
    ));
    let timer = Instant::now();
    let invalid = catalog_query(
        catalog,
        "reading invalid indexes",
        "SELECT indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE NOT (indisvalid AND indisready) AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .await?;
    checks.push(catalog_check(
        "indexes_valid",
        invalid
            .iter()
            .map(|r| serde_json::Value::String(r.get(0)))
            .collect(),
        "indexes with indisvalid = false (a failed CREATE INDEX CONCURRENTLY, a broken reindex)",
        timer,
    ));

    Ok(checks)
}

/// What the plan is made from, read in the catalog session's snapshot.
pub(crate) struct Discovery {
    /// Every user table with its size in pages, largest first.
    pub(crate) tables: Vec<(String, i32)>,
    /// Every foreign key (NOT VALID ones included), with the dense-key range
    /// expected of its parent when the workers share the snapshot, and every
    /// logical relation whose tables exist.
    pub(crate) relations: Vec<Relation>,
    /// A failed check for each logical relation over a missing table.
    pub(crate) checks: Vec<CheckResult>,
}

/// Discovers the tables and relations to check. The dense-key shortcut
/// combines counts from several sessions, so it is only expected when
/// `snapshot` (the exported one every worker imports) is there.
pub(crate) async fn discover(
    catalog: &Client,
    snapshot: Option<&str>,
    options: &VerifyOptions,
) -> DrResult<Discovery> {
    let mut checks = Vec::new();
    let tables: Vec<(String, i32)> = catalog_query(
        catalog,
        "listing tables",
        "SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END, c.relpages
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
            AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'dr_probe') AND n.nspname NOT LIKE 'pg_toast%'
          ORDER BY c.relpages DESC, 1",
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let fk_rows = catalog_query(
        catalog,
        "listing foreign keys",
        "SELECT c.conname,
                CASE WHEN cn.nspname = 'public' THEN cc.relname ELSE cn.nspname || '.' || cc.relname END,
                ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
                CASE WHEN pn.nspname = 'public' THEN pc.relname ELSE pn.nspname || '.' || pc.relname END,
                ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i),
                c.convalidated,
                cardinality(c.conkey) = 1
                  AND (SELECT a.atttypid::regtype::text IN ('smallint', 'integer', 'bigint') AND a.attnotnull
                         FROM pg_attribute a WHERE a.attrelid = c.confrelid AND a.attnum = c.confkey[1])
                  AND (SELECT a.atttypid::regtype::text IN ('smallint', 'integer', 'bigint')
                         FROM pg_attribute a WHERE a.attrelid = c.conrelid AND a.attnum = c.conkey[1]),
                pc.reltuples::float8
           FROM pg_constraint c
           JOIN pg_class cc ON cc.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
           JOIN pg_class pc ON pc.oid = c.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
          WHERE c.contype = 'f' ORDER BY 2, 1",
    )
    .await?;
    let index_rows = catalog_query(
        catalog,
        "listing indexes",
        "SELECT CASE WHEN n.nspname = 'public' THEN t.relname ELSE n.nspname || '.' || t.relname END,
                ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)
           FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
          WHERE i.indisvalid AND i.indpred IS NULL",
    )
    .await?;
    let indexes: Vec<(String, Vec<String>)> =
        index_rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let leads_an_index = |table: &str, columns: &[String]| {
        indexes.iter().any(|(t, cols)| {
            t == table && cols.len() >= columns.len() && cols[..columns.len()] == *columns
        })
    };
    // The dense-key shortcut combines counts from several sessions: only sound
    // when they all read the same snapshot.
    let mut key_ranges: BTreeMap<(String, String), (Option<i64>, Option<i64>)> = BTreeMap::new();
    let mut relations: Vec<Relation> = Vec::new();
    for row in &fk_rows {
        let validated: bool = row.get(5);
        let integer_key: Option<bool> = row.get(6);
        let estimated_parent_rows: f64 = row.get(7);
        let child: String = row.get(1);
        let child_columns: Vec<String> = row.get(2);
        let parent: String = row.get(3);
        let parent_columns: Vec<String> = row.get(4);
        let dense = match (snapshot, integer_key, parent_columns.as_slice()) {
            (Some(_), Some(true), [column]) => {
                let key = (parent.clone(), column.clone());
                let range = match key_ranges.get(&key) {
                    Some(range) => *range,
                    None => {
                        let sql = format!(
                            "SELECT min({c})::int8, max({c})::int8 FROM {p}",
                            c = quote_ident(column),
                            p = qualified(&parent)
                        );
                        let found = catalog_query(catalog, "reading a key range", &sql).await?;
                        let range = found.first().map_or((None, None), |r| (r.get(0), r.get(1)));
                        key_ranges.insert(key, range);
                        range
                    }
                };
                DenseKeys::expected(estimated_parent_rows, range.0, range.1)
            }
            _ => None,
        };
        relations.push(Relation {
            name: format!("fk_{}", row.get::<_, String>(0)),
            kind: if validated {
                "foreign_key"
            } else {
                "foreign_key_not_valid"
            },
            child_indexed: leads_an_index(&child, &child_columns),
            child,
            child_columns,
            parent,
            parent_columns,
            parent_unique: true,
            dense,
            counts_child_rows: false,
        });
    }
    for logical in &options.logical_relations {
        let name = format!(
            "logical_{}_{}",
            logical.child_table,
            logical.child_columns.join("_")
        );
        let missing: Vec<&str> = [&logical.child_table, &logical.parent_table]
            .into_iter()
            .filter(|t| !tables.iter().any(|(name, _)| name == *t))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            checks.push(CheckResult {
                name,
                kind: "logical_relation".to_owned(),
                status: CheckStatus::Failed,
                count: None,
                samples: vec![],
                detail: Some(format!("table {} does not exist", missing.join(", "))),
                duration_ms: 0,
            });
            continue;
        }
        relations.push(Relation {
            name,
            kind: "logical_relation",
            child_indexed: leads_an_index(&logical.child_table, &logical.child_columns),
            child: logical.child_table.clone(),
            child_columns: logical.child_columns.clone(),
            parent: logical.parent_table.clone(),
            parent_columns: logical.parent_columns.clone(),
            parent_unique: false,
            dense: None,
            counts_child_rows: false,
        });
    }
    Ok(Discovery {
        tables,
        relations,
        checks,
    })
}

/// One amcheck unit per valid B-tree index, or the check saying why amcheck
/// is skipped (not requested, or the extension is not installed).
pub(crate) async fn amcheck_work(
    catalog: &Client,
    options: &VerifyOptions,
) -> DrResult<Result<Vec<Work>, CheckResult>> {
    let amcheck_installed = catalog_query(
        catalog,
        "looking for amcheck",
        "SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'",
    )
    .await?
    .first()
    .map(|r| r.get::<_, i64>(0) > 0)
    .unwrap_or(false);
    if !(options.amcheck && amcheck_installed) {
        return Ok(Err(CheckResult {
            name: "btree_indexes".to_owned(),
            kind: "amcheck".to_owned(),
            status: CheckStatus::Skipped,
            count: None,
            samples: vec![],
            detail: Some(if options.amcheck {
                "the amcheck extension is not installed in this database (CREATE EXTENSION amcheck)"
                    .to_owned()
            } else {
                "amcheck was not requested".to_owned()
            }),
            duration_ms: 0,
        }));
    }
    let indexes = catalog_query(
        catalog,
        "listing B-tree indexes",
        "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_am am ON am.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready
            AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
          ORDER BY c.relpages DESC",
    )
    .await?;
    Ok(Ok(indexes
        .iter()
        .map(|r| Work::Amcheck { index: r.get(0) })
        .collect()))
}
