//! Oplocks and leases (MS-SMB2 3.3.1.4, 3.3.4.6, 3.3.4.7, 3.3.5.9.8, 3.3.5.9.11, 3.3.5.22,
//! 3.3.6.1, 3.3.6.5; MS-FSA 2.1.4.12): what a CREATE is granted, the breaks that conflicting
//! opens, writes, byte-range locks, size changes, renames and deletes cause, their
//! acknowledgements, the 35 s acknowledgement timeout, and the requests (CREATE, rename)
//! that wait for a break.
//!
//! Owns: the caching state of every file, kept server-wide in the file table
//! ([`FileOplocks`] in each entry; [`Registry`] beside them: the lease index by ClientGuid
//! and LeaseKey, the files with a break outstanding and the waiting requests). Caching is
//! reasoned about in lease terms: R (read), H (handle) and W (write); an oplock is the lease
//! state it stands for (batch = RWH, exclusive = RW, level II = R).
//!
//! Never blocks: a request that must wait for a break goes async (STATUS_PENDING) and is run
//! again from its saved bytes when the break is acknowledged, times out or its holder
//! closes (a CREATE in the middle of a compound takes the members after it along). Directory
//! leasing is not offered. Break notifications go straight into the holder's connection outbox
//! (MessageId 0xFFFFFFFFFFFFFFFF, TreeId 0, not signed; sealed when the open was made over
//! an encrypted request).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use duet_fscc::consts::{
    FILE_READ_ATTRIBUTES, FILE_WRITE_ATTRIBUTES, FILE_WRITE_DATA, READ_CONTROL, SYNCHRONIZE,
};

use super::create::{
    lookup_fid, FILE_DELETE_ON_CLOSE, FILE_OVERWRITE, FILE_OVERWRITE_IF, FILE_SUPERSEDE,
};
use super::files::{FileKey, FileTable, OpenRef};
use super::{
    session, AsyncTarget, Conn, ConnEvent, Fail, FileId, HResult, Outbox, Pending, PendingKind,
    Reply, Req, Server, DIALECT_202, DIALECT_210, DIALECT_300,
};
use crate::wire::header::flags;
use crate::wire::{status, Command, Header, PutLe, HEADER_LEN};

// RequestedOplockLevel / OplockLevel (MS-SMB2 2.2.13, 2.2.14).
pub const LEVEL_NONE: u8 = 0x00;
pub const LEVEL_II: u8 = 0x01;
pub const LEVEL_EXCLUSIVE: u8 = 0x08;
pub const LEVEL_BATCH: u8 = 0x09;
pub const LEVEL_LEASE: u8 = 0xFF;

// Lease states (MS-SMB2 2.2.13.2.8).
pub const READ: u32 = 0x01;
pub const HANDLE: u32 = 0x02;
pub const WRITE: u32 = 0x04;

/// SMB2_LEASE_FLAG_BREAK_IN_PROGRESS (create response).
const FLAG_BREAK_IN_PROGRESS: u32 = 0x02;
/// SMB2_LEASE_FLAG_PARENT_LEASE_KEY_SET (v2 request and response).
const FLAG_PARENT_LEASE_KEY_SET: u32 = 0x04;
/// SMB2_NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED (lease break notification).
const NOTIFY_ACK_REQUIRED: u32 = 0x01;

/// How long a break waits for its acknowledgement (Windows: 35 s) before it completes as
/// if acknowledged to none (MS-SMB2 3.3.6.1, 3.3.6.5).
pub const BREAK_TIMEOUT_MS: u64 = 35_000;

type Guid = [u8; 16];

/// The caching an oplock level stands for.
fn oplock_bits(level: u8) -> u32 {
    match level {
        LEVEL_BATCH => READ | WRITE | HANDLE,
        LEVEL_EXCLUSIVE => READ | WRITE,
        LEVEL_II => READ,
        _ => 0,
    }
}

/// The oplock level that grants (part of) `bits`.
fn level_of(bits: u32) -> u8 {
    if bits & READ == 0 {
        LEVEL_NONE
    } else if bits & WRITE == 0 {
        LEVEL_II
    } else if bits & HANDLE == 0 {
        LEVEL_EXCLUSIVE
    } else {
        LEVEL_BATCH
    }
}

/// An open that reads or writes only attributes (and synchronizes) neither breaks oplocks
/// nor gets one on an existing file.
fn is_oplock_stat_open(access: u32) -> bool {
    let stat = FILE_READ_ATTRIBUTES | FILE_WRITE_ATTRIBUTES | SYNCHRONIZE;
    access & stat != 0 && access & !stat == 0
}

/// For leases READ_CONTROL is a stat access too.
fn is_lease_stat_open(access: u32) -> bool {
    let stat = FILE_READ_ATTRIBUTES | FILE_WRITE_ATTRIBUTES | SYNCHRONIZE | READ_CONTROL;
    access & stat != 0 && access & !stat == 0
}

/// Where a break for an open goes: the outbox of the channel it was made on (or, once
/// that channel closed, another live channel of its session: multichannel), sealed with
/// its session's key when the open was made over an encrypted request.
#[derive(Clone)]
struct Notifier {
    outbox: Outbox,
    session_id: u64,
    seal: Option<(u64, Arc<session::Encryption>)>,
    server: std::sync::Weak<super::Server>,
}

impl Notifier {
    fn of(conn: &Conn, session_id: u64) -> Notifier {
        Notifier {
            outbox: conn.outbox.clone(),
            session_id,
            seal: conn.encrypted.clone(),
            server: Arc::downgrade(&conn.server),
        }
    }

    /// Queues `msg` on the open's channel while it is one of its session's channels, else
    /// on the first live channel of the session that takes it.
    fn deliver(&self, msg: Vec<u8>) -> bool {
        let chans = self
            .server
            .upgrade()
            .map(|s| session::channels(&s, self.session_id))
            .unwrap_or_default();
        if chans.is_empty() || chans.iter().any(|(_, o)| o.same_channel(&self.outbox)) {
            return self.outbox.send(msg);
        }
        chans.iter().any(|(_, o)| o.send(msg.clone()))
    }

