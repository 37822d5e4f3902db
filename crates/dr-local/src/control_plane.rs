//! [`DatabaseControlPlane`] for the local platform.

use async_trait::async_trait;
use dr_core::*;
use secrecy::{ExposeSecret, SecretString};

use crate::platform::{describe_snapshot, LocalControlPlane};
use crate::state::{Busy, Origin};

#[async_trait]
impl DatabaseControlPlane for LocalControlPlane {
    async fn describe_instance(&self, id: &InstanceId) -> DrResult<InstanceDescription> {
        self.check_region_up()?;
        self.describe(id).await
    }

    async fn list_instances(&self) -> DrResult<Vec<InstanceDescription>> {
        self.check_region_up()?;
        let state = self.store().read()?;
        let mut all = Vec::with_capacity(state.instances.len());
        for (id, record) in state
            .instances
            .iter()
            .filter(|(_, r)| r.region == self.region())
        {
            all.push(self.describe_record(id, record, &state).await?);
        }
        Ok(all)
    }

    async fn list_snapshots(
        &self,
        instance: Option<&InstanceId>,
    ) -> DrResult<Vec<SnapshotDescription>> {
        self.check_region_up()?;
        let state = self.store().read()?;
        let mut snapshots: Vec<SnapshotDescription> = state
            .snapshots
            .iter()
            .filter(|(_, s)| s.region == self.region())
            .filter(|(_, s)| instance.is_none_or(|i| &s.source_instance_id == i))
            .map(|(id, s)| describe_snapshot(id, s))
            .collect();
        SnapshotDescription::sort_newest_first(&mut snapshots);
        Ok(snapshots)
    }

    async fn promote_read_replica(&self, id: &InstanceId) -> DrResult<PromotionOutcome> {
        self.check_region_up()?;
        let before = self.describe(id).await?;
        if before.promotion_readiness()? == PromotionReadiness::AlreadyStandalone {
            self.with_state(|guard| {
                let record = guard.instance_mut(id)?;
                if record.replication_source.take().is_some() {
                    guard.save()?;
                }
                Ok(())
            })?;
            return Ok(PromotionOutcome {
                instance: self.describe(id).await?,
                already_standalone: true,
                lag_at_promotion: None,
            });
        }
        self.with_state(|guard| {
            let record = guard.instance_mut(id)?;
            if let Some(status) = record.live_busy_status() {
                return Err(DrError::NotReady(format!("DB instance {id} is {status}")));
            }
            record.busy = Some(Busy {
                status: InstanceStatus::Modifying,
                pid: std::process::id(),
            });
            guard.save()
        })?;
        let outcome = async {
            let client = self.connect_admin(id).await?;
            // WAL already received is applied before the promotion, as RDS
            // does: a paused replay would otherwise lose it.
            client
                .batch_execute(
                    "DO $$ BEGIN IF pg_is_wal_replay_paused() THEN PERFORM pg_wal_replay_resume(); END IF; END $$",
                )
                .await
                .map_err(|e| dr_postgres::map_pg_error(&format!("resuming replay on {id}"), &e))?;
            client
                .query_one("SELECT pg_promote(true, 120)", &[])
                .await
                .map_err(|e| dr_postgres::map_pg_error(&format!("promoting {id}"), &e))?;
            Ok::<_, DrError>(())
        }
        .await;
        self.with_state(|guard| {
            let record = guard.instance_mut(id)?;
            record.busy = None;
            if outcome.is_ok() {
                record.replication_source = None;
            }
            guard.save()
        })?;
        outcome?;
        tracing::info!(instance = %id, lag = ?before.replica_lag, "promoted read replica");
        Ok(PromotionOutcome {
            instance: self.describe(id).await?,
            already_standalone: false,
            lag_at_promotion: before.replica_lag,
        })
    }

