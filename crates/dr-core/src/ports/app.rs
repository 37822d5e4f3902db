//! The application tier's ports: its deployment (a Kubernetes Deployment on
//! AWS, revisions of the local MueJam API locally) and the health URL every
//! recovery ends on. The fleet of servers is [`AppFleet`](super::AppFleet).
//!
//! The two decisions kubectl makes for a rollback — which revision `rollout
//! undo` goes back to, and when `rollout status` is done — are pure
//! functions here, so every adapter answers them the same way.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{DrError, DrResult};

/// A deployment of the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentRef {
    /// Kubernetes namespace (locally: ignored but checked like one).
    pub namespace: String,
    pub name: String,
}

/// A name as Kubernetes takes it (a DNS-1123 label: lower-case letters,
/// digits and '-', 1 to 63, no '-' at either end).
pub fn validate_k8s_name(what: &str, value: &str) -> DrResult<()> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(DrError::InvalidInput(format!(
            "{what} {value:?} is not a Kubernetes name (lower-case letters, digits and '-', 1 to 63)"
        )))
    }
}

impl DeploymentRef {
    pub fn validate(&self) -> DrResult<()> {
        validate_k8s_name("deployment namespace", &self.namespace)?;
        validate_k8s_name("deployment name", &self.name)
    }
}

impl std::fmt::Display for DeploymentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One revision of a deployment's pod template (a ReplicaSet on Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRevision {
    /// `deployment.kubernetes.io/revision`.
    pub revision: u64,
    pub image: String,
    /// The template's identity (the pod-template-hash on Kubernetes): two
    /// revisions with the same hash run the same thing.
    pub template_hash: String,
    /// `kubernetes.io/change-cause`, when someone recorded one.
    pub change_cause: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// The counters and conditions `kubectl rollout status` reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutObservation {
    pub generation: i64,
    pub observed_generation: i64,
    /// `spec.replicas` (absent means the API server's default).
    pub desired_replicas: Option<u32>,
    /// `status.replicas`: old and new pods together.
    pub replicas: u32,
    pub updated_replicas: u32,
    pub available_replicas: u32,
    /// The Progressing condition's reason (`ProgressDeadlineExceeded` when
    /// the rollout gave up).
    pub progressing_reason: Option<String>,
}

/// What `kubectl rollout status` would say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RolloutProgress {
    Done,
    Waiting {
        message: String,
    },
    /// The progress deadline passed: waiting longer will not help.
    Failed {
        message: String,
    },
}

impl RolloutProgress {
    pub fn is_done(&self) -> bool {
        matches!(self, RolloutProgress::Done)
    }
}

/// kubectl's `DeploymentStatusViewer`: done only once the controller has
/// seen the latest spec (observedGeneration), every desired replica runs the
/// new template, no old replica is left, and every updated one is available.
/// A status written before the latest change is "waiting", never "done".
pub fn rollout_progress(o: &RolloutObservation) -> RolloutProgress {
    if o.generation > o.observed_generation {
        return RolloutProgress::Waiting {
            message: "waiting for the deployment spec update to be observed".to_owned(),
        };
    }
    if o.progressing_reason.as_deref() == Some("ProgressDeadlineExceeded") {
        return RolloutProgress::Failed {
            message: "the rollout exceeded its progress deadline".to_owned(),
        };
    }
    if let Some(desired) = o.desired_replicas {
        if o.updated_replicas < desired {
            return RolloutProgress::Waiting {
                message: format!(
                    "{} out of {desired} new replicas have been updated",
                    o.updated_replicas
                ),
            };
        }
    }
    if o.replicas > o.updated_replicas {
        return RolloutProgress::Waiting {
            message: format!(
                "{} old replicas are pending termination",
                o.replicas - o.updated_replicas
            ),
        };
    }
    if o.available_replicas < o.updated_replicas {
        return RolloutProgress::Waiting {
            message: format!(
                "{} of {} updated replicas are available",
                o.available_replicas, o.updated_replicas
            ),
        };
    }
    RolloutProgress::Done
}

