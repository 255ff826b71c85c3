//! Windows metadata Linux does not keep: DOS attributes, creation time, a
//! change time a client set, and the size of the extended attributes.
//!
//! All live in one small extended attribute, `user.duet`, written only when
//! they differ from the defaults, so most files carry none. Its value is
//! compact and versioned:
//!
//! ```text
//! byte 0     version (1)
//! byte 1     flags: 0x01 attributes, 0x02 creation time, 0x04 change
//!            time, 0x08 EA size present
//! then       attributes, u32 little-endian      (if 0x01)
//! then       creation time, u64 LE NT FILETIME  (if 0x02)
//! then       change time, u64 LE FILETIME, and the mtime (u64 LE
//!            FILETIME) the file had when it was set        (if 0x04)
//! then       EaSize, u32 LE (see `ea.rs`)       (if 0x08)
//! ```
//!
//! At most 34 bytes: on ext4 it fits in the inode's own xattr space, so it
//! costs no data block. A value of another version or malformed is ignored
//! (the defaults are reported) and replaced on the next write.
//!
//! # Change time
//! Linux cannot set ctime, yet SMB clients set ChangeTime and read it back
//! (smbtorture's complex-file setup fails a file whose four times do not
//! read back). The time a client sets is stored with the mtime the file has
//! at that moment, and reported instead of ctime for as long as mtime is
//! unchanged. Data changes (writes, truncation, a set write time) move
//! mtime, and then the real ctime shows again. Metadata-only changes
//! (attributes, EAs, renames) keep the client's time: Windows does the same
//! for changes made through the handle that set it (MS-FSA
//! Open.UserSetChangeTime), and it is the only rule that needs no second
//! write after the xattr write (which itself moves ctime).
//!
//! Defaults: a file has ARCHIVE, a directory nothing (reported as
//! DIRECTORY). Reported attributes always carry DIRECTORY for directories,
//! and a file with no attribute set reports NORMAL (0x80): that mapping is
//! done here, not by the SMB layer.
//!
//! Where the filesystem has no user xattrs (ENOTSUP), nothing is stored:
//! READONLY is derived from the mode (no write bit at all) and set by
//! clearing/restoring write bits; files report ARCHIVE; other attributes
//! and explicit creation times are dropped.

use std::ffi::CStr;
use std::os::fd::BorrowedFd;

use super::nt_time;
use super::sys::{self, Errno, Stat, SysResult};

/// DOS / NT file attribute bits (MS-FSCC 2.6).
pub mod dos {
    /// FILE_ATTRIBUTE_READONLY
    pub const READONLY: u32 = 0x0001;
    /// FILE_ATTRIBUTE_HIDDEN
    pub const HIDDEN: u32 = 0x0002;
    /// FILE_ATTRIBUTE_SYSTEM
    pub const SYSTEM: u32 = 0x0004;
    /// FILE_ATTRIBUTE_DIRECTORY
    pub const DIRECTORY: u32 = 0x0010;
    /// FILE_ATTRIBUTE_ARCHIVE
    pub const ARCHIVE: u32 = 0x0020;
    /// FILE_ATTRIBUTE_NORMAL: reported alone when no other bit is set.
    pub const NORMAL: u32 = 0x0080;
    /// FILE_ATTRIBUTE_TEMPORARY (files only)
    pub const TEMPORARY: u32 = 0x0100;
    /// FILE_ATTRIBUTE_SPARSE_FILE (files only). Stored and reported, but
    /// never set from [`STORED`] input: only `Handle::set_sparse` changes it
    /// (as only FSCTL_SET_SPARSE does on Windows).
    pub const SPARSE_FILE: u32 = 0x0200;
    /// FILE_ATTRIBUTE_OFFLINE
    pub const OFFLINE: u32 = 0x1000;
    /// FILE_ATTRIBUTE_NOT_CONTENT_INDEXED
    pub const NOT_CONTENT_INDEXED: u32 = 0x2000;
    /// The bits a client can set and we store; others are ignored on set.
    pub const STORED: u32 =
        READONLY | HIDDEN | SYSTEM | ARCHIVE | TEMPORARY | OFFLINE | NOT_CONTENT_INDEXED;
}

pub(crate) const XATTR_NAME: &CStr = c"user.duet";
const VERSION: u8 = 1;
const HAS_ATTRS: u8 = 0x01;
const HAS_CREATION: u8 = 0x02;
const HAS_CHANGE: u8 = 0x04;
const HAS_EA_SIZE: u8 = 0x08;
const MAX_LEN: usize = 2 + 4 + 8 + 16 + 4;
/// Read buffer for the value: bigger than anything we write, so a foreign
/// value of moderate size is read (and ignored) rather than ERANGE.
const READ_BUF: usize = 64;

