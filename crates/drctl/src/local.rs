//! `drctl local ...`: bring the local stack up, show it, take it down.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use dr_core::{CreateSnapshotRequest, DrError, DrResult, InstanceId, SnapshotId};
use dr_local::stack::UpOptions;
use dr_local::LocalControlPlane;

use crate::output::{self, OutputFormat};

#[derive(Debug, Args)]
pub struct LocalArgs {
    /// Home directory of the local platform. Default for `up`: a new temporary
    /// directory (removed by `down`); for the other commands: the last one `up` made.
    #[arg(long, env = "DRCTL_HOME", global = true)]
    home: Option<PathBuf>,
    /// age identity file that seals snapshots (default: keys/snapshot.key in the home).
    #[arg(long, env = "DRCTL_SNAPSHOT_KEY_FILE", global = true)]
    snapshot_key: Option<PathBuf>,
    #[command(subcommand)]
    command: LocalCommand,
}

#[derive(Debug, Subcommand)]
enum LocalCommand {
    /// Start the primary (with sample data and an automated backup), its
    /// streaming replica, and a moto server. Prints the environment to use.
    Up {
        /// Sample data scale: 1 = 10k users, 50k stories, 200k chapters.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Do not start the moto server.
        #[arg(long)]
        no_moto: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Instances (role, endpoint, status, lag), snapshots and the moto endpoint.
    Status {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Stop everything `up` started. Removes the home only if it was temporary
    /// or `--remove-home` is given.
    Down {
        #[arg(long)]
        remove_home: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Print every message SNS delivered to the alerts topic (read through its
    /// SQS subscription and kept in messages.jsonl in the home).
    Messages {
        /// The user-notification topic's messages instead (what the
        /// platform's mailer received; kept in user-messages.jsonl).
        #[arg(long)]
        users: bool,
        /// What escalation tier N's topic delivered (its own SQS subscription; kept in
        /// tier-N-messages.jsonl): what that tier's people received.
        #[arg(long, value_name = "N", conflicts_with = "users", value_parser = clap::value_parser!(u8).range(1..=4))]
        tier: Option<u8>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Kill an instance as a crash would (immediate shutdown): the way to
    /// rehearse a database failure locally.
    Crash { instance: String },
    /// Start a stopped or crashed instance again.
    Start { instance: String },
    /// Freeze an instance (SIGSTOP of its server): connections time out while
    /// the control plane still says available, as for a hung host or a
    /// network partition.
    Hang { instance: String },
    /// Let a hung instance run again.
    Resume { instance: String },
    /// Take a whole region down, as a region failure looks from outside:
    /// its control plane answers Unavailable and every instance in it stops
    /// answering (the rehearsal of the runbook's "Complete AWS Region
    /// Failure").
    RegionOutage {
        #[arg(value_parser = dr_local::REGIONS)]
        region: String,
    },
    /// Bring a region taken down by region-outage back.
    RegionRestore {
        #[arg(value_parser = dr_local::REGIONS)]
        region: String,
    },
    /// Commit realistic damage to an instance's data (the rehearsal of the
    /// runbook's "Data Corruption"): `orphans` deletes authors behind the
    /// foreign keys' back; `overwrite` blanks users' display names (found
    /// only by a named check). Prints when it was committed.
    Corrupt {
        instance: String,
        #[arg(long, value_parser = ["orphans", "overwrite"])]
        kind: String,
        /// How many rows to damage.
        #[arg(long, default_value_t = 5)]
        rows: u32,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Release a new revision of the MueJam API to the local fleet (its new
    /// migrations applied first, then every instance replaced): the
    /// rehearsal of a deployment that has to be rolled back.
    Deploy {
        /// A broken release: its health check answers 500.
        #[arg(long)]
        bad: bool,
        /// How many of the app's migrations the release's files carry
        /// (default: the current release's).
        #[arg(long)]
        migrations: Option<usize>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Kill every instance of the MueJam API at once (SIGKILL): the
    /// rehearsal of the runbook's "Application Server Failure".
    AppKill,
    /// Take a manual, encrypted snapshot of an instance.
    Snapshot {
        instance: String,
        /// Default: <instance>-<UTC timestamp>.
        #[arg(long)]
        snapshot_id: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

/// Where `up` records the temporary home it made, for later commands.
fn current_home_pointer() -> PathBuf {
    std::env::temp_dir().join(format!("drctl-{}.home", nix_uid()))
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self").map_or(0, |m| std::os::unix::fs::MetadataExt::uid(&m))
}

pub fn existing_home(explicit: Option<PathBuf>) -> DrResult<PathBuf> {
    if let Some(home) = explicit {
        if !home.join(dr_local::state::STATE_FILE).exists() {
            return Err(DrError::NotFound(format!(
                "{} holds no local stack (no state file); run `drctl local up --home {}`",
                home.display(),
                home.display()
            )));
        }
        return Ok(home);
    }
    let pointer = current_home_pointer();
    let home = std::fs::read_to_string(&pointer)
        .map(|s| PathBuf::from(s.trim()))
        .map_err(|_| {
            DrError::NotFound(
                "no local stack is known: run `drctl local up`, or pass --home / set DRCTL_HOME"
                    .to_owned(),
            )
        })?;
    if !home.join(dr_local::state::STATE_FILE).exists() {
        return Err(DrError::NotFound(format!(
            "the last local stack ({}) is gone: run `drctl local up`",
            home.display()
        )));
    }
    Ok(home)
}

fn open(home: &Path, key: Option<&Path>) -> DrResult<LocalControlPlane> {
    LocalControlPlane::open(home, key)
}

pub async fn run(args: LocalArgs) -> DrResult<ExitCode> {
    let key = args.snapshot_key.as_deref();
    match args.command {
        LocalCommand::Up {
            scale,
            no_moto,
            output,
        } => {
            let (home, temporary) = match args.home {
                Some(home) => (home, false),
                None => {
                    let dir = tempfile::Builder::new()
                        .prefix("drctl-")
                        .tempdir()
                        .map_err(|e| DrError::Internal(format!("making a temporary home: {e}")))?;
                    (dir.keep(), true)
                }
            };
            let platform = match open(&home, key) {
                Ok(platform) => platform,
                Err(e) => {
                    if temporary {
                        let _ = std::fs::remove_dir_all(&home);
                    }
                    return Err(e);
                }
            };
            if temporary {
                platform.mark_temporary_home()?;
                std::fs::write(
                    current_home_pointer(),
                    platform.home().display().to_string(),
                )
                .map_err(|e| DrError::Internal(format!("recording the home: {e}")))?;
            }
            let progress = |step: &str| eprintln!("drctl: {step}");
            let status = platform
                .up(
                    UpOptions {
                        scale,
                        with_moto: !no_moto,
                    },
                    &progress,
                )
                .await?;
            if !no_moto {
                progress(
                    "creating the DNS record, alerts topic, database secret and lock table in moto",
                );
                let clients = crate::wiring::moto_clients(&platform).await?;
                let sqs = crate::wiring::moto_sqs(&platform).await?;
                crate::seed::seed(&platform, &clients, &sqs).await?;
                progress("starting the MueJam API fleet and its load balancer");
                let app = crate::app::up(&platform).await?;
                if output == OutputFormat::Text {
                    println!(
                        "export MUEJAM_HEALTH_URL={}",
                        app.health_url(muejam_app::platform::GROUP)?
                    );
                }
            }
            output::print_up(&status, output)?;
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Status { output } => {
            let platform = open(&existing_home(args.home)?, key)?;
            let status = platform.status().await?;
            let apps = muejam_app::LocalAppPlatform::new(platform.home())?
                .view()
                .await?;
            let locks = match crate::wiring::moto_clients(&platform).await {
                Ok(clients) => locks(&platform, clients).await?,
                Err(_) => Vec::new(),
            };
            output::print_status(&status, &apps, &locks, output)?;
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Down {
            remove_home,
            output,
        } => {
            let home = existing_home(args.home)?;
            let platform = open(&home, key)?;
            let stopped_apps = muejam_app::LocalAppPlatform::new(platform.home())?.stop_all()?;
            if stopped_apps > 0 {
                eprintln!("stopped {stopped_apps} MueJam API instance(s)");
            }
            let report = platform.down(remove_home).await?;
            if report.removed_home {
                let pointer = current_home_pointer();
                if std::fs::read_to_string(&pointer)
                    .is_ok_and(|p| Path::new(p.trim()) == platform.home())
                {
                    let _ = std::fs::remove_file(pointer);
                }
            }
            output::print_down(&report, platform.home(), output)?;
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Crash { instance } => {
            let platform = open(&existing_home(args.home)?, key)?;
            let id = InstanceId::parse(&instance)?;
            platform.crash_instance(&id).await?;
            eprintln!("crashed {id}: its server was killed (immediate shutdown)");
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Hang { instance } => {
            let platform = open(&existing_home(args.home)?, key)?;
            let id = InstanceId::parse(&instance)?;
            platform.hang_instance(&id).await?;
            eprintln!("hung {id}: its server is frozen; connections time out, the control plane still says available");
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Resume { instance } => {
            let platform = open(&existing_home(args.home)?, key)?;
            let id = InstanceId::parse(&instance)?;
            platform.resume_instance(&id).await?;
            eprintln!("resumed {id}");
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::RegionOutage { region } => {
            let platform = open(&existing_home(args.home)?, key)?;
            let frozen = platform.region_outage(&region).await?;
            eprintln!(
                "{region} is down: its control plane answers Unavailable; {} instance(s) frozen{}",
                frozen.len(),
                list_ids(&frozen)
            );
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::RegionRestore { region } => {
            let platform = open(&existing_home(args.home)?, key)?;
            let thawed = platform.region_restore(&region).await?;
            eprintln!(
                "{region} is back; {} instance(s) running again{}",
                thawed.len(),
                list_ids(&thawed)
            );
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Start { instance } => {
            let platform = open(&existing_home(args.home)?, key)?;
            let id = InstanceId::parse(&instance)?;
            let described = platform.start_instance(&id).await?;
            eprintln!("{id} is {}", described.status);
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Messages {
            users,
            tier,
            output,
        } => {
            let platform = open(&existing_home(args.home)?, key)?;
            let messages = if users {
                crate::wiring::read_user_messages(&platform).await?
            } else if let Some(tier) = tier {
                crate::wiring::read_tier_messages(&platform, usize::from(tier)).await?
            } else {
                crate::wiring::read_alerts(&platform).await?
            };
            output::print_messages(&messages, output)?;
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Corrupt {
            instance,
            kind,
            rows,
            output,
        } => {
            let platform = open(&existing_home(args.home)?, key)?;
            let id = InstanceId::parse(&instance)?;
            let kind = dr_postgres::damage::DamageKind::parse(&kind)?;
            let client = dr_postgres::connect(&platform.database_target(&id, None)?).await?;
            let damage = dr_postgres::damage::corrupt(&client, kind, rows).await?;
            if output == OutputFormat::Json {
                output::print_json(&damage)?;
            } else {
                println!(
                    "corrupted {id}: {} row(s) of {} ({:?}), committed between {} and {}",
                    damage.rows,
                    damage.table,
                    damage.kind,
                    damage.before.to_rfc3339(),
                    damage.at.to_rfc3339()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Deploy {
            bad,
            migrations,
            output,
        } => {
            let platform = open(&existing_home(args.home)?, key)?;
            let app = muejam_app::LocalAppPlatform::new(platform.home())?;
            let cause = if bad {
                "drctl local deploy --bad"
            } else {
                "drctl local deploy"
            };
            let revision = app.deploy(bad, migrations, cause).await?;
            let views = app.view().await?;
            if output == OutputFormat::Json {
                output::print_json(&serde_json::json!({"revision": revision, "fleet": views}))?;
            } else {
                println!(
                    "revision {revision} is rolled out{}",
                    if bad {
                        " (broken on purpose: its health check answers 500)"
                    } else {
                        ""
                    }
                );
                print!("{}", output::fleet_table(&views));
            }
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::AppKill => {
            let platform = open(&existing_home(args.home)?, key)?;
            let killed = muejam_app::LocalAppPlatform::new(platform.home())?
                .kill_instances(muejam_app::platform::GROUP)?;
            eprintln!(
                "killed {} MueJam API instance(s){}",
                killed.len(),
                if killed.is_empty() {
                    String::new()
                } else {
                    format!(": {}", killed.join(", "))
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Snapshot {
            instance,
            snapshot_id,
            output,
        } => {
            let platform = open(&existing_home(args.home)?, key)?;
            let instance_id = InstanceId::parse(&instance)?;
            let snapshot_id = SnapshotId::parse(
                &snapshot_id.unwrap_or_else(|| format!("{instance}-{}", chrono_stamp())),
            )?;
            let snapshot = dr_core::DatabaseControlPlane::create_snapshot(
                &platform,
                &CreateSnapshotRequest {
                    instance_id,
                    snapshot_id,
                    tags: Default::default(),
                },
            )
            .await?;
            output::print_snapshot(&snapshot, output)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The recovery locks held in the stack's moto, with their holders' states.
async fn locks(
    platform: &LocalControlPlane,
    clients: dr_aws::AwsClients,
) -> DrResult<Vec<output::LockView>> {
    use dr_core::{Executions, RecoveryLock};
    let lock = dr_aws::DynamoDbLock::new(clients.dynamodb, crate::seed::LOCK_TABLE);
    let executions = dr_local::executions::LocalExecutions::new(platform.home());
    let mut views = Vec::new();
    for holder in lock.holders().await? {
        views.push(output::LockView {
            holder_state: executions.state(&holder.owner).await?,
            resource: holder.resource,
            owner: holder.owner,
            acquired_at: holder.acquired_at,
        });
    }
    Ok(views)
}

fn chrono_stamp() -> String {
    chrono::Utc::now().format("%Y-%m-%d-%H-%M-%S").to_string()
}

/// ": a, b" for a non-empty list of instances.
fn list_ids(ids: &[InstanceId]) -> String {
    if ids.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = ids.iter().map(InstanceId::as_str).collect();
        format!(": {}", names.join(", "))
    }
}
