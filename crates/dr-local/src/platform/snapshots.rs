//! Sealed snapshots: take, verify, describe, restore.

use super::*;

impl LocalControlPlane {
    pub(super) fn snapshot_path(&self, id: &SnapshotId) -> PathBuf {
        PathBuf::from("snapshots").join(format!("{}.tar.age", id.as_str().replace(':', "_")))
    }

    pub(super) fn staging_dir(&self, label: &str) -> DrResult<PathBuf> {
        let dir = self.home.join("staging").join(format!(
            "{label}-{}",
            Alphanumeric
                .sample_string(&mut rand::thread_rng(), 8)
                .to_lowercase()
        ));
        make_dir(&dir, 0o700)?;
        self.pg.give(&dir)?;
        Ok(dir)
    }

    /// Takes a base backup of `request.instance_id`, seals it, and records it.
    pub async fn snapshot(
        &self,
        request: &CreateSnapshotRequest,
        snapshot_type: SnapshotType,
    ) -> DrResult<SnapshotDescription> {
        let id = &request.instance_id;
        let snapshot_id = &request.snapshot_id;
        let description = self.describe(id).await?;
        let record = self.with_state(|guard| {
            if let Some(existing) = guard.state.snapshots.get(snapshot_id) {
                if &existing.source_instance_id == id && existing.region == self.region {
                    return Ok(None);
                }
                return Err(DrError::AlreadyExists(format!(
                    "DB snapshot {snapshot_id} already exists (of {})",
                    existing.source_instance_id
                )));
            }
            let record = guard.instance_mut(id)?;
            if let Some(status) = record.live_busy_status() {
                return Err(DrError::NotReady(format!(
                    "DB instance {id} is {status}; a snapshot needs it available"
                )));
            }
            if description.status != InstanceStatus::Available {
                return Err(DrError::NotReady(format!(
                    "DB instance {id} is {}; a snapshot needs it available",
                    description.status
                )));
            }
            record.busy = Some(Busy {
                status: InstanceStatus::BackingUp,
                pid: std::process::id(),
            });
            let record = record.clone();
            guard.save()?;
            Ok(Some(record))
        })?;
        let Some(record) = record else {
            return self.snapshot_description(snapshot_id);
        };
        let started = Utc::now();
        let outcome = self.take_backup(id, &record, snapshot_id).await;
        self.with_state(|guard| {
            if let Ok(r) = guard.instance_mut(id) {
                r.busy = None;
            }
            if let Ok((size, row_counts)) = &outcome {
                guard.state.snapshots.insert(
                    snapshot_id.clone(),
                    SnapshotRecord {
                        source_instance_id: id.clone(),
                        snapshot_type,
                        created_at: started,
                        completed_at: Utc::now(),
                        taken_from_primary: description.role == InstanceRole::Primary,
                        size_bytes: *size,
                        file: self.snapshot_path(snapshot_id),
                        engine_version: description.engine_version.clone(),
                        row_counts: row_counts.clone(),
                        tags: request.tags.clone(),
                        region: self.region.clone(),
                        copied_from: None,
                    },
                );
            }
            guard.save()
        })?;
        outcome?;
        self.snapshot_description(snapshot_id)
    }

    pub(super) async fn take_backup(
        &self,
        id: &InstanceId,
        record: &InstanceRecord,
        snapshot_id: &SnapshotId,
    ) -> DrResult<(u64, BTreeMap<String, u64>)> {
        let credentials = self.read_credentials(id.as_str())?;
        let staging = self.staging_dir("backup")?;
        let result = async {
            let backup_dir = staging.join("backup");
            let mut command = self.pg.command("pg_basebackup");
            command
                .args(["-h", &record.address, "-p", &record.port.to_string()])
                .args(["-U", REPLICATION_USERNAME, "-w", "-D"])
                .arg(&backup_dir)
                .args([
                    "-F",
                    "tar",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "--manifest-checksums=SHA256",
                ])
                .args(["-l", &format!("drctl snapshot {snapshot_id}")])
                .env("PGPASSWORD", &credentials.replication_password);
            self.libpq_tls(&mut command);
            crate::pg::run_checked("pg_basebackup", command).await?;
            let mut target = self.database_target(id, None)?;
            target.statement_timeout_ms = 0;
            let client = dr_postgres::connect(&target).await?;
            let row_counts = dr_postgres::target::table_row_counts(&client).await?;
            let output = self.home.join(self.snapshot_path(snapshot_id));
            let key = Arc::clone(&self.key);
            let size = tokio::task::spawn_blocking(move || key.seal(&backup_dir, &output))
                .await
                .map_err(|e| DrError::Internal(format!("sealing task: {e}")))??;
            self.write_credentials(&snapshot_credentials_name(snapshot_id), &credentials)?;
            Ok((size, row_counts))
        }
        .await;
        let _ = fs::remove_dir_all(&staging);
        result
    }

