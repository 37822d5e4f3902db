//! Approvals: a `.waitForTaskToken` step that records the pending question
//! (what is known, what would be done, what happens without an answer, by
//! when), publishes it where people on call read it, and is answered with
//! `drctl approve|reject <execution>`; and the expiry that records the safe
//! default when nobody answered.

use chrono::Utc;
use dr_core::*;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::escalation::{climb_lines, Escalation};
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
        /// Where the question goes without an escalation path.
        #[serde(default)]
        topic_arn: Option<String>,
        /// The climb: the question goes to its current tier.
        #[serde(default)]
        escalation: Option<Escalation>,
        execution: ExecutionInfo,
        plan: Box<FailoverPlan>,
        confirm: Box<ConfirmFailureOutput>,
    },
    /// Ask a question a step has drafted (the data-corruption switch, with
    /// what it will lose); the task then waits for `drctl approve|reject`.
    Ask {
        token: SecretString,
        #[serde(default)]
        topic_arn: Option<String>,
        #[serde(default)]
        escalation: Option<Escalation>,
        execution: ExecutionInfo,
        scenario: String,
        resource: String,
        draft: crate::corruption::loss::ApprovalDraft,
        /// The state's TimeoutSeconds: the deadline people are told.
        timeout_seconds: u64,
        /// The plan's drill: the drill answers, once the resource is
        /// checked to be that drill's throw-away copy.
        #[serde(default)]
        drill: Option<String>,
    },
    /// The next step of the escalation path: which tier to ask and for how
    /// long (`now` is the execution's clock, `$$.State.EnteredTime`).
    Climb {
        escalation: Escalation,
        /// The approval's deadline; none for a page, which climbs the
        /// whole path.
        #[serde(default)]
        timeout_seconds: Option<u64>,
        now: chrono::DateTime<Utc>,
    },
    /// The page a page-escalation execution climbs with, from its input (a
    /// recovery's page or an alarm's state change).
    PlanPage { event: serde_json::Value },
    /// Page the escalation's current tier and wait for `drctl ack`.
    Page {
        token: SecretString,
        page: Page,
        escalation: Escalation,
    },
    /// Nobody answered before the deadline: record it, so a late answer is
    /// refused.
    Expire { execution: ExecutionInfo },
}

/// What an approval step returns: the question's record, or the climb's
/// next step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ApprovalStep {
    Asked(ApprovalOutput),
    Climbed(Escalation),
    Planned(Page),
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
        escalation: Vec::new(),
    }
}