    /// Sends an unsolicited OPLOCK_BREAK notification. False if it could not be sent.
    fn send(&self, header_session: u64, body: &[u8]) -> bool {
        let msg = notification(header_session, body);
        let msg = match &self.seal {
            Some((sid, enc)) => match enc.seal(*sid, msg) {
                Some(m) => m,
                None => return false,
            },
            None => msg,
        };
        self.deliver(msg)
    }
}

/// An OPLOCK_BREAK notification (MS-SMB2 3.3.4.6, 3.3.4.7): MessageId all ones, TreeId 0,
/// no credits, not signed.
fn notification(session_id: u64, body: &[u8]) -> Vec<u8> {
    let mut msg = vec![0u8; HEADER_LEN];
    {
        let mut h = Header::new_unchecked(&mut msg[..]);
        h.set_protocol();
        h.set_status(status::SUCCESS);
        h.set_command(Command::OplockBreak as u16);
        h.set_credit(0);
        h.set_flags(flags::SERVER_TO_REDIR);
        h.set_message_id(u64::MAX);
        h.set_tree_id(0);
        h.set_session_id(session_id);
    }
    msg.extend_from_slice(body);
    msg
}

/// The Oplock Break Notification / Response body (MS-SMB2 2.2.23.1, 2.2.25.1).
fn oplock_body(level: u8, file_id: FileId) -> Vec<u8> {
    let mut b = Vec::with_capacity(24);
    b.put_u16(24);
    b.put_u8(level);
    b.put_u8(0);
    b.put_u32(0);
    file_id.put(&mut b);
    b
}

/// The oplock of one open (not a lease).
struct Oplock {
    who: OpenRef,
    file_id: FileId,
    level: u8,
    /// A break awaiting acknowledgement: the level it breaks to and its deadline.
    breaking: Option<(u8, u64)>,
    to: Notifier,
}

/// A lease (MS-SMB2 3.3.1.13): one per ClientGuid and LeaseKey, shared by every open made
/// with that key.
struct Lease {
    client: Guid,
    key: Guid,
    parent: Option<Guid>,
    version: u8,
    state: u32,
    breaking: bool,
    /// The state the outstanding break notification asked for.
    to_requested: u32,
    /// The state the break must reach (later conflicts may lower it while it is under way).
    to_required: u32,
    epoch: u16,
    deadline: u64,
    opens: Vec<(OpenRef, Notifier)>,
}

impl Lease {
    fn holds(&self, who: OpenRef) -> bool {
        self.opens.iter().any(|(w, _)| *w == who)
    }

    /// Sends a lease break notification to the first connection of the lease's client that
    /// takes it.
    fn notify(&self, flags: u32, from: u32, to: u32) -> bool {
        let mut b = Vec::with_capacity(44);
        b.put_u16(44);
        b.put_u16(if self.version >= 2 { self.epoch } else { 0 });
        b.put_u32(flags);
        b.extend_from_slice(&self.key);
        b.put_u32(from);
        b.put_u32(to);
        b.put_u32(0); // BreakReason
        b.put_u32(0); // AccessMaskHint
        b.put_u32(0); // ShareMaskHint
        self.opens.iter().any(|(_, n)| n.send(0, &b))
    }

    /// The lease create context of a CREATE response (MS-SMB2 2.2.14.2.10, 2.2.14.2.11).
    fn response(&self) -> Vec<u8> {
        let mut flags = if self.breaking {
            FLAG_BREAK_IN_PROGRESS
        } else {
            0
        };
        let mut d = Vec::with_capacity(52);
        d.extend_from_slice(&self.key);
        d.put_u32(self.state);
        if self.version >= 2 {
            if self.parent.is_some() {
                flags |= FLAG_PARENT_LEASE_KEY_SET;
            }
            d.put_u32(flags);
            d.put_u64(0);
            d.extend_from_slice(&self.parent.unwrap_or_default());
            d.put_u16(self.epoch);
            d.put_u16(0);
        } else {
            d.put_u32(flags);
            d.put_u64(0);
        }
        d
    }
}

/// Breaks a lease to `to` (MS-SMB2 3.3.4.7). A lease already breaking only has the state it
/// must reach lowered (no second notification); a read-only lease drops to none at once (no
/// acknowledgement). Returns true when an acknowledgement is awaited.
fn break_lease(l: &mut Lease, to: u32, now: u64) -> bool {
    let to = to & l.state;
    if l.breaking {
        l.to_required &= to;
        return true;
    }
    if l.state == to {
        return false;
    }
    l.epoch = l.epoch.wrapping_add(1);
    if l.state & (WRITE | HANDLE) == 0 {
        let from = l.state;
        l.state = 0;
        l.notify(0, from, 0);
        return false;
    }
    l.breaking = true;
    l.to_requested = to;
    l.to_required = to;
    l.deadline = now + BREAK_TIMEOUT_MS;
    if !l.notify(NOTIFY_ACK_REQUIRED, l.state, to) {
        // Nobody to tell: the break completes as if acknowledged to none.
        l.state = 0;
        l.breaking = false;
        return false;
    }
    true
}

/// Breaks an oplock to `to` (LEVEL_II or LEVEL_NONE; MS-SMB2 3.3.4.6). A break already
/// under way is left alone; level II drops to none at once (the client does not
/// acknowledge it). Returns true when an acknowledgement is awaited.
fn break_oplock(o: &mut Oplock, to: u8, now: u64) -> bool {
    if o.breaking.is_some() {
        return true;
    }
    if o.level == to || o.level == LEVEL_NONE {
        return false;
    }
    if o.level == LEVEL_II {
        o.level = LEVEL_NONE;
        o.to.send(o.to.session_id, &oplock_body(LEVEL_NONE, o.file_id));
        return false;
    }
    if !o.to.send(o.to.session_id, &oplock_body(to, o.file_id)) {
        o.level = LEVEL_NONE;
        return false;
    }
    o.breaking = Some((to, now + BREAK_TIMEOUT_MS));
    true
}

/// The oplocks and leases of one file (a field of its `files::FileEntry`).
#[derive(Default)]
pub struct FileOplocks {
    oplocks: Vec<Oplock>,
    leases: Vec<Lease>,
}

