//! The crate's one error enum. Refused frames are not errors (they are counted in
//! [`crate::Stats`]); these are the answers to the shell's own calls.

use thiserror::Error;

/// What a call from the shell could not do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClusterError {
    /// The configuration is inconsistent; the string names the rule.
    #[error("invalid cluster configuration: {0}")]
    InvalidConfig(&'static str),
    /// Only the serving node takes changes from clients, and only it hands over.
    #[error("this node is not serving")]
    NotServing,
    /// A change's sequence number is not the next one after the store's last change.
    #[error("change {got} submitted, expected change {expected}")]
    OutOfOrder { expected: u64, got: u64 },
    /// A change payload is larger than `Config::max_change_len`.
    #[error("change of {len} bytes exceeds the limit of {max}")]
    ChangeTooLarge { len: usize, max: usize },
    /// Planned switchover needs a partner that is reachable on the link, mirrored
    /// synchronously and reaching the tie-breaker.
    #[error("partner is not ready to take over: {0}")]
    PartnerNotReady(&'static str),
    /// `snapshot_ready` was called while no snapshot was asked for.
    #[error("no snapshot was requested")]
    NoSnapshotRequested,
    /// The snapshot is older than changes already dropped from the feed: the shell must
    /// take the snapshot after it saw `Event::SnapshotRequested`. A new one is requested.
    #[error("snapshot at change {snapshot} leaves a gap before change {next_fed}")]
    SnapshotGap { snapshot: u64, next_fed: u64 },
    /// `applied` reported a change the core never delivered.
    #[error("applied change {got} was never delivered (last delivered {delivered})")]
    NotDelivered { delivered: u64, got: u64 },
}
