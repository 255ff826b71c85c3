//! SPNEGO (RFC 4178, with the MS-SPNG NegTokenInit2 extension) tokens: parse what a
//! client sends, encode what the server answers.
//!
//! Owns: the NegotiationToken CHOICE (NegTokenInit / NegTokenResp), the GSS-API
//! InitialContextToken wrapper, and the server's NegTokenInit2 for the SMB2 NEGOTIATE
//! response.
//! Must never: decide whether a logon succeeds (that is `acceptor`/`ntlm`), or panic on
//! input: every field is read through the bounds-checked `der` reader.

use crate::der::{self, context, Reader, TAG_APPLICATION_0, TAG_ENUMERATED, TAG_GENERAL_STRING};
use crate::der::{TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE};
use crate::AuthError;

/// Content octets of the SPNEGO OID 1.3.6.1.5.5.2 (RFC 4178 4.1).
pub const OID_SPNEGO: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
/// Content octets of the NTLMSSP OID 1.3.6.1.4.1.311.2.2.10 (MS-NLMP 1.9).
pub const OID_NTLMSSP: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a];

/// The negHints hintName Windows and Samba put in NegTokenInit2 (MS-SPNG 2.2.1).
const NEG_HINTS_NAME: &[u8] = b"not_defined_in_RFC4178@please_ignore";

/// `negState` of a NegTokenResp (RFC 4178 4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegState {
    AcceptCompleted = 0,
    AcceptIncomplete = 1,
    Reject = 2,
    RequestMic = 3,
}

impl NegState {
    fn from_u8(v: u8) -> Result<Self, AuthError> {
        Ok(match v {
            0 => Self::AcceptCompleted,
            1 => Self::AcceptIncomplete,
            2 => Self::Reject,
            3 => Self::RequestMic,
            _ => return Err(AuthError::Malformed("SPNEGO: unknown negState")),
        })
    }
}

/// NegTokenInit (RFC 4178 4.2.1), as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegTokenInit<'a> {
    /// The mechanism OIDs (content octets), in the client's order of preference.
    pub mech_types: Vec<&'a [u8]>,
    /// The DER encoding of the MechTypeList exactly as received: what mechListMIC covers.
    pub mech_types_der: &'a [u8],
    /// The optimistic token for the first mechanism, if any.
    pub mech_token: Option<&'a [u8]>,
}

/// NegTokenResp (RFC 4178 4.2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NegTokenResp<'a> {
    pub neg_state: Option<NegState>,
    /// OID content octets.
    pub supported_mech: Option<&'a [u8]>,
    pub response_token: Option<&'a [u8]>,
    pub mech_list_mic: Option<&'a [u8]>,
}

