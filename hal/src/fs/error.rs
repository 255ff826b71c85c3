//! `FsError`, the one error type of `duet_hal::fs`, and the errno mapping.

use super::sys::Errno;

/// Why a filesystem operation failed.
///
/// The variants follow what the SMB layer must tell a client (each maps to
/// one NTSTATUS); anything without a dedicated variant is `Io(errno)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// The last component of the path does not exist.
    #[error("no such file or directory")]
    NotFound,
    /// A directory on the way to the last component does not exist (or is
    /// not a directory).
    #[error("a directory on the path does not exist")]
    PathNotFound,
    /// The name already exists.
    #[error("the name already exists")]
    Exists,
    /// A non-directory was wanted (or an operation needs one) and this is a
    /// directory.
    #[error("is a directory")]
    IsADirectory,
    /// A directory was wanted (or an operation needs one) and this is not one.
    #[error("not a directory")]
    NotADirectory,
    /// The directory is not empty.
    #[error("directory not empty")]
    NotEmpty,
    /// The operation is refused: permissions, an immutable file, the DOS
    /// READONLY attribute, or the HIDDEN/SYSTEM overwrite rule.
    #[error("access denied")]
    AccessDenied,
    /// The path resolves (through a symlink) to something outside the share,
    /// or through an absolute symlink.
    #[error("the path leads outside the share")]
    OutsideShare,
    /// A component is longer than the filesystem allows, or the path is
    /// longer than PATH_MAX.
    #[error("name too long")]
    NameTooLong,
    /// The path is malformed (empty, `.` or `..` component, NUL byte, or a
    /// leading, trailing or doubled `/`).
    #[error("invalid name: {0}")]
    InvalidName(&'static str),
    /// The request makes no sense for this object.
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
    /// The filesystem is full.
    #[error("no space left on the filesystem")]
    NoSpace,
    /// The owner's disk quota is exhausted.
    #[error("disk quota exceeded")]
    QuotaExceeded,
    /// The filesystem is mounted read-only.
    #[error("read-only filesystem")]
    ReadOnlyFilesystem,
    /// An offset or size is beyond what the filesystem supports.
    #[error("file too large")]
    FileTooLarge,
    /// Too many symlinks were followed (a loop, most likely).
    #[error("too many levels of symbolic links")]
    SymlinkLoop,
    /// The object is a FIFO, socket or device node; shares serve only
    /// regular files and directories.
    #[error("not a regular file or directory")]
    SpecialFile,
    /// A rename across two mounted filesystems.
    #[error("cannot move across filesystems")]
    CrossDevice,
    /// The object is busy (a lease held by another process, a mount point,
    /// a running executable) or kept changing under us.
    #[error("the object is busy")]
    Busy,
    /// The process is out of file descriptors.
    #[error("too many open files")]
    TooManyOpenFiles,
    /// Extended attributes cannot be kept: the share's filesystem has no
    /// user xattrs.
    #[error("extended attributes are not supported here")]
    EasNotSupported,
    /// The extended attributes would exceed what one file may hold (64 KiB
    /// less 5 bytes packed, or what the filesystem fits beside the inode).
    #[error("extended attributes too large")]
    EaTooLarge,
    /// Any other system error, with its errno.
    #[error("system error: {}", std::io::Error::from_raw_os_error(*.0))]
    Io(i32),
}

impl FsError {
    /// The plain errno mapping. Callers that know better (ENOENT of a parent,
    /// EXDEV of a rename, EEXIST of rmdir) map those cases first.
    pub(crate) fn from_errno(e: Errno) -> FsError {
        match e.0 {
            libc::ENOENT => FsError::NotFound,
            libc::ENOTDIR => FsError::NotADirectory,
            libc::EEXIST => FsError::Exists,
            libc::EISDIR => FsError::IsADirectory,
            libc::ENOTEMPTY => FsError::NotEmpty,
            libc::EACCES | libc::EPERM => FsError::AccessDenied,
            libc::EXDEV => FsError::OutsideShare,
            libc::ENAMETOOLONG => FsError::NameTooLong,
            libc::ENOSPC => FsError::NoSpace,
            libc::EDQUOT => FsError::QuotaExceeded,
            libc::EROFS => FsError::ReadOnlyFilesystem,
            libc::EFBIG | libc::EOVERFLOW => FsError::FileTooLarge,
            libc::ELOOP => FsError::SymlinkLoop,
            libc::ENXIO | libc::ENODEV => FsError::SpecialFile,
            libc::EBUSY | libc::ETXTBSY | libc::EAGAIN => FsError::Busy,
            libc::EMFILE | libc::ENFILE => FsError::TooManyOpenFiles,
            libc::EINVAL => FsError::InvalidParameter("rejected by the filesystem"),
            other => FsError::Io(other),
        }
    }
}

impl From<Errno> for FsError {
    fn from(e: Errno) -> FsError {
        FsError::from_errno(e)
    }
}
