//! The client half of NTLMv2 inside SPNEGO (MS-NLMP 3.1, RFC 4178), as Windows sends it:
//! NEGOTIATE in a NegTokenInit, AUTHENTICATE with a MIC and key exchange, and the SPNEGO
//! mechListMIC. The server half, NTOWFv2, message parsing and NTLM session security come
//! from `duet-auth`.
//!
//! Owns: building the NEGOTIATE and AUTHENTICATE messages and the client's SPNEGO tokens.
//! Must never: draw random numbers or read the clock itself (they come in as arguments),
//! or panic on the server's tokens.

use duet_auth::ntlm::{self, flags::*, Direction, SessionSecurity};
use duet_auth::spnego::{self, NegTokenResp, NegotiationToken, OID_NTLMSSP};
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;

use crate::Error;

/// MechTypeList DER with NTLMSSP alone: what the mechListMIC covers.
fn mech_types_der() -> Vec<u8> {
    let mut v = vec![
        0x30,
        (OID_NTLMSSP.len() + 2) as u8,
        0x06,
        OID_NTLMSSP.len() as u8,
    ];
    v.extend_from_slice(OID_NTLMSSP);
    v
}

const CLIENT_FLAGS: u32 = NTLMSSP_NEGOTIATE_UNICODE
    | NTLMSSP_REQUEST_TARGET
    | NTLMSSP_NEGOTIATE_SIGN
    | NTLMSSP_NEGOTIATE_NTLM
    | NTLMSSP_NEGOTIATE_ALWAYS_SIGN
    | NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NTLMSSP_NEGOTIATE_TARGET_INFO
    | NTLMSSP_NEGOTIATE_VERSION
    | NTLMSSP_NEGOTIATE_128
    | NTLMSSP_NEGOTIATE_KEY_EXCH
    | NTLMSSP_NEGOTIATE_56;

/// Windows 10 build 19041, NTLM revision 15.
const CLIENT_VERSION: [u8; 8] = [10, 0, 0x61, 0x4a, 0, 0, 0, 0x0f];

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <Hmac<Md5> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// RC4 (for EncryptedRandomSessionKey, MS-NLMP 3.1.5.1.2).
fn rc4(key: &[u8], data: &[u8; 16]) -> [u8; 16] {
    let mut s: [u8; 256] = std::array::from_fn(|i| i as u8);
    let mut j = 0u8;
    for i in 0..256 {
        j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
        s.swap(i, j as usize);
    }
    let (mut i, mut j) = (0u8, 0u8);
    let mut out = *data;
    for b in out.iter_mut() {
        i = i.wrapping_add(1);
        j = j.wrapping_add(s[i as usize]);
        s.swap(i as usize, j as usize);
        *b ^= s[s[i as usize].wrapping_add(s[j as usize]) as usize];
    }
    out
}

/// Random and time inputs of one logon.
#[derive(Debug, Clone, Copy)]
pub struct Entropy {
    pub client_challenge: [u8; 8],
    pub exported_session_key: [u8; 16],
    /// FILETIME, used when the server's CHALLENGE carries no MsvAvTimestamp.
    pub now_filetime: u64,
}

/// One client logon: user, password and the messages exchanged so far.
pub struct NtlmClient {
    user: String,
    domain: String,
    nt_hash: [u8; 16],
    negotiate: Vec<u8>,
    session_key: Option<[u8; 16]>,
    flags: u32,
}

impl NtlmClient {
    pub fn new(user: &str, domain: &str, password: &str) -> Self {
        let mut negotiate = Vec::with_capacity(40);
        negotiate.extend_from_slice(ntlm::NTLMSSP_SIGNATURE);
        negotiate.extend_from_slice(&ntlm::NEGOTIATE_MESSAGE_TYPE.to_le_bytes());
        negotiate.extend_from_slice(&CLIENT_FLAGS.to_le_bytes());
        ntlm::push_field(&mut negotiate, 0, 40); // DomainName
        ntlm::push_field(&mut negotiate, 0, 40); // Workstation
        negotiate.extend_from_slice(&CLIENT_VERSION);
        Self {
            user: user.to_string(),
            domain: domain.to_string(),
            nt_hash: ntlm::nt_hash(password),
            negotiate,
            session_key: None,
            flags: 0,
        }
    }

    /// The first SESSION_SETUP token: NegTokenInit offering NTLMSSP with its NEGOTIATE.
    pub fn initial_token(&self) -> Vec<u8> {
        spnego::encode_neg_token_init(&[OID_NTLMSSP], Some(&self.negotiate))
    }

