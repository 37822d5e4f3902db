//! The first step of the database failover: the whole execution input,
//! parsed into its typed form and resolved against the topology registry
//! before anything is touched. Every later step reads the resulting plan,
//! never the raw input.

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use crate::journal::{note, JournalRef};
use crate::report::{RPO_OBJECTIVE_SECONDS, RTO_OBJECTIVE_SECONDS};
use crate::Ports;

/// Longest free text accepted from a trigger (CloudWatch alarm reasons are
/// at most 1023 characters).
pub const MAX_REASON: usize = 4096;
/// The longest a failover waits for a person's answer: with every other
/// step at its worst, the run still ends (and reports, and releases its
/// lock) before the state machine's TimeoutSeconds.
pub const MAX_APPROVAL_SECONDS: u64 = 3600;
/// The most polls of the promotion wait, and its time budget.
pub const MAX_PROMOTION_POLLS: u64 = 120;
pub const PROMOTION_WAIT_SECONDS: u64 = 1800;

/// How many polls the failover's waits may take at the plan's interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverLimits {
    pub promotion_polls: u64,
    /// The application's rolling restart after the switch.
    #[serde(default = "max_app_rollout_polls")]
    pub app_rollout_polls: u64,
}

/// The most polls of the application's restart, and its time budget.
pub const MAX_APP_ROLLOUT_POLLS: u64 = 20;
pub const APP_ROLLOUT_WAIT_SECONDS: u64 = 600;

pub(crate) fn max_app_rollout_polls() -> u64 {
    MAX_APP_ROLLOUT_POLLS
}

/// Pure: the polls of the application's rollout at an interval: its time
/// budget, never more than [`MAX_APP_ROLLOUT_POLLS`].
pub fn app_rollout_polls(interval_seconds: u64) -> u64 {
    APP_ROLLOUT_WAIT_SECONDS
        .div_ceil(interval_seconds.max(1))
        .min(MAX_APP_ROLLOUT_POLLS)
}

impl Default for FailoverLimits {
    /// What a plan journaled before the limits existed waited for.
    fn default() -> Self {
        FailoverLimits {
            promotion_polls: MAX_PROMOTION_POLLS,
            app_rollout_polls: MAX_APP_ROLLOUT_POLLS,
        }
    }
}

/// Pure: the promotion wait's time budget at an interval, never more than
/// `MAX_PROMOTION_POLLS` polls.
pub fn failover_limits(interval_seconds: u64) -> FailoverLimits {
    FailoverLimits {
        promotion_polls: PROMOTION_WAIT_SECONDS
            .div_ceil(interval_seconds.max(1))
            .min(MAX_PROMOTION_POLLS),
        app_rollout_polls: app_rollout_polls(interval_seconds),
    }
}

/// What started the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerSource {
    Manual,
    CloudwatchAlarm,
    Drill,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    pub source: TriggerSource,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub alarm: Option<String>,
    #[serde(default)]
    pub time: Option<String>,
}

/// How long a person may take to answer, and what is known of the rest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSettings {
    /// The longest an approval may wait, whatever the RTO budget says.
    #[serde(default = "default_approval_cap")]
    pub timeout_cap_seconds: u64,
    /// The shortest wait worth asking a person for.
    #[serde(default = "default_approval_floor")]
    pub timeout_floor_seconds: u64,
    /// What the steps after an approval are expected to take (promotion,
    /// DNS, verification), subtracted from the RTO budget left.
    #[serde(default = "default_expected_remaining")]
    pub expected_remaining_seconds: u64,
}

fn default_approval_cap() -> u64 {
    1800
}
fn default_approval_floor() -> u64 {
    60
}
fn default_expected_remaining() -> u64 {
    900
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            timeout_cap_seconds: default_approval_cap(),
            timeout_floor_seconds: default_approval_floor(),
            expected_remaining_seconds: default_expected_remaining(),
        }
    }
}

fn default_max_lag() -> f64 {
    crate::failover::DEFAULT_MAX_LAG_SECONDS
}
fn default_poll() -> u64 {
    15
}
pub(crate) fn default_rto() -> f64 {
    RTO_OBJECTIVE_SECONDS
}
pub(crate) fn default_rpo() -> f64 {
    RPO_OBJECTIVE_SECONDS
}

