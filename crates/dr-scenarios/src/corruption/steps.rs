//! The data-corruption steps that read or restore: the integrity checks
//! (scope, candidate, verification), the search's rounds, and the
//! point-in-time restores of candidates and of the chosen moment.

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use super::search::{self, SearchState, Verdict};
use super::CorruptionPlan;
use crate::plan::check_recovery_id;
use crate::Ports;

/// Tag naming the recovery a restored instance belongs to.
pub const RECOVERY_TAG: &str = "dr:recovery";
/// Tag naming the moment a candidate was restored to.
pub const CANDIDATE_TAG: &str = "dr:candidate";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckMode {
    /// On the live primary: what is wrong, and is anything?
    Scope,
    /// On a candidate: do the checks that failed on the primary pass?
    Candidate,
    /// On the chosen restore: does everything pass?
    Verify,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrityCheckInput {
    pub mode: CheckMode,
    pub instance_id: InstanceId,
    pub database: String,
    pub credentials_secret_id: String,
    /// Named checks from the input, run with the verifier's own.
    #[serde(default)]
    pub checks: Vec<NamedCheck>,
    /// Candidate: the checks that failed on the primary.
    #[serde(default)]
    pub failing: Vec<String>,
    /// Scope: the input's restore time, if any (a clean scope is then no
    /// false alarm: the operator knows of damage no check sees).
    #[serde(default)]
    pub restore_time: Option<DateTime<Utc>>,
    /// Candidate: the moment it was restored to (echoed in the verdict).
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// Verify: the application's role and secret, whose password the
    /// restore must take before anything points at it (a rotation since
    /// the moment restored leaves it the old one).
    #[serde(default)]
    pub application: Option<ApplicationAccess>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrityCheckOutput {
    pub mode: CheckMode,
    pub instance_id: InstanceId,
    pub passed: bool,
    /// The checks that failed (status `failed`), by name.
    pub failing: Vec<String>,
    pub findings: Vec<IntegrityFinding>,
    pub row_counts: std::collections::BTreeMap<String, u64>,
    pub checks_run: usize,
    pub duration_ms: u64,
    pub checked_at: DateTime<Utc>,
    /// Scope: `corrupt`, `false_alarm` or `restore_requested`.
    pub decision: Option<String>,
    /// Candidate: whether the primary's failing checks pass here.
    pub clean: Option<bool>,
    pub at: Option<DateTime<Utc>>,
}

/// Pure: whether a candidate is clean, from the checks that failed on the
/// primary and what was found on the candidate. A failing check that could
/// not run on the candidate leaves it unjudged (an error, never "clean").
pub fn judge_candidate(failing: &[String], found: &[IntegrityFinding]) -> DrResult<bool> {
    let mut clean = true;
    for finding in found.iter().filter(|f| failing.contains(&f.name)) {
        if finding.status != "failed" {
            return Err(DrError::Internal(format!(
                "check {} could not run on the candidate: {}",
                finding.name,
                finding.detail.as_deref().unwrap_or("no detail")
            )));
        }
        clean = false;
    }
    Ok(clean)
}

pub async fn integrity_check(
    ports: &Ports,
    input: IntegrityCheckInput,
) -> DrResult<IntegrityCheckOutput> {
    if input.mode == CheckMode::Candidate && input.failing.is_empty() {
        return Err(DrError::InvalidInput(
            "a candidate is judged by the checks that failed on the primary: failing is empty"
                .to_owned(),
        ));
    }
    let (description, target) = super::instance_target(
        ports,
        &input.instance_id,
        &input.database,
        &input.credentials_secret_id,
        15 * 60 * 1000,
    )
    .await?;
    if description.status != InstanceStatus::Available {
        return Err(DrError::NotReady(format!(
            "{} is {}",
            input.instance_id, description.status
        )));
    }
    // A candidate or the restore restored to before a rotation holds the
    // old passwords (only our restores: never the primary).
    let application = match input.mode {
        CheckMode::Verify => input.application.as_ref(),
        _ => None,
    };
    crate::restored::align_passwords(ports, None, &description, &target, application).await?;
    let checked_at = dr_core::clock::now();
    let summary = ports
        .integrity
        .verify(&target, None, 0.0, &input.checks)
        .await?;
    let failing: Vec<String> = summary
        .failed_checks
        .iter()
        .filter(|f| f.status == "failed")
        .map(|f| f.name.clone())
        .collect();
    let (decision, clean) = match input.mode {
        CheckMode::Scope => {
            if !summary.passed && failing.is_empty() {
                // Only checks that could not run: our verifier, not the
                // data, is what failed. Never a reason to restore.
                return Err(DrError::Internal(format!(
                    "the integrity checks could not run on {} ({}): nothing was changed",
                    input.instance_id,
                    summary.findings.join("; ")
                )));
            }
            let decision = match (failing.is_empty(), input.restore_time.is_some()) {
                (false, _) => "corrupt",
                (true, true) => "restore_requested",
                (true, false) => "false_alarm",
            };
            (Some(decision.to_owned()), None)
        }
        CheckMode::Candidate => (
            None,
            Some(judge_candidate(&input.failing, &summary.failed_checks)?),
        ),
        CheckMode::Verify => (None, None),
    };
    Ok(IntegrityCheckOutput {
        mode: input.mode,
        instance_id: input.instance_id,
        passed: summary.passed,
        failing,
        findings: summary.failed_checks,
        row_counts: summary.row_counts,
        checks_run: summary.checks_run,
        duration_ms: summary.duration_ms,
        checked_at,
        decision,
        clean,
        at: input.at,
    })
}

/// One candidate of a round: the moment and the instance it goes into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateItem {
    pub at: DateTime<Utc>,
    pub instance_id: InstanceId,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum SearchStepInput {
    /// The first round, once the scope found the damage at `corrupt_at`.
    Start {
        plan: Box<CorruptionPlan>,
        corrupt_at: DateTime<Utc>,
    },
    /// The next round from the last one's verdicts.
    Narrow {
        plan: Box<CorruptionPlan>,
        state: SearchState,
        verdicts: Vec<Verdict>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchStepOutput {
    pub state: SearchState,
    /// This round's candidates (empty when done).
    pub items: Vec<CandidateItem>,
    /// What the run prints up front: the most rounds it will take.
    pub rounds_bound: u32,
    pub done: bool,
    pub chosen: Option<DateTime<Utc>>,
}

fn candidate_id(plan: &CorruptionPlan, at: DateTime<Utc>) -> DrResult<InstanceId> {
    InstanceId::parse(&format!("{}{}", plan.candidate_prefix, at.timestamp()))
}

pub fn search_step(input: SearchStepInput) -> DrResult<SearchStepOutput> {
    let (plan, state) = match input {
        SearchStepInput::Start { plan, corrupt_at } => {
            // The newest moment a restore can reach bounds the search too.
            let to = [
                Some(corrupt_at),
                plan.search_to,
                Some(plan.latest_restorable),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(corrupt_at);
            let state = search::start(
                plan.search_from,
                to,
                plan.candidates_per_round,
                plan.resolution_seconds,
            )?;
            (plan, state)
        }
        SearchStepInput::Narrow {
            plan,
            state,
            verdicts,
        } => {
            let next = search::narrow(&state, &verdicts)?;
            (plan, next)
        }
    };
    let items = state
        .candidates
        .iter()
        .map(|at| {
            Ok(CandidateItem {
                at: *at,
                instance_id: candidate_id(&plan, *at)?,
            })
        })
        .collect::<DrResult<Vec<_>>>()?;
    Ok(SearchStepOutput {
        rounds_bound: state.max_rounds,
        done: state.done,
        chosen: state.chosen,
        items,
        state,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestorePurpose {
    /// A throw-away copy to judge a moment by: tagged ephemeral.
    Candidate,
    /// The chosen moment, to become the primary: never ephemeral, and
    /// managed like the instances it replaces.
    Restore,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum PitrRestoreInput {
    /// Restores `source_id` as it was at `restore_time` into `target_id`,
    /// placed where the source is. Idempotent.
    Start {
        source_id: InstanceId,
        target_id: InstanceId,
        restore_time: DateTime<Utc>,
        purpose: RestorePurpose,
        recovery_id: String,
        /// The database's own tags (a drill copy's: what makes every
        /// instance the rehearsal creates the drill's to remove).
        #[serde(default)]
        tags: Tags,
    },
    /// Deletes a candidate of this recovery (gone already is fine).
    Delete {
        instance_id: InstanceId,
        recovery_id: String,
    },
    /// Deletes every candidate this recovery left.
    Sweep { recovery_id: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PitrRestoreOutput {
    pub instances: Vec<InstanceId>,
    pub status: Option<String>,
    pub mutation: Option<String>,
}

/// Whether an instance is a candidate of this recovery (and so ours to delete).
fn is_candidate_of(description: &InstanceDescription, recovery_id: &str) -> bool {
    description.is_ephemeral()
        && description.tags.get(RECOVERY_TAG).map(String::as_str) == Some(recovery_id)
        && description.tags.contains_key(CANDIDATE_TAG)
}

pub async fn pitr_restore(ports: &Ports, input: PitrRestoreInput) -> DrResult<PitrRestoreOutput> {
    match input {
        PitrRestoreInput::Start {
            source_id,
            target_id,
            restore_time,
            purpose,
            recovery_id,
            tags: own_tags,
        } => {
            check_recovery_id(&recovery_id)?;
            let source = ports.control_plane.describe_instance(&source_id).await?;
            let mut tags = own_tags;
            tags.extend([
                (RECOVERY_TAG.to_owned(), recovery_id.clone()),
                (
                    crate::restored::RESTORED_FROM_TAG.to_owned(),
                    source_id.to_string(),
                ),
                ("dr:restore-time".to_owned(), restore_time.to_rfc3339()),
            ]);
            match purpose {
                RestorePurpose::Candidate => {
                    tags.insert(EPHEMERAL_TAG.to_owned(), "true".to_owned());
                    tags.insert(
                        CANDIDATE_TAG.to_owned(),
                        restore_time.timestamp().to_string(),
                    );
                }
                RestorePurpose::Restore => {
                    // What the recovery's policies select on, as for the
                    // instances it replaces.
                    tags.insert("dr:managed".to_owned(), "true".to_owned());
                    for key in ["Application", "Environment", "DrDrill"] {
                        if let Some(value) = source.tags.get(key) {
                            tags.insert(key.to_owned(), value.clone());
                        }
                    }
                }
            }
            let restored = ports
                .control_plane
                .restore_to_point_in_time(&PointInTimeRestoreRequest {
                    source_id: source_id.clone(),
                    target_id: target_id.clone(),
                    restore_time,
                    tags,
                    network: source.network.clone(),
                })
                .await?;
            Ok(PitrRestoreOutput {
                instances: vec![restored.instance_id],
                status: Some(restored.status.as_str().to_owned()),
                mutation: Some(format!(
                    "restored {source_id} as of {} into {target_id} ({})",
                    restore_time.to_rfc3339(),
                    match purpose {
                        RestorePurpose::Candidate => "a throw-away candidate",
                        RestorePurpose::Restore => "the new primary-to-be",
                    }
                )),
            })
        }
        PitrRestoreInput::Delete {
            instance_id,
            recovery_id,
        } => {
            check_recovery_id(&recovery_id)?;
            let description = match ports.control_plane.describe_instance(&instance_id).await {
                Ok(d) => d,
                Err(DrError::NotFound(_)) => {
                    return Ok(PitrRestoreOutput {
                        instances: vec![],
                        status: None,
                        mutation: None,
                    })
                }
                Err(e) => return Err(e),
            };
            if !is_candidate_of(&description, &recovery_id) {
                return Err(DrError::Unsafe(format!(
                    "{instance_id} is not a candidate of recovery {recovery_id}: it is never deleted here"
                )));
            }
            delete(ports, &instance_id).await
        }
        PitrRestoreInput::Sweep { recovery_id } => {
            check_recovery_id(&recovery_id)?;
            // Every candidate is tried: one RDS will not delete yet (still
            // creating) or at all must not keep the others running.
            let mut deleted = Vec::new();
            let mut left: Vec<(InstanceId, DrError)> = Vec::new();
            for description in ports.control_plane.list_instances().await? {
                if is_candidate_of(&description, &recovery_id)
                    && description.status != InstanceStatus::Deleting
                {
                    match delete(ports, &description.instance_id).await {
                        Ok(_) => deleted.push(description.instance_id),
                        Err(e) => left.push((description.instance_id, e)),
                    }
                }
            }
            if let Some(error) = sweep_failure(&deleted, left) {
                return Err(error);
            }
            let mutation = (!deleted.is_empty()).then(|| {
                format!(
                    "deleted the candidates left behind: {}",
                    deleted
                        .iter()
                        .map(InstanceId::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
            Ok(PitrRestoreOutput {
                instances: deleted,
                status: None,
                mutation,
            })
        }
    }
}

/// The sweep's error when candidates are left: the first one's (its name,
/// so a retry or the death rule's Lambda retries try again), naming every
/// candidate left and what was deleted.
fn sweep_failure(deleted: &[InstanceId], left: Vec<(InstanceId, DrError)>) -> Option<DrError> {
    let names = |ids: &mut dyn Iterator<Item = &InstanceId>| {
        ids.map(InstanceId::as_str).collect::<Vec<_>>().join(", ")
    };
    let all_left = names(&mut left.iter().map(|(id, _)| id));
    let deleted = if deleted.is_empty() {
        "none".to_owned()
    } else {
        names(&mut deleted.iter())
    };
    let (first, error) = left.into_iter().next()?;
    Some(error.context(format!(
        "candidates not deleted: {all_left} (deleted: {deleted}); {first}"
    )))
}

async fn delete(ports: &Ports, id: &InstanceId) -> DrResult<PitrRestoreOutput> {
    match ports
        .control_plane
        .delete_instance(id, DeleteOptions::default())
        .await
    {
        Ok(()) | Err(DrError::NotFound(_)) => Ok(PitrRestoreOutput {
            instances: vec![id.clone()],
            status: Some("deleting".to_owned()),
            mutation: Some(format!("deleted candidate {id}")),
        }),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(name: &str, status: &str) -> IntegrityFinding {
        IntegrityFinding {
            name: name.into(),
            kind: "foreign_key".into(),
            status: status.into(),
            count: Some(3),
            samples: vec![],
            detail: None,
        }
    }

    #[test]
    fn a_candidate_is_judged_by_the_primarys_failing_checks_only() {
        let failing = vec!["fk_stories_author_id_fkey".to_owned()];
        // (found on the candidate) -> clean?
        let cases: Vec<(Vec<IntegrityFinding>, Option<bool>)> = vec![
            (vec![], Some(true)),
            (
                vec![finding("fk_stories_author_id_fkey", "failed")],
                Some(false),
            ),
            (vec![finding("btree_other_idx", "failed")], Some(true)),
            (vec![finding("fk_stories_author_id_fkey", "error")], None),
        ];
        for (found, expected) in cases {
            assert_eq!(
                judge_candidate(&failing, &found).ok(),
                expected,
                "{found:?}"
            );
        }
    }
}
