//! Runbook "verify failure": the control plane, a classified SQL probe, the
//! record and the replica, judged by the evidence policy.

use super::*;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmFailureInput {
    pub plan: FailoverPlan,
    /// The record as the input's validation read it (Route 53's API is not
    /// reachable from a VPC without NAT, where this step runs).
    pub database_record: crate::plan::ObservedRecord,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
    #[serde(default)]
    pub journal: Option<JournalRef>,
}

/// The replica as the confirmation saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaCheck {
    pub instance_id: InstanceId,
    pub status: String,
    pub lag_seconds: Option<f64>,
    pub lag_bytes: Option<u64>,
    /// Why it cannot take over now; `None` when it can.
    pub problem: Option<String>,
}

/// The error a refused run ends with, as Step Functions names errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause")]
    pub cause: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmFailureOutput {
    pub primary: InstanceId,
    pub control_plane: ControlPlaneView,
    pub probe: ProbeView,
    pub probe_reason: Option<String>,
    /// What the database record points at (`None`: the record does not exist).
    pub dns_value: Option<String>,
    pub replica: ReplicaCheck,
    pub decision: Decision,
    pub reasons: Vec<String>,
    pub control_plane_confirms_down: bool,
    /// For `ask`: how long a person has, and until when.
    pub approval: Option<ApprovalWindow>,
    /// For `cannot_confirm` and `blocked`: the error the run ends with.
    pub error: Option<StepError>,
    pub checked_at: DateTime<Utc>,
}

/// Runbook "verify failure": the control plane's view of the primary, a
/// classified SQL probe of its endpoint, the database record (read by the
/// input's validation), and whether the replica can take over, judged by
/// the evidence policy. Only reads.
pub async fn confirm_failure(
    ports: &Ports,
    input: ConfirmFailureInput,
) -> DrResult<ConfirmFailureOutput> {
    let plan = &input.plan;
    let (control, endpoint) = match ports.control_plane.describe_instance(&plan.primary).await {
        Ok(d) => (ControlPlaneView::Status { status: d.status }, d.endpoint),
        Err(DrError::NotFound(_)) => (ControlPlaneView::Gone, None),
        Err(e) => return Err(e),
    };
    let record = input.database_record.value.clone();
    let report = match (&record, &endpoint) {
        (None, _) => ProbeReport {
            healthy: false,
            reason: Some(format!(
                "the database record {} does not exist in {}",
                plan.dns.record_name, plan.dns.hosted_zone
            )),
            failure: Some(ProbeFailure::DnsUnresolvable),
            in_recovery: None,
            server_version: None,
            latency_ms: 0,
        },
        (Some(_), None) => ProbeReport {
            healthy: false,
            reason: Some(format!("{} has no endpoint to connect to", plan.primary)),
            failure: Some(ProbeFailure::Refused),
            in_recovery: None,
            server_version: None,
            latency_ms: 0,
        },
        (Some(_), Some(endpoint)) => {
            probe_with_secret(
                ports,
                &SqlAccess {
                    endpoint,
                    database: &plan.db_name,
                    secret_id: &plan.credentials_secret_id,
                    connect_timeout_seconds: input.connect_timeout_seconds,
                    statement_timeout_ms: default_statement_timeout(),
                    tls_mode: None,
                },
                false,
            )
            .await?
        }
    };
    let probe = ProbeView::of(&report);
    let mut verdict = evidence_policy(&plan.primary, &control, probe);
    if let (Some(record), Some(endpoint)) = (&record, &endpoint) {
        if *record != endpoint.address {
            verdict.reasons.push(format!(
                "{} points at {record}, not at {}'s endpoint {}",
                plan.dns.record_name, plan.primary, endpoint.address
            ));
        }
    }
    let replica = ports.control_plane.describe_instance(&plan.replica).await?;
    let readiness = replica_readiness(&replica, plan.max_lag_seconds, plan.allow_data_loss);
    let replica_check = ReplicaCheck {
        instance_id: plan.replica.clone(),
        status: replica.status.to_string(),
        lag_seconds: replica.replica_lag.map(|l| l.seconds),
        lag_bytes: replica.replica_lag.and_then(|l| l.bytes),
        problem: readiness.as_ref().err().map(ToString::to_string),
    };
    let mut error = None;
    match (verdict.decision, readiness) {
        (Decision::Automatic | Decision::Ask, Err(problem)) => {
            verdict.reasons.push(format!(
                "the replica {} cannot take over: {problem}",
                plan.replica
            ));
            error = Some(StepError {
                error: match problem {
                    DrError::ReplicaLagTooHigh { .. } => "ReplicaLagTooHigh".to_owned(),
                    other => other.name().to_owned(),
                },
                cause: verdict.reasons.join("; "),
            });
            verdict.decision = Decision::Blocked;
        }
        (Decision::CannotConfirm, _) => {
            error = Some(StepError {
                error: "CannotConfirmFailure".to_owned(),
                cause: verdict.reasons.join("; "),
            });
        }
        _ => {}
    }
    if let Some(resume) = &plan.resume {
        // The recovery was decided (and, if it had to be, approved) by the
        // execution that began it; what is observed now is recorded, and
        // the rest is finished.
        verdict.reasons.insert(
            0,
            format!(
                "resuming recovery {} begun by execution {}: {}",
                plan.recovery_id,
                resume.first_execution,
                resume.began.join("; ")
            ),
        );
        verdict.decision = Decision::Resume;
        verdict.control_plane_confirms_down |= resume.control_plane_confirmed_down;
        error = None;
    } else if let Some(journal) = &input.journal {
        crate::journal::note(
            ports,
            journal,
            "confirm",
            verdict.reasons.join("; "),
            serde_json::json!({
                "decision": verdict.decision,
                "control_plane_confirms_down": verdict.control_plane_confirms_down,
            }),
        )
        .await?;
    }
    let now = dr_core::clock::now();
    let approval = (verdict.decision == Decision::Ask).then(|| {
        approval_window(
            plan.execution_start,
            now,
            plan.rto_objective_seconds,
            &plan.approval,
        )
    });
    Ok(ConfirmFailureOutput {
        primary: plan.primary.clone(),
        control_plane: control,
        probe,
        probe_reason: report.reason,
        dns_value: record,
        replica: replica_check,
        decision: verdict.decision,
        reasons: verdict.reasons,
        control_plane_confirms_down: verdict.control_plane_confirms_down,
        approval,
        error,
        checked_at: now,
    })
}
