//! Telling the affected users, once each: after a person approves, in
//! batches through the user-notification topic, with a ledger keyed by
//! (incident, user).
//!
//! Each batch is claimed in the ledger (`sending`), sent, then recorded
//! (`sent`). A retry after a failure anywhere in between re-reads the
//! ledger: `sent` users are skipped; users claimed moments ago are sent
//! again with the same notification id, which the FIFO topic drops as a
//! duplicate within its five-minute deduplication interval; a claim older
//! than that is never re-sent blindly: the report lists it for a person
//! to check against the mailer's log.

use chrono::{DateTime, Duration, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use super::steps::BreachPlan;
use crate::Ports;

/// SNS FIFO topics drop a repeated deduplication id within five minutes.
pub const DEDUP_INTERVAL_SECONDS: i64 = 300;
/// A claim younger than this is re-sent (the margin covers clock skew
/// between the invocations that claimed and that re-send).
pub const RESEND_WITHIN_SECONDS: i64 = DEDUP_INTERVAL_SECONDS - 60;
/// Batches per invocation (1,000 users): a bounded call; the state
/// machine loops.
pub const DEFAULT_MAX_BATCHES: usize = 100;
/// Calls one run makes at most (`MoreToNotify` in the state machine): with
/// [`DEFAULT_MAX_BATCHES`], 20,000 users; a new execution with the same
/// `recovery_id` goes on past that. It keeps the run's worst case (every
/// attempt at the function's timeout) within its `TimeoutSeconds`.
pub const MAX_NOTIFY_CALLS: u64 = 20;
/// A call starts no batch after this long (the function's timeout is 60 s),
/// and returns what remains for the next call.
pub const CALL_BUDGET_SECONDS: u64 = 40;
/// The most a request may ask in one invocation.
pub const MAX_BATCHES: usize = 500;
/// Users named in a report's list of uncertain sends, at most.
pub const UNCERTAIN_SAMPLE: usize = 20;

/// What to do for one recipient, from the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Never claimed: send.
    Send,
    /// Sent already: nothing.
    Skip,
    /// Claimed moments ago and not recorded as sent: send again with the
    /// same notification id (the topic drops a duplicate).
    Resend,
    /// Claimed too long ago for the topic to drop a duplicate: not sent
    /// again; a person checks the mailer's log.
    Uncertain,
}

/// Pure: the decision for a recipient with `entry` in the ledger at `now`.
pub fn decide(entry: Option<&LedgerEntry>, now: DateTime<Utc>) -> Decision {
    match entry {
        None => Decision::Send,
        Some(e) if e.state == LedgerState::Sent => Decision::Skip,
        Some(e) if now - e.claimed_at < Duration::seconds(RESEND_WITHIN_SECONDS) => {
            Decision::Resend
        }
        Some(_) => Decision::Uncertain,
    }
}

/// The id of one user's notice of one incident: the same on every attempt.
pub fn notification_id(incident: &str, user: i64) -> String {
    format!("{incident}.{user}")
}

/// Where an incident's recipients are kept (the report store).
pub fn recipients_key(recovery_id: &str) -> String {
    format!("security-breach/{recovery_id}/recipients.json")
}

