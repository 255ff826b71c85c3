//! One SMB2 connection of the bench client: NEGOTIATE (3.1.1 preferred), SESSION_SETUP
//! with NTLMv2, signing, TREE_CONNECT, and a pipeline that keeps up to `depth`
//! operations (each one request or a related compound) in flight within the credits the
//! server grants, the way Windows and Linux clients do.
//!
//! Owns: the socket, message ids, credits, the signing key and the preauth hash.
//! Must never: accept an unsigned or wrongly signed final response once the session is
//! signed, or send more credit charge than it holds.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use duet_auth::{PreauthHash, SessionKeys, Signer, SigningAlgorithm};

use super::codec::{self, cmd, flags, status, Body, Req, ReqHeader, Resp};
use super::ntlm::{Entropy, NtlmClient};
use crate::Error;

/// Credits the client tries to hold (granted and not yet spent, plus in flight).
const CREDIT_TARGET: u32 = 512;

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub user: String,
    pub password: String,
    pub share: String,
    /// Connect from this network namespace (a server in the namespace lab).
    pub netns: Option<String>,
}

/// What the pipeline hands back for one finished operation: its responses in request
/// order (interim STATUS_PENDING answers left out).
pub type Done<'r> = [Resp<'r>];

struct Slot {
    op: usize,
    /// Responses received so far, copied when the op has several members.
    got: Vec<Option<Vec<u8>>>,
    left: usize,
}

pub struct Client {
    stream: TcpStream,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    next_mid: u64,
    /// Credits granted and not yet spent.
    credits: u32,
    /// Charge of the requests in flight.
    in_flight_charge: u32,
    session_id: u64,
    tree_id: u32,
    signer: Option<Signer>,
    pub dialect: u16,
    pub signing: SigningAlgorithm,
    pub max_read: u32,
    pub max_write: u32,
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b
}

fn now_filetime() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() + 11_644_473_600) * 10_000_000 + u64::from(d.subsec_nanos() / 100)
}

impl Client {
    /// Connects, negotiates, logs on (signing required) and connects to the share.
    pub fn connect(t: &Target) -> Result<Client, Error> {
        let stream = match &t.netns {
            Some(ns) => crate::pair::connect_in(ns, t.addr, Duration::from_secs(10))?,
            None => TcpStream::connect_timeout(&t.addr, Duration::from_secs(10))?,
        };
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let mut c = Client {
            stream,
            wbuf: Vec::with_capacity(1 << 20),
            rbuf: Vec::with_capacity(1 << 20),
            next_mid: 0,
            credits: 1,
            in_flight_charge: 0,
            session_id: 0,
            tree_id: 0,
            signer: None,
            dialect: 0,
            signing: SigningAlgorithm::AesCmac,
            max_read: 65536,
            max_write: 65536,
        };
        c.logon(t)?;
        let unc = format!("\\\\{}\\{}", t.addr.ip(), t.share);
        let r = c.call(cmd::TREE_CONNECT, codec::tree_connect_body(&unc))?;
        c.tree_id = Resp::new(&r)?.tree_id();
        Ok(c)
    }

