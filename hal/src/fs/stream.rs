//! Named streams (NTFS alternate data streams), kept as user xattrs of the
//! file or directory they belong to, as Samba's `streams_xattr` does.
//!
//! Stream `NAME` of an object is the xattr `user.duet.stream.NAME`; its
//! value is the stream's data (a zero-byte stream is an empty value, which
//! still exists). Names are matched without regard to case (a simple
//! per-character upper-casing, as Windows compares names) and kept as they
//! were spelled when the stream was created. A name is 1 to
//! [`STREAM_NAME_MAX`] bytes of UTF-8 without `/`, `\`, `:` or NUL (the
//! xattr name must stay within the kernel's 255 bytes); control characters
//! and wildcards are allowed, as on NTFS.
//!
//! Size: a stream is at most [`STREAM_SIZE_MAX`] bytes (the kernel's
//! XATTR_SIZE_MAX), and the filesystem may hold less: ext4 keeps all
//! xattrs of an inode in one block (4 KiB, less what the metadata, EA and
//! security-descriptor xattrs use) unless it was made with `ea_inode`.
//! Writes that do not fit fail with [`FsError::NoSpace`] and change nothing.
//! Every write rewrites the whole value (under the file's metadata stripe
//! lock), so streams suit the small metadata Windows keeps in them
//! (Zone.Identifier, thumbnails, Office and macOS metadata), not bulk data.
//!
//! Everything else about a stream (times, attributes, EAs, the security
//! descriptor, links) is the file's: a stream [`Handle`] holds the base
//! object's descriptor and its metadata calls act on the base object.
//! Deleting the file deletes its streams with the inode.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Mutex;

use super::sys::{self, Errno};
use super::{ea, Disposition, FsError, Handle, Kind, Meta, OpenOptions, ShareRoot};

/// Prefix of the xattrs holding streams.
const PREFIX: &str = "user.duet.stream.";
/// Longest stream name in bytes (the xattr name is at most 255 bytes).
pub const STREAM_NAME_MAX: usize = 255 - PREFIX.len();
/// Largest stream (XATTR_SIZE_MAX); the filesystem may allow less.
pub const STREAM_SIZE_MAX: u64 = 65536;

/// One named stream of a file, as [`Handle::streams`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    /// The name, as spelled when the stream was created.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its allocation as reported (the size rounded up to 8 bytes, as NTFS
    /// reports small resident streams).
    pub allocation: u64,
}

/// What [`ShareRoot::open_stream`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamOpen {
    /// The stream was created (it did not exist).
    pub created: bool,
    /// The base file was created too (it did not exist either).
    pub base_created: bool,
}

/// The stream a [`Handle`] is open on.
pub(crate) struct StreamState {
    /// The name on disk; `None` once the stream was renamed onto the
    /// file's unnamed data stream (the handle is then the file's).
    name: Mutex<Option<Box<str>>>,
    /// Opened for writing.
    write: bool,
}

impl StreamState {
    fn get(&self) -> Option<Box<str>> {
        self.name.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, name: Option<&str>) {
        *self.name.lock().unwrap_or_else(|p| p.into_inner()) = name.map(Into::into);
    }
}

