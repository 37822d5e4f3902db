//! Approvals: a `.waitForTaskToken` step that records the pending question
//! (what is known, what would be done, what happens without an answer, by
//! when), publishes it where people on call read it, and is answered with
//! `drctl approve|reject <execution>`; and the expiry that records the safe
//! default when nobody answered.

use chrono::Utc;
use dr_core::*;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::evidence::ApprovalWindow;
use crate::failover::ConfirmFailureOutput;
use crate::plan::FailoverPlan;
use crate::report::ExecutionInfo;
use crate::Ports;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ApprovalInput {
    /// Ask: record the question and publish it. The task then waits for
    /// `drctl approve|reject`.
    Request {
        /// The task token (`$$.Task.Token`): never logged or published.
        token: SecretString,
        topic_arn: String,
        execution: ExecutionInfo,
        plan: Box<FailoverPlan>,
        confirm: Box<ConfirmFailureOutput>,
    },
    /// Ask a question a step has drafted (the data-corruption switch, with
    /// what it will lose); the task then waits for `drctl approve|reject`.
    Ask {
        token: SecretString,
        topic_arn: String,
        execution: ExecutionInfo,
        scenario: String,
        resource: String,
        draft: crate::corruption::loss::ApprovalDraft,
        /// The state's TimeoutSeconds: the deadline people are told.
        timeout_seconds: u64,
    },
    /// Nobody answered before the deadline: record it, so a late answer is
    /// refused.
    Expire { execution: ExecutionInfo },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalOutput {
    pub execution_name: String,
    pub status: ApprovalStatus,
    pub deadline: chrono::DateTime<Utc>,
    pub message_id: Option<String>,
    /// The answer, when the approval was answered before it expired.
    pub answer: Option<ApprovalAnswer>,
}

/// The question of an ambiguous failover, from what the confirmation found.
/// Pure.
pub fn failover_question(
    plan: &FailoverPlan,
    confirm: &ConfirmFailureOutput,
    window: &ApprovalWindow,
    execution: &ExecutionInfo,
) -> ApprovalRequest {
    let mut facts = confirm.reasons.clone();
    facts.push(format!(
        "replica {}: {}, {} behind",
        plan.replica,
        confirm.replica.status,
        confirm
            .replica
            .lag_seconds
            .map_or("an unknown time".to_owned(), |s| format!("{s:.1} s"))
    ));
    facts.push(format!(
        "RTO budget left: {}; answer within {} s, by {}",
        crate::report::seconds(Some(window.rto_budget_left_seconds.max(0.0))),
        window.timeout_seconds,
        window.deadline.to_rfc3339()
    ));
    if !window.rto_still_reachable {
        facts.push(format!(
            "the RTO ({}) can no longer be met, whatever the answer",
            crate::report::seconds(Some(plan.rto_objective_seconds))
        ));
    }
    ApprovalRequest {
        execution_name: execution.name.clone(),
        execution_arn: execution.id.clone(),
        scenario: "database-failover".to_owned(),
        resource: plan.database.clone(),
        question: format!(
            "Fail over {}: promote {} and point {} at it?",
            plan.database, plan.replica, plan.dns.record_name
        ),
        facts,
        proposed_action: format!(
            "fence {} (it refuses application connections; kept, never deleted), promote {}, point {} at it, record the new roles, then build the replica {}",
            plan.primary, plan.replica, plan.dns.record_name, plan.new_replica
        ),
        default_action: format!(
            "nothing is changed: {} stays the primary, the application stays down until someone acts, and on-call is paged",
            plan.primary
        ),
        requested_at: dr_core::clock::now(),
        deadline: window.deadline,
        status: ApprovalStatus::Pending,
        answer: None,
    }
}

/// The message people on call get: what is known, what would happen, how
/// to answer, and what happens without an answer.
pub fn approval_message(request: &ApprovalRequest) -> (String, String) {
    let subject = format!(
        "[MueJam DR] APPROVAL NEEDED by {}: {}",
        request.deadline.format("%H:%M UTC"),
        request.question
    );
    let facts: String = request.facts.iter().map(|f| format!("- {f}\n")).collect();
    let body = format!(
        "{question}\n\nWhat is known:\n{facts}\nIf approved: {proposed}.\n\n\
         Without an answer by {deadline}: {default}.\n\n\
         Answer (on the local stack add --local):\n  \
         drctl approve {name} --reason \"...\"\n  \
         drctl reject {name} --reason \"...\"\n\nExecution: {arn}\n",
        question = request.question,
        proposed = request.proposed_action,
        deadline = request.deadline.to_rfc3339(),
        default = request.default_action,
        name = request.execution_name,
        arn = request.execution_arn,
    );
    (subject, body)
}

/// Records a pending question and publishes it to the people on call.
async fn ask(
    ports: &Ports,
    request: ApprovalRequest,
    token: &SecretString,
    topic_arn: String,
) -> DrResult<ApprovalOutput> {
    ports.approvals.open(&request, token).await?;
    let (subject, body) = approval_message(&request);
    let message_id = ports
        .notifier
        .publish(&Notification {
            topic: topic_arn,
            subject,
            body,
            attributes: [
                ("scenario".to_owned(), request.scenario.clone()),
                ("event".to_owned(), "approval_requested".to_owned()),
                ("execution".to_owned(), request.execution_name.clone()),
                ("resource".to_owned(), request.resource.clone()),
                ("severity".to_owned(), "critical".to_owned()),
            ]
            .into(),
        })
        .await?;
    tracing::warn!(execution = %request.execution_name, deadline = %request.deadline, "approval requested");
    Ok(ApprovalOutput {
        execution_name: request.execution_name,
        status: ApprovalStatus::Pending,
        deadline: request.deadline,
        message_id: Some(message_id),
        answer: None,
    })
}

pub async fn approval(ports: &Ports, input: ApprovalInput) -> DrResult<ApprovalOutput> {
    match input {
        ApprovalInput::Ask {
            token,
            topic_arn,
            execution,
            scenario,
            resource,
            draft,
            timeout_seconds,
        } => {
            if !(1..=crate::corruption::MAX_APPROVAL_SECONDS).contains(&timeout_seconds) {
                return Err(DrError::InvalidInput(format!(
                    "timeout_seconds must be between 1 and {}",
                    crate::corruption::MAX_APPROVAL_SECONDS
                )));
            }
            let now = dr_core::clock::now();
            let request = ApprovalRequest {
                execution_name: execution.name.clone(),
                execution_arn: execution.id.clone(),
                scenario,
                resource,
                question: draft.question,
                facts: draft.facts,
                proposed_action: draft.proposed_action,
                default_action: draft.default_action,
                requested_at: now,
                deadline: now + chrono::Duration::seconds(timeout_seconds as i64),
                status: ApprovalStatus::Pending,
                answer: None,
            };
            ask(ports, request, &token, topic_arn).await
        }
        ApprovalInput::Request {
            token,
            topic_arn,
            execution,
            plan,
            confirm,
        } => {
            let window = confirm.approval.ok_or_else(|| {
                DrError::InvalidInput(
                    "the confirmation did not ask for an approval (no approval window)".to_owned(),
                )
            })?;
            let request = failover_question(&plan, &confirm, &window, &execution);
            ask(ports, request, &token, topic_arn).await
        }
        ApprovalInput::Expire { execution } => {
            let closed = match ports
                .approvals
                .close(&execution.name, ApprovalStatus::Expired, None)
                .await
            {
                Ok(closed) => closed,
                // Answered meanwhile, but too late for the task: say how.
                Err(DrError::Conflict(_)) => ports
                    .approvals
                    .get(&execution.name)
                    .await?
                    .map(|(r, _)| r)
                    .ok_or_else(|| {
                        DrError::Internal(format!("the approval of {} vanished", execution.name))
                    })?,
                Err(e) => return Err(e),
            };
            Ok(ApprovalOutput {
                execution_name: closed.execution_name,
                status: closed.status,
                deadline: closed.deadline,
                message_id: None,
                answer: closed.answer,
            })
        }
    }
}

/// A person's answer to the approval an execution waits on, as `drctl
/// approve|reject` gives it: checked against the deadline, claimed in the
/// store exactly once (a second answer is a `Conflict`), then handed to the
/// waiting execution through its task token. Returns the closed request and
/// the answer.
pub async fn answer(
    store: &dyn ApprovalStore,
    tokens: &dyn TaskTokens,
    execution: &str,
    approve: bool,
    by: &str,
    reason: Option<&str>,
) -> DrResult<(ApprovalRequest, ApprovalAnswer)> {
    let (request, token) = store.get(execution).await?.ok_or_else(|| {
        DrError::NotFound(format!(
            "no approval was requested by an execution named {execution}"
        ))
    })?;
    let now = dr_core::clock::now();
    if request.status == ApprovalStatus::Pending && now > request.deadline {
        return Err(DrError::Conflict(format!(
            "the approval of {execution} expired at {}: the safe default applies ({})",
            request.deadline.to_rfc3339(),
            request.default_action
        )));
    }
    let answer = ApprovalAnswer {
        approved: approve,
        by: by.to_owned(),
        at: now,
        reason: reason.filter(|r| !r.trim().is_empty()).map(str::to_owned),
    };
    let status = if approve {
        ApprovalStatus::Approved
    } else {
        ApprovalStatus::Rejected
    };
    // Claim the answer first (exactly once), then wake the execution.
    let closed = store.close(execution, status, Some(answer.clone())).await?;
    let delivered = if approve {
        tokens
            .send_success(&token, &serde_json::json!(answer))
            .await
    } else {
        let cause = serde_json::to_string(&answer)
            .map_err(|e| DrError::Internal(format!("serializing the answer: {e}")))?;
        tokens.send_failure(&token, "Rejected", &cause).await
    };
    if let Err(error) = delivered {
        return Err(DrError::Unavailable(format!(
            "the answer is recorded but the execution did not take it ({error}): it may have timed out; check it with the Step Functions console or drctl run's output"
        )));
    }
    Ok((closed, answer))
}
