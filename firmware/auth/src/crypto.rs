//! SMB2/3 session keys, message signing and the 3.1.1 preauth integrity hash.
//!
//! Owns: the SP800-108 KDF with the MS-SMB2 labels (3.1.4.2, 3.2.5.3.1, 3.3.5.5.3), the
//! three signing algorithms (3.1.4.1: HMAC-SHA256, AES-128-CMAC, AES-128-GMAC), and the
//! SHA-512 preauth integrity hash chain (3.2.5.2, 3.3.5.4).
//! Must never: decide which messages are signed or when the hash is updated (the SMB
//! layer does), set SMB2_FLAGS_SIGNED, copy a message to sign or verify it, or compare
//! signatures in variable time.

use crate::ghash::Ghash;
use aes::cipher::BlockCipherEncrypt;
use aes::Aes128;
use cmac::Cmac;
use ctutils::CtEq;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};

/// Offset of the Signature field in the SMB2 header (MS-SMB2 2.2.1).
const SIGNATURE: std::ops::Range<usize> = 48..64;
/// SMB2 header length.
const HEADER_LEN: usize = 64;
/// SMB2_FLAGS_SERVER_TO_REDIR.
const FLAGS_SERVER_TO_REDIR: u8 = 0x01;
/// SMB2 CANCEL command code.
const SMB2_CANCEL: u16 = 0x000c;

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// One block of the SP800-108 counter-mode KDF with HMAC-SHA256, r = 32:
/// HMAC(Ki, [i=1]₃₂ || Label || 0x00 || Context || [L]₃₂).
fn kdf_block(key: &[u8], label: &[u8], context: &[u8], l_bits: u32) -> [u8; 32] {
    hmac_sha256(
        key,
        &[
            &1u32.to_be_bytes(),
            label,
            &[0],
            context,
            &l_bits.to_be_bytes(),
        ],
    )
}

/// SP800-108 counter mode KDF, HMAC-SHA256, L = 128 (MS-SMB2 3.1.4.2). `label` and
/// `context` are given as MS-SMB2 writes them, terminating NUL included (e.g.
/// `b"SMB2AESCMAC\0"`); the KDF adds its own 0x00 separator.
pub fn kdf(key: &[u8; 16], label: &[u8], context: &[u8]) -> [u8; 16] {
    let block = kdf_block(key, label, context, 128);
    let mut out = [0u8; 16];
    out.copy_from_slice(&block[..16]);
    out
}

/// The same KDF with L = 256, for the AES-256 cipher keys (MS-SMB2 3.2.5.3.1: with
/// AES-256-CCM/GCM the keys are 32 bytes and the key input is the full session key).
pub fn kdf_256(key: &[u8], label: &[u8], context: &[u8]) -> [u8; 32] {
    kdf_block(key, label, context, 256)
}

/// The keys of one SMB2 session (MS-SMB2 3.3.5.5.3), from the server's point of view.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// Session.SigningKey.
    pub signing: [u8; 16],
    /// Session.EncryptionKey: the server encrypts what it sends with it (S2C).
    pub encryption_s2c: [u8; 16],
    /// Session.DecryptionKey: the server decrypts what it receives with it (C2S).
    pub decryption_c2s: [u8; 16],
    /// Session.ApplicationKey (handed to e.g. the RPC layer).
    pub application: [u8; 16],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys { <redacted> }")
    }
}

impl SessionKeys {
    /// Derives the session's keys for `dialect`:
    /// - 0x0202 / 0x0210 (anything below 0x0300): signing = the session key itself,
    ///   application = the session key; the cipher keys are unused and all zero.
    /// - 0x0300 / 0x0302: ("SMB2AESCMAC\0", "SmbSign\0"), ("SMB2AESCCM\0", "ServerOut\0"),
    ///   ("SMB2AESCCM\0", "ServerIn \0"), ("SMB2APP\0", "SmbRpc\0"); `preauth_hash` unused.
    /// - 0x0311 and above: "SMBSigningKey\0", "SMBS2CCipherKey\0", "SMBC2SCipherKey\0",
    ///   "SMBAppKey\0", each with the session's preauth integrity hash as context.
    ///
    /// These are the 128-bit keys; for AES-256 ciphers see [`SessionKeys::cipher_keys_256`].
    pub fn derive(dialect: u16, session_key: &[u8; 16], preauth_hash: &[u8; 64]) -> Self {
        if dialect < 0x0300 {
            return Self {
                signing: *session_key,
                encryption_s2c: [0; 16],
                decryption_c2s: [0; 16],
                application: *session_key,
            };
        }
        if dialect < 0x0311 {
            return Self {
                signing: kdf(session_key, b"SMB2AESCMAC\0", b"SmbSign\0"),
                encryption_s2c: kdf(session_key, b"SMB2AESCCM\0", b"ServerOut\0"),
                decryption_c2s: kdf(session_key, b"SMB2AESCCM\0", b"ServerIn \0"),
                application: kdf(session_key, b"SMB2APP\0", b"SmbRpc\0"),
            };
        }
        Self {
            signing: kdf(session_key, b"SMBSigningKey\0", preauth_hash),
            encryption_s2c: kdf(session_key, b"SMBS2CCipherKey\0", preauth_hash),
            decryption_c2s: kdf(session_key, b"SMBC2SCipherKey\0", preauth_hash),
            application: kdf(session_key, b"SMBAppKey\0", preauth_hash),
        }
    }

