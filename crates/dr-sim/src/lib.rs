//! A simulated AWS account for the recoveries: in-memory adapters for the
//! ports that behave like AWS in status sequence and in time. RDS goes
//! `available → modifying → rebooting → available` over a promotion,
//! restores go `creating → backing-up → available` over minutes that grow
//! with size, cross-region copies stay `copying`, Route 53 changes are
//! `PENDING` until `INSYNC`; every duration is drawn from one table
//! ([`timings`]), every figure with its source, and passes in the virtual
//! time of [`dr_core::clock`]. The real handlers run on it unchanged:
//! `drctl estimate` runs the real state machines on it to say what RTO a
//! scenario achieves on AWS and what its orchestration costs, and tests run
//! workflows on it in milliseconds, without PostgreSQL or moto.
//!
//! It models what the database failover, the app-server recovery, the
//! region failover, the security breach's containment and the quarterly
//! drill call (RDS with its asynchronous master password, Route 53, Auto
//! Scaling with its instance refreshes, the health URL behind the load
//! balancer, Secrets Manager's staging labels, WAF IP sets under their
//! lock tokens, the platform's API keys and audit log, the users' topic and
//! its ledger), the data corruption (damaged data that point-in-time
//! restores carry from their moment, the application's grants, the rows a
//! switch loses) and the deployment rollback (the Kubernetes Deployment,
//! its rollouts, revisions and migration jobs). What no scenario needs
//! (CloudWatch alarms and rules, Scheduler, IAM) answers
//! [`services::not_modelled`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use dr_core::*;
use dr_scenarios::Ports;
use secrecy::SecretString;

pub mod estimate;
mod rds;
pub mod services;
pub mod timings;
mod world;

pub use rds::{SimRds, SimRegions};
pub use services::{not_modelled, SimServices};
pub use world::{endpoint_address, AsyncOperation, InstanceData, Serving, SimConfig, World};

/// The scenarios the simulated account models end to end.
pub const SUPPORTED: [&str; 7] = [
    "database-failover",
    "app-server-recovery",
    "region-failover",
    "data-corruption",
    "security-breach",
    "deployment-rollback",
    "dr-drill",
];

/// The simulated databases' master user and application role, with the
/// passwords they start with (simulated: nothing here is a secret).
const MASTER_USER: &str = "muejam_admin";
const MASTER_PASSWORD: &str = "simulated-not-a-secret";
pub(crate) const APP_ROLE: &str = "muejam_app";
const APP_PASSWORD: &str = "simulated-app-not-a-secret";