impl fmt::Debug for FileOplocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let oplocks: Vec<_> = self
            .oplocks
            .iter()
            .map(|o| (o.who, o.level, o.breaking))
            .collect();
        let leases: Vec<_> = self
            .leases
            .iter()
            .map(|l| (l.state, l.breaking, l.opens.len()))
            .collect();
        f.debug_struct("FileOplocks")
            .field("oplocks", &oplocks)
            .field("leases", &leases)
            .finish()
    }
}

impl FileOplocks {
    fn find_lease(&self, client: &Guid, key: &Guid) -> Option<usize> {
        self.leases
            .iter()
            .position(|l| l.client == *client && l.key == *key)
    }

    /// The caching `who` holds through its oplock or lease.
    fn caching_of(&self, who: OpenRef) -> u32 {
        if let Some(l) = self.leases.iter().find(|l| l.holds(who)) {
            return l.state;
        }
        self.oplocks
            .iter()
            .find(|o| o.who == who)
            .map_or(0, |o| oplock_bits(o.level))
    }

    fn any_breaking(&self) -> bool {
        self.oplocks.iter().any(|o| o.breaking.is_some()) || self.leases.iter().any(|l| l.breaking)
    }

    /// The oplock level `who` holds (tests and diagnostics).
    pub fn level_of(&self, who: OpenRef) -> u8 {
        if self.leases.iter().any(|l| l.holds(who)) {
            return LEVEL_LEASE;
        }
        self.oplocks
            .iter()
            .find(|o| o.who == who)
            .map_or(LEVEL_NONE, |o| o.level)
    }
}

/// A request waiting for a break, with what it takes to run it again.
#[derive(Clone)]
struct Waiter {
    key: FileKey,
    conn: u64,
    async_id: u64,
    command: Command,
    request: Vec<u8>,
    message_id: u64,
    session_id: u64,
    tree_id: u32,
    flags: u32,
    credit_charge: u16,
    target: AsyncTarget,
    seal: Option<(u64, Arc<session::Encryption>)>,
    /// The members of its compound after it, run once it completed.
    rest: Option<Vec<u8>>,
}

/// Server-wide oplock and lease state beside the file entries (a field of `FileTable`).
#[derive(Default)]
pub struct Registry {
    /// Which file each (ClientGuid, LeaseKey) leases (MS-SMB2 GlobalLeaseTableList).
    leases: HashMap<(Guid, Guid), FileKey>,
    /// Files with a break awaiting acknowledgement (the timer looks at these).
    breaking: HashSet<FileKey>,
    /// Requests waiting for a break on a file.
    waiters: Vec<Waiter>,
    /// The waiting request each connection is running again now: if it must wait once
    /// more it keeps its AsyncId, and it is not a first attempt.
    retrying: HashMap<u64, Waiter>,
}

impl Registry {
    /// Whether any request waits on a break (tests).
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }
}

/// Called by `FileTable::remove_open`: the open's oplock, or its place in a lease, goes;
/// a lease left without opens goes too.
pub fn open_removed(reg: &mut Registry, oplocks: &mut FileOplocks, who: OpenRef) {
    oplocks.oplocks.retain(|o| o.who != who);
    for l in oplocks.leases.iter_mut() {
        l.opens.retain(|(w, _)| *w != who);
    }
    oplocks.leases.retain(|l| {
        if l.opens.is_empty() {
            reg.leases.remove(&(l.client, l.key));
            false
        } else {
            true
        }
    });
}

/// Posts a retry to every request waiting on `key`; drops the ones whose connection is gone.
fn wake(server: &Server, reg: &mut Registry, key: FileKey) {
    reg.waiters.retain(|w| {
        if w.key == key {
            tracing::debug!(
                conn = w.conn,
                async_id = w.async_id,
                "waiting request runs again"
            );
        }
        w.key != key
            || server.post(
                w.conn,
                ConnEvent::Oplock(Event::Retry {
                    async_id: w.async_id,
                }),
            )
    });
}

/// An open's state changed or it closed: requests waiting on the file try again.
pub fn wake_file(server: &Server, key: FileKey) {
    if let Ok(mut files) = server.files.lock() {
        if !files.oplock.waiters.is_empty() {
            wake(server, &mut files.oplock, key);
        }
    }
}

/// What a connection is asked to do for the oplock machinery (see `ConnEvent::Oplock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The break a waiting request was waiting for is over: run it again.
    Retry { async_id: u64 },
}

pub fn handle_event(conn: &mut Conn, ev: Event) {
    match ev {
        Event::Retry { async_id } => retry(conn, async_id),
    }
}

/// Registers `req` as waiting for a break on `key` and answers STATUS_PENDING. A request
/// being run again keeps its AsyncId (its interim response went out already).
fn wait(conn: &mut Conn, req: &Req, reg: &mut Registry, key: FileKey) -> HResult {
    if let Some(mut w) = reg.retrying.remove(&conn.id) {
        w.key = key;
        let async_id = w.async_id;
        reg.waiters.push(w);
        return Ok(Reply::Pending { async_id });
    }
    if conn.pending.len() >= conn.server.cfg.max_pending_per_conn {
        return Err(Fail::Status(status::INSUFFICIENT_RESOURCES));
    }
    let async_id = conn.server.new_id();
    let target = conn.async_target(req, async_id);
    reg.waiters.push(Waiter {
        key,
        conn: conn.id,
        async_id,
        command: req.command,
        request: req.msg.to_vec(),
        message_id: req.message_id,
        session_id: req.session_id,
        tree_id: req.tree_id,
        flags: req.flags,
        credit_charge: req.credit_charge,
        target,
        seal: conn.encrypted.clone(),
        rest: None,
    });
    conn.pending.insert(
        async_id,
        Pending {
            message_id: req.message_id,
            session_id: req.session_id,
            kind: PendingKind::BreakWait,
        },
    );
    Ok(Reply::Pending { async_id })
}

