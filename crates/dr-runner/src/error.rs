//! Errors as Step Functions names them.

use std::fmt;

/// A failure inside an execution: the `Error` and `Cause` a Catch sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError {
    pub error: String,
    pub cause: String,
}

impl StateError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        StateError {
            error: error.into(),
            cause: cause.into(),
        }
    }

    pub fn runtime(cause: impl Into<String>) -> Self {
        Self::new(names::RUNTIME, cause)
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.cause)
    }
}

impl std::error::Error for StateError {}

/// The predefined error names of the Amazon States Language.
pub mod names {
    pub const ALL: &str = "States.ALL";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    pub const RUNTIME: &str = "States.Runtime";
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
}

/// Whether an `ErrorEquals` entry matches an error name, with the wildcard
/// rules of the specification: `States.ALL` matches every error but
/// `States.Runtime` and `States.DataLimitExceeded` (terminal), and
/// `States.TaskFailed` matches every error but `States.Timeout`.
pub fn error_matches(pattern: &str, error: &str) -> bool {
    let terminal = error == names::RUNTIME || error == names::DATA_LIMIT_EXCEEDED;
    match pattern {
        names::ALL => !terminal,
        names::TASK_FAILED => {
            !terminal && error != names::TIMEOUT && error != names::HEARTBEAT_TIMEOUT
        }
        _ => pattern == error,
    }
}

/// A definition that cannot run: rejected at load time, naming the state and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct LoadError {
    pub location: String,
    pub message: String,
}

impl LoadError {
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        LoadError {
            location: location.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_the_specification() {
        assert!(error_matches("States.ALL", "ReplicaLagTooHigh"));
        assert!(error_matches("States.ALL", "States.Timeout"));
        assert!(!error_matches("States.ALL", "States.Runtime"));
        assert!(error_matches("States.TaskFailed", "Throttled"));
        assert!(!error_matches("States.TaskFailed", "States.Timeout"));
        assert!(error_matches("Throttled", "Throttled"));
        assert!(!error_matches("Throttled", "NotReady"));
    }
}
