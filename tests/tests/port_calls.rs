//! Each function's declared port operations (from which its IAM policy is
//! checked) cover what its handler really calls: every handler runs here
//! against recording ports, and every call it makes must be declared.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use dr_core::*;
use dr_scenarios::{dispatch, Function, Ports};
use secrecy::SecretString;
use serde_json::{json, Value};

#[derive(Default)]
struct Recorder {
    calls: Mutex<BTreeSet<PortOperation>>,
    /// Passwords set on the database (besides the secret's "p"): a login
    /// with one succeeds.
    accepted: Mutex<BTreeSet<String>>,
}

impl Recorder {
    fn accept(&self, password: &SecretString) {
        use secrecy::ExposeSecret;
        if let Ok(mut accepted) = self.accepted.lock() {
            accepted.insert(password.expose_secret().to_owned());
        }
    }
    fn accepts(&self, password: &SecretString) -> bool {
        use secrecy::ExposeSecret;
        let p = password.expose_secret();
        p == "p" || self.accepted.lock().is_ok_and(|a| a.contains(p))
    }
    fn record(&self, op: PortOperation) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.insert(op);
        }
    }
    fn take(&self) -> BTreeSet<PortOperation> {
        self.calls
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("id")
}

fn instance(name: &str) -> InstanceDescription {
    let replica_of = match name {
        "muejam-db-prod-replica" => Some("muejam-db-prod"),
        "drill-muejam-db-prod-d1-rep" => Some("drill-muejam-db-prod-d1"),
        _ => None,
    };
    let mut tags = Tags::new();
    if name == "muejam-db-prod" {
        tags.insert("DrDrill".into(), "in-scope".into());
    }
    if name == CANDIDATE {
        tags.insert(EPHEMERAL_TAG.into(), "true".into());
        tags.insert("dr:recovery".into(), "r1".into());
        tags.insert("dr:candidate".into(), "1800000000".into());
    }
    if name == REGION_RESTORE {
        tags.insert(EPHEMERAL_TAG.into(), "true".into());
        tags.insert("dr:recovery".into(), "r1".into());
    }
    if name.starts_with("drill-") {
        tags.insert(EPHEMERAL_TAG.into(), "true".into());
        tags.insert("dr:drill".into(), "d1".into());
        tags.insert("dr:drill-source".into(), "muejam-db-prod".into());
    }
    InstanceDescription {
        // Where RDS placed it: a replica or a restore made from it must go
        // there too (the fake refuses one placed nowhere).
        network: Some(NetworkPlacement {
            subnet_group: Some("muejam-private".into()),
            security_groups: vec!["sg-db".into()],
            parameter_group: None,
        }),
        instance_id: id(name),
        status: InstanceStatus::Available,
        role: if replica_of.is_some() {
            InstanceRole::Replica
        } else {
            InstanceRole::Primary
        },
        endpoint: Some(Endpoint {
            address: format!("{name}.example"),
            port: 5432,
        }),
        engine: "postgres".into(),
        engine_version: "15".into(),
        availability_zone: Some("us-east-1a".into()),
        storage_encrypted: true,
        replication_source: replica_of.map(id),
        read_replicas: vec![],
        replica_lag: replica_of.map(|_| ReplicaLag {
            seconds: 1.0,
            bytes: Some(0),
        }),
        // A drill's fresh restore has no backup of its own yet.
        earliest_restorable_time: (!name.starts_with("drill-"))
            .then(|| Utc::now() - chrono::Duration::days(7)),
        latest_restorable_time: Some(Utc::now()),
        created_at: Utc::now(),
        tags,
    }
}

/// A snapshot of the primary, or a copy of one in the backup region.
fn snapshot(name: &str, copy_of: Option<&str>) -> SnapshotDescription {
    let mut tags = Tags::new();
    if copy_of.is_some() {
        tags.insert("dr:copy-of".into(), "muejam".into());
        tags.insert("dr:verified".into(), "2027-01-15T08:00:00Z".into());
    }
    SnapshotDescription {
        snapshot_id: SnapshotId::parse(name).expect("id"),
        source_instance_id: id("muejam-db-prod"),
        snapshot_type: SnapshotType::Manual,
        status: SnapshotStatus::Available,
        created_at: Utc::now(),
        size_bytes: 1,
        encrypted: true,
        engine_version: "15".into(),
        region: Some(
            if copy_of.is_some() {
                "us-west-2"
            } else {
                "us-east-1"
            }
            .into(),
        ),
        tags,
        row_counts: Some(BTreeMap::from([("users".to_owned(), 10)])),
        original_created_at: copy_of.map(|_| Utc::now()),
        copied_from: copy_of.map(|s| SnapshotSource {
            snapshot: s.to_owned(),
            region: Some("us-east-1".into()),
        }),
        kms_key_id: Some("alias/dr".into()),
        percent_progress: Some(100),
    }
}

/// Every region's plane is the same recording fake.
struct FakeRegions(Arc<Recorder>);

impl RegionalControlPlanes for FakeRegions {
    fn home_region(&self) -> &str {
        "us-east-1"
    }
    fn control_plane(&self, region: &str) -> DrResult<Arc<dyn DatabaseControlPlane>> {
        validate_region(region)?;
        Ok(Arc::new(Fake(Arc::clone(&self.0))))
    }
}

/// The region failover's restore (recovery r1), not yet switched to.
const REGION_RESTORE: &str = "muejam-db-prod-dr1";

/// The application fleet: two instances of four allowed.
#[async_trait]
impl AppFleet for Fake {
    async fn describe_fleet(&self, _f: &FleetRef) -> DrResult<FleetStatus> {
        self.0.record(PortOperation::FleetDescribe);
        Ok(FleetStatus {
            desired_capacity: 2,
            min_size: 0,
            max_size: 4,
            instances: vec![],
            healthy_targets: 2,
            unhealthy_targets: 0,
        })
    }
    async fn set_desired_capacity(&self, _f: &FleetRef, _d: u32) -> DrResult<()> {
        self.0.record(PortOperation::FleetSetDesiredCapacity);
        Ok(())
    }
    async fn start_instance_refresh(&self, _f: &FleetRef) -> DrResult<InstanceRefresh> {
        self.0.record(PortOperation::FleetStartRefresh);
        Ok(InstanceRefresh {
            refresh_id: "rf-1".into(),
            status: "Pending".into(),
            percentage_complete: None,
            started_at: None,
        })
    }
    async fn describe_instance_refresh(&self, _f: &FleetRef, r: &str) -> DrResult<InstanceRefresh> {
        self.0.record(PortOperation::FleetDescribeRefresh);
        Ok(InstanceRefresh {
            refresh_id: r.to_owned(),
            status: "Successful".into(),
            percentage_complete: Some(100),
            started_at: None,
        })
    }
}

/// The deployment muejam/muejam-api: revision 2 (three migrations) after
/// revision 1 (two).
#[async_trait]
impl AppDeployment for Fake {
    async fn describe_deployment(&self, d: &DeploymentRef) -> DrResult<DeploymentStatus> {
        self.0.record(PortOperation::DeploymentDescribe);
        let revision = |n: u64, hash: &str| AppRevision {
            revision: n,
            image: format!("muejam-api:{n}"),
            template_hash: hash.into(),
            change_cause: None,
            created_at: None,
        };
        Ok(DeploymentStatus {
            deployment: d.clone(),
            current: revision(2, "b"),
            revisions: vec![revision(1, "a"), revision(2, "b")],
            paused: false,
            env: BTreeMap::new(),
            rollout: RolloutObservation {
                generation: 1,
                observed_generation: 1,
                desired_replicas: Some(2),
                replicas: 2,
                updated_replicas: 2,
                available_replicas: 2,
                progressing_reason: None,
            },
        })
    }
    async fn rollout_restart(&self, _d: &DeploymentRef) -> DrResult<()> {
        self.0.record(PortOperation::DeploymentRestart);
        Ok(())
    }
    async fn roll_back(&self, _d: &DeploymentRef, _to: &AppRevision) -> DrResult<u64> {
        self.0.record(PortOperation::DeploymentRollBack);
        Ok(3)
    }
    async fn set_env(&self, _d: &DeploymentRef, _n: &str, _v: Option<&str>) -> DrResult<()> {
        self.0.record(PortOperation::DeploymentSetEnv);
        Ok(())
    }
    async fn run_migration(&self, _d: &DeploymentRef, _j: &MigrationJob) -> DrResult<()> {
        self.0.record(PortOperation::DeploymentRunMigration);
        Ok(())
    }
    async fn migration_state(&self, _d: &DeploymentRef, _j: &str) -> DrResult<JobState> {
        self.0.record(PortOperation::DeploymentMigrationState);
        Ok(JobState::Succeeded {
            output: "Unapplying muejam.0003_featured_stories... OK".into(),
        })
    }
    async fn migrations(
        &self,
        _d: &DeploymentRef,
        revision: u64,
        _a: &str,
    ) -> DrResult<MigrationHistory> {
        self.0.record(PortOperation::DeploymentMigrations);
        let all = [
            "0001_story_views",
            "0002_story_views_source",
            "0003_featured_stories",
        ]
        .map(String::from)
        .to_vec();
        Ok(MigrationHistory {
            applied: all.clone(),
            known: if revision == 2 {
                all
            } else {
                all[..2].to_vec()
            },
        })
    }
}

