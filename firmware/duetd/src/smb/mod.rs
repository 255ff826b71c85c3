//! The SMB2/3 protocol core: connection, session, tree and open state, and the dispatch of
//! each request to the file of its command family.
//!
//! Owns: protocol state and the rules of MS-SMB2 3.3.5. It never touches a socket, spawns
//! a task or sleeps: frames come in as bytes through [`Conn::handle_frame`], responses
//! leave through an [`Outbox`], and the file system is reached through `duet_hal::fs`.

pub mod acl;
pub mod create;
pub mod dir;
pub mod durable;
pub mod files;
pub mod info;
pub mod io;
pub mod ioctl;
pub mod lock;
pub mod names;
pub mod negotiate;
pub mod notify;
pub mod oplock;
pub mod rename;
pub mod session;
pub mod streams;
#[cfg(test)]
mod testkit;
pub mod tree;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use duet_auth::{Signer, SigningAlgorithm};
use duet_state::Store;

use crate::wire::header::{field, flags};
use crate::wire::{status, Body, Command, Header, PutLe, WireError, HEADER_LEN};

pub use files::FileTable;

/// Server-wide settings (from the board config and the state store's settings).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub netbios_name: String,
    pub domain: String,
    pub signing_required: bool,
    pub max_credits: u16,
    pub max_sessions_per_conn: usize,
    pub max_opens_per_conn: usize,
    pub max_pending_per_conn: usize,
    /// Failed logons allowed per user and per client address in `failed_logon_window_secs`
    /// before further attempts are refused with STATUS_ACCOUNT_LOCKED_OUT.
    pub max_failed_logons: u32,
    pub failed_logon_window_secs: u64,
    /// Answer Samba's test-suite controls (FSCTL_SMBTORTURE_*), as smbd does with
    /// `smbd:FSCTL_SMBTORTURE = yes`. Off in production; the smbtorture runner turns it on.
    pub torture_fsctls: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            netbios_name: "DUET".into(),
            domain: "WORKGROUP".into(),
            signing_required: true,
            max_credits: 8192,
            max_sessions_per_conn: 64,
            max_opens_per_conn: 16384,
            max_pending_per_conn: 512,
            max_failed_logons: 10,
            failed_logon_window_secs: 60,
            torture_fsctls: false,
        }
    }
}

/// State shared by every connection of one server.
pub struct Server {
    pub cfg: ServerConfig,
    pub store: Arc<Store>,
    pub server_guid: [u8; 16],
    pub start_time: u64,
    pub files: Mutex<FileTable>,
    pub names: Mutex<names::NameCache>,
    pub notify: Mutex<notify::NotifyTable>,
    pub throttle: Mutex<session::Throttle>,
    pub lock_waiters: Mutex<Vec<lock::Waiter>>,
    /// Server-side copy resume keys (FSCTL_SRV_REQUEST_RESUME_KEY).
    pub resume_keys: Mutex<ioctl::ResumeKeys>,
    pub roots: Mutex<HashMap<std::path::PathBuf, Arc<duet_hal::fs::ShareRoot>>>,
    /// Every valid session by SessionId (MS-SMB2 GlobalSessionTable).
    pub sessions: Mutex<session::Registry>,
    /// Durable handles, connected and disconnected (MS-SMB2 GlobalOpenTable's durable part).
    pub durable: durable::Durable,
    /// Each live connection's mailbox, by connection id.
    mailboxes: Mutex<HashMap<u64, Arc<Mailbox>>>,
    next_id: AtomicU64,
    /// WRITEs put on stable storage before their response (write-through, or a
    /// continuously available share).
    pub synced_writes: AtomicU64,
    /// This node released the service (a pair's switchover or step-down): connections are
    /// told to stop, and their sockets stay open a moment longer (see `server.rs`).
    pub released: std::sync::atomic::AtomicBool,
}

impl Server {
    pub fn new(cfg: ServerConfig, store: Arc<Store>) -> Arc<Server> {
        let mut guid = [0u8; 16];
        crate::util::random_bytes(&mut guid);
        Arc::new(Server {
            cfg,
            store,
            server_guid: guid,
            start_time: crate::util::now_filetime(),
            files: Mutex::new(FileTable::default()),
            names: Mutex::new(names::NameCache::default()),
            notify: Mutex::new(notify::NotifyTable::default()),
            throttle: Mutex::new(session::Throttle::default()),
            lock_waiters: Mutex::new(Vec::new()),
            resume_keys: Mutex::new(Default::default()),
            roots: Mutex::new(HashMap::new()),
            sessions: Mutex::new(session::Registry::default()),
            durable: durable::Durable::default(),
            mailboxes: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            synced_writes: AtomicU64::new(0),
            released: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// A server-unique id (session ids, persistent file ids, async ids, connection ids).
    pub fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Ids handed out from now on are above `id` (ids recorded by an earlier run).
    pub fn reserve_ids_above(&self, id: u64) {
        self.next_id
            .fetch_max(id.saturating_add(1), Ordering::Relaxed);
    }

    /// Tells every live connection to close (the node released the service). Returns how
    /// many were told.
    pub fn shut_down_connections(&self) -> usize {
        let all: Vec<Arc<Mailbox>> = self
            .mailboxes
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for mb in &all {
            mb.post(ConnEvent::Shutdown);
        }
        all.len()
    }

    /// Hands `ev` to connection `conn_id` and wakes it. False if that connection is gone.
    pub fn post(&self, conn_id: u64, ev: ConnEvent) -> bool {
        let mb = self
            .mailboxes
            .lock()
            .ok()
            .and_then(|m| m.get(&conn_id).cloned());
        match mb {
            Some(mb) => {
                mb.post(ev);
                true
            }
            None => false,
        }
    }
}

/// Something another connection needs this one to do to its own state (it alone touches
/// its sessions and opens). The I/O shell waits on [`Mailbox::wait`] beside the socket and
/// calls [`Conn::handle_events`]; `handle_frame` drains the mailbox first as well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnEvent {
    /// Log the session off (its opens close): a reconnect elsewhere replaced it.
    Logoff { session_id: u64 },
    /// Oplock and lease work: a request waiting for a break runs again (`oplock.rs`).
    Oplock(oplock::Event),
    /// Durable-handle work: close an open an application instance replaced (`durable.rs`).
    Durable(durable::Event),
    /// The node stops serving (it released the service to its partner): close at once.
    Shutdown,
    /// Multichannel: a frame that came on another channel of one of this connection's
    /// sessions, handled here and answered on that channel (`session.rs`).
    Forward(Parcel<session::Forwarded>),
    /// Multichannel: the state of a connection that closed while its sessions had other
    /// channels; this connection, one of those channels, runs it from now on.
    Adopt(Parcel<Conn>),
}

/// Something handed to another connection once, through its mailbox (events are cloned
/// and compared as values; a parcel is taken by whoever opens it first).
pub struct Parcel<T>(Arc<Mutex<Option<T>>>);

impl<T> Parcel<T> {
    pub fn new(v: T) -> Parcel<T> {
        Parcel(Arc::new(Mutex::new(Some(v))))
    }
    pub fn take(&self) -> Option<T> {
        self.0.lock().ok().and_then(|mut v| v.take())
    }
}

impl<T> Clone for Parcel<T> {
    fn clone(&self) -> Self {
        Parcel(self.0.clone())
    }
}

impl<T> std::fmt::Debug for Parcel<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Parcel")
    }
}

impl<T> PartialEq for Parcel<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T> Eq for Parcel<T> {}

