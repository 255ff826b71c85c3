//! wire: the cluster frame, as carried on the heartbeat link and on the data network.
//!
//! Owns the byte layout (a view over the bytes, smoltcp style, for the fixed header), the
//! postcard body, sealing with HMAC-SHA256 under the per-cluster key, opening, and the
//! replay window. It must never hand an unauthenticated byte to the state machine, never
//! panic on input, and never accept a frame whose MAC it has not checked.
//!
//! ```text
//!  0..2   magic "DC"          13..21 sender incarnation (u64 LE)
//!  2      version (1)         21..29 sequence number (u64 LE, per incarnation, from 1)
//!  3      sender node (0, 1)  29..n-32  postcard(Body)
//!  4      path (0 link, 1 data)  n-32..n  HMAC-SHA256(key, bytes 0..n-32)
//!  5..13  cluster id (u64 LE)
//! ```

use crate::config::{Millis, NodeId};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const MAGIC: [u8; 2] = *b"DC";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 29;
pub const TAG_LEN: usize = 32;

mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..2;
    pub const VERSION: usize = 2;
    pub const SENDER: usize = 3;
    pub const PATH: usize = 4;
    pub const CLUSTER: Range<usize> = 5..13;
    pub const INCARNATION: Range<usize> = 13..21;
    pub const SEQ: Range<usize> = 21..29;
}

/// Which way a frame travels between the two nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Path {
    /// The dedicated heartbeat cable: heartbeats and the mirror stream.
    Link = 0,
    /// The data network (UDP between the nodes' own addresses): heartbeats only. It is the
    /// second opinion that lets a passive node tell "partner dead" from "cable cut".
    Data = 1,
}

impl Path {
    pub const ALL: [Path; 2] = [Path::Link, Path::Data];
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a frame was refused. Each is counted in [`crate::Stats`]; none reaches the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too short, wrong magic or version, or a body that does not decode.
    Malformed,
    /// Another pair's cluster id (checked before the MAC).
    WrongCluster,
    /// The MAC does not verify: forged or corrupted.
    Forged,
    /// Authentic but claims to come from this node (a reflection) or no node of a pair.
    WrongSender,
    /// Authentic but arrived on the other path than the one it was sealed for.
    WrongPath,
    /// From an older incarnation of the partner, or older than the replay window.
    Stale,
    /// A sequence number already seen.
    Replayed,
}

/// A received frame's fixed header, read in place.
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Checks the length, magic and version once; the accessors below then cannot fail.
    pub fn new_checked(buffer: T) -> Result<Frame<T>, Refusal> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN + TAG_LEN
            || b[field::MAGIC] != MAGIC
            || b[field::VERSION] != VERSION
        {
            return Err(Refusal::Malformed);
        }
        Ok(Frame { buffer })
    }
    fn u64_at(&self, r: core::ops::Range<usize>) -> u64 {
        let mut v = [0u8; 8];
        v.copy_from_slice(&self.buffer.as_ref()[r]);
        u64::from_le_bytes(v)
    }
    pub fn sender(&self) -> u8 {
        self.buffer.as_ref()[field::SENDER]
    }
    pub fn path(&self) -> u8 {
        self.buffer.as_ref()[field::PATH]
    }
    pub fn cluster_id(&self) -> u64 {
        self.u64_at(field::CLUSTER)
    }
    pub fn incarnation(&self) -> u64 {
        self.u64_at(field::INCARNATION)
    }
    pub fn seq(&self) -> u64 {
        self.u64_at(field::SEQ)
    }
    /// Everything the MAC covers.
    pub fn signed(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..b.len() - TAG_LEN]
    }
    pub fn body(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[HEADER_LEN..b.len() - TAG_LEN]
    }
    pub fn tag(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[b.len() - TAG_LEN..]
    }
}

