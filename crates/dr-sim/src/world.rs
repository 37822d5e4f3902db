//! The simulated account: every resource the adapters share, the seeded
//! random source their durations come from, and the record of what AWS
//! spent its time on (the asynchronous operations, with when our polls
//! noticed each had finished).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use dr_core::clock;
use dr_core::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::timings::{Range, Timings};

/// What the simulated account holds when a run starts.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub timings: Timings,
    pub seed: u64,
    /// The size of each database, in GiB.
    pub database_gib: f64,
    pub home_region: String,
    pub backup_region: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            timings: Timings::aws(),
            seed: 1,
            database_gib: 50.0,
            home_region: "us-east-1".to_owned(),
            backup_region: "us-west-2".to_owned(),
        }
    }
}

/// Whether a database answers SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// It answers whenever its status lets it.
    Up,
    /// Its host is gone: connections time out (what a lost instance or an
    /// Availability Zone outage looks like from a client).
    Unreachable,
}

/// One phase of an instance's life: from `from`, its status and source.
#[derive(Debug, Clone)]
pub(crate) struct Phase {
    pub from: DateTime<Utc>,
    pub status: InstanceStatus,
    pub source: Option<InstanceId>,
}

#[derive(Debug, Clone)]
pub(crate) struct SimInstance {
    pub region: String,
    pub id: InstanceId,
    pub created_at: DateTime<Utc>,
    pub availability_zone: String,
    pub tags: Tags,
    pub phases: Vec<Phase>,
    pub gib: f64,
    pub serving: Serving,
    /// Seconds behind its source while it replicates.
    pub lag_seconds: f64,
    /// From when the quarantine security group keeps clients out.
    pub fenced_from: Option<DateTime<Utc>>,
    /// From when it is gone (deleted).
    pub gone_from: Option<DateTime<Utc>>,
    /// Drill markers, with when each is there (written, or replicated).
    pub markers: BTreeMap<String, DateTime<Utc>>,
    pub row_counts: BTreeMap<String, u64>,
    pub network: Option<NetworkPlacement>,
    /// The passwords it takes, by user: each from a moment on (a change
    /// RDS applies asynchronously takes effect later). A user it has no
    /// entry for logs in with any password (restores and replicas the run
    /// makes are reached with the secret they were made with).
    pub logins: BTreeMap<String, Vec<(DateTime<Utc>, SecretString)>>,
    /// Its master user (ModifyDBInstance MasterUserPassword changes it).
    pub master_user: Option<String>,
    /// From when its data holds the damage a data-corruption recovery
    /// searches for (the application's bad writes).
    pub damaged_from: Option<DateTime<Utc>>,
    /// The moment its data is of, when it is a point-in-time restore
    /// (`None`: it takes writes, or took them until they were stopped).
    pub data_as_of: Option<DateTime<Utc>>,
    /// When its application role's writes were revoked (`None`: they run).
    pub writes_stopped_at: Option<DateTime<Utc>>,
    /// The write privileges granted to each role.
    pub grants: BTreeMap<String, BTreeSet<TableGrant>>,
}

impl SimInstance {
    /// Whether its data holds the damage at `now`.
    pub fn damaged_at(&self, now: DateTime<Utc>) -> bool {
        self.damaged_from.is_some_and(|d| d <= now)
    }

    /// The moment its data is of at `now`: a restore's time, else when its
    /// writes stopped, else now.
    pub fn data_moment(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.data_as_of
            .or(self.writes_stopped_at)
            .unwrap_or(now)
            .min(now)
    }

    /// Whether `user` logs in with `password` at `now`.
    pub fn takes(&self, user: &str, password: &str, now: DateTime<Utc>) -> bool {
        match self.logins.get(user) {
            None => true,
            Some(timeline) => timeline
                .iter()
                .rev()
                .find(|(from, _)| *from <= now)
                .is_some_and(|(_, p)| p.expose_secret() == password),
        }
    }

    pub fn phase_at(&self, now: DateTime<Utc>) -> Option<&Phase> {
        self.phases.iter().rev().find(|p| p.from <= now)
    }