/// One connection's queue of [`ConnEvent`]s.
#[derive(Default)]
pub struct Mailbox {
    events: Mutex<Vec<ConnEvent>>,
    wake: tokio::sync::Notify,
    /// Set once the connection's state is run by another connection (it closed while its
    /// sessions had other channels, see [`ConnEvent::Adopt`]): that one is woken too.
    forward: Mutex<Option<Arc<Mailbox>>>,
}

impl Mailbox {
    pub fn post(&self, ev: ConnEvent) {
        if let Ok(mut q) = self.events.lock() {
            q.push(ev);
        }
        self.wake.notify_one();
        let fwd = self.forward.lock().ok().and_then(|f| f.clone());
        if let Some(f) = fwd {
            f.wake.notify_one();
        }
    }
    /// Resolves once something was posted (at once if a post came since the last wait).
    pub async fn wait(&self) {
        self.wake.notified().await
    }
    fn take(&self) -> Vec<ConnEvent> {
        self.events
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }
}

/// Where a connection's responses go; the I/O shell drains it onto the socket. Async
/// completions from other connections' actions use a clone.
///
/// A message may have to wait for state-store commits (a durable handle's record must be
/// on disk before the response that grants it leaves): [`Outbox::hold`] registers a commit
/// every later message waits for. The channel then carries an empty message, a marker the
/// writer answers with [`Outbox::wait_marker`] before it writes what follows, so the core
/// never blocks and the order of messages is kept.
#[derive(Clone)]
pub struct Outbox {
    tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    holds: Arc<Mutex<Holds>>,
    pool: Arc<Mutex<Pool>>,
    /// Bytes of messages queued so far (what a batch of requests produced, see server.rs).
    queued_bytes: Arc<std::sync::atomic::AtomicU64>,
}

