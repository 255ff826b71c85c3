//! IOCTL (MS-SMB2 2.2.31/2.2.32, 3.3.5.15): negotiate validation, named-pipe transceive,
//! DFS referrals (none), network interface listing, server-side copy (resume key +
//! copychunk), sparse files (set sparse, zero data, allocated ranges) and the simple file
//! system controls. Anything else gets STATUS_NOT_SUPPORTED or
//! STATUS_INVALID_DEVICE_REQUEST, as Samba answers.
//!
//! Owns: FSCTL dispatch, the server-wide table of resume keys, and the rules of each
//! control's buffers. Never copies beyond the limits it advertises for copychunk, never
//! lets a resume key reach an open after it closed, never hands out more bytes than
//! MaxOutputResponse.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Weak};

use duet_fscc::consts::*;
use duet_hal::fs::{FsError, Handle};

use super::create::{fs_status, lookup_fid};
use super::files::{FileKey, OpenKind, OpenRef};
use super::negotiate::MAX_IO;
use super::{Conn, Fail, FileId, HResult, Reply, Req, DIALECT_300};
use crate::wire::{le_u32, le_u64, status, PutLe, WireError, HEADER_LEN};

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
/// Samba's test-suite control (vendor device type 0x8384, function 0x10): "sleep, then
/// answer", used by smbtorture to check that a CLOSE sent right behind an IOCTL on the
/// same handle does not overtake it. A connection's requests run here one after the other,
/// so answering at once (success, no output) is the whole behaviour.
pub const FSCTL_SMBTORTURE_FSP_ASYNC_SLEEP: u32 = 0x8384_8043;
/// Samba's test-suite control: pad every later READ response on this connection with 8
/// zero bytes before the data (checks clients honour DataOffset).
pub const FSCTL_SMBTORTURE_GLOBAL_READ_RESPONSE_BODY_PADDING8: u32 = 0x8384_8023;

/// Samba's test-suite control FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT, sent without a
/// session: smbd then pretends nothing it sends on the connection is acknowledged by TCP,
/// so an oplock or lease break sent there times out, the channel counts as failed and the
/// break goes to another channel of the session (smbtorture "blocks" a channel with it).
/// duet does not track TCP acknowledgements: the control is accepted and changes nothing
/// (breaks go to a channel whose connection is open, `oplock.rs`).
pub const FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT: u32 = 0x8384_8003;

const SMB2_0_IOCTL_IS_FSCTL: u32 = 0x0000_0001;

/// Server-side copy limits (MS-SMB2 3.3.3: Windows' defaults).
pub const COPYCHUNK_MAX_CHUNKS: u32 = 256;
pub const COPYCHUNK_MAX_CHUNK_SIZE: u32 = 1024 * 1024;
pub const COPYCHUNK_MAX_TOTAL: u32 = 16 * 1024 * 1024;

/// SRV_COPYCHUNK_COPY header: SourceKey (24), ChunkCount (4), Reserved (4).
const COPYCHUNK_COPY_LEN: usize = 32;
/// One SRV_COPYCHUNK entry: SourceOffset, TargetOffset, Length, Reserved.
const COPYCHUNK_ENTRY_LEN: usize = 24;
/// SRV_COPYCHUNK_RESPONSE: ChunksWritten, ChunkBytesWritten, TotalBytesWritten.
const COPYCHUNK_RESPONSE_LEN: usize = 12;
/// FILE_ALLOCATED_RANGE_BUFFER, FILE_ZERO_DATA_INFORMATION: two 64-bit values.
const RANGE_LEN: usize = 16;

/// NETWORK_INTERFACE_INFO (MS-SMB2 2.2.32.5): 24 bytes of fields + a 128-byte sockaddr.
const NET_IFACE_INFO_LEN: usize = 152;
const RSS_CAPABLE: u32 = 0x0000_0001;
const AF_INET_WIRE: u16 = 0x0002;
const AF_INET6_WIRE: u16 = 0x0017;
/// What Samba announces for a link whose speed the driver does not report: 1 Gbit/s.
const DEFAULT_LINK_SPEED: u64 = 1_000_000_000;

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

/// An IOCTL without a session: only FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT, when the
/// test-suite controls are on, is answered (success, no output; an input buffer is
/// INVALID_PARAMETER, as smbd answers). None: the request goes on to the session checks.
pub fn without_session(conn: &Conn, req: &Req) -> Option<HResult> {
    if !conn.server.cfg.torture_fsctls {
        return None;
    }
    let b = req.body();
    if b.u32(4).ok()? != FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT {
        return None;
    }
    let parsed = (|| -> Result<(FileId, usize, u32), WireError> {
        b.expect_structure_size(57)?;
        Ok((FileId::parse(&b, 8)?, b.u32(28)? as usize, b.u32(48)?))
    })();
    Some(match parsed {
        Err(e) => Err(e.into()),
        Ok((_, _, flags)) if flags != SMB2_0_IOCTL_IS_FSCTL => {
            Err(Fail::Status(status::NOT_SUPPORTED))
        }
        Ok((_, in_len, _)) if in_len != 0 => Err(Fail::Status(status::INVALID_PARAMETER)),
        Ok((fid, _, _)) => {
            tracing::info!(peer = %conn.peer, "FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT (no effect: no TCP acknowledgement tracking)");
            Ok(Reply::ok(ioctl_body(
                FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT,
                fid,
                None,
                &[],
            )))
        }
    })
}

