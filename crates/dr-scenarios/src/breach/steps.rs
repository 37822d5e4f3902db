//! The security breach's steps: the plan (the request checked and resolved
//! against the registry), API keys revoked, addresses blocked, the audit
//! log's impact.

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use super::*;
use crate::corruption::loss::ApprovalDraft;
use crate::journal::{journaled, JournalRef, Journaled};
use crate::report::ExecutionInfo;
use crate::Ports;

/// The sensitive action types the runbook names.
pub const SENSITIVE_ACTIONS: [&str; 3] = ["data_export", "admin_action", "user_deletion"];
/// Affected users named in the run's state and report (the full list is in
/// the report store).
pub const USER_SAMPLE: usize = 20;
/// Audit rows written to the impact CSV at most.
pub const MAX_IMPACT_ROWS: usize = 100_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreachPlanInput {
    pub request: BreachRequest,
    pub execution: ExecutionInfo,
}

/// Everything the steps need, resolved once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreachPlan {
    pub database: String,
    pub recovery_id: String,
    /// The suspicious addresses as WAF blocks.
    pub blocks: Vec<String>,
    pub window: Window,
    pub users: Vec<i64>,
    pub revoke_keys: KeyScope,
    pub ip_set: IpSetRef,
    #[serde(default)]
    pub ip_set_v6: Option<IpSetRef>,
    pub primary: InstanceId,
    pub db_name: String,
    /// The master's secret.
    pub credentials_secret_id: String,
    pub application: Option<ApplicationAccess>,
    #[serde(default)]
    pub region: Option<String>,
    /// Rotation tokens, one per secret, derived from the run.
    pub master_token: String,
    pub application_token: String,
    pub started_at: DateTime<Utc>,
    pub notify_users: bool,
    pub approval_timeout_seconds: u64,
    /// The data-corruption recovery's input, when a restore from before
    /// the breach was asked for.
    #[serde(default)]
    pub restore: Option<serde_json::Value>,
    /// Its execution's name (≤ 80 characters, the same on every retry).
    #[serde(default)]
    pub restore_name: Option<String>,
}

