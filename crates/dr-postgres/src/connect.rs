//! Connections with bounded timeouts; driver errors mapped to stable names.

use std::time::Duration;

use dr_core::{DatabaseTarget, DrError, DrResult};
use secrecy::ExposeSecret;
use tokio_postgres::{Client, Config, NoTls};

/// Connects with the target's connect timeout and statement timeout, and
/// drives the connection on a background task.
pub async fn connect(target: &DatabaseTarget) -> DrResult<Client> {
    let mut config = Config::new();
    config
        .host(&target.endpoint.address)
        .port(target.endpoint.port)
        .user(&target.username)
        .password(target.password.expose_secret())
        .dbname(&target.database)
        .application_name("muejam-dr")
        .connect_timeout(Duration::from_secs(target.connect_timeout_seconds.max(1)));
    if target.statement_timeout_ms > 0 {
        config.options(format!(
            "-c statement_timeout={} -c lock_timeout={}",
            target.statement_timeout_ms, target.statement_timeout_ms
        ));
    }
    let overall = Duration::from_secs(target.connect_timeout_seconds.max(1) + 1);
    let (client, connection) = tokio::time::timeout(overall, config.connect(NoTls))
        .await
        .map_err(|_| {
            DrError::Unavailable(format!(
                "connecting to {} timed out after {} s",
                target.endpoint, target.connect_timeout_seconds
            ))
        })?
        .map_err(|e| map_pg_error(&format!("connecting to {}", target.endpoint), &e))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "database connection closed");
        }
    });
    Ok(client)
}

/// Maps a driver error to a stable name. The driver never includes the
/// password in its messages, and neither do we.
pub fn map_pg_error(context: &str, error: &tokio_postgres::Error) -> DrError {
    use tokio_postgres::error::SqlState;
    let message = match error.as_db_error() {
        Some(db) => format!("{context}: {} ({})", db.message(), db.code().code()),
        None => format!("{context}: {error}"),
    };
    match error.code() {
        Some(code) if *code == SqlState::QUERY_CANCELED => DrError::Timeout(message),
        Some(code) if *code == SqlState::LOCK_NOT_AVAILABLE => DrError::NotReady(message),
        Some(code) if *code == SqlState::READ_ONLY_SQL_TRANSACTION => DrError::NotReady(message),
        Some(code) if *code == SqlState::CANNOT_CONNECT_NOW => DrError::NotReady(message),
        Some(code) if *code == SqlState::TOO_MANY_CONNECTIONS => DrError::Throttled(message),
        Some(code) if *code == SqlState::INVALID_PASSWORD => DrError::InvalidInput(message),
        Some(code) if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            DrError::InvalidInput(message)
        }
        Some(code) if *code == SqlState::UNDEFINED_TABLE => DrError::NotFound(message),
        Some(code) if *code == SqlState::DUPLICATE_TABLE => DrError::AlreadyExists(message),
        Some(_) => DrError::Internal(message),
        None if error.is_closed() => DrError::Unavailable(message),
        None => DrError::Unavailable(message),
    }
}
