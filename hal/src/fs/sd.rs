//! The NT security descriptor of a file or directory, kept as one user
//! xattr, `user.duet.sd`, holding the self-relative SECURITY_DESCRIPTOR
//! exactly as the SMB layer gives it (this module never interprets it; the
//! SMB layer parses and enforces it).
//!
//! Objects without the xattr have no stored descriptor: the SMB layer
//! synthesizes one. A value is at most [`SD_MAX`] bytes; the filesystem may
//! hold less (ext4 keeps all xattrs of an inode in one block), which is
//! [`FsError::NoSpace`] with nothing changed. Like every user xattr, the
//! value can be changed by whoever may write the file on the server itself:
//! local access to the share's directory tree bypasses these ACLs.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd};

use super::sys::{self, Errno};
use super::{check_path, FsError, Handle, ShareRoot, DIR_OPEN_FLAGS};

/// The xattr holding the descriptor.
const XATTR_NAME: &CStr = c"user.duet.sd";
/// Largest descriptor stored or read: two full ACLs (AclSize is 16 bits),
/// two SIDs and the header fit.
pub const SD_MAX: usize = 2 * 65536 + 256;

fn xattr_err(e: Errno) -> FsError {
    match e.0 {
        libc::E2BIG | libc::ENOSPC => FsError::NoSpace,
        _ => FsError::from_errno(e),
    }
}

/// Reads the descriptor of `fd`. `Ok(None)`: none stored, or no user
/// xattrs here. A value over [`SD_MAX`] is `InvalidParameter` (not ours to
/// interpret, and not to be ignored either: callers fail closed).
fn read(fd: BorrowedFd<'_>) -> Result<Option<Vec<u8>>, FsError> {
    // The size first, then the value; a value that grew in between is
    // read again.
    for _ in 0..4 {
        let len = match sys::fgetxattr(fd, XATTR_NAME, &mut []) {
            Ok(n) => n,
            Err(Errno(libc::ENODATA | libc::EOPNOTSUPP)) => return Ok(None),
            Err(e) => return Err(FsError::from_errno(e)),
        };
        if len > SD_MAX {
            return Err(FsError::InvalidParameter(
                "stored security descriptor too large",
            ));
        }
        let mut buf = vec![0u8; len];
        match sys::fgetxattr(fd, XATTR_NAME, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno(libc::ERANGE)) => continue,
            Err(Errno(libc::ENODATA | libc::EOPNOTSUPP)) => return Ok(None),
            Err(e) => return Err(FsError::from_errno(e)),
        }
    }
    Err(FsError::Busy)
}

impl Handle {
    /// The stored security descriptor, if any (`None` on a share without
    /// user xattrs).
    pub fn security_descriptor(&self) -> Result<Option<Vec<u8>>, FsError> {
        if !self.share.xattrs {
            return Ok(None);
        }
        read(self.fd.as_fd())
    }

    /// Read-modify-write of the stored descriptor, serialised with every
    /// other metadata update of the file: `f` gets the current value and
    /// returns the new one, or an error that leaves the stored value as it
    /// was. Errors of the store itself: `Io(EOPNOTSUPP)` (no user xattrs),
    /// `InvalidParameter` (empty or over [`SD_MAX`] bytes), `NoSpace` (more
    /// than the filesystem holds beside the file's other xattrs).
    pub fn update_security_descriptor<E: From<FsError>>(
        &self,
        f: impl FnOnce(Option<Vec<u8>>) -> Result<Vec<u8>, E>,
    ) -> Result<(), E> {
        if !self.share.xattrs {
            return Err(FsError::Io(libc::EOPNOTSUPP).into());
        }
        let fd = self.fd.as_fd();
        let b = sys::fstat_basic(fd).map_err(FsError::from)?;
        let _g = self.share.lock(&b);
        let new = f(read(fd)?)?;
        if new.is_empty() || new.len() > SD_MAX {
            return Err(FsError::InvalidParameter("security descriptor size").into());
        }
        sys::fsetxattr(fd, XATTR_NAME, &new).map_err(|e| E::from(xattr_err(e)))
    }

    /// Stores `sd` as the descriptor (replacing any), see
    /// [`Handle::update_security_descriptor`] for the errors.
    pub fn set_security_descriptor(&self, sd: &[u8]) -> Result<(), FsError> {
        self.update_security_descriptor(|_| Ok::<_, FsError>(sd.to_vec()))
    }
}

