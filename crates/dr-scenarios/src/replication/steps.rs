//! The snapshot-replication steps: source, status, copy, verify, prune,
//! report. Each is idempotent: a retry after success returns the same
//! result and makes nothing new.

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use super::*;
use crate::report::{publish, ReportDocument};
use crate::Ports;

/// What a step says about one snapshot (small: the state carries it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotState {
    pub snapshot_id: SnapshotId,
    pub region: String,
    pub status: SnapshotStatus,
    pub percent_progress: Option<u8>,
    /// When its data was captured.
    pub data_time: DateTime<Utc>,
    pub size_bytes: u64,
}

impl SnapshotState {
    fn of(snapshot: &SnapshotDescription, region: &str) -> Self {
        SnapshotState {
            snapshot_id: snapshot.snapshot_id.clone(),
            region: region.to_owned(),
            status: snapshot.status,
            percent_progress: snapshot.percent_progress,
            data_time: snapshot.data_time(),
            size_bytes: snapshot.size_bytes,
        }
    }

    fn available(&self) -> bool {
        self.status == SnapshotStatus::Available
    }
}

// ----- source ---------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSnapshotInput {
    pub target: ReplicationTarget,
    pub fresh_within_seconds: u64,
    /// When the run started: names the snapshot it may take.
    pub run_started: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSnapshotOutput {
    pub snapshot: SnapshotState,
    /// Whether this run took it (a new snapshot in the primary region).
    pub taken: bool,
    /// Set once the snapshot is available: there is nothing to wait for.
    pub ready: bool,
    /// The name its copy in the backup region has.
    pub copy_id: SnapshotId,
}

/// Chooses (or takes) the snapshot of the primary to copy.
pub async fn source_snapshot(
    ports: &Ports,
    input: SourceSnapshotInput,
) -> DrResult<SourceSnapshotOutput> {
    let target = &input.target;
    let plane = ports.regions.control_plane(&target.source_region)?;
    let taken_id = taken_snapshot_id(&target.primary, input.run_started)?;
    let snapshots = plane.list_snapshots(Some(&target.primary)).await?;
    let choice = choose_source(
        &snapshots,
        &taken_id,
        dr_core::clock::now(),
        input.fresh_within_seconds,
    );
    let (snapshot, taken) = match choice {
        SourceChoice::Use(id) | SourceChoice::Wait(id) => {
            let found = snapshots
                .iter()
                .find(|s| s.snapshot_id == id)
                .cloned()
                .ok_or_else(|| DrError::Internal(format!("snapshot {id} vanished")))?;
            (found, id == taken_id)
        }
        SourceChoice::Take(id) => {
            let mut tags = Tags::new();
            tags.insert(REPLICATION_TAG.to_owned(), target.database.clone());
            let made = plane
                .create_snapshot(&CreateSnapshotRequest {
                    instance_id: target.primary.clone(),
                    snapshot_id: id,
                    tags,
                })
                .await?;
            (made, true)
        }
    };
    let state = SnapshotState::of(&snapshot, &target.source_region);
    Ok(SourceSnapshotOutput {
        ready: state.available(),
        copy_id: copy_id(&snapshot.snapshot_id)?,
        snapshot: state,
        taken,
    })
}

// ----- status ---------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotStatusInput {
    pub region: String,
    pub snapshot_id: SnapshotId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotStatusOutput {
    pub snapshot: SnapshotState,
    pub ready: bool,
    /// Failed for good: waiting longer cannot help.
    pub failed: bool,
}

pub async fn snapshot_status(
    ports: &Ports,
    input: SnapshotStatusInput,
) -> DrResult<SnapshotStatusOutput> {
    let plane = ports.regions.control_plane(&input.region)?;
    let snapshot = plane.describe_snapshot(&input.snapshot_id).await?;
    let state = SnapshotState::of(&snapshot, &input.region);
    Ok(SnapshotStatusOutput {
        ready: state.available(),
        failed: state.status == SnapshotStatus::Failed,
        snapshot: state,
    })
}

// ----- copy -----------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyStepInput {
    pub target: ReplicationTarget,
    pub source_snapshot_id: SnapshotId,
    pub copy_id: SnapshotId,
    pub backup_region: String,
    pub kms_key_id: String,
}