/// Pure: the data-corruption recovery that restores `database` to `at`,
/// before the breach: the moment named (no search), its own approval.
pub fn restore_request(
    database: &str,
    at: DateTime<Utc>,
    recovery_id: &str,
    approval_timeout_seconds: u64,
) -> serde_json::Value {
    serde_json::json!({
        "database": database,
        "restore_time": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "approval_timeout_seconds": approval_timeout_seconds,
        "trigger": {
            "source": "manual",
            "reason": format!(
                "security breach {recovery_id}: restore from before the breach ({})",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        }
    })
}

/// The restore's execution name: the incident's, marked, within 80
/// characters.
pub fn restore_name(recovery_id: &str) -> String {
    let head: String = recovery_id.chars().take(72).collect();
    format!("{head}-restore")
}

/// A client request token for one secret of one run: 32 to 64 characters,
/// the same on every retry of the run.
pub fn rotation_token(recovery_id: &str, which: &str) -> String {
    let safe: String = recovery_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let token = format!("breach-{which}-{safe}");
    // Pad short names; the suffix keeps it unique per secret.
    format!("{token:-<32}")
}

pub async fn breach_plan(ports: &Ports, input: BreachPlanInput) -> DrResult<BreachPlan> {
    let r = input.request;
    let checked = check_request(&r, dr_core::clock::now())?;
    let topology = crate::plan::known_topology(ports, &r.database).await?;
    crate::plan::in_home_region(ports, &topology)?;
    // Each set exists and holds the version of what it will get (AWS
    // refuses a mixed set), read before anything changes.
    for (set, blocks) in sets_of(&r.ip_set, r.ip_set_v6.as_ref(), &checked.blocks) {
        if !blocks.is_empty() {
            let contents = ports.firewall.get_ip_set(set).await.map_err(|e| match e {
                DrError::NotFound(why) => DrError::InvalidInput(format!(
                    "WAF IP set {} ({}) does not exist: {why}",
                    set.name, set.id
                )),
                other => other,
            })?;
            check_version(set, &contents, &blocks)?;
        }
    }
    let recovery_id = r
        .recovery_id
        .clone()
        .unwrap_or_else(|| crate::plan::recovery_id_of(&input.execution.name));
    let restore = r.restore_before_breach.then(|| {
        restore_request(
            &r.database,
            r.restore_time.unwrap_or(checked.window.from),
            &recovery_id,
            r.approval_timeout_seconds,
        )
    });
    let restore_name = r.restore_before_breach.then(|| restore_name(&recovery_id));
    Ok(BreachPlan {
        database: r.database,
        master_token: rotation_token(&recovery_id, "master"),
        application_token: rotation_token(&recovery_id, "app"),
        recovery_id,
        blocks: checked.blocks.iter().map(ToString::to_string).collect(),
        window: checked.window,
        users: checked.users,
        revoke_keys: r.revoke_keys,
        ip_set: r.ip_set,
        ip_set_v6: r.ip_set_v6,
        primary: topology.primary,
        db_name: topology.db_name,
        credentials_secret_id: topology.credentials_secret_id,
        application: topology.application,
        region: topology.region,
        started_at: input.execution.start_time,
        notify_users: r.notify_users,
        approval_timeout_seconds: r.approval_timeout_seconds,
        restore,
        restore_name,
    })
}

fn journal_of(plan: &BreachPlan) -> JournalRef {
    JournalRef {
        recovery_id: plan.recovery_id.clone(),
        execution: plan.recovery_id.clone(),
    }
}

async fn master_target(ports: &Ports, plan: &BreachPlan) -> DrResult<DatabaseTarget> {
    crate::corruption::instance_target_in(
        ports,
        plan.region.as_deref(),
        &plan.primary,
        &plan.db_name,
        &plan.credentials_secret_id,
        60_000,
    )
    .await
    .map(|(_, t)| t)
}

// ----- API keys ---------------------------------------------------------------

/// Whose keys this pass revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokePass {
    /// Containment: every key (scope `all`) or the named users' (scope
    /// `affected_users`).
    Contain,
    /// After the assessment (scope `affected_users`): the keys of every
    /// user the audit log shows active from the suspicious addresses.
    Affected,
    /// After a restore from before the breach switched the database: the
    /// restore holds the keys as they were, revoked ones active again.
    /// Revoked again on the registry's primary now (every key, or the
    /// recipients': the affected and the named users).
    AfterRestore,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeKeysInput {
    pub plan: BreachPlan,
    pub pass: RevokePass,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeKeysOutput {
    pub revoked: u64,
    pub already_inactive: u64,
    /// Where the revoked ids are (the report store); none when none.
    pub ids_location: Option<String>,
    pub mutation: Option<String>,
}

impl Journaled for RevokeKeysOutput {
    fn change(&self) -> Option<String> {
        self.mutation.clone()
    }
}

pub async fn revoke_keys(ports: &Ports, input: RevokeKeysInput) -> DrResult<RevokeKeysOutput> {
    let plan = &input.plan;
    let target = match input.pass {
        RevokePass::AfterRestore => {
            // The primary the restore made (the plan's is the old one).
            let topology = crate::plan::known_topology(ports, &plan.database).await?;
            crate::corruption::instance_target_in(
                ports,
                plan.region.as_deref(),
                &topology.primary,
                &plan.db_name,
                &plan.credentials_secret_id,
                60_000,
            )
            .await?
            .1
        }
        _ => master_target(ports, plan).await?,
    };
    let users: Option<Vec<i64>> = match (input.pass, plan.revoke_keys) {
        (RevokePass::AfterRestore, KeyScope::All) => None,
        (RevokePass::AfterRestore, KeyScope::AffectedUsers) => {
            // The recipients hold the affected and the named users; the
            // restore's audit log no longer shows the breach.
            let mut users = match super::notify::recipients(ports, &plan.recovery_id).await {
                Ok(users) => users,
                Err(DrError::NotFound(_)) => Vec::new(),
                Err(e) => return Err(e),
            };
            users.extend(&plan.users);
            users.sort_unstable();
            users.dedup();
            Some(users)
        }
        (RevokePass::Contain, KeyScope::All) => None,
        (RevokePass::Contain, KeyScope::AffectedUsers) => Some(plan.users.clone()),
        // Everything was revoked at containment.
        (RevokePass::Affected, KeyScope::All) => Some(Vec::new()),
        (RevokePass::Affected, KeyScope::AffectedUsers) => {
            let found = ports
                .sql
                .audit_activity(&target, &plan.blocks, plan.window.from, plan.window.to, 0)
                .await?;
            let mut users = plan.users.clone();
            users.extend(found.users);
            users.sort_unstable();
            users.dedup();
            Some(users)
        }
    };
    if users.as_ref().is_some_and(Vec::is_empty) {
        return Ok(RevokeKeysOutput {
            revoked: 0,
            already_inactive: 0,
            ids_location: None,
            mutation: None,
        });
    }
    let scope = match &users {
        None => "every active API key".to_owned(),
        Some(u) => format!("the API keys of {} user(s)", u.len()),
    };
    let key = match input.pass {
        RevokePass::Contain => "api_keys",
        RevokePass::Affected => "api_keys_affected",
        RevokePass::AfterRestore => "api_keys_after_restore",
    };
    journaled(
        ports,
        Some(&journal_of(plan)),
        key,
        &format!("revoking {scope}"),
        async {
            let revoked = ports
                .sql
                .revoke_api_keys(&target, users.as_deref(), dr_core::clock::now())
                .await?;
            let ids_location = if revoked.revoked.is_empty() {
                None
            } else {
                let body = serde_json::to_vec(&revoked.revoked)
                    .map_err(|e| DrError::Internal(format!("serializing key ids: {e}")))?;
                Some(
                    ports
                        .reports
                        .put(
                            &format!("security-breach/{}/{key}.json", plan.recovery_id),
                            "application/json",
                            &body,
                        )
                        .await?,
                )
            };
            Ok(RevokeKeysOutput {
                revoked: revoked.revoked.len() as u64,
                already_inactive: revoked.already_inactive,
                mutation: (!revoked.revoked.is_empty())
                    .then(|| format!("revoked {} API key(s): {scope}", revoked.revoked.len())),
                ids_location,
            })
        },
    )
    .await
}

// ----- firewall ---------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockInput {
    pub plan: BreachPlan,
}

/// What blocking did, per IP set (IPv4, then IPv6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blocked {
    pub sets: Vec<BlockOutcome>,
}

