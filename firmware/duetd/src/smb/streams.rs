//! Named streams (alternate data streams) over SMB2: stream names in CREATE paths
//! (MS-FSCC 2.1.5.3 and 2.1.5.4), the stream rules of MS-FSA (each stream is its own file
//! for share modes, locks and delete on close; the file's DELETE opens and deletion wait
//! for its streams), FileStreamInformation and stream renames. The data lives in xattrs
//! of the base file (`duet_hal::fs`, `stream.rs`).
//!
//! Owns: what a stream open may do against the opens of its file. Never touches stream
//! data itself: hal's stream `Handle` does, behind the same calls as file data.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use duet_fscc::consts::*;
use duet_hal::fs::{FsError, Handle, Meta, OpenOptions, ShareRoot, StreamOpen};

use super::create::fs_status;
use super::files::{FileKey, FileTable};
use super::{names, notify, Conn, Fail};
use crate::wire::status;

/// What follows the last component's name in a CREATE path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamPart {
    /// Nothing: the file or directory.
    None,
    /// "::$DATA": the file's unnamed data stream (a directory has none).
    DefaultData,
    /// "::$INDEX_ALLOCATION" or ":$I30:$INDEX_ALLOCATION": the directory itself.
    Directory,
    /// ":NAME" or ":NAME:$DATA": a named data stream.
    Named(String),
}

/// The longest name, in UTF-16 code units, of a file or stream component.
const NAME_MAX_UNITS: usize = 255;

/// Splits a stream suffix (what follows the first ':' of a component) into the stream
/// part it names. `None`: malformed (a trailing ':', more than two parts, a type other
/// than $DATA / $INDEX_ALLOCATION, an empty name without a type, a character no stream
/// name may hold).
fn stream_part(rest: &str) -> Option<StreamPart> {
    let mut parts = rest.split(':');
    let name = parts.next().unwrap_or_default();
    let kind = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let named = |n: &str| {
        (!n.contains(['/', '\\', '\0']) && n.encode_utf16().count() <= NAME_MAX_UNITS)
            .then(|| StreamPart::Named(n.to_string()))
    };
    match kind {
        None if !name.is_empty() => named(name),
        Some(t) if t.eq_ignore_ascii_case("$DATA") => {
            if name.is_empty() {
                Some(StreamPart::DefaultData)
            } else {
                named(name)
            }
        }
        Some(t)
            if t.eq_ignore_ascii_case("$INDEX_ALLOCATION")
                && (name.is_empty() || name.eq_ignore_ascii_case("$I30")) =>
        {
            Some(StreamPart::Directory)
        }
        _ => None,
    }
}

/// Checks an SMB2 path (UTF-16 decoded) and splits it into the '/'-separated
/// share-relative form `duet_hal::fs` takes ("" is the share root) and the stream its last
/// component names. Only the last component may name a stream.
pub fn parse_name(name: &str) -> Result<(String, StreamPart), u32> {
    if name.is_empty() {
        return Ok((String::new(), StreamPart::None));
    }
    if name.starts_with('\\') || name.starts_with('/') {
        return Err(status::INVALID_PARAMETER);
    }
    let name = name.strip_suffix('\\').unwrap_or(name);
    let mut out = String::with_capacity(name.len());
    let mut stream = StreamPart::None;
    let count = name.split('\\').count();
    for (i, comp) in name.split('\\').enumerate() {
        let (comp, rest) = match comp.split_once(':') {
            Some((c, r)) => (c, Some(r)),
            None => (comp, None),
        };
        if let Some(rest) = rest {
            if i + 1 != count {
                return Err(status::OBJECT_NAME_INVALID);
            }
            stream = stream_part(rest).ok_or(status::OBJECT_NAME_INVALID)?;
        }
        if comp.is_empty() {
            return Err(status::OBJECT_NAME_INVALID);
        }
        if comp == "." || comp == ".." {
            return Err(status::OBJECT_PATH_SYNTAX_BAD);
        }
        if comp.encode_utf16().count() > NAME_MAX_UNITS {
            return Err(status::OBJECT_NAME_INVALID);
        }
        if comp
            .chars()
            .any(|c| (c as u32) < 0x20 || matches!(c, '<' | '>' | '"' | '|' | '?' | '*' | '/'))
        {
            return Err(status::OBJECT_NAME_INVALID);
        }
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(comp);
    }
    Ok((out, stream))
}

