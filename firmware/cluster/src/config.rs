//! Configuration of one node of the pair: identity, per-cluster key and timing.
//! Owns the defaults and the consistency rules between timings (the takeover rules in
//! the crate docs depend on them); never reads a file (the shell parses the board config).

use crate::ClusterError;
use serde::{Deserialize, Serialize};

/// Milliseconds on the shell's monotonic clock. Time only ever comes in as an argument.
pub type Millis = u64;

/// One of the two nodes of the pair. Node A (0) is the lower id: it wins ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(u8);

impl NodeId {
    pub const A: NodeId = NodeId(0);
    pub const B: NodeId = NodeId(1);

    /// `0` or `1`; anything else is not a node of a pair.
    pub fn from_index(index: u8) -> Option<NodeId> {
        (index < 2).then_some(NodeId(index))
    }
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
    pub fn as_u8(self) -> u8 {
        self.0
    }
    pub fn partner(self) -> NodeId {
        NodeId(1 - self.0)
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0 == 0 { "a" } else { "b" })
    }
}

/// Everything one node needs to run the cluster core. Both nodes of a pair use the same
/// values except `node`.
#[derive(Clone)]
pub struct Config {
    /// Identifies the pair; frames of another pair are refused before their MAC is checked.
    pub cluster_id: u64,
    /// Per-cluster secret (at least 16 bytes), set when the pair is joined.
    pub key: Vec<u8>,
    pub node: NodeId,
    /// A heartbeat (status frame) goes out on each path this often.
    pub heartbeat_interval: Millis,
    /// The link is dead after this many intervals without a round trip.
    pub dead_after_misses: u32,
    /// A passive node waits this much longer than `dead_after` before it takes over, so that
    /// a serving node that lost both link and tie-breaker has stepped down first.
    pub takeover_grace: Millis,
    /// A tie-breaker report older than this counts as "unreachable".
    pub tiebreaker_max_age: Millis,
    /// A stepped-down or starting node needs the tie-breaker reachable this long before it
    /// claims the service.
    pub tiebreaker_confirm: Millis,
    /// Unacknowledged mirror bytes are sent again after this long without progress.
    pub retransmit_after: Millis,
    /// A change waiting this long for the partner's acknowledgement suspends synchronous
    /// mirroring even if heartbeats still flow (a partner whose disk hangs).
    pub mirror_stall: Millis,
    /// A planned switchover that has not completed after this long is abandoned.
    pub handover_timeout: Millis,
    /// Largest frame handed to the shell (the link's MTU less its own headers).
    pub max_frame_len: usize,
    /// Mirror bytes sent but not yet acknowledged, at most.
    pub max_in_flight: usize,
    /// Mirror bytes kept for a partner that is away; beyond this it resyncs from a snapshot.
    pub max_stream_buffer: usize,
    /// Largest change payload `submit_change` accepts.
    pub max_change_len: usize,
    /// When the serving node loses the tie-breaker but the link is fine and the partner is
    /// synchronous and reaches it, hand the service over (planned switchover).
    pub switchover_on_tiebreaker_loss: bool,
    /// Automatic failback: when this node is the partner and has been synchronous for
    /// `failback_settle`, the serving node hands the service back to it. `None`: never.
    pub failback_to: Option<NodeId>,
    pub failback_settle: Millis,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("cluster_id", &self.cluster_id)
            .field("key", &"<redacted>")
            .field("node", &self.node)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("dead_after_misses", &self.dead_after_misses)
            .field("takeover_grace", &self.takeover_grace)
            .field("tiebreaker_max_age", &self.tiebreaker_max_age)
            .field("tiebreaker_confirm", &self.tiebreaker_confirm)
            .field("retransmit_after", &self.retransmit_after)
            .field("mirror_stall", &self.mirror_stall)
            .field("handover_timeout", &self.handover_timeout)
            .field("max_frame_len", &self.max_frame_len)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_stream_buffer", &self.max_stream_buffer)
            .field("max_change_len", &self.max_change_len)
            .field(
                "switchover_on_tiebreaker_loss",
                &self.switchover_on_tiebreaker_loss,
            )
            .field("failback_to", &self.failback_to)
            .field("failback_settle", &self.failback_settle)
            .finish()
    }
}

impl Config {
    /// Defaults: heartbeat 100 ms, dead after 5 misses (500 ms), takeover after 700 ms.
    pub fn new(cluster_id: u64, key: Vec<u8>, node: NodeId) -> Config {
        Config {
            cluster_id,
            key,
            node,
            heartbeat_interval: 100,
            dead_after_misses: 5,
            takeover_grace: 200,
            tiebreaker_max_age: 300,
            tiebreaker_confirm: 300,
            retransmit_after: 40,
            mirror_stall: 500,
            handover_timeout: 2_000,
            max_frame_len: 1_400,
            max_in_flight: 64 * 1024,
            max_stream_buffer: 8 * 1024 * 1024,
            max_change_len: 1024 * 1024,
            switchover_on_tiebreaker_loss: true,
            failback_to: None,
            failback_settle: 5_000,
        }
    }

    /// The link (or the partner) is dead after this long without a round trip.
    pub fn dead_after(&self) -> Millis {
        self.heartbeat_interval
            .saturating_mul(u64::from(self.dead_after_misses))
    }

    /// Silence on every path for this long lets a synchronous passive node take over.
    pub fn takeover_after(&self) -> Millis {
        self.dead_after().saturating_add(self.takeover_grace)
    }

    /// The rules the takeover argument in the crate docs relies on.
    pub fn validate(&self) -> Result<(), ClusterError> {
        let bad = |why| Err(ClusterError::InvalidConfig(why));
        if self.key.len() < 16 {
            return bad("the cluster key must be at least 16 bytes");
        }
        if self.heartbeat_interval == 0 || self.dead_after_misses < 2 {
            return bad("heartbeat_interval must be > 0 and dead_after_misses >= 2");
        }
        if self.takeover_grace < self.heartbeat_interval {
            return bad("takeover_grace must be at least one heartbeat interval");
        }
        if self.takeover_after() <= self.tiebreaker_max_age + self.heartbeat_interval {
            return bad("dead_after + takeover_grace must exceed tiebreaker_max_age + one heartbeat interval");
        }
        if self.tiebreaker_max_age < self.heartbeat_interval {
            return bad("tiebreaker_max_age must be at least one heartbeat interval");
        }
        if self.retransmit_after == 0 || self.mirror_stall < self.heartbeat_interval {
            return bad("retransmit_after must be > 0 and mirror_stall at least one interval");
        }
        if !(512..=65_000).contains(&self.max_frame_len) {
            return bad("max_frame_len must be between 512 and 65000");
        }
        if self.max_in_flight < self.max_frame_len || self.max_stream_buffer < self.max_in_flight {
            return bad("max_stream_buffer >= max_in_flight >= max_frame_len");
        }
        if self.max_change_len == 0 || self.max_change_len > 64 * 1024 * 1024 {
            return bad("max_change_len must be between 1 byte and 64 MiB");
        }
        Ok(())
    }
}
