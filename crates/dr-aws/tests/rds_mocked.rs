//! The RDS adapter against exact AWS status sequences (aws-smithy-mocks).

use aws_sdk_rds::error::ErrorMetadata;
use aws_sdk_rds::operation::describe_db_instances::{
    DescribeDBInstancesError, DescribeDbInstancesOutput,
};
use aws_sdk_rds::operation::promote_read_replica::PromoteReadReplicaOutput;
use aws_sdk_rds::types::{DbInstance, Endpoint};
use aws_sdk_rds::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use dr_aws::RdsControlPlane;
use dr_core::*;

fn replica(status: &str, source: Option<&str>) -> DescribeDbInstancesOutput {
    DescribeDbInstancesOutput::builder()
        .db_instances(
            DbInstance::builder()
                .db_instance_identifier("muejam-db-prod-replica")
                .db_instance_status(status)
                .engine("postgres")
                .engine_version("15.8")
                .availability_zone("us-east-1b")
                .set_read_replica_source_db_instance_identifier(source.map(str::to_owned))
                .endpoint(
                    Endpoint::builder()
                        .address("muejam-db-prod-replica.abc.us-east-1.rds.amazonaws.com")
                        .port(5432)
                        .build(),
                )
                .build(),
        )
        .build()
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("id")
}

/// The statuses of a promotion come from the one description of AWS the
/// simulated RDS also follows (`dr_sim::timings::PROMOTION_SEQUENCE`; the
/// simulation's own test checks it goes through them), so the adapter and
/// the simulation cannot drift apart.
#[tokio::test]
async fn promotion_follows_the_real_status_sequence_until_standalone_and_available() {
    use dr_sim::timings::PROMOTION_SEQUENCE;
    let source = |named: bool| named.then_some("muejam-db-prod");
    // The replica before the promotion, then each status of the sequence,
    // the first one twice (a poll lands while it lasts).
    let mut describe = mock!(Client::describe_db_instances)
        .sequence()
        .output(|| replica("available", Some("muejam-db-prod")));
    let (first, first_source) = PROMOTION_SEQUENCE[0];
    describe = describe.output(move || replica(first, source(first_source)));
    for (status, named) in PROMOTION_SEQUENCE {
        describe = describe.output(move || replica(status, source(named)));
    }
    let describe = describe.build();
    let promote = mock!(Client::promote_read_replica)
        .then_output(|| PromoteReadReplicaOutput::builder().build());
    let rds = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &promote]);
    let control_plane = RdsControlPlane::new(rds, None);

    let outcome = control_plane
        .promote_read_replica(&id("muejam-db-prod-replica"))
        .await
        .expect("promote");
    assert!(!outcome.already_standalone);
    assert_eq!(outcome.instance.status, InstanceStatus::Modifying);
    assert_eq!(promote.num_calls(), 1);

    let mut seen = Vec::new();
    loop {
        let d = control_plane
            .describe_instance(&id("muejam-db-prod-replica"))
            .await
            .expect("describe");
        seen.push((d.status, d.replication_source.is_some()));
        if d.is_standalone_and_available() {
            break;
        }
    }
    seen.dedup();
    let expected: Vec<(InstanceStatus, bool)> = PROMOTION_SEQUENCE
        .iter()
        .map(|(status, named)| {
            (
                serde_json::from_value(serde_json::json!(status)).expect("a status"),
                *named,
            )
        })
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(
        expected.first(),
        Some(&(InstanceStatus::Modifying, true)),
        "{expected:?}"
    );
}

#[tokio::test]
async fn an_already_standalone_instance_is_not_promoted_again_and_a_busy_replica_is_not_ready() {
    let standalone =
        mock!(Client::describe_db_instances).then_output(|| replica("available", None));
    let promote = mock!(Client::promote_read_replica)
        .then_output(|| PromoteReadReplicaOutput::builder().build());
    let rds = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&standalone, &promote]);
    let outcome = RdsControlPlane::new(rds, None)
        .promote_read_replica(&id("muejam-db-prod-replica"))
        .await
        .expect("idempotent");
    assert!(outcome.already_standalone);
    assert_eq!(promote.num_calls(), 0);

    let backing_up = mock!(Client::describe_db_instances)
        .then_output(|| replica("backing-up", Some("muejam-db-prod")));
    let promote = mock!(Client::promote_read_replica)
        .then_output(|| PromoteReadReplicaOutput::builder().build());
    let rds = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&backing_up, &promote]);
    let error = RdsControlPlane::new(rds, None)
        .promote_read_replica(&id("muejam-db-prod-replica"))
        .await
        .expect_err("backing up");
    assert_eq!(error.name(), "NotReady");
    assert!(error.to_string().contains("backing-up"));
    assert_eq!(promote.num_calls(), 0);
}

