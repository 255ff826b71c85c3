//! The tokio shell around the protocol core: accepts TCP connections, frames messages
//! (MS-SMB2 2.1 direct TCP), feeds them to `smb::Conn`, and writes what its outbox holds.
//!
//! Owns: sockets, tasks and connection limits. Never interprets SMB beyond the 4-byte
//! transport header.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::service::Service;
use crate::smb::{Conn, Flow, Outbox, Server};
use crate::wire::framing;

/// The read buffer capacity a connection keeps when messages are small.
const SMALL_FRAME_KEEP: usize = 128 * 1024;

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
    let writer = tokio::spawn(async move {
        let mut w = BufWriter::with_capacity(256 * 1024, wr);
        while let Some(mut msg) = rx.recv().await {
            // Coalesce what is already queued, then flush. An empty message is a marker:
            // what follows waits for state-store commits (durable handles), which the
            // reader does not wait for, so it goes on with the next requests meanwhile.
            loop {
                if msg.is_empty() {
                    if w.flush().await.is_err() {
                        return;
                    }
                    if let Err(e) = tokio::task::block_in_place(|| holds.wait()) {
                        tracing::error!(%peer, error = %e, "state store commit failed; closing the connection");
                        let _ = w.shutdown().await;
                        return;
                    }
                } else if w.write_all(&framing::encode_len(msg.len())).await.is_err()
                    || w.write_all(&msg).await.is_err()
                {
                    return;
                }
                match rx.try_recv() {
                    Ok(m) => msg = m,
                    Err(_) => break,
                }
            }
            if w.flush().await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    });
    tracing::debug!(%peer, "connection open");
    let mut conn = Conn::new(server, peer, local, outbox);
    let mut buf = Vec::new();
    let mailbox = conn.mailbox();
    loop {
        // Between frames, also act on what other connections post (e.g. a reconnect that
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
        // Readiness can be stale (the last read took exactly what was there): try the read
        // without waiting, so a post to the mailbox is not left waiting behind a read that
        // blocks until the client's next request.
        let mut hdr = [0u8; 4];
        match rd.try_read(&mut hdr) {
            Ok(0) => break,
            Ok(n) => {
                if rd.read_exact(&mut hdr[n..]).await.is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
        let Some(len) = framing::decode_len(hdr) else {
            tracing::warn!(%peer, "not a direct-TCP SMB frame; closing");
            break;
        };
        if !(4..=framing::MAX_MESSAGE).contains(&len) {
            tracing::warn!(%peer, len, "message size out of bounds; closing");
            break;
        }
        // Read into spare capacity (no zero-fill). The buffer keeps its size while large
        // messages keep coming and shrinks after a small one, so an idle connection holds
        // little memory and a streaming one does not reallocate per message.
        if buf.capacity() > SMALL_FRAME_KEEP && len <= SMALL_FRAME_KEEP {
            buf = Vec::with_capacity(SMALL_FRAME_KEEP);
        }
        buf.clear();
        buf.reserve(len);
        match (&mut rd).take(len as u64).read_to_end(&mut buf).await {
            Ok(n) if n == len => {}
            _ => break,
        }
        let flow = tokio::task::block_in_place(|| conn.handle_frame(&buf));
        if flow == Flow::Close {
            break;
        }
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
