use super::steps::judge_copy;
use super::*;

fn at(minutes_ago: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("time") - Duration::minutes(minutes_ago)
}

fn now() -> DateTime<Utc> {
    at(0)
}

fn sid(s: &str) -> SnapshotId {
    SnapshotId::parse(s).expect("id")
}

fn snap(id: &str, minutes_ago: i64, status: SnapshotStatus) -> SnapshotDescription {
    SnapshotDescription {
        snapshot_id: sid(id),
        source_instance_id: InstanceId::parse("muejam-db-prod").expect("id"),
        snapshot_type: SnapshotType::Manual,
        status,
        created_at: at(minutes_ago),
        size_bytes: 1 << 20,
        encrypted: true,
        engine_version: "15".into(),
        region: Some("us-west-2".into()),
        tags: Tags::new(),
        row_counts: None,
        original_created_at: None,
        copied_from: None,
        kms_key_id: Some("arn:aws:kms:us-west-2:1:key/west".into()),
        percent_progress: None,
    }
}

fn copy(id: &str, minutes_ago: i64, database: &str, verified: bool) -> SnapshotDescription {
    let mut s = snap(id, 0, SnapshotStatus::Available);
    s.original_created_at = Some(at(minutes_ago));
    s.copied_from = Some(SnapshotSource {
        snapshot: "arn:aws:rds:us-east-1:1:snapshot:s".into(),
        region: Some("us-east-1".into()),
    });
    s.tags.insert(COPY_OF_TAG.into(), database.into());
    if verified {
        s.tags
            .insert(VERIFIED_TAG.into(), "2026-01-01T00:00:00Z".into());
    }
    s
}

#[test]
fn the_source_is_a_fresh_snapshot_the_one_this_run_took_or_a_new_one() {
    use SnapshotStatus::*;
    let taken = sid("dr-repl-muejam-db-prod-20270115080000");
    let cases: Vec<(&str, Vec<SnapshotDescription>, SourceChoice)> = vec![
        (
            "nothing yet: take one",
            vec![],
            SourceChoice::Take(taken.clone()),
        ),
        (
            "a fresh automated snapshot is used as it is",
            vec![
                snap("rds:auto-1", 30, Available),
                snap("old", 600, Available),
            ],
            SourceChoice::Use(sid("rds:auto-1")),
        ),
        (
            "the newest is too old: take one",
            vec![snap("rds:auto-1", 61, Available)],
            SourceChoice::Take(taken.clone()),
        ),
        (
            "a fresh one still being created or failed is not used",
            vec![snap("new", 5, Creating), snap("bad", 1, Failed)],
            SourceChoice::Take(taken.clone()),
        ),
        (
            "the one this run took is waited for, then used",
            vec![snap(taken.as_str(), 0, Creating)],
            SourceChoice::Wait(taken.clone()),
        ),
        (
            "the one this run took, available",
            vec![
                snap(taken.as_str(), 0, Available),
                snap("rds:auto-1", 30, Available),
            ],
            SourceChoice::Use(taken.clone()),
        ),
    ];
    for (what, snapshots, expected) in cases {
        assert_eq!(
            choose_source(&snapshots, &taken, now(), 3600),
            expected,
            "{what}"
        );
    }
    let mut copied = snap("copied-in", 1, Available);
    copied.copied_from = Some(SnapshotSource {
        snapshot: "x".into(),
        region: None,
    });
    assert_eq!(
        choose_source(&[copied], &taken, now(), 3600),
        SourceChoice::Take(taken.clone()),
        "a copy made elsewhere is no source"
    );
}

#[test]
fn a_copy_is_named_after_its_source_so_it_is_made_once() {
    let cases = [
        ("muejam-db-prod-s1", "dr-copy-muejam-db-prod-s1"),
        (
            "rds:muejam-db-prod-2026-11-26-06-00",
            "dr-copy-rds-muejam-db-prod-2026-11-26-06-00",
        ),
    ];
    for (source, expected) in cases {
        assert_eq!(copy_id(&sid(source)).expect("id").as_str(), expected);
    }
    let long = format!("a{}", "-b".repeat(127));
    let named = copy_id(&sid(&long)).expect("long names are cut, never invalid");
    assert!(named.as_str().len() <= 255 && !named.as_str().ends_with('-'));
    assert_eq!(
        taken_snapshot_id(&InstanceId::parse("muejam-db-prod").expect("id"), now())
            .expect("id")
            .as_str(),
        "dr-repl-muejam-db-prod-20270115080000"
    );
}

#[test]
fn pruning_keeps_the_newest_verified_copies_and_touches_nothing_else() {
    let copies = vec![
        copy("c5", 10, "muejam", false), // newer than every verified: in flight
        copy("c4", 60, "muejam", true),
        copy("c3", 120, "muejam", false), // failed its check: goes
        copy("c2", 180, "muejam", true),
        copy("c1", 240, "muejam", true),
        copy("c0", 300, "muejam", true),
        copy("other", 500, "billing", true),
        snap("manual-west", 900, SnapshotStatus::Available),
    ];
    let cases = [
        (1, vec!["c5", "c4"], vec!["c3", "c2", "c1", "c0"]),
        (3, vec!["c5", "c4", "c2", "c1"], vec!["c3", "c0"]),
        (10, vec!["c5", "c4", "c2", "c1", "c0"], vec!["c3"]),
    ];
    for (retain, keep, delete) in cases {
        let plan = prune_plan(&copies, "muejam", retain);
        let names = |ids: &[SnapshotId]| ids.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&plan.keep), keep, "retain {retain}");
        assert_eq!(names(&plan.delete), delete, "retain {retain}");
    }
    // Without a verified copy nothing unverified is deleted (it may be the
    // only one, still copying).
    let plan = prune_plan(&[copy("c9", 5, "muejam", false)], "muejam", 1);
    assert!(plan.delete.is_empty());
}

