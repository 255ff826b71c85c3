//! Behaviour of `duet_hal::fs` on real directories (tempfile dirs, so the
//! filesystem of $TMPDIR: ext4 on the project's machines). Tests that
//! depend on path resolution run twice: with openat2 and with the
//! O_NOFOLLOW walk. Tests run as root, so refusals are provoked with DOS
//! attributes and the immutable flag, not with mode bits.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use duet_hal::fs::{
    dos, ea_size, nt_time, Disposition, Ea, FsError, Handle, Kind, Meta, OpenOptions, ResolveMode,
    SetTimes, ShareRoot, EA_NAME_MAX,
};
use tempfile::TempDir;

// ------------------------------------------------------------------ helpers

fn share(mode: ResolveMode) -> (TempDir, ShareRoot) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = ShareRoot::open_with(dir.path(), mode).expect("open share");
    (dir, s)
}

fn opts(disposition: Disposition, kind: Kind) -> OpenOptions {
    OpenOptions {
        read: true,
        write: true,
        disposition,
        kind,
        ..OpenOptions::default()
    }
}

fn file(disposition: Disposition) -> OpenOptions {
    opts(disposition, Kind::Any)
}

fn open(s: &ShareRoot, path: &str, o: OpenOptions) -> Result<(Handle, bool), FsError> {
    s.open_file(path, &o)
}

fn err(r: Result<(Handle, bool), FsError>) -> FsError {
    match r {
        Ok((h, created)) => panic!("expected an error, got {h:?} created={created}"),
        Err(e) => e,
    }
}

fn put(root: &Path, rel: &str, data: &[u8]) {
    std::fs::write(root.join(rel), data).expect("write fixture");
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL")
}

