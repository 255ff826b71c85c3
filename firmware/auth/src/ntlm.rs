//! NTLMSSP (MS-NLMP) for the server: message layouts, the CHALLENGE the server sends,
//! NTLMv2 verification of the AUTHENTICATE it receives, and NTLM2 session security
//! (message signatures) for the SPNEGO mechListMIC.
//!
//! Owns: NEGOTIATE_MESSAGE / CHALLENGE_MESSAGE / AUTHENTICATE_MESSAGE (2.2.1.1-3),
//! AV_PAIR (2.2.2.1), NTLMv2_RESPONSE (2.2.2.8), NTOWFv2 and the session keys (3.3.2,
//! 3.4.5), NTLMSSP_MESSAGE_SIGNATURE with extended session security (2.2.2.9.1, 3.4.4.2).
//! Must never: accept LM or NTLMv1 responses, anonymous logons, or a MIC that does
//! not verify; read past any buffer (every offset/length pair is checked); panic on
//! input; hold on to a password or NT hash after a call returns.

use ctutils::CtEq;
use hmac::{Hmac, KeyInit, Mac};
use md4::Md4;
use md5::{Digest, Md5};

use crate::rc4::{rc4k, Rc4};
use crate::{AuthError, ServerIdentity};

/// "NTLMSSP\0", the Signature of every NTLMSSP message.
pub const NTLMSSP_SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
/// MessageType of a NEGOTIATE_MESSAGE.
pub const NEGOTIATE_MESSAGE_TYPE: u32 = 1;
/// MessageType of a CHALLENGE_MESSAGE.
pub const CHALLENGE_MESSAGE_TYPE: u32 = 2;
/// MessageType of an AUTHENTICATE_MESSAGE.
pub const AUTHENTICATE_MESSAGE_TYPE: u32 = 3;

/// NegotiateFlags bits (MS-NLMP 2.2.2.5).
pub mod flags {
    pub const NTLMSSP_NEGOTIATE_UNICODE: u32 = 0x0000_0001;
    pub const NTLM_NEGOTIATE_OEM: u32 = 0x0000_0002;
    pub const NTLMSSP_REQUEST_TARGET: u32 = 0x0000_0004;
    pub const NTLMSSP_NEGOTIATE_SIGN: u32 = 0x0000_0010;
    pub const NTLMSSP_NEGOTIATE_SEAL: u32 = 0x0000_0020;
    pub const NTLMSSP_NEGOTIATE_DATAGRAM: u32 = 0x0000_0040;
    pub const NTLMSSP_NEGOTIATE_LM_KEY: u32 = 0x0000_0080;
    pub const NTLMSSP_NEGOTIATE_NTLM: u32 = 0x0000_0200;
    pub const NTLMSSP_ANONYMOUS: u32 = 0x0000_0800;
    pub const NTLMSSP_NEGOTIATE_OEM_DOMAIN_SUPPLIED: u32 = 0x0000_1000;
    pub const NTLMSSP_NEGOTIATE_OEM_WORKSTATION_SUPPLIED: u32 = 0x0000_2000;
    pub const NTLMSSP_NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
    pub const NTLMSSP_TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
    pub const NTLMSSP_TARGET_TYPE_SERVER: u32 = 0x0002_0000;
    pub const NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
    pub const NTLMSSP_NEGOTIATE_IDENTIFY: u32 = 0x0010_0000;
    pub const NTLMSSP_REQUEST_NON_NT_SESSION_KEY: u32 = 0x0040_0000;
    pub const NTLMSSP_NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
    pub const NTLMSSP_NEGOTIATE_VERSION: u32 = 0x0200_0000;
    pub const NTLMSSP_NEGOTIATE_128: u32 = 0x2000_0000;
    pub const NTLMSSP_NEGOTIATE_KEY_EXCH: u32 = 0x4000_0000;
    pub const NTLMSSP_NEGOTIATE_56: u32 = 0x8000_0000;
}
use flags::*;

