//! The public data types of duet-state: what callers pass in and get back.
//!
//! Owns the in-memory shape of users, shares and changes. Must never define how they are laid
//! out on disk (that is `records`, which is versioned and frozen per version): these types may
//! evolve freely. Their serde derives serve the admin and replication wire formats only.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// An NT hash: MD4 of the UTF-16LE password. Password-equivalent for NTLM, so its `Debug`
/// output is redacted.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NtHash(pub [u8; 16]);

impl fmt::Debug for NtHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NtHash(<redacted>)")
    }
}

/// A local user as listed (the hash is only available through
/// [`crate::Store::user_nt_hash`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The name as it was given when the user was added (lookups ignore case).
    pub name: String,
    /// When the user was added, in seconds since the Unix epoch.
    pub created: u64,
}

/// A configured share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareConfig {
    /// Share name as given (lookups ignore case).
    pub name: String,
    /// Absolute path of the shared directory.
    pub path: PathBuf,
    /// Free-text comment shown to clients.
    pub comment: String,
    /// Whether clients may only read.
    pub read_only: bool,
}

/// One committed change, as read from the change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Sequence number: 1 for the first change of a store, then strictly increasing by one.
    pub seq: u64,
    pub kind: ChangeKind,
}

/// What a change did. Each variant carries the complete new value, so that a mirror can apply
/// it with [`crate::Store::apply_change`] without reading anything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// A user was added or its password changed.
    UserPut {
        name: String,
        nt_hash: NtHash,
        created: u64,
    },
    UserRemoved {
        name: String,
    },
    /// A share was added.
    SharePut {
        share: ShareConfig,
    },
    ShareRemoved {
        name: String,
    },
    SettingPut {
        key: String,
        value: String,
    },
    // ---- appended in schema 2 (durable handles); keep appending, never reorder ----
    /// A durable open was created or changed (complete new value).
    DurableOpenPut {
        open: Box<DurableOpen>,
    },
    /// A durable open was closed, expired or purged.
    DurableOpenRemoved {
        persistent_id: u64,
    },
    /// A session (for PreviousSessionId reconnect) was created or changed.
    SessionPut {
        session: SessionRecord,
    },
    SessionRemoved {
        session_id: u64,
    },
    /// A client TCP connection was accepted or changed.
    ClientConnectionPut {
        connection: ClientConnection,
    },
    ClientConnectionRemoved {
        id: u64,
    },
}

/// A user with its NT hash, as carried by a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    pub nt_hash: NtHash,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

/// Every record of a store as of change `seq`: a partner starts from a snapshot
/// ([`crate::Store::restore_snapshot`]) and then applies the feed from `seq + 1` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last change this snapshot reflects (0: none).
    pub seq: u64,
    /// Ordered by folded name.
    pub users: Vec<UserRecord>,
    /// Ordered by folded name.
    pub shares: Vec<ShareConfig>,
    /// `(key, value)`, ordered by key.
    pub settings: Vec<(String, String)>,
    /// Ordered by persistent id.
    pub durable_opens: Vec<DurableOpen>,
    /// Ordered by session id.
    pub sessions: Vec<SessionRecord>,
    /// Ordered by id.
    pub connections: Vec<ClientConnection>,
}

/// Which durable handle request created an open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DurableVersion {
    /// DHnQ / DHnC.
    V1,
    /// DH2Q / DH2C.
    V2,
}

/// A lease as granted to an open (MS-SMB2 2.2.13.2.8 / 2.2.13.2.10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub key: [u8; 16],
    /// `SMB2_LEASE_READ_CACHING` 0x01 | `HANDLE_CACHING` 0x02 | `WRITE_CACHING` 0x04.
    pub state: u32,
    /// Lease epoch (v2 leases; 0 for v1).
    pub epoch: u16,
    /// Lease version: 1 or 2.
    pub version: u8,
    /// Parent lease key (v2 leases that carry one).
    pub parent_key: Option<[u8; 16]>,
    /// `SMB2_LEASE_FLAG_*` as the server last reported them (e.g. `BREAK_IN_PROGRESS` 0x02,
    /// `PARENT_LEASE_KEY_SET` 0x04).
    pub flags: u32,
}

/// What an open may cache: its oplock level or its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Caching {
    /// `SMB2_OPLOCK_LEVEL_NONE`.
    None,
    /// `SMB2_OPLOCK_LEVEL_II`.
    LevelII,
    /// `SMB2_OPLOCK_LEVEL_EXCLUSIVE`.
    Exclusive,
    /// `SMB2_OPLOCK_LEVEL_BATCH`.
    Batch,
    /// `SMB2_OPLOCK_LEVEL_LEASE`.
    Lease(Lease),
}

