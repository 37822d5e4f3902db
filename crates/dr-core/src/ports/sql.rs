//! SQL access: how to connect (TLS policy, target), the probe and its
//! classified failures, and the SQL port.

use super::*;

/// How a SQL connection is protected, named as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain TCP: only when asked for explicitly (RDS for PostgreSQL 15 and
    /// later refuses it by default, `rds.force_ssl=1`).
    Disable,
    /// Encrypted, but the server's certificate is not checked: protects
    /// against eavesdropping, not against impersonation.
    Require,
    /// Encrypted, and the certificate chains to the configured CA bundle;
    /// the host name is not checked (for a name the certificate cannot carry,
    /// such as our own CNAME in front of an RDS endpoint).
    VerifyCa,
    /// Encrypted, the chain checked and the host name matched. The default.
    #[default]
    VerifyFull,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }

    pub fn parse(value: &str) -> DrResult<Self> {
        match value {
            "disable" => Ok(TlsMode::Disable),
            "require" => Ok(TlsMode::Require),
            "verify-ca" => Ok(TlsMode::VerifyCa),
            "verify-full" => Ok(TlsMode::VerifyFull),
            other => Err(DrError::InvalidInput(format!(
                "TLS mode {other:?} is not one of disable, require, verify-ca, verify-full"
            ))),
        }
    }

    /// Whether the server's certificate must chain to a CA we trust.
    pub fn verifies_certificate(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyFull)
    }
}

impl std::fmt::Display for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The TLS policy of SQL connections: a mode and the CA bundle that signs
/// the servers' certificates (AWS's RDS bundle, which no public trust store
/// holds; the local stack's own CA).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabaseTls {
    pub mode: TlsMode,
    pub ca_file: Option<PathBuf>,
}

impl DatabaseTls {
    /// Environment variable naming the mode (default `verify-full`).
    pub const MODE_ENV: &'static str = "DB_TLS_MODE";
    /// Environment variable naming the PEM CA bundle.
    pub const CA_FILE_ENV: &'static str = "DB_TLS_CA_FILE";

    pub fn verify_full(ca_file: impl Into<PathBuf>) -> Self {
        DatabaseTls {
            mode: TlsMode::VerifyFull,
            ca_file: Some(ca_file.into()),
        }
    }

    /// The policy a function is configured with. A bad mode is an error; a
    /// missing bundle is found at the first connection, where it is reported
    /// as our own misconfiguration rather than the database's failure.
    pub fn from_env() -> DrResult<Self> {
        let mode = match std::env::var(Self::MODE_ENV) {
            Ok(v) if !v.trim().is_empty() => TlsMode::parse(v.trim())?,
            _ => TlsMode::default(),
        };
        let ca_file = std::env::var_os(Self::CA_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Ok(DatabaseTls { mode, ca_file })
    }

    /// The same bundle with another mode (an input may lower verify-full
    /// to verify-ca for a CNAME the certificate cannot name).
    pub fn with_mode(&self, mode: TlsMode) -> Self {
        DatabaseTls {
            mode,
            ca_file: self.ca_file.clone(),
        }
    }
}

/// Where and as whom to connect to a database.
#[derive(Debug, Clone)]
pub struct DatabaseTarget {
    pub endpoint: Endpoint,
    pub database: String,
    pub username: String,
    /// Never logged: `SecretString`'s Debug prints a redaction marker.
    pub password: SecretString,
    pub connect_timeout_seconds: u64,
    pub statement_timeout_ms: u64,
    pub tls: DatabaseTls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// `SELECT 1`.
    Read,
    /// `SELECT 1` plus an insert into a dedicated probe table.
    ReadWrite,
}

/// Why a SQL probe failed, classified by what it says about the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeFailure {
    // The database does not serve: evidence for a failover.
    /// Nothing listens at the endpoint (TCP connection refused).
    Refused,
    /// No answer in time (a hung server, a partition, or a firewall that
    /// drops packets: only the control plane can tell which).
    TimedOut,
    /// The connection broke during the probe.
    ConnectionLost,
    /// The server answers but does not take sessions (starting, shutting
    /// down, in crash recovery).
    NotAccepting,
    /// The server has no connection slot left.
    TooManyConnections,
    /// A write probe met a read-only database.
    ReadOnly,
    /// The probe's query failed on the server.
    QueryFailed,
    // Our probe cannot probe: never evidence for a failover.
    /// The server rejected our credentials (SQLSTATE class 28, password).
    Authentication,
    /// The server rejected our address or user (SQLSTATE class 28, pg_hba).
    AccessDenied,
    /// The TLS handshake or the certificate check failed.
    Tls,
    /// The endpoint's name does not resolve.
    DnsUnresolvable,
    /// The credentials secret is missing, unreadable or malformed.
    SecretUnavailable,
    /// Our own configuration is wrong (no CA bundle, a bad TLS mode, ...).
    Misconfigured,
}

