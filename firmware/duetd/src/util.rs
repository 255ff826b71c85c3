//! Small helpers the core needs from the outside world: randomness and wall-clock time.
//! Kept in one place so tests and a future simulated clock have one seam.

use std::time::{SystemTime, UNIX_EPOCH};

/// Fills `buf` from the kernel's CSPRNG (getrandom(2)).
pub fn random_bytes(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let r =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if r > 0 {
            filled += r as usize;
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // getrandom cannot fail on Linux >= 3.17 once the pool is ready; fall back to
            // the clock mixed with the address so ids still differ.
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            for (i, b) in buf[filled..].iter_mut().enumerate() {
                *b = (t >> ((i % 16) * 8)) as u8 ^ (i as u8);
            }
            return;
        }
    }
}

/// Now as an NT FILETIME (100 ns since 1601-01-01).
pub fn now_filetime() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    116_444_736_000_000_000u64 + d.as_secs() * 10_000_000 + d.subsec_nanos() as u64 / 100
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds on a monotonic clock since its first use (break acknowledgment timeouts).
pub fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// Runs `f`, which may wait a while for another connection (not for a result this thread
/// has to produce), without holding up the tokio worker it is called on: request handlers
/// run on worker threads (see server.rs, Pace), and the connection waited for may be a task
/// queued on the same worker. Outside a multi-thread runtime (tests) it just runs `f`.
pub fn may_wait<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