/// The health URL answers 200.
#[async_trait]
impl HealthCheck for Fake {
    async fn check(&self, url: &str, _t: u64, expected: u16) -> DrResult<HealthObservation> {
        self.0.record(PortOperation::HealthGet);
        Ok(HealthObservation {
            url: url.to_owned(),
            status: Some(200),
            healthy: expected == 200,
            latency_ms: 1,
            detail: None,
            checked_at: chrono::Utc::now(),
        })
    }
}

/// A candidate of the data-corruption search (recovery r1).
const CANDIDATE: &str = "muejam-db-prod-c1800000000";

struct Fake(Arc<Recorder>);

#[async_trait]
impl DatabaseControlPlane for Fake {
    async fn inject_failure(&self, i: &InstanceId, _r: &FailureRequest) -> DrResult<String> {
        self.0.record(PortOperation::InjectFailure);
        ensure_failure_target(i, &instance(i.as_str()).tags)?;
        Ok("failed".into())
    }
    async fn describe_instance(&self, i: &InstanceId) -> DrResult<InstanceDescription> {
        self.0.record(PortOperation::DescribeInstance);
        // Names no instance has yet: a new replica, a restore's target.
        if [
            "muejam-db-prod-replica-2",
            "muejam-db-prod-r7",
            "muejam-db-prod-r8",
        ]
        .contains(&i.as_str())
        {
            return Err(DrError::NotFound("no".into()));
        }
        Ok(instance(i.as_str()))
    }
    async fn list_instances(&self) -> DrResult<Vec<InstanceDescription>> {
        self.0.record(PortOperation::ListInstances);
        Ok(vec![
            instance("muejam-db-prod"),
            instance("drill-muejam-db-prod-d1"),
            instance(CANDIDATE),
            instance(REGION_RESTORE),
        ])
    }
    async fn list_snapshots(&self, _i: Option<&InstanceId>) -> DrResult<Vec<SnapshotDescription>> {
        self.0.record(PortOperation::ListSnapshots);
        // Two verified copies: with retain 1 the older one is pruned.
        let mut older = snapshot("dr-copy-s0", Some("s0"));
        older.original_created_at = Some(Utc::now() - chrono::Duration::hours(1));
        // Drill d1's base of its copy's point-in-time restores.
        let mut base = snapshot("drill-muejam-db-prod-d1-pitr-base", None);
        base.source_instance_id = id("drill-muejam-db-prod-d1");
        base.created_at = Utc::now() - chrono::Duration::days(30);
        base.tags = instance("drill-muejam-db-prod-d1").tags;
        Ok(vec![
            snapshot("s1", None),
            snapshot("dr-copy-s1", Some("s1")),
            older,
            base,
        ])
    }
    async fn describe_snapshot(&self, i: &SnapshotId) -> DrResult<SnapshotDescription> {
        self.0.record(PortOperation::DescribeSnapshot);
        Ok(snapshot(i.as_str(), i.as_str().strip_prefix("dr-copy-")))
    }
    async fn copy_snapshot(&self, r: &CopySnapshotRequest) -> DrResult<SnapshotDescription> {
        self.0.record(PortOperation::CopySnapshot);
        Ok(snapshot(
            r.target_snapshot_id.as_str(),
            Some(r.source_snapshot_id.as_str()),
        ))
    }
    async fn tag_snapshot(&self, _i: &SnapshotId, _t: &Tags) -> DrResult<()> {
        self.0.record(PortOperation::TagSnapshot);
        Ok(())
    }
    async fn promote_read_replica(&self, i: &InstanceId) -> DrResult<PromotionOutcome> {
        self.0.record(PortOperation::PromoteReadReplica);
        Ok(PromotionOutcome {
            instance: instance(i.as_str()),
            already_standalone: false,
            lag_at_promotion: None,
        })
    }
    async fn create_read_replica(&self, r: &CreateReplicaRequest) -> DrResult<InstanceDescription> {
        self.0.record(PortOperation::CreateReadReplica);
        if r.network.is_none() {
            return Err(DrError::Unsafe(format!(
                "replica {} placed nowhere: RDS would put it in the default VPC",
                r.replica_id
            )));
        }
        Ok(instance(r.replica_id.as_str()))
    }
    async fn create_snapshot(&self, r: &CreateSnapshotRequest) -> DrResult<SnapshotDescription> {
        self.0.record(PortOperation::CreateSnapshot);
        let mut made = snapshot(r.snapshot_id.as_str(), None);
        made.status = SnapshotStatus::Creating;
        Ok(made)
    }
    async fn restore_from_snapshot(
        &self,
        r: &RestoreSnapshotRequest,
    ) -> DrResult<InstanceDescription> {
        self.0.record(PortOperation::RestoreFromSnapshot);
        if r.network.is_none() {
            return Err(DrError::Unsafe(format!(
                "restore {} placed nowhere: RDS would put it in the default VPC",
                r.target_id
            )));
        }
        Ok(instance(r.target_id.as_str()))
    }
    async fn restore_to_point_in_time(
        &self,
        r: &PointInTimeRestoreRequest,
    ) -> DrResult<InstanceDescription> {
        self.0.record(PortOperation::RestoreToPointInTime);
        Ok(instance(r.target_id.as_str()))
    }
    async fn delete_instance(&self, _i: &InstanceId, _o: DeleteOptions) -> DrResult<()> {
        self.0.record(PortOperation::DeleteInstance);
        Ok(())
    }
    async fn delete_snapshot(&self, _i: &SnapshotId) -> DrResult<()> {
        self.0.record(PortOperation::DeleteSnapshot);
        Ok(())
    }
    async fn change_master_credentials(&self, _i: &InstanceId, p: &SecretString) -> DrResult<()> {
        self.0.record(PortOperation::ChangeMasterCredentials);
        self.0.accept(p);
        Ok(())
    }
    async fn add_tags(&self, _r: &InstanceId, _t: &Tags) -> DrResult<()> {
        self.0.record(PortOperation::AddTags);
        Ok(())
    }
    async fn fence_instance(&self, _i: &InstanceId, _r: &FenceRequest) -> DrResult<FenceOutcome> {
        self.0.record(PortOperation::FenceInstance);
        Ok(FenceOutcome {
            already_fenced: false,
            method: "quarantined".into(),
        })
    }
    async fn verify_snapshot(&self, _i: &SnapshotId) -> DrResult<SnapshotIntegrity> {
        self.0.record(PortOperation::VerifySnapshot);
        Ok(SnapshotIntegrity::Verified {
            detail: "ok".into(),
        })
    }
}

#[async_trait]
impl SqlTarget for Fake {
    async fn write_marker(&self, _t: &DatabaseTarget, _m: &str) -> DrResult<chrono::DateTime<Utc>> {
        self.0.record(PortOperation::SqlWriteMarker);
        Ok(Utc::now())
    }
    async fn marker_present(&self, _t: &DatabaseTarget, _m: &str) -> DrResult<bool> {
        self.0.record(PortOperation::SqlMarkerPresent);
        Ok(true)
    }
    async fn commit_damage(
        &self,
        _t: &DatabaseTarget,
        _key: &str,
        kind: DamageKind,
        rows: u32,
        _n: Option<chrono::DateTime<Utc>>,
    ) -> DrResult<Damage> {
        self.0.record(PortOperation::SqlCommitDamage);
        Ok(Damage {
            kind,
            table: "users".into(),
            rows: u64::from(rows),
            before: Utc::now(),
            at: Utc::now(),
        })
    }
    async fn probe(&self, t: &DatabaseTarget, _k: ProbeKind) -> DrResult<ProbeReport> {
        self.0.record(PortOperation::SqlProbe);
        let accepted = self.0.accepts(&t.password);
        Ok(ProbeReport {
            healthy: accepted,
            reason: None,
            failure: (!accepted).then_some(ProbeFailure::Authentication),
            in_recovery: Some(false),
            server_version: None,
            latency_ms: 1,
        })
    }
    async fn write_grants(
        &self,
        _t: &DatabaseTarget,
        _r: &str,
        _s: &str,
    ) -> DrResult<Vec<TableGrant>> {
        self.0.record(PortOperation::SqlWriteGrants);
        Ok(vec![TableGrant {
            table: "users".into(),
            privilege: "INSERT".into(),
        }])
    }
    async fn revoke_writes(
        &self,
        _t: &DatabaseTarget,
        _r: &str,
        _s: &str,
        _g: &[TableGrant],
    ) -> DrResult<WritesRevoked> {
        self.0.record(PortOperation::SqlRevokeWrites);
        Ok(WritesRevoked {
            sessions_ended: 1,
            definer_functions: vec![],
        })
    }
    async fn grant_writes(
        &self,
        _t: &DatabaseTarget,
        _r: &str,
        _s: &str,
        _g: &[TableGrant],
    ) -> DrResult<()> {
        self.0.record(PortOperation::SqlGrantWrites);
        Ok(())
    }
    async fn row_changes(
        &self,
        _n: &DatabaseTarget,
        _o: &DatabaseTarget,
        _s: &str,
    ) -> DrResult<Vec<TableChanges>> {
        self.0.record(PortOperation::SqlRowChanges);
        Ok(vec![TableChanges {
            table: "stories".into(),
            key_columns: vec!["id".into()],
            inserted: 1,
            updated: 0,
            deleted: 0,
            keys: vec![(RowChange::Inserted, vec!["7".into()])],
            newer_rows: 2,
            older_rows: 1,
        }])
    }
    async fn set_role_password(
        &self,
        _t: &DatabaseTarget,
        _r: &str,
        p: &SecretString,
    ) -> DrResult<()> {
        self.0.record(PortOperation::SqlSetRolePassword);
        self.0.accept(p);
        Ok(())
    }
    async fn row_counts(&self, _t: &DatabaseTarget) -> DrResult<BTreeMap<String, u64>> {
        self.0.record(PortOperation::SqlRowCounts);
        Ok(BTreeMap::from([("stories".to_owned(), 2)]))
    }
    async fn revoke_api_keys(
        &self,
        _t: &DatabaseTarget,
        _u: Option<&[i64]>,
        _at: chrono::DateTime<Utc>,
    ) -> DrResult<ApiKeysRevoked> {
        self.0.record(PortOperation::SqlRevokeApiKeys);
        Ok(ApiKeysRevoked {
            revoked: vec![1],
            already_inactive: 0,
        })
    }
    async fn audit_activity(
        &self,
        _t: &DatabaseTarget,
        _n: &[String],
        _from: chrono::DateTime<Utc>,
        _to: chrono::DateTime<Utc>,
        _max: usize,
    ) -> DrResult<AuditActivity> {
        self.0.record(PortOperation::SqlAuditActivity);
        Ok(AuditActivity {
            events: 0,
            by_action: Default::default(),
            users: vec![],
            first_seen: None,
            last_seen: None,
            rows: vec![],
            truncated: false,
        })
    }
}