/// The id of a named stream in [`FileKey::stream`]: a hash of its name as names compare
/// (case-insensitively); never 0.
pub fn stream_id(name: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    names::fold(name).hash(&mut h);
    h.finish().max(1)
}

/// The key of an open: its file, and the stream the handle is open on.
pub fn key_of(meta: &Meta, handle: &Handle) -> FileKey {
    FileKey {
        dev: meta.dev,
        ino: meta.ino,
        stream: handle.stream_name().map_or(0, |n| stream_id(&n)),
    }
}

/// Opens (or creates, as `opts.disposition` says) stream `stream` of the share path
/// `path`, whose components match case-insensitively. Returns the handle, what was
/// created and the base file's path on disk.
pub fn open(
    conn: &Conn,
    root: &ShareRoot,
    path: &str,
    stream: &str,
    opts: &OpenOptions,
) -> Result<(Handle, StreamOpen, String), Fail> {
    let (path, seen) = names::resolve(&conn.server.names, root, path);
    let (handle, opened) = root.open_stream(&path, stream, opts).map_err(|e| match e {
        FsError::Exists => Fail::Status(status::OBJECT_NAME_COLLISION),
        e => Fail::Status(fs_status(&e)),
    })?;
    if opened.base_created {
        names::note_created(&conn.server.names, root, &path, seen);
    }
    Ok((handle, opened, path))
}

/// The share-mode rules between a file and its streams, for a new open of `key` holding
/// `granted` (the file table locked): a stream of a delete-pending file cannot be opened
/// (STATUS_DELETE_PENDING); the file cannot be opened for DELETE while an open of one of
/// its streams does not share delete (STATUS_SHARING_VIOLATION).
pub fn check_open(
    files: &FileTable,
    key: &FileKey,
    granted: u32,
    created: bool,
) -> Result<(), Fail> {
    if key.is_stream() && files.is_delete_pending(&key.base()) {
        return Err(Fail::Status(status::DELETE_PENDING));
    }
    if !key.is_stream() && !created && granted & DELETE != 0 && !files.streams_allow_delete(key) {
        return Err(Fail::Status(status::SHARING_VIOLATION));
    }
    Ok(())
}

