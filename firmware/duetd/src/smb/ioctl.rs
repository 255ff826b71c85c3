//! IOCTL (MS-SMB2 2.2.31/2.2.32, 3.3.5.15): negotiate validation, named-pipe transceive,
//! DFS referrals (none), server-side copy (resume key + copychunk), and the simple file
//! system controls. Anything else gets STATUS_NOT_SUPPORTED or
//! STATUS_INVALID_DEVICE_REQUEST, as Samba answers.
//!
//! Owns: FSCTL dispatch. Never copies beyond the limits it advertises for copychunk.

use duet_fscc::consts::*;

use super::create::{fs_status, lookup_fid};
use super::files::{OpenKind, OpenRef};
use super::negotiate::MAX_IO;
use super::{Conn, Fail, FileId, HResult, Reply, Req};
use crate::wire::{le_u32, le_u64, status, PutLe, HEADER_LEN};

pub const FSCTL_DFS_GET_REFERRALS: u32 = 0x0006_0194;
pub const FSCTL_DFS_GET_REFERRALS_EX: u32 = 0x0006_01B0;
pub const FSCTL_PIPE_TRANSCEIVE: u32 = 0x0011_C017;
pub const FSCTL_PIPE_PEEK: u32 = 0x0011_400C;
pub const FSCTL_PIPE_WAIT: u32 = 0x0011_0018;
pub const FSCTL_VALIDATE_NEGOTIATE_INFO: u32 = 0x0014_0204;
pub const FSCTL_QUERY_NETWORK_INTERFACE_INFO: u32 = 0x0014_01FC;
pub const FSCTL_SRV_ENUMERATE_SNAPSHOTS: u32 = 0x0014_4064;
pub const FSCTL_SRV_REQUEST_RESUME_KEY: u32 = 0x0014_0078;
pub const FSCTL_SRV_COPYCHUNK: u32 = 0x0014_40F2;
pub const FSCTL_SRV_COPYCHUNK_WRITE: u32 = 0x0014_80F2;
pub const FSCTL_SET_SPARSE: u32 = 0x0009_00C4;
pub const FSCTL_GET_COMPRESSION: u32 = 0x0009_003C;
pub const FSCTL_SET_COMPRESSION: u32 = 0x0009_C040;
pub const FSCTL_GET_REPARSE_POINT: u32 = 0x0009_00A8;
pub const FSCTL_SET_ZERO_DATA: u32 = 0x0009_80C8;
pub const FSCTL_QUERY_ALLOCATED_RANGES: u32 = 0x0009_40CF;
pub const FSCTL_CREATE_OR_GET_OBJECT_ID: u32 = 0x0009_00C0;
pub const FSCTL_FILESYSTEM_GET_STATISTICS: u32 = 0x0009_0060;

const SMB2_0_IOCTL_IS_FSCTL: u32 = 0x0000_0001;

/// Server-side copy limits (MS-SMB2 3.3.3: Windows' defaults).
pub const COPYCHUNK_MAX_CHUNKS: u32 = 256;
pub const COPYCHUNK_MAX_CHUNK_SIZE: u32 = 1024 * 1024;
pub const COPYCHUNK_MAX_TOTAL: u32 = 16 * 1024 * 1024;

fn ioctl_body(ctl: u32, fid: FileId, input_echo: Option<&[u8]>, out: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(48 + out.len());
    body.put_u16(49);
    body.put_u16(0);
    body.put_u32(ctl);
    fid.put(&mut body);
    let data_start = (HEADER_LEN + 48) as u32;
    let in_len = input_echo.map(|i| i.len()).unwrap_or(0) as u32;
    body.put_u32(if in_len > 0 { data_start } else { 0 });
    body.put_u32(in_len);
    let out_off = data_start + in_len.div_ceil(8) * 8;
    body.put_u32(if out.is_empty() { 0 } else { out_off });
    body.put_u32(out.len() as u32);
    body.put_u32(0);
    body.put_u32(0);
    if let Some(i) = input_echo {
        body.extend_from_slice(i);
        body.pad_to(8);
    }
    body.extend_from_slice(out);
    if out.is_empty() && in_len == 0 {
        body.push(0);
    }
    body
}

