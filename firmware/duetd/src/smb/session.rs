//! SESSION_SETUP and LOGOFF (MS-SMB2 2.2.5-2.2.8, 3.3.5.5, 3.3.5.6): SPNEGO/NTLMv2
//! authentication against the state store's users, key derivation, signing, SMB3
//! encryption keys, re-authentication, session reconnect (PreviousSessionId), multichannel
//! (session binding, the forwarding of a bound channel's requests to the session's home
//! connection, the hand-over of a session whose home connection closed), the server-wide
//! session table and the failed-logon throttle.
//!
//! Multichannel design: a session's state (trees, opens, waiting requests) stays with the
//! connection that set it up, its home, which alone touches it. A connection bound to the
//! session as a further channel checks and charges the credits of each frame of the
//! session and posts it to the home's mailbox ([`Forwarded`]); the home handles it with
//! that channel's signing key and answers on that channel's outbox. When the home
//! connection closes while the session has another channel, its state moves, under the
//! same connection id, into that channel, which runs it from then on (`Conn::teardown`).
//!
//! Owns: the session life cycle. Never logs a password or key; never accepts anonymous or
//! guest logons; never lets a re-authentication change a session's user or keys; never
//! binds a session to a connection of another dialect or cipher, or for another user.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use duet_auth::{
    Acceptor, AuthError, Authenticated, CipherId, ServerIdentity, SessionKeys, Signer,
    SigningAlgorithm, Step, TransformCipher, TransformHeader, TRANSFORM_HEADER_LEN,
};

use super::{Conn, ConnEvent, Fail, Flow, HResult, Outbox, Parcel, PreauthTarget, Reply, Req};
use super::{Session, DIALECT_300, DIALECT_311};
use crate::wire::{status, Command, Header, PutLe, HEADER_LEN};

/// NT_STATUS_REQUEST_OUT_OF_SEQUENCE: a binding request whose signing algorithm cannot
/// be the session's (AES-GMAC sessions).
const STATUS_REQUEST_OUT_OF_SEQUENCE: u32 = 0xC000_042A;

/// SMB2_SESSION_FLAG_BINDING (request Flags, 2.2.5).
const SESSION_FLAG_BINDING: u8 = 0x01;

/// Channels a session may have, its first connection included (Windows' and smbd's
/// limit; one more binding is refused with STATUS_INSUFFICIENT_RESOURCES).
pub const MAX_CHANNELS_PER_SESSION: usize = 32;

pub enum SessionState {
    /// The first authentication is under way; the session cannot be used yet.
    InProgress(Box<Acceptor>),
    Valid,
    /// A valid session is re-authenticating (3.3.5.5.3): it stays usable with its user and
    /// keys until the exchange ends.
    Reauthenticating(Box<Acceptor>),
}

