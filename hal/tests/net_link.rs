//! The heartbeat link across a real cable: two network namespaces joined by
//! a veth pair that has no IP configuration at all; each side runs
//! `HeartbeatLink` (AF_PACKET + smoltcp, link-local addresses) and the
//! datagrams go through both smoltcp stacks, ARP included. Needs root and
//! `ip netns` (skipped with a message without them).

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use common::{veth, wait_for, Netns};
use duet_hal::net::link::{link_local_from_mac, HeartbeatLink, LinkConfig, DEFAULT_PORT};
use duet_hal::net::{self, MacAddr};

const MAC_A: &str = "02:d0:e7:00:0a:01";
const MAC_B: &str = "02:d0:e7:00:0b:02";

/// Two namespaces and the cable between them (`hb0` on both sides, up).
fn cable() -> (Netns, Netns) {
    let a = Netns::new("a");
    let b = Netns::new("b");
    veth(&a, "hb0", MAC_A, &b, "hb0", MAC_B);
    // One side through hal (what duetd does), the other with ip.
    a.run(|| net::link_set_up("hb0")).expect("link up in a");
    b.ip(&["link", "set", "hb0", "up"]);
    (a, b)
}

fn open(ns: &Netns, addr: Option<Ipv4Addr>, t0: Instant) -> HeartbeatLink {
    ns.run(|| {
        let mut cfg = LinkConfig::new("hb0");
        cfg.addr = addr;
        HeartbeatLink::open(&cfg, t0)
    })
    .expect("open heartbeat link")
}

/// Polls both links until `to` has a datagram; returns it and its source.
fn deliver(
    from: &mut HeartbeatLink,
    to: &mut HeartbeatLink,
    secs: f64,
) -> Option<(Vec<u8>, SocketAddrV4)> {
    wait_for(secs, || {
        let now = Instant::now();
        from.poll(now);
        to.poll(now);
        to.recv_with(|p, src| (p.to_vec(), src))
    })
}

#[test]
fn datagrams_cross_the_cable_through_smoltcp() {
    require_netns!();
    let (na, nb) = cable();
    let t0 = Instant::now();
    let b_addr = Ipv4Addr::new(169, 254, 7, 2);
    let mut a = open(&na, None, t0);
    let mut b = open(&nb, Some(b_addr), t0);

    // A's address comes from its MAC; B's from the "board config".
    let mac_a: MacAddr = MAC_A.parse().unwrap();
    assert_eq!(a.mac(), mac_a);
    assert_eq!(
        a.local_addr(),
        SocketAddrV4::new(link_local_from_mac(mac_a), DEFAULT_PORT)
    );
    assert_eq!(*b.local_addr().ip(), b_addr);
    assert_eq!(a.max_payload(), 1500 - 28);

    // The kernel on either side has no IPv4 address on the cable.
    for ns in [&na, &nb] {
        let v4 = ns.ip(&["-4", "-o", "addr", "show", "dev", "hb0"]);
        assert!(v4.trim().is_empty(), "kernel address on hb0: {v4}");
    }

    // Unicast A -> B: smoltcp on A resolves B's MAC by ARP, B's answers.
    a.send_to(b"heartbeat 1", b.local_addr()).expect("queue");
    let (p, src) = deliver(&mut a, &mut b, 3.0).expect("B received A's datagram");
    assert_eq!(p, b"heartbeat 1");
    assert_eq!(src, a.local_addr());

    // B answers to the source it saw.
    b.send_to(b"ack 1", src).expect("queue");
    let (p, src) = deliver(&mut b, &mut a, 3.0).expect("A received B's answer");
    assert_eq!(p, b"ack 1");
    assert_eq!(src, b.local_addr());

    // Broadcast needs no ARP and no knowledge of the peer's address.
    let all = SocketAddrV4::new(Ipv4Addr::BROADCAST, DEFAULT_PORT);
    a.send_to(b"to everyone", all).expect("queue");
    let (p, _) = deliver(&mut a, &mut b, 3.0).expect("B received the broadcast");
    assert_eq!(p, b"to everyone");

    // A full-size datagram fits one frame; one byte more is refused.
    let big = vec![0x5a; a.max_payload()];
    a.send_to(&big, b.local_addr()).expect("queue max");
    let (p, _) = deliver(&mut a, &mut b, 3.0).expect("B received the big one");
    assert_eq!(p, big);
    let too_big = vec![0; a.max_payload() + 1];
    assert!(matches!(
        a.send_to(&too_big, b.local_addr()),
        Err(net::NetError::TooLarge { .. })
    ));

    // Another port on B's address is not delivered to B's socket.
    a.send_to(b"wrong port", SocketAddrV4::new(b_addr, DEFAULT_PORT + 1))
        .expect("queue");
    assert!(deliver(&mut a, &mut b, 0.3).is_none());

    let sa = a.stats();
    let sb = b.stats();
    assert!(sa.tx_frames >= 5 && sb.rx_frames >= 5, "{sa:?} {sb:?}");
    assert_eq!(sa.tx_dropped, 0);
    assert!(a.take_error().is_none() && b.take_error().is_none());
}

#[test]
fn link_wakes_a_tokio_asyncfd() {
    require_netns!();
    let (na, nb) = cable();
    let t0 = Instant::now();
    let mut a = open(&na, Some(Ipv4Addr::new(169, 254, 7, 1)), t0);
    let b = open(&nb, Some(Ipv4Addr::new(169, 254, 7, 2)), t0);
    let dst = b.local_addr();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let got = rt.block_on(async move {
        // SAFETY: the link owns its socket and neither closes nor replaces
        // it while it lives, which is all AsyncFd::register asks.
        let mut b = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(b, tokio::io::Interest::READABLE)
        }
        .expect("AsyncFd");
        // The sender keeps sending (first ARP, then the datagram) from a
        // plain thread; B only wakes when its socket is readable.
        let sender = std::thread::spawn(move || {
            a.send_to(b"wake up", dst).expect("queue");
            for _ in 0..300 {
                a.poll(Instant::now());
                if a.send_queue_len() == 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            a
        });
        let got = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                let mut guard = b.readable_mut().await.expect("readable");
                let link = guard.get_inner_mut();
                link.poll(Instant::now());
                let got = link.recv_with(|p, _| p.to_vec());
                // poll() read until the socket would block.
                guard.clear_ready();
                if let Some(p) = got {
                    return p;
                }
            }
        })
        .await;
        drop(sender.join());
        got
    });
    assert_eq!(got.expect("datagram within 3 s"), b"wake up");
}
