//! The local stack as `drctl local up/status/down` manage it: the MueJam
//! primary with sample data and an automated backup, its streaming replica,
//! and a moto server.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use chrono::Utc;
use dr_core::*;
use serde::Serialize;

use crate::moto::{self, MotoStatus};
use crate::platform::{CreateInstanceRequest, LocalControlPlane};

pub const PRIMARY_ID: &str = "muejam-db-prod";
pub const REPLICA_ID: &str = "muejam-db-prod-replica";
/// libpq password file for every instance of the home (so `psql` works
/// without a password on the command line or in the output).
pub const PGPASS_FILE: &str = "pgpass";

/// One step of `up`, reported as it happens.
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

#[derive(Debug, Clone, Copy)]
pub struct UpOptions {
    pub scale: f64,
    pub with_moto: bool,
}

/// Everything `status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StackStatus {
    pub home: PathBuf,
    pub temporary_home: bool,
    /// Every region's instances and snapshots (a region that is down
    /// shows none: its control plane does not answer).
    pub instances: Vec<InstanceDescription>,
    pub snapshots: Vec<SnapshotDescription>,
    /// Regions taken down by `drctl local region-outage`.
    pub regions_down: Vec<String>,
    pub moto: Option<MotoStatus>,
    pub pgpass_file: PathBuf,
    /// The CA every cluster's certificate chains to (`PGSSLROOTCERT`).
    pub ca_file: PathBuf,
}

/// What `down` did.
#[derive(Debug, Clone, Serialize)]
pub struct DownReport {
    pub stopped_instances: Vec<InstanceId>,
    pub stopped_moto: bool,
    pub removed_home: bool,
}

fn fixed_id(s: &str) -> DrResult<InstanceId> {
    InstanceId::parse(s)
}

impl LocalControlPlane {
    /// Records that `down` may remove this home.
    pub fn mark_temporary_home(&self) -> DrResult<()> {
        self.with_state(|guard| {
            guard.state.temporary_home = true;
            guard.save()
        })
    }

    /// Brings the stack up; running it again starts what is stopped and
    /// creates only what is missing.
    pub async fn up(&self, options: UpOptions, progress: Progress<'_>) -> DrResult<StackStatus> {
        dr_postgres::sample::SamplePlan::for_scale(options.scale)?;
        let primary = fixed_id(PRIMARY_ID)?;
        let replica = fixed_id(REPLICA_ID)?;
        let known = self.store().read()?;
        if known.instances.contains_key(&primary) {
            progress(&format!("starting {PRIMARY_ID}"));
            self.start_instance(&primary).await?;
        } else {
            progress(&format!("creating primary {PRIMARY_ID}"));
            self.create_instance(&CreateInstanceRequest {
                instance_id: primary.clone(),
                availability_zone: Some(crate::AVAILABILITY_ZONES[0].to_owned()),
                tags: [
                    ("Application".to_owned(), "muejam".to_owned()),
                    ("Environment".to_owned(), "production".to_owned()),
                    ("DrDrill".to_owned(), "in-scope".to_owned()),
                    // What the failover's IAM policies select on (as on AWS).
                    ("dr:managed".to_owned(), "true".to_owned()),
                ]
                .into(),
            })
            .await?;
        }
        let client = dr_postgres::connect(&self.database_target(&primary, None)?).await?;
        progress(&format!(
            "loading MueJam sample data (scale {})",
            options.scale
        ));
        match dr_postgres::sample::generate(&client, options.scale).await {
            Ok(plan) => progress(&format!("loaded {} rows", plan.total_rows())),
            Err(DrError::AlreadyExists(_)) => progress("sample data already present"),
            Err(e) => return Err(e),
        }
        if self.list_snapshots(Some(&primary)).await?.is_empty() {
            let snapshot_id = SnapshotId::parse(&format!(
                "rds:{PRIMARY_ID}-{}",
                Utc::now().format("%Y-%m-%d-%H-%M")
            ))?;
            progress(&format!("taking automated backup {snapshot_id}"));
            self.snapshot(
                &CreateSnapshotRequest {
                    instance_id: primary.clone(),
                    snapshot_id,
                    tags: Tags::new(),
                },
                SnapshotType::Automated,
            )
            .await?;
        }
        if known.instances.contains_key(&replica) {
            progress(&format!("starting {REPLICA_ID}"));
            self.start_instance(&replica).await?;
        } else {
            progress(&format!("creating streaming replica {REPLICA_ID}"));
            self.create_read_replica(&CreateReplicaRequest {
                network: None,
                replica_id: replica.clone(),
                source_id: primary.clone(),
                availability_zone: Some(crate::AVAILABILITY_ZONES[1].to_owned()),
                tags: [
                    ("Application".to_owned(), "muejam".to_owned()),
                    ("dr:managed".to_owned(), "true".to_owned()),
                ]
                .into(),
            })
            .await?;
        }
        if options.with_moto {
            let running = self
                .store()
                .read()?
                .moto
                .as_ref()
                .is_some_and(moto::is_running);
            if !running {
                let port = self.free_port(&self.store().read()?)?;
                progress(&format!("starting moto server on 127.0.0.1:{port}"));
                let record = moto::start(self.home(), port)?;
                self.with_state(|guard| {
                    guard.state.moto = Some(record);
                    guard.save()
                })?;
            }
        }
        self.write_pgpass()?;
        self.status().await
    }