/// AvId values of AV_PAIR (MS-NLMP 2.2.2.1).
pub mod av_id {
    pub const MSV_AV_EOL: u16 = 0;
    pub const MSV_AV_NB_COMPUTER_NAME: u16 = 1;
    pub const MSV_AV_NB_DOMAIN_NAME: u16 = 2;
    pub const MSV_AV_DNS_COMPUTER_NAME: u16 = 3;
    pub const MSV_AV_DNS_DOMAIN_NAME: u16 = 4;
    pub const MSV_AV_DNS_TREE_NAME: u16 = 5;
    pub const MSV_AV_FLAGS: u16 = 6;
    pub const MSV_AV_TIMESTAMP: u16 = 7;
    pub const MSV_AV_SINGLE_HOST: u16 = 8;
    pub const MSV_AV_TARGET_NAME: u16 = 9;
    pub const MSV_AV_CHANNEL_BINDINGS: u16 = 10;
}

/// MsvAvFlags bit: "the client is providing message integrity in the MIC field".
pub const MSV_AV_FLAG_MIC_PRESENT: u32 = 0x0000_0002;

/// The VERSION (2.2.2.10) the server sends: 6.1 build 0, NTLMSSP_REVISION_W2K3 (as Samba).
pub const SERVER_VERSION: [u8; 8] = [6, 1, 0, 0, 0, 0, 0, 0x0f];

/// Offset of the MIC in an AUTHENTICATE_MESSAGE that carries one.
const MIC_OFFSET: usize = 72;

// ---------------------------------------------------------------- byte helpers