/// One byte-range lock held through an open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRangeLock {
    pub offset: u64,
    pub length: u64,
    /// Exclusive (write) lock; shared (read) lock otherwise.
    pub exclusive: bool,
    /// The lock owner as the SMB core identifies it (opaque to the store).
    pub owner: u64,
}

/// Which file an open refers to, so that a restored open can check it is still the same file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdentity {
    /// `st_dev` of the file.
    pub dev: u64,
    /// `st_ino` of the file.
    pub inode: u64,
    /// Creation time as reported to clients (NT time: 100 ns units since 1601-01-01).
    pub creation_time: u64,
}

/// Number of entries of an open's lock sequence array (MS-SMB2 3.3.1.10).
pub const LOCK_SEQUENCE_ENTRIES: usize = 64;

/// Everything a server (this one after a restart, or the partner after a takeover) needs to
/// honour a DHnC / DH2C reconnect of a durable open. Key: `persistent_id`.
///
/// Times are milliseconds since the Unix epoch (wall clock: they must mean the same after a
/// restart and on the partner node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableOpen {
    /// `FileId.Persistent`: the key a reconnect looks the open up by.
    pub persistent_id: u64,
    /// `FileId.Volatile` last handed to the client.
    pub volatile_id: u64,
    /// CreateGuid of a v2 request (zero for v1).
    pub create_guid: [u8; 16],
    /// ClientGuid of the connection that created the open.
    pub client_guid: [u8; 16],
    /// `Open.DurableOwner`: the user name ...
    pub owner_user: String,
    /// ... and its SID string (`S-1-...`); a reconnect by anyone else gets ACCESS_DENIED.
    pub owner_sid: String,
    /// Share name as the client gave it in TREE_CONNECT.
    pub share: String,
    /// Path of the file relative to the share root, as the client named it; for an open of
    /// a named stream, `path:stream` (no path component holds a ':'). Kept up to date
    /// when the file or stream is renamed.
    pub path: String,
    pub granted_access: u32,
    pub share_access: u32,
    pub create_options: u32,
    pub version: DurableVersion,
    /// `SMB2_DHANDLE_FLAG_PERSISTENT` (v2 only).
    pub persistent: bool,
    pub caching: Caching,
    pub locks: Vec<ByteRangeLock>,
    /// `Open.LockSequenceArray`; each byte as the SMB core encodes an entry (sequence number
    /// and valid bit), opaque to the store.
    #[serde(with = "crate::array64")]
    pub lock_sequences: [u8; LOCK_SEQUENCE_ENTRIES],
    /// Durable timeout granted to the client, in milliseconds.
    pub timeout_ms: u32,
    /// When the open lost its connection; `None` while connected.
    pub disconnected_at_ms: Option<u64>,
    /// `SMB2_CREATE_APP_INSTANCE_ID`, if the client sent one.
    pub app_instance_id: Option<[u8; 16]>,
    /// Current byte offset (FilePositionInformation).
    pub position: u64,
    pub file: FileIdentity,
}

impl DurableOpen {
    /// When a disconnected open expires (ms since the Unix epoch); `None` while connected.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.disconnected_at_ms
            .map(|t| t.saturating_add(u64::from(self.timeout_ms)))
    }

    /// Whether the open is disconnected and its timeout has run out at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms().is_some_and(|t| t <= now_ms)
    }
}

/// An SMB session, kept so that a SESSION_SETUP with PreviousSessionId can be matched to the
/// session it replaces after a restart or takeover. Key: `session_id`. duetd records a
/// session when its first durable open is committed (see its `smb::durable`).
///
/// No key material is stored: a reconnecting client authenticates again (a new SESSION_SETUP)
/// and derives fresh signing and encryption keys (MS-SMB2 3.3.5.5), so keeping session keys
/// would only put credential-equivalent secrets on disk and on the wire to the partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub session_id: u64,
    pub user: String,
    pub domain: String,
    pub client_guid: [u8; 16],
    /// Negotiated dialect, e.g. 0x0311.
    pub dialect: u16,
}

/// A client TCP connection, kept so that the node taking over the service address can send
/// tickle ACKs to the clients. Key: `id` (chosen by the server). duetd records a connection
/// when its first durable open is committed and removes it when the connection closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientConnection {
    pub id: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub client_guid: [u8; 16],
    /// When the connection was accepted, in milliseconds since the Unix epoch.
    pub connected_since_ms: u64,
}
