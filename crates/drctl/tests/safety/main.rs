//! The failover as a careless operator at 3 a.m. would meet it, on the
//! local stack: a hung primary goes to a person; a broken probe never fails
//! over; typos change nothing; a killed run leaves no lock and a rerun
//! finishes what it began; the same alarm fails back.

#[path = "../common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use dr_core::*;
use serde_json::{json, Value};

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
