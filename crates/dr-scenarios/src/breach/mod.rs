//! Security breach (runbook "Security Breach"): containment, impact from the
//! audit log, users told once.
//!
//! `statemachines/security-breach.asl.json`: the request checked whole
//! before anything changes; containment in parallel (API keys revoked,
//! database credentials rotated by the Secrets Manager protocol, the
//! suspicious addresses merged into the WAF IP set under its lock token);
//! the impact from the audit log; the keys of the affected users; a report.

pub mod addresses;
pub mod notify;
pub mod report;
pub mod rotation;
pub mod steps;

pub use steps::BreachPlan;

use chrono::{DateTime, Duration, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use addresses::{merge, normalise_all, Merged};
use ipnet::IpNet;

/// The longest window the audit log is searched over.
pub const MAX_WINDOW_DAYS: i64 = 90;
/// How far past now a window may end (clock skew; the breach may go on).
pub const MAX_WINDOW_FUTURE_MINUTES: i64 = 60;
/// The most compromised user ids a request may name.
pub const MAX_USERS: usize = 10_000;

/// When the breach happened, as far as anyone knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Whose API keys are revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// Every active key: the safe default when the blast radius is unknown.
    #[default]
    All,
    /// The keys of the compromised users and of the users the audit log
    /// shows active from the suspicious addresses.
    AffectedUsers,
}

/// A security-breach run's input (a manual start, or a GuardDuty finding
/// through its input transformer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreachRequest {
    /// The registry name of the database.
    pub database: String,
    /// Suspicious addresses or CIDR blocks.
    pub addresses: Vec<String>,
    /// When the breach happened; without one, the trigger's first sighting
    /// (less [`WINDOW_LEAD_MINUTES`]) to now.
    #[serde(default)]
    pub window: Option<Window>,
    /// What started the run (a GuardDuty finding's id, type, severity and
    /// sightings; or a person's reason).
    #[serde(default)]
    pub trigger: Option<BreachTrigger>,
    /// User ids known to be compromised.
    #[serde(default)]
    pub users: Vec<i64>,
    #[serde(default)]
    pub revoke_keys: KeyScope,
    /// The WAF IP set the IPv4 addresses are blocked in.
    pub ip_set: IpSetRef,
    /// The WAF IP set the IPv6 addresses are blocked in (a WAF IP set holds
    /// one IP version); required when an address is IPv6.
    #[serde(default)]
    pub ip_set_v6: Option<IpSetRef>,
    /// The incident this run works on (default: the execution name). A new
    /// execution with the first one's id resumes it: the journal, the
    /// rotation tokens and the notification ledger are the incident's.
    #[serde(default)]
    pub recovery_id: Option<String>,
    /// Tell the affected users, after a person approves (a legal step).
    #[serde(default = "default_notify_users")]
    pub notify_users: bool,
    /// How long the approval to tell users waits for an answer.
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout_seconds: u64,
    /// After containment, restore the database to a moment before the
    /// breach: the data-corruption recovery as a child execution, with its
    /// own approval before anything is switched.
    #[serde(default)]
    pub restore_before_breach: bool,
    /// The moment restored to (default: the window's start); never after it.
    #[serde(default)]
    pub restore_time: Option<DateTime<Utc>>,
}

fn default_notify_users() -> bool {
    true
}

/// Half an hour: containment is done by then; telling users can wait for
/// a person, and nobody is told without one.
pub const DEFAULT_APPROVAL_TIMEOUT_SECONDS: u64 = 1800;

fn default_approval_timeout() -> u64 {
    DEFAULT_APPROVAL_TIMEOUT_SECONDS
}

/// How long before a finding's first sighting the audit log is searched
/// (the attacker's reconnaissance rarely raises the finding).
pub const WINDOW_LEAD_MINUTES: i64 = 60;

/// What started a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreachTrigger {
    /// `guardduty` or `manual`.
    pub source: String,
    #[serde(default)]
    pub finding_id: Option<String>,
    #[serde(default)]
    pub finding_type: Option<String>,
    #[serde(default)]
    pub severity: Option<f64>,
    #[serde(default)]
    pub first_seen: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_seen: Option<DateTime<Utc>>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Pure: the window searched: the request's, or from the trigger's first
