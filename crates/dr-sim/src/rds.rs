//! RDS, simulated: instances and snapshots that move through RDS's
//! statuses over the durations of the timing table, in simulated time.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use dr_core::clock;
use dr_core::*;
use secrecy::{ExposeSecret, SecretString};

use crate::world::{Phase, Serving, SimInstance, SimSnapshot, State, World};

/// One region's RDS.
#[derive(Clone)]
pub struct SimRds {
    world: Arc<World>,
    region: String,
}

impl SimRds {
    pub fn new(world: Arc<World>, region: impl Into<String>) -> Self {
        SimRds {
            world,
            region: region.into(),
        }
    }

    /// A call to this region's RDS: refused while the region is down.
    fn call(&self, operation: &str) -> DrResult<()> {
        self.world.api_call(operation)?;
        if self.world.state()?.down_regions.contains(&self.region) {
            return Err(DrError::Unavailable(format!(
                "{operation}: could not connect to the endpoint URL https://rds.{}.amazonaws.com/ (the region is down, simulated)",
                self.region
            )));
        }
        Ok(())
    }

    fn instance<'s>(&self, state: &'s State, id: &InstanceId) -> DrResult<&'s SimInstance> {
        let now = clock::now();
        state
            .instances
            .get(id)
            .filter(|i| i.region == self.region && i.exists_at(now))
            .ok_or_else(|| {
                DrError::NotFound(format!(
                    "DBInstanceNotFound: DBInstance {id} not found in {}",
                    self.region
                ))
            })
    }

    fn describe_in(&self, state: &mut State, id: &InstanceId) -> DrResult<InstanceDescription> {
        let now = clock::now();
        let description = describe(state, self.instance(state, id)?, now);
        if description.status == InstanceStatus::Available {
            for kind in ["promotion", "replica", "restore"] {
                World::observe(state, kind, id.as_str(), now);
            }
        }
        Ok(description)
    }

    fn snapshot_in<'s>(&self, state: &'s State, id: &SnapshotId) -> DrResult<&'s SimSnapshot> {
        state
            .snapshots
            .get(&(self.region.clone(), id.clone()))
            .ok_or_else(|| {
                DrError::NotFound(format!(
                    "DBSnapshotNotFound: DBSnapshot {id} not found in {}",
                    self.region
                ))
            })
    }

    /// A new instance in this region (a restore or a replica).
    #[allow(clippy::too_many_arguments)]
    fn new_instance(
        &self,
        id: &InstanceId,
        tags: &Tags,
        network: &Option<NetworkPlacement>,
        phases: Vec<Phase>,
        gib: f64,
        row_counts: std::collections::BTreeMap<String, u64>,
        lag_seconds: f64,
    ) -> SimInstance {
        SimInstance {
            region: self.region.clone(),
            id: id.clone(),
            created_at: clock::now(),
            availability_zone: format!("{}a", self.region),
            tags: tags.clone(),
            phases,
            gib,
            serving: Serving::Up,
            lag_seconds,
            fenced_from: None,
            gone_from: None,
            markers: Default::default(),
            row_counts,
            network: network.clone(),
            logins: Default::default(),
            master_user: None,
            damaged_from: None,
            data_as_of: None,
            writes_stopped_at: None,
            grants: Default::default(),
        }
    }

    /// Fails with `AlreadyExists` unless `id` is free, or is what `same`
    /// says a retry of this request made (then that is returned).
    fn existing(
        &self,
        state: &mut State,
        id: &InstanceId,
        same: impl Fn(&InstanceDescription) -> bool,
    ) -> DrResult<Option<InstanceDescription>> {
        let now = clock::now();
        let Some(existing) = state.instances.get(id).filter(|i| i.exists_at(now)) else {
            return Ok(None);
        };
        let description = describe(state, existing, now);
        if same(&description) {
            return Ok(Some(description));
        }
        Err(DrError::AlreadyExists(format!(
            "DBInstanceAlreadyExists: DB instance {id} already exists"
        )))
    }
}

