use super::*;
use crate::replication::VERIFIED_TAG;

fn answered() -> Observation {
    Observation::Answered {
        detail: "answered".into(),
    }
}
fn silent() -> Observation {
    Observation::Silent {
        detail: "timed out".into(),
    }
}
fn broken() -> Observation {
    Observation::Broken {
        detail: "secret unreadable".into(),
    }
}

fn evidence(
    instance: Observation,
    listing: Observation,
    endpoint: Observation,
    backup: Observation,
) -> RegionEvidence {
    RegionEvidence {
        primary_instance: instance,
        primary_listing: listing,
        endpoint,
        backup,
    }
}

#[test]
fn a_region_is_down_only_when_its_api_and_database_are_silent_and_the_backup_answers() {
    use RegionDecision::*;
    use RegionMode::*;
    let (a, s, b) = (answered, silent, broken);
    let cases = [
        (
            "everything silent, backup answers",
            Unplanned,
            evidence(s(), s(), s(), a()),
            RegionDown,
        ),
        (
            "the region answers",
            Unplanned,
            evidence(a(), a(), s(), a()),
            RegionAnswers,
        ),
        (
            "the region answers, the database too",
            Unplanned,
            evidence(a(), a(), a(), a()),
            RegionAnswers,
        ),
        (
            "API down, database serves",
            Unplanned,
            evidence(s(), s(), a(), a()),
            CannotConfirm,
        ),
        (
            "one call answers, one does not",
            Unplanned,
            evidence(s(), a(), s(), a()),
            CannotConfirm,
        ),
        (
            "backup silent too",
            Unplanned,
            evidence(s(), s(), s(), s()),
            CannotConfirm,
        ),
        (
            "our probe is broken",
            Unplanned,
            evidence(s(), s(), b(), a()),
            CannotConfirm,
        ),
        (
            "our client is broken",
            Unplanned,
            evidence(b(), b(), s(), a()),
            CannotConfirm,
        ),
        (
            "planned, both regions answer",
            Planned,
            evidence(a(), a(), a(), a()),
            Evacuate,
        ),
        (
            "planned, the primary region is down",
            Planned,
            evidence(s(), s(), s(), a()),
            CannotConfirm,
        ),
        (
            "planned, the database does not serve",
            Planned,
            evidence(a(), a(), s(), a()),
            CannotConfirm,
        ),
        (
            "planned, backup silent",
            Planned,
            evidence(a(), a(), a(), s()),
            CannotConfirm,
        ),
    ];
    for (what, mode, evidence, expected) in cases {
        let (decision, reasons) = judge_region(mode, &evidence);
        assert_eq!(decision, expected, "{what}");
        assert!(
            reasons.len() >= 5,
            "{what}: every look and the conclusion are reasons"
        );
    }
}

#[test]
fn an_api_error_reads_as_silence_only_when_it_is_the_services() {
    let cases: [(DrResult<()>, &str); 6] = [
        (Ok(()), "answered"),
        (Err(DrError::NotFound("x".into())), "answered"),
        (Err(DrError::Throttled("x".into())), "answered"),
        (Err(DrError::Unavailable("x".into())), "silent"),
        (Err(DrError::Timeout("x".into())), "silent"),
        (Err(DrError::Internal("no credentials".into())), "broken"),
    ];
    for (result, expected) in cases {
        let kind = match Observation::of_call("RDS", &result) {
            Observation::Answered { .. } => "answered",
            Observation::Silent { .. } => "silent",
            Observation::Broken { .. } => "broken",
        };
        assert_eq!(kind, expected, "{result:?}");
    }
}

fn copy(id: &str, hours_ago: i64, database: &str, verified: bool) -> SnapshotDescription {
    let now = DateTime::from_timestamp(1_800_000_000, 0).expect("t");
    let mut tags = Tags::new();
    tags.insert(COPY_OF_TAG.into(), database.into());
    if verified {
        tags.insert(VERIFIED_TAG.into(), "2027-01-01T00:00:00Z".into());
    }
    SnapshotDescription {
        snapshot_id: SnapshotId::parse(id).expect("id"),
        source_instance_id: InstanceId::parse("muejam-db-prod").expect("id"),
        snapshot_type: SnapshotType::Manual,
        status: SnapshotStatus::Available,
        created_at: now,
        size_bytes: 1,
        encrypted: true,
        engine_version: "15".into(),
        region: Some("us-west-2".into()),
        tags,
        row_counts: Some([("users".to_owned(), 10)].into()),
        original_created_at: Some(now - Duration::hours(hours_ago)),
        copied_from: None,
        kms_key_id: None,
        percent_progress: None,
    }
}

