//! A raw Ethernet socket (AF_PACKET, SOCK_RAW) bound to one named NIC.
//!
//! Owns: the socket's life (non-blocking, close-on-exec), sending whole
//! Ethernet frames and receiving the frames that arrive on that NIC.
//!
//! Must never: block, see frames of another NIC or (on kernels that allow it)
//! its own outgoing frames, or hand out a truncated frame.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::{sys, NetError};

/// What the socket receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receive {
    /// Every frame arriving on the NIC (ETH_P_ALL).
    All,
    /// Nothing: a send-only socket (gratuitous ARP).
    Nothing,
}

/// A non-blocking AF_PACKET socket on one interface. Register
/// [`AsRawFd::as_raw_fd`] with an event loop (tokio's `AsyncFd`) to learn
/// when frames are waiting.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
    nic: String,
}

const ETH_HEADER_LEN: usize = 14;

fn sockaddr_ll(ifindex: u32, protocol: u16) -> Result<libc::sockaddr_ll, NetError> {
    // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as libc::c_ushort;
    sa.sll_protocol = protocol.to_be();
    sa.sll_ifindex =
        libc::c_int::try_from(ifindex).map_err(|_| NetError::Config("interface index"))?;
    Ok(sa)
}

impl PacketSocket {
    /// Opens a raw socket on `nic` in this thread's network namespace.
    pub fn open(nic: &str, receive: Receive) -> Result<Self, NetError> {
        let ifindex = sys::if_index(nic)?;
        // Protocol 0 receives nothing until bind() names the protocol and
        // the interface, so no frame of another NIC slips in between.
        // SAFETY: plain socket(2); the fd is owned right below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(NetError::io("socket(AF_PACKET)"));
        }
        // SAFETY: a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if receive == Receive::All {
            let one: libc::c_int = 1;
            // Our own frames would come back as PACKET_OUTGOING; recv()
            // also skips them on kernels without this option (< 4.20).
            // SAFETY: setsockopt with a c_int value of the right size.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    libc::PACKET_IGNORE_OUTGOING,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        let protocol = match receive {
            Receive::All => libc::ETH_P_ALL as u16,
            Receive::Nothing => 0,
        };
        let sa = sockaddr_ll(ifindex, protocol)?;
        // SAFETY: `sa` is a valid sockaddr_ll and its size is passed.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(NetError::io("bind(AF_PACKET)"));
        }
        Ok(PacketSocket {
            fd,
            ifindex,
            nic: nic.to_owned(),
        })
    }

    /// The interface's name.
    pub fn nic(&self) -> &str {
        &self.nic
    }

    /// The interface's kernel index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sends one complete Ethernet frame (header included, no FCS).
    /// `WouldBlock` when the NIC's queue is full.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        if frame.len() < ETH_HEADER_LEN {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let mut sa =
            sockaddr_ll(self.ifindex, ethertype).map_err(|_| io::ErrorKind::InvalidInput)?;
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: `frame` is valid for its length, `sa` for its size.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != frame.len() {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        Ok(())
    }

    /// Receives the next frame into `buf`: `Ok(Some(len))`, or `Ok(None)`
    /// when no frame is waiting. Frames longer than `buf` and frames this
    /// host sent are skipped.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: as in sockaddr_ll().
            let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut salen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf` is writable for its length; `sa`/`salen` describe
            // a sockaddr_ll-sized buffer. MSG_TRUNC makes the return value
            // the frame's real length.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    (&mut sa as *mut libc::sockaddr_ll).cast(),
                    &mut salen,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            let n = n as usize;
            if n > buf.len() || sa.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            return Ok(Some(n));
        }
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
