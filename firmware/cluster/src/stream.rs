//! stream: the mirror stream from the serving node (leader) to its partner (follower).
//!
//! The stream is a reliable, ordered byte stream carried in `Mirror` frames on the link:
//! the leader keeps every byte until the follower acknowledges it and sends it again
//! (go-back-N) after `retransmit_after` without progress; the follower reassembles bytes in
//! order (keeping a bounded number of early segments) and parses items out of them. Items
//! are `[u32 LE length][postcard(Item)]`, so a change or snapshot larger than a frame simply
//! spans frames, and many small changes travel in one frame (batches).
//!
//! A stream starts with `Start`: either a snapshot follows (then the feed after it), or the
//! follower's store must already be at `base_seq` (planned switchover). This module never
//! decides roles or acknowledges anything to a client; it only moves bytes and checks order.

use crate::config::Millis;
use crate::wire::{raw_bytes, Ack};
use crate::ClusterError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// One entry of the state store's change feed, as opaque bytes with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: u64,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Item {
    Start {
        base_seq: u64,
        snapshot: bool,
    },
    SnapshotChunk(#[serde(with = "raw_bytes")] Vec<u8>),
    SnapshotEnd {
        seq: u64,
    },
    Change {
        seq: u64,
        #[serde(with = "raw_bytes")]
        data: Vec<u8>,
    },
}

/// Snapshot bytes per item.
const SNAPSHOT_CHUNK: usize = 16 * 1024;
/// Retransmission timer doublings at most (40 ms becomes 1.28 s).
const MAX_BACKOFF: u32 = 5;
/// Bytes of early (out-of-order) segments a follower keeps.
const MAX_EARLY_BYTES: usize = 256 * 1024;
/// Item overhead allowed on top of the largest payload (postcard tags and lengths).
const ITEM_OVERHEAD: usize = 32;

/// The leader's side of one stream to one follower incarnation.
pub(crate) struct OutStream {
    pub id: u64,
    pub partner_inc: u64,
    /// Bytes from `acked_off` to the end of the stream.
    buf: VecDeque<u8>,
    acked_off: u64,
    send_off: u64,
    rto_at: Option<Millis>,
    /// Retransmissions since the last progress: the timer doubles with each, up to
    /// `MAX_BACKOFF`, so a partner that is away costs little.
    backoff: u32,
    /// Follower's last committed change (valid once `partner_established`).
    pub partner_applied: u64,
    pub partner_established: bool,
    /// `Start { snapshot: true }` is written; the shell has not delivered the snapshot yet.
    pub awaiting_snapshot: bool,
    /// Changes fed while waiting for the snapshot.
    tail: Vec<(u64, Vec<u8>)>,
    /// The buffer grew past its bound: the stream is useless and must be replaced.
    pub overflow: bool,
}

impl OutStream {
    fn empty(id: u64, partner_inc: u64) -> OutStream {
        OutStream {
            id,
            partner_inc,
            buf: VecDeque::new(),
            acked_off: 0,
            send_off: 0,
            rto_at: None,
            backoff: 0,
            partner_applied: 0,
            partner_established: false,
            awaiting_snapshot: false,
            tail: Vec::new(),
            overflow: false,
        }
    }

    /// A stream that starts with a snapshot (the shell is asked for it).
    pub fn with_snapshot(id: u64, partner_inc: u64) -> OutStream {
        let mut s = OutStream::empty(id, partner_inc);
        s.write(&Item::Start {
            base_seq: 0,
            snapshot: true,
        });
        s.awaiting_snapshot = true;
        s
    }

    /// A stream for a follower whose store is already at `base_seq` (planned switchover).
    pub fn aligned(id: u64, partner_inc: u64, base_seq: u64) -> OutStream {
        let mut s = OutStream::empty(id, partner_inc);
        s.write(&Item::Start {
            base_seq,
            snapshot: false,
        });
        s
    }