#[async_trait]
impl Dns for Fake {
    async fn upsert_record(&self, _r: &DnsRecord) -> DrResult<DnsChange> {
        self.0.record(PortOperation::DnsUpsert);
        Ok(DnsChange {
            change_id: "c1".into(),
            status: DnsChangeStatus::Pending,
        })
    }
    async fn change_status(&self, c: &str) -> DrResult<DnsChange> {
        self.0.record(PortOperation::DnsChangeStatus);
        Ok(DnsChange {
            change_id: c.into(),
            status: DnsChangeStatus::Insync,
        })
    }
    async fn delete_record(&self, _z: &str, _n: &str, _t: &str) -> DrResult<Option<DnsChange>> {
        self.0.record(PortOperation::DnsDeleteRecord);
        Ok(None)
    }
    async fn get_record(&self, z: &str, n: &str, t: &str) -> DrResult<Option<DnsRecord>> {
        self.0.record(PortOperation::DnsGetRecord);
        Ok((n == "db.muejam.internal").then(|| DnsRecord {
            hosted_zone_id: z.into(),
            name: n.into(),
            record_type: t.into(),
            ttl: 60,
            value: "muejam-db-prod.example".into(),
        }))
    }
}

#[async_trait]
impl Notifier for Fake {
    async fn publish(&self, _n: &Notification) -> DrResult<String> {
        self.0.record(PortOperation::NotifierPublish);
        Ok("m1".into())
    }
    async fn subscriptions(&self, _t: &str) -> DrResult<SubscriptionCounts> {
        self.0.record(PortOperation::NotifierSubscriptions);
        Ok(SubscriptionCounts {
            confirmed: 1,
            pending: 0,
        })
    }
}