/// `Vec<u8>` as postcard bytes (length + raw), decoded without a per-byte visitor.
pub(crate) mod raw_bytes {
    use serde::de::{Deserializer, Error, Visitor};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// What every frame carries after the fixed header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Body {
    /// The sender's clock when it sealed the frame; echoed back to prove a round trip.
    pub sent_at: Millis,
    /// The receiver's own `sent_at` (and the receiver's incarnation) last seen by the sender
    /// on this path: when it matches, the receiver knows the path worked both ways then.
    pub echo: Option<(u64, Millis)>,
    pub msg: Message,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Message {
    /// The sender's whole state; the newest (by sequence number) wins.
    Status(Box<Status>),
    /// Bytes `offset..offset+data.len()` of the leader's mirror stream `stream` addressed to
    /// the follower incarnation `to_inc`.
    Mirror {
        to_inc: u64,
        stream: u64,
        offset: u64,
        #[serde(with = "raw_bytes")]
        data: Vec<u8>,
    },
    /// A follower's progress on a leader's stream.
    Ack(Ack),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ack {
    /// The leader incarnation and stream this follower follows.
    pub leader_inc: u64,
    pub stream: u64,
    /// Every stream byte below this has arrived.
    pub recv_off: u64,
    /// Last change committed to the follower's store (meaningful when `established`).
    pub applied: u64,
    /// The follower's store is aligned with the stream (base matched or snapshot installed).
    pub established: bool,
}

/// The leader's mirroring mode as its partner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireMirror {
    /// Not leading.
    None,
    /// Every change is acknowledged only after the partner committed it.
    Sync,
    /// The link is lost; changes are held, not acknowledged. `id` names this episode so a
    /// partner's stale acknowledgement cannot be mistaken for one of a later episode.
    Suspended { id: u64 },
    /// Acknowledging alone (degraded), possibly resyncing the partner.
    Alone,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Status {
    /// The sender's durable state.
    pub epoch: u64,
    pub served: bool,
    pub alone: bool,
    /// Holding the service (VIP) now.
    pub serving: bool,
    /// A leader that released the service for a planned switchover.
    pub releasing: bool,
    pub mirror: WireMirror,
    /// Leader: its mirror stream to the receiver, as (follower incarnation, stream id).
    pub out_stream: Option<(u64, u64)>,
    /// Follower: the leader (incarnation) it follows, with its progress.
    pub following: Option<Ack>,
    /// Follower: holds every change the leader has acknowledged to a client.
    pub in_sync: bool,
    /// 2: served the newest epoch it knows; 1: synchronous follower; 0: neither.
    pub rank: u8,
    pub tiebreaker_ok: bool,
    /// Claim the service for this epoch (neither node serves; in contact).
    pub claim: Option<u64>,
    /// Grant the partner's claim: (epoch, claimer incarnation).
    pub grant: Option<(u64, u64)>,
    /// Planned switchover: (epoch, change seq, target incarnation): serve `epoch` from
    /// change `seq` on.
    pub handover: Option<(u64, u64, u64)>,
    /// Follower: acknowledges (leader incarnation, suspend id): it knows it is no longer
    /// synchronous and will not take over on silence.
    pub stale_ack: Option<(u64, u64)>,
    /// Follower: asks for a new stream (snapshot) instead of (leader incarnation, stream).
    pub resync: Option<(u64, u64)>,
    /// Follower: asks the leader (incarnation) to switch over to it.
    pub switchover_request: Option<u64>,
}
// Every directed field names the receiver's incarnation, so a frame recorded before the
// receiver restarted cannot act on it (its replay window starts empty after a restart).

/// A frame opened and authenticated; the replay check is the caller's (it knows the
/// partner's incarnation).
pub(crate) struct Opened {
    pub incarnation: u64,
    pub seq: u64,
    pub body: Body,
}

/// Seals and opens frames for one node.
pub(crate) struct Codec {
    mac: Hmac<Sha256>,
    cluster_id: u64,
    me: NodeId,
    incarnation: u64,
    next_seq: u64,
}

impl Codec {
    pub fn new(key: &[u8], cluster_id: u64, me: NodeId, incarnation: u64) -> Codec {
        // HMAC takes keys of any length; Config::validate has checked it is >= 16 bytes.
        let mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        Codec {
            mac,
            cluster_id,
            me,
            incarnation,
            next_seq: 1,
        }
    }

    /// Tests: continue from this sequence number.
    #[cfg(test)]
    pub fn skip_to(&mut self, seq: u64) {
        self.next_seq = seq;
    }

    pub fn seal(&mut self, path: Path, body: &Body) -> Vec<u8> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut out = Vec::with_capacity(HEADER_LEN + 64 + TAG_LEN);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.me.as_u8());
        out.push(path as u8);
        out.extend_from_slice(&self.cluster_id.to_le_bytes());
        out.extend_from_slice(&self.incarnation.to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
        // Serializing plain structs into a Vec cannot fail.
        let mut out = postcard::to_extend(body, out).unwrap_or_default();
        let tag = self.mac.clone().chain_update(&out).finalize().into_bytes();
        out.extend_from_slice(&tag);
        out
    }

    pub fn open(&self, path: Path, bytes: &[u8]) -> Result<Opened, Refusal> {
        let frame = Frame::new_checked(bytes)?;
        if frame.cluster_id() != self.cluster_id {
            return Err(Refusal::WrongCluster);
        }
        self.mac
            .clone()
            .chain_update(frame.signed())
            .verify_slice(frame.tag())
            .map_err(|_| Refusal::Forged)?;
        match NodeId::from_index(frame.sender()) {
            Some(s) if s != self.me => {}
            _ => return Err(Refusal::WrongSender),
        }
        if frame.path() != path as u8 {
            return Err(Refusal::WrongPath);
        }
        let (body, rest) =
            postcard::take_from_bytes::<Body>(frame.body()).map_err(|_| Refusal::Malformed)?;
        if !rest.is_empty() {
            return Err(Refusal::Malformed);
        }
        Ok(Opened {
            incarnation: frame.incarnation(),
            seq: frame.seq(),
            body,
        })
    }
}

/// Bits of sequence-number history kept per partner incarnation.
pub(crate) const REPLAY_WINDOW: u64 = 4096;
const WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// Sliding replay window (as in IPsec / WireGuard): sequence numbers may arrive out of
/// order within the window, each only once; older ones are stale.
#[derive(Clone)]
pub(crate) struct ReplayWindow {
    top: u64,
    bits: [u64; WORDS],
}

impl ReplayWindow {
    pub fn new() -> ReplayWindow {
        ReplayWindow {
            top: 0,
            bits: [0; WORDS],
        }
    }
    fn bit(seq: u64) -> (usize, u64) {
        let i = seq % REPLAY_WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }
    pub fn check(&self, seq: u64) -> Result<(), Refusal> {
        if seq == 0 {
            return Err(Refusal::Stale);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= REPLAY_WINDOW {
            return Err(Refusal::Stale);
        }
        let (w, m) = Self::bit(seq);
        if self.bits[w] & m != 0 {
            Err(Refusal::Replayed)
        } else {
            Ok(())
        }
    }
    /// Call only after `check` passed and the frame was accepted.
    pub fn mark(&mut self, seq: u64) {
        if seq > self.top {
            if seq - self.top >= REPLAY_WINDOW {
                self.bits = [0; WORDS];
            } else {
                for s in self.top + 1..=seq {
                    let (w, m) = Self::bit(s);
                    self.bits[w] &= !m;
                }
            }
            self.top = seq;
        }
        let (w, m) = Self::bit(seq);
        self.bits[w] |= m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_body() -> Body {
        Body {
            sent_at: 7,
            echo: Some((3, 5)),
            msg: Message::Ack(Ack {
                leader_inc: 1,
                stream: 2,
                recv_off: 3,
                applied: 4,
                established: true,
            }),
        }
    }

    #[test]
    fn seal_open_round_trip() {
        let mut a = Codec::new(&[7; 32], 9, NodeId::A, 4);
        let b = Codec::new(&[7; 32], 9, NodeId::B, 1);
        let bytes = a.seal(Path::Link, &status_body());
        let f = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!((f.sender(), f.path(), f.cluster_id()), (0, 0, 9));
        assert_eq!((f.incarnation(), f.seq()), (4, 1));
        let o = b.open(Path::Link, &bytes).unwrap();
        assert_eq!((o.incarnation, o.seq), (4, 1));
        assert_eq!(o.body, status_body());
        assert_eq!(
            a.seal(Path::Link, &status_body())[21..29],
            2u64.to_le_bytes()
        );
    }

    #[test]
    fn refusals() {
        let mut a = Codec::new(&[7; 32], 9, NodeId::A, 4);
        let b = Codec::new(&[7; 32], 9, NodeId::B, 1);
        let good = a.seal(Path::Link, &status_body());
        assert_eq!(
            b.open(Path::Link, &good[..40]).err(),
            Some(Refusal::Malformed)
        );
        let mut bad_magic = good.clone();
        bad_magic[0] ^= 1;
        assert_eq!(
            b.open(Path::Link, &bad_magic).err(),
            Some(Refusal::Malformed)
        );
        let mut other_cluster = good.clone();
        other_cluster[5] ^= 1;
        assert_eq!(
            b.open(Path::Link, &other_cluster).err(),
            Some(Refusal::WrongCluster)
        );
        for i in [3, 4, 14, 22, 30, good.len() - 1] {
            let mut flipped = good.clone();
            flipped[i] ^= 0x40;
            assert_eq!(b.open(Path::Link, &flipped).err(), Some(Refusal::Forged));
        }
        let wrong_key = Codec::new(&[8; 32], 9, NodeId::B, 1);
        assert_eq!(
            wrong_key.open(Path::Link, &good).err(),
            Some(Refusal::Forged)
        );
        assert_eq!(b.open(Path::Data, &good).err(), Some(Refusal::WrongPath));
        // A node's own frame reflected back to it.
        let a2 = Codec::new(&[7; 32], 9, NodeId::A, 5);
        assert_eq!(a2.open(Path::Link, &good).err(), Some(Refusal::WrongSender));
    }

    #[test]
    fn replay_window() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(0), Err(Refusal::Stale));
        for s in [5, 3, 9, 4] {
            w.check(s).unwrap();
            w.mark(s);
        }
        assert_eq!(w.check(3), Err(Refusal::Replayed));
        assert_eq!(w.check(9), Err(Refusal::Replayed));
        w.check(6).unwrap();
        w.mark(9 + REPLAY_WINDOW);
        assert_eq!(w.check(9), Err(Refusal::Stale));
        w.check(10).unwrap();
        w.mark(10);
        assert_eq!(w.check(10), Err(Refusal::Replayed));
        w.mark(20 + 3 * REPLAY_WINDOW);
        assert_eq!(w.check(19 + 3 * REPLAY_WINDOW), Ok(()));
    }
}
