//! The failover rehearsal. The drill builds a throw-away copy of the
//! production topology (its restored primary, a replica of it, a `drill-…`
//! record in the production zone, registered under a drill database name),
//! makes the copy's primary fail, and starts the real `database-failover`
//! state machine on the copy. What that run came to is judged here: its
//! outcome, RTO and RPO from its own report, the marker rows it kept, where
//! the drill record points, the definition it ran, and that production's
//! record still points at production's primary.

use super::*;

/// The state machine the failover rehearsal runs, as its reports are filed.
pub const REHEARSED_SCENARIO: &str = "database-failover";

/// Which production workflow a rehearsal ran on the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RehearsedWorkflow {
    /// `database-failover`, after the drill made the copy's primary fail.
    #[default]
    Failover,
    /// `data-corruption`, after the drill damaged the copy's primary.
    Corruption,
}

impl RehearsedWorkflow {
    /// The state machine, as its reports are filed.
    pub fn scenario(self) -> &'static str {
        match self {
            RehearsedWorkflow::Failover => REHEARSED_SCENARIO,
            RehearsedWorkflow::Corruption => crate::corruption::report::SCENARIO,
        }
    }

    /// The drill report's test.
    pub fn test_name(self) -> &'static str {
        match self {
            RehearsedWorkflow::Failover => "failover_test",
            RehearsedWorkflow::Corruption => "corruption_test",
        }
    }

    fn markers(self) -> MarkerSet {
        match self {
            RehearsedWorkflow::Failover => MarkerSet::Failover,
            RehearsedWorkflow::Corruption => MarkerSet::Corruption,
        }
    }

    /// When the rows that must survive were written.
    fn kept_rows(self) -> &'static str {
        match self {
            RehearsedWorkflow::Failover => "replicated before the failure",
            RehearsedWorkflow::Corruption => "written before the damage",
        }
    }
}
/// Marker rows written (and replicated) before the failure.
pub const MARKER_ROWS: u32 = 3;
/// The marker written just before the failure, not waited for: lost or
/// kept, it is what asynchronous replication risks.
pub const IN_FLIGHT: &str = "in-flight";

/// The marker written after the damage: the data-corruption recovery
/// discards it with the damage.
pub const AFTER_DAMAGE: &str = "after-damage";

/// The names of the drill's marker rows: `drill:<id>:1` … and the one in
/// flight.
pub fn marker_names(drill_id: &str, rows: u32) -> (Vec<String>, String) {
    (
        (1..=rows)
            .map(|n| format!("drill:{drill_id}:{n}"))
            .collect(),
        format!("drill:{drill_id}:{IN_FLIGHT}"),
    )
}

/// Pure: the copy's database name (`drill-<id>-<database>`) and record
/// (`drill-<id>.<production record>`, in production's zone).
pub fn copy_names(drill_id: &str, production: &Topology) -> DrResult<(String, String)> {
    let short = short_drill_id(drill_id);
    if short.is_empty() {
        return Err(DrError::InvalidInput(
            "drill_id needs letters or digits".to_owned(),
        ));
    }
    let database: String = format!("{DRILL_PREFIX}{short}-{}", production.database)
        .chars()
        .take(63)
        .collect();
    let database = database.trim_end_matches('-').to_owned();
    validate_database_name(&database)?;
    let record = format!(
        "{DRILL_PREFIX}{short}.{}",
        production.dns.record_name.trim_end_matches('.')
    );
    validate_dns_name("the drill's record", &record)?;
    Ok((database, record))
}

/// Pure: the copy's topology: production's shape (zone, TTL, SQL database,
/// credentials, zones, region) over the drill's instances, tagged for the
/// drill so that what the failover creates is the drill's too.
pub fn copy_topology(
    drill_id: &str,
    source: &InstanceId,
    production: &Topology,
    primary: &InstanceId,
    replica: &InstanceId,
) -> DrResult<Topology> {
    let (database, record) = copy_names(drill_id, production)?;
    let topology = Topology {
        database,
        primary: primary.clone(),
        replicas: vec![replica.clone()],
        fenced: Vec::new(),
        retired: Vec::new(),
        db_name: production.db_name.clone(),
        credentials_secret_id: production.credentials_secret_id.clone(),
        dns: DnsBinding {
            hosted_zone: production.dns.hosted_zone.clone(),
            record_name: record,
            ttl: production.dns.ttl,
        },
        availability_zones: production.availability_zones.clone(),
        region: production.region.clone(),
        // Production's database role and its secret (read, never written):
        // the rehearsed data-corruption recovery stops and gives back that
        // role's writes on the copy. No deployment is named anywhere for
        // the copy: nothing of the application is restarted for it.
        application: production.application.clone(),
        instance_prefix: primary.as_str().to_owned(),
        generation: 0,
        version: 0,
        updated_at: None,
        updated_by: Some(format!("drill {drill_id}")),
        tags: drill_tags(drill_id, source),
    };
    topology.validate()?;
    Ok(topology)
}

