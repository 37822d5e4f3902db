//! The verifier on real PostgreSQL with injected corruption: each kind found
//! with the exact count; a clean database reports no finding.

use std::collections::BTreeMap;

use dr_core::*;
use dr_integrity::{verify, CheckStatus, IntegrityReport, LogicalRelation, VerifyOptions};
use dr_local::lab::Lab;

async fn lab_with_data() -> (Lab, DatabaseTarget, tokio_postgres::Client) {
    let lab = Lab::new().expect("lab");
    let target = lab.instance("muejam-db-prod").await.expect("instance");
    let client = dr_postgres::connect(&target).await.expect("connect");
    dr_postgres::sample::generate(&client, 0.01)
        .await
        .expect("sample data");
    (lab, target, client)
}

fn find<'a>(report: &'a IntegrityReport, name: &str) -> &'a dr_integrity::CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no check {name} in {:#?}",
                report.checks.iter().map(|c| &c.name).collect::<Vec<_>>()
            )
        })
}

fn failed(report: &IntegrityReport) -> Vec<(String, Option<u64>)> {
    report
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Failed)
        .map(|c| (c.name.clone(), c.count))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_database_has_no_finding() {
    let (_lab, target, _client) = lab_with_data().await;
    let options = VerifyOptions {
        expected_tables: vec!["users".into(), "stories".into(), "chapters".into()],
        logical_relations: vec![
            LogicalRelation::parse("stories.author_id -> users.id").expect("relation")
        ],
        custom_checks: vec![NamedCheck {
            name: "no_negative_word_counts".into(),
            sql: "SELECT id FROM chapters WHERE word_count < 0".into(),
        }],
        ..VerifyOptions::default()
    };
    let report = verify(&target, &options).await.expect("verify");
    assert_eq!(failed(&report), vec![], "{report:#?}");
    assert!(report.passed());
    let fks = report
        .checks
        .iter()
        .filter(|c| c.kind == "foreign_key")
        .count();
    assert_eq!(fks, 12, "every foreign key of the MueJam schema is checked");
    assert_eq!(
        report.row_counts.get("chapters"),
        Some(&2000),
        "scale 0.01: 100 users, 500 stories, 2000 chapters"
    );
    assert_eq!(
        find(&report, "btree_indexes").status,
        CheckStatus::Skipped,
        "amcheck is not installed here"
    );
    assert!(report.consistent_snapshot, "all checks read one snapshot");
    let by_range = find(&report, "fk_comments_chapter_id_fkey");
    assert!(
        by_range
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("gap-free key range 1..=2000")),
        "generated keys have no gaps, so no join is needed: {by_range:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_row_deleted_inside_the_key_range_is_found_by_a_join() {
    let (_lab, target, client) = lab_with_data().await;
    // Keys above the range would be caught by the range itself; a hole in
    // the middle is what only a join can find.
    let referencing: i64 = client
        .query_one("SELECT count(*) FROM comments WHERE chapter_id = 1000", &[])
        .await
        .expect("count")
        .get(0);
    assert!(referencing > 0, "chapter 1000 has comments");
    client
        .batch_execute(
            "SET session_replication_role = replica;
             DELETE FROM chapters WHERE id = 1000;
             SET session_replication_role = origin;",
        )
        .await
        .expect("delete the parent without its children");

    let report = verify(
        &target,
        &VerifyOptions {
            jobs: 1,
            ..VerifyOptions::default()
        },
    )
    .await
    .expect("verify");
    let comments = find(&report, "fk_comments_chapter_id_fkey");
    assert_eq!(
        (comments.status, comments.count),
        (CheckStatus::Failed, Some(referencing as u64))
    );
    assert_eq!(comments.samples, vec![serde_json::json!(1000)]);
    assert_eq!(
        failed(&report),
        vec![(
            "fk_comments_chapter_id_fkey".to_owned(),
            Some(referencing as u64)
        )],
        "nothing else is wrong"
    );
    assert_eq!(report.row_counts.get("chapters"), Some(&1999));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_gaps_in_every_parent_the_joins_count_every_table_exactly() {
    let (_lab, target, client) = lab_with_data().await;
    // A far key in every referenced table: no parent is gap-free, so every
    // foreign key is a join and the joins count the child tables.
    client
        .batch_execute(
            "INSERT INTO users (id, username, email, display_name) VALUES (1000000, 'gap', 'gap@example.com', 'Gap');
             INSERT INTO stories (id, author_id, title) VALUES (1000000, 1, 'gap');
             INSERT INTO chapters (id, story_id, number, title, body, word_count) VALUES (1000000, 1, 100000, 'gap', '', 0);
             INSERT INTO comments (id, chapter_id, user_id, body) VALUES (1000000, 1, 1, 'gap');
             INSERT INTO reading_lists (id, user_id, name) VALUES (1000000, 1, 'gap');
             INSERT INTO comments (chapter_id, user_id, parent_id, body) VALUES (1, 1, NULL, 'no parent comment');
             SET session_replication_role = replica;
             INSERT INTO follows (follower_id, followee_id) VALUES (999999, 1), (999998, 2);
             SET session_replication_role = origin;
             ANALYZE",
        )
        .await
        .expect("gaps");
    let report = verify(&target, &VerifyOptions::default())
        .await
        .expect("verify");
    assert_eq!(
        failed(&report),
        vec![("fk_follows_follower_id_fkey".to_owned(), Some(2))],
        "the orphans inserted behind the constraint's back, nothing else"
    );
    assert_eq!(
        find(&report, "fk_follows_follower_id_fkey").samples.len(),
        2
    );
    let joined = report
        .checks
        .iter()
        .filter(|c| c.kind == "foreign_key")
        .filter(|c| !c.detail.as_deref().unwrap_or("").contains("gap-free"))
        .count();
    assert_eq!(joined, 12, "no parent is gap-free");
    for (table, counted) in &report.row_counts {
        let exact: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(*counted, exact as u64, "{table}");
    }
    assert_eq!(report.row_counts.len(), 9, "every table is counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_injected_corruption_is_found_with_its_exact_count() {
    let (_lab, target, client) = lab_with_data().await;
    let clean = verify(&target, &VerifyOptions::default())
        .await
        .expect("baseline run");
    let baseline: BTreeMap<String, u64> = clean.row_counts.clone();

    client
        .batch_execute(
            "SET session_replication_role = replica;
             INSERT INTO stories (id, author_id, title) VALUES (900001, 999999, 'orphan'), (900002, 999999, 'orphan'), (900003, 999998, 'orphan');
             SET session_replication_role = origin;
             ALTER TABLE api_keys DROP CONSTRAINT api_keys_user_id_fkey;
             INSERT INTO api_keys (user_id, key_prefix, key_hash) VALUES (777777, 'mj_x', 'h1'), (777778, 'mj_y', 'h2');
             ALTER TABLE api_keys ADD CONSTRAINT api_keys_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
             ALTER TABLE comments DROP CONSTRAINT comments_user_id_fkey;
             INSERT INTO comments (chapter_id, user_id, body) SELECT 1, 888888, 'orphan' FROM generate_series(1, 4);
             DELETE FROM audit_logs WHERE id % 5 = 0;",
        )
        .await
        .expect("inject");
    let _ = client
        .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY stories_status_unique ON stories (status)")
        .await
        .expect_err("duplicates make the concurrent build fail and leave an invalid index");

    let options = VerifyOptions {
        baseline: Some(baseline.clone()),
        tolerance: 0.05,
        logical_relations: vec![
            LogicalRelation::parse("comments.user_id -> users.id").expect("relation")
        ],
        jobs: 3,
        ..VerifyOptions::default()
    };
    let report = verify(&target, &options).await.expect("verify");
    assert_eq!(report.status, CheckStatus::Failed);

    let stories = find(&report, "fk_stories_author_id_fkey");
    assert_eq!(
        (stories.status, stories.count),
        (CheckStatus::Failed, Some(3))
    );
    assert!(
        stories.samples.contains(&serde_json::json!(999999)),
        "{:?}",
        stories.samples
    );

    let keys = find(&report, "fk_api_keys_user_id_fkey");
    assert_eq!(keys.kind, "foreign_key_not_valid");
    assert_eq!(keys.count, Some(2));
    let unvalidated = find(&report, "constraints_validated");
    assert_eq!(unvalidated.count, Some(1));
    assert_eq!(
        unvalidated.samples,
        vec![serde_json::json!("api_keys.api_keys_user_id_fkey")]
    );

    let indexes = find(&report, "indexes_valid");
    assert_eq!(
        (indexes.status, indexes.count),
        (CheckStatus::Failed, Some(1))
    );
    assert_eq!(
        indexes.samples,
        vec![serde_json::json!("stories_status_unique")]
    );

    let logical = find(&report, "logical_comments_user_id");
    assert_eq!(
        (logical.status, logical.count),
        (CheckStatus::Failed, Some(4))
    );

    let audit = find(&report, "row_count_audit_logs");
    assert_eq!(audit.status, CheckStatus::Failed, "{audit:?}");
    assert_eq!(
        audit.count,
        Some(baseline["audit_logs"] - baseline["audit_logs"] / 5)
    );
    let stories_count = find(&report, "row_count_stories");
    assert_eq!(
        stories_count.status,
        CheckStatus::Passed,
        "+3 rows is within 5 %"
    );

    assert_eq!(
        failed(&report).len(),
        6,
        "exactly the injected problems: {:#?}",
        failed(&report)
    );
}

/// A damaged index page: the server reports it with SQLSTATE XX001 (a
/// data checksum failure), and amcheck's check of that index is a failure,
/// recognised by the SQLSTATE and not by the wording of the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_index_page_fails_its_amcheck_by_sqlstate() {
    let (lab, target, client) = lab_with_data().await;
    client
        .batch_execute("CREATE EXTENSION amcheck")
        .await
        .expect("amcheck");
    let path: String = client
        .query_one(
            "SELECT current_setting('data_directory') || '/' || pg_relation_filepath('users_username_key')",
            &[],
        )
        .await
        .expect("index file")
        .get(0);
    drop(client);
    let id = InstanceId::parse("muejam-db-prod").expect("id");
    lab.platform.stop_instance(&id).await.expect("stop");
    let mut bytes = std::fs::read(&path).expect("read index");
    assert!(bytes.len() >= 2 * 8192, "the index has a second page");
    // Past the page header of block 1: the page checksum no longer matches.
    for b in &mut bytes[8192 + 200..8192 + 216] {
        *b ^= 0xff;
    }
    std::fs::write(&path, &bytes).expect("damage the index");
    lab.platform.start_instance(&id).await.expect("start");

    let report = verify(&target, &VerifyOptions::default())
        .await
        .expect("verify");
    let check = find(&report, "btree_users_username_key");
    assert_eq!(check.status, CheckStatus::Failed, "{check:#?}");
    assert!(
        check.detail.as_deref().is_some_and(|d| d.contains("XX001")),
        "{check:#?}"
    );
    assert!(!report.passed());
    assert_eq!(
        find(&report, "btree_users_pkey").status,
        CheckStatus::Passed,
        "the other indexes are intact"
    );
}

/// Each damage `drctl local corrupt` (and the drill) commits is found by its
/// own named check, which passes before it: what the drill hands the
/// rehearsed recovery to judge its candidates by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_damage_is_found_by_its_named_check_and_only_after_it() {
    for kind in [DamageKind::Orphans, DamageKind::Overwrite] {
        let (_lab, target, client) = lab_with_data().await;
        let check = kind.finding_check();
        let options = VerifyOptions {
            custom_checks: vec![check.clone()],
            ..VerifyOptions::default()
        };
        let before = verify(&target, &options).await.expect("verify");
        assert_eq!(
            find(&before, &check.name).status,
            CheckStatus::Passed,
            "{kind:?}"
        );
        // As the drill commits it: once per key.
        let damage = dr_postgres::damage::corrupt_once(&client, "drill:d1:damage", kind, 2)
            .await
            .expect("damage");
        assert!(damage.rows > 0, "{kind:?}: {damage:?}");
        let after = verify(&target, &options).await.expect("verify");
        let found = find(&after, &check.name);
        assert_eq!(found.status, CheckStatus::Failed, "{kind:?}: {found:?}");
        assert!(found.count.is_some_and(|c| c > 0), "{kind:?}: {found:?}");

        // A retry of the step (its first answer lost) damages nothing more
        // and gets the first damage, its moments included.
        let count = |row: tokio_postgres::Row| row.get::<_, i64>(0);
        let sql = "SELECT count(*) FROM users WHERE display_name <> ''";
        let before_retry = count(client.query_one(sql, &[]).await.expect("count"));
        let users_before = count(
            client
                .query_one("SELECT count(*) FROM users", &[])
                .await
                .expect("count"),
        );
        let again = dr_postgres::damage::corrupt_once(&client, "drill:d1:damage", kind, 2)
            .await
            .expect("retry");
        assert_eq!(again, damage, "{kind:?}");
        assert_eq!(
            count(client.query_one(sql, &[]).await.expect("count")),
            before_retry
        );
        assert_eq!(
            count(
                client
                    .query_one("SELECT count(*) FROM users", &[])
                    .await
                    .expect("count")
            ),
            users_before
        );
        let rechecked = verify(&target, &options).await.expect("verify");
        assert_eq!(find(&rechecked, &check.name).count, found.count, "{kind:?}");
    }
}
