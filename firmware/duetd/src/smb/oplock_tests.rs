//! Tests of oplocks and leases: real `Conn`s of one `Kit` server exchange CREATE, WRITE,
//! LOCK, SET_INFO, CLOSE and OPLOCK_BREAK messages, and the break notifications each
//! connection's outbox receives are checked, as smbtorture's smb2.oplock and smb2.lease do.

use std::collections::HashMap;

use tokio::sync::mpsc::UnboundedReceiver;

use super::*;
use crate::smb::testkit::Kit;
use crate::smb::{Session, Tree, TreeKind, DIALECT_311};
use crate::wire::{le_u16, le_u32, le_u64};

const SESSION_ID: u64 = 0x55;
const TREE_ID: u32 = 9;
const ALL: u32 = 0x001F_01FF;
const SHARE_ALL: u32 = 7;
const OPEN_IF: u32 = 3;
const OVERWRITE_IF: u32 = 5;

/// One message a connection sent.
#[derive(Debug, Clone)]
struct Msg {
    command: u16,
    mid: u64,
    status: u32,
    flags: u32,
    session: u64,
    tree: u32,
    body: Vec<u8>,
}

impl Msg {
    fn parse(m: &[u8]) -> Msg {
        Msg {
            command: le_u16(m, 12).unwrap(),
            status: le_u32(m, 8).unwrap(),
            flags: le_u32(m, 16).unwrap(),
            mid: le_u64(m, 24).unwrap(),
            tree: le_u32(m, 36).unwrap(),
            session: le_u64(m, 40).unwrap(),
            body: m[HEADER_LEN..].to_vec(),
        }
    }
    fn is_interim(&self) -> bool {
        self.status == status::PENDING
    }
}

/// A break notification as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Break {
    Oplock {
        fid: FileId,
        level: u8,
    },
    Lease {
        key: [u8; 16],
        from: u32,
        to: u32,
        ack: bool,
        epoch: u16,
    },
}

/// What a CREATE asks.
#[derive(Clone)]
struct Ask {
    name: String,
    oplock: u8,
    lease: Option<(u8, u32)>,
    /// v2 lease: (epoch, parent key byte).
    v2: Option<(u16, Option<u8>)>,
    access: u32,
    share: u32,
    disposition: u32,
    options: u32,
}

fn ask(name: &str) -> Ask {
    Ask {
        name: name.into(),
        oplock: LEVEL_NONE,
        lease: None,
        v2: None,
        access: ALL,
        share: SHARE_ALL,
        disposition: OPEN_IF,
        options: 0,
    }
}

impl Ask {
    fn oplock(mut self, level: u8) -> Ask {
        self.oplock = level;
        self
    }
    fn lease(mut self, key: u8, state: u32) -> Ask {
        self.oplock = LEVEL_LEASE;
        self.lease = Some((key, state));
        self
    }
    fn v2(mut self, epoch: u16, parent: Option<u8>) -> Ask {
        self.v2 = Some((epoch, parent));
        self
    }
    fn access(mut self, access: u32) -> Ask {
        self.access = access;
        self
    }
    fn share(mut self, share: u32) -> Ask {
        self.share = share;
        self
    }
    fn disposition(mut self, d: u32) -> Ask {
        self.disposition = d;
        self
    }
    fn options(mut self, o: u32) -> Ask {
        self.options = o;
        self
    }
}

fn lease_key(k: u8) -> [u8; 16] {
    let mut key = [k; 16];
    key[15] = !k;
    key
}

/// A successful CREATE.
#[derive(Debug, Clone)]
struct Opened {
    fid: FileId,
    level: u8,
    /// The lease response: (key, state, flags, epoch, version).
    lease: Option<([u8; 16], u32, u32, u16, u8)>,
}

/// One client connection.
struct Peer {
    conn: Conn,
    rx: UnboundedReceiver<Vec<u8>>,
    mid: u64,
    got: Vec<Msg>,
}