    /// The 3.1.1 cipher keys for AES-256-CCM / AES-256-GCM: (encryption S2C, decryption
    /// C2S), L = 256. `full_session_key` is the whole GSS session key (16 bytes for NTLM).
    pub fn cipher_keys_256(
        full_session_key: &[u8],
        preauth_hash: &[u8; 64],
    ) -> ([u8; 32], [u8; 32]) {
        (
            kdf_256(full_session_key, b"SMBS2CCipherKey\0", preauth_hash),
            kdf_256(full_session_key, b"SMBC2SCipherKey\0", preauth_hash),
        )
    }
}

/// SMB2 signing algorithms (MS-SMB2 3.1.4.1); the discriminants are the
/// SigningAlgorithmId values of SMB2_SIGNING_CAPABILITIES (2.2.3.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// Dialects 2.0.2 and 2.1: HMAC-SHA256 truncated to 16 bytes.
    HmacSha256 = 0,
    /// Dialects 3.0 and 3.0.2, and 3.1.1 unless SIGNING_CAPABILITIES chose otherwise.
    AesCmac = 1,
    /// 3.1.1 with SMB2_SIGNING_CAPABILITIES choosing AES-GMAC.
    AesGmac = 2,
}

impl SigningAlgorithm {
    /// From a SigningAlgorithmId.
    pub fn from_id(id: u16) -> Option<Self> {
        Some(match id {
            0 => Self::HmacSha256,
            1 => Self::AesCmac,
            2 => Self::AesGmac,
            _ => return None,
        })
    }

    /// The algorithm a dialect signs with when SIGNING_CAPABILITIES was not negotiated.
    pub fn default_for_dialect(dialect: u16) -> Self {
        if dialect < 0x0300 {
            Self::HmacSha256
        } else {
            Self::AesCmac
        }
    }
}

#[derive(Clone)]
enum SignerKind {
    HmacSha256(Hmac<Sha256>),
    AesCmac(Cmac<Aes128>),
    AesGmac { ghash: Ghash, aes: Aes128 },
}

/// Signs and verifies SMB2 messages with one session's (or channel's) signing key
/// (MS-SMB2 3.1.4.1). The keyed state is prepared once; each message is hashed in
/// place with the Signature field read as zero.
#[derive(Clone)]
pub struct Signer {
    kind: SignerKind,
}

impl Signer {
    pub fn new(algorithm: SigningAlgorithm, key: [u8; 16]) -> Self {
        let kind = match algorithm {
            SigningAlgorithm::HmacSha256 => SignerKind::HmacSha256(
                <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
                    .expect("HMAC accepts keys of any length"),
            ),
            SigningAlgorithm::AesCmac => {
                SignerKind::AesCmac(<Cmac<Aes128> as KeyInit>::new(&key.into()))
            }
            SigningAlgorithm::AesGmac => {
                let aes = <Aes128 as KeyInit>::new(&key.into());
                let mut h = aes::Block::default();
                aes.encrypt_block(&mut h);
                SignerKind::AesGmac {
                    ghash: Ghash::new(&h.into()),
                    aes,
                }
            }
        };
        Self { kind }
    }

