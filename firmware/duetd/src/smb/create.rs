//! CREATE and CLOSE (MS-SMB2 2.2.13-2.2.16, 3.3.5.9, 3.3.5.10): path checks, dispositions,
//! share modes, delete on close, the MxAc and QFid create contexts, and IPC$ pipes.
//!
//! Owns: turning a CREATE into an open and a CLOSE into its release. Never resolves a name
//! outside the share (the path is checked here and again by `duet_hal::fs`).

use std::sync::Arc;

use duet_fscc::consts::*;
use duet_hal::fs::{Disposition, FsError, Handle, Kind, OpenOptions, ShareRoot};

use super::files::{
    share_id, FileKey, Open, OpenKind, OpenRef, ShareEntry, FILE_ATTRIBUTE_VALID_SET,
    FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE,
};
use super::streams::StreamPart;
use super::{names, notify, Conn, Fail, FileId, HResult, Reply, Req, TreeKind};
use crate::wire::{le_u16, le_u32, status, utf16le, PutLe, HEADER_LEN};

// CreateDisposition (MS-SMB2 2.2.13)
pub const FILE_SUPERSEDE: u32 = 0;
pub const FILE_OPEN: u32 = 1;
pub const FILE_CREATE: u32 = 2;
pub const FILE_OPEN_IF: u32 = 3;
pub const FILE_OVERWRITE: u32 = 4;
pub const FILE_OVERWRITE_IF: u32 = 5;

// CreateOptions
pub const FILE_DIRECTORY_FILE: u32 = 0x0000_0001;
pub const FILE_WRITE_THROUGH: u32 = 0x0000_0002;
pub const FILE_NON_DIRECTORY_FILE: u32 = 0x0000_0040;
pub const FILE_CREATE_TREE_CONNECTION: u32 = 0x0000_0080;
pub const FILE_DELETE_ON_CLOSE: u32 = 0x0000_1000;
pub const FILE_OPEN_BY_FILE_ID: u32 = 0x0000_2000;
pub const FILE_RESERVE_OPFILTER: u32 = 0x0010_0000;
pub const FILE_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
const CREATE_OPTIONS_VALID: u32 = 0x00FF_FFFF;

// CreateAction
pub const FILE_SUPERSEDED: u32 = 0;
pub const FILE_OPENED: u32 = 1;
pub const FILE_CREATED: u32 = 2;
pub const FILE_OVERWRITTEN: u32 = 3;

const CLOSE_FLAG_POSTQUERY_ATTRIB: u16 = 0x0001;

/// Access bits no client may ask for (MS-SMB2 3.3.5.9: reserved bits -> ACCESS_DENIED).
const ACCESS_RESERVED: u32 = 0x0CE0_FE00;

/// Generic rights mapping for files (MS-SMB2 3.3.5.9, MS-DTYP 2.4.3).
pub fn map_generic(mut a: u32, maximal: u32) -> u32 {
    if a & GENERIC_READ != 0 {
        a |= FILE_GENERIC_READ;
    }
    if a & GENERIC_WRITE != 0 {
        a |= FILE_GENERIC_WRITE;
    }
    if a & GENERIC_EXECUTE != 0 {
        a |= FILE_GENERIC_EXECUTE;
    }
    if a & GENERIC_ALL != 0 {
        a |= FILE_ALL_ACCESS;
    }
    if a & MAXIMUM_ALLOWED != 0 {
        a |= maximal;
    }
    a & !(GENERIC_READ | GENERIC_WRITE | GENERIC_EXECUTE | GENERIC_ALL | MAXIMUM_ALLOWED)
}

const WRITE_ACCESS: u32 = FILE_WRITE_DATA
    | FILE_APPEND_DATA
    | FILE_WRITE_EA
    | FILE_WRITE_ATTRIBUTES
    | DELETE
    | WRITE_DAC
    | WRITE_OWNER
    | FILE_DELETE_CHILD;

/// Checks an SMB2 path (UTF-16 decoded) and turns it into the '/'-separated share-relative
/// form `duet_hal::fs` takes. "" is the share root. A trailing "::$DATA" is the file itself;
/// a named stream is not a path (OBJECT_NAME_INVALID; `streams::parse_name` has them).
pub fn parse_path(name: &str) -> Result<String, u32> {
    match super::streams::parse_name(name)? {
        (path, StreamPart::None | StreamPart::DefaultData) => Ok(path),
        _ => Err(status::OBJECT_NAME_INVALID),
    }
}

/// FsError -> NTSTATUS, in one place.
pub fn fs_status(e: &FsError) -> u32 {
    match e {
        FsError::NotFound => status::OBJECT_NAME_NOT_FOUND,
        FsError::PathNotFound => status::OBJECT_PATH_NOT_FOUND,
        FsError::Exists => status::OBJECT_NAME_COLLISION,
        FsError::IsADirectory => status::FILE_IS_A_DIRECTORY,
        FsError::NotADirectory => status::NOT_A_DIRECTORY,
        FsError::NotEmpty => status::DIRECTORY_NOT_EMPTY,
        FsError::AccessDenied => status::ACCESS_DENIED,
        FsError::OutsideShare => status::ACCESS_DENIED,
        FsError::NameTooLong => status::OBJECT_NAME_INVALID,
        FsError::NoSpace => status::DISK_FULL,
        FsError::InvalidName(_) => status::OBJECT_NAME_INVALID,
        FsError::InvalidParameter(_) => status::INVALID_PARAMETER,
        FsError::QuotaExceeded => 0xC000_0044, // QUOTA_EXCEEDED
        FsError::ReadOnlyFilesystem => status::MEDIA_WRITE_PROTECTED,
        FsError::FileTooLarge => status::DISK_FULL,
        FsError::SymlinkLoop => status::OBJECT_NAME_NOT_FOUND,
        FsError::SpecialFile => status::ACCESS_DENIED,
        FsError::CrossDevice => 0xC000_00D4, // NOT_SAME_DEVICE
        FsError::Busy => status::SHARING_VIOLATION,
        FsError::TooManyOpenFiles => status::INSUFFICIENT_RESOURCES,
        _ => status::UNSUCCESSFUL,
    }
}

