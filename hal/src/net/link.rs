//! The heartbeat link: a smoltcp IPv4/UDP stack of our own on a raw socket
//! on the heartbeat NIC, with a link-local address (RFC 3927), so the link
//! to the partner works whatever the host's IP configuration says (none,
//! DHCP gone, a wrong route), the way firmware owns its own link.
//!
//! Owns: [`RawLink`], the AF_PACKET socket as a smoltcp `phy::Device`, and
//! [`HeartbeatLink`], the smoltcp `Interface` with one UDP socket on it that
//! carries the cluster's datagrams (heartbeats, mirror stream).
//!
//! Must never: interpret a datagram (authentication, sequence numbers and
//! retransmission are the cluster core's), read the clock (`poll` takes the
//! time), or block.
//!
//! With tokio, the shell wraps the link in `AsyncFd` (`AsyncFd::register`:
//! the link owns its socket and never closes or replaces it). When it is
//! readable: `poll(now)`, then `clear_ready()` (poll reads the socket until
//! it would block). After `send_to`: `poll(now)`. And it wakes at
//! `poll_delay(now)` for the stack's own timers (ARP retries).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::udp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, IpEndpoint, IpListenEndpoint};

use super::packet::{PacketSocket, Receive};
use super::{sys, MacAddr, NetError};

/// The UDP port the cluster uses on the heartbeat link unless the board
/// config names another. Only ever seen on the cable between the two boxes.
pub const DEFAULT_PORT: u16 = 7400;

const ETH_HEADER_LEN: usize = 14;
const IPV4_UDP_HEADERS: usize = 20 + 8;

/// Counters of a raw link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames received (every frame the NIC delivered, ours or not).
    pub rx_frames: u64,
    /// Frames sent.
    pub tx_frames: u64,
    /// Frames that could not be sent (NIC queue full, link down).
    pub tx_dropped: u64,
    /// Receive calls that failed with an error other than "would block".
    pub rx_errors: u64,
}

/// An AF_PACKET socket on one NIC as a smoltcp Ethernet device.
#[derive(Debug)]
pub struct RawLink {
    sock: PacketSocket,
    mac: MacAddr,
    mtu: usize,
    rx: Vec<u8>,
    tx: Vec<u8>,
    stats: LinkStats,
    error: Option<io::Error>,
}

impl RawLink {
    /// Opens the raw link on `nic` (which must be an Ethernet interface).
    pub fn open(nic: &str) -> Result<Self, NetError> {
        let mac = sys::mac_addr(nic)?;
        let mtu = sys::mtu(nic)?;
        if mtu < 576 {
            return Err(NetError::Config("heartbeat NIC MTU below 576"));
        }
        let sock = PacketSocket::open(nic, Receive::All)?;
        Ok(RawLink {
            sock,
            mac,
            mtu,
            // Room for a VLAN tag the NIC may leave in place.
            rx: vec![0; mtu + ETH_HEADER_LEN + 4],
            tx: Vec::with_capacity(mtu + ETH_HEADER_LEN),
            stats: LinkStats::default(),
            error: None,
        })
    }

    /// The NIC's hardware address.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The NIC's IP MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The counters so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// The last send or receive error (link down, NIC gone), once.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// The socket underneath.
    pub fn socket(&self) -> &PacketSocket {
        &self.sock
    }
}

/// A received frame, lent to smoltcp.
pub struct RxFrame<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxFrame<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

/// Permission to send one frame.
pub struct TxFrame<'a> {
    sock: &'a PacketSocket,
    buf: &'a mut Vec<u8>,
    stats: &'a mut LinkStats,
    error: &'a mut Option<io::Error>,
}

impl phy::TxToken for TxFrame<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        self.buf.clear();
        self.buf.resize(len, 0);
        let r = f(self.buf);
        match self.sock.send(self.buf) {
            Ok(()) => self.stats.tx_frames += 1,
            Err(e) => {
                // A full NIC queue loses the frame as a busy wire would; the
                // cluster's mirror stream retransmits.
                self.stats.tx_dropped += 1;
                if e.kind() != io::ErrorKind::WouldBlock {
                    *self.error = Some(e);
                }
            }
        }
        r
    }
}

impl phy::Device for RawLink {
    type RxToken<'a> = RxFrame<'a>;
    type TxToken<'a> = TxFrame<'a>;

    fn receive(&mut self, _now: SmolInstant) -> Option<(RxFrame<'_>, TxFrame<'_>)> {
        let RawLink {
            sock,
            rx,
            tx,
            stats,
            error,
            ..
        } = self;
        match sock.recv(rx) {
            Ok(Some(n)) => {
                stats.rx_frames += 1;
                Some((
                    RxFrame { frame: &rx[..n] },
                    TxFrame {
                        sock,
                        buf: tx,
                        stats,
                        error,
                    },
                ))
            }
            Ok(None) => None,
            Err(e) => {
                stats.rx_errors += 1;
                *error = Some(e);
                None
            }
        }
    }

