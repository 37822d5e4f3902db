//! Runbook "Rollback Procedures": a failed deployment rolled back, its
//! migration first. The migration goes back with the revision being left
//! (it still has the migration's file: `manage.py migrate <app> <target>`
//! as a one-off job), then `kubectl rollout undo`, `rollout status`, and
//! the health URL. The plan refuses what kubectl and Django would do
//! badly: no previous revision, a target it does not know, and a rollback
//! that would leave the database ahead of the code it rolls back to.

pub mod report;
pub mod steps;

use dr_core::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::journal::{note, JournalRef};
use crate::report::ExecutionInfo;
use crate::Ports;

pub const SCENARIO: &str = "deployment-rollback";
/// Django's target for "no migration of the app".
pub const ZERO: &str = "zero";
pub const DEFAULT_POLL_SECONDS: u64 = 10;
pub const DEFAULT_MAX_WAIT_SECONDS: u64 = 900;
pub const MAX_POLLS: u64 = 90;
pub const MAX_POLL_SECONDS: u64 = 300;
pub const MAX_WAIT_SECONDS: u64 = 1800;
pub const MAX_HEALTH_ATTEMPTS: u64 = 10;

/// The journal key, under [`history_id`], of the last rollback of a
/// deployment: what a later rollback must not undo by accident.
pub const LAST_ROLLBACK_KEY: &str = "last_rollback";

/// The journal's recovery id of a deployment's rollback history (the lock's
/// resource too).
pub fn history_id(d: &DeploymentRef) -> String {
    format!("deployment:{d}")
}

/// What the undo step records after it rolled a deployment back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastRollback {
    /// The release it replaced.
    pub from: AppRevision,
    /// The revision whose template it brought back.
    pub to: AppRevision,
    pub execution: String,
}

