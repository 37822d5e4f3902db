//! Probes, tags, crashes, and SQL over TLS.

use super::*;

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
