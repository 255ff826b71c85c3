//! The local admin protocol: how `duetctl` asks a running duetd to change its state, since
//! only one process can hold `state.redb` open.
//!
//! Owns the request/reply types, their wire format and both ends of the Unix socket
//! `DIR/duetd.sock`. Wire format: one request and one reply per connection, each a frame of
//! `u32` little-endian payload length, then the payload: [`PROTOCOL_VERSION`] byte followed by
//! the postcard encoding of [`AdminRequest`] / [`AdminReply`] (variants are append-only).
//!
//! Must never let one client break the server (bounded request size, I/O timeouts, a bounded
//! number of concurrent clients, panics contained to the client's thread), never put a
//! password in a log or `Debug` output, and never remove a socket path that is not a stale
//! socket.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{ShareConfig, Store, StoreError, UserInfo};

/// File name of the admin socket inside the state directory.
pub const SOCKET_FILE: &str = "duetd.sock";
/// First byte of every frame payload.
pub const PROTOCOL_VERSION: u8 = 1;
/// Largest request payload the server reads.
pub const MAX_REQUEST_BYTES: u32 = 64 * 1024;
/// Largest reply payload the client reads.
pub const MAX_REPLY_BYTES: u32 = 16 * 1024 * 1024;
/// Read/write timeout on each side of a connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; further ones get [`AdminErrorCode::Busy`].
pub const MAX_CLIENTS: usize = 8;

/// One operation of `duetctl`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    UserAdd {
        name: String,
        password: String,
    },
    UserPasswd {
        name: String,
        password: String,
    },
    UserDel {
        name: String,
    },
    UserList,
    ShareAdd {
        share: ShareConfig,
    },
    ShareDel {
        name: String,
    },
    ShareList,
    SettingSet {
        key: String,
        value: String,
    },
    SettingGet {
        key: String,
    },
    // Appended: postcard encodes the variant index.
    /// A command for the pair's cluster core; only a running duetd that is part of a pair
    /// answers it (see [`serve_with_cluster`]).
    Cluster(ClusterCommand),
}

/// What `duetctl cluster ...` asks a running node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterCommand {
    /// Role, epoch, mirror state, link and tie-breaker, counters.
    Status,
    /// Planned switchover: the service moves to the partner with no handle lost.
    Switchover,
    /// Operator override: serve now with this node's store (the partner must be down).
    ForceTakeover,
}

/// Answers [`AdminRequest::Cluster`]: a report for the operator, or why the command was
/// refused.
pub type ClusterHook = Arc<dyn Fn(ClusterCommand) -> Result<String, String> + Send + Sync>;

impl AdminRequest {
    /// Whether the request only reads state.
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            AdminRequest::UserList | AdminRequest::ShareList | AdminRequest::SettingGet { .. }
        )
    }
}

impl fmt::Debug for AdminRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminRequest::UserAdd { name, .. } => f
                .debug_struct("UserAdd")
                .field("name", name)
                .field("password", &"<redacted>")
                .finish(),
            AdminRequest::UserPasswd { name, .. } => f
                .debug_struct("UserPasswd")
                .field("name", name)
                .field("password", &"<redacted>")
                .finish(),
            AdminRequest::UserDel { name } => {
                f.debug_struct("UserDel").field("name", name).finish()
            }
            AdminRequest::UserList => f.write_str("UserList"),
            AdminRequest::ShareAdd { share } => {
                f.debug_struct("ShareAdd").field("share", share).finish()
            }
            AdminRequest::ShareDel { name } => {
                f.debug_struct("ShareDel").field("name", name).finish()
            }
            AdminRequest::ShareList => f.write_str("ShareList"),
            AdminRequest::SettingSet { key, value } => f
                .debug_struct("SettingSet")
                .field("key", key)
                .field("value", value)
                .finish(),
            AdminRequest::SettingGet { key } => {
                f.debug_struct("SettingGet").field("key", key).finish()
            }
            AdminRequest::Cluster(cmd) => f.debug_tuple("Cluster").field(cmd).finish(),
        }
    }
}

/// The answer to one [`AdminRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminReply {
    /// A change was committed.
    Done,
    Users(Vec<UserInfo>),
    Shares(Vec<ShareConfig>),
    /// The value of a setting, `None` if unset.
    Setting(Option<String>),
    /// The request failed; `message` is a complete one-line description.
    Error {
        code: AdminErrorCode,
        message: String,
    },
    // Appended.
    /// A text report for the operator (cluster commands).
    Text(String),
}

/// Class of an [`AdminReply::Error`], for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminErrorCode {
    /// A name, path, password or value was rejected.
    Invalid,
    AlreadyExists,
    NotFound,
    /// The database failed (I/O, corruption, ...).
    Storage,
    /// The request could not be read (malformed, too large, wrong protocol version).
    Protocol,
    /// Too many clients at once; try again.
    Busy,
    // Appended.
    /// A cluster command was refused (not part of a pair, or the pair's rules forbid it).
    Cluster,
}

