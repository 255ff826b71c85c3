//! Replays the five Samba 4.17 captures (tests/data/, copied from shared/vectors): the
//! SPNEGO/NTLMv2 exchange must verify with the password Ref-Pass1 and yield the documented
//! session key, the server's own tokens must come out byte for byte as Samba's, the
//! derived keys must match the documented table, every captured signature must verify
//! (and fail once a byte is flipped), and capture d's transform frames must decrypt.

mod common;

use common::*;
use duet_auth::ntlm::{self, av_id, ChallengeMessage};
use duet_auth::spnego::{NegTokenResp, NegotiationToken};
use duet_auth::*;

const PASSWORD: &str = "Ref-Pass1";

struct Capture {
    name: &'static str,
    fixture: &'static str,
    dialect: u16,
    algorithm: SigningAlgorithm,
    server_challenge: &'static str,
    session_base_key: &'static str,
    session_key: &'static str,
    signing_key: &'static str,
    /// (C->S, S->C) cipher keys, where the README lists them.
    cipher_keys: Option<(&'static str, &'static str)>,
    preauth_hash: Option<&'static str>,
    /// Signed plaintext SMB2 messages from the final SESSION_SETUP response on.
    signed: usize,
    /// Unsigned plaintext SMB2 messages after the final SESSION_SETUP response.
    unsigned: usize,
    transform_frames: usize,
}

const A: Capture = Capture {
    name: "a smb311-signed",
    fixture: include_str!("data/a-smb311-signed.txt"),
    dialect: 0x0311,
    algorithm: SigningAlgorithm::AesGmac,
    server_challenge: "530925e808ae61ad",
    session_base_key: "f7f402722f87fe6fbf721d627ef3de4d",
    session_key: "01d97e98489088fa9dd7616899214b69",
    signing_key: "6316b91b6eaa0fea74aa31c9b2d648a4",
    cipher_keys: Some(("6c6068ad61ca7c89f83f36294ab076d1", "7869bf57a35c537f093e608dc3e6302e")),
    preauth_hash: Some(
        "9b373a6af278abf4a621ce586bd7072d60b134f127971d6a06ad7cbfa7a0146fcbd1c46d437a6e9a68a2b50797ab9cd8fd73ee934c9af013ccf754a7aa2f08c0",
    ),
    signed: 51,
    unsigned: 0,
    transform_frames: 0,
};

const B: Capture = Capture {
    name: "b smb300-signed",
    fixture: include_str!("data/b-smb300-signed.txt"),
    dialect: 0x0300,
    algorithm: SigningAlgorithm::AesCmac,
    server_challenge: "34aa1fd3b15c172e",
    session_base_key: "b06c152c03a72625322009ade8c71c1f",
    session_key: "101982b2bf28565c90c2ad95465fa445",
    signing_key: "9146a99063e7cd29adc8f9c6c4bbd3f1",
    cipher_keys: None,
    preauth_hash: None,
    signed: 55,
    unsigned: 0,
    transform_frames: 0,
};

const C: Capture = Capture {
    name: "c smb210-signed",
    fixture: include_str!("data/c-smb210-signed.txt"),
    dialect: 0x0210,
    algorithm: SigningAlgorithm::HmacSha256,
    server_challenge: "b1b3dc0d58da0ea0",
    session_base_key: "484d7139e4e4a63f60800abbc03d3842",
    session_key: "fe798781a1bedb6c70748562fe9a875f",
    signing_key: "fe798781a1bedb6c70748562fe9a875f",
    cipher_keys: None,
    preauth_hash: None,
    signed: 55,
    unsigned: 0,
    transform_frames: 0,
};

