//! Tickle ACKs: after a takeover, make every client whose TCP connection
//! went to the dead node notice at once, instead of after its
//! retransmission timeout (tens of seconds to minutes).
//!
//! For each mirrored connection the new node sends, from the VIP, a bare
//! ACK with sequence 0 and acknowledgement 0. The client's stack finds it
//! outside its window and answers with an ACK carrying its real numbers;
//! that reaches the new node, which has no such connection, so its kernel
//! answers with a RST that the client accepts: the client's SMB layer sees
//! the connection reset and reconnects (durable handle reconnect) now. The
//! same trick CTDB uses.
//!
//! Owns: the packets (smoltcp's `Ipv4Repr` and `TcpRepr`, checksums
//! computed) and sending them on a raw IP socket (IPPROTO_RAW), so the
//! kernel routes them and resolves the client's MAC.
//!
//! Must never: send to a connection the caller did not name, or block for
//! long (the socket has a short send timeout). IPv4 only.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};

use super::NetError;

/// Length of a tickle ACK: IPv4 header and TCP header, no options.
pub const PACKET_LEN: usize = 20 + 20;

/// One client connection of the mirrored connection table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TcpConn {
    /// The client's address and port.
    pub client: SocketAddrV4,
    /// The server's side: the VIP and the SMB port.
    pub server: SocketAddrV4,
}

/// The tickle ACK for `conn`: from the server side to the client, flags
/// ACK only, sequence 0, acknowledgement 0.
pub fn packet(conn: &TcpConn) -> [u8; PACKET_LEN] {
    let mut buf = [0u8; PACKET_LEN];
    let src: Ipv4Addr = *conn.server.ip();
    let dst: Ipv4Addr = *conn.client.ip();
    let tcp = TcpRepr {
        src_port: conn.server.port(),
        dst_port: conn.client.port(),
        control: TcpControl::None,
        seq_number: TcpSeqNumber(0),
        ack_number: Some(TcpSeqNumber(0)),
        window_len: 1234,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.header_len(),
        hop_limit: 64,
    };
    let caps = ChecksumCapabilities::default();
    let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
    ip.emit(&mut p, &caps);
    tcp.emit(
        &mut TcpPacket::new_unchecked(p.payload_mut()),
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        &caps,
    );
    buf
}

/// What [`Tickler::send_all`] did.
#[derive(Debug, Default)]
pub struct TickleReport {
    /// Packets the kernel took.
    pub sent: usize,
    /// Packets it refused (no route, queue full).
    pub failed: usize,
    /// The last refusal.
    pub last_error: Option<std::io::Error>,
}

/// A raw IPv4 socket for tickle ACKs (needs CAP_NET_RAW).
#[derive(Debug)]
pub struct Tickler {
    fd: OwnedFd,
}

impl Tickler {
    /// Opens the raw socket in this thread's network namespace.
    pub fn open() -> Result<Self, NetError> {
        // SAFETY: plain socket(2); owned right below.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_RAW,
            )
        };
        if raw < 0 {
            return Err(NetError::io("socket(AF_INET, SOCK_RAW)"));
        }
        // SAFETY: a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: setsockopt with a timeval of the right size: a full
        // queue costs at most 100 ms per packet, never a hung takeover.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        Ok(Tickler { fd })
    }

    /// Sends the tickle ACK for `conn` once.
    pub fn send(&self, conn: &TcpConn) -> std::io::Result<()> {
        let pkt = packet(conn);
        // SAFETY: sockaddr_in is plain data; all zeroes is valid.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from(*conn.client.ip()).to_be();
        // SAFETY: `pkt` and `sa` are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sends one tickle ACK to every connection in `conns`, going on past
    /// failures. Linux answers at most one out-of-window segment per
    /// connection each 500 ms (`tcp_invalid_ratelimit`), so a repeat is
    /// worth sending only after that.
    pub fn send_all(&self, conns: &[TcpConn]) -> TickleReport {
        let mut r = TickleReport::default();
        for c in conns {
            match self.send(c) {
                Ok(()) => r.sent += 1,
                Err(e) => {
                    r.failed += 1;
                    r.last_error = Some(e);
                }
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_is_a_bare_ack_with_valid_checksums() {
        let conn = TcpConn {
            client: "192.0.2.50:51234".parse().unwrap(),
            server: "192.0.2.100:445".parse().unwrap(),
        };
        let b = packet(&conn);
        let ip = Ipv4Packet::new_checked(&b[..]).expect("ipv4");
        assert!(ip.verify_checksum());
        let caps = ChecksumCapabilities::default();
        let ipr = Ipv4Repr::parse(&ip, &caps).expect("ipv4 repr");
        assert_eq!(ipr.src_addr, Ipv4Addr::new(192, 0, 2, 100));
        assert_eq!(ipr.dst_addr, Ipv4Addr::new(192, 0, 2, 50));
        assert_eq!(ipr.next_header, IpProtocol::Tcp);
        assert_eq!(usize::from(ip.total_len()), PACKET_LEN);
        let tcp = TcpPacket::new_checked(ip.payload()).expect("tcp");
        assert!(tcp.verify_checksum(
            &IpAddress::Ipv4(ipr.src_addr),
            &IpAddress::Ipv4(ipr.dst_addr)
        ));
        assert_eq!(tcp.src_port(), 445);
        assert_eq!(tcp.dst_port(), 51234);
        assert!(tcp.ack() && !tcp.syn() && !tcp.rst() && !tcp.fin() && !tcp.psh());
        assert_eq!(tcp.seq_number(), TcpSeqNumber(0));
        assert_eq!(tcp.ack_number(), TcpSeqNumber(0));
        assert_ne!(tcp.window_len(), 0);
    }
}
