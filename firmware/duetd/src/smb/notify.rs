//! CHANGE_NOTIFY (MS-SMB2 2.2.35/2.2.36, 3.3.5.19): directory watches that complete when
//! a change is made through this server, on any connection.
//!
//! Owns: the server-wide table of watches and the changes buffered between requests.
//! Never blocks: a watch completes through its connection's outbox.

use std::sync::Arc;

use duet_hal::fs::ShareRoot;

use super::create::lookup_fid;
use super::{AsyncTarget, Conn, Fail, FileId, HResult, Pending, PendingKind, Reply, Req};
use crate::wire::{put_utf16le, status, PutLe, HEADER_LEN};

pub const FILE_ACTION_ADDED: u32 = 1;
pub const FILE_ACTION_REMOVED: u32 = 2;
pub const FILE_ACTION_MODIFIED: u32 = 3;
pub const FILE_ACTION_RENAMED_OLD_NAME: u32 = 4;
pub const FILE_ACTION_RENAMED_NEW_NAME: u32 = 5;

const FILE_NOTIFY_CHANGE_FILE_NAME: u32 = 0x001;
const FILE_NOTIFY_CHANGE_DIR_NAME: u32 = 0x002;
const FILE_NOTIFY_CHANGE_ATTRIBUTES: u32 = 0x004;
const FILE_NOTIFY_CHANGE_SIZE: u32 = 0x008;
const FILE_NOTIFY_CHANGE_LAST_WRITE: u32 = 0x010;
const WATCH_TREE: u16 = 0x0001;
const MAX_BUFFERED: usize = 256;

struct Watch {
    conn_id: u64,
    volatile: u64,
    root: usize,
    dir: String,
    recursive: bool,
    filter: u32,
    max_output: usize,
    pending: Option<AsyncTarget>,
    buffered: Vec<(u32, String)>,
    overflow: bool,
}

#[derive(Default)]
pub struct NotifyTable {
    watches: Vec<Watch>,
}

impl NotifyTable {
    pub fn remove_conn(&mut self, conn_id: u64) {
        self.watches.retain(|w| w.conn_id != conn_id);
    }
    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }
}

fn root_id(root: &Arc<ShareRoot>) -> usize {
    Arc::as_ptr(root) as usize
}

/// FILE_NOTIFY_INFORMATION entries (MS-FSCC 2.7.1), 4-byte aligned. None if they do not
/// fit in `max`.
fn encode(changes: &[(u32, String)], max: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut prev: Option<usize> = None;
    for (action, name) in changes {
        out.pad_to(4);
        let here = out.len();
        if let Some(p) = prev {
            out.set_u32(p, (here - p) as u32);
        }
        out.put_u32(0);
        out.put_u32(*action);
        let mut n = Vec::new();
        put_utf16le(&mut n, name);
        out.put_u32(n.len() as u32);
        out.extend_from_slice(&n);
        prev = Some(here);
    }
    if out.len() > max {
        None
    } else {
        Some(out)
    }
}

fn notify_body(data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(8 + data.len() + 1);
    body.put_u16(9);
    body.put_u16(if data.is_empty() {
        0
    } else {
        (HEADER_LEN + 8) as u16
    });
    body.put_u32(data.len() as u32);
    body.extend_from_slice(data);
    if data.is_empty() {
        body.push(0);
    }
    body
}

/// Completes a pending watch with what it has buffered.
fn flush(w: &mut Watch) -> bool {
    let Some(t) = w.pending.take() else {
        return false;
    };
    if w.overflow {
        t.complete(status::NOTIFY_ENUM_DIR, &notify_body(&[]));
    } else {
        match encode(&w.buffered, w.max_output) {
            Some(d) => t.complete(status::SUCCESS, &notify_body(&d)),
            None => t.complete(status::NOTIFY_ENUM_DIR, &notify_body(&[])),
        }
    }
    w.buffered.clear();
    w.overflow = false;
    true
}

