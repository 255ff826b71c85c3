//! Tests of session setup, re-authentication, reconnect (PreviousSessionId), the binding
//! refusals, negotiation of ciphers and SMB3 encryption, driving real `Conn`s with a small
//! NTLMv2 client written here (its own MD5 / HMAC-MD5 and NTLMv2 response; the crate's
//! NTOWFv2 and key derivation are reused).

use std::sync::Arc;

use duet_auth::ntlm::{nt_hash, ntowf_v2, ChallengeMessage};
use duet_auth::{
    CipherId, PreauthHash, SessionKeys, Signer, SigningAlgorithm, TransformCipher, TransformHeader,
};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{Encryption, GlobalSession, Registry};
use crate::smb::{
    Conn, ConnEvent, Flow, Outbox, Server, ServerConfig, DIALECT_210, DIALECT_300, DIALECT_302,
    DIALECT_311,
};
use crate::wire::{status, PutLe};

// ------------------------------------------------------------------ MD5, HMAC-MD5

fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut st = [0x6745_2301u32, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = st;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[(i / 16) * 4 + i % 4]));
        }
        for (s, v) in st.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut out = [0u8; 16];
    for (i, s) in st.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&s.to_le_bytes());
    }
    out
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    for p in parts {
        inner.extend_from_slice(p);
    }
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&md5(&inner));
    md5(&outer)
}

#[test]
fn md5_vectors() {
    assert_eq!(md5(b"")[..4], [0xd4, 0x1d, 0x8c, 0xd9]);
    assert_eq!(
        md5(b"The quick brown fox jumps over the lazy dog")[..4],
        [0x9e, 0x10, 0x7d, 0x9d]
    );
}

// ------------------------------------------------------------------ NTLMSSP client

/// UNICODE, REQUEST_TARGET, SIGN, NTLM, ALWAYS_SIGN, ESS, TARGET_INFO, 128, 56.
const NTLM_FLAGS: u32 =
    0x1 | 0x4 | 0x10 | 0x200 | 0x8000 | 0x8_0000 | 0x80_0000 | 0x2000_0000 | 0x8000_0000;

fn ntlm_negotiate() -> Vec<u8> {
    let mut m = b"NTLMSSP\0".to_vec();
    m.put_u32(1);
    m.put_u32(NTLM_FLAGS);
    m.extend_from_slice(&[0u8; 16]);
    m
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Who logs on: a user and password, anonymous, or an NTLMv2 response whose AV pairs do
/// not parse.
#[derive(Clone, Copy)]
enum Cred<'a> {
    User(&'a str, &'a str),
    Anonymous,
    Malformed(&'a str),
}

/// The AUTHENTICATE_MESSAGE for `challenge` and the session key it yields.
fn ntlm_authenticate(challenge: &[u8], cred: Cred) -> (Vec<u8>, [u8; 16]) {
    let chal = ChallengeMessage::parse(challenge).expect("a CHALLENGE");
    let (user, lm, nt, key) = match cred {
        Cred::Anonymous => (String::new(), vec![], vec![], [0u8; 16]),
        Cred::User(user, _) | Cred::Malformed(user) => {
            let pw = if let Cred::User(_, p) = cred { p } else { "x" };
            let ntowf = ntowf_v2(&nt_hash(pw), user, "");
            let mut blob = vec![1, 1, 0, 0, 0, 0, 0, 0];
            blob.extend_from_slice(&132_000_000_000_000_000u64.to_le_bytes());
            blob.extend_from_slice(&[0x11; 8]);
            blob.extend_from_slice(&[0; 4]);
            if matches!(cred, Cred::Malformed(_)) {
                blob.extend_from_slice(&[0x11, 0xa2, 0x08, 0x81, 0x50]);
            } else {
                blob.extend_from_slice(chal.target_info);
            }
            blob.extend_from_slice(&[0; 4]);
            let proof = hmac_md5(&ntowf, &[&chal.server_challenge, &blob]);
            let key = hmac_md5(&ntowf, &[&proof]);
            let mut nt = proof.to_vec();
            nt.extend_from_slice(&blob);
            (user.to_string(), vec![0u8; 24], nt, key)
        }
    };
    let fields: [Vec<u8>; 6] = [lm, nt, vec![], utf16(&user), utf16("TESTWS"), vec![]];
    let mut m = b"NTLMSSP\0".to_vec();
    m.put_u32(3);
    let mut off = 64u32;
    for f in &fields {
        m.put_u16(f.len() as u16);
        m.put_u16(f.len() as u16);
        m.put_u32(off);
        off += f.len() as u32;
    }
    m.put_u32(NTLM_FLAGS);
    for f in &fields {
        m.extend_from_slice(f);
    }
    (m, key)
}

// ------------------------------------------------------------------ SMB2 client

const NEGOTIATE: u16 = 0;
const SESSION_SETUP: u16 = 1;
const LOGOFF: u16 = 2;
const TREE_CONNECT: u16 = 3;
const CREATE: u16 = 5;
const CLOSE: u16 = 6;
const ECHO: u16 = 13;
const FLAG_SIGNED: u32 = 0x8;

fn st(resp: &[u8]) -> u32 {
    u32::from_le_bytes(resp[8..12].try_into().unwrap())
}
fn sid_of(resp: &[u8]) -> u64 {
    u64::from_le_bytes(resp[40..48].try_into().unwrap())
}
fn flags_of(resp: &[u8]) -> u32 {
    u32::from_le_bytes(resp[16..20].try_into().unwrap())
}

struct Env {
    _dir: tempfile::TempDir,
    server: Arc<Server>,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let store = duet_state::Store::open(&dir.path().join("state")).unwrap();
    store.add_user("alice", "Alice-Pw1").unwrap();
    store.add_user("bob", "Bob-Pw1").unwrap();
    store
        .add_share(&duet_state::ShareConfig {
            name: "share".into(),
            path: share,
            comment: String::new(),
            read_only: false,
        })
        .unwrap();
    let cfg = ServerConfig {
        signing_required: true,
        ..ServerConfig::default()
    };
    Env {
        _dir: dir,
        server: Server::new(cfg, Arc::new(store)),
    }
}

const ALICE: Cred = Cred::User("alice", "Alice-Pw1");
const BOB: Cred = Cred::User("bob", "Bob-Pw1");

struct Neg {
    dialects: Vec<u16>,
    signing: Option<Vec<u16>>,
    ciphers: Option<Vec<u16>>,
    caps: u32,
}

impl Neg {
    fn smb311(signing: &[u16], ciphers: &[u16]) -> Neg {
        Neg {
            dialects: vec![DIALECT_311],
            signing: Some(signing.to_vec()),
            ciphers: (!ciphers.is_empty()).then(|| ciphers.to_vec()),
            caps: 0,
        }
    }
    fn dialect(d: u16, caps: u32) -> Neg {
        Neg {
            dialects: vec![d],
            signing: None,
            ciphers: None,
            caps,
        }
    }
}

/// A session as the client sees it.
struct Sess {
    id: u64,
    signer: Signer,
    /// Seals what the client sends (the server's DecryptionKey) and opens what it gets.
    seal: Option<TransformCipher>,
    open: Option<TransformCipher>,
}

struct Client {
    conn: Conn,
    rx: UnboundedReceiver<Vec<u8>>,
    mid: u64,
    dialect: u16,
    signing: SigningAlgorithm,
    cipher: Option<CipherId>,
    caps: u32,
    preauth: Option<PreauthHash>,
    /// The negotiate contexts of the response: (type, data).
    contexts: Vec<(u16, Vec<u8>)>,
}

fn header(cmd: u16, mid: u64, sid: u64, tid: u32, flags: u32) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[0..4].copy_from_slice(&[0xFE, b'S', b'M', b'B']);
    h[4] = 64;
    h[6] = 1;
    h[12..14].copy_from_slice(&cmd.to_le_bytes());
    h[14..16].copy_from_slice(&64u16.to_le_bytes());
    h[16..20].copy_from_slice(&flags.to_le_bytes());
    h[24..32].copy_from_slice(&mid.to_le_bytes());
    h[32..36].copy_from_slice(&0xFEFFu32.to_le_bytes());
    h[36..40].copy_from_slice(&tid.to_le_bytes());
    h[40..48].copy_from_slice(&sid.to_le_bytes());
    h
}

