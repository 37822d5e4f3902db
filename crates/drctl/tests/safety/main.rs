//! The failover as a careless operator at 3 a.m. would meet it, on the
//! local stack: a hung primary goes to a person; a broken probe never fails
//! over; typos change nothing; a killed run leaves no lock and a rerun
//! finishes what it began; the same alarm fails back.

#[path = "../common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use dr_core::*;
use serde_json::{json, Value};

/// A `drctl run` of the failover in the background, as on-call would leave
/// it waiting for an approval.
struct Background {
    child: Child,
}

impl Background {
    fn start(stack: &Stack, input: &Value, name: &str, extra: &[&str]) -> Background {
        Self::start_with_env(stack, input, name, extra, &[])
    }

    fn start_with_env(
        stack: &Stack,
        input: &Value,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Background {
        let path = stack.home.join(format!("input-{name}.json"));
        std::fs::write(&path, serde_json::to_vec(input).expect("json")).expect("input");
        let child = Command::new(env!("CARGO_BIN_EXE_drctl"))
            .args([
                "run",
                "statemachines/database-failover.asl.json",
                "--input",
                path.to_str().expect("path"),
                "--local",
                "--output",
                "json",
                "--name",
                name,
            ])
            .args(extra)
            .env("DRCTL_HOME", &stack.home)
            .envs(env.iter().copied())
            .current_dir(repo())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn drctl run");
        Background { child }
    }

    /// Waits for the run to end: its exit code and `--output json`.
    fn finish(self) -> (i32, Value) {
        let out = self.child.wait_with_output().expect("wait");
        let result = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "run printed no JSON: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), result)
    }
}

/// Waits until a message whose subject contains `text` has been delivered.
fn wait_for_message(stack: &Stack, text: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(m) = stack
            .messages()
            .into_iter()
            .find(|m| m["subject"].as_str().is_some_and(|s| s.contains(text)))
        {
            return m;
        }
        assert!(Instant::now() < deadline, "no message with {text:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn answer(stack: &Stack, verb: &str, execution: &str, reason: &str) -> std::process::Output {
    drctl(
        &stack.home,
        &[
            verb, execution, "--local", "--reason", reason, "--by", "alice",
        ],
    )
}

fn report_of(result: &Value) -> Value {
    let path = result["output"]["report"]["result"]["json_location"]
        .as_str()
        .unwrap_or_else(|| panic!("no report: {result:#}"));
    serde_json::from_slice(&std::fs::read(path).expect("report")).expect("json")
}

/// A short approval window for tests.
fn ask_quickly(seconds: u64) -> Value {
    json!({"approval": {"timeout_cap_seconds": seconds, "timeout_floor_seconds": seconds}})
}

mod approvals;
mod deaths;
mod inputs;
mod misconfiguration;
