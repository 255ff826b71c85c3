//! Thin wrappers around the system calls `duet_hal::fs` uses.
//!
//! Every function returns `Err(Errno)` instead of setting errno, retries
//! `EINTR`, and never panics. Calls that some libcs lack or name differently
//! (openat2, statx, renameat2, getdents64) go through `libc::syscall` so that
//! glibc and musl builds behave alike. Nothing here knows about shares: path
//! confinement is `resolve.rs`'s job.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use libc::{c_int, c_long, c_uint};

/// A raw errno value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Errno(pub(crate) i32);

pub(crate) type SysResult<T> = Result<T, Errno>;

/// The calling thread's errno, as left by the last failed call.
pub(crate) fn errno() -> Errno {
    Errno(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

fn retry_int(mut f: impl FnMut() -> c_int) -> SysResult<c_int> {
    loop {
        let r = f();
        if r >= 0 {
            return Ok(r);
        }
        let e = errno();
        if e.0 != libc::EINTR {
            return Err(e);
        }
    }
}

fn retry_long(mut f: impl FnMut() -> c_long) -> SysResult<c_long> {
    loop {
        let r = f();
        if r >= 0 {
            return Ok(r);
        }
        let e = errno();
        if e.0 != libc::EINTR {
            return Err(e);
        }
    }
}

fn retry_size(mut f: impl FnMut() -> libc::ssize_t) -> SysResult<usize> {
    loop {
        let r = f();
        if r >= 0 {
            // r >= 0 was just checked, so the conversion cannot fail.
            return usize::try_from(r).map_err(|_| Errno(libc::EOVERFLOW));
        }
        let e = errno();
        if e.0 != libc::EINTR {
            return Err(e);
        }
    }
}

/// Takes ownership of a descriptor a successful open-like call returned.
fn own(fd: c_long) -> SysResult<OwnedFd> {
    let fd = c_int::try_from(fd).map_err(|_| Errno(libc::EBADF))?;
    if fd < 0 {
        return Err(Errno(libc::EBADF));
    }
    // SAFETY: the kernel just returned this descriptor to us and nobody else
    // holds it, so we are its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn off(v: u64) -> SysResult<libc::off_t> {
    libc::off_t::try_from(v).map_err(|_| Errno(libc::EFBIG))
}

// ---------------------------------------------------------------- opening

/// `struct open_how` of openat2(2). libc's copy is non-exhaustive, so we
/// keep our own: the kernel ABI is fixed (three u64s).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub(crate) const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub(crate) const RESOLVE_BENEATH: u64 = 0x08;

/// openat2(2). `mode` is passed only with O_CREAT (the kernel rejects a
/// mode otherwise).
pub(crate) fn openat2(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: c_int,
    mode: u32,
    resolve: u64,
) -> SysResult<OwnedFd> {
    let how = OpenHow {
        flags: u64::from(flags as c_uint),
        mode: if flags & libc::O_CREAT != 0 {
            u64::from(mode & 0o7777)
        } else {
            0
        },
        resolve,
    };
    let r = retry_long(|| {
        // SAFETY: `how` and `path` outlive the call; the size passed is
        // the size of the struct we pass.
        unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        }
    })?;
    own(r)
}

pub(crate) fn openat(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: c_int,
    mode: u32,
) -> SysResult<OwnedFd> {
    let r = retry_int(|| {
        // SAFETY: `path` is a valid NUL-terminated string for the call.
        unsafe { libc::openat(dir.as_raw_fd(), path.as_ptr(), flags, mode as c_uint) }
    })?;
    own(c_long::from(r))
}

/// open(2) of an absolute or cwd-relative path (used once, for the share).
pub(crate) fn open_cwd(path: &CStr, flags: c_int) -> SysResult<OwnedFd> {
    let r = retry_int(|| {
        // SAFETY: `path` is a valid NUL-terminated string for the call.
        unsafe { libc::open(path.as_ptr(), flags) }
    })?;
    own(c_long::from(r))
}

pub(crate) fn readlink_fd(fd: BorrowedFd<'_>) -> SysResult<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = retry_size(|| {
            // SAFETY: the buffer is valid for `buf.len()` bytes; "" with an
            // O_PATH descriptor of the link reads that link (Linux >= 2.6.39).
            unsafe {
                libc::readlinkat(
                    fd.as_raw_fd(),
                    c"".as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            }
        })?;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        if buf.len() >= 1 << 16 {
            return Err(Errno(libc::ENAMETOOLONG));
        }
        let grown = buf.len() * 4;
        buf.resize(grown, 0);
    }
}