fn has_duet_xattr(p: &Path) -> bool {
    let mut buf = [0u8; 64];
    // SAFETY: valid path/name strings and a writable buffer.
    let r = unsafe {
        libc::getxattr(
            cpath(p).as_ptr(),
            c"user.duet".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    r >= 0
}

fn set_raw_xattr(p: &Path, name: &std::ffi::CStr, value: &[u8]) -> bool {
    // SAFETY: valid strings and a readable buffer.
    let r = unsafe {
        libc::setxattr(
            cpath(p).as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    r == 0
}

fn raw_blocks(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).expect("metadata").blocks()
}

fn read_all(h: &Handle) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 16];
    let n = h.read_at(&mut buf, 0).expect("read");
    buf.truncate(n);
    buf
}

/// Defines `name::openat2` and `name::walk` running `body` with each
/// resolution mode.
macro_rules! both {
    ($name:ident, $body:path) => {
        mod $name {
            #[test]
            fn openat2() {
                $body(super::ResolveMode::Auto)
            }
            #[test]
            fn walk() {
                $body(super::ResolveMode::Walk)
            }
        }
    };
}

// ------------------------------------------------------------------ opening

fn file_dispositions(mode: ResolveMode) {
    let (tmp, s) = share(mode);
    let r = tmp.path();

    // Open
    assert_eq!(
        err(open(&s, "f", file(Disposition::Open))),
        FsError::NotFound
    );
    // Create
    let (h, created) = open(&s, "f", file(Disposition::Create)).expect("create");
    assert!(created && !h.is_dir());
    h.write_at(b"hello", 0).expect("write");
    assert_eq!(
        err(open(&s, "f", file(Disposition::Create))),
        FsError::Exists
    );
    let (h, created) = open(&s, "f", file(Disposition::Open)).expect("open");
    assert!(!created);
    assert_eq!(read_all(&h), b"hello");
    // OpenIf
    let (h, created) = open(&s, "f", file(Disposition::OpenIf)).expect("openif existing");
    assert!(!created);
    assert_eq!(read_all(&h), b"hello", "OpenIf must not truncate");
    let (_, created) = open(&s, "g", file(Disposition::OpenIf)).expect("openif new");
    assert!(created && r.join("g").is_file());
    // Overwrite
    assert_eq!(
        err(open(&s, "nope", file(Disposition::Overwrite))),
        FsError::NotFound
    );
    let (h, created) = open(&s, "f", file(Disposition::Overwrite)).expect("overwrite");
    assert!(!created);
    assert_eq!(h.meta().expect("meta").size, 0);
    // OverwriteIf
    put(r, "f", b"again");
    let (h, created) = open(&s, "f", file(Disposition::OverwriteIf)).expect("overwriteif existing");
    assert!(!created);
    assert_eq!(h.meta().expect("meta").size, 0);
    let (_, created) = open(&s, "h", file(Disposition::OverwriteIf)).expect("overwriteif new");
    assert!(created && r.join("h").is_file());
    // Supersede
    put(r, "f", b"third");
    let (h, created) = open(&s, "f", file(Disposition::Supersede)).expect("supersede existing");
    assert!(!created);
    assert_eq!(h.meta().expect("meta").size, 0);
    let (_, created) = open(&s, "i", file(Disposition::Supersede)).expect("supersede new");
    assert!(created && r.join("i").is_file());

    // A missing parent is PathNotFound for every disposition; so is a
    // parent that is a file.
    for d in [
        Disposition::Open,
        Disposition::Create,
        Disposition::OpenIf,
        Disposition::Overwrite,
        Disposition::OverwriteIf,
        Disposition::Supersede,
    ] {
        assert_eq!(
            err(open(&s, "missing/x", file(d))),
            FsError::PathNotFound,
            "{d:?}"
        );
        assert_eq!(
            err(open(&s, "f/x", file(d))),
            FsError::PathNotFound,
            "{d:?}"
        );
        assert_eq!(
            err(open(&s, "a/b/c/x", file(d))),
            FsError::PathNotFound,
            "{d:?}"
        );
    }
    assert!(!r.join("missing").exists());
}
both!(file_dispositions_t, super::file_dispositions);

fn directory_dispositions(mode: ResolveMode) {
    let (tmp, s) = share(mode);
    let r = tmp.path();
    let dir = |d| opts(d, Kind::Directory);

    assert_eq!(
        err(open(&s, "d", dir(Disposition::Open))),
        FsError::NotFound
    );
    let (h, created) = open(&s, "d", dir(Disposition::Create)).expect("mkdir");
    assert!(created && h.is_dir() && r.join("d").is_dir());
    assert_eq!(
        err(open(&s, "d", dir(Disposition::Create))),
        FsError::Exists
    );
    let (h, created) = open(&s, "d", dir(Disposition::OpenIf)).expect("openif existing dir");
    assert!(!created && h.is_dir());
    let (h, created) = open(&s, "d/e", dir(Disposition::OpenIf)).expect("openif new dir");
    assert!(created && h.is_dir() && r.join("d/e").is_dir());
    let (h, created) = open(&s, "d", dir(Disposition::Open)).expect("open dir");
    assert!(!created && h.is_dir());
    for d in [
        Disposition::Overwrite,
        Disposition::OverwriteIf,
        Disposition::Supersede,
    ] {
        assert!(
            matches!(err(open(&s, "d", dir(d))), FsError::InvalidParameter(_)),
            "{d:?}"
        );
    }
    assert_eq!(
        err(open(&s, "x/y", dir(Disposition::Create))),
        FsError::PathNotFound
    );
    assert_eq!(
        err(open(&s, "x/y", dir(Disposition::OpenIf))),
        FsError::PathNotFound
    );

    // A file where a directory is wanted, and the reverse.
    put(r, "f", b"data");
    assert_eq!(
        err(open(&s, "f", dir(Disposition::Open))),
        FsError::NotADirectory
    );
    assert_eq!(
        err(open(&s, "f", dir(Disposition::OpenIf))),
        FsError::NotADirectory
    );
    assert_eq!(
        err(open(&s, "f", dir(Disposition::Create))),
        FsError::Exists
    );
    let nondir = |d| opts(d, Kind::NonDirectory);
    assert_eq!(
        err(open(&s, "d", nondir(Disposition::Open))),
        FsError::IsADirectory
    );
    assert_eq!(
        err(open(&s, "d", nondir(Disposition::OpenIf))),
        FsError::IsADirectory
    );
    let ro_nondir = OpenOptions {
        write: false,
        ..nondir(Disposition::Open)
    };
    assert_eq!(err(open(&s, "d", ro_nondir)), FsError::IsADirectory);
    assert_eq!(
        err(open(&s, "d", nondir(Disposition::Create))),
        FsError::Exists
    );
    assert_eq!(
        err(open(&s, "d", file(Disposition::Overwrite))),
        FsError::IsADirectory
    );
    assert_eq!(
        err(open(&s, "d", file(Disposition::OverwriteIf))),
        FsError::IsADirectory
    );
    // Kind::Any opens a directory as a directory, even with write access.
    let (h, _) = open(&s, "d", file(Disposition::Open)).expect("any on dir");
    assert!(h.is_dir());
    assert_eq!(h.write_at(b"x", 0), Err(FsError::IsADirectory));
    let (h, _) = open(&s, "d", file(Disposition::OpenIf)).expect("openif any on dir");
    assert!(h.is_dir());
    // Kind::NonDirectory creates files.
    let (h, created) = open(&s, "d/file", nondir(Disposition::Create)).expect("create nondir");
    assert!(created && !h.is_dir());

    // The root.
    let (h, created) = open(&s, "", dir(Disposition::Open)).expect("root");
    assert!(!created && h.is_dir());
    assert_eq!(err(open(&s, "", dir(Disposition::Create))), FsError::Exists);
    assert_eq!(
        err(open(&s, "", file(Disposition::Create))),
        FsError::Exists
    );
    assert!(s.stat("").expect("stat root").is_dir);
}
both!(directory_dispositions_t, super::directory_dispositions);

fn bad_names(mode: ResolveMode) {
    let (_tmp, s) = share(mode);
    for bad in ["/etc/passwd", "../x", "a/../b", "./a", "a//b", "a/", "a\0b"] {
        assert!(
            matches!(
                err(open(&s, bad, file(Disposition::OpenIf))),
                FsError::InvalidName(_)
            ),
            "{bad:?}"
        );
        assert!(
            matches!(s.stat(bad), Err(FsError::InvalidName(_))),
            "{bad:?}"
        );
    }
    let long = "n".repeat(256);
    assert_eq!(
        err(open(&s, &long, file(Disposition::Create))),
        FsError::NameTooLong
    );
    assert_eq!(s.stat(&long), Err(FsError::NameTooLong));
    let ok = "n".repeat(255);
    assert!(open(&s, &ok, file(Disposition::Create)).is_ok());
}
both!(bad_names_t, super::bad_names);

fn escapes_refused(mode: ResolveMode) {
    let outside = tempfile::tempdir().expect("outside dir");
    put(outside.path(), "secret", b"secret");
    let (tmp, s) = share(mode);
    let r = tmp.path();
    std::fs::create_dir(r.join("sub")).expect("mkdir");
    put(r, "sub/data", b"inside");

    // Absolute symlink to /etc.
    symlink("/etc", r.join("etc")).expect("symlink");
    assert_eq!(
        err(open(&s, "etc/passwd", file(Disposition::Open))),
        FsError::OutsideShare
    );
    assert_eq!(s.stat("etc/passwd"), Err(FsError::OutsideShare));
    assert_eq!(s.stat("etc"), Err(FsError::OutsideShare));
    assert_eq!(
        err(open(&s, "etc", opts(Disposition::Open, Kind::Directory))),
        FsError::OutsideShare
    );
    // Absolute symlink pointing inside is refused too (RESOLVE_BENEATH).
    symlink(r.join("sub/data"), r.join("abs_inside")).expect("symlink");
    assert_eq!(s.stat("abs_inside"), Err(FsError::OutsideShare));

    // A relative chain leading out: hop1 -> sub/hop2 -> ../../<outside>.
    let rel_out = format!(
        "../../{}",
        outside
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
    );
    symlink(&rel_out, r.join("sub/hop2")).expect("symlink");
    symlink("sub/hop2", r.join("hop1")).expect("symlink");
    assert_eq!(
        err(open(&s, "hop1/secret", file(Disposition::Open))),
        FsError::OutsideShare
    );
    assert_eq!(s.stat("hop1"), Err(FsError::OutsideShare));
    // Nothing is created, renamed or removed through it.
    assert_eq!(
        err(open(&s, "hop1/new", file(Disposition::Create))),
        FsError::OutsideShare
    );
    assert_eq!(
        err(open(
            &s,
            "hop1/newdir",
            opts(Disposition::Create, Kind::Directory)
        )),
        FsError::OutsideShare
    );
    assert!(!outside.path().join("new").exists() && !outside.path().join("newdir").exists());
    assert_eq!(s.unlink("hop1/secret"), Err(FsError::OutsideShare));
    assert_eq!(
        s.rename("sub/data", "hop1/stolen", false),
        Err(FsError::OutsideShare)
    );
    assert_eq!(
        s.rename("hop1/secret", "got", false),
        Err(FsError::OutsideShare)
    );
    assert!(outside.path().join("secret").exists() && !outside.path().join("stolen").exists());
    // `..` in a link target that climbs above the root.
    symlink("../..", r.join("sub/up")).expect("symlink");
    assert_eq!(s.stat("sub/up"), Err(FsError::OutsideShare));
    // A last-component link to a file outside, opened with creation.
    symlink(format!("{rel_out}/secret"), r.join("sub/lastout")).expect("symlink");
    assert_eq!(
        err(open(&s, "sub/lastout", file(Disposition::OverwriteIf))),
        FsError::OutsideShare
    );
    assert_eq!(
        std::fs::read(outside.path().join("secret")).expect("read"),
        b"secret"
    );

    // Links that stay inside are followed.
    symlink("../sub/data", r.join("sub/self")).expect("symlink");
    symlink("sub", r.join("dirlink")).expect("symlink");
    symlink("dirlink/self", r.join("chain")).expect("symlink");
    for p in ["sub/self", "dirlink/data", "chain", "dirlink/self"] {
        let (h, _) = open(&s, p, file(Disposition::Open)).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(read_all(&h), b"inside", "{p}");
        assert_eq!(s.stat(p).expect("stat").size, 6, "{p}");
    }
    let (h, _) = open(&s, "dirlink", opts(Disposition::Open, Kind::Directory)).expect("dir link");
    assert!(h.is_dir());
    let (_, created) = open(&s, "dirlink/new", file(Disposition::Create)).expect("create via link");
    assert!(created && r.join("sub/new").is_file());

    // A loop.
    symlink("loop2", r.join("loop1")).expect("symlink");
    symlink("loop1", r.join("loop2")).expect("symlink");
    assert_eq!(s.stat("loop1"), Err(FsError::SymlinkLoop));
}
both!(escapes_refused_t, super::escapes_refused);

fn rename_and_remove(mode: ResolveMode) {
    let (tmp, s) = share(mode);
    let r = tmp.path();
    put(r, "a", b"A");
    put(r, "b", b"B");
    std::fs::create_dir_all(r.join("d/inner")).expect("mkdir");
    std::fs::create_dir(r.join("empty")).expect("mkdir");

    // Without replace.
    assert_eq!(s.rename("a", "b", false), Err(FsError::Exists));
    assert_eq!(std::fs::read(r.join("a")).expect("a"), b"A");
    assert_eq!(std::fs::read(r.join("b")).expect("b"), b"B");
    s.rename("a", "d/a2", false).expect("rename into dir");
    assert!(!r.join("a").exists() && r.join("d/a2").exists());
    // With replace.
    s.rename("d/a2", "b", true).expect("replace");
    assert_eq!(std::fs::read(r.join("b")).expect("b"), b"A");
    assert!(!r.join("d/a2").exists());
    // Errors.
    assert_eq!(s.rename("nope", "x", false), Err(FsError::NotFound));
    assert_eq!(s.rename("nope", "x", true), Err(FsError::NotFound));
    assert_eq!(
        s.rename("b", "missing/x", false),
        Err(FsError::PathNotFound)
    );
    assert_eq!(
        s.rename("missing/b", "x", false),
        Err(FsError::PathNotFound)
    );
    assert!(matches!(
        s.rename("d", "d/inner/d", false),
        Err(FsError::InvalidParameter(_))
    ));
    assert_eq!(s.rename("empty", "d", true), Err(FsError::NotEmpty));
    assert_eq!(s.rename("b", "d", true), Err(FsError::IsADirectory));
    assert_eq!(s.rename("empty", "b", true), Err(FsError::NotADirectory));
    assert!(matches!(
        s.rename("", "x", false),
        Err(FsError::InvalidParameter(_))
    ));
    // Directory rename.
    s.rename("d", "d2", false).expect("rename dir");
    assert!(r.join("d2/inner").is_dir());

    // Removal.
    assert_eq!(s.rmdir("d2"), Err(FsError::NotEmpty));
    assert!(r.join("d2").is_dir());
    s.rmdir("d2/inner").expect("rmdir inner");
    s.rmdir("d2").expect("rmdir");
    assert!(!r.join("d2").exists());
    assert_eq!(s.rmdir("b"), Err(FsError::NotADirectory));
    assert_eq!(s.unlink("empty"), Err(FsError::IsADirectory));
    assert_eq!(s.unlink("nope"), Err(FsError::NotFound));
    assert_eq!(s.rmdir("nope"), Err(FsError::NotFound));
    assert_eq!(s.unlink("missing/x"), Err(FsError::PathNotFound));
    assert!(matches!(s.unlink(""), Err(FsError::InvalidParameter(_))));
    assert!(matches!(s.rmdir(""), Err(FsError::InvalidParameter(_))));
    s.unlink("b").expect("unlink");
    assert!(!r.join("b").exists());
    // Unlinking a symlink removes the link, not its target.
    put(r, "t", b"T");
    symlink("t", r.join("l")).expect("symlink");
    s.unlink("l").expect("unlink link");
    assert!(r.join("t").exists());
}
both!(rename_and_remove_t, super::rename_and_remove);

#[test]
fn special_files_are_refused_without_blocking() {
    let (tmp, s) = share(ResolveMode::Auto);
    let p = cpath(&tmp.path().join("fifo"));
    // SAFETY: valid path string.
    assert_eq!(unsafe { libc::mkfifo(p.as_ptr(), 0o644) }, 0);
    // Without O_NONBLOCK, a read-only open of a FIFO would hang here.
    let ro = OpenOptions {
        write: false,
        ..file(Disposition::Open)
    };
    assert_eq!(err(open(&s, "fifo", ro)), FsError::SpecialFile);
    assert_eq!(
        err(open(&s, "fifo", file(Disposition::Open))),
        FsError::SpecialFile
    );
    assert_eq!(s.stat("fifo"), Err(FsError::SpecialFile));
}

#[test]
fn resolve_modes_are_what_they_say() {
    let (_t, auto) = share(ResolveMode::Auto);
    auto.stat("").expect("stat root");
    assert!(auto.uses_openat2(), "this kernel has openat2");
    let (_t, walk) = share(ResolveMode::Walk);
    walk.stat("").expect("stat root");
    assert!(!walk.uses_openat2());
    assert!(auto.xattrs_supported());
}

#[test]
fn share_open_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    assert_eq!(
        ShareRoot::open(&tmp.path().join("nope")).err(),
        Some(FsError::NotFound)
    );
    put(tmp.path(), "f", b"");
    assert_eq!(
        ShareRoot::open(&tmp.path().join("f")).err(),
        Some(FsError::NotADirectory)
    );
}

