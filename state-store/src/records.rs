//! On-disk record formats: the byte layout of every value stored in `state.redb`.
//!
//! A record is one record-version byte followed by the postcard encoding of that version's
//! struct. Owns those structs and their encode/decode. Must never change the layout of a
//! published version: a new layout gets a new version byte and a decode arm, and old versions
//! stay readable. Enum variants here are append-only (postcard stores the variant index).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::model::{ChangeKind, NtHash, ShareConfig};

/// The record version this build writes (and the only one it reads so far).
pub(crate) const RECORD_VERSION: u8 = 1;

/// Value of the `users` table (key: folded name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UserV1 {
    /// Name as given, for display.
    pub name: String,
    pub nt_hash: [u8; 16],
    /// Seconds since the Unix epoch.
    pub created: u64,
}

/// Value of the `shares` table (key: folded name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShareV1 {
    pub name: String,
    /// Absolute path, UTF-8.
    pub path: String,
    pub comment: String,
    pub read_only: bool,
}

/// Value of the `settings` table (key: setting key, case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SettingV1 {
    pub value: String,
}

/// Value of the `changes` table (key: sequence number). Append-only variant list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ChangeV1 {
    UserPut(UserV1),
    UserRemoved { name: String },
    SharePut(ShareV1),
    ShareRemoved { name: String },
    SettingPut { key: String, value: String },
}

/// Why a stored value could not be decoded. The store adds the file, table and key.
#[derive(Debug)]
pub(crate) enum DecodeError {
    Empty,
    UnknownVersion(u8),
    Malformed(String),
}

pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_extend(record, vec![RECORD_VERSION])
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&RECORD_VERSION, body)) => match postcard::take_from_bytes::<T>(body) {
            Ok((record, [])) => Ok(record),
            Ok((_, rest)) => Err(DecodeError::Malformed(format!(
                "{} unexpected trailing bytes",
                rest.len()
            ))),
            Err(e) => Err(DecodeError::Malformed(e.to_string())),
        },
        Some((&version, _)) => Err(DecodeError::UnknownVersion(version)),
    }
}

impl From<ShareV1> for ShareConfig {
    fn from(s: ShareV1) -> Self {
        ShareConfig {
            name: s.name,
            path: s.path.into(),
            comment: s.comment,
            read_only: s.read_only,
        }
    }
}

impl From<ChangeV1> for ChangeKind {
    fn from(c: ChangeV1) -> Self {
        match c {
            ChangeV1::UserPut(u) => ChangeKind::UserPut {
                name: u.name,
                nt_hash: NtHash(u.nt_hash),
                created: u.created,
            },
            ChangeV1::UserRemoved { name } => ChangeKind::UserRemoved { name },
            ChangeV1::SharePut(s) => ChangeKind::SharePut { share: s.into() },
            ChangeV1::ShareRemoved { name } => ChangeKind::ShareRemoved { name },
            ChangeV1::SettingPut { key, value } => ChangeKind::SettingPut { key, value },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_byte() {
        let u = UserV1 {
            name: "Alice".into(),
            nt_hash: [7; 16],
            created: 1_700_000_000,
        };
        let bytes = encode(&u).unwrap();
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(decode::<UserV1>(&bytes).unwrap(), u);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(decode::<SettingV1>(&[]), Err(DecodeError::Empty)));
        assert!(matches!(
            decode::<SettingV1>(&[9, 0]),
            Err(DecodeError::UnknownVersion(9))
        ));
        // Truncated: a string length of 5 with 1 byte following.
        assert!(matches!(
            decode::<SettingV1>(&[RECORD_VERSION, 5, b'a']),
            Err(DecodeError::Malformed(_))
        ));
        let mut bytes = encode(&SettingV1 { value: "v".into() }).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<SettingV1>(&bytes),
            Err(DecodeError::Malformed(_))
        ));
    }
}
