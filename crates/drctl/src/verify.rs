//! `drctl verify-integrity`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use clap::Args;
use dr_core::{DatabaseTarget, DatabaseTls, DrError, DrResult, Endpoint, NamedCheck, TlsMode};
use dr_integrity::{CheckStatus, IntegrityReport, LogicalRelation, VerifyOptions};
use secrecy::SecretString;

use crate::output::OutputFormat;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// postgresql://user:password@host:port/database (the password never appears in output or logs).
    #[arg(long, env = "DRCTL_DSN", hide_env_values = true)]
    dsn: String,
    /// Row counts to compare with: a JSON object {table: rows}, or a previous report.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Allowed relative difference against the baseline (0.05 = 5 %).
    #[arg(long, default_value_t = 0.0)]
    tolerance: f64,
    /// YAML or JSON list of {name, sql}: queries that must return no rows.
    #[arg(long)]
    checks: Option<PathBuf>,
    /// Relations without a constraint that must hold, e.g. "stories.author_id -> users.id".
    #[arg(long = "logical")]
    logical: Vec<String>,
    /// Tables that must exist and not be empty.
    #[arg(long = "expect")]
    expect: Vec<String>,
    /// Connections used in parallel.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Skip amcheck even when the extension is installed.
    #[arg(long)]
    no_amcheck: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

/// Takes libpq's TLS options out of a DSN (tokio-postgres knows neither
/// `verify-ca`/`verify-full` nor `sslrootcert`): the DSN without them, the
/// mode and the CA file when given.
fn split_tls_options(dsn: &str) -> (String, Option<String>, Option<String>) {
    let mut mode = None;
    let mut root = None;
    let mut take = |key: &str, value: &str| match key {
        "sslmode" => {
            mode = Some(value.to_owned());
            true
        }
        "sslrootcert" => {
            root = Some(value.to_owned());
            true
        }
        _ => false,
    };
    let rest = if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        match dsn.split_once('?') {
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        !take(k, v)
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => dsn.to_owned(),
        }
    } else {
        dsn.split_whitespace()
            .filter(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                !take(k.trim(), v.trim_matches('\''))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    (rest, mode, root)
}

/// A DSN as a target; errors never echo the DSN (it may hold a password).
/// TLS as libpq reads it: `sslmode` and `sslrootcert` in the DSN, else
/// `PGSSLMODE` and `PGSSLROOTCERT`; the default is verify-full, and the CA
/// bundle may also come from `DB_TLS_CA_FILE`.
fn target_from_dsn(dsn: &str) -> DrResult<DatabaseTarget> {
    let (dsn, mode, root) = split_tls_options(dsn);
    let mode = match mode.or_else(|| std::env::var("PGSSLMODE").ok()) {
        Some(m) => TlsMode::parse(&m)?,
        None => TlsMode::VerifyFull,
    };
    let ca_file = root
        .or_else(|| std::env::var("PGSSLROOTCERT").ok())
        .or_else(|| std::env::var(DatabaseTls::CA_FILE_ENV).ok())
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let config = tokio_postgres::Config::from_str(&dsn).map_err(|_| {
        DrError::InvalidInput("--dsn is not a valid PostgreSQL connection string".to_owned())
    })?;
    let host = config
        .get_hosts()
        .first()
        .and_then(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => Some(name.clone()),
            #[allow(unreachable_patterns)]
            _ => None,
        })
        .ok_or_else(|| DrError::InvalidInput("--dsn needs a TCP host".to_owned()))?;
    let password = config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .or_else(|| std::env::var("PGPASSWORD").ok())
        .unwrap_or_default();
    Ok(DatabaseTarget {
        endpoint: Endpoint {
            address: host,
            port: config.get_ports().first().copied().unwrap_or(5432),
        },
        database: config.get_dbname().unwrap_or("postgres").to_owned(),
        username: config.get_user().unwrap_or("postgres").to_owned(),
        password: SecretString::from(password),
        connect_timeout_seconds: 5,
        statement_timeout_ms: 0,
        tls: DatabaseTls { mode, ca_file },
    })
}

