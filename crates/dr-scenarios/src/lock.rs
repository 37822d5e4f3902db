//! One recovery per database at a time.

use dr_core::*;
use serde::{Deserialize, Serialize};

use crate::Ports;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LockAction {
    Acquire,
    Release,
    /// Who holds it, if anyone (a drill yields to a running recovery).
    Check,
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
}

fn default_ttl() -> u64 {
    4 * 3600
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecoveryLockOutput {
    pub resource: String,
    pub owner: String,
    pub held: bool,
    /// For `check`: the current holder, if any.
    pub holder: Option<String>,
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
            ports
                .lock
                .acquire(&input.resource, &input.owner, input.ttl_seconds)
                .await?;
            Ok(RecoveryLockOutput {
                resource: input.resource,
                owner: input.owner,
                held: true,
                holder: None,
            })
        }
        LockAction::Release => {
            ports.lock.release(&input.resource, &input.owner).await?;
            Ok(RecoveryLockOutput {
                resource: input.resource,
                owner: input.owner,
                held: false,
                holder: None,
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
            })
        }
    }
}
