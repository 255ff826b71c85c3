//! node: the cluster state machine of one node of the pair.
//!
//! Owns roles (who serves), the decisions to take over, step down, hand over and resync,
//! the heartbeat schedule, the acknowledgement of mirrored changes to clients, and the
//! durable facts a restarted node needs. It is fed frames, ticks, tie-breaker reports and
//! changes, and answers with frames to send, events for the shell, and the next time it
//! wants to be woken. It must never do I/O, read a clock, spawn anything, or apply a frame
//! that failed authentication or the replay check. The rules it follows, and why they
//! cannot let both nodes serve, are in the crate documentation.

use crate::config::{Config, Millis, NodeId};
use crate::stream::{Change, Delivery, InStream, OutStream};
use crate::wire::{Ack, Body, Codec, Message, Path, Refusal, ReplayWindow, Status, WireMirror};
use crate::ClusterError;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// What a node must find again after a restart. The shell writes it durably whenever the
/// core emits [`Event::Persist`], before it acts on any later event or sends any frame
/// polled after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableState {
    /// Highest epoch (term of service) this node knows. Every new period of service, on
    /// either node, has a higher epoch than the one before.
    pub epoch: u64,
    /// This node served `epoch`: its store holds every change acknowledged in it.
    pub served: bool,
    /// It served `epoch` acknowledging changes without its partner: the partner cannot
    /// hold them, so it cannot have served since without hearing this node first.
    pub alone: bool,
    /// Partner incarnation last seen: frames of older incarnations are stale.
    pub partner_incarnation: u64,
}

impl DurableState {
    /// The node that founds the pair (its store is the pair's data): it may serve alone.
    /// The other node, and any replacement box, starts from `DurableState::default()`.
    pub fn founder() -> DurableState {
        DurableState {
            epoch: 0,
            served: true,
            alone: true,
            partner_incarnation: 0,
        }
    }
}

/// A node's role, as an operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Just started; not serving; waiting to hear the partner (or, if it served alone last,
    /// for the tie-breaker).
    Starting,
    /// Following the serving node, applying its changes.
    Passive,
    /// Serving with synchronous mirroring (or holding acknowledgements while the link is
    /// briefly lost: see [`MirrorState::Suspended`]).
    Active,
    /// Serving alone: changes are acknowledged without the partner (which may be resyncing).
    DegradedActive,
    /// Released the service for a planned switchover; draining the mirror.
    HandingOver,
    /// Gave up the service (lost link and tie-breaker, superseded, or a switchover that did
    /// not complete) and follows no one yet.
    SteppedDown,
}

impl Role {
    /// Holding the service address: at most one node of the pair, ever.
    pub fn is_serving(self) -> bool {
        matches!(self, Role::Active | Role::DegradedActive)
    }
}

/// How the serving node's changes reach the partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MirrorState {
    /// This node does not lead.
    NotLeading,
    /// A change is acknowledged only once the partner committed it.
    Synchronous,
    /// Link lost: acknowledgements are held until the partner confirms it will not take
    /// over, or it is silent long enough, or the link returns.
    Suspended,
    /// Acknowledging alone; the partner is away.
    Alone,
    /// Acknowledging alone while the partner catches up (snapshot and tail).
    Resyncing,
}

/// One side effect of taking over, for the shell to run in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Make this node's storage writable (drbd primary, or the shared-dir driver).
    PromoteStorage,
    /// Import the mirrored handles as disconnected durable opens.
    ImportHandles,
    /// Add the service address (VIP) to the data NIC.
    AddVip,
    /// Announce the VIP's new MAC (gratuitous ARP, repeated).
    SendGratuitousArp,
    /// Send tickle ACKs to every mirrored client connection so clients reconnect now.
    SendTickleAcks,
    /// Remove the VIP from the data NIC.
    RemoveVip,
    /// Close every client connection (they reconnect to the new serving node).
    CloseClientConnections,
    /// Make this node's storage read-only (drbd secondary).
    DemoteStorage,
}

/// Effects of taking over, in order.
pub const TAKEOVER_EFFECTS: [Effect; 5] = [
    Effect::PromoteStorage,
    Effect::ImportHandles,
    Effect::AddVip,
    Effect::SendGratuitousArp,
    Effect::SendTickleAcks,
];
/// Effects of giving up the service, in order.
pub const RELEASE_EFFECTS: [Effect; 3] = [
    Effect::RemoveVip,
    Effect::CloseClientConnections,
    Effect::DemoteStorage,
];

/// Why a serving node stopped serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReleaseReason {
    /// No heartbeat round trip on the link and the tie-breaker unreachable.
    LostLinkAndTiebreaker,
    /// The partner serves (or knows) a newer epoch.
    Superseded,
    /// The core was not run for longer than `dead_after` (process or VM paused): the
    /// partner may have taken over meanwhile.
    Paused,
    /// Planned switchover (a command, tie-breaker loss, or configured failback).
    Switchover,
}

/// Why a node took over the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TakeoverReason {
    /// Rule T1: a synchronous passive node whose partner fell silent on every path, with
    /// the tie-breaker reachable throughout.
    PartnerSilent,
    /// Rule T2: the node that last served alone (or founded the pair) resumes.
    ResumeAlone,
    /// Rule T3: neither node served; the better-placed one claimed and the other granted.
    Claimed,
    /// Planned switchover: the partner handed its drained service over.
    Handover,
    /// An operator forced it ([`Node::force_takeover`]).
    Forced,
}

/// Something the shell must act on, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Write this durably before handling any later event or sending any later frame.
    Persist(DurableState),
    RoleChanged(Role),
    MirrorChanged(MirrorState),
    /// This node now serves `epoch`: first finish committing every `ApplyChanges` and
    /// `InstallSnapshot` already received, then run the effects in order, then serve.
    Takeover {
        epoch: u64,
        reason: TakeoverReason,
        effects: Vec<Effect>,
    },
    /// Stop serving: run the effects in order; refuse new client work.
    Release {
        reason: ReleaseReason,
        effects: Vec<Effect>,
    },
    /// Every change up to this sequence number is safe: release the clients' responses.
    Acked(u64),
    /// Leader: call [`Node::snapshot_ready`] with a snapshot of the store taken now.
    SnapshotRequested,
    /// Follower: replace the store with this snapshot, then call [`Node::applied`].
    InstallSnapshot {
        seq: u64,
        data: Vec<u8>,
    },
    /// Follower: commit these changes in order, then call [`Node::applied`].
    ApplyChanges(Vec<Change>),
    Warning(Warning),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Warning {
    /// The link works but no heartbeat arrives on the data network: while this lasts the
    /// passive node will not take over automatically (it could not tell a dead partner
    /// from a cut cable). Check the data NIC and any firewall between the nodes.
    DataPathDown,
    /// The data path works again.
    DataPathRestored,
}

