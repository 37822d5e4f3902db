//! Backup verification and the restore test: the newest snapshot, restored
//! into a throw-away instance and checked.

use super::*;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBackupInput {
    pub instance_id: InstanceId,
    #[serde(default = "default_rpo")]
    pub max_age_seconds: f64,
    /// When the drill began: the age is what a recovery starting then
    /// would have had, not stretched by the drill's own earlier databases
    /// (the second of a batch starts hours after the first).
    #[serde(default)]
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
}

/// Pure: a backup's age in seconds at `as_of` (the drill's start), or at
/// `now` for a backup taken since then or when no start is known.
pub fn backup_age_seconds(
    created_at: chrono::DateTime<chrono::Utc>,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> f64 {
    let reference = as_of.filter(|a| *a >= created_at).unwrap_or(now);
    (reference - created_at).num_milliseconds() as f64 / 1000.0
}

pub(crate) fn default_rpo() -> f64 {
    crate::report::RPO_OBJECTIVE_SECONDS
}

/// Newest snapshot: exists, encrypted, younger than the RPO, intact.
/// Findings are a FAILED result, not an error; errors are for outages.
pub async fn verify_backup(ports: &Ports, input: VerifyBackupInput) -> DrResult<TestResult> {
    let started = Stopwatch::start();
    let name = "backup_verification";
    let snapshots = ports
        .control_plane
        .list_snapshots(Some(&input.instance_id))
        .await?;
    let Some(newest) = snapshots
        .into_iter()
        .find(|s| s.status == SnapshotStatus::Available)
    else {
        return Ok(TestResult::new(
            name,
            TestStatus::Failed,
            Some(format!("{} has no available snapshot", input.instance_id)),
            started,
            json!({}),
        ));
    };
    let age_seconds = backup_age_seconds(newest.created_at, input.as_of, dr_core::clock::now());
    let mut details = json!({
        "snapshot_id": newest.snapshot_id,
        "created_at": newest.created_at,
        "age_seconds": age_seconds,
        "encrypted": newest.encrypted,
        "size_bytes": newest.size_bytes,
    });
    let mut problems = Vec::new();
    if !newest.encrypted {
        problems.push(format!("snapshot {} is not encrypted", newest.snapshot_id));
    }
    if age_seconds > input.max_age_seconds {
        problems.push(format!(
            "the newest snapshot is {:.1} h old, older than the RPO of {:.1} h",
            age_seconds / 3600.0,
            input.max_age_seconds / 3600.0
        ));
    }
    match ports
        .control_plane
        .verify_snapshot(&newest.snapshot_id)
        .await
    {
        Ok(SnapshotIntegrity::Verified { detail }) => details["integrity"] = json!(detail),
        Ok(SnapshotIntegrity::Deferred { reason }) => details["integrity"] = json!(reason),
        Err(DrError::Corrupt(why)) => problems.push(why),
        Err(e) => return Err(e),
    }
    Ok(TestResult::from_problems(name, &problems, started, details))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRestoreInput {
    pub database: InstanceId,
    pub snapshot_id: SnapshotId,
    pub drill_id: String,
    #[serde(default)]
    pub instance_class: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StartRestoreOutput {
    pub restore_instance_id: InstanceId,
    pub replica_instance_id: InstanceId,
    pub snapshot_id: SnapshotId,
    pub status: String,
    pub started_at: DateTime<Utc>,
}

/// Restores the snapshot into the drill's throw-away instance (idempotent).
pub async fn start_restore(
    ports: &Ports,
    input: StartRestoreInput,
) -> DrResult<StartRestoreOutput> {
    let (restore, replica) = drill_names(&input.database, &input.drill_id)?;
    let started_at = dr_core::clock::now();
    // The restore goes where the database is (its subnet group, security
    // groups, parameters), so the drill's SQL checks can reach it.
    let network = ports
        .control_plane
        .describe_instance(&input.database)
        .await?
        .network;
    let restored = ports
        .control_plane
        .restore_from_snapshot(&RestoreSnapshotRequest {
            network,
            snapshot_id: input.snapshot_id.clone(),
            target_id: restore.clone(),
            instance_class: input.instance_class,
            tags: drill_tags(&input.drill_id, &input.database),
        })
        .await?;
    Ok(StartRestoreOutput {
        restore_instance_id: restore,
        replica_instance_id: replica,
        snapshot_id: input.snapshot_id,
        status: restored.status.to_string(),
        started_at,
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreCheckInput {
    pub drill_id: String,
    pub restore_instance_id: InstanceId,
    pub snapshot_id: SnapshotId,
    pub credentials_secret_id: String,
    #[serde(default = "default_database")]
    pub database: String,
    /// When the restore started (the restore time runs from here).
    pub started_at: DateTime<Utc>,
    /// Allowed relative difference of row counts (0 = exact).
    #[serde(default)]
    pub row_count_tolerance: f64,
}

pub(crate) fn default_database() -> String {
    "muejam".to_owned()
}

/// Connects to the restored instance, runs the integrity checks and compares
/// row counts with the source at snapshot time.
pub async fn restore_check(ports: &Ports, input: RestoreCheckInput) -> DrResult<TestResult> {
    let started = Stopwatch::start();
    let name = "restore_test";
    let described = ports
        .control_plane
        .describe_instance(&input.restore_instance_id)
        .await?;
    ensure_drill_resource(&described, &input.drill_id)?;
    let restore_seconds =
        (dr_core::clock::now() - input.started_at).num_milliseconds() as f64 / 1000.0;
    let endpoint = described.endpoint.clone().ok_or_else(|| {
        DrError::NotReady(format!("{} has no endpoint", input.restore_instance_id))
    })?;
    let target = target_for(
        ports,
        &SqlAccess {
            endpoint: &endpoint,
            database: &input.database,
            secret_id: &input.credentials_secret_id,
            connect_timeout_seconds: 5,
            statement_timeout_ms: 60_000,
            tls_mode: None,
        },
    )
    .await?;
    // A backup taken before a rotation holds the old master password.
    crate::restored::align_passwords(ports, None, &described, &target, None).await?;
    let mut problems = Vec::new();
    let probe = ports.sql.probe(&target, ProbeKind::ReadWrite).await?;
    if !probe.healthy {
        problems.push(format!(
            "cannot use the restored database: {}",
            probe.reason.unwrap_or_default()
        ));
    }
    let mut details = json!({"restore_seconds": restore_seconds, "restore_instance_id": input.restore_instance_id});
    if probe.healthy {
        // The source's row counts when the snapshot was taken, where the
        // platform records them: the restore must hold exactly those rows.
        let expected = ports
            .control_plane
            .list_snapshots(None)
            .await?
            .into_iter()
            .find(|s| s.snapshot_id == input.snapshot_id)
            .and_then(|s| s.row_counts);
        let summary = ports
            .integrity
            .verify(&target, expected.as_ref(), input.row_count_tolerance, &[])
            .await?;
        problems.extend(summary.findings.iter().cloned());
        details["integrity_checks_run"] = json!(summary.checks_run);
        details["integrity_ms"] = json!(summary.duration_ms);
        details["row_counts_compared"] = match &expected {
            Some(e) => json!(e.len()),
            None => json!("the platform records no counts at snapshot time"),
        };
        details["row_counts"] = json!(summary.row_counts);
    }
    let mut result = TestResult::from_problems(name, &problems, started, details);
    // The restore test takes from the restore's start to the end of its checks.
    result.duration_seconds =
        (dr_core::clock::now() - input.started_at).num_milliseconds() as f64 / 1000.0;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backups_age_is_taken_at_the_drills_start_unless_it_is_newer() {
        let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().expect("time");
        let created = t("2026-11-29T00:00:00Z");
        let start = t("2026-11-29T02:00:00Z");
        let now = t("2026-11-29T07:00:00Z");
        let cases = [
            (Some(start), created, 7200.0, "as the drill began"),
            (None, created, 25_200.0, "no start known: now"),
            (
                Some(start),
                t("2026-11-29T03:00:00Z"),
                14_400.0,
                "taken since: now",
            ),
        ];
        for (as_of, created, expected, what) in cases {
            assert_eq!(backup_age_seconds(created, as_of, now), expected, "{what}");
        }
    }
}
