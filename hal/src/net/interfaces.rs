//! The machine's network interfaces, as far as a file server announces
//! them (SMB 3 FSCTL_QUERY_NETWORK_INTERFACE_INFO).
//!
//! Owns: reading the interface list (getifaddrs) and what the kernel tells
//! about each link in /sys/class/net (speed, receive queues). Re-exported as
//! `duet_hal::net::{addresses, Address}`.
//!
//! Must never: panic on what the kernel returns, or decide what a client is
//! told (the SMB layer filters and encodes).

use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One IP address of one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// Interface name (e.g. `eth0`).
    pub name: String,
    /// Kernel interface index (never 0 for a real interface).
    pub index: u32,
    /// The address.
    pub addr: IpAddr,
    /// IFF_UP.
    pub up: bool,
    /// IFF_LOOPBACK.
    pub loopback: bool,
    /// IFF_BROADCAST: an Ethernet-like interface clients can reach.
    pub broadcast: bool,
    /// Link speed in bits per second when the driver knows it.
    pub link_speed: Option<u64>,
    /// Receive queues of the interface (more than one: receive-side scaling).
    pub rx_queues: usize,
}

/// Every IPv4 and IPv6 address of every interface, in the kernel's order.
pub fn addresses() -> std::io::Result<Vec<Address>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, which
        // stays valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        // SAFETY: as above; a null address is checked first and the
        // family tells which sockaddr type it points to.
        let addr = unsafe { sockaddr_ip(ifa.ifa_addr) };
        let Some(addr) = addr else { continue };
        if ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: a non-null ifa_name is a NUL-terminated string.
        let cname = unsafe { CStr::from_ptr(ifa.ifa_name) };
        let Ok(name) = cname.to_str() else { continue };
        // SAFETY: a valid NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        let flags = ifa.ifa_flags as libc::c_int;
        out.push(Address {
            name: name.to_owned(),
            index,
            addr,
            up: flags & libc::IFF_UP != 0,
            loopback: flags & libc::IFF_LOOPBACK != 0,
            broadcast: flags & libc::IFF_BROADCAST != 0,
            link_speed: link_speed(name),
            rx_queues: rx_queues(name),
        });
    }
    // SAFETY: the list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// # Safety
/// `sa` is null or points to a sockaddr of the size its family implies.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    match i32::from((*sa).sa_family) {
        libc::AF_INET => {
            let sin = &*(sa as *const libc::sockaddr_in);
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            let sin6 = &*(sa as *const libc::sockaddr_in6);
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

/// /sys/class/net/NAME/speed is in Mbit/s; -1 or unreadable: unknown.
fn link_speed(name: &str) -> Option<u64> {
    if name.contains('/') || name.starts_with('.') {
        return None;
    }
    let s = std::fs::read_to_string(format!("/sys/class/net/{name}/speed")).ok()?;
    parse_speed(&s)
}

fn parse_speed(s: &str) -> Option<u64> {
    let mbits: i64 = s.trim().parse().ok()?;
    u64::try_from(mbits)
        .ok()
        .filter(|m| *m > 0)
        .map(|m| m.saturating_mul(1_000_000))
}

fn rx_queues(name: &str) -> usize {
    if name.contains('/') || name.starts_with('.') {
        return 0;
    }
    std::fs::read_dir(format!("/sys/class/net/{name}/queues"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds() {
        assert_eq!(parse_speed("1000\n"), Some(1_000_000_000));
        assert_eq!(parse_speed("-1\n"), None);
        assert_eq!(parse_speed("0"), None);
        assert_eq!(parse_speed("fast"), None);
    }

    #[test]
    fn lists_loopback() {
        let a = addresses().expect("getifaddrs");
        let lo = a
            .iter()
            .find(|a| a.addr == IpAddr::V4(Ipv4Addr::LOCALHOST))
            .expect("127.0.0.1 is configured");
        assert!(lo.loopback && lo.up && !lo.broadcast);
        assert!(lo.index > 0);
        assert_eq!(link_speed("../x"), None);
    }
}
