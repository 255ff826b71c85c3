//! The [`Store`]: the one redb database at `DIR/state.redb`, its tables, and the change feed.
//!
//! Owns every read and write transaction on the file. Every mutation goes through
//! `commit_change`, which applies a change to the tables and appends it to the feed in the same
//! transaction. Must never hand redb types to callers, never write a record it has not
//! validated, and never overwrite or skip a record it cannot decode (that is an error).

use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
    WriteTransaction,
};
use serde::de::DeserializeOwned;

use crate::model::{Change, ChangeKind, ShareConfig, UserInfo};
use crate::records::{self, ChangeV1, DecodeError, SettingV1, ShareV1, UserV1, RECORD_VERSION};
use crate::validate::{self, fold};
use crate::{nt_hash, StoreError};

/// Version of the store as a whole: the set of tables, their key types and key folding.
/// Recorded in the `meta` table when the file is created and checked on every open.
pub const SCHEMA_VERSION: u32 = 1;

/// File name of the database inside the state directory.
pub const STATE_FILE: &str = "state.redb";

/// Upper bound of redb's page cache (its default is 1 GiB); the state is small.
const CACHE_BYTES: usize = 16 << 20;

// Tables. Keys of USERS and SHARES are folded names (validate::fold); values are records
// (records::encode). CHANGES maps sequence numbers to records::ChangeV1.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const SHARES: TableDefinition<&str, &[u8]> = TableDefinition::new("shares");
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");

const META_SCHEMA: &str = "schema_version";
const META_LAST_SEQ: &str = "last_seq";

/// The persistent state of one duetd node. `Send + Sync`: share it with an `Arc`. Writes are
/// serialised by redb; reads run concurrently with them on a snapshot.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// A failure inside this module, before the file name is attached.
enum Fail {
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
    redb::CommitError
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

fn to_store_error(path: &Path, fail: Fail) -> StoreError {
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

fn last_seq_in(meta: &impl ReadableTable<&'static str, u64>) -> Result<u64, Fail> {
    match meta.get(META_LAST_SEQ)? {
        Some(v) => Ok(v.value()),
        None => Err(Fail::Corrupt("meta table has no last_seq".into())),
    }
}

/// Creates the tables of a new file, or checks the schema of an existing one.
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
        let meta = tx.open_table(META)?;
        let schema = meta.get(META_SCHEMA)?.map(|v| v.value());
        match schema {
            None => return Err(Fail::Corrupt("meta table has no schema version".into())),
            Some(v) if v == u64::from(SCHEMA_VERSION) => {}
            Some(found) => return Err(Fail::Schema(found)),
        }
        last_seq_in(&meta)?;
    }
    tx.open_table(USERS)?;
    tx.open_table(SHARES)?;
    tx.open_table(SETTINGS)?;
    tx.open_table(CHANGES)?;
    Ok(())
}

/// Applies a (validated) change to the tables. The single place where state tables are written.
fn apply(tx: &WriteTransaction, change: &ChangeV1) -> Result<(), Fail> {
    match change {
        ChangeV1::UserPut(user) => {
            let bytes = records::encode(user)?;
            tx.open_table(USERS)?
                .insert(fold(&user.name).as_str(), bytes.as_slice())?;
        }
        ChangeV1::UserRemoved { name } => {
            tx.open_table(USERS)?.remove(fold(name).as_str())?;
        }
        ChangeV1::SharePut(share) => {
            let bytes = records::encode(share)?;
            tx.open_table(SHARES)?
                .insert(fold(&share.name).as_str(), bytes.as_slice())?;
        }
        ChangeV1::ShareRemoved { name } => {
            tx.open_table(SHARES)?.remove(fold(name).as_str())?;
        }
        ChangeV1::SettingPut { key, value } => {
            let bytes = records::encode(&SettingV1 {
                value: value.clone(),
            })?;
            tx.open_table(SETTINGS)?
                .insert(key.as_str(), bytes.as_slice())?;
        }
    }
    Ok(())
}

/// Applies `change` and appends it to the feed as `seq`, which must follow the last one.
fn commit_change_at(tx: &WriteTransaction, seq: u64, change: &ChangeV1) -> Result<(), Fail> {
    let last_seq = last_seq_in(&tx.open_table(META)?)?;
    if Some(seq) != last_seq.checked_add(1) {
        return Err(Fail::OutOfOrder { last_seq, got: seq });
    }
    apply(tx, change)?;
    let bytes = records::encode(change)?;
    tx.open_table(CHANGES)?.insert(seq, bytes.as_slice())?;
    tx.open_table(META)?.insert(META_LAST_SEQ, seq)?;
    Ok(())
}