/// What a probe failure says: the database is down, or our probe is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeClass {
    DatabaseDown,
    ProbeBroken,
}

impl ProbeFailure {
    pub fn class(self) -> ProbeClass {
        use ProbeFailure::*;
        match self {
            Refused | TimedOut | ConnectionLost | NotAccepting | TooManyConnections | ReadOnly
            | QueryFailed => ProbeClass::DatabaseDown,
            Authentication | AccessDenied | Tls | DnsUnresolvable | SecretUnavailable
            | Misconfigured => ProbeClass::ProbeBroken,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ProbeFailure::*;
        match self {
            Refused => "refused",
            TimedOut => "timed_out",
            ConnectionLost => "connection_lost",
            NotAccepting => "not_accepting",
            TooManyConnections => "too_many_connections",
            ReadOnly => "read_only",
            QueryFailed => "query_failed",
            Authentication => "authentication",
            AccessDenied => "access_denied",
            Tls => "tls",
            DnsUnresolvable => "dns_unresolvable",
            SecretUnavailable => "secret_unavailable",
            Misconfigured => "misconfigured",
        }
    }

    /// What a person should fix when our probe is broken.
    pub fn remedy(self) -> &'static str {
        use ProbeFailure::*;
        match self {
            Authentication => {
                "the credentials in the secret are not the database's: check the secret's username and password"
            }
            AccessDenied => {
                "the database refuses our address or user: check pg_hba / security groups and the function's VPC"
            }
            Tls => {
                "the TLS handshake failed: check the CA bundle (DB_TLS_CA_FILE) and the TLS mode against the server's certificate"
            }
            DnsUnresolvable => {
                "the endpoint's name does not resolve: check the DNS record and the function's VPC resolver"
            }
            SecretUnavailable => {
                "the credentials secret cannot be read: check that it exists, holds {username, password} and that the function may read it"
            }
            Misconfigured => "the probe's configuration is wrong: see the reason",
            _ => "the database does not serve: see the reason",
        }
    }
}

/// Answer of a SQL probe. `healthy == false` always comes with a reason and
/// a classified failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub healthy: bool,
    pub reason: Option<String>,
    /// `None` exactly when healthy.
    #[serde(default)]
    pub failure: Option<ProbeFailure>,
    pub in_recovery: Option<bool>,
    pub server_version: Option<String>,
    pub latency_ms: u64,
}

/// A named query that must return no rows (dbt-test style).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCheck {
    pub name: String,
    pub sql: String,
}

/// The write privileges that stopping writes takes away: with these gone a
/// role can still read, and nothing it sets in its session gives them back.
pub const WRITE_PRIVILEGES: [&str; 4] = ["INSERT", "UPDATE", "DELETE", "TRUNCATE"];

/// One privilege of a role on one table, as granted directly to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableGrant {
    /// The table's name in its schema (unquoted).
    pub table: String,
    /// One of [`WRITE_PRIVILEGES`].
    pub privilege: String,
}

