//! The kernel's share of moving a file over loopback TCP, with no SMB at all: what any
//! server that copies through user space pays on this machine before it parses, signs
//! or answers anything. Measured once per run next to the sequential workloads, so the
//! servers' CPU per GiB can be read against it.
//!
//! - read floor: pread 1 MiB pieces of a page-cached file and write each to a loopback
//!   TCP socket (a thread of ours reads the other end, as the client would): the CPU of
//!   the sending thread, which is also billed the loopback's receive processing.
//! - write floor: recv 1 MiB pieces from a loopback TCP socket (a thread of ours
//!   sends) and pwrite them into a new file: the CPU of the receiving thread.
//! - sendfile: the read floor with sendfile(2) instead of pread + write, for the record
//!   (zero-copy on a NIC; on loopback the receiver copies out of the page cache pages).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::Error;

const PIECE: usize = 1 << 20;

/// CPU seconds per GiB of each floor, medians over `runs`.
#[derive(Debug, Clone, Default)]
pub struct Floor {
    pub read: f64,
    pub write: f64,
    pub sendfile: f64,
}

/// This thread's CPU time (user + system) in seconds.
fn thread_cpu() -> f64 {
    // SAFETY: getrusage writes the struct it is given; zeroed is a valid rusage.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut r) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(r.ru_utime) + tv(r.ru_stime)
}

/// A connected loopback pair: (our end, the peer's end handed to `peer`).
fn loopback(peer: impl FnOnce(TcpStream) + Send + 'static) -> Result<TcpStream, Error> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    let t = std::thread::spawn(move || {
        if let Ok((s, _)) = l.accept() {
            peer(s);
        }
    });
    let s = TcpStream::connect(addr)?;
    // The peer thread runs until our end closes; not joined.
    drop(t);
    Ok(s)
}

fn sink(mut s: TcpStream) {
    let mut b = vec![0u8; PIECE];
    while matches!(s.read(&mut b), Ok(n) if n > 0) {}
}

fn read_once(file: &Path, bytes: u64, sendfile: bool) -> Result<f64, Error> {
    let f = std::fs::File::open(file)?;
    let mut s = loopback(sink)?;
    let mut buf = vec![0u8; PIECE];
    let pieces = bytes / PIECE as u64;
    let c0 = thread_cpu();
    for i in 0..pieces {
        let off = i * PIECE as u64;
        if sendfile {
            let mut o = off as libc::off_t;
            let mut left = PIECE;
            while left > 0 {
                // SAFETY: both descriptors are open for the duration of the call.
                let n = unsafe { libc::sendfile(s.as_raw_fd(), f.as_raw_fd(), &mut o, left) };
                if n <= 0 {
                    return Err(std::io::Error::last_os_error().into());
                }
                left -= n as usize;
            }
        } else {
            f.read_exact_at(&mut buf, off)?;
            s.write_all(&buf)?;
        }
    }
    let cpu = thread_cpu() - c0;
    Ok(cpu * (1u64 << 30) as f64 / (pieces * PIECE as u64) as f64)
}

fn write_once(dir: &Path, bytes: u64) -> Result<f64, Error> {
    let path = dir.join("floor-write.tmp");
    let f = std::fs::File::create(&path)?;
    let pieces = bytes / PIECE as u64;
    let mut s = loopback(move |mut s| {
        let b = vec![7u8; PIECE];
        for _ in 0..pieces {
            if s.write_all(&b).is_err() {
                break;
            }
        }
    })?;
    let mut buf = vec![0u8; PIECE];
    let c0 = thread_cpu();
    for i in 0..pieces {
        s.read_exact(&mut buf)?;
        f.write_all_at(&buf, i * PIECE as u64)?;
    }
    let cpu = thread_cpu() - c0;
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok(cpu * (1u64 << 30) as f64 / (pieces * PIECE as u64) as f64)
}

/// Measures the floors with `file` (page-cached, at least `bytes` long) and scratch
/// space in `dir`; `warm` prepares the page cache before each write run the way the
/// write workloads get it.
pub fn measure(
    file: &Path,
    dir: &Path,
    bytes: u64,
    runs: usize,
    warm: impl Fn(),
) -> Result<Floor, Error> {
    let (mut r, mut w, mut s) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        r.push(read_once(file, bytes, false)?);
        s.push(read_once(file, bytes, true)?);
        warm();
        w.push(write_once(dir, bytes)?);
    }
    let med = |v: &[f64]| crate::report::median(v).unwrap_or(0.0);
    Ok(Floor {
        read: med(&r),
        write: med(&w),
        sendfile: med(&s),
    })
}