/// What DescribeDBInstances answers for `instance` at `now`.
pub(crate) fn describe(
    state: &State,
    instance: &SimInstance,
    now: DateTime<Utc>,
) -> InstanceDescription {
    let (status, source) = instance
        .phase_at(now)
        .map_or((InstanceStatus::Creating, None), |p| {
            (p.status, p.source.clone())
        });
    let status = match instance.gone_from {
        Some(_) => InstanceStatus::Deleting,
        None => status,
    };
    let read_replicas = state
        .instances
        .values()
        .filter(|other| {
            other.exists_at(now)
                && other
                    .phase_at(now)
                    .is_some_and(|p| p.source.as_ref() == Some(&instance.id))
        })
        .map(|other| other.id.clone())
        .collect();
    InstanceDescription {
        instance_id: instance.id.clone(),
        status,
        role: if source.is_some() {
            InstanceRole::Replica
        } else {
            InstanceRole::Primary
        },
        endpoint: Some(instance.endpoint()),
        engine: "postgres".to_owned(),
        engine_version: "15.8".to_owned(),
        availability_zone: Some(instance.availability_zone.clone()),
        storage_encrypted: true,
        replica_lag: source.as_ref().map(|_| ReplicaLag {
            seconds: instance.lag_seconds,
            bytes: None,
        }),
        replication_source: source,
        read_replicas,
        // Automated backups are kept 7 days (the console's default
        // retention): no point in time before that can be restored.
        earliest_restorable_time: Some(instance.created_at.max(now - Duration::days(7))),
        latest_restorable_time: (instance.serving == Serving::Up)
            .then(|| now - Duration::minutes(5)),
        created_at: instance.created_at,
        tags: instance.tags.clone(),
        network: instance.network.clone(),
    }
}

fn describe_snapshot(snapshot: &SimSnapshot, now: DateTime<Utc>) -> SnapshotDescription {
    let mut description = snapshot.description.clone();
    if now >= snapshot.available_from {
        description.status = SnapshotStatus::Available;
        description.percent_progress = Some(100);
    } else {
        let total = (snapshot.available_from - description.created_at)
            .num_milliseconds()
            .max(1);
        let done = (now - description.created_at).num_milliseconds().max(0);
        description.percent_progress = Some(((done * 100) / total).min(99) as u8);
    }
    description
}

#[async_trait]
impl DatabaseControlPlane for SimRds {
    async fn describe_instance(&self, id: &InstanceId) -> DrResult<InstanceDescription> {
        self.call("DescribeDBInstances")?;
        let mut state = self.world.state()?;
        self.describe_in(&mut state, id)
    }

    async fn list_instances(&self) -> DrResult<Vec<InstanceDescription>> {
        self.call("DescribeDBInstances")?;
        let now = clock::now();
        let state = self.world.state()?;
        Ok(state
            .instances
            .values()
            .filter(|i| i.region == self.region && i.exists_at(now))
            .map(|i| describe(&state, i, now))
            .collect())
    }

    async fn list_snapshots(
        &self,
        instance: Option<&InstanceId>,
    ) -> DrResult<Vec<SnapshotDescription>> {
        self.call("DescribeDBSnapshots")?;
        let now = clock::now();
        let state = self.world.state()?;
        let mut snapshots: Vec<SnapshotDescription> = state
            .snapshots
            .iter()
            .filter(|((region, _), s)| {
                region == &self.region
                    && s.description.created_at <= now
                    && instance.is_none_or(|i| &s.description.source_instance_id == i)
            })
            .map(|(_, s)| describe_snapshot(s, now))
            .collect();
        SnapshotDescription::sort_newest_first(&mut snapshots);
        Ok(snapshots)
    }

