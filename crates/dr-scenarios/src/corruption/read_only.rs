//! The application in maintenance while a data-corruption recovery works
//! (runbook "Data Corruption", step 2: `kubectl set env
//! deployment/muejam-api READ_ONLY_MODE=true` before the writes stop), and
//! out of it once the writes are back.
//!
//! The journal holds one record under [`JOURNAL_KEY`]: the variable's value
//! before the recovery, whether this recovery set it, and whether it was
//! lifted. It is written *before* each change, so a retry, a rerun under the
//! same name or the death sweep (after the execution died) knows what to put
//! back. The lift is decided from the journal, never from the path the run
//! took: the mode stays on exactly while the journal says the writes are
//! still stopped (kept on abort, the switch begun and unfinished, a give-back
//! that failed), and a mode that was on before the recovery is never lifted.

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use super::writes::writes_still_stopped;
use crate::journal::JournalRef;
use crate::rollback::steps::RollbackStepOutput;
use crate::Ports;

pub const JOURNAL_KEY: &str = "read_only";

/// What the journal keeps about the mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadOnlyRecord {
    pub deployment: DeploymentRef,
    /// `READ_ONLY_MODE` before the recovery (`None`: unset).
    pub previous: Option<String>,
    /// This recovery turned it on (false: it was on already).
    pub ours: bool,
    /// The lift (begun, when the entry is not done).
    pub lifted: bool,
    /// When this recovery turned it on.
    #[serde(default)]
    pub set_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetDecision {
    /// Turn it on; `previous` is what the lift puts back.
    Set { previous: Option<String> },
    /// This recovery turned it on already (a retry, a rerun).
    AlreadyOurs,
    /// It was on before the recovery: leave it, and leave it on at the end.
    Theirs,
}

