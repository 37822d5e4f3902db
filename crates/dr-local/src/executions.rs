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

/// How a run ended, as DescribeExecution tells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionResultRecord {
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// Who started a name, with which input: written once, exclusively, so that
/// two starts of the same trigger cannot both run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartClaim {
    pub scenario: String,
    pub input_digest: String,
    pub claimed_at: DateTime<Utc>,
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

/// A state machine as a `drctl run` loaded it: the digest of the text it
/// runs, and where that text comes from (the file and the template's
/// substitutions), which is what "deployed" means on the local stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadedDefinition {
    pub sha256: String,
    pub path: PathBuf,
    pub substitutions: std::collections::BTreeMap<String, String>,
}

impl LocalExecutions {
    /// The state machines a run loaded, by ARN (`definitions.json` in the
    /// home, apart from the execution records; the last run's word for each).
    fn definitions_path(&self) -> PathBuf {
        self.dir.with_file_name("definitions.json")
    }

    /// Records what a run loaded, over what earlier runs recorded.
    pub fn record_definitions(
        &self,
        loaded: &std::collections::BTreeMap<String, LoadedDefinition>,
    ) -> DrResult<()> {
        let path = self.definitions_path();
        let mut all = self.loaded_definitions()?;
        all.extend(loaded.clone());
        let text = serde_json::to_vec_pretty(&all)
            .map_err(|e| DrError::Internal(format!("serializing definitions: {e}")))?;
        let temporary = path.with_file_name(format!("definitions.json.{}", std::process::id()));
        fs::write(&temporary, text).map_err(|e| io("writing", &temporary, e))?;
        fs::rename(&temporary, &path).map_err(|e| io("replacing", &path, e))
    }

    fn loaded_definitions(&self) -> DrResult<std::collections::BTreeMap<String, LoadedDefinition>> {
        let path = self.definitions_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| DrError::Internal(format!("{} is unreadable: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
            Err(e) => Err(io("reading", &path, e)),
        }
    }

    pub fn new(home: &Path) -> Self {
        LocalExecutions {
            dir: home.join("executions"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.json", file_name(name)))
    }

    /// The directory of an execution's files beyond its record: its input,
    /// its history (`events.jsonl`), its result, its start claim and the
    /// log of a detached run.
    pub fn files(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.d", file_name(name)))
    }

    fn files_created(&self, name: &str) -> DrResult<PathBuf> {
        let dir = self.files(name);
        fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
        Ok(dir)
    }

    /// Claims `name` for a start, exclusively: `Ok(None)` when this call
    /// claimed it, `Ok(Some(claim))` with the earlier claim otherwise.
    pub fn claim(&self, name: &str, claim: &StartClaim) -> DrResult<Option<StartClaim>> {
        let path = self.files_created(name)?.join("claim.json");
        let bytes = serde_json::to_vec(claim)
            .map_err(|e| DrError::Internal(format!("serializing a claim: {e}")))?;
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                use std::io::Write;
                file.write_all(&bytes)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| io("writing", &path, e))?;
                Ok(None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // The other start may be between creating and writing it.
                for _ in 0..50 {
                    let bytes = fs::read(&path).map_err(|e| io("reading", &path, e))?;
                    if let Ok(existing) = serde_json::from_slice::<StartClaim>(&bytes) {
                        return Ok(Some(existing));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(DrError::Internal(format!(
                    "{} is unreadable: remove it to start {name} again",
                    path.display()
                )))
            }
            Err(e) => Err(io("creating", &path, e)),
        }
    }

    /// The claim of a name, if it was started with `drctl start`.
    pub fn claim_of(&self, name: &str) -> DrResult<Option<StartClaim>> {
        let path = self.files(name).join("claim.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| DrError::Internal(format!("{} is unreadable: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", &path, e)),
        }
    }

    /// Appends one history event (GetExecutionHistory's shape) to the
    /// execution's log, which `drctl watch` follows.
    pub fn append_event(&self, name: &str, event: &serde_json::Value) -> DrResult<()> {
        use std::io::Write;
        let path = self.files_created(name)?.join("events.jsonl");
        let mut line = serde_json::to_vec(event)
            .map_err(|e| DrError::Internal(format!("serializing an event: {e}")))?;
        line.push(b'\n');
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&line))
            .map_err(|e| io("appending to", &path, e))
    }

    /// The history events after `after_id`, oldest first (a line being
    /// written is left for the next read).
    pub fn events(&self, name: &str, after_id: u64) -> DrResult<Vec<serde_json::Value>> {
        let path = self.files(name).join("events.jsonl");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("reading", &path, e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e.get("id").and_then(serde_json::Value::as_u64) > Some(after_id))
            .collect())
    }

    /// Keeps the input an execution started on, as DescribeExecution shows
    /// it; returns where.
    pub fn set_input(&self, name: &str, input: &serde_json::Value) -> DrResult<PathBuf> {
        let path = self.files_created(name)?.join("input.json");
        let bytes = serde_json::to_vec_pretty(input)
            .map_err(|e| DrError::Internal(format!("serializing an input: {e}")))?;
        fs::write(&path, bytes).map_err(|e| io("writing", &path, e))?;
        Ok(path)
    }

    pub fn input(&self, name: &str) -> DrResult<Option<serde_json::Value>> {
        let path = self.files(name).join("input.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| DrError::Internal(format!("{} is unreadable: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", &path, e)),
        }
    }