/// A change time a client set, valid while the file's mtime is `mtime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChangeOverride {
    /// The ChangeTime to report (FILETIME).
    pub change: u64,
    /// The file's mtime (FILETIME) when it was set.
    pub mtime: u64,
}

/// What `user.duet` holds. `None` fields are at their defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stored {
    pub attrs: Option<u32>,
    pub creation: Option<u64>,
    pub change: Option<ChangeOverride>,
    /// EaSize of the EAs the file has (`None`: it has none).
    pub ea_size: Option<u32>,
}

impl Stored {
    pub(crate) fn is_empty(&self) -> bool {
        self.attrs.is_none()
            && self.creation.is_none()
            && self.change.is_none()
            && self.ea_size.is_none()
    }

    pub(crate) fn encode(&self) -> ([u8; MAX_LEN], usize) {
        let mut out = [0u8; MAX_LEN];
        out[0] = VERSION;
        let mut n = 2;
        if let Some(a) = self.attrs {
            out[1] |= HAS_ATTRS;
            out[n..n + 4].copy_from_slice(&a.to_le_bytes());
            n += 4;
        }
        if let Some(c) = self.creation {
            out[1] |= HAS_CREATION;
            out[n..n + 8].copy_from_slice(&c.to_le_bytes());
            n += 8;
        }
        if let Some(c) = self.change {
            out[1] |= HAS_CHANGE;
            out[n..n + 8].copy_from_slice(&c.change.to_le_bytes());
            out[n + 8..n + 16].copy_from_slice(&c.mtime.to_le_bytes());
            n += 16;
        }
        if let Some(e) = self.ea_size {
            out[1] |= HAS_EA_SIZE;
            out[n..n + 4].copy_from_slice(&e.to_le_bytes());
            n += 4;
        }
        (out, n)
    }

    /// `None` for a value we do not understand.
    pub(crate) fn decode(v: &[u8]) -> Option<Stored> {
        let (&version, rest) = v.split_first()?;
        let (&flags, mut rest) = rest.split_first()?;
        if version != VERSION || flags & !(HAS_ATTRS | HAS_CREATION | HAS_CHANGE | HAS_EA_SIZE) != 0
        {
            return None;
        }
        let mut s = Stored::default();
        if flags & HAS_ATTRS != 0 {
            let (a, r) = rest.split_first_chunk::<4>()?;
            s.attrs = Some(u32::from_le_bytes(*a));
            rest = r;
        }
        if flags & HAS_CREATION != 0 {
            let (c, r) = rest.split_first_chunk::<8>()?;
            s.creation = Some(u64::from_le_bytes(*c));
            rest = r;
        }
        if flags & HAS_CHANGE != 0 {
            let (c, r) = rest.split_first_chunk::<8>()?;
            let (m, r) = r.split_first_chunk::<8>()?;
            s.change = Some(ChangeOverride {
                change: u64::from_le_bytes(*c),
                mtime: u64::from_le_bytes(*m),
            });
            rest = r;
        }
        if flags & HAS_EA_SIZE != 0 {
            let (e, r) = rest.split_first_chunk::<4>()?;
            s.ea_size = Some(u32::from_le_bytes(*e));
            rest = r;
        }
        rest.is_empty().then_some(s)
    }
}

/// The xattr of one object as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XattrState {
    Absent,
    Present(Stored),
    /// The filesystem has no user xattrs (or the share was opened so).
    Unsupported,
}

impl XattrState {
    pub(crate) fn stored(&self) -> Stored {
        match self {
            XattrState::Present(s) => *s,
            _ => Stored::default(),
        }
    }
}

fn interpret(r: SysResult<usize>, buf: &[u8]) -> SysResult<XattrState> {
    match r {
        Ok(n) => Ok(match buf.get(..n).and_then(Stored::decode) {
            Some(s) => XattrState::Present(s),
            None => XattrState::Absent,
        }),
        Err(Errno(libc::ENODATA)) => Ok(XattrState::Absent),
        // Bigger than anything we write: not ours to interpret.
        Err(Errno(libc::ERANGE)) => Ok(XattrState::Absent),
        Err(Errno(libc::EOPNOTSUPP)) => Ok(XattrState::Unsupported),
        Err(e) => Err(e),
    }
}

pub(crate) fn read_fd(fd: BorrowedFd<'_>) -> SysResult<XattrState> {
    let mut buf = [0u8; READ_BUF];
    let r = sys::fgetxattr(fd, XATTR_NAME, &mut buf);
    interpret(r, &buf)
}

