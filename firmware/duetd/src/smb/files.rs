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

/// Identity of a file on disk: its inode, and which of its streams (a named stream is
/// its own file for share modes, locks and delete on close, `streams.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    /// 0 for the file or directory itself (its unnamed data stream), else the id of a
    /// named stream (`streams::stream_id`).
    pub stream: u64,
}

impl FileKey {
    /// The key of the file itself, for a key of any of its streams.
    pub fn base(&self) -> FileKey {
        FileKey { stream: 0, ..*self }
    }

    /// Whether the key is a named stream's.
    pub fn is_stream(&self) -> bool {
        self.stream != 0
    }
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByteLock {
    pub who: OpenRef,
    pub offset: u64,
    pub length: u64,
    pub exclusive: bool,
}

/// Whether two byte ranges overlap by Windows' rules (MS-FSA 2.1.4.10): ranges are
/// inclusive of their last byte (offset + length - 1, which may be 2^64 - 1); a zero-byte
/// range at O overlaps a range only when O lies strictly after its first byte and at or
/// before its last one; two zero-byte ranges never overlap. Lengths must not overflow
/// (the LOCK request is refused with STATUS_INVALID_LOCK_RANGE first).
pub fn ranges_overlap(a_off: u64, a_len: u64, b_off: u64, b_len: u64) -> bool {
    let last = |off: u64, len: u64| off.saturating_add(len - 1);
    match (a_len, b_len) {
        (0, 0) => false,
        (0, _) => b_off < a_off && a_off <= last(b_off, b_len),
        (_, 0) => a_off < b_off && b_off <= last(a_off, a_len),
        _ => a_off <= last(b_off, b_len) && b_off <= last(a_off, a_len),
    }
}

impl ByteLock {
    fn overlaps(&self, offset: u64, length: u64) -> bool {
        ranges_overlap(self.offset, self.length, offset, length)
    }

    /// MS-FSA 2.1.4.10 with LockIntent: a new lock conflicts with an overlapping lock when
    /// either is exclusive, except that a shared lock may stack on an exclusive lock of the
    /// same open.
    fn blocks(&self, new: &ByteLock) -> bool {
        self.overlaps(new.offset, new.length)
            && (new.exclusive || (self.exclusive && self.who != new.who))
    }
}

/// Lock-sequence entries an open has (MS-SMB2 3.3.1.10: LockSequenceArray, indexes 1..=64).
pub const LOCK_SEQUENCE_ENTRIES: usize = 64;
/// The valid bit of an entry in [`OpenLockState::sequence_bytes`] (numbers are 4 bits).
pub const SEQUENCE_VALID: u8 = 0x10;

/// The per-open state of byte-range locking that MS-SMB2 keeps on the Open (3.3.1.10):
/// resiliency and the lock sequence array used to detect replayed LOCK requests.
#[derive(Clone, Debug)]
pub struct OpenLockState {
    /// Open.IsResilient with Open.ResiliencyTimeout in milliseconds (FSCTL_LMR_REQUEST_RESILIENCY).
    pub resiliency_timeout: Option<u32>,
    /// Open.IsDurable or Open.IsPersistent: durable-handle code sets this so that LOCK
    /// requests on the open are checked for replays (MS-SMB2 3.3.5.14).
    pub durable: bool,
    /// Open.LockSequenceArray: entry i - 1 is LockSequenceIndex i; None when not Valid.
    sequences: [Option<u8>; LOCK_SEQUENCE_ENTRIES],
}

impl Default for OpenLockState {
    fn default() -> Self {
        OpenLockState {
            resiliency_timeout: None,
            durable: false,
            sequences: [None; LOCK_SEQUENCE_ENTRIES],
        }
    }
}

impl OpenLockState {
    /// Whether LOCK requests on this open go through lock sequence verification
    /// (MS-SMB2 3.3.5.14; without multichannel only resilient, durable or persistent opens).
    pub fn verifies_sequence(&self) -> bool {
        self.resiliency_timeout.is_some() || self.durable
    }

    fn slot(index: u32) -> Option<usize> {
        (1..=LOCK_SEQUENCE_ENTRIES as u32)
            .contains(&index)
            .then(|| index as usize - 1)
    }

