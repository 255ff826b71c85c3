//! On-disk record formats: the byte layout of every value stored in `state.redb`.
//!
//! A record is one record-version byte followed by the postcard encoding of that version's
//! struct. Owns those structs and their encode/decode. Must never change the layout of a
//! published version: a new layout gets a new version byte and a decode arm, and old versions
//! stay readable. Enum variants here are append-only (postcard stores the variant index).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::model::{
    ByteRangeLock, Caching, ChangeKind, ClientConnection, DurableOpen, DurableVersion,
    FileIdentity, Lease, NtHash, SessionRecord, ShareConfig,
};

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
    // Appended in schema 2.
    DurableOpenPut(Box<DurableOpenV1>),
    DurableOpenRemoved { persistent_id: u64 },
    SessionPut(SessionV1),
    SessionRemoved { session_id: u64 },
    ConnectionPut(ConnectionV1),
    ConnectionRemoved { id: u64 },
}

/// Value of the `durable_opens` table (key: persistent id). See `model::DurableOpen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DurableOpenV1 {
    pub persistent_id: u64,
    pub volatile_id: u64,
    pub create_guid: [u8; 16],
    pub client_guid: [u8; 16],
    pub owner_user: String,
    pub owner_sid: String,
    pub share: String,
    pub path: String,
    pub granted_access: u32,
    pub share_access: u32,
    pub create_options: u32,
    pub version: VersionV1,
    pub persistent: bool,
    pub caching: CachingV1,
    pub locks: Vec<LockV1>,
    #[serde(with = "crate::array64")]
    pub lock_sequences: [u8; 64],
    pub timeout_ms: u32,
    pub disconnected_at_ms: Option<u64>,
    pub app_instance_id: Option<[u8; 16]>,
    pub position: u64,
    pub dev: u64,
    pub inode: u64,
    pub creation_time: u64,
}

/// Durable handle version. Append-only variant list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum VersionV1 {
    V1,
    V2,
}

/// Append-only variant list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum CachingV1 {
    None,
    LevelII,
    Exclusive,
    Batch,
    Lease(LeaseV1),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseV1 {
    pub key: [u8; 16],
    pub state: u32,
    pub epoch: u16,
    pub version: u8,
    pub parent_key: Option<[u8; 16]>,
    pub flags: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LockV1 {
    pub offset: u64,
    pub length: u64,
    pub exclusive: bool,
    pub owner: u64,
}

/// Value of the `sessions` table (key: session id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionV1 {
    pub session_id: u64,
    pub user: String,
    pub domain: String,
    pub client_guid: [u8; 16],
    pub dialect: u16,
}

/// Value of the `connections` table (key: connection id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ConnectionV1 {
    pub id: u64,
    pub client: AddrV1,
    pub server: AddrV1,
    pub client_guid: [u8; 16],
    pub connected_since_ms: u64,
}

/// A socket address, independent of serde's encoding of `std::net::SocketAddr`.
/// Append-only variant list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum AddrV1 {
    V4 {
        ip: [u8; 4],
        port: u16,
    },
    V6 {
        ip: [u8; 16],
        port: u16,
        flowinfo: u32,
        scope_id: u32,
    },
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
            ChangeV1::DurableOpenPut(o) => ChangeKind::DurableOpenPut {
                open: Box::new((*o).into()),
            },
            ChangeV1::DurableOpenRemoved { persistent_id } => {
                ChangeKind::DurableOpenRemoved { persistent_id }
            }
            ChangeV1::SessionPut(s) => ChangeKind::SessionPut { session: s.into() },
            ChangeV1::SessionRemoved { session_id } => ChangeKind::SessionRemoved { session_id },
            ChangeV1::ConnectionPut(c) => ChangeKind::ClientConnectionPut {
                connection: c.into(),
            },
            ChangeV1::ConnectionRemoved { id } => ChangeKind::ClientConnectionRemoved { id },
        }
    }
}

// ---- durable handle records <-> model (validation is `validate`'s job, before encoding) ----

