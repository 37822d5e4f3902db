//! A local platform in a throw-away home whose servers are stopped on drop,
//! even when a test fails half-way: for tests, benchmarks and demos.

use dr_core::{DatabaseTarget, DrError, DrResult, InstanceId, Tags};

use crate::platform::{CreateInstanceRequest, LocalControlPlane};

pub struct Lab {
    pub platform: LocalControlPlane,
    _home: tempfile::TempDir,
}

impl Lab {
    pub fn new() -> DrResult<Lab> {
        let home = tempfile::Builder::new()
            .prefix("dr-lab-")
            .tempdir()
            .map_err(|e| DrError::Internal(format!("making a lab home: {e}")))?;
        let platform = LocalControlPlane::open(home.path(), None)?;
        Ok(Lab {
            platform,
            _home: home,
        })
    }

    /// Creates an empty instance and returns how to reach its database.
    pub async fn instance(&self, name: &str) -> DrResult<DatabaseTarget> {
        let id = InstanceId::parse(name)?;
        self.platform
            .create_instance(&CreateInstanceRequest {
                instance_id: id.clone(),
                availability_zone: None,
                tags: Tags::new(),
            })
            .await?;
        self.platform.database_target(&id, None)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.platform.stop_all_blocking();
    }
}
