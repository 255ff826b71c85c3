//! GHASH (NIST SP 800-38D) for AES-GMAC message signing.
//!
//! Owns: hashing a message given in block-aligned pieces (each zero-padded to whole
//! blocks) followed by the lengths block, with the key expanded once per signing key.
//! On x86-64 CPUs with AVX-512 and VPCLMULQDQ it hashes 16 blocks per step in 512-bit
//! registers (four 128-bit lanes, one reduction per 256 bytes); elsewhere it uses the
//! RustCrypto `ghash` crate. Signing every READ and WRITE of a file copy goes through
//! here, so its speed is the server's: the portable path measured ~8 GB/s on the lab
//! machine with hot caches and about 30% of the server's CPU on a signed 1 MiB READ
//! stream.
//! Must never: hash anything but the pieces given, or differ from the portable
//! result (the tests compare both on random keys and lengths).
//!
//! The wide path computes GHASH through POLYVAL (RFC 8452, Appendix A):
//! GHASH(H, X1..Xn) = ByteReverse(POLYVAL(mulX_POLYVAL(ByteReverse(H)),
//! ByteReverse(X1)..ByteReverse(Xn))), so that carry-less products need no bit
//! reflection: a block is byte-reversed in-register as it is loaded.

use ghash::universal_hash::UniversalHash;

/// A GHASH key, expanded for the fastest implementation this CPU has.
#[derive(Clone)]
pub(crate) struct Ghash {
    imp: Imp,
}

#[derive(Clone)]
enum Imp {
    #[cfg(target_arch = "x86_64")]
    Wide(Box<x86::Powers>),
    Portable(ghash::GHash),
}

impl Ghash {
    /// Expands the hash key H (for GMAC: AES_K(0^128)).
    pub(crate) fn new(h: &[u8; 16]) -> Self {
        #[cfg(target_arch = "x86_64")]
        if x86::available() {
            return Self {
                imp: Imp::Wide(Box::new(x86::Powers::new(h))),
            };
        }
        Self::portable(h)
    }

    fn portable(h: &[u8; 16]) -> Self {
        Self {
            imp: Imp::Portable(ghash::GHash::new(&ghash::Key::from(*h))),
        }
    }