/// Runs a waiting request again and sends its final response, unless it waits once more.
fn retry(conn: &mut Conn, async_id: u64) {
    let server = conn.server.clone();
    let w = {
        let Ok(mut files) = server.files.lock() else {
            return;
        };
        let reg = &mut files.oplock;
        let Some(i) = reg
            .waiters
            .iter()
            .position(|w| w.conn == conn.id && w.async_id == async_id)
        else {
            return;
        };
        let w = reg.waiters.swap_remove(i);
        reg.retrying.insert(conn.id, w.clone());
        w
    };
    let result = if conn
        .sessions
        .get(&w.session_id)
        .is_some_and(|s| s.is_valid())
    {
        let req = Req {
            msg: &w.request,
            command: w.command,
            message_id: w.message_id,
            session_id: w.session_id,
            tree_id: w.tree_id,
            flags: w.flags,
            related: None,
            resolved_file_id: std::cell::Cell::new(None),
            credit_charge: w.credit_charge,
        };
        let outer = std::mem::replace(&mut conn.encrypted, w.seal.clone());
        let r = match w.command {
            Command::Create => super::create::handle_create(conn, &req),
            Command::SetInfo => super::info::handle_set_info(conn, &req),
            _ => Err(Fail::Status(status::INTERNAL_ERROR)),
        };
        conn.encrypted = outer;
        r
    } else {
        Err(Fail::Status(status::USER_SESSION_DELETED))
    };
    if let Ok(mut files) = server.files.lock() {
        files.oplock.retrying.remove(&conn.id);
    }
    tracing::debug!(async_id, ok = result.is_ok(), "waiting request ran again");
    let (st, body) = match result {
        Ok(Reply::Pending { .. }) => return,
        Ok(Reply::Body { status, body }) => (status, body),
        Ok(Reply::Framed { status, mut msg }) => (
            status,
            msg.split_off(crate::wire::HEADER_LEN.min(msg.len())),
        ),
        Ok(Reply::None) => (status::SUCCESS, Vec::new()),
        Err(Fail::Status(st)) => (st, Vec::new()),
        Err(Fail::StatusData(st, data)) => (st, super::error_body_with(&data.to_le_bytes())),
        Err(Fail::Disconnect) => (status::INTERNAL_ERROR, Vec::new()),
    };
    conn.pending.remove(&async_id);
    w.target.complete(st, &body);
    let file_id = (st == status::SUCCESS && w.command == Command::Create)
        .then(|| {
            FileId::parse(
                &crate::wire::Body::new(&[&[0u8; HEADER_LEN][..], &body].concat()),
                64,
            )
            .ok()
        })
        .flatten();
    resume_rest(conn, &w, file_id, st);
}

/// The rest of the compound of a CREATE that waited (MS-SMB2 <266>): it runs now, its
/// related members on the CREATE's FileId, or failing with its status.
fn resume_rest(conn: &mut Conn, w: &Waiter, file_id: Option<FileId>, st: u32) {
    let Some(rest) = &w.rest else {
        return;
    };
    let start = super::ChainStart {
        file_id,
        create_err: (st != status::SUCCESS).then_some(st),
        session_id: w.session_id,
        tree_id: w.tree_id,
    };
    let outer = std::mem::replace(&mut conn.encrypted, w.seal.clone());
    conn.handle_chain(rest, start);
    conn.encrypted = outer;
}

/// A CREATE in the middle of a compound waits for a break: the members after it wait with
/// it. False if it is not waiting.
pub fn park_rest(conn: &Conn, async_id: u64, rest: &[u8]) -> bool {
    let Ok(mut files) = conn.server.files.lock() else {
        return false;
    };
    let reg = &mut files.oplock;
    match reg
        .waiters
        .iter_mut()
        .find(|w| w.conn == conn.id && w.async_id == async_id)
    {
        Some(w) => {
            w.rest = Some(rest.to_vec());
            true
        }
        None => false,
    }
}

/// CANCEL of a request waiting for a break: it completes with `st` (and the rest of its
/// compound with it).
pub fn cancel(conn: &mut Conn, async_id: u64, st: u32) {
    let w = {
        let Ok(mut files) = conn.server.files.lock() else {
            return;
        };
        let reg = &mut files.oplock;
        let Some(i) = reg
            .waiters
            .iter()
            .position(|w| w.conn == conn.id && w.async_id == async_id)
        else {
            return;
        };
        reg.waiters.swap_remove(i)
    };
    w.target.complete(st, &[]);
    resume_rest(conn, &w, None, st);
}

/// Drops a waiting request without answering it.
pub fn forget(conn: &Conn, async_id: u64) {
    if let Ok(mut files) = conn.server.files.lock() {
        files
            .oplock
            .waiters
            .retain(|w| !(w.conn == conn.id && w.async_id == async_id));
    }
}

/// The connection is going: its waiting requests go with it.
pub fn conn_gone(conn: &Conn) {
    if let Ok(mut files) = conn.server.files.lock() {
        let reg = &mut files.oplock;
        reg.waiters.retain(|w| w.conn != conn.id);
        reg.retrying.remove(&conn.id);
    }
}

/// A lease requested by a CREATE (MS-SMB2 2.2.13.2.8, 2.2.13.2.10).
struct LeaseRequest {
    key: Guid,
    state: u32,
    parent: Option<Guid>,
    epoch: u16,
    version: u8,
}

/// The lease a CREATE asks for: RequestedOplockLevel LEASE and an RqLs context, on SMB 2.1
/// or later (v2 on 3.x only).
fn lease_request(conn: &Conn, a: &OpenArgs) -> Option<LeaseRequest> {
    if a.requested != LEVEL_LEASE || conn.neg.dialect < DIALECT_210 {
        return None;
    }
    let (_, data) = a.contexts.iter().find(|(name, _)| *name == b"RqLs")?;
    let key: Guid = data.get(0..16)?.try_into().ok()?;
    let state = crate::wire::le_u32(data, 16).ok()?;
    if data.len() >= 52 && conn.neg.dialect >= DIALECT_300 {
        let flags = crate::wire::le_u32(data, 20).ok()?;
        let parent: Guid = data.get(32..48)?.try_into().ok()?;
        return Some(LeaseRequest {
            key,
            state,
            parent: (flags & FLAG_PARENT_LEASE_KEY_SET != 0).then_some(parent),
            epoch: crate::wire::le_u16(data, 48).ok()?,
            version: 2,
        });
    }
    if data.len() < 32 {
        return None;
    }
    Some(LeaseRequest {
        key,
        state,
        parent: None,
        epoch: 0,
        version: 1,
    })
}

