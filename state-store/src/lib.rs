//! duet-state: the persistent configuration state of `duetd` (local users with their NT
//! hashes, shares, settings), with a change feed for mirroring it to a partner node, and the
//! local admin protocol that `duetctl` speaks to a running daemon.
//!
//! Owns `DIR/state.redb` (one redb database, opened by one process at a time) and the wire
//! format of `DIR/duetd.sock`. Must never store a password (only its NT hash), never expose
//! redb or postcard types to callers, and never silently drop or overwrite a record it cannot
//! read: a damaged file or a record of an unknown version is an error naming the file.
//!
//! # Layout and extension pattern
//!
//! Every table maps a key to one record encoded as `[record version byte] ++ postcard(record)`
//! (see `records`). Every committed mutation goes through one code path that applies a
//! [`ChangeKind`] to the tables *and* appends it to the `changes` table under the next sequence
//! number, in the same write transaction, so the feed and the tables cannot disagree. A mirror
//! replays the feed with [`Store::apply_change`], which runs the same code path.
//!
//! To add a kind of state (e.g. durable handles): add a table and a versioned record struct
//! in `records`, append variants to `records::ChangeV1` / [`ChangeKind`] (append only: the
//! variant index is part of the on-disk format), and add their arms to the apply function in
//! `store`.

mod error;
mod model;
mod nthash;
mod records;
mod store;
mod validate;

pub mod admin;

pub use error::StoreError;
pub use model::{Change, ChangeKind, NtHash, ShareConfig, UserInfo};
pub use nthash::nt_hash;
pub use store::{Store, SCHEMA_VERSION, STATE_FILE};
