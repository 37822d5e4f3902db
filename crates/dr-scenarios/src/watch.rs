//! Pure decisions of `drctl start` and `drctl watch`: the execution name a
//! trigger gets, what a repeated start does, the bounds of a definition's
//! poll loops, the live timeline's lines and the exit code of an outcome.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Utc};
use dr_core::{ExecutionEvent, ExecutionState};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::report::Outcome;

/// Step Functions' limit on an execution name.
pub const NAME_LIMIT: usize = 80;

/// The input as one canonical string: keys sorted at every level, no
/// whitespace, so that the same trigger always hashes the same.
pub fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            let fields: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

/// The SHA-256 of the canonical input, in hex.
pub fn input_digest(input: &Value) -> String {
    Sha256::digest(canonical_json(input).as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The name an execution of `scenario` started on `input` gets: the same
/// trigger (the same input, whatever its key order) always gives the same
/// name, so a repeated start cannot start a second recovery.
pub fn derived_name(scenario: &str, input: &Value) -> String {
    let digest = input_digest(input);
    let prefix: String = scenario
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(NAME_LIMIT - 17)
        .collect();
    format!("{prefix}-{}", &digest[..16])
}

/// What a start does when a name may exist already (the local runner's
/// rule, which is StartExecution's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartDecision {
    Start,
    /// Same name, same input, still running: give back that execution.
    AlreadyRunning,
    /// Same name, same input, stopped: give back that execution; a new
    /// attempt needs another name.
    AlreadyRan,
    /// Same name, another input: refused (ExecutionAlreadyExists).
    Conflict,
}

/// `existing`: the digest of the input the name was started with and its
/// state now (`None` when the name is new).
pub fn start_decision(existing: Option<(&str, ExecutionState)>, digest: &str) -> StartDecision {
    match existing {
        None => StartDecision::Start,
        Some((theirs, _)) if theirs != digest => StartDecision::Conflict,
        Some((_, ExecutionState::Running)) => StartDecision::AlreadyRunning,
        Some(_) => StartDecision::AlreadyRan,
    }
}

/// The bound of a poll loop: the Choice that ends it compares `counter`
/// with `limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopBound {
    pub counter: String,
    pub limit: Limit,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    /// A path into the state's input, e.g. `$.plan.limits.promotion_polls`.
    Path(String),
    Value(f64),
}

impl LoopBound {
    /// (the poll about to happen, the most there can be) at the Wait's
    /// entry, read from its input; `None` when either is not a number.
    pub fn progress(&self, input: &Value) -> Option<(u64, u64)> {
        let done = lookup(input, &self.counter)?.as_f64()?;
        let limit = match &self.limit {
            Limit::Path(path) => lookup(input, path)?.as_f64()?,
            Limit::Value(v) => *v,
        };
        if !(done.is_finite() && limit.is_finite()) || done < 0.0 || limit < 1.0 {
            return None;
        }
        let limit = limit as u64;
        Some(((done as u64 + 1).min(limit), limit))
    }
}

/// `$.a.b.c` in `value` (plain field names only, which is all the
/// definitions use for counters and limits).
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let rest = path.strip_prefix('$')?;
    if rest.is_empty() {
        return Some(value);
    }
    rest.strip_prefix('.')?
        .split('.')
        .try_fold(value, |v, field| v.get(field))
}

/// Every `States` object of a definition: the top level, Parallel branches
/// and Map processors, each a scope of its own.
fn scopes<'a>(definition: &'a Value, out: &mut Vec<&'a Map<String, Value>>) {
    let Some(states) = definition.get("States").and_then(Value::as_object) else {
        return;
    };
    out.push(states);
    for state in states.values() {
        for branch in state
            .get("Branches")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            scopes(branch, out);
        }
        for key in ["Iterator", "ItemProcessor"] {
            if let Some(inner) = state.get(key) {
                scopes(inner, out);
            }
        }
    }
}

