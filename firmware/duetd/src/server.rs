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

use crate::smb::{Conn, Flow, Outbox, Server};
use crate::wire::framing;

/// Accepts connections on `listener` until the process ends.
pub async fn serve(server: Arc<Server>, listener: TcpListener, max_connections: usize) {
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
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = max_connections, "connection limit reached; refusing");
            drop(stream);
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            connection(server, stream, peer).await;
            drop(permit);
        });
    }
}

async fn connection(server: Arc<Server>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(peer);
    let (mut rd, wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        let mut w = BufWriter::with_capacity(256 * 1024, wr);
        while let Some(msg) = rx.recv().await {
            if w.write_all(&framing::encode_len(msg.len())).await.is_err()
                || w.write_all(&msg).await.is_err()
            {
                return;
            }
            // Coalesce what is already queued, then flush.
            while let Ok(msg) = rx.try_recv() {
                if w.write_all(&framing::encode_len(msg.len())).await.is_err()
                    || w.write_all(&msg).await.is_err()
                {
                    return;
                }
            }
            if w.flush().await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    });
    tracing::debug!(%peer, "connection open");
    let mut conn = Conn::new(server, peer, local, Outbox::new(tx));
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
        let mut hdr = [0u8; 4];
        if rd.read_exact(&mut hdr).await.is_err() {
            break;
        }
        let Some(len) = framing::decode_len(hdr) else {
            tracing::warn!(%peer, "not a direct-TCP SMB frame; closing");
            break;
        };
        if !(4..=framing::MAX_MESSAGE).contains(&len) {
            tracing::warn!(%peer, len, "message size out of bounds; closing");
            break;
        }
        buf.resize(len, 0);
        if rd.read_exact(&mut buf).await.is_err() {
            break;
        }
        let flow = tokio::task::block_in_place(|| conn.handle_frame(&buf));
        if flow == Flow::Close {
            break;
        }
        if buf.capacity() > 1024 * 1024 {
            buf = Vec::new();
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
