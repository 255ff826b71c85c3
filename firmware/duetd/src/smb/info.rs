//! QUERY_INFO and SET_INFO (MS-SMB2 2.2.37-2.2.40, 3.3.5.20, 3.3.5.21): file,
//! filesystem and security information, renames, delete dispositions, sizes and times.
//!
//! Owns: access checks and the side effects of SET_INFO. The byte layouts live in
//! `duet_fscc`. Never renames or deletes across an open that forbids it.

use duet_fscc::{consts::*, FileBasics, FsStats, FullEa, OpenInfo, SetFileInfo, Sid};
use duet_hal::fs::{Ea, FsError, Handle, Meta, SetTimes};

use super::create::{fs_status, lookup_fid, parse_path};
use super::files::{OpenKind, FILE_ATTRIBUTE_VALID_SET};
use super::{notify, Conn, Fail, FileId, HResult, Reply, Req};
use crate::wire::{status, PutLe, HEADER_LEN};

pub const INFO_FILE: u8 = 1;
pub const INFO_FILESYSTEM: u8 = 2;
pub const INFO_SECURITY: u8 = 3;
pub const INFO_QUOTA: u8 = 4;

/// QUERY_INFO Flags for FileFullEaInformation (MS-SMB2 2.2.37).
const SL_RESTART_SCAN: u32 = 0x1;
const SL_RETURN_SINGLE_ENTRY: u32 = 0x2;
const SL_INDEX_SPECIFIED: u32 = 0x4;

// NTSTATUS values of the EA operations (MS-ERREF 2.3).
const STATUS_NONEXISTENT_EA_ENTRY: u32 = 0x8000_0011;
const STATUS_NO_MORE_EAS: u32 = 0x8000_0012;
const STATUS_INVALID_EA_NAME: u32 = 0x8000_0013;

/// hal metadata in NT terms.
pub fn basics(m: &Meta) -> FileBasics {
    let mut attributes = m.dos_attributes;
    if m.is_dir {
        attributes |= FILE_ATTRIBUTE_DIRECTORY;
        attributes &= !FILE_ATTRIBUTE_NORMAL;
    } else {
        attributes &= !FILE_ATTRIBUTE_DIRECTORY;
    }
    if attributes == 0 {
        attributes = FILE_ATTRIBUTE_NORMAL;
    }
    FileBasics {
        creation_time: m.creation_time,
        last_access_time: m.access_time,
        last_write_time: m.write_time,
        change_time: m.change_time,
        end_of_file: if m.is_dir { 0 } else { m.size },
        allocation_size: if m.is_dir { 0 } else { m.allocation },
        attributes,
        file_id: m.ino,
        number_of_links: m.nlink.min(u32::MAX as u64) as u32,
        is_directory: m.is_dir,
        delete_pending: false,
        ea_size: m.ea_size,
    }
}

/// What a named pipe reports as its basic and standard information: fixed values, the
/// times now.
pub fn pipe_basics(file_id: u64, delete_pending: bool) -> FileBasics {
    let now = crate::util::now_filetime();
    FileBasics {
        creation_time: now,
        last_access_time: now,
        last_write_time: now,
        change_time: now,
        end_of_file: 0,
        allocation_size: 4096,
        attributes: FILE_ATTRIBUTE_NORMAL,
        file_id,
        number_of_links: 1,
        is_directory: false,
        delete_pending,
        ea_size: 0,
    }
}

/// The SID a user of this server appears as: S-1-5-21-<machine>-<rid>, the machine part
/// derived from the server's NetBIOS name so it is stable across restarts.
pub fn user_sid(server_name: &str, user: &str) -> Sid {
    let h = |s: &str, seed: u32| {
        s.to_uppercase()
            .bytes()
            .fold(seed, |a, b| a.wrapping_mul(16777619) ^ b as u32)
    };
    let rid = 1000 + (h(user, 0x811c_9dc5) % 1_000_000);
    Sid::new(
        5,
        &[
            21,
            h(server_name, 1),
            h(server_name, 2),
            h(server_name, 3),
            rid,
        ],
    )
    .unwrap_or_else(|_| Sid::everyone())
}

/// Applies OutputBufferLength to an encoded answer (MS-SMB2 3.3.5.20.1/2): below the
/// class's minimum it is STATUS_INFO_LENGTH_MISMATCH; a longer answer is cut and sent
/// with STATUS_BUFFER_OVERFLOW.
fn output(mut data: Vec<u8>, min: Option<usize>, max: usize) -> HResult {
    let cut = duet_fscc::apply_output_buffer_length(&mut data, min.unwrap_or(0), max)
        .map_err(fscc_status)?;
    let st = if cut {
        status::BUFFER_OVERFLOW
    } else {
        status::SUCCESS
    };
    Ok(Reply::Body {
        status: st,
        body: info_body(&data),
    })
}

/// The access a file information class needs (MS-SMB2 3.3.5.20.1); every other class
/// needs none beyond the open itself.
fn file_class_access(class: u8) -> u32 {
    match class {
        FILE_BASIC_INFORMATION
        | FILE_ALL_INFORMATION
        | FILE_PIPE_INFORMATION
        | FILE_PIPE_LOCAL_INFORMATION
        | FILE_PIPE_REMOTE_INFORMATION
        | FILE_NETWORK_OPEN_INFORMATION
        | FILE_ATTRIBUTE_TAG_INFORMATION => FILE_READ_ATTRIBUTES,
        FILE_FULL_EA_INFORMATION => FILE_READ_EA,
        _ => 0,
    }
}

/// The volume serial number reported for a share's filesystem.
fn volume_serial(fs_id: u64) -> u32 {
    (fs_id as u32) ^ ((fs_id >> 32) as u32)
}

