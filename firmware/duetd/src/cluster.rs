//! The pair's shell: runs the cluster core (`duet-cluster`) for a node of a pair and
//! carries out what it decides.
//!
//! Owns: one thread (`duet-cluster`) that owns the heartbeat link (a smoltcp stack on the
//! heartbeat NIC, `duet_hal::net::link`), the UDP socket for heartbeats on the data
//! network, the tie-breaker probe and the node's `cluster.node` file; the feeding of the
//! state store's change feed to the core and of the partner's changes into the store; and
//! the takeover and release effects. Never decides who serves (the core does), never
//! applies a frame itself (the core authenticates it first).
//!
//! How a client's "done" waits for the partner: the store's commit thread wakes this thread
//! after each commit; it reads the new feed entries and submits them to the core, which
//! mirrors them over the link; [`Event::Acked`] raises the store's acknowledgement mark
//! ([`Store::partner_acked`]), and every `Ticket::wait` (the SMB core holds responses on
//! those tickets) returns only once its change is below the mark. On a node that does not
//! serve the store is fenced: only the partner's changes are written to it.
//!
//! Takeover effects run on a thread of their own, in the core's order (promote storage,
//! import the mirrored durable handles into a new SMB server, add the VIP, gratuitous ARPs,
//! tickle ACKs), while this thread keeps heartbeating. Release effects run inline, before
//! any later frame leaves (the core's contract): fence the store, fail unacknowledged
//! waits, remove the VIP, close every client connection, demote storage.
//!
//! Time is milliseconds since this thread started, from the monotonic clock.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use duet_cluster::{Config, DurableState, Effect, Event, Millis, Node, Path, Transmit};
use duet_hal::net::link::{HeartbeatLink, LinkConfig};
use duet_hal::net::probe::IcmpProbe;
use duet_hal::storage_role::StorageRole;
use duet_state::pair::{NodeState, PairKey};
use duet_state::Store;

use crate::service::Service;
use crate::smb::Server;

/// Builds the SMB server of a new period of service (its durable handles are imported
/// after).
pub type ServerFactory = Box<dyn Fn() -> Arc<Server> + Send + Sync>;

/// Everything the shell needs, from the board config and the state directory.
pub struct Settings {
    pub state_dir: PathBuf,
    pub cluster: crate::config::Cluster,
    pub data_nic: String,
    pub heartbeat_nic: String,
}

/// A running shell: commands for the admin socket.
pub struct Handle {
    cmds: mpsc::Sender<Command>,
    waker: Arc<Waker>,
}

enum Command {
    /// The daemon stops: give the service up (the partner takes over when the heartbeats
    /// stop), then answer.
    Stop(mpsc::Sender<Result<String, String>>),
    Status(mpsc::Sender<Result<String, String>>),
    Switchover(mpsc::Sender<Result<String, String>>),
    ForceTakeover(mpsc::Sender<Result<String, String>>),
}

impl Handle {
    /// Before the process exits: stop serving as a release would (fence the store, remove
    /// the VIP, close client connections, demote storage), so the partner can take over
    /// cleanly once the heartbeats stop.
    pub fn stop(&self) {
        let (tx, rx) = mpsc::channel();
        if self.cmds.send(Command::Stop(tx)).is_ok() {
            self.waker.wake();
            let _ = rx.recv_timeout(Duration::from_secs(15));
        }
    }

    /// Answers `duetctl cluster ...` (the admin socket's hook).
    pub fn command(&self, cmd: duet_state::admin::ClusterCommand) -> Result<String, String> {
        use duet_state::admin::ClusterCommand as C;
        let (tx, rx) = mpsc::channel();
        let c = match cmd {
            C::Status => Command::Status(tx),
            C::Switchover => Command::Switchover(tx),
            C::ForceTakeover => Command::ForceTakeover(tx),
        };
        self.cmds
            .send(c)
            .map_err(|_| "the cluster thread has stopped".to_string())?;
        self.waker.wake();
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| "the cluster thread did not answer".to_string())?
    }
}

/// Wakes the shell's `poll` (an eventfd).
struct Waker {
    fd: OwnedFd,
}