fn transitions(state: &Value) -> Vec<&str> {
    let mut next: Vec<&str> = ["Next", "Default"]
        .iter()
        .filter_map(|k| state.get(*k).and_then(Value::as_str))
        .collect();
    for key in ["Choices", "Catch"] {
        for rule in state
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = rule.get("Next").and_then(Value::as_str) {
                next.push(n);
            }
        }
    }
    next
}

/// A Choice rule that ends a loop: a counter compared with an upper limit.
fn counter_rule(choice: &Value) -> Option<LoopBound> {
    choice.get("Choices")?.as_array()?.iter().find_map(|rule| {
        let counter = rule.get("Variable")?.as_str()?.to_owned();
        let limit = if let Some(p) = ["NumericGreaterThanEqualsPath", "NumericGreaterThanPath"]
            .iter()
            .find_map(|k| rule.get(*k).and_then(Value::as_str))
        {
            Limit::Path(p.to_owned())
        } else {
            Limit::Value(
                ["NumericGreaterThanEquals", "NumericGreaterThan"]
                    .iter()
                    .find_map(|k| rule.get(*k).and_then(Value::as_f64))?,
            )
        };
        Some(LoopBound { counter, limit })
    })
}

/// The states reachable from `from` within one scope.
fn reachable<'a>(states: &'a Map<String, Value>, from: &'a str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([from]);
    while let Some(name) = queue.pop_front() {
        let Some(state) = states.get(name) else {
            continue;
        };
        for next in transitions(state) {
            if seen.insert(next) {
                queue.push_back(next);
            }
        }
    }
    seen
}

/// Pure: each Wait state that sits in a loop ended by a counter Choice, with
/// that Choice's bound (the first such Choice on the way round the loop).
pub fn loop_bounds(definition: &Value) -> BTreeMap<String, LoopBound> {
    let mut all = Vec::new();
    scopes(definition, &mut all);
    let mut bounds = BTreeMap::new();
    for states in all {
        for (name, state) in states {
            if state.get("Type").and_then(Value::as_str) != Some("Wait") {
                continue;
            }
            // Walk forward from the Wait, nearest first, to the first
            // counter Choice from which the Wait is reached again.
            let mut seen = BTreeSet::from([name.as_str()]);
            let mut queue: VecDeque<&str> = transitions(state).into_iter().collect();
            while let Some(candidate) = queue.pop_front() {
                if !seen.insert(candidate) {
                    continue;
                }
                let Some(s) = states.get(candidate) else {
                    continue;
                };
                if s.get("Type").and_then(Value::as_str) == Some("Choice") {
                    if let Some(bound) = counter_rule(s) {
                        if reachable(states, candidate).contains(name.as_str()) {
                            bounds.insert(name.clone(), bound);
                            break;
                        }
                    }
                }
                queue.extend(transitions(s));
            }
        }
    }
    bounds
}