    async fn promote_read_replica(&self, id: &InstanceId) -> DrResult<PromotionOutcome> {
        let before = self.describe_instance(id).await?;
        if before.promotion_readiness()? == PromotionReadiness::AlreadyStandalone {
            return Ok(PromotionOutcome {
                instance: before,
                already_standalone: true,
                lag_at_promotion: None,
            });
        }
        self.call("PromoteReadReplica")?;
        let modifying = self
            .world
            .draw(self.world.config.timings.promote_modifying, 0.0);
        let rebooting = self
            .world
            .draw(self.world.config.timings.promote_rebooting, 0.0);
        let now = clock::now();
        let mut state = self.world.state()?;
        World::begin(
            &mut state,
            "promotion",
            id.as_str(),
            now,
            modifying + rebooting,
        );
        let instance = state
            .instances
            .get_mut(id)
            .ok_or_else(|| DrError::NotFound(format!("DBInstance {id} not found")))?;
        instance.phases.push(Phase {
            from: now,
            status: InstanceStatus::Modifying,
            source: before.replication_source.clone(),
        });
        instance.phases.push(Phase {
            from: now + modifying,
            status: InstanceStatus::Rebooting,
            source: None,
        });
        instance.phases.push(Phase {
            from: now + modifying + rebooting,
            status: InstanceStatus::Available,
            source: None,
        });
        let instance = self.describe_in(&mut state, id)?;
        Ok(PromotionOutcome {
            instance,
            already_standalone: false,
            lag_at_promotion: before.replica_lag,
        })
    }

    async fn create_read_replica(
        &self,
        request: &CreateReplicaRequest,
    ) -> DrResult<InstanceDescription> {
        self.call("CreateDBInstanceReadReplica")?;
        let now = clock::now();
        let mut state = self.world.state()?;
        if let Some(existing) = self.existing(&mut state, &request.replica_id, |d| {
            d.replication_source.as_ref() == Some(&request.source_id)
        })? {
            return Ok(existing);
        }
        let source = self.instance(&state, &request.source_id)?;
        let (gib, rows) = (source.gib, source.row_counts.clone());
        let took = self
            .world
            .draw(self.world.config.timings.create_replica, gib);
        let phases = vec![
            Phase {
                from: now,
                status: InstanceStatus::Creating,
                source: Some(request.source_id.clone()),
            },
            Phase {
                from: now + took,
                status: InstanceStatus::Available,
                source: Some(request.source_id.clone()),
            },
        ];
        let mut replica = self.new_instance(
            &request.replica_id,
            &request.tags,
            &request.network,
            phases,
            gib,
            rows,
            1.0,
        );
        if let Some(zone) = &request.availability_zone {
            replica.availability_zone = zone.clone();
        }
        World::begin(
            &mut state,
            "replica",
            request.replica_id.as_str(),
            now,
            took,
        );
        state.instances.insert(request.replica_id.clone(), replica);
        self.describe_in(&mut state, &request.replica_id)
    }

    async fn create_snapshot(
        &self,
        request: &CreateSnapshotRequest,
    ) -> DrResult<SnapshotDescription> {
        self.call("CreateDBSnapshot")?;
        let now = clock::now();
        let mut state = self.world.state()?;
        let key = (self.region.clone(), request.snapshot_id.clone());
        if let Some(existing) = state.snapshots.get(&key) {
            if existing.description.source_instance_id == request.instance_id {
                return Ok(describe_snapshot(existing, now));
            }
            return Err(DrError::AlreadyExists(format!(
                "DBSnapshotAlreadyExists: {} already exists",
                request.snapshot_id
            )));
        }
        let source = self.instance(&state, &request.instance_id)?;
        let (gib, rows) = (source.gib, source.row_counts.clone());
        let took = self
            .world
            .draw(self.world.config.timings.create_snapshot, gib);
        let snapshot = new_snapshot(
            &request.snapshot_id,
            &request.instance_id,
            &self.region,
            now,
            now + took,
            gib,
            rows,
            &request.tags,
        );
        World::begin(
            &mut state,
            "snapshot",
            request.snapshot_id.as_str(),
            now,
            took,
        );
        let described = describe_snapshot(&snapshot, now);
        state.snapshots.insert(key, snapshot);
        Ok(described)
    }

