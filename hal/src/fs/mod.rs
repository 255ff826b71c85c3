//! The share filesystem: a directory tree served to SMB clients.
//!
//! Owns every filesystem system call duetd makes on share data: resolving
//! share-relative paths, opening and creating files and directories,
//! reading, writing, sizing, timestamps, listing, renaming, removing, and
//! the Windows metadata Linux lacks (DOS attributes, creation time: see
//! [`dos`] and the `attrs` notes below).
//!
//! Must never:
//! * open, create, rename or remove anything outside the share root. All
//!   resolution goes through openat2(2) `RESOLVE_BENEATH |
//!   RESOLVE_NO_MAGICLINKS` relative to an O_PATH descriptor of the root,
//!   or through an O_NOFOLLOW component walk where openat2 is missing
//!   ([`ResolveMode`]). Symlinks are followed only while they stay inside;
//!   one leading outside (relatively or through an absolute target) gives
//!   [`FsError::OutsideShare`];
//! * panic on any input or system call result: every errno is mapped to an
//!   [`FsError`];
//! * block on a FIFO or a kernel lease: opens use O_NONBLOCK|O_NOCTTY, and
//!   FIFOs, sockets and devices are refused ([`FsError::SpecialFile`]);
//! * know SMB: no NTSTATUS, access masks, share modes or oplocks here.
//!
//! # Paths
//! A path is a `&str` of components separated by single `/`, relative to
//! the share root; `""` is the root itself. The caller already rejected
//! `.`/`..` components and absolute names; this module rejects them again
//! ([`FsError::InvalidName`]), along with empty components (leading,
//! trailing or doubled `/`) and NUL bytes, so a malformed path never
//! reaches the kernel. Names are case-sensitive bytes.
//!
//! # Threads
//! [`ShareRoot`] and [`Handle`] are `Send + Sync` and every call is
//! synchronous: call them from worker threads. A `Handle` may be shared
//! between threads; read-modify-writes of the metadata xattr are serialised
//! per file by a small striped lock table in the share.
//!
//! # Windows metadata
//! DOS attributes, creation time, a change time a client set (reported
//! until the file's mtime moves: Linux cannot set ctime) and the EA size
//! are kept in one small xattr (`user.duet`, at most 34 bytes, written only
//! when they differ from the defaults, so an ext4 file keeps it in the
//! inode; see `attrs.rs`). Extended attributes are one xattr each,
//! `user.duet.ea.NAME` ([`Handle::eas`], [`Handle::set_eas`]); so are named
//! streams, `user.duet.stream.NAME` ([`ShareRoot::open_stream`]; a stream
//! handle reads, writes and sizes the stream and shares everything else
//! with its file, see `stream.rs`). Defaults: a file
//! reports ARCHIVE, a directory DIRECTORY; a file with no attribute set
//! reports NORMAL (the mapping is done here). Creation time is the stored
//! one, else the filesystem's birth time (statx), else the earliest of
//! mtime and ctime. On a filesystem without user xattrs (ENOTSUP) the share
//! keeps working: READONLY follows the mode's write bits, files report
//! ARCHIVE, other attributes and explicit creation times are not kept.
//!
//! SPARSE_FILE is one of the stored attributes, changed only by
//! [`Handle::set_sparse`]; what it governs is the SMB layer's choice
//! between [`Handle::zero_range`] deallocating or not, and whether it asks
//! [`Handle::allocated_ranges`] (SEEK_DATA / SEEK_HOLE) for the holes.
//!
//! The DOS READONLY attribute is enforced here, since the server runs as
//! root and mode bits would not stop it: opening an existing read-only file
//! for writing or overwriting it gives [`FsError::AccessDenied`]; so does
//! overwriting a HIDDEN or SYSTEM file without asking for those attributes
//! again (MS-FSA 2.1.5.1.2). Removing or renaming is not checked: that is
//! the SMB layer's delete-on-close decision.
//!
//! AllocationSize is the data's allocation only: an external xattr block
//! (which ext4 counts in st_blocks) is never included (see `attrs.rs`).
//! Directories report size 0 and allocation 0, as Windows does.

mod attrs;
mod dir;
mod ea;
mod error;
pub mod nt_time;
mod resolve;
mod sd;
mod stream;
mod sys;

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, MutexGuard};

use libc::c_int;

pub use attrs::dos;
pub use ea::{ea_size, Ea, EA_LIST_MAX, EA_NAME_MAX};
pub use error::FsError;
pub use resolve::ResolveMode;
pub use sd::SD_MAX;
pub use stream::{check_stream_name, StreamInfo, StreamOpen, STREAM_NAME_MAX, STREAM_SIZE_MAX};

use attrs::{Stored, XattrState};
use resolve::{cstring, Resolver};
use sys::{Basic, Errno, Stat};

/// Longest share-relative path accepted (PATH_MAX less the NUL).
const MAX_PATH: usize = 4095;
/// Longest component (NAME_MAX).
const MAX_NAME: usize = 255;
/// Retries of open-or-create loops that race with other creators/removers.
const CREATE_RETRIES: usize = 8;
/// Stripes of the per-file metadata lock table.
const LOCK_STRIPES: usize = 64;

/// What to do when the name exists or not (the SMB CreateDisposition).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Disposition {
    /// Open an existing object; [`FsError::NotFound`] if missing.
    #[default]
    Open,
    /// Create a new object; [`FsError::Exists`] if the name exists.
    Create,
    /// Open if it exists, else create.
    OpenIf,
    /// Open an existing file and truncate it; NotFound if missing.
    Overwrite,
    /// Overwrite if it exists, else create.
    OverwriteIf,
    /// Replace: like OverwriteIf, and the attributes are reset to the ones
    /// given (as for every overwrite here).
    Supersede,
}

impl Disposition {
    fn overwrites(self) -> bool {
        matches!(
            self,
            Disposition::Overwrite | Disposition::OverwriteIf | Disposition::Supersede
        )
    }
}

/// What kind of object the caller wants (FILE_DIRECTORY_FILE /
/// FILE_NON_DIRECTORY_FILE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Kind {
    /// Either; creating makes a file.
    #[default]
    Any,
    /// A directory; creating makes one; a file gives NotADirectory.
    Directory,
    /// Not a directory; a directory gives IsADirectory.
    NonDirectory,
}

