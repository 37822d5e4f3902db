//! What a recovery keeps: the topology registry, approvals and task tokens,
//! the journal, the lock, and what Step Functions says of an execution.

use super::*;

/// The registry of database topologies (a DynamoDB table).
#[async_trait]
pub trait TopologyRegistry: Send + Sync {
    async fn get(&self, database: &str) -> DrResult<Option<Topology>>;
    /// Stores `topology` as version `expected_version + 1` (1 when
    /// `expected_version` is `None`, which requires that none exists) and
    /// returns what was stored; a stored version other than the expected
    /// one is a `Conflict` (someone else changed the roles meanwhile).
    async fn put(&self, topology: &Topology, expected_version: Option<u64>) -> DrResult<Topology>;
    /// Every registered database.
    async fn list(&self) -> DrResult<Vec<Topology>>;
    /// Removes the record of `database` if it is still at
    /// `expected_version`; `false` when there is none (idempotent), a
    /// `Conflict` when someone changed it meanwhile. Only a drill's
    /// throw-away copies are ever removed.
    async fn delete(&self, database: &str, expected_version: u64) -> DrResult<bool>;
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    /// Nobody answered before the deadline; the safe default applied.
    Expired,
}

/// Who answered an approval, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalAnswer {
    pub approved: bool,
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub reason: Option<String>,
    /// The escalation tier that was being asked when the answer came (the
    /// runbook's escalation path), when the question climbed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
}

/// A page: something a person must act on (a failed recovery, a probe that
/// cannot probe, a readiness failure), climbing the escalation path until
/// someone acknowledges it (`drctl ack <id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// What `drctl ack` names: the execution that paged, or the alarm.
    pub id: String,
    pub subject: String,
    pub body: String,
    #[serde(default)]
    pub scenario: String,
    #[serde(default)]
    pub resource: String,
    pub raised_at: DateTime<Utc>,
}

impl Page {
    /// The key its acknowledgement is kept under (beside approvals, apart
    /// from an approval of the same execution).
    pub fn key(id: &str) -> String {
        format!("page:{id}")
    }

    /// The name of its climb's execution: the same page, the same name, so
    /// raising it twice starts one climb. Step Functions' names are 1 to 80
    /// letters, digits, `-` and `_`; a longer id keeps a hash of the rest.
    pub fn execution_name(id: &str) -> String {
        let clean: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let name = format!("page-{clean}");
        if name.len() <= 80 {
            return name;
        }
        // FNV-1a of the whole id: stable across builds and platforms.
        let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{}-{hash:016x}", &name[..63])
    }
}

/// Starts a page's climb of the escalation path (the page-escalation state
/// machine); raising the same page again starts nothing new.
#[async_trait]
pub trait Pager: Send + Sync {
    async fn raise(&self, page: &Page) -> DrResult<()>;
}

/// One tier of the escalation path that was asked, and when (on the
/// execution's clock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierAsked {
    /// The tier's name (`primary-on-call`, ...).
    pub tier: String,
    pub at: DateTime<Utc>,
}

/// A question to a person, waiting for an answer by execution name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub execution_name: String,
    pub execution_arn: String,
    pub scenario: String,
    pub resource: String,
    pub question: String,
    pub facts: Vec<String>,
    pub proposed_action: String,
    pub default_action: String,
    pub requested_at: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    pub status: ApprovalStatus,
    #[serde(default)]
    pub answer: Option<ApprovalAnswer>,
    /// The tiers asked so far, oldest first; the last is the one asked now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation: Vec<TierAsked>,
}

/// Where pending approvals wait (a DynamoDB table): what `drctl approve`
/// finds by execution name, with the task token it answers. The token is a
/// capability (whoever holds it decides), so it is kept apart and secret.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Records a pending approval (again, on a retry of the same request).
    async fn open(&self, request: &ApprovalRequest, token: &SecretString) -> DrResult<()>;
    async fn get(&self, execution_name: &str) -> DrResult<Option<(ApprovalRequest, SecretString)>>;
    /// Closes a pending approval with its outcome; one that is no longer
    /// pending is a `Conflict` naming how it was closed.
    async fn close(
        &self,
        execution_name: &str,
        status: ApprovalStatus,
        answer: Option<ApprovalAnswer>,
    ) -> DrResult<ApprovalRequest>;
}

/// Answers a task waiting for a token: Step Functions' SendTaskSuccess and
/// SendTaskFailure on AWS, the local runner's token inbox locally.
#[async_trait]
pub trait TaskTokens: Send + Sync {
    async fn send_success(&self, token: &SecretString, output: &serde_json::Value) -> DrResult<()>;
    async fn send_failure(&self, token: &SecretString, error: &str, cause: &str) -> DrResult<()>;
}

/// How a journaled step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalStatus {
    /// Begun and not known to have ended (the run may have died).
    Started,
    Done,
    Failed,
}

/// What one step of a recovery did, kept across the executions that work
/// on the same recovery (a rerun resumes it), so the report tells the truth
/// about every attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub recovery_id: String,
    /// The step (`plan`, `confirm`, `fence`, `promote`, `dns`, ...).
    pub key: String,
    /// The execution that wrote it.
    pub execution: String,
    pub at: DateTime<Utc>,
    pub status: JournalStatus,
    pub summary: String,
    #[serde(default)]
    pub detail: Option<serde_json::Value>,
}

