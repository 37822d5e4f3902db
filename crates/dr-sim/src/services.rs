//! The other AWS services a recovery calls, simulated: Route 53 (changes
//! `PENDING` until `INSYNC`), SNS, S3, DynamoDB's tables (lock, topology,
//! approvals, journal), Secrets Manager, CloudWatch, Step Functions'
//! execution states, and the databases' SQL.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dr_core::clock;
use dr_core::*;
use secrecy::{ExposeSecret, SecretString};

use crate::world::{Serving, SimRefresh, SimSecretVersion, SimServer, State, World};

/// Every simulated service of one account.
#[derive(Clone)]
pub struct SimServices {
    world: Arc<World>,
}

impl SimServices {
    pub fn new(world: Arc<World>) -> Self {
        SimServices { world }
    }
}

#[async_trait]
impl Dns for SimServices {
    async fn upsert_record(&self, record: &DnsRecord) -> DrResult<DnsChange> {
        self.world.api_call("ChangeResourceRecordSets")?;
        let took = self.world.draw(self.world.config.timings.dns_insync, 0.0);
        let now = clock::now();
        let mut state = self.world.state()?;
        state.next_change += 1;
        let change_id = format!("C{:012}", state.next_change);
        state.records.insert(
            (
                record.hosted_zone_id.clone(),
                record.name.trim_end_matches('.').to_owned(),
                record.record_type.clone(),
            ),
            record.clone(),
        );
        let insync = World::begin(&mut state, "dns", &change_id, now, took);
        state.changes.insert(change_id.clone(), insync);
        Ok(DnsChange {
            change_id,
            status: DnsChangeStatus::Pending,
        })
    }

    async fn change_status(&self, change_id: &str) -> DrResult<DnsChange> {
        self.world.api_call("GetChange")?;
        let now = clock::now();
        let mut state = self.world.state()?;
        let insync = *state
            .changes
            .get(change_id)
            .ok_or_else(|| DrError::NotFound(format!("NoSuchChange: {change_id}")))?;
        let status = if now >= insync {
            World::observe(&mut state, "dns", change_id, now);
            DnsChangeStatus::Insync
        } else {
            DnsChangeStatus::Pending
        };
        Ok(DnsChange {
            change_id: change_id.to_owned(),
            status,
        })
    }

    async fn delete_record(
        &self,
        hosted_zone_id: &str,
        name: &str,
        record_type: &str,
    ) -> DrResult<Option<DnsChange>> {
        self.world.api_call("ChangeResourceRecordSets")?;
        let now = clock::now();
        let mut state = self.world.state()?;
        let key = (
            hosted_zone_id.to_owned(),
            name.trim_end_matches('.').to_owned(),
            record_type.to_owned(),
        );
        if state.records.remove(&key).is_none() {
            return Ok(None);
        }
        state.next_change += 1;
        let change_id = format!("C{:012}", state.next_change);
        let took = self.world.draw(self.world.config.timings.dns_insync, 0.0);
        let insync = World::begin(&mut state, "dns", &change_id, now, took);
        state.changes.insert(change_id.clone(), insync);
        Ok(Some(DnsChange {
            change_id,
            status: DnsChangeStatus::Pending,
        }))
    }

    async fn get_record(
        &self,
        hosted_zone_id: &str,
        name: &str,
        record_type: &str,
    ) -> DrResult<Option<DnsRecord>> {
        self.world.api_call("ListResourceRecordSets")?;
        let state = self.world.state()?;
        Ok(state
            .records
            .get(&(
                hosted_zone_id.to_owned(),
                name.trim_end_matches('.').to_owned(),
                record_type.to_owned(),
            ))
            .cloned())
    }
}

#[async_trait]
impl Notifier for SimServices {
    async fn publish(&self, notification: &Notification) -> DrResult<String> {
        self.world.data_call();
        let mut state = self.world.state()?;
        state
            .notifications
            .push((clock::now(), notification.clone()));
        Ok(format!("sim-message-{}", state.notifications.len()))
    }

    async fn subscriptions(&self, _topic: &str) -> DrResult<SubscriptionCounts> {
        self.world.data_call();
        // Every simulated topic has its on-call's confirmed subscription.
        Ok(SubscriptionCounts {
            confirmed: 1,
            pending: 0,
        })
    }
}

#[async_trait]
impl ReportStore for SimServices {
    async fn put(&self, key: &str, _content_type: &str, body: &[u8]) -> DrResult<String> {
        self.world.data_call();
        self.world
            .state()?
            .reports
            .insert(key.to_owned(), body.to_vec());
        Ok(format!("s3://sim-reports/{key}"))
    }