    /// The record of a snapshot of this plane's region.
    pub(crate) fn snapshot_record(&self, id: &SnapshotId) -> DrResult<SnapshotRecord> {
        let state = self.store.read()?;
        state
            .snapshots
            .get(id)
            .filter(|s| s.region == self.region)
            .cloned()
            .ok_or_else(|| {
                DrError::NotFound(format!("DB snapshot {id} not found in {}", self.region))
            })
    }

    pub(crate) fn snapshot_description(&self, id: &SnapshotId) -> DrResult<SnapshotDescription> {
        Ok(describe_snapshot(id, &self.snapshot_record(id)?))
    }

    /// Row counts per table recorded when the snapshot was taken.
    pub fn snapshot_row_counts(&self, id: &SnapshotId) -> DrResult<BTreeMap<String, u64>> {
        Ok(self.snapshot_record(id)?.row_counts)
    }

    /// The sealed file of a snapshot (for tests and drills that tamper with it).
    pub fn snapshot_file(&self, id: &SnapshotId) -> DrResult<PathBuf> {
        Ok(self.home.join(self.snapshot_record(id)?.file))
    }

    /// Copies a snapshot of another region into this one (RDS
    /// CopyDBSnapshot called in the destination region): opened with the
    /// source region's key and sealed again with this region's, so the copy
    /// is useless to anyone holding only the source key. Its data time stays
    /// the source's. Idempotent on the target's name and source.
    pub(crate) async fn copy_into_region(
        &self,
        request: &CopySnapshotRequest,
    ) -> DrResult<SnapshotDescription> {
        let target = &request.target_snapshot_id;
        if request.kms_key_id != self.key_name() {
            return Err(DrError::InvalidInput(format!(
                "key {:?} is not a key of {}: keys are regional and a copy into {} must name {}",
                request.kms_key_id.chars().take(100).collect::<String>(),
                self.region,
                self.region,
                self.key_name()
            )));
        }
        if request.source_region == self.region {
            return Err(DrError::InvalidInput(format!(
                "snapshot {} is already in {}; a copy goes to another region",
                request.source_snapshot_id, self.region
            )));
        }
        let source_plane = self.in_region(&request.source_region)?;
        // The copy reads the source in its region: a region that is down
        // cannot be copied from.
        source_plane.check_region_up()?;
        let existing = self.store.read()?.snapshots.get(target).cloned();
        if let Some(existing) = existing {
            let same = existing.region == self.region
                && existing.copied_from.as_ref().is_some_and(|c| {
                    c.snapshot == request.source_snapshot_id && c.region == request.source_region
                });
            if same {
                return Ok(describe_snapshot(target, &existing));
            }
            return Err(DrError::AlreadyExists(format!(
                "DB snapshot {target} already exists in {} and is not a copy of {} from {}",
                existing.region, request.source_snapshot_id, request.source_region
            )));
        }
        let source = source_plane.snapshot_record(&request.source_snapshot_id)?;
        let input = self.home.join(&source.file);
        let output = self.home.join(self.snapshot_path(target));
        let source_key = Arc::clone(&source_plane.key);
        let target_key = Arc::clone(&self.key);
        let size =
            tokio::task::spawn_blocking(move || source_key.reseal(&input, &target_key, &output))
                .await
                .map_err(|e| DrError::Internal(format!("copying task: {e}")))??;
        let credentials =
            self.read_credentials(&snapshot_credentials_name(&request.source_snapshot_id))?;
        self.write_credentials(&snapshot_credentials_name(target), &credentials)?;
        let original_created_at = source
            .copied_from
            .as_ref()
            .map_or(source.created_at, |c| c.original_created_at);
        let mut tags = source.tags.clone();
        tags.extend(request.tags.clone());
        let record = SnapshotRecord {
            source_instance_id: source.source_instance_id.clone(),
            snapshot_type: SnapshotType::Manual,
            created_at: Utc::now(),
            completed_at: Utc::now(),
            // Its source's WAL stays in the source region: not a PITR base.
            taken_from_primary: false,
            size_bytes: size,
            file: self.snapshot_path(target),
            engine_version: source.engine_version.clone(),
            row_counts: source.row_counts.clone(),
            tags,
            region: self.region.clone(),
            copied_from: Some(CopiedFrom {
                snapshot: request.source_snapshot_id.clone(),
                region: request.source_region.clone(),
                original_created_at,
                kms_key_id: request.kms_key_id.clone(),
            }),
        };
        self.with_state(|guard| {
            guard.state.snapshots.insert(target.clone(), record.clone());
            guard.save()
        })?;
        tracing::info!(
            snapshot = %target,
            source = %request.source_snapshot_id,
            from = %request.source_region,
            to = %self.region,
            "copied snapshot across regions"
        );
        Ok(describe_snapshot(target, &record))
    }