// ---------------------------------------------------------------- names

pub(crate) fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> SysResult<()> {
    retry_int(|| {
        // SAFETY: `name` is a valid NUL-terminated string for the call.
        unsafe {
            libc::mkdirat(
                dir.as_raw_fd(),
                name.as_ptr(),
                (mode & 0o7777) as libc::mode_t,
            )
        }
    })
    .map(drop)
}

pub(crate) fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: c_int) -> SysResult<()> {
    retry_int(|| {
        // SAFETY: `name` is a valid NUL-terminated string for the call.
        unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }
    })
    .map(drop)
}

pub(crate) const RENAME_NOREPLACE: c_uint = 1;

pub(crate) fn renameat2(
    from_dir: BorrowedFd<'_>,
    from: &CStr,
    to_dir: BorrowedFd<'_>,
    to: &CStr,
    flags: c_uint,
) -> SysResult<()> {
    retry_long(|| {
        // SAFETY: both names are valid NUL-terminated strings for the call.
        unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                from_dir.as_raw_fd(),
                from.as_ptr(),
                to_dir.as_raw_fd(),
                to.as_ptr(),
                flags,
            )
        }
    })
    .map(drop)
}

pub(crate) fn renameat(
    from_dir: BorrowedFd<'_>,
    from: &CStr,
    to_dir: BorrowedFd<'_>,
    to: &CStr,
) -> SysResult<()> {
    retry_int(|| {
        // SAFETY: both names are valid NUL-terminated strings for the call.
        unsafe {
            libc::renameat(
                from_dir.as_raw_fd(),
                from.as_ptr(),
                to_dir.as_raw_fd(),
                to.as_ptr(),
            )
        }
    })
    .map(drop)
}

// ---------------------------------------------------------------- stat

/// What we use of a stat/statx result, one shape for both calls.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stat {
    pub ino: u64,
    pub dev: u64,
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub blocks: u64,
    pub blksize: u32,
    pub atime: (i64, u32),
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
    pub btime: Option<(i64, u32)>,
}

