//! Record a switch or a new replica in the topology registry.

use super::*;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum UpdateTopologyInput {
    /// `new_primary` took over: the old primary is fenced.
    Switch {
        database: String,
        new_primary: InstanceId,
        by: String,
        #[serde(default)]
        journal: Option<JournalRef>,
    },
    /// `restored` (a new instance, restored to a clean moment) took over:
    /// the old primary is fenced and its replicas retired.
    Restore {
        database: String,
        restored: InstanceId,
        by: String,
        #[serde(default)]
        journal: Option<JournalRef>,
    },
    /// `restored` (a new instance in `region`, restored from a snapshot
    /// copy) took over after a region failure: the old primary and its
    /// replicas are retired.
    RegionSwitch {
        database: String,
        restored: InstanceId,
        region: String,
        #[serde(default)]
        availability_zones: Vec<String>,
        by: String,
        #[serde(default)]
        journal: Option<JournalRef>,
    },
    /// `replica` now follows the primary.
    AddReplica {
        database: String,
        replica: InstanceId,
        by: String,
        #[serde(default)]
        journal: Option<JournalRef>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTopologyOutput {
    pub database: String,
    pub version: u64,
    pub primary: InstanceId,
    pub replicas: Vec<InstanceId>,
    pub fenced: Vec<InstanceId>,
    pub mutation: Option<String>,
}

impl Journaled for UpdateTopologyOutput {
    fn change(&self) -> Option<String> {
        self.mutation.clone()
    }
}

/// Records a switch or a new replica in the topology registry, so the next
/// trigger finds the roles as they are. Idempotent; a concurrent change is
/// read again and the same change applied to it.
pub async fn update_topology(
    ports: &Ports,
    input: UpdateTopologyInput,
) -> DrResult<UpdateTopologyOutput> {
    let (key, what, journal) = match &input {
        UpdateTopologyInput::Switch {
            database,
            new_primary,
            journal,
            ..
        } => (
            "topology",
            format!("recording {new_primary} as the primary of {database}"),
            journal.clone(),
        ),
        UpdateTopologyInput::Restore {
            database,
            restored,
            journal,
            ..
        } => (
            "topology",
            format!("recording {restored} (restored) as the primary of {database}"),
            journal.clone(),
        ),
        UpdateTopologyInput::RegionSwitch {
            database,
            restored,
            region,
            journal,
            ..
        } => (
            "topology",
            format!("recording {restored} in {region} as the primary of {database}"),
            journal.clone(),
        ),
        UpdateTopologyInput::AddReplica {
            database,
            replica,
            journal,
            ..
        } => (
            "replica_topology",
            format!("recording {replica} as a replica of {database}"),
            journal.clone(),
        ),
    };
    journaled(
        ports,
        journal.as_ref(),
        key,
        &what,
        update_topology_now(ports, input),
    )
    .await
}

pub(crate) async fn update_topology_now(
    ports: &Ports,
    input: UpdateTopologyInput,
) -> DrResult<UpdateTopologyOutput> {
    let database = match &input {
        UpdateTopologyInput::Switch { database, .. }
        | UpdateTopologyInput::Restore { database, .. }
        | UpdateTopologyInput::RegionSwitch { database, .. }
        | UpdateTopologyInput::AddReplica { database, .. } => database.clone(),
    };
    validate_database_name(&database)?;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let current = ports.topology.get(&database).await?.ok_or_else(|| {
            DrError::InvalidInput(format!("database {database} is not registered"))
        })?;
        let (next, what) = match &input {
            UpdateTopologyInput::Switch {
                new_primary, by, ..
            } => (
                current.after_switch(new_primary, by)?,
                format!(
                    "topology of {database}: {new_primary} is the primary, {} is fenced",
                    current.primary
                ),
            ),
            UpdateTopologyInput::Restore { restored, by, .. } => (
                current.after_restore(restored, by)?,
                format!(
                    "topology of {database}: {restored} is the primary, {} is fenced, its replicas retired",
                    current.primary
                ),
            ),
            UpdateTopologyInput::RegionSwitch {
                restored,
                region,
                availability_zones,
                by,
                ..
            } => (
                current.after_region_switch(restored, region, availability_zones, by)?,
                format!(
                    "topology of {database}: {restored} in {region} is the primary; {} and its replicas (in {}) are retired",
                    current.primary,
                    current.region.as_deref().unwrap_or("the old region")
                ),
            ),
            UpdateTopologyInput::AddReplica { replica, by, .. } => (
                current.with_replica(replica, by)?,
                format!(
                    "topology of {database}: {replica} replicates from {}",
                    current.primary
                ),
            ),
        };
        let unchanged = next.primary == current.primary
            && next.replicas == current.replicas
            && next.fenced == current.fenced
            && next.retired == current.retired;
        let stored = if unchanged {
            current
        } else {
            match ports.topology.put(&next, Some(current.version)).await {
                Ok(stored) => stored,
                Err(DrError::Conflict(_)) if attempts < 3 => continue,
                Err(e) => return Err(e),
            }
        };
        return Ok(UpdateTopologyOutput {
            database,
            version: stored.version,
            primary: stored.primary,
            replicas: stored.replicas,
            fenced: stored.fenced,
            mutation: (!unchanged).then_some(what),
        });
    }
}
