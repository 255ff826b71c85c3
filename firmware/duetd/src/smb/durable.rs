//! Durable handles (MS-SMB2 3.3.5.9.6, 3.3.5.9.7, 3.3.5.9.10, 3.3.5.9.12, 3.3.5.9.13,
//! 3.3.5.6, 3.3.7.1): DHnQ and DH2Q grants, DHnC and DH2C reconnects, the replay of a v2
//! CREATE, application instance ids, opens that outlive their connection or session, the
//! scavenger that closes the expired ones, and the restore of every recorded open after the
//! daemon restarts.
//!
//! Owns the server-wide table of durable opens ([`Durable`], by persistent FileId) and their
//! records in the state store (`duet_state::DurableOpen`). A connected durable open lives in
//! its connection's `Conn::opens` like any other; the table knows where. A disconnected one
//! is parked here, `files::Open` and all: its share-mode entry, byte-range locks and oplock
//! or lease stay registered in the file table under its old `OpenRef`, so it keeps its
//! place against other opens until it is reconnected (moved to the new connection) or
//! closed (expired, or purged by an open that must break its caching).
//!
//! Reliable state: a record is submitted to the group commit whenever an open is granted
//! durability, reconnected, changes its byte-range locks, lease or oplock, or is closed; the
//! response that tells the client is held in the connection's outbox until that commit is
//! durable (`Outbox::hold`), without blocking the connection meanwhile. Disconnects are
//! committed without holding anything (after a crash every open is disconnected anyway).
//! A rename of a file (or of a stream) with durable opens rewrites their records' paths
//! before its response leaves, since a restart or takeover opens them again by path. An
//! open of a named stream is recorded as `path:stream` and restored on that stream.
//!
//! # Sessions and client connections
//!
//! A session gets a `duet_state::SessionRecord`, and a connection a
//! `duet_state::ClientConnection` (client and server address and port, for the tickle
//! ACKs of a takeover: [`client_connections`]), when the first durable open that belongs
//! to it is committed: the records are submitted just before that open's and the same
//! response (the CREATE that grants it, or a reconnect) waits for them. A session or
//! connection that never holds a durable open costs no commit at all (most do not; a
//! session record only serves a PreviousSessionId reconnect of a client with durable
//! handles, which is what survives a restart), and every session that owns a durable
//! open has a record before the client learns of the open. Nothing waits for the
//! removals: a connection's record goes when it closes; a session's at LOGOFF or
//! connection loss when no durable open of it is left, otherwise when its last one
//! expires, is closed or is reconnected by another session (the scavenger's sweep), or
//! when a SESSION_SETUP of the same user names it in PreviousSessionId (that removal the
//! response waits for). At startup the records of an earlier run that a restored open
//! belongs to (a session of the open's user and client; a connection of its client) are
//! kept, the others removed; the kept ones go as above once their opens are reconnected
//! or expire.
//!
//! Lock order: the durable table, then `Server::files`; never the other way round (the
//! file-table paths that report to this module, locks and breaks, drop their locks first).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use duet_fscc::consts::*;
use duet_hal::fs::{Disposition, Kind, OpenOptions, ShareRoot};
use duet_state::{
    ByteRangeLock, Caching, ChangeKind, ClientConnection, DurableOpen, DurableVersion,
    FileIdentity, SessionRecord,
};

use super::create::{self, CreateContext, FILE_OPENED};
use super::files::{share_id, ByteLock, FileKey, Open, OpenKind, OpenRef, ShareEntry};
use super::oplock::{self, Granted, LEVEL_BATCH, LEVEL_LEASE};
use super::streams::StreamPart;
use super::{Conn, ConnEvent, Fail, FileId, HResult, Reply, Req, Server, TreeKind, DIALECT_300};
use crate::wire::header::flags;
use crate::wire::{le_u32, status, PutLe};

/// Durable v1 handles are kept this long after a disconnect (Samba: 16 minutes); the
/// `smb.durable_v1_timeout_secs` setting changes it.
pub const DEFAULT_V1_TIMEOUT_MS: u32 = 16 * 60 * 1000;
/// A DH2Q asking for timeout 0 gets this (Windows Server 2012 and Samba: 60 s).
pub const DEFAULT_V2_TIMEOUT_MS: u32 = 60_000;
/// The most a DH2Q is granted (Samba measured: 600000 -> 300000).
pub const MAX_V2_TIMEOUT_MS: u32 = 300_000;
/// SMB2_DHANDLE_FLAG_PERSISTENT.
pub const FLAG_PERSISTENT: u32 = 0x0000_0002;
/// SMB2_CREATE_APP_INSTANCE_ID (MS-SMB2 2.2.13.2.13): the context's name is this GUID.
pub const APP_INSTANCE_ID: [u8; 16] = [
    0x45, 0xBC, 0xA6, 0x6A, 0xEF, 0xA7, 0xF7, 0x4A, 0x90, 0x08, 0xFA, 0x46, 0x2E, 0x14, 0x4D, 0x74,
];
/// The `OpenRef::conn` of opens restored from the store (no connection has id 0).
pub const RESTORED_CONN: u64 = 0;
/// How long a reconnect waits for another connection to let go of the open (a session
/// reconnect whose old session is being logged off there), and an app instance open for
/// the older open to close.
const HANDOVER_WAIT: Duration = Duration::from_secs(5);
/// Records of a pending CREATE's CreateGuid are forgotten after this long.
const PENDING_FORGET_MS: u64 = 120_000;
/// Change-feed entries kept once the scavenger prunes the feed (until the partner link
/// tracks what it has acknowledged, nothing else reads them).
const CHANGES_KEPT: u64 = 100_000;

type Guid = [u8; 16];

// ------------------------------------------------------------------ requests

/// What a CREATE asks for (after `parse`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Request {
    #[default]
    None,
    /// DHnQ.
    V1,
    /// DH2Q.
    V2 {
        create_guid: Guid,
        timeout_ms: u32,
        persistent: bool,
        /// SMB2_CREATE_APP_INSTANCE_ID sent with it.
        app_instance: Option<Guid>,
    },
}

/// A DHnC or DH2C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reconnect {
    pub persistent_id: u64,
    /// DH2C: its CreateGuid and persistent flag.
    pub v2: Option<(Guid, bool)>,
}

/// The durable-handle contexts of a CREATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Parsed {
    pub request: Request,
    pub reconnect: Option<Reconnect>,
    pub app_instance: Option<Guid>,
}