/// The journal of recoveries (a DynamoDB table keyed by recovery and step).
#[async_trait]
pub trait RecoveryJournal: Send + Sync {
    /// Writes the entry of `(recovery_id, key)`, replacing an earlier one.
    async fn record(&self, entry: &JournalEntry) -> DrResult<()>;
    /// Every entry of a recovery, oldest first.
    async fn entries(&self, recovery_id: &str) -> DrResult<Vec<JournalEntry>>;
}

/// Who holds the recovery of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub resource: String,
    pub owner: String,
    pub acquired_at: DateTime<Utc>,
}

/// One recovery per database at a time: a second trigger sees who holds it.
#[async_trait]
pub trait RecoveryLock: Send + Sync {
    /// Takes the lock for `owner`; taking it again as the same owner succeeds
    /// (retries are idempotent); another owner gets `Conflict` naming the holder.
    async fn acquire(&self, resource: &str, owner: &str, ttl_seconds: u64) -> DrResult<LockHolder>;
    /// Takes the lock from `stale_owner` (whose execution has ended) for
    /// `owner`; `Conflict` when someone else holds it by now.
    async fn take_over(
        &self,
        resource: &str,
        owner: &str,
        stale_owner: &str,
        ttl_seconds: u64,
    ) -> DrResult<LockHolder>;
    /// Releases the lock if `owner` holds it; releasing a free lock is a no-op.
    async fn release(&self, resource: &str, owner: &str) -> DrResult<()>;
    async fn holder(&self, resource: &str) -> DrResult<Option<LockHolder>>;
    /// Every lock held, by resource.
    async fn holders(&self) -> DrResult<Vec<LockHolder>>;
}

/// Where an execution stands, as Step Functions names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionState {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl ExecutionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionState::Running => "RUNNING",
            ExecutionState::Succeeded => "SUCCEEDED",
            ExecutionState::Failed => "FAILED",
            ExecutionState::TimedOut => "TIMED_OUT",
            ExecutionState::Aborted => "ABORTED",
        }
    }
}

/// The executions of the state machines: Step Functions on AWS, the local
/// runner's registry locally. Used to tell a running holder of a lock from
/// one that died.
#[async_trait]
pub trait Executions: Send + Sync {
    /// The state of an execution by its ARN; `None` when it is not known
    /// here (then nothing can be concluded about it).
    async fn state(&self, execution_arn: &str) -> DrResult<Option<ExecutionState>>;
    /// The definition an execution of `state_machine_arn` ran and the one
    /// deployed now, as digests; `None` when it is not known here.
    async fn definitions(
        &self,
        state_machine_arn: &str,
        execution_arn: &str,
    ) -> DrResult<Option<DefinitionDigests>>;
}

/// The SHA-256 (hex) of the definition an execution ran and of the one
/// deployed now: equal when a drill rehearsed the workflow an incident
/// would run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionDigests {
    pub ran_sha256: String,
    pub deployed_sha256: String,
}

/// A definition's text as deployed: each `${Name}` replaced by its value
/// (JSON-escaped), as SAM's DefinitionSubstitutions do.
pub fn render_definition(
    text: &str,
    substitutions: &std::collections::BTreeMap<String, String>,
) -> DrResult<String> {
    let mut rendered = text.to_owned();
    for (name, value) in substitutions {
        let escaped = serde_json::to_string(value)
            .map_err(|e| DrError::InvalidInput(format!("substitution {name}: {e}")))?;
        rendered = rendered.replace(&format!("${{{name}}}"), &escaped[1..escaped.len() - 1]);
    }
    Ok(rendered)
}

/// The SHA-256 of a definition's text, in hex.
pub fn definition_sha256(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where one user's notification of an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerState {
    /// Claimed for sending: the message may or may not have gone out (the
    /// sender died between the claim and the record of the send).
    Sending,
    /// Sent, with the topic's message id.
    Sent,
}

/// One (incident, user) of the notification ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub user_id: i64,
    pub state: LedgerState,
    /// When it was last claimed for sending.
    pub claimed_at: DateTime<Utc>,
    /// How many times it was claimed (more than one: a send was retried).
    pub attempts: u32,
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub sent_at: Option<DateTime<Utc>>,
}

/// Who was told of an incident (a DynamoDB table keyed by incident and
/// user), so that a retried or resumed batch never tells anyone twice.
#[async_trait]
pub trait NotificationLedger: Send + Sync {
    /// Every entry of an incident, by user.
    async fn entries(&self, incident: &str) -> DrResult<Vec<LedgerEntry>>;
    /// Claims `users` for sending (state `Sending`, one more attempt), all
    /// or none; `Conflict` when one of them was `Sent` meanwhile.
    async fn claim(&self, incident: &str, users: &[i64], at: DateTime<Utc>) -> DrResult<()>;
    /// Records what was sent: `(user, message id)`.
    async fn mark_sent(
        &self,
        incident: &str,
        sent: &[(i64, String)],
        at: DateTime<Utc>,
    ) -> DrResult<()>;
}