/// Pure: what the set step does, from the journal's record (with its
/// entry's status) and the variable's value now.
pub fn set_decision(
    record: Option<(JournalStatus, &ReadOnlyRecord)>,
    current: Option<&str>,
) -> SetDecision {
    let on = read_only_mode_on(current);
    // A lift that began or failed may have left the mode on: still ours.
    let lifted =
        |status: JournalStatus, r: &ReadOnlyRecord| r.lifted && status == JournalStatus::Done;
    match record.map(|(status, r)| (lifted(status, r), r)) {
        Some((false, r)) if r.ours && on => SetDecision::AlreadyOurs,
        _ if on => SetDecision::Theirs,
        // Ours before (its set failed, or it was lifted and this is a
        // rerun): what was there before the recovery is still the value to
        // put back.
        Some((_, r)) if r.ours => SetDecision::Set {
            previous: r.previous.clone(),
        },
        _ => SetDecision::Set {
            previous: current.map(str::to_owned),
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiftDecision {
    /// This recovery never turned it on.
    NotSet,
    /// It was on before the recovery: never lifted by it.
    Theirs,
    AlreadyLifted,
    /// The writes are still stopped: the mode stays on.
    Keep,
    /// Put `previous` back (unset when `None`).
    Lift {
        previous: Option<String>,
    },
}

/// Pure: what the lift does, from the journal's record (with its entry's
/// status) and whether the journal says the writes are still stopped.
pub fn lift_decision(
    record: Option<(JournalStatus, &ReadOnlyRecord)>,
    writes_stopped: bool,
) -> LiftDecision {
    match record {
        None => LiftDecision::NotSet,
        Some((_, r)) if !r.ours => LiftDecision::Theirs,
        Some((JournalStatus::Done, r)) if r.lifted => LiftDecision::AlreadyLifted,
        // A set that began or failed may have turned it on: lifting puts
        // back what was there, which is harmless if it did not.
        _ if writes_stopped => LiftDecision::Keep,
        Some((_, r)) => LiftDecision::Lift {
            previous: r.previous.clone(),
        },
    }
}

fn record_of(entries: &[JournalEntry]) -> Option<(JournalStatus, ReadOnlyRecord)> {
    let entry = entries.iter().find(|e| e.key == JOURNAL_KEY)?;
    let record = serde_json::from_value(entry.detail.clone()?).ok()?;
    Some((entry.status, record))
}

fn value_words(value: &Option<String>) -> String {
    match value {
        None => "unset".to_owned(),
        Some(v) => format!("{:?}", crate::truncate_message(v)),
    }
}

pub(crate) fn lift_hint(d: &DeploymentRef) -> String {
    format!(
        "kubectl -n {} set env deployment/{} {READ_ONLY_MODE}-",
        d.namespace, d.name
    )
}

async fn write(
    ports: &Ports,
    journal: &JournalRef,
    status: JournalStatus,
    summary: String,
    record: &ReadOnlyRecord,
) -> DrResult<()> {
    ports
        .journal
        .record(&JournalEntry {
            recovery_id: journal.recovery_id.clone(),
            key: JOURNAL_KEY.to_owned(),
            execution: journal.execution.clone(),
            at: dr_core::clock::now(),
            status,
            summary,
            detail: Some(
                serde_json::to_value(record)
                    .map_err(|e| DrError::Internal(format!("the read-only record: {e}")))?,
            ),
        })
        .await
}

/// `READ_ONLY_MODE` set to `value` (unset with `None`) on the record's
/// deployment, the record journaled as begun first; a failure is journaled
/// with `on_failure` appended.
async fn set_env_journaled(
    ports: &Ports,
    journal: &JournalRef,
    record: &ReadOnlyRecord,
    what: &str,
    value: Option<&str>,
    on_failure: &str,
) -> DrResult<()> {
    write(
        ports,
        journal,
        JournalStatus::Started,
        what.to_owned(),
        record,
    )
    .await?;
    if let Err(error) = ports
        .deployment
        .set_env(&record.deployment, READ_ONLY_MODE, value)
        .await
    {
        let _ = write(
            ports,
            journal,
            JournalStatus::Failed,
            format!("{what}: {}: {error}{on_failure}", error.name()),
            record,
        )
        .await;
        return Err(error);
    }
    Ok(())
}

fn output(detail: String, mutation: Option<String>) -> RollbackStepOutput {
    RollbackStepOutput {
        done: true,
        failed: false,
        detail,
        revision: None,
        job: None,
        mutation,
    }
}

/// Turns the application's read-only mode on (before the writes stop).
pub async fn set_read_only(
    ports: &Ports,
    deployment: &DeploymentRef,
    journal: &JournalRef,
) -> DrResult<RollbackStepOutput> {
    deployment.validate()?;
    let entries = ports.journal.entries(&journal.recovery_id).await?;
    let record = record_of(&entries);
    let status = ports.deployment.describe_deployment(deployment).await?;
    let current = status.env.get(READ_ONLY_MODE).cloned();
    match set_decision(record.as_ref().map(|(s, r)| (*s, r)), current.as_deref()) {
        SetDecision::AlreadyOurs => Ok(output(
            format!("{deployment} is in read-only mode (set by this recovery)"),
            None,
        )),
        SetDecision::Theirs => {
            let summary = format!(
                "{deployment} was in read-only mode before this recovery ({READ_ONLY_MODE}={}): left as it was, and left on at the end",
                value_words(&current)
            );
            let record = ReadOnlyRecord {
                deployment: deployment.clone(),
                previous: current,
                ours: false,
                lifted: false,
                set_at: None,
            };
            write(
                ports,
                journal,
                JournalStatus::Done,
                summary.clone(),
                &record,
            )
            .await?;
            Ok(output(summary, None))
        }
        SetDecision::Set { previous } => {
            let mut record = ReadOnlyRecord {
                deployment: deployment.clone(),
                previous,
                ours: true,
                lifted: false,
                set_at: None,
            };
            let what = format!("putting {deployment} in read-only mode ({READ_ONLY_MODE}=true)");
            set_env_journaled(ports, journal, &record, &what, Some("true"), "").await?;
            let at = dr_core::clock::now();
            record.set_at = Some(at);
            let done = format!(
                "put {deployment} in read-only mode at {} ({READ_ONLY_MODE}=true, was {}): its writes answer 503 until it is lifted",
                at.to_rfc3339(),
                value_words(&record.previous)
            );
            write(ports, journal, JournalStatus::Done, done.clone(), &record).await?;
            Ok(output(done.clone(), Some(done)))
        }
    }
}

/// Lifts the read-only mode this recovery turned on, unless the journal
/// says the application's writes are still stopped. Takes the deployment
/// from the journal: the death sweep knows nothing else of the run.
pub async fn lift_read_only(ports: &Ports, journal: &JournalRef) -> DrResult<RollbackStepOutput> {
    let entries = ports.journal.entries(&journal.recovery_id).await?;
    let not_set = || {
        Ok(output(
            "this recovery did not put the application in read-only mode".to_owned(),
            None,
        ))
    };
    let Some((status, mut record)) = record_of(&entries) else {
        return not_set();
    };
    let decision = lift_decision(Some((status, &record)), writes_still_stopped(&entries));
    let deployment = record.deployment.clone();
    let set_at = record.set_at.map_or_else(
        || "during this recovery".to_owned(),
        |t| format!("at {}", t.to_rfc3339()),
    );
    match decision {
        LiftDecision::NotSet => not_set(),
        LiftDecision::Theirs => Ok(output(
            format!(
                "{deployment} was in read-only mode before this recovery: left on; lift it when the application may write ({})",
                lift_hint(&deployment)
            ),
            None,
        )),
        LiftDecision::AlreadyLifted => Ok(output(
            format!("{deployment} is out of read-only mode (lifted by this recovery)"),
            None,
        )),
        LiftDecision::Keep => {
            let summary = format!(
                "put {deployment} in read-only mode {set_at}; LEFT ON: the application's writes are still stopped at the database; lift it once they are given back ({})",
                lift_hint(&deployment)
            );
            write(ports, journal, status, summary.clone(), &record).await?;
            Ok(output(summary, None))
        }
        LiftDecision::Lift { previous } => {
            record.lifted = true;
            let what = format!(
                "lifting the read-only mode of {deployment} ({READ_ONLY_MODE} back to {})",
                value_words(&previous)
            );
            let by_hand = format!("; lift it by hand ({})", lift_hint(&deployment));
            set_env_journaled(ports, journal, &record, &what, previous.as_deref(), &by_hand)
                .await?;
            let done = format!(
                "put {deployment} in read-only mode {set_at} and lifted it at {} ({READ_ONLY_MODE} {}): its servers are replaced and write again",
                dr_core::clock::now().to_rfc3339(),
                match &previous {
                    None => "unset".to_owned(),
                    Some(_) => format!("back to {}", value_words(&previous)),
                }
            );
            write(ports, journal, JournalStatus::Done, done.clone(), &record).await?;
            Ok(output(done.clone(), Some(done)))
        }
    }
}

/// What Lambda sends the destination of an asynchronous invocation (the
/// death sweep's, [`super::cleanup`]): its request, how it ended, and what
/// it returned. The sweep in the VPC gives the writes back first; this runs
/// after it, outside the VPC, where the cluster's API is.
#[derive(Debug, Clone, Deserialize)]
pub struct ReadOnlyCleanupInput {
    #[serde(rename = "requestContext")]
    pub request_context: InvocationContext,
    #[serde(rename = "requestPayload")]
    pub request_payload: super::cleanup::CorruptionCleanupInput,
    #[serde(rename = "responsePayload", default)]
    pub response_payload: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InvocationContext {
    /// `Success`, `RetriesExhausted` or `EventAgeExceeded`.
    pub condition: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadOnlyCleanupOutput {
    pub execution_name: String,
    /// How the writes' sweep ended, in words.
    pub sweep: String,
    /// What was done about the read-only mode, in words.
    pub read_only: String,
    pub lifted: bool,
}

/// The death sweep failed after Lambda's retries: what it left (candidates
/// still running, writes perhaps still stopped) is said on the alerts
/// topic, or it would be in a log only. A request without a topic (sent
/// before the rule named one) is logged as an error instead.
async fn tell_cleanup_failed(
    ports: &Ports,
    topic: Option<&str>,
    execution: &str,
    sweep: &str,
    read_only: &str,
) -> DrResult<()> {
    let Some(topic) = topic.filter(|t| !t.is_empty()) else {
        tracing::error!(%execution, %sweep, "the cleanup after a dead recovery run failed, and its request names no topic to tell");
        return Ok(());
    };
    ports
        .notifier
        .publish(&Notification {
            topic: topic.to_owned(),
            subject: format!("[MueJam DR] Cleanup after {execution} failed: something is left"),
            body: format!(
                "What happened: recovery run {execution} died (failed, timed out or was stopped), and the \
                 cleanup that gives its writes back and deletes its candidates failed after Lambda's retries:\n\
                 {sweep}\n\n\
                 What was done:\n- the cleanup deleted and gave back what its error does not name\n\
                 - the application's read-only mode: {read_only}\n\n\
                 What to do next:\n\
                 - a candidate the error names (RDS was still creating it) costs a production-sized instance \
                 and holds a copy of production's data: once it is available, delete it \
                 (aws rds delete-db-instance --db-instance-identifier <candidate> --skip-final-snapshot)\n\
                 - if the error says nothing of the writes, they were not given back: \
                 re-run the recovery under the same name, or grant them back by hand"
            ),
            attributes: [
                ("event".to_owned(), "cleanup_failed".to_owned()),
                ("execution".to_owned(), execution.to_owned()),
                ("severity".to_owned(), "high".to_owned()),
            ]
            .into(),
        })
        .await?;
    Ok(())
}

/// After a data-corruption run died and its writes were swept: its
/// read-only mode lifted, unless the journal says the writes stay stopped.
pub async fn read_only_cleanup(
    ports: &Ports,
    input: ReadOnlyCleanupInput,
) -> DrResult<ReadOnlyCleanupOutput> {
    let name = input.request_payload.execution_name.clone();
    // A Step Functions execution's name: 1 to 80 characters.
    if name.is_empty() || name.chars().count() > 80 {
        return Err(DrError::InvalidInput(format!(
            "{:?} is no execution name (1 to 80 characters)",
            crate::truncate_message(&name)
        )));
    }
    let response = input.response_payload.unwrap_or_default();
    let sweep = match input.request_context.condition.as_str() {
        "Success" => response
            .get("writes")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("ended without saying what it did about the writes")
            .to_owned(),
        other => format!(
            "FAILED ({other}): {}: {}",
            response
                .get("errorType")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("?"),
            crate::truncate_message(
                response
                    .get("errorMessage")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("")
            )
        ),
    };
    let done = lift_read_only(
        ports,
        &JournalRef {
            recovery_id: name.clone(),
            execution: format!("{name}:cleanup"),
        },
    )
    .await?;
    tracing::warn!(execution = %name, %sweep, read_only = %done.detail, "read-only mode after a dead recovery run");
    if input.request_context.condition != "Success" {
        tell_cleanup_failed(
            ports,
            input.request_payload.topic_arn.as_deref(),
            &name,
            &sweep,
            &done.detail,
        )
        .await?;
    }
    Ok(ReadOnlyCleanupOutput {
        execution_name: name,
        sweep,
        lifted: done.mutation.is_some(),
        read_only: done.detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(previous: Option<&str>, ours: bool, lifted: bool) -> ReadOnlyRecord {
        ReadOnlyRecord {
            deployment: DeploymentRef {
                namespace: "muejam".into(),
                name: "muejam-api".into(),
            },
            previous: previous.map(str::to_owned),
            ours,
            lifted,
            set_at: None,
        }
    }

    #[test]
    fn the_mode_is_set_once_and_never_over_someone_elses() {
        let set = |p: Option<&str>| SetDecision::Set {
            previous: p.map(str::to_owned),
        };
        use JournalStatus::*;
        // (journal's record with its entry's status, READ_ONLY_MODE now, decision)
        let cases = [
            (None, None, set(None)),
            (None, Some("false"), set(Some("false"))),
            (None, Some("0"), set(Some("0"))),
            (None, Some("true"), SetDecision::Theirs),
            (None, Some(" Yes "), SetDecision::Theirs),
            // A retry after the set: nothing more.
            (
                Some((Done, record(None, true, false))),
                Some("true"),
                SetDecision::AlreadyOurs,
            ),
            // The set began and did not land: set again, same previous.
            (
                Some((Started, record(Some("false"), true, false))),
                Some("false"),
                set(Some("false")),
            ),
            // A rerun after this recovery's lift: on again.
            (Some((Done, record(None, true, true))), None, set(None)),
            // A rerun after a lift that failed: the mode is still ours.
            (
                Some((Failed, record(None, true, true))),
                Some("true"),
                SetDecision::AlreadyOurs,
            ),
            (
                Some((Started, record(None, true, true))),
                Some("true"),
                SetDecision::AlreadyOurs,
            ),
            // On again after our lift, by someone else.
            (
                Some((Done, record(None, true, true))),
                Some("true"),
                SetDecision::Theirs,
            ),
            (
                Some((Done, record(Some("on"), false, false))),
                Some("on"),
                SetDecision::Theirs,
            ),
            // Theirs was lifted since: this rerun's own.
            (
                Some((Done, record(Some("on"), false, false))),
                None,
                set(None),
            ),
        ];
        for (i, (r, current, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                set_decision(r.as_ref().map(|(s, r)| (*s, r)), current),
                expected,
                "case {i}"
            );
        }
    }

    #[test]
    fn the_mode_is_lifted_only_when_ours_and_the_writes_are_back() {
        use JournalStatus::*;
        let lift = |p: Option<&str>| LiftDecision::Lift {
            previous: p.map(str::to_owned),
        };
        // (record with its entry's status, writes still stopped, decision)
        let cases = [
            (None, false, LiftDecision::NotSet),
            (None, true, LiftDecision::NotSet),
            (Some((Done, record(None, true, false))), false, lift(None)),
            (
                Some((Done, record(Some("false"), true, false))),
                false,
                lift(Some("false")),
            ),
            (
                Some((Done, record(None, true, false))),
                true,
                LiftDecision::Keep,
            ),
            // Set begun or failed: lift (it may have landed).
            (
                Some((Started, record(None, true, false))),
                false,
                lift(None),
            ),
            (Some((Failed, record(None, true, false))), false, lift(None)),
            (
                Some((Failed, record(None, true, false))),
                true,
                LiftDecision::Keep,
            ),
            (
                Some((Done, record(None, true, true))),
                false,
                LiftDecision::AlreadyLifted,
            ),
            (
                Some((Done, record(None, true, true))),
                true,
                LiftDecision::AlreadyLifted,
            ),
            // A lift that began or failed: again.
            (Some((Started, record(None, true, true))), false, lift(None)),
            (Some((Failed, record(None, true, true))), false, lift(None)),
            (
                Some((Done, record(Some("true"), false, false))),
                false,
                LiftDecision::Theirs,
            ),
            (
                Some((Done, record(Some("true"), false, false))),
                true,
                LiftDecision::Theirs,
            ),
        ];
        for (i, (r, stopped, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                lift_decision(r.as_ref().map(|(s, r)| (*s, r)), stopped),
                expected,
                "case {i}"
            );
        }
    }
}
