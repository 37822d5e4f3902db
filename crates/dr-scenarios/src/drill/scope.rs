//! The databases a drill covers, its whole input checked first, and the
//! wait loops' poll limits.

use super::*;

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
    /// The region restore to rehearse (the region failover's restore and
    /// verification of the newest verified copy in the backup region).
    /// Absent: not rehearsed, and the drill cannot pass.
    #[serde(default)]
    pub region_restore: Option<DrillRegionRestore>,
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
        if let Some(region) = &self.region_restore {
            region.check()?;
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
/// How long the copy's primary may take to become restorable to a point
/// in time (RDS backs a promoted instance up first).
pub const BASE_WAIT_SECONDS: u64 = 3600;
/// How many times (once a second) the marker's replication is checked.
pub const MARKER_POLLS: u64 = 120;
/// The interval when the scope is asked without a request.
pub(crate) const DEFAULT_POLL_INTERVAL_SECONDS: u64 = 15;

/// How many polls each wait of a database's drill may take: the wait's
/// time budget at the request's interval, never more than `MAX_POLLS`.
/// The wait loops compare their counters with these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollLimits {
    pub restore_polls: u64,
    pub replica_polls: u64,
    pub marker_polls: u64,
    /// How many polls the copy's primary may take to become restorable to
    /// a point in time (its first backup).
    pub base_polls: u64,
    /// The rehearsed data-corruption search's resolution, and the time
    /// between the marker rows it must keep and the damage (more than the
    /// resolution, so the moment it finds is after them).
    pub search_resolution_seconds: u64,
    pub damage_gap_seconds: u64,
    /// The rehearsed recovery's poll interval: the drill's, at least the
    /// floor of the chosen restore's polls ([`RESTORE_POLL_SECONDS`]), so
    /// every wait of the rehearsal polls no faster than its restore.
    ///
    /// [`RESTORE_POLL_SECONDS`]: crate::corruption::RESTORE_POLL_SECONDS
    pub corruption_poll_seconds: u64,
}

/// Pure: the poll limits at an interval (seconds, at least 1).
pub fn poll_limits(interval_seconds: u64) -> PollLimits {
    let polls = |budget: u64| budget.div_ceil(interval_seconds.max(1)).min(MAX_POLLS);
    PollLimits {
        restore_polls: polls(RESTORE_WAIT_SECONDS),
        replica_polls: polls(REPLICA_WAIT_SECONDS),
        marker_polls: MARKER_POLLS,
        base_polls: polls(BASE_WAIT_SECONDS),
        search_resolution_seconds: search_resolution(interval_seconds),
        damage_gap_seconds: search_resolution(interval_seconds) + 1,
        corruption_poll_seconds: interval_seconds.max(crate::corruption::RESTORE_POLL_SECONDS),
    }
}

/// Pure: the rehearsed search's resolution at a poll interval: as fine as
/// the platform answers (a second locally), at most a minute (RDS: every
/// round restores whole instances; a coarser search takes fewer).
pub fn search_resolution(interval_seconds: u64) -> u64 {
    interval_seconds.clamp(1, 60)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillScopeOutput {
    pub databases: Vec<InstanceId>,
    pub limits: PollLimits,
    /// Other regions the drill makes instances in (its cleanup looks there).
    pub regions: Vec<String>,
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
    let regions: Vec<String> = input
        .request
        .as_ref()
        .and_then(|r| r.region_restore.as_ref())
        .map(|r| vec![r.backup_region.clone()])
        .unwrap_or_default();
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
    Ok(DrillScopeOutput {
        databases,
        limits,
        regions,
    })
}