    async fn restore_from_snapshot(
        &self,
        request: &RestoreSnapshotRequest,
    ) -> DrResult<InstanceDescription> {
        self.call("RestoreDBInstanceFromDBSnapshot")?;
        let now = clock::now();
        let mut state = self.world.state()?;
        if let Some(existing) = self.existing(&mut state, &request.target_id, |d| {
            d.replication_source.is_none()
        })? {
            return Ok(existing);
        }
        let snapshot = self.snapshot_in(&state, &request.snapshot_id)?;
        if now < snapshot.available_from {
            return Err(DrError::NotReady(format!(
                "InvalidDBSnapshotState: snapshot {} is not yet available",
                request.snapshot_id
            )));
        }
        let (gib, rows) = (snapshot.gib, snapshot.rows.clone());
        self.restore_into(
            &mut state,
            &request.target_id,
            &request.tags,
            &request.network,
            gib,
            rows,
            Duration::zero(),
        )
    }

    async fn restore_to_point_in_time(
        &self,
        request: &PointInTimeRestoreRequest,
    ) -> DrResult<InstanceDescription> {
        self.call("RestoreDBInstanceToPointInTime")?;
        let mut state = self.world.state()?;
        if let Some(existing) = self.existing(&mut state, &request.target_id, |d| {
            d.replication_source.is_none()
        })? {
            return Ok(existing);
        }
        let source = self.instance(&state, &request.source_id)?;
        let (gib, rows) = (source.gib, source.row_counts.clone());
        // Logs are replayed from the newest backup before the restore
        // time: a snapshot, or the daily automated backup (taken at the
        // time of day of the newest automated snapshot, every day of the
        // retention).
        let snapshots = || {
            state
                .snapshots
                .values()
                .filter(|s| s.description.source_instance_id == request.source_id)
        };
        let daily = snapshots()
            .filter(|s| s.description.snapshot_type == SnapshotType::Automated)
            .map(|s| s.description.created_at)
            .max()
            .map(|s| daily_backup_before(s, request.restore_time));
        let base = snapshots()
            .map(|s| s.description.created_at)
            .filter(|t| *t <= request.restore_time)
            .chain(daily)
            .max()
            .unwrap_or(request.restore_time - Duration::hours(24));
        let hours = ((request.restore_time - base).num_seconds().max(0) as f64) / 3600.0;
        let per_hour = self
            .world
            .draw(self.world.config.timings.pitr_replay_per_hour, 0.0);
        let replay = Duration::milliseconds((per_hour.num_milliseconds() as f64 * hours) as i64);
        // The restore holds the source's data as of the restore time: its
        // damage if that came before, the grants and logins it had.
        let source = self.instance(&state, &request.source_id)?;
        let damaged = source
            .damaged_from
            .is_some_and(|d| d <= request.restore_time);
        // The passwords as they were at the restore time: a rotation
        // after it is not in the restore.
        let logins: BTreeMap<String, Vec<(DateTime<Utc>, SecretString)>> = source
            .logins
            .iter()
            .map(|(user, timeline)| {
                let then: Vec<_> = timeline
                    .iter()
                    .filter(|(from, _)| *from <= request.restore_time)
                    .cloned()
                    .collect();
                (user.clone(), then)
            })
            .collect();
        let master_user = source.master_user.clone();
        // The rows committed by the restore time (a drill's marker rows).
        let markers: Vec<String> = source
            .markers
            .iter()
            .filter(|(_, at)| **at <= request.restore_time)
            .map(|(marker, _)| marker.clone())
            .collect();
        let described = self.restore_into(
            &mut state,
            &request.target_id,
            &request.tags,
            &request.network,
            gib,
            rows,
            replay,
        )?;
        if let Some(restored) = state.instances.get_mut(&request.target_id) {
            restored.damaged_from = damaged.then_some(restored.created_at);
            restored.data_as_of = Some(request.restore_time);
            restored.grants = BTreeMap::from([(crate::APP_ROLE.to_owned(), crate::app_grants())]);
            restored.logins = logins;
            restored.master_user = master_user;
            let created = restored.created_at;
            restored.markers = markers.into_iter().map(|m| (m, created)).collect();
        }
        Ok(described)
    }

