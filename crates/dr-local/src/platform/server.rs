//! The PostgreSQL server of an instance: its process, configuration and
//! connections.

use super::*;

impl LocalControlPlane {
    /// How to connect to an instance as its master user.
    pub fn database_target(
        &self,
        id: &InstanceId,
        database: Option<&str>,
    ) -> DrResult<DatabaseTarget> {
        let record = self
            .store
            .read()?
            .instances
            .get(id)
            .cloned()
            .ok_or_else(|| DrError::NotFound(format!("DB instance {id} not found")))?;
        let credentials = self.read_credentials(id.as_str())?;
        Ok(DatabaseTarget {
            endpoint: Endpoint {
                address: record.address.clone(),
                port: record.port,
            },
            database: database.unwrap_or(&record.database).to_owned(),
            username: credentials.master_username,
            password: SecretString::from(credentials.master_password),
            connect_timeout_seconds: 3,
            statement_timeout_ms: 0,
            tls: self.tls_policy(),
        })
    }

    // ----- server lifecycle ------------------------------------------------

    pub(super) fn postmaster_running(&self, id: &InstanceId) -> bool {
        self.postmaster_pid(id).is_some()
    }

    /// The pid of the instance's live postmaster, if any.
    pub(super) fn postmaster_pid(&self, id: &InstanceId) -> Option<u32> {
        postmaster_pid_in(&self.data_dir(id))
    }

