//! Stopping and restoring an application role's writes, and the rows two
//! copies of a database disagree on: the SQL of the data-corruption
//! recovery.
//!
//! Writes are stopped by privilege, not by a session setting: a role that
//! lost INSERT/UPDATE/DELETE/TRUNCATE cannot get them back from inside its
//! session, whereas `default_transaction_read_only` is overridden by any
//! `SET`. Only the privileges granted directly to the role are revoked (and
//! recorded by the caller, so restoring gives back those and nothing else);
//! a path that still lets the role write (PUBLIC, membership of a role that
//! may, ownership, superuser) is found afterwards and refused as `Unsafe`.

use std::cmp::Ordering;

use dr_core::{
    DatabaseTarget, DrError, DrResult, RowChange, TableChanges, TableGrant, WritesRevoked,
    WRITE_PRIVILEGES,
};
use futures::{pin_mut, TryStreamExt};
use tokio_postgres::Client;

use crate::connect::{connect, map_pg_error};

/// `name` as a quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn privilege(grant: &TableGrant) -> DrResult<&'static str> {
    WRITE_PRIVILEGES
        .iter()
        .find(|p| p.eq_ignore_ascii_case(&grant.privilege))
        .copied()
        .ok_or_else(|| {
            DrError::InvalidInput(format!(
                "privilege {:?} on {} is not a write privilege ({})",
                grant.privilege,
                grant.table,
                WRITE_PRIVILEGES.join(", ")
            ))
        })
}

async fn role_exists(client: &Client, role: &str) -> DrResult<()> {
    let found = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .map_err(|e| map_pg_error("looking up the role", &e))?;
    match found {
        Some(_) => Ok(()),
        None => Err(DrError::NotFound(format!(
            "role {role} does not exist in this database cluster"
        ))),
    }
}

pub(crate) async fn write_grants(
    target: &DatabaseTarget,
    role: &str,
    schema: &str,
) -> DrResult<Vec<TableGrant>> {
    let client = connect(target).await?;
    role_exists(&client, role).await?;
    grants_of(&client, role, schema).await
}

async fn grants_of(client: &Client, role: &str, schema: &str) -> DrResult<Vec<TableGrant>> {
    let privileges: Vec<String> = WRITE_PRIVILEGES.iter().map(|p| (*p).to_owned()).collect();
    let rows = client
        .query(
            "SELECT DISTINCT c.relname::text, a.privilege_type
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              CROSS JOIN LATERAL aclexplode(c.relacl) a
              WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
                AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $2)
                AND a.privilege_type = ANY ($3)
              ORDER BY 1, 2",
            &[&schema, &role, &privileges],
        )
        .await
        .map_err(|e| map_pg_error("listing the role's write privileges", &e))?;
    Ok(rows
        .iter()
        .map(|r| TableGrant {
            table: r.get(0),
            privilege: r.get(1),
        })
        .collect())
}

/// The statements that revoke or grant `grants`, checked first.
fn statements(verb: &str, role: &str, schema: &str, grants: &[TableGrant]) -> DrResult<String> {
    let direction = if verb == "GRANT" { "TO" } else { "FROM" };
    let mut sql = String::from("BEGIN;\n");
    for grant in grants {
        sql.push_str(&format!(
            "{verb} {} ON TABLE {}.{} {direction} {};\n",
            privilege(grant)?,
            quote_ident(schema),
            quote_ident(&grant.table),
            quote_ident(role)
        ));
    }
    sql.push_str("COMMIT;");
    Ok(sql)
}

pub(crate) async fn revoke_writes(
    target: &DatabaseTarget,
    role: &str,
    schema: &str,
    grants: &[TableGrant],
) -> DrResult<WritesRevoked> {
    let client = connect(target).await?;
    role_exists(&client, role).await?;
    client
        .batch_execute(&statements("REVOKE", role, schema, grants)?)
        .await
        .map_err(|e| map_pg_error("revoking the role's write privileges", &e))?;
    // Sessions that are open keep nothing: a transaction in flight is
    // rolled back, and every later statement meets the revoked privileges.
    let ended: i64 = client
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
               FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()",
            &[&role],
        )
        .await
        .map_err(|e| map_pg_error("ending the role's sessions", &e))?
        .get(0);
    let privileges: Vec<String> = WRITE_PRIVILEGES.iter().map(|p| (*p).to_owned()).collect();
    let still = client
        .query(
            "SELECT c.relname::text, p
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              CROSS JOIN unnest($3::text[]) p
              WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
                AND has_table_privilege($2, c.oid, p)
              ORDER BY 1, 2 LIMIT 10",
            &[&schema, &role, &privileges],
        )
        .await
        .map_err(|e| map_pg_error("checking that the role can no longer write", &e))?;
    if !still.is_empty() {
        let paths: Vec<String> = still
            .iter()
            .map(|r| format!("{} on {}", r.get::<_, String>(1), r.get::<_, String>(0)))
            .collect();
        return Err(DrError::Unsafe(format!(
            "role {role} can still write after its own grants were revoked ({}): it owns the tables, is a superuser, or inherits the privilege from PUBLIC or another role; stop its writes by hand",
            paths.join(", ")
        )));
    }
    let definer_functions = client
        .query(
            "SELECT format('%I(%s)', p.proname, pg_get_function_identity_arguments(p.oid))
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = $1 AND p.prosecdef AND p.prokind IN ('f', 'p')
                AND has_function_privilege($2, p.oid, 'EXECUTE')
              ORDER BY 1 LIMIT 50",
            &[&schema, &role],
        )
        .await
        .map_err(|e| map_pg_error("listing SECURITY DEFINER functions", &e))?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    Ok(WritesRevoked {
        sessions_ended: ended.max(0) as u64,
        definer_functions,
    })
}