fn negotiate_body(neg: &Neg) -> Vec<u8> {
    let mut b = vec![0u8; 36];
    b[0] = 36;
    b[2..4].copy_from_slice(&(neg.dialects.len() as u16).to_le_bytes());
    b[4] = 1;
    b[8..12].copy_from_slice(&neg.caps.to_le_bytes());
    b[12..28].copy_from_slice(&[0x42; 16]);
    for d in &neg.dialects {
        b.put_u16(*d);
    }
    if neg.dialects.contains(&DIALECT_311) {
        let mut ctxs: Vec<(u16, Vec<u8>)> = Vec::new();
        let mut pre = vec![1, 0, 32, 0, 1, 0];
        pre.extend_from_slice(&[7u8; 32]);
        ctxs.push((1, pre));
        if let Some(c) = &neg.ciphers {
            let mut d = Vec::new();
            d.put_u16(c.len() as u16);
            c.iter().for_each(|x| d.put_u16(*x));
            ctxs.push((2, d));
        }
        if let Some(s) = &neg.signing {
            let mut d = Vec::new();
            d.put_u16(s.len() as u16);
            s.iter().for_each(|x| d.put_u16(*x));
            ctxs.push((8, d));
        }
        while !(64 + b.len()).is_multiple_of(8) {
            b.push(0);
        }
        let off = (64 + b.len()) as u32;
        b[28..32].copy_from_slice(&off.to_le_bytes());
        b[32..34].copy_from_slice(&(ctxs.len() as u16).to_le_bytes());
        for (i, (ty, data)) in ctxs.iter().enumerate() {
            if i > 0 {
                while !(64 + b.len()).is_multiple_of(8) {
                    b.push(0);
                }
            }
            b.put_u16(*ty);
            b.put_u16(data.len() as u16);
            b.put_u32(0);
            b.extend_from_slice(data);
        }
    }
    b
}

fn setup_body(flags: u8, token: &[u8], previous: u64) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(25);
    b.push(flags);
    b.push(1);
    b.put_u32(0);
    b.put_u32(0);
    b.put_u16(64 + 24);
    b.put_u16(token.len() as u16);
    b.put_u64(previous);
    b.extend_from_slice(token);
    b
}

fn security_buffer(resp: &[u8]) -> Vec<u8> {
    let off = u16::from_le_bytes([resp[68], resp[69]]) as usize;
    let len = u16::from_le_bytes([resp[70], resp[71]]) as usize;
    resp[off..off + len].to_vec()
}

impl Client {
    fn new(env: &Env, neg: Neg) -> Client {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let addr = "127.0.0.1:445".parse().unwrap();
        let conn = Conn::new(env.server.clone(), addr, addr, Outbox::new(tx));
        let mut c = Client {
            conn,
            rx,
            mid: 0,
            dialect: 0,
            signing: SigningAlgorithm::HmacSha256,
            cipher: None,
            caps: 0,
            preauth: None,
            contexts: Vec::new(),
        };
        let req = c.msg(NEGOTIATE, 0, 0, &negotiate_body(&neg));
        let resp = c.exchange(&req);
        assert_eq!(st(&resp), status::SUCCESS);
        c.dialect = u16::from_le_bytes([resp[68], resp[69]]);
        c.caps = u32::from_le_bytes(resp[88..92].try_into().unwrap());
        c.signing = SigningAlgorithm::default_for_dialect(c.dialect);
        if c.dialect == DIALECT_311 {
            let mut h = PreauthHash::new();
            h.update(&req);
            h.update(&resp);
            c.preauth = Some(h);
            let count = u16::from_le_bytes([resp[70], resp[71]]) as usize;
            let mut off = u32::from_le_bytes(resp[124..128].try_into().unwrap()) as usize;
            for _ in 0..count {
                let ty = u16::from_le_bytes([resp[off], resp[off + 1]]);
                let len = u16::from_le_bytes([resp[off + 2], resp[off + 3]]) as usize;
                let data = resp[off + 8..off + 8 + len].to_vec();
                match ty {
                    2 => c.cipher = CipherId::from_u16(u16::from_le_bytes([data[2], data[3]])),
                    8 => {
                        c.signing =
                            SigningAlgorithm::from_id(u16::from_le_bytes([data[2], data[3]]))
                                .unwrap()
                    }
                    _ => {}
                }
                c.contexts.push((ty, data));
                off = (off + 8 + len).div_ceil(8) * 8;
            }
        } else if c.caps & 0x40 != 0 {
            c.cipher = Some(CipherId::Aes128Ccm);
        }
        c
    }

    fn msg(&mut self, cmd: u16, sid: u64, tid: u32, body: &[u8]) -> Vec<u8> {
        let mut m = header(cmd, self.mid, sid, tid, 0);
        self.mid += 1;
        m.extend_from_slice(body);
        m
    }

    fn signed(&mut self, s: &Sess, cmd: u16, tid: u32, body: &[u8]) -> Vec<u8> {
        let mut m = self.msg(cmd, s.id, tid, body);
        m[16] |= FLAG_SIGNED as u8;
        s.signer.sign(&mut m);
        m
    }

    /// Feeds one frame; the one response it produced.
    fn exchange(&mut self, frame: &[u8]) -> Vec<u8> {
        assert_eq!(self.conn.handle_frame(frame), Flow::Continue);
        let mut r = self.rx.try_recv().expect("a response");
        // Markers: the response waits for state-store commits (durable handles).
        while r.is_empty() {
            self.conn.outbox.wait_marker().expect("commit");
            r = self.rx.try_recv().expect("a response");
        }
        assert!(self.rx.try_recv().is_err(), "exactly one response");
        r
    }

    /// Seals `msg` for `s`, feeds it and opens the sealed answer.
    fn exchange_sealed(&mut self, s: &Sess, msg: &[u8], nonce: u8) -> Vec<u8> {
        let mut body = msg.to_vec();
        let hdr = s
            .seal
            .as_ref()
            .unwrap()
            .encrypt(&[nonce; 16], s.id, &mut body)
            .unwrap();
        let mut frame = hdr.to_vec();
        frame.extend_from_slice(&body);
        let mut resp = self.exchange(&frame);
        open_sealed(s, &mut resp)
    }