/// Large response buffers the writer gave back once sent, for the next READ responses:
/// a fresh multi-MiB buffer is a new mapping (glibc's mmap threshold is 1 MiB, see
/// main.rs) that is page-faulted in, zeroed and unmapped again for every READ, which
/// measured as a third of duetd's CPU on 1 MiB sequential reads.
#[derive(Default)]
struct Pool {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

/// Buffers smaller than this come from malloc's heap cheaply; not worth pooling.
pub const POOL_MIN: usize = 32 * 1024;
/// At most this much (capacity) is kept per connection, two responses of the largest READ
/// (smbclient reads 8 MiB at a time); an idle writer drops it all.
const POOL_MAX_BYTES: usize = 2 * (negotiate::MAX_IO as usize + 4096);

/// Commits that messages of one connection wait for (see [`Outbox`]).
#[derive(Default)]
struct Holds {
    /// Registered since the last message: the next one waits for them.
    pending: Vec<duet_state::Ticket>,
    /// One entry per marker in the channel, oldest first.
    queued: std::collections::VecDeque<Vec<duet_state::Ticket>>,
}

impl Outbox {
    pub fn new(tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>) -> Self {
        Outbox {
            tx,
            holds: Arc::default(),
            pool: Arc::default(),
            queued_bytes: Arc::default(),
        }
    }
    /// A buffer with room for `cap` bytes: one the writer gave back (see [`Recycler`]) if
    /// one is big enough, else a new one. A given-back buffer keeps its old length and
    /// contents (so resizing it within that length writes nothing): the caller must
    /// overwrite every byte it sends.
    pub fn buffer(&self, cap: usize) -> Vec<u8> {
        if cap >= POOL_MIN {
            if let Ok(mut p) = self.pool.lock() {
                if let Some(i) = p.bufs.iter().position(|b| b.capacity() >= cap) {
                    let b = p.bufs.swap_remove(i);
                    p.bytes -= b.capacity();
                    return b;
                }
            }
        }
        Vec::with_capacity(cap)
    }
    /// The writer's side of the buffer pool.
    pub fn recycler(&self) -> Recycler {
        Recycler(self.pool.clone())
    }
    /// Queues one transport message (without the 4-byte framing). False if the
    /// connection is gone.
    pub fn send(&self, msg: Vec<u8>) -> bool {
        let Ok(mut h) = self.holds.lock() else {
            return false;
        };
        if !h.pending.is_empty() {
            let tickets = std::mem::take(&mut h.pending);
            h.queued.push_back(tickets);
            if self.tx.send(Vec::new()).is_err() {
                return false;
            }
        }
        self.queued_bytes
            .fetch_add(msg.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.tx.send(msg).is_ok()
    }
    /// The count of bytes of messages queued on this connection so far.
    pub fn queued_bytes(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.queued_bytes.clone()
    }
    /// Whether both are outboxes of the same connection.
    pub fn same_channel(&self, other: &Outbox) -> bool {
        self.tx.same_channel(&other.tx)
    }
    /// Every message sent from now on waits until `ticket`'s commit is durable.
    pub fn hold(&self, ticket: duet_state::Ticket) {
        if let Ok(mut h) = self.holds.lock() {
            h.pending.push(ticket);
        }
    }
    /// What the writer answers markers with (it holds no sender, so the channel still
    /// ends when the connection does).
    pub fn markers(&self) -> Markers {
        Markers(self.holds.clone())
    }
    /// See [`Markers::wait`].
    pub fn wait_marker(&self) -> Result<(), duet_state::StoreError> {
        self.markers().wait()
    }
}

/// The writer's side of an [`Outbox`]'s buffer pool.
pub struct Recycler(Arc<Mutex<Pool>>);

impl Recycler {
    /// Keeps a sent message's buffer for [`Outbox::buffer`] if it is large and the pool
    /// has room; frees it otherwise.
    pub fn give(&self, buf: Vec<u8>) {
        let cap = buf.capacity();
        if !(POOL_MIN..=POOL_MAX_BYTES).contains(&cap) {
            return;
        }
        if let Ok(mut p) = self.0.lock() {
            if p.bytes + cap <= POOL_MAX_BYTES {
                p.bytes += cap;
                p.bufs.push(buf);
            }
        }
    }
    /// True if the pool holds any buffer.
    pub fn holds_any(&self) -> bool {
        self.0.lock().is_ok_and(|p| p.bytes > 0)
    }
    /// Frees every pooled buffer (the connection went idle).
    pub fn clear(&self) {
        let bufs = match self.0.lock() {
            Ok(mut p) => {
                p.bytes = 0;
                std::mem::take(&mut p.bufs)
            }
            Err(_) => return,
        };
        drop(bufs);
    }
}

/// The writer's side of an [`Outbox`]'s holds.
pub struct Markers(Arc<Mutex<Holds>>);

impl Markers {
    /// The writer met an empty message (a marker): blocks until the commits it stands for
    /// are durable. An error means a commit failed; the connection must end without
    /// sending what follows.
    pub fn wait(&self) -> Result<(), duet_state::StoreError> {
        let tickets = self
            .0
            .lock()
            .ok()
            .and_then(|mut h| h.queued.pop_front())
            .unwrap_or_default();
        for t in tickets {
            match t.wait() {
                // A removal of a record that is gone already: nothing to wait for.
                Ok(_) | Err(duet_state::StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Negotiated connection parameters (MS-SMB2 3.3.1.7).
#[derive(Clone, Debug, Default)]
pub struct NegotiateState {
    pub done: bool,
    pub dialect: u16,
    pub client_guid: [u8; 16],
    pub client_security_mode: u16,
    pub client_capabilities: u32,
    pub server_capabilities: u32,
    pub client_dialects: Vec<u16>,
    pub signing_algorithm: Option<SigningAlgorithm>,
    /// Connection.CipherId: the SMB3 cipher (3.1.1 ENCRYPTION_CAPABILITIES, or AES-128-CCM
    /// for a 3.0.x client with SMB2_GLOBAL_CAP_ENCRYPTION); None: no encryption.
    pub cipher: Option<duet_auth::CipherId>,
    /// SHA-512 preauth integrity hash of NEGOTIATE request + response (3.1.1).
    pub preauth: Option<duet_auth::PreauthHash>,
}

pub const DIALECT_202: u16 = 0x0202;
pub const DIALECT_210: u16 = 0x0210;
pub const DIALECT_300: u16 = 0x0300;
pub const DIALECT_302: u16 = 0x0302;
pub const DIALECT_311: u16 = 0x0311;
pub const DIALECT_WILDCARD: u16 = 0x02FF;

/// MS-SMB2 3.3.1.1: the message-id window the client may use, granted through credits.
#[derive(Debug)]
pub struct CreditWindow {
    low: u64,
    high: u64,
    used: std::collections::VecDeque<bool>,
    /// How many of `used` are false (kept so `outstanding` does not scan the window for
    /// every response).
    unused: u64,
}

impl Default for CreditWindow {
    fn default() -> Self {
        CreditWindow {
            low: 0,
            high: 1,
            used: std::collections::VecDeque::from(vec![false]),
            unused: 1,
        }
    }
}

impl CreditWindow {
    /// Consumes message ids mid..mid+charge. False when any is outside the window or
    /// already used.
    pub fn consume(&mut self, mid: u64, charge: u64) -> bool {
        let charge = charge.max(1);
        let Some(end) = mid.checked_add(charge) else {
            return false;
        };
        if mid < self.low || end > self.high {
            return false;
        }
        for id in mid..end {
            if self.used[(id - self.low) as usize] {
                return false;
            }
        }
        for id in mid..end {
            self.used[(id - self.low) as usize] = true;
        }
        self.unused -= charge;
        while self.used.front() == Some(&true) {
            self.used.pop_front();
            self.low += 1;
        }
        true
    }
    /// Credits the client holds now (ids granted and not yet used).
    pub fn outstanding(&self) -> u64 {
        self.unused
    }
    pub fn grant(&mut self, n: u64) {
        for _ in 0..n {
            self.used.push_back(false);
        }
        self.high += n;
        self.unused += n;
    }
}

/// A tree connect (MS-SMB2 3.3.1.10).
pub struct Tree {
    pub id: u32,
    pub share_name: String,
    pub kind: TreeKind,
    pub maximal_access: u32,
}

pub enum TreeKind {
    Disk {
        root: Arc<duet_hal::fs::ShareRoot>,
        read_only: bool,
        /// Continuous availability (setting `share.NAME.continuous_availability`): every
        /// WRITE is on stable storage before its response, as if written through.
        stable_writes: bool,
    },
    Ipc,
}

/// An authenticated (or authenticating) session (MS-SMB2 3.3.1.8).
pub struct Session {
    pub id: u64,
    pub state: session::SessionState,
    pub user: String,
    pub domain: String,
    pub signer: Option<Arc<Signer>>,
    pub signing_required: bool,
    /// Set up when the connection negotiated a cipher (SMB 3.x).
    pub encryption: Option<Arc<session::Encryption>>,
    pub preauth: Option<duet_auth::PreauthHash>,
    pub trees: HashMap<u32, Tree>,
    next_tree_id: u32,
}

impl Session {
    /// Authenticated (a re-authentication under way leaves it usable).
    pub fn is_valid(&self) -> bool {
        matches!(
            self.state,
            session::SessionState::Valid | session::SessionState::Reauthenticating(_)
        )
    }
}

/// Per-request context shared by the handlers.
pub struct Req<'a> {
    pub msg: &'a [u8],
    pub command: Command,
    pub message_id: u64,
    pub session_id: u64,
    pub tree_id: u32,
    pub flags: u32,
    /// Set for a related compound member (MS-SMB2 3.3.5.2.7.2).
    pub related: Option<Related>,
    /// The open this request named, recorded by `create::lookup_fid` so related members
    /// that follow can use it.
    pub resolved_file_id: std::cell::Cell<Option<FileId>>,
    pub credit_charge: u16,
}

impl<'a> Req<'a> {
    pub fn body(&self) -> Body<'a> {
        Body::new(self.msg)
    }
}

/// What a related compound member inherits from the members before it.
#[derive(Clone, Copy, Debug)]
pub struct Related {
    /// The FileId of the last member that created or named an open.
    pub file_id: Option<FileId>,
    /// The status of a failed CREATE before it, which members that need its FileId get.
    pub create_err: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FileId {
    pub persistent: u64,
    pub volatile: u64,
}

impl FileId {
    pub const RELATED: FileId = FileId {
        persistent: u64::MAX,
        volatile: u64::MAX,
    };
    pub fn parse(b: &Body, off: usize) -> Result<FileId, WireError> {
        Ok(FileId {
            persistent: b.u64(off)?,
            volatile: b.u64(off + 8)?,
        })
    }
    pub fn put(&self, out: &mut Vec<u8>) {
        out.put_u64(self.persistent);
        out.put_u64(self.volatile);
    }
}

/// What the first related member of a chain inherits (see [`Conn::handle_chain`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct ChainStart {
    pub file_id: Option<FileId>,
    pub create_err: Option<u32>,
    pub session_id: u64,
    pub tree_id: u32,
}

/// What a handler answers.
pub enum Reply {
    /// A response body (from StructureSize on) with its status.
    Body { status: u32, body: Vec<u8> },
    /// The same, with HEADER_LEN bytes of headroom before the body so a large response
    /// (READ) is framed in place instead of copied behind a header.
    Framed { status: u32, msg: Vec<u8> },
    /// The operation went async: an interim STATUS_PENDING was (to be) sent with this
    /// AsyncId, the final response follows through the outbox.
    Pending { async_id: u64 },
    /// No response at all (CANCEL).
    None,
}

impl Reply {
    pub fn ok(body: Vec<u8>) -> Reply {
        Reply::Body {
            status: status::SUCCESS,
            body,
        }
    }
}

/// A failure: an NTSTATUS for the error response, or the end of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    Status(u32),
    /// Optional error data (e.g. the 4-byte required size of STATUS_BUFFER_TOO_SMALL).
    StatusData(u32, u32),
    Disconnect,
}

impl From<WireError> for Fail {
    fn from(_: WireError) -> Fail {
        Fail::Status(status::INVALID_PARAMETER)
    }
}

pub type HResult = Result<Reply, Fail>;

/// One client connection's protocol state.
pub struct Conn {
    pub server: Arc<Server>,
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub outbox: Outbox,
    pub neg: NegotiateState,
    pub credits: CreditWindow,
    pub sessions: HashMap<u64, Session>,
    pub opens: HashMap<u64, files::Open>,
    pub pending: HashMap<u64, Pending>,
    /// The SessionId a SESSION_SETUP response carries (a new session's id).
    pub last_session_setup_id: Option<u64>,
    /// The TreeId a TREE_CONNECT response carries.
    pub last_tree_id: Option<u32>,
    /// Which preauth hash the response being built extends (3.1.1).
    pub preauth_pending: Option<PreauthTarget>,
    /// A LOGOFF whose session goes once its (signed) response is out.
    pub deferred_logoff: Option<u64>,
    /// The gate of async operations started by the frame being handled.
    pub frame_gate: Option<Arc<Mutex<Gate>>>,
    /// Zero bytes between a READ response's fixed part and its data
    /// (FSCTL_SMBTORTURE_GLOBAL_READ_RESPONSE_BODY_PADDING8): tests clients' parsers.
    pub read_body_padding: usize,
    /// Signs the next response instead of its session's signer, whatever its status: a
    /// SESSION_SETUP answered for a session of another connection (binding refusals).
    pub response_signer: Option<Arc<Signer>>,
    /// The override in force for the response last appended (compound re-signing).
    last_response_signer: Option<Arc<Signer>>,
    /// While a transform frame is processed: its session and encryption. Its requests
    /// need no signature and every response goes out sealed, unsigned.
    encrypted: Option<(u64, Arc<session::Encryption>)>,
    mailbox: Arc<Mailbox>,
    /// Per-open replay state of this connection's opens (MS-SMB2 Open.ChannelSequence,
    /// Open.IsReplayEligible), by volatile id; kept by `durable.rs`.
    pub replay_state: std::cell::RefCell<HashMap<u64, durable::ReplayState>>,
    /// Set while a frame (a request or a compound chain) is handled: durable-handle records
    /// granted meanwhile are committed when its response goes (`durable::end_of_frame`).
    pub in_frame: bool,
    /// Persistent ids of durable opens granted in the frame being handled.
    pub durable_deferred: Vec<u64>,
    /// When the connection was accepted (ms since the Unix epoch; its client connection
    /// record carries it: `durable.rs`).
    pub accepted_ms: u64,
    /// Multichannel: sessions of other connections bound to this one as a channel (or
    /// being bound), by SessionId (`session.rs`).
    pub bound: HashMap<u64, session::Binding>,
    /// Multichannel: connections whose state this one runs (see [`ConnEvent::Adopt`]).
    adopted: Vec<Conn>,
    /// While a frame forwarded by another channel is handled: the credits that channel
    /// granted for its responses, in order.
    via_grants: Option<std::collections::VecDeque<u16>>,
    /// False once the connection is told to shut down: its sessions end with it instead
    /// of moving on to another of their channels.
    hand_over: bool,
}

#[derive(Clone, Copy, Debug)]
pub enum PreauthTarget {
    Connection,
    Session(u64),
    /// A session being bound to this connection as a channel (its channel's hash).
    Binding(u64),
}

/// An operation that went async and can be cancelled.
pub struct Pending {
    pub message_id: u64,
    pub session_id: u64,
    pub kind: PendingKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingKind {
    Notify {
        volatile: u64,
    },
    Lock {
        volatile: u64,
    },
    /// A CREATE or rename waiting for an oplock or lease break (`oplock.rs`).
    BreakWait,
}

/// How the shell should go on after a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
}

impl Conn {
    pub fn new(server: Arc<Server>, peer: SocketAddr, local: SocketAddr, outbox: Outbox) -> Conn {
        let id = server.new_id();
        let mailbox = Arc::new(Mailbox::default());
        if let Ok(mut m) = server.mailboxes.lock() {
            m.insert(id, mailbox.clone());
        }
        Conn {
            server,
            id,
            peer,
            local,
            outbox,
            neg: NegotiateState::default(),
            credits: CreditWindow::default(),
            sessions: HashMap::new(),
            opens: HashMap::new(),
            pending: HashMap::new(),
            last_session_setup_id: None,
            last_tree_id: None,
            preauth_pending: None,
            deferred_logoff: None,
            frame_gate: None,
            read_body_padding: 0,
            response_signer: None,
            last_response_signer: None,
            encrypted: None,
            mailbox,
            replay_state: Default::default(),
            in_frame: false,
            durable_deferred: Vec::new(),
            accepted_ms: duet_state::unix_time_ms(),
            bound: HashMap::new(),
            adopted: Vec::new(),
            via_grants: None,
            hand_over: true,
        }
    }

    /// What the shell waits on for [`ConnEvent`]s.
    pub fn mailbox(&self) -> Arc<Mailbox> {
        self.mailbox.clone()
    }

    /// Carries out what other connections posted.
    pub fn handle_events(&mut self) -> Flow {
        for ev in self.mailbox.take() {
            match ev {
                ConnEvent::Logoff { session_id } => {
                    tracing::info!(peer = %self.peer, session = session_id, "session logged off by a reconnect");
                    self.logoff(session_id);
                }
                ConnEvent::Oplock(ev) => oplock::handle_event(self, ev),
                ConnEvent::Durable(ev) => durable::handle_event(self, ev),
                ConnEvent::Shutdown => {
                    self.hand_over = false;
                    return Flow::Close;
                }
                ConnEvent::Forward(p) => {
                    if let Some(f) = p.take() {
                        self.handle_forwarded(f);
                    }
                }
                ConnEvent::Adopt(p) => {
                    if let Some(c) = p.take() {
                        tracing::info!(peer = %self.peer, conn = c.id, sessions = c.sessions.len(), "running the state of a closed channel's connection");
                        self.adopted.push(c);
                    }
                }
            }
        }
        self.run_adopted();
        Flow::Continue
    }

    /// Lets every connection this one runs for others act on what was posted to it; one
    /// told to close ends (and hands its sessions on, if it can).
    fn run_adopted(&mut self) {
        let mut i = 0;
        while i < self.adopted.len() {
            if self.adopted[i].handle_events() == Flow::Close {
                let gone = self.adopted.swap_remove(i);
                drop(gone);
            } else {
                i += 1;
            }
        }
    }

    /// Multichannel: a frame of one of this connection's sessions that came on another
    /// channel. It is handled here, where the session's state lives, with that channel's
    /// signing key, credits and outbox, so its responses leave on that channel.
    fn handle_forwarded(&mut self, f: session::Forwarded) {
        let sid = f.session_id;
        let own_signer = self
            .sessions
            .get_mut(&sid)
            .map(|s| s.signer.replace(f.signer.clone()));
        let own_outbox = std::mem::replace(&mut self.outbox, f.outbox.clone());
        self.via_grants = Some(f.grants);
        self.encrypted = f.encrypted;
        let flow = self.handle_chain(&f.frame, ChainStart::default());
        self.encrypted = None;
        self.via_grants = None;
        self.outbox = own_outbox;
        if let (Some(signer), Some(s)) = (own_signer, self.sessions.get_mut(&sid)) {
            s.signer = signer;
        }
        if flow == Flow::Close {
            self.server.post(f.channel, ConnEvent::Shutdown);
        }
    }

    /// A transform frame (MS-SMB2 3.3.5.2.1.1): decrypted with its session's key, its
    /// messages processed, every response sealed with the same key.
    fn handle_transform(&mut self, frame: &[u8]) -> Flow {
        let Some((plain, enc, session_id)) = session::open_transform(self, frame) else {
            return Flow::Close;
        };
        self.encrypted = Some((session_id, enc));
        let flow = self.handle_messages(&plain);
        self.encrypted = None;
        flow
    }

    /// Queues one response transport message, sealed if the request came encrypted.
    fn send_response(&self, out: Vec<u8>) -> bool {
        let msg = match &self.encrypted {
            Some((sid, enc)) => match enc.seal(*sid, out) {
                Some(m) => m,
                None => return false,
            },
            None => out,
        };
        self.outbox.send(msg)
    }

    /// Handles one transport message (a single request or a compound chain).
    pub fn handle_frame(&mut self, frame: &[u8]) -> Flow {
        if self.handle_events() == Flow::Close {
            return Flow::Close;
        }
        if frame.len() >= 4 && frame[0..4] == crate::wire::header::SMB1_PROTOCOL_ID {
            return negotiate::handle_smb1(self, frame);
        }
        if frame.len() >= 4 && frame[0..4] == crate::wire::header::TRANSFORM_PROTOCOL_ID {
            return self.handle_transform(frame);
        }
        self.handle_messages(frame)
    }

    /// The SMB2 message (or compound chain) of one frame, in clear. A frame of a session
    /// bound to this connection as a channel goes to the session's home connection.
    fn handle_messages(&mut self, frame: &[u8]) -> Flow {
        if !self.bound.is_empty() {
            if let Some(flow) = session::forward(self, frame) {
                return flow;
            }
        }
        self.handle_chain(frame, ChainStart::default())
    }

    /// Multichannel: consumes the message ids of a chain another connection is to handle
    /// for this one and grants the credits of its responses (None: the chain is malformed
    /// or outside the credit window; the connection ends).
    pub(crate) fn charge_chain(&mut self, frame: &[u8]) -> Option<std::collections::VecDeque<u16>> {
        let mut grants = std::collections::VecDeque::new();
        let mut off = 0usize;
        while off < frame.len() {
            let rest = &frame[off..];
            let hdr = Header::new_checked(rest).ok()?;
            let next = hdr.next_command() as usize;
            let msg_len = if next == 0 { rest.len() } else { next };
            if msg_len < HEADER_LEN || msg_len > rest.len() || !next.is_multiple_of(8) {
                return None;
            }
            match hdr.command() {
                Some(Command::Cancel) => {}
                Some(_) => {
                    if !self
                        .credits
                        .consume(hdr.message_id(), hdr.credit_charge() as u64)
                    {
                        tracing::warn!(peer = %self.peer, mid = hdr.message_id(), "message id outside the credit window; closing connection");
                        return None;
                    }
                    grants.push_back(self.grant_credits(&hdr));
                }
                None => grants.push_back(self.grant_credits(&hdr)),
            }
            if next == 0 {
                break;
            }
            off += next;
        }
        Some(grants)
    }

    /// A chain of messages whose first related member inherits `start` (the rest of a
    /// compound whose CREATE waited for an oplock break resumes with its outcome, `oplock.rs`).
    fn handle_chain(&mut self, frame: &[u8], start: ChainStart) -> Flow {
        self.in_frame = true;
        self.response_signer = None;
        self.last_response_signer = None;
        let mut out: Vec<u8> = Vec::new();
        let mut last_start: Option<usize> = None;
        let mut off = 0usize;
        let mut related_file_id: Option<FileId> = start.file_id;
        let mut related_session = start.session_id;
        let mut related_tree = start.tree_id;
        // The FileId related members use: set by a successful CREATE or by any member that
        // named an open explicitly; cleared by every unrelated member (MS-SMB2 3.3.5.2.7.2).
        let mut create_err: Option<u32> = start.create_err;
        // Set when a CREATE in the middle waits for an oplock break: the rest waits with it.
        let mut parked = false;
        loop {
            let rest = &frame[off..];
            let hdr = match Header::new_checked(rest) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(peer = %self.peer, error = %e, "malformed SMB2 message; closing connection");
                    return Flow::Close;
                }
            };
            let next = hdr.next_command() as usize;
            let msg_len = if next == 0 { rest.len() } else { next };
            if msg_len < HEADER_LEN
                || msg_len > rest.len()
                || (next != 0 && !next.is_multiple_of(8))
            {
                tracing::warn!(peer = %self.peer, "bad NextCommand; closing connection");
                return Flow::Close;
            }
            let msg = &rest[..msg_len];
            // A related first member inherits nothing: session 0, so it fails with
            // STATUS_INVALID_PARAMETER, as do related members after it.
            let related = hdr.is_related();
            let (session_id, tree_id) = if related {
                (related_session, related_tree)
            } else {
                (hdr.session_id(), hdr.tree_id())
            };
            let command = hdr.command();
            if !related {
                related_file_id = None;
                create_err = None;
            }
            let result: HResult = match command {
                None => Err(Fail::Status(status::INVALID_PARAMETER)),
                Some(Command::Cancel) => {
                    self.cancel(&hdr);
                    Ok(Reply::None)
                }
                Some(cmd) => {
                    let charge = hdr.credit_charge();
                    // A forwarded frame's ids were consumed by the channel it came on.
                    if self.via_grants.is_none()
                        && !self.credits.consume(hdr.message_id(), charge as u64)
                    {
                        tracing::warn!(peer = %self.peer, mid = hdr.message_id(), "message id outside the credit window; closing connection");
                        return Flow::Close;
                    }
                    let req = Req {
                        msg,
                        command: cmd,
                        message_id: hdr.message_id(),
                        session_id,
                        tree_id,
                        flags: hdr.flags(),
                        related: related.then_some(Related {
                            file_id: related_file_id,
                            create_err,
                        }),
                        resolved_file_id: std::cell::Cell::new(None),
                        credit_charge: charge,
                    };
                    let r = if related
                        && session_id == 0
                        && cmd != Command::SessionSetup
                        && cmd != Command::Negotiate
                    {
                        Err(Fail::Status(status::INVALID_PARAMETER))
                    } else {
                        self.dispatch(&req)
                    };
                    if let Some(fid) = req.resolved_file_id.get() {
                        related_file_id = Some(fid);
                    }
                    r
                }
            };
            let reply_status;
            match result {
                Ok(Reply::None) => {
                    reply_status = status::SUCCESS;
                }
                Ok(Reply::Pending { async_id })
                    if next != 0
                        && command == Some(Command::Create)
                        && self.via_grants.is_none()
                        && oplock::park_rest(self, async_id, &rest[next..]) =>
                {
                    // A CREATE that waits for an oplock break may go async in the middle
                    // of a compound (MS-SMB2 <266>): the members after it run once it is done.
                    reply_status = status::PENDING;
                    parked = true;
                    self.append_response(
                        &mut out,
                        &mut last_start,
                        &hdr,
                        session_id,
                        tree_id,
                        status::PENDING,
                        Payload::Slice(&error_body(0)),
                        Some(async_id),
                    );
                }
                Ok(Reply::Pending { async_id }) if next != 0 => {
                    // Only the last member of a compound may go async; Windows and Samba
                    // fail one in the middle with STATUS_INTERNAL_ERROR (MS-SMB2 <159>).
                    self.abandon_pending(async_id);
                    reply_status = status::INTERNAL_ERROR;
                    self.append_response(
                        &mut out,
                        &mut last_start,
                        &hdr,
                        session_id,
                        tree_id,
                        status::INTERNAL_ERROR,
                        Payload::Slice(&error_body(0)),
                        None,
                    );
                }
                Ok(Reply::Pending { async_id }) => {
                    reply_status = status::PENDING;
                    let body = error_body(0);
                    self.append_response(
                        &mut out,
                        &mut last_start,
                        &hdr,
                        session_id,
                        tree_id,
                        status::PENDING,
                        Payload::Slice(&body),
                        Some(async_id),
                    );
                }
                Ok(Reply::Framed { status: st, msg }) => {
                    reply_status = st;
                    self.append_response(
                        &mut out,
                        &mut last_start,
                        &hdr,
                        session_id,
                        tree_id,
                        st,
                        Payload::Headroom(msg),
                        None,
                    );
                }
                Ok(Reply::Body { status: st, body }) => {
                    reply_status = st;
                    // A CREATE's FileId is what related members that follow use.
                    if command == Some(Command::Create) && st == status::SUCCESS {
                        if let Ok(fid) = FileId::parse(&Body::new(&synthetic(&body)), 64) {
                            related_file_id = Some(fid);
                        }
                    }
                    let sid = if command == Some(Command::SessionSetup) {
                        self.last_session_setup_id.take().unwrap_or(session_id)
                    } else {
                        session_id
                    };
                    self.append_response(
                        &mut out,
                        &mut last_start,
                        &hdr,
                        sid,
                        tree_id,
                        st,
                        Payload::Slice(&body),
                        None,
                    );
                    if command == Some(Command::TreeConnect) && st == status::SUCCESS {
                        if let Some(t) = self.last_tree_id.take() {
                            related_tree = t;
                            let start = last_start.unwrap_or(0);
                            out[start + field::TREE_ID.start..start + field::TREE_ID.end]
                                .copy_from_slice(&t.to_le_bytes());
                            self.resign(&mut out, start, sid);
                        }
                    }
                }
                Err(fail) => {
                    let (st, body) = match fail {
                        Fail::Status(st) => (st, error_body(0)),
                        Fail::StatusData(st, data) => (st, error_body_with(&data.to_le_bytes())),
                        Fail::Disconnect => return Flow::Close,
                    };
                    reply_status = st;
                    self.append_response(
                        &mut out,
                        &mut last_start,
                        &hdr,
                        session_id,
                        tree_id,
                        st,
                        Payload::Slice(&body),
                        None,
                    );
                }
            }
            if let Some(target) = self.preauth_pending.take() {
                let start = last_start.unwrap_or(0);
                let resp = &out[start..];
                match target {
                    PreauthTarget::Connection => {
                        if let Some(h) = self.neg.preauth.as_mut() {
                            h.update(resp);
                        }
                    }
                    PreauthTarget::Session(id) => {
                        if let Some(h) = self.sessions.get_mut(&id).and_then(|s| s.preauth.as_mut())
                        {
                            h.update(resp);
                        }
                    }
                    PreauthTarget::Binding(id) => {
                        if let Some(h) = self.bound.get_mut(&id).and_then(|b| b.preauth.as_mut()) {
                            h.update(resp);
                        }
                    }
                }
            }
            if reply_status != status::SUCCESS
                && reply_status != status::PENDING
                && reply_status != status::BUFFER_OVERFLOW
                && command == Some(Command::Create)
            {
                create_err = Some(reply_status);
            }
            if command != Some(Command::TreeConnect) {
                related_tree = tree_id;
            }
            // Related members after one whose session did not resolve inherit none
            // (and so fail with STATUS_INVALID_PARAMETER).
            related_session = if self.sessions.get(&session_id).is_some_and(|s| s.is_valid()) {
                session_id
            } else {
                0
            };
            if next == 0 || parked {
                break;
            }
            off += next;
            if off >= frame.len() {
                break;
            }
        }
        // Every response of a compound is 8-byte aligned, the last one included (as Windows
        // and Samba send them: smbtorture smb2.compound.compound-padding).
        if let Some(last) = last_start.filter(|&s| s > 0 && !out.len().is_multiple_of(8)) {
            out.pad_to(8);
            let sid = u64::from_le_bytes(
                out[last + field::SESSION_ID.start..last + field::SESSION_ID.end]
                    .try_into()
                    .unwrap_or([0; 8]),
            );
            self.resign(&mut out, last, sid);
        }
        // Durable-handle records this frame created go to the state store now (one
        // submission for an open granted and closed in the same compound: none); the
        // response waits for them.
        durable::end_of_frame(self);
        if !out.is_empty() && !self.send_response(out) {
            return Flow::Close;
        }
        if let Some(gate) = self.frame_gate.take() {
            Gate::open(&gate, &self.outbox);
        }
        if let Some(id) = self.deferred_logoff.take() {
            self.logoff(id);
        }
        Flow::Continue
    }

