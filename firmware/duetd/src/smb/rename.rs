//! Renames (SET_INFO FileRenameInformation, MS-SMB2 3.3.5.21.1, MS-FSA 2.1.5.14.11): the
//! checks against other opens and the update of every open's path.
//!
//! Owns: rename rules. Never replaces a file that someone has open, or a directory.

use super::create::fs_status;
use super::{notify, Conn, Fail};
use crate::wire::status;

/// A rename through SET_INFO FileRenameInformation (MS-FSA 2.1.5.14.11).
pub fn rename(conn: &mut Conn, vol: u64, from: &str, to: &str, replace: bool, is_dir: bool) -> Result<(), Fail> {
    let open = conn.opens.get(&vol).ok_or(Fail::Status(status::FILE_CLOSED))?;
    let root = open.root.clone().ok_or(Fail::Status(status::INVALID_PARAMETER))?;
    let key = open.key;
    if from.is_empty() || to.is_empty() {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    if from == to {
        return Ok(());
    }
    let case_only = from.eq_ignore_ascii_case(to);
    if !case_only {
        if let Ok(m) = root.stat(to) {
            if !replace {
                return Err(Fail::Status(status::OBJECT_NAME_COLLISION));
            }
            if m.is_dir {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            let tkey = super::files::FileKey { dev: m.dev, ino: m.ino };
            if conn.server.files.lock().map(|f| f.open_count(&tkey) > 0).unwrap_or(false) {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
        }
    }
    if is_dir && conn.server.files.lock().map(|f| f.has_open_below(from)).unwrap_or(false) {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    root.rename(from, to, replace || case_only).map_err(|e| Fail::Status(fs_status(&e)))?;
    if let Some(k) = key {
        if let Ok(mut f) = conn.server.files.lock() {
            f.set_path(&k, to);
        }
    }
    for o in conn.opens.values_mut() {
        if o.key == key && key.is_some() {
            o.path = to.to_string();
        }
    }
    notify::report(conn, &root, from, notify::FILE_ACTION_RENAMED_OLD_NAME, is_dir);
    notify::report(conn, &root, to, notify::FILE_ACTION_RENAMED_NEW_NAME, is_dir);
    Ok(())
}