    /// MS-SMB2 3.3.5.14: true when the entry for `index` is valid and holds `number`, i.e. the
    /// request replays one that already succeeded. A valid entry with another number
    /// becomes invalid; an index of 0 or beyond the array is never a replay.
    pub fn is_replay(&mut self, index: u32, number: u8) -> bool {
        let Some(i) = Self::slot(index) else {
            return false;
        };
        match self.sequences[i] {
            Some(n) if n == number => true,
            Some(_) => {
                self.sequences[i] = None;
                false
            }
            None => false,
        }
    }

    /// The lock sequence array as bytes for persisting a durable open (the state store's
    /// `DurableOpen::lock_sequences`): a valid entry is `SEQUENCE_VALID | number`, an invalid
    /// one 0.
    pub fn sequence_bytes(&self) -> [u8; LOCK_SEQUENCE_ENTRIES] {
        self.sequences.map(|e| e.map_or(0, |n| SEQUENCE_VALID | n))
    }

    /// Restores the lock sequence array from [`OpenLockState::sequence_bytes`].
    pub fn set_sequence_bytes(&mut self, bytes: &[u8; LOCK_SEQUENCE_ENTRIES]) {
        self.sequences = bytes.map(|b| (b & SEQUENCE_VALID != 0).then_some(b & 0x0F));
    }

    /// Records a request that succeeded, so that its replay is recognised.
    pub fn record(&mut self, index: u32, number: u8) {
        if let Some(i) = Self::slot(index) {
            self.sequences[i] = Some(number);
        }
    }
}

#[derive(Default, Debug)]
pub struct FileEntry {
    pub opens: Vec<ShareEntry>,
    pub delete_pending: bool,
    pub locks: Vec<ByteLock>,
    /// Lock state of each open of the file that has any (resiliency, lock sequences).
    pub lock_state: HashMap<OpenRef, OpenLockState>,
    /// Current path from the share root (renames update it).
    pub path: String,
    /// The share `path` is relative to (see [`share_id`]).
    pub share: usize,
    /// Oplocks and leases on the file (`oplock.rs`).
    pub oplocks: super::oplock::FileOplocks,
}

/// Identifies a share in the file table: its root, which every tree connect to the share
/// shares (`Server::roots`).
pub fn share_id(root: &Arc<ShareRoot>) -> usize {
    Arc::as_ptr(root) as usize
}

/// Access bits that take part in share-mode checks.
const DATA_ACCESS: u32 =
    FILE_READ_DATA | FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_EXECUTE | DELETE;

#[derive(Default)]
pub struct FileTable {
    pub files: HashMap<FileKey, FileEntry>,
    /// How many of `files` are named streams of each file (by the file's key).
    stream_entries: HashMap<FileKey, usize>,
    /// Server-wide oplock and lease state: lease index, waiting requests (`oplock.rs`).
    pub oplock: super::oplock::Registry,
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
                || (o.access & (FILE_READ_DATA | FILE_EXECUTE) != 0
                    && share & FILE_SHARE_READ == 0)
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
        self.files
            .get(key)
            .map(|e| e.delete_pending)
            .unwrap_or(false)
    }

    pub fn open_count(&self, key: &FileKey) -> usize {
        self.files.get(key).map(|e| e.opens.len()).unwrap_or(0)
    }

    pub fn add_open(&mut self, key: FileKey, share: usize, path: &str, entry: ShareEntry) {
        if key.is_stream() && !self.files.contains_key(&key) {
            *self.stream_entries.entry(key.base()).or_default() += 1;
        }
        let e = self.files.entry(key).or_default();
        if e.opens.is_empty() {
            e.path = path.to_string();
            e.share = share;
        }
        e.opens.push(entry);
    }

    /// The file's current path in its share (renames through any connection update it).
    pub fn path_of(&self, key: &FileKey) -> Option<String> {
        self.files
            .get(key)
            .filter(|e| !e.opens.is_empty())
            .map(|e| e.path.clone())
    }

