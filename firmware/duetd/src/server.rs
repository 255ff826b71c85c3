//! The tokio shell around the protocol core: accepts TCP connections, frames messages
//! (MS-SMB2 2.1 direct TCP), feeds them to `smb::Conn`, and writes what its outbox holds.
//!
//! Owns: sockets, tasks and connection limits. Never interprets SMB beyond the 4-byte
//! transport header.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::service::Service;
use crate::smb::{Conn, Flow, Outbox, Server};
use crate::wire::framing;

/// How long a released node keeps its client connections' sockets open (frozen) before it
/// closes them (see `connection`).
const RELEASED_LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// The read buffer capacity a connection keeps when messages are small.
const SMALL_FRAME_KEEP: usize = 128 * 1024;

/// A request that takes longer than this waited for something (the disk, a lock): work on
/// page-cached data never does, even an 8 MiB READ.
const SLOW_FRAME: std::time::Duration = std::time::Duration::from_millis(5);
/// How long a connection's batches go through `block_in_place` after a slow request.
const BLOCKING_SPELL: std::time::Duration = std::time::Duration::from_secs(1);
/// A batch whose responses came to more than this is a bulk read: the next one runs
/// through `block_in_place`, so the writer sends on the other worker meanwhile.
const BULK_OUTPUT: u64 = 4 << 20;

/// Where a connection's batches of requests run. On the tokio worker thread itself while
/// they are quick: handing the worker's core to another thread (`block_in_place`) costs a
/// thread wake and two context switches per batch, measured at a third of duetd's CPU on a
/// 64 KiB write stream and half of it on open+stat+close. A request that waits for the disk
/// would hold up every task queued on that worker while it runs there, so once one of the
/// connection's requests took longer than SLOW_FRAME, its batches run through
/// `block_in_place` for BLOCKING_SPELL (and again after each slow one). Bulk reads go
/// through it too (a batch that answered with more than BULK_OUTPUT): inline, the writer
/// woken by the responses waits on the same worker until the whole batch is read and
/// signed, where through `block_in_place` it sends them on the other worker meanwhile
/// (1 MiB READs, QD 16: ~10% faster that way; 64 KiB ones ~20% slower, so they stay inline).
#[derive(Default)]
struct Pace {
    blocking_until: Option<std::time::Instant>,
    bulk: bool,
}

impl Pace {
    /// Runs `batch`, which returns its result and its slowest request's time, and is told
    /// how many bytes of responses the batch queued (`queued` before and after).
    fn run<R>(
        &mut self,
        queued: impl Fn() -> u64,
        batch: impl FnOnce() -> (R, std::time::Duration),
    ) -> R {
        let inline = !self.bulk
            && self
                .blocking_until
                .is_none_or(|t| std::time::Instant::now() >= t);
        let before = queued();
        let (r, slowest) = if inline {
            batch()
        } else {
            tokio::task::block_in_place(batch)
        };
        self.bulk = queued().saturating_sub(before) > BULK_OUTPUT;
        if slowest > SLOW_FRAME {
            self.blocking_until = Some(std::time::Instant::now() + BLOCKING_SPELL);
        } else if inline {
            self.blocking_until = None;
        }
        r
    }
}

/// Accepts connections on `listener` until the process ends, handing each to the server
/// the node runs at that moment; while it runs none (a passive node), connections are
/// closed at once.
pub async fn serve(service: Arc<Service>, listener: TcpListener, max_connections: usize) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, "SMB service listening");
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(server) = service.current() else {
            tracing::debug!(%peer, "not serving; connection closed");
            drop(stream);
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = max_connections, "connection limit reached; refusing");
            drop(stream);
            continue;
        };
        tokio::spawn(async move {
            connection(server, stream, peer).await;
            drop(permit);
        });
    }
}

/// Oplock and lease break acknowledgment timeouts (MS-SMB2 3.3.6.1, 3.3.6.5): the core keeps
/// the deadlines; this gives the serving server the time once a second.
pub async fn timers(service: Arc<Service>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        every.tick().await;
        let Some(server) = service.current() else {
            continue;
        };
        crate::smb::oplock::tick(&server, crate::util::monotonic_ms());
        // The durable-handle scavenger (it commits to the state store: off the reactor).
        let _ = tokio::task::spawn_blocking(move || {
            crate::smb::durable::tick(&server, duet_state::unix_time_ms())
        })
        .await;
    }
}