impl ShareRoot {
    /// The stored security descriptor of the directory `path` (the parent
    /// of something being created or opened). Errors as opening the
    /// directory gives them (`NotADirectory` for a file).
    pub fn dir_security_descriptor(&self, path: &str) -> Result<Option<Vec<u8>>, FsError> {
        check_path(path)?;
        let s = &self.inner;
        if !s.xattrs {
            return Ok(None);
        }
        let fd = s
            .resolver
            .open(path, DIR_OPEN_FLAGS, 0)
            .map_err(|e| s.diagnose(path, e))?;
        read(fd.as_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{Disposition, Kind, OpenOptions};

    fn share() -> (tempfile::TempDir, ShareRoot) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = ShareRoot::open(dir.path()).expect("share");
        (dir, root)
    }

    fn create(root: &ShareRoot, path: &str, dir: bool) -> Handle {
        let opts = OpenOptions {
            read: true,
            write: !dir,
            disposition: Disposition::Create,
            kind: if dir {
                Kind::Directory
            } else {
                Kind::NonDirectory
            },
            attributes_on_create: 0,
            mode: if dir { 0o755 } else { 0o644 },
        };
        root.open_file(path, &opts).expect("create").0
    }

    #[test]
    fn absent_then_stored_then_replaced() {
        let (_d, root) = share();
        if !root.xattrs_supported() {
            return;
        }
        let h = create(&root, "f", false);
        assert_eq!(h.security_descriptor().unwrap(), None);
        h.set_security_descriptor(&[1, 0, 4, 0x80]).unwrap();
        assert_eq!(h.security_descriptor().unwrap(), Some(vec![1, 0, 4, 0x80]));
        h.update_security_descriptor(|old| {
            assert_eq!(old.as_deref(), Some(&[1u8, 0, 4, 0x80][..]));
            Ok::<_, FsError>(vec![9; 300])
        })
        .unwrap();
        assert_eq!(h.security_descriptor().unwrap(), Some(vec![9; 300]));
        // The EA and metadata xattrs are other names: untouched.
        assert!(h.eas().unwrap().is_empty());
    }

    #[test]
    fn a_failed_update_keeps_the_old_value() {
        let (_d, root) = share();
        if !root.xattrs_supported() {
            return;
        }
        let h = create(&root, "f", false);
        h.set_security_descriptor(&[1, 2, 3, 4]).unwrap();
        let r: Result<(), FsError> = h.update_security_descriptor(|_| Err(FsError::AccessDenied));
        assert_eq!(r, Err(FsError::AccessDenied));
        assert_eq!(
            h.set_security_descriptor(&[]),
            Err(FsError::InvalidParameter("security descriptor size"))
        );
        assert!(h.set_security_descriptor(&vec![0; SD_MAX + 1]).is_err());
        assert_eq!(h.security_descriptor().unwrap(), Some(vec![1, 2, 3, 4]));
    }

    #[test]
    fn too_big_for_the_filesystem_is_no_space() {
        let (_d, root) = share();
        if !root.xattrs_supported() {
            return;
        }
        let h = create(&root, "f", false);
        // ext4 holds one block of xattrs; tmpfs and xfs hold more. Either
        // it is stored whole or refused with NoSpace, never cut.
        match h.set_security_descriptor(&vec![7; 60_000]) {
            Ok(()) => assert_eq!(h.security_descriptor().unwrap().unwrap().len(), 60_000),
            Err(e) => {
                assert_eq!(e, FsError::NoSpace);
                assert_eq!(h.security_descriptor().unwrap(), None);
            }
        }
    }

    #[test]
    fn a_directory_by_path() {
        let (_d, root) = share();
        if !root.xattrs_supported() {
            return;
        }
        let d = create(&root, "d", true);
        let _f = create(&root, "d/f", false);
        assert_eq!(root.dir_security_descriptor("d").unwrap(), None);
        d.set_security_descriptor(&[5; 40]).unwrap();
        assert_eq!(
            root.dir_security_descriptor("d").unwrap(),
            Some(vec![5; 40])
        );
        assert_eq!(root.dir_security_descriptor("").unwrap(), None);
        assert_eq!(
            root.dir_security_descriptor("d/f"),
            Err(FsError::NotADirectory)
        );
        assert_eq!(root.dir_security_descriptor("x"), Err(FsError::NotFound));
        assert_eq!(
            root.dir_security_descriptor("../x"),
            Err(FsError::InvalidName("dot component"))
        );
    }
}