#[tokio::test]
async fn throttling_and_not_found_keep_their_stable_names() {
    let throttled = mock!(Client::describe_db_instances).then_error(|| {
        DescribeDBInstancesError::generic(
            ErrorMetadata::builder()
                .code("Throttling")
                .message("Rate exceeded")
                .build(),
        )
    });
    let rds = mock_client!(aws_sdk_rds, [&throttled]);
    let error = RdsControlPlane::new(rds, None)
        .describe_instance(&id("muejam-db-prod"))
        .await
        .expect_err("throttled");
    assert_eq!(error.name(), "Throttled");
    assert!(error.to_string().contains("Rate exceeded"));

    let missing = mock!(Client::describe_db_instances).then_error(|| {
        DescribeDBInstancesError::DbInstanceNotFoundFault(
            aws_sdk_rds::types::error::DbInstanceNotFoundFault::builder()
                .message("DBInstance no-such-db not found.")
                .meta(
                    ErrorMetadata::builder()
                        .code("DBInstanceNotFound")
                        .message("DBInstance no-such-db not found.")
                        .build(),
                )
                .build(),
        )
    });
    let rds = mock_client!(aws_sdk_rds, [&missing]);
    let error = RdsControlPlane::new(rds, None)
        .describe_instance(&id("no-such-db"))
        .await
        .expect_err("missing");
    assert_eq!(error.name(), "NotFound", "{error}");
}

/// An available instance in `groups`, with `tags`.
fn instance_in(id: &str, groups: &[&str], tags: &[(&str, &str)]) -> DescribeDbInstancesOutput {
    use aws_sdk_rds::types::{Tag, VpcSecurityGroupMembership};
    let mut db = DbInstance::builder()
        .db_instance_identifier(id)
        .db_instance_arn(format!("arn:aws:rds:us-east-1:123456789012:db:{id}"))
        .db_instance_status("available")
        .engine("postgres");
    for g in groups {
        db = db.vpc_security_groups(
            VpcSecurityGroupMembership::builder()
                .vpc_security_group_id(*g)
                .status("active")
                .build(),
        );
    }
    for (key, value) in tags {
        db = db.tag_list(Tag::builder().key(*key).value(*value).build());
    }
    DescribeDbInstancesOutput::builder()
        .db_instances(db.build())
        .build()
}

fn fenced_or_not(groups: &[&str], tagged: bool) -> DescribeDbInstancesOutput {
    let tags: &[(&str, &str)] = if tagged {
        &[(FENCED_TAG, "exec-1")]
    } else {
        &[]
    };
    instance_in("muejam-db-prod", groups, tags)
}

fn fence_request() -> FenceRequest {
    FenceRequest {
        by: "exec-1".to_owned(),
        quarantine_security_group: Some("sg-quarantine".to_owned()),
    }
}