impl Stat {
    pub(crate) fn file_type(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    pub(crate) fn is_dir(&self) -> bool {
        self.file_type() == libc::S_IFDIR
    }
    pub(crate) fn is_reg(&self) -> bool {
        self.file_type() == libc::S_IFREG
    }
    pub(crate) fn is_symlink(&self) -> bool {
        self.file_type() == libc::S_IFLNK
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct StatxTimestamp {
    tv_sec: i64,
    tv_nsec: u32,
    reserved: i32,
}

/// `struct statx` (256 bytes); own copy so that the layout does not depend
/// on the libc flavour.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct StatxBuf {
    stx_mask: u32,
    stx_blksize: u32,
    stx_attributes: u64,
    stx_nlink: u32,
    stx_uid: u32,
    stx_gid: u32,
    stx_mode: u16,
    spare0: u16,
    stx_ino: u64,
    stx_size: u64,
    stx_blocks: u64,
    stx_attributes_mask: u64,
    stx_atime: StatxTimestamp,
    stx_btime: StatxTimestamp,
    stx_ctime: StatxTimestamp,
    stx_mtime: StatxTimestamp,
    stx_rdev_major: u32,
    stx_rdev_minor: u32,
    stx_dev_major: u32,
    stx_dev_minor: u32,
    spare: [u64; 14],
}

const STATX_BASIC_STATS: c_uint = 0x07ff;
const STATX_BTIME: c_uint = 0x0800;

/// Set once statx(2) answered ENOSYS (kernels before 4.11).
static STATX_MISSING: AtomicBool = AtomicBool::new(false);

/// glibc's `makedev` encoding, so `dev` matches what stat(2) reports.
fn makedev(major: u32, minor: u32) -> u64 {
    let (major, minor) = (u64::from(major), u64::from(minor));
    ((major & 0xffff_f000) << 32)
        | ((major & 0x0fff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0x00ff)
}

/// statx(2) (or fstatat(2) where statx is missing). `flags` are AT_* flags:
/// AT_EMPTY_PATH with "" stats `dir` itself, AT_SYMLINK_NOFOLLOW stats a link.
pub(crate) fn statx(dir: BorrowedFd<'_>, path: &CStr, flags: c_int) -> SysResult<Stat> {
    if !STATX_MISSING.load(Ordering::Relaxed) {
        let mut b = StatxBuf::default();
        let r = retry_long(|| {
            // SAFETY: `b` is a writable statx buffer of the kernel's size.
            unsafe {
                libc::syscall(
                    libc::SYS_statx,
                    dir.as_raw_fd(),
                    path.as_ptr(),
                    flags,
                    STATX_BASIC_STATS | STATX_BTIME,
                    &mut b as *mut StatxBuf,
                )
            }
        });
        match r {
            Ok(_) => {
                let ts = |t: StatxTimestamp| (t.tv_sec, t.tv_nsec);
                return Ok(Stat {
                    ino: b.stx_ino,
                    dev: makedev(b.stx_dev_major, b.stx_dev_minor),
                    mode: u32::from(b.stx_mode),
                    nlink: u64::from(b.stx_nlink),
                    uid: b.stx_uid,
                    gid: b.stx_gid,
                    size: b.stx_size,
                    blocks: b.stx_blocks,
                    blksize: b.stx_blksize,
                    atime: ts(b.stx_atime),
                    mtime: ts(b.stx_mtime),
                    ctime: ts(b.stx_ctime),
                    btime: (b.stx_mask & STATX_BTIME != 0).then(|| ts(b.stx_btime)),
                });
            }
            Err(Errno(libc::ENOSYS)) => STATX_MISSING.store(true, Ordering::Relaxed),
            Err(e) => return Err(e),
        }
    }
    fstatat(dir, path, flags)
}

#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn fstatat(dir: BorrowedFd<'_>, path: &CStr, flags: c_int) -> SysResult<Stat> {
    let mut st = MaybeUninit::<libc::stat>::zeroed();
    retry_int(|| {
        // SAFETY: `st` is a writable stat buffer; `path` is NUL-terminated.
        unsafe { libc::fstatat(dir.as_raw_fd(), path.as_ptr(), st.as_mut_ptr(), flags) }
    })?;
    // SAFETY: fstatat succeeded and filled the buffer (it was zeroed anyway,
    // and all-zero is a valid `stat`).
    let st = unsafe { st.assume_init() };
    let nsec = |n: i64| u32::try_from(n).unwrap_or(0);
    Ok(Stat {
        ino: st.st_ino as u64,
        dev: st.st_dev as u64,
        mode: st.st_mode as u32,
        nlink: st.st_nlink as u64,
        uid: st.st_uid as u32,
        gid: st.st_gid as u32,
        size: u64::try_from(st.st_size).unwrap_or(0),
        blocks: u64::try_from(st.st_blocks).unwrap_or(0),
        blksize: u32::try_from(st.st_blksize).unwrap_or(4096),
        atime: (st.st_atime as i64, nsec(st.st_atime_nsec as i64)),
        mtime: (st.st_mtime as i64, nsec(st.st_mtime_nsec as i64)),
        ctime: (st.st_ctime as i64, nsec(st.st_ctime_nsec as i64)),
        btime: None,
    })
}

/// Stat of an open descriptor.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> SysResult<Stat> {
    statx(fd, c"", libc::AT_EMPTY_PATH)
}

/// Type/permission bits and identity of an open descriptor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Basic {
    pub mode: u32,
    pub ino: u64,
    pub dev: u64,
}

impl Basic {
    pub(crate) fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
}

/// fstat(2), keeping only what `Basic` holds (cheaper than statx with
/// birth time on some filesystems).
pub(crate) fn fstat_basic(fd: BorrowedFd<'_>) -> SysResult<Basic> {
    let mut st = MaybeUninit::<libc::stat>::zeroed();
    retry_int(|| {
        // SAFETY: `st` is a writable stat buffer.
        unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) }
    })?;
    // SAFETY: fstat succeeded and filled the (zeroed) buffer.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    Ok(Basic {
        mode: st.st_mode as u32,
        ino: st.st_ino as u64,
        dev: st.st_dev as u64,
    })
}

pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> SysResult<()> {
    retry_int(|| {
        // SAFETY: plain syscall on a descriptor we hold.
        unsafe { libc::fchmod(fd.as_raw_fd(), (mode & 0o7777) as libc::mode_t) }
    })
    .map(drop)
}

// ---------------------------------------------------------------- xattrs

