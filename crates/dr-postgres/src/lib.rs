//! PostgreSQL access for MueJam DR: connections with short timeouts, the
//! [`SqlTarget`](dr_core::SqlTarget) adapter, and the sample schema and data.

pub mod breach;
pub mod connect;
pub mod damage;
pub mod sample;
pub mod target;
pub mod tls;
pub mod writes;

pub use connect::{
    classify, classify_sqlstate, connect, connect_classified, map_pg_error, ConnectFailure,
};
pub use target::PostgresSqlTarget;