    /// Runs a whole NTLMSSP exchange. `on` = Some(session) re-authenticates it (requests
    /// signed with its key); returns the final response and the new session's keys.
    fn logon(&mut self, cred: Cred, on: Option<&Sess>, previous: u64) -> (Vec<u8>, Option<Sess>) {
        let sid = on.map_or(0, |s| s.id);
        let mut preauth = self.preauth.clone();
        let body = setup_body(0, &ntlm_negotiate(), previous);
        let req = match on {
            Some(s) => self.signed(s, SESSION_SETUP, 0, &body),
            None => self.msg(SESSION_SETUP, 0, 0, &body),
        };
        let resp = self.exchange(&req);
        assert_eq!(st(&resp), status::MORE_PROCESSING_REQUIRED);
        let sid = if sid == 0 { sid_of(&resp) } else { sid };
        if let Some(h) = preauth.as_mut() {
            h.update(&req);
            h.update(&resp);
        }
        let (auth, key) = ntlm_authenticate(&security_buffer(&resp), cred);
        let body = setup_body(0, &auth, previous);
        let req = match on {
            Some(s) => self.signed(s, SESSION_SETUP, 0, &body),
            None => self.msg(SESSION_SETUP, sid, 0, &body),
        };
        if let Some(h) = preauth.as_mut() {
            h.update(&req);
        }
        let resp = self.exchange(&req);
        if st(&resp) != status::SUCCESS || on.is_some() {
            return (resp, None);
        }
        let hash = preauth.map(|h| *h.value()).unwrap_or([0; 64]);
        let keys = SessionKeys::derive(self.dialect, &key, &hash);
        let (c2s, s2c) = match self.cipher {
            Some(c) if c.key_len() == 32 => {
                let (s2c, c2s) = SessionKeys::cipher_keys_256(&key, &hash);
                (c2s.to_vec(), s2c.to_vec())
            }
            _ => (keys.decryption_c2s.to_vec(), keys.encryption_s2c.to_vec()),
        };
        let sess = Sess {
            id: sid,
            signer: Signer::new(self.signing, keys.signing),
            seal: self.cipher.map(|c| TransformCipher::new(c, &c2s).unwrap()),
            open: self.cipher.map(|c| TransformCipher::new(c, &s2c).unwrap()),
        };
        (resp, Some(sess))
    }

    fn logon_ok(&mut self, cred: Cred) -> Sess {
        let (resp, s) = self.logon(cred, None, 0);
        assert_eq!(st(&resp), status::SUCCESS);
        let s = s.unwrap();
        assert!(
            flags_of(&resp) & FLAG_SIGNED != 0 && s.signer.verify(&resp),
            "final response signed"
        );
        s
    }

    fn tree_connect(&mut self, s: &Sess) -> u32 {
        let path = utf16("\\\\DUET\\share");
        let mut b = Vec::new();
        b.put_u16(9);
        b.put_u16(0);
        b.put_u16(72);
        b.put_u16(path.len() as u16);
        b.extend_from_slice(&path);
        let req = self.signed(s, TREE_CONNECT, 0, &b);
        let resp = self.exchange(&req);
        assert_eq!(st(&resp), status::SUCCESS);
        u32::from_le_bytes(resp[36..40].try_into().unwrap())
    }

    fn create(&mut self, s: &Sess, tid: u32, name: &str) -> u32 {
        let req = self.signed(s, CREATE, tid, &create_body(name));
        st(&self.exchange(&req))
    }

    fn echo(&mut self, s: &Sess) -> Vec<u8> {
        let req = self.signed(s, ECHO, 0, &[4, 0, 0, 0]);
        self.exchange(&req)
    }
}

fn create_body(name: &str) -> Vec<u8> {
    let n = utf16(name);
    let mut b = Vec::new();
    b.put_u16(57);
    b.push(0);
    b.push(0);
    b.put_u32(2);
    b.put_u64(0);
    b.put_u64(0);
    b.put_u32(0x0012_019F);
    b.put_u32(0x80);
    b.put_u32(7);
    b.put_u32(3); // FILE_OPEN_IF
    b.put_u32(0x40);
    b.put_u16(64 + 56);
    b.put_u16(n.len() as u16);
    b.put_u32(0);
    b.put_u32(0);
    b.extend_from_slice(&n);
    b
}

fn open_sealed(s: &Sess, frame: &mut [u8]) -> Vec<u8> {
    assert_eq!(&frame[..4], &[0xFD, b'S', b'M', b'B'], "a transform frame");
    let h = TransformHeader::parse(frame).unwrap();
    assert_eq!(h.session_id, s.id);
    s.open
        .as_ref()
        .unwrap()
        .decrypt(frame)
        .expect("the response opens")
        .to_vec()
}

// ------------------------------------------------------------------ negotiation

