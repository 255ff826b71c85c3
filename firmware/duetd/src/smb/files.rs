//! Opens and the server-wide table of open files: share modes (MS-FSA 2.1.5.1.2),
//! delete-pending state and byte-range locks across every connection.
//!
//! Owns: the rules that make opens of one file on different connections see each other.
//! Never does file I/O itself.

use std::collections::HashMap;
use std::sync::Arc;

use duet_fscc::consts::*;
use duet_hal::fs::{Handle, ShareRoot};

use super::FileId;

/// ShareAccess bits (MS-SMB2 2.2.13).
pub const FILE_SHARE_READ: u32 = 0x1;
pub const FILE_SHARE_WRITE: u32 = 0x2;
pub const FILE_SHARE_DELETE: u32 = 0x4;
/// The FileAttributes a client may set (MS-SMB2 2.2.13: FILE_ATTRIBUTE_VALID_FLAGS).
pub const FILE_ATTRIBUTE_VALID_SET: u32 = 0x0000_7FB7;

/// Identity of a file on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

/// One SMB2 open (MS-SMB2 3.3.1.10 Open).
pub struct Open {
    pub file_id: FileId,
    pub session_id: u64,
    pub tree_id: u32,
    /// Path from the share root, '/' separated, "" for the root.
    pub path: String,
    pub kind: OpenKind,
    pub granted_access: u32,
    pub share_access: u32,
    pub create_options: u32,
    pub position: u64,
    pub mode: u32,
    pub is_dir: bool,
    pub key: Option<FileKey>,
    pub root: Option<Arc<ShareRoot>>,
    pub dir_enum: Option<super::dir::DirEnum>,
    /// Set by FILE_DELETE_ON_CLOSE: the file goes when this open closes.
    pub delete_on_close: bool,
}

pub enum OpenKind {
    File(Arc<Handle>),
    Pipe(Box<duet_rpc::Pipe>),
}

