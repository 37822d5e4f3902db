//! `drctl run --port-fault OPERATION:CALL[-LAST]:ERROR`: a port operation
//! fails on its CALL-th call (counted across the run, retries included),
//! inside a handler, after what the handler did before it. This is how a
//! test fails a step in the middle of its work (a batch sent and not yet
//! recorded), which a task-level `--fault` cannot reach.
//!
//! Supported on the ports whose mid-step failures matter for exactly-once
//! work (the user notifier and the notification ledger) and on the home
//! region's DeleteDBInstance, which RDS refuses for an instance it is still
//! creating: a sweep must go on past one it cannot delete yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dr_core::*;
use dr_scenarios::Ports;

/// The operations `--port-fault` can fail.
const SUPPORTED: [PortOperation; 5] = [
    PortOperation::UserNotify,
    PortOperation::LedgerEntries,
    PortOperation::LedgerClaim,
    PortOperation::LedgerMarkSent,
    PortOperation::DeleteInstance,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFault {
    pub operation: PortOperation,
    pub first: u32,
    pub last: u32,
    pub error: String,
}

/// Parses `OPERATION:CALL[-LAST]:ERROR` (ERROR a stable error name).
pub fn parse(text: &str) -> DrResult<PortFault> {
    let bad = |why: String| {
        DrError::InvalidInput(format!(
            "port fault {text:?}: {why} (OPERATION:CALL[-LAST]:ERROR, OPERATION one of {})",
            SUPPORTED
                .iter()
                .map(|o| format!("{o:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    };
    let mut parts = text.splitn(3, ':');
    let (Some(op), Some(calls), Some(error)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("three parts are needed".to_owned()));
    };
    let operation = SUPPORTED
        .into_iter()
        .find(|o| format!("{o:?}") == op)
        .ok_or_else(|| bad(format!("{op} cannot be failed")))?;
    let number = |n: &str| n.parse::<u32>().ok().filter(|n| *n > 0);
    let (first, last) = match calls.split_once('-') {
        Some((f, l)) => match (number(f), number(l)) {
            (Some(f), Some(l)) if f <= l => (f, l),
            _ => {
                return Err(bad(
                    "CALL-LAST must be positive numbers, in order".to_owned()
                ))
            }
        },
        None => {
            let n =
                number(calls).ok_or_else(|| bad("CALL must be a positive number".to_owned()))?;
            (n, n)
        }
    };
    if error_named(error, String::new()).is_none() {
        return Err(bad(format!(
            "{error} is not an error name a port fault can raise"
        )));
    }
    Ok(PortFault {
        operation,
        first,
        last,
        error: error.to_owned(),
    })
}

/// Every `--port-fault` given, parsed; the first bad one refuses them all.
pub fn parse_all(texts: &[String]) -> DrResult<Vec<PortFault>> {
    texts.iter().map(|t| parse(t)).collect()
}

/// The error of a stable name (every one but `ReplicaLagTooHigh`, which
/// carries figures rather than a message).
fn error_named(name: &str, message: String) -> Option<DrError> {
    Some(match name {
        "InvalidInput" => DrError::InvalidInput(message),
        "NotFound" => DrError::NotFound(message),
        "AlreadyExists" => DrError::AlreadyExists(message),
        "NotReady" => DrError::NotReady(message),
        "Throttled" => DrError::Throttled(message),
        "Unsafe" => DrError::Unsafe(message),
        "Timeout" => DrError::Timeout(message),
        "Unavailable" => DrError::Unavailable(message),
        "Conflict" => DrError::Conflict(message),
        "Corrupt" => DrError::Corrupt(message),
        "Internal" => DrError::Internal(message),
        _ => return None,
    })
}

/// Counts calls per operation and fails the ones a fault names.
struct Injector {
    faults: Vec<PortFault>,
    calls: Mutex<HashMap<PortOperation, u32>>,
}

impl Injector {
    fn check(&self, operation: PortOperation) -> DrResult<()> {
        let n = {
            let mut calls = self
                .calls
                .lock()
                .map_err(|_| DrError::Internal("port fault counter poisoned".to_owned()))?;
            let n = calls.entry(operation).or_insert(0);
            *n += 1;
            *n
        };
        match self
            .faults
            .iter()
            .find(|f| f.operation == operation && (f.first..=f.last).contains(&n))
        {
            Some(f) => {
                let message = format!("{operation:?} call {n}: injected by drctl run --port-fault");
                Err(error_named(&f.error, message.clone()).unwrap_or(DrError::Internal(message)))
            }
            None => Ok(()),
        }
    }
}

struct FaultyUsers {
    inner: Arc<dyn UserNotifier>,
    injector: Arc<Injector>,
}

#[async_trait]
impl UserNotifier for FaultyUsers {
    async fn send_batch(
        &self,
        topic: &str,
        messages: &[UserMessage],
    ) -> DrResult<Vec<UserDelivery>> {
        self.injector.check(PortOperation::UserNotify)?;
        self.inner.send_batch(topic, messages).await
    }
}

struct FaultyLedger {
    inner: Arc<dyn NotificationLedger>,
    injector: Arc<Injector>,
}

#[async_trait]
impl NotificationLedger for FaultyLedger {
    async fn entries(&self, incident: &str) -> DrResult<Vec<LedgerEntry>> {
        self.injector.check(PortOperation::LedgerEntries)?;
        self.inner.entries(incident).await
    }
    async fn claim(&self, incident: &str, users: &[i64], at: DateTime<Utc>) -> DrResult<()> {
        self.injector.check(PortOperation::LedgerClaim)?;
        self.inner.claim(incident, users, at).await
    }
    async fn mark_sent(
        &self,
        incident: &str,
        sent: &[(i64, String)],
        at: DateTime<Utc>,
    ) -> DrResult<()> {
        self.injector.check(PortOperation::LedgerMarkSent)?;
        self.inner.mark_sent(incident, sent, at).await
    }
}

/// The home region's control plane, its DeleteDBInstance failing where a
/// fault says; every other call as it is.
struct FaultyControlPlane {
    inner: Arc<dyn DatabaseControlPlane>,
    injector: Arc<Injector>,
}

#[async_trait]
impl DatabaseControlPlane for FaultyControlPlane {
    async fn describe_instance(&self, id: &InstanceId) -> DrResult<InstanceDescription> {
        self.inner.describe_instance(id).await
    }
    async fn list_instances(&self) -> DrResult<Vec<InstanceDescription>> {
        self.inner.list_instances().await
    }
    async fn list_snapshots(
        &self,
        instance: Option<&InstanceId>,
    ) -> DrResult<Vec<SnapshotDescription>> {
        self.inner.list_snapshots(instance).await
    }
    async fn promote_read_replica(&self, id: &InstanceId) -> DrResult<PromotionOutcome> {
        self.inner.promote_read_replica(id).await
    }
    async fn create_read_replica(
        &self,
        request: &CreateReplicaRequest,
    ) -> DrResult<InstanceDescription> {
        self.inner.create_read_replica(request).await
    }
    async fn create_snapshot(
        &self,
        request: &CreateSnapshotRequest,
    ) -> DrResult<SnapshotDescription> {
        self.inner.create_snapshot(request).await
    }
    async fn restore_from_snapshot(
        &self,
        request: &RestoreSnapshotRequest,
    ) -> DrResult<InstanceDescription> {
        self.inner.restore_from_snapshot(request).await
    }
    async fn restore_to_point_in_time(
        &self,
        request: &PointInTimeRestoreRequest,
    ) -> DrResult<InstanceDescription> {
        self.inner.restore_to_point_in_time(request).await
    }
    async fn delete_instance(&self, id: &InstanceId, options: DeleteOptions) -> DrResult<()> {
        self.injector.check(PortOperation::DeleteInstance)?;
        self.inner.delete_instance(id, options).await
    }
    async fn delete_snapshot(&self, id: &SnapshotId) -> DrResult<()> {
        self.inner.delete_snapshot(id).await
    }
    async fn describe_snapshot(&self, id: &SnapshotId) -> DrResult<SnapshotDescription> {
        self.inner.describe_snapshot(id).await
    }
    async fn copy_snapshot(&self, request: &CopySnapshotRequest) -> DrResult<SnapshotDescription> {
        self.inner.copy_snapshot(request).await
    }
    async fn tag_snapshot(&self, id: &SnapshotId, tags: &Tags) -> DrResult<()> {
        self.inner.tag_snapshot(id, tags).await
    }
    async fn change_master_credentials(
        &self,
        id: &InstanceId,
        new_password: &secrecy::SecretString,
    ) -> DrResult<()> {
        self.inner.change_master_credentials(id, new_password).await
    }
    async fn add_tags(&self, instance: &InstanceId, tags: &Tags) -> DrResult<()> {
        self.inner.add_tags(instance, tags).await
    }
    async fn fence_instance(
        &self,
        id: &InstanceId,
        request: &FenceRequest,
    ) -> DrResult<FenceOutcome> {
        self.inner.fence_instance(id, request).await
    }
    async fn inject_failure(&self, id: &InstanceId, request: &FailureRequest) -> DrResult<String> {
        self.inner.inject_failure(id, request).await
    }
    async fn verify_snapshot(&self, id: &SnapshotId) -> DrResult<SnapshotIntegrity> {
        self.inner.verify_snapshot(id).await
    }
}

/// The ports with the faults injected (unchanged without any).
pub fn inject(mut ports: Ports, faults: Vec<PortFault>) -> Ports {
    if faults.is_empty() {
        return ports;
    }
    let injector = Arc::new(Injector {
        faults,
        calls: Mutex::new(HashMap::new()),
    });
    ports.users = Arc::new(FaultyUsers {
        inner: ports.users,
        injector: Arc::clone(&injector),
    });
    ports.ledger = Arc::new(FaultyLedger {
        inner: ports.ledger,
        injector: Arc::clone(&injector),
    });
    ports.control_plane = Arc::new(FaultyControlPlane {
        inner: ports.control_plane,
        injector,
    });
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_fault_is_parsed_or_refused_by_name() {
        assert_eq!(
            parse("LedgerMarkSent:2:Unavailable").expect("parses"),
            PortFault {
                operation: PortOperation::LedgerMarkSent,
                first: 2,
                last: 2,
                error: "Unavailable".into()
            }
        );
        assert_eq!(parse("UserNotify:1-3:Throttled").expect("parses").last, 3);
        assert_eq!(
            parse("DeleteInstance:1:NotReady")
                .expect("parses")
                .operation,
            PortOperation::DeleteInstance
        );
        for bad in [
            "UserNotify:2",
            "SqlProbe:1:Unavailable",
            "UserNotify:0:Unavailable",
            "UserNotify:3-1:Unavailable",
            "UserNotify:1:Nonsense",
            "UserNotify:1:ReplicaLagTooHigh",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
