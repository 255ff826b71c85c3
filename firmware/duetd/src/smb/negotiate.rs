//! NEGOTIATE (MS-SMB2 2.2.3/2.2.4, 3.3.5.3/3.3.5.4), the SMB1 multi-protocol upgrade, and
//! FSCTL_VALIDATE_NEGOTIATE_INFO (3.3.5.15.12).
//!
//! Owns: dialect choice, 3.1.1 negotiate contexts and the connection's preauth hash start.
//! Never accepts a second NEGOTIATE on a connection.

use duet_auth::{CipherId, SigningAlgorithm};

use super::{Conn, Fail, Flow, HResult, Reply, Req};
use super::{DIALECT_202, DIALECT_210, DIALECT_300, DIALECT_302, DIALECT_311, DIALECT_WILDCARD};
use crate::wire::{le_u16, le_u32, status, PutLe, HEADER_LEN};

pub const SIGNING_ENABLED: u16 = 0x0001;
pub const SIGNING_REQUIRED: u16 = 0x0002;

pub const CAP_DFS: u32 = 0x01;
pub const CAP_LEASING: u32 = 0x02;
pub const CAP_LARGE_MTU: u32 = 0x04;
/// SMB2_GLOBAL_CAP_MULTI_CHANNEL: sessions may be bound to further connections (3.x).
pub const CAP_MULTI_CHANNEL: u32 = 0x08;
/// SMB2_GLOBAL_CAP_ENCRYPTION: meaningful for 3.0 and 3.0.2 only (3.1.1 negotiates a
/// cipher in a context).
pub const CAP_ENCRYPTION: u32 = 0x40;

/// Ciphers we accept, best first (MS-SMB2 2.2.3.1.2 ids).
const CIPHERS: [CipherId; 4] = [
    CipherId::Aes128Gcm,
    CipherId::Aes128Ccm,
    CipherId::Aes256Gcm,
    CipherId::Aes256Ccm,
];

const PREAUTH_INTEGRITY_CAPABILITIES: u16 = 0x0001;
const ENCRYPTION_CAPABILITIES: u16 = 0x0002;
const SIGNING_CAPABILITIES: u16 = 0x0008;
const SHA_512: u16 = 0x0001;

pub const MAX_IO: u32 = 8 * 1024 * 1024;

/// Dialects we serve, best first.
const DIALECTS: [u16; 5] = [
    DIALECT_311,
    DIALECT_302,
    DIALECT_300,
    DIALECT_210,
    DIALECT_202,
];

