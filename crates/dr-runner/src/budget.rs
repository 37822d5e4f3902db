//! The worst case of a state machine, computed from its definition: every
//! bounded loop at its cap, every Retry at MaxAttempts, every Map at the
//! most items its input may hold. What AWS cannot let a workflow catch —
//! a history past 25,000 events, a run past its TimeoutSeconds — must stay
//! out of reach by construction, and this is how it is shown.
//!
//! History events are counted as this runner (and Step Functions) records
//! them: two per execution, two per state (entered, exited), three per
//! Lambda attempt (scheduled, started, succeeded or failed), four per
//! attempt of a child execution started with `.sync` (submitted besides),
//! two more per Map or Parallel and two per Map iteration.
//!
//! A loop is bounded when its cycle holds a Choice rule that leaves it once
//! a counter reaches a cap (`NumericGreaterThanEquals` or `…GreaterThan`, a
//! literal or a path) and a Pass that adds 1 to that counter
//! (`States.MathAdd(<counter>, 1)`). Each trip around the loop is counted as
//! every state of the cycle, once per iteration plus one: a safe upper bound.

use std::collections::{BTreeMap, BTreeSet};

use crate::choice::{Comparison, Condition, Kind, Operand};
use crate::definition::{
    Flow, MaxConcurrency, Resource, Retrier, State, StateKind, Transition, WaitFor,
};
use crate::intrinsics::Arg;
use crate::template::Template;

/// What the definition leaves to its input: the worst the input's
/// validation admits.
#[derive(Debug, Clone, Default)]
pub struct Assumptions {
    /// Values of the paths read for Wait `SecondsPath`, Task
    /// `TimeoutSecondsPath` and loop caps (`…Path` operands), by path text.
    pub paths: BTreeMap<String, f64>,
    /// The most items a Map state iterates over, by state name.
    pub map_items: BTreeMap<String, usize>,
    /// The longest one Lambda invocation may take, by function name (its
    /// timeout), and for functions not listed.
    pub function_seconds: BTreeMap<String, f64>,
    pub task_seconds: f64,
    /// The worst case of each child state machine a Task starts with
    /// `states:startExecution.sync`, by state machine ARN.
    pub children: BTreeMap<String, Budget>,
}

/// History events and duration.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    pub events: u64,
    pub seconds: f64,
}

impl Budget {
    fn then(self, other: Budget) -> Budget {
        Budget {
            events: self.events + other.events,
            seconds: self.seconds + other.seconds,
        }
    }

    fn times(self, n: u64) -> Budget {
        Budget {
            events: self.events * n,
            seconds: self.seconds * n as f64,
        }
    }

    /// The worse of two alternatives, field by field (an upper bound of both).
    fn max(self, other: Budget) -> Budget {
        Budget {
            events: self.events.max(other.events),
            seconds: self.seconds.max(other.seconds),
        }
    }
}

/// The worst case of a whole execution: its flow plus the execution's own
/// started and ended events. Errors name what keeps it from being bounded.
pub fn worst_case(
    machine: &crate::StateMachine,
    assumptions: &Assumptions,
) -> Result<Budget, Vec<String>> {
    let mut problems = Vec::new();
    let flow = flow_budget(&machine.flow, assumptions, &mut problems);
    if problems.is_empty() {
        Ok(Budget {
            events: 2,
            seconds: 0.0,
        }
        .then(flow))
    } else {
        Err(problems)
    }
}

/// Each state's own worst cost (a loop's states times the loop's
/// iterations), costliest first: where a budget goes.
pub fn costliest_states(
    machine: &crate::StateMachine,
    assumptions: &Assumptions,
) -> Vec<(String, Budget)> {
    let mut problems = Vec::new();
    let flow = &machine.flow;
    let mut out = Vec::new();
    for component in components(flow) {
        let times = if is_cycle(&component, flow) {
            loop_cap(&component, flow, assumptions).map_or(1, |c| c + 1)
        } else {
            1
        };
        for name in &component {
            if let Some(state) = flow.states.get(name) {
                out.push((
                    name.clone(),
                    state_budget(state, assumptions, &mut problems).times(times),
                ));
            }
        }
    }
    out.sort_by(|a, b| b.1.seconds.total_cmp(&a.1.seconds));
    out
}