    fn logon(&mut self, t: &Target) -> Result<(), Error> {
        // NEGOTIATE: hashed into the preauth integrity hash (3.1.1).
        let mut preauth = PreauthHash::new();
        let body = codec::negotiate_body(random_bytes(), random_bytes());
        let req = self.build_single(cmd::NEGOTIATE, body);
        preauth.update(&req);
        self.send_raw(&req)?;
        let frame = self.read_frame()?;
        let resp = Resp::new(&frame)?;
        if resp.status() != status::SUCCESS {
            return Err(Error::proto(format!(
                "NEGOTIATE failed: 0x{:08x}",
                resp.status()
            )));
        }
        self.credits = (self.credits + u32::from(resp.credits())).saturating_sub(1);
        let neg = codec::parse_negotiate(&resp)?;
        preauth.update(&frame);
        self.dialect = neg.dialect;
        self.max_read = neg.max_read.min(8 << 20);
        self.max_write = neg.max_write.min(8 << 20);
        self.signing = match (neg.dialect, neg.signing_algorithm) {
            (d, _) if d < codec::DIALECT_300 => SigningAlgorithm::HmacSha256,
            (_, Some(id)) => SigningAlgorithm::from_id(id)
                .ok_or_else(|| Error::proto(format!("unknown signing algorithm {id}")))?,
            _ => SigningAlgorithm::AesCmac,
        };

        // SESSION_SETUP rounds.
        let mut ntlm = NtlmClient::new(&t.user, "", &t.password);
        let mut token = ntlm.initial_token();
        let mut session_hash = preauth.clone();
        for round in 0..3 {
            let req = self.build_single(cmd::SESSION_SETUP, codec::session_setup_body(&token));
            session_hash.update(&req);
            self.send_raw(&req)?;
            let frame = self.read_frame()?;
            let resp = Resp::new(&frame)?;
            self.credits = (self.credits + u32::from(resp.credits())).saturating_sub(1);
            match resp.status() {
                status::MORE_PROCESSING_REQUIRED if round == 0 => {
                    session_hash.update(&frame);
                    self.session_id = resp.session_id();
                    let e = Entropy {
                        client_challenge: random_bytes(),
                        exported_session_key: random_bytes(),
                        now_filetime: now_filetime(),
                    };
                    token = ntlm.respond(resp.session_setup_token()?, &e)?;
                }
                status::SUCCESS if round == 1 => {
                    let key = ntlm
                        .session_key()
                        .ok_or_else(|| Error::auth("no session key"))?;
                    let keys = SessionKeys::derive(self.dialect, &key, session_hash.value());
                    let signer = Signer::new(self.signing, keys.signing);
                    // The final SESSION_SETUP response is signed (3.2.5.3.1).
                    if resp.flags() & flags::SIGNED == 0 || !signer.verify(&frame) {
                        return Err(Error::auth("SESSION_SETUP response not signed correctly"));
                    }
                    ntlm.finish(resp.session_setup_token()?)?;
                    self.signer = Some(signer);
                    return Ok(());
                }
                s => return Err(Error::auth(format!("SESSION_SETUP failed: 0x{s:08x}"))),
            }
        }
        Err(Error::auth("SESSION_SETUP did not finish"))
    }

    /// Builds one unsigned request with the next message id (setup messages only).
    fn build_single(&mut self, command: u16, body: Vec<u8>) -> Vec<u8> {
        let mut m = Vec::with_capacity(64 + body.len());
        codec::put_header(
            &mut m,
            &ReqHeader {
                command,
                credit_charge: 1,
                credit_request: 64,
                flags: 0,
                message_id: self.next_mid,
                tree_id: 0,
                session_id: self.session_id,
            },
        );
        self.next_mid += 1;
        m.extend_from_slice(&body);
        m
    }

    fn send_raw(&mut self, msg: &[u8]) -> Result<(), Error> {
        let hdr = codec::transport_header(msg.len())?;
        self.stream.write_all(&hdr)?;
        self.stream.write_all(msg)?;
        Ok(())
    }

    /// Reads one transport frame into a fresh Vec (setup path).
    fn read_frame(&mut self) -> Result<Vec<u8>, Error> {
        self.read_into_rbuf()?;
        Ok(std::mem::take(&mut self.rbuf))
    }

    fn read_into_rbuf(&mut self) -> Result<(), Error> {
        let mut hdr = [0u8; 4];
        self.stream.read_exact(&mut hdr)?;
        if hdr[0] != 0 {
            return Err(Error::proto("bad transport header"));
        }
        let len = (usize::from(hdr[1]) << 16) | (usize::from(hdr[2]) << 8) | usize::from(hdr[3]);
        self.rbuf.clear();
        self.rbuf.resize(len, 0);
        self.stream.read_exact(&mut self.rbuf)?;
        Ok(())
    }

    /// One request, waiting for a success; returns the whole response message.
    pub fn call(&mut self, command: u16, body: Vec<u8>) -> Result<Vec<u8>, Error> {
        let (st, msg) = self.call_status(command, body)?;
        if st != status::SUCCESS {
            return Err(Error::status(command, st));
        }
        Ok(msg)
    }

    /// One request, waiting for its answer: (status, whole response message).
    pub fn call_status(&mut self, command: u16, body: Vec<u8>) -> Result<(u32, Vec<u8>), Error> {
        let mut out = None;
        let mut reqs = Some(vec![Req {
            command,
            payload: 0,
            related: false,
            body: Body::Raw(body),
        }]);
        self.pipeline(
            1,
            1,
            |_, v| v.extend(reqs.take().unwrap_or_default()),
            |_, r| {
                out = Some((r[0].status(), r[0].msg.to_vec()));
                Ok(())
            },
        )?;
        out.ok_or_else(|| Error::proto("no response"))
    }