pub fn handle(conn: &mut Conn, req: &Req) -> HResult {
    if conn.neg.done {
        // MS-SMB2 3.3.5.3.1: a second NEGOTIATE ends the connection.
        return Err(Fail::Disconnect);
    }
    let b = req.body();
    b.expect_structure_size(36)?;
    let count = b.u16(2)? as usize;
    if count == 0 {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    let security_mode = b.u16(4)?;
    let capabilities = b.u32(8)?;
    let mut client_guid = [0u8; 16];
    client_guid.copy_from_slice(b.bytes(12, 16)?);
    let dialect_bytes = b.bytes(36, count * 2)?;
    let offered: Vec<u16> = dialect_bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let Some(dialect) = DIALECTS.iter().copied().find(|d| offered.contains(d)) else {
        tracing::info!(peer = %conn.peer, ?offered, "no common dialect");
        return Err(Fail::Status(status::NOT_SUPPORTED));
    };

    let mut signing = None;
    let mut signing_ctx = false;
    // Some(None): the client sent ENCRYPTION_CAPABILITIES but we share no cipher.
    let mut cipher_ctx: Option<Option<CipherId>> = None;
    let mut preauth = None;
    if dialect == DIALECT_311 {
        let ctx_off = b.u32(28)? as usize;
        let ctx_count = b.u16(32)? as usize;
        let mut saw_preauth = false;
        let mut off = ctx_off;
        for i in 0..ctx_count {
            let msg = req.msg;
            let ty = le_u16(msg, off).map_err(|_| Fail::Status(status::INVALID_PARAMETER))?;
            let len =
                le_u16(msg, off + 2).map_err(|_| Fail::Status(status::INVALID_PARAMETER))? as usize;
            let data = msg
                .get(off + 8..off + 8 + len)
                .ok_or(Fail::Status(status::INVALID_PARAMETER))?;
            match ty {
                PREAUTH_INTEGRITY_CAPABILITIES => {
                    if saw_preauth {
                        return Err(Fail::Status(status::INVALID_PARAMETER));
                    }
                    saw_preauth = true;
                    let n = le_u16(data, 0).map_err(|_| Fail::Status(status::INVALID_PARAMETER))?
                        as usize;
                    let algs = data
                        .get(4..4 + 2 * n)
                        .ok_or(Fail::Status(status::INVALID_PARAMETER))?;
                    if !algs
                        .chunks_exact(2)
                        .any(|c| u16::from_le_bytes([c[0], c[1]]) == SHA_512)
                    {
                        return Err(Fail::Status(status::NO_PREAUTH_INTEGRITY_HASH_OVERLAP));
                    }
                }
                ENCRYPTION_CAPABILITIES => {
                    let n = le_u16(data, 0).map_err(|_| Fail::Status(status::INVALID_PARAMETER))?
                        as usize;
                    let ids = data
                        .get(2..2 + 2 * n)
                        .ok_or(Fail::Status(status::INVALID_PARAMETER))?;
                    let ids: Vec<u16> = ids
                        .chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]))
                        .collect();
                    cipher_ctx = Some(CIPHERS.into_iter().find(|c| ids.contains(&(*c as u16))));
                }
                SIGNING_CAPABILITIES => {
                    signing_ctx = true;
                    let n = le_u16(data, 0).map_err(|_| Fail::Status(status::INVALID_PARAMETER))?
                        as usize;
                    let algs = data
                        .get(2..2 + 2 * n)
                        .ok_or(Fail::Status(status::INVALID_PARAMETER))?;
                    let algs: Vec<u16> = algs
                        .chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]))
                        .collect();
                    // Our preference: AES-GMAC, AES-CMAC, HMAC-SHA256, in the client's list.
                    signing = [
                        (2u16, SigningAlgorithm::AesGmac),
                        (1, SigningAlgorithm::AesCmac),
                        (0, SigningAlgorithm::HmacSha256),
                    ]
                    .into_iter()
                    .find(|(id, _)| algs.contains(id))
                    .map(|(_, a)| a);
                }
                _ => {}
            }
            if i + 1 < ctx_count {
                off = (off + 8 + len).div_ceil(8) * 8;
            }
        }
        if !saw_preauth {
            return Err(Fail::Status(status::INVALID_PARAMETER));
        }
        let mut h = duet_auth::PreauthHash::new();
        h.update(req.msg);
        preauth = Some(h);
    }
    let signing = match dialect {
        DIALECT_311 => Some(signing.unwrap_or(SigningAlgorithm::AesCmac)),
        DIALECT_300 | DIALECT_302 => Some(SigningAlgorithm::AesCmac),
        _ => Some(SigningAlgorithm::HmacSha256),
    };

    let mut server_caps = if dialect >= DIALECT_210 {
        CAP_LARGE_MTU | CAP_LEASING
    } else {
        0
    };
    if dialect >= DIALECT_300 {
        server_caps |= CAP_MULTI_CHANNEL;
    }
    let cipher = match dialect {
        DIALECT_311 => cipher_ctx.flatten(),
        DIALECT_300 | DIALECT_302 if capabilities & CAP_ENCRYPTION != 0 => {
            server_caps |= CAP_ENCRYPTION;
            Some(CipherId::Aes128Ccm)
        }
        _ => None,
    };
    let max_io = if dialect >= DIALECT_210 {
        MAX_IO
    } else {
        65536
    };
    conn.neg.done = true;
    conn.neg.dialect = dialect;
    conn.neg.client_guid = client_guid;
    conn.neg.client_security_mode = security_mode;
    conn.neg.client_capabilities = capabilities;
    conn.neg.server_capabilities = server_caps;
    conn.neg.client_dialects = offered;
    conn.neg.signing_algorithm = signing;
    conn.neg.cipher = cipher;
    conn.neg.preauth = preauth;
    tracing::debug!(peer = %conn.peer, dialect = format_args!("{dialect:#06x}"), "negotiated");

    let mut body = negotiate_body(conn, dialect, server_caps, max_io);
    if dialect == DIALECT_311 {
        let mut salt = [0u8; 32];
        crate::util::random_bytes(&mut salt);
        let ctx_start = HEADER_LEN + body.len();
        let ctx_start = ctx_start.div_ceil(8) * 8;
        while HEADER_LEN + body.len() < ctx_start {
            body.push(0);
        }
        body.set_u32(60, ctx_start as u32);
        // Preauth integrity: SHA-512 with a 32-byte salt.
        body.put_u16(PREAUTH_INTEGRITY_CAPABILITIES);
        body.put_u16(38);
        body.put_u32(0);
        body.put_u16(1);
        body.put_u16(32);
        body.put_u16(SHA_512);
        body.extend_from_slice(&salt);
        let mut count = 1u16;
        if let Some(chosen) = cipher_ctx {
            // One cipher, or 0 when none of the client's is ours (3.3.5.4).
            while !(HEADER_LEN + body.len()).is_multiple_of(8) {
                body.push(0);
            }
            body.put_u16(ENCRYPTION_CAPABILITIES);
            body.put_u16(4);
            body.put_u32(0);
            body.put_u16(1);
            body.put_u16(chosen.map_or(0, |c| c as u16));
            count += 1;
        }
        if let Some(alg) = signing.filter(|_| signing_ctx) {
            while !(HEADER_LEN + body.len()).is_multiple_of(8) {
                body.push(0);
            }
            body.put_u16(SIGNING_CAPABILITIES);
            body.put_u16(4);
            body.put_u32(0);
            body.put_u16(1);
            body.put_u16(match alg {
                SigningAlgorithm::HmacSha256 => 0,
                SigningAlgorithm::AesCmac => 1,
                SigningAlgorithm::AesGmac => 2,
            });
            count += 1;
        }
        body.set_u16(6, count);
        conn.preauth_pending = Some(super::PreauthTarget::Connection);
    }
    Ok(Reply::ok(body))
}

