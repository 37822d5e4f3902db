//! Execution history, shaped like `GetExecutionHistory`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEvent {
    pub id: u64,
    pub previous_event_id: u64,
    #[serde(serialize_with = "millis")]
    pub timestamp: DateTime<Utc>,
    #[serde(rename = "type")]
    pub event_type: String,
    /// One key, e.g. `stateEnteredEventDetails`, as AWS names it.
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

fn millis<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

impl HistoryEvent {
    /// The state name in entered/exited events.
    pub fn state_name(&self) -> Option<&str> {
        self.details
            .values()
            .find_map(|d| d.get("name"))
            .and_then(Value::as_str)
    }

    pub fn detail(&self, field: &str) -> Option<&Value> {
        self.details.values().find_map(|d| d.get(field))
    }
}

/// The details key AWS uses for an event type.
pub fn details_key(event_type: &str) -> String {
    let category = if event_type.ends_with("StateEntered") {
        "StateEntered".to_owned()
    } else if event_type.ends_with("StateExited") {
        "StateExited".to_owned()
    } else {
        event_type.to_owned()
    };
    let mut chars = category.chars();
    let first = chars
        .next()
        .map(|c| c.to_ascii_lowercase())
        .unwrap_or_default();
    format!("{first}{}EventDetails", chars.as_str())
}