    async fn create_read_replica(
        &self,
        request: &CreateReplicaRequest,
    ) -> DrResult<InstanceDescription> {
        self.check_region_up()?;
        let replica = &request.replica_id;
        let source = &request.source_id;
        InstanceId::parse(replica.as_str())?;
        let source_description = self.describe(source).await?;
        if source_description.status != InstanceStatus::Available {
            return Err(DrError::NotReady(format!(
                "source {source} is {}; a replica needs it available",
                source_description.status
            )));
        }
        let zone = request.availability_zone.clone().or_else(|| {
            crate::platform::availability_zones(self.region())
                .into_iter()
                .find(|z| source_description.availability_zone.as_deref() != Some(z.as_str()))
        });
        let origin = Origin::ReplicaOf {
            source: source.clone(),
        };
        let Some(record) =
            self.begin_create(replica, origin, zone, Some(source.clone()), &request.tags)?
        else {
            return self.describe(replica).await;
        };
        let outcome = self
            .build_replica(replica, source, source_description.endpoint, record.port)
            .await;
        self.finish_create(replica, outcome).await
    }

    async fn create_snapshot(
        &self,
        request: &CreateSnapshotRequest,
    ) -> DrResult<SnapshotDescription> {
        self.check_region_up()?;
        self.snapshot(request, SnapshotType::Manual).await
    }

    async fn restore_from_snapshot(
        &self,
        request: &RestoreSnapshotRequest,
    ) -> DrResult<InstanceDescription> {
        self.check_region_up()?;
        let target = &request.target_id;
        InstanceId::parse(target.as_str())?;
        let snapshot = self
            .list_snapshots(None)
            .await?
            .into_iter()
            .find(|s| s.snapshot_id == request.snapshot_id)
            .ok_or_else(|| {
                DrError::NotFound(format!("DB snapshot {} not found", request.snapshot_id))
            })?;
        let origin = Origin::Snapshot {
            snapshot: snapshot.snapshot_id.clone(),
        };
        let Some(record) = self.begin_create(target, origin, None, None, &request.tags)? else {
            return self.describe(target).await;
        };
        let outcome = self
            .restore_snapshot_into(&snapshot.snapshot_id, target, record.port)
            .await;
        self.finish_create(target, outcome).await
    }

    async fn restore_to_point_in_time(
        &self,
        request: &PointInTimeRestoreRequest,
    ) -> DrResult<InstanceDescription> {
        self.check_region_up()?;
        InstanceId::parse(request.target_id.as_str())?;
        let origin = Origin::PointInTime {
            source: request.source_id.clone(),
            restore_time: request.restore_time,
        };
        if let Some(existing) = self.store().read()?.instances.get(&request.target_id) {
            if existing.origin == origin && existing.failed.is_none() {
                return self.describe(&request.target_id).await;
            }
            return Err(DrError::AlreadyExists(format!(
                "DB instance {} already exists",
                request.target_id
            )));
        }
        let (earliest, latest) = self.restorable_window(&request.source_id).await?;
        let outside = request.restore_time < earliest || request.restore_time > latest;
        if outside {
            return Err(DrError::InvalidInput(format!(
                "restore time {} is outside the restorable window of {}: {} to {}",
                request.restore_time.to_rfc3339(),
                request.source_id,
                earliest.to_rfc3339(),
                latest.to_rfc3339()
            )));
        }
        if self.running_instances()?.contains(&request.source_id) {
            self.archive_through_now(&request.source_id).await?;
        }
        let Some(record) =
            self.begin_create(&request.target_id, origin, None, None, &request.tags)?
        else {
            return self.describe(&request.target_id).await;
        };
        let outcome = self.restore_point_in_time_into(request, record.port).await;
        self.finish_create(&request.target_id, outcome).await
    }

    async fn delete_instance(&self, id: &InstanceId, options: DeleteOptions) -> DrResult<()> {
        self.check_region_up()?;
        self.with_state(|guard| {
            let region = self.region().to_owned();
            let record = guard.instance_mut(id)?;
            if record.region != region {
                return Err(DrError::NotFound(format!(
                    "DB instance {id} not found in {region}"
                )));
            }
            dr_core::guard::deletion(id, &record.tags, options)?;
            if let Some(status) = record.live_busy_status() {
                if status != InstanceStatus::Deleting {
                    return Err(DrError::NotReady(format!("DB instance {id} is {status}")));
                }
            }
            record.busy = Some(Busy {
                status: InstanceStatus::Deleting,
                pid: std::process::id(),
            });
            guard.save()
        })?;
        self.remove_instance_files(id).await?;
        self.with_state(|guard| {
            guard.state.instances.remove(id);
            guard.save()
        })?;
        tracing::info!(instance = %id, "deleted DB instance");
        Ok(())
    }

