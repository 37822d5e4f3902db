//! Cleanup: everything this drill made, and what earlier drills that died
//! left behind.

use super::*;

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
    /// Other regions the drill made instances in (the region-restore
    /// rehearsal's backup region).
    #[serde(default)]
    pub regions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillCleanupOutput {
    pub deleted: Vec<InstanceId>,
    /// Drill instances still there (and not being deleted) afterwards.
    pub remaining: Vec<InstanceId>,
    /// The copies' records, registry entries and locks removed.
    #[serde(default)]
    pub copies_removed: Vec<String>,
    /// What of a copy (or of the drill in another region) could not be
    /// removed, and why.
    #[serde(default)]
    pub copies_remaining: Vec<String>,
    /// The snapshots the drill took of its copy (the base of the rehearsed
    /// point-in-time restores).
    #[serde(default)]
    pub snapshots_deleted: Vec<SnapshotId>,
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
    cleanup_drill(
        ports,
        &input.drill_id,
        input.database.as_ref(),
        &input.regions,
    )
    .await
}

/// A region's control plane (`None` names the home region), or why it
/// cannot be had.
type RegionPlane<'r> = (
    Option<&'r str>,
    DrResult<std::sync::Arc<dyn DatabaseControlPlane>>,
);

/// The control planes a drill's instances may be in: the home region's
/// (`None`) and the other regions named. Another region's error is its
/// own: it never keeps the home region from being cleaned.
fn control_planes<'r>(ports: &Ports, regions: &'r [String]) -> Vec<RegionPlane<'r>> {
    let mut planes = vec![(None, Ok(ports.control_plane.clone()))];
    for region in regions {
        if region != ports.regions.home_region() {
            planes.push((Some(region.as_str()), ports.regions.control_plane(region)));
        }
    }
    planes
}

/// The ARN of another execution of the same state machine.
pub(crate) fn sibling_execution(execution_arn: &str, name: &str) -> Option<String> {
    let (machine, _) = execution_arn.rsplit_once(':')?;
    machine
        .contains(":execution:")
        .then(|| format!("{machine}:{name}"))
}

/// Removes the leftovers of earlier drills whose executions are no longer
/// running (killed, timed out, failed before their cleanup): only drill
/// instances those drills made themselves, each with the same care as the
/// drill's own cleanup. A drill that still runs is left alone.
pub(crate) async fn sweep_earlier_drills(
    ports: &Ports,
    input: &DrillCleanupInput,
) -> DrResult<DrillCleanupOutput> {
    let execution_arn = input
        .execution_arn
        .as_deref()
        .ok_or_else(|| DrError::InvalidInput("sweep_earlier needs execution_arn".to_owned()))?;
    let mut earlier = std::collections::BTreeSet::new();
    for (region, plane) in control_planes(ports, &input.regions) {
        let listed = match plane {
            Ok(plane) => plane.list_instances().await,
            Err(e) => Err(e),
        };
        match (listed, region) {
            (Ok(instances), _) => earlier.extend(
                instances
                    .into_iter()
                    .filter_map(|i| i.tags.get(DRILL_TAG).cloned()),
            ),
            (Err(e), None) => return Err(e),
            // Another region that does not answer (or is not ours) must not
            // keep the home region's leftovers: each drill's own cleanup
            // says what it could not reach there.
            (Err(e), Some(region)) => {
                tracing::warn!(region, error = %e, "earlier drills not swept in this region")
            }
        }
    }
    // A drill that died after its instances went may have left its copy
    // in the registry and its record in the zone.
    earlier.extend(
        ports
            .topology
            .list()
            .await?
            .iter()
            .filter_map(|t| t.drill_id().map(str::to_owned)),
    );
    earlier.extend(
        ports
            .control_plane
            .list_snapshots(None)
            .await?
            .into_iter()
            .filter(|s| s.snapshot_id.as_str().starts_with(DRILL_PREFIX))
            .filter_map(|s| s.tags.get(DRILL_TAG).cloned()),
    );
    earlier.remove(&input.drill_id);
    let mut deleted = Vec::new();
    let mut snapshots_deleted = Vec::new();
    let mut remaining = Vec::new();
    let mut copies_removed = Vec::new();
    let mut copies_remaining = Vec::new();
    for drill in earlier {
        let running = match sibling_execution(execution_arn, &drill) {
            Some(arn) => ports.executions.state(&arn).await? == Some(ExecutionState::Running),
            None => false,
        };
        if running {
            tracing::info!(drill = %drill, "an earlier drill still runs: its instances are left alone");
            continue;
        }
        let cleaned = cleanup_drill(ports, &drill, None, &input.regions).await?;
        deleted.extend(cleaned.deleted);
        remaining.extend(cleaned.remaining);
        copies_removed.extend(cleaned.copies_removed);
        copies_remaining.extend(cleaned.copies_remaining);
        snapshots_deleted.extend(cleaned.snapshots_deleted);
    }
    Ok(DrillCleanupOutput {
        clean: remaining.is_empty() && copies_remaining.is_empty(),
        deleted,
        remaining,
        copies_removed,
        copies_remaining,
        snapshots_deleted,
    })
}

