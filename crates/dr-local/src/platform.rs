//! The local database control plane: each "RDS instance" is a real
//! PostgreSQL 15 cluster under one home directory.
//!
//! Layout of a home:
//!
//! ```text
//! state.json              what exists (see state.rs)
//! keys/snapshot.key       age identity sealing snapshots (unless configured elsewhere)
//! credentials/<id>.json   master and replication passwords, mode 0600
//! instances/<id>/data     PGDATA, owned by the postgres user
//! instances/<id>/postgresql.log
//! wal-archive/<id>/       archived WAL (archive_command), the PITR source
//! snapshots/<id>.tar.age  encrypted base backups
//! staging/                scratch space for backups being sealed or opened
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dr_core::*;
use rand::distributions::{Alphanumeric, DistString};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::PgLsn;

use crate::pg::{tail, PgRuntime};
use crate::sealed::{SnapshotKey, SNAPSHOT_KEY_ENV};
use crate::state::*;
use crate::tls::LocalCa;

pub const DEFAULT_DATABASE: &str = "muejam";
pub const MASTER_USERNAME: &str = "muejam_admin";
/// The replication role, named as RDS names its own.
pub const REPLICATION_USERNAME: &str = "rdsrepladmin";
/// The control plane's own superuser (RDS has `rdsadmin`): what `describe`,
/// `promote` and fencing connect as, so that a fenced instance, which
/// refuses every application role, is still described.
pub const ADMIN_USERNAME: &str = "rdsadmin";
/// Named like the moto region's zones, so one failover input serves both.
pub const AVAILABILITY_ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
const ENGINE_VERSION: &str = "15";
/// Who may connect, and how: TCP only (there is no socket directory), only
/// over TLS, from loopback, with SCRAM. Plain TCP is refused outright, as
/// RDS does with `rds.force_ssl=1`. Rewritten with every configuration, so
/// a replica or a restore never inherits its source's file.
const HBA_CONF: &str = "\
# Written by drctl: TCP only over TLS; plain TCP is refused (rds.force_ssl=1).
hostssl   replication  all  127.0.0.0/8  scram-sha-256
hostssl   all          all  127.0.0.0/8  scram-sha-256
hostnossl all          all  0.0.0.0/0    reject
hostnossl replication  all  0.0.0.0/0    reject
";
/// A fenced instance admits only the control plane's own superuser, as a
/// quarantine security group admits nothing the applications send.
const FENCED_HBA_CONF: &str = "\
# Written by drctl: FENCED. Only the control plane (rdsadmin) may connect;
# every application role and replication is refused.
hostssl   all          rdsadmin  127.0.0.0/8  scram-sha-256
hostssl   all          all       0.0.0.0/0    reject
hostssl   replication  all       0.0.0.0/0    reject
hostnossl all          all       0.0.0.0/0    reject
hostnossl replication  all       0.0.0.0/0    reject
";
const START_TIMEOUT: Duration = Duration::from_secs(300);
const ARCHIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// Passwords of an instance (and of the snapshots taken from it).
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Credentials {
    pub master_username: String,
    pub master_password: String,
    pub replication_password: String,
    /// The control plane's superuser; instances made before it existed
    /// have none, and the control plane connects as the master user.
    #[serde(default)]
    pub admin_password: Option<String>,
}

/// Request to create a new, empty instance (RDS CreateDBInstance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateInstanceRequest {
    pub instance_id: InstanceId,
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub tags: Tags,
}

/// Result of decrypting a snapshot and running pg_verifybackup on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotVerification {
    pub snapshot_id: SnapshotId,
    pub encrypted: bool,
    pub verified: bool,
    pub detail: String,
}

/// What the server says about itself when it runs.
#[derive(Debug, Clone)]
struct LiveInfo {
    in_recovery: bool,
    server_version: String,
    replay_lsn: Option<PgLsn>,
    lag_seconds: Option<f64>,
}

/// The local control plane over one home directory.
#[derive(Debug, Clone)]
pub struct LocalControlPlane {
    home: PathBuf,
    store: StateStore,
    pg: PgRuntime,
    key: Arc<SnapshotKey>,
    ca: Arc<LocalCa>,
}

