//! The one error type of duet-state, and the wording of every failure a caller can see.
//!
//! Must never carry redb or postcard types: storage-engine failures are flattened to text here,
//! and every failure that concerns the database file names that file.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in duet-state.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on the state directory or database file.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Another process (normally a running duetd) has the database open.
    #[error("{}: database is locked by another process (is duetd running?)", path.display())]
    Locked { path: PathBuf },

    /// The file is not a readable duet state database: truncated, overwritten, damaged, or
    /// some other redb database.
    #[error("{}: corrupted or not a duet state database: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },

    /// The database was written with a store schema this build does not know.
    #[error(
        "{}: state schema version {found} is not supported by this build (it reads version {supported})",
        path.display()
    )]
    UnsupportedSchema {
        path: PathBuf,
        found: u64,
        supported: u32,
    },

    /// A record carries a record-version byte this build does not know (written by a newer
    /// build, or damaged). The record is left untouched.
    #[error(
        "{}: {table} record {key:?} has unknown record version {version} (this build reads version {supported})",
        path.display()
    )]
    UnknownRecordVersion {
        path: PathBuf,
        table: &'static str,
        key: String,
        version: u8,
        supported: u8,
    },

    /// Any other failure of the storage engine.
    #[error("{}: storage error: {detail}", path.display())]
    Storage { path: PathBuf, detail: String },

    /// A name, path, comment, setting key or value failed validation.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: &'static str,
    },

    /// The password was rejected (the password itself is never put in an error).
    #[error("invalid password: {reason}")]
    InvalidPassword { reason: &'static str },

    /// A user or share of that name (compared case-insensitively) already exists.
    #[error("{what} {name:?} already exists")]
    AlreadyExists { what: &'static str, name: String },

    /// No user or share of that name.
    #[error("{what} {name:?} does not exist")]
    NotFound { what: &'static str, name: String },

    /// [`crate::Store::apply_change`] was given a change that does not directly follow the
    /// last one applied: a mirror must replay the feed in order, without gaps or repeats.
    #[error(
        "{}: change {got} cannot be applied: the next change must be {}",
        path.display(),
        last_seq.saturating_add(1)
    )]
    ChangeOutOfOrder {
        path: PathBuf,
        last_seq: u64,
        got: u64,
    },

    /// [`crate::Store::changes_since`] was asked for changes that
    /// [`crate::Store::prune_changes_before`] has removed: start again from a snapshot.
    #[error(
        "{}: changes after {requested} have been pruned; the feed starts at change {first_available} (start from a snapshot)",
        path.display()
    )]
    ChangesPruned {
        path: PathBuf,
        requested: u64,
        first_available: u64,
    },

    /// Local changes are refused: this node does not serve (it mirrors its partner).
    #[error("{}: change refused: {reason}", path.display())]
    Fenced { path: PathBuf, reason: String },
}

impl StoreError {
    /// A copy of this error, for the other waiters of a group commit that failed as a whole
    /// (an I/O error keeps its kind and message).
    pub(crate) fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Io { path, source } => StoreError::Io {
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            StoreError::Locked { path } => StoreError::Locked { path: path.clone() },
            StoreError::Corrupt { path, detail } => StoreError::Corrupt {
                path: path.clone(),
                detail: detail.clone(),
            },
            StoreError::UnsupportedSchema {
                path,
                found,
                supported,
            } => StoreError::UnsupportedSchema {
                path: path.clone(),
                found: *found,
                supported: *supported,
            },
            StoreError::UnknownRecordVersion {
                path,
                table,
                key,
                version,
                supported,
            } => StoreError::UnknownRecordVersion {
                path: path.clone(),
                table,
                key: key.clone(),
                version: *version,
                supported: *supported,
            },
            StoreError::Storage { path, detail } => StoreError::Storage {
                path: path.clone(),
                detail: detail.clone(),
            },
            StoreError::Invalid {
                what,
                value,
                reason,
            } => StoreError::Invalid {
                what,
                value: value.clone(),
                reason,
            },
            StoreError::InvalidPassword { reason } => StoreError::InvalidPassword { reason },
            StoreError::AlreadyExists { what, name } => StoreError::AlreadyExists {
                what,
                name: name.clone(),
            },
            StoreError::NotFound { what, name } => StoreError::NotFound {
                what,
                name: name.clone(),
            },
            StoreError::ChangeOutOfOrder {
                path,
                last_seq,
                got,
            } => StoreError::ChangeOutOfOrder {
                path: path.clone(),
                last_seq: *last_seq,
                got: *got,
            },
            StoreError::ChangesPruned {
                path,
                requested,
                first_available,
            } => StoreError::ChangesPruned {
                path: path.clone(),
                requested: *requested,
                first_available: *first_available,
            },
            StoreError::Fenced { path, reason } => StoreError::Fenced {
                path: path.clone(),
                reason: reason.clone(),
            },
        }
    }
}