async fn connection(server: Arc<Server>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(peer);
    let (mut rd, wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let outbox = Outbox::new(tx);
    let holds = outbox.markers();
    let recycler = outbox.recycler();
    let writer = tokio::spawn(async move {
        // What is queued goes out in one writev per batch, each message behind its 4-byte
        // transport header, straight from the buffer it was built in (no copy through a
        // user-space write buffer, no separate write for the header). Sent buffers go back
        // to the outbox's pool for the next READ responses; it is emptied when nothing was
        // sent for a while, so an idle connection holds no large buffers.
        const MAX_BATCH: usize = 64;
        const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(2);
        let mut wr = wr;
        let mut batch: Vec<Vec<u8>> = Vec::with_capacity(MAX_BATCH);
        loop {
            let next = if recycler.holds_any() {
                match tokio::time::timeout(POOL_IDLE, rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        recycler.clear();
                        rx.recv().await
                    }
                }
            } else {
                rx.recv().await
            };
            let Some(mut msg) = next else { break };
            // Gather what is already queued. An empty message is a marker: what follows
            // waits for state-store commits (durable handles), which the reader does not
            // wait for, so it goes on with the next requests meanwhile.
            loop {
                if msg.is_empty() {
                    if send_batch(&mut wr, &mut batch, &recycler).await.is_err() {
                        return;
                    }
                    if let Err(e) = tokio::task::block_in_place(|| holds.wait()) {
                        tracing::error!(%peer, error = %e, "state store commit failed; closing the connection");
                        let _ = wr.shutdown().await;
                        return;
                    }
                } else {
                    batch.push(msg);
                    if batch.len() == MAX_BATCH
                        && send_batch(&mut wr, &mut batch, &recycler).await.is_err()
                    {
                        return;
                    }
                }
                match rx.try_recv() {
                    Ok(m) => msg = m,
                    Err(_) => break,
                }
            }
            if send_batch(&mut wr, &mut batch, &recycler).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    /// Writes `batch` (each message framed) with as few writev calls as the socket
    /// takes, then gives the buffers back to the pool.
    async fn send_batch(
        wr: &mut tokio::net::tcp::OwnedWriteHalf,
        batch: &mut Vec<Vec<u8>>,
        recycler: &crate::smb::Recycler,
    ) -> std::io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let heads: Vec<[u8; 4]> = batch.iter().map(|m| framing::encode_len(m.len())).collect();
        let mut slices: Vec<std::io::IoSlice<'_>> = heads
            .iter()
            .zip(batch.iter())
            .flat_map(|(h, m)| [std::io::IoSlice::new(h), std::io::IoSlice::new(m)])
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = wr.write_vectored(rest).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            std::io::IoSlice::advance_slices(&mut rest, n);
        }
        drop(slices);
        for m in batch.drain(..) {
            recycler.give(m);
        }
        Ok(())
    }
    tracing::debug!(%peer, "connection open");
    let mut conn = Conn::new(server, peer, local, outbox);
    // Frames are read into `buf` as they come, as many as the socket holds at once, and
    // every complete one is handled in one go (see Pace for where that runs): paid per
    // frame, a thread hand-off cost a tenth of duetd's CPU on a 64 KiB write stream. A
    // frame larger than LARGE is read exactly to its end, so what a batch leaves behind is
    // at most a partial frame smaller than that, moved to the front of the buffer. Reads take up to SMALL_READ bytes while
    // frames are small, GREEDY once they are not (a 64 KiB write stream: ~15 per batch).
    const SMALL_READ: usize = 16 * 1024;
    const LARGE: usize = 256 * 1024;
    const GREEDY: usize = 1024 * 1024;
    let mut buf: Vec<u8> = Vec::new();
    let mut last_frame = 0usize;
    let mailbox = conn.mailbox();
    let mut pace = Pace::default();
    let queued = conn.outbox.queued_bytes();
    'conn: loop {
        // The complete frames at the front of `buf`.
        let mut end = 0;
        let mut bad = false;
        while let Some(hdr) = buf.get(end..end + 4) {
            let hdr: [u8; 4] = hdr.try_into().unwrap_or_default();
            let Some(len) = framing::decode_len(hdr) else {
                tracing::warn!(%peer, "not a direct-TCP SMB frame; closing");
                bad = true;
                break;
            };
            if !(4..=framing::MAX_MESSAGE).contains(&len) {
                tracing::warn!(%peer, len, "message size out of bounds; closing");
                bad = true;
                break;
            }
            if buf.len() - end - 4 < len {
                break;
            }
            end += 4 + len;
            last_frame = len;
        }
        if end > 0 {
            let frames = &buf[..end];
            let flow = pace.run(
                || queued.load(Ordering::Relaxed),
                || {
                    let mut off = 0;
                    let mut slowest = std::time::Duration::ZERO;
                    let mut t = std::time::Instant::now();
                    while off < frames.len() {
                        let hdr: [u8; 4] = frames[off..off + 4].try_into().unwrap_or_default();
                        let len = framing::decode_len(hdr).unwrap_or_default();
                        let flow = conn.handle_frame(&frames[off + 4..off + 4 + len]);
                        let now = std::time::Instant::now();
                        slowest = slowest.max(now - t);
                        t = now;
                        if flow == Flow::Close {
                            return (Flow::Close, slowest);
                        }
                        off += 4 + len;
                    }
                    (Flow::Continue, slowest)
                },
            );
            if flow == Flow::Close {
                break;
            }
            buf.drain(..end);
        }
        if bad {
            break;
        }
        // What the next frame needs in all, when its length is known.
        let need = buf
            .get(..4)
            .and_then(|h| framing::decode_len(h.try_into().unwrap_or_default()))
            .map(|len| 4 + len);
        // The buffer keeps its size while large messages keep coming and shrinks after a
        // small one, so an idle connection holds little memory and a streaming one does
        // not reallocate per message.
        if buf.capacity() > SMALL_FRAME_KEEP
            && last_frame <= SMALL_READ
            && need.is_none_or(|n| n <= SMALL_FRAME_KEEP)
        {
            buf.shrink_to(SMALL_READ);
        }
        // Between reads, also act on what other connections post (e.g. a reconnect that
        // logs off one of our sessions). Only readiness is awaited here, so no bytes are
        // lost when the mailbox wins.
        tokio::select! {
            biased;
            r = rd.readable() => {
                if r.is_err() {
                    break;
                }
            }
            _ = mailbox.wait() => {
                if tokio::task::block_in_place(|| conn.handle_events()) == Flow::Close {
                    break;
                }
                continue;
            }
        }
        match need {
            Some(n) if n > LARGE => {
                // A large frame: read exactly the rest of it, straight into spare capacity.
                let rest = n - buf.len();
                buf.reserve_exact(rest);
                match (&mut rd).take(rest as u64).read_to_end(&mut buf).await {
                    Ok(got) if got == rest => {}
                    _ => break 'conn,
                }
            }
            None if last_frame > LARGE => {
                // Large frames stream in: read the next one's header alone (a greedy read
                // would take part of the frame after it, to be moved again).
                let mut hdr = [0u8; 4];
                let want = 4 - buf.len();
                match rd.try_read(&mut hdr[..want]) {
                    Ok(0) => break,
                    Ok(n) => buf.extend_from_slice(&hdr[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(_) => break,
                }
            }
            _ => {
                // Small frames: whatever the socket holds, up to the spare room. Readiness
                // can be stale (the last read took exactly what was there): this read does
                // not wait, so a post to the mailbox is not left waiting behind a read that
                // blocks until the client's next request.
                let room = if last_frame > SMALL_READ {
                    GREEDY
                } else {
                    SMALL_READ
                }
                .max(need.map_or(0, |n| n - buf.len()));
                if buf.capacity() - buf.len() < room / 2 {
                    buf.reserve_exact(room);
                }
                match rd.try_read_buf(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(_) => break,
                }
            }
        }
    }
    // The node released the service: this connection takes no more requests, but its
    // socket stays open a moment. The partner's tickle ACK then ends it for the client as
    // soon as the VIP answers there (a reconnect goes straight to the partner); closing at
    // once would send the client's next SYN to this node's MAC before the partner's
    // gratuitous ARP is in, and cost it a SYN retransmission.
    if conn
        .server
        .released
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        tokio::time::sleep(RELEASED_LINGER).await;
    }
    tokio::task::block_in_place(|| conn.teardown());
    drop(conn);
    // Async completions held elsewhere keep a sender alive; do not wait on them forever.
    if tokio::time::timeout(std::time::Duration::from_secs(5), writer)
        .await
        .is_err()
    {
        tracing::debug!(%peer, "writer still busy at close");
    }
    tracing::debug!(%peer, "connection closed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    /// Runs `f` as a task on a runtime with one worker thread (block_on itself would run
    /// it on the calling thread, beside the worker).
    fn on_the_one_worker<F: std::future::Future<Output = ()> + Send + 'static>(f: F) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { tokio::spawn(f).await.unwrap() });
    }

    /// Spawns a task that sets a flag, then waits up to `limit` on this thread for it:
    /// true if the task ran meanwhile, which it can only when this thread has given up the
    /// runtime's one worker.
    fn other_task_runs_meanwhile(limit: Duration) -> bool {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        tokio::spawn(async move { f.store(true, Ordering::SeqCst) });
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if flag.load(Ordering::SeqCst) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn quick_batches_run_inline_and_a_slow_one_moves_the_next_off_the_worker() {
        on_the_one_worker(async {
            let mut pace = Pace::default();
            // Inline: the worker is busy with this batch, the spawned task waits.
            let ran = pace.run(
                || 0,
                || {
                    (
                        other_task_runs_meanwhile(Duration::from_millis(100)),
                        SLOW_FRAME / 2,
                    )
                },
            );
            assert!(!ran, "a quick connection's batch runs on the worker itself");
            assert!(pace.blocking_until.is_none());
            // Let the task spawned above finish before the next check.
            tokio::task::yield_now().await;
            // A batch whose slowest request took longer than SLOW_FRAME...
            pace.run(|| 0, || ((), SLOW_FRAME * 2));
            assert!(pace.blocking_until.is_some());
            // ...sends the next ones through block_in_place: other tasks go on meanwhile.
            let ran = pace.run(
                || 0,
                || {
                    (
                        other_task_runs_meanwhile(Duration::from_secs(5)),
                        Duration::ZERO,
                    )
                },
            );
            assert!(
                ran,
                "after a slow request the batch must not hold the worker"
            );
            // The spell ends; the next quick batch is inline again.
            pace.blocking_until = Some(Instant::now());
            pace.run(|| 0, || ((), Duration::ZERO));
            assert!(pace.blocking_until.is_none());
            // A batch that answered with more than BULK_OUTPUT (a bulk read)...
            let out = std::sync::atomic::AtomicU64::new(0);
            pace.run(
                || out.load(Ordering::SeqCst),
                || {
                    out.fetch_add(BULK_OUTPUT + 1, Ordering::SeqCst);
                    ((), Duration::ZERO)
                },
            );
            // ...sends the next one through block_in_place, so the writer runs meanwhile.
            let ran = pace.run(
                || 0,
                || {
                    (
                        other_task_runs_meanwhile(Duration::from_secs(5)),
                        Duration::ZERO,
                    )
                },
            );
            assert!(ran, "a bulk read's next batch must not hold the worker");
            // Small output again: back inline.
            tokio::task::yield_now().await;
            let ran = pace.run(
                || 0,
                || {
                    (
                        other_task_runs_meanwhile(Duration::from_millis(100)),
                        Duration::ZERO,
                    )
                },
            );
            assert!(!ran);
        });
    }

    #[test]
    fn may_wait_lets_the_awaited_task_run_on_the_same_worker() {
        on_the_one_worker(async {
            let ran = crate::util::may_wait(|| other_task_runs_meanwhile(Duration::from_secs(5)));
            assert!(ran);
        });
        // Outside a runtime it just runs the closure.
        assert_eq!(crate::util::may_wait(|| 7), 7);
    }
}
