//! Domain core of MueJam disaster recovery: the stable error names, the
//! resource types and the ports (traits) that adapters implement.

pub mod clock;
pub mod error;
pub mod guard;
pub mod model;
pub mod ports;
pub mod topology;

pub use error::{DrError, DrResult, ERROR_NAMES};
pub use model::*;
pub use ports::*;
/// Secrets (passwords, task tokens) never print: their Debug is redacted.
pub use secrecy::SecretString;
pub use topology::*;