    fn dispatch(&mut self, req: &Req) -> HResult {
        use Command::*;
        match req.command {
            Negotiate => negotiate::handle(self, req),
            SessionSetup => session::handle_setup(self, req),
            Echo => {
                req.body().expect_structure_size(4)?;
                Ok(Reply::ok(vec![4, 0, 0, 0]))
            }
            _ => {
                if !self.neg.done {
                    return Err(Fail::Disconnect);
                }
                if req.command == Ioctl && req.session_id == 0 {
                    if let Some(r) = ioctl::without_session(self, req) {
                        return r;
                    }
                }
                self.check_session(req)?;
                match req.command {
                    Logoff => session::handle_logoff(self, req),
                    TreeConnect => tree::handle_connect(self, req),
                    TreeDisconnect => tree::handle_disconnect(self, req),
                    Create => create::handle_create(self, req),
                    Close => create::handle_close(self, req),
                    Flush => io::handle_flush(self, req),
                    Read => io::handle_read(self, req),
                    Write => io::handle_write(self, req),
                    Lock => lock::handle_lock(self, req),
                    Ioctl => ioctl::handle_ioctl(self, req),
                    QueryDirectory => dir::handle_query_directory(self, req),
                    ChangeNotify => notify::handle_change_notify(self, req),
                    QueryInfo => info::handle_query_info(self, req),
                    SetInfo => info::handle_set_info(self, req),
                    OplockBreak => {
                        let r = oplock::handle_break(self, req);
                        // A durable open's record follows its lease or oplock.
                        durable::caching_changed(self);
                        r
                    }
                    Negotiate | SessionSetup | Echo | Cancel => unreachable_status(),
                }
            }
        }
    }