#[async_trait]
impl Secrets for Fake {
    async fn get_secret(&self, s: &str) -> DrResult<SecretString> {
        self.0.record(PortOperation::SecretsGet);
        // Secrets rotated since the restores' backups: a restore refuses
        // them until its passwords are set.
        // One password per restore, as the recorder keeps what it accepted.
        let password = match s {
            "rotated-drill" => "p2",
            "rotated-app" => "p3",
            "rotated-candidate" => "p4",
            "rotated-region" => "p5",
            "rotated-verify-app" => "p6",
            _ => "p",
        };
        Ok(SecretString::from(format!(
            r#"{{"username":"u","password":"{password}"}}"#
        )))
    }
    async fn put_secret(&self, _s: &str, _v: &SecretString) -> DrResult<String> {
        self.0.record(PortOperation::SecretsPut);
        Ok("v1".into())
    }
    async fn get_secret_stage(&self, _s: &str, stage: &str) -> DrResult<Option<SecretVersion>> {
        self.0.record(PortOperation::SecretsGetStage);
        Ok((stage == "AWSCURRENT").then(|| SecretVersion {
            version_id: "v-current".into(),
            value: SecretString::from(r#"{"username":"u","password":"p"}"#.to_owned()),
            stages: vec![stage.to_owned()],
        }))
    }
    async fn put_secret_pending(
        &self,
        _s: &str,
        token: &str,
        _v: &SecretString,
    ) -> DrResult<String> {
        self.0.record(PortOperation::SecretsPutPending);
        Ok(token.to_owned())
    }
    async fn move_secret_stage(
        &self,
        _s: &str,
        _stage: &str,
        _v: &str,
        _from: Option<&str>,
    ) -> DrResult<()> {
        self.0.record(PortOperation::SecretsMoveStage);
        Ok(())
    }
    async fn remove_secret_stage(&self, _s: &str, _stage: &str, _v: &str) -> DrResult<()> {
        self.0.record(PortOperation::SecretsMoveStage);
        Ok(())
    }
}

#[async_trait]
impl Firewall for Fake {
    async fn get_ip_set(&self, i: &IpSetRef) -> DrResult<IpSetContents> {
        self.0.record(PortOperation::FirewallGetIpSet);
        let v6 = i.name.ends_with("-v6");
        Ok(IpSetContents {
            addresses: if v6 {
                vec![]
            } else {
                vec!["198.51.100.1/32".into()]
            },
            lock_token: "t1".into(),
            ip_version: Some(if v6 { "IPV6" } else { "IPV4" }.into()),
        })
    }
    async fn update_ip_set(&self, _i: &IpSetRef, _a: &[String], _t: &str) -> DrResult<()> {
        self.0.record(PortOperation::FirewallUpdateIpSet);
        Ok(())
    }
}

#[async_trait]
impl ReportStore for Fake {
    async fn put(&self, key: &str, _c: &str, _b: &[u8]) -> DrResult<String> {
        self.0.record(PortOperation::ReportPut);
        Ok(format!("mem://{key}"))
    }
    async fn get(&self, k: &str) -> DrResult<Option<Vec<u8>>> {
        self.0.record(PortOperation::ReportGet);
        if k == REHEARSAL_REPORT {
            return Ok(Some(
                json!({"outcome": "succeeded", "passed": true, "rto": {"achieved_seconds": 300.0}, "rpo": {"achieved_seconds": 0.0}})
                    .to_string()
                    .into_bytes(),
            ));
        }
        Ok(k.ends_with("/recipients.json")
            .then(|| b"[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]".to_vec()))
    }
    async fn list(&self, p: &str) -> DrResult<Vec<String>> {
        self.0.record(PortOperation::ReportList);
        Ok(REHEARSAL_REPORT
            .starts_with(p)
            .then(|| REHEARSAL_REPORT.to_owned())
            .into_iter()
            .collect())
    }
}

#[async_trait]
impl UserNotifier for Fake {
    async fn send_batch(&self, _t: &str, m: &[UserMessage]) -> DrResult<Vec<UserDelivery>> {
        self.0.record(PortOperation::UserNotify);
        Ok(m.iter()
            .map(|m| UserDelivery::Sent {
                message_id: format!("m-{}", m.user_id),
            })
            .collect())
    }
}

#[async_trait]
impl NotificationLedger for Fake {
    async fn entries(&self, _i: &str) -> DrResult<Vec<LedgerEntry>> {
        self.0.record(PortOperation::LedgerEntries);
        Ok(vec![LedgerEntry {
            user_id: 1,
            state: LedgerState::Sent,
            claimed_at: Utc::now(),
            attempts: 1,
            message_id: Some("m-1".into()),
            sent_at: Some(Utc::now()),
        }])
    }
    async fn claim(&self, _i: &str, _u: &[i64], _a: chrono::DateTime<Utc>) -> DrResult<()> {
        self.0.record(PortOperation::LedgerClaim);
        Ok(())
    }
    async fn mark_sent(
        &self,
        _i: &str,
        _s: &[(i64, String)],
        _a: chrono::DateTime<Utc>,
    ) -> DrResult<()> {
        self.0.record(PortOperation::LedgerMarkSent);
        Ok(())
    }
}

#[async_trait]
impl RecoveryLock for Fake {
    async fn acquire(&self, resource: &str, owner: &str, _t: u64) -> DrResult<LockHolder> {
        self.0.record(PortOperation::LockAcquire);
        if resource == "held" {
            return Err(DrError::Conflict("held by arn:dead".into()));
        }
        Ok(LockHolder {
            resource: resource.into(),
            owner: owner.into(),
            acquired_at: Utc::now(),
        })
    }
    async fn take_over(
        &self,
        resource: &str,
        owner: &str,
        _s: &str,
        _t: u64,
    ) -> DrResult<LockHolder> {
        self.0.record(PortOperation::LockTakeOver);
        Ok(LockHolder {
            resource: resource.into(),
            owner: owner.into(),
            acquired_at: Utc::now(),
        })
    }
    async fn release(&self, _r: &str, _o: &str) -> DrResult<()> {
        self.0.record(PortOperation::LockRelease);
        Ok(())
    }
    async fn holder(&self, resource: &str) -> DrResult<Option<LockHolder>> {
        self.0.record(PortOperation::LockHolder);
        // A rehearsal that died holds its copy's lock.
        Ok(
            (resource == "held" || resource == DRILL_COPY).then(|| LockHolder {
                resource: resource.into(),
                owner: "arn:dead".into(),
                acquired_at: Utc::now(),
            }),
        )
    }
    async fn holders(&self) -> DrResult<Vec<LockHolder>> {
        self.0.record(PortOperation::LockHolders);
        Ok(vec![LockHolder {
            resource: "muejam".into(),
            owner: "arn:dead".into(),
            acquired_at: Utc::now(),
        }])
    }
}

#[async_trait]
impl IntegrityVerifier for Fake {
    async fn verify(
        &self,
        _t: &DatabaseTarget,
        _b: Option<&BTreeMap<String, u64>>,
        _tol: f64,
        _checks: &[NamedCheck],
    ) -> DrResult<IntegritySummary> {
        self.0.record(PortOperation::IntegrityVerify);
        Ok(IntegritySummary {
            passed: true,
            findings: vec![],
            failed_checks: vec![],
            row_counts: BTreeMap::new(),
            checks_run: 1,
            duration_ms: 1,
        })
    }
}

/// The report drill d1's rehearsed failover filed.
const REHEARSAL_REPORT: &str = "database-failover/20261126T020500Z-drill-d1-muejam-failover.json";

/// Drill d1's copy of muejam, as its rehearsal registers it.
const DRILL_COPY: &str = "drill-d1-muejam";

fn drill_copy() -> Topology {
    serde_json::from_value(json!({
        "database": DRILL_COPY,
        "primary": "drill-muejam-db-prod-d1",
        "replicas": ["drill-muejam-db-prod-d1-rep"],
        "db_name": "muejam",
        "credentials_secret_id": "muejam/db/master",
        "dns": {"hosted_zone": "muejam.internal", "record_name": "drill-d1.db.muejam.internal", "ttl": 60},
        "instance_prefix": "drill-muejam-db-prod-d1",
        "tags": {"dr:drill": "d1", "ephemeral": "true", "dr:drill-source": "muejam-db-prod"},
        "version": 2
    }))
    .expect("topology")
}

fn topology(database: &str) -> Topology {
    serde_json::from_value(json!({
        "database": database,
        "primary": "muejam-db-prod",
        "replicas": ["muejam-db-prod-replica"],
        "db_name": "muejam",
        "credentials_secret_id": "muejam/db/master",
        "dns": {"hosted_zone": "muejam.internal", "record_name": "db.muejam.internal", "ttl": 60},
        "instance_prefix": "muejam-db-prod",
        "application": {"role": "muejam_app", "credentials_secret_id": "muejam/db/app"},
        "version": 1
    }))
    .expect("topology")
}

#[async_trait]
impl TopologyRegistry for Fake {
    async fn get(&self, database: &str) -> DrResult<Option<Topology>> {
        self.0.record(PortOperation::TopologyGet);
        Ok(match database {
            "muejam" => Some(topology(database)),
            DRILL_COPY => Some(drill_copy()),
            _ => None,
        })
    }
    async fn put(&self, t: &Topology, expected: Option<u64>) -> DrResult<Topology> {
        self.0.record(PortOperation::TopologyPut);
        let mut stored = t.clone();
        stored.version = expected.unwrap_or(0) + 1;
        Ok(stored)
    }
    async fn list(&self) -> DrResult<Vec<Topology>> {
        self.0.record(PortOperation::TopologyList);
        Ok(vec![topology("muejam"), drill_copy()])
    }
    async fn delete(&self, _database: &str, _expected: u64) -> DrResult<bool> {
        self.0.record(PortOperation::TopologyDelete);
        Ok(true)
    }
}

#[async_trait]
impl ApprovalStore for Fake {
    async fn open(&self, r: &ApprovalRequest, _t: &SecretString) -> DrResult<()> {
        self.0.record(PortOperation::ApprovalOpen);
        if r.execution_name == "answered" {
            return Err(DrError::Conflict("already approved".into()));
        }
        Ok(())
    }
    async fn get(&self, name: &str) -> DrResult<Option<(ApprovalRequest, SecretString)>> {
        self.0.record(PortOperation::ApprovalGet);
        Ok(Some((
            approval_request(name),
            SecretString::from("token".to_owned()),
        )))
    }
    async fn close(
        &self,
        name: &str,
        status: ApprovalStatus,
        _a: Option<ApprovalAnswer>,
    ) -> DrResult<ApprovalRequest> {
        self.0.record(PortOperation::ApprovalClose);
        if name == "answered" {
            return Err(DrError::Conflict("already approved".into()));
        }
        let mut r = approval_request(name);
        r.status = status;
        Ok(r)
    }
}

fn approval_request(name: &str) -> ApprovalRequest {
    let mut request = ApprovalRequest {
        execution_name: name.into(),
        execution_arn: "arn:x".into(),
        scenario: "database-failover".into(),
        resource: "muejam".into(),
        question: "?".into(),
        facts: vec![],
        proposed_action: "p".into(),
        default_action: "d".into(),
        requested_at: Utc::now(),
        deadline: Utc::now(),
        status: ApprovalStatus::Pending,
        answer: None,
        escalation: vec![],
    };
    // "answered": approved while the escalation moved to its next tier.
    if name == "answered" {
        request.status = ApprovalStatus::Approved;
        request.answer = Some(ApprovalAnswer {
            approved: true,
            by: "alice".into(),
            at: Utc::now(),
            reason: None,
            tier: Some("primary-on-call".into()),
        });
    }
    request
}

#[async_trait]
impl Pager for Fake {
    async fn raise(&self, _p: &Page) -> DrResult<()> {
        self.0.record(PortOperation::PageRaise);
        Ok(())
    }
}

#[async_trait]
impl TaskTokens for Fake {
    async fn send_success(&self, _t: &SecretString, _o: &Value) -> DrResult<()> {
        self.0.record(PortOperation::TaskAnswer);
        Ok(())
    }
    async fn send_failure(&self, _t: &SecretString, _e: &str, _c: &str) -> DrResult<()> {
        self.0.record(PortOperation::TaskAnswer);
        Ok(())
    }
}

#[async_trait]
impl Executions for Fake {
    async fn state(&self, _arn: &str) -> DrResult<Option<ExecutionState>> {
        self.0.record(PortOperation::ExecutionState);
        Ok(Some(ExecutionState::Aborted))
    }
    async fn definitions(&self, _m: &str, _e: &str) -> DrResult<Option<DefinitionDigests>> {
        self.0.record(PortOperation::ExecutionDefinition);
        Ok(Some(DefinitionDigests {
            ran_sha256: "a".repeat(64),
            deployed_sha256: "a".repeat(64),
        }))
    }
}

#[async_trait]
impl RecoveryJournal for Fake {
    async fn record(&self, _e: &JournalEntry) -> DrResult<()> {
        self.0.record(PortOperation::JournalRecord);
        Ok(())
    }
    async fn entries(&self, r: &str) -> DrResult<Vec<JournalEntry>> {
        if r == "stopped" {
            self.0.record(PortOperation::JournalEntries);
            return Ok(vec![JournalEntry {
                recovery_id: r.into(),
                key: "writes_stopped".into(),
                execution: "d1".into(),
                at: Utc::now(),
                status: JournalStatus::Done,
                summary: "stopped".into(),
                detail: Some(
                    json!({"instance_id": "muejam-db-prod", "grants": [{"table": "users", "privilege": "INSERT"}]}),
                ),
            }]);
        }
        if r == "read-only" {
            // A data-corruption run that put the app in read-only mode and
            // never stopped the writes: the lift is due.
            self.0.record(PortOperation::JournalEntries);
            return Ok(vec![JournalEntry {
                recovery_id: r.into(),
                key: "read_only".into(),
                execution: "d1".into(),
                at: Utc::now(),
                status: JournalStatus::Done,
                summary: "read-only".into(),
                detail: Some(
                    json!({"deployment": {"namespace": "muejam", "name": "muejam-api"}, "previous": null, "ours": true, "lifted": false}),
                ),
            }]);
        }
        self.0.record(PortOperation::JournalEntries);
        Ok(vec![])
    }
}

#[async_trait]
impl Permissions for Fake {
    async fn state_machine(&self, arn: &str) -> DrResult<DeployedStateMachine> {
        self.0.record(PortOperation::PermissionsStateMachine);
        Ok(DeployedStateMachine {
            arn: arn.to_owned(),
            definition: serde_json::json!({"StartAt": "A", "States": {"A": {"Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:1:function:f"}, "End": true}}}),
            role_arn: "arn:aws:iam::1:role/sm".to_owned(),
        })
    }
    async fn function(&self, arn: &str) -> DrResult<DeployedFunction> {
        self.0.record(PortOperation::PermissionsFunction);
        Ok(DeployedFunction {
            arn: arn.to_owned(),
            role_arn: "arn:aws:iam::1:role/f".to_owned(),
            dr_function: Some("check-database".to_owned()),
        })
    }
    async fn simulate(
        &self,
        _role_arn: &str,
        _requests: &[ActionRequest],
    ) -> DrResult<Vec<ActionVerdict>> {
        self.0.record(PortOperation::PermissionsSimulate);
        Ok(vec![])
    }
    fn actions(&self, operation: PortOperation) -> Vec<String> {
        dr_aws::iam::iam_actions(operation)
            .iter()
            .map(|a| (*a).to_owned())
            .collect()
    }
}