/// Where `rollout undo` goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum UndoChoice {
    /// Roll back to this revision's template.
    RollBack { to: AppRevision },
    /// The current template already is that revision's: nothing to do
    /// (kubectl: "skipped rollback").
    AlreadyThere { revision: u64 },
}

/// kubectl's `rollout undo`: a paused deployment is refused; without
/// `to_revision` the target is the revision just below the newest one (the
/// newest being the current template); with it, exactly that revision or an
/// error; a target whose template is the current one is skipped.
pub fn undo_choice(
    revisions: &[AppRevision],
    current_template_hash: &str,
    paused: bool,
    to_revision: Option<u64>,
) -> DrResult<UndoChoice> {
    if paused {
        return Err(DrError::Unsafe(
            "the deployment is paused: resume it first (kubectl rollout resume) and try again"
                .to_owned(),
        ));
    }
    let target = match to_revision {
        Some(wanted) => revisions
            .iter()
            .find(|r| r.revision == wanted)
            .ok_or_else(|| {
                DrError::InvalidInput(format!("revision {wanted} is not in the rollout history"))
            })?,
        None => {
            let mut newest: Option<&AppRevision> = None;
            let mut previous: Option<&AppRevision> = None;
            for r in revisions {
                if newest.is_none_or(|n| n.revision < r.revision) {
                    previous = newest;
                    newest = Some(r);
                } else if previous.is_none_or(|p| p.revision < r.revision) {
                    previous = Some(r);
                }
            }
            previous.ok_or_else(|| {
                DrError::InvalidInput(
                    "no rollout history: there is no previous revision to go back to".to_owned(),
                )
            })?
        }
    };
    if target.template_hash == current_template_hash {
        return Ok(UndoChoice::AlreadyThere {
            revision: target.revision,
        });
    }
    Ok(UndoChoice::RollBack { to: target.clone() })
}

/// A deployment as the rollback needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentStatus {
    pub deployment: DeploymentRef,
    /// The revision the template now is.
    pub current: AppRevision,
    /// Every revision kept in the history, the current one included.
    pub revisions: Vec<AppRevision>,
    pub paused: bool,
    /// The current template's environment (names only carry meaning; values
    /// from secrets are never read).
    pub env: BTreeMap<String, String>,
    pub rollout: RolloutObservation,
}

/// A one-off migration job (`manage.py migrate <app> <migration>` run with
/// the current revision's image, which still has the migration files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationJob {
    /// The job's name: running it again with the same name joins it.
    pub name: String,
    /// The revision whose image runs the job.
    pub revision: u64,
    /// The Django app label.
    pub app: String,
    /// The migration to go back to (`zero` unapplies them all).
    pub target: String,
}

impl MigrationJob {
    /// The job's name is a Kubernetes name (and a file name locally); the
    /// app and the target are Django labels (they become a command's
    /// arguments).
    pub fn validate(&self) -> DrResult<()> {
        validate_k8s_name("job name", &self.name)?;
        validate_django_label(&self.app)?;
        validate_django_label(&self.target)
    }
}

/// A Django app label or migration name: letters, digits and '_', at most
/// 100 (`manage.py migrate <app> <name>`).
pub fn validate_django_label(value: &str) -> DrResult<()> {
    if value.is_empty()
        || value.len() > 100
        || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        let shown: String = value.chars().take(100).collect();
        return Err(DrError::InvalidInput(format!(
            "{shown:?} is not a Django app label or migration name"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    Running,
    Succeeded { output: String },
    Failed { reason: String },
}

/// The environment variable that puts the application in maintenance:
/// reads go on, writes answer 503 (runbook "Data Corruption", step 2).
pub const READ_ONLY_MODE: &str = "READ_ONLY_MODE";

/// `READ_ONLY_MODE` as Django settings read it: true, 1, yes, on (any case,
/// surrounding blanks ignored); anything else, or unset, is off.
pub fn read_only_mode_on(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "on"
        )
    })
}

