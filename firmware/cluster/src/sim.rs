//! sim: deterministic simulation of the pair, for tests and test binaries.
//!
//! Owns a virtual clock, two [`Node`]s with a "disk" each (the durable state and the
//! committed change log: all a restarted node keeps), the heartbeat cable (seeded loss,
//! delay, duplication, reordering, cuts), the data network (NICs that go down, a gateway
//! that is the tie-breaker, bounded loss), clients that commit changes on the serving node,
//! and an attacker that replays, corrupts and reflects frames. Everything is driven by one
//! seeded PRNG, so a seed replays exactly. It never reads the real clock or touches a
//! socket.
//!
//! After every input to a node it checks the safety invariants:
//! - never two nodes serving;
//! - every change acknowledged to a client (`Event::Acked`) is in the store of every node
//!   that serves, in particular the one that takes over;
//! - a follower receives changes in order, without gaps;
//! - an injected forged, replayed, reflected or wrong-cluster frame is refused and counted.
//!
//! At the end all faults heal and it checks liveness: one node serves, mirroring is
//! synchronous again, and the partner's store equals the serving node's.
//!
//! The model of the data network is the one the takeover rules assume (see the crate
//! docs): one segment; while both data NICs are up, at most two consecutive frames from one
//! node to the other are lost; carrier loss is reported to the core at once.

use crate::config::{Config, Millis, NodeId};
use crate::node::{DurableState, Event, MirrorState, Node, Role};
use crate::stream::Change;
use crate::wire::Path;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::fmt;

/// Deterministic PRNG (splitmix64): the whole run is a function of the seed.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5EED_D0E7_C1A5_7E55)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
    /// True with probability `permille / 1000`.
    pub fn chance(&mut self, permille: u64) -> bool {
        self.next_u64() % 1000 < permille
    }
}

/// How one run is shaped.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// Steps of 1..=40 ms of virtual time each, with faults injected between them.
    pub steps: u32,
    /// Virtual time after every fault is healed, before the liveness check.
    pub heal_ms: Millis,
    /// Keep this many trace lines for the failure report.
    pub trace_lines: usize,
}

impl SimConfig {
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            steps: 300,
            heal_ms: 6_000,
            trace_lines: 400,
        }
    }
}

/// What a passing run did.
#[derive(Debug, Clone, Default)]
pub struct SimOutcome {
    pub seed: u64,
    pub virtual_ms: Millis,
    pub changes_acked: usize,
    pub takeovers: u64,
    /// Takeovers by [`crate::TakeoverReason`]: partner silent, resume alone, claimed,
    /// handover, forced.
    pub takeover_kinds: [u64; 5],
    pub faults: u64,
    pub frames_refused: u64,
    pub attacks: u64,
}

/// A broken invariant, with what led to it.
#[derive(Debug, Clone)]
pub struct SimFailure {
    pub seed: u64,
    pub at: Millis,
    pub what: String,
    pub trace: Vec<String>,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulation seed {} failed at t={} ms: {}",
            self.seed, self.at, self.what
        )?;
        writeln!(f, "last events:")?;
        for l in &self.trace {
            writeln!(f, "  {l}")?;
        }
        write!(
            f,
            "replay with: DUET_SIM_SEED={} cargo test -p duet-cluster sim_one_seed -- --nocapture",
            self.seed
        )
    }
}

impl std::error::Error for SimFailure {}

/// Runs one seed with the default shape.
pub fn run(seed: u64) -> Result<SimOutcome, SimFailure> {
    run_with(&SimConfig::new(seed))
}

/// Runs one simulation.
pub fn run_with(cfg: &SimConfig) -> Result<SimOutcome, SimFailure> {
    let mut w = Pair::new(cfg);
    w.boot(0)?;
    let stagger = w.rng.range(0, 1_000);
    w.run_until(stagger)?;
    w.boot(1)?;
    for _ in 0..cfg.steps {
        w.inject()?;
        let target = w.now + w.rng.range(1, 40);
        w.run_until(target)?;
        w.client_load()?;
    }
    w.heal()?;
    // Clients keep working while the pair recovers, then stop; within the rest of the heal
    // time there must be a moment where one node serves synchronously and both stores are
    // equal (loss on the link may suspend mirroring for a moment at any time).
    let quiet_from = w.now + cfg.heal_ms.saturating_sub(3_000);
    let end = w.now + cfg.heal_ms;
    loop {
        let target = w.now + 20;
        w.run_until(target)?;
        if w.now < quiet_from {
            w.client_load()?;
        } else if w.check_liveness().is_ok() {
            break;
        }
        if w.now >= end {
            w.check_liveness()?;
            break;
        }
    }
    Ok(SimOutcome {
        seed: cfg.seed,
        virtual_ms: w.now,
        changes_acked: w.acked.len(),
        takeovers: w.takeovers,
        takeover_kinds: w.takeover_kinds,
        faults: w.faults,
        frames_refused: w.refused_total(),
        attacks: w.attacks,
    })
}

/// The shape of one seed's world.
#[derive(Clone)]
struct Personality {
    link_loss: u64,
    link_dup: u64,
    link_delay: (u64, u64),
    data_loss: u64,
    data_delay: (u64, u64),
    fault_permille: u64,
    client_permille: u64,
    big_change_permille: u64,
    attack_permille: u64,
    crash_after_takeover: u64,
    gateway_lag: u64,
}

enum Apply {
    Changes(Vec<Change>),
    Snapshot(u64, Vec<u8>),
}

struct Flight {
    at: Millis,
    order: u64,
    to: usize,
    path: Path,
    bytes: Vec<u8>,
}

impl PartialEq for Flight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl Eq for Flight {}
impl PartialOrd for Flight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Flight {
    // Reversed: BinaryHeap pops the earliest.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.order).cmp(&(self.at, self.order))
    }
}

