//! READ, WRITE and FLUSH (MS-SMB2 2.2.17-2.2.22, 3.3.5.11-3.3.5.13), for files and for
//! the RPC pipes of IPC$.
//!
//! Owns: the data path. READ data is read straight into the response buffer and WRITE data
//! is written from the request buffer: no intermediate copies. Never lets I/O cross a
//! byte-range lock held by another open.

use duet_fscc::consts::*;

use super::create::{fs_status, lookup_fid};
use super::files::{OpenKind, OpenRef};
use super::negotiate::MAX_IO;
use super::{notify, Conn, Fail, FileId, HResult, Reply, Req, DIALECT_202};
use crate::wire::{status, PutLe};

const WRITEFLAG_WRITE_THROUGH: u32 = 0x0000_0001;
const FILE_WRITE_THROUGH: u32 = 0x0000_0002;

/// MS-SMB2 3.3.5.2.5: a multi-credit request must be paid for.
pub fn check_charge(conn: &Conn, req: &Req, len: usize) -> Result<(), Fail> {
    if conn.neg.dialect == DIALECT_202 {
        if len > 65536 {
            return Err(Fail::Status(status::INVALID_PARAMETER));
        }
        return Ok(());
    }
    let needed = len.max(1).div_ceil(65536) as u16;
    if req.credit_charge.max(1) < needed {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    Ok(())
}

struct RpcHost<'a> {
    conn: &'a Conn,
    user: String,
}

impl duet_rpc::RpcHost for RpcHost<'_> {
    fn shares(&self) -> Vec<duet_rpc::ShareInfo> {
        let mut v: Vec<duet_rpc::ShareInfo> = self
            .conn
            .server
            .store
            .list_shares()
            .unwrap_or_default()
            .into_iter()
            .map(|s| duet_rpc::ShareInfo {
                name: s.name,
                share_type: 0,
                comment: s.comment,
            })
            .collect();
        v.push(duet_rpc::ShareInfo {
            name: "IPC$".into(),
            share_type: 0x8000_0003,
            comment: "IPC Service".into(),
        });
        v
    }
    fn server(&self) -> duet_rpc::ServerInfo {
        duet_rpc::ServerInfo {
            name: self.conn.server.cfg.netbios_name.clone(),
            comment: "duet".into(),
            domain: self.conn.server.cfg.domain.clone(),
            version_major: 10,
            version_minor: 0,
            server_type: 0x0000_9003, // workstation | server | NT | server NT
            platform_id: 500,
        }
    }
    fn user(&self) -> String {
        self.user.clone()
    }
}

/// Writes to an RPC pipe and returns what the pipe answers to a read of `max` bytes (for
/// FSCTL_PIPE_TRANSCEIVE).
pub fn pipe_write(conn: &mut Conn, vol: u64, data: &[u8]) -> Result<(), Fail> {
    let user = conn
        .opens
        .get(&vol)
        .and_then(|o| conn.sessions.get(&o.session_id))
        .map(|s| s.user.clone())
        .unwrap_or_default();
    let mut open = conn
        .opens
        .remove(&vol)
        .ok_or(Fail::Status(status::FILE_CLOSED))?;
    let r = match &mut open.kind {
        OpenKind::Pipe(p) => {
            let host = RpcHost { conn, user };
            p.write(data, &host).map_err(|e| {
                tracing::info!(error = %e, "bad RPC request");
                Fail::Status(status::INVALID_PARAMETER)
            })
        }
        OpenKind::File(_) => Err(Fail::Status(status::INVALID_DEVICE_REQUEST)),
    };
    conn.opens.insert(vol, open);
    r
}

pub fn pipe_read(conn: &mut Conn, vol: u64, max: usize) -> Result<(Vec<u8>, bool), Fail> {
    match conn.opens.get_mut(&vol).map(|o| &mut o.kind) {
        Some(OpenKind::Pipe(p)) => Ok(p.read(max).unwrap_or_default()),
        Some(_) => Err(Fail::Status(status::INVALID_DEVICE_REQUEST)),
        None => Err(Fail::Status(status::FILE_CLOSED)),
    }
}

