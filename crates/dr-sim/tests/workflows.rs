//! The real state machines on the simulated account: what a user checks
//! (where DNS points, the registry, what was notified, what the report
//! says, no lock left), in milliseconds, without PostgreSQL or moto; and
//! a fault at every task.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use dr_core::*;
use dr_runner::sam::SamTemplate;
use dr_runner::{Fault, FaultRule, LoadOptions, StateMachine};
use dr_scenarios::Function;
use dr_sim::estimate::{self, Failure, Machines, Options, SimulatedRun};
use dr_sim::{endpoint_address, SimConfig, SimServices};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Loaded {
    scenario: &'static str,
    machine: StateMachine,
    children: Vec<(String, String, StateMachine)>,
    template: SamTemplate,
    definition: Value,
}

/// The scenario's state machine with the template's substitutions, and the
/// template's other machines (its possible children).
fn load(scenario: &'static str) -> Loaded {
    let template = SamTemplate::load(&repo().join("template.yaml")).expect("template");
    let known: BTreeSet<String> = Function::ALL
        .iter()
        .map(|f| f.logical_id().to_owned())
        .collect();
    let mut main = None;
    let mut children = Vec::new();
    for declared in template.state_machines().expect("state machines") {
        let path = template.dir().join(&declared.definition_uri);
        let text = std::fs::read_to_string(&path).expect("definition");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".asl.json"))
            .expect("name")
            .to_owned();
        let machine = StateMachine::load(
            &text,
            &LoadOptions {
                substitutions: declared.substitutions,
                known_functions: Some(known.clone()),
            },
        )
        .expect("loads");
        if name == scenario {
            main = Some((machine, serde_json::from_str(&text).expect("json")));
        } else {
            children.push((declared.arn, name, machine));
        }
    }
    let (machine, definition) = main.expect("the scenario's machine");
    Loaded {
        scenario,
        machine,
        children,
        template,
        definition,
    }
}

fn options(template: &SamTemplate) -> Options {
    Options {
        runs: 1,
        databases: 1,
        config: SimConfig::default(),
        memory_mb: template.function_memory_sizes(),
        timeouts: template.function_timeouts(),
        failure: Failure::Failed,
    }
}

impl Loaded {
    /// One run on the simulated account of the scenario's sample input
    /// (events/<scenario>.json), with `options` and `faults`.
    async fn run(&self, options: Options, seed: u64, faults: Vec<FaultRule>) -> SimulatedRun {
        let input = input(&format!("{}.json", self.scenario));
        self.run_input(&input, options, seed, faults).await
    }

    /// One run of `input`.
    async fn run_input(
        &self,
        input: &Value,
        options: Options,
        seed: u64,
        faults: Vec<FaultRule>,
    ) -> SimulatedRun {
        let machines = Machines {
            scenario: self.scenario,
            machine: &self.machine,
            children: &self.children,
        };
        estimate::run(&machines, input, &options, seed, faults)
            .await
            .expect("ran")
    }
}

/// A permanent error (`Unsafe`) at the first call of `task`.
fn unsafe_at(task: &str) -> Vec<FaultRule> {
    vec![FaultRule {
        task: task.to_owned(),
        call: 1,
        until_call: None,
        fault: Fault::Fail {
            error: "Unsafe".to_owned(),
            cause: format!("injected at {task}"),
        },
    }]
}

fn input(file: &str) -> Value {
    serde_json::from_slice(&std::fs::read(repo().join("events").join(file)).expect("input"))
        .expect("json")
}

async fn failover(seed: u64, faults: Vec<FaultRule>) -> SimulatedRun {
    failover_after(Failure::Failed, seed, faults).await
}

async fn failover_after(failure: Failure, seed: u64, faults: Vec<FaultRule>) -> SimulatedRun {
    let loaded = load("database-failover");
    let options = Options {
        failure,
        ..options(&loaded.template)
    };
    loaded.run(options, seed, faults).await
}

async fn record(run: &SimulatedRun) -> String {
    let dns = SimServices::new(run.world.clone());
    Dns::get_record(&dns, "muejam.internal", "db.muejam.internal", "CNAME")
        .await
        .expect("read")
        .expect("exists")
        .value
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("id")
}

/// A primary RDS reports failed is failed over without asking; one that
/// is silent while RDS says available only once a person approves.
#[tokio::test]
async fn a_lost_primary_fails_over_to_its_replica_with_dns_the_registry_a_page_and_a_report() {
    for (failure, seed) in [
        (Failure::Failed, 1),
        (Failure::Failed, 2),
        (Failure::Hung, 3),
        (Failure::Hung, 4),
    ] {
        let run = failover_after(failure, seed, Vec::new()).await;
        let asked = run.measure.split.approval_seconds > 0.0;
        assert_eq!(
            asked,
            failure == Failure::Hung,
            "seed {seed}: {:?}",
            run.measure
        );
        assert!(
            run.result.succeeded(),
            "seed {seed}: {:?} {:?}",
            run.result.error,
            run.result.cause
        );
        assert_eq!(
            record(&run).await,
            endpoint_address(&id("muejam-db-prod-replica"), "us-east-1"),
            "seed {seed}: DNS points at the promoted replica"
        );
        let services = SimServices::new(run.world.clone());
        let topology = TopologyRegistry::get(&services, "muejam")
            .await
            .expect("read")
            .expect("registered");
        assert_eq!(
            topology.primary,
            id("muejam-db-prod-replica"),
            "seed {seed}"
        );
        assert!(
            topology.fenced.contains(&id("muejam-db-prod")),
            "seed {seed}: {topology:?}"
        );
        assert!(
            RecoveryLock::holders(&services)
                .await
                .expect("locks")
                .is_empty(),
            "seed {seed}: no lock is left"
        );
        let notified: Vec<String> = run
            .world
            .notifications()
            .into_iter()
            .map(|(_, n)| n.subject)
            .collect();
        assert!(!notified.is_empty(), "seed {seed}: on-call was told");
        let m = &run.measure;
        assert_eq!(m.outcome.as_deref(), Some("succeeded"), "seed {seed}");
        let rto = m.rto_seconds.expect("the report measures the RTO");
        // A promotion of minutes happened inside it, in simulated time.
        assert!(
            rto > dr_sim::timings::Timings::aws().promote_modifying.min,
            "seed {seed}: {rto}"
        );
        assert!((m.split.total() - rto).abs() < 0.01, "seed {seed}: {m:?}");
        let promotion = m
            .waits
            .iter()
            .find(|w| w.kind == "promotion")
            .expect("the promotion was waited for");
        let poll = promotion.poll_interval_seconds.expect("polled");
        assert!(
            promotion.beyond_seconds <= poll + 1.0,
            "seed {seed}: {promotion:?}"
        );
        assert!(m.cost_usd > 0.0 && m.transitions > 10, "seed {seed}: {m:?}");
    }
}