    async fn get(&self, key: &str) -> DrResult<Option<Vec<u8>>> {
        self.world.data_call();
        Ok(self.world.state()?.reports.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> DrResult<Vec<String>> {
        self.world.data_call();
        Ok(self
            .world
            .state()?
            .reports
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl RecoveryLock for SimServices {
    async fn acquire(&self, resource: &str, owner: &str, _ttl: u64) -> DrResult<LockHolder> {
        self.world.data_call();
        let mut state = self.world.state()?;
        match state.locks.get(resource) {
            Some(held) if held.owner == owner => Ok(held.clone()),
            Some(held) => Err(DrError::Conflict(format!(
                "{resource} is held by {} since {}",
                held.owner, held.acquired_at
            ))),
            None => {
                let holder = LockHolder {
                    resource: resource.to_owned(),
                    owner: owner.to_owned(),
                    acquired_at: clock::now(),
                };
                state.locks.insert(resource.to_owned(), holder.clone());
                Ok(holder)
            }
        }
    }

    async fn take_over(
        &self,
        resource: &str,
        owner: &str,
        stale_owner: &str,
        _ttl: u64,
    ) -> DrResult<LockHolder> {
        self.world.data_call();
        let mut state = self.world.state()?;
        match state.locks.get(resource) {
            Some(held) if held.owner != stale_owner && held.owner != owner => Err(
                DrError::Conflict(format!("{resource} is held by {} by now", held.owner)),
            ),
            _ => {
                let holder = LockHolder {
                    resource: resource.to_owned(),
                    owner: owner.to_owned(),
                    acquired_at: clock::now(),
                };
                state.locks.insert(resource.to_owned(), holder.clone());
                Ok(holder)
            }
        }
    }

    async fn release(&self, resource: &str, owner: &str) -> DrResult<()> {
        self.world.data_call();
        let mut state = self.world.state()?;
        if state.locks.get(resource).is_some_and(|h| h.owner == owner) {
            state.locks.remove(resource);
        }
        Ok(())
    }

    async fn holder(&self, resource: &str) -> DrResult<Option<LockHolder>> {
        self.world.data_call();
        Ok(self.world.state()?.locks.get(resource).cloned())
    }

    async fn holders(&self) -> DrResult<Vec<LockHolder>> {
        self.world.data_call();
        Ok(self.world.state()?.locks.values().cloned().collect())
    }
}

#[async_trait]
impl TopologyRegistry for SimServices {
    async fn get(&self, database: &str) -> DrResult<Option<Topology>> {
        self.world.data_call();
        Ok(self.world.state()?.topologies.get(database).cloned())
    }

    async fn put(&self, topology: &Topology, expected_version: Option<u64>) -> DrResult<Topology> {
        self.world.data_call();
        let mut state = self.world.state()?;
        let stored = state.topologies.get(&topology.database).map(|t| t.version);
        if stored != expected_version {
            return Err(DrError::Conflict(format!(
                "the topology of {} is at version {stored:?}, not {expected_version:?}",
                topology.database
            )));
        }
        let mut next = topology.clone();
        next.version = expected_version.map_or(1, |v| v + 1);
        state
            .topologies
            .insert(topology.database.clone(), next.clone());
        Ok(next)
    }

    async fn list(&self) -> DrResult<Vec<Topology>> {
        self.world.data_call();
        Ok(self.world.state()?.topologies.values().cloned().collect())
    }

    async fn delete(&self, database: &str, expected_version: u64) -> DrResult<bool> {
        self.world.data_call();
        let mut state = self.world.state()?;
        match state.topologies.get(database).map(|t| t.version) {
            None => Ok(false),
            Some(v) if v == expected_version => Ok(state.topologies.remove(database).is_some()),
            Some(v) => Err(DrError::Conflict(format!(
                "the topology of {database} is at version {v}, not {expected_version}"
            ))),
        }
    }
}

#[async_trait]
impl ApprovalStore for SimServices {
    async fn open(&self, request: &ApprovalRequest, token: &SecretString) -> DrResult<()> {
        self.world.data_call();
        let mut state = self.world.state()?;
        // As the table's condition: a retry or the next tier replaces a
        // pending record, never an answered one.
        if state
            .approvals
            .get(&request.execution_name)
            .is_some_and(|(r, _)| r.status != ApprovalStatus::Pending)
        {
            return Err(DrError::Conflict(format!(
                "the approval of {} was already answered",
                request.execution_name
            )));
        }
        state.approvals.insert(
            request.execution_name.clone(),
            (request.clone(), token.clone()),
        );
        Ok(())
    }

    async fn get(&self, execution_name: &str) -> DrResult<Option<(ApprovalRequest, SecretString)>> {
        self.world.data_call();
        Ok(self.world.state()?.approvals.get(execution_name).cloned())
    }

    async fn close(
        &self,
        execution_name: &str,
        status: ApprovalStatus,
        answer: Option<ApprovalAnswer>,
    ) -> DrResult<ApprovalRequest> {
        self.world.data_call();
        let mut state = self.world.state()?;
        let (request, _) = state.approvals.get_mut(execution_name).ok_or_else(|| {
            DrError::NotFound(format!(
                "no approval of an execution named {execution_name}"
            ))
        })?;
        if request.status != ApprovalStatus::Pending {
            return Err(DrError::Conflict(format!(
                "the approval of {execution_name} is already {:?}",
                request.status
            )));
        }
        request.status = status;
        request.answer = answer;
        Ok(request.clone())
    }
}

/// Records the page: its climb would follow the recovery's end.
#[async_trait]
impl Pager for SimServices {
    async fn raise(&self, page: &Page) -> DrResult<()> {
        self.world.data_call();
        let mut state = self.world.state()?;
        if !state.pages.iter().any(|p| p.id == page.id) {
            state.pages.push(page.clone());
        }
        Ok(())
    }
}

/// Answers a waiting task of the simulated run through its runner.
#[async_trait]
impl TaskTokens for SimServices {
    async fn send_success(&self, token: &SecretString, output: &serde_json::Value) -> DrResult<()> {
        self.world
            .tokens
            .get()
            .ok_or_else(|| DrError::Unavailable("no runner answers task tokens".to_owned()))?
            .send_success(token.expose_secret(), output.clone())
            .map_err(|e| DrError::NotFound(e.to_string()))
    }
    async fn send_failure(&self, token: &SecretString, error: &str, cause: &str) -> DrResult<()> {
        self.world
            .tokens
            .get()
            .ok_or_else(|| DrError::Unavailable("no runner answers task tokens".to_owned()))?
            .send_failure(token.expose_secret(), error, cause)
            .map_err(|e| DrError::NotFound(e.to_string()))
    }
}

#[async_trait]
impl RecoveryJournal for SimServices {
    async fn record(&self, entry: &JournalEntry) -> DrResult<()> {
        self.world.data_call();
        self.world.state()?.journal.insert(
            (entry.recovery_id.clone(), entry.key.clone()),
            entry.clone(),
        );
        Ok(())
    }

    async fn entries(&self, recovery_id: &str) -> DrResult<Vec<JournalEntry>> {
        self.world.data_call();
        let mut entries: Vec<JournalEntry> = self
            .world
            .state()?
            .journal
            .values()
            .filter(|e| e.recovery_id == recovery_id)
            .cloned()
            .collect();
        entries.sort_by_key(|e| e.at);
        Ok(entries)
    }
}

#[async_trait]
impl Executions for SimServices {
    async fn state(&self, execution_arn: &str) -> DrResult<Option<ExecutionState>> {
        self.world.data_call();
        Ok(self.world.state()?.executions.get(execution_arn).copied())
    }

    async fn definitions(
        &self,
        state_machine_arn: &str,
        _execution_arn: &str,
    ) -> DrResult<Option<DefinitionDigests>> {
        self.world.api_call("DescribeStateMachineForExecution")?;
        Ok(self
            .world
            .definitions
            .get()
            .and_then(|d| d.get(state_machine_arn))
            .map(|digest| DefinitionDigests {
                ran_sha256: digest.clone(),
                deployed_sha256: digest.clone(),
            }))
    }
}

/// Secrets Manager, simulated: versions with staging labels, moved as
/// Secrets Manager moves them (a new AWSCURRENT leaves AWSPREVIOUS on the
/// version it came from; a label on another version is moved only when
/// the call names that version).
#[async_trait]
impl Secrets for SimServices {
    async fn get_secret(&self, secret_id: &str) -> DrResult<SecretString> {
        self.world.data_call();
        let state = self.world.state()?;
        versions(&state, secret_id)?
            .iter()
            .find(|v| v.stages.contains(CURRENT))
            .map(|v| v.value.clone())
            .ok_or_else(|| DrError::NotFound(format!("secret {secret_id} has no {CURRENT}")))
    }

    async fn put_secret(&self, secret_id: &str, value: &SecretString) -> DrResult<String> {
        self.world.data_call();
        let mut state = self.world.state()?;
        let all = state.secrets.entry(secret_id.to_owned()).or_default();
        let id = format!("sim-v{}", all.len() + 1);
        all.push(SimSecretVersion {
            id: id.clone(),
            value: value.clone(),
            stages: BTreeSet::new(),
        });
        move_stage(all, CURRENT, &id);
        Ok(id)
    }

    async fn get_secret_stage(
        &self,
        secret_id: &str,
        stage: &str,
    ) -> DrResult<Option<SecretVersion>> {
        self.world.data_call();
        let state = self.world.state()?;
        Ok(versions(&state, secret_id)?
            .iter()
            .find(|v| v.stages.contains(stage))
            .map(|v| SecretVersion {
                version_id: v.id.clone(),
                value: v.value.clone(),
                stages: v.stages.iter().cloned().collect(),
            }))
    }

    async fn put_secret_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &SecretString,
    ) -> DrResult<String> {
        self.world.data_call();
        let mut state = self.world.state()?;
        versions(&state, secret_id)?;
        let all = state.secrets.entry(secret_id.to_owned()).or_default();
        match all.iter().find(|v| v.id == token) {
            // The same token again: nothing new (a different value is
            // ResourceExistsException).
            Some(v) if v.value.expose_secret() == value.expose_secret() => {}
            Some(_) => {
                return Err(DrError::AlreadyExists(format!(
                    "ResourceExistsException: {secret_id} already has a version {token} with another value"
                )))
            }
            None => all.push(SimSecretVersion {
                id: token.to_owned(),
                value: value.clone(),
                stages: BTreeSet::new(),
            }),
        }
        move_stage(all, PENDING, token);
        Ok(token.to_owned())
    }

    async fn move_secret_stage(
        &self,
        secret_id: &str,
        stage: &str,
        version_id: &str,
        from: Option<&str>,
    ) -> DrResult<()> {
        self.world.data_call();
        let mut state = self.world.state()?;
        versions(&state, secret_id)?;
        let all = state.secrets.entry(secret_id.to_owned()).or_default();
        if !all.iter().any(|v| v.id == version_id) {
            return Err(DrError::NotFound(format!(
                "{secret_id} has no version {version_id}"
            )));
        }
        let holder = all
            .iter()
            .find(|v| v.stages.contains(stage))
            .map(|v| v.id.clone());
        if let Some(holder) = holder.filter(|h| h != version_id) {
            if from != Some(holder.as_str()) {
                return Err(DrError::InvalidInput(format!(
                    "InvalidParameterException: {stage} is attached to {holder}, not named as the version to move it from"
                )));
            }
        }
        move_stage(all, stage, version_id);
        Ok(())
    }

    async fn remove_secret_stage(
        &self,
        secret_id: &str,
        stage: &str,
        version_id: &str,
    ) -> DrResult<()> {
        self.world.data_call();
        let mut state = self.world.state()?;
        versions(&state, secret_id)?;
        let all = state.secrets.entry(secret_id.to_owned()).or_default();
        match all.iter_mut().find(|v| v.id == version_id) {
            Some(v) if v.stages.contains(stage) => {
                v.stages.remove(stage);
                Ok(())
            }
            _ => Err(DrError::InvalidInput(format!(
                "InvalidParameterException: {stage} is not attached to {version_id}"
            ))),
        }
    }
}

const CURRENT: &str = "AWSCURRENT";
const PENDING: &str = "AWSPENDING";
const PREVIOUS: &str = "AWSPREVIOUS";

fn versions<'s>(state: &'s State, secret_id: &str) -> DrResult<&'s [SimSecretVersion]> {
    state
        .secrets
        .get(secret_id)
        .map(Vec::as_slice)
        .ok_or_else(|| DrError::NotFound(format!("ResourceNotFoundException: secret {secret_id}")))
}

/// Puts `stage` on `version_id` alone; a new AWSCURRENT leaves AWSPREVIOUS
/// on the version that had it.
fn move_stage(all: &mut [SimSecretVersion], stage: &str, version_id: &str) {
    let old = all
        .iter()
        .find(|v| v.stages.contains(stage))
        .map(|v| v.id.clone());
    for v in all.iter_mut() {
        v.stages.remove(stage);
        if v.id == version_id {
            v.stages.insert(stage.to_owned());
        }
    }
    if stage == CURRENT {
        if let Some(old) = old.filter(|o| o != version_id) {
            for v in all.iter_mut() {
                v.stages.remove(PREVIOUS);
                if v.id == old {
                    v.stages.insert(PREVIOUS.to_owned());
                }
            }
        }
    }
}

#[async_trait]
impl Metrics for SimServices {
    async fn put(&self, namespace: &str, data: &[MetricDatum]) -> DrResult<()> {
        self.world.data_call();
        let mut state = self.world.state()?;
        for datum in data {
            state.metrics.push((namespace.to_owned(), datum.clone()));
        }
        Ok(())
    }

    async fn latest(
        &self,
        namespace: &str,
        metric: &str,
        dimensions: &BTreeMap<String, String>,
        since: DateTime<Utc>,
    ) -> DrResult<Option<MetricPoint>> {
        self.world.data_call();
        let state = self.world.state()?;
        Ok(state
            .metrics
            .iter()
            .filter(|(ns, d)| {
                ns == namespace
                    && d.name == metric
                    && &d.dimensions == dimensions
                    && d.timestamp >= since
            })
            .max_by_key(|(_, d)| d.timestamp)
            .map(|(_, d)| MetricPoint {
                at: d.timestamp,
                minimum: d.value,
                maximum: d.value,
            }))
    }
}

/// EC2 Auto Scaling, simulated: raising the desired capacity launches
/// servers that pass the load balancer's check after a launch's time;
/// lowering it terminates the newest; an instance refresh launches a
/// replacement for every server at once (MinHealthyPercentage 100,
/// MaxHealthyPercentage 200, as our adapter asks), waits the instance
/// warmup after the last is `InService`, then terminates the old ones
/// after the load balancer's deregistration delay, and is `Successful`.
#[async_trait]
impl AppFleet for SimServices {
    async fn describe_fleet(&self, fleet: &FleetRef) -> DrResult<FleetStatus> {
        let region = self.fleet_region(fleet)?;
        self.world.api_call("DescribeAutoScalingGroups")?;
        let now = clock::now();
        let mut state = self.world.state()?;
        let group = state
            .fleets
            .get(&(region, fleet.auto_scaling_group.clone()))
            .ok_or_else(|| group_not_found(fleet))?;
        let live: Vec<&SimServer> = group.live(now).collect();
        let instances: Vec<FleetInstance> = live
            .iter()
            .map(|s| FleetInstance {
                instance_id: s.id.clone(),
                lifecycle_state: if s.in_service_at(now) {
                    "InService"
                } else {
                    "Pending"
                }
                .to_owned(),
                health_status: "Healthy".to_owned(),
            })
            .collect();
        let healthy = live.iter().filter(|s| s.passes_at(now)).count() as u32;
        let seen: Vec<String> = live
            .iter()
            .filter(|s| s.in_service_at(now))
            .map(|s| s.id.clone())
            .collect();
        let status = FleetStatus {
            desired_capacity: group.desired,
            min_size: group.min,
            max_size: group.max,
            instances,
            healthy_targets: healthy,
            unhealthy_targets: live.len() as u32 - healthy,
        };
        for id in seen {
            World::observe(&mut state, "instance", &id, now);
        }
        Ok(status)
    }

    async fn set_desired_capacity(&self, fleet: &FleetRef, desired: u32) -> DrResult<()> {
        let region = self.fleet_region(fleet)?;
        self.world.api_call("SetDesiredCapacity")?;
        let now = clock::now();
        let (live, bounds) = {
            let state = self.world.state()?;
            let group = state
                .fleets
                .get(&(region.clone(), fleet.auto_scaling_group.clone()))
                .ok_or_else(|| group_not_found(fleet))?;
            (group.live(now).count(), (group.min, group.max))
        };
        if desired < bounds.0 || desired > bounds.1 {
            return Err(DrError::InvalidInput(format!(
                "ValidationError: desired capacity {desired} is outside {}-{}",
                bounds.0, bounds.1
            )));
        }
        let launches: Vec<chrono::Duration> = (live..desired as usize)
            .map(|_| {
                self.world
                    .draw(self.world.config.timings.instance_launch, 0.0)
            })
            .collect();
        let mut state = self.world.state()?;
        let key = (region, fleet.auto_scaling_group.clone());
        let mut started = Vec::new();
        if let Some(group) = state.fleets.get_mut(&key) {
            group.desired = desired;
            // Scale-in takes the newest first.
            let mut excess = live.saturating_sub(desired as usize);
            for server in group.instances.iter_mut().rev() {
                if excess == 0 {
                    break;
                }
                if server.live_at(now) {
                    server.terminated_from = Some(now);
                    excess -= 1;
                }
            }
            for took in launches {
                let id = group.next_id();
                group.instances.push(SimServer {
                    id: id.clone(),
                    launched: now,
                    healthy_from: now + took,
                    broken: false,
                    terminated_from: None,
                });
                started.push((id, took));
            }
        }
        for (id, took) in started {
            World::begin(&mut state, "instance", &id, now, took);
        }
        Ok(())
    }

    async fn start_instance_refresh(&self, fleet: &FleetRef) -> DrResult<InstanceRefresh> {
        let region = self.fleet_region(fleet)?;
        self.world.api_call("StartInstanceRefresh")?;
        let now = clock::now();
        let key = (region, fleet.auto_scaling_group.clone());
        let live = {
            let state = self.world.state()?;
            let group = state
                .fleets
                .get(&key)
                .ok_or_else(|| group_not_found(fleet))?;
            // One is running: Auto Scaling refuses a second
            // (InstanceRefreshInProgress), and our adapter joins it.
            if let Some(running) = group
                .refreshes
                .iter()
                .find(|r| r.status_at(now) != "Successful")
            {
                return Ok(refresh_at(running, now));
            }
            group.live(now).count()
        };
        let timings = &self.world.config.timings;
        let pending = self.world.draw(timings.refresh_pending, 0.0);
        let launches: Vec<chrono::Duration> = (0..live)
            .map(|_| self.world.draw(timings.instance_launch, 0.0))
            .collect();
        let warmup = self.world.draw(timings.instance_warmup, 0.0);
        let draining = self.world.draw(timings.deregistration_delay, 0.0);
        let in_progress_from = now + pending;
        let in_service = launches
            .iter()
            .map(|took| in_progress_from + *took)
            .max()
            .unwrap_or(in_progress_from);
        let completes = in_service + warmup + draining;
        let mut state = self.world.state()?;
        let mut started = Vec::new();
        let refresh = match state.fleets.get_mut(&key) {
            Some(group) => {
                for server in group.instances.iter_mut().filter(|s| s.live_at(now)) {
                    server.terminated_from = Some(completes);
                }
                for took in &launches {
                    let id = group.next_id();
                    group.instances.push(SimServer {
                        id: id.clone(),
                        launched: in_progress_from,
                        healthy_from: in_progress_from + *took,
                        broken: false,
                        terminated_from: None,
                    });
                    started.push((id, *took));
                }
                let refresh = SimRefresh {
                    id: format!("refresh-{:08}", group.refreshes.len() + 1),
                    started: now,
                    in_progress_from,
                    completes,
                };
                group.refreshes.push(refresh.clone());
                refresh
            }
            None => return Err(group_not_found(fleet)),
        };
        for (id, took) in started {
            World::begin(&mut state, "instance", &id, in_progress_from, took);
        }
        World::begin(
            &mut state,
            "instance-refresh",
            &refresh.id,
            now,
            completes - now,
        );
        Ok(refresh_at(&refresh, now))
    }

    async fn describe_instance_refresh(
        &self,
        fleet: &FleetRef,
        refresh_id: &str,
    ) -> DrResult<InstanceRefresh> {
        let region = self.fleet_region(fleet)?;
        self.world.api_call("DescribeInstanceRefreshes")?;
        let now = clock::now();
        let mut state = self.world.state()?;
        let refresh = state
            .fleets
            .get(&(region, fleet.auto_scaling_group.clone()))
            .ok_or_else(|| group_not_found(fleet))?
            .refreshes
            .iter()
            .find(|r| r.id == refresh_id)
            .cloned()
            .ok_or_else(|| DrError::NotFound(format!("instance refresh {refresh_id} not found")))?;
        World::observe(&mut state, "instance-refresh", refresh_id, now);
        Ok(refresh_at(&refresh, now))
    }
}

fn group_not_found(fleet: &FleetRef) -> DrError {
    DrError::NotFound(format!(
        "Auto Scaling group {} not found",
        fleet.auto_scaling_group
    ))
}

fn refresh_at(refresh: &SimRefresh, now: DateTime<Utc>) -> InstanceRefresh {
    InstanceRefresh {
        refresh_id: refresh.id.clone(),
        status: refresh.status_at(now).to_owned(),
        percentage_complete: u32::try_from(refresh.percentage_at(now)).ok(),
        started_at: Some(refresh.started),
    }
}

/// The application's health URL, simulated: the load balancer routes to
/// the servers that pass its check, in any region that answers; with none,
/// it answers 503 (with every target failing, an Application Load Balancer
/// fails open to them, and they answer errors). A GET takes an API call's
/// time.
#[async_trait]
impl HealthCheck for SimServices {
    async fn check(
        &self,
        url: &str,
        _timeout_ms: u64,
        expected: u16,
    ) -> DrResult<HealthObservation> {
        let took = self.world.draw(self.world.config.timings.api_call, 0.0);
        clock::advance(took);
        let now = clock::now();
        let (serving, release_fails) = {
            let state = self.world.state()?;
            let serving = state
                .fleets
                .iter()
                .filter(|((region, _), _)| !state.down_regions.contains(region))
                .any(|(_, group)| group.live(now).any(|s| s.passes_at(now)));
            let release_fails = state
                .deployments
                .values()
                .any(|d| d.broken.contains(d.serving_hash(now)));
            (serving, release_fails)
        };
        let status = match (serving, release_fails) {
            (false, _) => 503,
            (true, true) => 500,
            (true, false) => 200,
        };
        Ok(HealthObservation {
            url: url.to_owned(),
            status: Some(status),
            healthy: status == expected,
            latency_ms: took.num_milliseconds().max(0) as u64,
            detail: (status != expected).then(|| {
                if status == 500 {
                    "the release the pods run answers errors (simulated)"
                } else {
                    "no server passes the load balancer's check (simulated)"
                }
                .to_owned()
            }),
            checked_at: now,
        })
    }
}

impl SimServices {
    /// The region of a fleet reference: its own, else the home region; a
    /// region that is down does not answer.
    fn fleet_region(&self, fleet: &FleetRef) -> DrResult<String> {
        let region = fleet
            .region
            .clone()
            .unwrap_or_else(|| self.world.config.home_region.clone());
        if self.world.state()?.down_regions.contains(&region) {
            return Err(DrError::Unavailable(format!(
                "Auto Scaling in {region} does not answer (the region is down, simulated)"
            )));
        }
        Ok(region)
    }
}

/// WAF, simulated: IP sets of one IP version each, updated whole under an
/// optimistic lock (a stale token is WAFOptimisticLockException, `Conflict`;
/// an address of the other version is refused, as AWS refuses it), at most
/// 10,000 addresses (WAF's quota per set).
#[async_trait]
impl Firewall for SimServices {
    async fn get_ip_set(&self, ip_set: &IpSetRef) -> DrResult<IpSetContents> {
        self.world.api_call("GetIPSet")?;
        let state = self.world.state()?;
        let set = state
            .ip_sets
            .get(&ip_set.id)
            .ok_or_else(|| ip_set_not_found(ip_set))?;
        Ok(IpSetContents {
            addresses: set.addresses.clone(),
            lock_token: set.lock_token.to_string(),
            ip_version: Some(set.ip_version.clone()),
        })
    }

    async fn update_ip_set(
        &self,
        ip_set: &IpSetRef,
        addresses: &[String],
        lock_token: &str,
    ) -> DrResult<()> {
        self.world.api_call("UpdateIPSet")?;
        let mut state = self.world.state()?;
        let set = state
            .ip_sets
            .get_mut(&ip_set.id)
            .ok_or_else(|| ip_set_not_found(ip_set))?;
        if set.lock_token.to_string() != lock_token {
            return Err(DrError::Conflict(format!(
                "WAFOptimisticLockException: {} changed since it was read",
                ip_set.name
            )));
        }
        let v6 = set.ip_version == "IPV6";
        if let Some(other) = addresses.iter().find(|a| {
            a.parse::<ipnet::IpNet>()
                .map(|n| matches!(n, ipnet::IpNet::V6(_)) != v6)
                .unwrap_or(true)
        }) {
            return Err(DrError::InvalidInput(format!(
                "WAFInvalidParameterException: {other:?} is not an {} CIDR block",
                set.ip_version
            )));
        }
        if addresses.len() > 10_000 {
            return Err(DrError::InvalidInput(format!(
                "WAFLimitsExceededException: {} addresses in {}",
                addresses.len(),
                ip_set.name
            )));
        }
        set.addresses = addresses.to_vec();
        set.lock_token += 1;
        Ok(())
    }
}

fn ip_set_not_found(ip_set: &IpSetRef) -> DrError {
    DrError::NotFound(format!(
        "WAFNonexistentItemException: IP set {} ({})",
        ip_set.name, ip_set.id
    ))
}

/// The users' topic, simulated: each batch is one PublishBatch call; every
/// message is accepted.
#[async_trait]
impl UserNotifier for SimServices {
    async fn send_batch(
        &self,
        topic: &str,
        messages: &[UserMessage],
    ) -> DrResult<Vec<UserDelivery>> {
        if messages.len() > USER_BATCH_MAX {
            return Err(DrError::InvalidInput(format!(
                "TooManyEntriesInBatchRequest: {} messages (at most {USER_BATCH_MAX})",
                messages.len()
            )));
        }
        self.world.data_call();
        let mut state = self.world.state()?;
        Ok(messages
            .iter()
            .map(|m| {
                state
                    .user_messages
                    .push((topic.to_owned(), m.user_id, m.notification_id.clone()));
                UserDelivery::Sent {
                    message_id: format!("sim-message-{}", state.user_messages.len()),
                }
            })
            .collect())
    }
}

/// The notification ledger (DynamoDB), simulated: a claim takes every
/// user or none.
#[async_trait]
impl NotificationLedger for SimServices {
    async fn entries(&self, incident: &str) -> DrResult<Vec<LedgerEntry>> {
        self.world.data_call();
        let state = self.world.state()?;
        Ok(state
            .ledger
            .iter()
            .filter(|((i, _), _)| i == incident)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn claim(&self, incident: &str, users: &[i64], at: DateTime<Utc>) -> DrResult<()> {
        self.world.data_call();
        let mut state = self.world.state()?;
        if let Some(sent) = users.iter().find(|u| {
            state
                .ledger
                .get(&(incident.to_owned(), **u))
                .is_some_and(|e| e.state == LedgerState::Sent)
        }) {
            return Err(DrError::Conflict(format!(
                "TransactionCanceledException: user {sent} of {incident} was told meanwhile"
            )));
        }
        for user in users {
            let entry = state
                .ledger
                .entry((incident.to_owned(), *user))
                .or_insert(LedgerEntry {
                    user_id: *user,
                    state: LedgerState::Sending,
                    claimed_at: at,
                    attempts: 0,
                    message_id: None,
                    sent_at: None,
                });
            entry.state = LedgerState::Sending;
            entry.claimed_at = at;
            entry.attempts += 1;
        }
        Ok(())
    }

    async fn mark_sent(
        &self,
        incident: &str,
        sent: &[(i64, String)],
        at: DateTime<Utc>,
    ) -> DrResult<()> {
        self.world.data_call();
        let mut state = self.world.state()?;
        for (user, message_id) in sent {
            if let Some(entry) = state.ledger.get_mut(&(incident.to_owned(), *user)) {
                entry.state = LedgerState::Sent;
                entry.message_id = Some(message_id.clone());
                entry.sent_at = Some(at);
            }
        }
        Ok(())
    }
}

/// The application's Kubernetes Deployment, simulated: a change of its
/// template (a rollback, a restart, an environment variable) rolls its pods
/// out over a rolling update's time, the revision history moves as
/// `kubectl rollout undo` moves it, and a migration job unapplies the
/// app's migrations down to its target after a job's time.
#[async_trait]
impl AppDeployment for SimServices {
    async fn describe_deployment(&self, deployment: &DeploymentRef) -> DrResult<DeploymentStatus> {
        self.world.data_call();
        let now = clock::now();
        let mut state = self.world.state()?;
        let d = deployment_of(&state, deployment)?;
        let current = d
            .revisions
            .iter()
            .find(|r| r.template_hash == d.current_hash)
            .cloned()
            .ok_or_else(|| DrError::Internal("the current template has no revision".into()))?;
        let done = now >= d.rolled_out_at;
        let rollout = RolloutObservation {
            generation: d.generation,
            observed_generation: d.generation,
            desired_replicas: Some(d.replicas),
            replicas: if done { d.replicas } else { d.replicas + 1 },
            updated_replicas: if done { d.replicas } else { d.replicas / 2 },
            available_replicas: d.replicas,
            progressing_reason: Some(
                if done {
                    "NewReplicaSetAvailable"
                } else {
                    "ReplicaSetUpdated"
                }
                .to_owned(),
            ),
        };
        let status = DeploymentStatus {
            deployment: deployment.clone(),
            current,
            revisions: d.revisions.clone(),
            paused: false,
            env: d.env.clone(),
            rollout,
        };
        let resource = format!("{}/{}", deployment.namespace, deployment.name);
        if done {
            World::observe(&mut state, "rollout", &resource, now);
        }
        Ok(status)
    }

    async fn rollout_restart(&self, deployment: &DeploymentRef) -> DrResult<()> {
        self.world.data_call();
        self.roll_out(deployment, |d| {
            // A restart annotates the template: a new one, same code.
            let broken = d.broken.contains(&d.current_hash);
            let hash = format!("{}-r{}", d.current_hash, d.generation + 1);
            if broken {
                d.broken.insert(hash.clone());
            }
            new_revision(d, &hash);
            Ok(Some(hash))
        })
    }

    async fn roll_back(&self, deployment: &DeploymentRef, to: &AppRevision) -> DrResult<u64> {
        self.world.data_call();
        let mut revision = 0;
        self.roll_out(deployment, |d| {
            if !d
                .revisions
                .iter()
                .any(|r| r.template_hash == to.template_hash)
            {
                return Err(DrError::NotFound(format!(
                    "revision {} is not in the rollout history",
                    to.revision
                )));
            }
            if d.current_hash == to.template_hash {
                revision = to.revision;
                return Ok(None);
            }
            // rollout undo: the old template becomes the newest revision.
            revision = new_revision(d, &to.template_hash);
            Ok(Some(to.template_hash.clone()))
        })?;
        Ok(revision)
    }

    async fn set_env(
        &self,
        deployment: &DeploymentRef,
        name: &str,
        value: Option<&str>,
    ) -> DrResult<()> {
        self.world.data_call();
        self.roll_out(deployment, |d| {
            if d.env.get(name).map(String::as_str) == value {
                return Ok(None);
            }
            match value {
                Some(v) => d.env.insert(name.to_owned(), v.to_owned()),
                None => d.env.remove(name),
            };
            let broken = d.broken.contains(&d.current_hash);
            let hash = format!("{}-e{}", d.current_hash, d.generation + 1);
            if broken {
                d.broken.insert(hash.clone());
            }
            new_revision(d, &hash);
            Ok(Some(hash))
        })
    }

    async fn run_migration(&self, deployment: &DeploymentRef, job: &MigrationJob) -> DrResult<()> {
        job.validate()?;
        self.world.data_call();
        let took = self
            .world
            .draw(self.world.config.timings.migration_job, 0.0);
        let now = clock::now();
        let mut state = self.world.state()?;
        let d = deployment_mut(&mut state, deployment)?;
        if d.jobs.contains_key(&job.name) {
            return Ok(());
        }
        d.jobs.insert(
            job.name.clone(),
            (now + took, job.app.clone(), job.target.clone()),
        );
        World::begin(&mut state, "migration", &job.name, now, took);
        Ok(())
    }

    async fn migration_state(&self, deployment: &DeploymentRef, job: &str) -> DrResult<JobState> {
        self.world.data_call();
        let now = clock::now();
        let mut state = self.world.state()?;
        let d = deployment_mut(&mut state, deployment)?;
        let (done_at, app, target) = d
            .jobs
            .get(job)
            .cloned()
            .ok_or_else(|| DrError::NotFound(format!("job {job} not found")))?;
        if now < done_at {
            return Ok(JobState::Running);
        }
        let applied = d.applied.entry(app.clone()).or_default();
        let keep = if target == "zero" {
            0
        } else {
            match applied.iter().position(|m| *m == target) {
                Some(i) => i + 1,
                None => {
                    return Ok(JobState::Failed {
                        reason: format!("CommandError: {app} has no migration {target} applied"),
                    })
                }
            }
        };
        applied.truncate(keep);
        World::observe(&mut state, "migration", job, now);
        Ok(JobState::Succeeded {
            output: format!("Unapplied {app} down to {target} (simulated)"),
        })
    }

    async fn migrations(
        &self,
        deployment: &DeploymentRef,
        revision: u64,
        app: &str,
    ) -> DrResult<MigrationHistory> {
        self.world.data_call();
        let state = self.world.state()?;
        let d = deployment_of(&state, deployment)?;
        let hash = d
            .revisions
            .iter()
            .find(|r| r.revision == revision)
            .map(|r| base_template(&r.template_hash))
            .ok_or_else(|| DrError::NotFound(format!("revision {revision} not found")))?;
        Ok(MigrationHistory {
            applied: d.applied.get(app).cloned().unwrap_or_default(),
            known: d
                .known
                .get(hash)
                .and_then(|k| k.get(app))
                .cloned()
                .unwrap_or_default(),
        })
    }
}

impl SimServices {
    /// Changes the deployment's template with `change` (which names the new
    /// template, or `None` when nothing changes) and rolls it out.
    fn roll_out(
        &self,
        deployment: &DeploymentRef,
        change: impl FnOnce(&mut crate::world::SimDeployment) -> DrResult<Option<String>>,
    ) -> DrResult<()> {
        let took = self.world.draw(self.world.config.timings.pod_rollout, 0.0);
        let now = clock::now();
        let mut state = self.world.state()?;
        let d = deployment_mut(&mut state, deployment)?;
        if let Some(hash) = change(d)? {
            d.roll_out(&hash, now, took);
            let resource = format!("{}/{}", deployment.namespace, deployment.name);
            World::begin(&mut state, "rollout", &resource, now, took);
        }
        Ok(())
    }
}

/// The template a derived one (a restart's, an environment change's) was
/// made from: its image and migration files.
fn base_template(hash: &str) -> &str {
    hash.split('-').next().unwrap_or(hash)
}

/// Adds `hash` as the newest revision (or moves its revision up, as
/// `rollout undo` does); returns its number.
fn new_revision(d: &mut crate::world::SimDeployment, hash: &str) -> u64 {
    let next = d.revisions.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
    let image = d
        .revisions
        .iter()
        .find(|r| base_template(&r.template_hash) == base_template(hash))
        .map(|r| r.image.clone())
        .unwrap_or_default();
    d.revisions.retain(|r| r.template_hash != hash);
    d.revisions.push(AppRevision {
        revision: next,
        image,
        template_hash: hash.to_owned(),
        change_cause: None,
        created_at: Some(clock::now()),
    });
    next
}

fn deployment_of<'s>(
    state: &'s State,
    d: &DeploymentRef,
) -> DrResult<&'s crate::world::SimDeployment> {
    state
        .deployments
        .get(&(d.namespace.clone(), d.name.clone()))
        .ok_or_else(|| DrError::NotFound(format!("deployments.apps \"{}\" not found", d.name)))
}

fn deployment_mut<'s>(
    state: &'s mut State,
    d: &DeploymentRef,
) -> DrResult<&'s mut crate::world::SimDeployment> {
    state
        .deployments
        .get_mut(&(d.namespace.clone(), d.name.clone()))
        .ok_or_else(|| DrError::NotFound(format!("deployments.apps \"{}\" not found", d.name)))
}

