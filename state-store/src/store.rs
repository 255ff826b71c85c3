//! The [`Store`]: the one redb database at `DIR/state.redb`, its tables, and the change feed.
//!
//! Owns every read and write transaction on the file. Every mutation goes through
//! `commit_change`, which applies a change to the tables and appends it to the feed in the same
//! transaction. Must never hand redb types to callers, never write a record it has not
//! validated, and never overwrite or skip a record it cannot decode (that is an error).
//!
//! Two kinds of writers share the file, serialised by redb's single write transaction: the
//! admin operations (users, shares, settings, feed housekeeping), which run their own
//! transaction in the caller's thread, and everything submitted to the group-commit writer
//! thread (`writer`), which puts concurrent submissions into one transaction.

use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, Table, TableDefinition,
    TableHandle, WriteTransaction,
};
use serde::de::DeserializeOwned;

use crate::model::{
    Change, ChangeKind, ClientConnection, DurableOpen, SessionRecord, ShareConfig, Snapshot,
    UserInfo, UserRecord,
};
use crate::records::{
    self, ChangeV1, ConnectionV1, DecodeError, DurableOpenV1, SessionV1, SettingV1, ShareV1,
    UserV1, RECORD_VERSION,
};
use crate::validate::{self, fold};
use crate::writer::{self, Queue};
use crate::{nt_hash, NtHash, StoreError};

/// Version of the store as a whole: the set of tables, their key types and key folding.
/// Recorded in the `meta` table when the file is created and checked on every open.
///
/// 1: users, shares, settings, changes. 2: adds durable_opens, sessions, connections (a
/// version 1 file is upgraded in place when opened).
pub const SCHEMA_VERSION: u32 = 2;

/// File name of the database inside the state directory.
pub const STATE_FILE: &str = "state.redb";

/// Upper bound of redb's page cache (its default is 1 GiB); the state is small.
const CACHE_BYTES: usize = 16 << 20;

// Tables. Keys of USERS and SHARES are folded names (validate::fold); values are records
// (records::encode). CHANGES maps sequence numbers to records::ChangeV1. The u64-keyed tables
// of schema 2 are keyed by the record's id (persistent id, session id, connection id).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const SHARES: TableDefinition<&str, &[u8]> = TableDefinition::new("shares");
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
const DURABLE_OPENS: TableDefinition<u64, &[u8]> = TableDefinition::new("durable_opens");
const SESSIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("sessions");
const CONNECTIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("connections");

const META_SCHEMA: &str = "schema_version";
const META_LAST_SEQ: &str = "last_seq";
/// Highest sequence number removed from CHANGES by pruning (absent: 0, nothing pruned).
const META_PRUNED_THROUGH: &str = "pruned_through";

/// The persistent state of one duetd node. `Send + Sync`: share it with an `Arc`. Writes are
/// serialised by redb; reads run concurrently with them on a snapshot. Dropping the store
/// finishes every submitted change, stops its commit thread and closes the file.
pub struct Store {
    pub(crate) shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

/// What the store and its commit thread share.
pub(crate) struct Shared {
    pub db: Database,
    pub path: Arc<Path>,
    pub queue: Mutex<Queue>,
    /// Signalled when work is queued or the store shuts down.
    pub wake: Condvar,
    pub transactions: AtomicU64,
    pub operations: AtomicU64,
    /// Called after every committed write transaction (see [`Store::set_commit_listener`]).
    pub listener: RwLock<Option<CommitListener>>,
    /// Why local writes are refused, if they are (see [`Store::fence_local_writes`]).
    pub fence: RwLock<Option<String>>,
    /// The partner's acknowledgements (see [`Store::require_partner_acks`]).
    pub acks: Mutex<AckState>,
    pub acked: Condvar,
}

/// How far the partner has acknowledged the feed, when a pair mirrors it.
#[derive(Debug, Default)]
pub(crate) struct AckState {
    /// Commits wait for the partner only while this is set.
    pub required: bool,
    /// Every change up to here is safe.
    pub acked: u64,
    /// Changes above `acked` will never be acknowledged here: their waiters fail with this.
    pub abandoned: Option<String>,
}

/// What [`Store::set_commit_listener`] installs.
pub type CommitListener = Arc<dyn Fn() + Send + Sync>;

impl Shared {
    /// Tells the listener, if any, that a transaction committed.
    pub(crate) fn committed(&self) {
        let l = self
            .listener
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(l) = l {
            l();
        }
    }