impl LocalControlPlane {
    /// Opens (and prepares) a home. The snapshot key comes from `key_file`,
    /// else `$DRCTL_SNAPSHOT_KEY_FILE`, else `keys/snapshot.key` in the home,
    /// created on first use.
    pub fn open(home: &Path, key_file: Option<&Path>) -> DrResult<Self> {
        let home = prepare_home(home)?;
        let pg = PgRuntime::discover()?;
        let key = match key_file
            .map(Path::to_owned)
            .or_else(|| std::env::var_os(SNAPSHOT_KEY_ENV).map(PathBuf::from))
        {
            Some(path) => SnapshotKey::load(&path)?,
            None => SnapshotKey::load_or_create(&home.join("keys").join("snapshot.key"))?,
        };
        make_dir(&home.join("credentials"), 0o700)?;
        for dir in ["instances", "wal-archive", "snapshots", "staging"] {
            make_dir(&home.join(dir), 0o711)?;
        }
        let ca = LocalCa::load_or_create(&home.join("tls"))?;
        Ok(LocalControlPlane {
            store: StateStore::new(&home),
            home,
            pg,
            key: Arc::new(key),
            ca: Arc::new(ca),
        })
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn store(&self) -> &StateStore {
        &self.store
    }

    pub fn pg(&self) -> &PgRuntime {
        &self.pg
    }

    /// How local callers protect SQL connections: verify-full against the
    /// home's CA (every cluster refuses plain TCP).
    pub fn tls_policy(&self) -> DatabaseTls {
        self.ca.policy()
    }

    /// The home's CA certificate (`PGSSLROOTCERT` for psql).
    pub fn ca_file(&self) -> PathBuf {
        self.ca.ca_file()
    }

    /// libpq's TLS settings for a PostgreSQL client binary run as the
    /// postgres user (pg_basebackup): verify-full against the home's CA.
    pub(crate) fn libpq_tls(&self, command: &mut tokio::process::Command) {
        command
            .env("PGSSLMODE", "verify-full")
            .env("PGSSLROOTCERT", self.ca.ca_file());
    }

    fn instance_dir(&self, id: &InstanceId) -> PathBuf {
        self.home.join("instances").join(id.as_str())
    }

    fn data_dir(&self, id: &InstanceId) -> PathBuf {
        self.instance_dir(id).join("data")
    }

    fn archive_dir(&self, id: &InstanceId) -> PathBuf {
        self.home.join("wal-archive").join(id.as_str())
    }

    fn credentials_path(&self, name: &str) -> PathBuf {
        self.home.join("credentials").join(format!("{name}.json"))
    }

    /// Runs `f` on the locked state. The lock is never held across an await.
    pub(crate) fn with_state<T>(
        &self,
        f: impl FnOnce(&mut StateGuard) -> DrResult<T>,
    ) -> DrResult<T> {
        let mut guard = self.store.lock()?;
        f(&mut guard)
    }

    pub(crate) fn read_credentials(&self, name: &str) -> DrResult<Credentials> {
        let path = self.credentials_path(name);
        let bytes = fs::read(&path)
            .map_err(|e| DrError::Internal(format!("reading credentials of {name}: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| DrError::Internal(format!("credentials of {name} are unreadable: {e}")))
    }

    pub(crate) fn write_credentials(&self, name: &str, credentials: &Credentials) -> DrResult<()> {
        let bytes = serde_json::to_vec(credentials)
            .map_err(|e| DrError::Internal(format!("serializing credentials: {e}")))?;
        let path = self.credentials_path(name);
        let tmp = path.with_extension("tmp");
        (|| -> std::io::Result<()> {
            use std::io::Write;
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)
        })()
        .map_err(|e| DrError::Internal(format!("writing credentials of {name}: {e}")))
    }

    /// How to connect to an instance as its master user.
    pub fn database_target(
        &self,
        id: &InstanceId,
        database: Option<&str>,
    ) -> DrResult<DatabaseTarget> {
        let record = self
            .store
            .read()?
            .instances
            .get(id)
            .cloned()
            .ok_or_else(|| DrError::NotFound(format!("DB instance {id} not found")))?;
        let credentials = self.read_credentials(id.as_str())?;
        Ok(DatabaseTarget {
            endpoint: Endpoint {
                address: record.address.clone(),
                port: record.port,
            },
            database: database.unwrap_or(&record.database).to_owned(),
            username: credentials.master_username,
            password: SecretString::from(credentials.master_password),
            connect_timeout_seconds: 3,
            statement_timeout_ms: 0,
            tls: self.tls_policy(),
        })
    }

    // ----- server lifecycle ------------------------------------------------

    fn postmaster_running(&self, id: &InstanceId) -> bool {
        self.postmaster_pid(id).is_some()
    }

    /// The pid of the instance's live postmaster, if any.
    fn postmaster_pid(&self, id: &InstanceId) -> Option<u32> {
        postmaster_pid_in(&self.data_dir(id))
    }

    async fn start_server(&self, id: &InstanceId) -> DrResult<()> {
        if self.postmaster_running(id) {
            return Ok(());
        }
        let data = self.data_dir(id);
        let log = self.instance_dir(id).join("postgresql.log");
        let timeout = START_TIMEOUT.as_secs().to_string();
        let result = self
            .pg
            .run(
                "pg_ctl",
                [
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-l".as_ref(),
                    log.as_os_str(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    timeout.as_ref(),
                    "start".as_ref(),
                ],
            )
            .await;
        result.map(drop).map_err(|e| {
            DrError::Internal(format!(
                "starting {id}: {e}; server log: {}",
                log_tail(&log)
            ))
        })
    }

    async fn stop_server(&self, id: &InstanceId, immediate: bool) -> DrResult<()> {
        let Some(pid) = self.postmaster_pid(id) else {
            return Ok(());
        };
        // A frozen server would never see the shutdown request.
        crate::processes::thaw(pid);
        let data = self.data_dir(id);
        let mode = if immediate { "immediate" } else { "fast" };
        let attempt = self
            .pg
            .run(
                "pg_ctl",
                [
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-m".as_ref(),
                    mode.as_ref(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    "60".as_ref(),
                    "stop".as_ref(),
                ],
            )
            .await;
        if attempt.is_err() && !immediate {
            return Box::pin(self.stop_server(id, true)).await;
        }
        attempt.map(drop)
    }

    /// Writes the settings that make a cluster this instance: its port, its
    /// own WAL archive, and (for replicas and restores) how to recover.
    fn write_instance_config(
        &self,
        id: &InstanceId,
        port: u16,
        extra: &[(&str, String)],
    ) -> DrResult<()> {
        let (address, fenced) = self
            .store
            .read()?
            .instances
            .get(id)
            .map(|r| (r.address.clone(), r.fenced.is_some()))
            .unwrap_or_else(|| ("127.0.0.1".to_owned(), false));
        let hba = if fenced { FENCED_HBA_CONF } else { HBA_CONF };
        let archive = self.archive_dir(id);
        let archive = archive.display();
        let tls_dir = self.instance_dir(id).join("tls");
        let mut conf = format!(
            "# Written by drctl for instance {id}; rewritten on every restore.\n\
             cluster_name = '{id}'\n\
             listen_addresses = '{address}'\n\
             port = {port}\n\
             unix_socket_directories = ''\n\
             max_connections = 50\n\
             shared_buffers = '64MB'\n\
             password_encryption = 'scram-sha-256'\n\
             wal_level = replica\n\
             max_wal_senders = 10\n\
             wal_keep_size = '256MB'\n\
             hot_standby = on\n\
             hot_standby_feedback = on\n\
             archive_mode = on\n\
             archive_command = 'test ! -f \"{archive}/%f\" && cp \"%p\" \"{archive}/%f\"'\n\
             archive_timeout = 60\n\
             ssl = on\n\
             ssl_cert_file = '{cert}'\n\
             ssl_key_file = '{key}'\n\
             ssl_min_protocol_version = 'TLSv1.2'\n",
            cert = tls_dir.join("server.crt").display(),
            key = tls_dir.join("server.key").display(),
        );
        for (key, value) in extra {
            conf.push_str(&format!("{key} = '{}'\n", value.replace('\'', "''")));
        }
        let data = self.data_dir(id);
        make_dir(&tls_dir, 0o700)?;
        let issued =
            self.ca
                .issue_server(&[address.clone(), "localhost".to_owned(), id.to_string()])?;
        crate::tls::write_file(&tls_dir.join("server.crt"), &issued.certificate_pem, 0o644)?;
        crate::tls::write_file(&tls_dir.join("server.key"), &issued.key_pem, 0o600)?;
        let write = || -> std::io::Result<()> {
            fs::write(data.join("dr-local.conf"), conf.as_bytes())?;
            fs::write(data.join("pg_hba.conf"), hba.as_bytes())?;
            // Settings of the source (ALTER SYSTEM, primary_conninfo written by
            // pg_basebackup -R) must not leak into a copy.
            fs::write(
                data.join("postgresql.auto.conf"),
                b"# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n",
            )?;
            let main = data.join("postgresql.conf");
            let text = fs::read_to_string(&main)?;
            if !text.contains("include_if_exists = 'dr-local.conf'") {
                fs::write(
                    &main,
                    format!("{text}\ninclude_if_exists = 'dr-local.conf'\n"),
                )?;
            }
            for signal in ["standby.signal", "recovery.signal"] {
                let _ = fs::remove_file(data.join(signal));
            }
            Ok(())
        };
        write().map_err(|e| DrError::Internal(format!("configuring {id}: {e}")))?;
        make_dir(&self.archive_dir(id), 0o700)?;
        self.pg.give(&self.archive_dir(id))?;
        self.pg.give(&self.instance_dir(id))
    }

    fn touch_signal(&self, id: &InstanceId, signal: &str) -> DrResult<()> {
        let path = self.data_dir(id).join(signal);
        fs::write(&path, b"")
            .map_err(|e| DrError::Internal(format!("writing {signal} for {id}: {e}")))?;
        self.pg.give(&path)
    }

    /// Connects as the control plane's own superuser.
    async fn connect_master(
        &self,
        id: &InstanceId,
        database: &str,
    ) -> DrResult<tokio_postgres::Client> {
        let mut target = self.database_target(id, Some(database))?;
        if let Some(password) = self.read_credentials(id.as_str())?.admin_password {
            target.username = ADMIN_USERNAME.to_owned();
            target.password = SecretString::from(password);
        }
        target.connect_timeout_seconds = 2;
        dr_postgres::connect(&target).await
    }

    async fn live_info(&self, id: &InstanceId) -> DrResult<LiveInfo> {
        let client = self.connect_master(id, "postgres").await?;
        let row = client
            .query_one(
                "SELECT pg_is_in_recovery(), current_setting('server_version'),
                        pg_last_wal_replay_lsn(),
                        CASE WHEN NOT pg_is_in_recovery() THEN NULL
                             WHEN pg_last_wal_receive_lsn() IS NULL
                               OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0::float8
                             ELSE EXTRACT(EPOCH FROM clock_timestamp()
                                          - pg_last_xact_replay_timestamp())::float8 END",
                &[],
            )
            .await
            .map_err(|e| dr_postgres::map_pg_error(&format!("describing {id}"), &e))?;
        Ok(LiveInfo {
            in_recovery: row.get(0),
            server_version: row.get(1),
            replay_lsn: row.get(2),
            lag_seconds: row.get(3),
        })
    }

    /// Where the source's WAL stands (its insert position, or its replay
    /// position when it is itself a replica).
    async fn current_lsn(&self, id: &InstanceId) -> DrResult<PgLsn> {
        let client = self.connect_master(id, "postgres").await?;
        let row = client
            .query_one(
                "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                             ELSE pg_current_wal_lsn() END",
                &[],
            )
            .await
            .map_err(|e| dr_postgres::map_pg_error(&format!("reading WAL position of {id}"), &e))?;
        Ok(row.get(0))
    }

    async fn wait_until<F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> DrResult<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = DrResult<bool>>,
    {
        let started = Instant::now();
        let mut last_error = None;
        while started.elapsed() < timeout {
            match check().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) if e.is_transient() => last_error = Some(e),
                Err(e) => return Err(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(DrError::Timeout(format!(
            "{what} did not happen within {} s{}",
            timeout.as_secs(),
            last_error
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        )))
    }

    /// Describes an instance from its record plus what the server reports.
    pub(crate) async fn describe_record(
        &self,
        id: &InstanceId,
        record: &InstanceRecord,
        state: &LocalState,
    ) -> DrResult<InstanceDescription> {
        let running = self.postmaster_running(id);
        // A hung server (its processes stopped) looks alive to a control
        // plane that sees the process, as RDS sees a host that stopped
        // answering on the network: `available`, with nothing measured.
        let hung = record.hung && running;
        let live =
            if running && !hung && record.live_busy_status() != Some(InstanceStatus::Creating) {
                self.live_info(id).await.ok()
            } else {
                None
            };
        let status = if let Some(busy) = record.live_busy_status() {
            busy
        } else if hung {
            InstanceStatus::Available
        } else if record.failed.is_some() {
            InstanceStatus::Failed
        } else if !record.should_run {
            InstanceStatus::Stopped
        } else if live.is_some() {
            InstanceStatus::Available
        } else if running {
            InstanceStatus::Rebooting
        } else {
            InstanceStatus::Failed
        };
        let in_recovery = live
            .as_ref()
            .map_or(record.replication_source.is_some(), |l| l.in_recovery);
        let replication_source = if in_recovery {
            record.replication_source.clone()
        } else {
            None
        };
        // Behind with no replayed transaction to date it: the lag is unknown,
        // and unknown must not read as zero.
        let replica_lag = match (&live, &replication_source) {
            (Some(info), Some(source)) if info.in_recovery && info.lag_seconds.is_some() => {
                let source_hung = state.instances.get(source).is_some_and(|r| r.hung);
                let source_lsn = if self.postmaster_running(source) && !source_hung {
                    self.current_lsn(source).await.ok()
                } else {
                    None
                };
                // The source's position unknown (down or hung): the bytes
                // behind are unknown, never zero.
                let bytes = match (source_lsn, info.replay_lsn) {
                    (Some(source), Some(replayed)) => {
                        Some(u64::from(source).saturating_sub(u64::from(replayed)))
                    }
                    _ => None,
                };
                Some(ReplicaLag {
                    seconds: info.lag_seconds.unwrap_or_default().max(0.0),
                    bytes,
                })
            }
            _ => None,
        };
        let read_replicas = state
            .instances
            .iter()
            .filter(|(_, r)| r.replication_source.as_ref() == Some(id))
            .map(|(rid, _)| rid.clone())
            .collect();
        let (earliest, latest) = if in_recovery {
            (None, None)
        } else {
            let earliest = state
                .snapshots
                .values()
                .filter(|s| &s.source_instance_id == id && s.taken_from_primary)
                .map(|s| s.completed_at)
                .min();
            let latest = match (&live, earliest) {
                (_, None) => None,
                (Some(_), Some(_)) => Some(Utc::now()),
                (None, Some(e)) => Some(record.archived_until.map_or(e, |a| a.max(e))),
            };
            (earliest, latest)
        };
        Ok(InstanceDescription {
            network: None,
            instance_id: id.clone(),
            status,
            role: if in_recovery {
                InstanceRole::Replica
            } else {
                InstanceRole::Primary
            },
            endpoint: Some(Endpoint {
                address: record.address.clone(),
                port: record.port,
            }),
            engine: "postgres".to_owned(),
            engine_version: live
                .as_ref()
                .map_or_else(|| ENGINE_VERSION.to_owned(), |l| l.server_version.clone()),
            availability_zone: Some(record.availability_zone.clone()),
            storage_encrypted: false,
            replication_source,
            read_replicas,
            replica_lag,
            earliest_restorable_time: earliest,
            latest_restorable_time: latest,
            created_at: record.created_at,
            tags: record.tags.clone(),
        })
    }

    pub(crate) async fn describe(&self, id: &InstanceId) -> DrResult<InstanceDescription> {
        let state = self.store.read()?;
        let record = state
            .instances
            .get(id)
            .ok_or_else(|| DrError::NotFound(format!("DB instance {id} not found")))?;
        self.describe_record(id, record, &state).await
    }

    pub(crate) fn free_port(&self, state: &LocalState) -> DrResult<u16> {
        for _ in 0..50 {
            let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
                .map_err(|e| DrError::Internal(format!("finding a free port: {e}")))?;
            let port = listener
                .local_addr()
                .map_err(|e| DrError::Internal(format!("finding a free port: {e}")))?
                .port();
            if !state.instances.values().any(|r| r.port == port)
                && state.moto.as_ref().is_none_or(|m| m.port != port)
            {
                return Ok(port);
            }
        }
        Err(DrError::Internal("no free loopback port found".to_owned()))
    }

    /// Registers a new instance as `creating`, or returns the existing one when
    /// it has the same origin (idempotent retry).
    pub(crate) fn begin_create(
        &self,
        id: &InstanceId,
        origin: Origin,
        availability_zone: Option<String>,
        replication_source: Option<InstanceId>,
        tags: &Tags,
    ) -> DrResult<Option<InstanceRecord>> {
        self.with_state(|guard| {
            if let Some(existing) = guard.state.instances.get(id) {
                if existing.origin == origin && origin != Origin::New && existing.failed.is_none() {
                    return Ok(None);
                }
                return Err(DrError::AlreadyExists(format!(
                    "DB instance {id} already exists ({})",
                    describe_origin(&existing.origin)
                )));
            }
            if let Some(az) = &availability_zone {
                if !AVAILABILITY_ZONES.contains(&az.as_str()) {
                    return Err(DrError::InvalidInput(format!(
                        "availability zone {az:?} does not exist; the local platform has {}",
                        AVAILABILITY_ZONES.join(", ")
                    )));
                }
            }
            let port = self.free_port(&guard.state)?;
            let address = free_address(&guard.state)?;
            let record = InstanceRecord {
                address,
                port,
                created_at: Utc::now(),
                availability_zone: availability_zone
                    .unwrap_or_else(|| AVAILABILITY_ZONES[0].to_owned()),
                origin,
                replication_source,
                master_username: MASTER_USERNAME.to_owned(),
                database: DEFAULT_DATABASE.to_owned(),
                should_run: true,
                failed: None,
                busy: Some(Busy {
                    status: InstanceStatus::Creating,
                    pid: std::process::id(),
                }),
                archived_until: None,
                tags: tags.clone(),
                fenced: None,
                hung: false,
            };
            guard.state.instances.insert(id.clone(), record.clone());
            guard.save()?;
            Ok(Some(record))
        })
    }

    /// Marks the end of a creation: available, or failed with the reason.
    pub(crate) async fn finish_create(
        &self,
        id: &InstanceId,
        outcome: DrResult<()>,
    ) -> DrResult<InstanceDescription> {
        if let Err(error) = &outcome {
            let _ = self.stop_server(id, true).await;
            let message = error.to_string();
            self.with_state(|guard| {
                let record = guard.instance_mut(id)?;
                record.busy = None;
                record.failed = Some(message);
                guard.save()
            })?;
            tracing::warn!(instance = %id, %error, "instance creation failed");
        } else {
            self.with_state(|guard| {
                guard.instance_mut(id)?.busy = None;
                guard.save()
            })?;
        }
        outcome?;
        self.describe(id).await
    }

    /// Creates a new, empty instance: initdb with data checksums, WAL
    /// archiving on, a free loopback port, the master and replication roles,
    /// and the application database.
    pub async fn create_instance(
        &self,
        request: &CreateInstanceRequest,
    ) -> DrResult<InstanceDescription> {
        let id = &request.instance_id;
        ResourceId::parse_instance(id.as_str())?;
        let Some(record) = self.begin_create(
            id,
            Origin::New,
            request.availability_zone.clone(),
            None,
            &request.tags,
        )?
        else {
            return self.describe(id).await;
        };
        let outcome = self.initialise(id, &record).await;
        self.finish_create(id, outcome).await
    }

    async fn initialise(&self, id: &InstanceId, record: &InstanceRecord) -> DrResult<()> {
        let credentials = Credentials {
            master_username: MASTER_USERNAME.to_owned(),
            master_password: random_password(),
            replication_password: random_password(),
            admin_password: Some(random_password()),
        };
        self.write_credentials(id.as_str(), &credentials)?;
        let dir = self.instance_dir(id);
        make_dir(&dir, 0o700)?;
        let pwfile = dir.join("initdb.pw");
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&pwfile)
            .and_then(|mut f| {
                std::io::Write::write_all(
                    &mut f,
                    credentials
                        .admin_password
                        .as_deref()
                        .unwrap_or_default()
                        .as_bytes(),
                )
            })
            .map_err(|e| DrError::Internal(format!("writing initdb password file: {e}")))?;
        self.pg.give(&dir)?;
        let data = self.data_dir(id);
        let result = self
            .pg
            .run(
                "initdb",
                [
                    "-D".as_ref(),
                    data.as_os_str(),
                    "--data-checksums".as_ref(),
                    "-U".as_ref(),
                    ADMIN_USERNAME.as_ref(),
                    format!("--pwfile={}", pwfile.display()).as_ref(),
                    "--auth=scram-sha-256".as_ref(),
                    "-E".as_ref(),
                    "UTF8".as_ref(),
                    "--locale=C.UTF-8".as_ref(),
                    "--no-sync".as_ref(),
                    "--no-instructions".as_ref(),
                ]
                .iter()
                .map(|s: &&std::ffi::OsStr| s.to_os_string())
                .collect::<Vec<_>>(),
            )
            .await;
        let _ = fs::remove_file(&pwfile);
        result?;
        self.write_instance_config(id, record.port, &[])?;
        self.start_server(id).await?;
        let client = self.connect_master(id, "postgres").await?;
        let verifier =
            postgres_protocol::password::scram_sha_256(credentials.replication_password.as_bytes());
        let master_verifier =
            postgres_protocol::password::scram_sha_256(credentials.master_password.as_bytes());
        for statement in [
            format!(
                "CREATE ROLE {REPLICATION_USERNAME} WITH REPLICATION LOGIN PASSWORD '{verifier}'"
            ),
            // The master user keeps the powers it had as the bootstrap user.
            format!(
                "CREATE ROLE {MASTER_USERNAME} WITH SUPERUSER CREATEDB CREATEROLE LOGIN PASSWORD '{master_verifier}'"
            ),
            format!("CREATE DATABASE {DEFAULT_DATABASE} OWNER {MASTER_USERNAME}"),
        ] {
            client
                .batch_execute(&statement)
                .await
                .map_err(|e| dr_postgres::map_pg_error(&format!("initialising {id}"), &e))?;
        }
        Ok(())
    }

    /// Starts an instance that was stopped (or crashed).
    pub async fn start_instance(&self, id: &InstanceId) -> DrResult<InstanceDescription> {
        self.with_state(|guard| {
            guard.instance_mut(id)?.should_run = true;
            guard.save()
        })?;
        self.start_server(id).await?;
        self.describe(id).await
    }

    /// Stops an instance cleanly; `describe` then reports `stopped`.
    pub async fn stop_instance(&self, id: &InstanceId) -> DrResult<()> {
        self.with_state(|guard| guard.instance(id).map(drop))?;
        self.stop_server(id, false).await?;
        self.with_state(|guard| {
            guard.instance_mut(id)?.should_run = false;
            guard.save()
        })
    }

    /// Kills an instance as a crash would (immediate shutdown, no record of a
    /// deliberate stop): `describe` then reports `failed`. For drills and tests.
    pub async fn crash_instance(&self, id: &InstanceId) -> DrResult<()> {
        self.with_state(|guard| {
            guard.instance_mut(id)?.hung = false;
            guard.save()
        })?;
        self.stop_server(id, true).await
    }

    /// Freezes an instance's server (SIGSTOP of the postmaster and every
    /// child): connections time out, existing sessions stall, and the
    /// control plane still says `available`, as for a hung host or a network
    /// partition. For drills and tests; `resume_instance` undoes it.
    pub async fn hang_instance(&self, id: &InstanceId) -> DrResult<()> {
        let pid = self.postmaster_pid(id).ok_or_else(|| {
            DrError::NotReady(format!(
                "DB instance {id} is not running; there is nothing to hang"
            ))
        })?;
        self.with_state(|guard| {
            guard.instance_mut(id)?.hung = true;
            guard.save()
        })?;
        crate::processes::freeze(pid);
        Ok(())
    }

    /// Lets a hung instance run again.
    pub async fn resume_instance(&self, id: &InstanceId) -> DrResult<()> {
        self.with_state(|guard| {
            guard.instance_mut(id)?.hung = false;
            guard.save()
        })?;
        if let Some(pid) = self.postmaster_pid(id) {
            crate::processes::thaw(pid);
        }
        Ok(())
    }

    /// Fencing, locally: `pg_hba.conf` admits only the control plane's
    /// superuser, the postmaster reloads it and every client session ends.
    /// Works on a hung server too: the signals wait until it runs again, and
    /// the reload comes before any new connection. The instance, its data
    /// and its WAL are kept.
    pub(crate) async fn fence(
        &self,
        id: &InstanceId,
        request: &FenceRequest,
    ) -> DrResult<FenceOutcome> {
        let already = self.with_state(|guard| {
            let record = guard.instance_mut(id)?;
            let already = record.fenced.is_some();
            if !already {
                record.fenced = Some(request.by.clone());
                record
                    .tags
                    .insert(FENCED_TAG.to_owned(), request.by.clone());
                guard.save()?;
            }
            Ok(already)
        })?;
        let hba = self.data_dir(id).join("pg_hba.conf");
        fs::write(&hba, FENCED_HBA_CONF.as_bytes())
            .map_err(|e| DrError::Internal(format!("fencing {id}: {e}")))?;
        self.pg.give(&hba)?;
        let ended = self
            .postmaster_pid(id)
            .map(crate::processes::reload_and_end_sessions);
        tracing::info!(instance = %id, by = %request.by, ?ended, "fenced");
        Ok(FenceOutcome {
            already_fenced: already,
            method: match ended {
                Some(n) => format!(
                    "pg_hba.conf admits only the control plane ({ADMIN_USERNAME}); reloaded; {n} client or replication session(s) ended"
                ),
                None => format!(
                    "pg_hba.conf admits only the control plane ({ADMIN_USERNAME}); the server is not running, and will refuse applications when started"
                ),
            },
        })
    }

    /// Stops every running instance (for `drctl local down`).
    pub async fn stop_all(&self) -> DrResult<Vec<InstanceId>> {
        let ids: Vec<InstanceId> = self.store.read()?.instances.keys().cloned().collect();
        let mut stopped = Vec::new();
        for id in ids {
            if self.postmaster_running(&id) {
                self.stop_server(&id, false).await?;
                stopped.push(id);
            }
        }
        Ok(stopped)
    }

    /// Stops every server of this home at once, without waiting on anything
    /// async: for cleanup on drop and on interrupted runs.
    pub fn stop_all_blocking(&self) {
        let Ok(entries) = fs::read_dir(self.home.join("instances")) else {
            return;
        };
        for entry in entries.flatten() {
            let data = entry.path().join("data");
            if let Some(pid) = postmaster_pid_in(&data) {
                crate::processes::thaw(pid);
            }
            if data.join("postmaster.pid").exists() {
                let _ = self
                    .pg
                    .blocking_command("pg_ctl")
                    .arg("-D")
                    .arg(&data)
                    .args(["-m", "immediate", "-w", "-t", "30", "stop"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }

    /// Whether any instance of this home still has a live postmaster.
    pub fn running_instances(&self) -> DrResult<Vec<InstanceId>> {
        Ok(self
            .store
            .read()?
            .instances
            .keys()
            .filter(|id| self.postmaster_running(id))
            .cloned()
            .collect())
    }

    // ----- snapshots -------------------------------------------------------

    pub(crate) async fn connect_admin(&self, id: &InstanceId) -> DrResult<tokio_postgres::Client> {
        self.connect_master(id, "postgres").await
    }

    pub(crate) fn read_credentials_for(&self, id: &InstanceId) -> DrResult<Credentials> {
        self.read_credentials(id.as_str())
    }

    pub(crate) fn update_master_password(
        &self,
        id: &InstanceId,
        password: &SecretString,
    ) -> DrResult<()> {
        let mut credentials = self.read_credentials(id.as_str())?;
        credentials.master_password = password.expose_secret().to_owned();
        self.write_credentials(id.as_str(), &credentials)
    }

    /// pg_basebackup from the source, then a standby streaming from it with
    /// the source's archive as fallback.
    pub(crate) async fn build_replica(
        &self,
        replica: &InstanceId,
        source: &InstanceId,
        source_endpoint: Option<Endpoint>,
        port: u16,
    ) -> DrResult<()> {
        let source_endpoint = source_endpoint
            .ok_or_else(|| DrError::NotReady(format!("source {source} has no endpoint")))?;
        let credentials = self.read_credentials(source.as_str())?;
        self.write_credentials(replica.as_str(), &credentials)?;
        let dir = self.instance_dir(replica);
        make_dir(&dir, 0o700)?;
        self.pg.give(&dir)?;
        let mut command = self.pg.command("pg_basebackup");
        command
            .args([
                "-h",
                &source_endpoint.address,
                "-p",
                &source_endpoint.port.to_string(),
            ])
            .args(["-U", REPLICATION_USERNAME, "-w", "-D"])
            .arg(self.data_dir(replica))
            .args(["-X", "stream", "-c", "fast", "--no-manifest"])
            .env("PGPASSWORD", &credentials.replication_password);
        self.libpq_tls(&mut command);
        crate::pg::run_checked("pg_basebackup", command).await?;
        let conninfo = format!(
            "host={} port={} user={REPLICATION_USERNAME} password={} application_name={replica} \
             sslmode=verify-full sslrootcert={}",
            source_endpoint.address,
            source_endpoint.port,
            credentials.replication_password,
            self.ca.ca_file().display()
        );
        self.write_instance_config(
            replica,
            port,
            &[
                ("primary_conninfo", conninfo),
                (
                    "restore_command",
                    format!("cp \"{}/%f\" \"%p\"", self.archive_dir(source).display()),
                ),
            ],
        )?;
        self.touch_signal(replica, "standby.signal")?;
        self.start_server(replica).await
    }

    /// Stops the server and removes its data and WAL archive.
    pub(crate) async fn remove_instance_files(&self, id: &InstanceId) -> DrResult<()> {
        self.stop_server(id, true).await?;
        for dir in [self.instance_dir(id), self.archive_dir(id)] {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(DrError::Internal(format!(
                        "removing {}: {e}",
                        dir.display()
                    )))
                }
            }
        }
        let _ = fs::remove_file(self.credentials_path(id.as_str()));
        Ok(())
    }

    fn snapshot_path(&self, id: &SnapshotId) -> PathBuf {
        PathBuf::from("snapshots").join(format!("{}.tar.age", id.as_str().replace(':', "_")))
    }

    fn staging_dir(&self, label: &str) -> DrResult<PathBuf> {
        let dir = self.home.join("staging").join(format!(
            "{label}-{}",
            Alphanumeric
                .sample_string(&mut rand::thread_rng(), 8)
                .to_lowercase()
        ));
        make_dir(&dir, 0o700)?;
        self.pg.give(&dir)?;
        Ok(dir)
    }

    /// Takes a base backup of `request.instance_id`, seals it, and records it.
    pub async fn snapshot(
        &self,
        request: &CreateSnapshotRequest,
        snapshot_type: SnapshotType,
    ) -> DrResult<SnapshotDescription> {
        let id = &request.instance_id;
        let snapshot_id = &request.snapshot_id;
        let description = self.describe(id).await?;
        let record = self.with_state(|guard| {
            if let Some(existing) = guard.state.snapshots.get(snapshot_id) {
                if &existing.source_instance_id == id {
                    return Ok(None);
                }
                return Err(DrError::AlreadyExists(format!(
                    "DB snapshot {snapshot_id} already exists (of {})",
                    existing.source_instance_id
                )));
            }
            let record = guard.instance_mut(id)?;
            if let Some(status) = record.live_busy_status() {
                return Err(DrError::NotReady(format!(
                    "DB instance {id} is {status}; a snapshot needs it available"
                )));
            }
            if description.status != InstanceStatus::Available {
                return Err(DrError::NotReady(format!(
                    "DB instance {id} is {}; a snapshot needs it available",
                    description.status
                )));
            }
            record.busy = Some(Busy {
                status: InstanceStatus::BackingUp,
                pid: std::process::id(),
            });
            let record = record.clone();
            guard.save()?;
            Ok(Some(record))
        })?;
        let Some(record) = record else {
            return self.snapshot_description(snapshot_id);
        };
        let started = Utc::now();
        let outcome = self.take_backup(id, &record, snapshot_id).await;
        self.with_state(|guard| {
            if let Ok(r) = guard.instance_mut(id) {
                r.busy = None;
            }
            if let Ok((size, row_counts)) = &outcome {
                guard.state.snapshots.insert(
                    snapshot_id.clone(),
                    SnapshotRecord {
                        source_instance_id: id.clone(),
                        snapshot_type,
                        created_at: started,
                        completed_at: Utc::now(),
                        taken_from_primary: description.role == InstanceRole::Primary,
                        size_bytes: *size,
                        file: self.snapshot_path(snapshot_id),
                        engine_version: description.engine_version.clone(),
                        row_counts: row_counts.clone(),
                        tags: request.tags.clone(),
                    },
                );
            }
            guard.save()
        })?;
        outcome?;
        self.snapshot_description(snapshot_id)
    }

    async fn take_backup(
        &self,
        id: &InstanceId,
        record: &InstanceRecord,
        snapshot_id: &SnapshotId,
    ) -> DrResult<(u64, BTreeMap<String, u64>)> {
        let credentials = self.read_credentials(id.as_str())?;
        let staging = self.staging_dir("backup")?;
        let result = async {
            let backup_dir = staging.join("backup");
            let mut command = self.pg.command("pg_basebackup");
            command
                .args(["-h", &record.address, "-p", &record.port.to_string()])
                .args(["-U", REPLICATION_USERNAME, "-w", "-D"])
                .arg(&backup_dir)
                .args([
                    "-F",
                    "tar",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "--manifest-checksums=SHA256",
                ])
                .args(["-l", &format!("drctl snapshot {snapshot_id}")])
                .env("PGPASSWORD", &credentials.replication_password);
            self.libpq_tls(&mut command);
            crate::pg::run_checked("pg_basebackup", command).await?;
            let mut target = self.database_target(id, None)?;
            target.statement_timeout_ms = 0;
            let client = dr_postgres::connect(&target).await?;
            let row_counts = dr_postgres::target::table_row_counts(&client).await?;
            let output = self.home.join(self.snapshot_path(snapshot_id));
            let key = Arc::clone(&self.key);
            let size = tokio::task::spawn_blocking(move || key.seal(&backup_dir, &output))
                .await
                .map_err(|e| DrError::Internal(format!("sealing task: {e}")))??;
            self.write_credentials(&snapshot_credentials_name(snapshot_id), &credentials)?;
            Ok((size, row_counts))
        }
        .await;
        let _ = fs::remove_dir_all(&staging);
        result
    }

    fn snapshot_description(&self, id: &SnapshotId) -> DrResult<SnapshotDescription> {
        let state = self.store.read()?;
        let record = state
            .snapshots
            .get(id)
            .ok_or_else(|| DrError::NotFound(format!("DB snapshot {id} not found")))?;
        Ok(describe_snapshot(id, record))
    }

    /// Row counts per table recorded when the snapshot was taken.
    pub fn snapshot_row_counts(&self, id: &SnapshotId) -> DrResult<BTreeMap<String, u64>> {
        let state = self.store.read()?;
        state
            .snapshots
            .get(id)
            .map(|s| s.row_counts.clone())
            .ok_or_else(|| DrError::NotFound(format!("DB snapshot {id} not found")))
    }

    /// The sealed file of a snapshot (for tests and drills that tamper with it).
    pub fn snapshot_file(&self, id: &SnapshotId) -> DrResult<PathBuf> {
        let state = self.store.read()?;
        state
            .snapshots
            .get(id)
            .map(|s| self.home.join(&s.file))
            .ok_or_else(|| DrError::NotFound(format!("DB snapshot {id} not found")))
    }

    /// Decrypts a snapshot into scratch space and runs pg_verifybackup on it.
    /// A snapshot that does not decrypt or verify is `Corrupt`.
    pub async fn verify_snapshot(&self, id: &SnapshotId) -> DrResult<SnapshotVerification> {
        let sealed = self.snapshot_file(id)?;
        let staging = self.staging_dir("verify")?;
        let result = async {
            let data = staging.join("data");
            let key = Arc::clone(&self.key);
            let target = data.clone();
            tokio::task::spawn_blocking(move || key.open_into_data_dir(&sealed, &target))
                .await
                .map_err(|e| DrError::Internal(format!("unsealing task: {e}")))??;
            self.pg.give(&staging)?;
            let mut command = self.pg.command("pg_verifybackup");
            command.arg(&data).stdin(std::process::Stdio::null());
            let output = command
                .output()
                .await
                .map_err(|e| DrError::Internal(format!("starting pg_verifybackup: {e}")))?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            if output.status.success() {
                Ok(SnapshotVerification {
                    snapshot_id: id.clone(),
                    encrypted: true,
                    verified: true,
                    detail: tail(&text, 3),
                })
            } else {
                Err(DrError::Corrupt(format!(
                    "snapshot {id} fails pg_verifybackup: {}",
                    tail(&text, 6)
                )))
            }
        }
        .await;
        let _ = fs::remove_dir_all(&staging);
        result
    }

    // ----- restores --------------------------------------------------------

    /// Lays a sealed snapshot out as the data directory of `target`.
    async fn unseal_into(&self, snapshot_file: PathBuf, target: &InstanceId) -> DrResult<()> {
        let dir = self.instance_dir(target);
        make_dir(&dir, 0o700)?;
        let data = self.data_dir(target);
        if data.exists() {
            fs::remove_dir_all(&data)
                .map_err(|e| DrError::Internal(format!("clearing {}: {e}", data.display())))?;
        }
        let key = Arc::clone(&self.key);
        let data_for_task = data.clone();
        tokio::task::spawn_blocking(move || key.open_into_data_dir(&snapshot_file, &data_for_task))
            .await
            .map_err(|e| DrError::Internal(format!("unsealing task: {e}")))??;
        // The manifest describes the backup, not the running cluster.
        let _ = fs::remove_file(data.join("backup_manifest"));
        self.pg.give(&dir)
    }

    async fn wait_until_writable(&self, id: &InstanceId) -> DrResult<()> {
        self.wait_until(&format!("{id} leaving recovery"), START_TIMEOUT, || async {
            if !self.postmaster_running(id) {
                let log = self.instance_dir(id).join("postgresql.log");
                return Err(DrError::Internal(format!(
                    "{id} stopped during recovery: {}",
                    log_tail(&log)
                )));
            }
            match self.live_info(id).await {
                Ok(info) => Ok(!info.in_recovery),
                Err(e) => Err(DrError::NotReady(e.to_string())),
            }
        })
        .await
    }

    pub(crate) async fn restore_snapshot_into(
        &self,
        snapshot_id: &SnapshotId,
        target: &InstanceId,
        port: u16,
    ) -> DrResult<()> {
        let file = self.snapshot_file(snapshot_id)?;
        self.unseal_into(file, target).await?;
        let credentials = self.read_credentials(&snapshot_credentials_name(snapshot_id))?;
        self.write_credentials(target.as_str(), &credentials)?;
        self.write_instance_config(target, port, &[])?;
        self.start_server(target).await?;
        self.wait_until_writable(target).await
    }

    /// The PITR window of a source: from its oldest base backup to the newest
    /// moment its WAL archive is known (or can be made) to hold.
    pub(crate) async fn restorable_window(
        &self,
        source: &InstanceId,
    ) -> DrResult<(DateTime<Utc>, DateTime<Utc>)> {
        let description = self.describe(source).await?;
        match (description.earliest_restorable_time, description.latest_restorable_time) {
            (Some(earliest), Some(latest)) => Ok((earliest, latest)),
            _ => Err(DrError::InvalidInput(format!(
                "DB instance {source} has no restorable window: it has no base backup taken while it was a primary"
            ))),
        }
    }

    /// Forces every commit up to now into the WAL archive: a commit record
    /// stamped after the target (so recovery can stop there), a segment
    /// switch, and a wait for the archiver.
    pub(crate) async fn archive_through_now(&self, source: &InstanceId) -> DrResult<DateTime<Utc>> {
        let client = self.connect_master(source, "postgres").await?;
        let row = client
            .query_one("SELECT txid_current(), clock_timestamp()", &[])
            .await
            .map_err(|e| dr_postgres::map_pg_error("stamping WAL", &e))?;
        let stamped: DateTime<Utc> = row.get(1);
        let row = client
            .query_one("SELECT pg_walfile_name(pg_switch_wal())", &[])
            .await
            .map_err(|e| dr_postgres::map_pg_error("switching WAL segment", &e))?;
        let segment: String = row.get(0);
        self.wait_until(&format!("archiving of {segment}"), ARCHIVE_TIMEOUT, || {
            let client = &client;
            let segment = segment.clone();
            async move {
                let row = client
                    .query_one(
                        "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
                        &[],
                    )
                    .await
                    .map_err(|e| dr_postgres::map_pg_error("reading archiver status", &e))?;
                let archived: String = row.get(0);
                Ok(archived.len() == segment.len() && archived[8..] >= segment[8..])
            }
        })
        .await?;
        self.with_state(|guard| {
            guard.instance_mut(source)?.archived_until = Some(stamped);
            guard.save()
        })?;
        Ok(stamped)
    }

    pub(crate) async fn restore_point_in_time_into(
        &self,
        request: &PointInTimeRestoreRequest,
        port: u16,
    ) -> DrResult<()> {
        let source = &request.source_id;
        let base = {
            let state = self.store.read()?;
            state
                .snapshots
                .iter()
                .filter(|(_, s)| {
                    &s.source_instance_id == source
                        && s.taken_from_primary
                        && s.completed_at <= request.restore_time
                })
                .max_by_key(|(_, s)| s.completed_at)
                .map(|(id, _)| id.clone())
                .ok_or_else(|| {
                    DrError::InvalidInput(format!(
                        "no base backup of {source} finished before {}",
                        request.restore_time.to_rfc3339()
                    ))
                })?
        };
        let target = &request.target_id;
        self.unseal_into(self.snapshot_file(&base)?, target).await?;
        let credentials = self.read_credentials(&snapshot_credentials_name(&base))?;
        self.write_credentials(target.as_str(), &credentials)?;
        let archive = self.archive_dir(source);
        self.write_instance_config(
            target,
            port,
            &[
                (
                    "restore_command",
                    format!("cp \"{}/%f\" \"%p\"", archive.display()),
                ),
                ("recovery_target_time", request.restore_time.to_rfc3339()),
                ("recovery_target_action", "promote".to_owned()),
                ("recovery_target_timeline", "latest".to_owned()),
            ],
        )?;
        self.touch_signal(target, "recovery.signal")?;
        tracing::info!(%source, %target, base = %base, restore_time = %request.restore_time, "point-in-time restore");
        self.start_server(target).await?;
        self.wait_until_writable(target).await?;
        // The recovery settings did their job; a later restart must not see them.
        self.write_instance_config(target, port, &[])
    }
}

/// The pid of the live postmaster of a data directory, if any.
fn postmaster_pid_in(data: &Path) -> Option<u32> {
    fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|text| {
            text.lines()
                .next()
                .and_then(|l| l.trim().parse::<u32>().ok())
        })
        .filter(|pid| process_alive(*pid))
}

/// The lowest loopback address (127.0.0.2 up) no instance uses.
fn free_address(state: &LocalState) -> DrResult<String> {
    (2..=254)
        .map(|n| format!("127.0.0.{n}"))
        .find(|a| !state.instances.values().any(|r| &r.address == a))
        .ok_or_else(|| DrError::Internal("all loopback addresses are taken".to_owned()))
}

fn describe_origin(origin: &Origin) -> String {
    match origin {
        Origin::New => "created empty".to_owned(),
        Origin::ReplicaOf { source } => format!("a replica of {source}"),
        Origin::Snapshot { snapshot } => format!("restored from snapshot {snapshot}"),
        Origin::PointInTime {
            source,
            restore_time,
        } => {
            format!("restored from {source} to {}", restore_time.to_rfc3339())
        }
    }
}

pub(crate) fn describe_snapshot(id: &SnapshotId, record: &SnapshotRecord) -> SnapshotDescription {
    SnapshotDescription {
        snapshot_id: id.clone(),
        source_instance_id: record.source_instance_id.clone(),
        snapshot_type: record.snapshot_type,
        status: SnapshotStatus::Available,
        created_at: record.created_at,
        size_bytes: record.size_bytes,
        encrypted: true,
        engine_version: record.engine_version.clone(),
        region: None,
        tags: record.tags.clone(),
        row_counts: Some(record.row_counts.clone()),
    }
}

fn snapshot_credentials_name(id: &SnapshotId) -> String {
    format!("snapshot-{}", id.as_str().replace(':', "_"))
}

fn random_password() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
}

fn log_tail(log: &Path) -> String {
    fs::read_to_string(log)
        .map(|t| tail(&t, 5))
        .unwrap_or_else(|_| "(no log)".to_owned())
}

fn make_dir(path: &Path, mode: u32) -> DrResult<()> {
    fs::create_dir_all(path)
        .and_then(|_| fs::set_permissions(path, fs::Permissions::from_mode(mode)))
        .map_err(|e| DrError::Internal(format!("creating {}: {e}", path.display())))
}

/// Checks that the home exists or can be made, and is writable; makes it
/// traversable by the PostgreSQL user.
fn prepare_home(home: &Path) -> DrResult<PathBuf> {
    let not_writable = |e: std::io::Error| {
        DrError::InvalidInput(format!("home {} is not usable: {e}", home.display()))
    };
    fs::create_dir_all(home).map_err(not_writable)?;
    let home = home.canonicalize().map_err(not_writable)?;
    let probe = home.join(".drctl-write-probe");
    fs::write(&probe, b"").map_err(not_writable)?;
    let _ = fs::remove_file(&probe);
    let mode = fs::metadata(&home)
        .map_err(not_writable)?
        .permissions()
        .mode();
    if mode & 0o011 != 0o011 {
        fs::set_permissions(&home, fs::Permissions::from_mode(mode | 0o711))
            .map_err(not_writable)?;
    }
    Ok(home)
}
