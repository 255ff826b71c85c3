//! Unit tests of durable handles, driven through the protocol core (`testkit`): grants,
//! reconnects and their checks, replay, application instances, disconnects by logoff and
//! connection loss, conflicting opens, the scavenger, and a restart on the same store.

use super::*;
use crate::smb::create::{parse_contexts, FILE_CREATE, FILE_CREATED, FILE_OPEN, FILE_OPEN_IF};
use crate::smb::testkit::{CreateArgs, Kit};
use crate::wire::HEADER_LEN;

const BATCH: u8 = LEVEL_BATCH;
const LEASE: u8 = LEVEL_LEASE;
const RWH: u32 = oplock::READ | oplock::WRITE | oplock::HANDLE;
const RH: u32 = oplock::READ | oplock::HANDLE;
const LOCK_EXCLUSIVE_NOW: u32 = 0x02 | 0x10;
const UNLOCK: u32 = 0x04;

fn dhnq() -> (&'static [u8], Vec<u8>) {
    (b"DHnQ", vec![0; 16])
}

fn dh2q(timeout: u32, flags: u32, create_guid: Guid) -> (&'static [u8], Vec<u8>) {
    let mut d = Vec::new();
    d.put_u32(timeout);
    d.put_u32(flags);
    d.put_u64(0);
    d.extend_from_slice(&create_guid);
    (b"DH2Q", d)
}

fn dhnc(fid: FileId) -> (&'static [u8], Vec<u8>) {
    let mut d = Vec::new();
    fid.put(&mut d);
    (b"DHnC", d)
}

fn dh2c(fid: FileId, create_guid: Guid) -> (&'static [u8], Vec<u8>) {
    let mut d = Vec::new();
    fid.put(&mut d);
    d.extend_from_slice(&create_guid);
    d.put_u32(0);
    (b"DH2C", d)
}

fn lease(key: Guid, state: u32) -> (&'static [u8], Vec<u8>) {
    let mut d = Vec::new();
    d.extend_from_slice(&key);
    d.put_u32(state);
    d.put_u32(0);
    d.put_u64(0);
    d.extend_from_slice(&[0; 16]);
    d.put_u16(0);
    d.put_u16(0);
    (b"RqLs", d)
}

fn app_instance(id: Guid) -> (&'static [u8], Vec<u8>) {
    let mut d = Vec::new();
    d.put_u16(20);
    d.put_u16(0);
    d.extend_from_slice(&id);
    (&APP_INSTANCE_ID, d)
}

/// The parts of a CREATE response these tests look at.
#[derive(Debug)]
struct Resp {
    status: u32,
    level: u8,
    action: u32,
    fid: FileId,
    contexts: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Resp {
    fn ctx(&self, name: &[u8]) -> Option<&[u8]> {
        self.contexts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.as_slice())
    }
    fn lease_state(&self) -> Option<u32> {
        self.ctx(b"RqLs").map(|d| le_u32(d, 16).unwrap())
    }
}