/// The MueJam databases of the simulated account: `databases` of them,
/// each a primary with a streaming replica, a DNS record, credentials, a
/// snapshot from two hours ago (and its copy in the backup region), and
/// its registered topology. The first is `muejam` on `muejam-db-prod`, as
/// in production; the others `muejam2` on `muejam2-db-prod`, and so on.
pub fn seed_muejam(world: &World, databases: usize, at: DateTime<Utc>) -> DrResult<Vec<Topology>> {
    let mut topologies = Vec::new();
    let mut state = world.state()?;
    for n in 1..=databases.max(1) {
        let name = if n == 1 {
            "muejam".to_owned()
        } else {
            format!("muejam{n}")
        };
        let primary = InstanceId::parse(&format!("{name}-db-prod"))?;
        let replica = InstanceId::parse(&format!("{name}-db-prod-replica"))?;
        let home = world.config.home_region.clone();
        let gib = world.config.database_gib;
        let rows = sample_rows(gib);
        let long_ago = at - Duration::days(30);
        let lag = world.draw(timings::Range::fixed(0.2, 3.0), 0.0);
        for (id, source, zone, lag) in [
            (&primary, None, "a", 0.0),
            (
                &replica,
                Some(primary.clone()),
                "b",
                lag.num_milliseconds() as f64 / 1000.0,
            ),
        ] {
            state.instances.insert(
                id.clone(),
                world::SimInstance {
                    region: home.clone(),
                    id: id.clone(),
                    created_at: long_ago,
                    availability_zone: format!("{home}{zone}"),
                    tags: Tags::from([("DrDrill".to_owned(), "in-scope".to_owned())]),
                    phases: vec![world::Phase {
                        from: long_ago,
                        status: InstanceStatus::Available,
                        source,
                    }],
                    gib,
                    serving: Serving::Up,
                    lag_seconds: lag,
                    fenced_from: None,
                    gone_from: None,
                    markers: BTreeMap::new(),
                    row_counts: rows.clone(),
                    network: None,
                    logins: BTreeMap::from([
                        (
                            MASTER_USER.to_owned(),
                            vec![(long_ago, SecretString::from(MASTER_PASSWORD.to_owned()))],
                        ),
                        (
                            APP_ROLE.to_owned(),
                            vec![(long_ago, SecretString::from(APP_PASSWORD.to_owned()))],
                        ),
                    ]),
                    master_user: Some(MASTER_USER.to_owned()),
                    damaged_from: None,
                    data_as_of: None,
                    writes_stopped_at: None,
                    grants: BTreeMap::from([(APP_ROLE.to_owned(), app_grants())]),
                },
            );
        }
        let taken = at - Duration::hours(2);
        let snapshot = SnapshotId::parse(&format!("rds:{name}-db-prod-auto"))?;
        let mut automated = rds::new_snapshot(
            &snapshot,
            &primary,
            &home,
            taken,
            taken + Duration::minutes(10),
            gib,
            rows.clone(),
            &Tags::new(),
        );
        automated.description.snapshot_type = SnapshotType::Automated;
        state
            .snapshots
            .insert((home.clone(), snapshot.clone()), automated);
        let copy_id = SnapshotId::parse(&format!("dr-copy-{name}-db-prod-auto"))?;
        let backup = world.config.backup_region.clone();
        let mut copy = rds::new_snapshot(
            &copy_id,
            &primary,
            &backup,
            taken + Duration::minutes(15),
            taken + Duration::minutes(75),
            gib,
            rows,
            &Tags::from([
                (
                    dr_scenarios::replication::COPY_OF_TAG.to_owned(),
                    name.clone(),
                ),
                (
                    dr_scenarios::replication::VERIFIED_TAG.to_owned(),
                    (taken + Duration::minutes(80)).to_rfc3339(),
                ),
            ]),
        );
        copy.description.original_created_at = Some(taken);
        copy.description.copied_from = Some(SnapshotSource {
            snapshot: snapshot.as_str().to_owned(),
            region: Some(home.clone()),
        });
        state.snapshots.insert((backup, copy_id), copy);

        let record_name = if n == 1 {
            "db.muejam.internal".to_owned()
        } else {
            format!("db{n}.muejam.internal")
        };
        state.records.insert(
            (
                "muejam.internal".to_owned(),
                record_name.clone(),
                "CNAME".to_owned(),
            ),
            DnsRecord {
                hosted_zone_id: "muejam.internal".to_owned(),
                name: record_name.clone(),
                record_type: "CNAME".to_owned(),
                ttl: 60,
                value: endpoint_address(&primary, &home),
            },
        );
        let secret = format!("{name}/db/master");
        let app_secret = format!("{name}/db/app");
        for (id, user, password) in [
            (&secret, MASTER_USER, MASTER_PASSWORD),
            (&app_secret, APP_ROLE, APP_PASSWORD),
        ] {
            state.secrets.insert(
                id.clone(),
                vec![world::SimSecretVersion {
                    id: "sim-v1".to_owned(),
                    value: SecretString::from(
                        serde_json::json!({"username": user, "password": password}).to_string(),
                    ),
                    stages: ["AWSCURRENT".to_owned()].into(),
                }],
            );
        }
        let topology = Topology {
            database: name.clone(),
            primary: primary.clone(),
            replicas: vec![replica],
            fenced: Vec::new(),
            retired: Vec::new(),
            db_name: "muejam".to_owned(),
            credentials_secret_id: secret,
            dns: DnsBinding {
                hosted_zone: "muejam.internal".to_owned(),
                record_name,
                ttl: 60,
            },
            availability_zones: ["a", "b", "c"]
                .iter()
                .map(|z| format!("{home}{z}"))
                .collect(),
            region: Some(home.clone()),
            application: Some(ApplicationAccess {
                role: APP_ROLE.to_owned(),
                credentials_secret_id: app_secret,
                schema: "public".to_owned(),
            }),
            instance_prefix: primary.as_str().to_owned(),
            generation: 0,
            version: 1,
            updated_at: Some(long_ago),
            updated_by: Some("simulated account".to_owned()),
            tags: Default::default(),
        };
        state.topologies.insert(name, topology.clone());
        // The application's servers: serving in the home region, none yet
        // in the backup region (the region failover raises them there).
        let serving: Vec<world::SimServer> = (1..=2)
            .map(|i| world::SimServer {
                id: format!("i-home{n:04}{i:08}"),
                launched: long_ago,
                healthy_from: long_ago,
                broken: false,
                terminated_from: None,
            })
            .collect();
        for (region, group, instances) in [
            (home.clone(), "muejam-app", serving),
            (
                world.config.backup_region.clone(),
                "muejam-dr-app",
                Vec::new(),
            ),
        ] {
            state
                .fleets
                .entry((region, group.to_owned()))
                .or_insert(world::SimFleet {
                    desired: instances.len() as u32,
                    min: 0,
                    max: 10,
                    instances,
                    refreshes: Vec::new(),
                    launched: 0,
                });
        }
        topologies.push(topology);
    }
    state.platform = sample_platform(at);
    state.deployments.insert(
        ("muejam".to_owned(), "muejam-api".to_owned()),
        sample_deployment(at),
    );
    Ok(topologies)
}