    pub(super) async fn start_server(&self, id: &InstanceId) -> DrResult<()> {
        if self.postmaster_running(id) {
            return Ok(());
        }
        let data = self.data_dir(id);
        let log = self.instance_dir(id).join("postgresql.log");
        let timeout = START_TIMEOUT.as_secs().to_string();
        let result = self
            .pg
            .run(
                "pg_ctl",
                [
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-l".as_ref(),
                    log.as_os_str(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    timeout.as_ref(),
                    "start".as_ref(),
                ],
            )
            .await;
        result.map(drop).map_err(|e| {
            DrError::Internal(format!(
                "starting {id}: {e}; server log: {}",
                log_tail(&log)
            ))
        })
    }

    pub(super) async fn stop_server(&self, id: &InstanceId, immediate: bool) -> DrResult<()> {
        let Some(pid) = self.postmaster_pid(id) else {
            return Ok(());
        };
        // A frozen server would never see the shutdown request.
        crate::processes::thaw(pid);
        let data = self.data_dir(id);
        let mode = if immediate { "immediate" } else { "fast" };
        let attempt = self
            .pg
            .run(
                "pg_ctl",
                [
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-m".as_ref(),
                    mode.as_ref(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    "60".as_ref(),
                    "stop".as_ref(),
                ],
            )
            .await;
        if attempt.is_err() && !immediate {
            return Box::pin(self.stop_server(id, true)).await;
        }
        attempt.map(drop)
    }

    /// Writes the settings that make a cluster this instance: its port, its
    /// own WAL archive, and (for replicas and restores) how to recover.
    pub(super) fn write_instance_config(
        &self,
        id: &InstanceId,
        port: u16,
        extra: &[(&str, String)],
    ) -> DrResult<()> {
        let (address, fenced) = self
            .store
            .read()?
            .instances
            .get(id)
            .map(|r| (r.address.clone(), r.fenced.is_some()))
            .unwrap_or_else(|| ("127.0.0.1".to_owned(), false));
        let hba = if fenced { FENCED_HBA_CONF } else { HBA_CONF };
        let archive = self.archive_dir(id);
        let archive = archive.display();
        let tls_dir = self.instance_dir(id).join("tls");
        let mut conf = format!(
            "# Written by drctl for instance {id}; rewritten on every restore.\n\
             cluster_name = '{id}'\n\
             listen_addresses = '{address}'\n\
             port = {port}\n\
             unix_socket_directories = ''\n\
             max_connections = 50\n\
             shared_buffers = '64MB'\n\
             password_encryption = 'scram-sha-256'\n\
             wal_level = replica\n\
             max_wal_senders = 10\n\
             wal_keep_size = '256MB'\n\
             hot_standby = on\n\
             hot_standby_feedback = on\n\
             archive_mode = on\n\
             archive_command = 'test ! -f \"{archive}/%f\" && cp \"%p\" \"{archive}/%f\"'\n\
             archive_timeout = 60\n\
             ssl = on\n\
             ssl_cert_file = '{cert}'\n\
             ssl_key_file = '{key}'\n\
             ssl_min_protocol_version = 'TLSv1.2'\n",
            cert = tls_dir.join("server.crt").display(),
            key = tls_dir.join("server.key").display(),
        );
        for (key, value) in extra {
            conf.push_str(&format!("{key} = '{}'\n", value.replace('\'', "''")));
        }
        let data = self.data_dir(id);
        make_dir(&tls_dir, 0o700)?;
        let issued =
            self.ca
                .issue_server(&[address.clone(), "localhost".to_owned(), id.to_string()])?;
        crate::tls::write_file(&tls_dir.join("server.crt"), &issued.certificate_pem, 0o644)?;
        crate::tls::write_file(&tls_dir.join("server.key"), &issued.key_pem, 0o600)?;
        let write = || -> std::io::Result<()> {
            fs::write(data.join("dr-local.conf"), conf.as_bytes())?;
            fs::write(data.join("pg_hba.conf"), hba.as_bytes())?;
            // Settings of the source (ALTER SYSTEM, primary_conninfo written by
            // pg_basebackup -R) must not leak into a copy.
            fs::write(
                data.join("postgresql.auto.conf"),
                b"# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n",
            )?;
            let main = data.join("postgresql.conf");
            let text = fs::read_to_string(&main)?;
            if !text.contains("include_if_exists = 'dr-local.conf'") {
                fs::write(
                    &main,
                    format!("{text}\ninclude_if_exists = 'dr-local.conf'\n"),
                )?;
            }
            for signal in ["standby.signal", "recovery.signal"] {
                let _ = fs::remove_file(data.join(signal));
            }
            Ok(())
        };
        write().map_err(|e| DrError::Internal(format!("configuring {id}: {e}")))?;
        make_dir(&self.archive_dir(id), 0o700)?;
        self.pg.give(&self.archive_dir(id))?;
        self.pg.give(&self.instance_dir(id))
    }

    pub(super) fn touch_signal(&self, id: &InstanceId, signal: &str) -> DrResult<()> {
        let path = self.data_dir(id).join(signal);
        fs::write(&path, b"")
            .map_err(|e| DrError::Internal(format!("writing {signal} for {id}: {e}")))?;
        self.pg.give(&path)
    }

    /// Connects as the control plane's own superuser.
    pub(super) async fn connect_master(
        &self,
        id: &InstanceId,
        database: &str,
    ) -> DrResult<tokio_postgres::Client> {
        let mut target = self.database_target(id, Some(database))?;
        if let Some(password) = self.read_credentials(id.as_str())?.admin_password {
            target.username = ADMIN_USERNAME.to_owned();
            target.password = SecretString::from(password);
        }
        target.connect_timeout_seconds = 2;
        dr_postgres::connect(&target).await
    }

    pub(super) async fn live_info(&self, id: &InstanceId) -> DrResult<LiveInfo> {
        let client = self.connect_master(id, "postgres").await?;
        let row = client
            .query_one(
                "SELECT pg_is_in_recovery(), current_setting('server_version'),
                        pg_last_wal_replay_lsn(),
                        CASE WHEN NOT pg_is_in_recovery() THEN NULL
                             WHEN pg_last_wal_receive_lsn() IS NULL
                               OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0::float8
                             ELSE EXTRACT(EPOCH FROM clock_timestamp()
                                          - pg_last_xact_replay_timestamp())::float8 END",
                &[],
            )
            .await
            .map_err(|e| dr_postgres::map_pg_error(&format!("describing {id}"), &e))?;
        Ok(LiveInfo {
            in_recovery: row.get(0),
            server_version: row.get(1),
            replay_lsn: row.get(2),
            lag_seconds: row.get(3),
        })
    }

    /// Where the source's WAL stands (its insert position, or its replay
    /// position when it is itself a replica).
    pub(super) async fn current_lsn(&self, id: &InstanceId) -> DrResult<PgLsn> {
        let client = self.connect_master(id, "postgres").await?;
        let row = client
            .query_one(
                "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                             ELSE pg_current_wal_lsn() END",
                &[],
            )
            .await
            .map_err(|e| dr_postgres::map_pg_error(&format!("reading WAL position of {id}"), &e))?;
        Ok(row.get(0))
    }

    pub(super) async fn wait_until<F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> DrResult<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = DrResult<bool>>,
    {
        let started = Instant::now();
        let mut last_error = None;
        while started.elapsed() < timeout {
            match check().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) if e.is_transient() => last_error = Some(e),
                Err(e) => return Err(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(DrError::Timeout(format!(
            "{what} did not happen within {} s{}",
            timeout.as_secs(),
            last_error
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        )))
    }
}