const D: Capture = Capture {
    name: "d smb311-encrypted",
    fixture: include_str!("data/d-smb311-encrypted.txt"),
    dialect: 0x0311,
    algorithm: SigningAlgorithm::AesGmac,
    server_challenge: "4ff854045f3a0470",
    session_base_key: "6fb534c82b9c0fa93dac734849ed2c22",
    session_key: "30a375fae8b85e4937413c71a15a6a14",
    signing_key: "dcbc37b9a098c07ef7177891f5e72587",
    cipher_keys: Some(("502749ae209836873ae860a3c7d32c92", "7a956759331a6a567585723aba81d6f1")),
    preauth_hash: Some(
        "cc34c58a0b9bfbedae3ec3382f03628d4849e9af8f25d66ee77e9910ec1428302d2af2990736bece5d656ee642e276d74d933936dc3d19210e7aa5ab344d874c",
    ),
    signed: 1,
    unsigned: 0,
    transform_frames: 50,
};

const E: Capture = Capture {
    name: "e share-listing",
    fixture: include_str!("data/e-share-listing.txt"),
    dialect: 0x0311,
    algorithm: SigningAlgorithm::AesGmac,
    server_challenge: "317d1ea5387f0052",
    session_base_key: "04fb5c0ce4c37c5fc96db41f3d22496f",
    session_key: "a0e261767f6bfcf13cf5d6799e8a35e8",
    signing_key: "a024a51b433e0527efadae86a51d806a",
    cipher_keys: None,
    preauth_hash: Some(
        "dd6217f375ebe852e46046c6eb1d4f849df474c184b08b2d2cd29df6ff6d934fd07e7f096c2ddf63a9286f529c39ab7c9f3fea56019dac53a01a086e20abde00",
    ),
    signed: 3,
    unsigned: 11,
    transform_frames: 0,
};

/// The reference smbd's names: `netbios name = REFSMBD`, standalone, host name "vm".
fn samba_identity() -> ServerIdentity {
    ServerIdentity {
        netbios_name: "REFSMBD".into(),
        netbios_domain: "REFSMBD".into(),
        dns_name: "vm".into(),
        dns_domain: String::new(),
    }
}

/// The pieces of one capture's session setup.
struct Setup {
    frames: Vec<Frame>,
    negotiate_request: Vec<u8>,
    negotiate_response: Vec<u8>,
    /// SESSION_SETUP request 1, response 1, request 2, response 2 (whole messages).
    session_setup: [Vec<u8>; 4],
    /// Index in `frames` of the final SESSION_SETUP response.
    final_response_index: usize,
}

fn setup(c: &Capture) -> Setup {
    let frames = load(c.fixture);
    let plain = |pred: &dyn Fn(&Frame) -> bool| -> Vec<(usize, Vec<u8>)> {
        frames
            .iter()
            .enumerate()
            .filter(|(_, f)| !is_transform(&f.bytes) && pred(f))
            .map(|(i, f)| (i, f.bytes.clone()))
            .collect()
    };
    let neg = plain(&|f| command(&f.bytes) == SMB2_NEGOTIATE);
    let ss = plain(&|f| command(&f.bytes) == SMB2_SESSION_SETUP);
    assert_eq!(neg.len(), 2, "{}: NEGOTIATE request and response", c.name);
    assert_eq!(ss.len(), 4, "{}: two SESSION_SETUP round trips", c.name);
    assert_eq!(frames[ss[0].0].dir, Dir::C2S);
    assert_eq!(frames[ss[3].0].dir, Dir::S2C);
    Setup {
        negotiate_request: neg[0].1.clone(),
        negotiate_response: neg[1].1.clone(),
        final_response_index: ss[3].0,
        session_setup: [
            ss[0].1.clone(),
            ss[1].1.clone(),
            ss[2].1.clone(),
            ss[3].1.clone(),
        ],
        frames,
    }
}

fn ntlm_in(spnego_token: &[u8]) -> Vec<u8> {
    match NegotiationToken::parse(spnego_token).unwrap() {
        NegotiationToken::Init(i) => i.mech_token.unwrap().to_vec(),
        NegotiationToken::Resp(NegTokenResp { response_token, .. }) => {
            response_token.unwrap().to_vec()
        }
    }
}