#[test]
fn negotiate_chooses_a_cipher_and_answers_only_contexts_sent() {
    let e = env();
    // AES-128-CCM and AES-256-GCM offered: AES-128-CCM is preferred.
    let c = Client::new(&e, Neg::smb311(&[1], &[4, 1]));
    assert_eq!(c.cipher, Some(CipherId::Aes128Ccm));
    assert_eq!(c.conn.neg.cipher, Some(CipherId::Aes128Ccm));
    assert_eq!(c.signing, SigningAlgorithm::AesCmac);
    for (want, offered) in [
        (CipherId::Aes128Gcm, vec![3, 2, 1]),
        (CipherId::Aes256Gcm, vec![3, 4]),
        (CipherId::Aes256Ccm, vec![3]),
    ] {
        assert_eq!(
            Client::new(&e, Neg::smb311(&[2], &offered)).cipher,
            Some(want)
        );
    }
    // No cipher in common: the context says 0 and the connection does not encrypt.
    let c = Client::new(&e, Neg::smb311(&[2], &[0x77]));
    assert!(c
        .contexts
        .iter()
        .any(|(t, d)| *t == 2 && d == &[1, 0, 0, 0]));
    assert_eq!(c.conn.neg.cipher, None);
    assert_eq!(c.signing, SigningAlgorithm::AesGmac);
    // Contexts the client did not send are not answered.
    let c = Client::new(
        &e,
        Neg {
            dialects: vec![DIALECT_311],
            signing: None,
            ciphers: None,
            caps: 0,
        },
    );
    assert_eq!(
        c.contexts.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(c.conn.neg.cipher, None);
    // 3.0.x: SMB2_GLOBAL_CAP_ENCRYPTION from the client gets it back, with AES-128-CCM.
    let c = Client::new(&e, Neg::dialect(DIALECT_302, 0x40));
    assert!(c.caps & 0x40 != 0);
    assert_eq!(c.conn.neg.cipher, Some(CipherId::Aes128Ccm));
    let c = Client::new(&e, Neg::dialect(DIALECT_300, 0));
    assert!(c.caps & 0x40 == 0);
    assert_eq!(c.conn.neg.cipher, None);
    let c = Client::new(&e, Neg::dialect(DIALECT_210, 0x40));
    assert!(c.caps & 0x40 == 0);
}

// ------------------------------------------------------------------ logon

#[test]
fn logon_signs_with_each_negotiated_algorithm_and_registers_the_session() {
    let e = env();
    for (neg, alg) in [
        (Neg::smb311(&[0], &[]), SigningAlgorithm::HmacSha256),
        (Neg::smb311(&[1], &[]), SigningAlgorithm::AesCmac),
        (Neg::smb311(&[2, 1, 0], &[]), SigningAlgorithm::AesGmac),
        (Neg::dialect(DIALECT_302, 0), SigningAlgorithm::AesCmac),
        (Neg::dialect(DIALECT_210, 0), SigningAlgorithm::HmacSha256),
    ] {
        let mut c = Client::new(&e, neg);
        assert_eq!(c.signing, alg);
        let s = c.logon_ok(ALICE);
        let echo = c.echo(&s);
        assert_eq!(st(&echo), status::SUCCESS);
        assert!(s.signer.verify(&echo));
        let reg = e.server.sessions.lock().unwrap();
        let g = reg.get(s.id).expect("registered");
        assert_eq!(
            (g.conn_id, g.user.as_str(), g.signing_algorithm),
            (c.conn.id, "alice", alg)
        );
    }
}

#[test]
fn malformed_ntlmv2_response_is_invalid_parameter() {
    let e = env();
    let mut c = Client::new(&e, Neg::smb311(&[1], &[]));
    let (resp, _) = c.logon(Cred::Malformed("alice"), None, 0);
    assert_eq!(st(&resp), status::INVALID_PARAMETER);
    assert!(c.conn.sessions.is_empty());
    let (resp, _) = c.logon(BOB, None, 0);
    assert_eq!(st(&resp), status::SUCCESS);
}

// ------------------------------------------------------------------ re-authentication

#[test]
fn reauth_keeps_keys_user_and_opens() {
    let e = env();
    let mut c = Client::new(&e, Neg::smb311(&[2], &[]));
    let s = c.logon_ok(ALICE);
    let tid = c.tree_connect(&s);
    assert_eq!(c.create(&s, tid, "f.txt"), status::SUCCESS);
    for _ in 0..2 {
        let (resp, _) = c.logon(ALICE, Some(&s), 0);
        assert_eq!(st(&resp), status::SUCCESS);
        assert_eq!(sid_of(&resp), s.id);
        // Signed with the key of the first logon: the keys did not change.
        assert!(flags_of(&resp) & FLAG_SIGNED != 0 && s.signer.verify(&resp));
        assert!(s.signer.verify(&c.echo(&s)));
        assert_eq!(c.conn.opens.len(), 1);
        assert!(c.conn.sessions[&s.id].is_valid());
    }
}

#[test]
fn reauth_as_another_user_or_anonymous_is_refused_and_the_session_goes_on() {
    let e = env();
    let mut c = Client::new(&e, Neg::smb311(&[1], &[]));
    let s = c.logon_ok(ALICE);
    let tid = c.tree_connect(&s);
    assert_eq!(c.create(&s, tid, "g.txt"), status::SUCCESS);
    for cred in [BOB, Cred::Anonymous] {
        let (resp, _) = c.logon(cred, Some(&s), 0);
        assert_eq!(st(&resp), status::ACCESS_DENIED);
        let sess = &c.conn.sessions[&s.id];
        assert!(sess.is_valid());
        assert_eq!(sess.user, "alice");
        assert_eq!(c.conn.opens.len(), 1);
        let echo = c.echo(&s);
        assert_eq!(st(&echo), status::SUCCESS);
        assert!(s.signer.verify(&echo));
    }
}

#[test]
fn failed_reauth_ends_the_session() {
    let e = env();
    let mut c = Client::new(&e, Neg::smb311(&[1], &[]));
    let s = c.logon_ok(ALICE);
    let tid = c.tree_connect(&s);
    assert_eq!(c.create(&s, tid, "h.txt"), status::SUCCESS);
    let (resp, _) = c.logon(Cred::User("alice", "wrong"), Some(&s), 0);
    assert_eq!(st(&resp), status::LOGON_FAILURE);
    assert!(c.conn.sessions.is_empty());
    assert!(c.conn.opens.is_empty());
    assert!(e.server.sessions.lock().unwrap().get(s.id).is_none());
    assert_eq!(c.create(&s, tid, "h.txt"), status::USER_SESSION_DELETED);
}

// ------------------------------------------------------------------ reconnect

#[test]
fn reconnect_on_the_same_connection_logs_the_previous_session_off() {
    let e = env();
    let mut c = Client::new(&e, Neg::smb311(&[1], &[]));
    let old = c.logon_ok(ALICE);
    let tid = c.tree_connect(&old);
    assert_eq!(c.create(&old, tid, "r.txt"), status::SUCCESS);
    let (resp, new) = c.logon(ALICE, None, old.id);
    assert_eq!(st(&resp), status::SUCCESS);
    let new = new.unwrap();
    assert!(!c.conn.sessions.contains_key(&old.id));
    assert!(c.conn.opens.is_empty());
    assert_eq!(c.create(&old, tid, "r.txt"), status::USER_SESSION_DELETED);
    let reg = e.server.sessions.lock().unwrap();
    assert!(reg.get(old.id).is_none() && reg.get(new.id).is_some());
}

#[test]
fn reconnect_from_another_connection_logs_the_previous_session_off_there() {
    let e = env();
    let mut a = Client::new(&e, Neg::smb311(&[1], &[]));
    let old = a.logon_ok(ALICE);
    let tid = a.tree_connect(&old);
    assert_eq!(a.create(&old, tid, "x.txt"), status::SUCCESS);
    let mailbox = a.conn.mailbox();

    // Another user's reconnect leaves it alone.
    let mut b = Client::new(&e, Neg::smb311(&[1], &[]));
    let (resp, _) = b.logon(BOB, None, old.id);
    assert_eq!(st(&resp), status::SUCCESS);
    assert!(e.server.sessions.lock().unwrap().get(old.id).is_some());

    let (resp, _) = b.logon(ALICE, None, old.id);
    assert_eq!(st(&resp), status::SUCCESS);
    assert!(e.server.sessions.lock().unwrap().get(old.id).is_none());
    // Connection A is woken and drops the session and its opens.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(5), mailbox.wait())
            .await
            .expect("the owner is woken")
    });
    assert_eq!(a.conn.handle_events(), Flow::Continue);
    assert!(a.conn.sessions.is_empty());
    assert!(a.conn.opens.is_empty());
    assert_eq!(a.create(&old, tid, "x.txt"), status::USER_SESSION_DELETED);

    // handle_frame drains the mailbox too.
    let old2 = a.logon_ok(ALICE);
    let (resp, _) = b.logon(ALICE, None, old2.id);
    assert_eq!(st(&resp), status::SUCCESS);
    assert_eq!(st(&a.echo(&old2)), status::SUCCESS);
    assert!(a.conn.sessions.is_empty());
}

#[test]
fn teardown_forgets_the_connection() {
    let e = env();
    let mut a = Client::new(&e, Neg::smb311(&[1], &[]));
    let s = a.logon_ok(ALICE);
    let id = a.conn.id;
    drop(a);
    assert!(e.server.sessions.lock().unwrap().get(s.id).is_none());
    assert!(!e.server.post(id, ConnEvent::Logoff { session_id: s.id }));
}

// ------------------------------------------------------------------ binding refusals

fn bind(c: &mut Client, s: &Sess, signed: bool) -> Vec<u8> {
    let body = setup_body(1, &ntlm_negotiate(), 0);
    let req = if signed {
        c.signed(s, SESSION_SETUP, 0, &body)
    } else {
        c.msg(SESSION_SETUP, s.id, 0, &body)
    };
    c.exchange(&req)
}

fn assert_signed_by(resp: &[u8], s: &Sess) {
    assert!(flags_of(resp) & FLAG_SIGNED != 0, "signed");
    assert!(s.signer.verify(resp), "signed with the session's key");
}