struct CreateReq<'a> {
    oplock: u8,
    impersonation: u32,
    desired: u32,
    attributes: u32,
    share_access: u32,
    disposition: u32,
    options: u32,
    name: String,
    contexts: Vec<CreateContext<'a>>,
}

fn parse_create<'a>(req: &Req<'a>) -> Result<CreateReq<'a>, Fail> {
    let b = req.body();
    b.expect_structure_size(57)?;
    let name_off = b.u16(44)? as usize;
    let name_len = b.u16(46)? as usize;
    if !name_len.is_multiple_of(2) {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    let name = utf16le(b.buffer(name_off, name_len)?)
        .map_err(|_| Fail::Status(status::OBJECT_NAME_INVALID))?;
    let ctx_off = b.u32(48)? as usize;
    let ctx_len = b.u32(52)? as usize;
    let ctx = b.buffer(ctx_off, ctx_len)?;
    Ok(CreateReq {
        oplock: b.u8(3)?,
        impersonation: b.u32(4)?,
        desired: b.u32(24)?,
        attributes: b.u32(28)?,
        share_access: b.u32(32)?,
        disposition: b.u32(36)?,
        options: b.u32(40)?,
        name,
        contexts: parse_contexts(ctx).map_err(Fail::Status)?,
    })
}

/// One create context of a request: (name, data).
pub type CreateContext<'a> = (&'a [u8], &'a [u8]);

/// Splits a create-context chain (MS-SMB2 2.2.13.2) into (name, data) pairs.
pub fn parse_contexts(buf: &[u8]) -> Result<Vec<CreateContext<'_>>, u32> {
    let mut out = Vec::new();
    let mut off = 0usize;
    let bad = status::INVALID_PARAMETER;
    while off < buf.len() {
        let c = &buf[off..];
        let next = le_u32(c, 0).map_err(|_| bad)? as usize;
        let name_off = le_u16(c, 4).map_err(|_| bad)? as usize;
        let name_len = le_u16(c, 6).map_err(|_| bad)? as usize;
        let data_off = le_u16(c, 10).map_err(|_| bad)? as usize;
        let data_len = le_u32(c, 12).map_err(|_| bad)? as usize;
        let name = c.get(name_off..name_off + name_len).ok_or(bad)?;
        let data = if data_len == 0 {
            &[][..]
        } else {
            c.get(data_off..data_off.checked_add(data_len).ok_or(bad)?)
                .ok_or(bad)?
        };
        if name_len < 4 {
            return Err(bad);
        }
        out.push((name, data));
        if out.len() > 64 {
            return Err(bad);
        }
        if next == 0 {
            break;
        }
        if !next.is_multiple_of(8) || next < 16 {
            return Err(bad);
        }
        off += next;
    }
    Ok(out)
}

/// Appends create contexts to a response in the MS-SMB2 2.2.13.2 layout.
pub(super) fn put_contexts(body: &mut Vec<u8>, ctxs: &[(&[u8; 4], Vec<u8>)]) -> (u32, u32) {
    if ctxs.is_empty() {
        return (0, 0);
    }
    body.pad_to(8);
    let start = body.len();
    let mut prev: Option<usize> = None;
    for (name, data) in ctxs {
        body.pad_to(8);
        let here = body.len();
        if let Some(p) = prev {
            body.set_u32(p, (here - p) as u32);
        }
        body.put_u32(0);
        body.put_u16(16);
        body.put_u16(4);
        body.put_u16(0);
        body.put_u16(if data.is_empty() { 0 } else { 24 });
        body.put_u32(data.len() as u32);
        body.extend_from_slice(*name);
        body.put_u32(0);
        body.extend_from_slice(data);
        prev = Some(here);
    }
    ((HEADER_LEN + start) as u32, (body.len() - start) as u32)
}

