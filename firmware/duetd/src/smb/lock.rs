//! LOCK (MS-SMB2 2.2.26/2.2.27, 3.3.5.14): shared and exclusive byte ranges, unlock,
//! fail-immediately, and blocking locks that wait (async) until the range is free.
//!
//! Owns: lock request validation and the waiters of blocking locks. The lock table itself
//! is `files::FileTable`. Never grants overlapping conflicting locks.

use super::create::lookup_fid;
use super::files::{ByteLock, FileKey, OpenRef};
use super::{AsyncTarget, Conn, Fail, FileId, HResult, Pending, PendingKind, Reply, Req, Server};
use crate::wire::status;

const LOCKFLAG_SHARED: u32 = 0x01;
const LOCKFLAG_EXCLUSIVE: u32 = 0x02;
const LOCKFLAG_UNLOCK: u32 = 0x04;
const LOCKFLAG_FAIL_IMMEDIATELY: u32 = 0x10;
const MAX_LOCKS_PER_REQUEST: usize = 64;

/// A blocking lock waiting for its range.
pub struct Waiter {
    pub key: FileKey,
    pub lock: ByteLock,
    pub target: AsyncTarget,
}


pub fn handle_lock(conn: &mut Conn, req: &Req) -> HResult {
    let b = req.body();
    b.expect_structure_size(48)?;
    let count = b.u16(2)? as usize;
    let fid = FileId::parse(&b, 8)?;
    if count == 0 || count > MAX_LOCKS_PER_REQUEST {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    let mut elems = Vec::with_capacity(count);
    for i in 0..count {
        let o = 24 + i * 24;
        elems.push((b.u64(o)?, b.u64(o + 8)?, b.u32(o + 16)?));
    }
    let vol = lookup_fid(conn, req, fid)?;
    let open = conn.opens.get(&vol).ok_or(Fail::Status(status::FILE_CLOSED))?;
    let key = open.key.ok_or(Fail::Status(status::INVALID_DEVICE_REQUEST))?;
    if open.is_dir {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    let who = OpenRef { conn: conn.id, volatile: vol };
    let unlocking = elems[0].2 & LOCKFLAG_UNLOCK != 0;
    let mut files = conn.server.files.lock().map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
    if unlocking {
        for (off, len, fl) in &elems {
            if *fl != LOCKFLAG_UNLOCK {
                return Err(Fail::Status(status::INVALID_PARAMETER));
            }
            if !files.unlock(&key, who, *off, *len) {
                drop(files);
                wake(&conn.server, key);
                return Err(Fail::Status(status::RANGE_NOT_LOCKED));
            }
        }
        drop(files);
        wake(&conn.server, key);
        return Ok(Reply::ok(vec![4, 0, 0, 0]));
    }
    for (off, len, fl) in &elems {
        let base = fl & !LOCKFLAG_FAIL_IMMEDIATELY;
        if base != LOCKFLAG_SHARED && base != LOCKFLAG_EXCLUSIVE {
            return Err(Fail::Status(status::INVALID_PARAMETER));
        }
        if count > 1 && fl & LOCKFLAG_FAIL_IMMEDIATELY == 0 {
            return Err(Fail::Status(status::INVALID_PARAMETER));
        }
        if *len > 0 && off.checked_add(len - 1).is_none() {
            return Err(Fail::Status(status::INVALID_LOCK_RANGE));
        }
    }
    let mut taken: Vec<(u64, u64)> = Vec::new();
    for (off, len, fl) in &elems {
        let lock = ByteLock { who, offset: *off, length: *len, exclusive: fl & LOCKFLAG_EXCLUSIVE != 0 };
        if files.try_lock(&key, lock.clone()) {
            taken.push((*off, *len));
            continue;
        }
        if fl & LOCKFLAG_FAIL_IMMEDIATELY != 0 || count > 1 {
            for (o, l) in taken {
                files.unlock(&key, who, o, l);
            }
            return Err(Fail::Status(status::LOCK_NOT_GRANTED));
        }
        // A blocking lock: answer STATUS_PENDING and wait for the range.
        drop(files);
        if conn.pending.len() >= conn.server.cfg.max_pending_per_conn {
            return Err(Fail::Status(status::INSUFFICIENT_RESOURCES));
        }
        let async_id = conn.server.new_id();
        let target = conn.async_target(req, async_id);
        if let Ok(mut w) = conn.server.lock_waiters.lock() {
            w.push(Waiter { key, lock, target });
        }
        conn.pending.insert(
            async_id,
            Pending { message_id: req.message_id, session_id: req.session_id, kind: PendingKind::Lock { volatile: vol } },
        );
        return Ok(Reply::Pending { async_id });
    }
    Ok(Reply::ok(vec![4, 0, 0, 0]))
}

/// Retries the waiters of a file after its locks changed.
pub fn wake(server: &Server, key: FileKey) {
    let Ok(mut waiters) = server.lock_waiters.lock() else {
        return;
    };
    if waiters.is_empty() {
        return;
    }
    let Ok(mut files) = server.files.lock() else {
        return;
    };
    waiters.retain(|w| {
        if w.key != key {
            return true;
        }
        if files.try_lock(&key, w.lock.clone()) {
            w.target.complete(status::SUCCESS, &[4, 0, 0, 0]);
            false
        } else {
            true
        }
    });
}

/// CANCEL of a waiting lock.
pub fn cancel(conn: &mut Conn, async_id: u64, st: u32) {
    let conn_id = conn.id;
    if let Ok(mut waiters) = conn.server.lock_waiters.lock() {
        waiters.retain(|w| {
            if w.target.conn_id == conn_id && w.target.async_id == async_id {
                w.target.complete(st, &[]);
                false
            } else {
                true
            }
        });
    }
}

/// The handle closed: its waiting locks end with STATUS_RANGE_NOT_LOCKED.
pub fn close_handle(conn: &mut Conn, vol: u64) {
    let conn_id = conn.id;
    if let Ok(mut waiters) = conn.server.lock_waiters.lock() {
        waiters.retain(|w| {
            if w.lock.who.conn == conn_id && w.lock.who.volatile == vol {
                w.target.complete(status::RANGE_NOT_LOCKED, &[]);
                false
            } else {
                true
            }
        });
    }
    conn.pending.retain(|_, p| p.kind != PendingKind::Lock { volatile: vol });
}