#[test]
fn binding_is_refused_with_the_status_of_the_request_fault() {
    let e = env();
    // A session on 3.0.2 (AES-CMAC) and one on 3.1.1 with AES-GMAC and AES-128-GCM.
    let mut a = Client::new(&e, Neg::dialect(DIALECT_302, 0));
    let s302 = a.logon_ok(ALICE);
    let mut g = Client::new(&e, Neg::smb311(&[2], &[2]));
    let sg = g.logon_ok(ALICE);

    let cases: Vec<(Neg, &Sess, u32)> = vec![
        (Neg::dialect(0x0202, 0), &s302, status::REQUEST_NOT_ACCEPTED),
        (
            Neg::dialect(DIALECT_210, 0),
            &s302,
            status::REQUEST_NOT_ACCEPTED,
        ),
        (Neg::smb311(&[1], &[]), &s302, status::INVALID_PARAMETER),
        // A sound request: the binding's authentication starts.
        (
            Neg::dialect(DIALECT_302, 0),
            &s302,
            status::MORE_PROCESSING_REQUIRED,
        ),
        (Neg::smb311(&[2], &[]), &s302, status::NOT_SUPPORTED),
        (Neg::smb311(&[1], &[2]), &sg, 0xC000_042A),
        (Neg::dialect(DIALECT_210, 0), &sg, 0xC000_042A),
        (Neg::smb311(&[2], &[1]), &sg, status::INVALID_PARAMETER),
        (
            Neg::smb311(&[2], &[2]),
            &sg,
            status::MORE_PROCESSING_REQUIRED,
        ),
    ];
    for (neg, s, want) in cases {
        let mut b = Client::new(&e, neg);
        let resp = bind(&mut b, s, true);
        assert_eq!(st(&resp), want, "dialect {:#x}", b.dialect);
        assert_eq!(sid_of(&resp), s.id);
        assert_signed_by(&resp, s);
        assert!(b.conn.sessions.is_empty());
        // Without the binding flag the session is not this connection's: deleted, and
        // still signed with its key.
        let req = b.signed(s, SESSION_SETUP, 0, &setup_body(0, &ntlm_negotiate(), 0));
        let resp = b.exchange(&req);
        assert_eq!(st(&resp), status::USER_SESSION_DELETED);
        assert_signed_by(&resp, s);
    }
    // Unsigned: INVALID_PARAMETER, and no signature to give.
    let mut b = Client::new(&e, Neg::smb311(&[2], &[2]));
    let resp = bind(&mut b, &sg, false);
    assert_eq!(st(&resp), status::INVALID_PARAMETER);
    assert_eq!(flags_of(&resp) & FLAG_SIGNED, 0);
    // No session id, an unknown one, and the session's own connection.
    let req = b.msg(SESSION_SETUP, 0, 0, &setup_body(1, &ntlm_negotiate(), 0));
    assert_eq!(st(&b.exchange(&req)), status::INVALID_PARAMETER);
    let req = b.msg(
        SESSION_SETUP,
        0x7777,
        0,
        &setup_body(1, &ntlm_negotiate(), 0),
    );
    assert_eq!(st(&b.exchange(&req)), status::USER_SESSION_DELETED);
    let resp = bind(&mut g, &sg, true);
    assert_eq!(st(&resp), status::REQUEST_NOT_ACCEPTED);
    assert_signed_by(&resp, &sg);
    // The sessions are untouched.
    assert_eq!(st(&a.echo(&s302)), status::SUCCESS);
    assert_eq!(st(&g.echo(&sg)), status::SUCCESS);
}

// ------------------------------------------------------------------ multichannel

impl Client {
    /// Binds `s` to this connection as a channel with a whole NTLMSSP exchange as `cred`;
    /// the final response and, on success, the session as this channel signs it.
    fn bind_as(&mut self, s: &Sess, cred: Cred) -> (Vec<u8>, Option<Sess>) {
        let mut preauth = self.preauth.clone();
        let req = self.signed(s, SESSION_SETUP, 0, &setup_body(1, &ntlm_negotiate(), 0));
        let resp = self.exchange(&req);
        assert_eq!(st(&resp), status::MORE_PROCESSING_REQUIRED);
        assert_signed_by(&resp, s);
        if let Some(h) = preauth.as_mut() {
            h.update(&req);
            h.update(&resp);
        }
        let (auth, key) = ntlm_authenticate(&security_buffer(&resp), cred);
        let req = self.signed(s, SESSION_SETUP, 0, &setup_body(1, &auth, 0));
        if let Some(h) = preauth.as_mut() {
            h.update(&req);
        }
        let resp = self.exchange(&req);
        if st(&resp) != status::SUCCESS {
            return (resp, None);
        }
        let hash = preauth.map(|h| *h.value()).unwrap_or([0; 64]);
        let keys = SessionKeys::derive(self.dialect, &key, &hash);
        let chan = Sess {
            id: s.id,
            signer: Signer::new(self.signing, keys.signing),
            seal: None,
            open: None,
        };
        (resp, Some(chan))
    }

    /// Feeds a frame of a session whose home is `home`'s connection: the home handles
    /// what this channel forwarded; the one response that came back on this channel.
    fn exchange_via(&mut self, home: &mut Client, frame: &[u8]) -> Vec<u8> {
        assert_eq!(self.conn.handle_frame(frame), Flow::Continue);
        assert!(self.rx.try_recv().is_err(), "forwarded, not answered here");
        assert_eq!(home.conn.handle_events(), Flow::Continue);
        let mut r = self.rx.try_recv().expect("a response on the channel");
        while r.is_empty() {
            self.conn.outbox.wait_marker().expect("commit");
            r = self.rx.try_recv().expect("a response");
        }
        assert!(
            home.rx.try_recv().is_err(),
            "nothing on the home connection"
        );
        r
    }
}

fn close_body(resp: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(24);
    b.put_u16(0);
    b.put_u32(0);
    b.extend_from_slice(&resp[64 + 64..64 + 80]);
    b
}

#[test]
fn a_bound_channel_uses_the_sessions_trees_and_opens_and_signs_with_its_own_key() {
    for neg in [
        || Neg::smb311(&[1], &[]),
        || Neg::smb311(&[0], &[]),
        || Neg::dialect(DIALECT_302, 0),
        || Neg::dialect(DIALECT_300, 0),
    ] {
        let e = env();
        let mut a = Client::new(&e, neg());
        let s = a.logon_ok(ALICE);
        let tid = a.tree_connect(&s);
        let req = a.signed(&s, CREATE, tid, &create_body("one.txt"));
        let created = a.exchange(&req);
        assert_eq!(st(&created), status::SUCCESS);
        assert_ne!(a.caps & 0x08, 0, "SMB2_GLOBAL_CAP_MULTI_CHANNEL");

        let mut b = Client::new(&e, neg());
        let (resp, chan) = b.bind_as(&s, ALICE);
        assert_eq!(st(&resp), status::SUCCESS, "dialect {:#x}", b.dialect);
        assert_eq!(sid_of(&resp), s.id);
        let chan = chan.unwrap();
        assert!(flags_of(&resp) & FLAG_SIGNED != 0 && chan.signer.verify(&resp));
        assert!(b.conn.sessions.is_empty(), "the session stays on its home");
        {
            let reg = e.server.sessions.lock().unwrap();
            let ids: Vec<u64> = reg
                .get(s.id)
                .unwrap()
                .channels
                .iter()
                .map(|c| c.0)
                .collect();
            assert_eq!(ids, vec![a.conn.id, b.conn.id]);
        }

        // The channel reaches the open made on the home connection, and the tree.
        let req = b.signed(&chan, CLOSE, tid, &close_body(&created));
        let resp = b.exchange_via(&mut a, &req);
        assert_eq!(st(&resp), status::SUCCESS);
        assert!(chan.signer.verify(&resp), "signed with the channel's key");
        assert!(a.conn.opens.is_empty());
        let req = b.signed(&chan, CREATE, tid, &create_body("two.txt"));
        let resp = b.exchange_via(&mut a, &req);
        assert_eq!(st(&resp), status::SUCCESS);
        assert_eq!(
            a.conn.opens.len(),
            1,
            "the open lives on the home connection"
        );
        // And the home connection reaches the open made over the channel.
        let req = a.signed(&s, CLOSE, tid, &close_body(&resp));
        assert_eq!(st(&a.exchange(&req)), status::SUCCESS);

        // A request on the channel signed with the session's key, not the channel's, is
        // refused (3.1.1 and 3.0 alike: each authentication has its own session key).
        let req = b.signed(&s, CREATE, tid, &create_body("three.txt"));
        let resp = b.exchange_via(&mut a, &req);
        assert_eq!(st(&resp), status::ACCESS_DENIED);
        // Binding again where it is bound: not accepted.
        let req = b.signed(
            &chan,
            SESSION_SETUP,
            0,
            &setup_body(1, &ntlm_negotiate(), 0),
        );
        assert_eq!(st(&b.exchange(&req)), status::REQUEST_NOT_ACCEPTED);
        let req = b.signed(&s, SESSION_SETUP, 0, &setup_body(1, &ntlm_negotiate(), 0));
        assert_eq!(st(&b.exchange(&req)), status::ACCESS_DENIED);
    }
}