    /// Blocks until change `seq` is acknowledged by the partner (at once when no partner
    /// acknowledgement is required), or fails once it never will be.
    pub(crate) fn wait_partner_ack(&self, seq: u64) -> Result<(), StoreError> {
        let mut st = crate::writer::lock(&self.acks);
        loop {
            if !st.required || seq <= st.acked {
                return Ok(());
            }
            if let Some(reason) = &st.abandoned {
                return Err(StoreError::Fenced {
                    path: self.path.to_path_buf(),
                    reason: reason.clone(),
                });
            }
            st = self
                .acked
                .wait(st)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Fails with [`StoreError::Fenced`] while local writes are refused.
    pub(crate) fn check_fence(&self) -> Result<(), StoreError> {
        match &*self
            .fence
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(reason) => Err(StoreError::Fenced {
                path: self.path.to_path_buf(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.shared.path)
            .finish()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        writer::shut_down(&self.shared);
        if let Some(handle) = self.writer.take() {
            // A panic of the commit thread has already failed every waiter.
            let _ = handle.join();
        }
    }
}

/// A failure inside this crate, before the file name is attached.
pub(crate) enum Fail {
    Db(redb::Error),
    Decode {
        table: &'static str,
        key: String,
        err: DecodeError,
    },
    Encode(postcard::Error),
    Corrupt(String),
    Schema(u64),
    OutOfOrder {
        last_seq: u64,
        got: u64,
    },
    Store(StoreError),
}

macro_rules! fail_from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Fail {
            fn from(e: $t) -> Self {
                Fail::Db(e.into())
            }
        }
    )*};
}
fail_from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl From<postcard::Error> for Fail {
    fn from(e: postcard::Error) -> Self {
        Fail::Encode(e)
    }
}

pub(crate) fn to_store_error(path: &Path, fail: Fail) -> StoreError {
    let path = path.to_owned();
    match fail {
        Fail::Store(e) => e,
        Fail::Db(e) => match e {
            redb::Error::DatabaseAlreadyOpen => StoreError::Locked { path },
            redb::Error::Corrupted(detail) => StoreError::Corrupt { path, detail },
            // redb reports a short file or a bad header as these I/O error kinds.
            redb::Error::Io(source) if source.kind() == io::ErrorKind::UnexpectedEof => {
                StoreError::Corrupt {
                    path,
                    detail: format!("file is truncated ({source})"),
                }
            }
            redb::Error::Io(source) if source.kind() == io::ErrorKind::InvalidData => {
                StoreError::Corrupt {
                    path,
                    detail: source.to_string(),
                }
            }
            redb::Error::Io(source) => StoreError::Io { path, source },
            e @ (redb::Error::TableTypeMismatch { .. }
            | redb::Error::TableIsMultimap(_)
            | redb::Error::TableIsNotMultimap(_)
            | redb::Error::TypeDefinitionChanged { .. }
            | redb::Error::UpgradeRequired(_)) => StoreError::Corrupt {
                path,
                detail: e.to_string(),
            },
            e => StoreError::Storage {
                path,
                detail: e.to_string(),
            },
        },
        Fail::Decode { table, key, err } => match err {
            DecodeError::UnknownVersion(version) => StoreError::UnknownRecordVersion {
                path,
                table,
                key,
                version,
                supported: RECORD_VERSION,
            },
            DecodeError::Empty => StoreError::Corrupt {
                path,
                detail: format!("{table} record {key:?} is empty"),
            },
            DecodeError::Malformed(m) => StoreError::Corrupt {
                path,
                detail: format!("{table} record {key:?} cannot be decoded: {m}"),
            },
        },
        Fail::Encode(e) => StoreError::Storage {
            path,
            detail: format!("cannot encode record: {e}"),
        },
        Fail::Corrupt(detail) => StoreError::Corrupt { path, detail },
        Fail::Schema(found) => StoreError::UnsupportedSchema {
            path,
            found,
            supported: SCHEMA_VERSION,
        },
        Fail::OutOfOrder { last_seq, got } => StoreError::ChangeOutOfOrder {
            path,
            last_seq,
            got,
        },
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn decode_at<T: DeserializeOwned>(table: &'static str, key: &str, bytes: &[u8]) -> Result<T, Fail> {
    records::decode(bytes).map_err(|err| Fail::Decode {
        table,
        key: key.to_owned(),
        err,
    })
}

/// Reads and decodes one record; `name` is the table's name, for errors.
fn get_record<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &'static str,
    key: &str,
) -> Result<Option<T>, Fail> {
    match table.get(key)? {
        None => Ok(None),
        Some(value) => decode_at(name, key, value.value()).map(Some),
    }
}

/// Reads and decodes every record of a table, in key order.
fn all_records<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &'static str,
) -> Result<Vec<T>, Fail> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        out.push(decode_at(name, key.value(), value.value())?);
    }
    Ok(out)
}

/// [`get_record`] for the tables keyed by a numeric id.
pub(crate) fn get_by_id<T: DeserializeOwned>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    name: &'static str,
    id: u64,
) -> Result<Option<T>, Fail> {
    match table.get(id)? {
        None => Ok(None),
        Some(value) => decode_at(name, &id.to_string(), value.value()).map(Some),
    }
}

/// [`all_records`] for the tables keyed by a numeric id.
pub(crate) fn all_by_id<T: DeserializeOwned>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    name: &'static str,
) -> Result<Vec<T>, Fail> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        out.push(decode_at(name, &key.value().to_string(), value.value())?);
    }
    Ok(out)
}

fn last_seq_in(meta: &impl ReadableTable<&'static str, u64>) -> Result<u64, Fail> {
    match meta.get(META_LAST_SEQ)? {
        Some(v) => Ok(v.value()),
        None => Err(Fail::Corrupt("meta table has no last_seq".into())),
    }
}

fn pruned_through_in(meta: &impl ReadableTable<&'static str, u64>) -> Result<u64, Fail> {
    Ok(meta.get(META_PRUNED_THROUGH)?.map_or(0, |v| v.value()))
}

/// Every table of the store, open in one write transaction.
pub(crate) struct Tables<'t> {
    meta: Table<'t, &'static str, u64>,
    users: Table<'t, &'static str, &'static [u8]>,
    shares: Table<'t, &'static str, &'static [u8]>,
    settings: Table<'t, &'static str, &'static [u8]>,
    changes: Table<'t, u64, &'static [u8]>,
    pub opens: Table<'t, u64, &'static [u8]>,
    sessions: Table<'t, u64, &'static [u8]>,
    connections: Table<'t, u64, &'static [u8]>,
}

impl<'t> Tables<'t> {
    pub fn open(tx: &'t WriteTransaction) -> Result<Self, Fail> {
        Ok(Tables {
            meta: tx.open_table(META)?,
            users: tx.open_table(USERS)?,
            shares: tx.open_table(SHARES)?,
            settings: tx.open_table(SETTINGS)?,
            changes: tx.open_table(CHANGES)?,
            opens: tx.open_table(DURABLE_OPENS)?,
            sessions: tx.open_table(SESSIONS)?,
            connections: tx.open_table(CONNECTIONS)?,
        })
    }
}

/// Creates the tables of a new file, or checks the schema of an existing one (upgrading a
/// version 1 file: it only lacks the tables of version 2).
fn init_or_check(tx: &WriteTransaction) -> Result<(), Fail> {
    let tables: Vec<String> = tx.list_tables()?.map(|t| t.name().to_owned()).collect();
    if tables.is_empty() {
        let mut meta = tx.open_table(META)?;
        meta.insert(META_SCHEMA, u64::from(SCHEMA_VERSION))?;
        meta.insert(META_LAST_SEQ, 0)?;
    } else if !tables.iter().any(|t| t == META.name()) {
        return Err(Fail::Corrupt(
            "it has tables but no meta table (not a duet state database?)".into(),
        ));
    } else {
        let mut meta = tx.open_table(META)?;
        let schema = meta.get(META_SCHEMA)?.map(|v| v.value());
        match schema {
            None => return Err(Fail::Corrupt("meta table has no schema version".into())),
            Some(v) if v == u64::from(SCHEMA_VERSION) => {}
            Some(1) => {
                meta.insert(META_SCHEMA, u64::from(SCHEMA_VERSION))?;
            }
            Some(found) => return Err(Fail::Schema(found)),
        }
        last_seq_in(&meta)?;
    }
    // Creates the tables a new or upgraded file lacks; checks the types of the others.
    Tables::open(tx)?;
    Ok(())
}