#[async_trait]
impl Triggers for Fake {
    async fn alarm(&self, name: &str) -> DrResult<Option<AlarmInfo>> {
        self.0.record(PortOperation::TriggerAlarm);
        Ok(Some(AlarmInfo {
            name: name.to_owned(),
            actions_enabled: true,
            state: "OK".to_owned(),
        }))
    }
    async fn rules_targeting(&self, _target_arn: &str) -> DrResult<Vec<RuleInfo>> {
        self.0.record(PortOperation::TriggerRules);
        Ok(vec![])
    }
    async fn schedule(&self, name: &str) -> DrResult<Option<ScheduleInfo>> {
        self.0.record(PortOperation::TriggerSchedule);
        Ok(Some(ScheduleInfo {
            name: name.to_owned(),
            enabled: true,
            target_arn: "arn:x".to_owned(),
        }))
    }
}

#[async_trait]
impl Metrics for Fake {
    async fn put(&self, _namespace: &str, _data: &[MetricDatum]) -> DrResult<()> {
        self.0.record(PortOperation::MetricsPut);
        Ok(())
    }
    async fn latest(
        &self,
        _namespace: &str,
        _metric: &str,
        _dimensions: &BTreeMap<String, String>,
        _since: chrono::DateTime<Utc>,
    ) -> DrResult<Option<MetricPoint>> {
        self.0.record(PortOperation::MetricsLatest);
        Ok(Some(MetricPoint {
            at: Utc::now(),
            minimum: 1.0,
            maximum: 1.0,
        }))
    }
}

fn ports(recorder: &Arc<Recorder>) -> Ports {
    Ports {
        control_plane: Arc::new(Fake(Arc::clone(recorder))),
        regions: Arc::new(FakeRegions(Arc::clone(recorder))),
        fleet: Arc::new(Fake(Arc::clone(recorder))),
        health: Arc::new(Fake(Arc::clone(recorder))),
        deployment: Arc::new(Fake(Arc::clone(recorder))),
        firewall: Arc::new(Fake(Arc::clone(recorder))),
        triggers: Arc::new(Fake(Arc::clone(recorder))),
        permissions: Arc::new(Fake(Arc::clone(recorder))),
        sql: Arc::new(Fake(Arc::clone(recorder))),
        secrets: Arc::new(Fake(Arc::clone(recorder))),
        dns: Arc::new(Fake(Arc::clone(recorder))),
        notifier: Arc::new(Fake(Arc::clone(recorder))),
        reports: Arc::new(Fake(Arc::clone(recorder))),
        lock: Arc::new(Fake(Arc::clone(recorder))),
        integrity: Arc::new(Fake(Arc::clone(recorder))),
        metrics: Arc::new(Fake(Arc::clone(recorder))),
        database_tls: DatabaseTls::default(),
        topology: Arc::new(Fake(Arc::clone(recorder))),
        approvals: Arc::new(Fake(Arc::clone(recorder))),
        tokens: Arc::new(Fake(Arc::clone(recorder))),
        pager: Arc::new(Fake(Arc::clone(recorder))),
        journal: Arc::new(Fake(Arc::clone(recorder))),
        executions: Arc::new(Fake(Arc::clone(recorder))),
        users: Arc::new(Fake(Arc::clone(recorder))),
        ledger: Arc::new(Fake(Arc::clone(recorder))),
        initial_topologies: vec![topology("fresh")],
    }
}

/// The escalation path as the state machines carry it before the climb.
fn escalation() -> Value {
    json!({"tiers": [
        {"name": "primary-on-call", "topic_arn": "arn:aws:sns:us-east-1:1:t1", "response_minutes": "15"},
        {"name": "backup-on-call", "topic_arn": "arn:aws:sns:us-east-1:1:t2", "response_minutes": "30"}
    ]})
}

/// A report's sample event as a failed run's (which pages).
fn failed_run(mut event: Value) -> Value {
    event["outcome"] = json!("failed");
    event
}

/// A failed recovery's page.
fn page() -> Value {
    json!({"id": "incident-1", "subject": "[MueJam DR] database-failover FAILED", "body": "b", "scenario": "database-failover",
           "resource": "muejam", "raised_at": "2026-11-26T02:00:00Z"})
}

/// The same, as the first climb leaves it.
fn escalation_at_tier_one() -> Value {
    let mut e = escalation();
    e["asked"] = json!([{"tier": "primary-on-call", "at": "2026-11-26T02:00:00Z"}]);
    e["deadline"] = json!("2026-11-26T02:10:00Z");
    e["current"] = json!(0);
    e["wait_seconds"] = json!(600);
    e
}

/// A confirmation that asks a person.
fn confirm_ask() -> Value {
    json!({
        "primary": "muejam-db-prod", "control_plane": {"kind": "status", "status": "available"},
        "probe": {"kind": "silent", "failure": "timed_out"}, "probe_reason": "timed out",
        "dns_value": "muejam-db-prod.example",
        "replica": {"instance_id": "muejam-db-prod-replica", "status": "available", "lag_seconds": 0.5, "lag_bytes": 0, "problem": null},
        "decision": "ask", "reasons": ["hung?"], "control_plane_confirms_down": false,
        "approval": {"timeout_seconds": 600, "deadline": "2026-11-26T02:15:00Z", "rto_budget_left_seconds": 14000.0, "rto_still_reachable": true},
        "error": null, "checked_at": "2026-11-26T02:05:00Z"
    })
}

/// A failover plan as validate-input makes it.
fn plan() -> Value {
    json!({
        "database": "muejam", "primary": "muejam-db-prod", "replica": "muejam-db-prod-replica",
        "new_replica": "muejam-db-prod-r1", "db_name": "muejam", "credentials_secret_id": "s",
        "dns": {"hosted_zone": "muejam.internal", "record_name": "db.muejam.internal", "ttl": 60},
        "availability_zones": ["us-east-1a", "us-east-1b"], "allow_data_loss": false,
        "max_lag_seconds": 21600.0, "poll_interval_seconds": 15,
        "approval": {"timeout_cap_seconds": 1800, "timeout_floor_seconds": 60, "expected_remaining_seconds": 900},
        "rto_objective_seconds": 14400.0, "rpo_objective_seconds": 21600.0, "recovery_id": "r1",
        "topology_version": 1, "trigger": {"source": "manual"},
        "execution_start": "2026-11-26T02:00:00Z"
    })
}

/// A data-corruption plan as corruption-plan makes it.
fn corruption_plan() -> Value {
    let request =
        serde_json::from_value(json!({"database": "muejam", "trigger": {"source": "manual"}}))
            .expect("request");
    let plan = dr_scenarios::corruption::resolve(
        &request,
        &topology("muejam"),
        (
            "2026-11-19T00:00:00Z".parse().expect("t"),
            "2026-11-26T01:59:00Z".parse().expect("t"),
        ),
        &serde_json::from_value(
            json!({"id": "arn:x", "name": "r1", "start_time": "2026-11-26T02:00:00Z"}),
        )
        .expect("execution"),
    )
    .expect("plan");
    serde_json::to_value(plan).expect("json")
}

