//! The local control plane on real PostgreSQL 15 clusters.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dr_core::*;
use dr_local::{CreateInstanceRequest, LocalControlPlane};
use secrecy::SecretString;

/// A platform in a fresh temporary home; every server is stopped on drop,
/// even when the test fails.
struct Lab {
    platform: LocalControlPlane,
    _home: tempfile::TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.platform.stop_all_blocking();
    }
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("valid id")
}

fn snapshot_id(s: &str) -> SnapshotId {
    SnapshotId::parse(s).expect("valid id")
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn lab() -> Lab {
    let home = tempfile::Builder::new()
        .prefix("dr-local-test-")
        .tempdir()
        .expect("temp home");
    let platform = LocalControlPlane::open(home.path(), None).expect("open platform");
    Lab {
        platform,
        _home: home,
    }
}

impl Lab {
    async fn primary(&self, name: &str) -> InstanceDescription {
        self.platform
            .create_instance(&CreateInstanceRequest {
                instance_id: id(name),
                availability_zone: None,
                tags: tags(&[("Environment", "test")]),
            })
            .await
            .expect("create primary")
    }

    async fn sql(&self, name: &str) -> tokio_postgres::Client {
        let target = self
            .platform
            .database_target(&id(name), None)
            .expect("target");
        dr_postgres::connect(&target).await.expect("connect")
    }

    async fn snapshot(&self, instance: &str, snapshot: &str) -> SnapshotDescription {
        self.platform
            .create_snapshot(&CreateSnapshotRequest {
                instance_id: id(instance),
                snapshot_id: snapshot_id(snapshot),
                tags: Tags::new(),
            })
            .await
            .expect("snapshot")
    }

    fn state_bytes(&self) -> Vec<u8> {
        std::fs::read(self.platform.store().path()).expect("state file")
    }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} never happened");
}

mod backups;
mod breach;
mod probes;
mod regions;
mod replication;
mod safety;
mod writes;
