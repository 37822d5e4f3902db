//! The time the domain reads.
//!
//! Handlers and adapters read [`now`] instead of `Utc::now()`. In a Lambda,
//! in `drctl run` and in every test it is the wall clock. Inside
//! [`simulate`] (what the runner does around each task of a simulated
//! execution, `drctl estimate`) it is that execution's virtual time, which
//! the simulated AWS moves forward with [`advance`] by what each call would
//! take on AWS. Decisions that compare times (deadlines, ages, RTO) then see
//! the same clock as the resources they look at, and a simulated recovery of
//! hours runs in milliseconds.
//!
//! The virtual time belongs to the task (tokio's task-local storage), so
//! concurrent branches (Map iterations, Parallel branches) each keep their
//! own; work spawned onto another task reads the wall clock.

use std::cell::Cell;
use std::future::Future;

use chrono::{DateTime, Duration, Utc};

tokio::task_local! {
    static SIMULATED: Cell<DateTime<Utc>>;
}

/// The current time: the simulated one inside [`simulate`], the wall
/// clock elsewhere.
pub fn now() -> DateTime<Utc> {
    SIMULATED.try_with(Cell::get).unwrap_or_else(|_| Utc::now())
}

/// Whether the caller runs inside [`simulate`].
pub fn is_simulated() -> bool {
    SIMULATED.try_with(|_| ()).is_ok()
}

/// Moves the simulated time forward by `by` (what an operation takes);
/// nothing outside a simulation, where time passes by itself. A negative
/// duration is ignored: time never runs backwards.
pub fn advance(by: Duration) {
    if by <= Duration::zero() {
        return;
    }
    let _ = SIMULATED.try_with(|now| now.set(now.get() + by));
}

/// Waits `by`: in a simulation the virtual time moves on at once; outside,
/// the task sleeps.
pub async fn sleep(by: Duration) {
    if is_simulated() {
        advance(by);
    } else if let Ok(real) = by.to_std() {
        tokio::time::sleep(real).await;
    }
}

/// Runs `work` with the simulated time starting at `start`; returns its
/// output and the simulated time when it ended.
pub async fn simulate<F: Future>(start: DateTime<Utc>, work: F) -> (F::Output, DateTime<Utc>) {
    SIMULATED
        .scope(Cell::new(start), async move {
            let output = work.await;
            (output, now())
        })
        .await
}

/// How long something took, on the same clock as [`now`]: the wall clock,
/// or the simulated one inside a simulation.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    started: DateTime<Utc>,
}

impl Stopwatch {
    pub fn start() -> Self {
        Stopwatch { started: now() }
    }

    /// Seconds since [`Stopwatch::start`] (never negative).
    pub fn seconds(&self) -> f64 {
        ((now() - self.started).num_milliseconds().max(0) as f64) / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[tokio::test]
    async fn outside_a_simulation_it_is_the_wall_clock_and_advance_does_nothing() {
        assert!(!is_simulated());
        let before = Utc::now();
        advance(Duration::hours(5));
        let read = now();
        assert!(read >= before && read - before < Duration::minutes(1));
    }

    #[tokio::test]
    async fn a_simulation_starts_where_told_and_ends_where_its_work_advanced_it() {
        let start = at("2026-11-29T03:00:00Z");
        let (seen, end) = simulate(start, async {
            let first = now();
            let watch = Stopwatch::start();
            advance(Duration::milliseconds(1500));
            assert_eq!(watch.seconds(), 1.5);
            advance(Duration::milliseconds(-1500));
            advance(Duration::minutes(7));
            sleep(Duration::seconds(30)).await;
            advance(Duration::seconds(-10));
            (first, now(), is_simulated())
        })
        .await;
        assert_eq!(seen.0, start);
        assert_eq!(seen.1, at("2026-11-29T03:07:31.500Z"));
        assert!(seen.2);
        assert_eq!(end, at("2026-11-29T03:07:31.500Z"));
        assert!(!is_simulated(), "the simulation ends with its scope");
    }

    #[tokio::test]
    async fn concurrent_simulations_keep_their_own_time() {
        let start = at("2026-11-29T03:00:00Z");
        let one = simulate(start, async {
            advance(Duration::minutes(1));
            tokio::task::yield_now().await;
            now()
        });
        let two = simulate(start, async {
            tokio::task::yield_now().await;
            advance(Duration::minutes(9));
            now()
        });
        let ((a, _), (b, _)) = tokio::join!(one, two);
        assert_eq!(a, at("2026-11-29T03:01:00Z"));
        assert_eq!(b, at("2026-11-29T03:09:00Z"));
    }
}
