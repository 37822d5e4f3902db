//! An instance's life: create, start, stop, crash, hang, resume, fence,
//! replicate, remove.

use super::*;

impl LocalControlPlane {
    /// Creates a new, empty instance: initdb with data checksums, WAL
    /// archiving on, a free loopback port, the master and replication roles,
    /// and the application database.
    pub async fn create_instance(
        &self,
        request: &CreateInstanceRequest,
    ) -> DrResult<InstanceDescription> {
        let id = &request.instance_id;
        InstanceId::parse(id.as_str())?;
        let Some(record) = self.begin_create(
            id,
            Origin::New,
            request.availability_zone.clone(),
            None,
            &request.tags,
        )?
        else {
            return self.describe(id).await;
        };
        let outcome = self.initialise(id, &record).await;
        self.finish_create(id, outcome).await
    }

    pub(super) async fn initialise(
        &self,
        id: &InstanceId,
        record: &InstanceRecord,
    ) -> DrResult<()> {
        let credentials = Credentials {
            master_username: MASTER_USERNAME.to_owned(),
            master_password: random_password(),
            replication_password: random_password(),
            admin_password: Some(random_password()),
        };
        self.write_credentials(id.as_str(), &credentials)?;
        let dir = self.instance_dir(id);
        make_dir(&dir, 0o700)?;
        let pwfile = dir.join("initdb.pw");
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&pwfile)
            .and_then(|mut f| {
                std::io::Write::write_all(
                    &mut f,
                    credentials
                        .admin_password
                        .as_deref()
                        .unwrap_or_default()
                        .as_bytes(),
                )
            })
            .map_err(|e| DrError::Internal(format!("writing initdb password file: {e}")))?;
        self.pg.give(&dir)?;
        let data = self.data_dir(id);
        let result = self
            .pg
            .run(
                "initdb",
                [
                    "-D".as_ref(),
                    data.as_os_str(),
                    "--data-checksums".as_ref(),
                    "-U".as_ref(),
                    ADMIN_USERNAME.as_ref(),
                    format!("--pwfile={}", pwfile.display()).as_ref(),
                    "--auth=scram-sha-256".as_ref(),
                    "-E".as_ref(),
                    "UTF8".as_ref(),
                    "--locale=C.UTF-8".as_ref(),
                    "--no-sync".as_ref(),
                    "--no-instructions".as_ref(),
                ]
                .iter()
                .map(|s: &&std::ffi::OsStr| s.to_os_string())
                .collect::<Vec<_>>(),
            )
            .await;
        let _ = fs::remove_file(&pwfile);
        result?;
        self.write_instance_config(id, record.port, &[])?;
        self.start_server(id).await?;
        let client = self.connect_master(id, "postgres").await?;
        let verifier =
            postgres_protocol::password::scram_sha_256(credentials.replication_password.as_bytes());
        let master_verifier =
            postgres_protocol::password::scram_sha_256(credentials.master_password.as_bytes());
        for statement in [
            format!(
                "CREATE ROLE {REPLICATION_USERNAME} WITH REPLICATION LOGIN PASSWORD '{verifier}'"
            ),
            // The master user keeps the powers it had as the bootstrap user.
            format!(
                "CREATE ROLE {MASTER_USERNAME} WITH SUPERUSER CREATEDB CREATEROLE LOGIN PASSWORD '{master_verifier}'"
            ),
            format!("CREATE DATABASE {DEFAULT_DATABASE} OWNER {MASTER_USERNAME}"),
        ] {
            client
                .batch_execute(&statement)
                .await
                .map_err(|e| dr_postgres::map_pg_error(&format!("initialising {id}"), &e))?;
        }
        Ok(())
    }

    /// Starts an instance that was stopped (or crashed).
    pub async fn start_instance(&self, id: &InstanceId) -> DrResult<InstanceDescription> {
        self.with_state(|guard| {
            guard.instance_mut(id)?.should_run = true;
            guard.save()
        })?;
        self.start_server(id).await?;
        self.describe(id).await
    }

    /// Stops an instance cleanly; `describe` then reports `stopped`.
    pub async fn stop_instance(&self, id: &InstanceId) -> DrResult<()> {
        self.with_state(|guard| guard.instance(id).map(drop))?;
        self.stop_server(id, false).await?;
        self.with_state(|guard| {
            guard.instance_mut(id)?.should_run = false;
            guard.save()
        })
    }

    /// Kills an instance as a crash would (immediate shutdown, no record of a
    /// deliberate stop): `describe` then reports `failed`. For drills and tests.
    pub async fn crash_instance(&self, id: &InstanceId) -> DrResult<()> {
        self.with_state(|guard| {
            guard.instance_mut(id)?.hung = false;
            guard.save()
        })?;
        self.stop_server(id, true).await
    }

    /// Freezes an instance's server (SIGSTOP of the postmaster and every
    /// child): connections time out, existing sessions stall, and the
    /// control plane still says `available`, as for a hung host or a network
    /// partition. For drills and tests; `resume_instance` undoes it.
    pub async fn hang_instance(&self, id: &InstanceId) -> DrResult<()> {
        let pid = self.postmaster_pid(id).ok_or_else(|| {
            DrError::NotReady(format!(
                "DB instance {id} is not running; there is nothing to hang"
            ))
        })?;
        self.with_state(|guard| {
            guard.instance_mut(id)?.hung = true;
            guard.save()
        })?;
        crate::processes::freeze(pid);
        Ok(())
    }

    /// Lets a hung instance run again.
    pub async fn resume_instance(&self, id: &InstanceId) -> DrResult<()> {
        self.with_state(|guard| {
            guard.instance_mut(id)?.hung = false;
            guard.save()
        })?;
        if let Some(pid) = self.postmaster_pid(id) {
            crate::processes::thaw(pid);
        }
        Ok(())
    }

    /// Takes a whole region down, as a region failure looks from outside:
    /// its control plane answers `Unavailable` and every running instance in
    /// it is frozen (connections time out, nothing is refused politely).
    /// Returns the instances it froze. Idempotent.
    pub async fn region_outage(&self, region: &str) -> DrResult<Vec<InstanceId>> {
        let plane = self.in_region(region)?;
        let frozen = self.with_state(|guard| {
            if let Some(outage) = guard.state.region_outages.get(region) {
                return Ok(outage.frozen.clone());
            }
            let frozen: Vec<InstanceId> = guard
                .state
                .instances
                .iter()
                .filter(|(id, r)| r.region == region && !r.hung && plane.postmaster_running(id))
                .map(|(id, _)| id.clone())
                .collect();
            for id in &frozen {
                guard.instance_mut(id)?.hung = true;
            }
            guard.state.region_outages.insert(
                region.to_owned(),
                RegionOutage {
                    since: Utc::now(),
                    frozen: frozen.clone(),
                },
            );
            guard.save()?;
            Ok(frozen)
        })?;
        for id in &frozen {
            if let Some(pid) = self.postmaster_pid(id) {
                crate::processes::freeze(pid);
            }
        }
        tracing::warn!(%region, instances = frozen.len(), "region outage");
        Ok(frozen)
    }

    /// Brings a region back: its control plane answers again and the
    /// instances the outage froze run again. Returns them. Idempotent.
    pub async fn region_restore(&self, region: &str) -> DrResult<Vec<InstanceId>> {
        self.in_region(region)?;
        let frozen = self.with_state(|guard| {
            let Some(outage) = guard.state.region_outages.remove(region) else {
                return Ok(Vec::new());
            };
            for id in &outage.frozen {
                if let Ok(record) = guard.instance_mut(id) {
                    record.hung = false;
                }
            }
            guard.save()?;
            Ok(outage.frozen)
        })?;
        for id in &frozen {
            if let Some(pid) = self.postmaster_pid(id) {
                crate::processes::thaw(pid);
            }
        }
        tracing::info!(%region, instances = frozen.len(), "region restored");
        Ok(frozen)
    }

    /// The regions that are down.
    pub fn region_outages(&self) -> DrResult<Vec<String>> {
        Ok(self.store.read()?.region_outages.keys().cloned().collect())
    }

    /// Fencing, locally: `pg_hba.conf` admits only the control plane's
    /// superuser, the postmaster reloads it and every client session ends.
    /// Works on a hung server too: the signals wait until it runs again, and
    /// the reload comes before any new connection. The instance, its data
    /// and its WAL are kept.
    pub(crate) async fn fence(
        &self,
        id: &InstanceId,
        request: &FenceRequest,
    ) -> DrResult<FenceOutcome> {
        let already = self.with_state(|guard| {
            let record = guard.instance_mut(id)?;
            let already = record.fenced.is_some();
            if !already {
                record.fenced = Some(request.by.clone());
                record
                    .tags
                    .insert(FENCED_TAG.to_owned(), request.by.clone());
                guard.save()?;
            }
            Ok(already)
        })?;
        let hba = self.data_dir(id).join("pg_hba.conf");
        fs::write(&hba, FENCED_HBA_CONF.as_bytes())
            .map_err(|e| DrError::Internal(format!("fencing {id}: {e}")))?;
        self.pg.give(&hba)?;
        let ended = self
            .postmaster_pid(id)
            .map(crate::processes::reload_and_end_sessions);
        tracing::info!(instance = %id, by = %request.by, ?ended, "fenced");
        Ok(FenceOutcome {
            already_fenced: already,
            method: match ended {
                Some(n) => format!(
                    "pg_hba.conf admits only the control plane ({ADMIN_USERNAME}); reloaded; {n} client or replication session(s) ended"
                ),
                None => format!(
                    "pg_hba.conf admits only the control plane ({ADMIN_USERNAME}); the server is not running, and will refuse applications when started"
                ),
            },
        })
    }

    /// Stops every running instance (for `drctl local down`).
    pub async fn stop_all(&self) -> DrResult<Vec<InstanceId>> {
        let ids: Vec<InstanceId> = self.store.read()?.instances.keys().cloned().collect();
        let mut stopped = Vec::new();
        for id in ids {
            if self.postmaster_running(&id) {
                self.stop_server(&id, false).await?;
                stopped.push(id);
            }
        }
        Ok(stopped)
    }

    /// Stops every server of this home at once, without waiting on anything
    /// async: for cleanup on drop and on interrupted runs.
    pub fn stop_all_blocking(&self) {
        let Ok(entries) = fs::read_dir(self.home.join("instances")) else {
            return;
        };
        for entry in entries.flatten() {
            let data = entry.path().join("data");
            if let Some(pid) = postmaster_pid_in(&data) {
                crate::processes::thaw(pid);
            }
            if data.join("postmaster.pid").exists() {
                let _ = self
                    .pg
                    .blocking_command("pg_ctl")
                    .arg("-D")
                    .arg(&data)
                    .args(["-m", "immediate", "-w", "-t", "30", "stop"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }

    /// Whether any instance of this home still has a live postmaster.
    pub fn running_instances(&self) -> DrResult<Vec<InstanceId>> {
        Ok(self
            .store
            .read()?
            .instances
            .keys()
            .filter(|id| self.postmaster_running(id))
            .cloned()
            .collect())
    }

    pub(crate) async fn connect_admin(&self, id: &InstanceId) -> DrResult<tokio_postgres::Client> {
        self.connect_master(id, "postgres").await
    }

    /// Gives the login role `role` a new random password (only its SCRAM
    /// verifier reaches the server) and returns it: how `drctl local up`
    /// provisions the application role's secret.
    pub async fn provision_login(&self, id: &InstanceId, role: &str) -> DrResult<SecretString> {
        dr_core::validate_sql_name("role", role)?;
        let password = SecretString::from(super::random_password());
        let verifier =
            postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes());
        self.connect_admin(id)
            .await?
            .batch_execute(&format!("ALTER ROLE {role} PASSWORD '{verifier}'"))
            .await
            .map_err(|e| {
                dr_postgres::map_pg_error(&format!("setting the password of {role}"), &e)
            })?;
        Ok(password)
    }

    pub(crate) fn read_credentials_for(&self, id: &InstanceId) -> DrResult<Credentials> {
        self.read_credentials(id.as_str())
    }

    pub(crate) fn update_master_password(
        &self,
        id: &InstanceId,
        password: &SecretString,
    ) -> DrResult<()> {
        let mut credentials = self.read_credentials(id.as_str())?;
        credentials.master_password = password.expose_secret().to_owned();
        self.write_credentials(id.as_str(), &credentials)
    }

    /// pg_basebackup from the source, then a standby streaming from it with
    /// the source's archive as fallback.
    pub(crate) async fn build_replica(
        &self,
        replica: &InstanceId,
        source: &InstanceId,
        source_endpoint: Option<Endpoint>,
        port: u16,
    ) -> DrResult<()> {
        let source_endpoint = source_endpoint
            .ok_or_else(|| DrError::NotReady(format!("source {source} has no endpoint")))?;
        let credentials = self.read_credentials(source.as_str())?;
        self.write_credentials(replica.as_str(), &credentials)?;
        let dir = self.instance_dir(replica);
        make_dir(&dir, 0o700)?;
        self.pg.give(&dir)?;
        let mut command = self.pg.command("pg_basebackup");
        command
            .args([
                "-h",
                &source_endpoint.address,
                "-p",
                &source_endpoint.port.to_string(),
            ])
            .args(["-U", REPLICATION_USERNAME, "-w", "-D"])
            .arg(self.data_dir(replica))
            .args(["-X", "stream", "-c", "fast", "--no-manifest"])
            .env("PGPASSWORD", &credentials.replication_password);
        self.libpq_tls(&mut command);
        crate::pg::run_checked("pg_basebackup", command).await?;
        let conninfo = format!(
            "host={} port={} user={REPLICATION_USERNAME} password={} application_name={replica} \
             sslmode=verify-full sslrootcert={}",
            source_endpoint.address,
            source_endpoint.port,
            credentials.replication_password,
            self.ca.ca_file().display()
        );
        self.write_instance_config(
            replica,
            port,
            &[
                ("primary_conninfo", conninfo),
                (
                    "restore_command",
                    format!("cp \"{}/%f\" \"%p\"", self.archive_dir(source).display()),
                ),
            ],
        )?;
        self.touch_signal(replica, "standby.signal")?;
        self.start_server(replica).await
    }

    /// Stops the server and removes its data and WAL archive.
    pub(crate) async fn remove_instance_files(&self, id: &InstanceId) -> DrResult<()> {
        self.stop_server(id, true).await?;
        for dir in [self.instance_dir(id), self.archive_dir(id)] {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(DrError::Internal(format!(
                        "removing {}: {e}",
                        dir.display()
                    )))
                }
            }
        }
        let _ = fs::remove_file(self.credentials_path(id.as_str()));
        Ok(())
    }
}