pub fn handle_setup(conn: &mut Conn, req: &Req) -> HResult {
    if !conn.neg.done {
        return Err(Fail::Disconnect);
    }
    let b = req.body();
    b.expect_structure_size(25)?;
    let flags = b.u8(2)?;
    let sec_off = b.u16(12)? as usize;
    let sec_len = b.u16(14)? as usize;
    let previous_session_id = b.u64(16)?;
    let token = b.buffer(sec_off, sec_len)?;
    // The response carries the request's SessionId unless a new session is made below.
    conn.last_session_setup_id = None;
    if flags & SESSION_FLAG_BINDING != 0 {
        return bind(conn, req, token);
    }
    let now = crate::util::now_secs();
    refuse_throttled_address(conn, now, "logon")?;

    // Which exchange this request continues: a new session, the first authentication of
    // one in progress, or a re-authentication of a valid one.
    let session_id = if req.session_id == 0 {
        if conn.sessions.len() >= conn.server.cfg.max_sessions_per_conn {
            tracing::warn!(peer = %conn.peer, limit = conn.server.cfg.max_sessions_per_conn, "session limit reached");
            return Err(Fail::Status(status::INSUFFICIENT_RESOURCES));
        }
        let id = conn.server.new_id();
        let sess = new_session(conn, id);
        conn.sessions.insert(id, sess);
        conn.last_session_setup_id = Some(id);
        id
    } else {
        let id = req.session_id;
        let Some(sess) = conn.sessions.get(&id) else {
            // A session of another connection (or none): without binding it cannot be
            // used here. The answer is signed with that session's key, as the client
            // holding it expects (3.3.5.5.1 looks the id up in GlobalSessionTable).
            conn.response_signer = registered(conn, id).map(|g| g.signer);
            return Err(Fail::Status(status::USER_SESSION_DELETED));
        };
        if matches!(sess.state, SessionState::Valid) {
            // Re-authentication: the request must be signed like any other of the session
            // (a refusal is signed with the key it was checked with, as smbd does).
            if let Err(e) = conn.check_signature(req.msg, id) {
                conn.response_signer = conn.sessions.get(&id).and_then(|s| s.signer.clone());
                return Err(e);
            }
            let acc = new_acceptor(conn);
            if let Some(s) = conn.sessions.get_mut(&id) {
                s.state = SessionState::Reauthenticating(Box::new(acc));
            }
        }
        id
    };

    let Some(sess) = conn.sessions.get_mut(&session_id) else {
        return Err(Fail::Status(status::USER_SESSION_DELETED));
    };
    let (mut acc, reauth) = match std::mem::replace(&mut sess.state, SessionState::Valid) {
        SessionState::InProgress(a) => (a, false),
        SessionState::Reauthenticating(a) => (a, true),
        SessionState::Valid => return Err(Fail::Status(status::REQUEST_NOT_ACCEPTED)),
    };
    if !reauth && conn.neg.dialect == DIALECT_311 {
        if let Some(h) = sess.preauth.as_mut() {
            h.update(req.msg);
        }
    }

    let mut user_locked = false;
    let step = auth_step(conn, &mut acc, token, now, &mut user_locked);
    let peer = conn.peer;
    match step {
        Ok(Step::Continue(out)) => {
            if let Some(s) = conn.sessions.get_mut(&session_id) {
                s.state = if reauth {
                    SessionState::Reauthenticating(acc)
                } else {
                    SessionState::InProgress(acc)
                };
            }
            if !reauth {
                conn.preauth_pending = Some(PreauthTarget::Session(session_id));
            }
            Ok(Reply::Body {
                status: status::MORE_PROCESSING_REQUIRED,
                body: setup_body(&out),
            })
        }
        Ok(Step::Done(auth)) if reauth => finish_reauth(conn, session_id, auth),
        Ok(Step::Done(auth)) => {
            finish_logon(conn, session_id, &auth);
            if previous_session_id != 0 && previous_session_id != session_id {
                close_previous(conn, previous_session_id, &auth.user);
            }
            Ok(Reply::ok(setup_body(&auth.token)))
        }
        Err(AuthError::Anonymous) if reauth => {
            // Anonymous is never a session's user: refused, and the session goes on as
            // the user it was.
            tracing::warn!(peer = %peer, session = session_id, "re-authentication as anonymous refused");
            Err(Fail::Status(status::ACCESS_DENIED))
        }
        Err(e) => {
            // 3.3.5.5.3: a failed authentication ends the session, its opens and trees.
            conn.logoff(session_id);
            let user = match &e {
                AuthError::LogonFailure { user } => Some(user.clone()),
                _ => None,
            };
            let window = conn.server.cfg.failed_logon_window_secs;
            if let Ok(mut t) = conn.server.throttle.lock() {
                t.failure(peer.ip(), user.as_deref(), now, window);
            }
            if user_locked {
                tracing::warn!(peer = %peer, user = ?user, "logon refused: account throttled after failed logons");
                return Err(Fail::Status(status::ACCOUNT_LOCKED_OUT));
            }
            tracing::warn!(peer = %peer, user = ?user, reauth, error = %e, "logon failed");
            Err(Fail::Status(match e {
                AuthError::Malformed(_) => status::INVALID_PARAMETER,
                _ => status::LOGON_FAILURE,
            }))
        }
    }
}

/// The first authentication of `session_id` succeeded: derive its keys (3.3.5.5.3), make
/// it valid and enter it in the server's session table.
fn finish_logon(conn: &mut Conn, session_id: u64, auth: &Authenticated) {
    let dialect = conn.neg.dialect;
    let alg = conn
        .neg
        .signing_algorithm
        .unwrap_or_else(|| SigningAlgorithm::default_for_dialect(dialect));
    let cipher = conn.neg.cipher.filter(|_| dialect >= DIALECT_300);
    let signing_required = conn.server.cfg.signing_required
        || conn.neg.client_security_mode & super::negotiate::SIGNING_REQUIRED != 0;
    let Some(sess) = conn.sessions.get_mut(&session_id) else {
        return;
    };
    let preauth = sess.preauth.take().map(|h| *h.value()).unwrap_or([0u8; 64]);
    let keys = SessionKeys::derive(dialect, &auth.session_key, &preauth);
    let signer = Arc::new(Signer::new(alg, keys.signing));
    sess.encryption = cipher.and_then(|c| {
        let mut salt = [0u8; 8];
        crate::util::random_bytes(&mut salt);
        let made = if c.key_len() == 32 {
            let (s2c, c2s) = SessionKeys::cipher_keys_256(&auth.session_key, &preauth);
            Encryption::new(c, &s2c, &c2s, salt)
        } else {
            Encryption::new(c, &keys.encryption_s2c, &keys.decryption_c2s, salt)
        };
        match made {
            Ok(e) => Some(Arc::new(e)),
            Err(e) => {
                tracing::error!(error = %e, "cannot set up the session's cipher");
                None
            }
        }
    });
    sess.signer = Some(signer.clone());
    sess.signing_required = signing_required;
    sess.user = auth.user.clone();
    sess.domain = auth.domain.clone();
    sess.state = SessionState::Valid;
    if let Ok(mut t) = conn.server.throttle.lock() {
        t.success(&auth.user);
    }
    let encryption = sess.encryption.clone();
    if let Ok(mut reg) = conn.server.sessions.lock() {
        reg.insert(
            session_id,
            GlobalSession {
                conn_id: conn.id,
                user: auth.user.to_lowercase(),
                signer,
                dialect,
                signing_algorithm: alg,
                cipher,
                client_guid: conn.neg.client_guid,
                channels: vec![(conn.id, conn.outbox.clone())],
                encryption,
            },
        );
    }
    tracing::info!(peer = %conn.peer, user = %auth.user, session = session_id, "logon");
}

