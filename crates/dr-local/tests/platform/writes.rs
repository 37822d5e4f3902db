//! Stopping the application role's writes, giving them back, and the rows a
//! point-in-time restore loses, on real PostgreSQL with the sample schema.

use super::*;
use dr_postgres::PostgresSqlTarget;

const APP_PASSWORD: &str = "app-password-for-tests-only";

/// Connects as the application role (its password set by the master).
async fn as_app(lab: &Lab, instance: &str) -> tokio_postgres::Client {
    let mut target = lab
        .platform
        .database_target(&id(instance), None)
        .expect("target");
    target.username = dr_postgres::sample::APP_ROLE.to_owned();
    target.password = SecretString::from(APP_PASSWORD.to_owned());
    dr_postgres::connect(&target).await.expect("app connects")
}

async fn insert_story(client: &tokio_postgres::Client) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO stories (author_id, title) VALUES (2, 'written by the app')",
            &[],
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_writes_cannot_be_taken_back_by_the_app_and_granting_restores_exactly_them() {
    let lab = lab();
    lab.primary("muejam-db-prod").await;
    let master = lab.sql("muejam-db-prod").await;
    dr_postgres::sample::generate(&master, 0.01)
        .await
        .expect("sample data");
    let verifier = postgres_protocol::password::scram_sha_256(APP_PASSWORD.as_bytes());
    master
        .batch_execute(&format!("ALTER ROLE muejam_app PASSWORD '{verifier}'"))
        .await
        .expect("app password");
    let target = lab
        .platform
        .database_target(&id("muejam-db-prod"), None)
        .expect("target");
    let sql = PostgresSqlTarget;

    let before = sql
        .write_grants(&target, "muejam_app", "public")
        .await
        .expect("grants");
    assert_eq!(
        before.len(),
        27,
        "INSERT, UPDATE, DELETE on 9 tables: {before:?}"
    );
    let open_session = as_app(&lab, "muejam-db-prod").await;
    insert_story(&open_session).await.expect("the app writes");

    let revoked = sql
        .revoke_writes(&target, "muejam_app", "public", &before)
        .await
        .expect("revoke");
    assert_eq!(revoked.sessions_ended, 1, "the open session was ended");
    assert!(revoked.definer_functions.is_empty(), "{revoked:?}");
    assert!(open_session.simple_query("SELECT 1").await.is_err());
    assert!(sql
        .write_grants(&target, "muejam_app", "public")
        .await
        .expect("grants")
        .is_empty());

    let app = as_app(&lab, "muejam-db-prod").await;
    let read: i64 = app
        .query_one("SELECT count(*) FROM stories", &[])
        .await
        .expect("reads still work")
        .get(0);
    assert!(read > 0);
    let refused = insert_story(&app).await.expect_err("no INSERT");
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    app.batch_execute("SET default_transaction_read_only = off; SET transaction_read_only = off")
        .await
        .expect("the app may set what it likes");
    assert!(
        insert_story(&app).await.is_err(),
        "a session setting does not give writes back"
    );
    assert!(app.execute("DELETE FROM audit_logs", &[]).await.is_err());

    // Idempotent: revoking again changes nothing and still proves it.
    sql.revoke_writes(&target, "muejam_app", "public", &before)
        .await
        .expect("again");

    sql.grant_writes(&target, "muejam_app", "public", &before)
        .await
        .expect("grant back");
    assert_eq!(
        sql.write_grants(&target, "muejam_app", "public")
            .await
            .expect("grants"),
        before,
        "exactly what was revoked, nothing more"
    );
    insert_story(&as_app(&lab, "muejam-db-prod").await)
        .await
        .expect("the app writes again");

    // A SECURITY DEFINER function still writes for the role: named, never
    // silently passed over.
    master
        .batch_execute(
            "CREATE FUNCTION public.add_story(t text) RETURNS void
               LANGUAGE sql SECURITY DEFINER
               AS $$ INSERT INTO stories (author_id, title) VALUES (2, t) $$;
             ALTER FUNCTION public.add_story(text) OWNER TO muejam_owner;",
        )
        .await
        .expect("definer function");
    let revoked = sql
        .revoke_writes(&target, "muejam_app", "public", &before)
        .await
        .expect("revoke");
    assert_eq!(
        revoked.definer_functions,
        vec!["add_story(t text)".to_owned()]
    );
    sql.grant_writes(&target, "muejam_app", "public", &before)
        .await
        .expect("grant back");

    // A path the revoke cannot close is refused, never reported as stopped.
    master
        .batch_execute("GRANT INSERT ON stories TO PUBLIC")
        .await
        .expect("public grant");
    let err = sql
        .revoke_writes(&target, "muejam_app", "public", &before)
        .await
        .expect_err("PUBLIC still lets it write");
    assert_eq!(err.name(), "Unsafe");
    assert!(err.to_string().contains("INSERT on stories"), "{err}");
    let unknown = sql
        .write_grants(&target, "no_such_role", "public")
        .await
        .expect_err("unknown role");
    assert_eq!(unknown.name(), "NotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rows_a_restore_loses_are_listed_by_key_and_the_damage_comes_back() {
    let lab = lab();
    lab.primary("muejam-db-prod").await;
    let client = lab.sql("muejam-db-prod").await;
    dr_postgres::sample::generate(&client, 0.01)
        .await
        .expect("sample data");
    lab.snapshot("muejam-db-prod", "base").await;
    client
        .batch_execute("INSERT INTO stories (author_id, title) VALUES (3, 'W1')")
        .await
        .expect("W1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let damage = dr_postgres::damage::corrupt(&client, dr_postgres::damage::DamageKind::Orphans, 2)
        .await
        .expect("damage");
    assert_eq!(damage.rows, 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    client
        .batch_execute(
            "INSERT INTO stories (author_id, title) VALUES (4, 'W2a'), (5, 'W2b');
             UPDATE chapters SET title = 'W2 edit' WHERE id = 1;",
        )
        .await
        .expect("W2");

    let restore_time = damage.before - chrono::Duration::milliseconds(100);
    lab.platform
        .restore_to_point_in_time(&PointInTimeRestoreRequest {
            network: None,
            source_id: id("muejam-db-prod"),
            target_id: id("muejam-db-clean"),
            restore_time,
            tags: tags(&[(EPHEMERAL_TAG, "true")]),
        })
        .await
        .expect("pitr");
    let newer = lab
        .platform
        .database_target(&id("muejam-db-prod"), None)
        .expect("target");
    let older = lab
        .platform
        .database_target(&id("muejam-db-clean"), None)
        .expect("target");
    let changes = PostgresSqlTarget
        .row_changes(&newer, &older, "public")
        .await
        .expect("diff");
    let by_table: BTreeMap<&str, (u64, u64, u64)> = changes
        .iter()
        .filter(|t| t.inserted + t.updated + t.deleted > 0)
        .map(|t| (t.table.as_str(), (t.inserted, t.updated, t.deleted)))
        .collect();
    assert_eq!(
        by_table,
        BTreeMap::from([
            ("stories", (2, 0, 0)),
            ("chapters", (0, 1, 0)),
            ("users", (0, 0, 2))
        ]),
        "W2 is lost (2 stories, 1 chapter edit), the 2 deleted users come back, W1 is kept"
    );
    let stories = changes
        .iter()
        .find(|t| t.table == "stories")
        .expect("stories");
    assert_eq!(stories.key_columns, vec!["id".to_owned()]);
    assert_eq!(stories.newer_rows, stories.older_rows + 2);
    assert!(stories
        .keys
        .iter()
        .all(|(change, key)| *change == RowChange::Inserted && key.len() == 1));
}