pub fn handle_create(conn: &mut Conn, req: &Req) -> HResult {
    let c = parse_create(req)?;
    // Durable handles first: a reconnect ignores the rest of the request, a replay answers
    // with the open it made.
    let durable_request =
        match super::durable::begin_create(conn, req, &c.name, &c.contexts, c.oplock) {
            Ok(r) => r,
            Err(reply) => return reply,
        };
    if c.impersonation > 3 {
        return Err(Fail::Status(0xC000_00A5)); // BAD_IMPERSONATION_LEVEL
    }
    if c.disposition > FILE_OVERWRITE_IF {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    if c.options & !CREATE_OPTIONS_VALID != 0
        || (c.options & FILE_DIRECTORY_FILE != 0 && c.options & FILE_NON_DIRECTORY_FILE != 0)
    {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    if c.options & (FILE_CREATE_TREE_CONNECTION | FILE_OPEN_BY_FILE_ID | FILE_RESERVE_OPFILTER) != 0
    {
        return Err(Fail::Status(status::NOT_SUPPORTED));
    }
    if c.desired & ACCESS_RESERVED != 0 {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    if c.attributes & !FILE_ATTRIBUTE_VALID_SET != 0 {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    if c.share_access & !(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE) != 0 {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    if conn.opens.len() >= conn.server.cfg.max_opens_per_conn {
        tracing::warn!(peer = %conn.peer, limit = conn.server.cfg.max_opens_per_conn, "open limit reached");
        return Err(Fail::Status(status::INSUFFICIENT_RESOURCES));
    }
    let tree = conn.tree(req)?;
    let (root, read_only, maximal) = match &tree.kind {
        TreeKind::Ipc => return open_pipe(conn, req, &c),
        TreeKind::Disk {
            root, read_only, ..
        } => (root.clone(), *read_only, tree.maximal_access),
    };
    let _ = c.oplock;
    if c.desired & ACCESS_SYSTEM_SECURITY != 0 {
        return Err(Fail::Status(status::PRIVILEGE_NOT_HELD));
    }
    let (path, stream) = super::streams::parse_name(&c.name).map_err(Fail::Status)?;
    let granted = map_generic(c.desired, maximal);
    if read_only && (granted & WRITE_ACCESS != 0 || c.disposition != FILE_OPEN) {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    if c.options & FILE_DELETE_ON_CLOSE != 0 && granted & DELETE == 0 {
        return Err(Fail::Status(
            status::INVALID_PARAMETER.max(status::ACCESS_DENIED),
        ));
    }
    let want_dir = c.options & FILE_DIRECTORY_FILE != 0;
    // A data stream is never a directory; "::$INDEX_ALLOCATION" is the directory itself.
    if want_dir && matches!(stream, StreamPart::DefaultData | StreamPart::Named(_)) {
        return Err(Fail::Status(status::NOT_A_DIRECTORY));
    }
    let want_dir = want_dir || stream == StreamPart::Directory;
    if want_dir && !matches!(c.disposition, FILE_OPEN | FILE_CREATE | FILE_OPEN_IF) {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    let mut contexts_out: Vec<(&[u8; 4], Vec<u8>)> = Vec::new();
    let mut want_mxac = false;
    let mut want_qfid = false;
    let mut alloc_size: Option<u64> = None;
    let mut create_eas: Vec<duet_fscc::FullEa> = Vec::new();
    let mut sec_desc = None;
    for (name, data) in &c.contexts {
        match *name {
            b"MxAc" => want_mxac = true,
            b"SecD" => sec_desc = Some(super::acl::parse_sd_context(data)?),
            b"QFid" => want_qfid = true,
            b"AlSi" => {
                alloc_size = Some(
                    crate::wire::le_u64(data, 0)
                        .map_err(|_| Fail::Status(status::INVALID_PARAMETER))?,
                );
            }
            // EAs for a created or overwritten file (MS-SMB2 2.2.13.2.1).
            b"ExtA" if c.disposition != FILE_OPEN => {
                create_eas = super::info::parse_create_eas(data).map_err(Fail::Status)?;
                if !create_eas.is_empty() && !root.xattrs_supported() {
                    return Err(Fail::Status(status::EAS_NOT_SUPPORTED));
                }
            }
            b"TWrp" => return Err(Fail::Status(status::OBJECT_NAME_NOT_FOUND)),
            _ => {}
        }
    }

    let acl = super::acl::OpenCheck::new(
        super::acl::Token::of_session(conn, req.session_id),
        &root,
        super::acl::OpenRequest {
            desired: c.desired,
            disposition: c.disposition,
            options: c.options,
            tree_maximal: maximal,
            sec_desc,
        },
    );
    acl.before_open()?;

    // Open without truncating first: share modes and attributes are checked before an
    // overwrite touches the data.
    let creating_disp = match c.disposition {
        FILE_SUPERSEDE | FILE_OPEN_IF | FILE_OVERWRITE_IF => Disposition::OpenIf,
        FILE_CREATE => Disposition::Create,
        _ => Disposition::Open,
    };
    let kind = if want_dir {
        Kind::Directory
    } else if c.options & FILE_NON_DIRECTORY_FILE != 0 || stream == StreamPart::DefaultData {
        Kind::NonDirectory
    } else {
        Kind::Any
    };
    let mode = if want_dir { 0o755 } else { 0o644 };
    let overwrites = matches!(
        c.disposition,
        FILE_OVERWRITE | FILE_OVERWRITE_IF | FILE_SUPERSEDE
    );
    let opts = OpenOptions {
        // The descriptor always reads (metadata, and data for the checks I/O makes
        // against the open's granted access, which is what decides).
        read: true,
        write: granted & (FILE_WRITE_DATA | FILE_APPEND_DATA) != 0
            || matches!(
                c.disposition,
                FILE_SUPERSEDE | FILE_OVERWRITE | FILE_OVERWRITE_IF
            ),
        disposition: creating_disp,
        kind,
        attributes_on_create: attributes_on_create(c.attributes),
        mode,
    };
    // Files are not encrypted here (FILE_SUPPORTS_ENCRYPTION is not advertised): a create
    // or overwrite that asks for it is refused, as a standalone Windows server refuses it
    // without an EFS certificate, rather than silently made unencrypted. An existing file
    // opened without overwriting ignores the attributes.
    let mut base_created = None;
    let (handle, created, path) = if let StreamPart::Named(s) = &stream {
        let (h, opened, p) = super::streams::open(conn, &root, &path, s, &opts)?;
        base_created = Some(opened.base_created);
        (h, opened.created, p)
    } else if c.attributes & FILE_ATTRIBUTE_ENCRYPTED != 0 && !want_dir {
        if overwrites || c.disposition == FILE_CREATE {
            return Err(Fail::Status(status::ACCESS_DENIED));
        }
        let existing = OpenOptions {
            disposition: Disposition::Open,
            ..opts
        };
        open_resolved(conn, &root, path, &existing).map_err(|e| match e {
            Fail::Status(status::OBJECT_NAME_NOT_FOUND) => Fail::Status(status::ACCESS_DENIED),
            e => e,
        })?
    } else {
        open_resolved(conn, &root, path, &opts)?
    };
    let meta = handle.meta().map_err(|e| Fail::Status(fs_status(&e)))?;
    let key = super::streams::key_of(&meta, &handle);
    // Whether the file was created (a stream may be new on an existing file).
    let base_created = base_created.unwrap_or(created);
    let is_dir = meta.is_dir;
    // The descriptor's access check (a new object: its initial descriptor stored).
    let (granted, maximal) = acl.after_open(&handle, &path, base_created)?;
    if super::durable::purge_for_open(
        conn,
        key,
        granted,
        c.share_access,
        c.disposition,
        c.options,
        c.oplock,
        &c.contexts,
    )? {
        // A disconnected durable open in the way was closed (its delete on close may have
        // removed the file): start again.
        drop(handle);
        return handle_create(conn, req);
    }
    let who = OpenRef {
        conn: conn.id,
        volatile: conn.server.new_id(),
    };
    let file_id = FileId {
        persistent: conn.server.new_id(),
        volatile: who.volatile,
    };
    let oplock;
    {
        let server = conn.server.clone();
        let mut files = server
            .files
            .lock()
            .map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
        let mut share_ok = true;
        super::streams::check_open(&files, &key, granted, created)?;
        if !created {
            if files.is_delete_pending(&key) {
                return Err(Fail::Status(status::DELETE_PENDING));
            }
            if meta.dos_attributes & FILE_ATTRIBUTE_READONLY != 0 {
                if c.options & FILE_DELETE_ON_CLOSE != 0 {
                    return Err(Fail::Status(status::CANNOT_DELETE));
                }
                if granted & (FILE_WRITE_DATA | FILE_APPEND_DATA) != 0
                    || matches!(
                        c.disposition,
                        FILE_OVERWRITE | FILE_OVERWRITE_IF | FILE_SUPERSEDE
                    )
                {
                    return Err(Fail::Status(status::ACCESS_DENIED));
                }
            }
            share_ok = files.check_share(&key, granted, c.share_access);
            if !is_dir
                && overwrites
                && !overwrite_keeps_hidden_system(meta.dos_attributes, c.attributes)
            {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
        }
        if is_dir && c.options & FILE_DELETE_ON_CLOSE != 0 {
            if let Ok(entries) = handle.read_dir() {
                if !entries.entries.is_empty() {
                    if created {
                        // cannot happen: a new directory is empty
                    }
                    return Err(Fail::Status(status::DIRECTORY_NOT_EMPTY));
                }
            }
        }
        // Breaks what the open conflicts with (or waits for that), then its oplock or lease.
        let args = super::oplock::OpenArgs {
            key,
            who,
            file_id,
            requested: c.oplock,
            contexts: &c.contexts,
            access: granted,
            share_ok,
            disposition: c.disposition,
            options: c.options,
            is_dir,
            created,
        };
        oplock = match super::oplock::on_open(conn, req, &mut files, &args) {
            Ok(granted) => granted,
            Err(reply) => {
                super::durable::note_pending(conn, req, &durable_request, &reply);
                return reply;
            }
        };
        files.add_open(
            key,
            share_id(&root),
            &path,
            ShareEntry {
                who,
                access: granted,
                share: c.share_access,
            },
        );
    }
    let mut action = if created { FILE_CREATED } else { FILE_OPENED };
    if !created && overwrites {
        if is_dir {
            release(conn, key, who);
            return Err(Fail::Status(status::FILE_IS_A_DIRECTORY));
        }
        if let Err(e) = handle.set_len(0) {
            release(conn, key, who);
            return Err(Fail::Status(fs_status(&e)));
        }
        if !key.is_stream() {
            // All of the file's data is replaced: its named streams go too.
            let _ = handle.remove_streams();
            let _ = handle
                .set_dos_attributes(attributes_on_create(c.attributes) | FILE_ATTRIBUTE_ARCHIVE);
        }
        action = if c.disposition == FILE_SUPERSEDE {
            FILE_SUPERSEDED
        } else {
            FILE_OVERWRITTEN
        };
    }
    if !create_eas.is_empty() && action != FILE_OPENED {
        if let Err(st) = super::info::set_eas(&handle, &create_eas) {
            release(conn, key, who);
            if base_created {
                let _ = if is_dir {
                    root.rmdir(&path)
                } else {
                    root.unlink(&path)
                };
            }
            return Err(Fail::Status(st));
        }
    }
    if let Some(a) = alloc_size.filter(|_| created || action != FILE_OPENED) {
        let _ = handle.allocate(a);
    }
    let meta = handle.meta().map_err(|e| Fail::Status(fs_status(&e)))?;
    if base_created {
        notify::report(conn, &root, &path, notify::FILE_ACTION_ADDED, is_dir);
    } else if action != FILE_OPENED {
        notify::report(conn, &root, &path, notify::FILE_ACTION_MODIFIED, is_dir);
    }

    if want_mxac {
        let mut d = Vec::with_capacity(8);
        d.put_u32(0);
        d.put_u32(maximal);
        contexts_out.push((b"MxAc", d));
    }
    if want_qfid {
        let mut d = Vec::with_capacity(32);
        d.put_u64(meta.ino);
        d.put_u64(meta.dev);
        d.extend_from_slice(&[0u8; 16]);
        contexts_out.push((b"QFid", d));
    }
    if let Some(d) = &oplock.context {
        contexts_out.push((b"RqLs", d.clone()));
    }
    let open = Open {
        file_id,
        session_id: req.session_id,
        tree_id: req.tree_id,
        path,
        kind: OpenKind::File(Arc::new(handle)),
        granted_access: granted,
        share_access: c.share_access,
        create_options: c.options,
        position: 0,
        mode: c.options & (FILE_WRITE_THROUGH | 0x10 | 0x20 | 0x4 | 0x8),
        is_dir,
        key: Some(key),
        root: Some(root),
        dir_enum: None,
        delete_on_close: c.options & FILE_DELETE_ON_CLOSE != 0,
    };
    conn.opens.insert(file_id.volatile, open);
    if let Some(ctx) = super::durable::grant(
        conn,
        req,
        &durable_request,
        file_id.volatile,
        &oplock,
        action,
    ) {
        contexts_out.push(ctx);
    }

    Ok(Reply::ok(response_body(
        &super::info::basics(&meta),
        action,
        oplock.level,
        file_id,
        &contexts_out,
    )))
}

/// A CREATE response body (MS-SMB2 2.2.14).
pub(super) fn response_body(
    fb: &duet_fscc::FileBasics,
    action: u32,
    level: u8,
    file_id: FileId,
    contexts: &[(&[u8; 4], Vec<u8>)],
) -> Vec<u8> {
    let mut body = Vec::with_capacity(160);
    body.put_u16(89);
    body.put_u8(level);
    body.put_u8(0);
    body.put_u32(action);
    body.put_u64(fb.creation_time);
    body.put_u64(fb.last_access_time);
    body.put_u64(fb.last_write_time);
    body.put_u64(fb.change_time);
    body.put_u64(fb.allocation_size);
    body.put_u64(fb.end_of_file);
    body.put_u32(fb.attributes);
    body.put_u32(0);
    file_id.put(&mut body);
    body.put_u32(0);
    body.put_u32(0);
    let (off, len) = put_contexts(&mut body, contexts);
    body.set_u32(80, off);
    body.set_u32(84, len);
    if len == 0 {
        body.push(0);
    }
    body
}

/// The FileAttributes of a CREATE that a new (or overwritten) file keeps (MS-FSA
/// 2.1.5.1.1: DIRECTORY, NORMAL and the bits only the file system sets are dropped; files
/// also get ARCHIVE, which hal adds).
pub fn attributes_on_create(attributes: u32) -> u32 {
    attributes
        & (FILE_ATTRIBUTE_READONLY
            | FILE_ATTRIBUTE_HIDDEN
            | FILE_ATTRIBUTE_SYSTEM
            | FILE_ATTRIBUTE_ARCHIVE
            | FILE_ATTRIBUTE_TEMPORARY
            | FILE_ATTRIBUTE_OFFLINE
            | FILE_ATTRIBUTE_NOT_CONTENT_INDEXED)
}

/// An overwrite or supersede of a file that is HIDDEN or SYSTEM must ask for those
/// attributes again, else STATUS_ACCESS_DENIED (MS-FSA 2.1.5.1.2; CreateFile with
/// CREATE_ALWAYS behaves so).
pub fn overwrite_keeps_hidden_system(existing: u32, asked: u32) -> bool {
    existing & (FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM) & !asked == 0
}

/// Opens (or creates, as `opts.disposition` says) a share path, matching names
/// case-insensitively (`names`): an existing object is opened under its name on disk;
/// a new one gets the client's spelling of the missing components. Returns the handle,
/// whether it was created and the path on disk.
fn open_resolved(
    conn: &Conn,
    root: &ShareRoot,
    path: String,
    opts: &OpenOptions,
) -> Result<(Handle, bool, String), Fail> {
    let collision = |e: FsError| {
        if matches!(e, FsError::Exists) {
            Fail::Status(status::OBJECT_NAME_COLLISION)
        } else {
            Fail::Status(fs_status(&e))
        }
    };
    // Existing objects first, as spelled: the common case costs nothing more.
    let existing = OpenOptions {
        disposition: Disposition::Open,
        ..*opts
    };
    let miss = match root.open_file(&path, &existing) {
        Ok((h, _)) if opts.disposition == Disposition::Create => {
            drop(h);
            return Err(Fail::Status(status::OBJECT_NAME_COLLISION));
        }
        Ok((h, _)) => return Ok((h, false, path)),
        Err(e @ (FsError::NotFound | FsError::PathNotFound)) => e,
        Err(e) => return Err(Fail::Status(fs_status(&e))),
    };
    let (path, seen) = names::resolve_missing(&conn.server.names, root, &path, &miss);
    if opts.disposition == Disposition::Open {
        return root
            .open_file(&path, opts)
            .map(|(h, _)| (h, false, path))
            .map_err(collision);
    }
    let (h, created) = root.open_file(&path, opts).map_err(collision)?;
    if created {
        names::note_created(&conn.server.names, root, &path, seen);
    }
    Ok((h, created, path))
}

fn release(conn: &Conn, key: FileKey, who: OpenRef) {
    if let Ok(mut f) = conn.server.files.lock() {
        f.remove_open(&key, who);
    }
}

fn open_pipe(conn: &mut Conn, req: &Req, c: &CreateReq) -> HResult {
    let name = c.name.trim_start_matches('\\');
    let Some(pipe) = duet_rpc::Pipe::open(name) else {
        return Err(Fail::Status(status::OBJECT_NAME_NOT_FOUND));
    };
    let file_id = FileId {
        persistent: conn.server.new_id(),
        volatile: conn.server.new_id(),
    };
    conn.opens.insert(
        file_id.volatile,
        Open {
            file_id,
            session_id: req.session_id,
            tree_id: req.tree_id,
            path: name.to_string(),
            kind: OpenKind::Pipe(Box::new(pipe)),
            granted_access: map_generic(c.desired, FILE_ALL_ACCESS),
            share_access: c.share_access,
            create_options: c.options,
            position: 0,
            mode: 0,
            is_dir: false,
            key: None,
            root: None,
            dir_enum: None,
            delete_on_close: false,
        },
    );
    let fb = super::info::pipe_basics(0, false);
    Ok(Reply::ok(response_body(&fb, FILE_OPENED, 0, file_id, &[])))
}

/// Finds the open a request names (a related compound member's FileId comes from the
/// CREATE before it). Unknown or foreign FileIds get STATUS_FILE_CLOSED.
pub fn lookup_fid(conn: &Conn, req: &Req, fid: FileId) -> Result<u64, Fail> {
    let fid = if fid == FileId::RELATED {
        match req.related {
            Some(super::Related {
                file_id: Some(f), ..
            }) => f,
            Some(super::Related {
                create_err: Some(st),
                ..
            }) => return Err(Fail::Status(st)),
            _ => return Err(Fail::Status(status::FILE_CLOSED)),
        }
    } else {
        fid
    };
    match conn.opens.get(&fid.volatile) {
        Some(o)
            if o.file_id.persistent == fid.persistent
                && o.session_id == req.session_id
                && o.tree_id == req.tree_id =>
        {
            super::durable::check_channel_sequence(conn, req, fid.volatile)?;
            req.resolved_file_id.set(Some(fid));
            super::durable::touched(conn, fid);
            Ok(fid.volatile)
        }
        _ => Err(Fail::Status(status::FILE_CLOSED)),
    }
}

pub fn handle_close(conn: &mut Conn, req: &Req) -> HResult {
    let b = req.body();
    b.expect_structure_size(24)?;
    let flags = b.u16(2)?;
    let fid = FileId::parse(&b, 8)?;
    let vol = lookup_fid(conn, req, fid)?;
    let mut body = Vec::with_capacity(60);
    body.put_u16(60);
    let meta = if flags & CLOSE_FLAG_POSTQUERY_ATTRIB != 0 {
        conn.opens
            .get(&vol)
            .and_then(|o| o.handle())
            .and_then(|h| h.meta().ok())
    } else {
        None
    };
    close_open(conn, vol);
    match meta {
        Some(m) => {
            let fb = super::info::basics(&m);
            body.put_u16(CLOSE_FLAG_POSTQUERY_ATTRIB);
            body.put_u32(0);
            body.put_u64(fb.creation_time);
            body.put_u64(fb.last_access_time);
            body.put_u64(fb.last_write_time);
            body.put_u64(fb.change_time);
            body.put_u64(fb.allocation_size);
            body.put_u64(fb.end_of_file);
            body.put_u32(fb.attributes);
        }
        None => {
            body.resize(60, 0);
        }
    }
    Ok(Reply::ok(body))
}

/// Closes an open: share-mode entry and locks go, pending notifies end with
/// STATUS_NOTIFY_CLEANUP, and the last close of a delete-pending file deletes it.
pub fn close_open(conn: &mut Conn, vol: u64) {
    let Some(open) = conn.opens.remove(&vol) else {
        return;
    };
    super::durable::on_close(conn, &open);
    notify::close_handle(conn, vol);
    super::lock::close_handle(conn, vol);
    let (Some(key), Some(root)) = (open.key, open.root.as_ref()) else {
        return;
    };
    let who = OpenRef {
        conn: conn.id,
        volatile: vol,
    };
    let root = root.clone();
    let root = &root;
    let last = {
        let Ok(mut files) = conn.server.files.lock() else {
            return;
        };
        if open.delete_on_close {
            files.set_delete_pending(&key, true);
        }
        files.remove_open(&key, who)
    };
    super::lock::wake(&conn.server, key);
    super::oplock::wake_file(&conn.server, key);
    if key.is_stream() {
        super::streams::closed(conn, root, open.handle(), key, last);
        return;
    }
    if let Some((path, true)) = last {
        let r = if open.is_dir {
            root.rmdir(&path)
        } else {
            root.unlink(&path)
        };
        match r {
            Ok(()) => notify::report(conn, root, &path, notify::FILE_ACTION_REMOVED, open.is_dir),
            Err(e) => tracing::warn!(path, error = %e, "delete on close failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse_path("").unwrap(), "");
        assert_eq!(parse_path("a\\b\\c.txt").unwrap(), "a/b/c.txt");
        assert_eq!(parse_path("dir\\").unwrap(), "dir");
        assert_eq!(parse_path("f::$DATA").unwrap(), "f");
        assert_eq!(parse_path("\\abs"), Err(status::INVALID_PARAMETER));
        assert_eq!(parse_path("a\\..\\b"), Err(status::OBJECT_PATH_SYNTAX_BAD));
        assert_eq!(parse_path(".."), Err(status::OBJECT_PATH_SYNTAX_BAD));
        assert_eq!(parse_path("a\\\\b"), Err(status::OBJECT_NAME_INVALID));
        assert_eq!(parse_path("a/b"), Err(status::OBJECT_NAME_INVALID));
        assert_eq!(parse_path("a*"), Err(status::OBJECT_NAME_INVALID));
        assert_eq!(parse_path("f:stream"), Err(status::OBJECT_NAME_INVALID));
        assert_eq!(parse_path("d::$DATA\\f"), Err(status::OBJECT_NAME_INVALID));
        assert_eq!(
            parse_path(&"x".repeat(256)),
            Err(status::OBJECT_NAME_INVALID)
        );
    }

    #[test]
    fn contexts_parse_and_reject() {
        let mut body = Vec::new();
        let (off, len) = put_contexts(&mut body, &[(b"MxAc", vec![1, 2, 3, 4]), (b"QFid", vec![])]);
        assert_eq!(off as usize, HEADER_LEN);
        let ctx = &body[..len as usize];
        let parsed = parse_contexts(ctx).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0], (&b"MxAc"[..], &[1u8, 2, 3, 4][..]));
        assert_eq!(parsed[1].0, b"QFid");
        // A Next that points into the middle of nowhere is refused.
        let mut bad = ctx.to_vec();
        bad[0] = 3;
        assert!(parse_contexts(&bad).is_err());
        assert!(parse_contexts(&[1, 2, 3]).is_err());
    }

    use super::super::testkit::{CreateArgs, Kit};

    fn args(name: &str, disposition: u32, attributes: u32, options: u32) -> CreateArgs {
        CreateArgs {
            disposition,
            attributes,
            options,
            ..CreateArgs::new(name)
        }
    }

    #[test]
    fn create_tree_connection_option_is_not_supported() {
        let kit = Kit::new();
        let mut c = kit.client();
        assert_eq!(
            c.create(&args("f", FILE_OPEN_IF, 0, FILE_CREATE_TREE_CONNECTION))
                .unwrap_err(),
            status::NOT_SUPPORTED
        );
        assert_eq!(
            c.create(&args("f", FILE_OPEN_IF, 0, FILE_OPEN_BY_FILE_ID))
                .unwrap_err(),
            status::NOT_SUPPORTED
        );
        assert_eq!(
            c.create(&args("f", FILE_OPEN_IF, 0, 0x0100_0000))
                .unwrap_err(),
            status::INVALID_PARAMETER
        );
        // Options the server may ignore are accepted (gentest's ok mask 0x00efcf7e).
        for bit in [
            0x2u32,
            0x4,
            0x8,
            0x10,
            0x20,
            0x40,
            0x100,
            0x200,
            0x400,
            0x800,
            0x4000,
            0x0080_0000,
        ] {
            assert!(
                c.touch(&args("f", FILE_OPEN_IF, 0, bit)).is_ok(),
                "option {bit:#x}"
            );
        }
    }

    #[test]
    fn attributes_a_new_file_keeps() {
        assert_eq!(
            attributes_on_create(FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_NORMAL),
            0
        );
        assert_eq!(attributes_on_create(0x0000_7FB7), 0x0000_3127);
        let kit = Kit::new();
        let mut c = kit.client();
        let cases = [
            (FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_ARCHIVE),
            (
                FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_DIRECTORY,
                FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_ARCHIVE,
            ),
            (FILE_ATTRIBUTE_NORMAL, FILE_ATTRIBUTE_ARCHIVE),
            (
                FILE_ATTRIBUTE_TEMPORARY,
                FILE_ATTRIBUTE_TEMPORARY | FILE_ATTRIBUTE_ARCHIVE,
            ),
            (
                FILE_ATTRIBUTE_OFFLINE | FILE_ATTRIBUTE_SYSTEM,
                FILE_ATTRIBUTE_OFFLINE | FILE_ATTRIBUTE_SYSTEM | FILE_ATTRIBUTE_ARCHIVE,
            ),
            (
                FILE_ATTRIBUTE_SPARSE_FILE
                    | FILE_ATTRIBUTE_COMPRESSED
                    | FILE_ATTRIBUTE_REPARSE_POINT,
                FILE_ATTRIBUTE_ARCHIVE,
            ),
        ];
        for (i, (asked, got)) in cases.into_iter().enumerate() {
            let name = format!("f{i}");
            let created = c.touch(&args(&name, FILE_OPEN_IF, asked, 0)).unwrap();
            assert_eq!(created.action, FILE_CREATED);
            assert_eq!(created.attributes, got, "asked {asked:#x}");
            assert!(kit.path(&name).is_file());
        }
        // Overwriting keeps the same bits (DIRECTORY is dropped, not an error).
        let o = c
            .touch(&args(
                "f0",
                FILE_OVERWRITE_IF,
                FILE_ATTRIBUTE_READONLY | FILE_ATTRIBUTE_DIRECTORY,
                0,
            ))
            .unwrap();
        assert_eq!(o.action, FILE_OVERWRITTEN);
        assert_eq!(
            o.attributes,
            FILE_ATTRIBUTE_READONLY | FILE_ATTRIBUTE_ARCHIVE
        );
    }

    #[test]
    fn overwriting_a_hidden_or_system_file_must_ask_for_it() {
        assert!(overwrite_keeps_hidden_system(FILE_ATTRIBUTE_ARCHIVE, 0));
        assert!(!overwrite_keeps_hidden_system(FILE_ATTRIBUTE_HIDDEN, 0));
        assert!(!overwrite_keeps_hidden_system(
            FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM,
            FILE_ATTRIBUTE_HIDDEN
        ));
        assert!(overwrite_keeps_hidden_system(
            FILE_ATTRIBUTE_SYSTEM,
            FILE_ATTRIBUTE_SYSTEM | FILE_ATTRIBUTE_HIDDEN
        ));
        let kit = Kit::new();
        let mut c = kit.client();
        c.touch(&args("h", FILE_CREATE, FILE_ATTRIBUTE_HIDDEN, 0))
            .unwrap();
        std::fs::write(kit.path("h"), b"data").unwrap();
        for disp in [FILE_OVERWRITE, FILE_OVERWRITE_IF, FILE_SUPERSEDE] {
            assert_eq!(
                c.create(&args("h", disp, FILE_ATTRIBUTE_NORMAL, 0))
                    .unwrap_err(),
                status::ACCESS_DENIED
            );
        }
        // Refused before the data was touched; plain opens are fine.
        assert_eq!(std::fs::read(kit.path("h")).unwrap(), b"data");
        assert_eq!(
            c.touch(&args("h", FILE_OPEN_IF, 0, 0)).unwrap().action,
            FILE_OPENED
        );
        let o = c
            .touch(&args("h", FILE_OVERWRITE_IF, FILE_ATTRIBUTE_HIDDEN, 0))
            .unwrap();
        assert_eq!(o.action, FILE_OVERWRITTEN);
        assert_eq!(std::fs::read(kit.path("h")).unwrap(), b"");
    }

    #[test]
    fn encryption_is_refused_not_ignored() {
        let kit = Kit::new();
        let mut c = kit.client();
        let enc = FILE_ATTRIBUTE_ENCRYPTED;
        for disp in [FILE_CREATE, FILE_OPEN_IF, FILE_OVERWRITE_IF, FILE_SUPERSEDE] {
            assert_eq!(
                c.create(&args("e", disp, enc, 0)).unwrap_err(),
                status::ACCESS_DENIED,
                "disposition {disp}"
            );
        }
        assert!(!kit.path("e").exists());
        c.touch(&args("e", FILE_CREATE, 0, 0)).unwrap();
        assert_eq!(
            c.create(&args("e", FILE_OVERWRITE, enc, 0)).unwrap_err(),
            status::ACCESS_DENIED
        );
        // Opening an existing file ignores the attributes.
        assert_eq!(
            c.touch(&args("e", FILE_OPEN_IF, enc, 0)).unwrap().action,
            FILE_OPENED
        );
        assert_eq!(
            c.touch(&args("e", FILE_OPEN, enc, 0)).unwrap().attributes,
            FILE_ATTRIBUTE_ARCHIVE
        );
    }

    #[test]
    fn names_match_without_regard_to_case() {
        let kit = Kit::new();
        let mut c = kit.client();
        c.touch(&args("Docs", FILE_CREATE, 0, FILE_DIRECTORY_FILE))
            .unwrap();
        c.touch(&args("Docs\\Report.TXT", FILE_CREATE, 0, 0))
            .unwrap();
        // Opens find the name on disk whatever the case.
        assert_eq!(
            c.touch(&args("docs\\report.txt", FILE_OPEN, 0, 0))
                .unwrap()
                .action,
            FILE_OPENED
        );
        assert_eq!(
            c.touch(&args("DOCS", FILE_OPEN, 0, FILE_DIRECTORY_FILE))
                .unwrap()
                .action,
            FILE_OPENED
        );
        // A create of another spelling of an existing name is a collision, and an
        // open-if opens the existing file rather than making a second one.
        assert_eq!(
            c.create(&args("DOCS\\REPORT.txt", FILE_CREATE, 0, 0))
                .unwrap_err(),
            status::OBJECT_NAME_COLLISION
        );
        assert_eq!(
            c.touch(&args("docs\\REPORT.txt", FILE_OPEN_IF, 0, 0))
                .unwrap()
                .action,
            FILE_OPENED
        );
        assert_eq!(
            c.touch(&args("docs\\report.TXT", FILE_OVERWRITE_IF, 0, 0))
                .unwrap()
                .action,
            FILE_OVERWRITTEN
        );
        // New names keep the client's spelling, under the existing directory.
        assert_eq!(
            c.touch(&args("DOCS\\New.txt", FILE_CREATE, 0, 0))
                .unwrap()
                .action,
            FILE_CREATED
        );
        assert!(kit.path("Docs/New.txt").is_file());
        assert_eq!(
            c.touch(&args("docs\\NEW.TXT", FILE_OPEN_IF, 0, 0))
                .unwrap()
                .action,
            FILE_OPENED
        );
        let names: Vec<_> = std::fs::read_dir(kit.path("Docs"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // A name created behind the server's back is found too.
        std::fs::write(kit.path("Docs/Outside.bin"), b"").unwrap();
        assert_eq!(
            c.touch(&args("docs\\outside.BIN", FILE_OPEN, 0, 0))
                .unwrap()
                .action,
            FILE_OPENED
        );
        assert_eq!(
            c.create(&args("docs\\missing", FILE_OPEN, 0, 0))
                .unwrap_err(),
            status::OBJECT_NAME_NOT_FOUND
        );
        assert_eq!(
            c.create(&args("nodir\\x", FILE_OPEN_IF, 0, 0)).unwrap_err(),
            status::OBJECT_PATH_NOT_FOUND
        );
    }

    #[test]
    fn generic_mapping() {
        assert_eq!(map_generic(GENERIC_READ, 0), FILE_GENERIC_READ);
        assert_eq!(map_generic(MAXIMUM_ALLOWED, 0x1F01FF), 0x1F01FF);
    }
}
