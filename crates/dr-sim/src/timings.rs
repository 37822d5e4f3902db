//! How long AWS takes: one table, every figure with where it comes from.
//!
//! Each duration is a range; a simulated run draws from it uniformly (a
//! seeded generator, so a run is reproducible). Where AWS says an operation
//! depends on size, the range has a fixed part and a per-GiB part. Figures
//! marked "documented" quote AWS's documentation; "reported" ones are what
//! operators widely report and AWS does not promise: they are the weakest
//! part of any estimate, and the first thing to replace with a measurement
//! from a real drill (`drctl report` of an AWS run gives the real ones).

use rand::Rng;
use serde::Serialize;

/// A duration drawn uniformly from `[min, max]` seconds, plus `per_gib`
/// seconds (also a range) for each GiB of data the operation handles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Range {
    pub min: f64,
    pub max: f64,
    pub per_gib_min: f64,
    pub per_gib_max: f64,
}

impl Range {
    pub const fn fixed(min: f64, max: f64) -> Self {
        Range {
            min,
            max,
            per_gib_min: 0.0,
            per_gib_max: 0.0,
        }
    }

    pub const fn sized(min: f64, max: f64, per_gib_min: f64, per_gib_max: f64) -> Self {
        Range {
            min,
            max,
            per_gib_min,
            per_gib_max,
        }
    }

    /// One draw, in seconds, for `gib` GiB of data.
    pub fn sample(&self, rng: &mut impl Rng, gib: f64) -> f64 {
        let draw = |rng: &mut dyn rand::RngCore, lo: f64, hi: f64| {
            if hi > lo {
                rng.gen_range(lo..=hi)
            } else {
                lo
            }
        };
        let fixed = draw(rng, self.min, self.max);
        let per = draw(rng, self.per_gib_min, self.per_gib_max);
        (fixed + per * gib.max(0.0)).max(0.0)
    }

    /// The longest it can take for `gib` GiB.
    pub fn worst(&self, gib: f64) -> f64 {
        self.max + self.per_gib_max * gib.max(0.0)
    }
}

/// One row of the table, for printing: what, how long, and the source.
#[derive(Debug, Clone, Serialize)]
pub struct TimingRow {
    pub operation: &'static str,
    pub range: Range,
    pub basis: &'static str,
}

/// The durations of everything the simulated AWS does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timings {
    /// A control-plane API call (RDS, Route 53, Secrets Manager, SNS, S3,
    /// DynamoDB) answered, from inside the region. Reported: tens to a few
    /// hundred milliseconds for control planes, single-digit ms for
    /// DynamoDB; one range covers them, the figures are small beside the
    /// asynchronous operations.
    pub api_call: Range,
    /// A Lambda invocation's overhead on a warm function. Reported.
    pub lambda_warm: Range,
    /// The first invocation of a function in a run (a cold start of a Rust
    /// `provided.al2023` function: no VM to boot). Reported.
    pub lambda_cold: Range,
    /// A PostgreSQL session over TLS (TCP, TLS 1.3, SCRAM) and one short
    /// query, inside a VPC. Reported.
    pub sql_session: Range,
    /// RDS PromoteReadReplica, the `modifying` phase (replication stops,
    /// the instance is reconfigured). Documented: "When you promote a read
    /// replica, RDS reboots the DB instance before making it available. The
    /// promotion process can take several minutes or longer to complete,
    /// depending on the size of the read replica."
    /// (docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ReadRepl.Promote.html).
    /// The split between the two phases is reported, not documented.
    pub promote_modifying: Range,
    /// The `rebooting` phase of a promotion (same source). The runbook's
    /// own figure for the whole promotion is 10-15 minutes (RUNBOOK.md,
    /// "Wait for status to change to available").
    pub promote_rebooting: Range,
    /// CreateDBInstanceReadReplica until `available`: RDS snapshots the
    /// source and restores it, then the replica catches up. Reported:
    /// tens of minutes, growing with size; the runbook allows 30 minutes.
    pub create_replica: Range,
    /// RestoreDBInstanceFromDBSnapshot, `creating`. Reported: 10-30 minutes
    /// for tens of GiB; data then loads lazily from S3 (documented for EBS
    /// volumes made from snapshots: "the storage blocks must be pulled down
    /// from Amazon S3 ... before you can access them", EBS User Guide,
    /// "Initialize Amazon EBS volumes"), which the integrity check pays.
    pub restore_creating: Range,
    /// The `backing-up` phase after a restore (RDS takes the new instance's
    /// first automated backup before it is `available`). Reported.
    pub restore_backing_up: Range,
    /// RestoreDBInstanceToPointInTime: the restore plus replaying the
    /// transaction logs from the snapshot before the restore time, per hour
    /// of logs replayed. Reported: minutes per hour of a busy database.
    pub pitr_replay_per_hour: Range,
    /// CreateDBSnapshot until `available`: incremental after the first,
    /// so mostly fixed. Reported.
    pub create_snapshot: Range,
    /// CopyDBSnapshot across regions, `pending`/`copying` until
    /// `available`. Documented: copies of large snapshots "can take
    /// hours"; the per-GiB part is reported (tens of MiB/s between regions).
    pub copy_cross_region: Range,
    /// DeleteDBInstance until gone (not on any recovery's critical path).
    pub delete_instance: Range,
    /// ModifyDBInstance moving an instance to the quarantine security group
    /// (fencing), applied immediately. Reported: seconds to a minute.
    pub fence: Range,
    /// Route 53 ChangeResourceRecordSets, `PENDING` until `INSYNC`.
    /// Documented: "changes generally propagate to all Route 53 name
    /// servers within 60 seconds" (Route 53 API Reference, GetChange).
    pub dns_insync: Range,
    /// The integrity verifier over a restored database: row counts, foreign
    /// keys and named checks, per GiB, on volumes still loading from S3.
    /// Reported scan rates of 100-500 MiB/s on gp3 storage.
    pub integrity_check: Range,
    /// An Auto Scaling instance from launch to healthy behind the load
    /// balancer: boot, the application's start, and the health checks that
    /// must pass. Reported.
    pub instance_launch: Range,
    /// A person answering an approval after it is published. The runbook's
    /// escalation path gives the primary on-call 15 minutes to respond.
    pub approval_answer: Range,
    /// The chance that one control-plane call is throttled (ThrottlingException):
    /// 0 unless configured (`--throttle`).
    pub throttle_rate: f64,
}