/// A re-authentication succeeded (3.3.5.5.3): the session keeps its keys and its user; a
/// logon as somebody else is refused and leaves the session as it was.
fn finish_reauth(conn: &mut Conn, session_id: u64, auth: Authenticated) -> HResult {
    let Some(sess) = conn.sessions.get_mut(&session_id) else {
        return Err(Fail::Status(status::USER_SESSION_DELETED));
    };
    sess.state = SessionState::Valid;
    if !sess.user.eq_ignore_ascii_case(&auth.user) {
        tracing::warn!(peer = %conn.peer, session = session_id, user = %sess.user, new_user = %auth.user,
            "re-authentication as another user refused");
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    if let Ok(mut t) = conn.server.throttle.lock() {
        t.success(&auth.user);
    }
    tracing::info!(peer = %conn.peer, user = %auth.user, session = session_id, "re-authenticated");
    Ok(Reply::ok(setup_body(&auth.token)))
}

/// Session reconnect (3.3.5.5.3, PreviousSessionId): the old session of the same user is
/// logged off, wherever it lives, and its record in the state store removed (also when
/// it is only recorded: it was a session of the daemon before a restart or takeover);
/// one of another user is left alone.
fn close_previous(conn: &mut Conn, previous: u64, user: &str) {
    let owner = match conn.server.sessions.lock() {
        Ok(mut reg) => reg.take_if_user(previous, &user.to_lowercase()),
        Err(_) => None,
    };
    match owner {
        Some(owner) if owner == conn.id => {
            tracing::info!(peer = %conn.peer, session = previous, "previous session closed on reconnect");
            conn.logoff(previous);
        }
        Some(owner) => {
            tracing::info!(peer = %conn.peer, session = previous, conn = owner, "previous session on another connection closed on reconnect");
            conn.server.post(
                owner,
                ConnEvent::Logoff {
                    session_id: previous,
                },
            );
        }
        None => {}
    }
    // Its record in the state store (a session that owned durable opens, perhaps of an
    // earlier run of the daemon) goes too.
    super::durable::previous_session(conn, previous, user);
}

/// A SESSION_SETUP with SMB2_SESSION_FLAG_BINDING (MS-SMB2 3.3.5.5.2): binds an existing
/// session of this client to this connection as a further channel. Refusals, in the order
/// a multichannel server checks them: no session id (INVALID_PARAMETER); no such valid
/// session (USER_SESSION_DELETED); already a channel here (REQUEST_NOT_ACCEPTED, or
/// ACCESS_DENIED if the request is not signed with that channel's key); a signing
/// algorithm the session cannot use on this connection (AES-GMAC rules); a 2.x connection
/// (REQUEST_NOT_ACCEPTED); a request not signed with the session's key, another dialect or
/// cipher than the session's (INVALID_PARAMETER). Then the client authenticates again, as
/// the session's user (another user: ACCESS_DENIED; a failure: LOGON_FAILURE, and the
/// session goes on). The channel signs with its own key, derived from this
/// authentication's session key (3.1.1: with this connection's preauth hash of the
/// exchange), with this connection's signing algorithm. Answers are signed with the
/// session's key until the channel's key exists, the final one with the channel's.
fn bind(conn: &mut Conn, req: &Req, token: &[u8]) -> HResult {
    let sid = req.session_id;
    if sid == 0 {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    let Some(global) = registered(conn, sid) else {
        return Err(Fail::Status(status::USER_SESSION_DELETED));
    };
    let signed_msg = Header::new_unchecked(req.msg).is_signed();
    // Already a channel of the session on this connection.
    let existing = if global.conn_id == conn.id {
        conn.sessions.get(&sid).and_then(|s| s.signer.clone())
    } else {
        conn.bound.get(&sid).and_then(|b| b.signer.clone())
    };
    if let Some(chan) = existing {
        // Checked with the channel's key, and answered signed with it (as smbd does).
        let ok = signed_msg && chan.verify(req.msg);
        conn.response_signer = Some(chan);
        return Err(Fail::Status(if ok {
            status::REQUEST_NOT_ACCEPTED
        } else {
            status::ACCESS_DENIED
        }));
    }
    let signed = signed_msg && global.signer.verify(req.msg);
    if signed {
        conn.response_signer = Some(global.signer.clone());
    }
    let conn_alg = conn
        .neg
        .signing_algorithm
        .unwrap_or_else(|| SigningAlgorithm::default_for_dialect(conn.neg.dialect));
    let refusal = if global.signing_algorithm == SigningAlgorithm::AesGmac
        && conn_alg != global.signing_algorithm
    {
        Some(STATUS_REQUEST_OUT_OF_SEQUENCE)
    } else if conn_alg == SigningAlgorithm::AesGmac && global.signing_algorithm != conn_alg {
        Some(status::NOT_SUPPORTED)
    } else if conn.neg.dialect < DIALECT_300 {
        Some(status::REQUEST_NOT_ACCEPTED)
    } else if !signed || global.dialect != conn.neg.dialect || global.cipher != conn.neg.cipher {
        Some(status::INVALID_PARAMETER)
    } else {
        None
    };
    if let Some(refusal) = refusal {
        conn.bound.remove(&sid);
        tracing::info!(peer = %conn.peer, session = sid, status = format_args!("{refusal:#010x}"),
            same_client = global.client_guid == conn.neg.client_guid, "session binding refused");
        return Err(Fail::Status(refusal));
    }
    let now = crate::util::now_secs();
    refuse_throttled_address(conn, now, "binding")?;
    if !conn.bound.contains_key(&sid) {
        // Bindings of sessions that ended make room.
        if let Ok(reg) = conn.server.sessions.lock() {
            conn.bound.retain(|id, _| reg.get(*id).is_some());
        }
        if conn.bound.len() >= conn.server.cfg.max_sessions_per_conn
            || global.channels.len() >= MAX_CHANNELS_PER_SESSION
        {
            tracing::warn!(peer = %conn.peer, session = sid, "channel limit reached");
            return Err(Fail::Status(status::INSUFFICIENT_RESOURCES));
        }
        let binding = Binding {
            acceptor: Some(Box::new(new_acceptor(conn))),
            preauth: conn
                .neg
                .preauth
                .clone()
                .filter(|_| conn.neg.dialect == DIALECT_311),
            signer: None,
            encryption: None,
        };
        conn.bound.insert(sid, binding);
    }
    let acc = conn.bound.get_mut(&sid).and_then(|b| {
        if let Some(h) = b.preauth.as_mut() {
            h.update(req.msg);
        }
        b.acceptor.take()
    });
    let Some(mut acc) = acc else {
        conn.bound.remove(&sid);
        return Err(Fail::Status(status::REQUEST_NOT_ACCEPTED));
    };
    let mut user_locked = false;
    let step = auth_step(conn, &mut acc, token, now, &mut user_locked);
    let peer = conn.peer;
    match step {
        Ok(Step::Continue(out)) => {
            if let Some(b) = conn.bound.get_mut(&sid) {
                b.acceptor = Some(acc);
            }
            conn.preauth_pending = Some(PreauthTarget::Binding(sid));
            Ok(Reply::Body {
                status: status::MORE_PROCESSING_REQUIRED,
                body: setup_body(&out),
            })
        }
        Ok(Step::Done(auth)) => {
            let Some(b) = conn.bound.remove(&sid) else {
                return Err(Fail::Status(status::USER_SESSION_DELETED));
            };
            if auth.user.to_lowercase() != global.user {
                tracing::warn!(peer = %peer, session = sid, user = %global.user, new_user = %auth.user,
                    "binding as another user refused");
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            let preauth = b.preauth.map(|h| *h.value()).unwrap_or([0u8; 64]);
            let keys = SessionKeys::derive(conn.neg.dialect, &auth.session_key, &preauth);
            let chan = Arc::new(Signer::new(conn_alg, keys.signing));
            let added = conn
                .server
                .sessions
                .lock()
                .map(|mut reg| reg.add_channel(sid, conn.id, conn.outbox.clone()))
                .unwrap_or(false);
            if !added {
                return Err(Fail::Status(status::USER_SESSION_DELETED));
            }
            conn.bound.insert(
                sid,
                Binding {
                    acceptor: None,
                    preauth: None,
                    signer: Some(chan.clone()),
                    encryption: global.encryption.clone(),
                },
            );
            conn.response_signer = Some(chan);
            if let Ok(mut t) = conn.server.throttle.lock() {
                t.success(&auth.user);
            }
            tracing::info!(peer = %peer, user = %auth.user, session = sid, home = global.conn_id, "session bound to a further channel");
            Ok(Reply::ok(setup_body(&auth.token)))
        }
        Err(e) => {
            // The binding fails; the session goes on on its other channels.
            conn.bound.remove(&sid);
            let user = match &e {
                AuthError::LogonFailure { user } => Some(user.clone()),
                _ => None,
            };
            let window = conn.server.cfg.failed_logon_window_secs;
            if let Ok(mut t) = conn.server.throttle.lock() {
                t.failure(peer.ip(), user.as_deref(), now, window);
            }
            if user_locked {
                return Err(Fail::Status(status::ACCOUNT_LOCKED_OUT));
            }
            tracing::warn!(peer = %peer, user = ?user, session = sid, error = %e, "binding failed");
            Err(Fail::Status(match e {
                AuthError::Malformed(_) => status::INVALID_PARAMETER,
                AuthError::Anonymous => status::ACCESS_DENIED,
                _ => status::LOGON_FAILURE,
            }))
        }
    }
}

/// STATUS_ACCOUNT_LOCKED_OUT while the client's address has too many failed logons.
fn refuse_throttled_address(conn: &Conn, now: u64, what: &str) -> Result<(), Fail> {
    let locked = conn
        .server
        .throttle
        .lock()
        .map(|mut t| t.address_locked(conn.peer.ip(), now, &conn.server.cfg))
        .unwrap_or(false);
    if locked {
        tracing::warn!(peer = %conn.peer, "{what} refused: too many failed logons from this address");
        return Err(Fail::Status(status::ACCOUNT_LOCKED_OUT));
    }
    Ok(())
}

/// One step of an NTLM exchange, users looked up in the state store; a user throttled
/// after failed logons is not found (and `user_locked` set).
fn auth_step(
    conn: &Conn,
    acc: &mut Acceptor,
    token: &[u8],
    now: u64,
    user_locked: &mut bool,
) -> Result<Step, AuthError> {
    let server = conn.server.clone();
    let mut lookup = |user: &str, _domain: &str| -> Option<[u8; 16]> {
        if server
            .throttle
            .lock()
            .map(|mut t| t.user_locked(user, now, &server.cfg))
            .unwrap_or(false)
        {
            *user_locked = true;
            return None;
        }
        match server.store.user_nt_hash(user) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "state store lookup failed");
                None
            }
        }
    };
    acc.step(token, &mut lookup)
}