/// A file cannot be renamed while one of its named streams is open (smbtorture
/// smb2.streams.basefile-rename-with-open-stream: STATUS_ACCESS_DENIED).
pub fn check_file_rename(conn: &Conn, key: Option<FileKey>) -> Result<(), Fail> {
    let Some(key) = key.filter(|k| !k.is_stream()) else {
        return Ok(());
    };
    let busy = conn
        .server
        .files
        .lock()
        .map(|f| f.has_stream_opens(&key))
        .unwrap_or(false);
    if busy {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    Ok(())
}

/// After an open of a named stream closed (`last`: what the file table said of its last
/// open): a delete-pending stream goes with its last open, and a file left
/// delete-pending by its own last close goes with its last open stream.
pub fn closed(
    conn: &mut Conn,
    root: &Arc<ShareRoot>,
    handle: Option<&Arc<Handle>>,
    key: FileKey,
    last: Option<(String, bool)>,
) {
    let Some((_, delete)) = last else {
        return;
    };
    if let (true, Some(h)) = (delete, handle) {
        if let Err(e) = h.remove_stream() {
            tracing::warn!(error = %e, "delete on close of a stream failed");
        }
    }
    let orphan = conn
        .server
        .files
        .lock()
        .ok()
        .and_then(|mut f| f.take_orphan_delete(&key));
    if let Some(path) = orphan {
        let (r, is_dir) = match root.unlink(&path) {
            Err(FsError::IsADirectory) => (root.rmdir(&path), true),
            r => (r, false),
        };
        match r {
            Ok(()) => notify::report(conn, root, &path, notify::FILE_ACTION_REMOVED, is_dir),
            Err(e) => tracing::warn!(path, error = %e, "delete on close failed"),
        }
    }
}

/// FileStreamInformation (MS-FSCC 2.4.49) of the file `handle` is open on (through any
/// of its streams): "::$DATA" for a file, then every named stream as ":NAME:$DATA".
pub fn stream_information(handle: &Handle) -> Result<Vec<u8>, Fail> {
    let fs = |e: FsError| Fail::Status(fs_status(&e));
    let base = handle.base_meta().map_err(fs)?;
    let named = handle.streams().map_err(fs)?;
    let names: Vec<String> = named.iter().map(|s| format!(":{}:$DATA", s.name)).collect();
    let mut entries = Vec::with_capacity(named.len() + 1);
    if !base.is_dir {
        entries.push(duet_fscc::StreamEntry {
            name: "::$DATA",
            size: base.size,
            allocation: base.allocation,
        });
    }
    for (s, name) in named.iter().zip(&names) {
        entries.push(duet_fscc::StreamEntry {
            name,
            size: s.size,
            allocation: s.allocation,
        });
    }
    let mut data = Vec::new();
    duet_fscc::encode_stream_information(&entries, &mut data)
        .map_err(|e| Fail::Status(e.ntstatus()))?;
    Ok(data)
}

/// The target of a stream rename: a named stream, or the unnamed data stream.
enum RenameTarget {
    Named(String),
    Default,
}

/// SET_INFO FileRenameInformation when it renames a stream (MS-FSA 2.1.5.15.11.1): the
/// open is a named stream's, or the new name starts with ':'. `None`: a rename of the
/// file (the caller's). A stream renamed to a path is refused (to one naming a stream:
/// STATUS_SHARING_VIOLATION, as Windows answers smbtorture's smb2.streams.rename2).
pub fn rename(
    conn: &mut Conn,
    vol: u64,
    handle: &Arc<Handle>,
    target: &str,
    replace: bool,
) -> Option<Result<(), Fail>> {
    let is_stream = handle.stream_name().is_some();
    let new = target.strip_prefix(':');
    if !is_stream && new.is_none() {
        return None;
    }
    Some(rename_stream(conn, vol, handle, target, new, replace))
}

fn rename_stream(
    conn: &mut Conn,
    vol: u64,
    handle: &Arc<Handle>,
    target: &str,
    new: Option<&str>,
    replace: bool,
) -> Result<(), Fail> {
    let Some(new) = new else {
        return Err(Fail::Status(if target.contains(':') {
            status::SHARING_VIOLATION
        } else {
            status::INVALID_PARAMETER
        }));
    };
    if handle.stream_name().is_none() {
        // The unnamed data stream renamed to a named one: not supported here.
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    let target = match stream_part(new) {
        Some(StreamPart::Named(n)) if duet_hal::fs::check_stream_name(&n).is_ok() => {
            RenameTarget::Named(n)
        }
        Some(StreamPart::DefaultData) => RenameTarget::Default,
        _ => return Err(Fail::Status(status::INVALID_PARAMETER)),
    };
    let key = conn
        .opens
        .get(&vol)
        .and_then(|o| o.key)
        .ok_or(Fail::Status(status::INVALID_PARAMETER))?;
    let new_key = match &target {
        RenameTarget::Named(n) => FileKey {
            stream: stream_id(n),
            ..key
        },
        RenameTarget::Default => key.base(),
    };
    let fs = |e: FsError| {
        Fail::Status(match e {
            FsError::Exists => status::OBJECT_NAME_COLLISION,
            FsError::InvalidName(_) => status::INVALID_PARAMETER,
            e => fs_status(&e),
        })
    };
    {
        let mut files = conn
            .server
            .files
            .lock()
            .map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
        // Other opens of the stream would be left on a name that no longer exists.
        if files.open_count(&key) > 1 {
            return Err(Fail::Status(status::SHARING_VIOLATION));
        }
        let target_open = new_key != key && files.open_count(&new_key) > 0;
        match &target {
            RenameTarget::Named(n) => {
                if target_open {
                    return Err(Fail::Status(if replace {
                        status::ACCESS_DENIED
                    } else {
                        status::OBJECT_NAME_COLLISION
                    }));
                }
                handle.rename_stream(n, replace).map_err(fs)?;
            }
            RenameTarget::Default => {
                if files.files.contains_key(&new_key) {
                    return Err(Fail::Status(status::SHARING_VIOLATION));
                }
                handle.rename_stream_to_default(replace).map_err(fs)?;
            }
        }
        if new_key != key && !files.rekey(&key, new_key) {
            tracing::warn!("renamed stream's open could not move in the file table");
        }
    }
    if let Some(o) = conn.opens.get_mut(&vol) {
        o.key = Some(new_key);
    }
    super::durable::stream_renamed(conn, key, new_key, handle.stream_name().as_deref());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(s: &str) -> StreamPart {
        StreamPart::Named(s.into())
    }

    #[test]
    fn stream_names_in_paths() {
        let ok = |n: &str| parse_name(n).unwrap();
        assert_eq!(ok("d\\f.txt"), ("d/f.txt".into(), StreamPart::None));
        assert_eq!(ok("f::$DATA"), ("f".into(), StreamPart::DefaultData));
        assert_eq!(ok("f::$dAtA"), ("f".into(), StreamPart::DefaultData));
        assert_eq!(ok("d\\f:Stream One"), ("d/f".into(), named("Stream One")));
        assert_eq!(ok("f:s:$DaTa"), ("f".into(), named("s")));
        // Control characters and wildcards are allowed in stream names.
        assert_eq!(
            ok("f:\u{5}S\n*?<>|\""),
            ("f".into(), named("\u{5}S\n*?<>|\""))
        );
        assert_eq!(
            ok("d::$INDEX_ALLOCATION"),
            ("d".into(), StreamPart::Directory)
        );
        assert_eq!(
            ok("d:$I30:$INDEX_ALLOCATION"),
            ("d".into(), StreamPart::Directory)
        );
        let invalid = status::OBJECT_NAME_INVALID;
        for bad in [
            "f:",
            "f:s:",
            "f::",
            "f:s:$FOO",
            "f:s:?D*a",
            "f:s:$DATA:x",
            "f:s/x",
            "f:s\0",
            "d:s\\f",
            "d:s:$DATA\\f",
            "f*:s",
            "f:x:$INDEX_ALLOCATION",
            ":s",
        ] {
            assert_eq!(parse_name(bad), Err(invalid), "{bad:?}");
        }
        assert_eq!(parse_name(&format!("f:{}", "s".repeat(256))), Err(invalid));
        assert!(parse_name(&format!("f:{}", "s".repeat(255))).is_ok());
    }

    #[test]
    fn stream_ids_ignore_case_and_are_never_zero() {
        assert_eq!(stream_id("Stream"), stream_id("sTREAM"));
        assert_ne!(stream_id("a"), stream_id("b"));
        assert_ne!(stream_id(""), 0);
    }

    // ---- through the protocol core

    use super::super::create::{
        FILE_CREATE, FILE_DELETE_ON_CLOSE, FILE_DIRECTORY_FILE, FILE_OPEN, FILE_OPEN_IF,
        FILE_OVERWRITE, FILE_OVERWRITE_IF, FILE_SUPERSEDE,
    };
    use super::super::testkit::{Client, CreateArgs, Kit};
    use super::super::FileId;
    use crate::wire::{Command, PutLe};

    fn args(name: &str, desired: u32, share: u32, disposition: u32) -> CreateArgs {
        CreateArgs {
            desired,
            share,
            disposition,
            ..CreateArgs::new(name)
        }
    }

    const ALL: u32 = 0x001F_01FF;
    const RW: u32 = FILE_READ_DATA | FILE_WRITE_DATA;

    fn query(c: &mut Client, fid: FileId, info_type: u8, class: u8) -> (u32, Vec<u8>) {
        let mut b = Vec::new();
        b.put_u16(41);
        b.put_u8(info_type);
        b.put_u8(class);
        b.put_u32(4096);
        b.put_u16(0);
        b.put_u16(0);
        b.put_u32(0);
        b.put_u32(0);
        b.put_u32(0);
        fid.put(&mut b);
        b.push(0);
        let (st, body) = c.request(Command::QueryInfo, &b);
        if st != 0 {
            return (st, Vec::new());
        }
        let n = u32::from_le_bytes(body[4..8].try_into().unwrap()) as usize;
        (st, body[8..8 + n].to_vec())
    }

    /// FileStreamInformation as (name, size) pairs.
    fn stream_list(c: &mut Client, fid: FileId) -> Vec<(String, u64)> {
        let (st, d) = query(c, fid, 1, FILE_STREAM_INFORMATION);
        assert_eq!(st, 0);
        let mut out = Vec::new();
        let mut off = 0;
        while off < d.len() {
            let e = &d[off..];
            let next = u32::from_le_bytes(e[0..4].try_into().unwrap()) as usize;
            let len = u32::from_le_bytes(e[4..8].try_into().unwrap()) as usize;
            let size = u64::from_le_bytes(e[8..16].try_into().unwrap());
            let units: Vec<u16> = e[24..24 + len]
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            out.push((String::from_utf16_lossy(&units), size));
            if next == 0 {
                break;
            }
            off += next;
        }
        out
    }

    fn close(c: &mut Client, open: super::super::testkit::Created) {
        assert_eq!(c.close(open.fid), 0);
    }

    #[test]
    fn stream_io_and_listing() {
        let kit = Kit::new();
        if !kit.root.xattrs_supported() {
            return;
        }
        let mut c = kit.client();
        // A stream of a missing file creates the file.
        let s = c
            .create(&args("f.txt:Stream One", FILE_WRITE_DATA, 0, FILE_CREATE))
            .unwrap();
        assert!(kit.path("f.txt").is_file());
        // The file itself is another file for share modes.
        c.touch(&args("f.txt", FILE_WRITE_DATA, 0, FILE_OPEN))
            .unwrap();
        // ... the stream is not.
        assert_eq!(
            c.create(&args("f.txt:stream one", ALL, 0, FILE_OPEN))
                .unwrap_err(),
            status::SHARING_VIOLATION
        );
        assert_eq!(c.write(s.fid, 0, b"test data"), 0);
        close(&mut c, s);
        let s = c
            .create(&args("F.TXT:STREAM ONE:$data", RW, 7, FILE_OPEN))
            .unwrap();
        assert_eq!(c.write(s.fid, 5, b"MORE DATA "), 0);
        assert_eq!(c.read(s.fid, 0, 100), (0, b"test MORE DATA ".to_vec()));
        // Size in the info classes is the stream's.
        let (_, std) = query(&mut c, s.fid, 1, FILE_STANDARD_INFORMATION);
        assert_eq!(u64::from_le_bytes(std[8..16].try_into().unwrap()), 15);
        c.touch(&args("f.txt:Zero", FILE_WRITE_DATA, 7, FILE_OPEN_IF))
            .unwrap();
        std::fs::write(kit.path("f.txt"), b"base").unwrap();
        assert_eq!(
            stream_list(&mut c, s.fid),
            vec![
                ("::$DATA".to_string(), 4),
                (":Stream One:$DATA".to_string(), 15),
                (":Zero:$DATA".to_string(), 0),
            ]
        );
        // Missing and malformed streams.
        assert_eq!(
            c.create(&args("f.txt:nope", ALL, 7, FILE_OPEN))
                .unwrap_err(),
            status::OBJECT_NAME_NOT_FOUND
        );
        for bad in ["f.txt:Stream One:", "f.txt:Stream One:$FOO", "f.txt:x/y"] {
            assert_eq!(
                c.create(&args(bad, ALL, 7, FILE_OPEN)).unwrap_err(),
                status::OBJECT_NAME_INVALID,
                "{bad}"
            );
        }
        assert_eq!(
            c.create(&args("f.txt:Stream One", ALL, 7, FILE_CREATE))
                .unwrap_err(),
            status::OBJECT_NAME_COLLISION
        );
        close(&mut c, s);
        // Delete on close deletes the stream only.
        c.touch(&CreateArgs {
            options: FILE_DELETE_ON_CLOSE,
            ..args("f.txt:stream one", ALL, 7, FILE_OPEN)
        })
        .unwrap();
        let f = c.create(&args("f.txt", ALL, 7, FILE_OPEN)).unwrap();
        assert_eq!(
            stream_list(&mut c, f.fid),
            vec![("::$DATA".to_string(), 4), (":Zero:$DATA".to_string(), 0)]
        );
        // So does the delete disposition.
        let z = c.create(&args("f.txt:zero", ALL, 7, FILE_OPEN)).unwrap();
        assert_eq!(c.set_info(z.fid, 1, FILE_DISPOSITION_INFORMATION, &[1]), 0);
        close(&mut c, z);
        assert_eq!(stream_list(&mut c, f.fid), vec![("::$DATA".to_string(), 4)]);
        close(&mut c, f);
        assert_eq!(std::fs::read(kit.path("f.txt")).unwrap(), b"base");
        // The filesystem says it has named streams.
        let root = c.create(&CreateArgs::new("")).unwrap();
        let (_, attr) = query(&mut c, root.fid, 2, FILE_FS_ATTRIBUTE_INFORMATION);
        let fs_attr = u32::from_le_bytes(attr[0..4].try_into().unwrap());
        assert_ne!(fs_attr & FILE_NAMED_STREAMS, 0);
    }

    #[test]
    fn overwriting_the_file_drops_its_streams() {
        let kit = Kit::new();
        if !kit.root.xattrs_supported() {
            return;
        }
        let mut c = kit.client();
        for disp in [FILE_OVERWRITE, FILE_OVERWRITE_IF, FILE_SUPERSEDE] {
            c.touch(&args("f:s", RW, 7, FILE_OPEN_IF)).unwrap();
            let f = c.create(&args("f", RW, 7, disp)).unwrap();
            assert_eq!(stream_list(&mut c, f.fid), vec![("::$DATA".to_string(), 0)]);
            close(&mut c, f);
        }
        // Overwriting a stream empties it and keeps the others.
        let s = c.create(&args("f:a", RW, 7, FILE_OPEN_IF)).unwrap();
        assert_eq!(c.write(s.fid, 0, b"abc"), 0);
        close(&mut c, s);
        c.touch(&args("f:b", RW, 7, FILE_OPEN_IF)).unwrap();
        let s = c.create(&args("f:a", RW, 7, FILE_OVERWRITE_IF)).unwrap();
        assert_eq!(
            stream_list(&mut c, s.fid),
            vec![
                ("::$DATA".to_string(), 0),
                (":a:$DATA".to_string(), 0),
                (":b:$DATA".to_string(), 0)
            ]
        );
        close(&mut c, s);
    }

    #[test]
    fn directories_and_their_streams() {
        let kit = Kit::new();
        if !kit.root.xattrs_supported() {
            return;
        }
        let mut c = kit.client();
        let dir = |name: &str, disposition| CreateArgs {
            options: FILE_DIRECTORY_FILE,
            ..args(name, ALL, 7, disposition)
        };
        let d = c.create(&dir("d", FILE_CREATE)).unwrap();
        // No unnamed data stream, and no named streams yet.
        assert!(stream_list(&mut c, d.fid).is_empty());
        assert_eq!(
            c.create(&dir("d\\f:s", FILE_CREATE)).unwrap_err(),
            status::NOT_A_DIRECTORY
        );
        assert_eq!(
            c.create(&dir("d::$DATA", FILE_OPEN)).unwrap_err(),
            status::NOT_A_DIRECTORY
        );
        assert_eq!(
            c.create(&args("d::$DATA", ALL, 7, FILE_OPEN)).unwrap_err(),
            status::FILE_IS_A_DIRECTORY
        );
        // "::$INDEX_ALLOCATION" is the directory.
        c.touch(&args("d::$INDEX_ALLOCATION", ALL, 7, FILE_OPEN))
            .unwrap();
        // Streams on directories are allowed.
        let s = c.create(&args("d:meta", RW, 7, FILE_CREATE)).unwrap();
        assert_eq!(c.write(s.fid, 0, b"xy"), 0);
        close(&mut c, s);
        assert_eq!(
            stream_list(&mut c, d.fid),
            vec![(":meta:$DATA".to_string(), 2)]
        );
        close(&mut c, d);
    }

    #[test]
    fn a_stream_open_without_share_delete_protects_the_file() {
        let kit = Kit::new();
        if !kit.root.xattrs_supported() {
            return;
        }
        let mut c = kit.client();
        let s = c.create(&args("f:s", ALL, 0, FILE_CREATE)).unwrap();
        assert_eq!(c.write(s.fid, 0, b"test data"), 0);
        assert_eq!(
            c.create(&args("f", DELETE, 7, FILE_OPEN)).unwrap_err(),
            status::SHARING_VIOLATION
        );
        assert_eq!(
            c.create(&CreateArgs {
                options: FILE_DELETE_ON_CLOSE,
                ..args("f", ALL, 7, FILE_OPEN)
            })
            .unwrap_err(),
            status::SHARING_VIOLATION
        );
        // Opens without DELETE are fine.
        c.touch(&args("f", FILE_READ_DATA, 7, FILE_OPEN)).unwrap();
        close(&mut c, s);
        // Shared for delete: the file can be deleted; the stream's handle still reads;
        // names are delete-pending until it closes, then the file is gone.
        let s = c.create(&args("f:s", RW, 7, FILE_OPEN)).unwrap();
        c.touch(&CreateArgs {
            options: FILE_DELETE_ON_CLOSE,
            ..args("f", ALL, 7, FILE_OPEN)
        })
        .unwrap();
        assert!(kit.path("f").exists());
        assert_eq!(c.read(s.fid, 0, 9), (0, b"test data".to_vec()));
        for name in ["f", "f:s"] {
            assert_eq!(
                c.create(&args(name, RW, 7, FILE_OPEN_IF)).unwrap_err(),
                status::DELETE_PENDING,
                "{name}"
            );
        }
        close(&mut c, s);
        assert!(!kit.path("f").exists());
        assert_eq!(
            c.create(&args("f", RW, 7, FILE_OPEN)).unwrap_err(),
            status::OBJECT_NAME_NOT_FOUND
        );
    }

    #[test]
    fn a_file_with_an_open_stream_cannot_be_renamed() {
        let kit = Kit::new();
        if !kit.root.xattrs_supported() {
            return;
        }
        let mut one = kit.client();
        let mut two = kit.client();
        let s = one.create(&args("f:foo", ALL, 7, FILE_OPEN_IF)).unwrap();
        let f = two.create(&args("f", ALL, 7, FILE_OPEN)).unwrap();
        assert_eq!(two.rename(f.fid, "g", false), status::ACCESS_DENIED);
        close(&mut one, s);
        assert_eq!(two.rename(f.fid, "g", false), status::SUCCESS);
        close(&mut two, f);
        assert!(kit.path("g").is_file());
    }

    #[test]
    fn stream_renames() {
        let kit = Kit::new();
        if !kit.root.xattrs_supported() {
            return;
        }
        let mut c = kit.client();
        c.touch(&args("f:Stream One", ALL, 7, FILE_CREATE)).unwrap();
        let s = c.create(&args("f:two", ALL, 7, FILE_CREATE)).unwrap();
        assert_eq!(c.write(s.fid, 0, b"2"), 0);
        // Onto an existing stream: only with replace.
        assert_eq!(
            c.rename(s.fid, ":stream one", false),
            status::OBJECT_NAME_COLLISION
        );
        assert_eq!(c.rename(s.fid, ":Stream One:$DATA", true), status::SUCCESS);
        assert_eq!(
            stream_list(&mut c, s.fid),
            vec![
                ("::$DATA".to_string(), 0),
                (":Stream One:$DATA".to_string(), 1)
            ]
        );
        // The open follows its stream (share modes are the new name's).
        assert_eq!(c.rename(s.fid, ":three", false), status::SUCCESS);
        assert_eq!(c.rename(s.fid, ":three", false), status::SUCCESS);
        let other = c
            .create(&args("f:three", FILE_READ_DATA, 7, FILE_OPEN))
            .unwrap();
        // Another open of the stream (or of the target) forbids a rename.
        assert_eq!(c.rename(s.fid, ":four", false), status::SHARING_VIOLATION);
        close(&mut c, other);
        // Bad names; paths.
        for bad in [":", ":a:", ":a:$FOO", ":a/b"] {
            assert_eq!(
                c.rename(s.fid, bad, true),
                status::INVALID_PARAMETER,
                "{bad}"
            );
        }
        assert_eq!(c.rename(s.fid, "f:x", true), status::SHARING_VIOLATION);
        assert_eq!(c.rename(s.fid, "g", true), status::INVALID_PARAMETER);
        // Onto the unnamed data stream: the file gets the data.
        assert_eq!(c.rename(s.fid, "::$DATA", true), status::SUCCESS);
        close(&mut c, s);
        assert_eq!(std::fs::read(kit.path("f")).unwrap(), b"2");
        let f = c.create(&args("f", ALL, 7, FILE_OPEN)).unwrap();
        assert_eq!(stream_list(&mut c, f.fid), vec![("::$DATA".to_string(), 1)]);
        close(&mut c, f);
    }

    #[test]
    fn a_stream_open_is_named_with_its_stream() {
        let kit = Kit::new();
        if !kit.root.xattrs_supported() {
            return;
        }
        let mut c = kit.client();
        c.touch(&args("Dir", ALL, 7, FILE_CREATE)).ok();
        c.touch(&args("fIlE:sTrEaM", ALL, 7, FILE_CREATE)).unwrap();
        let name_of = |c: &mut Client, open: &str, class: u8| {
            let o = c.create(&args(open, ALL, 7, FILE_OPEN)).unwrap();
            let (st, d) = query(c, o.fid, 1, class);
            assert_eq!(st, 0);
            c.close(o.fid);
            let units: Vec<u16> = d[4..]
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        };
        for open in ["file:stream", "FILE:STREAM:$DATA"] {
            assert_eq!(
                name_of(&mut c, open, FILE_NORMALIZED_NAME_INFORMATION),
                "fIlE:sTrEaM"
            );
            assert_eq!(
                name_of(&mut c, open, FILE_NAME_INFORMATION),
                "\\fIlE:sTrEaM"
            );
        }
        assert_eq!(
            name_of(&mut c, "file::$DATA", FILE_NORMALIZED_NAME_INFORMATION),
            "fIlE"
        );
    }

    #[test]
    fn every_response_of_a_compound_is_aligned() {
        let kit = Kit::new();
        let mut c = kit.client();
        let echo = |c: &mut Client| {
            let mut m = c.header(Command::Echo);
            m.extend_from_slice(&[4, 0, 0, 0]);
            m
        };
        // One request: 64 + 4 bytes, not padded.
        let one = echo(&mut c);
        assert_eq!(c.frame(&one).len(), 68);
        // Two: each response padded to 8 bytes, the last one too.
        let mut first = echo(&mut c);
        first.resize(72, 0);
        first[20..24].copy_from_slice(&72u32.to_le_bytes());
        let second = echo(&mut c);
        let resp = c.frame(&[first, second].concat());
        assert_eq!(resp.len(), 144);
        assert_eq!(u32::from_le_bytes(resp[20..24].try_into().unwrap()), 72);
        assert_eq!(
            u32::from_le_bytes(resp[72 + 20..72 + 24].try_into().unwrap()),
            0
        );
    }

    #[test]
    fn metadata_is_the_files() {
        let kit = Kit::new();
        if !kit.root.xattrs_supported() {
            return;
        }
        let mut c = kit.client();
        let s = c.create(&args("f:s", ALL, 7, FILE_CREATE)).unwrap();
        let mut basic = Vec::new();
        for t in [0u64, 0, 133_000_000_000_000_000, 0] {
            basic.put_u64(t);
        }
        basic.put_u32(FILE_ATTRIBUTE_READONLY);
        basic.put_u32(0);
        assert_eq!(c.set_info(s.fid, 1, FILE_BASIC_INFORMATION, &basic), 0);
        close(&mut c, s);
        let f = c
            .create(&args("f", FILE_READ_ATTRIBUTES, 7, FILE_OPEN))
            .unwrap();
        let (_, b) = query(&mut c, f.fid, 1, FILE_BASIC_INFORMATION);
        assert_eq!(
            u64::from_le_bytes(b[16..24].try_into().unwrap()),
            133_000_000_000_000_000
        );
        assert_eq!(
            u32::from_le_bytes(b[32..36].try_into().unwrap()),
            FILE_ATTRIBUTE_READONLY
        );
        close(&mut c, f);
        // A read-only file's streams cannot be opened for writing.
        assert_eq!(
            c.create(&args("f:s", FILE_WRITE_DATA, 7, FILE_OPEN))
                .unwrap_err(),
            status::ACCESS_DENIED
        );
    }
}