    /// The signature of `msg` (at least a whole header), computed as if bytes 48..64
    /// were zero.
    fn compute(&self, msg: &[u8]) -> [u8; 16] {
        let (head, tail) = (&msg[..SIGNATURE.start], &msg[SIGNATURE.end..]);
        const ZERO: [u8; 16] = [0; 16];
        match &self.kind {
            SignerKind::HmacSha256(keyed) => {
                let mut mac = keyed.clone();
                mac.update(head);
                mac.update(&ZERO);
                mac.update(tail);
                let full = mac.finalize().into_bytes();
                let mut out = [0u8; 16];
                out.copy_from_slice(&full[..16]);
                out
            }
            SignerKind::AesCmac(keyed) => {
                let mut mac = keyed.clone();
                mac.update(head);
                mac.update(&ZERO);
                mac.update(tail);
                mac.finalize().into_bytes().into()
            }
            SignerKind::AesGmac { ghash, aes } => {
                // GMAC = GCM with the whole message as AAD and no plaintext. The zeroed
                // signature sits on a 16-byte boundary (48..64), so the message can be
                // fed to GHASH in three block-aligned pieces without a copy.
                let tag = ghash.gmac(&[head, &ZERO, tail], msg.len() as u64);
                let mut j0 = aes::Block::default();
                j0[..12].copy_from_slice(&gmac_nonce(msg));
                j0[15] = 1;
                aes.encrypt_block(&mut j0);
                let mut out = [0u8; 16];
                for ((o, t), m) in out.iter_mut().zip(tag.iter()).zip(j0.iter()) {
                    *o = *t ^ *m;
                }
                out
            }
        }
    }

    /// Zeroes bytes 48..64 of `msg` (one whole SMB2 message: header + body, for a
    /// compound member up to its NextCommand end including padding) and writes the
    /// signature there. Setting SMB2_FLAGS_SIGNED is the caller's job (before calling).
    /// A message shorter than the 64-byte header is left untouched.
    pub fn sign(&self, msg: &mut [u8]) {
        if msg.len() < HEADER_LEN {
            return;
        }
        let sig = self.compute(msg);
        msg[SIGNATURE].copy_from_slice(&sig);
    }

    /// Checks the signature in bytes 48..64, in constant time. False for a message
    /// shorter than the header.
    pub fn verify(&self, msg: &[u8]) -> bool {
        if msg.len() < HEADER_LEN {
            return false;
        }
        let expected = self.compute(msg);
        expected[..].ct_eq(&msg[SIGNATURE]).to_bool()
    }
}

/// The AES-GMAC nonce (MS-SMB2 3.1.4.1): MessageId (8 bytes LE, header offset 24), then
/// a LE u32 with bit 0 = sent by the server and bit 1 = CANCEL request.
fn gmac_nonce(msg: &[u8]) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&msg[24..32]);
    let command = u16::from_le_bytes([msg[12], msg[13]]);
    let mut role = 0u32;
    if msg[16] & FLAGS_SERVER_TO_REDIR != 0 {
        role |= 1;
    }
    if command == SMB2_CANCEL {
        role |= 2;
    }
    nonce[8..].copy_from_slice(&role.to_le_bytes());
    nonce
}

/// Preauth integrity hash (SHA-512) of 3.1.1 (MS-SMB2 3.2.5.2, 3.3.5.4):
/// H = SHA512(H || message), starting from 64 zero bytes. Clone it to fork a
/// connection's value into a session's.
#[derive(Clone, PartialEq, Eq)]
pub struct PreauthHash([u8; 64]);

impl Default for PreauthHash {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PreauthHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreauthHash(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

impl PreauthHash {
    pub fn new() -> Self {
        Self([0; 64])
    }

    /// Chains one whole message (SMB2 header and body, as sent or received).
    pub fn update(&mut self, msg: &[u8]) {
        let mut h = Sha512::new();
        h.update(self.0);
        h.update(msg);
        self.0 = h.finalize().into();
    }

    pub fn value(&self) -> &[u8; 64] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_algorithm_ids() {
        for alg in [
            SigningAlgorithm::HmacSha256,
            SigningAlgorithm::AesCmac,
            SigningAlgorithm::AesGmac,
        ] {
            assert_eq!(SigningAlgorithm::from_id(alg as u16), Some(alg));
        }
        assert_eq!(SigningAlgorithm::from_id(3), None);
        assert_eq!(
            SigningAlgorithm::default_for_dialect(0x0210),
            SigningAlgorithm::HmacSha256
        );
        assert_eq!(
            SigningAlgorithm::default_for_dialect(0x0311),
            SigningAlgorithm::AesCmac
        );
    }

    #[test]
    fn short_messages_are_neither_signed_nor_verified() {
        let signer = Signer::new(SigningAlgorithm::AesGmac, [1; 16]);
        let mut short = [7u8; 63];
        signer.sign(&mut short);
        assert_eq!(short, [7u8; 63]);
        assert!(!signer.verify(&short));
        let mut header = [0u8; 64];
        signer.sign(&mut header);
        assert!(signer.verify(&header));
    }
}