/// How to open. `Default` is: read, no write, Open, Any, no attributes,
/// mode 0o644.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenOptions {
    /// Read data through the handle.
    pub read: bool,
    /// Write data through the handle (ignored for directories, which are
    /// always opened read-only: adding entries needs no write descriptor).
    pub write: bool,
    /// See [`Disposition`].
    pub disposition: Disposition,
    /// See [`Kind`].
    pub kind: Kind,
    /// DOS attributes for a created (or overwritten) object; NORMAL,
    /// DIRECTORY and unknown bits are ignored; files always get ARCHIVE.
    pub attributes_on_create: u32,
    /// Permission bits of a created object, applied exactly (the process
    /// umask does not reduce them; a setgid bit inherited by a new directory
    /// is kept).
    pub mode: u32,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            read: true,
            write: false,
            disposition: Disposition::Open,
            kind: Kind::Any,
            attributes_on_create: 0,
            mode: 0o644,
        }
    }
}

/// Metadata of a file or directory. Times are NT FILETIMEs (100 ns since
/// 1601-01-01 UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Inode number.
    pub ino: u64,
    /// Device of the filesystem holding it (st_dev).
    pub dev: u64,
    /// EndOfFile; 0 for directories.
    pub size: u64,
    /// AllocationSize: bytes of data allocated (xattr blocks excluded); 0
    /// for directories.
    pub allocation: u64,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Hard link count.
    pub nlink: u64,
    /// st_mode (type and permission bits).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Last access.
    pub access_time: u64,
    /// Last data write (mtime).
    pub write_time: u64,
    /// Last change: the time a client set while mtime has not moved since,
    /// else ctime (see `attrs.rs`).
    pub change_time: u64,
    /// Creation: stored, else birth time, else min(mtime, ctime).
    pub creation_time: u64,
    /// DOS attributes as a client sees them (DIRECTORY, NORMAL included).
    pub dos_attributes: u32,
    /// Size of the extended attributes ([`Handle::eas`]) as MS-FSA reports
    /// EaSize: the packed list length plus 4, 0 without EAs.
    pub ea_size: u32,
}

/// Times to set; `None` leaves one alone. NT FILETIMEs. The SMB meanings
/// of 0 and -1 in FileBasicInformation are the caller's to translate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetTimes {
    /// Stored in the metadata xattr (dropped where xattrs are unsupported).
    pub creation: Option<u64>,
    /// atime.
    pub access: Option<u64>,
    /// mtime.
    pub write: Option<u64>,
    /// Linux cannot set ctime: the time is stored in the metadata xattr and
    /// reported until the file's mtime moves (a data write), then ctime
    /// shows again (dropped where xattrs are unsupported).
    pub change: Option<u64>,
}

/// Space on the share's filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsStats {
    /// Size of the filesystem.
    pub total_bytes: u64,
    /// Free bytes (including those reserved for root).
    pub free_bytes: u64,
    /// Free bytes available to unprivileged users.
    pub avail_bytes: u64,
    /// Fundamental block size (f_frsize).
    pub block_size: u64,
    /// Filesystem id (f_fsid).
    pub fs_id: u64,
    /// Longest name the filesystem accepts.
    pub name_max: u64,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name (valid UTF-8).
    pub name: String,
    /// Its metadata (of the target, for a symlink that stays inside).
    pub meta: Meta,
}

/// A directory listing, and what was left out of it (so the caller can log
/// it; nothing is logged here). Order is the filesystem's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirListing {
    /// Every listed entry, without `.` and `..`.
    pub entries: Vec<DirEntry>,
    /// Names that are not valid UTF-8 (a client could not name them).
    pub skipped_non_utf8: usize,
    /// Entries removed while we listed.
    pub skipped_vanished: usize,
    /// Symlinks that dangle or lead outside the share.
    pub skipped_unreachable: usize,
    /// FIFOs, sockets and device nodes.
    pub skipped_special: usize,
    /// Entries whose metadata could not be read for another reason.
    pub skipped_errors: usize,
}

/// Directories with at least this many entries are listed by several threads.
const LIST_PARALLEL_MIN: usize = 2048;
const LIST_THREADS_MAX: usize = 4;

/// A share: a directory tree whose root is held open.
#[derive(Clone)]
pub struct ShareRoot {
    inner: Arc<Shared>,
}

struct Shared {
    resolver: Resolver,
    /// The filesystem has user xattrs.
    xattrs: bool,
    /// /proc/self/fd works (used to read xattrs of listed entries without
    /// opening them).
    proc_fd: bool,
    locks: [Mutex<()>; LOCK_STRIPES],
}

/// An open file or directory: an O_CLOEXEC descriptor (a real, not O_PATH,
/// one: files opened for the access asked, directories read-only).
pub struct Handle {
    fd: OwnedFd,
    share: Arc<Shared>,
    /// The share-relative path it was opened by (used to follow symlinks
    /// when listing; stale after a rename, which can only make a symlink
    /// look unreachable, never leave the share).
    path: Box<str>,
    is_dir: bool,
    /// Where an EA enumeration through this handle goes on ([`Handle::ea_cursor`]).
    ea_cursor: AtomicU32,
    /// The named stream this handle is open on (`stream.rs`); `None` for
    /// the file or directory itself.
    stream: Option<stream::StreamState>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("fd", &self.fd.as_raw_fd())
            .field("path", &self.path)
            .field("is_dir", &self.is_dir)
            .field("stream", &self.current_stream())
            .finish()
    }
}

impl std::fmt::Debug for ShareRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareRoot")
            .field("root_fd", &self.inner.resolver.root().as_raw_fd())
            .field("openat2", &self.inner.resolver.uses_openat2())
            .field("xattrs", &self.inner.xattrs)
            .finish()
    }
}

