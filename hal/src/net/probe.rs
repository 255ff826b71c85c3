//! The tie-breaker probe: ICMP echo to an address on the data network (the gateway), so a
//! node can tell "I still reach the network" from "I am cut off".
//!
//! Owns: one ICMP socket, the echo requests it sends and the matching of replies. A raw
//! socket (root) is tried first, then the kernel's unprivileged ping socket.
//! Must never: block (the socket is non-blocking), decide anything from a result (the
//! cluster core does), or count a reply from another address or to another probe.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::NetError;

const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;

/// Sends ICMP echo requests to one address and recognises its replies.
#[derive(Debug)]
pub struct IcmpProbe {
    fd: OwnedFd,
    target: Ipv4Addr,
    /// Raw sockets see the IP header and every ICMP packet; ping sockets neither.
    raw: bool,
    ident: u16,
    seq: u16,
}

/// The echo request for `ident`/`seq` with a payload naming the probe.
pub fn echo_request(ident: u16, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = ECHO_REQUEST;
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(b"duet-tb\0");
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether `packet` (as a raw ICMP socket delivers it, with the IPv4 header when `raw`) is
/// an echo reply from `from` to our `ident`. Sequence numbers are not compared: any reply
/// to this probe shows the address is reachable.
pub fn is_reply(packet: &[u8], raw: bool, from: Ipv4Addr, src: Ipv4Addr, ident: u16) -> bool {
    let icmp = if raw {
        let Some(&v) = packet.first() else {
            return false;
        };
        let ihl = usize::from(v & 0x0f) * 4;
        if v >> 4 != 4 || ihl < 20 || packet.len() < ihl + 8 {
            return false;
        }
        &packet[ihl..]
    } else {
        packet
    };
    if icmp.len() < 8 || icmp[0] != ECHO_REPLY || icmp[1] != 0 || src != from {
        return false;
    }
    // A ping socket rewrites the identifier to its own; the kernel only gives it its replies.
    !raw || u16::from_be_bytes([icmp[4], icmp[5]]) == ident
}

impl IcmpProbe {
    /// A probe of `target` (non-blocking socket).
    pub fn open(target: Ipv4Addr) -> Result<Self, NetError> {
        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        let mut raw = true;
        // SAFETY: plain socket(2) calls; the result is checked before use.
        let mut fd =
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | flags, libc::IPPROTO_ICMP) };
        if fd < 0 {
            raw = false;
            fd = unsafe {
                libc::socket(libc::AF_INET, libc::SOCK_DGRAM | flags, libc::IPPROTO_ICMP)
            };
        }
        if fd < 0 {
            return Err(NetError::io("socket(ICMP)"));
        }
        // SAFETY: fd is a fresh socket we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Distinguishes our replies from other pingers' on a raw socket.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let ident = (std::process::id() ^ nanos) as u16;
        Ok(IcmpProbe {
            fd,
            target,
            raw,
            ident,
            seq: 0,
        })
    }

    /// The probed address.
    pub fn target(&self) -> Ipv4Addr {
        self.target
    }

    /// Sends one echo request. An error (no route, NIC down) means "not reachable now".
    pub fn send(&mut self) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let p = echo_request(self.ident, self.seq);
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(self.target).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: p and addr outlive the call; lengths are theirs.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                p.as_ptr().cast(),
                p.len(),
                libc::MSG_DONTWAIT,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads every waiting packet; true if one was a reply to this probe.
    pub fn take_replies(&mut self) -> bool {
        let mut got = false;
        let mut buf = [0u8; 1500];
        loop {
            let mut from: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            // SAFETY: buf and from are valid for the lengths given.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&mut from as *mut libc::sockaddr_in).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                return got;
            }
            let src = Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr));
            if is_reply(&buf[..n as usize], self.raw, self.target, src, self.ident) {
                got = true;
            }
        }
    }
}

impl AsRawFd for IcmpProbe {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for IcmpProbe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_checksum_verifies() {
        let p = echo_request(0x1234, 7);
        assert_eq!(checksum(&p), 0);
        assert_eq!(p[0], ECHO_REQUEST);
    }

    #[test]
    fn replies_are_matched() {
        let gw = Ipv4Addr::new(192, 0, 2, 1);
        let mut icmp = echo_request(0x1234, 7);
        icmp[0] = ECHO_REPLY;
        let mut ip = vec![0x45u8; 1];
        ip.extend_from_slice(&[0; 19]);
        ip.extend_from_slice(&icmp);
        assert!(is_reply(&ip, true, gw, gw, 0x1234));
        assert!(
            !is_reply(&ip, true, gw, gw, 0x4321),
            "another probe's reply"
        );
        assert!(
            !is_reply(&ip, true, gw, Ipv4Addr::new(192, 0, 2, 9), 0x1234),
            "another address"
        );
        assert!(is_reply(&icmp, false, gw, gw, 0));
        let req = echo_request(0x1234, 7);
        assert!(!is_reply(&req, false, gw, gw, 0), "a request is no reply");
        assert!(!is_reply(&ip[..10], true, gw, gw, 0x1234));
        assert!(!is_reply(&[], true, gw, gw, 0x1234));
    }

    #[test]
    fn loopback_answers() {
        // Needs root or ping_group_range; skip quietly where neither is available.
        let Ok(mut p) = IcmpProbe::open(Ipv4Addr::LOCALHOST) else {
            return;
        };
        if p.send().is_err() {
            return;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            if p.take_replies() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("no echo reply from 127.0.0.1");
    }
}