/// The deployment: rollouts and their history, environment, one-off jobs.
#[async_trait]
pub trait AppDeployment: Send + Sync {
    async fn describe_deployment(&self, deployment: &DeploymentRef) -> DrResult<DeploymentStatus>;
    /// `kubectl rollout restart`: the same template, every pod replaced.
    async fn rollout_restart(&self, deployment: &DeploymentRef) -> DrResult<()>;
    /// Makes `to` the current template (the decision is [`undo_choice`]'s);
    /// returns the revision number the template now has.
    async fn roll_back(&self, deployment: &DeploymentRef, to: &AppRevision) -> DrResult<u64>;
    /// `kubectl set env NAME=value` (or `NAME-` to unset with `None`); a
    /// no-op when the template already says so.
    async fn set_env(
        &self,
        deployment: &DeploymentRef,
        name: &str,
        value: Option<&str>,
    ) -> DrResult<()>;
    /// Starts the job, or joins the one of the same name.
    async fn run_migration(&self, deployment: &DeploymentRef, job: &MigrationJob) -> DrResult<()>;
    async fn migration_state(&self, deployment: &DeploymentRef, job: &str) -> DrResult<JobState>;
    /// The migrations the app's migrations table says are applied, for
    /// `app`, in order; and the ones the given revision's files know.
    async fn migrations(
        &self,
        deployment: &DeploymentRef,
        revision: u64,
        app: &str,
    ) -> DrResult<MigrationHistory>;
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationHistory {
    pub applied: Vec<String>,
    /// The migrations the revision's files define, in order.
    pub known: Vec<String>,
}

/// One HTTP check of a health URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthObservation {
    pub url: String,
    /// The status code, or `None` when no answer came (refused, timed out).
    pub status: Option<u16>,
    pub healthy: bool,
    pub latency_ms: u64,
    /// Why not healthy: the transport error or the start of the body.
    pub detail: Option<String>,
    pub checked_at: DateTime<Utc>,
}

/// `curl <url>`: the end of every runbook procedure.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Never fails because the application is down (that is the answer);
    /// fails only when the URL itself is unusable.
    async fn check(
        &self,
        url: &str,
        timeout_ms: u64,
        expected_status: u16,
    ) -> DrResult<HealthObservation>;
}