/// Pure: the Task states that wait for a person's answer (a
/// `.waitForTaskToken` resource), in every scope.
pub fn callback_states(definition: &Value) -> BTreeSet<String> {
    let mut all = Vec::new();
    scopes(definition, &mut all);
    all.into_iter()
        .flat_map(|states| states.iter())
        .filter(|(_, s)| {
            s.get("Resource")
                .and_then(Value::as_str)
                .is_some_and(|r| r.ends_with(".waitForTaskToken"))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// `3h 59m`, `4m 05s`, `12s`; negative: `-2m 10s`.
pub fn human_duration(seconds: f64) -> String {
    let sign = if seconds < 0.0 { "-" } else { "" };
    let s = seconds.abs().round() as u64;
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{sign}{h}h {m:02}m")
    } else if m > 0 {
        format!("{sign}{m}m {sec:02}s")
    } else {
        format!("{sign}{sec}s")
    }
}

/// A bar of `width` cells for `done` of `total`.
pub fn bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        0
    } else {
        ((done.min(total) as f64 / total as f64) * width as f64).round() as usize
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// The live timeline of one execution: fed its events in order, it gives
/// the line to print for each (or none for the events nobody follows).
#[derive(Debug, Clone)]
pub struct Timeline {
    started_at: DateTime<Utc>,
    rto_objective_seconds: f64,
    bounds: BTreeMap<String, LoopBound>,
    callbacks: BTreeSet<String>,
    entries: BTreeMap<String, u64>,
}

impl Timeline {
    /// Over a definition's loops and callbacks (see [`loop_bounds`] and
    /// [`callback_states`]; an unknown definition is `Value::Null`).
    pub fn new(started_at: DateTime<Utc>, rto_objective_seconds: f64, definition: &Value) -> Self {
        Timeline {
            started_at,
            rto_objective_seconds,
            bounds: loop_bounds(definition),
            callbacks: callback_states(definition),
            entries: BTreeMap::new(),
        }
    }

    /// Whether entering `state` means waiting for a person's answer.
    pub fn awaits_answer(&self, event: &ExecutionEvent) -> bool {
        event.kind == "TaskStateEntered"
            && event
                .state
                .as_deref()
                .is_some_and(|s| self.callbacks.contains(s))
    }

    /// The RTO budget left at `at`.
    pub fn rto_left(&self, at: DateTime<Utc>) -> f64 {
        self.rto_objective_seconds - (at - self.started_at).num_milliseconds() as f64 / 1000.0
    }

    /// The line for `event`, or `None` for the events not worth a line
    /// (Lambda scheduling, Pass exits and the like).
    pub fn line(&mut self, event: &ExecutionEvent) -> Option<String> {
        let elapsed = (event.timestamp - self.started_at).num_milliseconds() as f64 / 1000.0;
        let at = format!("+{:>8}", human_duration(elapsed));
        let budget = format!(
            "RTO left {}",
            human_duration(self.rto_left(event.timestamp))
        );
        let state = event.state.as_deref().unwrap_or("?");
        let kind = event.kind.as_str();
        let waiting = self.awaits_answer(event);
        let text = if let Some(state_type) = kind.strip_suffix("StateEntered") {
            let n = self.entries.entry(state.to_owned()).or_insert(0);
            *n += 1;
            let n = *n;
            let what = if state_type == "Wait" {
                let progress = self
                    .bounds
                    .get(state)
                    .zip(event.input.as_ref())
                    .and_then(|(b, input)| b.progress(input));
                match progress {
                    Some((poll, limit)) => {
                        format!("⏳ {state}  poll {poll}/{limit} {}", bar(poll, limit, 20))
                    }
                    None => format!("⏳ {state}  wait {n}"),
                }
            } else if state_type == "Pass" || state_type == "Choice" {
                return None;
            } else if waiting {
                format!("✋ {state} ({state_type}): waiting for an answer")
            } else if n > 1 {
                format!("▶ {state} ({state_type}, {n}×)")
            } else {
                format!("▶ {state} ({state_type})")
            };
            format!("{what:<52}  {budget}")
        } else if matches!(
            kind,
            "TaskFailed"
                | "TaskTimedOut"
                | "LambdaFunctionFailed"
                | "LambdaFunctionTimedOut"
                | "ExecutionFailed"
                | "ExecutionTimedOut"
                | "ExecutionAborted"
        ) {
            format!(
                "✘ {kind}{}: {} {}",
                event
                    .state
                    .as_deref()
                    .map(|s| format!(" in {s}"))
                    .unwrap_or_default(),
                event.error.as_deref().unwrap_or(""),
                event.cause.as_deref().unwrap_or("")
            )
            .trim_end()
            .to_owned()
        } else if kind == "ExecutionStarted" || kind == "ExecutionSucceeded" {
            format!("{kind:<52}  {budget}")
        } else {
            return None;
        };
        Some(format!("{at}  {text}"))
    }
}

/// `drctl watch`'s exit code: 0 when the recovery did what it is for (or
/// found nothing to do), 3 when it stopped by design with nothing changed
/// (a person said no, nobody answered, another run holds the database),
/// 1 when someone must act (the execution failed, timed out or was
/// aborted, or its report says failed, blocked or cannot confirm).
pub fn exit_code(state: ExecutionState, outcome: Option<Outcome>) -> u8 {
    match state {
        ExecutionState::Running => 4,
        ExecutionState::Failed | ExecutionState::TimedOut | ExecutionState::Aborted => 1,
        ExecutionState::Succeeded => match outcome {
            None | Some(Outcome::Succeeded) | Some(Outcome::FalseAlarm) => 0,
            Some(Outcome::Rejected)
            | Some(Outcome::NotApproved)
            | Some(Outcome::AlreadyRunning) => 3,
            Some(Outcome::Failed) | Some(Outcome::CannotConfirm) | Some(Outcome::Blocked) => 1,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_same_trigger_gets_the_same_name_whatever_its_key_order() {
        let a = json!({"database": "muejam", "trigger": {"source": "manual", "reason": "down"}});
        let b = json!({"trigger": {"reason": "down", "source": "manual"}, "database": "muejam"});
        let c = json!({"database": "muejam", "trigger": {"source": "manual", "reason": "down!"}});
        assert_eq!(
            derived_name("database-failover", &a),
            derived_name("database-failover", &b)
        );
        assert_ne!(
            derived_name("database-failover", &a),
            derived_name("database-failover", &c)
        );
        assert_ne!(
            derived_name("database-failover", &a),
            derived_name("data-corruption", &a)
        );
        let name = derived_name("database-failover", &a);
        assert!(name.starts_with("database-failover-"), "{name}");
        assert_eq!(name.len(), "database-failover-".len() + 16);
        let long = derived_name(&"x/".repeat(100), &a);
        assert!(long.len() <= NAME_LIMIT, "{}", long.len());
        assert!(long
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        assert_eq!(
            canonical_json(&json!({"b": [ {"z": 1, "a": null} ], "a": "x\"y"})),
            r#"{"a":"x\"y","b":[{"a":null,"z":1}]}"#
        );
    }

    #[test]
    fn a_repeated_start_is_decided_as_step_functions_does() {
        use ExecutionState::*;
        let cases = [
            (None, "d1", StartDecision::Start),
            (Some(("d1", Running)), "d1", StartDecision::AlreadyRunning),
            (Some(("d1", Succeeded)), "d1", StartDecision::AlreadyRan),
            (Some(("d1", Failed)), "d1", StartDecision::AlreadyRan),
            (Some(("d1", Aborted)), "d1", StartDecision::AlreadyRan),
            (Some(("d1", Running)), "d2", StartDecision::Conflict),
            (Some(("d1", Succeeded)), "d2", StartDecision::Conflict),
        ];
        for (existing, digest, want) in cases {
            assert_eq!(
                start_decision(existing, digest),
                want,
                "{existing:?} {digest}"
            );
        }
    }

    fn failover_like() -> Value {
        json!({"StartAt": "Init", "States": {
            "Init": {"Type": "Pass", "Result": {"polls": 0}, "ResultPath": "$.w", "Next": "Describe"},
            "Describe": {"Type": "Task", "Resource": "x", "Next": "IsDone",
                "Catch": [{"ErrorEquals": ["Throttled"], "Next": "WaitForIt"},
                          {"ErrorEquals": ["States.ALL"], "Next": "Fail"}]},
            "IsDone": {"Type": "Choice", "Choices": [
                {"Variable": "$.done", "BooleanEquals": true, "Next": "Done"},
                {"Variable": "$.w.polls", "NumericGreaterThanEqualsPath": "$.plan.limits.polls", "Next": "TooSlow"}],
                "Default": "WaitForIt"},
            "WaitForIt": {"Type": "Wait", "Seconds": 15, "Next": "Count"},
            "Count": {"Type": "Pass", "Parameters": {"polls.$": "States.MathAdd($.w.polls, 1)"}, "ResultPath": "$.w", "Next": "Describe"},
            "Settle": {"Type": "Wait", "Seconds": 5, "Next": "Done"},
            "Done": {"Type": "Succeed"}, "TooSlow": {"Type": "Fail"}, "Fail": {"Type": "Fail"},
            "Ask": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken", "End": true},
            "Fan": {"Type": "Parallel", "End": true, "Branches": [{"StartAt": "In", "States": {
                "In": {"Type": "Wait", "Seconds": 1, "Next": "Check"},
                "Check": {"Type": "Choice", "Choices": [
                    {"Variable": "$.polls", "NumericGreaterThanEquals": 7, "Next": "Out"}], "Default": "In"},
                "Out": {"Type": "Succeed"}}}]}
        }})
    }

    #[test]
    fn loop_bounds_find_the_choice_that_ends_each_poll_loop() {
        let bounds = loop_bounds(&failover_like());
        assert_eq!(
            bounds.get("WaitForIt"),
            Some(&LoopBound {
                counter: "$.w.polls".into(),
                limit: Limit::Path("$.plan.limits.polls".into())
            })
        );
        assert_eq!(
            bounds.get("In"),
            Some(&LoopBound {
                counter: "$.polls".into(),
                limit: Limit::Value(7.0)
            })
        );
        // A Wait outside any loop has no bound.
        assert_eq!(bounds.get("Settle"), None);
        assert_eq!(bounds.len(), 2);
        assert_eq!(
            callback_states(&failover_like()),
            BTreeSet::from(["Ask".to_owned()])
        );
    }

    #[test]
    fn every_wait_loop_of_our_state_machines_is_bounded() {
        // The deployed definitions: each polling Wait must show a progress
        // bar, i.e. have a counter Choice the analysis finds.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../statemachines");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("statemachines") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("read");
            let definition: Value = serde_json::from_str(&text).expect("json");
            let bounds = loop_bounds(&definition);
            let mut all = Vec::new();
            scopes(&definition, &mut all);
            for states in all {
                for (name, state) in states {
                    let is_wait = state.get("Type").and_then(Value::as_str) == Some("Wait");
                    let polls = name.starts_with("WaitFor") && is_wait;
                    if polls {
                        checked += 1;
                        assert!(
                            bounds.contains_key(name),
                            "{}: {name} has no bound",
                            path.display()
                        );
                    }
                }
            }
        }
        assert!(checked >= 10, "only {checked} poll loops found");
    }

    #[test]
    fn progress_reads_the_counter_and_limit_from_the_wait_input() {
        let bound = LoopBound {
            counter: "$.w.polls".into(),
            limit: Limit::Path("$.plan.limits.polls".into()),
        };
        let cases = [
            (
                json!({"w": {"polls": 0}, "plan": {"limits": {"polls": 40}}}),
                Some((1, 40)),
            ),
            (
                json!({"w": {"polls": 39}, "plan": {"limits": {"polls": 40}}}),
                Some((40, 40)),
            ),
            (
                json!({"w": {"polls": 80}, "plan": {"limits": {"polls": 40}}}),
                Some((40, 40)),
            ),
            (
                json!({"w": {"polls": "x"}, "plan": {"limits": {"polls": 40}}}),
                None,
            ),
            (json!({"w": {"polls": 1}}), None),
            (
                json!({"w": {"polls": 1}, "plan": {"limits": {"polls": 0}}}),
                None,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(bound.progress(&input), want, "{input}");
        }
    }

    fn event(
        id: u64,
        secs: i64,
        kind: &str,
        state: Option<&str>,
        input: Option<Value>,
    ) -> ExecutionEvent {
        ExecutionEvent {
            id,
            timestamp: DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("time"),
            kind: kind.into(),
            state: state.map(str::to_owned),
            input,
            error: None,
            cause: None,
        }
    }

    #[test]
    fn the_timeline_shows_states_polls_and_the_rto_left() {
        let start = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let mut t = Timeline::new(start, 14_400.0, &failover_like());
        let input = |polls: u64| json!({"w": {"polls": polls}, "plan": {"limits": {"polls": 4}}});
        let lines: Vec<Option<String>> = vec![
            t.line(&event(1, 0, "ExecutionStarted", None, None)),
            t.line(&event(2, 1, "TaskStateEntered", Some("Describe"), None)),
            t.line(&event(3, 2, "ChoiceStateEntered", Some("IsDone"), None)),
            t.line(&event(
                4,
                2,
                "WaitStateEntered",
                Some("WaitForIt"),
                Some(input(0)),
            )),
            t.line(&event(5, 17, "TaskStateEntered", Some("Describe"), None)),
            t.line(&event(
                6,
                32,
                "WaitStateEntered",
                Some("WaitForIt"),
                Some(input(1)),
            )),
            t.line(&event(7, 40, "WaitStateEntered", Some("Settle"), None)),
            t.line(&ExecutionEvent {
                error: Some("Unsafe".into()),
                cause: Some("no".into()),
                ..event(8, 3700, "ExecutionFailed", None, None)
            }),
            t.line(&event(9, 3720, "TaskStateEntered", Some("Ask"), None)),
        ];
        let lines: Vec<&str> = lines.iter().map(|l| l.as_deref().unwrap_or("-")).collect();
        assert_eq!(
            lines,
            vec![
                "+      0s  ExecutionStarted                                      RTO left 4h 00m",
                "+      1s  ▶ Describe (Task)                                     RTO left 3h 59m",
                "-",
                "+      2s  ⏳ WaitForIt  poll 1/4 [#####---------------]          RTO left 3h 59m",
                "+     17s  ▶ Describe (Task, 2×)                                 RTO left 3h 59m",
                "+     32s  ⏳ WaitForIt  poll 2/4 [##########----------]          RTO left 3h 59m",
                "+     40s  ⏳ Settle  wait 1                                      RTO left 3h 59m",
                "+  1h 01m  ✘ ExecutionFailed: Unsafe no",
                "+  1h 02m  ✋ Ask (Task): waiting for an answer                   RTO left 2h 58m",
            ]
        );
        assert_eq!(
            t.rto_left(start + chrono::Duration::seconds(14_500)),
            -100.0
        );
    }

    #[test]
    fn human_durations() {
        for (s, want) in [
            (0.0, "0s"),
            (59.4, "59s"),
            (65.0, "1m 05s"),
            (3600.0, "1h 00m"),
            (14_399.0, "3h 59m"),
            (-130.0, "-2m 10s"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn the_exit_code_follows_the_outcome() {
        use ExecutionState::*;
        let cases = [
            (Succeeded, None, 0),
            (Succeeded, Some(Outcome::Succeeded), 0),
            (Succeeded, Some(Outcome::FalseAlarm), 0),
            (Succeeded, Some(Outcome::Rejected), 3),
            (Succeeded, Some(Outcome::NotApproved), 3),
            (Succeeded, Some(Outcome::AlreadyRunning), 3),
            (Succeeded, Some(Outcome::Failed), 1),
            (Succeeded, Some(Outcome::CannotConfirm), 1),
            (Succeeded, Some(Outcome::Blocked), 1),
            (Failed, Some(Outcome::Succeeded), 1),
            (Failed, None, 1),
            (TimedOut, None, 1),
            (Aborted, None, 1),
            (Running, None, 4),
        ];
        for (state, outcome, want) in cases {
            assert_eq!(exit_code(state, outcome), want, "{state:?} {outcome:?}");
        }
    }
}