fn u16_at(buf: &[u8], off: usize) -> Result<u16, AuthError> {
    buf.get(off..off + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or(AuthError::Malformed("NTLMSSP: message truncated"))
}

fn u32_at(buf: &[u8], off: usize) -> Result<u32, AuthError> {
    buf.get(off..off + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(AuthError::Malformed("NTLMSSP: message truncated"))
}

fn array_at<const N: usize>(buf: &[u8], off: usize) -> Result<[u8; N], AuthError> {
    buf.get(off..off + N)
        .and_then(|b| b.try_into().ok())
        .ok_or(AuthError::Malformed("NTLMSSP: message truncated"))
}

/// A Len/MaxLen/BufferOffset triple at `off`; returns the payload it points at and its
/// offset (None for an empty field).
fn payload_field(msg: &[u8], off: usize) -> Result<(&[u8], Option<usize>), AuthError> {
    let len = usize::from(u16_at(msg, off)?);
    let offset = u32_at(msg, off + 4)? as usize;
    if len == 0 {
        return Ok((&[], None));
    }
    let data = offset
        .checked_add(len)
        .and_then(|end| msg.get(offset..end))
        .ok_or(AuthError::Malformed(
            "NTLMSSP: field points outside the message",
        ))?;
    Ok((data, Some(offset)))
}

fn check_header(msg: &[u8], message_type: u32) -> Result<(), AuthError> {
    if msg.get(..8) != Some(&NTLMSSP_SIGNATURE[..]) {
        return Err(AuthError::Malformed("NTLMSSP: bad signature"));
    }
    if u32_at(msg, 8)? != message_type {
        return Err(AuthError::Malformed("NTLMSSP: unexpected message type"));
    }
    Ok(())
}

/// UTF-16LE of a string.
pub fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Decodes a name field: UTF-16LE when UNICODE was negotiated, else OEM (read as Latin-1).
fn decode_name(bytes: &[u8], unicode: bool) -> Result<String, AuthError> {
    if !unicode {
        return Ok(bytes.iter().map(|&b| char::from(b)).collect());
    }
    let chunks = bytes.chunks_exact(2);
    if !chunks.remainder().is_empty() {
        return Err(AuthError::Malformed("NTLMSSP: odd-length UTF-16 string"));
    }
    let units = chunks.map(|c| u16::from_le_bytes([c[0], c[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| AuthError::Malformed("NTLMSSP: invalid UTF-16 string"))
}

/// Upper-cases the way Windows does for NTOWFv2: character by character, keeping any
/// character whose upper case is not a single character (so "ß" stays "ß").
pub fn upper_case(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

pub(crate) fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac =
        <Hmac<Md5> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).to_bool()
}

// ---------------------------------------------------------------- keys

/// NT hash = MD4(UTF-16LE(password)) (MS-NLMP 3.3.1, NTOWFv1).
pub fn nt_hash(password: &str) -> [u8; 16] {
    Md4::digest(utf16le(password)).into()
}

/// NTOWFv2 = HMAC_MD5(NT hash, UNICODE(Uppercase(User) + UserDom)) (MS-NLMP 3.3.2).
pub fn ntowf_v2(nt_hash: &[u8; 16], user: &str, domain: &str) -> [u8; 16] {
    let mut who = upper_case(user);
    who.push_str(domain);
    hmac_md5(nt_hash, &[&utf16le(&who)])
}

// ---------------------------------------------------------------- AV pairs

/// Iterator over AV_PAIRs (MS-NLMP 2.2.2.1), ending at MsvAvEOL or the end of the data.
/// Yields `Err` once (then stops) if a pair runs past the data.
#[derive(Debug, Clone)]
pub struct AvPairs<'a> {
    rest: &'a [u8],
    done: bool,
}

/// Reads a TargetInfo / NTLMv2 client-challenge AV_PAIR list.
pub fn av_pairs(data: &[u8]) -> AvPairs<'_> {
    AvPairs {
        rest: data,
        done: false,
    }
}

impl<'a> Iterator for AvPairs<'a> {
    type Item = Result<(u16, &'a [u8]), AuthError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.rest.is_empty() {
            return None;
        }
        let pair = (|| {
            let id = u16_at(self.rest, 0)?;
            let len = usize::from(u16_at(self.rest, 2)?);
            let value = self
                .rest
                .get(4..4 + len)
                .ok_or(AuthError::Malformed("NTLMSSP: AV_PAIR runs past its list"))?;
            Ok((id, value, 4 + len))
        })();
        match pair {
            Ok((av_id::MSV_AV_EOL, _, _)) => {
                self.done = true;
                None
            }
            Ok((id, value, used)) => {
                self.rest = &self.rest[used..];
                Some(Ok((id, value)))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Appends one AV_PAIR.
pub fn write_av_pair(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
}

// ---------------------------------------------------------------- NEGOTIATE

/// NEGOTIATE_MESSAGE (MS-NLMP 2.2.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiateMessage<'a> {
    pub negotiate_flags: u32,
    /// OEM bytes; empty unless NTLMSSP_NEGOTIATE_OEM_DOMAIN_SUPPLIED.
    pub domain_name: &'a [u8],
    /// OEM bytes; empty unless NTLMSSP_NEGOTIATE_OEM_WORKSTATION_SUPPLIED.
    pub workstation: &'a [u8],
    pub version: Option<[u8; 8]>,
}

impl<'a> NegotiateMessage<'a> {
    /// Parses a NEGOTIATE_MESSAGE. The DomainName / Workstation fields and Version are
    /// optional at the end (old clients send a 16-byte message).
    pub fn parse(msg: &'a [u8]) -> Result<Self, AuthError> {
        check_header(msg, NEGOTIATE_MESSAGE_TYPE)?;
        let negotiate_flags = u32_at(msg, 12)?;
        let (domain_name, workstation) = if msg.len() >= 32 {
            (payload_field(msg, 16)?.0, payload_field(msg, 24)?.0)
        } else {
            (&[][..], &[][..])
        };
        let version = if negotiate_flags & NTLMSSP_NEGOTIATE_VERSION != 0 && msg.len() >= 40 {
            Some(array_at(msg, 32)?)
        } else {
            None
        };
        Ok(Self {
            negotiate_flags,
            domain_name,
            workstation,
            version,
        })
    }
}

// ---------------------------------------------------------------- CHALLENGE

/// CHALLENGE_MESSAGE (MS-NLMP 2.2.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeMessage<'a> {
    pub target_name: &'a [u8],
    pub negotiate_flags: u32,
    pub server_challenge: [u8; 8],
    pub target_info: &'a [u8],
    pub version: Option<[u8; 8]>,
}

impl<'a> ChallengeMessage<'a> {
    pub fn parse(msg: &'a [u8]) -> Result<Self, AuthError> {
        check_header(msg, CHALLENGE_MESSAGE_TYPE)?;
        let target_name = payload_field(msg, 12)?.0;
        let negotiate_flags = u32_at(msg, 20)?;
        let server_challenge = array_at(msg, 24)?;
        let target_info = if msg.len() >= 48 {
            payload_field(msg, 40)?.0
        } else {
            &[]
        };
        let version = if negotiate_flags & NTLMSSP_NEGOTIATE_VERSION != 0 && msg.len() >= 56 {
            Some(array_at(msg, 48)?)
        } else {
            None
        };
        Ok(Self {
            target_name,
            negotiate_flags,
            server_challenge,
            target_info,
            version,
        })
    }
}

/// The NegotiateFlags a server answers `client_flags` with (MS-NLMP 3.2.5.1.1): the
/// server's fixed set plus whichever of SIGN, SEAL, EXTENDED_SESSIONSECURITY, 128, 56
/// and KEY_EXCH the client asked for.
pub fn challenge_flags(client_flags: u32) -> u32 {
    const FIXED: u32 = NTLMSSP_NEGOTIATE_UNICODE
        | NTLMSSP_REQUEST_TARGET
        | NTLMSSP_NEGOTIATE_NTLM
        | NTLMSSP_NEGOTIATE_ALWAYS_SIGN
        | NTLMSSP_TARGET_TYPE_SERVER
        | NTLMSSP_NEGOTIATE_TARGET_INFO
        | NTLMSSP_NEGOTIATE_VERSION;
    const ECHOED: u32 = NTLMSSP_NEGOTIATE_SIGN
        | NTLMSSP_NEGOTIATE_SEAL
        | NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
        | NTLMSSP_NEGOTIATE_128
        | NTLMSSP_NEGOTIATE_56
        | NTLMSSP_NEGOTIATE_KEY_EXCH;
    FIXED | (client_flags & ECHOED)
}

/// Builds the CHALLENGE_MESSAGE for a client's NEGOTIATE flags: TargetName = the NetBIOS
/// domain, TargetInfo = NbDomainName, NbComputerName, DnsDomainName, DnsComputerName,
/// Timestamp (`now_filetime`), EOL; Version = [`SERVER_VERSION`]. Same layout as Samba.
pub fn build_challenge(
    client_flags: u32,
    identity: &ServerIdentity,
    server_challenge: &[u8; 8],
    now_filetime: u64,
) -> Vec<u8> {
    let target_name = utf16le(&identity.netbios_domain);
    let mut target_info = Vec::new();
    write_av_pair(&mut target_info, av_id::MSV_AV_NB_DOMAIN_NAME, &target_name);
    write_av_pair(
        &mut target_info,
        av_id::MSV_AV_NB_COMPUTER_NAME,
        &utf16le(&identity.netbios_name),
    );
    write_av_pair(
        &mut target_info,
        av_id::MSV_AV_DNS_DOMAIN_NAME,
        &utf16le(&identity.dns_domain),
    );
    write_av_pair(
        &mut target_info,
        av_id::MSV_AV_DNS_COMPUTER_NAME,
        &utf16le(&identity.dns_name),
    );
    write_av_pair(
        &mut target_info,
        av_id::MSV_AV_TIMESTAMP,
        &now_filetime.to_le_bytes(),
    );
    write_av_pair(&mut target_info, av_id::MSV_AV_EOL, &[]);

    const HEADER: usize = 56;
    let name_off = HEADER;
    let info_off = name_off + target_name.len();
    let mut msg = Vec::with_capacity(info_off + target_info.len());
    msg.extend_from_slice(NTLMSSP_SIGNATURE);
    msg.extend_from_slice(&CHALLENGE_MESSAGE_TYPE.to_le_bytes());
    push_field(&mut msg, target_name.len(), name_off);
    msg.extend_from_slice(&challenge_flags(client_flags).to_le_bytes());
    msg.extend_from_slice(server_challenge);
    msg.extend_from_slice(&[0; 8]);
    push_field(&mut msg, target_info.len(), info_off);
    msg.extend_from_slice(&SERVER_VERSION);
    msg.extend_from_slice(&target_name);
    msg.extend_from_slice(&target_info);
    msg
}

/// Appends a Len/MaxLen/BufferOffset triple. Lengths here are bounded by names the
/// operator configured; a name too long for 16 bits is cut to a length of 0xffff.
pub fn push_field(out: &mut Vec<u8>, len: usize, offset: usize) {
    let len = u16::try_from(len).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(offset as u32).to_le_bytes());
}

// ---------------------------------------------------------------- AUTHENTICATE

/// AUTHENTICATE_MESSAGE (MS-NLMP 2.2.1.3), fields as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticateMessage<'a> {
    pub lm_challenge_response: &'a [u8],
    pub nt_challenge_response: &'a [u8],
    pub domain_name: &'a [u8],
    pub user_name: &'a [u8],
    pub workstation: &'a [u8],
    pub encrypted_random_session_key: &'a [u8],
    pub negotiate_flags: u32,
    pub version: Option<[u8; 8]>,
    /// Bytes 72..88 when the payload leaves room for them (it does whenever a client
    /// sends a MIC); whether they are a MIC is said by MsvAvFlags in the NT response.
    pub mic: Option<[u8; 16]>,
}

impl<'a> AuthenticateMessage<'a> {
    pub fn parse(msg: &'a [u8]) -> Result<Self, AuthError> {
        check_header(msg, AUTHENTICATE_MESSAGE_TYPE)?;
        let mut first_payload = msg.len();
        let mut field = |off: usize| -> Result<&'a [u8], AuthError> {
            let (data, at) = payload_field(msg, off)?;
            if let Some(at) = at {
                first_payload = first_payload.min(at);
            }
            Ok(data)
        };
        let lm_challenge_response = field(12)?;
        let nt_challenge_response = field(20)?;
        let domain_name = field(28)?;
        let user_name = field(36)?;
        let workstation = field(44)?;
        let encrypted_random_session_key = field(52)?;
        let negotiate_flags = u32_at(msg, 60)?;
        let version = if first_payload >= 72 {
            Some(array_at(msg, 64)?)
        } else {
            None
        };
        let mic = if first_payload >= MIC_OFFSET + 16 {
            Some(array_at(msg, MIC_OFFSET)?)
        } else {
            None
        };
        Ok(Self {
            lm_challenge_response,
            nt_challenge_response,
            domain_name,
            user_name,
            workstation,
            encrypted_random_session_key,
            negotiate_flags,
            version,
            mic,
        })
    }
}

