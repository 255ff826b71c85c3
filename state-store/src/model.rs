//! The public data types of duet-state: what callers pass in and get back.
//!
//! Owns the in-memory shape of users, shares and changes. Must never define how they are laid
//! out on disk (that is `records`, which is versioned and frozen per version): these types may
//! evolve freely. Their serde derives serve the admin and replication wire formats only.

use std::fmt;
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
}
