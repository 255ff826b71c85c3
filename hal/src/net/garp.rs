//! Gratuitous ARP: telling the data network that the VIP now lives at this
//! node's MAC, so neighbours (clients, the gateway, the switch's table) send
//! to the survivor at once instead of after their ARP entry ages out.
//!
//! Owns: the frames (smoltcp's `EthernetFrame` and `ArpRepr`, an ARP request
//! and an ARP reply for the VIP, each to the Ethernet broadcast, padded to
//! the 60-byte minimum) and sending them on a send-only raw socket.
//!
//! Must never: send for an address the caller did not name, or pick the
//! timing: the caller repeats [`Announcer::send`] (or calls [`announce`]).
//!
//! Facts a caller needs: with the default `arp_accept=0` Linux updates an
//! existing neighbour entry and creates none (clients that never talked to
//! the VIP learn it by ARP as usual). A true gratuitous ARP (sender and
//! target address equal; for the reply form also sender and target MAC)
//! overrides an entry even within its `locktime`; other ARP does not. One
//! frame can be lost and some switches and stacks ignore one form: send
//! both forms, several rounds (3 rounds 250 ms apart is a good default).

use std::net::Ipv4Addr;
use std::time::Duration;

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr,
};

use super::packet::{PacketSocket, Receive};
use super::{sys, MacAddr, NetError};

/// Length of a gratuitous ARP frame: 14 + 28 bytes, padded to Ethernet's
/// 60-byte minimum (without FCS).
pub const FRAME_LEN: usize = 60;

/// Which form of gratuitous ARP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// ARP request for our own address (RFC 5227 "ARP announcement"):
    /// target hardware address zero.
    Request,
    /// Unsolicited ARP reply; some stacks only listen to these.
    Reply,
}

/// The gratuitous ARP frame saying "`ip` is at `mac`".
pub fn frame(mac: MacAddr, ip: Ipv4Addr, form: Form) -> [u8; FRAME_LEN] {
    let mut buf = [0u8; FRAME_LEN];
    let src = EthernetAddress(mac.0);
    let eth = EthernetRepr {
        src_addr: src,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let (operation, target_hardware_addr) = match form {
        Form::Request => (ArpOperation::Request, EthernetAddress([0; 6])),
        Form::Reply => (ArpOperation::Reply, src),
    };
    let arp = ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr: src,
        source_protocol_addr: ip,
        target_hardware_addr,
        target_protocol_addr: ip,
    };
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut f);
    arp.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
    buf
}

/// Sends gratuitous ARPs for one address on one NIC.
#[derive(Debug)]
pub struct Announcer {
    sock: PacketSocket,
    frames: [[u8; FRAME_LEN]; 2],
}

impl Announcer {
    /// For `ip` at `nic`'s own MAC.
    pub fn open(nic: &str, ip: Ipv4Addr) -> Result<Self, NetError> {
        let mac = sys::mac_addr(nic)?;
        Self::with_mac(nic, ip, mac)
    }

    /// For `ip` at `mac` (a bond's or a virtual MAC the NIC answers to).
    pub fn with_mac(nic: &str, ip: Ipv4Addr, mac: MacAddr) -> Result<Self, NetError> {
        let sock = PacketSocket::open(nic, Receive::Nothing)?;
        Ok(Announcer {
            sock,
            frames: [frame(mac, ip, Form::Request), frame(mac, ip, Form::Reply)],
        })
    }

    /// One round: the request form, then the reply form.
    pub fn send(&self) -> Result<(), NetError> {
        for f in &self.frames {
            self.sock.send(f).map_err(|source| NetError::Io {
                op: "send gratuitous ARP",
                source,
            })?;
        }
        Ok(())
    }
}

/// Announces `ip` at `nic`'s MAC `rounds` times, `spacing` apart, blocking
/// the calling thread (from tokio: `spawn_blocking`, or drive an
/// [`Announcer`] from a timer). Stops at the first failed send.
pub fn announce(nic: &str, ip: Ipv4Addr, rounds: u32, spacing: Duration) -> Result<(), NetError> {
    let a = Announcer::open(nic, ip)?;
    for i in 0..rounds {
        if i > 0 {
            std::thread::sleep(spacing);
        }
        a.send()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_back() {
        let mac = MacAddr([2, 0xd0, 0xe7, 0, 0x0b, 0x01]);
        let ip = Ipv4Addr::new(192, 0, 2, 100);
        for form in [Form::Request, Form::Reply] {
            let b = frame(mac, ip, form);
            let f = EthernetFrame::new_checked(&b[..]).expect("ethernet");
            assert_eq!(f.dst_addr(), EthernetAddress::BROADCAST);
            assert_eq!(f.src_addr(), EthernetAddress(mac.0));
            assert_eq!(f.ethertype(), EthernetProtocol::Arp);
            let p = ArpPacket::new_checked(f.payload()).expect("arp");
            let ArpRepr::EthernetIpv4 {
                operation,
                source_hardware_addr,
                source_protocol_addr,
                target_hardware_addr,
                target_protocol_addr,
            } = ArpRepr::parse(&p).expect("repr")
            else {
                panic!("not an Ethernet/IPv4 ARP packet");
            };
            assert_eq!(source_hardware_addr, EthernetAddress(mac.0));
            assert_eq!(source_protocol_addr, ip);
            assert_eq!(target_protocol_addr, ip);
            match form {
                Form::Request => {
                    assert_eq!(operation, ArpOperation::Request);
                    assert_eq!(target_hardware_addr, EthernetAddress([0; 6]));
                }
                Form::Reply => {
                    assert_eq!(operation, ArpOperation::Reply);
                    assert_eq!(target_hardware_addr, EthernetAddress(mac.0));
                }
            }
            // Padding is zero.
            assert!(b[42..].iter().all(|x| *x == 0));
        }
    }

    #[test]
    fn unknown_nic() {
        assert!(matches!(
            Announcer::open("duetnonexist0", Ipv4Addr::new(192, 0, 2, 1)),
            Err(NetError::NoSuchInterface(_))
        ));
    }
}
