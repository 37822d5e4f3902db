//! After a data-corruption execution dies (fails, times out, is stopped):
//! what its own abort path would have done, done from outside. Catch does
//! not see those ends, so an EventBridge rule on "Step Functions Execution
//! Status Change" calls this: the candidates it left are deleted, and the
//! application gets its writes back on the primary, unless the input asked
//! to keep them stopped or the switch had begun (its primary is fenced;
//! giving writes back there would change nothing and hide that the switch
//! must be finished). The dead run's lock is released by the lock sweeper.

use dr_core::*;
use serde::{Deserialize, Serialize};

use super::steps::{pitr_restore, PitrRestoreInput};
use super::writes::{write_access, WriteAccessInput, WriteAction, WRITES_STOPPED_KEY};
use crate::journal::JournalRef;
use crate::Ports;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorruptionCleanupInput {
    /// The execution's name: its recovery's id.
    pub execution_name: String,
    /// The execution's input, as the event carries it (a JSON string).
    pub input: String,
    /// FAILED, TIMED_OUT or ABORTED.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorruptionCleanupOutput {
    pub candidates_deleted: Vec<InstanceId>,
    /// What was done about the application's writes, in words.
    pub writes: String,
}

#[derive(Deserialize)]
struct RequestFields {
    database: String,
    #[serde(default)]
    keep_writes_stopped_on_abort: bool,
}

#[derive(Deserialize)]
struct StoppedOn {
    instance_id: InstanceId,
}

pub async fn corruption_cleanup(
    ports: &Ports,
    input: CorruptionCleanupInput,
) -> DrResult<CorruptionCleanupOutput> {
    if !["FAILED", "TIMED_OUT", "ABORTED"].contains(&input.status.as_str()) {
        return Err(DrError::InvalidInput(format!(
            "status {:?} is no end of a dead execution (FAILED, TIMED_OUT, ABORTED)",
            input.status
        )));
    }
    let recovery_id = input.execution_name.clone();
    let swept = pitr_restore(
        ports,
        PitrRestoreInput::Sweep {
            recovery_id: recovery_id.clone(),
        },
    )
    .await?;
    let writes = match serde_json::from_str::<RequestFields>(&input.input) {
        Err(_) => {
            "the execution's input names no database: nothing to give back (it never stopped writes)"
                .to_owned()
        }
        Ok(request) => give_back(ports, &recovery_id, &request).await?,
    };
    tracing::warn!(execution = %input.execution_name, status = %input.status, %writes, candidates = swept.instances.len(), "cleaned up after a dead data-corruption run");
    Ok(CorruptionCleanupOutput {
        candidates_deleted: swept.instances,
        writes,
    })
}

async fn give_back(ports: &Ports, recovery_id: &str, request: &RequestFields) -> DrResult<String> {
    let entries = ports.journal.entries(recovery_id).await?;
    let Some(stopped) = entries.iter().find(|e| e.key == WRITES_STOPPED_KEY) else {
        return Ok("the run never stopped the application's writes".to_owned());
    };
    if request.keep_writes_stopped_on_abort {
        return Ok("the application's writes stay stopped, as the input asked".to_owned());
    }
    if entries.iter().any(|e| e.key == "fence") {
        return Ok(
            "the switch had begun (the primary is fenced): the writes were not given back there; finish the switch"
                .to_owned(),
        );
    }
    let on: StoppedOn = stopped
        .detail
        .clone()
        .and_then(|d| serde_json::from_value(d).ok())
        .ok_or_else(|| {
            DrError::Internal(format!(
                "the journal of {recovery_id} records stopped writes without the instance"
            ))
        })?;
    let topology = ports
        .topology
        .get(&request.database)
        .await?
        .ok_or_else(|| {
            DrError::InvalidInput(format!(
                "database {} is not in the topology registry",
                request.database
            ))
        })?;
    let application = topology.application.clone().ok_or_else(|| {
        DrError::InvalidInput(format!(
            "the topology of {} names no application role",
            request.database
        ))
    })?;
    let done = write_access(
        ports,
        WriteAccessInput {
            action: WriteAction::Restore,
            instance_id: on.instance_id,
            database: topology.db_name.clone(),
            credentials_secret_id: topology.credentials_secret_id.clone(),
            application,
            journal: JournalRef {
                recovery_id: recovery_id.to_owned(),
                execution: format!("{recovery_id}:cleanup"),
            },
            region: topology.region.clone(),
        },
    )
    .await?;
    Ok(done
        .mutation
        .unwrap_or_else(|| "nothing was recorded as revoked".to_owned()))
}
