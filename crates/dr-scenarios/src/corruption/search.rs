//! The last-known-good search: which moments to restore and judge, round by
//! round, until the boundary between clean and corrupt is narrower than the
//! resolution. Pure.
//!
//! The first round tries the interval's start and `K - 1` moments spread
//! after it, so the window's start is known clean (or the search stops: no
//! clean moment in the window). Every later round puts `K` moments evenly
//! inside the interval between the newest clean and the oldest corrupt
//! moment, dividing it by `K + 1`.

use chrono::{DateTime, Duration, Utc};
use dr_core::{DrError, DrResult};
use serde::{Deserialize, Serialize};

/// Where the search stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchState {
    /// The newest moment known clean (none before the first round).
    pub clean: Option<DateTime<Utc>>,
    /// The oldest moment known corrupt (at first: when the scope found it).
    pub corrupt: DateTime<Utc>,
    /// The interval's start (the oldest moment searched).
    pub from: DateTime<Utc>,
    pub candidates_per_round: u32,
    pub resolution_seconds: u64,
    /// Rounds done, and the bound printed before the first.
    pub round: u32,
    pub max_rounds: u32,
    /// The moments to judge next; empty when done.
    pub candidates: Vec<DateTime<Utc>>,
    pub done: bool,
    /// The chosen moment once done: the newest clean one.
    pub chosen: Option<DateTime<Utc>>,
    /// Every moment judged, oldest first.
    pub judged: Vec<Verdict>,
}

/// How one candidate moment was judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub at: DateTime<Utc>,
    pub clean: bool,
    #[serde(default)]
    pub round: u32,
}

/// Restores are asked for in whole seconds: every bound and candidate is one.
fn floor_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

fn ceil_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    let floor = floor_seconds(at);
    if floor == at {
        at
    } else {
        floor + Duration::seconds(1)
    }
}

/// The whole seconds a search of `[from, to)` spans: its bounds on whole
/// seconds (the start floored, the end ceiled, as [`start`] puts them), so
/// the plan's bound on rounds and the search's own agree. Truncating the
/// difference instead undercounts by up to 2 s, which at a round's edge is a
/// round fewer than the search takes.
pub fn span_seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (ceil_seconds(to) - floor_seconds(from))
        .num_seconds()
        .max(0) as u64
}

/// Rounds a search of `window_seconds` (whole) takes at most: the first
/// leaves a gap of at most `⌈window / K⌉` between the newest clean and the
/// oldest corrupt moment, each later one at most `⌈gap / (K + 1)⌉`
/// (candidates fall on whole seconds), until the gap is within the
/// resolution: about `1 + log_{K+1}(window / (K · resolution))`.
pub fn rounds_needed(window_seconds: u64, candidates: u32, resolution_seconds: u64) -> u32 {
    let k = u64::from(candidates.max(1));
    let resolution = resolution_seconds.max(1);
    let mut gap = window_seconds.div_ceil(k);
    let mut rounds = 1;
    while gap > resolution {
        gap = gap.div_ceil(k + 1);
        rounds += 1;
    }
    rounds
}

/// The first round over `[from, corrupt)`.
pub fn start(
    from: DateTime<Utc>,
    corrupt: DateTime<Utc>,
    candidates_per_round: u32,
    resolution_seconds: u64,
) -> DrResult<SearchState> {
    if candidates_per_round == 0 || resolution_seconds == 0 {
        return Err(DrError::InvalidInput(
            "the search needs at least one candidate per round and a resolution of at least 1 s"
                .to_owned(),
        ));
    }
    // The bounds on whole seconds: later than a corrupt moment is corrupt too.
    let from = floor_seconds(from);
    let corrupt = ceil_seconds(corrupt);
    if corrupt <= from {
        return Err(DrError::InvalidInput(format!(
            "nothing to search: the interval {} to {} is empty",
            from.to_rfc3339(),
            corrupt.to_rfc3339()
        )));
    }
    let window = (corrupt - from).num_seconds();
    let k = i64::from(candidates_per_round);
    let mut candidates: Vec<DateTime<Utc>> = (0..k)
        .map(|i| from + Duration::seconds(i * window / k))
        .filter(|at| *at < corrupt)
        .collect();
    candidates.dedup();
    Ok(SearchState {
        clean: None,
        corrupt,
        from,
        candidates_per_round,
        resolution_seconds,
        round: 0,
        max_rounds: rounds_needed(
            span_seconds(from, corrupt),
            candidates_per_round,
            resolution_seconds,
        ),
        candidates,
        done: false,
        chosen: None,
        judged: Vec::new(),
    })
}

