//! What the control plane refuses, and credentials.

use super::*;

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