#[tokio::test]
async fn the_same_seed_gives_the_same_run() {
    let a = failover(7, Vec::new()).await.measure;
    let b = failover(7, Vec::new()).await.measure;
    assert_eq!(a.rto_seconds, b.rto_seconds);
    assert_eq!(a.split, b.split);
    assert_eq!(a.transitions, b.transitions);
}

/// Every Task state of a definition, branches included.
fn tasks(definition: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(states: &Value, out: &mut Vec<String>) {
        let Some(states) = states.as_object() else {
            return;
        };
        for (name, state) in states {
            if state["Type"] == "Task" {
                out.push(name.clone());
            }
            for branch in state["Branches"].as_array().into_iter().flatten() {
                walk(&branch["States"], out);
            }
        }
    }
    walk(&definition["States"], &mut out);
    out
}

/// A permanent error at any task: the run ends, pages, releases its lock,
/// and DNS points at the old primary or at a promoted, available one —
/// never at a replica or an instance still promoting.
#[tokio::test]
async fn a_permanent_error_at_any_task_pages_frees_the_lock_and_dns_only_points_at_a_primary() {
    let loaded = load("database-failover");
    let all = tasks(&loaded.definition);
    assert!(all.len() > 10, "{all:?}");
    let mut outcomes = BTreeMap::new();
    for task in &all {
        let run = failover(3, unsafe_at(task)).await;
        let pointed = record(&run).await;
        let target = [id("muejam-db-prod"), id("muejam-db-prod-replica")]
            .into_iter()
            .find(|i| endpoint_address(i, "us-east-1") == pointed)
            .unwrap_or_else(|| panic!("{task}: DNS points at {pointed}"));
        let described = at_end(&run, async {
            DatabaseControlPlane::describe_instance(
                &dr_sim::SimRds::new(run.world.clone(), "us-east-1"),
                &target,
            )
            .await
        })
        .await;
        let described = described.expect("described");
        assert!(
            target == id("muejam-db-prod") || described.is_standalone_and_available(),
            "{task}: DNS points at {target}, which is {described:?}"
        );
        // Released, or (its release failed) held only by this run, which
        // has ended: the next run takes a dead holder's lock over.
        let holders = holders_of_the_run(&run, task).await;
        if task != "ReleaseLock" && task != "ReleaseLockConclusion" {
            assert!(holders.is_empty(), "{task}: the lock is released");
        }
        assert!(
            !run.world.notifications().is_empty(),
            "{task}: somebody was told"
        );
        outcomes.insert(task.clone(), run.measure.outcome.clone());
    }
    // Errors before the switch end the run failed; a failed report or
    // page afterwards leaves the recovery standing (its report says so).
    assert!(
        outcomes.values().any(|o| o.as_deref() == Some("failed")),
        "{outcomes:#?}"
    );
}

