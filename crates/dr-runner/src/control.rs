//! Test and operator controls of a running execution: task tokens (approve,
//! reject, heartbeat) and fault injection.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{oneshot, Notify};

/// What `SendTaskSuccess` / `SendTaskFailure` deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TokenOutcome {
    Success { output: Value },
    Failure { error: String, cause: String },
}

struct Slot {
    sender: Option<oneshot::Sender<TokenOutcome>>,
    heartbeat: Arc<Notify>,
}

/// The tokens of `.waitForTaskToken` tasks that are waiting.
#[derive(Clone, Default)]
pub struct TaskTokens {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
}

/// Sending to a token nobody waits for (AWS: `TaskDoesNotExist`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TaskDoesNotExist: no task is waiting for token {0}")]
pub struct UnknownToken(pub String);

impl TaskTokens {
    pub(crate) fn register(&self, token: &str) -> (oneshot::Receiver<TokenOutcome>, Arc<Notify>) {
        let (sender, receiver) = oneshot::channel();
        let heartbeat = Arc::new(Notify::new());
        if let Ok(mut slots) = self.slots.lock() {
            slots.insert(
                token.to_owned(),
                Slot {
                    sender: Some(sender),
                    heartbeat: Arc::clone(&heartbeat),
                },
            );
        }
        (receiver, heartbeat)
    }

    pub(crate) fn forget(&self, token: &str) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(token);
        }
    }

    fn deliver(&self, token: &str, outcome: TokenOutcome) -> Result<(), UnknownToken> {
        let sender = self
            .slots
            .lock()
            .ok()
            .and_then(|mut slots| slots.remove(token))
            .and_then(|mut slot| slot.sender.take())
            .ok_or_else(|| UnknownToken(token.to_owned()))?;
        sender
            .send(outcome)
            .map_err(|_| UnknownToken(token.to_owned()))
    }

    pub fn send_success(&self, token: &str, output: Value) -> Result<(), UnknownToken> {
        self.deliver(token, TokenOutcome::Success { output })
    }

    pub fn send_failure(&self, token: &str, error: &str, cause: &str) -> Result<(), UnknownToken> {
        self.deliver(
            token,
            TokenOutcome::Failure {
                error: error.to_owned(),
                cause: cause.to_owned(),
            },
        )
    }

    pub fn send_heartbeat(&self, token: &str) -> Result<(), UnknownToken> {
        let slots = self
            .slots
            .lock()
            .map_err(|_| UnknownToken(token.to_owned()))?;
        let slot = slots
            .get(token)
            .ok_or_else(|| UnknownToken(token.to_owned()))?;
        slot.heartbeat.notify_one();
        Ok(())
    }

    /// Tokens currently waited for.
    pub fn pending(&self) -> Vec<String> {
        self.slots
            .lock()
            .map(|slots| slots.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Delivers outcomes dropped as files into `dir` by another process
    /// (`drctl task success|failure`): `<token>.json` holding a [`TokenOutcome`].
    pub fn drain_inbox(&self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(token) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .map(str::to_owned)
            else {
                continue;
            };
            let waiting = self
                .slots
                .lock()
                .map(|slots| slots.contains_key(&token))
                .unwrap_or(false);
            if !waiting {
                continue;
            }
            if let Some(outcome) = std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<TokenOutcome>(&bytes).ok())
            {
                let _ = std::fs::remove_file(&path);
                let _ = self.deliver(&token, outcome);
            }
        }
    }
}

/// Writes an outcome for a token into an inbox directory.
pub fn post_to_inbox(dir: &Path, token: &str, outcome: &TokenOutcome) -> std::io::Result<PathBuf> {
    if token.is_empty() || !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{token:?} is not a task token"),
        ));
    }
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{token}.json"));
    let tmp = dir.join(format!(".{token}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(outcome)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// A fault to inject into a task call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// The call fails with this error name (as a function's errorType would).
    Fail { error: String, cause: String },
    /// The call times out (States.Timeout), without waiting.
    Timeout,
    /// The function answers this, without being called (e.g. "still
    /// creating", to keep a wait loop waiting).
    Return { output: serde_json::Value },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// A Task state name or a function name, in every execution; or
    /// `<state machine>/<name>`, in that state machine's executions only
    /// (a child's state that shares its name with one of its parent's).
    pub task: String,
    /// Which call, counting from 1, retries included.
    pub call: u32,
    /// With it, every call from `call` to `until_call`.
    #[serde(default)]
    pub until_call: Option<u32>,
    pub fault: Fault,
}

impl FaultRule {
    fn covers(&self, machine: &str, task: &str, n: u32) -> bool {
        let named = match self.task.split_once('/') {
            Some((m, t)) => m == machine && t == task,
            None => self.task == task,
        };
        named && (self.call..=self.until_call.unwrap_or(self.call)).contains(&n)
    }
}

/// Faults to inject, and how often each task has been called (counted per
/// execution: a child execution's calls start from 1 again).
#[derive(Debug, Default)]
pub struct FaultPlan {
    rules: Vec<FaultRule>,
    calls: Mutex<HashMap<(String, String), u32>>,
}

impl FaultPlan {
    pub fn new(rules: Vec<FaultRule>) -> Self {
        FaultPlan {
            rules,
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a call of the task (by state and by function) and returns the
    /// fault planned for it, if any.
    pub(crate) fn on_call(&self, execution: &str, state: &str, function: &str) -> Option<Fault> {
        // arn:aws:states:<region>:<account>:execution:<state machine>:<name>
        let machine = execution.rsplit(':').nth(1).unwrap_or_default();
        let mut calls = self.calls.lock().ok()?;
        let mut planned = None;
        for key in [state, function] {
            let count = calls
                .entry((execution.to_owned(), key.to_owned()))
                .or_insert(0);
            *count += 1;
            let n = *count;
            if planned.is_none() {
                planned = self
                    .rules
                    .iter()
                    .find(|r| r.covers(machine, key, n))
                    .map(|r| r.fault.clone());
            }
            if state == function {
                break;
            }
        }
        planned
    }

    /// Calls of a task (state or function name), every execution together.
    pub fn calls(&self, task: &str) -> u32 {
        self.calls
            .lock()
            .map(|c| {
                c.iter()
                    .filter(|((_, key), _)| key == task)
                    .map(|(_, n)| *n)
                    .sum()
            })
            .unwrap_or(0)
    }
}