/// The error of a call into what the simulated account does not model.
pub fn not_modelled(what: &str) -> DrError {
    DrError::Unavailable(format!(
        "the simulated AWS does not model {what}: drctl estimate covers the scenarios that do not need it"
    ))
}

/// SQL, simulated: a database answers when its instance serves and our
/// address is not quarantined; a lost host costs the connect timeout.
#[async_trait]
impl SqlTarget for SimServices {
    async fn commit_damage(
        &self,
        target: &DatabaseTarget,
        // A simulated copy is damaged once: a retry finds its moment.
        _key: &str,
        kind: DamageKind,
        rows: u32,
        // The simulated clock moves only with the execution's waits.
        _not_before: Option<chrono::DateTime<chrono::Utc>>,
    ) -> DrResult<Damage> {
        let id = self.session(target, true)?;
        let before = match self.world.damaged_since(&id)? {
            Some(before) => before,
            None => {
                let before = clock::now();
                self.world.damage(&id, before)?;
                before
            }
        };
        Ok(Damage {
            kind,
            table: "users".to_owned(),
            rows: u64::from(rows),
            before,
            at: clock::now(),
        })
    }

    async fn write_marker(&self, target: &DatabaseTarget, marker: &str) -> DrResult<DateTime<Utc>> {
        let id = self.session(target, true)?;
        let now = clock::now();
        let mut state = self.world.state()?;
        let replicas: Vec<(InstanceId, f64)> = state
            .instances
            .values()
            .filter(|i| {
                i.phase_at(now)
                    .is_some_and(|p| p.source.as_ref() == Some(&id))
            })
            .map(|i| (i.id.clone(), i.lag_seconds))
            .collect();
        if let Some(primary) = state.instances.get_mut(&id) {
            primary.markers.insert(marker.to_owned(), now);
        }
        for (replica, lag) in replicas {
            if let Some(r) = state.instances.get_mut(&replica) {
                let arrives = now + chrono::Duration::milliseconds((lag * 1000.0) as i64);
                r.markers.insert(marker.to_owned(), arrives);
            }
        }
        Ok(now)
    }

