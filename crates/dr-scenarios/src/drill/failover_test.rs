//! The failover test: a throw-away replica of the restore, a marker row, the
//! replica's promotion, and the rows it lost.

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
    let started = Stopwatch::start();
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
                .map(|at| (dr_core::clock::now() - at).num_milliseconds() as f64 / 1000.0);
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
    let promoted_at = dr_core::clock::now();
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
