//! Runbook "Testing Procedures": the quarterly DR drill. Every resource it
//! makes is named `drill-…` and tagged `ephemeral=true` and `dr:drill=<id>`;
//! it changes nothing else, and it cleans up on every path.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::failover::{target_for, SqlAccess};
use crate::Ports;

pub const DRILL_TAG: &str = "dr:drill";
pub const DRILL_SOURCE_TAG: &str = "dr:drill-source";
pub const DRILL_PREFIX: &str = "drill-";
/// Instances tagged `DrDrill=in-scope` are drilled when no list is given.
pub const SCOPE_TAG: (&str, &str) = ("DrDrill", "in-scope");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TestStatus {
    Successful,
    Failed,
    TimedOut,
    Skipped,
}

/// One test of the drill, as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    pub name: String,
    pub status: TestStatus,
    pub reason: Option<String>,
    pub duration_seconds: f64,
    #[serde(default)]
    pub details: Value,
}

impl TestResult {
    /// SUCCESSFUL without problems, FAILED with them all as the reason.
    fn from_problems(name: &str, problems: &[String], started: Instant, details: Value) -> Self {
        let status = if problems.is_empty() {
            TestStatus::Successful
        } else {
            TestStatus::Failed
        };
        Self::new(
            name,
            status,
            (!problems.is_empty()).then(|| problems.join("; ")),
            started,
            details,
        )
    }

    fn new(
        name: &str,
        status: TestStatus,
        reason: Option<String>,
        started: Instant,
        details: Value,
    ) -> Self {
        TestResult {
            name: name.to_owned(),
            status,
            reason,
            duration_seconds: started.elapsed().as_secs_f64(),
            details,
        }
    }
}

/// A drill id usable inside an RDS identifier: lowercase letters and digits.
pub fn short_drill_id(drill_id: &str) -> String {
    let cleaned: String = drill_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    cleaned.chars().take(12).collect()
}

/// The throw-away instance names of a drill for one database.
pub fn drill_names(database: &InstanceId, drill_id: &str) -> DrResult<(InstanceId, InstanceId)> {
    let short = short_drill_id(drill_id);
    if short.is_empty() {
        return Err(DrError::InvalidInput(
            "drill_id needs letters or digits".to_owned(),
        ));
    }
    let base: String = database
        .as_str()
        .chars()
        .take(63 - DRILL_PREFIX.len() - short.len() - 10)
        .collect();
    let base = base.trim_end_matches('-');
    let restore = ResourceId::parse_instance(&format!("{DRILL_PREFIX}{base}-{short}"))?;
    let replica = ResourceId::parse_instance(&format!("{DRILL_PREFIX}{base}-{short}-rep"))?;
    Ok((restore, replica))
}

fn drill_tags(drill_id: &str, database: &InstanceId) -> Tags {
    BTreeMap::from([
        (EPHEMERAL_TAG.to_owned(), "true".to_owned()),
        (DRILL_TAG.to_owned(), drill_id.to_owned()),
        (DRILL_SOURCE_TAG.to_owned(), database.to_string()),
        ("CreatedBy".to_owned(), "muejam-dr-drill".to_owned()),
    ])
}

/// A drill may act only on what it made: named `drill-…`, tagged ephemeral
/// and with its own drill id.
fn ensure_drill_resource(description: &InstanceDescription, drill_id: &str) -> DrResult<()> {
    let ours = description.instance_id.as_str().starts_with(DRILL_PREFIX)
        && description.is_ephemeral()
        && description.tags.get(DRILL_TAG).map(String::as_str) == Some(drill_id);
    if ours {
        Ok(())
    } else {
        Err(DrError::Unsafe(format!(
            "{} was not made by drill {drill_id}; a drill only touches its own drill-… instances",
            description.instance_id
        )))
    }
}

// ----- scope ---------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillScopeInput {
    /// Databases to drill; when absent, every instance tagged DrDrill=in-scope.
    #[serde(default)]
    pub databases: Option<Vec<InstanceId>>,
    /// The drill's whole execution input, checked before anything is
    /// created (its `databases` is the scope).
    #[serde(default)]
    pub request: Option<DrillRequest>,
}

/// The drill's execution input (`events/dr-drill.json`); every later step
/// reads it, so all of it is checked by the first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillRequest {
    #[serde(default)]
    pub databases: Option<Vec<InstanceId>>,
    pub credentials_secret_id: String,
    pub database: String,
    pub max_backup_age_seconds: Option<f64>,
    pub restore_instance_class: Option<String>,
    pub availability_zones: Vec<String>,
    pub row_count_tolerance: f64,
    pub poll_interval_seconds: u64,
    pub runbook_last_updated: Option<String>,
}

