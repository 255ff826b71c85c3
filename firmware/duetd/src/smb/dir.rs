//! QUERY_DIRECTORY (MS-SMB2 2.2.33/2.2.34, 3.3.5.18): directory enumeration with
//! wildcards, restart, single-entry and index semantics, in every information class
//! `duet_fscc` encodes.
//!
//! Owns: the per-open enumeration cursor. Never returns an entry twice in one scan.

use duet_fscc::{consts::*, DirEntryWriter, FileBasics};

use super::create::{fs_status, lookup_fid};
use super::info::basics;
use super::negotiate::MAX_IO;
use super::{Conn, Fail, FileId, HResult, Reply, Req};
use crate::wire::{status, utf16le, PutLe, HEADER_LEN};

const RESTART_SCANS: u8 = 0x01;
const RETURN_SINGLE_ENTRY: u8 = 0x02;
const INDEX_SPECIFIED: u8 = 0x04;
const REOPEN: u8 = 0x10;

/// One open's enumeration: the snapshot taken at the scan's start and the cursor in it.
pub struct DirEnum {
    pub pattern: String,
    pub entries: Vec<(String, FileBasics)>,
    pub next: usize,
    /// Whether any entry was returned since the scan began.
    pub returned_any: bool,
}

fn has_wildcard(p: &str) -> bool {
    p.contains(['*', '?', '<', '>', '"'])
}

pub fn handle_query_directory(conn: &mut Conn, req: &Req) -> HResult {
    let b = req.body();
    b.expect_structure_size(33)?;
    let class = b.u8(2)?;
    let flags = b.u8(3)?;
    let file_index = b.u32(4)?;
    let fid = FileId::parse(&b, 8)?;
    let name_off = b.u16(24)? as usize;
    let name_len = b.u16(26)? as usize;
    let out_len = b.u32(28)? as usize;
    let pattern = utf16le(b.buffer(name_off, name_len)?).map_err(|_| Fail::Status(status::INVALID_PARAMETER))?;
    let vol = lookup_fid(conn, req, fid)?;
    super::io::check_charge(conn, req, out_len)?;
    let max = out_len.min(MAX_IO as usize);
    let mut writer = DirEntryWriter::new(class, max).map_err(|_| Fail::Status(status::INVALID_INFO_CLASS))?;
    let open = conn.opens.get_mut(&vol).ok_or(Fail::Status(status::FILE_CLOSED))?;
    if !open.is_dir {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    if open.granted_access & FILE_LIST_DIRECTORY == 0 {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    if pattern.contains('\\') || pattern.contains('/') {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    let restart = flags & (RESTART_SCANS | REOPEN) != 0 || open.dir_enum.is_none();
    if restart {
        let pattern = if pattern.is_empty() { "*".to_string() } else { pattern };
        let handle = open.handle().ok_or(Fail::Status(status::INVALID_PARAMETER))?.clone();
        let self_meta = handle.meta().map_err(|e| Fail::Status(fs_status(&e)))?;
        let mut entries = Vec::new();
        let dot = basics(&self_meta);
        if duet_fscc::name_matches(&pattern, ".") {
            entries.push((".".to_string(), dot.clone()));
        }
        if duet_fscc::name_matches(&pattern, "..") {
            let parent = if open.path.is_empty() {
                dot.clone()
            } else {
                let parent_path = open.path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                open.root
                    .as_ref()
                    .and_then(|r| r.stat(parent_path).ok())
                    .map(|m| basics(&m))
                    .unwrap_or_else(|| dot.clone())
            };
            entries.push(("..".to_string(), parent));
        }
        let exact = !has_wildcard(&pattern);
        let mut found_exact = false;
        if exact {
            if let Some(root) = open.root.as_ref() {
                let p = if open.path.is_empty() { pattern.clone() } else { format!("{}/{}", open.path, pattern) };
                if let Ok(m) = root.stat(&p) {
                    entries.push((pattern.clone(), basics(&m)));
                    found_exact = true;
                }
            }
        }
        if !found_exact {
            let list = handle.read_dir().map_err(|e| Fail::Status(fs_status(&e)))?;
            for e in list.entries {
                if duet_fscc::name_matches(&pattern, &e.name) {
                    entries.push((e.name, basics(&e.meta)));
                }
            }
        }
        open.dir_enum = Some(DirEnum { pattern, entries, next: 0, returned_any: false });
    }
    let Some(en) = open.dir_enum.as_mut() else {
        return Err(Fail::Status(status::INTERNAL_ERROR));
    };
    if flags & INDEX_SPECIFIED != 0 && !restart {
        en.next = (file_index as usize).min(en.entries.len());
    }
    let single = flags & RETURN_SINGLE_ENTRY != 0;
    while en.next < en.entries.len() {
        let (name, fb) = &en.entries[en.next];
        if !writer.push(en.next as u32 + 1, name, fb) {
            if writer.is_empty() {
                return Err(Fail::Status(status::INFO_LENGTH_MISMATCH));
            }
            break;
        }
        en.next += 1;
        if single {
            break;
        }
    }
    if writer.is_empty() {
        let st = if en.returned_any { status::NO_MORE_FILES } else { status::NO_SUCH_FILE };
        en.returned_any = true;
        return Err(Fail::Status(st));
    }
    en.returned_any = true;
    let data = writer.finish();
    let mut body = Vec::with_capacity(8 + data.len());
    body.put_u16(9);
    body.put_u16((HEADER_LEN + 8) as u16);
    body.put_u32(data.len() as u32);
    body.extend_from_slice(&data);
    Ok(Reply::ok(body))
}