/// Applies a (validated) change to the tables. The single place where state tables are written.
fn apply(t: &mut Tables, change: &ChangeV1) -> Result<(), Fail> {
    match change {
        ChangeV1::UserPut(user) => {
            let bytes = records::encode(user)?;
            t.users
                .insert(fold(&user.name).as_str(), bytes.as_slice())?;
        }
        ChangeV1::UserRemoved { name } => {
            t.users.remove(fold(name).as_str())?;
        }
        ChangeV1::SharePut(share) => {
            let bytes = records::encode(share)?;
            t.shares
                .insert(fold(&share.name).as_str(), bytes.as_slice())?;
        }
        ChangeV1::ShareRemoved { name } => {
            t.shares.remove(fold(name).as_str())?;
        }
        ChangeV1::SettingPut { key, value } => {
            let bytes = records::encode(&SettingV1 {
                value: value.clone(),
            })?;
            t.settings.insert(key.as_str(), bytes.as_slice())?;
        }
        ChangeV1::DurableOpenPut(open) => {
            let bytes = records::encode(&**open)?;
            t.opens.insert(open.persistent_id, bytes.as_slice())?;
        }
        ChangeV1::DurableOpenRemoved { persistent_id } => {
            t.opens.remove(persistent_id)?;
        }
        ChangeV1::SessionPut(session) => {
            let bytes = records::encode(session)?;
            t.sessions.insert(session.session_id, bytes.as_slice())?;
        }
        ChangeV1::SessionRemoved { session_id } => {
            t.sessions.remove(session_id)?;
        }
        ChangeV1::ConnectionPut(conn) => {
            let bytes = records::encode(conn)?;
            t.connections.insert(conn.id, bytes.as_slice())?;
        }
        ChangeV1::ConnectionRemoved { id } => {
            t.connections.remove(id)?;
        }
    }
    Ok(())
}

/// Applies `change` and appends it to the feed as `seq`, which must follow the last one.
fn commit_change_at(t: &mut Tables, seq: u64, change: &ChangeV1) -> Result<(), Fail> {
    let last_seq = last_seq_in(&t.meta)?;
    if Some(seq) != last_seq.checked_add(1) {
        return Err(Fail::OutOfOrder { last_seq, got: seq });
    }
    let bytes = records::encode(change)?;
    apply(t, change)?;
    t.changes.insert(seq, bytes.as_slice())?;
    t.meta.insert(META_LAST_SEQ, seq)?;
    Ok(())
}

/// Applies a local change under the next sequence number.
pub(crate) fn commit_change(t: &mut Tables, change: &ChangeV1) -> Result<u64, Fail> {
    let last_seq = last_seq_in(&t.meta)?;
    let seq = last_seq
        .checked_add(1)
        .ok_or_else(|| Fail::Corrupt("change sequence number overflow".into()))?;
    commit_change_at(t, seq, change)?;
    Ok(seq)
}

/// The record a change puts or removes, to check removals of local changes.
#[derive(PartialEq)]
enum RecordKey {
    User(String),
    Share(String),
    Setting(String),
    Open(u64),
    Session(u64),
    Connection(u64),
}

impl RecordKey {
    /// The key and whether the change puts (true) or removes (false) it.
    fn of(change: &ChangeV1) -> (RecordKey, bool) {
        match change {
            ChangeV1::UserPut(u) => (RecordKey::User(fold(&u.name)), true),
            ChangeV1::UserRemoved { name } => (RecordKey::User(fold(name)), false),
            ChangeV1::SharePut(s) => (RecordKey::Share(fold(&s.name)), true),
            ChangeV1::ShareRemoved { name } => (RecordKey::Share(fold(name)), false),
            ChangeV1::SettingPut { key, .. } => (RecordKey::Setting(key.clone()), true),
            ChangeV1::DurableOpenPut(o) => (RecordKey::Open(o.persistent_id), true),
            ChangeV1::DurableOpenRemoved { persistent_id } => {
                (RecordKey::Open(*persistent_id), false)
            }
            ChangeV1::SessionPut(s) => (RecordKey::Session(s.session_id), true),
            ChangeV1::SessionRemoved { session_id } => (RecordKey::Session(*session_id), false),
            ChangeV1::ConnectionPut(c) => (RecordKey::Connection(c.id), true),
            ChangeV1::ConnectionRemoved { id } => (RecordKey::Connection(*id), false),
        }
    }

    fn exists(&self, t: &Tables) -> Result<bool, Fail> {
        Ok(match self {
            RecordKey::User(k) => t.users.get(k.as_str())?.is_some(),
            RecordKey::Share(k) => t.shares.get(k.as_str())?.is_some(),
            RecordKey::Setting(k) => t.settings.get(k.as_str())?.is_some(),
            RecordKey::Open(id) => t.opens.get(id)?.is_some(),
            RecordKey::Session(id) => t.sessions.get(id)?.is_some(),
            RecordKey::Connection(id) => t.connections.get(id)?.is_some(),
        })
    }

    fn not_found(&self) -> Fail {
        match self {
            RecordKey::User(k) => not_found("user", k),
            RecordKey::Share(k) => not_found("share", k),
            RecordKey::Setting(k) => not_found("setting", k),
            RecordKey::Open(id) => not_found("durable open", &id.to_string()),
            RecordKey::Session(id) => not_found("session", &id.to_string()),
            RecordKey::Connection(id) => not_found("client connection", &id.to_string()),
        }
    }
}

/// Checks, without writing anything, that every removal in `changes` removes a record that
/// exists when its turn comes (taking the earlier changes of the list into account).
pub(crate) fn check_removals(t: &Tables, changes: &[ChangeV1]) -> Result<(), Fail> {
    let mut overlay: Vec<(RecordKey, bool)> = Vec::new();
    for change in changes {
        let (key, put) = RecordKey::of(change);
        if !put {
            let exists = match overlay.iter().rev().find(|(k, _)| *k == key) {
                Some(&(_, present)) => present,
                None => key.exists(t)?,
            };
            if !exists {
                return Err(key.not_found());
            }
        }
        overlay.push((key, put));
    }
    Ok(())
}

/// Checks a change (local or from a partner node) as strictly as a local operation, and
/// converts it to its record.
pub(crate) fn validated_change(kind: &ChangeKind) -> Result<ChangeV1, StoreError> {
    Ok(match kind {
        ChangeKind::UserPut {
            name,
            nt_hash,
            created,
        } => {
            validate::user_name(name)?;
            ChangeV1::UserPut(UserV1 {
                name: name.clone(),
                nt_hash: nt_hash.0,
                created: *created,
            })
        }
        ChangeKind::UserRemoved { name } => {
            validate::user_name(name)?;
            ChangeV1::UserRemoved { name: name.clone() }
        }
        ChangeKind::SharePut { share } => ChangeV1::SharePut(validated_share(share)?),
        ChangeKind::ShareRemoved { name } => {
            validate::share_name(name)?;
            ChangeV1::ShareRemoved { name: name.clone() }
        }
        ChangeKind::SettingPut { key, value } => {
            validate::setting_key(key)?;
            validate::setting_value(value)?;
            ChangeV1::SettingPut {
                key: key.clone(),
                value: value.clone(),
            }
        }
        ChangeKind::DurableOpenPut { open } => {
            validate::durable_open(open)?;
            ChangeV1::DurableOpenPut(Box::new(DurableOpenV1::from(&**open)))
        }
        ChangeKind::DurableOpenRemoved { persistent_id } => ChangeV1::DurableOpenRemoved {
            persistent_id: *persistent_id,
        },
        ChangeKind::SessionPut { session } => {
            validate::session(session)?;
            ChangeV1::SessionPut(SessionV1::from(session))
        }
        ChangeKind::SessionRemoved { session_id } => ChangeV1::SessionRemoved {
            session_id: *session_id,
        },
        ChangeKind::ClientConnectionPut { connection } => {
            validate::connection(connection)?;
            ChangeV1::ConnectionPut(ConnectionV1::from(connection))
        }
        ChangeKind::ClientConnectionRemoved { id } => ChangeV1::ConnectionRemoved { id: *id },
    })
}

