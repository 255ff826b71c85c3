//! Interface ioctls (SIOCGIFHWADDR, SIOCGIFMTU, SIOCGIFFLAGS/SIOCSIFFLAGS)
//! on a throwaway datagram socket, so they answer for the calling thread's
//! network namespace (sysfs would answer for the namespace it was mounted in).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{MacAddr, NetError};

/// A request for interface `name`, its name checked.
fn ifreq(name: &str) -> Result<libc::ifreq, NetError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(NetError::BadName(name.to_owned()));
    }
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

fn ctl_socket() -> Result<OwnedFd, NetError> {
    // SAFETY: plain socket(2); the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(NetError::io("socket(AF_INET)"));
    }
    // SAFETY: a fresh fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ioctl(
    name: &str,
    req: libc::c_ulong,
    r: &mut libc::ifreq,
    op: &'static str,
) -> Result<(), NetError> {
    let s = ctl_socket()?;
    // SAFETY: `r` is a valid ifreq for the duration of the call; these
    // requests read and write only inside it.
    if unsafe { libc::ioctl(s.as_raw_fd(), req as _, r as *mut libc::ifreq) } < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENODEV) {
            return Err(NetError::NoSuchInterface(name.to_owned()));
        }
        return Err(NetError::Io { op, source: e });
    }
    Ok(())
}

/// The kernel's index of interface `name` in this namespace.
pub fn if_index(name: &str) -> Result<u32, NetError> {
    let req = ifreq(name)?;
    // SAFETY: ifr_name is NUL-terminated (ifreq() leaves at least one 0).
    let i = unsafe { libc::if_nametoindex(req.ifr_name.as_ptr()) };
    if i == 0 {
        return Err(NetError::NoSuchInterface(name.to_owned()));
    }
    Ok(i)
}

/// The hardware address of Ethernet interface `name`.
pub fn mac_addr(name: &str) -> Result<MacAddr, NetError> {
    let mut r = ifreq(name)?;
    ioctl(name, libc::SIOCGIFHWADDR, &mut r, "SIOCGIFHWADDR")?;
    // SAFETY: SIOCGIFHWADDR filled the hwaddr member of the union.
    let sa = unsafe { r.ifr_ifru.ifru_hwaddr };
    if sa.sa_family != libc::ARPHRD_ETHER {
        return Err(NetError::NotEthernet(name.to_owned()));
    }
    let mut m = [0u8; 6];
    for (d, s) in m.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(MacAddr(m))
}

/// The MTU of interface `name` (IP payload bytes per frame).
pub fn mtu(name: &str) -> Result<usize, NetError> {
    let mut r = ifreq(name)?;
    ioctl(name, libc::SIOCGIFMTU, &mut r, "SIOCGIFMTU")?;
    // SAFETY: SIOCGIFMTU filled the mtu member.
    let m = unsafe { r.ifr_ifru.ifru_mtu };
    usize::try_from(m).map_err(|_| NetError::Config("negative MTU"))
}

/// Sets IFF_UP on interface `name` (no-op if it is up). The heartbeat NIC
/// carries no host IP configuration, so nothing else brings it up.
pub fn link_set_up(name: &str) -> Result<(), NetError> {
    let mut r = ifreq(name)?;
    ioctl(name, libc::SIOCGIFFLAGS, &mut r, "SIOCGIFFLAGS")?;
    // SAFETY: SIOCGIFFLAGS filled the flags member.
    let flags = unsafe { r.ifr_ifru.ifru_flags };
    if flags & libc::IFF_UP as libc::c_short != 0 {
        return Ok(());
    }
    r.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    ioctl(name, libc::SIOCSIFFLAGS, &mut r, "SIOCSIFFLAGS")
}

/// Whether `name` is up and has carrier (IFF_UP and IFF_RUNNING).
pub fn carrier(name: &str) -> Result<bool, NetError> {
    let mut r = ifreq(name)?;
    ioctl(name, libc::SIOCGIFFLAGS, &mut r, "SIOCGIFFLAGS")?;
    let flags = unsafe { r.ifr_ifru.ifru_flags };
    let want = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    Ok(flags & want == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(matches!(if_index(""), Err(NetError::BadName(_))));
        assert!(matches!(
            if_index("a-name-far-too-long"),
            Err(NetError::BadName(_))
        ));
        assert!(matches!(if_index("a\0b"), Err(NetError::BadName(_))));
        assert!(matches!(
            if_index("duetnonexist0"),
            Err(NetError::NoSuchInterface(_))
        ));
        assert!(matches!(
            mac_addr("duetnonexist0"),
            Err(NetError::NoSuchInterface(_))
        ));
        assert!(if_index("lo").expect("lo") > 0);
        assert!(mtu("lo").expect("lo mtu") > 0);
        assert!(carrier("lo").expect("lo carrier"));
        assert!(matches!(
            carrier("duetnonexist0"),
            Err(NetError::NoSuchInterface(_))
        ));
        // Loopback's hardware type is ARPHRD_LOOPBACK, not Ethernet.
        assert!(matches!(mac_addr("lo"), Err(NetError::NotEthernet(_))));
    }
}