impl DrillRequest {
    /// Ranges and lengths, before anything is created. Pure.
    pub fn check(&self) -> DrResult<()> {
        let bad = |what: String| Err(DrError::InvalidInput(format!("dr-drill input: {what}")));
        if self.credentials_secret_id.is_empty() || self.credentials_secret_id.len() > 2048 {
            return bad("credentials_secret_id must be 1 to 2048 characters".to_owned());
        }
        if self.database.is_empty()
            || self.database.len() > 63
            || !self
                .database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return bad("database must be 1 to 63 letters, digits or underscores".to_owned());
        }
        if let Some(age) = self.max_backup_age_seconds {
            if !age.is_finite() || age <= 0.0 || age > 30.0 * 86_400.0 {
                return bad("max_backup_age_seconds must be positive, at most 30 days".to_owned());
            }
        }
        if let Some(class) = &self.restore_instance_class {
            if !class.starts_with("db.") || class.len() > 64 {
                return bad(format!(
                    "restore_instance_class {:?} is not an instance class (db.…)",
                    shorten(class)
                ));
            }
        }
        if self.availability_zones.len() > 16
            || self
                .availability_zones
                .iter()
                .any(|z| z.is_empty() || z.len() > 64)
        {
            return bad(
                "availability_zones: at most 16 zone names of 1 to 64 characters".to_owned(),
            );
        }
        if !self.row_count_tolerance.is_finite() || !(0.0..=1.0).contains(&self.row_count_tolerance)
        {
            return bad("row_count_tolerance must be between 0 and 1".to_owned());
        }
        if !(1..=300).contains(&self.poll_interval_seconds) {
            return bad("poll_interval_seconds must be between 1 and 300".to_owned());
        }
        if let Some(date) = &self.runbook_last_updated {
            if chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err() {
                return bad(format!(
                    "runbook_last_updated {:?} is not a date (YYYY-MM-DD)",
                    shorten(date)
                ));
            }
        }
        if self
            .databases
            .as_ref()
            .is_some_and(|d| d.len() > MAX_DATABASES)
        {
            return bad(format!(
                "databases: at most {MAX_DATABASES} per drill (run several drills for more)"
            ));
        }
        Ok(())
    }
}

/// The most databases one drill takes: with two at a time, the drill's
/// worst case stays within its TimeoutSeconds (see `scripts/test`'s
/// worst-case table).
pub const MAX_DATABASES: usize = 4;
/// The most polls of any wait loop: with the rest of a database's drill,
/// its history stays under 20,000 events whatever the interval.
pub const MAX_POLLS: u64 = 240;
/// How long a restore from a snapshot may take before the drill calls it
/// timed out.
pub const RESTORE_WAIT_SECONDS: u64 = 3 * 3600;
/// How long the drill replica may take to become available.
pub const REPLICA_WAIT_SECONDS: u64 = 3600;
/// How long the drill replica's promotion may take.
pub const PROMOTION_WAIT_SECONDS: u64 = 1800;
/// How many times (once a second) the marker's replication is checked.
pub const MARKER_POLLS: u64 = 120;
/// The interval when the scope is asked without a request.
const DEFAULT_POLL_INTERVAL_SECONDS: u64 = 15;

/// How many polls each wait of a database's drill may take: the wait's
/// time budget at the request's interval, never more than `MAX_POLLS`.
/// The wait loops compare their counters with these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollLimits {
    pub restore_polls: u64,
    pub replica_polls: u64,
    pub promotion_polls: u64,
    pub marker_polls: u64,
}