impl Journaled for Blocked {
    fn change(&self) -> Option<String> {
        let changes: Vec<String> = self
            .sets
            .iter()
            .filter(|s| !s.added.is_empty())
            .map(|s| {
                format!(
                    "blocked {} address block(s) in WAF IP set {} ({} entries now)",
                    s.added.len(),
                    s.ip_set,
                    s.total
                )
            })
            .collect();
        (!changes.is_empty()).then(|| changes.join("; "))
    }
}

/// Pure: the blocks each set gets (IPv4 to `v4`, IPv6 to `v6`).
pub fn sets_of<'a>(
    v4: &'a IpSetRef,
    v6: Option<&'a IpSetRef>,
    blocks: &[ipnet::IpNet],
) -> Vec<(&'a IpSetRef, Vec<ipnet::IpNet>)> {
    let (six, four): (Vec<ipnet::IpNet>, Vec<ipnet::IpNet>) = blocks
        .iter()
        .partition(|b| matches!(b, ipnet::IpNet::V6(_)));
    let mut sets = vec![(v4, four)];
    if let Some(v6) = v6 {
        sets.push((v6, six));
    }
    sets
}

pub async fn block_step(ports: &Ports, input: BlockInput) -> DrResult<Blocked> {
    let plan = &input.plan;
    let blocks = addresses::normalise_all(&plan.blocks)?;
    let sets = sets_of(&plan.ip_set, plan.ip_set_v6.as_ref(), &blocks);
    if blocks.len() != sets.iter().map(|(_, b)| b.len()).sum::<usize>() {
        return Err(DrError::InvalidInput(
            "IPv6 addresses need ip_set_v6: a WAF IP set holds addresses of one IP version"
                .to_owned(),
        ));
    }
    journaled(
        ports,
        Some(&journal_of(plan)),
        "firewall",
        &format!(
            "blocking {} address block(s) in {}",
            blocks.len(),
            sets.iter()
                .map(|(s, _)| s.name.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        ),
        async {
            let mut done = Vec::new();
            for (set, set_blocks) in &sets {
                if !set_blocks.is_empty() {
                    done.push(block_addresses(ports.firewall.as_ref(), set, set_blocks).await?);
                }
            }
            Ok(Blocked { sets: done })
        },
    )
    .await
}

// ----- impact -----------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessInput {
    pub plan: BreachPlan,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Impact {
    pub events: u64,
    pub affected_users: u64,
    /// The first [`USER_SAMPLE`] affected users (the approval's sample).
    pub user_sample: Vec<i64>,
    pub by_action: std::collections::BTreeMap<String, u64>,
    /// The sensitive actions among them.
    pub sensitive: std::collections::BTreeMap<String, u64>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    /// The CSV of every event and the list of every affected user.
    pub events_location: String,
    pub users_location: String,
    /// More events than the CSV holds.
    pub truncated: bool,
    /// Who would be told: the affected users and the named ones.
    pub recipients: u64,
    /// Of them, not yet told of this incident (the ledger).
    pub to_notify: u64,
    /// The question before anyone is told.
    pub approval: ApprovalDraft,
}

/// Pure: the question a person answers before users are told, with the
/// count and a sample (telling users is a legal step).
pub fn notify_question(
    plan: &BreachPlan,
    recipients: &[i64],
    to_notify: u64,
    activity: &AuditActivity,
    sensitive: &std::collections::BTreeMap<String, u64>,
) -> ApprovalDraft {
    let sample: Vec<String> = recipients
        .iter()
        .take(USER_SAMPLE)
        .map(ToString::to_string)
        .collect();
    let mut facts = vec![
        format!(
            "{} event(s) from the suspicious addresses between {} and {}",
            activity.events,
            plan.window.from.to_rfc3339(),
            plan.window.to.to_rfc3339()
        ),
        format!(
            "{} recipient(s): {} found in the audit log, {} named in the request; {} already told of this incident",
            recipients.len(),
            activity.users.len(),
            plan.users.len(),
            recipients.len() as u64 - to_notify
        ),
        format!(
            "sample of users: {}{}",
            sample.join(", "),
            if recipients.len() > USER_SAMPLE { ", …" } else { "" }
        ),
    ];
    if !sensitive.is_empty() {
        facts.push(format!(
            "sensitive actions: {}",
            sensitive
                .iter()
                .map(|(a, n)| format!("{a} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    ApprovalDraft {
        question: format!(
            "Tell {to_notify} user(s) of {} that their account was involved in a security breach?",
            plan.database
        ),
        facts,
        proposed_action: format!(
            "send one security notice to each of the {to_notify} user(s) through the user-notification topic, in batches, each user at most once (incident {})",
            plan.recovery_id
        ),
        default_action: format!(
            "nobody is told; the report says so; to tell them later, start the scenario again with \"recovery_id\": \"{}\"",
            plan.recovery_id
        ),
    }
}

/// Pure: the CSV of the events (id, user, action, address, time).
pub fn events_csv(rows: &[AuditRow]) -> DrResult<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(["id", "user_id", "action_type", "ip_address", "created_at"])
        .map_err(|e| DrError::Internal(format!("writing the CSV: {e}")))?;
    for r in rows {
        writer
            .write_record([
                r.id.to_string(),
                r.user_id.map(|u| u.to_string()).unwrap_or_default(),
                r.action_type.clone(),
                r.ip_address.clone(),
                r.created_at.to_rfc3339(),
            ])
            .map_err(|e| DrError::Internal(format!("writing the CSV: {e}")))?;
    }
    writer
        .into_inner()
        .map_err(|e| DrError::Internal(format!("writing the CSV: {e}")))
}

pub async fn assess_impact(ports: &Ports, input: AssessInput) -> DrResult<Impact> {
    let plan = &input.plan;
    let target = master_target(ports, plan).await?;
    let activity = ports
        .sql
        .audit_activity(
            &target,
            &plan.blocks,
            plan.window.from,
            plan.window.to,
            MAX_IMPACT_ROWS,
        )
        .await?;
    let prefix = format!("security-breach/{}", plan.recovery_id);
    let events_location = ports
        .reports
        .put(
            &format!("{prefix}/events.csv"),
            "text/csv",
            &events_csv(&activity.rows)?,
        )
        .await?;
    let users = serde_json::to_vec(&activity.users)
        .map_err(|e| DrError::Internal(format!("serializing users: {e}")))?;
    let users_location = ports
        .reports
        .put(
            &format!("{prefix}/affected-users.json"),
            "application/json",
            &users,
        )
        .await?;
    let sensitive = activity
        .by_action
        .iter()
        .filter(|(a, _)| SENSITIVE_ACTIONS.contains(&a.as_str()))
        .map(|(a, n)| (a.clone(), *n))
        .collect();
    let mut recipients: Vec<i64> = activity.users.iter().chain(&plan.users).copied().collect();
    recipients.sort_unstable();
    recipients.dedup();
    let body = serde_json::to_vec(&recipients)
        .map_err(|e| DrError::Internal(format!("serializing recipients: {e}")))?;
    ports
        .reports
        .put(
            &super::notify::recipients_key(&plan.recovery_id),
            "application/json",
            &body,
        )
        .await?;
    let told =
        super::notify::summarise(&recipients, &ports.ledger.entries(&plan.recovery_id).await?);
    let to_notify = told.recipients - told.sent;
    let approval = notify_question(plan, &recipients, to_notify, &activity, &sensitive);
    Ok(Impact {
        recipients: recipients.len() as u64,
        to_notify,
        approval,
        events: activity.events,
        affected_users: activity.users.len() as u64,
        user_sample: activity.users.iter().take(USER_SAMPLE).copied().collect(),
        by_action: activity.by_action,
        sensitive,
        first_seen: activity.first_seen,
        last_seen: activity.last_seen,
        events_location,
        users_location,
        truncated: activity.truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restore_is_a_data_corruption_request_for_the_moment_named() {
        let at: DateTime<Utc> = "2026-11-26T19:00:00Z".parse().expect("time");
        let request: crate::corruption::CorruptionRequest =
            serde_json::from_value(restore_request("muejam", at, "breach-1", 900))
                .expect("the data-corruption recovery takes it");
        assert_eq!(request.database, "muejam");
        assert_eq!(request.restore_time, Some(at));
        assert_eq!(request.approval_timeout_seconds, 900);
        assert!(request
            .trigger
            .reason
            .is_some_and(|r| r.contains("security breach breach-1")));
        let long = "x".repeat(80);
        assert_eq!(restore_name(&long).chars().count(), 80);
        assert_eq!(restore_name("breach-1"), "breach-1-restore");
    }
}
