//! SMB3 encryption: the SMB2 TRANSFORM_HEADER (MS-SMB2 2.2.41) and the four ciphers
//! (3.1.4.3): AES-128-CCM, AES-128-GCM, AES-256-CCM, AES-256-GCM.
//!
//! Owns: sealing one SMB2 message (or compound chain) into a transform frame and
//! opening one, in place. The AAD is the transform header from Nonce to the end
//! (bytes 20..52); the nonce is the first 11 (CCM) or 12 (GCM) bytes of Nonce.
//! Must never: choose nonces (they come in as arguments; the caller must never reuse
//! one under a key), decide which messages are encrypted, or return plaintext whose
//! tag did not verify.

use aes::{Aes128, Aes256};
use aes_gcm::aead::array::Array;
use aes_gcm::aead::consts::{U11, U12, U16};
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::AesGcm;
use ccm::Ccm;

use crate::AuthError;

/// ProtocolId of a TRANSFORM_HEADER.
pub const TRANSFORM_PROTOCOL_ID: [u8; 4] = [0xfd, b'S', b'M', b'B'];
/// Length of the TRANSFORM_HEADER.
pub const TRANSFORM_HEADER_LEN: usize = 52;
/// Flags (3.1.1) / EncryptionAlgorithm (3.0.x): the only defined value, 0x0001.
const TRANSFORM_FLAG_ENCRYPTED: u16 = 0x0001;

/// Cipher ids of SMB2_ENCRYPTION_CAPABILITIES (MS-SMB2 2.2.3.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherId {
    Aes128Ccm = 0x0001,
    Aes128Gcm = 0x0002,
    Aes256Ccm = 0x0003,
    Aes256Gcm = 0x0004,
}

impl CipherId {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Aes128Ccm,
            2 => Self::Aes128Gcm,
            3 => Self::Aes256Ccm,
            4 => Self::Aes256Gcm,
            _ => return None,
        })
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128Ccm | Self::Aes128Gcm => 16,
            Self::Aes256Ccm | Self::Aes256Gcm => 32,
        }
    }

    /// How many leading bytes of the 16-byte Nonce field the cipher uses.
    pub fn nonce_len(self) -> usize {
        match self {
            Self::Aes128Ccm | Self::Aes256Ccm => 11,
            Self::Aes128Gcm | Self::Aes256Gcm => 12,
        }
    }
}

enum Aead {
    Aes128Ccm(Box<Ccm<Aes128, U16, U11>>),
    Aes128Gcm(Box<AesGcm<Aes128, U12>>),
    Aes256Ccm(Box<Ccm<Aes256, U16, U11>>),
    Aes256Gcm(Box<AesGcm<Aes256, U12>>),
}

/// One direction's SMB3 cipher: the server seals with Session.EncryptionKey and opens
/// with Session.DecryptionKey.
pub struct TransformCipher {
    id: CipherId,
    aead: Aead,
}

/// The fields of a TRANSFORM_HEADER the caller needs before decrypting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformHeader {
    pub signature: [u8; 16],
    pub nonce: [u8; 16],
    pub original_message_size: u32,
    pub flags: u16,
    pub session_id: u64,
}

impl TransformHeader {
    /// Parses the first 52 bytes of a frame that starts with 0xFD 'S' 'M' 'B'.
    pub fn parse(frame: &[u8]) -> Result<Self, AuthError> {
        let h = frame
            .get(..TRANSFORM_HEADER_LEN)
            .ok_or(AuthError::Malformed("TRANSFORM_HEADER truncated"))?;
        if h[..4] != TRANSFORM_PROTOCOL_ID {
            return Err(AuthError::Malformed("not a TRANSFORM_HEADER"));
        }
        let mut signature = [0u8; 16];
        signature.copy_from_slice(&h[4..20]);
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&h[20..36]);
        Ok(Self {
            signature,
            nonce,
            original_message_size: u32::from_le_bytes([h[36], h[37], h[38], h[39]]),
            flags: u16::from_le_bytes([h[42], h[43]]),
            session_id: u64::from_le_bytes([
                h[44], h[45], h[46], h[47], h[48], h[49], h[50], h[51],
            ]),
        })
    }
}

impl TransformCipher {
    /// `key` must be [`CipherId::key_len`] bytes.
    pub fn new(id: CipherId, key: &[u8]) -> Result<Self, AuthError> {
        if key.len() != id.key_len() {
            return Err(AuthError::KeyLength {
                expected: id.key_len(),
                got: key.len(),
            });
        }
        let bad = |_| AuthError::KeyLength {
            expected: id.key_len(),
            got: key.len(),
        };
        let aead = match id {
            CipherId::Aes128Ccm => {
                Aead::Aes128Ccm(Box::new(KeyInit::new_from_slice(key).map_err(bad)?))
            }
            CipherId::Aes128Gcm => {
                Aead::Aes128Gcm(Box::new(KeyInit::new_from_slice(key).map_err(bad)?))
            }
            CipherId::Aes256Ccm => {
                Aead::Aes256Ccm(Box::new(KeyInit::new_from_slice(key).map_err(bad)?))
            }
            CipherId::Aes256Gcm => {
                Aead::Aes256Gcm(Box::new(KeyInit::new_from_slice(key).map_err(bad)?))
            }
        };
        Ok(Self { id, aead })
    }