/// A frame for the shell to send on `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub path: Path,
    pub payload: Vec<u8>,
}

/// Counters for operators and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub frames_sent: u64,
    pub frames_accepted: u64,
    pub refused_malformed: u64,
    pub refused_wrong_cluster: u64,
    pub refused_forged: u64,
    pub refused_wrong_sender: u64,
    pub refused_wrong_path: u64,
    pub refused_stale: u64,
    pub refused_replayed: u64,
    pub mirror_segments_sent: u64,
    pub retransmissions: u64,
    pub snapshots_requested: u64,
    pub resync_requests: u64,
    pub takeovers: u64,
    pub step_downs: u64,
    pub handovers: u64,
}

impl Stats {
    /// Every refused frame, whatever the reason.
    pub fn refused(&self) -> u64 {
        self.refused_malformed
            + self.refused_wrong_cluster
            + self.refused_forged
            + self.refused_wrong_sender
            + self.refused_wrong_path
            + self.refused_stale
            + self.refused_replayed
    }
    fn count(&mut self, r: Refusal) {
        let c = match r {
            Refusal::Malformed => &mut self.refused_malformed,
            Refusal::WrongCluster => &mut self.refused_wrong_cluster,
            Refusal::Forged => &mut self.refused_forged,
            Refusal::WrongSender => &mut self.refused_wrong_sender,
            Refusal::WrongPath => &mut self.refused_wrong_path,
            Refusal::Stale => &mut self.refused_stale,
            Refusal::Replayed => &mut self.refused_replayed,
        };
        *c += 1;
    }
}

/// A summary for `duetctl status` and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub role: Role,
    pub epoch: u64,
    pub mirror: MirrorState,
    /// Follower: holds every acknowledged change (eligible to take over).
    pub in_sync: bool,
    /// Heard the partner within the takeover time.
    pub partner_contact: bool,
    /// Heartbeat round trip on the link within `dead_after`.
    pub link_up: bool,
    /// Heard the partner on the data network within `dead_after`.
    pub data_path_up: bool,
    pub tiebreaker_ok: bool,
    /// Last change the store has (leader) or will have once delivered changes commit.
    pub last_seq: u64,
    /// Leader: last change acknowledged to clients.
    pub acked_seq: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Sync,
    Suspended { id: u64, since: Millis },
    Alone,
}

struct Release {
    new_epoch: u64,
    started: Millis,
    /// The drained position announced to the partner.
    announced: Option<u64>,
}

struct Lead {
    epoch: u64,
    mode: Mode,
    out: Option<OutStream>,
    /// Last change accepted into the feed.
    last_fed: u64,
    /// Last change acknowledged to clients.
    acked: u64,
    /// Fed and not yet acknowledged, with the time each was fed.
    pending: VecDeque<(u64, Millis)>,
    release: Option<Release>,
    suspend_counter: u64,
    sync_since: Option<Millis>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FollowKind {
    Starting,
    SteppedDown,
    Passive,
}

struct Follow {
    kind: FollowKind,
    /// (incarnation, epoch) of the serving partner followed.
    leader: Option<(u64, u64)>,
    stream: Option<InStream>,
    in_sync: bool,
    /// When the leader last confirmed, in a status, that this node is synchronous.
    in_sync_as_of: Millis,
    claim: Option<u64>,
    grant: Option<(u64, u64)>,
    resync: Option<(u64, u64)>,
    stale_ack: Option<(u64, u64)>,
    switchover_request: Option<Millis>,
}

impl Follow {
    fn new(kind: FollowKind) -> Follow {
        Follow {
            kind,
            leader: None,
            stream: None,
            in_sync: false,
            in_sync_as_of: 0,
            claim: None,
            grant: None,
            resync: None,
            stale_ack: None,
            switchover_request: None,
        }
    }
}

enum Duty {
    Lead(Box<Lead>),
    Follow(Box<Follow>),
}

struct Partner {
    /// Current incarnation (0: never heard).
    inc: u64,
    window: ReplayWindow,
    status: Option<Box<Status>>,
    status_seq: u64,
    /// When the newest status arrived.
    status_at: Millis,
    last_rx: [Option<Millis>; 2],
    /// Per path: the partner's (incarnation, sent_at) to echo back.
    echo: [Option<(u64, Millis)>; 2],
}

impl Partner {
    fn last_rx_any(&self) -> Option<Millis> {
        self.last_rx[0].max(self.last_rx[1])
    }
}

#[derive(Default)]
struct Tiebreaker {
    last: Option<(Millis, bool)>,
    /// Start of the current run of fresh "reachable" reports.
    ok_since: Option<Millis>,
    /// When the tie-breaker was last seen reachable (a fresh "true" report).
    last_ok: Option<Millis>,
}

enum LeadAction {
    StepDown(ReleaseReason),
    Suspend,
    Resume,
    GoAlone,
    Synced,
    StartHandover,
    FollowPartner,
    AbandonHandover,
    Announce,
    NewStream,
    DropStream,
}

/// The cluster core of one node. See the crate documentation for the protocol.
pub struct Node {
    cfg: Config,
    codec: Codec,
    incarnation: u64,
    durable: DurableState,
    /// Start of the current stretch of continuous running (boot, or the end of a pause).
    awake_since: Millis,
    last_eval: Millis,
    /// Last change the store has, or will have once delivered changes are committed.
    local_seq: u64,
    /// Follower: last change the shell reported committed.
    applied_seq: u64,
    partner: Partner,
    /// Per path: the latest of our own send times the partner echoed (a round trip).
    rt_at: [Option<Millis>; 2],
    tb: Tiebreaker,
    duty: Duty,
    stream_counter: u64,
    next_heartbeat: Millis,
    send_ack: bool,
    last_status_key: Option<Status>,
    last_role: Role,
    last_mirror: MirrorState,
    data_path_warned: bool,
    events: VecDeque<Event>,
    transmits: VecDeque<Transmit>,
    stats: Stats,
}

impl Node {
    /// A node starting at `now`. `incarnation` must grow with every start of this node
    /// (a boot counter the shell keeps on disk); `durable` is what the last
    /// [`Event::Persist`] wrote (or [`DurableState::founder`] / default for a new pair);
    /// `last_seq` is the last change in the local store.
    pub fn new(
        cfg: Config,
        now: Millis,
        incarnation: u64,
        durable: DurableState,
        last_seq: u64,
    ) -> Result<Node, ClusterError> {
        cfg.validate()?;
        if incarnation == 0 {
            return Err(ClusterError::InvalidConfig(
                "incarnation must be at least 1",
            ));
        }
        let codec = Codec::new(&cfg.key, cfg.cluster_id, cfg.node, incarnation);
        let mut node = Node {
            codec,
            incarnation,
            durable,
            awake_since: now,
            last_eval: now,
            local_seq: last_seq,
            applied_seq: last_seq,
            partner: Partner {
                inc: durable.partner_incarnation,
                window: ReplayWindow::new(),
                status: None,
                status_seq: 0,
                status_at: 0,
                last_rx: [None; 2],
                echo: [None; 2],
            },
            rt_at: [None; 2],
            tb: Tiebreaker::default(),
            duty: Duty::Follow(Box::new(Follow::new(FollowKind::Starting))),
            stream_counter: 0,
            next_heartbeat: now,
            send_ack: false,
            last_status_key: None,
            last_role: Role::Starting,
            last_mirror: MirrorState::NotLeading,
            data_path_warned: false,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            stats: Stats::default(),
            cfg,
        };
        node.handle_timeout(now);
        Ok(node)
    }

