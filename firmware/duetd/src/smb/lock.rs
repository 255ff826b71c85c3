//! LOCK (MS-SMB2 2.2.26/2.2.27, 3.3.5.14): shared and exclusive byte ranges with Windows'
//! stacking and zero-byte rules (MS-FSA 2.1.4.10, 2.1.5.8, 2.1.5.9), unlock, fail-immediately,
//! blocking locks that wait (async) until the range is free, lock sequence replay detection
//! for resilient and durable opens, and FSCTL_LMR_REQUEST_RESILIENCY (3.3.5.15.9).
//!
//! Owns: lock request validation, the order in which elements are applied, and the waiters
//! of blocking locks. The lock table itself is `files::FileTable`. Never grants overlapping
//! conflicting locks; a lock request takes all of its ranges or none.

use super::create::lookup_fid;
use super::files::{ByteLock, FileKey, FileTable, OpenRef};
use super::{
    AsyncTarget, Conn, Fail, FileId, HResult, Pending, PendingKind, Reply, Req, Server, DIALECT_202,
};
use crate::wire::{le_u32, status};

const LOCKFLAG_SHARED: u32 = 0x01;
const LOCKFLAG_EXCLUSIVE: u32 = 0x02;
const LOCKFLAG_UNLOCK: u32 = 0x04;
const LOCKFLAG_FAIL_IMMEDIATELY: u32 = 0x10;
const MAX_LOCKS_PER_REQUEST: usize = 64;

/// FSCTL_LMR_REQUEST_RESILIENCY (MS-SMB2 2.2.31): asks that an open survive a disconnect.
pub const FSCTL_LMR_REQUEST_RESILIENCY: u32 = 0x0014_01D4;
/// MaxResiliencyTimeout (MS-SMB2 3.3.3), the same cap as durable handles' timeout.
pub const MAX_RESILIENCY_TIMEOUT_MS: u32 = 300_000;
/// The timeout a resiliency request of 0 gets (Windows uses 120 s).
pub const DEFAULT_RESILIENCY_TIMEOUT_MS: u32 = 120_000;

/// The LockSequenceNumber (low 4 bits) and LockSequenceIndex (upper 28 bits) of a LOCK
/// request (MS-SMB2 2.2.26).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockSequence {
    pub index: u32,
    pub number: u8,
}

impl LockSequence {
    pub fn parse(v: u32) -> LockSequence {
        LockSequence {
            index: v >> 4,
            number: (v & 0xF) as u8,
        }
    }
}

/// A blocking lock waiting for its range.
pub struct Waiter {
    pub key: FileKey,
    pub lock: ByteLock,
    pub target: AsyncTarget,
    /// The lock sequence to record once granted (opens with replay detection only).
    pub sequence: Option<LockSequence>,
}

/// One SMB2_LOCK_ELEMENT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Element {
    offset: u64,
    length: u64,
    flags: u32,
}

/// What applying a request's elements to the lock table came to.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The request is finished with this status (SUCCESS or an error).
    Done(u32),
    /// A single blocking lock that conflicts: it waits for its range.
    Wait(ByteLock),
}

/// MS-FSA 2.1.5.8/2.1.5.9: a range whose last byte lies beyond 2^64 - 1 is refused.
fn check_range(e: &Element) -> Result<(), u32> {
    if e.length > 0 && e.offset.checked_add(e.length - 1).is_none() {
        return Err(status::INVALID_LOCK_RANGE);
    }
    Ok(())
}

/// MS-SMB2 3.3.5.14: the first element decides whether the request unlocks or locks.
fn apply(files: &mut FileTable, key: &FileKey, who: OpenRef, elems: &[Element]) -> Outcome {
    if elems[0].flags & LOCKFLAG_UNLOCK != 0 {
        Outcome::Done(unlock_elements(files, key, who, elems))
    } else {
        lock_elements(files, key, who, elems)
    }
}

/// MS-SMB2 3.3.5.14.1: element by element; the first failure ends the request and what was
/// unlocked before it stays unlocked. Only a bare UNLOCK flag is valid here.
fn unlock_elements(files: &mut FileTable, key: &FileKey, who: OpenRef, elems: &[Element]) -> u32 {
    for e in elems {
        if e.flags != LOCKFLAG_UNLOCK {
            return status::INVALID_PARAMETER;
        }
        if let Err(st) = check_range(e) {
            return st;
        }
        if !files.unlock(key, who, e.offset, e.length) {
            return status::RANGE_NOT_LOCKED;
        }
    }
    status::SUCCESS
}