impl Peer {
    fn new(kit: &Kit, client_guid: u8) -> Peer {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let addr = "127.0.0.1:445".parse().unwrap();
        let mut conn = Conn::new(kit.server.clone(), addr, addr, Outbox::new(tx));
        conn.neg.done = true;
        conn.neg.dialect = DIALECT_311;
        conn.neg.client_guid = [client_guid; 16];
        let mut trees = HashMap::new();
        trees.insert(
            TREE_ID,
            Tree {
                id: TREE_ID,
                share_name: "share".into(),
                kind: TreeKind::Disk {
                    root: kit.root.clone(),
                    read_only: false,
                    stable_writes: false,
                },
                maximal_access: ALL,
            },
        );
        conn.sessions.insert(
            SESSION_ID,
            Session {
                id: SESSION_ID,
                state: session::SessionState::Valid,
                user: "tester".into(),
                domain: String::new(),
                signer: None,
                signing_required: false,
                encryption: None,
                preauth: None,
                trees,
                next_tree_id: TREE_ID + 1,
            },
        );
        Peer {
            conn,
            rx,
            mid: 0,
            got: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Ok(m) = self.rx.try_recv() {
            self.got.push(Msg::parse(&m));
        }
    }

    /// Runs what other connections posted to this one (retries of waiting requests).
    fn pump(&mut self) {
        self.conn.handle_events();
        self.drain();
    }

    fn send(&mut self, cmd: Command, body: &[u8]) -> u64 {
        let mut msg = vec![0u8; HEADER_LEN];
        msg[0..4].copy_from_slice(&[0xFE, b'S', b'M', b'B']);
        msg[4..6].copy_from_slice(&64u16.to_le_bytes());
        msg[6..8].copy_from_slice(&1u16.to_le_bytes());
        msg[12..14].copy_from_slice(&(cmd as u16).to_le_bytes());
        msg[14..16].copy_from_slice(&64u16.to_le_bytes());
        msg[24..32].copy_from_slice(&self.mid.to_le_bytes());
        msg[36..40].copy_from_slice(&TREE_ID.to_le_bytes());
        msg[40..48].copy_from_slice(&SESSION_ID.to_le_bytes());
        let mid = self.mid;
        self.mid += 1;
        msg.extend_from_slice(body);
        self.conn.handle_frame(&msg);
        self.drain();
        mid
    }

    /// The final response to request `mid`, if it came (an interim STATUS_PENDING is not).
    fn response(&mut self, mid: u64) -> Option<Msg> {
        self.drain();
        let i = self
            .got
            .iter()
            .position(|m| m.mid == mid && !m.is_interim())?;
        Some(self.got.remove(i))
    }

    /// Whether request `mid` was answered STATUS_PENDING.
    fn went_async(&self, mid: u64) -> bool {
        self.got
            .iter()
            .any(|m| m.mid == mid && m.is_interim() && m.flags & flags::ASYNC_COMMAND != 0)
    }

    /// The break notifications received so far (taken).
    fn breaks(&mut self) -> Vec<Break> {
        self.drain();
        let (brk, rest): (Vec<Msg>, Vec<Msg>) = self.got.drain(..).partition(|m| m.mid == u64::MAX);
        self.got = rest;
        brk.into_iter()
            .map(|m| {
                assert_eq!(m.command, Command::OplockBreak as u16);
                assert_eq!(m.tree, 0);
                assert_eq!(m.flags & flags::SIGNED, 0, "breaks are not signed");
                match le_u16(&m.body, 0).unwrap() {
                    24 => {
                        assert_eq!(m.session, SESSION_ID);
                        Break::Oplock {
                            level: m.body[2],
                            fid: FileId {
                                persistent: le_u64(&m.body, 8).unwrap(),
                                volatile: le_u64(&m.body, 16).unwrap(),
                            },
                        }
                    }
                    44 => {
                        assert_eq!(m.session, 0);
                        Break::Lease {
                            epoch: le_u16(&m.body, 2).unwrap(),
                            ack: le_u32(&m.body, 4).unwrap() & 1 != 0,
                            key: m.body[8..24].try_into().unwrap(),
                            from: le_u32(&m.body, 24).unwrap(),
                            to: le_u32(&m.body, 28).unwrap(),
                        }
                    }
                    n => panic!("break body size {n}"),
                }
            })
            .collect()
    }

    fn create_send(&mut self, a: &Ask) -> u64 {
        let b = create_body(a);
        self.send(Command::Create, &b)
    }
}

/// A CREATE request body.
fn create_body(a: &Ask) -> Vec<u8> {
    let name: Vec<u8> = a
        .name
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let mut ctx = Vec::new();
    if let Some((k, state)) = a.lease {
        let mut data = Vec::new();
        data.extend_from_slice(&lease_key(k));
        data.put_u32(state);
        let (flags, parent, epoch) = match a.v2 {
            Some((epoch, parent)) => (
                parent.map_or(0, |_| 4u32),
                parent.map(lease_key),
                Some(epoch),
            ),
            None => (0, None, None),
        };
        data.put_u32(flags);
        data.put_u64(0);
        if let Some(epoch) = epoch {
            data.extend_from_slice(&parent.unwrap_or_default());
            data.put_u16(epoch);
            data.put_u16(0);
        }
        ctx.put_u32(0);
        ctx.put_u16(16);
        ctx.put_u16(4);
        ctx.put_u16(0);
        ctx.put_u16(24);
        ctx.put_u32(data.len() as u32);
        ctx.extend_from_slice(b"RqLs");
        ctx.put_u32(0);
        ctx.extend_from_slice(&data);
    }
    let mut b = Vec::new();
    b.put_u16(57);
    b.put_u8(0);
    b.put_u8(a.oplock);
    b.put_u32(2);
    b.put_u64(0);
    b.put_u64(0);
    b.put_u32(a.access);
    b.put_u32(0);
    b.put_u32(a.share);
    b.put_u32(a.disposition);
    b.put_u32(a.options);
    b.put_u16((HEADER_LEN + 56) as u16);
    b.put_u16(name.len() as u16);
    let name_end = 56 + name.len();
    let ctx_at = name_end.div_ceil(8) * 8;
    b.put_u32(if ctx.is_empty() {
        0
    } else {
        (HEADER_LEN + ctx_at) as u32
    });
    b.put_u32(ctx.len() as u32);
    b.extend_from_slice(&name);
    if ctx.is_empty() {
        if name.is_empty() {
            b.push(0);
        }
    } else {
        b.resize(ctx_at, 0);
        b.extend_from_slice(&ctx);
    }
    b
}

impl Peer {
    /// The outcome of CREATE `mid`; None while it waits.
    fn created(&mut self, mid: u64) -> Option<Result<Opened, u32>> {
        let m = self.response(mid)?;
        if m.status != status::SUCCESS {
            return Some(Err(m.status));
        }
        let b = &m.body;
        let ctx_off = le_u32(b, 80).unwrap() as usize;
        let ctx_len = le_u32(b, 84).unwrap() as usize;
        let mut lease = None;
        if ctx_len > 0 {
            let ctxs = &b[ctx_off - HEADER_LEN..ctx_off - HEADER_LEN + ctx_len];
            for (name, data) in super::super::create::parse_contexts(ctxs).unwrap() {
                if name == b"RqLs" {
                    let key: [u8; 16] = data[..16].try_into().unwrap();
                    let state = le_u32(data, 16).unwrap();
                    let flags = le_u32(data, 20).unwrap();
                    lease = Some(if data.len() >= 52 {
                        (key, state, flags, le_u16(data, 48).unwrap(), 2)
                    } else {
                        (key, state, flags, 0, 1)
                    });
                }
            }
        }
        Some(Ok(Opened {
            fid: FileId {
                persistent: le_u64(b, 64).unwrap(),
                volatile: le_u64(b, 72).unwrap(),
            },
            level: b[2],
            lease,
        }))
    }

    fn open(&mut self, a: &Ask) -> Opened {
        let mid = self.create_send(a);
        self.created(mid)
            .expect("answered at once")
            .expect("opened")
    }

    fn close(&mut self, fid: FileId) -> u32 {
        let mut b = Vec::new();
        b.put_u16(24);
        b.put_u16(0);
        b.put_u32(0);
        fid.put(&mut b);
        let mid = self.send(Command::Close, &b);
        self.response(mid).unwrap().status
    }

    fn write(&mut self, fid: FileId, data: &[u8]) -> u32 {
        let mut b = Vec::new();
        b.put_u16(49);
        b.put_u16((HEADER_LEN + 48) as u16);
        b.put_u32(data.len() as u32);
        b.put_u64(0);
        fid.put(&mut b);
        b.put_u32(0);
        b.put_u32(0);
        b.put_u16(0);
        b.put_u16(0);
        b.put_u32(0);
        b.extend_from_slice(data);
        let mid = self.send(Command::Write, &b);
        self.response(mid).unwrap().status
    }