/// Pure: the poll limits at an interval (seconds, at least 1).
pub fn poll_limits(interval_seconds: u64) -> PollLimits {
    let polls = |budget: u64| budget.div_ceil(interval_seconds.max(1)).min(MAX_POLLS);
    PollLimits {
        restore_polls: polls(RESTORE_WAIT_SECONDS),
        replica_polls: polls(REPLICA_WAIT_SECONDS),
        promotion_polls: polls(PROMOTION_WAIT_SECONDS),
        marker_polls: MARKER_POLLS,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillScopeOutput {
    pub databases: Vec<InstanceId>,
    pub limits: PollLimits,
}

pub async fn drill_scope(ports: &Ports, input: DrillScopeInput) -> DrResult<DrillScopeOutput> {
    if let Some(request) = &input.request {
        request.check()?;
    }
    let limits = poll_limits(
        input
            .request
            .as_ref()
            .map_or(DEFAULT_POLL_INTERVAL_SECONDS, |r| r.poll_interval_seconds),
    );
    let listed = input.request.and_then(|r| r.databases).or(input.databases);
    let databases = match listed {
        Some(list) => list,
        None => ports
            .control_plane
            .list_instances()
            .await?
            .into_iter()
            .filter(|i| i.tags.get(SCOPE_TAG.0).map(String::as_str) == Some(SCOPE_TAG.1))
            .map(|i| i.instance_id)
            .collect(),
    };
    if databases.is_empty() {
        return Err(DrError::InvalidInput(format!(
            "no database in scope: list them in \"databases\" or tag them {}={}",
            SCOPE_TAG.0, SCOPE_TAG.1
        )));
    }
    if let Some(drill_instance) = databases
        .iter()
        .find(|d| d.as_str().starts_with(DRILL_PREFIX))
    {
        return Err(DrError::InvalidInput(format!(
            "{drill_instance} is a drill instance, not a database to drill"
        )));
    }
    if databases.len() > MAX_DATABASES {
        return Err(DrError::InvalidInput(format!(
            "{} databases are in scope, at most {MAX_DATABASES} per drill: list some in \"databases\" and run several drills",
            databases.len()
        )));
    }
    Ok(DrillScopeOutput { databases, limits })
}

// ----- backup verification --------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBackupInput {
    pub instance_id: InstanceId,
    #[serde(default = "default_rpo")]
    pub max_age_seconds: f64,
}

fn default_rpo() -> f64 {
    crate::report::RPO_OBJECTIVE_SECONDS
}

/// Newest snapshot: exists, encrypted, younger than the RPO, intact.
/// Findings are a FAILED result, not an error; errors are for outages.
pub async fn verify_backup(ports: &Ports, input: VerifyBackupInput) -> DrResult<TestResult> {
    let started = Instant::now();
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
    let age_seconds = (Utc::now() - newest.created_at).num_milliseconds() as f64 / 1000.0;
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

// ----- restore test ---------------------------------------------------------

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
    let started_at = Utc::now();
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

fn default_database() -> String {
    "muejam".to_owned()
}

/// Connects to the restored instance, runs the integrity checks and compares
/// row counts with the source at snapshot time.
pub async fn restore_check(ports: &Ports, input: RestoreCheckInput) -> DrResult<TestResult> {
    let started = Instant::now();
    let name = "restore_test";
    let described = ports
        .control_plane
        .describe_instance(&input.restore_instance_id)
        .await?;
    ensure_drill_resource(&described, &input.drill_id)?;
    let restore_seconds = (Utc::now() - input.started_at).num_milliseconds() as f64 / 1000.0;
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
            .verify(&target, expected.as_ref(), input.row_count_tolerance)
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
    result.duration_seconds = (Utc::now() - input.started_at).num_milliseconds() as f64 / 1000.0;
    Ok(result)
}

// ----- failover test --------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillReplicaInput {
    pub drill_id: String,
    pub database: InstanceId,
    pub restore_instance_id: InstanceId,
    pub replica_instance_id: InstanceId,
    #[serde(default)]
    pub availability_zones: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillReplicaOutput {
    pub replica_instance_id: InstanceId,
    pub status: String,
}

/// A throw-away replica of the throw-away restore: the failover test never
/// touches production.
pub async fn drill_replica(
    ports: &Ports,
    input: DrillReplicaInput,
) -> DrResult<DrillReplicaOutput> {
    let source = ports
        .control_plane
        .describe_instance(&input.restore_instance_id)
        .await?;
    ensure_drill_resource(&source, &input.drill_id)?;
    if !input.replica_instance_id.as_str().starts_with(DRILL_PREFIX) {
        return Err(DrError::Unsafe(format!(
            "{} is not a drill name",
            input.replica_instance_id
        )));
    }
    let zone = crate::failover::other_zone(
        source.availability_zone.as_deref(),
        &input.availability_zones,
    );
    let replica = ports
        .control_plane
        .create_read_replica(&CreateReplicaRequest {
            network: source.network.clone(),
            replica_id: input.replica_instance_id.clone(),
            source_id: input.restore_instance_id.clone(),
            availability_zone: zone,
            tags: drill_tags(&input.drill_id, &input.database),
        })
        .await?;
    Ok(DrillReplicaOutput {
        replica_instance_id: replica.instance_id,
        status: replica.status.to_string(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerAction {
    /// Write the marker on the throw-away primary.
    Write,
    /// Is the marker there yet (on the replica, before promotion)?
    Check,
    /// After promotion: the failover test's result (rows lost, promotion time).
    Verify,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillMarkerInput {
    pub action: MarkerAction,
    pub drill_id: String,
    pub instance_id: InstanceId,
    pub credentials_secret_id: String,
    #[serde(default = "default_database")]
    pub database: String,
    /// For `verify`: when the promotion started.
    #[serde(default)]
    pub promoted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillMarkerOutput {
    pub instance_id: InstanceId,
    pub present: bool,
    pub written_at: Option<DateTime<Utc>>,
}

/// Writes the drill's marker row on the throw-away primary, or checks
/// whether it is on an instance (replicated, survived promotion).
pub async fn drill_marker(ports: &Ports, input: DrillMarkerInput) -> DrResult<Value> {
    let started = Instant::now();
    let described = ports
        .control_plane
        .describe_instance(&input.instance_id)
        .await?;
    ensure_drill_resource(&described, &input.drill_id)?;
    let endpoint = described
        .endpoint
        .ok_or_else(|| DrError::NotReady(format!("{} has no endpoint", input.instance_id)))?;
    let target = target_for(
        ports,
        &SqlAccess {
            endpoint: &endpoint,
            database: &input.database,
            secret_id: &input.credentials_secret_id,
            connect_timeout_seconds: 5,
            statement_timeout_ms: 10_000,
            tls_mode: None,
        },
    )
    .await?;
    let marker = format!("drill:{}", input.drill_id);
    let output = match input.action {
        MarkerAction::Write => {
            let at = ports.sql.write_marker(&target, &marker).await?;
            json!(DrillMarkerOutput {
                instance_id: input.instance_id,
                present: true,
                written_at: Some(at)
            })
        }
        MarkerAction::Check => {
            let present = ports.sql.marker_present(&target, &marker).await?;
            json!(DrillMarkerOutput {
                instance_id: input.instance_id,
                present,
                written_at: None
            })
        }
        MarkerAction::Verify => {
            if described.replication_source.is_some() {
                return Err(DrError::NotReady(format!(
                    "{} is not promoted yet",
                    input.instance_id
                )));
            }
            let present = ports.sql.marker_present(&target, &marker).await?;
            let promotion_seconds = input
                .promoted_at
                .map(|at| (Utc::now() - at).num_milliseconds() as f64 / 1000.0);
            let mut result = TestResult::new(
                "failover_test",
                if present {
                    TestStatus::Successful
                } else {
                    TestStatus::Failed
                },
                (!present).then(|| {
                    "the marker row written before the promotion is missing: rows were lost"
                        .to_owned()
                }),
                started,
                json!({"rows_lost": if present { 0 } else { 1 }, "promotion_seconds": promotion_seconds}),
            );
            if let Some(seconds) = promotion_seconds {
                result.duration_seconds = seconds;
            }
            json!(result)
        }
    };
    Ok(output)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillPromoteInput {
    pub drill_id: String,
    pub replica_instance_id: InstanceId,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillPromoteOutput {
    pub instance_id: InstanceId,
    pub promoted_at: DateTime<Utc>,
    pub lag_at_promotion_seconds: Option<f64>,
}

/// Promotes the drill's own replica (and nothing else).
pub async fn drill_promote(
    ports: &Ports,
    input: DrillPromoteInput,
) -> DrResult<DrillPromoteOutput> {
    let described = ports
        .control_plane
        .describe_instance(&input.replica_instance_id)
        .await?;
    ensure_drill_resource(&described, &input.drill_id)?;
    let promoted_at = Utc::now();
    let outcome = ports
        .control_plane
        .promote_read_replica(&input.replica_instance_id)
        .await?;
    Ok(DrillPromoteOutput {
        instance_id: input.replica_instance_id,
        promoted_at,
        lag_at_promotion_seconds: outcome.lag_at_promotion.map(|l| l.seconds),
    })
}

// ----- cleanup -------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillCleanupInput {
    pub drill_id: String,
    /// Only this database's drill resources; all of the drill's when absent.
    #[serde(default)]
    pub database: Option<InstanceId>,
    /// Instead: remove what earlier drills left behind (a drill whose
    /// execution was killed, timed out or failed before its own cleanup).
    /// `execution_arn` is this drill's: an earlier drill's is the same with
    /// its own name.
    #[serde(default)]
    pub sweep_earlier: bool,
    #[serde(default)]
    pub execution_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillCleanupOutput {
    pub deleted: Vec<InstanceId>,
    /// Drill instances still there (and not being deleted) afterwards.
    pub remaining: Vec<InstanceId>,
    pub clean: bool,
}

/// Deletes every instance this drill made (replicas first), then checks that
/// none is left. Idempotent; refuses nothing it made and touches nothing else.
pub async fn drill_cleanup(
    ports: &Ports,
    input: DrillCleanupInput,
) -> DrResult<DrillCleanupOutput> {
    if input.sweep_earlier {
        return sweep_earlier_drills(ports, &input).await;
    }
    cleanup_drill(ports, &input.drill_id, input.database.as_ref()).await
}

/// The ARN of another execution of the same state machine.
fn sibling_execution(execution_arn: &str, name: &str) -> Option<String> {
    let (machine, _) = execution_arn.rsplit_once(':')?;
    machine
        .contains(":execution:")
        .then(|| format!("{machine}:{name}"))
}

/// Removes the leftovers of earlier drills whose executions are no longer
/// running (killed, timed out, failed before their cleanup): only drill
/// instances those drills made themselves, each with the same care as the
/// drill's own cleanup. A drill that still runs is left alone.
async fn sweep_earlier_drills(
    ports: &Ports,
    input: &DrillCleanupInput,
) -> DrResult<DrillCleanupOutput> {
    let execution_arn = input
        .execution_arn
        .as_deref()
        .ok_or_else(|| DrError::InvalidInput("sweep_earlier needs execution_arn".to_owned()))?;
    let earlier: std::collections::BTreeSet<String> = ports
        .control_plane
        .list_instances()
        .await?
        .into_iter()
        .filter_map(|i| i.tags.get(DRILL_TAG).cloned())
        .filter(|id| id != &input.drill_id)
        .collect();
    let mut deleted = Vec::new();
    let mut remaining = Vec::new();
    for drill in earlier {
        let running = match sibling_execution(execution_arn, &drill) {
            Some(arn) => ports.executions.state(&arn).await? == Some(ExecutionState::Running),
            None => false,
        };
        if running {
            tracing::info!(drill = %drill, "an earlier drill still runs: its instances are left alone");
            continue;
        }
        let cleaned = cleanup_drill(ports, &drill, None).await?;
        deleted.extend(cleaned.deleted);
        remaining.extend(cleaned.remaining);
    }
    Ok(DrillCleanupOutput {
        clean: remaining.is_empty(),
        deleted,
        remaining,
    })
}

async fn cleanup_drill(
    ports: &Ports,
    drill_id: &str,
    database: Option<&InstanceId>,
) -> DrResult<DrillCleanupOutput> {
    let input = DrillCleanupInput {
        drill_id: drill_id.to_owned(),
        database: database.cloned(),
        sweep_earlier: false,
        execution_arn: None,
    };
    let ours = |i: &InstanceDescription| {
        i.tags.get(DRILL_TAG).map(String::as_str) == Some(input.drill_id.as_str())
            && input.database.as_ref().is_none_or(|d| {
                i.tags.get(DRILL_SOURCE_TAG).map(String::as_str) == Some(d.as_str())
            })
    };
    let mut targets: Vec<InstanceDescription> = ports
        .control_plane
        .list_instances()
        .await?
        .into_iter()
        .filter(ours)
        .collect();
    // Replicas before their sources, as RDS requires nothing of the sort but
    // a source deleted first would leave its replica reporting a dead source.
    targets.sort_by_key(|i| i.replication_source.is_none());
    let mut deleted = Vec::new();
    for instance in &targets {
        if ensure_drill_resource(instance, &input.drill_id).is_err() {
            // Tagged with our drill id but not made by us (not drill-…, or
            // not ephemeral): leave it, and it shows as remaining.
            continue;
        }
        match ports
            .control_plane
            .delete_instance(&instance.instance_id, DeleteOptions::default())
            .await
        {
            Ok(()) | Err(DrError::NotFound(_)) => deleted.push(instance.instance_id.clone()),
            Err(e) => return Err(e),
        }
    }
    let remaining: Vec<InstanceId> = ports
        .control_plane
        .list_instances()
        .await?
        .into_iter()
        .filter(|i| ours(i) && i.status != InstanceStatus::Deleting)
        .map(|i| i.instance_id)
        .collect();
    Ok(DrillCleanupOutput {
        clean: remaining.is_empty(),
        deleted,
        remaining,
    })
}

// ----- runbook review ---------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookReviewInput {
    pub topic_arn: String,
    /// The runbook's "Last Updated" date (YYYY-MM-DD), when known.
    #[serde(default)]
    pub runbook_last_updated: Option<String>,
    #[serde(default = "default_review_days")]
    pub max_age_days: i64,
}

fn default_review_days() -> i64 {
    92
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunbookReviewOutput {
    pub items: Vec<TestResult>,
    /// What a person still has to review.
    pub manual: Vec<String>,
}

pub async fn runbook_review(
    ports: &Ports,
    input: RunbookReviewInput,
) -> DrResult<RunbookReviewOutput> {
    let mut items = Vec::new();
    let started = Instant::now();
    let counts = ports.notifier.subscriptions(&input.topic_arn).await?;
    items.push(TestResult::new(
        "alerts_topic_has_a_confirmed_subscriber",
        if counts.confirmed > 0 {
            TestStatus::Successful
        } else {
            TestStatus::Failed
        },
        (counts.confirmed == 0).then(|| {
            format!(
                "{} has no confirmed subscription ({} pending): alerts reach nobody",
                input.topic_arn, counts.pending
            )
        }),
        started,
        json!({"confirmed": counts.confirmed, "pending": counts.pending}),
    ));
    let started = Instant::now();
    items.push(match &input.runbook_last_updated {
        None => TestResult::new(
            "runbook_reviewed_within_three_months",
            TestStatus::Skipped,
            Some("no runbook_last_updated given".to_owned()),
            started,
            json!({}),
        ),
        Some(date) => {
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
                DrError::InvalidInput(format!("runbook_last_updated {date:?} is not YYYY-MM-DD"))
            })?;
            let age = (Utc::now().date_naive() - date).num_days();
            TestResult::new(
                "runbook_reviewed_within_three_months",
                if age <= input.max_age_days {
                    TestStatus::Successful
                } else {
                    TestStatus::Failed
                },
                (age > input.max_age_days)
                    .then(|| format!("the runbook was last updated {age} days ago")),
                started,
                json!({"last_updated": date, "age_days": age}),
            )
        }
    });
    Ok(RunbookReviewOutput {
        items,
        manual: vec![
            "Verify the emergency contacts and escalation path (phone numbers, PagerDuty handles)"
                .to_owned(),
            "Review the runbook procedures against this drill's findings and update them"
                .to_owned(),
            "Confirm the external contacts (AWS Support plan, Clerk, Resend) are current"
                .to_owned(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drill_names_are_valid_rds_identifiers_that_say_drill() {
        let db = ResourceId::parse_instance("muejam-db-prod").expect("id");
        let (restore, replica) =
            drill_names(&db, "3F2A-91c4-7b7e-4d8f-aa00-1234567890ab").expect("names");
        assert_eq!(restore.as_str(), "drill-muejam-db-prod-3f2a91c47b7e");
        assert_eq!(replica.as_str(), "drill-muejam-db-prod-3f2a91c47b7e-rep");
        let long = ResourceId::parse_instance(&"a".repeat(63)).expect("id");
        let (restore, replica) = drill_names(&long, "run").expect("names");
        assert!(restore.as_str().len() <= 63 && replica.as_str().len() <= 63);
        assert!(drill_names(&db, "---").is_err());
    }

    #[test]
    fn poll_limits_follow_the_time_budgets_and_never_pass_the_cap() {
        // (interval, restore, replica, promotion)
        let cases = [
            (1, 240, 240, 240),
            (15, 240, 240, 120),
            (30, 240, 120, 60),
            (45, 240, 80, 40),
            (60, 180, 60, 30),
            (301 - 1, 36, 12, 6),
            (7, 240, 240, 240),
            (3600, 3, 1, 1),
        ];
        for (interval, restore, replica, promotion) in cases {
            let limits = poll_limits(interval);
            assert_eq!(
                (
                    limits.restore_polls,
                    limits.replica_polls,
                    limits.promotion_polls,
                    limits.marker_polls
                ),
                (restore, replica, promotion, MARKER_POLLS),
                "interval {interval}"
            );
        }
        // No interval is zero; a zero would be read as one second.
        assert_eq!(poll_limits(0), poll_limits(1));
    }
}