    async fn delete_instance(&self, id: &InstanceId, options: DeleteOptions) -> DrResult<()> {
        let described = self.describe_instance(id).await?;
        dr_core::guard::deletion(id, &described.tags, options)?;
        self.call("DeleteDBInstance")?;
        let took = self
            .world
            .draw(self.world.config.timings.delete_instance, 0.0);
        let now = clock::now();
        let mut state = self.world.state()?;
        if let Some(instance) = state.instances.get_mut(id) {
            instance.gone_from = Some(now + took);
            instance.serving = Serving::Unreachable;
        }
        Ok(())
    }

    async fn delete_snapshot(&self, id: &SnapshotId) -> DrResult<()> {
        self.call("DeleteDBSnapshot")?;
        let mut state = self.world.state()?;
        self.snapshot_in(&state, id)?;
        state.snapshots.remove(&(self.region.clone(), id.clone()));
        Ok(())
    }

    async fn describe_snapshot(&self, id: &SnapshotId) -> DrResult<SnapshotDescription> {
        self.call("DescribeDBSnapshots")?;
        let now = clock::now();
        let mut state = self.world.state()?;
        let described = describe_snapshot(self.snapshot_in(&state, id)?, now);
        if described.status == SnapshotStatus::Available {
            for kind in ["snapshot", "copy"] {
                World::observe(&mut state, kind, id.as_str(), now);
            }
        }
        Ok(described)
    }

    async fn copy_snapshot(&self, request: &CopySnapshotRequest) -> DrResult<SnapshotDescription> {
        self.call("CopyDBSnapshot")?;
        let now = clock::now();
        let mut state = self.world.state()?;
        let key = (self.region.clone(), request.target_snapshot_id.clone());
        if let Some(existing) = state.snapshots.get(&key) {
            let same = existing.description.copied_from.as_ref().is_some_and(|c| {
                c.snapshot == request.source_snapshot_id.as_str()
                    && c.region.as_deref() == Some(request.source_region.as_str())
            });
            if same {
                return Ok(describe_snapshot(existing, now));
            }
            return Err(DrError::AlreadyExists(format!(
                "DBSnapshotAlreadyExists: {} already exists",
                request.target_snapshot_id
            )));
        }
        let source = state
            .snapshots
            .get(&(
                request.source_region.clone(),
                request.source_snapshot_id.clone(),
            ))
            .filter(|s| now >= s.available_from)
            .ok_or_else(|| {
                DrError::NotFound(format!(
                    "DBSnapshotNotFound: {} is not an available snapshot of {}",
                    request.source_snapshot_id, request.source_region
                ))
            })?
            .clone();
        let took = self
            .world
            .draw(self.world.config.timings.copy_cross_region, source.gib);
        let mut tags = source.description.tags.clone();
        tags.extend(request.tags.clone());
        let mut copy = new_snapshot(
            &request.target_snapshot_id,
            &source.description.source_instance_id,
            &self.region,
            now,
            now + took,
            source.gib,
            source.rows.clone(),
            &tags,
        );
        copy.description.status = SnapshotStatus::Copying;
        copy.description.original_created_at = Some(source.description.data_time());
        copy.description.kms_key_id = Some(request.kms_key_id.clone());
        copy.description.copied_from = Some(SnapshotSource {
            snapshot: request.source_snapshot_id.as_str().to_owned(),
            region: Some(request.source_region.clone()),
        });
        World::begin(
            &mut state,
            "copy",
            request.target_snapshot_id.as_str(),
            now,
            took,
        );
        let described = describe_snapshot(&copy, now);
        state.snapshots.insert(key, copy);
        Ok(described)
    }