fn error_reply(e: &StoreError) -> AdminReply {
    let code = match e {
        StoreError::Invalid { .. } | StoreError::InvalidPassword { .. } => AdminErrorCode::Invalid,
        StoreError::AlreadyExists { .. } => AdminErrorCode::AlreadyExists,
        StoreError::NotFound { .. } => AdminErrorCode::NotFound,
        _ => AdminErrorCode::Storage,
    };
    AdminReply::Error {
        code,
        message: e.to_string(),
    }
}

/// Carries out a request on `store`. Shared by the daemon's socket server and duetctl's
/// offline mode, so both behave identically.
pub fn execute(store: &Store, req: AdminRequest) -> AdminReply {
    let done = |r: Result<(), StoreError>| match r {
        Ok(()) => AdminReply::Done,
        Err(e) => error_reply(&e),
    };
    match req {
        AdminRequest::UserAdd { name, password } => done(store.add_user(&name, &password)),
        AdminRequest::UserPasswd { name, password } => done(store.set_password(&name, &password)),
        AdminRequest::UserDel { name } => done(store.remove_user(&name)),
        AdminRequest::UserList => match store.list_users() {
            Ok(users) => AdminReply::Users(users),
            Err(e) => error_reply(&e),
        },
        AdminRequest::ShareAdd { share } => done(store.add_share(&share)),
        AdminRequest::ShareDel { name } => done(store.remove_share(&name)),
        AdminRequest::ShareList => match store.list_shares() {
            Ok(shares) => AdminReply::Shares(shares),
            Err(e) => error_reply(&e),
        },
        AdminRequest::SettingSet { key, value } => done(store.set_setting(&key, &value)),
        AdminRequest::SettingGet { key } => match store.setting(&key) {
            Ok(value) => AdminReply::Setting(value),
            Err(e) => error_reply(&e),
        },
        AdminRequest::Cluster(_) => AdminReply::Error {
            code: AdminErrorCode::Cluster,
            message: "cluster commands need a running duetd that is part of a pair".into(),
        },
    }
}

fn execute_with(store: &Store, cluster: Option<&ClusterHook>, req: AdminRequest) -> AdminReply {
    match (req, cluster) {
        (AdminRequest::Cluster(cmd), Some(hook)) => match hook(cmd) {
            Ok(text) => AdminReply::Text(text),
            Err(message) => AdminReply::Error {
                code: AdminErrorCode::Cluster,
                message,
            },
        },
        (req, _) => execute(store, req),
    }
}

// ---- framing ----

fn invalid_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn encode_frame<T: Serialize>(msg: &T) -> io::Result<Vec<u8>> {
    let frame = postcard::to_extend(msg, vec![0, 0, 0, 0, PROTOCOL_VERSION])
        .map_err(|e| invalid_data(format!("cannot encode admin message: {e}")))?;
    let len = u32::try_from(frame.len() - 4)
        .map_err(|_| invalid_data("admin message too large".into()))?;
    let mut frame = frame;
    frame[..4].copy_from_slice(&len.to_le_bytes());
    Ok(frame)
}

fn read_frame<T: DeserializeOwned>(r: &mut impl Read, max: u32) -> io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > max {
        return Err(invalid_data(format!(
            "admin message of {len} bytes exceeds the limit of {max}"
        )));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    match payload.split_first() {
        None => Err(invalid_data("empty admin message".into())),
        Some((&PROTOCOL_VERSION, body)) => match postcard::take_from_bytes::<T>(body) {
            Ok((msg, [])) => Ok(msg),
            Ok(_) => Err(invalid_data("trailing bytes after admin message".into())),
            Err(e) => Err(invalid_data(format!("malformed admin message: {e}"))),
        },
        Some((&v, _)) => Err(invalid_data(format!(
            "admin protocol version {v} is not supported (this build speaks {PROTOCOL_VERSION})"
        ))),
    }
}

// ---- client ----

/// Sends one request to the server at `socket_path` and returns its reply.
///
/// Errors are plain I/O errors: `NotFound` / `ConnectionRefused` mean no server is listening
/// there (a stale or missing socket); `InvalidData` a protocol failure; `InvalidInput` a
/// request too large to send.
pub fn request(socket_path: &Path, req: &AdminRequest) -> io::Result<AdminReply> {
    let frame = encode_frame(req)?;
    if frame.len() - 4 > MAX_REQUEST_BYTES as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("admin request exceeds the limit of {MAX_REQUEST_BYTES} bytes"),
        ));
    }
    let mut stream = UnixStream::connect(socket_path)?;
    // Writes on the server may wait for a disk sync: allow for more than one server timeout.
    stream.set_read_timeout(Some(IO_TIMEOUT * 3))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(&frame)?;
    read_frame(&mut stream, MAX_REPLY_BYTES)
}