impl AsFd for Handle {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

// ------------------------------------------------------------------ paths

fn check_path(path: &str) -> Result<(), FsError> {
    if path.is_empty() {
        return Ok(());
    }
    if path.len() > MAX_PATH {
        return Err(FsError::NameTooLong);
    }
    for c in path.split('/') {
        match c {
            "" => return Err(FsError::InvalidName("empty component")),
            "." | ".." => return Err(FsError::InvalidName("dot component")),
            _ if c.len() > MAX_NAME => return Err(FsError::NameTooLong),
            _ if c.contains('\0') => return Err(FsError::InvalidName("NUL byte")),
            _ => {}
        }
    }
    Ok(())
}

/// (parent, last component); the parent of a single component is "".
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fn name_c(name: &str) -> Result<CString, FsError> {
    cstring(name).map_err(|_| FsError::InvalidName("NUL byte"))
}

fn parent_err(e: Errno) -> FsError {
    match e.0 {
        libc::ENOENT | libc::ENOTDIR => FsError::PathNotFound,
        _ => FsError::from_errno(e),
    }
}

fn access_flags(read: bool, write: bool) -> c_int {
    match (read, write) {
        (_, false) => libc::O_RDONLY,
        (true, true) => libc::O_RDWR,
        (false, true) => libc::O_WRONLY,
    }
}

const FILE_OPEN_FLAGS: c_int = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_LARGEFILE;
/// The largest single pwrite(2) `Handle::write_at` issues.
const WRITE_CHUNK: usize = 1 << 20;

const DIR_OPEN_FLAGS: c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NONBLOCK;

fn build_meta(st: &Stat, xs: &XattrState, allocation: u64) -> Meta {
    let is_dir = st.is_dir();
    let stored = xs.stored();
    let dos_attributes = match xs {
        XattrState::Unsupported => attrs::from_mode(st.mode, is_dir),
        _ => attrs::report(stored.attrs.unwrap_or(attrs::default_attrs(is_dir)), is_dir),
    };
    let ft = |t: (i64, u32)| nt_time::from_unix(t.0, t.1);
    Meta {
        ino: st.ino,
        dev: st.dev,
        size: if is_dir { 0 } else { st.size },
        allocation,
        is_dir,
        nlink: st.nlink,
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        access_time: ft(st.atime),
        write_time: ft(st.mtime),
        change_time: attrs::change_time(stored.change, st),
        creation_time: attrs::creation_time(stored.creation, st),
        dos_attributes,
        ea_size: stored.ea_size.unwrap_or(0),
    }
}

// ------------------------------------------------------------------ share

impl ShareRoot {
    /// Opens the share rooted at `path` (a directory; symlinks in `path`
    /// itself are followed: it is configuration, not client input).
    pub fn open(path: &Path) -> Result<ShareRoot, FsError> {
        ShareRoot::open_with(path, ResolveMode::Auto)
    }

    /// Like [`ShareRoot::open`], choosing how paths are resolved.
    pub fn open_with(path: &Path, mode: ResolveMode) -> Result<ShareRoot, FsError> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| FsError::InvalidName("NUL byte in the share path"))?;
        let root = sys::open_cwd(&c, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .map_err(FsError::from_errno)?;
        let xattrs = match sys::openat(root.as_fd(), c".", DIR_OPEN_FLAGS | libc::O_CLOEXEC, 0) {
            Ok(d) => !matches!(attrs::read_fd(d.as_fd()), Ok(XattrState::Unsupported)),
            Err(_) => true,
        };
        let proc_fd = probe_proc(root.as_fd());
        Ok(ShareRoot {
            inner: Arc::new(Shared {
                resolver: Resolver::new(root, mode),
                xattrs,
                proc_fd,
                locks: std::array::from_fn(|_| Mutex::new(())),
            }),
        })
    }

    /// Whether DOS attributes and creation times are stored (the share's
    /// filesystem has user xattrs).
    pub fn xattrs_supported(&self) -> bool {
        self.inner.xattrs
    }

    /// Whether paths are resolved with openat2 (false: the O_NOFOLLOW walk).
    pub fn uses_openat2(&self) -> bool {
        self.inner.resolver.uses_openat2()
    }

    /// Opens or creates `path`. Returns the handle and whether it was
    /// created. Errors: NotFound (last component missing), PathNotFound (a
    /// parent missing or not a directory), Exists, IsADirectory,
    /// NotADirectory, AccessDenied, OutsideShare, NameTooLong, NoSpace,
    /// SpecialFile, InvalidParameter (a directory with an overwriting
    /// disposition), Io(errno)...
    pub fn open_file(&self, path: &str, opts: &OpenOptions) -> Result<(Handle, bool), FsError> {
        check_path(path)?;
        let s = &self.inner;
        if opts.kind == Kind::Directory {
            return match opts.disposition {
                Disposition::Open => Ok((s.open_existing_dir(path)?, false)),
                Disposition::Create => Ok((s.create_dir(path, opts)?, true)),
                Disposition::OpenIf => {
                    for _ in 0..CREATE_RETRIES {
                        match s.open_existing_dir(path) {
                            Err(FsError::NotFound) => {}
                            other => return other.map(|h| (h, false)),
                        }
                        match s.create_dir(path, opts) {
                            Err(FsError::Exists) => {}
                            other => return other.map(|h| (h, true)),
                        }
                    }
                    Err(FsError::Busy)
                }
                _ => Err(FsError::InvalidParameter(
                    "a directory cannot be overwritten",
                )),
            };
        }
        let overwrite = opts
            .disposition
            .overwrites()
            .then_some(opts.attributes_on_create);
        match opts.disposition {
            Disposition::Open | Disposition::Overwrite => {
                Ok((s.open_existing(path, opts, overwrite)?, false))
            }
            Disposition::Create => Ok((s.create_file(path, opts)?, true)),
            Disposition::OpenIf | Disposition::OverwriteIf | Disposition::Supersede => {
                for _ in 0..CREATE_RETRIES {
                    match s.open_existing(path, opts, overwrite) {
                        Err(FsError::NotFound) => {}
                        other => return other.map(|h| (h, false)),
                    }
                    match s.create_file(path, opts) {
                        Err(FsError::Exists) => {}
                        other => return other.map(|h| (h, true)),
                    }
                }
                // Still neither openable nor creatable: a dangling symlink
                // (we do not create through one) or a fast-changing name.
                Err(FsError::NotFound)
            }
        }
    }

    /// Opens the existing file `path` again for access the server granted earlier (a
    /// durable handle restored after a restart or imported after a takeover): like
    /// `open_file` with `Disposition::Open`, except that the DOS READONLY attribute does not
    /// refuse write access (it was checked when the handle was granted, and a file created
    /// READONLY keeps its creator's write access).
    pub fn reopen_file(&self, path: &str, opts: &OpenOptions) -> Result<Handle, FsError> {
        check_path(path)?;
        if opts.kind == Kind::Directory {
            return self.inner.open_existing_dir(path);
        }
        self.inner.open_existing_checked(path, opts, None, false)
    }

    /// Metadata of `path` (symlinks inside the share followed).
    pub fn stat(&self, path: &str) -> Result<Meta, FsError> {
        check_path(path)?;
        let s = &self.inner;
        let fd = s
            .resolver
            .open(path, libc::O_RDONLY | FILE_OPEN_FLAGS, 0)
            .map_err(|e| s.diagnose(path, e))?;
        let st = sys::fstat(fd.as_fd())?;
        if !st.is_dir() && !st.is_reg() {
            return Err(FsError::SpecialFile);
        }
        s.meta_with(fd.as_fd(), &st)
    }

    /// Removes a non-directory (a symlink itself, not its target).
    pub fn unlink(&self, path: &str) -> Result<(), FsError> {
        self.remove(path, 0)
    }

