//! [`DatabaseControlPlane`] on Amazon RDS (and CloudWatch for replica lag).

use async_trait::async_trait;
use aws_sdk_rds::types::{DbInstance, DbSnapshot, Tag};
use chrono::{DateTime, Utc};
use dr_core::*;
use secrecy::{ExposeSecret, SecretString};

use crate::errors::map_sdk_error;

/// Tag recording where a restored instance came from, so that a retried
/// restore recognises its own result.
pub const ORIGIN_TAG: &str = "dr:origin";
/// Tag recording the source ARN on a snapshot copy: RDS reports the source
/// of a cross-region copy, moto does not, and a retried copy must
/// recognise its own result on both.
pub const COPY_SOURCE_TAG: &str = "dr:copy-source";

#[derive(Debug, Clone)]
pub struct RdsControlPlane {
    rds: aws_sdk_rds::Client,
    cloudwatch: Option<aws_sdk_cloudwatch::Client>,
}

pub(crate) fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn to_smithy(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs_and_nanos(t.timestamp(), t.timestamp_subsec_nanos())
}

fn tags_of(list: &[Tag]) -> Tags {
    list.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

fn to_rds_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// RDS's status strings; anything transitional we do not list is `modifying`.
pub fn status_from_rds(status: &str) -> InstanceStatus {
    match status {
        "available" | "storage-optimization" => InstanceStatus::Available,
        "backing-up" => InstanceStatus::BackingUp,
        "creating" => InstanceStatus::Creating,
        "rebooting" | "starting" | "resetting-master-credentials" => InstanceStatus::Rebooting,
        "stopped" => InstanceStatus::Stopped,
        "deleting" => InstanceStatus::Deleting,
        s if s == "failed"
            || s.starts_with("incompatible")
            || s.starts_with("inaccessible")
            || s == "storage-full"
            || s == "restore-error" =>
        {
            InstanceStatus::Failed
        }
        _ => InstanceStatus::Modifying,
    }
}

/// The placement a new instance takes from the request: without it RDS uses
/// the default VPC's default security group, where nothing of ours reaches.
fn subnet_group(network: &Option<NetworkPlacement>) -> Option<String> {
    network.as_ref().and_then(|n| n.subnet_group.clone())
}

fn security_groups(network: &Option<NetworkPlacement>) -> Option<Vec<String>> {
    network
        .as_ref()
        .map(|n| n.security_groups.clone())
        .filter(|g| !g.is_empty())
}

fn parameter_group(network: &Option<NetworkPlacement>) -> Option<String> {
    network.as_ref().and_then(|n| n.parameter_group.clone())
}

fn instance_id(value: &str) -> DrResult<InstanceId> {
    InstanceId::parse(value)
}

/// The quarantine security group a request names; `InvalidInput` saying
/// what cannot be done without it.
fn quarantine_group<'a>(group: Option<&'a str>, without: &str) -> DrResult<&'a str> {
    group.filter(|g| !g.is_empty()).ok_or_else(|| {
        DrError::InvalidInput(format!(
            "no quarantine security group is configured (QuarantineSecurityGroupId): {without}"
        ))
    })
}

/// The VPC security groups an instance is in.
fn groups_of(db: &DbInstance) -> Vec<&str> {
    db.vpc_security_groups()
        .iter()
        .filter_map(|g| g.vpc_security_group_id())
        .collect()
}