/// What revoking a role's write privileges did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WritesRevoked {
    /// Open sessions of the role that were ended.
    pub sessions_ended: u64,
    /// SECURITY DEFINER functions of the schema the role may still execute:
    /// they run with their owner's privileges, so one that writes still
    /// writes for the role (no privilege check can tell whether it does).
    #[serde(default)]
    pub definer_functions: Vec<String>,
}

/// How one row of a table changed between two copies of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowChange {
    /// Only in the newer copy: written after the older one's moment.
    Inserted,
    /// In both, with different contents.
    Updated,
    /// Only in the older copy: deleted after its moment.
    Deleted,
}

/// The rows of one table that differ between a newer and an older copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableChanges {
    pub table: String,
    /// The primary key's columns; empty when the table has none (then
    /// only the row counts are compared).
    pub key_columns: Vec<String>,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    /// The primary keys of the rows that differ (each key's columns as
    /// text), with how they differ.
    pub keys: Vec<(RowChange, Vec<String>)>,
    /// Row counts of the newer and the older copy.
    pub newer_rows: u64,
    pub older_rows: u64,
}

/// The longest [`SqlTarget::commit_damage`] waits for its moment.
pub const MAX_DAMAGE_WAIT_SECONDS: u64 = 90;

/// SQL access to a database for probes, counts and checks.
#[async_trait]
pub trait SqlTarget: Send + Sync {
    /// Writes a drill marker row (in a dedicated schema) and returns when.
    async fn write_marker(&self, target: &DatabaseTarget, marker: &str) -> DrResult<DateTime<Utc>>;
    /// Whether the marker row is there (on a replica: whether it replicated).
    async fn marker_present(&self, target: &DatabaseTarget, marker: &str) -> DrResult<bool>;
    /// Commits `rows` rows of damage of `kind` (a drill rehearses the
    /// data-corruption recovery on its throw-away copy with it; the same
    /// code as `drctl local corrupt`), no sooner than `not_before` by the
    /// database's own clock (waiting at most [`MAX_DAMAGE_WAIT_SECONDS`]).
    /// Once per `key`: a retry (the first attempt committed, its answer was
    /// lost) gets the damage recorded with it, and damages nothing more.
    async fn commit_damage(
        &self,
        target: &DatabaseTarget,
        key: &str,
        kind: DamageKind,
        rows: u32,
        not_before: Option<DateTime<Utc>>,
    ) -> DrResult<Damage>;
    /// Never fails for an unreachable database: that is an unhealthy report.
    async fn probe(&self, target: &DatabaseTarget, kind: ProbeKind) -> DrResult<ProbeReport>;
    /// The write privileges ([`WRITE_PRIVILEGES`]) granted directly to
    /// `role` on the tables of `schema`, sorted.
    async fn write_grants(
        &self,
        target: &DatabaseTarget,
        role: &str,
        schema: &str,
    ) -> DrResult<Vec<TableGrant>>;
    /// Revokes `grants` from `role`, ends the role's open sessions, and
    /// proves the role can write no table of `schema` by any path (PUBLIC,
    /// another role it is a member of): `Unsafe`, naming the path, when it
    /// still can. Idempotent.
    async fn revoke_writes(
        &self,
        target: &DatabaseTarget,
        role: &str,
        schema: &str,
        grants: &[TableGrant],
    ) -> DrResult<WritesRevoked>;
    /// Grants `grants` to `role` (what an earlier revoke took). Idempotent.
    async fn grant_writes(
        &self,
        target: &DatabaseTarget,
        role: &str,
        schema: &str,
        grants: &[TableGrant],
    ) -> DrResult<()>;
    /// The rows of every table of `schema` that differ between `newer` and
    /// `older` (two copies of one database), by primary key.
    async fn row_changes(
        &self,
        newer: &DatabaseTarget,
        older: &DatabaseTarget,
        schema: &str,
    ) -> DrResult<Vec<TableChanges>>;
    /// Sets `role`'s password (as a SCRAM verifier: the password itself is
    /// never in a statement). Idempotent.
    async fn set_role_password(
        &self,
        target: &DatabaseTarget,
        role: &str,
        password: &SecretString,
    ) -> DrResult<()>;
    /// Exact row counts of every table of `public` (the baseline a restore
    /// is compared with when the snapshot records none, as on RDS).
    async fn row_counts(&self, target: &DatabaseTarget) -> DrResult<BTreeMap<String, u64>>;
    /// Deactivates the active API keys (`is_active = false`, `revoked_at =
    /// at`), of `users` only when given. Idempotent: a key already inactive
    /// is left as it is and not counted again.
    async fn revoke_api_keys(
        &self,
        target: &DatabaseTarget,
        users: Option<&[i64]>,
        at: DateTime<Utc>,
    ) -> DrResult<ApiKeysRevoked>;
    /// What the audit log holds from `networks` (CIDR blocks) within
    /// `[from, to)`: counts by action, the distinct users, and up to
    /// `max_rows` rows (oldest first).
    async fn audit_activity(
        &self,
        target: &DatabaseTarget,
        networks: &[String],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        max_rows: usize,
    ) -> DrResult<AuditActivity>;
}