pub fn handle_ioctl(conn: &mut Conn, req: &Req) -> HResult {
    let b = req.body();
    b.expect_structure_size(57)?;
    let ctl = b.u32(4)?;
    let fid = FileId::parse(&b, 8)?;
    let in_off = b.u32(24)? as usize;
    let in_len = b.u32(28)? as usize;
    let max_out = b.u32(44)? as usize;
    let flags = b.u32(48)?;
    let input = b.buffer(in_off, in_len)?;
    if flags != SMB2_0_IOCTL_IS_FSCTL {
        return Err(Fail::Status(status::NOT_SUPPORTED));
    }
    if max_out > MAX_IO as usize {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    super::io::check_charge(conn, req, in_len.max(max_out))?;
    match ctl {
        FSCTL_VALIDATE_NEGOTIATE_INFO => {
            let out = super::negotiate::validate_negotiate(conn, input)?;
            if max_out < out.len() {
                return Err(Fail::Status(status::INVALID_PARAMETER));
            }
            return Ok(Reply::ok(ioctl_body(ctl, fid, None, &out)));
        }
        FSCTL_DFS_GET_REFERRALS | FSCTL_DFS_GET_REFERRALS_EX => {
            return Err(Fail::Status(status::NOT_FOUND));
        }
        FSCTL_QUERY_NETWORK_INTERFACE_INFO => return Err(Fail::Status(status::NOT_SUPPORTED)),
        _ => {}
    }
    let vol = lookup_fid(conn, req, fid)?;
    let resolved = conn.opens.get(&vol).map(|o| o.file_id).ok_or(Fail::Status(status::FILE_CLOSED))?;
    let is_pipe = matches!(conn.opens.get(&vol).map(|o| &o.kind), Some(OpenKind::Pipe(_)));
    if is_pipe {
        return match ctl {
            FSCTL_PIPE_TRANSCEIVE => {
                super::io::pipe_write(conn, vol, input)?;
                let (out, more) = super::io::pipe_read(conn, vol, max_out)?;
                Ok(Reply::Body {
                    status: if more { status::BUFFER_OVERFLOW } else { status::SUCCESS },
                    body: ioctl_body(ctl, resolved, None, &out),
                })
            }
            _ => Err(Fail::Status(status::NOT_SUPPORTED)),
        };
    }
    let open = conn.opens.get(&vol).ok_or(Fail::Status(status::FILE_CLOSED))?;
    let handle = open.handle().cloned().ok_or(Fail::Status(status::INVALID_DEVICE_REQUEST))?;
    match ctl {
        FSCTL_PIPE_TRANSCEIVE | FSCTL_PIPE_PEEK | FSCTL_PIPE_WAIT => Err(Fail::Status(status::INVALID_DEVICE_REQUEST)),
        FSCTL_SRV_ENUMERATE_SNAPSHOTS => {
            if max_out < 16 {
                return Err(Fail::Status(status::INVALID_PARAMETER));
            }
            let mut out = Vec::new();
            out.put_u32(0);
            out.put_u32(0);
            out.put_u32(2);
            out.put_u16(0);
            Ok(Reply::ok(ioctl_body(ctl, resolved, None, &out)))
        }
        FSCTL_SRV_REQUEST_RESUME_KEY => {
            if max_out < 32 {
                return Err(Fail::Status(status::INVALID_PARAMETER));
            }
            let mut out = Vec::with_capacity(32);
            out.put_u64(resolved.persistent);
            out.put_u64(resolved.volatile);
            out.put_u64(conn.id);
            out.put_u32(0);
            out.put_u32(0);
            Ok(Reply::ok(ioctl_body(ctl, resolved, None, &out)))
        }
        FSCTL_SRV_COPYCHUNK | FSCTL_SRV_COPYCHUNK_WRITE => copychunk(conn, vol, resolved, ctl, input, max_out),
        FSCTL_SET_SPARSE => {
            if open.granted_access & (FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES | FILE_APPEND_DATA) == 0 {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            Ok(Reply::ok(ioctl_body(ctl, resolved, None, &[])))
        }
        FSCTL_GET_COMPRESSION => {
            if max_out < 2 {
                return Err(Fail::Status(status::INVALID_PARAMETER));
            }
            Ok(Reply::ok(ioctl_body(ctl, resolved, None, &[0, 0])))
        }
        FSCTL_SET_COMPRESSION => {
            let fmt = crate::wire::le_u16(input, 0).map_err(|_| Fail::Status(status::INVALID_PARAMETER))?;
            if open.granted_access & (FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES) == 0 {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            if fmt != 0 {
                return Err(Fail::Status(status::NOT_SUPPORTED));
            }
            Ok(Reply::ok(ioctl_body(ctl, resolved, None, &[])))
        }
        FSCTL_GET_REPARSE_POINT => Err(Fail::Status(status::NOT_A_REPARSE_POINT)),
        FSCTL_SET_ZERO_DATA => {
            let start = le_u64(input, 0).map_err(|_| Fail::Status(status::INVALID_PARAMETER))?;
            let end = le_u64(input, 8).map_err(|_| Fail::Status(status::INVALID_PARAMETER))?;
            if start > end {
                return Err(Fail::Status(status::INVALID_PARAMETER));
            }
            if open.granted_access & FILE_WRITE_DATA == 0 {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            let size = handle.meta().map_err(|e| Fail::Status(fs_status(&e)))?.size;
            let end = end.min(size);
            let zeros = vec![0u8; 64 * 1024];
            let mut at = start;
            while at < end {
                let n = ((end - at) as usize).min(zeros.len());
                handle.write_at(&zeros[..n], at).map_err(|e| Fail::Status(fs_status(&e)))?;
                at += n as u64;
            }
            Ok(Reply::ok(ioctl_body(ctl, resolved, None, &[])))
        }
        FSCTL_QUERY_ALLOCATED_RANGES => {
            let off = le_u64(input, 0).map_err(|_| Fail::Status(status::INVALID_PARAMETER))?;
            let len = le_u64(input, 8).map_err(|_| Fail::Status(status::INVALID_PARAMETER))?;
            let size = handle.meta().map_err(|e| Fail::Status(fs_status(&e)))?.size;
            let end = off.saturating_add(len).min(size);
            let mut out = Vec::new();
            if end > off {
                if max_out < 16 {
                    return Err(Fail::Status(status::BUFFER_TOO_SMALL));
                }
                out.put_u64(off);
                out.put_u64(end - off);
            }
            Ok(Reply::ok(ioctl_body(ctl, resolved, None, &out)))
        }
        FSCTL_CREATE_OR_GET_OBJECT_ID => {
            if max_out < 64 {
                return Err(Fail::Status(status::INVALID_PARAMETER));
            }
            let m = handle.meta().map_err(|e| Fail::Status(fs_status(&e)))?;
            let mut out = Vec::with_capacity(64);
            out.put_u64(m.ino);
            out.put_u64(m.dev);
            out.resize(64, 0);
            Ok(Reply::ok(ioctl_body(ctl, resolved, None, &out)))
        }
        _ => Err(Fail::Status(status::NOT_SUPPORTED)),
    }
}

/// FSCTL_SRV_COPYCHUNK(_WRITE) (MS-SMB2 3.3.5.15.6): copies ranges from the open named by
/// the resume key to this one, within the advertised limits.
fn copychunk(conn: &mut Conn, vol: u64, fid: FileId, ctl: u32, input: &[u8], max_out: usize) -> HResult {
    let limits = |st: u32| -> HResult {
        let mut out = Vec::new();
        out.put_u32(COPYCHUNK_MAX_CHUNKS);
        out.put_u32(COPYCHUNK_MAX_CHUNK_SIZE);
        out.put_u32(COPYCHUNK_MAX_TOTAL);
        Ok(Reply::Body { status: st, body: ioctl_body(ctl, fid, None, &out) })
    };
    if max_out < 12 {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    if input.len() < 32 {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    let src_persistent = le_u64(input, 0)?;
    let src_volatile = le_u64(input, 8)?;
    let src_conn = le_u64(input, 16)?;
    let count = le_u32(input, 24)?;
    if count > COPYCHUNK_MAX_CHUNKS {
        return limits(status::INVALID_PARAMETER);
    }
    let chunks = input.get(32..32 + 24 * count as usize).ok_or(Fail::Status(status::INVALID_PARAMETER))?;
    let mut list = Vec::with_capacity(count as usize);
    let mut total: u64 = 0;
    for c in chunks.chunks_exact(24) {
        let so = le_u64(c, 0)?;
        let to = le_u64(c, 8)?;
        let len = le_u32(c, 16)?;
        if len == 0 || len > COPYCHUNK_MAX_CHUNK_SIZE {
            return limits(status::INVALID_PARAMETER);
        }
        total += len as u64;
        list.push((so, to, len));
    }
    if total > COPYCHUNK_MAX_TOTAL as u64 {
        return limits(status::INVALID_PARAMETER);
    }
    if src_conn != conn.id {
        return Err(Fail::Status(status::OBJECT_NAME_NOT_FOUND));
    }
    let src = conn
        .opens
        .get(&src_volatile)
        .filter(|o| o.file_id.persistent == src_persistent)
        .ok_or(Fail::Status(status::OBJECT_NAME_NOT_FOUND))?;
    let src_handle = src.handle().cloned().ok_or(Fail::Status(status::OBJECT_NAME_NOT_FOUND))?;
    if src.granted_access & FILE_READ_DATA == 0 {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    let src_key = src.key;
    let dst = conn.opens.get(&vol).ok_or(Fail::Status(status::FILE_CLOSED))?;
    if dst.granted_access & FILE_WRITE_DATA == 0
        || (ctl == FSCTL_SRV_COPYCHUNK && dst.granted_access & FILE_READ_DATA == 0)
    {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    let dst_handle = dst.handle().cloned().ok_or(Fail::Status(status::INVALID_DEVICE_REQUEST))?;
    let dst_key = dst.key;
    let mut written_chunks = 0u32;
    let mut written_bytes = 0u32;
    let mut buf = Vec::new();
    for (so, to, len) in list {
        {
            let files = conn.server.files.lock().map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
            if let Some(k) = src_key {
                if files.io_conflicts(&k, OpenRef { conn: conn.id, volatile: src_volatile }, so, len as u64, false) {
                    return Err(Fail::Status(status::FILE_LOCK_CONFLICT));
                }
            }
            if let Some(k) = dst_key {
                if files.io_conflicts(&k, OpenRef { conn: conn.id, volatile: vol }, to, len as u64, true) {
                    return Err(Fail::Status(status::FILE_LOCK_CONFLICT));
                }
            }
        }
        buf.resize(len as usize, 0);
        let n = src_handle.read_at(&mut buf, so).map_err(|e| Fail::Status(fs_status(&e)))?;
        if n < len as usize {
            return Err(Fail::Status(status::INVALID_VIEW_SIZE));
        }
        dst_handle.write_at(&buf, to).map_err(|e| Fail::Status(fs_status(&e)))?;
        written_chunks += 1;
        written_bytes += len;
    }
    let mut out = Vec::new();
    out.put_u32(written_chunks);
    out.put_u32(0);
    out.put_u32(written_bytes);
    Ok(Reply::ok(ioctl_body(ctl, fid, None, &out)))
}