    fn transmit(&mut self, _now: SmolInstant) -> Option<TxFrame<'_>> {
        Some(TxFrame {
            sock: &self.sock,
            buf: &mut self.tx,
            stats: &mut self.stats,
            error: &mut self.error,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + ETH_HEADER_LEN;
        caps
    }
}

impl AsRawFd for RawLink {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// The link-local address a NIC takes when the board config names none:
/// 169.254.(1 + mac[4] mod 254).mac[5], inside RFC 3927's 169.254.1.0 -
/// 169.254.254.255. Two NICs whose MACs differ only in the last byte (the
/// usual case for two boards of one batch) never get the same address.
pub fn link_local_from_mac(mac: MacAddr) -> Ipv4Addr {
    Ipv4Addr::new(169, 254, 1 + mac.0[4] % 254, mac.0[5])
}

/// Whether `a` is an address RFC 3927 lets a host take (169.254.1.0 to
/// 169.254.254.255).
pub fn is_usable_link_local(a: Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] == 169 && o[1] == 254 && (1..=254).contains(&o[2])
}

/// How to open a heartbeat link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// The heartbeat NIC (board config `network.heartbeat_nic`).
    pub nic: String,
    /// Our link-local address; `None`: [`link_local_from_mac`].
    pub addr: Option<Ipv4Addr>,
    /// The UDP port both nodes use.
    pub port: u16,
    /// Datagrams each of the receive and send queues holds.
    pub queue_len: usize,
}

impl LinkConfig {
    /// Defaults for `nic`: address from the MAC, [`DEFAULT_PORT`], 256
    /// datagrams each way.
    pub fn new(nic: &str) -> Self {
        LinkConfig {
            nic: nic.to_owned(),
            addr: None,
            port: DEFAULT_PORT,
            queue_len: 256,
        }
    }
}

/// The heartbeat link: a smoltcp interface with address 169.254.x.y/16 on
/// a [`RawLink`], and one UDP socket bound to the cluster's port.
pub struct HeartbeatLink {
    dev: RawLink,
    iface: Interface,
    sockets: SocketSet<'static>,
    udp: SocketHandle,
    epoch: std::time::Instant,
    addr: Ipv4Addr,
    port: u16,
}

impl std::fmt::Debug for HeartbeatLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeartbeatLink")
            .field("nic", &self.dev.sock.nic())
            .field("mac", &self.dev.mac)
            .field("addr", &self.addr)
            .field("port", &self.port)
            .finish()
    }
}

