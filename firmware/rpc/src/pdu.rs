//! Connection-oriented DCE/RPC PDU layouts (C706 §12.6, MS-RPCE §2.2.2): header
//! framing, bind / alter_context parsing and the encoders for bind_ack,
//! alter_context_resp, bind_nak, response and fault.

use crate::RpcError;

pub(crate) const HEADER_LEN: usize = 16;
pub(crate) const REQUEST_HEADER_LEN: usize = 24;
pub(crate) const RESPONSE_HEADER_LEN: usize = 24;

pub(crate) const PTYPE_REQUEST: u8 = 0;
pub(crate) const PTYPE_RESPONSE: u8 = 2;
pub(crate) const PTYPE_FAULT: u8 = 3;
pub(crate) const PTYPE_BIND: u8 = 11;
pub(crate) const PTYPE_BIND_ACK: u8 = 12;
pub(crate) const PTYPE_BIND_NAK: u8 = 13;
pub(crate) const PTYPE_ALTER_CONTEXT: u8 = 14;
pub(crate) const PTYPE_ALTER_CONTEXT_RESP: u8 = 15;
pub(crate) const PTYPE_CO_CANCEL: u8 = 18;
pub(crate) const PTYPE_ORPHANED: u8 = 19;

pub(crate) const PFC_FIRST_FRAG: u8 = 0x01;
pub(crate) const PFC_LAST_FRAG: u8 = 0x02;
pub(crate) const PFC_DID_NOT_EXECUTE: u8 = 0x20;
pub(crate) const PFC_OBJECT_UUID: u8 = 0x80;

/// Little-endian integers, ASCII characters, IEEE floats.
pub(crate) const DREP_LE: [u8; 4] = [0x10, 0, 0, 0];

// p_cont_def_result_t
pub(crate) const RESULT_ACCEPTANCE: u16 = 0;
pub(crate) const RESULT_PROVIDER_REJECTION: u16 = 2;
pub(crate) const RESULT_NEGOTIATE_ACK: u16 = 3;
// p_provider_reason_t
pub(crate) const REASON_ABSTRACT_SYNTAX_NOT_SUPPORTED: u16 = 1;
pub(crate) const REASON_TRANSFER_SYNTAXES_NOT_SUPPORTED: u16 = 2;
// bind_nak provider_reject_reason
pub(crate) const NAK_REASON_NOT_SPECIFIED: u16 = 0;
pub(crate) const NAK_LOCAL_LIMIT_EXCEEDED: u16 = 2;
pub(crate) const NAK_PROTOCOL_VERSION_NOT_SUPPORTED: u16 = 4;
pub(crate) const NAK_AUTHENTICATION_TYPE_NOT_RECOGNIZED: u16 = 8;

// Bind time feature negotiation bits (MS-RPCE 2.2.2.14).
pub(crate) const BTFN_KEEP_CONNECTION_ON_ORPHAN: u16 = 0x0002;

// Fault status codes.
pub(crate) const NCA_S_OP_RNG_ERROR: u32 = 0x1C01_0002;
pub(crate) const NCA_S_UNK_IF: u32 = 0x1C01_0003;
pub(crate) const NCA_S_PROTO_ERROR: u32 = 0x1C01_000B;
/// RPC_X_BAD_STUB_DATA, which MS-RPCE requires for unmarshalling failures.
pub(crate) const RPC_X_BAD_STUB_DATA: u32 = 0x0000_06F7;

/// A UUID in its NDR (little-endian fields) wire form.
pub(crate) const fn uuid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> [u8; 16] {
    let a = d1.to_le_bytes();
    let b = d2.to_le_bytes();
    let c = d3.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5],
        d4[6], d4[7],
    ]
}

/// NDR20 transfer syntax 8a885d04-1ceb-11c9-9fe8-08002b104860 v2.
pub(crate) const NDR20: [u8; 16] = uuid(
    0x8a88_5d04,
    0x1ceb,
    0x11c9,
    [0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48, 0x60],
);
pub(crate) const NDR20_VERSION: u32 = 2;
/// Prefix 6cb71c2c-9812-4540 of the bind-time feature negotiation "syntax".
pub(crate) const BTFN_PREFIX: [u8; 8] = [0x2c, 0x1c, 0xb7, 0x6c, 0x12, 0x98, 0x40, 0x45];

/// Fixed part of every connection-oriented PDU.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub ptype: u8,
    pub minor: u8,
    pub flags: u8,
    pub drep: [u8; 4],
    pub frag_length: u16,
    pub auth_length: u16,
    pub call_id: u32,
}

impl Header {
    pub(crate) fn little_endian(&self) -> bool {
        self.drep[0] & 0xF0 == 0x10
    }
}