/// The quarterly drill over as many databases as one drill takes: every
/// test passes, nothing it made is left, and each database's restore was
/// verified.
#[tokio::test]
async fn a_drill_of_a_full_batch_passes_and_leaves_nothing_behind() {
    let loaded = load("dr-drill");
    let options = Options {
        databases: dr_scenarios::drill::MAX_DATABASES,
        ..options(&loaded.template)
    };
    let run = loaded.run(options, 11, Vec::new()).await;
    let after = drill_aftermath(&run).await;
    after.assert_nothing_left("the full batch");
    let databases = after.report["databases"].as_array().expect("databases");
    assert_eq!(databases.len(), dr_scenarios::drill::MAX_DATABASES);
    // Each database's data-corruption rehearsal ran the real recovery on
    // the copy the failover left: it found the damage, kept the rows
    // before it and discarded the one after. With AWS's point-in-time
    // restore times its RTO lands either side of the runbook's 4 h (a
    // search restores whole instances, round after round): a miss fails
    // that test, and the drill, by that measure alone.
    // Each database's region-restore rehearsal restored muejam's newest
    // verified copy in the backup region, verified and deleted it, with
    // AWS's restore times.
    for db in databases {
        let test = &db["tests"].as_array().expect("tests")[4];
        let d = &test["details"];
        assert_eq!(test["name"], "region_restore_test", "{test:#}");
        assert_eq!(test["status"], "SUCCESSFUL", "{test:#}");
        assert_eq!(d["workflow"], "region-failover", "{d:#}");
        assert_eq!(d["outcome"], "succeeded", "{d:#}");
        assert_eq!(d["left_in_backup_region"], serde_json::json!([]), "{d:#}");
        assert_eq!(d["definition_sha256"], d["deployed_sha256"], "{d:#}");
        assert!(d["rto_seconds"].as_f64().is_some_and(|s| s > 0.0), "{d:#}");
    }
    let mut missed = 0;
    for db in databases {
        let test = &db["tests"].as_array().expect("tests")[3];
        let d = &test["details"];
        assert_eq!(test["name"], "corruption_test", "{test:#}");
        assert_eq!(d["workflow"], "data-corruption", "{d:#}");
        assert_eq!(d["outcome"], "succeeded", "{d:#}");
        assert_eq!(d["rows_lost"], 0, "{d:#}");
        assert_eq!(d["after_damage_discarded"], true, "{d:#}");
        assert_eq!(d["definition_sha256"], d["deployed_sha256"], "{d:#}");
        assert_ne!(d["new_primary"], d["replaced_primary"], "{d:#}");
        if test["status"] != "SUCCESSFUL" {
            let reason = test["reason"].as_str().unwrap_or_default();
            assert!(
                reason.starts_with("the data-corruption run ended succeeded (FAILED): RTO ")
                    && reason.ends_with("over its objective of 4.0 h")
                    && !reason.contains(';'),
                "a corruption rehearsal fails only by its RTO: {reason}"
            );
            assert!(
                d["rto_seconds"].as_f64().is_some_and(|s| s > 4.0 * 3600.0),
                "{d:#}"
            );
            missed += 1;
        }
    }
    assert_eq!(
        run.result.succeeded(),
        missed == 0,
        "{:?} {:?}\n{:#}",
        run.result.error,
        run.result.cause,
        after.report
    );
    assert_eq!(
        run.measure.outcome.as_deref(),
        Some(if missed == 0 { "passed" } else { "failed" }),
        "{:#}",
        after.report
    );
    // Each database's failover test is a rehearsal of the real failover
    // on the drill's copy, judged from that run's own report.
    for db in databases {
        let test = failover_test_of(db);
        assert_eq!(test["status"], "SUCCESSFUL", "{test:#}");
        let d = &test["details"];
        assert_eq!(d["workflow"], "database-failover", "{d:#}");
        assert_eq!(d["outcome"], "succeeded", "{d:#}");
        assert!(d["rto_seconds"].as_f64().is_some_and(|s| s > 0.0), "{d:#}");
        assert_eq!(d["rows_lost"].as_u64().map(|n| n <= 1), Some(true), "{d:#}");
        assert_eq!(d["definition_sha256"], d["deployed_sha256"], "{d:#}");
        assert_eq!(
            d["definition_sha256"].as_str().map(str::len),
            Some(64),
            "{d:#}"
        );
    }
    // The copy's primary was cut off while RDS said available: each
    // rehearsal asked, and the drill answered, as itself.
    let services = SimServices::new(run.world.clone());
    assert!(
        run.world
            .notifications()
            .iter()
            .any(|(_, n)| n.attributes.contains_key("drill")),
        "the rehearsals notified as a drill's"
    );
    assert!(!run.world.approvals().is_empty(), "the rehearsals asked");
    for (name, _) in run.world.approvals() {
        let (request, _) = ApprovalStore::get(&services, &name)
            .await
            .expect("read")
            .expect("asked");
        let by = request.answer.map(|a| a.by).unwrap_or_default();
        assert!(by.starts_with("drill "), "{name}: answered by {by:?}");
    }
}

/// A permanent error at any task of the rehearsed failover: the drill's
/// failover test says FAILED unless the failover still succeeded and
/// passed (a failed step of its aftercare), and whatever happened,
/// nothing the drill made is left, production's record is where it was,
/// and nobody is paged.
#[tokio::test]
async fn a_permanent_error_at_any_task_of_the_rehearsed_failover_fails_it_and_leaves_nothing() {
    let failover = load("database-failover");
    let drill = load("dr-drill");
    // Each fault names the failover's state: `Report` is the failover's,
    // not the drill's own.
    let all: Vec<String> = tasks(&failover.definition)
        .into_iter()
        .map(|t| format!("database-failover/{t}"))
        .collect();
    assert!(
        all.contains(&"database-failover/Report".to_owned()),
        "{all:?}"
    );
    let mut statuses = BTreeMap::new();
    for task in &all {
        let run = drill
            .run(options(&drill.template), 5, unsafe_at(task))
            .await;
        let after = drill_aftermath(&run).await;
        after.assert_nothing_left(task);
        let databases = after.report["databases"].as_array().unwrap_or_else(|| {
            panic!(
                "{task}: no drill report: {:?} {:?}",
                run.result.error, run.result.cause
            )
        });
        let test = failover_test_of(&databases[0]);
        let d = &test["details"];
        let expected = if d["outcome"] == "succeeded" && test["reason"].is_null() {
            "SUCCESSFUL"
        } else {
            "FAILED"
        };
        assert_eq!(test["status"], expected, "{task}: {test:#}");
        if test["status"] == "FAILED" {
            assert!(test["reason"].is_string(), "{task}: {test:#}");
        }
        assert_eq!(
            record(&run).await,
            endpoint_address(&id("muejam-db-prod"), "us-east-1"),
            "{task}: production's record is untouched"
        );
        statuses.insert(task.clone(), test["status"].clone());
    }
    for task in [
        "ValidateInput",
        "AcquireLock",
        "ConfirmFailure",
        "PromoteReplica",
        "SwitchDns",
        "VerifyNewPrimary",
        // The failover's own report failed: its outcome is unknown.
        "Report",
    ] {
        let task = format!("database-failover/{task}");
        assert_eq!(statuses[&task], "FAILED", "{task}: {statuses:#?}");
    }
}

fn failover_test_of(db: &Value) -> &Value {
    db["tests"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "failover_test"))
        .expect("failover_test")
}

/// The drill's report, and what of the drill is left on the simulated
/// account an hour after it ended.
struct DrillAftermath {
    report: Value,
    instances: Vec<String>,
    copies: Vec<String>,
    records: Vec<String>,
    locks: Vec<LockHolder>,
    pages: Vec<Page>,
}