/// NTLMv2_RESPONSE (MS-NLMP 2.2.2.8): NTProofStr followed by the NTLMv2_CLIENT_CHALLENGE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtlmV2Response<'a> {
    pub nt_proof_str: [u8; 16],
    /// The whole NTLMv2_CLIENT_CHALLENGE ("temp" in 3.3.2), which NTProofStr covers.
    pub client_challenge_blob: &'a [u8],
    pub time_stamp: u64,
    pub challenge_from_client: [u8; 8],
    /// The client's AV_PAIR list.
    pub av_pairs: &'a [u8],
}

impl<'a> NtlmV2Response<'a> {
    /// Size of NTProofStr plus the fixed part of NTLMv2_CLIENT_CHALLENGE.
    pub const MIN_LEN: usize = 16 + 28;

    pub fn parse(nt_response: &'a [u8]) -> Result<Self, AuthError> {
        if nt_response.len() < Self::MIN_LEN {
            return Err(AuthError::Malformed("NTLMSSP: NTLMv2 response too short"));
        }
        let nt_proof_str = array_at(nt_response, 0)?;
        let blob = &nt_response[16..];
        Ok(Self {
            nt_proof_str,
            client_challenge_blob: blob,
            time_stamp: u64::from_le_bytes(array_at(blob, 8)?),
            challenge_from_client: array_at(blob, 16)?,
            av_pairs: &blob[28..],
        })
    }