    /// Removes an empty directory; NotEmpty otherwise.
    pub fn rmdir(&self, path: &str) -> Result<(), FsError> {
        self.remove(path, libc::AT_REMOVEDIR)
    }

    fn remove(&self, path: &str, flags: c_int) -> Result<(), FsError> {
        check_path(path)?;
        if path.is_empty() {
            return Err(FsError::InvalidParameter(
                "the share root cannot be removed",
            ));
        }
        let (parent, name) = split(path);
        let pfd = self.inner.open_parent(parent)?;
        sys::unlinkat(pfd.as_fd(), &name_c(name)?, flags).map_err(|e| match e.0 {
            libc::ENOTEMPTY | libc::EEXIST => FsError::NotEmpty,
            _ => FsError::from_errno(e),
        })
    }

    /// Renames `from` to `to`. Without `replace`, an existing `to` gives
    /// Exists (atomically, with renameat2 RENAME_NOREPLACE; on filesystems
    /// without it, by a check that can race). With `replace`, an existing
    /// `to` is replaced as rename(2) does (a directory only by a directory,
    /// and only when empty: NotEmpty).
    pub fn rename(&self, from: &str, to: &str, replace: bool) -> Result<(), FsError> {
        check_path(from)?;
        check_path(to)?;
        if from.is_empty() || to.is_empty() {
            return Err(FsError::InvalidParameter(
                "the share root cannot be renamed",
            ));
        }
        let s = &self.inner;
        let (fp, fname) = split(from);
        let (tp, tname) = split(to);
        let ffd = s.open_parent(fp)?;
        let tfd = s.open_parent(tp)?;
        let (fname, tname) = (name_c(fname)?, name_c(tname)?);
        let map = |e: Errno| match e.0 {
            libc::EEXIST if !replace => FsError::Exists,
            libc::EEXIST | libc::ENOTEMPTY => FsError::NotEmpty,
            libc::EXDEV => FsError::CrossDevice,
            libc::EINVAL => FsError::InvalidParameter("cannot move a directory into itself"),
            _ => FsError::from_errno(e),
        };
        if replace {
            return sys::renameat(ffd.as_fd(), &fname, tfd.as_fd(), &tname).map_err(map);
        }
        match sys::renameat2(
            ffd.as_fd(),
            &fname,
            tfd.as_fd(),
            &tname,
            sys::RENAME_NOREPLACE,
        ) {
            Err(Errno(libc::EINVAL | libc::ENOSYS)) => {
                // No RENAME_NOREPLACE here (or a real EINVAL, which the
                // plain rename repeats). Check, then rename.
                match sys::statx(tfd.as_fd(), &tname, libc::AT_SYMLINK_NOFOLLOW) {
                    Ok(_) => Err(FsError::Exists),
                    Err(Errno(libc::ENOENT)) => {
                        sys::renameat(ffd.as_fd(), &fname, tfd.as_fd(), &tname).map_err(map)
                    }
                    Err(e) => Err(FsError::from_errno(e)),
                }
            }
            other => other.map_err(map),
        }
    }

    /// Space on the share's filesystem.
    pub fn statvfs(&self) -> Result<FsStats, FsError> {
        let v = sys::fstatvfs(self.inner.resolver.root())?;
        Ok(FsStats {
            total_bytes: v.blocks.saturating_mul(v.block_size),
            free_bytes: v.blocks_free.saturating_mul(v.block_size),
            avail_bytes: v.blocks_avail.saturating_mul(v.block_size),
            block_size: v.block_size,
            fs_id: v.fsid,
            name_max: v.name_max,
        })
    }
}

/// Whether /proc/self/fd/N leads to the same directory as descriptor N.
fn probe_proc(root: BorrowedFd<'_>) -> bool {
    let Ok(me) = sys::fstat(root) else {
        return false;
    };
    let Ok(p) = CString::new(format!("/proc/self/fd/{}", root.as_raw_fd())) else {
        return false;
    };
    // An absolute path: the descriptor argument is ignored.
    match sys::statx(root, &p, 0) {
        Ok(st) => st.ino == me.ino && st.dev == me.dev,
        Err(_) => false,
    }
}

impl Shared {
    fn handle(self: &Arc<Self>, fd: OwnedFd, path: &str, is_dir: bool) -> Handle {
        Handle {
            fd,
            share: Arc::clone(self),
            path: path.into(),
            is_dir,
            ea_cursor: AtomicU32::new(0),
            stream: None,
        }
    }

