//! The database failover's execution data, typed: what its notifications
//! and its report read. Every step's output is the handler's own output
//! type, so a renamed field fails loudly here instead of reading as "n/a";
//! a step that failed carries its error and is never read as done.

use dr_core::ApprovalAnswer;
use serde::Deserialize;
use serde_json::Value;

use crate::approval::ApprovalOutput;
use crate::failover::{
    CheckDatabaseOutput, ConfirmFailureOutput, CreateReplicaOutput, DescribeInstanceOutput,
    FenceInstanceOutput, PromoteReplicaOutput, StepError, UpdateDnsOutput, UpdateTopologyOutput,
};
use crate::notify::NotifyOutput;
use crate::plan::FailoverPlan;

/// One step as the state machine records it: when it started, and its
/// output or the error it was caught with.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step<T> {
    pub started_at: String,
    #[serde(default = "none")]
    pub result: Option<T>,
    #[serde(default)]
    pub error: Option<StepError>,
}

/// A step's start, its summary when it succeeded, and its error.
type StepLine<'a> = Option<(&'a str, Option<String>, &'a Option<StepError>)>;

impl<T> Step<T> {
    /// The change the step made (`None` when it changed nothing), or its
    /// failure, described as `what` (empty: failures of this step stop the
    /// run and are its error, not a change).
    fn change(
        &self,
        step: &str,
        what: String,
        mutation: impl Fn(&T) -> Option<String>,
    ) -> Option<Change> {
        match (&self.result, &self.error) {
            (Some(r), _) => done(step, &mutation(r)),
            (None, Some(e)) if !what.is_empty() => Some(failed(step, what, e)),
            _ => None,
        }
    }

    /// When it started, what it did (summarised from its output) and its error.
    fn line(&self, summary: impl Fn(&T) -> String) -> (&str, Option<String>, &Option<StepError>) {
        (
            self.started_at.as_str(),
            self.result.as_ref().map(summary),
            &self.error,
        )
    }
}

fn topology_line(r: &UpdateTopologyOutput) -> String {
    r.mutation
        .clone()
        .unwrap_or_else(|| "topology already current".to_owned())
}

fn none<T>() -> Option<T> {
    None
}

/// Every step the failover records, by the name its state machine gives it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverSteps {
    pub confirm: Option<Step<ConfirmFailureOutput>>,
    pub approval: Option<Step<ApprovalAnswer>>,
    pub approval_expiry: Option<Step<ApprovalOutput>>,
    pub fence: Option<Step<FenceInstanceOutput>>,
    pub promote: Option<Step<PromoteReplicaOutput>>,
    pub promoted: Option<Step<DescribeInstanceOutput>>,
    pub dns: Option<Step<UpdateDnsOutput>>,
    pub dns_status: Option<Step<UpdateDnsOutput>>,
    pub topology: Option<Step<UpdateTopologyOutput>>,
    pub verify: Option<Step<CheckDatabaseOutput>>,
    pub replica: Option<Step<CreateReplicaOutput>>,
    pub replica_topology: Option<Step<UpdateTopologyOutput>>,
    /// The application's rolling restart after the switch, its rollout and
    /// its health URL.
    pub app_restart: Option<Step<crate::rollback::steps::RollbackStepOutput>>,
    pub app_rollout: Option<Step<crate::rollback::steps::RollbackStepOutput>>,
    pub app_health: Option<Step<dr_core::HealthObservation>>,
    pub notify_input_rejected: Option<Step<NotifyOutput>>,
    pub notify_already_running: Option<Step<NotifyOutput>>,
    pub notify_succeeded: Option<Step<NotifyOutput>>,
    pub notify_conclusion: Option<Step<NotifyOutput>>,
}

/// The parts of the execution data that mean something to a person.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct FailoverDetails {
    /// Absent only when the input was refused before planning.
    #[serde(default)]
    pub plan: Option<FailoverPlan>,
    /// The raw input, for runs refused before planning.
    #[serde(default)]
    pub request: Option<Value>,
    #[serde(default)]
    pub steps: FailoverSteps,
    #[serde(default)]
    pub error: Option<StepError>,
}

impl FailoverDetails {
    /// Reads the execution data; data that does not match the steps' types
    /// is an `Internal` error naming the mismatch (never a silent "n/a").
    pub fn parse(details: &Value) -> dr_core::DrResult<Self> {
        serde_json::from_value(details.clone()).map_err(|e| {
            dr_core::DrError::Internal(format!(
                "the failover's execution data does not have the shape its steps write: {}",
                crate::truncate_message(&e.to_string())
            ))
        })
    }
}

/// How a change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOutcome {
    Done,
    Failed,
    /// Begun by an execution that stopped before it ended (killed, timed
    /// out): its outcome is not known.
    Unfinished,
}

/// A change the run made, or tried to make.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct Change {
    pub step: String,
    pub outcome: ChangeOutcome,
    pub what: String,
}