/// A session bound to a connection as a channel (MS-SMB2 3.3.1.8 Channel), kept by that
/// connection: the binding exchange while it runs, then the channel's signing key.
pub struct Binding {
    acceptor: Option<Box<Acceptor>>,
    /// The channel's preauth integrity hash during the exchange (3.1.1).
    pub preauth: Option<duet_auth::PreauthHash>,
    /// Channel.SigningKey; None while the exchange runs.
    signer: Option<Arc<Signer>>,
    /// The session's encryption (transform frames of the session on this channel).
    encryption: Option<Arc<Encryption>>,
}

/// A frame that came on a channel of a session, for the session's home connection
/// (see the module docs).
pub struct Forwarded {
    pub frame: Vec<u8>,
    pub session_id: u64,
    /// The channel's connection id and outbox: where the responses go.
    pub channel: u64,
    pub outbox: Outbox,
    /// The channel's signing key: requests are checked and responses signed with it.
    pub signer: Arc<Signer>,
    /// The credits the channel granted for each response, in order.
    pub grants: std::collections::VecDeque<u16>,
    /// Set when the frame came sealed: the responses go out sealed too.
    pub encrypted: Option<(u64, Arc<Encryption>)>,
}

/// A frame that came on this connection for a session bound to it as a channel goes to
/// the session's home connection (its message ids are charged here first). None: it is
/// handled here (not such a frame, a binding SESSION_SETUP, or the session is gone, when
/// this connection forgets it and answers USER_SESSION_DELETED as for any unknown session).
pub fn forward(conn: &mut Conn, frame: &[u8]) -> Option<Flow> {
    let hdr = Header::new_checked(frame).ok()?;
    if hdr.is_related() {
        return None;
    }
    let sid = hdr.session_id();
    let signer = conn.bound.get(&sid)?.signer.clone()?;
    match hdr.command() {
        None | Some(Command::Negotiate) => return None,
        Some(Command::SessionSetup)
            if frame
                .get(HEADER_LEN + 2)
                .is_some_and(|f| f & SESSION_FLAG_BINDING != 0) =>
        {
            return None
        }
        _ => {}
    }
    let home = conn.server.sessions.lock().ok().and_then(|reg| {
        reg.get(sid)
            .filter(|g| g.channels.iter().any(|(c, _)| *c == conn.id))
            .map(|g| g.conn_id)
    });
    let mailbox = home.and_then(|h| {
        conn.server
            .mailboxes
            .lock()
            .ok()
            .and_then(|m| m.get(&h).cloned())
    });
    let Some(mailbox) = mailbox else {
        // The session ended: answered here (USER_SESSION_DELETED, signed with the
        // channel's key, which the binding keeps until this connection closes or binds
        // again).
        return None;
    };
    let Some(grants) = conn.charge_chain(frame) else {
        return Some(Flow::Close);
    };
    mailbox.post(ConnEvent::Forward(Parcel::new(Forwarded {
        frame: frame.to_vec(),
        session_id: sid,
        channel: conn.id,
        outbox: conn.outbox.clone(),
        signer,
        grants,
        encrypted: conn.encrypted.clone(),
    })));
    // A home whose connection closed may be run by this very connection: at once, then.
    conn.run_adopted();
    Some(Flow::Continue)
}