#[test]
fn the_newest_verified_copy_is_chosen_and_its_age_is_the_loss() {
    let now = DateTime::from_timestamp(1_800_000_000, 0).expect("t");
    let copies = vec![
        copy("c-newest-unverified", 1, "muejam", false),
        copy("c-2h", 2, "muejam", true),
        copy("c-9h", 9, "muejam", true),
        copy("other-db", 0, "billing", true),
    ];
    let chosen = choose_copy(&copies, "muejam", None, None, now, 21_600.0).expect("a copy");
    assert_eq!(chosen.snapshot_id.as_str(), "c-2h");
    assert_eq!(chosen.age_seconds, 7200.0);
    assert!(chosen.rpo_met);
    let old = choose_copy(&copies[2..], "muejam", None, None, now, 21_600.0).expect("a copy");
    assert_eq!(old.snapshot_id.as_str(), "c-9h");
    assert!(!old.rpo_met, "older than the RPO: said, not hidden");
    let named = SnapshotId::parse("c-9h").expect("id");
    assert_eq!(
        choose_copy(&copies, "muejam", Some(&named), None, now, 21_600.0).map(|c| c.snapshot_id),
        Some(named.clone())
    );
    assert!(choose_copy(&copies[..1], "muejam", None, None, now, 21_600.0).is_none());
    assert!(choose_copy(&copies, "orders", None, None, now, 21_600.0).is_none());

    // The baseline (planned mode's counts when writes stopped) is what the
    // restore is held to, with or without counts recorded for the copy (RDS
    // records none).
    let at_stop = std::collections::BTreeMap::from([("users".to_owned(), 12)]);
    let mut unrecorded = copies.clone();
    for c in &mut unrecorded {
        c.row_counts = None;
    }
    // (copies, baseline, row counts held to)
    let table = [
        (&copies, None, Some([("users".to_owned(), 10)].into())),
        (&copies, Some(&at_stop), Some(at_stop.clone())),
        (&unrecorded, None, None),
        (&unrecorded, Some(&at_stop), Some(at_stop.clone())),
    ];
    for (copies, baseline, want) in table {
        let chosen =
            choose_copy(copies, "muejam", Some(&named), baseline, now, 21_600.0).expect("a copy");
        assert_eq!(chosen.row_counts, want, "{baseline:?}");
    }
}

#[test]
fn the_input_is_refused_whole_before_anything_is_read() {
    let base = || -> RegionRequest {
        serde_json::from_value(serde_json::json!({
            "database": "muejam",
            "backup_region": "us-west-2",
            "availability_zones": ["us-west-2a", "us-west-2b"],
            "fleet": {"auto_scaling_group": "muejam-dr-app", "desired_capacity": 4},
            "trigger": {"source": "manual", "reason": "us-east-1 is down"}
        }))
        .expect("request")
    };
    assert!(validate_request(&base()).is_ok());
    let mut rehearsal = base();
    rehearsal.mode = RegionMode::Rehearsal;
    rehearsal.fleet = None;
    rehearsal.drill = Some(rehearsal_by());
    rehearsal.trigger.source = crate::plan::TriggerSource::Drill;
    assert!(validate_request(&rehearsal).is_ok());
    type Spoil = fn(&mut RegionRequest);
    let bad: [(&str, Spoil); 14] = [
        ("database", |r| r.database = "Muejam!".into()),
        ("region", |r| r.backup_region = "west".into()),
        ("zone of another region", |r| {
            r.availability_zones = vec!["us-east-1a".into()]
        }),
        ("instance class", |r| {
            r.instance_class = Some("m5.large".into())
        }),
        ("fleet size", |r| {
            if let Some(f) = r.fleet.as_mut() {
                f.desired_capacity = 0
            }
        }),
        ("planned without a key", |r| r.mode = RegionMode::Planned),
        ("approval", |r| r.approval_timeout_seconds = 7200),
        ("poll", |r| r.poll_interval_seconds = 0),
        ("port", |r| r.database_port = 0),
        ("rehearsal by a person", |r| {
            r.mode = RegionMode::Rehearsal;
            r.fleet = None;
            r.drill = Some(rehearsal_by());
        }),
        ("rehearsal without its drill", |r| {
            r.mode = RegionMode::Rehearsal;
            r.fleet = None;
            r.trigger.source = crate::plan::TriggerSource::Drill;
        }),
        ("rehearsal with a fleet", |r| {
            r.mode = RegionMode::Rehearsal;
            r.drill = Some(rehearsal_by());
            r.trigger.source = crate::plan::TriggerSource::Drill;
        }),
        ("a drill failing production over", |r| {
            r.trigger.source = crate::plan::TriggerSource::Drill;
        }),
        ("a drill named outside a rehearsal", |r| {
            r.drill = Some(rehearsal_by());
        }),
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
}

fn rehearsal_by() -> RehearsalBy {
    RehearsalBy {
        drill_id: "drill-20261127".into(),
        source: InstanceId::parse("muejam-db-prod").expect("id"),
    }
}

#[test]
fn a_rehearsal_restores_into_a_drill_instance_named_for_its_drill() {
    let by = rehearsal_by();
    let (restore, replica) = rehearsal_names(&by.source, &by.drill_id).expect("names");
    assert_eq!(restore.as_str(), "drill-muejam-db-prod-drill2026112-region");
    assert_eq!(
        replica.as_str(),
        "drill-muejam-db-prod-drill2026112-region-rep"
    );
    let long = InstanceId::parse(&"a".repeat(63)).expect("id");
    let (restore, replica) = rehearsal_names(&long, &by.drill_id).expect("names");
    assert!(restore.as_str().len() <= 63 && replica.as_str().len() <= 63);
}