    /// MS-SMB2 3.3.5.2.9: the session must exist and be valid; signatures are checked.
    fn check_session(&mut self, req: &Req) -> Result<(), Fail> {
        let Some(sess) = self.sessions.get(&req.session_id) else {
            // A session of another connection, not bound to this one: the answer is
            // signed with that session's key when the request verifies with it, as the
            // client holding it expects (MS-SMB2 3.3.5.2.4 looks in GlobalSessionTable).
            if Header::new_unchecked(req.msg).is_signed() {
                self.response_signer =
                    session::deleted_session_signer(self, req.session_id, req.msg);
            }
            return Err(Fail::Status(status::USER_SESSION_DELETED));
        };
        if !sess.is_valid() {
            return Err(Fail::Status(status::USER_SESSION_DELETED));
        }
        self.check_signature(req.msg, req.session_id)
    }

    pub fn check_signature(&self, msg: &[u8], session_id: u64) -> Result<(), Fail> {
        // A message that came sealed with this session's key needs no signature.
        if self
            .encrypted
            .as_ref()
            .is_some_and(|(sid, _)| *sid == session_id)
        {
            return Ok(());
        }
        let Some(sess) = self.sessions.get(&session_id) else {
            return Ok(());
        };
        let signed = Header::new_unchecked(msg).is_signed();
        match (&sess.signer, signed) {
            (Some(signer), true) => {
                if signer.verify(msg) {
                    Ok(())
                } else {
                    tracing::warn!(peer = %self.peer, session = session_id, "bad signature");
                    Err(Fail::Status(status::ACCESS_DENIED))
                }
            }
            (_, false) if sess.signing_required && sess.is_valid() => {
                tracing::warn!(peer = %self.peer, session = session_id, "unsigned request on a session that requires signing");
                Err(Fail::Status(status::ACCESS_DENIED))
            }
            _ => Ok(()),
        }
    }

