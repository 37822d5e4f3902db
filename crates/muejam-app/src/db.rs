//! The app's way to its database, as the real app's: the private zone's
//! record (Route 53, served by the stack's moto) names the host, the
//! secret (Secrets Manager) the role, and the connection is verify-full TLS.
//! One connection is kept and reused; a broken or silent one is dropped and
//! the record resolved again on the next request — which is why, after a
//! failover, a restart is what ends every stale connection at once.
//!
//! Locally every database host has its own loopback address but not the same
//! port (RDS listens on 5432 everywhere); the host's port is read from the
//! platform's state, the one thing the local network adds to the record.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dr_aws::{AwsClients, AwsTarget, Route53Dns, SecretsManagerSecrets};
use dr_core::{DatabaseTarget, DatabaseTls, Dns, DrError, DrResult, Endpoint, Secrets};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::catalog::AppConfig;

/// A request's database work may take this long before the connection is
/// given up (a frozen server answers nothing).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Which secret a connection logs in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    App,
    Migrations,
}

pub struct DatabaseAccess {
    home: PathBuf,
    config: AppConfig,
    login: Login,
    connection: Mutex<Option<(Arc<Client>, Endpoint)>>,
}

impl DatabaseAccess {
    pub fn new(home: &Path, config: AppConfig, login: Login) -> Self {
        DatabaseAccess {
            home: home.to_owned(),
            config,
            login,
            connection: Mutex::new(None),
        }
    }

    async fn clients(&self) -> DrResult<AwsClients> {
        let state = dr_local::state::StateStore::new(&self.home).read()?;
        let moto = state
            .moto
            .filter(dr_local::moto::is_running)
            .ok_or_else(|| DrError::Unavailable("the DNS and secrets service is down".into()))?;
        Ok(AwsClients::connect(&AwsTarget::moto(
            &dr_local::moto::endpoint(&moto),
            &moto.region,
        ))
        .await)
    }

    /// Where the record points now.
    pub async fn resolve(&self) -> DrResult<Endpoint> {
        let clients = self.clients().await?;
        let dns = Route53Dns::new(clients.route53);
        let zone = dns.zone_id(&self.config.hosted_zone).await?;
        let record = dns
            .get_record(&zone, &self.config.database_record, "CNAME")
            .await?
            .ok_or_else(|| {
                DrError::NotFound(format!("{} has no record", self.config.database_record))
            })?;
        let address = record.value.trim_end_matches('.').to_owned();
        let state = dr_local::state::StateStore::new(&self.home).read()?;
        let port = state
            .instances
            .values()
            .find(|r| r.address == address)
            .map(|r| r.port)
            .ok_or_else(|| {
                DrError::NotFound(format!(
                    "{} points at {address}, where no database host is",
                    self.config.database_record
                ))
            })?;
        Ok(Endpoint { address, port })
    }

    async fn credentials(&self) -> DrResult<(String, SecretString)> {
        let secrets = SecretsManagerSecrets::new(self.clients().await?.secrets);
        let id = match self.login {
            Login::App => &self.config.app_secret_id,
            Login::Migrations => &self.config.migration_secret_id,
        };
        let document: serde_json::Value =
            serde_json::from_str(secrets.get_secret(id).await?.expose_secret())
                .map_err(|_| DrError::InvalidInput(format!("secret {id} is not JSON")))?;
        let field = |name: &str| {
            document[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| DrError::InvalidInput(format!("secret {id} has no {name}")))
        };
        Ok((field("username")?, SecretString::from(field("password")?)))
    }

    /// A new connection of its own (not the kept one): what a migration,
    /// which needs `&mut` for its transactions, runs on.
    pub async fn connect(&self) -> DrResult<(Client, Endpoint)> {
        let endpoint = self.resolve().await?;
        let (username, password) = self.credentials().await?;
        let client = dr_postgres::connect(&DatabaseTarget {
            endpoint: endpoint.clone(),
            database: self.config.database.clone(),
            username,
            password,
            connect_timeout_seconds: 3,
            statement_timeout_ms: 4_000,
            tls: DatabaseTls::verify_full(&self.config.ca_file),
        })
        .await?;
        Ok((client, endpoint))
    }

    /// The kept connection, or a new one through the record.
    pub async fn client(&self) -> DrResult<(Arc<Client>, Endpoint)> {
        let mut held = self.connection.lock().await;
        if let Some((client, endpoint)) = held.as_ref() {
            if !client.is_closed() {
                return Ok((Arc::clone(client), endpoint.clone()));
            }
        }
        let (client, endpoint) = tokio::time::timeout(QUERY_TIMEOUT, self.connect())
            .await
            .map_err(|_| DrError::Timeout("connecting to the database".into()))??;
        let fresh = (Arc::new(client), endpoint);
        *held = Some(fresh.clone());
        Ok(fresh)
    }

    /// Runs `work` on the connection; a failure that is not the database
    /// refusing the statement (a broken or silent connection) drops it.
    pub async fn run<T, F, Fut>(&self, work: F) -> DrResult<(T, Endpoint)>
    where
        F: FnOnce(Arc<Client>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let (client, endpoint) = self.client().await?;
        match tokio::time::timeout(QUERY_TIMEOUT, work(client)).await {
            Ok(Ok(value)) => Ok((value, endpoint)),
            Ok(Err(e)) => {
                let refused = e.as_db_error().map(|d| d.message().to_owned());
                if refused.is_none() {
                    self.connection.lock().await.take();
                }
                Err(match refused {
                    Some(message) => DrError::Unsafe(message),
                    None => DrError::Unavailable(format!("the database connection failed: {e}")),
                })
            }
            Err(_) => {
                self.connection.lock().await.take();
                Err(DrError::Timeout(format!(
                    "the database did not answer within {} s",
                    QUERY_TIMEOUT.as_secs()
                )))
            }
        }
    }
}