/// A name in the form stream names are compared in.
fn fold(name: &str) -> String {
    name.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// Checks a stream name (see the module docs).
pub fn check_stream_name(name: &str) -> Result<(), FsError> {
    if name.is_empty() {
        return Err(FsError::InvalidName("empty stream name"));
    }
    if name.contains(['/', '\\', ':', '\0']) {
        return Err(FsError::InvalidName(
            "character not allowed in a stream name",
        ));
    }
    if name.len() > STREAM_NAME_MAX {
        return Err(FsError::NameTooLong);
    }
    Ok(())
}

fn xname(name: &str) -> Result<CString, FsError> {
    check_stream_name(name)?;
    CString::new(format!("{PREFIX}{name}")).map_err(|_| FsError::InvalidName("NUL byte"))
}

fn allocation(size: u64) -> u64 {
    size.div_ceil(8).saturating_mul(8)
}

/// Errors of writing a stream's xattr.
fn write_err(e: Errno) -> FsError {
    match e.0 {
        libc::E2BIG | libc::ENOSPC | libc::ERANGE => FsError::NoSpace,
        libc::EOPNOTSUPP => FsError::InvalidName("named streams need user xattrs"),
        libc::ENODATA => FsError::NotFound,
        _ => FsError::from_errno(e),
    }
}

/// The size of a stream's value; `None` if there is no such stream.
fn value_len(fd: BorrowedFd<'_>, x: &CString) -> Result<Option<u64>, FsError> {
    match sys::fgetxattr(fd, x, &mut []) {
        Ok(n) => Ok(Some(n as u64)),
        Err(Errno(libc::ENODATA)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A stream's value; `None` if there is no such stream.
fn read_value(fd: BorrowedFd<'_>, x: &CString) -> Result<Option<Vec<u8>>, FsError> {
    for _ in 0..4 {
        let Some(need) = value_len(fd, x)? else {
            return Ok(None);
        };
        let mut buf = vec![0u8; need as usize];
        match sys::fgetxattr(fd, x, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno(libc::ENODATA)) => return Ok(None),
            // Grew between the two calls.
            Err(Errno(libc::ERANGE)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(FsError::Busy)
}

fn write_value(fd: BorrowedFd<'_>, x: &CString, v: &[u8], flags: i32) -> Result<(), FsError> {
    if v.len() as u64 > STREAM_SIZE_MAX {
        return Err(FsError::NoSpace);
    }
    sys::fsetxattr_flags(fd, x, v, flags).map_err(|e| match e.0 {
        libc::EEXIST => FsError::Exists,
        _ => write_err(e),
    })
}

fn remove_value(fd: BorrowedFd<'_>, x: &CString) -> Result<(), FsError> {
    match sys::fremovexattr(fd, x) {
        Ok(()) | Err(Errno(libc::ENODATA)) => Ok(()),
        Err(e) => Err(write_err(e)),
    }
}

/// The names of every stream of `fd`, as on disk.
fn list(fd: BorrowedFd<'_>) -> Result<Vec<String>, FsError> {
    Ok(ea::list_names(fd)?
        .into_iter()
        .filter_map(|raw| {
            let name = std::str::from_utf8(raw.strip_prefix(PREFIX.as_bytes())?).ok()?;
            check_stream_name(name).ok()?;
            Some(name.to_owned())
        })
        .collect())
}

/// The name on disk of stream `name` (any case), if the object has it.
fn find(fd: BorrowedFd<'_>, name: &str) -> Result<Option<String>, FsError> {
    if value_len(fd, &xname(name)?)?.is_some() {
        return Ok(Some(name.to_owned()));
    }
    let folded = fold(name);
    Ok(list(fd)?.into_iter().find(|n| fold(n) == folded))
}

impl ShareRoot {
    /// Opens or creates stream `stream` of the file or directory `path`.
    /// The dispositions apply to the stream; the base file is created (as a
    /// file, with `opts`' attributes and mode) when a disposition that
    /// creates finds neither. Overwriting dispositions empty the stream.
    ///
    /// Errors: those of opening the base object; NotFound (no such stream
    /// for Open/Overwrite), Exists (Create of an existing stream),
    /// NotADirectory (`Kind::Directory`: a stream is never a directory),
    /// AccessDenied (writing to a READONLY file), InvalidName (a bad stream
    /// name, or no user xattrs on this share), NameTooLong, NoSpace.
    pub fn open_stream(
        &self,
        path: &str,
        stream: &str,
        opts: &OpenOptions,
    ) -> Result<(Handle, StreamOpen), FsError> {
        check_stream_name(stream)?;
        if !self.inner.xattrs {
            return Err(FsError::InvalidName("named streams need user xattrs"));
        }
        if opts.kind == Kind::Directory {
            return Err(FsError::NotADirectory);
        }
        let base_opts = OpenOptions {
            read: true,
            // A writable descriptor for writes to the stream: the READONLY
            // check of the base applies, and a rename onto the unnamed
            // stream can write the file's data.
            write: opts.write || opts.disposition.overwrites(),
            disposition: match opts.disposition {
                Disposition::Open | Disposition::Overwrite => Disposition::Open,
                _ => Disposition::OpenIf,
            },
            kind: Kind::Any,
            ..*opts
        };
        let (mut base, base_created) = self.open_file(path, &base_opts)?;
        let found = {
            let fd = base.fd.as_fd();
            let b = sys::fstat_basic(fd)?;
            let _g = self.inner.lock(&b);
            find(fd, stream).and_then(|found| match (found, opts.disposition) {
                (Some(_), Disposition::Create) => Err(FsError::Exists),
                (None, Disposition::Open | Disposition::Overwrite) => Err(FsError::NotFound),
                (Some(n), d) => {
                    if d.overwrites() {
                        write_value(fd, &xname(&n)?, &[], libc::XATTR_REPLACE)?;
                    }
                    Ok((n, false))
                }
                (None, _) => {
                    write_value(fd, &xname(stream)?, &[], libc::XATTR_CREATE)?;
                    Ok((stream.to_owned(), true))
                }
            })
        };
        match found {
            Ok((name, created)) => {
                base.stream = Some(StreamState {
                    name: Mutex::new(Some(name.into())),
                    write: opts.write,
                });
                Ok((
                    base,
                    StreamOpen {
                        created,
                        base_created,
                    },
                ))
            }
            Err(e) => {
                if base_created {
                    let _ = self.unlink(path);
                }
                Err(e)
            }
        }
    }
}

impl Handle {
    /// The name of the stream this handle is open on (as on disk), `None`
    /// for a handle of the file or directory itself.
    pub fn stream_name(&self) -> Option<String> {
        self.stream
            .as_ref()
            .and_then(StreamState::get)
            .map(String::from)
    }

    pub(crate) fn is_stream(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.get().is_some())
    }

    /// The stream this handle is open on, with its state.
    fn open_stream_name(&self) -> Option<(&StreamState, Box<str>)> {
        let s = self.stream.as_ref()?;
        Some((s, s.get()?))
    }

    /// Every named stream of the file or directory (through any handle of
    /// it), sorted by name. None without user xattrs.
    pub fn streams(&self) -> Result<Vec<StreamInfo>, FsError> {
        if !self.share.xattrs {
            return Ok(Vec::new());
        }
        let fd = self.fd.as_fd();
        let mut out = Vec::new();
        for name in list(fd)? {
            if let Some(size) = value_len(fd, &xname(&name)?)? {
                out.push(StreamInfo {
                    allocation: allocation(size),
                    name,
                    size,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes the stream this handle is open on (a delete on close). The
    /// handle stays usable and reads the stream as empty.
    pub fn remove_stream(&self) -> Result<(), FsError> {
        let (_, name) = self
            .open_stream_name()
            .ok_or(FsError::InvalidParameter("not a named stream"))?;
        let fd = self.fd.as_fd();
        let b = sys::fstat_basic(fd)?;
        let _g = self.share.lock(&b);
        remove_value(fd, &xname(&name)?)
    }

    /// Removes every named stream of the file (an overwrite of the file).
    pub fn remove_streams(&self) -> Result<(), FsError> {
        if !self.share.xattrs {
            return Ok(());
        }
        let fd = self.fd.as_fd();
        let b = sys::fstat_basic(fd)?;
        let _g = self.share.lock(&b);
        for name in list(fd)? {
            remove_value(fd, &xname(&name)?)?;
        }
        Ok(())
    }

    /// Renames the stream this handle is open on to `new` (MS-FSA
    /// 2.1.5.15.11.1). An existing stream of that name (any case) is
    /// replaced with `replace`, else Exists. The same name in another case
    /// changes the spelling. InvalidParameter on a handle that is not a
    /// named stream's.
    pub fn rename_stream(&self, new: &str, replace: bool) -> Result<(), FsError> {
        check_stream_name(new)?;
        let (state, cur) = self
            .open_stream_name()
            .ok_or(FsError::InvalidParameter("not a named stream"))?;
        let fd = self.fd.as_fd();
        let b = sys::fstat_basic(fd)?;
        let _g = self.share.lock(&b);
        let value = read_value(fd, &xname(&cur)?)?.unwrap_or_default();
        if *cur == *new {
            return Ok(());
        }
        if fold(&cur) != fold(new) {
            if let Some(target) = find(fd, new)? {
                if !replace {
                    return Err(FsError::Exists);
                }
                remove_value(fd, &xname(&target)?)?;
            }
        }
        write_value(fd, &xname(new)?, &value, 0)?;
        remove_value(fd, &xname(&cur)?)?;
        state.set(Some(new));
        Ok(())
    }

    /// Renames the stream this handle is open on onto the file's unnamed
    /// data stream: the file's data becomes the stream's and the stream is
    /// gone; the handle is then the file's. A file with data is replaced
    /// only with `replace` (else Exists); a directory has no unnamed data
    /// stream (InvalidParameter). The stream must have been opened for
    /// writing (else AccessDenied).
    pub fn rename_stream_to_default(&self, replace: bool) -> Result<(), FsError> {
        let (state, cur) = self
            .open_stream_name()
            .ok_or(FsError::InvalidParameter("not a named stream"))?;
        if self.is_dir {
            return Err(FsError::InvalidParameter(
                "a directory has no unnamed data stream",
            ));
        }
        if !state.write {
            return Err(FsError::AccessDenied);
        }
        let fd = self.fd.as_fd();
        let st = sys::fstat(fd)?;
        let _g = self.share.lock(&sys::fstat_basic(fd)?);
        if st.size != 0 && !replace {
            return Err(FsError::Exists);
        }
        let x = xname(&cur)?;
        let value = read_value(fd, &x)?.unwrap_or_default();
        let map = |e: Errno| match e.0 {
            libc::EBADF | libc::EINVAL => FsError::AccessDenied,
            _ => FsError::from_errno(e),
        };
        sys::ftruncate(fd, 0).map_err(map)?;
        let mut done = 0;
        while done < value.len() {
            match sys::pwrite(fd, &value[done..], done as u64) {
                Ok(0) => return Err(FsError::Io(libc::EIO)),
                Ok(n) => done += n,
                Err(e) => return Err(map(e)),
            }
        }
        remove_value(fd, &x)?;
        state.set(None);
        Ok(())
    }

    /// [`Handle::read_at`] of a stream.
    pub(crate) fn stream_read_at(
        &self,
        name: &str,
        buf: &mut [u8],
        offset: u64,
    ) -> Result<usize, FsError> {
        let value = read_value(self.fd.as_fd(), &xname(name)?)?.unwrap_or_default();
        let Some(src) = usize::try_from(offset).ok().and_then(|o| value.get(o..)) else {
            return Ok(0);
        };
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        Ok(n)
    }

    /// Read-modify-write of this handle's stream under the file's lock.
    fn stream_update(
        &self,
        f: impl FnOnce(&mut Vec<u8>) -> Result<(), FsError>,
    ) -> Result<(), FsError> {
        let (state, name) = self
            .open_stream_name()
            .ok_or(FsError::InvalidParameter("not a named stream"))?;
        if !state.write {
            return Err(FsError::AccessDenied);
        }
        let fd = self.fd.as_fd();
        let b = sys::fstat_basic(fd)?;
        let _g = self.share.lock(&b);
        let x = xname(&name)?;
        let mut value = read_value(fd, &x)?.unwrap_or_default();
        f(&mut value)?;
        write_value(fd, &x, &value, 0)
    }

    /// [`Handle::write_at`] of a stream.
    pub(crate) fn stream_write_at(&self, buf: &[u8], offset: u64) -> Result<usize, FsError> {
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or(FsError::FileTooLarge)?;
        if end > STREAM_SIZE_MAX {
            return Err(FsError::NoSpace);
        }
        self.stream_update(|v| {
            let (o, e) = (offset as usize, end as usize);
            if v.len() < e {
                v.resize(e, 0);
            }
            v[o..e].copy_from_slice(buf);
            Ok(())
        })?;
        Ok(buf.len())
    }

    /// [`Handle::set_len`] of a stream.
    pub(crate) fn stream_set_len(&self, len: u64) -> Result<(), FsError> {
        if len > STREAM_SIZE_MAX {
            return Err(FsError::NoSpace);
        }
        self.stream_update(|v| {
            v.resize(len as usize, 0);
            Ok(())
        })
    }

    /// [`Handle::allocate`] of a stream: only a length below the size does
    /// something (it truncates).
    pub(crate) fn stream_allocate(&self, len: u64) -> Result<(), FsError> {
        self.stream_update(|v| {
            if (len as usize) < v.len() {
                v.truncate(len as usize);
            }
            Ok(())
        })
    }

    /// [`Handle::zero_range`] of a stream (clipped to its size).
    pub(crate) fn stream_zero_range(&self, offset: u64, len: u64) -> Result<(), FsError> {
        self.stream_update(|v| {
            let end = offset.saturating_add(len).min(v.len() as u64) as usize;
            if let Some(r) = v.get_mut(offset.min(end as u64) as usize..end) {
                r.fill(0);
            }
            Ok(())
        })
    }

    /// The size of this handle's stream (0 if it vanished).
    pub(crate) fn stream_len(&self, name: &str) -> Result<u64, FsError> {
        Ok(value_len(self.fd.as_fd(), &xname(name)?)?.unwrap_or(0))
    }

    /// [`Handle::meta`] of a stream: the file's, with the stream's size.
    pub(crate) fn stream_meta(&self, name: &str, mut m: Meta) -> Result<Meta, FsError> {
        m.size = self.stream_len(name)?;
        m.allocation = allocation(m.size);
        m.is_dir = false;
        Ok(m)
    }

    /// The metadata of the file or directory itself, for a handle of any of
    /// its streams ([`Handle::meta`] of a stream handle has the stream's
    /// size).
    pub fn base_meta(&self) -> Result<Meta, FsError> {
        let fd = self.fd.as_fd();
        let st = sys::fstat(fd)?;
        self.share.meta_with(fd, &st)
    }

    /// The current stream name, if this is a stream handle.
    pub(crate) fn current_stream(&self) -> Option<Box<str>> {
        self.stream.as_ref().and_then(StreamState::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share() -> (tempfile::TempDir, ShareRoot) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = ShareRoot::open(dir.path()).expect("share");
        (dir, root)
    }

    fn opts(disposition: Disposition, write: bool) -> OpenOptions {
        OpenOptions {
            read: true,
            write,
            disposition,
            ..OpenOptions::default()
        }
    }

    #[test]
    fn names_are_checked() {
        for good in ["a", "Stream One", "\u{5}x\ny", "?Stream*", "<>|\""] {
            assert_eq!(check_stream_name(good), Ok(()), "{good:?}");
        }
        for bad in ["", "a/b", "a\\b", "a:b", "a\0b"] {
            assert!(
                matches!(check_stream_name(bad), Err(FsError::InvalidName(_))),
                "{bad:?}"
            );
        }
        assert_eq!(check_stream_name(&"x".repeat(STREAM_NAME_MAX)), Ok(()));
        assert_eq!(
            check_stream_name(&"x".repeat(STREAM_NAME_MAX + 1)),
            Err(FsError::NameTooLong)
        );
        assert_eq!(fold("Stream"), fold("sTREAM"));
    }

    #[test]
    fn create_write_read_list_and_remove() {
        let (d, root) = share();
        if !root.xattrs_supported() {
            return;
        }
        // Creating a stream of a missing file creates the file, empty.
        let (s, o) = root
            .open_stream("f", "Stream One", &opts(Disposition::Create, true))
            .unwrap();
        assert_eq!(
            o,
            StreamOpen {
                created: true,
                base_created: true
            }
        );
        assert_eq!(std::fs::read(d.path().join("f")).unwrap(), b"");
        assert!(s.is_stream() && !s.is_dir());
        assert_eq!(s.stream_name().as_deref(), Some("Stream One"));
        assert_eq!(s.write_at(b"test data", 0).unwrap(), 9);
        assert_eq!(s.write_at(b"MORE DATA ", 5).unwrap(), 10);
        let mut buf = [0u8; 32];
        let n = s.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf[..n], b"test MORE DATA ");
        assert_eq!(s.read_at(&mut buf, 100).unwrap(), 0);
        let m = s.meta().unwrap();
        assert_eq!((m.size, m.allocation, m.is_dir), (15, 16, false));
        // The file's data is untouched; its own handle sees size 0.
        let (f, _) = root
            .open_file("f", &opts(Disposition::Open, false))
            .unwrap();
        assert_eq!(f.meta().unwrap().size, 0);
        assert_eq!(f.stream_name(), None);
        // Names match in any case; Create of an existing one is Exists.
        let (s2, o) = root
            .open_stream("f", "STREAM one", &opts(Disposition::Open, false))
            .unwrap();
        assert!(!o.created && !o.base_created);
        assert_eq!(s2.stream_name().as_deref(), Some("Stream One"));
        assert_eq!(
            root.open_stream("f", "stream ONE", &opts(Disposition::Create, true))
                .unwrap_err(),
            FsError::Exists
        );
        assert_eq!(
            root.open_stream("f", "other", &opts(Disposition::Open, false))
                .unwrap_err(),
            FsError::NotFound
        );
        // A handle opened without write access cannot write.
        assert_eq!(s2.write_at(b"x", 0), Err(FsError::AccessDenied));
        // Zero-byte streams exist and are listed.
        root.open_stream("f", "empty", &opts(Disposition::OpenIf, false))
            .unwrap();
        let names: Vec<_> = f
            .streams()
            .unwrap()
            .into_iter()
            .map(|i| (i.name, i.size))
            .collect();
        assert_eq!(
            names,
            vec![("Stream One".to_string(), 15), ("empty".to_string(), 0)]
        );
        // Overwrite empties it; removal deletes it.
        let (s3, _) = root
            .open_stream("f", "stream one", &opts(Disposition::Overwrite, true))
            .unwrap();
        assert_eq!(s3.meta().unwrap().size, 0);
        s3.remove_stream().unwrap();
        assert_eq!(f.streams().unwrap().len(), 1);
        f.remove_streams().unwrap();
        assert!(f.streams().unwrap().is_empty());
        // The EAs of the file are another namespace.
        assert!(f.eas().unwrap().is_empty());
    }

    #[test]
    fn open_errors() {
        let (_d, root) = share();
        if !root.xattrs_supported() {
            return;
        }
        assert_eq!(
            root.open_stream("missing", "s", &opts(Disposition::Open, false))
                .unwrap_err(),
            FsError::NotFound
        );
        assert_eq!(
            root.open_stream("no/dir", "s", &opts(Disposition::Create, true))
                .unwrap_err(),
            FsError::PathNotFound
        );
        let dir_kind = OpenOptions {
            kind: Kind::Directory,
            ..opts(Disposition::Create, true)
        };
        assert_eq!(
            root.open_stream("f", "s", &dir_kind).unwrap_err(),
            FsError::NotADirectory
        );
        assert!(matches!(
            root.open_stream("f", "a:b", &opts(Disposition::Create, true)),
            Err(FsError::InvalidName(_))
        ));
        // A failed stream open leaves no base file behind.
        assert!(root.stat("f").is_err());
    }

    #[test]
    fn directories_have_streams() {
        let (_d, root) = share();
        if !root.xattrs_supported() {
            return;
        }
        let dopts = OpenOptions {
            kind: Kind::Directory,
            disposition: Disposition::Create,
            mode: 0o755,
            ..OpenOptions::default()
        };
        let (dir, _) = root.open_file("d", &dopts).unwrap();
        let (s, o) = root
            .open_stream("d", "meta", &opts(Disposition::OpenIf, true))
            .unwrap();
        assert!(o.created && !o.base_created);
        assert!(!s.is_dir());
        s.write_at(b"xyz", 0).unwrap();
        assert_eq!(s.meta().unwrap().size, 3);
        assert_eq!(dir.streams().unwrap()[0].name, "meta");
        // Still a directory to list.
        assert!(dir.read_dir().unwrap().entries.is_empty());
        assert_eq!(s.read_dir().unwrap_err(), FsError::NotADirectory);
        assert!(matches!(
            s.rename_stream_to_default(true),
            Err(FsError::InvalidParameter(_))
        ));
    }

    #[test]
    fn size_limit_is_no_space() {
        let (_d, root) = share();
        if !root.xattrs_supported() {
            return;
        }
        let (s, _) = root
            .open_stream("f", "big", &opts(Disposition::Create, true))
            .unwrap();
        assert_eq!(s.write_at(b"x", STREAM_SIZE_MAX), Err(FsError::NoSpace));
        assert_eq!(s.set_len(STREAM_SIZE_MAX + 1), Err(FsError::NoSpace));
        // More than ext4 holds in its xattr block: stored whole or refused
        // with NoSpace, never cut.
        let data = vec![7u8; 60_000];
        match s.write_at(&data, 0) {
            Ok(n) => assert_eq!((n, s.meta().unwrap().size), (60_000, 60_000)),
            Err(e) => {
                assert_eq!(e, FsError::NoSpace);
                assert_eq!(s.meta().unwrap().size, 0);
            }
        }
        s.set_len(10).unwrap();
        assert_eq!(s.meta().unwrap().size, 10);
        s.allocate(4).unwrap();
        assert_eq!(s.meta().unwrap().size, 4);
        s.allocate(100).unwrap();
        assert_eq!(s.meta().unwrap().size, 4);
        s.write_at(b"abcdef", 0).unwrap();
        s.zero_range(1, 2, true).unwrap();
        let mut buf = [9u8; 8];
        let n = s.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf[..n], b"a\0\0def");
        assert_eq!(
            s.allocated_ranges(0, 100, 8).unwrap(),
            (vec![(0, 6)], false)
        );
    }

    #[test]
    fn renames() {
        let (d, root) = share();
        if !root.xattrs_supported() {
            return;
        }
        let (a, _) = root
            .open_stream("f", "A", &opts(Disposition::Create, true))
            .unwrap();
        a.write_at(b"alpha", 0).unwrap();
        root.open_stream("f", "B", &opts(Disposition::Create, true))
            .unwrap();
        assert_eq!(a.rename_stream("b", false), Err(FsError::Exists));
        a.rename_stream("C", false).unwrap();
        assert_eq!(a.stream_name().as_deref(), Some("C"));
        a.rename_stream("b", true).unwrap();
        let names: Vec<_> = a.streams().unwrap().into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["b"]);
        let mut buf = [0u8; 8];
        let n = a.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf[..n], b"alpha");
        // Onto the unnamed stream: the file gets the data, the handle is
        // the file's.
        a.rename_stream_to_default(true).unwrap();
        assert_eq!(a.stream_name(), None);
        assert!(a.streams().unwrap().is_empty());
        assert_eq!(std::fs::read(d.path().join("f")).unwrap(), b"alpha");
        assert_eq!(a.meta().unwrap().size, 5);
        let (c, _) = root
            .open_stream("f", "c", &opts(Disposition::Create, true))
            .unwrap();
        assert_eq!(c.rename_stream_to_default(false), Err(FsError::Exists));
    }
}
