//! Group-commit benchmark (prints figures; asserts nothing):
//!
//! ```sh
//! cargo run --release -p duet-state --example group_commit -- [--secs S] [--dir DIR] [THREADS...]
//! ```
//!
//! For each thread count, every thread puts a durable open and removes it again in a loop,
//! each call returning only once its change is durable. Printed: committed changes per
//! second, transactions (disk syncs) per second, changes per transaction and mean latency.
//! Then one caller keeping N changes in flight with `submit_nowait` tickets (THREADS read as
//! the depth). For comparison: the raw `fdatasync` rate of the disk, and the same load through
//! `set_setting`, which runs a transaction of its own per call (no group commit).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use duet_state::{Caching, DurableOpen, DurableVersion, FileIdentity, Lease, Store};

fn durable_open(id: u64) -> DurableOpen {
    DurableOpen {
        persistent_id: id,
        volatile_id: id,
        create_guid: [7; 16],
        client_guid: [8; 16],
        owner_user: "alice".into(),
        owner_sid: "S-1-5-21-1004336348-1177238915-682003330-1001".into(),
        share: "share".into(),
        path: format!("projects\\2024\\report {id}.docx"),
        granted_access: 0x0012_019f,
        share_access: 7,
        create_options: 0x40,
        version: DurableVersion::V2,
        persistent: false,
        caching: Caching::Lease(Lease {
            key: [3; 16],
            state: 7,
            epoch: 1,
            version: 2,
            parent_key: None,
            flags: 0,
        }),
        locks: vec![],
        lock_sequences: [0; 64],
        timeout_ms: 60_000,
        disconnected_at_ms: None,
        app_instance_id: None,
        position: 0,
        file: FileIdentity {
            dev: 0x803,
            inode: id,
            creation_time: 133_500_000_000_000_000,
        },
    }
}

struct Run {
    ops: u64,
    secs: f64,
    transactions: Option<u64>,
}

fn run_threads(threads: u64, secs: f64, op: impl Fn(u64, u64) + Send + Sync + 'static) -> Run {
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let op = Arc::clone(&op);
            thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    op(t, n);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let ops = handles.into_iter().map(|h| h.join().unwrap()).sum();
    Run {
        ops,
        secs: start.elapsed().as_secs_f64(),
        transactions: None,
    }
}

fn fdatasync_rate(dir: &Path, secs: f64) -> f64 {
    let path = dir.join("fsync-probe");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let block = [0x5au8; 4096];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        f.write_all_at(&block, (n % 16) * 4096).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(path);
    rate
}

fn print(label: &str, threads: u64, r: &Run) {
    let ops_s = r.ops as f64 / r.secs;
    let latency_ms = threads as f64 * r.secs * 1000.0 / r.ops.max(1) as f64;
    match r.transactions {
        Some(tx) => println!(
            "{label:<30} {threads:>3} concurrent  {ops_s:>9.0} changes/s  {:>7.0} tx/s  {:>5.1} changes/tx  {latency_ms:>6.2} ms/call",
            tx as f64 / r.secs,
            r.ops as f64 / tx.max(1) as f64
        ),
        None => println!(
            "{label:<30} {threads:>3} concurrent  {ops_s:>9.0} changes/s  {:>7.0} tx/s  {:>5.1} changes/tx  {latency_ms:>6.2} ms/call",
            ops_s, 1.0
        ),
    }
}

fn main() {
    let mut secs = 2.0f64;
    let mut base: Option<PathBuf> = None;
    let mut counts: Vec<u64> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--secs" => secs = args.next().and_then(|v| v.parse().ok()).expect("--secs S"),
            "--dir" => base = Some(args.next().expect("--dir DIR").into()),
            n => counts.push(n.parse().expect("thread count")),
        }
    }
    if counts.is_empty() {
        counts = vec![1, 2, 4, 8, 16, 32, 64];
    }
    let tmp = match &base {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    println!("state directory under {}", tmp.path().display());
    println!(
        "disk: {:.0} fdatasync/s (4 KiB write + fdatasync, one thread)",
        fdatasync_rate(tmp.path(), secs.min(2.0))
    );

    for &threads in &counts {
        let dir = tmp.path().join(format!("gc-{threads}"));
        let store = Arc::new(Store::open(&dir).unwrap());
        let s = Arc::clone(&store);
        let mut r = run_threads(threads, secs, move |t, n| {
            let id = (t << 40) | (n / 2);
            if n.is_multiple_of(2) {
                s.put_durable_open(&durable_open(id)).unwrap();
            } else {
                s.remove_durable_open(id).unwrap().unwrap();
            }
        });
        r.transactions = Some(store.commit_stats().transactions);
        print("durable open put/remove", threads, &r);
    }
    // One caller, `depth` changes in flight through tickets: one connection whose creates are
    // answered as their commits complete.
    for &depth in &counts {
        let dir = tmp.path().join(format!("pipe-{depth}"));
        let store = Store::open(&dir).unwrap();
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(secs);
        let mut in_flight = std::collections::VecDeque::new();
        let mut ops = 0u64;
        let mut n = 0u64;
        while Instant::now() < deadline {
            let id = n / 2;
            let change = if n.is_multiple_of(2) {
                duet_state::ChangeKind::DurableOpenPut {
                    open: Box::new(durable_open(id)),
                }
            } else {
                duet_state::ChangeKind::DurableOpenRemoved { persistent_id: id }
            };
            in_flight.push_back(store.submit_nowait(&change));
            n += 1;
            if in_flight.len() as u64 >= depth {
                in_flight.pop_front().unwrap().wait().unwrap();
                ops += 1;
            }
        }
        for t in in_flight {
            t.wait().unwrap();
            ops += 1;
        }
        let r = Run {
            ops,
            secs: start.elapsed().as_secs_f64(),
            transactions: Some(store.commit_stats().transactions),
        };
        print("1 caller, tickets in flight", depth, &r);
    }
    for &threads in &counts {
        let dir = tmp.path().join(format!("own-{threads}"));
        let store = Arc::new(Store::open(&dir).unwrap());
        let s = Arc::clone(&store);
        let r = run_threads(threads, secs, move |t, n| {
            s.set_setting(&format!("bench.{t}"), &n.to_string())
                .unwrap();
        });
        print("own transaction per call", threads, &r);
    }
    std::io::stdout().flush().unwrap();
}