/// Called by `Conn::teardown`: the connection is no channel of any session any more.
pub fn channel_gone(conn: &mut Conn) {
    conn.bound.clear();
    if let Ok(mut reg) = conn.server.sessions.lock() {
        reg.remove_channel(conn.id);
    }
}

/// Called by `Conn::teardown` once `channel_gone` ran: the channel the closing connection's
/// sessions move to (its id and outbox) and which of them move (those with that channel),
/// or None if none of them has another channel.
pub fn hand_over_target(conn: &Conn) -> Option<(u64, Outbox, Vec<u64>)> {
    let reg = conn.server.sessions.lock().ok()?;
    let mine = |sid: &u64| {
        reg.get(*sid)
            .filter(|g| g.conn_id == conn.id)
            .filter(|_| conn.sessions.get(sid).is_some_and(|s| s.is_valid()))
    };
    let (target, outbox) = conn
        .sessions
        .keys()
        .filter_map(|sid| mine(sid).and_then(|g| g.channels.first().cloned()))
        .next()?;
    let moving = conn
        .sessions
        .keys()
        .filter(|sid| mine(sid).is_some_and(|g| g.channels.iter().any(|(c, _)| *c == target)))
        .copied()
        .collect();
    Some((target, outbox, moving))
}

/// The live channels of a session (its home connection while it lives, and every bound
/// one), with their outboxes; empty if it is not a valid session.
pub fn channels(server: &super::Server, session_id: u64) -> Vec<(u64, Outbox)> {
    server
        .sessions
        .lock()
        .ok()
        .and_then(|reg| reg.get(session_id).map(|g| g.channels.clone()))
        .unwrap_or_default()
}