    pub fn exists_at(&self, now: DateTime<Utc>) -> bool {
        self.gone_from.is_none_or(|gone| now < gone) && self.created_at <= now
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            address: endpoint_address(&self.id, &self.region),
            port: 5432,
        }
    }

    /// Whether SQL reaches it now (its host is up, its status serves, and
    /// no quarantine keeps us out).
    pub fn answers_sql(&self, now: DateTime<Utc>, down: &BTreeSet<String>) -> bool {
        if down.contains(&self.region) {
            return false;
        }
        let serving_status = self.phase_at(now).is_some_and(|p| {
            matches!(
                p.status,
                InstanceStatus::Available | InstanceStatus::BackingUp | InstanceStatus::Modifying
            )
        });
        self.serving == Serving::Up
            && serving_status
            && self.fenced_from.is_none_or(|f| now < f)
            && self.exists_at(now)
    }
}

/// RDS's endpoint name for an instance.
pub fn endpoint_address(id: &InstanceId, region: &str) -> String {
    format!("{id}.sim0abcdefgh.{region}.rds.amazonaws.com")
}

#[derive(Debug, Clone)]
pub(crate) struct SimSnapshot {
    pub description: SnapshotDescription,
    pub available_from: DateTime<Utc>,
    pub gib: f64,
    /// The rows it holds (what a restore from it has), which RDS does not
    /// report.
    pub rows: BTreeMap<String, u64>,
}

/// One server of an Auto Scaling group: launched at a moment, `InService`
/// and passing the load balancer's check from another, until terminated.
/// A broken one is `InService` but fails the check (its application is
/// down: what the app-server recovery replaces).
#[derive(Debug, Clone)]
pub(crate) struct SimServer {
    pub id: String,
    pub launched: DateTime<Utc>,
    pub healthy_from: DateTime<Utc>,
    pub broken: bool,
    pub terminated_from: Option<DateTime<Utc>>,
}

impl SimServer {
    /// Part of the group at `now` (launched, not yet terminated).
    pub fn live_at(&self, now: DateTime<Utc>) -> bool {
        self.launched <= now && self.terminated_from.is_none_or(|t| now < t)
    }

    /// `InService` at `now` (launched and booted).
    pub fn in_service_at(&self, now: DateTime<Utc>) -> bool {
        self.live_at(now) && self.healthy_from <= now
    }

    /// Passes the load balancer's health check at `now`.
    pub fn passes_at(&self, now: DateTime<Utc>) -> bool {
        self.in_service_at(now) && !self.broken
    }
}

/// An instance refresh, decided when it starts: `Pending` until
/// `in_progress_from`, then `InProgress` until `completes`, then
/// `Successful`.
#[derive(Debug, Clone)]
pub(crate) struct SimRefresh {
    pub id: String,
    pub started: DateTime<Utc>,
    pub in_progress_from: DateTime<Utc>,
    pub completes: DateTime<Utc>,
}

impl SimRefresh {
    pub fn status_at(&self, now: DateTime<Utc>) -> &'static str {
        if now < self.in_progress_from {
            "Pending"
        } else if now < self.completes {
            "InProgress"
        } else {
            "Successful"
        }
    }

    pub fn percentage_at(&self, now: DateTime<Utc>) -> i32 {
        let whole = (self.completes - self.in_progress_from).num_milliseconds();
        let done = (now - self.in_progress_from).num_milliseconds();
        if whole <= 0 || done >= whole {
            100
        } else if done <= 0 {
            0
        } else {
            (done * 100 / whole) as i32
        }
    }
}

/// An Auto Scaling group: its capacity, its servers, and its instance
/// refreshes.
#[derive(Debug, Clone, Default)]
pub(crate) struct SimFleet {
    pub desired: u32,
    pub min: u32,
    pub max: u32,
    pub instances: Vec<SimServer>,
    pub refreshes: Vec<SimRefresh>,
    pub launched: u64,
}

impl SimFleet {
    /// The servers part of the group at `now`.
    pub fn live(&self, now: DateTime<Utc>) -> impl Iterator<Item = &SimServer> {
        self.instances.iter().filter(move |s| s.live_at(now))
    }

    /// A new server's id.
    pub fn next_id(&mut self) -> String {
        self.launched += 1;
        format!("i-{:017x}", self.launched)
    }
}

