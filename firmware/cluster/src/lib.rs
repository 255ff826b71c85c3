//! duet-cluster: the cluster core of a duet pair. Heartbeats, authenticated frames, the
//! mirroring of the state store's change feed, roles, takeover and planned switchover, as
//! a pure state machine (quinn-proto style), plus a deterministic simulator ([`sim`]).
//!
//! Owns: the decisions of who serves, when a change is safe to acknowledge to a client,
//! the frame format on both paths between the nodes, and the durable facts a restarted
//! node needs ([`DurableState`]). Must never do I/O, read a clock, spawn a task, depend on
//! `duet-state` (changes and snapshots are opaque bytes), or act on a frame that failed
//! authentication or the replay check.
//!
//! # API
//!
//! One [`Node`] per box. Time is milliseconds on the shell's monotonic clock, always passed
//! in. Inputs: [`Node::handle_frame`]`(now, path, bytes)`, [`Node::handle_timeout`]`(now)`
//! (at [`Node::poll_timeout`]), [`Node::set_tiebreaker_reachable`]`(now, bool)`,
//! [`Node::submit_change`] (serving node: one change-feed entry), [`Node::snapshot_ready`],
//! [`Node::applied`] (passive node: committed), [`Node::switchover`],
//! [`Node::force_takeover`]. Outputs: [`Node::poll_transmit`] → [`Transmit`] `{ path,
//! payload }`, [`Node::poll_event`] → [`Event`], [`Node::poll_timeout`]. Queries:
//! [`Node::role`], [`Node::mirror_state`], [`Node::report`], [`Node::stats`].
//!
//! The shell's contract:
//! - After each input, drain `poll_event` before `poll_transmit`, and handle events in
//!   order. [`Event::Persist`] must be durable before the shell handles the next event or
//!   sends a frame polled after it (the core's promises to the partner depend on it).
//! - Serving node: commit a change to the store, then `submit_change(seq, bytes)` with the
//!   store's sequence number, and hold the client's response until [`Event::Acked`]`(n)`
//!   with `n >= seq`. On [`Event::SnapshotRequested`], take a snapshot of the store *then*
//!   and pass it to `snapshot_ready` (changes fed meanwhile are its tail).
//! - Passive node: commit [`Event::ApplyChanges`] / [`Event::InstallSnapshot`] in order,
//!   then call `applied(seq)`. It is acknowledged only after that.
//! - [`Event::Takeover`]: first finish committing every delivered change, then run the
//!   effects in order (`PromoteStorage`, `ImportHandles`, `AddVip`, `SendGratuitousArp`,
//!   `SendTickleAcks`), then serve. [`Event::Release`]: run its effects (`RemoveVip`,
//!   `CloseClientConnections`, `DemoteStorage`) before sending any later frame, and stop
//!   taking client work; a change committed after that is refused by `submit_change` and the
//!   node resyncs from a snapshot later.
//! - Report every tie-breaker probe result, and `false` at once on carrier loss of the data
//!   NIC. The incarnation passed to [`Node::new`] must grow at every start (a boot counter).
//!
//! # Frames
//!
//! `[magic "DC", version, sender, path, cluster id, incarnation, seq] ++ postcard(body) ++
//! HMAC-SHA256(cluster key)` (layout in [`wire`]). A frame is refused, counted in
//! [`Stats`], and otherwise ignored when it is malformed, of another cluster (checked before
//! the MAC), forged (MAC), reflected (our own sender id), sealed for the other path, from an
//! older incarnation of the partner (stale), or a sequence number already seen or older
//! than the 4096-frame window (replayed / stale). Every message aimed at a node names that
//! node's incarnation, so frames recorded before it restarted cannot act on it.
//!
//! # Two paths
//!
//! The heartbeat cable (the *link*) carries heartbeats and the mirror stream. The data
//! network carries heartbeats only (UDP between the nodes' own addresses). The second path
//! is what makes the split-brain guard work: with only the cable and a tie-breaker, "the
//! active node died" and "someone cut the cable" look the same to the passive node (both
//! nodes still reach the gateway), so it could either never take over or sometimes take
//! over next to a live active. With heartbeats on the data network it can tell them apart,
//! and the tie-breaker decides the remaining cases (a node cut off from the data network).
//!
//! Each heartbeat is the sender's whole status and echoes the receiver's last send time on
//! that path, so each node knows when the link last worked *both ways*.
//!
//! # Mirroring
//!
//! The serving node (leader) writes each change into a reliable byte stream to its
//! partner: items `[len][postcard(item)]`, many per frame when small (batches), spanning
//! frames when large, kept until acknowledged and resent after `retransmit_after` (40 ms)
//! without progress (backing off up to 1.28 s while the link is down). In `Synchronous` mode a change is acknowledged (`Acked`) only once the
//! partner committed it. If the link is lost the leader keeps serving but holds
//! acknowledgements (`Suspended`) until it may go on alone (`Alone`, role
//! `DegradedActive`, rule L4 below). When the partner follows again it gets a new stream:
//! a snapshot, then every change fed since the snapshot was requested, while the leader
//! keeps serving and acknowledging alone (`Resyncing`); once the partner has committed all
//! of it the leader is synchronous again. A short link outage keeps the stream (up to
//! `max_stream_buffer`) and needs no snapshot. A planned switchover needs none either.
//!
//! # Roles and the takeover rules
//!
//! Roles: [`Role::Starting`], `Passive`, `Active`, `DegradedActive`, `HandingOver`,
//! `SteppedDown`; serving = `Active` or `DegradedActive`. Each period of service has an
//! epoch, higher than any before, persisted before the node serves. `D` = `dead_after`
//! (5 × 100 ms), `T` = `D + takeover_grace` (700 ms). "Contact" = any authentic frame from
//! the partner, on either path, within `T`; "silence" is its absence. "Tie-breaker good" =
//! the latest report says reachable and is at most `tiebreaker_max_age` (300 ms) old.
//!
//! Serving node:
//! - **L1** Link round trip within `D` and no change waiting longer than `mirror_stall`:
//!   synchronous.
//! - **L2** Link lost and tie-breaker not good: release the service at once (also when the
//!   partner knows a newer epoch, and after being paused longer than `D`).
//! - **L3** Link lost (or mirror stalled), tie-breaker good: keep serving, `Suspended`, hold
//!   acknowledgements, say so in every heartbeat on both paths.
//! - **L4** Leave `Suspended` for `Alone` only when (a) the partner answered that it knows
//!   it is no longer synchronous (it will not take over), or (b) silence for `T`, the
//!   tie-breaker good without a gap through that silence, and suspended for 3 heartbeats,
//!   or (c) the partner restarted or asked for a new stream. `alone` is persisted first.
//! - **L5** Back to synchronous only when the partner committed everything fed
//!   (`alone` cleared on disk first).
//!
//! Non-serving node (`in sync` = the leader's newest heartbeat says it mirrors
//! synchronously to this node's current stream; cleared by any other mirror mode, by
//! granting a claim, or by seeing the partner served alone):
//! - **T1** In sync, silence for `T` on both paths, the data path carried the partner's
//!   heartbeats until at most `D` before the silence began, and the tie-breaker good
//!   without a gap since the silence began and since the leader last confirmed it in
//!   sync: take over (epoch + 1, acknowledging alone).
//! - **T2** It served the newest epoch it knows *alone* (persisted), silence for `T` (at
//!   least since it started), tie-breaker good for `tiebreaker_confirm`: resume.
//! - **T3** In contact, neither serves: the better placed node (served the newest epoch >
//!   in-sync follower > other; node a on a tie) claims the next epoch once its tie-breaker
//!   is confirmed; the other grants (and stops counting itself in sync); the claimer serves
//!   on the grant.
//! - **H** Planned switchover ([`Node::switchover`] on either node, or tie-breaker lost by
//!   the leader for `max_age + confirm` while the partner reaches it, or configured
//!   failback after `failback_settle`): the leader releases first, drains the mirror,
//!   announces (next epoch, last change); the partner, in sync and committed exactly up to
//!   that change, persists and serves synchronously at once; the old leader follows. Not
//!   done within `handover_timeout`: abandoned, T3 sorts it out.
//! - A (re)started node serves on silence only by T2. A new or replaced box starts from
//!   `DurableState::default()` and never serves before it heard its partner; the founding
//!   node starts from [`DurableState::founder`]. No failback unless `failback_to` is set.
//!
//! Why the two nodes never both serve (under the assumptions below):
//! - *Only the cable is cut*: each node still hears the other on the data network (A1),
//!   so the passive node never sees silence and never takes over; the active one suspends,
//!   gets the passive node's answer (L4a) and goes on alone. Exactly one serves.
//! - *The active node dies*: the passive node sees silence on both paths right after the
//!   data path last worked, with the tie-breaker fine: T1 after `T`.
//! - *Cable cut and the active node's data NIC down*: it sees link lost and tie-breaker
//!   lost (carrier is reported at once) and steps down (L2) within `D` of its last round
//!   trip; the passive node takes over (T1) no earlier than `T = D + grace` after the last
//!   frame it received. `Config::validate` requires `T > tiebreaker_max_age + interval`,
//!   so a node whose probe merely stalls has also given up by then.
//! - *Cable cut and the passive node's data NIC down*: the passive node's tie-breaker gap
//!   rules out T1 until it has heard the active node again (which tells it it is stale);
//!   the active node goes on alone (L4b).
//! - *Gateway down*: both nodes lose the tie-breaker; with the cable up nothing changes; if
//!   the cable is cut too the serving node steps down and no one serves until the gateway
//!   returns (T3 then) — availability is given up, never exclusivity.
//! - T3 needs a grant from the other node, and grants go to one claimer at a time; H needs
//!   the old leader to have released first; a leader that sees a newer epoch steps down.
//!
//! Why no acknowledged change is lost: synchronous acknowledgements are committed on the
//! partner; a leader acknowledges alone only after L4, which leaves the partner either told
//! (L4a), restarted (and a restarted node never serves on silence unless it served alone
//! last), or with a tie-breaker gap that rules out T1; T2 needs `alone`, so the partner
//! cannot have served since without hearing this node; a node that served synchronously and
//! restarts waits for its partner; H only goes to the node that committed the drained
//! position.
//!
//! # Assumptions and limits
//!
//! - **A1** While both data NICs are up, heartbeats get through the data network between
//!   the nodes (in the simulator: at most 2 consecutive losses per direction). A firewall
//!   or VLAN split that blocks them while both nodes still reach a tie-breaker (two
//!   switches, a routed tie-breaker reachable both ways) breaks the guard: a cable cut can
//!   then leave both serving, each acknowledging its own changes. Mitigation built in: T1
//!   requires the data path to have been carrying heartbeats when the silence began, so an
//!   already-broken data path disables automatic takeover and raises
//!   [`Warning::DataPathDown`]. The tie-breaker is a reachability test, not a lock; a real
//!   arbiter (a third node or a disk lease) would be needed to close this.
//! - **A2** Frame delay on either path well below `takeover_grace` (200 ms).
//! - **A3** Both clocks run at the same rate (no absolute time is compared across nodes).
//! - **A4** Carrier loss reported at once; probes reported at least every
//!   `tiebreaker_max_age`. A short NIC flap that neither carrier nor probe reports can
//!   defeat T1's gap check.
//! - **A5** The shell keeps the ordering contract above (persist, commit, release effects).
//! - A process or VM paused longer than `D` steps down when it runs again, but anything the
//!   kernel still sends on its behalf in between (buffered TCP) is outside this core.
//! - Without service, by design: the leader went on alone and then died (the partner is
//!   stale and waits); gateway down and cable cut together; both nodes restarted after the
//!   leader served synchronously, until both are up. [`Node::force_takeover`] is the
//!   operator's override (it may lose what the partner acknowledged alone).
//! - Failover time: about `T` (700 ms) after the last heartbeat, plus the shell's effects.
//!   `heartbeat_interval`, `dead_after_misses` and `takeover_grace` trade it against false
//!   suspicion on a lossy link.
//!
//! # Simulation
//!
//! [`sim::run`]`(seed)` runs two nodes with a lossy, delaying, duplicating, reordering cable,
//! one-way cable faults, a data network with NICs and a gateway (the data network loses at
//! most two frames in a row while both NICs are up: assumption A1), kills and restarts (a
//! restarted node keeps only its disk), crashes right after a takeover, staggered boots,
//! two timing profiles, stalled tie-breaker probes, hung disks, switchovers, and forged,
//! replayed, reflected and misdirected frames,
//! checking after every input that no two nodes serve and that every acknowledged change
//! is in the store of the serving node; then it heals everything and checks that the pair
//! is synchronous again with equal stores. `tests/sim.rs` runs 2000 seeds
//! (`DUET_SIM_SEEDS`, `DUET_SIM_FIRST_SEED`); `DUET_SIM_SEED=N cargo test -p duet-cluster
//! sim_one_seed -- --nocapture` replays one. [`sim::Pair::scripted`] drives the same world
//! step by step for scenario tests.

mod config;
mod error;
mod node;
pub mod sim;
mod stream;
pub mod wire;

pub use config::{Config, Millis, NodeId};
pub use error::ClusterError;
pub use node::{
    DurableState, Effect, Event, MirrorState, Node, ReleaseReason, Report, Role, Stats,
    TakeoverReason, Transmit, Warning, RELEASE_EFFECTS, TAKEOVER_EFFECTS,
};
pub use stream::Change;
pub use wire::Path;