/// The xattr of `name` in directory `dfd` without opening it, when the kernel has
/// getxattrat(2); `None` otherwise.
pub(crate) fn read_at(dfd: BorrowedFd<'_>, name: &CStr) -> Option<SysResult<XattrState>> {
    let mut buf = [0u8; READ_BUF];
    let r = sys::getxattrat(dfd, name, XATTR_NAME, &mut buf)?;
    Some(interpret(r, &buf))
}

pub(crate) fn read_path(path: &CStr) -> SysResult<XattrState> {
    let mut buf = [0u8; READ_BUF];
    let r = sys::lgetxattr(path, XATTR_NAME, &mut buf);
    interpret(r, &buf)
}

/// Writes (or removes, when empty) the xattr. `had` tells whether there is
/// one now, so an empty value costs no syscall when there was none.
/// `Ok(false)` when the filesystem has no user xattrs.
pub(crate) fn write_fd(fd: BorrowedFd<'_>, s: &Stored, had: bool) -> SysResult<bool> {
    let r = if s.is_empty() {
        if !had {
            return Ok(true);
        }
        match sys::fremovexattr(fd, XATTR_NAME) {
            Err(Errno(libc::ENODATA)) => Ok(()),
            other => other,
        }
    } else {
        let (buf, n) = s.encode();
        sys::fsetxattr(fd, XATTR_NAME, &buf[..n])
    };
    match r {
        Ok(()) => Ok(true),
        Err(Errno(libc::EOPNOTSUPP)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The stored attributes of a new or unmarked object.
pub(crate) fn default_attrs(is_dir: bool) -> u32 {
    if is_dir {
        0
    } else {
        dos::ARCHIVE
    }
}

/// Attributes as reported to clients.
pub(crate) fn report(stored: u32, is_dir: bool) -> u32 {
    let a = stored & (dos::STORED | dos::SPARSE_FILE);
    if is_dir {
        (a & !(dos::TEMPORARY | dos::SPARSE_FILE)) | dos::DIRECTORY
    } else if a == 0 {
        dos::NORMAL
    } else {
        a
    }
}

/// Attributes of an object on a filesystem without xattrs.
pub(crate) fn from_mode(mode: u32, is_dir: bool) -> u32 {
    if is_dir {
        dos::DIRECTORY
    } else if mode & 0o222 == 0 {
        dos::ARCHIVE | dos::READONLY
    } else {
        dos::ARCHIVE
    }
}

/// The current attributes of an object, as stored (not as reported: no
/// DIRECTORY or NORMAL added).
pub(crate) fn current(xs: &XattrState, mode: u32) -> u32 {
    let is_dir = mode & libc::S_IFMT == libc::S_IFDIR;
    match xs {
        XattrState::Unsupported => from_mode(mode, is_dir) & dos::STORED,
        XattrState::Present(Stored { attrs: Some(a), .. }) => *a,
        _ => default_attrs(is_dir),
    }
}

/// Creation time of an object: the stored one, else the filesystem's birth
/// time, else the earliest of mtime and ctime.
pub(crate) fn creation_time(stored: Option<u64>, st: &Stat) -> u64 {
    stored
        .or_else(|| st.btime.map(|(s, n)| nt_time::from_unix(s, n)))
        .unwrap_or_else(|| {
            nt_time::from_unix(st.mtime.0, st.mtime.1)
                .min(nt_time::from_unix(st.ctime.0, st.ctime.1))
        })
}

/// Change time of an object: the one a client set while mtime is still what
/// it was then, else ctime.
pub(crate) fn change_time(stored: Option<ChangeOverride>, st: &Stat) -> u64 {
    let mtime = nt_time::from_unix(st.mtime.0, st.mtime.1);
    match stored {
        Some(o) if o.mtime == mtime => o.change,
        _ => nt_time::from_unix(st.ctime.0, st.ctime.1),
    }
}

/// The creation time the filesystem reports by itself (`None` when it has
/// no birth time: then an explicit creation time must always be stored).
pub(crate) fn native_creation(st: &Stat) -> Option<u64> {
    st.btime.map(|(s, n)| nt_time::from_unix(s, n))
}

/// Bytes of data allocation. Directories report 0. `st_blocks` counts an
/// external xattr block too (ext4), which SMB clients must not see, so when
/// st_blocks is more than the size needs we ask FIEMAP for the data extents
/// alone (it also tells preallocation beyond EOF from an xattr block).
pub(crate) fn allocation(st: &Stat, fd: Option<BorrowedFd<'_>>) -> SysResult<u64> {
    if st.is_dir() {
        return Ok(0);
    }
    let raw = st.blocks.saturating_mul(512);
    if raw <= needed(st) {
        return Ok(raw);
    }
    match fd {
        Some(fd) => Ok(match sys::fiemap_data_bytes(fd)? {
            Some(data) => data.min(raw),
            None => raw,
        }),
        None => Ok(raw),
    }
}

/// Whether `allocation` needs a descriptor (for FIEMAP) for this object.
pub(crate) fn allocation_needs_fd(st: &Stat) -> bool {
    !st.is_dir() && st.blocks.saturating_mul(512) > needed(st)
}

/// What the size needs, rounded up to the block size.
fn needed(st: &Stat) -> u64 {
    let bs = u64::from(st.blksize.max(512));
    st.size.div_ceil(bs).saturating_mul(bs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_round_trips_every_shape() {
        for s in [
            Stored::default(),
            Stored {
                attrs: Some(0),
                ..Stored::default()
            },
            Stored {
                attrs: Some(dos::HIDDEN | dos::READONLY),
                ..Stored::default()
            },
            Stored {
                creation: Some(132_000_000_000_000_000),
                ..Stored::default()
            },
            Stored {
                attrs: Some(dos::SYSTEM),
                creation: Some(u64::MAX),
                ..Stored::default()
            },
            Stored {
                change: Some(ChangeOverride {
                    change: 7,
                    mtime: 9,
                }),
                ..Stored::default()
            },
            Stored {
                ea_size: Some(41),
                ..Stored::default()
            },
            Stored {
                attrs: Some(dos::HIDDEN),
                creation: Some(1),
                change: Some(ChangeOverride {
                    change: u64::MAX,
                    mtime: 3,
                }),
                ea_size: Some(u32::MAX),
            },
        ] {
            let (buf, n) = s.encode();
            assert!(n <= MAX_LEN);
            assert_eq!(Stored::decode(&buf[..n]), Some(s));
        }
    }

    #[test]
    fn codec_rejects_bad_values() {
        assert_eq!(Stored::decode(&[]), None);
        assert_eq!(Stored::decode(&[1]), None);
        assert_eq!(Stored::decode(&[2, 0]), None, "unknown version");
        assert_eq!(Stored::decode(&[1, 0x10]), None, "unknown flag");
        assert_eq!(
            Stored::decode(&[1, 0x04, 1, 2, 3, 4, 5, 6, 7, 8]),
            None,
            "change without mtime"
        );
        assert_eq!(Stored::decode(&[1, 0x08, 1, 2]), None, "short EA size");
        assert_eq!(Stored::decode(&[1, 0x01, 1, 2]), None, "short");
        assert_eq!(Stored::decode(&[1, 0x00, 9]), None, "trailing byte");
    }

    #[test]
    fn change_time_override_holds_while_mtime_is_unchanged() {
        let st = Stat {
            mtime: (1_700_000_000, 500),
            ctime: (1_700_000_100, 0),
            ..Stat::default()
        };
        let real = nt_time::from_unix(1_700_000_100, 0);
        let mtime = nt_time::from_unix(1_700_000_000, 500);
        assert_eq!(change_time(None, &st), real);
        let o = ChangeOverride { change: 42, mtime };
        assert_eq!(change_time(Some(o), &st), 42);
        // A write moved mtime: the real ctime shows again.
        let moved = Stat {
            mtime: (1_700_000_200, 0),
            ..st
        };
        assert_eq!(change_time(Some(o), &moved), real);
    }

    #[test]
    fn reported_attributes() {
        assert_eq!(report(0, false), dos::NORMAL);
        assert_eq!(report(dos::ARCHIVE, false), dos::ARCHIVE);
        assert_eq!(report(0, true), dos::DIRECTORY);
        assert_eq!(report(dos::HIDDEN, true), dos::HIDDEN | dos::DIRECTORY);
        assert_eq!(report(dos::NORMAL | dos::DIRECTORY, false), dos::NORMAL);
        assert_eq!(
            report(dos::SPARSE_FILE | dos::ARCHIVE, false),
            dos::SPARSE_FILE | dos::ARCHIVE
        );
        assert_eq!(report(dos::SPARSE_FILE, false), dos::SPARSE_FILE);
        assert_eq!(report(dos::SPARSE_FILE, true), dos::DIRECTORY);
        assert_eq!(from_mode(0o444, false), dos::ARCHIVE | dos::READONLY);
        assert_eq!(from_mode(0o644, false), dos::ARCHIVE);
        assert_eq!(from_mode(0o555, true), dos::DIRECTORY);
    }
}