    /// True if the client's MsvAvFlags say the AUTHENTICATE_MESSAGE carries a MIC.
    pub fn mic_present(&self) -> Result<bool, AuthError> {
        for pair in av_pairs(self.av_pairs) {
            let (id, value) = pair?;
            if id == av_id::MSV_AV_FLAGS {
                let v: [u8; 4] = value
                    .try_into()
                    .map_err(|_| AuthError::Malformed("NTLMSSP: MsvAvFlags length"))?;
                return Ok(u32::from_le_bytes(v) & MSV_AV_FLAG_MIC_PRESENT != 0);
            }
        }
        Ok(false)
    }
}

/// What a verified AUTHENTICATE_MESSAGE yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLogon {
    pub user: String,
    pub domain: String,
    pub workstation: String,
    /// SessionBaseKey = HMAC_MD5(NTOWFv2, NTProofStr).
    pub session_base_key: [u8; 16],
    /// ExportedSessionKey: the SMB2 Session.SessionKey.
    pub exported_session_key: [u8; 16],
    /// Flags in force: the AUTHENTICATE_MESSAGE's flags that the CHALLENGE offered.
    pub negotiate_flags: u32,
    /// Whether the AUTHENTICATE_MESSAGE carried a MIC (which then verified).
    pub mic_verified: bool,
}