/// sighting (less the lead) to now.
pub fn effective_window(r: &BreachRequest, now: DateTime<Utc>) -> DrResult<Window> {
    match (&r.window, r.trigger.as_ref().and_then(|t| t.first_seen)) {
        (Some(w), _) => Ok(*w),
        (None, Some(first)) => Ok(Window {
            from: first - Duration::minutes(WINDOW_LEAD_MINUTES),
            to: now,
        }),
        (None, None) => Err(DrError::InvalidInput(
            "no window, and no trigger with first_seen to take one from".to_owned(),
        )),
    }
}

/// The request, checked whole: nothing is changed before this succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRequest {
    pub blocks: Vec<IpNet>,
    pub window: Window,
    pub users: Vec<i64>,
}

/// Pure: every field of the request against what the steps can do with it,
/// the first problem named (`InvalidInput`).
pub fn check_request(r: &BreachRequest, now: DateTime<Utc>) -> DrResult<CheckedRequest> {
    let invalid = |why: String| DrError::InvalidInput(why);
    validate_database_name(&r.database)?;
    let blocks = normalise_all(&r.addresses)?;
    let window = effective_window(r, now)?;
    let Window { from, to } = window;
    if from >= to {
        return Err(invalid(format!(
            "the window starts at {from} and ends at {to}: it must start before it ends"
        )));
    }
    if to - from > Duration::days(MAX_WINDOW_DAYS) {
        return Err(invalid(format!(
            "the window is longer than {MAX_WINDOW_DAYS} days"
        )));
    }
    if to > now + Duration::minutes(MAX_WINDOW_FUTURE_MINUTES) {
        return Err(invalid(format!(
            "the window ends at {to}, more than {MAX_WINDOW_FUTURE_MINUTES} minutes from now ({now})"
        )));
    }
    if r.users.len() > MAX_USERS {
        return Err(invalid(format!(
            "{} user ids: at most {MAX_USERS}",
            r.users.len()
        )));
    }
    if let Some(bad) = r.users.iter().find(|u| **u <= 0) {
        return Err(invalid(format!(
            "user id {bad} is not a user id (ids start at 1)"
        )));
    }
    if !["REGIONAL", "CLOUDFRONT"].contains(&r.ip_set.scope.as_str()) {
        return Err(invalid(format!(
            "ip_set.scope {:?}: REGIONAL or CLOUDFRONT",
            r.ip_set.scope
        )));
    }
    if blocks.iter().any(|b| matches!(b, IpNet::V6(_))) && r.ip_set_v6.is_none() {
        return Err(invalid(
            "IPv6 addresses need ip_set_v6: a WAF IP set holds addresses of one IP version"
                .to_owned(),
        ));
    }
    let mut named = vec![("ip_set", &r.ip_set)];
    if let Some(v6) = &r.ip_set_v6 {
        if v6.scope != r.ip_set.scope {
            return Err(invalid(format!(
                "ip_set_v6.scope {:?} differs from ip_set.scope {:?}",
                v6.scope, r.ip_set.scope
            )));
        }
        named.push(("ip_set_v6", v6));
    }
    for (field, value) in named
        .iter()
        .flat_map(|(f, s)| [(format!("{f}.name"), &s.name), (format!("{f}.id"), &s.id)])
    {
        if value.is_empty()
            || value.len() > 128
            || !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(format!(
                "{field} {value:?}: 1 to 128 letters, digits, - or _"
            )));
        }
    }
    if let Some(t) = &r.trigger {
        let texts = [&t.finding_id, &t.finding_type, &t.reason];
        if texts
            .iter()
            .any(|s| s.as_ref().is_some_and(|s| s.len() > 1024))
        {
            return Err(invalid(
                "a trigger field is longer than 1024 bytes".to_owned(),
            ));
        }
        if !["guardduty", "manual"].contains(&t.source.as_str()) {
            return Err(invalid(format!(
                "trigger.source {:?}: guardduty or manual",
                t.source
            )));
        }
    }
    if let Some(id) = &r.recovery_id {
        crate::plan::check_recovery_id(id)?;
    }
    if !(60..=crate::corruption::MAX_APPROVAL_SECONDS).contains(&r.approval_timeout_seconds) {
        return Err(invalid(format!(
            "approval_timeout_seconds {}: between 60 and {}",
            r.approval_timeout_seconds,
            crate::corruption::MAX_APPROVAL_SECONDS
        )));
    }
    if let Some(at) = r.restore_time {
        if !r.restore_before_breach {
            return Err(invalid(
                "restore_time without restore_before_breach: nothing would be restored".to_owned(),
            ));
        }
        if at > from {
            return Err(invalid(format!(
                "restore_time {at} is after the window's start ({from}): the restore would hold what the breach did"
            )));
        }
    }
    let mut users = r.users.clone();
    users.sort_unstable();
    users.dedup();
    Ok(CheckedRequest {
        blocks,
        window,
        users,
    })
}