#[test]
fn binding_as_another_user_or_unsigned_is_refused_and_the_session_goes_on() {
    let e = env();
    let mut a = Client::new(&e, Neg::smb311(&[1], &[]));
    let s = a.logon_ok(ALICE);
    let mut b = Client::new(&e, Neg::smb311(&[1], &[]));
    let (resp, chan) = b.bind_as(&s, BOB);
    assert_eq!(st(&resp), status::ACCESS_DENIED);
    assert!(chan.is_none() && b.conn.bound.is_empty());
    // A wrong password: LOGON_FAILURE, and the session is untouched.
    let (resp, _) = b.bind_as(&s, Cred::User("alice", "wrong"));
    assert_eq!(st(&resp), status::LOGON_FAILURE);
    let resp = bind(&mut b, &s, false);
    assert_eq!(st(&resp), status::INVALID_PARAMETER);
    assert_eq!(st(&a.echo(&s)), status::SUCCESS);
    assert_eq!(
        e.server
            .sessions
            .lock()
            .unwrap()
            .get(s.id)
            .unwrap()
            .channels
            .len(),
        1
    );
    // Not a channel: its requests on this connection find no session.
    let req = b.signed(&s, ECHO, 0, &[4, 0, 0, 0]);
    let req = {
        let mut r = req;
        r[12] = TREE_CONNECT as u8;
        s.signer.sign(&mut r);
        r
    };
    assert_eq!(st(&b.exchange(&req)), status::USER_SESSION_DELETED);
    // The right user binds on the same connection afterwards.
    let (resp, chan) = b.bind_as(&s, ALICE);
    assert_eq!(st(&resp), status::SUCCESS);
    assert!(chan.is_some());
}

#[test]
fn logoff_on_one_channel_ends_the_session_on_all() {
    let e = env();
    let mut a = Client::new(&e, Neg::smb311(&[1], &[]));
    let s = a.logon_ok(ALICE);
    let tid = a.tree_connect(&s);
    assert_eq!(a.create(&s, tid, "l.txt"), status::SUCCESS);
    let mut b = Client::new(&e, Neg::smb311(&[1], &[]));
    let chan = b.bind_as(&s, ALICE).1.unwrap();
    let req = b.signed(&chan, LOGOFF, 0, &[4, 0, 0, 0]);
    let resp = b.exchange_via(&mut a, &req);
    assert_eq!(st(&resp), status::SUCCESS);
    assert!(chan.signer.verify(&resp));
    assert!(a.conn.sessions.is_empty() && a.conn.opens.is_empty());
    assert!(e.server.sessions.lock().unwrap().get(s.id).is_none());
    assert_eq!(a.create(&s, tid, "l.txt"), status::USER_SESSION_DELETED);
    // The channel answers for the ended session itself, signed with its key (a client
    // that signs insists on a signed answer).
    let req = b.signed(&chan, CREATE, tid, &create_body("l.txt"));
    let resp = b.exchange(&req);
    assert_eq!(st(&resp), status::USER_SESSION_DELETED);
    assert!(chan.signer.verify(&resp));
    let req = a.signed(&s, CREATE, tid, &create_body("l.txt"));
    let resp = a.exchange(&req);
    assert_eq!(st(&resp), status::USER_SESSION_DELETED);
    assert!(s.signer.verify(&resp));
}

#[test]
fn a_session_has_at_most_32_channels() {
    let e = env();
    let mut a = Client::new(&e, Neg::smb311(&[1], &[]));
    let s = a.logon_ok(ALICE);
    let mut chans = Vec::new();
    for _ in 1..super::MAX_CHANNELS_PER_SESSION {
        let mut b = Client::new(&e, Neg::smb311(&[1], &[]));
        assert_eq!(st(&b.bind_as(&s, ALICE).0), status::SUCCESS);
        chans.push(b);
    }
    let mut b = Client::new(&e, Neg::smb311(&[1], &[]));
    assert_eq!(st(&bind(&mut b, &s, true)), status::INSUFFICIENT_RESOURCES);
    // A channel closes: room for another.
    drop(chans.pop());
    assert_eq!(st(&b.bind_as(&s, ALICE).0), status::SUCCESS);
}

#[test]
fn the_session_lives_on_when_its_home_connection_closes() {
    let e = env();
    let mut a = Client::new(&e, Neg::smb311(&[1], &[]));
    let s = a.logon_ok(ALICE);
    let tid = a.tree_connect(&s);
    let req = a.signed(&s, CREATE, tid, &create_body("h.txt"));
    let created = a.exchange(&req);
    assert_eq!(st(&created), status::SUCCESS);
    let home_id = a.conn.id;
    let mut b = Client::new(&e, Neg::smb311(&[1], &[]));
    let chan = b.bind_as(&s, ALICE).1.unwrap();
    let mut c = Client::new(&e, Neg::smb311(&[1], &[]));
    let chan_c = c.bind_as(&s, ALICE).1.unwrap();

    // The home connection closes: its state moves to the first other channel.
    drop(a);
    assert_eq!(b.conn.handle_events(), Flow::Continue);
    {
        let reg = e.server.sessions.lock().unwrap();
        let g = reg.get(s.id).expect("the session lives on");
        assert_eq!(g.conn_id, home_id, "under the same connection id");
        let ids: Vec<u64> = g.channels.iter().map(|c| c.0).collect();
        assert_eq!(ids, vec![b.conn.id, c.conn.id]);
    }
    // Requests on either channel reach the open made on the closed connection.
    let req = b.signed(&chan, ECHO, 0, &[4, 0, 0, 0]);
    assert_eq!(b.conn.handle_frame(&req), Flow::Continue);
    let resp = b.rx.try_recv().expect("answered at once: b runs the home");
    assert_eq!(st(&resp), status::SUCCESS);
    assert!(chan.signer.verify(&resp));
    let req = c.signed(&chan_c, CREATE, tid, &create_body("h2.txt"));
    assert_eq!(c.conn.handle_frame(&req), Flow::Continue);
    assert_eq!(b.conn.handle_events(), Flow::Continue);
    let resp = c.rx.try_recv().expect("a response on c");
    assert_eq!(st(&resp), status::SUCCESS);
    assert!(chan_c.signer.verify(&resp));

    // b closes too: c runs the session now.
    drop(b);
    assert_eq!(c.conn.handle_events(), Flow::Continue);
    let req = c.signed(&chan_c, CLOSE, tid, &close_body(&created));
    assert_eq!(c.conn.handle_frame(&req), Flow::Continue);
    let resp = c.rx.try_recv().expect("a response on c");
    assert_eq!(st(&resp), status::SUCCESS);

    // The last channel closes: the session ends.
    drop(c);
    assert!(e.server.sessions.lock().unwrap().get(s.id).is_none());
    assert!(!e
        .server
        .post(home_id, ConnEvent::Logoff { session_id: s.id }));
}