    // ---- inputs ----

    /// A frame received on `path`. Refused frames are counted and change nothing else.
    pub fn handle_frame(&mut self, now: Millis, path: Path, bytes: &[u8]) {
        let now = self.clock(now);
        match self.accept(now, path, bytes) {
            Ok(()) => self.stats.frames_accepted += 1,
            Err(r) => {
                self.stats.count(r);
                return;
            }
        }
        self.evaluate(now);
        self.flush(now);
    }

    /// Timers: call at (or after) [`Node::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Millis) {
        let now = self.clock(now);
        self.evaluate(now);
        self.flush(now);
    }

    /// The shell's probe of the tie-breaker (e.g. the gateway) on the data network. Report
    /// every probe result, and report `false` at once when the data NIC loses carrier.
    pub fn set_tiebreaker_reachable(&mut self, now: Millis, reachable: bool) {
        let now = self.clock(now);
        if reachable {
            let continuing = matches!(self.tb.last, Some((t, true)) if now.saturating_sub(t) <= self.cfg.tiebreaker_max_age)
                && self.tb.ok_since.is_some();
            if !continuing {
                self.tb.ok_since = Some(now);
            }
        } else {
            self.tb.ok_since = None;
        }
        self.tb.last = Some((now, reachable));
        if reachable {
            self.tb.last_ok = Some(now);
        }
        self.evaluate(now);
        self.flush(now);
    }

    /// Leader: a change the shell has just committed to its store (`seq` is the store's
    /// next sequence number). Wait for [`Event::Acked`] before answering the client.
    /// On a node that does not serve this is refused, and the node remembers that its
    /// store now holds a change the pair does not (it will resync from a snapshot).
    pub fn submit_change(
        &mut self,
        now: Millis,
        seq: u64,
        data: Vec<u8>,
    ) -> Result<(), ClusterError> {
        let now = self.clock(now);
        let expected = self.local_seq.saturating_add(1);
        if seq != expected || seq == self.local_seq {
            return Err(ClusterError::OutOfOrder { expected, got: seq });
        }
        self.local_seq = seq;
        if data.len() > self.cfg.max_change_len {
            return Err(ClusterError::ChangeTooLarge {
                len: data.len(),
                max: self.cfg.max_change_len,
            });
        }
        let max_buffer = self.cfg.max_stream_buffer;
        let Duty::Lead(l) = &mut self.duty else {
            return Err(ClusterError::NotServing);
        };
        if l.release.is_some() || l.last_fed.saturating_add(1) != seq {
            return Err(ClusterError::NotServing);
        }
        l.last_fed = seq;
        if let Some(out) = &mut l.out {
            out.push_change(seq, &data, max_buffer);
        }
        match l.mode {
            Mode::Alone => {
                l.acked = seq;
                self.events.push_back(Event::Acked(seq));
            }
            Mode::Sync | Mode::Suspended { .. } => l.pending.push_back((seq, now)),
        }
        self.evaluate(now);
        self.flush(now);
        Ok(())
    }

    /// Leader: the snapshot asked for by [`Event::SnapshotRequested`], as of change `seq`.
    pub fn snapshot_ready(
        &mut self,
        now: Millis,
        seq: u64,
        data: Vec<u8>,
    ) -> Result<(), ClusterError> {
        let now = self.clock(now);
        let Duty::Lead(l) = &mut self.duty else {
            return Err(ClusterError::NoSnapshotRequested);
        };
        let Some(out) = &mut l.out else {
            return Err(ClusterError::NoSnapshotRequested);
        };
        if seq > self.local_seq {
            return Err(ClusterError::SnapshotGap {
                snapshot: seq,
                next_fed: self.local_seq,
            });
        }
        let r = out.snapshot_ready(seq, &data, l.last_fed);
        if let Err(ClusterError::SnapshotGap { .. }) = r {
            let inc = out.partner_inc;
            self.stream_counter += 1;
            l.out = Some(OutStream::with_snapshot(self.stream_counter, inc));
            self.stats.snapshots_requested += 1;
            self.events.push_back(Event::SnapshotRequested);
        }
        self.evaluate(now);
        self.flush(now);
        r
    }

    /// Follower: the shell committed every delivered change up to `seq` (or installed the
    /// snapshot at `seq`).
    pub fn applied(&mut self, now: Millis, seq: u64) -> Result<(), ClusterError> {
        let now = self.clock(now);
        if seq > self.local_seq {
            return Err(ClusterError::NotDelivered {
                delivered: self.local_seq,
                got: seq,
            });
        }
        match &mut self.duty {
            Duty::Follow(f) => {
                self.applied_seq = seq;
                if let Some(s) = &mut f.stream {
                    if s.install_pending.is_some_and(|p| seq >= p) {
                        s.install_pending = None;
                        s.established = true;
                    }
                }
                self.send_ack = true;
            }
            Duty::Lead(_) => self.applied_seq = self.applied_seq.max(seq),
        }
        self.evaluate(now);
        self.flush(now);
        Ok(())
    }