/// The message people on call get: what is known, what would happen, how
/// to answer, and what happens without an answer.
pub fn approval_message(
    request: &ApprovalRequest,
    escalation: Option<&Escalation>,
) -> (String, String) {
    let (tier, earlier) = escalation.map(climb_lines).unwrap_or_default();
    // SNS keeps 100 characters of a subject: the tier is short there, named
    // in full in the body.
    let subject = format!(
        "[MueJam DR] APPROVAL NEEDED by {}{}: {}",
        request.deadline.format("%H:%M UTC"),
        escalation
            .and_then(crate::escalation::tier_short)
            .map(|t| format!(" ({t})"))
            .unwrap_or_default(),
        request.question
    );
    let facts: String = request.facts.iter().map(|f| format!("- {f}\n")).collect();
    let climbed = match (tier.is_empty(), earlier.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!("You are {tier}.\n\n"),
        (false, false) => format!("Escalated to you, {tier}: {}.\n\n", earlier.join("; ")),
    };
    let body = format!(
        "{climbed}{question}\n\nWhat is known:\n{facts}\nIf approved: {proposed}.\n\n\
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

/// Where a question goes and by when: the escalation's current tier (its
/// first ask and deadline, on the execution's clock), or the one topic.
fn route(
    request: &mut ApprovalRequest,
    topic_arn: Option<String>,
    escalation: Option<&Escalation>,
) -> DrResult<String> {
    let Some(escalation) = escalation else {
        return topic_arn.ok_or_else(|| {
            DrError::InvalidInput("an approval needs a topic_arn or an escalation".to_owned())
        });
    };
    let tier = escalation.current_tier().ok_or_else(|| {
        DrError::InvalidInput("the escalation has no tier to ask (climb first)".to_owned())
    })?;
    if let Some(first) = escalation.asked.first() {
        request.requested_at = first.at;
    }
    if let Some(deadline) = escalation.deadline {
        request.deadline = deadline;
    }
    request.escalation = escalation.asked.clone();
    Ok(tier.topic_arn.clone())
}

/// Records a pending question (with this tier's token) and publishes it to
/// the people on call. A question answered between two tiers (the answer
/// came while the last tier's wait ended) takes its recorded answer
/// through this tier's token, so no answer is lost at a tier's boundary.
async fn ask(
    ports: &Ports,
    request: ApprovalRequest,
    token: &SecretString,
    topic_arn: Option<String>,
    escalation: Option<Escalation>,
) -> DrResult<ApprovalOutput> {
    send(
        ports,
        request,
        token,
        topic_arn,
        escalation,
        "approval_requested",
        &approval_message,
    )
    .await
}

/// The drill answers the approvals of its own rehearsal (validation made
/// sure the run acts on nothing but the drill's copy): the question is
/// recorded as any other, approved by `drill <id>`, and handed to the
/// waiting step; nobody on call is asked.
async fn answered_by_drill(
    ports: &Ports,
    mut request: ApprovalRequest,
    token: &SecretString,
    topic_arn: Option<String>,
    escalation: Option<Escalation>,
    drill: &str,
) -> DrResult<ApprovalOutput> {
    route(&mut request, topic_arn, escalation.as_ref())?;
    if let Some(answered) = open_or_take_answer(ports, &request, token).await? {
        return Ok(answered);
    }
    let (closed, answer, _) = answer(
        ports.approvals.as_ref(),
        ports.tokens.as_ref(),
        ports.executions.as_ref(),
        &request.execution_name,
        true,
        &format!("drill {drill}"),
        Some(DRILL_ANSWER),
    )
    .await?;
    tracing::info!(execution = %closed.execution_name, drill, "the drill answered its rehearsal's approval");
    Ok(ApprovalOutput::answered(closed, answer))
}

/// `Unsafe` unless `database` is registered as `drill`'s throw-away copy
/// (its topology tagged by the drill, every instance and its record the
/// drill's): whatever a plan says of `drill`, the drill answers for its
/// copy alone.
async fn database_is_drill_copy(ports: &Ports, database: &str, drill: &str) -> DrResult<()> {
    let topology = ports.topology.get(database).await?.ok_or_else(|| {
        DrError::Unsafe(format!(
            "the drill answers only for its own copy, and {database} is not registered"
        ))
    })?;
    let trigger = crate::plan::Trigger {
        source: crate::plan::TriggerSource::Drill,
        reason: None,
        alarm: None,
        time: None,
    };
    match crate::plan::drill_of(&trigger, &topology) {
        Ok(Some(found)) if found == drill => Ok(()),
        Ok(_) => Err(DrError::Unsafe(format!(
            "{database} is not drill {drill}'s copy: the drill answers only for its own"
        ))),
        Err(e) => Err(DrError::Unsafe(format!(
            "the drill answers only for its own copy: {}",
            e.to_string().trim_start_matches("invalid input: ")
        ))),
    }
}

/// Why the drill approves its own rehearsal's failover.
pub const DRILL_ANSWER: &str =
    "the drill answers the approvals of its rehearsal on its own throw-away copy";

/// What a tier is sent: the subject and body of its message.
type Message<'a> = &'a (dyn Fn(&ApprovalRequest, Option<&Escalation>) -> (String, String) + Sync);

/// Records the question (or page) with this tier's token, then publishes
/// it to the tier (see [`ask`]).
async fn send(
    ports: &Ports,
    mut request: ApprovalRequest,
    token: &SecretString,
    topic_arn: Option<String>,
    escalation: Option<Escalation>,
    event: &str,
    message: Message<'_>,
) -> DrResult<ApprovalOutput> {
    let topic_arn = route(&mut request, topic_arn, escalation.as_ref())?;
    if let Some(answered) = open_or_take_answer(ports, &request, token).await? {
        return Ok(answered);
    }
    let (subject, body) = message(&request, escalation.as_ref());
    let tier = escalation
        .as_ref()
        .and_then(|e| e.current_tier())
        .map(|t| t.name.clone());
    let mut attributes: std::collections::BTreeMap<String, String> = [
        ("scenario".to_owned(), request.scenario.clone()),
        ("event".to_owned(), event.to_owned()),
        ("execution".to_owned(), request.execution_name.clone()),
        ("resource".to_owned(), request.resource.clone()),
        ("severity".to_owned(), "critical".to_owned()),
    ]
    .into();
    if let Some(tier) = &tier {
        attributes.insert("tier".to_owned(), tier.clone());
    }
    let message_id = ports
        .notifier
        .publish(&Notification {
            topic: topic_arn,
            subject,
            body,
            attributes: attributes.into_iter().collect(),
        })
        .await?;
    tracing::warn!(execution = %request.execution_name, deadline = %request.deadline, tier = ?tier, "approval requested");
    Ok(ApprovalOutput {
        execution_name: request.execution_name,
        status: ApprovalStatus::Pending,
        deadline: request.deadline,
        message_id: Some(message_id),
        answer: None,
    })
}

/// Records the pending question with this tier's token; `Some` when it was
/// answered already (between two tiers): the recorded answer, handed to
/// this token.
async fn open_or_take_answer(
    ports: &Ports,
    request: &ApprovalRequest,
    token: &SecretString,
) -> DrResult<Option<ApprovalOutput>> {
    match ports.approvals.open(request, token).await {
        Ok(()) => Ok(None),
        Err(DrError::Conflict(_)) => deliver_recorded(ports, &request.execution_name, token)
            .await
            .map(Some),
        Err(error) => Err(error),
    }
}

impl ApprovalOutput {
    /// A closed approval and its answer.
    fn answered(closed: ApprovalRequest, answer: ApprovalAnswer) -> Self {
        ApprovalOutput {
            execution_name: closed.execution_name,
            status: closed.status,
            deadline: closed.deadline,
            message_id: None,
            answer: Some(answer),
        }
    }
}

/// The approval was answered before this tier's token was recorded: hand
/// the recorded answer to this token (what `drctl approve` would have
/// done), or, when it expired, say so.
async fn deliver_recorded(
    ports: &Ports,
    execution: &str,
    token: &SecretString,
) -> DrResult<ApprovalOutput> {
    let (closed, _) = ports
        .approvals
        .get(execution)
        .await?
        .ok_or_else(|| DrError::Internal(format!("the approval of {execution} vanished")))?;
    let Some(answer) = closed.answer.clone() else {
        return Err(DrError::Conflict(format!(
            "the approval of {execution} is {:?}: nobody is asked again",
            closed.status
        )));
    };
    deliver(ports.tokens.as_ref(), token, &answer).await?;
    tracing::warn!(
        execution,
        "the approval was answered between two tiers; the answer is taken"
    );
    Ok(ApprovalOutput::answered(closed, answer))
}

/// Hands an answer to the task waiting on `token`: its output when
/// approved, the `Rejected` error (the answer as its cause) when not.
async fn deliver(
    tokens: &dyn TaskTokens,
    token: &SecretString,
    answer: &ApprovalAnswer,
) -> DrResult<()> {
    if answer.approved {
        tokens.send_success(token, &serde_json::json!(answer)).await
    } else {
        let cause = serde_json::to_string(answer)
            .map_err(|e| DrError::Internal(format!("serializing the answer: {e}")))?;
        tokens.send_failure(token, "Rejected", &cause).await
    }
}

pub async fn approval(ports: &Ports, input: ApprovalInput) -> DrResult<ApprovalStep> {
    match input {
        ApprovalInput::Climb {
            escalation,
            timeout_seconds,
            now,
        } => {
            let timeout = timeout_seconds
                .unwrap_or_else(|| crate::escalation::path_seconds(&escalation.tiers));
            crate::escalation::climb(escalation, now, timeout).map(ApprovalStep::Climbed)
        }
        ApprovalInput::PlanPage { event } => {
            crate::escalation::page_of(&event).map(ApprovalStep::Planned)
        }
        ApprovalInput::Page {
            token,
            page,
            escalation,
        } => {
            let request = ApprovalRequest {
                execution_name: Page::key(&page.id),
                execution_arn: String::new(),
                scenario: page.scenario.clone(),
                resource: page.resource.clone(),
                question: page.subject.clone(),
                facts: Vec::new(),
                proposed_action: format!("acknowledge the page: drctl ack {}", page.id),
                default_action: "every tier of the escalation path is paged in turn".to_owned(),
                requested_at: page.raised_at,
                deadline: page.raised_at,
                status: ApprovalStatus::Pending,
                answer: None,
                escalation: Vec::new(),
            };
            let message = move |_: &ApprovalRequest, e: Option<&Escalation>| match e {
                Some(e) => crate::escalation::page_message(&page, e),
                None => (page.subject.clone(), page.body.clone()),
            };
            send(
                ports,
                request,
                &token,
                None,
                Some(escalation),
                "page",
                &message,
            )
            .await
            .map(ApprovalStep::Asked)
        }
        ApprovalInput::Ask {
            token,
            topic_arn,
            escalation,
            execution,
            scenario,
            resource,
            draft,
            timeout_seconds,
            drill,
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
                escalation: Vec::new(),
            };
            match &drill {
                Some(drill) => {
                    database_is_drill_copy(ports, &request.resource, drill).await?;
                    answered_by_drill(ports, request, &token, topic_arn, escalation, drill).await
                }
                None => ask(ports, request, &token, topic_arn, escalation).await,
            }
            .map(ApprovalStep::Asked)
        }
        ApprovalInput::Request {
            token,
            topic_arn,
            escalation,
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
            match &plan.drill {
                Some(drill) => {
                    crate::plan::plan_on_drill_copy(&plan)?;
                    answered_by_drill(ports, request, &token, topic_arn, escalation, drill).await
                }
                None => ask(ports, request, &token, topic_arn, escalation).await,
            }
            .map(ApprovalStep::Asked)
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
            Ok(ApprovalStep::Asked(ApprovalOutput {
                execution_name: closed.execution_name,
                status: closed.status,
                deadline: closed.deadline,
                message_id: None,
                answer: closed.answer,
            }))
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
    executions: &dyn Executions,
    execution: &str,
    approve: bool,
    by: &str,
    reason: Option<&str>,
) -> DrResult<(ApprovalRequest, ApprovalAnswer, Delivery)> {
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
        tier: request.escalation.last().map(|t| t.tier.clone()),
    };
    let status = if approve {
        ApprovalStatus::Approved
    } else {
        ApprovalStatus::Rejected
    };
    // Claim the answer first (exactly once), then wake the execution.
    let closed = store.close(execution, status, Some(answer.clone())).await?;
    let delivery = match deliver(tokens, &token, &answer).await {
        Ok(()) => Delivery::Taken,
        Err(error) => {
            // Only a token that no longer waits says anything of the
            // run: ask whether it still runs (a transient failure does not).
            // Not knowing (the question itself failed) concludes nothing:
            // the answer is recorded, and the message says what to watch.
            let state = match error {
                DrError::NotFound(_) => executions
                    .state(&closed.execution_arn)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "could not tell whether the run still runs");
                        None
                    }),
                _ => None,
            };
            undelivered(&error, state, dr_core::clock::now(), closed.deadline)
                .map_err(|why| why.error(execution, &error))?
        }
    };
    Ok((closed, answer, delivery))
}

