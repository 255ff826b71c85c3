//! The `shared-dir` storage-role driver, for the lab: both nodes see one
//! directory; the primary is whoever holds an exclusive flock on the marker
//! file in it. The kernel drops the lock when the holder dies (kill -9
//! included), so the survivor can promote at once.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::{Role, RoleError, StorageRole};

/// The marker file's name in the shared directory.
pub const MARKER: &str = ".duet-primary.lock";

/// The `shared-dir` driver.
#[derive(Debug)]
pub struct SharedDir {
    marker: PathBuf,
    held: Option<File>,
}

impl SharedDir {
    /// The driver for directory `dir` (which must exist).
    pub fn new(dir: &Path) -> Self {
        SharedDir {
            marker: dir.join(MARKER),
            held: None,
        }
    }

    /// The marker file.
    pub fn marker(&self) -> &Path {
        &self.marker
    }
}

impl StorageRole for SharedDir {
    fn promote(&mut self) -> Result<(), RoleError> {
        if self.held.is_some() {
            return Ok(());
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.marker)
            .map_err(|source| RoleError::Io {
                op: "open the shared-dir marker",
                source,
            })?;
        // SAFETY: flock(2) on an fd we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::WouldBlock {
                return Err(RoleError::HeldElsewhere);
            }
            return Err(RoleError::Io {
                op: "flock the shared-dir marker",
                source: e,
            });
        }
        self.held = Some(f);
        Ok(())
    }

    fn demote(&mut self) -> Result<(), RoleError> {
        if let Some(f) = self.held.take() {
            // SAFETY: flock(2) on an fd we own. Closing would unlock too;
            // unlocking first says so.
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
        }
        Ok(())
    }

    fn status(&mut self) -> Result<Role, RoleError> {
        Ok(if self.held.is_some() {
            Role::Primary
        } else {
            Role::Secondary
        })
    }
}