/// Server-side check of an NTLMv2 AUTHENTICATE_MESSAGE (MS-NLMP 3.2.5.1.2, 3.3.2).
///
/// `negotiate` and `challenge` are the NEGOTIATE and CHALLENGE messages exactly as sent
/// (the MIC covers them). `lookup(user, domain)` returns the user's NT hash. The proof is
/// tried with NTOWFv2 over the domain as sent and then over the empty domain.
pub fn verify_authenticate(
    negotiate: &[u8],
    challenge: &[u8],
    authenticate: &[u8],
    lookup: &mut dyn FnMut(&str, &str) -> Option<[u8; 16]>,
) -> Result<VerifiedLogon, AuthError> {
    let chal = ChallengeMessage::parse(challenge)?;
    let auth = AuthenticateMessage::parse(authenticate)?;
    let unicode = auth.negotiate_flags & NTLMSSP_NEGOTIATE_UNICODE != 0;
    let user = decode_name(auth.user_name, unicode)?;
    let domain = decode_name(auth.domain_name, unicode)?;
    let workstation = decode_name(auth.workstation, unicode)?;

    let nt = auth.nt_challenge_response;
    if user.is_empty() && nt.is_empty() && matches!(auth.lm_challenge_response, [] | [0]) {
        return Err(AuthError::Anonymous);
    }
    match nt.len() {
        0 => return Err(AuthError::Unsupported("LM authentication")),
        24 => return Err(AuthError::Unsupported("NTLMv1 authentication")),
        _ => {}
    }
    let v2 = NtlmV2Response::parse(nt)?;
    let mic_present = v2.mic_present()?;

    // An unknown user costs the same work as a wrong password.
    let known = lookup(&user, &domain);
    let hash = known.unwrap_or([0u8; 16]);
    let mut ntowf = None;
    for d in [domain.as_str(), ""] {
        let candidate = ntowf_v2(&hash, &user, d);
        let proof = hmac_md5(
            &candidate,
            &[&chal.server_challenge, v2.client_challenge_blob],
        );
        if ct_eq(&proof, &v2.nt_proof_str) {
            ntowf = Some(candidate);
            break;
        }
        if domain.is_empty() {
            break;
        }
    }
    let ntowf = match (known, ntowf) {
        (Some(_), Some(k)) => k,
        _ => return Err(AuthError::LogonFailure { user }),
    };

    let session_base_key = hmac_md5(&ntowf, &[&v2.nt_proof_str]);
    let negotiate_flags = auth.negotiate_flags & chal.negotiate_flags;
    // KeyExchangeKey = SessionBaseKey for NTLMv2 (3.4.5.1).
    let exported_session_key = if negotiate_flags & NTLMSSP_NEGOTIATE_KEY_EXCH != 0
        && negotiate_flags & (NTLMSSP_NEGOTIATE_SIGN | NTLMSSP_NEGOTIATE_SEAL) != 0
    {
        let enc: &[u8; 16] = auth.encrypted_random_session_key.try_into().map_err(|_| {
            AuthError::Malformed("NTLMSSP: EncryptedRandomSessionKey must be 16 bytes")
        })?;
        rc4k(&session_base_key, enc)
    } else {
        session_base_key
    };

    if mic_present {
        let mic = auth
            .mic
            .ok_or(AuthError::Malformed("NTLMSSP: MIC announced but absent"))?;
        let expected = hmac_md5(
            &exported_session_key,
            &[
                negotiate,
                challenge,
                &authenticate[..MIC_OFFSET],
                &[0u8; 16],
                &authenticate[MIC_OFFSET + 16..],
            ],
        );
        if !ct_eq(&expected, &mic) {
            return Err(AuthError::LogonFailure { user });
        }
    }

    Ok(VerifiedLogon {
        user,
        domain,
        workstation,
        session_base_key,
        exported_session_key,
        negotiate_flags,
        mic_verified: mic_present,
    })
}