/// A request signed for session `id`, which this connection does not have: the key it
/// verifies with, among this connection's channel key of the session (bound, perhaps
/// ended since), the session's own key (it lives on another connection) and that of a
/// session ended lately. USER_SESSION_DELETED is signed with it, as smbd signs it and as
/// a client that signs expects.
pub fn deleted_session_signer(conn: &Conn, id: u64, msg: &[u8]) -> Option<Arc<Signer>> {
    let channel = conn.bound.get(&id).and_then(|b| b.signer.clone());
    let global = conn.server.sessions.lock().ok().and_then(|reg| {
        reg.get(id)
            .map(|g| g.signer.clone())
            .or_else(|| reg.ended_signer(id))
    });
    [channel, global]
        .into_iter()
        .flatten()
        .find(|s| s.verify(msg))
}

fn registered(conn: &Conn, id: u64) -> Option<GlobalSession> {
    conn.server
        .sessions
        .lock()
        .ok()
        .and_then(|reg| reg.get(id).cloned())
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
        encryption: None,
        preauth: conn.neg.preauth.clone(),
        trees: HashMap::new(),
        next_tree_id: 1,
    }
}

fn setup_body(token: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + token.len());
    b.put_u16(9);
    b.put_u16(0);
    b.put_u16(if token.is_empty() {
        0
    } else {
        (HEADER_LEN + 8) as u16
    });
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

// ------------------------------------------------------------------ the session table

/// What the server knows of a valid session beyond its connection (MS-SMB2
/// GlobalSessionTable): enough to find its owner, check a reconnect's user, and answer a
/// binding attempt from another connection, signed with the session's key.
#[derive(Clone)]
pub struct GlobalSession {
    pub conn_id: u64,
    /// The user name, lower-cased.
    pub user: String,
    pub signer: Arc<Signer>,
    pub dialect: u16,
    pub signing_algorithm: SigningAlgorithm,
    pub cipher: Option<CipherId>,
    pub client_guid: [u8; 16],
    /// Session.ChannelList: the connections the session is reachable on (its home while
    /// that connection lives, then each bound channel), with their outboxes.
    pub channels: Vec<(u64, Outbox)>,
    /// The session's SMB3 encryption, which every channel uses.
    pub encryption: Option<Arc<Encryption>>,
}

/// The server-wide table of valid sessions by SessionId. A connection enters its sessions
/// when their first authentication succeeds and removes them at logoff and teardown.
#[derive(Default)]
pub struct Registry {
    sessions: HashMap<u64, GlobalSession>,
    /// The signing keys of the sessions that ended last (see `deleted_session_signer`).
    ended: std::collections::VecDeque<(u64, Arc<Signer>)>,
}

/// How many ended sessions' keys the registry remembers.
const ENDED_KEPT: usize = 256;