/// What the CREATE handler knows about an open it is about to register.
pub struct OpenArgs<'a> {
    pub key: FileKey,
    pub who: OpenRef,
    pub file_id: FileId,
    /// RequestedOplockLevel.
    pub requested: u8,
    pub contexts: &'a [(&'a [u8], &'a [u8])],
    /// The access granted.
    pub access: u32,
    /// Whether the share-access check against the other opens passed.
    pub share_ok: bool,
    pub disposition: u32,
    pub options: u32,
    pub is_dir: bool,
    /// The file was created by this open.
    pub created: bool,
}

/// What an open was granted: the response's OplockLevel and, for a lease, the RqLs context.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Granted {
    pub level: u8,
    pub context: Option<Vec<u8>>,
}

/// CREATE (MS-SMB2 3.3.5.9 "Oplock Acquisition", 3.3.5.9.8, 3.3.5.9.11), at the point the
/// open is about to be registered, with the file table locked. Breaks what the open
/// conflicts with: the write caching of others (handle caching instead when the share modes
/// conflict, so their holders can close; everything when the open overwrites). When an
/// acknowledgement must come first the request waits (`Err(Ok(Reply::Pending))`). Then a
/// share-mode conflict fails it with STATUS_SHARING_VIOLATION; otherwise the oplock or
/// lease is computed, recorded and returned for the response.
pub fn on_open(
    conn: &mut Conn,
    req: &Req,
    files: &mut FileTable,
    a: &OpenArgs,
) -> Result<Granted, HResult> {
    let client = conn.neg.client_guid;
    let lease = lease_request(conn, a);
    let FileTable {
        files: table,
        oplock: reg,
        ..
    } = files;
    // A lease key names one file (MS-SMB2 3.3.5.9.8: another file -> STATUS_INVALID_PARAMETER).
    if let Some(lr) = &lease {
        if let Some(other) = reg.leases.get(&(client, lr.key)) {
            let live = table
                .get(other)
                .is_some_and(|e| e.oplocks.find_lease(&client, &lr.key).is_some());
            if *other != a.key && live {
                return Err(Err(Fail::Status(status::INVALID_PARAMETER)));
            }
        }
    }
    // Directories get neither oplocks nor leases (no directory leasing).
    let lease = lease.filter(|_| !a.is_dir);
    let overwrite = matches!(
        a.disposition,
        FILE_SUPERSEDE | FILE_OVERWRITE | FILE_OVERWRITE_IF
    );
    let access = a.access | if overwrite { FILE_WRITE_DATA } else { 0 };
    let stat = is_oplock_stat_open(access);
    let now = crate::util::monotonic_ms();
    if !stat && !a.created {
        if let Some(entry) = table.get_mut(&a.key) {
            let first_attempt = !reg.retrying.contains_key(&conn.id);
            let delay = break_for_open(
                &mut entry.oplocks,
                a,
                lease.as_ref().map(|l| (client, l.key)),
                access,
                overwrite,
                first_attempt,
                now,
            );
            if entry.oplocks.any_breaking() {
                reg.breaking.insert(a.key);
            }
            if delay {
                return Err(wait(conn, req, reg, a.key));
            }
        }
    }
    if !a.share_ok {
        return Err(Err(Fail::Status(status::SHARING_VIOLATION)));
    }
    if a.is_dir {
        return Ok(Granted::default());
    }

    // What the other opens of the file leave to this one.
    let own_lease = lease.as_ref().map(|lr| (client, lr.key));
    let (have_other, got_handle, got_oplock, brlocks) = match table.get(&a.key) {
        Some(e) => {
            let same = |who: OpenRef| {
                own_lease.is_some_and(|(c, k)| {
                    e.oplocks
                        .leases
                        .iter()
                        .any(|l| l.client == c && l.key == k && l.holds(who))
                })
            };
            (
                // Stat opens leave write caching alone (lease.statopen3), unless they hold
                // an oplock or a lease themselves (lease.statopen, oplock.batch9).
                e.opens.iter().any(|o| {
                    !same(o.who)
                        && (!is_oplock_stat_open(o.access)
                            || e.oplocks.leases.iter().any(|l| l.holds(o.who))
                            || e.oplocks.oplocks.iter().any(|h| h.who == o.who))
                }),
                e.oplocks
                    .leases
                    .iter()
                    .any(|l| Some((l.client, l.key)) != own_lease && l.state & HANDLE != 0),
                e.oplocks.oplocks.iter().any(|o| o.level != LEVEL_NONE),
                !e.locks.is_empty(),
            )
        }
        None => (false, false, false, false),
    };

    if let Some(lr) = lease {
        // A lease needs read caching; byte-range locks rule it out (MS-FSA 2.1.5.17.2).
        let mut granted = lr.state & (READ | WRITE | HANDLE);
        if granted & READ == 0 || brlocks {
            granted = 0;
        }
        if have_other {
            granted &= !WRITE;
        }
        if got_oplock {
            granted &= !HANDLE;
        }
        let entry = table.entry(a.key).or_default();
        let i = match entry.oplocks.find_lease(&client, &lr.key) {
            Some(i) => {
                // Only a strict upgrade that nothing else prevents, and not while breaking.
                let l = &mut entry.oplocks.leases[i];
                if l.state & lr.state == l.state
                    && granted != l.state
                    && granted == lr.state
                    && !l.breaking
                {
                    l.state = granted;
                    l.epoch = l.epoch.wrapping_add(1);
                }
                i
            }
            None => {
                entry.oplocks.leases.push(Lease {
                    client,
                    key: lr.key,
                    parent: lr.parent,
                    version: lr.version,
                    state: granted,
                    breaking: false,
                    to_requested: 0,
                    to_required: 0,
                    epoch: lr.epoch.wrapping_add(1),
                    deadline: 0,
                    opens: Vec::new(),
                });
                reg.leases.insert((client, lr.key), a.key);
                entry.oplocks.leases.len() - 1
            }
        };
        let l = &mut entry.oplocks.leases[i];
        l.opens.push((a.who, Notifier::of(conn, req.session_id)));
        return Ok(Granted {
            level: LEVEL_LEASE,
            context: Some(l.response()),
        });
    }

    // An oplock: none for a stat open of an existing file; exclusive or batch only for the
    // file's only open; none beside a lease with handle caching.
    let mut granted = oplock_bits(a.requested);
    if (stat && !a.created) || brlocks || got_handle {
        granted = 0;
    }
    if have_other {
        granted &= !WRITE;
    }
    let level = level_of(granted);
    if level != LEVEL_NONE {
        table
            .entry(a.key)
            .or_default()
            .oplocks
            .oplocks
            .push(Oplock {
                who: a.who,
                file_id: a.file_id,
                level,
                breaking: None,
                to: Notifier::of(conn, req.session_id),
            });
    }
    Ok(Granted {
        level,
        context: None,
    })
}