// ------------------------------------------------------------------ data

#[test]
fn read_write_set_len_round_trips() {
    let (_tmp, s) = share(ResolveMode::Auto);
    let (h, _) = open(&s, "f", file(Disposition::Create)).expect("create");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    assert_eq!(h.write_at(&data, 0).expect("write"), data.len());
    assert_eq!(h.write_at(b"XYZ", 500_000).expect("write"), 3);
    let mut back = vec![0u8; data.len()];
    assert_eq!(h.read_at(&mut back, 0).expect("read"), data.len());
    let mut want = data.clone();
    want[500_000..500_003].copy_from_slice(b"XYZ");
    assert_eq!(back, want);
    // Short read only at EOF.
    let mut tail = [0u8; 100];
    assert_eq!(
        h.read_at(&mut tail, data.len() as u64 - 10).expect("read"),
        10
    );
    assert_eq!(
        h.read_at(&mut tail, data.len() as u64 + 10).expect("read"),
        0
    );
    // Writing past EOF leaves a zero gap.
    h.write_at(b"end", 2_000_000).expect("write past eof");
    assert_eq!(h.meta().expect("meta").size, 2_000_003);
    let mut gap = [1u8; 16];
    h.read_at(&mut gap, 1_500_000).expect("read gap");
    assert_eq!(gap, [0u8; 16]);
    // set_len shrink and grow.
    h.set_len(10).expect("shrink");
    assert_eq!(h.meta().expect("meta").size, 10);
    h.set_len(4096 * 3).expect("grow");
    let mut g = vec![9u8; 4096 * 3];
    assert_eq!(h.read_at(&mut g, 0).expect("read"), 4096 * 3);
    assert_eq!(&g[..10], &want[..10]);
    assert!(g[10..].iter().all(|&b| b == 0));
    h.sync().expect("fsync");
    // Offsets beyond what a file can hold are refused, not panics.
    assert_eq!(h.write_at(b"x", u64::MAX), Err(FsError::FileTooLarge));
    assert!(h.read_at(&mut g, u64::MAX).is_err());

    // Access follows the open.
    let ro = OpenOptions {
        write: false,
        ..file(Disposition::Open)
    };
    let (r, _) = open(&s, "f", ro).expect("read-only");
    assert_eq!(r.write_at(b"no", 0), Err(FsError::AccessDenied));
    assert_eq!(r.set_len(0), Err(FsError::AccessDenied));
    let wo = OpenOptions {
        read: false,
        ..file(Disposition::Open)
    };
    let (w, _) = open(&s, "f", wo).expect("write-only");
    let mut b = [0u8; 4];
    assert_eq!(w.read_at(&mut b, 0), Err(FsError::AccessDenied));
    w.write_at(b"ok", 0).expect("write-only write");
}

