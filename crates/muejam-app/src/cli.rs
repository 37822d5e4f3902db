//! `muejam-app serve|lb|migrate`: what the local platform starts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use dr_core::{DrError, DrResult};

use crate::catalog::AppConfig;
use crate::db::{DatabaseAccess, Login};
use crate::migrate::MigrationTarget;
use crate::platform::{job_result_path, JobResult};

#[derive(Debug, Parser)]
#[command(
    name = "muejam-app",
    about = "The local MueJam API (started by drctl local up)"
)]
struct Cli {
    /// The local stack's home.
    #[arg(long)]
    home: PathBuf,
    #[command(subcommand)]
    command: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// One instance of the API.
    Serve {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        instance_id: String,
        #[arg(long)]
        revision: u64,
        #[arg(long)]
        image: String,
        /// A broken release: /health answers 500.
        #[arg(long)]
        broken: bool,
    },
    /// The group's load balancer.
    Lb {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        group: String,
    },
    /// `manage.py migrate muejam <to>` with a revision that has `known`
    /// migrations; as a job, the result goes to app/jobs/<job>.json.
    Migrate {
        #[arg(long)]
        known: usize,
        #[arg(long)]
        to: String,
        #[arg(long)]
        job: Option<String>,
    },
}

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("muejam-app: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("muejam-app: {}: {e}", e.name());
            ExitCode::FAILURE
        }
    }
}

async fn listener(listen: &str) -> DrResult<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| DrError::Internal(format!("listening on {listen}: {e}")))
}

async fn run(cli: Cli) -> DrResult<ExitCode> {
    match cli.command {
        Mode::Serve {
            listen,
            instance_id,
            revision,
            image,
            broken,
        } => {
            let config = AppConfig::read(&cli.home)?;
            let read_only =
                crate::server::read_only_from(std::env::var("READ_ONLY_MODE").ok().as_deref());
            let app = Arc::new(crate::server::App {
                identity: crate::server::Identity {
                    instance_id,
                    revision,
                    image,
                    broken,
                    read_only,
                },
                db: DatabaseAccess::new(&cli.home, config, Login::App),
            });
            let socket = listener(&listen).await?;
            tracing::info!(%listen, revision, read_only, broken, "serving");
            axum::serve(socket, crate::server::router(app))
                .await
                .map_err(|e| DrError::Internal(format!("serving: {e}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Mode::Lb { listen, group } => {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .map_err(|e| DrError::Internal(e.to_string()))?;
            let balancer = Arc::new(crate::lb::Balancer {
                home: cli.home.clone(),
                group,
                next: Default::default(),
                client,
            });
            let socket = listener(&listen).await?;
            axum::serve(socket, crate::lb::router(balancer))
                .await
                .map_err(|e| DrError::Internal(format!("serving: {e}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Mode::Migrate { known, to, job } => {
            let target = if to == "latest" {
                MigrationTarget::Latest
            } else {
                MigrationTarget::To(to)
            };
            let outcome = crate::migrate::migrate_home(&cli.home, known, &target).await;
            let (succeeded, output) = match &outcome {
                Ok(o) => (
                    true,
                    format!(
                        "unapplied: [{}]; applied: [{}]; now: [{}]",
                        o.unapplied.join(", "),
                        o.applied.join(", "),
                        o.now.join(", ")
                    ),
                ),
                Err(e) => (false, format!("{}: {e}", e.name())),
            };
            eprintln!("{output}");
            if let Some(job) = job {
                let path = job_result_path(&cli.home, &job);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        DrError::Internal(format!("creating {}: {e}", dir.display()))
                    })?;
                }
                let tmp = path.with_extension("tmp");
                let bytes = serde_json::to_vec(&JobResult { succeeded, output })
                    .map_err(|e| DrError::Internal(e.to_string()))?;
                std::fs::write(&tmp, bytes)
                    .and_then(|()| std::fs::rename(&tmp, &path))
                    .map_err(|e| DrError::Internal(format!("writing {}: {e}", path.display())))?;
            }
            Ok(if succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