    pub fn session(&mut self, id: u64) -> Result<&mut Session, Fail> {
        self.sessions
            .get_mut(&id)
            .ok_or(Fail::Status(status::USER_SESSION_DELETED))
    }

    pub fn tree(&self, req: &Req) -> Result<&Tree, Fail> {
        self.sessions
            .get(&req.session_id)
            .and_then(|s| s.trees.get(&req.tree_id))
            .ok_or(Fail::Status(status::NETWORK_NAME_DELETED))
    }

    /// Builds a response header for `req_hdr`, appends it and the body to `out` (a compound
    /// response is 8-byte aligned with NextCommand set) and signs it.
    #[allow(clippy::too_many_arguments)]
    fn append_response(
        &mut self,
        out: &mut Vec<u8>,
        last_start: &mut Option<usize>,
        req_hdr: &Header<&[u8]>,
        session_id: u64,
        tree_id: u32,
        st: u32,
        body: Payload,
        async_id: Option<u64>,
    ) {
        if let Some(prev) = *last_start {
            // Pad the previous response and link it to this one, then re-sign it.
            out.pad_to(8);
            let next = (out.len() - prev) as u32;
            out.set_u32(prev + field::NEXT_COMMAND.start, next);
            let prev_sid = u64::from_le_bytes(
                out[prev + field::SESSION_ID.start..prev + field::SESSION_ID.end]
                    .try_into()
                    .unwrap_or([0; 8]),
            );
            self.resign(out, prev, prev_sid);
        }
        self.last_response_signer = self.response_signer.take();
        let start = out.len();
        let granted = self.grant_credits(req_hdr);
        let mut hdr = [0u8; HEADER_LEN];
        {
            let mut h = Header::new_unchecked(&mut hdr[..]);
            h.set_protocol();
            h.set_credit_charge(req_hdr.credit_charge());
            h.set_status(st);
            h.set_command(req_hdr.command_raw());
            h.set_credit(granted);
            let mut fl = flags::SERVER_TO_REDIR | (req_hdr.flags() & flags::PRIORITY_MASK);
            if *last_start.as_ref().unwrap_or(&usize::MAX) != usize::MAX || req_hdr.is_related() {
                fl |= req_hdr.flags() & flags::RELATED_OPERATIONS;
            }
            h.set_message_id(req_hdr.message_id());
            if let Some(aid) = async_id {
                fl |= flags::ASYNC_COMMAND;
                h.set_async_id(aid);
            } else {
                h.set_process_id(0xFEFF);
                h.set_tree_id(tree_id);
            }
            h.set_flags(fl);
            h.set_session_id(session_id);
        }
        match body {
            Payload::Headroom(mut msg) if out.is_empty() && msg.len() >= HEADER_LEN => {
                msg[..HEADER_LEN].copy_from_slice(&hdr);
                *out = msg;
            }
            Payload::Headroom(msg) => {
                out.extend_from_slice(&hdr);
                out.extend_from_slice(msg.get(HEADER_LEN..).unwrap_or_default());
            }
            Payload::Slice(body) => {
                out.extend_from_slice(&hdr);
                out.extend_from_slice(body);
            }
        }
        *last_start = Some(start);
        self.resign(out, start, session_id);
    }