fn guid(b: &[u8]) -> Result<Guid, u32> {
    b.try_into().map_err(|_| status::INVALID_PARAMETER)
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, u32> {
    crate::wire::le_u64(b, off).map_err(|_| status::INVALID_PARAMETER)
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, u32> {
    le_u32(b, off).map_err(|_| status::INVALID_PARAMETER)
}

/// Reads the durable-handle contexts (MS-SMB2 2.2.13.2.3, .4, .11, .12, .13) and refuses
/// the combinations 3.3.5.9.7, 3.3.5.9.10 and 3.3.5.9.12 forbid. v2 contexts are for SMB
/// 3.x only; below that they are not looked at.
pub fn parse(dialect: u16, contexts: &[CreateContext]) -> Result<Parsed, u32> {
    let v2_ok = dialect >= DIALECT_300;
    let (mut dhnq, mut dhnc, mut dh2q, mut dh2c, mut app) = (None, None, None, None, None);
    for (name, data) in contexts {
        match *name {
            b"DHnQ" => dhnq = Some(*data),
            b"DHnC" => dhnc = Some(*data),
            b"DH2Q" if v2_ok => dh2q = Some(*data),
            b"DH2C" if v2_ok => dh2c = Some(*data),
            n if n == APP_INSTANCE_ID && v2_ok => app = Some(*data),
            _ => {}
        }
    }
    let bad = status::INVALID_PARAMETER;
    let mut p = Parsed::default();
    if let Some(d) = app {
        // StructureSize 20, Reserved, AppInstanceId.
        if d.len() < 20 || crate::wire::le_u16(d, 0).map_err(|_| bad)? != 20 {
            return Err(bad);
        }
        let id = guid(&d[4..20])?;
        p.app_instance = (id != [0; 16]).then_some(id);
    }
    if dh2c.is_some() && (dhnq.is_some() || dhnc.is_some() || dh2q.is_some()) {
        return Err(bad);
    }
    if dh2q.is_some() && (dhnq.is_some() || dhnc.is_some()) {
        return Err(bad);
    }
    if let Some(d) = dhnc {
        if d.len() < 16 {
            return Err(bad);
        }
        // A DHnQ beside it is ignored (3.3.5.9.7).
        p.reconnect = Some(Reconnect {
            persistent_id: u64_at(d, 0)?,
            v2: None,
        });
        return Ok(p);
    }
    if let Some(d) = dh2c {
        if d.len() < 36 {
            return Err(bad);
        }
        p.reconnect = Some(Reconnect {
            persistent_id: u64_at(d, 0)?,
            v2: Some((guid(&d[16..32])?, u32_at(d, 32)? & FLAG_PERSISTENT != 0)),
        });
        return Ok(p);
    }
    if let Some(d) = dh2q {
        if d.len() < 32 {
            return Err(bad);
        }
        p.request = Request::V2 {
            timeout_ms: u32_at(d, 0)?,
            persistent: u32_at(d, 4)? & FLAG_PERSISTENT != 0,
            create_guid: guid(&d[16..32])?,
            app_instance: p.app_instance,
        };
    } else if let Some(d) = dhnq {
        if d.len() < 16 {
            return Err(bad);
        }
        p.request = Request::V1;
    }
    Ok(p)
}

/// The timeout a DH2Q is granted: 0 gets the default, more than the maximum the maximum.
pub fn v2_timeout(asked_ms: u32) -> u32 {
    match asked_ms {
        0 => DEFAULT_V2_TIMEOUT_MS,
        t => t.min(MAX_V2_TIMEOUT_MS),
    }
}

/// The lease key of a CREATE's RqLs context, if it has one.
fn lease_key_of(contexts: &[CreateContext]) -> Option<Guid> {
    contexts
        .iter()
        .find(|(n, _)| *n == b"RqLs")
        .and_then(|(_, d)| d.get(0..16))
        .and_then(|k| k.try_into().ok())
}

/// Whether an open with this oplock or lease may be durable: a batch oplock or a lease with
/// handle caching (3.3.5.9.6, 3.3.7.1).
fn durable_caching(c: &Caching) -> bool {
    match c {
        Caching::Batch => true,
        Caching::Lease(l) => l.state & oplock::HANDLE != 0,
        _ => false,
    }
}

/// Whether a granted oplock level and lease context allow durability.
fn grant_allows(g: &Granted) -> bool {
    match g.level {
        LEVEL_BATCH => true,
        LEVEL_LEASE => g
            .context
            .as_deref()
            .and_then(|c| le_u32(c, 16).ok())
            .is_some_and(|s| s & oplock::HANDLE != 0),
        _ => false,
    }
}

// ------------------------------------------------------------------ the table

/// One durable open.
pub struct Entry {
    /// As last submitted to the store.
    pub record: DurableOpen,
    pub key: FileKey,
    pub state: State,
    /// The CreateAction of the CREATE that made it (a replay answers it again).
    pub create_action: u32,
    /// Whether a record of it was submitted to the store (one granted and closed within a
    /// frame never is).
    pub committed: bool,
}

pub enum State {
    /// In `Conn::opens` of connection `conn` (volatile id `record.volatile_id`).
    Connected { conn: u64, session_id: u64 },
    /// Parked: registered in the file table as `who`, closed at `deadline_ms` (wall clock,
    /// ms since the epoch) unless reconnected first.
    Disconnected {
        open: Box<Open>,
        who: OpenRef,
        deadline_ms: u64,
        /// Restored from the store after a restart: conflicting opens are refused rather
        /// than purging it (see [`purge_for_open`]).
        restored: bool,
    },
}

impl Entry {
    fn is_disconnected(&self) -> bool {
        matches!(self.state, State::Disconnected { .. })
    }
}

#[derive(Default)]
pub struct Table {
    entries: HashMap<u64, Entry>,
    /// (ClientGuid, CreateGuid) of v2 opens -> persistent id (replays, duplicates).
    by_create_guid: HashMap<(Guid, Guid), u64>,
    /// AppInstanceId -> persistent id.
    by_app: HashMap<Guid, u64>,
    /// The durable opens of each file.
    by_file: HashMap<FileKey, Vec<u64>>,
    /// v2 CREATEs waiting for a break: (ClientGuid, CreateGuid) -> (connection, MessageId,
    /// since, ms since the epoch).
    pending: HashMap<(Guid, Guid), (u64, u64, u64)>,
    /// Connected opens made by a v2 CREATE, durable or not: what a replay answers with.
    replays: HashMap<(Guid, Guid), Replayable>,
    /// Persistent id -> its key in `replays`.
    replay_of: HashMap<u64, (Guid, Guid)>,
    /// The session records in the store, by session id (see "Sessions and client
    /// connections" in the module doc).
    sessions: HashMap<u64, SessionRecord>,
    /// The client connection records in the store, by connection id.
    conns: HashMap<u64, ConnRecord>,
}

/// A client connection record as this server keeps track of it.
struct ConnRecord {
    record: ClientConnection,
    /// Recorded by an earlier run of the daemon (or the partner): kept while a restored
    /// open of its client waits for a reconnect.
    earlier: bool,
}

/// An open a replayed CREATE may get back (MS-SMB2 Open.IsReplayEligible and CreateGuid).
#[derive(Clone, Copy, Debug)]
struct Replayable {
    conn: u64,
    session_id: u64,
    volatile: u64,
    key: FileKey,
    create_action: u32,
    /// Cleared by the first other request on the open: a replay then makes a new open.
    eligible: bool,
}

impl Table {
    fn insert(&mut self, e: Entry) {
        let id = e.record.persistent_id;
        if e.record.version == DurableVersion::V2 {
            self.by_create_guid
                .insert((e.record.client_guid, e.record.create_guid), id);
        }
        if let Some(a) = e.record.app_instance_id {
            self.by_app.insert(a, id);
        }
        self.by_file.entry(e.key).or_default().push(id);
        self.entries.insert(id, e);
    }

    fn forget_replay(&mut self, id: u64) {
        if let Some(g) = self.replay_of.remove(&id) {
            self.replays.remove(&g);
        }
    }

    fn remove(&mut self, id: u64) -> Option<Entry> {
        self.forget_replay(id);
        let e = self.entries.remove(&id)?;
        let g = (e.record.client_guid, e.record.create_guid);
        if self.by_create_guid.get(&g) == Some(&id) {
            self.by_create_guid.remove(&g);
        }
        if let Some(a) = e.record.app_instance_id {
            if self.by_app.get(&a) == Some(&id) {
                self.by_app.remove(&a);
            }
        }
        if let Some(v) = self.by_file.get_mut(&e.key) {
            v.retain(|x| *x != id);
            if v.is_empty() {
                self.by_file.remove(&e.key);
            }
        }
        Some(e)
    }

    pub fn get(&self, id: u64) -> Option<&Entry> {
        self.entries.get(&id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many are disconnected.
    pub fn disconnected(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.is_disconnected())
            .count()
    }
}

/// The server's durable handles (a field of `Server`).
pub struct Durable {
    table: Mutex<Table>,
    /// Signalled whenever an open is parked or closed (handovers wait on it).
    changed: Condvar,
    /// Entries in the table: lets the common paths skip the lock when there are none.
    count: AtomicUsize,
    /// Disconnected entries (checked by every CREATE).
    parked: AtomicUsize,
    v1_timeout_ms: AtomicU32,
    /// Whether DHnQ and DH2Q are granted at all (setting `smb.durable_handles`).
    enabled: std::sync::atomic::AtomicBool,
}

impl Default for Durable {
    fn default() -> Self {
        Durable {
            table: Mutex::default(),
            changed: Condvar::new(),
            count: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
            v1_timeout_ms: AtomicU32::new(DEFAULT_V1_TIMEOUT_MS),
            enabled: std::sync::atomic::AtomicBool::new(true),
        }
    }
}

impl Durable {
    pub fn lock(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets how long durable v1 handles are kept after a disconnect.
    pub fn set_v1_timeout_ms(&self, ms: u32) {
        self.v1_timeout_ms.store(ms, Ordering::Relaxed);
    }

    pub fn v1_timeout_ms(&self) -> u32 {
        self.v1_timeout_ms.load(Ordering::Relaxed)
    }

    /// Grants durable handles or not (reconnects of existing ones still work).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    fn counts(&self, t: &Table) {
        self.count
            .store(t.len() + t.replays.len(), Ordering::Relaxed);
        self.parked.store(t.disconnected(), Ordering::Relaxed);
    }

    /// Whether any open is durable or replayable (else the common paths skip the lock).
    fn any(&self) -> bool {
        self.count.load(Ordering::Relaxed) != 0
    }
}

fn now_ms() -> u64 {
    duet_state::unix_time_ms()
}

/// Submits a change without waiting for it; the caller holds its response on the ticket,
/// or drops it when nothing waits for the commit.
fn submit(server: &Server, change: ChangeKind) -> duet_state::Ticket {
    server.store.submit_nowait(&change)
}

fn put(server: &Server, record: &DurableOpen) -> duet_state::Ticket {
    submit(
        server,
        ChangeKind::DurableOpenPut {
            open: Box::new(record.clone()),
        },
    )
}

fn removal(server: &Server, persistent_id: u64) -> duet_state::Ticket {
    submit(server, ChangeKind::DurableOpenRemoved { persistent_id })
}

/// Whether session `id` is still a valid session of some connection.
fn session_alive(server: &Server, id: u64) -> bool {
    server
        .sessions
        .lock()
        .map(|r| r.get(id).is_some())
        .unwrap_or(false)
}

// ------------------------------------------------------------------ sessions, connections

/// The session a durable open belongs to (a restored one: the recorded session of its
/// user and client, 0 if there was none).
fn session_of(e: &Entry) -> u64 {
    match &e.state {
        State::Connected { session_id, .. } => *session_id,
        State::Disconnected { open, .. } => open.session_id,
    }
}

/// A string as the store takes it in a session record (no control characters, at most
/// 256 of them): a client's domain name is whatever it sent.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(256).collect()
}

/// A durable open of session `session_id` on this connection is about to be committed:
/// the session and the connection get their records first, unless they have them
/// already, and whatever answers next waits for them too.
fn record_owner(conn: &Conn, t: &mut Table, session_id: u64) {
    use std::collections::hash_map::Entry::Vacant;
    let server = &conn.server;
    if let Vacant(slot) = t.sessions.entry(session_id) {
        let dialect_ok = matches!(conn.neg.dialect, 0x0202 | 0x0210 | 0x0300 | 0x0302 | 0x0311);
        if let Some(s) = conn.sessions.get(&session_id).filter(|_| dialect_ok) {
            let record = SessionRecord {
                session_id,
                user: clean(&s.user),
                domain: clean(&s.domain),
                client_guid: conn.neg.client_guid,
                dialect: conn.neg.dialect,
            };
            conn.outbox.hold(submit(
                server,
                ChangeKind::SessionPut {
                    session: record.clone(),
                },
            ));
            slot.insert(record);
        }
    }
    if let Vacant(slot) = t.conns.entry(conn.id) {
        let record = ClientConnection {
            id: conn.id,
            client: conn.peer,
            server: conn.local,
            client_guid: conn.neg.client_guid,
            connected_since_ms: conn.accepted_ms,
        };
        conn.outbox.hold(submit(
            server,
            ChangeKind::ClientConnectionPut {
                connection: record.clone(),
            },
        ));
        slot.insert(ConnRecord {
            record,
            earlier: false,
        });
    }
}

/// Forgets a session record and removes it from the store; the ticket of the removal,
/// if there was a record.
fn drop_session(server: &Server, t: &mut Table, session_id: u64) -> Option<duet_state::Ticket> {
    t.sessions.remove(&session_id)?;
    Some(submit(server, ChangeKind::SessionRemoved { session_id }))
}

/// Called by `Conn::logoff` and `Conn::teardown` once the sessions have ended (their
/// durable opens disconnected or closed): the record of each that no durable open
/// belongs to any more goes (nothing waits for it). One whose opens are parked keeps its
/// record until they are reconnected elsewhere or expire.
pub fn session_ended(conn: &Conn, ids: &[u64]) {
    let server = &conn.server;
    let mut t = server.durable.lock();
    if t.sessions.is_empty() {
        return;
    }
    for &id in ids {
        if t.sessions.contains_key(&id) && !t.entries.values().any(|e| session_of(e) == id) {
            drop(drop_session(server, &mut t, id));
        }
    }
}

/// Called by `Conn::teardown`: the connection's record goes (nothing waits for it), and
/// so do those of its sessions that no durable open belongs to.
pub fn conn_ended(conn: &Conn) {
    let ids: Vec<u64> = conn.sessions.keys().copied().collect();
    session_ended(conn, &ids);
    let server = &conn.server;
    let mut t = server.durable.lock();
    if t.conns.remove(&conn.id).is_some() {
        drop(submit(
            server,
            ChangeKind::ClientConnectionRemoved { id: conn.id },
        ));
    }
}

/// Session reconnect (PreviousSessionId, 3.3.5.5.3) by `user`: the recorded session
/// `previous` of the same user is gone, here or in an earlier run of the daemon, and its
/// record goes before the SESSION_SETUP response leaves. One of another user stays.
pub fn previous_session(conn: &Conn, previous: u64, user: &str) {
    let server = &conn.server;
    let mut t = server.durable.lock();
    let same_user = t
        .sessions
        .get(&previous)
        .is_some_and(|r| r.user.to_lowercase() == user.to_lowercase());
    if same_user {
        if let Some(ticket) = drop_session(server, &mut t, previous) {
            conn.outbox.hold(ticket);
        }
    }
}

/// The scavenger's sweep: a session record goes once no durable open belongs to its
/// session and the session is not valid any more (its last open expired, was purged or
/// was reconnected by another session); a record of an earlier run's connection goes once
/// no restored open of its client is left waiting.
fn sweep_records(server: &Server, t: &mut Table) {
    if t.sessions.is_empty() && t.conns.is_empty() {
        return;
    }
    let owners: std::collections::HashSet<u64> = t.entries.values().map(session_of).collect();
    let gone: Vec<u64> = t
        .sessions
        .keys()
        .copied()
        .filter(|id| !owners.contains(id) && !session_alive(server, *id))
        .collect();
    for id in gone {
        tracing::debug!(session = id, "session record removed: no durable open left");
        drop(drop_session(server, t, id));
    }
    let waiting: std::collections::HashSet<Guid> = t
        .entries
        .values()
        .filter(|e| matches!(e.state, State::Disconnected { restored: true, .. }))
        .map(|e| e.record.client_guid)
        .collect();
    let stale: Vec<u64> = t
        .conns
        .iter()
        .filter(|(_, c)| c.earlier && !waiting.contains(&c.record.client_guid))
        .map(|(id, _)| *id)
        .collect();
    for id in stale {
        t.conns.remove(&id);
        drop(submit(server, ChangeKind::ClientConnectionRemoved { id }));
    }
}

/// The client connections recorded in the state store (each with its client's and the
/// server's address and port), for the node that takes the service address over: it
/// sends each client a tickle ACK so that it notices at once that its TCP connection is
/// gone and reconnects its durable handles. Ordered by connection id.
pub fn client_connections(
    server: &Server,
) -> Result<Vec<ClientConnection>, duet_state::StoreError> {
    server.store.list_client_connections()
}

// ------------------------------------------------------------------ CREATE: before the open

/// Called by CREATE before anything is opened. Answers a reconnect (DHnC/DH2C) and the
/// replay of a v2 CREATE that already succeeded, refuses a replay of one still waiting for
/// a break (STATUS_FILE_NOT_AVAILABLE) and a second v2 CREATE with the same CreateGuid
/// (STATUS_DUPLICATE_OBJECTID), and closes the older open of an application instance.
/// `Err` is the answer; `Ok` says what the CREATE asks for.
pub fn begin_create(
    conn: &mut Conn,
    req: &Req,
    name: &str,
    contexts: &[CreateContext],
    requested_oplock: u8,
) -> Result<Request, HResult> {
    let p = parse(conn.neg.dialect, contexts).map_err(|st| Err(Fail::Status(st)))?;
    if let Some(rc) = p.reconnect {
        return Err(reconnect(conn, req, name, contexts, rc));
    }
    if p.request == Request::None && p.app_instance.is_none() {
        return Ok(Request::None);
    }
    if let Request::V2 { create_guid, .. } = p.request {
        let replay = req.flags & flags::REPLAY_OPERATION != 0;
        let g = (conn.neg.client_guid, create_guid);
        let server = conn.server.clone();
        let mut t = server.durable.lock();
        if let Some(&(c, mid, _)) = t.pending.get(&g) {
            if c == conn.id && mid == req.message_id {
                // The waiting CREATE itself, run again after its break.
                t.pending.remove(&g);
            } else if replay {
                return Err(Err(Fail::Status(status::FILE_NOT_AVAILABLE)));
            } else {
                return Err(Err(Fail::Status(status::DUPLICATE_OBJECTID)));
            }
        }
        if let Some(r) = t.replays.get(&g).copied() {
            if !replay {
                return Err(Err(Fail::Status(status::DUPLICATE_OBJECTID)));
            }
            drop(t);
            if r.eligible && r.conn == conn.id && r.session_id == req.session_id {
                return Err(replay_response(
                    conn,
                    contexts,
                    requested_oplock,
                    r.volatile,
                    r.create_action,
                    r.key,
                ));
            }
        } else if t.by_create_guid.contains_key(&g) && !replay {
            return Err(Err(Fail::Status(status::DUPLICATE_OBJECTID)));
        }
    }
    if let Some(app) = p.app_instance {
        close_app_instance(conn, req, app);
    }
    Ok(p.request)
}

/// SMB2_CREATE_APP_INSTANCE_ID (3.3.5.9.13): an open of another instance of the
/// application (same id, same user) is closed before this CREATE goes on. One of another
/// connection leaves the file table here and now (so this CREATE does not conflict with
/// it); its connection is told to drop it, which it does before it handles anything else.
fn close_app_instance(conn: &mut Conn, req: &Req, app: Guid) {
    let user = session_user(conn, req.session_id);
    let server = conn.server.clone();
    let mut t = server.durable.lock();
    let Some(&id) = t.by_app.get(&app) else {
        return;
    };
    let Some(e) = t.get(id) else { return };
    if e.record.owner_user != user {
        return;
    }
    tracing::info!(peer = %conn.peer, persistent = id, "closing the open of an earlier application instance");
    match e.state {
        State::Connected { conn: c, .. } if c == conn.id => {
            let vol = e.record.volatile_id;
            drop(t);
            create::close_open(conn, vol);
        }
        State::Connected { conn: c, .. } => {
            let Some(e) = t.remove(id) else { return };
            server.durable.counts(&t);
            drop(t);
            let who = OpenRef {
                conn: c,
                volatile: e.record.volatile_id,
            };
            server.post(
                c,
                ConnEvent::Durable(Event::Close {
                    volatile: who.volatile,
                    persistent: id,
                }),
            );
            if let Ok(mut files) = server.files.lock() {
                files.remove_open(&e.key, who);
            }
            super::lock::wake(&server, e.key);
            oplock::wake_file(&server, e.key);
            conn.outbox.hold(removal(&server, id));
        }
        State::Disconnected { .. } => {
            let e = t.remove(id);
            server.durable.counts(&t);
            drop(t);
            if let Some(e) = e {
                close_entry(conn.server.as_ref(), Some(conn), e, false);
                conn.outbox.hold(removal(&server, id));
            }
        }
    }
}

/// The lower-cased user name of a session ("" when there is none).
fn session_user(conn: &Conn, session_id: u64) -> String {
    conn.sessions
        .get(&session_id)
        .map(|s| s.user.to_lowercase())
        .unwrap_or_default()
}

/// Every open a v2 CREATE made, durable or not, may be replayed (3.3.5.9.10) until its
/// first other request.
fn note_replayable(conn: &Conn, req: &Req, create_guid: Guid, vol: u64, create_action: u32) {
    let Some(o) = conn.opens.get(&vol) else {
        return;
    };
    let Some(key) = o.key else { return };
    let g = (conn.neg.client_guid, create_guid);
    let server = &conn.server;
    let mut t = server.durable.lock();
    // A replay that made a new open (the old one was no longer eligible) takes the
    // CreateGuid over.
    if t.replays.contains_key(&g) {
        t.replay_of.retain(|_, v| *v != g);
    }
    t.replays.insert(
        g,
        Replayable {
            conn: conn.id,
            session_id: req.session_id,
            volatile: vol,
            key,
            create_action,
            eligible: true,
        },
    );
    t.replay_of.insert(o.file_id.persistent, g);
    server.durable.counts(&t);
}

/// The ChannelSequence of a request's SMB 3.x header.
fn channel_sequence(req: &Req) -> u16 {
    u16::from_le_bytes([req.msg[8], req.msg[9]])
}

/// Replay state of one open, kept in its connection (`Conn::replay_state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayState {
    /// Open.ChannelSequence.
    pub channel_sequence: u16,
    /// Open.IsReplayEligible of an open made by a v2 CREATE (the server-wide entry is
    /// only looked at while this is set).
    pub replay_eligible: bool,
}

/// MS-SMB2 3.3.5.2.10 (no multichannel, so no requests outstanding on an older channel):
/// a request naming open `vol` with a ChannelSequence newer than the open's (within half
/// the 16-bit space) moves it forward; an older one fails WRITE, SET_INFO and IOCTL with
/// STATUS_FILE_NOT_AVAILABLE (a replay of a request sent before a failover).
pub fn check_channel_sequence(conn: &Conn, req: &Req, vol: u64) -> Result<(), Fail> {
    if conn.neg.dialect < DIALECT_300 || req.msg.len() < 10 {
        return Ok(());
    }
    let csn = channel_sequence(req);
    let mut m = conn.replay_state.borrow_mut();
    let cur = &mut m
        .entry(vol)
        .or_insert(ReplayState {
            channel_sequence: csn,
            replay_eligible: false,
        })
        .channel_sequence;
    if csn == *cur {
        return Ok(());
    }
    if csn.wrapping_sub(*cur) <= 0x7FFF {
        *cur = csn;
        return Ok(());
    }
    use crate::wire::Command::{Ioctl, SetInfo, Write};
    if matches!(req.command, Write | SetInfo | Ioctl) {
        return Err(Fail::Status(status::FILE_NOT_AVAILABLE));
    }
    Ok(())
}

/// A request other than a CREATE named open `fid`: a replay of the CREATE that made it
/// no longer gets it back (Open.IsReplayEligible).
pub fn touched(conn: &Conn, fid: FileId) {
    let eligible = conn
        .replay_state
        .borrow_mut()
        .get_mut(&fid.volatile)
        .map(|s| std::mem::take(&mut s.replay_eligible))
        .unwrap_or(false);
    if !eligible {
        return;
    }
    let mut t = conn.server.durable.lock();
    let Some(g) = t.replay_of.get(&fid.persistent).copied() else {
        return;
    };
    if let Some(r) = t.replays.get_mut(&g) {
        if r.conn == conn.id && r.volatile == fid.volatile {
            r.eligible = false;
        }
    }
}

/// The CreateGuid of a v2 CREATE that went async waiting for a break: until it completes,
/// its replay is answered STATUS_FILE_NOT_AVAILABLE.
pub fn note_pending(conn: &Conn, req: &Req, request: &Request, reply: &HResult) {
    if let (Request::V2 { create_guid, .. }, Ok(Reply::Pending { .. })) = (request, reply) {
        conn.server.durable.lock().pending.insert(
            (conn.neg.client_guid, *create_guid),
            (conn.id, req.message_id, now_ms()),
        );
    }
}

// ------------------------------------------------------------------ CREATE: conflicts

/// Called by CREATE once it knows the file and the access it grants, before the share-mode
/// check: the disconnected durable opens of the file whose caching this open would have to
/// break are dealt with. One whose client dropped its connection is closed (purged: its
/// reconnect will get STATUS_OBJECT_NAME_NOT_FOUND, as with Windows and Samba); one
/// restored after a restart refuses the open with STATUS_SHARING_VIOLATION until it is
/// reconnected or expires (the server, not the client, went away, and its client is
/// coming back with whatever it cached). `Ok(true)`: something was closed and the CREATE
/// must start again (the file may be gone: delete on close).
#[allow(clippy::too_many_arguments)]
pub fn purge_for_open(
    conn: &Conn,
    key: FileKey,
    access: u32,
    share_access: u32,
    disposition: u32,
    options: u32,
    requested_oplock: u8,
    contexts: &[CreateContext],
) -> Result<bool, Fail> {
    let server = &conn.server;
    if server.durable.parked.load(Ordering::Relaxed) == 0 {
        return Ok(false);
    }
    let lease = (requested_oplock == LEVEL_LEASE)
        .then(|| lease_key_of(contexts))
        .flatten()
        .map(|k| (conn.neg.client_guid, k));
    let overwrite = matches!(
        disposition,
        create::FILE_SUPERSEDE | create::FILE_OVERWRITE | create::FILE_OVERWRITE_IF
    );
    let mut t = server.durable.lock();
    let Some(ids) = t.by_file.get(&key).cloned() else {
        return Ok(false);
    };
    let mut purge = Vec::new();
    for id in ids {
        let Some(e) = t.get(id) else { continue };
        let State::Disconnected { restored, .. } = &e.state else {
            continue;
        };
        let held = &e.record;
        let same_lease = match (&held.caching, lease) {
            (Caching::Lease(l), Some((c, k))) => held.client_guid == c && l.key == k,
            _ => false,
        };
        if same_lease || !breaks_caching(held, access, share_access, overwrite, options) {
            continue;
        }
        if *restored {
            tracing::info!(
                persistent = id,
                "open refused: a durable open restored after a restart holds the file"
            );
            return Err(Fail::Status(status::SHARING_VIOLATION));
        }
        purge.push(id);
    }
    if purge.is_empty() {
        return Ok(false);
    }
    let gone: Vec<Entry> = purge.iter().filter_map(|id| t.remove(*id)).collect();
    server.durable.counts(&t);
    drop(t);
    for e in gone {
        tracing::info!(persistent = e.record.persistent_id, path = %e.record.path,
            "disconnected durable open closed: another open needs what it caches");
        let id = e.record.persistent_id;
        close_entry(server, Some(conn), e, false);
        conn.outbox.hold(removal(server, id));
    }
    Ok(true)
}

/// Whether an open with this access, sharing and disposition would have to break what a
/// disconnected durable open caches (MS-FSA 2.1.4.12 as it applies to a holder that is
/// never another open of the same lease): write caching breaks for any other open that
/// reads or writes data, handle caching for one whose share modes conflict or that deletes
/// on close, everything for an overwrite. Attribute-only opens break nothing.
fn breaks_caching(
    held: &DurableOpen,
    access: u32,
    share: u32,
    overwrite: bool,
    options: u32,
) -> bool {
    let stat = FILE_READ_ATTRIBUTES | FILE_WRITE_ATTRIBUTES | SYNCHRONIZE | READ_CONTROL;
    if access & !stat == 0 && !overwrite {
        return false;
    }
    let bits = match &held.caching {
        Caching::Batch => oplock::READ | oplock::WRITE | oplock::HANDLE,
        Caching::Exclusive => oplock::READ | oplock::WRITE,
        Caching::LevelII => oplock::READ,
        Caching::Lease(l) => l.state,
        Caching::None => 0,
    };
    if overwrite && bits != 0 {
        return true;
    }
    if bits & oplock::WRITE != 0 {
        return true;
    }
    if bits & oplock::HANDLE != 0 {
        let doc = options & create::FILE_DELETE_ON_CLOSE != 0;
        return doc || shares_conflict(held.granted_access, held.share_access, access, share);
    }
    false
}

/// MS-FSA 2.1.5.1.2.1 between two opens.
fn shares_conflict(a_access: u32, a_share: u32, b_access: u32, b_share: u32) -> bool {
    let data = FILE_READ_DATA | FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_EXECUTE | DELETE;
    if a_access & data == 0 || b_access & data == 0 {
        return false;
    }
    let one_way = |access: u32, share: u32| {
        (access & (FILE_READ_DATA | FILE_EXECUTE) != 0 && share & FILE_SHARE_READ == 0)
            || (access & (FILE_WRITE_DATA | FILE_APPEND_DATA) != 0 && share & FILE_SHARE_WRITE == 0)
            || (access & DELETE != 0 && share & FILE_SHARE_DELETE == 0)
    };
    one_way(b_access, a_share) || one_way(a_access, b_share)
}

const FILE_SHARE_READ: u32 = super::files::FILE_SHARE_READ;
const FILE_SHARE_WRITE: u32 = super::files::FILE_SHARE_WRITE;
const FILE_SHARE_DELETE: u32 = super::files::FILE_SHARE_DELETE;

// ------------------------------------------------------------------ CREATE: the grant

/// Called by CREATE once the open is in `conn.opens`: grants durability when it was asked
/// for and the open qualifies (a file, with a batch oplock or a lease with handle caching),
/// records it, holds the response until the record is durable, and returns the response
/// context (DHnQ, or DH2Q echoing the timeout and flags).
pub fn grant(
    conn: &mut Conn,
    req: &Req,
    request: &Request,
    vol: u64,
    granted: &Granted,
    create_action: u32,
) -> Option<(&'static [u8; 4], Vec<u8>)> {
    let v2 = matches!(request, Request::V2 { .. });
    if conn.neg.dialect >= DIALECT_300 {
        conn.replay_state.borrow_mut().insert(
            vol,
            ReplayState {
                channel_sequence: channel_sequence(req),
                replay_eligible: v2,
            },
        );
    }
    if let Request::V2 { create_guid, .. } = *request {
        note_replayable(conn, req, create_guid, vol, create_action);
    }
    if *request == Request::None
        || !grant_allows(granted)
        || !conn.server.durable.enabled.load(Ordering::Relaxed)
    {
        return None;
    }
    let share = match conn.tree(req) {
        Ok(t) if matches!(t.kind, TreeKind::Disk { .. }) => t.share_name.clone(),
        _ => return None,
    };
    let user = session_user(conn, req.session_id);
    let sid = super::info::user_sid(&conn.server.cfg.netbios_name, &user).to_string();
    let open = conn.opens.get(&vol)?;
    let key = open.key?;
    if open.is_dir {
        return None;
    }
    let meta = open.handle()?.meta().ok()?;
    let stream = open.handle()?.stream_name();
    let mut app_instance_id = None;
    let (version, create_guid, timeout_ms, ctx) = match *request {
        Request::V1 => (
            DurableVersion::V1,
            [0; 16],
            conn.server.durable.v1_timeout_ms(),
            (b"DHnQ", vec![0u8; 8]),
        ),
        Request::V2 {
            create_guid,
            timeout_ms,
            app_instance,
            ..
        } => {
            app_instance_id = app_instance;
            // Persistent handles need a continuously available share; none is.
            let t = v2_timeout(timeout_ms);
            let mut d = Vec::with_capacity(8);
            d.put_u32(t);
            d.put_u32(0);
            (DurableVersion::V2, create_guid, t, (b"DH2Q", d))
        }
        Request::None => return None,
    };
    let who = OpenRef {
        conn: conn.id,
        volatile: vol,
    };
    let mut record = DurableOpen {
        persistent_id: open.file_id.persistent,
        volatile_id: vol,
        create_guid,
        client_guid: conn.neg.client_guid,
        owner_user: user,
        owner_sid: sid,
        share,
        path: record_path(&open.path, stream.as_deref()),
        granted_access: open.granted_access,
        share_access: open.share_access,
        create_options: open.create_options,
        version,
        persistent: false,
        caching: Caching::None,
        locks: Vec::new(),
        lock_sequences: [0; duet_state::LOCK_SEQUENCE_ENTRIES],
        timeout_ms,
        disconnected_at_ms: None,
        app_instance_id,
        position: open.position,
        file: FileIdentity {
            dev: meta.dev,
            inode: meta.ino,
            creation_time: meta.creation_time,
        },
    };
    let server = conn.server.clone();
    {
        let mut t = server.durable.lock();
        {
            let Ok(mut files) = server.files.lock() else {
                return None;
            };
            files.lock_state_mut(&key, who).durable = true;
            record.caching = oplock::durable_caching(&files, &key, who, &conn.neg.client_guid);
        }
        if !durable_caching(&record.caching) {
            return None;
        }
        // Inside a frame the record is submitted when the frame's response goes
        // (`end_of_frame`), so an open closed in the same compound costs no commit.
        let committed = !conn.in_frame;
        if committed {
            record_owner(conn, &mut t, req.session_id);
            conn.outbox.hold(put(&server, &record));
        } else {
            conn.durable_deferred.push(record.persistent_id);
        }
        t.insert(Entry {
            record,
            key,
            state: State::Connected {
                conn: conn.id,
                session_id: req.session_id,
            },
            create_action,
            committed,
        });
        server.durable.counts(&t);
    }
    Some(ctx)
}

/// The frame being handled is answered now: the records of the durable opens it granted
/// (and did not close again) are submitted, and its response waits for them.
pub fn end_of_frame(conn: &mut Conn) {
    conn.in_frame = false;
    if conn.durable_deferred.is_empty() {
        return;
    }
    let ids = std::mem::take(&mut conn.durable_deferred);
    let server = conn.server.clone();
    let mut t = server.durable.lock();
    for id in ids {
        let owner = match t.entries.get(&id) {
            Some(e) if !e.committed => session_of(e),
            _ => continue,
        };
        record_owner(conn, &mut t, owner);
        if let Some(e) = t.entries.get_mut(&id) {
            e.committed = true;
            conn.outbox.hold(put(&server, &e.record));
        }
    }
}

// ------------------------------------------------------------------ reconnect

/// DHnC / DH2C (3.3.5.9.7, 3.3.5.9.12): finds the open by its persistent id and, when every
/// check passes, moves it to this connection, session and tree with its share modes, locks,
/// lease or oplock and position. Everything else in the request is ignored.
fn reconnect(
    conn: &mut Conn,
    req: &Req,
    name: &str,
    contexts: &[CreateContext],
    rc: Reconnect,
) -> HResult {
    let not_found = Fail::Status(status::OBJECT_NAME_NOT_FOUND);
    let share = match conn.tree(req)? {
        t if matches!(t.kind, TreeKind::Disk { .. }) => t.share_name.clone(),
        _ => return Err(not_found),
    };
    if conn.opens.len() >= conn.server.cfg.max_opens_per_conn {
        return Err(Fail::Status(status::INSUFFICIENT_RESOURCES));
    }
    let user = session_user(conn, req.session_id);
    let lease_key = lease_key_of(contexts);
    // The name as the open is recorded under (a named stream's with its stream).
    let asked_path = match super::streams::parse_name(name) {
        Ok((p, StreamPart::None | StreamPart::DefaultData)) => Some(p),
        Ok((p, StreamPart::Named(s))) => Some(record_path(&p, Some(&s))),
        _ => None,
    };
    let server = conn.server.clone();
    let mut t = server.durable.lock();
    // An open still attached to a session that a session reconnect is logging off on its
    // connection: wait for that connection to let go of it.
    let deadline = std::time::Instant::now() + HANDOVER_WAIT;
    loop {
        let e = t.get(rc.persistent_id).ok_or(not_found)?;
        match e.state {
            State::Disconnected { .. } => break,
            State::Connected {
                conn: owner,
                session_id,
            } => {
                if owner == conn.id || session_alive(&server, session_id) {
                    return Err(not_found);
                }
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Err(not_found);
                }
                t = crate::util::may_wait(|| {
                    server
                        .durable
                        .changed
                        .wait_timeout(t, left)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0)
                });
            }
        }
    }
    let e = t.get(rc.persistent_id).ok_or(not_found)?;
    let r = &e.record;
    if let Some((create_guid, persistent)) = rc.v2 {
        // A v1 open has a zero CreateGuid: a DH2C with a zero one reconnects it, any other
        // does not; a v2 open needs its own.
        if create_guid != r.create_guid || persistent != r.persistent {
            return Err(not_found);
        }
    }
    match &r.caching {
        Caching::Lease(l) => {
            if lease_key != Some(l.key) || r.client_guid != conn.neg.client_guid {
                return Err(not_found);
            }
            let same_name = asked_path
                .as_deref()
                .is_some_and(|p| p.to_lowercase() == r.path.to_lowercase());
            if !same_name {
                return Err(Fail::Status(status::INVALID_PARAMETER));
            }
        }
        _ if lease_key.is_some() => return Err(not_found),
        _ => {}
    }
    if !r.share.eq_ignore_ascii_case(&share) {
        return Err(not_found);
    }
    if r.owner_user != user {
        tracing::warn!(peer = %conn.peer, persistent = rc.persistent_id, "durable reconnect by another user refused");
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    let mut e = t.remove(rc.persistent_id).ok_or(not_found)?;
    let State::Disconnected {
        mut open, who: old, ..
    } = std::mem::replace(
        &mut e.state,
        State::Connected {
            conn: conn.id,
            session_id: req.session_id,
        },
    )
    else {
        return Err(not_found);
    };
    let key = e.key;
    let vol = e.record.volatile_id;
    let new = OpenRef {
        conn: conn.id,
        volatile: vol,
    };
    let granted = {
        let Ok(mut files) = server.files.lock() else {
            return Err(Fail::Status(status::INTERNAL_ERROR));
        };
        move_open(&mut files, &key, old, new);
        oplock::reattach(conn, req.session_id, &mut files, &key, old, new);
        e.record.caching = oplock::durable_caching(&files, &key, new, &conn.neg.client_guid);
        oplock::granted_now(&files, &key, new)
    };
    open.session_id = req.session_id;
    open.tree_id = req.tree_id;
    e.record.disconnected_at_ms = None;
    e.record.position = open.position;
    e.committed = true;
    let meta = open.handle().and_then(|h| h.meta().ok());
    record_owner(conn, &mut t, req.session_id);
    conn.outbox.hold(put(&server, &e.record));
    let file_id = open.file_id;
    conn.opens.insert(vol, *open);
    conn.replay_state.borrow_mut().insert(
        vol,
        ReplayState {
            channel_sequence: channel_sequence(req),
            replay_eligible: false,
        },
    );
    t.insert(e);
    server.durable.counts(&t);
    drop(t);
    tracing::info!(peer = %conn.peer, persistent = rc.persistent_id, "durable handle reconnected");
    let meta = meta.ok_or(Fail::Status(status::INTERNAL_ERROR))?;
    let mut ctxs = Vec::new();
    if let Some(c) = granted.context {
        ctxs.push((b"RqLs", c));
    }
    Ok(Reply::ok(create::response_body(
        &super::info::basics(&meta),
        FILE_OPENED,
        granted.level,
        file_id,
        &ctxs,
    )))
}