/// `NegotiationToken ::= CHOICE { negTokenInit [0], negTokenResp [1] }` (RFC 4178 4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NegotiationToken<'a> {
    Init(NegTokenInit<'a>),
    Resp(NegTokenResp<'a>),
}

impl<'a> NegotiationToken<'a> {
    /// Parses a client token: a GSS-API InitialContextToken (`[APPLICATION 0]` with the
    /// SPNEGO OID) carrying a NegTokenInit, or a bare `[0]` NegTokenInit or `[1]`
    /// NegTokenResp. Bytes after the outermost element are ignored.
    pub fn parse(token: &'a [u8]) -> Result<Self, AuthError> {
        let outer = Reader::new(token).next_tlv()?;
        match outer.tag {
            TAG_APPLICATION_0 => {
                let mut r = Reader::new(outer.content);
                let oid = r.expect(TAG_OID, "SPNEGO: InitialContextToken without thisMech")?;
                if oid.content != OID_SPNEGO {
                    return Err(AuthError::Unsupported(
                        "GSS-API token for a mechanism other than SPNEGO",
                    ));
                }
                let inner = r.expect(
                    context(0),
                    "SPNEGO: InitialContextToken must carry a NegTokenInit",
                )?;
                if !r.is_empty() {
                    return Err(AuthError::Malformed(
                        "SPNEGO: trailing data in InitialContextToken",
                    ));
                }
                Ok(Self::Init(NegTokenInit::parse_content(inner.content)?))
            }
            t if t == context(0) => Ok(Self::Init(NegTokenInit::parse_content(outer.content)?)),
            t if t == context(1) => Ok(Self::Resp(NegTokenResp::parse_content(outer.content)?)),
            _ => Err(AuthError::Malformed("SPNEGO: not a NegotiationToken")),
        }
    }
}

/// The fields of a SEQUENCE that must fill `content` exactly.
fn sequence_fields<'a>(content: &'a [u8], what: &'static str) -> Result<Reader<'a>, AuthError> {
    let mut r = Reader::new(content);
    let seq = r.expect(TAG_SEQUENCE, what)?;
    if !r.is_empty() {
        return Err(AuthError::Malformed("SPNEGO: trailing data after SEQUENCE"));
    }
    Ok(Reader::new(seq.content))
}

/// The single element inside an explicitly tagged field.
fn explicit<'a>(content: &'a [u8], tag: u8, what: &'static str) -> Result<der::Tlv<'a>, AuthError> {
    let mut r = Reader::new(content);
    let tlv = r.expect(tag, what)?;
    if !r.is_empty() {
        return Err(AuthError::Malformed(
            "SPNEGO: trailing data in tagged field",
        ));
    }
    Ok(tlv)
}

impl<'a> NegTokenInit<'a> {
    /// Parses the content of the `[0]` element (a SEQUENCE). Fields the server does not
    /// use (reqFlags, mechListMIC, negHints) are checked for framing and skipped.
    pub fn parse_content(content: &'a [u8]) -> Result<Self, AuthError> {
        let mut fields = sequence_fields(content, "SPNEGO: NegTokenInit is not a SEQUENCE")?;
        let mut mech_types = None;
        let mut mech_token = None;
        let mut last_tag = None;
        while !fields.is_empty() {
            let f = fields.next_tlv()?;
            if last_tag.is_some_and(|t| f.tag <= t) {
                return Err(AuthError::Malformed(
                    "SPNEGO: NegTokenInit fields out of order",
                ));
            }
            last_tag = Some(f.tag);
            match f.tag {
                t if t == context(0) => {
                    let list = explicit(
                        f.content,
                        TAG_SEQUENCE,
                        "SPNEGO: mechTypes is not a SEQUENCE",
                    )?;
                    let mut oids = Vec::new();
                    let mut r = Reader::new(list.content);
                    while !r.is_empty() {
                        oids.push(
                            r.expect(TAG_OID, "SPNEGO: mechTypes holds a non-OID")?
                                .content,
                        );
                    }
                    mech_types = Some((oids, list.raw));
                }
                t if t == context(2) => {
                    let tok = explicit(
                        f.content,
                        TAG_OCTET_STRING,
                        "SPNEGO: mechToken is not an OCTET STRING",
                    )?;
                    mech_token = Some(tok.content);
                }
                t if (context(1)..=context(4)).contains(&t) => {}
                _ => return Err(AuthError::Malformed("SPNEGO: unknown NegTokenInit field")),
            }
        }
        let (mech_types, mech_types_der) = mech_types.ok_or(AuthError::Malformed(
            "SPNEGO: NegTokenInit without mechTypes",
        ))?;
        if mech_types.is_empty() {
            return Err(AuthError::Malformed("SPNEGO: empty mechTypes"));
        }
        Ok(Self {
            mech_types,
            mech_types_der,
            mech_token,
        })
    }
}

impl<'a> NegTokenResp<'a> {
    /// Parses the content of the `[1]` element (a SEQUENCE).
    pub fn parse_content(content: &'a [u8]) -> Result<Self, AuthError> {
        let mut fields = sequence_fields(content, "SPNEGO: NegTokenResp is not a SEQUENCE")?;
        let mut resp = Self::default();
        let mut last_tag = None;
        while !fields.is_empty() {
            let f = fields.next_tlv()?;
            if last_tag.is_some_and(|t| f.tag <= t) {
                return Err(AuthError::Malformed(
                    "SPNEGO: NegTokenResp fields out of order",
                ));
            }
            last_tag = Some(f.tag);
            match f.tag {
                t if t == context(0) => {
                    let e = explicit(
                        f.content,
                        TAG_ENUMERATED,
                        "SPNEGO: negState is not ENUMERATED",
                    )?;
                    match e.content {
                        [v] => resp.neg_state = Some(NegState::from_u8(*v)?),
                        _ => return Err(AuthError::Malformed("SPNEGO: negState length")),
                    }
                }
                t if t == context(1) => {
                    resp.supported_mech = Some(
                        explicit(f.content, TAG_OID, "SPNEGO: supportedMech is not an OID")?
                            .content,
                    );
                }
                t if t == context(2) => {
                    resp.response_token = Some(
                        explicit(
                            f.content,
                            TAG_OCTET_STRING,
                            "SPNEGO: responseToken is not an OCTET STRING",
                        )?
                        .content,
                    );
                }
                t if t == context(3) => {
                    resp.mech_list_mic = Some(
                        explicit(
                            f.content,
                            TAG_OCTET_STRING,
                            "SPNEGO: mechListMIC is not an OCTET STRING",
                        )?
                        .content,
                    );
                }
                _ => return Err(AuthError::Malformed("SPNEGO: unknown NegTokenResp field")),
            }
        }
        Ok(resp)
    }

    /// DER encoding as `[1] NegTokenResp`, the form a server sends.
    pub fn encode(&self) -> Vec<u8> {
        let mut seq = Vec::new();
        if let Some(state) = self.neg_state {
            der::write_tlv(
                &mut seq,
                context(0),
                &der::tlv(TAG_ENUMERATED, &[state as u8]),
            );
        }
        if let Some(mech) = self.supported_mech {
            der::write_tlv(&mut seq, context(1), &der::tlv(TAG_OID, mech));
        }
        if let Some(tok) = self.response_token {
            der::write_tlv(&mut seq, context(2), &der::tlv(TAG_OCTET_STRING, tok));
        }
        if let Some(mic) = self.mech_list_mic {
            der::write_tlv(&mut seq, context(3), &der::tlv(TAG_OCTET_STRING, mic));
        }
        der::tlv(context(1), &der::tlv(TAG_SEQUENCE, &seq))
    }
}

/// The SPNEGO NegTokenInit2 (MS-SPNG 2.2.1) a server puts in its SMB2 NEGOTIATE
/// response SecurityBuffer (MS-SMB2 3.3.5.4): mechTypes = `[NTLMSSP]` and the negHints
/// hintName "not_defined_in_RFC4178@please_ignore", as Samba and Windows send them.
pub fn spnego_negotiate_token() -> Vec<u8> {
    let mech_types = der::tlv(TAG_SEQUENCE, &der::tlv(TAG_OID, OID_NTLMSSP));
    let hints = der::tlv(
        TAG_SEQUENCE,
        &der::tlv(context(0), &der::tlv(TAG_GENERAL_STRING, NEG_HINTS_NAME)),
    );
    let mut init2 = der::tlv(context(0), &mech_types);
    der::write_tlv(&mut init2, context(3), &hints);
    let mut inner = der::tlv(TAG_OID, OID_SPNEGO);
    der::write_tlv(&mut inner, context(0), &der::tlv(TAG_SEQUENCE, &init2));
    der::tlv(TAG_APPLICATION_0, &inner)
}

/// Encodes a client NegTokenInit (InitialContextToken form). Used by tests and tools
/// playing the client; the server never sends one after NEGOTIATE.
pub fn encode_neg_token_init(mech_types: &[&[u8]], mech_token: Option<&[u8]>) -> Vec<u8> {
    let mut list = Vec::new();
    for oid in mech_types {
        der::write_tlv(&mut list, TAG_OID, oid);
    }
    let mut seq = der::tlv(context(0), &der::tlv(TAG_SEQUENCE, &list));
    if let Some(tok) = mech_token {
        der::write_tlv(&mut seq, context(2), &der::tlv(TAG_OCTET_STRING, tok));
    }
    let mut inner = der::tlv(TAG_OID, OID_SPNEGO);
    der::write_tlv(&mut inner, context(0), &der::tlv(TAG_SEQUENCE, &seq));
    der::tlv(TAG_APPLICATION_0, &inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiate_token_parses_back() {
        let tok = spnego_negotiate_token();
        match NegotiationToken::parse(&tok).unwrap() {
            NegotiationToken::Init(init) => {
                assert_eq!(init.mech_types, vec![OID_NTLMSSP]);
                assert_eq!(init.mech_token, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resp_round_trip() {
        let resp = NegTokenResp {
            neg_state: Some(NegState::AcceptIncomplete),
            supported_mech: Some(OID_NTLMSSP),
            response_token: Some(&[1u8; 200]),
            mech_list_mic: Some(&[2u8; 16]),
        };
        let enc = resp.encode();
        assert_eq!(
            NegotiationToken::parse(&enc).unwrap(),
            NegotiationToken::Resp(resp)
        );
    }

    #[test]
    fn init_round_trip() {
        let krb5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
        let enc = encode_neg_token_init(&[krb5, OID_NTLMSSP], Some(b"NTLMSSP\0xyz"));
        let NegotiationToken::Init(init) = NegotiationToken::parse(&enc).unwrap() else {
            panic!()
        };
        assert_eq!(init.mech_types, vec![krb5, OID_NTLMSSP]);
        assert_eq!(init.mech_token, Some(&b"NTLMSSP\0xyz"[..]));
        assert_eq!(init.mech_types_der[0], TAG_SEQUENCE);
        assert_eq!(init.mech_types_der.len(), 2 + 11 + 12);
    }

    #[test]
    fn rejects_wrong_shapes() {
        assert!(NegotiationToken::parse(&[0xa1, 0x00]).is_err());
        assert!(NegotiationToken::parse(&[0xa0, 0x02, 0x30, 0x00]).is_err()); // no mechTypes
        assert!(NegotiationToken::parse(&[0x04, 0x00]).is_err());
        // negState out of range
        assert!(
            NegotiationToken::parse(&[0xa1, 0x07, 0x30, 0x05, 0xa0, 0x03, 0x0a, 0x01, 0x09])
                .is_err()
        );
    }
}