/// How many times a stale lock token (someone else changed the IP set
/// between our read and our write) is re-read and retried before the step
/// fails with `Conflict` for the state machine to retry.
pub const IP_SET_ATTEMPTS: u32 = 5;

/// What blocking did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockOutcome {
    pub ip_set: String,
    /// Blocks written by this call.
    pub added: Vec<String>,
    /// Blocks the set already covered.
    pub already_blocked: Vec<String>,
    /// Entries in the set after the merge.
    pub total: usize,
    /// Writes tried (more than one: a concurrent change was re-read).
    pub attempts: u32,
}

/// The IP version a WAF IP set of `blocks` must hold.
pub fn version_of(block: &IpNet) -> &'static str {
    match block {
        IpNet::V4(_) => "IPV4",
        IpNet::V6(_) => "IPV6",
    }
}

/// Pure: refuses blocks of another IP version than the set's (AWS refuses
/// the whole update; moto takes it).
pub fn check_version(
    ip_set: &IpSetRef,
    contents: &IpSetContents,
    blocks: &[IpNet],
) -> DrResult<()> {
    let Some(version) = contents.ip_version.as_deref() else {
        return Ok(());
    };
    match blocks.iter().find(|b| version_of(b) != version) {
        Some(b) => Err(DrError::InvalidInput(format!(
            "WAF IP set {} holds {version} addresses; {b} is {}: name a set of that version (ip_set for IPv4, ip_set_v6 for IPv6)",
            ip_set.name,
            version_of(b)
        ))),
        None => Ok(()),
    }
}