/// The next state after the current round's verdicts.
pub fn narrow(state: &SearchState, verdicts: &[Verdict]) -> DrResult<SearchState> {
    if state.done {
        return Ok(state.clone());
    }
    for v in verdicts {
        if !state.candidates.contains(&v.at) {
            return Err(DrError::InvalidInput(format!(
                "a verdict for {} which this round did not try",
                v.at.to_rfc3339()
            )));
        }
    }
    if verdicts.len() != state.candidates.len() {
        return Err(DrError::InvalidInput(format!(
            "{} verdicts for {} candidates",
            verdicts.len(),
            state.candidates.len()
        )));
    }
    let mut next = state.clone();
    next.round += 1;
    next.judged.extend(verdicts.iter().map(|v| Verdict {
        round: next.round,
        ..v.clone()
    }));
    next.judged.sort_by_key(|v| v.at);
    // The oldest corrupt moment bounds the search; the newest clean moment
    // before it is the best known.
    if let Some(oldest_corrupt) = verdicts.iter().filter(|v| !v.clean).map(|v| v.at).min() {
        next.corrupt = next.corrupt.min(oldest_corrupt);
    }
    next.clean = verdicts
        .iter()
        .filter(|v| v.clean && v.at < next.corrupt)
        .map(|v| v.at)
        .chain(state.clean)
        .max();
    let Some(clean) = next.clean else {
        return Err(DrError::NotFound(format!(
            "no clean moment in the searched window: the oldest, {}, is already corrupt; restore from an older backup by hand",
            state.from.to_rfc3339()
        )));
    };
    let gap = (next.corrupt - clean).num_seconds();
    if gap <= state.resolution_seconds as i64 || next.round >= next.max_rounds {
        next.done = true;
        next.chosen = Some(clean);
        next.candidates = Vec::new();
        return Ok(next);
    }
    let k = i64::from(state.candidates_per_round);
    let mut candidates: Vec<DateTime<Utc>> = (1..=k)
        .map(|i| clean + Duration::seconds(i * gap / (k + 1)))
        .filter(|at| *at > clean && *at < next.corrupt)
        .collect();
    candidates.dedup();
    if candidates.is_empty() {
        // Whole seconds leave nothing between the bounds: that is the finest
        // a restore can tell apart.
        next.done = true;
        next.chosen = Some(clean);
    }
    next.candidates = candidates;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("time")
    }

    /// Runs a whole search against a database corrupted at `damage`.
    fn search(window: i64, damage: i64, k: u32, resolution: u64) -> SearchState {
        let mut state = start(t(0), t(window), k, resolution).expect("start");
        let bound = state.max_rounds;
        while !state.done {
            let verdicts: Vec<Verdict> = state
                .candidates
                .iter()
                .map(|at| Verdict {
                    at: *at,
                    clean: *at < t(damage),
                    round: 0,
                })
                .collect();
            state = narrow(&state, &verdicts).expect("narrow");
            assert!(state.round <= bound, "never more rounds than printed");
        }
        state
    }

    #[test]
    fn the_bound_is_the_rounds_a_search_takes() {
        // (window s, K, resolution s) -> rounds
        let cases = [
            (7200, 3, 300, 3), // 2400 -> 600 -> 150
            (7200, 1, 300, 6), // 7200 -> 3600 -> 1800 -> 900 -> 450 -> 225
            (600, 4, 300, 1),  // 150 already
            (86400, 8, 60, 4), // 10800 -> 1200 -> 134 -> 15
            (3, 3, 1, 1),
            (100, 3, 1, 4), // 34 -> 9 -> 3 -> 1
        ];
        for (window, k, resolution, rounds) in cases {
            assert_eq!(
                rounds_needed(window, k, resolution),
                rounds,
                "{window} s, K={k}, {resolution} s"
            );
        }
    }

    #[test]
    fn the_chosen_moment_is_clean_and_within_the_resolution_of_the_damage() {
        for (window, damage, k, resolution) in [
            (7200, 5000, 3, 300),
            (7200, 1, 3, 300),
            (7200, 7199, 2, 60),
            (60, 31, 3, 1),
            (86_400, 43_210, 8, 60),
            (20, 7, 1, 1),
        ] {
            let state = search(window, damage, k, resolution);
            let chosen = state.chosen.expect("chosen");
            assert!(chosen < t(damage), "clean: {chosen} before {damage}");
            assert!(
                (t(damage) - chosen).num_seconds() <= resolution as i64,
                "{window}/{damage}/{k}/{resolution}: {chosen} within {resolution} s"
            );
            assert!(state.round <= state.max_rounds);
            assert!(state.judged.iter().all(|v| v.clean == (v.at < t(damage))));
        }
    }

    #[test]
    fn no_damage_position_takes_more_rounds_than_printed() {
        for (window, k, resolution) in [(97, 1, 1), (600, 3, 7), (3601, 4, 60), (50, 7, 2)] {
            for damage in 1..window {
                let state = search(window, damage, k, resolution);
                assert!(state.round <= state.max_rounds);
                let chosen = state.chosen.expect("chosen");
                assert!(chosen < t(damage));
                assert!((t(damage) - chosen).num_seconds() <= resolution as i64);
            }
        }
    }

    #[test]
    fn a_window_that_starts_corrupt_has_no_clean_moment() {
        let state = start(t(0), t(600), 3, 60).expect("start");
        assert_eq!(
            state.candidates[0],
            t(0),
            "the window's start is tried first"
        );
        let all_corrupt: Vec<Verdict> = state
            .candidates
            .iter()
            .map(|at| Verdict {
                at: *at,
                clean: false,
                round: 0,
            })
            .collect();
        let err = narrow(&state, &all_corrupt).expect_err("no clean moment");
        assert_eq!(err.name(), "NotFound");
    }

    #[test]
    fn bad_searches_and_foreign_verdicts_are_refused() {
        assert!(start(t(0), t(600), 0, 60).is_err());
        assert!(start(t(0), t(600), 3, 0).is_err());
        assert!(start(t(600), t(600), 3, 60).is_err());
        let state = start(t(0), t(600), 2, 60).expect("start");
        let foreign = vec![
            Verdict {
                at: t(1),
                clean: true,
                round: 0,
            },
            Verdict {
                at: t(300),
                clean: true,
                round: 0,
            },
        ];
        assert_eq!(
            narrow(&state, &foreign).expect_err("foreign").name(),
            "InvalidInput"
        );
        assert_eq!(
            narrow(&state, &[]).expect_err("missing").name(),
            "InvalidInput"
        );
    }
}