fn payloads(function: Function) -> Vec<Value> {
    let execution = json!({"id": "arn:x", "name": "d1", "start_time": "2026-11-26T02:00:00Z"});
    match function {
        Function::CheckDatabase => vec![
            json!({"instance_id": "muejam-db-prod", "credentials_secret_id": "s", "write_probe": true}),
        ],
        Function::PromoteReplica => vec![
            json!({"replica_instance_id": "muejam-db-prod-replica", "journal": {"recovery_id": "r1", "execution": "d1"}}),
        ],
        Function::DescribeInstance => vec![json!({"instance_id": "muejam-db-prod"})],
        Function::UpdateDns => vec![
            json!({"action": "upsert", "hosted_zone": "z", "record_name": "db.z", "target_instance_id": "muejam-db-prod", "journal": {"recovery_id": "r1", "execution": "d1"}}),
            json!({"action": "status", "hosted_zone": "z", "record_name": "db.z", "change_id": "c1"}),
        ],
        Function::CreateReplica => vec![
            json!({"source_instance_id": "muejam-db-prod", "replica_instance_id": "muejam-db-prod-replica-2", "availability_zones": ["us-east-1b"], "journal": {"recovery_id": "r1", "execution": "d1"}}),
        ],
        Function::Notify => vec![
            json!({"topic_arn": "t", "scenario": "database-failover", "event": "failed", "details": {}}),
            json!({"topic_arn": "t", "scenario": "database-failover", "event": "failed", "details": {}, "execution": "incident-1"}),
        ],
        Function::Report => vec![
            json!({"scenario": "database-failover", "resource": "muejam", "execution": execution, "outcome": "succeeded", "details": {"plan": plan()}, "finished_at": "2026-11-26T02:01:00Z", "topic_arn": "t"}),
            json!({"scenario": "database-failover", "resource": "muejam", "execution": execution, "outcome": "failed", "details": {"plan": plan()}, "finished_at": "2026-11-26T02:01:00Z", "topic_arn": "t"}),
        ],
        Function::RecoveryLock => vec![
            json!({"action": "acquire", "resource": "r", "owner": "o"}),
            json!({"action": "check", "resource": "r", "owner": "o"}),
            json!({"action": "release", "resource": "r", "owner": "o"}),
            json!({"action": "acquire", "resource": "held", "owner": "o", "topic_arn": "t"}),
            json!({"action": "sweep", "resource": "*", "owner": "arn:dead", "ended": "ABORTED", "topic_arn": "t"}),
        ],
        Function::DrillScope => vec![
            json!({}),
            json!({"databases": ["muejam-db-prod"]}),
            json!({"request": serde_json::from_slice::<Value>(&std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/dr-drill.json")).expect("event")).expect("json")}),
        ],
        Function::VerifyBackup => vec![json!({"instance_id": "muejam-db-prod"})],
        Function::StartRestore => {
            vec![json!({"database": "muejam-db-prod", "snapshot_id": "s1", "drill_id": "d1"})]
        }
        Function::RestoreCheck => vec![
            json!({"drill_id": "d1", "restore_instance_id": "drill-muejam-db-prod-d1", "snapshot_id": "s1", "credentials_secret_id": "s", "started_at": "2026-11-26T02:00:00Z"}),
            // The backup predates a rotation: its master password is set.
            json!({"drill_id": "d1", "restore_instance_id": "drill-muejam-db-prod-d1", "snapshot_id": "s1", "credentials_secret_id": "rotated-drill", "started_at": "2026-11-26T02:00:00Z"}),
        ],
        Function::DrillCopy => vec![
            json!({"action": "replica", "drill_id": "d1", "database": "muejam-db-prod", "restore_instance_id": "drill-muejam-db-prod-d1", "replica_instance_id": "drill-muejam-db-prod-d1-rep"}),
            json!({"action": "register", "drill_id": "d1", "database": "muejam-db-prod", "restore_instance_id": "drill-muejam-db-prod-d1", "replica_instance_id": "drill-muejam-db-prod-d1-rep"}),
            json!({"action": "fail", "drill_id": "d1", "instance_id": "drill-muejam-db-prod-d1", "quarantine_security_group": "sg-q"}),
            json!({"action": "base", "drill_id": "d1", "copy_database": "drill-d1-muejam"}),
            json!({"action": "rehearsed", "drill_id": "d1", "copy": {
                    "database": "drill-d1-muejam", "hosted_zone": "muejam.internal", "record_name": "drill-d1.db.muejam.internal",
                    "primary": "drill-muejam-db-prod-d1", "replica": "drill-muejam-db-prod-d1-rep",
                    "production": {"database": "muejam", "hosted_zone": "muejam.internal", "record_name": "db.muejam.internal"}},
                "state_machine_arn": "arn:aws:states:us-east-1:1:stateMachine:muejam-database-failover",
                "execution_name": "drill-d1-muejam-failover",
                "markers": {"instance_id": "drill-muejam-db-prod-d1-rep", "found": ["drill:d1:1", "drill:d1:2", "drill:d1:3"], "missing": ["drill:d1:in-flight"]},
                "error": null}),
            json!({"action": "rehearsed", "drill_id": "d1", "workflow": "corruption", "replaced_instance_id": "drill-muejam-db-prod-d1-rep", "copy": {
                    "database": "drill-d1-muejam", "hosted_zone": "muejam.internal", "record_name": "drill-d1.db.muejam.internal",
                    "primary": "drill-muejam-db-prod-d1", "replica": "drill-muejam-db-prod-d1-rep",
                    "production": {"database": "muejam", "hosted_zone": "muejam.internal", "record_name": "db.muejam.internal"}},
                "state_machine_arn": "arn:aws:states:us-east-1:1:stateMachine:muejam-data-corruption",
                "execution_name": "drill-d1-muejam-corruption",
                "markers": {"instance_id": "drill-muejam-db-prod-d1-r1", "found": ["drill:d1:good:1", "drill:d1:good:2", "drill:d1:good:3"], "missing": ["drill:d1:after-damage"]},
                "error": null}),
            json!({"action": "region_plan", "drill_id": "d1", "database": "muejam-db-prod", "copy": {
                    "database": "drill-d1-muejam", "hosted_zone": "muejam.internal", "record_name": "drill-d1.db.muejam.internal",
                    "primary": "drill-muejam-db-prod-d1", "replica": "drill-muejam-db-prod-d1-rep",
                    "production": {"database": "muejam", "hosted_zone": "muejam.internal", "record_name": "db.muejam.internal"}},
                "request": serde_json::from_slice::<Value>(&std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/dr-drill.json")).expect("event")).expect("json")}),
            json!({"action": "rehearsed_region", "copy": {
                    "database": "drill-d1-muejam", "hosted_zone": "muejam.internal", "record_name": "drill-d1.db.muejam.internal",
                    "primary": "drill-muejam-db-prod-d1", "replica": "drill-muejam-db-prod-d1-rep",
                    "production": {"database": "muejam", "hosted_zone": "muejam.internal", "record_name": "db.muejam.internal"}},
                "backup_region": "us-west-2",
                "state_machine_arn": "arn:aws:states:us-east-1:1:stateMachine:muejam-region-failover",
                "execution_name": "drill-d1-muejam-region",
                "error": null}),
        ],
        Function::DrillMarker => vec![
            json!({"action": "write", "drill_id": "d1", "instance_id": "drill-muejam-db-prod-d1", "credentials_secret_id": "s"}),
            json!({"action": "write", "in_flight": true, "drill_id": "d1", "instance_id": "drill-muejam-db-prod-d1", "credentials_secret_id": "s"}),
            json!({"action": "check", "drill_id": "d1", "instance_id": "drill-muejam-db-prod-d1-rep", "credentials_secret_id": "s"}),
            json!({"action": "count", "drill_id": "d1", "copy_database": "drill-d1-muejam", "credentials_secret_id": "s"}),
            json!({"action": "count", "drill_id": "d1", "copy_database": "drill-d1-muejam", "credentials_secret_id": "s", "failed_instance_id": "drill-muejam-db-prod-d0"}),
            json!({"action": "write", "set": "corruption", "drill_id": "d1", "copy_database": "drill-d1-muejam", "credentials_secret_id": "s"}),
            json!({"action": "damage", "drill_id": "d1", "copy_database": "drill-d1-muejam", "credentials_secret_id": "s"}),
        ],
        Function::DrillCleanup => vec![
            json!({"drill_id": "d1"}),
            json!({"drill_id": "d1", "regions": ["us-west-2"]}),
            json!({"drill_id": "d2", "sweep_earlier": true, "execution_arn": "arn:aws:states:us-east-1:1:execution:muejam-dr-drill:d2", "regions": ["us-west-2"]}),
        ],
        Function::RunbookReview => {
            vec![json!({"topic_arn": "t", "runbook_last_updated": "2026-11-01"})]
        }
        Function::DrillReport => vec![
            json!({"drill_id": "d1", "execution": execution, "results": [], "finished_at": "2026-11-26T02:10:00Z", "topic_arn": "t"}),
        ],
        Function::ProbeDatabase => vec![
            json!({"endpoint": {"address": "db.muejam.internal", "port": 5432}, "credentials_secret_id": "s", "database_label": "db.muejam.internal"}),
        ],
        Function::ValidateInput => vec![
            json!({"request": {"database": "muejam", "trigger": {"source": "manual"}}, "execution": execution}),
            json!({"request": {"database": "fresh", "trigger": {"source": "cloudwatch-alarm"}}, "execution": execution}),
        ],
        Function::ConfirmFailure => {
            vec![
                json!({"plan": plan(), "database_record": {"value": "db.local", "read_at": "2026-11-26T02:00:01Z"}, "journal": {"recovery_id": "r1", "execution": "d1"}}),
                json!({"plan": plan(), "database_record": {"value": null, "read_at": "2026-11-26T02:00:01Z"}}),
            ]
        }
        Function::FenceInstance => vec![
            json!({"instance_id": "muejam-db-prod", "by": "arn:x", "quarantine_security_group": "sg-1", "journal": {"recovery_id": "r1", "execution": "d1"}}),
        ],
        Function::RequestApproval => vec![
            json!({"action": "request", "token": "tok", "topic_arn": "t", "execution": execution, "plan": plan(), "confirm": confirm_ask()}),
            json!({"action": "expire", "execution": execution}),
            json!({"action": "ask", "token": "tok", "topic_arn": "t", "execution": execution, "scenario": "data-corruption", "resource": "muejam", "timeout_seconds": 600,
                   "draft": {"question": "Switch?", "facts": ["f"], "proposed_action": "p", "default_action": "d"}}),
            json!({"action": "expire", "execution": {"id": "arn:x", "name": "answered", "start_time": "2026-11-26T02:00:00Z"}}),
            json!({"action": "climb", "escalation": escalation(), "timeout_seconds": 600, "now": "2026-11-26T02:00:00Z"}),
            json!({"action": "climb", "escalation": escalation(), "now": "2026-11-26T02:00:00Z"}),
            json!({"action": "plan_page", "event": {"page": page()}}),
            json!({"action": "plan_page", "event": {"detail-type": "CloudWatch Alarm State Change", "time": "2026-11-26T02:00:00Z",
                   "detail": {"alarmName": "muejam-probe-broken", "state": {"value": "ALARM", "reason": "no data", "timestamp": "2026-11-26T02:00:00Z"}}}}),
            json!({"action": "page", "token": "tok", "page": page(), "escalation": escalation_at_tier_one()}),
            json!({"action": "ask", "token": "tok", "escalation": escalation_at_tier_one(), "execution": execution, "scenario": "data-corruption", "resource": "muejam", "timeout_seconds": 600,
                   "draft": {"question": "Switch?", "facts": ["f"], "proposed_action": "p", "default_action": "d"}}),
            json!({"action": "ask", "token": "tok", "escalation": escalation_at_tier_one(), "execution": {"id": "arn:x", "name": "answered", "start_time": "2026-11-26T02:00:00Z"}, "scenario": "data-corruption", "resource": "muejam", "timeout_seconds": 600,
                   "draft": {"question": "Switch?", "facts": ["f"], "proposed_action": "p", "default_action": "d"}}),
        ],
        Function::CorruptionPlan => vec![
            json!({"request": {"database": "muejam", "trigger": {"source": "manual"}}, "execution": execution}),
            json!({"request": {"database": "muejam", "trigger": {"source": "manual"}, "app": {"deployment": {"namespace": "muejam", "name": "muejam-api"}, "health_url": "https://api.muejam.com/health"}}, "execution": execution}),
        ],
        Function::IntegrityCheck => vec![
            json!({"mode": "scope", "instance_id": "muejam-db-prod", "database": "muejam", "credentials_secret_id": "s"}),
            json!({"mode": "candidate", "instance_id": CANDIDATE, "database": "muejam", "credentials_secret_id": "s", "failing": ["fk_x"], "at": "2026-11-26T01:00:00Z"}),
            json!({"mode": "candidate", "instance_id": CANDIDATE, "database": "muejam", "credentials_secret_id": "rotated-candidate", "failing": ["fk_x"], "at": "2026-11-26T01:00:00Z"}),
            // The restore to switch to, from before a rotation of the app's secret.
            json!({"mode": "verify", "instance_id": CANDIDATE, "database": "muejam", "credentials_secret_id": "s",
                "application": {"role": "muejam_app", "credentials_secret_id": "rotated-verify-app", "schema": "public"}}),
        ],
        Function::WriteAccess => vec![
            json!({"action": "stop", "instance_id": "muejam-db-prod", "database": "muejam", "credentials_secret_id": "s", "application": {"role": "muejam_app", "credentials_secret_id": "a"}, "journal": {"recovery_id": "r1", "execution": "d1"}}),
            json!({"action": "stop", "instance_id": "muejam-db-prod", "database": "muejam", "credentials_secret_id": "s", "application": {"role": "muejam_app", "credentials_secret_id": "a"}, "journal": {"recovery_id": "r1", "execution": "d1"}, "count_rows": true}),
            json!({"action": "restore", "instance_id": "muejam-db-prod", "database": "muejam", "credentials_secret_id": "s", "application": {"role": "muejam_app", "credentials_secret_id": "a"}, "journal": {"recovery_id": "stopped", "execution": "d1"}}),
        ],
        Function::SearchStep => vec![
            json!({"action": "start", "plan": corruption_plan(), "corrupt_at": "2026-11-26T01:50:00Z"}),
        ],
        Function::PitrRestore => vec![
            json!({"action": "start", "source_id": "muejam-db-prod", "target_id": CANDIDATE, "restore_time": "2027-01-15T08:00:00Z", "purpose": "candidate", "recovery_id": "r1"}),
            json!({"action": "delete", "instance_id": CANDIDATE, "recovery_id": "r1"}),
            json!({"action": "sweep", "recovery_id": "r1"}),
        ],
        Function::AssessLoss => vec![
            json!({"plan": corruption_plan(), "chosen_moment": "2026-11-26T01:00:00Z", "writes_stopped_at": "2026-11-26T02:01:00Z", "report_key": "data-corruption/r1"}),
        ],
        Function::CorruptionCleanup => vec![
            json!({"execution_name": "stopped", "input": "{\"database\": \"muejam\"}", "status": "TIMED_OUT"}),
            json!({"execution_name": "r1", "input": "{}", "status": "ABORTED"}),
        ],
        Function::CorruptionReport => vec![
            json!({"execution": execution, "outcome": "succeeded", "details": {"plan": corruption_plan()}, "finished_at": "2026-11-26T02:30:00Z", "topic_arn": "t"}),
            json!({"execution": execution, "outcome": "failed", "details": {"plan": corruption_plan()}, "finished_at": "2026-11-26T02:30:00Z", "topic_arn": "t"}),
        ],
        Function::UpdateTopology => vec![
            json!({"action": "restore", "database": "muejam", "restored": "muejam-db-prod-r1", "by": "arn:x"}),
            json!({"action": "switch", "database": "muejam", "new_primary": "muejam-db-prod-replica", "by": "arn:x", "journal": {"recovery_id": "r1", "execution": "d1"}}),
            json!({"action": "add_replica", "database": "muejam", "replica": "muejam-db-prod-r1", "by": "arn:x"}),
        ],
        Function::RegionPlan => vec![sample_event(Function::RegionPlan)],
        Function::ProbeRecord => vec![json!({"plan": region_plan(REGION_RESTORE)})],
        Function::ConfirmRegion => vec![
            json!({"plan": region_plan(REGION_RESTORE), "endpoint": {"kind": "silent", "detail": "timed out"}}),
        ],
        Function::ChooseCopy => vec![json!({"plan": region_plan(REGION_RESTORE)})],
        Function::RegionRestore => vec![
            json!({"action": "start", "plan": region_plan("muejam-db-prod-r7"), "snapshot_id": "dr-copy-s1"}),
            json!({"action": "adopt", "plan": region_plan(REGION_RESTORE)}),
            json!({"action": "discard", "plan": region_plan(REGION_RESTORE)}),
            json!({"action": "sweep", "execution_name": "r1", "input": "{\"database\": \"muejam\", \"backup_region\": \"us-west-2\"}", "status": "ABORTED"}),
        ],
        Function::VerifyRegionRestore => {
            let copy = json!({
            "snapshot_id": "dr-copy-s1", "data_time": "2027-01-15T07:00:00Z", "age_seconds": 3600.0,
            "rpo_met": true, "row_counts": {"users": 10}});
            // A copy that predates a rotation of both secrets.
            let mut rotated = region_plan(REGION_RESTORE);
            rotated["credentials_secret_id"] = json!("rotated-region");
            rotated["application"] = json!({"role": "muejam_app", "credentials_secret_id": "rotated-app", "schema": "public"});
            vec![
                json!({"plan": region_plan(REGION_RESTORE), "copy": copy}),
                json!({"plan": rotated, "copy": copy}),
            ]
        }
        Function::ScaleFleet => vec![
            json!({"action": "raise", "fleet": {"auto_scaling_group": "muejam-dr-app", "desired_capacity": 4}, "region": "us-west-2", "journal": {"recovery_id": "r1", "execution": "d1"}}),
            json!({"action": "status", "fleet": {"auto_scaling_group": "muejam-dr-app", "desired_capacity": 4}, "region": "us-west-2"}),
        ],
        Function::RegionReport => vec![
            sample_event(Function::RegionReport),
            failed_run(sample_event(Function::RegionReport)),
        ],
        Function::BreachPlan => vec![sample_event(Function::BreachPlan)],
        Function::RevokeApiKeys => vec![
            json!({"plan": breach_plan("all"), "pass": "contain"}),
            json!({"plan": breach_plan("affected_users"), "pass": "affected"}),
            json!({"plan": breach_plan("affected_users"), "pass": "after_restore"}),
        ],
        Function::RotateCredentials => vec![
            sample_event(Function::RotateCredentials),
            json!({"secret_id": "muejam/db/master", "account": {"kind": "master"}, "instance_id": "muejam-db-prod", "database": "muejam", "master_secret_id": "muejam/db/master", "token": "breach-master-d1--------------------"}),
        ],
        Function::BlockAddresses => vec![json!({"plan": breach_plan("all")})],
        Function::AssessImpact => vec![json!({"plan": breach_plan("all")})],
        Function::BreachReport => vec![sample_event(Function::BreachReport)],
        Function::NotifyUsers => vec![sample_event(Function::NotifyUsers)],
        Function::ReplicationPlan => vec![
            json!({"backup_region": "us-west-2", "kms_key_id": "alias/dr"}),
            json!({"backup_region": "us-west-2", "kms_key_id": "alias/dr", "databases": ["muejam"]}),
        ],
        Function::SourceSnapshot => vec![
            json!({"target": target(), "fresh_within_seconds": 3600, "run_started": "2027-01-15T08:00:00Z"}),
            // Nothing fresh enough: one is taken.
            json!({"target": target(), "fresh_within_seconds": 0, "run_started": "2027-01-15T08:00:00Z"}),
        ],
        Function::SnapshotProgress => {
            vec![json!({"region": "us-west-2", "snapshot_id": "dr-copy-s1"})]
        }
        Function::CopySnapshot => vec![
            json!({"target": target(), "source_snapshot_id": "s1", "copy_id": "dr-copy-s1", "backup_region": "us-west-2", "kms_key_id": "alias/dr"}),
        ],
        Function::VerifyCopy => vec![
            json!({"target": target(), "source_snapshot_id": "s1", "copy_id": "dr-copy-s1", "backup_region": "us-west-2", "kms_key_id": "alias/dr"}),
        ],
        Function::PruneCopies => vec![
            json!({"database": "muejam", "backup_region": "us-west-2", "retain": 1, "rpo_seconds": 21600}),
            json!({"database": "muejam", "backup_region": "us-west-2", "retain": 1, "rpo_seconds": 21600, "prune": false}),
        ],
        Function::AppPlan => vec![
            // The fake fleet holds at most four: a floor of 3 is planned.
            json!({"request": {"fleet": {"auto_scaling_group": "muejam-app"}, "capacity_floor": 3, "health_url": "https://api.muejam.com/health"}, "execution": execution}),
        ],
        Function::RecoverFleet => vec![
            json!({"action": "raise", "fleet": {"auto_scaling_group": "muejam-app", "target_group_arn": null, "region": "us-east-1"}, "capacity": 3, "journal": {"recovery_id": "r1", "execution": "d1"}}),
            json!({"action": "refresh", "fleet": {"auto_scaling_group": "muejam-app", "target_group_arn": null, "region": "us-east-1"}, "journal": {"recovery_id": "r1", "execution": "d1"}}),
            json!({"action": "status", "fleet": {"auto_scaling_group": "muejam-app", "target_group_arn": null, "region": "us-east-1"}, "refresh_id": "rf-1", "capacity": 3}),
        ],
        Function::VerifyHealth => vec![sample_event(Function::VerifyHealth)],
        Function::AppReport => vec![
            sample_event(Function::AppReport),
            failed_run(sample_event(Function::AppReport)),
        ],
        Function::RollbackPlan => vec![
            json!({"request": {"deployment": {"namespace": "muejam", "name": "muejam-api"}, "migration": {"app": "muejam", "target": "0002_story_views_source"}, "health_url": "https://api.muejam.com/health"}, "execution": execution}),
        ],
        Function::RollbackStep => vec![
            json!({"action": "migrate", "deployment": {"namespace": "muejam", "name": "muejam-api"}, "job": {"name": "r1-migrate", "revision": 2, "app": "muejam", "target": "0002_story_views_source"}, "journal": {"recovery_id": "r1", "execution": "d1"}}),
            json!({"action": "job_status", "deployment": {"namespace": "muejam", "name": "muejam-api"}, "job": "r1-migrate"}),
            json!({"action": "undo", "deployment": {"namespace": "muejam", "name": "muejam-api"}, "to": {"revision": 1, "image": "muejam-api:1", "template_hash": "a", "change_cause": null, "created_at": null}, "journal": {"recovery_id": "r1", "execution": "d1"}}),
            json!({"action": "rollout_status", "deployment": {"namespace": "muejam", "name": "muejam-api"}, "to": {"revision": 1, "image": "muejam-api:1", "template_hash": "a", "change_cause": null, "created_at": null}}),
        ],
        Function::RollbackReport => vec![
            sample_event(Function::RollbackReport),
            failed_run(sample_event(Function::RollbackReport)),
        ],
        Function::RestartApp => vec![
            sample_event(Function::RestartApp),
            json!({"action": "status", "deployment": {"namespace": "muejam", "name": "muejam-api"}}),
            json!({"action": "read_only", "deployment": {"namespace": "muejam", "name": "muejam-api"}, "journal": {"recovery_id": "r1", "execution": "d1"}}),
            json!({"action": "lift_read_only", "journal": {"recovery_id": "read-only", "execution": "d1"}}),
        ],
        Function::ReadOnlyCleanup => {
            let mut record = sample_event(Function::ReadOnlyCleanup);
            record["requestPayload"]["execution_name"] = json!("read-only");
            // After the sweep's retries failed: the alerts topic is told.
            let mut failed = record.clone();
            failed["requestContext"]["condition"] = json!("RetriesExhausted");
            failed["requestPayload"]["topic_arn"] =
                json!("arn:aws:sns:us-east-1:1:muejam-dr-alerts");
            failed["responsePayload"] = json!({
                "errorType": "NotReady",
                "errorMessage": "not ready: the writes: gave muejam_app its writes back; the candidates: candidates not deleted: muejam-db-prod-c1 (deleted: none); muejam-db-prod-c1: DB instance muejam-db-prod-c1 is creating"
            });
            vec![record, failed]
        }
        Function::Readiness => {
            // As the schedule sends it: the scenarios' state machines too.
            let mut scheduled = sample_event(Function::Readiness);
            scheduled["permissions"] = json!({"database-failover": [
                "arn:aws:states:us-east-1:1:stateMachine:muejam-database-failover"
            ]});
            vec![sample_event(Function::Readiness), scheduled]
        }
        Function::ReplicationReport => vec![
            json!({"topic_arn": "t", "execution": execution, "plan": replication_plan(), "results": [
                {"database": "muejam", "error": {"Error": "Unavailable", "Cause": "us-east-1 does not answer"}}
            ]}),
        ],
    }
}

fn breach_plan(revoke_keys: &str) -> Value {
    let mut plan = sample_event(Function::RevokeApiKeys)["plan"].take();
    plan["revoke_keys"] = json!(revoke_keys);
    plan
}

fn region_plan(restored: &str) -> Value {
    let mut plan: Value = serde_json::from_slice(
        &std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../events/functions/region-restore.json"),
        )
        .expect("sample"),
    )
    .expect("json");
    plan["plan"]["restored_instance"] = json!(restored);
    plan["plan"]["recovery_id"] = json!("r1");
    plan["plan"]["primary"] = json!("muejam-db-prod");
    plan["plan"].take()
}

fn target() -> Value {
    json!({"database": "muejam", "primary": "muejam-db-prod", "source_region": "us-east-1"})
}

fn replication_plan() -> Value {
    json!({"backup_region": "us-west-2", "kms_key_id": "alias/dr", "retain": 1, "rpo_seconds": 21600,
        "fresh_within_seconds": 3600, "poll_interval_seconds": 60, "limits": {"snapshot_poll_seconds": 60, "snapshot_polls": 1, "copy_poll_seconds": 300, "copy_polls": 1},
        "databases": [target()], "namespace": "MueJam/DR"})
}

/// The documented sample event of a function (events/functions/<crate>.json).
fn sample_event(function: Function) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events/functions")
        .join(format!("{}.json", function.name()));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn every_function_accepts_its_documented_sample_event() {
    let recorder = Arc::new(Recorder::default());
    let ports = ports(&recorder);
    for function in Function::ALL {
        let event = sample_event(function);
        let result = dispatch(function, &ports, event.clone()).await;
        assert!(
            !matches!(&result, Err(DrError::InvalidInput(_))),
            "{} rejects events/functions/{}.json: {result:?}",
            function.logical_id(),
            function.name()
        );
    }
}

#[tokio::test]
async fn every_port_call_a_handler_makes_is_declared_for_its_function() {
    let recorder = Arc::new(Recorder::default());
    let ports = ports(&recorder);
    for function in Function::ALL {
        let declared: BTreeSet<PortOperation> = function.port_calls().iter().copied().collect();
        let mut used = BTreeSet::new();
        for payload in payloads(function) {
            let result = dispatch(function, &ports, payload.clone()).await;
            assert!(
                result.is_ok(),
                "{} on {payload}: {result:?}",
                function.logical_id()
            );
            used.extend(recorder.take());
        }
        let undeclared: Vec<_> = used.difference(&declared).collect();
        assert!(
            undeclared.is_empty(),
            "{} calls {undeclared:?} without declaring them",
            function.logical_id()
        );
        let unused: Vec<_> = declared.difference(&used).collect();
        assert!(
            unused.is_empty(),
            "{} declares {unused:?} that no exercised path calls",
            function.logical_id()
        );
    }
}

#[tokio::test]
async fn bad_input_is_refused_before_any_port_is_touched() {
    let recorder = Arc::new(Recorder::default());
    let ports = ports(&recorder);
    for function in Function::ALL {
        let error = dispatch(function, &ports, json!({"unexpected_field": true}))
            .await
            .expect_err("refused");
        assert_eq!(
            error.name(),
            "InvalidInput",
            "{}: {error}",
            function.logical_id()
        );
        assert!(
            recorder.take().is_empty(),
            "{} touched a port on bad input",
            function.logical_id()
        );
    }
}

/// A notifier that panics, as an SDK does on a request it cannot build.
struct Panicking;

#[async_trait]
impl Notifier for Panicking {
    async fn publish(&self, _n: &Notification) -> DrResult<String> {
        panic!("valid request: http::Error(InvalidUri(TooLong))")
    }
    async fn subscriptions(&self, _t: &str) -> DrResult<SubscriptionCounts> {
        panic!("never")
    }
}

#[tokio::test]
async fn a_panic_below_a_handler_is_an_internal_error_not_a_crash() {
    let recorder = Arc::new(Recorder::default());
    let mut ports = ports(&recorder);
    ports.notifier = Arc::new(Panicking);
    let error = dispatch(
        Function::Notify,
        &ports,
        json!({"topic_arn": "t", "scenario": "database-failover", "event": "failed", "details": {}}),
    )
    .await
    .expect_err("caught");
    assert_eq!(error.name(), "Internal");
    assert!(
        error
            .to_string()
            .contains("NotifyFunction panicked: valid request"),
        "{error}"
    );
}