pub(crate) fn fgetxattr(fd: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> SysResult<usize> {
    retry_size(|| {
        // SAFETY: `buf` is writable for its length; `name` is NUL-terminated.
        unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        }
    })
}

/// getxattrat(2) (Linux 6.13): an xattr of `name` in directory `dfd`, the last component
/// not followed. `None` when the kernel lacks the call (ENOSYS), remembered, so callers
/// fall back to a path through /proc once and for all.
pub(crate) fn getxattrat(
    dfd: BorrowedFd<'_>,
    name: &CStr,
    attr: &CStr,
    buf: &mut [u8],
) -> Option<SysResult<usize>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static MISSING: AtomicBool = AtomicBool::new(false);
    if MISSING.load(Ordering::Relaxed) {
        return None;
    }
    #[repr(C)]
    struct XattrArgs {
        value: u64,
        size: u32,
        flags: u32,
    }
    // The same number on x86_64 and the generic table (aarch64, riscv64).
    const SYS_GETXATTRAT: libc::c_long = 464;
    let size = u32::try_from(buf.len()).unwrap_or(u32::MAX);
    let r = retry_size(|| {
        let mut args = XattrArgs {
            value: buf.as_mut_ptr() as u64,
            size,
            flags: 0,
        };
        // SAFETY: `args` points at `buf`, writable for `size` bytes, and lives across the
        // call; both strings are NUL-terminated.
        unsafe {
            libc::syscall(
                SYS_GETXATTRAT,
                dfd.as_raw_fd(),
                name.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
                attr.as_ptr(),
                &mut args as *mut XattrArgs,
                std::mem::size_of::<XattrArgs>(),
            ) as libc::ssize_t
        }
    });
    if matches!(r, Err(Errno(libc::ENOSYS))) {
        MISSING.store(true, Ordering::Relaxed);
        return None;
    }
    Some(r)
}

/// lgetxattr(2) on a path (used with /proc/self/fd/N/name).
pub(crate) fn lgetxattr(path: &CStr, name: &CStr, buf: &mut [u8]) -> SysResult<usize> {
    retry_size(|| {
        // SAFETY: `buf` is writable for its length; both strings are
        // NUL-terminated.
        unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        }
    })
}

pub(crate) fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> SysResult<()> {
    retry_int(|| {
        // SAFETY: `value` is readable for its length; `name` is NUL-terminated.
        unsafe {
            libc::fsetxattr(
                fd.as_raw_fd(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        }
    })
    .map(drop)
}

/// fsetxattr(2) with flags (XATTR_CREATE / XATTR_REPLACE).
pub(crate) fn fsetxattr_flags(
    fd: BorrowedFd<'_>,
    name: &CStr,
    value: &[u8],
    flags: c_int,
) -> SysResult<()> {
    retry_int(|| {
        // SAFETY: `value` is readable for its length; `name` is NUL-terminated.
        unsafe {
            libc::fsetxattr(
                fd.as_raw_fd(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                flags,
            )
        }
    })
    .map(drop)
}

/// flistxattr(2): the NUL-separated names into `buf` (an empty `buf` asks
/// for the size needed).
pub(crate) fn flistxattr(fd: BorrowedFd<'_>, buf: &mut [u8]) -> SysResult<usize> {
    retry_size(|| {
        // SAFETY: `buf` is writable for its length (a zero length is allowed
        // with any pointer).
        unsafe { libc::flistxattr(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
    })
}

pub(crate) fn fremovexattr(fd: BorrowedFd<'_>, name: &CStr) -> SysResult<()> {
    retry_int(|| {
        // SAFETY: `name` is NUL-terminated.
        unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) }
    })
    .map(drop)
}

// ---------------------------------------------------------------- data

pub(crate) fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> SysResult<usize> {
    let o = off(offset)?;
    retry_size(|| {
        // SAFETY: `buf` is writable for its length.
        unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), o) }
    })
}

pub(crate) fn pwrite(fd: BorrowedFd<'_>, buf: &[u8], offset: u64) -> SysResult<usize> {
    let o = off(offset)?;
    retry_size(|| {
        // SAFETY: `buf` is readable for its length.
        unsafe { libc::pwrite(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), o) }
    })
}

pub(crate) fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> SysResult<()> {
    let l = off(len)?;
    retry_int(|| {
        // SAFETY: plain syscall on a descriptor we hold.
        unsafe { libc::ftruncate(fd.as_raw_fd(), l) }
    })
    .map(drop)
}