    fn write(&mut self, item: &Item) {
        let encoded = postcard::to_stdvec(item).unwrap_or_default();
        let len = u32::try_from(encoded.len()).unwrap_or(u32::MAX);
        self.buf.extend(len.to_le_bytes());
        self.buf.extend(encoded);
    }

    fn end_off(&self) -> u64 {
        self.acked_off + self.buf.len() as u64
    }

    /// Bytes waiting in the stream (sent or not) and not yet acknowledged.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.tail.iter().map(|(_, d)| d.len()).sum::<usize>()
    }

    /// Appends one change of the feed (the caller checks the sequence is contiguous).
    pub fn push_change(&mut self, seq: u64, data: &[u8], max_buffer: usize) {
        if self.awaiting_snapshot {
            self.tail.push((seq, data.to_vec()));
        } else {
            self.write(&Item::Change {
                seq,
                data: data.to_vec(),
            });
        }
        if self.buffered() > max_buffer {
            self.overflow = true;
        }
    }

    /// The shell's snapshot as of change `seq`; `last_fed` is the last change fed so far.
    /// Every change after `seq` must be in the tail (fed after the stream started).
    pub fn snapshot_ready(
        &mut self,
        seq: u64,
        data: &[u8],
        last_fed: u64,
    ) -> Result<(), ClusterError> {
        if !self.awaiting_snapshot {
            return Err(ClusterError::NoSnapshotRequested);
        }
        let tail: Vec<(u64, Vec<u8>)> = std::mem::take(&mut self.tail)
            .into_iter()
            .filter(|(s, _)| *s > seq)
            .collect();
        let contiguous = tail
            .iter()
            .enumerate()
            .all(|(i, (s, _))| Some(*s) == seq.checked_add(1 + i as u64));
        let covers = match tail.last() {
            Some((s, _)) => *s == last_fed,
            None => seq >= last_fed,
        };
        if !contiguous || !covers {
            return Err(ClusterError::SnapshotGap {
                snapshot: seq,
                next_fed: tail.first().map_or(last_fed, |(s, _)| *s),
            });
        }
        self.awaiting_snapshot = false;
        for chunk in data.chunks(SNAPSHOT_CHUNK) {
            self.write(&Item::SnapshotChunk(chunk.to_vec()));
        }
        self.write(&Item::SnapshotEnd { seq });
        for (s, d) in tail {
            self.write(&Item::Change { seq: s, data: d });
        }
        Ok(())
    }

    /// Follower progress on this stream.
    pub fn on_ack(&mut self, now: Millis, ack: &Ack, rto: Millis) {
        if ack.recv_off > self.acked_off && ack.recv_off <= self.end_off() {
            let n = (ack.recv_off - self.acked_off) as usize;
            self.buf.drain(..n);
            self.acked_off = ack.recv_off;
            self.send_off = self.send_off.max(self.acked_off);
            self.backoff = 0;
            self.rto_at = (self.send_off > self.acked_off).then_some(now + rto);
        }
        if ack.established {
            self.partner_established = true;
            self.partner_applied = self.partner_applied.max(ack.applied);
        }
    }

    /// The next segment to send, if the window allows: (offset, bytes).
    pub fn next_segment(
        &mut self,
        now: Millis,
        max_data: usize,
        window: usize,
        rto: Millis,
    ) -> Option<(u64, Vec<u8>)> {
        let in_flight = (self.send_off - self.acked_off) as usize;
        let end = self.end_off();
        if self.send_off >= end || in_flight >= window {
            return None;
        }
        let n = max_data
            .min((end - self.send_off) as usize)
            .min(window - in_flight);
        let start = (self.send_off - self.acked_off) as usize;
        let (a, b) = self.buf.as_slices();
        let mut data = Vec::with_capacity(n);
        if start < a.len() {
            let take = n.min(a.len() - start);
            data.extend_from_slice(&a[start..start + take]);
            data.extend_from_slice(&b[..n - take]);
        } else {
            let s = start - a.len();
            data.extend_from_slice(&b[s..s + n]);
        }
        let offset = self.send_off;
        self.send_off += n as u64;
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.timer(rto));
        }
        Some((offset, data))
    }

    /// Go back to the first unacknowledged byte when the retransmission timer fired.
    /// Returns whether it did.
    /// `link_alive`: heartbeats make the round trip, so losses are just losses: keep the
    /// base timer. Otherwise back off.
    pub fn on_timeout(&mut self, now: Millis, rto: Millis, link_alive: bool) -> bool {
        if link_alive {
            self.backoff = 0;
        }
        match self.rto_at {
            Some(t) if now >= t => {
                if self.send_off > self.acked_off {
                    self.send_off = self.acked_off;
                    if !link_alive {
                        self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
                    }
                    self.rto_at = Some(now + self.timer(rto));
                    true
                } else {
                    self.rto_at = None;
                    false
                }
            }
            _ => false,
        }
    }

    fn timer(&self, rto: Millis) -> Millis {
        rto.saturating_mul(1 << self.backoff)
    }

    pub fn rto_at(&self) -> Option<Millis> {
        self.rto_at
    }
}