    fn lock(&self, b: &Basic) -> MutexGuard<'_, ()> {
        let i = ((b.ino ^ b.dev.rotate_left(17)) % LOCK_STRIPES as u64) as usize;
        // A poisoned stripe only means another thread panicked while holding
        // it; the xattr itself is still consistent (one syscall writes it).
        self.locks[i % LOCK_STRIPES]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn open_parent(&self, parent: &str) -> Result<OwnedFd, FsError> {
        self.resolver
            .open(parent, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(parent_err)
    }

    /// Maps an open error of `path`, telling a missing last component
    /// (NotFound / NotADirectory) from a missing parent (PathNotFound).
    fn diagnose(&self, path: &str, e: Errno) -> FsError {
        match e.0 {
            libc::ENOENT | libc::ENOTDIR if !path.is_empty() => {
                match self
                    .resolver
                    .open(split(path).0, libc::O_PATH | libc::O_DIRECTORY, 0)
                {
                    Ok(_) if e.0 == libc::ENOENT => FsError::NotFound,
                    Ok(_) => FsError::NotADirectory,
                    Err(pe) => parent_err(pe),
                }
            }
            _ => FsError::from_errno(e),
        }
    }

    fn read_xattr(&self, fd: BorrowedFd<'_>) -> Result<XattrState, FsError> {
        if !self.xattrs {
            return Ok(XattrState::Unsupported);
        }
        Ok(attrs::read_fd(fd)?)
    }

    fn meta_with(&self, fd: BorrowedFd<'_>, st: &Stat) -> Result<Meta, FsError> {
        let xs = self.read_xattr(fd)?;
        let alloc = attrs::allocation(st, Some(fd))?;
        Ok(build_meta(st, &xs, alloc))
    }

    /// Read-modify-write of the metadata xattr. `Ok(false)` when the
    /// filesystem has no user xattrs (nothing was stored).
    fn update_stored(
        &self,
        fd: BorrowedFd<'_>,
        b: &Basic,
        f: impl FnOnce(&mut Stored),
    ) -> Result<bool, FsError> {
        if !self.xattrs {
            return Ok(false);
        }
        let _g = self.lock(b);
        self.update_stored_locked(fd, b, f)
    }

    /// [`Shared::update_stored`] for a caller that holds the stripe lock.
    fn update_stored_locked(
        &self,
        fd: BorrowedFd<'_>,
        b: &Basic,
        f: impl FnOnce(&mut Stored),
    ) -> Result<bool, FsError> {
        let xs = attrs::read_fd(fd)?;
        if xs == XattrState::Unsupported {
            return Ok(false);
        }
        let old = xs.stored();
        let mut new = old;
        f(&mut new);
        if new.attrs == Some(attrs::default_attrs(b.is_dir())) {
            new.attrs = None;
        }
        let had = matches!(xs, XattrState::Present(_));
        if had && new == old {
            return Ok(true);
        }
        Ok(attrs::write_fd(fd, &new, had)?)
    }

    /// READONLY without xattrs: the write bits.
    fn readonly_by_mode(
        &self,
        fd: BorrowedFd<'_>,
        b: &Basic,
        readonly: bool,
    ) -> Result<(), FsError> {
        if b.is_dir() {
            return Ok(());
        }
        let perm = b.mode & 0o7777;
        if readonly && perm & 0o222 != 0 {
            sys::fchmod(fd, perm & !0o222)?;
        } else if !readonly && perm & 0o222 == 0 {
            sys::fchmod(fd, perm | 0o200)?;
        }
        Ok(())
    }

    fn set_attrs(&self, fd: BorrowedFd<'_>, b: &Basic, new: u32) -> Result<(), FsError> {
        if !self.update_stored(fd, b, |s| s.attrs = Some(new))? {
            self.readonly_by_mode(fd, b, new & dos::READONLY != 0)?;
        }
        Ok(())
    }

    fn open_existing_dir(self: &Arc<Self>, path: &str) -> Result<Handle, FsError> {
        let fd = self
            .resolver
            .open(path, DIR_OPEN_FLAGS, 0)
            .map_err(|e| self.diagnose(path, e))?;
        Ok(self.handle(fd, path, true))
    }

    fn create_dir(self: &Arc<Self>, path: &str, opts: &OpenOptions) -> Result<Handle, FsError> {
        if path.is_empty() {
            return Err(FsError::Exists);
        }
        let (parent, name) = split(path);
        let pfd = self.open_parent(parent)?;
        let cname = name_c(name)?;
        sys::mkdirat(pfd.as_fd(), &cname, opts.mode).map_err(|e| match e.0 {
            libc::ENOENT => FsError::PathNotFound,
            _ => FsError::from_errno(e),
        })?;
        // One component, relative to the parent we hold, never followed:
        // plain openat is confined here.
        let opened = sys::openat(
            pfd.as_fd(),
            &cname,
            DIR_OPEN_FLAGS | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        );
        let fd = match opened {
            Ok(fd) => fd,
            Err(e) => return Err(FsError::from_errno(e)),
        };
        if let Err(e) = self.post_create(fd.as_fd(), true, opts) {
            let _ = sys::unlinkat(pfd.as_fd(), &cname, libc::AT_REMOVEDIR);
            return Err(e);
        }
        Ok(self.handle(fd, path, true))
    }

    fn create_file(self: &Arc<Self>, path: &str, opts: &OpenOptions) -> Result<Handle, FsError> {
        if path.is_empty() {
            return Err(FsError::Exists);
        }
        let flags =
            access_flags(opts.read, opts.write) | libc::O_CREAT | libc::O_EXCL | FILE_OPEN_FLAGS;
        let fd = self
            .resolver
            .open(path, flags, opts.mode)
            .map_err(|e| self.diagnose(path, e))?;
        if let Err(e) = self.post_create(fd.as_fd(), false, opts) {
            let (parent, name) = split(path);
            if let (Ok(pfd), Ok(c)) = (self.open_parent(parent), name_c(name)) {
                let _ = sys::unlinkat(pfd.as_fd(), &c, 0);
            }
            return Err(e);
        }
        Ok(self.handle(fd, path, false))
    }

    /// Exact mode and initial attributes of a new object.
    fn post_create(
        &self,
        fd: BorrowedFd<'_>,
        is_dir: bool,
        opts: &OpenOptions,
    ) -> Result<(), FsError> {
        let mut b = sys::fstat_basic(fd)?;
        let inherited = if is_dir { b.mode & libc::S_ISGID } else { 0 };
        let want = (opts.mode & 0o7777) | inherited;
        if b.mode & 0o7777 != want {
            sys::fchmod(fd, want)?;
            b.mode = (b.mode & libc::S_IFMT) | want;
        }
        let stored = if is_dir {
            opts.attributes_on_create & dos::STORED & !dos::TEMPORARY
        } else {
            (opts.attributes_on_create & dos::STORED) | dos::ARCHIVE
        };
        if stored != attrs::default_attrs(is_dir) {
            self.set_attrs(fd, &b, stored)?;
        }
        Ok(())
    }

    fn open_existing(
        self: &Arc<Self>,
        path: &str,
        opts: &OpenOptions,
        overwrite: Option<u32>,
    ) -> Result<Handle, FsError> {
        self.open_existing_checked(path, opts, overwrite, true)
    }

    fn open_existing_checked(
        self: &Arc<Self>,
        path: &str,
        opts: &OpenOptions,
        overwrite: Option<u32>,
        check_readonly: bool,
    ) -> Result<Handle, FsError> {
        let flags = access_flags(opts.read, opts.write || overwrite.is_some()) | FILE_OPEN_FLAGS;
        let fd = match self.resolver.open(path, flags, 0) {
            Ok(fd) => fd,
            Err(Errno(libc::EISDIR)) => {
                if opts.kind == Kind::NonDirectory || overwrite.is_some() {
                    return Err(FsError::IsADirectory);
                }
                return self.open_existing_dir(path);
            }
            Err(e) => return Err(self.diagnose(path, e)),
        };
        let b = sys::fstat_basic(fd.as_fd())?;
        match b.mode & libc::S_IFMT {
            libc::S_IFDIR => {
                if opts.kind == Kind::NonDirectory || overwrite.is_some() {
                    return Err(FsError::IsADirectory);
                }
                return Ok(self.handle(fd, path, true));
            }
            libc::S_IFREG => {}
            _ => return Err(FsError::SpecialFile),
        }
        if opts.write || overwrite.is_some() {
            let xs = self.read_xattr(fd.as_fd())?;
            let cur = attrs::current(&xs, b.mode);
            if check_readonly && cur & dos::READONLY != 0 {
                return Err(FsError::AccessDenied);
            }
            if let Some(asked) = overwrite {
                if cur & (dos::HIDDEN | dos::SYSTEM) & !asked != 0 {
                    return Err(FsError::AccessDenied);
                }
                sys::ftruncate(fd.as_fd(), 0)?;
                self.set_attrs(fd.as_fd(), &b, (asked & dos::STORED) | dos::ARCHIVE)?;
            }
        }
        Ok(self.handle(fd, path, false))
    }
}

// ------------------------------------------------------------------ handle

impl Handle {
    /// Whether this is a directory handle (a handle of a directory's named
    /// stream is not).
    pub fn is_dir(&self) -> bool {
        self.is_dir && !self.is_stream()
    }

