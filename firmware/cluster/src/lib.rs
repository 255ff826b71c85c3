//! duet-cluster (docs to come)

mod config;
mod error;
mod node;
mod stream;
pub mod sim;
pub mod wire;

pub use config::{Config, Millis, NodeId};
pub use error::ClusterError;
pub use node::{
    DurableState, Effect, Event, MirrorState, Node, ReleaseReason, Report, Role, Stats,
    Transmit, Warning, RELEASE_EFFECTS, TAKEOVER_EFFECTS,
};
pub use stream::Change;
pub use wire::Path;
