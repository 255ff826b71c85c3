//! Group commit: one commit thread per store that puts every change submitted while it was
//! busy into its next write transaction, so concurrent callers share one disk sync.
//!
//! Owns the submission queue, the commit thread and the tickets callers wait on. A caller
//! submits an operation and blocks (or holds a [`Ticket`]) until the transaction that holds it
//! is durable (redb `Durability::Immediate`: synced to disk before `commit` returns). Each
//! operation is all-or-nothing: it is checked against the transaction's current state before
//! it writes anything, so one refused operation (e.g. removing a record that does not exist)
//! fails alone; a storage failure fails the whole transaction and every operation in it.
//! Must never report an operation as committed before its transaction's commit returned,
//! and never leave a waiter blocked when the thread stops (dropped store, panic).

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use redb::Durability;

use crate::model::{ChangeKind, DurableOpen};
use crate::records::{ChangeV1, DurableOpenV1};
use crate::store::{
    all_by_id, check_removals, commit_change, to_store_error, validated_change, Fail, Shared,
    Tables,
};
use crate::{Store, StoreError};

/// Most operations put into one transaction; the rest wait for the next one.
const MAX_OPS_PER_TRANSACTION: usize = 4096;

/// One unit of work for the commit thread.
pub(crate) enum Op {
    /// Local changes, applied in order and atomically; removals must find their record.
    Changes(Vec<ChangeV1>),
    /// Removes every disconnected durable open whose timeout has run out.
    ExpireOpens { now_ms: u64 },
    /// Marks every connected durable open as disconnected at `now_ms`.
    DisconnectOpens { now_ms: u64 },
    /// Nothing: completes once everything queued before it is committed.
    Barrier,
}

/// What a committed [`Op`] did.
pub(crate) enum Outcome {
    /// Sequence numbers of the changes, in order.
    Seqs(Vec<u64>),
    /// The durable opens removed or changed, in persistent id order.
    Opens(Vec<DurableOpen>),
}

/// Why an operation did not commit.
enum OpFail {
    /// Refused before it wrote anything: the rest of the transaction goes on.
    Rejected(Fail),
    /// Failed while writing: the transaction is abandoned.
    Fatal(Fail),
}

#[derive(Default)]
pub(crate) struct Queue {
    pending: VecDeque<Pending>,
    /// The store is being dropped: finish the queue, then exit.
    shutdown: bool,
    /// The commit thread has exited: refuse new work.
    stopped: bool,
}

/// Where the result of one operation is delivered.
struct Slot {
    result: Mutex<Option<Result<Outcome, StoreError>>>,
    ready: Condvar,
}

impl Slot {
    fn new() -> Arc<Slot> {
        Arc::new(Slot {
            result: Mutex::new(None),
            ready: Condvar::new(),
        })
    }

    fn done(result: Result<Outcome, StoreError>) -> Arc<Slot> {
        let slot = Slot::new();
        slot.fill(result);
        slot
    }

    fn fill(&self, result: Result<Outcome, StoreError>) {
        *lock(&self.result) = Some(result);
        self.ready.notify_all();
    }