// ---------------------------------------------------------------- session security

/// Which way a message travels, choosing the signing/sealing keys (MS-NLMP 3.4.5.2-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// NTLM2 session security for one direction (extended session security, MS-NLMP
/// 3.4.4.2): signs and verifies NTLMSSP_MESSAGE_SIGNATUREs, keeping the sequence number
/// and the RC4 sealing handle that KEY_EXCH uses for the checksum.
#[derive(Clone)]
pub struct SessionSecurity {
    sign_key: [u8; 16],
    seal: Rc4,
    key_exch: bool,
    seq_num: u32,
}

impl SessionSecurity {
    /// Keys from ExportedSessionKey and the negotiated flags. Only extended session
    /// security is supported: without it NTLM signatures use RC4 over a CRC32.
    pub fn new(
        exported_session_key: &[u8; 16],
        negotiate_flags: u32,
        direction: Direction,
    ) -> Result<Self, AuthError> {
        if negotiate_flags & NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY == 0 {
            return Err(AuthError::Unsupported(
                "NTLM signatures without extended session security",
            ));
        }
        let (sign_magic, seal_magic): (&[u8], &[u8]) = match direction {
            Direction::ClientToServer => (
                b"session key to client-to-server signing key magic constant\0",
                b"session key to client-to-server sealing key magic constant\0",
            ),
            Direction::ServerToClient => (
                b"session key to server-to-client signing key magic constant\0",
                b"session key to server-to-client sealing key magic constant\0",
            ),
        };
        let sign_key = md5(&[exported_session_key, sign_magic]);
        let seal_input: &[u8] = if negotiate_flags & NTLMSSP_NEGOTIATE_128 != 0 {
            exported_session_key
        } else if negotiate_flags & NTLMSSP_NEGOTIATE_56 != 0 {
            &exported_session_key[..7]
        } else {
            &exported_session_key[..5]
        };
        let seal_key = md5(&[seal_input, seal_magic]);
        Ok(Self {
            sign_key,
            seal: Rc4::new(&seal_key),
            key_exch: negotiate_flags & NTLMSSP_NEGOTIATE_KEY_EXCH != 0,
            seq_num: 0,
        })
    }

    /// MAC(Handle, SigningKey, SeqNum, Message) with extended session security; advances
    /// the sequence number.
    pub fn sign(&mut self, message: &[u8]) -> [u8; 16] {
        let seq = self.seq_num.to_le_bytes();
        let mac = hmac_md5(&self.sign_key, &[&seq, message]);
        let mut checksum = [0u8; 8];
        checksum.copy_from_slice(&mac[..8]);
        if self.key_exch {
            self.seal.apply(&mut checksum);
        }
        self.seq_num = self.seq_num.wrapping_add(1);
        let mut sig = [0u8; 16];
        sig[..4].copy_from_slice(&1u32.to_le_bytes());
        sig[4..12].copy_from_slice(&checksum);
        sig[12..].copy_from_slice(&seq);
        sig
    }