    async fn tag_snapshot(&self, id: &SnapshotId, tags: &Tags) -> DrResult<()> {
        self.call("AddTagsToResource")?;
        let mut state = self.world.state()?;
        self.snapshot_in(&state, id)?;
        if let Some(s) = state.snapshots.get_mut(&(self.region.clone(), id.clone())) {
            s.description.tags.extend(tags.clone());
        }
        Ok(())
    }

    async fn change_master_credentials(
        &self,
        id: &InstanceId,
        new_password: &SecretString,
    ) -> DrResult<()> {
        dr_core::guard::master_password(new_password)?;
        let described = self.describe_instance(id).await?;
        if described.role == InstanceRole::Replica {
            return Err(DrError::InvalidInput(format!(
                "DB instance {id} is a read replica; change the credentials on its source"
            )));
        }
        self.call("ModifyDBInstance")?;
        // RDS applies it asynchronously (the instance shows
        // resetting-master-credentials): the old password works until then.
        let took = self
            .world
            .draw(self.world.config.timings.master_password, 0.0);
        let now = clock::now();
        let mut state = self.world.state()?;
        let user = state.instances.get(id).and_then(|i| i.master_user.clone());
        if let Some(user) = user {
            World::set_login(
                &mut state,
                id,
                &user,
                new_password.expose_secret(),
                now + took,
            );
        }
        World::begin(&mut state, "master-password", id.as_str(), now, took);
        Ok(())
    }

    async fn add_tags(&self, instance: &InstanceId, tags: &Tags) -> DrResult<()> {
        self.call("AddTagsToResource")?;
        let mut state = self.world.state()?;
        self.instance(&state, instance)?;
        if let Some(i) = state.instances.get_mut(instance) {
            i.tags.extend(tags.clone());
        }
        Ok(())
    }

    async fn inject_failure(&self, id: &InstanceId, _request: &FailureRequest) -> DrResult<String> {
        self.call("ModifyDBInstance")?;
        let mut state = self.world.state()?;
        self.instance(&state, id)?;
        let instance = state
            .instances
            .get_mut(id)
            .ok_or_else(|| DrError::NotFound(format!("DBInstance {id} not found")))?;
        ensure_failure_target(id, &instance.tags)?;
        // As on RDS: cut off, still reported available.
        instance.serving = crate::world::Serving::Unreachable;
        Ok("cut off the network (simulated)".to_owned())
    }

    async fn fence_instance(
        &self,
        id: &InstanceId,
        request: &FenceRequest,
    ) -> DrResult<FenceOutcome> {
        self.call("ModifyDBInstance")?;
        let took = self.world.draw(self.world.config.timings.fence, 0.0);
        let now = clock::now();
        let mut state = self.world.state()?;
        self.instance(&state, id)?;
        let instance = state
            .instances
            .get_mut(id)
            .ok_or_else(|| DrError::NotFound(format!("DBInstance {id} not found")))?;
        let already_fenced = instance.fenced_from.is_some();
        if !already_fenced {
            instance.fenced_from = Some(now + took);
            instance
                .tags
                .insert(FENCED_TAG.to_owned(), request.by.clone());
            World::begin(&mut state, "fence", id.as_str(), now, took);
        }
        Ok(FenceOutcome {
            already_fenced,
            method: "moved to the quarantine security group (simulated)".to_owned(),
        })
    }
}