/// What a follower hands to its shell, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    Snapshot { seq: u64, data: Vec<u8> },
    Change(Change),
}

/// The stream is unusable (out-of-order change, wrong base, undecodable item): the
/// follower asks for a new one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StreamBroken;

enum Phase {
    ExpectStart,
    Snapshot(Vec<u8>),
    Changes,
}

/// The follower's side of one stream.
pub(crate) struct InStream {
    pub id: u64,
    pub leader_inc: u64,
    pub recv_off: u64,
    early: BTreeMap<u64, Vec<u8>>,
    early_bytes: usize,
    unparsed: Vec<u8>,
    phase: Phase,
    /// The follower's store is aligned with the stream: base matched, or the snapshot was
    /// committed by the shell.
    pub established: bool,
    /// A snapshot was delivered; established once the shell reports it committed.
    pub install_pending: Option<u64>,
}

impl InStream {
    pub fn new(id: u64, leader_inc: u64) -> InStream {
        InStream {
            id,
            leader_inc,
            recv_off: 0,
            early: BTreeMap::new(),
            early_bytes: 0,
            unparsed: Vec::new(),
            phase: Phase::ExpectStart,
            established: false,
            install_pending: None,
        }
    }

    /// One segment; `local_seq` is the last change the follower's store has or will have
    /// once it commits what was delivered. Deliveries are appended to `out`.
    pub fn on_segment(
        &mut self,
        offset: u64,
        data: &[u8],
        local_seq: &mut u64,
        max_item: usize,
        out: &mut Vec<Delivery>,
    ) -> Result<(), StreamBroken> {
        let end = offset.saturating_add(data.len() as u64);
        if end <= self.recv_off {
            return Ok(());
        }
        if offset > self.recv_off {
            if self.early_bytes + data.len() <= MAX_EARLY_BYTES && !self.early.contains_key(&offset)
            {
                self.early_bytes += data.len();
                self.early.insert(offset, data.to_vec());
            }
            return Ok(());
        }
        self.take(offset, data);
        while let Some((&off, _)) = self.early.first_key_value() {
            if off > self.recv_off {
                break;
            }
            let Some((off, seg)) = self.early.pop_first() else {
                break;
            };
            self.early_bytes -= seg.len();
            self.take(off, &seg);
        }
        self.parse(local_seq, max_item, out)
    }

    fn take(&mut self, offset: u64, data: &[u8]) {
        let skip = (self.recv_off - offset) as usize;
        if skip < data.len() {
            self.unparsed.extend_from_slice(&data[skip..]);
            self.recv_off = offset + data.len() as u64;
        }
    }