    /// Answers the server's CHALLENGE (in a NegTokenResp): the AUTHENTICATE in a
    /// NegTokenResp with a mechListMIC. Returns the token; the session key is then set.
    pub fn respond(&mut self, server_token: &[u8], e: &Entropy) -> Result<Vec<u8>, Error> {
        let challenge = match NegotiationToken::parse(server_token)? {
            NegotiationToken::Resp(r) => r
                .response_token
                .ok_or_else(|| Error::auth("SPNEGO answer without a CHALLENGE"))?,
            NegotiationToken::Init(_) => {
                return Err(Error::auth("SPNEGO: unexpected NegTokenInit"))
            }
        };
        let chal = ntlm::ChallengeMessage::parse(challenge)?;
        let flags = CLIENT_FLAGS & chal.negotiate_flags;
        if flags & NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY == 0 {
            return Err(Error::auth("server refused extended session security"));
        }

        // The server's AV pairs, plus MsvAvFlags = MIC present, then EOL.
        let mut av = Vec::with_capacity(chal.target_info.len() + 16);
        let mut timestamp = None;
        for pair in ntlm::av_pairs(chal.target_info) {
            let (id, value) = pair?;
            match id {
                ntlm::av_id::MSV_AV_EOL | ntlm::av_id::MSV_AV_FLAGS => {}
                _ => {
                    if id == ntlm::av_id::MSV_AV_TIMESTAMP {
                        timestamp = value.try_into().ok().map(u64::from_le_bytes);
                    }
                    ntlm::write_av_pair(&mut av, id, value);
                }
            }
        }
        ntlm::write_av_pair(
            &mut av,
            ntlm::av_id::MSV_AV_FLAGS,
            &ntlm::MSV_AV_FLAG_MIC_PRESENT.to_le_bytes(),
        );
        ntlm::write_av_pair(&mut av, ntlm::av_id::MSV_AV_EOL, &[]);

        // NTLMv2 (MS-NLMP 3.3.2).
        let key = ntlm::ntowf_v2(&self.nt_hash, &self.user, &self.domain);
        let mut temp = Vec::with_capacity(32 + av.len());
        temp.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
        temp.extend_from_slice(&timestamp.unwrap_or(e.now_filetime).to_le_bytes());
        temp.extend_from_slice(&e.client_challenge);
        temp.extend_from_slice(&[0; 4]);
        temp.extend_from_slice(&av);
        temp.extend_from_slice(&[0; 4]);
        let proof = hmac_md5(&key, &[&chal.server_challenge, &temp]);
        let mut nt_response = proof.to_vec();
        nt_response.extend_from_slice(&temp);
        let lm_response = if timestamp.is_some() {
            vec![0u8; 24]
        } else {
            let mut lm = hmac_md5(&key, &[&chal.server_challenge, &e.client_challenge]).to_vec();
            lm.extend_from_slice(&e.client_challenge);
            lm
        };
        let session_base_key = hmac_md5(&key, &[&proof]);
        let (exported, encrypted_key) = if flags & NTLMSSP_NEGOTIATE_KEY_EXCH != 0 {
            (
                e.exported_session_key,
                rc4(&session_base_key, &e.exported_session_key).to_vec(),
            )
        } else {
            (session_base_key, Vec::new())
        };

        // AUTHENTICATE_MESSAGE (2.2.1.3) with Version and MIC: payload from offset 88.
        let domain = ntlm::utf16le(&self.domain);
        let user = ntlm::utf16le(&self.user);
        let workstation = ntlm::utf16le("DUETBENCH");
        let fields: [&[u8]; 6] = [
            &lm_response,
            &nt_response,
            &domain,
            &user,
            &workstation,
            &encrypted_key,
        ];
        let mut auth = Vec::with_capacity(88 + fields.iter().map(|f| f.len()).sum::<usize>());
        auth.extend_from_slice(ntlm::NTLMSSP_SIGNATURE);
        auth.extend_from_slice(&ntlm::AUTHENTICATE_MESSAGE_TYPE.to_le_bytes());
        let mut off = 88;
        for f in &fields {
            ntlm::push_field(&mut auth, f.len(), off);
            off += f.len();
        }
        auth.extend_from_slice(&flags.to_le_bytes());
        auth.extend_from_slice(&CLIENT_VERSION);
        auth.extend_from_slice(&[0; 16]); // MIC, filled below
        for f in &fields {
            auth.extend_from_slice(f);
        }
        let mic = hmac_md5(&exported, &[&self.negotiate, challenge, &auth]);
        auth[72..88].copy_from_slice(&mic);

        let mech_list_mic = SessionSecurity::new(&exported, flags, Direction::ClientToServer)?
            .sign(&mech_types_der());
        self.session_key = Some(exported);
        self.flags = flags;
        Ok(NegTokenResp {
            neg_state: None,
            supported_mech: None,
            response_token: Some(&auth),
            mech_list_mic: Some(&mech_list_mic),
        }
        .encode())
    }

