//! What an instance is (its record plus what its server reports), and the
//! bookkeeping of creating one.

use super::*;

impl LocalControlPlane {
    /// Describes an instance from its record plus what the server reports.
    pub(crate) async fn describe_record(
        &self,
        id: &InstanceId,
        record: &InstanceRecord,
        state: &LocalState,
    ) -> DrResult<InstanceDescription> {
        let running = self.postmaster_running(id);
        // A hung server (its processes stopped) looks alive to a control
        // plane that sees the process, as RDS sees a host that stopped
        // answering on the network: `available`, with nothing measured.
        let hung = record.hung && running;
        let live =
            if running && !hung && record.live_busy_status() != Some(InstanceStatus::Creating) {
                self.live_info(id).await.ok()
            } else {
                None
            };
        let status = if let Some(busy) = record.live_busy_status() {
            busy
        } else if hung {
            InstanceStatus::Available
        } else if record.failed.is_some() {
            InstanceStatus::Failed
        } else if !record.should_run {
            InstanceStatus::Stopped
        } else if live.is_some() {
            InstanceStatus::Available
        } else if running {
            InstanceStatus::Rebooting
        } else {
            InstanceStatus::Failed
        };
        let in_recovery = live
            .as_ref()
            .map_or(record.replication_source.is_some(), |l| l.in_recovery);
        let replication_source = if in_recovery {
            record.replication_source.clone()
        } else {
            None
        };
        // Behind with no replayed transaction to date it: the lag is unknown,
        // and unknown must not read as zero.
        let replica_lag = match (&live, &replication_source) {
            (Some(info), Some(source)) if info.in_recovery && info.lag_seconds.is_some() => {
                let source_hung = state.instances.get(source).is_some_and(|r| r.hung);
                let source_lsn = if self.postmaster_running(source) && !source_hung {
                    self.current_lsn(source).await.ok()
                } else {
                    None
                };
                // The source's position unknown (down or hung): the bytes
                // behind are unknown, never zero.
                let bytes = match (source_lsn, info.replay_lsn) {
                    (Some(source), Some(replayed)) => {
                        Some(u64::from(source).saturating_sub(u64::from(replayed)))
                    }
                    _ => None,
                };
                Some(ReplicaLag {
                    seconds: info.lag_seconds.unwrap_or_default().max(0.0),
                    bytes,
                })
            }
            _ => None,
        };
        let read_replicas = state
            .instances
            .iter()
            .filter(|(_, r)| r.replication_source.as_ref() == Some(id))
            .map(|(rid, _)| rid.clone())
            .collect();
        let (earliest, latest) = if in_recovery {
            (None, None)
        } else {
            let earliest = state
                .snapshots
                .values()
                .filter(|s| &s.source_instance_id == id && s.taken_from_primary)
                .map(|s| s.completed_at)
                .min();
            let latest = match (&live, earliest) {
                (_, None) => None,
                (Some(_), Some(_)) => Some(Utc::now()),
                (None, Some(e)) => Some(record.archived_until.map_or(e, |a| a.max(e))),
            };
            (earliest, latest)
        };
        Ok(InstanceDescription {
            network: None,
            instance_id: id.clone(),
            status,
            role: if in_recovery {
                InstanceRole::Replica
            } else {
                InstanceRole::Primary
            },
            endpoint: Some(Endpoint {
                address: record.address.clone(),
                port: record.port,
            }),
            engine: "postgres".to_owned(),
            engine_version: live
                .as_ref()
                .map_or_else(|| ENGINE_VERSION.to_owned(), |l| l.server_version.clone()),
            availability_zone: Some(record.availability_zone.clone()),
            storage_encrypted: false,
            replication_source,
            read_replicas,
            replica_lag,
            earliest_restorable_time: earliest,
            latest_restorable_time: latest,
            created_at: record.created_at,
            tags: record.tags.clone(),
        })
    }

    pub(crate) async fn describe(&self, id: &InstanceId) -> DrResult<InstanceDescription> {
        let state = self.store.read()?;
        let record = state
            .instances
            .get(id)
            .filter(|r| r.region == self.region)
            .ok_or_else(|| {
                DrError::NotFound(format!("DB instance {id} not found in {}", self.region))
            })?;
        self.describe_record(id, record, &state).await
    }

    /// A port for a new server, none of this stack's (see
    /// [`crate::processes::free_port`]).
    pub(crate) fn free_port(&self, state: &LocalState) -> DrResult<u16> {
        crate::processes::free_port(|port| {
            state.instances.values().any(|r| r.port == port)
                || state.moto.as_ref().is_some_and(|m| m.port == port)
        })
    }

    /// Registers a new instance as `creating`, or returns the existing one when
    /// it has the same origin (idempotent retry).
    pub(crate) fn begin_create(
        &self,
        id: &InstanceId,
        origin: Origin,
        availability_zone: Option<String>,
        replication_source: Option<InstanceId>,
        tags: &Tags,
    ) -> DrResult<Option<InstanceRecord>> {
        self.with_state(|guard| {
            // Identifiers are unique per region on RDS; locally they are
            // unique across regions, so that `drctl local` commands can name
            // an instance without a region.
            if let Some(existing) = guard.state.instances.get(id) {
                if existing.origin == origin
                    && origin != Origin::New
                    && existing.failed.is_none()
                    && existing.region == self.region
                {
                    return Ok(None);
                }
                return Err(DrError::AlreadyExists(format!(
                    "DB instance {id} already exists in {} ({})",
                    existing.region,
                    describe_origin(&existing.origin)
                )));
            }
            let zones = availability_zones(&self.region);
            if let Some(az) = &availability_zone {
                if !zones.contains(az) {
                    return Err(DrError::InvalidInput(format!(
                        "availability zone {az:?} is not in {}; it has {}",
                        self.region,
                        zones.join(", ")
                    )));
                }
            }
            let port = self.free_port(&guard.state)?;
            let address = free_address(&guard.state)?;
            let record = InstanceRecord {
                address,
                port,
                created_at: Utc::now(),
                availability_zone: availability_zone.unwrap_or_else(|| zones[0].clone()),
                origin,
                replication_source,
                master_username: MASTER_USERNAME.to_owned(),
                database: DEFAULT_DATABASE.to_owned(),
                should_run: true,
                failed: None,
                busy: Some(Busy {
                    status: InstanceStatus::Creating,
                    pid: std::process::id(),
                }),
                archived_until: None,
                tags: tags.clone(),
                fenced: None,
                hung: false,
                region: self.region.clone(),
            };
            guard.state.instances.insert(id.clone(), record.clone());
            guard.save()?;
            Ok(Some(record))
        })
    }

    /// Marks the end of a creation: available, or failed with the reason.
    pub(crate) async fn finish_create(
        &self,
        id: &InstanceId,
        outcome: DrResult<()>,
    ) -> DrResult<InstanceDescription> {
        if let Err(error) = &outcome {
            let _ = self.stop_server(id, true).await;
            let message = error.to_string();
            self.with_state(|guard| {
                let record = guard.instance_mut(id)?;
                record.busy = None;
                record.failed = Some(message);
                guard.save()
            })?;
            tracing::warn!(instance = %id, %error, "instance creation failed");
        } else {
            self.with_state(|guard| {
                guard.instance_mut(id)?.busy = None;
                guard.save()
            })?;
        }
        outcome?;
        self.describe(id).await
    }
}
