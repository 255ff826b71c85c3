//! End-to-end Acceptor exchanges against an NTLMv2 client written here, independently of
//! the crate's own NTLM code (its own NTOWFv2, MIC, RC4 and mechListMIC): SPNEGO with
//! NTLMSSP preferred, SPNEGO with NTLMSSP second (request-mic), bare NTLMSSP, and the
//! refusals (wrong password, anonymous, NTLMv1, bad mechListMIC, missing mandatory MIC).

use duet_auth::ntlm::{av_id, ChallengeMessage};
use duet_auth::spnego::{NegState, NegotiationToken};
use duet_auth::*;
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};

const OID_SPNEGO: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
const OID_NTLMSSP: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a];
const OID_KRB5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];

const UNICODE: u32 = 0x1;
const REQUEST_TARGET: u32 = 0x4;
const SIGN: u32 = 0x10;
const NTLM: u32 = 0x200;
const ALWAYS_SIGN: u32 = 0x8000;
const TARGET_TYPE_SERVER: u32 = 0x20000;
const ESS: u32 = 0x80000;
const TARGET_INFO: u32 = 0x80_0000;
const VERSION: u32 = 0x200_0000;
const N128: u32 = 0x2000_0000;
const KEY_EXCH: u32 = 0x4000_0000;
const N56: u32 = 0x8000_0000;
/// What Samba's client sends (the captures' NEGOTIATE flags).
const CLIENT_FLAGS: u32 = 0x6208_8215;

// ------------------------------------------------------------------ client primitives

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut m = <Hmac<Md5> as KeyInit>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn md4_utf16(s: &str) -> [u8; 16] {
    use md4::Md4;
    Md4::digest(utf16(s)).into()
}

