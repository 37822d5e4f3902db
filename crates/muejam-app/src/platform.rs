//! The runbook's app tier on one machine: an Auto Scaling group of MueJam
//! API processes on loopback behind a load balancer, and the Kubernetes
//! deployment whose revisions they run. [`LocalAppPlatform`] implements
//! [`AppFleet`] and [`AppDeployment`] on them, so the recoveries drive real
//! processes: a killed instance does not answer, a broken revision's health
//! check fails, a rollback replaces the processes one by one.
//!
//! State lives in `app/fleet.json` in the stack's home (written whole and
//! renamed, under `app/fleet.lock`); each process logs to `app/logs/`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use crate::catalog::{known_migrations, AppConfig, Template, APP_LABEL};

pub const STATE_FILE: &str = "app/fleet.json";
const LOCK_FILE: &str = "app/fleet.lock";
const LOG_DIR: &str = "app/logs";
const JOB_DIR: &str = "app/jobs";
/// The binary's name; `MUEJAM_APP_BIN` overrides where it is.
pub const BINARY: &str = "muejam-app";
pub const BINARY_ENV: &str = "MUEJAM_APP_BIN";

/// The stack's application: its group, deployment and load balancer names.
pub const GROUP: &str = "muejam-app";
pub const NAMESPACE: &str = "muejam";
pub const DEPLOYMENT: &str = "muejam-api";
/// How long a new process may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(15);
const HEALTH_TIMEOUT_MS: u64 = 2_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInstance {
    pub instance_id: String,
    pub port: u16,
    pub pid: u32,
    pub revision: u64,
    pub template_hash: String,
    pub launched_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refresh {
    pub refresh_id: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The instances it launched.
    pub launched: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balancer {
    pub port: u16,
    pub pid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub region: String,
    pub min_size: u32,
    pub max_size: u32,
    pub desired_capacity: u32,
    /// `namespace/name` of the deployment its instances run.
    pub deployment: String,
    pub instances: Vec<AppInstance>,
    pub refreshes: Vec<Refresh>,
    pub balancer: Option<Balancer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRevision {
    pub revision: u64,
    pub template: Template,
    pub change_cause: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub namespace: String,
    pub name: String,
    pub revisions: Vec<StoredRevision>,
    /// The revision number the template is now.
    pub current: u64,
    pub paused: bool,
    pub generation: i64,
    pub observed_generation: i64,
}

impl Deployment {
    pub fn current_revision(&self) -> DrResult<&StoredRevision> {
        self.revisions
            .iter()
            .find(|r| r.revision == self.current)
            .ok_or_else(|| DrError::Internal(format!("revision {} is missing", self.current)))
    }

    fn max_revision(&self) -> u64 {
        self.revisions.iter().map(|r| r.revision).max().unwrap_or(0)
    }

    /// Makes `template` the current one as the deployment controller does:
    /// a template some revision already has takes the next number (its old
    /// number leaves the history), a new one is a new revision. Returns the
    /// number, or `None` when it already is the current template.
    pub fn adopt(&mut self, template: Template, cause: Option<String>) -> Option<u64> {
        let hash = template.hash();
        if self
            .current_revision()
            .is_ok_and(|c| c.template.hash() == hash)
        {
            return None;
        }
        let next = self.max_revision() + 1;
        if let Some(existing) = self
            .revisions
            .iter_mut()
            .find(|r| r.template.hash() == hash)
        {
            existing.revision = next;
            if cause.is_some() {
                existing.change_cause = cause;
            }
        } else {
            self.revisions.push(StoredRevision {
                revision: next,
                template,
                change_cause: cause,
                created_at: Utc::now(),
            });
        }
        self.revisions.sort_by_key(|r| r.revision);
        self.current = next;
        self.generation += 1;
        Some(next)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub name: String,
    pub deployment: String,
    pub revision: u64,
    pub app: String,
    pub target: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
}

/// What a migration job's process writes when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    pub succeeded: bool,
    pub output: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppState {
    pub groups: BTreeMap<String, Group>,
    pub deployments: BTreeMap<String, Deployment>,
    pub jobs: BTreeMap<String, Job>,
    pub next_instance: u64,
    pub next_refresh: u64,
}

/// What `drctl local status` shows of one instance.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    pub instance_id: String,
    pub url: String,
    pub revision: u64,
    pub running: bool,
    pub health: Option<u16>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FleetView {
    pub group: String,
    pub region: String,
    pub desired_capacity: u32,
    pub max_size: u32,
    pub health_url: Option<String>,
    pub deployment: String,
    pub revision: u64,
    pub image: String,
    pub read_only_mode: bool,
    pub instances: Vec<InstanceView>,
}

/// The local app tier of one home.
#[derive(Debug, Clone)]
pub struct LocalAppPlatform {
    home: PathBuf,
    http: reqwest::Client,
}

struct Held {
    _lock: File,
    path: PathBuf,
    state: AppState,
}

impl Held {
    fn save(&self) -> DrResult<()> {
        dr_local::state::write_json_atomically(&self.path, &self.state)
    }
}

fn internal(what: &str) -> impl Fn(std::io::Error) -> DrError + '_ {
    move |e| DrError::Internal(format!("{what}: {e}"))
}

/// Alive and not a zombie, and still our binary (pids are reused).
pub fn running(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z") | Some("X") | None) {
        return false;
    }
    fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(BINARY))
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), sig);
    }
}

