//! Every state machine's worst case (history events, duration) against its
//! TimeoutSeconds and AWS's history limit.

use crate::*;

/// The worst case of one state machine, from its definition.
#[derive(Debug, Clone, PartialEq)]
pub struct WorstCase {
    pub logical_id: String,
    pub events: u64,
    pub seconds: f64,
    pub timeout_seconds: Option<u64>,
    /// Where the time goes at the worst input, costliest state first.
    pub costliest: Vec<(String, dr_runner::budget::Budget)>,
}

/// History events one execution may have before AWS's 25,000 fail it,
/// with a margin.
pub const HISTORY_BUDGET: u64 = 20_000;

/// Admissible inputs (the paths' values) and the widest Map of each.
pub(crate) type InputDomain = (Vec<BTreeMap<String, f64>>, BTreeMap<String, usize>);

/// What each state machine's input may hold at worst: the values its
/// wait loops and waits read, for every interval the input's validation
/// admits, and the widest Map. Each set is one admissible input.
pub(crate) fn input_domain(stem: &str) -> Option<InputDomain> {
    use dr_scenarios::{drill, plan};
    let intervals = 1..=300u64;
    match stem {
        "database-failover" => Some((
            intervals
                .map(|i| {
                    BTreeMap::from([
                        ("$.plan.poll_interval_seconds".to_owned(), i as f64),
                        (
                            "$.plan.limits.promotion_polls".to_owned(),
                            plan::failover_limits(i).promotion_polls as f64,
                        ),
                        (
                            "$.plan.limits.app_rollout_polls".to_owned(),
                            plan::failover_limits(i).app_rollout_polls as f64,
                        ),
                        (
                            "$.steps.confirm.result.approval.timeout_seconds".to_owned(),
                            plan::MAX_APPROVAL_SECONDS as f64,
                        ),
                        // A tier of the escalation waits at most the whole deadline.
                        (
                            "$.escalation.wait_seconds".to_owned(),
                            plan::MAX_APPROVAL_SECONDS as f64,
                        ),
                    ])
                })
                .collect(),
            BTreeMap::new(),
        )),
        "dr-drill-database" => Some((
            intervals
                .map(|i| {
                    let l = drill::poll_limits(i);
                    BTreeMap::from([
                        ("$.request.poll_interval_seconds".to_owned(), i as f64),
                        ("$.limits.restore_polls".to_owned(), l.restore_polls as f64),
                        ("$.limits.replica_polls".to_owned(), l.replica_polls as f64),
                        ("$.limits.marker_polls".to_owned(), l.marker_polls as f64),
                        ("$.limits.base_polls".to_owned(), l.base_polls as f64),
                        (
                            "$.limits.damage_gap_seconds".to_owned(),
                            l.damage_gap_seconds as f64,
                        ),
                    ])
                })
                .collect(),
            BTreeMap::new(),
        )),
        "data-corruption" => {
            use dr_scenarios::corruption;
            Some((
                intervals
                    .map(|i| {
                        BTreeMap::from([
                            ("$.plan.poll_interval_seconds".to_owned(), i as f64),
                            (
                                "$.plan.restore_poll_seconds".to_owned(),
                                corruption::restore_wait(i).0 as f64,
                            ),
                            (
                                "$.plan.max_polls".to_owned(),
                                corruption::restore_wait(i).1 as f64,
                            ),
                            (
                                "$.plan.max_search_rounds".to_owned(),
                                f64::from(corruption::MAX_SEARCH_ROUNDS),
                            ),
                            (
                                "$.plan.approval_timeout_seconds".to_owned(),
                                corruption::MAX_APPROVAL_SECONDS as f64,
                            ),
                            (
                                "$.escalation.wait_seconds".to_owned(),
                                corruption::MAX_APPROVAL_SECONDS as f64,
                            ),
                            (
                                "$.plan.app_rollout_polls".to_owned(),
                                dr_scenarios::plan::app_rollout_polls(i) as f64,
                            ),
                        ])
                    })
                    .collect(),
                BTreeMap::new(),
            ))
        }
        "data-corruption-round" => {
            use dr_scenarios::corruption;
            Some((
                intervals
                    .map(|i| {
                        BTreeMap::from([
                            (
                                "$.plan.candidate_poll_seconds".to_owned(),
                                i.max(corruption::CANDIDATE_POLL_SECONDS) as f64,
                            ),
                            (
                                "$.plan.candidate_polls".to_owned(),
                                corruption::CANDIDATE_POLLS as f64,
                            ),
                            (
                                "$.plan.candidates_per_round".to_owned(),
                                f64::from(corruption::MAX_CANDIDATES_PER_ROUND),
                            ),
                        ])
                    })
                    .collect(),
                BTreeMap::from([(
                    "Round".to_owned(),
                    corruption::MAX_CANDIDATES_PER_ROUND as usize,
                )]),
            ))
        }
        "snapshot-replication-database" => {
            use dr_scenarios::replication::ReplicationLimits;
            Some((
                intervals
                    .map(|i| {
                        let l = ReplicationLimits::for_interval(i);
                        BTreeMap::from([
                            (
                                "$.plan.limits.snapshot_poll_seconds".to_owned(),
                                l.snapshot_poll_seconds as f64,
                            ),
                            (
                                "$.plan.limits.snapshot_polls".to_owned(),
                                l.snapshot_polls as f64,
                            ),
                            (
                                "$.plan.limits.copy_poll_seconds".to_owned(),
                                l.copy_poll_seconds as f64,
                            ),
                            ("$.plan.limits.copy_polls".to_owned(), l.copy_polls as f64),
                        ])
                    })
                    .collect(),
                BTreeMap::new(),
            ))
        }
        "region-failover" => {
            use dr_scenarios::region::{RegionLimits, MAX_APPROVAL_SECONDS};
            Some((
                intervals
                    .map(|i| {
                        let l = RegionLimits::for_interval(i);
                        let r = l.replication;
                        BTreeMap::from([
                            (
                                "$.plan.limits.restore_poll_seconds".to_owned(),
                                l.restore_poll_seconds as f64,
                            ),
                            (
                                "$.plan.limits.restore_polls".to_owned(),
                                l.restore_polls as f64,
                            ),
                            (
                                "$.plan.limits.fleet_poll_seconds".to_owned(),
                                l.fleet_poll_seconds as f64,
                            ),
                            ("$.plan.limits.fleet_polls".to_owned(), l.fleet_polls as f64),
                            (
                                "$.plan.limits.dns_poll_seconds".to_owned(),
                                l.dns_poll_seconds as f64,
                            ),
                            ("$.plan.limits.dns_polls".to_owned(), l.dns_polls as f64),
                            (
                                "$.plan.limits.replication.snapshot_poll_seconds".to_owned(),
                                r.snapshot_poll_seconds as f64,
                            ),
                            (
                                "$.plan.limits.replication.snapshot_polls".to_owned(),
                                r.snapshot_polls as f64,
                            ),
                            (
                                "$.plan.limits.replication.copy_poll_seconds".to_owned(),
                                r.copy_poll_seconds as f64,
                            ),
                            (
                                "$.plan.limits.replication.copy_polls".to_owned(),
                                r.copy_polls as f64,
                            ),
                            (
                                "$.plan.approval_timeout_seconds".to_owned(),
                                MAX_APPROVAL_SECONDS as f64,
                            ),
                            (
                                "$.escalation.wait_seconds".to_owned(),
                                MAX_APPROVAL_SECONDS as f64,
                            ),
                        ])
                    })
                    .collect(),
                BTreeMap::new(),
            ))
        }
        // The longest wait at its fewest, slowest polls and at its most polls.
        "app-server-recovery" => {
            use dr_scenarios::app::{
                MAX_FLEET_POLLS, MAX_HEALTH_ATTEMPTS, MAX_POLL_SECONDS, MAX_WAIT_SECONDS,
            };
            Some((
                [
                    (MAX_POLL_SECONDS, MAX_WAIT_SECONDS / MAX_POLL_SECONDS),
                    (MAX_WAIT_SECONDS / MAX_FLEET_POLLS, MAX_FLEET_POLLS),
                ]
                .into_iter()
                .map(|(poll, polls)| {
                    BTreeMap::from([
                        ("$.plan.limits.poll_seconds".to_owned(), poll as f64),
                        ("$.plan.limits.fleet_polls".to_owned(), polls as f64),
                        (
                            "$.plan.limits.health_attempts".to_owned(),
                            MAX_HEALTH_ATTEMPTS as f64,
                        ),
                    ])
                })
                .collect(),
                BTreeMap::new(),
            ))
        }
        "deployment-rollback" => {
            use dr_scenarios::rollback::{
                MAX_HEALTH_ATTEMPTS, MAX_POLLS, MAX_POLL_SECONDS, MAX_WAIT_SECONDS,
            };
            Some((
                [
                    (MAX_POLL_SECONDS, MAX_WAIT_SECONDS / MAX_POLL_SECONDS),
                    (MAX_WAIT_SECONDS / MAX_POLLS, MAX_POLLS),
                ]
                .into_iter()
                .map(|(poll, polls)| {
                    BTreeMap::from([
                        ("$.plan.limits.poll_seconds".to_owned(), poll as f64),
                        ("$.plan.limits.polls".to_owned(), polls as f64),
                        (
                            "$.plan.limits.health_attempts".to_owned(),
                            MAX_HEALTH_ATTEMPTS as f64,
                        ),
                    ])
                })
                .collect(),
                BTreeMap::new(),
            ))
        }
        "snapshot-replication" => Some((
            vec![BTreeMap::new()],
            BTreeMap::from([(
                "PerDatabase".to_owned(),
                dr_scenarios::replication::MAX_DATABASES,
            )]),
        )),
        "dr-drill" => Some((
            vec![BTreeMap::new()],
            BTreeMap::from([("PerDatabase".to_owned(), drill::MAX_DATABASES)]),
        )),
        // A page climbs four tiers, each given at most a day.
        "page-escalation" => Some((
            vec![BTreeMap::from([(
                "$.escalation.wait_seconds".to_owned(),
                (dr_scenarios::escalation::MAX_RESPONSE_MINUTES * 60) as f64,
            )])],
            BTreeMap::new(),
        )),
        // No waits or polls; the approval to tell users at its longest.
        "security-breach" => Some((
            vec![BTreeMap::from([
                (
                    "$.plan.approval_timeout_seconds".to_owned(),
                    dr_scenarios::corruption::MAX_APPROVAL_SECONDS as f64,
                ),
                (
                    "$.escalation.wait_seconds".to_owned(),
                    dr_scenarios::corruption::MAX_APPROVAL_SECONDS as f64,
                ),
            ])],
            BTreeMap::new(),
        )),
        _ => None,
    }
}

