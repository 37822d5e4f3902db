//! The failover test's own steps: the copy's replica (a throw-away replica
//! of the throw-away restore) and the marker rows whose survival measures
//! the rows the rehearsed failover lost.

use super::*;

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
    /// Write the marker rows on the copy's primary (`in_flight`: the one
    /// written just before the failure).
    Write,
    /// Are the marker rows on the copy's replica yet?
    Check,
    /// After the rehearsal: which marker rows the copy's primary (as the
    /// registry has it now) holds.
    Count,
    /// Damage committed on the copy's primary (the same code as `drctl
    /// local corrupt`), for the rehearsed data-corruption recovery to find.
    Damage,
}

/// Which rehearsal the marker rows are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerSet {
    /// Written and replicated before the copy's primary fails; the one in
    /// flight is written just before.
    #[default]
    Failover,
    /// Written before the damage (the recovery must keep them); the last
    /// one after it (the recovery discards it with the damage).
    Corruption,
}

impl MarkerSet {
    /// The label of the one row a recovery may (in flight) or must (after
    /// the damage) lose.
    pub fn last_label(self) -> &'static str {
        match self {
            MarkerSet::Failover => IN_FLIGHT,
            MarkerSet::Corruption => AFTER_DAMAGE,
        }
    }

    /// The rows a recovery must keep, and the one it may lose (in flight)
    /// or must lose (written after the damage).
    pub fn names(self, drill_id: &str, rows: u32) -> (Vec<String>, String) {
        match self {
            MarkerSet::Failover => marker_names(drill_id, rows),
            MarkerSet::Corruption => (
                (1..=rows)
                    .map(|n| format!("drill:{drill_id}:good:{n}"))
                    .collect(),
                format!("drill:{drill_id}:{}", self.last_label()),
            ),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillMarkerInput {
    pub action: MarkerAction,
    pub drill_id: String,
    /// Where to write or check; with `copy_database`, the copy's primary
    /// is read from the registry instead (`count` and `damage` need it).
    #[serde(default)]
    pub instance_id: Option<InstanceId>,
    /// The copy's database in the registry.
    #[serde(default)]
    pub copy_database: Option<String>,
    #[serde(default)]
    pub set: MarkerSet,
    /// `damage`: what kind, and how many rows.
    #[serde(default = "default_damage")]
    pub damage: DamageKind,
    #[serde(default = "marker_rows")]
    pub damage_rows: u32,
    /// `damage`: committed at least `gap_seconds` after `after` (the rows
    /// it must not take), by the database's clock.
    #[serde(default)]
    pub after: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub gap_seconds: u64,
    pub credentials_secret_id: String,
    #[serde(default = "default_database")]
    pub database: String,
    #[serde(default = "marker_rows")]
    pub rows: u32,
    /// `write`: the one marker written just before the failure (after the
    /// damage, for the corruption set).
    #[serde(default)]
    pub in_flight: bool,
    /// `count`: the primary the drill made fail. Still the copy's primary
    /// afterwards (nothing was failed over), it has nothing to count: said
    /// at once instead of retried against a dead server.
    #[serde(default)]
    pub failed_instance_id: Option<InstanceId>,
}

fn marker_rows() -> u32 {
    MARKER_ROWS
}

fn default_damage() -> DamageKind {
    DamageKind::Orphans
}

/// The most marker rows a drill writes.
pub const MAX_MARKER_ROWS: u32 = 100;

/// Writes the drill's marker rows on the copy's primary, checks whether
/// they reached its replica, or counts them on the primary after the
/// rehearsal. Only ever on the drill's own instances.
pub async fn drill_marker(ports: &Ports, input: DrillMarkerInput) -> DrResult<Value> {
    if !(1..=MAX_MARKER_ROWS).contains(&input.rows) {
        return Err(DrError::InvalidInput(format!(
            "rows must be between 1 and {MAX_MARKER_ROWS}"
        )));
    }
    if input.gap_seconds > MAX_DAMAGE_WAIT_SECONDS {
        return Err(DrError::InvalidInput(format!(
            "gap_seconds must be at most {MAX_DAMAGE_WAIT_SECONDS}"
        )));
    }
    if !(1..=MAX_MARKER_ROWS).contains(&input.damage_rows) {
        return Err(DrError::InvalidInput(format!(
            "damage_rows must be between 1 and {MAX_MARKER_ROWS}"
        )));
    }
    let instance_id = match (input.action, &input.instance_id, &input.copy_database) {
        (_, _, Some(copy)) => {
            let topology = registered_copy(ports, copy, &input.drill_id).await?;
            if input.action == MarkerAction::Count
                && input.failed_instance_id.as_ref() == Some(&topology.primary)
            {
                return Err(DrError::Conflict(format!(
                    "{} is still the primary of {copy}, and it is the one the drill made fail: nothing was failed over, there is nothing to count",
                    topology.primary
                )));
            }
            topology.primary
        }
        (MarkerAction::Count | MarkerAction::Damage, _, None) => {
            return Err(DrError::InvalidInput(
                "count and damage need copy_database".to_owned(),
            ))
        }
        (_, Some(id), _) => id.clone(),
        (_, None, _) => {
            return Err(DrError::InvalidInput(
                "write and check need instance_id".to_owned(),
            ))
        }
    };
    let described = ports.control_plane.describe_instance(&instance_id).await?;
    ensure_drill_resource(&described, &input.drill_id)?;
    let endpoint = described
        .endpoint
        .ok_or_else(|| DrError::NotReady(format!("{instance_id} has no endpoint")))?;
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
    let (replicated, in_flight) = input.set.names(&input.drill_id, input.rows);
    match input.action {
        MarkerAction::Write => {
            let markers = if input.in_flight {
                vec![in_flight]
            } else {
                replicated
            };
            let mut written_at = None;
            for marker in &markers {
                written_at = Some(ports.sql.write_marker(&target, marker).await?);
            }
            Ok(json!({"instance_id": instance_id, "markers": markers, "written_at": written_at}))
        }
        MarkerAction::Check => {
            let mut present = true;
            for marker in &replicated {
                present = present && ports.sql.marker_present(&target, marker).await?;
            }
            Ok(json!({"instance_id": instance_id, "present": present}))
        }
        MarkerAction::Count => {
            let mut found = Vec::new();
            let mut missing = Vec::new();
            for marker in replicated.into_iter().chain(std::iter::once(in_flight)) {
                if ports.sql.marker_present(&target, &marker).await? {
                    found.push(marker);
                } else {
                    missing.push(marker);
                }
            }
            Ok(json!(MarkersCounted {
                instance_id,
                found,
                missing
            }))
        }
        MarkerAction::Damage => {
            let damage = ports
                .sql
                .commit_damage(
                    &target,
                    // Once per drill: a retried step finds the damage it
                    // committed (damaging again would move the moment the
                    // rehearsal searches from past the first damage).
                    &format!("drill:{}:damage", input.drill_id),
                    input.damage,
                    input.damage_rows,
                    input
                        .after
                        .map(|a| a + chrono::Duration::seconds(input.gap_seconds as i64)),
                )
                .await?;
            tracing::warn!(instance = %instance_id, rows = damage.rows, table = %damage.table, "the drill damaged its copy's primary");
            Ok(json!({
                "instance_id": instance_id,
                "kind": damage.kind,
                "table": damage.table,
                "rows": damage.rows,
                "before": damage.before,
                "at": damage.at,
                // What the rehearsed recovery is told to check, as an
                // operator who knows the damage would.
                "checks": [damage.kind.finding_check()],
            }))
        }
    }
}