impl HeartbeatLink {
    /// Opens the link on `cfg.nic` in this thread's network namespace. The
    /// NIC must be up (see [`super::link_set_up`]); it needs no IP address
    /// and should have none in 169.254.0.0/16. `now` is the link's epoch:
    /// later calls pass times after it.
    pub fn open(cfg: &LinkConfig, now: std::time::Instant) -> Result<Self, NetError> {
        if cfg.port == 0 {
            return Err(NetError::Config("heartbeat port 0"));
        }
        if cfg.queue_len == 0 {
            return Err(NetError::Config("heartbeat queue length 0"));
        }
        let mut dev = RawLink::open(&cfg.nic)?;
        let addr = cfg.addr.unwrap_or_else(|| link_local_from_mac(dev.mac));
        if !is_usable_link_local(addr) {
            return Err(NetError::Config(
                "heartbeat address must be in 169.254.1.0 - 169.254.254.255",
            ));
        }
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(dev.mac.0)));
        let m = dev.mac.0;
        config.random_seed = u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]);
        let mut iface = Interface::new(config, &mut dev, SmolInstant::ZERO);
        iface.update_ip_addrs(|a| {
            // Cannot fail: the list is empty and holds at least one.
            let _ = a.push(IpCidr::new(addr.into(), 16));
        });

        let max = dev.mtu - IPV4_UDP_HEADERS;
        let buffer = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; cfg.queue_len],
                vec![0u8; cfg.queue_len.saturating_mul(max)],
            )
        };
        let mut socket = udp::Socket::new(buffer(), buffer());
        socket
            .bind(IpListenEndpoint {
                addr: None,
                port: cfg.port,
            })
            .map_err(|_| NetError::Config("heartbeat port"))?;
        let mut sockets = SocketSet::new(Vec::new());
        let udp = sockets.add(socket);
        Ok(HeartbeatLink {
            dev,
            iface,
            sockets,
            udp,
            epoch: now,
            addr,
            port: cfg.port,
        })
    }

    fn smol_now(&self, now: std::time::Instant) -> SmolInstant {
        let us = now.saturating_duration_since(self.epoch).as_micros();
        SmolInstant::from_micros(i64::try_from(us).unwrap_or(i64::MAX))
    }

    /// Our address and port on the link.
    pub fn local_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.addr, self.port)
    }

    /// The NIC's hardware address.
    pub fn mac(&self) -> MacAddr {
        self.dev.mac
    }

    /// The largest datagram one frame carries (IP MTU less IPv4 and UDP
    /// headers; the link does not fragment).
    pub fn max_payload(&self) -> usize {
        self.dev.mtu - IPV4_UDP_HEADERS
    }

    /// Queues one datagram to `dst` (a peer's link-local address, or
    /// 255.255.255.255 / 169.254.255.255 for every node on the cable). It
    /// leaves at the next [`poll`](Self::poll), after ARP for a unicast
    /// peer the stack does not know yet.
    pub fn send_to(&mut self, payload: &[u8], dst: SocketAddrV4) -> Result<(), NetError> {
        let max = self.max_payload();
        if payload.len() > max {
            return Err(NetError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        if dst.ip().is_unspecified() || dst.port() == 0 {
            return Err(NetError::Unaddressable(dst));
        }
        let ep = IpEndpoint::new((*dst.ip()).into(), dst.port());
        let sock = self.sockets.get_mut::<udp::Socket>(self.udp);
        sock.send_slice(payload, ep).map_err(|e| match e {
            udp::SendError::BufferFull => NetError::QueueFull,
            udp::SendError::Unaddressable => NetError::Unaddressable(dst),
        })
    }

    /// Takes the next received datagram: `f(payload, source)`.
    pub fn recv_with<R>(&mut self, f: impl FnOnce(&[u8], SocketAddrV4) -> R) -> Option<R> {
        let sock = self.sockets.get_mut::<udp::Socket>(self.udp);
        let (payload, meta) = sock.recv().ok()?;
        // Only IPv4 is configured; another crate enabling smoltcp's IPv6
        // must not make this a compile error.
        #[allow(unreachable_patterns)]
        let src = match meta.endpoint.addr {
            smoltcp::wire::IpAddress::Ipv4(a) => a,
            _ => return None,
        };
        Some(f(payload, SocketAddrV4::new(src, meta.endpoint.port)))
    }

    /// Takes the next received datagram into `buf`: its full length (more
    /// than `buf.len()` when it was cut) and its source.
    pub fn recv_from(&mut self, buf: &mut [u8]) -> Option<(usize, SocketAddrV4)> {
        self.recv_with(|p, src| {
            let n = p.len().min(buf.len());
            buf[..n].copy_from_slice(&p[..n]);
            (p.len(), src)
        })
    }

    /// Runs the stack: reads every waiting frame (until the socket would
    /// block), answers ARP, sends what is queued. True when datagrams may
    /// have arrived or left.
    pub fn poll(&mut self, now: std::time::Instant) -> bool {
        let t = self.smol_now(now);
        self.iface.poll(t, &mut self.dev, &mut self.sockets) == PollResult::SocketStateChanged
    }

    /// How long until the stack wants [`poll`](Self::poll) again when
    /// nothing arrives (`None`: not before the next frame or send).
    pub fn poll_delay(&mut self, now: std::time::Instant) -> Option<std::time::Duration> {
        let t = self.smol_now(now);
        self.iface
            .poll_delay(t, &self.sockets)
            .map(|d| std::time::Duration::from_micros(d.total_micros()))
    }

    /// Datagrams queued and not yet sent.
    pub fn send_queue_len(&self) -> usize {
        self.sockets.get::<udp::Socket>(self.udp).send_queue()
    }

    /// The raw link's counters.
    pub fn stats(&self) -> LinkStats {
        self.dev.stats
    }

    /// The last send or receive error (link down, NIC gone), once.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.dev.take_error()
    }
}

impl AsRawFd for HeartbeatLink {
    fn as_raw_fd(&self) -> RawFd {
        self.dev.sock.as_raw_fd()
    }
}

impl AsFd for HeartbeatLink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.dev.sock.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_addresses() {
        let a = link_local_from_mac(MacAddr([2, 0xd0, 0xe7, 0, 0x0a, 0x01]));
        let b = link_local_from_mac(MacAddr([2, 0xd0, 0xe7, 0, 0x0a, 0x02]));
        assert_eq!(a, Ipv4Addr::new(169, 254, 11, 1));
        assert_ne!(a, b);
        for m in [
            [0u8; 6],
            [0xff; 6],
            [0, 0, 0, 0, 253, 0],
            [0, 0, 0, 0, 254, 255],
        ] {
            assert!(
                is_usable_link_local(link_local_from_mac(MacAddr(m))),
                "{m:?}"
            );
        }
        assert!(!is_usable_link_local(Ipv4Addr::new(169, 254, 0, 1)));
        assert!(!is_usable_link_local(Ipv4Addr::new(169, 254, 255, 1)));
        assert!(!is_usable_link_local(Ipv4Addr::new(192, 0, 2, 1)));
    }

    #[test]
    fn open_refuses_what_it_cannot_use() {
        let now = std::time::Instant::now();
        let mut cfg = LinkConfig::new("duetnonexist0");
        assert!(matches!(
            HeartbeatLink::open(&cfg, now),
            Err(NetError::NoSuchInterface(_))
        ));
        cfg.nic = "lo".into();
        // Loopback has no Ethernet address.
        assert!(matches!(
            HeartbeatLink::open(&cfg, now),
            Err(NetError::NotEthernet(_))
        ));
        cfg.port = 0;
        assert!(matches!(
            HeartbeatLink::open(&cfg, now),
            Err(NetError::Config(_))
        ));
    }
}