    async fn delete_snapshot(&self, id: &SnapshotId) -> DrResult<()> {
        self.check_region_up()?;
        let file = self.snapshot_file(id)?;
        self.with_state(|guard| {
            guard.state.snapshots.remove(id);
            guard.save()
        })?;
        let _ = std::fs::remove_file(file);
        self.remove_snapshot_credentials(id);
        Ok(())
    }

    async fn describe_snapshot(&self, id: &SnapshotId) -> DrResult<SnapshotDescription> {
        self.check_region_up()?;
        self.snapshot_description(id)
    }

    async fn copy_snapshot(&self, request: &CopySnapshotRequest) -> DrResult<SnapshotDescription> {
        self.check_region_up()?;
        self.copy_into_region(request).await
    }

    async fn tag_snapshot(&self, id: &SnapshotId, tags: &Tags) -> DrResult<()> {
        self.check_region_up()?;
        self.snapshot_record(id)?;
        self.with_state(|guard| {
            let record = guard
                .state
                .snapshots
                .get_mut(id)
                .ok_or_else(|| DrError::NotFound(format!("DB snapshot {id} not found")))?;
            record.tags.extend(tags.clone());
            guard.save()
        })
    }

    async fn change_master_credentials(
        &self,
        id: &InstanceId,
        new_password: &SecretString,
    ) -> DrResult<()> {
        self.check_region_up()?;
        dr_core::guard::master_password(new_password)?;
        let description = self.describe(id).await?;
        if description.role == InstanceRole::Replica {
            return Err(DrError::InvalidInput(format!(
                "DB instance {id} is a read replica; change the credentials on its source"
            )));
        }
        let client = self.connect_admin(id).await?;
        // Only the SCRAM verifier crosses the wire: the password never
        // appears in a statement, a server log or pg_stat_activity.
        let verifier =
            postgres_protocol::password::scram_sha_256(new_password.expose_secret().as_bytes());
        let username = self.read_credentials_for(id)?.master_username;
        client
            .batch_execute(&format!(
                "ALTER ROLE \"{}\" PASSWORD '{verifier}'",
                username.replace('"', "\"\"")
            ))
            .await
            .map_err(|e| dr_postgres::map_pg_error(&format!("changing credentials of {id}"), &e))?;
        self.update_master_password(id, new_password)
    }

    async fn fence_instance(
        &self,
        id: &InstanceId,
        request: &FenceRequest,
    ) -> DrResult<FenceOutcome> {
        self.check_region_up()?;
        self.fence(id, request).await
    }

    async fn inject_failure(&self, id: &InstanceId, _request: &FailureRequest) -> DrResult<String> {
        self.check_region_up()?;
        let tags = self.with_state(|guard| Ok(guard.instance(id)?.tags.clone()))?;
        ensure_failure_target(id, &tags)?;
        self.crash_instance(id).await?;
        Ok("crashed: its server was killed (immediate shutdown)".to_owned())
    }

    async fn verify_snapshot(&self, id: &SnapshotId) -> DrResult<SnapshotIntegrity> {
        self.check_region_up()?;
        let verification = LocalControlPlane::verify_snapshot(self, id).await?;
        Ok(SnapshotIntegrity::Verified {
            detail: format!(
                "decrypted with the snapshot key; pg_verifybackup: {}",
                verification.detail
            ),
        })
    }

    async fn add_tags(&self, instance: &InstanceId, tags: &Tags) -> DrResult<()> {
        self.check_region_up()?;
        self.describe(instance).await?;
        self.with_state(|guard| {
            guard.instance_mut(instance)?.tags.extend(tags.clone());
            guard.save()
        })
    }
}

/// The control planes of the local platform's regions, over one home.
#[derive(Debug, Clone)]
pub struct LocalRegions {
    home: LocalControlPlane,
}

impl LocalRegions {
    pub fn new(home: LocalControlPlane) -> Self {
        LocalRegions { home }
    }
}

impl RegionalControlPlanes for LocalRegions {
    fn home_region(&self) -> &str {
        self.home.region()
    }

    fn control_plane(&self, region: &str) -> DrResult<std::sync::Arc<dyn DatabaseControlPlane>> {
        Ok(std::sync::Arc::new(self.home.in_region(region)?))
    }
}
