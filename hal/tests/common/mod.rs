//! Network namespaces for the tests: each test makes its own, with unique
//! names, and deletes them when it ends (also on panic). Work inside a
//! namespace runs on a fresh thread that has entered it with setns(2);
//! sockets opened there stay in that namespace wherever they are used.
//! Addresses: TEST-NET-1 (192.0.2.0/24) and link-local only.

#![allow(dead_code)]

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether `ip netns` works here; tests that need it print why they skip.
pub fn netns_available() -> bool {
    let ok = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipped: `ip netns` is not available (needs iproute2 and root)");
    }
    ok
}

/// Returns from the test (skipping it) when namespaces are unavailable.
#[macro_export]
macro_rules! require_netns {
    () => {
        if !common::netns_available() {
            return;
        }
    };
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace this test made; deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("duet-t{}-{n}-{tag}", std::process::id());
        run_ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS`, which must succeed; its stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        run_ip(&a)
    }

    /// Runs `f` on a thread inside this namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                enter(&self.name);
                f()
            })
            .join()
            .expect("namespace thread panicked")
        })
    }

    /// Starts `f` on a thread inside this namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let name = self.name.clone();
        std::thread::spawn(move || {
            enter(&name);
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Moves the calling thread into namespace `name`.
pub fn enter(name: &str) {
    let f = std::fs::File::open(format!("/run/netns/{name}")).expect("open netns");
    // SAFETY: setns(2) on an fd we hold; affects only this thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
}

pub fn run_ip(args: &[&str]) -> String {
    let o = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        o.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A veth pair: `a_if` (MAC `a_mac`) in `a`, `b_if` (MAC `b_mac`) in `b`,
/// both down.
pub fn veth(a: &Netns, a_if: &str, a_mac: &str, b: &Netns, b_if: &str, b_mac: &str) {
    a.ip(&[
        "link", "add", "name", a_if, "address", a_mac, "type", "veth", "peer", "name", b_if,
        "address", b_mac, "netns", &b.name,
    ]);
}

/// Polls `f` until it returns Some or `secs` pass.
pub fn wait_for<T>(secs: f64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() >= end {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