/// Pure: the notice one user gets. It names what happened and when, what
/// was done, what to do; never anything about other users.
pub fn user_message(plan: &BreachPlan, user: i64) -> UserMessage {
    let keys = match plan.revoke_keys {
        super::KeyScope::All => "every API key of the platform was revoked, yours included",
        super::KeyScope::AffectedUsers => "your API keys were revoked",
    };
    UserMessage {
        user_id: user,
        notification_id: notification_id(&plan.recovery_id, user),
        subject: "Security notice about your MueJam account".to_owned(),
        body: format!(
            "We detected unauthorised activity involving your MueJam account between {} and {} (UTC).\n\n\
             What we did: the addresses involved are blocked, {keys}, and our database credentials were changed.\n\n\
             What you should do: create new API keys in your account settings, change your password, \
             and review your account's recent activity.\n\n\
             Reference: {}\n",
            plan.window.from.format("%Y-%m-%d %H:%M"),
            plan.window.to.format("%Y-%m-%d %H:%M"),
            notification_id(&plan.recovery_id, user),
        ),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyInput {
    pub plan: BreachPlan,
    /// The user-notification topic.
    pub topic_arn: String,
    #[serde(default)]
    pub max_batches: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyOutput {
    pub recipients: u64,
    /// Sent by this call (re-sends included).
    pub sent_now: u64,
    /// Of those, re-sent after an interrupted attempt.
    pub resent: u64,
    /// Sent before this call.
    pub already_sent: u64,
    /// Claimed too long ago to re-send safely: checked by a person.
    pub uncertain: u64,
    pub uncertain_sample: Vec<i64>,
    /// Still to send: the state machine calls again.
    pub remaining: u64,
}

/// Reads an incident's recipients from the report store.
pub async fn recipients(ports: &Ports, recovery_id: &str) -> DrResult<Vec<i64>> {
    let key = recipients_key(recovery_id);
    let body = ports.reports.get(&key).await?.ok_or_else(|| {
        DrError::NotFound(format!(
            "no recipients at {key}: the impact was not assessed"
        ))
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| DrError::Internal(format!("the recipients at {key} are unreadable: {e}")))
}

pub async fn notify_users(ports: &Ports, input: NotifyInput) -> DrResult<NotifyOutput> {
    let plan = &input.plan;
    let max_batches = input.max_batches.unwrap_or(DEFAULT_MAX_BATCHES);
    if !(1..=MAX_BATCHES).contains(&max_batches) {
        return Err(DrError::InvalidInput(format!(
            "max_batches {max_batches}: between 1 and {MAX_BATCHES}"
        )));
    }
    let incident = &plan.recovery_id;
    let users = recipients(ports, incident).await?;
    let ledger: std::collections::HashMap<i64, LedgerEntry> = ports
        .ledger
        .entries(incident)
        .await?
        .into_iter()
        .map(|e| (e.user_id, e))
        .collect();
    let now = dr_core::clock::now();
    let mut todo = Vec::new();
    let mut already_sent = 0u64;
    let mut uncertain = Vec::new();
    for user in &users {
        match decide(ledger.get(user), now) {
            Decision::Send => todo.push((*user, false)),
            Decision::Resend => todo.push((*user, true)),
            Decision::Skip => already_sent += 1,
            Decision::Uncertain => uncertain.push(*user),
        }
    }
    let mut sent_now = 0u64;
    let mut resent = 0u64;
    let mut processed = 0usize;
    let began = std::time::Instant::now();
    for batch in todo.chunks(USER_BATCH_MAX).take(max_batches) {
        if began.elapsed() > std::time::Duration::from_secs(CALL_BUDGET_SECONDS) {
            break;
        }
        let batch_users: Vec<i64> = batch.iter().map(|(u, _)| *u).collect();
        ports
            .ledger
            .claim(incident, &batch_users, dr_core::clock::now())
            .await?;
        let messages: Vec<UserMessage> =
            batch_users.iter().map(|u| user_message(plan, *u)).collect();
        let deliveries = ports.users.send_batch(&input.topic_arn, &messages).await?;
        let mut sent = Vec::new();
        let mut failures = Vec::new();
        for ((user, again), delivery) in batch.iter().zip(deliveries) {
            match delivery {
                UserDelivery::Sent { message_id } => {
                    sent.push((*user, message_id));
                    resent += u64::from(*again);
                }
                UserDelivery::Failed { reason } => failures.push(format!("user {user}: {reason}")),
            }
        }
        ports
            .ledger
            .mark_sent(incident, &sent, dr_core::clock::now())
            .await?;
        sent_now += sent.len() as u64;
        processed += batch.len();
        if !failures.is_empty() {
            // The sent ones are recorded; a retry sends the rest.
            return Err(DrError::Unavailable(format!(
                "{} of a batch of {} not accepted by the topic ({}); {} sent so far in this call",
                failures.len(),
                batch.len(),
                failures.join("; "),
                sent_now
            )));
        }
    }
    tracing::info!(incident = %incident, sent_now, resent, already_sent, uncertain = uncertain.len(), "users notified");
    Ok(NotifyOutput {
        recipients: users.len() as u64,
        sent_now,
        resent,
        already_sent,
        uncertain: uncertain.len() as u64,
        uncertain_sample: uncertain.iter().take(UNCERTAIN_SAMPLE).copied().collect(),
        remaining: (todo.len() - processed) as u64,
    })
}

/// What the ledger says of an incident's recipients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerSummary {
    pub recipients: u64,
    pub sent: u64,
    /// Sends begun and never recorded.
    pub sending: u64,
    pub not_sent: u64,
    /// Recipients told more than once by a retried claim (re-sent with the
    /// same notification id, dropped by the topic as a duplicate).
    pub retried: u64,
}

/// Pure: the ledger's entries against the recipients.
pub fn summarise(recipients: &[i64], entries: &[LedgerEntry]) -> LedgerSummary {
    let by_user: std::collections::HashMap<i64, &LedgerEntry> =
        entries.iter().map(|e| (e.user_id, e)).collect();
    let mut s = LedgerSummary {
        recipients: recipients.len() as u64,
        ..LedgerSummary::default()
    };
    for user in recipients {
        match by_user.get(user) {
            Some(e) if e.state == LedgerState::Sent => {
                s.sent += 1;
                s.retried += u64::from(e.attempts > 1);
            }
            Some(_) => s.sending += 1,
            None => s.not_sent += 1,
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(state: LedgerState, claimed_seconds_ago: i64, now: DateTime<Utc>) -> LedgerEntry {
        LedgerEntry {
            user_id: 7,
            state,
            claimed_at: now - Duration::seconds(claimed_seconds_ago),
            attempts: 1,
            message_id: None,
            sent_at: None,
        }
    }

    #[test]
    fn a_user_is_sent_once_resent_only_within_the_deduplication_interval() {
        let now = dr_core::clock::now();
        let cases = [
            (None, Decision::Send),
            (Some(entry(LedgerState::Sent, 5, now)), Decision::Skip),
            (Some(entry(LedgerState::Sent, 86_400, now)), Decision::Skip),
            (Some(entry(LedgerState::Sending, 0, now)), Decision::Resend),
            (Some(entry(LedgerState::Sending, 30, now)), Decision::Resend),
            (
                Some(entry(LedgerState::Sending, RESEND_WITHIN_SECONDS - 1, now)),
                Decision::Resend,
            ),
            (
                Some(entry(LedgerState::Sending, RESEND_WITHIN_SECONDS, now)),
                Decision::Uncertain,
            ),
            (
                Some(entry(LedgerState::Sending, DEDUP_INTERVAL_SECONDS, now)),
                Decision::Uncertain,
            ),
            (
                Some(entry(LedgerState::Sending, 7200, now)),
                Decision::Uncertain,
            ),
        ];
        for (e, expected) in cases {
            assert_eq!(decide(e.as_ref(), now), expected, "{e:?}");
        }
        // A margin under the topic's interval, for clock skew.
        const { assert!(RESEND_WITHIN_SECONDS < DEDUP_INTERVAL_SECONDS) };
    }

    #[test]
    fn the_state_machine_caps_the_calls_at_the_constant() {
        let machine: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../statemachines/security-breach.asl.json"),
            )
            .expect("definition"),
        )
        .expect("json");
        let cap = machine["States"]["MoreToNotify"]["Choices"]
            .as_array()
            .expect("choices")
            .iter()
            .find(|c| c["Variable"] == "$.notifying.calls")
            .expect("the cap");
        assert_eq!(cap["NumericGreaterThanEquals"], MAX_NOTIFY_CALLS);
    }

    #[test]
    fn the_summary_counts_each_recipient_once() {
        let now = dr_core::clock::now();
        let mut sent = entry(LedgerState::Sent, 10, now);
        sent.user_id = 1;
        let mut retried = entry(LedgerState::Sent, 10, now);
        retried.user_id = 2;
        retried.attempts = 2;
        let mut sending = entry(LedgerState::Sending, 10, now);
        sending.user_id = 3;
        let mut stranger = entry(LedgerState::Sent, 10, now);
        stranger.user_id = 99;
        let s = summarise(&[1, 2, 3, 4], &[sent, retried, sending, stranger]);
        assert_eq!(
            s,
            LedgerSummary {
                recipients: 4,
                sent: 2,
                sending: 1,
                not_sent: 1,
                retried: 1
            }
        );
    }

    #[test]
    fn a_notice_names_the_incident_and_nothing_of_other_users() {
        let plan: BreachPlan = serde_json::from_value(serde_json::json!({
            "database": "muejam", "recovery_id": "breach-1",
            "blocks": ["203.0.113.10/32"],
            "window": {"from": "2026-11-26T20:00:00Z", "to": "2026-11-27T04:00:00Z"},
            "users": [5, 6], "revoke_keys": "affected_users",
            "ip_set": {"name": "s", "id": "i", "scope": "REGIONAL"},
            "primary": "muejam-db-prod", "db_name": "muejam",
            "credentials_secret_id": "m", "application": null, "region": null,
            "master_token": "t", "application_token": "u",
            "started_at": "2026-11-27T04:00:00Z", "notify_users": true,
            "approval_timeout_seconds": 600
        }))
        .expect("plan");
        let m = user_message(&plan, 6);
        assert_eq!(m.user_id, 6);
        assert_eq!(m.notification_id, "breach-1.6");
        assert!(m.body.contains("2026-11-26 20:00"), "{}", m.body);
        assert!(m.body.contains("your API keys were revoked"));
        assert!(m.body.contains("Reference: breach-1.6"));
        assert!(!m.body.contains("203.0.113"), "no attacker detail");
        assert!(!m.body.contains(" 5"), "no other user");
    }
}
