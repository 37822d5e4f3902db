//! Readiness: before anything breaks, whether each scenario would work now
//! (as AWS Application Recovery Controller evaluates its plans). The
//! preconditions a scenario needs are observed through the ports and judged
//! by pure rules; a scenario is ready only when every one it needs is met,
//! and a precondition that could not be observed is never met ("not
//! measured" never counts as "ready").

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use dr_core::*;
use serde::{Deserialize, Serialize};

use crate::Ports;

/// What to check, and against which limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadinessRequest {
    /// The database's name in the topology registry.
    pub database: String,
    /// The data a recovery may lose: the replica's lag, the newest
    /// restorable moment, the newest snapshot and backup-region copy must
    /// all be younger (default: the RPO objective).
    #[serde(default = "default_rpo")]
    pub rpo_seconds: f64,
    /// Pages go here: someone must be subscribed.
    pub alerts_topic_arn: String,
    /// Approval questions go here: someone must be subscribed.
    pub approvals_topic_arn: String,
    /// Where the region failover restores (none: it is not ready).
    #[serde(default)]
    pub backup_region: Option<String>,
    /// The WAF IP set the security breach blocks addresses in.
    #[serde(default)]
    pub ip_set: Option<IpSetRef>,
    /// The app servers and the floor the app-server recovery raises them to.
    #[serde(default)]
    pub fleet: Option<FleetFloor>,
    /// The application's deployment the rollback acts on.
    #[serde(default)]
    pub deployment: Option<DeploymentRef>,
    /// How the database's credentials are shown to work.
    #[serde(default)]
    pub sql_evidence: SqlEvidence,
    /// What starts the scenarios that start by themselves: their alarms and
    /// the rules that send them (or GuardDuty's findings) to the state
    /// machines.
    #[serde(default)]
    pub triggers: TriggerWiring,
    /// The state machines each scenario runs (children are found in their
    /// definitions): their roles and their functions' roles are simulated
    /// against what the steps do (IAM policy simulation, on AWS). None: not
    /// checked.
    #[serde(default)]
    pub permissions: Option<BTreeMap<String, Vec<String>>>,
    /// The scheduled check: publish `ScenarioReady` per scenario (1 ready,
    /// 0 not) and keep the report under `readiness/` in the reports store.
    #[serde(default)]
    pub publish: Option<ReadinessPublish>,
}

/// The triggers of the scenarios that start without a person.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerWiring {
    #[serde(default)]
    pub database_failover: Option<Trigger>,
    #[serde(default)]
    pub app_server_recovery: Option<Trigger>,
    #[serde(default)]
    pub security_breach: Option<Trigger>,
    /// The quarterly drill's schedule.
    #[serde(default)]
    pub dr_drill: Option<ScheduledTrigger>,
    /// The snapshot replication's schedule: without it the backup-region
    /// copies age until the region failover has none within the RPO.
    #[serde(default)]
    pub snapshot_replication: Option<ScheduledTrigger>,
}

/// A scenario started by an EventBridge Scheduler schedule (default group):
/// it must exist, be enabled and start `target_arn`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledTrigger {
    pub schedule: String,
    pub target_arn: String,
}

/// One scenario's trigger: every alarm must exist with its actions enabled,
/// and an enabled rule must send its state changes (or, without alarms, the
/// events of `source`) to the state machine.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    #[serde(default)]
    pub alarms: Vec<String>,
    pub state_machine_arn: String,
    /// The event source the rule matches (default `aws.cloudwatch`).
    #[serde(default)]
    pub source: Option<String>,
}

/// How the check knows the database's credentials open a session.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SqlEvidence {
    /// Open one with the secret (drctl on the local stack; a function in
    /// the database's VPC).
    #[default]
    Session,
    /// The SQL probe's `DatabaseProbeSuccess`: the probe opens a session
    /// with the same secret every minute, inside the VPC, so the scheduled
    /// check can stay outside it (where WAF, EKS and SNS are).
    ProbeMetric {
        namespace: String,
        /// The metric's `Database` dimension (the database record's name).
        database_label: String,
        /// How old the newest probe result may be.
        #[serde(default = "default_probe_window")]
        within_seconds: u64,
    },
}

fn default_probe_window() -> u64 {
    600
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadinessPublish {
    /// Where `ScenarioReady` goes (the stack's MetricNamespace).
    pub namespace: String,
}

/// The metric the scheduled check publishes per scenario; an alarm per
/// scenario pages when it is 0 or missing.
pub const READY_METRIC: &str = "ScenarioReady";
pub const SCENARIO_DIMENSION: &str = "Scenario";

fn default_rpo() -> f64 {
    crate::report::RPO_OBJECTIVE_SECONDS
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFloor {
    pub auto_scaling_group: String,
    #[serde(default)]
    pub region: Option<String>,
    pub capacity_floor: u32,
}

/// What a scenario may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precondition {
    /// A replica is available and behind by less than the RPO.
    ReplicaInSync,
    /// The database's credentials are readable and open a session.
    SqlCredentials,
    /// The primary's newest restorable moment is within the RPO.
    RestorableWindow,
    /// The primary's newest snapshot is available and within the RPO.
    NewestSnapshot,
    /// A verified copy in the backup region is within the RPO.
    BackupCopy,
    AlertsSubscriber,
    ApprovalsSubscriber,
    /// The WAF IP set exists and has room.
    IpSetRoom,
    /// The fleet's MaxSize allows the recovery's floor.
    FleetFloor,
    DeploymentExists,
    /// The failover's alarm exists and an enabled rule sends it to the
    /// state machine.
    FailoverTrigger,
    /// The app alarms exist and an enabled rule sends them to the recovery.
    AppRecoveryTrigger,
    /// An enabled rule sends GuardDuty's findings to the containment.
    BreachTrigger,
    /// The quarterly drill's schedule is enabled and starts the drill.
    DrillSchedule,
    /// The snapshot replication's schedule is enabled and starts it.
    ReplicationSchedule,
    /// The roles the scenario runs with allow what its steps do (one
    /// finding per scenario, in `ReadinessReport::permissions`).
    Permissions,
}

impl Precondition {
    pub const ALL: [Precondition; 16] = [
        Precondition::ReplicaInSync,
        Precondition::SqlCredentials,
        Precondition::RestorableWindow,
        Precondition::NewestSnapshot,
        Precondition::BackupCopy,
        Precondition::AlertsSubscriber,
        Precondition::ApprovalsSubscriber,
        Precondition::IpSetRoom,
        Precondition::FleetFloor,
        Precondition::DeploymentExists,
        Precondition::FailoverTrigger,
        Precondition::AppRecoveryTrigger,
        Precondition::BreachTrigger,
        Precondition::DrillSchedule,
        Precondition::ReplicationSchedule,
        Precondition::Permissions,
    ];
}

/// The scenarios and what each needs, in the order they are shown.
pub const SCENARIOS: [(&str, &[Precondition]); 7] = {
    use Precondition::*;
    [
        (
            "database-failover",
            &[
                ReplicaInSync,
                SqlCredentials,
                AlertsSubscriber,
                ApprovalsSubscriber,
                FailoverTrigger,
            ],
        ),
        (
            "data-corruption",
            &[
                RestorableWindow,
                SqlCredentials,
                AlertsSubscriber,
                ApprovalsSubscriber,
            ],
        ),
        (
            "region-failover",
            &[
                BackupCopy,
                ReplicationSchedule,
                AlertsSubscriber,
                ApprovalsSubscriber,
            ],
        ),
        (
            "dr-drill",
            &[
                NewestSnapshot,
                SqlCredentials,
                AlertsSubscriber,
                DrillSchedule,
            ],
        ),
        (
            "security-breach",
            &[IpSetRoom, SqlCredentials, AlertsSubscriber, BreachTrigger],
        ),
        (
            "app-server-recovery",
            &[FleetFloor, AlertsSubscriber, AppRecoveryTrigger],
        ),
        ("deployment-rollback", &[DeploymentExists, AlertsSubscriber]),
    ]
};

/// One precondition as observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    pub precondition: Precondition,
    pub met: bool,
    pub detail: String,
}

fn met(precondition: Precondition, detail: String) -> Finding {
    Finding {
        precondition,
        met: true,
        detail,
    }
}

fn not_met(precondition: Precondition, detail: String) -> Finding {
    Finding {
        precondition,
        met: false,
        detail,
    }
}

