//! tools/lab/lab.sh, checked from the outside: `up` (twice) builds the
//! switch, both nodes and the client; the data network reaches every node
//! and the gateway; the heartbeat cable carries HeartbeatLink datagrams;
//! `status` tells; `down` (twice) leaves nothing. A private prefix keeps it
//! apart from a person's lab. Needs root and `ip netns`.

mod common;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Instant;

use duet_hal::net::link::{HeartbeatLink, LinkConfig};

struct Lab {
    prefix: String,
}

impl Lab {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/lab/lab.sh")
    }

    fn run(&self, verb: &str) -> Output {
        Command::new(Self::script())
            .arg(verb)
            .env("DUET_LAB_PREFIX", &self.prefix)
            .output()
            .expect("run lab.sh")
    }

    fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    /// `f` on a thread inside the lab's namespace `node`.
    fn within<T: Send>(&self, node: &str, f: impl FnOnce() -> T + Send) -> T {
        let name = self.ns(node);
        std::thread::scope(|s| {
            s.spawn(|| {
                common::enter(&name);
                f()
            })
            .join()
            .expect("namespace thread")
        })
    }

    fn addrs(&self, node: &str, dev: &str) -> String {
        common::run_ip(&["-n", &self.ns(node), "-4", "-o", "addr", "show", "dev", dev])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.run("down");
    }
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "lab.sh failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn lab_up_status_down() {
    require_netns!();
    let lab = Lab {
        prefix: format!("dl{}", std::process::id()),
    };
    assert_eq!(lab.run("status").status.code(), Some(3), "absent at first");
    ok(&lab.run("up"));
    ok(&lab.run("up")); // idempotent
    let status = ok(&lab.run("status"));
    for node in ["sw", "a", "b", "client"] {
        assert!(status.contains(&format!("{}:", lab.ns(node))), "{status}");
    }
    assert!(status.contains(": up"), "{status}");

    // Addresses: TEST-NET-1 on the data network, nothing on the cable.
    assert!(lab.addrs("sw", "br0").contains("192.0.2.1/24"));
    assert!(lab.addrs("a", "eth0").contains("192.0.2.11/24"));
    assert!(lab.addrs("b", "eth0").contains("192.0.2.12/24"));
    assert!(lab.addrs("client", "eth0").contains("192.0.2.50/24"));
    assert!(lab.addrs("a", "eth1").trim().is_empty());
    assert!(lab.addrs("b", "eth1").trim().is_empty());

    // The client reaches both nodes and the gateway through the bridge.
    for (node, addr) in [
        ("a", "192.0.2.11"),
        ("b", "192.0.2.12"),
        ("sw", "192.0.2.1"),
    ] {
        let listener = lab.within(node, || TcpListener::bind((addr, 4450)).expect("listen"));
        lab.within("client", || {
            TcpStream::connect((addr, 4450)).unwrap_or_else(|e| panic!("client -> {addr}: {e}"))
        });
        listener.accept().expect("accept");
    }

    // The heartbeat cable joins node-a and node-b (and nothing else).
    let t0 = Instant::now();
    let mut a = lab
        .within("a", || HeartbeatLink::open(&LinkConfig::new("eth1"), t0))
        .expect("link on a");
    let mut b = lab
        .within("b", || HeartbeatLink::open(&LinkConfig::new("eth1"), t0))
        .expect("link on b");
    assert_ne!(a.local_addr(), b.local_addr());
    a.send_to(b"lab heartbeat", b.local_addr()).expect("queue");
    let got = common::wait_for(3.0, || {
        a.poll(Instant::now());
        b.poll(Instant::now());
        b.recv_with(|p, src| (p.to_vec(), src))
    });
    let (p, src) = got.expect("b hears a over the cable");
    assert_eq!(p, b"lab heartbeat");
    assert_eq!(src, a.local_addr());
    assert_eq!(*a.local_addr().ip(), Ipv4Addr::new(169, 254, 11, 1));
    drop((a, b));

    ok(&lab.run("down"));
    ok(&lab.run("down")); // idempotent
    for node in ["sw", "a", "b", "client"] {
        assert!(!std::path::Path::new(&format!("/run/netns/{}", lab.ns(node))).exists());
    }
    assert_eq!(lab.run("status").status.code(), Some(3));
}