/// The breaks an open causes (after Samba's delay_for_oplock, which follows Windows): from
/// each other holder the caching the open conflicts with. Returns whether the open must
/// wait for an acknowledgement first.
fn break_for_open(
    f: &mut FileOplocks,
    a: &OpenArgs,
    own_lease: Option<(Guid, Guid)>,
    access: u32,
    overwrite: bool,
    first_attempt: bool,
    now: u64,
) -> bool {
    // Write caching conflicts with any other open; a share-mode conflict asks the holders
    // to give up handle caching instead (so they can close their cached handles).
    let delay_mask = if a.share_ok { WRITE } else { HANDLE };
    let mut delay = false;
    for o in f.oplocks.iter_mut() {
        let e = oplock_bits(o.level);
        let mut to = e & !delay_mask;
        if overwrite {
            to &= !(HANDLE | READ);
        }
        if e & !to == 0 {
            continue;
        }
        // Oplocks break to level II or none; an overwrite breaks to none.
        let to = if overwrite || to & READ == 0 {
            LEVEL_NONE
        } else {
            LEVEL_II
        };
        let awaiting = break_oplock(o, to, now);
        if e & delay_mask != 0 && awaiting {
            delay = true;
        }
    }
    f.oplocks.retain(|o| o.level != LEVEL_NONE);
    let doc = a.options & FILE_DELETE_ON_CLOSE != 0;
    for l in f.leases.iter_mut() {
        if Some((l.client, l.key)) == own_lease || is_lease_stat_open(access) {
            continue;
        }
        let e = l.state;
        let was_breaking = l.breaking;
        let mut to = e & !delay_mask;
        if overwrite {
            to &= !(HANDLE | READ);
        }
        // A delete ends the cached handles of other clients (lease.unlink).
        if doc {
            to &= !HANDLE;
        }
        if e & !to == 0 {
            // Nothing more to take, but a break under way is waited for.
            if was_breaking {
                delay = true;
            }
            continue;
        }
        if overwrite {
            to &= !(READ | WRITE);
        }
        let awaiting = break_lease(l, to, now);
        if (e & delay_mask != 0 || (was_breaking && !first_attempt)) && awaiting {
            delay = true;
        }
    }
    delay
}

/// A write, a byte-range lock or a size change through open `vol` (MS-FSA 2.1.4.12): every
/// read cache other than its own lease breaks to none, level II oplocks included (its own
/// too). An open that holds write caching is alone and breaks nothing. Nothing waits.
pub fn contend(conn: &Conn, vol: u64) {
    let Some(key) = conn.opens.get(&vol).and_then(|o| o.key) else {
        return;
    };
    let who = OpenRef {
        conn: conn.id,
        volatile: vol,
    };
    let Ok(mut files) = conn.server.files.lock() else {
        return;
    };
    let FileTable {
        files: table,
        oplock: reg,
        ..
    } = &mut *files;
    let Some(e) = table.get_mut(&key) else {
        return;
    };
    let f = &mut e.oplocks;
    if f.caching_of(who) & WRITE != 0 {
        return;
    }
    let now = crate::util::monotonic_ms();
    for l in f.leases.iter_mut() {
        if !l.holds(who) && l.state & READ != 0 {
            break_lease(l, 0, now);
        }
    }
    for o in f.oplocks.iter_mut() {
        if o.level == LEVEL_II {
            break_oplock(o, LEVEL_NONE, now);
        }
    }
    f.oplocks.retain(|o| o.level != LEVEL_NONE);
    if f.any_breaking() {
        reg.breaking.insert(key);
    }
}

/// The handle caching of the other leases on the file of open `vol` breaks; returns the
/// number of breaks that await an acknowledgement.
fn break_handles(
    conn: &Conn,
    reg: &mut Registry,
    table: &mut HashMap<FileKey, super::files::FileEntry>,
    vol: u64,
    only_lease_holders: bool,
) -> Option<(FileKey, bool)> {
    let key = conn.opens.get(&vol).and_then(|o| o.key)?;
    let who = OpenRef {
        conn: conn.id,
        volatile: vol,
    };
    let e = table.get_mut(&key)?;
    let f = &mut e.oplocks;
    let own = f.leases.iter().position(|l| l.holds(who));
    if only_lease_holders && own.is_none() {
        return None;
    }
    let now = crate::util::monotonic_ms();
    let mut awaiting = false;
    for (i, l) in f.leases.iter_mut().enumerate() {
        if Some(i) != own && l.state & HANDLE != 0 {
            awaiting |= break_lease(l, l.state & !HANDLE, now);
        }
    }
    if f.any_breaking() {
        reg.breaking.insert(key);
    }
    Some((key, awaiting))
}

/// A rename through open `vol` (SET_INFO FileRenameInformation). When the renaming open holds
/// a lease, the handle caching of every other lease on the file breaks and the rename waits
/// for the acknowledgements (lease.rename_wait), so those clients can close their cached
/// handles first. `Some(reply)` when it waits.
pub fn rename_waits(conn: &mut Conn, req: &Req, vol: u64) -> Option<HResult> {
    let server = conn.server.clone();
    let mut files = server.files.lock().ok()?;
    let FileTable {
        files: table,
        oplock: reg,
        ..
    } = &mut *files;
    let (key, awaiting) = break_handles(conn, reg, table, vol, true)?;
    if !awaiting {
        return None;
    }
    Some(wait(conn, req, reg, key))
}