fn successors(state: &State) -> Vec<&str> {
    let mut out = Vec::new();
    if let Transition::Next(n) = &state.transition {
        out.push(n.as_str());
    }
    match &state.kind {
        StateKind::Choice { choices, default } => {
            out.extend(choices.iter().map(|c| c.next.as_str()));
            out.extend(default.as_deref());
        }
        StateKind::Task { catch, .. }
        | StateKind::Parallel { catch, .. }
        | StateKind::Map { catch, .. } => out.extend(catch.iter().map(|c| c.next.as_str())),
        _ => {}
    }
    out
}

/// Strongly connected components (Tarjan), each a set of state names.
fn components(flow: &Flow) -> Vec<BTreeSet<String>> {
    struct Tarjan<'a> {
        flow: &'a Flow,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<BTreeSet<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            let Some(state) = self.flow.states.get(v) else {
                return;
            };
            for w in successors(state) {
                let Some((w, _)) = self.flow.states.get_key_value(w) else {
                    continue;
                };
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = BTreeSet::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.insert(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                self.out.push(component);
            }
        }
    }
    let mut tarjan = Tarjan {
        flow,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for name in flow.states.keys() {
        if !tarjan.index.contains_key(name.as_str()) {
            tarjan.visit(name);
        }
    }
    tarjan.out
}

fn is_cycle(component: &BTreeSet<String>, flow: &Flow) -> bool {
    component.len() > 1
        || component.iter().any(|name| {
            flow.states
                .get(name)
                .is_some_and(|s| successors(s).contains(&name.as_str()))
        })
}

/// Whether a Pass state adds 1 to `counter` (`States.MathAdd(counter, 1)`).
fn increments(template: &Template, counter: &str) -> bool {
    match template {
        Template::Call(call) => {
            call.name == "States.MathAdd"
                && matches!(call.args.as_slice(),
                    [Arg::Path(p), Arg::Literal(one)] if p.as_str() == counter && one.as_f64() == Some(1.0))
        }
        Template::Object(entries) => entries.iter().any(|(_, t)| increments(t, counter)),
        Template::Array(items) => items.iter().any(|t| increments(t, counter)),
        _ => false,
    }
}

