//! How long the local runner takes for a Map over 1,000 items, each running
//! ten Pass states (with Parameters and ResultPath). Prints its figures; the
//! target is well under a second.

use std::time::Instant;

use dr_runner::{Handlers, LoadOptions, Runner, StateMachine, TimeMode};
use serde_json::{json, Map, Value};

fn definition(states_per_item: usize) -> Value {
    let mut states = Map::new();
    for i in 0..states_per_item {
        let mut state = json!({
            "Type": "Pass",
            "Parameters": {"item.$": "$.item", "step": i, "label.$": "States.Format('item {} step {}', $.item, $.step)"},
            "ResultPath": "$"
        });
        if i + 1 == states_per_item {
            state["End"] = json!(true);
        } else {
            state["Next"] = json!(format!("Step{}", i + 1));
        }
        states.insert(format!("Step{i}"), state);
    }
    json!({
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"item.$": "$$.Map.Item.Value", "step": 0},
                "ItemProcessor": {"StartAt": "Step0", "States": states},
                "End": true
            }
        }
    })
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let machine =
        StateMachine::from_value(&definition(10), &LoadOptions::default()).expect("loads");
    let items: Vec<Value> = (0..1000).map(|i| json!(i)).collect();
    let runner = Runner::new(Handlers::new()).time_mode(TimeMode::Virtual);
    let mut timings = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let result = runtime.block_on(runner.execute(&machine, json!({"items": items}), None));
        let elapsed = started.elapsed();
        assert!(result.succeeded(), "{:?}", result.cause);
        assert_eq!(
            result
                .output
                .as_ref()
                .and_then(|o| o.as_array())
                .map(Vec::len),
            Some(1000)
        );
        timings.push((elapsed, result.history.len()));
    }
    timings.sort();
    let (median, events) = timings[timings.len() / 2];
    println!(
        "map of 1,000 items x 10 Pass states: median {:.1} ms over {} runs (min {:.1} ms, max {:.1} ms), {} history events",
        median.as_secs_f64() * 1000.0,
        timings.len(),
        timings[0].0.as_secs_f64() * 1000.0,
        timings[timings.len() - 1].0.as_secs_f64() * 1000.0,
        events
    );
}