    fn file_only(&self) -> Result<(), FsError> {
        if self.is_dir() {
            Err(FsError::IsADirectory)
        } else {
            Ok(())
        }
    }

    /// Reads at `offset` until `buf` is full or end of file; returns the
    /// bytes read (short only at EOF).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, FsError> {
        self.file_only()?;
        if let Some(name) = self.current_stream() {
            return self.stream_read_at(&name, buf, offset);
        }
        let mut done = 0;
        while let Some(rest) = buf.get_mut(done..).filter(|r| !r.is_empty()) {
            let at = offset
                .checked_add(done as u64)
                .ok_or(FsError::FileTooLarge)?;
            match sys::pread(self.fd.as_fd(), rest, at) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(Errno(libc::EBADF)) => return Err(FsError::AccessDenied),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(done)
    }

    /// Writes all of `buf` at `offset`; returns `buf.len()`.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<usize, FsError> {
        self.file_only()?;
        if self.is_stream() {
            return self.stream_write_at(buf, offset);
        }
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or(FsError::FileTooLarge)?;
        sys::off(end).map_err(|_| FsError::FileTooLarge)?;
        let mut done = 0;
        while let Some(rest) = buf.get(done..).filter(|r| !r.is_empty()) {
            // At most 1 MiB per pwrite: measured on this kind of machine, single writes of
            // several MiB into the page cache ran up to 7x slower than 1 MiB ones.
            let rest = &rest[..rest.len().min(WRITE_CHUNK)];
            match sys::pwrite(self.fd.as_fd(), rest, offset + done as u64) {
                Ok(0) => return Err(FsError::Io(libc::EIO)),
                Ok(n) => done += n,
                Err(Errno(libc::EBADF)) => return Err(FsError::AccessDenied),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(done)
    }

    /// Sets the end of file (truncates or extends with zeros).
    pub fn set_len(&self, len: u64) -> Result<(), FsError> {
        self.file_only()?;
        if self.is_stream() {
            return self.stream_set_len(len);
        }
        sys::ftruncate(self.fd.as_fd(), len).map_err(write_err)
    }

    /// SMB AllocationSize (MS-FSA 2.1.5.15.1): below the end of file, the
    /// file is truncated to `len`; above the current allocation, space is
    /// reserved with fallocate(FALLOC_FL_KEEP_SIZE) (the size is kept; on
    /// filesystems without fallocate this is a no-op); between the two,
    /// preallocation beyond `len` is released.
    pub fn allocate(&self, len: u64) -> Result<(), FsError> {
        self.file_only()?;
        if self.is_stream() {
            return self.stream_allocate(len);
        }
        let fd = self.fd.as_fd();
        let st = sys::fstat(fd)?;
        if len < st.size {
            return sys::ftruncate(fd, len).map_err(write_err);
        }
        let cur = attrs::allocation(&st, Some(fd))?;
        let reserve = |len: u64| match sys::fallocate(fd, sys::FALLOC_FL_KEEP_SIZE, 0, len) {
            Err(Errno(libc::EOPNOTSUPP | libc::ENOSYS)) => Ok(()),
            other => other.map_err(write_err),
        };
        if len > cur {
            return reserve(len);
        }
        if len < cur {
            // Truncating to the current size drops blocks beyond EOF; then
            // reserve again up to `len`.
            sys::ftruncate(fd, st.size).map_err(write_err)?;
            if len > st.size {
                reserve(len)?;
            }
        }
        Ok(())
    }

    /// Flushes data and metadata to stable storage (fsync).
    pub fn sync(&self) -> Result<(), FsError> {
        Ok(sys::fsync(self.fd.as_fd())?)
    }

    /// Current metadata.
    pub fn meta(&self) -> Result<Meta, FsError> {
        let st = sys::fstat(self.fd.as_fd())?;
        let m = self.share.meta_with(self.fd.as_fd(), &st)?;
        match self.current_stream() {
            Some(name) => self.stream_meta(&name, m),
            None => Ok(m),
        }
    }

    /// Sets the times given. Access and write times go to the inode
    /// (futimens, first); the creation time to the metadata xattr (removed
    /// again when it equals the filesystem's birth time); the change time
    /// to the metadata xattr with the mtime the file has after the write
    /// time was set, reported until mtime moves (see `attrs.rs`). A stored
    /// change time that no longer holds is dropped on the way.
    pub fn set_times(&self, t: &SetTimes) -> Result<(), FsError> {
        let fd = self.fd.as_fd();
        if t.access.is_some() || t.write.is_some() {
            sys::futimens(
                fd,
                t.access.map(nt_time::to_unix),
                t.write.map(nt_time::to_unix),
            )?;
        }
        if t.creation.is_some() || t.change.is_some() {
            let st = sys::fstat(fd)?;
            let b = Basic {
                mode: st.mode,
                ino: st.ino,
                dev: st.dev,
            };
            let native = attrs::native_creation(&st);
            let mtime = nt_time::from_unix(st.mtime.0, st.mtime.1);
            self.share.update_stored(fd, &b, |s| {
                if let Some(c) = t.creation {
                    s.creation = if native == Some(c) { None } else { Some(c) };
                }
                if let Some(change) = t.change {
                    s.change = Some(attrs::ChangeOverride { change, mtime });
                } else if s.change.is_some_and(|o| o.mtime != mtime) {
                    s.change = None;
                }
            })?;
        }
        Ok(())
    }

    /// Sets the DOS attributes (exactly: 0 or NORMAL clears them all; the
    /// "0 means unchanged" rule of SMB is the caller's). DIRECTORY on a
    /// file, or TEMPORARY on a directory, is InvalidParameter; DIRECTORY on
    /// a directory and bits we do not store are ignored. SPARSE_FILE is
    /// neither set nor cleared here: it keeps its state (see
    /// [`Handle::set_sparse`]).
    pub fn set_dos_attributes(&self, attrs_in: u32) -> Result<(), FsError> {
        if !self.is_dir && attrs_in & dos::DIRECTORY != 0 {
            return Err(FsError::InvalidParameter("DIRECTORY attribute on a file"));
        }
        if self.is_dir && attrs_in & dos::TEMPORARY != 0 {
            return Err(FsError::InvalidParameter(
                "TEMPORARY attribute on a directory",
            ));
        }
        let fd = self.fd.as_fd();
        let b = sys::fstat_basic(fd)?;
        let new = attrs_in & dos::STORED;
        let stored = self.share.update_stored(fd, &b, |s| {
            let sparse = s.attrs.unwrap_or(attrs::default_attrs(b.is_dir())) & dos::SPARSE_FILE;
            s.attrs = Some(new | sparse);
        })?;
        if !stored {
            self.share
                .readonly_by_mode(fd, &b, new & dos::READONLY != 0)?;
        }
        Ok(())
    }

    /// Sets or clears FILE_ATTRIBUTE_SPARSE_FILE. Only the flag changes;
    /// the data and its allocation stay as they are (what is sparse is what
    /// [`Handle::zero_range`] deallocates and [`Handle::allocated_ranges`]
    /// reports). Directories: InvalidParameter. Without user xattrs the flag
    /// cannot be kept: `Io(EOPNOTSUPP)`.
    pub fn set_sparse(&self, sparse: bool) -> Result<(), FsError> {
        if self.is_dir {
            return Err(FsError::InvalidParameter("sparse flag on a directory"));
        }
        let fd = self.fd.as_fd();
        let b = sys::fstat_basic(fd)?;
        let stored = self.share.update_stored(fd, &b, |s| {
            let cur = s.attrs.unwrap_or(attrs::default_attrs(false));
            s.attrs = Some(if sparse {
                cur | dos::SPARSE_FILE
            } else {
                cur & !dos::SPARSE_FILE
            });
        })?;
        if stored {
            Ok(())
        } else {
            Err(FsError::Io(libc::EOPNOTSUPP))
        }
    }

    /// Zeroes `len` bytes from `offset`, clipped to the end of file (the
    /// size never changes). With `deallocate` the range is punched out
    /// (fallocate PUNCH_HOLE|KEEP_SIZE: whole blocks are freed, partial ones
    /// zeroed; a range reaching the end of file takes the last block with
    /// it); without, it is zeroed and stays allocated (ZERO_RANGE). Where
    /// the filesystem has neither, zeros are written.
    pub fn zero_range(&self, offset: u64, len: u64, deallocate: bool) -> Result<(), FsError> {
        self.file_only()?;
        if self.is_stream() {
            return self.stream_zero_range(offset, len);
        }
        let fd = self.fd.as_fd();
        let st = sys::fstat(fd)?;
        let end = offset.saturating_add(len).min(st.size);
        if offset >= end {
            return Ok(());
        }
        let n = end - offset;
        // Up to the end of file: the rest of the last block is beyond EOF,
        // so the whole block can go.
        let bs = u64::from(st.blksize.max(512));
        let punch_n = if end == st.size {
            end.div_ceil(bs).saturating_mul(bs) - offset
        } else {
            n
        };
        let keep = sys::FALLOC_FL_KEEP_SIZE;
        let punch = [
            (sys::FALLOC_FL_PUNCH_HOLE | keep, punch_n),
            (sys::FALLOC_FL_ZERO_RANGE | keep, n),
        ];
        let modes: &[(c_int, u64)] = if deallocate { &punch } else { &punch[1..] };
        for &(mode, n) in modes {
            match sys::fallocate(fd, mode, offset, n) {
                Ok(()) => return Ok(()),
                Err(Errno(libc::EOPNOTSUPP | libc::ENOSYS)) => {}
                Err(e) => return Err(write_err(e)),
            }
        }
        let zeros = vec![0u8; (n as usize).min(64 * 1024)];
        let mut at = offset;
        while at < end {
            let k = ((end - at) as usize).min(zeros.len());
            self.write_at(zeros.get(..k).unwrap_or(&zeros), at)?;
            at += k as u64;
        }
        Ok(())
    }

    /// The data (allocated) ranges of the file within `len` bytes from
    /// `offset` and the end of file, as (offset, length) pairs in order,
    /// found with SEEK_DATA / SEEK_HOLE and clipped to the range asked.
    /// Granularity is the filesystem's (a block, usually). At most `max`
    /// ranges; the flag tells whether more were left out. On a filesystem
    /// that cannot tell holes, everything is data.
    pub fn allocated_ranges(
        &self,
        offset: u64,
        len: u64,
        max: usize,
    ) -> Result<(Vec<(u64, u64)>, bool), FsError> {
        self.file_only()?;
        let fd = self.fd.as_fd();
        let size = match self.current_stream() {
            Some(name) => {
                // A stream is all data.
                let end = offset.saturating_add(len).min(self.stream_len(&name)?);
                let r = (offset < end && max > 0).then_some((offset, end - offset));
                return Ok((r.into_iter().collect(), offset < end && max == 0));
            }
            None => sys::fstat(fd)?.size,
        };
        let end = offset.saturating_add(len).min(size);
        let mut out = Vec::new();
        let mut pos = offset;
        while pos < end {
            let data = match sys::lseek(fd, pos, libc::SEEK_DATA) {
                Ok(d) => d,
                // No data after pos (or the file shrank under us).
                Err(Errno(libc::ENXIO)) => break,
                Err(Errno(libc::EINVAL)) => pos,
                Err(e) => return Err(e.into()),
            };
            if data >= end {
                break;
            }
            let hole = match sys::lseek(fd, data, libc::SEEK_HOLE) {
                Ok(h) => h,
                Err(Errno(libc::ENXIO | libc::EINVAL)) => end,
                Err(e) => return Err(e.into()),
            };
            let stop = hole.min(end);
            if stop <= data {
                break;
            }
            if out.len() == max {
                return Ok((out, true));
            }
            out.push((data, stop - data));
            pos = stop;
        }
        Ok((out, false))
    }

    /// Lists a directory handle: every entry but `.` and `..`, with its
    /// metadata (a symlink is followed when it stays inside the share).
    /// Entries that cannot be listed are counted, not fatal (see
    /// [`DirListing`]).
    pub fn read_dir(&self) -> Result<DirListing, FsError> {
        if !self.is_dir() {
            return Err(FsError::NotADirectory);
        }
        // A fresh open file description, so that concurrent listings of
        // one handle do not share a directory offset.
        let dfd = sys::openat(self.fd.as_fd(), c".", DIR_OPEN_FLAGS | libc::O_CLOEXEC, 0)?;
        let mut out = DirListing::default();
        let mut names = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = sys::getdents64(dfd.as_fd(), &mut buf)?;
            if n == 0 {
                break;
            }
            let filled = buf.get(..n).ok_or(FsError::Io(libc::EIO))?;
            for rec in dir::Records::new(filled) {
                let rec = rec?;
                if rec.name == b"." || rec.name == b".." {
                    continue;
                }
                match std::str::from_utf8(rec.name) {
                    Ok(name) => names.push(name.to_owned()),
                    Err(_) => out.skipped_non_utf8 += 1,
                }
            }
        }
        // The metadata of each entry costs two lookups in the kernel (statx and the
        // attributes xattr): a large directory is read by several threads, in order.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(LIST_THREADS_MAX);
        let metas: Vec<Result<Meta, Skip>> = if threads > 1 && names.len() >= LIST_PARALLEL_MIN {
            let chunk = names.len().div_ceil(threads);
            let dfd = dfd.as_fd();
            std::thread::scope(|s| {
                let parts: Vec<_> = names
                    .chunks(chunk)
                    .map(|part| {
                        let h = s.spawn(move || {
                            part.iter()
                                .map(|n| self.entry_meta(dfd, n))
                                .collect::<Vec<_>>()
                        });
                        (part.len(), h)
                    })
                    .collect();
                parts
                    .into_iter()
                    .flat_map(|(len, h)| {
                        h.join()
                            .unwrap_or_else(|_| (0..len).map(|_| Err(Skip::Error)).collect())
                    })
                    .collect()
            })
        } else {
            names
                .iter()
                .map(|n| self.entry_meta(dfd.as_fd(), n))
                .collect()
        };
        for (name, meta) in names.into_iter().zip(metas) {
            match meta {
                Ok(meta) => out.entries.push(DirEntry { name, meta }),
                Err(Skip::Vanished) => out.skipped_vanished += 1,
                Err(Skip::Unreachable) => out.skipped_unreachable += 1,
                Err(Skip::Special) => out.skipped_special += 1,
                Err(Skip::Error) => out.skipped_errors += 1,
            }
        }
        Ok(out)
    }