    fn lock(&mut self, fid: FileId, offset: u64, length: u64) -> u32 {
        let mut b = Vec::new();
        b.put_u16(48);
        b.put_u16(1);
        b.put_u32(0);
        fid.put(&mut b);
        b.put_u64(offset);
        b.put_u64(length);
        b.put_u32(0x12); // exclusive, fail immediately
        b.put_u32(0);
        let mid = self.send(Command::Lock, &b);
        self.response(mid).unwrap().status
    }

    fn set_info_send(&mut self, fid: FileId, class: u8, data: &[u8]) -> u64 {
        let mut b = Vec::new();
        b.put_u16(33);
        b.put_u8(1);
        b.put_u8(class);
        b.put_u32(data.len() as u32);
        b.put_u16((HEADER_LEN + 32) as u16);
        b.put_u16(0);
        b.put_u32(0);
        fid.put(&mut b);
        b.extend_from_slice(data);
        self.send(Command::SetInfo, &b)
    }

    fn rename_send(&mut self, fid: FileId, to: &str) -> u64 {
        let name: Vec<u8> = to.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let mut d = vec![1u8, 0, 0, 0, 0, 0, 0, 0];
        d.put_u64(0);
        d.put_u32(name.len() as u32);
        d.extend_from_slice(&name);
        d.resize(d.len().max(24), 0);
        self.set_info_send(fid, 10, &d)
    }

    fn set_eof(&mut self, fid: FileId, size: u64) -> u32 {
        let mid = self.set_info_send(fid, 20, &size.to_le_bytes());
        self.response(mid).unwrap().status
    }

    fn set_delete(&mut self, fid: FileId) -> u32 {
        let mid = self.set_info_send(fid, 13, &[1]);
        self.response(mid).unwrap().status
    }

    /// An oplock break acknowledgement: (status, level in the response).
    fn ack_oplock(&mut self, fid: FileId, level: u8) -> (u32, u8) {
        let mut b = Vec::new();
        b.put_u16(24);
        b.put_u8(level);
        b.put_u8(0);
        b.put_u32(0);
        fid.put(&mut b);
        let mid = self.send(Command::OplockBreak, &b);
        let m = self.response(mid).unwrap();
        (m.status, m.body.get(2).copied().unwrap_or(0))
    }

    /// A lease break acknowledgement: (status, state in the response).
    fn ack_lease(&mut self, key: u8, state: u32) -> (u32, u32) {
        let mut b = Vec::new();
        b.put_u16(36);
        b.put_u16(0);
        b.put_u32(0);
        b.extend_from_slice(&lease_key(key));
        b.put_u32(state);
        b.put_u64(0);
        let mid = self.send(Command::OplockBreak, &b);
        let m = self.response(mid).unwrap();
        (m.status, le_u32(&m.body, 24).unwrap_or(0))
    }