    fn wait(&self) -> Result<Outcome, StoreError> {
        let mut guard = lock(&self.result);
        loop {
            if let Some(result) = guard.take() {
                return result;
            }
            guard = self
                .ready
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A queued operation. Dropped without a result (the commit thread panicked or stopped), it
/// fails its waiter rather than leaving it blocked.
struct Pending {
    op: Op,
    slot: Arc<Slot>,
    path: Arc<Path>,
    completed: bool,
}

impl Pending {
    fn complete(mut self, result: Result<Outcome, StoreError>) {
        self.slot.fill(result);
        self.completed = true;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.completed {
            self.slot.fill(Err(stopped(&self.path)));
        }
    }
}

fn stopped(path: &Path) -> StoreError {
    StoreError::Storage {
        path: path.to_owned(),
        detail: "the store's commit thread has stopped; the change was not committed".into(),
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A change submitted with [`Store::submit_nowait`]: wait on it for the change's sequence
/// number once it is durable.
#[must_use = "a ticket does not show whether its change was committed until it is waited on"]
pub struct Ticket {
    slot: Arc<Slot>,
    /// Set for a queued change: in a pair, `wait` also waits for the partner's ack.
    shared: Option<Arc<Shared>>,
}

impl Ticket {
    /// Blocks until the transaction holding the change is durable, and returns the change's
    /// sequence number (or why it was not committed).
    ///
    /// In a pair that mirrors synchronously ([`Store::require_partner_acks`]) it returns only
    /// once the partner has acknowledged the change as well.
    pub fn wait(self) -> Result<u64, StoreError> {
        let seq = match self.slot.wait()? {
            Outcome::Seqs(seqs) => seqs.last().copied().ok_or_else(unreachable_outcome)?,
            Outcome::Opens(_) => return Err(unreachable_outcome()),
        };
        if let Some(shared) = &self.shared {
            shared.wait_partner_ack(seq)?;
        }
        Ok(seq)
    }

    /// Whether the outcome is known: [`Ticket::wait`] would not block.
    pub fn is_done(&self) -> bool {
        lock(&self.slot.result).is_some()
    }
}

fn unreachable_outcome() -> StoreError {
    StoreError::Storage {
        path: Default::default(),
        detail: "internal error: a ticket received the outcome of another operation".into(),
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("done", &self.is_done())
            .finish()
    }
}

/// Counters of the group commit since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Write transactions committed by the commit thread (each one disk sync).
    pub transactions: u64,
    /// Operations committed in them (a [`Store::commit_batch`] counts as one).
    pub operations: u64,
}

pub(crate) fn spawn(shared: Arc<Shared>) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("duet-state-commit".into())
        .spawn(move || run(&shared))
}

/// Asks the commit thread to finish the queue and exit.
pub(crate) fn shut_down(shared: &Shared) {
    lock(&shared.queue).shutdown = true;
    shared.wake.notify_all();
}

/// Marks the queue stopped when the commit thread exits, even by panic, and fails what is
/// still queued.
struct StopGuard<'a>(&'a Shared);

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        let left = {
            let mut q = lock(&self.0.queue);
            q.stopped = true;
            std::mem::take(&mut q.pending)
        };
        drop(left);
    }
}

