//! Promote the replica, behind the lag guard (the RPO).

use super::*;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteReplicaInput {
    pub replica_instance_id: InstanceId,
    #[serde(default = "default_max_lag")]
    pub max_lag_seconds: f64,
    #[serde(default)]
    pub allow_data_loss: bool,
    #[serde(default)]
    pub journal: Option<JournalRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteReplicaOutput {
    pub instance_id: InstanceId,
    pub already_standalone: bool,
    /// The RPO evidence: how far behind the replica was when promoted.
    pub lag_at_promotion_seconds: Option<f64>,
    pub lag_at_promotion_bytes: Option<u64>,
    pub data_loss_accepted: bool,
    pub status: String,
    /// What this call changed, for the report; `None` when it changed nothing.
    pub mutation: Option<String>,
}

/// The lag decision, separate so it can be tested on its own.
pub fn lag_guard(
    lag: Option<ReplicaLag>,
    max_lag_seconds: f64,
    allow_data_loss: bool,
) -> DrResult<()> {
    if allow_data_loss {
        return Ok(());
    }
    match lag {
        Some(lag) if lag.seconds > max_lag_seconds => Err(DrError::ReplicaLagTooHigh {
            lag_seconds: lag.seconds,
            max_lag_seconds,
        }),
        Some(_) => Ok(()),
        None => Err(DrError::Unsafe(
            "the replica's lag cannot be measured, so the data loss of a promotion is unknown; \
             pass allow_data_loss to promote anyway"
                .to_owned(),
        )),
    }
}

impl Journaled for PromoteReplicaOutput {
    fn change(&self) -> Option<String> {
        self.mutation.clone()
    }
    fn detail(&self) -> Option<serde_json::Value> {
        self.lag_at_promotion_seconds
            .map(|lag| serde_json::json!({"lag_at_promotion_seconds": lag}))
    }
}

/// Lag guard first, then promotion; idempotent for a standalone instance.
pub async fn promote_replica(
    ports: &Ports,
    input: PromoteReplicaInput,
) -> DrResult<PromoteReplicaOutput> {
    let what = format!("promoting {}", input.replica_instance_id);
    let journal = input.journal.clone();
    journaled(
        ports,
        journal.as_ref(),
        "promote",
        &what,
        promote_replica_now(ports, input),
    )
    .await
}

pub(crate) async fn promote_replica_now(
    ports: &Ports,
    input: PromoteReplicaInput,
) -> DrResult<PromoteReplicaOutput> {
    if !input.max_lag_seconds.is_finite() || input.max_lag_seconds < 0.0 {
        return Err(DrError::InvalidInput(
            "max_lag_seconds must be a non-negative number".to_owned(),
        ));
    }
    let described = ports
        .control_plane
        .describe_instance(&input.replica_instance_id)
        .await?;
    if described.promotion_readiness()? == PromotionReadiness::Promotable {
        lag_guard(
            described.replica_lag,
            input.max_lag_seconds,
            input.allow_data_loss,
        )?;
    }
    let outcome = ports
        .control_plane
        .promote_read_replica(&input.replica_instance_id)
        .await?;
    let lag = outcome.lag_at_promotion.or(described.replica_lag);
    let mutation = (!outcome.already_standalone).then(|| {
        format!(
            "promoted read replica {} to a standalone primary (lag at promotion: {})",
            input.replica_instance_id,
            lag.map_or("unknown".to_owned(), |l| format!("{:.1} s", l.seconds))
        )
    });
    Ok(PromoteReplicaOutput {
        mutation,
        instance_id: input.replica_instance_id,
        already_standalone: outcome.already_standalone,
        lag_at_promotion_seconds: if outcome.already_standalone {
            None
        } else {
            lag.map(|l| l.seconds)
        },
        lag_at_promotion_bytes: if outcome.already_standalone {
            None
        } else {
            lag.and_then(|l| l.bytes)
        },
        data_loss_accepted: input.allow_data_loss,
        status: outcome.instance.status.to_string(),
    })
}