/// Delete-pending set through open `vol` (SET_INFO FileDispositionInformation): other
/// clients' cached handles are no longer welcome; their handle caching breaks. Nothing waits.
pub fn delete_pending(conn: &Conn, vol: u64) {
    if let Ok(mut files) = conn.server.files.lock() {
        let FileTable {
            files: table,
            oplock: reg,
            ..
        } = &mut *files;
        break_handles(conn, reg, table, vol, false);
    }
}

/// OPLOCK_BREAK from the client (MS-SMB2 3.3.5.22): an oplock or a lease acknowledgement.
pub fn handle_break(conn: &mut Conn, req: &Req) -> HResult {
    let b = req.body();
    if conn.neg.dialect != DIALECT_202 && b.u16(0)? == 36 {
        return lease_ack(conn, req);
    }
    b.expect_structure_size(24)?;
    conn.tree(req)?;
    let level = b.u8(2)?;
    let fid = FileId::parse(&b, 8)?;
    let vol = lookup_fid(conn, req, fid)?;
    let key = conn
        .opens
        .get(&vol)
        .and_then(|o| o.key)
        .ok_or(Fail::Status(status::INVALID_OPLOCK_PROTOCOL))?;
    let who = OpenRef {
        conn: conn.id,
        volatile: vol,
    };
    let server = conn.server.clone();
    let mut files = server
        .files
        .lock()
        .map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
    let FileTable {
        files: table,
        oplock: reg,
        ..
    } = &mut *files;
    let f = &mut table
        .get_mut(&key)
        .ok_or(Fail::Status(status::INVALID_OPLOCK_PROTOCOL))?
        .oplocks;
    tracing::debug!(?who, level, "oplock break acknowledgement");
    let Some(o) = f.oplocks.iter_mut().find(|o| o.who == who) else {
        return Err(Fail::Status(status::INVALID_OPLOCK_PROTOCOL));
    };
    // Only an oplock that is breaking may be acknowledged (a break from level II needs
    // none: Windows answers STATUS_INVALID_OPLOCK_PROTOCOL, smb2.oplock.levelii500).
    let Some((to, _)) = o.breaking else {
        return Err(Fail::Status(status::INVALID_OPLOCK_PROTOCOL));
    };
    let valid = match o.level {
        LEVEL_EXCLUSIVE => matches!(level, LEVEL_II | LEVEL_NONE),
        LEVEL_BATCH => matches!(level, LEVEL_II | LEVEL_NONE | LEVEL_EXCLUSIVE),
        _ => level == LEVEL_NONE,
    };
    let new = if level == LEVEL_II && to == LEVEL_II {
        LEVEL_II
    } else {
        LEVEL_NONE
    };
    o.breaking = None;
    o.level = if valid { new } else { LEVEL_NONE };
    f.oplocks.retain(|o| o.level != LEVEL_NONE);
    wake(&server, reg, key);
    if level == LEVEL_LEASE {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    if !valid {
        return Err(Fail::Status(status::INVALID_OPLOCK_PROTOCOL));
    }
    Ok(Reply::ok(oplock_body(new, fid)))
}

/// A lease break acknowledgement (MS-SMB2 3.3.5.22.2). The acknowledged state must be part
/// of what the notification offered. When a conflict that came while the break was under
/// way needs more, the lease breaks on in steps (to R first while it still caches writes or
/// handles, as Windows does: lease.breaking3).
fn lease_ack(conn: &mut Conn, req: &Req) -> HResult {
    let b = req.body();
    conn.tree(req)?;
    let lkey: Guid = b
        .bytes(8, 16)?
        .try_into()
        .map_err(|_| Fail::Status(status::INVALID_PARAMETER))?;
    let state = b.u32(24)?;
    let client = conn.neg.client_guid;
    let server = conn.server.clone();
    let mut files = server
        .files
        .lock()
        .map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
    let FileTable {
        files: table,
        oplock: reg,
        ..
    } = &mut *files;
    tracing::debug!(state, "lease break acknowledgement");
    let not_found = Fail::Status(status::OBJECT_NAME_NOT_FOUND);
    let key = *reg.leases.get(&(client, lkey)).ok_or(not_found)?;
    let f = &mut table.get_mut(&key).ok_or(not_found)?.oplocks;
    let i = f.find_lease(&client, &lkey).ok_or(not_found)?;
    let l = &mut f.leases[i];
    if !l.breaking {
        return Err(Fail::Status(status::UNSUCCESSFUL));
    }
    if state & !l.to_requested != 0 {
        return Err(Fail::Status(status::REQUEST_NOT_ACCEPTED));
    }
    l.state = state;
    if state & !l.to_required != 0 {
        let mut next = l.to_required;
        if state & (WRITE | HANDLE) != 0 {
            next |= READ;
            l.to_requested = next;
            l.deadline = crate::util::monotonic_ms() + BREAK_TIMEOUT_MS;
            if !l.notify(NOTIFY_ACK_REQUIRED, state, next) {
                l.state = 0;
                l.breaking = false;
            }
        } else {
            l.state = 0;
            l.breaking = false;
            l.notify(0, state, next);
        }
    } else {
        l.breaking = false;
    }
    wake(&server, reg, key);
    let mut body = Vec::with_capacity(36);
    body.put_u16(36);
    body.put_u16(0);
    body.put_u32(0);
    body.extend_from_slice(&lkey);
    body.put_u32(state);
    body.put_u64(0);
    Ok(Reply::ok(body))
}

/// The acknowledgement timer (MS-SMB2 3.3.6.1, 3.3.6.5): breaks whose deadline passed
/// complete as if acknowledged to none, and the requests waiting on them go on. The shell
/// calls this about once a second with `crate::util::monotonic_ms()`.
pub fn tick(server: &Server, now: u64) {
    let Ok(mut files) = server.files.lock() else {
        return;
    };
    let FileTable {
        files: table,
        oplock: reg,
        ..
    } = &mut *files;
    if reg.breaking.is_empty() {
        return;
    }
    let keys: Vec<FileKey> = reg.breaking.iter().copied().collect();
    for key in keys {
        let Some(e) = table.get_mut(&key) else {
            reg.breaking.remove(&key);
            continue;
        };
        let f = &mut e.oplocks;
        let mut expired = false;
        for o in f.oplocks.iter_mut() {
            if o.breaking.is_some_and(|(_, deadline)| deadline <= now) {
                tracing::info!(open = ?o.who, "oplock break timed out; the oplock is gone");
                o.breaking = None;
                o.level = LEVEL_NONE;
                expired = true;
            }
        }
        f.oplocks.retain(|o| o.level != LEVEL_NONE);
        for l in f.leases.iter_mut() {
            if l.breaking && l.deadline <= now {
                tracing::info!("lease break timed out; the lease is broken to none");
                l.breaking = false;
                l.state = 0;
                expired = true;
            }
        }
        if !f.any_breaking() {
            reg.breaking.remove(&key);
        }
        if expired {
            wake(server, reg, key);
        }
    }
}

// ------------------------------------------------------------------ durable handles

/// What open `who` caches, as a durable handle's record keeps it (`durable.rs`): its
/// oplock level, or its lease (`client` is the open's ClientGuid).
pub fn durable_caching(
    files: &FileTable,
    key: &FileKey,
    who: OpenRef,
    client: &Guid,
) -> duet_state::Caching {
    use duet_state::Caching;
    let Some(e) = files.files.get(key) else {
        return Caching::None;
    };
    let f = &e.oplocks;
    if let Some(l) = f
        .leases
        .iter()
        .find(|l| l.holds(who) && l.client == *client)
    {
        let mut flags = if l.breaking {
            FLAG_BREAK_IN_PROGRESS
        } else {
            0
        };
        if l.parent.is_some() {
            flags |= FLAG_PARENT_LEASE_KEY_SET;
        }
        return Caching::Lease(duet_state::Lease {
            key: l.key,
            state: l.state,
            epoch: l.epoch,
            version: l.version,
            parent_key: if l.version >= 2 { l.parent } else { None },
            flags,
        });
    }
    match f
        .oplocks
        .iter()
        .find(|o| o.who == who)
        .map_or(LEVEL_NONE, |o| o.level)
    {
        LEVEL_BATCH => Caching::Batch,
        LEVEL_EXCLUSIVE => Caching::Exclusive,
        LEVEL_II => Caching::LevelII,
        _ => Caching::None,
    }
}

/// The OplockLevel and lease context a CREATE response gives open `who` now (a durable
/// reconnect or the replay of a CREATE).
pub fn granted_now(files: &FileTable, key: &FileKey, who: OpenRef) -> Granted {
    let Some(e) = files.files.get(key) else {
        return Granted::default();
    };
    let f = &e.oplocks;
    if let Some(l) = f.leases.iter().find(|l| l.holds(who)) {
        return Granted {
            level: LEVEL_LEASE,
            context: Some(l.response()),
        };
    }
    Granted {
        level: f
            .oplocks
            .iter()
            .find(|o| o.who == who)
            .map_or(LEVEL_NONE, |o| o.level),
        context: None,
    }
}

/// A durable reconnect: open `from`'s oplock, or its place in its lease, becomes `to`'s,
/// and breaks go to connection `conn` (session `session_id`) from now on.
pub fn reattach(
    conn: &Conn,
    session_id: u64,
    files: &mut FileTable,
    key: &FileKey,
    from: OpenRef,
    to: OpenRef,
) {
    let FileTable {
        files: table,
        oplock: reg,
        ..
    } = files;
    let Some(e) = table.get_mut(key) else {
        return;
    };
    let n = Notifier::of(conn, session_id);
    for o in e.oplocks.oplocks.iter_mut().filter(|o| o.who == from) {
        o.who = to;
        o.to = n.clone();
    }
    for l in e.oplocks.leases.iter_mut() {
        for (w, notifier) in l.opens.iter_mut().filter(|(w, _)| *w == from) {
            *w = to;
            *notifier = n.clone();
        }
    }
    if e.oplocks.any_breaking() {
        reg.breaking.insert(*key);
    }
}

/// Startup: a durable open restored from the state store gets its oplock or lease back.
/// Until its client reconnects nobody can be told of a break, so a break completes at once
/// (as if acknowledged to none).
pub fn restore(
    files: &mut FileTable,
    key: FileKey,
    who: OpenRef,
    file_id: FileId,
    client: Guid,
    caching: &duet_state::Caching,
) {
    use duet_state::Caching;
    let (tx, _) = tokio::sync::mpsc::unbounded_channel();
    let nobody = Notifier {
        outbox: Outbox::new(tx),
        session_id: 0,
        seal: None,
        server: std::sync::Weak::new(),
    };
    let FileTable {
        files: table,
        oplock: reg,
        ..
    } = files;
    let entry = table.entry(key).or_default();
    let level = match caching {
        Caching::Lease(l) => {
            match entry.oplocks.find_lease(&client, &l.key) {
                Some(i) => entry.oplocks.leases[i].opens.push((who, nobody)),
                None => {
                    entry.oplocks.leases.push(Lease {
                        client,
                        key: l.key,
                        parent: l.parent_key,
                        version: l.version,
                        state: l.state,
                        breaking: false,
                        to_requested: 0,
                        to_required: 0,
                        epoch: l.epoch,
                        deadline: 0,
                        opens: vec![(who, nobody)],
                    });
                    reg.leases.insert((client, l.key), key);
                }
            }
            return;
        }
        Caching::Batch => LEVEL_BATCH,
        Caching::Exclusive => LEVEL_EXCLUSIVE,
        Caching::LevelII => LEVEL_II,
        Caching::None => return,
    };
    entry.oplocks.oplocks.push(Oplock {
        who,
        file_id,
        level,
        breaking: None,
        to: nobody,
    });
}

#[cfg(test)]
#[path = "oplock_tests.rs"]
mod tests;

/// Whether a break of open `who`'s oplock or lease awaits its acknowledgement (a durable
/// open whose connection goes then is closed, not kept: MS-SMB2 3.3.7.1 keeps only an
/// open whose oplock or lease is held).
pub fn breaking(files: &FileTable, key: &FileKey, who: OpenRef) -> bool {
    let Some(e) = files.files.get(key) else {
        return false;
    };
    let f = &e.oplocks;
    f.leases.iter().any(|l| l.holds(who) && l.breaking)
        || f.oplocks
            .iter()
            .any(|o| o.who == who && o.breaking.is_some())
}
