//! TREE_CONNECT and TREE_DISCONNECT (MS-SMB2 2.2.9-2.2.12, 3.3.5.7, 3.3.5.8): disk shares
//! from the state store, and IPC$ for the RPC pipes that list shares.
//!
//! Owns: the mapping of a share name to an open share root. Never opens a path that is not
//! a configured share.

use std::sync::Arc;

use duet_hal::fs::ShareRoot;

use super::{create, Conn, Fail, HResult, Reply, Req, Tree, TreeKind};
use crate::wire::{status, utf16le, PutLe};

pub const SHARE_TYPE_DISK: u8 = 1;
pub const SHARE_TYPE_PIPE: u8 = 2;
const MAX_TREES_PER_SESSION: usize = 1024;

/// Full access, and what a read-only share grants.
pub const ACCESS_FULL: u32 = 0x001F_01FF;
pub const ACCESS_READ_ONLY: u32 = 0x0012_00A9;

pub fn handle_connect(conn: &mut Conn, req: &Req) -> HResult {
    let b = req.body();
    b.expect_structure_size(9)?;
    let off = b.u16(4)? as usize;
    let len = b.u16(6)? as usize;
    let path = utf16le(b.buffer(off, len)?).map_err(|_| Fail::Status(status::BAD_NETWORK_NAME))?;
    // "\\server\share": the share is the last component.
    let trimmed = path.trim_start_matches('\\');
    let mut parts = trimmed.splitn(2, '\\');
    let _server = parts.next();
    let share = parts.next().ok_or(Fail::Status(status::BAD_NETWORK_NAME))?;
    if share.is_empty() || share.contains('\\') {
        return Err(Fail::Status(status::BAD_NETWORK_NAME));
    }
    let (kind, share_type, max_access, name) = if share.eq_ignore_ascii_case("IPC$") {
        (
            TreeKind::Ipc,
            SHARE_TYPE_PIPE,
            ACCESS_FULL,
            "IPC$".to_string(),
        )
    } else {
        let cfg = conn
            .server
            .store
            .share(share)
            .map_err(|e| {
                tracing::error!(error = %e, "state store share lookup failed");
                Fail::Status(status::INTERNAL_ERROR)
            })?
            .ok_or_else(|| {
                tracing::info!(peer = %conn.peer, share, "tree connect to an unknown share");
                Fail::Status(status::BAD_NETWORK_NAME)
            })?;
        let root = open_root(conn, &cfg.path)?;
        let access = if cfg.read_only {
            ACCESS_READ_ONLY
        } else {
            ACCESS_FULL
        };
        let stable_writes = continuous_availability(conn, &cfg.name)?;
        (
            TreeKind::Disk {
                root,
                read_only: cfg.read_only,
                stable_writes,
            },
            SHARE_TYPE_DISK,
            access,
            cfg.name,
        )
    };
    let sess = conn.session(req.session_id)?;
    if sess.trees.len() >= MAX_TREES_PER_SESSION {
        tracing::warn!(session = req.session_id, "tree connect limit reached");
        return Err(Fail::Status(status::INSUFFICIENT_RESOURCES));
    }
    let id = sess.alloc_tree_id();
    sess.trees.insert(
        id,
        Tree {
            id,
            share_name: name,
            kind,
            maximal_access: max_access,
        },
    );
    conn.last_tree_id = Some(id);
    let mut body = Vec::with_capacity(16);
    body.put_u16(16);
    body.put_u8(share_type);
    body.put_u8(0);
    body.put_u32(0); // ShareFlags: manual caching
    body.put_u32(0); // Capabilities
    body.put_u32(max_access);
    Ok(Reply::ok(body))
}

/// The setting key that makes share `name` continuously available.
pub fn continuous_availability_key(name: &str) -> String {
    format!("share.{}.continuous_availability", name.to_lowercase())
}

fn continuous_availability(conn: &Conn, name: &str) -> Result<bool, Fail> {
    match conn
        .server
        .store
        .setting(&continuous_availability_key(name))
    {
        Ok(v) => Ok(matches!(v.as_deref(), Some("true" | "yes" | "1"))),
        Err(e) => {
            tracing::error!(error = %e, "state store setting lookup failed");
            Err(Fail::Status(status::INTERNAL_ERROR))
        }
    }
}

fn open_root(conn: &Conn, path: &std::path::Path) -> Result<Arc<ShareRoot>, Fail> {
    let mut roots = conn
        .server
        .roots
        .lock()
        .map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
    if let Some(r) = roots.get(path) {
        return Ok(r.clone());
    }
    let root = ShareRoot::open(path).map_err(|e| {
        tracing::error!(path = %path.display(), error = %e, "cannot open share root");
        Fail::Status(status::BAD_NETWORK_NAME)
    })?;
    let root = Arc::new(root);
    roots.insert(path.to_path_buf(), root.clone());
    Ok(root)
}

pub fn handle_disconnect(conn: &mut Conn, req: &Req) -> HResult {
    req.body().expect_structure_size(4)?;
    conn.tree(req)?;
    let vols: Vec<u64> = conn
        .opens
        .iter()
        .filter(|(_, o)| o.session_id == req.session_id && o.tree_id == req.tree_id)
        .map(|(v, _)| *v)
        .collect();
    for v in vols {
        create::close_open(conn, v);
    }
    if let Some(s) = conn.sessions.get_mut(&req.session_id) {
        s.trees.remove(&req.tree_id);
    }
    Ok(Reply::ok(vec![4, 0, 0, 0]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smb::testkit::{CreateArgs, Kit};
    use crate::wire::{Command, PutLe};
    use std::sync::atomic::Ordering;

    /// A real TREE_CONNECT on `kit`'s share, whose tree then replaces the kit's own (the
    /// kit's requests name its fixed tree id).
    fn reconnect_tree(c: &mut crate::smb::testkit::Client) {
        let path: Vec<u8> = "\\\\DUET\\share"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let mut b = Vec::new();
        b.put_u16(9);
        b.put_u16(0);
        b.put_u16(72);
        b.put_u16(path.len() as u16);
        b.extend_from_slice(&path);
        let (st, _) = c.request(Command::TreeConnect, &b);
        assert_eq!(st, status::SUCCESS);
        let sid = c.session_id;
        let sess = c.conn.sessions.get_mut(&sid).expect("session");
        let new_id = sess.trees.keys().copied().max().expect("tree");
        let mut tree = sess.trees.remove(&new_id).expect("tree");
        let kit_id = sess.trees.keys().copied().next().expect("the kit's tree");
        tree.id = kit_id;
        sess.trees.insert(kit_id, tree);
    }

    fn synced_writes_of(kit: &Kit, ca: bool) -> u64 {
        if ca {
            kit.server
                .store
                .set_setting(&continuous_availability_key("Share"), "true")
                .unwrap();
        }
        let mut c = kit.client();
        reconnect_tree(&mut c);
        let before = kit.server.synced_writes.load(Ordering::Relaxed);
        let f = c.create(&CreateArgs::new("ca.bin")).expect("create");
        for i in 0..3u64 {
            assert_eq!(c.write(f.fid, i * 4, b"data"), status::SUCCESS);
        }
        assert_eq!(c.close(f.fid), status::SUCCESS);
        kit.server.synced_writes.load(Ordering::Relaxed) - before
    }

    #[test]
    fn continuously_available_share_puts_every_write_on_stable_storage() {
        assert_eq!(synced_writes_of(&Kit::new(), false), 0, "an ordinary share");
        assert_eq!(synced_writes_of(&Kit::new(), true), 3, "every WRITE synced");
    }
}