/// Starts (or finds) the copy in the backup region. Called in the backup
/// region, as CopyDBSnapshot must be: Step Functions cannot call another
/// region's RDS itself.
pub async fn copy_snapshot(ports: &Ports, input: CopyStepInput) -> DrResult<SnapshotStatusOutput> {
    if input.copy_id != copy_id(&input.source_snapshot_id)? {
        return Err(DrError::InvalidInput(format!(
            "copy_id {} is not the copy name of {}",
            input.copy_id, input.source_snapshot_id
        )));
    }
    let plane = ports.regions.control_plane(&input.backup_region)?;
    let mut tags = Tags::new();
    tags.insert(COPY_OF_TAG.to_owned(), input.target.database.clone());
    tags.insert(
        "dr:source-region".to_owned(),
        input.target.source_region.clone(),
    );
    let copy = plane
        .copy_snapshot(&CopySnapshotRequest {
            source_snapshot_id: input.source_snapshot_id,
            source_region: input.target.source_region.clone(),
            target_snapshot_id: input.copy_id,
            kms_key_id: input.kms_key_id,
            tags,
        })
        .await?;
    let state = SnapshotState::of(&copy, &input.backup_region);
    Ok(SnapshotStatusOutput {
        ready: state.available(),
        failed: state.status == SnapshotStatus::Failed,
        snapshot: state,
    })
}

// ----- verify ---------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyCopyInput {
    pub target: ReplicationTarget,
    pub source_snapshot_id: SnapshotId,
    pub copy_id: SnapshotId,
    pub backup_region: String,
    pub kms_key_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyCopyOutput {
    pub snapshot: SnapshotState,
    /// What was checked, one line each.
    pub checks: Vec<String>,
    pub verified_at: DateTime<Utc>,
}

/// What a copy must be, judged from its description (pure): available,
/// encrypted with the backup region's key, a copy of the right source, not
/// empty. Returns the checks passed, or the first that failed.
pub fn judge_copy(
    copy: &SnapshotDescription,
    source: &SnapshotId,
    source_region: &str,
    backup_region: &str,
    kms_key_id: &str,
) -> Result<Vec<String>, String> {
    let mut passed = Vec::new();
    if copy.status != SnapshotStatus::Available {
        return Err(format!("the copy is {:?}, not available", copy.status));
    }
    passed.push("available".to_owned());
    if !copy.encrypted {
        return Err("the copy is not encrypted".to_owned());
    }
    match copy.kms_key_id.as_deref() {
        None => return Err("the copy names no encryption key".to_owned()),
        // An ARN (what RDS reports) must be the requested one, or at least
        // a key of the backup region when the request named an alias.
        Some(key) if key.starts_with("arn:") => {
            let region = key.split(':').nth(3).unwrap_or_default();
            let same = key == kms_key_id || !kms_key_id.starts_with("arn:");
            if region != backup_region || !same {
                return Err(format!(
                    "the copy is encrypted with {key}, not with {kms_key_id} of {backup_region}"
                ));
            }
        }
        Some(key) if key != kms_key_id => {
            return Err(format!(
                "the copy is encrypted with {key}, not with {kms_key_id}"
            ))
        }
        Some(_) => {}
    }
    passed.push(format!("encrypted with the {backup_region} key"));
    let from = copy
        .copied_from
        .as_ref()
        .ok_or("the copy names no source")?;
    let names_source = from.snapshot == source.as_str()
        || from
            .snapshot
            .strip_suffix(source.as_str())
            .is_some_and(|prefix| prefix.ends_with(":snapshot:"));
    let region_ok = from.region.as_deref().is_none_or(|r| r == source_region);
    if !names_source || !region_ok {
        return Err(format!(
            "the copy comes from {} ({}), not from {source} ({source_region})",
            from.snapshot,
            from.region.as_deref().unwrap_or("unknown region")
        ));
    }
    passed.push(format!("a copy of {source} from {source_region}"));
    if copy.size_bytes == 0 {
        return Err("the copy is empty".to_owned());
    }
    passed.push(format!("{} bytes", copy.size_bytes));
    Ok(passed)
}

