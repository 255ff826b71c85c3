//! What a survivor does to the data network, on real kernels in network
//! namespaces (TEST-NET-1 addresses): the VIP through netlink, gratuitous
//! ARP moving a peer's neighbour entry, and a tickle ACK killing a client's
//! connection to the dead node at once. Needs root and `ip netns` (skipped
//! with a message without them).

mod common;

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::{veth, wait_for, Netns};
use duet_hal::net::tickle::{TcpConn, Tickler};
use duet_hal::net::{garp, vip};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

#[test]
fn vip_is_added_and_removed_idempotently() {
    require_netns!();
    let n = Netns::new("vip");
    // A veth pair inside the namespace (this kernel has no dummy driver).
    n.ip(&[
        "link", "add", "data0", "type", "veth", "peer", "name", "data1",
    ]);
    n.ip(&["addr", "add", "192.0.2.11/24", "dev", "data0"]);
    n.ip(&["link", "set", "data0", "up"]);
    let shown = || n.ip(&["-4", "-o", "addr", "show", "dev", "data0"]);

    n.run(|| {
        assert!(!vip::has("data0", VIP).unwrap());
        assert!(vip::add("data0", VIP, 24).expect("add"), "first add adds");
        assert!(vip::has("data0", VIP).unwrap());
        assert!(
            !vip::add("data0", VIP, 24).expect("add again"),
            "second add is a no-op"
        );
    });
    let s = shown();
    assert!(s.contains("192.0.2.100/24"), "{s}");
    assert!(s.contains("192.0.2.11/24"), "own address kept: {s}");

    n.run(|| {
        assert!(vip::remove("data0", VIP).expect("remove"));
        assert!(!vip::has("data0", VIP).unwrap());
        assert!(!vip::remove("data0", VIP).expect("remove again"));
        // A /32 VIP (another subnet's address) works the same way.
        let other = Ipv4Addr::new(192, 0, 2, 200);
        assert!(vip::add("data0", other, 32).unwrap());
        assert!(vip::remove("data0", other).unwrap());
    });
    let s = shown();
    assert!(!s.contains("192.0.2.100"), "{s}");
    assert!(s.contains("192.0.2.11/24"), "own address kept: {s}");
}

/// The lladdr of `ip`'s neighbour entry in `ns` on `dev`, if any.
fn neighbour(ns: &Netns, ip: &str, dev: &str) -> Option<String> {
    let out = ns.ip(&["neigh", "show", ip, "dev", dev]);
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "lladdr" {
            return words.next().map(str::to_owned);
        }
    }
    None
}

#[test]
fn gratuitous_arp_moves_the_peers_neighbour_entry() {
    require_netns!();
    let node = Netns::new("node");
    let peer = Netns::new("peer");
    let old_mac = "02:d0:e7:00:0a:01";
    let new_mac = "02:d0:e7:00:0b:01";
    veth(&node, "n0", old_mac, &peer, "p0", "02:d0:e7:00:0c:01");
    node.ip(&["addr", "add", "192.0.2.100/24", "dev", "n0"]);
    node.ip(&["link", "set", "n0", "up"]);
    peer.ip(&["addr", "add", "192.0.2.50/24", "dev", "p0"]);
    peer.ip(&["link", "set", "p0", "up"]);

    // The peer talks to the VIP: its kernel learns the old MAC by ARP.
    peer.run(|| {
        let s = UdpSocket::bind("192.0.2.50:0").unwrap();
        s.send_to(b"x", "192.0.2.100:9").unwrap();
    });
    let learnt = wait_for(3.0, || neighbour(&peer, "192.0.2.100", "p0"));
    assert_eq!(learnt.as_deref(), Some(old_mac));

    // The VIP now lives behind another MAC (the partner's NIC). Nothing
    // tells the peer yet.
    node.ip(&["link", "set", "n0", "address", new_mac]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        neighbour(&peer, "192.0.2.100", "p0").as_deref(),
        Some(old_mac)
    );

    node.run(|| garp::announce("n0", VIP, 3, Duration::from_millis(100)))
        .expect("announce");
    let moved = wait_for(2.0, || {
        neighbour(&peer, "192.0.2.100", "p0").filter(|m| m == new_mac)
    });
    assert_eq!(
        moved.as_deref(),
        Some(new_mac),
        "the entry follows the GARP"
    );

    // With the default arp_accept=0 a gratuitous ARP creates no entry.
    let other = Ipv4Addr::new(192, 0, 2, 101);
    node.run(|| garp::announce("n0", other, 2, Duration::from_millis(50)))
        .expect("announce other");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(neighbour(&peer, "192.0.2.101", "p0"), None);
}

/// Makes a TCP socket vanish without a FIN or RST, as when its node dies:
/// TCP_REPAIR mode, then close (needs CAP_NET_ADMIN).
fn vanish(s: TcpStream) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a c_int on a socket we own.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_REPAIR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "TCP_REPAIR: {}", std::io::Error::last_os_error());
    drop(s);
}

#[test]
fn tickle_ack_resets_the_clients_stale_connection() {
    require_netns!();
    let server = Netns::new("srv");
    let client = Netns::new("cli");
    veth(
        &server,
        "s0",
        "02:d0:e7:00:0a:02",
        &client,
        "c0",
        "02:d0:e7:00:0c:02",
    );
    server.ip(&["addr", "add", "192.0.2.100/24", "dev", "s0"]);
    server.ip(&["link", "set", "s0", "up"]);
    client.ip(&["addr", "add", "192.0.2.50/24", "dev", "c0"]);
    client.ip(&["link", "set", "c0", "up"]);

    let listener = server.run(|| TcpListener::bind("192.0.2.100:4450").expect("listen"));
    let mut conn = client.run(|| TcpStream::connect("192.0.2.100:4450").expect("connect"));
    let (accepted, _) = listener.accept().expect("accept");
    let tuple = TcpConn {
        client: match conn.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            a => panic!("{a}"),
        },
        server: SocketAddrV4::new(VIP, 4450),
    };

    // The serving node dies: its sockets are gone, the client is not told.
    vanish(accepted);
    drop(listener);
    let mut buf = [0u8; 16];
    conn.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let e = conn.read(&mut buf).expect_err("no data, no end");
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "the connection still looks alive to the client: {e}"
    );

    // The survivor (same VIP, no socket) tickles.
    let report = server.run(|| Tickler::open().expect("raw socket").send_all(&[tuple]));
    assert_eq!(
        (report.sent, report.failed),
        (1, 0),
        "{:?}",
        report.last_error
    );

    conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let t = Instant::now();
    let e = conn.read(&mut buf).expect_err("reset");
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
}