/// A failure to observe: never met.
fn unobserved(precondition: Precondition, what: &str, error: &DrError) -> Finding {
    not_met(
        precondition,
        format!(
            "could not {what} ({}: {}): not measured",
            error.name(),
            crate::truncate_message(&error.to_string())
        ),
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioReadiness {
    pub scenario: String,
    pub ready: bool,
    /// Why not: each unmet precondition it needs, with its detail.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadinessReport {
    pub database: String,
    pub checked_at: DateTime<Utc>,
    pub rpo_seconds: f64,
    pub findings: Vec<Finding>,
    pub scenarios: Vec<ScenarioReadiness>,
    /// What this check does not cover (on the local stack or anywhere).
    pub not_checked: Vec<String>,
    /// Per scenario, whether its roles allow what its steps do (when the
    /// request names its state machines).
    #[serde(default)]
    pub permissions: Vec<ScenarioFinding>,
}

/// A finding about one scenario only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFinding {
    pub scenario: String,
    pub finding: Finding,
}

impl ReadinessReport {
    pub fn all_ready(&self) -> bool {
        self.scenarios.iter().all(|s| s.ready)
    }
}

/// Pure: each scenario's readiness from the findings, and from the
/// findings about it alone.
pub fn assess(findings: &[Finding], scoped: &[ScenarioFinding]) -> Vec<ScenarioReadiness> {
    SCENARIOS
        .iter()
        .map(|(scenario, needs)| {
            let reasons: Vec<String> = needs
                .iter()
                .filter_map(|p| match findings.iter().find(|f| f.precondition == *p) {
                    Some(f) if f.met => None,
                    Some(f) => Some(format!("{}: {}", name(*p), f.detail)),
                    None => Some(format!("{}: not checked", name(*p))),
                })
                .chain(
                    scoped
                        .iter()
                        .filter(|s| s.scenario == *scenario && !s.finding.met)
                        .map(|s| format!("{}: {}", name(s.finding.precondition), s.finding.detail)),
                )
                .collect();
            ScenarioReadiness {
                scenario: (*scenario).to_owned(),
                ready: reasons.is_empty(),
                reasons,
            }
        })
        .collect()
}

/// The precondition's name as the JSON shows it.
pub fn name(p: Precondition) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn age(now: DateTime<Utc>, at: DateTime<Utc>) -> f64 {
    (now - at).num_milliseconds().max(0) as f64 / 1000.0
}

/// The names a rule's pattern matches at `path` (`["detail", "alarmName"]`):
/// plain strings of its list (a prefix or wildcard matcher names none).
fn pattern_values<'a>(pattern: &'a serde_json::Value, path: &[&str]) -> Vec<&'a str> {
    path.iter()
        .try_fold(pattern, |v, k| v.get(*k))
        .and_then(serde_json::Value::as_array)
        .map(|items| items.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default()
}

/// Pure: a trigger is wired when every alarm exists with its actions
/// enabled and an enabled rule of its source sends it (each alarm by name)
/// to the state machine. No trigger named is not wired.
pub fn judge_trigger(
    p: Precondition,
    trigger: Option<&Trigger>,
    alarms: &[(String, Option<AlarmInfo>)],
    rules: &[RuleInfo],
) -> Finding {
    let Some(trigger) = trigger else {
        return not_met(
            p,
            "the request names no trigger: nothing is known to start this scenario".to_owned(),
        );
    };
    let source = trigger.source.as_deref().unwrap_or("aws.cloudwatch");
    let mut problems = Vec::new();
    for (name, alarm) in alarms {
        match alarm {
            None => problems.push(format!("alarm {name} does not exist")),
            Some(a) if !a.actions_enabled => {
                problems.push(format!("alarm {name} has its actions disabled"))
            }
            Some(_) => {}
        }
    }
    let sending: Vec<&RuleInfo> = rules
        .iter()
        .filter(|r| r.enabled)
        .filter(|r| {
            r.event_pattern
                .as_ref()
                .is_some_and(|p| pattern_values(p, &["source"]).contains(&source))
        })
        .collect();
    if trigger.alarms.is_empty() {
        if sending.is_empty() {
            problems.push(format!(
                "no enabled rule sends {source} events to {}",
                trigger.state_machine_arn
            ));
        }
    } else {
        for name in &trigger.alarms {
            let sent = sending.iter().any(|r| {
                r.event_pattern.as_ref().is_some_and(|p| {
                    pattern_values(p, &["detail", "alarmName"]).contains(&name.as_str())
                })
            });
            if !sent {
                problems.push(format!(
                    "no enabled rule sends alarm {name} to {}",
                    trigger.state_machine_arn
                ));
            }
        }
    }
    if problems.is_empty() {
        met(
            p,
            format!(
                "{} sent to {} by {}",
                if trigger.alarms.is_empty() {
                    format!("{source} events")
                } else {
                    trigger.alarms.join(", ")
                },
                trigger.state_machine_arn,
                sending
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else {
        not_met(p, problems.join("; "))
    }
}

/// Observes one trigger: its alarms, then the rules targeting its state
/// machine.
async fn observe_trigger(ports: &Ports, p: Precondition, trigger: Option<&Trigger>) -> Finding {
    let Some(t) = trigger else {
        return judge_trigger(p, None, &[], &[]);
    };
    let mut alarms = Vec::new();
    for name in &t.alarms {
        match ports.triggers.alarm(name).await {
            Ok(a) => alarms.push((name.clone(), a)),
            Err(e) => return unobserved(p, &format!("describe alarm {name}"), &e),
        }
    }
    match ports.triggers.rules_targeting(&t.state_machine_arn).await {
        Ok(rules) => judge_trigger(p, Some(t), &alarms, &rules),
        Err(e) => unobserved(p, "list the rules of the state machine", &e),
    }
}

/// Pure: a schedule starts its scenario when it exists, is enabled and
/// targets the scenario's state machine. No schedule named is not wired.
pub fn judge_schedule(
    p: Precondition,
    trigger: Option<&ScheduledTrigger>,
    schedule: Option<&ScheduleInfo>,
) -> Finding {
    let Some(trigger) = trigger else {
        return not_met(
            p,
            "the request names no schedule: nothing is known to start this".to_owned(),
        );
    };
    match schedule {
        None => not_met(p, format!("schedule {} does not exist", trigger.schedule)),
        Some(s) if !s.enabled => not_met(p, format!("schedule {} is disabled", s.name)),
        Some(s) if s.target_arn != trigger.target_arn => not_met(
            p,
            format!(
                "schedule {} starts {}, not {}",
                s.name,
                if s.target_arn.is_empty() {
                    "nothing"
                } else {
                    s.target_arn.as_str()
                },
                trigger.target_arn
            ),
        ),
        Some(s) => met(
            p,
            format!("schedule {} is enabled and starts {}", s.name, s.target_arn),
        ),
    }
}

async fn observe_schedule(
    ports: &Ports,
    p: Precondition,
    trigger: Option<&ScheduledTrigger>,
) -> Finding {
    let Some(t) = trigger else {
        return judge_schedule(p, None, None);
    };
    match ports.triggers.schedule(&t.schedule).await {
        Ok(s) => judge_schedule(p, Some(t), s.as_ref()),
        Err(e) => unobserved(p, &format!("read schedule {}", t.schedule), &e),
    }
}

/// Pure: the functions and the child state machines a definition invokes
/// (`FunctionName` of a `lambda:invoke` task or a Lambda ARN as the
/// `Resource`; `StateMachineArn` of a `startExecution` task), in Map and
/// Parallel states too.
pub fn invoked(definition: &serde_json::Value) -> (BTreeSet<String>, BTreeSet<String>) {
    fn walk(v: &serde_json::Value, f: &mut BTreeSet<String>, m: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value.as_str()) {
                        ("FunctionName", Some(name)) => {
                            f.insert(name.to_owned());
                        }
                        ("Resource", Some(arn))
                            if arn.contains(":lambda:") && arn.contains(":function:") =>
                        {
                            f.insert(arn.to_owned());
                        }
                        ("StateMachineArn", Some(arn)) => {
                            m.insert(arn.to_owned());
                        }
                        _ => walk(value, f, m),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, f, m)),
            _ => {}
        }
    }
    let (mut functions, mut machines) = (BTreeSet::new(), BTreeSet::new());
    walk(definition, &mut functions, &mut machines);
    (functions, machines)
}

/// One role's simulated permissions: a state machine's or a function's.
#[derive(Debug, Clone)]
pub struct RoleCheck {
    /// Who holds the role: `function <arn> (DR_FUNCTION=<name>)` or
    /// `state machine <arn>`.
    pub principal: String,
    pub verdicts: Result<Vec<ActionVerdict>, String>,
}

/// Pure: a scenario's roles allow what its steps do when every simulated
/// action is allowed on every resource; a role that could not be simulated
/// is not measured, so not met.
pub fn judge_permissions(checks: &[RoleCheck]) -> Finding {
    let p = Precondition::Permissions;
    let mut problems = Vec::new();
    let mut allowed = 0;
    for check in checks {
        match &check.verdicts {
            Err(why) => problems.push(format!("{}: {why}: not measured", check.principal)),
            Ok(verdicts) => {
                for v in verdicts {
                    if v.decision == Decision::Allowed {
                        allowed += 1;
                        continue;
                    }
                    let mut problem = format!(
                        "{} may not {} on {} ({})",
                        check.principal,
                        v.action,
                        v.resource,
                        v.decision.name()
                    );
                    if !v.missing_context.is_empty() {
                        problem.push_str(&format!(
                            "; the simulation lacked {}: not measured",
                            v.missing_context.join(", ")
                        ));
                    }
                    problems.push(problem);
                }
            }
        }
    }
    if checks.is_empty() {
        return not_met(
            p,
            "no role to check: the request names no state machine".to_owned(),
        );
    }
    if problems.is_empty() {
        met(
            p,
            format!(
                "{} role(s) allow their {allowed} simulated action(s)",
                checks.len()
            ),
        )
    } else {
        let shown = problems.len().min(5);
        let mut detail = problems[..shown].join("; ");
        if problems.len() > shown {
            detail.push_str(&format!("; and {} more", problems.len() - shown));
        }
        not_met(p, detail)
    }
}