pub fn handle_read(conn: &mut Conn, req: &Req) -> HResult {
    let b = req.body();
    b.expect_structure_size(49)?;
    let len = b.u32(4)? as usize;
    let offset = b.u64(8)?;
    let fid = FileId::parse(&b, 16)?;
    let min_count = b.u32(32)? as usize;
    let vol = lookup_fid(conn, req, fid)?;
    if len > MAX_IO as usize {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    check_charge(conn, req, len)?;
    let open = conn
        .opens
        .get(&vol)
        .ok_or(Fail::Status(status::FILE_CLOSED))?;
    let handle = match &open.kind {
        OpenKind::Pipe(_) => {
            let (data, more) = pipe_read(conn, vol, len)?;
            if data.is_empty() {
                return Err(Fail::Status(status::END_OF_FILE));
            }
            return Ok(Reply::Body {
                status: if more {
                    status::BUFFER_OVERFLOW
                } else {
                    status::SUCCESS
                },
                body: read_body(data),
            });
        }
        OpenKind::File(h) => h.clone(),
    };
    if open.is_dir {
        return Err(Fail::Status(status::INVALID_DEVICE_REQUEST));
    }
    if open.granted_access & (FILE_READ_DATA | FILE_EXECUTE) == 0 {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    if let Some(key) = open.key {
        check_range_locks(conn, vol, key, offset, len as u64, false)?;
    }
    // Framed in place: HEADER_LEN bytes of headroom, the 16-byte READ response, the data
    // read straight behind it (no copy of the data after the pread), in a buffer the
    // writer gave back after sending an earlier response when there is one. Every byte
    // that goes out is written below (a reused buffer holds stale bytes): the header by
    // `append_response`, the body and padding here, the data by the pread (the message is
    // cut to what it read).
    const H: usize = crate::wire::HEADER_LEN;
    let pad = conn.read_body_padding;
    let mut msg = conn.outbox.buffer(H + 16 + pad + len);
    msg.resize(H + 16 + pad + len, 0);
    let body = &mut msg[H..H + 16 + pad];
    body.fill(0);
    body[0] = 17; // StructureSize (u16 LE)
    body[2] = (80 + pad) as u8; // DataOffset: header (64) + 16 (+ test padding)
    let n = if len == 0 {
        0
    } else {
        handle
            .read_at(&mut msg[H + 16 + pad..], offset)
            .map_err(|e| Fail::Status(fs_status(&e)))?
    };
    msg.truncate(H + 16 + pad + n);
    if (n == 0 && len > 0) || n < min_count {
        return Err(Fail::Status(status::END_OF_FILE));
    }
    msg.set_u32(H + 4, n as u32);
    if let Some(o) = conn.opens.get_mut(&vol) {
        o.position = offset + n as u64;
    }
    if n == 0 {
        msg.push(0);
    }
    Ok(Reply::Framed {
        status: status::SUCCESS,
        msg,
    })
}

fn read_body(data: Vec<u8>) -> Vec<u8> {
    let mut body = Vec::with_capacity(16 + data.len());
    body.put_u16(17);
    body.put_u8(80);
    body.put_u8(0);
    body.put_u32(data.len() as u32);
    body.put_u32(0);
    body.put_u32(0);
    body.extend_from_slice(&data);
    body
}

pub fn handle_write(conn: &mut Conn, req: &Req) -> HResult {
    let b = req.body();
    b.expect_structure_size(49)?;
    let data_off = b.u16(2)? as usize;
    let len = b.u32(4)? as usize;
    let offset = b.u64(8)?;
    let fid = FileId::parse(&b, 16)?;
    let flags = b.u32(44)?;
    let data = b.buffer(data_off, len)?;
    let vol = lookup_fid(conn, req, fid)?;
    if len > MAX_IO as usize {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    check_charge(conn, req, len)?;
    let open = conn
        .opens
        .get(&vol)
        .ok_or(Fail::Status(status::FILE_CLOSED))?;
    let handle = match &open.kind {
        OpenKind::Pipe(_) => {
            pipe_write(conn, vol, data)?;
            return Ok(Reply::ok(write_body(len)));
        }
        OpenKind::File(h) => h.clone(),
    };
    if open.is_dir {
        return Err(Fail::Status(status::INVALID_DEVICE_REQUEST));
    }
    if open.granted_access & (FILE_WRITE_DATA | FILE_APPEND_DATA) == 0 {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    let offset = if offset == u64::MAX {
        // MS-SMB2 2.2.21: write at end of file (append).
        handle.meta().map_err(|e| Fail::Status(fs_status(&e)))?.size
    } else {
        offset
    };
    if offset
        .checked_add(len as u64)
        .is_none_or(|e| e > i64::MAX as u64)
    {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    if let Some(key) = open.key {
        check_range_locks(conn, vol, key, offset, len as u64, true)?;
    }
    let stable_share = conn
        .sessions
        .get(&open.session_id)
        .and_then(|s| s.trees.get(&open.tree_id))
        .is_some_and(|t| {
            matches!(
                t.kind,
                super::TreeKind::Disk {
                    stable_writes: true,
                    ..
                }
            )
        });
    let write_through = stable_share
        || flags & WRITEFLAG_WRITE_THROUGH != 0
        || open.create_options & FILE_WRITE_THROUGH != 0;
    let path = open.path.clone();
    let root = open.root.clone();
    super::oplock::contend(conn, vol);
    if len > 0 {
        handle
            .write_at(data, offset)
            .map_err(|e| Fail::Status(fs_status(&e)))?;
    }
    if write_through {
        handle.sync().map_err(|e| Fail::Status(fs_status(&e)))?;
        conn.server
            .synced_writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    if let Some(o) = conn.opens.get_mut(&vol) {
        o.position = offset + len as u64;
    }
    if let Some(root) = root {
        notify::report_modified(conn, &root, &path);
    }
    Ok(Reply::ok(write_body(len)))
}

/// STATUS_FILE_LOCK_CONFLICT when another open's byte-range lock covers the range.
fn check_range_locks(
    conn: &Conn,
    vol: u64,
    key: super::files::FileKey,
    offset: u64,
    len: u64,
    write: bool,
) -> Result<(), Fail> {
    let who = OpenRef {
        conn: conn.id,
        volatile: vol,
    };
    let files = conn
        .server
        .files
        .lock()
        .map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
    if files.io_conflicts(&key, who, offset, len, write) {
        return Err(Fail::Status(status::FILE_LOCK_CONFLICT));
    }
    Ok(())
}

fn write_body(count: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(17);
    body.put_u16(17);
    body.put_u16(0);
    body.put_u32(count as u32);
    body.put_u32(0);
    body.put_u16(0);
    body.put_u16(0);
    body.push(0);
    body
}

/// FLUSH (MS-SMB2 3.3.5.11): really syncs the file to stable storage.
pub fn handle_flush(conn: &mut Conn, req: &Req) -> HResult {
    let b = req.body();
    b.expect_structure_size(24)?;
    let fid = FileId::parse(&b, 8)?;
    let vol = lookup_fid(conn, req, fid)?;
    let open = conn
        .opens
        .get(&vol)
        .ok_or(Fail::Status(status::FILE_CLOSED))?;
    if let OpenKind::File(h) = &open.kind {
        if open.granted_access & (FILE_WRITE_DATA | FILE_APPEND_DATA) == 0 {
            return Err(Fail::Status(status::ACCESS_DENIED));
        }
        h.sync().map_err(|e| Fail::Status(fs_status(&e)))?;
    }
    Ok(Reply::ok(vec![4, 0, 0, 0]))
}