fn failed(step: &str, what: String, error: &StepError) -> Change {
    Change {
        step: step.to_owned(),
        outcome: ChangeOutcome::Failed,
        what: format!(
            "{what} FAILED: {}: {}",
            error.error,
            short_cause(&error.cause)
        ),
    }
}

fn done(step: &str, what: &Option<String>) -> Option<Change> {
    what.as_ref().map(|w| Change {
        step: step.to_owned(),
        outcome: ChangeOutcome::Done,
        what: w.clone(),
    })
}

/// A Lambda error's cause is a JSON document; its message is what a person
/// reads.
pub fn short_cause(cause: &str) -> String {
    serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| {
            v.get("errorMessage")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| cause.to_owned())
}

/// Every change a recovery made or tried across all its executions, from
/// its journal, in the order of the workflow.
pub fn journal_changes(entries: &[dr_core::JournalEntry], this_execution: &str) -> Vec<Change> {
    crate::journal::mutations(entries)
        .into_iter()
        .map(|e| {
            let by = if e.execution == this_execution {
                String::new()
            } else {
                format!(" (by execution {})", e.execution)
            };
            let (outcome, what) = match e.status {
                dr_core::JournalStatus::Done => (ChangeOutcome::Done, format!("{}{by}", e.summary)),
                dr_core::JournalStatus::Failed => {
                    (ChangeOutcome::Failed, format!("FAILED: {}{by}", e.summary))
                }
                dr_core::JournalStatus::Started => (
                    ChangeOutcome::Unfinished,
                    format!("BEGUN, NOT FINISHED: {}{by}", e.summary),
                ),
            };
            Change {
                step: e.key.clone(),
                outcome,
                what,
            }
        })
        .collect()
}

/// The lag a recovery's promotion accepted, as its journal kept it.
pub fn journal_lag(entries: &[dr_core::JournalEntry]) -> Option<f64> {
    entries
        .iter()
        .find(|e| e.key == "promote" && e.status == dr_core::JournalStatus::Done)
        .and_then(|e| e.detail.as_ref())
        .and_then(|d| d.get("lag_at_promotion_seconds"))
        .and_then(Value::as_f64)
}