/// Pure: refuses kubectl's "previous revision" when it is the release the
/// last rollback replaced and the deployment still runs what that rollback
/// brought back: after `rollout undo`, the bad release *is* the previous
/// revision, and a second rollback (another name, the alarm firing again, a
/// careless rerun) would deploy it again. Naming `to_revision` goes past it.
pub fn repeat_guard(
    last: Option<&LastRollback>,
    current_hash: &str,
    target: &AppRevision,
    to_revision: Option<u64>,
) -> DrResult<()> {
    match last {
        Some(last)
            if to_revision.is_none()
                && last.to.template_hash == current_hash
                && last.from.template_hash == target.template_hash =>
        {
            Err(DrError::InvalidInput(format!(
                "kubectl's previous revision {} ({}) is the release rollback {} replaced; rolling back again would deploy it again. Name to_revision to go further back",
                target.revision, target.image, last.execution
            )))
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationRequest {
    /// The Django app label (`manage.py migrate <app> <target>`).
    pub app: String,
    /// The migration to go back to (`zero`: none of the app's). Without
    /// one, the plan only checks that the revision rolled back to knows
    /// every migration applied.
    #[serde(default)]
    pub target: Option<String>,
}

/// The execution input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    pub deployment: DeploymentRef,
    /// `kubectl rollout undo --to-revision`; default: the previous one.
    #[serde(default)]
    pub to_revision: Option<u64>,
    #[serde(default)]
    pub migration: Option<MigrationRequest>,
    pub health_url: String,
    #[serde(default)]
    pub health_timeout_ms: Option<u64>,
    #[serde(default)]
    pub limits: Option<crate::app::LimitsRequest>,
    #[serde(default)]
    pub trigger: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackPlanInput {
    pub request: Value,
    pub execution: ExecutionInfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackLimits {
    pub poll_seconds: u64,
    pub polls: u64,
    pub health_attempts: u64,
    pub health_timeout_ms: u64,
}

/// The migration job the plan decided on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedMigration {
    pub job: MigrationJob,
    /// Applied now, undone by the job (newest first).
    pub unapplies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackPlan {
    pub recovery_id: String,
    pub deployment: DeploymentRef,
    pub lock_resource: String,
    pub from: AppRevision,
    pub to: AppRevision,
    /// `None`: no migration to undo.
    pub migration: Option<PlannedMigration>,
    pub has_migration: bool,
    pub health_url: String,
    pub limits: RollbackLimits,
    #[serde(default)]
    pub trigger: Option<Value>,
    pub rto_objective_seconds: f64,
}

fn limits(request: &RollbackRequest) -> DrResult<RollbackLimits> {
    let given = request.limits.unwrap_or(crate::app::LimitsRequest {
        poll_seconds: None,
        max_wait_seconds: None,
        health_attempts: None,
    });
    let poll_seconds = given.poll_seconds.unwrap_or(DEFAULT_POLL_SECONDS);
    let max_wait = given.max_wait_seconds.unwrap_or(DEFAULT_MAX_WAIT_SECONDS);
    let health_attempts = given
        .health_attempts
        .unwrap_or(crate::app::DEFAULT_HEALTH_ATTEMPTS);
    let health_timeout_ms = request
        .health_timeout_ms
        .unwrap_or(crate::app::DEFAULT_HEALTH_TIMEOUT_MS);
    let polls = crate::app::checked_waits(
        poll_seconds,
        max_wait,
        health_attempts,
        health_timeout_ms,
        crate::app::WaitCaps {
            max_poll_seconds: MAX_POLL_SECONDS,
            max_wait_seconds: MAX_WAIT_SECONDS,
            max_polls: MAX_POLLS,
            max_health_attempts: MAX_HEALTH_ATTEMPTS,
        },
    )?;
    Ok(RollbackLimits {
        poll_seconds,
        polls,
        health_attempts,
        health_timeout_ms,
    })
}

/// Pure: what the migration job undoes, or why it cannot be planned.
/// `current` is the revision being left (it knows every applied
/// migration), `previous` the one rolled back to: every migration left
/// applied must be one `previous` knows, or its code runs on a schema
/// ahead of it.
pub fn plan_migration(
    current: &MigrationHistory,
    previous: &MigrationHistory,
    app: &str,
    target: Option<&str>,
    previous_revision: u64,
) -> DrResult<Vec<String>> {
    let keep: &[String] = match target {
        None => &current.applied,
        Some(ZERO) => &[],
        Some(t) => {
            let at = current.applied.iter().position(|a| a == t);
            match at {
                Some(i) => &current.applied[..=i],
                None if current.known.iter().any(|k| k == t) => {
                    return Err(DrError::InvalidInput(format!(
                        "migration {t} of {app} is not applied: nothing goes back to it"
                    )))
                }
                None => {
                    return Err(DrError::InvalidInput(format!(
                        "migration target {t} is unknown to {app} (known: {})",
                        current.known.join(", ")
                    )))
                }
            }
        }
    };
    let ahead: Vec<&String> = keep
        .iter()
        .filter(|a| !previous.known.contains(a))
        .collect();
    if !ahead.is_empty() {
        let names = ahead
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(DrError::InvalidInput(match target {
            None => format!(
                "the database has migrations revision {previous_revision} does not know ({names}): \
                 give migration.target (the last migration revision {previous_revision} knows) so they are undone first"
            ),
            Some(t) => format!(
                "after migrating {app} back to {t}, {names} would stay applied, which revision {previous_revision} does not know: choose an earlier target"
            ),
        }));
    }
    Ok(current
        .applied
        .iter()
        .skip(keep.len())
        .rev()
        .cloned()
        .collect())
}

/// Pure: a Kubernetes job name from the execution's name (lower case,
/// letters, digits and '-', at most 63).
pub fn job_name(execution: &str, suffix: &str) -> String {
    let mut base: String = execution
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    base.truncate(63 - suffix.len() - 1);
    let base = base.trim_matches('-');
    let base = if base.is_empty() { "rollback" } else { base };
    format!("{base}-{suffix}")
}

pub async fn rollback_plan(ports: &Ports, input: RollbackPlanInput) -> DrResult<RollbackPlan> {
    let request: RollbackRequest = serde_json::from_value(input.request).map_err(|e| {
        DrError::InvalidInput(format!(
            "deployment rollback input: {}",
            crate::truncate_message(&e.to_string())
        ))
    })?;
    request.deployment.validate()?;
    validate_health_url(&request.health_url)?;
    let limits = limits(&request)?;
    // A rerun under the same name resumes the same rollback: its plan is
    // the one recorded, never a new one computed from the state the first
    // run left (kubectl's "previous revision" would then be the bad one).
    let journal = JournalRef {
        recovery_id: input.execution.name.clone(),
        execution: input.execution.name.clone(),
    };
    if let Some(recorded) = ports
        .journal
        .entries(&journal.recovery_id)
        .await?
        .into_iter()
        .find(|e| e.key == "plan")
        .and_then(|e| e.detail)
        .and_then(|d| serde_json::from_value::<RollbackPlan>(d).ok())
    {
        if recorded.deployment != request.deployment {
            return Err(DrError::InvalidInput(format!(
                "execution {} rolled back {} before; a rerun must name the same deployment",
                journal.recovery_id, recorded.deployment
            )));
        }
        return Ok(recorded);
    }
    let d = &request.deployment;
    let status = crate::app::existing_deployment(ports, d, "deployment").await?;
    let to = match undo_choice(
        &status.revisions,
        &status.current.template_hash,
        status.paused,
        request.to_revision,
    )? {
        UndoChoice::RollBack { to } => {
            let last = ports
                .journal
                .entries(&history_id(d))
                .await?
                .into_iter()
                // Begun counts too: the guard checks what the deployment runs.
                .find(|e| e.key == LAST_ROLLBACK_KEY)
                .and_then(|e| e.detail)
                .and_then(|v| serde_json::from_value::<LastRollback>(v).ok());
            repeat_guard(
                last.as_ref(),
                &status.current.template_hash,
                &to,
                request.to_revision,
            )?;
            to
        }
        UndoChoice::AlreadyThere { revision } => {
            return Err(DrError::InvalidInput(format!(
                "revision {revision} is what {d} runs now (revision {}): there is nothing to roll back to",
                status.current.revision
            )))
        }
    };
    let planned = match &request.migration {
        Some(m) => {
            validate_django_label(&m.app)?;
            if let Some(t) = &m.target {
                validate_django_label(t)?;
            }
            let current = ports
                .deployment
                .migrations(d, status.current.revision, &m.app)
                .await?;
            let previous = ports.deployment.migrations(d, to.revision, &m.app).await?;
            let unapplies = plan_migration(
                &current,
                &previous,
                &m.app,
                m.target.as_deref(),
                to.revision,
            )?;
            match (&m.target, unapplies.is_empty()) {
                (Some(target), false) => Some(PlannedMigration {
                    job: MigrationJob {
                        name: job_name(&input.execution.name, "migrate"),
                        // The revision being left: it has the files.
                        revision: status.current.revision,
                        app: m.app.clone(),
                        target: target.clone(),
                    },
                    unapplies,
                }),
                _ => None,
            }
        }
        None => None,
    };
    let plan = RollbackPlan {
        recovery_id: input.execution.name,
        lock_resource: history_id(d),
        deployment: d.clone(),
        from: status.current,
        to,
        has_migration: planned.is_some(),
        migration: planned,
        health_url: request.health_url,
        limits,
        trigger: request.trigger,
        rto_objective_seconds: crate::report::RTO_OBJECTIVE_SECONDS,
    };
    let detail = serde_json::to_value(&plan)
        .map_err(|e| DrError::Internal(format!("recording the plan: {e}")))?;
    note(
        ports,
        &journal,
        "plan",
        format!(
            "planned: {} from revision {} ({}) back to revision {} ({}){}",
            plan.deployment,
            plan.from.revision,
            plan.from.image,
            plan.to.revision,
            plan.to.image,
            plan.migration
                .as_ref()
                .map(|m| format!(", migrating {} back to {} first", m.job.app, m.job.target))
                .unwrap_or_default()
        ),
        detail,
    )
    .await?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(applied: &[&str], known: &[&str]) -> MigrationHistory {
        MigrationHistory {
            applied: applied.iter().map(|s| s.to_string()).collect(),
            known: known.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_second_rollback_never_redeploys_the_release_the_first_replaced() {
        let rev = |n: u64, hash: &str| AppRevision {
            revision: n,
            image: format!("muejam-api:{n}"),
            template_hash: hash.into(),
            change_cause: None,
            created_at: None,
        };
        // Revision 2 (bad, hash b) was rolled back to 1 (hash a), now 3.
        let last = LastRollback {
            from: rev(2, "b"),
            to: rev(1, "a"),
            execution: "rollback-1".into(),
        };
        // (last rollback, the hash running now, kubectl's target, to_revision, refused)
        let cases = [
            (Some(&last), "a", rev(2, "b"), None, true),
            // Named explicitly: the operator's call.
            (Some(&last), "a", rev(2, "b"), Some(2), false),
            // A new release since (hash c): previous is "a", not the bad one.
            (Some(&last), "c", rev(3, "a"), None, false),
            // The bad release redeployed on purpose since, then undone.
            (Some(&last), "b", rev(3, "a"), None, false),
            (None, "a", rev(2, "b"), None, false),
        ];
        for (i, (last, now, target, to_revision, refused)) in cases.into_iter().enumerate() {
            let result = repeat_guard(last, now, &target, to_revision);
            assert_eq!(result.is_err(), refused, "case {i}: {result:?}");
            if let Err(e) = result {
                assert_eq!(e.name(), "InvalidInput");
                assert!(
                    e.to_string().contains("rollback rollback-1 replaced"),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn the_migration_plan_never_leaves_the_database_ahead_of_the_code() {
        let all = ["0001_a", "0002_b", "0003_c"];
        let current = history(&all, &all);
        let previous = history(&[], &["0001_a", "0002_b"]);
        /// (requested target, what is undone newest first, or what the refusal says)
        type Case<'a> = (Option<&'a str>, Result<Vec<&'a str>, &'a str>);
        let cases: [Case; 6] = [
            (Some("0002_b"), Ok(vec!["0003_c"])),
            (Some("0001_a"), Ok(vec!["0003_c", "0002_b"])),
            (Some("zero"), Ok(vec!["0003_c", "0002_b", "0001_a"])),
            // 0003 stays: revision 1 does not know it.
            (Some("0003_c"), Err("would stay applied")),
            (Some("0009_x"), Err("unknown")),
            (None, Err("give migration.target")),
        ];
        for (t, expect) in cases {
            let got = plan_migration(&current, &previous, "muejam", t, 1);
            match expect {
                Ok(names) => assert_eq!(got.expect("ok"), names, "{t:?}"),
                Err(says) => match got {
                    Err(DrError::InvalidInput(m)) => assert!(m.contains(says), "{t:?}: {m}"),
                    other => panic!("{t:?}: {other:?}"),
                },
            }
        }
        // Nothing ahead: nothing to undo without a target.
        let same = history(&["0001_a", "0002_b"], &["0001_a", "0002_b"]);
        assert!(plan_migration(&same, &previous, "muejam", None, 1)
            .expect("ok")
            .is_empty());
        // Known but not applied.
        let partial = history(&["0001_a"], &all);
        assert!(plan_migration(&partial, &previous, "muejam", Some("0002_b"), 1).is_err());
    }

    #[test]
    fn job_names_are_kubernetes_names() {
        for (execution, expect) in [
            ("rollback-1", "rollback-1-migrate"),
            ("Incident_42 at 3am", "incident-42-at-3am-migrate"),
            ("___", "rollback-migrate"),
        ] {
            let name = job_name(execution, "migrate");
            assert_eq!(name, expect);
            assert!(validate_k8s_name("job", &name).is_ok(), "{name}");
        }
        let long = job_name(&"x".repeat(80), "migrate");
        assert!(long.len() <= 63 && validate_k8s_name("job", &long).is_ok());
    }
}
