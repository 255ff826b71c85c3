//! Extended attributes as Windows has them (name, value, flags byte),
//! kept as user xattrs.
//!
//! Each EA is one xattr, `user.duet.ea.<NAME>`, whose value is the flags
//! byte followed by the EA's value. Names are ASCII and case-insensitive,
//! as on Windows: they are stored, and reported, in upper case (what NTFS
//! does), so setting `Foo` replaces `FOO`. An empty value means "no such
//! EA": setting one removes the EA.
//!
//! Limits: a name is 1 to [`EA_NAME_MAX`] characters (the xattr name must
//! stay within the kernel's 255 bytes); a value at most 65535 bytes; all
//! EAs of a file together at most [`EA_LIST_MAX`] bytes packed (MS-FSA
//! 2.1.5.15.5). The filesystem may hold less (ext4 keeps all xattrs of an
//! inode in one block): what does not fit is [`FsError::EaTooLarge`], and
//! nothing of the change is kept.
//!
//! The EA size ([`Meta::ea_size`](super::Meta)) is kept in the metadata
//! xattr (`attrs.rs`) and updated by [`Handle::set_eas`], so listings read
//! no EA. EAs written behind the server's back are listed, but the size
//! reported is the one last computed here.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;

use super::sys::{self, Errno};
use super::{FsError, Handle};

/// Prefix of the xattrs holding EAs.
const PREFIX: &str = "user.duet.ea.";
/// Longest EA name: the xattr name (prefix included) is at most 255 bytes.
pub const EA_NAME_MAX: usize = 255 - PREFIX.len();
/// Longest EA value.
const EA_VALUE_MAX: usize = u16::MAX as usize;
/// Largest packed EA list of one file (64 KiB less 5 bytes, MS-FSA
/// 2.1.5.15.5).
pub const EA_LIST_MAX: usize = 65536 - 5;
/// Upper bound of one xattr value we read (flags byte + value).
const READ_MAX: usize = EA_VALUE_MAX + 1;

/// One extended attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ea {
    /// The name: ASCII, no control characters; upper case when read back.
    pub name: String,
    /// The value; empty in [`Handle::set_eas`] means "remove".
    pub value: Vec<u8>,
    /// The flags byte, kept as given (FILE_NEED_EA is 0x80).
    pub flags: u8,
}

/// Packed size of one EA (flags, name length, value length (2 bytes), the
/// name with its terminating NUL, the value).
fn packed_len(name: &str, value: &[u8]) -> usize {
    4 + name.len() + 1 + value.len()
}

/// EaSize as MS-FSA 2.1.5.12.10 reports it: the packed length of all EAs
/// plus 4 for the list header; 0 for no EAs.
pub fn ea_size(eas: &[Ea]) -> u32 {
    if eas.is_empty() {
        return 0;
    }
    let packed: usize = eas.iter().map(|e| packed_len(&e.name, &e.value)).sum();
    u32::try_from(packed + 4).unwrap_or(u32::MAX)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= EA_NAME_MAX && name.bytes().all(|b| (0x20..0x7F).contains(&b))
}

/// The xattr holding EA `name` (upper-cased). `InvalidParameter` for a name
/// this module cannot store.
fn xattr_name(name: &str) -> Result<CString, FsError> {
    if !valid_name(name) {
        return Err(FsError::InvalidParameter("EA name"));
    }
    CString::new(format!("{PREFIX}{}", name.to_ascii_uppercase()))
        .map_err(|_| FsError::InvalidParameter("EA name"))
}

/// Errors of writing EAs.
fn ea_err(e: Errno) -> FsError {
    match e.0 {
        libc::EOPNOTSUPP => FsError::EasNotSupported,
        // ext4 answers ENOSPC when the inode's xattr block is full.
        libc::ENOSPC | libc::E2BIG | libc::ERANGE => FsError::EaTooLarge,
        _ => FsError::from_errno(e),
    }
}

