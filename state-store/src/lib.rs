//! duet-state: the persistent state of `duetd`: configuration (local users with their NT
//! hashes, shares, settings) and the state an SMB reconnect needs (durable opens, sessions,
//! client connections), with a change feed for mirroring it to a partner node, and the local
//! admin protocol that `duetctl` speaks to a running daemon.
//!
//! Owns `DIR/state.redb` (one redb database, opened by one process at a time) and the wire
//! format of `DIR/duetd.sock`. Must never store a password (only its NT hash) or session key
//! material, never expose redb or postcard types to callers, and never silently drop or
//! overwrite a record it cannot read: a damaged file or a record of an unknown version is an
//! error naming the file.
//!
//! # Layout and extension pattern
//!
//! Every table maps a key to one record encoded as `[record version byte] ++ postcard(record)`
//! (see `records`). Every committed mutation goes through one code path that applies a
//! [`ChangeKind`] to the tables *and* appends it to the `changes` table under the next sequence
//! number, in the same write transaction, so the feed and the tables cannot disagree. A put
//! carries the complete new record, a removal its key. A mirror replays the feed with
//! [`Store::apply_change`] / [`Store::apply_changes`], which run the same code path.
//!
//! Tables (schema 2): `meta`, `users`, `shares`, `settings` (keyed by folded name / key),
//! `changes` (by sequence number), and `durable_opens` (by persistent id), `sessions` (by
//! session id), `connections` (by connection id).
//!
//! To add a kind of state: add a table and a versioned record struct in `records`, append
//! variants to `records::ChangeV1` / [`ChangeKind`] (append only: the variant index is part of
//! the on-disk format), add their arms to `apply`, `RecordKey` and `validated_change` in
//! `store`, and the table to `Tables`, `snapshot` and `restore_snapshot`. A new table is a
//! schema version bump with an upgrade step in `init_or_check`.
//!
//! # Durability and group commit
//!
//! Reliable state, the state a reconnect needs (durable opens with their locks, lease or
//! oplock, lock sequences and position; sessions; client connections), is written with
//! [`Store::submit`] or the typed calls built on it ([`Store::put_durable_open`], ...). They
//! return only once the redb transaction holding the change is on disk
//! (`Durability::Immediate`), so the SMB core calls them before the response that creates or
//! changes the state leaves the server. A commit thread puts every change submitted while the
//! previous transaction was syncing into the next one (group commit): N concurrent callers
//! share one disk sync instead of queueing for N. [`Store::submit_nowait`] returns a [`Ticket`]
//! instead of blocking, for a caller with other work to do before it must wait.
//!
//! Ephemeral, and lost in a crash: file data the SMB core has not flushed, anything the core
//! keeps only in memory (pending breaks, outstanding requests), and changes not yet
//! acknowledged by the partner (the feed is shipped after the local commit).
//!
//! Sessions carry no key material: a reconnecting client authenticates again with a new
//! SESSION_SETUP (MS-SMB2 3.3.5.5) and derives fresh signing and encryption keys, so stored
//! keys would be useless to a reconnect and a credential leak on disk and on the partner link.
//!
//! # Feeding a partner
//!
//! The partner starts from [`Store::snapshot`] (every record plus the sequence number it
//! reflects) via [`Store::restore_snapshot`], then applies `changes_since(snapshot.seq, ..)`.
//! [`Store::prune_changes_before`] bounds the feed; a reader behind the pruned point gets
//! [`StoreError::ChangesPruned`] and starts again from a snapshot.

mod array64;
mod error;
mod handles;
mod model;
mod nthash;
mod records;
mod store;
mod validate;
mod writer;

pub mod admin;
pub mod pair;

pub use error::StoreError;
pub use handles::unix_time_ms;
pub use model::{
    ByteRangeLock, Caching, Change, ChangeKind, ClientConnection, DurableOpen, DurableVersion,
    FileIdentity, Lease, NtHash, SessionRecord, ShareConfig, Snapshot, UserInfo, UserRecord,
    LOCK_SEQUENCE_ENTRIES,
};
pub use nthash::nt_hash;
pub use store::{CommitListener, Store, SCHEMA_VERSION, STATE_FILE};
pub use writer::{CommitStats, Ticket};