/// Ends a process of ours (SIGTERM, SIGKILL after a second).
pub fn stop_process(pid: u32) {
    if !running(pid) {
        return;
    }
    signal(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if !running(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(pid, nix::sys::signal::Signal::SIGKILL);
}

fn free_port() -> DrResult<u16> {
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(internal("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(internal("finding a free port"))?
        .port())
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Where the app binary is: `MUEJAM_APP_BIN`, else beside this executable
/// (or one level up, for test binaries in `target/debug/deps`).
pub fn binary() -> DrResult<PathBuf> {
    if let Some(path) = std::env::var_os(BINARY_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(internal("finding this executable"))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let mut candidates = vec![dir.join(BINARY)];
    if dir.ends_with("deps") {
        if let Some(up) = dir.parent() {
            candidates.push(up.join(BINARY));
        }
    }
    if let Some(found) = candidates.into_iter().find(|c| c.is_file()) {
        return Ok(found);
    }
    Err(DrError::NotFound(format!(
        "the {BINARY} binary is not beside {} (cargo build -p drctl builds it; or set {BINARY_ENV})",
        exe.display()
    )))
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl LocalAppPlatform {
    pub fn new(home: &Path) -> DrResult<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(HEALTH_TIMEOUT_MS))
            .build()
            .map_err(|e| DrError::Internal(format!("building an HTTP client: {e}")))?;
        Ok(LocalAppPlatform {
            home: home.to_owned(),
            http,
        })
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Whether this home has an app tier (`drctl local up` made one).
    pub fn exists(&self) -> bool {
        self.home.join(STATE_FILE).exists()
    }

    fn lock(&self) -> DrResult<Held> {
        let dir = self.home.join("app");
        fs::create_dir_all(&dir).map_err(internal("creating the app directory"))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.home.join(LOCK_FILE))
            .map_err(internal("opening the fleet lock"))?;
        lock.lock().map_err(internal("locking the fleet"))?;
        let path = self.home.join(STATE_FILE);
        let state = read_state(&path)?;
        Ok(Held {
            _lock: lock,
            path,
            state,
        })
    }

    pub fn read(&self) -> DrResult<AppState> {
        read_state(&self.home.join(STATE_FILE))
    }

    /// Whether this platform runs the group a reference names (in its
    /// region); other groups are the stack's moto Auto Scaling's.
    pub fn serves(&self, fleet: &FleetRef) -> bool {
        self.exists()
            && self
                .read()
                .is_ok_and(|state| Self::group_key(&state, fleet).is_ok())
    }

    fn group_key(state: &AppState, fleet: &FleetRef) -> DrResult<String> {
        let group = state.groups.get(&fleet.auto_scaling_group).ok_or_else(|| {
            DrError::NotFound(format!(
                "Auto Scaling group {} not found",
                fleet.auto_scaling_group
            ))
        })?;
        if let Some(region) = &fleet.region {
            if region != &group.region {
                return Err(DrError::NotFound(format!(
                    "Auto Scaling group {} not found in {region}",
                    fleet.auto_scaling_group
                )));
            }
        }
        Ok(group.name.clone())
    }

    /// Creates the group, its deployment at revision 1 and the load
    /// balancer when missing; starts what is not running. Migrations of the
    /// first revision are applied by the caller (they need the database).
    pub fn ensure(&self, desired: u32, max: u32) -> DrResult<()> {
        let mut held = self.lock()?;
        let deployment_key = key(NAMESPACE, DEPLOYMENT);
        if !held.state.deployments.contains_key(&deployment_key) {
            let mut d = Deployment {
                namespace: NAMESPACE.to_owned(),
                name: DEPLOYMENT.to_owned(),
                revisions: Vec::new(),
                current: 0,
                paused: false,
                generation: 0,
                observed_generation: 0,
            };
            d.adopt(
                Template {
                    image: "muejam-api:1".to_owned(),
                    migrations: 2,
                    broken: false,
                    env: BTreeMap::new(),
                },
                Some("initial release".to_owned()),
            );
            d.observed_generation = d.generation;
            held.state.deployments.insert(deployment_key.clone(), d);
        }
        held.state
            .groups
            .entry(GROUP.to_owned())
            .or_insert_with(|| Group {
                name: GROUP.to_owned(),
                region: "us-east-1".to_owned(),
                min_size: 0,
                max_size: max,
                desired_capacity: desired,
                deployment: deployment_key,
                instances: Vec::new(),
                refreshes: Vec::new(),
                balancer: None,
            });
        held.save()?;
        // A stopped stack comes back with its instances.
        let group = held
            .state
            .groups
            .get(GROUP)
            .cloned()
            .ok_or_else(|| DrError::Internal("the group vanished".into()))?;
        let dead: Vec<String> = group
            .instances
            .iter()
            .filter(|i| !running(i.pid))
            .map(|i| i.instance_id.clone())
            .collect();
        for id in dead {
            self.replace_instance(&mut held, GROUP, &id)?;
        }
        self.scale_to(&mut held, GROUP)?;
        self.ensure_balancer(&mut held, GROUP)?;
        held.save()
    }

    fn ensure_balancer(&self, held: &mut Held, group: &str) -> DrResult<()> {
        let g = held
            .state
            .groups
            .get(group)
            .ok_or_else(|| DrError::Internal("no group".into()))?;
        if g.balancer.as_ref().is_some_and(|b| running(b.pid)) {
            return Ok(());
        }
        let port = g
            .balancer
            .as_ref()
            .map(|b| b.port)
            .filter(|p| !listening(*p))
            .map_or_else(free_port, Ok)?;
        let pid = self.spawn(
            &format!("lb-{group}"),
            &[
                "lb",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--group",
                group,
            ],
            &BTreeMap::new(),
            port,
        )?;
        if let Some(g) = held.state.groups.get_mut(group) {
            g.balancer = Some(Balancer { port, pid });
        }
        Ok(())
    }

    /// Starts `args` of the binary detached, logging to `app/logs/<name>.log`,
    /// and waits until it listens on `port` (`0`: does not wait).
    fn spawn(
        &self,
        name: &str,
        args: &[&str],
        env: &BTreeMap<String, String>,
        port: u16,
    ) -> DrResult<u32> {
        let logs = self.home.join(LOG_DIR);
        fs::create_dir_all(&logs).map_err(internal("creating the log directory"))?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(format!("{name}.log")))
            .map_err(internal("opening a log"))?;
        let err = log.try_clone().map_err(internal("opening a log"))?;
        let mut command = Command::new(binary()?);
        command
            .arg("--home")
            .arg(&self.home)
            .args(args)
            .env_remove("READ_ONLY_MODE")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .map_err(|e| DrError::Internal(format!("starting {name}: {e}")))?;
        let pid = child.id();
        if port != 0 {
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(DrError::Internal(format!(
                        "{name} exited at start ({status}); see {}",
                        logs.join(format!("{name}.log")).display()
                    )));
                }
                if listening(port) {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(DrError::Timeout(format!("{name} did not listen in time")));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Reap it if it ends while this process lives (no zombie).
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(pid)
    }

    fn launch(&self, held: &mut Held, group: &str) -> DrResult<AppInstance> {
        let deployment_key = held
            .state
            .groups
            .get(group)
            .map(|g| g.deployment.clone())
            .ok_or_else(|| DrError::Internal("no group".into()))?;
        let revision = held
            .state
            .deployments
            .get(&deployment_key)
            .ok_or_else(|| DrError::Internal("no deployment".into()))?
            .current_revision()?
            .clone();
        held.state.next_instance += 1;
        let instance_id = format!("i-0{:016x}", 0x10c4_1000 + held.state.next_instance);
        let port = free_port()?;
        let mut args = vec![
            "serve".to_owned(),
            "--listen".to_owned(),
            format!("127.0.0.1:{port}"),
            "--instance-id".to_owned(),
            instance_id.clone(),
            "--revision".to_owned(),
            revision.revision.to_string(),
            "--image".to_owned(),
            revision.template.image.clone(),
        ];
        if revision.template.broken {
            args.push("--broken".to_owned());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let pid = self.spawn(&instance_id, &refs, &revision.template.env, port)?;
        Ok(AppInstance {
            instance_id,
            port,
            pid,
            revision: revision.revision,
            template_hash: revision.template.hash(),
            launched_at: Utc::now(),
        })
    }

    /// Launches a replacement for `old`, then ends `old` (launch before
    /// terminate: capacity never drops below the desired count).
    fn replace_instance(&self, held: &mut Held, group: &str, old: &str) -> DrResult<String> {
        let fresh = self.launch(held, group)?;
        let id = fresh.instance_id.clone();
        let g = held
            .state
            .groups
            .get_mut(group)
            .ok_or_else(|| DrError::Internal("no group".into()))?;
        if let Some(pos) = g.instances.iter().position(|i| i.instance_id == old) {
            let gone = g.instances.remove(pos);
            stop_process(gone.pid);
        }
        g.instances.push(fresh);
        held.save()?;
        Ok(id)
    }

    /// Launches or terminates (newest first) until the group has its
    /// desired count of members.
    fn scale_to(&self, held: &mut Held, group: &str) -> DrResult<Vec<String>> {
        let mut launched = Vec::new();
        loop {
            let g = held
                .state
                .groups
                .get_mut(group)
                .ok_or_else(|| DrError::Internal("no group".into()))?;
            let have = g.instances.len() as u32;
            if have > g.desired_capacity {
                if let Some(gone) = g.instances.pop() {
                    stop_process(gone.pid);
                }
                continue;
            }
            if have == g.desired_capacity {
                break;
            }
            let fresh = self.launch(held, group)?;
            launched.push(fresh.instance_id.clone());
            if let Some(g) = held.state.groups.get_mut(group) {
                g.instances.push(fresh);
            }
            held.save()?;
        }
        Ok(launched)
    }

    /// Replaces every instance of the group's deployment's groups with the
    /// current template, one at a time.
    fn roll(&self, held: &mut Held, deployment_key: &str) -> DrResult<()> {
        let groups: Vec<String> = held
            .state
            .groups
            .values()
            .filter(|g| g.deployment == deployment_key)
            .map(|g| g.name.clone())
            .collect();
        for group in groups {
            let olds: Vec<String> = held
                .state
                .groups
                .get(&group)
                .map(|g| g.instances.iter().map(|i| i.instance_id.clone()).collect())
                .unwrap_or_default();
            for old in olds {
                self.replace_instance(held, &group, &old)?;
            }
        }
        if let Some(d) = held.state.deployments.get_mut(deployment_key) {
            d.observed_generation = d.generation;
        }
        held.save()
    }

    async fn health_of(&self, port: u16) -> Option<u16> {
        self.http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// Ends every process of the app tier (`drctl local down`).
    pub fn stop_all(&self) -> DrResult<usize> {
        if !self.exists() {
            return Ok(0);
        }
        let held = self.lock()?;
        let mut stopped = 0;
        for g in held.state.groups.values() {
            for i in &g.instances {
                if running(i.pid) {
                    stopped += 1;
                }
                stop_process(i.pid);
            }
            if let Some(b) = &g.balancer {
                stop_process(b.pid);
            }
        }
        for j in held.state.jobs.values() {
            stop_process(j.pid);
        }
        Ok(stopped)
    }

    /// Kills every instance of the group at once (SIGKILL): the rehearsal
    /// of "all application servers down". The group still lists them.
    pub fn kill_instances(&self, group: &str) -> DrResult<Vec<String>> {
        let held = self.lock()?;
        let g = held
            .state
            .groups
            .get(group)
            .ok_or_else(|| DrError::NotFound(format!("no app group {group}")))?;
        let mut killed = Vec::new();
        for i in &g.instances {
            if running(i.pid) {
                signal(i.pid, nix::sys::signal::Signal::SIGKILL);
                killed.push(i.instance_id.clone());
            }
        }
        Ok(killed)
    }

    /// The load balancer's health URL of a group.
    pub fn health_url(&self, group: &str) -> DrResult<String> {
        let state = self.read()?;
        let port = state
            .groups
            .get(group)
            .and_then(|g| g.balancer.as_ref())
            .map(|b| b.port)
            .ok_or_else(|| DrError::NotFound(format!("app group {group} has no load balancer")))?;
        Ok(format!("http://127.0.0.1:{port}/health"))
    }

    /// A new release (`drctl local deploy`): the current template with a new
    /// image, `broken` as asked, `migrations` of the catalog (applied first,
    /// as a pre-deploy job, by `migrate`); then rolled out.
    pub async fn deploy(
        &self,
        broken: bool,
        migrations: Option<usize>,
        cause: &str,
    ) -> DrResult<u64> {
        let deployment_key = key(NAMESPACE, DEPLOYMENT);
        let (mut template, next) = {
            let held = self.lock()?;
            let d =
                held.state.deployments.get(&deployment_key).ok_or_else(|| {
                    DrError::NotFound("no deployment: run `drctl local up`".into())
                })?;
            (d.current_revision()?.template.clone(), d.max_revision() + 1)
        };
        template.image = format!("muejam-api:{next}");
        template.broken = broken;
        if let Some(n) = migrations {
            if n > crate::catalog::MIGRATIONS.len() {
                return Err(DrError::InvalidInput(format!(
                    "the code base has {} migrations",
                    crate::catalog::MIGRATIONS.len()
                )));
            }
            template.migrations = n;
        }
        crate::migrate::migrate_home(
            &self.home,
            template.migrations,
            &crate::migrate::MigrationTarget::Latest,
        )
        .await?;
        let mut held = self.lock()?;
        let d = held
            .state
            .deployments
            .get_mut(&deployment_key)
            .ok_or_else(|| DrError::NotFound("no deployment".into()))?;
        let revision = d
            .adopt(template, Some(cause.to_owned()))
            .unwrap_or(d.current);
        held.save()?;
        self.roll(&mut held, &deployment_key)?;
        Ok(revision)
    }

    /// What `drctl local status` shows.
    pub async fn view(&self) -> DrResult<Vec<FleetView>> {
        if !self.exists() {
            return Ok(Vec::new());
        }
        let state = self.read()?;
        let mut views = Vec::new();
        for g in state.groups.values() {
            let d = state.deployments.get(&g.deployment);
            let current = d.and_then(|d| d.current_revision().ok());
            let mut instances = Vec::new();
            for i in &g.instances {
                let alive = running(i.pid);
                instances.push(InstanceView {
                    instance_id: i.instance_id.clone(),
                    url: format!("http://127.0.0.1:{}", i.port),
                    revision: i.revision,
                    running: alive,
                    health: if alive {
                        self.health_of(i.port).await
                    } else {
                        None
                    },
                });
            }
            views.push(FleetView {
                group: g.name.clone(),
                region: g.region.clone(),
                desired_capacity: g.desired_capacity,
                max_size: g.max_size,
                health_url: g
                    .balancer
                    .as_ref()
                    .filter(|b| running(b.pid))
                    .map(|b| format!("http://127.0.0.1:{}/health", b.port)),
                deployment: g.deployment.clone(),
                revision: current.map_or(0, |c| c.revision),
                image: current
                    .map(|c| c.template.image.clone())
                    .unwrap_or_default(),
                read_only_mode: current.is_some_and(|c| {
                    crate::server::read_only_from(
                        c.template.env.get("READ_ONLY_MODE").map(String::as_str),
                    )
                }),
                instances,
            });
        }
        Ok(views)
    }

    fn deployment_key(state: &AppState, deployment: &DeploymentRef) -> DrResult<String> {
        deployment.validate()?;
        let k = key(&deployment.namespace, &deployment.name);
        if state.deployments.contains_key(&k) {
            Ok(k)
        } else {
            Err(DrError::NotFound(format!(
                "deployment {deployment} not found"
            )))
        }
    }

    fn job_result(&self, name: &str) -> Option<JobResult> {
        let bytes = fs::read(self.home.join(JOB_DIR).join(format!("{name}.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Where a migration job's process writes its result.
pub fn job_result_path(home: &Path, job: &str) -> PathBuf {
    home.join(JOB_DIR).join(format!("{job}.json"))
}

fn read_state(path: &Path) -> DrResult<AppState> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| DrError::Internal(format!("{} is unreadable: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AppState::default()),
        Err(e) => Err(DrError::Internal(format!(
            "reading {}: {e}",
            path.display()
        ))),
    }
}

fn to_revision(r: &StoredRevision) -> AppRevision {
    AppRevision {
        revision: r.revision,
        image: r.template.image.clone(),
        template_hash: r.template.hash(),
        change_cause: r.change_cause.clone(),
        created_at: Some(r.created_at),
    }
}

fn refresh_view(r: &Refresh, healthy: usize) -> InstanceRefresh {
    let total = r.launched.len().max(1);
    InstanceRefresh {
        refresh_id: r.refresh_id.clone(),
        status: r.status.clone(),
        percentage_complete: Some(((healthy * 100) / total).min(100) as u32),
        started_at: Some(r.started_at),
    }
}

impl LocalAppPlatform {
    /// Where a refresh stands: its replacements launched synchronously, so
    /// it is Successful when they all pass, Failed when one of them died,
    /// in progress until then; and how many pass.
    async fn refresh_progress(&self, g: &Group, r: &Refresh) -> (&'static str, usize) {
        let mut healthy = 0;
        let mut died = false;
        for id in &r.launched {
            match g.instances.iter().find(|i| &i.instance_id == id) {
                Some(i) if running(i.pid) => {
                    if self.health_of(i.port).await == Some(200) {
                        healthy += 1;
                    }
                }
                // Terminated by a later scale-in: not a failure.
                None => healthy += 1,
                Some(_) => died = true,
            }
        }
        let status = if died {
            "Failed"
        } else if healthy == r.launched.len() {
            "Successful"
        } else {
            "InProgress"
        };
        (status, healthy)
    }
}

#[async_trait]
impl AppFleet for LocalAppPlatform {
    async fn describe_fleet(&self, fleet: &FleetRef) -> DrResult<FleetStatus> {
        let state = self.read()?;
        let name = Self::group_key(&state, fleet)?;
        let g = &state.groups[&name];
        let mut instances = Vec::new();
        let mut healthy = 0;
        for i in &g.instances {
            let ok = running(i.pid) && self.health_of(i.port).await == Some(200);
            if ok {
                healthy += 1;
            }
            instances.push(FleetInstance {
                instance_id: i.instance_id.clone(),
                // As Auto Scaling shows a dead server until its health check
                // replaces it: still a member, unhealthy.
                lifecycle_state: "InService".to_owned(),
                health_status: if ok { "Healthy" } else { "Unhealthy" }.to_owned(),
            });
        }
        Ok(FleetStatus {
            desired_capacity: g.desired_capacity,
            min_size: g.min_size,
            max_size: g.max_size,
            unhealthy_targets: instances.len() as u32 - healthy,
            healthy_targets: healthy,
            instances,
        })
    }

    async fn set_desired_capacity(&self, fleet: &FleetRef, desired: u32) -> DrResult<()> {
        let mut held = self.lock()?;
        let name = Self::group_key(&held.state, fleet)?;
        let g = held
            .state
            .groups
            .get_mut(&name)
            .ok_or_else(|| DrError::Internal("no group".into()))?;
        if desired > g.max_size || desired < g.min_size {
            return Err(DrError::InvalidInput(format!(
                "{name} holds {} to {} instances; {desired} were asked for",
                g.min_size, g.max_size
            )));
        }
        g.desired_capacity = desired;
        held.save()?;
        self.scale_to(&mut held, &name)?;
        held.save()
    }

    async fn start_instance_refresh(&self, fleet: &FleetRef) -> DrResult<InstanceRefresh> {
        let mut held = self.lock()?;
        let name = Self::group_key(&held.state, fleet)?;
        // A refresh still running is joined. One whose servers all pass (or
        // one of which died) is over, though nobody described it since:
        // settled, and a new one starts.
        let running_refresh = held.state.groups[&name]
            .refreshes
            .iter()
            .find(|r| matches!(r.status.as_str(), "Pending" | "InProgress"))
            .cloned();
        if let Some(r) = running_refresh {
            let (status, healthy) = self.refresh_progress(&held.state.groups[&name], &r).await;
            if status == "InProgress" {
                return Ok(refresh_view(&r, healthy));
            }
            if let Some(stored) = held.state.groups.get_mut(&name).and_then(|g| {
                g.refreshes
                    .iter_mut()
                    .find(|x| x.refresh_id == r.refresh_id)
            }) {
                stored.status = status.to_owned();
                stored.ended_at = Some(Utc::now());
            }
        }
        held.state.next_refresh += 1;
        let refresh_id = format!("rf-{:08x}-local", held.state.next_refresh);
        let olds: Vec<String> = held.state.groups[&name]
            .instances
            .iter()
            .map(|i| i.instance_id.clone())
            .collect();
        if let Some(g) = held.state.groups.get_mut(&name) {
            g.refreshes.push(Refresh {
                refresh_id: refresh_id.clone(),
                status: "InProgress".to_owned(),
                started_at: Utc::now(),
                ended_at: None,
                launched: Vec::new(),
            });
        }
        held.save()?;
        let mut launched = Vec::new();
        for old in olds {
            launched.push(self.replace_instance(&mut held, &name, &old)?);
        }
        launched.extend(self.scale_to(&mut held, &name)?);
        let g = held
            .state
            .groups
            .get_mut(&name)
            .ok_or_else(|| DrError::Internal("no group".into()))?;
        let r = g
            .refreshes
            .iter_mut()
            .find(|r| r.refresh_id == refresh_id)
            .ok_or_else(|| DrError::Internal("the refresh vanished".into()))?;
        r.launched = launched;
        let view = refresh_view(r, 0);
        held.save()?;
        Ok(view)
    }

    async fn describe_instance_refresh(
        &self,
        fleet: &FleetRef,
        refresh_id: &str,
    ) -> DrResult<InstanceRefresh> {
        let state = self.read()?;
        let name = Self::group_key(&state, fleet)?;
        let g = &state.groups[&name];
        let r = g
            .refreshes
            .iter()
            .find(|r| r.refresh_id == refresh_id)
            .ok_or_else(|| DrError::NotFound(format!("instance refresh {refresh_id} not found")))?
            .clone();
        if r.status != "InProgress" {
            return Ok(refresh_view(&r, r.launched.len()));
        }
        let (status, healthy) = self.refresh_progress(g, &r).await;
        if status != "InProgress" {
            let mut held = self.lock()?;
            if let Some(stored) = held
                .state
                .groups
                .get_mut(&name)
                .and_then(|g| g.refreshes.iter_mut().find(|x| x.refresh_id == refresh_id))
            {
                stored.status = status.to_owned();
                stored.ended_at = Some(Utc::now());
            }
            held.save()?;
        }
        let mut view = refresh_view(&r, healthy);
        view.status = status.to_owned();
        Ok(view)
    }
}

#[async_trait]
impl AppDeployment for LocalAppPlatform {
    async fn describe_deployment(&self, deployment: &DeploymentRef) -> DrResult<DeploymentStatus> {
        let state = self.read()?;
        let k = Self::deployment_key(&state, deployment)?;
        let d = &state.deployments[&k];
        let current = d.current_revision()?;
        let current_hash = current.template.hash();
        let mut desired = 0;
        let mut replicas = 0;
        let mut updated = 0;
        let mut available = 0;
        for g in state.groups.values().filter(|g| g.deployment == k) {
            desired += g.desired_capacity;
            for i in g.instances.iter().filter(|i| running(i.pid)) {
                replicas += 1;
                if i.template_hash == current_hash {
                    updated += 1;
                    if self.health_of(i.port).await == Some(200) {
                        available += 1;
                    }
                }
            }
        }
        Ok(DeploymentStatus {
            deployment: deployment.clone(),
            current: to_revision(current),
            revisions: d.revisions.iter().map(to_revision).collect(),
            paused: d.paused,
            env: current.template.env.clone(),
            rollout: RolloutObservation {
                generation: d.generation,
                observed_generation: d.observed_generation,
                desired_replicas: Some(desired),
                replicas,
                updated_replicas: updated,
                available_replicas: available,
                progressing_reason: None,
            },
        })
    }

    async fn rollout_restart(&self, deployment: &DeploymentRef) -> DrResult<()> {
        let mut held = self.lock()?;
        let k = Self::deployment_key(&held.state, deployment)?;
        if let Some(d) = held.state.deployments.get_mut(&k) {
            d.generation += 1;
        }
        held.save()?;
        self.roll(&mut held, &k)
    }

    async fn roll_back(&self, deployment: &DeploymentRef, to: &AppRevision) -> DrResult<u64> {
        let mut held = self.lock()?;
        let k = Self::deployment_key(&held.state, deployment)?;
        let d = held
            .state
            .deployments
            .get_mut(&k)
            .ok_or_else(|| DrError::Internal("no deployment".into()))?;
        let template = d
            .revisions
            .iter()
            .find(|r| r.template.hash() == to.template_hash)
            .map(|r| r.template.clone())
            .ok_or_else(|| {
                DrError::NotFound(format!(
                    "revision {} is no longer in the history",
                    to.revision
                ))
            })?;
        let number = d.adopt(template, None).unwrap_or(d.current);
        held.save()?;
        self.roll(&mut held, &k)?;
        Ok(number)
    }

    async fn set_env(
        &self,
        deployment: &DeploymentRef,
        name: &str,
        value: Option<&str>,
    ) -> DrResult<()> {
        let mut held = self.lock()?;
        let k = Self::deployment_key(&held.state, deployment)?;
        let d = held
            .state
            .deployments
            .get_mut(&k)
            .ok_or_else(|| DrError::Internal("no deployment".into()))?;
        let mut template = d.current_revision()?.template.clone();
        match value {
            Some(v) => template.env.insert(name.to_owned(), v.to_owned()),
            None => template.env.remove(name),
        };
        let cause = match value {
            Some(v) => format!("kubectl set env deployment/{} {name}={v}", deployment.name),
            None => format!("kubectl set env deployment/{} {name}-", deployment.name),
        };
        if d.adopt(template, Some(cause)).is_none() {
            return Ok(());
        }
        held.save()?;
        self.roll(&mut held, &k)
    }

    async fn run_migration(&self, deployment: &DeploymentRef, job: &MigrationJob) -> DrResult<()> {
        job.validate()?;
        let mut held = self.lock()?;
        let k = Self::deployment_key(&held.state, deployment)?;
        if let Some(existing) = held.state.jobs.get(&job.name) {
            if existing.revision == job.revision
                && existing.target == job.target
                && existing.app == job.app
            {
                return Ok(());
            }
            return Err(DrError::AlreadyExists(format!(
                "job {} exists with another migration",
                job.name
            )));
        }
        if job.app != APP_LABEL {
            return Err(DrError::InvalidInput(format!(
                "the app has no migrations under {}",
                job.app
            )));
        }
        let known = held.state.deployments[&k]
            .revisions
            .iter()
            .find(|r| r.revision == job.revision)
            .map(|r| r.template.migrations)
            .ok_or_else(|| DrError::NotFound(format!("revision {} not found", job.revision)))?;
        let pid = self.spawn(
            &format!("job-{}", job.name),
            &[
                "migrate",
                "--known",
                &known.to_string(),
                "--to",
                &job.target,
                "--job",
                &job.name,
            ],
            &BTreeMap::new(),
            0,
        )?;
        held.state.jobs.insert(
            job.name.clone(),
            Job {
                name: job.name.clone(),
                deployment: k,
                revision: job.revision,
                app: job.app.clone(),
                target: job.target.clone(),
                pid,
                started_at: Utc::now(),
            },
        );
        held.save()
    }

    async fn migration_state(&self, deployment: &DeploymentRef, job: &str) -> DrResult<JobState> {
        validate_k8s_name("job name", job)?;
        let state = self.read()?;
        Self::deployment_key(&state, deployment)?;
        let stored = state
            .jobs
            .get(job)
            .ok_or_else(|| DrError::NotFound(format!("job {job} not found")))?;
        if let Some(result) = self.job_result(job) {
            return Ok(if result.succeeded {
                JobState::Succeeded {
                    output: result.output,
                }
            } else {
                JobState::Failed {
                    reason: result.output,
                }
            });
        }
        if running(stored.pid) {
            Ok(JobState::Running)
        } else {
            // It may have written its result just after the check above.
            Ok(match self.job_result(job) {
                Some(r) if r.succeeded => JobState::Succeeded { output: r.output },
                Some(r) => JobState::Failed { reason: r.output },
                None => JobState::Failed {
                    reason: "the job's process ended without a result".to_owned(),
                },
            })
        }
    }

    async fn migrations(
        &self,
        deployment: &DeploymentRef,
        revision: u64,
        app: &str,
    ) -> DrResult<MigrationHistory> {
        let state = self.read()?;
        let k = Self::deployment_key(&state, deployment)?;
        let known = state.deployments[&k]
            .revisions
            .iter()
            .find(|r| r.revision == revision)
            .map(|r| known_migrations(r.template.migrations))
            .ok_or_else(|| DrError::NotFound(format!("revision {revision} not found")))?;
        if app != APP_LABEL {
            return Ok(MigrationHistory {
                applied: Vec::new(),
                known: Vec::new(),
            });
        }
        let config = AppConfig::read(&self.home)?;
        let db = crate::db::DatabaseAccess::new(&self.home, config, crate::db::Login::Migrations);
        let (client, _) = db.client().await?;
        Ok(MigrationHistory {
            applied: crate::migrate::applied(&client).await?,
            known,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> Template {
        Template {
            image: image.to_owned(),
            migrations: 2,
            broken: false,
            env: BTreeMap::new(),
        }
    }

    #[test]
    fn revisions_are_numbered_as_the_deployment_controller_does() {
        let mut d = Deployment {
            namespace: "muejam".into(),
            name: "muejam-api".into(),
            revisions: Vec::new(),
            current: 0,
            paused: false,
            generation: 0,
            observed_generation: 0,
        };
        assert_eq!(d.adopt(template("a"), None), Some(1));
        assert_eq!(d.adopt(template("b"), None), Some(2));
        assert_eq!(d.adopt(template("b"), None), None, "already current");
        // Back to a's template: it becomes revision 3, and 1 leaves the history.
        assert_eq!(d.adopt(template("a"), None), Some(3));
        let numbers: Vec<u64> = d.revisions.iter().map(|r| r.revision).collect();
        assert_eq!(numbers, [2, 3]);
        assert_eq!(d.current, 3);
        assert_eq!(d.generation, 3);
    }
}