    /// Decrypts a snapshot into scratch space and runs pg_verifybackup on it.
    /// A snapshot that does not decrypt or verify is `Corrupt`.
    pub async fn verify_snapshot(&self, id: &SnapshotId) -> DrResult<SnapshotVerification> {
        let sealed = self.snapshot_file(id)?;
        let staging = self.staging_dir("verify")?;
        let result = async {
            let data = staging.join("data");
            let key = Arc::clone(&self.key);
            let target = data.clone();
            tokio::task::spawn_blocking(move || key.open_into_data_dir(&sealed, &target))
                .await
                .map_err(|e| DrError::Internal(format!("unsealing task: {e}")))??;
            self.pg.give(&staging)?;
            let mut command = self.pg.command("pg_verifybackup");
            command.arg(&data).stdin(std::process::Stdio::null());
            let output = command
                .output()
                .await
                .map_err(|e| DrError::Internal(format!("starting pg_verifybackup: {e}")))?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            if output.status.success() {
                Ok(SnapshotVerification {
                    snapshot_id: id.clone(),
                    encrypted: true,
                    verified: true,
                    detail: tail(&text, 3),
                })
            } else {
                Err(DrError::Corrupt(format!(
                    "snapshot {id} fails pg_verifybackup: {}",
                    tail(&text, 6)
                )))
            }
        }
        .await;
        let _ = fs::remove_dir_all(&staging);
        result
    }

    // ----- restores --------------------------------------------------------

    /// Lays a sealed snapshot out as the data directory of `target`.
    pub(super) async fn unseal_into(
        &self,
        snapshot_file: PathBuf,
        target: &InstanceId,
    ) -> DrResult<()> {
        let dir = self.instance_dir(target);
        make_dir(&dir, 0o700)?;
        let data = self.data_dir(target);
        if data.exists() {
            fs::remove_dir_all(&data)
                .map_err(|e| DrError::Internal(format!("clearing {}: {e}", data.display())))?;
        }
        let key = Arc::clone(&self.key);
        let data_for_task = data.clone();
        tokio::task::spawn_blocking(move || key.open_into_data_dir(&snapshot_file, &data_for_task))
            .await
            .map_err(|e| DrError::Internal(format!("unsealing task: {e}")))??;
        // The manifest describes the backup, not the running cluster.
        let _ = fs::remove_file(data.join("backup_manifest"));
        self.pg.give(&dir)
    }

    pub(super) async fn wait_until_writable(&self, id: &InstanceId) -> DrResult<()> {
        self.wait_until(&format!("{id} leaving recovery"), START_TIMEOUT, || async {
            if !self.postmaster_running(id) {
                let log = self.instance_dir(id).join("postgresql.log");
                return Err(DrError::Internal(format!(
                    "{id} stopped during recovery: {}",
                    log_tail(&log)
                )));
            }
            match self.live_info(id).await {
                Ok(info) => Ok(!info.in_recovery),
                Err(e) => Err(DrError::NotReady(e.to_string())),
            }
        })
        .await
    }

    pub(crate) async fn restore_snapshot_into(
        &self,
        snapshot_id: &SnapshotId,
        target: &InstanceId,
        port: u16,
    ) -> DrResult<()> {
        let file = self.snapshot_file(snapshot_id)?;
        self.unseal_into(file, target).await?;
        let credentials = self.read_credentials(&snapshot_credentials_name(snapshot_id))?;
        self.write_credentials(target.as_str(), &credentials)?;
        self.write_instance_config(target, port, &[])?;
        self.start_server(target).await?;
        self.wait_until_writable(target).await
    }

    /// The PITR window of a source: from its oldest base backup to the newest
    /// moment its WAL archive is known (or can be made) to hold.
    pub(crate) async fn restorable_window(
        &self,
        source: &InstanceId,
    ) -> DrResult<(DateTime<Utc>, DateTime<Utc>)> {
        let description = self.describe(source).await?;
        match (description.earliest_restorable_time, description.latest_restorable_time) {
            (Some(earliest), Some(latest)) => Ok((earliest, latest)),
            _ => Err(DrError::InvalidInput(format!(
                "DB instance {source} has no restorable window: it has no base backup taken while it was a primary"
            ))),
        }
    }
}