    async fn marker_present(&self, target: &DatabaseTarget, marker: &str) -> DrResult<bool> {
        let id = self.session(target, false)?;
        let now = clock::now();
        let state = self.world.state()?;
        Ok(state
            .instances
            .get(&id)
            .and_then(|i| i.markers.get(marker))
            .is_some_and(|at| *at <= now))
    }

    async fn probe(&self, target: &DatabaseTarget, kind: ProbeKind) -> DrResult<ProbeReport> {
        let started = clock::now();
        let unhealthy = |failure: ProbeFailure, reason: String| ProbeReport {
            healthy: false,
            reason: Some(reason),
            failure: Some(failure),
            in_recovery: None,
            server_version: None,
            latency_ms: (clock::now() - started).num_milliseconds().max(0) as u64,
        };
        let (id, answers, replica) = {
            let now = clock::now();
            let state = self.world.state()?;
            match World::resolve(&state, &target.endpoint.address) {
                None => {
                    return Ok(unhealthy(
                        ProbeFailure::DnsUnresolvable,
                        format!("{} does not resolve", target.endpoint.address),
                    ))
                }
                Some(id) => {
                    let instance = state.instances.get(&id);
                    let answers = instance.is_some_and(|i| i.answers_sql(now, &state.down_regions));
                    let replica = instance
                        .and_then(|i| i.phase_at(now))
                        .is_some_and(|p| p.source.is_some());
                    (id, answers, replica)
                }
            }
        };
        if !answers {
            clock::advance(chrono::Duration::seconds(
                target.connect_timeout_seconds.max(1) as i64,
            ));
            return Ok(unhealthy(
                ProbeFailure::TimedOut,
                format!(
                    "no answer from {id} within {} s (simulated)",
                    target.connect_timeout_seconds
                ),
            ));
        }
        clock::advance(self.world.draw(self.world.config.timings.sql_session, 0.0));
        if !self.logs_in(&id, target)? {
            return Ok(unhealthy(
                ProbeFailure::Authentication,
                format!(
                    "password authentication failed for user \"{}\" (simulated)",
                    target.username
                ),
            ));
        }
        if kind == ProbeKind::ReadWrite && replica {
            return Ok(unhealthy(
                ProbeFailure::ReadOnly,
                format!("{id} is a read replica: cannot execute INSERT in a read-only transaction"),
            ));
        }
        Ok(ProbeReport {
            healthy: true,
            reason: None,
            failure: None,
            in_recovery: Some(replica),
            server_version: Some("15.8".to_owned()),
            latency_ms: (clock::now() - started).num_milliseconds().max(0) as u64,
        })
    }