/// Verifies the copy and tags it verified. A copy that fails is `Corrupt`
/// (it pages, and is never chosen: pruning removes it).
pub async fn verify_copy(ports: &Ports, input: VerifyCopyInput) -> DrResult<VerifyCopyOutput> {
    let plane = ports.regions.control_plane(&input.backup_region)?;
    let copy = plane.describe_snapshot(&input.copy_id).await?;
    if copy.tags.get(COPY_OF_TAG) != Some(&input.target.database) {
        return Err(DrError::Unsafe(format!(
            "snapshot {} is not tagged {COPY_OF_TAG}={}: not ours to verify",
            input.copy_id, input.target.database
        )));
    }
    let mut checks = judge_copy(
        &copy,
        &input.source_snapshot_id,
        &input.target.source_region,
        &input.backup_region,
        &input.kms_key_id,
    )
    .map_err(|why| DrError::Corrupt(format!("copy {}: {why}", input.copy_id)))?;
    match plane.verify_snapshot(&input.copy_id).await? {
        SnapshotIntegrity::Verified { detail } => checks.push(detail),
        SnapshotIntegrity::Deferred { reason } => checks.push(reason),
    }
    // A retried verification keeps the first time it passed.
    let verified_at = copy
        .tags
        .get(VERIFIED_TAG)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(dr_core::clock::now);
    let mut tags = Tags::new();
    tags.insert(VERIFIED_TAG.to_owned(), verified_at.to_rfc3339());
    plane.tag_snapshot(&input.copy_id, &tags).await?;
    Ok(VerifyCopyOutput {
        snapshot: SnapshotState::of(&copy, &input.backup_region),
        checks,
        verified_at,
    })
}

// ----- prune and measure ----------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneInput {
    pub database: String,
    pub backup_region: String,
    pub retain: u32,
    pub rpo_seconds: u64,
    /// `false` measures only (after a failed copy: the age still counts).
    #[serde(default = "yes")]
    pub prune: bool,
    #[serde(default = "super::default_namespace")]
    pub namespace: String,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneOutput {
    pub kept: Vec<SnapshotId>,
    pub deleted: Vec<SnapshotId>,
    /// The newest verified copy and its data's age; `None` when there is none.
    pub newest_verified: Option<SnapshotId>,
    pub age_seconds: Option<u64>,
    /// Measured and within the RPO ("not measured" is never within).
    pub within_rpo: bool,
}

/// Prunes the database's copies in the backup region down to the newest
/// `retain` verified ones, then publishes the age of the newest verified
/// copy (`BackupRegionSnapshotAgeSeconds`, which the RPO alarm watches).
pub async fn prune_copies(ports: &Ports, input: PruneInput) -> DrResult<PruneOutput> {
    validate_database_name(&input.database)?;
    validate_namespace(&input.namespace)?;
    if !(1..=MAX_RETAIN).contains(&input.retain) {
        return Err(DrError::InvalidInput(format!(
            "retain must be 1 to {MAX_RETAIN}"
        )));
    }
    let plane = ports.regions.control_plane(&input.backup_region)?;
    let copies = plane.list_snapshots(None).await?;
    let plan = prune_plan(&copies, &input.database, input.retain);
    let mut deleted = Vec::new();
    if input.prune {
        for id in &plan.delete {
            match plane.delete_snapshot(id).await {
                Ok(()) | Err(DrError::NotFound(_)) => deleted.push(id.clone()),
                Err(e) => return Err(e),
            }
        }
    }
    let remaining: Vec<SnapshotDescription> = copies
        .into_iter()
        .filter(|s| !deleted.contains(&s.snapshot_id))
        .collect();
    let now = dr_core::clock::now();
    let newest = newest_verified_age(&remaining, &input.database, now);
    if let Some((_, age)) = &newest {
        ports
            .metrics
            .put(
                &input.namespace,
                &[MetricDatum {
                    name: AGE_METRIC.to_owned(),
                    value: *age as f64,
                    unit: "Seconds".to_owned(),
                    dimensions: [
                        ("Database".to_owned(), input.database.clone()),
                        ("Region".to_owned(), input.backup_region.clone()),
                    ]
                    .into(),
                    timestamp: now,
                }],
            )
            .await?;
    }
    Ok(PruneOutput {
        kept: plan
            .keep
            .into_iter()
            .filter(|k| !deleted.contains(k))
            .collect(),
        deleted,
        within_rpo: newest
            .as_ref()
            .is_some_and(|(_, age)| *age <= input.rpo_seconds),
        newest_verified: newest.as_ref().map(|(id, _)| id.clone()),
        age_seconds: newest.map(|(_, age)| age),
    })
}

// ----- report ---------------------------------------------------------------

