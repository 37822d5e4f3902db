//! `.waitForTaskToken`: the execution pauses until someone approves, rejects,
//! or the task times out.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dr_runner::*;
use serde_json::{json, Value};

/// A handler that "sends the approval request" by remembering the token.
fn approval_handlers(seen: Arc<Mutex<Option<String>>>) -> Handlers {
    let mut handlers = Handlers::new();
    handlers.register_fn("RequestApproval", move |payload: Value, _ctx| {
        let seen = Arc::clone(&seen);
        async move {
            let token = payload["token"].as_str().map(str::to_owned);
            if let Ok(mut slot) = seen.lock() {
                *slot = token;
            }
            Ok(json!({"sent": true}))
        }
    });
    handlers
}

fn definition(timeout: u64) -> StateMachine {
    StateMachine::from_value(
        &json!({"StartAt": "Approve", "States": {
            "Approve": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "RequestApproval", "Payload": {"token.$": "$$.Task.Token", "what.$": "$.what"}},
                "TimeoutSeconds": timeout,
                "ResultPath": "$.approval",
                "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.approval", "Next": "TimedOut"}],
                "Next": "Switch"
            },
            "Switch": {"Type": "Succeed"},
            "TimedOut": {"Type": "Fail", "Error": "ApprovalTimedOut", "Cause": "nobody approved"}
        }}),
        &LoadOptions::default(),
    )
    .expect("loads")
}

async fn wait_for_token(seen: &Arc<Mutex<Option<String>>>) -> String {
    for _ in 0..200 {
        if let Some(token) = seen.lock().ok().and_then(|s| s.clone()) {
            return token;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the approval request never carried a token");
}

#[tokio::test]
async fn approval_resumes_the_execution_with_the_sent_output() {
    let seen = Arc::new(Mutex::new(None));
    let runner = Runner::new(approval_handlers(Arc::clone(&seen)));
    let machine = definition(60);
    let tokens = runner.tokens();
    let execution = tokio::spawn({
        let runner = runner.clone();
        async move {
            runner
                .execute(&machine, json!({"what": "switch DNS"}), None)
                .await
        }
    });
    let token = wait_for_token(&seen).await;
    assert_eq!(tokens.pending(), vec![token.clone()]);
    tokens
        .send_success(&token, json!({"approved_by": "oncall"}))
        .expect("delivered");
    let result = execution.await.expect("joins");
    assert!(result.succeeded(), "{:?}", result.cause);
    assert_eq!(
        result.output,
        Some(json!({"what": "switch DNS", "approval": {"approved_by": "oncall"}}))
    );
    assert!(tokens.pending().is_empty());
    assert!(
        tokens.send_success(&token, json!({})).is_err(),
        "a used token is gone"
    );
}

#[tokio::test]
async fn rejection_fails_the_task_with_the_sent_error() {
    let seen = Arc::new(Mutex::new(None));
    let runner = Runner::new(approval_handlers(Arc::clone(&seen)));
    let machine = definition(60);
    let tokens = runner.tokens();
    let execution = tokio::spawn({
        let runner = runner.clone();
        async move {
            runner
                .execute(&machine, json!({"what": "restore"}), None)
                .await
        }
    });
    let token = wait_for_token(&seen).await;
    tokens
        .send_failure(&token, "Rejected", "the incident commander said no")
        .expect("delivered");
    let result = execution.await.expect("joins");
    assert_eq!(result.status, ExecutionStatus::Failed);
    assert_eq!(result.error.as_deref(), Some("Rejected"));
    assert_eq!(
        result.cause.as_deref(),
        Some("the incident commander said no")
    );
}

#[tokio::test]
async fn no_answer_times_out_into_the_catch() {
    let seen = Arc::new(Mutex::new(None));
    let runner = Runner::new(approval_handlers(Arc::clone(&seen)));
    let result = runner
        .execute(&definition(1), json!({"what": "x"}), None)
        .await;
    assert_eq!(result.error.as_deref(), Some("ApprovalTimedOut"));
    assert!(result
        .history
        .iter()
        .any(|e| e.event_type == "TaskTimedOut"));
    assert_eq!(result.states_entered(), vec!["Approve", "TimedOut"]);
}

#[tokio::test]
async fn another_process_can_answer_through_the_inbox_directory() {
    let inbox = tempfile::tempdir().expect("inbox");
    let seen = Arc::new(Mutex::new(None));
    let runner =
        Runner::new(approval_handlers(Arc::clone(&seen))).token_inbox(inbox.path().to_owned());
    let machine = definition(60);
    let execution = tokio::spawn({
        let runner = runner.clone();
        async move { runner.execute(&machine, json!({"what": "x"}), None).await }
    });
    let token = wait_for_token(&seen).await;
    dr_runner::control::post_to_inbox(
        inbox.path(),
        &token,
        &TokenOutcome::Success {
            output: json!({"approved": true}),
        },
    )
    .expect("posted");
    let result = execution.await.expect("joins");
    assert!(result.succeeded());
    assert_eq!(
        result.output.expect("output")["approval"],
        json!({"approved": true})
    );
    assert!(
        std::fs::read_dir(inbox.path())
            .expect("dir")
            .next()
            .is_none(),
        "consumed"
    );
}