fn lookup_with(password: &'static str) -> impl FnMut(&str, &str) -> Option<[u8; 16]> {
    move |user, _domain| {
        user.eq_ignore_ascii_case("refuser")
            .then(|| nt_hash(password))
    }
}

/// Runs the server side of the captured exchange on a fresh Acceptor built like the
/// reference smbd, feeding the client's two tokens.
fn replay(
    c: &Capture,
    s: &Setup,
    req2_token: &[u8],
    lookup: &mut dyn FnMut(&str, &str) -> Option<[u8; 16]>,
) -> Result<Authenticated, AuthError> {
    let resp1_token = session_setup_security_buffer(&s.session_setup[1]);
    let challenge = ntlm_in(resp1_token);
    let chal = ChallengeMessage::parse(&challenge).unwrap();
    assert_eq!(
        chal.server_challenge[..],
        hex(c.server_challenge)[..],
        "{}",
        c.name
    );
    let timestamp = ntlm::av_pairs(chal.target_info)
        .map(Result::unwrap)
        .find(|(id, _)| *id == av_id::MSV_AV_TIMESTAMP)
        .map(|(_, v)| u64::from_le_bytes(v.try_into().unwrap()))
        .unwrap();

    let mut acceptor = Acceptor::new(samba_identity(), chal.server_challenge, timestamp);
    match acceptor.step(session_setup_security_buffer(&s.session_setup[0]), lookup)? {
        // Same names, challenge, time and flags as the reference smbd: same bytes.
        Step::Continue(tok) => assert_eq!(
            tok, resp1_token,
            "{}: first answer differs from Samba's",
            c.name
        ),
        Step::Done(_) => panic!("done after one step"),
    }
    match acceptor.step(req2_token, lookup)? {
        Step::Done(a) => Ok(a),
        Step::Continue(_) => panic!("{}: wants a third round trip", c.name),
    }
}