fn read_baseline(path: &PathBuf) -> DrResult<BTreeMap<String, u64>> {
    let bytes = std::fs::read(path)
        .map_err(|e| DrError::InvalidInput(format!("reading {}: {e}", path.display())))?;
    if let Ok(report) = serde_json::from_slice::<IntegrityReport>(&bytes) {
        return Ok(report.row_counts);
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        DrError::InvalidInput(format!(
            "{} is neither a report nor a {{table: rows}} object: {e}",
            path.display()
        ))
    })
}

fn read_checks(path: &PathBuf) -> DrResult<Vec<NamedCheck>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DrError::InvalidInput(format!("reading {}: {e}", path.display())))?;
    serde_norway::from_str(&text).map_err(|e| {
        DrError::InvalidInput(format!(
            "{} must be a list of {{name, sql}}: {e}",
            path.display()
        ))
    })
}

pub async fn run(args: VerifyArgs) -> DrResult<ExitCode> {
    let target = target_from_dsn(&args.dsn)?;
    if !(0.0..=1.0).contains(&args.tolerance) {
        return Err(DrError::InvalidInput(
            "--tolerance must be between 0 and 1".to_owned(),
        ));
    }
    let options = VerifyOptions {
        jobs: args.jobs,
        baseline: args.baseline.as_ref().map(read_baseline).transpose()?,
        tolerance: args.tolerance,
        expected_tables: args.expect,
        logical_relations: args
            .logical
            .iter()
            .map(|l| LogicalRelation::parse(l))
            .collect::<DrResult<_>>()?,
        custom_checks: args
            .checks
            .as_ref()
            .map(read_checks)
            .transpose()?
            .unwrap_or_default(),
        amcheck: !args.no_amcheck,
        ..VerifyOptions::default()
    };
    let report = dr_integrity::verify(&target, &options).await?;
    match args.output {
        OutputFormat::Json => crate::output::print_json(&report)?,
        OutputFormat::Text => {
            println!(
                "database {} on {}: {:?} in {} ms ({})",
                report.database,
                target.endpoint,
                report.status,
                report.duration_ms,
                if report.consistent_snapshot {
                    "every check read one snapshot"
                } else {
                    "no shared snapshot: each connection read its own"
                }
            );
            for check in &report.checks {
                println!(
                    "{:<8} {:<44} {:>8}  {}",
                    format!("{:?}", check.status).to_uppercase(),
                    check.name,
                    check.count.map(|c| c.to_string()).unwrap_or_default(),
                    check.detail.as_deref().unwrap_or("")
                );
                if !check.samples.is_empty() {
                    println!(
                        "         samples: {}",
                        serde_json::Value::Array(check.samples.clone())
                    );
                }
            }
        }
    }
    Ok(if report.status == CheckStatus::Passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dsn_becomes_a_target_and_bad_dsns_do_not_echo_secrets() {
        let t = target_from_dsn("postgresql://muejam_admin:s3cr3t-pw@127.0.0.2:5433/muejam")
            .expect("dsn");
        assert_eq!(
            (
                t.endpoint.address.as_str(),
                t.endpoint.port,
                t.database.as_str()
            ),
            ("127.0.0.2", 5433, "muejam")
        );
        assert!(!format!("{t:?}").contains("s3cr3t-pw"));
        let err = target_from_dsn("postgresql://u:s3cr3t-pw@host:notaport/db").expect_err("bad");
        assert!(!err.to_string().contains("s3cr3t-pw"));
    }

    #[test]
    fn libpq_tls_options_are_read_from_either_dsn_form() {
        let t = target_from_dsn(
            "postgresql://u:p@db.example:5432/muejam?sslmode=verify-ca&sslrootcert=/etc/rds.pem&connect_timeout=3",
        )
        .expect("url");
        assert_eq!(t.tls.mode, TlsMode::VerifyCa);
        assert_eq!(t.tls.ca_file, Some(PathBuf::from("/etc/rds.pem")));
        let t = target_from_dsn("host=db.example user=u sslmode=disable dbname=muejam")
            .expect("key=value");
        assert_eq!(t.tls.mode, TlsMode::Disable);
        assert_eq!(t.database, "muejam");
        let err = target_from_dsn("postgresql://u:p@db.example/muejam?sslmode=sometimes")
            .expect_err("bad mode");
        assert_eq!(err.name(), "InvalidInput");
    }
}