pub(crate) async fn cleanup_drill(
    ports: &Ports,
    drill_id: &str,
    database: Option<&InstanceId>,
    regions: &[String],
) -> DrResult<DrillCleanupOutput> {
    let mut deleted = Vec::new();
    let mut remaining = Vec::new();
    let mut copies_remaining = Vec::new();
    for (region, plane) in control_planes(ports, regions) {
        let cleaned = match plane {
            Ok(plane) => {
                delete_drill_instances(
                    plane.as_ref(),
                    drill_id,
                    database,
                    &mut deleted,
                    &mut remaining,
                )
                .await
            }
            Err(e) => Err(e),
        };
        match (cleaned, region) {
            (Ok(()), _) => {}
            (Err(e), None) => return Err(e),
            // Another region (a typo in the input, a region IAM does not
            // allow) never keeps the home region's instances: it is said,
            // and the drill is not clean.
            (Err(e), Some(region)) => copies_remaining.push(format!(
                "the drill's instances in {region} were not listed or deleted: {}: {e}",
                e.name()
            )),
        }
    }
    let mut copies_removed = Vec::new();
    let copies = ports.topology.list().await?.into_iter().filter(|t| {
        t.drill_id() == Some(drill_id)
            && database.is_none_or(|d| {
                t.tags.get(DRILL_SOURCE_TAG).map(String::as_str) == Some(d.as_str())
            })
    });
    for copy in copies {
        remove_copy(ports, &copy, &mut copies_removed, &mut copies_remaining).await?;
    }
    let mut snapshots_deleted = Vec::new();
    let snapshots = ports.control_plane.list_snapshots(None).await?;
    for snapshot in snapshots.iter().filter(|s| {
        s.snapshot_id.as_str().starts_with(DRILL_PREFIX)
            && s.tags.get(DRILL_TAG).map(String::as_str) == Some(drill_id)
            && database.is_none_or(|d| {
                s.tags.get(DRILL_SOURCE_TAG).map(String::as_str) == Some(d.as_str())
            })
    }) {
        match ports
            .control_plane
            .delete_snapshot(&snapshot.snapshot_id)
            .await
        {
            Ok(()) | Err(DrError::NotFound(_)) => {
                snapshots_deleted.push(snapshot.snapshot_id.clone())
            }
            // Still being taken (RDS refuses to delete it then): the next
            // drill's sweep removes it.
            Err(DrError::NotReady(e)) => {
                copies_remaining.push(format!("snapshot {} ({e})", snapshot.snapshot_id))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(DrillCleanupOutput {
        clean: remaining.is_empty() && copies_remaining.is_empty(),
        deleted,
        remaining,
        copies_removed,
        copies_remaining,
        snapshots_deleted,
    })
}

/// Deletes the drill's instances in one region (replicas first) and says
/// which are still there afterwards.
async fn delete_drill_instances(
    plane: &dyn DatabaseControlPlane,
    drill_id: &str,
    database: Option<&InstanceId>,
    deleted: &mut Vec<InstanceId>,
    remaining: &mut Vec<InstanceId>,
) -> DrResult<()> {
    let ours = |i: &InstanceDescription| {
        i.tags.get(DRILL_TAG).map(String::as_str) == Some(drill_id)
            && database.is_none_or(|d| {
                i.tags.get(DRILL_SOURCE_TAG).map(String::as_str) == Some(d.as_str())
            })
    };
    let mut targets: Vec<InstanceDescription> = plane
        .list_instances()
        .await?
        .into_iter()
        .filter(ours)
        .collect();
    // Replicas before their sources, as RDS requires nothing of the sort but
    // a source deleted first would leave its replica reporting a dead source.
    targets.sort_by_key(|i| i.replication_source.is_none());
    for instance in &targets {
        if ensure_drill_resource(instance, drill_id).is_err() {
            // Tagged with our drill id but not made by us (not drill-…, or
            // not ephemeral): leave it, and it shows as remaining.
            continue;
        }
        match plane
            .delete_instance(&instance.instance_id, DeleteOptions::default())
            .await
        {
            Ok(()) | Err(DrError::NotFound(_)) => deleted.push(instance.instance_id.clone()),
            Err(e) => return Err(e),
        }
    }
    remaining.extend(
        plane
            .list_instances()
            .await?
            .into_iter()
            .filter(|i| ours(i) && i.status != InstanceStatus::Deleting)
            .map(|i| i.instance_id),
    );
    Ok(())
}

/// Pure: whether a registry entry has the shape of a drill's copy (every
/// instance `drill-…`, its record a `drill-…` name): only such an entry,
/// and its record, are ever removed.
pub fn is_drill_copy(topology: &Topology) -> bool {
    topology.drill_id().is_some()
        && topology
            .members()
            .all(|m| m.as_str().starts_with(DRILL_PREFIX))
        && topology
            .dns
            .record_name
            .split('.')
            .next()
            .is_some_and(|label| label.starts_with(DRILL_PREFIX))
}

/// Removes a drill's copy: the lock a rehearsal that died still holds on
/// it, its record, then its registry entry. A rehearsal still running
/// keeps it (reported as remaining).
async fn remove_copy(
    ports: &Ports,
    copy: &Topology,
    removed: &mut Vec<String>,
    left: &mut Vec<String>,
) -> DrResult<()> {
    if !is_drill_copy(copy) {
        left.push(format!(
            "registry entry {} (tagged for a drill but not shaped as its copy: left alone)",
            copy.database
        ));
        return Ok(());
    }
    if let Some(holder) = ports.lock.holder(&copy.database).await? {
        if ports.executions.state(&holder.owner).await? == Some(ExecutionState::Running) {
            left.push(format!(
                "{} (its rehearsal {} still runs)",
                copy.database, holder.owner
            ));
            return Ok(());
        }
        ports.lock.release(&copy.database, &holder.owner).await?;
        removed.push(format!(
            "lock on {} held by {}",
            copy.database, holder.owner
        ));
    }
    if ports
        .dns
        .delete_record(&copy.dns.hosted_zone, &copy.dns.record_name, "CNAME")
        .await?
        .is_some()
    {
        removed.push(format!("record {}", copy.dns.record_name));
    }
    match ports.topology.delete(&copy.database, copy.version).await {
        Ok(_) => removed.push(format!("registry entry {}", copy.database)),
        Err(DrError::Conflict(e)) => left.push(format!(
            "registry entry {} (changed while it was being removed: {e})",
            copy.database
        )),
        Err(e) => return Err(e),
    }
    Ok(())
}
