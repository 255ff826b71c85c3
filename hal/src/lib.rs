//! duet-hal: the part of duetd that touches the machine.
//!
//! Owns the system calls on share storage ([`fs`]), the network as a
//! cluster node touches it ([`net`]: interface list, heartbeat link, VIP,
//! gratuitous ARP, tickle ACKs) and the node's role on shared storage
//! ([`storage_role`]). Everything above this crate (the SMB protocol core,
//! the state store) sees typed, safe operations and typed errors.
//!
//! Must never: panic on input or on a system call result (every errno maps
//! to an error value), let a client path reach outside its share, or
//! contain protocol logic (NTSTATUS codes, access masks, leases belong to
//! the SMB layer).

pub mod fs;
pub mod net;
pub mod storage_role;