/// API keys deactivated by one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeysRevoked {
    /// The ids deactivated now.
    pub revoked: Vec<i64>,
    /// Keys in scope that were already inactive.
    pub already_inactive: u64,
}

/// One audit-log row from a suspicious address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub id: i64,
    pub user_id: Option<i64>,
    pub action_type: String,
    pub ip_address: String,
    pub created_at: DateTime<Utc>,
}

/// The audit log's activity from suspicious addresses in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditActivity {
    pub events: u64,
    /// Events by action type.
    pub by_action: BTreeMap<String, u64>,
    /// Distinct users of those events, ascending.
    pub users: Vec<i64>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    /// Up to `max_rows` of the events, oldest first.
    pub rows: Vec<AuditRow>,
    /// More events than `rows` holds.
    pub truncated: bool,
}

/// What kind of damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DamageKind {
    /// Authors deleted behind the foreign keys' back (triggers off, as a
    /// bad bulk job with `session_replication_role = replica` does): their
    /// stories, comments, follows, ... become orphans.
    Orphans,
    /// Users' display names overwritten with an empty string (a bad
    /// UPDATE without its WHERE clause, stopped early): no constraint sees
    /// it, only a named check (`SELECT id FROM users WHERE display_name =
    /// ''`) finds it.
    Overwrite,
}

impl DamageKind {
    /// The named check that finds this damage (the query returns the rows
    /// it broke), as an operator hands it to the data-corruption recovery.
    pub fn finding_check(self) -> NamedCheck {
        let (name, sql) = match self {
            DamageKind::Orphans => (
                "stories_without_author",
                "SELECT s.id FROM stories s WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.author_id)",
            ),
            DamageKind::Overwrite => (
                "users_without_display_name",
                "SELECT id FROM users WHERE display_name = ''",
            ),
        };
        NamedCheck {
            name: name.to_owned(),
            sql: sql.to_owned(),
        }
    }

    pub fn parse(value: &str) -> DrResult<Self> {
        match value {
            "orphans" => Ok(DamageKind::Orphans),
            "overwrite" => Ok(DamageKind::Overwrite),
            other => Err(DrError::InvalidInput(format!(
                "damage kind {other:?} is not one of orphans, overwrite"
            ))),
        }
    }
}

/// The damage done, and when: it was committed after `before` and by `at`;
/// a restore to any moment before `before` precedes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Damage {
    pub kind: DamageKind,
    pub table: String,
    pub rows: u64,
    pub before: DateTime<Utc>,
    pub at: DateTime<Utc>,
}