/// The fixed part of the NEGOTIATE response plus the SPNEGO init token.
fn negotiate_body(conn: &Conn, dialect: u16, caps: u32, max_io: u32) -> Vec<u8> {
    let token = duet_auth::spnego_negotiate_token();
    let mut body = Vec::with_capacity(64 + token.len() + 64);
    body.put_u16(65);
    let mode = SIGNING_ENABLED
        | if conn.server.cfg.signing_required {
            SIGNING_REQUIRED
        } else {
            0
        };
    body.put_u16(mode);
    body.put_u16(dialect);
    body.put_u16(0);
    body.extend_from_slice(&conn.server.server_guid);
    body.put_u32(caps);
    body.put_u32(max_io);
    body.put_u32(max_io);
    body.put_u32(max_io);
    body.put_u64(crate::util::now_filetime());
    body.put_u64(0);
    body.put_u16((HEADER_LEN + 64) as u16);
    body.put_u16(token.len() as u16);
    body.put_u32(0);
    body.extend_from_slice(&token);
    body
}

/// An SMB1 NEGOTIATE (MS-SMB2 3.3.5.3.1): answered with an SMB2 NEGOTIATE response naming
/// 2.0.2, or the 2.??? wildcard so the client sends an SMB2 NEGOTIATE next.
pub fn handle_smb1(conn: &mut Conn, frame: &[u8]) -> Flow {
    if conn.neg.done || frame.len() < 35 || frame[4] != 0x72 {
        tracing::warn!(peer = %conn.peer, "SMB1 message other than a first NEGOTIATE; closing");
        return Flow::Close;
    }
    let byte_count = le_u16(frame, 33).unwrap_or(0) as usize;
    let data = frame.get(35..35 + byte_count).unwrap_or(&[]);
    let dialects: Vec<&[u8]> = data
        .split(|b| *b == 0)
        .filter_map(|d| d.strip_prefix(&[0x02]))
        .collect();
    let dialect = if dialects.iter().any(|d| *d == b"SMB 2.???") {
        DIALECT_WILDCARD
    } else if dialects.iter().any(|d| *d == b"SMB 2.002") {
        DIALECT_202
    } else {
        tracing::info!(peer = %conn.peer, "SMB1-only client refused");
        return Flow::Close;
    };
    if !conn.credits.consume(0, 1) {
        return Flow::Close;
    }
    let max_io = 65536;
    let body = negotiate_body(conn, dialect, 0, max_io);
    if dialect == DIALECT_202 {
        conn.neg.done = true;
        conn.neg.dialect = DIALECT_202;
        conn.neg.signing_algorithm = Some(SigningAlgorithm::HmacSha256);
    }
    let mut msg = vec![0u8; HEADER_LEN];
    {
        let mut h = crate::wire::Header::new_unchecked(&mut msg[..]);
        h.set_protocol();
        h.set_command(0);
        h.set_credit(1);
        h.set_flags(crate::wire::header::flags::SERVER_TO_REDIR);
    }
    conn.credits.grant(1);
    msg.extend_from_slice(&body);
    if conn.outbox.send(msg) {
        Flow::Continue
    } else {
        Flow::Close
    }
}

/// FSCTL_VALIDATE_NEGOTIATE_INFO (MS-SMB2 3.3.5.15.12): a mismatch ends the connection.
pub fn validate_negotiate(conn: &Conn, input: &[u8]) -> Result<Vec<u8>, Fail> {
    if conn.neg.dialect == DIALECT_311 {
        return Err(Fail::Disconnect);
    }
    let caps = le_u32(input, 0).map_err(|_| Fail::Disconnect)?;
    let guid = input.get(4..20).ok_or(Fail::Disconnect)?;
    let mode = le_u16(input, 20).map_err(|_| Fail::Disconnect)?;
    let count = le_u16(input, 22).map_err(|_| Fail::Disconnect)? as usize;
    let dialects = input.get(24..24 + 2 * count).ok_or(Fail::Disconnect)?;
    let dialects: Vec<u16> = dialects
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    if caps != conn.neg.client_capabilities
        || guid != conn.neg.client_guid
        || mode != conn.neg.client_security_mode
        || dialects != conn.neg.client_dialects
    {
        tracing::warn!(peer = %conn.peer, "VALIDATE_NEGOTIATE_INFO mismatch; closing connection");
        return Err(Fail::Disconnect);
    }
    let mut out = Vec::with_capacity(24);
    out.put_u32(conn.neg.server_capabilities);
    out.extend_from_slice(&conn.server.server_guid);
    let smode = SIGNING_ENABLED
        | if conn.server.cfg.signing_required {
            SIGNING_REQUIRED
        } else {
            0
        };
    out.put_u16(smode);
    out.put_u16(conn.neg.dialect);
    Ok(out)
}