fn validated_share(share: &ShareConfig) -> Result<ShareV1, StoreError> {
    validate::share_name(&share.name)?;
    let path = validate::share_path(&share.path)?;
    validate::comment(&share.comment)?;
    Ok(ShareV1 {
        name: share.name.clone(),
        path: path.to_owned(),
        comment: share.comment.clone(),
        read_only: share.read_only,
    })
}

/// Every record of a snapshot as the put changes that recreate it, validated.
fn snapshot_changes(snapshot: &Snapshot) -> Result<Vec<ChangeV1>, StoreError> {
    let mut out = Vec::new();
    for u in &snapshot.users {
        out.push(validated_change(&ChangeKind::UserPut {
            name: u.name.clone(),
            nt_hash: u.nt_hash,
            created: u.created,
        })?);
    }
    for s in &snapshot.shares {
        out.push(ChangeV1::SharePut(validated_share(s)?));
    }
    for (key, value) in &snapshot.settings {
        out.push(validated_change(&ChangeKind::SettingPut {
            key: key.clone(),
            value: value.clone(),
        })?);
    }
    for o in &snapshot.durable_opens {
        validate::durable_open(o)?;
        out.push(ChangeV1::DurableOpenPut(Box::new(o.into())));
    }
    for s in &snapshot.sessions {
        validate::session(s)?;
        out.push(ChangeV1::SessionPut(s.into()));
    }
    for c in &snapshot.connections {
        validate::connection(c)?;
        out.push(ChangeV1::ConnectionPut(c.into()));
    }
    Ok(out)
}

/// Removes every row of a table.
fn clear<K: redb::Key + 'static>(table: &mut Table<K, &'static [u8]>) -> Result<(), Fail> {
    table.retain(|_, _| false)?;
    Ok(())
}