impl SimRds {
    #[allow(clippy::too_many_arguments)]
    fn restore_into(
        &self,
        state: &mut State,
        target: &InstanceId,
        tags: &Tags,
        network: &Option<NetworkPlacement>,
        gib: f64,
        rows: std::collections::BTreeMap<String, u64>,
        replay: Duration,
    ) -> DrResult<InstanceDescription> {
        let now = clock::now();
        let creating = self
            .world
            .draw(self.world.config.timings.restore_creating, gib)
            + replay;
        let backing_up = self
            .world
            .draw(self.world.config.timings.restore_backing_up, 0.0);
        let phases = vec![
            Phase {
                from: now,
                status: InstanceStatus::Creating,
                source: None,
            },
            Phase {
                from: now + creating,
                status: InstanceStatus::BackingUp,
                source: None,
            },
            Phase {
                from: now + creating + backing_up,
                status: InstanceStatus::Available,
                source: None,
            },
        ];
        let restored = self.new_instance(target, tags, network, phases, gib, rows, 0.0);
        World::begin(
            state,
            "restore",
            target.as_str(),
            now,
            creating + backing_up,
        );
        state.instances.insert(target.clone(), restored);
        self.describe_in(state, target)
    }
}

/// The newest daily backup at or before `t`, backups being taken every
/// 24 hours in step with `one` (one of them).
pub(crate) fn daily_backup_before(one: DateTime<Utc>, t: DateTime<Utc>) -> DateTime<Utc> {
    let day = 86_400;
    let days = (t - one).num_seconds().div_euclid(day);
    one + Duration::seconds(days * day)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn new_snapshot(
    id: &SnapshotId,
    instance: &InstanceId,
    region: &str,
    created_at: DateTime<Utc>,
    available_from: DateTime<Utc>,
    gib: f64,
    row_counts: std::collections::BTreeMap<String, u64>,
    tags: &Tags,
) -> SimSnapshot {
    SimSnapshot {
        description: SnapshotDescription {
            snapshot_id: id.clone(),
            source_instance_id: instance.clone(),
            snapshot_type: SnapshotType::Manual,
            status: SnapshotStatus::Creating,
            created_at,
            size_bytes: (gib * 1024.0 * 1024.0 * 1024.0) as u64,
            encrypted: true,
            engine_version: "15.8".to_owned(),
            region: Some(region.to_owned()),
            tags: tags.clone(),
            // RDS records no row counts (the restore test compares with
            // the source's counts instead).
            row_counts: None,
            original_created_at: None,
            copied_from: None,
            kms_key_id: Some(format!("arn:aws:kms:{region}:123456789012:key/sim")),
            percent_progress: Some(0),
        },
        available_from,
        gib,
        rows: row_counts,
    }
}

/// Every region's RDS.
pub struct SimRegions {
    world: Arc<World>,
}

impl SimRegions {
    pub fn new(world: Arc<World>) -> Self {
        SimRegions { world }
    }
}

impl RegionalControlPlanes for SimRegions {
    fn home_region(&self) -> &str {
        &self.world.config.home_region
    }

    fn control_plane(&self, region: &str) -> DrResult<Arc<dyn DatabaseControlPlane>> {
        validate_region(region)?;
        if region != self.world.config.home_region && region != self.world.config.backup_region {
            return Err(DrError::InvalidInput(format!(
                "the simulated account has no databases in {region}: only {} and {}",
                self.world.config.home_region, self.world.config.backup_region
            )));
        }
        Ok(Arc::new(SimRds::new(Arc::clone(&self.world), region)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_backup_before_a_moment_is_at_most_a_day_older() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        let one = t("2026-03-03T01:00:00Z");
        // (moment, the backup before it)
        let cases = [
            ("2026-03-03T01:00:00Z", "2026-03-03T01:00:00Z"),
            ("2026-03-03T02:59:00Z", "2026-03-03T01:00:00Z"),
            ("2026-03-03T00:59:59Z", "2026-03-02T01:00:00Z"),
            ("2026-02-24T03:00:01Z", "2026-02-24T01:00:00Z"),
            ("2026-03-05T00:00:00Z", "2026-03-04T01:00:00Z"),
        ];
        for (moment, backup) in cases {
            assert_eq!(daily_backup_before(one, t(moment)), t(backup), "{moment}");
        }
    }
}