    async fn write_grants(
        &self,
        target: &DatabaseTarget,
        role: &str,
        _schema: &str,
    ) -> DrResult<Vec<TableGrant>> {
        validate_sql_name("role", role)?;
        let id = self.session(target, false)?;
        let state = self.world.state()?;
        Ok(state
            .instances
            .get(&id)
            .and_then(|i| i.grants.get(role))
            .map(|g| g.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn revoke_writes(
        &self,
        target: &DatabaseTarget,
        role: &str,
        _schema: &str,
        grants: &[TableGrant],
    ) -> DrResult<WritesRevoked> {
        validate_sql_name("role", role)?;
        let id = self.session(target, true)?;
        let now = clock::now();
        let mut state = self.world.state()?;
        if let Some(instance) = state.instances.get_mut(&id) {
            if let Some(held) = instance.grants.get_mut(role) {
                for grant in grants {
                    held.remove(grant);
                }
            }
            instance.writes_stopped_at.get_or_insert(now);
        }
        Ok(WritesRevoked {
            sessions_ended: 0,
            definer_functions: Vec::new(),
        })
    }

    async fn grant_writes(
        &self,
        target: &DatabaseTarget,
        role: &str,
        _schema: &str,
        grants: &[TableGrant],
    ) -> DrResult<()> {
        validate_sql_name("role", role)?;
        let id = self.session(target, true)?;
        let mut state = self.world.state()?;
        if let Some(instance) = state.instances.get_mut(&id) {
            instance
                .grants
                .entry(role.to_owned())
                .or_default()
                .extend(grants.iter().cloned());
            instance.writes_stopped_at = None;
        }
        Ok(())
    }

    /// The rows the platform wrote between the older copy's moment and the
    /// newer's (at [`crate::WRITES_PER_HOUR`]), and the damaged rows when
    /// only the newer holds the damage.
    async fn row_changes(
        &self,
        newer: &DatabaseTarget,
        older: &DatabaseTarget,
        _schema: &str,
    ) -> DrResult<Vec<TableChanges>> {
        let newer_id = self.session(newer, false)?;
        let older_id = self.session(older, false)?;
        let now = clock::now();
        let state = self.world.state()?;
        let of = |id: &InstanceId| {
            state
                .instances
                .get(id)
                .ok_or_else(|| DrError::NotFound(format!("{id}")))
        };
        let (n, o) = (of(&newer_id)?, of(&older_id)?);
        let hours = ((n.data_moment(now) - o.data_moment(now))
            .num_seconds()
            .max(0) as f64)
            / 3600.0;
        let damage_only_in_newer = n.damaged_at(now) && !o.damaged_at(now);
        // Comparing two copies reads both in full.
        let gib = n.gib.max(o.gib);
        drop(state);
        clock::advance(
            self.world
                .draw(self.world.config.timings.integrity_check, gib),
        );
        Ok(crate::WRITES_PER_HOUR
            .iter()
            .map(|(table, per_hour)| {
                let inserted = (*per_hour as f64 * hours).round() as u64;
                let updated = if damage_only_in_newer && *table == "users" {
                    crate::DAMAGED_ROWS
                } else {
                    0
                };
                let mut keys: Vec<(RowChange, Vec<String>)> = (1..=inserted)
                    .map(|k| (RowChange::Inserted, vec![format!("{}", 1_000_000 + k)]))
                    .collect();
                keys.extend((1..=updated).map(|k| (RowChange::Updated, vec![k.to_string()])));
                TableChanges {
                    table: (*table).to_owned(),
                    key_columns: vec!["id".to_owned()],
                    inserted,
                    updated,
                    deleted: 0,
                    keys,
                    newer_rows: 1_000_000 + inserted,
                    older_rows: 1_000_000,
                }
            })
            .collect())
    }

    async fn set_role_password(
        &self,
        target: &DatabaseTarget,
        role: &str,
        password: &SecretString,
    ) -> DrResult<()> {
        dr_core::guard::master_password(password)?;
        validate_sql_name("role", role)?;
        let id = self.session(target, true)?;
        // ALTER ROLE: at once, on the primary and its replicas.
        let now = clock::now();
        World::set_login(
            &mut *self.world.state()?,
            &id,
            role,
            password.expose_secret(),
            now,
        );
        Ok(())
    }

    async fn row_counts(&self, target: &DatabaseTarget) -> DrResult<BTreeMap<String, u64>> {
        let id = self.session(target, false)?;
        let state = self.world.state()?;
        Ok(state
            .instances
            .get(&id)
            .map(|i| i.row_counts.clone())
            .unwrap_or_default())
    }

    async fn revoke_api_keys(
        &self,
        target: &DatabaseTarget,
        users: Option<&[i64]>,
        _at: DateTime<Utc>,
    ) -> DrResult<ApiKeysRevoked> {
        self.session(target, true)?;
        let mut state = self.world.state()?;
        let mut revoked = Vec::new();
        let mut already_inactive = 0;
        for (key, (user, active)) in state.platform.api_keys.iter_mut() {
            if users.is_some_and(|u| !u.contains(user)) {
                continue;
            }
            if *active {
                *active = false;
                revoked.push(*key);
            } else {
                already_inactive += 1;
            }
        }
        Ok(ApiKeysRevoked {
            revoked,
            already_inactive,
        })
    }

    async fn audit_activity(
        &self,
        target: &DatabaseTarget,
        networks: &[String],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        max_rows: usize,
    ) -> DrResult<AuditActivity> {
        let networks: Vec<ipnet::IpNet> = networks
            .iter()
            .map(|n| {
                n.parse::<ipnet::IpNet>()
                    .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| DrError::InvalidInput(format!("{n:?} is not a network")))
            })
            .collect::<DrResult<_>>()?;
        self.session(target, false)?;
        let state = self.world.state()?;
        let rows: Vec<&AuditRow> = state
            .platform
            .audit
            .iter()
            .filter(|r| r.created_at >= from && r.created_at < to)
            .filter(|r| {
                r.ip_address
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| networks.iter().any(|n| n.contains(&ip)))
            })
            .collect();
        let mut by_action = BTreeMap::new();
        for r in &rows {
            *by_action.entry(r.action_type.clone()).or_insert(0) += 1;
        }
        let users: BTreeSet<i64> = rows.iter().filter_map(|r| r.user_id).collect();
        Ok(AuditActivity {
            events: rows.len() as u64,
            by_action,
            users: users.into_iter().collect(),
            first_seen: rows.iter().map(|r| r.created_at).min(),
            last_seen: rows.iter().map(|r| r.created_at).max(),
            truncated: rows.len() > max_rows,
            rows: rows.into_iter().take(max_rows).cloned().collect(),
        })
    }
}

impl SimServices {
    /// Whether `target`'s user and password log in to `id` now; a login
    /// with a master password RDS has just applied is the moment our call
    /// sees that change done.
    fn logs_in(&self, id: &InstanceId, target: &DatabaseTarget) -> DrResult<bool> {
        let now = clock::now();
        let mut state = self.world.state()?;
        let takes = state
            .instances
            .get(id)
            .is_none_or(|i| i.takes(&target.username, target.password.expose_secret(), now));
        if takes {
            World::observe(&mut state, "master-password", id.as_str(), now);
        }
        Ok(takes)
    }

