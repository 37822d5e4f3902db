//! PostgreSQL access for MueJam DR: connections with short timeouts, the
//! [`SqlTarget`](dr_core::SqlTarget) adapter, and the sample schema and data.

pub mod connect;
pub mod sample;
pub mod target;

pub use connect::{connect, map_pg_error};
pub use target::PostgresSqlTarget;