/// What the drill registered: the copy, and the production database it
/// copies (read, never changed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyRegistration {
    pub database: String,
    pub hosted_zone: String,
    pub record_name: String,
    pub primary: InstanceId,
    pub replica: InstanceId,
    pub production: ProductionDatabase,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductionDatabase {
    pub database: String,
    pub hosted_zone: String,
    pub record_name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum DrillCopyInput {
    /// A replica of the restore: the copy's replica.
    Replica {
        drill_id: String,
        database: InstanceId,
        restore_instance_id: InstanceId,
        replica_instance_id: InstanceId,
        #[serde(default)]
        availability_zones: Vec<String>,
    },
    /// The copy in the registry, and its record at the restore.
    Register {
        drill_id: String,
        database: InstanceId,
        restore_instance_id: InstanceId,
        replica_instance_id: InstanceId,
    },
    /// The copy's primary fails.
    Fail {
        drill_id: String,
        instance_id: InstanceId,
        #[serde(default)]
        quarantine_security_group: Option<String>,
    },
    /// The copy's primary can be restored to a point in time: snapshotted
    /// when it has no restorable window yet (the local stack's base of a
    /// point-in-time restore; RDS opens the window with its own first
    /// backup of a promoted or restored instance, which this waits for).
    Base {
        drill_id: String,
        copy_database: String,
        /// Ready only once the window reaches this moment too (RDS's
        /// latest restorable time trails the present by minutes: the
        /// damage must be inside the window the recovery searches).
        #[serde(default)]
        past: Option<DateTime<Utc>>,
    },
    /// The region failover's input for the region-restore rehearsal, or
    /// why it is not run.
    RegionPlan {
        drill_id: String,
        database: InstanceId,
        copy: Box<CopyRegistration>,
        request: Box<DrillRequest>,
    },
    /// What the region-restore rehearsal came to: its test's result.
    RehearsedRegion {
        copy: Box<CopyRegistration>,
        backup_region: String,
        state_machine_arn: String,
        execution_name: String,
        #[serde(default)]
        error: Option<Value>,
    },
    /// What a rehearsal came to: its test's result.
    Rehearsed {
        drill_id: String,
        copy: Box<CopyRegistration>,
        #[serde(default)]
        workflow: RehearsedWorkflow,
        /// The copy's primary the rehearsal had to replace (default: the
        /// registered one).
        #[serde(default)]
        replaced_instance_id: Option<InstanceId>,
        state_machine_arn: String,
        execution_name: String,
        /// The marker count on the copy's primary afterwards (none: not
        /// counted).
        #[serde(default)]
        markers: Option<MarkersCounted>,
        #[serde(default = "marker_rows")]
        rows: u32,
        /// The child's error, when it did not succeed.
        #[serde(default)]
        error: Option<Value>,
    },
}

fn marker_rows() -> u32 {
    MARKER_ROWS
}

/// The marker rows found on the copy's primary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkersCounted {
    pub instance_id: InstanceId,
    pub found: Vec<String>,
    pub missing: Vec<String>,
}

pub async fn drill_copy(ports: &Ports, input: DrillCopyInput) -> DrResult<Value> {
    match input {
        DrillCopyInput::Replica {
            drill_id,
            database,
            restore_instance_id,
            replica_instance_id,
            availability_zones,
        } => crate::to_value(
            drill_replica(
                ports,
                DrillReplicaInput {
                    drill_id,
                    database,
                    restore_instance_id,
                    replica_instance_id,
                    availability_zones,
                },
            )
            .await?,
        ),
        DrillCopyInput::Register {
            drill_id,
            database,
            restore_instance_id,
            replica_instance_id,
        } => crate::to_value(
            register_copy(
                ports,
                &drill_id,
                &database,
                &restore_instance_id,
                &replica_instance_id,
            )
            .await?,
        ),
        DrillCopyInput::Fail {
            drill_id,
            instance_id,
            quarantine_security_group,
        } => {
            let described = ports.control_plane.describe_instance(&instance_id).await?;
            ensure_drill_resource(&described, &drill_id)?;
            let how = ports
                .control_plane
                .inject_failure(
                    &instance_id,
                    &FailureRequest {
                        quarantine_security_group: quarantine_security_group
                            .filter(|g| !g.is_empty()),
                    },
                )
                .await?;
            tracing::warn!(instance = %instance_id, how, "the drill made its copy's primary fail");
            Ok(json!({"instance_id": instance_id, "how": how, "at": dr_core::clock::now()}))
        }
        DrillCopyInput::Base {
            drill_id,
            copy_database,
            past,
        } => pitr_base(ports, &drill_id, &copy_database, past).await,
        DrillCopyInput::RegionPlan {
            drill_id,
            database,
            copy,
            request,
        } => {
            request.check()?;
            crate::to_value(region_rehearsal_plan(&drill_id, &database, &copy, &request))
        }
        DrillCopyInput::RehearsedRegion {
            copy,
            backup_region,
            state_machine_arn,
            execution_name,
            error,
        } => {
            let facts = RegionRehearsalFacts::gather(
                ports,
                &copy,
                &backup_region,
                &state_machine_arn,
                &execution_name,
                error,
            )
            .await?;
            crate::to_value(judge_region_rehearsal(&facts))
        }
        DrillCopyInput::Rehearsed {
            drill_id,
            copy,
            workflow,
            replaced_instance_id,
            state_machine_arn,
            execution_name,
            markers,
            rows,
            error,
        } => {
            let facts = RehearsalFacts::gather(
                ports,
                &drill_id,
                &copy,
                workflow,
                replaced_instance_id,
                &state_machine_arn,
                &execution_name,
                markers,
                rows,
                error,
            )
            .await?;
            crate::to_value(judge_rehearsal(&facts))
        }
    }
}