    /// Whether a rename may put a name into directory `dir`. Windows opens the target's
    /// directory for every rename (IRP_MJ_CREATE with SL_OPEN_TARGET_DIRECTORY: access
    /// FILE_ADD_FILE, or FILE_ADD_SUBDIRECTORY when a directory moves, plus SYNCHRONIZE;
    /// sharing read and write), so that open must pass the share-access check against
    /// the directory's opens (MS-FSA 2.1.5.1.2.1): an open of it that does not share
    /// write, or that holds DELETE access, makes the rename a sharing violation.
    pub fn check_rename_target_dir(&self, dir: &FileKey, moving_dir: bool) -> bool {
        let add = if moving_dir {
            FILE_ADD_SUBDIRECTORY
        } else {
            FILE_ADD_FILE
        };
        self.check_share(dir, add | SYNCHRONIZE, FILE_SHARE_READ | FILE_SHARE_WRITE)
    }

    /// Removes an open and its locks. Returns (the file's path, whether it must now be
    /// deleted) when this was the last open.
    pub fn remove_open(&mut self, key: &FileKey, who: OpenRef) -> Option<(String, bool)> {
        let e = self.files.get_mut(key)?;
        super::oplock::open_removed(&mut self.oplock, &mut e.oplocks, who);
        e.opens.retain(|o| o.who != who);
        e.locks.retain(|l| l.who != who);
        e.lock_state.remove(&who);
        if e.opens.is_empty() {
            if !key.is_stream() && e.delete_pending && self.stream_entries.contains_key(key) {
                // Its named streams are still open: the file goes with the last of them
                // (`take_orphan_delete`); until then it stays delete-pending.
                return None;
            }
            let e = self.files.remove(key)?;
            self.forget_stream(key);
            return Some((e.path, e.delete_pending));
        }
        None
    }

    fn forget_stream(&mut self, key: &FileKey) {
        if !key.is_stream() {
            return;
        }
        if let Some(n) = self.stream_entries.get_mut(&key.base()) {
            *n -= 1;
            if *n == 0 {
                self.stream_entries.remove(&key.base());
            }
        }
    }

    /// Whether any named stream of the file `key` belongs to is open.
    pub fn has_stream_opens(&self, key: &FileKey) -> bool {
        self.stream_entries.contains_key(&key.base())
    }

    /// Whether an open of the file itself with DELETE access may be made: every open of
    /// its named streams must share delete (the open is checked against each stream as if
    /// it opened the stream for DELETE, sharing everything).
    pub fn streams_allow_delete(&self, key: &FileKey) -> bool {
        if !self.has_stream_opens(key) {
            return true;
        }
        let all = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
        self.files
            .keys()
            .filter(|k| k.is_stream() && k.base() == key.base())
            .all(|k| self.check_share(k, DELETE, all))
    }

    /// After the last open of a named stream closed: the file's path, when the file was
    /// delete-pending with its own opens all closed and this was its last open stream
    /// (the caller deletes it).
    pub fn take_orphan_delete(&mut self, key: &FileKey) -> Option<String> {
        let base = key.base();
        if self.stream_entries.contains_key(&base) {
            return None;
        }
        match self.files.get(&base) {
            Some(e) if e.opens.is_empty() && e.delete_pending => {
                self.files.remove(&base).map(|e| e.path)
            }
            _ => None,
        }
    }