fn resp(status: u32, body: Vec<u8>) -> Resp {
    if status != 0 {
        return Resp {
            status,
            level: 0,
            action: 0,
            fid: FileId::default(),
            contexts: Vec::new(),
        };
    }
    let u32_at = |o: usize| u32::from_le_bytes(body[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(body[o..o + 8].try_into().unwrap());
    let (off, len) = (u32_at(80) as usize, u32_at(84) as usize);
    let contexts = if len == 0 {
        Vec::new()
    } else {
        let buf = &body[off - HEADER_LEN..off - HEADER_LEN + len];
        parse_contexts(buf)
            .unwrap()
            .into_iter()
            .map(|(n, d)| (n.to_vec(), d.to_vec()))
            .collect()
    };
    Resp {
        status,
        level: body[2],
        action: u32_at(4),
        fid: FileId {
            persistent: u64_at(64),
            volatile: u64_at(72),
        },
        contexts,
    }
}

fn open(
    c: &mut crate::smb::testkit::Client,
    a: &CreateArgs,
    oplock: u8,
    ctxs: &[(&[u8], Vec<u8>)],
) -> Resp {
    let (st, body) = c.create_ex(a, oplock, ctxs, 0);
    resp(st, body)
}

fn file(name: &str) -> CreateArgs {
    CreateArgs {
        share: 0,
        disposition: FILE_OPEN_IF,
        ..CreateArgs::new(name)
    }
}

fn stored(kit: &Kit, id: u64) -> Option<DurableOpen> {
    kit.server.store.durable_open(id).unwrap()
}

/// The record once a change nothing waits for (a disconnect) has been committed.
fn stored_when(kit: &Kit, id: u64, done: impl Fn(&DurableOpen) -> bool) -> DurableOpen {
    for _ in 0..500 {
        if let Some(r) = stored(kit, id).filter(|r| done(r)) {
            return r;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("record {id:#x} never reached the state waited for");
}

#[test]
fn contexts_parse_and_refuse_bad_combinations() {
    let fid = FileId {
        persistent: 7,
        volatile: 9,
    };
    let g = [5u8; 16];
    let p = |ctxs: &[(&[u8], Vec<u8>)]| {
        let v: Vec<CreateContext> = ctxs.iter().map(|(n, d)| (*n, d.as_slice())).collect();
        parse(DIALECT_300, &v)
    };
    assert_eq!(p(&[dhnq()]).unwrap().request, Request::V1);
    assert_eq!(
        p(&[dh2q(0, 0, g)]).unwrap().request,
        Request::V2 {
            create_guid: g,
            timeout_ms: 0,
            persistent: false,
            app_instance: None
        }
    );
    // A DHnQ beside a DHnC is ignored; the other pairs are refused (3.3.5.9.7, .10, .12).
    let r = p(&[dhnc(fid), dhnq()]).unwrap();
    assert_eq!(r.reconnect.unwrap().persistent_id, 7);
    let bad = Err(status::INVALID_PARAMETER);
    assert_eq!(p(&[dh2c(fid, g), dhnq()]), bad);
    assert_eq!(p(&[dhnc(fid), dh2q(0, 0, g)]), bad);
    assert_eq!(p(&[dhnc(fid), dh2c(fid, g)]), bad);
    assert_eq!(p(&[dh2c(fid, g), dh2q(0, 0, g)]), bad);
    assert_eq!(p(&[dhnq(), dh2q(0, 0, g)]), bad);
    assert_eq!(p(&[(b"DHnQ", vec![0; 3])]), bad);
    assert_eq!(p(&[(b"DH2C", vec![0; 20])]), bad);
    // v2 contexts mean nothing below SMB 3.
    let v: Vec<CreateContext> = vec![(b"DH2Q", &[0u8; 32][..])];
    assert_eq!(parse(0x0210, &v).unwrap().request, Request::None);
    let r = p(&[dh2q(0, 0, g), app_instance([3; 16])]).unwrap();
    assert_eq!(r.app_instance, Some([3; 16]));
}

#[test]
fn v2_timeouts() {
    assert_eq!(v2_timeout(0), 60_000);
    assert_eq!(v2_timeout(1), 1);
    assert_eq!(v2_timeout(120_000), 120_000);
    assert_eq!(v2_timeout(600_000), 300_000);
    assert_eq!(v2_timeout(u32::MAX), 300_000);
}

#[test]
fn v1_is_granted_only_with_batch_or_handle_lease() {
    let kit = Kit::new();
    let mut c = kit.client();
    for (i, level) in [0u8, 1, 8].into_iter().enumerate() {
        let r = open(&mut c, &file(&format!("f{i}")), level, &[dhnq()]);
        assert_eq!(r.status, 0);
        assert!(r.ctx(b"DHnQ").is_none(), "level {level:#x}");
        assert!(stored(&kit, r.fid.persistent).is_none());
    }
    let r = open(&mut c, &file("b"), BATCH, &[dhnq()]);
    assert_eq!((r.level, r.action), (BATCH, FILE_CREATED));
    assert_eq!(r.ctx(b"DHnQ"), Some(&[0u8; 8][..]));
    // The record is in the store once the response is out.
    let rec = stored(&kit, r.fid.persistent).expect("record");
    assert_eq!(rec.version, DurableVersion::V1);
    assert_eq!(rec.timeout_ms, DEFAULT_V1_TIMEOUT_MS);
    assert_eq!(rec.caching, Caching::Batch);
    assert_eq!(rec.path, "b");
    assert_eq!(rec.owner_user, "tester");
    assert_eq!(rec.disconnected_at_ms, None);
    // A lease: with handle caching yes, without no.
    let r = open(&mut c, &file("l1"), LEASE, &[lease([1; 16], RH), dhnq()]);
    assert_eq!(r.lease_state(), Some(RH));
    assert!(r.ctx(b"DHnQ").is_some());
    let r = open(
        &mut c,
        &file("l2"),
        LEASE,
        &[lease([2; 16], oplock::READ | oplock::WRITE), dhnq()],
    );
    assert!(r.ctx(b"DHnQ").is_none());
    // Never for a directory.
    let d = CreateArgs {
        options: create::FILE_DIRECTORY_FILE,
        ..file("dir")
    };
    let r = open(&mut c, &d, BATCH, &[dhnq()]);
    assert_eq!(r.status, 0);
    assert!(r.ctx(b"DHnQ").is_none());
    // Closing removes the record before the close is answered.
    let rec_id = open(&mut c, &file("c"), BATCH, &[dhnq()]).fid;
    assert!(stored(&kit, rec_id.persistent).is_some());
    assert_eq!(c.close(rec_id), 0);
    assert!(stored(&kit, rec_id.persistent).is_none());
}

#[test]
fn v2_echoes_timeout_and_never_grants_persistence() {
    let kit = Kit::new();
    let mut c = kit.client();
    let r = open(
        &mut c,
        &file("a"),
        BATCH,
        &[dh2q(0, FLAG_PERSISTENT, [1; 16])],
    );
    let d = r.ctx(b"DH2Q").expect("DH2Q");
    assert_eq!((le_u32(d, 0).unwrap(), le_u32(d, 4).unwrap()), (60_000, 0));
    let r = open(&mut c, &file("b"), BATCH, &[dh2q(u32::MAX, 0, [2; 16])]);
    assert_eq!(le_u32(r.ctx(b"DH2Q").unwrap(), 0).unwrap(), 300_000);
    let rec = stored(&kit, r.fid.persistent).unwrap();
    assert_eq!(
        (rec.version, rec.create_guid, rec.persistent),
        (DurableVersion::V2, [2; 16], false)
    );
    // Without a batch oplock: no durability.
    let r = open(&mut c, &file("c"), 8, &[dh2q(0, 0, [3; 16])]);
    assert!(r.ctx(b"DH2Q").is_none());
}

#[test]
fn messages_wait_for_held_commits_in_order() {
    let kit = Kit::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let out = crate::smb::Outbox::new(tx);
    assert!(out.send(b"first".to_vec()));
    let rec = DurableOpen {
        persistent_id: 1,
        volatile_id: 2,
        create_guid: [0; 16],
        client_guid: [0; 16],
        owner_user: "tester".into(),
        owner_sid: "S-1-5-21-1-2-3-1000".into(),
        share: "share".into(),
        path: "f".into(),
        granted_access: 0,
        share_access: 0,
        create_options: 0,
        version: DurableVersion::V1,
        persistent: false,
        caching: Caching::Batch,
        locks: Vec::new(),
        lock_sequences: [0; duet_state::LOCK_SEQUENCE_ENTRIES],
        timeout_ms: 1,
        disconnected_at_ms: None,
        app_instance_id: None,
        position: 0,
        file: FileIdentity {
            dev: 1,
            inode: 2,
            creation_time: 3,
        },
    };
    out.hold(put(&kit.server, &rec));
    assert!(out.send(b"second".to_vec()));
    assert!(out.send(b"third".to_vec()));
    // A marker before the message that waits, none before the next.
    assert_eq!(rx.try_recv().unwrap(), b"first");
    assert!(rx.try_recv().unwrap().is_empty());
    out.wait_marker().unwrap();
    assert!(kit.server.store.durable_open(1).unwrap().is_some());
    assert_eq!(rx.try_recv().unwrap(), b"second");
    assert_eq!(rx.try_recv().unwrap(), b"third");
}

/// The daemon dies with the client's opens in place: nothing is closed or disconnected.
fn crash(mut c: crate::smb::testkit::Client) {
    c.conn.opens.clear();
}

#[test]
fn connection_loss_keeps_the_open_and_a_reconnect_gets_it_back() {
    let kit = Kit::new();
    let mut c = kit.client();
    let r = open(&mut c, &file("f"), BATCH, &[dhnq()]);
    assert_eq!(c.write(r.fid, 0, b"hello"), 0);
    assert_eq!(c.lock(r.fid, 0, 1, LOCK_EXCLUSIVE_NOW, 0), 0);
    // Another reconnect while it is still open here: not found.
    let again = open(&mut c, &file("f"), 0, &[dhnc(r.fid)]);
    assert_eq!(again.status, status::OBJECT_NAME_NOT_FOUND);
    drop(c);
    let rec = stored_when(&kit, r.fid.persistent, |r| r.disconnected_at_ms.is_some());
    assert_eq!(rec.locks.len(), 1);
    // The file stays open: a conflicting lock from elsewhere is refused.
    let mut other = kit.client();
    let o = open(
        &mut other,
        &CreateArgs {
            desired: FILE_READ_ATTRIBUTES,
            share: 7,
            ..file("f")
        },
        0,
        &[],
    );
    assert_eq!(o.status, 0);
    // Everything but the reconnect context is ignored.
    let mut c2 = kit.client();
    let junk = CreateArgs {
        desired: 0x1234_5678,
        attributes: 0x1234_5678,
        share: 0x1234_5678,
        disposition: 0x1234_5678,
        options: 0x1234_5678,
        ..CreateArgs::new("__other_name__")
    };
    let back = open(&mut c2, &junk, 0x78, &[dhnc(r.fid)]);
    assert_eq!(back.status, 0, "{back:?}");
    assert_eq!(
        (back.action, back.level, back.fid),
        (FILE_OPENED, BATCH, r.fid)
    );
    assert!(back.ctx(b"DHnQ").is_none());
    assert_eq!(
        stored(&kit, r.fid.persistent).unwrap().disconnected_at_ms,
        None
    );
    // Its lock came back with it: ours to release, nobody else's to take.
    assert_eq!(
        other.lock(o.fid, 0, 1, LOCK_EXCLUSIVE_NOW, 0),
        status::LOCK_NOT_GRANTED
    );
    assert_eq!(c2.read(r.fid, 0, 5), (0, b"hello".to_vec()));
    assert_eq!(c2.lock(r.fid, 0, 1, UNLOCK, 0), 0);
    assert!(stored(&kit, r.fid.persistent).unwrap().locks.is_empty());
    assert_eq!(other.lock(o.fid, 0, 1, LOCK_EXCLUSIVE_NOW, 0), 0);
    assert_eq!(c2.close(r.fid), 0);
    assert!(stored(&kit, r.fid.persistent).is_none());
}

#[test]
fn reconnect_checks() {
    let kit = Kit::new();
    let mut c = kit.client();
    let g = [9u8; 16];
    let v2 = open(&mut c, &file("v2"), BATCH, &[dh2q(0, 0, g)]);
    let v1 = open(&mut c, &file("v1"), BATCH, &[dhnq()]);
    let ls = open(&mut c, &file("ls"), LEASE, &[lease([4; 16], RWH), dhnq()]);
    assert_eq!(ls.lease_state(), Some(RWH));
    drop(c);
    let mut c = kit.client();
    let nf = status::OBJECT_NAME_NOT_FOUND;
    let unknown = FileId {
        persistent: 0xdead,
        volatile: 1,
    };
    assert_eq!(open(&mut c, &file("v2"), 0, &[dhnc(unknown)]).status, nf);
    // v2: the CreateGuid must match (a v1 open has none; a v2 reconnect of it fails).
    assert_eq!(
        open(&mut c, &file("v2"), 0, &[dh2c(v2.fid, [0; 16])]).status,
        nf
    );
    assert_eq!(
        open(&mut c, &file("v2"), 0, &[dh2c(v2.fid, [8; 16])]).status,
        nf
    );
    assert_eq!(open(&mut c, &file("v1"), 0, &[dh2c(v1.fid, g)]).status, nf);
    // A lease: the request must name it, from the same client, for the same file.
    assert_eq!(open(&mut c, &file("ls"), 0, &[dhnc(ls.fid)]).status, nf);
    assert_eq!(
        open(
            &mut c,
            &file("ls"),
            LEASE,
            &[dhnc(ls.fid), lease([5; 16], 0)]
        )
        .status,
        nf
    );
    assert_eq!(
        open(
            &mut c,
            &file("other"),
            LEASE,
            &[dhnc(ls.fid), lease([4; 16], 0)]
        )
        .status,
        status::INVALID_PARAMETER
    );
    let mut stranger = kit.client();
    stranger.conn.neg.client_guid = [7; 16];
    assert_eq!(
        open(
            &mut stranger,
            &file("ls"),
            LEASE,
            &[dhnc(ls.fid), lease([4; 16], 0)]
        )
        .status,
        nf
    );
    // An oplock open reconnected with a lease context: not found.
    assert_eq!(
        open(
            &mut c,
            &file("v1"),
            LEASE,
            &[dhnc(v1.fid), lease([4; 16], 0)]
        )
        .status,
        nf
    );
    // Another user: access denied.
    let sid = c.session_id;
    c.conn.sessions.get_mut(&sid).unwrap().user = "mallory".into();
    assert_eq!(
        open(&mut c, &file("v1"), 0, &[dhnc(v1.fid)]).status,
        status::ACCESS_DENIED
    );
    c.conn.sessions.get_mut(&sid).unwrap().user = "Tester".into();
    // None of that hurt the opens.
    let r = open(&mut c, &file("v2"), 0, &[dh2c(v2.fid, g)]);
    assert_eq!((r.status, r.level), (0, BATCH));
    // A v2 open may come back through a v1 reconnect.
    drop(c);
    let mut c = kit.client();
    assert_eq!(open(&mut c, &file("v2"), 0, &[dhnc(v2.fid)]).status, 0);
    assert_eq!(open(&mut c, &file("v1"), 0, &[dhnc(v1.fid)]).status, 0);
    let r = open(
        &mut c,
        &file("LS"),
        LEASE,
        &[dhnc(ls.fid), lease([4; 16], 0)],
    );
    assert_eq!((r.status, r.level, r.lease_state()), (0, LEASE, Some(RWH)));
}

#[test]
fn logoff_keeps_durable_opens_and_closes_the_rest() {
    let kit = Kit::new();
    let mut c = kit.client();
    let d = open(&mut c, &file("d"), BATCH, &[dhnq()]);
    let plain = open(&mut c, &file("p"), BATCH, &[]);
    assert_eq!(c.logoff(), 0);
    assert!(c.conn.opens.is_empty());
    stored_when(&kit, d.fid.persistent, |r| r.disconnected_at_ms.is_some());
    let _ = plain;
    let mut c2 = kit.client();
    assert_eq!(open(&mut c2, &file("d"), 0, &[dhnc(d.fid)]).status, 0);
    // The plain open is gone: the file opens without a sharing violation.
    assert_eq!(open(&mut c2, &file("p"), 0, &[]).status, 0);
}

#[test]
fn tree_disconnect_closes_durable_opens() {
    let kit = Kit::new();
    let mut c = kit.client();
    let d = open(&mut c, &file("d"), BATCH, &[dhnq()]);
    assert_eq!(
        c.request(crate::wire::Command::TreeDisconnect, &[4, 0, 0, 0])
            .0,
        0
    );
    assert!(stored(&kit, d.fid.persistent).is_none());
}

#[test]
fn a_conflicting_open_closes_a_disconnected_open_it_must_break() {
    let kit = Kit::new();
    let mut c = kit.client();
    let batch = open(&mut c, &file("b"), BATCH, &[dhnq()]);
    let rh = open(&mut c, &file("rh"), LEASE, &[lease([6; 16], RH), dhnq()]);
    let doc = open(
        &mut c,
        &CreateArgs {
            options: create::FILE_DELETE_ON_CLOSE,
            ..file("doc")
        },
        BATCH,
        &[dhnq()],
    );
    assert_eq!(c.write(doc.fid, 0, b"x"), 0);
    drop(c);
    let mut o = kit.client();
    let shared = CreateArgs {
        share: 7,
        disposition: FILE_OPEN,
        ..CreateArgs::new("rh")
    };
    // An attribute-only open breaks nothing: the durable open stays.
    let stat = CreateArgs {
        desired: FILE_READ_ATTRIBUTES,
        ..shared.clone()
    };
    assert_eq!(
        open(
            &mut o,
            &CreateArgs {
                name: "b".into(),
                ..stat.clone()
            },
            0,
            &[]
        )
        .status,
        0
    );
    assert!(stored(&kit, batch.fid.persistent).is_some());
    // The RH open shares nothing: reading needs its handle caching broken, which closes
    // it, and the open goes on.
    let read = CreateArgs {
        desired: FILE_READ_DATA,
        ..shared.clone()
    };
    let r = open(&mut o, &read, 0, &[]);
    assert_eq!(r.status, 0);
    assert!(stored(&kit, rh.fid.persistent).is_none());
    // Any data open breaks a batch oplock: the open is closed, its reconnect fails.
    let b = open(
        &mut o,
        &CreateArgs {
            name: "b".into(),
            ..read.clone()
        },
        0,
        &[],
    );
    assert_eq!(b.status, 0);
    assert!(stored(&kit, batch.fid.persistent).is_none());
    let mut c = kit.client();
    assert_eq!(
        open(&mut c, &file("b"), 0, &[dhnc(batch.fid)]).status,
        status::OBJECT_NAME_NOT_FOUND
    );
    // Delete on close took effect when the purged open closed: the file is new.
    let again = open(&mut o, &file("doc"), BATCH, &[]);
    assert_eq!((again.status, again.action), (0, FILE_CREATED));
}

#[test]
fn the_scavenger_closes_expired_opens() {
    let kit = Kit::new();
    let mut c = kit.client();
    let short = open(&mut c, &file("s"), BATCH, &[dh2q(1, 0, [1; 16])]);
    let long = open(&mut c, &file("l"), BATCH, &[dh2q(0, 0, [2; 16])]);
    drop(c);
    let now = duet_state::unix_time_ms();
    let rep = tick(&kit.server, now + 1_000);
    assert_eq!(rep.expired, 1);
    assert!(stored(&kit, short.fid.persistent).is_none());
    assert!(stored(&kit, long.fid.persistent).is_some());
    let mut c = kit.client();
    assert_eq!(
        open(&mut c, &file("s"), 0, &[dh2c(short.fid, [1; 16])]).status,
        status::OBJECT_NAME_NOT_FOUND
    );
    // Its file is free again.
    assert_eq!(open(&mut c, &file("s"), BATCH, &[]).status, 0);
    assert_eq!(tick(&kit.server, now + 120_000).expired, 1);
    assert!(kit.server.durable.lock().is_empty());
}

#[test]
fn replay_of_a_v2_create() {
    let kit = Kit::new();
    let mut c = kit.client();
    let g = [3u8; 16];
    let first = open(&mut c, &file("r"), BATCH, &[dh2q(0, 0, g)]);
    assert_eq!(first.action, FILE_CREATED);
    let (st, body) = c.create_ex(&file("r"), BATCH, &[dh2q(0, 0, g)], flags::REPLAY_OPERATION);
    let again = resp(st, body);
    assert_eq!(
        (again.status, again.fid, again.action, again.level),
        (0, first.fid, FILE_CREATED, BATCH)
    );
    assert!(again.ctx(b"DH2Q").is_some());
    // Asking for less: the answer says less, the open keeps its batch oplock.
    let (st, body) = c.create_ex(&file("r"), 0, &[dh2q(0, 0, g)], flags::REPLAY_OPERATION);
    let less = resp(st, body);
    assert_eq!((less.status, less.fid, less.level), (0, first.fid, 0));
    assert!(less.ctx(b"DH2Q").is_none());
    // Replayed with a lease the open does not hold: refused.
    let (st, _) = c.create_ex(
        &file("r"),
        LEASE,
        &[lease([1; 16], RH), dh2q(0, 0, g)],
        flags::REPLAY_OPERATION,
    );
    assert_eq!(st, status::ACCESS_DENIED);
    // The same CreateGuid without the replay flag: a duplicate.
    let (st, _) = c.create_ex(&file("r"), BATCH, &[dh2q(0, 0, g)], 0);
    assert_eq!(st, status::DUPLICATE_OBJECTID);
    assert_eq!(c.conn.opens.len(), 1);
}

#[test]
fn an_application_instance_replaces_its_older_open() {
    let kit = Kit::new();
    let mut a = kit.client();
    let app = [0xAA; 16];
    let first = open(
        &mut a,
        &file("f"),
        BATCH,
        &[dh2q(0, 0, [1; 16]), app_instance(app)],
    );
    assert!(first.ctx(b"DH2Q").is_some());
    assert_eq!(
        stored(&kit, first.fid.persistent).unwrap().app_instance_id,
        Some(app)
    );
    // The same instance id from another connection: the first open is closed, no break.
    let mut b = kit.client();
    let second = open(
        &mut b,
        &file("f"),
        BATCH,
        &[dh2q(0, 0, [2; 16]), app_instance(app)],
    );
    assert_eq!((second.status, second.level), (0, BATCH));
    assert!(stored(&kit, first.fid.persistent).is_none());
    assert_eq!(a.close(first.fid), status::FILE_CLOSED);
    // On the same connection too.
    let third = open(
        &mut b,
        &file("g"),
        BATCH,
        &[dh2q(0, 0, [3; 16]), app_instance([0xBB; 16])],
    );
    let fourth = open(
        &mut b,
        &file("g"),
        BATCH,
        &[dh2q(0, 0, [4; 16]), app_instance([0xBB; 16])],
    );
    assert_eq!(fourth.status, 0);
    assert_eq!(b.close(third.fid), status::FILE_CLOSED);
}

#[test]
fn a_reconnect_waits_for_the_old_session_to_let_go() {
    let kit = Kit::new();
    let mut a = kit.client_in_session(1001);
    let d = open(&mut a, &file("f"), BATCH, &[dhnq()]);
    let mut b = kit.client_in_session(1002);
    // The old session is alive: the open is not available.
    assert_eq!(
        open(&mut b, &file("f"), 0, &[dhnc(d.fid)]).status,
        status::OBJECT_NAME_NOT_FOUND
    );
    // A session reconnect took it away (PreviousSessionId); its connection logs it off
    // meanwhile.
    kit.server.sessions.lock().unwrap().remove(1001, a.conn.id);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        a.conn.logoff(1001);
        a
    });
    assert_eq!(open(&mut b, &file("f"), 0, &[dhnc(d.fid)]).status, 0);
    drop(t.join().unwrap());
}

#[test]
fn a_restart_restores_durable_opens() {
    let kit = Kit::new();
    let mut c = kit.client();
    let v1 = open(&mut c, &file("v1"), BATCH, &[dhnq()]);
    let v2 = open(
        &mut c,
        &file("v2"),
        LEASE,
        &[lease([7; 16], RWH), dh2q(0, 0, [7; 16])],
    );
    assert_eq!(c.write(v1.fid, 0, b"durable data"), 0);
    assert_eq!(c.lock(v1.fid, 4, 4, LOCK_EXCLUSIVE_NOW, 0), 0);
    let client_guid = c.conn.neg.client_guid;
    crash(c);
    let kit = kit.restart();
    {
        let t = kit.server.durable.lock();
        assert_eq!(t.len(), 2);
        assert_eq!(t.disconnected(), 2);
    }
    let rec = stored(&kit, v1.fid.persistent).unwrap();
    assert!(rec.disconnected_at_ms.is_some());
    // New ids never collide with restored ones.
    assert!(kit.server.new_id() > v2.fid.persistent.max(v2.fid.volatile));
    let mut c = kit.client();
    c.conn.neg.client_guid = client_guid;
    let r1 = open(&mut c, &file("v1"), 0, &[dhnc(v1.fid)]);
    assert_eq!((r1.status, r1.level, r1.fid), (0, BATCH, v1.fid));
    let r2 = open(
        &mut c,
        &file("v2"),
        LEASE,
        &[lease([7; 16], 0), dh2c(v2.fid, [7; 16])],
    );
    assert_eq!(
        (r2.status, r2.level, r2.lease_state()),
        (0, LEASE, Some(RWH))
    );
    assert_eq!(c.read(v1.fid, 0, 12), (0, b"durable data".to_vec()));
    // The lock came back too.
    let mut o = kit.client();
    let other = open(
        &mut o,
        &CreateArgs {
            desired: FILE_READ_ATTRIBUTES,
            share: 7,
            disposition: FILE_OPEN,
            ..CreateArgs::new("v1")
        },
        0,
        &[],
    );
    assert_eq!(
        o.lock(other.fid, 4, 1, LOCK_EXCLUSIVE_NOW, 0),
        status::LOCK_NOT_GRANTED
    );
    assert_eq!(c.close(v1.fid), 0);
    assert_eq!(c.close(v2.fid), 0);
    assert!(kit.server.store.list_durable_opens().unwrap().is_empty());
}

#[test]
fn a_restored_open_blocks_conflicting_opens_until_it_expires() {
    let kit = Kit::new();
    let mut c = kit.client();
    let d = open(&mut c, &file("f"), BATCH, &[dh2q(2_000, 0, [1; 16])]);
    crash(c);
    let kit = kit.restart();
    let mut o = kit.client();
    let want = CreateArgs {
        share: 7,
        disposition: FILE_OPEN,
        ..CreateArgs::new("f")
    };
    assert_eq!(
        open(&mut o, &want, 0, &[]).status,
        status::SHARING_VIOLATION
    );
    assert!(stored(&kit, d.fid.persistent).is_some());
    let deadline = stored(&kit, d.fid.persistent)
        .unwrap()
        .expires_at_ms()
        .unwrap();
    assert_eq!(tick(&kit.server, deadline - 1).expired, 0);
    assert_eq!(
        open(&mut o, &want, 0, &[]).status,
        status::SHARING_VIOLATION
    );
    assert_eq!(tick(&kit.server, deadline).expired, 1);
    assert_eq!(open(&mut o, &want, 0, &[]).status, 0);
    assert!(stored(&kit, d.fid.persistent).is_none());
}

#[test]
fn restore_drops_records_of_changed_files() {
    let kit = Kit::new();
    let mut c = kit.client();
    let gone = open(&mut c, &file("gone"), BATCH, &[dhnq()]);
    let swapped = open(&mut c, &file("swapped"), BATCH, &[dhnq()]);
    let kept = open(&mut c, &file("kept"), BATCH, &[dhnq()]);
    crash(c);
    std::fs::remove_file(kit.path("gone")).unwrap();
    std::fs::remove_file(kit.path("swapped")).unwrap();
    std::fs::write(kit.path("swapped.tmp"), b"other").unwrap();
    std::fs::rename(kit.path("swapped.tmp"), kit.path("swapped")).unwrap();
    let kit = kit.restart();
    assert!(stored(&kit, gone.fid.persistent).is_none());
    assert!(stored(&kit, swapped.fid.persistent).is_none());
    assert!(stored(&kit, kept.fid.persistent).is_some());
    assert_eq!(kit.server.durable.lock().len(), 1);
}

/// WRITE of one byte with ChannelSequence `csn` (and the replay flag when `replay`).
fn write_csn(c: &mut crate::smb::testkit::Client, fid: FileId, csn: u16, replay: bool) -> u32 {
    let mut msg = c.header(crate::wire::Command::Write);
    msg[8..10].copy_from_slice(&csn.to_le_bytes());
    if replay {
        msg[16..20].copy_from_slice(&flags::REPLAY_OPERATION.to_le_bytes());
    }
    msg.put_u16(49);
    msg.put_u16((HEADER_LEN + 48) as u16);
    msg.put_u32(1);
    msg.put_u64(0);
    fid.put(&mut msg);
    msg.put_u32(0);
    msg.put_u32(0);
    msg.put_u16(0);
    msg.put_u16(0);
    msg.put_u32(0);
    msg.push(b'x');
    c.conn.handle_frame(&msg);
    let r = c.next_message().unwrap();
    u32::from_le_bytes(r[8..12].try_into().unwrap())
}

#[test]
fn channel_sequence_refuses_writes_from_an_older_channel_epoch() {
    let kit = Kit::new();
    let mut c = kit.client();
    let r = open(
        &mut c,
        &CreateArgs {
            share: 7,
            ..file("f")
        },
        BATCH,
        &[dh2q(0, 0, [1; 16])],
    );
    let na = status::FILE_NOT_AVAILABLE;
    // (csn, expected) in order, as smb2.replay.channel-sequence walks them.
    for (csn, want) in [
        (0u16, 0u32),
        (0x8000, na),
        (0xffff, na),
        (0x7fff, 0),
        (0x7ffe, na),
        (0, na),
        (0x8000, 0),
        (0xffff, 0),
        (0, 0),
        (1, 0),
        (0, na),
    ] {
        assert_eq!(write_csn(&mut c, r.fid, csn, false), want, "csn {csn:#x}");
    }
    // The replay flag follows the same window.
    assert_eq!(write_csn(&mut c, r.fid, 1, true), 0);
    assert_eq!(write_csn(&mut c, r.fid, 0x8001, true), na);
    // A READ with a stale sequence is not refused.
    assert_eq!(c.read(r.fid, 0, 1).0, 0);
}

#[test]
fn a_replay_after_another_request_makes_a_new_open() {
    let kit = Kit::new();
    let mut c = kit.client();
    let g = [4u8; 16];
    let shared = CreateArgs {
        share: 7,
        ..file("f")
    };
    // No durability needed for replay detection: an open without an oplock replays too.
    let first = open(&mut c, &shared, 0, &[dh2q(0, 0, g)]);
    assert!(first.ctx(b"DH2Q").is_none());
    let (st, body) = c.create_ex(&shared, 0, &[dh2q(0, 0, g)], flags::REPLAY_OPERATION);
    assert_eq!(resp(st, body).fid, first.fid);
    assert_eq!(c.write(first.fid, 0, b"x"), 0);
    let (st, body) = c.create_ex(&shared, 0, &[dh2q(0, 0, g)], flags::REPLAY_OPERATION);
    let second = resp(st, body);
    assert_eq!(second.status, 0);
    assert_ne!(second.fid, first.fid);
    assert_eq!(c.conn.opens.len(), 2);
    // Closing the new one leaves nothing to replay or to collide with.
    assert_eq!(c.close(second.fid), 0);
    let (st, _) = c.create_ex(&shared, 0, &[dh2q(0, 0, g)], 0);
    assert_eq!(st, 0);
}

#[test]
fn a_pending_create_is_not_replayed() {
    let kit = Kit::new();
    let mut c = kit.client();
    let g = [5u8; 16];
    let req_guid = (c.conn.neg.client_guid, g);
    // As a CREATE that went async waiting for a break leaves it.
    kit.server
        .durable
        .lock()
        .pending
        .insert(req_guid, (c.conn.id, 999_999, duet_state::unix_time_ms()));
    let (st, _) = c.create_ex(&file("f"), 0, &[dh2q(0, 0, g)], flags::REPLAY_OPERATION);
    assert_eq!(st, status::FILE_NOT_AVAILABLE);
    let (st, _) = c.create_ex(&file("f"), 0, &[dh2q(0, 0, g)], 0);
    assert_eq!(st, status::DUPLICATE_OBJECTID);
    // The scavenger forgets stale ones.
    tick(
        &kit.server,
        duet_state::unix_time_ms() + PENDING_FORGET_MS + 1,
    );
    assert!(kit.server.durable.lock().pending.is_empty());
}

#[test]
fn an_open_granted_and_closed_in_one_compound_costs_no_commit() {
    let kit = Kit::new();
    let mut c = kit.client();
    let before = kit.server.store.commit_stats().operations;
    let mut frame = c.header(crate::wire::Command::Create);
    frame.extend_from_slice(&crate::smb::testkit::create_body(
        &file("f"),
        BATCH,
        &[dh2q(0, 0, [1; 16])],
    ));
    while !frame.len().is_multiple_of(8) {
        frame.push(0);
    }
    let next = frame.len() as u32;
    frame[20..24].copy_from_slice(&next.to_le_bytes());
    let mut close = c.header(crate::wire::Command::Close);
    close[16..20].copy_from_slice(&flags::RELATED_OPERATIONS.to_le_bytes());
    close.put_u16(24);
    close.put_u16(0);
    close.put_u32(0);
    FileId::RELATED.put(&mut close);
    frame.extend_from_slice(&close);
    let resp = c.frame(&frame);
    assert!(!resp.is_empty(), "no marker: nothing to wait for");
    assert_eq!(u32::from_le_bytes(resp[8..12].try_into().unwrap()), 0);
    assert_eq!(kit.server.store.commit_stats().operations, before);
    assert!(kit.server.durable.lock().is_empty());
    assert!(kit.server.store.list_durable_opens().unwrap().is_empty());
}

#[test]
fn an_open_whose_break_is_under_way_is_not_kept_when_its_connection_goes() {
    let kit = Kit::new();
    let mut a = kit.client();
    let d = open(
        &mut a,
        &CreateArgs {
            share: 7,
            ..file("f")
        },
        BATCH,
        &[dhnq()],
    );
    let mut b = kit.client();
    // B's open must break A's batch oplock: A is told, B waits.
    let (st, _) = b.create_ex(
        &CreateArgs {
            share: 7,
            ..file("f")
        },
        0,
        &[],
        0,
    );
    assert_eq!(st, status::PENDING);
    let note = a.next_message().expect("a break notification");
    assert_eq!(
        u16::from_le_bytes([note[12], note[13]]),
        crate::wire::Command::OplockBreak as u16
    );
    // A's connection goes before it acknowledges: the open is closed, not parked, and B
    // goes on at once rather than after the break timeout.
    drop(a);
    assert!(kit.server.durable.lock().is_empty());
    for _ in 0..500 {
        if stored(&kit, d.fid.persistent).is_none() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(stored(&kit, d.fid.persistent).is_none());
    b.conn.handle_events();
    let done = b.next_message().expect("B's final response");
    assert_eq!(u32::from_le_bytes(done[8..12].try_into().unwrap()), 0);
}

// ------------------------------------------------------------------ sessions, connections

/// Waits for a change nothing waits for (a removal at logoff or disconnect) to commit.
fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("never happened: {what}");
}

fn session_ids(kit: &Kit) -> Vec<u64> {
    let v = kit.server.store.list_sessions().unwrap();
    v.into_iter().map(|s| s.session_id).collect()
}

fn connection_ids(kit: &Kit) -> Vec<u64> {
    let v = client_connections(&kit.server).unwrap();
    v.into_iter().map(|c| c.id).collect()
}

#[test]
fn a_session_and_its_connection_are_recorded_with_their_first_durable_open() {
    let kit = Kit::new();
    let mut c = kit.client_in_session(0x91);
    c.conn.peer = "192.0.2.7:50123".parse().unwrap();
    c.conn.local = "192.0.2.1:445".parse().unwrap();
    c.conn.neg.client_guid = [0x42; 16];
    // Opens that are not durable cost no commit and record nothing.
    let before = kit.server.store.commit_stats().operations;
    let plain = open(&mut c, &file("plain"), BATCH, &[]);
    assert_eq!(plain.status, 0);
    let refused = open(&mut c, &file("no-oplock"), 0, &[dhnq()]);
    assert!(refused.ctx(b"DHnQ").is_none());
    assert_eq!(kit.server.store.commit_stats().operations, before);
    assert!(session_ids(&kit).is_empty() && connection_ids(&kit).is_empty());
    // The first durable open: session, connection and open are on disk with its response.
    let d = open(&mut c, &file("d"), BATCH, &[dhnq()]);
    assert!(d.ctx(b"DHnQ").is_some());
    assert_eq!(
        kit.server.store.list_sessions().unwrap(),
        [duet_state::SessionRecord {
            session_id: 0x91,
            user: "tester".into(),
            domain: String::new(),
            client_guid: [0x42; 16],
            dialect: crate::smb::DIALECT_311,
        }]
    );
    let conns = client_connections(&kit.server).unwrap();
    assert_eq!(conns.len(), 1);
    let rec = &conns[0];
    assert_eq!(rec.id, c.conn.id);
    assert_eq!(rec.client, "192.0.2.7:50123".parse().unwrap());
    assert_eq!(rec.server, "192.0.2.1:445".parse().unwrap());
    assert_eq!(rec.client_guid, [0x42; 16]);
    assert_eq!(rec.connected_since_ms, c.conn.accepted_ms);
    assert!(stored(&kit, d.fid.persistent).is_some());
    // The next durable open of the same session and connection commits only itself.
    let ops = kit.server.store.commit_stats().operations;
    let d2 = open(&mut c, &file("d2"), BATCH, &[dh2q(0, 0, [2; 16])]);
    assert!(d2.ctx(b"DH2Q").is_some());
    assert_eq!(kit.server.store.commit_stats().operations, ops + 1);
    // Closing them leaves the records of the live session and connection alone.
    assert_eq!(c.close(d.fid), 0);
    assert_eq!(c.close(d2.fid), 0);
    tick(&kit.server, duet_state::unix_time_ms());
    assert_eq!(session_ids(&kit), [0x91]);
    assert_eq!(connection_ids(&kit), [c.conn.id]);
    // The connection goes: so do its record and that of its session (no durable open left).
    drop(c);
    eventually("records removed at teardown", || {
        session_ids(&kit).is_empty() && connection_ids(&kit).is_empty()
    });
}

#[test]
fn a_session_record_stays_while_its_durable_opens_wait_and_goes_with_the_last() {
    let kit = Kit::new();
    // LOGOFF of a session whose durable opens were closed: its record goes.
    let mut a = kit.client_in_session(0x92);
    let gone = open(&mut a, &file("a"), BATCH, &[dhnq()]);
    assert_eq!(session_ids(&kit), [0x92]);
    assert_eq!(a.close(gone.fid), 0);
    assert_eq!(a.logoff(), 0);
    eventually("session record removed at logoff", || {
        session_ids(&kit).is_empty()
    });
    // The connection's record stays until the connection closes.
    assert_eq!(connection_ids(&kit), [a.conn.id]);
    drop(a);
    eventually("connection record removed", || {
        connection_ids(&kit).is_empty()
    });

    // A session that loses its connection with durable opens keeps its record ...
    let mut b = kit.client_in_session(0x93);
    let short = open(&mut b, &file("s"), BATCH, &[dh2q(1, 0, [1; 16])]);
    let long = open(&mut b, &file("l"), BATCH, &[dh2q(0, 0, [2; 16])]);
    drop(b);
    eventually("connection record removed", || {
        connection_ids(&kit).is_empty()
    });
    assert_eq!(session_ids(&kit), [0x93]);
    // ... while any of them is left ...
    let now = duet_state::unix_time_ms();
    assert_eq!(tick(&kit.server, now + 1_000).expired, 1);
    assert!(stored(&kit, short.fid.persistent).is_none());
    assert_eq!(session_ids(&kit), [0x93]);
    // ... and loses it when the scavenger expires the last one.
    assert_eq!(tick(&kit.server, now + 120_000).expired, 1);
    assert!(stored(&kit, long.fid.persistent).is_none());
    eventually("session record removed at expiry", || {
        session_ids(&kit).is_empty()
    });

    // LOGOFF with a durable open: the open is parked, the record kept; a reconnect from
    // another session moves the open, and the old session's record goes.
    let mut c = kit.client_in_session(0x94);
    let d = open(&mut c, &file("d"), BATCH, &[dhnq()]);
    assert_eq!(c.logoff(), 0);
    tick(&kit.server, duet_state::unix_time_ms());
    assert_eq!(session_ids(&kit), [0x94]);
    let mut n = kit.client_in_session(0x95);
    let back = open(&mut n, &file("d"), 0, &[dhnc(d.fid)]);
    assert_eq!(back.status, 0);
    let mut ids = session_ids(&kit);
    ids.sort_unstable();
    assert_eq!(
        ids,
        [0x94, 0x95],
        "the new session is recorded with the reconnect"
    );
    tick(&kit.server, duet_state::unix_time_ms());
    eventually("the old session's record removed", || {
        session_ids(&kit) == [0x95]
    });
    assert_eq!(n.close(d.fid), 0);
}

#[test]
fn a_restart_keeps_the_records_its_restored_opens_need() {
    let kit = Kit::new();
    let mut c = kit.client_in_session(0x96);
    let client_guid = [0x24; 16];
    c.conn.neg.client_guid = client_guid;
    let d = open(&mut c, &file("f"), BATCH, &[dh2q(0, 0, [6; 16])]);
    assert_eq!(session_ids(&kit), [0x96]);
    crash(c);
    let store = &kit.server.store;
    // What a killed daemon leaves behind: its client's connection, and records no
    // restored open needs.
    let conn_rec = |id: u64, guid: Guid| duet_state::ClientConnection {
        id,
        client: "192.0.2.9:49999".parse().unwrap(),
        server: "192.0.2.1:445".parse().unwrap(),
        client_guid: guid,
        connected_since_ms: 1,
    };
    store
        .put_client_connection(&conn_rec(0x300, client_guid))
        .unwrap();
    store
        .put_client_connection(&conn_rec(0x301, [0xee; 16]))
        .unwrap();
    store
        .put_session(&duet_state::SessionRecord {
            session_id: 0x302,
            user: "nobody".into(),
            domain: String::new(),
            client_guid: [0xee; 16],
            dialect: crate::smb::DIALECT_311,
        })
        .unwrap();
    let kit = kit.restart();
    assert_eq!(session_ids(&kit), [0x96]);
    let conns = client_connections(&kit.server).unwrap();
    assert_eq!(conns, [conn_rec(0x300, client_guid)]);
    assert!(kit.server.new_id() > 0x302, "ids stay above recorded ones");
    assert_eq!(kit.server.durable.lock().sessions[&0x96].session_id, 0x96);
    // Nothing changes while the open waits.
    tick(&kit.server, duet_state::unix_time_ms());
    assert_eq!(session_ids(&kit), [0x96]);
    assert_eq!(connection_ids(&kit), [0x300]);
    // The client comes back on a new connection and session.
    let mut n = kit.client_in_session(0x97);
    n.conn.neg.client_guid = client_guid;
    let back = open(&mut n, &file("f"), 0, &[dh2c(d.fid, [6; 16])]);
    assert_eq!((back.status, back.fid), (0, d.fid));
    tick(&kit.server, duet_state::unix_time_ms());
    eventually("the earlier run's records removed", || {
        session_ids(&kit) == [0x97] && connection_ids(&kit) == [n.conn.id]
    });
}

// ------------------------------------------------------------------ renames, streams

#[test]
fn a_renamed_durable_open_is_restored_under_its_new_name() {
    let kit = Kit::new();
    let mut c = kit.client();
    let b = open(&mut c, &file("old.txt"), BATCH, &[dhnq()]);
    let l = open(
        &mut c,
        &file("lease-old"),
        LEASE,
        &[lease([5; 16], RWH), dh2q(0, 0, [5; 16])],
    );
    assert_eq!(c.write(b.fid, 0, b"renamed data"), 0);
    std::fs::create_dir(kit.path("sub")).unwrap();
    assert_eq!(c.rename(b.fid, "sub\\new.txt", false), 0);
    assert_eq!(c.rename(l.fid, "lease-new", false), 0);
    // The records follow before the responses leave.
    assert_eq!(stored(&kit, b.fid.persistent).unwrap().path, "sub/new.txt");
    assert_eq!(stored(&kit, l.fid.persistent).unwrap().path, "lease-new");
    let client_guid = c.conn.neg.client_guid;
    crash(c);
    let kit = kit.restart();
    assert_eq!(kit.server.durable.lock().len(), 2);
    let mut c = kit.client();
    c.conn.neg.client_guid = client_guid;
    let r = open(&mut c, &file("sub\\new.txt"), 0, &[dhnc(b.fid)]);
    assert_eq!((r.status, r.level, r.fid), (0, BATCH, b.fid));
    assert_eq!(c.read(b.fid, 0, 12), (0, b"renamed data".to_vec()));
    // A lease reconnect must name the file as it is called now.
    let wrong = open(
        &mut c,
        &file("lease-old"),
        LEASE,
        &[lease([5; 16], 0), dh2c(l.fid, [5; 16])],
    );
    assert_eq!(wrong.status, status::INVALID_PARAMETER);
    let r = open(
        &mut c,
        &file("lease-new"),
        LEASE,
        &[lease([5; 16], 0), dh2c(l.fid, [5; 16])],
    );
    assert_eq!((r.status, r.lease_state()), (0, Some(RWH)));
    assert_eq!(c.close(b.fid), 0);
    assert_eq!(c.close(l.fid), 0);
    assert!(kit.server.store.list_durable_opens().unwrap().is_empty());
}

#[test]
fn durable_opens_of_streams_are_restored_on_their_streams() {
    let kit = Kit::new();
    if !kit.root.xattrs_supported() {
        // As the other stream tests: named streams need user xattrs.
        eprintln!("skipped: no user xattrs on the test directory");
        return;
    }
    let mut c = kit.client();
    let f = open(&mut c, &file("f"), 0, &[]);
    assert_eq!(c.write(f.fid, 0, b"file data"), 0);
    assert_eq!(c.close(f.fid), 0);
    let s = open(&mut c, &file("f:ads"), BATCH, &[dhnq()]);
    assert!(s.ctx(b"DHnQ").is_some(), "{s:?}");
    assert_eq!(c.write(s.fid, 0, b"stream data"), 0);
    assert_eq!(stored(&kit, s.fid.persistent).unwrap().path, "f:ads");
    // A leased stream, renamed: its record follows the new stream name.
    let l = open(
        &mut c,
        &file("f:two"),
        LEASE,
        &[lease([8; 16], RWH), dh2q(0, 0, [8; 16])],
    );
    assert_eq!(l.lease_state(), Some(RWH));
    assert_eq!(c.write(l.fid, 0, b"leased"), 0);
    assert_eq!(c.rename(l.fid, ":three", false), 0);
    assert_eq!(stored(&kit, l.fid.persistent).unwrap().path, "f:three");
    let client_guid = c.conn.neg.client_guid;
    crash(c);
    let kit = kit.restart();
    assert_eq!(kit.server.durable.lock().len(), 2);
    // The restored opens hold their streams (no sharing), not the file.
    let mut o = kit.client();
    let want = |name: &str| CreateArgs {
        desired: FILE_READ_DATA,
        share: 7,
        disposition: FILE_OPEN,
        ..CreateArgs::new(name)
    };
    assert_eq!(
        open(&mut o, &want("f:ads"), 0, &[]).status,
        status::SHARING_VIOLATION
    );
    let plain = open(&mut o, &want("f"), 0, &[]);
    assert_eq!(plain.status, 0);
    assert_eq!(o.read(plain.fid, 0, 9), (0, b"file data".to_vec()));
    assert_eq!(o.close(plain.fid), 0);
    // The client reconnects both and reads the streams' data.
    let mut c = kit.client();
    c.conn.neg.client_guid = client_guid;
    let r = open(&mut c, &file("f:ads"), 0, &[dhnc(s.fid)]);
    assert_eq!((r.status, r.fid), (0, s.fid));
    assert_eq!(c.read(s.fid, 0, 11), (0, b"stream data".to_vec()));
    let r = open(
        &mut c,
        &file("f:three"),
        LEASE,
        &[lease([8; 16], 0), dh2c(l.fid, [8; 16])],
    );
    assert_eq!((r.status, r.lease_state()), (0, Some(RWH)));
    assert_eq!(c.read(l.fid, 0, 6), (0, b"leased".to_vec()));
    assert_eq!(c.close(s.fid), 0);
    assert_eq!(c.close(l.fid), 0);
    assert!(kit.server.store.list_durable_opens().unwrap().is_empty());
}

#[test]
fn malformed_recorded_paths_are_dropped_at_restore_without_a_panic() {
    for bad in [":ads", "f:", ":"] {
        let kit = Kit::new();
        let mut c = kit.client();
        let d = open(&mut c, &file("f"), BATCH, &[dhnq()]);
        crash(c);
        let mut rec = stored(&kit, d.fid.persistent).unwrap();
        rec.path = bad.into();
        kit.server.store.put_durable_open(&rec).unwrap();
        let kit = kit.restart();
        assert!(kit.server.durable.lock().is_empty(), "{bad}");
        assert!(stored(&kit, d.fid.persistent).is_none(), "{bad}");
    }
    assert_eq!(split_record_path("a/b:c"), Ok(("a/b", Some("c"))));
    assert_eq!(split_record_path("a/b"), Ok(("a/b", None)));
}

#[test]
fn after_a_restart_only_opens_connected_at_the_crash_refuse_conflicting_opens() {
    let kit = Kit::new();
    // One client had already gone (its open is parked: the ordinary rules apply to it)...
    let mut gone = kit.client();
    let parked = open(
        &mut gone,
        &file("parked"),
        BATCH,
        &[dh2q(60_000, 0, [3; 16])],
    );
    drop(gone);
    stored_when(&kit, parked.fid.persistent, |r| {
        r.disconnected_at_ms.is_some()
    });
    // ...the other was still connected when the server died.
    let mut live = kit.client();
    let held = open(&mut live, &file("held"), BATCH, &[dh2q(60_000, 0, [4; 16])]);
    crash(live);
    let kit = kit.restart();
    let mut o = kit.client();
    let exclusive = |name: &str| CreateArgs {
        share: 0,
        disposition: FILE_OPEN,
        ..CreateArgs::new(name)
    };
    assert_eq!(
        open(&mut o, &exclusive("held"), 0, &[]).status,
        status::SHARING_VIOLATION,
        "the server went away, not the client: its open waits for it"
    );
    let r = open(&mut o, &exclusive("parked"), 0, &[]);
    assert_eq!(
        r.status, 0,
        "a conflicting open closes a parked durable open"
    );
    assert!(stored(&kit, parked.fid.persistent).is_none());
    assert!(stored(&kit, held.fid.persistent).is_some());
}

#[test]
fn a_durable_open_of_a_file_created_read_only_is_restored_writable() {
    let kit = Kit::new();
    let mut c = kit.client();
    let d = open(
        &mut c,
        &CreateArgs {
            attributes: FILE_ATTRIBUTE_READONLY,
            disposition: FILE_CREATE,
            ..CreateArgs::new("ro.bin")
        },
        BATCH,
        &[dhnq()],
    );
    assert_eq!(d.status, 0);
    assert_eq!(c.write(d.fid, 0, b"before"), 0);
    let client_guid = c.conn.neg.client_guid;
    crash(c);
    let kit = kit.restart();
    assert!(
        stored(&kit, d.fid.persistent).is_some(),
        "restored, not dropped"
    );
    let mut c = kit.client();
    c.conn.neg.client_guid = client_guid;
    let back = open(&mut c, &file("ro.bin"), 0, &[dhnc(d.fid)]);
    assert_eq!(back.status, 0);
    assert_eq!(c.write(d.fid, 6, b" after"), 0, "its creator still writes");
    assert_eq!(c.read(d.fid, 0, 12), (0, b"before after".to_vec()));
}