struct Disk {
    durable: DurableState,
    /// Committed changes: `log[i]` is the id of change `i + 1`.
    log: Vec<u64>,
    boots: u64,
}

struct SimNode {
    core: Option<Node>,
    disk: Disk,
    ids: HashSet<u64>,
    nic_up: bool,
    /// The NIC went down since the last probe report.
    nic_flapped: bool,
    probe_stall_until: Millis,
    next_probe: Millis,
    applying: VecDeque<(Millis, Apply)>,
    slow_disk_until: Millis,
    snapshot_due: Option<Millis>,
    restart_at: Option<Millis>,
    /// A crash scheduled shortly after a takeover (a box that fails again at once).
    kill_at: Option<(Millis, Millis)>,
    acked_seen: u64,
    /// Role, mirror, takeover, release and warning events, with their time.
    history: Vec<(Millis, Event)>,
    apply_paused: bool,
}

struct Captured {
    to: usize,
    to_incarnation: u64,
    path: Path,
    bytes: Vec<u8>,
}

pub struct Pair {
    now: Millis,
    rng: Rng,
    p: Personality,
    cfgs: [Config; 2],
    nodes: [SimNode; 2],
    flights: BinaryHeap<Flight>,
    order: u64,
    cable_up: bool,
    cable_restore: Option<Millis>,
    /// The cable carries nothing from this node (a one-way fault), until the time.
    one_way_until: [Millis; 2],
    gateway_up: bool,
    gateway_restore: Option<Millis>,
    gateway_down_since: Millis,
    nic_restore: [Option<Millis>; 2],
    data_drops: [u32; 2],
    acked: HashSet<u64>,
    next_id: u64,
    captured: VecDeque<Captured>,
    trace: VecDeque<String>,
    trace_lines: usize,
    seed: u64,
    takeovers: u64,
    takeover_kinds: [u64; 5],
    faults: u64,
    attacks: u64,
    healed: bool,
    capture_all: bool,
}

const KEY: [u8; 32] = [0x42; 32];
const CLUSTER: u64 = 0xD0E7_0001;
const MAX_DATA_BURST: u32 = 2;

impl Pair {
    fn new(cfg: &SimConfig) -> Pair {
        let mut rng = Rng::new(cfg.seed);
        let p = Personality {
            link_loss: rng.range(0, 300),
            link_dup: rng.range(0, 50),
            link_delay: {
                let lo = rng.range(0, 5);
                (lo, lo + rng.range(0, 45))
            },
            data_loss: rng.range(0, 200),
            data_delay: {
                let lo = rng.range(0, 3);
                (lo, lo + rng.range(0, 15))
            },
            fault_permille: rng.range(10, 60),
            client_permille: rng.range(200, 900),
            big_change_permille: rng.range(0, 30),
            attack_permille: rng.range(0, 30),
            crash_after_takeover: rng.range(0, 150),
            gateway_lag: rng.range(0, 200),
        };
        let mut base = Config::new(CLUSTER, KEY.to_vec(), NodeId::A);
        if rng.chance(250) {
            // Faster timings: 50 ms heartbeats, 3 to 6 misses.
            base.heartbeat_interval = 50;
            base.dead_after_misses = rng.range(3, 6) as u32;
            let d = base.dead_after();
            base.takeover_grace =
                200.max((base.tiebreaker_max_age + base.heartbeat_interval + 50).saturating_sub(d));
            base.mirror_stall = d;
        }
        base.switchover_on_tiebreaker_loss = rng.chance(700);
        if rng.chance(150) {
            base.failback_to = Some(NodeId::A);
            base.failback_settle = rng.range(300, 3_000);
        }
        if rng.chance(300) {
            base.max_frame_len = 600;
        }
        let founder = if rng.chance(300) { 1 } else { 0 };
        let mut pair = Pair::from_parts(cfg.seed, rng, p, base, cfg.trace_lines);
        if founder == 1 {
            pair.nodes[0].disk.durable = DurableState::default();
            pair.nodes[1].disk.durable = DurableState::founder();
        }
        pair
    }

    /// A pair on a perfect network (1 ms delays, no loss), no random faults and no client
    /// load, for scripted scenarios: drive it with the methods below. `tweak` adjusts the
    /// configuration both nodes share. Invariants are checked as in random runs.
    pub fn scripted(tweak: impl FnOnce(&mut Config)) -> Result<Pair, SimFailure> {
        let p = Personality {
            link_loss: 0,
            link_dup: 0,
            link_delay: (1, 1),
            data_loss: 0,
            data_delay: (1, 1),
            fault_permille: 0,
            client_permille: 0,
            big_change_permille: 0,
            attack_permille: 0,
            crash_after_takeover: 0,
            gateway_lag: 0,
        };
        let mut base = Config::new(CLUSTER, KEY.to_vec(), NodeId::A);
        tweak(&mut base);
        base.node = NodeId::A;
        let mut pair = Pair::from_parts(0, Rng::new(0), p, base, 400);
        pair.boot(0)?;
        pair.boot(1)?;
        Ok(pair)
    }

    fn from_parts(seed: u64, rng: Rng, p: Personality, base: Config, trace_lines: usize) -> Pair {
        let mut cfg_b = base.clone();
        cfg_b.node = NodeId::B;
        let mk = |durable: DurableState| SimNode {
            core: None,
            disk: Disk {
                durable,
                log: Vec::new(),
                boots: 0,
            },
            ids: HashSet::new(),
            nic_up: true,
            nic_flapped: false,
            probe_stall_until: 0,
            next_probe: 0,
            applying: VecDeque::new(),
            slow_disk_until: 0,
            snapshot_due: None,
            restart_at: None,
            kill_at: None,
            acked_seen: 0,
            history: Vec::new(),
            apply_paused: false,
        };
        Pair {
            now: 0,
            p,
            cfgs: [base, cfg_b],
            nodes: [mk(DurableState::founder()), mk(DurableState::default())],
            rng,
            flights: BinaryHeap::new(),
            order: 0,
            cable_up: true,
            cable_restore: None,
            one_way_until: [0; 2],
            gateway_up: true,
            gateway_restore: None,
            gateway_down_since: 0,
            nic_restore: [None; 2],
            data_drops: [0; 2],
            acked: HashSet::new(),
            next_id: 1,
            captured: VecDeque::new(),
            trace: VecDeque::new(),
            trace_lines,
            seed,
            takeovers: 0,
            takeover_kinds: [0; 5],
            faults: 0,
            attacks: 0,
            healed: false,
            capture_all: false,
        }
    }