/// The MueJam API's Deployment: release 1 (migrations 0001-0002) and
/// release 2 (0003 too, applied), 4 replicas, release 2 serving.
fn sample_deployment(at: DateTime<Utc>) -> world::SimDeployment {
    let revision = |n: u64, hash: &str, days: i64| AppRevision {
        revision: n,
        image: format!("registry.muejam.internal/muejam-api:release-{n}"),
        template_hash: hash.to_owned(),
        change_cause: Some(format!("release {n}")),
        created_at: Some(at - Duration::days(days)),
    };
    let first = ["0001_initial", "0002_story_views_source"].map(str::to_owned);
    let second = [
        "0001_initial",
        "0002_story_views_source",
        "0003_story_views_drop_source",
    ]
    .map(str::to_owned);
    world::SimDeployment {
        revisions: vec![revision(1, "5d4f7b9c6", 20), revision(2, "7c8d9e0f1", 1)],
        broken: Default::default(),
        current_hash: "7c8d9e0f1".to_owned(),
        previous_hash: "7c8d9e0f1".to_owned(),
        env: BTreeMap::from([(
            "DJANGO_SETTINGS_MODULE".to_owned(),
            "muejam.settings".to_owned(),
        )]),
        generation: 2,
        replicas: 4,
        rolled_out_at: at - Duration::days(1),
        applied: BTreeMap::from([("muejam".to_owned(), second.to_vec())]),
        known: BTreeMap::from([
            (
                "5d4f7b9c6".to_owned(),
                BTreeMap::from([("muejam".to_owned(), first.to_vec())]),
            ),
            (
                "7c8d9e0f1".to_owned(),
                BTreeMap::from([("muejam".to_owned(), second.to_vec())]),
            ),
        ]),
        jobs: BTreeMap::new(),
    }
}

/// Addresses an intruder used (documentation ranges, RFC 5737 and 3849),
/// and how many users acted from them.
pub const INTRUDER_ADDRESSES: [&str; 4] = [
    "203.0.113.10",
    "203.0.113.11",
    "203.0.113.12",
    "2001:db8::bad:1",
];
pub const INTRUDED_USERS: i64 = 30;
/// The platform's users, each with one API key.
pub const PLATFORM_USERS: i64 = 500;

/// The platform's API keys and audit log: every user has a key; over the
/// last day users acted from ordinary addresses, and [`INTRUDED_USERS`]
/// of them also from [`INTRUDER_ADDRESSES`], between 7 and 1 hours ago.
fn sample_platform(at: DateTime<Utc>) -> world::SimPlatform {
    let api_keys = (1..=PLATFORM_USERS)
        .map(|user| (user * 10 + 1, (user, true)))
        .collect();
    let mut audit = Vec::new();
    for (n, user) in (1..=PLATFORM_USERS).enumerate() {
        audit.push(AuditRow {
            id: n as i64 + 1,
            user_id: Some(user),
            action_type: "login".to_owned(),
            ip_address: format!("198.51.100.{}", user % 250 + 1),
            created_at: at - Duration::hours(20) + Duration::seconds(n as i64 * 60),
        });
    }
    for user in 1..=INTRUDED_USERS {
        for (k, (address, action)) in INTRUDER_ADDRESSES
            .iter()
            .zip(["login", "api_key_created", "export", "password_change"])
            .enumerate()
        {
            audit.push(AuditRow {
                id: audit.len() as i64 + 1,
                user_id: Some(user),
                action_type: action.to_owned(),
                ip_address: (*address).to_owned(),
                created_at: at - Duration::hours(7) + Duration::minutes(user * 10 + k as i64),
            });
        }
    }
    world::SimPlatform { api_keys, audit }
}