/// Applies a local change under the next sequence number.
fn commit_change(tx: &WriteTransaction, change: &ChangeV1) -> Result<u64, Fail> {
    let last_seq = last_seq_in(&tx.open_table(META)?)?;
    let seq = last_seq
        .checked_add(1)
        .ok_or_else(|| Fail::Corrupt("change sequence number overflow".into()))?;
    commit_change_at(tx, seq, change)?;
    Ok(seq)
}

/// Checks a change from a partner node as strictly as a local operation, and converts it.
fn validated_change(kind: &ChangeKind) -> Result<ChangeV1, StoreError> {
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

impl Store {
    /// Opens (creating if missing) the state directory `dir` (mode 0700 when created) and the
    /// database `dir/state.redb` in it (mode 0600 when created), checking its integrity and
    /// schema version.
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
        let store = Store { db, path };
        store.write(init_or_check)?;
        Ok(store)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write<R>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<R, Fail>,
    ) -> Result<R, StoreError> {
        let run = || -> Result<R, Fail> {
            let tx = self.db.begin_write()?;
            match f(&tx) {
                Ok(r) => {
                    tx.commit()?;
                    Ok(r)
                }
                Err(e) => {
                    // The error that made us abort is the one worth reporting.
                    let _ = tx.abort();
                    Err(e)
                }
            }
        };
        run().map_err(|e| to_store_error(&self.path, e))
    }

    fn read<R>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<R, Fail>,
    ) -> Result<R, StoreError> {
        let run = || -> Result<R, Fail> { f(&self.db.begin_read()?) };
        run().map_err(|e| to_store_error(&self.path, e))
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
        self.write(|tx| {
            let existing: Option<UserV1> =
                get_record(&tx.open_table(USERS)?, "users", &fold(name))?;
            if let Some(existing) = existing {
                return Err(StoreError::AlreadyExists {
                    what: "user",
                    name: existing.name,
                }
                .into());
            }
            commit_change(tx, &ChangeV1::UserPut(user))?;
            Ok(())
        })
    }

    /// Replaces a user's password (its NT hash).
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), StoreError> {
        validate::password(password)?;
        let hash = nt_hash(password);
        self.write(|tx| {
            let existing: Option<UserV1> =
                get_record(&tx.open_table(USERS)?, "users", &fold(name))?;
            let Some(mut user) = existing else {
                return Err(not_found("user", name));
            };
            user.nt_hash = hash;
            commit_change(tx, &ChangeV1::UserPut(user))?;
            Ok(())
        })
    }

    /// Removes a user. Works even if the user's record is unreadable.
    pub fn remove_user(&self, name: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            let exists = tx.open_table(USERS)?.get(fold(name).as_str())?.is_some();
            if !exists {
                return Err(not_found("user", name));
            }
            commit_change(
                tx,
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
        self.write(|tx| {
            let existing: Option<ShareV1> =
                get_record(&tx.open_table(SHARES)?, "shares", &fold(&share.name))?;
            if let Some(existing) = existing {
                return Err(StoreError::AlreadyExists {
                    what: "share",
                    name: existing.name,
                }
                .into());
            }
            commit_change(tx, &ChangeV1::SharePut(record))?;
            Ok(())
        })
    }

    /// Removes a share. Works even if the share's record is unreadable.
    pub fn remove_share(&self, name: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            let exists = tx.open_table(SHARES)?.get(fold(name).as_str())?.is_some();
            if !exists {
                return Err(not_found("share", name));
            }
            commit_change(
                tx,
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
        self.write(|tx| {
            commit_change(
                tx,
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
    pub fn changes_since(&self, seq: u64, max: usize) -> Result<Vec<Change>, StoreError> {
        let Some(first) = seq.checked_add(1) else {
            return Ok(Vec::new());
        };
        if max == 0 {
            return Ok(Vec::new());
        }
        self.read(|tx| {
            let table = tx.open_table(CHANGES)?;
            let mut out = Vec::new();
            for entry in table.range(first..)?.take(max) {
                let (seq, value) = entry?;
                let seq = seq.value();
                let change: ChangeV1 = decode_at("changes", &seq.to_string(), value.value())?;
                out.push(Change {
                    seq,
                    kind: change.into(),
                });
            }
            Ok(out)
        })
    }

    /// Applies a change read from another store's feed, keeping its sequence number. The
    /// change must be the next one (`last_seq() + 1`); it is validated as strictly as a local
    /// operation. A mirror should take changes only this way, never local operations, or the
    /// sequences diverge.
    pub fn apply_change(&self, change: &Change) -> Result<(), StoreError> {
        let record = validated_change(&change.kind)?;
        self.write(|tx| commit_change_at(tx, change.seq, &record))
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
                    supported: 1,
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
}