/// What the per-database child execution returns (or its failure).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DatabaseResult {
    pub database: String,
    #[serde(default)]
    pub source: Option<SourceSnapshotOutput>,
    #[serde(default)]
    pub copy: Option<SnapshotStatusOutput>,
    #[serde(default)]
    pub verification: Option<VerifyCopyOutput>,
    #[serde(default)]
    pub prune: Option<PruneOutput>,
    /// The error that stopped it (from a Catch: `Error`, `Cause`).
    #[serde(default)]
    pub error: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationReportInput {
    pub topic_arn: String,
    pub execution: crate::report::ExecutionInfo,
    pub plan: ReplicationPlan,
    pub results: Vec<DatabaseResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationReportOutput {
    pub passed: bool,
    /// Databases whose newest verified copy is older than the RPO, or
    /// unmeasured, or whose run failed.
    pub failing: Vec<String>,
    pub json_location: String,
    pub markdown_location: String,
    /// Set when the on-call was paged.
    pub message_id: Option<String>,
}

/// One line per database: what was copied, verified, kept, and its age.
fn database_line(result: &DatabaseResult, rpo_seconds: u64) -> (bool, String) {
    let age = result.prune.as_ref().and_then(|p| p.age_seconds);
    let within = result.prune.as_ref().is_some_and(|p| p.within_rpo);
    let ok = within && result.error.is_none();
    let mut line = format!(
        "- **{}**: {}",
        result.database,
        if ok { "ready" } else { "NOT READY" }
    );
    if let Some(source) = &result.source {
        line.push_str(&format!(
            "; source {} ({}{})",
            source.snapshot.snapshot_id,
            source.snapshot.data_time.to_rfc3339(),
            if source.taken {
                ", taken by this run"
            } else {
                ""
            }
        ));
    }
    if let Some(copy) = &result.verification {
        line.push_str(&format!("; copy {} verified", copy.snapshot.snapshot_id));
    }
    match age {
        Some(age) => line.push_str(&format!(
            "; newest verified copy is {age} s old (RPO {rpo_seconds} s{})",
            if age <= rpo_seconds { "" } else { ": MISSED" }
        )),
        None => line.push_str("; no verified copy in the backup region: RPO not measured, not met"),
    }
    if let Some(prune) = &result.prune {
        if !prune.deleted.is_empty() {
            line.push_str(&format!("; pruned {}", prune.deleted.len()));
        }
    }
    if let Some(error) = &result.error {
        let name = error["Error"].as_str().unwrap_or("error");
        let cause = crate::details::short_cause(error["Cause"].as_str().unwrap_or_default());
        line.push_str(&format!("; failed: {name}: {cause}"));
    }
    (ok, line)
}

/// Keeps the run's report; pages only when a database is not ready (a run
/// every few hours that always mailed would teach people to ignore it).
pub async fn replication_report(
    ports: &Ports,
    input: ReplicationReportInput,
) -> DrResult<ReplicationReportOutput> {
    let mut failing = Vec::new();
    let mut lines = Vec::new();
    for result in &input.results {
        let (ok, line) = database_line(result, input.plan.rpo_seconds);
        if !ok {
            failing.push(result.database.clone());
        }
        lines.push(line);
    }
    for target in &input.plan.databases {
        if !input.results.iter().any(|r| r.database == target.database) {
            failing.push(target.database.clone());
            lines.push(format!(
                "- **{}**: NOT READY; its run left no result",
                target.database
            ));
        }
    }
    let passed = failing.is_empty();
    let headline = if passed {
        format!(
            "Backup region {} holds a verified copy within the RPO for every database",
            input.plan.backup_region
        )
    } else {
        format!(
            "Backup region {} is NOT ready for {}",
            input.plan.backup_region,
            failing.join(", ")
        )
    };
    let markdown = format!(
        "# Snapshot replication: {headline}\n\nExecution `{}`, started {}; copies to {} encrypted with `{}`, {} kept per database.\n\n{}\n",
        input.execution.name,
        input.execution.start_time.to_rfc3339(),
        input.plan.backup_region,
        input.plan.kms_key_id,
        input.plan.retain,
        lines.join("\n")
    );
    let json = serde_json::to_vec_pretty(&serde_json::json!({
        "scenario": "snapshot-replication",
        "execution": input.execution.name,
        "started_at": input.execution.start_time,
        "passed": passed,
        "failing": failing,
        "plan": input.plan,
        "results": input.results,
    }))
    .map_err(|e| DrError::Internal(format!("serializing the report: {e}")))?;
    let subject = format!("[MueJam DR] {headline}");
    let subject: String = subject.chars().take(99).collect();
    let published = publish(
        ports,
        &ReportDocument {
            scenario: "snapshot-replication",
            started_at: input.execution.start_time,
            execution_name: &input.execution.name,
            json: &json,
            markdown: &markdown,
            passed,
        },
        (!passed).then_some(input.topic_arn.as_str()),
        subject,
    )
    .await?;
    Ok(ReplicationReportOutput {
        passed,
        failing,
        json_location: published.json_location,
        markdown_location: published.markdown_location,
        message_id: published.message_id,
    })
}