/// Frames one PDU at the start of `buf`: `Ok(None)` when more bytes are needed.
pub(crate) fn frame(buf: &[u8]) -> Result<Option<Header>, RpcError> {
    if let Some(&major) = buf.first() {
        if major != 5 {
            return Err(RpcError::BadVersion {
                major,
                minor: buf.get(1).copied().unwrap_or(0),
            });
        }
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let drep = [buf[4], buf[5], buf[6], buf[7]];
    let le = match drep[0] & 0xF0 {
        0x10 => true,
        0x00 => false,
        _ => return Err(RpcError::UnsupportedDataRepresentation(drep)),
    };
    let rd16 = |o: usize| {
        let b = [buf[o], buf[o + 1]];
        if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }
    };
    let frag_length = rd16(8);
    let auth_length = rd16(10);
    let cid = [buf[12], buf[13], buf[14], buf[15]];
    let call_id = if le {
        u32::from_le_bytes(cid)
    } else {
        u32::from_be_bytes(cid)
    };
    if (frag_length as usize) < HEADER_LEN {
        return Err(RpcError::BadFragmentLength {
            frag_length,
            auth_length,
        });
    }
    if buf.len() < frag_length as usize {
        return Ok(None);
    }
    Ok(Some(Header {
        ptype: buf[2],
        minor: buf[1],
        flags: buf[3],
        drep,
        frag_length,
        auth_length,
        call_id,
    }))
}

pub(crate) fn le16(buf: &[u8], off: usize) -> Option<u16> {
    let b = buf.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

pub(crate) fn le32(buf: &[u8], off: usize) -> Option<u32> {
    let b = buf.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn syntax(buf: &[u8], off: usize) -> Option<Syntax> {
    let raw = buf.get(off..off.checked_add(20)?)?;
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&raw[..16]);
    Some(Syntax {
        uuid,
        version: u32::from_le_bytes([raw[16], raw[17], raw[18], raw[19]]),
    })
}

/// A presentation syntax: UUID plus version (major in the low 16 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Syntax {
    pub uuid: [u8; 16],
    pub version: u32,
}

/// One `p_cont_elem_t` of a bind / alter_context.
#[derive(Debug, Clone)]
pub(crate) struct ContextElem {
    pub id: u16,
    pub abstract_syntax: Syntax,
    pub transfer_syntaxes: Vec<Syntax>,
}

/// Body of a bind / alter_context.
#[derive(Debug, Clone)]
pub(crate) struct Bind {
    pub max_xmit_frag: u16,
    pub max_recv_frag: u16,
    pub assoc_group: u32,
    pub contexts: Vec<ContextElem>,
}

/// Parses a bind / alter_context PDU (the whole fragment, header included). Any
/// auth verifier is excluded by the caller through `end`.
pub(crate) fn parse_bind(pdu: &[u8], end: usize) -> Option<Bind> {
    let pdu = pdu.get(..end)?;
    let max_xmit_frag = le16(pdu, 16)?;
    let max_recv_frag = le16(pdu, 18)?;
    let assoc_group = le32(pdu, 20)?;
    let n = *pdu.get(24)? as usize;
    let mut off = 28;
    let mut contexts = Vec::with_capacity(n);
    for _ in 0..n {
        let id = le16(pdu, off)?;
        let n_ts = *pdu.get(off + 2)? as usize;
        let abstract_syntax = syntax(pdu, off + 4)?;
        off += 24;
        let mut transfer_syntaxes = Vec::with_capacity(n_ts);
        for _ in 0..n_ts {
            transfer_syntaxes.push(syntax(pdu, off)?);
            off += 20;
        }
        contexts.push(ContextElem {
            id,
            abstract_syntax,
            transfer_syntaxes,
        });
    }
    Some(Bind {
        max_xmit_frag,
        max_recv_frag,
        assoc_group,
        contexts,
    })
}

/// One `p_result_t` of a bind_ack / alter_context_resp.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ContextResult {
    pub result: u16,
    pub reason: u16,
    pub transfer: Syntax,
}

pub(crate) const NULL_SYNTAX: Syntax = Syntax {
    uuid: [0; 16],
    version: 0,
};

fn header(ptype: u8, flags: u8, call_id: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&[5, 0, ptype, flags]);
    v.extend_from_slice(&DREP_LE);
    v.extend_from_slice(&[0, 0, 0, 0]); // frag_length, auth_length: patched / zero
    v.extend_from_slice(&call_id.to_le_bytes());
    v
}

fn finish(mut v: Vec<u8>) -> Vec<u8> {
    let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
    v[8..10].copy_from_slice(&len.to_le_bytes());
    v
}

fn pad4(v: &mut Vec<u8>) {
    let target = v.len().next_multiple_of(4);
    v.resize(target, 0);
}