#[tokio::test]
async fn fencing_moves_the_instance_to_the_quarantine_group_alone_and_tags_it_once() {
    use aws_sdk_rds::operation::add_tags_to_resource::AddTagsToResourceOutput;
    use aws_sdk_rds::operation::modify_db_instance::ModifyDbInstanceOutput;
    let describe = mock!(Client::describe_db_instances)
        .then_output(|| fenced_or_not(&["sg-app", "sg-admin"], false));
    let modify = mock!(Client::modify_db_instance)
        .match_requests(|r| {
            r.vpc_security_group_ids() == ["sg-quarantine".to_owned()]
                && r.apply_immediately() == Some(true)
                && r.db_instance_identifier() == Some("muejam-db-prod")
        })
        .then_output(|| ModifyDbInstanceOutput::builder().build());
    let tag = mock!(Client::add_tags_to_resource)
        .match_requests(|r| {
            r.tags()
                .iter()
                .any(|t| t.key() == Some(FENCED_TAG) && t.value() == Some("exec-1"))
        })
        .then_output(|| AddTagsToResourceOutput::builder().build());
    let rds = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &modify, &tag]);
    let outcome = RdsControlPlane::new(rds, None)
        .fence_instance(&id("muejam-db-prod"), &fence_request())
        .await
        .expect("fenced");
    assert!(!outcome.already_fenced);
    assert!(
        outcome.method.contains("[sg-app, sg-admin]"),
        "{}",
        outcome.method
    );
    assert_eq!((modify.num_calls(), tag.num_calls()), (1, 1));

    // Already quarantined and tagged: nothing to do (a retry).
    let describe = mock!(Client::describe_db_instances)
        .then_output(|| fenced_or_not(&["sg-quarantine"], true));
    let modify =
        mock!(Client::modify_db_instance).then_output(|| ModifyDbInstanceOutput::builder().build());
    let rds = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &modify]);
    let again = RdsControlPlane::new(rds, None)
        .fence_instance(&id("muejam-db-prod"), &fence_request())
        .await
        .expect("already");
    assert!(again.already_fenced);
    assert_eq!(modify.num_calls(), 0);
}

fn drill_primary(ephemeral: bool, groups: &[&str]) -> DescribeDbInstancesOutput {
    let tags: &[(&str, &str)] = if ephemeral {
        &[(EPHEMERAL_TAG, "true")]
    } else {
        &[]
    };
    instance_in("drill-muejam-db-prod-q4", groups, tags)
}

#[tokio::test]
async fn a_drill_cuts_only_a_throw_away_primary_off_and_only_once() {
    use aws_sdk_rds::operation::modify_db_instance::ModifyDbInstanceOutput;
    let request = FailureRequest {
        quarantine_security_group: Some("sg-quarantine".to_owned()),
    };
    // StopDBInstance is refused for a source of read replicas: the drill
    // moves its primary into the quarantine group, nothing else.
    let describe =
        mock!(Client::describe_db_instances).then_output(|| drill_primary(true, &["sg-app"]));
    let modify = mock!(Client::modify_db_instance)
        .match_requests(|r| {
            r.vpc_security_group_ids() == ["sg-quarantine".to_owned()]
                && r.apply_immediately() == Some(true)
                && r.db_instance_identifier() == Some("drill-muejam-db-prod-q4")
        })
        .then_output(|| ModifyDbInstanceOutput::builder().build());
    let rds = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &modify]);
    let how = RdsControlPlane::new(rds, None)
        .inject_failure(&id("drill-muejam-db-prod-q4"), &request)
        .await
        .expect("cut off");
    assert!(how.contains("sg-quarantine"), "{how}");
    assert_eq!(modify.num_calls(), 1);

    // Already cut off: a retry changes nothing.
    let describe = mock!(Client::describe_db_instances)
        .then_output(|| drill_primary(true, &["sg-quarantine"]));
    let modify =
        mock!(Client::modify_db_instance).then_output(|| ModifyDbInstanceOutput::builder().build());
    let rds = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &modify]);
    RdsControlPlane::new(rds, None)
        .inject_failure(&id("drill-muejam-db-prod-q4"), &request)
        .await
        .expect("again");
    assert_eq!(modify.num_calls(), 0);

    // Not throw-away: refused before any change, whoever asks.
    let describe =
        mock!(Client::describe_db_instances).then_output(|| drill_primary(false, &["sg-app"]));
    let modify =
        mock!(Client::modify_db_instance).then_output(|| ModifyDbInstanceOutput::builder().build());
    let rds = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &modify]);
    let refused = RdsControlPlane::new(rds, None)
        .inject_failure(&id("drill-muejam-db-prod-q4"), &request)
        .await
        .expect_err("not ephemeral");
    assert_eq!(refused.name(), "Unsafe");
    assert_eq!(modify.num_calls(), 0);
}

