//! A new read replica of the new primary, in another availability zone.

use super::*;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateReplicaInput {
    pub source_instance_id: InstanceId,
    pub replica_instance_id: InstanceId,
    /// Zones to choose from; the first one that differs from the source's wins.
    #[serde(default)]
    pub availability_zones: Vec<String>,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub journal: Option<JournalRef>,
    /// The region the instance lives in (default: the home region).
    #[serde(default)]
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateReplicaOutput {
    pub replica_instance_id: InstanceId,
    pub source_instance_id: InstanceId,
    pub availability_zone: Option<String>,
    pub status: String,
    pub mutation: Option<String>,
}

/// Picks a zone other than the source's, so one zone's failure cannot take
/// both copies.
pub fn other_zone(source_zone: Option<&str>, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .find(|z| Some(z.as_str()) != source_zone)
        .cloned()
}

impl Journaled for CreateReplicaOutput {
    fn change(&self) -> Option<String> {
        self.mutation.clone()
    }
}

/// A new replica of the new primary in another zone. Idempotent: an
/// existing replica of the same source is the result; one that exists but
/// failed is an error (never reported as done).
pub async fn create_replica(
    ports: &Ports,
    input: CreateReplicaInput,
) -> DrResult<CreateReplicaOutput> {
    let what = format!(
        "creating the replica {} of {}",
        input.replica_instance_id, input.source_instance_id
    );
    let journal = input.journal.clone();
    journaled(
        ports,
        journal.as_ref(),
        "replica",
        &what,
        create_replica_now(ports, input),
    )
    .await
}

pub(crate) async fn create_replica_now(
    ports: &Ports,
    input: CreateReplicaInput,
) -> DrResult<CreateReplicaOutput> {
    let plane = ports.plane(input.region.as_deref())?;
    let source = plane.describe_instance(&input.source_instance_id).await?;
    if source.replication_source.is_some() {
        return Err(DrError::Unsafe(format!(
            "{} is itself a replica; the new replica must follow the new primary",
            input.source_instance_id
        )));
    }
    let existed = match plane.describe_instance(&input.replica_instance_id).await {
        Ok(_) => true,
        Err(DrError::NotFound(_)) => false,
        Err(e) => return Err(e),
    };
    let zone = other_zone(
        source.availability_zone.as_deref(),
        &input.availability_zones,
    );
    if !input.availability_zones.is_empty() && zone.is_none() {
        return Err(DrError::InvalidInput(format!(
            "availability_zones offers no zone other than the source's ({})",
            source.availability_zone.unwrap_or_default()
        )));
    }
    let replica = plane
        .create_read_replica(&CreateReplicaRequest {
            // The new primary's subnet group, security groups and
            // parameters: where the applications reach it.
            network: source.network.clone(),
            replica_id: input.replica_instance_id.clone(),
            source_id: input.source_instance_id.clone(),
            availability_zone: zone,
            tags: input.tags,
        })
        .await?;
    if replica.status == InstanceStatus::Failed {
        return Err(DrError::Internal(format!(
            "the replica {} exists but is failed ({}): it never served; delete it and run again to build a new one",
            replica.instance_id,
            if existed {
                "left by an earlier attempt"
            } else {
                "its creation failed"
            }
        )));
    }
    let mutation = (!existed).then(|| {
        format!(
            "created read replica {} of {} in {}",
            replica.instance_id,
            input.source_instance_id,
            replica
                .availability_zone
                .as_deref()
                .unwrap_or("an unspecified zone")
        )
    });
    Ok(CreateReplicaOutput {
        mutation,
        replica_instance_id: replica.instance_id,
        source_instance_id: input.source_instance_id,
        availability_zone: replica.availability_zone,
        status: replica.status.to_string(),
    })
}

/// Whether the replica can take over now: available, still a replica, and
/// within the RPO unless data loss is accepted. Pure.
pub fn replica_readiness(
    replica: &InstanceDescription,
    max_lag_seconds: f64,
    allow_data_loss: bool,
) -> DrResult<()> {
    if replica.promotion_readiness()? == PromotionReadiness::Promotable {
        lag_guard(replica.replica_lag, max_lag_seconds, allow_data_loss)?;
    }
    Ok(())
}