pub(crate) const FALLOC_FL_KEEP_SIZE: c_int = 0x01;
/// Deallocates the range (must be combined with KEEP_SIZE); reads give zeros.
pub(crate) const FALLOC_FL_PUNCH_HOLE: c_int = 0x02;
/// Zeroes the range, keeping (or making) it allocated.
pub(crate) const FALLOC_FL_ZERO_RANGE: c_int = 0x10;

pub(crate) fn fallocate(fd: BorrowedFd<'_>, mode: c_int, offset: u64, len: u64) -> SysResult<()> {
    let (o, l) = (off(offset)?, off(len)?);
    retry_int(|| {
        // SAFETY: plain syscall on a descriptor we hold.
        unsafe { libc::fallocate(fd.as_raw_fd(), mode, o, l) }
    })
    .map(drop)
}

/// lseek(2); with SEEK_DATA / SEEK_HOLE it finds the next data or hole at
/// or after `offset` (ENXIO: none before the end of file).
pub(crate) fn lseek(fd: BorrowedFd<'_>, offset: u64, whence: c_int) -> SysResult<u64> {
    let o = off(offset)?;
    loop {
        // SAFETY: plain syscall on a descriptor we hold.
        let r = unsafe { libc::lseek(fd.as_raw_fd(), o, whence) };
        if r >= 0 {
            return u64::try_from(r).map_err(|_| Errno(libc::EOVERFLOW));
        }
        let e = errno();
        if e.0 != libc::EINTR {
            return Err(e);
        }
    }
}

pub(crate) fn fsync(fd: BorrowedFd<'_>) -> SysResult<()> {
    retry_int(|| {
        // SAFETY: plain syscall on a descriptor we hold.
        unsafe { libc::fsync(fd.as_raw_fd()) }
    })
    .map(drop)
}

/// futimens(2). `None` leaves that time alone (UTIME_OMIT).
pub(crate) fn futimens(
    fd: BorrowedFd<'_>,
    atime: Option<(i64, u32)>,
    mtime: Option<(i64, u32)>,
) -> SysResult<()> {
    let ts = |t: Option<(i64, u32)>| -> SysResult<libc::timespec> {
        // SAFETY: all-zero is a valid timespec (some targets have padding
        // fields, so we do not build it with a struct literal).
        let mut v: libc::timespec = unsafe { std::mem::zeroed() };
        match t {
            Some((s, ns)) => {
                // time_t is i64 on our targets; a 32-bit one would refuse
                // times past 2038 here instead of wrapping.
                #[allow(clippy::useless_conversion)]
                let sec = s.try_into();
                v.tv_sec = sec.map_err(|_| Errno(libc::EOVERFLOW))?;
                v.tv_nsec = ns.min(999_999_999).into();
            }
            None => v.tv_nsec = libc::UTIME_OMIT,
        }
        Ok(v)
    };
    let times = [ts(atime)?, ts(mtime)?];
    retry_int(|| {
        // SAFETY: `times` is an array of two timespecs, as futimens wants.
        unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) }
    })
    .map(drop)
}

pub(crate) struct VfsStat {
    pub block_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_avail: u64,
    pub fsid: u64,
    pub name_max: u64,
}

#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
pub(crate) fn fstatvfs(fd: BorrowedFd<'_>) -> SysResult<VfsStat> {
    let mut st = MaybeUninit::<libc::statvfs>::zeroed();
    retry_int(|| {
        // SAFETY: `st` is a writable statvfs buffer.
        unsafe { libc::fstatvfs(fd.as_raw_fd(), st.as_mut_ptr()) }
    })?;
    // SAFETY: fstatvfs succeeded and filled the (zeroed) buffer.
    let st = unsafe { st.assume_init() };
    let frsize = if st.f_frsize != 0 {
        st.f_frsize
    } else {
        st.f_bsize
    };
    Ok(VfsStat {
        block_size: frsize as u64,
        blocks: st.f_blocks as u64,
        blocks_free: st.f_bfree as u64,
        blocks_avail: st.f_bavail as u64,
        fsid: st.f_fsid as u64,
        name_max: st.f_namemax as u64,
    })
}

/// getdents64(2) into `buf`; returns the number of bytes filled, 0 at the end.
pub(crate) fn getdents64(fd: BorrowedFd<'_>, buf: &mut [u8]) -> SysResult<usize> {
    let r = retry_long(|| {
        // SAFETY: `buf` is writable for its length.
        unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        }
    })?;
    usize::try_from(r).map_err(|_| Errno(libc::EIO))
}

