//! Property tests: no input, random or a mutation of a real token, makes a parser or the
//! Acceptor panic; parsers either succeed or return an error.

mod common;

use common::*;
use duet_auth::ntlm::{
    av_pairs, AuthenticateMessage, ChallengeMessage, NegotiateMessage, NtlmV2Response,
};
use duet_auth::spnego::NegotiationToken;
use duet_auth::*;
use proptest::prelude::*;

fn lookup(user: &str, _: &str) -> Option<[u8; 16]> {
    (user == "refuser").then(|| nt_hash("Ref-Pass1"))
}

/// The client's two SPNEGO tokens and the captured CHALLENGE from capture a.
fn capture_a_tokens() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let frames = load(include_str!("data/a-smb311-signed.txt"));
    let ss: Vec<&Frame> = frames
        .iter()
        .filter(|f| !is_transform(&f.bytes) && command(&f.bytes) == SMB2_SESSION_SETUP)
        .collect();
    let tok = |i: usize| session_setup_security_buffer(&ss[i].bytes).to_vec();
    let chal_token = tok(1);
    let challenge = match NegotiationToken::parse(&chal_token).unwrap() {
        NegotiationToken::Resp(r) => r.response_token.unwrap().to_vec(),
        _ => unreachable!(),
    };
    (tok(0), challenge, tok(2))
}

/// A mutation of `seed`: flip, overwrite, truncate or insert at random places.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = seed.len();
    prop::collection::vec((0..len.max(1), any::<u8>(), 0u8..4), 1..6).prop_map(move |edits| {
        let mut v = seed.clone();
        for (at, byte, kind) in edits {
            let at = at.min(v.len().saturating_sub(1));
            match kind {
                0 if !v.is_empty() => v[at] ^= byte | 1,
                1 if !v.is_empty() => v[at] = byte,
                2 => v.truncate(at),
                _ => v.insert(at, byte),
            }
        }
        v
    })
}

fn parse_everything(data: &[u8]) {
    let _ = NegotiationToken::parse(data);
    let _ = NegotiateMessage::parse(data);
    let _ = ChallengeMessage::parse(data);
    let _ = AuthenticateMessage::parse(data);
    let _ = NtlmV2Response::parse(data).map(|r| r.mic_present());
    let _ = av_pairs(data).count();
    let _ = TransformHeader::parse(data);
    for alg in [
        SigningAlgorithm::HmacSha256,
        SigningAlgorithm::AesCmac,
        SigningAlgorithm::AesGmac,
    ] {
        let _ = Signer::new(alg, [1; 16]).verify(data);
        let mut m = data.to_vec();
        Signer::new(alg, [1; 16]).sign(&mut m);
    }
    let cipher = TransformCipher::new(CipherId::Aes128Gcm, &[2; 16]).unwrap();
    let _ = cipher.decrypt(&mut data.to_vec());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        parse_everything(&data);
        let mut acc = Acceptor::new(ServerIdentity::default(), [0; 8], 0);
        let _ = acc.step(&data, &mut lookup);
        let _ = acc.step(&data, &mut lookup);
    }

    #[test]
    fn random_bytes_after_a_valid_first_step_never_panic(data in prop::collection::vec(any::<u8>(), 0..600), raw in any::<bool>()) {
        let (init, challenge, _) = capture_a_tokens();
        let mut acc = Acceptor::with_challenge_message(challenge).unwrap();
        let first = if raw {
            let i = init.windows(8).position(|w| w == b"NTLMSSP\0").unwrap();
            init[i..].to_vec()
        } else {
            init
        };
        prop_assert!(matches!(acc.step(&first, &mut lookup), Ok(Step::Continue(_))));
        let _ = acc.step(&data, &mut lookup);
    }

    #[test]
    fn mutated_negotiate_tokens_never_panic(data in mutated(capture_a_tokens().0)) {
        parse_everything(&data);
        let mut acc = Acceptor::new(ServerIdentity::default(), [0; 8], 0);
        let _ = acc.step(&data, &mut lookup);
    }

    #[test]
    fn mutated_authenticate_tokens_never_panic_nor_pass(data in mutated(capture_a_tokens().2)) {
        let (init, challenge, auth) = capture_a_tokens();
        parse_everything(&data);
        let mut acc = Acceptor::with_challenge_message(challenge).unwrap();
        prop_assert!(matches!(acc.step(&init, &mut lookup), Ok(Step::Continue(_))));
        let result = acc.step(&data, &mut lookup);
        // Whatever changed, a success must still be the genuine logon.
        if let Ok(Step::Done(a)) = result {
            prop_assert_eq!(a.session_key, hex16("01d97e98489088fa9dd7616899214b69"));
            prop_assert_eq!(a.user, "refuser");
        } else if data == auth {
            prop_assert!(false, "the unmodified token must pass");
        }
    }
}
