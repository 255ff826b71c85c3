//! Bad input never panics the protocol core and never harms another connection: arbitrary
//! frames, truncated and mutated real requests, fed straight into `Conn::handle_frame`.

use std::sync::Arc;

use duetd::smb::{Conn, Flow, Outbox, Server, ServerConfig};
use proptest::prelude::*;

fn server() -> (tempfile::TempDir, Arc<Server>) {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let store = duet_state::Store::open(&dir.path().join("state")).unwrap();
    store.add_user("alice", "pw").unwrap();
    store
        .add_share(&duet_state::ShareConfig {
            name: "share".into(),
            path: share,
            comment: String::new(),
            read_only: false,
        })
        .unwrap();
    (dir, Server::new(ServerConfig::default(), Arc::new(store)))
}

fn conn(server: &Arc<Server>) -> (Conn, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let addr = "127.0.0.1:445".parse().unwrap();
    (Conn::new(server.clone(), addr, addr, Outbox::new(tx)), rx)
}

/// A real SMB2 NEGOTIATE request offering 2.0.2 to 3.1.1 with a preauth context.
fn negotiate() -> Vec<u8> {
    let mut m = vec![0u8; 64];
    m[0..4].copy_from_slice(&[0xFE, b'S', b'M', b'B']);
    m[4] = 64;
    m[14] = 1; // credits requested
    let dialects: [u16; 5] = [0x0202, 0x0210, 0x0300, 0x0302, 0x0311];
    let mut b = vec![0u8; 36];
    b[0] = 36;
    b[2] = dialects.len() as u8;
    b[4] = 1;
    for d in dialects {
        b.extend_from_slice(&d.to_le_bytes());
    }
    while !(64 + b.len()).is_multiple_of(8) {
        b.push(0);
    }
    let ctx_off = 64 + b.len();
    b[28..32].copy_from_slice(&(ctx_off as u32).to_le_bytes());
    b[32] = 1;
    // PREAUTH_INTEGRITY_CAPABILITIES: 1 algorithm (SHA-512), 32-byte salt
    b.extend_from_slice(&[1, 0, 38, 0, 0, 0, 0, 0, 1, 0, 32, 0, 1, 0]);
    b.extend_from_slice(&[7u8; 32]);
    m.extend_from_slice(&b);
    m
}

#[test]
fn negotiate_is_answered() {
    let (_d, s) = server();
    let (mut c, mut rx) = conn(&s);
    assert_eq!(c.handle_frame(&negotiate()), Flow::Continue);
    let resp = rx.try_recv().expect("a response");
    assert_eq!(&resp[0..4], &[0xFE, b'S', b'M', b'B']);
    assert_eq!(
        u32::from_le_bytes(resp[8..12].try_into().unwrap()),
        0,
        "STATUS_SUCCESS"
    );
    assert_eq!(
        u16::from_le_bytes(resp[64 + 4..64 + 6].try_into().unwrap()),
        0x0311
    );
    // A second NEGOTIATE on the same connection ends it (MS-SMB2 3.3.5.3.1).
    let mut again = negotiate();
    again[24] = 1; // message id 1
    assert_eq!(c.handle_frame(&again), Flow::Close);
}

#[test]
fn requests_before_negotiate_and_bad_message_ids_close_only_that_connection() {
    let (_d, s) = server();
    let (mut bad, _rx) = conn(&s);
    let mut create = negotiate();
    create[12] = 5; // CREATE before NEGOTIATE
    assert_eq!(bad.handle_frame(&create), Flow::Close);
    let (mut bad2, _rx2) = conn(&s);
    let mut n = negotiate();
    n[24] = 9; // message id far outside the one credit granted
    assert_eq!(bad2.handle_frame(&n), Flow::Close);
    // Another connection is unaffected.
    let (mut good, mut rx) = conn(&s);
    assert_eq!(good.handle_frame(&negotiate()), Flow::Continue);
    assert!(rx.try_recv().is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_frames_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (_d, s) = server();
        let (mut c, _rx) = conn(&s);
        let _ = c.handle_frame(&frame);
    }

    #[test]
    fn mutated_frames_after_negotiate_never_panic(
        cmd in 0u16..20,
        body in proptest::collection::vec(any::<u8>(), 0..400),
        flags in any::<u32>(),
        next in prop_oneof![Just(0u32), any::<u32>()],
    ) {
        let (_d, s) = server();
        let (mut c, _rx) = conn(&s);
        prop_assert_eq!(c.handle_frame(&negotiate()), Flow::Continue);
        let mut m = negotiate()[..64].to_vec();
        m[12..14].copy_from_slice(&cmd.to_le_bytes());
        m[16..20].copy_from_slice(&flags.to_le_bytes());
        m[20..24].copy_from_slice(&next.to_le_bytes());
        m[24] = 1;
        m.extend_from_slice(&body);
        let _ = c.handle_frame(&m);
    }

    #[test]
    fn truncated_negotiate_never_panics(cut in 0usize..200) {
        let (_d, s) = server();
        let (mut c, _rx) = conn(&s);
        let n = negotiate();
        let _ = c.handle_frame(&n[..cut.min(n.len())]);
    }
}
