//! Regions: each with its own control plane and snapshot key; copies
//! across them; a whole region taken down and brought back.

use dr_local::sealed::SnapshotKey;

use super::*;

fn copy_request(source: &str, target: &str, key: String) -> CopySnapshotRequest {
    CopySnapshotRequest {
        source_snapshot_id: snapshot_id(source),
        source_region: "us-east-1".into(),
        target_snapshot_id: snapshot_id(target),
        kms_key_id: key,
        tags: tags(&[("dr:copy-of", "muejam")]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_in_the_backup_region_opens_only_with_that_regions_key_and_restores_there() {
    let lab = lab();
    lab.primary("muejam-db-prod").await;
    let client = lab.sql("muejam-db-prod").await;
    let plan = dr_postgres::sample::generate(&client, 0.02)
        .await
        .expect("sample data");
    let source = lab.snapshot("muejam-db-prod", "muejam-db-prod-s1").await;
    assert_eq!(source.region.as_deref(), Some("us-east-1"));

    let west = lab.platform.in_region("us-west-2").expect("west");
    assert_ne!(west.snapshot_key_file(), lab.platform.snapshot_key_file());

    // Keys are regional: the source region's key cannot seal a copy here.
    let wrong = west
        .copy_snapshot(&copy_request(
            "muejam-db-prod-s1",
            "dr-copy-s1",
            lab.platform.key_name(),
        ))
        .await
        .expect_err("the us-east-1 key is refused in us-west-2");
    assert_eq!(wrong.name(), "InvalidInput", "{wrong}");

    let copy = west
        .copy_snapshot(&copy_request(
            "muejam-db-prod-s1",
            "dr-copy-s1",
            west.key_name(),
        ))
        .await
        .expect("copy");
    assert_eq!(copy.region.as_deref(), Some("us-west-2"));
    assert_eq!(copy.status, SnapshotStatus::Available);
    assert_eq!(
        copy.data_time(),
        source.created_at,
        "copying keeps the data's time"
    );
    assert_eq!(
        copy.copied_from,
        Some(SnapshotSource {
            snapshot: "muejam-db-prod-s1".into(),
            region: Some("us-east-1".into())
        })
    );
    assert_eq!(copy.row_counts, source.row_counts);

    // The copy is sealed for us-west-2 only.
    let file = west.snapshot_file(&copy.snapshot_id).expect("file");
    let scratch = tempfile::tempdir().expect("scratch");
    let east_key = SnapshotKey::load(lab.platform.snapshot_key_file()).expect("east key");
    let west_key = SnapshotKey::load(west.snapshot_key_file()).expect("west key");
    let refused = east_key
        .open_into_data_dir(&file, &scratch.path().join("east"))
        .expect_err("the us-east-1 key cannot open the copy");
    assert_eq!(refused.name(), "Corrupt");
    west_key
        .open_into_data_dir(&file, &scratch.path().join("west"))
        .expect("the us-west-2 key opens it");
    assert!(scratch.path().join("west/PG_VERSION").exists());
    west.verify_snapshot(&copy.snapshot_id)
        .await
        .expect("verifies in us-west-2");

    // Each region lists its own; a second copy request makes nothing new.
    let east_names: Vec<String> = lab
        .platform
        .list_snapshots(None)
        .await
        .expect("east")
        .iter()
        .map(|s| s.snapshot_id.to_string())
        .collect();
    assert_eq!(east_names, ["muejam-db-prod-s1"]);
    let again = west
        .copy_snapshot(&copy_request(
            "muejam-db-prod-s1",
            "dr-copy-s1",
            west.key_name(),
        ))
        .await
        .expect("idempotent");
    assert_eq!(again.created_at, copy.created_at);
    assert_eq!(west.list_snapshots(None).await.expect("west").len(), 1);
    let taken = west
        .copy_snapshot(&copy_request(
            "muejam-db-prod-s2",
            "dr-copy-s1",
            west.key_name(),
        ))
        .await
        .expect_err("the name is another copy's");
    assert_eq!(taken.name(), "AlreadyExists");

    // Restored in us-west-2, it has the snapshot's rows and lives there only.
    let restored = west
        .restore_from_snapshot(&RestoreSnapshotRequest {
            network: None,
            snapshot_id: copy.snapshot_id.clone(),
            target_id: id("muejam-db-dr"),
            instance_class: None,
            tags: BTreeMap::new(),
        })
        .await
        .expect("restore in us-west-2");
    assert_eq!(restored.availability_zone.as_deref(), Some("us-west-2a"));
    let target = west
        .database_target(&id("muejam-db-dr"), None)
        .expect("target");
    let restored_client = dr_postgres::connect(&target).await.expect("connect");
    let counts = dr_postgres::target::table_row_counts(&restored_client)
        .await
        .expect("counts");
    assert_eq!(counts, plan.expected_counts());
    let elsewhere = lab
        .platform
        .describe_instance(&id("muejam-db-dr"))
        .await
        .expect_err("not an instance of us-east-1");
    assert_eq!(elsewhere.name(), "NotFound");

    // Deleting the copy removes it from us-west-2 only.
    west.delete_snapshot(&copy.snapshot_id)
        .await
        .expect("delete");
    assert!(west.list_snapshots(None).await.expect("west").is_empty());
    assert_eq!(
        lab.platform.list_snapshots(None).await.expect("east").len(),
        1
    );
    assert_eq!(
        lab.platform
            .in_region("eu-west-9")
            .expect_err("no such region")
            .name(),
        "InvalidInput"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_outage_silences_its_control_plane_and_instances_until_restored() {
    let lab = lab();
    lab.primary("muejam-db-prod").await;
    lab.snapshot("muejam-db-prod", "muejam-db-prod-s1").await;
    let west = lab.platform.in_region("us-west-2").expect("west");

    let frozen = lab
        .platform
        .region_outage("us-east-1")
        .await
        .expect("outage");
    assert_eq!(frozen, [id("muejam-db-prod")]);
    assert_eq!(
        lab.platform
            .region_outage("us-east-1")
            .await
            .expect("again"),
        frozen,
        "idempotent"
    );
    let error = lab
        .platform
        .describe_instance(&id("muejam-db-prod"))
        .await
        .expect_err("the control plane does not answer");
    assert_eq!(error.name(), "Unavailable", "{error}");
    let error = lab
        .platform
        .list_snapshots(None)
        .await
        .expect_err("nor here");
    assert_eq!(error.name(), "Unavailable");
    // Its endpoint does not answer either: connections hang.
    let target = lab
        .platform
        .database_target(&id("muejam-db-prod"), None)
        .expect("target");
    let attempt = tokio::time::timeout(Duration::from_secs(3), dr_postgres::connect(&target)).await;
    assert!(
        !matches!(attempt, Ok(Ok(_))),
        "a connection into a region that is down must not succeed"
    );
    // The other region answers; copying out of the dead one cannot work.
    assert!(west
        .list_instances()
        .await
        .expect("us-west-2 answers")
        .is_empty());
    let error = west
        .copy_snapshot(&copy_request(
            "muejam-db-prod-s1",
            "dr-copy-s1",
            west.key_name(),
        ))
        .await
        .expect_err("the source region is down");
    assert_eq!(error.name(), "Unavailable");

    assert_eq!(
        lab.platform
            .region_restore("us-east-1")
            .await
            .expect("restore"),
        frozen
    );
    let back = lab
        .platform
        .describe_instance(&id("muejam-db-prod"))
        .await
        .expect("answers again");
    assert_eq!(back.status, InstanceStatus::Available);
    lab.sql("muejam-db-prod").await;
    assert!(lab.platform.region_outages().expect("outages").is_empty());
}
