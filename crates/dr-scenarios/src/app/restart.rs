//! The application restarted after the database moved (runbook "Database
//! Failure", after the DNS switch: `kubectl rollout restart`): a rolling
//! restart, so that every server's connections to the old primary end and
//! the new ones resolve the record again; its rollout followed.

use dr_core::*;
use serde::{Deserialize, Serialize};

use crate::journal::{journaled, JournalRef};
use crate::rollback::steps::RollbackStepOutput;
use crate::Ports;

/// The application a recovery restarts and checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppTarget {
    pub deployment: DeploymentRef,
    pub health_url: String,
}

impl AppTarget {
    /// `None` for a request that names no deployment (an alarm rule
    /// without one configured sends an empty name).
    pub fn validated(request: Option<AppTarget>) -> DrResult<Option<AppTarget>> {
        match request {
            Some(a) if a.deployment.name.is_empty() => Ok(None),
            Some(a) => {
                a.deployment.validate()?;
                validate_health_url(&a.health_url)?;
                Ok(Some(a))
            }
            None => Ok(None),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum RestartAppInput {
    /// `kubectl rollout restart`, once per recovery.
    Restart {
        deployment: DeploymentRef,
        journal: JournalRef,
    },
    /// `kubectl rollout status`.
    Status { deployment: DeploymentRef },
    /// `kubectl set env READ_ONLY_MODE=true` before a recovery stops the
    /// writes (see [`crate::corruption::read_only`]).
    ReadOnly {
        deployment: DeploymentRef,
        journal: JournalRef,
    },
    /// Its lift, when the journal says the writes are back.
    LiftReadOnly { journal: JournalRef },
}

pub const JOURNAL_KEY: &str = "app_restart";

pub async fn restart_app(ports: &Ports, input: RestartAppInput) -> DrResult<RollbackStepOutput> {
    match input {
        RestartAppInput::Restart {
            deployment,
            journal,
        } => {
            deployment.validate()?;
            // A retry (or a rerun of the recovery) does not restart twice.
            let done_before = ports
                .journal
                .entries(&journal.recovery_id)
                .await?
                .into_iter()
                .any(|e| e.key == JOURNAL_KEY && e.status == JournalStatus::Done);
            let what = format!("restarting {deployment} (rolling)");
            journaled(ports, Some(&journal), JOURNAL_KEY, &what, async {
                if !done_before {
                    ports.deployment.rollout_restart(&deployment).await?;
                }
                Ok(RollbackStepOutput {
                    done: false,
                    failed: false,
                    detail: format!("{deployment} restarting"),
                    revision: None,
                    job: None,
                    mutation: (!done_before).then(|| {
                        format!("restarted {deployment} (rolling) so its servers reconnect through the record")
                    }),
                })
            })
            .await
        }
        RestartAppInput::ReadOnly {
            deployment,
            journal,
        } => crate::corruption::read_only::set_read_only(ports, &deployment, &journal).await,
        RestartAppInput::LiftReadOnly { journal } => {
            crate::corruption::read_only::lift_read_only(ports, &journal).await
        }
        RestartAppInput::Status { deployment } => {
            deployment.validate()?;
            let status = ports.deployment.describe_deployment(&deployment).await?;
            let (done, failed, detail) = match rollout_progress(&status.rollout) {
                RolloutProgress::Done => (
                    true,
                    false,
                    format!("deployment {deployment} successfully rolled out"),
                ),
                RolloutProgress::Waiting { message } => (false, false, message),
                RolloutProgress::Failed { message } => (false, true, message),
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
    fn an_empty_deployment_name_means_no_application() {
        let target = |name: &str, url: &str| AppTarget {
            deployment: DeploymentRef {
                namespace: "muejam".into(),
                name: name.into(),
            },
            health_url: url.into(),
        };
        assert_eq!(AppTarget::validated(None).expect("none"), None);
        assert_eq!(
            AppTarget::validated(Some(target("", "https://x/health"))).expect("empty"),
            None
        );
        assert!(
            AppTarget::validated(Some(target("muejam-api", "https://x/health")))
                .expect("ok")
                .is_some()
        );
        assert!(AppTarget::validated(Some(target("Bad_Name", "https://x/health"))).is_err());
        assert!(AppTarget::validated(Some(target("muejam-api", "ftp://x"))).is_err());
    }
}