impl DrillAftermath {
    fn assert_nothing_left(&self, what: &str) {
        assert!(self.instances.is_empty(), "{what}: {:?}", self.instances);
        assert!(
            self.copies.is_empty(),
            "{what}: the copies left the registry: {:?}",
            self.copies
        );
        assert!(
            self.records.is_empty(),
            "{what}: the drill records are removed: {:?}",
            self.records
        );
        assert!(
            self.locks.is_empty(),
            "{what}: no lock is left: {:?}",
            self.locks
        );
        assert!(
            self.pages.is_empty(),
            "{what}: a drill pages nobody: {:?}",
            self.pages
        );
    }
}

async fn drill_aftermath(run: &SimulatedRun) -> DrillAftermath {
    let services = SimServices::new(run.world.clone());
    let mut report = Value::Null;
    for key in ReportStore::list(&services, "dr-drill/")
        .await
        .expect("list")
    {
        if key.ends_with(".json") && !key.ends_with("latest.json") {
            let body = ReportStore::get(&services, &key)
                .await
                .expect("get")
                .expect("body");
            report = serde_json::from_slice(&body).expect("json");
        }
    }
    // Both regions: the region-restore rehearsal restores in us-west-2.
    let mut instances = Vec::new();
    for region in ["us-east-1", "us-west-2"] {
        let (listed, _) =
            dr_core::clock::simulate(run.result.stop_date + chrono::Duration::hours(1), async {
                DatabaseControlPlane::list_instances(&dr_sim::SimRds::new(
                    run.world.clone(),
                    region,
                ))
                .await
            })
            .await;
        instances.extend(listed.expect("listed"));
    }
    DrillAftermath {
        report,
        instances: instances
            .into_iter()
            .map(|i| i.instance_id.as_str().to_owned())
            .filter(|i| i.starts_with("drill-"))
            .collect(),
        copies: TopologyRegistry::list(&services)
            .await
            .expect("list")
            .into_iter()
            .filter(|t| t.drill_id().is_some())
            .map(|t| t.database)
            .collect(),
        records: run
            .world
            .record_names()
            .into_iter()
            .filter(|r| r.starts_with("drill-"))
            .collect(),
        locks: RecoveryLock::holders(&services).await.expect("locks"),
        pages: run.world.pages(),
    }
}

/// us-east-1 is down: the region failover restores the newest verified copy
/// in us-west-2, verifies it, raises the application's servers there, and
/// points the record at it once a person approves.
#[tokio::test]
async fn a_region_failure_is_recovered_in_the_backup_region() {
    let loaded = load("region-failover");
    let run = loaded.run(options(&loaded.template), 5, Vec::new()).await;
    assert!(
        run.result.succeeded(),
        "{:?} {:?}",
        run.result.error,
        run.result.cause
    );
    let pointed = record(&run).await;
    assert!(
        pointed.contains(".us-west-2.rds.amazonaws.com"),
        "the record points into the backup region: {pointed}"
    );
    let services = SimServices::new(run.world.clone());
    let fleet = at_end(&run, async {
        AppFleet::describe_fleet(
            &services,
            &FleetRef {
                auto_scaling_group: "muejam-dr-app".into(),
                target_group_arn: None,
                region: Some("us-west-2".into()),
            },
        )
        .await
    })
    .await
    .expect("fleet");
    assert_eq!(fleet.healthy_targets, 4, "{fleet:?}");
    let m = &run.measure;
    assert_eq!(m.outcome.as_deref(), Some("succeeded"), "{m:?}");
    assert!(m.rto_seconds.is_some(), "{m:?}");
    assert!(m.split.approval_seconds > 0.0, "a person approved: {m:?}");
    assert!(
        m.split.check_seconds > 0.0,
        "the restore was verified: {m:?}"
    );
    assert!(
        m.waits.iter().any(|w| w.kind == "restore"),
        "the restore was waited for: {m:?}"
    );
}

/// A permanent error at any task of the region failover: the record points
/// at the old primary or at a restore in the backup region that is
/// available (never at one still being made), and a lock is left only by a
/// failed release, held by the ended run.
#[tokio::test]
async fn a_permanent_error_at_any_region_task_leaves_the_record_on_a_serving_instance() {
    let loaded = load("region-failover");
    let all = tasks(&loaded.definition);
    assert!(all.len() > 10, "{all:?}");
    let old = endpoint_address(&id("muejam-db-prod"), "us-east-1");
    let mut switched = 0;
    for task in &all {
        let run = loaded
            .run(options(&loaded.template), 5, unsafe_at(task))
            .await;
        let pointed = record(&run).await;
        if pointed != old {
            switched += 1;
            let restored = pointed
                .split('.')
                .next()
                .map(id)
                .unwrap_or_else(|| panic!("{task}: {pointed}"));
            let described = at_end(&run, async {
                DatabaseControlPlane::describe_instance(
                    &dr_sim::SimRds::new(run.world.clone(), "us-west-2"),
                    &restored,
                )
                .await
            })
            .await;
            let described = described.unwrap_or_else(|e| panic!("{task}: {pointed}: {e}"));
            assert_eq!(
                described.status,
                InstanceStatus::Available,
                "{task}: the record points at {restored}, which is {described:?}"
            );
        }
        holders_of_the_run(&run, task).await;
        assert_told(&run, task, "RegionFailoverStateMachine");
    }
    assert!(pages_on_failure("SecurityBreachStateMachine"));
    assert!(
        !pages_on_failure("DatabaseFailoverStateMachine"),
        "it pages by itself"
    );
    // Errors after the switch leave the record on the verified restore.
    assert!(
        switched > 0 && switched < all.len(),
        "{switched} of {}",
        all.len()
    );
}

/// Somebody was told of `run` (a fault at `task`): by the run itself, or
/// (it failed before it could report) by the template's alarm on
/// `state_machine`'s failed executions.
fn assert_told(run: &SimulatedRun, task: &str, state_machine: &str) {
    assert!(
        !run.world.notifications().is_empty()
            || (run.result.status == dr_runner::ExecutionStatus::Failed
                && pages_on_failure(state_machine)),
        "{task}: somebody was told"
    );
}

