//! Measures signing and verification throughput per algorithm on one message size
//! (a profiling aid, not a test): `cargo run --release -p duet-auth --example sign_speed [BYTES]`.

use std::time::Instant;

use duet_auth::{Signer, SigningAlgorithm};

fn main() {
    let size: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 20);
    let mut msg = vec![0x5au8; size.max(64)];
    msg[0..4].copy_from_slice(&[0xFE, b'S', b'M', b'B']);
    for alg in [
        SigningAlgorithm::HmacSha256,
        SigningAlgorithm::AesCmac,
        SigningAlgorithm::AesGmac,
    ] {
        let s = Signer::new(alg, [7u8; 16]);
        let rounds = (256 << 20) / msg.len();
        let t = Instant::now();
        for _ in 0..rounds {
            s.sign(&mut msg);
        }
        let secs = t.elapsed().as_secs_f64();
        assert!(s.verify(&msg));
        println!(
            "{alg:?}: {:.0} MB/s",
            (rounds * msg.len()) as f64 / secs / 1e6
        );
    }
}