#[test]
fn allocation_size_semantics() {
    let (tmp, s) = share(ResolveMode::Auto);
    let (h, _) = open(&s, "f", file(Disposition::Create)).expect("create");
    h.write_at(&[7u8; 10_000], 0).expect("write");
    h.sync().expect("sync");
    let m = h.meta().expect("meta");
    assert_eq!(m.size, 10_000);
    assert_eq!(m.allocation, 12_288, "three 4 KiB blocks of data");

    // Growing reserves space and keeps the size.
    h.allocate(1 << 20).expect("allocate 1 MiB");
    let m = h.meta().expect("meta");
    assert_eq!(m.size, 10_000);
    assert!(m.allocation >= 1 << 20, "allocation {}", m.allocation);
    assert_eq!(
        std::fs::metadata(tmp.path().join("f")).expect("md").len(),
        10_000
    );
    // Down to the size again releases the preallocation.
    h.allocate(10_000).expect("allocate down to EOF");
    let m = h.meta().expect("meta");
    assert_eq!((m.size, m.allocation), (10_000, 12_288));
    // Below EOF truncates (MS-FSA).
    h.allocate(4096).expect("allocate below EOF");
    let m = h.meta().expect("meta");
    assert_eq!((m.size, m.allocation), (4096, 4096));
    assert_eq!(read_all(&h), vec![7u8; 4096]);
    h.allocate(0).expect("allocate 0");
    let m = h.meta().expect("meta");
    assert_eq!((m.size, m.allocation), (0, 0));
    // Directories have none.
    let (d, _) = open(&s, "d", opts(Disposition::Create, Kind::Directory)).expect("mkdir");
    assert_eq!(d.allocate(10), Err(FsError::IsADirectory));
    assert_eq!(d.set_len(10), Err(FsError::IsADirectory));
    let dm = d.meta().expect("dir meta");
    assert_eq!((dm.size, dm.allocation), (0, 0));
}

// ------------------------------------------------------------------ metadata

#[test]
fn dos_attributes_defaults_and_persistence() {
    let (tmp, s) = share(ResolveMode::Auto);
    let r = tmp.path();
    // Defaults cost no xattr.
    let (h, _) = open(&s, "plain", file(Disposition::Create)).expect("create");
    assert_eq!(h.meta().expect("meta").dos_attributes, dos::ARCHIVE);
    assert!(
        !has_duet_xattr(&r.join("plain")),
        "default file must carry no xattr"
    );
    let (d, _) = open(&s, "dir", opts(Disposition::Create, Kind::Directory)).expect("mkdir");
    assert_eq!(d.meta().expect("meta").dos_attributes, dos::DIRECTORY);
    assert!(!has_duet_xattr(&r.join("dir")));
    // NORMAL on create means "nothing special": still ARCHIVE, no xattr.
    let o = OpenOptions {
        attributes_on_create: dos::NORMAL,
        ..file(Disposition::Create)
    };
    open(&s, "normal", o).expect("create normal");
    assert!(!has_duet_xattr(&r.join("normal")));
    // A file made outside the server has the defaults too.
    put(r, "foreign", b"x");
    assert_eq!(
        s.stat("foreign").expect("stat").dos_attributes,
        dos::ARCHIVE
    );

    // Attributes on create persist across handles.
    let o = OpenOptions {
        attributes_on_create: dos::HIDDEN | dos::DIRECTORY,
        ..file(Disposition::Create)
    };
    open(&s, "hidden", o).expect("create hidden");
    assert_eq!(
        s.stat("hidden").expect("stat").dos_attributes,
        dos::HIDDEN | dos::ARCHIVE
    );
    let o = OpenOptions {
        attributes_on_create: dos::SYSTEM,
        ..opts(Disposition::Create, Kind::Directory)
    };
    open(&s, "sysdir", o).expect("create dir");
    assert_eq!(
        s.stat("sysdir").expect("stat").dos_attributes,
        dos::SYSTEM | dos::DIRECTORY
    );

    // set_dos_attributes, read back through another handle.
    h.set_dos_attributes(dos::READONLY | dos::SYSTEM | dos::NORMAL | 0x0004_0000)
        .expect("set");
    let (h2, _) = open(
        &s,
        "plain",
        OpenOptions {
            write: false,
            ..file(Disposition::Open)
        },
    )
    .expect("reopen");
    assert_eq!(
        h2.meta().expect("meta").dos_attributes,
        dos::READONLY | dos::SYSTEM
    );
    assert!(has_duet_xattr(&r.join("plain")));
    h2.set_dos_attributes(0).expect("clear");
    assert_eq!(h.meta().expect("meta").dos_attributes, dos::NORMAL);
    h2.set_dos_attributes(dos::ARCHIVE)
        .expect("back to default");
    assert_eq!(s.stat("plain").expect("stat").dos_attributes, dos::ARCHIVE);
    assert!(
        !has_duet_xattr(&r.join("plain")),
        "back at the default, the xattr goes away"
    );
    d.set_dos_attributes(dos::HIDDEN | dos::DIRECTORY)
        .expect("dir attrs");
    assert_eq!(
        s.stat("dir").expect("stat").dos_attributes,
        dos::HIDDEN | dos::DIRECTORY
    );
    assert!(matches!(
        h.set_dos_attributes(dos::DIRECTORY),
        Err(FsError::InvalidParameter(_))
    ));
    assert!(matches!(
        d.set_dos_attributes(dos::TEMPORARY),
        Err(FsError::InvalidParameter(_))
    ));

    // A foreign or corrupt value is ignored, then replaced.
    assert!(set_raw_xattr(&r.join("foreign"), c"user.duet", &[9, 9, 9]));
    assert_eq!(
        s.stat("foreign").expect("stat").dos_attributes,
        dos::ARCHIVE
    );
    let (f, _) = open(&s, "foreign", file(Disposition::Open)).expect("open");
    f.set_dos_attributes(dos::HIDDEN).expect("set");
    assert_eq!(s.stat("foreign").expect("stat").dos_attributes, dos::HIDDEN);
}

