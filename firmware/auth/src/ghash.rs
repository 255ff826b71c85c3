//! GHASH (NIST SP 800-38D) for AES-GMAC message signing.
//!
//! Owns: hashing a message given in block-aligned pieces (each zero-padded to whole
//! blocks) followed by the lengths block, with the key expanded once per signing key.
//! On x86-64 CPUs with VPCLMULQDQ it hashes 16 blocks per step in 512-bit registers
//! (AVX-512: four 128-bit lanes each, one reduction per 256 bytes) or 8 per step in
//! 256-bit ones (AVX2, e.g. the Atom-class cores of small NAS boards: one reduction per
//! 128 bytes); elsewhere it uses the RustCrypto `ghash` crate (CLMUL or PMULL inside). Signing every READ and WRITE of a file copy goes through
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
        if let Some(width) = x86::width() {
            return Self::wide(h, width);
        }
        Self::portable(h)
    }

    #[cfg(target_arch = "x86_64")]
    fn wide(h: &[u8; 16], width: x86::Width) -> Self {
        Self {
            imp: Imp::Wide(Box::new(x86::Powers::new(h, width))),
        }
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

    /// Register width of the wide path.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Width {
        /// AVX2 + VPCLMULQDQ: 8 blocks per step.
        Ymm,
        /// AVX-512F/BW + VPCLMULQDQ: 16 blocks per step.
        Zmm,
    }

    /// The widest path this CPU runs, if any.
    pub(super) fn width() -> Option<Width> {
        use std::arch::is_x86_feature_detected as has;
        if !(has!("pclmulqdq") && has!("avx2") && has!("vpclmulqdq")) {
            return None;
        }
        Some(if has!("avx512f") && has!("avx512bw") {
            Width::Zmm
        } else {
            Width::Ymm
        })
    }

    /// POLYVAL powers of the key, h^16 first: block j of a 16-block step is
    /// multiplied by `p[j]` = h^(16-j), so `p[8..16]` serve an 8-block step, `p[12..16]`
    /// a 4-block one, `p[14..16]` a pair and `p[15]` = h a single block.
    #[derive(Clone)]
    pub(super) struct Powers {
        p: [[u8; 16]; 16],
        pub(super) width: Width,
    }

    impl Powers {
        /// `width` must be what [`width`] returned (or narrower).
        pub(super) fn new(ghash_key: &[u8; 16], width: Width) -> Self {
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
                // SAFETY: `width()` found PCLMULQDQ before any Powers was built.
                p[j] = unsafe { mul_bytes(&p[j + 1], &p[15]) };
            }
            Self { p, width }
        }

        pub(super) fn gmac(&self, pieces: &[&[u8]], lengths: &[u8; 16]) -> [u8; 16] {
            // SAFETY: a Powers exists only with a width `width()` found, and each
            // update function needs exactly that width's features.
            unsafe {
                let update = match self.width {
                    Width::Zmm => update512,
                    Width::Ymm => update256,
                };
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
    unsafe fn update512(p: &[[u8; 16]; 16], mut y: __m128i, data: &[u8]) -> __m128i {
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
        singles(p, y, quads.remainder())
    }

    /// The last blocks one at a time (the final one zero-padded).
    #[target_feature(enable = "sse2,ssse3,pclmulqdq")]
    fn singles(p: &[[u8; 16]; 16], mut y: __m128i, data: &[u8]) -> __m128i {
        // SAFETY: p[15] is 16 readable bytes.
        let h = unsafe { _mm_loadu_si128(p[15].as_ptr().cast()) };
        for block in data.chunks(16) {
            let mut b = [0u8; 16];
            b[..block.len()].copy_from_slice(block);
            // SAFETY: b is 16 readable bytes.
            let x = _mm_shuffle_epi8(unsafe { _mm_loadu_si128(b.as_ptr().cast()) }, bswap128());
            y = dot(_mm_xor_si128(y, x), h);
        }
        y
    }

    /// Unreduced products of two block lanes with two key lanes, accumulated.
    #[derive(Clone, Copy)]
    struct Acc2 {
        lo: __m256i,
        hi: __m256i,
        mid: __m256i,
    }

    #[target_feature(enable = "avx2,vpclmulqdq")]
    fn mul2(d: __m256i, k: __m256i) -> Acc2 {
        Acc2 {
            lo: _mm256_clmulepi64_epi128(d, k, 0x00),
            hi: _mm256_clmulepi64_epi128(d, k, 0x11),
            mid: _mm256_xor_si256(
                _mm256_clmulepi64_epi128(d, k, 0x01),
                _mm256_clmulepi64_epi128(d, k, 0x10),
            ),
        }
    }

    #[target_feature(enable = "avx2")]
    fn add2(a: Acc2, b: Acc2) -> Acc2 {
        Acc2 {
            lo: _mm256_xor_si256(a.lo, b.lo),
            hi: _mm256_xor_si256(a.hi, b.hi),
            mid: _mm256_xor_si256(a.mid, b.mid),
        }
    }

    /// Folds the two lanes' products into one and reduces it.
    #[target_feature(enable = "avx2,pclmulqdq")]
    fn finish2(a: Acc2) -> __m128i {
        let lo = _mm256_xor_si256(a.lo, _mm256_bslli_epi128::<8>(a.mid));
        let hi = _mm256_xor_si256(a.hi, _mm256_bsrli_epi128::<8>(a.mid));
        reduce(fold2(lo), fold2(hi))
    }

    /// XOR of a 256-bit register's two 128-bit lanes.
    #[target_feature(enable = "avx2")]
    fn fold2(v: __m256i) -> __m128i {
        _mm_xor_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v))
    }

    /// Two blocks from `ptr`, byte-reversed in each lane.
    ///
    /// # Safety
    /// `ptr` must be valid for reading 32 bytes.
    #[target_feature(enable = "avx2")]
    unsafe fn load2(ptr: *const u8, bswap: __m256i) -> __m256i {
        _mm256_shuffle_epi8(_mm256_loadu_si256(ptr.cast()), bswap)
    }

    /// [`update512`] in 256-bit registers: 8 blocks per step.
    ///
    /// # Safety
    /// The CPU must have AVX2, VPCLMULQDQ and PCLMULQDQ.
    #[target_feature(enable = "sse2,ssse3,pclmulqdq,avx2,vpclmulqdq")]
    unsafe fn update256(p: &[[u8; 16]; 16], mut y: __m128i, data: &[u8]) -> __m128i {
        let bswap = _mm256_broadcastsi128_si256(bswap128());
        let key = |i: usize| _mm256_loadu_si256(p[8 + 2 * i..].as_ptr().cast());
        let (k0, k1, k2, k3) = (key(0), key(1), key(2), key(3));

        let mut steps = data.chunks_exact(128);
        for step in &mut steps {
            let ptr = step.as_ptr();
            let d0 = _mm256_xor_si256(load2(ptr, bswap), _mm256_zextsi128_si256(y));
            let acc = add2(
                add2(mul2(d0, k0), mul2(load2(ptr.add(32), bswap), k1)),
                add2(
                    mul2(load2(ptr.add(64), bswap), k2),
                    mul2(load2(ptr.add(96), bswap), k3),
                ),
            );
            y = finish2(acc);
        }
        let mut pairs = steps.remainder().chunks_exact(32);
        for pair in &mut pairs {
            let d = _mm256_xor_si256(load2(pair.as_ptr(), bswap), _mm256_zextsi128_si256(y));
            y = finish2(mul2(d, k3));
        }
        singles(p, y, pairs.remainder())
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
        let want = Ghash::portable(&h).gmac(&pieces, len);
        for g in candidates(&h) {
            assert_eq!(g.gmac(&pieces, len), want);
        }
    }

    /// The default choice and every wide path this CPU can run.
    fn candidates(h: &[u8; 16]) -> Vec<Ghash> {
        #[allow(unused_mut)]
        let mut v = vec![Ghash::new(h)];
        #[cfg(target_arch = "x86_64")]
        match x86::width() {
            Some(x86::Width::Zmm) => {
                v.push(Ghash::wide(h, x86::Width::Zmm));
                v.push(Ghash::wide(h, x86::Width::Ymm));
            }
            Some(x86::Width::Ymm) => v.push(Ghash::wide(h, x86::Width::Ymm)),
            None => {}
        }
        v
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_lab_machine_takes_the_wide_path() {
        // Not a speed check: says which path the other tests exercised here.
        if let Some(w) = x86::width() {
            assert!(matches!(&Ghash::new(&[1; 16]).imp, Imp::Wide(p) if p.width == w));
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
            let want = Ghash::portable(&key).gmac(&pieces, len);
            for g in candidates(&key) {
                prop_assert_eq!(g.gmac(&pieces, len), want);
            }
        }
    }
}