impl Open {
    pub fn handle(&self) -> Option<&Arc<Handle>> {
        match &self.kind {
            OpenKind::File(h) => Some(h),
            OpenKind::Pipe(_) => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenRef {
    pub conn: u64,
    pub volatile: u64,
}

#[derive(Clone, Debug)]
pub struct ShareEntry {
    pub who: OpenRef,
    pub access: u32,
    pub share: u32,
}

#[derive(Clone, Debug)]
pub struct ByteLock {
    pub who: OpenRef,
    pub offset: u64,
    pub length: u64,
    pub exclusive: bool,
}

impl ByteLock {
    fn overlaps(&self, offset: u64, length: u64) -> bool {
        // Zero-length ranges never conflict (MS-FSA 2.1.5.7 / Windows behaviour).
        if self.length == 0 || length == 0 {
            return false;
        }
        let a_end = self.offset.saturating_add(self.length);
        let b_end = offset.saturating_add(length);
        self.offset < b_end && offset < a_end
    }
}

#[derive(Default, Debug)]
pub struct FileEntry {
    pub opens: Vec<ShareEntry>,
    pub delete_pending: bool,
    pub locks: Vec<ByteLock>,
    /// Current path from the share root (renames update it).
    pub path: String,
}

/// Access bits that take part in share-mode checks.
const DATA_ACCESS: u32 = FILE_READ_DATA | FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_EXECUTE | DELETE;

#[derive(Default)]
pub struct FileTable {
    pub files: HashMap<FileKey, FileEntry>,
}

impl FileTable {
    /// MS-FSA 2.1.5.1.2.1 share-access check against every open of the file.
    pub fn check_share(&self, key: &FileKey, access: u32, share: u32) -> bool {
        let Some(e) = self.files.get(key) else {
            return true;
        };
        if access & DATA_ACCESS == 0 {
            return true;
        }
        for o in &e.opens {
            if o.access & DATA_ACCESS == 0 {
                continue;
            }
            let conflicts = (access & (FILE_READ_DATA | FILE_EXECUTE) != 0
                && o.share & FILE_SHARE_READ == 0)
                || (access & (FILE_WRITE_DATA | FILE_APPEND_DATA) != 0
                    && o.share & FILE_SHARE_WRITE == 0)
                || (access & DELETE != 0 && o.share & FILE_SHARE_DELETE == 0)
                || (o.access & (FILE_READ_DATA | FILE_EXECUTE) != 0 && share & FILE_SHARE_READ == 0)
                || (o.access & (FILE_WRITE_DATA | FILE_APPEND_DATA) != 0
                    && share & FILE_SHARE_WRITE == 0)
                || (o.access & DELETE != 0 && share & FILE_SHARE_DELETE == 0);
            if conflicts {
                return false;
            }
        }
        true
    }

    pub fn is_delete_pending(&self, key: &FileKey) -> bool {
        self.files.get(key).map(|e| e.delete_pending).unwrap_or(false)
    }

    pub fn open_count(&self, key: &FileKey) -> usize {
        self.files.get(key).map(|e| e.opens.len()).unwrap_or(0)
    }

    pub fn add_open(&mut self, key: FileKey, path: &str, entry: ShareEntry) {
        let e = self.files.entry(key).or_default();
        if e.opens.is_empty() {
            e.path = path.to_string();
        }
        e.opens.push(entry);
    }

    /// Removes an open and its locks. Returns (the file's path, whether it must now be
    /// deleted) when this was the last open.
    pub fn remove_open(&mut self, key: &FileKey, who: OpenRef) -> Option<(String, bool)> {
        let e = self.files.get_mut(key)?;
        e.opens.retain(|o| o.who != who);
        e.locks.retain(|l| l.who != who);
        if e.opens.is_empty() {
            let e = self.files.remove(key)?;
            return Some((e.path, e.delete_pending));
        }
        None
    }

    pub fn set_delete_pending(&mut self, key: &FileKey, v: bool) {
        if let Some(e) = self.files.get_mut(key) {
            e.delete_pending = v;
        }
    }

    pub fn set_path(&mut self, key: &FileKey, path: &str) {
        if let Some(e) = self.files.get_mut(key) {
            e.path = path.to_string();
        }
    }

    /// Whether any open of this file other than `except` has a path under `dir` (used to
    /// refuse renaming a directory with open files inside).
    pub fn has_open_below(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.files.values().any(|e| e.path.starts_with(&prefix))
    }

    /// MS-FSA 2.1.4.10: would I/O by `who` on this range conflict with a lock?
    pub fn io_conflicts(&self, key: &FileKey, who: OpenRef, offset: u64, length: u64, write: bool) -> bool {
        let Some(e) = self.files.get(key) else {
            return false;
        };
        e.locks.iter().any(|l| {
            l.overlaps(offset, length)
                && if l.who == who {
                    // Our own shared lock still blocks our writes.
                    write && !l.exclusive
                } else {
                    l.exclusive || write
                }
        })
    }

    /// Tries to take a byte-range lock. False on conflict.
    pub fn try_lock(&mut self, key: &FileKey, lock: ByteLock) -> bool {
        let e = self.files.entry(*key).or_default();
        let conflict = e
            .locks
            .iter()
            .any(|l| l.overlaps(lock.offset, lock.length) && (l.exclusive || lock.exclusive));
        if conflict {
            return false;
        }
        e.locks.push(lock);
        true
    }

    /// Removes exactly one lock with this owner and range. False if there is none.
    pub fn unlock(&mut self, key: &FileKey, who: OpenRef, offset: u64, length: u64) -> bool {
        let Some(e) = self.files.get_mut(key) else {
            return false;
        };
        if let Some(i) = e
            .locks
            .iter()
            .position(|l| l.who == who && l.offset == offset && l.length == length)
        {
            e.locks.remove(i);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(v: u64) -> OpenRef {
        OpenRef { conn: 1, volatile: v }
    }
    const K: FileKey = FileKey { dev: 1, ino: 2 };

    #[test]
    fn share_modes() {
        let mut t = FileTable::default();
        t.add_open(
            K,
            "a",
            ShareEntry { who: who(1), access: FILE_READ_DATA, share: FILE_SHARE_READ },
        );
        assert!(t.check_share(&K, FILE_READ_DATA, FILE_SHARE_READ));
        assert!(!t.check_share(&K, FILE_WRITE_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE));
        assert!(!t.check_share(&K, FILE_READ_DATA, FILE_SHARE_WRITE));
        // Attribute-only opens never conflict.
        assert!(t.check_share(&K, FILE_READ_ATTRIBUTES, 0));
        assert_eq!(t.remove_open(&K, who(1)), Some(("a".into(), false)));
        assert!(t.check_share(&K, FILE_WRITE_DATA, 0));
    }

    #[test]
    fn locks() {
        let mut t = FileTable::default();
        t.add_open(K, "a", ShareEntry { who: who(1), access: FILE_READ_DATA, share: 7 });
        assert!(t.try_lock(&K, ByteLock { who: who(1), offset: 0, length: 10, exclusive: true }));
        assert!(!t.try_lock(&K, ByteLock { who: who(2), offset: 5, length: 10, exclusive: false }));
        assert!(t.try_lock(&K, ByteLock { who: who(2), offset: 10, length: 10, exclusive: false }));
        assert!(t.io_conflicts(&K, who(2), 0, 1, false));
        assert!(!t.io_conflicts(&K, who(1), 0, 1, true));
        assert!(t.io_conflicts(&K, who(1), 10, 1, true));
        assert!(!t.io_conflicts(&K, who(1), 10, 1, false));
        assert!(t.unlock(&K, who(1), 0, 10));
        assert!(!t.unlock(&K, who(1), 0, 10));
        assert!(!t.io_conflicts(&K, who(2), 0, 1, true));
    }
}