/// The locks held when `run` (a fault at `task`) ended, each held by the
/// run itself: a dead holder's lock the next run takes over.
async fn holders_of_the_run(run: &SimulatedRun, task: &str) -> Vec<LockHolder> {
    let services = SimServices::new(run.world.clone());
    let holders = RecoveryLock::holders(&services).await.expect("locks");
    assert!(
        holders.iter().all(|h| h.owner.contains(&run.result.name)),
        "{task}: {holders:?}"
    );
    holders
}

/// `work` run at the moment `run` ended.
async fn at_end<T>(run: &SimulatedRun, work: impl std::future::Future<Output = T>) -> T {
    dr_core::clock::simulate(run.result.stop_date, work).await.0
}

/// Whether the template has an alarm on `state_machine`'s failed
/// executions that pages the alerts topic.
fn pages_on_failure(state_machine: &str) -> bool {
    let text = std::fs::read_to_string(repo().join("template.yaml")).expect("template");
    let lines: Vec<&str> = text.lines().collect();
    lines.iter().enumerate().any(|(i, line)| {
        line.trim() == "Type: AWS::CloudWatch::Alarm" && {
            let block: Vec<&str> = lines[i..]
                .iter()
                .take_while(|l| {
                    !l.starts_with("  ") || l.starts_with("    ") || l.trim().is_empty()
                })
                .take(40)
                .copied()
                .collect();
            let has = |needle: &str| block.iter().any(|l| l.trim() == needle);
            has("MetricName: ExecutionsFailed")
                && has(&format!("Value: !Ref {state_machine}"))
                && has("AlarmActions: [!Ref AlertsTopic]")
        }
    })
}

/// The app-server recovery's request, as the app alarms' rule makes it
/// (the sample of its plan function).
fn app_request() -> Value {
    input("functions/app-plan.json")["request"].clone()
}

/// The group `muejam-app` in us-east-1 as Auto Scaling describes it when
/// `run` ended.
async fn app_fleet(run: &SimulatedRun) -> FleetStatus {
    let services = SimServices::new(run.world.clone());
    at_end(run, async {
        AppFleet::describe_fleet(
            &services,
            &FleetRef {
                auto_scaling_group: "muejam-app".into(),
                target_group_arn: None,
                region: Some("us-east-1".into()),
            },
        )
        .await
    })
    .await
    .expect("fleet")
}

/// The health URL's answer when `run` ended.
async fn health_at_end(run: &SimulatedRun) -> HealthObservation {
    let services = SimServices::new(run.world.clone());
    at_end(run, async {
        HealthCheck::check(&services, "https://api.muejam.com/health", 2000, 200).await
    })
    .await
    .expect("health")
}

/// Every app server fails its health check: the recovery raises the group
/// to its floor, refreshes it, and ends once the replacements pass and the
/// health URL answers 200; the RTO covers the refresh AWS ran.
#[tokio::test]
async fn failed_app_servers_are_replaced_until_the_health_url_answers() {
    let loaded = load("app-server-recovery");
    for seed in [1, 2, 3] {
        let run = loaded
            .run_input(&app_request(), options(&loaded.template), seed, Vec::new())
            .await;
        assert!(
            run.result.succeeded(),
            "seed {seed}: {:?} {:?}",
            run.result.error,
            run.result.cause
        );
        let fleet = app_fleet(&run).await;
        assert_eq!(fleet.desired_capacity, 4, "seed {seed}: {fleet:?}");
        assert!(fleet.healthy_targets >= 4, "seed {seed}: {fleet:?}");
        assert_eq!(
            fleet.unhealthy_targets, 0,
            "seed {seed}: every broken server was replaced: {fleet:?}"
        );
        assert!(
            fleet
                .instances
                .iter()
                .all(|i| !i.instance_id.starts_with("i-home")),
            "seed {seed}: {fleet:?}"
        );
        assert!(health_at_end(&run).await.healthy, "seed {seed}");
        let services = SimServices::new(run.world.clone());
        assert!(
            RecoveryLock::holders(&services)
                .await
                .expect("locks")
                .is_empty(),
            "seed {seed}"
        );
        let m = &run.measure;
        assert_eq!(
            m.outcome.as_deref(),
            Some("succeeded"),
            "seed {seed}: {m:?}"
        );
        let rto = m.rto_seconds.expect("measured");
        let t = dr_sim::timings::Timings::aws();
        assert!(
            rto >= t.instance_launch.min + t.instance_warmup.min,
            "seed {seed}: the RTO covers a launch and a warmup: {rto}"
        );
        assert!(
            m.waits.iter().any(|w| w.kind == "instance-refresh"),
            "seed {seed}: the refresh was waited for: {m:?}"
        );
    }
}

/// A permanent error at any task of the app-server recovery: the group is
/// never lowered below what it had, a lock is left only by a failed
/// release (held by the ended run), and somebody is told.
#[tokio::test]
async fn a_permanent_error_at_any_app_task_never_lowers_the_fleet_and_tells_someone() {
    let loaded = load("app-server-recovery");
    let all = tasks(&loaded.definition);
    assert!(all.len() > 5, "{all:?}");
    let mut recovered = 0;
    for task in &all {
        let run = loaded
            .run_input(
                &app_request(),
                options(&loaded.template),
                2,
                unsafe_at(task),
            )
            .await;
        let fleet = app_fleet(&run).await;
        assert!(fleet.desired_capacity >= 2, "{task}: {fleet:?}");
        let holders = holders_of_the_run(&run, task).await;
        if !task.starts_with("ReleaseLock") {
            assert!(holders.is_empty(), "{task}: {holders:?}");
        }
        assert_told(&run, task, "AppServerRecoveryStateMachine");
        if health_at_end(&run).await.healthy {
            recovered += 1;
        }
    }
    // A fault after the refresh began leaves AWS to finish it.
    assert!(recovered > 0, "{recovered} of {}", all.len());
}