#[test]
fn readonly_hidden_and_system_rules() {
    let (_tmp, s) = share(ResolveMode::Auto);
    let (h, _) = open(&s, "ro", file(Disposition::Create)).expect("create");
    h.write_at(b"keep", 0).expect("write");
    h.set_dos_attributes(dos::READONLY).expect("readonly");
    // The creating handle keeps its access; new writers are refused.
    h.write_at(b"K", 0).expect("existing handle still writes");
    assert_eq!(
        err(open(&s, "ro", file(Disposition::Open))),
        FsError::AccessDenied
    );
    assert_eq!(
        err(open(&s, "ro", file(Disposition::OpenIf))),
        FsError::AccessDenied
    );
    assert_eq!(
        err(open(&s, "ro", file(Disposition::Overwrite))),
        FsError::AccessDenied
    );
    assert_eq!(
        err(open(&s, "ro", file(Disposition::Supersede))),
        FsError::AccessDenied
    );
    let ro = OpenOptions {
        write: false,
        ..file(Disposition::Open)
    };
    let (r, _) = open(&s, "ro", ro).expect("reading is fine");
    assert_eq!(read_all(&r), b"Keep");

    // HIDDEN/SYSTEM files are overwritten only by asking for them again.
    let o = OpenOptions {
        attributes_on_create: dos::HIDDEN | dos::SYSTEM,
        ..file(Disposition::Create)
    };
    let (h, _) = open(&s, "hs", o).expect("create");
    h.write_at(b"data", 0).expect("write");
    assert_eq!(
        err(open(&s, "hs", file(Disposition::Overwrite))),
        FsError::AccessDenied
    );
    let only_hidden = OpenOptions {
        attributes_on_create: dos::HIDDEN,
        ..file(Disposition::OverwriteIf)
    };
    assert_eq!(err(open(&s, "hs", only_hidden)), FsError::AccessDenied);
    assert_eq!(
        s.stat("hs").expect("stat").size,
        4,
        "refused overwrite must not truncate"
    );
    let both_again = OpenOptions {
        attributes_on_create: dos::HIDDEN | dos::SYSTEM | dos::TEMPORARY,
        ..file(Disposition::Overwrite)
    };
    let (_h, created) = open(&s, "hs", both_again).expect("overwrite");
    assert!(!created);
    let m = s.stat("hs").expect("stat");
    assert_eq!(m.size, 0);
    assert_eq!(
        m.dos_attributes,
        dos::HIDDEN | dos::SYSTEM | dos::TEMPORARY | dos::ARCHIVE
    );
    // Overwrite replaces the attributes with the ones given (+ARCHIVE).
    let (p, _) = open(&s, "p", file(Disposition::Create)).expect("create");
    p.set_dos_attributes(dos::ARCHIVE | dos::NOT_CONTENT_INDEXED)
        .expect("set");
    open(&s, "p", file(Disposition::Supersede)).expect("supersede");
    assert_eq!(s.stat("p").expect("stat").dos_attributes, dos::ARCHIVE);
}

#[test]
fn immutable_file_gives_access_denied_even_to_root() {
    const FS_IMMUTABLE_FL: libc::c_long = 0x10;
    let (tmp, s) = share(ResolveMode::Auto);
    put(tmp.path(), "imm", b"x");
    let f = std::fs::File::open(tmp.path().join("imm")).expect("open");
    let set = |flags: libc::c_long| {
        use std::os::fd::AsRawFd;
        // SAFETY: FS_IOC_SETFLAGS reads a long from the pointer.
        unsafe {
            libc::ioctl(
                f.as_raw_fd(),
                libc::FS_IOC_SETFLAGS,
                &flags as *const libc::c_long,
            )
        }
    };
    if set(FS_IMMUTABLE_FL) != 0 {
        eprintln!("immutable flag unsupported here; test skipped");
        return;
    }
    let results = (
        s.unlink("imm"),
        open(&s, "imm", file(Disposition::Open)).map(|_| ()),
        s.rename("imm", "other", false),
    );
    assert_eq!(set(0), 0, "clear the flag so the tempdir can go");
    assert_eq!(results.0, Err(FsError::AccessDenied));
    assert_eq!(results.1, Err(FsError::AccessDenied));
    assert_eq!(results.2, Err(FsError::AccessDenied));
}

#[test]
fn created_objects_get_exactly_the_mode_given() {
    let (tmp, s) = share(ResolveMode::Auto);
    let r = tmp.path();
    let mode_of = |p: &str| {
        std::fs::metadata(r.join(p))
            .expect("md")
            .permissions()
            .mode()
            & 0o7777
    };
    for (name, m) in [("a", 0o666), ("b", 0o640), ("c", 0o600)] {
        open(
            &s,
            name,
            OpenOptions {
                mode: m,
                ..file(Disposition::Create)
            },
        )
        .expect("create");
        assert_eq!(mode_of(name), m, "{name}");
    }
    open(
        &s,
        "d",
        OpenOptions {
            mode: 0o777,
            ..opts(Disposition::Create, Kind::Directory)
        },
    )
    .expect("mkdir");
    assert_eq!(mode_of("d"), 0o777);
    // A setgid parent's bit is inherited by new directories and kept.
    std::fs::set_permissions(r.join("d"), std::fs::Permissions::from_mode(0o2775)).expect("chmod");
    open(
        &s,
        "d/e",
        OpenOptions {
            mode: 0o750,
            ..opts(Disposition::Create, Kind::Directory)
        },
    )
    .expect("mkdir");
    assert_eq!(mode_of("d/e"), 0o2750);
    // A read-only file on create keeps its mode (READONLY lives in the xattr).
    let o = OpenOptions {
        attributes_on_create: dos::READONLY,
        mode: 0o644,
        ..file(Disposition::Create)
    };
    let (h, _) = open(&s, "rof", o).expect("create");
    assert_eq!(mode_of("rof"), 0o644);
    h.write_at(b"creator may write", 0).expect("write");
    assert_eq!(
        s.stat("rof").expect("stat").dos_attributes,
        dos::READONLY | dos::ARCHIVE
    );
}

