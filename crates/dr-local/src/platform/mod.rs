//! The local database control plane: each "RDS instance" is a real
//! PostgreSQL 15 cluster under one home directory.
//!
//! Layout of a home:
//!
//! ```text
//! state.json              what exists (see state.rs)
//! keys/snapshot.key       age identity sealing the home region's snapshots
//!                         (unless configured elsewhere)
//! keys/snapshot-<region>.key  the key of every other region
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

mod describe;
mod instances;
mod pitr;
mod server;
mod snapshots;

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
/// The region a home's instances live in unless made in another one: the
/// platform's primary region.
pub const HOME_REGION: &str = "us-east-1";
/// The region snapshot copies go to by default, and region failovers.
pub const BACKUP_REGION: &str = "us-west-2";
/// The regions the local platform has. Each has its own control plane
/// (which a region outage makes unreachable) and its own snapshot key.
pub const REGIONS: [&str; 2] = [HOME_REGION, BACKUP_REGION];

/// The availability zones of a region, named as AWS names them.
pub fn availability_zones(region: &str) -> Vec<String> {
    ["a", "b", "c"]
        .iter()
        .map(|z| format!("{region}{z}"))
        .collect()
}
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
    /// The region this plane acts in (RDS is regional).
    region: String,
    /// That region's snapshot key.
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
            region: HOME_REGION.to_owned(),
            key: Arc::new(key),
            ca: Arc::new(ca),
        })
    }

    /// The control plane of another region of the same home: its own
    /// instances and snapshots, its own snapshot key (created on first
    /// use), the same certificate authority. `InvalidInput` for a region the
    /// platform does not have.
    pub fn in_region(&self, region: &str) -> DrResult<LocalControlPlane> {
        if region == self.region {
            return Ok(self.clone());
        }
        dr_core::validate_region(region)?;
        if !REGIONS.contains(&region) {
            return Err(DrError::InvalidInput(format!(
                "region {region} does not exist on the local platform; it has {}",
                REGIONS.join(", ")
            )));
        }
        let key = if region == HOME_REGION {
            match std::env::var_os(SNAPSHOT_KEY_ENV) {
                Some(path) => SnapshotKey::load(Path::new(&path))?,
                None => SnapshotKey::load_or_create(&self.home.join("keys").join("snapshot.key"))?,
            }
        } else {
            SnapshotKey::load_or_create(&self.region_key_path(region))?
        };
        Ok(LocalControlPlane {
            region: region.to_owned(),
            key: Arc::new(key),
            ..self.clone()
        })
    }

    fn region_key_path(&self, region: &str) -> PathBuf {
        self.home
            .join("keys")
            .join(format!("snapshot-{region}.key"))
    }

    /// The region this plane acts in.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The file of this region's snapshot key (tests open copies with it).
    pub fn snapshot_key_file(&self) -> &Path {
        self.key.path()
    }

    /// The name a copy's `kms_key_id` must give for this region's key (the
    /// local stand-in for a KMS key ARN, which is regional too).
    pub fn key_name(&self) -> String {
        format!("local/{}/snapshots", self.region)
    }

    /// `Unavailable` while this plane's region is down, as an RDS endpoint
    /// of a failed region answers nothing.
    pub(crate) fn check_region_up(&self) -> DrResult<()> {
        let state = self.store.read()?;
        match state.region_outages.get(&self.region) {
            Some(outage) => Err(DrError::Unavailable(format!(
                "the RDS endpoint of {} does not answer (region down since {})",
                self.region,
                outage.since.to_rfc3339()
            ))),
            None => Ok(()),
        }
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

    pub(crate) fn remove_snapshot_credentials(&self, id: &SnapshotId) {
        let _ = fs::remove_file(self.credentials_path(&snapshot_credentials_name(id)));
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
        region: Some(record.region.clone()),
        tags: record.tags.clone(),
        row_counts: Some(record.row_counts.clone()),
        original_created_at: record.copied_from.as_ref().map(|c| c.original_created_at),
        copied_from: record.copied_from.as_ref().map(|c| SnapshotSource {
            snapshot: c.snapshot.to_string(),
            region: Some(c.region.clone()),
        }),
        kms_key_id: Some(record.copied_from.as_ref().map_or_else(
            || format!("local/{}/snapshots", record.region),
            |c| c.kms_key_id.clone(),
        )),
        percent_progress: Some(100),
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