impl Store {
    /// Opens (creating if missing) the state directory `dir` (mode 0700 when created) and the
    /// database `dir/state.redb` in it (mode 0600 when created), checking its integrity and
    /// schema version, and starts the store's commit thread.
    ///
    /// Fails with [`StoreError::Locked`] while another process has it open, and with
    /// [`StoreError::Corrupt`] / [`StoreError::UnsupportedSchema`] for a file it cannot use;
    /// such a file is never modified.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StoreError::Io {
                path: dir.to_owned(),
                source,
            })?;
        let path = dir.join(STATE_FILE);
        // The file holds password-equivalent hashes: create it owner-only (redb would use
        // 0666 & !umask). An existing file is opened as it is.
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            // Verify every page on open: a damaged file becomes an error, not a panic.
            .set_check_integrity_on_open(true)
            .create(&path)
            .map_err(|e| to_store_error(&path, e.into()))?;
        let run = || -> Result<(), Fail> {
            let tx = db.begin_write()?;
            match init_or_check(&tx) {
                Ok(()) => Ok(tx.commit()?),
                Err(e) => {
                    let _ = tx.abort();
                    Err(e)
                }
            }
        };
        run().map_err(|e| to_store_error(&path, e))?;
        let shared = Arc::new(Shared {
            db,
            path: Arc::from(path),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            transactions: AtomicU64::new(0),
            operations: AtomicU64::new(0),
            listener: RwLock::new(None),
            fence: RwLock::new(None),
            acks: Mutex::new(AckState::default()),
            acked: Condvar::new(),
        });
        let writer = writer::spawn(Arc::clone(&shared)).map_err(|source| StoreError::Io {
            path: shared.path.to_path_buf(),
            source,
        })?;
        Ok(Store {
            shared,
            writer: Some(writer),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Runs `f` in a write transaction of its own, in the caller's thread.
    fn write<R>(&self, f: impl FnOnce(&mut Tables) -> Result<R, Fail>) -> Result<R, StoreError> {
        let run = || -> Result<R, Fail> {
            let tx = self.shared.db.begin_write()?;
            let result = Tables::open(&tx).and_then(|mut t| f(&mut t));
            match result {
                Ok(r) => {
                    tx.commit()?;
                    self.shared.committed();
                    Ok(r)
                }
                Err(e) => {
                    // The error that made us abort is the one worth reporting.
                    let _ = tx.abort();
                    Err(e)
                }
            }
        };
        run().map_err(|e| to_store_error(&self.shared.path, e))
    }

    /// [`Store::write`] for a local change (not a partner's): refused while fenced.
    /// In a pair it returns once the partner holds the change too.
    fn local_write<R>(
        &self,
        f: impl FnOnce(&mut Tables) -> Result<R, Fail>,
    ) -> Result<R, StoreError> {
        self.shared.check_fence()?;
        let (r, seq) = self.write(|t| {
            let r = f(t)?;
            Ok((r, last_seq_in(&t.meta)?))
        })?;
        self.shared.wait_partner_ack(seq)?;
        Ok(r)
    }

    pub(crate) fn read<R>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<R, Fail>,
    ) -> Result<R, StoreError> {
        let run = || -> Result<R, Fail> { f(&self.shared.db.begin_read()?) };
        run().map_err(|e| to_store_error(&self.shared.path, e))
    }

    // ---- users ----

    /// Adds a user, storing only the NT hash of `password`. Names are unique ignoring case.
    pub fn add_user(&self, name: &str, password: &str) -> Result<(), StoreError> {
        validate::user_name(name)?;
        validate::password(password)?;
        let user = UserV1 {
            name: name.to_owned(),
            nt_hash: nt_hash(password),
            created: now_secs(),
        };
        self.local_write(|t| {
            let existing: Option<UserV1> = get_record(&t.users, "users", &fold(name))?;
            if let Some(existing) = existing {
                return Err(StoreError::AlreadyExists {
                    what: "user",
                    name: existing.name,
                }
                .into());
            }
            commit_change(t, &ChangeV1::UserPut(user))?;
            Ok(())
        })
    }

    /// Replaces a user's password (its NT hash).
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), StoreError> {
        validate::password(password)?;
        let hash = nt_hash(password);
        self.local_write(|t| {
            let existing: Option<UserV1> = get_record(&t.users, "users", &fold(name))?;
            let Some(mut user) = existing else {
                return Err(not_found("user", name));
            };
            user.nt_hash = hash;
            commit_change(t, &ChangeV1::UserPut(user))?;
            Ok(())
        })
    }

    /// Removes a user. Works even if the user's record is unreadable.
    pub fn remove_user(&self, name: &str) -> Result<(), StoreError> {
        self.local_write(|t| {
            let exists = t.users.get(fold(name).as_str())?.is_some();
            if !exists {
                return Err(not_found("user", name));
            }
            commit_change(
                t,
                &ChangeV1::UserRemoved {
                    name: name.to_owned(),
                },
            )?;
            Ok(())
        })
    }

    /// The NT hash of a user, looked up ignoring case; `None` if there is no such user.
    pub fn user_nt_hash(&self, name: &str) -> Result<Option<[u8; 16]>, StoreError> {
        self.read(|tx| {
            let user: Option<UserV1> = get_record(&tx.open_table(USERS)?, "users", &fold(name))?;
            Ok(user.map(|u| u.nt_hash))
        })
    }

    /// All users, ordered by folded name.
    pub fn list_users(&self) -> Result<Vec<UserInfo>, StoreError> {
        self.read(|tx| {
            let users: Vec<UserV1> = all_records(&tx.open_table(USERS)?, "users")?;
            Ok(users
                .into_iter()
                .map(|u| UserInfo {
                    name: u.name,
                    created: u.created,
                })
                .collect())
        })
    }

    // ---- shares ----

    /// Adds a share. Names are unique ignoring case; the path must be absolute (it need not
    /// exist yet).
    pub fn add_share(&self, share: &ShareConfig) -> Result<(), StoreError> {
        let record = validated_share(share)?;
        self.local_write(|t| {
            let existing: Option<ShareV1> = get_record(&t.shares, "shares", &fold(&share.name))?;
            if let Some(existing) = existing {
                return Err(StoreError::AlreadyExists {
                    what: "share",
                    name: existing.name,
                }
                .into());
            }
            commit_change(t, &ChangeV1::SharePut(record))?;
            Ok(())
        })
    }

    /// Removes a share. Works even if the share's record is unreadable.
    pub fn remove_share(&self, name: &str) -> Result<(), StoreError> {
        self.local_write(|t| {
            let exists = t.shares.get(fold(name).as_str())?.is_some();
            if !exists {
                return Err(not_found("share", name));
            }
            commit_change(
                t,
                &ChangeV1::ShareRemoved {
                    name: name.to_owned(),
                },
            )?;
            Ok(())
        })
    }

    /// A share, looked up ignoring case.
    pub fn share(&self, name: &str) -> Result<Option<ShareConfig>, StoreError> {
        self.read(|tx| {
            let share: Option<ShareV1> =
                get_record(&tx.open_table(SHARES)?, "shares", &fold(name))?;
            Ok(share.map(Into::into))
        })
    }

    /// All shares, ordered by folded name.
    pub fn list_shares(&self) -> Result<Vec<ShareConfig>, StoreError> {
        self.read(|tx| {
            let shares: Vec<ShareV1> = all_records(&tx.open_table(SHARES)?, "shares")?;
            Ok(shares.into_iter().map(Into::into).collect())
        })
    }

    // ---- settings ----

    /// A setting's value; keys are case-sensitive.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|tx| {
            let setting: Option<SettingV1> =
                get_record(&tx.open_table(SETTINGS)?, "settings", key)?;
            Ok(setting.map(|s| s.value))
        })
    }

    /// Sets a setting. Keys: 1..=128 of ASCII letters, digits, `.`, `_`, `-`; values: up to
    /// 4096 bytes without control characters.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        validate::setting_key(key)?;
        validate::setting_value(value)?;
        self.local_write(|t| {
            commit_change(
                t,
                &ChangeV1::SettingPut {
                    key: key.to_owned(),
                    value: value.to_owned(),
                },
            )?;
            Ok(())
        })
    }

    // ---- change feed ----

    /// Sequence number of the last committed change; 0 for a store without changes.
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        self.read(|tx| last_seq_in(&tx.open_table(META)?))
    }

    /// Up to `max` changes with a sequence number greater than `seq`, oldest first.
    /// `changes_since(0, ..)` starts at the first change.
    ///
    /// Fails with [`StoreError::ChangesPruned`] if changes after `seq` have been removed by
    /// [`Store::prune_changes_before`]: the reader must start again from a [`Store::snapshot`].
    pub fn changes_since(&self, seq: u64, max: usize) -> Result<Vec<Change>, StoreError> {
        self.encoded_changes_since(seq, max)?
            .into_iter()
            .map(|(seq, bytes)| {
                let change: ChangeV1 = decode_at("changes", &seq.to_string(), &bytes)
                    .map_err(|f| to_store_error(&self.shared.path, f))?;
                Ok(Change {
                    seq,
                    kind: change.into(),
                })
            })
            .collect()
    }

    /// Applies a change read from another store's feed, keeping its sequence number. The
    /// change must be the next one (`last_seq() + 1`); it is validated as strictly as a local
    /// operation. A mirror should take changes only this way, never local operations, or the
    /// sequences diverge.
    pub fn apply_change(&self, change: &Change) -> Result<(), StoreError> {
        self.apply_changes(std::slice::from_ref(change))
    }

    /// [`Store::apply_change`] for consecutive changes, in one transaction (one disk sync):
    /// either all are applied or none.
    pub fn apply_changes(&self, changes: &[Change]) -> Result<(), StoreError> {
        let records = changes
            .iter()
            .map(|c| validated_change(&c.kind).map(|r| (c.seq, r)))
            .collect::<Result<Vec<_>, _>>()?;
        if records.is_empty() {
            return Ok(());
        }
        self.write(|t| {
            for (seq, record) in &records {
                commit_change_at(t, *seq, record)?;
            }
            Ok(())
        })
    }

    /// Removes every change with a sequence number below `seq` from the feed (`seq` is capped
    /// at `last_seq() + 1`, so at most the whole feed goes). Returns how many were removed. Tables and [`Store::last_seq`] are unaffected; a reader that still
    /// needs a removed change gets [`StoreError::ChangesPruned`] and starts from a snapshot.
    pub fn prune_changes_before(&self, seq: u64) -> Result<u64, StoreError> {
        self.write(|t| {
            let last_seq = last_seq_in(&t.meta)?;
            let end = seq.min(last_seq.saturating_add(1));
            let pruned_through = pruned_through_in(&t.meta)?;
            if end <= pruned_through.saturating_add(1) {
                return Ok(0);
            }
            let mut removed = 0u64;
            for entry in t.changes.extract_from_if(..end, |_, _| true)? {
                entry?;
                removed += 1;
            }
            t.meta.insert(META_PRUNED_THROUGH, end - 1)?;
            Ok(removed)
        })
    }

    // ---- mirroring: the wire form of a change is its record in the feed ----

    /// Up to `max` feed entries after `seq`, oldest first, as `(seq, bytes)` in the store's
    /// versioned record form, for shipping to a partner that applies them with
    /// [`Store::apply_encoded_changes`]. Errors as [`Store::changes_since`].
    pub fn encoded_changes_since(
        &self,
        seq: u64,
        max: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let Some(first) = seq.checked_add(1) else {
            return Ok(Vec::new());
        };
        self.read(|tx| {
            let pruned_through = pruned_through_in(&tx.open_table(META)?)?;
            if seq < pruned_through {
                return Err(StoreError::ChangesPruned {
                    path: self.shared.path.to_path_buf(),
                    requested: seq,
                    first_available: pruned_through + 1,
                }
                .into());
            }
            let table = tx.open_table(CHANGES)?;
            let mut out = Vec::new();
            for entry in table.range(first..)?.take(max) {
                let (seq, value) = entry?;
                out.push((seq.value(), value.value().to_vec()));
            }
            Ok(out)
        })
    }

    /// Applies a partner's feed entries (from [`Store::encoded_changes_since`]) in one
    /// transaction, keeping their sequence numbers: all or none. Each is decoded and
    /// validated as strictly as a local change; one that does not decode (damaged, or a
    /// record version this build does not know) fails the whole batch, naming it. Works
    /// while local writes are fenced (a passive node's store is written only this way).
    pub fn apply_encoded_changes(&self, changes: &[(u64, &[u8])]) -> Result<(), StoreError> {
        let mut records = Vec::with_capacity(changes.len());
        for (seq, bytes) in changes {
            let v1: ChangeV1 = decode_at("changes", &seq.to_string(), bytes)
                .map_err(|f| to_store_error(&self.shared.path, f))?;
            records.push((*seq, validated_change(&ChangeKind::from(v1))?));
        }
        if records.is_empty() {
            return Ok(());
        }
        self.write(|t| {
            for (seq, record) in &records {
                commit_change_at(t, *seq, record)?;
            }
            Ok(())
        })
    }

    /// [`Store::snapshot`] in wire form: `(seq, bytes)` for [`Store::restore_encoded_snapshot`].
    pub fn encoded_snapshot(&self) -> Result<(u64, Vec<u8>), StoreError> {
        let snapshot = self.snapshot()?;
        let records = snapshot_changes(&snapshot)?;
        let bytes = records::encode(&records).map_err(|e| StoreError::Storage {
            path: self.shared.path.to_path_buf(),
            detail: format!("encoding a snapshot: {e}"),
        })?;
        Ok((snapshot.seq, bytes))
    }

    /// [`Store::restore_snapshot`] from the wire form of [`Store::encoded_snapshot`]: every
    /// record is decoded and validated before anything changes.
    pub fn restore_encoded_snapshot(&self, seq: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let decoded: Vec<ChangeV1> = decode_at("snapshot", &seq.to_string(), bytes)
            .map_err(|f| to_store_error(&self.shared.path, f))?;
        let records = decoded
            .into_iter()
            .map(|v1| validated_change(&ChangeKind::from(v1)))
            .collect::<Result<Vec<_>, _>>()?;
        self.restore_records(seq, &records)
    }

    /// Calls `listener` after every committed write transaction (local or a partner's),
    /// from the committing thread: it must only signal (wake a task), never block or call
    /// back into the store. `None` removes it.
    pub fn set_commit_listener(&self, listener: Option<CommitListener>) {
        *self
            .shared
            .listener
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = listener;
    }

    /// In a pair: from now on [`Ticket::wait`](crate::Ticket::wait), [`Store::submit`] and
    /// the admin writes return only once the partner has acknowledged the change
    /// ([`Store::partner_acked`]), so a client is told "done" only for what both nodes hold.
    /// Everything up to `acked` counts as acknowledged; an earlier
    /// [`Store::abandon_unacked`] is cleared. `required = false` lets every wait through.
    pub fn require_partner_acks(&self, required: bool, acked: u64) {
        let mut st = crate::writer::lock(&self.shared.acks);
        st.required = required;
        st.acked = acked;
        st.abandoned = None;
        drop(st);
        self.shared.acked.notify_all();
    }

    /// The partner holds every change up to `seq`: their waiters go on.
    pub fn partner_acked(&self, seq: u64) {
        let mut st = crate::writer::lock(&self.shared.acks);
        if seq > st.acked {
            st.acked = seq;
            drop(st);
            self.shared.acked.notify_all();
        }
    }

    /// This node stopped serving: changes not yet acknowledged never will be here. Their
    /// waiters (and later ones) fail with [`StoreError::Fenced`] and `reason`.
    pub fn abandon_unacked(&self, reason: String) {
        let mut st = crate::writer::lock(&self.shared.acks);
        st.abandoned = Some(reason);
        drop(st);
        self.shared.acked.notify_all();
    }

    /// The last change the partner acknowledged, and whether acknowledgements are required.
    pub fn partner_ack_state(&self) -> (bool, u64) {
        let st = crate::writer::lock(&self.shared.acks);
        (st.required, st.acked)
    }

    /// Refuses every local change (SMB state, admin commands) with [`StoreError::Fenced`]
    /// and `reason` from now on, or accepts them again (`None`). A partner's changes
    /// ([`Store::apply_encoded_changes`], snapshots) are still applied: this is how a node
    /// that does not serve keeps its store a pure mirror.
    pub fn fence_local_writes(&self, reason: Option<String>) {
        *self
            .shared
            .fence
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = reason;
    }

    /// Every record of the store and the sequence number of the last change they reflect,
    /// read in one consistent view. A partner restores it with [`Store::restore_snapshot`]
    /// and continues with `changes_since(snapshot.seq, ..)`.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.read(|tx| {
            let seq = last_seq_in(&tx.open_table(META)?)?;
            let users: Vec<UserV1> = all_records(&tx.open_table(USERS)?, "users")?;
            let shares: Vec<ShareV1> = all_records(&tx.open_table(SHARES)?, "shares")?;
            let mut settings = Vec::new();
            for entry in tx.open_table(SETTINGS)?.iter()? {
                let (key, value) = entry?;
                let s: SettingV1 = decode_at("settings", key.value(), value.value())?;
                settings.push((key.value().to_owned(), s.value));
            }
            let opens: Vec<DurableOpenV1> =
                all_by_id(&tx.open_table(DURABLE_OPENS)?, "durable_opens")?;
            let sessions: Vec<SessionV1> = all_by_id(&tx.open_table(SESSIONS)?, "sessions")?;
            let connections: Vec<ConnectionV1> =
                all_by_id(&tx.open_table(CONNECTIONS)?, "connections")?;
            Ok(Snapshot {
                seq,
                users: users
                    .into_iter()
                    .map(|u| UserRecord {
                        name: u.name,
                        nt_hash: NtHash(u.nt_hash),
                        created: u.created,
                    })
                    .collect(),
                shares: shares.into_iter().map(Into::into).collect(),
                settings,
                durable_opens: opens.into_iter().map(Into::into).collect(),
                sessions: sessions.into_iter().map(Into::into).collect(),
                connections: connections.into_iter().map(Into::into).collect(),
            })
        })
    }

    /// Replaces the whole state of this store (every table and the change feed) with
    /// `snapshot`, in one transaction: afterwards `last_seq()` is `snapshot.seq` and the feed
    /// is empty, ready for the partner's changes from `snapshot.seq + 1` on. For a mirror
    /// (re)starting from its partner; every record is validated first, and nothing changes
    /// if one is refused.
    pub fn restore_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let records = snapshot_changes(snapshot)?;
        self.restore_records(snapshot.seq, &records)
    }

    fn restore_records(&self, seq: u64, records: &[ChangeV1]) -> Result<(), StoreError> {
        self.write(|t| {
            t.users.retain(|_, _| false)?;
            t.shares.retain(|_, _| false)?;
            t.settings.retain(|_, _| false)?;
            clear(&mut t.changes)?;
            clear(&mut t.opens)?;
            clear(&mut t.sessions)?;
            clear(&mut t.connections)?;
            for record in records {
                apply(t, record)?;
            }
            t.meta.insert(META_LAST_SEQ, seq)?;
            t.meta.insert(META_PRUNED_THROUGH, seq)?;
            Ok(())
        })
    }

    // ---- reads of the durable-handle tables (writes are in `handles`) ----

    pub(crate) fn read_opens(&self) -> Result<Vec<DurableOpen>, StoreError> {
        self.read(|tx| {
            let opens: Vec<DurableOpenV1> =
                all_by_id(&tx.open_table(DURABLE_OPENS)?, "durable_opens")?;
            Ok(opens.into_iter().map(Into::into).collect())
        })
    }

    pub(crate) fn read_open(&self, id: u64) -> Result<Option<DurableOpen>, StoreError> {
        self.read(|tx| {
            let open: Option<DurableOpenV1> =
                get_by_id(&tx.open_table(DURABLE_OPENS)?, "durable_opens", id)?;
            Ok(open.map(Into::into))
        })
    }

    pub(crate) fn read_sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        self.read(|tx| {
            let v: Vec<SessionV1> = all_by_id(&tx.open_table(SESSIONS)?, "sessions")?;
            Ok(v.into_iter().map(Into::into).collect())
        })
    }

    pub(crate) fn read_session(&self, id: u64) -> Result<Option<SessionRecord>, StoreError> {
        self.read(|tx| {
            let v: Option<SessionV1> = get_by_id(&tx.open_table(SESSIONS)?, "sessions", id)?;
            Ok(v.map(Into::into))
        })
    }

    pub(crate) fn read_connections(&self) -> Result<Vec<ClientConnection>, StoreError> {
        self.read(|tx| {
            let v: Vec<ConnectionV1> = all_by_id(&tx.open_table(CONNECTIONS)?, "connections")?;
            Ok(v.into_iter().map(Into::into).collect())
        })
    }

    pub(crate) fn read_connection(&self, id: u64) -> Result<Option<ClientConnection>, StoreError> {
        self.read(|tx| {
            let v: Option<ConnectionV1> =
                get_by_id(&tx.open_table(CONNECTIONS)?, "connections", id)?;
            Ok(v.map(Into::into))
        })
    }
}