    pub fn id(&self) -> CipherId {
        self.id
    }

    /// Encrypts `message` (one SMB2 message or a compound chain) in place and returns
    /// the TRANSFORM_HEADER to send in front of it. Only the first
    /// [`CipherId::nonce_len`] bytes of `nonce` are used (the rest go out as zero); a
    /// nonce must never repeat under one key.
    pub fn encrypt(
        &self,
        nonce: &[u8; 16],
        session_id: u64,
        message: &mut [u8],
    ) -> Result<[u8; TRANSFORM_HEADER_LEN], AuthError> {
        let size = u32::try_from(message.len())
            .map_err(|_| AuthError::Malformed("message too large to encrypt"))?;
        let mut header = [0u8; TRANSFORM_HEADER_LEN];
        header[..4].copy_from_slice(&TRANSFORM_PROTOCOL_ID);
        let n = self.id.nonce_len();
        header[20..20 + n].copy_from_slice(&nonce[..n]);
        header[36..40].copy_from_slice(&size.to_le_bytes());
        header[42..44].copy_from_slice(&TRANSFORM_FLAG_ENCRYPTED.to_le_bytes());
        header[44..52].copy_from_slice(&session_id.to_le_bytes());
        let (nonce, aad) = (&header[20..20 + n], &header[20..]);
        let fail = |_| AuthError::Malformed("message too large to encrypt");
        let tag: [u8; 16] = match &self.aead {
            Aead::Aes128Ccm(c) => c
                .encrypt_inout_detached(&nonce_of(nonce)?, aad, message.into())
                .map_err(fail)?
                .into(),
            Aead::Aes128Gcm(c) => c
                .encrypt_inout_detached(&nonce_of(nonce)?, aad, message.into())
                .map_err(fail)?
                .into(),
            Aead::Aes256Ccm(c) => c
                .encrypt_inout_detached(&nonce_of(nonce)?, aad, message.into())
                .map_err(fail)?
                .into(),
            Aead::Aes256Gcm(c) => c
                .encrypt_inout_detached(&nonce_of(nonce)?, aad, message.into())
                .map_err(fail)?
                .into(),
        };
        header[4..20].copy_from_slice(&tag);
        Ok(header)
    }

    /// Decrypts a whole transform frame (header + ciphertext) in place and returns the
    /// plaintext (the bytes after the header). Fails with [`AuthError::Integrity`] if the
    /// tag does not verify; then the buffer's contents are unspecified.
    pub fn decrypt<'a>(&self, frame: &'a mut [u8]) -> Result<&'a mut [u8], AuthError> {
        let h = TransformHeader::parse(frame)?;
        if h.flags != TRANSFORM_FLAG_ENCRYPTED {
            return Err(AuthError::Malformed("TRANSFORM_HEADER flags"));
        }
        if h.original_message_size as usize != frame.len() - TRANSFORM_HEADER_LEN {
            return Err(AuthError::Malformed(
                "TRANSFORM_HEADER OriginalMessageSize does not match the frame",
            ));
        }
        let (header, body) = frame.split_at_mut(TRANSFORM_HEADER_LEN);
        let n = self.id.nonce_len();
        let (nonce, aad) = (&header[20..20 + n], &header[20..]);
        let tag = Array::from(h.signature);
        let ok = match &self.aead {
            Aead::Aes128Ccm(c) => {
                c.decrypt_inout_detached(&nonce_of(nonce)?, aad, (&mut *body).into(), &tag)
            }
            Aead::Aes128Gcm(c) => {
                c.decrypt_inout_detached(&nonce_of(nonce)?, aad, (&mut *body).into(), &tag)
            }
            Aead::Aes256Ccm(c) => {
                c.decrypt_inout_detached(&nonce_of(nonce)?, aad, (&mut *body).into(), &tag)
            }
            Aead::Aes256Gcm(c) => {
                c.decrypt_inout_detached(&nonce_of(nonce)?, aad, (&mut *body).into(), &tag)
            }
        };
        ok.map_err(|_| AuthError::Integrity)?;
        Ok(body)
    }
}

fn nonce_of<N: aes_gcm::aead::array::ArraySize>(bytes: &[u8]) -> Result<Array<u8, N>, AuthError> {
    Array::try_from(bytes).map_err(|_| AuthError::Malformed("nonce length"))
}