    /// Checks the server's last token: accept-completed, and its mechListMIC if it sent one.
    pub fn finish(&self, server_token: &[u8]) -> Result<(), Error> {
        let key = self
            .session_key
            .ok_or_else(|| Error::auth("logon finished before the AUTHENTICATE"))?;
        if server_token.is_empty() {
            return Ok(());
        }
        let NegotiationToken::Resp(r) = NegotiationToken::parse(server_token)? else {
            return Err(Error::auth("SPNEGO: unexpected NegTokenInit"));
        };
        if let Some(state) = r.neg_state {
            if state != spnego::NegState::AcceptCompleted {
                return Err(Error::auth("SPNEGO: server did not complete the logon"));
            }
        }
        if let Some(mic) = r.mech_list_mic {
            let mut s = SessionSecurity::new(&key, self.flags, Direction::ServerToClient)?;
            if !s.verify(&mech_types_der(), mic) {
                return Err(Error::auth("SPNEGO: server's mechListMIC does not verify"));
            }
        }
        Ok(())
    }

    /// ExportedSessionKey (the SMB2 Session.SessionKey), once `respond` has run.
    pub fn session_key(&self) -> Option<[u8; 16]> {
        self.session_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duet_auth::{Acceptor, ServerIdentity, Step};

    fn entropy() -> Entropy {
        Entropy {
            client_challenge: [0xaa; 8],
            exported_session_key: [0x55; 16],
            now_filetime: 133_000_000_000_000_000,
        }
    }

    fn acceptor() -> Acceptor {
        let id = ServerIdentity {
            netbios_name: "DUET".into(),
            netbios_domain: "WORKGROUP".into(),
            dns_name: "duet".into(),
            dns_domain: String::new(),
        };
        Acceptor::new(id, [1, 2, 3, 4, 5, 6, 7, 8], 133_000_000_000_000_000)
    }

    fn logon(password_on_server: &str) -> Result<(NtlmClient, Step), duet_auth::AuthError> {
        let mut client = NtlmClient::new("alice", "", "Correct-Horse-7");
        let mut server = acceptor();
        let server_hash = ntlm::nt_hash(password_on_server);
        let mut lookup = |u: &str, _d: &str| (u == "alice").then_some(server_hash);
        let Step::Continue(challenge) = server.step(&client.initial_token(), &mut lookup)? else {
            panic!("expected a CHALLENGE");
        };
        let auth = client
            .respond(&challenge, &entropy())
            .expect("client answers");
        let done = server.step(&auth, &mut lookup)?;
        Ok((client, done))
    }

    /// The client's messages pass duet-auth's server-side checks (NTLMv2 proof, MIC,
    /// mechListMIC), both ends hold the same session key, and the server's final
    /// mechListMIC verifies on the client.
    #[test]
    fn logs_on_to_duet_auth_acceptor() {
        let (client, done) = logon("Correct-Horse-7").unwrap();
        let Step::Done(auth) = done else {
            panic!("not done: {done:?}")
        };
        assert_eq!(auth.user, "alice");
        assert_eq!(Some(auth.session_key), client.session_key());
        // Key exchange: the session key is the client's random one, not the base key.
        assert_eq!(auth.session_key, [0x55; 16]);
        client.finish(&auth.token).unwrap();
    }

    #[test]
    fn wrong_password_is_refused() {
        assert!(logon("wrong").is_err());
    }

    #[test]
    fn rc4_known_answer() {
        // RFC 6229 key 0x0102030405, first 16 keystream bytes.
        let ks = rc4(&[1, 2, 3, 4, 5], &[0; 16]);
        assert_eq!(
            ks,
            [
                0xb2, 0x39, 0x63, 0x05, 0xf0, 0x3d, 0xc0, 0x27, 0xcc, 0xc3, 0x52, 0x4a, 0x0a, 0x11,
                0x18, 0xa8
            ]
        );
    }
}