    fn entry_meta(&self, dfd: BorrowedFd<'_>, name: &str) -> Result<Meta, Skip> {
        let s = &self.share;
        let cname = CString::new(name).map_err(|_| Skip::Error)?;
        let st = match sys::statx(dfd, &cname, libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno(libc::ENOENT)) => return Err(Skip::Vanished),
            Err(_) => return Err(Skip::Error),
        };
        if st.is_symlink() {
            let target = join(&self.path, name);
            let fd = match s
                .resolver
                .open(&target, libc::O_RDONLY | FILE_OPEN_FLAGS, 0)
            {
                Ok(fd) => fd,
                Err(Errno(libc::ENOENT | libc::EXDEV | libc::ELOOP | libc::ENOTDIR)) => {
                    return Err(Skip::Unreachable)
                }
                Err(Errno(libc::ENXIO | libc::ENODEV)) => return Err(Skip::Special),
                Err(_) => return Err(Skip::Error),
            };
            let st = sys::fstat(fd.as_fd()).map_err(|_| Skip::Error)?;
            if !st.is_dir() && !st.is_reg() {
                return Err(Skip::Special);
            }
            return s.meta_with(fd.as_fd(), &st).map_err(|_| Skip::Error);
        }
        if !st.is_dir() && !st.is_reg() {
            return Err(Skip::Special);
        }
        if s.xattrs && !attrs::allocation_needs_fd(&st) {
            // Fastest path: no open, no path through /proc (getxattrat, Linux
            // 6.13; half the cost of the /proc path below).
            if let Some(r) = attrs::read_at(dfd, &cname) {
                let xs = match r {
                    Ok(xs) => xs,
                    Err(Errno(libc::ENOENT)) => return Err(Skip::Vanished),
                    Err(_) => return Err(Skip::Error),
                };
                let alloc = attrs::allocation(&st, None).map_err(|_| Skip::Error)?;
                return Ok(build_meta(&st, &xs, alloc));
            }
        }
        if s.xattrs && s.proc_fd && !attrs::allocation_needs_fd(&st) {
            // Fast path: no open. The xattr is read through /proc/self/fd
            // of the directory descriptor we hold, with the last component
            // not followed.
            let mut p = format!("/proc/self/fd/{}/", dfd.as_raw_fd()).into_bytes();
            p.extend_from_slice(name.as_bytes());
            let p = CString::new(p).map_err(|_| Skip::Error)?;
            let xs = match attrs::read_path(&p) {
                Ok(xs) => xs,
                Err(Errno(libc::ENOENT)) => return Err(Skip::Vanished),
                Err(_) => return Err(Skip::Error),
            };
            let alloc = attrs::allocation(&st, None).map_err(|_| Skip::Error)?;
            return Ok(build_meta(&st, &xs, alloc));
        }
        let fd = match sys::openat(
            dfd,
            &cname,
            libc::O_RDONLY | FILE_OPEN_FLAGS | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        ) {
            Ok(fd) => fd,
            Err(Errno(libc::ENOENT)) => return Err(Skip::Vanished),
            Err(_) => return Err(Skip::Error),
        };
        let st = sys::fstat(fd.as_fd()).map_err(|_| Skip::Error)?;
        s.meta_with(fd.as_fd(), &st).map_err(|_| Skip::Error)
    }
}