    fn parse(
        &mut self,
        local_seq: &mut u64,
        max_item: usize,
        out: &mut Vec<Delivery>,
    ) -> Result<(), StreamBroken> {
        let mut pos = 0;
        let result = loop {
            let rest = &self.unparsed[pos..];
            if rest.len() < 4 {
                break Ok(());
            }
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len > max_item.max(SNAPSHOT_CHUNK) + ITEM_OVERHEAD {
                break Err(StreamBroken);
            }
            if rest.len() < 4 + len {
                break Ok(());
            }
            let item = match postcard::from_bytes::<Item>(&rest[4..4 + len]) {
                Ok(i) => i,
                Err(_) => break Err(StreamBroken),
            };
            pos += 4 + len;
            if let Err(e) = self.item(item, local_seq, out) {
                break Err(e);
            }
        };
        self.unparsed.drain(..pos);
        result
    }

    fn item(
        &mut self,
        item: Item,
        local_seq: &mut u64,
        out: &mut Vec<Delivery>,
    ) -> Result<(), StreamBroken> {
        match (&mut self.phase, item) {
            (Phase::ExpectStart, Item::Start { snapshot: true, .. }) => {
                self.phase = Phase::Snapshot(Vec::new());
            }
            (Phase::ExpectStart, Item::Start { base_seq, .. }) => {
                if base_seq != *local_seq {
                    return Err(StreamBroken);
                }
                self.established = true;
                self.phase = Phase::Changes;
            }
            (Phase::Snapshot(buf), Item::SnapshotChunk(c)) => buf.extend_from_slice(&c),
            (Phase::Snapshot(buf), Item::SnapshotEnd { seq }) => {
                let data = std::mem::take(buf);
                out.push(Delivery::Snapshot { seq, data });
                *local_seq = seq;
                self.install_pending = Some(seq);
                self.phase = Phase::Changes;
            }
            (Phase::Changes, Item::Change { seq, data }) => {
                if seq != local_seq.wrapping_add(1) {
                    return Err(StreamBroken);
                }
                *local_seq = seq;
                out.push(Delivery::Change(Change { seq, data }));
            }
            _ => return Err(StreamBroken),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_segments_never_panic(
            segs in prop::collection::vec((0u64..20_000, prop::collection::vec(any::<u8>(), 0..3000)), 0..40),
            local in 0u64..10,
        ) {
            let mut inn = InStream::new(1, 1);
            let mut local = local;
            let mut out = Vec::new();
            for (off, data) in segs {
                if inn.on_segment(off, &data, &mut local, 4096, &mut out).is_err() {
                    break;
                }
            }
        }
    }

    fn pump(out: &mut OutStream, inn: &mut InStream, local: &mut u64, now: u64) -> Vec<Delivery> {
        let mut got = Vec::new();
        while let Some((off, data)) = out.next_segment(now, 100, 10_000, 50) {
            inn.on_segment(off, &data, local, 1 << 20, &mut got)
                .unwrap();
            let ack = Ack {
                leader_inc: 7,
                stream: inn.id,
                recv_off: inn.recv_off,
                applied: 0,
                established: false,
            };
            out.on_ack(now, &ack, 50);
        }
        got
    }

    #[test]
    fn snapshot_then_tail_in_order() {
        let mut out = OutStream::with_snapshot(1, 7);
        out.push_change(11, b"eleven", 1 << 20);
        out.push_change(12, b"twelve", 1 << 20);
        // Snapshot taken at 11: 11 is in it, 12 must follow.
        out.snapshot_ready(11, &[9u8; 40_000], 12).unwrap();
        out.push_change(13, b"thirteen", 1 << 20);
        let mut inn = InStream::new(1, 7);
        let mut local = 3;
        let got = pump(&mut out, &mut inn, &mut local, 0);
        assert_eq!(got.len(), 3);
        assert!(matches!(&got[0], Delivery::Snapshot { seq: 11, data } if data.len() == 40_000));
        assert_eq!(
            got[1],
            Delivery::Change(Change {
                seq: 12,
                data: b"twelve".to_vec()
            })
        );
        assert_eq!(local, 13);
        assert!(!inn.established && inn.install_pending == Some(11));
    }

    #[test]
    fn snapshot_gap_is_refused() {
        let mut out = OutStream::with_snapshot(1, 7);
        out.push_change(12, b"x", 1 << 20);
        assert!(matches!(
            out.snapshot_ready(10, b"", 12),
            Err(ClusterError::SnapshotGap { .. })
        ));
        let mut out = OutStream::with_snapshot(1, 7);
        // Changes up to 12 were fed before the stream started: a snapshot at 10 misses them.
        assert!(out.snapshot_ready(10, b"", 12).is_err());
        let mut out = OutStream::with_snapshot(1, 7);
        out.snapshot_ready(12, b"", 12).unwrap();
    }

    #[test]
    fn loss_reorder_and_retransmit() {
        let mut out = OutStream::aligned(2, 7, 5);
        for s in 6..40 {
            out.push_change(s, &vec![s as u8; (s as usize) * 7], 1 << 20);
        }
        let mut inn = InStream::new(2, 7);
        let mut local = 5;
        let mut segs = Vec::new();
        while let Some(s) = out.next_segment(0, 90, 1 << 20, 50) {
            segs.push(s);
        }
        // Deliver in reverse, dropping every third segment.
        let mut got = Vec::new();
        for (i, (off, data)) in segs.iter().enumerate().rev() {
            if i % 3 != 1 {
                inn.on_segment(*off, data, &mut local, 1 << 20, &mut got)
                    .unwrap();
            }
        }
        let ack = |inn: &InStream| Ack {
            leader_inc: 7,
            stream: 2,
            recv_off: inn.recv_off,
            applied: 0,
            established: true,
        };
        out.on_ack(10, &ack(&inn), 50);
        for round in 0..20u64 {
            let now = 100 + round * 100;
            out.on_timeout(now, 50, true);
            while let Some((off, data)) = out.next_segment(now, 90, 1 << 20, 50) {
                inn.on_segment(off, &data, &mut local, 1 << 20, &mut got)
                    .unwrap();
            }
            out.on_ack(now, &ack(&inn), 50);
        }
        assert_eq!(local, 39);
        assert_eq!(got.len(), 34);
        for (i, d) in got.iter().enumerate() {
            let Delivery::Change(c) = d else { panic!() };
            assert_eq!(c.seq, 6 + i as u64);
            assert_eq!(c.data.len(), c.seq as usize * 7);
        }
        assert!(out.buffered() == 0 && out.rto_at().is_none());
    }

    #[test]
    fn wrong_base_or_gap_breaks_the_stream() {
        let mut out = OutStream::aligned(2, 7, 5);
        out.push_change(6, b"a", 1 << 20);
        let mut inn = InStream::new(2, 7);
        let mut local = 4;
        let (off, data) = out.next_segment(0, 1000, 1 << 20, 50).unwrap();
        assert_eq!(
            inn.on_segment(off, &data, &mut local, 1 << 20, &mut Vec::new()),
            Err(StreamBroken)
        );
        let mut inn = InStream::new(2, 7);
        let mut local = 5;
        let mut bad = Vec::new();
        let item = postcard::to_stdvec(&Item::Change {
            seq: 9,
            data: vec![],
        })
        .unwrap();
        bad.extend((item.len() as u32).to_le_bytes());
        bad.extend(item);
        let mut got = Vec::new();
        inn.on_segment(0, &data, &mut local, 1 << 20, &mut got)
            .unwrap();
        assert_eq!(
            inn.on_segment(data.len() as u64, &bad, &mut local, 1 << 20, &mut got),
            Err(StreamBroken)
        );
        let mut inn = InStream::new(2, 7);
        assert_eq!(
            inn.on_segment(0, &[255, 255, 255, 255, 0], &mut local, 1 << 20, &mut got),
            Err(StreamBroken)
        );
    }
}