// ---- server ----

/// Serves admin requests for `store` on a Unix socket at `socket_path`, in a background
/// thread (plus one short-lived thread per client), until the process exits.
///
/// A socket file left at `socket_path` by a dead server is removed first; a live server
/// there (`AddrInUse`) or a non-socket file (`AlreadyExists`) is an error. The socket gets
/// mode 0600 (the state directory is 0700 too), so only its owner can connect.
pub fn serve(store: Arc<Store>, socket_path: &Path) -> io::Result<JoinHandle<()>> {
    serve_with_cluster(store, socket_path, None)
}

/// [`serve`], answering [`AdminRequest::Cluster`] with `cluster` (a node of a pair).
pub fn serve_with_cluster(
    store: Arc<Store>,
    socket_path: &Path,
    cluster: Option<ClusterHook>,
) -> io::Result<JoinHandle<()>> {
    remove_stale_socket(socket_path)?;
    let listener = UnixListener::bind(socket_path)?;
    fs::set_permissions(socket_path, fs::Permissions::from_mode(0o600))?;
    thread::Builder::new()
        .name("duet-admin".into())
        .spawn(move || accept_loop(listener, store, cluster))
}

fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; not removing it",
                path.display()
            ),
        ));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another server is listening on {}", path.display()),
        ));
    }
    fs::remove_file(path)
}

/// Decrements the client count when a client's thread ends, even by panic.
struct ClientSlot(Arc<AtomicUsize>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(listener: UnixListener, store: Arc<Store>, cluster: Option<ClusterHook>) {
    let clients = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(stream) => stream,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // E.g. out of file descriptors: back off instead of spinning.
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::SeqCst);
            reject_busy(stream);
            continue;
        }
        let slot = ClientSlot(Arc::clone(&clients));
        let store = Arc::clone(&store);
        let cluster = cluster.clone();
        // If the thread cannot be started, the closure (and with it the slot and the stream)
        // is dropped: the client sees the connection close.
        let _ = thread::Builder::new()
            .name("duet-admin-client".into())
            .spawn(move || {
                let _slot = slot;
                handle_client(stream, &store, cluster.as_ref());
            });
    }
}

fn reject_busy(mut stream: UnixStream) {
    let reply = AdminReply::Error {
        code: AdminErrorCode::Busy,
        message: "duetd admin server is busy; try again".into(),
    };
    // Non-blocking: a small frame into a fresh socket buffer; never stall the accept loop.
    if stream.set_nonblocking(true).is_ok() {
        if let Ok(frame) = encode_frame(&reply) {
            let _ = stream.write_all(&frame);
        }
    }
}

fn handle_client(mut stream: UnixStream, store: &Store, cluster: Option<&ClusterHook>) {
    if stream.set_read_timeout(Some(IO_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(IO_TIMEOUT)).is_err()
    {
        return;
    }
    let reply = match read_frame::<AdminRequest>(&mut stream, MAX_REQUEST_BYTES) {
        Ok(req) => execute_with(store, cluster, req),
        Err(e) => AdminReply::Error {
            code: AdminErrorCode::Protocol,
            message: format!("bad admin request: {e}"),
        },
    };
    if let Ok(frame) = encode_frame(&reply) {
        let _ = stream.write_all(&frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip() {
        let req = AdminRequest::SettingSet {
            key: "k".into(),
            value: "v".into(),
        };
        let frame = encode_frame(&req).unwrap();
        assert_eq!(
            u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize,
            frame.len() - 4
        );
        assert_eq!(frame[4], PROTOCOL_VERSION);
        let back: AdminRequest = read_frame(&mut frame.as_slice(), MAX_REQUEST_BYTES).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn bad_frames() {
        let too_big = (MAX_REQUEST_BYTES + 1).to_le_bytes();
        let e = read_frame::<AdminRequest>(&mut too_big.as_slice(), MAX_REQUEST_BYTES).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);

        let wrong_version = [2u8, 0, 0, 0, 9, 0];
        let e = read_frame::<AdminRequest>(&mut wrong_version.as_slice(), MAX_REQUEST_BYTES)
            .unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");

        let truncated = [10u8, 0, 0, 0, PROTOCOL_VERSION];
        assert!(read_frame::<AdminRequest>(&mut truncated.as_slice(), MAX_REQUEST_BYTES).is_err());
    }

    #[test]
    fn password_is_redacted() {
        let req = AdminRequest::UserAdd {
            name: "alice".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{req:?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("alice"));
    }
}
