//! Snapshots, restores and point-in-time restores.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_restore_gives_identical_row_counts_and_the_file_is_sealed() {
    let lab = lab();
    lab.primary("muejam-db-prod").await;
    let client = lab.sql("muejam-db-prod").await;
    let plan = dr_postgres::sample::generate(&client, 0.02)
        .await
        .expect("sample data");

    let first = lab.snapshot("muejam-db-prod", "muejam-db-prod-first").await;
    client
        .batch_execute("DELETE FROM audit_logs WHERE id <= 10")
        .await
        .expect("change between snapshots");
    let second = lab
        .snapshot("muejam-db-prod", "muejam-db-prod-second")
        .await;
    assert!(second.encrypted && second.size_bytes > 0);
    assert_eq!(second.source_instance_id, id("muejam-db-prod"));

    let listed = lab
        .platform
        .list_snapshots(Some(&id("muejam-db-prod")))
        .await
        .expect("list");
    let names: Vec<&str> = listed.iter().map(|s| s.snapshot_id.as_str()).collect();
    assert_eq!(names, ["muejam-db-prod-second", "muejam-db-prod-first"]);

    let sealed = std::fs::read(
        lab.platform
            .snapshot_file(&first.snapshot_id)
            .expect("file"),
    )
    .expect("read sealed file");
    assert!(sealed.starts_with(b"age-encryption.org/v1"));
    let readable_as_tar = tar::Archive::new(&sealed[..])
        .entries()
        .ok()
        .and_then(|mut entries| entries.next())
        .is_some_and(|entry| entry.is_ok());
    assert!(
        !readable_as_tar,
        "a sealed snapshot must not be a readable tar"
    );
    assert!(!sealed.windows(11).any(|w| w == b"PG_VERSION\0"));

    let verification = lab
        .platform
        .verify_snapshot(&first.snapshot_id)
        .await
        .expect("verify");
    assert!(verification.verified, "{}", verification.detail);

    let restored = lab
        .platform
        .restore_from_snapshot(&RestoreSnapshotRequest {
            network: None,
            snapshot_id: first.snapshot_id.clone(),
            target_id: id("muejam-db-restored"),
            instance_class: None,
            tags: BTreeMap::from([(EPHEMERAL_TAG.to_owned(), "true".to_owned())]),
        })
        .await
        .expect("restore");
    assert!(restored.is_standalone_and_available());

    let target = lab
        .platform
        .database_target(&id("muejam-db-restored"), None)
        .expect("target");
    let client = dr_postgres::connect(&target).await.expect("connect");
    let restored_counts = dr_postgres::target::table_row_counts(&client)
        .await
        .expect("counts");
    assert_eq!(restored_counts, plan.expected_counts());
    assert_eq!(
        restored_counts,
        lab.platform
            .snapshot_row_counts(&first.snapshot_id)
            .expect("recorded counts")
    );

    let again = lab
        .platform
        .restore_from_snapshot(&RestoreSnapshotRequest {
            network: None,
            snapshot_id: first.snapshot_id.clone(),
            target_id: id("muejam-db-restored"),
            instance_class: None,
            tags: Tags::new(),
        })
        .await
        .expect("restoring again into the same target is a no-op");
    assert_eq!(again.endpoint, restored.endpoint);
    let clash = lab
        .platform
        .restore_from_snapshot(&RestoreSnapshotRequest {
            network: None,
            snapshot_id: second.snapshot_id.clone(),
            target_id: id("muejam-db-restored"),
            instance_class: None,
            tags: Tags::new(),
        })
        .await
        .expect_err("another snapshot into the same target");
    assert_eq!(clash.name(), "AlreadyExists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_in_time_restore_lands_between_two_writes() {
    let lab = lab();
    lab.primary("muejam-db-prod").await;
    let client = lab.sql("muejam-db-prod").await;
    client
        .batch_execute("CREATE TABLE events (id int PRIMARY KEY, note text)")
        .await
        .expect("table");
    lab.snapshot("muejam-db-prod", "base").await;

    client
        .batch_execute("INSERT INTO events VALUES (1, 'before the corruption')")
        .await
        .expect("first write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let between: chrono::DateTime<chrono::Utc> = client
        .query_one("SELECT clock_timestamp()", &[])
        .await
        .expect("time")
        .get(0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    client
        .batch_execute("INSERT INTO events VALUES (2, 'the corruption')")
        .await
        .expect("second write");

    let described = lab
        .platform
        .describe_instance(&id("muejam-db-prod"))
        .await
        .expect("describe");
    let earliest = described.earliest_restorable_time.expect("earliest");
    assert!(described.latest_restorable_time.expect("latest") >= between);

    let before_state = lab.state_bytes();
    let too_early = earliest - chrono::Duration::hours(1);
    let error = lab
        .platform
        .restore_to_point_in_time(&PointInTimeRestoreRequest {
            network: None,
            source_id: id("muejam-db-prod"),
            target_id: id("muejam-db-pitr"),
            restore_time: too_early,
            tags: Tags::new(),
        })
        .await
        .expect_err("outside the window");
    assert_eq!(error.name(), "InvalidInput");
    assert!(error.to_string().contains("restorable window"), "{error}");
    assert!(
        error.to_string().contains(&earliest.to_rfc3339()),
        "{error}"
    );
    assert_eq!(lab.state_bytes(), before_state, "state file unchanged");

    let restored = lab
        .platform
        .restore_to_point_in_time(&PointInTimeRestoreRequest {
            network: None,
            source_id: id("muejam-db-prod"),
            target_id: id("muejam-db-pitr"),
            restore_time: between,
            tags: tags(&[(EPHEMERAL_TAG, "true")]),
        })
        .await
        .expect("pitr");
    assert!(restored.is_standalone_and_available());

    let pitr = lab.sql("muejam-db-pitr").await;
    let ids: Vec<i32> = pitr
        .query("SELECT id FROM events ORDER BY id", &[])
        .await
        .expect("read restored")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![1], "has the first write and not the second");
    pitr.batch_execute("INSERT INTO events VALUES (3, 'the restored copy is writable')")
        .await
        .expect("writable");
}