fn check_exchange(c: &Capture, s: &Setup) {
    assert_eq!(
        negotiate_response_dialect(&s.negotiate_response),
        c.dialect,
        "{}",
        c.name
    );
    assert_eq!(
        negotiate_response_security_buffer(&s.negotiate_response),
        &spnego_negotiate_token()[..],
        "{}: NegTokenInit2 differs from Samba's",
        c.name
    );

    let req2_token = session_setup_security_buffer(&s.session_setup[2]);
    let mut calls = Vec::new();
    let mut lookup = |u: &str, d: &str| {
        calls.push((u.to_string(), d.to_string()));
        lookup_with(PASSWORD)(u, d)
    };
    let a = replay(c, s, req2_token, &mut lookup).unwrap();
    assert_eq!(
        calls,
        vec![("refuser".to_string(), "WORKGROUP".to_string())]
    );
    assert_eq!(
        (a.user.as_str(), a.domain.as_str(), a.workstation.as_str()),
        ("refuser", "WORKGROUP", "VM")
    );
    assert_eq!(
        a.session_key,
        hex16(c.session_key),
        "{}: SessionKey",
        c.name
    );
    assert_eq!(
        a.token,
        session_setup_security_buffer(&s.session_setup[3]),
        "{}: accept-completed token (with the server mechListMIC) differs from Samba's",
        c.name
    );

    // The same exchange through the replay constructor and the lower-level check.
    let challenge = ntlm_in(session_setup_security_buffer(&s.session_setup[1]));
    let mut acc = Acceptor::with_challenge_message(challenge.clone()).unwrap();
    let Step::Continue(_) = acc
        .step(
            session_setup_security_buffer(&s.session_setup[0]),
            &mut lookup_with(PASSWORD),
        )
        .unwrap()
    else {
        panic!()
    };
    let Step::Done(b) = acc.step(req2_token, &mut lookup_with(PASSWORD)).unwrap() else {
        panic!()
    };
    assert_eq!(b.session_key, a.session_key);
    let logon = ntlm::verify_authenticate(
        &ntlm_in(session_setup_security_buffer(&s.session_setup[0])),
        &challenge,
        &ntlm_in(req2_token),
        &mut lookup_with(PASSWORD),
    )
    .unwrap();
    assert_eq!(
        logon.session_base_key,
        hex16(c.session_base_key),
        "{}: SessionBaseKey",
        c.name
    );
    assert!(logon.mic_verified);

    // Failures.
    let refused = |token: &[u8], lookup: &mut dyn FnMut(&str, &str) -> Option<[u8; 16]>| {
        replay(c, s, token, lookup).unwrap_err()
    };
    let logon_failure = AuthError::LogonFailure {
        user: "refuser".into(),
    };
    assert_eq!(
        refused(req2_token, &mut lookup_with("Ref-Pass2")),
        logon_failure,
        "{}: wrong password",
        c.name
    );
    assert_eq!(
        refused(req2_token, &mut |_: &str, _: &str| None),
        logon_failure,
        "{}: unknown user",
        c.name
    );

    let mut bad_mech_list_mic = req2_token.to_vec();
    let n = bad_mech_list_mic.len();
    bad_mech_list_mic[n - 8] ^= 0x01; // inside the mechListMIC checksum, the token's last field
    assert_eq!(
        refused(&bad_mech_list_mic, &mut lookup_with(PASSWORD)),
        logon_failure,
        "{}: mechListMIC",
        c.name
    );

    let ntlm_at = req2_token
        .windows(8)
        .position(|w| w == b"NTLMSSP\0")
        .unwrap();
    let mut bad_mic = req2_token.to_vec();
    bad_mic[ntlm_at + 72] ^= 0x80; // the AUTHENTICATE_MESSAGE's MIC
    assert_eq!(
        refused(&bad_mic, &mut lookup_with(PASSWORD)),
        logon_failure,
        "{}: NTLM MIC",
        c.name
    );

    let mut bad_proof = req2_token.to_vec();
    let nt_off =
        u32::from_le_bytes(req2_token[ntlm_at + 24..ntlm_at + 28].try_into().unwrap()) as usize;
    bad_proof[ntlm_at + nt_off] ^= 0x01; // NTProofStr
    assert_eq!(
        refused(&bad_proof, &mut lookup_with(PASSWORD)),
        logon_failure,
        "{}: NTProofStr",
        c.name
    );
}

fn check_keys_and_signatures(c: &Capture, s: &Setup) -> SessionKeys {
    let mut preauth = PreauthHash::new();
    for m in [
        &s.negotiate_request,
        &s.negotiate_response,
        &s.session_setup[0],
        &s.session_setup[1],
        &s.session_setup[2],
    ] {
        preauth.update(m);
    }
    if let Some(expected) = c.preauth_hash {
        assert_eq!(
            preauth.value(),
            &hex64(expected),
            "{}: PreauthIntegrityHashValue",
            c.name
        );
    }
    let keys = SessionKeys::derive(c.dialect, &hex16(c.session_key), preauth.value());
    assert_eq!(keys.signing, hex16(c.signing_key), "{}: SigningKey", c.name);
    if let Some((c2s, s2c)) = c.cipher_keys {
        assert_eq!(
            keys.decryption_c2s,
            hex16(c2s),
            "{}: C->S cipher key",
            c.name
        );
        assert_eq!(
            keys.encryption_s2c,
            hex16(s2c),
            "{}: S->C cipher key",
            c.name
        );
    }

    let signer = Signer::new(c.algorithm, keys.signing);
    let mut signed = 0;
    let mut unsigned = 0;
    for f in &s.frames[s.final_response_index..] {
        let m = &f.bytes;
        if is_transform(m) {
            continue;
        }
        assert_eq!(
            u32::from_le_bytes(m[20..24].try_into().unwrap()),
            0,
            "no compounds in the captures"
        );
        if !is_signed(m) {
            unsigned += 1;
            continue;
        }
        signed += 1;
        assert!(
            signer.verify(m),
            "{}: frame {} {:?} does not verify",
            c.name,
            f.number,
            f.dir
        );
        let mut resigned = m.clone();
        resigned[48..64].fill(0xee);
        signer.sign(&mut resigned);
        assert_eq!(
            &resigned, m,
            "{}: frame {}: sign() differs from the capture",
            c.name, f.number
        );
        for at in [0, 12, 16, 24, 50, m.len() - 1] {
            let mut bad = m.clone();
            bad[at] ^= 0x01;
            assert!(
                !signer.verify(&bad),
                "{}: frame {} verifies with byte {at} flipped",
                c.name,
                f.number
            );
        }
        for other in [
            SigningAlgorithm::HmacSha256,
            SigningAlgorithm::AesCmac,
            SigningAlgorithm::AesGmac,
        ] {
            if other != c.algorithm {
                assert!(!Signer::new(other, keys.signing).verify(m));
            }
        }
    }
    assert_eq!(
        (signed, unsigned),
        (c.signed, c.unsigned),
        "{}: signed / unsigned counts",
        c.name
    );
    assert!(!signer.verify(&s.frames[s.final_response_index].bytes[..63]));
    keys
}

