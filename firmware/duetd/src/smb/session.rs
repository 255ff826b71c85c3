//! SESSION_SETUP and LOGOFF (MS-SMB2 2.2.5-2.2.8, 3.3.5.5, 3.3.5.6): SPNEGO/NTLMv2
//! authentication against the state store's users, key derivation, signing, and the
//! failed-logon throttle.
//!
//! Owns: the session life cycle. Never logs a password or key; never accepts anonymous or
//! guest logons.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use duet_auth::{Acceptor, AuthError, ServerIdentity, SessionKeys, Signer, Step};

use super::{Conn, Fail, HResult, PreauthTarget, Reply, Req, Session, DIALECT_311};
use crate::wire::{status, PutLe, HEADER_LEN};

pub enum SessionState {
    InProgress(Box<Acceptor>),
    Valid,
}

const SESSION_FLAG_BINDING: u8 = 0x01;

pub fn handle_setup(conn: &mut Conn, req: &Req) -> HResult {
    if !conn.neg.done {
        return Err(Fail::Disconnect);
    }
    let b = req.body();
    b.expect_structure_size(25)?;
    let flags = b.u8(2)?;
    let sec_off = b.u16(12)? as usize;
    let sec_len = b.u16(14)? as usize;
    let _previous_session_id = b.u64(16)?;
    let token = b.buffer(sec_off, sec_len)?;
    if flags & SESSION_FLAG_BINDING != 0 {
        // No multichannel: binding a session to a second connection is refused.
        return Err(Fail::Status(status::REQUEST_NOT_ACCEPTED));
    }
    let now = crate::util::now_secs();
    if conn
        .server
        .throttle
        .lock()
        .map(|mut t| t.address_locked(conn.peer.ip(), now, &conn.server.cfg))
        .unwrap_or(false)
    {
        tracing::warn!(peer = %conn.peer, "logon refused: too many failed logons from this address");
        return Err(Fail::Status(status::ACCOUNT_LOCKED_OUT));
    }

    let session_id = if req.session_id == 0 {
        if conn.sessions.len() >= conn.server.cfg.max_sessions_per_conn {
            tracing::warn!(peer = %conn.peer, limit = conn.server.cfg.max_sessions_per_conn, "session limit reached");
            return Err(Fail::Status(status::INSUFFICIENT_RESOURCES));
        }
        let id = conn.server.new_id();
        let sess = new_session(conn, id);
        conn.sessions.insert(id, sess);
        id
    } else {
        let id = req.session_id;
        let fresh = {
            let s = conn.sessions.get(&id).ok_or(Fail::Status(status::USER_SESSION_DELETED))?;
            s.is_valid()
        };
        if fresh {
            // Re-authentication of a valid session: the request must be signed like any other.
            conn.check_signature(req.msg, id)?;
            let acc = new_acceptor(conn);
            if let Some(s) = conn.sessions.get_mut(&id) {
                s.state = SessionState::InProgress(Box::new(acc));
                s.preauth = conn.neg.preauth.clone();
            }
        }
        id
    };
    conn.last_session_setup_id = Some(session_id);

    let dialect = conn.neg.dialect;
    let store = conn.server.store.clone();
    let peer = conn.peer;
    let mut user_locked = false;
    let throttle = &conn.server.throttle;
    let cfg = conn.server.cfg.clone();
    let sess = conn.sessions.get_mut(&session_id).ok_or(Fail::Status(status::USER_SESSION_DELETED))?;
    if dialect == DIALECT_311 {
        if let Some(h) = sess.preauth.as_mut() {
            h.update(req.msg);
        }
    }
    let SessionState::InProgress(acc) = &mut sess.state else {
        return Err(Fail::Status(status::REQUEST_NOT_ACCEPTED));
    };
    let mut lookup = |user: &str, _domain: &str| -> Option<[u8; 16]> {
        if throttle
            .lock()
            .map(|mut t| t.user_locked(user, now, &cfg))
            .unwrap_or(false)
        {
            user_locked = true;
            return None;
        }
        match store.user_nt_hash(user) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "state store lookup failed");
                None
            }
        }
    };
    let step = acc.step(token, &mut lookup);
    match step {
        Ok(Step::Continue(out)) => {
            conn.preauth_pending = Some(PreauthTarget::Session(session_id));
            Ok(Reply::Body {
                status: status::MORE_PROCESSING_REQUIRED,
                body: setup_body(&out),
            })
        }
        Ok(Step::Done(auth)) => {
            let preauth = sess.preauth.as_ref().map(|h| *h.value()).unwrap_or([0u8; 64]);
            let keys = SessionKeys::derive(dialect, &auth.session_key, &preauth);
            let alg = conn.neg.signing_algorithm.unwrap_or(duet_auth::SigningAlgorithm::HmacSha256);
            sess.signer = Some(Arc::new(Signer::new(alg, keys.signing)));
            sess.signing_required = cfg.signing_required
                || conn.neg.client_security_mode & super::negotiate::SIGNING_REQUIRED != 0;
            sess.user = auth.user.clone();
            sess.domain = auth.domain.clone();
            sess.state = SessionState::Valid;
            sess.preauth = None;
            if let Ok(mut t) = conn.server.throttle.lock() {
                t.success(&auth.user);
            }
            tracing::info!(peer = %peer, user = %auth.user, session = session_id, "logon");
            Ok(Reply::ok(setup_body(&auth.token)))
        }
        Err(e) => {
            conn.sessions.remove(&session_id);
            let user = match &e {
                AuthError::LogonFailure { user } => Some(user.clone()),
                _ => None,
            };
            if let Ok(mut t) = conn.server.throttle.lock() {
                t.failure(peer.ip(), user.as_deref(), now);
            }
            if user_locked {
                tracing::warn!(peer = %peer, user = ?user, "logon refused: account throttled after failed logons");
                return Err(Fail::Status(status::ACCOUNT_LOCKED_OUT));
            }
            tracing::warn!(peer = %peer, user = ?user, error = %e, "logon failed");
            Err(Fail::Status(status::LOGON_FAILURE))
        }
    }
}