    /// GHASH over `pieces`, each zero-padded to a whole number of blocks, then the
    /// lengths block for `aad_len` bytes of additional data and no ciphertext (GMAC).
    pub(crate) fn gmac(&self, pieces: &[&[u8]], aad_len: u64) -> [u8; 16] {
        let mut lengths = [0u8; 16];
        lengths[..8].copy_from_slice(&aad_len.wrapping_mul(8).to_be_bytes());
        match &self.imp {
            #[cfg(target_arch = "x86_64")]
            Imp::Wide(powers) => powers.gmac(pieces, &lengths),
            Imp::Portable(keyed) => {
                let mut g = keyed.clone();
                for piece in pieces {
                    g.update_padded(piece);
                }
                g.update(&[ghash::Block::from(lengths)]);
                g.finalize().into()
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    /// x^63 + x^62 + x^57: the POLYVAL polynomial's terms below x^128, shifted down
    /// by 64 (the Montgomery reduction multiplies the low half by it).
    const C2: u64 = 0xC200_0000_0000_0000;

    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("vpclmulqdq")
    }

    /// POLYVAL powers of the key, h^16 first: block j of a 16-block step is
    /// multiplied by `p[j]` = h^(16-j), so `p[12..16]` serve a 4-block step and
    /// `p[15]` = h a single block.
    #[derive(Clone)]
    pub(super) struct Powers {
        p: [[u8; 16]; 16],
    }

    impl Powers {
        pub(super) fn new(ghash_key: &[u8; 16]) -> Self {
            // ByteReverse then mulX_POLYVAL (RFC 8452, Appendix A), as an integer
            // whose little-endian bytes are the POLYVAL key.
            let v = u128::from_be_bytes(*ghash_key);
            let mut h = v << 1;
            if v >> 127 == 1 {
                h ^= (0xc2u128 << 120) | 1;
            }
            let mut p = [[0u8; 16]; 16];
            p[15] = h.to_le_bytes();
            for j in (0..15).rev() {
                // SAFETY: `available()` was true before any Powers was built.
                p[j] = unsafe { mul_bytes(&p[j + 1], &p[15]) };
            }
            Self { p }
        }

        pub(super) fn gmac(&self, pieces: &[&[u8]], lengths: &[u8; 16]) -> [u8; 16] {
            // SAFETY: a Powers exists only when `available()` said the CPU has
            // every feature these functions are compiled for.
            unsafe {
                let mut y = _mm_setzero_si128();
                for piece in pieces {
                    y = update(&self.p, y, piece);
                }
                y = update(&self.p, y, lengths);
                let mut out = [0u8; 16];
                _mm_storeu_si128(out.as_mut_ptr().cast(), _mm_shuffle_epi8(y, bswap128()));
                out
            }
        }
    }

    #[target_feature(enable = "sse2,ssse3")]
    fn bswap128() -> __m128i {
        _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    }

    /// POLYVAL's dot(a, b) = a * b * x^-128 of two keys given as bytes.
    #[target_feature(enable = "sse2,pclmulqdq")]
    unsafe fn mul_bytes(a: &[u8; 16], b: &[u8; 16]) -> [u8; 16] {
        let a = _mm_loadu_si128(a.as_ptr().cast());
        let b = _mm_loadu_si128(b.as_ptr().cast());
        let mut out = [0u8; 16];
        _mm_storeu_si128(out.as_mut_ptr().cast(), dot(a, b));
        out
    }

    /// dot(a, b): schoolbook carry-less product, then reduction.
    #[target_feature(enable = "sse2,pclmulqdq")]
    fn dot(a: __m128i, b: __m128i) -> __m128i {
        let lo = _mm_clmulepi64_si128(a, b, 0x00);
        let hi = _mm_clmulepi64_si128(a, b, 0x11);
        let mid = _mm_xor_si128(
            _mm_clmulepi64_si128(a, b, 0x01),
            _mm_clmulepi64_si128(a, b, 0x10),
        );
        reduce(
            _mm_xor_si128(lo, _mm_slli_si128(mid, 8)),
            _mm_xor_si128(hi, _mm_srli_si128(mid, 8)),
        )
    }

    /// (hi * x^128 + lo) * x^-128 mod x^128 + x^127 + x^126 + x^121 + 1: two
    /// Montgomery steps of 64 bits. The modulus is 1 mod x^64, so each step adds the
    /// low quadword times the modulus (clearing it) and drops it: the low quadword
    /// moves up by 64 and its product with C2 is added.
    #[target_feature(enable = "sse2,pclmulqdq")]
    fn reduce(lo: __m128i, hi: __m128i) -> __m128i {
        let poly = _mm_set_epi64x(C2 as i64, 1);
        let t = _mm_clmulepi64_si128(lo, poly, 0x10);
        let lo = _mm_xor_si128(_mm_shuffle_epi32(lo, 0x4e), t);
        let t = _mm_clmulepi64_si128(lo, poly, 0x10);
        let lo = _mm_xor_si128(_mm_shuffle_epi32(lo, 0x4e), t);
        _mm_xor_si128(hi, lo)
    }

    /// XOR of a 512-bit register's four 128-bit lanes.
    #[target_feature(enable = "avx512f")]
    fn fold(v: __m512i) -> __m128i {
        let s = _mm256_xor_si256(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
        _mm_xor_si128(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s))
    }

    /// Unreduced products of four block lanes with four key lanes, accumulated.
    #[derive(Clone, Copy)]
    struct Acc {
        lo: __m512i,
        hi: __m512i,
        mid: __m512i,
    }

    #[target_feature(enable = "avx512f,vpclmulqdq")]
    fn mul4(d: __m512i, k: __m512i) -> Acc {
        Acc {
            lo: _mm512_clmulepi64_epi128(d, k, 0x00),
            hi: _mm512_clmulepi64_epi128(d, k, 0x11),
            mid: _mm512_xor_si512(
                _mm512_clmulepi64_epi128(d, k, 0x01),
                _mm512_clmulepi64_epi128(d, k, 0x10),
            ),
        }
    }

    #[target_feature(enable = "avx512f,vpclmulqdq")]
    fn add(a: Acc, b: Acc) -> Acc {
        Acc {
            lo: _mm512_xor_si512(a.lo, b.lo),
            hi: _mm512_xor_si512(a.hi, b.hi),
            mid: _mm512_xor_si512(a.mid, b.mid),
        }
    }

    /// Folds the lanes' products into one and reduces it: the new hash state.
    #[target_feature(enable = "avx512f,avx512bw,pclmulqdq")]
    fn finish(a: Acc) -> __m128i {
        let lo = _mm512_xor_si512(a.lo, _mm512_bslli_epi128::<8>(a.mid));
        let hi = _mm512_xor_si512(a.hi, _mm512_bsrli_epi128::<8>(a.mid));
        reduce(fold(lo), fold(hi))
    }

    /// Four blocks from `ptr`, byte-reversed in each lane.
    ///
    /// # Safety
    /// `ptr` must be valid for reading 64 bytes.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn load4(ptr: *const u8, bswap: __m512i) -> __m512i {
        _mm512_shuffle_epi8(_mm512_loadu_si512(ptr.cast()), bswap)
    }

    /// Hashes `data` (zero-padded to whole blocks) into the state `y`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F/BW, VPCLMULQDQ and PCLMULQDQ.
    #[target_feature(enable = "sse2,ssse3,pclmulqdq,avx512f,avx512bw,vpclmulqdq")]
    unsafe fn update(p: &[[u8; 16]; 16], mut y: __m128i, data: &[u8]) -> __m128i {
        let bswap = _mm512_broadcast_i32x4(bswap128());
        let key = |i: usize| _mm512_loadu_si512(p[4 * i..].as_ptr().cast());
        let (k0, k1, k2, k3) = (key(0), key(1), key(2), key(3));

        let mut steps = data.chunks_exact(256);
        for step in &mut steps {
            let ptr = step.as_ptr();
            // The state joins the first block; the other lanes get zero.
            let d0 = _mm512_xor_si512(load4(ptr, bswap), _mm512_zextsi128_si512(y));
            let acc = add(
                add(mul4(d0, k0), mul4(load4(ptr.add(64), bswap), k1)),
                add(
                    mul4(load4(ptr.add(128), bswap), k2),
                    mul4(load4(ptr.add(192), bswap), k3),
                ),
            );
            y = finish(acc);
        }
        let mut quads = steps.remainder().chunks_exact(64);
        for quad in &mut quads {
            let d = _mm512_xor_si512(load4(quad.as_ptr(), bswap), _mm512_zextsi128_si512(y));
            y = finish(mul4(d, k3));
        }
        let h = _mm_loadu_si128(p[15].as_ptr().cast());
        for block in quads.remainder().chunks(16) {
            let mut b = [0u8; 16];
            b[..block.len()].copy_from_slice(block);
            let x = _mm_shuffle_epi8(_mm_loadu_si128(b.as_ptr().cast()), bswap128());
            y = dot(_mm_xor_si128(y, x), h);
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A 1 MiB message (a signed READ's size) with a ragged tail through all three
    /// step sizes of the wide path; the known-answer checks of whole GMAC signatures
    /// (Microsoft's vector, real captures) are in crypto.rs and lib.rs.
    #[test]
    fn a_large_message_hashes_the_same_both_ways() {
        let h = [0x42u8; 16];
        let msg: Vec<u8> = (0..(1 << 20) + 64 + 17)
            .map(|i| (i * 7 + 3) as u8)
            .collect();
        let pieces: [&[u8]; 3] = [&msg[..48], &[0u8; 16], &msg[64..]];
        let len = msg.len() as u64;
        assert_eq!(
            Ghash::new(&h).gmac(&pieces, len),
            Ghash::portable(&h).gmac(&pieces, len)
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_lab_machine_takes_the_wide_path() {
        // Not a speed check: says which path the other tests exercised here.
        if x86::available() {
            assert!(matches!(Ghash::new(&[1; 16]).imp, Imp::Wide(_)));
        }
    }

    proptest! {
        #[test]
        fn wide_and_portable_agree(
            key in proptest::array::uniform16(any::<u8>()),
            a in proptest::collection::vec(any::<u8>(), 0..80),
            b in proptest::collection::vec(any::<u8>(), 0..700),
            c_len in 0usize..5000,
            seed in any::<u8>(),
        ) {
            let c: Vec<u8> = (0..c_len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
            let pieces: [&[u8]; 3] = [&a, &b, &c];
            let len = (a.len() + b.len() + c.len()) as u64;
            prop_assert_eq!(
                Ghash::new(&key).gmac(&pieces, len),
                Ghash::portable(&key).gmac(&pieces, len)
            );
        }
    }
}