    /// Planned switchover (`duetctl switchover`), on either node. On the serving node it
    /// releases the service at once, drains the mirror, and hands the next epoch to the
    /// partner; on the passive node it asks the serving node to do so.
    pub fn switchover(&mut self, now: Millis) -> Result<(), ClusterError> {
        let now = self.clock(now);
        self.evaluate(now);
        let r = match &mut self.duty {
            Duty::Lead(_) => match self.handover_readiness(now) {
                Ok(()) => {
                    self.start_handover(now);
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Duty::Follow(f) => {
                if f.leader.is_none() {
                    Err(ClusterError::PartnerNotReady("no serving partner"))
                } else if !f.in_sync {
                    Err(ClusterError::PartnerNotReady("this node is not in sync"))
                } else {
                    f.switchover_request = Some(now);
                    Ok(())
                }
            }
        };
        self.evaluate(now);
        self.flush(now);
        r
    }

    /// Operator override (`duetctl takeover --force`) for the cases the rules leave without
    /// service (see "Limits" in the crate docs): serve now with this node's store. The
    /// operator asserts the partner is down and will not serve; changes the partner
    /// acknowledged alone and this node lacks are lost.
    pub fn force_takeover(&mut self, now: Millis) -> Result<(), ClusterError> {
        let now = self.clock(now);
        self.evaluate(now);
        if !matches!(self.duty, Duty::Follow(_)) {
            return Err(ClusterError::PartnerNotReady("this node already leads"));
        }
        let partner_epoch = self.partner.status.as_ref().map_or(0, |p| p.epoch);
        let epoch = self.durable.epoch.max(partner_epoch).saturating_add(1);
        self.serve(epoch, TakeoverReason::Forced);
        self.evaluate(now);
        self.flush(now);
        Ok(())
    }

    // ---- outputs ----

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.transmits.pop_front() {
            return Some(t);
        }
        let now = self.last_eval;
        let max_data = self
            .cfg
            .max_frame_len
            .saturating_sub(crate::wire::HEADER_LEN + crate::wire::TAG_LEN + 96);
        let Duty::Lead(l) = &mut self.duty else {
            return None;
        };
        let out = l.out.as_mut()?;
        let (offset, data) = out.next_segment(
            now,
            max_data,
            self.cfg.max_in_flight,
            self.cfg.retransmit_after,
        )?;
        let msg = Message::Mirror {
            to_inc: out.partner_inc,
            stream: out.id,
            offset,
            data,
        };
        self.stats.mirror_segments_sent += 1;
        Some(self.seal(now, Path::Link, msg))
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`Node::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let after = self.last_eval;
        let mut t = vec![self.next_heartbeat];
        let dead = self.cfg.dead_after();
        let takeover = self.cfg.takeover_after();
        let silent_since = self
            .partner
            .last_rx_any()
            .unwrap_or(0)
            .max(self.awake_since);
        t.push(silent_since + takeover);
        if let Some(r) = self.rt_at[Path::Link.index()] {
            t.push(r + dead);
        }
        for r in self.partner.last_rx.iter().flatten() {
            t.push(r + dead);
            t.push(r + takeover);
        }
        if let Some((at, _)) = self.tb.last {
            t.push(at + self.cfg.tiebreaker_max_age + 1);
        }
        if let Some(s) = self.tb.ok_since {
            t.push(s + self.cfg.tiebreaker_confirm);
        }
        match &self.duty {
            Duty::Lead(l) => {
                if let Some(r) = l.out.as_ref().and_then(|o| o.rto_at()) {
                    t.push(r);
                }
                if let Some(&(_, fed)) = l.pending.front() {
                    t.push(fed + self.cfg.mirror_stall);
                }
                if let Some(r) = &l.release {
                    t.push(r.started + self.cfg.handover_timeout);
                }
                if let Some(s) = l.sync_since {
                    t.push(s + self.cfg.failback_settle);
                }
            }
            Duty::Follow(f) => {
                if let Some(r) = f.switchover_request {
                    t.push(r + self.cfg.handover_timeout);
                }
            }
        }
        let next = t.into_iter().filter(|&x| x > after).min();
        Some(next.unwrap_or(after + self.cfg.heartbeat_interval))
    }

    // ---- queries ----

    pub fn role(&self) -> Role {
        match &self.duty {
            Duty::Lead(l) => match (l.release.is_some(), l.mode) {
                (true, _) => Role::HandingOver,
                (false, Mode::Alone) => Role::DegradedActive,
                (false, _) => Role::Active,
            },
            Duty::Follow(f) => match f.kind {
                FollowKind::Starting => Role::Starting,
                FollowKind::SteppedDown => Role::SteppedDown,
                FollowKind::Passive => Role::Passive,
            },
        }
    }

    pub fn is_serving(&self) -> bool {
        self.role().is_serving()
    }

    pub fn mirror_state(&self) -> MirrorState {
        match &self.duty {
            Duty::Follow(_) => MirrorState::NotLeading,
            Duty::Lead(l) => match l.mode {
                Mode::Sync => MirrorState::Synchronous,
                Mode::Suspended { .. } => MirrorState::Suspended,
                Mode::Alone => {
                    if l.out.is_some() && self.partner_follows_me() {
                        MirrorState::Resyncing
                    } else {
                        MirrorState::Alone
                    }
                }
            },
        }
    }

    pub fn epoch(&self) -> u64 {
        match &self.duty {
            Duty::Lead(l) => l.epoch,
            Duty::Follow(_) => self.durable.epoch,
        }
    }

    pub fn durable(&self) -> DurableState {
        self.durable
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn node_id(&self) -> NodeId {
        self.cfg.node
    }

    pub fn report(&self) -> Report {
        let now = self.last_eval;
        let dead = self.cfg.dead_after();
        Report {
            role: self.role(),
            epoch: self.epoch(),
            mirror: self.mirror_state(),
            in_sync: matches!(&self.duty, Duty::Follow(f) if f.in_sync),
            partner_contact: self.contact(now),
            link_up: self.link_ok(now),
            data_path_up: self.partner.last_rx[Path::Data.index()]
                .is_some_and(|t| now.saturating_sub(t) < dead),
            tiebreaker_ok: self.tb_good(now),
            last_seq: self.local_seq,
            acked_seq: match &self.duty {
                Duty::Lead(l) => l.acked,
                Duty::Follow(_) => 0,
            },
        }
    }

    // ---- receiving ----

    fn clock(&self, now: Millis) -> Millis {
        now.max(self.last_eval)
    }

    fn accept(&mut self, now: Millis, path: Path, bytes: &[u8]) -> Result<(), Refusal> {
        let opened = self.codec.open(path, bytes)?;
        if opened.incarnation < self.partner.inc
            || opened.incarnation < self.durable.partner_incarnation
        {
            return Err(Refusal::Stale);
        }
        if opened.incarnation > self.partner.inc {
            self.partner.inc = opened.incarnation;
            self.partner.window = ReplayWindow::new();
            self.partner.status = None;
            self.partner.status_seq = 0;
            self.partner.echo = [None; 2];
            self.durable.partner_incarnation = opened.incarnation;
            self.persist();
        }
        self.partner.window.check(opened.seq)?;
        self.partner.window.mark(opened.seq);
        let p = path.index();
        self.partner.last_rx[p] = Some(now);
        self.partner.echo[p] = Some((opened.incarnation, opened.body.sent_at));
        if let Some((inc, at)) = opened.body.echo {
            if inc == self.incarnation && at <= now {
                self.rt_at[p] = Some(self.rt_at[p].map_or(at, |r| r.max(at)));
            }
        }
        match opened.body.msg {
            Message::Status(s) => {
                if let Some(a) = s.following {
                    self.on_ack(now, &a);
                }
                if opened.seq > self.partner.status_seq {
                    self.partner.status_seq = opened.seq;
                    self.partner.status_at = now;
                    self.partner.status = Some(s);
                }
            }
            Message::Ack(a) => self.on_ack(now, &a),
            Message::Mirror {
                to_inc,
                stream,
                offset,
                data,
            } => self.on_mirror(to_inc, stream, offset, &data),
        }
        Ok(())
    }

    fn on_ack(&mut self, now: Millis, a: &Ack) {
        let rto = self.cfg.retransmit_after;
        let my_inc = self.incarnation;
        let partner_inc = self.partner.inc;
        let Duty::Lead(l) = &mut self.duty else {
            return;
        };
        let Some(out) = &mut l.out else {
            return;
        };
        if a.leader_inc != my_inc || a.stream != out.id || out.partner_inc != partner_inc {
            return;
        }
        out.on_ack(now, a, rto);
        if matches!(l.mode, Mode::Sync | Mode::Suspended { .. }) && out.partner_established {
            let upto = out.partner_applied.min(l.last_fed);
            if upto > l.acked {
                l.acked = upto;
                while l.pending.front().is_some_and(|&(s, _)| s <= upto) {
                    l.pending.pop_front();
                }
                self.events.push_back(Event::Acked(upto));
            }
        }
    }

    fn on_mirror(&mut self, to_inc: u64, stream: u64, offset: u64, data: &[u8]) {
        let max_item = self.cfg.max_change_len;
        let partner_inc = self.partner.inc;
        let my_inc = self.incarnation;
        let Node {
            duty,
            local_seq,
            events,
            stats,
            send_ack,
            ..
        } = self;
        let Duty::Follow(f) = duty else {
            return;
        };
        let Some((linc, _)) = f.leader else {
            return;
        };
        if linc != partner_inc || to_inc != my_inc || f.resync == Some((linc, stream)) {
            return;
        }
        match &f.stream {
            Some(s) if s.id == stream => {}
            Some(s) if s.id > stream => return,
            _ => {
                f.stream = Some(InStream::new(stream, linc));
                f.in_sync = false;
                f.resync = None;
            }
        }
        let Some(s) = &mut f.stream else {
            return;
        };
        let mut got = Vec::new();
        let result = s.on_segment(offset, data, local_seq, max_item, &mut got);
        let mut batch = Vec::new();
        for d in got {
            match d {
                Delivery::Change(c) => batch.push(c),
                Delivery::Snapshot { seq, data } => {
                    if !batch.is_empty() {
                        events.push_back(Event::ApplyChanges(std::mem::take(&mut batch)));
                    }
                    events.push_back(Event::InstallSnapshot { seq, data });
                }
            }
        }
        if !batch.is_empty() {
            events.push_back(Event::ApplyChanges(batch));
        }
        if result.is_err() {
            f.resync = Some((linc, stream));
            f.in_sync = false;
            stats.resync_requests += 1;
        }
        *send_ack = true;
    }

    // ---- decisions ----

    fn contact(&self, now: Millis) -> bool {
        self.partner
            .last_rx_any()
            .is_some_and(|t| now.saturating_sub(t) < self.cfg.takeover_after())
    }

    fn link_ok(&self, now: Millis) -> bool {
        self.rt_at[Path::Link.index()]
            .is_some_and(|t| now.saturating_sub(t) < self.cfg.dead_after())
    }

    fn tb_good(&self, now: Millis) -> bool {
        self.tb.ok_since.is_some()
            && matches!(self.tb.last, Some((t, true)) if now.saturating_sub(t) <= self.cfg.tiebreaker_max_age)
    }

    fn tb_confirmed(&self, now: Millis) -> bool {
        self.tb_good(now)
            && self
                .tb
                .ok_since
                .is_some_and(|s| now.saturating_sub(s) >= self.cfg.tiebreaker_confirm)
    }

    /// Silence on every path starts here (never before this stretch of running).
    fn silent_since(&self) -> Millis {
        self.partner
            .last_rx_any()
            .unwrap_or(0)
            .max(self.awake_since)
    }

    fn silent(&self, now: Millis) -> bool {
        now.saturating_sub(self.silent_since()) >= self.cfg.takeover_after()
    }

    /// The tie-breaker was reachable, without a gap, since silence began.
    fn tb_through_silence(&self, now: Millis) -> bool {
        self.tb_good(now) && self.tb.ok_since.is_some_and(|s| s <= self.silent_since())
    }

    /// 2: served the newest epoch known to either node; 1: synchronous follower; 0: neither.
    fn rank(&self) -> u8 {
        let partner_epoch = self.partner.status.as_ref().map_or(0, |p| p.epoch);
        if self.durable.served && self.durable.epoch >= partner_epoch {
            2
        } else if matches!(&self.duty, Duty::Follow(f) if f.in_sync) {
            1
        } else {
            0
        }
    }

    fn partner_follows_me(&self) -> bool {
        let Duty::Lead(l) = &self.duty else {
            return false;
        };
        let Some(out) = &l.out else {
            return false;
        };
        self.partner.inc == out.partner_inc
            && self.partner.status.as_ref().is_some_and(|p| {
                p.following
                    .is_some_and(|a| a.leader_inc == self.incarnation && a.stream == out.id)
            })
    }

    fn evaluate(&mut self, now: Millis) {
        if now.saturating_sub(self.last_eval) > self.cfg.dead_after() {
            // The core was not run: the partner may have acted on our silence.
            self.awake_since = now;
            if self.is_serving() {
                self.step_down(ReleaseReason::Paused);
            }
        }
        self.last_eval = now;
        if let Some((t, _)) = self.tb.last {
            if now.saturating_sub(t) > self.cfg.tiebreaker_max_age {
                self.tb.ok_since = None;
            }
        }
        for _ in 0..8 {
            let changed = match &self.duty {
                Duty::Lead(_) => self.lead_step(now),
                Duty::Follow(_) => self.follow_step(now),
            };
            if !changed {
                break;
            }
        }
        self.data_path_watch(now);
        let role = self.role();
        if role != self.last_role {
            self.last_role = role;
            self.events.push_back(Event::RoleChanged(role));
        }
        let mirror = self.mirror_state();
        if mirror != self.last_mirror {
            self.last_mirror = mirror;
            self.events.push_back(Event::MirrorChanged(mirror));
        }
    }

    fn data_path_watch(&mut self, now: Millis) {
        let data = self.partner.last_rx[Path::Data.index()];
        let down = self.link_ok(now)
            && data.is_none_or(|t| now.saturating_sub(t) >= self.cfg.takeover_after());
        if down && !self.data_path_warned {
            self.data_path_warned = true;
            self.events.push_back(Event::Warning(Warning::DataPathDown));
        } else if !down
            && self.data_path_warned
            && data.is_some_and(|t| now.saturating_sub(t) < self.cfg.dead_after())
        {
            self.data_path_warned = false;
            self.events
                .push_back(Event::Warning(Warning::DataPathRestored));
        }
    }

    fn handover_readiness(&self, now: Millis) -> Result<(), ClusterError> {
        let Duty::Lead(l) = &self.duty else {
            return Err(ClusterError::NotServing);
        };
        if l.release.is_some() {
            return Err(ClusterError::NotServing);
        }
        if l.mode != Mode::Sync {
            return Err(ClusterError::PartnerNotReady(
                "mirroring is not synchronous",
            ));
        }
        if !self.link_ok(now) || !self.contact(now) {
            return Err(ClusterError::PartnerNotReady("link down"));
        }
        let Some(p) = self.partner.status.as_ref() else {
            return Err(ClusterError::PartnerNotReady("no status from partner"));
        };
        if !self.partner_follows_me() || !p.in_sync || p.serving {
            return Err(ClusterError::PartnerNotReady("partner not in sync"));
        }
        if !p.tiebreaker_ok {
            return Err(ClusterError::PartnerNotReady(
                "partner does not reach the tie-breaker",
            ));
        }
        Ok(())
    }

    fn lead_decide(&self, now: Millis) -> Option<LeadAction> {
        let Duty::Lead(l) = &self.duty else {
            return None;
        };
        let me = self.cfg.node;
        let my_inc = self.incarnation;
        let ps = self.partner.status.as_deref();
        let contact = self.contact(now);
        let superseded = ps.is_some_and(|p| {
            p.epoch > l.epoch || (p.serving && p.epoch == l.epoch && me.partner() < me)
        });
        if let Some(r) = &l.release {
            // The partner took the epoch we handed it (or knows a newer one).
            if superseded || (contact && ps.is_some_and(|p| p.serving && p.epoch >= r.new_epoch)) {
                return Some(LeadAction::FollowPartner);
            }
            if now.saturating_sub(r.started) >= self.cfg.handover_timeout {
                return Some(LeadAction::AbandonHandover);
            }
            let drained = l.pending.is_empty()
                && l.out.as_ref().is_some_and(|o| {
                    !o.awaiting_snapshot && o.partner_established && o.partner_applied >= l.last_fed
                });
            if r.announced.is_none() && drained {
                return Some(LeadAction::Announce);
            }
            return None;
        }
        if superseded {
            return Some(LeadAction::StepDown(ReleaseReason::Superseded));
        }
        let link_ok = self.link_ok(now);
        let tb_good = self.tb_good(now);
        let stalled = l
            .pending
            .front()
            .is_some_and(|&(_, t)| now.saturating_sub(t) >= self.cfg.mirror_stall);
        // The partner can no longer be synchronous on our stream, for good: it restarted
        // (new incarnation) or asked for a new stream. Only these allow leaving `Sync`
        // without the suspend handshake.
        let stream_dead = l.out.as_ref().is_some_and(|o| {
            o.partner_inc != self.partner.inc
                || ps.is_some_and(|p| p.resync == Some((my_inc, o.id)))
        });
        match l.mode {
            Mode::Sync => {
                if stream_dead {
                    return Some(LeadAction::GoAlone);
                }
                if !link_ok || stalled || l.out.is_none() {
                    if !link_ok && !tb_good {
                        return Some(LeadAction::StepDown(ReleaseReason::LostLinkAndTiebreaker));
                    }
                    return Some(LeadAction::Suspend);
                }
                if let Some(p) = ps {
                    let requested = p.switchover_request == Some(my_inc);
                    // Lost for a while (not a probe racing the partner's during an
                    // outage of the tie-breaker itself), while the partner reaches it.
                    let tb_lost = self.cfg.switchover_on_tiebreaker_loss
                        && !tb_good
                        && self.tb.last_ok.is_none_or(|t| {
                            now.saturating_sub(t)
                                >= self.cfg.tiebreaker_max_age + self.cfg.tiebreaker_confirm
                        })
                        && p.tiebreaker_ok;
                    let failback = self.cfg.failback_to == Some(me.partner())
                        && l.sync_since
                            .is_some_and(|s| now.saturating_sub(s) >= self.cfg.failback_settle);
                    if (requested || tb_lost || failback) && self.handover_readiness(now).is_ok() {
                        return Some(LeadAction::StartHandover);
                    }
                }
            }
            Mode::Suspended { id, since } => {
                if link_ok && !stalled && l.out.is_some() {
                    return Some(LeadAction::Resume);
                }
                if !link_ok && !tb_good {
                    return Some(LeadAction::StepDown(ReleaseReason::LostLinkAndTiebreaker));
                }
                if stream_dead || ps.is_some_and(|p| p.stale_ack == Some((my_inc, id))) {
                    return Some(LeadAction::GoAlone);
                }
                // Silent on every path, with the tie-breaker reachable throughout, and
                // suspended long enough that several statuses saying so went out.
                let announced = now.saturating_sub(since) >= 3 * self.cfg.heartbeat_interval;
                if announced && self.silent(now) && self.tb_through_silence(now) {
                    return Some(LeadAction::GoAlone);
                }
            }
            Mode::Alone => {
                if !link_ok && !tb_good {
                    return Some(LeadAction::StepDown(ReleaseReason::LostLinkAndTiebreaker));
                }
                if let (Some(o), Some(p)) = (&l.out, ps) {
                    let ready = link_ok
                        && contact
                        && self.partner_follows_me()
                        && p.resync.is_none()
                        && !o.awaiting_snapshot
                        && o.partner_established
                        && o.partner_applied >= l.last_fed;
                    if ready {
                        return Some(LeadAction::Synced);
                    }
                }
                if l.out.as_ref().is_some_and(|o| o.overflow) {
                    return Some(LeadAction::DropStream);
                }
                // A partner following this epoch and needing a (new) stream.
                if let Some(p) = ps {
                    let follows_epoch = contact
                        && !p.serving
                        && p.epoch == l.epoch
                        && p.following.is_some_and(|a| a.leader_inc == my_inc);
                    if follows_epoch && (l.out.is_none() || stream_dead) {
                        return Some(LeadAction::NewStream);
                    }
                }
            }
        }
        None
    }

    fn lead_step(&mut self, now: Millis) -> bool {
        let Some(action) = self.lead_decide(now) else {
            return false;
        };
        let partner_inc = self.partner.inc;
        match action {
            LeadAction::StepDown(reason) => self.step_down(reason),
            LeadAction::GoAlone => self.go_alone(),
            LeadAction::Synced => {
                if self.durable.alone {
                    self.durable.alone = false;
                    self.persist();
                }
                if let Duty::Lead(l) = &mut self.duty {
                    l.mode = Mode::Sync;
                    l.sync_since = Some(now);
                }
            }
            LeadAction::StartHandover => self.start_handover(now),
            LeadAction::FollowPartner => {
                self.stats.handovers += 1;
                self.duty = Duty::Follow(Box::new(Follow::new(FollowKind::Passive)));
            }
            LeadAction::AbandonHandover => {
                self.duty = Duty::Follow(Box::new(Follow::new(FollowKind::SteppedDown)));
            }
            LeadAction::NewStream => {
                self.stream_counter += 1;
                let id = self.stream_counter;
                if let Duty::Lead(l) = &mut self.duty {
                    l.out = Some(OutStream::with_snapshot(id, partner_inc));
                }
                self.stats.snapshots_requested += 1;
                self.events.push_back(Event::SnapshotRequested);
            }
            LeadAction::Suspend
            | LeadAction::Resume
            | LeadAction::Announce
            | LeadAction::DropStream => {
                let Duty::Lead(l) = &mut self.duty else {
                    return false;
                };
                match action {
                    LeadAction::Suspend => {
                        l.suspend_counter += 1;
                        l.mode = Mode::Suspended {
                            id: l.suspend_counter,
                            since: now,
                        };
                        l.sync_since = None;
                    }
                    LeadAction::Resume => {
                        l.mode = Mode::Sync;
                        l.sync_since = Some(now);
                    }
                    LeadAction::Announce => {
                        let fed = l.last_fed;
                        if let Some(r) = &mut l.release {
                            r.announced = Some(fed);
                        }
                    }
                    _ => l.out = None,
                }
            }
        }
        true
    }

    fn follow_step(&mut self, now: Millis) -> bool {
        let contact = self.contact(now);
        let partner_inc = self.partner.inc;
        let my_inc = self.incarnation;
        let me = self.cfg.node;
        let ps = self.partner.status.clone();
        let rank = self.rank();
        let tb_confirmed = self.tb_confirmed(now);
        let silent = self.silent(now);
        let tb_through_silence = self.tb_through_silence(now);
        let data_alive_at_silence = match (
            self.partner.last_rx[Path::Data.index()],
            self.partner.last_rx_any(),
        ) {
            (Some(d), Some(any)) => d + self.cfg.dead_after() >= any,
            _ => false,
        };
        let durable = self.durable;
        let status_at = self.partner.status_at;
        let tb_ok_since = self.tb.ok_since;
        let (applied, local) = (self.applied_seq, self.local_seq);
        let handover_timeout = self.cfg.handover_timeout;
        let Duty::Follow(f) = &mut self.duty else {
            return false;
        };

        // 1. Follow a serving partner of a newer epoch (or of ours, if we did not serve it).
        if let Some(p) = ps.as_deref() {
            // A partner that served our epoch (or a newer one) alone holds changes we lack.
            if f.in_sync && p.served && p.alone && p.epoch >= durable.epoch {
                f.in_sync = false;
            }
            let newer = p.epoch > durable.epoch || (p.epoch == durable.epoch && !durable.served);
            if contact && p.serving && newer && f.leader != Some((partner_inc, p.epoch)) {
                **f = Follow::new(FollowKind::Passive);
                f.leader = Some((partner_inc, p.epoch));
                if self.durable.epoch != p.epoch || self.durable.served || self.durable.alone {
                    self.durable.epoch = p.epoch;
                    self.durable.served = false;
                    self.durable.alone = false;
                    self.events.push_back(Event::Persist(self.durable));
                }
                return true;
            }
        }
        if let Some((linc, lepoch)) = f.leader {
            let still = ps.as_deref().is_some_and(|p| {
                linc == partner_inc && (p.serving || p.releasing) && p.epoch == lepoch
            });
            if !still {
                // The leader stopped serving or restarted: it acknowledges nothing now, so
                // `in_sync` stays as it was.
                f.leader = None;
                f.stream = None;
                return true;
            }
        }
        if f.switchover_request
            .is_some_and(|t| now.saturating_sub(t) >= handover_timeout || f.leader.is_none())
        {
            f.switchover_request = None;
        }

        // 2. What the leader's newest status says about us.
        if let (Some((linc, _)), Some(p)) = (f.leader, ps.as_deref()) {
            let on_mine = f.stream.as_ref().is_some_and(|s| {
                p.out_stream == Some((my_inc, s.id)) && s.established && s.leader_inc == linc
            }) && f.resync.is_none();
            match p.mirror {
                WireMirror::Sync => {
                    f.in_sync = on_mine;
                    if on_mine {
                        f.in_sync_as_of = status_at;
                    }
                }
                WireMirror::Suspended { id } => {
                    f.in_sync = false;
                    f.stale_ack = Some((linc, id));
                }
                WireMirror::Alone => f.in_sync = false,
                WireMirror::None => {}
            }
            if let Some((e, seq, target)) = p.handover {
                if p.releasing && target == my_inc && f.in_sync && applied == seq && local == seq {
                    self.take_over_by_handover(now, e, seq);
                    return true;
                }
            }
        }

        // 3. Silence on every path.
        if silent {
            let partner_epoch = ps.as_deref().map_or(0, |p| p.epoch);
            // T1: a synchronous passive node whose partner fell silent on the link and the
            // data network at once, with the tie-breaker reachable all along.
            // The tie-breaker must also have been reachable since the leader last confirmed
            // us synchronous (contact with a restarted partner may have ended the silence
            // and started a new one meanwhile).
            let t1 = f.in_sync
                && data_alive_at_silence
                && tb_through_silence
                && tb_ok_since.is_some_and(|s| s <= f.in_sync_as_of);
            // T2: the node that last served alone; no one else can have served since.
            let t2 = rank == 2 && durable.alone && tb_confirmed;
            if t1 || t2 {
                let epoch = durable.epoch.max(partner_epoch).saturating_add(1);
                let reason = if t1 {
                    TakeoverReason::PartnerSilent
                } else {
                    TakeoverReason::ResumeAlone
                };
                self.serve(epoch, reason);
                return true;
            }
            if f.claim.is_some() || f.grant.is_some() {
                f.claim = None;
                f.grant = None;
                return true;
            }
            return false;
        }

        // 4. In contact and neither serves: the better-placed node claims, the other grants.
        match ps.as_deref() {
            Some(p) if contact && !p.serving && !p.releasing => {
                let partner_first = p.rank > rank || (p.rank == rank && me.partner() < me);
                match p.claim {
                    Some(c) if partner_first && p.rank > 0 => {
                        if f.grant != Some((c, partner_inc)) {
                            f.grant = Some((c, partner_inc));
                            f.claim = None;
                            f.in_sync = false;
                        }
                    }
                    _ => {
                        if p.claim.is_none() && f.grant.is_some() {
                            f.grant = None;
                        }
                        if rank > 0 && !partner_first && tb_confirmed {
                            let c = durable.epoch.max(p.epoch).saturating_add(1);
                            if f.claim != Some(c) {
                                f.claim = Some(c);
                            }
                            if p.grant == Some((c, my_inc)) {
                                self.serve(c, TakeoverReason::Claimed);
                                return true;
                            }
                        } else if f.claim.is_some() {
                            f.claim = None;
                        }
                    }
                }
            }
            _ => {
                if f.claim.is_some() || f.grant.is_some() {
                    f.claim = None;
                    f.grant = None;
                }
            }
        }
        // Claims and grants are flags carried by the status, not transitions.
        false
    }

    // ---- transitions ----

    fn persist(&mut self) {
        self.events.push_back(Event::Persist(self.durable));
    }

    fn serve(&mut self, epoch: u64, reason: TakeoverReason) {
        self.durable.epoch = epoch;
        self.durable.served = true;
        self.durable.alone = true;
        self.persist();
        self.duty = Duty::Lead(Box::new(Lead {
            epoch,
            mode: Mode::Alone,
            out: None,
            last_fed: self.local_seq,
            acked: self.local_seq,
            pending: VecDeque::new(),
            release: None,
            suspend_counter: 0,
            sync_since: None,
        }));
        self.stats.takeovers += 1;
        self.events.push_back(Event::Takeover {
            epoch,
            reason,
            effects: TAKEOVER_EFFECTS.to_vec(),
        });
    }

    fn take_over_by_handover(&mut self, now: Millis, epoch: u64, seq: u64) {
        self.durable.epoch = epoch;
        self.durable.served = true;
        self.durable.alone = false;
        self.persist();
        self.stream_counter += 1;
        let out = OutStream::aligned(self.stream_counter, self.partner.inc, seq);
        self.duty = Duty::Lead(Box::new(Lead {
            epoch,
            mode: Mode::Sync,
            out: Some(out),
            last_fed: seq,
            acked: seq,
            pending: VecDeque::new(),
            release: None,
            suspend_counter: 0,
            sync_since: Some(now),
        }));
        self.stats.takeovers += 1;
        self.events.push_back(Event::Takeover {
            epoch,
            reason: TakeoverReason::Handover,
            effects: TAKEOVER_EFFECTS.to_vec(),
        });
    }

    fn step_down(&mut self, reason: ReleaseReason) {
        let released = matches!(&self.duty, Duty::Lead(l) if l.release.is_some());
        if !released {
            self.events.push_back(Event::Release {
                reason,
                effects: RELEASE_EFFECTS.to_vec(),
            });
        }
        self.stats.step_downs += 1;
        self.duty = Duty::Follow(Box::new(Follow::new(FollowKind::SteppedDown)));
    }

    fn go_alone(&mut self) {
        if !self.durable.alone {
            self.durable.alone = true;
            self.persist();
        }
        let Duty::Lead(l) = &mut self.duty else {
            return;
        };
        l.mode = Mode::Alone;
        l.sync_since = None;
        l.pending.clear();
        if l.last_fed > l.acked {
            l.acked = l.last_fed;
            self.events.push_back(Event::Acked(l.last_fed));
        }
    }

    fn start_handover(&mut self, now: Millis) {
        let Duty::Lead(l) = &mut self.duty else {
            return;
        };
        l.release = Some(Release {
            new_epoch: l.epoch.saturating_add(1),
            started: now,
            announced: None,
        });
        self.events.push_back(Event::Release {
            reason: ReleaseReason::Switchover,
            effects: RELEASE_EFFECTS.to_vec(),
        });
    }

    // ---- sending ----

    fn build_status(&self, now: Millis) -> Status {
        let mut s = Status {
            epoch: self.durable.epoch,
            served: self.durable.served,
            alone: self.durable.alone,
            serving: self.is_serving(),
            releasing: false,
            mirror: WireMirror::None,
            out_stream: None,
            following: None,
            in_sync: false,
            rank: self.rank(),
            tiebreaker_ok: self.tb_good(now),
            claim: None,
            grant: None,
            handover: None,
            stale_ack: None,
            resync: None,
            switchover_request: None,
        };
        match &self.duty {
            Duty::Lead(l) => {
                s.epoch = l.epoch;
                s.releasing = l.release.is_some();
                s.mirror = match l.mode {
                    Mode::Sync => WireMirror::Sync,
                    Mode::Suspended { id, .. } => WireMirror::Suspended { id },
                    Mode::Alone => WireMirror::Alone,
                };
                s.out_stream = l.out.as_ref().map(|o| (o.partner_inc, o.id));
                if let (Some(r), Some(o)) = (&l.release, &l.out) {
                    s.handover = r.announced.map(|seq| (r.new_epoch, seq, o.partner_inc));
                }
            }
            Duty::Follow(f) => {
                s.following = f.leader.map(|(inc, _)| {
                    let st = f.stream.as_ref().filter(|st| st.leader_inc == inc);
                    Ack {
                        leader_inc: inc,
                        stream: st.map_or(0, |st| st.id),
                        recv_off: st.map_or(0, |st| st.recv_off),
                        applied: self.applied_seq,
                        established: st.is_some_and(|st| st.established),
                    }
                });
                s.in_sync = f.in_sync;
                s.claim = f.claim;
                s.grant = f.grant;
                s.stale_ack = f.stale_ack;
                s.resync = f.resync;
                s.switchover_request = f.switchover_request.and(f.leader.map(|(inc, _)| inc));
            }
        }
        s
    }

    fn seal(&mut self, now: Millis, path: Path, msg: Message) -> Transmit {
        let body = Body {
            sent_at: now,
            echo: self.partner.echo[path.index()],
            msg,
        };
        self.stats.frames_sent += 1;
        Transmit {
            path,
            payload: self.codec.seal(path, &body),
        }
    }

    fn queue_status(&mut self, now: Millis) {
        self.next_heartbeat = now + self.cfg.heartbeat_interval;
        let status = self.build_status(now);
        for path in Path::ALL {
            let t = self.seal(now, path, Message::Status(Box::new(status.clone())));
            self.transmits.push_back(t);
        }
        self.last_status_key = Some(status_key(status));
    }

    /// Sends what changed: the status when any decision-relevant field changed (at once,
    /// not at the next heartbeat), and the follower's acknowledgement.
    fn flush(&mut self, now: Millis) {
        // Timers are checked at every entry point, so none is ever left behind `last_eval`.
        let link_alive = self.link_ok(now);
        if let Duty::Lead(l) = &mut self.duty {
            if let Some(out) = &mut l.out {
                if out.on_timeout(now, self.cfg.retransmit_after, link_alive) {
                    self.stats.retransmissions += 1;
                }
            }
        }
        let key = status_key(self.build_status(now));
        if now >= self.next_heartbeat || self.last_status_key.as_ref() != Some(&key) {
            self.queue_status(now);
        }
        if self.send_ack {
            self.send_ack = false;
            if let Some(ack) = self.build_status(now).following {
                let t = self.seal(now, Path::Link, Message::Ack(ack));
                self.transmits.push_back(t);
            }
        }
    }
}

/// The status without progress counters, to decide whether it changed.
fn status_key(mut s: Status) -> Status {
    if let Some(a) = &mut s.following {
        a.recv_off = 0;
        a.applied = 0;
    }
    s
}
