//! The rollback's steps: the migration job (started, then followed), the
//! undo, the rollout's status.

use dr_core::*;
use serde::{Deserialize, Serialize};

use crate::journal::{journaled, JournalRef, Journaled};
use crate::Ports;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum RollbackStepInput {
    /// `manage.py migrate <app> <target>` as a one-off job (same name: joined).
    Migrate {
        deployment: DeploymentRef,
        job: MigrationJob,
        journal: JournalRef,
    },
    JobStatus {
        deployment: DeploymentRef,
        job: String,
    },
    /// `kubectl rollout undo` to the planned template (found again by its
    /// hash: a retry after the undo finds it current and changes nothing).
    Undo {
        deployment: DeploymentRef,
        to: AppRevision,
        journal: JournalRef,
    },
    /// `kubectl rollout status`, and the template it rolls out.
    RolloutStatus {
        deployment: DeploymentRef,
        to: AppRevision,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackStepOutput {
    /// Finished (the job succeeded, the rollout is done).
    pub done: bool,
    /// Will not finish: waiting longer does not help.
    pub failed: bool,
    pub detail: String,
    /// The revision the deployment runs now (undo, rollout status).
    #[serde(default)]
    pub revision: Option<u64>,
    #[serde(default)]
    pub job: Option<JobState>,
    pub mutation: Option<String>,
}

impl Journaled for RollbackStepOutput {
    fn change(&self) -> Option<String> {
        self.mutation.clone()
    }
}

/// The last lines of a job's output, on one line, for the report.
fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(4);
    crate::truncate_message(&lines[start..].join(" | "))
}

pub async fn rollback_step(
    ports: &Ports,
    input: RollbackStepInput,
) -> DrResult<RollbackStepOutput> {
    match input {
        RollbackStepInput::Migrate {
            deployment,
            job,
            journal,
        } => {
            deployment.validate()?;
            job.validate()?;
            let what = format!(
                "migrating {} back to {} with revision {} of {deployment} (job {})",
                job.app, job.target, job.revision, job.name
            );
            journaled(ports, Some(&journal), "migration", &what, async {
                ports.deployment.run_migration(&deployment, &job).await?;
                Ok(RollbackStepOutput {
                    done: false,
                    failed: false,
                    detail: format!("job {} started", job.name),
                    revision: None,
                    job: Some(JobState::Running),
                    mutation: Some(format!(
                        "job {} ran `manage.py migrate {} {}` with revision {} of {deployment}",
                        job.name, job.app, job.target, job.revision
                    )),
                })
            })
            .await
        }
        RollbackStepInput::JobStatus { deployment, job } => {
            deployment.validate()?;
            let state = ports.deployment.migration_state(&deployment, &job).await?;
            let (done, failed, detail) = match &state {
                JobState::Running => (false, false, format!("job {job} running")),
                JobState::Succeeded { output } => (true, false, tail(output)),
                JobState::Failed { reason } => (false, true, tail(reason)),
            };
            Ok(RollbackStepOutput {
                done,
                failed,
                detail,
                revision: None,
                job: Some(match state {
                    JobState::Succeeded { output } => JobState::Succeeded {
                        output: tail(&output),
                    },
                    JobState::Failed { reason } => JobState::Failed {
                        reason: tail(&reason),
                    },
                    running => running,
                }),
                mutation: None,
            })
        }
        RollbackStepInput::Undo {
            deployment,
            to,
            journal,
        } => {
            deployment.validate()?;
            let what = format!(
                "rolling {deployment} back to revision {} ({})",
                to.revision, to.image
            );
            journaled(ports, Some(&journal), "undo", &what, async {
                let status = ports.deployment.describe_deployment(&deployment).await?;
                if status.current.template_hash == to.template_hash {
                    return Ok(RollbackStepOutput {
                        done: true,
                        failed: false,
                        detail: format!(
                            "{deployment} already runs the template of revision {} (now revision {})",
                            to.revision, status.current.revision
                        ),
                        revision: Some(status.current.revision),
                        job: None,
                        mutation: None,
                    });
                }
                let target = status
                    .revisions
                    .iter()
                    .find(|r| r.template_hash == to.template_hash)
                    .cloned()
                    .ok_or_else(|| {
                        DrError::Unsafe(format!(
                            "the template of revision {} ({}) is no longer in {deployment}'s history: someone changed the deployment since the plan",
                            to.revision, to.image
                        ))
                    })?;
                if status.paused {
                    return Err(DrError::Unsafe(format!(
                        "{deployment} was paused since the plan: resume it (kubectl rollout resume) and rerun"
                    )));
                }
                // Remembered past this recovery, before the change (the
                // plan's guard checks that it landed): a later rollback must
                // not take "previous" to mean the release this one replaced.
                let last = super::LastRollback {
                    from: status.current.clone(),
                    to: target.clone(),
                    execution: journal.recovery_id.clone(),
                };
                let remember = |status: JournalStatus| JournalEntry {
                    recovery_id: super::history_id(&deployment),
                    key: super::LAST_ROLLBACK_KEY.to_owned(),
                    execution: journal.execution.clone(),
                    at: dr_core::clock::now(),
                    status,
                    summary: format!(
                        "{} rolled {deployment} back from revision {} ({}) to the template of revision {}",
                        journal.recovery_id, last.from.revision, last.from.image, target.revision
                    ),
                    detail: serde_json::to_value(&last).ok(),
                };
                ports.journal.record(&remember(JournalStatus::Started)).await?;
                let now = ports.deployment.roll_back(&deployment, &target).await?;
                ports.journal.record(&remember(JournalStatus::Done)).await?;
                Ok(RollbackStepOutput {
                    done: true,
                    failed: false,
                    detail: format!("rolled back to {}", target.image),
                    revision: Some(now),
                    job: None,
                    mutation: Some(format!(
                        "rolled {deployment} back from revision {} ({}) to the template of revision {} ({}), now revision {now}",
                        status.current.revision, status.current.image, target.revision, target.image
                    )),
                })
            })
            .await
        }
        RollbackStepInput::RolloutStatus { deployment, to } => {
            deployment.validate()?;
            let status = ports.deployment.describe_deployment(&deployment).await?;
            let progress = rollout_progress(&status.rollout);
            let ours = status.current.template_hash == to.template_hash;
            let (done, failed, detail) = match (&progress, ours) {
                (_, false) => (
                    false,
                    true,
                    format!(
                        "{deployment} now rolls out revision {} ({}), not the one rolled back to: someone deployed meanwhile",
                        status.current.revision, status.current.image
                    ),
                ),
                (RolloutProgress::Done, true) => (
                    true,
                    false,
                    format!("deployment {deployment} successfully rolled out"),
                ),
                (RolloutProgress::Waiting { message }, true) => (false, false, message.clone()),
                (RolloutProgress::Failed { message }, true) => (false, true, message.clone()),
            };
            Ok(RollbackStepOutput {
                done,
                failed,
                detail,
                revision: Some(status.current.revision),
                job: None,
                mutation: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_tail_keeps_the_last_lines() {
        assert_eq!(
            tail("Operations:\n\n  a\n  b\n  c\n  Unapplying x... OK\n"),
            "  a |   b |   c |   Unapplying x... OK"
        );
        assert_eq!(tail(""), "");
    }
}