    /// Runs `n` operations with at most `depth` in flight. `make(i, reqs)` appends the
    /// requests of operation `i` (one, or a related compound); `done(i, resps)` gets its
    /// responses once all have arrived. Errors from `done` stop the pipeline (after
    /// draining what is in flight, so the connection stays usable).
    pub fn pipeline<'d>(
        &mut self,
        depth: usize,
        n: usize,
        mut make: impl FnMut(usize, &mut Vec<Req<'d>>),
        mut done: impl FnMut(usize, &Done<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut slots: Vec<Option<Slot>> = (0..depth.max(1)).map(|_| None).collect();
        let mut by_mid: HashMap<u64, (usize, usize, u16)> = HashMap::with_capacity(depth * 4);
        let mut next_op = 0usize;
        let mut in_flight = 0usize;
        let mut reqs: Vec<Req<'d>> = Vec::with_capacity(4);
        let mut first_err: Option<Error> = None;
        loop {
            // Send while there is room and credit.
            while first_err.is_none() && next_op < n && in_flight < depth {
                if reqs.is_empty() {
                    make(next_op, &mut reqs);
                }
                let charge: u32 = reqs.iter().map(|r| u32::from(r.charge())).sum();
                if charge > self.credits {
                    if in_flight == 0 {
                        return Err(Error::proto(format!(
                            "server granted {} credits, an operation needs {charge}",
                            self.credits
                        )));
                    }
                    break;
                }
                let slot = slots
                    .iter()
                    .position(Option::is_none)
                    .ok_or_else(|| Error::proto("no free pipeline slot"))?;
                let mids = self.send_op(&reqs)?;
                for (k, (mid, charge)) in mids.iter().enumerate() {
                    by_mid.insert(*mid, (slot, k, *charge));
                }
                slots[slot] = Some(Slot {
                    op: next_op,
                    got: if reqs.len() > 1 {
                        vec![None; reqs.len()]
                    } else {
                        Vec::new()
                    },
                    left: reqs.len(),
                });
                reqs.clear();
                next_op += 1;
                in_flight += 1;
            }
            if in_flight == 0 {
                break;
            }
            // Receive one frame.
            self.read_into_rbuf()?;
            let frame = std::mem::take(&mut self.rbuf);
            let result = self.dispatch(&frame, &mut slots, &mut by_mid, &mut in_flight, &mut done);
            self.rbuf = frame;
            if let Err(e) = result {
                if matches!(e, Error::Protocol(_) | Error::Io(_)) {
                    return Err(e);
                }
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn dispatch(
        &mut self,
        frame: &[u8],
        slots: &mut [Option<Slot>],
        by_mid: &mut HashMap<u64, (usize, usize, u16)>,
        in_flight: &mut usize,
        done: &mut impl FnMut(usize, &Done<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut result = Ok(());
        for r in codec::split_compound(frame)? {
            self.credits += u32::from(r.credits());
            if r.is_interim() {
                continue;
            }
            let Some((slot_i, k, charge)) = by_mid.remove(&r.message_id()) else {
                return Err(Error::proto(format!(
                    "response to unknown message id {}",
                    r.message_id()
                )));
            };
            self.in_flight_charge = self.in_flight_charge.saturating_sub(u32::from(charge));
            if let Some(signer) = &self.signer {
                if r.flags() & flags::SIGNED == 0 || !signer.verify(r.msg) {
                    // Samba sends some errors unsigned only when the session is gone.
                    return Err(Error::proto(format!(
                        "response (command {}, status 0x{:08x}) not signed correctly",
                        r.command(),
                        r.status()
                    )));
                }
            }
            let slot = slots[slot_i]
                .as_mut()
                .ok_or_else(|| Error::proto("response for an empty slot"))?;
            slot.left -= 1;
            let finished = if slot.got.is_empty() {
                let op = slot.op;
                slots[slot_i] = None;
                Some(done(op, &[r]))
            } else {
                slot.got[k] = Some(r.msg.to_vec());
                if slot.left == 0 {
                    let slot = slots[slot_i].take().expect("slot checked above");
                    let owned: Vec<Vec<u8>> = slot
                        .got
                        .into_iter()
                        .map(Option::unwrap_or_default)
                        .collect();
                    let views: Result<Vec<Resp<'_>>, Error> =
                        owned.iter().map(|m| Resp::new(m)).collect();
                    Some(views.and_then(|v| done(slot.op, &v)))
                } else {
                    None
                }
            };
            if let Some(res) = finished {
                *in_flight -= 1;
                if let Err(e) = res {
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
            }
        }
        result
    }

    /// Encodes, signs and sends one operation; returns the message ids used.
    fn send_op(&mut self, reqs: &[Req<'_>]) -> Result<Vec<(u64, u16)>, Error> {
        let mut buf = std::mem::take(&mut self.wbuf);
        buf.clear();
        let mut mids = Vec::with_capacity(reqs.len());
        let mut starts: Vec<usize> = Vec::with_capacity(reqs.len());
        let held = self.credits + self.in_flight_charge;
        for (k, r) in reqs.iter().enumerate() {
            if k > 0 {
                // Members start 8-byte aligned; NextCommand of the previous one points here.
                while !(buf.len() - starts[k - 1]).is_multiple_of(8) {
                    buf.push(0);
                }
                let prev = starts[k - 1];
                let next = (buf.len() - prev) as u32;
                buf[prev + 20..prev + 24].copy_from_slice(&next.to_le_bytes());
            }
            let charge = r.charge();
            let mut credit_request = charge;
            if k == 0 && held < CREDIT_TARGET {
                credit_request += (CREDIT_TARGET - held).min(64) as u16;
            }
            let mut fl = flags::SIGNED;
            if r.related {
                fl |= flags::RELATED_OPERATIONS;
            }
            starts.push(buf.len());
            codec::put_header(
                &mut buf,
                &ReqHeader {
                    command: r.command,
                    credit_charge: charge,
                    credit_request,
                    flags: fl,
                    message_id: self.next_mid,
                    tree_id: self.tree_id,
                    session_id: self.session_id,
                },
            );
            codec::put_body(&mut buf, &r.body);
            mids.push((self.next_mid, charge));
            self.next_mid += u64::from(charge);
            self.credits -= u32::from(charge);
            self.in_flight_charge += u32::from(charge);
        }
        if let Some(signer) = &self.signer {
            for (k, &s) in starts.iter().enumerate() {
                let end = starts.get(k + 1).copied().unwrap_or(buf.len());
                signer.sign(&mut buf[s..end]);
            }
        } else {
            for &s in &starts {
                buf[s + 16] &= !(flags::SIGNED as u8);
            }
        }
        let hdr = codec::transport_header(buf.len())?;
        let res = self
            .stream
            .write_all(&hdr)
            .and_then(|_| self.stream.write_all(&buf));
        self.wbuf = buf;
        res?;
        Ok(mids)
    }

    /// Opens `name` and returns its FileId (a non-pipelined CREATE).
    pub fn create(&mut self, c: &codec::Create<'_>) -> Result<[u8; 16], Error> {
        let msg = self.call(cmd::CREATE, codec::create_body(c))?;
        Resp::new(&msg)?.create_file_id()
    }

    pub fn close(&mut self, file_id: [u8; 16]) -> Result<(), Error> {
        self.call(cmd::CLOSE, codec::close_body(file_id))
            .map(|_| ())
    }

    /// "SMB 3.1.1, AES-GMAC signing": what was negotiated.
    pub fn describe(&self) -> String {
        let d = match self.dialect {
            codec::DIALECT_202 => "2.0.2",
            codec::DIALECT_210 => "2.1",
            codec::DIALECT_300 => "3.0",
            codec::DIALECT_302 => "3.0.2",
            codec::DIALECT_311 => "3.1.1",
            _ => "?",
        };
        let s = match self.signing {
            SigningAlgorithm::HmacSha256 => "HMAC-SHA256",
            SigningAlgorithm::AesCmac => "AES-CMAC",
            SigningAlgorithm::AesGmac => "AES-GMAC",
        };
        format!(
            "SMB {d}, {s} signing, max read/write {} / {} KiB",
            self.max_read / 1024,
            self.max_write / 1024
        )
    }

    /// TREE_DISCONNECT and LOGOFF, then the socket closes on drop.
    pub fn logoff(mut self) -> Result<(), Error> {
        self.call(cmd::TREE_DISCONNECT, codec::empty_body())?;
        self.call(cmd::LOGOFF, codec::empty_body())?;
        Ok(())
    }
}
