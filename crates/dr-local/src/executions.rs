//! The local runner's executions, as Step Functions keeps them: one record
//! per execution name under `executions/` in the home, with the process
//! running it. A record that says RUNNING but whose process is gone is an
//! execution that died (killed, crashed): ABORTED, as AWS would show an
//! execution someone stopped.

use std::fs;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use crate::state::process_alive;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    pub name: String,
    pub arn: String,
    pub state_machine: String,
    /// The `drctl run` process executing it.
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub state: ExecutionState,
    #[serde(default)]
    pub stopped_at: Option<DateTime<Utc>>,
}

impl ExecutionRecord {
    /// The state as it really is: a RUNNING record whose process died is
    /// ABORTED.
    pub fn effective_state(&self) -> ExecutionState {
        if self.state == ExecutionState::Running && !process_alive(self.pid) {
            ExecutionState::Aborted
        } else {
            self.state
        }
    }
}

/// The registry of one home.
#[derive(Debug, Clone)]
pub struct LocalExecutions {
    dir: PathBuf,
}

fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn io(what: &str, path: &Path, e: std::io::Error) -> DrError {
    DrError::Internal(format!("{what} {}: {e}", path.display()))
}

impl LocalExecutions {
    pub fn new(home: &Path) -> Self {
        LocalExecutions {
            dir: home.join("executions"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.json", file_name(name)))
    }

    fn write(&self, record: &ExecutionRecord) -> DrResult<()> {
        fs::create_dir_all(&self.dir).map_err(|e| io("creating", &self.dir, e))?;
        let path = self.path(&record.name);
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|e| DrError::Internal(format!("serializing an execution: {e}")))?;
        fs::write(&tmp, bytes).map_err(|e| io("writing", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io("writing", &path, e))
    }

    /// Records a starting execution; an execution of that name still
    /// running is `AlreadyExists`, as Step Functions refuses a duplicate
    /// name.
    pub fn start(&self, record: &ExecutionRecord) -> DrResult<()> {
        if let Some(existing) = self.get(&record.name)? {
            if existing.effective_state() == ExecutionState::Running {
                return Err(DrError::AlreadyExists(format!(
                    "an execution named {} is already running (process {})",
                    record.name, existing.pid
                )));
            }
        }
        self.write(record)
    }

    /// Records how an execution ended.
    pub fn finish(&self, name: &str, state: ExecutionState) -> DrResult<()> {
        let Some(mut record) = self.get(name)? else {
            return Ok(());
        };
        record.state = state;
        record.stopped_at = Some(Utc::now());
        self.write(&record)
    }

    /// Every execution recorded, newest first.
    pub fn list(&self) -> DrResult<Vec<ExecutionRecord>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("listing", &self.dir, e)),
        };
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let bytes = fs::read(&path).map_err(|e| io("reading", &path, e))?;
            records.push(
                serde_json::from_slice::<ExecutionRecord>(&bytes).map_err(|e| {
                    DrError::Internal(format!("{} is unreadable: {e}", path.display()))
                })?,
            );
        }
        records.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.name.cmp(&b.name)));
        Ok(records)
    }

    pub fn get(&self, name: &str) -> DrResult<Option<ExecutionRecord>> {
        let path = self.path(name);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| DrError::Internal(format!("{} is unreadable: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", &path, e)),
        }
    }
}

#[async_trait]
impl Executions for LocalExecutions {
    async fn state(&self, execution_arn: &str) -> DrResult<Option<ExecutionState>> {
        // arn:aws:states:<region>:<account>:execution:<state machine>:<name>
        let mut parts = execution_arn.rsplitn(3, ':');
        let name = parts.next().unwrap_or_default();
        let machine = parts.next().unwrap_or_default();
        Ok(self
            .get(name)?
            .filter(|r| r.arn == execution_arn || r.state_machine == machine)
            .map(|r| r.effective_state()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, pid: u32) -> ExecutionRecord {
        ExecutionRecord {
            name: name.to_owned(),
            arn: format!("arn:aws:states:local:000000000000:execution:database-failover:{name}"),
            state_machine: "database-failover".to_owned(),
            pid,
            started_at: Utc::now(),
            state: ExecutionState::Running,
            stopped_at: None,
        }
    }

    #[tokio::test]
    async fn a_running_record_whose_process_died_is_aborted() {
        let home = tempfile::tempdir().expect("tmp");
        let registry = LocalExecutions::new(home.path());
        let arn =
            |n: &str| format!("arn:aws:states:local:000000000000:execution:database-failover:{n}");
        registry
            .start(&record("alive", std::process::id()))
            .expect("start");
        assert_eq!(
            registry.state(&arn("alive")).await.expect("state"),
            Some(ExecutionState::Running)
        );
        let err = registry
            .start(&record("alive", std::process::id()))
            .expect_err("duplicate");
        assert_eq!(err.name(), "AlreadyExists");
        // A pid that cannot be a live process.
        registry
            .start(&record("killed", u32::MAX - 7))
            .expect("start");
        assert_eq!(
            registry.state(&arn("killed")).await.expect("state"),
            Some(ExecutionState::Aborted)
        );
        registry
            .start(&record("killed", std::process::id()))
            .expect("a dead execution's name can run again");
        registry
            .finish("killed", ExecutionState::Failed)
            .expect("finish");
        assert_eq!(
            registry.state(&arn("killed")).await.expect("state"),
            Some(ExecutionState::Failed)
        );
        assert_eq!(registry.state(&arn("unknown")).await.expect("state"), None);
        // Listed newest first.
        let names: Vec<String> = registry
            .list()
            .expect("list")
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["killed", "alive"]);
        assert!(LocalExecutions::new(&home.path().join("none"))
            .list()
            .expect("an empty registry")
            .is_empty());
    }
}
