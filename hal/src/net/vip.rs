//! The service address (VIP) on the data NIC, through rtnetlink
//! (RTM_NEWADDR / RTM_DELADDR on a NETLINK_ROUTE socket), the same request
//! `ip addr add|del` sends, without running a program.
//!
//! Owns: adding and removing one IPv4 address on one interface, and saying
//! whether it is there.
//!
//! Must never: touch any address it was not asked about, or decide when the
//! VIP moves (the cluster core does).
//!
//! Notes for the board: when the VIP shares a subnet with the NIC's own
//! address it becomes a secondary address, and the kernel removes every
//! secondary with the primary unless `net.ipv4.conf.<nic>.promote_secondaries`
//! is 1; the VIP is added without a broadcast address, as `ip addr add`
//! does. Announcing the move (gratuitous ARP) is [`super::garp`]'s.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use super::{interfaces, sys, NetError};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const REQUEST_LEN: usize = NLMSG_HDRLEN + 8 + 8 + 8;

static SEQ: AtomicU32 = AtomicU32::new(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
}

/// The request for `op` (ifaddrmsg + IFA_LOCAL + IFA_ADDRESS). Remove names
/// only IFA_LOCAL, so any prefix length matches.
fn request(op: Op, seq: u32, ifindex: u32, addr: Ipv4Addr, prefix_len: u8) -> Vec<u8> {
    let (kind, flags) = match op {
        Op::Add => (
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ),
        Op::Remove => (RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK),
    };
    let mut m = Vec::with_capacity(REQUEST_LEN);
    m.extend_from_slice(&0u32.to_ne_bytes()); // length, set below
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
                                              // struct ifaddrmsg
    m.push(libc::AF_INET as u8);
    m.push(prefix_len);
    m.push(0); // flags
    m.push(0); // scope: RT_SCOPE_UNIVERSE
    m.extend_from_slice(&ifindex.to_ne_bytes());
    let attr = |m: &mut Vec<u8>, ty: u16| {
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&addr.octets());
    };
    attr(&mut m, IFA_LOCAL);
    if op == Op::Add {
        attr(&mut m, IFA_ADDRESS);
    }
    let len = m.len() as u32;
    m[..4].copy_from_slice(&len.to_ne_bytes());
    m
}

/// The kernel's answer to request `seq` in `buf`: `Some(0)` acknowledged,
/// `Some(errno)` refused, `None` not in this datagram.
fn parse_ack(mut buf: &[u8], seq: u32) -> Result<Option<i32>, NetError> {
    while !buf.is_empty() {
        let len = ne_u32(buf, 0).ok_or_else(bad_reply)? as usize;
        let kind = ne_u16(buf, 4).ok_or_else(bad_reply)?;
        let mseq = ne_u32(buf, 8).ok_or_else(bad_reply)?;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(bad_reply());
        }
        if mseq == seq {
            match kind {
                NLMSG_ERROR => {
                    let e = ne_u32(&buf[..len], NLMSG_HDRLEN).ok_or_else(bad_reply)? as i32;
                    return Ok(Some(e.saturating_neg()));
                }
                NLMSG_DONE => return Ok(Some(0)),
                _ => {}
            }
        }
        // Messages are 4-byte aligned.
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
    }
    Ok(None)
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn bad_reply() -> NetError {
    NetError::NetlinkReply("address request")
}

/// Sends `op` and waits for the kernel's answer (errno, 0 for success).
fn transact(op: Op, nic: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<i32, NetError> {
    if prefix_len > 32 {
        return Err(NetError::Config("IPv4 prefix length above 32"));
    }
    let ifindex = sys::if_index(nic)?;
    // SAFETY: plain socket(2); owned right below.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(NetError::io("socket(NETLINK_ROUTE)"));
    }
    // SAFETY: a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: setsockopt with a timeval of the right size. A kernel that
    // never answers makes recv fail instead of hanging the takeover.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let msg = request(op, seq, ifindex, addr, prefix_len);
    // SAFETY: sockaddr_nl is plain data; zeroes address the kernel (pid 0).
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `msg` and `sa` are valid for the lengths passed.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if n < 0 {
        return Err(NetError::io("netlink send"));
    }
    let mut buf = vec![0u8; 8192];
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(NetError::Io {
                op: "netlink receive",
                source: e,
            });
        }
        let got = buf.get(..n as usize).ok_or_else(bad_reply)?;
        if let Some(errno) = parse_ack(got, seq)? {
            return Ok(errno);
        }
    }
}