// ------------------------------------------------------------------ encryption

#[test]
fn sealed_requests_get_sealed_unsigned_responses_with_each_cipher() {
    let e = env();
    for (neg, cipher) in [
        (Neg::smb311(&[2], &[1]), CipherId::Aes128Ccm),
        (Neg::smb311(&[2], &[2]), CipherId::Aes128Gcm),
        (Neg::smb311(&[1], &[3]), CipherId::Aes256Ccm),
        (Neg::smb311(&[0], &[4]), CipherId::Aes256Gcm),
        (Neg::dialect(DIALECT_300, 0x40), CipherId::Aes128Ccm),
    ] {
        let mut c = Client::new(&e, neg);
        let s = c.logon_ok(ALICE);
        assert_eq!(
            c.conn.sessions[&s.id].encryption.as_ref().unwrap().cipher(),
            cipher
        );
        // Unsigned inside the seal, although the server requires signing.
        let path = utf16("\\\\DUET\\share");
        let mut b = Vec::new();
        b.put_u16(9);
        b.put_u16(0);
        b.put_u16(72);
        b.put_u16(path.len() as u16);
        b.extend_from_slice(&path);
        let req = c.msg(TREE_CONNECT, s.id, 0, &b);
        let resp = c.exchange_sealed(&s, &req, 1);
        assert_eq!(st(&resp), status::SUCCESS);
        assert_eq!(flags_of(&resp) & FLAG_SIGNED, 0);
        assert_eq!(&resp[48..64], &[0u8; 16]);
        let tid = u32::from_le_bytes(resp[36..40].try_into().unwrap());
        let req = c.msg(CREATE, s.id, tid, &create_body("sealed.txt"));
        assert_eq!(st(&c.exchange_sealed(&s, &req, 2)), status::SUCCESS);
        // The same request in clear and unsigned is refused (signing required).
        let req = c.msg(TREE_CONNECT, s.id, 0, &b);
        assert_eq!(st(&c.exchange(&req)), status::ACCESS_DENIED);
        let req = c.msg(LOGOFF, s.id, 0, &[4, 0, 0, 0]);
        assert_eq!(st(&c.exchange_sealed(&s, &req, 3)), status::SUCCESS);
        assert!(c.conn.sessions.is_empty());
    }
}

#[test]
fn response_nonces_never_repeat() {
    let e = env();
    let mut c = Client::new(&e, Neg::smb311(&[2], &[2]));
    let s = c.logon_ok(ALICE);
    let mut seen = std::collections::HashSet::new();
    for i in 0..20u8 {
        let req = c.msg(ECHO, s.id, 0, &[4, 0, 0, 0]);
        let mut body = req.clone();
        let hdr = s
            .seal
            .as_ref()
            .unwrap()
            .encrypt(&[i; 16], s.id, &mut body)
            .unwrap();
        let mut frame = hdr.to_vec();
        frame.extend_from_slice(&body);
        let resp = c.exchange(&frame);
        assert!(seen.insert(TransformHeader::parse(&resp).unwrap().nonce));
    }
}

#[test]
fn bad_transform_frames_end_the_connection() {
    let e = env();
    let mut c = Client::new(&e, Neg::smb311(&[2], &[2]));
    let s = c.logon_ok(ALICE);
    let seal = |c: &mut Client, sid: u64, tamper: bool| {
        let mut body = c.msg(ECHO, s.id, 0, &[4, 0, 0, 0]);
        let hdr = s
            .seal
            .as_ref()
            .unwrap()
            .encrypt(&[9; 16], sid, &mut body)
            .unwrap();
        let mut frame = hdr.to_vec();
        frame.extend_from_slice(&body);
        if tamper {
            let n = frame.len() - 1;
            frame[n] ^= 1;
        }
        frame
    };
    let f = seal(&mut c, s.id, true);
    assert_eq!(c.conn.handle_frame(&f), Flow::Close);
    let f = seal(&mut c, s.id + 1000, false);
    assert_eq!(c.conn.handle_frame(&f), Flow::Close);
    // A connection without a cipher takes no transform frame at all.
    let mut plain = Client::new(&e, Neg::smb311(&[2], &[]));
    let s2 = plain.logon_ok(ALICE);
    assert!(plain.conn.sessions[&s2.id].encryption.is_none());
    let f = seal(&mut c, s.id, false);
    assert_eq!(plain.conn.handle_frame(&f), Flow::Close);
    // The sound frame still works on its own connection.
    let f = seal(&mut c, s.id, false);
    let mut resp = c.exchange(&f);
    assert_eq!(st(&open_sealed(&s, &mut resp)), status::SUCCESS);
}

#[test]
fn async_completion_of_a_sealed_request_is_sealed() {
    let e = env();
    let mut c = Client::new(&e, Neg::smb311(&[2], &[2]));
    let s = c.logon_ok(ALICE);
    let path = utf16("\\\\DUET\\share");
    let mut b = Vec::new();
    b.put_u16(9);
    b.put_u16(0);
    b.put_u16(72);
    b.put_u16(path.len() as u16);
    b.extend_from_slice(&path);
    let req = c.msg(TREE_CONNECT, s.id, 0, &b);
    let resp = c.exchange_sealed(&s, &req, 1);
    let tid = u32::from_le_bytes(resp[36..40].try_into().unwrap());
    // Open the share's root directory and ask for change notifications: it goes async.
    let mut cb = create_body("");
    cb[40..44].copy_from_slice(&1u32.to_le_bytes()); // FILE_DIRECTORY_FILE
    cb[24..28].copy_from_slice(&0x0012_0089u32.to_le_bytes());
    let req = c.msg(CREATE, s.id, tid, &cb);
    let resp = c.exchange_sealed(&s, &req, 2);
    assert_eq!(st(&resp), status::SUCCESS);
    let fid = resp[64 + 64..64 + 80].to_vec();
    let mut nb = Vec::new();
    nb.put_u16(32);
    nb.put_u16(0);
    nb.put_u32(1000);
    nb.extend_from_slice(&fid);
    nb.put_u32(0x3);
    nb.put_u32(0);
    let req = c.msg(15, s.id, tid, &nb);
    let mid = u64::from_le_bytes(req[24..32].try_into().unwrap());
    let interim = c.exchange_sealed(&s, &req, 3);
    assert_eq!(st(&interim), status::PENDING);
    let async_id = u64::from_le_bytes(interim[32..40].try_into().unwrap());
    // CANCEL (sealed) completes it with STATUS_CANCELLED, sealed and unsigned.
    let mut cancel = header(12, mid, s.id, 0, 0x2);
    cancel[32..40].copy_from_slice(&async_id.to_le_bytes());
    cancel.extend_from_slice(&[4, 0, 0, 0]);
    let mut body = cancel.clone();
    let hdr = s
        .seal
        .as_ref()
        .unwrap()
        .encrypt(&[4; 16], s.id, &mut body)
        .unwrap();
    let mut frame = hdr.to_vec();
    frame.extend_from_slice(&body);
    assert_eq!(c.conn.handle_frame(&frame), Flow::Continue);
    let mut done = c.rx.try_recv().expect("the final response");
    let done = open_sealed(&s, &mut done);
    assert_eq!(st(&done), status::CANCELLED);
    assert_eq!(flags_of(&done) & FLAG_SIGNED, 0);
}

