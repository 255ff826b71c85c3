//! duet_hal::storage_role: which node may write the shared storage.
//!
//! Owns: the [`StorageRole`] trait (promote to primary before serving,
//! demote before letting the partner serve, status) and its drivers:
//! [`Drbd`] runs the commands the board config names (`drbdadm primary r0`
//! and so on); [`SharedDir`] is the lab's: both nodes see one directory and
//! the primary holds an exclusive flock on a marker file in it.
//!
//! Must never: decide when to promote (the cluster core does), promote
//! twice behind the caller's back, or hang: commands have a time limit.
//! Calls block (they run programs or take locks): from tokio, run them with
//! `spawn_blocking`.

mod drbd;
mod shared_dir;

use std::time::Duration;

pub use drbd::{Drbd, DrbdConfig};
pub use shared_dir::SharedDir;

/// The local node's role on the shared storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// This node may write: it serves.
    Primary,
    /// This node must not write.
    Secondary,
}

/// Why a role change or status query failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoleError {
    /// The configured command could not be started.
    #[error("cannot run {program:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The command ran and failed.
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        /// The command line, for the log.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of what it wrote to stderr.
        stderr: String,
    },
    /// The command did not finish in time and was killed.
    #[error("{command} did not finish within {limit:?}")]
    Timeout {
        /// The command line.
        command: String,
        /// The limit.
        limit: Duration,
    },
    /// The status command's output names no role we know.
    #[error("cannot read a role from {0:?}")]
    Status(String),
    /// The other node holds the storage (shared-dir: its lock is held).
    #[error("the storage is held by the other node")]
    HeldElsewhere,
    /// A configuration value is unusable (empty command).
    #[error("{0}")]
    Config(&'static str),
    /// A system call failed (shared-dir: opening or locking the marker).
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
}

/// Promote, demote, and ask the role of this node on the shared storage.
/// Promote and demote are idempotent: asking for the role a node already
/// has succeeds.
pub trait StorageRole: Send {
    /// Become primary (may write). Fails, changing nothing, when the
    /// storage will not let this node write.
    fn promote(&mut self) -> Result<(), RoleError>;
    /// Become secondary (stop writing; the partner may promote).
    fn demote(&mut self) -> Result<(), RoleError>;
    /// This node's role now.
    fn status(&mut self) -> Result<Role, RoleError>;
}

/// Which driver, as the board config names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageRoleConfig {
    /// DRBD (or anything driven by commands).
    Drbd(DrbdConfig),
    /// The lab: a directory both nodes see.
    SharedDir(std::path::PathBuf),
}

/// The driver for `config`.
pub fn open(config: &StorageRoleConfig) -> Box<dyn StorageRole> {
    match config {
        StorageRoleConfig::Drbd(c) => Box::new(Drbd::new(c.clone())),
        StorageRoleConfig::SharedDir(d) => Box::new(SharedDir::new(d)),
    }
}