/// Whether `user` logs in to muejam-db-prod with `secret_id`'s current
/// password when `run` ended.
async fn logs_in_with(run: &SimulatedRun, secret_id: &str) -> bool {
    logs_in_to(run, &id("muejam-db-prod"), secret_id).await
}

/// Whether `instance` takes `secret_id`'s current password when `run`
/// ended.
async fn logs_in_to(run: &SimulatedRun, instance: &InstanceId, secret_id: &str) -> bool {
    let services = SimServices::new(run.world.clone());
    let value = Secrets::get_secret(&services, secret_id)
        .await
        .expect("the secret");
    let credentials: Value =
        serde_json::from_str(secrecy::ExposeSecret::expose_secret(&value)).expect("json");
    let target = DatabaseTarget {
        endpoint: Endpoint {
            address: endpoint_address(instance, "us-east-1"),
            port: 5432,
        },
        database: "muejam".into(),
        username: credentials["username"].as_str().expect("user").to_owned(),
        password: secrecy::SecretString::from(
            credentials["password"]
                .as_str()
                .expect("password")
                .to_owned(),
        ),
        connect_timeout_seconds: 5,
        statement_timeout_ms: 5000,
        tls: DatabaseTls::default(),
    };
    at_end(run, async {
        SqlTarget::probe(&services, &target, ProbeKind::Read).await
    })
    .await
    .expect("probed")
    .healthy
}

/// The WAF IP set `id`'s addresses when `run` ended.
async fn blocked(run: &SimulatedRun, id: &str) -> Vec<String> {
    let services = SimServices::new(run.world.clone());
    Firewall::get_ip_set(
        &services,
        &IpSetRef {
            name: "set".into(),
            id: id.into(),
            scope: "REGIONAL".into(),
        },
    )
    .await
    .expect("the set")
    .addresses
}

/// How many messages the users' topic got when `run` ended, and the
/// distinct users they went to, ascending.
fn told_users(run: &SimulatedRun) -> (usize, Vec<i64>) {
    let told = run.world.user_messages();
    let mut users: Vec<i64> = told.iter().map(|(_, u, _)| *u).collect();
    users.sort_unstable();
    users.dedup();
    (told.len(), users)
}

/// A breach from the documentation addresses: every intruded user's key is
/// revoked and nobody else's, both passwords are rotated (the secrets'
/// current values log in, the old ones do not), both IP sets block their
/// addresses beside what they held, every affected user is told once after
/// a person approves, and the report measures the containment.
#[tokio::test]
async fn a_breach_is_contained_with_new_passwords_blocked_addresses_and_revoked_keys() {
    let loaded = load("security-breach");
    for seed in [1, 2, 3] {
        let run = loaded
            .run(options(&loaded.template), seed, Vec::new())
            .await;
        assert!(
            run.result.succeeded(),
            "seed {seed}: {:?} {:?}",
            run.result.error,
            run.result.cause
        );
        let m = &run.measure;
        assert_eq!(
            m.outcome.as_deref(),
            Some("succeeded"),
            "seed {seed}: {m:?}"
        );
        assert!(m.rto_seconds.is_some(), "seed {seed}: containment measured");
        for secret in ["muejam/db/master", "muejam/db/app"] {
            assert!(logs_in_with(&run, secret).await, "seed {seed}: {secret}");
        }
        let v4 = blocked(&run, "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111").await;
        for address in ["192.0.2.66/32", "203.0.113.10/32", "203.0.113.12/32"] {
            assert!(v4.iter().any(|a| a == address), "seed {seed}: {v4:?}");
        }
        let v6 = blocked(&run, "b2c3d4e5-6789-01bc-def0-EXAMPLE22222").await;
        assert!(
            v6.iter().any(|a| a == "2001:db8::bad:1/128"),
            "seed {seed}: {v6:?}"
        );
        assert!(
            v6.iter().all(|a| a.contains(':')),
            "seed {seed}: one IP version per set: {v6:?}"
        );
        let (told, users) = told_users(&run);
        assert_eq!(
            users,
            (1..=dr_sim::INTRUDED_USERS).collect::<Vec<_>>(),
            "seed {seed}"
        );
        assert_eq!(told, users.len(), "seed {seed}: each told once");
        let keys = run.world.active_api_keys();
        assert!(
            (1..=dr_sim::INTRUDED_USERS).all(|u| !keys.contains(&u)),
            "seed {seed}: the intruded users' keys are revoked"
        );
        assert_eq!(
            keys.len() as i64,
            dr_sim::PLATFORM_USERS - dr_sim::INTRUDED_USERS,
            "seed {seed}: nobody else's"
        );
        // Users are told only after a person approves, well after the
        // containment the RTO measures.
        let rto = m.rto_seconds.unwrap_or_default();
        assert!(
            m.elapsed_seconds >= rto + dr_sim::timings::Timings::aws().approval_answer.min,
            "seed {seed}: {m:?}"
        );
    }
}

/// A permanent error at any task of the breach: the secrets' current
/// passwords still log in (the application is never locked out), nobody
/// is told twice, and somebody on call is told.
#[tokio::test]
async fn a_permanent_error_at_any_breach_task_never_locks_the_application_out() {
    let loaded = load("security-breach");
    let all = tasks(&loaded.definition);
    assert!(all.len() > 8, "{all:?}");
    for task in &all {
        let run = loaded
            .run(options(&loaded.template), 4, unsafe_at(task))
            .await;
        for secret in ["muejam/db/master", "muejam/db/app"] {
            assert!(logs_in_with(&run, secret).await, "{task}: {secret}");
        }
        let (told, users) = told_users(&run);
        assert_eq!(told, users.len(), "{task}: nobody told twice");
        assert_told(&run, task, "SecurityBreachStateMachine");
    }
}

