//! Connections with bounded timeouts, always over TLS unless told otherwise;
//! driver errors mapped to stable names, and connection failures classified
//! by what they say about the database (down) or about us (broken probe).

use std::net::IpAddr;
use std::time::Duration;

use dr_core::{DatabaseTarget, DrError, DrResult, ProbeClass, ProbeFailure, TlsMode};
use secrecy::ExposeSecret;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

use crate::tls;

/// A connection that could not be made, with what its failure says.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectFailure {
    pub failure: ProbeFailure,
    pub error: DrError,
}

impl ConnectFailure {
    pub(crate) fn new(failure: ProbeFailure, message: String) -> Self {
        let error = match failure.class() {
            ProbeClass::DatabaseDown => match failure {
                ProbeFailure::TimedOut => DrError::Timeout(message),
                ProbeFailure::TooManyConnections => DrError::Throttled(message),
                ProbeFailure::NotAccepting | ProbeFailure::ReadOnly => DrError::NotReady(message),
                ProbeFailure::QueryFailed => DrError::Internal(message),
                _ => DrError::Unavailable(message),
            },
            // A name that does not resolve yet may resolve soon (a new RDS
            // endpoint): transient for callers that retry.
            ProbeClass::ProbeBroken if failure == ProbeFailure::DnsUnresolvable => {
                DrError::Unavailable(message)
            }
            ProbeClass::ProbeBroken => DrError::InvalidInput(message),
        };
        ConnectFailure { failure, error }
    }
}

/// Connects with the target's timeouts and TLS policy, and drives the
/// connection on a background task.
pub async fn connect(target: &DatabaseTarget) -> DrResult<Client> {
    connect_classified(target).await.map_err(|f| f.error)
}

/// [`connect`], keeping the classified failure (for probes).
pub async fn connect_classified(target: &DatabaseTarget) -> Result<Client, ConnectFailure> {
    let endpoint = &target.endpoint;
    let timeout = Duration::from_secs(target.connect_timeout_seconds.max(1));
    let address = resolve(&endpoint.address, endpoint.port, timeout).await?;
    let mut config = Config::new();
    config
        .host(&endpoint.address)
        .hostaddr(address)
        .port(endpoint.port)
        .user(&target.username)
        .password(target.password.expose_secret())
        .dbname(&target.database)
        .application_name("muejam-dr")
        .connect_timeout(timeout);
    if target.statement_timeout_ms > 0 {
        config.options(format!(
            "-c statement_timeout={} -c lock_timeout={}",
            target.statement_timeout_ms, target.statement_timeout_ms
        ));
    }
    let overall = timeout + Duration::from_secs(1);
    let what = format!("connecting to {endpoint} (TLS {})", target.tls.mode);
    let timed_out = || {
        ConnectFailure::new(
            ProbeFailure::TimedOut,
            format!(
                "{what} timed out after {} s",
                target.connect_timeout_seconds
            ),
        )
    };
    let client = match target.tls.mode {
        TlsMode::Disable => {
            config.ssl_mode(SslMode::Disable);
            let (client, connection) = tokio::time::timeout(overall, config.connect(NoTls))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| classify_error(&what, &e, false))?;
            spawn_connection(connection);
            client
        }
        _ => {
            // Never Prefer: a server (or a man in the middle) that declines
            // TLS must fail the connection, not downgrade it.
            config.ssl_mode(SslMode::Require);
            let connector = tls::connector(&target.tls).map_err(|message| {
                ConnectFailure::new(ProbeFailure::Misconfigured, format!("{what}: {message}"))
            })?;
            let failed = connector.failure_flag();
            let (client, connection) = tokio::time::timeout(overall, config.connect(connector))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| classify_error(&what, &e, failed.get()))?;
            spawn_connection(connection);
            client
        }
    };
    Ok(client)
}

fn spawn_connection<F>(connection: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "database connection closed");
        }
    });
}

/// The address to connect to: resolved here, so that a name that does not
/// resolve is told apart from a server that does not answer.
async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<IpAddr, ConnectFailure> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let lookup = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await;
    let unresolvable = |why: String| {
        ConnectFailure::new(
            ProbeFailure::DnsUnresolvable,
            format!("{host} does not resolve: {why}"),
        )
    };
    match lookup {
        Err(_) => Err(unresolvable(format!(
            "no answer within {} s",
            timeout.as_secs()
        ))),
        Ok(Err(e)) => Err(unresolvable(e.to_string())),
        Ok(Ok(mut addresses)) => addresses
            .next()
            .map(|a| a.ip())
            .ok_or_else(|| unresolvable("no address".to_owned())),
    }
}

/// What a driver error says, structurally: the server's SQLSTATE, the
/// socket's error kind, our TLS layer's own record of a failed handshake.
/// Anything else is our problem, never evidence that the database is down.
pub fn classify(error: &tokio_postgres::Error, tls_failed: bool) -> ProbeFailure {
    use std::error::Error as _;
    if let Some(code) = error.code() {
        return classify_sqlstate(code.code());
    }
    if tls_failed {
        return ProbeFailure::Tls;
    }
    if let Some(io) = error
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
    {
        use std::io::ErrorKind::*;
        return match io.kind() {
            ConnectionRefused => ProbeFailure::Refused,
            TimedOut | HostUnreachable => ProbeFailure::TimedOut,
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
                ProbeFailure::ConnectionLost
            }
            _ => ProbeFailure::Misconfigured,
        };
    }
    if error.is_closed() {
        return ProbeFailure::ConnectionLost;
    }
    ProbeFailure::Misconfigured
}

