//! Path resolution confined to the share root.
//!
//! Owns the one rule everything else relies on: no path given to
//! `duet_hal::fs` ever opens anything outside the share root. Two ways:
//!
//! * openat2(2) with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` relative to
//!   the root's O_PATH descriptor (Linux >= 5.6). The kernel refuses any
//!   step above the root, absolute symlinks and /proc magic links (EXDEV /
//!   ELOOP), and guards against concurrent renames (EAGAIN, retried).
//! * where openat2 answers ENOSYS, a component-wise walk: each component is
//!   opened O_PATH|O_NOFOLLOW relative to the previous directory's
//!   descriptor; symlinks are read and their relative targets expanded in
//!   place against a stack of directory descriptors, so `..` never goes
//!   through the kernel and cannot climb above the root; absolute targets
//!   fail with EXDEV, like openat2. Limitation: a directory moved out of the
//!   share by a local process *while* a walk holds its descriptor is not
//!   noticed (openat2 notices). Clients cannot cause that through us.
//!
//! Paths reaching this module were validated by `ShareRoot` (no empty, `.`
//! or `..` components, no leading `/`); "" is the root itself. Symlink
//! targets may contain `.`/`..`: they are handled here.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use libc::c_int;

use super::sys::{self, Errno, SysResult};

/// Which resolution method a share uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ResolveMode {
    /// openat2(2), falling back to the walk the first time the kernel
    /// answers ENOSYS. The right choice everywhere.
    #[default]
    Auto,
    /// Always the component-wise O_NOFOLLOW walk (for tests, and for
    /// sandboxes whose seccomp filter refuses openat2 with something other
    /// than ENOSYS).
    Walk,
}

/// Symlinks followed in one resolution before giving up (the kernel's limit).
const MAX_LINKS: u32 = 40;
/// Retries of an openat2 that answered EAGAIN (a rename raced with `..`).
const EAGAIN_RETRIES: u32 = 4;

pub(crate) struct Resolver {
    root: OwnedFd,
    walk: AtomicBool,
}

pub(crate) fn cstring(s: &str) -> SysResult<CString> {
    CString::new(s).map_err(|_| Errno(libc::EINVAL))
}

impl Resolver {
    pub(crate) fn new(root: OwnedFd, mode: ResolveMode) -> Resolver {
        Resolver {
            root,
            walk: AtomicBool::new(mode == ResolveMode::Walk),
        }
    }

    pub(crate) fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    pub(crate) fn uses_openat2(&self) -> bool {
        !self.walk.load(Ordering::Relaxed)
    }

    /// Opens `path` (share-relative, "" for the root) with open(2) `flags`
    /// (O_CLOEXEC is added). The last component is followed unless `flags`
    /// has O_NOFOLLOW, or O_CREAT|O_EXCL (which never follows); everything
    /// else is followed only while it stays beneath the root.
    pub(crate) fn open(&self, path: &str, flags: c_int, mode: u32) -> SysResult<OwnedFd> {
        let flags = flags | libc::O_CLOEXEC;
        if !self.walk.load(Ordering::Relaxed) {
            let c = cstring(if path.is_empty() { "." } else { path })?;
            let mut tries = 0;
            loop {
                match sys::openat2(
                    self.root.as_fd(),
                    &c,
                    flags,
                    mode,
                    sys::RESOLVE_BENEATH | sys::RESOLVE_NO_MAGICLINKS,
                ) {
                    Err(Errno(libc::ENOSYS)) => {
                        self.walk.store(true, Ordering::Relaxed);
                        break;
                    }
                    Err(Errno(libc::EAGAIN)) if tries < EAGAIN_RETRIES => tries += 1,
                    other => return other,
                }
            }
        }
        self.walk(path, flags, mode)
    }

