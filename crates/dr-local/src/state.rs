//! The state file of a local platform home: what exists, on which port, where
//! it came from. It survives restarts of the CLI; every change is written to a
//! temporary file and renamed, under an exclusive lock, so two `drctl`
//! processes never interleave and a crash never leaves half a file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use dr_core::{DrError, DrResult, InstanceId, InstanceStatus, SnapshotId, SnapshotType, Tags};
use serde::{Deserialize, Serialize};

pub const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "state.lock";
const STATE_VERSION: u32 = 1;

/// Where an instance came from; makes create/restore idempotent (a retry with
/// the same origin returns the existing instance, another origin is refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    New,
    ReplicaOf {
        source: InstanceId,
    },
    Snapshot {
        snapshot: SnapshotId,
    },
    PointInTime {
        source: InstanceId,
        restore_time: DateTime<Utc>,
    },
}

/// A long-running operation holding an instance, with the process doing it,
/// so that a crashed `drctl` does not leave an instance busy forever.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Busy {
    pub status: InstanceStatus,
    pub pid: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// Each instance has its own loopback address, as each RDS instance has
    /// its own host name, so a DNS record can tell them apart.
    #[serde(default = "default_address")]
    pub address: String,
    pub port: u16,
    pub created_at: DateTime<Utc>,
    pub availability_zone: String,
    pub origin: Origin,
    /// What we last configured as this instance's source; the server's own
    /// `pg_is_in_recovery()` has the final word when it runs.
    pub replication_source: Option<InstanceId>,
    pub master_username: String,
    pub database: String,
    /// `true` while it should run; `false` after a deliberate stop.
    pub should_run: bool,
    /// Set when creation or a restore failed for good.
    pub failed: Option<String>,
    pub busy: Option<Busy>,
    /// The newest moment whose commits are known to be in the WAL archive.
    pub archived_until: Option<DateTime<Utc>>,
    pub tags: Tags,
    /// Who fenced it: it then admits only the control plane.
    #[serde(default)]
    pub fenced: Option<String>,
    /// Its processes are stopped (`drctl local hang`): the control plane
    /// still says available, connections time out.
    #[serde(default)]
    pub hung: bool,
    /// The region it lives in (records from before regions: the home region).
    #[serde(default = "home_region")]
    pub region: String,
}

fn home_region() -> String {
    crate::platform::HOME_REGION.to_owned()
}

/// The snapshot a copy was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopiedFrom {
    pub snapshot: SnapshotId,
    pub region: String,
    /// When the source's data was captured (kept through every copy).
    pub original_created_at: DateTime<Utc>,
    /// The key name the copy was requested with.
    pub kms_key_id: String,
}

