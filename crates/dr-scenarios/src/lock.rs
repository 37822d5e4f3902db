//! One recovery per database at a time.

use dr_core::*;
use serde::{Deserialize, Serialize};

use crate::Ports;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LockAction {
    /// Take it; a holder whose execution has ended (failed, timed out,
    /// aborted, killed) is replaced, and people are told.
    Acquire,
    Release,
    /// Who holds it, if anyone (a drill yields to a running recovery).
    Check,
    /// Release every lock an execution that has ended still holds (the
    /// sweeper on Step Functions' "Execution Status Change"); `resource` is `*`.
    Sweep,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryLockInput {
    pub action: LockAction,
    /// What is being recovered (the primary's identifier).
    pub resource: String,
    /// Who recovers it (the execution id).
    pub owner: String,
    /// A crashed execution's lock expires after this long (default: the RTO).
    #[serde(default = "default_ttl")]
    pub ttl_seconds: u64,
    /// Where to say that a dead holder's lock was released.
    #[serde(default)]
    pub topic_arn: Option<String>,
    /// For `sweep`: how the execution ended, as the event says.
    #[serde(default)]
    pub ended: Option<ExecutionState>,
}

/// A holder whose execution had ended, replaced or released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaleHolder {
    pub resource: String,
    pub owner: String,
    pub state: ExecutionState,
}

fn default_ttl() -> u64 {
    4 * 3600
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryLockOutput {
    pub resource: String,
    pub owner: String,
    pub held: bool,
    /// For `check`: the current holder, if any.
    pub holder: Option<String>,
    /// Locks of executions that had ended, released (sweep) or taken over
    /// (acquire).
    #[serde(default)]
    pub released_stale: Vec<StaleHolder>,
}

/// Tells people a dead execution's lock was released.
async fn announce(
    ports: &Ports,
    topic: Option<&str>,
    stale: &StaleHolder,
    by: &str,
) -> DrResult<()> {
    let Some(topic) = topic.filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    ports
        .notifier
        .publish(&Notification {
            topic: topic.to_owned(),
            subject: format!(
                "[MueJam DR] Released the recovery lock of {}: its holder {}",
                stale.resource,
                stale.state.as_str()
            ),
            body: format!(
                "What happened: the recovery lock of {resource} was held by execution {owner}, which is {state} \
                 (it ended without releasing it: killed, timed out, or stopped).\n\n\
                 What was done:\n- the lock was released{by}\n\n\
                 What to do next:\n- look at what {owner} did before it ended (its report, or the journal of its recovery): \
                 a rerun under the same recovery id resumes it",
                resource = stale.resource,
                owner = stale.owner,
                state = stale.state.as_str(),
            ),
            attributes: [
                ("event".to_owned(), "stale_lock_released".to_owned()),
                ("resource".to_owned(), stale.resource.clone()),
                ("severity".to_owned(), "high".to_owned()),
            ]
            .into(),
        })
        .await?;
    Ok(())
}

/// `acquire` fails with `Conflict` (naming the holder) when another execution
/// recovers the same resource; the state machine then stops without acting.
pub async fn recovery_lock(
    ports: &Ports,
    input: RecoveryLockInput,
) -> DrResult<RecoveryLockOutput> {
    if input.resource.trim().is_empty() || input.owner.trim().is_empty() {
        return Err(DrError::InvalidInput(
            "resource and owner must not be empty".to_owned(),
        ));
    }
    match input.action {
        LockAction::Acquire => {
            if input.resource == "*" {
                return Err(DrError::InvalidInput(
                    "resource * is for sweep only".to_owned(),
                ));
            }
            let mut released_stale = Vec::new();
            match ports
                .lock
                .acquire(&input.resource, &input.owner, input.ttl_seconds)
                .await
            {
                Ok(_) => {}
                Err(DrError::Conflict(message)) => {
                    let holder = ports.lock.holder(&input.resource).await?;
                    let state = match &holder {
                        Some(h) => ports.executions.state(&h.owner).await?,
                        None => None,
                    };
                    match (holder, state) {
                        // Its execution has ended: the lock must not outlive it.
                        (Some(h), Some(state)) if state != ExecutionState::Running => {
                            ports
                                .lock
                                .take_over(
                                    &input.resource,
                                    &input.owner,
                                    &h.owner,
                                    input.ttl_seconds,
                                )
                                .await?;
                            let stale = StaleHolder {
                                resource: input.resource.clone(),
                                owner: h.owner,
                                state,
                            };
                            tracing::warn!(resource = %stale.resource, stale = %stale.owner, state = state.as_str(), "took over a dead execution's lock");
                            announce(
                                ports,
                                input.topic_arn.as_deref(),
                                &stale,
                                &format!(" and taken by {}", input.owner),
                            )
                            .await?;
                            released_stale.push(stale);
                        }
                        // Running, or not known here: it may be running.
                        _ => return Err(DrError::Conflict(message)),
                    }
                }
                Err(e) => return Err(e),
            }
            Ok(RecoveryLockOutput {
                resource: input.resource,
                owner: input.owner,
                held: true,
                holder: None,
                released_stale,
            })
        }
        LockAction::Sweep => {
            let state = match ports.executions.state(&input.owner).await? {
                Some(state) => Some(state),
                None => input.ended,
            };
            let mut released_stale = Vec::new();
            if let Some(state) = state.filter(|s| *s != ExecutionState::Running) {
                for holder in ports.lock.holders().await? {
                    if holder.owner != input.owner {
                        continue;
                    }
                    ports.lock.release(&holder.resource, &holder.owner).await?;
                    let stale = StaleHolder {
                        resource: holder.resource,
                        owner: holder.owner,
                        state,
                    };
                    announce(ports, input.topic_arn.as_deref(), &stale, " by the sweeper").await?;
                    released_stale.push(stale);
                }
            }
            Ok(RecoveryLockOutput {
                resource: input.resource,
                owner: input.owner,
                held: false,
                holder: None,
                released_stale,
            })
        }
        LockAction::Release => {
            ports.lock.release(&input.resource, &input.owner).await?;
            Ok(RecoveryLockOutput {
                resource: input.resource,
                owner: input.owner,
                held: false,
                holder: None,
                released_stale: Vec::new(),
            })
        }
        LockAction::Check => {
            // A recovery locks its database by name; an instance (the drill
            // asks by instance) is busy when the database it belongs to is.
            let mut resources = vec![input.resource.clone()];
            resources.extend(
                ports
                    .topology
                    .list()
                    .await?
                    .into_iter()
                    .filter(|t| t.members().any(|m| m.as_str() == input.resource))
                    .map(|t| t.database),
            );
            let mut holder = None;
            for resource in &resources {
                if let Some(h) = ports.lock.holder(resource).await? {
                    holder = Some(h.owner);
                    break;
                }
            }
            Ok(RecoveryLockOutput {
                resource: input.resource,
                owner: input.owner,
                held: holder.is_some(),
                holder,
                released_stale: Vec::new(),
            })
        }
    }
}
