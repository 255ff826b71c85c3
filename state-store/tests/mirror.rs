//! The wire form of the change feed and the local-write fence: what a passive node of a
//! pair uses to keep its store a copy of the serving node's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use duet_state::{ChangeKind, ShareConfig, Store, StoreError};

fn share(name: &str) -> ShareConfig {
    ShareConfig {
        name: name.into(),
        path: "/srv/x".into(),
        comment: String::new(),
        read_only: false,
    }
}

#[test]
fn encoded_feed_and_snapshot_make_an_equal_store() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let c_dir = tempfile::tempdir().unwrap();
    let a = Store::open(a_dir.path()).unwrap();
    let b = Store::open(b_dir.path()).unwrap();
    let c = Store::open(c_dir.path()).unwrap();
    a.add_user("alice", "secret-1").unwrap();
    a.add_share(&share("docs")).unwrap();
    a.submit(&ChangeKind::SettingPut {
        key: "smb.signing_required".into(),
        value: "false".into(),
    })
    .unwrap();

    // A follower replays the feed in two batches.
    let first = a.encoded_changes_since(0, 2).unwrap();
    assert_eq!(first.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 2]);
    let as_refs: Vec<(u64, &[u8])> = first.iter().map(|(s, b)| (*s, b.as_slice())).collect();
    b.apply_encoded_changes(&as_refs).unwrap();
    let rest = a.encoded_changes_since(2, 100).unwrap();
    let as_refs: Vec<(u64, &[u8])> = rest.iter().map(|(s, b)| (*s, b.as_slice())).collect();
    b.apply_encoded_changes(&as_refs).unwrap();
    assert_eq!(b.last_seq().unwrap(), 3);
    assert_eq!(b.snapshot().unwrap(), a.snapshot().unwrap());

    // Replaying a change again is refused: sequence numbers must follow.
    let err = b.apply_encoded_changes(&as_refs).unwrap_err();
    assert!(matches!(err, StoreError::ChangeOutOfOrder { .. }), "{err}");

    // Another starts from a snapshot.
    let (seq, bytes) = a.encoded_snapshot().unwrap();
    assert_eq!(seq, 3);
    c.restore_encoded_snapshot(seq, &bytes).unwrap();
    assert_eq!(c.snapshot().unwrap(), a.snapshot().unwrap());
    assert!(c.user_nt_hash("alice").unwrap().is_some());
}

#[test]
fn damaged_wire_bytes_are_refused_and_change_nothing() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = Store::open(a_dir.path()).unwrap();
    let b = Store::open(b_dir.path()).unwrap();
    a.add_user("alice", "secret-1").unwrap();
    let changes = a.encoded_changes_since(0, 10).unwrap();
    let mut bad = changes[0].1.clone();
    bad[0] = 9; // unknown record version
    assert!(b.apply_encoded_changes(&[(1, &bad)]).is_err());
    let truncated = &changes[0].1[..changes[0].1.len() / 2];
    assert!(b.apply_encoded_changes(&[(1, truncated)]).is_err());
    assert!(b.restore_encoded_snapshot(5, &[1, 0xff, 0xff]).is_err());
    assert_eq!(b.last_seq().unwrap(), 0);
    assert!(b.list_users().unwrap().is_empty());
}

#[test]
fn fenced_store_refuses_local_writes_but_applies_a_partners() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = Store::open(a_dir.path()).unwrap();
    let b = Store::open(b_dir.path()).unwrap();
    let commits = Arc::new(AtomicUsize::new(0));
    let c = commits.clone();
    b.set_commit_listener(Some(Arc::new(move || {
        c.fetch_add(1, Ordering::SeqCst);
    })));
    b.fence_local_writes(Some("this node is passive".into()));
    let err = b.add_user("bob", "secret-2").unwrap_err();
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    assert!(err.to_string().contains("this node is passive"), "{err}");
    let err = b
        .submit(&ChangeKind::SettingPut {
            key: "k".into(),
            value: "v".into(),
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    assert_eq!(commits.load(Ordering::SeqCst), 0);

    a.add_user("alice", "secret-1").unwrap();
    let changes = a.encoded_changes_since(0, 10).unwrap();
    let refs: Vec<(u64, &[u8])> = changes.iter().map(|(s, b)| (*s, b.as_slice())).collect();
    b.apply_encoded_changes(&refs).unwrap();
    assert_eq!(commits.load(Ordering::SeqCst), 1);
    assert!(b.user_nt_hash("alice").unwrap().is_some());

    b.fence_local_writes(None);
    b.add_user("bob", "secret-2").unwrap();
    b.submit(&ChangeKind::SettingPut {
        key: "k".into(),
        value: "v".into(),
    })
    .unwrap();
    assert_eq!(commits.load(Ordering::SeqCst), 3);
}

#[test]
fn commits_wait_for_the_partners_ack_when_required() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    store.add_user("alice", "secret-1").unwrap();
    store.require_partner_acks(true, 1);
    let setting = |v: &str| ChangeKind::SettingPut {
        key: "k".into(),
        value: v.into(),
    };
    let ticket = store.submit_nowait(&setting("a"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(ticket.wait()).unwrap());
    // Committed locally but not acknowledged: the waiter is still blocked.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(store.last_seq().unwrap(), 2);
    assert!(rx.try_recv().is_err());
    store.partner_acked(2);
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .unwrap()
            .unwrap(),
        2
    );

    // Stepping down: what was not acknowledged fails instead of hanging.
    let ticket = store.submit_nowait(&setting("b"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(ticket.wait()).unwrap());
    std::thread::sleep(std::time::Duration::from_millis(50));
    store.abandon_unacked("released the service".into());
    let err = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("released the service"), "{err}");

    // Alone (or standalone): nothing waits.
    store.require_partner_acks(false, 0);
    assert_eq!(store.submit(&setting("c")).unwrap(), 4);
}