#[tokio::test]
async fn fencing_an_instance_rds_cannot_modify_is_not_ready_and_without_a_group_is_refused() {
    use aws_sdk_rds::operation::modify_db_instance::ModifyDBInstanceError;
    // RDS refuses ModifyDBInstance on a failed or incompatible instance.
    let describe =
        mock!(Client::describe_db_instances).then_output(|| fenced_or_not(&["sg-app"], false));
    let modify = mock!(Client::modify_db_instance).then_error(|| {
        ModifyDBInstanceError::generic(
            ErrorMetadata::builder()
                .code("InvalidDBInstanceState")
                .message("Database instance is not in available state.")
                .build(),
        )
    });
    let rds = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &modify]);
    let err = RdsControlPlane::new(rds.clone(), None)
        .fence_instance(&id("muejam-db-prod"), &fence_request())
        .await
        .expect_err("not modifiable");
    assert_eq!(err.name(), "NotReady", "{err}");
    let err = RdsControlPlane::new(rds, None)
        .fence_instance(
            &id("muejam-db-prod"),
            &FenceRequest {
                by: "exec-1".to_owned(),
                quarantine_security_group: None,
            },
        )
        .await
        .expect_err("no group configured");
    assert_eq!(err.name(), "InvalidInput");
    assert!(
        err.to_string().contains("QuarantineSecurityGroupId"),
        "{err}"
    );
}

fn placed(id: &str) -> DescribeDbInstancesOutput {
    use aws_sdk_rds::types::{DbParameterGroupStatus, DbSubnetGroup, VpcSecurityGroupMembership};
    DescribeDbInstancesOutput::builder()
        .db_instances(
            DbInstance::builder()
                .db_instance_identifier(id)
                .db_instance_status("available")
                .engine("postgres")
                .db_subnet_group(
                    DbSubnetGroup::builder()
                        .db_subnet_group_name("muejam-private")
                        .build(),
                )
                .vpc_security_groups(
                    VpcSecurityGroupMembership::builder()
                        .vpc_security_group_id("sg-db")
                        .build(),
                )
                .db_parameter_groups(
                    DbParameterGroupStatus::builder()
                        .db_parameter_group_name("muejam-pg15")
                        .build(),
                )
                .build(),
        )
        .build()
}

fn placement() -> NetworkPlacement {
    NetworkPlacement {
        subnet_group: Some("muejam-private".to_owned()),
        security_groups: vec!["sg-db".to_owned()],
        parameter_group: Some("muejam-pg15".to_owned()),
    }
}

#[tokio::test]
async fn replicas_and_restores_are_placed_where_the_database_is_not_in_the_default_vpc() {
    use aws_sdk_rds::operation::create_db_instance_read_replica::CreateDbInstanceReadReplicaOutput;
    use aws_sdk_rds::operation::describe_db_instances::DescribeDBInstancesError;
    use aws_sdk_rds::operation::restore_db_instance_from_db_snapshot::RestoreDbInstanceFromDbSnapshotOutput;
    // What RDS says of the source: its subnet group, groups and parameters.
    let source = mock!(Client::describe_db_instances)
        .match_requests(|r| r.db_instance_identifier() == Some("muejam-db-prod"))
        .then_output(|| placed("muejam-db-prod"));
    let absent = mock!(Client::describe_db_instances)
        .match_requests(|r| r.db_instance_identifier() != Some("muejam-db-prod"))
        .then_error(|| {
            DescribeDBInstancesError::generic(
                ErrorMetadata::builder().code("DBInstanceNotFound").build(),
            )
        });
    let rds = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&source, &absent]);
    let described = RdsControlPlane::new(rds, None)
        .describe_instance(&id("muejam-db-prod"))
        .await
        .expect("describe");
    assert_eq!(described.network, Some(placement()));

    let placed_request = |groups: &[String], subnet: Option<&str>, params: Option<&str>| {
        groups == ["sg-db".to_owned()]
            && subnet == Some("muejam-private")
            && params == Some("muejam-pg15")
    };
    let create = mock!(Client::create_db_instance_read_replica)
        .match_requests(move |r| {
            placed_request(
                r.vpc_security_group_ids(),
                r.db_subnet_group_name(),
                r.db_parameter_group_name(),
            )
        })
        .then_output(|| {
            CreateDbInstanceReadReplicaOutput::builder()
                .db_instance(
                    DbInstance::builder()
                        .db_instance_identifier("muejam-db-prod-r1")
                        .db_instance_status("creating")
                        .read_replica_source_db_instance_identifier("muejam-db-prod")
                        .build(),
                )
                .build()
        });
    let restore = mock!(Client::restore_db_instance_from_db_snapshot)
        .match_requests(move |r| {
            placed_request(
                r.vpc_security_group_ids(),
                r.db_subnet_group_name(),
                r.db_parameter_group_name(),
            )
        })
        .then_output(|| {
            RestoreDbInstanceFromDbSnapshotOutput::builder()
                .db_instance(
                    DbInstance::builder()
                        .db_instance_identifier("drill-muejam-db-prod-d1")
                        .db_instance_status("creating")
                        .build(),
                )
                .build()
        });
    let rds = mock_client!(
        aws_sdk_rds,
        RuleMode::MatchAny,
        [&absent, &create, &restore]
    );
    let control_plane = RdsControlPlane::new(rds, None);
    control_plane
        .create_read_replica(&CreateReplicaRequest {
            replica_id: id("muejam-db-prod-r1"),
            source_id: id("muejam-db-prod"),
            availability_zone: None,
            tags: Tags::new(),
            network: Some(placement()),
        })
        .await
        .expect("replica placed");
    control_plane
        .restore_from_snapshot(&RestoreSnapshotRequest {
            snapshot_id: SnapshotId::parse("rds:muejam-db-prod-2026-11-26-06-00").expect("id"),
            target_id: id("drill-muejam-db-prod-d1"),
            instance_class: None,
            tags: Tags::new(),
            network: Some(placement()),
        })
        .await
        .expect("restore placed");
    assert_eq!((create.num_calls(), restore.num_calls()), (1, 1));
}