    /// Signs the response at `start` (to the end of `out`) when its session signs. A
    /// response that goes out sealed is not signed (MS-SMB2 3.3.4.1.1).
    fn resign(&self, out: &mut [u8], start: usize, session_id: u64) {
        if self.encrypted.is_some() {
            return;
        }
        let st = u32::from_le_bytes(
            out[start + field::STATUS.start..start + field::STATUS.end]
                .try_into()
                .unwrap_or([0; 4]),
        );
        if let Some(signer) = &self.last_response_signer {
            if st != status::PENDING {
                let msg = &mut out[start..];
                let fl =
                    u32::from_le_bytes(msg[16..20].try_into().unwrap_or([0; 4])) | flags::SIGNED;
                msg[16..20].copy_from_slice(&fl.to_le_bytes());
                signer.sign(msg);
            }
            return;
        }
        let Some(sess) = self.sessions.get(&session_id) else {
            return;
        };
        let Some(signer) = &sess.signer else { return };
        let cmd = u16::from_le_bytes([out[start + 12], out[start + 13]]);
        // An interim STATUS_PENDING is not signed (MS-SMB2 3.3.4.1.1); neither is a failed
        // session setup.
        if st == status::PENDING {
            return;
        }
        if cmd == Command::SessionSetup as u16 && st != status::SUCCESS {
            return;
        }
        if !(sess.signing_required || sess.is_valid()) {
            return;
        }
        let msg = &mut out[start..];
        let fl = u32::from_le_bytes(msg[16..20].try_into().unwrap_or([0; 4])) | flags::SIGNED;
        msg[16..20].copy_from_slice(&fl.to_le_bytes());
        signer.sign(msg);
    }

    fn grant_credits(&mut self, req_hdr: &Header<&[u8]>) -> u16 {
        if req_hdr.command() == Some(Command::Cancel) {
            return 0;
        }
        if let Some(q) = self.via_grants.as_mut() {
            return q.pop_front().unwrap_or(0);
        }
        let asked = req_hdr.credit().max(1) as u64;
        let charge = (req_hdr.credit_charge() as u64).max(1);
        let max = self.server.cfg.max_credits as u64;
        let outstanding = self.credits.outstanding();
        let room = max.saturating_sub(outstanding);
        // Always give back at least what the request cost, so the client never starves.
        let grant = asked.max(charge).min(room.max(1)).min(u16::MAX as u64);
        let grant = if outstanding == 0 {
            grant.max(1)
        } else {
            grant
        };
        self.credits.grant(grant);
        grant as u16
    }

    /// Sends a final async response (MS-SMB2 3.3.4.2) for a pending operation.
    pub fn complete_async(&self, p: &AsyncTarget, st: u32, body: &[u8]) {
        p.complete(st, body);
    }

    /// CANCEL (MS-SMB2 3.3.5.16): the pending operation with this AsyncId (or MessageId)
    /// completes with STATUS_CANCELLED.
    fn cancel(&mut self, hdr: &Header<&[u8]>) {
        let key = if hdr.is_async() {
            Some(hdr.async_id())
        } else {
            self.pending
                .iter()
                .find(|(_, p)| p.message_id == hdr.message_id() && p.session_id == hdr.session_id())
                .map(|(k, _)| *k)
        };
        if let Some(aid) = key {
            if let Some(p) = self.pending.remove(&aid) {
                match p.kind {
                    PendingKind::Notify { .. } => {
                        notify::cancel(self, aid, status::CANCELLED);
                    }
                    PendingKind::Lock { .. } => {
                        lock::cancel(self, aid, status::CANCELLED);
                    }
                    PendingKind::BreakWait => oplock::cancel(self, aid, status::CANCELLED),
                }
            }
        }
    }

    /// Drops a pending operation without answering it.
    fn abandon_pending(&mut self, async_id: u64) {
        self.pending.remove(&async_id);
        notify::forget(self, async_id);
        oplock::forget(self, async_id);
        let conn_id = self.id;
        if let Ok(mut w) = self.server.lock_waiters.lock() {
            w.retain(|w| !(w.target.conn_id == conn_id && w.target.async_id == async_id));
        }
    }