/// The drill's copy as registered: `Unsafe` unless it is this drill's.
pub(crate) async fn registered_copy(
    ports: &Ports,
    copy: &str,
    drill_id: &str,
) -> DrResult<Topology> {
    let topology =
        ports.topology.get(copy).await?.ok_or_else(|| {
            DrError::NotFound(format!("the drill's copy {copy} is not registered"))
        })?;
    if topology.drill_id() != Some(drill_id) {
        return Err(DrError::Unsafe(format!(
            "{copy} is not drill {drill_id}'s copy"
        )));
    }
    Ok(topology)
}

/// Pure: the start of an instance's restorable window, when it has one
/// that reaches `past` (if given).
pub fn restorable_since(
    description: &InstanceDescription,
    past: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match (
        description.earliest_restorable_time,
        description.latest_restorable_time,
    ) {
        (Some(earliest), Some(latest)) if earliest < latest && past.is_none_or(|p| latest >= p) => {
            Some(earliest)
        }
        _ => None,
    }
}

/// See [`DrillCopyInput::Base`]: `ready` once the copy's primary has a
/// restorable window. Idempotent: the snapshot is taken once.
async fn pitr_base(
    ports: &Ports,
    drill_id: &str,
    copy_database: &str,
    past: Option<DateTime<Utc>>,
) -> DrResult<Value> {
    let copy = registered_copy(ports, copy_database, drill_id).await?;
    let primary = ports.control_plane.describe_instance(&copy.primary).await?;
    ensure_drill_resource(&primary, drill_id)?;
    if let Some(since) = restorable_since(&primary, past) {
        return Ok(json!({"ready": true, "instance_id": copy.primary, "restorable_since": since}));
    }
    if restorable_since(&primary, None).is_some() {
        // A window that does not reach `past` yet: only time helps.
        return Ok(json!({
            "ready": false,
            "instance_id": copy.primary,
            "restorable_until": primary.latest_restorable_time,
        }));
    }
    if primary.status != InstanceStatus::Available {
        return Ok(json!({"ready": false, "instance_id": copy.primary, "status": primary.status}));
    }
    let snapshot_id = SnapshotId::parse(&format!("{}-pitr-base", copy.primary))?;
    match ports
        .control_plane
        .create_snapshot(&CreateSnapshotRequest {
            instance_id: copy.primary.clone(),
            snapshot_id: snapshot_id.clone(),
            tags: copy.tags.clone(),
        })
        .await
    {
        Ok(_) | Err(DrError::AlreadyExists(_)) => {}
        Err(e) => return Err(e),
    }
    let after = ports.control_plane.describe_instance(&copy.primary).await?;
    let since = restorable_since(&after, past);
    Ok(json!({
        "ready": since.is_some(),
        "instance_id": copy.primary,
        "restorable_since": since,
        "snapshot_id": snapshot_id,
    }))
}

/// The production topology the drilled instance belongs to (the registry's
/// record, or the deployment's initial one): read only.
pub(crate) async fn production_topology(ports: &Ports, source: &InstanceId) -> DrResult<Topology> {
    crate::plan::production_databases(ports)
        .await?
        .into_iter()
        .find(|t| t.knows(source))
        .ok_or_else(|| {
            DrError::InvalidInput(format!(
                "{source} belongs to no registered database: the drill rehearses the failover of a database in the topology registry"
            ))
        })
}

async fn register_copy(
    ports: &Ports,
    drill_id: &str,
    source: &InstanceId,
    restore: &InstanceId,
    replica: &InstanceId,
) -> DrResult<CopyRegistration> {
    let primary = ports.control_plane.describe_instance(restore).await?;
    ensure_drill_resource(&primary, drill_id)?;
    let follower = ports.control_plane.describe_instance(replica).await?;
    ensure_drill_resource(&follower, drill_id)?;
    if follower.replication_source.as_ref() != Some(restore) {
        return Err(DrError::NotReady(format!(
            "{replica} does not replicate from {restore} yet"
        )));
    }
    let endpoint = primary
        .endpoint
        .clone()
        .ok_or_else(|| DrError::NotReady(format!("{restore} has no endpoint yet")))?;
    let production = production_topology(ports, source).await?;
    let copy = copy_topology(drill_id, source, &production, restore, replica)?;
    match ports.topology.put(&copy, None).await {
        Ok(_) => {}
        // A retry: the copy is registered already, by this drill.
        Err(DrError::Conflict(_)) => {
            let stored = ports.topology.get(&copy.database).await?;
            let ours = stored
                .as_ref()
                .is_some_and(|t| t.drill_id() == Some(drill_id) && &t.primary == restore);
            if !ours {
                return Err(DrError::Conflict(format!(
                    "{} is registered already, and not as this drill's copy",
                    copy.database
                )));
            }
        }
        Err(e) => return Err(e),
    }
    ports
        .dns
        .upsert_record(&DnsRecord {
            hosted_zone_id: copy.dns.hosted_zone.clone(),
            name: copy.dns.record_name.clone(),
            record_type: "CNAME".to_owned(),
            ttl: copy.dns.ttl,
            value: endpoint.address,
        })
        .await?;
    Ok(CopyRegistration {
        database: copy.database,
        hosted_zone: copy.dns.hosted_zone,
        record_name: copy.dns.record_name,
        primary: restore.clone(),
        replica: replica.clone(),
        production: ProductionDatabase {
            database: production.database,
            hosted_zone: production.dns.hosted_zone,
            record_name: production.dns.record_name,
        },
    })
}