pub(crate) async fn grant_writes(
    target: &DatabaseTarget,
    role: &str,
    schema: &str,
    grants: &[TableGrant],
) -> DrResult<()> {
    let client = connect(target).await?;
    role_exists(&client, role).await?;
    client
        .batch_execute(&statements("GRANT", role, schema, grants)?)
        .await
        .map_err(|e| map_pg_error("granting the role's write privileges back", &e))
}

/// A table of the schema and its primary key's columns.
struct TableKey {
    table: String,
    key_columns: Vec<String>,
}

async fn tables(client: &Client, schema: &str) -> DrResult<Vec<TableKey>> {
    let rows = client
        .query(
            "SELECT c.relname::text,
                    coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                                FROM pg_index i
                               CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                               WHERE i.indrelid = c.oid AND i.indisprimary), '{}')
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
              ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(|e| map_pg_error("listing the tables and their keys", &e))?;
    Ok(rows
        .iter()
        .map(|r| TableKey {
            table: r.get(0),
            key_columns: r.get(1),
        })
        .collect())
}

async fn snapshot_session(target: &DatabaseTarget) -> DrResult<Client> {
    let client = connect(target).await?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(|e| map_pg_error("opening a consistent snapshot", &e))?;
    Ok(client)
}

async fn count(client: &Client, schema: &str, table: &str) -> DrResult<u64> {
    let n: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM {}.{}",
                quote_ident(schema),
                quote_ident(table)
            ),
            &[],
        )
        .await
        .map_err(|e| map_pg_error(&format!("counting {table}"), &e))?
        .get(0);
    Ok(n.max(0) as u64)
}

/// Every row's key (as text) and a digest of the whole row, ordered by the
/// key's text in byte order, which is how Rust compares strings: the two
/// copies are then merged in one pass each.
fn keyed_rows_sql(schema: &str, table: &str, key_columns: &[String]) -> String {
    let keys: Vec<String> = key_columns
        .iter()
        .map(|c| format!("t.{}::text", quote_ident(c)))
        .collect();
    let order: Vec<String> = keys.iter().map(|k| format!("{k} COLLATE \"C\"")).collect();
    format!(
        "SELECT ARRAY[{}], md5(t::text) FROM {}.{} t ORDER BY {}",
        keys.join(", "),
        quote_ident(schema),
        quote_ident(table),
        order.join(", ")
    )
}