/// hal EA errors as NTSTATUS (MS-FSA 2.1.5.15.5).
fn ea_status(e: &FsError) -> u32 {
    match e {
        FsError::EasNotSupported => status::EAS_NOT_SUPPORTED,
        FsError::EaTooLarge => status::EA_TOO_LARGE,
        // A name this store cannot hold (longer than hal's limit).
        FsError::InvalidParameter(_) => STATUS_INVALID_EA_NAME,
        other => fs_status(other),
    }
}

/// Stores EAs from a FILE_FULL_EA_INFORMATION list (SET_INFO FileFullEaInformation,
/// the ExtA create context): each replaces the EA of that name, an empty value
/// removes it. Names are case-insensitive.
pub fn set_eas(handle: &Handle, eas: &[FullEa]) -> Result<(), u32> {
    let changes: Vec<Ea> = eas
        .iter()
        .map(|(name, value, flags)| Ea {
            name: name.clone(),
            value: value.clone(),
            flags: *flags,
        })
        .collect();
    handle.set_eas(&changes).map_err(|e| ea_status(&e))
}

/// Decodes the ExtA create context (MS-SMB2 2.2.13.2.1: a FILE_FULL_EA_INFORMATION
/// list). Empty data is no EAs.
pub fn parse_create_eas(data: &[u8]) -> Result<Vec<FullEa>, u32> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    match duet_fscc::decode_set_file_info(FILE_FULL_EA_INFORMATION, data) {
        Ok(SetFileInfo::FullEa(eas)) => Ok(eas),
        Ok(_) => Err(status::INVALID_PARAMETER),
        Err(e) => Err(e.ntstatus()),
    }
}

/// FileFullEaInformation (MS-FSA 2.1.5.12.12, MS-SMB2 2.2.37): the EAs named in
/// `input` (a FILE_GET_EA_INFORMATION list; a missing one comes back with an empty
/// value), or the file's EAs from the open's scan position (restarted by
/// SL_RESTART_SCAN, set by SL_INDEX_SPECIFIED with the 1-based `index`), as many
/// whole entries as fit in `max` bytes, or one with SL_RETURN_SINGLE_ENTRY.
fn query_eas(handle: &Handle, flags: u32, index: u32, input: &[u8], max: usize) -> HResult {
    let all: Vec<FullEa> = handle
        .eas()
        .map_err(|e| Fail::Status(ea_status(&e)))?
        .into_iter()
        .map(|e| (e.name, e.value, e.flags))
        .collect();
    let listed = !input.is_empty();
    let (list, start) = if listed {
        let names = duet_fscc::decode_get_ea_list(input).map_err(fscc_status)?;
        let picked = names
            .into_iter()
            .map(|n| {
                all.iter()
                    .find(|(have, _, _)| have.eq_ignore_ascii_case(&n))
                    .cloned()
                    .unwrap_or((n, Vec::new(), 0))
            })
            .collect();
        (picked, 0)
    } else {
        let start = if flags & SL_INDEX_SPECIFIED != 0 {
            if index == 0 || index as usize > all.len() {
                return Err(Fail::Status(if all.is_empty() {
                    status::NO_EAS_ON_FILE
                } else {
                    STATUS_NONEXISTENT_EA_ENTRY
                }));
            }
            index as usize - 1
        } else if flags & SL_RESTART_SCAN != 0 {
            0
        } else {
            handle.ea_cursor() as usize
        };
        (all.clone(), start)
    };
    if all.is_empty() {
        return Err(Fail::Status(status::NO_EAS_ON_FILE));
    }
    if start >= list.len() {
        return Err(Fail::Status(STATUS_NO_MORE_EAS));
    }
    let mut want = &list[start..];
    if flags & SL_RETURN_SINGLE_ENTRY != 0 {
        want = &want[..1];
    }
    let mut data = Vec::new();
    let n = duet_fscc::encode_full_ea_list(want, max, &mut data).map_err(fscc_status)?;
    if !listed {
        handle.set_ea_cursor((start + n) as u32);
    }
    let st = if n < want.len() {
        status::BUFFER_OVERFLOW
    } else {
        status::SUCCESS
    };
    Ok(Reply::Body {
        status: st,
        body: info_body(&data),
    })
}

fn info_body(data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(8 + data.len() + 1);
    body.put_u16(9);
    body.put_u16((HEADER_LEN + 8) as u16);
    body.put_u32(data.len() as u32);
    body.extend_from_slice(data);
    if data.is_empty() {
        body.push(0);
    }
    body
}

