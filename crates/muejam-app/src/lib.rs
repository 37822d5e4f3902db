//! The local MueJam API and the app tier it makes: see `platform` for the
//! fleet and deployments, `server` for one instance, `lb` for the load
//! balancer, `migrate` for the app's own migrations.

pub mod catalog;
pub mod cli;
pub mod db;
pub mod lb;
pub mod migrate;
pub mod platform;
pub mod server;

pub use platform::LocalAppPlatform;