/// Moves an open's share-mode entry, byte-range locks and lock state from `from` to `to`.
fn move_open(files: &mut super::files::FileTable, key: &FileKey, from: OpenRef, to: OpenRef) {
    let Some(e) = files.files.get_mut(key) else {
        return;
    };
    for o in e.opens.iter_mut().filter(|o| o.who == from) {
        o.who = to;
    }
    for l in e.locks.iter_mut().filter(|l| l.who == from) {
        l.who = to;
    }
    if let Some(s) = e.lock_state.remove(&from) {
        e.lock_state.insert(to, s);
    }
}

/// The answer to the replay of a v2 CREATE whose open is still here (3.3.5.9.10): that
/// open, with the oplock the replay asks for where it is lower, and durability only when
/// that oplock (or the open's lease) allows it. A replay that asks for a lease the open
/// does not hold is refused with STATUS_ACCESS_DENIED.
fn replay_response(
    conn: &mut Conn,
    contexts: &[CreateContext],
    requested: u8,
    vol: u64,
    create_action: u32,
    key: FileKey,
) -> HResult {
    let open = conn
        .opens
        .get(&vol)
        .ok_or(Fail::Status(status::FILE_CLOSED))?;
    let file_id = open.file_id;
    let meta = open
        .handle()
        .ok_or(Fail::Status(status::INTERNAL_ERROR))?
        .meta()
        .map_err(|e| Fail::Status(create::fs_status(&e)))?;
    let who = OpenRef {
        conn: conn.id,
        volatile: vol,
    };
    let timeout = conn
        .server
        .durable
        .lock()
        .get(file_id.persistent)
        .map_or(0, |e| e.record.timeout_ms);
    let now = {
        let files = conn
            .server
            .files
            .lock()
            .map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
        oplock::granted_now(&files, &key, who)
    };
    let asked_lease = (requested == LEVEL_LEASE)
        .then(|| lease_key_of(contexts))
        .flatten();
    let granted = match (now.level, asked_lease) {
        (LEVEL_LEASE, _) => {
            let held: Option<Guid> = now
                .context
                .as_deref()
                .and_then(|c| c.get(0..16))
                .and_then(|k| k.try_into().ok());
            if asked_lease.is_some() && asked_lease != held {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            now
        }
        (_, Some(_)) => return Err(Fail::Status(status::ACCESS_DENIED)),
        (level, None) => Granted {
            level: level.min(requested),
            context: None,
        },
    };
    let mut ctxs = Vec::new();
    if grant_allows(&granted) {
        let mut d = Vec::with_capacity(8);
        d.put_u32(timeout);
        d.put_u32(0);
        ctxs.push((b"DH2Q", d));
    }
    if let Some(c) = granted.context.clone() {
        ctxs.push((b"RqLs", c));
    }
    Ok(Reply::ok(create::response_body(
        &super::info::basics(&meta),
        create_action,
        granted.level,
        file_id,
        &ctxs,
    )))
}

// ------------------------------------------------------------------ close, disconnect

/// Called by `create::close_open` for every open it closes: a durable open's record goes.
/// Whatever answers the close waits for the removal to be durable.
pub fn on_close(conn: &mut Conn, open: &Open) {
    conn.replay_state
        .borrow_mut()
        .remove(&open.file_id.volatile);
    if !conn.server.durable.any() {
        return;
    }
    let server = conn.server.clone();
    let mut t = server.durable.lock();
    let id = open.file_id.persistent;
    if t.replay_of.contains_key(&id) {
        t.forget_replay(id);
        server.durable.counts(&t);
    }
    let mine = t.get(id).is_some_and(|e| {
        matches!(e.state, State::Connected { conn: c, .. } if c == conn.id)
            && e.record.volatile_id == open.file_id.volatile
    });
    if !mine {
        return;
    }
    let committed = t.remove(id).is_some_and(|e| e.committed);
    server.durable.counts(&t);
    drop(t);
    conn.durable_deferred.retain(|d| *d != id);
    if committed {
        conn.outbox.hold(removal(&server, id));
    }
    server.durable.changed.notify_all();
}

/// Called instead of closing an open when its connection goes or its session logs off
/// (3.3.7.1, 3.3.5.6): a durable open that still holds a batch oplock or a lease with
/// handle caching is parked, disconnected, for its timeout. False: the caller closes it.
pub fn disconnect(conn: &mut Conn, vol: u64) -> bool {
    if !conn.server.durable.any() {
        return false;
    }
    let Some(persistent) = conn.opens.get(&vol).map(|o| o.file_id.persistent) else {
        return false;
    };
    let server = conn.server.clone();
    let mut t = server.durable.lock();
    let Some(e) = t.entries.get_mut(&persistent) else {
        return false;
    };
    if !matches!(e.state, State::Connected { conn: c, .. } if c == conn.id)
        || e.record.volatile_id != vol
    {
        return false;
    }
    let who = OpenRef {
        conn: conn.id,
        volatile: vol,
    };
    {
        let Ok(files) = server.files.lock() else {
            return false;
        };
        if oplock::breaking(&files, &e.key, who) {
            // Nobody can acknowledge the break now: the open closes, and whoever waits
            // for the break goes on (3.3.7.1 keeps only an open whose caching is held).
            return false;
        }
        e.record.caching = oplock::durable_caching(&files, &e.key, who, &e.record.client_guid);
        fill_locks(&files, &e.key, who, &mut e.record);
    }
    if !durable_caching(&e.record.caching) {
        return false;
    }
    let Some(open) = conn.opens.remove(&vol) else {
        return false;
    };
    super::notify::close_handle(conn, vol);
    super::lock::close_handle(conn, vol);
    conn.replay_state.borrow_mut().remove(&vol);
    let now = now_ms();
    e.record.disconnected_at_ms = Some(now);
    e.record.position = open.position;
    let deadline_ms = now.saturating_add(u64::from(e.record.timeout_ms));
    e.state = State::Disconnected {
        open: Box::new(open),
        who,
        deadline_ms,
        restored: false,
    };
    // Nothing waits for this commit: after a crash every open counts as disconnected.
    e.committed = true;
    let _ = put(&server, &e.record);
    t.forget_replay(persistent);
    server.durable.counts(&t);
    drop(t);
    server.durable.changed.notify_all();
    tracing::debug!(peer = %conn.peer, persistent, "durable open disconnected");
    true
}

/// Copies an open's byte-range locks and lock sequence array into its record.
fn fill_locks(files: &super::files::FileTable, key: &FileKey, who: OpenRef, r: &mut DurableOpen) {
    r.locks = files
        .files
        .get(key)
        .map(|e| {
            e.locks
                .iter()
                .filter(|l| l.who == who)
                .map(|l| ByteRangeLock {
                    offset: l.offset,
                    length: l.length,
                    exclusive: l.exclusive,
                    owner: r.persistent_id,
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(s) = files.lock_state(key, who) {
        r.lock_sequences = s.sequence_bytes();
    }
}

/// Closes a durable open that is no longer wanted (expired, purged, replaced by another
/// application instance): a parked one leaves the file table (deleting the file if it was
/// its last open and delete-pending); a connected one is closed by its connection.
fn close_entry(server: &Server, conn: Option<&Conn>, e: Entry, remove_record: bool) {
    let id = e.record.persistent_id;
    if remove_record {
        // Ignored when it is gone already (the scavenger's expiry removes it first).
        let _ = removal(server, id);
    }
    match e.state {
        State::Connected { conn: c, .. } => {
            server.post(
                c,
                ConnEvent::Durable(Event::Close {
                    volatile: e.record.volatile_id,
                    persistent: id,
                }),
            );
        }
        State::Disconnected { open, who, .. } => close_parked(server, conn, *open, who),
    }
    server.durable.changed.notify_all();
}

/// The file-table side of `create::close_open` for a parked open.
fn close_parked(server: &Server, conn: Option<&Conn>, open: Open, who: OpenRef) {
    let (Some(key), Some(root)) = (open.key, open.root.clone()) else {
        return;
    };
    let last = {
        let Ok(mut files) = server.files.lock() else {
            return;
        };
        if open.delete_on_close {
            files.set_delete_pending(&key, true);
        }
        files.remove_open(&key, who)
    };
    super::lock::wake(server, key);
    oplock::wake_file(server, key);
    if let Some((path, true)) = last {
        let r = if open.is_dir {
            root.rmdir(&path)
        } else {
            root.unlink(&path)
        };
        match r {
            Ok(()) => {
                if let Some(c) = conn {
                    super::notify::report(
                        c,
                        &root,
                        &path,
                        super::notify::FILE_ACTION_REMOVED,
                        open.is_dir,
                    );
                }
            }
            Err(e) => tracing::warn!(path, error = %e, "delete on close of a durable open failed"),
        }
    }
}

/// What another connection asks of the one holding a durable open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Close the open (an application instance replaced it).
    Close { volatile: u64, persistent: u64 },
}

pub fn handle_event(conn: &mut Conn, ev: Event) {
    match ev {
        Event::Close {
            volatile,
            persistent,
        } => {
            if conn
                .opens
                .get(&volatile)
                .is_some_and(|o| o.file_id.persistent == persistent)
            {
                tracing::info!(peer = %conn.peer, persistent, "open closed: another instance of its application opened the file");
                create::close_open(conn, volatile);
            }
            conn.server.durable.changed.notify_all();
        }
    }
}

// ------------------------------------------------------------------ renames

/// After a rename of file `key` to the share path `path` (SET_INFO
/// FileRenameInformation): its durable opens, on any connection or parked, are recorded
/// under the new name, so that a restart or takeover restores them there; the rename's
/// response waits for their records. (A file with open streams cannot be renamed, so
/// only opens of the file itself can be affected.)
pub fn file_renamed(conn: &Conn, key: FileKey, path: &str) {
    if !conn.server.durable.any() {
        return;
    }
    let server = &conn.server;
    let mut t = server.durable.lock();
    let Some(ids) = t.by_file.get(&key).cloned() else {
        return;
    };
    for id in ids {
        let Some(e) = t.entries.get_mut(&id) else {
            continue;
        };
        if let State::Disconnected { open, .. } = &mut e.state {
            open.path = path.to_string();
        }
        let stream = split_record_path(&e.record.path)
            .ok()
            .and_then(|(_, s)| s.map(str::to_string));
        let new = record_path(path, stream.as_deref());
        if new != e.record.path {
            e.record.path = new;
            if e.committed {
                conn.outbox.hold(put(server, &e.record));
            }
        }
    }
}

/// After a rename of a named stream (`old`) to another name or onto the file's unnamed
/// data stream (`new`; `stream`: the stream's name now, `None` for the unnamed one): its
/// durable open follows it, in the table and in its record, before the response leaves.
pub fn stream_renamed(conn: &Conn, old: FileKey, new: FileKey, stream: Option<&str>) {
    if !conn.server.durable.any() {
        return;
    }
    let server = &conn.server;
    let mut t = server.durable.lock();
    let Some(ids) = t.by_file.remove(&old) else {
        return;
    };
    t.by_file.entry(new).or_default().extend(&ids);
    for id in ids {
        let Some(e) = t.entries.get_mut(&id) else {
            continue;
        };
        e.key = new;
        if let State::Disconnected { open, .. } = &mut e.state {
            open.key = Some(new);
        }
        let file = split_record_path(&e.record.path)
            .map(|(f, _)| f.to_string())
            .unwrap_or_else(|_| e.record.path.clone());
        e.record.path = record_path(&file, stream);
        if e.committed {
            conn.outbox.hold(put(server, &e.record));
        }
    }
}

// ------------------------------------------------------------------ locks and caching

/// After a LOCK request that changed the locks (or lock sequences) of open `vol`: its
/// record is updated and the response waits for it.
pub fn locks_changed(conn: &Conn, vol: u64) {
    let Some(o) = conn.opens.get(&vol) else {
        return;
    };
    let (Some(key), persistent) = (o.key, o.file_id.persistent) else {
        return;
    };
    let who = OpenRef {
        conn: conn.id,
        volatile: vol,
    };
    if let Some(t) = update_locks(&conn.server, persistent, key, who) {
        conn.outbox.hold(t);
    }
}

/// A blocking lock of open `who` was granted later: its record is updated; the completion
/// must be sent through `outbox` after this.
pub fn lock_granted(server: &Server, key: FileKey, who: OpenRef, outbox: &super::Outbox) {
    if !server.durable.any() {
        return;
    }
    let persistent = {
        let t = server.durable.lock();
        t.by_file.get(&key).and_then(|ids| {
            ids.iter().copied().find(|id| {
                t.get(*id).is_some_and(|e| {
                    e.record.volatile_id == who.volatile
                        && matches!(e.state, State::Connected { conn, .. } if conn == who.conn)
                })
            })
        })
    };
    if let Some(t) = persistent.and_then(|p| update_locks(server, p, key, who)) {
        outbox.hold(t);
    }
}

fn update_locks(
    server: &Server,
    persistent: u64,
    key: FileKey,
    who: OpenRef,
) -> Option<duet_state::Ticket> {
    if !server.durable.any() {
        return None;
    }
    let mut t = server.durable.lock();
    let e = t.entries.get_mut(&persistent)?;
    if e.record.volatile_id != who.volatile {
        return None;
    }
    let before = (e.record.locks.clone(), e.record.lock_sequences);
    {
        let files = server.files.lock().ok()?;
        fill_locks(&files, &key, who, &mut e.record);
    }
    if (e.record.locks.clone(), e.record.lock_sequences) == before {
        return None;
    }
    e.committed = true;
    Some(put(server, &e.record))
}

/// After an oplock break acknowledgement on this connection: the records of its durable
/// opens whose oplock or lease changed are updated, and the response waits for them.
pub fn caching_changed(conn: &Conn) {
    if let Some(t) = sync_caching(&conn.server, Some(conn.id)) {
        conn.outbox.hold(t);
    }
}

/// Brings the recorded caching of connected durable opens (of one connection, or all) up
/// to date; returns the ticket of the last change submitted.
fn sync_caching(server: &Server, only: Option<u64>) -> Option<duet_state::Ticket> {
    if !server.durable.any() {
        return None;
    }
    let mut t = server.durable.lock();
    let files = server.files.lock().ok()?;
    let mut last = None;
    for e in t.entries.values_mut() {
        let State::Connected { conn, .. } = e.state else {
            continue;
        };
        if only.is_some_and(|c| c != conn) {
            continue;
        }
        let who = OpenRef {
            conn,
            volatile: e.record.volatile_id,
        };
        let now = oplock::durable_caching(&files, &e.key, who, &e.record.client_guid);
        if now != e.record.caching {
            e.record.caching = now;
            e.committed = true;
            last = Some(put(server, &e.record));
        }
    }
    last
}

// ------------------------------------------------------------------ the scavenger

/// What a scavenger pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    pub expired: usize,
}

/// The scavenger (the shell calls it about once a second with the wall clock in ms):
/// disconnected durable opens whose timeout ran out are closed and their records removed
/// (MS-SMB2 3.3.2.1 durable open scavenger timer); recorded caching is brought up to date
/// (breaks that timed out); stale records of pending CREATEs go; session and client
/// connection records nothing needs any more go (`sweep_records`); the change feed is
/// pruned.
pub fn tick(server: &Server, now: u64) -> TickReport {
    let mut report = TickReport::default();
    if server.durable.any() {
        let expired: Vec<Entry> = {
            let mut t = server.durable.lock();
            let ids: Vec<u64> = t
                .entries
                .iter()
                .filter(|(_, e)| matches!(e.state, State::Disconnected { deadline_ms, .. } if deadline_ms <= now))
                .map(|(id, _)| *id)
                .collect();
            let v = ids.iter().filter_map(|id| t.remove(*id)).collect();
            server.durable.counts(&t);
            v
        };
        report.expired = expired.len();
        if !expired.is_empty() {
            let in_store: Vec<u64> = match server.store.expire_durable_opens(now) {
                Ok(v) => v.into_iter().map(|o| o.persistent_id).collect(),
                Err(e) => {
                    tracing::error!(error = %e, "expiring durable opens in the state store failed");
                    Vec::new()
                }
            };
            for e in expired {
                tracing::info!(persistent = e.record.persistent_id, path = %e.record.path, "durable open expired");
                let recorded = !in_store.contains(&e.record.persistent_id);
                close_entry(server, None, e, recorded);
            }
        }
        drop(sync_caching(server, None));
    }
    {
        let mut t = server.durable.lock();
        t.pending
            .retain(|_, (_, _, since)| now.saturating_sub(*since) < PENDING_FORGET_MS);
        sweep_records(server, &mut t);
    }
    if let Ok(last) = server.store.last_seq() {
        if last > CHANGES_KEPT * 2 {
            if let Err(e) = server.store.prune_changes_before(last - CHANGES_KEPT) {
                tracing::warn!(error = %e, "pruning the change feed failed");
            }
        }
    }
    report
}

// ------------------------------------------------------------------ restore

/// What startup did with the recorded durable opens.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RestoreReport {
    /// Restored as disconnected opens, waiting for their clients.
    pub restored: usize,
    /// Expired while the daemon was down.
    pub expired: usize,
    /// Dropped: their share is gone, or their file is gone or is another file now.
    pub dropped: usize,
}

/// Startup (before any connection is served): every recorded durable open is now
/// disconnected (its timeout starts now if it was connected when the daemon died); the
/// ones already expired are removed; every other one is opened again by path, checked to
/// be the same file (device, inode, creation time), and registered as a disconnected
/// durable open with its share modes, locks, lock sequences and oplock or lease, for the
/// rest of its timeout. Ids handed out from now on are above every recorded one.
pub fn restore(server: &Arc<Server>) -> Result<RestoreReport, duet_state::StoreError> {
    let now = now_ms();
    let store = &server.store;
    // Opens still connected when the last run (or the partner) died refuse conflicting
    // opens until their client reconnects: the server went away, not the client. Opens
    // whose client had already disconnected follow the ordinary rules (a conflicting open
    // closes them), as they would have on the node that recorded them.
    let was_connected: std::collections::HashSet<u64> = store
        .disconnect_durable_opens(now)?
        .iter()
        .map(|o| o.persistent_id)
        .collect();
    let expired = store.expire_durable_opens(now)?;
    let mut report = RestoreReport {
        expired: expired.len(),
        ..Default::default()
    };
    for o in &expired {
        tracing::info!(persistent = o.persistent_id, path = %o.path, "durable open expired while the daemon was down");
    }
    let records = store.list_durable_opens()?;
    let sessions = store.list_sessions()?;
    let conns = store.list_client_connections()?;
    let top = records
        .iter()
        .map(|r| r.persistent_id.max(r.volatile_id))
        .chain(sessions.iter().map(|s| s.session_id))
        .chain(conns.iter().map(|c| c.id))
        .max()
        .unwrap_or(0);
    server.reserve_ids_above(top);
    // Which session a restored open belonged to: the recorded session of its user and
    // client (the record of an open does not name its session; of several, the oldest).
    let owner = |r: &DurableOpen| {
        sessions
            .iter()
            .filter(|s| s.client_guid == r.client_guid && s.user.to_lowercase() == r.owner_user)
            .map(|s| s.session_id)
            .min()
            .unwrap_or(0)
    };
    for r in records {
        let id = r.persistent_id;
        let session_id = owner(&r);
        let blocking = was_connected.contains(&id);
        match restore_one(server, r, session_id, blocking) {
            Ok(()) => report.restored += 1,
            Err(why) => {
                tracing::warn!(persistent = id, reason = %why, "recorded durable open dropped");
                store.remove_durable_open(id)?;
                report.dropped += 1;
            }
        }
    }
    restore_records(server, sessions, conns)?;
    tracing::info!(
        restored = report.restored,
        expired = report.expired,
        dropped = report.dropped,
        "durable opens restored"
    );
    Ok(report)
}

/// The session and client connection records of an earlier run: those a restored open
/// belongs to are kept (a reconnecting client names its old session in PreviousSessionId;
/// the node taking over tickles the connections), the others are removed.
fn restore_records(
    server: &Server,
    sessions: Vec<SessionRecord>,
    conns: Vec<ClientConnection>,
) -> Result<(), duet_state::StoreError> {
    let (owners, clients) = {
        let t = server.durable.lock();
        let owners: std::collections::HashSet<u64> = t.entries.values().map(session_of).collect();
        let clients: std::collections::HashSet<Guid> =
            t.entries.values().map(|e| e.record.client_guid).collect();
        (owners, clients)
    };
    let mut kept_sessions = Vec::new();
    for s in sessions {
        if owners.contains(&s.session_id) {
            kept_sessions.push(s);
        } else {
            server.store.remove_session(s.session_id)?;
        }
    }
    let mut kept_conns = Vec::new();
    for c in conns {
        if clients.contains(&c.client_guid) {
            kept_conns.push(c);
        } else {
            server.store.remove_client_connection(c.id)?;
        }
    }
    let mut t = server.durable.lock();
    for s in kept_sessions {
        t.sessions.insert(s.session_id, s);
    }
    for c in kept_conns {
        t.conns.insert(
            c.id,
            ConnRecord {
                record: c,
                earlier: true,
            },
        );
    }
    Ok(())
}

/// The path a durable open is recorded under: its file's share path, and for an open of
/// a named stream ":" and the stream's name (as on disk).
fn record_path(path: &str, stream: Option<&str>) -> String {
    match stream {
        Some(s) => format!("{path}:{s}"),
        None => path.to_string(),
    }
}

/// A recorded path split into the file's path and the stream's name. No component of a
/// share path holds a ':' (`streams::parse_name`), so the first one starts the stream.
fn split_record_path(path: &str) -> Result<(&str, Option<&str>), String> {
    match path.split_once(':') {
        None => Ok((path, None)),
        Some((file, stream)) if !file.is_empty() && !stream.is_empty() => Ok((file, Some(stream))),
        Some(_) => Err(format!("recorded path {path:?} is malformed")),
    }
}

fn restore_one(
    server: &Arc<Server>,
    r: DurableOpen,
    session_id: u64,
    blocking: bool,
) -> Result<(), String> {
    let share = server
        .store
        .share(&r.share)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("share {} is gone", r.share))?;
    let root = share_root(server, &share.path)?;
    let (path, stream) = split_record_path(&r.path)?;
    let opts = OpenOptions {
        read: true,
        write: r.granted_access & (FILE_WRITE_DATA | FILE_APPEND_DATA) != 0,
        disposition: Disposition::Open,
        kind: Kind::NonDirectory,
        attributes_on_create: 0,
        mode: 0o644,
    };
    let opened = match stream {
        Some(s) => root.open_stream(path, s, &opts).map(|(h, _)| h),
        None => root.reopen_file(path, &opts),
    };
    let handle = opened.map_err(|e| format!("cannot open {}: {e}", r.path))?;
    let meta = handle.meta().map_err(|e| e.to_string())?;
    if (meta.dev, meta.ino, meta.creation_time) != (r.file.dev, r.file.inode, r.file.creation_time)
    {
        return Err(format!("{} is another file now", r.path));
    }
    let key = super::streams::key_of(&meta, &handle);
    let path = path.to_string();
    let who = OpenRef {
        conn: RESTORED_CONN,
        volatile: r.volatile_id,
    };
    let file_id = FileId {
        persistent: r.persistent_id,
        volatile: r.volatile_id,
    };
    {
        let mut files = server
            .files
            .lock()
            .map_err(|_| "file table poisoned".to_string())?;
        if !files.check_share(&key, r.granted_access, r.share_access) {
            return Err("conflicts with another restored open".into());
        }
        files.add_open(
            key,
            share_id(&root),
            &path,
            ShareEntry {
                who,
                access: r.granted_access,
                share: r.share_access,
            },
        );
        let locks: Vec<ByteLock> = r
            .locks
            .iter()
            .map(|l| ByteLock {
                who,
                offset: l.offset,
                length: l.length,
                exclusive: l.exclusive,
            })
            .collect();
        if files.lock_all(&key, &locks).is_err() {
            files.remove_open(&key, who);
            return Err("its byte-range locks conflict with another restored open".into());
        }
        let s = files.lock_state_mut(&key, who);
        s.durable = true;
        s.set_sequence_bytes(&r.lock_sequences);
        oplock::restore(&mut files, key, who, file_id, r.client_guid, &r.caching);
    }
    let open = Open {
        file_id,
        session_id,
        tree_id: 0,
        path,
        kind: OpenKind::File(Arc::new(handle)),
        granted_access: r.granted_access,
        share_access: r.share_access,
        create_options: r.create_options,
        position: r.position,
        mode: r.create_options & (create::FILE_WRITE_THROUGH | 0x10 | 0x20 | 0x4 | 0x8),
        is_dir: false,
        key: Some(key),
        root: Some(root),
        dir_enum: None,
        delete_on_close: r.create_options & create::FILE_DELETE_ON_CLOSE != 0,
    };
    let deadline_ms = r
        .disconnected_at_ms
        .unwrap_or_else(now_ms)
        .saturating_add(u64::from(r.timeout_ms));
    let mut t = server.durable.lock();
    t.insert(Entry {
        record: r,
        key,
        state: State::Disconnected {
            open: Box::new(open),
            who,
            deadline_ms,
            restored: blocking,
        },
        create_action: FILE_OPENED,
        committed: true,
    });
    server.durable.counts(&t);
    Ok(())
}

/// The open root of a share directory, shared with tree connects (`Server::roots`).
fn share_root(server: &Server, path: &std::path::Path) -> Result<Arc<ShareRoot>, String> {
    let mut roots = server
        .roots
        .lock()
        .map_err(|_| "share roots poisoned".to_string())?;
    if let Some(r) = roots.get(path) {
        return Ok(r.clone());
    }
    let root =
        Arc::new(ShareRoot::open(path).map_err(|e| format!("share {}: {e}", path.display()))?);
    roots.insert(path.to_path_buf(), root.clone());
    Ok(root)
}

#[cfg(test)]
#[path = "durable_tests.rs"]
mod tests;