// ---------------------------------------------------------------- FIEMAP

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapHeader {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
}

const FIEMAP_BATCH: usize = 32;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapBuf {
    hdr: FiemapHeader,
    extents: [FiemapExtent; FIEMAP_BATCH],
}

const FS_IOC_FIEMAP: libc::Ioctl = libc::_IOWR::<FiemapHeader>('f' as u32, 11);
const FIEMAP_EXTENT_LAST: u32 = 0x0001;
const FIEMAP_EXTENT_DATA_INLINE: u32 = 0x0200;
const FIEMAP_EXTENT_DATA_TAIL: u32 = 0x0400;
/// At most this many FIEMAP calls per file (64 x 32 extents) before we give
/// up and let the caller use st_blocks.
const FIEMAP_MAX_ROUNDS: usize = 64;

/// Bytes of data extents (written, unwritten or delayed), not counting
/// xattr blocks or data stored inline in the inode. `Ok(None)` when the
/// filesystem has no FIEMAP or the file is too fragmented to bother.
pub(crate) fn fiemap_data_bytes(fd: BorrowedFd<'_>) -> SysResult<Option<u64>> {
    let mut total: u64 = 0;
    let mut start: u64 = 0;
    for _ in 0..FIEMAP_MAX_ROUNDS {
        let mut b = FiemapBuf::default();
        b.hdr.fm_start = start;
        b.hdr.fm_length = u64::MAX - start;
        b.hdr.fm_extent_count = FIEMAP_BATCH as u32;
        let r = retry_int(|| {
            // SAFETY: `b` is a fiemap header followed by room for
            // `fm_extent_count` extents, as FS_IOC_FIEMAP requires.
            unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FIEMAP, &mut b as *mut FiemapBuf) }
        });
        match r {
            Ok(_) => {}
            Err(Errno(
                libc::EOPNOTSUPP | libc::ENOTTY | libc::EINVAL | libc::EBADF | libc::ENOSYS,
            )) => return Ok(None),
            Err(e) => return Err(e),
        }
        let mapped = (b.hdr.fm_mapped_extents as usize).min(FIEMAP_BATCH);
        if mapped == 0 {
            return Ok(Some(total));
        }
        for e in &b.extents[..mapped] {
            if e.fe_flags & (FIEMAP_EXTENT_DATA_INLINE | FIEMAP_EXTENT_DATA_TAIL) == 0 {
                total = total.saturating_add(e.fe_length);
            }
            if e.fe_flags & FIEMAP_EXTENT_LAST != 0 {
                return Ok(Some(total));
            }
        }
        let last = b.extents[mapped - 1];
        let next = last.fe_logical.saturating_add(last.fe_length);
        if mapped < FIEMAP_BATCH || next <= start {
            return Ok(Some(total));
        }
        start = next;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::fd::AsFd;

    #[test]
    fn getxattrat_reads_what_the_proc_path_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").expect("file");
        let attr = c"user.duet.test";
        let cf = CString::new(f.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: NUL-terminated strings and a live value buffer.
        let set =
            unsafe { libc::setxattr(cf.as_ptr(), attr.as_ptr(), b"value".as_ptr().cast(), 5, 0) };
        if set != 0 {
            return; // no user xattrs on this filesystem
        }
        let d = std::fs::File::open(dir.path()).expect("dir");
        let mut a = [0u8; 64];
        let Some(r) = getxattrat(d.as_fd(), c"f", attr, &mut a) else {
            return; // kernel before 6.13: the /proc path is used instead
        };
        assert_eq!(&a[..r.expect("getxattrat")], b"value");
        let p = CString::new(format!("/proc/self/fd/{}/f", d.as_raw_fd())).expect("path");
        let mut b = [0u8; 64];
        let n = lgetxattr(&p, attr, &mut b).expect("lgetxattr");
        assert_eq!(&b[..n], b"value");
        assert_eq!(
            getxattrat(d.as_fd(), c"f", c"user.duet.none", &mut a).map(|r| r.err()),
            Some(Some(Errno(libc::ENODATA)))
        );
        assert_eq!(
            getxattrat(d.as_fd(), c"gone", attr, &mut a).map(|r| r.err()),
            Some(Some(Errno(libc::ENOENT)))
        );
    }
}