/// How many state machines one scenario may start (itself and its
/// children, transitively): a bound on a definition that names itself.
const MAX_MACHINES: usize = 8;

/// Simulates the roles one scenario runs with: each state machine's (it
/// invokes its functions and starts its children) and each function's (the
/// actions its adapters call). Functions shared by scenarios are simulated
/// once per check.
async fn observe_permissions(
    permissions: &dyn Permissions,
    machines: &[String],
    functions_seen: &mut BTreeMap<String, RoleCheck>,
) -> Finding {
    let mut checks = Vec::new();
    let mut queue: Vec<String> = machines.to_vec();
    let mut seen = BTreeSet::new();
    let mut functions = BTreeSet::new();
    while let Some(arn) = queue.pop() {
        if !seen.insert(arn.clone()) {
            continue;
        }
        if seen.len() > MAX_MACHINES {
            return not_met(
                Precondition::Permissions,
                format!(
                    "more than {MAX_MACHINES} state machines reached from {}",
                    machines.join(", ")
                ),
            );
        }
        let machine = match permissions.state_machine(&arn).await {
            Ok(m) => m,
            Err(e) => {
                return unobserved(
                    Precondition::Permissions,
                    &format!("describe state machine {arn}"),
                    &e,
                )
            }
        };
        let (invokes, starts) = invoked(&machine.definition);
        let mut requests: Vec<ActionRequest> = Vec::new();
        if !invokes.is_empty() {
            requests.push(ActionRequest {
                action: "lambda:InvokeFunction".to_owned(),
                resources: invokes.iter().cloned().collect(),
            });
        }
        if !starts.is_empty() {
            requests.push(ActionRequest {
                action: "states:StartExecution".to_owned(),
                resources: starts.iter().cloned().collect(),
            });
        }
        if !requests.is_empty() {
            checks.push(RoleCheck {
                principal: format!("state machine {arn}"),
                verdicts: permissions
                    .simulate(&machine.role_arn, &requests)
                    .await
                    .map_err(|e| {
                        format!("{}: {}", e.name(), crate::truncate_message(&e.to_string()))
                    }),
            });
        }
        functions.extend(invokes);
        queue.extend(starts);
    }
    for arn in functions {
        if let Some(check) = functions_seen.get(&arn) {
            checks.push(check.clone());
            continue;
        }
        let check = function_check(permissions, &arn).await;
        functions_seen.insert(arn, check.clone());
        checks.push(check);
    }
    judge_permissions(&checks)
}

/// One function's role against the actions of its handler's port calls.
async fn function_check(permissions: &dyn Permissions, arn: &str) -> RoleCheck {
    let error = |e: DrError| format!("{}: {}", e.name(), crate::truncate_message(&e.to_string()));
    let deployed = match permissions.function(arn).await {
        Ok(f) => f,
        Err(e) => {
            return RoleCheck {
                principal: format!("function {arn}"),
                verdicts: Err(error(e)),
            }
        }
    };
    let name = deployed.dr_function.clone().unwrap_or_default();
    let principal = format!("function {} (DR_FUNCTION={name})", deployed.arn);
    let Some(function) = crate::Function::from_name(&name) else {
        return RoleCheck {
            principal,
            verdicts: Err(format!(
                "DR_FUNCTION {name:?} is not a function of this build, so what it needs is unknown"
            )),
        };
    };
    let mut actions: Vec<String> = function
        .port_calls()
        .iter()
        .flat_map(|op| permissions.actions(*op))
        .collect();
    actions.sort();
    actions.dedup();
    let requests: Vec<ActionRequest> = actions
        .into_iter()
        .map(|action| ActionRequest {
            action,
            resources: Vec::new(),
        })
        .collect();
    RoleCheck {
        principal,
        verdicts: if requests.is_empty() {
            Ok(Vec::new())
        } else {
            permissions
                .simulate(&deployed.role_arn, &requests)
                .await
                .map_err(error)
        },
    }
}

/// Pure: the SQL probe's newest result as evidence that the credentials
/// work: met only when it is recent and every probe of its minute opened a
/// session; no result, or an old one, is not measured.
pub fn judge_probe_metric(
    point: Option<&MetricPoint>,
    label: &str,
    now: DateTime<Utc>,
    within_seconds: u64,
) -> Finding {
    let p = Precondition::SqlCredentials;
    match point {
        None => not_met(
            p,
            format!("the SQL probe published no result for {label} in the last {within_seconds} s: not measured (is the probe scheduled and running?)"),
        ),
        Some(point) if age(now, point.at) > within_seconds as f64 => not_met(
            p,
            format!(
                "the SQL probe's newest result for {label} is {:.0} s old (at most {within_seconds} s): not measured",
                age(now, point.at)
            ),
        ),
        Some(point) if point.minimum >= 1.0 => met(
            p,
            format!(
                "the SQL probe opened a session through {label} at {}",
                point.at.to_rfc3339()
            ),
        ),
        Some(point) => not_met(
            p,
            format!(
                "the SQL probe could not open a session through {label} at {}",
                point.at.to_rfc3339()
            ),
        ),
    }
}

/// Pure: some replica is available and behind by less than the RPO. A lag
/// nobody measured is not a lag within the RPO.
pub fn judge_replicas(
    replicas: &[(InstanceId, Result<InstanceDescription, DrError>)],
    rpo_seconds: f64,
) -> Finding {
    let p = Precondition::ReplicaInSync;
    if replicas.is_empty() {
        return not_met(p, "the topology names no replica".to_owned());
    }
    let mut why = Vec::new();
    for (id, described) in replicas {
        match described {
            Err(e) => why.push(format!("{id}: {}", e.name())),
            Ok(d) if d.status != InstanceStatus::Available => {
                why.push(format!("{id} is {:?}", d.status));
            }
            Ok(d) => match d.replica_lag {
                None => why.push(format!("{id}: lag not measured")),
                Some(lag) if lag.seconds >= rpo_seconds => why.push(format!(
                    "{id} is {:.0} s behind (RPO {rpo_seconds:.0} s)",
                    lag.seconds
                )),
                Some(lag) => {
                    return met(
                        p,
                        format!(
                            "{id} is available, {:.1} s behind (RPO {rpo_seconds:.0} s)",
                            lag.seconds
                        ),
                    )
                }
            },
        }
    }
    not_met(p, format!("no replica in sync: {}", why.join("; ")))
}

/// Pure: the primary's newest restorable moment is within the RPO.
pub fn judge_window(
    primary: &InstanceDescription,
    now: DateTime<Utc>,
    rpo_seconds: f64,
) -> Finding {
    let p = Precondition::RestorableWindow;
    match primary.latest_restorable_time {
        None => not_met(
            p,
            format!(
                "{} has no restorable window (automated backups off?)",
                primary.instance_id
            ),
        ),
        Some(latest) if age(now, latest) > rpo_seconds => not_met(
            p,
            format!(
                "the newest restorable moment of {} is {:.0} s old (RPO {rpo_seconds:.0} s)",
                primary.instance_id,
                age(now, latest)
            ),
        ),
        Some(latest) => met(
            p,
            format!(
                "restorable up to {} ({:.0} s ago)",
                latest.to_rfc3339(),
                age(now, latest)
            ),
        ),
    }
}

/// Pure: the newest available snapshot of the primary is within the RPO.
pub fn judge_snapshot(
    snapshots: &[SnapshotDescription],
    primary: &InstanceId,
    now: DateTime<Utc>,
    rpo_seconds: f64,
) -> Finding {
    let p = Precondition::NewestSnapshot;
    let newest = snapshots
        .iter()
        .filter(|s| &s.source_instance_id == primary && s.status == SnapshotStatus::Available)
        .max_by_key(|s| s.data_time());
    match newest {
        None => not_met(p, format!("{primary} has no available snapshot")),
        Some(s) if age(now, s.data_time()) > rpo_seconds => not_met(
            p,
            format!(
                "the newest snapshot of {primary} ({}) is {:.0} s old (RPO {rpo_seconds:.0} s)",
                s.snapshot_id,
                age(now, s.data_time())
            ),
        ),
        Some(s) => met(
            p,
            format!("{} is {:.0} s old", s.snapshot_id, age(now, s.data_time())),
        ),
    }
}