/// SQLSTATE → failure. Unknown codes are our problem (fail closed: they
/// never count as the database being down).
pub fn classify_sqlstate(code: &str) -> ProbeFailure {
    match code {
        "28P01" => ProbeFailure::Authentication,
        c if c.starts_with("28") => ProbeFailure::AccessDenied,
        // The database named in our configuration does not exist.
        "3D000" => ProbeFailure::Misconfigured,
        "42501" => ProbeFailure::AccessDenied,
        "57P01" | "57P02" | "57P03" => ProbeFailure::NotAccepting,
        "53300" => ProbeFailure::TooManyConnections,
        "25006" => ProbeFailure::ReadOnly,
        "57014" => ProbeFailure::TimedOut,
        c if c.starts_with("08") => ProbeFailure::ConnectionLost,
        c if c.starts_with("53") || c.starts_with("58") || c.starts_with("XX") => {
            ProbeFailure::QueryFailed
        }
        _ => ProbeFailure::Misconfigured,
    }
}

fn classify_error(
    context: &str,
    error: &tokio_postgres::Error,
    tls_failed: bool,
) -> ConnectFailure {
    let failure = classify(error, tls_failed);
    let mapped = map_pg_error(context, error);
    // A broken probe is never a transient error a retry would fix (but a
    // name that does not resolve yet may resolve soon).
    let broken =
        failure.class() == ProbeClass::ProbeBroken && failure != ProbeFailure::DnsUnresolvable;
    let error = if broken && (mapped.is_transient() || failure == ProbeFailure::Tls) {
        DrError::InvalidInput(pg_error_message(context, error))
    } else {
        mapped
    };
    ConnectFailure { failure, error }
}

/// The error and its sources, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// The server's message and SQLSTATE, or the error and its sources (the
/// driver's own message says only "error performing TLS handshake"; the
/// reason, such as an unknown issuer, is in its source).
fn pg_error_message(context: &str, error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{context}: {} ({})", db.message(), db.code().code()),
        None => format!("{context}: {}", error_chain(error)),
    }
}

/// Maps a driver error to a stable name. The driver never includes the
/// password in its messages, and neither do we.
pub fn map_pg_error(context: &str, error: &tokio_postgres::Error) -> DrError {
    use tokio_postgres::error::SqlState;
    let message = pg_error_message(context, error);
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
        None => DrError::Unavailable(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_split_into_down_and_broken_and_unknown_is_never_down() {
        let cases = [
            (
                "28P01",
                ProbeFailure::Authentication,
                ProbeClass::ProbeBroken,
            ),
            ("28000", ProbeFailure::AccessDenied, ProbeClass::ProbeBroken),
            (
                "3D000",
                ProbeFailure::Misconfigured,
                ProbeClass::ProbeBroken,
            ),
            ("42501", ProbeFailure::AccessDenied, ProbeClass::ProbeBroken),
            (
                "57P03",
                ProbeFailure::NotAccepting,
                ProbeClass::DatabaseDown,
            ),
            (
                "57P01",
                ProbeFailure::NotAccepting,
                ProbeClass::DatabaseDown,
            ),
            (
                "53300",
                ProbeFailure::TooManyConnections,
                ProbeClass::DatabaseDown,
            ),
            ("25006", ProbeFailure::ReadOnly, ProbeClass::DatabaseDown),
            ("57014", ProbeFailure::TimedOut, ProbeClass::DatabaseDown),
            (
                "08006",
                ProbeFailure::ConnectionLost,
                ProbeClass::DatabaseDown,
            ),
            ("53100", ProbeFailure::QueryFailed, ProbeClass::DatabaseDown),
            ("XX000", ProbeFailure::QueryFailed, ProbeClass::DatabaseDown),
            (
                "42601",
                ProbeFailure::Misconfigured,
                ProbeClass::ProbeBroken,
            ),
            (
                "99999",
                ProbeFailure::Misconfigured,
                ProbeClass::ProbeBroken,
            ),
        ];
        for (code, failure, class) in cases {
            assert_eq!(classify_sqlstate(code), failure, "{code}");
            assert_eq!(failure.class(), class, "{code}");
        }
    }

    #[test]
    fn broken_probe_failures_are_never_transient_errors_except_dns() {
        for failure in [
            ProbeFailure::Authentication,
            ProbeFailure::AccessDenied,
            ProbeFailure::Tls,
            ProbeFailure::Misconfigured,
        ] {
            let f = ConnectFailure::new(failure, "x".to_owned());
            assert!(!f.error.is_transient(), "{failure:?}: {:?}", f.error);
        }
        assert!(
            ConnectFailure::new(ProbeFailure::DnsUnresolvable, "x".to_owned())
                .error
                .is_transient()
        );
        assert_eq!(
            ConnectFailure::new(ProbeFailure::Refused, "x".to_owned())
                .error
                .name(),
            "Unavailable"
        );
    }
}