/// How an answer reached the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// The waiting step took it.
    Taken,
    /// The tier's wait ended as the answer came (its token no longer
    /// waits): the run, still running before its deadline, is in the next
    /// tier's step, which takes the recorded answer.
    NextTier,
}

/// Why a recorded answer reaches nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undelivered {
    /// The step did not answer (throttled, unreachable): it may yet.
    NotTaken,
    /// The token no longer waits and the deadline passed.
    Expired,
    /// The token no longer waits and the run has ended.
    Ended(ExecutionState),
}

impl Undelivered {
    /// What `drctl approve` says: `Unavailable` while the step may yet take
    /// the answer, `Conflict` once nothing will.
    fn error(self, execution: &str, error: &DrError) -> DrError {
        match self {
            Undelivered::NotTaken => DrError::Unavailable(format!(
                "the answer is recorded but the waiting step did not take it ({error}): if a tier's wait ends before it does, the next tier's step takes the recorded answer; if the deadline passes, the safe default applies. drctl watch {execution} shows which"
            )),
            Undelivered::Expired => DrError::Conflict(format!(
                "the answer is recorded too late: the approval of {execution} expired and the safe default applies (drctl watch {execution})"
            )),
            Undelivered::Ended(state) => DrError::Conflict(format!(
                "the answer is recorded but nothing takes it: {execution} is no longer running ({})",
                state.as_str()
            )),
        }
    }
}