    /// Records how a run ended (its output, or its error and cause).
    pub fn set_result(&self, name: &str, result: &ExecutionResultRecord) -> DrResult<()> {
        let path = self.files_created(name)?.join("result.json");
        let bytes = serde_json::to_vec_pretty(result)
            .map_err(|e| DrError::Internal(format!("serializing a result: {e}")))?;
        fs::write(&path, bytes).map_err(|e| io("writing", &path, e))
    }

    pub fn result(&self, name: &str) -> DrResult<Option<ExecutionResultRecord>> {
        let path = self.files(name).join("result.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| DrError::Internal(format!("{} is unreadable: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", &path, e)),
        }
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
        // A name run again starts a fresh history and result.
        let files = self.files(&record.name);
        for stale in ["events.jsonl", "result.json"] {
            match fs::remove_file(files.join(stale)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("removing", &files.join(stale), e)),
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

    /// Ran: the digest recorded by the run that loaded the state machine.
    /// Deployed: its file as the template renders it now.
    async fn definitions(
        &self,
        state_machine_arn: &str,
        _execution_arn: &str,
    ) -> DrResult<Option<DefinitionDigests>> {
        let Some(loaded) = self.loaded_definitions()?.remove(state_machine_arn) else {
            return Ok(None);
        };
        let text = match fs::read_to_string(&loaded.path) {
            Ok(text) => text,
            // Gone from the repository: nothing is deployed under it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io("reading", &loaded.path, e)),
        };
        Ok(Some(DefinitionDigests {
            ran_sha256: loaded.sha256,
            deployed_sha256: definition_sha256(&render_definition(&text, &loaded.substitutions)?),
        }))
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

    #[tokio::test]
    async fn the_definition_a_run_loaded_is_compared_with_the_file_as_it_is_now() {
        let home = tempfile::tempdir().expect("tmp");
        let registry = LocalExecutions::new(home.path());
        let file = home.path().join("failover.asl.json");
        let text = r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Comment": "${Name}", "End": true}}}"#;
        std::fs::write(&file, text).expect("write");
        let substitutions: std::collections::BTreeMap<String, String> =
            [("Name".to_owned(), "x\"y".to_owned())].into();
        let sm = "arn:aws:states:us-east-1:123456789012:stateMachine:muejam-database-failover";
        let loaded = LoadedDefinition {
            sha256: definition_sha256(&render_definition(text, &substitutions).expect("render")),
            path: file.clone(),
            substitutions,
        };
        registry
            .start(&record("drill-run", std::process::id()))
            .expect("start");
        registry
            .record_definitions(&[(sm.to_owned(), loaded)].into())
            .expect("record");
        let digests = registry
            .definitions(sm, "arn:…:execution:muejam-database-failover:x")
            .await
            .expect("read")
            .expect("known");
        assert_eq!(digests.ran_sha256, digests.deployed_sha256);
        // Not an execution record: the listing is unchanged.
        assert_eq!(registry.list().expect("list").len(), 1);
        // The file changed after the run loaded it: not the deployed one.
        std::fs::write(&file, text.replace("Pass", "Succeed")).expect("edit");
        let digests = registry
            .definitions(sm, "arn:…")
            .await
            .expect("read")
            .expect("known");
        assert_ne!(digests.ran_sha256, digests.deployed_sha256);
        assert_eq!(
            registry
                .definitions("arn:…:stateMachine:other", "arn:…")
                .await
                .expect("read"),
            None
        );
    }

    #[test]
    fn a_name_is_claimed_once_and_keeps_its_history_and_result() {
        let home = tempfile::tempdir().expect("tmp");
        let registry = LocalExecutions::new(home.path());
        let claim = StartClaim {
            scenario: "database-failover".into(),
            input_digest: "d1".into(),
            claimed_at: Utc::now(),
        };
        assert_eq!(registry.claim("run-1", &claim).expect("claim"), None);
        let again = StartClaim {
            input_digest: "d2".into(),
            ..claim.clone()
        };
        assert_eq!(
            registry.claim("run-1", &again).expect("claim"),
            Some(claim.clone()),
            "the first claim stands"
        );
        assert_eq!(registry.claim_of("run-1").expect("read"), Some(claim));
        assert_eq!(registry.claim_of("run-2").expect("read"), None);

        registry
            .start(&record("run-1", std::process::id()))
            .expect("start");
        for id in 1..=3u64 {
            registry
                .append_event("run-1", &serde_json::json!({"id": id, "type": "X"}))
                .expect("append");
        }
        let ids = |events: Vec<serde_json::Value>| -> Vec<u64> {
            events.iter().filter_map(|e| e["id"].as_u64()).collect()
        };
        assert_eq!(ids(registry.events("run-1", 0).expect("events")), [1, 2, 3]);
        assert_eq!(ids(registry.events("run-1", 2).expect("events")), [3]);
        assert!(registry.events("nothing", 0).expect("none").is_empty());
        let result = ExecutionResultRecord {
            output: None,
            error: Some("Unsafe".into()),
            cause: Some("why".into()),
        };
        registry.set_result("run-1", &result).expect("result");
        assert_eq!(registry.result("run-1").expect("read"), Some(result));
        // The files beside the records are not records.
        assert_eq!(registry.list().expect("list").len(), 1);
        // Run again under the same name: a fresh history.
        registry
            .finish("run-1", ExecutionState::Failed)
            .expect("finish");
        registry
            .start(&record("run-1", std::process::id()))
            .expect("again");
        assert!(registry.events("run-1", 0).expect("events").is_empty());
        assert_eq!(registry.result("run-1").expect("read"), None);
    }
}