/// The execution input of the database failover. It names the database;
/// instance ids, if given, are assertions checked against the registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverRequest {
    /// The database's name in the topology registry.
    pub database: String,
    /// If given, must be the registered primary.
    #[serde(default)]
    pub primary_instance_id: Option<String>,
    /// If given, must be a registered replica: the one to promote.
    #[serde(default)]
    pub replica_instance_id: Option<String>,
    /// The replica to create afterwards (default: the registry's next name).
    #[serde(default)]
    pub new_replica_instance_id: Option<String>,
    #[serde(default)]
    pub allow_data_loss: bool,
    #[serde(default = "default_max_lag")]
    pub max_lag_seconds: f64,
    #[serde(default = "default_poll")]
    pub poll_interval_seconds: u64,
    #[serde(default)]
    pub approval: ApprovalSettings,
    #[serde(default = "default_rto")]
    pub rto_objective_seconds: f64,
    #[serde(default = "default_rpo")]
    pub rpo_objective_seconds: f64,
    /// Ties a rerun to the run it resumes (default: the execution name).
    #[serde(default)]
    pub recovery_id: Option<String>,
    /// The application to restart (rolling) and check once the database
    /// has moved; an empty deployment name is none.
    #[serde(default)]
    pub app: Option<crate::app::restart::AppTarget>,
    pub trigger: Trigger,
}

/// What every later step of the failover works from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverPlan {
    pub database: String,
    pub primary: InstanceId,
    pub replica: InstanceId,
    pub new_replica: InstanceId,
    pub db_name: String,
    pub credentials_secret_id: String,
    pub dns: DnsBinding,
    pub availability_zones: Vec<String>,
    pub allow_data_loss: bool,
    pub max_lag_seconds: f64,
    pub poll_interval_seconds: u64,
    /// The caps of the wait loops, from the interval.
    #[serde(default)]
    pub limits: FailoverLimits,
    pub approval: ApprovalSettings,
    pub rto_objective_seconds: f64,
    pub rpo_objective_seconds: f64,
    pub recovery_id: String,
    pub topology_version: u64,
    pub trigger: Trigger,
    pub execution_start: DateTime<Utc>,
    /// Set when this execution resumes a recovery an earlier one began: it
    /// then works from that one's plan, not from the registry as it is now.
    #[serde(default)]
    pub resume: Option<ResumeInfo>,
    /// The application restarted after the switch (none: not restarted).
    #[serde(default)]
    pub app: Option<crate::app::restart::AppTarget>,
    /// The tags of the instances this recovery creates (the new replica).
    #[serde(default = "base_instance_tags")]
    pub instance_tags: Tags,
    /// The drill rehearsing this failover on its throw-away copy: it
    /// answers the run's approvals itself, and nobody on call is paged.
    #[serde(default)]
    pub drill: Option<String>,
}