/// How far the clock that answers may be from the execution's: within it
/// of the deadline, the last tier's wait may have been the one that ended,
/// and nobody can say whether a next step comes.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(30);

/// What a failed delivery means, from the error, the run's state (asked
/// only when the token no longer waits) and the approval's deadline: the
/// next tier's step takes the answer only while the run runs before its
/// deadline.
pub fn undelivered(
    error: &DrError,
    state: Option<ExecutionState>,
    now: chrono::DateTime<Utc>,
    deadline: chrono::DateTime<Utc>,
) -> Result<Delivery, Undelivered> {
    match (error, state) {
        (DrError::NotFound(_), Some(ExecutionState::Running)) if now + CLOCK_SKEW < deadline => {
            Ok(Delivery::NextTier)
        }
        (DrError::NotFound(_), Some(ExecutionState::Running)) if now >= deadline => {
            Err(Undelivered::Expired)
        }
        (DrError::NotFound(_), Some(ExecutionState::Running)) => Err(Undelivered::NotTaken),
        (DrError::NotFound(_), Some(ended)) => Err(Undelivered::Ended(ended)),
        _ => Err(Undelivered::NotTaken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escalation::{climb, Tier};

    #[test]
    fn an_escalated_question_says_its_tier_in_a_subject_sns_keeps_whole() {
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-29T03:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let tiers = ["primary-on-call", "backup-on-call"]
            .iter()
            .map(|n| Tier {
                name: (*n).to_owned(),
                topic_arn: format!("arn:aws:sns:us-east-1:1:{n}"),
                response_minutes: 15,
            })
            .collect();
        let e = Escalation {
            tiers,
            asked: vec![],
            deadline: None,
            current: None,
            wait_seconds: 0,
            done: false,
            answered_at: None,
        };
        let e = climb(e, t0, 3600).expect("1");
        let e = climb(e, t0 + chrono::Duration::minutes(15), 3600).expect("2");
        let request = ApprovalRequest {
            execution_name: "breach-1".to_owned(),
            execution_arn: "arn:x".to_owned(),
            scenario: "security-breach".to_owned(),
            resource: "muejam".to_owned(),
            question: "Tell 25 user(s) of muejam that their account was in a breach?".to_owned(),
            facts: vec![],
            proposed_action: "tell them".to_owned(),
            default_action: "nobody is told".to_owned(),
            requested_at: t0,
            deadline: t0 + chrono::Duration::hours(1),
            status: ApprovalStatus::Pending,
            answer: None,
            escalation: vec![],
        };
        let (subject, body) = approval_message(&request, Some(&e));
        // SNS keeps the first 100 characters: the deadline and tier are in them.
        let kept: String = subject.chars().take(100).collect();
        assert!(
            kept.starts_with(
                "[MueJam DR] APPROVAL NEEDED by 04:00 UTC (tier 2/2): Tell 25 user(s)"
            ),
            "{subject}"
        );
        assert!(body.starts_with(
            "Escalated to you, escalation tier 2 of 2 (backup-on-call): primary-on-call was asked at 03:00:00 UTC and did not answer within 15 min."
        ), "{body}");
    }

    fn at(hhmm: &str) -> chrono::DateTime<Utc> {
        let hhmmss = if hhmm.len() == 5 {
            format!("{hhmm}:00")
        } else {
            hhmm.to_owned()
        };
        chrono::DateTime::parse_from_rfc3339(&format!("2026-11-29T{hhmmss}Z"))
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn an_answer_whose_token_no_longer_waits_is_taken_by_the_next_tier_only_while_the_run_runs_in_time(
    ) {
        let gone = DrError::NotFound("TaskTimedOut: Provided task does not exist anymore".into());
        let throttled = DrError::Throttled("slow down".into());
        let deadline = at("04:00");
        type Case<'a> = (
            &'a DrError,
            Option<ExecutionState>,
            &'a str,
            Result<Delivery, Undelivered>,
        );
        let cases: [Case; 10] = [
            // A tier's wait ended as the answer came: the next tier's step
            // (the run is running, before its deadline) takes it.
            (
                &gone,
                Some(ExecutionState::Running),
                "03:15",
                Ok(Delivery::NextTier),
            ),
            (
                &gone,
                Some(ExecutionState::Running),
                "03:59:29",
                Ok(Delivery::NextTier),
            ),
            // Within the clocks' skew of the deadline, the wait that ended
            // may have been the last tier's: nobody can say.
            (
                &gone,
                Some(ExecutionState::Running),
                "03:59:45",
                Err(Undelivered::NotTaken),
            ),
            // Past the deadline the safe default applies, whatever runs.
            (
                &gone,
                Some(ExecutionState::Running),
                "04:00",
                Err(Undelivered::Expired),
            ),
            (
                &gone,
                Some(ExecutionState::Running),
                "04:05",
                Err(Undelivered::Expired),
            ),
            // The run ended: nothing takes it.
            (
                &gone,
                Some(ExecutionState::Aborted),
                "03:15",
                Err(Undelivered::Ended(ExecutionState::Aborted)),
            ),
            (
                &gone,
                Some(ExecutionState::Failed),
                "03:15",
                Err(Undelivered::Ended(ExecutionState::Failed)),
            ),
            (
                &gone,
                Some(ExecutionState::Succeeded),
                "03:15",
                Err(Undelivered::Ended(ExecutionState::Succeeded)),
            ),
            // Not known here: nothing is concluded.
            (&gone, None, "03:15", Err(Undelivered::NotTaken)),
            // The step did not answer: it may yet take it.
            (
                &throttled,
                Some(ExecutionState::Running),
                "03:15",
                Err(Undelivered::NotTaken),
            ),
        ];
        for (error, state, now, expected) in cases {
            assert_eq!(
                undelivered(error, state, at(now), deadline),
                expected,
                "{error} {state:?} at {now}"
            );
        }
    }

    /// One recorded question, a token that no longer waits, and a run in
    /// `state`.
    struct Boundary {
        request: std::sync::Mutex<ApprovalRequest>,
        state: Option<ExecutionState>,
    }

    #[async_trait::async_trait]
    impl ApprovalStore for Boundary {
        async fn open(&self, _: &ApprovalRequest, _: &SecretString) -> DrResult<()> {
            Ok(())
        }
        async fn get(&self, _: &str) -> DrResult<Option<(ApprovalRequest, SecretString)>> {
            let request = self.request.lock().expect("lock").clone();
            Ok(Some((
                request,
                SecretString::from("tier-1-token".to_owned()),
            )))
        }
        async fn close(
            &self,
            _: &str,
            status: ApprovalStatus,
            answer: Option<ApprovalAnswer>,
        ) -> DrResult<ApprovalRequest> {
            let mut request = self.request.lock().expect("lock");
            request.status = status;
            request.answer = answer;
            Ok(request.clone())
        }
    }

    #[async_trait::async_trait]
    impl TaskTokens for Boundary {
        async fn send_success(&self, _: &SecretString, _: &serde_json::Value) -> DrResult<()> {
            Err(DrError::NotFound(
                "answering the waiting task: TaskTimedOut".into(),
            ))
        }
        async fn send_failure(&self, _: &SecretString, _: &str, _: &str) -> DrResult<()> {
            Err(DrError::NotFound(
                "answering the waiting task: TaskTimedOut".into(),
            ))
        }
    }

    #[async_trait::async_trait]
    impl Executions for Boundary {
        async fn state(&self, execution_arn: &str) -> DrResult<Option<ExecutionState>> {
            assert_eq!(
                execution_arn,
                "arn:aws:states:us-east-1:1:execution:m:breach-1"
            );
            Ok(self.state)
        }
        async fn definitions(&self, _: &str, _: &str) -> DrResult<Option<DefinitionDigests>> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn drctl_approve_at_a_tiers_boundary_records_the_answer_for_the_next_tier_and_succeeds() {
        let now = Utc::now();
        let pending = ApprovalRequest {
            execution_name: "breach-1".to_owned(),
            execution_arn: "arn:aws:states:us-east-1:1:execution:m:breach-1".to_owned(),
            scenario: "security-breach".to_owned(),
            resource: "muejam".to_owned(),
            question: "Tell them?".to_owned(),
            facts: vec![],
            proposed_action: "tell them".to_owned(),
            default_action: "nobody is told".to_owned(),
            requested_at: now - chrono::Duration::minutes(15),
            deadline: now + chrono::Duration::minutes(45),
            status: ApprovalStatus::Pending,
            answer: None,
            escalation: vec![],
        };
        let running = Boundary {
            request: std::sync::Mutex::new(pending.clone()),
            state: Some(ExecutionState::Running),
        };
        let (closed, answer, delivery) = super::answer(
            &running,
            &running,
            &running,
            "breach-1",
            true,
            "alice",
            Some("go"),
        )
        .await
        .expect("taken by the next tier");
        assert_eq!(delivery, Delivery::NextTier);
        assert_eq!(closed.status, ApprovalStatus::Approved, "recorded");
        assert_eq!(answer.by, "alice");

        let stopped = Boundary {
            request: std::sync::Mutex::new(pending),
            state: Some(ExecutionState::Aborted),
        };
        let error = super::answer(
            &stopped,
            &stopped,
            &stopped,
            "breach-1",
            false,
            "alice",
            Some("no"),
        )
        .await
        .expect_err("nothing takes it");
        assert_eq!(error.name(), "Conflict");
        assert!(
            error
                .to_string()
                .contains("breach-1 is no longer running (ABORTED)"),
            "{error}"
        );
    }
}