    fn cancel(&mut self, mid: u64) {
        let mut msg = vec![0u8; HEADER_LEN];
        msg[0..4].copy_from_slice(&[0xFE, b'S', b'M', b'B']);
        msg[4..6].copy_from_slice(&64u16.to_le_bytes());
        msg[12..14].copy_from_slice(&(Command::Cancel as u16).to_le_bytes());
        msg[24..32].copy_from_slice(&mid.to_le_bytes());
        msg[40..48].copy_from_slice(&SESSION_ID.to_le_bytes());
        msg.extend_from_slice(&[4, 0, 0, 0]);
        self.conn.handle_frame(&msg);
        self.drain();
    }
}

fn lease_break(key: u8, from: u32, to: u32, ack: bool) -> Break {
    Break::Lease {
        key: lease_key(key),
        from,
        to,
        ack,
        epoch: 0,
    }
}

/// Lease breaks without their epoch (v1 leases carry 0).
fn no_epoch(b: Vec<Break>) -> Vec<Break> {
    b.into_iter()
        .map(|b| match b {
            Break::Lease {
                key, from, to, ack, ..
            } => Break::Lease {
                key,
                from,
                to,
                ack,
                epoch: 0,
            },
            o => o,
        })
        .collect()
}

const RWH: u32 = READ | WRITE | HANDLE;
const RH: u32 = READ | HANDLE;
const RW: u32 = READ | WRITE;
const R: u32 = READ;

#[test]
fn a_batch_oplock_breaks_to_level_two_and_the_second_open_waits_for_the_ack() {
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let mut b = Peer::new(&kit, 2);
    let h1 = a.open(&ask("f").oplock(LEVEL_BATCH));
    assert_eq!(h1.level, LEVEL_BATCH);
    let mid = b.create_send(&ask("f").oplock(LEVEL_BATCH));
    assert!(b.went_async(mid), "the second open waits for the break");
    assert!(b.created(mid).is_none());
    assert_eq!(
        a.breaks(),
        vec![Break::Oplock {
            fid: h1.fid,
            level: LEVEL_II
        }]
    );
    assert_eq!(a.ack_oplock(h1.fid, LEVEL_II), (status::SUCCESS, LEVEL_II));
    b.pump();
    let h2 = b.created(mid).unwrap().unwrap();
    assert_eq!(h2.level, LEVEL_II);
    // A write through either breaks both level II oplocks to none, the writer's own too,
    // and nobody acknowledges that.
    assert_eq!(b.write(h2.fid, b"x"), status::SUCCESS);
    assert_eq!(
        a.breaks(),
        vec![Break::Oplock {
            fid: h1.fid,
            level: LEVEL_NONE
        }]
    );
    assert_eq!(
        b.breaks(),
        vec![Break::Oplock {
            fid: h2.fid,
            level: LEVEL_NONE
        }]
    );
    assert_eq!(
        a.ack_oplock(h1.fid, LEVEL_NONE).0,
        status::INVALID_OPLOCK_PROTOCOL
    );
    assert_eq!(b.write(h2.fid, b"y"), status::SUCCESS);
    assert!(a.breaks().is_empty() && b.breaks().is_empty());
}

#[test]
fn share_mode_conflicts_break_batch_first_and_leave_exclusive_alone() {
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let mut b = Peer::new(&kit, 2);
    // Exclusive, sharing nothing: the second open is refused at once, nothing breaks.
    let h1 = a.open(&ask("x").oplock(LEVEL_EXCLUSIVE).share(0));
    assert_eq!(h1.level, LEVEL_EXCLUSIVE);
    let mid = b.create_send(&ask("x"));
    assert_eq!(
        b.created(mid).unwrap().unwrap_err(),
        status::SHARING_VIOLATION
    );
    assert!(a.breaks().is_empty());
    assert_eq!(a.close(h1.fid), 0);
    // Batch, sharing nothing: the holder is asked to give up its handle first, so the open
    // waits; with the holder still open it is a sharing violation after the ack.
    let h1 = a.open(&ask("b").oplock(LEVEL_BATCH).share(0));
    let mid = b.create_send(&ask("b"));
    assert!(b.went_async(mid));
    assert_eq!(
        a.breaks(),
        vec![Break::Oplock {
            fid: h1.fid,
            level: LEVEL_II
        }]
    );
    assert_eq!(a.ack_oplock(h1.fid, LEVEL_II), (status::SUCCESS, LEVEL_II));
    b.pump();
    assert_eq!(
        b.created(mid).unwrap().unwrap_err(),
        status::SHARING_VIOLATION
    );
    // Level II is not broken by a mere open.
    let mid = b.create_send(&ask("b"));
    assert_eq!(
        b.created(mid).unwrap().unwrap_err(),
        status::SHARING_VIOLATION
    );
    assert!(a.breaks().is_empty());
}

#[test]
fn closing_instead_of_acknowledging_lets_the_waiting_open_have_the_oplock() {
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let mut b = Peer::new(&kit, 2);
    let h1 = a.open(&ask("f").oplock(LEVEL_BATCH).share(0));
    let mid = b.create_send(&ask("f").oplock(LEVEL_BATCH).share(0));
    assert_eq!(a.breaks().len(), 1);
    assert_eq!(a.close(h1.fid), 0);
    b.pump();
    assert_eq!(b.created(mid).unwrap().unwrap().level, LEVEL_BATCH);
}

#[test]
fn stat_opens_neither_break_nor_get_oplocks_on_existing_files() {
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let mut b = Peer::new(&kit, 2);
    let attrs = FILE_READ_ATTRIBUTES | FILE_WRITE_ATTRIBUTES | SYNCHRONIZE;
    // An attribute-only open that creates the file gets its oplock.
    let h1 = a.open(&ask("s").oplock(LEVEL_BATCH).access(attrs).disposition(2));
    assert_eq!(h1.level, LEVEL_BATCH);
    let h2 = b.open(&ask("s").oplock(LEVEL_BATCH).access(attrs));
    assert_eq!(h2.level, LEVEL_NONE);
    assert!(a.breaks().is_empty());
    assert_eq!(b.close(h2.fid), 0);
    // READ_CONTROL is no stat access for oplocks: it breaks.
    let mid = b.create_send(&ask("s").access(READ_CONTROL));
    assert_eq!(
        a.breaks(),
        vec![Break::Oplock {
            fid: h1.fid,
            level: LEVEL_II
        }]
    );
    a.ack_oplock(h1.fid, LEVEL_II);
    b.pump();
    let rc = b.created(mid).unwrap().unwrap();
    assert_eq!(b.close(rc.fid), 0);
    // The stat open holding level II is another open: no batch beside it (oplock.batch9).
    let full = b.open(&ask("s").oplock(LEVEL_BATCH));
    assert_eq!(full.level, LEVEL_II);
    assert_eq!(b.close(full.fid), 0);
    // An overwrite is never a stat open: it breaks level II to none.
    let h3 = b.open(
        &ask("s")
            .access(attrs)
            .disposition(OVERWRITE_IF)
            .oplock(LEVEL_II),
    );
    assert_eq!(h3.level, LEVEL_II);
    assert_eq!(
        a.breaks(),
        vec![Break::Oplock {
            fid: h1.fid,
            level: LEVEL_NONE
        }]
    );
}

#[test]
fn an_oplock_is_level_two_beside_other_opens_and_none_beside_a_handle_lease() {
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let plain = a.open(&ask("f"));
    assert_eq!(plain.level, LEVEL_NONE);
    assert_eq!(a.open(&ask("f").oplock(LEVEL_BATCH)).level, LEVEL_II);
    assert_eq!(a.open(&ask("f").oplock(LEVEL_EXCLUSIVE)).level, LEVEL_II);
    // A write through the plain open breaks both level II oplocks.
    assert_eq!(a.write(plain.fid, b"x"), 0);
    assert_eq!(a.breaks().len(), 2);
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    a.open(&ask("g").lease(1, RH));
    assert_eq!(a.open(&ask("g").oplock(LEVEL_BATCH)).level, LEVEL_NONE);
    // Byte-range locks rule out read caching for new opens.
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let h = a.open(&ask("l"));
    assert_eq!(a.lock(h.fid, 0, 1), 0);
    assert_eq!(a.open(&ask("l").oplock(LEVEL_II)).level, LEVEL_NONE);
}

#[test]
fn oplock_acknowledgement_errors() {
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let mut b = Peer::new(&kit, 2);
    let h1 = a.open(&ask("f").oplock(LEVEL_EXCLUSIVE));
    // Not breaking.
    assert_eq!(
        a.ack_oplock(h1.fid, LEVEL_II).0,
        status::INVALID_OPLOCK_PROTOCOL
    );
    // Unknown handle.
    let bogus = FileId {
        persistent: 1,
        volatile: 2,
    };
    assert_eq!(a.ack_oplock(bogus, LEVEL_II).0, status::FILE_CLOSED);
    // Exclusive acknowledged as batch: refused, and the oplock is gone.
    let mid = b.create_send(&ask("f"));
    assert_eq!(a.breaks().len(), 1);
    assert_eq!(
        a.ack_oplock(h1.fid, LEVEL_BATCH).0,
        status::INVALID_OPLOCK_PROTOCOL
    );
    b.pump();
    assert!(b.created(mid).unwrap().is_ok());
    assert_eq!(a.write(h1.fid, b"x"), 0);
    assert!(a.breaks().is_empty() && b.breaks().is_empty());
    // A lease level in an oplock acknowledgement: STATUS_INVALID_PARAMETER.
    let h2 = a.open(&ask("g").oplock(LEVEL_BATCH));
    b.create_send(&ask("g"));
    assert_eq!(a.breaks().len(), 1);
    assert_eq!(
        a.ack_oplock(h2.fid, LEVEL_LEASE).0,
        status::INVALID_PARAMETER
    );
    // A break to none acknowledged as level II ends at none.
    let h3 = a.open(&ask("h").oplock(LEVEL_BATCH));
    b.create_send(&ask("h").disposition(OVERWRITE_IF));
    assert_eq!(
        a.breaks(),
        vec![Break::Oplock {
            fid: h3.fid,
            level: LEVEL_NONE
        }]
    );
    assert_eq!(
        a.ack_oplock(h3.fid, LEVEL_II),
        (status::SUCCESS, LEVEL_NONE)
    );
}

#[test]
fn an_unacknowledged_break_times_out_after_35_seconds() {
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let h1 = a.open(&ask("f").oplock(LEVEL_BATCH));
    // The same connection opens again: it breaks its own first open and waits.
    let mid = a.create_send(&ask("f").oplock(LEVEL_BATCH));
    assert_eq!(a.breaks().len(), 1);
    let now = crate::util::monotonic_ms();
    tick(&kit.server, now + BREAK_TIMEOUT_MS - 2000);
    a.pump();
    assert!(
        a.created(mid).is_none(),
        "still waiting before the deadline"
    );
    tick(&kit.server, now + BREAK_TIMEOUT_MS + 1000);
    a.pump();
    assert_eq!(a.created(mid).unwrap().unwrap().level, LEVEL_II);
    // The first open's oplock is gone: a late acknowledgement is refused.
    assert_eq!(
        a.ack_oplock(h1.fid, LEVEL_II).0,
        status::INVALID_OPLOCK_PROTOCOL
    );
}

#[test]
fn writes_locks_and_size_changes_break_read_caching_but_not_the_writers_own() {
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let mut b = Peer::new(&kit, 2);
    // A batch holder writing, locking and truncating breaks nothing.
    let h = a.open(&ask("w").oplock(LEVEL_BATCH));
    assert_eq!(a.write(h.fid, b"data"), 0);
    assert_eq!(a.lock(h.fid, 0, 1), 0);
    assert_eq!(a.set_eof(h.fid, 1), 0);
    assert!(a.breaks().is_empty());
    // Two R leases and a level II oplock: a lock through one lease breaks the other lease and
    // the oplock, not its own lease.
    let l1 = a.open(&ask("r").lease(1, R));
    let l2 = b.open(&ask("r").lease(2, R));
    let s = b.open(&ask("r").oplock(LEVEL_II));
    assert_eq!(s.level, LEVEL_II);
    assert_eq!(a.lock(l1.fid, 0, 1), 0);
    assert!(a.breaks().is_empty());
    let mut got = b.breaks();
    got.sort_by_key(|b| format!("{b:?}"));
    assert_eq!(
        got,
        vec![
            lease_break(2, R, 0, false),
            Break::Oplock {
                fid: s.fid,
                level: LEVEL_NONE
            }
        ]
    );
    // A size change through the other lease breaks the first one.
    assert_eq!(b.set_eof(l2.fid, 0), 0);
    assert_eq!(no_epoch(a.breaks()), vec![lease_break(1, R, 0, false)]);
}

#[test]
fn lease_grants_follow_the_requested_state_and_upgrade_only_strictly() {
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    // Only states with read caching are granted (H, W and HW alone are not).
    for (asked, got) in [
        (0, 0),
        (R, R),
        (HANDLE, 0),
        (WRITE, 0),
        (RH, RH),
        (RW, RW),
        (HANDLE | WRITE, 0),
        (RWH, RWH),
    ] {
        let h = a.open(&ask("f").lease(1, asked));
        assert_eq!(h.level, LEVEL_LEASE);
        let (key, state, flags, _, version) = h.lease.unwrap();
        assert_eq!(
            (key, state, flags, version),
            (lease_key(1), got, 0, 1),
            "asked {asked:#x}"
        );
        assert_eq!(a.close(h.fid), 0);
    }
    // With the lease held: RH -> RW is no upgrade (RH stays), RH -> RWH is, RWH -> RH keeps RWH.
    let h = a.open(&ask("g").lease(2, RH));
    let mut g = vec![h.fid];
    for (asked, now) in [(RW, RH), (RWH, RWH), (RH, RWH)] {
        let o = a.open(&ask("g").lease(2, asked));
        assert_eq!(o.lease.unwrap().1, now, "asked {asked:#x}");
        g.push(o.fid);
    }
    assert!(a.breaks().is_empty());
    // Another lease on the file prevents W: the upgrade to RWH does not happen at all.
    let k = a.open(&ask("k").lease(3, R));
    let other = a.open(&ask("k").lease(4, R));
    assert_eq!(other.lease.unwrap().1, R);
    assert_eq!(a.open(&ask("k").lease(3, RWH)).lease.unwrap().1, R);
    assert_eq!(a.open(&ask("k").lease(3, RH)).lease.unwrap().1, RH);
    // A lease key names one file.
    let mid = a.create_send(&ask("other").lease(2, RWH));
    assert_eq!(
        a.created(mid).unwrap().unwrap_err(),
        status::INVALID_PARAMETER
    );
    let dir = ask("d")
        .lease(2, RWH)
        .options(super::super::create::FILE_DIRECTORY_FILE);
    let mid = a.create_send(&dir);
    assert_eq!(
        a.created(mid).unwrap().unwrap_err(),
        status::INVALID_PARAMETER
    );
    // Directories get no lease (no directory leasing) and no oplock.
    let d = a.open(
        &ask("d2")
            .lease(9, RWH)
            .options(super::super::create::FILE_DIRECTORY_FILE),
    );
    assert_eq!((d.level, d.lease.is_none()), (LEVEL_NONE, true));
    // Once every open of a lease closed, its key is free for another file.
    let last = g.pop().unwrap();
    for fid in g {
        assert_eq!(a.close(fid), 0);
    }
    let mid = a.create_send(&ask("fresh").lease(2, RWH));
    assert_eq!(
        a.created(mid).unwrap().unwrap_err(),
        status::INVALID_PARAMETER,
        "lease 2 still has an open of g"
    );
    assert_eq!(a.close(last), 0);
    assert_eq!(a.open(&ask("fresh").lease(2, RWH)).lease.unwrap().1, RWH);
    assert_eq!(a.close(k.fid), 0);
}

#[test]
fn a_contending_lease_breaks_the_holder_as_windows_does() {
    // (held, requested by another key, held broken to, granted)
    let cases = [
        (R, R, R, R),
        (R, RH, R, RH),
        (R, RW, R, R),
        (R, RWH, R, RH),
        (RH, R, RH, R),
        (RH, RW, RH, R),
        (RH, RWH, RH, RH),
        (RW, R, R, R),
        (RW, RH, R, RH),
        (RW, RWH, R, RH),
        (RWH, R, RH, R),
        (RWH, RW, RH, R),
        (RWH, RWH, RH, RH),
    ];
    for (held, asked, broken, granted) in cases {
        let kit = Kit::new();
        let mut a = Peer::new(&kit, 1);
        a.open(&ask("f").lease(1, held));
        let mid = a.create_send(&ask("f").lease(2, asked));
        let brk = no_epoch(a.breaks());
        if held == broken {
            assert!(brk.is_empty(), "{held:#x}/{asked:#x}");
        } else {
            assert_eq!(
                brk,
                vec![lease_break(1, held, broken, true)],
                "{held:#x}/{asked:#x}"
            );
            assert!(a.went_async(mid), "a W break is waited for");
            assert_eq!(a.ack_lease(1, broken), (status::SUCCESS, broken));
            a.pump();
        }
        let h2 = a.created(mid).unwrap().unwrap();
        assert_eq!(h2.lease.unwrap().1, granted, "{held:#x}/{asked:#x}");
        // Lease 1 cannot climb back while lease 2 exists.
        assert_eq!(a.open(&ask("f").lease(1, RWH)).lease.unwrap().1, broken);
    }
}

#[test]
fn leases_and_oplocks_contend_like_their_lease_states() {
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    // A lease with handle caching leaves oplocks none; RW is broken to R for an oplock.
    a.open(&ask("f").lease(1, RWH));
    let mid = a.create_send(&ask("f").oplock(LEVEL_BATCH));
    assert_eq!(no_epoch(a.breaks()), vec![lease_break(1, RWH, RH, true)]);
    a.ack_lease(1, RH);
    a.pump();
    assert_eq!(a.created(mid).unwrap().unwrap().level, LEVEL_NONE);
    // An oplock holder keeps leases from handle caching; batch breaks to level II.
    let h = a.open(&ask("g").oplock(LEVEL_BATCH));
    let mid = a.create_send(&ask("g").lease(2, RWH));
    assert_eq!(
        a.breaks(),
        vec![Break::Oplock {
            fid: h.fid,
            level: LEVEL_II
        }]
    );
    a.ack_oplock(h.fid, LEVEL_II);
    a.pump();
    assert_eq!(a.created(mid).unwrap().unwrap().lease.unwrap().1, R);
}

#[test]
fn a_lease_break_in_progress_is_reported_to_its_own_key_and_acks_are_checked() {
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    a.open(&ask("f").lease(1, RWH));
    let mid = a.create_send(&ask("f").disposition(OVERWRITE_IF));
    // An overwrite takes everything.
    assert_eq!(no_epoch(a.breaks()), vec![lease_break(1, RWH, 0, true)]);
    // The same key still opens, seeing the current state and the break in progress.
    let same = a.open(&ask("f").lease(1, RWH));
    assert_eq!(same.lease.unwrap().1, RWH);
    assert_eq!(
        same.lease.unwrap().2,
        0x2,
        "SMB2_LEASE_FLAG_BREAK_IN_PROGRESS"
    );
    // Acknowledgements: more than offered is refused and the break stays under way.
    for bad in [RWH, RW, RH, R, WRITE, HANDLE] {
        assert_eq!(
            a.ack_lease(1, bad).0,
            status::REQUEST_NOT_ACCEPTED,
            "{bad:#x}"
        );
    }
    assert_eq!(a.ack_lease(7, 0).0, status::OBJECT_NAME_NOT_FOUND);
    assert_eq!(a.ack_lease(1, 0), (status::SUCCESS, 0));
    assert_eq!(a.ack_lease(1, 0).0, status::UNSUCCESSFUL);
    a.pump();
    assert!(a.created(mid).unwrap().is_ok());
    // A break from R needs no acknowledgement and does not hold the open up.
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    a.open(&ask("r").lease(1, R));
    let mid = a.create_send(&ask("r").disposition(OVERWRITE_IF));
    assert!(a.created(mid).unwrap().is_ok());
    assert_eq!(no_epoch(a.breaks()), vec![lease_break(1, R, 0, false)]);
    assert_eq!(a.ack_lease(1, 0).0, status::UNSUCCESSFUL);
    assert_eq!(a.open(&ask("r").lease(1, 0)).lease.unwrap().1, 0);
}

#[test]
fn a_conflict_during_a_break_makes_it_go_on_in_steps() {
    // lease.breaking3: RWH breaking to RH for a plain open when an overwrite comes: after
    // the RH ack a second break to R, after the R ack a break to none without an ack, and
    // only then do both opens complete.
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    a.open(&ask("f").lease(1, RWH).v2(0x10, None));
    let open = a.create_send(&ask("f"));
    let trunc = a.create_send(&ask("f").disposition(OVERWRITE_IF));
    assert_eq!(
        a.breaks(),
        vec![Break::Lease {
            key: lease_key(1),
            from: RWH,
            to: RH,
            ack: true,
            epoch: 0x12
        }]
    );
    assert_eq!(a.ack_lease(1, RH), (status::SUCCESS, RH));
    a.pump();
    assert_eq!(
        a.breaks(),
        vec![Break::Lease {
            key: lease_key(1),
            from: RH,
            to: R,
            ack: true,
            epoch: 0x12
        }]
    );
    assert!(a.created(open).is_none() && a.created(trunc).is_none());
    assert_eq!(a.ack_lease(1, R), (status::SUCCESS, R));
    assert_eq!(
        a.breaks(),
        vec![Break::Lease {
            key: lease_key(1),
            from: R,
            to: 0,
            ack: false,
            epoch: 0x12
        }]
    );
    a.pump();
    assert!(a.created(open).unwrap().is_ok());
    assert!(a.created(trunc).unwrap().is_ok());
}

#[test]
fn v2_leases_count_epochs_and_answer_in_the_version_they_were_made() {
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let h = a.open(&ask("f").lease(1, R).v2(0x4711, Some(8)));
    let (_, state, flags, epoch, version) = h.lease.unwrap();
    assert_eq!(
        (state, flags, epoch, version),
        (R, 0x4, 0x4712, 2),
        "PARENT_LEASE_KEY_SET echoed"
    );
    // An upgrade through a v1 request: a v2 answer, epoch + 1.
    let up = a.open(&ask("f").lease(1, RH)).lease.unwrap();
    assert_eq!((up.1, up.3, up.4), (RH, 0x4713, 2));
    // No change, no new epoch.
    assert_eq!(
        a.open(&ask("f").lease(1, RH).v2(0x11, None))
            .lease
            .unwrap()
            .3,
        0x4713
    );
    // A break carries the next epoch.
    a.create_send(&ask("f").share(1));
    assert_eq!(
        a.breaks(),
        vec![Break::Lease {
            key: lease_key(1),
            from: RH,
            to: R,
            ack: true,
            epoch: 0x4714
        }]
    );
    // A lease made by a v1 request answers v1 even to v2 requests.
    let v1 = a.open(&ask("g").lease(2, R)).lease.unwrap();
    assert_eq!(v1.4, 1);
    assert_eq!(
        a.open(&ask("g").lease(2, RW).v2(5, None)).lease.unwrap().4,
        1
    );
    // On SMB 2.1 a v2 context is read as v1; on 2.0.2 leases do not exist.
    let mut old = Peer::new(&kit, 3);
    old.conn.neg.dialect = DIALECT_210;
    assert_eq!(
        old.open(&ask("h").lease(3, RWH).v2(1, None))
            .lease
            .unwrap()
            .4,
        1
    );
    old.conn.neg.dialect = DIALECT_202;
    let none = old.open(&ask("i").lease(4, RWH));
    assert_eq!((none.level, none.lease.is_none()), (LEVEL_NONE, true));
}

#[test]
fn a_lease_is_shared_by_the_connections_of_one_client() {
    let kit = Kit::new();
    let mut a1 = Peer::new(&kit, 1);
    let mut a2 = Peer::new(&kit, 1);
    let mut b = Peer::new(&kit, 2);
    a1.open(&ask("f").lease(1, R));
    // The same ClientGuid and key on another connection is the same lease: an upgrade.
    let h2 = a2.open(&ask("f").lease(1, RWH));
    assert_eq!(h2.lease.unwrap().1, RWH);
    assert_eq!(a2.close(h2.fid), 0);
    // Another client's open breaks it; the break goes to one of the client's connections
    // and may be acknowledged on any of them.
    let mid = b.create_send(&ask("f").lease(1, RWH));
    let mut brk = a1.breaks();
    brk.extend(a2.breaks());
    assert_eq!(no_epoch(brk), vec![lease_break(1, RWH, RH, true)]);
    assert_eq!(a2.ack_lease(1, RH), (status::SUCCESS, RH));
    b.pump();
    // Client 2's key 1 is another lease than client 1's.
    let got = b.created(mid).unwrap().unwrap();
    assert_eq!(got.lease.unwrap().1, RH);
    // An acknowledgement from another client does not find client 1's lease.
    assert_eq!(b.ack_lease(1, 0).0, status::UNSUCCESSFUL);
}

#[test]
fn renames_wait_for_handle_caching_and_deletes_take_it() {
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let mut b = Peer::new(&kit, 2);
    let h1 = a.open(&ask("src").lease(1, RH));
    b.open(&ask("src").lease(2, RH).access(0x0012_0089));
    let mid = a.rename_send(h1.fid, "dst");
    assert!(a.went_async(mid), "the rename waits");
    assert_eq!(no_epoch(b.breaks()), vec![lease_break(2, RH, R, true)]);
    assert!(!kit.path("dst").exists());
    assert_eq!(b.ack_lease(2, R).0, status::SUCCESS);
    a.pump();
    assert_eq!(a.response(mid).unwrap().status, status::SUCCESS);
    assert!(kit.path("dst").exists());
    // Without a lease the renamer does not wait (nor break).
    let plain = a.open(&ask("dst"));
    let c = b.open(&ask("dst").lease(3, RH).access(0x0012_0089));
    let _ = c;
    let mid = a.rename_send(plain.fid, "dst2");
    assert_eq!(a.response(mid).unwrap().status, status::SUCCESS);
    assert!(b.breaks().is_empty());
    // Delete on close and delete pending end other clients' handle caching, without waiting.
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let mut b = Peer::new(&kit, 2);
    a.open(&ask("u").lease(1, RH));
    let doc = b.open(
        &ask("u")
            .access(0x0001_0000)
            .options(super::super::create::FILE_DELETE_ON_CLOSE),
    );
    assert_eq!(no_epoch(a.breaks()), vec![lease_break(1, RH, R, true)]);
    assert_eq!(b.close(doc.fid), 0);
    a.open(&ask("v").lease(2, RH));
    let d = b.open(&ask("v"));
    assert_eq!(b.set_delete(d.fid), 0);
    assert_eq!(no_epoch(a.breaks()), vec![lease_break(2, RH, R, true)]);
}

#[test]
fn waiting_requests_can_be_cancelled_and_go_with_their_connection() {
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let mut b = Peer::new(&kit, 2);
    let h = a.open(&ask("f").oplock(LEVEL_BATCH));
    let mid = b.create_send(&ask("f"));
    assert!(b.went_async(mid));
    b.cancel(mid);
    assert_eq!(b.response(mid).unwrap().status, status::CANCELLED);
    assert_eq!(kit.server.files.lock().unwrap().oplock.waiting(), 0);
    // A waiting request of a connection that goes is dropped.
    let mut c = Peer::new(&kit, 3);
    let mid = c.create_send(&ask("f"));
    assert!(c.went_async(mid));
    assert_eq!(kit.server.files.lock().unwrap().oplock.waiting(), 1);
    drop(c);
    assert_eq!(kit.server.files.lock().unwrap().oplock.waiting(), 0);
    let _ = (a.breaks(), h);
}

#[test]
fn break_notifications_are_sealed_for_opens_made_over_encryption() {
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let mut b = Peer::new(&kit, 2);
    let enc = Arc::new(
        session::Encryption::new(duet_auth::CipherId::Aes128Gcm, &[7; 16], &[8; 16], [1; 8])
            .unwrap(),
    );
    // As if the CREATE had come in a transform frame of this session.
    a.conn.encrypted = Some((SESSION_ID, enc));
    a.create_send(&ask("f").oplock(LEVEL_BATCH));
    a.conn.encrypted = None;
    a.got.clear();
    let mid = b.create_send(&ask("f"));
    assert!(b.went_async(mid));
    let msgs: Vec<Vec<u8>> = std::iter::from_fn(|| a.rx.try_recv().ok()).collect();
    assert_eq!(msgs.len(), 1);
    assert_eq!(&msgs[0][0..4], &crate::wire::header::TRANSFORM_PROTOCOL_ID);
    // An open made in clear gets its breaks in clear.
    let h = a.open(&ask("g").oplock(LEVEL_BATCH));
    b.create_send(&ask("g"));
    assert_eq!(
        a.breaks(),
        vec![Break::Oplock {
            fid: h.fid,
            level: LEVEL_II
        }]
    );
}

#[test]
fn stat_opens_count_as_other_opens_only_with_a_lease() {
    let attrs = FILE_READ_ATTRIBUTES;
    // A stat open without a lease does not keep a lease from write caching (statopen3).
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let f = a.open(&ask("f")).fid;
    a.close(f);
    a.open(&ask("f").access(attrs));
    assert_eq!(a.open(&ask("f").lease(1, RWH)).lease.unwrap().1, RWH);
    // A stat open holding a lease does: the other lease gets RH (statopen).
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let g = a.open(&ask("g")).fid;
    a.close(g);
    let stat = a.open(&ask("g").access(attrs).share(0).lease(1, RWH));
    assert_eq!(stat.lease.unwrap().1, RWH);
    let mid = a.create_send(&ask("g").lease(2, RWH));
    assert_eq!(no_epoch(a.breaks()), vec![lease_break(1, RWH, RH, true)]);
    a.ack_lease(1, RH);
    a.pump();
    assert_eq!(a.created(mid).unwrap().unwrap().lease.unwrap().1, RH);
    // Stat opens with READ_CONTROL do not break leases (statopen4), other access does.
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    a.open(&ask("h").lease(1, RWH));
    let h = a.open(&ask("h").access(READ_CONTROL | SYNCHRONIZE)).fid;
    a.close(h);
    assert!(a.breaks().is_empty());
    a.create_send(&ask("h").access(0x0000_0001));
    assert_eq!(no_epoch(a.breaks()), vec![lease_break(1, RWH, RH, true)]);
}

#[test]
fn a_compounded_create_that_waits_takes_the_rest_of_its_compound_with_it() {
    // smb2.compound.compound-break: CREATE + related QUERY_INFO while a batch oplock is held.
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let h = a.open(&ask("f").oplock(LEVEL_BATCH));
    // FILE_READ_EA makes it no stat open.
    let mut create = create_body(
        &ask("f")
            .access(FILE_READ_ATTRIBUTES | 0x8 | SYNCHRONIZE)
            .disposition(1),
    );
    let header = |cmd: Command, mid: u64, related: bool| {
        let mut m = vec![0u8; HEADER_LEN];
        m[0..4].copy_from_slice(&[0xFE, b'S', b'M', b'B']);
        m[4..6].copy_from_slice(&64u16.to_le_bytes());
        m[6..8].copy_from_slice(&1u16.to_le_bytes());
        m[12..14].copy_from_slice(&(cmd as u16).to_le_bytes());
        m[14..16].copy_from_slice(&64u16.to_le_bytes());
        if related {
            m[16..20].copy_from_slice(&flags::RELATED_OPERATIONS.to_le_bytes());
        }
        m[24..32].copy_from_slice(&mid.to_le_bytes());
        m[36..40].copy_from_slice(&TREE_ID.to_le_bytes());
        m[40..48].copy_from_slice(&SESSION_ID.to_le_bytes());
        m
    };
    let (cmid, qmid) = (a.mid, a.mid + 1);
    a.mid += 2;
    let mut frame = header(Command::Create, cmid, false);
    frame.append(&mut create);
    frame.resize(frame.len().div_ceil(8) * 8, 0);
    let next = frame.len() as u32;
    frame[20..24].copy_from_slice(&next.to_le_bytes());
    frame.extend_from_slice(&header(Command::QueryInfo, qmid, true));
    let mut q = Vec::new();
    q.put_u16(41);
    q.put_u8(1);
    q.put_u8(0x16);
    q.put_u32(0x1000);
    q.put_u16(0);
    q.put_u16(0);
    q.put_u32(0);
    q.put_u32(0);
    q.put_u32(0);
    FileId::RELATED.put(&mut q);
    q.push(0);
    frame.extend_from_slice(&q);
    a.conn.handle_frame(&frame);
    a.drain();
    assert!(a.went_async(cmid), "the CREATE goes async");
    assert!(a.response(qmid).is_none(), "the QUERY_INFO waits with it");
    assert_eq!(
        a.breaks(),
        vec![Break::Oplock {
            fid: h.fid,
            level: LEVEL_II
        }]
    );
    assert_eq!(a.ack_oplock(h.fid, LEVEL_II).0, status::SUCCESS);
    a.pump();
    let created = a.created(cmid).unwrap().unwrap();
    let info = a.response(qmid).unwrap();
    assert_eq!(info.status, status::SUCCESS, "runs on the CREATE's handle");
    assert_eq!(a.close(created.fid), 0);
}

#[test]
fn a_lease_under_a_break_is_not_upgraded() {
    let kit = Kit::new();
    let mut a = Peer::new(&kit, 1);
    let mut b = Peer::new(&kit, 2);
    a.open(&ask("f").lease(1, RH).share(1));
    // A share-mode conflict takes handle caching and waits.
    let mid = b.create_send(&ask("f"));
    assert_eq!(no_epoch(a.breaks()), vec![lease_break(1, RH, R, true)]);
    let same = a.open(&ask("f").lease(1, RWH).access(1)).lease.unwrap();
    assert_eq!((same.1, same.2), (RH, 0x2), "no upgrade while breaking");
    assert_eq!(a.ack_lease(1, R).0, status::SUCCESS);
    b.pump();
    assert_eq!(
        b.created(mid).unwrap().unwrap_err(),
        status::SHARING_VIOLATION
    );
    // After the break an upgrade is possible again.
    assert_eq!(
        a.open(&ask("f").lease(1, RWH).access(1)).lease.unwrap().1,
        RWH
    );
}