/// The application's Kubernetes Deployment: its revisions (which of them
/// answer errors), the current template, its environment, the rollout in
/// progress, the Django migrations applied, and the migration jobs.
#[derive(Debug, Clone, Default)]
pub(crate) struct SimDeployment {
    pub revisions: Vec<AppRevision>,
    /// The template hashes whose pods answer 500.
    pub broken: BTreeSet<String>,
    pub current_hash: String,
    /// The template that served before the rollout in progress.
    pub previous_hash: String,
    pub env: BTreeMap<String, String>,
    pub generation: i64,
    pub replicas: u32,
    /// When the rollout of the current template is done.
    pub rolled_out_at: DateTime<Utc>,
    /// Applied migrations, by app, in order.
    pub applied: BTreeMap<String, Vec<String>>,
    /// The migrations each template's image knows, by app.
    pub known: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Jobs by name: (finishes at, app, target).
    pub jobs: BTreeMap<String, (DateTime<Utc>, String, String)>,
}

impl SimDeployment {
    /// The template serving at `now`: the current one once rolled out.
    pub fn serving_hash(&self, now: DateTime<Utc>) -> &str {
        if now >= self.rolled_out_at {
            &self.current_hash
        } else {
            &self.previous_hash
        }
    }

    /// A new rollout of `hash` from `now`, done after `took`.
    pub fn roll_out(&mut self, hash: &str, now: DateTime<Utc>, took: Duration) {
        self.previous_hash = self.serving_hash(now).to_owned();
        self.current_hash = hash.to_owned();
        self.generation += 1;
        self.rolled_out_at = now + took;
    }
}

/// What [`World::instance_data`] says of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceData {
    pub exists: bool,
    pub damaged: bool,
    pub data_as_of: Option<DateTime<Utc>>,
    pub app_write_grants: usize,
}

/// One version of a secret and its staging labels.
#[derive(Debug, Clone)]
pub(crate) struct SimSecretVersion {
    pub id: String,
    pub value: SecretString,
    pub stages: BTreeSet<String>,
}

/// A WAF IP set: its addresses (one IP version), and the lock token an
/// update must name.
#[derive(Debug, Clone)]
pub(crate) struct SimIpSet {
    pub ip_version: String,
    pub addresses: Vec<String>,
    pub lock_token: u64,
}

/// The platform's data the breach works on (in its primary database):
/// API keys by id (user, active), and the audit log.
#[derive(Debug, Clone, Default)]
pub(crate) struct SimPlatform {
    pub api_keys: BTreeMap<i64, (i64, bool)>,
    pub audit: Vec<AuditRow>,
}

/// An asynchronous AWS operation: when it began and finished, and when one
/// of our calls first saw it finished (`None`: nobody looked).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AsyncOperation {
    pub kind: &'static str,
    pub resource: String,
    pub started: DateTime<Utc>,
    pub completed: DateTime<Utc>,
    pub observed: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub(crate) struct State {
    pub instances: BTreeMap<InstanceId, SimInstance>,
    pub snapshots: BTreeMap<(String, SnapshotId), SimSnapshot>,
    /// By (zone, name, type).
    pub records: BTreeMap<(String, String, String), DnsRecord>,
    pub changes: BTreeMap<String, DateTime<Utc>>,
    /// Each secret's versions, with their staging labels.
    pub secrets: BTreeMap<String, Vec<SimSecretVersion>>,
    /// WAF IP sets by id.
    pub ip_sets: BTreeMap<String, SimIpSet>,
    /// The platform's API keys and audit log (the first database's).
    pub platform: SimPlatform,
    /// Kubernetes Deployments by (namespace, name).
    pub deployments: BTreeMap<(String, String), SimDeployment>,
    /// Messages sent to the users' topic: (topic, user, notification id).
    pub user_messages: Vec<(String, i64, String)>,
    /// The notification ledger, by (incident, user).
    pub ledger: BTreeMap<(String, i64), LedgerEntry>,
    pub topologies: BTreeMap<String, Topology>,
    pub approvals: BTreeMap<String, (ApprovalRequest, SecretString)>,
    /// The pages raised: each would start a climb of the escalation path
    /// (a page-escalation execution, which the estimate does not run: it
    /// comes after the recovery's end).
    pub pages: Vec<Page>,
    pub journal: BTreeMap<(String, String), JournalEntry>,
    pub locks: BTreeMap<String, LockHolder>,
    pub executions: BTreeMap<String, ExecutionState>,
    pub notifications: Vec<(DateTime<Utc>, Notification)>,
    pub reports: BTreeMap<String, Vec<u8>>,
    pub metrics: Vec<(String, MetricDatum)>,
    pub operations: Vec<AsyncOperation>,
    /// When the integrity verifier ran.
    pub checks: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Regions whose services do not answer (a region failure).
    pub down_regions: BTreeSet<String>,
    /// Auto Scaling groups by (region, name).
    pub fleets: BTreeMap<(String, String), SimFleet>,
    /// Functions invoked at least once (their next invocations are warm).
    pub warm: BTreeSet<String>,
    pub next_change: u64,
}