    /// Checks a peer's signature over `message` at the current sequence number.
    pub fn verify(&mut self, message: &[u8], signature: &[u8]) -> bool {
        let expected = self.sign(message);
        ct_eq(&expected, signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nt_hash_known_values() {
        // MS-NLMP 4.2.1 test password "Password".
        assert_eq!(
            nt_hash("Password"),
            hex16("a4f49c406510bdcab6824ee7c30fd852")
        );
        assert_eq!(nt_hash(""), hex16("31d6cfe0d16ae931b73c59d7e0c089c0"));
    }

    #[test]
    fn ntlmv2_spec_example() {
        // MS-NLMP 4.2.4: user "User", domain "Domain", password "Password".
        let h = nt_hash("Password");
        assert_eq!(
            ntowf_v2(&h, "User", "Domain"),
            hex16("0c868a403bfd7a93a3001ef22ef02e3f")
        );
        let server_challenge = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        let client_challenge = [0xaa; 8];
        let mut temp = vec![1, 1, 0, 0, 0, 0, 0, 0];
        temp.extend_from_slice(&[0; 8]); // time
        temp.extend_from_slice(&client_challenge);
        temp.extend_from_slice(&[0; 4]);
        // server's TargetInfo from 4.2.4.1.3
        write_av_pair(&mut temp, av_id::MSV_AV_NB_DOMAIN_NAME, &utf16le("Domain"));
        write_av_pair(
            &mut temp,
            av_id::MSV_AV_NB_COMPUTER_NAME,
            &utf16le("Server"),
        );
        write_av_pair(&mut temp, av_id::MSV_AV_EOL, &[]);
        temp.extend_from_slice(&[0; 4]);
        let key = ntowf_v2(&h, "User", "Domain");
        let proof = hmac_md5(&key, &[&server_challenge, &temp]);
        assert_eq!(proof, hex16("68cd0ab851e51c96aabc927bebef6a1c"));
        assert_eq!(
            hmac_md5(&key, &[&proof]),
            hex16("8de40ccadbc14a82f15cb0ad0de95ca3")
        );
    }

    #[test]
    fn upper_case_is_per_character() {
        assert_eq!(upper_case("refuser"), "REFUSER");
        assert_eq!(upper_case("straße"), "STRAßE");
        assert_eq!(upper_case("élan"), "ÉLAN");
    }

    #[test]
    fn av_pairs_stop_at_eol_and_report_overrun() {
        let mut l = Vec::new();
        write_av_pair(&mut l, 1, b"ab");
        write_av_pair(&mut l, 0, &[]);
        write_av_pair(&mut l, 2, b"zz");
        let v: Vec<_> = av_pairs(&l).collect::<Result<_, _>>().unwrap();
        assert_eq!(v, vec![(1u16, &b"ab"[..])]);
        let bad = [1u8, 0, 9, 0, 1];
        let mut it = av_pairs(&bad);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }

    #[test]
    fn field_bounds_are_checked() {
        let mut m = Vec::from(&NTLMSSP_SIGNATURE[..]);
        m.extend_from_slice(&3u32.to_le_bytes());
        m.resize(88, 0);
        // NtChallengeResponseFields: len 0x20 at offset 0xfffffff0
        m[20..22].copy_from_slice(&0x20u16.to_le_bytes());
        m[24..28].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(AuthenticateMessage::parse(&m).is_err());
        m[24..28].copy_from_slice(&80u32.to_le_bytes());
        assert!(AuthenticateMessage::parse(&m).is_err());
        m[24..28].copy_from_slice(&56u32.to_le_bytes());
        assert!(AuthenticateMessage::parse(&m).is_ok());
    }

    fn hex16(s: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