    fn walk(&self, path: &str, flags: c_int, mode: u32) -> SysResult<OwnedFd> {
        let excl_create = flags & libc::O_CREAT != 0 && flags & libc::O_EXCL != 0;
        let follow_last = flags & libc::O_NOFOLLOW == 0 && !excl_create;
        // Directories below the root we are in; empty = at the root.
        let mut dirs: Vec<OwnedFd> = Vec::new();
        // Components still to resolve, next one last.
        let mut pending: Vec<Vec<u8>> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(|c| c.as_bytes().to_vec())
            .collect();
        if pending.is_empty() {
            return sys::openat(self.root.as_fd(), c".", flags, mode);
        }
        let mut links = 0u32;
        while let Some(comp) = pending.pop() {
            let last = pending.is_empty();
            let cur = match dirs.last() {
                Some(d) => d.as_fd(),
                None => self.root.as_fd(),
            };
            match comp.as_slice() {
                b"." => {
                    if last {
                        return sys::openat(cur, c".", flags, mode);
                    }
                }
                b".." => {
                    if dirs.pop().is_none() {
                        return Err(Errno(libc::EXDEV));
                    }
                    if last {
                        let cur = match dirs.last() {
                            Some(d) => d.as_fd(),
                            None => self.root.as_fd(),
                        };
                        return sys::openat(cur, c".", flags, mode);
                    }
                }
                name => {
                    let cname = CString::new(name).map_err(|_| Errno(libc::EINVAL))?;
                    if !last || follow_last {
                        let probe = sys::openat(
                            cur,
                            &cname,
                            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                            0,
                        );
                        let fd = match probe {
                            Ok(fd) => fd,
                            // A missing last component may be about to be
                            // created: let the real open below decide.
                            Err(Errno(libc::ENOENT)) if last => {
                                return sys::openat(cur, &cname, flags | libc::O_NOFOLLOW, mode)
                            }
                            Err(e) => return Err(e),
                        };
                        let st = sys::fstat_basic(fd.as_fd())?.mode;
                        if st & libc::S_IFMT == libc::S_IFLNK {
                            links += 1;
                            if links > MAX_LINKS {
                                return Err(Errno(libc::ELOOP));
                            }
                            let target = sys::readlink_fd(fd.as_fd())?;
                            expand(&target, &mut pending)?;
                            continue;
                        }
                        if !last {
                            if st & libc::S_IFMT != libc::S_IFDIR {
                                return Err(Errno(libc::ENOTDIR));
                            }
                            dirs.push(fd);
                            continue;
                        }
                    }
                    return sys::openat(cur, &cname, flags | libc::O_NOFOLLOW, mode);
                }
            }
        }
        // Only reached when the path ended in `.` components of a symlink
        // target that were skipped as non-last: open where we are.
        let cur = match dirs.last() {
            Some(d) => d.as_fd(),
            None => self.root.as_fd(),
        };
        sys::openat(cur, c".", flags, mode)
    }
}

/// Pushes a symlink target's components in front of the pending ones.
fn expand(target: &[u8], pending: &mut Vec<Vec<u8>>) -> SysResult<()> {
    if target.first() == Some(&b'/') {
        // Absolute targets are refused, as RESOLVE_BENEATH does.
        return Err(Errno(libc::EXDEV));
    }
    if target.is_empty() {
        return Err(Errno(libc::ENOENT));
    }
    let before = pending.len();
    pending.extend(
        target
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(<[u8]>::to_vec),
    );
    if pending.len() == before {
        pending.push(b".".to_vec());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_orders_components_before_the_rest() {
        let mut pending = vec![b"tail".to_vec()];
        expand(b"../a//b/", &mut pending).expect("relative target");
        let order: Vec<&[u8]> = pending.iter().rev().map(Vec::as_slice).collect();
        assert_eq!(order, vec![&b".."[..], b"a", b"b", b"tail"]);
    }

    #[test]
    fn expand_refuses_absolute_targets() {
        let mut pending = Vec::new();
        assert_eq!(expand(b"/etc", &mut pending), Err(Errno(libc::EXDEV)));
    }
}