/// Every state machine's worst case (history events and duration), loops
/// at their caps, retries at MaxAttempts, each Lambda attempt at its
/// function's timeout, each child at its own TimeoutSeconds.
pub fn worst_cases(root: &Path) -> Result<Vec<WorstCase>, Vec<String>> {
    use dr_runner::budget::{worst_case, Assumptions, Budget};
    let sam = SamTemplate::load(&root.join("template.yaml")).map_err(|e| vec![e.to_string()])?;
    let declared = sam.state_machines().map_err(|e| vec![e.to_string()])?;
    let mut loaded = Vec::new();
    for machine in &declared {
        let path = root.join(&machine.definition_uri);
        let text =
            std::fs::read_to_string(&path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
        let definition = StateMachine::load(
            &text,
            &LoadOptions {
                substitutions: machine.substitutions.clone(),
                known_functions: None,
            },
        )
        .map_err(|e| vec![format!("{}: {e}", machine.logical_id)])?;
        let stem = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.trim_end_matches(".asl.json").to_owned())
            .unwrap_or_default();
        loaded.push((machine, stem, definition));
    }
    // Children before the machines that start them, at any depth (the
    // drill starts each database's drill, which starts the failover).
    let mut ordered = Vec::new();
    let mut placed: std::collections::BTreeSet<String> = Default::default();
    while !loaded.is_empty() {
        let (ready, rest): (Vec<_>, Vec<_>) = loaded
            .into_iter()
            .partition(|(_, _, d)| d.children().iter().all(|(_, arn)| placed.contains(arn)));
        if ready.is_empty() {
            // A cycle, or a child no template declares: their worst cases
            // are reported as not given.
            ordered.extend(rest);
            break;
        }
        placed.extend(ready.iter().map(|(m, _, _)| m.arn.clone()));
        ordered.extend(ready);
        loaded = rest;
    }
    let loaded = ordered;
    let mut children: BTreeMap<String, Budget> = BTreeMap::new();
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (machine, stem, definition) in loaded {
        let Some((inputs, map_items)) = input_domain(&stem) else {
            problems.push(format!(
                "{}: no input domain for its worst case (add {stem} to input_domain)",
                machine.logical_id
            ));
            continue;
        };
        let mut worst = Budget::default();
        let mut costliest = Vec::new();
        for paths in inputs {
            let assumptions = Assumptions {
                paths,
                map_items: map_items.clone(),
                function_seconds: sam.function_timeouts(),
                task_seconds: 3.0,
                children: children.clone(),
            };
            match worst_case(&definition, &assumptions) {
                Ok(b) => {
                    if b.seconds > worst.seconds {
                        costliest = dr_runner::budget::costliest_states(&definition, &assumptions);
                    }
                    worst.events = worst.events.max(b.events);
                    worst.seconds = worst.seconds.max(b.seconds);
                }
                Err(e) => {
                    problems.extend(
                        e.into_iter()
                            .map(|p| format!("{}: {p}", machine.logical_id)),
                    );
                    break;
                }
            }
        }
        // A parent waits for a child no longer than the child's own timeout.
        children.insert(
            machine.arn.clone(),
            Budget {
                events: worst.events,
                seconds: definition
                    .timeout_seconds
                    .map_or(worst.seconds, |t| t as f64),
            },
        );
        out.push(WorstCase {
            logical_id: machine.logical_id.clone(),
            events: worst.events,
            seconds: worst.seconds,
            timeout_seconds: definition.timeout_seconds,
            costliest,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}