impl FailoverDetails {
    /// Every change this run made or tried, in the order of the workflow.
    /// A failed step is reported as failed, never as done.
    pub fn changes(&self) -> Vec<Change> {
        let s = &self.steps;
        let plan = self.plan.as_ref();
        let name = |f: fn(&FailoverPlan) -> String, fallback: &str| {
            plan.map(f).unwrap_or_else(|| fallback.to_owned())
        };
        [
            s.fence.as_ref().and_then(|st| {
                st.change(
                    "fence",
                    format!(
                        "fencing {}",
                        name(|p| p.primary.to_string(), "the old primary")
                    ),
                    |r| r.mutation.clone(),
                )
            }),
            s.promote
                .as_ref()
                .and_then(|st| st.change("promote", String::new(), |r| r.mutation.clone())),
            s.dns
                .as_ref()
                .and_then(|st| st.change("dns", String::new(), |r| r.mutation.clone())),
            s.topology
                .as_ref()
                .and_then(|st| st.change("topology", String::new(), |r| r.mutation.clone())),
            s.replica.as_ref().and_then(|st| {
                st.change(
                    "replica",
                    format!(
                        "creating the replica {}",
                        name(|p| p.new_replica.to_string(), "")
                    ),
                    |r| r.mutation.clone(),
                )
            }),
            s.replica_topology.as_ref().and_then(|st| {
                st.change(
                    "replica_topology",
                    "recording the new replica in the topology".to_owned(),
                    |r| r.mutation.clone(),
                )
            }),
            s.app_restart.as_ref().and_then(|st| {
                st.change(
                    "app_restart",
                    "restarting the application".to_owned(),
                    |r| r.mutation.clone(),
                )
            }),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The data loss window a promotion in this run accepted.
    pub fn lag_at_promotion_seconds(&self) -> Option<f64> {
        self.steps
            .promote
            .as_ref()
            .and_then(|p| p.result.as_ref())
            .and_then(|r| r.lag_at_promotion_seconds)
    }

    /// Timeline entries: (started_at, step, summary), in time order.
    pub fn timeline(&self) -> Vec<(String, String, String)> {
        let s = &self.steps;
        let mut entries = Vec::new();
        let mut push = |step: &str, started: &str, summary: String| {
            entries.push((started.to_owned(), step.to_owned(), summary));
        };
        let error_of = |e: &Option<StepError>| {
            e.as_ref()
                .map(|e| format!("FAILED: {}: {}", e.error, short_cause(&e.cause)))
        };
        if let Some(st) = &s.confirm {
            let summary = st.result.as_ref().map_or_else(
                || error_of(&st.error).unwrap_or_default(),
                |r| {
                    format!(
                        "decision {}: {}",
                        serde_json::to_value(r.decision)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        r.reasons.join("; ")
                    )
                },
            );
            push("confirm", &st.started_at, summary);
        }
        if let Some(st) = &s.approval {
            let summary = match (&st.result, &st.error) {
                (Some(a), _) => format!(
                    "approved by {} at {}{}",
                    a.by,
                    a.at.to_rfc3339(),
                    a.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
                (None, Some(e)) if e.error == "Rejected" => {
                    match serde_json::from_str::<ApprovalAnswer>(&e.cause) {
                        Ok(a) => format!(
                            "rejected by {} at {}{}",
                            a.by,
                            a.at.to_rfc3339(),
                            a.reason
                                .as_deref()
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default()
                        ),
                        Err(_) => format!("rejected: {}", e.cause),
                    }
                }
                (None, e) => error_of(e).unwrap_or_default(),
            };
            push("approval", &st.started_at, summary);
        }
        if let Some(st) = &s.approval_expiry {
            if let Some(r) = &st.result {
                push(
                    "approval_expiry",
                    &st.started_at,
                    format!(
                        "no answer before {}: nothing was changed",
                        r.deadline.to_rfc3339()
                    ),
                );
            }
        }
        let mutation_steps: [(&str, StepLine<'_>); 7] = [
            (
                "fence",
                s.fence.as_ref().map(|st| st.line(|r| r.method.clone())),
            ),
            (
                "promote",
                s.promote.as_ref().map(|st| {
                    st.line(|r| {
                        r.mutation
                            .clone()
                            .unwrap_or_else(|| format!("{} already standalone", r.instance_id))
                    })
                }),
            ),
            (
                "dns",
                s.dns.as_ref().map(|st| {
                    st.line(|r| {
                        r.mutation
                            .clone()
                            .unwrap_or_else(|| format!("{} already points there", r.record_name))
                    })
                }),
            ),
            (
                "topology",
                s.topology.as_ref().map(|st| st.line(topology_line)),
            ),
            (
                "replica",
                s.replica.as_ref().map(|st| {
                    st.line(|r| {
                        r.mutation
                            .clone()
                            .unwrap_or_else(|| format!("{} is {}", r.replica_instance_id, r.status))
                    })
                }),
            ),
            (
                "replica_topology",
                s.replica_topology.as_ref().map(|st| st.line(topology_line)),
            ),
            (
                "app_restart",
                s.app_restart.as_ref().map(|st| {
                    st.line(|r| {
                        r.mutation
                            .clone()
                            .unwrap_or_else(|| "already restarted by this recovery".to_owned())
                    })
                }),
            ),
        ];
        for (step, entry) in mutation_steps {
            if let Some((started, summary, error)) = entry {
                push(
                    step,
                    started,
                    summary
                        .or_else(|| error_of(error))
                        .unwrap_or_else(|| "no result".to_owned()),
                );
            }
        }
        if let Some(st) = &s.dns_status {
            if let Some(r) = &st.result {
                push(
                    "dns_status",
                    &st.started_at,
                    format!("change {}: {:?}", r.change_id, r.status),
                );
            }
        }
        if let Some(st) = &s.verify {
            let summary = match (&st.result, &st.error) {
                (Some(r), _) if r.healthy => format!("{} takes reads and writes", r.instance_id),
                (Some(r), _) => format!(
                    "{} FAILED verification: {}",
                    r.instance_id,
                    r.reason.clone().unwrap_or_default()
                ),
                (None, e) => error_of(e).unwrap_or_default(),
            };
            push("verify", &st.started_at, summary);
        }
        if let Some(st) = &s.app_rollout {
            let summary = match (&st.result, &st.error) {
                (Some(r), _) if r.done => r.detail.clone(),
                (Some(r), _) => format!("NOT rolled out: {}", r.detail),
                (None, e) => error_of(e).unwrap_or_default(),
            };
            push("app_rollout", &st.started_at, summary);
        }
        if let Some(st) = &s.app_health {
            let summary = match (&st.result, &st.error) {
                (Some(h), _) => crate::app::report::health_line(h),
                (None, e) => error_of(e).unwrap_or_default(),
            };
            push("app_health", &st.started_at, summary);
        }
        for (step, st) in [
            ("notify_input_rejected", &s.notify_input_rejected),
            ("notify_already_running", &s.notify_already_running),
            ("notify_succeeded", &s.notify_succeeded),
            ("notify_conclusion", &s.notify_conclusion),
        ] {
            if let Some(st) = st {
                let summary = match (&st.result, &st.error) {
                    (Some(r), _) => format!("notified: {}", r.subject),
                    (None, e) => error_of(e).unwrap_or_default(),
                };
                push(step, &st.started_at, summary);
            }
        }
        entries.sort();
        entries
    }
}