/// The simulated account, shared by every adapter of one run.
pub struct World {
    pub config: SimConfig,
    state: Mutex<State>,
    rng: Mutex<StdRng>,
    /// The runner's task tokens, once the estimate has made its runner:
    /// what a step answers a waiting task through.
    pub(crate) tokens: std::sync::OnceLock<dr_runner::TaskTokens>,
    /// The digest of each state machine the run deployed, by ARN: the one
    /// definition each runs (the simulated account has one deployment).
    pub(crate) definitions: std::sync::OnceLock<std::collections::BTreeMap<String, String>>,
}

impl World {
    pub fn new(config: SimConfig) -> Arc<World> {
        let rng = StdRng::seed_from_u64(config.seed);
        Arc::new(World {
            config,
            state: Mutex::new(State::default()),
            rng: Mutex::new(rng),
            tokens: std::sync::OnceLock::new(),
            definitions: std::sync::OnceLock::new(),
        })
    }

    pub(crate) fn state(&self) -> DrResult<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| DrError::Internal("the simulated account's state is poisoned".into()))
    }

    /// One draw of `range` for `gib` GiB, as a duration.
    pub fn draw(&self, range: Range, gib: f64) -> Duration {
        let seconds = match self.rng.lock() {
            Ok(mut rng) => range.sample(&mut *rng, gib),
            Err(_) => range.worst(gib),
        };
        Duration::milliseconds((seconds * 1000.0).round() as i64)
    }

    fn chance(&self, p: f64) -> bool {
        p > 0.0
            && self
                .rng
                .lock()
                .is_ok_and(|mut rng| rng.gen_bool(p.min(1.0)))
    }

    /// A control-plane call: it takes an API call's time, and is throttled
    /// at the configured rate (ThrottlingException, as AWS answers).
    pub fn api_call(&self, operation: &str) -> DrResult<()> {
        clock::advance(self.draw(self.config.timings.api_call, 0.0));
        if self.chance(self.config.timings.throttle_rate) {
            return Err(DrError::Throttled(format!(
                "{operation}: Rate exceeded (simulated ThrottlingException)"
            )));
        }
        Ok(())
    }

    /// A data-plane call (DynamoDB, SNS, S3, Secrets Manager): an API
    /// call's time, never throttled at the rates a recovery makes.
    pub fn data_call(&self) {
        clock::advance(self.draw(self.config.timings.api_call, 0.0));
    }

    /// Records an asynchronous operation that runs `took` from now.
    pub(crate) fn begin(
        state: &mut State,
        kind: &'static str,
        resource: &str,
        started: DateTime<Utc>,
        took: Duration,
    ) -> DateTime<Utc> {
        let completed = started + took;
        state.operations.push(AsyncOperation {
            kind,
            resource: resource.to_owned(),
            started,
            completed,
            observed: None,
        });
        completed
    }

    /// Notes that a call at `now` saw the `kind` operations on `resource`
    /// that had finished by then.
    pub(crate) fn observe(state: &mut State, kind: &str, resource: &str, now: DateTime<Utc>) {
        for op in state
            .operations
            .iter_mut()
            .filter(|o| o.kind == kind && o.resource == resource)
        {
            if op.completed <= now && op.observed.is_none() {
                op.observed = Some(now);
            }
        }
    }

    /// Every asynchronous operation so far.
    pub fn operations(&self) -> Vec<AsyncOperation> {
        self.state()
            .map(|s| s.operations.clone())
            .unwrap_or_default()
    }

    /// Takes `region` down: its RDS does not answer and its databases do
    /// not serve.
    pub fn region_down(&self, region: &str) -> DrResult<()> {
        self.state()?.down_regions.insert(region.to_owned());
        Ok(())
    }

    /// Breaks every server of `group` in `region` from `at`: they stay
    /// `InService` but fail the load balancer's check (the application on
    /// them is down), as runbook "Application Server Failure" finds them.
    pub fn servers_fail(&self, region: &str, group: &str, at: DateTime<Utc>) -> DrResult<usize> {
        let mut state = self.state()?;
        let fleet = state
            .fleets
            .get_mut(&(region.to_owned(), group.to_owned()))
            .ok_or_else(|| {
                DrError::InvalidInput(format!(
                    "the simulated account has no Auto Scaling group {group:?} in {region} (it has muejam-app)"
                ))
            })?;
        let mut broken = 0;
        for server in fleet.instances.iter_mut().filter(|s| s.live_at(at)) {
            server.broken = true;
            broken += 1;
        }
        Ok(broken)
    }

    /// The WAF IP sets a breach request names (`ip_set`, `ip_set_v6`),
    /// made if missing, each with the addresses already blocked.
    pub fn ip_sets_of(&self, request: &serde_json::Value) -> DrResult<()> {
        let mut state = self.state()?;
        for (key, version, existing) in [
            ("ip_set", "IPV4", "192.0.2.66/32"),
            ("ip_set_v6", "IPV6", "2001:db8::66/128"),
        ] {
            if let Some(id) = request
                .pointer(&format!("/{key}/id"))
                .and_then(|v| v.as_str())
            {
                state.ip_sets.entry(id.to_owned()).or_insert(SimIpSet {
                    ip_version: version.to_owned(),
                    addresses: vec![existing.to_owned()],
                    lock_token: 1,
                });
            }
        }
        Ok(())
    }

    /// Makes the current release of the deployment answer 500 (a bad
    /// release, runbook "Rollback Procedures").
    pub fn break_current_release(&self, namespace: &str, name: &str) -> DrResult<()> {
        let mut state = self.state()?;
        let d = state
            .deployments
            .get_mut(&(namespace.to_owned(), name.to_owned()))
            .ok_or_else(|| {
                DrError::InvalidInput(format!(
                    "the simulated account has no deployment {namespace}/{name} (it has muejam/muejam-api)"
                ))
            })?;
        let hash = d.current_hash.clone();
        d.broken.insert(hash);
        Ok(())
    }

    /// Damages `id`'s data from `at` (and its replicas', which replay it).
    /// Since when `id`'s data is damaged, if it is.
    pub fn damaged_since(&self, id: &InstanceId) -> DrResult<Option<DateTime<Utc>>> {
        let state = self.state()?;
        let instance = state
            .instances
            .get(id)
            .ok_or_else(|| DrError::NotFound(format!("no simulated instance {id}")))?;
        Ok(instance.damaged_from)
    }

    pub fn damage(&self, id: &InstanceId, at: DateTime<Utc>) -> DrResult<()> {
        let mut state = self.state()?;
        if !state.instances.contains_key(id) {
            return Err(DrError::NotFound(format!("no simulated instance {id}")));
        }
        for instance in state.instances.values_mut() {
            let follows = instance
                .phase_at(at)
                .is_some_and(|p| p.source.as_ref() == Some(id));
            if instance.id == *id || follows {
                instance.damaged_from = Some(at);
            }
        }
        Ok(())
    }

    /// `user` takes `password` on `id` from `from`, and on the replicas
    /// that stream from it (roles replicate).
    pub(crate) fn set_login(
        state: &mut State,
        id: &InstanceId,
        user: &str,
        password: &str,
        from: DateTime<Utc>,
    ) {
        let followers: Vec<InstanceId> = state
            .instances
            .values()
            .filter(|i| {
                i.id == *id
                    || i.phase_at(from)
                        .is_some_and(|p| p.source.as_ref() == Some(id))
            })
            .map(|i| i.id.clone())
            .collect();
        for follower in followers {
            if let Some(instance) = state.instances.get_mut(&follower) {
                instance
                    .logins
                    .entry(user.to_owned())
                    .or_default()
                    .push((from, SecretString::from(password.to_owned())));
            }
        }
    }

    /// When the integrity verifier ran, each time.
    pub fn checks(&self) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        self.state().map(|s| s.checks.clone()).unwrap_or_default()
    }

    /// The pages raised (each would climb the escalation path).
    pub fn pages(&self) -> Vec<Page> {
        self.state().map(|s| s.pages.clone()).unwrap_or_default()
    }

    /// Every approval asked, by execution name, with where it stands.
    pub fn approvals(&self) -> Vec<(String, ApprovalStatus)> {
        self.state()
            .map(|s| {
                s.approvals
                    .iter()
                    .map(|(name, (request, _))| (name.clone(), request.status))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The names of the DNS records that exist.
    pub fn record_names(&self) -> Vec<String> {
        self.state()
            .map(|s| s.records.keys().map(|(_, name, _)| name.clone()).collect())
            .unwrap_or_default()
    }

    /// Every notification published, with when.
    pub fn notifications(&self) -> Vec<(DateTime<Utc>, Notification)> {
        self.state()
            .map(|s| s.notifications.clone())
            .unwrap_or_default()
    }

    /// Every message sent to the users' topic: (topic, user, notification id).
    pub fn user_messages(&self) -> Vec<(String, i64, String)> {
        self.state()
            .map(|s| s.user_messages.clone())
            .unwrap_or_default()
    }

    /// The users whose API key is active.
    pub fn active_api_keys(&self) -> Vec<i64> {
        self.state()
            .map(|s| {
                s.platform
                    .api_keys
                    .values()
                    .filter(|(_, active)| *active)
                    .map(|(user, _)| *user)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What a data-corruption test checks of an instance at `at`: whether
    /// it exists, holds the damage, the moment its data is of (a
    /// restore's), and how many write privileges the application role has
    /// on it.
    pub fn instance_data(&self, id: &InstanceId, at: DateTime<Utc>) -> Option<InstanceData> {
        let state = self.state().ok()?;
        let i = state.instances.get(id)?;
        Some(InstanceData {
            exists: i.exists_at(at),
            damaged: i.damaged_at(at),
            data_as_of: i.data_as_of,
            app_write_grants: i.grants.values().map(BTreeSet::len).sum(),
        })
    }

    /// The instances that exist at `at`.
    pub fn instances_at(&self, at: DateTime<Utc>) -> Vec<InstanceId> {
        self.state()
            .map(|s| {
                s.instances
                    .values()
                    .filter(|i| i.exists_at(at))
                    .map(|i| i.id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The pending approvals.
    pub fn pending_approvals(&self) -> Vec<ApprovalRequest> {
        self.state()
            .map(|s| {
                s.approvals
                    .values()
                    .filter(|(r, _)| r.status == ApprovalStatus::Pending)
                    .map(|(r, _)| r.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Tells the simulated Step Functions how an execution stands.
    pub fn set_execution(&self, arn: &str, state: ExecutionState) {
        if let Ok(mut s) = self.state() {
            s.executions.insert(arn.to_owned(), state);
        }
    }

    /// The time a Lambda invocation of `function` adds before its handler
    /// runs: a cold start the first time in the run, then a warm one.
    pub fn invocation_overhead(&self, function: &str) -> Duration {
        let cold = self
            .state()
            .map(|mut s| s.warm.insert(function.to_owned()))
            .unwrap_or(false);
        let range = if cold {
            self.config.timings.lambda_cold
        } else {
            self.config.timings.lambda_warm
        };
        self.draw(range, 0.0)
    }

    /// Where `name` (a DNS name or an RDS endpoint) leads: a CNAME of the
    /// simulated zones followed to an instance.
    pub(crate) fn resolve(state: &State, name: &str) -> Option<InstanceId> {
        let mut name = name.trim_end_matches('.').to_owned();
        for _ in 0..4 {
            if let Some(instance) = state
                .instances
                .values()
                .find(|i| endpoint_address(&i.id, &i.region) == name)
            {
                return Some(instance.id.clone());
            }
            let next = state
                .records
                .values()
                .find(|r| r.name.trim_end_matches('.') == name && r.record_type == "CNAME")?;
            name = next.value.trim_end_matches('.').to_owned();
        }
        None
    }
}