/// Merges `blocks` into the IP set: read it with its lock token, merge
/// (nothing existing dropped), write with the token; a stale token is
/// re-read and merged again, so a concurrent writer's entries survive. A
/// set that already holds every block is not written. Idempotent.
pub async fn block_addresses(
    firewall: &dyn Firewall,
    ip_set: &IpSetRef,
    blocks: &[IpNet],
) -> DrResult<BlockOutcome> {
    let mut attempts = 0;
    loop {
        let contents = firewall.get_ip_set(ip_set).await?;
        check_version(ip_set, &contents, blocks)?;
        let Merged {
            addresses,
            added,
            already_blocked,
        } = merge(&contents.addresses, blocks)?;
        let outcome = |attempts| BlockOutcome {
            ip_set: ip_set.name.clone(),
            added: added.clone(),
            already_blocked: already_blocked.clone(),
            total: addresses.len(),
            attempts,
        };
        if added.is_empty() {
            return Ok(outcome(attempts));
        }
        attempts += 1;
        match firewall
            .update_ip_set(ip_set, &addresses, &contents.lock_token)
            .await
        {
            Ok(()) => return Ok(outcome(attempts)),
            Err(DrError::Conflict(why)) if attempts < IP_SET_ATTEMPTS => {
                tracing::warn!(ip_set = %ip_set.name, attempts, %why, "the IP set changed under us: re-reading");
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    fn now() -> DateTime<Utc> {
        "2026-11-27T12:00:00Z".parse().expect("time")
    }

    fn request(changes: serde_json::Value) -> serde_json::Value {
        let mut r = json!({
            "database": "muejam",
            "addresses": ["203.0.113.10", "2001:db8::bad:1"],
            "window": {"from": "2026-11-27T03:00:00Z", "to": "2026-11-27T11:00:00Z"},
            "users": [3, 1, 3],
            "revoke_keys": "affected_users",
            "ip_set": {"name": "muejam-blocked", "id": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111", "scope": "REGIONAL"},
            "ip_set_v6": {"name": "muejam-blocked-v6", "id": "b2c3d4e5-6789-01bc-def0-EXAMPLE22222", "scope": "REGIONAL"}
        });
        if let (Some(r), Some(c)) = (r.as_object_mut(), changes.as_object()) {
            r.extend(c.clone());
        }
        r
    }

    #[test]
    fn a_request_is_checked_whole_and_the_first_problem_named() {
        let ok: BreachRequest = serde_json::from_value(request(json!({}))).expect("parses");
        let checked = check_request(&ok, now()).expect("valid");
        assert_eq!(checked.users, [1, 3]);
        assert_eq!(checked.blocks.len(), 2);
        let too_many: Vec<String> = (0..=addresses::WAF_IP_SET_LIMIT as u32)
            .map(|i| std::net::Ipv4Addr::from(0xC633_0000 + i).to_string())
            .collect();
        // (change, what the refusal says)
        let table = [
            (json!({"addresses": ["203.0.113.300"]}), "not an IPv4"),
            (json!({"addresses": []}), "no suspicious address"),
            (json!({"addresses": ["0.0.0.0/0"]}), "broader than /16"),
            (json!({"addresses": too_many}), "at most 10000"),
            (
                json!({"window": {"from": "2026-11-27T11:00:00Z", "to": "2026-11-27T03:00:00Z"}}),
                "must start before it ends",
            ),
            (
                json!({"window": {"from": "2026-11-27T11:00:00Z", "to": "2026-11-27T11:00:00Z"}}),
                "must start before it ends",
            ),
            (
                json!({"window": {"from": "2026-01-01T00:00:00Z", "to": "2026-11-27T11:00:00Z"}}),
                "longer than 90 days",
            ),
            (
                json!({"window": {"from": "2026-11-27T03:00:00Z", "to": "2026-11-28T11:00:00Z"}}),
                "minutes from now",
            ),
            (json!({"users": [0]}), "is not a user id"),
            (json!({"users": [-4]}), "is not a user id"),
            (json!({"database": "Bad Name"}), "database"),
            (
                json!({"ip_set": {"name": "muejam-blocked", "id": "x", "scope": "GLOBAL"}}),
                "REGIONAL or CLOUDFRONT",
            ),
            (
                json!({"ip_set": {"name": "", "id": "x", "scope": "REGIONAL"}}),
                "ip_set.name",
            ),
            (
                json!({"ip_set": {"name": "a b", "id": "x", "scope": "REGIONAL"}}),
                "ip_set.name",
            ),
            (json!({"ip_set_v6": null}), "need ip_set_v6"),
            (
                json!({"ip_set_v6": {"name": "v6", "id": "x", "scope": "CLOUDFRONT"}}),
                "differs from ip_set.scope",
            ),
            (
                json!({"ip_set_v6": {"name": "v 6", "id": "x", "scope": "REGIONAL"}}),
                "ip_set_v6.name",
            ),
        ];
        for (change, says) in table {
            let r: BreachRequest = serde_json::from_value(request(change.clone())).expect("parses");
            let error = check_request(&r, now()).expect_err(&change.to_string());
            assert_eq!(error.name(), "InvalidInput", "{change}");
            assert!(error.to_string().contains(says), "{change}: {error}");
        }
        // No window: the trigger's first sighting, less the lead, to now.
        let finding: BreachRequest = serde_json::from_value(request(json!({
            "window": null,
            "trigger": {"source": "guardduty", "finding_id": "f1", "severity": 8.0,
                        "first_seen": "2026-11-27T10:30:00Z", "last_seen": "2026-11-27T11:00:00Z"}
        })))
        .expect("parses");
        assert_eq!(
            check_request(&finding, now()).expect("valid").window,
            Window {
                from: "2026-11-27T09:30:00Z".parse().expect("t"),
                to: now()
            }
        );
        for (change, says) in [
            (json!({"window": null}), "no window"),
            (
                json!({"window": null, "trigger": {"source": "guardduty"}}),
                "no window",
            ),
            (
                json!({"trigger": {"source": "pagerduty"}}),
                "guardduty or manual",
            ),
            (
                json!({"window": null, "trigger": {"source": "guardduty", "first_seen": "2026-01-01T00:00:00Z"}}),
                "longer than 90 days",
            ),
        ] {
            let r: BreachRequest = serde_json::from_value(request(change.clone())).expect("parses");
            let error = check_request(&r, now()).expect_err(&change.to_string());
            assert!(error.to_string().contains(says), "{change}: {error}");
        }
        // A field nobody knows is a typo, not an option.
        let typo = serde_json::from_value::<BreachRequest>(request(json!({"adresses": []})));
        assert!(typo.is_err());
    }

    #[test]
    fn a_set_takes_blocks_of_its_own_ip_version_only() {
        let set = IpSetRef {
            name: "s".into(),
            id: "i".into(),
            scope: "REGIONAL".into(),
        };
        let contents = |v: Option<&str>| IpSetContents {
            addresses: vec![],
            lock_token: "t".into(),
            ip_version: v.map(str::to_owned),
        };
        let four = normalise_all(&["203.0.113.1".to_owned()]).expect("v4");
        let six = normalise_all(&["2001:db8::1".to_owned()]).expect("v6");
        let cases = [
            (Some("IPV4"), &four, true),
            (Some("IPV4"), &six, false),
            (Some("IPV6"), &six, true),
            (Some("IPV6"), &four, false),
            // Not said (a fake): nothing to check.
            (None, &six, true),
        ];
        for (version, blocks, ok) in cases {
            let checked = check_version(&set, &contents(version), blocks);
            assert_eq!(checked.is_ok(), ok, "{version:?} {blocks:?}: {checked:?}");
            if let Err(e) = checked {
                assert_eq!(e.name(), "InvalidInput");
            }
        }
        // The blocks split by version between the two sets.
        let v6 = IpSetRef {
            name: "s6".into(),
            ..set.clone()
        };
        let both = [four.clone(), six.clone()].concat();
        let split = steps::sets_of(&set, Some(&v6), &both);
        assert_eq!(split[0].1, four);
        assert_eq!(split[1].1, six);
    }

    /// An IP set whose token changes on every write, and that another
    /// writer changes `interference` times between our read and our write.
    struct Contended {
        set: Mutex<(Vec<String>, u32)>,
        interference: Mutex<u32>,
        writes: Mutex<u32>,
    }

    #[async_trait::async_trait]
    impl Firewall for Contended {
        async fn get_ip_set(&self, _: &IpSetRef) -> DrResult<IpSetContents> {
            let (addresses, token) = self.set.lock().expect("lock").clone();
            let mut interference = self.interference.lock().expect("lock");
            if *interference > 0 {
                *interference -= 1;
                // The other writer adds its own entry after our read.
                let mut set = self.set.lock().expect("lock");
                set.0.push(format!("192.0.2.{}/32", *interference + 100));
                set.1 += 1;
            }
            Ok(IpSetContents {
                addresses,
                lock_token: token.to_string(),
                ip_version: None,
            })
        }

        async fn update_ip_set(
            &self,
            _: &IpSetRef,
            addresses: &[String],
            token: &str,
        ) -> DrResult<()> {
            let mut set = self.set.lock().expect("lock");
            if set.1.to_string() != token {
                return Err(DrError::Conflict("WAFOptimisticLockException".into()));
            }
            *self.writes.lock().expect("lock") += 1;
            *set = (addresses.to_vec(), set.1 + 1);
            Ok(())
        }
    }

    fn contended(interference: u32) -> Contended {
        Contended {
            set: Mutex::new((vec!["198.51.100.1/32".to_owned()], 7)),
            interference: Mutex::new(interference),
            writes: Mutex::new(0),
        }
    }

    fn ip_set() -> IpSetRef {
        IpSetRef {
            name: "muejam-blocked".into(),
            id: "id".into(),
            scope: "REGIONAL".into(),
        }
    }

    #[tokio::test]
    async fn a_stale_token_is_reread_and_nobody_s_entry_is_lost() {
        let blocks =
            addresses::normalise_all(&["203.0.113.7".to_owned(), "2001:db8::1".to_owned()])
                .expect("valid");
        // (concurrent changes, attempts, outcome)
        for (interference, attempts, ok) in
            [(0, 1, true), (1, 2, true), (4, 5, true), (5, 5, false)]
        {
            let firewall = contended(interference);
            let result = block_addresses(&firewall, &ip_set(), &blocks).await;
            let set = firewall.set.lock().expect("lock").0.clone();
            if ok {
                let outcome = result.expect("blocked");
                assert_eq!(outcome.attempts, attempts, "{interference}");
                assert_eq!(outcome.added, ["203.0.113.7/32", "2001:db8::1/128"]);
                assert!(set.contains(&"198.51.100.1/32".to_owned()));
                assert_eq!(
                    set.len(),
                    3 + interference as usize,
                    "the other writer's entries kept: {set:?}"
                );
                assert_eq!(outcome.total, set.len());
            } else {
                assert_eq!(result.expect_err("gave up").name(), "Conflict");
                assert_eq!(*firewall.writes.lock().expect("lock"), 0);
            }
        }
        // Again: already blocked, nothing written.
        let firewall = contended(0);
        block_addresses(&firewall, &ip_set(), &blocks)
            .await
            .expect("first");
        let again = block_addresses(&firewall, &ip_set(), &blocks)
            .await
            .expect("again");
        assert!(again.added.is_empty());
        assert_eq!(again.attempts, 0);
        assert_eq!(again.already_blocked.len(), 2);
        assert_eq!(*firewall.writes.lock().expect("lock"), 1);
    }
}