impl Waker {
    fn new() -> std::io::Result<Waker> {
        // SAFETY: eventfd(2); the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        Ok(Waker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }
    fn wake(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer; failure (counter full) still wakes.
        unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), 8) };
    }
    fn drain(&self) {
        let mut b = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live buffer (non-blocking).
        unsafe { libc::read(self.fd.as_raw_fd(), b.as_mut_ptr().cast(), 8) };
    }
}

/// What the takeover and release effects act on.
struct Effects {
    store: Arc<Store>,
    service: Arc<Service>,
    factory: ServerFactory,
    data_nic: String,
    vip: Ipv4Addr,
    prefix: u8,
    storage: Option<Mutex<Box<dyn StorageRole>>>,
}

/// Starts the shell of a pair node: opens the link, the data-path socket and the probe
/// (errors name what failed), fences the store (the node serves only once the core says
/// so), and spawns the thread.
pub fn start(
    settings: Settings,
    store: Arc<Store>,
    service: Arc<Service>,
    factory: ServerFactory,
) -> Result<Handle, String> {
    let dir = &settings.state_dir;
    let c = &settings.cluster;
    let key = PairKey::load(dir).map_err(|e| e.to_string())?;
    let mut saved = NodeState::load(dir).map_err(|e| e.to_string())?;
    saved.incarnation = saved.incarnation.saturating_add(1);
    saved
        .save(dir)
        .map_err(|e| format!("{}: {e}", dir.join(duet_state::pair::NODE_FILE).display()))?;
    let (vip, prefix) = c.vip()?;
    let node_id = c.node_id()?;

    // Not serving until the core says so.
    store.fence_local_writes(Some(
        "this node does not serve (it mirrors its partner)".into(),
    ));
    store.require_partner_acks(true, 0);
    // A VIP left behind by a killed process must not answer for the partner.
    match duet_hal::net::vip::remove(&settings.data_nic, vip) {
        Ok(true) => tracing::warn!(%vip, nic = %settings.data_nic, "removed a stale VIP"),
        Ok(false) => {}
        Err(e) => return Err(format!("VIP {vip} on {}: {e}", settings.data_nic)),
    }

    let _ = duet_hal::net::link_set_up(&settings.heartbeat_nic);
    let mut link_cfg = LinkConfig::new(&settings.heartbeat_nic);
    link_cfg.port = c.port;
    let started = Instant::now();
    let link = HeartbeatLink::open(&link_cfg, started)
        .map_err(|e| format!("heartbeat link on {}: {e}", settings.heartbeat_nic))?;
    let data = UdpSocket::bind(SocketAddrV4::new(c.data_addr, c.port)).map_err(|e| {
        format!(
            "cluster heartbeats on the data network ({}:{}): {e}",
            c.data_addr, c.port
        )
    })?;
    data.set_nonblocking(true).map_err(|e| e.to_string())?;
    let probe = IcmpProbe::open(c.tiebreaker)
        .map_err(|e| format!("tie-breaker probe of {}: {e}", c.tiebreaker))?;

    let mut cfg = Config::new(key.cluster_id, key.key.to_vec(), node_id);
    cfg.heartbeat_interval = c.heartbeat_interval_ms;
    cfg.dead_after_misses = c.dead_after_misses;
    cfg.takeover_grace = c.takeover_grace_ms;
    cfg.failback_to = c.failback()?;
    cfg.max_frame_len = link.max_payload().min(cfg.max_frame_len.max(512));
    let durable = DurableState {
        epoch: saved.epoch,
        served: saved.served,
        alone: saved.alone,
        partner_incarnation: saved.partner_incarnation,
    };
    let last_seq = store.last_seq().map_err(|e| e.to_string())?;
    let node = Node::new(cfg, 1, saved.incarnation, durable, last_seq)
        .map_err(|e| format!("cluster configuration: {e}"))?;
    tracing::info!(
        node = %node_id,
        incarnation = saved.incarnation,
        epoch = saved.epoch,
        last_seq,
        link = %link.local_addr(),
        data = %c.data_addr,
        partner = %c.partner_data_addr,
        %vip,
        tiebreaker = %c.tiebreaker,
        "cluster node starting"
    );

    let waker = Arc::new(Waker::new().map_err(|e| format!("eventfd: {e}"))?);
    let feed_pending = Arc::new(AtomicBool::new(true));
    {
        let waker = waker.clone();
        let pending = feed_pending.clone();
        store.set_commit_listener(Some(Arc::new(move || {
            pending.store(true, Ordering::Release);
            waker.wake();
        })));
    }
    let storage = c
        .storage_role()
        .map(|r| Mutex::new(duet_hal::storage_role::open(&r)));
    let effects = Arc::new(Effects {
        store: store.clone(),
        service,
        factory,
        data_nic: settings.data_nic.clone(),
        vip,
        prefix,
        storage,
    });
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let tick = c.heartbeat_interval_ms.clamp(10, 1000);
    let mut shell = Shell {
        node,
        started,
        store,
        link,
        data,
        partner_data: SocketAddr::V4(SocketAddrV4::new(c.partner_data_addr, c.port)),
        probe,
        probe_every: tick,
        next_probe: 0,
        last_reply: None,
        carrier: true,
        next_carrier_check: 0,
        waker: waker.clone(),
        feed_pending,
        fed: last_seq,
        cmds: cmd_rx,
        effects,
        takeover: None,
        saved,
        dir: settings.state_dir.clone(),
        next_prune: 30_000,
        next_report: 0,
    };
    std::thread::Builder::new()
        .name("duet-cluster".into())
        .spawn(move || shell.run())
        .map_err(|e| format!("cluster thread: {e}"))?;
    Ok(Handle {
        cmds: cmd_tx,
        waker,
    })
}

