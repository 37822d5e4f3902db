//! The runbook's escalation path: a question climbs the tiers (primary
//! on-call, backup on-call, engineering manager, CTO) until a person
//! answers it or its deadline passes.
//!
//! The climb lives in the state machine, so it survives function restarts:
//! a `climb` step (here, pure) picks the tier to ask and how long to wait
//! for it; the `.waitForTaskToken` step asks that tier and waits that long;
//! its timeout goes back to `climb`. The record of who was asked when is
//! the execution's own (`$.escalation`), stamped with the execution's clock.

use chrono::{DateTime, Duration, Utc};
use dr_core::*;
use serde::{Deserialize, Deserializer, Serialize};

/// The most tiers a path may have (the runbook has four).
pub const MAX_TIERS: usize = 10;
/// The longest a tier may be given to answer: a day.
pub const MAX_RESPONSE_MINUTES: u64 = 24 * 60;

/// One tier of the path: who (the topic their phones, mail or incident tool
/// subscribe to) and how long they are given before the next tier is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub name: String,
    pub topic_arn: String,
    /// A number, or its text (a template parameter substituted into the
    /// definition arrives as text).
    #[serde(deserialize_with = "minutes")]
    pub response_minutes: u64,
}

fn minutes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(u64),
        Text(String),
    }
    match NumberOrText::deserialize(d)? {
        NumberOrText::Number(n) => Ok(n),
        NumberOrText::Text(t) => t.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!("response_minutes {t:?} is not a whole number"))
        }),
    }
}

/// Where a climb stands: the execution carries it from step to step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    pub tiers: Vec<Tier>,
    /// The tiers asked so far, in order, with when.
    #[serde(default)]
    pub asked: Vec<TierAsked>,
    /// When the question's safe default applies (set by the first climb).
    #[serde(default)]
    pub deadline: Option<DateTime<Utc>>,
    /// The tier to ask now (an index into `tiers`), when not done.
    #[serde(default)]
    pub current: Option<usize>,
    /// How long the tier asked now is waited for.
    #[serde(default)]
    pub wait_seconds: u64,
    /// Nobody is left to ask, or the deadline has passed: the safe default.
    #[serde(default)]
    pub done: bool,
    /// When the answer arrived (the execution's clock), once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<DateTime<Utc>>,
}

/// The path must be usable before anyone is asked: a misconfigured path
/// would leave a question unheard.
pub fn validate_tiers(tiers: &[Tier]) -> DrResult<()> {
    if tiers.is_empty() || tiers.len() > MAX_TIERS {
        return Err(DrError::InvalidInput(format!(
            "the escalation path needs 1 to {MAX_TIERS} tiers, not {}",
            tiers.len()
        )));
    }
    for (i, tier) in tiers.iter().enumerate() {
        let n = i + 1;
        if tier.name.trim().is_empty() {
            return Err(DrError::InvalidInput(format!(
                "escalation tier {n} has no name"
            )));
        }
        if !tier.topic_arn.starts_with("arn:") || tier.topic_arn.split(':').count() < 6 {
            return Err(DrError::InvalidInput(format!(
                "escalation tier {n} ({}): topic {:?} is not an SNS topic ARN",
                tier.name, tier.topic_arn
            )));
        }
        if !(1..=MAX_RESPONSE_MINUTES).contains(&tier.response_minutes) {
            return Err(DrError::InvalidInput(format!(
                "escalation tier {n} ({}): response_minutes must be 1 to {MAX_RESPONSE_MINUTES}",
                tier.name
            )));
        }
    }
    Ok(())
}

/// The next step of the climb, at `now` (the execution's clock): ask the
/// next tier for its response time, or for what is left before the
/// deadline, whichever is shorter; the last tier is given all that is left
/// (nobody else can answer, and the question stays open until its
/// deadline). Done when every tier was asked or the deadline has come.
/// Pure.
pub fn climb(
    mut escalation: Escalation,
    now: DateTime<Utc>,
    timeout_seconds: u64,
) -> DrResult<Escalation> {
    validate_tiers(&escalation.tiers)?;
    if escalation.deadline.is_none() && timeout_seconds == 0 {
        return Err(DrError::InvalidInput(
            "an approval needs a timeout of at least a second".to_owned(),
        ));
    }
    let deadline = *escalation
        .deadline
        .get_or_insert(now + Duration::seconds(timeout_seconds.min(i64::MAX as u64) as i64));
    let left = (deadline - now).num_seconds();
    let next = escalation.asked.len();
    let Some(tier) = escalation.tiers.get(next) else {
        return Ok(finished(escalation));
    };
    if left < 1 {
        return Ok(finished(escalation));
    }
    let last = next + 1 == escalation.tiers.len();
    let wait = if last {
        left as u64
    } else {
        (tier.response_minutes * 60).min(left as u64)
    };
    escalation.asked.push(TierAsked {
        tier: tier.name.clone(),
        at: now,
    });
    escalation.current = Some(next);
    escalation.wait_seconds = wait.max(1);
    escalation.done = false;
    Ok(escalation)
}

