//! The operator's hold on executions: start one, follow its history, list
//! them. Step Functions on AWS, the local runner's registry locally; `drctl
//! start|watch|executions` speak only this.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ExecutionState;
use crate::error::DrResult;

/// One execution, as ListExecutions shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionSummary {
    pub name: String,
    pub arn: String,
    /// The scenario (the state machine's name without the deployment's
    /// prefix), e.g. `database-failover`.
    pub scenario: String,
    pub state: ExecutionState,
    pub started_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
}

/// One execution, as DescribeExecution shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionDetail {
    #[serde(flatten)]
    pub summary: ExecutionSummary,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// One event of an execution's history, as GetExecutionHistory gives it,
/// reduced to what an operator follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionEvent {
    /// Increasing within an execution, from 1.
    pub id: u64,
    pub timestamp: DateTime<Utc>,
    /// Step Functions' event type, e.g. `WaitStateEntered`, `TaskFailed`.
    pub kind: String,
    /// The state entered or exited.
    pub state: Option<String>,
    /// The state's input, on `…StateEntered` events.
    pub input: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// What a start request did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "started", rename_all = "snake_case")]
pub enum StartOutcome {
    /// A new execution runs.
    New(ExecutionSummary),
    /// The same name with the same input is running: nothing new started.
    AlreadyRunning(ExecutionSummary),
    /// The same name with the same input already ran and stopped: nothing
    /// new started (a new attempt needs another name).
    AlreadyRan(ExecutionSummary),
}

impl StartOutcome {
    pub fn summary(&self) -> &ExecutionSummary {
        match self {
            StartOutcome::New(s)
            | StartOutcome::AlreadyRunning(s)
            | StartOutcome::AlreadyRan(s) => s,
        }
    }
}

/// Starting and following executions. A name that exists with another
/// input is `AlreadyExists`, as StartExecution answers.
#[async_trait]
pub trait ExecutionControl: Send + Sync {
    /// Starts `scenario` as `name` on `input`; idempotent per name and input.
    async fn start(&self, scenario: &str, name: &str, input: &Value) -> DrResult<StartOutcome>;
    /// An execution by name (any scenario) or ARN; `None` when unknown.
    async fn describe(&self, execution: &str) -> DrResult<Option<ExecutionDetail>>;
    /// The history events after `after_id`, oldest first.
    async fn events(&self, execution_arn: &str, after_id: u64) -> DrResult<Vec<ExecutionEvent>>;
    /// Running and recent executions, newest first, of one scenario or all.
    async fn list(&self, scenario: Option<&str>) -> DrResult<Vec<ExecutionSummary>>;
    /// The scenario's state machine definition (ASL), to read its loops'
    /// bounds.
    async fn definition(&self, scenario: &str) -> DrResult<Option<Value>>;
}

impl ExecutionEvent {
    /// One event of GetExecutionHistory's JSON (the local runner writes
    /// that shape): `None` when it has no id, type or time.
    pub fn from_history_json(event: &Value) -> Option<ExecutionEvent> {
        let id = event.get("id")?.as_u64()?;
        let kind = event.get("type")?.as_str()?.to_owned();
        let timestamp = event
            .get("timestamp")?
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
            .with_timezone(&Utc);
        // The details sit under one `<type>EventDetails` key.
        let details = event
            .as_object()?
            .iter()
            .find(|(k, _)| k.ends_with("EventDetails"))
            .map(|(_, v)| v);
        let text = |field: &str| {
            details
                .and_then(|d| d.get(field))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Some(ExecutionEvent {
            id,
            timestamp,
            state: text("name")
                .filter(|_| kind.ends_with("StateEntered") || kind.ends_with("StateExited")),
            input: text("input")
                .filter(|_| kind.ends_with("StateEntered"))
                .and_then(|i| serde_json::from_str(&i).ok()),
            error: text("error"),
            cause: text("cause"),
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn history_events_are_read_from_step_functions_json() {
        let entered = json!({
            "id": 7, "previousEventId": 6, "timestamp": "2026-11-28T10:00:01.500Z",
            "type": "WaitStateEntered",
            "stateEnteredEventDetails": {"name": "WaitForPromotion", "input": "{\"polls\":2}"}
        });
        let event = ExecutionEvent::from_history_json(&entered).expect("event");
        assert_eq!(event.id, 7);
        assert_eq!(event.kind, "WaitStateEntered");
        assert_eq!(event.state.as_deref(), Some("WaitForPromotion"));
        assert_eq!(event.input, Some(json!({"polls": 2})));
        assert_eq!(event.timestamp.timestamp_millis() % 1000, 500);
        let failed = json!({
            "id": 9, "timestamp": "2026-11-28T10:00:02Z", "type": "ExecutionFailed",
            "executionFailedEventDetails": {"error": "Unsafe", "cause": "no"}
        });
        let event = ExecutionEvent::from_history_json(&failed).expect("event");
        assert_eq!(
            (event.error.as_deref(), event.cause.as_deref()),
            (Some("Unsafe"), Some("no"))
        );
        assert_eq!(event.state, None);
        // Lambda names are not states.
        let scheduled = json!({
            "id": 3, "timestamp": "2026-11-28T10:00:02Z", "type": "TaskScheduled",
            "taskScheduledEventDetails": {"resource": "invoke", "name": "x"}
        });
        assert_eq!(
            ExecutionEvent::from_history_json(&scheduled)
                .expect("e")
                .state,
            None
        );
        for broken in [
            json!({}),
            json!({"id": 1, "type": "X"}),
            json!({"id": 1, "type": "X", "timestamp": "yesterday"}),
        ] {
            assert_eq!(ExecutionEvent::from_history_json(&broken), None, "{broken}");
        }
    }
}
