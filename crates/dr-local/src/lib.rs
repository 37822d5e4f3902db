//! The local platform: the database control plane played by real PostgreSQL
//! 15 clusters under one home directory, encrypted snapshots, point-in-time
//! restore from archived WAL, and a moto server for the other AWS APIs.

mod control_plane;
pub use control_plane::LocalRegions;
pub mod executions;
pub mod lab;
pub mod moto;
pub mod pg;
pub mod platform;
pub mod processes;
pub mod reports;
pub mod sealed;
pub mod stack;
pub mod state;
pub mod tls;

pub use platform::{
    availability_zones, CreateInstanceRequest, LocalControlPlane, SnapshotVerification,
    AVAILABILITY_ZONES, BACKUP_REGION, DEFAULT_DATABASE, HOME_REGION, MASTER_USERNAME, REGIONS,
};