/// Why one listing entry was left out.
enum Skip {
    Vanished,
    Unreachable,
    Special,
    Error,
}

/// Errors of calls that need a descriptor open for writing. ftruncate
/// answers EINVAL (fallocate EBADF) on a descriptor not open for writing;
/// lengths were range-checked before the call.
fn write_err(e: Errno) -> FsError {
    match e.0 {
        libc::EBADF | libc::EINVAL => FsError::AccessDenied,
        _ => FsError::from_errno(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_checks() {
        assert_eq!(check_path(""), Ok(()));
        assert_eq!(check_path("a/b c/d.txt"), Ok(()));
        for bad in ["/a", "a/", "a//b", ".", "a/./b", "..", "a/..", "a\0b"] {
            assert!(
                matches!(check_path(bad), Err(FsError::InvalidName(_))),
                "{bad:?}"
            );
        }
        assert_eq!(check_path(&"x".repeat(256)), Err(FsError::NameTooLong));
        assert_eq!(check_path(&"x".repeat(255)), Ok(()));
        let long = vec!["y".repeat(200); 25].join("/");
        assert_eq!(check_path(&long), Err(FsError::NameTooLong));
    }

    #[test]
    fn split_and_join() {
        assert_eq!(split("a"), ("", "a"));
        assert_eq!(split("a/b/c"), ("a/b", "c"));
        assert_eq!(join("", "x"), "x");
        assert_eq!(join("a/b", "x"), "a/b/x");
    }

    #[test]
    fn types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<ShareRoot>();
        check::<Handle>();
        check::<FsError>();
    }
}