/// A health URL we may call: http or https, a host, no credentials in it.
pub fn validate_health_url(url: &str) -> DrResult<()> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            DrError::InvalidInput(format!("health URL {url:?} must start with http(s)://"))
        })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || url.len() > 2048 {
        return Err(DrError::InvalidInput(format!(
            "health URL {url:?} needs a host and no user or password"
        )));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DrError::InvalidInput(
            "the health URL has spaces or control characters".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_labels_are_checked_before_they_become_arguments() {
        for good in ["muejam", "0002_story_views_source", "zero"] {
            assert!(validate_django_label(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "x;rm", "../x", "--fake", &"a".repeat(101)] {
            assert!(validate_django_label(bad).is_err(), "{bad}");
        }
        let job = |app: &str, target: &str| MigrationJob {
            name: "rollback-1-migrate".into(),
            revision: 2,
            app: app.into(),
            target: target.into(),
        };
        assert!(job("muejam", "0002_b").validate().is_ok());
        assert!(job("muejam", "0002; drop").validate().is_err());
        assert!(job("mue jam", "0002_b").validate().is_err());
    }

    fn rev(revision: u64, hash: &str) -> AppRevision {
        AppRevision {
            revision,
            image: format!("muejam-api:{revision}"),
            template_hash: hash.to_owned(),
            change_cause: None,
            created_at: None,
        }
    }

    #[test]
    fn rollout_status_reads_like_kubectl() {
        let base = RolloutObservation {
            generation: 4,
            observed_generation: 4,
            desired_replicas: Some(3),
            replicas: 3,
            updated_replicas: 3,
            available_replicas: 3,
            progressing_reason: Some("NewReplicaSetAvailable".to_owned()),
        };
        let cases: Vec<(&str, RolloutObservation, &str)> = vec![
            ("all agree", base.clone(), "done"),
            (
                "a stale status: the controller has not seen the new spec",
                RolloutObservation {
                    generation: 5,
                    ..base.clone()
                },
                "spec update to be observed",
            ),
            (
                "new replicas still coming",
                RolloutObservation {
                    updated_replicas: 1,
                    replicas: 4,
                    ..base.clone()
                },
                "1 out of 3 new replicas",
            ),
            (
                "old replicas still running",
                RolloutObservation {
                    replicas: 5,
                    ..base.clone()
                },
                "2 old replicas are pending termination",
            ),
            (
                "updated but not available",
                RolloutObservation {
                    available_replicas: 2,
                    ..base.clone()
                },
                "2 of 3 updated replicas are available",
            ),
            (
                "deadline exceeded",
                RolloutObservation {
                    progressing_reason: Some("ProgressDeadlineExceeded".to_owned()),
                    available_replicas: 0,
                    ..base.clone()
                },
                "failed",
            ),
            (
                "a deadline on a stale status is not read yet",
                RolloutObservation {
                    generation: 5,
                    progressing_reason: Some("ProgressDeadlineExceeded".to_owned()),
                    ..base.clone()
                },
                "spec update to be observed",
            ),
            (
                "no desired count: the replicas decide",
                RolloutObservation {
                    desired_replicas: None,
                    ..base.clone()
                },
                "done",
            ),
        ];
        for (name, observation, expected) in cases {
            let got = rollout_progress(&observation);
            let text = match &got {
                RolloutProgress::Done => "done".to_owned(),
                RolloutProgress::Waiting { message } => message.clone(),
                RolloutProgress::Failed { .. } => "failed".to_owned(),
            };
            assert!(text.contains(expected), "{name}: {got:?}");
        }
    }

    #[test]
    fn undo_goes_to_the_revision_below_the_newest_as_kubectl_does() {
        let history = [rev(1, "a"), rev(3, "c"), rev(2, "b")];
        // The newest (3) is the current template: back to 2.
        assert_eq!(
            undo_choice(&history, "c", false, None).expect("undo"),
            UndoChoice::RollBack { to: rev(2, "b") }
        );
        // After an undo to 2, revision 2 became 4: the previous is 3.
        let after = [rev(1, "a"), rev(3, "c"), rev(4, "b")];
        assert_eq!(
            undo_choice(&after, "b", false, None).expect("undo"),
            UndoChoice::RollBack { to: rev(3, "c") }
        );
        // An explicit revision, exactly that one.
        assert_eq!(
            undo_choice(&history, "c", false, Some(1)).expect("undo"),
            UndoChoice::RollBack { to: rev(1, "a") }
        );
        assert_eq!(
            undo_choice(&history, "c", false, Some(9))
                .expect_err("unknown revision")
                .name(),
            "InvalidInput"
        );
        // The target already is the current template.
        assert_eq!(
            undo_choice(&history, "b", false, None).expect("undo"),
            UndoChoice::AlreadyThere { revision: 2 }
        );
        // Paused: refused whatever the history.
        assert_eq!(
            undo_choice(&history, "c", true, None)
                .expect_err("paused")
                .name(),
            "Unsafe"
        );
        // One revision only: nothing to go back to.
        assert_eq!(
            undo_choice(&[rev(1, "a")], "a", false, None)
                .expect_err("no history")
                .name(),
            "InvalidInput"
        );
    }

    #[test]
    fn kubernetes_names_are_checked() {
        for ok in ["muejam-api", "rollback-1", "a"] {
            assert!(validate_k8s_name("n", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Muejam",
            "../../etc",
            "a.b",
            &"x".repeat(64),
        ] {
            assert!(validate_k8s_name("n", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn health_urls_are_checked() {
        for ok in [
            "https://api.muejam.com/health",
            "http://127.0.0.1:8080/health",
        ] {
            assert!(validate_health_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://x/health",
            "https:///health",
            "https://user:pw@api.muejam.com/health",
            "https://api.muejam.com/he alth",
            "",
        ] {
            assert!(validate_health_url(bad).is_err(), "{bad}");
        }
    }
}
