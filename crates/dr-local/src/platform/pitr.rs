//! Point-in-time restore from the WAL archive.

use super::*;

impl LocalControlPlane {
    /// Forces every commit up to now into the WAL archive: a commit record
    /// stamped after the target (so recovery can stop there), a segment
    /// switch, and a wait for the archiver.
    pub(crate) async fn archive_through_now(&self, source: &InstanceId) -> DrResult<DateTime<Utc>> {
        let client = self.connect_master(source, "postgres").await?;
        let row = client
            .query_one("SELECT txid_current(), clock_timestamp()", &[])
            .await
            .map_err(|e| dr_postgres::map_pg_error("stamping WAL", &e))?;
        let stamped: DateTime<Utc> = row.get(1);
        let row = client
            .query_one("SELECT pg_walfile_name(pg_switch_wal())", &[])
            .await
            .map_err(|e| dr_postgres::map_pg_error("switching WAL segment", &e))?;
        let segment: String = row.get(0);
        self.wait_until(&format!("archiving of {segment}"), ARCHIVE_TIMEOUT, || {
            let client = &client;
            let segment = segment.clone();
            async move {
                let row = client
                    .query_one(
                        "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
                        &[],
                    )
                    .await
                    .map_err(|e| dr_postgres::map_pg_error("reading archiver status", &e))?;
                let archived: String = row.get(0);
                Ok(archived.len() == segment.len() && archived[8..] >= segment[8..])
            }
        })
        .await?;
        self.with_state(|guard| {
            guard.instance_mut(source)?.archived_until = Some(stamped);
            guard.save()
        })?;
        Ok(stamped)
    }

    pub(crate) async fn restore_point_in_time_into(
        &self,
        request: &PointInTimeRestoreRequest,
        port: u16,
    ) -> DrResult<()> {
        let source = &request.source_id;
        let base = {
            let state = self.store.read()?;
            state
                .snapshots
                .iter()
                .filter(|(_, s)| {
                    &s.source_instance_id == source
                        && s.taken_from_primary
                        && s.completed_at <= request.restore_time
                })
                .max_by_key(|(_, s)| s.completed_at)
                .map(|(id, _)| id.clone())
                .ok_or_else(|| {
                    DrError::InvalidInput(format!(
                        "no base backup of {source} finished before {}",
                        request.restore_time.to_rfc3339()
                    ))
                })?
        };
        let target = &request.target_id;
        self.unseal_into(self.snapshot_file(&base)?, target).await?;
        let credentials = self.read_credentials(&snapshot_credentials_name(&base))?;
        self.write_credentials(target.as_str(), &credentials)?;
        let archive = self.archive_dir(source);
        self.write_instance_config(
            target,
            port,
            &[
                (
                    "restore_command",
                    format!("cp \"{}/%f\" \"%p\"", archive.display()),
                ),
                ("recovery_target_time", request.restore_time.to_rfc3339()),
                ("recovery_target_action", "promote".to_owned()),
                ("recovery_target_timeline", "latest".to_owned()),
            ],
        )?;
        self.touch_signal(target, "recovery.signal")?;
        tracing::info!(%source, %target, base = %base, restore_time = %request.restore_time, "point-in-time restore");
        self.start_server(target).await?;
        self.wait_until_writable(target).await?;
        // The recovery settings did their job; a later restart must not see them.
        self.write_instance_config(target, port, &[])
    }
}