struct Shell {
    node: Node,
    started: Instant,
    store: Arc<Store>,
    link: HeartbeatLink,
    data: UdpSocket,
    partner_data: SocketAddr,
    probe: IcmpProbe,
    probe_every: Millis,
    next_probe: Millis,
    last_reply: Option<Millis>,
    carrier: bool,
    next_carrier_check: Millis,
    waker: Arc<Waker>,
    feed_pending: Arc<AtomicBool>,
    /// Last change of the store the core knows of (submitted, or delivered by the partner).
    fed: u64,
    cmds: mpsc::Receiver<Command>,
    effects: Arc<Effects>,
    takeover: Option<JoinHandle<()>>,
    saved: NodeState,
    dir: PathBuf,
    next_prune: Millis,
    next_report: Millis,
}

/// Feed entries read per store transaction.
const FEED_BATCH: usize = 512;
/// Changes kept in the store's feed behind what the core has (the core keeps its own copy
/// for the partner; the store's feed only needs what is not yet submitted).
const FEED_KEEP: u64 = 10_000;

impl Shell {
    fn now(&self) -> Millis {
        // Starts at 1: the core's clock never reads 0 after its creation at 1.
        1 + self.started.elapsed().as_millis() as Millis
    }

    fn run(&mut self) {
        let mut buf = vec![0u8; 2048];
        loop {
            let now = self.now();
            let mut wait = self
                .node
                .poll_timeout()
                .map_or(1000, |t| t.saturating_sub(now))
                .min(self.next_probe.saturating_sub(now));
            if let Some(d) = self.link.poll_delay(Instant::now()) {
                wait = wait.min(d.as_millis() as u64);
            }
            let mut fds = [
                pollfd(self.link.as_raw_fd()),
                pollfd(self.data.as_raw_fd()),
                pollfd(self.probe.as_raw_fd()),
                pollfd(self.waker.fd.as_raw_fd()),
            ];
            // SAFETY: fds is a live array of pollfd of the given length.
            unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    wait.min(1000) as libc::c_int,
                )
            };
            let now = self.now();
            if fds[3].revents != 0 {
                self.waker.drain();
            }
            while let Ok(cmd) = self.cmds.try_recv() {
                self.command(now, cmd);
            }
            // Frames on the link.
            self.link.poll(Instant::now());
            let node = &mut self.node;
            while self
                .link
                .recv_with(|payload, _src| node.handle_frame(now, Path::Link, payload))
                .is_some()
            {}
            // Heartbeats on the data network, from the partner's address only.
            while let Ok((n, src)) = self.data.recv_from(&mut buf) {
                if src.ip() == self.partner_data.ip() {
                    self.node.handle_frame(now, Path::Data, &buf[..n]);
                }
            }
            self.tiebreaker(now);
            if self.feed_pending.swap(false, Ordering::AcqRel) {
                self.feed(now, None);
            }
            if self.node.poll_timeout().is_some_and(|t| t <= now) {
                self.node.handle_timeout(now);
            }
            self.drain(now);
            if now >= self.next_report {
                // Once a second while the partner is silent and this node does not serve:
                // what the takeover rules see (why it does or does not take over).
                self.next_report = now + 1000;
                let r = self.node.report();
                if !r.partner_contact && !r.role.is_serving() {
                    tracing::info!(
                        role = ?r.role,
                        in_sync = r.in_sync,
                        data_path_up = r.data_path_up,
                        tiebreaker_ok = r.tiebreaker_ok,
                        carrier = self.carrier,
                        last_reply_ms_ago = self.last_reply.map(|t| now.saturating_sub(t)),
                        "partner silent, not serving"
                    );
                }
            }
            if now >= self.next_prune {
                self.next_prune = now + 30_000;
                self.prune();
            }
        }
    }

    /// Carrier of the data NIC (at once when lost) and the tie-breaker's echo replies.
    fn tiebreaker(&mut self, now: Millis) {
        if self.probe.take_replies() {
            self.last_reply = Some(now);
            // Reported at once: a node that just started is not held back a whole interval
            // (T1 wants the tie-breaker good since before the partner fell silent).
            if self.carrier {
                self.node.set_tiebreaker_reachable(now, true);
            }
        }
        if now >= self.next_carrier_check {
            self.next_carrier_check = now + 20;
            let up = duet_hal::net::carrier(&self.effects.data_nic).unwrap_or(false);
            if up != self.carrier {
                self.carrier = up;
                tracing::warn!(nic = %self.effects.data_nic, up, "data NIC carrier changed");
                if !up {
                    self.node.set_tiebreaker_reachable(now, false);
                }
            }
        }
        if now >= self.next_probe {
            self.next_probe = now + self.probe_every;
            let recent = self
                .last_reply
                .is_some_and(|t| now.saturating_sub(t) <= 2 * self.probe_every + 50);
            // Before the first answer could have come there is nothing to report.
            if self.last_reply.is_some() || now > 3 * self.probe_every {
                self.node
                    .set_tiebreaker_reachable(now, self.carrier && recent);
            }
            if self.carrier {
                let _ = self.probe.send();
            }
        }
    }

    /// Submits the store's new local changes (up to `upto`) to the core.
    fn feed(&mut self, now: Millis, upto: Option<u64>) {
        loop {
            let batch = match self.store.encoded_changes_since(self.fed, FEED_BATCH) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "reading the change feed");
                    return;
                }
            };
            if batch.is_empty() {
                return;
            }
            for (seq, bytes) in batch {
                if upto.is_some_and(|u| seq > u) {
                    return;
                }
                if let Err(e) = self.node.submit_change(now, seq, bytes) {
                    // Not serving (a commit that raced a release) or out of order: the core
                    // notes that this store holds what the pair does not and resyncs.
                    tracing::warn!(seq, error = %e, "change not mirrored");
                }
                self.fed = seq;
            }
            self.drain(now);
        }
    }

    fn prune(&mut self) {
        if !self.node.is_serving() || self.fed <= FEED_KEEP {
            return;
        }
        let store = self.store.clone();
        let before = self.fed - FEED_KEEP;
        // Off this thread: a write transaction waits for a disk sync.
        let _ = std::thread::Builder::new()
            .name("duet-prune".into())
            .spawn(move || {
                if let Err(e) = store.prune_changes_before(before) {
                    tracing::warn!(error = %e, "pruning the change feed");
                }
            });
    }

    fn drain(&mut self, now: Millis) {
        loop {
            let mut progressed = false;
            while let Some(ev) = self.node.poll_event() {
                progressed = true;
                self.event(now, ev);
            }
            while let Some(t) = self.node.poll_transmit() {
                progressed = true;
                self.transmit(t);
            }
            if !progressed {
                break;
            }
        }
    }

    fn transmit(&mut self, t: Transmit) {
        match t.path {
            Path::Link => {
                let dst = SocketAddrV4::new(Ipv4Addr::BROADCAST, self.link.local_addr().port());
                if let Err(e) = self.link.send_to(&t.payload, dst) {
                    tracing::debug!(error = %e, "heartbeat link send");
                }
                self.link.poll(Instant::now());
                if let Some(e) = self.link.take_error() {
                    tracing::debug!(error = %e, "heartbeat link");
                }
            }
            Path::Data => {
                let _ = self.data.send_to(&t.payload, self.partner_data);
            }
        }
    }

    fn event(&mut self, now: Millis, ev: Event) {
        match ev {
            Event::Persist(d) => {
                self.saved.epoch = d.epoch;
                self.saved.served = d.served;
                self.saved.alone = d.alone;
                self.saved.partner_incarnation = d.partner_incarnation;
                if let Err(e) = self.saved.save(&self.dir) {
                    // The core's promises rest on this write: without it, stop.
                    tracing::error!(error = %e, "cannot persist the cluster state; exiting");
                    std::process::exit(70);
                }
            }
            Event::RoleChanged(r) => {
                tracing::info!(role = ?r, epoch = self.node.epoch(), "cluster role")
            }
            Event::MirrorChanged(m) => tracing::info!(mirror = ?m, "mirroring"),
            Event::Warning(w) => tracing::warn!(warning = ?w, "cluster"),
            Event::Acked(seq) => self.store.partner_acked(seq),
            Event::ApplyChanges(changes) => {
                // Exactly in order: a change this store already holds under the same number
                // is an error, never skipped (it could be another node's change).
                let fresh: Vec<(u64, &[u8])> =
                    changes.iter().map(|c| (c.seq, c.data.as_slice())).collect();
                let Some(last) = changes.last().map(|c| c.seq) else {
                    return;
                };
                match self.store.apply_encoded_changes(&fresh) {
                    Ok(()) => {
                        self.fed = self.fed.max(last);
                        if let Err(e) = self.node.applied(now, last) {
                            tracing::warn!(error = %e, "applied");
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, first = ?fresh.first().map(|c| c.0), "cannot apply the partner's changes")
                    }
                }
            }
            Event::InstallSnapshot { seq, data } => {
                match self.store.restore_encoded_snapshot(seq, &data) {
                    Ok(()) => {
                        tracing::info!(seq, bytes = data.len(), "installed the partner's snapshot");
                        self.fed = seq;
                        if let Err(e) = self.node.applied(now, seq) {
                            tracing::warn!(error = %e, "applied snapshot");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot install the partner's snapshot"),
                }
            }
            Event::SnapshotRequested => {
                // Everything committed so far goes to the core first, then the snapshot,
                // then what the snapshot holds beyond that: the snapshot's position is then
                // exactly the last change fed.
                self.feed(now, None);
                match self.store.encoded_snapshot() {
                    Ok((seq, data)) => {
                        if seq > self.fed {
                            self.feed(now, Some(seq));
                        }
                        tracing::info!(seq, bytes = data.len(), "snapshot for the partner");
                        if let Err(e) = self.node.snapshot_ready(now, seq, data) {
                            tracing::warn!(error = %e, "snapshot not taken");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot take a snapshot for the partner"),
                }
            }
            Event::Takeover {
                epoch,
                reason,
                effects,
            } => {
                tracing::warn!(epoch, ?reason, ?effects, "taking the service over");
                if let Some(t) = self.takeover.take() {
                    let _ = t.join();
                }
                let fx = self.effects.clone();
                let last = self.store.last_seq().unwrap_or(self.fed);
                self.fed = self.fed.max(last);
                let started = Instant::now();
                self.takeover = std::thread::Builder::new()
                    .name("duet-takeover".into())
                    .spawn(move || fx.take_over(&effects, started))
                    .map_err(|e| tracing::error!(error = %e, "takeover thread"))
                    .ok();
            }
            Event::Release { reason, effects } => {
                tracing::warn!(?reason, ?effects, "releasing the service");
                if let Some(t) = self.takeover.take() {
                    let _ = t.join();
                }
                self.effects.release(&effects);
            }
        }
    }

    fn command(&mut self, now: Millis, cmd: Command) {
        match cmd {
            Command::Stop(reply) => {
                if let Some(t) = self.takeover.take() {
                    let _ = t.join();
                }
                if self.effects.service.is_serving() {
                    tracing::warn!("stopping: giving the service up");
                    self.effects.release(&duet_cluster::RELEASE_EFFECTS);
                }
                let _ = reply.send(Ok(String::new()));
                // No more heartbeats: the process exits next.
                loop {
                    std::thread::park();
                }
            }
            Command::Status(reply) => {
                let _ = reply.send(Ok(self.status()));
            }
            Command::Switchover(reply) => {
                // On the serving node: no local change may commit after the core releases
                // (it could not be mirrored, and the partner would have to resync). So
                // fence first, let what is queued commit, and hand it all to the core.
                let serving = self.node.is_serving();
                if serving {
                    self.store
                        .fence_local_writes(Some("this node is handing the service over".into()));
                    if let Err(e) = self.store.drain_commits() {
                        tracing::warn!(error = %e, "draining commits before a switchover");
                    }
                    self.feed(now, None);
                }
                let r = self
                    .node
                    .switchover(now)
                    .map(|()| "switchover started: the partner serves once it has taken over (duetctl cluster status)".to_string())
                    .map_err(|e| format!("switchover refused: {e}"));
                if serving && r.is_err() {
                    self.store.fence_local_writes(None);
                }
                self.drain(now);
                let _ = reply.send(r);
            }
            Command::ForceTakeover(reply) => {
                let r = self
                    .node
                    .force_takeover(now)
                    .map(|()| "taking the service over (forced)".to_string())
                    .map_err(|e| format!("takeover refused: {e}"));
                self.drain(now);
                let _ = reply.send(r);
            }
        }
    }

    fn status(&self) -> String {
        let r = self.node.report();
        let s = self.node.stats();
        let (required, acked) = self.store.partner_ack_state();
        format!(
            "node: {}\nrole: {:?}\nepoch: {}\nserving: {}\nmirror: {:?}\nin_sync: {}\n\
             partner_contact: {}\nlink_up: {}\ndata_path_up: {}\ntiebreaker_ok: {}\n\
             last_seq: {}\nacked_seq: {}\nstore_acked: {} (required: {})\nincarnation: {}\n\
             frames_sent: {}\nframes_accepted: {}\nframes_refused: {}\nretransmissions: {}\n\
             snapshots: {}\ntakeovers: {}\nstep_downs: {}\nhandovers: {}\n",
            self.node.node_id(),
            r.role,
            r.epoch,
            self.effects.service.is_serving(),
            r.mirror,
            r.in_sync,
            r.partner_contact,
            r.link_up,
            r.data_path_up,
            r.tiebreaker_ok,
            r.last_seq,
            r.acked_seq,
            acked,
            required,
            self.node.incarnation(),
            s.frames_sent,
            s.frames_accepted,
            s.refused(),
            s.retransmissions,
            s.snapshots_requested,
            s.takeovers,
            s.step_downs,
            s.handovers,
        )
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

impl Effects {
    /// The takeover effects, in the core's order; the service opens after the import.
    fn take_over(&self, effects: &[Effect], started: Instant) {
        for e in effects {
            match e {
                Effect::PromoteStorage => {
                    if let Some(s) = &self.storage {
                        let mut s = s.lock().unwrap_or_else(PoisonError::into_inner);
                        if let Err(e) = s.promote() {
                            tracing::error!(error = %e, "promoting the storage failed; serving anyway would lose writes, not serving");
                            return;
                        }
                    }
                }
                Effect::ImportHandles => {
                    let last = self.store.last_seq().unwrap_or(0);
                    self.store.require_partner_acks(true, last);
                    self.store.fence_local_writes(None);
                    let server = (self.factory)();
                    match crate::smb::durable::restore(&server) {
                        Ok(r) => tracing::info!(
                            restored = r.restored,
                            expired = r.expired,
                            dropped = r.dropped,
                            "imported the mirrored durable handles"
                        ),
                        Err(e) => tracing::error!(error = %e, "importing durable handles"),
                    }
                    self.service.start(server);
                }
                Effect::AddVip => {
                    match duet_hal::net::vip::add(&self.data_nic, self.vip, self.prefix) {
                        Ok(_) => tracing::info!(vip = %self.vip, nic = %self.data_nic, "VIP added"),
                        Err(e) => tracing::error!(vip = %self.vip, error = %e, "adding the VIP"),
                    }
                }
                Effect::SendGratuitousArp => {
                    let (nic, vip) = (self.data_nic.clone(), self.vip);
                    // The first round now, before the tickle ACKs (a client answers a tickle
                    // at the VIP's MAC as it knows it), more later for what missed it.
                    if let Err(e) = duet_hal::net::garp::announce(&nic, vip, 1, Duration::ZERO) {
                        tracing::warn!(error = %e, "gratuitous ARP");
                    }
                    let _ = std::thread::Builder::new()
                        .name("duet-garp".into())
                        .spawn(move || {
                            for gap in [50u64, 200, 750, 2000] {
                                std::thread::sleep(Duration::from_millis(gap));
                                if let Err(e) =
                                    duet_hal::net::garp::announce(&nic, vip, 1, Duration::ZERO)
                                {
                                    tracing::warn!(error = %e, "gratuitous ARP");
                                    return;
                                }
                            }
                        });
                }
                Effect::SendTickleAcks => {
                    // Once now and twice more: a client whose answer to the first went to
                    // the old MAC (its ARP entry not yet updated) answers a later one here.
                    self.tickle();
                    let me = (self.store.clone(), self.vip);
                    let _ = std::thread::Builder::new()
                        .name("duet-tickle".into())
                        .spawn(move || {
                            for gap in [100u64, 400] {
                                std::thread::sleep(Duration::from_millis(gap));
                                tickle(&me.0, me.1);
                            }
                        });
                }
                _ => {}
            }
        }
        tracing::warn!(
            ms = started.elapsed().as_millis() as u64,
            vip = %self.vip,
            "serving"
        );
    }

    fn tickle(&self) {
        tickle(&self.store, self.vip);
    }

    /// The release effects, inline.
    fn release(&self, effects: &[Effect]) {
        let reason = "this node released the service to its partner".to_string();
        self.store.fence_local_writes(Some(reason.clone()));
        self.store.abandon_unacked(reason);
        for e in effects {
            match e {
                Effect::RemoveVip => {
                    if let Err(e) = duet_hal::net::vip::remove(&self.data_nic, self.vip) {
                        tracing::error!(error = %e, "removing the VIP");
                    }
                }
                Effect::CloseClientConnections => {
                    let n = self.service.stop();
                    tracing::info!(connections = n, "client connections closed");
                }
                Effect::DemoteStorage => {
                    if let Some(s) = &self.storage {
                        let mut s = s.lock().unwrap_or_else(PoisonError::into_inner);
                        if let Err(e) = s.demote() {
                            tracing::error!(error = %e, "demoting the storage");
                        }
                    }
                }
                _ => {}
            }
        }
        // Whatever the list said, this node must not keep serving.
        self.service.stop();
    }
}

/// Tickle ACKs to every client connection of the mirrored table that used the VIP.
fn tickle(store: &Store, vip: Ipv4Addr) {
    let conns = match store.list_client_connections() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "reading client connections");
            return;
        }
    };
    let list: Vec<duet_hal::net::tickle::TcpConn> = conns
        .iter()
        .filter_map(|c| match (c.client, c.server) {
            (SocketAddr::V4(client), SocketAddr::V4(server)) if *server.ip() == vip => {
                Some(duet_hal::net::tickle::TcpConn { client, server })
            }
            _ => None,
        })
        .collect();
    if list.is_empty() {
        return;
    }
    match duet_hal::net::tickle::Tickler::open() {
        Ok(t) => {
            let r = t.send_all(&list);
            tracing::info!(sent = r.sent, failed = r.failed, "tickle ACKs sent");
        }
        Err(e) => tracing::warn!(error = %e, "tickle ACKs"),
    }
}