/// Adds `addr/prefix_len` to `nic`. `Ok(true)`: added; `Ok(false)`: it was
/// already there (so a repeated takeover step is harmless).
pub fn add(nic: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<bool, NetError> {
    match transact(Op::Add, nic, addr, prefix_len)? {
        0 => Ok(true),
        libc::EEXIST => Ok(false),
        e => Err(NetError::Netlink {
            op: "RTM_NEWADDR",
            source: std::io::Error::from_raw_os_error(e),
        }),
    }
}

/// Removes `addr` (whatever its prefix length) from `nic`. `Ok(true)`:
/// removed; `Ok(false)`: it was not there.
pub fn remove(nic: &str, addr: Ipv4Addr) -> Result<bool, NetError> {
    match transact(Op::Remove, nic, addr, 32)? {
        0 => Ok(true),
        libc::EADDRNOTAVAIL => Ok(false),
        e => Err(NetError::Netlink {
            op: "RTM_DELADDR",
            source: std::io::Error::from_raw_os_error(e),
        }),
    }
}

/// Whether `nic` has `addr`.
pub fn has(nic: &str, addr: Ipv4Addr) -> Result<bool, NetError> {
    let all = interfaces::addresses().map_err(|source| NetError::Io {
        op: "getifaddrs",
        source,
    })?;
    Ok(all
        .iter()
        .any(|a| a.name == nic && a.addr == IpAddr::V4(addr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let m = request(Op::Add, 7, 3, Ipv4Addr::new(192, 0, 2, 100), 24);
        assert_eq!(m.len(), REQUEST_LEN);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 40);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), RTM_NEWADDR);
        assert_eq!(u16::from_ne_bytes(m[6..8].try_into().unwrap()), 0x605);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
        assert_eq!(&m[16..20], &[libc::AF_INET as u8, 24, 0, 0]);
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 3);
        assert_eq!(&m[28..32], &[192, 0, 2, 100]);
        assert_eq!(u16::from_ne_bytes(m[32..34].try_into().unwrap()), 8);
        let d = request(Op::Remove, 8, 3, Ipv4Addr::new(192, 0, 2, 100), 32);
        assert_eq!(d.len(), REQUEST_LEN - 8);
        assert_eq!(u16::from_ne_bytes(d[4..6].try_into().unwrap()), RTM_DELADDR);
    }

    fn error_msg(seq: u32, errno: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&(-errno).to_ne_bytes());
        m.extend_from_slice(&[0u8; 16]);
        m
    }

    #[test]
    fn acks_are_parsed_and_bounds_checked() {
        assert_eq!(parse_ack(&error_msg(5, 0), 5).unwrap(), Some(0));
        assert_eq!(
            parse_ack(&error_msg(5, libc::EEXIST), 5).unwrap(),
            Some(libc::EEXIST)
        );
        // Another request's answer, then ours.
        let mut two = error_msg(4, libc::EPERM);
        two.extend(error_msg(5, 0));
        assert_eq!(parse_ack(&two, 5).unwrap(), Some(0));
        assert_eq!(parse_ack(&error_msg(4, 0), 5).unwrap(), None);
        // Truncated or lying lengths are errors, never panics.
        let m = error_msg(5, 0);
        for cut in 0..m.len() {
            let _ = parse_ack(&m[..cut], 5);
        }
        let mut liar = error_msg(5, 0);
        liar[..4].copy_from_slice(&4096u32.to_ne_bytes());
        assert!(parse_ack(&liar, 5).is_err());
        let mut short = error_msg(5, 0);
        short[..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(parse_ack(&short, 5).is_err());
    }

    #[test]
    fn unknown_interface() {
        let a = Ipv4Addr::new(192, 0, 2, 1);
        assert!(matches!(
            add("duetnonexist0", a, 24),
            Err(NetError::NoSuchInterface(_))
        ));
        assert!(matches!(add("lo", a, 33), Err(NetError::Config(_))));
        assert!(!has("duetnonexist0", a).unwrap());
    }
}