/// The tags every instance a recovery creates carries.
pub fn base_instance_tags() -> Tags {
    [
        ("Application", "muejam"),
        ("CreatedBy", "muejam-dr"),
        ("dr:managed", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The tags of the instances a recovery of `topology` creates: ours, and
/// the database's own (a drill copy's make its cleanup find them).
pub fn instance_tags(topology: &Topology) -> Tags {
    let mut tags = base_instance_tags();
    tags.extend(topology.tags.clone());
    tags
}

/// Pure: the plan acts on nothing but a drill's copy (its database, every
/// instance and its record named `drill-…`). What the drill answers for
/// itself is checked against it once more, whatever the plan says of
/// `drill`.
pub fn plan_on_drill_copy(plan: &FailoverPlan) -> DrResult<()> {
    let prefix = crate::drill::DRILL_PREFIX;
    let record_label = plan.dns.record_name.split('.').next().unwrap_or("");
    let named: Vec<&str> = [&plan.primary, &plan.replica, &plan.new_replica]
        .iter()
        .map(|i| i.as_str())
        .chain([plan.database.as_str(), record_label])
        .filter(|name| !name.starts_with(prefix))
        .collect();
    if named.is_empty() {
        Ok(())
    } else {
        Err(DrError::Unsafe(format!(
            "the drill answers only for its own copy, and {} is not a drill's",
            named.join(", ")
        )))
    }
}

/// Pure: a run the drill triggers acts only on a drill's copy: a topology
/// tagged by a drill, every instance named `drill-…`, its record a
/// `drill-…` name. Returns the drill's id; none for any other trigger.
pub fn drill_of(trigger: &Trigger, topology: &Topology) -> DrResult<Option<String>> {
    if trigger.source != TriggerSource::Drill {
        return Ok(None);
    }
    let refuse = |why: String| {
        Err(invalid(format!(
            "trigger.source drill runs only on a drill's throw-away copy, and {} {why}",
            topology.database
        )))
    };
    let Some(drill) = topology.drill_id() else {
        return refuse("is not one (no dr:drill tag in its topology)".to_owned());
    };
    if let Some(member) = topology
        .members()
        .find(|m| !m.as_str().starts_with(crate::drill::DRILL_PREFIX))
    {
        return refuse(format!("has {member}, which no drill made"));
    }
    let first_label = topology.dns.record_name.split('.').next().unwrap_or("");
    if !first_label.starts_with(crate::drill::DRILL_PREFIX) {
        return refuse(format!(
            "points at the record {}, which is not a drill's",
            topology.dns.record_name
        ));
    }
    Ok(Some(drill.to_owned()))
}

/// What an earlier execution of the same recovery began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeInfo {
    pub first_execution: String,
    /// The mutating steps it began, as the journal has them.
    pub began: Vec<String>,
    /// Whether the control plane confirmed the old primary down when the
    /// recovery decided to fail over.
    pub control_plane_confirmed_down: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateInputInput {
    /// The execution input, exactly as the execution received it.
    pub request: serde_json::Value,
    pub execution: crate::report::ExecutionInfo,
}

fn invalid(message: String) -> DrError {
    DrError::InvalidInput(message)
}

fn check_text(field: &str, value: &Option<String>, max: usize) -> DrResult<()> {
    match value {
        Some(v) if v.chars().count() > max => Err(invalid(format!(
            "{field} has {} characters, at most {max}",
            v.chars().count()
        ))),
        _ => Ok(()),
    }
}

fn instance_field(field: &str, value: &Option<String>) -> DrResult<Option<InstanceId>> {
    value
        .as_deref()
        .map(|v| {
            InstanceId::parse(v).map_err(|e| {
                invalid(format!(
                    "{field}: {}",
                    e.to_string().trim_start_matches("invalid input: ")
                ))
            })
        })
        .transpose()
}

/// The request's own rules, before the registry is read: ranges, lengths,
/// identifiers. Pure.
pub fn check_request(request: &FailoverRequest) -> DrResult<()> {
    validate_database_name(&request.database).map_err(|e| {
        invalid(format!(
            "database: {}",
            e.to_string().trim_start_matches("invalid input: ")
        ))
    })?;
    instance_field("primary_instance_id", &request.primary_instance_id)?;
    instance_field("replica_instance_id", &request.replica_instance_id)?;
    instance_field("new_replica_instance_id", &request.new_replica_instance_id)?;
    if !request.max_lag_seconds.is_finite()
        || !(0.0..=7.0 * 86_400.0).contains(&request.max_lag_seconds)
    {
        return Err(invalid(
            "max_lag_seconds must be between 0 and 604800".to_owned(),
        ));
    }
    if !(1..=300).contains(&request.poll_interval_seconds) {
        return Err(invalid(
            "poll_interval_seconds must be between 1 and 300".to_owned(),
        ));
    }
    for (field, value) in [
        ("rto_objective_seconds", request.rto_objective_seconds),
        ("rpo_objective_seconds", request.rpo_objective_seconds),
    ] {
        if !value.is_finite() || value <= 0.0 || value > 30.0 * 86_400.0 {
            return Err(invalid(format!(
                "{field} must be a positive number of seconds, at most 30 days"
            )));
        }
    }
    let a = &request.approval;
    if a.timeout_cap_seconds == 0
        || a.timeout_cap_seconds > MAX_APPROVAL_SECONDS
        || a.timeout_floor_seconds == 0
        || a.timeout_floor_seconds > a.timeout_cap_seconds
        || a.expected_remaining_seconds > 86_400
    {
        return Err(invalid(format!(
            "approval: 0 < timeout_floor_seconds <= timeout_cap_seconds <= {MAX_APPROVAL_SECONDS} and expected_remaining_seconds <= 86400"
        )));
    }
    check_text("trigger.reason", &request.trigger.reason, MAX_REASON)?;
    check_text("trigger.alarm", &request.trigger.alarm, 255)?;
    check_text("trigger.time", &request.trigger.time, 64)?;
    if let Some(id) = &request.recovery_id {
        check_recovery_id(id)?;
    }
    Ok(())
}

/// A recovery's id (an execution name by default): 1 to 80 letters,
/// digits, hyphens or underscores.
pub(crate) fn check_recovery_id(id: &str) -> DrResult<()> {
    if id.is_empty()
        || id.len() > 80
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(
            "recovery_id must be 1 to 80 letters, digits, hyphens or underscores".to_owned(),
        ));
    }
    Ok(())
}

/// The plan from a checked request and the registered topology. Pure: every
/// instance id the request names must hold that role in the registry, and
/// no instance may hold two roles.
pub fn resolve(
    request: &FailoverRequest,
    topology: &Topology,
    execution: &crate::report::ExecutionInfo,
) -> DrResult<FailoverPlan> {
    if topology.database != request.database {
        return Err(DrError::Internal(format!(
            "asked for the topology of {}, got that of {}",
            request.database, topology.database
        )));
    }
    topology.validate().map_err(|e| {
        invalid(format!(
            "the registered topology of {} is inconsistent: {}",
            topology.database,
            e.to_string().trim_start_matches("invalid input: ")
        ))
    })?;
    if let Some(primary) = instance_field("primary_instance_id", &request.primary_instance_id)? {
        if primary != topology.primary {
            return Err(invalid(format!(
                "primary_instance_id {primary} is not the primary of {}: the registry says {} (replicas: {})",
                topology.database,
                topology.primary,
                list(&topology.replicas)
            )));
        }
    }
    let replica = match instance_field("replica_instance_id", &request.replica_instance_id)? {
        Some(replica) if topology.replicas.contains(&replica) => replica,
        Some(replica) => {
            return Err(invalid(format!(
            "replica_instance_id {replica} is not a replica of {} in the registry (replicas: {})",
            topology.database,
            list(&topology.replicas)
        )))
        }
        None => topology.replicas.first().cloned().ok_or_else(|| {
            invalid(format!(
                "{} has no registered replica to fail over to",
                topology.database
            ))
        })?,
    };
    let new_replica =
        match instance_field("new_replica_instance_id", &request.new_replica_instance_id)? {
            Some(id) if topology.knows(&id) => {
                return Err(invalid(format!(
                    "new_replica_instance_id {id} already has a role in the topology of {}",
                    topology.database
                )))
            }
            Some(id) => id,
            None => topology.next_instance_id()?,
        };
    Ok(FailoverPlan {
        database: topology.database.clone(),
        primary: topology.primary.clone(),
        replica,
        new_replica,
        db_name: topology.db_name.clone(),
        credentials_secret_id: topology.credentials_secret_id.clone(),
        dns: topology.dns.clone(),
        availability_zones: topology.availability_zones.clone(),
        allow_data_loss: request.allow_data_loss,
        max_lag_seconds: request.max_lag_seconds,
        poll_interval_seconds: request.poll_interval_seconds,
        limits: failover_limits(request.poll_interval_seconds),
        approval: request.approval,
        rto_objective_seconds: request.rto_objective_seconds,
        rpo_objective_seconds: request.rpo_objective_seconds,
        recovery_id: request
            .recovery_id
            .clone()
            .unwrap_or_else(|| recovery_id_of(&execution.name)),
        topology_version: topology.version,
        trigger: request.trigger.clone(),
        execution_start: execution.start_time,
        resume: None,
        app: crate::app::restart::AppTarget::validated(request.app.clone())?,
        instance_tags: instance_tags(topology),
        drill: drill_of(&request.trigger, topology)?,
    })
}

/// An execution name as a recovery id (names allow more characters).
pub fn recovery_id_of(execution_name: &str) -> String {
    execution_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect()
}

fn list(ids: &[InstanceId]) -> String {
    if ids.is_empty() {
        "none".to_owned()
    } else {
        ids.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The registered topology of a database; registered first from the
/// deployment's initial topology if the registry has none (a conditional
/// write: an existing record, which a failover may have changed, is never
/// replaced).
/// The registry's record of `database`, or the deployment's initial one,
/// without registering it: for plans that must change nothing.
pub async fn known_topology(ports: &Ports, database: &str) -> DrResult<Topology> {
    ports
        .topology
        .get(database)
        .await?
        .or_else(|| {
            ports
                .initial_topologies
                .iter()
                .find(|t| t.database == database)
                .cloned()
        })
        .ok_or_else(|| invalid(format!("database {database:?} is not registered")))
}

/// Every production database: the registry's records, and the
/// deployment's initial ones not registered yet. A drill's throw-away
/// copies are not production: nothing replicates, checks or drills them.
pub async fn production_databases(ports: &Ports) -> DrResult<Vec<Topology>> {
    let mut known: Vec<Topology> = ports
        .topology
        .list()
        .await?
        .into_iter()
        .filter(|t| t.drill_id().is_none())
        .collect();
    for initial in &ports.initial_topologies {
        if !known.iter().any(|t| t.database == initial.database) {
            known.push(initial.clone());
        }
    }
    Ok(known)
}

pub async fn registered_topology(ports: &Ports, database: &str) -> DrResult<Topology> {
    if let Some(topology) = ports.topology.get(database).await? {
        return Ok(topology);
    }
    let Some(initial) = ports
        .initial_topologies
        .iter()
        .find(|t| t.database == database)
    else {
        return Err(invalid(format!(
            "database {database:?} is not registered in the topology registry"
        )));
    };
    match ports.topology.put(initial, None).await {
        Ok(stored) => {
            tracing::info!(database, "registered the initial topology");
            Ok(stored)
        }
        Err(DrError::Conflict(_)) => ports
            .topology
            .get(database)
            .await?
            .ok_or_else(|| DrError::Internal(format!("the topology of {database} vanished"))),
        Err(e) => Err(e),
    }
}

/// The database record as a step outside the VPC read it.
///
/// The functions that speak SQL run in the database's VPC, and Route 53's
/// API has no VPC endpoint: a VPC without NAT could not reach it from
/// there. So the record is read here, outside the VPC, and handed to the
/// confirmation, which compares it with the primary's endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedRecord {
    /// What the record points at; `None`: it does not exist.
    pub value: Option<String>,
    pub read_at: DateTime<Utc>,
}

/// The validated input: the plan every later step reads, and the record
/// as it was when the run began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatedInput {
    pub plan: FailoverPlan,
    pub database_record: ObservedRecord,
}

/// Parses the whole input, checks it, and resolves it against the registry
/// and the control plane: `InvalidInput` naming the field before anything
/// is touched. Only reads.
pub async fn validate_input(ports: &Ports, input: ValidateInputInput) -> DrResult<ValidatedInput> {
    let plan = validated_plan(ports, input).await?;
    let record = ports
        .dns
        .get_record(&plan.dns.hosted_zone, &plan.dns.record_name, "CNAME")
        .await?;
    Ok(ValidatedInput {
        plan,
        database_record: ObservedRecord {
            value: record.map(|r| r.value),
            read_at: dr_core::clock::now(),
        },
    })
}

/// A database that a region failover moved out of this deployment's region
/// is refused by name: this deployment's control plane cannot see it, and
/// "not found" would hide why.
pub(crate) fn in_home_region(ports: &Ports, topology: &Topology) -> DrResult<()> {
    let home = ports.regions.home_region();
    match topology.region.as_deref() {
        Some(region) if region != home => Err(invalid(format!(
            "{} lives in {region} (after a region failover); this deployment acts in {home}: run the recovery from a deployment in {region}",
            topology.database
        ))),
        _ => Ok(()),
    }
}

async fn validated_plan(ports: &Ports, input: ValidateInputInput) -> DrResult<FailoverPlan> {
    let request: FailoverRequest = serde_json::from_value(input.request).map_err(|e| {
        invalid(format!(
            "database-failover input: {}",
            crate::truncate_message(&e.to_string())
        ))
    })?;
    check_request(&request)?;
    let topology = registered_topology(ports, &request.database).await?;
    in_home_region(ports, &topology)?;
    let recovery_id = request
        .recovery_id
        .clone()
        .unwrap_or_else(|| recovery_id_of(&input.execution.name));
    let journal = JournalRef {
        recovery_id: recovery_id.clone(),
        execution: input.execution.name.clone(),
    };
    let entries = ports.journal.entries(&recovery_id).await?;
    if let Some(plan) = resumed_plan(&request, &entries)? {
        tracing::warn!(recovery = %recovery_id, "resuming a recovery an earlier execution began");
        return Ok(plan);
    }
    let plan = resolve(&request, &topology, &input.execution)?;
    // The replica must exist and follow the primary; the primary may be gone
    // (that is evidence, judged later).
    let replica = match ports.control_plane.describe_instance(&plan.replica).await {
        Ok(d) => d,
        Err(DrError::NotFound(_)) => {
            return Err(invalid(format!(
                "the registered replica {} of {} does not exist",
                plan.replica, plan.database
            )))
        }
        Err(e) => return Err(e),
    };
    if let Some(drill) = &plan.drill {
        crate::drill::ensure_drill_resource(&replica, drill).map_err(|e| {
            invalid(format!(
                "trigger.source drill: {}",
                e.to_string().trim_start_matches("unsafe: ")
            ))
        })?;
    }
    if let Some(source) = &replica.replication_source {
        if source != &plan.primary {
            return Err(invalid(format!(
                "the registered replica {} replicates from {source}, not from the primary {}",
                plan.replica, plan.primary
            )));
        }
    }
    let detail = serde_json::to_value(&plan)
        .map_err(|e| DrError::Internal(format!("serializing the plan: {e}")))?;
    note(
        ports,
        &journal,
        "plan",
        format!(
            "fail over {} from {} to {}",
            plan.database, plan.primary, plan.replica
        ),
        detail,
    )
    .await?;
    Ok(plan)
}

/// The plan of a recovery that an earlier execution began to change: the
/// same roles, so every step repeats idempotently and finishes what it
/// began. `None` when nothing was changed yet (the request is planned anew).
pub fn resumed_plan(
    request: &FailoverRequest,
    entries: &[JournalEntry],
) -> DrResult<Option<FailoverPlan>> {
    let began = crate::journal::mutations(entries);
    if began.is_empty() {
        return Ok(None);
    }
    let stored = entries
        .iter()
        .find(|e| e.key == "plan")
        .and_then(|e| e.detail.clone())
        .ok_or_else(|| {
            DrError::Internal(format!(
                "recovery {} changed things but its plan is not in the journal",
                began[0].recovery_id
            ))
        })?;
    let mut plan: FailoverPlan = serde_json::from_value(stored)
        .map_err(|e| DrError::Internal(format!("the journal's plan is unreadable: {e}")))?;
    if plan.database != request.database {
        return Err(invalid(format!(
            "recovery_id {} belongs to a recovery of {}, not of {}",
            plan.recovery_id, plan.database, request.database
        )));
    }
    let confirmed_down = entries
        .iter()
        .find(|e| e.key == "confirm")
        .and_then(|e| e.detail.as_ref())
        .and_then(|d| d.get("control_plane_confirms_down"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let first_execution = entries
        .iter()
        .find(|e| e.key == "plan")
        .map(|e| e.execution.clone())
        .unwrap_or_default();
    plan.resume = Some(ResumeInfo {
        first_execution,
        began: began
            .iter()
            .map(|e| {
                let status = match e.status {
                    JournalStatus::Started => "begun, not finished",
                    JournalStatus::Done => "done",
                    JournalStatus::Failed => "failed",
                };
                format!("{} ({status})", e.summary)
            })
            .collect(),
        control_plane_confirmed_down: confirmed_down,
    });
    Ok(Some(plan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_promotion_wait_follows_its_time_budget_and_never_passes_the_cap() {
        for (interval, polls) in [
            (0, 120),
            (1, 120),
            (15, 120),
            (20, 90),
            (30, 60),
            (300, 6),
            (7, 120),
        ] {
            assert_eq!(
                failover_limits(interval).promotion_polls,
                polls,
                "interval {interval}"
            );
        }
        // A plan journaled before the limits existed keeps the old cap.
        assert_eq!(FailoverLimits::default().promotion_polls, 120);
    }

    fn topology() -> Topology {
        serde_json::from_value(json!({
            "database": "muejam",
            "primary": "muejam-db-prod",
            "replicas": ["muejam-db-prod-replica"],
            "db_name": "muejam",
            "credentials_secret_id": "muejam/db/master",
            "dns": {"hosted_zone": "muejam.internal", "record_name": "db.muejam.internal", "ttl": 60},
            "availability_zones": ["us-east-1a", "us-east-1b"],
            "instance_prefix": "muejam-db-prod",
            "version": 3
        }))
        .expect("topology")
    }

    fn execution() -> crate::report::ExecutionInfo {
        crate::report::ExecutionInfo {
            id: "arn:aws:states:us-east-1:1:execution:f:run-1".to_owned(),
            name: "run-1".to_owned(),
            start_time: "2026-11-27T03:00:00Z".parse().expect("time"),
        }
    }

    fn plan_of(request: serde_json::Value) -> DrResult<FailoverPlan> {
        let request: FailoverRequest =
            serde_json::from_value(request).map_err(|e| DrError::InvalidInput(e.to_string()))?;
        check_request(&request)?;
        resolve(&request, &topology(), &execution())
    }

    fn drill_copy() -> Topology {
        let mut t = topology();
        t.database = "drill-q4-muejam".to_owned();
        t.primary = InstanceId::parse("drill-muejam-db-prod-q4").expect("id");
        t.replicas = vec![InstanceId::parse("drill-muejam-db-prod-q4-rep").expect("id")];
        t.instance_prefix = "drill-muejam-db-prod-q4".to_owned();
        t.dns.record_name = "drill-q4.db.muejam.internal".to_owned();
        t.tags = [
            ("dr:drill".to_owned(), "q4".to_owned()),
            ("ephemeral".to_owned(), "true".to_owned()),
        ]
        .into();
        t
    }

    #[test]
    fn a_drill_trigger_runs_only_on_a_drill_copy() {
        let drill = Trigger {
            source: TriggerSource::Drill,
            reason: None,
            alarm: None,
            time: None,
        };
        let manual = Trigger {
            source: TriggerSource::Manual,
            ..drill.clone()
        };
        let with = |f: &dyn Fn(&mut Topology)| {
            let mut t = drill_copy();
            f(&mut t);
            t
        };
        // (what, trigger, topology, the drill or the refusal's words)
        type Case<'a> = (&'a str, Trigger, Topology, Result<Option<&'a str>, &'a str>);
        let cases: Vec<Case> = vec![
            (
                "the drill's copy",
                drill.clone(),
                drill_copy(),
                Ok(Some("q4")),
            ),
            (
                "production, by a person",
                manual.clone(),
                topology(),
                Ok(None),
            ),
            ("a drill copy, by a person", manual, drill_copy(), Ok(None)),
            (
                "production, by a drill",
                drill.clone(),
                topology(),
                Err("no dr:drill tag"),
            ),
            (
                "a copy whose replica is production's",
                drill.clone(),
                with(&|t| {
                    t.replicas = vec![InstanceId::parse("muejam-db-prod-replica").expect("id")]
                }),
                Err("has muejam-db-prod-replica, which no drill made"),
            ),
            (
                "a copy pointing at production's record",
                drill.clone(),
                with(&|t| t.dns.record_name = "db.muejam.internal".to_owned()),
                Err("points at the record db.muejam.internal"),
            ),
            (
                "a copy whose fenced primary is production's",
                drill,
                with(&|t| t.fenced = vec![InstanceId::parse("muejam-db-prod").expect("id")]),
                Err("has muejam-db-prod"),
            ),
        ];
        for (what, trigger, topology, expected) in cases {
            match (drill_of(&trigger, &topology), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got.as_deref(), want, "{what}"),
                (Err(e), Err(want)) => {
                    assert_eq!(e.name(), "InvalidInput", "{what}");
                    assert!(e.to_string().contains(want), "{what}: {e}");
                }
                (got, want) => panic!("{what}: got {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn the_drill_answers_only_for_a_plan_on_its_copy() {
        let request: FailoverRequest = serde_json::from_value(
            json!({"database": "drill-q4-muejam", "trigger": {"source": "drill"}}),
        )
        .expect("request");
        let plan = resolve(&request, &drill_copy(), &execution()).expect("plan");
        assert_eq!(plan.drill.as_deref(), Some("q4"));
        assert!(plan_on_drill_copy(&plan).is_ok());
        let mut forged = plan.clone();
        forged.primary = InstanceId::parse("muejam-db-prod").expect("id");
        forged.dns.record_name = "db.muejam.internal".to_owned();
        let err = plan_on_drill_copy(&forged).expect_err("production");
        assert_eq!(err.name(), "Unsafe");
        assert!(
            err.to_string().contains("muejam-db-prod, db"),
            "names what is not a drill's: {err}"
        );
    }

    #[test]
    fn a_new_replica_carries_the_databases_tags_besides_ours() {
        assert_eq!(instance_tags(&topology()), base_instance_tags());
        let tags = instance_tags(&drill_copy());
        assert_eq!(tags.get("dr:drill").map(String::as_str), Some("q4"));
        assert_eq!(tags.get("ephemeral").map(String::as_str), Some("true"));
        assert_eq!(tags.get("CreatedBy").map(String::as_str), Some("muejam-dr"));
    }

    #[test]
    fn a_database_name_resolves_to_the_registered_roles() {
        let plan = plan_of(
            json!({"database": "muejam", "trigger": {"source": "cloudwatch-alarm", "alarm": "a"}}),
        )
        .expect("plan");
        assert_eq!(plan.primary.as_str(), "muejam-db-prod");
        assert_eq!(plan.replica.as_str(), "muejam-db-prod-replica");
        assert_eq!(plan.new_replica.as_str(), "muejam-db-prod-r1");
        assert_eq!(plan.recovery_id, "run-1");
        assert_eq!(plan.topology_version, 3);
        assert_eq!(plan.dns.record_name, "db.muejam.internal");
    }

    #[test]
    fn every_bad_input_is_refused_naming_the_field() {
        let base = json!({"database": "muejam", "trigger": {"source": "manual"}});
        let with = |k: &str, v: serde_json::Value| {
            let mut r = base.clone();
            r[k] = v;
            r
        };
        let cases = [
            (
                with("primary_instance_id", json!("muejam-db-prdo")),
                "primary_instance_id muejam-db-prdo is not the primary",
            ),
            (
                with("replica_instance_id", json!("muejam-db-prod")),
                "replica_instance_id muejam-db-prod is not a replica",
            ),
            (
                with("new_replica_instance_id", json!("muejam-db-prod")),
                "already has a role",
            ),
            (
                with("allow_data_los", json!(true)),
                "unknown field `allow_data_los`",
            ),
            (
                with("poll_interval_seconds", json!(0)),
                "poll_interval_seconds",
            ),
            (with("max_lag_seconds", json!(-1.0)), "max_lag_seconds"),
            (with("database", json!("x".repeat(1 << 20))), "database"),
            (
                with("primary_instance_id", json!("bad id")),
                "primary_instance_id",
            ),
            (with("dns", json!({"ttl": 0})), "unknown field `dns`"),
            (
                with(
                    "trigger",
                    json!({"source": "manual", "reason": "r".repeat(5000)}),
                ),
                "trigger.reason has 5000 characters",
            ),
            (with("recovery_id", json!("a/b")), "recovery_id"),
        ];
        for (request, expected) in cases {
            let err = match plan_of(request.clone()) {
                Err(e) => e,
                Ok(plan) => panic!("accepted {request}: {plan:?}"),
            };
            assert_eq!(err.name(), "InvalidInput", "{err}");
            assert!(
                err.to_string().contains(expected),
                "{expected:?} not in {err}"
            );
            assert!(
                err.to_string().len() < 600,
                "no huge echo: {}",
                err.to_string().len()
            );
        }
    }
}
