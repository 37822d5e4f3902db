//! After a data-corruption or region-failover execution dies (fails, times
//! out, is stopped): what its own abort path would have done, done from
//! outside. Catch does not see those ends, so an EventBridge rule on "Step
//! Functions Execution Status Change" calls this: the application gets its
//! writes back on the primary the run stopped them on, unless the input
//! asked to keep them stopped or the switch had begun (its primary is
//! fenced, or the record's switch began: giving writes back there would make
//! two writable primaries one step away, and hide that the switch must be
//! finished), then the candidates it left are deleted (data corruption). A
//! candidate that cannot be deleted yet fails the call after the others,
//! naming it, so Lambda retries it (twice); its failure record, handed to
//! read-only-cleanup, is told on the alerts topic. The dead run's lock is
//! released by the lock sweeper; a region failover's restore by the
//! region-restore sweep.

use dr_core::*;
use serde::{Deserialize, Serialize};

use super::steps::{pitr_restore, PitrRestoreInput};
use super::writes::give_back_after_death;
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
    /// The run was a region failover: it made no candidates; only its
    /// writes are this function's business (its restore is swept by
    /// region-restore, and its region may be down).
    #[serde(default)]
    pub writes_only: bool,
    /// The alerts topic: where a cleanup that failed after Lambda's
    /// retries is told (its record reaches read-only-cleanup with this
    /// request in it).
    #[serde(default)]
    pub topic_arn: Option<String>,
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
    // The writes first: an application that cannot write is the outage,
    // and nothing about the candidates (one RDS will not delete while it is
    // still being created) may keep them from it.
    let writes = match serde_json::from_str::<RequestFields>(&input.input) {
        Err(_) => {
            "the execution's input names no database: nothing to give back (it never stopped writes)"
                .to_owned()
        }
        Ok(request) => give_back(ports, &recovery_id, &request).await?,
    };
    let candidates_deleted = if input.writes_only {
        Vec::new()
    } else {
        pitr_restore(
            ports,
            PitrRestoreInput::Sweep {
                recovery_id: recovery_id.clone(),
            },
        )
        .await
        .map_err(|e| e.context(format!("the writes: {writes}; the candidates")))?
        .instances
    };
    tracing::warn!(execution = %input.execution_name, status = %input.status, %writes, candidates = candidates_deleted.len(), "cleaned up after a dead recovery run");
    Ok(CorruptionCleanupOutput {
        candidates_deleted,
        writes,
    })
}

async fn give_back(ports: &Ports, recovery_id: &str, request: &RequestFields) -> DrResult<String> {
    give_back_after_death(ports, recovery_id, &request.database, |entries| {
        if request.keep_writes_stopped_on_abort {
            Some("the application's writes stay stopped, as the input asked".to_owned())
        } else if entries.iter().any(|e| e.key == "fence") {
            Some(
                "the switch had begun (the primary is fenced): the writes were not given back there; finish the switch"
                    .to_owned(),
            )
        } else if entries.iter().any(|e| e.key == "dns") {
            Some(
                "the record's switch had begun: the writes were not given back on the old primary; re-run the recovery under the same name to finish it, or point the record back first"
                    .to_owned(),
            )
        } else {
            None
        }
    })
    .await
}
