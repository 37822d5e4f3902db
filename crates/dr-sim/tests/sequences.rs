//! The simulated RDS and Route 53 go through AWS's status sequences, in
//! simulated time, with the durations of the timing table.

use chrono::{DateTime, Duration, Utc};
use dr_core::clock;
use dr_core::*;
use dr_sim::timings::{Timings, PROMOTION_SEQUENCE};
use dr_sim::{seed_muejam, SimConfig, SimRds, SimServices, World};

fn epoch() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-03T03:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("id")
}

/// The sequence the aws-smithy-mocks test of the RDS adapter feeds it is
/// the one the simulation goes through, polled every simulated second.
#[tokio::test]
async fn a_promotion_goes_through_the_sequence_the_rds_mock_uses() {
    for seed in 1..=5 {
        let world = World::new(SimConfig {
            seed,
            ..SimConfig::default()
        });
        seed_muejam(&world, 1, epoch()).expect("seeded");
        let rds = SimRds::new(world.clone(), "us-east-1");
        let replica = id("muejam-db-prod-replica");
        let ((seen, took), _) = clock::simulate(epoch(), async {
            let outcome = rds.promote_read_replica(&replica).await.expect("promoted");
            assert!(!outcome.already_standalone);
            let began = clock::now();
            let mut seen = vec![(
                outcome.instance.status.as_str().to_owned(),
                outcome.instance.replication_source.is_some(),
            )];
            for _ in 0..100_000 {
                clock::advance(Duration::seconds(1));
                let d = rds.describe_instance(&replica).await.expect("described");
                let step = (d.status.as_str().to_owned(), d.replication_source.is_some());
                if seen.last() != Some(&step) {
                    seen.push(step);
                }
                if d.is_standalone_and_available() {
                    break;
                }
            }
            (seen, clock::now() - began)
        })
        .await;
        let expected: Vec<(String, bool)> = PROMOTION_SEQUENCE
            .iter()
            .map(|(s, named)| ((*s).to_owned(), *named))
            .collect();
        assert_eq!(seen, expected, "seed {seed}");
        let t = Timings::aws();
        let longest = t.promote_modifying.worst(0.0) + t.promote_rebooting.worst(0.0);
        assert!(
            took.num_seconds() as f64 <= longest + 60.0,
            "seed {seed}: {took}"
        );
        assert!(
            took.num_seconds() as f64 >= t.promote_modifying.min,
            "seed {seed}: {took}"
        );
        // A retry of the promotion is recognised, not repeated.
        let (again, _) = clock::simulate(epoch() + Duration::hours(1), async {
            rds.promote_read_replica(&replica).await
        })
        .await;
        assert!(again.expect("retry").already_standalone);
    }
}

#[tokio::test]
async fn a_dns_change_is_pending_then_insync_within_the_documented_minute() {
    let world = World::new(SimConfig::default());
    seed_muejam(&world, 1, epoch()).expect("seeded");
    let dns = SimServices::new(world.clone());
    let (statuses, _) = clock::simulate(epoch(), async {
        let record = dns
            .get_record("muejam.internal", "db.muejam.internal", "CNAME")
            .await
            .expect("read")
            .expect("seeded record");
        let change = dns
            .upsert_record(&DnsRecord {
                value: "elsewhere.example".into(),
                ..record
            })
            .await
            .expect("upsert");
        let mut statuses = vec![(0, change.status)];
        for second in 1..=70 {
            clock::advance(Duration::seconds(1));
            let status = dns
                .change_status(&change.change_id)
                .await
                .expect("status")
                .status;
            if statuses.last().map(|(_, s)| *s) != Some(status) {
                statuses.push((second, status));
            }
        }
        statuses
    })
    .await;
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert_eq!(statuses[0].1, DnsChangeStatus::Pending);
    assert_eq!(statuses[1].1, DnsChangeStatus::Insync);
    assert!(statuses[1].0 <= 61, "{statuses:?}");
}

/// A restore is `creating`, then `backing-up`, then `available`, longer for
/// a bigger database; a copy across regions is `copying` until it is done.
#[tokio::test]
async fn restores_and_copies_take_their_statuses_and_grow_with_size() {
    let mut took = Vec::new();
    for gib in [10.0, 1000.0] {
        let world = World::new(SimConfig {
            database_gib: gib,
            ..SimConfig::default()
        });
        seed_muejam(&world, 1, epoch()).expect("seeded");
        let east = SimRds::new(world.clone(), "us-east-1");
        let west = SimRds::new(world.clone(), "us-west-2");
        let ((statuses, restore, copying), _) = clock::simulate(epoch(), async {
            let snapshot = east.list_snapshots(None).await.expect("list")[0]
                .snapshot_id
                .clone();
            let target = id("muejam-db-prod-r1");
            east.restore_from_snapshot(&RestoreSnapshotRequest {
                snapshot_id: snapshot.clone(),
                target_id: target.clone(),
                instance_class: None,
                tags: Tags::new(),
                network: None,
            })
            .await
            .expect("restore");
            let began = clock::now();
            let mut statuses: Vec<InstanceStatus> = Vec::new();
            loop {
                let status = east
                    .describe_instance(&target)
                    .await
                    .expect("described")
                    .status;
                if statuses.last() != Some(&status) {
                    statuses.push(status);
                }
                if status == InstanceStatus::Available {
                    break;
                }
                clock::advance(Duration::seconds(30));
            }
            let restore = clock::now() - began;
            let copy = west
                .copy_snapshot(&CopySnapshotRequest {
                    source_snapshot_id: snapshot,
                    source_region: "us-east-1".into(),
                    target_snapshot_id: SnapshotId::parse("dr-copy-now").expect("id"),
                    kms_key_id: "arn:aws:kms:us-west-2:123456789012:key/sim".into(),
                    tags: Tags::new(),
                })
                .await
                .expect("copy");
            (statuses, restore, copy.status)
        })
        .await;
        assert_eq!(
            statuses,
            [
                InstanceStatus::Creating,
                InstanceStatus::BackingUp,
                InstanceStatus::Available
            ],
            "{gib} GiB"
        );
        assert_eq!(copying, SnapshotStatus::Copying);
        took.push(restore);
    }
    assert!(
        took[1] > took[0],
        "1000 GiB restores slower than 10: {took:?}"
    );
}