/// The application role's write privileges on the MueJam tables.
pub(crate) fn app_grants() -> std::collections::BTreeSet<TableGrant> {
    ["users", "stories", "comments", "api_keys", "audit_log"]
        .iter()
        .flat_map(|table| {
            ["INSERT", "UPDATE", "DELETE"].iter().map(|p| TableGrant {
                table: (*table).to_owned(),
                privilege: (*p).to_owned(),
            })
        })
        .collect()
}

/// Rows the platform writes per hour, by table (what a restore to an
/// earlier moment loses).
pub(crate) const WRITES_PER_HOUR: [(&str, u64); 5] = [
    ("users", 12),
    ("stories", 40),
    ("comments", 220),
    ("api_keys", 3),
    ("audit_log", 900),
];
/// Rows the simulated damage changed (display names blanked).
pub(crate) const DAMAGED_ROWS: u64 = 120;

/// Row counts of a database of `gib` GiB: the MueJam tables, in
/// proportion (only their equality between a source and its restore
/// matters).
fn sample_rows(gib: f64) -> BTreeMap<String, u64> {
    let scale = (gib.max(0.01) * 10_000.0) as u64;
    BTreeMap::from([
        ("users".to_owned(), scale),
        ("stories".to_owned(), scale * 4),
        ("comments".to_owned(), scale * 20),
        ("api_keys".to_owned(), scale / 2),
        ("audit_log".to_owned(), scale * 50),
    ])
}

/// The ports of the simulated account: the handlers' whole world.
pub fn ports(world: &Arc<World>) -> Ports {
    let services = Arc::new(SimServices::new(Arc::clone(world)));
    let not_modelled = Arc::new(NotModelled);
    Ports {
        control_plane: Arc::new(SimRds::new(
            Arc::clone(world),
            world.config.home_region.clone(),
        )),
        regions: Arc::new(SimRegions::new(Arc::clone(world))),
        sql: services.clone(),
        secrets: services.clone(),
        dns: services.clone(),
        notifier: services.clone(),
        reports: services.clone(),
        lock: services.clone(),
        integrity: services.clone(),
        metrics: services.clone(),
        topology: services.clone(),
        approvals: services.clone(),
        tokens: services.clone(),
        pager: services.clone(),
        journal: services.clone(),
        executions: services.clone(),
        health: services.clone(),
        firewall: services.clone(),
        users: services.clone(),
        ledger: services.clone(),
        deployment: services.clone(),
        fleet: services,
        triggers: not_modelled.clone(),
        permissions: not_modelled,
        database_tls: DatabaseTls::default(),
        initial_topologies: Vec::new(),
    }
}

/// The services the simulated account does not model: every call answers
/// [`not_modelled`] (`Unavailable`), so a scenario that needs one fails
/// loudly instead of measuring a fiction.
pub struct NotModelled;

#[async_trait]
impl Triggers for NotModelled {
    async fn alarm(&self, _: &str) -> DrResult<Option<AlarmInfo>> {
        Err(not_modelled("CloudWatch alarms and EventBridge rules"))
    }
    async fn rules_targeting(&self, _: &str) -> DrResult<Vec<RuleInfo>> {
        Err(not_modelled("CloudWatch alarms and EventBridge rules"))
    }
    async fn schedule(&self, _: &str) -> DrResult<Option<ScheduleInfo>> {
        Err(not_modelled("EventBridge Scheduler"))
    }
}

#[async_trait]
impl Permissions for NotModelled {
    async fn state_machine(&self, _: &str) -> DrResult<DeployedStateMachine> {
        Err(not_modelled("IAM"))
    }
    async fn function(&self, _: &str) -> DrResult<DeployedFunction> {
        Err(not_modelled("IAM"))
    }
    async fn simulate(&self, _: &str, _: &[ActionRequest]) -> DrResult<Vec<ActionVerdict>> {
        Err(not_modelled("IAM"))
    }
    fn actions(&self, _: PortOperation) -> Vec<String> {
        Vec::new()
    }
}
