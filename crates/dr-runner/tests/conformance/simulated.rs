//! Simulated time (`drctl estimate`): only simulated time passes; a task
//! takes what its handler's calls advance the clock by; a Map's iterations
//! wait for a MaxConcurrency slot; a task token's answer takes its delay;
//! a task that outlasts its TimeoutSeconds times out.

use super::*;
use dr_core::clock;

fn seconds_between(result: &ExecutionResult) -> f64 {
    (result.stop_date - result.start_date).num_milliseconds() as f64 / 1000.0
}

fn slow_handlers(seconds: i64) -> Handlers {
    let mut handlers = Handlers::new();
    handlers.register_fn("Flaky", move |payload, _ctx| async move {
        // What a call to a simulated AWS does: time passes by its duration.
        assert!(clock::is_simulated(), "the handler runs in simulated time");
        clock::advance(chrono::Duration::seconds(seconds));
        Ok(json!({"echo": payload, "at": clock::now().to_rfc3339()}))
    });
    handlers
}

async fn simulated(handlers: Handlers, definition: Value) -> ExecutionResult {
    let runner = Runner::new(handlers).time_mode(TimeMode::Simulated);
    let start = chrono::DateTime::parse_from_rfc3339("2026-03-03T03:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    runner
        .execute_at(&machine(definition), json!({}), "simulated", start)
        .await
}

#[tokio::test]
async fn a_task_takes_what_its_handler_advanced_and_the_handler_sees_the_execution_time() {
    let result = simulated(
        slow_handlers(300),
        json!({"StartAt": "W", "States": {
            "W": {"Type": "Wait", "Seconds": 60, "Next": "T"},
            "T": task(json!({}))
        }}),
    )
    .await;
    assert!(result.succeeded(), "{:?}", result.cause);
    assert_eq!(seconds_between(&result), 360.0);
    assert_eq!(
        result.output.expect("output")["Payload"]["at"],
        "2026-03-03T03:06:00+00:00",
        "the handler read the execution's simulated time"
    );
}

#[tokio::test]
async fn map_iterations_wait_for_a_free_slot() {
    // Four items of 100 s each, two at a time: 200 s, not 100.
    let definition = |concurrency: u64| {
        json!({"StartAt": "M", "States": {"M": {
            "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": concurrency, "End": true,
            "ItemProcessor": {"StartAt": "T", "States": {"T": task(json!({}))}}
        }}})
    };
    for (concurrency, want) in [(2, 200.0), (1, 400.0), (0, 100.0), (8, 100.0)] {
        let runner = Runner::new(slow_handlers(100)).time_mode(TimeMode::Simulated);
        let start = chrono::Utc::now();
        let result = runner
            .execute_at(
                &machine(definition(concurrency)),
                json!({"items": [1, 2, 3, 4]}),
                "map",
                start,
            )
            .await;
        assert!(result.succeeded(), "{:?}", result.cause);
        assert_eq!(
            seconds_between(&result),
            want,
            "MaxConcurrency {concurrency}"
        );
    }
}

#[tokio::test]
async fn a_task_past_its_timeout_times_out_at_the_timeout() {
    let result = simulated(
        slow_handlers(900),
        json!({"StartAt": "T", "States": {"T": task(json!({"TimeoutSeconds": 60}))}}),
    )
    .await;
    assert_eq!(
        result.error.as_deref(),
        Some("States.Timeout"),
        "{:?}",
        result.cause
    );
    assert_eq!(seconds_between(&result), 60.0);
}

#[tokio::test]
async fn a_task_token_is_answered_after_its_delay() {
    let mut handlers = Handlers::new();
    handlers.register_fn("Ask", |_payload, _ctx| async { Ok(json!({})) });
    let runner = Runner::new(handlers)
        .time_mode(TimeMode::Simulated)
        .token_delay(Arc::new(|_execution: &str, state: &str| {
            assert_eq!(state, "Ask");
            chrono::Duration::minutes(7)
        }));
    let tokens = runner.tokens();
    let answering = tokio::spawn(async move {
        loop {
            for token in tokens.pending() {
                let _ = tokens.send_success(&token, json!({"approved": true}));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let result = runner
        .execute_at(
            &machine(json!({"StartAt": "Ask", "States": {"Ask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "Ask", "Payload": {"token.$": "$$.Task.Token"}},
                "End": true
            }}})),
            json!({}),
            "ask",
            chrono::Utc::now(),
        )
        .await;
    answering.abort();
    assert!(result.succeeded(), "{:?}", result.cause);
    assert_eq!(seconds_between(&result), 420.0);
}

/// A climb of waits for a person in virtual time: each ask waits a little
/// real time (the patience) for an answer, then its TimeoutSeconds is taken
/// as passed and the execution's clock moves on by all of it; an answer
/// within the patience is taken at once.
#[tokio::test]
async fn in_virtual_time_an_unanswered_wait_for_a_person_passes_its_whole_timeout() {
    let mut handlers = Handlers::new();
    handlers.register_fn("Ask", |_payload, _ctx| async { Ok(json!({})) });
    let definition = json!({"StartAt": "Ask", "States": {
        "Ask": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "Ask", "Payload": {"token.$": "$$.Task.Token"}},
            "TimeoutSeconds": 3600,
            "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.timed_out", "Next": "Unanswered"}],
            "End": true
        },
        "Unanswered": {"Type": "Pass", "End": true}
    }});
    let runner = Runner::new(handlers)
        .time_mode(TimeMode::Virtual)
        .token_patience(Duration::from_millis(300));
    let real = std::time::Instant::now();
    let unanswered = runner
        .execute(&machine(definition.clone()), json!({}), Some("nobody"))
        .await;
    assert!(unanswered.succeeded(), "{:?}", unanswered.cause);
    assert_eq!(unanswered.states_entered(), vec!["Ask", "Unanswered"]);
    assert!(seconds_between(&unanswered) >= 3600.0);
    assert!(
        real.elapsed() < Duration::from_secs(30),
        "it did not wait an hour"
    );

    let tokens = runner.tokens();
    let answering = tokio::spawn(async move {
        loop {
            for token in tokens.pending() {
                let _ = tokens.send_success(&token, json!({"approved": true}));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let answered = runner
        .execute(&machine(definition), json!({}), Some("answered"))
        .await;
    answering.abort();
    assert_eq!(answered.states_entered(), vec!["Ask"]);
    assert!(seconds_between(&answered) < 60.0, "answered at once");
}