    /// Moves the entry of `old` (its opens, locks, state) to `new`, for a stream renamed
    /// under its open. False, with nothing changed, if `new` has an entry (is open).
    pub fn rekey(&mut self, old: &FileKey, new: FileKey) -> bool {
        if self.files.contains_key(&new) {
            return false;
        }
        let Some(e) = self.files.remove(old) else {
            return false;
        };
        self.forget_stream(old);
        if new.is_stream() {
            *self.stream_entries.entry(new.base()).or_default() += 1;
        }
        self.files.insert(new, e);
        true
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

    /// Whether any file of share `root` below directory `dir` is open (MS-FSA
    /// 2.1.5.15.11: a directory with open files below it cannot be renamed).
    pub fn has_open_below(&self, root: &Arc<ShareRoot>, dir: &str) -> bool {
        let share = share_id(root);
        let prefix = format!("{dir}/");
        self.files.values().any(|e| {
            e.share == share
                && !e.opens.is_empty()
                && (dir.is_empty() || e.path.starts_with(&prefix))
        })
    }

    /// MS-FSA 2.1.4.10 without LockIntent: would I/O by `who` on this range conflict with a
    /// lock? Zero-byte I/O never conflicts.
    pub fn io_conflicts(
        &self,
        key: &FileKey,
        who: OpenRef,
        offset: u64,
        length: u64,
        write: bool,
    ) -> bool {
        let Some(e) = self.files.get(key) else {
            return false;
        };
        if length == 0 {
            return false;
        }
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

    /// The first of `locks` that could not be granted if they were taken in order (each
    /// checked against the file's locks and the ones before it), or None if all can.
    pub fn first_conflict(&self, key: &FileKey, locks: &[ByteLock]) -> Option<usize> {
        let held: &[ByteLock] = self
            .files
            .get(key)
            .map(|e| e.locks.as_slice())
            .unwrap_or(&[]);
        (0..locks.len()).find(|&i| {
            let new = &locks[i];
            held.iter().chain(&locks[..i]).any(|l| l.blocks(new))
        })
    }

    /// Takes all of `locks` (MS-FSA 2.1.5.8), or none of them: on conflict returns the index
    /// of the first that could not be granted.
    pub fn lock_all(&mut self, key: &FileKey, locks: &[ByteLock]) -> Result<(), usize> {
        if let Some(i) = self.first_conflict(key, locks) {
            return Err(i);
        }
        self.files
            .entry(*key)
            .or_default()
            .locks
            .extend_from_slice(locks);
        Ok(())
    }

    /// Tries to take one byte-range lock. False on conflict.
    pub fn try_lock(&mut self, key: &FileKey, lock: ByteLock) -> bool {
        self.lock_all(key, std::slice::from_ref(&lock)).is_ok()
    }

    /// Removes one lock with this owner and range (MS-FSA 2.1.5.9): an exclusive one before
    /// any shared one stacked on the same range. False if there is none.
    pub fn unlock(&mut self, key: &FileKey, who: OpenRef, offset: u64, length: u64) -> bool {
        let Some(e) = self.files.get_mut(key) else {
            return false;
        };
        let mine = |l: &ByteLock| l.who == who && l.offset == offset && l.length == length;
        let found = e
            .locks
            .iter()
            .position(|l| mine(l) && l.exclusive)
            .or_else(|| e.locks.iter().rposition(mine));
        match found {
            Some(i) => {
                e.locks.remove(i);
                true
            }
            None => false,
        }
    }

    /// The lock state of an open of this file, created on first use.
    pub fn lock_state_mut(&mut self, key: &FileKey, who: OpenRef) -> &mut OpenLockState {
        self.files
            .entry(*key)
            .or_default()
            .lock_state
            .entry(who)
            .or_default()
    }

    /// The lock state of an open of this file, if it has any.
    pub fn lock_state(&self, key: &FileKey, who: OpenRef) -> Option<&OpenLockState> {
        self.files.get(key).and_then(|e| e.lock_state.get(&who))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(v: u64) -> OpenRef {
        OpenRef {
            conn: 1,
            volatile: v,
        }
    }
    const K: FileKey = FileKey {
        dev: 1,
        ino: 2,
        stream: 0,
    };

    #[test]
    fn streams_of_a_file() {
        let base = FileKey {
            dev: 1,
            ino: 7,
            stream: 0,
        };
        let s1 = FileKey { stream: 11, ..base };
        let s2 = FileKey { stream: 12, ..base };
        let entry = |v, access, share| ShareEntry {
            who: who(v),
            access,
            share,
        };
        let mut t = FileTable::default();
        assert_eq!(s1.base(), base);
        assert!(s1.is_stream() && !base.is_stream());
        t.add_open(s1, 1, "f", entry(1, FILE_READ_DATA, FILE_SHARE_READ));
        // A stream is its own file for share modes...
        assert!(t.check_share(&base, FILE_WRITE_DATA, 0));
        assert!(!t.check_share(&s1, FILE_WRITE_DATA, 7));
        // ...but the file cannot be opened for DELETE unless its streams share delete.
        assert!(t.has_stream_opens(&base));
        assert!(!t.streams_allow_delete(&base));
        t.add_open(s2, 1, "f", entry(2, FILE_READ_DATA, 7));
        t.remove_open(&s1, who(1));
        assert!(t.streams_allow_delete(&base));
        // A delete-pending file whose last own open closes waits for its streams.
        t.add_open(base, 1, "f", entry(3, DELETE, 7));
        t.set_delete_pending(&base, true);
        assert_eq!(t.remove_open(&base, who(3)), None);
        assert!(t.is_delete_pending(&base));
        assert_eq!(t.take_orphan_delete(&s2), None);
        // A renamed stream's open moves to the new key, not onto an open one.
        let s3 = FileKey { stream: 13, ..base };
        t.add_open(s1, 1, "f", entry(4, FILE_READ_DATA, 7));
        assert!(!t.rekey(&s2, s1));
        assert!(t.rekey(&s2, s3));
        assert_eq!(t.open_count(&s3), 1);
        assert_eq!(t.remove_open(&s1, who(4)), Some(("f".into(), false)));
        assert_eq!(t.take_orphan_delete(&s1), None, "s3 is still open");
        assert_eq!(t.remove_open(&s3, who(2)), Some(("f".into(), false)));
        assert!(!t.has_stream_opens(&base));
        assert_eq!(t.take_orphan_delete(&s3), Some("f".into()));
        assert!(!t.is_delete_pending(&base));
    }

    #[test]
    fn share_modes() {
        let mut t = FileTable::default();
        t.add_open(
            K,
            1,
            "a",
            ShareEntry {
                who: who(1),
                access: FILE_READ_DATA,
                share: FILE_SHARE_READ,
            },
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
    fn rename_target_directory_share_check() {
        let d = FileKey {
            dev: 1,
            ino: 9,
            stream: 0,
        };
        let open = |t: &mut FileTable, v, access, share| {
            t.add_open(
                d,
                1,
                "dir",
                ShareEntry {
                    who: who(v),
                    access,
                    share,
                },
            )
        };
        // No open of the directory, or one that only reads attributes: allowed.
        let mut t = FileTable::default();
        assert!(t.check_rename_target_dir(&d, false));
        open(&mut t, 1, FILE_READ_ATTRIBUTES | SYNCHRONIZE, 0);
        assert!(t.check_rename_target_dir(&d, false));
        // Listing it with every share mode (Explorer): allowed.
        let mut t = FileTable::default();
        open(&mut t, 1, FILE_LIST_DIRECTORY | SYNCHRONIZE, 7);
        assert!(t.check_rename_target_dir(&d, false));
        assert!(t.check_rename_target_dir(&d, true));
        // An open with DELETE access, whatever it shares: a sharing violation.
        let mut t = FileTable::default();
        open(&mut t, 1, FILE_READ_DATA | DELETE, 7);
        assert!(!t.check_rename_target_dir(&d, false));
        // An open sharing nothing: a sharing violation.
        let mut t = FileTable::default();
        open(&mut t, 1, FILE_READ_DATA, 0);
        assert!(!t.check_rename_target_dir(&d, false));
        // Sharing read only: no room for the rename's FILE_ADD_SUBDIRECTORY either.
        let mut t = FileTable::default();
        open(&mut t, 1, FILE_READ_DATA, FILE_SHARE_READ);
        assert!(!t.check_rename_target_dir(&d, true));
    }

    #[test]
    fn paths_and_opens_below() {
        let root = Arc::new(ShareRoot::open(std::env::temp_dir().as_path()).unwrap());
        let other = Arc::new(ShareRoot::open(std::env::temp_dir().as_path()).unwrap());
        let mut t = FileTable::default();
        let f = FileKey {
            dev: 1,
            ino: 3,
            stream: 0,
        };
        t.add_open(
            f,
            share_id(&root),
            "a/b/c.txt",
            ShareEntry {
                who: who(1),
                access: 0,
                share: 7,
            },
        );
        assert_eq!(t.path_of(&f).as_deref(), Some("a/b/c.txt"));
        t.set_path(&f, "a/b/d.txt");
        assert_eq!(t.path_of(&f).as_deref(), Some("a/b/d.txt"));
        assert!(t.has_open_below(&root, "a"));
        assert!(t.has_open_below(&root, "a/b"));
        assert!(t.has_open_below(&root, ""));
        assert!(!t.has_open_below(&root, "a/b/d.txt"));
        assert!(!t.has_open_below(&root, "a/bb"));
        // Another share's "a" is another directory.
        assert!(!t.has_open_below(&other, "a"));
        t.remove_open(&f, who(1));
        assert!(!t.has_open_below(&root, "a"));
        assert_eq!(t.path_of(&f), None);
    }

    #[test]
    fn locks() {
        let mut t = FileTable::default();
        t.add_open(
            K,
            1,
            "a",
            ShareEntry {
                who: who(1),
                access: FILE_READ_DATA,
                share: 7,
            },
        );
        assert!(t.try_lock(
            &K,
            ByteLock {
                who: who(1),
                offset: 0,
                length: 10,
                exclusive: true
            }
        ));
        assert!(!t.try_lock(
            &K,
            ByteLock {
                who: who(2),
                offset: 5,
                length: 10,
                exclusive: false
            }
        ));
        assert!(t.try_lock(
            &K,
            ByteLock {
                who: who(2),
                offset: 10,
                length: 10,
                exclusive: false
            }
        ));
        assert!(t.io_conflicts(&K, who(2), 0, 1, false));
        assert!(!t.io_conflicts(&K, who(1), 0, 1, true));
        assert!(t.io_conflicts(&K, who(1), 10, 1, true));
        assert!(!t.io_conflicts(&K, who(1), 10, 1, false));
        assert!(t.unlock(&K, who(1), 0, 10));
        assert!(!t.unlock(&K, who(1), 0, 10));
        assert!(!t.io_conflicts(&K, who(2), 0, 1, true));
    }

    fn lk(w: u64, offset: u64, length: u64, exclusive: bool) -> ByteLock {
        ByteLock {
            who: who(w),
            offset,
            length,
            exclusive,
        }
    }

    #[test]
    fn overlap_rules() {
        // Inclusive last byte, up to 2^64 - 1.
        assert!(ranges_overlap(u64::MAX, 1, u64::MAX, 1));
        assert!(ranges_overlap(0, u64::MAX, u64::MAX - 1, 1));
        assert!(!ranges_overlap(0, 10, 10, 1));
        assert!(ranges_overlap(0, 10, 9, 1));
        // A zero-byte range overlaps only ranges it lies strictly inside of (smbtorture
        // smb2.lock.zerobytelength, measured on Windows): 10/0 against ...
        for (off, len, hit) in [
            (10, 0, false),
            (9, 1, false),
            (10, 1, false),
            (11, 1, false),
            (9, 2, true),
            (10, 2, false),
            (9, 3, true),
        ] {
            assert_eq!(ranges_overlap(10, 0, off, len), hit, "{off}/{len}");
            assert_eq!(ranges_overlap(off, len, 10, 0), hit, "{off}/{len} reversed");
        }
        assert!(!ranges_overlap(u64::MAX, 0, u64::MAX, 0));
        assert!(ranges_overlap(100, 10, 102, 0));
    }

    #[test]
    fn stacking() {
        let mut t = FileTable::default();
        // A shared lock stacks on the same open's exclusive one, not on another open's.
        assert!(t.try_lock(&K, lk(1, 0, 10, true)));
        assert!(t.try_lock(&K, lk(1, 0, 10, false)));
        assert!(t.try_lock(&K, lk(1, 5, 10, false)));
        assert!(!t.try_lock(&K, lk(2, 0, 10, false)));
        // Two exclusive locks never stack, not even on one open.
        assert!(!t.try_lock(&K, lk(1, 0, 10, true)));
        // An exclusive lock never stacks on a shared one.
        assert!(t.try_lock(&K, lk(1, 20, 10, false)));
        assert!(!t.try_lock(&K, lk(1, 20, 10, true)));
        assert!(t.try_lock(&K, lk(2, 20, 10, false)));
        // A zero-byte lock inside another open's exclusive range conflicts.
        assert!(!t.try_lock(&K, lk(2, 3, 0, false)));
        assert!(t.try_lock(&K, lk(2, 0, 0, true)));
    }

    #[test]
    fn unlock_takes_exclusive_first() {
        let mut t = FileTable::default();
        assert!(t.try_lock(&K, lk(1, 10, 0, true)));
        assert!(t.try_lock(&K, lk(1, 10, 0, false)));
        // With the exclusive zero-byte lock at 10 another open cannot lock across it...
        assert!(!t.try_lock(&K, lk(2, 5, 10, false)));
        // ...after one unlock only the shared lock is left, which a shared lock may cross.
        assert!(t.unlock(&K, who(1), 10, 0));
        assert!(t.try_lock(&K, lk(2, 5, 10, false)));
        assert!(!t.try_lock(&K, lk(2, 5, 10, true)));
        assert!(t.unlock(&K, who(1), 10, 0));
        assert!(!t.unlock(&K, who(1), 10, 0));
        // Unlock needs the exact range and owner.
        assert!(!t.unlock(&K, who(1), 5, 10));
        assert!(t.unlock(&K, who(2), 5, 10));
    }

    #[test]
    fn lock_all_is_all_or_nothing() {
        let mut t = FileTable::default();
        assert!(t.try_lock(&K, lk(2, 10, 10, true)));
        let both = [lk(1, 0, 10, true), lk(1, 10, 10, true)];
        assert_eq!(t.first_conflict(&K, &both), Some(1));
        assert_eq!(t.lock_all(&K, &both), Err(1));
        // The first range was not kept.
        assert!(t.try_lock(&K, lk(2, 0, 10, true)));
        // Elements of one request conflict with each other too.
        assert_eq!(
            t.first_conflict(&K, &[lk(1, 30, 5, true), lk(1, 32, 5, true)]),
            Some(1)
        );
        assert_eq!(
            t.lock_all(&K, &[lk(1, 30, 5, false), lk(1, 32, 5, false)]),
            Ok(())
        );
    }

    #[test]
    fn io_against_locks() {
        let mut t = FileTable::default();
        assert!(t.try_lock(&K, lk(1, 0, 10, true)));
        assert!(t.try_lock(&K, lk(1, 100, 0, true)));
        // Zero-byte I/O never conflicts (MS-FSA reads and writes of 0 bytes succeed first).
        assert!(!t.io_conflicts(&K, who(2), 5, 0, false));
        // A zero-byte lock blocks I/O that crosses it, not I/O that starts at it.
        assert!(t.io_conflicts(&K, who(2), 99, 2, true));
        assert!(!t.io_conflicts(&K, who(2), 100, 2, true));
        assert!(!t.io_conflicts(&K, who(2), 98, 2, true));
        // The last byte of a range ending at 2^64 - 1 is locked.
        assert!(t.try_lock(&K, lk(1, u64::MAX, 1, true)));
        assert!(t.io_conflicts(&K, who(2), u64::MAX, 1, false));
    }

    #[test]
    fn lock_sequences() {
        let mut s = OpenLockState::default();
        assert!(!s.verifies_sequence());
        s.resiliency_timeout = Some(1000);
        assert!(s.verifies_sequence());
        assert!(!s.is_replay(1, 1));
        s.record(1, 1);
        assert!(s.is_replay(1, 1));
        // Another number invalidates the entry, so the old one is no replay either.
        assert!(!s.is_replay(1, 2));
        assert!(!s.is_replay(1, 1));
        // Index 0 and indexes beyond 64 are never recorded.
        s.record(0, 3);
        assert!(!s.is_replay(0, 3));
        s.record(65, 3);
        assert!(!s.is_replay(65, 3));
        s.record(64, 3);
        assert!(s.is_replay(64, 3));
        s.record(2, 0);
        // The array survives a round trip through its persisted form, number 0 included.
        let bytes = s.sequence_bytes();
        assert_eq!(
            (bytes[0], bytes[1], bytes[63], bytes[2]),
            (0, SEQUENCE_VALID, SEQUENCE_VALID | 3, 0)
        );
        let mut r = OpenLockState::default();
        r.set_sequence_bytes(&bytes);
        assert!(r.is_replay(2, 0) && r.is_replay(64, 3) && !r.is_replay(1, 0));
        // The state goes with the open.
        let mut t = FileTable::default();
        t.add_open(
            K,
            1,
            "a",
            ShareEntry {
                who: who(1),
                access: FILE_READ_DATA,
                share: 7,
            },
        );
        t.add_open(
            K,
            1,
            "a",
            ShareEntry {
                who: who(2),
                access: FILE_READ_DATA,
                share: 7,
            },
        );
        t.lock_state_mut(&K, who(1)).record(2, 2);
        assert!(t.lock_state(&K, who(1)).is_some());
        t.remove_open(&K, who(1));
        assert!(t.lock_state(&K, who(1)).is_none());
    }
}
