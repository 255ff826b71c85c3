//! Property tests: whatever bytes arrive, `handle_frame` neither panics nor applies them.

use duet_cluster::sim::Pair;
use duet_cluster::{Config, DurableState, Node, NodeId, Path};
use proptest::prelude::*;

fn node() -> Node {
    let cfg = Config::new(0xD0E7_0001, vec![0x42; 32], NodeId::B);
    Node::new(cfg, 0, 1, DurableState::default(), 0).expect("valid config")
}

/// Real frames from a running pair (heartbeats, mirror segments, acks), sent to b.
fn real_frames() -> Vec<(Path, Vec<u8>)> {
    let mut p = Pair::scripted(|_| {}).unwrap_or_else(|e| panic!("{e}"));
    p.capture_all(true);
    for _ in 0..20 {
        p.submit_sized(0, 3_000).unwrap_or_else(|e| panic!("{e}"));
        p.advance(20).unwrap_or_else(|e| panic!("{e}"));
    }
    p.captured()
        .into_iter()
        .filter(|(to, _, _)| *to == 1)
        .map(|(_, path, bytes)| (path, bytes))
        .collect()
}

fn path(link: bool) -> Path {
    if link {
        Path::Link
    } else {
        Path::Data
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_refused_without_panic(
        frames in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..2000)), 1..20),
    ) {
        let mut n = node();
        let mut now = 0;
        for (link, bytes) in &frames {
            now += 7;
            n.handle_frame(now, path(*link), bytes);
            n.handle_timeout(now);
            while n.poll_transmit().is_some() {}
            while n.poll_event().is_some() {}
        }
        prop_assert_eq!(n.stats().frames_accepted, 0);
        prop_assert_eq!(n.stats().refused(), frames.len() as u64);
        prop_assert!(!n.is_serving());
    }

    #[test]
    fn a_header_that_looks_right_does_not_get_past_the_mac(
        body in prop::collection::vec(any::<u8>(), 32..600),
        sender in 0u8..3,
        inc in any::<u64>(),
        seq in any::<u64>(),
    ) {
        let mut bytes = b"DC\x01".to_vec();
        bytes.push(sender);
        bytes.push(0);
        bytes.extend(0xD0E7_0001u64.to_le_bytes());
        bytes.extend(inc.to_le_bytes());
        bytes.extend(seq.to_le_bytes());
        bytes.extend(&body);
        let mut n = node();
        n.handle_frame(1, Path::Link, &bytes);
        prop_assert_eq!(n.stats().refused_forged, 1);
    }

    #[test]
    fn mutated_real_frames_are_refused(
        picks in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), 1u8..=255), 1..30),
        truncate in any::<bool>(),
    ) {
        let frames = real_frames();
        prop_assume!(!frames.is_empty());
        let mut n = node();
        for (i, (f, at, flip)) in picks.iter().enumerate() {
            let (p, mut bytes) = frames[f.index(frames.len())].clone();
            if truncate && i % 2 == 1 {
                bytes.truncate(at.index(bytes.len()));
            } else {
                let k = at.index(bytes.len());
                bytes[k] ^= flip;
            }
            n.handle_frame(i as u64, p, &bytes);
        }
        prop_assert_eq!(n.stats().frames_accepted, 0);
        prop_assert_eq!(n.stats().refused(), picks.len() as u64);
    }
}