fn snapshot_output(
    id: &str,
    region: &str,
    status: &str,
    progress: i32,
) -> aws_sdk_rds::operation::describe_db_snapshots::DescribeDbSnapshotsOutput {
    aws_sdk_rds::operation::describe_db_snapshots::DescribeDbSnapshotsOutput::builder()
        .db_snapshots(snapshot(id, region, status, progress))
        .build()
}

fn snapshot(id: &str, region: &str, status: &str, progress: i32) -> aws_sdk_rds::types::DbSnapshot {
    let created = aws_smithy_types::DateTime::from_secs(1_800_000_000);
    let mut builder = aws_sdk_rds::types::DbSnapshot::builder()
        .db_snapshot_identifier(id)
        .db_instance_identifier("muejam-db-prod")
        .db_snapshot_arn(format!("arn:aws:rds:{region}:123456789012:snapshot:{id}"))
        .status(status)
        .percent_progress(progress)
        .encrypted(true)
        .snapshot_create_time(aws_smithy_types::DateTime::from_secs(1_800_003_600))
        .original_snapshot_create_time(created);
    if region == "us-west-2" {
        builder = builder
            .source_db_snapshot_identifier(
                "arn:aws:rds:us-east-1:123456789012:snapshot:muejam-db-prod-s1",
            )
            .source_region("us-east-1")
            .kms_key_id("arn:aws:kms:us-west-2:123456789012:key/west");
    }
    builder.build()
}