/// What the child's report says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildReport {
    pub outcome: String,
    pub passed: bool,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    /// The run's own objectives, as its report states them.
    #[serde(default)]
    pub rto_objective_seconds: Option<f64>,
    #[serde(default)]
    pub rpo_objective_seconds: Option<f64>,
    pub location: String,
}

/// Everything the rehearsal is judged on, as read after the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RehearsalFacts {
    pub workflow: RehearsedWorkflow,
    /// The copy's primary before the rehearsal (what it had to replace).
    pub replaced: InstanceId,
    pub execution_name: String,
    pub execution_arn: String,
    pub copy: CopyRegistration,
    pub error: Option<String>,
    pub report: Option<ChildReport>,
    pub markers: Option<MarkersCounted>,
    pub rows: u32,
    pub definition: Option<DefinitionDigests>,
    /// The copy's primary as the registry has it now, and its endpoint.
    pub copy_primary: Option<InstanceId>,
    pub copy_primary_endpoint: Option<String>,
    /// What the drill's record points at now.
    pub drill_record: Option<String>,
    /// Production's primary and record, now.
    pub production_primary: Option<InstanceId>,
    pub production_primary_endpoint: Option<String>,
    pub production_record: Option<String>,
}

/// The ARN of an execution of a state machine, as Step Functions shapes it.
pub fn execution_arn_of(state_machine_arn: &str, name: &str) -> Option<String> {
    state_machine_arn.contains(":stateMachine:").then(|| {
        format!(
            "{}:{name}",
            state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
        )
    })
}

impl RehearsalFacts {
    #[allow(clippy::too_many_arguments)]
    async fn gather(
        ports: &Ports,
        drill_id: &str,
        copy: &CopyRegistration,
        workflow: RehearsedWorkflow,
        replaced: Option<InstanceId>,
        state_machine_arn: &str,
        execution_name: &str,
        markers: Option<MarkersCounted>,
        rows: u32,
        error: Option<Value>,
    ) -> DrResult<Self> {
        let (execution_arn, report, definition) = read_run(
            ports,
            workflow.scenario(),
            state_machine_arn,
            execution_name,
        )
        .await?;
        let endpoint_of = |id: InstanceId| async move {
            ports
                .control_plane
                .describe_instance(&id)
                .await
                .ok()
                .and_then(|d| d.endpoint)
                .map(|e| e.address)
        };
        let copy_topology = ports.topology.get(&copy.database).await?;
        if let Some(t) = &copy_topology {
            if t.drill_id() != Some(drill_id) {
                return Err(DrError::Unsafe(format!(
                    "{} is not this drill's copy",
                    copy.database
                )));
            }
        }
        let copy_primary = copy_topology.map(|t| t.primary);
        let copy_primary_endpoint = match &copy_primary {
            Some(p) => endpoint_of(p.clone()).await,
            None => None,
        };
        let drill_record = ports
            .dns
            .get_record(&copy.hosted_zone, &copy.record_name, "CNAME")
            .await?
            .map(|r| r.value);
        let (production_primary, production_primary_endpoint, production_record) =
            production_now(ports, &copy.production).await?;
        Ok(RehearsalFacts {
            workflow,
            replaced: replaced.unwrap_or_else(|| copy.primary.clone()),
            execution_name: execution_name.to_owned(),
            execution_arn,
            copy: copy.clone(),
            error: error.map(|e| describe_error(&e)),
            report,
            markers,
            rows,
            definition,
            copy_primary,
            copy_primary_endpoint,
            drill_record,
            production_primary: Some(production_primary),
            production_primary_endpoint,
            production_record,
        })
    }
}

/// What a rehearsed run came to as Step Functions and its own report say:
/// its execution ARN, the report it filed, and the definition it ran
/// beside the deployed one.
pub(crate) async fn read_run(
    ports: &Ports,
    scenario: &str,
    state_machine_arn: &str,
    execution_name: &str,
) -> DrResult<(String, Option<ChildReport>, Option<DefinitionDigests>)> {
    let execution_arn = execution_arn_of(state_machine_arn, execution_name).ok_or_else(|| {
        DrError::InvalidInput(format!(
            "state_machine_arn {state_machine_arn:?} is not a state machine's ARN"
        ))
    })?;
    let report = child_report(ports, scenario, execution_name).await?;
    let definition = ports
        .executions
        .definitions(state_machine_arn, &execution_arn)
        .await?;
    Ok((execution_arn, report, definition))
}

/// Production's primary as registered, its endpoint, and where its record
/// points, now (read only).
pub(crate) async fn production_now(
    ports: &Ports,
    production: &ProductionDatabase,
) -> DrResult<(InstanceId, Option<String>, Option<String>)> {
    let topology = crate::plan::known_topology(ports, &production.database).await?;
    let endpoint = ports
        .control_plane
        .describe_instance(&topology.primary)
        .await
        .ok()
        .and_then(|d| d.endpoint)
        .map(|e| e.address);
    let record = ports
        .dns
        .get_record(&production.hosted_zone, &production.record_name, "CNAME")
        .await?
        .map(|r| r.value);
    Ok((topology.primary, endpoint, record))
}