/// The application damaged the data three hours before the recovery: the
/// search restores candidates until it finds the last moment without the
/// damage, a person approves the switch, and the record ends on a restore
/// of that moment (within the resolution) that holds no damage, takes the
/// application's writes and has a replica; no candidate is left and the
/// old primary is fenced.
#[tokio::test]
async fn damaged_data_is_replaced_by_the_last_restore_without_the_damage() {
    let loaded = load("data-corruption");
    let request = input("data-corruption.json");
    let resolution = request["resolution_seconds"].as_i64().expect("resolution");
    for seed in [1, 2] {
        let run = loaded
            .run(options(&loaded.template), seed, Vec::new())
            .await;
        assert!(
            run.result.succeeded(),
            "seed {seed}: {:?} {:?}",
            run.result.error,
            run.result.cause
        );
        let m = &run.measure;
        assert_eq!(
            m.outcome.as_deref(),
            Some("succeeded"),
            "seed {seed}: {m:?}"
        );
        assert!(m.rto_seconds.is_some(), "seed {seed}: {m:?}");
        assert!(
            m.split.approval_seconds > 0.0,
            "seed {seed}: a person approved"
        );
        let end = run.result.stop_date;
        let pointed = record(&run).await;
        let restored = pointed
            .split('.')
            .next()
            .map(id)
            .unwrap_or_else(|| panic!("{pointed}"));
        assert_ne!(restored, id("muejam-db-prod"), "seed {seed}");
        let data = run
            .world
            .instance_data(&restored, end)
            .expect("the restore");
        assert!(data.exists && !data.damaged, "seed {seed}: {data:?}");
        assert!(
            data.app_write_grants > 0,
            "seed {seed}: writes given back: {data:?}"
        );
        let damage =
            run.result.start_date - chrono::Duration::hours(dr_sim::estimate::DAMAGE_HOURS_AGO);
        let moment = data.data_as_of.expect("a point-in-time restore");
        assert!(
            moment < damage && damage - moment <= chrono::Duration::seconds(resolution),
            "seed {seed}: restored to {moment}, the damage at {damage}"
        );
        let services = SimServices::new(run.world.clone());
        let topology = TopologyRegistry::get(&services, "muejam")
            .await
            .expect("read")
            .expect("registered");
        assert_eq!(topology.primary, restored, "seed {seed}");
        assert!(
            topology.fenced.contains(&id("muejam-db-prod")),
            "seed {seed}: {topology:?}"
        );
        assert_eq!(topology.replicas.len(), 1, "seed {seed}: {topology:?}");
        // Candidates are deleted (their deletion may still be running).
        let later = end + chrono::Duration::hours(1);
        let left: Vec<InstanceId> = run
            .world
            .instances_at(later)
            .into_iter()
            .filter(|i| {
                ![
                    id("muejam-db-prod"),
                    id("muejam-db-prod-replica"),
                    restored.clone(),
                ]
                .contains(i)
                    && !topology.replicas.contains(i)
            })
            .collect();
        assert!(left.is_empty(), "seed {seed}: left {left:?}");
        assert!(
            RecoveryLock::holders(&services)
                .await
                .expect("locks")
                .is_empty(),
            "seed {seed}"
        );
    }
}

/// A permanent error at any task of the data-corruption recovery (its
/// rounds' tasks too): the record points at the old primary or at a
/// restore without the damage, never at a candidate; the primary it points
/// at takes the application's writes unless the step that gives them back
/// is the one that failed; candidates are swept unless the sweep failed;
/// somebody is told.
#[tokio::test]
async fn a_permanent_error_at_any_corruption_task_never_switches_to_damage_or_leaves_writes_stopped(
) {
    let loaded = load("data-corruption");
    let round = load("data-corruption-round");
    let mut all = tasks(&loaded.definition);
    all.extend(tasks(&round.definition));
    assert!(all.len() > 20, "{all:?}");
    let mut switched = 0;
    for task in &all {
        let run = loaded
            .run(options(&loaded.template), 2, unsafe_at(task))
            .await;
        let end = run.result.stop_date;
        let pointed = record(&run).await;
        let target = pointed
            .split('.')
            .next()
            .map(id)
            .unwrap_or_else(|| panic!("{task}: {pointed}"));
        let data = run
            .world
            .instance_data(&target, end)
            .unwrap_or_else(|| panic!("{task}: {pointed}"));
        if target != id("muejam-db-prod") {
            switched += 1;
            assert!(
                !data.damaged && data.data_as_of.is_some(),
                "{task}: the record points at {target}: {data:?}"
            );
            assert!(
                !target.as_str().starts_with("muejam-db-prod-c"),
                "{task}: a candidate"
            );
        }
        if !["GiveWritesBack", "RestoreGrants"].contains(&task.as_str()) {
            assert!(
                data.app_write_grants > 0,
                "{task}: {target} takes no writes: {data:?}"
            );
        }
        if !task.contains("Sweep") && !task.contains("Delete") {
            let later = end + chrono::Duration::hours(1);
            let candidates: Vec<InstanceId> = run
                .world
                .instances_at(later)
                .into_iter()
                .filter(|i| i.as_str().starts_with("muejam-db-prod-c"))
                .collect();
            assert!(candidates.is_empty(), "{task}: {candidates:?}");
        }
        assert_told(&run, task, "DataCorruptionStateMachine");
    }
    assert!(
        switched > 0 && switched < all.len(),
        "{switched} of {}",
        all.len()
    );
}