fn alloc_of(s: &ShareRoot, p: &str) -> u64 {
    s.stat(p).expect("stat").allocation
}

#[test]
fn metadata_does_not_add_allocation() {
    let (tmp, s) = share(ResolveMode::Auto);
    let r = tmp.path();
    let mk = |name: &str, len: usize| {
        let (h, _) = open(&s, name, file(Disposition::Create)).expect("create");
        h.write_at(&vec![1u8; len], 0).expect("write");
        h.sync().expect("sync");
        h
    };
    let plain = mk("plain", 1);
    let base = plain.meta().expect("meta").allocation;
    assert!(base > 0 && base <= 65536, "1-byte file allocation {base}");

    // With attributes and a creation time stored.
    let rich = mk("rich", 1);
    rich.set_dos_attributes(dos::HIDDEN | dos::SYSTEM | dos::READONLY)
        .expect("attrs");
    rich.set_times(&SetTimes {
        creation: Some(nt_time::from_unix(1_000_000_000, 0)),
        ..Default::default()
    })
    .expect("times");
    assert!(has_duet_xattr(&r.join("rich")));
    assert_eq!(rich.meta().expect("meta").allocation, base);
    assert_eq!(alloc_of(&s, "rich"), base);
    assert_eq!(
        raw_blocks(&r.join("rich")),
        raw_blocks(&r.join("plain")),
        "xattr stays in the inode"
    );

    // Even when xattrs spill into an external block (too big for the
    // inode), AllocationSize reports the data only.
    let big = mk("big", 1);
    big.set_dos_attributes(dos::HIDDEN).expect("attrs");
    let pad = vec![b'p'; 3000];
    assert!(
        set_raw_xattr(&r.join("big"), c"user.pad", &pad),
        "setxattr user.pad"
    );
    let spilled = raw_blocks(&r.join("big")) > raw_blocks(&r.join("plain"));
    assert_eq!(big.meta().expect("meta").allocation, base);
    assert_eq!(alloc_of(&s, "big"), base);
    // And a 0-byte file reports 0.
    let empty = mk("empty", 0);
    empty.set_dos_attributes(dos::HIDDEN).expect("attrs");
    assert!(set_raw_xattr(&r.join("empty"), c"user.pad", &pad));
    assert_eq!(empty.meta().expect("meta").allocation, 0);
    assert_eq!(alloc_of(&s, "empty"), 0);
    if !spilled {
        eprintln!("note: this filesystem kept a 3000-byte xattr without a block");
    }
    // The listing agrees.
    let (root, _) = open(&s, "", opts(Disposition::Open, Kind::Directory)).expect("root");
    let listing = root.read_dir().expect("read_dir");
    for e in &listing.entries {
        let want = if e.name == "empty" { 0 } else { base };
        assert_eq!(e.meta.allocation, want, "{}", e.name);
    }
    assert_eq!(listing.entries.len(), 4);
}

#[test]
fn times_set_and_read_back() {
    let (tmp, s) = share(ResolveMode::Auto);
    let (h, _) = open(&s, "f", file(Disposition::Create)).expect("create");
    let before = h.meta().expect("meta");
    assert!(before.creation_time > nt_time::from_unix(1_600_000_000, 0));
    assert!(before.creation_time <= before.write_time);

    let access = nt_time::from_unix(1_500_000_000, 123_456_700);
    let write = nt_time::from_unix(-86_400 * 365, 500); // 1969
    let creation = nt_time::from_unix(946_684_800, 100); // 2000-01-01
    h.set_times(&SetTimes {
        creation: Some(creation),
        access: Some(access),
        write: Some(write),
        change: Some(1),
    })
    .expect("set times");
    let (h2, _) = open(&s, "f", file(Disposition::Open)).expect("reopen");
    let m = h2.meta().expect("meta");
    assert_eq!(m.access_time, access);
    assert_eq!(m.write_time, nt_time::from_unix(-86_400 * 365, 500));
    assert_eq!(m.creation_time, creation);
    assert_eq!(m.change_time, 1, "a set change time reads back");
    // Partial updates leave the rest alone; a new write time moves mtime,
    // so the real ctime shows again.
    let w2 = nt_time::from_unix(1_700_000_000, 0);
    h2.set_times(&SetTimes {
        write: Some(w2),
        ..Default::default()
    })
    .expect("set write");
    let m = s.stat("f").expect("stat");
    assert_eq!(
        (m.access_time, m.write_time, m.creation_time),
        (access, w2, creation)
    );
    assert!(m.change_time > nt_time::from_unix(1_600_000_000, 0));
    // Setting the creation time back to the birth time drops the stored one.
    h2.set_times(&SetTimes {
        creation: Some(before.creation_time),
        ..Default::default()
    })
    .expect("reset creation");
    assert_eq!(
        s.stat("f").expect("stat").creation_time,
        before.creation_time
    );
    assert!(
        !has_duet_xattr(&tmp.path().join("f")),
        "birth time again: nothing stored"
    );
    // Directories too.
    let (d, _) = open(&s, "d", opts(Disposition::Create, Kind::Directory)).expect("mkdir");
    d.set_times(&SetTimes {
        creation: Some(creation),
        write: Some(w2),
        ..Default::default()
    })
    .expect("dir times");
    let m = s.stat("d").expect("stat");
    assert_eq!((m.creation_time, m.write_time), (creation, w2));
}

#[test]
fn change_time_reads_back_until_the_data_changes() {
    let (_tmp, s) = share(ResolveMode::Auto);
    let (h, _) = open(&s, "f", file(Disposition::Create)).expect("create");
    h.write_at(b"abc", 0).expect("write");
    let change = nt_time::from_unix(1_000_000_000, 700);
    let write = nt_time::from_unix(1_100_000_000, 0);
    // All four times at once, as smbtorture's complex-file setup does.
    h.set_times(&SetTimes {
        creation: Some(nt_time::from_unix(1_200_000_000, 0)),
        access: Some(nt_time::from_unix(1_300_000_000, 0)),
        write: Some(write),
        change: Some(change),
    })
    .expect("set times");
    assert_eq!(h.meta().expect("meta").change_time, change);
    assert_eq!(s.stat("f").expect("stat").change_time, change);
    // Metadata changes keep it.
    h.set_dos_attributes(dos::HIDDEN).expect("attrs");
    h.set_eas(&[ea("A", b"1")]).expect("eas");
    let m = h.meta().expect("meta");
    assert_eq!((m.change_time, m.write_time), (change, write));
    // So does the listing.
    let (root, _) = open(&s, "", opts(Disposition::Open, Kind::Directory)).expect("root");
    let l = root.read_dir().expect("read_dir");
    assert_eq!(l.entries[0].meta.change_time, change);
    // A data write moves mtime: the real ctime is back.
    std::thread::sleep(std::time::Duration::from_millis(20));
    h.write_at(b"d", 3).expect("write");
    let m = h.meta().expect("meta");
    assert_ne!(m.change_time, change);
    assert!(m.change_time >= m.write_time && m.write_time > write);
    // Set it again with the change time only: keyed to the current mtime.
    h.set_times(&SetTimes {
        change: Some(change),
        ..Default::default()
    })
    .expect("change only");
    assert_eq!(h.meta().expect("meta").change_time, change);
    std::thread::sleep(std::time::Duration::from_millis(20));
    h.set_len(1).expect("truncate");
    assert_ne!(h.meta().expect("meta").change_time, change);
}