impl Registry {
    pub fn insert(&mut self, id: u64, s: GlobalSession) {
        self.sessions.insert(id, s);
    }
    pub fn get(&self, id: u64) -> Option<&GlobalSession> {
        self.sessions.get(&id)
    }
    fn bury(&mut self, id: u64, s: GlobalSession) {
        if self.ended.len() >= ENDED_KEPT {
            self.ended.pop_front();
        }
        self.ended.push_back((id, s.signer));
    }
    /// The signing key of session `id` if it ended lately.
    pub fn ended_signer(&self, id: u64) -> Option<Arc<Signer>> {
        self.ended
            .iter()
            .rev()
            .find(|(i, _)| *i == id)
            .map(|(_, s)| s.clone())
    }
    /// Removes `id` if connection `conn_id` owns it.
    pub fn remove(&mut self, id: u64, conn_id: u64) {
        if self.sessions.get(&id).is_some_and(|s| s.conn_id == conn_id) {
            if let Some(s) = self.sessions.remove(&id) {
                self.bury(id, s);
            }
        }
    }
    pub fn remove_conn(&mut self, conn_id: u64) {
        let gone: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.conn_id == conn_id)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some(s) = self.sessions.remove(&id) {
                self.bury(id, s);
            }
        }
    }
    /// Adds connection `conn_id` to session `id`'s channels. False if there is no such
    /// session.
    pub fn add_channel(&mut self, id: u64, conn_id: u64, outbox: Outbox) -> bool {
        match self.sessions.get_mut(&id) {
            Some(s) => {
                s.channels.retain(|(c, _)| *c != conn_id);
                s.channels.push((conn_id, outbox));
                true
            }
            None => false,
        }
    }
    /// Connection `conn_id` closed: it is no session's channel any more.
    pub fn remove_channel(&mut self, conn_id: u64) {
        for s in self.sessions.values_mut() {
            s.channels.retain(|(c, _)| *c != conn_id);
        }
    }
    /// Removes `id` if its user is `user` (lower-cased) and returns its connection.
    pub fn take_if_user(&mut self, id: u64, user: &str) -> Option<u64> {
        if self.sessions.get(&id)?.user != user {
            return None;
        }
        self.sessions.remove(&id).map(|s| s.conn_id)
    }
    pub fn len(&self) -> usize {
        self.sessions.len()
    }
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

// ------------------------------------------------------------------ SMB3 encryption

/// One session's SMB3 encryption (MS-SMB2 3.1.4.3, 3.3.4.1.4, 3.3.5.2.1.1):
/// Session.EncryptionKey seals what the server sends, Session.DecryptionKey opens what it
/// receives. Nonces are a per-session counter followed by random bits drawn when the
/// session was set up, so none repeats under the key.
pub struct Encryption {
    seal: TransformCipher,
    open: TransformCipher,
    nonce_counter: AtomicU64,
    nonce_salt: [u8; 8],
}

impl Encryption {
    pub fn new(
        cipher: CipherId,
        encryption_key: &[u8],
        decryption_key: &[u8],
        nonce_salt: [u8; 8],
    ) -> Result<Encryption, AuthError> {
        Ok(Encryption {
            seal: TransformCipher::new(cipher, encryption_key)?,
            open: TransformCipher::new(cipher, decryption_key)?,
            nonce_counter: AtomicU64::new(0),
            nonce_salt,
        })
    }

    pub fn cipher(&self) -> CipherId {
        self.seal.id()
    }

    /// Seals `msg` (one message or a compound chain) into a transform frame for
    /// `session_id`. None once the nonce space is spent (the connection must end).
    pub fn seal(&self, session_id: u64, mut msg: Vec<u8>) -> Option<Vec<u8>> {
        let n = self.nonce_counter.fetch_add(1, Ordering::Relaxed);
        if n == u64::MAX {
            return None;
        }
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&n.to_le_bytes());
        nonce[8..].copy_from_slice(&self.nonce_salt);
        let header = self.seal.encrypt(&nonce, session_id, &mut msg).ok()?;
        let mut frame = Vec::with_capacity(TRANSFORM_HEADER_LEN + msg.len());
        frame.extend_from_slice(&header);
        frame.extend_from_slice(&msg);
        Some(frame)
    }

    /// Opens a transform frame; the plaintext message(s), or None if it does not verify.
    pub fn open(&self, frame: &[u8]) -> Option<Vec<u8>> {
        let mut buf = frame.to_vec();
        let len = self.open.decrypt(&mut buf).ok()?.len();
        buf.drain(..TRANSFORM_HEADER_LEN);
        debug_assert_eq!(buf.len(), len);
        Some(buf)
    }
}