pub fn handle_query_info(conn: &mut Conn, req: &Req) -> HResult {
    let b = req.body();
    b.expect_structure_size(41)?;
    let info_type = b.u8(2)?;
    let class = b.u8(3)?;
    let out_len = b.u32(4)? as usize;
    let in_off = b.u16(8)? as usize;
    let in_len = b.u32(12)? as usize;
    let additional = b.u32(16)?;
    let flags = b.u32(20)?;
    let fid = FileId::parse(&b, 24)?;
    let input = if in_len == 0 {
        &[][..]
    } else {
        b.buffer(in_off, in_len)?
    };
    let vol = lookup_fid(conn, req, fid)?;
    super::io::check_charge(conn, req, out_len)?;
    let server_name = conn.server.cfg.netbios_name.clone();
    let user = conn
        .sessions
        .get(&req.session_id)
        .map(|s| s.user.clone())
        .unwrap_or_default();
    let open = conn
        .opens
        .get(&vol)
        .ok_or(Fail::Status(status::FILE_CLOSED))?;
    let handle = match &open.kind {
        OpenKind::File(h) => h.clone(),
        OpenKind::Pipe(_) => {
            // A pipe answers the standard classes with fixed values.
            let fb = pipe_basics(vol, true);
            if info_type != INFO_FILE {
                return Err(Fail::Status(status::NOT_SUPPORTED));
            }
            let oi = OpenInfo {
                name: &open.path,
                access_mask: open.granted_access,
                position: 0,
                mode: 0,
                alignment: 0,
            };
            let mut data = Vec::new();
            duet_fscc::encode_file_info(class, &fb, &oi, &mut data).map_err(fscc_status)?;
            return output(data, duet_fscc::file_info_min_output_size(class), out_len);
        }
    };
    match info_type {
        INFO_FILE => {
            let need = file_class_access(class);
            if open.granted_access & need != need {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            if class == FILE_NORMALIZED_NAME_INFORMATION && conn.neg.dialect < super::DIALECT_311 {
                return Err(Fail::Status(status::NOT_SUPPORTED));
            }
            if class == FILE_FULL_EA_INFORMATION {
                return query_eas(&handle, flags, additional, input, out_len);
            }
            let meta = handle.meta().map_err(|e| Fail::Status(fs_status(&e)))?;
            let mut fb = basics(&meta);
            if let Some(k) = open.key {
                fb.delete_pending = conn
                    .server
                    .files
                    .lock()
                    .map(|f| f.is_delete_pending(&k))
                    .unwrap_or(false);
            }
            let name = if open.path.is_empty() {
                String::from("\\")
            } else {
                format!("\\{}", open.path.replace('/', "\\"))
            };
            // A stream's open is named "file:stream" (not for the 8.3 name).
            let name = match handle.stream_name() {
                Some(st) if class != FILE_ALTERNATE_NAME_INFORMATION => format!("{name}:{st}"),
                _ => name,
            };
            let oi = OpenInfo {
                name: &name,
                access_mask: open.granted_access,
                position: open.position,
                mode: open.mode,
                alignment: 0,
            };
            let mut data = Vec::new();
            if class == FILE_ID_INFORMATION {
                let root = open
                    .root
                    .as_ref()
                    .ok_or(Fail::Status(status::INVALID_PARAMETER))?;
                let st = root.statvfs().map_err(|e| Fail::Status(fs_status(&e)))?;
                duet_fscc::encode_file_id_information(
                    volume_serial(st.fs_id) as u64,
                    &fb,
                    &mut data,
                );
            } else if class == FILE_STREAM_INFORMATION {
                data = super::streams::stream_information(&handle)?;
            } else {
                duet_fscc::encode_file_info(class, &fb, &oi, &mut data).map_err(fscc_status)?;
            }
            output(data, duet_fscc::file_info_min_output_size(class), out_len)
        }
        INFO_FILESYSTEM => {
            let root = open
                .root
                .as_ref()
                .ok_or(Fail::Status(status::INVALID_PARAMETER))?;
            let st = root.statvfs().map_err(|e| Fail::Status(fs_status(&e)))?;
            let bsize = st.block_size.max(512);
            // Case-sensitive search and preserved names, Unicode names, sparse files;
            // EAs and named streams where the filesystem keeps them (user xattrs).
            let mut fs_attributes = FILE_CASE_SENSITIVE_SEARCH
                | FILE_CASE_PRESERVED_NAMES
                | FILE_UNICODE_ON_DISK
                | FILE_SUPPORTS_SPARSE_FILES;
            if root.xattrs_supported() {
                fs_attributes |= FILE_SUPPORTS_EXTENDED_ATTRIBUTES | FILE_NAMED_STREAMS;
            }
            let fs = FsStats {
                total_bytes: st.total_bytes,
                free_bytes: st.free_bytes,
                caller_available_bytes: st.avail_bytes,
                bytes_per_sector: 512,
                sectors_per_allocation_unit: (bsize / 512) as u32,
                volume_serial: volume_serial(st.fs_id),
                volume_label: open_share_name(conn, req),
                volume_creation_time: conn.server.start_time,
                fs_name: "NTFS".into(),
                max_component_name_length: 255,
                fs_attributes,
            };
            let mut data = Vec::new();
            duet_fscc::encode_fs_info(class, &fs, &mut data).map_err(fscc_status)?;
            output(data, duet_fscc::fs_info_min_output_size(class), out_len)
        }
        INFO_SECURITY => {
            if open.granted_access & READ_CONTROL == 0 {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            if additional & 0x08 != 0 && open.granted_access & ACCESS_SYSTEM_SECURITY == 0 {
                return Err(Fail::Status(status::PRIVILEGE_NOT_HELD));
            }
            let token = super::acl::Token::new(user_sid(&server_name, &user));
            let sd = super::acl::query_info(&handle, open.is_dir, &token, additional)?;
            if sd.len() > out_len {
                return Err(Fail::StatusData(status::BUFFER_TOO_SMALL, sd.len() as u32));
            }
            Ok(Reply::ok(info_body(&sd)))
        }
        INFO_QUOTA => Err(Fail::Status(status::NOT_SUPPORTED)),
        _ => Err(Fail::Status(status::INVALID_PARAMETER)),
    }
}

fn open_share_name(conn: &Conn, req: &Req) -> String {
    conn.tree(req)
        .map(|t| t.share_name.clone())
        .unwrap_or_default()
}

pub fn fscc_status(e: duet_fscc::FsccError) -> Fail {
    Fail::Status(e.ntstatus())
}

pub fn handle_set_info(conn: &mut Conn, req: &Req) -> HResult {
    let b = req.body();
    b.expect_structure_size(33)?;
    let info_type = b.u8(2)?;
    let class = b.u8(3)?;
    let len = b.u32(4)? as usize;
    let off = b.u16(8)? as usize;
    let fid = FileId::parse(&b, 16)?;
    let input = b.buffer(off, len)?;
    let vol = lookup_fid(conn, req, fid)?;
    let open = conn
        .opens
        .get(&vol)
        .ok_or(Fail::Status(status::FILE_CLOSED))?;
    let handle = match &open.kind {
        OpenKind::File(h) => h.clone(),
        OpenKind::Pipe(_) => return Err(Fail::Status(status::NOT_SUPPORTED)),
    };
    let tree_ro = matches!(
        conn.tree(req)?.kind,
        super::TreeKind::Disk {
            read_only: true,
            ..
        }
    );
    match info_type {
        INFO_FILE => {}
        INFO_SECURITY => {
            // Stored in the object's descriptor xattr (`acl.rs` checks the access needed).
            let token = super::acl::Token::of_session(conn, req.session_id);
            super::acl::set_info(
                &handle,
                open.granted_access,
                open.is_dir,
                &token,
                b.u32(12)?,
                input,
            )?;
            return Ok(Reply::ok(vec![2, 0]));
        }
        INFO_FILESYSTEM | INFO_QUOTA => return Err(Fail::Status(status::NOT_SUPPORTED)),
        _ => return Err(Fail::Status(status::INVALID_PARAMETER)),
    }
    if tree_ro {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    let info = duet_fscc::decode_set_file_info(class, input).map_err(fscc_status)?;
    let granted = open.granted_access;
    let is_dir = open.is_dir;
    let key = open.key;
    let path = open.path.clone();
    let root = open
        .root
        .clone()
        .ok_or(Fail::Status(status::INVALID_PARAMETER))?;
    match info {
        SetFileInfo::Basic {
            creation_time,
            last_access_time,
            last_write_time,
            change_time,
            attributes,
        } => {
            if granted & FILE_WRITE_ATTRIBUTES == 0 {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            // 0: unchanged; -1 and -2 (stop / resume automatic updates on this handle,
            // MS-FSA 2.1.5.15.1) set nothing either.
            let t = |v: u64| {
                if v == 0 || v >= u64::MAX - 1 {
                    None
                } else {
                    Some(v)
                }
            };
            if attributes != 0 {
                if !is_dir && attributes & FILE_ATTRIBUTE_DIRECTORY != 0 {
                    return Err(Fail::Status(status::INVALID_PARAMETER));
                }
                let mut a = attributes & FILE_ATTRIBUTE_VALID_SET & !FILE_ATTRIBUTE_NORMAL;
                if is_dir {
                    a |= FILE_ATTRIBUTE_DIRECTORY;
                }
                handle
                    .set_dos_attributes(a)
                    .map_err(|e| Fail::Status(fs_status(&e)))?;
            }
            let times = SetTimes {
                creation: t(creation_time),
                access: t(last_access_time),
                write: t(last_write_time),
                change: t(change_time),
            };
            handle
                .set_times(&times)
                .map_err(|e| Fail::Status(fs_status(&e)))?;
            notify::report(conn, &root, &path, notify::FILE_ACTION_MODIFIED, is_dir);
        }
        SetFileInfo::Rename {
            replace_if_exists,
            root_directory,
            file_name,
        } => {
            if granted & DELETE == 0 {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            if root_directory != 0 {
                return Err(Fail::Status(status::INVALID_PARAMETER));
            }
            if let Some(r) =
                super::streams::rename(conn, vol, &handle, &file_name, replace_if_exists)
            {
                r?;
                return Ok(Reply::ok(vec![2, 0]));
            }
            let target = parse_path(&file_name).map_err(Fail::Status)?;
            if let Some(reply) = super::oplock::rename_waits(conn, req, vol) {
                return reply;
            }
            super::rename::rename(conn, vol, &path, &target, replace_if_exists, is_dir)?;
        }
        SetFileInfo::Disposition { delete_pending } => {
            if granted & DELETE == 0 {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            let meta = handle.meta().map_err(|e| Fail::Status(fs_status(&e)))?;
            if delete_pending {
                if meta.dos_attributes & FILE_ATTRIBUTE_READONLY != 0 {
                    return Err(Fail::Status(status::CANNOT_DELETE));
                }
                if path.is_empty() {
                    return Err(Fail::Status(status::CANNOT_DELETE));
                }
                if is_dir
                    && !handle
                        .read_dir()
                        .map(|v| v.entries.is_empty())
                        .unwrap_or(true)
                {
                    return Err(Fail::Status(status::DIRECTORY_NOT_EMPTY));
                }
                super::oplock::delete_pending(conn, vol);
            }
            if let Some(k) = key {
                if let Ok(mut f) = conn.server.files.lock() {
                    f.set_delete_pending(&k, delete_pending);
                }
            }
        }
        SetFileInfo::EndOfFile(size) => {
            if granted & FILE_WRITE_DATA == 0 {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            if is_dir {
                return Err(Fail::Status(status::INVALID_PARAMETER));
            }
            super::oplock::contend(conn, vol);
            handle
                .set_len(size)
                .map_err(|e| Fail::Status(fs_status(&e)))?;
            notify::report_modified(conn, &root, &path);
        }
        SetFileInfo::Allocation(size) => {
            if granted & FILE_WRITE_DATA == 0 {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            if is_dir {
                return Err(Fail::Status(status::INVALID_PARAMETER));
            }
            super::oplock::contend(conn, vol);
            handle
                .allocate(size)
                .map_err(|e| Fail::Status(fs_status(&e)))?;
        }
        SetFileInfo::Position(p) => {
            if let Some(o) = conn.opens.get_mut(&vol) {
                o.position = p;
            }
        }
        SetFileInfo::Mode(m) => {
            // MS-FSCC 2.4.26: only these bits, and the two synchronous ones exclusive.
            if m & !0x0000_103E != 0 || (m & 0x10 != 0 && m & 0x20 != 0) {
                return Err(Fail::Status(status::INVALID_PARAMETER));
            }
            if let Some(o) = conn.opens.get_mut(&vol) {
                o.mode = m;
            }
        }
        SetFileInfo::FullEa(eas) => {
            if granted & FILE_WRITE_EA == 0 {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            set_eas(&handle, &eas).map_err(Fail::Status)?;
            // MS-FSA 2.1.5.15.5: an EA change marks the file for archiving.
            if !is_dir {
                let meta = handle.meta().map_err(|e| Fail::Status(fs_status(&e)))?;
                let a = meta.dos_attributes & !(FILE_ATTRIBUTE_NORMAL | FILE_ATTRIBUTE_DIRECTORY);
                if a & FILE_ATTRIBUTE_ARCHIVE == 0 {
                    handle
                        .set_dos_attributes(a | FILE_ATTRIBUTE_ARCHIVE)
                        .map_err(|e| Fail::Status(fs_status(&e)))?;
                }
            }
            notify::report(conn, &root, &path, notify::FILE_ACTION_MODIFIED, is_dir);
        }
        _ => return Err(Fail::Status(status::NOT_SUPPORTED)),
    }
    Ok(Reply::ok(vec![2, 0]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use duet_hal::fs::{Disposition, OpenOptions, ShareRoot};

    fn file() -> (tempfile::TempDir, Handle) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = ShareRoot::open(dir.path()).expect("share");
        let opts = OpenOptions {
            write: true,
            disposition: Disposition::Create,
            ..OpenOptions::default()
        };
        let (h, _) = root.open_file("f", &opts).expect("create");
        (dir, h)
    }

    /// (status, data) of an answer; data without the 8-byte QUERY_INFO header.
    fn run(r: HResult) -> Result<(u32, Vec<u8>), u32> {
        match r {
            Ok(Reply::Body { status, body }) => {
                let len = u32::from_le_bytes(body[4..8].try_into().unwrap()) as usize;
                Ok((status, body[8..8 + len].to_vec()))
            }
            Ok(_) => panic!("not a body"),
            Err(Fail::Status(s)) => Err(s),
            Err(f) => panic!("{f:?}"),
        }
    }

    fn ea(name: &str, value: &[u8]) -> FullEa {
        (name.to_string(), value.to_vec(), 0)
    }

    fn encoded(eas: &[FullEa]) -> Vec<u8> {
        let mut out = Vec::new();
        duet_fscc::encode_full_ea_list(eas, usize::MAX, &mut out).unwrap();
        out
    }

    fn get_list(names: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let start = out.len();
            out.extend_from_slice(&0u32.to_le_bytes());
            out.push(n.len() as u8);
            out.extend_from_slice(n.as_bytes());
            out.push(0);
            if i + 1 < names.len() {
                while out.len() % 4 != 0 {
                    out.push(0);
                }
                let next = (out.len() - start) as u32;
                out[start..start + 4].copy_from_slice(&next.to_le_bytes());
            }
        }
        out
    }

    const RESTART: u32 = SL_RESTART_SCAN;
    const SINGLE: u32 = SL_RETURN_SINGLE_ENTRY;

    #[test]
    fn ea_query_without_eas_is_no_eas_on_file() {
        let (_d, h) = file();
        assert_eq!(
            run(query_eas(&h, RESTART, 0, &[], 4096)),
            Err(status::NO_EAS_ON_FILE)
        );
        assert_eq!(
            run(query_eas(&h, 0, 0, &get_list(&["A"]), 4096)),
            Err(status::NO_EAS_ON_FILE)
        );
    }

    #[test]
    fn ea_query_lists_names_upper_case_in_order() {
        let (_d, h) = file();
        set_eas(&h, &[ea("SecondEA", b"ValueTwo"), ea("eaone", b"VALUE1")]).unwrap();
        let want = [ea("EAONE", b"VALUE1"), ea("SECONDEA", b"ValueTwo")];
        assert_eq!(
            run(query_eas(&h, RESTART, 0, &[], 4096)),
            Ok((status::SUCCESS, encoded(&want)))
        );
        // EaSize agrees with what the hal reports for the listing.
        assert_eq!(basics(&h.meta().unwrap()).ea_size, 41);
        // An empty value deletes, case-insensitively.
        set_eas(&h, &[ea("EaOne", b"")]).unwrap();
        assert_eq!(
            run(query_eas(&h, RESTART, 0, &[], 4096)),
            Ok((status::SUCCESS, encoded(&want[1..])))
        );
    }

    #[test]
    fn ea_query_scan_position_single_entries_and_index() {
        let (_d, h) = file();
        set_eas(&h, &[ea("A", b"1"), ea("B", b"22"), ea("C", b"333")]).unwrap();
        let one = |n: &str, v: &[u8]| Ok((status::SUCCESS, encoded(&[ea(n, v)])));
        assert_eq!(
            run(query_eas(&h, RESTART | SINGLE, 0, &[], 4096)),
            one("A", b"1")
        );
        // No restart: the scan goes on where it stopped.
        assert_eq!(run(query_eas(&h, SINGLE, 0, &[], 4096)), one("B", b"22"));
        assert_eq!(
            run(query_eas(&h, 0, 0, &[], 4096)),
            Ok((status::SUCCESS, encoded(&[ea("C", b"333")])))
        );
        assert_eq!(run(query_eas(&h, 0, 0, &[], 4096)), Err(STATUS_NO_MORE_EAS));
        // A 1-based index picks the start.
        assert_eq!(
            run(query_eas(&h, SL_INDEX_SPECIFIED | SINGLE, 2, &[], 4096)),
            one("B", b"22")
        );
        assert_eq!(
            run(query_eas(&h, SL_INDEX_SPECIFIED, 0, &[], 4096)),
            Err(STATUS_NONEXISTENT_EA_ENTRY)
        );
        assert_eq!(
            run(query_eas(&h, SL_INDEX_SPECIFIED, 4, &[], 4096)),
            Err(STATUS_NONEXISTENT_EA_ENTRY)
        );
        // Too small for the next entry: BUFFER_TOO_SMALL and the position stays.
        assert_eq!(
            run(query_eas(&h, RESTART, 0, &[], 10)),
            Err(status::BUFFER_TOO_SMALL)
        );
        assert_eq!(
            run(query_eas(&h, 0, 0, &[], 4096)).unwrap().0,
            status::SUCCESS
        );
        // Room for one whole entry only: BUFFER_OVERFLOW with it, then the rest.
        assert_eq!(
            run(query_eas(&h, RESTART, 0, &[], 14)),
            Ok((status::BUFFER_OVERFLOW, encoded(&[ea("A", b"1")])))
        );
        assert_eq!(
            run(query_eas(&h, 0, 0, &[], 4096)),
            Ok((status::SUCCESS, encoded(&[ea("B", b"22"), ea("C", b"333")])))
        );
    }

    #[test]
    fn ea_query_with_a_name_list() {
        let (_d, h) = file();
        set_eas(&h, &[ea("A", b"1"), ea("B", b"22")]).unwrap();
        // In list order, case-insensitive; a missing name comes back empty.
        assert_eq!(
            run(query_eas(&h, 0, 0, &get_list(&["b", "Nope", "A"]), 4096)),
            Ok((
                status::SUCCESS,
                encoded(&[ea("B", b"22"), ea("Nope", b""), ea("A", b"1")])
            ))
        );
        assert_eq!(
            run(query_eas(&h, SINGLE, 0, &get_list(&["b", "A"]), 4096)),
            Ok((status::SUCCESS, encoded(&[ea("B", b"22")])))
        );
        assert_eq!(run(query_eas(&h, 0, 0, &[1, 2, 3], 4096)), Err(0x8000_0014)); // EA_LIST_INCONSISTENT
        assert_eq!(
            run(query_eas(&h, 0, 0, &get_list(&["a:b"]), 4096)),
            Err(STATUS_INVALID_EA_NAME)
        );
    }

    #[test]
    fn ea_set_errors() {
        let (_d, h) = file();
        let long = "N".repeat(duet_hal::fs::EA_NAME_MAX + 1);
        assert_eq!(set_eas(&h, &[ea(&long, b"x")]), Err(STATUS_INVALID_EA_NAME));
        let big: Vec<FullEa> = (0..20)
            .map(|i| ea(&format!("E{i}"), &[0u8; 4000]))
            .collect();
        assert_eq!(set_eas(&h, &big), Err(status::EA_TOO_LARGE));
        assert_eq!(
            ea_status(&FsError::EasNotSupported),
            status::EAS_NOT_SUPPORTED
        );
    }

    #[test]
    fn create_context_eas_parse() {
        assert_eq!(parse_create_eas(&[]), Ok(vec![]));
        let list = [ea("EAONE", b"VALUE1"), ea("SECONDEA", b"ValueTwo")];
        assert_eq!(parse_create_eas(&encoded(&list)), Ok(list.to_vec()));
        assert_eq!(
            parse_create_eas(&[1, 2, 3]),
            Err(status::INFO_LENGTH_MISMATCH)
        );
        let mut bad = encoded(&list[..1]);
        bad[5] = 40; // EaNameLength past the end
        assert_eq!(parse_create_eas(&bad), Err(0x8000_0014));
    }

    #[test]
    fn output_length_rules() {
        let data = vec![7u8; 30];
        assert_eq!(
            run(output(data.clone(), Some(24), 23)),
            Err(status::INFO_LENGTH_MISMATCH)
        );
        assert_eq!(
            run(output(data.clone(), Some(24), 24)),
            Ok((status::BUFFER_OVERFLOW, vec![7u8; 24]))
        );
        assert_eq!(
            run(output(data.clone(), Some(24), 30)),
            Ok((status::SUCCESS, data.clone()))
        );
        assert_eq!(
            run(output(data.clone(), Some(24), 65535)),
            Ok((status::SUCCESS, data))
        );
    }

    #[test]
    fn class_access_follows_ms_smb2() {
        for c in [
            FILE_BASIC_INFORMATION,
            FILE_ALL_INFORMATION,
            FILE_NETWORK_OPEN_INFORMATION,
            FILE_ATTRIBUTE_TAG_INFORMATION,
        ] {
            assert_eq!(file_class_access(c), FILE_READ_ATTRIBUTES, "{c}");
        }
        assert_eq!(file_class_access(FILE_FULL_EA_INFORMATION), FILE_READ_EA);
        for c in [
            FILE_STANDARD_INFORMATION,
            FILE_INTERNAL_INFORMATION,
            FILE_EA_INFORMATION,
            FILE_ACCESS_INFORMATION,
            FILE_ALTERNATE_NAME_INFORMATION,
            FILE_STREAM_INFORMATION,
            FILE_NORMALIZED_NAME_INFORMATION,
        ] {
            assert_eq!(file_class_access(c), 0, "{c}");
        }
    }

    // ---- through the protocol core (testkit)

    use crate::smb::testkit::{CreateArgs, Kit};
    use crate::wire::{Command, PutLe};

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    /// CREATE `name` (open-if) with `desired` access and an ExtA context holding `eas`.
    fn create_with_eas(
        c: &mut crate::smb::testkit::Client,
        name: &str,
        desired: u32,
        eas: &[FullEa],
    ) -> (u32, FileId) {
        create_with_ext_a(c, name, desired, &encoded(eas))
    }

    /// CREATE `name` (open-if) with an ExtA context holding `ctx_data`.
    fn create_with_ext_a(
        c: &mut crate::smb::testkit::Client,
        name: &str,
        desired: u32,
        ctx_data: &[u8],
    ) -> (u32, FileId) {
        let n = utf16(name);
        let mut b = Vec::new();
        b.put_u16(57);
        b.put_u8(0);
        b.put_u8(0);
        b.put_u32(2);
        b.put_u64(0);
        b.put_u64(0);
        b.put_u32(desired);
        b.put_u32(0);
        b.put_u32(7);
        b.put_u32(3);
        b.put_u32(0);
        b.put_u16((HEADER_LEN + 56) as u16);
        b.put_u16(n.len() as u16);
        b.put_u32(0);
        b.put_u32(0);
        b.extend_from_slice(&n);
        while !(HEADER_LEN + b.len()).is_multiple_of(8) {
            b.push(0);
        }
        let ctx_off = HEADER_LEN + b.len();
        b.put_u32(0); // Next
        b.put_u16(16); // NameOffset
        b.put_u16(4); // NameLength
        b.put_u16(0);
        b.put_u16(24); // DataOffset
        b.put_u32(ctx_data.len() as u32);
        b.extend_from_slice(b"ExtA");
        b.put_u32(0);
        b.extend_from_slice(ctx_data);
        let ctx_len = HEADER_LEN + b.len() - ctx_off;
        b[48..52].copy_from_slice(&(ctx_off as u32).to_le_bytes());
        b[52..56].copy_from_slice(&(ctx_len as u32).to_le_bytes());
        let (st, body) = c.request(Command::Create, &b);
        let fid = if st == 0 {
            let u64_at = |o: usize| u64::from_le_bytes(body[o..o + 8].try_into().unwrap());
            FileId {
                persistent: u64_at(64),
                volatile: u64_at(72),
            }
        } else {
            FileId::default()
        };
        (st, fid)
    }

    /// QUERY_INFO; returns (status, data).
    fn query(
        c: &mut crate::smb::testkit::Client,
        fid: FileId,
        info_type: u8,
        class: u8,
        out_len: u32,
        flags: u32,
        input: &[u8],
    ) -> (u32, Vec<u8>) {
        let mut b = Vec::new();
        b.put_u16(41);
        b.put_u8(info_type);
        b.put_u8(class);
        b.put_u32(out_len);
        b.put_u16(if input.is_empty() {
            0
        } else {
            (HEADER_LEN + 40) as u16
        });
        b.put_u16(0);
        b.put_u32(input.len() as u32);
        b.put_u32(0);
        b.put_u32(flags);
        fid.put(&mut b);
        b.extend_from_slice(input);
        if input.is_empty() {
            b.push(0);
        }
        let (st, body) = c.request(Command::QueryInfo, &b);
        if body.len() >= 8
            && u16::from_le_bytes([body[0], body[1]]) == 9
            && (st == 0 || st == status::BUFFER_OVERFLOW)
        {
            let len = u32::from_le_bytes(body[4..8].try_into().unwrap()) as usize;
            (st, body[8..8 + len].to_vec())
        } else {
            (st, Vec::new())
        }
    }

    #[test]
    fn create_context_eas_are_stored_and_queried() {
        let kit = Kit::new();
        let mut c = kit.client();
        let list = [ea("EAONE", b"VALUE1"), ea("SECONDEA", b"ValueTwo")];
        let (st, fid) = create_with_eas(&mut c, "bufsize.txt", 0x001F_01FF, &list);
        assert_eq!(st, 0);
        assert_eq!(
            query(
                &mut c,
                fid,
                INFO_FILE,
                FILE_FULL_EA_INFORMATION,
                4096,
                RESTART,
                &[]
            ),
            (0, encoded(&list))
        );
        assert_eq!(
            query(&mut c, fid, INFO_FILE, FILE_EA_INFORMATION, 4096, 0, &[]),
            (0, 41u32.to_le_bytes().to_vec())
        );
        let (st, all) = query(&mut c, fid, INFO_FILE, FILE_ALL_INFORMATION, 4096, 0, &[]);
        assert_eq!(
            (st, u32::from_le_bytes(all[0x48..0x4C].try_into().unwrap())),
            (0, 41),
            "EaSize in FileAllInformation"
        );
        // The 8.3 name of an 8.3 name is the name.
        let want = [&22u32.to_le_bytes()[..], &utf16("bufsize.txt")].concat();
        assert_eq!(
            query(
                &mut c,
                fid,
                INFO_FILE,
                FILE_ALTERNATE_NAME_INFORMATION,
                4096,
                0,
                &[]
            ),
            (0, want)
        );
        assert_eq!(c.close(fid), 0);
        // EAs that do not fit: the create fails and leaves no file behind.
        let big: Vec<FullEa> = (0..20)
            .map(|i| ea(&format!("E{i}"), &[1u8; 4000]))
            .collect();
        assert_eq!(
            create_with_eas(&mut c, "big.txt", 0x001F_01FF, &big).0,
            status::EA_TOO_LARGE
        );
        assert!(!kit.path("big.txt").exists());
        // A malformed list is refused before anything is created.
        let mut bad = encoded(&[ea("aXb", b"x")]);
        bad[9] = b':';
        assert_eq!(
            create_with_ext_a(&mut c, "bad.txt", 0x001F_01FF, &bad).0,
            STATUS_INVALID_EA_NAME
        );
        assert!(!kit.path("bad.txt").exists());
    }

    #[test]
    fn query_access_rules_and_buffer_sizes() {
        let kit = Kit::new();
        let mut c = kit.client();
        c.touch(&CreateArgs::new("f.txt")).unwrap();
        let sync_only = c
            .create(&CreateArgs {
                desired: SYNCHRONIZE,
                ..CreateArgs::new("f.txt")
            })
            .unwrap()
            .fid;
        for class in [
            FILE_STANDARD_INFORMATION,
            FILE_INTERNAL_INFORMATION,
            FILE_EA_INFORMATION,
            FILE_ALTERNATE_NAME_INFORMATION,
            FILE_STREAM_INFORMATION,
        ] {
            assert_eq!(
                query(&mut c, sync_only, INFO_FILE, class, 4096, 0, &[]).0,
                0,
                "class {class}"
            );
        }
        for class in [
            FILE_BASIC_INFORMATION,
            FILE_ALL_INFORMATION,
            FILE_NETWORK_OPEN_INFORMATION,
            FILE_FULL_EA_INFORMATION,
        ] {
            assert_eq!(
                query(&mut c, sync_only, INFO_FILE, class, 4096, RESTART, &[]).0,
                status::ACCESS_DENIED,
                "class {class}"
            );
        }
        // Writing EAs needs FILE_WRITE_EA.
        assert_eq!(
            c.set_info(
                sync_only,
                INFO_FILE,
                FILE_FULL_EA_INFORMATION,
                &encoded(&[ea("A", b"1")])
            ),
            status::ACCESS_DENIED
        );
        let full = c.create(&CreateArgs::new("f.txt")).unwrap().fid;
        assert_eq!(
            c.set_info(
                full,
                INFO_FILE,
                FILE_FULL_EA_INFORMATION,
                &encoded(&[ea("A", b"1")])
            ),
            0
        );
        assert_eq!(
            query(
                &mut c,
                full,
                INFO_FILE,
                FILE_FULL_EA_INFORMATION,
                4096,
                RESTART,
                &[]
            ),
            (0, encoded(&[ea("A", b"1")]))
        );
        // Fixed part or more: cut with BUFFER_OVERFLOW; less: INFO_LENGTH_MISMATCH.
        let (st, whole) = query(
            &mut c,
            full,
            INFO_FILESYSTEM,
            FILE_FS_VOLUME_INFORMATION,
            4096,
            0,
            &[],
        );
        assert_eq!((st, whole.len()), (0, 18 + 10), "label \"share\"");
        assert_eq!(
            query(
                &mut c,
                full,
                INFO_FILESYSTEM,
                FILE_FS_VOLUME_INFORMATION,
                24,
                0,
                &[]
            ),
            (status::BUFFER_OVERFLOW, whole[..24].to_vec())
        );
        assert_eq!(
            query(
                &mut c,
                full,
                INFO_FILESYSTEM,
                FILE_FS_VOLUME_INFORMATION,
                23,
                0,
                &[]
            )
            .0,
            status::INFO_LENGTH_MISMATCH
        );
        assert_eq!(
            query(&mut c, full, INFO_FILE, FILE_ALL_INFORMATION, 104, 0, &[]).0,
            status::BUFFER_OVERFLOW
        );
        assert_eq!(
            query(&mut c, full, INFO_FILE, FILE_ALL_INFORMATION, 103, 0, &[]).0,
            status::INFO_LENGTH_MISMATCH
        );
        // EAs and named streams advertised.
        let (_, attr) = query(
            &mut c,
            full,
            INFO_FILESYSTEM,
            FILE_FS_ATTRIBUTE_INFORMATION,
            4096,
            0,
            &[],
        );
        let fs_attr = u32::from_le_bytes(attr[0..4].try_into().unwrap());
        assert_ne!(fs_attr & FILE_SUPPORTS_EXTENDED_ATTRIBUTES, 0);
        assert_ne!(fs_attr & FILE_NAMED_STREAMS, 0);
        // FileNormalizedNameInformation is for 3.1.1 only.
        assert_eq!(
            query(
                &mut c,
                full,
                INFO_FILE,
                FILE_NORMALIZED_NAME_INFORMATION,
                4096,
                0,
                &[]
            )
            .0,
            0
        );
        c.conn.neg.dialect = super::super::DIALECT_302;
        assert_eq!(
            query(
                &mut c,
                full,
                INFO_FILE,
                FILE_NORMALIZED_NAME_INFORMATION,
                4096,
                0,
                &[]
            )
            .0,
            status::NOT_SUPPORTED
        );
    }

    #[test]
    fn normalized_name_is_the_spelling_on_disk() {
        let kit = Kit::new();
        let mut c = kit.client();
        std::fs::create_dir_all(kit.path("torture_dIr1N/dIr2Na")).unwrap();
        let fid = c
            .create(&CreateArgs::new("TORTURE_DIR1N\\dir2na"))
            .unwrap()
            .fid;
        let (st, data) = query(
            &mut c,
            fid,
            INFO_FILE,
            FILE_NORMALIZED_NAME_INFORMATION,
            4096,
            0,
            &[],
        );
        let want = utf16("torture_dIr1N\\dIr2Na");
        assert_eq!((st, &data[4..]), (0, &want[..]));
    }

    #[test]
    fn basic_information_times_read_back() {
        let kit = Kit::new();
        let mut c = kit.client();
        let fid = c.create(&CreateArgs::new("t.txt")).unwrap().fid;
        let t = [
            133_000_000_000_000_000u64,
            133_100_000_000_000_000,
            133_200_000_000_000_000,
            133_300_000_000_000_000,
        ];
        let mut basic = Vec::new();
        for v in t {
            basic.put_u64(v);
        }
        basic.put_u32(FILE_ATTRIBUTE_HIDDEN);
        basic.put_u32(0);
        assert_eq!(
            c.set_info(fid, INFO_FILE, FILE_BASIC_INFORMATION, &basic),
            0
        );
        let (st, got) = query(&mut c, fid, INFO_FILE, FILE_BASIC_INFORMATION, 4096, 0, &[]);
        assert_eq!(st, 0);
        assert_eq!(
            &got[..32],
            &basic[..32],
            "all four times, the change time included"
        );
        assert_eq!(
            u32::from_le_bytes(got[32..36].try_into().unwrap()),
            FILE_ATTRIBUTE_HIDDEN
        );
        // 0, -1 and -2 leave a time alone.
        let mut keep = Vec::new();
        for v in [0u64, u64::MAX, u64::MAX - 1, 0] {
            keep.put_u64(v);
        }
        keep.put_u64(0);
        assert_eq!(c.set_info(fid, INFO_FILE, FILE_BASIC_INFORMATION, &keep), 0);
        assert_eq!(
            query(&mut c, fid, INFO_FILE, FILE_BASIC_INFORMATION, 4096, 0, &[]).1[..32],
            basic[..32]
        );
    }

    #[test]
    fn set_change_time_reads_back() {
        let (_d, h) = file();
        let change = 132_000_000_000_000_000;
        h.set_times(&SetTimes {
            change: Some(change),
            ..SetTimes::default()
        })
        .unwrap();
        assert_eq!(basics(&h.meta().unwrap()).change_time, change);
    }
}