/// Pure: the region failover's own choice finds a verified copy within the
/// RPO.
pub fn judge_copy(
    copies: &[SnapshotDescription],
    database: &str,
    region: &str,
    now: DateTime<Utc>,
    rpo_seconds: f64,
) -> Finding {
    let p = Precondition::BackupCopy;
    match crate::region::choose_copy(copies, database, None, None, now, rpo_seconds) {
        None => not_met(p, format!("no verified copy of {database} in {region}")),
        Some(c) if !c.rpo_met => not_met(
            p,
            format!(
                "the newest verified copy in {region} ({}) is {:.0} s old (RPO {rpo_seconds:.0} s)",
                c.snapshot_id, c.age_seconds
            ),
        ),
        Some(c) => met(
            p,
            format!("{} in {region}, {:.0} s old", c.snapshot_id, c.age_seconds),
        ),
    }
}

/// Pure: someone confirmed a subscription to the topic.
pub fn judge_subscribers(p: Precondition, topic: &str, counts: &SubscriptionCounts) -> Finding {
    if counts.confirmed > 0 {
        met(
            p,
            format!("{} confirmed subscription(s) to {topic}", counts.confirmed),
        )
    } else {
        not_met(
            p,
            format!(
                "nobody will read {topic}: no confirmed subscription ({} pending)",
                counts.pending
            ),
        )
    }
}

/// Pure: the IP set has room for more addresses.
pub fn judge_ip_set(set: &IpSetRef, contents: &IpSetContents) -> Finding {
    let p = Precondition::IpSetRoom;
    let limit = crate::breach::addresses::WAF_IP_SET_LIMIT;
    let used = contents.addresses.len();
    if used >= limit {
        not_met(
            p,
            format!("{} is full ({used} of {limit} addresses)", set.name),
        )
    } else {
        met(p, format!("{} holds {used} of {limit} addresses", set.name))
    }
}

/// Pure: the group may grow to the recovery's floor.
pub fn judge_fleet(floor: &FleetFloor, status: &FleetStatus) -> Finding {
    let p = Precondition::FleetFloor;
    if status.max_size >= floor.capacity_floor {
        met(
            p,
            format!(
                "{} may grow to {} (floor {})",
                floor.auto_scaling_group, status.max_size, floor.capacity_floor
            ),
        )
    } else {
        not_met(
            p,
            format!(
                "{} may not grow past {}: the recovery's floor of {} cannot be reached (raise MaxSize)",
                floor.auto_scaling_group, status.max_size, floor.capacity_floor
            ),
        )
    }
}

/// Pure: an IP set, group or deployment whose identifying name is empty is
/// none (the schedule's input names every one, empty when the stack's
/// parameter is): its scenario is then not ready, saying so.
pub fn unconfigured_as_none(mut request: ReadinessRequest) -> ReadinessRequest {
    if request
        .ip_set
        .as_ref()
        .is_some_and(|s| s.id.trim().is_empty())
    {
        request.ip_set = None;
    }
    if request
        .fleet
        .as_ref()
        .is_some_and(|f| f.auto_scaling_group.trim().is_empty())
    {
        request.fleet = None;
    }
    if request
        .deployment
        .as_ref()
        .is_some_and(|d| d.name.trim().is_empty())
    {
        request.deployment = None;
    }
    request
}

fn validate(request: &ReadinessRequest) -> DrResult<()> {
    let invalid = |m: String| Err(DrError::InvalidInput(m));
    if request.database.trim().is_empty() {
        return invalid("database is empty".into());
    }
    if !(60.0..=7.0 * 86_400.0).contains(&request.rpo_seconds) {
        return invalid(format!(
            "rpo_seconds {} is not 60 to 604800",
            request.rpo_seconds
        ));
    }
    for (field, arn) in [
        ("alerts_topic_arn", &request.alerts_topic_arn),
        ("approvals_topic_arn", &request.approvals_topic_arn),
    ] {
        if !arn.starts_with("arn:") || arn.split(':').count() != 6 {
            return invalid(format!("{field} {arn:?} is not an SNS topic ARN"));
        }
    }
    if let Some(f) = &request.fleet {
        if f.auto_scaling_group.trim().is_empty() || f.capacity_floor == 0 {
            return invalid(
                "fleet needs an auto_scaling_group and a capacity_floor of 1 or more".into(),
            );
        }
    }
    if let Some(s) = &request.ip_set {
        if s.name.is_empty() || s.id.is_empty() {
            return invalid("ip_set needs its name and id".into());
        }
    }
    if let Some(d) = &request.deployment {
        d.validate()?;
    }
    let namespace_ok = |n: &str| !n.trim().is_empty() && !n.starts_with("AWS/");
    if let SqlEvidence::ProbeMetric {
        namespace,
        database_label,
        within_seconds,
    } = &request.sql_evidence
    {
        if !namespace_ok(namespace) || database_label.trim().is_empty() {
            return invalid(
                "sql_evidence needs the probe's namespace (not AWS/...) and database_label".into(),
            );
        }
        if !(60..=86_400).contains(within_seconds) {
            return invalid(format!(
                "sql_evidence.within_seconds {within_seconds} is not 60 to 86400"
            ));
        }
    }
    if let Some(machines) = &request.permissions {
        for (scenario, arns) in machines {
            if !SCENARIOS.iter().any(|(s, _)| s == scenario) {
                return invalid(format!(
                    "permissions names {scenario:?}, which is not a scenario"
                ));
            }
            if arns.is_empty()
                || arns
                    .iter()
                    .any(|a| !a.starts_with("arn:") || !a.contains(":stateMachine:"))
            {
                return invalid(format!(
                    "permissions.{scenario} must list state machine ARNs"
                ));
            }
        }
    }
    if let Some(p) = &request.publish {
        if !namespace_ok(&p.namespace) {
            return invalid(format!(
                "publish.namespace {:?} must be set and must not start with AWS/",
                p.namespace
            ));
        }
    }
    Ok(())
}

/// Opens a session on the primary with the registry's secret.
async fn session_evidence(ports: &Ports, topology: &Topology) -> Finding {
    match crate::corruption::instance_target(
        ports,
        &topology.primary,
        &topology.db_name,
        &topology.credentials_secret_id,
        5_000,
    )
    .await
    {
        Err(e) => unobserved(Precondition::SqlCredentials, "reach the primary", &e),
        Ok((_, target)) => match ports.sql.probe(&target, ProbeKind::Read).await {
            Ok(r) if r.healthy => met(
                Precondition::SqlCredentials,
                format!(
                    "{} opens a session on {} ({} ms)",
                    topology.credentials_secret_id, topology.primary, r.latency_ms
                ),
            ),
            Ok(r) => not_met(
                Precondition::SqlCredentials,
                format!(
                    "{} does not open a session on {}: {}",
                    topology.credentials_secret_id,
                    topology.primary,
                    r.reason.unwrap_or_default()
                ),
            ),
            Err(e) => unobserved(Precondition::SqlCredentials, "probe the primary", &e),
        },
    }
}

