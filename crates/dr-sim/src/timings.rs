//! How long AWS takes: one table, every figure with where it comes from.
//!
//! Each duration is a range; a simulated run draws from it uniformly (a
//! seeded generator, so a run is reproducible). Where AWS says an operation
//! depends on size, the range has a fixed part and a per-GiB part. Figures
//! marked "documented" quote AWS's documentation; "reported" ones are what
//! operators widely report and AWS does not promise: they are the weakest
//! part of any estimate, and the first thing to replace with a measurement
//! from a real drill (`drctl report` of an AWS run gives the real ones).

use dr_core::{DrError, DrResult};
use rand::Rng;
use serde::Serialize;

/// The longest figure `--set` takes: 30 days.
pub const MAX_SET_SECONDS: f64 = 30.0 * 86400.0;

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
    /// Its name for [`Timings::set`].
    pub key: &'static str,
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
    /// StartInstanceRefresh until the refresh is `InProgress` and launches
    /// its first replacement. Reported: seconds to a minute.
    pub refresh_pending: Range,
    /// The instance warmup an instance refresh waits after a replacement
    /// is `InService` before it moves on. Documented default: the group's
    /// DefaultInstanceWarmup, else its health check grace period (EC2 Auto
    /// Scaling User Guide, "Understand the default values for an instance
    /// refresh"); 300 s is the console's grace period, and our adapter
    /// sets no warmup of its own.
    pub instance_warmup: Range,
    /// An old server's deregistration from the load balancer before it is
    /// terminated. Documented: the target group's deregistration delay,
    /// 300 s by default, ended early when the target has no in-flight
    /// requests (Elastic Load Balancing User Guide, "Deregistration
    /// delay").
    pub deregistration_delay: Range,
    /// ModifyDBInstance with a new MasterUserPassword until the instance
    /// takes it: RDS applies it asynchronously, the instance showing
    /// `resetting-master-credentials` meanwhile. Reported: seconds to a
    /// couple of minutes.
    pub master_password: Range,
    /// A Deployment's rolling update until every pod runs the new template
    /// and is ready (image pulled, the app started, readiness passing).
    /// Reported: a minute or a few for a handful of replicas.
    pub pod_rollout: Range,
    /// A migration job from creation to completion (a pod scheduled, the
    /// image pulled, `manage.py migrate`). Reported.
    pub migration_job: Range,
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
            refresh_pending: Range::fixed(5.0, 60.0),
            instance_warmup: Range::fixed(60.0, 300.0),
            deregistration_delay: Range::fixed(0.0, 300.0),
            master_password: Range::fixed(10.0, 120.0),
            pod_rollout: Range::fixed(45.0, 240.0),
            migration_job: Range::fixed(20.0, 120.0),
            approval_answer: Range::fixed(120.0, 900.0),
            throttle_rate: 0.0,
        }
    }

    /// The range named `key` (a row's key), to replace.
    fn range_mut(&mut self, key: &str) -> Option<&mut Range> {
        Some(match key {
            "api_call" => &mut self.api_call,
            "lambda_warm" => &mut self.lambda_warm,
            "lambda_cold" => &mut self.lambda_cold,
            "sql_session" => &mut self.sql_session,
            "promote_modifying" => &mut self.promote_modifying,
            "promote_rebooting" => &mut self.promote_rebooting,
            "create_replica" => &mut self.create_replica,
            "restore_creating" => &mut self.restore_creating,
            "restore_backing_up" => &mut self.restore_backing_up,
            "pitr_replay_per_hour" => &mut self.pitr_replay_per_hour,
            "create_snapshot" => &mut self.create_snapshot,
            "copy_cross_region" => &mut self.copy_cross_region,
            "delete_instance" => &mut self.delete_instance,
            "fence" => &mut self.fence,
            "dns_insync" => &mut self.dns_insync,
            "integrity_check" => &mut self.integrity_check,
            "instance_launch" => &mut self.instance_launch,
            "refresh_pending" => &mut self.refresh_pending,
            "instance_warmup" => &mut self.instance_warmup,
            "deregistration_delay" => &mut self.deregistration_delay,
            "master_password" => &mut self.master_password,
            "pod_rollout" => &mut self.pod_rollout,
            "migration_job" => &mut self.migration_job,
            "approval_answer" => &mut self.approval_answer,
            _ => return None,
        })
    }

    /// Replaces one figure with the operator's own (a measurement from a
    /// real run, or a setting of theirs): `key=MIN..MAX` seconds, or
    /// `key=S` for a fixed duration; a figure that grows with size keeps
    /// its per-GiB part. Refused (`InvalidInput`) unless the key is a
    /// row's and `0 <= MIN <= MAX <= 30 days`.
    pub fn set(&mut self, spec: &str) -> DrResult<()> {
        let bad = |why: String| {
            Err(DrError::InvalidInput(format!(
                "--set {spec:?}: {why} (as deregistration_delay=0..30; keys: {})",
                Timings::aws()
                    .rows()
                    .iter()
                    .map(|r| r.key)
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        };
        let Some((key, value)) = spec.split_once('=') else {
            return bad("not KEY=MIN..MAX".to_owned());
        };
        let parse = |v: &str| v.trim().parse::<f64>().ok().filter(|x| x.is_finite());
        let (min, max) = match value.split_once("..") {
            Some((lo, hi)) => (parse(lo), parse(hi)),
            None => (parse(value), parse(value)),
        };
        let (Some(min), Some(max)) = (min, max) else {
            return bad(format!("{value:?} is not seconds, MIN..MAX"));
        };
        if !(0.0 <= min && min <= max && max <= MAX_SET_SECONDS) {
            return bad(format!(
                "{min}..{max} is not 0 <= MIN <= MAX <= {MAX_SET_SECONDS}"
            ));
        }
        let Some(range) = self.range_mut(key.trim()) else {
            return bad(format!("no figure is named {:?}", key.trim()));
        };
        range.min = min;
        range.max = max;
        Ok(())
    }

    /// The table as rows, with the basis of each figure.
    pub fn rows(&self) -> Vec<TimingRow> {
        vec![
            row("api_call", "API call", self.api_call, "reported"),
            row(
                "lambda_warm",
                "Lambda invoke (warm)",
                self.lambda_warm,
                "reported",
            ),
            row(
                "lambda_cold",
                "Lambda cold start",
                self.lambda_cold,
                "reported",
            ),
            row(
                "sql_session",
                "SQL session over TLS",
                self.sql_session,
                "reported",
            ),
            row(
                "promote_modifying",
                "promotion: modifying",
                self.promote_modifying,
                "documented (several minutes or longer); split reported",
            ),
            row(
                "promote_rebooting",
                "promotion: rebooting",
                self.promote_rebooting,
                "documented (RDS reboots before available); runbook 10-15 min in all",
            ),
            row(
                "create_replica",
                "read replica created",
                self.create_replica,
                "reported; runbook allows 30 min",
            ),
            row(
                "restore_creating",
                "restore: creating",
                self.restore_creating,
                "reported",
            ),
            row(
                "restore_backing_up",
                "restore: backing-up",
                self.restore_backing_up,
                "reported",
            ),
            row(
                "pitr_replay_per_hour",
                "PITR log replay per hour",
                self.pitr_replay_per_hour,
                "reported",
            ),
            row(
                "create_snapshot",
                "snapshot created",
                self.create_snapshot,
                "reported",
            ),
            row(
                "copy_cross_region",
                "cross-region copy",
                self.copy_cross_region,
                "documented (can take hours); rate reported",
            ),
            row(
                "delete_instance",
                "instance deleted",
                self.delete_instance,
                "reported",
            ),
            row("fence", "fence (security group)", self.fence, "reported"),
            row(
                "dns_insync",
                "Route 53 change INSYNC",
                self.dns_insync,
                "documented: within 60 s",
            ),
            row(
                "integrity_check",
                "integrity check",
                self.integrity_check,
                "reported scan rates",
            ),
            row(
                "instance_launch",
                "app instance healthy",
                self.instance_launch,
                "reported: boot, app start, health checks",
            ),
            row(
                "refresh_pending",
                "instance refresh: pending",
                self.refresh_pending,
                "reported",
            ),
            row(
                "instance_warmup",
                "instance refresh: warmup",
                self.instance_warmup,
                "documented: the group's warmup or grace period (console 300 s)",
            ),
            row(
                "deregistration_delay",
                "deregistration delay",
                self.deregistration_delay,
                "documented: 300 s default, early without in-flight requests",
            ),
            row(
                "master_password",
                "master password applied",
                self.master_password,
                "reported: RDS applies it asynchronously",
            ),
            row(
                "pod_rollout",
                "deployment rolled out",
                self.pod_rollout,
                "reported: pods replaced, readiness passing",
            ),
            row(
                "migration_job",
                "migration job done",
                self.migration_job,
                "reported",
            ),
            row(
                "approval_answer",
                "approval answered",
                self.approval_answer,
                "runbook: primary on-call responds within 15 min",
            ),
        ]
    }
}

fn row(key: &'static str, operation: &'static str, range: Range, basis: &'static str) -> TimingRow {
    TimingRow {
        key,
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
    fn every_row_can_be_set_and_nonsense_is_refused() {
        let mut timings = Timings::aws();
        for row in Timings::aws().rows() {
            timings
                .set(&format!("{}=1..2", row.key))
                .unwrap_or_else(|e| panic!("{}: {e}", row.key));
        }
        assert!(timings
            .rows()
            .iter()
            .all(|r| r.range.min == 1.0 && r.range.max == 2.0));
        // A sized figure keeps its per-GiB part.
        assert_eq!(
            timings.create_replica.per_gib_max,
            Timings::aws().create_replica.per_gib_max
        );
        let mut t = Timings::aws();
        t.set(" deregistration_delay = 30 ").expect("fixed");
        assert_eq!(t.deregistration_delay, Range::fixed(30.0, 30.0));
        // (spec, why it is refused)
        let refused = [
            ("deregistration_delay", "no value"),
            ("nothing=1..2", "unknown key"),
            ("fence=2..1", "min above max"),
            ("fence=-1..2", "negative"),
            ("fence=1..NaN", "not a number"),
            ("fence=1..inf", "infinite"),
            ("fence=0..9999999999", "beyond 30 days"),
            ("fence=a..b", "not seconds"),
            ("=1..2", "no key"),
        ];
        for (spec, why) in refused {
            let mut t = Timings::aws();
            let e = t.set(spec).expect_err(why);
            assert!(matches!(e, DrError::InvalidInput(_)), "{spec}: {e:?}");
            assert_eq!(t, Timings::aws(), "{spec}: nothing changed");
        }
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