/// bind_ack (`ptype` = 12) or alter_context_resp (15).
#[allow(clippy::too_many_arguments)]
pub(crate) fn bind_ack(
    ptype: u8,
    call_id: u32,
    max_xmit_frag: u16,
    max_recv_frag: u16,
    assoc_group: u32,
    sec_addr: &str,
    results: &[ContextResult],
) -> Vec<u8> {
    let mut v = header(ptype, PFC_FIRST_FRAG | PFC_LAST_FRAG, call_id);
    v.extend_from_slice(&max_xmit_frag.to_le_bytes());
    v.extend_from_slice(&max_recv_frag.to_le_bytes());
    v.extend_from_slice(&assoc_group.to_le_bytes());
    if sec_addr.is_empty() {
        v.extend_from_slice(&0u16.to_le_bytes());
    } else {
        let len = u16::try_from(sec_addr.len() + 1).unwrap_or(0);
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(sec_addr.as_bytes());
        v.push(0);
    }
    pad4(&mut v);
    // n_results is a u8; callers never pass more than the bind held (<= 255).
    v.extend_from_slice(&[results.len() as u8, 0, 0, 0]);
    for r in results {
        v.extend_from_slice(&r.result.to_le_bytes());
        v.extend_from_slice(&r.reason.to_le_bytes());
        v.extend_from_slice(&r.transfer.uuid);
        v.extend_from_slice(&r.transfer.version.to_le_bytes());
    }
    finish(v)
}

/// bind_nak offering protocol version 5.0.
pub(crate) fn bind_nak(call_id: u32, reason: u16) -> Vec<u8> {
    let mut v = header(PTYPE_BIND_NAK, PFC_FIRST_FRAG | PFC_LAST_FRAG, call_id);
    v.extend_from_slice(&reason.to_le_bytes());
    v.extend_from_slice(&[1, 5, 0]);
    pad4(&mut v);
    finish(v)
}

/// A fault for a call that was not executed.
pub(crate) fn fault(call_id: u32, context_id: u16, status: u32) -> Vec<u8> {
    let mut v = header(
        PTYPE_FAULT,
        PFC_FIRST_FRAG | PFC_LAST_FRAG | PFC_DID_NOT_EXECUTE,
        call_id,
    );
    v.extend_from_slice(&0u32.to_le_bytes()); // alloc_hint: faults carry no stub
    v.extend_from_slice(&context_id.to_le_bytes());
    v.extend_from_slice(&[0, 0]); // cancel_count, reserved
    v.extend_from_slice(&status.to_le_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    finish(v)
}

/// Splits a response stub into response PDUs of at most `max_frag` bytes each.
/// Every fragment but the last carries a multiple of 8 stub bytes; `alloc_hint`
/// is the stub remaining from that fragment on.
pub(crate) fn responses(call_id: u32, context_id: u16, stub: &[u8], max_frag: u16) -> Vec<Vec<u8>> {
    let per = ((max_frag as usize).saturating_sub(RESPONSE_HEADER_LEN) & !7).max(8);
    let mut out = Vec::with_capacity(stub.len() / per + 1);
    let mut off = 0;
    loop {
        let chunk = (stub.len() - off).min(per);
        let mut flags = 0;
        if off == 0 {
            flags |= PFC_FIRST_FRAG;
        }
        if off + chunk == stub.len() {
            flags |= PFC_LAST_FRAG;
        }
        let mut v = header(PTYPE_RESPONSE, flags, call_id);
        let hint = u32::try_from(stub.len() - off).unwrap_or(u32::MAX);
        v.extend_from_slice(&hint.to_le_bytes());
        v.extend_from_slice(&context_id.to_le_bytes());
        v.extend_from_slice(&[0, 0]); // cancel_count, reserved
        v.extend_from_slice(&stub[off..off + chunk]);
        out.push(finish(v));
        off += chunk;
        if off == stub.len() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_wire_form() {
        // From the bind in share-listing.pcap.
        let wire = [
            0x04, 0x5d, 0x88, 0x8a, 0xeb, 0x1c, 0xc9, 0x11, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10,
            0x48, 0x60,
        ];
        assert_eq!(NDR20, wire);
    }

    #[test]
    fn fragmenting() {
        let stub: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let frags = responses(9, 1, &stub, 1432);
        let mut joined = Vec::new();
        let mut remaining = stub.len();
        for (i, f) in frags.iter().enumerate() {
            assert!(f.len() <= 1432);
            assert_eq!(le16(f, 8).unwrap() as usize, f.len());
            assert_eq!(le32(f, 16).unwrap() as usize, remaining);
            assert_eq!(f[3] & PFC_FIRST_FRAG != 0, i == 0);
            assert_eq!(f[3] & PFC_LAST_FRAG != 0, i == frags.len() - 1);
            let body = &f[24..];
            if i + 1 < frags.len() {
                assert_eq!(body.len() % 8, 0);
            }
            remaining -= body.len();
            joined.extend_from_slice(body);
        }
        assert_eq!(joined, stub);
        // Empty stub: one fragment.
        assert_eq!(responses(1, 0, &[], 4280).len(), 1);
    }

    #[test]
    fn framing_errors() {
        assert!(frame(&[4]).is_err());
        assert!(matches!(frame(&[5, 0, 0, 3]), Ok(None)));
        let mut h = [5u8, 0, 0, 3, 0x10, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0];
        assert!(frame(&h).is_err());
        h[4] = 0x20;
        assert!(frame(&h).is_err());
        h[4] = 0x10;
        h[8] = 17;
        assert!(matches!(frame(&h), Ok(None)));
    }
}