fn rc4(key: &[u8], data: &mut [u8]) {
    let mut s: Vec<u8> = (0..=255).collect();
    let mut j = 0usize;
    for i in 0..256 {
        j = (j + s[i] as usize + key[i % key.len()] as usize) % 256;
        s.swap(i, j);
    }
    let (mut i, mut j) = (0usize, 0usize);
    for b in data {
        i = (i + 1) % 256;
        j = (j + s[i] as usize) % 256;
        s.swap(i, j);
        *b ^= s[(s[i] as usize + s[j] as usize) % 256];
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend_from_slice(&[0x81, n as u8]),
        n => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

fn mech_type_list(oids: &[&[u8]]) -> Vec<u8> {
    der(
        0x30,
        &oids.iter().flat_map(|o| der(0x06, o)).collect::<Vec<_>>(),
    )
}

fn neg_token_init(oids: &[&[u8]], mech_token: Option<&[u8]>) -> Vec<u8> {
    let mut seq = der(0xa0, &mech_type_list(oids));
    if let Some(t) = mech_token {
        seq.extend(der(0xa2, &der(0x04, t)));
    }
    der(
        0x60,
        &[der(0x06, OID_SPNEGO), der(0xa0, &der(0x30, &seq))].concat(),
    )
}

fn neg_token_resp(token: Option<&[u8]>, mic: Option<&[u8]>) -> Vec<u8> {
    let mut seq = Vec::new();
    if let Some(t) = token {
        seq.extend(der(0xa2, &der(0x04, t)));
    }
    if let Some(m) = mic {
        seq.extend(der(0xa3, &der(0x04, m)));
    }
    der(0xa1, &der(0x30, &seq))
}

/// NTLMSSP_MESSAGE_SIGNATURE at sequence 0 with extended session security and KEY_EXCH.
fn ntlm_signature(exported: &[u8; 16], client_to_server: bool, msg: &[u8]) -> [u8; 16] {
    let (sign, seal): (&[u8], &[u8]) = if client_to_server {
        (
            b"session key to client-to-server signing key magic constant\0",
            b"session key to client-to-server sealing key magic constant\0",
        )
    } else {
        (
            b"session key to server-to-client signing key magic constant\0",
            b"session key to server-to-client sealing key magic constant\0",
        )
    };
    let sign_key: [u8; 16] = Md5::new()
        .chain_update(exported)
        .chain_update(sign)
        .finalize()
        .into();
    let seal_key: [u8; 16] = Md5::new()
        .chain_update(exported)
        .chain_update(seal)
        .finalize()
        .into();
    let mut checksum = hmac_md5(&sign_key, &[&0u32.to_le_bytes(), msg])[..8].to_vec();
    rc4(&seal_key, &mut checksum);
    let mut sig = [0u8; 16];
    sig[0] = 1;
    sig[4..12].copy_from_slice(&checksum);
    sig
}

fn field(len: usize, offset: usize) -> Vec<u8> {
    [(len as u16).to_le_bytes(), (len as u16).to_le_bytes()]
        .concat()
        .into_iter()
        .chain((offset as u32).to_le_bytes())
        .collect()
}

// ------------------------------------------------------------------ the client

#[derive(Clone)]
struct Client {
    user: String,
    domain: String,
    /// Domain fed into NTOWFv2 (normally the one sent).
    hash_domain: String,
    password: String,
    flags: u32,
    with_mic: bool,
    random_session_key: [u8; 16],
}

impl Client {
    fn samba_like(password: &str) -> Self {
        Self {
            user: "refuser".into(),
            domain: "WORKGROUP".into(),
            hash_domain: "WORKGROUP".into(),
            password: password.into(),
            flags: CLIENT_FLAGS,
            with_mic: true,
            random_session_key: *b"0123456789abcdef",
        }
    }

    fn negotiate(&self) -> Vec<u8> {
        let mut m = b"NTLMSSP\0".to_vec();
        m.extend_from_slice(&1u32.to_le_bytes());
        m.extend_from_slice(&self.flags.to_le_bytes());
        m.extend(field(0, 40));
        m.extend(field(0, 40));
        m.extend_from_slice(&[10, 0, 0x61, 0x4a, 0, 0, 0, 15]);
        m
    }

    /// Returns the AUTHENTICATE_MESSAGE and the ExportedSessionKey.
    fn authenticate(&self, negotiate: &[u8], challenge: &[u8]) -> (Vec<u8>, [u8; 16]) {
        let server_challenge = &challenge[24..32];
        let chal_flags = u32::from_le_bytes(challenge[20..24].try_into().unwrap());
        let ti_len = u16::from_le_bytes([challenge[40], challenge[41]]) as usize;
        let ti_off = u32::from_le_bytes(challenge[44..48].try_into().unwrap()) as usize;
        let target_info = &challenge[ti_off..ti_off + ti_len];
        let flags = self.flags & chal_flags;

        // Client AV pairs: the server's (minus EOL), then MsvAvFlags and a target name.
        let mut av = target_info[..target_info.len() - 4].to_vec();
        let mut time = [0u8; 8];
        let mut off = 0;
        while off + 4 <= av.len() {
            let id = u16::from_le_bytes([av[off], av[off + 1]]);
            let len = u16::from_le_bytes([av[off + 2], av[off + 3]]) as usize;
            if id == 7 {
                time.copy_from_slice(&av[off + 4..off + 12]);
            }
            off += 4 + len;
        }
        if self.with_mic {
            av.extend_from_slice(&[6, 0, 4, 0, 2, 0, 0, 0]);
        }
        let spn = utf16("cifs/duet");
        av.extend_from_slice(&[9, 0, spn.len() as u8, 0]);
        av.extend_from_slice(&spn);
        av.extend_from_slice(&[0, 0, 0, 0]);

        let mut temp = vec![1, 1, 0, 0, 0, 0, 0, 0];
        temp.extend_from_slice(&time);
        temp.extend_from_slice(b"cli-chal");
        temp.extend_from_slice(&[0; 4]);
        temp.extend_from_slice(&av);
        temp.extend_from_slice(&[0; 4]);

        let upper: String = self.user.to_uppercase();
        let ntowf = hmac_md5(
            &md4_utf16(&self.password),
            &[&utf16(&(upper + &self.hash_domain))],
        );
        let proof = hmac_md5(&ntowf, &[server_challenge, &temp]);
        let nt = [&proof[..], &temp].concat();
        let base = hmac_md5(&ntowf, &[&proof]);
        let (exported, enc_key) = if flags & KEY_EXCH != 0 {
            let mut enc = self.random_session_key;
            rc4(&base, &mut enc);
            (self.random_session_key, enc.to_vec())
        } else {
            (base, Vec::new())
        };
        let (domain, user, ws) = (utf16(&self.domain), utf16(&self.user), utf16("TESTBOX"));
        self.assemble(
            flags, &[0; 24], &nt, &domain, &user, &ws, &enc_key, negotiate, challenge, &exported,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        &self,
        flags: u32,
        lm: &[u8],
        nt: &[u8],
        domain: &[u8],
        user: &[u8],
        ws: &[u8],
        enc_key: &[u8],
        negotiate: &[u8],
        challenge: &[u8],
        exported: &[u8; 16],
    ) -> (Vec<u8>, [u8; 16]) {
        let mut m = b"NTLMSSP\0".to_vec();
        m.extend_from_slice(&3u32.to_le_bytes());
        let mut off = 88;
        let mut payload = Vec::new();
        for part in [lm, nt, domain, user, ws, enc_key] {
            m.extend(field(part.len(), off));
            payload.extend_from_slice(part);
            off += part.len();
        }
        m.extend_from_slice(&flags.to_le_bytes());
        m.extend_from_slice(&[10, 0, 0x61, 0x4a, 0, 0, 0, 15]);
        m.extend_from_slice(&[0; 16]);
        m.extend_from_slice(&payload);
        if self.with_mic {
            let mic = hmac_md5(exported, &[negotiate, challenge, &m]);
            m[72..88].copy_from_slice(&mic);
        }
        (m, *exported)
    }
}

fn identity() -> ServerIdentity {
    ServerIdentity {
        netbios_name: "DUET1".into(),
        netbios_domain: "DUETGRP".into(),
        dns_name: "duet1.example.test".into(),
        dns_domain: "example.test".into(),
    }
}

const NOW: u64 = 0x01dc_7bab_1575_9e44;

fn users(user: &str, _domain: &str) -> Option<[u8; 16]> {
    match user.to_lowercase().as_str() {
        "refuser" => Some(nt_hash("Ref-Pass1")),
        "zoë" => Some(nt_hash("Zoë's pass")),
        _ => None,
    }
}

fn resp(token: &[u8]) -> duet_auth::spnego::NegTokenResp<'_> {
    match NegotiationToken::parse(token).unwrap() {
        NegotiationToken::Resp(r) => r,
        other => panic!("{other:?}"),
    }
}

/// A full SPNEGO exchange with NTLMSSP preferred; returns the step-2 result and the
/// client's ExportedSessionKey.
fn spnego_exchange(
    client: &Client,
    tamper_mech_list_mic: bool,
) -> (Result<Step, AuthError>, [u8; 16]) {
    let mut acc = Acceptor::new(identity(), *b"srvchal!", NOW);
    let negotiate = client.negotiate();
    let mech_types: &[&[u8]] = &[OID_NTLMSSP];
    let Step::Continue(t1) = acc
        .step(&neg_token_init(mech_types, Some(&negotiate)), &mut users)
        .unwrap()
    else {
        panic!()
    };
    let r1 = resp(&t1);
    assert_eq!(r1.neg_state, Some(NegState::AcceptIncomplete));
    assert_eq!(r1.supported_mech, Some(OID_NTLMSSP));
    let challenge = r1.response_token.unwrap().to_vec();
    let (auth, exported) = client.authenticate(&negotiate, &challenge);
    let mut mic = ntlm_signature(&exported, true, &mech_type_list(mech_types));
    if tamper_mech_list_mic {
        mic[5] ^= 1;
    }
    (
        acc.step(&neg_token_resp(Some(&auth), Some(&mic)), &mut users),
        exported,
    )
}

#[test]
fn spnego_ntlmv2_with_mic_and_mech_list_mic() {
    let client = Client::samba_like("Ref-Pass1");
    let (result, exported) = spnego_exchange(&client, false);
    let Step::Done(a) = result.unwrap() else {
        panic!()
    };
    assert_eq!(
        (a.user.as_str(), a.domain.as_str(), a.workstation.as_str()),
        ("refuser", "WORKGROUP", "TESTBOX")
    );
    assert_eq!(a.session_key, exported);
    assert_eq!(a.session_key, client.random_session_key);
    let done = resp(&a.token);
    assert_eq!(done.neg_state, Some(NegState::AcceptCompleted));
    assert_eq!(done.response_token, None);
    // The server's mechListMIC: server-to-client keys, sequence 0, over the client's list.
    assert_eq!(
        done.mech_list_mic.unwrap(),
        ntlm_signature(&exported, false, &mech_type_list(&[OID_NTLMSSP]))
    );
}

#[test]
fn challenge_carries_identity_flags_and_time() {
    let mut acc = Acceptor::new(identity(), *b"srvchal!", NOW);
    let Step::Continue(t1) = acc
        .step(&Client::samba_like("x").negotiate(), &mut users)
        .unwrap()
    else {
        panic!()
    };
    let chal = ChallengeMessage::parse(&t1).unwrap();
    assert_eq!(&chal.server_challenge, b"srvchal!");
    assert_eq!(chal.target_name, utf16("DUETGRP"));
    assert_eq!(
        chal.negotiate_flags,
        UNICODE
            | REQUEST_TARGET
            | SIGN
            | NTLM
            | ALWAYS_SIGN
            | TARGET_TYPE_SERVER
            | ESS
            | TARGET_INFO
            | VERSION
            | N128
            | KEY_EXCH
    );
    let pairs: Vec<(u16, Vec<u8>)> = duet_auth::ntlm::av_pairs(chal.target_info)
        .map(|p| p.map(|(i, v)| (i, v.to_vec())).unwrap())
        .collect();
    assert_eq!(
        pairs,
        vec![
            (av_id::MSV_AV_NB_DOMAIN_NAME, utf16("DUETGRP")),
            (av_id::MSV_AV_NB_COMPUTER_NAME, utf16("DUET1")),
            (av_id::MSV_AV_DNS_DOMAIN_NAME, utf16("example.test")),
            (av_id::MSV_AV_DNS_COMPUTER_NAME, utf16("duet1.example.test")),
            (av_id::MSV_AV_TIMESTAMP, NOW.to_le_bytes().to_vec()),
        ]
    );
    assert!(t1.ends_with(&[0, 0, 0, 0]), "AV list ends with MsvAvEOL");

    // 56-bit and SEAL are echoed only when asked for.
    let mut client = Client::samba_like("x");
    client.flags |= N56 | 0x20;
    let mut acc = Acceptor::new(identity(), *b"srvchal!", NOW);
    let Step::Continue(t1) = acc.step(&client.negotiate(), &mut users).unwrap() else {
        panic!()
    };
    assert_eq!(
        ChallengeMessage::parse(&t1).unwrap().negotiate_flags & (N56 | 0x20),
        N56 | 0x20
    );
}

#[test]
fn wrong_password_and_unknown_user_are_logon_failures() {
    let (r, _) = spnego_exchange(&Client::samba_like("Ref-Pass2"), false);
    assert_eq!(
        r.unwrap_err(),
        AuthError::LogonFailure {
            user: "refuser".into()
        }
    );
    let mut stranger = Client::samba_like("Ref-Pass1");
    stranger.user = "mallory".into();
    let (r, _) = spnego_exchange(&stranger, false);
    assert_eq!(
        r.unwrap_err(),
        AuthError::LogonFailure {
            user: "mallory".into()
        }
    );
}

#[test]
fn bad_client_mech_list_mic_is_a_logon_failure() {
    let (r, _) = spnego_exchange(&Client::samba_like("Ref-Pass1"), true);
    assert_eq!(
        r.unwrap_err(),
        AuthError::LogonFailure {
            user: "refuser".into()
        }
    );
}

#[test]
fn empty_domain_fallback_and_unicode_user() {
    // The client hashes with an empty domain while sending one: accepted.
    let mut c = Client::samba_like("Ref-Pass1");
    c.hash_domain = String::new();
    let (r, _) = spnego_exchange(&c, false);
    assert!(matches!(r.unwrap(), Step::Done(_)));
    // Any other domain in the hash is not.
    c.hash_domain = "OTHER".into();
    assert!(matches!(
        spnego_exchange(&c, false).0,
        Err(AuthError::LogonFailure { .. })
    ));

    let mut z = Client::samba_like("Zoë's pass");
    z.user = "Zoë".into();
    let (r, exported) = spnego_exchange(&z, false);
    let Step::Done(a) = r.unwrap() else { panic!() };
    assert_eq!((a.user.as_str(), a.session_key), ("Zoë", exported));
}

#[test]
fn ntlmssp_second_in_mech_types_requires_the_mech_list_mic() {
    let client = Client::samba_like("Ref-Pass1");
    let mech_types: &[&[u8]] = &[OID_KRB5, OID_NTLMSSP];
    for send_mic in [true, false] {
        let mut acc = Acceptor::new(identity(), *b"srvchal!", NOW);
        // Optimistic Kerberos token: ignored; the server names NTLMSSP and asks for a MIC.
        let Step::Continue(t1) = acc
            .step(
                &neg_token_init(mech_types, Some(b"krb5 AP-REQ")),
                &mut users,
            )
            .unwrap()
        else {
            panic!()
        };
        let r1 = resp(&t1);
        assert_eq!(
            (r1.neg_state, r1.supported_mech, r1.response_token),
            (Some(NegState::RequestMic), Some(OID_NTLMSSP), None)
        );
        let negotiate = client.negotiate();
        let Step::Continue(t2) = acc
            .step(&neg_token_resp(Some(&negotiate), None), &mut users)
            .unwrap()
        else {
            panic!()
        };
        let r2 = resp(&t2);
        assert_eq!(
            (r2.neg_state, r2.supported_mech),
            (Some(NegState::AcceptIncomplete), None)
        );
        let challenge = r2.response_token.unwrap();
        let (auth, exported) = client.authenticate(&negotiate, challenge);
        let mic = ntlm_signature(&exported, true, &mech_type_list(mech_types));
        let result = acc.step(
            &neg_token_resp(Some(&auth), send_mic.then_some(&mic[..])),
            &mut users,
        );
        if send_mic {
            let Step::Done(a) = result.unwrap() else {
                panic!()
            };
            assert_eq!(a.session_key, exported);
            assert_eq!(
                resp(&a.token).mech_list_mic.unwrap(),
                ntlm_signature(&exported, false, &mech_type_list(mech_types))
            );
        } else {
            assert_eq!(
                result.unwrap_err(),
                AuthError::LogonFailure {
                    user: "refuser".into()
                }
            );
        }
    }
}

#[test]
fn bare_ntlmssp_is_answered_in_kind() {
    let client = Client::samba_like("Ref-Pass1");
    let mut acc = Acceptor::new(identity(), *b"srvchal!", NOW);
    let negotiate = client.negotiate();
    let Step::Continue(challenge) = acc.step(&negotiate, &mut users).unwrap() else {
        panic!()
    };
    assert!(challenge.starts_with(b"NTLMSSP\0\x02\0\0\0"));
    let (auth, exported) = client.authenticate(&negotiate, &challenge);
    let Step::Done(a) = acc.step(&auth, &mut users).unwrap() else {
        panic!()
    };
    assert_eq!(a.session_key, exported);
    assert!(a.token.is_empty());
    // The exchange is over.
    assert!(acc.step(&auth, &mut users).is_err());
}

#[test]
fn without_key_exch_or_mic_the_session_key_is_the_base_key() {
    let mut client = Client::samba_like("Ref-Pass1");
    client.flags &= !KEY_EXCH;
    client.with_mic = false;
    let mut acc = Acceptor::new(identity(), *b"srvchal!", NOW);
    let negotiate = client.negotiate();
    let Step::Continue(t1) = acc
        .step(
            &neg_token_init(&[OID_NTLMSSP], Some(&negotiate)),
            &mut users,
        )
        .unwrap()
    else {
        panic!()
    };
    let challenge = resp(&t1).response_token.unwrap().to_vec();
    let (auth, exported) = client.authenticate(&negotiate, &challenge);
    assert_ne!(exported, client.random_session_key);
    let Step::Done(a) = acc
        .step(&neg_token_resp(Some(&auth), None), &mut users)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(a.session_key, exported);
    // No client mechListMIC, none required: none sent back.
    assert_eq!(resp(&a.token).mech_list_mic, None);
}

/// Runs NEGOTIATE/CHALLENGE raw and hands back the CHALLENGE for a hand-made AUTHENTICATE.
fn raw_acceptor() -> (Acceptor, Vec<u8>, Vec<u8>) {
    let mut acc = Acceptor::new(identity(), *b"srvchal!", NOW);
    let negotiate = Client::samba_like("").negotiate();
    let Step::Continue(challenge) = acc.step(&negotiate, &mut users).unwrap() else {
        panic!()
    };
    (acc, negotiate, challenge)
}

type RawCase<'a> = (&'a [u8], &'a [u8], &'a [u8], AuthError);

#[test]
fn anonymous_ntlmv1_and_lm_are_refused() {
    let mut c = Client::samba_like("");
    c.with_mic = false;
    // (LmChallengeResponse, NtChallengeResponse, UserName, expected refusal)
    let cases: [RawCase; 4] = [
        (&[], &[], &[], AuthError::Anonymous),
        (&[0], &[], &[], AuthError::Anonymous),
        (
            &[1; 24],
            &[2; 24],
            b"r\0e\0f\0",
            AuthError::Unsupported("NTLMv1 authentication"),
        ),
        (
            &[1; 24],
            &[],
            b"r\0e\0f\0",
            AuthError::Unsupported("LM authentication"),
        ),
    ];
    for (lm, nt, user, expected) in cases {
        let (mut acc, negotiate, challenge) = raw_acceptor();
        let (auth, _) = c.assemble(
            CLIENT_FLAGS & !KEY_EXCH,
            lm,
            nt,
            &[],
            user,
            &[],
            &[],
            &negotiate,
            &challenge,
            &[0; 16],
        );
        let mut called = false;
        let err = acc.step(&auth, &mut |_: &str, _: &str| {
            called = true;
            None
        });
        assert_eq!(err.unwrap_err(), expected);
        assert!(!called, "refused before any user lookup");
    }
}

#[test]
fn a_failed_exchange_stays_failed() {
    let (mut acc, _, _) = raw_acceptor();
    assert!(matches!(
        acc.step(b"NTLMSSP\0\x03\0\0\0garbage", &mut users),
        Err(AuthError::Malformed(_))
    ));
    let (auth, _) = {
        let (_, n, c) = raw_acceptor();
        Client::samba_like("Ref-Pass1").authenticate(&n, &c)
    };
    assert!(acc.step(&auth, &mut users).is_err());
}

#[test]
fn spnego_without_ntlmssp_is_unsupported() {
    let mut acc = Acceptor::new(identity(), *b"srvchal!", NOW);
    let r = acc.step(&neg_token_init(&[OID_KRB5], Some(b"ticket")), &mut users);
    assert_eq!(
        r.unwrap_err(),
        AuthError::Unsupported("client offers no NTLMSSP mechanism")
    );
    let mut acc = Acceptor::new(identity(), *b"srvchal!", NOW);
    assert!(matches!(
        acc.step(&neg_token_resp(Some(b"x"), None), &mut users),
        Err(AuthError::Malformed(_))
    ));
}