#[test]
fn the_age_is_that_of_the_newest_verified_copys_data() {
    let copies = vec![
        copy("c2", 10, "muejam", false),
        copy("c1", 90, "muejam", true),
        copy("other", 1, "billing", true),
    ];
    assert_eq!(
        newest_verified_age(&copies, "muejam", now()),
        Some((sid("c1"), 90 * 60))
    );
    assert_eq!(newest_verified_age(&copies[..1], "muejam", now()), None);
}

#[test]
fn a_copy_is_judged_on_state_key_source_and_size() {
    let good = || {
        let mut c = copy("dr-copy-s", 30, "muejam", false);
        c.copied_from = Some(SnapshotSource {
            snapshot: "arn:aws:rds:us-east-1:1:snapshot:s".into(),
            region: Some("us-east-1".into()),
        });
        c
    };
    let key = "arn:aws:kms:us-west-2:1:key/west";
    let judge =
        |c: &SnapshotDescription, k: &str| judge_copy(c, &sid("s"), "us-east-1", "us-west-2", k);
    assert_eq!(judge(&good(), key).expect("good").len(), 4);
    assert!(
        judge(&good(), "alias/muejam-dr").is_ok(),
        "an alias: the ARN's region is checked"
    );
    type Spoil = fn(&mut SnapshotDescription);
    let spoiled: [(&str, Spoil); 7] = [
        ("copying", |c| c.status = SnapshotStatus::Copying),
        ("not encrypted", |c| c.encrypted = false),
        ("no key", |c| c.kms_key_id = None),
        ("east key", |c| {
            c.kms_key_id = Some("arn:aws:kms:us-east-1:1:key/east".into())
        }),
        ("another source", |c| {
            c.copied_from = Some(SnapshotSource {
                snapshot: "arn:aws:rds:us-east-1:1:snapshot:other-s".into(),
                region: Some("us-east-1".into()),
            })
        }),
        ("another region", |c| {
            if let Some(f) = c.copied_from.as_mut() {
                f.region = Some("eu-west-1".into());
            }
        }),
        ("empty", |c| c.size_bytes = 0),
    ];
    for (what, spoil) in spoiled {
        let mut c = good();
        spoil(&mut c);
        assert!(judge(&c, key).is_err(), "{what}");
    }
    let mut local = good();
    local.kms_key_id = Some("local/us-west-2/snapshots".into());
    local.copied_from = Some(SnapshotSource {
        snapshot: "s".into(),
        region: Some("us-east-1".into()),
    });
    assert!(judge(&local, "local/us-west-2/snapshots").is_ok());
    assert!(judge(&local, "local/us-east-1/snapshots").is_err());
}

#[test]
fn the_input_is_refused_whole_before_anything_is_read() {
    let base = || ReplicationRequest {
        backup_region: "us-west-2".into(),
        kms_key_id: "arn:aws:kms:us-west-2:1:key/west".into(),
        retain: 3,
        rpo_seconds: 21_600,
        fresh_within_seconds: 3600,
        poll_interval_seconds: 60,
        databases: vec![],
        namespace: "MueJam/DR".into(),
    };
    assert!(validate_request(&base()).is_ok());
    type Spoil = fn(&mut ReplicationRequest);
    let bad: [(&str, Spoil); 10] = [
        ("namespace", |r| r.namespace = "AWS/RDS".into()),
        ("region", |r| r.backup_region = "us-west".into()),
        ("empty key", |r| r.kms_key_id = " ".into()),
        ("key of another region", |r| {
            r.kms_key_id = "arn:aws:kms:us-east-1:1:key/e".into()
        }),
        ("retain 0", |r| r.retain = 0),
        ("retain huge", |r| r.retain = 31),
        ("rpo", |r| r.rpo_seconds = 10),
        ("fresh beyond rpo", |r| r.fresh_within_seconds = 30_000),
        ("poll", |r| r.poll_interval_seconds = 0),
        ("database name", |r| r.databases = vec!["Bad Name".into()]),
    ];
    for (what, spoil) in bad {
        let mut r = base();
        spoil(&mut r);
        assert_eq!(
            validate_request(&r).expect_err(what).name(),
            "InvalidInput",
            "{what}"
        );
    }
    assert_eq!(polls(6 * 3600, 60), 360);
    let limits = ReplicationLimits::for_interval(1);
    assert_eq!(
        (
            limits.snapshot_poll_seconds,
            limits.snapshot_polls,
            limits.copy_poll_seconds,
            limits.copy_polls
        ),
        (60, 120, 300, 72)
    );
    assert_eq!(polls(6 * 3600, 1), MAX_POLLS);
    assert_eq!(polls(10, 300), 1);
}
