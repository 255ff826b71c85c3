//! duet_hal::net: what duetd does to the machine's network.
//!
//! Owns: the interface list announced to SMB clients ([`addresses`]); the
//! heartbeat link, a raw AF_PACKET socket on a named NIC driven by a smoltcp
//! interface with a link-local IPv4 address ([`link`]); the service address
//! (VIP) on the data NIC ([`vip`], rtnetlink); the frames a takeover sends:
//! gratuitous ARP ([`garp`]) and tickle ACKs ([`tickle`]).
//!
//! Must never: decide anything (when to take over, what a heartbeat says, who
//! is the peer: that is the cluster core's), read the clock (time comes in as
//! an argument), or panic on what the kernel or the wire returns. Every call
//! acts in the network namespace of the calling thread, which is how the
//! tests and the namespace lab (tools/lab) run two nodes in one process.

pub mod garp;
mod interfaces;
pub mod link;
pub mod packet;
pub mod probe;
mod sys;
pub mod tickle;
pub mod vip;

use std::fmt;

pub use interfaces::{addresses, Address};
pub use sys::{carrier, if_index, link_set_up, mac_addr, mtu};

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// No interface of that name in this network namespace.
    #[error("no network interface {0:?}")]
    NoSuchInterface(String),
    /// The name cannot be an interface name (empty, too long, NUL).
    #[error("bad interface name {0:?}")]
    BadName(String),
    /// The interface is not Ethernet (no 6-byte hardware address).
    #[error("interface {0:?} is not an Ethernet interface")]
    NotEthernet(String),
    /// A system call failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused a netlink request (errno from NLMSG_ERROR).
    #[error("netlink {op}: {source}")]
    Netlink {
        /// The request.
        op: &'static str,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// The kernel's netlink answer could not be parsed.
    #[error("malformed netlink answer to {0}")]
    NetlinkReply(&'static str),
    /// The send queue is full: poll the link and try again.
    #[error("send queue full")]
    QueueFull,
    /// The payload does not fit one frame of this link.
    #[error("payload of {len} bytes exceeds the link's {max}")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The most one datagram carries on this link.
        max: usize,
    },
    /// The destination cannot be sent to (unspecified address, port 0).
    #[error("cannot send to {0}")]
    Unaddressable(std::net::SocketAddrV4),
    /// A configured value is out of range.
    #[error("{0}")]
    Config(&'static str),
}

impl NetError {
    pub(crate) fn io(op: &'static str) -> Self {
        NetError::Io {
            op,
            source: std::io::Error::last_os_error(),
        }
    }
}

/// An Ethernet (MAC-48) address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for MacAddr {
    type Err = NetError;

    /// `aa:bb:cc:dd:ee:ff` (also with `-`), as `ip link` prints it.
    fn from_str(s: &str) -> Result<Self, NetError> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in out.iter_mut() {
            let p = parts.next().ok_or(NetError::Config("bad MAC address"))?;
            if p.len() != 2 {
                return Err(NetError::Config("bad MAC address"));
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| NetError::Config("bad MAC address"))?;
        }
        if parts.next().is_some() {
            return Err(NetError::Config("bad MAC address"));
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_text() {
        let m: MacAddr = "02:d0:e7:0a:00:ff".parse().expect("parse");
        assert_eq!(m.0, [0x02, 0xd0, 0xe7, 0x0a, 0x00, 0xff]);
        assert_eq!(m.to_string(), "02:d0:e7:0a:00:ff");
        assert!("02:d0:e7:0a:00".parse::<MacAddr>().is_err());
        assert!("02:d0:e7:0a:00:ff:01".parse::<MacAddr>().is_err());
        assert!("02:d0:e7:0a:00:fg".parse::<MacAddr>().is_err());
        assert!("2:d0:e7:0a:00:ff".parse::<MacAddr>().is_err());
    }
}