/// A planned evacuation while us-east-1 still answers: the application's
/// writes stop on the old primary (and stay stopped there: nothing writes
/// to two primaries), a final snapshot is copied and restored in
/// us-west-2, the record moves there and the new primary takes the writes.
#[tokio::test]
async fn a_planned_evacuation_stops_writes_at_home_and_moves_them_to_the_backup_region() {
    let loaded = load("region-failover");
    let mut request = input("region-failover.json");
    request["mode"] = Value::from("planned");
    request["kms_key_id"] =
        Value::from("arn:aws:kms:us-west-2:123456789012:key/0a1b2c3d-4e5f-6789-abcd-ef0123456789");
    let run = loaded
        .run_input(&request, options(&loaded.template), 8, Vec::new())
        .await;
    assert!(
        run.result.succeeded(),
        "{:?} {:?}",
        run.result.error,
        run.result.cause
    );
    let end = run.result.stop_date;
    let pointed = record(&run).await;
    assert!(
        pointed.contains(".us-west-2.rds.amazonaws.com"),
        "{pointed}"
    );
    let restored = pointed.split('.').next().map(id).expect("id");
    let new = run.world.instance_data(&restored, end).expect("restored");
    assert!(new.exists && new.app_write_grants > 0, "{new:?}");
    let old = run
        .world
        .instance_data(&id("muejam-db-prod"), end)
        .expect("old");
    assert_eq!(
        old.app_write_grants, 0,
        "writes stay stopped at home: {old:?}"
    );
    let m = &run.measure;
    assert_eq!(m.outcome.as_deref(), Some("succeeded"), "{m:?}");
    assert!(
        m.waits.iter().any(|w| w.kind == "copy"),
        "the final snapshot's copy was waited for: {m:?}"
    );
}

/// A breach with a restore from before it: the data-corruption recovery
/// restores the moment before the breach window, whose backup holds the
/// passwords the breach just rotated away; the restore is given the
/// secrets' current ones (RDS applying the master's in its own time)
/// before the switch, so after it both secrets log in to the new primary.
#[tokio::test]
async fn a_restore_from_before_a_breach_takes_the_rotated_passwords() {
    let loaded = load("security-breach");
    let mut request = input("security-breach.json");
    request["restore_before_breach"] = Value::Bool(true);
    for seed in [1, 5] {
        let run = loaded
            .run_input(&request, options(&loaded.template), seed, Vec::new())
            .await;
        assert!(
            run.result.succeeded(),
            "seed {seed}: {:?} {:?}",
            run.result.error,
            run.result.cause
        );
        let pointed = record(&run).await;
        let restored = pointed.split('.').next().map(id).expect("id");
        assert_ne!(restored, id("muejam-db-prod"), "seed {seed}: switched");
        let data = run
            .world
            .instance_data(&restored, run.result.stop_date)
            .expect("restored");
        assert!(
            data.data_as_of.is_some_and(|t| t < run.result.start_date),
            "seed {seed}: {data:?}"
        );
        for secret in ["muejam/db/master", "muejam/db/app"] {
            assert!(
                logs_in_to(&run, &restored, secret).await,
                "seed {seed}: {secret} on {restored}"
            );
        }
        assert!(
            run.measure.rto_seconds.is_some_and(|c| c < 600.0),
            "seed {seed}: the containment, not the restore: {:?}",
            run.measure.rto_seconds
        );
    }
}

/// The deployment's current release and its health URL when `run` ended.
async fn release_at_end(run: &SimulatedRun) -> (DeploymentStatus, HealthObservation) {
    let services = SimServices::new(run.world.clone());
    let deployment = DeploymentRef {
        namespace: "muejam".into(),
        name: "muejam-api".into(),
    };
    let status = at_end(run, async {
        AppDeployment::describe_deployment(&services, &deployment).await
    })
    .await
    .expect("deployment");
    (status, health_at_end(run).await)
}

/// Release 2 answers 500: the rollback unapplies its migration with a job
/// of release 2's image, rolls the deployment back to release 1's template,
/// waits for the rollout, and ends with the health URL answering 200.
#[tokio::test]
async fn a_bad_release_is_rolled_back_with_its_migration_until_health_answers() {
    let loaded = load("deployment-rollback");
    for seed in [1, 2] {
        let run = loaded
            .run(options(&loaded.template), seed, Vec::new())
            .await;
        assert!(
            run.result.succeeded(),
            "seed {seed}: {:?} {:?}",
            run.result.error,
            run.result.cause
        );
        let (status, health) = release_at_end(&run).await;
        assert_eq!(
            status.current.template_hash, "5d4f7b9c6",
            "seed {seed}: release 1's template: {status:?}"
        );
        assert!(health.healthy, "seed {seed}: {health:?}");
        let m = &run.measure;
        assert_eq!(
            m.outcome.as_deref(),
            Some("succeeded"),
            "seed {seed}: {m:?}"
        );
        assert!(
            m.waits.iter().any(|w| w.kind == "migration")
                && m.waits.iter().any(|w| w.kind == "rollout"),
            "seed {seed}: the job and the rollout were waited for: {m:?}"
        );
    }
}

/// A data-corruption recovery that names the application puts it in
/// READ_ONLY_MODE before it stops the writes and lifts it at the end: the
/// deployment's environment ends without it and its health answers 200.
#[tokio::test]
async fn a_corruption_recovery_with_the_app_lifts_read_only_mode_at_the_end() {
    let loaded = load("data-corruption");
    let mut request = input("data-corruption.json");
    request["app"] = serde_json::json!({
        "deployment": {"namespace": "muejam", "name": "muejam-api"},
        "health_url": "https://api.muejam.com/health"
    });
    let run = loaded
        .run_input(&request, options(&loaded.template), 3, Vec::new())
        .await;
    assert!(
        run.result.succeeded(),
        "{:?} {:?}",
        run.result.error,
        run.result.cause
    );
    let (status, health) = release_at_end(&run).await;
    assert!(!status.env.contains_key(READ_ONLY_MODE), "{:?}", status.env);
    assert!(health.healthy, "{health:?}");
    assert!(
        status.revisions.len() > 2,
        "read-only mode was set and lifted: {status:?}"
    );
}