/// Observes every precondition and judges each scenario. Only the request
/// itself and the registry's answer about the database are errors: every
/// other failure is a finding.
pub async fn readiness(ports: &Ports, request: ReadinessRequest) -> DrResult<ReadinessReport> {
    let request = unconfigured_as_none(request);
    validate(&request)?;
    let topology = ports
        .topology
        .get(&request.database)
        .await?
        .ok_or_else(|| {
            DrError::InvalidInput(format!(
                "database {} is not in the topology registry",
                request.database
            ))
        })?;
    let rpo = request.rpo_seconds;
    let now = dr_core::clock::now();
    let mut findings = Vec::new();

    let mut replicas = Vec::new();
    for id in &topology.replicas {
        replicas.push((id.clone(), ports.control_plane.describe_instance(id).await));
    }
    findings.push(judge_replicas(&replicas, rpo));

    findings.push(match &request.sql_evidence {
        SqlEvidence::Session => session_evidence(ports, &topology).await,
        SqlEvidence::ProbeMetric {
            namespace,
            database_label,
            within_seconds,
        } => {
            let since = now - chrono::Duration::seconds(*within_seconds as i64);
            let dimensions = std::collections::BTreeMap::from([(
                crate::probe::DATABASE_DIMENSION.to_owned(),
                database_label.clone(),
            )]);
            match ports
                .metrics
                .latest(namespace, crate::probe::SUCCESS_METRIC, &dimensions, since)
                .await
            {
                Ok(point) => {
                    judge_probe_metric(point.as_ref(), database_label, now, *within_seconds)
                }
                Err(e) => unobserved(
                    Precondition::SqlCredentials,
                    "read the SQL probe's metric",
                    &e,
                ),
            }
        }
    });

    findings.push(
        match ports
            .control_plane
            .describe_instance(&topology.primary)
            .await
        {
            Ok(primary) => judge_window(&primary, now, rpo),
            Err(e) => unobserved(Precondition::RestorableWindow, "describe the primary", &e),
        },
    );
    findings.push(
        match ports
            .control_plane
            .list_snapshots(Some(&topology.primary))
            .await
        {
            Ok(s) => judge_snapshot(&s, &topology.primary, now, rpo),
            Err(e) => unobserved(Precondition::NewestSnapshot, "list the snapshots", &e),
        },
    );
    findings.push(match &request.backup_region {
        None => not_met(
            Precondition::BackupCopy,
            "the request names no backup_region".to_owned(),
        ),
        Some(region) => match ports.plane(Some(region)) {
            Err(e) => unobserved(Precondition::BackupCopy, "reach the backup region", &e),
            Ok(plane) => match plane.list_snapshots(None).await {
                Ok(copies) => judge_copy(&copies, &topology.database, region, now, rpo),
                Err(e) => unobserved(
                    Precondition::BackupCopy,
                    "list the backup region's snapshots",
                    &e,
                ),
            },
        },
    });
    for (p, topic) in [
        (Precondition::AlertsSubscriber, &request.alerts_topic_arn),
        (
            Precondition::ApprovalsSubscriber,
            &request.approvals_topic_arn,
        ),
    ] {
        findings.push(match ports.notifier.subscriptions(topic).await {
            Ok(counts) => judge_subscribers(p, topic, &counts),
            Err(e) => unobserved(p, "list the topic's subscriptions", &e),
        });
    }
    findings.push(match &request.ip_set {
        None => not_met(
            Precondition::IpSetRoom,
            "the request names no ip_set: addresses cannot be blocked".to_owned(),
        ),
        Some(set) => match ports.firewall.get_ip_set(set).await {
            Ok(contents) => judge_ip_set(set, &contents),
            Err(e) => unobserved(Precondition::IpSetRoom, "read the IP set", &e),
        },
    });
    findings.push(match &request.fleet {
        None => not_met(
            Precondition::FleetFloor,
            "the request names no fleet".to_owned(),
        ),
        Some(floor) => {
            let fleet = FleetRef {
                auto_scaling_group: floor.auto_scaling_group.clone(),
                target_group_arn: None,
                region: floor.region.clone(),
            };
            match ports.fleet.describe_fleet(&fleet).await {
                Ok(status) => judge_fleet(floor, &status),
                Err(e) => unobserved(Precondition::FleetFloor, "describe the group", &e),
            }
        }
    });
    findings.push(match &request.deployment {
        None => not_met(
            Precondition::DeploymentExists,
            "the request names no deployment".to_owned(),
        ),
        Some(d) => match ports.deployment.describe_deployment(d).await {
            Ok(status) => met(
                Precondition::DeploymentExists,
                format!("{d} runs revision {}", status.current.revision),
            ),
            Err(DrError::NotFound(m)) => not_met(Precondition::DeploymentExists, m),
            Err(e) => unobserved(
                Precondition::DeploymentExists,
                "describe the deployment",
                &e,
            ),
        },
    });

    for (p, trigger) in [
        (
            Precondition::FailoverTrigger,
            request.triggers.database_failover.as_ref(),
        ),
        (
            Precondition::AppRecoveryTrigger,
            request.triggers.app_server_recovery.as_ref(),
        ),
        (
            Precondition::BreachTrigger,
            request.triggers.security_breach.as_ref(),
        ),
    ] {
        findings.push(observe_trigger(ports, p, trigger).await);
    }
    for (p, trigger) in [
        (
            Precondition::DrillSchedule,
            request.triggers.dr_drill.as_ref(),
        ),
        (
            Precondition::ReplicationSchedule,
            request.triggers.snapshot_replication.as_ref(),
        ),
    ] {
        findings.push(observe_schedule(ports, p, trigger).await);
    }

    let mut permissions = Vec::new();
    let mut not_checked = Vec::new();
    match &request.permissions {
        None => not_checked.push(
            "the roles' permissions (IAM policy simulation, on AWS: the request names no state machines)"
                .to_owned(),
        ),
        Some(machines) => {
            let mut functions = BTreeMap::new();
            for (scenario, arns) in machines {
                permissions.push(ScenarioFinding {
                    scenario: scenario.clone(),
                    finding: observe_permissions(ports.permissions.as_ref(), arns, &mut functions)
                        .await,
                });
            }
            not_checked.push(
                "the state machines' other service integrations and the functions' execution-role basics (logs, VPC interfaces)"
                    .to_owned(),
            );
        }
    }

    let report = ReadinessReport {
        database: topology.database.clone(),
        checked_at: now,
        rpo_seconds: rpo,
        scenarios: assess(&findings, &permissions),
        findings,
        not_checked,
        permissions,
    };
    if let Some(publish) = &request.publish {
        publish_report(ports, publish, &report).await?;
    }
    Ok(report)
}

/// Pure: `ScenarioReady` per scenario, 1 when ready and 0 when not.
pub fn ready_metrics(report: &ReadinessReport) -> Vec<MetricDatum> {
    report
        .scenarios
        .iter()
        .map(|s| MetricDatum {
            name: READY_METRIC.to_owned(),
            value: if s.ready { 1.0 } else { 0.0 },
            unit: "Count".to_owned(),
            dimensions: std::collections::BTreeMap::from([(
                SCENARIO_DIMENSION.to_owned(),
                s.scenario.clone(),
            )]),
            timestamp: report.checked_at,
        })
        .collect()
}

/// The scheduled check's outputs: the metrics the alarms watch, then the
/// report (JSON and the table) under `readiness/<database>/`.
async fn publish_report(
    ports: &Ports,
    publish: &ReadinessPublish,
    report: &ReadinessReport,
) -> DrResult<()> {
    ports
        .metrics
        .put(&publish.namespace, &ready_metrics(report))
        .await?;
    let key = format!(
        "{}{}",
        report_prefix(&report.database),
        report.checked_at.format("%Y%m%dT%H%M%SZ")
    );
    let json = serde_json::to_vec_pretty(report)
        .map_err(|e| DrError::Internal(format!("rendering the readiness report: {e}")))?;
    ports
        .reports
        .put(&format!("{key}.json"), "application/json", &json)
        .await?;
    ports
        .reports
        .put(
            &format!("{key}.txt"),
            "text/plain; charset=utf-8",
            table(report).as_bytes(),
        )
        .await?;
    Ok(())
}

/// Where the scheduled check keeps a database's reports (under the store's
/// own prefix).
pub fn report_prefix(database: &str) -> String {
    format!("readiness/{}/", crate::report::report_name(database))
}

/// Pure: the newest of a database's kept readiness reports (their names
/// are their UTC times, so they sort in time).
pub fn latest_report_key(keys: &[String], database: &str) -> Option<String> {
    let prefix = report_prefix(database);
    keys.iter()
        .filter(|k| k.starts_with(&prefix) && k.ends_with(".json"))
        .max()
        .cloned()
}

/// How old the newest scheduled check may be before it says nothing about
/// now (two missed runs of the 30-minute schedule).
pub const STALE_AFTER_SECONDS: i64 = 3600;