/// A Catch's `{Error, Cause}` as one line (a child's Cause is its whole
/// description: only its error and cause are kept).
pub(crate) fn describe_error(error: &Value) -> String {
    let name = error
        .get("Error")
        .and_then(Value::as_str)
        .unwrap_or("error");
    let cause = error.get("Cause").and_then(Value::as_str).unwrap_or("");
    let inner: Option<Value> = serde_json::from_str(cause).ok();
    let cause = match inner {
        Some(v) => {
            let e = v
                .get("error")
                .or_else(|| v.get("Error"))
                .and_then(Value::as_str);
            let c = v
                .get("cause")
                .or_else(|| v.get("Cause"))
                .and_then(Value::as_str);
            match (e, c) {
                (Some(e), Some(c)) => format!("{e}: {c}"),
                (Some(e), None) => e.to_owned(),
                _ => v
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or(cause)
                    .to_owned(),
            }
        }
        None => cause.to_owned(),
    };
    crate::truncate_message(&format!("{name}: {cause}"))
}

/// The report the child filed (`<scenario>/<start>-<name>.json`): the
/// newest when a retry filed two.
pub(crate) async fn child_report(
    ports: &Ports,
    scenario: &str,
    execution_name: &str,
) -> DrResult<Option<ChildReport>> {
    let keys = ports.reports.list(&format!("{scenario}/")).await?;
    let Some(key) =
        crate::report::report_keys_of(&keys, execution_name, Some(scenario), "json").pop()
    else {
        return Ok(None);
    };
    let Some(body) = ports.reports.get(&key).await? else {
        return Ok(None);
    };
    let report: Value = serde_json::from_slice(&body)
        .map_err(|e| DrError::Internal(format!("the report {key} is unreadable: {e}")))?;
    Ok(Some(ChildReport {
        outcome: report
            .get("outcome")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned(),
        passed: report
            .get("passed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        rto_seconds: report
            .pointer("/rto/achieved_seconds")
            .and_then(Value::as_f64),
        rpo_seconds: report
            .pointer("/rpo/achieved_seconds")
            .and_then(Value::as_f64),
        rto_objective_seconds: report
            .pointer("/rto/objective_seconds")
            .and_then(Value::as_f64),
        rpo_objective_seconds: report
            .pointer("/rpo/objective_seconds")
            .and_then(Value::as_f64),
        location: key,
    }))
}

/// Pure: a rehearsal's test result from what it came to. It passes only
/// when the run succeeded and passed its own report, every marker row
/// that must survive (replicated before the failure; written before the
/// damage) is on the copy's new primary (and, for the corruption, the row
/// written after the damage is not), the drill's record points at that
/// primary, the run ran the deployed definition, and production's record
/// still points at production's primary. Anything not measured fails it.
pub fn judge_rehearsal(facts: &RehearsalFacts) -> TestResult {
    let workflow = facts.workflow;
    let scenario = workflow.scenario();
    let mut problems = run_problems(
        scenario,
        facts.error.as_deref(),
        facts.report.as_ref(),
        &facts.execution_name,
        facts.definition.as_ref(),
    );
    let last_suffix = format!(":{}", workflow.markers().last_label());
    let is_last = |name: &str| name.ends_with(&last_suffix);
    let (rows_lost, last_lost) = match &facts.markers {
        None => {
            problems.push(
                "the marker rows were not counted on the new primary: rows lost not measured"
                    .to_owned(),
            );
            (None, None)
        }
        Some(m) => {
            let lost = m.missing.iter().filter(|name| !is_last(name)).count();
            if lost > 0 {
                problems.push(format!(
                    "{lost} of the {} marker rows {} are missing on {}: rows were lost",
                    facts.rows,
                    workflow.kept_rows(),
                    m.instance_id
                ));
            }
            let last_lost = m.missing.iter().any(|name| is_last(name));
            if workflow == RehearsedWorkflow::Corruption && !last_lost {
                problems.push(format!(
                    "the row written after the damage is on {}: the restore is not from before the damage",
                    m.instance_id
                ));
            }
            // The failover's count includes the row in flight (its loss is
            // data lost); the corruption's does not (discarding the row
            // written after the damage is the recovery doing its job).
            let counted = match workflow {
                RehearsedWorkflow::Failover => m.missing.len(),
                RehearsedWorkflow::Corruption => lost,
            };
            (Some(counted), Some(last_lost))
        }
    };
    match (
        &facts.copy_primary,
        &facts.copy_primary_endpoint,
        &facts.drill_record,
    ) {
        (Some(primary), Some(endpoint), Some(record)) if record == endpoint => {
            if primary == &facts.replaced {
                problems.push(format!(
                    "{primary} is still the copy's primary: the {scenario} run replaced nothing"
                ));
            }
        }
        (primary, endpoint, record) => problems.push(format!(
            "the drill's record {} points at {}, not at the copy's primary {} ({})",
            facts.copy.record_name,
            record.as_deref().unwrap_or("nothing"),
            primary
                .as_ref()
                .map_or("unknown".to_owned(), ToString::to_string),
            endpoint.as_deref().unwrap_or("no endpoint")
        )),
    }
    problems.extend(production_problem(
        &facts.copy.production.record_name,
        facts.production_record.as_deref(),
        facts.production_primary.as_ref(),
        facts.production_primary_endpoint.as_deref(),
    ));
    let status = if problems.is_empty() {
        TestStatus::Successful
    } else {
        TestStatus::Failed
    };
    let report = facts.report.as_ref();
    let mut details = json!({
        "workflow": scenario,
        "execution": facts.execution_name,
        "execution_arn": facts.execution_arn,
        "outcome": report.map(|r| r.outcome.clone()),
        "rto_seconds": report.and_then(|r| r.rto_seconds),
        "rpo_seconds": report.and_then(|r| r.rpo_seconds),
        "report": report.map(|r| r.location.clone()),
        "rows_written": match workflow {
            RehearsedWorkflow::Failover => facts.rows + 1,
            RehearsedWorkflow::Corruption => facts.rows,
        },
        "rows_lost": rows_lost,
        "copy": facts.copy.database,
        "replaced_primary": facts.replaced,
        "new_primary": facts.copy_primary,
        "drill_record": facts.copy.record_name,
        "definition_sha256": facts.definition.as_ref().map(|d| d.ran_sha256.clone()),
        "deployed_sha256": facts.definition.as_ref().map(|d| d.deployed_sha256.clone()),
        "production_record": facts.copy.production.record_name,
        "production_record_points_at": facts.production_record,
        "production_primary": facts.production_primary,
    });
    details[match workflow {
        RehearsedWorkflow::Failover => "in_flight_lost",
        RehearsedWorkflow::Corruption => "after_damage_discarded",
    }] = json!(last_lost);
    TestResult {
        name: workflow.test_name().to_owned(),
        status,
        reason: (!problems.is_empty()).then(|| problems.join("; ")),
        duration_seconds: report.and_then(|r| r.rto_seconds).unwrap_or(0.0),
        details,
    }
}

/// Pure: what a rehearsed run itself came to: its error, its report (which
/// must exist, say succeeded and passed) and the definition it ran (which
/// must be the deployed one).
pub(crate) fn run_problems(
    scenario: &str,
    error: Option<&str>,
    report: Option<&ChildReport>,
    execution_name: &str,
    definition: Option<&DefinitionDigests>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(error) = error {
        problems.push(format!("the {scenario} run failed: {error}"));
    }
    match report {
        None => problems.push(format!(
            "the {scenario} run filed no report: its RTO and RPO are not measured"
        )),
        Some(r) if r.outcome != "succeeded" || !r.passed => problems.push(format!(
            "the {scenario} run ended {} ({}){}",
            r.outcome,
            if r.passed { "passed" } else { "FAILED" },
            missed_objectives(r)
        )),
        Some(_) => {}
    }
    match definition {
        None => problems.push(format!(
            "the definition {execution_name} ran could not be read: it is not known to be the deployed one"
        )),
        Some(d) if d.ran_sha256 != d.deployed_sha256 => problems.push(format!(
            "{execution_name} ran definition sha256 {}, but the deployed one is {}",
            short_digest(&d.ran_sha256),
            short_digest(&d.deployed_sha256)
        )),
        Some(_) => {}
    }
    problems
}

/// Pure: production's record must still point at production's primary.
pub(crate) fn production_problem(
    record_name: &str,
    record: Option<&str>,
    primary: Option<&InstanceId>,
    primary_endpoint: Option<&str>,
) -> Option<String> {
    let intact = matches!((record, primary_endpoint), (Some(r), Some(e)) if r == e);
    (!intact).then(|| {
        format!(
            "production's record {record_name} points at {}, not at its primary {} ({})",
            record.unwrap_or("nothing"),
            primary.map_or("unknown".to_owned(), ToString::to_string),
            primary_endpoint.unwrap_or("no endpoint")
        )
    })
}

/// Pure: the objectives a run's report says it missed, as `: RTO 4.9 h
/// over its objective of 4.0 h` (empty when none is known missed).
fn missed_objectives(report: &ChildReport) -> String {
    let hours = |s: f64| format!("{:.1} h", s / 3600.0);
    let missed: Vec<String> = [
        ("RTO", report.rto_seconds, report.rto_objective_seconds),
        ("RPO", report.rpo_seconds, report.rpo_objective_seconds),
    ]
    .into_iter()
    .filter_map(|(what, achieved, objective)| match (achieved, objective) {
        (Some(a), Some(o)) if a > o => Some(format!(
            "{what} {} over its objective of {}",
            hours(a),
            hours(o)
        )),
        _ => None,
    })
    .collect();
    if missed.is_empty() {
        String::new()
    } else {
        format!(": {}", missed.join(", "))
    }
}

fn short_digest(d: &str) -> &str {
    d.get(..12).unwrap_or(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> InstanceId {
        InstanceId::parse(s).expect("id")
    }

    fn production() -> Topology {
        serde_json::from_value(json!({
            "database": "muejam", "primary": "muejam-db-prod", "replicas": ["muejam-db-prod-replica"],
            "db_name": "muejam", "credentials_secret_id": "muejam/db/master",
            "dns": {"hosted_zone": "muejam.internal", "record_name": "db.muejam.internal", "ttl": 60},
            "availability_zones": ["us-east-1a", "us-east-1b"], "region": "us-east-1",
            "instance_prefix": "muejam-db-prod", "version": 7,
            "application": {"role": "muejam_app", "credentials_secret_id": "muejam/db/app"}
        }))
        .expect("topology")
    }

    #[test]
    fn the_copy_has_productions_shape_over_the_drills_instances_and_record() {
        let copy = copy_topology(
            "3F2A-91c4-7b7e",
            &id("muejam-db-prod"),
            &production(),
            &id("drill-muejam-db-prod-3f2a91c47b7e"),
            &id("drill-muejam-db-prod-3f2a91c47b7e-rep"),
        )
        .expect("copy");
        assert_eq!(copy.database, "drill-3f2a91c47b7e-muejam");
        assert_eq!(
            copy.dns.record_name,
            "drill-3f2a91c47b7e.db.muejam.internal"
        );
        assert_eq!(copy.dns.hosted_zone, "muejam.internal");
        assert_eq!((copy.dns.ttl, copy.version, copy.generation), (60, 0, 0));
        assert_eq!(
            copy.application,
            production().application,
            "production's role, whose writes the rehearsed recovery stops on the copy"
        );
        assert_eq!(copy.drill_id(), Some("3F2A-91c4-7b7e"));
        assert_eq!(
            copy.tags.get("dr:managed").map(String::as_str),
            Some("true")
        );
        assert!(copy.members().all(|m| m.as_str().starts_with("drill-")));
        // Its new replica is a drill-… name too.
        assert!(copy
            .next_instance_id()
            .expect("next")
            .as_str()
            .starts_with("drill-"));
        assert!(crate::drill::is_drill_copy(&copy));
        assert!(!crate::drill::is_drill_copy(&production()));
        // A drill id without letters or digits names nothing.
        assert!(copy_names("---", &production()).is_err());
        // A long database name is cut to 63 characters, never to a hyphen.
        let mut long = production();
        long.database = format!("a{}", "-b".repeat(40));
        let (name, _) = copy_names("q4", &long).expect("names");
        assert!(name.len() <= 63 && !name.ends_with('-'), "{name}");
    }

    fn facts() -> RehearsalFacts {
        RehearsalFacts {
            workflow: RehearsedWorkflow::Failover,
            replaced: id("drill-muejam-db-prod-q4"),
            execution_name: "drill-q4-muejam-failover".to_owned(),
            execution_arn: "arn:aws:states:us-east-1:1:execution:muejam-database-failover:drill-q4-muejam-failover".to_owned(),
            copy: CopyRegistration {
                database: "drill-q4-muejam".to_owned(),
                hosted_zone: "muejam.internal".to_owned(),
                record_name: "drill-q4.db.muejam.internal".to_owned(),
                primary: id("drill-muejam-db-prod-q4"),
                replica: id("drill-muejam-db-prod-q4-rep"),
                production: ProductionDatabase {
                    database: "muejam".to_owned(),
                    hosted_zone: "muejam.internal".to_owned(),
                    record_name: "db.muejam.internal".to_owned(),
                },
            },
            error: None,
            report: Some(ChildReport {
                outcome: "succeeded".to_owned(),
                passed: true,
                rto_seconds: Some(312.0),
                rpo_seconds: Some(0.0),
                rto_objective_seconds: Some(14_400.0),
                rpo_objective_seconds: Some(21_600.0),
                location: "database-failover/x.json".to_owned(),
            }),
            markers: Some(MarkersCounted {
                instance_id: id("drill-muejam-db-prod-q4-rep"),
                found: marker_names("q4", MARKER_ROWS).0,
                missing: vec![marker_names("q4", MARKER_ROWS).1],
            }),
            rows: MARKER_ROWS,
            definition: Some(DefinitionDigests {
                ran_sha256: "a".repeat(64),
                deployed_sha256: "a".repeat(64),
            }),
            copy_primary: Some(id("drill-muejam-db-prod-q4-rep")),
            copy_primary_endpoint: Some("rep.example".to_owned()),
            drill_record: Some("rep.example".to_owned()),
            production_primary: Some(id("muejam-db-prod")),
            production_primary_endpoint: Some("prod.example".to_owned()),
            production_record: Some("prod.example".to_owned()),
        }
    }

    #[test]
    fn a_rehearsal_passes_only_when_every_measure_is_taken_and_met() {
        type Change = fn(&mut RehearsalFacts);
        let cases: [(&str, Change, Option<&str>); 10] = [
            ("all measured and met; the in-flight row lost", |_| {}, None),
            ("the run failed", |f| f.error = Some("States.TaskFailed: Unsafe".to_owned()), Some("the database-failover run failed: States.TaskFailed: Unsafe")),
            ("no report", |f| f.report = None, Some("filed no report: its RTO and RPO are not measured")),
            ("a report that did not pass", |f| { if let Some(r) = &mut f.report { r.passed = false; } }, Some("ended succeeded (FAILED)")),
            ("not counted", |f| f.markers = None, Some("rows lost not measured")),
            ("a replicated row lost", |f| { if let Some(m) = &mut f.markers { m.missing.push("drill:q4:2".to_owned()); } }, Some("1 of the 3 marker rows replicated before the failure are missing")),
            ("the drill record elsewhere", |f| f.drill_record = Some("prod.example".to_owned()), Some("the drill's record drill-q4.db.muejam.internal points at prod.example")),
            ("nothing failed over", |f| f.copy_primary = Some(id("drill-muejam-db-prod-q4")), Some("is still the copy's primary")),
            ("another definition", |f| { if let Some(d) = &mut f.definition { d.deployed_sha256 = "b".repeat(64); } }, Some("but the deployed one is bbbbbbbbbbbb")),
            ("production's record moved", |f| f.production_record = Some("rep.example".to_owned()), Some("production's record db.muejam.internal points at rep.example, not at its primary muejam-db-prod")),
        ];
        for (what, change, problem) in cases {
            let mut f = facts();
            change(&mut f);
            let result = judge_rehearsal(&f);
            match problem {
                None => {
                    assert_eq!(result.status, TestStatus::Successful, "{what}: {result:?}");
                    assert_eq!(result.details["rows_lost"], 1, "{what}");
                    assert_eq!(result.details["in_flight_lost"], true, "{what}");
                    assert_eq!(result.duration_seconds, 312.0, "{what}");
                }
                Some(problem) => {
                    assert_eq!(result.status, TestStatus::Failed, "{what}");
                    let reason = result.reason.unwrap_or_default();
                    assert!(reason.contains(problem), "{what}: {reason}");
                }
            }
        }
        // Not read is not equal.
        let mut f = facts();
        f.definition = None;
        assert_eq!(judge_rehearsal(&f).status, TestStatus::Failed);
    }

    /// The rehearsed data-corruption recovery on the copy the failover
    /// left: its primary (the old replica) damaged, restored into `-r2`.
    fn corruption_facts() -> RehearsalFacts {
        let (kept, after) = MarkerSet::Corruption.names("q4", MARKER_ROWS);
        let mut f = facts();
        f.workflow = RehearsedWorkflow::Corruption;
        f.replaced = id("drill-muejam-db-prod-q4-rep");
        f.execution_name = "drill-q4-muejam-corruption".to_owned();
        f.markers = Some(MarkersCounted {
            instance_id: id("drill-muejam-db-prod-q4-r2"),
            found: kept,
            missing: vec![after],
        });
        f.copy_primary = Some(id("drill-muejam-db-prod-q4-r2"));
        f.copy_primary_endpoint = Some("r2.example".to_owned());
        f.drill_record = Some("r2.example".to_owned());
        f
    }

    #[test]
    fn a_corruption_rehearsal_keeps_the_rows_before_the_damage_and_discards_the_one_after() {
        type Change = fn(&mut RehearsalFacts);
        let cases: [(&str, Change, Option<&str>); 6] = [
            ("all met: the row after the damage discarded", |_| {}, None),
            ("a row before the damage lost", |f| { if let Some(m) = &mut f.markers { m.found.pop(); m.missing.push("drill:q4:good:3".to_owned()); } }, Some("1 of the 3 marker rows written before the damage are missing")),
            ("the row after the damage kept", |f| { if let Some(m) = &mut f.markers { m.found.append(&mut m.missing); } }, Some("the row written after the damage is on drill-muejam-db-prod-q4-r2")),
            ("nothing switched", |f| { f.copy_primary = Some(id("drill-muejam-db-prod-q4-rep")); }, Some("drill-muejam-db-prod-q4-rep is still the copy's primary: the data-corruption run replaced nothing")),
            ("the run failed", |f| f.error = Some("States.TaskFailed: Unsafe".to_owned()), Some("the data-corruption run failed")),
            ("its RTO missed", |f| { if let Some(r) = &mut f.report { r.passed = false; r.rto_seconds = Some(17_640.0); } }, Some("the data-corruption run ended succeeded (FAILED): RTO 4.9 h over its objective of 4.0 h")),
        ];
        for (what, change, problem) in cases {
            let mut f = corruption_facts();
            change(&mut f);
            let result = judge_rehearsal(&f);
            assert_eq!(result.name, "corruption_test", "{what}");
            assert_eq!(result.details["workflow"], "data-corruption", "{what}");
            match problem {
                None => {
                    assert_eq!(result.status, TestStatus::Successful, "{what}: {result:?}");
                    assert_eq!(result.details["rows_lost"], 0, "{what}");
                    assert_eq!(result.details["rows_written"], 3, "{what}");
                    assert_eq!(result.details["after_damage_discarded"], true, "{what}");
                    assert_eq!(
                        result.details["replaced_primary"],
                        "drill-muejam-db-prod-q4-rep"
                    );
                }
                Some(problem) => {
                    assert_eq!(result.status, TestStatus::Failed, "{what}");
                    let reason = result.reason.unwrap_or_default();
                    assert!(reason.contains(problem), "{what}: {reason}");
                }
            }
        }
    }

    #[test]
    fn a_childs_failure_is_said_in_one_line() {
        let cause = json!({"status": "FAILED", "error": "Unsafe", "cause": "injected at PromoteReplica", "input": "…"}).to_string();
        assert_eq!(
            describe_error(&json!({"Error": "States.TaskFailed", "Cause": cause})),
            "States.TaskFailed: Unsafe: injected at PromoteReplica"
        );
        assert_eq!(
            describe_error(&json!({"Error": "States.Timeout", "Cause": "Task did not finish"})),
            "States.Timeout: Task did not finish"
        );
        assert_eq!(
            execution_arn_of(
                "arn:aws:states:us-east-1:1:stateMachine:muejam-database-failover",
                "x"
            ),
            Some("arn:aws:states:us-east-1:1:execution:muejam-database-failover:x".to_owned())
        );
        assert_eq!(execution_arn_of("nonsense", "x"), None);
    }
}