/// An incoming transform frame (3.3.5.2.1.1): the session it names must exist on this
/// connection with encryption set up, and the frame must verify; otherwise the connection
/// ends (None). Returns the plaintext, the session's encryption and its id.
pub fn open_transform(conn: &Conn, frame: &[u8]) -> Option<(Vec<u8>, Arc<Encryption>, u64)> {
    if conn.neg.cipher.is_none() {
        tracing::warn!(peer = %conn.peer, "encrypted message but no encryption was negotiated; closing connection");
        return None;
    }
    let hdr = match TransformHeader::parse(frame) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(peer = %conn.peer, error = %e, "bad transform header; closing connection");
            return None;
        }
    };
    let Some(enc) = conn
        .sessions
        .get(&hdr.session_id)
        .and_then(|s| s.encryption.clone())
        .or_else(|| {
            conn.bound
                .get(&hdr.session_id)
                .filter(|b| b.signer.is_some())
                .and_then(|b| b.encryption.clone())
        })
    else {
        tracing::warn!(peer = %conn.peer, session = hdr.session_id, "encrypted message for no session with encryption; closing connection");
        return None;
    };
    let Some(plain) = enc.open(frame) else {
        tracing::warn!(peer = %conn.peer, session = hdr.session_id, "encrypted message failed to decrypt; closing connection");
        return None;
    };
    if plain.get(..4) != Some(&crate::wire::header::PROTOCOL_ID[..]) {
        tracing::warn!(peer = %conn.peer, "encrypted payload is not an SMB2 message; closing connection");
        return None;
    }
    Some((plain, enc, hdr.session_id))
}

// ------------------------------------------------------------------ failed-logon throttle

/// The most failures one key remembers; `max_failed_logons` may not exceed it (the board
/// config checks), so a fixed-size ring per user and per address is enough.
pub const MAX_TRACKED_FAILURES: usize = 64;
/// Keys tracked at most per map; past it, keys with no failure in the window are dropped
/// first, then the whole map is cleared rather than grown (memory stays bounded whatever
/// the number of client addresses).
const MAX_TRACKED_KEYS: usize = 16_384;

type Failures = heapless::Deque<u64, MAX_TRACKED_FAILURES>;

/// Counts failed logons per user and per client address in a sliding window.
#[derive(Default)]
pub struct Throttle {
    users: HashMap<String, Failures>,
    addrs: HashMap<IpAddr, Failures>,
}

fn prune(q: &mut Failures, now: u64, window: u64) {
    while q.front().is_some_and(|t| now.saturating_sub(*t) >= window) {
        q.pop_front();
    }
}

fn record<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Failures>, key: K, now: u64, window: u64) {
    if map.len() >= MAX_TRACKED_KEYS && !map.contains_key(&key) {
        map.retain(|_, q| {
            prune(q, now, window);
            !q.is_empty()
        });
        if map.len() >= MAX_TRACKED_KEYS {
            tracing::warn!(
                keys = map.len(),
                "failed-logon table full; forgetting old failures"
            );
            map.clear();
        }
    }
    let q = map.entry(key).or_default();
    if q.is_full() {
        q.pop_front();
    }
    let _ = q.push_back(now);
}

impl Throttle {
    pub fn user_locked(&mut self, user: &str, now: u64, cfg: &super::ServerConfig) -> bool {
        match self.users.get_mut(&user.to_lowercase()) {
            Some(q) => {
                prune(q, now, cfg.failed_logon_window_secs);
                q.len() as u32 >= cfg.max_failed_logons
            }
            None => false,
        }
    }
    pub fn address_locked(&mut self, ip: IpAddr, now: u64, cfg: &super::ServerConfig) -> bool {
        match self.addrs.get_mut(&ip) {
            Some(q) => {
                prune(q, now, cfg.failed_logon_window_secs);
                q.len() as u32 >= cfg.max_failed_logons
            }
            None => false,
        }
    }
    pub fn failure(&mut self, ip: IpAddr, user: Option<&str>, now: u64, window: u64) {
        record(&mut self.addrs, ip, now, window);
        if let Some(u) = user {
            record(&mut self.users, u.to_lowercase(), now, window);
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
    fn throttle_memory_is_bounded() {
        let mut t = Throttle::default();
        for i in 0..(MAX_TRACKED_KEYS as u32 + 100) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0xC000_0200u32.wrapping_add(i)));
            t.failure(ip, None, 1000, 60);
        }
        assert!(t.addrs.len() <= MAX_TRACKED_KEYS);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..(MAX_TRACKED_FAILURES as u64 * 2) {
            t.failure(ip, Some("dave"), 2000 + i, 600);
        }
        assert_eq!(t.users["dave"].len(), MAX_TRACKED_FAILURES);
    }

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
            t.failure(ip, Some("bob"), 100 + i, 60);
        }
        assert!(t.user_locked("BOB", 103, &cfg));
        assert!(t.address_locked(ip, 103, &cfg));
        assert!(!t.address_locked("192.0.2.10".parse().unwrap(), 103, &cfg));
        // The window slides.
        assert!(!t.user_locked("bob", 200, &cfg));
        t.failure(ip, Some("carol"), 300, 60);
        t.success("carol");
        assert!(!t.user_locked("carol", 300, &cfg));
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod conn_tests;
