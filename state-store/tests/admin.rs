//! The admin protocol over a live socket.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;

use duet_state::admin::{
    self, AdminErrorCode, AdminReply, AdminRequest, MAX_REQUEST_BYTES, PROTOCOL_VERSION,
    SOCKET_FILE,
};
use duet_state::{nt_hash, ShareConfig, Store};

fn start(dir: &Path) -> (Arc<Store>, std::path::PathBuf) {
    let store = Arc::new(Store::open(dir).unwrap());
    let sock = dir.join(SOCKET_FILE);
    admin::serve(Arc::clone(&store), &sock).unwrap();
    (store, sock)
}

/// Sends raw bytes and reads whatever reply frame comes back.
fn raw_exchange(sock: &Path, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut s = UnixStream::connect(sock)?;
    s.write_all(bytes)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

fn ok_request(sock: &Path, req: AdminRequest) -> AdminReply {
    admin::request(sock, &req).unwrap()
}

#[test]
fn every_operation_over_the_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, sock) = start(tmp.path());
    assert_eq!(
        fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let add = AdminRequest::UserAdd {
        name: "Alice".into(),
        password: "pw".into(),
    };
    assert_eq!(ok_request(&sock, add.clone()), AdminReply::Done);
    match ok_request(&sock, add) {
        AdminReply::Error {
            code: AdminErrorCode::AlreadyExists,
            message,
        } => assert!(message.contains("Alice"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ok_request(
            &sock,
            AdminRequest::UserPasswd {
                name: "alice".into(),
                password: "pw2".into()
            }
        ),
        AdminReply::Done
    );
    assert_eq!(store.user_nt_hash("ALICE").unwrap(), Some(nt_hash("pw2")));
    match ok_request(&sock, AdminRequest::UserList) {
        AdminReply::Users(users) => assert_eq!(users[0].name, "Alice"),
        other => panic!("{other:?}"),
    }

    let docs = ShareConfig {
        name: "docs".into(),
        path: "/srv/docs".into(),
        comment: "Docs".into(),
        read_only: true,
    };
    assert_eq!(
        ok_request(
            &sock,
            AdminRequest::ShareAdd {
                share: docs.clone()
            }
        ),
        AdminReply::Done
    );
    assert_eq!(
        ok_request(&sock, AdminRequest::ShareList),
        AdminReply::Shares(vec![docs])
    );
    assert_eq!(
        ok_request(
            &sock,
            AdminRequest::SettingSet {
                key: "k".into(),
                value: "v".into()
            }
        ),
        AdminReply::Done
    );
    assert_eq!(
        ok_request(&sock, AdminRequest::SettingGet { key: "k".into() }),
        AdminReply::Setting(Some("v".into()))
    );
    assert_eq!(
        ok_request(
            &sock,
            AdminRequest::ShareDel {
                name: "DOCS".into()
            }
        ),
        AdminReply::Done
    );
    assert_eq!(
        ok_request(
            &sock,
            AdminRequest::UserDel {
                name: "alice".into()
            }
        ),
        AdminReply::Done
    );
    assert!(matches!(
        ok_request(
            &sock,
            AdminRequest::UserDel {
                name: "alice".into()
            }
        ),
        AdminReply::Error {
            code: AdminErrorCode::NotFound,
            ..
        }
    ));
    assert!(matches!(
        ok_request(
            &sock,
            AdminRequest::UserAdd {
                name: "a@b".into(),
                password: "pw".into()
            }
        ),
        AdminReply::Error {
            code: AdminErrorCode::Invalid,
            ..
        }
    ));
    assert_eq!(store.last_seq().unwrap(), 6);
}

#[test]
fn bad_clients_do_not_break_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let (_store, sock) = start(tmp.path());

    // A client that connects and says nothing does not block others.
    let _silent = UnixStream::connect(&sock).unwrap();
    // Nor does one that sends half a frame.
    let mut half = UnixStream::connect(&sock).unwrap();
    half.write_all(&[100, 0, 0, 0, PROTOCOL_VERSION]).unwrap();

    // Oversized length: refused with a protocol error, without reading the payload.
    let reply = raw_exchange(&sock, &(MAX_REQUEST_BYTES + 1).to_le_bytes()).unwrap();
    assert!(!reply.is_empty());
    // Garbage payload, wrong protocol version, empty frame, immediate hang-up.
    for bytes in [
        &[3u8, 0, 0, 0, PROTOCOL_VERSION, 0xff, 0xff][..],
        &[2, 0, 0, 0, 42, 0][..],
        &[0, 0, 0, 0][..],
        &[][..],
    ] {
        let _ = raw_exchange(&sock, bytes);
    }

    // The server still answers properly.
    assert_eq!(
        ok_request(
            &sock,
            AdminRequest::SettingSet {
                key: "still".into(),
                value: "alive".into()
            }
        ),
        AdminReply::Done
    );
}

#[test]
fn protocol_errors_are_replies() {
    let tmp = tempfile::tempdir().unwrap();
    let (_store, sock) = start(tmp.path());
    let reply = raw_exchange(&sock, &[2, 0, 0, 0, 42, 0]).unwrap();
    // Decode the reply frame by hand: length, version, postcard body.
    let len = u32::from_le_bytes(reply[..4].try_into().unwrap()) as usize;
    assert_eq!(len, reply.len() - 4);
    assert_eq!(reply[4], PROTOCOL_VERSION);
    let decoded: AdminReply = postcard::from_bytes(&reply[5..]).unwrap();
    match decoded {
        AdminReply::Error {
            code: AdminErrorCode::Protocol,
            message,
        } => assert!(message.contains("version 42"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn stale_socket_is_replaced_but_live_one_and_files_are_not() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join(SOCKET_FILE);
    // A socket file left behind by a dead server.
    drop(UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let (_store, sock) = start(tmp.path());
    assert_eq!(
        ok_request(&sock, AdminRequest::UserList),
        AdminReply::Users(vec![])
    );

    // A second server on the same live socket is refused.
    let other = tempfile::tempdir().unwrap();
    let store2 = Arc::new(Store::open(other.path()).unwrap());
    let err = admin::serve(Arc::clone(&store2), &sock).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);

    // A regular file is never removed.
    let file = other.path().join("not-a-socket");
    fs::write(&file, b"keep me").unwrap();
    let err = admin::serve(store2, &file).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn client_errors_distinguish_no_server() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join(SOCKET_FILE);
    let err = admin::request(&sock, &AdminRequest::UserList).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    drop(UnixListener::bind(&sock).unwrap());
    let err = admin::request(&sock, &AdminRequest::UserList).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

#[test]
fn oversized_request_is_refused_by_the_client() {
    let tmp = tempfile::tempdir().unwrap();
    let (_store, sock) = start(tmp.path());
    let req = AdminRequest::SettingSet {
        key: "k".into(),
        value: "x".repeat(MAX_REQUEST_BYTES as usize),
    };
    let err = admin::request(&sock, &req).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}