fn not_found(what: &'static str, name: &str) -> Fail {
    Fail::Store(StoreError::NotFound {
        what,
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes raw values into a closed store's file, bypassing validation and encoding.
    fn poke(dir: &Path, f: impl FnOnce(&WriteTransaction)) {
        let db = Database::create(dir.join(STATE_FILE)).unwrap();
        let tx = db.begin_write().unwrap();
        f(&tx);
        tx.commit().unwrap();
    }

    fn names_file(err: &StoreError, dir: &Path) -> bool {
        err.to_string()
            .contains(&dir.join(STATE_FILE).display().to_string())
    }

    #[test]
    fn unknown_record_version_is_a_clear_error_and_record_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        Store::open(tmp.path())
            .unwrap()
            .add_user("bob", "pw")
            .unwrap();
        poke(tmp.path(), |tx| {
            tx.open_table(USERS)
                .unwrap()
                .insert("ALICE", [7u8, 1, 2, 3].as_slice())
                .unwrap();
        });
        let store = Store::open(tmp.path()).unwrap();
        let err = store.user_nt_hash("alice").unwrap_err();
        match &err {
            StoreError::UnknownRecordVersion {
                table: "users",
                key,
                version: 7,
                supported: 1,
                ..
            } => assert_eq!(key, "ALICE"),
            other => panic!("expected UnknownRecordVersion, got {other:?}"),
        }
        assert!(names_file(&err, tmp.path()), "{err}");
        // Listing does not silently skip it either.
        assert!(matches!(
            store.list_users(),
            Err(StoreError::UnknownRecordVersion { .. })
        ));
        // Adding the same name does not overwrite it.
        assert!(matches!(
            store.add_user("Alice", "pw"),
            Err(StoreError::UnknownRecordVersion { .. })
        ));
        // Other records are still readable.
        assert_eq!(store.user_nt_hash("bob").unwrap(), Some(nt_hash("pw")));
        // An explicit removal is the administrator's way out.
        store.remove_user("alice").unwrap();
        assert_eq!(store.list_users().unwrap().len(), 1);
    }

    #[test]
    fn malformed_records_are_corrupt_errors() {
        let tmp = tempfile::tempdir().unwrap();
        Store::open(tmp.path()).unwrap();
        poke(tmp.path(), |tx| {
            tx.open_table(SETTINGS)
                .unwrap()
                .insert("k", [RECORD_VERSION, 200].as_slice())
                .unwrap();
            tx.open_table(SETTINGS)
                .unwrap()
                .insert("empty", [].as_slice())
                .unwrap();
            tx.open_table(CHANGES)
                .unwrap()
                .insert(1, [9u8].as_slice())
                .unwrap();
            tx.open_table(META)
                .unwrap()
                .insert(META_LAST_SEQ, 1)
                .unwrap();
        });
        let store = Store::open(tmp.path()).unwrap();
        for key in ["k", "empty"] {
            let err = store.setting(key).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
            assert!(names_file(&err, tmp.path()));
            assert!(err.to_string().contains("settings record"), "{err}");
        }
        let err = store.changes_since(0, 10).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::UnknownRecordVersion {
                    table: "changes",
                    version: 9,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn newer_schema_is_refused_without_modification() {
        let tmp = tempfile::tempdir().unwrap();
        Store::open(tmp.path())
            .unwrap()
            .add_user("bob", "pw")
            .unwrap();
        poke(tmp.path(), |tx| {
            tx.open_table(META)
                .unwrap()
                .insert(META_SCHEMA, 99)
                .unwrap();
        });
        let err = Store::open(tmp.path()).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::UnsupportedSchema {
                    found: 99,
                    supported: SCHEMA_VERSION,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(names_file(&err, tmp.path()), "{err}");
        // Still 99: the failed open changed nothing.
        let db = Database::create(tmp.path().join(STATE_FILE)).unwrap();
        let tx = db.begin_read().unwrap();
        let meta = tx.open_table(META).unwrap();
        assert_eq!(meta.get(META_SCHEMA).unwrap().unwrap().value(), 99);
    }

    #[test]
    fn foreign_database_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        poke(tmp.path(), |tx| {
            let def: TableDefinition<u32, u32> = TableDefinition::new("something_else");
            tx.open_table(def).unwrap().insert(1, 2).unwrap();
        });
        let err = Store::open(tmp.path()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("no meta table"), "{err}");

        // A table of ours with the wrong types.
        let tmp = tempfile::tempdir().unwrap();
        poke(tmp.path(), |tx| {
            let def: TableDefinition<u32, u32> = TableDefinition::new("meta");
            tx.open_table(def).unwrap().insert(1, 2).unwrap();
        });
        let err = Store::open(tmp.path()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(names_file(&err, tmp.path()), "{err}");
    }

    fn sample_open(id: u64) -> DurableOpen {
        DurableOpen {
            persistent_id: id,
            volatile_id: 1,
            create_guid: [1; 16],
            client_guid: [2; 16],
            owner_user: "alice".into(),
            owner_sid: "S-1-5-21-1-2-3-1001".into(),
            share: "share".into(),
            path: "f.txt".into(),
            granted_access: 0x1f01ff,
            share_access: 7,
            create_options: 0,
            version: crate::DurableVersion::V2,
            persistent: false,
            caching: crate::Caching::Batch,
            locks: vec![],
            lock_sequences: [0; 64],
            timeout_ms: 60_000,
            disconnected_at_ms: Some(1),
            app_instance_id: None,
            position: 0,
            file: crate::FileIdentity {
                dev: 1,
                inode: 2,
                creation_time: 3,
            },
        }
    }

    #[test]
    fn unreadable_durable_opens_are_errors_naming_the_file_and_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = Store::open(tmp.path()).unwrap();
            store.put_durable_open(&sample_open(1)).unwrap();
        }
        poke(tmp.path(), |tx| {
            let mut t = tx.open_table(DURABLE_OPENS).unwrap();
            t.insert(2, [2u8, 0, 0].as_slice()).unwrap();
            t.insert(3, [RECORD_VERSION, 0xff].as_slice()).unwrap();
        });
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.durable_open(1).unwrap(), Some(sample_open(1)));
        let err = store.durable_open(2).unwrap_err();
        assert!(
            matches!(
                &err,
                StoreError::UnknownRecordVersion {
                    table: "durable_opens",
                    version: 2,
                    key,
                    ..
                } if key == "2"
            ),
            "{err:?}"
        );
        assert!(names_file(&err, tmp.path()), "{err}");
        let err = store.durable_open(3).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(
            err.to_string().contains("durable_opens record \"3\""),
            "{err}"
        );
        // Neither listing, nor the scavenger, nor a snapshot skips them silently.
        assert!(store.list_durable_opens().is_err());
        assert!(store.durable_opens_disconnected().is_err());
        let err = store.expire_durable_opens(u64::MAX).unwrap_err();
        assert!(names_file(&err, tmp.path()), "{err}");
        assert!(store.disconnect_durable_opens(5).is_err());
        assert!(store.snapshot().is_err());
        // Nothing was removed; an explicit removal is the way out.
        assert_eq!(store.durable_open(1).unwrap(), Some(sample_open(1)));
        assert_eq!(store.remove_durable_open(2).unwrap(), Some(2));
        assert_eq!(store.remove_durable_open(3).unwrap(), Some(3));
        assert_eq!(
            store.expire_durable_opens(u64::MAX).unwrap(),
            [sample_open(1)]
        );
    }

    #[test]
    fn schema_1_file_is_upgraded_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = Store::open(tmp.path()).unwrap();
            store.add_user("bob", "pw").unwrap();
        }
        // Make it what a schema 1 build wrote: no durable-handle tables.
        poke(tmp.path(), |tx| {
            for t in [DURABLE_OPENS, SESSIONS, CONNECTIONS] {
                assert!(tx.delete_table(t).unwrap());
            }
            tx.open_table(META).unwrap().insert(META_SCHEMA, 1).unwrap();
        });
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.user_nt_hash("bob").unwrap(), Some(nt_hash("pw")));
        assert_eq!(store.put_durable_open(&sample_open(1)).unwrap(), 2);
        drop(store);
        let db = Database::create(tmp.path().join(STATE_FILE)).unwrap();
        let tx = db.begin_read().unwrap();
        let meta = tx.open_table(META).unwrap();
        assert_eq!(
            meta.get(META_SCHEMA).unwrap().unwrap().value(),
            u64::from(SCHEMA_VERSION)
        );
    }

    #[test]
    fn feed_entry_of_an_unknown_change_variant_is_an_error() {
        // What an older build sees in a feed written by a newer one.
        let tmp = tempfile::tempdir().unwrap();
        Store::open(tmp.path()).unwrap();
        poke(tmp.path(), |tx| {
            tx.open_table(CHANGES)
                .unwrap()
                .insert(1, [RECORD_VERSION, 99].as_slice())
                .unwrap();
            tx.open_table(META)
                .unwrap()
                .insert(META_LAST_SEQ, 1)
                .unwrap();
        });
        let store = Store::open(tmp.path()).unwrap();
        let err = store.changes_since(0, 10).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(names_file(&err, tmp.path()), "{err}");
    }
}
