//! The region failover's own steps: confirm, choose the copy, restore it
//! (and adopt or discard the restore), verify it, scale the fleet.

use chrono::Utc;
use dr_core::*;
use serde::{Deserialize, Serialize};

use super::*;
use crate::corruption::loss::ApprovalDraft;
use crate::failover::{probe_with_secret, SqlAccess};
use crate::journal::{journaled, JournalRef, Journaled};
use crate::Ports;

/// Tag naming the recovery a restored instance belongs to.
pub const RECOVERY_TAG: &str = "dr:recovery";

/// One look at a region: its outcome as an observation. The adapters bound
/// every call (the AWS clients' connect and attempt timeouts), so a region
/// that does not answer is a timeout, not a hang.
async fn look<T>(what: &str, call: impl std::future::Future<Output = DrResult<T>>) -> Observation {
    Observation::of_call(what, &call.await)
}

// ----- confirm ----------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRegionInput {
    pub plan: RegionPlan,
    /// The database as the application reaches it (from `probe-record`,
    /// which runs in the VPC).
    pub endpoint: Observation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRegionOutput {
    pub decision: RegionDecision,
    pub reasons: Vec<String>,
    pub evidence: RegionEvidence,
    pub checked_at: chrono::DateTime<Utc>,
}

/// Looks at the primary region's RDS API (twice, independently) and the
/// backup region's, and judges with the endpoint's observation. Changes
/// nothing.
pub async fn confirm_region(
    ports: &Ports,
    input: ConfirmRegionInput,
) -> DrResult<ConfirmRegionOutput> {
    let plan = &input.plan;
    let (primary_instance, primary_listing) =
        match ports.regions.control_plane(&plan.primary_region) {
            Err(e) => {
                let broken = Observation::Broken {
                    detail: format!("no client for {}: {e}", plan.primary_region),
                };
                (broken.clone(), broken)
            }
            Ok(primary) => (
                look(
                    &format!("RDS in {} describing {}", plan.primary_region, plan.primary),
                    primary.describe_instance(&plan.primary),
                )
                .await,
                look(
                    &format!("RDS in {} listing instances", plan.primary_region),
                    primary.list_instances(),
                )
                .await,
            ),
        };
    let backup = match ports.regions.control_plane(&plan.backup_region) {
        Ok(backup) => {
            look(
                &format!("RDS in {}", plan.backup_region),
                backup.list_snapshots(None),
            )
            .await
        }
        Err(e) => Observation::Broken {
            detail: format!("no client for {}: {e}", plan.backup_region),
        },
    };
    let evidence = RegionEvidence {
        primary_instance,
        primary_listing,
        endpoint: input.endpoint,
        backup,
    };
    let (decision, reasons) = judge_region(plan.mode, &evidence);
    Ok(ConfirmRegionOutput {
        decision,
        reasons,
        evidence,
        checked_at: dr_core::clock::now(),
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeRecordInput {
    pub plan: RegionPlan,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeRecordOutput {
    pub endpoint: Observation,
}

/// The database as the application reaches it: the record's target (as the
/// plan read it), on the application's port, with the database's
/// credentials. Runs in the VPC.
pub async fn probe_record(ports: &Ports, input: ProbeRecordInput) -> DrResult<ProbeRecordOutput> {
    let plan = &input.plan;
    let Some(value) = &plan.database_record else {
        return Ok(ProbeRecordOutput {
            endpoint: Observation::Broken {
                detail: format!("{} does not exist", plan.dns.record_name),
            },
        });
    };
    let endpoint = Endpoint {
        address: value.clone(),
        port: plan.database_port,
    };
    let probe = probe_with_secret(
        ports,
        &SqlAccess {
            endpoint: &endpoint,
            database: &plan.db_name,
            secret_id: &plan.credentials_secret_id,
            connect_timeout_seconds: plan.connect_timeout_seconds,
            statement_timeout_ms: 5_000,
            tls_mode: None,
        },
        false,
    )
    .await?;
    let what = format!("{} ({value}:{})", plan.dns.record_name, plan.database_port);
    let reason = probe.reason.clone().unwrap_or_default();
    let endpoint = if probe.healthy {
        Observation::Answered {
            detail: format!("{what} serves queries"),
        }
    } else {
        match probe.failure.map(ProbeFailure::class) {
            Some(ProbeClass::DatabaseDown) => Observation::Silent {
                detail: format!("{what}: {reason}"),
            },
            _ => Observation::Broken {
                detail: format!("{what}: our probe cannot judge: {reason}"),
            },
        }
    };
    Ok(ProbeRecordOutput { endpoint })
}

// ----- choose ------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChooseCopyInput {
    pub plan: RegionPlan,
    /// Planned mode: the final copy it just made.
    #[serde(default)]
    pub snapshot_id: Option<SnapshotId>,
    /// The confirmation's reasons, for the question.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Planned mode: rows per table once the writes stopped, the baseline
    /// the restore must equal.
    #[serde(default)]
    pub baseline: Option<std::collections::BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChooseCopyOutput {
    pub copy: ChosenCopy,
    pub approval: ApprovalDraft,
}

/// The newest verified copy in the backup region and the question the
/// operator is asked about it. No verified copy: `NotFound` (nothing can be
/// restored; the run pages).
pub async fn choose_copy_step(ports: &Ports, input: ChooseCopyInput) -> DrResult<ChooseCopyOutput> {
    let plan = &input.plan;
    let copies = ports
        .regions
        .control_plane(&plan.backup_region)?
        .list_snapshots(None)
        .await?;
    let now = dr_core::clock::now();
    let copy = choose_copy(
        &copies,
        &plan.database,
        input.snapshot_id.as_ref(),
        input.baseline.as_ref(),
        now,
        plan.rpo_objective_seconds,
    )
    .ok_or_else(|| {
        DrError::NotFound(format!(
            "no verified copy of {} in {}{}: nothing to restore (is snapshot replication running?)",
            plan.database,
            plan.backup_region,
            input
                .snapshot_id
                .as_ref()
                .map(|s| format!(" named {s}"))
                .unwrap_or_default()
        ))
    })?;
    let approval = question(plan, &copy, &input.reasons, now);
    Ok(ChooseCopyOutput { copy, approval })
}

/// Pure: what the operator is asked before anything is created.
pub fn question(
    plan: &RegionPlan,
    copy: &ChosenCopy,
    reasons: &[String],
    now: chrono::DateTime<Utc>,
) -> ApprovalDraft {
    let elapsed = (now - plan.started_at).num_milliseconds() as f64 / 1000.0;
    let mut facts = reasons.to_vec();
    facts.push(format!(
        "copy {} in {} holds the data as of {}: everything written after it is lost ({} old)",
        copy.snapshot_id,
        plan.backup_region,
        copy.data_time.to_rfc3339(),
        crate::report::seconds(Some(copy.age_seconds))
    ));
    if copy.rpo_met {
        facts.push(format!(
            "within the RPO ({})",
            crate::report::seconds(Some(plan.rpo_objective_seconds))
        ));
    } else {
        facts.push(format!(
            "RPO MISSED: the copy is older than the RPO ({}); the report will say so",
            crate::report::seconds(Some(plan.rpo_objective_seconds))
        ));
    }
    facts.push(format!(
        "RTO budget left: {} of {}",
        crate::report::seconds(Some((plan.rto_objective_seconds - elapsed).max(0.0))),
        crate::report::seconds(Some(plan.rto_objective_seconds))
    ));
    ApprovalDraft {
        question: format!(
            "Fail {} over to {}: restore {} into {} and point {} at it?",
            plan.database,
            plan.backup_region,
            copy.snapshot_id,
            plan.restored_instance,
            plan.dns.record_name
        ),
        facts,
        proposed_action: format!(
            "restore {} in {} into {}{}, verify it against the copy's row counts{}, point {} at it, build the replica {}, record {} as the primary",
            copy.snapshot_id,
            plan.backup_region,
            plan.restored_instance,
            plan.instance_class
                .as_ref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            plan.fleet
                .as_ref()
                .map(|f| format!(", raise {} to {}", f.auto_scaling_group, f.desired_capacity))
                .unwrap_or_default(),
            plan.dns.record_name,
            plan.new_replica,
            plan.restored_instance
        ),
        default_action: format!(
            "nothing is created in {}; {} stays pointed at {} in {}, and on-call is paged",
            plan.backup_region, plan.dns.record_name, plan.primary, plan.primary_region
        ),
    }
}

// ----- restore ------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum RegionRestoreInput {
    /// Restore the copy into the plan's new instance (idempotent).
    Start {
        plan: Box<RegionPlan>,
        snapshot_id: SnapshotId,
    },
    /// The record points at the restore: it is no longer throw-away.
    Adopt { plan: Box<RegionPlan> },
    /// The run ends without a switch: delete what it restored (never the
    /// instance the record points at, never one it adopted).
    Discard { plan: Box<RegionPlan> },
    /// A run died outside its Catch (failed, timed out, stopped): what the
    /// EventBridge rule on its status change sends. Deletes what it restored
    /// and never switched to, as `discard` would have.
    Sweep {
        execution_name: String,
        /// The execution's input, as a JSON string.
        input: String,
        status: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionRestoreOutput {
    /// The restore (none: a sweep found nothing of the run).
    pub instance_id: Option<InstanceId>,
    pub status: String,
    pub deleted: Vec<InstanceId>,
    /// What changed; `None` when it was done already.
    pub mutation: Option<String>,
}

impl Journaled for RegionRestoreOutput {
    fn change(&self) -> Option<String> {
        self.mutation.clone()
    }
}

fn journal_of(plan: &RegionPlan) -> JournalRef {
    JournalRef {
        recovery_id: plan.recovery_id.clone(),
        execution: plan.recovery_id.clone(),
    }
}

pub async fn region_restore(
    ports: &Ports,
    input: RegionRestoreInput,
) -> DrResult<RegionRestoreOutput> {
    match input {
        RegionRestoreInput::Start { plan, snapshot_id } => {
            let what = format!(
                "restoring {snapshot_id} into {} in {}",
                plan.restored_instance, plan.backup_region
            );
            journaled(
                ports,
                Some(&journal_of(&plan)),
                "restore",
                &what,
                start_restore(ports, &plan, &snapshot_id),
            )
            .await
        }
        RegionRestoreInput::Adopt { plan } => {
            let what = format!(
                "keeping {} (the record points at it)",
                plan.restored_instance
            );
            journaled(
                ports,
                Some(&journal_of(&plan)),
                "adopt",
                &what,
                adopt(ports, &plan),
            )
            .await
        }
        RegionRestoreInput::Discard { plan } => {
            discard(ports, &plan.recovery_id, &plan.backup_region, &plan.dns).await
        }
        RegionRestoreInput::Sweep {
            execution_name,
            input,
            status,
        } => {
            if !["FAILED", "TIMED_OUT", "ABORTED"].contains(&status.as_str()) {
                return Err(DrError::InvalidInput(format!(
                    "status {status:?} is no ended execution"
                )));
            }
            // Only what finding its resources needs: a request the run
            // itself refused may still have restored nothing.
            let request: serde_json::Value = serde_json::from_str(&input).map_err(|e| {
                DrError::InvalidInput(format!("the execution's input is not JSON: {e}"))
            })?;
            let field = |name: &str| {
                request
                    .get(name)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| DrError::InvalidInput(format!("the input names no {name}")))
            };
            let database = field("database")?;
            let backup_region = field("backup_region")?;
            validate_database_name(&database)?;
            validate_region(&backup_region)?;
            let topology = ports.topology.get(&database).await?.ok_or_else(|| {
                DrError::InvalidInput(format!("database {database} is not registered"))
            })?;
            // The writes a planned run stopped come back through the
            // data-corruption cleanup, which the same rule calls: it runs in
            // the VPC, where SQL is; this reads Route 53, which is not.
            discard(ports, &execution_name, &backup_region, &topology.dns).await
        }
    }
}

async fn start_restore(
    ports: &Ports,
    plan: &RegionPlan,
    snapshot_id: &SnapshotId,
) -> DrResult<RegionRestoreOutput> {
    let backup = ports.regions.control_plane(&plan.backup_region)?;
    let existed = match backup.describe_instance(&plan.restored_instance).await {
        Ok(d) if d.tags.get(RECOVERY_TAG) == Some(&plan.recovery_id) => true,
        Ok(_) => {
            return Err(DrError::AlreadyExists(format!(
                "{} exists in {} and is not this recovery's",
                plan.restored_instance, plan.backup_region
            )))
        }
        Err(DrError::NotFound(_)) => false,
        Err(e) => return Err(e),
    };
    // A rehearsal's restore is the drill's too (its tags first: the drill's
    // cleanup and IAM scope find it by them).
    let mut tags = plan.instance_tags.clone();
    tags.extend([
        (EPHEMERAL_TAG.to_owned(), "true".to_owned()),
        (RECOVERY_TAG.to_owned(), plan.recovery_id.clone()),
        ("dr:region-failover".to_owned(), plan.database.clone()),
        ("dr:restored-from".to_owned(), snapshot_id.to_string()),
    ]);
    let restored = backup
        .restore_from_snapshot(&RestoreSnapshotRequest {
            snapshot_id: snapshot_id.clone(),
            target_id: plan.restored_instance.clone(),
            instance_class: plan.instance_class.clone(),
            tags,
            network: plan.network.clone(),
        })
        .await?;
    Ok(RegionRestoreOutput {
        instance_id: Some(restored.instance_id),
        status: restored.status.to_string(),
        deleted: Vec::new(),
        mutation: (!existed).then(|| {
            format!(
                "restored {snapshot_id} into {} in {}",
                plan.restored_instance, plan.backup_region
            )
        }),
    })
}

async fn adopt(ports: &Ports, plan: &RegionPlan) -> DrResult<RegionRestoreOutput> {
    if plan.mode == RegionMode::Rehearsal {
        return Err(DrError::Unsafe(format!(
            "{} is a rehearsal's restore: it is never kept",
            plan.restored_instance
        )));
    }
    let backup = ports.regions.control_plane(&plan.backup_region)?;
    let described = backup.describe_instance(&plan.restored_instance).await?;
    if described.tags.get(RECOVERY_TAG) != Some(&plan.recovery_id) {
        return Err(DrError::Unsafe(format!(
            "{} is not this recovery's restore",
            plan.restored_instance
        )));
    }
    let already = !described.is_ephemeral();
    if !already {
        let tags: Tags = [(EPHEMERAL_TAG.to_owned(), "false".to_owned())].into();
        backup.add_tags(&plan.restored_instance, &tags).await?;
    }
    Ok(RegionRestoreOutput {
        instance_id: Some(plan.restored_instance.clone()),
        status: described.status.to_string(),
        deleted: Vec::new(),
        mutation: (!already).then(|| {
            format!(
                "{} is the primary now: no longer throw-away",
                plan.restored_instance
            )
        }),
    })
}

async fn discard(
    ports: &Ports,
    recovery_id: &str,
    backup_region: &str,
    dns: &DnsBinding,
) -> DrResult<RegionRestoreOutput> {
    let backup = ports.regions.control_plane(backup_region)?;
    let record = ports
        .dns
        .get_record(&dns.hosted_zone, &dns.record_name, "CNAME")
        .await?
        .map(|r| r.value);
    let mut deleted = Vec::new();
    let mut restored = None;
    for instance in backup.list_instances().await? {
        let ours = instance.tags.get(RECOVERY_TAG).map(String::as_str) == Some(recovery_id);
        if ours {
            restored = Some(instance.instance_id.clone());
        }
        if !ours || !instance.is_ephemeral() {
            continue;
        }
        let pointed_at = instance
            .endpoint
            .as_ref()
            .is_some_and(|e| record.as_deref() == Some(e.address.as_str()));
        if pointed_at {
            continue;
        }
        match backup
            .delete_instance(&instance.instance_id, DeleteOptions::default())
            .await
        {
            Ok(()) | Err(DrError::NotFound(_)) => deleted.push(instance.instance_id.clone()),
            Err(e) => return Err(e),
        }
    }
    let instance_id = deleted.first().cloned().or(restored);
    Ok(RegionRestoreOutput {
        instance_id,
        status: if deleted.is_empty() {
            "nothing to delete".to_owned()
        } else {
            "deleted".to_owned()
        },
        mutation: (!deleted.is_empty()).then(|| {
            let names: Vec<String> = deleted.iter().map(|d| d.to_string()).collect();
            format!("deleted the unswitched restore {}", names.join(", "))
        }),
        deleted,
    })
}

// ----- verify --------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRegionRestoreInput {
    pub plan: RegionPlan,
    pub copy: ChosenCopy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRegionRestoreOutput {
    pub passed: bool,
    pub problems: Vec<String>,
    /// The restore's rows per table.
    pub row_counts: std::collections::BTreeMap<String, u64>,
    /// Whether the copy's recorded counts were compared (RDS records none).
    pub baseline_compared: bool,
    pub checks_run: usize,
}

/// A read, a write, the integrity verifier, and the row counts against the
/// copy's (every table exactly), on the restore before anything points at it.
pub async fn verify_region_restore(
    ports: &Ports,
    input: VerifyRegionRestoreInput,
) -> DrResult<VerifyRegionRestoreOutput> {
    let plan = &input.plan;
    let (description, target) = crate::corruption::instance_target_in(
        ports,
        Some(&plan.backup_region),
        &plan.restored_instance,
        &plan.db_name,
        &plan.credentials_secret_id,
        120_000,
    )
    .await?;
    // A copy taken before a rotation holds the old passwords.
    crate::restored::align_passwords(
        ports,
        Some(&plan.backup_region),
        &description,
        &target,
        plan.application.as_ref(),
    )
    .await?;
    let mut problems = Vec::new();
    let probe = ports.sql.probe(&target, ProbeKind::ReadWrite).await?;
    if !probe.healthy {
        problems.push(format!(
            "cannot read and write on the restore: {}",
            probe.reason.unwrap_or_default()
        ));
        return Ok(VerifyRegionRestoreOutput {
            passed: false,
            problems,
            row_counts: Default::default(),
            baseline_compared: false,
            checks_run: 0,
        });
    }
    let summary = ports
        .integrity
        .verify(&target, input.copy.row_counts.as_ref(), 0.0, &[])
        .await?;
    problems.extend(summary.findings.iter().cloned());
    Ok(VerifyRegionRestoreOutput {
        passed: problems.is_empty(),
        problems,
        row_counts: summary.row_counts,
        baseline_compared: input.copy.row_counts.is_some(),
        checks_run: summary.checks_run,
    })
}

// ----- fleet -------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScaleFleetInput {
    /// Raise the group to the desired capacity (never lowers it).
    Raise {
        fleet: FleetTarget,
        region: String,
        #[serde(default)]
        journal: Option<JournalRef>,
    },
    /// How far it has come.
    Status { fleet: FleetTarget, region: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleFleetOutput {
    pub auto_scaling_group: String,
    pub desired_capacity: u32,
    pub in_service: u32,
    pub ready: bool,
    pub mutation: Option<String>,
}

impl Journaled for ScaleFleetOutput {
    fn change(&self) -> Option<String> {
        self.mutation.clone()
    }
}

fn fleet_ref(fleet: &FleetTarget, region: &str) -> DrResult<FleetRef> {
    validate_region(region)?;
    Ok(FleetRef {
        auto_scaling_group: fleet.auto_scaling_group.clone(),
        target_group_arn: None,
        region: Some(region.to_owned()),
    })
}

pub async fn scale_fleet(ports: &Ports, input: ScaleFleetInput) -> DrResult<ScaleFleetOutput> {
    match input {
        ScaleFleetInput::Raise {
            fleet,
            region,
            journal,
        } => {
            let what = format!(
                "raising {} in {region} to {}",
                fleet.auto_scaling_group, fleet.desired_capacity
            );
            journaled(ports, journal.as_ref(), "fleet", &what, async {
                let reference = fleet_ref(&fleet, &region)?;
                let before = ports.fleet.describe_fleet(&reference).await?;
                let raise = before.desired_capacity < fleet.desired_capacity;
                if raise {
                    ports
                        .fleet
                        .set_desired_capacity(&reference, fleet.desired_capacity)
                        .await?;
                }
                let mut out = fleet_status(ports, &fleet, &region).await?;
                out.mutation = raise.then(|| {
                    format!(
                        "raised {} in {region} from {} to {} instances",
                        fleet.auto_scaling_group, before.desired_capacity, fleet.desired_capacity
                    )
                });
                Ok(out)
            })
            .await
        }
        ScaleFleetInput::Status { fleet, region } => fleet_status(ports, &fleet, &region).await,
    }
}

async fn fleet_status(
    ports: &Ports,
    fleet: &FleetTarget,
    region: &str,
) -> DrResult<ScaleFleetOutput> {
    let status = ports
        .fleet
        .describe_fleet(&fleet_ref(fleet, region)?)
        .await?;
    Ok(ScaleFleetOutput {
        auto_scaling_group: fleet.auto_scaling_group.clone(),
        desired_capacity: status.desired_capacity,
        in_service: status.healthy_targets,
        ready: status.healthy_targets >= fleet.desired_capacity,
        mutation: None,
    })
}