/// MS-SMB2 3.3.5.14.2: the elements are taken in order and all of them or none. An element
/// with invalid flags (an unlock among locks, no lock type, unknown bits, or a multi-element
/// request without FAIL_IMMEDIATELY) or range fails the request, after the locks before it
/// would have been taken and rolled back, so a conflict before it is what the client hears.
/// A conflicting single lock without FAIL_IMMEDIATELY waits.
fn lock_elements(files: &mut FileTable, key: &FileKey, who: OpenRef, elems: &[Element]) -> Outcome {
    let mut locks = Vec::with_capacity(elems.len());
    let mut invalid = None;
    for e in elems {
        let kind = e.flags & !LOCKFLAG_FAIL_IMMEDIATELY;
        let typed = kind == LOCKFLAG_SHARED || kind == LOCKFLAG_EXCLUSIVE;
        let may_wait = e.flags & LOCKFLAG_FAIL_IMMEDIATELY == 0;
        let bad = if !typed || (elems.len() > 1 && may_wait) {
            Err(status::INVALID_PARAMETER)
        } else {
            check_range(e)
        };
        if let Err(st) = bad {
            invalid = Some(st);
            break;
        }
        locks.push(ByteLock {
            who,
            offset: e.offset,
            length: e.length,
            exclusive: kind == LOCKFLAG_EXCLUSIVE,
        });
    }
    if files.first_conflict(key, &locks).is_some() {
        if elems.len() == 1 && elems[0].flags & LOCKFLAG_FAIL_IMMEDIATELY == 0 {
            return Outcome::Wait(locks.swap_remove(0));
        }
        return Outcome::Done(status::LOCK_NOT_GRANTED);
    }
    if let Some(st) = invalid {
        return Outcome::Done(st);
    }
    match files.lock_all(key, &locks) {
        Ok(()) => Outcome::Done(status::SUCCESS),
        Err(_) => Outcome::Done(status::LOCK_NOT_GRANTED),
    }
}

fn lock_response() -> Reply {
    Reply::ok(vec![4, 0, 0, 0])
}