    pub async fn status(&self) -> DrResult<StackStatus> {
        let state = self.store().read()?;
        let mut instances = Vec::new();
        let mut snapshots = Vec::new();
        let mut regions_down = Vec::new();
        for region in crate::platform::REGIONS {
            let plane = self.in_region(region)?;
            match plane.list_instances().await {
                Ok(mut found) => {
                    instances.append(&mut found);
                    snapshots.append(&mut plane.list_snapshots(None).await?);
                }
                Err(DrError::Unavailable(_)) => regions_down.push(region.to_owned()),
                Err(e) => return Err(e),
            }
        }
        SnapshotDescription::sort_newest_first(&mut snapshots);
        Ok(StackStatus {
            home: self.home().to_owned(),
            temporary_home: state.temporary_home,
            instances,
            snapshots,
            regions_down,
            moto: state.moto.as_ref().map(moto::status),
            pgpass_file: self.home().join(PGPASS_FILE),
            ca_file: self.ca_file(),
        })
    }

    /// Stops every server and moto; removes the home only when it was
    /// temporary or `remove_home` asks for it.
    pub async fn down(&self, remove_home: bool) -> DrResult<DownReport> {
        let stopped_instances = self.stop_all().await?;
        let state = self.store().read()?;
        let stopped_moto = match &state.moto {
            Some(record) if moto::is_running(record) => {
                moto::stop(record)?;
                true
            }
            _ => false,
        };
        self.with_state(|guard| {
            for record in guard.state.instances.values_mut() {
                record.should_run = false;
            }
            guard.state.moto = None;
            guard.save()
        })?;
        let removed_home = remove_home || state.temporary_home;
        if removed_home {
            fs::remove_dir_all(self.home()).map_err(|e| {
                DrError::Internal(format!("removing {}: {e}", self.home().display()))
            })?;
        }
        Ok(DownReport {
            stopped_instances,
            stopped_moto,
            removed_home,
        })
    }

    fn write_pgpass(&self) -> DrResult<()> {
        let state = self.store().read()?;
        let mut lines = String::new();
        for (id, record) in &state.instances {
            let credentials = self.read_credentials_for(id)?;
            lines.push_str(&format!(
                "{}:{}:*:{}:{}\n",
                record.address,
                record.port,
                credentials.master_username,
                credentials
                    .master_password
                    .replace('\\', "\\\\")
                    .replace(':', "\\:")
            ));
        }
        let path = self.home().join(PGPASS_FILE);
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(lines.as_bytes()))
            .map_err(|e| DrError::Internal(format!("writing {}: {e}", path.display())))
    }
}