/// moto copies at once; RDS answers `pending`, then `copying` with a
/// progress, then `available` — minutes to hours later for a large one.
#[tokio::test]
async fn a_cross_region_copy_goes_through_pending_and_copying_before_it_is_available() {
    use aws_sdk_rds::operation::copy_db_snapshot::CopyDbSnapshotOutput;
    use aws_sdk_rds::operation::describe_db_snapshots::DescribeDBSnapshotsError;
    let not_found = || {
        DescribeDBSnapshotsError::generic(
            ErrorMetadata::builder()
                .code("DBSnapshotNotFound")
                .message("DBSnapshot dr-copy-s1 not found.")
                .build(),
        )
    };
    let describe = mock!(Client::describe_db_snapshots)
        .sequence()
        // The source, read in us-east-1 for its ARN.
        .output(|| snapshot_output("muejam-db-prod-s1", "us-east-1", "available", 100))
        // No copy yet in us-west-2.
        .error(not_found)
        // Then the copy's progress.
        .output(|| snapshot_output("dr-copy-s1", "us-west-2", "copying", 40))
        .output(|| snapshot_output("dr-copy-s1", "us-west-2", "available", 100))
        .build();
    let copy = mock!(Client::copy_db_snapshot)
        .match_requests(|r| {
            r.source_db_snapshot_identifier()
                == Some("arn:aws:rds:us-east-1:123456789012:snapshot:muejam-db-prod-s1")
                && r.kms_key_id() == Some("arn:aws:kms:us-west-2:123456789012:key/west")
                && r.tags().iter().any(|t| t.key() == Some("dr:copy-source"))
        })
        .then_output(|| {
            CopyDbSnapshotOutput::builder()
                .db_snapshot(snapshot("dr-copy-s1", "us-west-2", "pending", 0))
                .build()
        });
    let rds = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &copy]);
    let west = RdsControlPlane::new(rds, None).in_region("us-west-2");
    let started = west
        .copy_snapshot(&CopySnapshotRequest {
            source_snapshot_id: SnapshotId::parse("muejam-db-prod-s1").expect("id"),
            source_region: "us-east-1".into(),
            target_snapshot_id: SnapshotId::parse("dr-copy-s1").expect("id"),
            kms_key_id: "arn:aws:kms:us-west-2:123456789012:key/west".into(),
            tags: Tags::new(),
        })
        .await
        .expect("copy started");
    assert_eq!(started.status, SnapshotStatus::Copying);
    assert_eq!(copy.num_calls(), 1);
    let target = SnapshotId::parse("dr-copy-s1").expect("id");
    let copying = west.describe_snapshot(&target).await.expect("copying");
    assert_eq!(
        (copying.status, copying.percent_progress),
        (SnapshotStatus::Copying, Some(40))
    );
    let done = west.describe_snapshot(&target).await.expect("available");
    assert_eq!(done.status, SnapshotStatus::Available);
    assert_eq!(done.region.as_deref(), Some("us-west-2"));
    assert_eq!(
        done.data_time().timestamp(),
        1_800_000_000,
        "the data's time is the original snapshot's, not the copy's"
    );
    assert_eq!(
        done.copied_from.and_then(|c| c.region).as_deref(),
        Some("us-east-1")
    );
}

/// A throw-away instance RDS is still creating (where a recovery that dies
/// mid-search leaves its candidates): DeleteDBInstance answers
/// InvalidDBInstanceState, which is `NotReady`, so the sweep goes on to the
/// other candidates and its caller retries this one; once RDS takes it, it
/// is deleted without a final snapshot.
#[tokio::test]
async fn deleting_a_candidate_rds_is_still_creating_is_not_ready_then_goes_through() {
    use aws_sdk_rds::operation::delete_db_instance::{
        DeleteDBInstanceError, DeleteDbInstanceOutput,
    };
    let candidate = "muejam-db-prod-c1795770000";
    let describe = mock!(Client::describe_db_instances)
        .then_output(move || instance_in(candidate, &["sg-app"], &[(EPHEMERAL_TAG, "true")]));
    let refused = mock!(Client::delete_db_instance).then_error(|| {
        DeleteDBInstanceError::generic(
            ErrorMetadata::builder()
                .code("InvalidDBInstanceState")
                .message("Instance muejam-db-prod-c1795770000 is currently creating - a final snapshot cannot be taken.")
                .build(),
        )
    });
    let rds = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &refused]);
    let err = RdsControlPlane::new(rds, None)
        .delete_instance(&id(candidate), DeleteOptions::default())
        .await
        .expect_err("still creating");
    assert_eq!(err.name(), "NotReady", "{err}");
    assert!(err.is_transient());
    assert!(err.to_string().contains(candidate), "{err}");

    let taken = mock!(Client::delete_db_instance)
        .match_requests(|r| {
            r.skip_final_snapshot() == Some(true) && r.final_db_snapshot_identifier().is_none()
        })
        .then_output(|| DeleteDbInstanceOutput::builder().build());
    let rds = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &taken]);
    RdsControlPlane::new(rds, None)
        .delete_instance(&id(candidate), DeleteOptions::default())
        .await
        .expect("deleted once RDS takes it");
    assert_eq!(taken.num_calls(), 1);
}