pub fn handle_lock(conn: &mut Conn, req: &Req) -> HResult {
    let b = req.body();
    b.expect_structure_size(48)?;
    let count = b.u16(2)? as usize;
    let sequence = LockSequence::parse(b.u32(4)?);
    let fid = FileId::parse(&b, 8)?;
    if count == 0 || count > MAX_LOCKS_PER_REQUEST {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    let mut elems = Vec::with_capacity(count);
    for i in 0..count {
        let o = 24 + i * 24;
        elems.push(Element {
            offset: b.u64(o)?,
            length: b.u64(o + 8)?,
            flags: b.u32(o + 16)?,
        });
    }
    let vol = lookup_fid(conn, req, fid)?;
    let open = conn
        .opens
        .get(&vol)
        .ok_or(Fail::Status(status::FILE_CLOSED))?;
    let key = open
        .key
        .ok_or(Fail::Status(status::INVALID_DEVICE_REQUEST))?;
    if open.is_dir {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    let who = OpenRef {
        conn: conn.id,
        volatile: vol,
    };
    let unlocking = elems[0].flags & LOCKFLAG_UNLOCK != 0;
    if !unlocking {
        super::oplock::contend(conn, vol);
    }
    let mut files = conn
        .server
        .files
        .lock()
        .map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
    let sequence = sequence_to_verify(conn.neg.dialect, &files, &key, who, sequence);
    match process(&mut files, &key, who, &elems, sequence) {
        Outcome::Done(st) => {
            drop(files);
            if unlocking {
                wake(&conn.server, key);
            }
            if st == status::SUCCESS {
                super::durable::locks_changed(conn, vol);
                Ok(lock_response())
            } else {
                Err(Fail::Status(st))
            }
        }
        Outcome::Wait(lock) => {
            drop(files);
            let r = wait_for_range(conn, req, vol, key, lock, sequence);
            if matches!(r, Ok(Reply::Body { .. })) {
                super::durable::locks_changed(conn, vol);
            }
            r
        }
    }
}

/// MS-SMB2 3.3.5.14: the lock sequence of a request is verified except in 2.0.2: on every
/// open of an SMB 3.x connection (the server announces SMB2_GLOBAL_CAP_MULTI_CHANNEL), and
/// in 2.1 on the opens that verify it (see `OpenLockState::verifies_sequence`).
fn sequence_to_verify(
    dialect: u16,
    files: &FileTable,
    key: &FileKey,
    who: OpenRef,
    sequence: LockSequence,
) -> Option<LockSequence> {
    let verify = dialect != DIALECT_202
        && (dialect >= super::DIALECT_300
            || files
                .lock_state(key, who)
                .is_some_and(|s| s.verifies_sequence()));
    verify.then_some(sequence)
}

/// MS-SMB2 3.3.5.14: a request that replays one that succeeded (same valid lock sequence
/// entry) succeeds again without being applied twice; a request that succeeds records its
/// lock sequence.
fn process(
    files: &mut FileTable,
    key: &FileKey,
    who: OpenRef,
    elems: &[Element],
    sequence: Option<LockSequence>,
) -> Outcome {
    if let Some(s) = sequence {
        if files.lock_state_mut(key, who).is_replay(s.index, s.number) {
            return Outcome::Done(status::SUCCESS);
        }
    }
    let outcome = apply(files, key, who, elems);
    if let (Outcome::Done(status::SUCCESS), Some(s)) = (&outcome, sequence) {
        files.lock_state_mut(key, who).record(s.index, s.number);
    }
    outcome
}

/// A blocking lock: answers STATUS_PENDING and waits for the range (MS-SMB2 3.3.4.2).
fn wait_for_range(
    conn: &mut Conn,
    req: &Req,
    vol: u64,
    key: FileKey,
    lock: ByteLock,
    sequence: Option<LockSequence>,
) -> HResult {
    forget_finished(conn);
    if conn.pending.len() >= conn.server.cfg.max_pending_per_conn {
        return Err(Fail::Status(status::INSUFFICIENT_RESOURCES));
    }
    let async_id = conn.server.new_id();
    let target = conn.async_target(req, async_id);
    {
        // Same order as `wake` (waiters, then files), and the range is tried again under
        // both: an unlock between our first try and now cannot be missed.
        let mut waiters = conn
            .server
            .lock_waiters
            .lock()
            .map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
        let mut files = conn
            .server
            .files
            .lock()
            .map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
        if files.try_lock(&key, lock.clone()) {
            if let Some(s) = sequence {
                files
                    .lock_state_mut(&key, lock.who)
                    .record(s.index, s.number);
            }
            return Ok(lock_response());
        }
        waiters.push(Waiter {
            key,
            lock,
            target,
            sequence,
        });
    }
    conn.pending.insert(
        async_id,
        Pending {
            message_id: req.message_id,
            session_id: req.session_id,
            kind: PendingKind::Lock { volatile: vol },
        },
    );
    Ok(Reply::Pending { async_id })
}

/// Drops the connection's pending entries of blocking locks that were granted meanwhile
/// (`wake` completes them from whichever connection freed the range, which cannot reach
/// this connection's table), so they count against no limit.
fn forget_finished(conn: &mut Conn) {
    let conn_id = conn.id;
    let Ok(waiters) = conn.server.lock_waiters.lock() else {
        return;
    };
    conn.pending.retain(|id, p| {
        !matches!(p.kind, PendingKind::Lock { .. })
            || waiters
                .iter()
                .any(|w| w.target.conn_id == conn_id && w.target.async_id == *id)
    });
}

/// Retries the waiters of a file after its locks changed, oldest first.
pub fn wake(server: &Server, key: FileKey) {
    let Ok(mut waiters) = server.lock_waiters.lock() else {
        return;
    };
    if waiters.is_empty() {
        return;
    }
    let Ok(mut files) = server.files.lock() else {
        return;
    };
    let mut granted = Vec::new();
    waiters.retain(|w| {
        if w.key != key {
            return true;
        }
        if files.try_lock(&key, w.lock.clone()) {
            if let Some(s) = w.sequence {
                files
                    .lock_state_mut(&key, w.lock.who)
                    .record(s.index, s.number);
            }
            granted.push((w.lock.who, w.target.clone()));
            false
        } else {
            true
        }
    });
    drop(files);
    drop(waiters);
    // A durable open's record must have its new lock before the client hears of it.
    for (who, target) in granted {
        super::durable::lock_granted(server, key, who, &target.outbox);
        target.complete(status::SUCCESS, &[4, 0, 0, 0]);
    }
}

/// CANCEL of a waiting lock.
pub fn cancel(conn: &mut Conn, async_id: u64, st: u32) {
    let conn_id = conn.id;
    if let Ok(mut waiters) = conn.server.lock_waiters.lock() {
        waiters.retain(|w| {
            if w.target.conn_id == conn_id && w.target.async_id == async_id {
                w.target.complete(st, &[]);
                false
            } else {
                true
            }
        });
    }
}

/// The handle closed: its waiting locks end with STATUS_RANGE_NOT_LOCKED.
pub fn close_handle(conn: &mut Conn, vol: u64) {
    let conn_id = conn.id;
    if let Ok(mut waiters) = conn.server.lock_waiters.lock() {
        waiters.retain(|w| {
            if w.lock.who.conn == conn_id && w.lock.who.volatile == vol {
                w.target.complete(status::RANGE_NOT_LOCKED, &[]);
                false
            } else {
                true
            }
        });
    }
    conn.pending
        .retain(|_, p| p.kind != PendingKind::Lock { volatile: vol });
}

/// FSCTL_LMR_REQUEST_RESILIENCY (MS-SMB2 3.3.5.15.9) on the open `vol`: makes it resilient,
/// which turns on lock sequence verification for it. (Keeping a resilient open across a
/// disconnect belongs with durable handles.) The caller answers with an empty IOCTL response.
pub fn request_resiliency(conn: &Conn, vol: u64, input: &[u8]) -> Result<(), Fail> {
    if conn.neg.dialect == DIALECT_202 {
        return Err(Fail::Status(status::INVALID_DEVICE_REQUEST));
    }
    let timeout = resiliency_timeout(input).map_err(Fail::Status)?;
    let open = conn
        .opens
        .get(&vol)
        .ok_or(Fail::Status(status::FILE_CLOSED))?;
    let key = open
        .key
        .ok_or(Fail::Status(status::INVALID_DEVICE_REQUEST))?;
    let who = OpenRef {
        conn: conn.id,
        volatile: vol,
    };
    let mut files = conn
        .server
        .files
        .lock()
        .map_err(|_| Fail::Status(status::INTERNAL_ERROR))?;
    files.lock_state_mut(&key, who).resiliency_timeout = Some(timeout);
    Ok(())
}

/// The timeout a NETWORK_RESILIENCY_REQUEST (MS-SMB2 2.2.31.3: Timeout in ms, Reserved)
/// asks for: 0 gets the default, more than the maximum or a short buffer is refused.
fn resiliency_timeout(input: &[u8]) -> Result<u32, u32> {
    if input.len() < 8 {
        return Err(status::INVALID_PARAMETER);
    }
    match le_u32(input, 0).map_err(|_| status::INVALID_PARAMETER)? {
        0 => Ok(DEFAULT_RESILIENCY_TIMEOUT_MS),
        t if t > MAX_RESILIENCY_TIMEOUT_MS => Err(status::INVALID_PARAMETER),
        t => Ok(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: FileKey = FileKey {
        dev: 1,
        ino: 2,
        stream: 0,
    };
    const SH: u32 = LOCKFLAG_SHARED;
    const EX: u32 = LOCKFLAG_EXCLUSIVE;
    const UN: u32 = LOCKFLAG_UNLOCK;
    const FI: u32 = LOCKFLAG_FAIL_IMMEDIATELY;

    fn who(v: u64) -> OpenRef {
        OpenRef {
            conn: 1,
            volatile: v,
        }
    }
    fn el(offset: u64, length: u64, flags: u32) -> Element {
        Element {
            offset,
            length,
            flags,
        }
    }
    fn run(t: &mut FileTable, w: u64, elems: &[Element]) -> Outcome {
        apply(t, &K, who(w), elems)
    }
    const OK: Outcome = Outcome::Done(status::SUCCESS);
    const INVALID: Outcome = Outcome::Done(status::INVALID_PARAMETER);
    const NOT_GRANTED: Outcome = Outcome::Done(status::LOCK_NOT_GRANTED);
    const NOT_LOCKED: Outcome = Outcome::Done(status::RANGE_NOT_LOCKED);

    #[test]
    fn flag_validation() {
        let mut t = FileTable::default();
        // No lock type, unknown bits, unlock combined with a type or FAIL_IMMEDIATELY.
        assert_eq!(run(&mut t, 1, &[el(1, 1, 0)]), INVALID);
        assert_eq!(run(&mut t, 1, &[el(1, 1, !0x17)]), INVALID);
        assert_eq!(run(&mut t, 1, &[el(1, 1, SH | EX)]), INVALID);
        assert_eq!(run(&mut t, 1, &[el(1, 1, UN | EX)]), INVALID);
        assert_eq!(run(&mut t, 1, &[el(1, 1, UN | SH)]), INVALID);
        assert_eq!(run(&mut t, 1, &[el(1, 1, UN | FI)]), INVALID);
        // Several locks in one request must all fail immediately.
        assert_eq!(run(&mut t, 1, &[el(1, 1, SH | FI), el(5, 1, SH)]), INVALID);
        assert_eq!(run(&mut t, 1, &[el(1, 1, 0), el(5, 1, UN)]), INVALID);
        assert!(t.files.get(&K).is_none_or(|e| e.locks.is_empty()));
    }

    #[test]
    fn lock_ranges() {
        let mut t = FileTable::default();
        let bad = Outcome::Done(status::INVALID_LOCK_RANGE);
        assert_eq!(run(&mut t, 1, &[el(u64::MAX, u64::MAX, EX | FI)]), bad);
        assert_eq!(run(&mut t, 1, &[el(u64::MAX, 2, EX | FI)]), bad);
        assert_eq!(run(&mut t, 1, &[el(u64::MAX, 2, UN)]), bad);
        assert_eq!(run(&mut t, 1, &[el(u64::MAX, 1, EX | FI)]), OK);
        assert_eq!(run(&mut t, 2, &[el(u64::MAX, 1, EX | FI)]), NOT_GRANTED);
        assert_eq!(run(&mut t, 1, &[el(u64::MAX, 0, EX | FI)]), OK);
        assert_eq!(run(&mut t, 2, &[el(u64::MAX, 0, EX | FI)]), OK);
    }

    #[test]
    fn stacking_and_unlock_order() {
        let mut t = FileTable::default();
        assert_eq!(run(&mut t, 1, &[el(0, 10, EX | FI)]), OK);
        // A shared lock stacks on our exclusive lock even without FAIL_IMMEDIATELY.
        assert_eq!(run(&mut t, 1, &[el(0, 10, SH)]), OK);
        assert_eq!(run(&mut t, 1, &[el(0, 10, SH | FI)]), OK);
        assert_eq!(run(&mut t, 2, &[el(0, 10, SH | FI)]), NOT_GRANTED);
        assert_eq!(run(&mut t, 1, &[el(0, 10, EX | FI)]), NOT_GRANTED);
        // The exclusive lock goes first: then another open may share the range.
        assert_eq!(run(&mut t, 1, &[el(0, 10, UN)]), OK);
        assert_eq!(run(&mut t, 2, &[el(0, 10, SH | FI)]), OK);
        assert_eq!(run(&mut t, 2, &[el(0, 10, UN)]), OK);
        assert_eq!(run(&mut t, 1, &[el(0, 10, UN), el(0, 10, UN)]), OK);
        assert_eq!(run(&mut t, 1, &[el(0, 10, UN)]), NOT_LOCKED);
    }

    #[test]
    fn multiple_elements() {
        let mut t = FileTable::default();
        let (a, b) = ((0, 10), (10, 10));
        // Unlocks stop at the first failure and keep what they did.
        assert_eq!(run(&mut t, 1, &[el(b.0, b.1, EX | FI)]), OK);
        assert_eq!(
            run(&mut t, 1, &[el(a.0, a.1, UN), el(b.0, b.1, UN)]),
            NOT_LOCKED
        );
        assert_eq!(run(&mut t, 2, &[el(b.0, b.1, EX | FI)]), NOT_GRANTED);
        assert_eq!(
            run(&mut t, 1, &[el(b.0, b.1, UN), el(a.0, a.1, UN)]),
            NOT_LOCKED
        );
        assert_eq!(run(&mut t, 2, &[el(b.0, b.1, EX | FI)]), OK);
        // A conflict on the second lock leaves the first one untaken.
        assert_eq!(
            run(&mut t, 1, &[el(a.0, a.1, EX | FI), el(b.0, b.1, EX | FI)]),
            NOT_GRANTED
        );
        assert_eq!(run(&mut t, 2, &[el(a.0, a.1, EX | FI)]), OK);
        assert_eq!(run(&mut t, 2, &[el(a.0, a.1, UN), el(b.0, b.1, UN)]), OK);
        // An unlock then a lock: the unlock is done, the lock is refused.
        assert_eq!(run(&mut t, 1, &[el(a.0, a.1, EX | FI)]), OK);
        assert_eq!(
            run(&mut t, 1, &[el(a.0, a.1, UN), el(b.0, b.1, EX | FI)]),
            INVALID
        );
        assert_eq!(
            run(&mut t, 2, &[el(a.0, a.1, EX | FI), el(b.0, b.1, EX | FI)]),
            OK
        );
        assert_eq!(run(&mut t, 2, &[el(a.0, a.1, UN), el(b.0, b.1, UN)]), OK);
        // A lock then an unlock: refused, and the lock is not kept.
        assert_eq!(run(&mut t, 1, &[el(b.0, b.1, EX | FI)]), OK);
        assert_eq!(
            run(&mut t, 1, &[el(a.0, a.1, EX | FI), el(b.0, b.1, UN)]),
            INVALID
        );
        assert_eq!(run(&mut t, 2, &[el(a.0, a.1, EX | FI)]), OK);
        assert_eq!(run(&mut t, 2, &[el(b.0, b.1, EX | FI)]), NOT_GRANTED);
        // A conflict before an invalid element is what the request answers.
        assert_eq!(
            run(&mut t, 1, &[el(a.0, a.1, EX | FI), el(b.0, b.1, 0)]),
            NOT_GRANTED
        );
    }

    #[test]
    fn blocking_lock_waits() {
        let mut t = FileTable::default();
        assert_eq!(run(&mut t, 1, &[el(100, 50, EX)]), OK);
        let want = ByteLock {
            who: who(2),
            offset: 100,
            length: 50,
            exclusive: true,
        };
        assert_eq!(
            run(&mut t, 2, &[el(100, 50, EX)]),
            Outcome::Wait(want.clone())
        );
        assert_eq!(run(&mut t, 2, &[el(100, 50, EX | FI)]), NOT_GRANTED);
        // The waiting lock holds nothing: unlocking it from its open finds no lock.
        assert_eq!(run(&mut t, 2, &[el(100, 50, UN)]), NOT_LOCKED);
        assert_eq!(run(&mut t, 1, &[el(100, 50, UN)]), OK);
        assert!(t.try_lock(&K, want));
    }

    #[test]
    fn errorcode_is_always_lock_not_granted() {
        let mut t = FileTable::default();
        assert_eq!(run(&mut t, 1, &[el(100, 10, EX | FI)]), OK);
        for w in [1, 2, 1, 2] {
            assert_eq!(run(&mut t, w, &[el(100, 10, EX | FI)]), NOT_GRANTED);
            assert_eq!(run(&mut t, w, &[el(102, 0, EX | FI)]), NOT_GRANTED);
            assert_eq!(run(&mut t, w, &[el(102, 5, EX | FI)]), NOT_GRANTED);
        }
    }

    #[test]
    fn lock_sequence_fields() {
        assert_eq!(
            LockSequence::parse(0x11),
            LockSequence {
                index: 1,
                number: 1
            }
        );
        assert_eq!(
            LockSequence::parse(0x402),
            LockSequence {
                index: 64,
                number: 2
            }
        );
        assert_eq!(
            LockSequence::parse(0x411),
            LockSequence {
                index: 65,
                number: 1
            }
        );
        assert_eq!(
            LockSequence::parse(0x1),
            LockSequence {
                index: 0,
                number: 1
            }
        );
    }

    #[test]
    fn resiliency_request() {
        let req = |t: u32| {
            let mut v = t.to_le_bytes().to_vec();
            v.extend_from_slice(&[0; 4]);
            resiliency_timeout(&v)
        };
        assert_eq!(req(1000), Ok(1000));
        assert_eq!(req(0), Ok(DEFAULT_RESILIENCY_TIMEOUT_MS));
        assert_eq!(
            req(MAX_RESILIENCY_TIMEOUT_MS),
            Ok(MAX_RESILIENCY_TIMEOUT_MS)
        );
        assert_eq!(
            req(MAX_RESILIENCY_TIMEOUT_MS + 1),
            Err(status::INVALID_PARAMETER)
        );
        assert_eq!(
            resiliency_timeout(&[0xE8, 3, 0, 0]),
            Err(status::INVALID_PARAMETER)
        );
    }
    #[test]
    fn lock_sequence_replays() {
        let mut t = FileTable::default();
        let seq = |v: u32| LockSequence::parse(v);
        let lock = [el(100, 100, EX | FI)];
        let unlock = [el(100, 100, UN)];
        // Not resilient (or 2.0.2): sequences are ignored, a repeated lock conflicts.
        assert_eq!(
            sequence_to_verify(crate::smb::DIALECT_210, &t, &K, who(1), seq(0x11)),
            None
        );
        // SMB 3.x (multichannel): every open verifies.
        assert_eq!(
            sequence_to_verify(crate::smb::DIALECT_300, &t, &K, who(1), seq(0x11)),
            Some(seq(0x11))
        );
        assert_eq!(process(&mut t, &K, who(1), &lock, None), OK);
        assert_eq!(process(&mut t, &K, who(1), &lock, None), NOT_GRANTED);
        assert_eq!(process(&mut t, &K, who(1), &unlock, None), OK);
        t.lock_state_mut(&K, who(1)).resiliency_timeout = Some(1000);
        assert_eq!(
            sequence_to_verify(DIALECT_202, &t, &K, who(1), seq(0x11)),
            None
        );
        let s = |v| sequence_to_verify(crate::smb::DIALECT_210, &t, &K, who(1), seq(v));
        assert_eq!(s(0x11), Some(seq(0x11)));
        let (s11, s12, s21, s01) = (s(0x11), s(0x12), s(0x21), s(0x01));
        // Index 0 is never checked.
        assert_eq!(process(&mut t, &K, who(1), &lock, s01), OK);
        assert_eq!(process(&mut t, &K, who(1), &lock, s01), NOT_GRANTED);
        assert_eq!(process(&mut t, &K, who(1), &unlock, s01), OK);
        // A replay of a successful request, lock or unlock, changes nothing.
        assert_eq!(process(&mut t, &K, who(1), &lock, s11), OK);
        assert_eq!(process(&mut t, &K, who(1), &lock, s11), OK);
        assert_eq!(process(&mut t, &K, who(1), &unlock, s11), OK);
        assert_eq!(process(&mut t, &K, who(2), &lock, None), NOT_GRANTED);
        // Another number or index is processed; a failure records nothing.
        assert_eq!(process(&mut t, &K, who(1), &lock, s12), NOT_GRANTED);
        assert_eq!(process(&mut t, &K, who(1), &lock, s12), NOT_GRANTED);
        assert_eq!(process(&mut t, &K, who(1), &lock, s21), NOT_GRANTED);
        // Entry 1 was invalidated by number 2: number 1 is no replay any more.
        assert_eq!(process(&mut t, &K, who(1), &lock, s11), NOT_GRANTED);
        assert_eq!(process(&mut t, &K, who(1), &unlock, s12), OK);
        assert_eq!(process(&mut t, &K, who(1), &unlock, s12), OK);
        assert_eq!(process(&mut t, &K, who(1), &lock, s12), OK);
        assert_eq!(process(&mut t, &K, who(2), &lock, None), OK);
    }
    // End to end through the protocol core: LOCK and IOCTL requests on real opens.
    mod wire {
        use super::super::*;
        use crate::smb::testkit::{CreateArgs, Kit};
        use crate::wire::{Command, PutLe, HEADER_LEN};

        fn lock_req(fid: FileId, sequence: u32, offset: u64, length: u64, flags: u32) -> Vec<u8> {
            let mut b = Vec::new();
            b.put_u16(48);
            b.put_u16(1);
            b.put_u32(sequence);
            fid.put(&mut b);
            b.put_u64(offset);
            b.put_u64(length);
            b.put_u32(flags);
            b.put_u32(0);
            b
        }

        fn resiliency_req(fid: FileId, timeout: u32) -> Vec<u8> {
            let mut b = Vec::new();
            b.put_u16(57);
            b.put_u16(0);
            b.put_u32(FSCTL_LMR_REQUEST_RESILIENCY);
            fid.put(&mut b);
            b.put_u32((HEADER_LEN + 56) as u32); // InputOffset
            b.put_u32(8); // InputCount
            b.put_u32(0); // MaxInputResponse
            b.put_u32(0); // OutputOffset
            b.put_u32(0); // OutputCount
            b.put_u32(0); // MaxOutputResponse
            b.put_u32(1); // Flags: SMB2_0_IOCTL_IS_FSCTL
            b.put_u32(0); // Reserved2
            b.put_u32(timeout);
            b.put_u32(0);
            b
        }

        const EXF: u32 = LOCKFLAG_EXCLUSIVE | LOCKFLAG_FAIL_IMMEDIATELY;

        #[test]
        fn resiliency_turns_on_replay_detection() {
            let kit = Kit::new();
            let mut c = kit.client();
            // SMB 2.1: only resilient (or durable) opens verify lock sequences; on 3.x every
            // open does (multichannel).
            c.conn.neg.dialect = crate::smb::DIALECT_210;
            let f = c.create(&CreateArgs::new("r.txt")).expect("create").fid;
            let lock = |c: &mut crate::smb::testkit::Client, seq: u32, flags: u32| {
                c.request(Command::Lock, &lock_req(f, seq, 100, 100, flags))
                    .0
            };
            assert_eq!(lock(&mut c, 0x11, EXF), status::SUCCESS);
            assert_eq!(lock(&mut c, 0x11, EXF), status::LOCK_NOT_GRANTED);
            assert_eq!(lock(&mut c, 0x11, LOCKFLAG_UNLOCK), status::SUCCESS);
            assert_eq!(
                c.request(Command::Ioctl, &resiliency_req(f, 1000)).0,
                status::SUCCESS
            );
            assert_eq!(lock(&mut c, 0x11, EXF), status::SUCCESS);
            assert_eq!(lock(&mut c, 0x11, EXF), status::SUCCESS);
            assert_eq!(lock(&mut c, 0x11, LOCKFLAG_UNLOCK), status::SUCCESS);
            assert_eq!(lock(&mut c, 0x12, EXF), status::LOCK_NOT_GRANTED);
            assert_eq!(lock(&mut c, 0x12, LOCKFLAG_UNLOCK), status::SUCCESS);
            assert_eq!(lock(&mut c, 0x12, LOCKFLAG_UNLOCK), status::SUCCESS);
            assert_eq!(
                lock(&mut c, 0x13, LOCKFLAG_UNLOCK),
                status::RANGE_NOT_LOCKED
            );
            // Too long a timeout, a short buffer, and 2.0.2 are refused.
            assert_eq!(
                c.request(
                    Command::Ioctl,
                    &resiliency_req(f, MAX_RESILIENCY_TIMEOUT_MS + 1)
                )
                .0,
                status::INVALID_PARAMETER
            );
            c.conn.neg.dialect = DIALECT_202;
            assert_eq!(
                c.request(Command::Ioctl, &resiliency_req(f, 1000)).0,
                status::INVALID_DEVICE_REQUEST
            );
            // In 2.0.2 the sequence field is reserved: no replay detection.
            assert_eq!(lock(&mut c, 0x11, EXF), status::SUCCESS);
            assert_eq!(lock(&mut c, 0x11, EXF), status::LOCK_NOT_GRANTED);
        }

        #[test]
        fn blocking_lock_waits_until_the_range_frees() {
            let kit = Kit::new();
            let (mut a, mut b) = (kit.client(), kit.client());
            let fa = a.create(&CreateArgs::new("w.txt")).expect("create").fid;
            let fb = b.create(&CreateArgs::new("w.txt")).expect("create").fid;
            let ex = LOCKFLAG_EXCLUSIVE;
            assert_eq!(
                a.request(Command::Lock, &lock_req(fa, 0, 0, 10, ex)).0,
                status::SUCCESS
            );
            assert_eq!(
                b.request(Command::Lock, &lock_req(fb, 0, 0, 10, ex)).0,
                status::PENDING
            );
            assert_eq!(b.conn.pending.len(), 1);
            // The unlock hands the range to the waiter.
            assert_eq!(
                a.request(Command::Lock, &lock_req(fa, 0, 0, 10, LOCKFLAG_UNLOCK))
                    .0,
                status::SUCCESS
            );
            assert_eq!(
                a.request(Command::Lock, &lock_req(fa, 0, 0, 10, EXF)).0,
                status::LOCK_NOT_GRANTED
            );
            // The granted lock's pending entry goes before the next blocking lock counts.
            assert_eq!(b.conn.pending.len(), 1);
            forget_finished(&mut b.conn);
            assert!(b.conn.pending.is_empty());
            assert_eq!(
                a.request(Command::Lock, &lock_req(fa, 0, 0, 10, ex)).0,
                status::PENDING
            );
            assert_eq!(a.conn.pending.len(), 1);
            forget_finished(&mut a.conn);
            assert_eq!(a.conn.pending.len(), 1);
            // The connection that held the ranges goes: its locks go, the waiter gets one.
            drop(b);
            assert!(kit.server.lock_waiters.lock().expect("waiters").is_empty());
            // The first message `a` reads next is that lock's final response (the ECHO's
            // answer queues behind it).
            assert_eq!(
                a.request(Command::Echo, &[4, 0, 0, 0]),
                (status::SUCCESS, vec![4, 0, 0, 0])
            );
            let mut c = kit.client();
            let fc = c.create(&CreateArgs::new("w.txt")).expect("create").fid;
            assert_eq!(
                c.request(Command::Lock, &lock_req(fc, 0, 0, 10, EXF)).0,
                status::LOCK_NOT_GRANTED
            );
            // A waiter whose handle closes ends with RANGE_NOT_LOCKED (sent before the
            // CLOSE response) and holds nothing.
            assert_eq!(
                c.request(Command::Lock, &lock_req(fc, 0, 5, 1, LOCKFLAG_SHARED))
                    .0,
                status::PENDING
            );
            assert_eq!(c.close(fc), status::RANGE_NOT_LOCKED);
            assert!(c.conn.pending.is_empty());
            assert!(kit.server.lock_waiters.lock().expect("waiters").is_empty());
        }
    }
}