    /// Opens a session to the database `target` names: its instance, or
    /// `Unavailable` after the connect timeout when it does not answer.
    fn session(&self, target: &DatabaseTarget, write: bool) -> DrResult<InstanceId> {
        if target.password.expose_secret().is_empty() {
            return Err(DrError::InvalidInput("an empty password".into()));
        }
        let now = clock::now();
        let (id, answers, replica) = {
            let state = self.world.state()?;
            let id = World::resolve(&state, &target.endpoint.address).ok_or_else(|| {
                DrError::Unavailable(format!("{} does not resolve", target.endpoint.address))
            })?;
            let instance = state.instances.get(&id);
            (
                id.clone(),
                instance.is_some_and(|i| i.answers_sql(now, &state.down_regions)),
                instance
                    .and_then(|i| i.phase_at(now))
                    .is_some_and(|p| p.source.is_some()),
            )
        };
        if !answers {
            clock::advance(chrono::Duration::seconds(
                target.connect_timeout_seconds.max(1) as i64,
            ));
            return Err(DrError::Unavailable(format!(
                "{id} does not answer within {} s (simulated)",
                target.connect_timeout_seconds
            )));
        }
        if !self.logs_in(&id, target)? {
            return Err(DrError::InvalidInput(format!(
                "password authentication failed for user \"{}\" on {id} (simulated)",
                target.username
            )));
        }
        if write && replica {
            return Err(DrError::Unavailable(format!(
                "{id} is a read replica: cannot write (simulated)"
            )));
        }
        clock::advance(self.world.draw(self.world.config.timings.sql_session, 0.0));
        Ok(id)
    }
}

/// The integrity verifier over a simulated database: it reads every table,
/// which takes time per GiB (on a restore still loading from S3).
#[async_trait]
impl IntegrityVerifier for SimServices {
    async fn verify(
        &self,
        target: &DatabaseTarget,
        baseline: Option<&BTreeMap<String, u64>>,
        tolerance: f64,
        checks: &[NamedCheck],
    ) -> DrResult<IntegritySummary> {
        let started = clock::now();
        let id = self.session(target, false)?;
        let (gib, rows, damaged) = {
            let state = self.world.state()?;
            let instance = state
                .instances
                .get(&id)
                .ok_or_else(|| DrError::NotFound(format!("{id}")))?;
            (
                instance.gib,
                instance.row_counts.clone(),
                instance.damaged_at(clock::now()),
            )
        };
        let checking = clock::now();
        clock::advance(
            self.world
                .draw(self.world.config.timings.integrity_check, gib),
        );
        self.world.state()?.checks.push((checking, clock::now()));
        let mut findings = Vec::new();
        if let Some(baseline) = baseline {
            for (table, expected) in baseline {
                let found = rows.get(table).copied().unwrap_or(0);
                let allowed = (*expected as f64 * tolerance.max(0.0)).round() as u64;
                if found.abs_diff(*expected) > allowed {
                    findings.push(format!("{table}: {found} rows, expected {expected}"));
                }
            }
        }
        // Every named check finds the damage where the data holds it (the
        // simulated damage breaks what the checks look for).
        let failed_checks: Vec<IntegrityFinding> = if damaged {
            checks
                .iter()
                .map(|c| IntegrityFinding {
                    name: c.name.clone(),
                    kind: "custom".to_owned(),
                    status: "failed".to_owned(),
                    count: Some(crate::DAMAGED_ROWS),
                    samples: Vec::new(),
                    detail: Some("the simulated damage".to_owned()),
                })
                .collect()
        } else {
            Vec::new()
        };
        findings.extend(
            failed_checks
                .iter()
                .map(|f| format!("{}: {} rows", f.name, crate::DAMAGED_ROWS)),
        );
        Ok(IntegritySummary {
            passed: findings.is_empty(),
            findings,
            failed_checks,
            row_counts: rows,
            checks_run: checks.len() + baseline.map_or(0, BTreeMap::len) + 3,
            duration_ms: (clock::now() - started).num_milliseconds().max(0) as u64,
        })
    }
}

impl World {
    /// Marks `id`'s host lost from `at`: SQL connections to it time out;
    /// with `reported`, RDS reports it `failed` too (otherwise it still
    /// says `available`, as for a hung server or a partition).
    pub fn lose_host(&self, id: &InstanceId, at: DateTime<Utc>, reported: bool) -> DrResult<()> {
        let now = at;
        let mut state = self.state()?;
        let instance = state
            .instances
            .get_mut(id)
            .ok_or_else(|| DrError::NotFound(format!("no simulated instance {id}")))?;
        instance.serving = Serving::Unreachable;
        if reported {
            let source = instance.phase_at(now).and_then(|p| p.source.clone());
            instance.phases.push(crate::world::Phase {
                from: now,
                status: InstanceStatus::Failed,
                source,
            });
        }
        Ok(())
    }
}
