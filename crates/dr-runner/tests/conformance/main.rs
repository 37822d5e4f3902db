//! Conformance with the Amazon States Language specification and the AWS
//! Step Functions documentation: each case asserts the exact output.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dr_runner::*;
use serde_json::{json, Value};

fn machine(definition: Value) -> StateMachine {
    StateMachine::from_value(&definition, &LoadOptions::default()).expect("definition loads")
}

async fn run_with(runner: &Runner, definition: Value, input: Value) -> ExecutionResult {
    runner
        .execute(&machine(definition), input, Some("test-run"))
        .await
}

async fn run(definition: Value, input: Value) -> ExecutionResult {
    let runner = Runner::new(Handlers::new()).time_mode(TimeMode::Virtual);
    run_with(&runner, definition, input).await
}

async fn output(definition: Value, input: Value) -> Value {
    let result = run(definition, input).await;
    assert!(
        result.succeeded(),
        "{:?}: {:?} {:?}",
        result.status,
        result.error,
        result.cause
    );
    result.output.expect("output")
}

fn single(state: Value) -> Value {
    json!({"StartAt": "S", "States": {"S": state}})
}

/// A handler "Flaky" that fails with `error` until its call number passes
/// `failures_before_success`, and the count of its calls.
fn flaky_handlers(failures_before_success: u32, error: &'static str) -> (Handlers, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let mut handlers = Handlers::new();
    handlers.register_fn("Flaky", move |payload, _ctx| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n <= failures_before_success {
                Err(HandlerError::new(error, format!("call {n} failed")))
            } else {
                Ok(json!({"call": n, "echo": payload}))
            }
        }
    });
    (handlers, calls)
}

fn task(extra: Value) -> Value {
    let mut state = json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:Flaky", "Payload.$": "$"},
        "End": true
    });
    if let (Some(s), Some(e)) = (state.as_object_mut(), extra.as_object()) {
        for (key, value) in e {
            if value.is_null() {
                s.remove(key);
            } else {
                s.insert(key.clone(), value.clone());
            }
        }
    }
    state
}
mod children;
mod choice;
mod fail_context;
mod history;
mod map_parallel;
mod paths;
mod simulated;
mod tasks;
mod time;