    fn log(&mut self, line: String) {
        if self.trace.len() >= self.trace_lines.max(1) {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("[{:>6}] {line}", self.now));
    }

    fn fail(&self, what: String) -> SimFailure {
        SimFailure {
            seed: self.seed,
            at: self.now,
            what,
            trace: self.trace.iter().cloned().collect(),
        }
    }

    fn name(i: usize) -> &'static str {
        if i == 0 {
            "a"
        } else {
            "b"
        }
    }

    fn refused_total(&self) -> u64 {
        self.nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .map(|c| c.stats().refused())
            .sum()
    }

    // ---- scripted control (see `Pair::scripted`) ----

    pub fn now(&self) -> Millis {
        self.now
    }

    /// Runs `ms` of virtual time, checking the invariants after every input.
    pub fn advance(&mut self, ms: Millis) -> Result<(), SimFailure> {
        let target = self.now + ms;
        self.run_until(target)
    }

    /// A client commits one change on node `i` (as its shell would: store first, then the
    /// core). Returns the change's id; `Err` only if an invariant broke.
    pub fn submit_on(&mut self, i: usize) -> Result<u64, SimFailure> {
        let id = self.next_id;
        self.submit(i)?;
        Ok(id)
    }

    /// A client change of `len` bytes (at least 8).
    pub fn submit_sized(&mut self, i: usize, len: usize) -> Result<u64, SimFailure> {
        let id = self.next_id;
        self.next_id += 1;
        let mut data = id.to_le_bytes().to_vec();
        data.resize(len.max(8), 0xA5);
        self.commit_client(i, id, data)?;
        Ok(id)
    }

    /// The serving node, if any.
    pub fn serving(&self) -> Option<usize> {
        (0..2).find(|&i| self.nodes[i].core.as_ref().is_some_and(|c| c.is_serving()))
    }

    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes[i].core.as_ref()
    }

    /// Ids of the changes in node `i`'s store, in order.
    pub fn store(&self, i: usize) -> &[u64] {
        &self.nodes[i].disk.log
    }

    /// Ids of every change acknowledged to a client so far.
    pub fn acked(&self) -> &HashSet<u64> {
        &self.acked
    }

    /// Role, mirror, takeover, release and warning events of node `i`, with their time.
    pub fn history(&self, i: usize) -> &[(Millis, Event)] {
        &self.nodes[i].history
    }

    pub fn trace(&self) -> Vec<String> {
        self.trace.iter().cloned().collect()
    }

    pub fn set_cable(&mut self, up: bool) {
        self.cable_up = up;
        self.cable_restore = None;
        self.log(format!("cable {}", if up { "restored" } else { "cut" }));
    }

    pub fn set_nic(&mut self, i: usize, up: bool) -> Result<(), SimFailure> {
        self.nic_restore[i] = None;
        if up {
            self.nodes[i].nic_up = true;
            self.log(format!("{} data NIC up", Self::name(i)));
            Ok(())
        } else {
            let r = self.nic_down(i, 0);
            self.nic_restore[i] = None;
            r
        }
    }

    pub fn set_gateway(&mut self, up: bool) {
        if self.gateway_up && !up {
            self.gateway_down_since = self.now;
        }
        self.gateway_up = up;
        self.gateway_restore = None;
        self.log(format!("gateway {}", if up { "up" } else { "down" }));
    }

    /// While paused, node `i`'s shell commits nothing it is given (a hung disk).
    pub fn set_apply_paused(&mut self, i: usize, paused: bool) {
        self.nodes[i].apply_paused = paused;
    }

    /// Kills node `i`; it keeps only its disk.
    pub fn crash(&mut self, i: usize) {
        self.kill(i, None);
    }

    /// Starts node `i` again from its disk.
    pub fn restart(&mut self, i: usize) -> Result<(), SimFailure> {
        if self.nodes[i].core.is_none() {
            self.boot(i)?;
        }
        Ok(())
    }

    /// `duetctl switchover` on node `i`.
    pub fn switchover(&mut self, i: usize) -> Result<Result<(), crate::ClusterError>, SimFailure> {
        let now = self.now;
        let r = match self.nodes[i].core.as_mut() {
            Some(c) => c.switchover(now),
            None => Err(crate::ClusterError::NotServing),
        };
        self.drain(i)?;
        Ok(r)
    }

    /// `duetctl takeover --force` on node `i`. The invariants are checked as always, so
    /// forcing a node that lacks acknowledged changes fails the run (as it should: the
    /// operator accepted that loss).
    pub fn force_takeover(
        &mut self,
        i: usize,
    ) -> Result<Result<(), crate::ClusterError>, SimFailure> {
        let now = self.now;
        let r = match self.nodes[i].core.as_mut() {
            Some(c) => c.force_takeover(now),
            None => Err(crate::ClusterError::NotServing),
        };
        self.drain(i)?;
        Ok(r)
    }

    /// Delivers raw bytes to node `i` as if received on `path`.
    pub fn inject_frame(&mut self, i: usize, path: Path, bytes: &[u8]) -> Result<(), SimFailure> {
        let now = self.now;
        if let Some(c) = self.nodes[i].core.as_mut() {
            c.handle_frame(now, path, bytes);
        }
        self.drain(i)
    }

    /// Frames captured in flight (a copy of some of those delivered), for replay tests:
    /// (receiver, path, bytes).
    pub fn captured(&self) -> Vec<(usize, Path, Vec<u8>)> {
        self.captured
            .iter()
            .map(|c| (c.to, c.path, c.bytes.clone()))
            .collect()
    }

    /// Capture every delivered frame from now on (scripted tests), not just a sample.
    pub fn capture_all(&mut self, on: bool) {
        self.capture_all = on;
    }

    // ---- node lifecycle ----

    fn boot(&mut self, i: usize) -> Result<(), SimFailure> {
        let now = self.now;
        let n = &mut self.nodes[i];
        n.disk.boots += 1;
        n.restart_at = None;
        n.applying.clear();
        n.snapshot_due = None;
        n.kill_at = None;
        n.acked_seen = 0;
        n.next_probe = now;
        let started = Node::new(
            self.cfgs[i].clone(),
            now,
            n.disk.boots,
            n.disk.durable,
            n.disk.log.len() as u64,
        );
        let core = match started {
            Ok(c) => c,
            Err(e) => return Err(self.fail(format!("node {} failed to start: {e}", Self::name(i)))),
        };
        self.nodes[i].core = Some(core);
        let d = self.nodes[i].disk.durable;
        let len = self.nodes[i].disk.log.len();
        self.log(format!(
            "{} boots (incarnation {}), durable {:?}, {} changes on disk",
            Self::name(i),
            self.nodes[i].disk.boots,
            d,
            len
        ));
        self.drain(i)
    }

    fn kill(&mut self, i: usize, restart_in: Option<Millis>) {
        let n = &mut self.nodes[i];
        if n.core.is_none() {
            return;
        }
        n.core = None;
        n.applying.clear();
        n.snapshot_due = None;
        n.kill_at = None;
        n.restart_at = restart_in.map(|d| self.now + d);
        let msg = format!(
            "KILL {} (restart {})",
            Self::name(i),
            restart_in.map_or("at heal".to_string(), |d| format!("in {d} ms"))
        );
        self.log(msg);
    }

    // ---- the shell: events and frames out of a core ----

    fn drain(&mut self, i: usize) -> Result<(), SimFailure> {
        loop {
            let mut progressed = false;
            loop {
                let ev = match self.nodes[i].core.as_mut() {
                    Some(c) => c.poll_event(),
                    None => return Ok(()),
                };
                let Some(ev) = ev else { break };
                progressed = true;
                self.on_event(i, ev)?;
            }
            loop {
                let t = match self.nodes[i].core.as_mut() {
                    Some(c) => c.poll_transmit(),
                    None => return Ok(()),
                };
                let Some(t) = t else { break };
                progressed = true;
                self.send(i, t.path, t.payload);
            }
            if !progressed {
                break;
            }
        }
        self.check_serving()
    }

    fn on_event(&mut self, i: usize, ev: Event) -> Result<(), SimFailure> {
        let name = Self::name(i);
        if matches!(
            ev,
            Event::RoleChanged(_)
                | Event::MirrorChanged(_)
                | Event::Takeover { .. }
                | Event::Release { .. }
                | Event::Warning(_)
        ) {
            self.nodes[i].history.push((self.now, ev.clone()));
        }
        match ev {
            Event::Persist(d) => self.nodes[i].disk.durable = d,
            Event::RoleChanged(r) => {
                let epoch = self.nodes[i].core.as_ref().map_or(0, |c| c.epoch());
                self.log(format!("{name} role {r:?} (epoch {epoch})"));
            }
            Event::MirrorChanged(m) => self.log(format!("{name} mirror {m:?}")),
            Event::Warning(w) => self.log(format!("{name} warning {w:?}")),
            Event::Takeover {
                epoch,
                reason,
                effects,
            } => {
                // The shell finishes committing what it already received, then serves.
                while let Some((_, a)) = self.nodes[i].applying.pop_front() {
                    self.commit(i, a)?;
                }
                self.takeovers += 1;
                self.takeover_kinds[reason as usize] += 1;
                self.nodes[i].acked_seen = self.nodes[i].disk.log.len() as u64;
                self.log(format!(
                    "{name} TAKEOVER epoch {epoch} ({reason:?}) with {} changes, effects {effects:?}",
                    self.nodes[i].disk.log.len()
                ));
                if !self.healed && self.rng.chance(self.p.crash_after_takeover) {
                    let at = self.now + self.rng.range(0, 400);
                    let restart = self.rng.range(50, 1_500);
                    self.nodes[i].kill_at = Some((at, restart));
                }
                let missing = self
                    .acked
                    .iter()
                    .filter(|id| !self.nodes[i].ids.contains(id))
                    .count();
                if missing > 0 {
                    return Err(self.fail(format!(
                        "{name} took over epoch {epoch} without {missing} acknowledged change(s)"
                    )));
                }
            }
            Event::Release { reason, effects } => {
                self.log(format!("{name} RELEASE ({reason:?}) effects {effects:?}"));
            }
            Event::Acked(seq) => {
                let n = &self.nodes[i];
                if seq > n.disk.log.len() as u64 {
                    return Err(self.fail(format!(
                        "{name} acknowledged change {seq} but its store ends at {}",
                        n.disk.log.len()
                    )));
                }
                let from = n.acked_seen;
                let new: Vec<u64> = if seq > from {
                    n.disk.log[from as usize..seq as usize].to_vec()
                } else {
                    Vec::new()
                };
                self.nodes[i].acked_seen = self.nodes[i].acked_seen.max(seq);
                for id in new {
                    self.acked.insert(id);
                    for j in 0..2 {
                        let serving = self.nodes[j].core.as_ref().is_some_and(|c| c.is_serving());
                        if serving && !self.nodes[j].ids.contains(&id) {
                            return Err(self.fail(format!(
                                "{name} acknowledged change id {id} that the serving node {} lacks",
                                Self::name(j)
                            )));
                        }
                    }
                }
            }
            Event::SnapshotRequested => {
                let d = self.rng.range(0, 15);
                self.nodes[i].snapshot_due = Some(self.now + d);
                self.log(format!("{name} snapshot requested"));
            }
            Event::InstallSnapshot { seq, data } => {
                let at = self.apply_time(i);
                self.nodes[i]
                    .applying
                    .push_back((at, Apply::Snapshot(seq, data)));
            }
            Event::ApplyChanges(changes) => {
                let at = self.apply_time(i);
                self.nodes[i]
                    .applying
                    .push_back((at, Apply::Changes(changes)));
            }
        }
        Ok(())
    }

    fn apply_time(&mut self, i: usize) -> Millis {
        let slow = self.nodes[i].slow_disk_until > self.now;
        let d = if slow {
            self.rng.range(200, 900)
        } else {
            self.rng.range(0, 6)
        };
        let last = self.nodes[i].applying.back().map_or(0, |(t, _)| *t);
        last.max(self.now + d)
    }

    /// Commits one delivered batch to the node's disk and tells the core.
    fn commit(&mut self, i: usize, a: Apply) -> Result<(), SimFailure> {
        let name = Self::name(i);
        let seq = match a {
            Apply::Changes(changes) => {
                let mut last = 0;
                for c in changes {
                    let expect = self.nodes[i].disk.log.len() as u64 + 1;
                    if c.seq != expect {
                        return Err(self.fail(format!(
                            "{name} was given change {} but its store expects {expect}",
                            c.seq
                        )));
                    }
                    let Some(id) = c.data.get(..8).and_then(|b| b.try_into().ok()) else {
                        return Err(self.fail(format!("{name} got a damaged change payload")));
                    };
                    let id = u64::from_le_bytes(id);
                    self.nodes[i].disk.log.push(id);
                    self.nodes[i].ids.insert(id);
                    last = c.seq;
                }
                last
            }
            Apply::Snapshot(seq, data) => {
                if data.len() % 8 != 0 || (data.len() / 8) as u64 != seq {
                    return Err(self.fail(format!(
                        "{name} got a snapshot of {} bytes for change {seq}",
                        data.len()
                    )));
                }
                let log: Vec<u64> = data
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect();
                self.nodes[i].ids = log.iter().copied().collect();
                self.nodes[i].disk.log = log;
                self.log(format!("{name} installed snapshot at change {seq}"));
                seq
            }
        };
        let now = self.now;
        if let Some(c) = self.nodes[i].core.as_mut() {
            if let Err(e) = c.applied(now, seq) {
                return Err(self.fail(format!("{name}: applied({seq}) refused: {e}")));
            }
        }
        Ok(())
    }

    fn send(&mut self, from: usize, path: Path, bytes: Vec<u8>) {
        let to = 1 - from;
        match path {
            Path::Link => {
                if !self.cable_up
                    || self.one_way_until[from] > self.now
                    || self.rng.chance(self.p.link_loss)
                {
                    return;
                }
                let copies = if self.rng.chance(self.p.link_dup) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let at = self.now + self.rng.range(self.p.link_delay.0, self.p.link_delay.1);
                    self.order += 1;
                    self.flights.push(Flight {
                        at,
                        order: self.order,
                        to,
                        path,
                        bytes: bytes.clone(),
                    });
                }
            }
            Path::Data => {
                if !self.nodes[from].nic_up {
                    return;
                }
                if self.data_drops[from] < MAX_DATA_BURST && self.rng.chance(self.p.data_loss) {
                    self.data_drops[from] += 1;
                    return;
                }
                self.data_drops[from] = 0;
                let at = self.now + self.rng.range(self.p.data_delay.0, self.p.data_delay.1);
                self.order += 1;
                self.flights.push(Flight {
                    at,
                    order: self.order,
                    to,
                    path,
                    bytes,
                });
            }
        }
    }

    fn deliver(&mut self, f: Flight) -> Result<(), SimFailure> {
        let ok = match f.path {
            Path::Link => self.cable_up,
            Path::Data => self.nodes[f.to].nic_up,
        };
        let now = self.now;
        let Some(core) = self.nodes[f.to].core.as_mut() else {
            return Ok(());
        };
        if !ok {
            return Ok(());
        }
        let incarnation = core.incarnation();
        core.handle_frame(now, f.path, &f.bytes);
        if self.capture_all || self.rng.chance(20) {
            if self.captured.len() >= 64 {
                self.captured.pop_front();
            }
            self.captured.push_back(Captured {
                to: f.to,
                to_incarnation: incarnation,
                path: f.path,
                bytes: f.bytes,
            });
        }
        self.drain(f.to)
    }

    // ---- invariants ----

    fn check_serving(&self) -> Result<(), SimFailure> {
        let serving: Vec<usize> = (0..2)
            .filter(|&i| self.nodes[i].core.as_ref().is_some_and(|c| c.is_serving()))
            .collect();
        if serving.len() > 1 {
            let epochs: Vec<u64> = serving
                .iter()
                .filter_map(|&i| self.nodes[i].core.as_ref().map(|c| c.epoch()))
                .collect();
            return Err(self.fail(format!("two nodes serve (epochs {epochs:?})")));
        }
        Ok(())
    }

    fn check_liveness(&self) -> Result<(), SimFailure> {
        let serving: Vec<usize> = (0..2)
            .filter(|&i| self.nodes[i].core.as_ref().is_some_and(|c| c.is_serving()))
            .collect();
        let [leader] = serving[..] else {
            let roles: Vec<Option<Role>> = self
                .nodes
                .iter()
                .map(|n| n.core.as_ref().map(|c| c.role()))
                .collect();
            return Err(self.fail(format!(
                "after healing, {} node(s) serve (roles {roles:?})",
                serving.len()
            )));
        };
        let follower = 1 - leader;
        let reports: Vec<_> = self
            .nodes
            .iter()
            .filter_map(|n| n.core.as_ref().map(|c| (c.report(), c.stats().clone())))
            .collect();
        let mirror = self.nodes[leader].core.as_ref().map(|c| c.mirror_state());
        if mirror != Some(MirrorState::Synchronous) {
            return Err(self.fail(format!(
                "after healing, mirroring is {mirror:?}, not synchronous: {reports:?}"
            )));
        }
        if self.nodes[leader].disk.log != self.nodes[follower].disk.log {
            return Err(self.fail(format!(
                "after healing, stores differ: leader {} has {} changes, follower {} has {}",
                Self::name(leader),
                self.nodes[leader].disk.log.len(),
                Self::name(follower),
                self.nodes[follower].disk.log.len()
            )));
        }
        Ok(())
    }

    // ---- time ----

    fn next_due(&self) -> Option<Millis> {
        let mut t: Option<Millis> = None;
        let mut consider = |x: Option<Millis>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        consider(self.flights.peek().map(|f| f.at));
        consider(self.cable_restore);
        consider(self.gateway_restore);
        for i in 0..2 {
            let n = &self.nodes[i];
            consider(self.nic_restore[i]);
            consider(n.restart_at);
            consider(n.kill_at.map(|(t, _)| t));
            if let Some(c) = &n.core {
                consider(c.poll_timeout());
                consider(Some(n.next_probe));
                if !n.apply_paused {
                    consider(n.applying.front().map(|(t, _)| *t));
                }
                consider(n.snapshot_due);
            }
        }
        t
    }

    fn run_until(&mut self, target: Millis) -> Result<(), SimFailure> {
        while let Some(t) = self.next_due() {
            if t > target {
                break;
            }
            self.now = self.now.max(t);
            self.step_once()?;
        }
        self.now = self.now.max(target);
        Ok(())
    }

    /// Handles everything due at `self.now`, one kind at a time, in a fixed order.
    fn step_once(&mut self) -> Result<(), SimFailure> {
        let now = self.now;
        if self.cable_restore.is_some_and(|t| t <= now) {
            self.cable_restore = None;
            self.cable_up = true;
            self.log("cable restored".into());
        }
        if self.gateway_restore.is_some_and(|t| t <= now) {
            self.gateway_restore = None;
            self.gateway_up = true;
            self.log("gateway restored".into());
        }
        for i in 0..2 {
            if self.nic_restore[i].is_some_and(|t| t <= now) {
                self.nic_restore[i] = None;
                self.nodes[i].nic_up = true;
                self.log(format!("{} data NIC up", Self::name(i)));
            }
            if self.nodes[i].restart_at.is_some_and(|t| t <= now) {
                self.boot(i)?;
            }
            if let Some((t, restart)) = self.nodes[i].kill_at {
                if t <= now {
                    self.kill(i, Some(restart));
                }
            }
        }
        while self.flights.peek().is_some_and(|f| f.at <= now) {
            let Some(f) = self.flights.pop() else { break };
            self.deliver(f)?;
        }
        for i in 0..2 {
            if self.nodes[i].core.is_none() {
                continue;
            }
            if self.nodes[i].next_probe <= now {
                self.probe(i)?;
            }
            while !self.nodes[i].apply_paused
                && self.nodes[i]
                    .applying
                    .front()
                    .is_some_and(|(t, _)| *t <= now)
            {
                let Some((_, a)) = self.nodes[i].applying.pop_front() else {
                    break;
                };
                self.commit(i, a)?;
                self.drain(i)?;
            }
            if self.nodes[i].snapshot_due.is_some_and(|t| t <= now) {
                self.nodes[i].snapshot_due = None;
                let data: Vec<u8> = self.nodes[i]
                    .disk
                    .log
                    .iter()
                    .flat_map(|id| id.to_le_bytes())
                    .collect();
                let seq = self.nodes[i].disk.log.len() as u64;
                if let Some(c) = self.nodes[i].core.as_mut() {
                    let _ = c.snapshot_ready(now, seq, data);
                }
                self.drain(i)?;
            }
            let due = self.nodes[i]
                .core
                .as_ref()
                .and_then(|c| c.poll_timeout())
                .is_some_and(|t| t <= now);
            if due {
                if let Some(c) = self.nodes[i].core.as_mut() {
                    c.handle_timeout(now);
                }
                self.drain(i)?;
            }
        }
        Ok(())
    }

    /// The shell's tie-breaker probe: every 100 ms, reachable if the NIC stayed up since
    /// the last report and the gateway answers.
    fn probe(&mut self, i: usize) -> Result<(), SimFailure> {
        let now = self.now;
        let n = &mut self.nodes[i];
        n.next_probe = now + 100;
        if n.probe_stall_until > now {
            return Ok(());
        }
        // A lost gateway shows only after some missed probes (at most 200 ms here, within
        // `tiebreaker_max_age`); a lost carrier at once (see `nic_down`).
        let gateway_seen_down =
            !self.gateway_up && now.saturating_sub(self.gateway_down_since) >= self.p.gateway_lag;
        let reachable = n.nic_up && !n.nic_flapped && !gateway_seen_down;
        n.nic_flapped = false;
        if let Some(c) = n.core.as_mut() {
            c.set_tiebreaker_reachable(now, reachable);
        }
        self.drain(i)
    }

    fn nic_down(&mut self, i: usize, for_ms: Millis) -> Result<(), SimFailure> {
        let now = self.now;
        let n = &mut self.nodes[i];
        n.nic_up = false;
        n.nic_flapped = true;
        self.nic_restore[i] = Some(self.nic_restore[i].unwrap_or(0).max(now + for_ms));
        self.log(format!("{} data NIC down for {for_ms} ms", Self::name(i)));
        // Carrier loss is reported at once (netlink), even while the probe is stalled.
        if let Some(c) = self.nodes[i].core.as_mut() {
            c.set_tiebreaker_reachable(now, false);
        }
        self.drain(i)
    }

    // ---- load and faults ----

    fn client_load(&mut self) -> Result<(), SimFailure> {
        for i in 0..2 {
            let role = match &self.nodes[i].core {
                Some(c) => c.role(),
                None => continue,
            };
            let count = if role.is_serving() {
                if self.rng.chance(self.p.client_permille) {
                    self.rng.range(1, 3)
                } else {
                    0
                }
            } else if matches!(role, Role::HandingOver | Role::SteppedDown) && self.rng.chance(30) {
                // A request the shell committed just before it saw the release.
                1
            } else {
                0
            };
            for _ in 0..count {
                self.submit(i)?;
            }
        }
        Ok(())
    }

    fn submit(&mut self, i: usize) -> Result<(), SimFailure> {
        let id = self.next_id;
        self.next_id += 1;
        let len = if self.rng.chance(self.p.big_change_permille) {
            self.rng.range(1_500, 6_000)
        } else {
            self.rng.range(8, 120)
        } as usize;
        let mut data = id.to_le_bytes().to_vec();
        data.resize(len, (id % 251) as u8);
        self.commit_client(i, id, data)
    }

    fn commit_client(&mut self, i: usize, id: u64, data: Vec<u8>) -> Result<(), SimFailure> {
        let now = self.now;
        let n = &mut self.nodes[i];
        n.disk.log.push(id);
        n.ids.insert(id);
        let seq = n.disk.log.len() as u64;
        if let Some(c) = n.core.as_mut() {
            match c.submit_change(now, seq, data) {
                Ok(()) => {}
                Err(crate::ClusterError::OutOfOrder { expected, got }) => {
                    return Err(self.fail(format!(
                        "{}: store and core disagree: submitted {got}, core expected {expected}",
                        Self::name(i)
                    )))
                }
                Err(_) => {}
            }
        }
        self.drain(i)
    }

    fn inject(&mut self) -> Result<(), SimFailure> {
        if self.rng.chance(self.p.attack_permille) {
            self.attack()?;
        }
        if !self.rng.chance(self.p.fault_permille) {
            return Ok(());
        }
        self.faults += 1;
        let i = self.rng.range(0, 1) as usize;
        match self.rng.range(0, 10) {
            10 => {
                let d = self.rng.range(50, 2_000);
                self.one_way_until[i] = self.now + d;
                self.log(format!(
                    "cable carries nothing from {} for {d} ms",
                    Self::name(i)
                ));
            }
            0 | 1 => {
                // Kill the serving node if there is one (the interesting case), else any.
                let target = (0..2)
                    .find(|&j| self.nodes[j].core.as_ref().is_some_and(|c| c.is_serving()))
                    .unwrap_or(i);
                let restart = if self.rng.chance(800) {
                    Some(self.rng.range(100, 3_000))
                } else {
                    None
                };
                self.kill(target, restart);
            }
            2 => {
                let restart = Some(self.rng.range(50, 2_000));
                self.kill(i, restart);
            }
            3 => {
                let d = self.rng.range(50, 3_000);
                self.cable_up = false;
                self.cable_restore = Some(self.cable_restore.unwrap_or(0).max(self.now + d));
                self.log(format!("cable cut for {d} ms"));
            }
            4 => {
                let d = self.rng.range(30, 2_000);
                self.nic_down(i, d)?;
            }
            5 => {
                let d = self.rng.range(100, 2_000);
                if self.gateway_up {
                    self.gateway_down_since = self.now;
                }
                self.gateway_up = false;
                self.gateway_restore = Some(self.gateway_restore.unwrap_or(0).max(self.now + d));
                self.log(format!("gateway down for {d} ms"));
            }
            6 => {
                let d = self.rng.range(100, 1_500);
                self.nodes[i].probe_stall_until = self.now + d;
                self.log(format!(
                    "{} tie-breaker probe stalls for {d} ms",
                    Self::name(i)
                ));
            }
            7 => {
                let now = self.now;
                if let Some(c) = self.nodes[i].core.as_mut() {
                    let r = c.switchover(now);
                    let msg = format!("{} switchover command: {r:?}", Self::name(i));
                    self.log(msg);
                    self.drain(i)?;
                }
            }
            8 => {
                let d = self.rng.range(200, 1_500);
                self.nodes[i].slow_disk_until = self.now + d;
                self.log(format!("{} disk slow for {d} ms", Self::name(i)));
            }
            _ => {
                // Both at once: the cable and one node's data NIC.
                let d = self.rng.range(100, 2_000);
                self.cable_up = false;
                self.cable_restore = Some(self.cable_restore.unwrap_or(0).max(self.now + d));
                self.log(format!("cable cut for {d} ms"));
                let d2 = self.rng.range(50, 2_000);
                self.nic_down(i, d2)?;
            }
        }
        Ok(())
    }

    /// Forged, replayed, reflected, misdirected and foreign frames: each must be refused
    /// and counted, and change nothing.
    fn attack(&mut self) -> Result<(), SimFailure> {
        if self.captured.is_empty() {
            return Ok(());
        }
        let k = self.rng.range(0, self.captured.len() as u64 - 1) as usize;
        let (to, to_inc, path, mut bytes) = {
            let c = &self.captured[k];
            (c.to, c.to_incarnation, c.path, c.bytes.clone())
        };
        let kind = self.rng.range(0, 5);
        let (target, path) = match kind {
            // Replay to the same node.
            0 => (to, path),
            // Flip a bit anywhere.
            1 => {
                let at = self.rng.range(0, bytes.len() as u64 - 1) as usize;
                bytes[at] ^= 1 << self.rng.range(0, 7);
                (to, path)
            }
            // Another pair's cluster id.
            2 => {
                if bytes.len() > 6 {
                    bytes[6] ^= 0x80;
                }
                (to, path)
            }
            // Reflected back to its sender.
            3 => (1 - to, path),
            // Sent on the other path.
            4 => (
                to,
                match path {
                    Path::Link => Path::Data,
                    Path::Data => Path::Link,
                },
            ),
            // Garbage.
            _ => {
                let n = self.rng.range(0, 200) as usize;
                bytes = (0..n).map(|_| self.rng.next_u64() as u8).collect();
                (to, path)
            }
        };
        let now = self.now;
        let Some(core) = self.nodes[target].core.as_mut() else {
            return Ok(());
        };
        // A replay to a node that restarted since may be accepted (its window is new):
        // the protocol must be safe anyway; only check the counters when it cannot.
        let checkable = kind != 0 || core.incarnation() == to_inc;
        let before = (core.stats().frames_accepted, core.stats().refused());
        core.handle_frame(now, path, &bytes);
        let after = (core.stats().frames_accepted, core.stats().refused());
        self.attacks += 1;
        if checkable && (after.0 != before.0 || after.1 != before.1 + 1) {
            return Err(self.fail(format!(
                "attack {kind} on {} was not refused (accepted {}->{}, refused {}->{})",
                Self::name(target),
                before.0,
                after.0,
                before.1,
                after.1
            )));
        }
        self.drain(target)
    }

    /// Ends every fault and restarts dead nodes.
    fn heal(&mut self) -> Result<(), SimFailure> {
        self.log("HEAL: all faults end".into());
        self.healed = true;
        self.cable_up = true;
        self.cable_restore = None;
        self.one_way_until = [0; 2];
        self.gateway_up = true;
        self.gateway_restore = None;
        for i in 0..2 {
            self.nic_restore[i] = None;
            self.nodes[i].nic_up = true;
            self.nodes[i].probe_stall_until = 0;
            self.nodes[i].slow_disk_until = 0;
            self.nodes[i].kill_at = None;
            if self.nodes[i].core.is_none() {
                self.boot(i)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Ack, Body, Codec, Message, Status, WireMirror};
    use proptest::prelude::*;

    fn small() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..4, any::<u64>(), Just(u64::MAX), Just(u64::MAX - 1)]
    }

    fn pair2() -> impl Strategy<Value = Option<(u64, u64)>> {
        prop::option::of((small(), small()))
    }

    fn ack() -> impl Strategy<Value = Ack> {
        (small(), small(), 0u64..6000, small(), any::<bool>()).prop_map(
            |(leader_inc, stream, recv_off, applied, established)| Ack {
                leader_inc,
                stream,
                recv_off,
                applied,
                established,
            },
        )
    }

    fn status() -> impl Strategy<Value = Status> {
        (
            (
                small(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            ),
            (0u8..4, small(), pair2(), prop::option::of(ack())),
            (
                any::<bool>(),
                0u8..4,
                any::<bool>(),
                prop::option::of(small()),
            ),
            (
                pair2(),
                prop::option::of((small(), small(), small())),
                pair2(),
                pair2(),
            ),
            prop::option::of(small()),
        )
            .prop_map(|(a, b, c, d, e)| Status {
                epoch: a.0,
                served: a.1,
                alone: a.2,
                serving: a.3,
                releasing: a.4,
                mirror: match b.0 {
                    0 => WireMirror::None,
                    1 => WireMirror::Sync,
                    2 => WireMirror::Suspended { id: b.1 },
                    _ => WireMirror::Alone,
                },
                out_stream: b.2,
                following: b.3,
                in_sync: c.0,
                rank: c.1,
                tiebreaker_ok: c.2,
                claim: c.3,
                grant: d.0,
                handover: d.1,
                stale_ack: d.2,
                resync: d.3,
                switchover_request: e,
            })
    }

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            status().prop_map(|s| Message::Status(Box::new(s))),
            (
                small(),
                small(),
                0u64..6000,
                prop::collection::vec(any::<u8>(), 0..1500)
            )
                .prop_map(|(to_inc, stream, offset, data)| Message::Mirror {
                    to_inc,
                    stream,
                    offset,
                    data
                }),
            ack().prop_map(Message::Ack),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Even authenticated nonsense (a leaked key) must not panic the core.
        #[test]
        fn authenticated_arbitrary_messages_never_panic(
            msgs in prop::collection::vec((message(), any::<bool>(), any::<bool>(), 0u64..300), 1..40),
        ) {
            let mut p = match Pair::scripted(|_| {}) {
                Ok(p) => p,
                Err(e) => panic!("{e}"),
            };
            let _ = p.advance(1_500);
            let inc = p.node(0).map_or(1, |n| n.incarnation());
            let mut forger = Codec::new(&KEY, CLUSTER, NodeId::A, inc);
            forger.skip_to(1 << 40);
            for (msg, link, to_b, wait) in msgs {
                let path = if link { Path::Link } else { Path::Data };
                let body = Body { sent_at: p.now(), echo: None, msg };
                let bytes = forger.seal(path, &body);
                // The invariants may break under a forger holding the key; only panics count.
                let _ = p.inject_frame(if to_b { 1 } else { 0 }, path, &bytes);
                let _ = p.advance(wait);
            }
        }
    }

    #[test]
    fn rng_is_deterministic() {
        let mut a = super::Rng::new(5);
        let mut b = super::Rng::new(5);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert!((0..1000).all(|_| a.range(3, 7) >= 3 && a.range(3, 7) <= 7));
    }

    #[test]
    fn a_seed_replays_exactly() {
        let a = run(7).map_err(|e| e.to_string()).unwrap();
        let b = run(7).map_err(|e| e.to_string()).unwrap();
        assert_eq!(
            (a.virtual_ms, a.changes_acked, a.takeovers, a.frames_refused),
            (b.virtual_ms, b.changes_acked, b.takeovers, b.frames_refused)
        );
    }
}