fn ea(name: &str, value: &[u8]) -> Ea {
    Ea {
        name: name.into(),
        value: value.to_vec(),
        flags: 0,
    }
}

#[test]
fn extended_attributes_set_replace_remove() {
    let (tmp, s) = share(ResolveMode::Auto);
    let (h, _) = open(&s, "f", file(Disposition::Create)).expect("create");
    assert_eq!(h.eas().expect("eas"), vec![]);
    assert_eq!(h.meta().expect("meta").ea_size, 0);
    h.set_eas(&[ea("SecondEA", b"ValueTwo"), ea("EAONE", b"VALUE1")])
        .expect("set");
    let got = h.eas().expect("eas");
    assert_eq!(
        got,
        vec![ea("EAONE", b"VALUE1"), ea("SECONDEA", b"ValueTwo")]
    );
    assert_eq!(h.meta().expect("meta").ea_size, ea_size(&got));
    assert_eq!(ea_size(&got), 41);
    // Stored as one xattr each, flags byte first.
    let mut buf = [0u8; 16];
    // SAFETY: valid strings and a writable buffer.
    let n = unsafe {
        libc::getxattr(
            cpath(&tmp.path().join("f")).as_ptr(),
            c"user.duet.ea.SECONDEA".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(&buf[..n as usize], b"\0ValueTwo");
    // Names are case-insensitive: this replaces SECONDEA; flags are kept.
    h.set_eas(&[Ea {
        name: "secondea".into(),
        value: b"v2".to_vec(),
        flags: 0x80,
    }])
    .expect("replace");
    let got = h.eas().expect("eas");
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[1].name.as_str(), &got[1].value[..], got[1].flags),
        ("SECONDEA", &b"v2"[..], 0x80)
    );
    // An empty value removes; removing a missing EA is fine.
    h.set_eas(&[ea("eaone", b""), ea("NOPE", b"")])
        .expect("remove");
    let got = h.eas().expect("eas");
    assert_eq!(got.len(), 1);
    assert_eq!(h.meta().expect("meta").ea_size, 4 + 4 + 8 + 1 + 2);
    // Later changes in one call win over earlier ones.
    h.set_eas(&[ea("X", b"1"), ea("x", b"")])
        .expect("set+remove");
    assert_eq!(h.eas().expect("eas").len(), 1);
    // The listing reports the size without reading EAs; other handles see them.
    let (root, _) = open(&s, "", opts(Disposition::Open, Kind::Directory)).expect("root");
    let l = root.read_dir().expect("read_dir");
    assert_eq!(l.entries[0].meta.ea_size, 19);
    let (h2, _) = open(&s, "f", file(Disposition::Open)).expect("reopen");
    assert_eq!(h2.eas().expect("eas")[0].value, b"v2");
    // Removing the last one removes the size too.
    h.set_eas(&[ea("SECONDEA", b"")]).expect("remove last");
    assert_eq!(h.meta().expect("meta").ea_size, 0);
    assert!(
        !has_duet_xattr(&tmp.path().join("f")),
        "nothing left to store"
    );
    // Directories have EAs too.
    let (d, _) = open(&s, "d", opts(Disposition::Create, Kind::Directory)).expect("mkdir");
    d.set_eas(&[ea("DIR", b"yes")]).expect("dir eas");
    assert_eq!(d.eas().expect("eas"), vec![ea("DIR", b"yes")]);
}

#[test]
fn extended_attribute_limits() {
    let (_tmp, s) = share(ResolveMode::Auto);
    let (h, _) = open(&s, "f", file(Disposition::Create)).expect("create");
    h.set_eas(&[ea("KEEP", b"k")]).expect("set");
    assert!(matches!(
        h.set_eas(&[ea("", b"x")]),
        Err(FsError::InvalidParameter(_))
    ));
    assert!(matches!(
        h.set_eas(&[ea(&"N".repeat(EA_NAME_MAX + 1), b"x")]),
        Err(FsError::InvalidParameter(_))
    ));
    h.set_eas(&[ea(&"N".repeat(EA_NAME_MAX), b"x")])
        .expect("longest name");
    assert_eq!(
        h.set_eas(&[ea("BIG", &vec![0u8; 65536])]),
        Err(FsError::EaTooLarge)
    );
    // More than the list may hold: refused before anything is written.
    let many: Vec<Ea> = (0..20)
        .map(|i| ea(&format!("E{i}"), &[1u8; 4000]))
        .collect();
    assert_eq!(h.set_eas(&many), Err(FsError::EaTooLarge));
    // More than ext4 keeps beside the inode (one block): refused, and
    // what was written of the call is undone.
    let r = h.set_eas(&[ea("A1", &[1u8; 3000]), ea("A2", &[2u8; 3000])]);
    if r.is_err() {
        assert_eq!(r, Err(FsError::EaTooLarge));
        let names: Vec<String> = h.eas().expect("eas").into_iter().map(|e| e.name).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&"KEEP".to_string()));
    }
}