/// How long a page climbs: every tier its response time (a page has no
/// deadline of its own). Pure.
pub fn path_seconds(tiers: &[Tier]) -> u64 {
    tiers.iter().map(|t| t.response_minutes * 60).sum()
}

/// The page a page-escalation execution climbs with, from what started it:
/// a recovery's page (`{"page": ...}`), or EventBridge's "CloudWatch Alarm
/// State Change" of an alarm that pages (the probe that cannot probe, a
/// readiness failure). Anything else, or an alarm leaving ALARM, is refused.
/// Pure.
pub fn page_of(event: &serde_json::Value) -> DrResult<Page> {
    if let Some(page) = event.get("page") {
        let page: Page = serde_json::from_value(page.clone())
            .map_err(|e| DrError::InvalidInput(format!("not a page: {e}")))?;
        if page.id.trim().is_empty() || page.subject.trim().is_empty() {
            return Err(DrError::InvalidInput(
                "a page needs an id and a subject".to_owned(),
            ));
        }
        return Ok(page);
    }
    if event.get("detail-type").and_then(|d| d.as_str()) != Some("CloudWatch Alarm State Change") {
        return Err(DrError::InvalidInput(
            "the event is neither a page nor a CloudWatch alarm's state change".to_owned(),
        ));
    }
    let text = |pointer: &str| {
        event
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let alarm = text("/detail/alarmName")
        .filter(|a| !a.trim().is_empty())
        .ok_or_else(|| DrError::InvalidInput("the alarm event names no alarm".to_owned()))?;
    let state = text("/detail/state/value").unwrap_or_default();
    if state != "ALARM" {
        return Err(DrError::InvalidInput(format!(
            "{alarm} went to {state:?}, not ALARM: nothing to page"
        )));
    }
    // CloudWatch writes the state's timestamp as 2026-11-29T03:00:00.000+0000
    // (no colon in the offset: not RFC 3339); EventBridge's time is RFC 3339.
    let parse = |t: String| {
        DateTime::parse_from_rfc3339(&t)
            .or_else(|_| DateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.f%z"))
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let raised_at = text("/detail/state/timestamp")
        .and_then(parse)
        .or_else(|| text("/time").and_then(parse))
        .ok_or_else(|| DrError::InvalidInput("the alarm event has no time".to_owned()))?;
    let reason = text("/detail/state/reason").unwrap_or_default();
    Ok(Page {
        id: format!("{alarm}-{}", raised_at.format("%Y%m%dT%H%M%SZ")),
        subject: format!("[MueJam DR] ALARM: {alarm}"),
        body: format!(
            "The alarm {alarm} went to ALARM at {}.\n{reason}\n\nSee the runbook's section for this alarm; readiness (drctl readiness) says which scenarios it leaves not ready.\n",
            raised_at.to_rfc3339()
        ),
        scenario: "alarm".to_owned(),
        resource: alarm,
        raised_at,
    })
}

/// "tier 2/4": where the climb is, short enough for a subject (SNS keeps
/// 100 characters of one).
pub fn tier_short(escalation: &Escalation) -> Option<String> {
    escalation
        .current
        .map(|i| format!("tier {}/{}", i + 1, escalation.tiers.len()))
}

/// The message a tier gets for a page: the tier, who was paged before, the
/// page itself, and how to acknowledge it. Pure.
pub fn page_message(page: &Page, escalation: &Escalation) -> (String, String) {
    let (tier, earlier) = climb_lines(escalation);
    let short = tier_short(escalation)
        .map(|t| format!(" ({t})"))
        .unwrap_or_default();
    let subject = format!(
        "[MueJam DR] PAGE{short}: {}",
        page.subject.trim_start_matches("[MueJam DR] ")
    );
    let climbed = if earlier.is_empty() {
        format!("You are {tier}.\n\n")
    } else {
        format!("Escalated to you, {tier}: {}.\n\n", earlier.join("; "))
    };
    let body = format!(
        "{climbed}{}\n\nAcknowledge it (the climb stops; on the local stack add --local):\n  drctl ack {} --reason \"...\"\n",
        page.body.trim_end(),
        page.id
    );
    (subject, body)
}

fn finished(mut escalation: Escalation) -> Escalation {
    escalation.current = None;
    escalation.wait_seconds = 0;
    escalation.done = true;
    escalation
}

impl Escalation {
    /// The tier asked now.
    pub fn current_tier(&self) -> Option<&Tier> {
        self.current.and_then(|i| self.tiers.get(i))
    }
}

/// What a tier's message says of the climb: which tier this is, and who
/// was asked before without answering. Pure.
pub fn climb_lines(escalation: &Escalation) -> (String, Vec<String>) {
    let Some(index) = escalation.current else {
        return (String::new(), Vec::new());
    };
    let name = escalation.tiers.get(index).map_or("?", |t| t.name.as_str());
    let header = format!(
        "escalation tier {} of {} ({name})",
        index + 1,
        escalation.tiers.len()
    );
    let earlier = escalation
        .asked
        .iter()
        .take(index)
        .zip(&escalation.tiers)
        .map(|(asked, tier)| {
            format!(
                "{} was asked at {} and did not answer within {} min",
                asked.tier,
                asked.at.format("%H:%M:%S UTC"),
                tier.response_minutes
            )
        })
        .collect();
    (header, earlier)
}

/// The escalation as a report tells it: per tier, when it was asked, and
/// whether it answered and how fast, or was never asked. `answer` is the
/// answer the step kept (approved or rejected), if any. Pure.
pub fn report_lines(escalation: &Escalation, answer: Option<&ApprovalAnswer>) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, tier) in escalation.tiers.iter().enumerate() {
        let Some(asked) = escalation.asked.get(i) else {
            lines.push(format!("{}: not asked", tier.name));
            continue;
        };
        let next = escalation.asked.get(i + 1).map(|a| a.at);
        let answered_here = next.is_none() && escalation.answered_at.is_some();
        let line = if answered_here {
            let at = escalation.answered_at.unwrap_or(asked.at);
            let who = answer.map_or("someone".to_owned(), |a| {
                format!(
                    "{} ({})",
                    a.by,
                    if a.approved { "approved" } else { "rejected" }
                )
            });
            format!(
                "{}: asked at {}, answered by {who} at {}, {} after it was asked",
                tier.name,
                asked.at.to_rfc3339(),
                at.to_rfc3339(),
                crate::report::seconds(Some(
                    ((at - asked.at).num_milliseconds() as f64 / 1000.0).max(0.0)
                ))
            )
        } else {
            let waited = next
                .or(escalation
                    .deadline
                    .filter(|_| escalation.done || next.is_none()))
                .map(|end| {
                    crate::report::seconds(Some(
                        ((end - asked.at).num_milliseconds() as f64 / 1000.0).max(0.0),
                    ))
                });
            match waited {
                Some(w) => format!(
                    "{}: asked at {}, no answer in {w}",
                    tier.name,
                    asked.at.to_rfc3339()
                ),
                None => format!(
                    "{}: asked at {}, no answer yet",
                    tier.name,
                    asked.at.to_rfc3339()
                ),
            }
        };
        lines.push(line);
    }
    lines
}

/// The escalation a run's state kept (`$.escalation`), if it climbed one,
/// as report lines: the answer is the approval step's (`$.steps.approval`:
/// the answer as its result, or a rejection as its error), answered when
/// `$.approval_answered.at` (approved) or the rejection's state was entered.
pub fn lines_of(details: &serde_json::Value) -> Vec<String> {
    let Some(mut escalation) = details
        .get("escalation")
        .cloned()
        .and_then(|e| serde_json::from_value::<Escalation>(e).ok())
    else {
        return Vec::new();
    };
    if escalation.asked.is_empty() {
        return Vec::new();
    }
    let step = details.pointer("/steps/approval");
    let approved: Option<ApprovalAnswer> = step
        .and_then(|s| s.get("result"))
        .and_then(|r| serde_json::from_value(r.clone()).ok());
    let rejected: Option<ApprovalAnswer> = step
        .and_then(|s| s.pointer("/error/Cause"))
        .and_then(|c| c.as_str())
        .and_then(|c| serde_json::from_str(c).ok());
    let time = |v: Option<&serde_json::Value>| {
        v.and_then(|t| t.as_str())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    escalation.answered_at = if approved.is_some() {
        time(details.pointer("/approval_answered/at"))
    } else if rejected.is_some() {
        time(step.and_then(|s| s.get("started_at")))
    } else {
        None
    };
    report_lines(&escalation, approved.as_ref().or(rejected.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn runbook() -> Vec<Tier> {
        [
            ("primary-on-call", 15),
            ("backup-on-call", 30),
            ("engineering-manager", 60),
            ("cto", 120),
        ]
        .into_iter()
        .map(|(name, m)| Tier {
            name: name.to_owned(),
            topic_arn: format!("arn:aws:sns:us-east-1:123456789012:muejam-dr-{name}"),
            response_minutes: m,
        })
        .collect()
    }

    fn start() -> Escalation {
        Escalation {
            tiers: runbook(),
            asked: Vec::new(),
            deadline: None,
            current: None,
            wait_seconds: 0,
            done: false,
            answered_at: None,
        }
    }

    /// Climbs from `t0` with each tier timing out; returns (tier asked,
    /// minutes after t0, wait in minutes) per step, and whether it ended.
    fn climb_all(timeout_seconds: u64) -> (Vec<(String, i64, u64)>, bool) {
        let t0 = at("2026-11-29T03:00:00Z");
        let mut now = t0;
        let mut e = start();
        let mut steps = Vec::new();
        for _ in 0..10 {
            e = climb(e, now, timeout_seconds).expect("climb");
            if e.done {
                return (steps, true);
            }
            let tier = e.current_tier().expect("tier").name.clone();
            steps.push((tier, (now - t0).num_minutes(), e.wait_seconds / 60));
            now += Duration::seconds(e.wait_seconds as i64);
        }
        (steps, false)
    }

    /// A tier asked: its name, minutes after the start, minutes waited.
    type Asked<'a> = (&'a str, i64, u64);
    /// A way to break a path.
    type Breakage = Box<dyn Fn(&mut Vec<Tier>)>;

    #[test]
    fn the_runbooks_path_climbs_at_15_30_60_and_120_minutes_within_the_deadline() {
        let table: &[(u64, &[Asked])] = &[
            // A deadline that leaves every tier its full time.
            (
                225 * 60,
                &[
                    ("primary-on-call", 0, 15),
                    ("backup-on-call", 15, 30),
                    ("engineering-manager", 45, 60),
                    ("cto", 105, 120),
                ],
            ),
            // A longer one: the last tier keeps it open to the deadline.
            (
                300 * 60,
                &[
                    ("primary-on-call", 0, 15),
                    ("backup-on-call", 15, 30),
                    ("engineering-manager", 45, 60),
                    ("cto", 105, 195),
                ],
            ),
            // A failover's 30 minutes: two tiers, the second cut short.
            (
                30 * 60,
                &[("primary-on-call", 0, 15), ("backup-on-call", 15, 15)],
            ),
            // Shorter than the first tier: only it, for what there is.
            (300, &[("primary-on-call", 0, 5)]),
        ];
        for (timeout, expected) in table {
            let (steps, ended) = climb_all(*timeout);
            let expected: Vec<(String, i64, u64)> = expected
                .iter()
                .map(|(n, m, w)| ((*n).to_owned(), *m, *w))
                .collect();
            assert_eq!(steps, expected, "timeout {timeout}");
            assert!(ended, "timeout {timeout}: the climb ends");
        }
    }

    #[test]
    fn the_climb_never_outlasts_the_deadline_whatever_the_clock_says() {
        let t0 = at("2026-11-29T03:00:00Z");
        let first = climb(start(), t0, 3600).expect("climb");
        assert_eq!(first.deadline, Some(at("2026-11-29T04:00:00Z")));
        // The second climb comes late (a slow retry): past the deadline, done.
        let late = climb(first.clone(), at("2026-11-29T04:00:01Z"), 3600).expect("climb");
        assert!(late.done);
        assert_eq!(late.asked.len(), 1, "nobody more is asked");
        // The deadline is the first climb's; a later timeout does not move it.
        let second = climb(first, at("2026-11-29T03:15:00Z"), 99_999).expect("climb");
        assert_eq!(second.deadline, Some(at("2026-11-29T04:00:00Z")));
        assert_eq!(second.wait_seconds, 30 * 60);
    }

    #[test]
    fn a_misconfigured_path_is_refused_before_anyone_is_asked() {
        let cases: Vec<(Breakage, &str)> = vec![
            (Box::new(|t| t.clear()), "1 to 10 tiers"),
            (
                Box::new(|t| t[1].name = " ".to_owned()),
                "tier 2 has no name",
            ),
            (
                Box::new(|t| t[2].topic_arn = String::new()),
                "not an SNS topic ARN",
            ),
            (Box::new(|t| t[3].response_minutes = 0), "response_minutes"),
            (
                Box::new(|t| t[0].response_minutes = MAX_RESPONSE_MINUTES + 1),
                "response_minutes",
            ),
        ];
        for (break_it, expected) in cases {
            let mut e = start();
            break_it(&mut e.tiers);
            let error = climb(e, at("2026-11-29T03:00:00Z"), 600).expect_err("refused");
            assert_eq!(error.name(), "InvalidInput");
            assert!(error.to_string().contains(expected), "{error}");
        }
    }

    #[test]
    fn a_page_comes_from_a_recovery_or_from_an_alarm_entering_alarm() {
        let sample: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/page-escalation.json"))
                .expect("sample");
        let page = page_of(&sample).expect("the sample alarm pages");
        assert_eq!(
            page.id,
            "muejam-dr-ProbeBrokenAlarm-1A2B3C-20261129T030000Z"
        );
        assert_eq!(
            page.subject,
            "[MueJam DR] ALARM: muejam-dr-ProbeBrokenAlarm-1A2B3C"
        );
        assert!(page.body.contains("Threshold Crossed"));
        let mut ok = sample.clone();
        ok["detail"]["state"]["value"] = "OK".into();
        let mut other = sample.clone();
        other["detail-type"] = "EC2 Instance State-change Notification".into();
        let mut nameless = sample.clone();
        nameless["detail"]["alarmName"] = "".into();
        for (event, expected) in [
            (ok, "not ALARM"),
            (other, "neither a page nor"),
            (nameless, "names no alarm"),
            (
                serde_json::json!({"page": {"id": "", "subject": "s", "body": "b", "raised_at": "2026-11-29T03:00:00Z"}}),
                "needs an id",
            ),
        ] {
            let error = page_of(&event).expect_err("refused");
            assert_eq!(error.name(), "InvalidInput");
            assert!(error.to_string().contains(expected), "{error}");
        }
        let recovery = serde_json::json!({"page": {"id": "incident-1", "subject": "[MueJam DR] failed", "body": "b",
            "scenario": "database-failover", "resource": "muejam", "raised_at": "2026-11-29T03:00:00Z"}});
        assert_eq!(page_of(&recovery).expect("page").id, "incident-1");
    }

    #[test]
    fn a_page_climbs_the_whole_path_and_says_how_to_acknowledge_it() {
        assert_eq!(path_seconds(&runbook()), 225 * 60);
        let page = Page {
            id: "incident-1".to_owned(),
            subject: "[MueJam DR] Database failover: failed (FAILED)".to_owned(),
            body: "the report".to_owned(),
            scenario: "database-failover".to_owned(),
            resource: "muejam".to_owned(),
            raised_at: at("2026-11-29T03:00:00Z"),
        };
        let t0 = at("2026-11-29T03:00:00Z");
        let e = climb(start(), t0, path_seconds(&runbook())).expect("1");
        let e = climb(e, t0 + Duration::minutes(15), 0).expect("2");
        let (subject, body) = page_message(&page, &e);
        assert_eq!(
            subject,
            "[MueJam DR] PAGE (tier 2/4): Database failover: failed (FAILED)"
        );
        assert!(body.starts_with("Escalated to you, escalation tier 2 of 4 (backup-on-call): primary-on-call was asked at 03:00:00 UTC"), "{body}");
        assert!(body.contains("drctl ack incident-1"), "{body}");
        // The last tier waits its own minutes: the path ends there.
        let e = climb(e, t0 + Duration::minutes(45), 0).expect("3");
        let e = climb(e, t0 + Duration::minutes(105), 0).expect("4");
        assert_eq!(e.wait_seconds, 120 * 60);
    }

    #[test]
    fn a_page_climbs_in_one_execution_named_after_it() {
        assert_eq!(Page::execution_name("incident-1"), "page-incident-1");
        assert_eq!(Page::execution_name("a b/c"), "page-a-b-c");
        let long = "x".repeat(300);
        let name = Page::execution_name(&long);
        assert_eq!(name.len(), 80);
        assert_eq!(name, Page::execution_name(&long), "stable");
        assert_ne!(name, Page::execution_name(&format!("{long}y")));
    }

    #[test]
    fn tiers_take_their_minutes_as_a_number_or_as_substituted_text() {
        let parsed: Tier = serde_json::from_value(serde_json::json!({
            "name": "cto", "topic_arn": "arn:aws:sns:r:1:t", "response_minutes": "120"
        }))
        .expect("text");
        assert_eq!(parsed.response_minutes, 120);
        let refused = serde_json::from_value::<Tier>(serde_json::json!({
            "name": "cto", "topic_arn": "arn:aws:sns:r:1:t", "response_minutes": "two hours"
        }));
        assert!(refused.is_err());
    }

    #[test]
    fn messages_name_the_tier_and_who_did_not_answer_before() {
        let t0 = at("2026-11-29T03:00:00Z");
        let e = climb(start(), t0, 225 * 60).expect("1");
        assert_eq!(
            climb_lines(&e),
            (
                "escalation tier 1 of 4 (primary-on-call)".to_owned(),
                vec![]
            )
        );
        let e = climb(e, t0 + Duration::minutes(15), 0).expect("2");
        let e = climb(e, t0 + Duration::minutes(45), 0).expect("3");
        let (header, earlier) = climb_lines(&e);
        assert_eq!(header, "escalation tier 3 of 4 (engineering-manager)");
        assert_eq!(
            earlier,
            vec![
                "primary-on-call was asked at 03:00:00 UTC and did not answer within 15 min",
                "backup-on-call was asked at 03:15:00 UTC and did not answer within 30 min",
            ]
        );
    }

    #[test]
    fn the_report_says_who_was_asked_when_and_who_answered_how_fast() {
        let t0 = at("2026-11-29T03:00:00Z");
        let e = climb(start(), t0, 225 * 60).expect("1");
        let mut e = climb(e, t0 + Duration::minutes(15), 0).expect("2");
        e.answered_at = Some(t0 + Duration::minutes(17));
        let answer = ApprovalAnswer {
            approved: true,
            by: "bob".to_owned(),
            at: t0 + Duration::minutes(17),
            reason: None,
            tier: Some("backup-on-call".to_owned()),
        };
        // As a run's state keeps it.
        let details = serde_json::json!({
            "escalation": e.clone(),
            "steps": {"approval": {"started_at": "2026-11-29T03:15:00Z", "result": answer.clone()}},
            "approval_answered": {"at": "2026-11-29T03:17:00Z"},
        });
        assert_eq!(lines_of(&details), report_lines(&e, Some(&answer)));
        let mut no = answer.clone();
        no.approved = false;
        let mut unanswered = e.clone();
        unanswered.answered_at = None;
        let rejected = serde_json::json!({
            "escalation": unanswered,
            "steps": {"approval": {"started_at": "2026-11-29T03:16:00Z",
                "error": {"Error": "Rejected", "Cause": serde_json::to_string(&no).expect("json")}}},
        });
        assert_eq!(
            lines_of(&rejected)[1],
            "backup-on-call: asked at 2026-11-29T03:15:00+00:00, answered by bob (rejected) at 2026-11-29T03:16:00+00:00, 1.0 min after it was asked"
        );
        assert_eq!(
            report_lines(&e, Some(&answer)),
            vec![
                "primary-on-call: asked at 2026-11-29T03:00:00+00:00, no answer in 15.0 min",
                "backup-on-call: asked at 2026-11-29T03:15:00+00:00, answered by bob (approved) at 2026-11-29T03:17:00+00:00, 2.0 min after it was asked",
                "engineering-manager: not asked",
                "cto: not asked",
            ]
        );
        // Nobody answered: every tier waited its time, the last to the deadline.
        let mut e = start();
        let mut now = t0;
        loop {
            e = climb(e, now, 225 * 60).expect("climb");
            if e.done {
                break;
            }
            now += Duration::seconds(e.wait_seconds as i64);
        }
        let lines = report_lines(&e, None);
        assert_eq!(lines.len(), 4);
        assert!(
            lines[3].starts_with("cto: asked at 2026-11-29T04:45:00+00:00, no answer in 2.00 h"),
            "{lines:?}"
        );
    }
}