#[test]
fn encryption_seals_with_fresh_nonces_and_opens_only_sound_frames() {
    let key = [5u8; 16];
    let enc = Encryption::new(CipherId::Aes128Gcm, &key, &key, [9; 8]).unwrap();
    let a = enc.seal(7, b"hello world".to_vec()).unwrap();
    let b = enc.seal(7, b"hello world".to_vec()).unwrap();
    assert_ne!(a, b);
    let (ha, hb) = (
        TransformHeader::parse(&a).unwrap(),
        TransformHeader::parse(&b).unwrap(),
    );
    assert_eq!(&ha.nonce[..8], &0u64.to_le_bytes());
    assert_eq!(&hb.nonce[..8], &1u64.to_le_bytes());
    assert_eq!(&ha.nonce[8..12], &[9; 4]);
    assert_eq!(enc.open(&a).unwrap(), b"hello world");
    let mut bad = a.clone();
    bad[30] ^= 1;
    assert!(enc.open(&bad).is_none());
    assert!(Encryption::new(CipherId::Aes256Ccm, &key, &key, [0; 8]).is_err());
}

#[test]
fn registry_owner_rules() {
    let signer = Arc::new(Signer::new(SigningAlgorithm::AesCmac, [1; 16]));
    let g = |conn_id, user: &str| GlobalSession {
        conn_id,
        user: user.into(),
        signer: signer.clone(),
        dialect: DIALECT_311,
        signing_algorithm: SigningAlgorithm::AesCmac,
        cipher: None,
        client_guid: [0; 16],
        channels: Vec::new(),
        encryption: None,
    };
    let mut r = Registry::default();
    r.insert(1, g(10, "alice"));
    r.insert(2, g(10, "bob"));
    r.insert(3, g(11, "alice"));
    r.remove(1, 11);
    assert!(r.get(1).is_some(), "only the owner removes");
    assert_eq!(r.take_if_user(1, "bob"), None);
    assert_eq!(r.take_if_user(1, "alice"), Some(10));
    assert!(r.get(1).is_none());
    r.remove_conn(10);
    assert_eq!(r.len(), 1);
    assert!(r.get(3).is_some());
}

// ------------------------------------------------------------------ recorded sessions

impl Client {
    /// A CREATE with a batch oplock and `context` (DHnQ or DHnC): the status and FileId.
    fn durable_create(
        &mut self,
        s: &Sess,
        tid: u32,
        name: &str,
        context: (&[u8], Vec<u8>),
    ) -> (u32, [u8; 16]) {
        let args = crate::smb::testkit::CreateArgs::new(name);
        let body = crate::smb::testkit::create_body(&args, 0x09, &[context]);
        let req = self.signed(s, CREATE, tid, &body);
        let resp = self.exchange(&req);
        let mut fid = [0u8; 16];
        if st(&resp) == status::SUCCESS {
            fid.copy_from_slice(&resp[64 + 64..64 + 80]);
        }
        (st(&resp), fid)
    }
}

/// The daemon stops and starts again on the same state directory (its durable handles
/// restored). Every connection of the old server must be gone.
fn restart(e: Env) -> Env {
    let Env { _dir, server } = e;
    let cfg = server.cfg.clone();
    assert_eq!(Arc::strong_count(&server), 1, "a connection is alive");
    drop(server);
    let store = duet_state::Store::open(&_dir.path().join("state")).unwrap();
    let server = Server::new(cfg, Arc::new(store));
    crate::smb::durable::restore(&server).unwrap();
    Env { _dir, server }
}

fn recorded(e: &Env) -> Vec<u64> {
    let v = e.server.store.list_sessions().unwrap();
    v.into_iter().map(|s| s.session_id).collect()
}

#[test]
fn a_session_with_a_durable_open_is_recorded_and_a_reconnect_after_a_restart_removes_it() {
    let e = env();
    let mut c = Client::new(&e, Neg::smb311(&[1], &[]));
    let old = c.logon_ok(ALICE);
    let tid = c.tree_connect(&old);
    // A session without durable opens is not recorded.
    assert_eq!(c.create(&old, tid, "plain.txt"), status::SUCCESS);
    assert!(recorded(&e).is_empty());
    let (st0, fid) = c.durable_create(&old, tid, "d.txt", (b"DHnQ", vec![0; 16]));
    assert_eq!(st0, status::SUCCESS);
    let recs = e.server.store.list_sessions().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].session_id, old.id);
    assert!(recs[0].user.eq_ignore_ascii_case("alice"));
    assert_eq!(recs[0].client_guid, c.conn.neg.client_guid);
    assert_eq!(recs[0].dialect, DIALECT_311);
    // The connection drops, the daemon restarts: the session is kept with its open.
    drop(c);
    let e = restart(e);
    assert_eq!(recorded(&e), [old.id]);
    // A reconnect by another user naming it leaves it alone.
    let mut b = Client::new(&e, Neg::smb311(&[1], &[]));
    let (resp, _) = b.logon(BOB, None, old.id);
    assert_eq!(st(&resp), status::SUCCESS);
    assert_eq!(recorded(&e), [old.id]);
    // Its user's reconnect removes it before the response arrives; the open comes back
    // into the new session, which is recorded with it.
    let mut c = Client::new(&e, Neg::smb311(&[1], &[]));
    let (resp, new) = c.logon(ALICE, None, old.id);
    assert_eq!(st(&resp), status::SUCCESS);
    let new = new.unwrap();
    assert!(recorded(&e).is_empty());
    let tid = c.tree_connect(&new);
    let (st1, back) = c.durable_create(&new, tid, "d.txt", (b"DHnC", fid.to_vec()));
    assert_eq!((st1, back), (status::SUCCESS, fid));
    assert_eq!(recorded(&e), [new.id]);
}

#[test]
fn a_reconnect_without_a_restart_removes_the_previous_sessions_record() {
    let e = env();
    let mut a = Client::new(&e, Neg::smb311(&[1], &[]));
    let old = a.logon_ok(ALICE);
    let tid = a.tree_connect(&old);
    let (st0, _) = a.durable_create(&old, tid, "d.txt", (b"DHnQ", vec![0; 16]));
    assert_eq!(st0, status::SUCCESS);
    assert_eq!(recorded(&e), [old.id]);
    // Same connection: the old session is logged off (its open parked) and its record
    // goes with the SESSION_SETUP response.
    let (resp, _) = a.logon(ALICE, None, old.id);
    assert_eq!(st(&resp), status::SUCCESS);
    assert!(recorded(&e).is_empty());
    assert!(a.conn.opens.is_empty());
}