/// Every xattr name of `fd`.
pub(crate) fn list_names(fd: BorrowedFd<'_>) -> Result<Vec<Vec<u8>>, FsError> {
    for _ in 0..4 {
        let need = match sys::flistxattr(fd, &mut []) {
            Ok(n) => n,
            Err(Errno(libc::EOPNOTSUPP)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut buf = vec![0u8; need];
        match sys::flistxattr(fd, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf
                    .split(|&b| b == 0)
                    .filter(|n| !n.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect());
            }
            // Grew between the two calls.
            Err(Errno(libc::ERANGE)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(FsError::Busy)
}

/// The value of xattr `name`, `None` if it vanished or is bigger than any
/// EA (not ours).
fn read_value(fd: BorrowedFd<'_>, name: &CString) -> Result<Option<Vec<u8>>, FsError> {
    for _ in 0..4 {
        let need = match sys::fgetxattr(fd, name, &mut []) {
            Ok(n) => n,
            Err(Errno(libc::ENODATA)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if need > READ_MAX {
            return Ok(None);
        }
        let mut buf = vec![0u8; need];
        match sys::fgetxattr(fd, name, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno(libc::ENODATA)) => return Ok(None),
            Err(Errno(libc::ERANGE)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(FsError::Busy)
}

/// All EAs of `fd`, sorted by name.
fn read_all(fd: BorrowedFd<'_>) -> Result<Vec<Ea>, FsError> {
    let mut out = Vec::new();
    for raw in list_names(fd)? {
        let Some(name) = raw.strip_prefix(PREFIX.as_bytes()) else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if !valid_name(name) {
            continue;
        }
        let Ok(xname) = CString::new(raw.clone()) else {
            continue;
        };
        // A value without its flags byte, or with nothing after it, is not
        // an EA (Windows has no empty EAs).
        match read_value(fd, &xname)? {
            Some(v) if v.len() >= 2 => out.push(Ea {
                name: name.to_owned(),
                value: v[1..].to_vec(),
                flags: v[0],
            }),
            _ => {}
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Writes the EA `name` (already upper case) as `new` (None: removes it).
fn write_one(fd: BorrowedFd<'_>, name: &str, new: Option<&Ea>) -> Result<(), FsError> {
    let x = xattr_name(name)?;
    match new {
        Some(ea) => {
            let mut v = Vec::with_capacity(ea.value.len() + 1);
            v.push(ea.flags);
            v.extend_from_slice(&ea.value);
            sys::fsetxattr(fd, &x, &v).map_err(ea_err)
        }
        None => match sys::fremovexattr(fd, &x) {
            Ok(()) | Err(Errno(libc::ENODATA)) => Ok(()),
            Err(e) => Err(ea_err(e)),
        },
    }
}

impl Handle {
    /// The index (in [`Handle::eas`] order) of the next EA an enumeration
    /// through this handle returns: MS-FSA Open.NextEaEntry, 0 when the
    /// handle is opened. Kept here, not interpreted.
    pub fn ea_cursor(&self) -> u32 {
        self.ea_cursor.load(Ordering::Relaxed)
    }

    /// Sets [`Handle::ea_cursor`].
    pub fn set_ea_cursor(&self, next: u32) {
        self.ea_cursor.store(next, Ordering::Relaxed);
    }

    /// The extended attributes, sorted by name (names in upper case). A
    /// share without user xattrs has none.
    pub fn eas(&self) -> Result<Vec<Ea>, FsError> {
        if !self.share.xattrs {
            return Ok(Vec::new());
        }
        read_all(self.fd.as_fd())
    }

    /// Applies `changes` in order: each replaces the EA of the same name
    /// (case-insensitively), or removes it when its value is empty. Then
    /// the stored EA size is updated. Errors, with nothing changed:
    /// `EasNotSupported` (no user xattrs), `InvalidParameter` (a name this
    /// store cannot hold: empty, longer than [`EA_NAME_MAX`], not printable
    /// ASCII), `EaTooLarge` (a value over 65535 bytes, the list over
    /// [`EA_LIST_MAX`], or more than the filesystem holds).
    pub fn set_eas(&self, changes: &[Ea]) -> Result<(), FsError> {
        if !self.share.xattrs {
            return Err(FsError::EasNotSupported);
        }
        for c in changes {
            xattr_name(&c.name)?;
            if c.value.len() > EA_VALUE_MAX {
                return Err(FsError::EaTooLarge);
            }
        }
        let fd = self.fd.as_fd();
        let b = sys::fstat_basic(fd)?;
        let _g = self.share.lock(&b);
        let old = read_all(fd)?;
        let mut new = old.clone();
        let mut touched: Vec<String> = Vec::new();
        for c in changes {
            let name = c.name.to_ascii_uppercase();
            new.retain(|e| e.name != name);
            if !c.value.is_empty() {
                new.push(Ea {
                    name: name.clone(),
                    value: c.value.clone(),
                    flags: c.flags,
                });
            }
            if !touched.contains(&name) {
                touched.push(name);
            }
        }
        let size = ea_size(&new);
        if size as usize > EA_LIST_MAX + 4 {
            return Err(FsError::EaTooLarge);
        }
        let find = |list: &[Ea], n: &str| list.iter().position(|e| e.name == n);
        for (i, name) in touched.iter().enumerate() {
            let want = find(&new, name).map(|p| &new[p]);
            if let Err(e) = write_one(fd, name, want) {
                // Undo what was written, newest first (best effort).
                for undo in touched[..i].iter().rev() {
                    let _ = write_one(fd, undo, find(&old, undo).map(|p| &old[p]));
                }
                return Err(e);
            }
        }
        let stored = self.share.update_stored_locked(fd, &b, |s| {
            s.ea_size = (size > 0).then_some(size);
        });
        match stored {
            Ok(true) => Ok(()),
            Ok(false) => Err(FsError::EasNotSupported),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ea(name: &str, value: &[u8]) -> Ea {
        Ea {
            name: name.into(),
            value: value.to_vec(),
            flags: 0,
        }
    }

    #[test]
    fn sizes_follow_the_packed_layout() {
        assert_eq!(ea_size(&[]), 0);
        // 4 + (4 + 5 + 1 + 6) + (4 + 8 + 1 + 8)
        assert_eq!(
            ea_size(&[ea("EAONE", b"VALUE1"), ea("SECONDEA", b"ValueTwo")]),
            41
        );
    }

    #[test]
    fn names_are_checked_and_upper_cased() {
        assert_eq!(
            xattr_name("NewEa").unwrap().as_bytes(),
            b"user.duet.ea.NEWEA"
        );
        assert_eq!(
            xattr_name(&"x".repeat(EA_NAME_MAX))
                .unwrap()
                .as_bytes()
                .len(),
            255
        );
        for bad in ["", "a\u{1}b", "caf\u{e9}", "del\u{7f}"] {
            assert!(xattr_name(bad).is_err(), "{bad:?}");
        }
        assert!(xattr_name(&"x".repeat(EA_NAME_MAX + 1)).is_err());
    }
}
