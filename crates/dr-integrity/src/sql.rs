//! The SQL each unit of work runs, and reading counts out of its rows.

use crate::*;

pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn qualified(table: &str) -> String {
    match table.split_once('.') {
        Some((schema, name)) => format!("{}.{}", quote_ident(schema), quote_ident(name)),
        None => quote_ident(table),
    }
}

/// The child row `c` has every key column set (MATCH SIMPLE: a NULL anywhere
/// in the key exempts the row).
pub(crate) fn key_present(r: &Relation) -> String {
    r.child_columns
        .iter()
        .map(|c| format!("c.{} IS NOT NULL", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The parent row `p` is the one the child row `c` refers to.
pub(crate) fn key_matches(r: &Relation) -> String {
    r.child_columns
        .iter()
        .zip(&r.parent_columns)
        .map(|(c, p)| format!("p.{} = c.{}", quote_ident(p), quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The WHERE clause that selects a relation's orphans from `c`.
pub(crate) fn orphan_condition(r: &Relation) -> String {
    format!(
        "{} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})",
        key_present(r),
        qualified(&r.parent),
        key_matches(r)
    )
}

/// How many orphans a relation has; with `counts_child_rows`, first how
/// many rows the child has, from the same merge of the two indexes (a left
/// join to a unique parent key yields each child row once).
pub(crate) fn relation_sql(r: &Relation) -> String {
    if let (true, Some(first)) = (r.counts_rows(), r.parent_columns.first()) {
        // A matched parent row has its key equal to a non-null child key, so
        // a NULL first key column means "no parent".
        return format!(
            "SELECT count(*), count(*) FILTER (WHERE {} AND p.{} IS NULL) FROM {} c LEFT JOIN {} p ON {}",
            key_present(r),
            quote_ident(first),
            qualified(&r.child),
            qualified(&r.parent),
            key_matches(r)
        );
    }
    format!(
        "SELECT count(*) FROM {} c WHERE {}",
        qualified(&r.child),
        orphan_condition(r)
    )
}

/// A table's rows, and for each dense relation its keys outside the parent's range.
pub(crate) fn table_scan_sql(table: &str, dense: &[Relation]) -> String {
    let mut columns = vec!["count(*)".to_owned()];
    for r in dense {
        if let (Some(keys), [column]) = (r.dense, r.child_columns.as_slice()) {
            columns.push(format!("count(*) FILTER (WHERE {})", keys.outside(column)));
        }
    }
    format!("SELECT {} FROM {} c", columns.join(", "), qualified(table))
}

/// Up to `limit` distinct orphan keys, for the report.
pub(crate) fn orphan_sample_sql(r: &Relation, limit: usize) -> String {
    let columns: Vec<String> = r
        .child_columns
        .iter()
        .map(|c| format!("c.{}", quote_ident(c)))
        .collect();
    format!(
        "SELECT DISTINCT {} FROM {} c WHERE {} LIMIT {limit}",
        columns.join(", "),
        qualified(&r.child),
        orphan_condition(r)
    )
}

pub(crate) fn row_to_json(row: &tokio_postgres::Row) -> serde_json::Value {
    let mut values = Vec::new();
    for i in 0..row.len() {
        let value = row
            .try_get::<_, Option<i64>>(i)
            .map(|v| v.map_or(serde_json::Value::Null, serde_json::Value::from))
            .or_else(|_| {
                row.try_get::<_, Option<i32>>(i)
                    .map(|v| v.map_or(serde_json::Value::Null, serde_json::Value::from))
            })
            .or_else(|_| {
                row.try_get::<_, Option<String>>(i)
                    .map(|v| v.map_or(serde_json::Value::Null, serde_json::Value::from))
            })
            .unwrap_or(serde_json::Value::String("(unprintable)".to_owned()));
        values.push(value);
    }
    if values.len() == 1 {
        values.remove(0)
    } else {
        serde_json::Value::Array(values)
    }
}

/// The count in `column` of a query's single row. Anything else (no row,
/// NULL, another type, a negative number) is an error: an unexpected result
/// must never read as "0 orphans".
pub(crate) fn count_of(rows: &[tokio_postgres::Row], column: usize) -> DrResult<u64> {
    let value = rows.first().map(|row| {
        row.try_get::<_, Option<i64>>(column)
            .map_err(|e| e.to_string())
    });
    count_in(value, column)
}

/// [`count_of`]'s decision, on what the row held: no row, a column that
/// was not a count, NULL, or a number.
pub(crate) fn count_in(value: Option<Result<Option<i64>, String>>, column: usize) -> DrResult<u64> {
    match value {
        None => Err(DrError::Internal(
            "a counting query returned no row".to_owned(),
        )),
        Some(Err(e)) => Err(DrError::Internal(format!(
            "a counting query returned no count in column {column}: {e}"
        ))),
        Some(Ok(None)) => Err(DrError::Internal(format!(
            "a counting query returned NULL in column {column}"
        ))),
        Some(Ok(Some(n))) if n < 0 => Err(DrError::Internal(format!(
            "a counting query returned {n} in column {column}"
        ))),
        Some(Ok(Some(n))) => Ok(n as u64),
    }
}
