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

pub(crate) async fn cleanup_drill(
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
