//! The one error type of the project.
//!
//! Every variant has a stable name (`DrError::name`) that becomes the Lambda
//! `errorType`, so state machines Retry/Catch on it. Names are part of the
//! public contract: never rename one, only add.

/// An error with a stable, machine-matchable name and a message a person can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DrError {
    /// The request is malformed or refers to something in a way that can never succeed.
    /// Raised before any mutation.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The named resource does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A resource with that name exists already and is not the one this request would make.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The resource exists but is in a state that does not allow the operation yet
    /// (for example a replica that is backing up). Transient: retry with backoff.
    #[error("not ready: {0}")]
    NotReady(String),
    /// The provider asked us to slow down. Transient: retry with backoff.
    #[error("throttled: {0}")]
    Throttled(String),
    /// Doing this would risk production or data (split brain, deleting a
    /// non-ephemeral instance, a drill touching production). Never retried.
    #[error("unsafe: {0}")]
    Unsafe(String),
    /// The replica is further behind than the allowed data loss window.
    #[error(
        "replica lag too high: {lag_seconds:.1} s behind, the limit is {max_lag_seconds:.1} s; \
         pass allow_data_loss to promote anyway"
    )]
    ReplicaLagTooHigh {
        lag_seconds: f64,
        max_lag_seconds: f64,
    },
    /// An operation did not finish within its deadline.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A dependency (database, AWS endpoint) could not be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Another recovery or drill already holds the resource.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Data failed an integrity check (a snapshot that does not decrypt or
    /// verify, a database with orphaned rows). Never retried.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// A bug or an environment problem that no retry will fix.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Every stable error name, in declaration order.
pub const ERROR_NAMES: &[&str] = &[
    "InvalidInput",
    "NotFound",
    "AlreadyExists",
    "NotReady",
    "Throttled",
    "Unsafe",
    "ReplicaLagTooHigh",
    "Timeout",
    "Unavailable",
    "Conflict",
    "Corrupt",
    "Internal",
];

impl DrError {
    /// The stable name that state machines match on (`errorType`).
    pub fn name(&self) -> &'static str {
        match self {
            DrError::InvalidInput(_) => "InvalidInput",
            DrError::NotFound(_) => "NotFound",
            DrError::AlreadyExists(_) => "AlreadyExists",
            DrError::NotReady(_) => "NotReady",
            DrError::Throttled(_) => "Throttled",
            DrError::Unsafe(_) => "Unsafe",
            DrError::ReplicaLagTooHigh { .. } => "ReplicaLagTooHigh",
            DrError::Timeout(_) => "Timeout",
            DrError::Unavailable(_) => "Unavailable",
            DrError::Conflict(_) => "Conflict",
            DrError::Corrupt(_) => "Corrupt",
            DrError::Internal(_) => "Internal",
        }
    }

    /// Whether a caller should retry with backoff.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DrError::NotReady(_)
                | DrError::Throttled(_)
                | DrError::Unavailable(_)
                | DrError::Timeout(_)
        )
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        DrError::InvalidInput(message.into())
    }

    pub fn internal(message: impl Into<String>) -> Self {
        DrError::Internal(message.into())
    }

    /// The same error (its stable name, so Retry and Catch still match it)
    /// with `context` said before its message. `ReplicaLagTooHigh`, whose
    /// message is its figures, is returned as it is.
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        let said = |message: String| format!("{context}: {message}");
        match self {
            DrError::InvalidInput(m) => DrError::InvalidInput(said(m)),
            DrError::NotFound(m) => DrError::NotFound(said(m)),
            DrError::AlreadyExists(m) => DrError::AlreadyExists(said(m)),
            DrError::NotReady(m) => DrError::NotReady(said(m)),
            DrError::Throttled(m) => DrError::Throttled(said(m)),
            DrError::Unsafe(m) => DrError::Unsafe(said(m)),
            e @ DrError::ReplicaLagTooHigh { .. } => e,
            DrError::Timeout(m) => DrError::Timeout(said(m)),
            DrError::Unavailable(m) => DrError::Unavailable(said(m)),
            DrError::Conflict(m) => DrError::Conflict(said(m)),
            DrError::Corrupt(m) => DrError::Corrupt(said(m)),
            DrError::Internal(m) => DrError::Internal(said(m)),
        }
    }
}

pub type DrResult<T> = Result<T, DrError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn one_of_each() -> Vec<DrError> {
        vec![
            DrError::InvalidInput("x".into()),
            DrError::NotFound("x".into()),
            DrError::AlreadyExists("x".into()),
            DrError::NotReady("x".into()),
            DrError::Throttled("x".into()),
            DrError::Unsafe("x".into()),
            DrError::ReplicaLagTooHigh {
                lag_seconds: 1.0,
                max_lag_seconds: 0.5,
            },
            DrError::Timeout("x".into()),
            DrError::Unavailable("x".into()),
            DrError::Conflict("x".into()),
            DrError::Corrupt("x".into()),
            DrError::Internal("x".into()),
        ]
    }

    #[test]
    fn every_variant_has_its_listed_stable_name() {
        let names: Vec<&str> = one_of_each().iter().map(DrError::name).collect();
        assert_eq!(names, ERROR_NAMES);
    }

    #[test]
    fn context_keeps_the_stable_name_and_says_where() {
        for e in one_of_each() {
            let name = e.name();
            let lag = matches!(e, DrError::ReplicaLagTooHigh { .. });
            let before = e.to_string();
            let with = e.context("deleting c1");
            assert_eq!(with.name(), name);
            if lag {
                assert_eq!(with.to_string(), before);
            } else {
                assert!(with.to_string().ends_with("deleting c1: x"), "{with}");
            }
        }
    }

    #[test]
    fn only_waiting_kinds_are_transient() {
        let transient: Vec<&str> = one_of_each()
            .iter()
            .filter(|e| e.is_transient())
            .map(DrError::name)
            .collect();
        assert_eq!(
            transient,
            ["NotReady", "Throttled", "Timeout", "Unavailable"]
        );
    }
}