fn check(c: &Capture) -> (Setup, SessionKeys) {
    let s = setup(c);
    check_exchange(c, &s);
    let keys = check_keys_and_signatures(c, &s);
    (s, keys)
}

#[test]
fn capture_a_smb311_gmac() {
    check(&A);
}

#[test]
fn capture_b_smb300_cmac() {
    check(&B);
}

#[test]
fn capture_c_smb210_hmac_sha256() {
    check(&C);
}

#[test]
fn capture_e_share_listing() {
    check(&E);
}

#[test]
fn capture_d_smb311_encrypted() {
    let (s, keys) = check(&D);
    let open_c2s = TransformCipher::new(CipherId::Aes128Gcm, &keys.decryption_c2s).unwrap();
    let open_s2c = TransformCipher::new(CipherId::Aes128Gcm, &keys.encryption_s2c).unwrap();
    let mut frames = 0;
    let mut write = None;
    let mut read = None;
    for f in &s.frames {
        if !is_transform(&f.bytes) {
            continue;
        }
        frames += 1;
        let cipher = if f.dir == Dir::C2S {
            &open_c2s
        } else {
            &open_s2c
        };
        let header = TransformHeader::parse(&f.bytes).unwrap();
        assert_eq!(header.session_id, 0xf84529b6);
        let mut buf = f.bytes.clone();
        let plain = cipher.decrypt(&mut buf).unwrap().to_vec();
        assert_eq!(&plain[..4], b"\xfeSMB", "frame {}", f.number);
        if command(&plain) == SMB2_WRITE && f.dir == Dir::C2S {
            write = Some(write_request_data(&plain).to_vec());
        }
        if command(&plain) == SMB2_READ && f.dir == Dir::S2C && status(&plain) == 0 {
            read = Some(read_response_data(&plain).to_vec());
        }

        // Sealing the plaintext again with the captured nonce gives the captured frame.
        let mut again = plain.clone();
        let th = cipher
            .encrypt(&header.nonce, header.session_id, &mut again)
            .unwrap();
        assert_eq!(
            [&th[..], &again[..]].concat(),
            f.bytes,
            "frame {}: encrypt differs",
            f.number
        );

        for at in [4, 20, 40, 44, TRANSFORM_HEADER_LEN, f.bytes.len() - 1] {
            let mut bad = f.bytes.clone();
            bad[at] ^= 0x01;
            assert!(
                cipher.decrypt(&mut bad).is_err(),
                "frame {}: byte {at} flipped still opens",
                f.number
            );
        }
        let wrong = if f.dir == Dir::C2S {
            &open_s2c
        } else {
            &open_c2s
        };
        assert_eq!(
            wrong.decrypt(&mut f.bytes.clone()).unwrap_err(),
            AuthError::Integrity
        );
    }
    assert_eq!(frames, D.transform_frames);
    assert_eq!(write.unwrap(), hello_txt());
    assert_eq!(read.unwrap(), hello_txt());
}