async fn diff_table(
    newer: &Client,
    older: &Client,
    schema: &str,
    table: &TableKey,
) -> DrResult<TableChanges> {
    let newer_rows = count(newer, schema, &table.table).await?;
    let mut changes = TableChanges {
        table: table.table.clone(),
        key_columns: table.key_columns.clone(),
        inserted: 0,
        updated: 0,
        deleted: 0,
        keys: Vec::new(),
        newer_rows,
        older_rows: 0,
    };
    let older_has_table = older
        .query_one(
            "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
            &[&schema, &table.table],
        )
        .await
        .map_err(|e| map_pg_error("looking for the table in the older copy", &e))?
        .get::<_, bool>(0);
    if !older_has_table || table.key_columns.is_empty() {
        changes.older_rows = if older_has_table {
            count(older, schema, &table.table).await?
        } else {
            0
        };
        return Ok(changes);
    }
    let sql = keyed_rows_sql(schema, &table.table, &table.key_columns);
    let context = |side: &str| format!("reading the keys of {} ({side})", table.table);
    let no_params: [&str; 0] = [];
    let a = newer
        .query_raw(sql.as_str(), no_params)
        .await
        .map_err(|e| map_pg_error(&context("newer"), &e))?;
    let b = older
        .query_raw(sql.as_str(), no_params)
        .await
        .map_err(|e| map_pg_error(&context("older"), &e))?;
    pin_mut!(a);
    pin_mut!(b);
    let row = |r: tokio_postgres::Row| -> (Vec<String>, String) { (r.get(0), r.get(1)) };
    let mut next_a = a
        .try_next()
        .await
        .map_err(|e| map_pg_error(&context("newer"), &e))?
        .map(row);
    let mut next_b = b
        .try_next()
        .await
        .map_err(|e| map_pg_error(&context("older"), &e))?
        .map(row);
    let mut older_rows = 0u64;
    loop {
        let step = match (&next_a, &next_b) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        match step {
            Ordering::Less => {
                if let Some((key, _)) = next_a.take() {
                    changes.inserted += 1;
                    changes.keys.push((RowChange::Inserted, key));
                }
            }
            Ordering::Greater => {
                if let Some((key, _)) = next_b.take() {
                    changes.deleted += 1;
                    older_rows += 1;
                    changes.keys.push((RowChange::Deleted, key));
                }
            }
            Ordering::Equal => {
                if let (Some((key, ha)), Some((_, hb))) = (next_a.take(), next_b.take()) {
                    older_rows += 1;
                    if ha != hb {
                        changes.updated += 1;
                        changes.keys.push((RowChange::Updated, key));
                    }
                }
            }
        }
        if next_a.is_none() && step != Ordering::Greater {
            next_a = a
                .try_next()
                .await
                .map_err(|e| map_pg_error(&context("newer"), &e))?
                .map(row);
        }
        if next_b.is_none() && step != Ordering::Less {
            next_b = b
                .try_next()
                .await
                .map_err(|e| map_pg_error(&context("older"), &e))?
                .map(row);
        }
    }
    changes.older_rows = older_rows;
    Ok(changes)
}

pub(crate) async fn row_changes(
    newer: &DatabaseTarget,
    older: &DatabaseTarget,
    schema: &str,
) -> DrResult<Vec<TableChanges>> {
    let a = snapshot_session(newer).await?;
    let b = snapshot_session(older).await?;
    let mut all = Vec::new();
    for table in tables(&a, schema).await? {
        all.push(diff_table(&a, &b, schema, &table).await?);
    }
    // Tables only the older copy has: every row of theirs is gone.
    let newer_tables: Vec<String> = all.iter().map(|t| t.table.clone()).collect();
    for table in tables(&b, schema).await? {
        if !newer_tables.contains(&table.table) {
            let older_rows = count(&b, schema, &table.table).await?;
            all.push(TableChanges {
                table: table.table,
                key_columns: table.key_columns,
                inserted: 0,
                updated: 0,
                deleted: older_rows,
                keys: Vec::new(),
                newer_rows: 0,
                older_rows,
            });
        }
    }
    let _ = a.batch_execute("COMMIT").await;
    let _ = b.batch_execute("COMMIT").await;
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_privileges_are_only_write_privileges() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        let grants = vec![
            TableGrant {
                table: "users".into(),
                privilege: "INSERT".into(),
            },
            TableGrant {
                table: "odd\"name".into(),
                privilege: "delete".into(),
            },
        ];
        let sql = statements("REVOKE", "muejam_app", "public", &grants).expect("sql");
        assert!(sql.contains("REVOKE INSERT ON TABLE \"public\".\"users\" FROM \"muejam_app\";"));
        assert!(sql.contains("REVOKE DELETE ON TABLE \"public\".\"odd\"\"name\" FROM"));
        let grant = statements("GRANT", "muejam_app", "public", &grants).expect("sql");
        assert!(grant.contains("GRANT INSERT ON TABLE \"public\".\"users\" TO \"muejam_app\";"));
        for bad in ["SELECT", "ALL", "INSERT; DROP TABLE users", ""] {
            let err = statements(
                "GRANT",
                "r",
                "public",
                &[TableGrant {
                    table: "t".into(),
                    privilege: bad.into(),
                }],
            )
            .expect_err(bad);
            assert_eq!(err.name(), "InvalidInput");
        }
    }

    #[test]
    fn keys_are_read_in_the_byte_order_rust_merges_in() {
        let sql = keyed_rows_sql(
            "public",
            "follows",
            &["follower_id".into(), "followee_id".into()],
        );
        assert_eq!(
            sql,
            "SELECT ARRAY[t.\"follower_id\"::text, t.\"followee_id\"::text], md5(t::text) FROM \"public\".\"follows\" t ORDER BY t.\"follower_id\"::text COLLATE \"C\", t.\"followee_id\"::text COLLATE \"C\""
        );
        let mut keys = vec![
            vec!["10".to_owned()],
            vec!["9".to_owned()],
            vec!["1".to_owned()],
        ];
        keys.sort();
        assert_eq!(keys, vec![vec!["1"], vec!["10"], vec!["9"]]);
    }
}