    /// Builds the async-completion target for a request that is going async now.
    pub fn async_target(&mut self, req: &Req, async_id: u64) -> AsyncTarget {
        // The final response of a sealed request is sealed too, and then not signed.
        let encryption = self.encrypted.as_ref().map(|(sid, e)| (*sid, e.clone()));
        let signer = self
            .sessions
            .get(&req.session_id)
            .and_then(|s| s.signer.clone())
            .filter(|_| encryption.is_none());
        let gate = self.frame_gate.get_or_insert_with(Default::default).clone();
        AsyncTarget {
            gate,
            outbox: self.outbox.clone(),
            conn_id: self.id,
            async_id,
            message_id: req.message_id,
            session_id: req.session_id,
            command: req.command as u16,
            signer,
            encryption,
        }
    }
}

/// A response body as a handler produced it.
pub enum Payload<'a> {
    Slice(&'a [u8]),
    /// HEADER_LEN bytes of headroom, then the body.
    Headroom(Vec<u8>),
}

/// Everything needed to send the final response of an async operation, from any thread.
#[derive(Clone)]
pub struct AsyncTarget {
    pub outbox: Outbox,
    pub conn_id: u64,
    pub async_id: u64,
    pub message_id: u64,
    pub session_id: u64,
    pub command: u16,
    pub signer: Option<Arc<Signer>>,
    /// Seals the response with this session's key instead of signing it.
    pub encryption: Option<(u64, Arc<session::Encryption>)>,
    /// Holds the final response back until the interim STATUS_PENDING of the same request
    /// is queued: another connection may complete the operation first.
    pub gate: Arc<Mutex<Gate>>,
}

/// Orders an async completion after its interim response (see [`AsyncTarget::gate`]).
#[derive(Default)]
pub struct Gate {
    open: bool,
    held: Vec<Vec<u8>>,
}

impl Gate {
    /// A gate that is already open (for messages with no interim response before them,
    /// such as oplock break notifications).
    pub fn opened() -> Arc<Mutex<Gate>> {
        Arc::new(Mutex::new(Gate {
            open: true,
            held: Vec::new(),
        }))
    }

    /// Opens the gate and sends what it held, in order.
    fn open(gate: &Mutex<Gate>, outbox: &Outbox) {
        if let Ok(mut g) = gate.lock() {
            g.open = true;
            for m in g.held.drain(..) {
                outbox.send(m);
            }
        }
    }
}

impl AsyncTarget {
    pub fn complete(&self, st: u32, body: &[u8]) {
        let mut msg = vec![0u8; HEADER_LEN];
        {
            let mut h = Header::new_unchecked(&mut msg[..]);
            h.set_protocol();
            h.set_status(st);
            h.set_command(self.command);
            h.set_credit(0);
            let mut fl = flags::SERVER_TO_REDIR | flags::ASYNC_COMMAND;
            if self.signer.is_some() {
                fl |= flags::SIGNED;
            }
            h.set_flags(fl);
            h.set_message_id(self.message_id);
            h.set_async_id(self.async_id);
            h.set_session_id(self.session_id);
        }
        if body.is_empty() {
            msg.extend_from_slice(&error_body(0));
        } else {
            msg.extend_from_slice(body);
        }
        if let Some(s) = &self.signer {
            s.sign(&mut msg);
        }
        let msg = match &self.encryption {
            Some((sid, enc)) => match enc.seal(*sid, msg) {
                Some(m) => m,
                None => return,
            },
            None => msg,
        };
        match self.gate.lock() {
            Ok(mut g) if !g.open => g.held.push(msg),
            _ => {
                self.outbox.send(msg);
            }
        }
    }
}

/// The SMB2 ERROR response body (MS-SMB2 2.2.2) with no error data.
pub fn error_body(_ctx: u8) -> Vec<u8> {
    vec![9, 0, 0, 0, 0, 0, 0, 0, 0]
}

/// The SMB2 ERROR response body with error data (ByteCount = data length).
pub fn error_body_with(data: &[u8]) -> Vec<u8> {
    let mut b = vec![9, 0, 0, 0];
    b.put_u32(data.len() as u32);
    b.extend_from_slice(data);
    b
}

/// A response body placed behind a zeroed header so `Body` offsets line up.
fn synthetic(body: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; HEADER_LEN];
    m.extend_from_slice(body);
    m
}

fn unreachable_status() -> HResult {
    Err(Fail::Status(status::INTERNAL_ERROR))
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.teardown();
    }
}

impl Conn {
    /// Ends a session: its opens close (durable ones are kept, disconnected, for their
    /// timeout: MS-SMB2 3.3.5.6) and its trees go.
    pub fn logoff(&mut self, session_id: u64) {
        let vols: Vec<u64> = self
            .opens
            .iter()
            .filter(|(_, o)| o.session_id == session_id)
            .map(|(v, _)| *v)
            .collect();
        for v in vols {
            if !durable::disconnect(self, v) {
                create::close_open(self, v);
            }
        }
        self.sessions.remove(&session_id);
        if let Ok(mut reg) = self.server.sessions.lock() {
            reg.remove(session_id, self.id);
        }
        durable::session_ended(self, &[session_id]);
    }

    /// Releases everything the connection held: opens (share modes, locks, delete on
    /// close; durable opens are kept, disconnected: MS-SMB2 3.3.7.1), pending operations
    /// and change-notify registrations.
    pub fn teardown(&mut self) {
        // Multichannel: this connection stops being a channel of any session; the
        // connections it ran for others move on to another of their channels (or end),
        // and so do its own sessions that have another channel.
        session::channel_gone(self);
        let adopted = std::mem::take(&mut self.adopted);
        for mut a in adopted {
            a.hand_over &= self.hand_over;
            drop(a);
        }
        if self.hand_over {
            self.hand_over_sessions();
        }
        oplock::conn_gone(self);
        let vols: Vec<u64> = self.opens.keys().copied().collect();
        for v in vols {
            if !durable::disconnect(self, v) {
                create::close_open(self, v);
            }
        }
        let conn_id = self.id;
        if let Ok(mut n) = self.server.notify.lock() {
            n.remove_conn(conn_id);
        }
        if let Ok(mut reg) = self.server.sessions.lock() {
            reg.remove_conn(conn_id);
        }
        let mailbox = self
            .server
            .mailboxes
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&conn_id));
        drop(mailbox);
        self.pending.clear();
        durable::conn_ended(self);
    }

    /// Multichannel (MS-SMB2 3.3.7.1: a session lives on while one of its channels does):
    /// the connection closed, but some of its sessions have other channels. Its state
    /// (those sessions, their trees, opens and waiting requests, under the same connection
    /// id, so every server-wide reference to them stays true) moves to one of those
    /// channels, which runs it from then on; `self` is left an empty connection to tear
    /// down. Sessions without a channel there end here as before.
    fn hand_over_sessions(&mut self) {
        let Some((target, outbox, moving)) = session::hand_over_target(self) else {
            return;
        };
        let Some(target_mb) = self
            .server
            .mailboxes
            .lock()
            .ok()
            .and_then(|m| m.get(&target).cloned())
        else {
            return;
        };
        let fresh = Conn::new(
            self.server.clone(),
            self.peer,
            self.local,
            self.outbox.clone(),
        );
        let mut old = std::mem::replace(self, fresh);
        let ending: Vec<u64> = old
            .sessions
            .keys()
            .copied()
            .filter(|s| !moving.contains(s))
            .collect();
        for sid in ending {
            old.logoff(sid);
        }
        let stale: Vec<u64> = old
            .pending
            .iter()
            .filter(|(_, p)| !moving.contains(&p.session_id))
            .map(|(a, _)| *a)
            .collect();
        for aid in stale {
            old.abandon_pending(aid);
        }
        old.outbox = outbox;
        if let Ok(mut f) = old.mailbox.forward.lock() {
            *f = Some(target_mb.clone());
        }
        tracing::info!(peer = %old.peer, conn = old.id, to = target, sessions = ?moving, "connection closed; its sessions live on on another channel");
        target_mb.post(ConnEvent::Adopt(Parcel::new(old)));
    }
}