impl From<DurableOpenV1> for DurableOpen {
    fn from(r: DurableOpenV1) -> Self {
        DurableOpen {
            persistent_id: r.persistent_id,
            volatile_id: r.volatile_id,
            create_guid: r.create_guid,
            client_guid: r.client_guid,
            owner_user: r.owner_user,
            owner_sid: r.owner_sid,
            share: r.share,
            path: r.path,
            granted_access: r.granted_access,
            share_access: r.share_access,
            create_options: r.create_options,
            version: match r.version {
                VersionV1::V1 => DurableVersion::V1,
                VersionV1::V2 => DurableVersion::V2,
            },
            persistent: r.persistent,
            caching: match r.caching {
                CachingV1::None => Caching::None,
                CachingV1::LevelII => Caching::LevelII,
                CachingV1::Exclusive => Caching::Exclusive,
                CachingV1::Batch => Caching::Batch,
                CachingV1::Lease(l) => Caching::Lease(Lease {
                    key: l.key,
                    state: l.state,
                    epoch: l.epoch,
                    version: l.version,
                    parent_key: l.parent_key,
                    flags: l.flags,
                }),
            },
            locks: r
                .locks
                .into_iter()
                .map(|l| ByteRangeLock {
                    offset: l.offset,
                    length: l.length,
                    exclusive: l.exclusive,
                    owner: l.owner,
                })
                .collect(),
            lock_sequences: r.lock_sequences,
            timeout_ms: r.timeout_ms,
            disconnected_at_ms: r.disconnected_at_ms,
            app_instance_id: r.app_instance_id,
            position: r.position,
            file: FileIdentity {
                dev: r.dev,
                inode: r.inode,
                creation_time: r.creation_time,
            },
        }
    }
}

impl From<&DurableOpen> for DurableOpenV1 {
    fn from(o: &DurableOpen) -> Self {
        DurableOpenV1 {
            persistent_id: o.persistent_id,
            volatile_id: o.volatile_id,
            create_guid: o.create_guid,
            client_guid: o.client_guid,
            owner_user: o.owner_user.clone(),
            owner_sid: o.owner_sid.clone(),
            share: o.share.clone(),
            path: o.path.clone(),
            granted_access: o.granted_access,
            share_access: o.share_access,
            create_options: o.create_options,
            version: match o.version {
                DurableVersion::V1 => VersionV1::V1,
                DurableVersion::V2 => VersionV1::V2,
            },
            persistent: o.persistent,
            caching: match &o.caching {
                Caching::None => CachingV1::None,
                Caching::LevelII => CachingV1::LevelII,
                Caching::Exclusive => CachingV1::Exclusive,
                Caching::Batch => CachingV1::Batch,
                Caching::Lease(l) => CachingV1::Lease(LeaseV1 {
                    key: l.key,
                    state: l.state,
                    epoch: l.epoch,
                    version: l.version,
                    parent_key: l.parent_key,
                    flags: l.flags,
                }),
            },
            locks: o
                .locks
                .iter()
                .map(|l| LockV1 {
                    offset: l.offset,
                    length: l.length,
                    exclusive: l.exclusive,
                    owner: l.owner,
                })
                .collect(),
            lock_sequences: o.lock_sequences,
            timeout_ms: o.timeout_ms,
            disconnected_at_ms: o.disconnected_at_ms,
            app_instance_id: o.app_instance_id,
            position: o.position,
            dev: o.file.dev,
            inode: o.file.inode,
            creation_time: o.file.creation_time,
        }
    }
}

impl From<SessionV1> for SessionRecord {
    fn from(r: SessionV1) -> Self {
        SessionRecord {
            session_id: r.session_id,
            user: r.user,
            domain: r.domain,
            client_guid: r.client_guid,
            dialect: r.dialect,
        }
    }
}

impl From<&SessionRecord> for SessionV1 {
    fn from(s: &SessionRecord) -> Self {
        SessionV1 {
            session_id: s.session_id,
            user: s.user.clone(),
            domain: s.domain.clone(),
            client_guid: s.client_guid,
            dialect: s.dialect,
        }
    }
}

impl From<AddrV1> for SocketAddr {
    fn from(a: AddrV1) -> Self {
        match a {
            AddrV1::V4 { ip, port } => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)),
            AddrV1::V6 {
                ip,
                port,
                flowinfo,
                scope_id,
            } => SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flowinfo,
                scope_id,
            )),
        }
    }
}

impl From<SocketAddr> for AddrV1 {
    fn from(a: SocketAddr) -> Self {
        match a {
            SocketAddr::V4(a) => AddrV1::V4 {
                ip: a.ip().octets(),
                port: a.port(),
            },
            SocketAddr::V6(a) => AddrV1::V6 {
                ip: a.ip().octets(),
                port: a.port(),
                flowinfo: a.flowinfo(),
                scope_id: a.scope_id(),
            },
        }
    }
}

impl From<ConnectionV1> for ClientConnection {
    fn from(r: ConnectionV1) -> Self {
        ClientConnection {
            id: r.id,
            client: r.client.into(),
            server: r.server.into(),
            client_guid: r.client_guid,
            connected_since_ms: r.connected_since_ms,
        }
    }
}

impl From<&ClientConnection> for ConnectionV1 {
    fn from(c: &ClientConnection) -> Self {
        ConnectionV1 {
            id: c.id,
            client: c.client.into(),
            server: c.server.into(),
            client_guid: c.client_guid,
            connected_since_ms: c.connected_since_ms,
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