/// How many times at most a loop's body runs: the cap of a counter that a
/// Choice of the loop compares to leave it and a Pass of the loop increments.
fn loop_cap(
    component: &BTreeSet<String>,
    flow: &Flow,
    assumptions: &Assumptions,
) -> Result<u64, String> {
    let states: Vec<&State> = component
        .iter()
        .filter_map(|n| flow.states.get(n))
        .collect();
    let mut missing = None;
    for state in &states {
        let StateKind::Choice { choices, .. } = &state.kind else {
            continue;
        };
        for choice in choices.iter().filter(|c| !component.contains(&c.next)) {
            let Condition::Compare {
                variable,
                kind: Kind::Numeric,
                comparison,
                operand,
            } = &choice.condition
            else {
                continue;
            };
            let extra = match comparison {
                Comparison::GreaterThanEquals => 0.0,
                Comparison::GreaterThan => 1.0,
                _ => continue,
            };
            let cap = match operand {
                Operand::Value(v) => v.as_f64(),
                Operand::Path(p) => {
                    let value = assumptions.paths.get(p.as_str()).copied();
                    if value.is_none() {
                        missing = Some(format!(
                            "state {:?} caps a loop at {}: assume its largest value",
                            state.name,
                            p.as_str()
                        ));
                    }
                    value
                }
            };
            let Some(cap) = cap else { continue };
            let counted = states.iter().any(|s| match &s.kind {
                StateKind::Pass {
                    parameters: Some(t),
                    ..
                } => increments(t, variable.as_str()),
                _ => false,
            });
            if counted && cap.is_finite() && cap >= 0.0 {
                return Ok((cap + extra).ceil() as u64);
            }
        }
    }
    Err(missing.unwrap_or_else(|| {
        format!(
            "the loop through {} has no counter cap (a Choice leaving it at a count that a Pass of the loop increments): its worst case is unbounded",
            component.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    }))
}

fn assumed(assumptions: &Assumptions, state: &str, path: &str, problems: &mut Vec<String>) -> f64 {
    match assumptions.paths.get(path) {
        Some(v) => *v,
        None => {
            problems.push(format!(
                "state {state:?} reads {path}: assume its largest value"
            ));
            0.0
        }
    }
}

/// Retries at their MaxAttempts: (extra attempts, total delay between them).
fn retries(retry: &[Retrier]) -> (u64, f64) {
    let attempts: u64 = retry.iter().map(|r| u64::from(r.max_attempts)).sum();
    let delay = retry
        .iter()
        .map(|r| {
            (1..=r.max_attempts)
                .map(|k| r.delay_seconds(k))
                .sum::<f64>()
        })
        .sum();
    (attempts, delay)
}

/// One state on its own (not what follows it).
fn state_budget(state: &State, assumptions: &Assumptions, problems: &mut Vec<String>) -> Budget {
    let entered_exited = Budget {
        events: 2,
        seconds: 0.0,
    };
    match &state.kind {
        StateKind::Pass { .. }
        | StateKind::Choice { .. }
        | StateKind::Succeed
        | StateKind::Fail { .. } => entered_exited,
        StateKind::Wait(wait) => Budget {
            events: 2,
            seconds: match wait {
                WaitFor::Seconds(s) => *s,
                WaitFor::SecondsPath(p) => assumed(assumptions, &state.name, p.as_str(), problems),
                WaitFor::Timestamp(_) | WaitFor::TimestampPath(_) => {
                    problems.push(format!(
                        "state {:?} waits until a timestamp: its duration has no bound here",
                        state.name
                    ));
                    0.0
                }
            },
        },
        StateKind::Task {
            resource,
            retry,
            timeout_seconds,
            timeout_seconds_path,
            ..
        } => {
            // A callback task (`.waitForTaskToken`) waits once: a retried
            // attempt failed at its invocation, before any wait (the answers
            // sent with a token are never errors its Retry names; the deploy
            // checks hold the answers we send to that).
            let callback = matches!(
                resource,
                Resource::LambdaInvoke {
                    wait_for_token: true,
                    ..
                }
            );
            let (events_per_attempt, attempt_seconds) = match resource {
                Resource::StartExecution { state_machine, .. } => {
                    let child = state_machine
                        .as_deref()
                        .and_then(|arn| assumptions.children.get(arn));
                    match child {
                        Some(c) => (4, c.seconds),
                        None => {
                            problems.push(format!(
                                "state {:?} starts {}, whose worst case is not given",
                                state.name,
                                state_machine
                                    .as_deref()
                                    .unwrap_or("a state machine named at run time")
                            ));
                            (4, 0.0)
                        }
                    }
                }
                Resource::LambdaInvoke {
                    function: Some(f), ..
                }
                | Resource::LambdaArn { function: f } => (
                    3,
                    assumptions
                        .function_seconds
                        .get(f)
                        .copied()
                        .unwrap_or(assumptions.task_seconds),
                ),
                Resource::LambdaInvoke { function: None, .. } => (3, assumptions.task_seconds),
            };
            let timeout = match (timeout_seconds, timeout_seconds_path) {
                (Some(s), _) => Some(*s as f64),
                (None, Some(p)) => Some(assumed(assumptions, &state.name, p.as_str(), problems)),
                (None, None) => None,
            };
            let (extra, delay) = retries(retry);
            let seconds = match (callback, timeout) {
                (true, Some(wait)) => wait + attempt_seconds * extra as f64,
                (true, None) => {
                    problems.push(format!(
                        "callback state {:?} has no TimeoutSeconds: it may wait a year",
                        state.name
                    ));
                    0.0
                }
                // The function's own timeout ends an attempt first when shorter.
                (false, Some(t)) => t.min(attempt_seconds) * (1 + extra) as f64,
                (false, None) => attempt_seconds * (1 + extra) as f64,
            };
            Budget {
                events: 2 + events_per_attempt * (1 + extra),
                seconds: seconds + delay,
            }
        }
        StateKind::Parallel {
            branches, retry, ..
        } => {
            let mut events = 2;
            let mut seconds: f64 = 0.0;
            for branch in branches {
                let b = flow_budget(branch, assumptions, problems);
                events += b.events;
                seconds = seconds.max(b.seconds);
            }
            let (extra, delay) = retries(retry);
            let once = Budget { events, seconds };
            entered_exited.then(once.times(1 + extra)).then(Budget {
                events: 0,
                seconds: delay,
            })
        }
        StateKind::Map {
            processor,
            max_concurrency,
            retry,
            ..
        } => {
            let Some(items) = assumptions.map_items.get(&state.name).copied() else {
                problems.push(format!(
                    "Map state {:?}: assume the most items its input may hold",
                    state.name
                ));
                return entered_exited;
            };
            let iteration = flow_budget(processor, assumptions, problems);
            // A concurrency read at run time is its assumed value; without
            // one, it may be 1: one iteration after another.
            let concurrency = match max_concurrency {
                MaxConcurrency::Fixed(0) => items.max(1),
                MaxConcurrency::Fixed(n) => *n,
                MaxConcurrency::Path(path) => assumptions
                    .paths
                    .get(&path.to_string())
                    .map_or(1, |v| (*v as usize).max(1)),
            };
            let waves = items.div_ceil(concurrency) as f64;
            let once = Budget {
                events: 2 + items as u64 * (2 + iteration.events),
                seconds: waves * iteration.seconds,
            };
            let (extra, delay) = retries(retry);
            entered_exited.then(once.times(1 + extra)).then(Budget {
                events: 0,
                seconds: delay,
            })
        }
    }
}

/// The worst path through a flow, loops at their caps.
fn flow_budget(flow: &Flow, assumptions: &Assumptions, problems: &mut Vec<String>) -> Budget {
    let comps = components(flow);
    let mut component_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in comps.iter().enumerate() {
        for name in c {
            component_of.insert(name.as_str(), i);
        }
    }
    // The cost of each component on its own.
    let mut own = Vec::with_capacity(comps.len());
    for component in &comps {
        let body = component
            .iter()
            .filter_map(|n| flow.states.get(n))
            .map(|s| state_budget(s, assumptions, problems))
            .fold(Budget::default(), Budget::then);
        if is_cycle(component, flow) {
            match loop_cap(component, flow, assumptions) {
                Ok(cap) => own.push(body.times(cap + 1)),
                Err(problem) => {
                    problems.push(problem);
                    own.push(body);
                }
            }
        } else {
            own.push(body);
        }
    }
    // Tarjan emits components in reverse topological order: successors first.
    let mut worst: Vec<Budget> = vec![Budget::default(); comps.len()];
    for (i, component) in comps.iter().enumerate() {
        let mut after = Budget::default();
        for name in component {
            let Some(state) = flow.states.get(name) else {
                continue;
            };
            for next in successors(state) {
                if let Some(&j) = component_of.get(next) {
                    if j != i {
                        after = after.max(worst[j]);
                    }
                }
            }
        }
        worst[i] = own[i].then(after);
    }
    component_of
        .get(flow.start_at.as_str())
        .map(|&i| worst[i])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LoadOptions, StateMachine};
    use serde_json::{json, Value};

    fn machine(states: Value) -> StateMachine {
        StateMachine::from_value(
            &json!({"StartAt": "A", "States": states}),
            &LoadOptions::default(),
        )
        .expect("loads")
    }

    fn lambda(next: Option<&str>) -> Value {
        let mut task = json!({
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "f", "Payload": {}},
        });
        match next {
            Some(n) => task["Next"] = json!(n),
            None => task["End"] = json!(true),
        }
        task
    }

    fn assumptions() -> Assumptions {
        Assumptions {
            task_seconds: 10.0,
            ..Assumptions::default()
        }
    }

    #[test]
    fn straight_lines_retries_and_branches_are_counted_as_the_runner_records_them() {
        struct Case {
            name: &'static str,
            states: Value,
            events: u64,
            seconds: f64,
        }
        let mut retried = lambda(None);
        retried["Retry"] = json!([
            {"ErrorEquals": ["Throttled"], "IntervalSeconds": 2, "BackoffRate": 2.0, "MaxAttempts": 3},
            {"ErrorEquals": ["NotReady"], "IntervalSeconds": 5, "BackoffRate": 1.0, "MaxAttempts": 1}
        ]);
        let mut caught = lambda(Some("B"));
        caught["Catch"] = json!([{"ErrorEquals": ["States.ALL"], "Next": "Slow"}]);
        let cases = [
            Case {
                name: "one task",
                states: json!({"A": lambda(None)}),
                events: 2 + 5,
                seconds: 10.0,
            },
            Case {
                name: "retries at MaxAttempts: 4 more attempts, 2+4+8+5 s between",
                states: json!({"A": retried}),
                events: 2 + 2 + 3 * 5,
                seconds: 50.0 + 19.0,
            },
            Case {
                name: "a catch path longer than the normal one is the worst",
                states: json!({
                    "A": caught,
                    "B": {"Type": "Succeed"},
                    "Slow": {"Type": "Wait", "Seconds": 100, "Next": "B"}
                }),
                events: 2 + 5 + 2 + 2,
                seconds: 110.0,
            },
            Case {
                name: "choice: the worse branch",
                states: json!({
                    "A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "BooleanEquals": true, "Next": "Quick"}], "Default": "Slow"},
                    "Quick": {"Type": "Succeed"},
                    "Slow": {"Type": "Wait", "SecondsPath": "$.interval", "Next": "Quick"}
                }),
                events: 2 + 2 + 2 + 2,
                seconds: 300.0,
            },
        ];
        for case in cases {
            let mut a = assumptions();
            a.paths.insert("$.interval".to_owned(), 300.0);
            let budget = worst_case(&machine(case.states), &a).expect(case.name);
            assert_eq!(budget.events, case.events, "{}", case.name);
            assert!(
                (budget.seconds - case.seconds).abs() < 1e-9,
                "{}: {} s",
                case.name,
                budget.seconds
            );
        }
    }

    fn poll_loop(cap: Value) -> Value {
        let mut cap_rule = json!({"Variable": "$.wait.polls", "Next": "TimedOut"});
        match cap {
            Value::String(p) => cap_rule["NumericGreaterThanEqualsPath"] = json!(p),
            n => cap_rule["NumericGreaterThanEquals"] = n,
        }
        json!({
            "A": {"Type": "Pass", "Result": {"polls": 0}, "ResultPath": "$.wait", "Next": "Describe"},
            "Describe": lambda(Some("IsDone")),
            "IsDone": {"Type": "Choice", "Choices": [
                {"Variable": "$.done", "BooleanEquals": true, "Next": "Done"},
                cap_rule
            ], "Default": "Wait"},
            "Wait": {"Type": "Wait", "Seconds": 30, "Next": "Count"},
            "Count": {"Type": "Pass", "Parameters": {"polls.$": "States.MathAdd($.wait.polls, 1)"}, "ResultPath": "$.wait", "Next": "Describe"},
            "Done": {"Type": "Succeed"},
            "TimedOut": {"Type": "Fail", "Error": "TimedOut"}
        })
    }

    #[test]
    fn a_poll_loop_counts_at_its_cap_literal_or_assumed() {
        // Per trip: Describe 5 events and 10 s, IsDone 2, Wait 2 and 30 s, Count 2.
        let trip = Budget {
            events: 11,
            seconds: 40.0,
        };
        let expected = Budget {
            events: 2 + 2,
            seconds: 0.0,
        }
        .then(trip.times(241))
        .then(Budget {
            events: 2,
            seconds: 0.0,
        });
        assert_eq!(
            worst_case(&machine(poll_loop(json!(240))), &assumptions()),
            Ok(expected)
        );
        let mut a = assumptions();
        a.paths.insert("$.limits.polls".to_owned(), 240.0);
        assert_eq!(
            worst_case(&machine(poll_loop(json!("$.limits.polls"))), &a),
            Ok(expected)
        );
        assert_eq!(
            worst_case(&machine(poll_loop(json!("$.limits.polls"))), &assumptions()),
            Err(vec![
                "state \"IsDone\" caps a loop at $.limits.polls: assume its largest value"
                    .to_owned()
            ])
        );
    }

    #[test]
    fn a_loop_without_a_counted_cap_is_unbounded() {
        let mut states = poll_loop(json!(240));
        // The counter is never incremented: the cap is never reached.
        states["Count"] = json!({"Type": "Pass", "Next": "Describe"});
        let problems = worst_case(&machine(states), &assumptions()).expect_err("unbounded");
        assert_eq!(
            problems,
            vec!["the loop through Count, Describe, IsDone, Wait has no counter cap (a Choice leaving it at a count that a Pass of the loop increments): its worst case is unbounded".to_owned()]
        );
    }

    #[test]
    fn a_map_counts_every_item_and_waits_in_waves() {
        let states = json!({
            "A": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ItemProcessor": {
                "StartAt": "Work", "States": {"Work": lambda(None)}
            }, "End": true}
        });
        let mut a = assumptions();
        a.map_items.insert("A".to_owned(), 3);
        // 2 (execution) + 4 (map) + 3 × (2 iteration + 5 task); 2 waves of 10 s.
        assert_eq!(
            worst_case(&machine(states.clone()), &a),
            Ok(Budget {
                events: 2 + 4 + 3 * 7,
                seconds: 20.0
            })
        );
        assert_eq!(
            worst_case(&machine(states), &assumptions()),
            Err(vec![
                "Map state \"A\": assume the most items its input may hold".to_owned()
            ])
        );
    }
}