fn run(shared: &Shared) {
    let _guard = StopGuard(shared);
    loop {
        let batch: Vec<Pending> = {
            let mut q = lock(&shared.queue);
            loop {
                if !q.pending.is_empty() {
                    break;
                }
                if q.shutdown {
                    return;
                }
                q = shared.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
            let n = q.pending.len().min(MAX_OPS_PER_TRANSACTION);
            q.pending.drain(..n).collect()
        };
        commit(shared, batch);
    }
}

/// Runs a batch in one write transaction and delivers every result.
fn commit(shared: &Shared, batch: Vec<Pending>) {
    let mut results: Vec<Result<Outcome, Fail>> = Vec::with_capacity(batch.len());
    let mut run = || -> Result<(), Fail> {
        let mut tx = shared.db.begin_write()?;
        // redb's default, stated because the whole design rests on it: commit() returns
        // only once the transaction is on disk.
        tx.set_durability(Durability::Immediate)?;
        let mut committed_any = false;
        {
            let mut t = Tables::open(&tx)?;
            for p in &batch {
                match run_op(&mut t, &p.op) {
                    Ok(outcome) => {
                        committed_any = true;
                        results.push(Ok(outcome));
                    }
                    Err(OpFail::Rejected(fail)) => results.push(Err(fail)),
                    Err(OpFail::Fatal(fail)) => return Err(fail),
                }
            }
        }
        if committed_any {
            tx.commit()?;
            shared.committed();
        } else {
            tx.abort()?;
        }
        Ok(())
    };
    match run() {
        Ok(()) => {
            let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
            if ok > 0 {
                shared.transactions.fetch_add(1, Ordering::Relaxed);
                shared.operations.fetch_add(ok, Ordering::Relaxed);
            }
            for (p, result) in batch.into_iter().zip(results) {
                p.complete(result.map_err(|f| to_store_error(&shared.path, f)));
            }
        }
        Err(fail) => {
            let err = to_store_error(&shared.path, fail);
            for p in batch {
                p.complete(Err(err.duplicate()));
            }
        }
    }
}

fn run_op(t: &mut Tables, op: &Op) -> Result<Outcome, OpFail> {
    match op {
        Op::Barrier => Ok(Outcome::Seqs(Vec::new())),
        Op::Changes(changes) => {
            check_removals(t, changes).map_err(OpFail::Rejected)?;
            let mut seqs = Vec::with_capacity(changes.len());
            for change in changes {
                seqs.push(commit_change(t, change).map_err(OpFail::Fatal)?);
            }
            Ok(Outcome::Seqs(seqs))
        }
        Op::ExpireOpens { now_ms } => {
            let opens: Vec<DurableOpenV1> =
                all_by_id(&t.opens, "durable_opens").map_err(OpFail::Rejected)?;
            let expired: Vec<DurableOpen> = opens
                .into_iter()
                .map(DurableOpen::from)
                .filter(|o| o.is_expired(*now_ms))
                .collect();
            for open in &expired {
                let change = ChangeV1::DurableOpenRemoved {
                    persistent_id: open.persistent_id,
                };
                commit_change(t, &change).map_err(OpFail::Fatal)?;
            }
            Ok(Outcome::Opens(expired))
        }
        Op::DisconnectOpens { now_ms } => {
            let opens: Vec<DurableOpenV1> =
                all_by_id(&t.opens, "durable_opens").map_err(OpFail::Rejected)?;
            let mut changed = Vec::new();
            for mut open in opens {
                if open.disconnected_at_ms.is_none() {
                    open.disconnected_at_ms = Some(*now_ms);
                    commit_change(t, &ChangeV1::DurableOpenPut(Box::new(open.clone())))
                        .map_err(OpFail::Fatal)?;
                    changed.push(open.into());
                }
            }
            Ok(Outcome::Opens(changed))
        }
    }
}

impl Store {
    /// Waits until every change queued before this call is committed (or failed), whether
    /// or not local writes are fenced meanwhile. Does not wait for the partner.
    pub fn drain_commits(&self) -> Result<(), StoreError> {
        self.enqueue(Op::Barrier).wait().map(drop)
    }

    /// Queues `op` for the commit thread; the returned slot receives its outcome.
    fn enqueue(&self, op: Op) -> Arc<Slot> {
        let slot = Slot::new();
        if !matches!(op, Op::Barrier) {
            if let Err(e) = self.shared.check_fence() {
                slot.fill(Err(e));
                return slot;
            }
        }
        let mut q = lock(&self.shared.queue);
        if q.stopped {
            drop(q);
            slot.fill(Err(stopped(&self.shared.path)));
            return slot;
        }
        q.pending.push_back(Pending {
            op,
            slot: Arc::clone(&slot),
            path: Arc::clone(&self.shared.path),
            completed: false,
        });
        drop(q);
        self.shared.wake.notify_one();
        slot
    }

    /// Runs `op` through the group commit and waits for its outcome.
    pub(crate) fn run_op(&self, op: Op) -> Result<Outcome, StoreError> {
        self.enqueue(op).wait()
    }

    /// Commits one change and returns its sequence number once it is durable. Blocks the
    /// calling thread (call it from a worker thread, not an async task); concurrent callers
    /// share one transaction and one disk sync.
    ///
    /// A put inserts or replaces its record (no "already exists" check: that is what
    /// [`Store::add_user`] and [`Store::add_share`] are for); a removal fails with
    /// [`StoreError::NotFound`] if its record does not exist. The change is validated as
    /// strictly as [`Store::apply_change`] validates a partner's.
    pub fn submit(&self, change: &ChangeKind) -> Result<u64, StoreError> {
        self.submit_nowait(change).wait()
    }

    /// [`Store::submit`] without blocking: the change is queued for the next transaction
    /// and the [`Ticket`] tells when it is durable. A change that fails validation gives a
    /// ticket that is already done with the error.
    pub fn submit_nowait(&self, change: &ChangeKind) -> Ticket {
        match validated_change(change) {
            Ok(record) => Ticket {
                slot: self.enqueue(Op::Changes(vec![record])),
                shared: Some(Arc::clone(&self.shared)),
            },
            Err(e) => Ticket {
                slot: Slot::done(Err(e)),
                shared: None,
            },
        }
    }

    /// Commits `changes` atomically (all or none), in order, with consecutive sequence
    /// numbers, sharing a transaction with concurrent submissions. Returns the sequence
    /// numbers. Rules as for [`Store::submit`]; a removal may remove a record put earlier in
    /// the same batch.
    pub fn commit_batch(&self, changes: &[ChangeKind]) -> Result<Vec<u64>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let records = changes
            .iter()
            .map(validated_change)
            .collect::<Result<Vec<_>, _>>()?;
        match self.run_op(Op::Changes(records))? {
            Outcome::Seqs(seqs) => {
                if let Some(last) = seqs.last() {
                    self.shared.wait_partner_ack(*last)?;
                }
                Ok(seqs)
            }
            Outcome::Opens(_) => Err(unreachable_outcome()),
        }
    }

    /// Counters of the group commit (for metrics and benchmarks).
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            transactions: self.shared.transactions.load(Ordering::Relaxed),
            operations: self.shared.operations.load(Ordering::Relaxed),
        }
    }
}
