//! The local control plane on real PostgreSQL 15 clusters.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dr_core::*;
use dr_local::{CreateInstanceRequest, LocalControlPlane};
use secrecy::SecretString;

/// A platform in a fresh temporary home; every server is stopped on drop,
/// even when the test fails.
struct Lab {
    platform: LocalControlPlane,
    _home: tempfile::TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.platform.stop_all_blocking();
    }
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("valid id")
}

fn snapshot_id(s: &str) -> SnapshotId {
    SnapshotId::parse(s).expect("valid id")
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn lab() -> Lab {
    let home = tempfile::Builder::new()
        .prefix("dr-local-test-")
        .tempdir()
        .expect("temp home");
    let platform = LocalControlPlane::open(home.path(), None).expect("open platform");
    Lab {
        platform,
        _home: home,
    }
}

impl Lab {
    async fn primary(&self, name: &str) -> InstanceDescription {
        self.platform
            .create_instance(&CreateInstanceRequest {
                instance_id: id(name),
                availability_zone: None,
                tags: tags(&[("Environment", "test")]),
            })
            .await
            .expect("create primary")
    }

    async fn sql(&self, name: &str) -> tokio_postgres::Client {
        let target = self
            .platform
            .database_target(&id(name), None)
            .expect("target");
        dr_postgres::connect(&target).await.expect("connect")
    }

    async fn snapshot(&self, instance: &str, snapshot: &str) -> SnapshotDescription {
        self.platform
            .create_snapshot(&CreateSnapshotRequest {
                instance_id: id(instance),
                snapshot_id: snapshot_id(snapshot),
                tags: Tags::new(),
            })
            .await
            .expect("snapshot")
    }

    fn state_bytes(&self) -> Vec<u8> {
        std::fs::read(self.platform.store().path()).expect("state file")
    }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_the_primary_reaches_the_replica_and_promotion_is_idempotent() {
    let lab = lab();
    let primary = lab.primary("muejam-db-prod").await;
    assert_eq!(primary.status, InstanceStatus::Available);
    assert_eq!(primary.role, InstanceRole::Primary);

    let replica = lab
        .platform
        .create_read_replica(&CreateReplicaRequest {
            network: None,
            replica_id: id("muejam-db-prod-replica"),
            source_id: id("muejam-db-prod"),
            availability_zone: None,
            tags: Tags::new(),
        })
        .await
        .expect("replica");
    assert_eq!(replica.role, InstanceRole::Replica);
    assert_eq!(replica.replication_source, Some(id("muejam-db-prod")));
    assert_ne!(replica.availability_zone, primary.availability_zone);
    assert!(replica.replica_lag.is_some());

    let again = lab
        .platform
        .create_read_replica(&CreateReplicaRequest {
            network: None,
            replica_id: id("muejam-db-prod-replica"),
            source_id: id("muejam-db-prod"),
            availability_zone: None,
            tags: Tags::new(),
        })
        .await
        .expect("creating the same replica again is a no-op");
    assert_eq!(again.endpoint, replica.endpoint);

    let writer = lab.sql("muejam-db-prod").await;
    writer
        .batch_execute("CREATE TABLE marker (id int PRIMARY KEY, note text); INSERT INTO marker VALUES (1, 'written on the primary')")
        .await
        .expect("write");
    let reader = lab.sql("muejam-db-prod-replica").await;
    eventually("the marker row replicating", || async {
        reader
            .query_opt("SELECT note FROM marker WHERE id = 1", &[])
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    let read_only = reader
        .batch_execute("INSERT INTO marker VALUES (2, 'x')")
        .await
        .expect_err("a replica refuses writes");
    let read_only = dr_postgres::map_pg_error("insert on the replica", &read_only);
    assert!(read_only.to_string().contains("read-only"), "{read_only}");

    let primary_after = lab
        .platform
        .describe_instance(&id("muejam-db-prod"))
        .await
        .expect("describe");
    assert_eq!(
        primary_after.read_replicas,
        vec![id("muejam-db-prod-replica")]
    );

    let promoted = lab
        .platform
        .promote_read_replica(&id("muejam-db-prod-replica"))
        .await
        .expect("promote");
    assert!(!promoted.already_standalone);
    assert!(promoted.lag_at_promotion.is_some());
    assert!(promoted.instance.is_standalone_and_available());
    assert_eq!(promoted.instance.role, InstanceRole::Primary);

    let writer2 = lab.sql("muejam-db-prod-replica").await;
    writer2
        .batch_execute("INSERT INTO marker VALUES (2, 'written on the promoted replica')")
        .await
        .expect("the promoted replica accepts writes");
    let count: i64 = writer2
        .query_one("SELECT count(*) FROM marker", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 2);

    let second = lab
        .platform
        .promote_read_replica(&id("muejam-db-prod-replica"))
        .await
        .expect("second promote is a no-op");
    assert!(second.already_standalone);
    assert_eq!(second.instance.endpoint, promoted.instance.endpoint);
    let primary_after = lab
        .platform
        .describe_instance(&id("muejam-db-prod"))
        .await
        .expect("describe");
    assert!(primary_after.read_replicas.is_empty());
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_refuses_production_and_removes_ephemeral_instances() {
    let lab = lab();
    lab.primary("muejam-db-prod").await;
    let before = lab.state_bytes();
    let refused = lab
        .platform
        .delete_instance(&id("muejam-db-prod"), DeleteOptions::default())
        .await
        .expect_err("not ephemeral");
    assert_eq!(refused.name(), "Unsafe");
    assert_eq!(lab.state_bytes(), before, "state file unchanged");
    assert_eq!(
        lab.platform
            .describe_instance(&id("muejam-db-prod"))
            .await
            .expect("still there")
            .status,
        InstanceStatus::Available
    );

    let drill = lab
        .platform
        .create_instance(&CreateInstanceRequest {
            instance_id: id("drill-throwaway"),
            availability_zone: Some("us-east-1b".to_owned()),
            tags: tags(&[(EPHEMERAL_TAG, "true")]),
        })
        .await
        .expect("ephemeral instance");
    let endpoint = drill.endpoint.expect("endpoint");
    lab.platform
        .delete_instance(&id("drill-throwaway"), DeleteOptions::default())
        .await
        .expect("delete ephemeral");
    let gone = lab
        .platform
        .describe_instance(&id("drill-throwaway"))
        .await
        .expect_err("deleted");
    assert_eq!(gone.name(), "NotFound");
    assert!(
        std::net::TcpStream::connect((endpoint.address.as_str(), endpoint.port)).is_err(),
        "the deleted server no longer listens"
    );
    assert!(!lab
        .platform
        .home()
        .join("instances/drill-throwaway")
        .exists());

    lab.platform
        .delete_instance(&id("muejam-db-prod"), DeleteOptions { force: true })
        .await
        .expect("forced delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_leaves_the_state_file_unchanged() {
    let lab = lab();
    lab.primary("muejam-db-prod").await;
    let before = lab.state_bytes();

    let unknown = id("no-such-db");
    let errors = vec![
        lab.platform
            .describe_instance(&unknown)
            .await
            .expect_err("describe"),
        lab.platform
            .promote_read_replica(&unknown)
            .await
            .expect_err("promote"),
        lab.platform
            .create_snapshot(&CreateSnapshotRequest {
                instance_id: unknown.clone(),
                snapshot_id: snapshot_id("s1"),
                tags: Tags::new(),
            })
            .await
            .expect_err("snapshot"),
        lab.platform
            .restore_from_snapshot(&RestoreSnapshotRequest {
                network: None,
                snapshot_id: snapshot_id("no-such-snapshot"),
                target_id: id("x1"),
                instance_class: None,
                tags: Tags::new(),
            })
            .await
            .expect_err("restore"),
    ];
    for error in &errors {
        assert_eq!(error.name(), "NotFound", "{error}");
    }
    assert!(errors[0].to_string().contains("no-such-db"));

    let duplicate = lab
        .platform
        .create_instance(&CreateInstanceRequest {
            instance_id: id("muejam-db-prod"),
            availability_zone: None,
            tags: Tags::new(),
        })
        .await
        .expect_err("duplicate");
    assert_eq!(duplicate.name(), "AlreadyExists");

    let bad_zone = lab
        .platform
        .create_instance(&CreateInstanceRequest {
            instance_id: id("other-db"),
            availability_zone: Some("mars-1a".to_owned()),
            tags: Tags::new(),
        })
        .await
        .expect_err("unknown zone");
    assert_eq!(bad_zone.name(), "InvalidInput");

    let no_backup = lab
        .platform
        .restore_to_point_in_time(&PointInTimeRestoreRequest {
            network: None,
            source_id: id("muejam-db-prod"),
            target_id: id("pitr-x"),
            restore_time: chrono::Utc::now(),
            tags: Tags::new(),
        })
        .await
        .expect_err("no base backup yet");
    assert_eq!(no_backup.name(), "InvalidInput");

    let weak = lab
        .platform
        .change_master_credentials(&id("muejam-db-prod"), &SecretString::from("short"))
        .await
        .expect_err("weak password");
    assert_eq!(weak.name(), "InvalidInput");
    assert!(!weak.to_string().contains("short"));

    assert_eq!(lab.state_bytes(), before, "state file unchanged");

    let file = lab.platform.home().join("not-a-directory");
    std::fs::write(&file, b"x").expect("file");
    let unwritable = LocalControlPlane::open(&file.join("home"), None).expect_err("bad home");
    assert_eq!(unwritable.name(), "InvalidInput");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_master_credentials_work_and_the_old_ones_stop_working() {
    let lab = lab();
    lab.primary("muejam-db-prod").await;
    let old = lab
        .platform
        .database_target(&id("muejam-db-prod"), None)
        .expect("target");
    lab.platform
        .change_master_credentials(
            &id("muejam-db-prod"),
            &SecretString::from("a-brand-new-password-1234"),
        )
        .await
        .expect("rotate");
    let refused = dr_postgres::connect(&old).await.expect_err("old password");
    assert_eq!(refused.name(), "InvalidInput", "{refused}");
    let new = lab
        .platform
        .database_target(&id("muejam-db-prod"), None)
        .expect("target");
    dr_postgres::connect(&new)
        .await
        .expect("new password works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_tags_and_crashes_are_reported_as_a_user_sees_them() {
    use dr_postgres::PostgresSqlTarget;
    let lab = lab();
    lab.primary("muejam-db-prod").await;
    lab.platform
        .create_read_replica(&CreateReplicaRequest {
            network: None,
            replica_id: id("muejam-db-prod-replica"),
            source_id: id("muejam-db-prod"),
            availability_zone: Some("us-east-1c".to_owned()),
            tags: Tags::new(),
        })
        .await
        .expect("replica");
    let primary = lab
        .platform
        .database_target(&id("muejam-db-prod"), None)
        .expect("target");
    let replica = lab
        .platform
        .database_target(&id("muejam-db-prod-replica"), None)
        .expect("target");

    let healthy = PostgresSqlTarget
        .probe(&primary, ProbeKind::ReadWrite)
        .await
        .expect("probe");
    assert!(healthy.healthy, "{healthy:?}");
    assert_eq!(healthy.in_recovery, Some(false));
    let read_only = PostgresSqlTarget
        .probe(&replica, ProbeKind::ReadWrite)
        .await
        .expect("probe");
    assert!(!read_only.healthy);
    assert!(read_only
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("read-only")));
    assert!(
        PostgresSqlTarget
            .probe(&replica, ProbeKind::Read)
            .await
            .expect("probe")
            .healthy
    );

    lab.platform
        .add_tags(&id("muejam-db-prod"), &tags(&[("Owner", "oncall")]))
        .await
        .expect("tag");
    let described = lab
        .platform
        .describe_instance(&id("muejam-db-prod"))
        .await
        .expect("describe");
    assert_eq!(
        described.tags.get("Owner").map(String::as_str),
        Some("oncall")
    );
    assert_eq!(
        described.tags.get("Environment").map(String::as_str),
        Some("test")
    );

    // A replica that is busy (here: backing up) cannot be promoted.
    {
        let mut guard = lab.platform.store().lock().expect("lock");
        guard
            .instance_mut(&id("muejam-db-prod-replica"))
            .expect("record")
            .busy = Some(dr_local::state::Busy {
            status: InstanceStatus::BackingUp,
            pid: std::process::id(),
        });
        guard.save().expect("save");
    }
    let busy = lab
        .platform
        .promote_read_replica(&id("muejam-db-prod-replica"))
        .await
        .expect_err("backing up");
    assert_eq!(busy.name(), "NotReady", "{busy}");
    assert!(busy.to_string().contains("backing-up"), "{busy}");
    {
        let mut guard = lab.platform.store().lock().expect("lock");
        guard
            .instance_mut(&id("muejam-db-prod-replica"))
            .expect("record")
            .busy = None;
        guard.save().expect("save");
    }

    lab.platform
        .crash_instance(&id("muejam-db-prod"))
        .await
        .expect("crash");
    let crashed = lab
        .platform
        .describe_instance(&id("muejam-db-prod"))
        .await
        .expect("describe");
    assert_eq!(crashed.status, InstanceStatus::Failed);
    let down = PostgresSqlTarget
        .probe(&primary, ProbeKind::Read)
        .await
        .expect("a probe of a dead server answers unhealthy");
    assert!(!down.healthy);
    assert!(
        down.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("Unavailable")),
        "{down:?}"
    );
    let replica_now = lab
        .platform
        .describe_instance(&id("muejam-db-prod-replica"))
        .await
        .expect("describe");
    assert_eq!(replica_now.role, InstanceRole::Replica);
    assert_eq!(replica_now.status, InstanceStatus::Available);
}

/// Every cluster accepts TCP only over TLS, its certificate names its own
/// address and chains to the home's CA; what goes wrong is classified by
/// what it says about the database (down) or about us (broken probe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_goes_over_verified_tls_only_and_failures_say_whose_they_are() {
    let lab = lab();
    lab.primary("muejam-db-prod").await;
    let good = lab
        .platform
        .database_target(&id("muejam-db-prod"), None)
        .expect("target");
    assert_eq!(good.tls.mode, TlsMode::VerifyFull);
    let client = dr_postgres::connect(&good)
        .await
        .expect("verify-full works");
    let row = client
        .query_one(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    assert!(row.get::<_, bool>(0), "the session is encrypted");
    let failure = |target: DatabaseTarget| async move {
        dr_postgres::connect_classified(&target)
            .await
            .map(drop)
            .expect_err("must be refused")
    };

    let mut plain = good.clone();
    plain.tls.mode = TlsMode::Disable;
    let refused = failure(plain).await;
    assert_eq!(refused.failure, ProbeFailure::AccessDenied, "{refused:?}");
    assert!(
        refused.error.to_string().contains("no encryption"),
        "{}",
        refused.error
    );

    let other_home = tempfile::tempdir().expect("tmp");
    let stranger =
        dr_local::tls::LocalCa::load_or_create(&other_home.path().join("tls")).expect("another CA");
    let mut wrong_ca = good.clone();
    wrong_ca.tls = stranger.policy();
    let tls = failure(wrong_ca.clone()).await;
    assert_eq!(tls.failure, ProbeFailure::Tls, "{tls:?}");
    assert_eq!(tls.failure.class(), ProbeClass::ProbeBroken);
    assert!(!tls.error.is_transient(), "{}", tls.error);

    let mut wrong_password = good.clone();
    wrong_password.password = SecretString::from("not-the-password");
    assert_eq!(
        failure(wrong_password).await.failure,
        ProbeFailure::Authentication
    );
    let mut no_database = good.clone();
    no_database.database = "muejm".to_owned();
    assert_eq!(
        failure(no_database).await.failure,
        ProbeFailure::Misconfigured
    );
    let mut unresolvable = good.clone();
    unresolvable.endpoint.address = "db.nowhere.invalid".to_owned();
    assert_eq!(
        failure(unresolvable).await.failure,
        ProbeFailure::DnsUnresolvable
    );

    lab.platform
        .crash_instance(&id("muejam-db-prod"))
        .await
        .expect("crash");
    let down = failure(good).await;
    assert_eq!(down.failure, ProbeFailure::Refused, "{down:?}");
    assert_eq!(down.failure.class(), ProbeClass::DatabaseDown);
}