fn new_acceptor(conn: &Conn) -> Acceptor {
    let mut challenge = [0u8; 8];
    crate::util::random_bytes(&mut challenge);
    let name = conn.server.cfg.netbios_name.clone();
    let identity = ServerIdentity {
        netbios_name: name.clone(),
        netbios_domain: name.clone(),
        dns_name: name.to_lowercase(),
        dns_domain: String::new(),
    };
    Acceptor::new(identity, challenge, crate::util::now_filetime())
}

fn new_session(conn: &Conn, id: u64) -> Session {
    Session {
        id,
        state: SessionState::InProgress(Box::new(new_acceptor(conn))),
        user: String::new(),
        domain: String::new(),
        signer: None,
        signing_required: false,
        preauth: conn.neg.preauth.clone(),
        trees: HashMap::new(),
        next_tree_id: 1,
    }
}

fn setup_body(token: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + token.len());
    b.put_u16(9);
    b.put_u16(0);
    b.put_u16(if token.is_empty() { 0 } else { (HEADER_LEN + 8) as u16 });
    b.put_u16(token.len() as u16);
    b.extend_from_slice(token);
    if token.is_empty() {
        b.push(0);
    }
    b
}

/// LOGOFF (MS-SMB2 3.3.5.6): the session's trees and opens go after the response is sent
/// (it is signed with the session's key).
pub fn handle_logoff(conn: &mut Conn, req: &Req) -> HResult {
    req.body().expect_structure_size(4)?;
    conn.deferred_logoff = Some(req.session_id);
    Ok(Reply::ok(vec![4, 0, 0, 0]))
}

impl Session {
    pub fn alloc_tree_id(&mut self) -> u32 {
        let id = self.next_tree_id;
        self.next_tree_id = self.next_tree_id.wrapping_add(1).max(1);
        id
    }
}

/// Counts failed logons per user and per client address in a sliding window.
#[derive(Default)]
pub struct Throttle {
    users: HashMap<String, VecDeque<u64>>,
    addrs: HashMap<IpAddr, VecDeque<u64>>,
}

impl Throttle {
    fn prune(q: &mut VecDeque<u64>, now: u64, window: u64) {
        while q.front().is_some_and(|t| now.saturating_sub(*t) >= window) {
            q.pop_front();
        }
    }
    pub fn user_locked(&mut self, user: &str, now: u64, cfg: &super::ServerConfig) -> bool {
        let key = user.to_lowercase();
        match self.users.get_mut(&key) {
            Some(q) => {
                Self::prune(q, now, cfg.failed_logon_window_secs);
                q.len() as u32 >= cfg.max_failed_logons
            }
            None => false,
        }
    }
    pub fn address_locked(&mut self, ip: IpAddr, now: u64, cfg: &super::ServerConfig) -> bool {
        match self.addrs.get_mut(&ip) {
            Some(q) => {
                Self::prune(q, now, cfg.failed_logon_window_secs);
                q.len() as u32 >= cfg.max_failed_logons
            }
            None => false,
        }
    }
    pub fn failure(&mut self, ip: IpAddr, user: Option<&str>, now: u64) {
        const CAP: usize = 1024;
        let q = self.addrs.entry(ip).or_default();
        q.push_back(now);
        if q.len() > CAP {
            q.pop_front();
        }
        if let Some(u) = user {
            if self.users.len() < 100_000 || self.users.contains_key(&u.to_lowercase()) {
                let q = self.users.entry(u.to_lowercase()).or_default();
                q.push_back(now);
                if q.len() > CAP {
                    q.pop_front();
                }
            }
        }
    }
    pub fn success(&mut self, user: &str) {
        self.users.remove(&user.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_window() {
        let cfg = super::super::ServerConfig {
            max_failed_logons: 3,
            failed_logon_window_secs: 60,
            ..Default::default()
        };
        let mut t = Throttle::default();
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        for i in 0..3 {
            assert!(!t.user_locked("Bob", 100 + i, &cfg));
            t.failure(ip, Some("bob"), 100 + i);
        }
        assert!(t.user_locked("BOB", 103, &cfg));
        assert!(t.address_locked(ip, 103, &cfg));
        assert!(!t.address_locked("192.0.2.10".parse().unwrap(), 103, &cfg));
        // The window slides.
        assert!(!t.user_locked("bob", 200, &cfg));
        t.failure(ip, Some("carol"), 300);
        t.success("carol");
        assert!(!t.user_locked("carol", 300, &cfg));
    }
}