/// Controls that name no open: their FileId must be all ones (MS-SMB2 3.3.5.15).
fn takes_no_open(ctl: u32) -> bool {
    matches!(
        ctl,
        FSCTL_DFS_GET_REFERRALS
            | FSCTL_DFS_GET_REFERRALS_EX
            | FSCTL_QUERY_NETWORK_INTERFACE_INFO
            | FSCTL_VALIDATE_NEGOTIATE_INFO
    )
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
    if takes_no_open(ctl) && fid != FileId::RELATED {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
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
        FSCTL_QUERY_NETWORK_INTERFACE_INFO => {
            return network_interface_info(conn, fid, input, max_out)
        }
        FSCTL_SMBTORTURE_GLOBAL_READ_RESPONSE_BODY_PADDING8 => {
            if !conn.server.cfg.torture_fsctls {
                return Err(Fail::Status(status::NOT_SUPPORTED));
            }
            conn.read_body_padding = 8;
            return Ok(Reply::ok(ioctl_body(ctl, fid, None, &[])));
        }
        _ => {}
    }
    let vol = lookup_fid(conn, req, fid)?;
    let resolved = conn
        .opens
        .get(&vol)
        .map(|o| o.file_id)
        .ok_or(Fail::Status(status::FILE_CLOSED))?;
    let is_pipe = matches!(
        conn.opens.get(&vol).map(|o| &o.kind),
        Some(OpenKind::Pipe(_))
    );
    if is_pipe {
        return match ctl {
            FSCTL_PIPE_TRANSCEIVE => {
                super::io::pipe_write(conn, vol, input)?;
                let (out, more) = super::io::pipe_read(conn, vol, max_out)?;
                Ok(Reply::Body {
                    status: if more {
                        status::BUFFER_OVERFLOW
                    } else {
                        status::SUCCESS
                    },
                    body: ioctl_body(ctl, resolved, None, &out),
                })
            }
            _ => Err(Fail::Status(status::NOT_SUPPORTED)),
        };
    }
    let open = conn
        .opens
        .get(&vol)
        .ok_or(Fail::Status(status::FILE_CLOSED))?;
    let handle = open
        .handle()
        .cloned()
        .ok_or(Fail::Status(status::INVALID_DEVICE_REQUEST))?;
    let granted = open.granted_access;
    let is_dir = open.is_dir;
    let me = OpenRef {
        conn: conn.id,
        volatile: vol,
    };
    let file_key = open.key;
    // Where a change through this open is reported to CHANGE_NOTIFY watchers.
    let changed = open.root.clone().map(|r| (r, open.path.clone()));
    match ctl {
        FSCTL_PIPE_TRANSCEIVE | FSCTL_PIPE_PEEK | FSCTL_PIPE_WAIT => {
            Err(Fail::Status(status::INVALID_DEVICE_REQUEST))
        }
        super::lock::FSCTL_LMR_REQUEST_RESILIENCY => {
            super::lock::request_resiliency(conn, vol, input)
                .map(|()| Reply::ok(ioctl_body(ctl, resolved, None, &[])))
        }
        FSCTL_SMBTORTURE_FSP_ASYNC_SLEEP if conn.server.cfg.torture_fsctls => {
            Ok(Reply::ok(ioctl_body(ctl, resolved, None, &[])))
        }
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
            let key = resume_key_for(conn, vol)?;
            let mut out = Vec::with_capacity(32);
            out.extend_from_slice(&key);
            out.put_u32(0); // ContextLength
            out.put_u32(0); // Context (reserved)
            Ok(Reply::ok(ioctl_body(ctl, resolved, None, &out)))
        }
        FSCTL_SRV_COPYCHUNK | FSCTL_SRV_COPYCHUNK_WRITE => {
            copychunk(conn, vol, resolved, ctl, input, max_out)
        }
        FSCTL_SET_SPARSE => {
            // MS-FSA 2.1.5.10.25: files only; any of these rights will do.
            if is_dir {
                return Err(Fail::Status(status::INVALID_PARAMETER));
            }
            if granted & (FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES | FILE_APPEND_DATA) == 0 {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            // FILE_SET_SPARSE_BUFFER is one BOOLEAN; without a buffer it means TRUE, and a
            // longer buffer is accepted (Windows reads the first byte).
            let sparse = input.first().is_none_or(|b| *b != 0);
            handle
                .set_sparse(sparse)
                .map_err(|e| Fail::Status(sparse_status(&e)))?;
            if let Some((root, path)) = changed {
                super::notify::report_modified(conn, &root, &path);
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
            let fmt = crate::wire::le_u16(input, 0)
                .map_err(|_| Fail::Status(status::INVALID_PARAMETER))?;
            if granted & (FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES) == 0 {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            if fmt != 0 {
                return Err(Fail::Status(status::NOT_SUPPORTED));
            }
            Ok(Reply::ok(ioctl_body(ctl, resolved, None, &[])))
        }
        FSCTL_GET_REPARSE_POINT => Err(Fail::Status(status::NOT_A_REPARSE_POINT)),
        FSCTL_SET_ZERO_DATA => {
            // FILE_ZERO_DATA_INFORMATION: FileOffset, BeyondFinalZero (MS-FSA 2.1.5.10.36).
            let (start, end) = parse_range(input).map_err(Fail::Status)?;
            if start > end || is_dir {
                return Err(Fail::Status(status::INVALID_PARAMETER));
            }
            if granted & FILE_WRITE_DATA == 0 {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            if let (Some(k), true) = (file_key, end > start) {
                let files = conn
                    .server
                    .files
                    .lock()
                    .map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
                if files.io_conflicts(&k, me, start, end - start, true) {
                    return Err(Fail::Status(status::FILE_LOCK_CONFLICT));
                }
            }
            // A sparse file gets the range deallocated; any other is zeroed in place.
            let sparse = handle
                .meta()
                .map_err(|e| Fail::Status(fs_status(&e)))?
                .dos_attributes
                & FILE_ATTRIBUTE_SPARSE_FILE
                != 0;
            handle
                .zero_range(start, end - start, sparse)
                .map_err(|e| Fail::Status(fs_status(&e)))?;
            if let (Some((root, path)), true) = (changed, end > start) {
                super::notify::report_modified(conn, &root, &path);
            }
            Ok(Reply::ok(ioctl_body(ctl, resolved, None, &[])))
        }
        FSCTL_QUERY_ALLOCATED_RANGES => {
            // FILE_ALLOCATED_RANGE_BUFFER: FileOffset, Length (MS-FSA 2.1.5.10.22).
            let (off, len) = parse_range(input).map_err(Fail::Status)?;
            if off.checked_add(len).is_none_or(|e| e > i64::MAX as u64) || is_dir {
                return Err(Fail::Status(status::INVALID_PARAMETER));
            }
            if granted & FILE_READ_DATA == 0 {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            let (ranges, more) = allocated_ranges(&handle, off, len, max_out / RANGE_LEN)?;
            if more && ranges.is_empty() {
                return Err(Fail::Status(status::BUFFER_TOO_SMALL));
            }
            let mut out = Vec::with_capacity(ranges.len() * RANGE_LEN);
            for (o, l) in ranges {
                out.put_u64(o);
                out.put_u64(l);
            }
            Ok(Reply::Body {
                status: if more {
                    status::BUFFER_OVERFLOW
                } else {
                    status::SUCCESS
                },
                body: ioctl_body(ctl, resolved, None, &out),
            })
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

/// Two signed 64-bit values (FILE_ZERO_DATA_INFORMATION, FILE_ALLOCATED_RANGE_BUFFER);
/// a short buffer or a negative value is INVALID_PARAMETER. Longer buffers are accepted.
fn parse_range(input: &[u8]) -> Result<(u64, u64), u32> {
    let bad = status::INVALID_PARAMETER;
    let a = le_u64(input, 0).map_err(|_| bad)?;
    let b = le_u64(input, 8).map_err(|_| bad)?;
    if a > i64::MAX as u64 || b > i64::MAX as u64 {
        return Err(bad);
    }
    Ok((a, b))
}

fn sparse_status(e: &FsError) -> u32 {
    match e {
        FsError::Io(libc::EOPNOTSUPP) => status::NOT_SUPPORTED,
        other => fs_status(other),
    }
}

/// The allocated ranges FSCTL_QUERY_ALLOCATED_RANGES reports, at most `max`, and whether
/// more were left out. A file that is not sparse is one range over the part of the request
/// below the end of file, as on Windows (its zeroed parts stay allocated there); a sparse
/// file's ranges come from the filesystem's holes.
fn allocated_ranges(
    h: &Handle,
    off: u64,
    len: u64,
    max: usize,
) -> Result<(Vec<(u64, u64)>, bool), Fail> {
    let m = h.meta().map_err(|e| Fail::Status(fs_status(&e)))?;
    if m.dos_attributes & FILE_ATTRIBUTE_SPARSE_FILE != 0 {
        return h
            .allocated_ranges(off, len, max)
            .map_err(|e| Fail::Status(fs_status(&e)));
    }
    let end = off.saturating_add(len).min(m.size);
    if end <= off {
        return Ok((Vec::new(), false));
    }
    if max == 0 {
        return Ok((Vec::new(), true));
    }
    Ok((vec![(off, end - off)], false))
}

// ------------------------------------------------------------------ network interfaces

/// FSCTL_QUERY_NETWORK_INTERFACE_INFO (MS-SMB2 3.3.5.15.11): one NETWORK_INTERFACE_INFO per
/// address clients can reach, chosen as Samba chooses by default: up, broadcast-capable
/// (so not loopback), not IPv6 link-local.
fn network_interface_info(conn: &Conn, fid: FileId, input: &[u8], max_out: usize) -> HResult {
    if conn.neg.dialect < DIALECT_300 {
        return Err(Fail::Status(status::NOT_SUPPORTED));
    }
    if !input.is_empty() {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    let addrs = duet_hal::net::addresses().map_err(|e| {
        tracing::warn!(error = %e, "cannot list network interfaces");
        Fail::Status(status::INTERNAL_ERROR)
    })?;
    let out = encode_interfaces(&announced(&addrs));
    if out.len() > max_out {
        return Err(Fail::Status(status::BUFFER_TOO_SMALL));
    }
    Ok(Reply::ok(ioctl_body(
        FSCTL_QUERY_NETWORK_INTERFACE_INFO,
        fid,
        None,
        &out,
    )))
}

/// The addresses worth announcing, in the kernel's order.
fn announced(addrs: &[duet_hal::net::Address]) -> Vec<&duet_hal::net::Address> {
    addrs
        .iter()
        .filter(|a| a.up && a.broadcast && !a.loopback && a.index != 0)
        .filter(|a| match a.addr {
            IpAddr::V4(v4) => !v4.is_unspecified(),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                let link_local = s[0] & 0xffc0 == 0xfe80;
                let v4_compat = s[..6] == [0; 6];
                !link_local && !v4_compat
            }
        })
        .collect()
}

/// The NETWORK_INTERFACE_INFO chain (MS-SMB2 2.2.32.5): each entry 152 bytes, Next
/// pointing at the following one, 0 in the last.
fn encode_interfaces(addrs: &[&duet_hal::net::Address]) -> Vec<u8> {
    let mut out = Vec::with_capacity(addrs.len() * NET_IFACE_INFO_LEN);
    for (i, a) in addrs.iter().enumerate() {
        let start = out.len();
        out.put_u32(if i + 1 < addrs.len() {
            NET_IFACE_INFO_LEN as u32
        } else {
            0
        });
        out.put_u32(a.index);
        out.put_u32(if a.rx_queues > 1 { RSS_CAPABLE } else { 0 });
        out.put_u32(0);
        out.put_u64(a.link_speed.unwrap_or(DEFAULT_LINK_SPEED));
        // SOCKADDR_STORAGE: Family, then the address in network order (MS-SMB2 2.2.32.5.1).
        match a.addr {
            IpAddr::V4(v4) => {
                out.put_u16(AF_INET_WIRE);
                out.put_u16(0); // Port
                out.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                out.put_u16(AF_INET6_WIRE);
                out.put_u16(0); // Port
                out.put_u32(0); // FlowInfo
                out.extend_from_slice(&v6.octets());
                // ScopeId 0 follows in the padding.
            }
        }
        out.resize(start + NET_IFACE_INFO_LEN, 0);
    }
    out
}

// ------------------------------------------------------------------ server-side copy

/// A resume key handed out by FSCTL_SRV_REQUEST_RESUME_KEY: 24 random bytes naming one
/// open anywhere on the server (MS-SMB2 3.3.5.15.6 finds the source in the global open
/// table), so a copy may read from an open of another connection of the same user.
pub struct ResumeEntry {
    /// The server the open belongs to (several servers can share a process in tests).
    server: usize,
    owner: OpenRef,
    file: FileKey,
    handle: Weak<Handle>,
    granted: u32,
    user: String,
}

/// Resume keys of one server (kept in `Server::resume_keys`). Entries of closed opens stop
/// resolving at once (the open is gone from the file table) and are dropped on the next
/// insertion.
pub type ResumeKeys = HashMap<[u8; 24], ResumeEntry>;

fn server_tag(conn: &Conn) -> usize {
    Arc::as_ptr(&conn.server) as usize
}

fn session_user(conn: &Conn, session_id: u64) -> String {
    conn.sessions
        .get(&session_id)
        .map(|s| s.user.to_ascii_lowercase())
        .unwrap_or_default()
}

/// The resume key of an open, made on first request; the same key on later requests.
fn resume_key_for(conn: &Conn, vol: u64) -> Result<[u8; 24], Fail> {
    let open = conn
        .opens
        .get(&vol)
        .ok_or(Fail::Status(status::FILE_CLOSED))?;
    let handle = open
        .handle()
        .ok_or(Fail::Status(status::INVALID_DEVICE_REQUEST))?;
    let file = open
        .key
        .ok_or(Fail::Status(status::INVALID_DEVICE_REQUEST))?;
    let owner = OpenRef {
        conn: conn.id,
        volatile: vol,
    };
    let server = server_tag(conn);
    let mut keys = conn
        .server
        .resume_keys
        .lock()
        .map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
    if let Some((k, _)) = keys.iter().find(|(_, e)| {
        e.server == server && e.owner == owner && Weak::ptr_eq(&e.handle, &Arc::downgrade(handle))
    }) {
        return Ok(*k);
    }
    keys.retain(|_, e| e.handle.strong_count() > 0);
    let mut key = [0u8; 24];
    crate::util::random_bytes(&mut key);
    keys.insert(
        key,
        ResumeEntry {
            server,
            owner,
            file,
            handle: Arc::downgrade(handle),
            granted: open.granted_access,
            user: session_user(conn, open.session_id),
        },
    );
    Ok(key)
}

/// The source of a copy: the open a resume key names, if it is still open.
struct Source {
    owner: OpenRef,
    file: FileKey,
    handle: Arc<Handle>,
    granted: u32,
    user: String,
}

fn resolve_resume_key(conn: &Conn, key: &[u8]) -> Option<Source> {
    let keys = conn.server.resume_keys.lock().ok()?;
    let e = keys.get(key)?;
    if e.server != server_tag(conn) {
        return None;
    }
    let handle = e.handle.upgrade()?;
    let files = conn.server.files.lock().ok()?;
    let still_open = files
        .files
        .get(&e.file)
        .is_some_and(|f| f.opens.iter().any(|o| o.who == e.owner));
    still_open.then(|| Source {
        owner: e.owner,
        file: e.file,
        handle,
        granted: e.granted,
        user: e.user.clone(),
    })
}

/// FSCTL_SRV_COPYCHUNK(_WRITE) (MS-SMB2 3.3.5.15.6): copies ranges from the open named by
/// the resume key to this one, within the advertised limits. Once copying has started a
/// failure still carries SRV_COPYCHUNK_RESPONSE with what was written before it.
fn copychunk(
    conn: &mut Conn,
    vol: u64,
    fid: FileId,
    ctl: u32,
    input: &[u8],
    max_out: usize,
) -> HResult {
    let response = |st: u32, chunks: u32, chunk_bytes: u32, total: u32| -> HResult {
        let mut out = Vec::with_capacity(COPYCHUNK_RESPONSE_LEN);
        out.put_u32(chunks);
        out.put_u32(chunk_bytes);
        out.put_u32(total);
        Ok(Reply::Body {
            status: st,
            body: ioctl_body(ctl, fid, None, &out),
        })
    };
    let limits = || {
        response(
            status::INVALID_PARAMETER,
            COPYCHUNK_MAX_CHUNKS,
            COPYCHUNK_MAX_CHUNK_SIZE,
            COPYCHUNK_MAX_TOTAL,
        )
    };
    if max_out < COPYCHUNK_RESPONSE_LEN || input.len() < COPYCHUNK_COPY_LEN {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    let source_key = &input[..24];
    let count = le_u32(input, 24)?;
    if count > COPYCHUNK_MAX_CHUNKS {
        return limits();
    }
    let chunks = input
        .get(COPYCHUNK_COPY_LEN..COPYCHUNK_COPY_LEN + COPYCHUNK_ENTRY_LEN * count as usize)
        .ok_or(Fail::Status(status::INVALID_PARAMETER))?;
    let mut list = Vec::with_capacity(count as usize);
    let mut total: u64 = 0;
    for c in chunks.chunks_exact(COPYCHUNK_ENTRY_LEN) {
        let (so, to, len) = (le_u64(c, 0)?, le_u64(c, 8)?, le_u32(c, 16)?);
        if len == 0 || len > COPYCHUNK_MAX_CHUNK_SIZE {
            return limits();
        }
        total += u64::from(len);
        list.push((so, to, len));
    }
    if total > u64::from(COPYCHUNK_MAX_TOTAL) {
        return limits();
    }
    let src =
        resolve_resume_key(conn, source_key).ok_or(Fail::Status(status::OBJECT_NAME_NOT_FOUND))?;
    let dst = conn
        .opens
        .get(&vol)
        .ok_or(Fail::Status(status::FILE_CLOSED))?;
    let dst_needs = if ctl == FSCTL_SRV_COPYCHUNK {
        FILE_WRITE_DATA | FILE_READ_DATA
    } else {
        FILE_WRITE_DATA
    };
    if src.granted & (FILE_READ_DATA | FILE_EXECUTE) == 0
        || dst.granted_access & dst_needs != dst_needs
        || src.user != session_user(conn, dst.session_id)
    {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    let dst_handle = dst
        .handle()
        .cloned()
        .ok_or(Fail::Status(status::INVALID_DEVICE_REQUEST))?;
    let dst_key = dst.key;
    let write_through = dst.create_options & FILE_WRITE_THROUGH != 0;
    let changed = dst.root.clone().map(|r| (r, dst.path.clone()));
    let me = OpenRef {
        conn: conn.id,
        volatile: vol,
    };
    let (mut done_chunks, mut done_bytes) = (0u32, 0u32);
    let mut st = status::SUCCESS;
    let mut buf = Vec::new();
    for (so, to, len) in list {
        let conflict = {
            let files = conn
                .server
                .files
                .lock()
                .map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
            files.io_conflicts(&src.file, src.owner, so, u64::from(len), false)
                || dst_key.is_some_and(|k| files.io_conflicts(&k, me, to, u64::from(len), true))
        };
        if conflict {
            st = status::FILE_LOCK_CONFLICT;
            break;
        }
        // The whole chunk is read before any of it is written, so a range that overlaps
        // its own source copies what was there before.
        buf.resize(len as usize, 0);
        st = match src.handle.read_at(&mut buf, so) {
            Ok(n) if n < buf.len() => status::INVALID_VIEW_SIZE,
            Ok(_) => match dst_handle.write_at(&buf, to) {
                Ok(_) => status::SUCCESS,
                Err(e) => fs_status(&e),
            },
            Err(e) => fs_status(&e),
        };
        if st != status::SUCCESS {
            break;
        }
        done_chunks += 1;
        done_bytes += len;
    }
    if done_bytes > 0 {
        // As a WRITE: write-through opens reach the disk, watchers hear of it.
        if write_through {
            if let Err(e) = dst_handle.sync() {
                st = fs_status(&e);
            }
        }
        if let Some((root, path)) = changed {
            super::notify::report_modified(conn, &root, &path);
        }
    }
    response(st, done_chunks, 0, done_bytes)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{Client, CreateArgs, Kit};
    use super::*;
    use crate::wire::Command;

    const KIB: usize = 1024;
    const K64: u64 = 64 * 1024;
    const ALL_ONES: FileId = FileId::RELATED;

    /// Sends an IOCTL; returns the status and the output buffer.
    fn ioctl(c: &mut Client, fid: FileId, ctl: u32, input: &[u8], max_out: u32) -> (u32, Vec<u8>) {
        let mut b = Vec::new();
        b.put_u16(57);
        b.put_u16(0);
        b.put_u32(ctl);
        fid.put(&mut b);
        b.put_u32(if input.is_empty() {
            0
        } else {
            (HEADER_LEN + 56) as u32
        });
        b.put_u32(input.len() as u32);
        b.put_u32(0); // MaxInputResponse
        b.put_u32(0);
        b.put_u32(0);
        b.put_u32(max_out);
        b.put_u32(SMB2_0_IOCTL_IS_FSCTL);
        b.put_u32(0);
        b.extend_from_slice(input);
        let (st, body) = c.request(Command::Ioctl, &b);
        if body.len() < 48 || u16::from_le_bytes([body[0], body[1]]) != 49 {
            return (st, Vec::new());
        }
        let off = u32::from_le_bytes(body[32..36].try_into().unwrap()) as usize;
        let len = u32::from_le_bytes(body[36..40].try_into().unwrap()) as usize;
        if len == 0 {
            return (st, Vec::new());
        }
        (st, body[off - HEADER_LEN..off - HEADER_LEN + len].to_vec())
    }

    fn open(c: &mut Client, name: &str, desired: u32) -> FileId {
        c.create(&CreateArgs {
            desired,
            ..CreateArgs::new(name)
        })
        .expect("create")
        .fid
    }

    fn mkdir(c: &mut Client, name: &str) -> FileId {
        let a = CreateArgs {
            options: 1,
            disposition: 2,
            ..CreateArgs::new(name)
        };
        c.create(&a).expect("mkdir").fid
    }

    /// A file of `len` bytes whose byte i is (i % 251), written behind the server's back.
    fn pattern_file(kit: &Kit, name: &str, len: usize) -> Vec<u8> {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(kit.path(name), &data).unwrap();
        data
    }

    fn lock(c: &mut Client, fid: FileId, off: u64, len: u64, flags: u32) -> u32 {
        let mut b = Vec::new();
        b.put_u16(48);
        b.put_u16(1);
        b.put_u32(0);
        fid.put(&mut b);
        b.put_u64(off);
        b.put_u64(len);
        b.put_u32(flags);
        b.put_u32(0);
        c.request(Command::Lock, &b).0
    }
    const LOCK_EXCLUSIVE_NOW: u32 = 0x2 | 0x10;
    const UNLOCK: u32 = 0x4;

    fn resume_key(c: &mut Client, fid: FileId) -> Vec<u8> {
        let (st, out) = ioctl(c, fid, FSCTL_SRV_REQUEST_RESUME_KEY, &[], 32);
        assert_eq!(st, status::SUCCESS);
        assert_eq!(out.len(), 32);
        out[..24].to_vec()
    }

    fn copy_input(key: &[u8], chunks: &[(u64, u64, u32)]) -> Vec<u8> {
        let mut b = key.to_vec();
        b.put_u32(chunks.len() as u32);
        b.put_u32(0);
        for &(s, t, l) in chunks {
            b.put_u64(s);
            b.put_u64(t);
            b.put_u32(l);
            b.put_u32(0);
        }
        b
    }

    /// (status, [ChunksWritten, ChunkBytesWritten, TotalBytesWritten] if sent).
    fn copy(
        c: &mut Client,
        dst: FileId,
        ctl: u32,
        key: &[u8],
        chunks: &[(u64, u64, u32)],
    ) -> (u32, Option<[u32; 3]>) {
        let (st, out) = ioctl(c, dst, ctl, &copy_input(key, chunks), 12);
        let rsp = (out.len() == 12).then(|| {
            let w = |i: usize| u32::from_le_bytes(out[i * 4..i * 4 + 4].try_into().unwrap());
            [w(0), w(1), w(2)]
        });
        (st, rsp)
    }

    fn range_input(a: u64, b: u64) -> Vec<u8> {
        let mut v = Vec::new();
        v.put_u64(a);
        v.put_u64(b);
        v
    }

    fn qar(
        c: &mut Client,
        fid: FileId,
        off: u64,
        len: u64,
        max_out: u32,
    ) -> (u32, Vec<(u64, u64)>) {
        let (st, out) = ioctl(
            c,
            fid,
            FSCTL_QUERY_ALLOCATED_RANGES,
            &range_input(off, len),
            max_out,
        );
        let ranges = out
            .chunks_exact(16)
            .map(|r| {
                (
                    u64::from_le_bytes(r[..8].try_into().unwrap()),
                    u64::from_le_bytes(r[8..].try_into().unwrap()),
                )
            })
            .collect();
        (st, ranges)
    }

    fn zero(c: &mut Client, fid: FileId, start: u64, end: u64) -> u32 {
        ioctl(c, fid, FSCTL_SET_ZERO_DATA, &range_input(start, end), 0).0
    }

    fn is_sparse(kit: &Kit, name: &str) -> bool {
        kit.root.stat(name).unwrap().dos_attributes & FILE_ATTRIBUTE_SPARSE_FILE != 0
    }

    // ---------------------------------------------------------------- copychunk

    #[test]
    fn resume_key_is_stable_and_copies_work_across_connections() {
        let kit = Kit::new();
        let data = pattern_file(&kit, "src", 8 * KIB);
        let (mut a, mut b) = (kit.client(), kit.client());
        let src = open(&mut a, "src", FILE_ALL_ACCESS);
        let key = resume_key(&mut a, src);
        assert_eq!(resume_key(&mut a, src), key, "one key per open");
        let other = open(&mut a, "src", FILE_ALL_ACCESS);
        assert_ne!(resume_key(&mut a, other), key, "another open, another key");
        let dst = open(&mut b, "dst", FILE_ALL_ACCESS);
        let (st, rsp) = copy(
            &mut b,
            dst,
            FSCTL_SRV_COPYCHUNK,
            &key,
            &[(0, 0, 4096), (4096, 4096, 4096)],
        );
        assert_eq!((st, rsp), (status::SUCCESS, Some([2, 0, 8192])));
        assert_eq!(std::fs::read(kit.path("dst")).unwrap(), data);
        // Appending the same range again, and no chunks at all.
        let (st, rsp) = copy(
            &mut b,
            dst,
            FSCTL_SRV_COPYCHUNK_WRITE,
            &key,
            &[(0, 8192, 100)],
        );
        assert_eq!((st, rsp), (status::SUCCESS, Some([1, 0, 100])));
        assert_eq!(std::fs::read(kit.path("dst")).unwrap()[8192..], data[..100]);
        assert_eq!(
            copy(&mut b, dst, FSCTL_SRV_COPYCHUNK, &key, &[]),
            (status::SUCCESS, Some([0, 0, 0]))
        );
        // Once the source is closed its key names nothing; neither does a made-up key.
        assert_eq!(a.close(src), 0);
        assert_eq!(
            copy(&mut b, dst, FSCTL_SRV_COPYCHUNK, &key, &[(0, 0, 1)]).0,
            status::OBJECT_NAME_NOT_FOUND
        );
        let bogus = b"deadbeefdeadbeefdeadbeef";
        assert_eq!(
            copy(&mut b, dst, FSCTL_SRV_COPYCHUNK, bogus, &[(0, 0, 1)]).0,
            status::OBJECT_NAME_NOT_FOUND
        );
    }

    #[test]
    fn copychunk_limits_and_malformed_requests() {
        let kit = Kit::new();
        pattern_file(&kit, "src", 4 * KIB);
        let mut c = kit.client();
        let src = open(&mut c, "src", FILE_ALL_ACCESS);
        let dst = open(&mut c, "dst", FILE_ALL_ACCESS);
        let key = resume_key(&mut c, src);
        let limits = Some([
            COPYCHUNK_MAX_CHUNKS,
            COPYCHUNK_MAX_CHUNK_SIZE,
            COPYCHUNK_MAX_TOTAL,
        ]);
        let invalid = status::INVALID_PARAMETER;
        assert_eq!(
            copy(&mut c, dst, FSCTL_SRV_COPYCHUNK, &key, &[(0, 0, u32::MAX)]),
            (invalid, limits)
        );
        assert_eq!(
            copy(&mut c, dst, FSCTL_SRV_COPYCHUNK, &key, &[(0, 0, 0)]),
            (invalid, limits)
        );
        let many = vec![(0, 0, 1); COPYCHUNK_MAX_CHUNKS as usize + 1];
        assert_eq!(
            copy(&mut c, dst, FSCTL_SRV_COPYCHUNK, &key, &many),
            (invalid, limits)
        );
        let big = vec![(0, 0, COPYCHUNK_MAX_CHUNK_SIZE); 17];
        assert_eq!(
            copy(&mut c, dst, FSCTL_SRV_COPYCHUNK, &key, &big),
            (invalid, limits)
        );
        // A valid request with too small an output buffer, or a truncated one: no body.
        let input = copy_input(&key, &[(0, 0, 4096)]);
        assert_eq!(
            ioctl(&mut c, dst, FSCTL_SRV_COPYCHUNK, &input, 11),
            (invalid, vec![])
        );
        assert_eq!(
            ioctl(&mut c, dst, FSCTL_SRV_COPYCHUNK, &input[..40], 12),
            (invalid, vec![])
        );
        assert_eq!(
            ioctl(&mut c, dst, FSCTL_SRV_COPYCHUNK, &input[..31], 12),
            (invalid, vec![])
        );
        assert_eq!(
            std::fs::metadata(kit.path("dst")).unwrap().len(),
            0,
            "nothing copied"
        );
    }

    #[test]
    fn copychunk_access_rules() {
        let kit = Kit::new();
        pattern_file(&kit, "src", 4 * KIB);
        let mut c = kit.client();
        let dst = open(&mut c, "dst", FILE_ALL_ACCESS);
        let one = [(0u64, 0u64, 4096u32)];
        // The source needs READ_DATA or EXECUTE.
        for (access, want) in [
            (FILE_READ_DATA | FILE_READ_ATTRIBUTES, status::SUCCESS),
            (FILE_EXECUTE | FILE_READ_ATTRIBUTES, status::SUCCESS),
            (FILE_READ_ATTRIBUTES, status::ACCESS_DENIED),
        ] {
            let src = open(&mut c, "src", access);
            let key = resume_key(&mut c, src);
            assert_eq!(
                copy(&mut c, dst, FSCTL_SRV_COPYCHUNK, &key, &one).0,
                want,
                "source access {access:#x}"
            );
            c.close(src);
        }
        // The target needs WRITE_DATA, and READ_DATA too for COPYCHUNK (not _WRITE).
        let src = open(&mut c, "src", FILE_READ_DATA);
        let key = resume_key(&mut c, src);
        let no_write = open(
            &mut c,
            "dst",
            FILE_ALL_ACCESS & !(FILE_WRITE_DATA | FILE_APPEND_DATA),
        );
        assert_eq!(
            copy(&mut c, no_write, FSCTL_SRV_COPYCHUNK, &key, &one).0,
            status::ACCESS_DENIED
        );
        assert_eq!(
            copy(&mut c, no_write, FSCTL_SRV_COPYCHUNK_WRITE, &key, &one).0,
            status::ACCESS_DENIED
        );
        let no_read = open(&mut c, "dst", FILE_ALL_ACCESS & !FILE_READ_DATA);
        assert_eq!(
            copy(&mut c, no_read, FSCTL_SRV_COPYCHUNK, &key, &one).0,
            status::ACCESS_DENIED
        );
        assert_eq!(
            copy(&mut c, no_read, FSCTL_SRV_COPYCHUNK_WRITE, &key, &one).0,
            status::SUCCESS
        );
    }

    #[test]
    fn copychunk_failures_report_what_was_written() {
        let kit = Kit::new();
        let data = pattern_file(&kit, "src", 8 * KIB);
        let mut c = kit.client();
        let src = open(&mut c, "src", FILE_ALL_ACCESS);
        let dst = open(&mut c, "dst", FILE_ALL_ACCESS);
        let key = resume_key(&mut c, src);
        // Beyond the end of the source: the first chunk is written, the second is not.
        let (st, rsp) = copy(
            &mut c,
            dst,
            FSCTL_SRV_COPYCHUNK,
            &key,
            &[(0, 0, 4096), (4096, 4096, 8192)],
        );
        assert_eq!((st, rsp), (status::INVALID_VIEW_SIZE, Some([1, 0, 4096])));
        assert_eq!(std::fs::read(kit.path("dst")).unwrap(), data[..4096]);
        // Exactly up to the end is fine.
        let (st, rsp) = copy(&mut c, dst, FSCTL_SRV_COPYCHUNK, &key, &[(1024, 0, 7168)]);
        assert_eq!((st, rsp), (status::SUCCESS, Some([1, 0, 7168])));
        // A lock another open holds on the source range, then on the target range.
        let src2 = open(&mut c, "src", FILE_ALL_ACCESS);
        assert_eq!(lock(&mut c, src2, 4096, 10, LOCK_EXCLUSIVE_NOW), 0);
        let (st, rsp) = copy(
            &mut c,
            dst,
            FSCTL_SRV_COPYCHUNK,
            &key,
            &[(0, 0, 100), (4090, 0, 100)],
        );
        assert_eq!((st, rsp), (status::FILE_LOCK_CONFLICT, Some([1, 0, 100])));
        assert_eq!(lock(&mut c, src2, 4096, 10, UNLOCK), 0);
        let dst2 = open(&mut c, "dst", FILE_ALL_ACCESS);
        assert_eq!(lock(&mut c, dst2, 0, 4096, LOCK_EXCLUSIVE_NOW), 0);
        let (st, rsp) = copy(&mut c, dst, FSCTL_SRV_COPYCHUNK, &key, &[(0, 0, 4096)]);
        assert_eq!((st, rsp), (status::FILE_LOCK_CONFLICT, Some([0, 0, 0])));
        assert_eq!(lock(&mut c, dst2, 0, 4096, UNLOCK), 0);
        assert_eq!(
            copy(&mut c, dst, FSCTL_SRV_COPYCHUNK, &key, &[(0, 0, 4096)]).0,
            status::SUCCESS
        );
    }

    #[test]
    fn copychunk_onto_an_overlapping_range_of_its_own_source() {
        let kit = Kit::new();
        let data = pattern_file(&kit, "f", 4 * KIB);
        let mut c = kit.client();
        let f = open(&mut c, "f", FILE_ALL_ACCESS);
        let key = resume_key(&mut c, f);
        let (st, rsp) = copy(&mut c, f, FSCTL_SRV_COPYCHUNK, &key, &[(0, 2040, 2048)]);
        assert_eq!((st, rsp), (status::SUCCESS, Some([1, 0, 2048])));
        let got = std::fs::read(kit.path("f")).unwrap();
        assert_eq!(got[..2040], data[..2040]);
        assert_eq!(
            got[2040..4088],
            data[..2048],
            "the source as it was before the copy"
        );
    }

    // ---------------------------------------------------------------- sparse files

    #[test]
    fn set_sparse_with_and_without_a_buffer() {
        let kit = Kit::new();
        let mut c = kit.client();
        let f = open(&mut c, "f", FILE_ALL_ACCESS);
        assert!(!is_sparse(&kit, "f"));
        assert_eq!(
            ioctl(&mut c, f, FSCTL_SET_SPARSE, &[], 0).0,
            status::SUCCESS
        );
        assert!(is_sparse(&kit, "f"), "no buffer means set");
        assert_eq!(
            ioctl(&mut c, f, FSCTL_SET_SPARSE, &[], 0).0,
            status::SUCCESS
        );
        assert!(is_sparse(&kit, "f"), "and does not toggle");
        assert_eq!(
            ioctl(&mut c, f, FSCTL_SET_SPARSE, &[0], 0).0,
            status::SUCCESS
        );
        assert!(!is_sparse(&kit, "f"));
        let mut big = [0u8; 100];
        big[0] = 0xFF;
        assert_eq!(
            ioctl(&mut c, f, FSCTL_SET_SPARSE, &big, 0).0,
            status::SUCCESS
        );
        assert!(
            is_sparse(&kit, "f"),
            "a longer buffer counts by its first byte"
        );
        assert_eq!(
            ioctl(&mut c, f, FSCTL_SET_SPARSE, &[0; 100], 0).0,
            status::SUCCESS
        );
        assert!(!is_sparse(&kit, "f"));
        // The flag is kept across opens and reported by CREATE.
        assert_eq!(
            ioctl(&mut c, f, FSCTL_SET_SPARSE, &[1], 0).0,
            status::SUCCESS
        );
        c.close(f);
        let again = c.create(&CreateArgs::new("f")).unwrap();
        assert_ne!(again.attributes & FILE_ATTRIBUTE_SPARSE_FILE, 0);
        // Directories cannot be sparse.
        let d = mkdir(&mut c, "d");
        assert_eq!(
            ioctl(&mut c, d, FSCTL_SET_SPARSE, &[1], 0).0,
            status::INVALID_PARAMETER
        );
    }

    #[test]
    fn set_sparse_access_rules() {
        let kit = Kit::new();
        let mut c = kit.client();
        for (access, want) in [
            (FILE_WRITE_ATTRIBUTES, status::SUCCESS),
            (FILE_WRITE_DATA, status::SUCCESS),
            (FILE_APPEND_DATA, status::SUCCESS),
            (FILE_WRITE_EA, status::ACCESS_DENIED),
            (FILE_READ_DATA | FILE_READ_ATTRIBUTES, status::ACCESS_DENIED),
        ] {
            let name = format!("f{access:x}");
            let f = open(&mut c, &name, access);
            assert_eq!(
                ioctl(&mut c, f, FSCTL_SET_SPARSE, &[1], 0).0,
                want,
                "access {access:#x}"
            );
            assert_eq!(is_sparse(&kit, &name), want == status::SUCCESS);
        }
    }

    #[test]
    fn zero_data_zeroes_and_deallocates_only_sparse_files() {
        let kit = Kit::new();
        pattern_file(&kit, "f", 4 * K64 as usize);
        let mut c = kit.client();
        let f = open(&mut c, "f", FILE_ALL_ACCESS);
        // Not sparse: zeroed, and still one allocated range.
        assert_eq!(zero(&mut c, f, 0, K64), status::SUCCESS);
        let got = std::fs::read(kit.path("f")).unwrap();
        assert!(got[..K64 as usize].iter().all(|&b| b == 0));
        assert_eq!(got[K64 as usize], (K64 % 251) as u8);
        assert_eq!(
            qar(&mut c, f, 0, 4 * K64, 1024),
            (status::SUCCESS, vec![(0, 4 * K64)])
        );
        // Sparse: the range becomes a hole (on filesystems that punch, which ext4 does).
        assert_eq!(
            ioctl(&mut c, f, FSCTL_SET_SPARSE, &[1], 0).0,
            status::SUCCESS
        );
        assert_eq!(zero(&mut c, f, K64, 2 * K64), status::SUCCESS);
        assert_eq!(zero(&mut c, f, 3 * K64, 4 * K64), status::SUCCESS);
        let (st, ranges) = qar(&mut c, f, 0, 4 * K64, 1024);
        assert_eq!(st, status::SUCCESS);
        assert!(
            !ranges.contains(&(0, 4 * K64)) && !ranges.is_empty(),
            "{ranges:?}"
        );
        assert!(
            ranges
                .iter()
                .all(|&(o, l)| o + l <= K64 || (o >= 2 * K64 && o + l <= 3 * K64)),
            "{ranges:?}"
        );
        assert!(
            std::fs::read(kit.path("f")).unwrap()[K64 as usize..2 * K64 as usize]
                .iter()
                .all(|&b| b == 0)
        );
        // Not sparse again: the whole range reads as allocated.
        assert_eq!(
            ioctl(&mut c, f, FSCTL_SET_SPARSE, &[0], 0).0,
            status::SUCCESS
        );
        assert_eq!(
            qar(&mut c, f, 0, 4 * K64, 1024),
            (status::SUCCESS, vec![(0, 4 * K64)])
        );
        // Past the end of file nothing changes; an inverted range is invalid.
        assert_eq!(zero(&mut c, f, 4 * K64, 5 * K64), status::SUCCESS);
        assert_eq!(std::fs::metadata(kit.path("f")).unwrap().len(), 4 * K64);
        assert_eq!(zero(&mut c, f, 4096, 4095), status::INVALID_PARAMETER);
        assert_eq!(zero(&mut c, f, 4095, 4095), status::SUCCESS);
        assert_eq!(
            zero(&mut c, f, u64::MAX, u64::MAX),
            status::INVALID_PARAMETER,
            "negative offsets"
        );
        assert_eq!(
            ioctl(&mut c, f, FSCTL_SET_ZERO_DATA, &[0; 15], 0).0,
            status::INVALID_PARAMETER
        );
        let d = mkdir(&mut c, "d");
        assert_eq!(zero(&mut c, d, 0, 1), status::INVALID_PARAMETER);
    }

    #[test]
    fn zero_data_needs_write_data_and_respects_locks() {
        let kit = Kit::new();
        pattern_file(&kit, "f", 8 * KIB);
        let mut c = kit.client();
        for (access, want) in [
            (FILE_WRITE_DATA, status::SUCCESS),
            (FILE_WRITE_ATTRIBUTES, status::ACCESS_DENIED),
            (FILE_APPEND_DATA, status::ACCESS_DENIED),
            (FILE_WRITE_EA, status::ACCESS_DENIED),
        ] {
            let f = open(&mut c, "f", access);
            assert_eq!(zero(&mut c, f, 0, 4096), want, "access {access:#x}");
            c.close(f);
        }
        let f = open(&mut c, "f", FILE_ALL_ACCESS);
        let other = open(&mut c, "f", FILE_ALL_ACCESS);
        assert_eq!(lock(&mut c, other, 0, 4096, LOCK_EXCLUSIVE_NOW), 0);
        std::fs::write(kit.path("f"), [7u8; 8 * KIB]).unwrap();
        assert_eq!(zero(&mut c, f, 0, 4096), status::FILE_LOCK_CONFLICT);
        assert_eq!(zero(&mut c, f, 4000, 5000), status::FILE_LOCK_CONFLICT);
        assert_eq!(
            std::fs::read(kit.path("f")).unwrap(),
            [7u8; 8 * KIB],
            "nothing zeroed"
        );
        assert_eq!(zero(&mut c, f, 4096, 8192), status::SUCCESS);
        // Querying a locked range is fine.
        assert_eq!(
            qar(&mut c, f, 0, 4096, 1024),
            (status::SUCCESS, vec![(0, 4096)])
        );
    }

    #[test]
    fn allocated_ranges_buffer_rules() {
        let kit = Kit::new();
        let mut c = kit.client();
        let f = open(&mut c, "f", FILE_ALL_ACCESS);
        // Empty file: no ranges, whatever the output size.
        assert_eq!(qar(&mut c, f, 0, 1024, 0), (status::SUCCESS, vec![]));
        std::fs::write(kit.path("f"), [1u8; 3 * K64 as usize]).unwrap();
        assert_eq!(qar(&mut c, f, 0, 1024, 0).0, status::BUFFER_TOO_SMALL);
        assert_eq!(qar(&mut c, f, 0, 1024, 15).0, status::BUFFER_TOO_SMALL);
        assert_eq!(
            qar(&mut c, f, 0, 1024, 16),
            (status::SUCCESS, vec![(0, 1024)])
        );
        // Clipped to the end of file; nothing at or past it; a zero length asks nothing.
        assert_eq!(
            qar(&mut c, f, 1, 3 * K64, 1024),
            (status::SUCCESS, vec![(1, 3 * K64 - 1)])
        );
        assert_eq!(qar(&mut c, f, 3 * K64, 10, 1024), (status::SUCCESS, vec![]));
        assert_eq!(qar(&mut c, f, 0, 0, 1024), (status::SUCCESS, vec![]));
        // An oversized input is accepted, a short one is not; neither are negative values
        // or an end beyond i64::MAX.
        let mut twice = range_input(0, 1024);
        twice.extend_from_within(..);
        assert_eq!(
            ioctl(&mut c, f, FSCTL_QUERY_ALLOCATED_RANGES, &twice, 1024).0,
            status::SUCCESS
        );
        assert_eq!(
            ioctl(&mut c, f, FSCTL_QUERY_ALLOCATED_RANGES, &[], 1024).0,
            status::INVALID_PARAMETER
        );
        assert_eq!(
            qar(&mut c, f, 512, u64::MAX, 1024).0,
            status::INVALID_PARAMETER
        );
        assert_eq!(
            qar(&mut c, f, i64::MAX as u64, 1, 1024).0,
            status::INVALID_PARAMETER
        );
        // Sparse with two data ranges and room for one: BUFFER_OVERFLOW with the first.
        assert_eq!(
            ioctl(&mut c, f, FSCTL_SET_SPARSE, &[1], 0).0,
            status::SUCCESS
        );
        assert_eq!(zero(&mut c, f, K64, 2 * K64), status::SUCCESS);
        let (st, all) = qar(&mut c, f, 0, 3 * K64, 1024);
        assert_eq!(st, status::SUCCESS);
        if all == vec![(0, K64), (2 * K64, K64)] {
            assert_eq!(
                qar(&mut c, f, 0, 3 * K64, 16),
                (status::BUFFER_OVERFLOW, vec![(0, K64)])
            );
            assert_eq!(
                qar(&mut c, f, 0, 3 * K64, 31),
                (status::BUFFER_OVERFLOW, vec![(0, K64)])
            );
            assert_eq!(
                qar(&mut c, f, K64 - 1, K64 + 2, 1024),
                (status::SUCCESS, vec![(K64 - 1, 1), (2 * K64, 1)])
            );
        } else {
            eprintln!("this filesystem does not punch holes: {all:?}");
        }
        // READ_DATA is needed.
        let ra = open(&mut c, "f", FILE_READ_ATTRIBUTES);
        assert_eq!(qar(&mut c, ra, 0, 1024, 1024).0, status::ACCESS_DENIED);
        let rd = open(&mut c, "f", FILE_READ_DATA);
        assert_eq!(qar(&mut c, rd, 0, 1024, 1024).0, status::SUCCESS);
    }

    #[test]
    fn copies_and_sparse_controls_are_reported_to_change_notify() {
        let kit = Kit::new();
        pattern_file(&kit, "src", 4 * KIB);
        let mut c = kit.client();
        // A new watcher connection per change: it arms a watch on the share root for size,
        // write-time and attribute changes; the event comes back as the first message on
        // its connection, ahead of an ECHO's answer.
        let watch_then = |c: &mut Client, act: &dyn Fn(&mut Client)| {
            let mut w = kit.client();
            let dir = w
                .create(&CreateArgs {
                    disposition: 1,
                    options: 1,
                    ..CreateArgs::new("")
                })
                .expect("open the share root")
                .fid;
            let mut b = Vec::new();
            b.put_u16(32);
            b.put_u16(0);
            b.put_u32(4096);
            dir.put(&mut b);
            b.put_u32(0x4 | 0x8 | 0x10);
            b.put_u32(0);
            assert_eq!(w.request(Command::ChangeNotify, &b).0, status::PENDING);
            act(c);
            let (st, body) = w.request(Command::Echo, &[4, 0, 0, 0]);
            assert_eq!(st, status::SUCCESS, "a change was reported");
            let info = &body[8..];
            assert_eq!(
                u32::from_le_bytes(info[4..8].try_into().unwrap()),
                3,
                "FILE_ACTION_MODIFIED"
            );
            let name: Vec<u8> = "dst".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
            assert_eq!(info[12..12 + name.len()], name[..]);
        };
        let src = open(&mut c, "src", FILE_ALL_ACCESS);
        let dst = open(&mut c, "dst", FILE_ALL_ACCESS);
        let key = resume_key(&mut c, src);
        watch_then(&mut c, &|c: &mut Client| {
            assert_eq!(
                copy(c, dst, FSCTL_SRV_COPYCHUNK, &key, &[(0, 0, 4096)]).0,
                status::SUCCESS
            );
        });
        watch_then(&mut c, &|c: &mut Client| {
            assert_eq!(ioctl(c, dst, FSCTL_SET_SPARSE, &[1], 0).0, status::SUCCESS);
        });
        watch_then(&mut c, &|c: &mut Client| {
            assert_eq!(zero(c, dst, 0, 100), status::SUCCESS)
        });
    }

    // ---------------------------------------------------------------- the rest

    #[test]
    fn network_interfaces_are_announced_like_samba() {
        use duet_hal::net::Address;
        let v4 = |a: [u8; 4]| IpAddr::from(a);
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let addr = |name: &str, index, addr, broadcast| Address {
            name: name.into(),
            index,
            addr,
            up: true,
            loopback: name == "lo",
            broadcast,
            link_speed: None,
            rx_queues: 1,
        };
        let mut list = vec![
            addr("lo", 1, v4([127, 0, 0, 1]), false),
            addr("eth0", 4, v4([192, 0, 2, 2]), true),
            addr("eth0", 4, v6("fd00::2"), true),
            addr("eth0", 4, v6("fe80::1"), true),
            addr("wg0", 5, v4([10, 0, 0, 1]), false),
        ];
        list.push(Address {
            up: false,
            ..addr("eth1", 6, v4([198, 51, 100, 1]), true)
        });
        list.push(Address {
            link_speed: Some(10_000_000_000),
            rx_queues: 8,
            ..addr("eth2", 7, v4([203, 0, 113, 9]), true)
        });
        let chosen = announced(&list);
        let names: Vec<_> = chosen.iter().map(|a| a.addr).collect();
        assert_eq!(
            names,
            vec![v4([192, 0, 2, 2]), v6("fd00::2"), v4([203, 0, 113, 9])]
        );
        let out = encode_interfaces(&chosen);
        assert_eq!(out.len(), 3 * NET_IFACE_INFO_LEN);
        let u32_at = |o: usize| u32::from_le_bytes(out[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(out[o..o + 8].try_into().unwrap());
        // Entry 0: IPv4, default speed, not RSS.
        assert_eq!(
            (u32_at(0), u32_at(4), u32_at(8), u64_at(16)),
            (152, 4, 0, DEFAULT_LINK_SPEED)
        );
        assert_eq!(out[24..32], [2, 0, 0, 0, 192, 0, 2, 2]);
        assert!(out[32..152].iter().all(|&b| b == 0));
        // Entry 1: IPv6 (family 0x17, port, flow info, address, scope id).
        assert_eq!(u32_at(152), 152);
        assert_eq!(out[176..184], [0x17, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            out[184..200],
            "fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets()
        );
        // Entry 2: the last, RSS-capable at 10 Gbit/s.
        assert_eq!(
            (u32_at(304), u32_at(308), u32_at(312), u64_at(320)),
            (0, 7, RSS_CAPABLE, 10_000_000_000)
        );
    }

    #[test]
    fn network_interface_info_request_rules() {
        let kit = Kit::new();
        let mut c = kit.client();
        let ctl = FSCTL_QUERY_NETWORK_INTERFACE_INFO;
        let some_fid = FileId {
            persistent: i64::MAX as u64,
            volatile: i64::MAX as u64,
        };
        assert_eq!(
            ioctl(&mut c, some_fid, ctl, &[], 65535).0,
            status::INVALID_PARAMETER
        );
        assert_eq!(
            ioctl(&mut c, some_fid, ctl, &[], 1).0,
            status::INVALID_PARAMETER
        );
        assert_eq!(
            ioctl(&mut c, ALL_ONES, ctl, &[1, 2, 3, 4], 65535).0,
            status::INVALID_PARAMETER
        );
        let (st, out) = ioctl(&mut c, ALL_ONES, ctl, &[], 65535);
        assert_eq!(st, status::SUCCESS);
        assert_eq!(out.len() % NET_IFACE_INFO_LEN, 0);
        let expected = announced(&duet_hal::net::addresses().unwrap()).len();
        assert_eq!(out.len() / NET_IFACE_INFO_LEN, expected);
        if expected > 0 {
            assert_eq!(
                ioctl(&mut c, ALL_ONES, ctl, &[], 1).0,
                status::BUFFER_TOO_SMALL
            );
        }
        c.conn.neg.dialect = super::super::DIALECT_210;
        assert_eq!(
            ioctl(&mut c, ALL_ONES, ctl, &[], 65535).0,
            status::NOT_SUPPORTED
        );
    }

    #[test]
    fn smbtorture_force_unacked_timeout_is_answered_without_a_session() {
        let ctl = FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT;
        // Off by default: without a session it is refused like any other request.
        let kit = Kit::new();
        let mut c = kit.client();
        c.session_id = 0;
        assert_eq!(
            ioctl(&mut c, ALL_ONES, ctl, &[], 0).0,
            status::USER_SESSION_DELETED
        );
        let kit = Kit::with_config(|c| c.torture_fsctls = true);
        let mut c = kit.client();
        c.session_id = 0;
        assert_eq!(ioctl(&mut c, ALL_ONES, ctl, &[], 0).0, status::SUCCESS);
        assert_eq!(
            ioctl(&mut c, ALL_ONES, ctl, &[1], 0).0,
            status::INVALID_PARAMETER
        );
        // Another control without a session is not answered.
        assert_eq!(
            ioctl(
                &mut c,
                ALL_ONES,
                FSCTL_QUERY_NETWORK_INTERFACE_INFO,
                &[],
                65535
            )
            .0,
            status::USER_SESSION_DELETED
        );
        // A truncated body is INVALID_PARAMETER, not a panic.
        let mut hdr = c.header(Command::Ioctl);
        hdr[40..48].copy_from_slice(&0u64.to_le_bytes());
        hdr.extend_from_slice(&[57, 0, 0, 0, 0x03, 0x80, 0x84, 0x83]);
        let resp = c.frame(&hdr);
        assert_eq!(
            u32::from_le_bytes(resp[8..12].try_into().unwrap()),
            status::INVALID_PARAMETER
        );
    }

    #[test]
    fn smbtorture_async_sleep_answers_on_an_open_handle() {
        // Off by default: a production server does not answer test controls.
        let kit = Kit::new();
        let mut c = kit.client();
        let f = open(&mut c, "f", FILE_ALL_ACCESS);
        assert_eq!(
            ioctl(&mut c, f, FSCTL_SMBTORTURE_FSP_ASYNC_SLEEP, &[200], 0).0,
            status::NOT_SUPPORTED
        );
        assert_eq!(
            ioctl(
                &mut c,
                ALL_ONES,
                FSCTL_SMBTORTURE_GLOBAL_READ_RESPONSE_BODY_PADDING8,
                &[],
                1
            )
            .0,
            status::NOT_SUPPORTED
        );
        let kit = Kit::with_config(|c| c.torture_fsctls = true);
        let mut c = kit.client();
        let f = open(&mut c, "f", FILE_ALL_ACCESS);
        assert_eq!(
            ioctl(
                &mut c,
                ALL_ONES,
                FSCTL_SMBTORTURE_GLOBAL_READ_RESPONSE_BODY_PADDING8,
                &[],
                1
            ),
            (status::SUCCESS, vec![])
        );
        assert_eq!(c.conn.read_body_padding, 8);
        assert_eq!(
            ioctl(&mut c, f, FSCTL_SMBTORTURE_FSP_ASYNC_SLEEP, &[200], 0),
            (status::SUCCESS, vec![])
        );
        c.close(f);
        assert_eq!(
            ioctl(&mut c, f, FSCTL_SMBTORTURE_FSP_ASYNC_SLEEP, &[200], 0).0,
            status::FILE_CLOSED
        );
    }
}