impl RdsControlPlane {
    /// Moves an instance into `group` alone, applied immediately, unless it
    /// is there already (idempotent).
    async fn move_to_group(
        &self,
        id: &InstanceId,
        groups: &[&str],
        group: &str,
        doing: &str,
    ) -> DrResult<()> {
        if groups == [group] {
            return Ok(());
        }
        self.rds
            .modify_db_instance()
            .db_instance_identifier(id.as_str())
            .vpc_security_group_ids(group)
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("{doing} {id}"), e))?;
        Ok(())
    }

    pub fn new(rds: aws_sdk_rds::Client, cloudwatch: Option<aws_sdk_cloudwatch::Client>) -> Self {
        RdsControlPlane { rds, cloudwatch }
    }

    async fn fetch(&self, id: &InstanceId) -> DrResult<DbInstance> {
        let output = self
            .rds
            .describe_db_instances()
            .db_instance_identifier(id.as_str())
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("describing {id}"), e))?;
        output
            .db_instances()
            .first()
            .cloned()
            .ok_or_else(|| DrError::NotFound(format!("DB instance {id} not found")))
    }

    /// The newest CloudWatch ReplicaLag datapoint of the last 10 minutes.
    async fn replica_lag(&self, id: &InstanceId) -> Option<ReplicaLag> {
        let cloudwatch = self.cloudwatch.as_ref()?;
        let end = Utc::now();
        let start = end - chrono::Duration::minutes(10);
        let output = cloudwatch
            .get_metric_statistics()
            .namespace("AWS/RDS")
            .metric_name("ReplicaLag")
            .dimensions(
                aws_sdk_cloudwatch::types::Dimension::builder()
                    .name("DBInstanceIdentifier")
                    .value(id.as_str())
                    .build(),
            )
            .start_time(to_smithy(start))
            .end_time(to_smithy(end))
            .period(60)
            .statistics(aws_sdk_cloudwatch::types::Statistic::Maximum)
            .send()
            .await
            .map_err(|e| tracing::warn!(instance = %id, error = %map_sdk_error("reading ReplicaLag", e), "no lag figure"))
            .ok()?;
        output
            .datapoints()
            .iter()
            .filter_map(|d| Some((d.timestamp()?.secs(), d.maximum()?)))
            .max_by_key(|(t, _)| *t)
            .map(|(_, seconds)| ReplicaLag {
                seconds,
                bytes: None,
            })
    }

    async fn describe_db(&self, db: &DbInstance) -> DrResult<InstanceDescription> {
        let id = instance_id(db.db_instance_identifier().unwrap_or_default())?;
        let source = db
            .read_replica_source_db_instance_identifier()
            .map(|s| {
                // Cross-region sources are ARNs; keep the identifier part.
                instance_id(s.rsplit(':').next().unwrap_or(s))
            })
            .transpose()?;
        let replica_lag = if source.is_some() {
            self.replica_lag(&id).await
        } else {
            None
        };
        Ok(InstanceDescription {
            network: Some(NetworkPlacement {
                subnet_group: db
                    .db_subnet_group()
                    .and_then(|g| g.db_subnet_group_name())
                    .map(str::to_owned),
                security_groups: groups_of(db).into_iter().map(str::to_owned).collect(),
                parameter_group: db
                    .db_parameter_groups()
                    .first()
                    .and_then(|g| g.db_parameter_group_name())
                    .map(str::to_owned),
            }),
            status: status_from_rds(db.db_instance_status().unwrap_or("unknown")),
            role: if source.is_some() {
                InstanceRole::Replica
            } else {
                InstanceRole::Primary
            },
            endpoint: db.endpoint().and_then(|e| {
                Some(Endpoint {
                    address: e.address()?.to_owned(),
                    port: u16::try_from(e.port()?).ok()?,
                })
            }),
            engine: db.engine().unwrap_or("postgres").to_owned(),
            engine_version: db.engine_version().unwrap_or_default().to_owned(),
            availability_zone: db.availability_zone().map(str::to_owned),
            storage_encrypted: db.storage_encrypted().unwrap_or(false),
            replication_source: source,
            read_replicas: db
                .read_replica_db_instance_identifiers()
                .iter()
                .filter_map(|r| instance_id(r).ok())
                .collect(),
            replica_lag,
            earliest_restorable_time: None,
            latest_restorable_time: db.latest_restorable_time().and_then(to_chrono),
            created_at: db
                .instance_create_time()
                .and_then(to_chrono)
                .unwrap_or_else(Utc::now),
            tags: tags_of(db.tag_list()),
            instance_id: id,
        })
    }

    fn snapshot_from(snapshot: &DbSnapshot) -> DrResult<SnapshotDescription> {
        Ok(SnapshotDescription {
            snapshot_id: SnapshotId::parse(snapshot.db_snapshot_identifier().unwrap_or_default())?,
            source_instance_id: instance_id(snapshot.db_instance_identifier().unwrap_or_default())?,
            snapshot_type: if snapshot.snapshot_type() == Some("automated") {
                SnapshotType::Automated
            } else {
                SnapshotType::Manual
            },
            // RDS says `pending` before a copy starts moving data.
            status: match snapshot.status() {
                Some("available") => SnapshotStatus::Available,
                Some("creating") => SnapshotStatus::Creating,
                Some("copying") | Some("pending") => SnapshotStatus::Copying,
                _ => SnapshotStatus::Failed,
            },
            created_at: snapshot
                .snapshot_create_time()
                .and_then(to_chrono)
                .unwrap_or_else(Utc::now),
            size_bytes: snapshot.allocated_storage().unwrap_or(0).max(0) as u64 * (1 << 30),
            encrypted: snapshot.encrypted().unwrap_or(false),
            engine_version: snapshot.engine_version().unwrap_or_default().to_owned(),
            region: snapshot
                .db_snapshot_arn()
                .and_then(|arn| arn.split(':').nth(3))
                .map(str::to_owned),
            tags: tags_of(snapshot.tag_list()),
            row_counts: None,
            original_created_at: snapshot.original_snapshot_create_time().and_then(to_chrono),
            copied_from: snapshot
                .source_db_snapshot_identifier()
                .map(str::to_owned)
                .or_else(|| tags_of(snapshot.tag_list()).remove(COPY_SOURCE_TAG))
                .map(|source| SnapshotSource {
                    region: snapshot
                        .source_region()
                        .map(str::to_owned)
                        .or_else(|| source.split(':').nth(3).map(str::to_owned)),
                    snapshot: source,
                }),
            kms_key_id: snapshot.kms_key_id().map(str::to_owned),
            percent_progress: snapshot.percent_progress().map(|p| p.clamp(0, 100) as u8),
        })
    }

    async fn fetch_snapshot(&self, id: &SnapshotId) -> DrResult<DbSnapshot> {
        let output = self
            .rds
            .describe_db_snapshots()
            .db_snapshot_identifier(id.as_str())
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("describing snapshot {id}"), e))?;
        output
            .db_snapshots()
            .first()
            .cloned()
            .ok_or_else(|| DrError::NotFound(format!("DB snapshot {id} not found")))
    }

    /// Adds `tags` to the RDS resource `arn` (`what` names it in errors).
    async fn tag_arn(&self, arn: String, tags: &Tags, what: &str) -> DrResult<()> {
        self.rds
            .add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(to_rds_tags(tags)))
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("tagging {what}"), e))?;
        Ok(())
    }

    /// The same control plane in another region (same credentials,
    /// endpoint override and retry settings).
    pub fn in_region(&self, region: &str) -> RdsControlPlane {
        let region = aws_sdk_rds::config::Region::new(region.to_owned());
        RdsControlPlane {
            rds: aws_sdk_rds::Client::from_conf(
                self.rds
                    .config()
                    .to_builder()
                    .region(region.clone())
                    .build(),
            ),
            cloudwatch: self.cloudwatch.as_ref().map(|cw| {
                aws_sdk_cloudwatch::Client::from_conf(
                    cw.config().to_builder().region(region).build(),
                )
            }),
        }
    }

    /// The region this plane's client calls.
    pub fn region(&self) -> Option<&str> {
        self.rds.config().region().map(|r| r.as_ref())
    }

    /// An existing target counts as this request's result when its origin
    /// tag says so; otherwise the name is taken.
    async fn existing_with_origin(
        &self,
        id: &InstanceId,
        origin: &str,
    ) -> DrResult<Option<InstanceDescription>> {
        match self.fetch(id).await {
            Ok(db) => {
                let described = self.describe_db(&db).await?;
                if described.tags.get(ORIGIN_TAG).map(String::as_str) == Some(origin) {
                    Ok(Some(described))
                } else {
                    Err(DrError::AlreadyExists(format!(
                        "DB instance {id} already exists and was not made by this request ({ORIGIN_TAG}={})",
                        described.tags.get(ORIGIN_TAG).map(String::as_str).unwrap_or("none")
                    )))
                }
            }
            Err(DrError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl DatabaseControlPlane for RdsControlPlane {
    async fn describe_instance(&self, id: &InstanceId) -> DrResult<InstanceDescription> {
        let db = self.fetch(id).await?;
        self.describe_db(&db).await
    }

    async fn list_instances(&self) -> DrResult<Vec<InstanceDescription>> {
        let mut out = Vec::new();
        let mut pages = self.rds.describe_db_instances().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_sdk_error("listing DB instances", e))?;
            for db in page.db_instances() {
                out.push(self.describe_db(db).await?);
            }
        }
        out.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        Ok(out)
    }

    async fn list_snapshots(
        &self,
        instance: Option<&InstanceId>,
    ) -> DrResult<Vec<SnapshotDescription>> {
        let mut request = self.rds.describe_db_snapshots();
        if let Some(id) = instance {
            request = request.db_instance_identifier(id.as_str());
        }
        let mut out = Vec::new();
        let mut pages = request.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_sdk_error("listing DB snapshots", e))?;
            for snapshot in page.db_snapshots() {
                out.push(Self::snapshot_from(snapshot)?);
            }
        }
        SnapshotDescription::sort_newest_first(&mut out);
        Ok(out)
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
        self.rds
            .promote_read_replica()
            .db_instance_identifier(id.as_str())
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("promoting {id}"), e))?;
        Ok(PromotionOutcome {
            instance: self.describe_instance(id).await?,
            already_standalone: false,
            lag_at_promotion: before.replica_lag,
        })
    }

    async fn create_read_replica(
        &self,
        request: &CreateReplicaRequest,
    ) -> DrResult<InstanceDescription> {
        match self.fetch(&request.replica_id).await {
            Ok(db) => {
                let existing = self.describe_db(&db).await?;
                if existing.replication_source.as_ref() == Some(&request.source_id) {
                    return Ok(existing);
                }
                return Err(DrError::AlreadyExists(format!(
                    "DB instance {} already exists and is not a replica of {}",
                    request.replica_id, request.source_id
                )));
            }
            Err(DrError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let output = self
            .rds
            .create_db_instance_read_replica()
            .db_instance_identifier(request.replica_id.as_str())
            .source_db_instance_identifier(request.source_id.as_str())
            .set_availability_zone(request.availability_zone.clone())
            .set_db_subnet_group_name(subnet_group(&request.network))
            .set_vpc_security_group_ids(security_groups(&request.network))
            .set_db_parameter_group_name(parameter_group(&request.network))
            .set_tags(Some(to_rds_tags(&request.tags)))
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("creating replica {}", request.replica_id), e))?;
        let db = output.db_instance().ok_or_else(|| {
            DrError::Internal("CreateDBInstanceReadReplica returned no instance".into())
        })?;
        self.describe_db(db).await
    }

    async fn create_snapshot(
        &self,
        request: &CreateSnapshotRequest,
    ) -> DrResult<SnapshotDescription> {
        let created = self
            .rds
            .create_db_snapshot()
            .db_instance_identifier(request.instance_id.as_str())
            .db_snapshot_identifier(request.snapshot_id.as_str())
            .set_tags(Some(to_rds_tags(&request.tags)))
            .send()
            .await;
        match created {
            Ok(output) => output
                .db_snapshot()
                .ok_or_else(|| DrError::Internal("CreateDBSnapshot returned no snapshot".into()))
                .and_then(Self::snapshot_from),
            Err(e) => match map_sdk_error(&format!("snapshotting {}", request.instance_id), e) {
                DrError::AlreadyExists(message) => {
                    let existing = self
                        .list_snapshots(Some(&request.instance_id))
                        .await?
                        .into_iter()
                        .find(|s| s.snapshot_id == request.snapshot_id);
                    existing.ok_or(DrError::AlreadyExists(message))
                }
                other => Err(other),
            },
        }
    }

    async fn restore_from_snapshot(
        &self,
        request: &RestoreSnapshotRequest,
    ) -> DrResult<InstanceDescription> {
        let origin = format!("snapshot:{}", request.snapshot_id);
        if let Some(existing) = self
            .existing_with_origin(&request.target_id, &origin)
            .await?
        {
            return Ok(existing);
        }
        let mut tags = request.tags.clone();
        tags.insert(ORIGIN_TAG.to_owned(), origin);
        let output = self
            .rds
            .restore_db_instance_from_db_snapshot()
            .db_instance_identifier(request.target_id.as_str())
            .db_snapshot_identifier(request.snapshot_id.as_str())
            .set_db_instance_class(request.instance_class.clone())
            .set_db_subnet_group_name(subnet_group(&request.network))
            .set_vpc_security_group_ids(security_groups(&request.network))
            .set_db_parameter_group_name(parameter_group(&request.network))
            .set_tags(Some(to_rds_tags(&tags)))
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("restoring {}", request.snapshot_id), e))?;
        let db = output.db_instance().ok_or_else(|| {
            DrError::Internal("RestoreDBInstanceFromDBSnapshot returned no instance".into())
        })?;
        self.describe_db(db).await
    }

    async fn restore_to_point_in_time(
        &self,
        request: &PointInTimeRestoreRequest,
    ) -> DrResult<InstanceDescription> {
        let origin = format!(
            "pitr:{}@{}",
            request.source_id,
            request.restore_time.timestamp()
        );
        if let Some(existing) = self
            .existing_with_origin(&request.target_id, &origin)
            .await?
        {
            return Ok(existing);
        }
        let source = self.describe_instance(&request.source_id).await?;
        if let Some(latest) = source.latest_restorable_time {
            if request.restore_time > latest {
                return Err(DrError::InvalidInput(format!(
                    "restore time {} is after the latest restorable time of {} ({})",
                    request.restore_time.to_rfc3339(),
                    request.source_id,
                    latest.to_rfc3339()
                )));
            }
        }
        let mut tags = request.tags.clone();
        tags.insert(ORIGIN_TAG.to_owned(), origin);
        let output = self
            .rds
            .restore_db_instance_to_point_in_time()
            .source_db_instance_identifier(request.source_id.as_str())
            .target_db_instance_identifier(request.target_id.as_str())
            .restore_time(to_smithy(request.restore_time))
            .set_db_subnet_group_name(subnet_group(&request.network))
            .set_vpc_security_group_ids(security_groups(&request.network))
            .set_db_parameter_group_name(parameter_group(&request.network))
            .set_tags(Some(to_rds_tags(&tags)))
            .send()
            .await
            .map_err(|e| {
                map_sdk_error(
                    &format!("restoring {} to a point in time", request.source_id),
                    e,
                )
            })?;
        let db = output.db_instance().ok_or_else(|| {
            DrError::Internal("RestoreDBInstanceToPointInTime returned no instance".into())
        })?;
        self.describe_db(db).await
    }

    async fn delete_instance(&self, id: &InstanceId, options: DeleteOptions) -> DrResult<()> {
        let described = self.describe_instance(id).await?;
        let deletion = dr_core::guard::deletion(id, &described.tags, options)?;
        let mut request = self
            .rds
            .delete_db_instance()
            .db_instance_identifier(id.as_str())
            .skip_final_snapshot(!deletion.final_snapshot);
        if deletion.final_snapshot {
            request = request.final_db_snapshot_identifier(format!(
                "{id}-final-{}",
                Utc::now().format("%Y%m%d%H%M%S")
            ));
        }
        request
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("deleting {id}"), e))?;
        Ok(())
    }

    async fn delete_snapshot(&self, id: &SnapshotId) -> DrResult<()> {
        self.rds
            .delete_db_snapshot()
            .db_snapshot_identifier(id.as_str())
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("deleting snapshot {id}"), e))?;
        Ok(())
    }

    async fn change_master_credentials(
        &self,
        id: &InstanceId,
        new_password: &SecretString,
    ) -> DrResult<()> {
        dr_core::guard::master_password(new_password)?;
        self.rds
            .modify_db_instance()
            .db_instance_identifier(id.as_str())
            .master_user_password(new_password.expose_secret())
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("changing credentials of {id}"), e))?;
        Ok(())
    }

    /// Moves the instance into the quarantine security group (and only that
    /// one), applied immediately, then tags it. RDS keeps the instance and
    /// its storage: the writes that never replicated stay for forensics.
    /// RDS refuses the change for an instance that is not in a modifiable
    /// state (`failed`, `incompatible-network`, …): that is `NotReady`, and
    /// the state machine decides whether it may go on without fencing.
    async fn fence_instance(
        &self,
        id: &InstanceId,
        request: &FenceRequest,
    ) -> DrResult<FenceOutcome> {
        let group = quarantine_group(
            request.quarantine_security_group.as_deref(),
            "the old primary cannot be fenced",
        )?;
        let db = self.fetch(id).await?;
        let groups = groups_of(&db);
        let tagged = tags_of(db.tag_list()).contains_key(FENCED_TAG);
        if groups == [group] && tagged {
            return Ok(FenceOutcome {
                already_fenced: true,
                method: format!("already in quarantine security group {group}"),
            });
        }
        self.move_to_group(id, &groups, group, "fencing").await?;
        let arn = db
            .db_instance_arn()
            .map(str::to_owned)
            .ok_or_else(|| DrError::Internal(format!("{id} has no ARN")))?;
        self.rds
            .add_tags_to_resource()
            .resource_name(arn)
            .tags(Tag::builder().key(FENCED_TAG).value(&request.by).build())
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("tagging {id} as fenced"), e))?;
        Ok(FenceOutcome {
            already_fenced: false,
            method: format!(
                "moved from security groups [{}] to quarantine security group {group}",
                groups.join(", ")
            ),
        })
    }

    async fn inject_failure(&self, id: &InstanceId, request: &FailureRequest) -> DrResult<String> {
        let group = quarantine_group(
            request.quarantine_security_group.as_deref(),
            "the drill cannot cut its copy's primary off",
        )?;
        let db = self.fetch(id).await?;
        ensure_failure_target(id, &tags_of(db.tag_list()))?;
        // StopDBInstance is refused for an instance with a read replica:
        // cutting it off the network is the failure RDS lets us make.
        self.move_to_group(id, &groups_of(&db), group, "cutting off")
            .await?;
        Ok(format!(
            "cut off the network: moved into quarantine security group {group}"
        ))
    }

    async fn describe_snapshot(&self, id: &SnapshotId) -> DrResult<SnapshotDescription> {
        Self::snapshot_from(&self.fetch_snapshot(id).await?)
    }

    async fn copy_snapshot(&self, request: &CopySnapshotRequest) -> DrResult<SnapshotDescription> {
        validate_region(&request.source_region)?;
        if self.region() == Some(request.source_region.as_str()) {
            return Err(DrError::InvalidInput(format!(
                "snapshot {} is already in {}; a copy goes to another region",
                request.source_snapshot_id, request.source_region
            )));
        }
        let source = self
            .in_region(&request.source_region)
            .fetch_snapshot(&request.source_snapshot_id)
            .await?;
        // Across regions RDS takes the source by ARN; commercial regions
        // need no presigned URL (only GovCloud reads one).
        let source_arn = source.db_snapshot_arn().map(str::to_owned).ok_or_else(|| {
            DrError::Internal(format!(
                "snapshot {} has no ARN",
                request.source_snapshot_id
            ))
        })?;
        let target = &request.target_snapshot_id;
        match self.fetch_snapshot(target).await {
            Ok(existing) => {
                let described = Self::snapshot_from(&existing)?;
                let source = described.copied_from.as_ref().map(|c| c.snapshot.as_str());
                if source == Some(source_arn.as_str()) {
                    return Ok(described);
                }
                return Err(DrError::AlreadyExists(format!(
                    "DB snapshot {target} already exists and is not a copy of {source_arn} (it copies {})",
                    source.unwrap_or("nothing")
                )));
            }
            Err(DrError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let mut tags = request.tags.clone();
        tags.insert(COPY_SOURCE_TAG.to_owned(), source_arn.clone());
        let output = self
            .rds
            .copy_db_snapshot()
            .source_db_snapshot_identifier(&source_arn)
            .target_db_snapshot_identifier(target.as_str())
            .kms_key_id(&request.kms_key_id)
            .set_tags(Some(to_rds_tags(&tags)))
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("copying {source_arn} to {target}"), e))?;
        output
            .db_snapshot()
            .ok_or_else(|| DrError::Internal("CopyDBSnapshot returned no snapshot".into()))
            .and_then(Self::snapshot_from)
    }

    async fn tag_snapshot(&self, id: &SnapshotId, tags: &Tags) -> DrResult<()> {
        let arn = self
            .fetch_snapshot(id)
            .await?
            .db_snapshot_arn()
            .map(str::to_owned)
            .ok_or_else(|| DrError::Internal(format!("DB snapshot {id} has no ARN")))?;
        self.tag_arn(arn, tags, &format!("snapshot {id}")).await
    }

    async fn add_tags(&self, instance: &InstanceId, tags: &Tags) -> DrResult<()> {
        let arn = self
            .fetch(instance)
            .await?
            .db_instance_arn()
            .map(str::to_owned)
            .ok_or_else(|| DrError::Internal(format!("DB instance {instance} has no ARN")))?;
        self.tag_arn(arn, tags, instance.as_str()).await
    }
}

/// RDS in every region a deployment uses: one client per region, made on
/// first use from the home client's configuration and kept.
#[derive(Debug)]
pub struct RdsRegions {
    home: RdsControlPlane,
    home_region: String,
    planes: std::sync::Mutex<std::collections::BTreeMap<String, std::sync::Arc<RdsControlPlane>>>,
}

impl RdsRegions {
    pub fn new(home: RdsControlPlane) -> Self {
        let home_region = home.region().unwrap_or("us-east-1").to_owned();
        RdsRegions {
            home,
            home_region,
            planes: Default::default(),
        }
    }
}

impl RegionalControlPlanes for RdsRegions {
    fn home_region(&self) -> &str {
        &self.home_region
    }

    fn control_plane(&self, region: &str) -> DrResult<std::sync::Arc<dyn DatabaseControlPlane>> {
        validate_region(region)?;
        let mut planes = self
            .planes
            .lock()
            .map_err(|_| DrError::Internal("the region client cache is poisoned".into()))?;
        let plane = planes
            .entry(region.to_owned())
            .or_insert_with(|| std::sync::Arc::new(self.home.in_region(region)))
            .clone();
        Ok(plane)
    }
}