/// Pure: the scenarios, then the preconditions, as an operator reads them.
pub fn table(report: &ReadinessReport) -> String {
    let mut out = format!(
        "readiness of {} at {} (RPO {:.0} s)\n\n",
        report.database,
        report.checked_at.to_rfc3339(),
        report.rpo_seconds
    );
    let width = report
        .scenarios
        .iter()
        .map(|s| s.scenario.len())
        .max()
        .unwrap_or(0);
    for s in &report.scenarios {
        out.push_str(&format!(
            "{:width$}  {}\n",
            s.scenario,
            if s.ready { "READY" } else { "NOT READY" }
        ));
        for reason in &s.reasons {
            out.push_str(&format!("{:width$}    - {reason}\n", ""));
        }
    }
    out.push_str("\npreconditions:\n");
    for f in &report.findings {
        out.push_str(&format!(
            "  {} {}: {}\n",
            if f.met { "ok  " } else { "FAIL" },
            name(f.precondition),
            f.detail
        ));
    }
    for s in &report.permissions {
        out.push_str(&format!(
            "  {} {} ({}): {}\n",
            if s.finding.met { "ok  " } else { "FAIL" },
            name(s.finding.precondition),
            s.scenario,
            s.finding.detail
        ));
    }
    out.push_str("\nnot checked:\n");
    for n in &report.not_checked {
        out.push_str(&format!("  - {n}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_metric_shows_the_credentials_work_only_when_recent_and_healthy() {
        let point = |seconds_ago: i64, min: f64, max: f64| MetricPoint {
            at: ago(seconds_ago),
            minimum: min,
            maximum: max,
        };
        let cases: [(Option<MetricPoint>, bool, &str); 6] = [
            (Some(point(60, 1.0, 1.0)), true, "opened a session"),
            (Some(point(60, 0.0, 0.0)), false, "could not open a session"),
            // One probe of the minute failed: not shown to work.
            (Some(point(60, 0.0, 1.0)), false, "could not open a session"),
            (Some(point(601, 1.0, 1.0)), false, "601 s old"),
            (Some(point(600, 1.0, 1.0)), true, "opened a session"),
            (None, false, "not measured"),
        ];
        for (p, want, says) in cases {
            let f = judge_probe_metric(p.as_ref(), "db.muejam.internal", now(), 600);
            assert_eq!(f.precondition, Precondition::SqlCredentials);
            assert_eq!(f.met, want, "{p:?}: {}", f.detail);
            assert!(f.detail.contains(says), "{p:?}: {}", f.detail);
        }
    }

    #[test]
    fn each_scenario_publishes_one_when_ready_and_zero_when_not() {
        let findings = vec![
            Finding {
                precondition: Precondition::AlertsSubscriber,
                met: true,
                detail: "ok".into(),
            },
            Finding {
                precondition: Precondition::DeploymentExists,
                met: true,
                detail: "ok".into(),
            },
        ];
        let report = ReadinessReport {
            database: "muejam".into(),
            checked_at: now(),
            rpo_seconds: 21_600.0,
            scenarios: assess(&findings, &[]),
            findings,
            not_checked: vec![],
            permissions: vec![],
        };
        let metrics = ready_metrics(&report);
        assert_eq!(metrics.len(), SCENARIOS.len());
        let value = |scenario: &str| {
            metrics
                .iter()
                .find(|m| {
                    m.dimensions.get(SCENARIO_DIMENSION).map(String::as_str) == Some(scenario)
                })
                .map(|m| (m.name.as_str(), m.value, m.timestamp))
        };
        assert_eq!(
            value("deployment-rollback"),
            Some((READY_METRIC, 1.0, now()))
        );
        assert_eq!(value("database-failover"), Some((READY_METRIC, 0.0, now())));
        assert!(table(&report).contains("deployment-rollback  READY"));
    }

    #[test]
    fn a_trigger_is_wired_only_when_its_alarms_exist_and_an_enabled_rule_sends_them() {
        let p = Precondition::FailoverTrigger;
        let sm = "arn:aws:states:us-east-1:1:stateMachine:muejam-database-failover";
        let trigger = Trigger {
            alarms: vec!["muejam-db-prod-unreachable".into()],
            state_machine_arn: sm.into(),
            source: None,
        };
        let alarm = |enabled: bool| {
            Some(AlarmInfo {
                name: "muejam-db-prod-unreachable".into(),
                actions_enabled: enabled,
                state: "OK".into(),
            })
        };
        let rule = |enabled: bool, alarm: &str| RuleInfo {
            name: "failover-rule".into(),
            enabled,
            event_pattern: Some(serde_json::json!({
                "source": ["aws.cloudwatch"],
                "detail-type": ["CloudWatch Alarm State Change"],
                "detail": {"alarmName": [alarm], "state": {"value": ["ALARM"]}}
            })),
        };
        let named = |a| vec![("muejam-db-prod-unreachable".to_owned(), a)];
        type Case<'a> = (
            Option<&'a Trigger>,
            Vec<(String, Option<AlarmInfo>)>,
            Vec<RuleInfo>,
            bool,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                Some(&trigger),
                named(alarm(true)),
                vec![rule(true, "muejam-db-prod-unreachable")],
                true,
                "sent to",
            ),
            (
                Some(&trigger),
                named(None),
                vec![rule(true, "muejam-db-prod-unreachable")],
                false,
                "does not exist",
            ),
            (
                Some(&trigger),
                named(alarm(false)),
                vec![rule(true, "muejam-db-prod-unreachable")],
                false,
                "actions disabled",
            ),
            (
                Some(&trigger),
                named(alarm(true)),
                vec![rule(false, "muejam-db-prod-unreachable")],
                false,
                "no enabled rule sends alarm",
            ),
            (
                Some(&trigger),
                named(alarm(true)),
                vec![rule(true, "another-alarm")],
                false,
                "no enabled rule sends alarm",
            ),
            (
                Some(&trigger),
                named(alarm(true)),
                vec![],
                false,
                "no enabled rule sends alarm",
            ),
            (None, vec![], vec![], false, "names no trigger"),
        ];
        for (t, alarms, rules, want, says) in cases {
            let f = judge_trigger(p, t, &alarms, &rules);
            assert_eq!(f.met, want, "{}", f.detail);
            assert!(f.detail.contains(says), "{}", f.detail);
        }
        // GuardDuty's findings: no alarm, a rule of that source.
        let breach = Trigger {
            alarms: vec![],
            state_machine_arn: sm.into(),
            source: Some("aws.guardduty".into()),
        };
        let guardduty = RuleInfo {
            name: "findings".into(),
            enabled: true,
            event_pattern: Some(
                serde_json::json!({"source": ["aws.guardduty"], "detail-type": ["GuardDuty Finding"]}),
            ),
        };
        assert!(
            judge_trigger(
                Precondition::BreachTrigger,
                Some(&breach),
                &[],
                &[guardduty]
            )
            .met
        );
        assert!(
            !judge_trigger(
                Precondition::BreachTrigger,
                Some(&breach),
                &[],
                &[rule(true, "x")]
            )
            .met
        );
    }

    #[test]
    fn a_schedule_starts_its_scenario_only_when_it_exists_is_enabled_and_targets_it() {
        let p = Precondition::DrillSchedule;
        let sm = "arn:aws:states:us-east-1:1:stateMachine:muejam-dr-drill";
        let trigger = ScheduledTrigger {
            schedule: "muejam-quarterly-drill".into(),
            target_arn: sm.into(),
        };
        let schedule = |enabled: bool, target: &str| ScheduleInfo {
            name: "muejam-quarterly-drill".into(),
            enabled,
            target_arn: target.into(),
        };
        let cases: Vec<(Option<&ScheduledTrigger>, Option<ScheduleInfo>, bool, &str)> = vec![
            (
                Some(&trigger),
                Some(schedule(true, sm)),
                true,
                "is enabled and starts",
            ),
            (
                Some(&trigger),
                Some(schedule(false, sm)),
                false,
                "is disabled",
            ),
            (
                Some(&trigger),
                Some(schedule(
                    true,
                    "arn:aws:states:us-east-1:1:stateMachine:other",
                )),
                false,
                "starts arn:aws:states:us-east-1:1:stateMachine:other, not",
            ),
            (
                Some(&trigger),
                Some(schedule(true, "")),
                false,
                "starts nothing",
            ),
            (Some(&trigger), None, false, "does not exist"),
            (None, None, false, "names no schedule"),
        ];
        for (t, s, want, says) in cases {
            let f = judge_schedule(p, t, s.as_ref());
            assert_eq!((f.met, f.precondition), (want, p), "{}", f.detail);
            assert!(f.detail.contains(says), "{}", f.detail);
        }
    }

    /// Deployed state machines and functions; every simulated action is
    /// allowed unless its (role, action) is denied.
    #[derive(Default)]
    struct FakePermissions {
        machines: BTreeMap<String, DeployedStateMachine>,
        functions: BTreeMap<String, DeployedFunction>,
        denied: Vec<(&'static str, &'static str)>,
        simulated: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl Permissions for FakePermissions {
        async fn state_machine(&self, arn: &str) -> DrResult<DeployedStateMachine> {
            self.machines
                .get(arn)
                .cloned()
                .ok_or_else(|| DrError::NotFound(format!("state machine {arn}")))
        }
        async fn function(&self, arn: &str) -> DrResult<DeployedFunction> {
            self.functions
                .get(arn)
                .cloned()
                .ok_or_else(|| DrError::NotFound(format!("function {arn}")))
        }
        async fn simulate(
            &self,
            role_arn: &str,
            requests: &[ActionRequest],
        ) -> DrResult<Vec<ActionVerdict>> {
            self.simulated
                .lock()
                .expect("lock")
                .push(role_arn.to_owned());
            Ok(requests
                .iter()
                .flat_map(|r| {
                    let resources = if r.resources.is_empty() {
                        vec!["*".to_owned()]
                    } else {
                        r.resources.clone()
                    };
                    resources.into_iter().map(|resource| ActionVerdict {
                        action: r.action.clone(),
                        resource,
                        decision: if self
                            .denied
                            .iter()
                            .any(|(role, action)| *role == role_arn && *action == r.action)
                        {
                            Decision::ImplicitDeny
                        } else {
                            Decision::Allowed
                        },
                        missing_context: vec![],
                    })
                })
                .collect())
        }
        fn actions(&self, operation: PortOperation) -> Vec<String> {
            vec![format!("svc:{operation:?}")]
        }
    }

    const FAILOVER: &str = "arn:aws:states:us-east-1:1:stateMachine:muejam-database-failover";
    const CHILD: &str = "arn:aws:states:us-east-1:1:stateMachine:muejam-child";
    const CHECK: &str = "arn:aws:lambda:us-east-1:1:function:muejam-Check";
    const PROMOTE: &str = "arn:aws:lambda:us-east-1:1:function:muejam-Promote";

    fn deployed() -> FakePermissions {
        let machine = |arn: &str, role: &str, definition: serde_json::Value| {
            (
                arn.to_owned(),
                DeployedStateMachine {
                    arn: arn.to_owned(),
                    definition,
                    role_arn: role.to_owned(),
                },
            )
        };
        let function = |arn: &str, role: &str, f: crate::Function| {
            (
                arn.to_owned(),
                DeployedFunction {
                    arn: arn.to_owned(),
                    role_arn: role.to_owned(),
                    dr_function: Some(f.name().to_owned()),
                },
            )
        };
        FakePermissions {
            machines: [
                machine(
                    FAILOVER,
                    "role/sm",
                    serde_json::json!({"StartAt": "Check", "States": {
                        "Check": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                                  "Parameters": {"FunctionName": CHECK, "Payload.$": "$"}, "Next": "Each"},
                        "Each": {"Type": "Map", "ItemProcessor": {"StartAt": "Child", "States": {
                            "Child": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
                                      "Parameters": {"StateMachineArn": CHILD, "Input.$": "$"}, "End": true}}}, "End": true}
                    }}),
                ),
                machine(
                    CHILD,
                    "role/child",
                    serde_json::json!({"StartAt": "Promote", "States": {
                        "Promote": {"Type": "Task", "Resource": PROMOTE, "End": true}
                    }}),
                ),
            ]
            .into(),
            functions: [
                function(CHECK, "role/check", crate::Function::CheckDatabase),
                function(PROMOTE, "role/promote", crate::Function::PromoteReplica),
            ]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_definition_names_its_functions_and_children_in_maps_and_direct_resources() {
        let fake = deployed();
        let (functions, children) = invoked(&fake.machines[FAILOVER].definition);
        assert_eq!(functions, BTreeSet::from([CHECK.to_owned()]));
        assert_eq!(children, BTreeSet::from([CHILD.to_owned()]));
        let (functions, children) = invoked(&fake.machines[CHILD].definition);
        assert_eq!(functions, BTreeSet::from([PROMOTE.to_owned()]));
        assert!(children.is_empty());
    }

    #[tokio::test]
    async fn a_scenario_is_permitted_only_when_every_role_it_runs_with_allows_its_steps() {
        async fn check(fake: FakePermissions) -> Finding {
            let mut seen = BTreeMap::new();
            observe_permissions(&fake, &[FAILOVER.to_owned()], &mut seen).await
        }
        let ok = check(deployed()).await;
        assert!(ok.met, "{}", ok.detail);
        assert_eq!(ok.precondition, Precondition::Permissions);
        assert!(
            ok.detail.starts_with("4 role(s) allow their"),
            "{}",
            ok.detail
        );

        type Case = (Vec<(&'static str, &'static str)>, &'static str);
        let cases: Vec<Case> = vec![
            (
                vec![("role/promote", "svc:PromoteReadReplica")],
                "function arn:aws:lambda:us-east-1:1:function:muejam-Promote (DR_FUNCTION=promote-replica) may not svc:PromoteReadReplica on * (implicitDeny)",
            ),
            (
                vec![("role/sm", "lambda:InvokeFunction")],
                "state machine arn:aws:states:us-east-1:1:stateMachine:muejam-database-failover may not lambda:InvokeFunction on arn:aws:lambda:us-east-1:1:function:muejam-Check (implicitDeny)",
            ),
            (
                vec![("role/sm", "states:StartExecution")],
                "may not states:StartExecution on arn:aws:states:us-east-1:1:stateMachine:muejam-child",
            ),
        ];
        for (denied, says) in cases {
            let fake = FakePermissions {
                denied,
                ..deployed()
            };
            let f = check(fake).await;
            assert!(!f.met);
            assert!(f.detail.contains(says), "{}", f.detail);
        }

        // A function that is not ours: what it needs is unknown.
        let mut foreign = deployed();
        if let Some(f) = foreign.functions.get_mut(PROMOTE) {
            f.dr_function = Some("mystery".into());
        }
        let f = check(foreign).await;
        assert!(!f.met);
        assert!(
            f.detail
                .contains("DR_FUNCTION \"mystery\" is not a function of this build"),
            "{}",
            f.detail
        );

        // A state machine that cannot be read: not measured.
        let mut gone = deployed();
        gone.machines.remove(CHILD);
        let f = check(gone).await;
        assert!(!f.met);
        assert!(f.detail.starts_with("could not describe state machine arn:aws:states:us-east-1:1:stateMachine:muejam-child (NotFound"), "{}", f.detail);
        assert!(f.detail.ends_with("not measured"), "{}", f.detail);
    }

    #[tokio::test]
    async fn a_function_two_scenarios_share_is_simulated_once() {
        let fake = deployed();
        let mut seen = BTreeMap::new();
        for _ in 0..2 {
            let f = observe_permissions(&fake, &[CHILD.to_owned()], &mut seen).await;
            assert!(f.met, "{}", f.detail);
        }
        let simulated = fake.simulated.lock().expect("lock").clone();
        assert_eq!(simulated, ["role/child", "role/promote", "role/child"]);
    }

    #[test]
    fn a_scenario_is_not_ready_when_its_own_permissions_are_not_met() {
        let scoped = vec![ScenarioFinding {
            scenario: "deployment-rollback".into(),
            finding: not_met(Precondition::Permissions, "role x may not y".into()),
        }];
        let findings = vec![
            met(Precondition::AlertsSubscriber, "ok".into()),
            met(Precondition::DeploymentExists, "ok".into()),
        ];
        let scenarios = assess(&findings, &scoped);
        let rollback = scenarios
            .iter()
            .find(|s| s.scenario == "deployment-rollback")
            .expect("rollback");
        assert_eq!(rollback.reasons, ["permissions: role x may not y"]);
        assert!(assess(&findings, &[])
            .iter()
            .any(|s| s.scenario == "deployment-rollback" && s.ready));
    }

    #[test]
    fn the_newest_kept_report_of_the_database_is_found() {
        let keys: Vec<String> = [
            "readiness/muejam/20261128T100000Z.json",
            "readiness/muejam/20261128T103000Z.json",
            "readiness/muejam/20261128T103000Z.txt",
            "readiness/muejam-two/20261128T110000Z.json",
            "database-failover/20261128T120000Z-x.json",
        ]
        .iter()
        .map(|k| k.to_string())
        .collect();
        assert_eq!(
            latest_report_key(&keys, "muejam").as_deref(),
            Some("readiness/muejam/20261128T103000Z.json")
        );
        assert_eq!(
            latest_report_key(&keys, "muejam-two").as_deref(),
            Some("readiness/muejam-two/20261128T110000Z.json")
        );
        assert_eq!(latest_report_key(&keys, "other"), None);
    }

    #[test]
    fn what_the_stack_leaves_empty_is_none() {
        let request: ReadinessRequest = serde_json::from_value(serde_json::json!({
            "database": "muejam",
            "alerts_topic_arn": "arn:aws:sns:us-east-1:1:a", "approvals_topic_arn": "arn:aws:sns:us-east-1:1:b",
            "ip_set": {"name": "", "id": "", "scope": "REGIONAL"},
            "fleet": {"auto_scaling_group": "", "capacity_floor": 4},
            "deployment": {"namespace": "muejam", "name": ""}
        }))
        .expect("request");
        let r = unconfigured_as_none(request.clone());
        assert_eq!((r.ip_set, r.fleet, r.deployment), (None, None, None));
        let mut named = request;
        named.fleet = Some(FleetFloor {
            auto_scaling_group: "muejam-app".into(),
            region: None,
            capacity_floor: 4,
        });
        assert!(unconfigured_as_none(named).fleet.is_some());
    }

    #[test]
    fn the_sql_evidence_is_a_session_unless_the_probe_metric_is_named() {
        let base = serde_json::json!({"database": "muejam",
            "alerts_topic_arn": "arn:aws:sns:us-east-1:1:a", "approvals_topic_arn": "arn:aws:sns:us-east-1:1:b"});
        let r: ReadinessRequest = serde_json::from_value(base.clone()).expect("request");
        assert_eq!(r.sql_evidence, SqlEvidence::Session);
        assert_eq!(r.publish, None);
        let mut probe = base.clone();
        probe["sql_evidence"] = serde_json::json!({"kind": "probe_metric", "namespace": "MueJam/DR", "database_label": "db.muejam.internal"});
        probe["publish"] = serde_json::json!({"namespace": "MueJam/DR"});
        let r: ReadinessRequest = serde_json::from_value(probe).expect("request");
        assert_eq!(
            r.sql_evidence,
            SqlEvidence::ProbeMetric {
                namespace: "MueJam/DR".into(),
                database_label: "db.muejam.internal".into(),
                within_seconds: 600
            }
        );
        let mut typo = base;
        typo["sql_evidence"] = serde_json::json!({"kind": "probe_metrics"});
        assert!(serde_json::from_value::<ReadinessRequest>(typo).is_err());
    }
    use crate::replication::{COPY_OF_TAG, VERIFIED_TAG};

    fn now() -> DateTime<Utc> {
        "2026-11-28T12:00:00Z".parse().expect("now")
    }

    fn ago(seconds: i64) -> DateTime<Utc> {
        now() - chrono::Duration::seconds(seconds)
    }

    fn iid(s: &str) -> InstanceId {
        InstanceId::parse(s).expect("id")
    }

    fn instance(id: &str, status: InstanceStatus, lag: Option<f64>) -> InstanceDescription {
        InstanceDescription {
            instance_id: iid(id),
            status,
            role: InstanceRole::Replica,
            endpoint: None,
            engine: "postgres".into(),
            engine_version: "15".into(),
            availability_zone: None,
            storage_encrypted: true,
            replication_source: None,
            read_replicas: vec![],
            replica_lag: lag.map(|seconds| ReplicaLag {
                seconds,
                bytes: None,
            }),
            earliest_restorable_time: None,
            latest_restorable_time: None,
            created_at: ago(86_400),
            tags: Tags::new(),
            network: None,
        }
    }

    fn snapshot(id: &str, source: &str, age_s: i64, status: SnapshotStatus) -> SnapshotDescription {
        SnapshotDescription {
            snapshot_id: SnapshotId::parse(id).expect("id"),
            source_instance_id: iid(source),
            snapshot_type: SnapshotType::Automated,
            status,
            created_at: ago(age_s),
            size_bytes: 1,
            encrypted: true,
            engine_version: "15".into(),
            region: None,
            tags: Tags::new(),
            row_counts: None,
            original_created_at: None,
            copied_from: None,
            kms_key_id: None,
            percent_progress: None,
        }
    }

    #[test]
    fn a_replica_is_in_sync_only_when_available_and_measured_within_the_rpo() {
        use InstanceStatus::*;
        let one = |s, lag| vec![(iid("r1"), Ok(instance("r1", s, lag)))];
        // (replicas, RPO, met, in the detail)
        type Described = Vec<(InstanceId, Result<InstanceDescription, DrError>)>;
        let cases: Vec<(Described, f64, bool, &str)> = vec![
            (vec![], 60.0, false, "names no replica"),
            (one(Available, Some(0.4)), 60.0, true, "0.4 s behind"),
            (one(Available, Some(60.0)), 60.0, false, "60 s behind"),
            (one(Available, None), 60.0, false, "lag not measured"),
            (one(Failed, Some(0.0)), 60.0, false, "is Failed"),
            (
                vec![(iid("r1"), Err(DrError::NotFound("r1".into())))],
                60.0,
                false,
                "r1: NotFound",
            ),
            // Any one replica in sync is enough.
            (
                vec![
                    (iid("r1"), Ok(instance("r1", Failed, None))),
                    (iid("r2"), Ok(instance("r2", Available, Some(1.0)))),
                ],
                60.0,
                true,
                "r2 is available",
            ),
        ];
        for (i, (replicas, rpo, expected, says)) in cases.into_iter().enumerate() {
            let f = judge_replicas(&replicas, rpo);
            assert_eq!(f.met, expected, "case {i}: {f:?}");
            assert!(f.detail.contains(says), "case {i}: {f:?}");
        }
    }

    #[test]
    fn windows_snapshots_and_copies_are_judged_by_their_age_against_the_rpo() {
        let mut primary = instance("muejam-db-prod", InstanceStatus::Available, None);
        for (latest, met) in [
            (None, false),
            (Some(ago(30)), true),
            (Some(ago(7200)), false),
        ] {
            primary.latest_restorable_time = latest;
            assert_eq!(judge_window(&primary, now(), 3600.0).met, met, "{latest:?}");
        }
        let p = iid("muejam-db-prod");
        use SnapshotStatus::*;
        // (snapshots, met)
        let cases = [
            (vec![], false),
            (vec![snapshot("s1", "muejam-db-prod", 60, Available)], true),
            (
                vec![snapshot("s1", "muejam-db-prod", 7200, Available)],
                false,
            ),
            // Only available snapshots of this primary count.
            (vec![snapshot("s1", "muejam-db-prod", 60, Creating)], false),
            (vec![snapshot("s1", "other-db", 60, Available)], false),
            (
                vec![
                    snapshot("s1", "muejam-db-prod", 7200, Available),
                    snapshot("s2", "muejam-db-prod", 60, Available),
                ],
                true,
            ),
        ];
        for (i, (snaps, met)) in cases.into_iter().enumerate() {
            assert_eq!(
                judge_snapshot(&snaps, &p, now(), 3600.0).met,
                met,
                "case {i}"
            );
        }
        let copy = |age_s: i64, verified: bool| {
            let mut s = snapshot("c1", "muejam-db-prod", 0, Available);
            s.original_created_at = Some(ago(age_s));
            s.tags.insert(COPY_OF_TAG.into(), "muejam".into());
            if verified {
                s.tags
                    .insert(VERIFIED_TAG.into(), "2026-11-28T00:00:00Z".into());
            }
            s
        };
        // The copy's data time counts, not when it was copied.
        for (copies, met) in [
            (vec![], false),
            (vec![copy(60, true)], true),
            (vec![copy(60, false)], false),
            (vec![copy(7200, true)], false),
        ] {
            let f = judge_copy(&copies, "muejam", "us-west-2", now(), 3600.0);
            assert_eq!(f.met, met, "{f:?}");
        }
    }

    #[test]
    fn subscribers_room_and_floor() {
        let counts = |confirmed, pending| SubscriptionCounts { confirmed, pending };
        let p = Precondition::AlertsSubscriber;
        assert!(judge_subscribers(p, "t", &counts(1, 0)).met);
        let pending = judge_subscribers(p, "t", &counts(0, 2));
        assert!(
            !pending.met && pending.detail.contains("2 pending"),
            "{pending:?}"
        );
        let set = IpSetRef {
            name: "muejam-blocked".into(),
            id: "1".into(),
            scope: "REGIONAL".into(),
        };
        let holding = |n: usize| IpSetContents {
            addresses: (0..n)
                .map(|i| format!("10.0.{}.{}/32", i / 256, i % 256))
                .collect(),
            lock_token: "t".into(),
            ip_version: None,
        };
        assert!(judge_ip_set(&set, &holding(0)).met);
        assert!(judge_ip_set(&set, &holding(9_999)).met);
        assert!(!judge_ip_set(&set, &holding(10_000)).met);
        let floor = FleetFloor {
            auto_scaling_group: "muejam-app".into(),
            region: None,
            capacity_floor: 4,
        };
        let status = |max_size| FleetStatus {
            desired_capacity: 2,
            min_size: 1,
            max_size,
            instances: vec![],
            healthy_targets: 2,
            unhealthy_targets: 0,
        };
        assert!(judge_fleet(&floor, &status(4)).met);
        assert!(!judge_fleet(&floor, &status(3)).met);
    }

    #[test]
    fn a_scenario_is_ready_only_when_everything_it_needs_is_met() {
        use Precondition::*;
        let findings = |unmet: &[Precondition]| -> Vec<Finding> {
            Precondition::ALL
                .iter()
                .map(|p| {
                    if unmet.contains(p) {
                        not_met(*p, "broken".into())
                    } else {
                        met(*p, "fine".into())
                    }
                })
                .collect()
        };
        let not_ready = |unmet: &[Precondition]| -> Vec<String> {
            assess(&findings(unmet), &[])
                .into_iter()
                .filter(|s| !s.ready)
                .map(|s| s.scenario)
                .collect()
        };
        // (what is broken, the scenarios not ready)
        let cases: Vec<(Vec<Precondition>, Vec<&str>)> = vec![
            (vec![], vec![]),
            (vec![ReplicaInSync], vec!["database-failover"]),
            (vec![BackupCopy], vec!["region-failover"]),
            (
                vec![ApprovalsSubscriber],
                vec!["database-failover", "data-corruption", "region-failover"],
            ),
            (
                vec![AlertsSubscriber],
                SCENARIOS.iter().map(|(s, _)| *s).collect(),
            ),
            (
                vec![SqlCredentials],
                vec![
                    "database-failover",
                    "data-corruption",
                    "dr-drill",
                    "security-breach",
                ],
            ),
            (vec![FleetFloor], vec!["app-server-recovery"]),
        ];
        for (unmet, expected) in cases {
            assert_eq!(not_ready(&unmet), expected, "{unmet:?}");
        }
        // Every precondition is some scenario's (the permissions are each
        // scenario's own finding).
        for p in Precondition::ALL
            .into_iter()
            .filter(|p| *p != Precondition::Permissions)
        {
            assert!(
                SCENARIOS.iter().any(|(_, needs)| needs.contains(&p)),
                "{p:?} is nobody's"
            );
        }
        // What was never observed is not met.
        let missing = assess(&[], &[]);
        assert!(missing.iter().all(|s| !s.ready));
        assert!(
            missing[0].reasons[0].ends_with("not checked"),
            "{missing:?}"
        );
        let reasons = &assess(&findings(&[ReplicaInSync]), &[])[0].reasons;
        assert_eq!(reasons, &["replica_in_sync: broken"]);
    }
}