pub fn handle_change_notify(conn: &mut Conn, req: &Req) -> HResult {
    let b = req.body();
    b.expect_structure_size(32)?;
    let flags = b.u16(2)?;
    let out_len = b.u32(4)? as usize;
    let fid = FileId::parse(&b, 8)?;
    let filter = b.u32(24)?;
    let vol = lookup_fid(conn, req, fid)?;
    let open = conn
        .opens
        .get(&vol)
        .ok_or(Fail::Status(status::FILE_CLOSED))?;
    if !open.is_dir {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    if open.granted_access & duet_fscc::consts::FILE_LIST_DIRECTORY == 0 {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    if out_len > super::negotiate::MAX_IO as usize {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    let root = open
        .root
        .clone()
        .ok_or(Fail::Status(status::INVALID_PARAMETER))?;
    let dir = open.path.clone();
    if conn.pending.len() >= conn.server.cfg.max_pending_per_conn {
        tracing::warn!(peer = %conn.peer, "pending operation limit reached");
        return Err(Fail::Status(status::INSUFFICIENT_RESOURCES));
    }
    let async_id = conn.server.new_id();
    let target = conn.async_target(req, async_id);
    let conn_id = conn.id;
    let mut table = conn
        .server
        .notify
        .lock()
        .map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
    let idx = match table
        .watches
        .iter()
        .position(|w| w.conn_id == conn_id && w.volatile == vol)
    {
        Some(i) => i,
        None => {
            table.watches.push(Watch {
                conn_id,
                volatile: vol,
                root: root_id(&root),
                dir,
                recursive: flags & WATCH_TREE != 0,
                filter,
                max_output: out_len,
                pending: None,
                buffered: Vec::new(),
                overflow: false,
            });
            table.watches.len() - 1
        }
    };
    let w = &mut table.watches[idx];
    if w.pending.is_some() {
        // One outstanding request per handle at a time is what clients send; a second
        // replaces nothing and is refused.
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    w.filter = filter;
    w.recursive = flags & WATCH_TREE != 0;
    w.max_output = out_len;
    if !w.buffered.is_empty() || w.overflow {
        // Changes arrived since the last request: answer at once.
        let data = if w.overflow {
            None
        } else {
            encode(&w.buffered, out_len)
        };
        w.buffered.clear();
        w.overflow = false;
        return match data {
            Some(d) => Ok(Reply::ok(notify_body(&d))),
            None => Ok(Reply::Body {
                status: status::NOTIFY_ENUM_DIR,
                body: notify_body(&[]),
            }),
        };
    }
    w.pending = Some(target);
    drop(table);
    conn.pending.insert(
        async_id,
        Pending {
            message_id: req.message_id,
            session_id: req.session_id,
            kind: PendingKind::Notify { volatile: vol },
        },
    );
    tracing::debug!(peer = %conn.peer, async_id, "CHANGE_NOTIFY pending");
    Ok(Reply::Pending { async_id })
}

/// Reports a change made through the server at `path` (share-relative, '/' separated).
pub fn report(conn: &Conn, root: &Arc<ShareRoot>, path: &str, action: u32, is_dir: bool) {
    let Ok(mut table) = conn.server.notify.lock() else {
        return;
    };
    if table.is_empty() {
        return;
    }
    let rid = root_id(root);
    let (parent, _) = path.rsplit_once('/').unwrap_or(("", path));
    let class_filter = match action {
        FILE_ACTION_MODIFIED => {
            FILE_NOTIFY_CHANGE_ATTRIBUTES | FILE_NOTIFY_CHANGE_SIZE | FILE_NOTIFY_CHANGE_LAST_WRITE
        }
        _ if is_dir => FILE_NOTIFY_CHANGE_DIR_NAME,
        _ => FILE_NOTIFY_CHANGE_FILE_NAME,
    };
    for w in table.watches.iter_mut() {
        if w.root != rid || w.filter & class_filter == 0 {
            continue;
        }
        let rel = if w.dir.is_empty() {
            if !w.recursive && !parent.is_empty() {
                continue;
            }
            path.to_string()
        } else if parent == w.dir || (w.recursive && parent.starts_with(&format!("{}/", w.dir))) {
            path[w.dir.len() + 1..].to_string()
        } else {
            continue;
        };
        if w.buffered.len() >= MAX_BUFFERED {
            w.overflow = true;
        } else {
            w.buffered.push((action, rel.replace('/', "\\")));
        }
        flush(w);
    }
}

pub fn report_modified(conn: &Conn, root: &Arc<ShareRoot>, path: &str) {
    report(conn, root, path, FILE_ACTION_MODIFIED, false)
}

/// CANCEL of a pending watch.
pub fn cancel(conn: &mut Conn, async_id: u64, st: u32) {
    if let Ok(mut table) = conn.server.notify.lock() {
        for w in table.watches.iter_mut() {
            if w.pending.as_ref().is_some_and(|p| p.async_id == async_id) {
                if let Some(t) = w.pending.take() {
                    t.complete(st, &[]);
                }
            }
        }
    }
}

/// Forgets a pending watch request without answering it (the watch itself stays).
pub fn forget(conn: &mut Conn, async_id: u64) {
    if let Ok(mut table) = conn.server.notify.lock() {
        for w in table.watches.iter_mut() {
            if w.pending.as_ref().is_some_and(|p| p.async_id == async_id) {
                w.pending = None;
            }
        }
    }
}

/// The handle closed: a pending watch completes with STATUS_NOTIFY_CLEANUP.
pub fn close_handle(conn: &mut Conn, vol: u64) {
    let conn_id = conn.id;
    if let Ok(mut table) = conn.server.notify.lock() {
        table.watches.retain_mut(|w| {
            if w.conn_id == conn_id && w.volatile == vol {
                if let Some(t) = w.pending.take() {
                    t.complete(status::NOTIFY_CLEANUP, &notify_body(&[]));
                }
                false
            } else {
                true
            }
        });
    }
    conn.pending
        .retain(|_, p| p.kind != PendingKind::Notify { volatile: vol });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_information_layout() {
        let d = encode(
            &[
                (FILE_ACTION_ADDED, "a".into()),
                (FILE_ACTION_REMOVED, "bc".into()),
            ],
            1000,
        )
        .unwrap();
        // First entry: 12 + 2 bytes, padded to 16.
        assert_eq!(u32::from_le_bytes(d[0..4].try_into().unwrap()), 16);
        assert_eq!(
            u32::from_le_bytes(d[4..8].try_into().unwrap()),
            FILE_ACTION_ADDED
        );
        assert_eq!(u32::from_le_bytes(d[8..12].try_into().unwrap()), 2);
        assert_eq!(u32::from_le_bytes(d[16..20].try_into().unwrap()), 0);
        assert_eq!(d.len(), 16 + 12 + 4);
        assert!(encode(&[(1, "abc".into())], 10).is_none());
    }
}