/// A region taken down by `drctl local region-outage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionOutage {
    pub since: DateTime<Utc>,
    /// The instances the outage froze, thawed again when it ends.
    pub frozen: Vec<InstanceId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub source_instance_id: InstanceId,
    pub snapshot_type: SnapshotType,
    pub created_at: DateTime<Utc>,
    /// When the base backup finished: PITR from this snapshot can reach any
    /// time from here on.
    pub completed_at: DateTime<Utc>,
    /// Whether the source was a primary: only then does its WAL archive
    /// continue from this backup, so only then is it a PITR base.
    pub taken_from_primary: bool,
    pub size_bytes: u64,
    /// Relative to the home.
    pub file: PathBuf,
    pub engine_version: String,
    /// Row counts per table when the snapshot was taken (restore evidence).
    pub row_counts: BTreeMap<String, u64>,
    pub tags: Tags,
    #[serde(default = "home_region")]
    pub region: String,
    #[serde(default)]
    pub copied_from: Option<CopiedFrom>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MotoRecord {
    pub pid: u32,
    pub port: u16,
    pub region: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalState {
    pub version: u32,
    /// A home made by `drctl local up` without `--home`: `down` removes it.
    pub temporary_home: bool,
    pub instances: BTreeMap<InstanceId, InstanceRecord>,
    pub snapshots: BTreeMap<SnapshotId, SnapshotRecord>,
    pub moto: Option<MotoRecord>,
    /// Regions that are down, by name.
    #[serde(default)]
    pub region_outages: BTreeMap<String, RegionOutage>,
}

impl Default for LocalState {
    fn default() -> Self {
        LocalState {
            version: STATE_VERSION,
            temporary_home: false,
            instances: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            moto: None,
            region_outages: BTreeMap::new(),
        }
    }
}

/// Reads and writes the state file of one home.
#[derive(Debug, Clone)]
pub struct StateStore {
    home: PathBuf,
}

/// Exclusive hold on the state; released on drop.
pub struct StateGuard {
    _lock: File,
    path: PathBuf,
    pub state: LocalState,
}

impl StateStore {
    pub fn new(home: &Path) -> Self {
        StateStore {
            home: home.to_owned(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.home.join(STATE_FILE)
    }

    /// Takes the lock and reads the state (an absent file is an empty state).
    /// Blocking: call from `spawn_blocking` or accept a short wait.
    pub fn lock(&self) -> DrResult<StateGuard> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.home.join(LOCK_FILE))
            .map_err(|e| {
                DrError::InvalidInput(format!("home {} is not writable: {e}", self.home.display()))
            })?;
        lock.lock()
            .map_err(|e| DrError::Internal(format!("locking the state file: {e}")))?;
        let path = self.path();
        let state = read_state(&path)?;
        Ok(StateGuard {
            _lock: lock,
            path,
            state,
        })
    }

    /// Reads without locking (a consistent snapshot thanks to rename-on-write).
    pub fn read(&self) -> DrResult<LocalState> {
        read_state(&self.path())
    }
}

/// Writes `value` as JSON to `path` through a synced temporary file and a
/// rename: a reader without the lock sees the old file or the new, never
/// half of one.
pub fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> DrResult<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| DrError::Internal(format!("serializing {}: {e}", path.display())))?;
    (|| -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })()
    .map_err(|e| DrError::Internal(format!("writing {}: {e}", path.display())))
}

fn read_state(path: &Path) -> DrResult<LocalState> {
    match fs::read(path) {
        Ok(bytes) => {
            let state: LocalState = serde_json::from_slice(&bytes).map_err(|e| {
                DrError::Internal(format!("state file {} is unreadable: {e}", path.display()))
            })?;
            if state.version != STATE_VERSION {
                return Err(DrError::Internal(format!(
                    "state file {} has version {}, this drctl reads version {STATE_VERSION}",
                    path.display(),
                    state.version
                )));
            }
            Ok(state)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LocalState::default()),
        Err(e) => Err(DrError::Internal(format!(
            "reading state file {}: {e}",
            path.display()
        ))),
    }
}

impl StateGuard {
    /// Writes the state atomically; the lock stays held.
    pub fn save(&self) -> DrResult<()> {
        write_json_atomically(&self.path, &self.state)
    }

    pub fn instance(&self, id: &InstanceId) -> DrResult<&InstanceRecord> {
        self.state
            .instances
            .get(id)
            .ok_or_else(|| DrError::NotFound(format!("DB instance {id} not found")))
    }

    pub fn instance_mut(&mut self, id: &InstanceId) -> DrResult<&mut InstanceRecord> {
        self.state
            .instances
            .get_mut(id)
            .ok_or_else(|| DrError::NotFound(format!("DB instance {id} not found")))
    }
}

fn default_address() -> String {
    "127.0.0.1".to_owned()
}

/// Whether the process that marked something busy is still alive.
pub fn process_alive(pid: u32) -> bool {
    i32::try_from(pid)
        .is_ok_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
}

impl InstanceRecord {
    /// The busy status, ignoring markers left by a process that has died.
    pub fn live_busy_status(&self) -> Option<InstanceStatus> {
        self.busy
            .as_ref()
            .filter(|b| process_alive(b.pid))
            .map(|b| b.status)
    }
}