impl Timings {
    /// The table of AWS's documented or widely reported figures.
    pub fn aws() -> Self {
        Timings {
            api_call: Range::fixed(0.02, 0.25),
            lambda_warm: Range::fixed(0.005, 0.04),
            lambda_cold: Range::fixed(0.05, 0.4),
            sql_session: Range::fixed(0.02, 0.12),
            promote_modifying: Range::fixed(60.0, 240.0),
            promote_rebooting: Range::fixed(60.0, 300.0),
            create_replica: Range::sized(600.0, 1200.0, 6.0, 18.0),
            restore_creating: Range::sized(480.0, 1200.0, 3.0, 9.0),
            restore_backing_up: Range::fixed(120.0, 600.0),
            pitr_replay_per_hour: Range::fixed(60.0, 300.0),
            create_snapshot: Range::sized(120.0, 600.0, 0.5, 3.0),
            copy_cross_region: Range::sized(600.0, 1800.0, 15.0, 45.0),
            delete_instance: Range::fixed(300.0, 900.0),
            fence: Range::fixed(5.0, 60.0),
            dns_insync: Range::fixed(10.0, 60.0),
            integrity_check: Range::sized(10.0, 60.0, 2.0, 10.0),
            instance_launch: Range::fixed(90.0, 300.0),
            approval_answer: Range::fixed(120.0, 900.0),
            throttle_rate: 0.0,
        }
    }

    /// The table as rows, with the basis of each figure.
    pub fn rows(&self) -> Vec<TimingRow> {
        vec![
            row("API call", self.api_call, "reported"),
            row("Lambda invoke (warm)", self.lambda_warm, "reported"),
            row("Lambda cold start", self.lambda_cold, "reported"),
            row("SQL session over TLS", self.sql_session, "reported"),
            row(
                "promotion: modifying",
                self.promote_modifying,
                "documented (several minutes or longer); split reported",
            ),
            row(
                "promotion: rebooting",
                self.promote_rebooting,
                "documented (RDS reboots before available); runbook 10-15 min in all",
            ),
            row(
                "read replica created",
                self.create_replica,
                "reported; runbook allows 30 min",
            ),
            row("restore: creating", self.restore_creating, "reported"),
            row("restore: backing-up", self.restore_backing_up, "reported"),
            row(
                "PITR log replay per hour",
                self.pitr_replay_per_hour,
                "reported",
            ),
            row("snapshot created", self.create_snapshot, "reported"),
            row(
                "cross-region copy",
                self.copy_cross_region,
                "documented (can take hours); rate reported",
            ),
            row("instance deleted", self.delete_instance, "reported"),
            row("fence (security group)", self.fence, "reported"),
            row(
                "Route 53 change INSYNC",
                self.dns_insync,
                "documented: within 60 s",
            ),
            row(
                "integrity check",
                self.integrity_check,
                "reported scan rates",
            ),
            row(
                "app instance healthy",
                self.instance_launch,
                "reported: boot, app start, health checks",
            ),
            row(
                "approval answered",
                self.approval_answer,
                "runbook: primary on-call responds within 15 min",
            ),
        ]
    }
}

fn row(operation: &'static str, range: Range, basis: &'static str) -> TimingRow {
    TimingRow {
        operation,
        range,
        basis,
    }
}

/// The status RDS reports while a read replica is promoted, as
/// DescribeDBInstances shows them in order, each with whether the instance
/// still names its replication source. The simulated RDS goes through it,
/// and the aws-smithy-mocks test of the RDS adapter feeds it to the real
/// adapter: one description of AWS for both.
pub const PROMOTION_SEQUENCE: [(&str, bool); 3] = [
    ("modifying", true),
    ("rebooting", false),
    ("available", false),
];

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn draws_stay_in_their_range_and_grow_with_size() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let cases = [
            (Range::fixed(10.0, 60.0), 0.0, 10.0, 60.0),
            (Range::fixed(5.0, 5.0), 100.0, 5.0, 5.0),
            (Range::sized(100.0, 200.0, 1.0, 2.0), 50.0, 150.0, 300.0),
            (Range::sized(100.0, 200.0, 1.0, 2.0), -3.0, 100.0, 200.0),
        ];
        for (range, gib, lo, hi) in cases {
            for _ in 0..200 {
                let d = range.sample(&mut rng, gib);
                assert!((lo..=hi).contains(&d), "{range:?} at {gib} GiB drew {d}");
            }
            assert_eq!(range.worst(gib), hi, "{range:?}");
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_durations() {
        let draw = |seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            (0..5)
                .map(|_| Timings::aws().create_replica.sample(&mut rng, 50.0))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn route53_is_insync_within_its_documented_minute() {
        assert!(Timings::aws().dns_insync.worst(0.0) <= 60.0);
        assert!(Timings::aws()
            .rows()
            .iter()
            .all(|r| r.range.min <= r.range.max && !r.basis.is_empty()));
    }
}