#[test]
fn read_dir_lists_metadata() {
    let outside = tempfile::tempdir().expect("outside");
    let (tmp, s) = share(ResolveMode::Auto);
    let r = tmp.path();
    let o = OpenOptions {
        attributes_on_create: dos::HIDDEN,
        ..file(Disposition::Create)
    };
    let (f, _) = open(&s, "d/file.txt", o).err().map(|_| ()).map_or_else(
        || panic!("parent missing must fail"),
        |_| {
            std::fs::create_dir(r.join("d")).expect("mkdir");
            open(&s, "d/file.txt", o).expect("create")
        },
    );
    f.write_at(b"12345", 0).expect("write");
    let creation = nt_time::from_unix(1_234_567_890, 0);
    f.set_times(&SetTimes {
        creation: Some(creation),
        ..Default::default()
    })
    .expect("times");
    open(&s, "d/sub", opts(Disposition::Create, Kind::Directory)).expect("mkdir");
    open(&s, "d/é ünïcode", file(Disposition::Create)).expect("create");
    symlink("file.txt", r.join("d/link")).expect("symlink");
    symlink("../d/sub", r.join("d/dirlink")).expect("symlink");
    symlink("/etc/passwd", r.join("d/abs")).expect("symlink");
    symlink(outside.path(), r.join("d/out")).expect("symlink");
    symlink("../../../../../../../../tmp", r.join("d/up")).expect("symlink");
    symlink("nothing-here", r.join("d/dangling")).expect("symlink");
    let bad = r
        .join("d")
        .join(std::ffi::OsStr::from_bytes(b"bad-\xff-name"));
    std::fs::write(&bad, b"x").expect("non-utf8 name");
    let fifo = cpath(&r.join("d/fifo"));
    // SAFETY: valid path string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);

    let (dh, _) = open(&s, "d", opts(Disposition::Open, Kind::Directory)).expect("open dir");
    let l = dh.read_dir().expect("read_dir");
    let mut names: Vec<&str> = l.entries.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["dirlink", "file.txt", "link", "sub", "é ünïcode"]);
    assert_eq!(l.skipped_non_utf8, 1);
    assert_eq!(l.skipped_unreachable, 4, "abs, out, up, dangling");
    assert_eq!(l.skipped_special, 1);
    assert_eq!((l.skipped_vanished, l.skipped_errors), (0, 0));

    let get = |n: &str| -> Meta {
        l.entries
            .iter()
            .find(|e| e.name == n)
            .map(|e| e.meta)
            .expect("entry")
    };
    let file_meta = get("file.txt");
    assert_eq!(file_meta.size, 5);
    assert_eq!(file_meta.dos_attributes, dos::HIDDEN | dos::ARCHIVE);
    assert_eq!(file_meta.creation_time, creation);
    assert!(!file_meta.is_dir);
    // Every entry agrees with stat() of its path.
    for e in &l.entries {
        let st = s.stat(&format!("d/{}", e.name)).expect("stat");
        let (mut a, mut b) = (e.meta, st);
        // atime may move when stat opens the file; compare the rest.
        a.access_time = 0;
        b.access_time = 0;
        assert_eq!(a, b, "{}", e.name);
    }
    // The link reports its target.
    assert_eq!(get("link").ino, file_meta.ino);
    assert!(get("dirlink").is_dir && get("sub").is_dir);
    assert_eq!(get("sub").dos_attributes, dos::DIRECTORY);
    assert_eq!(get("é ünïcode").dos_attributes, dos::ARCHIVE);

    // Listing a file handle is an error; an empty directory lists nothing.
    assert_eq!(f.read_dir().err(), Some(FsError::NotADirectory));
    let (e, _) = open(&s, "d/sub", opts(Disposition::Open, Kind::Directory)).expect("open");
    assert_eq!(e.read_dir().expect("empty"), Default::default());
}

#[test]
fn read_dir_of_a_big_directory_and_twice_on_one_handle() {
    let (tmp, s) = share(ResolveMode::Auto);
    std::fs::create_dir(tmp.path().join("many")).expect("mkdir");
    for i in 0..1500 {
        put(
            tmp.path(),
            &format!("many/entry-with-a-longish-name-{i:05}"),
            b"",
        );
    }
    let (d, _) = open(&s, "many", opts(Disposition::Open, Kind::Directory)).expect("open");
    let a = d.read_dir().expect("first");
    let b = d.read_dir().expect("second");
    assert_eq!(a.entries.len(), 1500);
    assert_eq!(
        b.entries.len(),
        1500,
        "each listing starts at the beginning"
    );
}

#[test]
fn statvfs_reports_space() {
    let (_tmp, s) = share(ResolveMode::Auto);
    let v = s.statvfs().expect("statvfs");
    assert!(v.block_size >= 512);
    assert!(v.total_bytes >= v.free_bytes && v.free_bytes >= v.avail_bytes);
    assert!(v.total_bytes > 0 && v.name_max >= 255);
}

#[test]
fn concurrent_use_from_threads() {
    let (_tmp, s) = share(ResolveMode::Auto);
    let (shared, _) = open(&s, "shared", file(Disposition::Create)).expect("create");
    std::thread::scope(|sc| {
        for t in 0..4u8 {
            let s = &s;
            let shared = &shared;
            sc.spawn(move || {
                for i in 0..50u32 {
                    let name = format!("t{t}-{i}");
                    let (h, created) = open(s, &name, file(Disposition::OpenIf)).expect("openif");
                    assert!(created);
                    h.write_at(name.as_bytes(), 0).expect("write");
                    assert_eq!(read_all(&h), name.as_bytes());
                    shared
                        .write_at(&[t], u64::from(t) * 100 + u64::from(i))
                        .expect("write shared");
                    shared
                        .set_times(&SetTimes {
                            creation: Some(u64::from(i) + 1),
                            ..Default::default()
                        })
                        .expect("creation");
                    shared.set_dos_attributes(dos::HIDDEN).expect("attrs");
                }
            });
        }
    });
    let m = shared.meta().expect("meta");
    assert_eq!(
        m.dos_attributes,
        dos::HIDDEN,
        "no update lost the attributes"
    );
    assert!(
        (1..=50).contains(&m.creation_time),
        "no update lost the creation time"
    );
    assert_eq!(m.size, 350);
}

#[test]
fn a_directory_listed_by_several_threads_gives_every_entry_its_own_metadata() {
    let (tmp, s) = share(ResolveMode::Auto);
    std::fs::create_dir(tmp.path().join("big")).expect("mkdir");
    let n = 5000;
    for i in 0..n {
        // Sizes name the file; every seventh is HIDDEN (through the attributes xattr).
        put(tmp.path(), &format!("big/f{i:05}"), &vec![b'x'; i % 97]);
    }
    for i in (0..n).step_by(7) {
        let (h, _) = open(&s, &format!("big/f{i:05}"), file(Disposition::Open)).expect("open");
        h.set_dos_attributes(dos::HIDDEN).expect("attrs");
    }
    std::fs::remove_file(tmp.path().join("big/f00003")).expect("rm");
    let (d, _) = open(&s, "big", opts(Disposition::Open, Kind::Directory)).expect("open");
    let l = d.read_dir().expect("read_dir");
    assert_eq!(l.entries.len(), n - 1);
    let mut seen = std::collections::HashSet::new();
    for e in &l.entries {
        let i: usize = e.name[1..].parse().expect("name");
        assert!(seen.insert(i), "{} listed twice", e.name);
        assert_eq!(e.meta.size, (i % 97) as u64, "{}", e.name);
        assert_eq!(
            e.meta.dos_attributes & dos::HIDDEN != 0,
            i.is_multiple_of(7),
            "{}",
            e.name
        );
    }
    assert!(!seen.contains(&3));
}
