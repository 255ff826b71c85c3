//! `duet-rpc`: the server end of DCE/RPC over SMB named pipes (`\srvsvc`, `\wkssvc`).
//!
//! # What this crate owns
//! * Framing of connection-oriented DCE/RPC PDUs (C706 chapter 12, MS-RPCE) as they
//!   arrive through SMB2 WRITE / FSCTL_PIPE_TRANSCEIVE, including reassembly of
//!   multi-fragment requests and fragmentation of responses at the client's
//!   `max_recv_frag`.
//! * Presentation-context negotiation: NDR20 (little-endian) only, NDR64 rejected
//!   with `provider_rejection / proposed_transfer_syntaxes_not_supported`, and the
//!   MS-RPCE bind-time feature negotiation answered with `negotiate_ack`.
//! * NDR20 marshalling of the srvsvc (MS-SRVS) and wkssvc (MS-WKST) calls that
//!   share browsing needs: NetrShareEnum, NetrShareGetInfo, NetrServerGetInfo and
//!   NetrWkstaGetInfo.
//!
//! # What it must never do
//! * No I/O, no clocks, no threads, no global state: the caller moves bytes in with
//!   [`Pipe::write`] and out with [`Pipe::read`].
//! * Never panic on, or trust, client input: every length and count is checked
//!   against the bytes actually received, and allocations are bounded.
//! * No authentication: DCE/RPC auth verifiers are refused (bind_nak / fault). The
//!   SMB session already authenticated the user; this crate makes no access
//!   decisions.
//! * It never invents shares: [`RpcHost::shares`] is the whole list (including
//!   `IPC$`), in the order the host gives it.

mod ndr;
mod pdu;
mod pipe;
mod srvsvc;
mod wkssvc;

pub use pipe::Pipe;

/// A disk share (`STYPE_DISKTREE`).
pub const STYPE_DISKTREE: u32 = 0;
/// The type `IPC$` reports: `STYPE_IPC (3) | STYPE_SPECIAL (0x8000_0000)`.
pub const STYPE_IPC: u32 = 0x8000_0003;
/// Flag for administrative / hidden special shares (`ADMIN$`, `C$`, `IPC$`).
pub const STYPE_SPECIAL: u32 = 0x8000_0000;
/// `PLATFORM_ID_NT`, the platform id every current SMB server reports.
pub const PLATFORM_ID_NT: u32 = 500;
/// `SV_TYPE_WORKSTATION`.
pub const SV_TYPE_WORKSTATION: u32 = 0x0000_0001;
/// `SV_TYPE_SERVER`.
pub const SV_TYPE_SERVER: u32 = 0x0000_0002;
/// `SV_TYPE_SERVER_UNIX` (what Samba also sets).
pub const SV_TYPE_SERVER_UNIX: u32 = 0x0000_0800;
/// `SV_TYPE_NT`.
pub const SV_TYPE_NT: u32 = 0x0000_1000;

/// One share as the RPC layer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareInfo {
    /// Share name as clients type it (`share`, `IPC$`).
    pub name: String,
    /// `STYPE_*` value, e.g. [`STYPE_DISKTREE`] or [`STYPE_IPC`].
    pub share_type: u32,
    /// Free-text remark shown by `smbclient -L` / Explorer.
    pub comment: String,
}

/// Identity of this server as srvsvc / wkssvc report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// NetBIOS name of the server (e.g. `DUET`).
    pub name: String,
    /// Server comment (description).
    pub comment: String,
    /// Workgroup / domain (wkssvc `langroup`).
    pub domain: String,
    /// OS major version reported to clients.
    pub version_major: u32,
    /// OS minor version reported to clients.
    pub version_minor: u32,
    /// `SV_TYPE_*` bits.
    pub server_type: u32,
    /// Usually [`PLATFORM_ID_NT`].
    pub platform_id: u32,
}

/// What the RPC layer asks of the daemon. Called synchronously from [`Pipe::write`].
pub trait RpcHost {
    /// Every share, in the order it should be listed, `IPC$` included.
    fn shares(&self) -> Vec<ShareInfo>;
    /// This server's identity.
    fn server(&self) -> ServerInfo;
    /// The user name the SMB session authenticated (none of the current calls needs it).
    fn user(&self) -> String;
}

/// Errors [`Pipe::write`] reports when the byte stream cannot be answered with a
/// DCE/RPC PDU (anything answerable becomes a fault, bind_nak or a Win32 status in
/// the response instead). After an error the pipe drops its buffered partial input;
/// negotiated contexts stay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The header is not connection-oriented DCE/RPC version 5.
    #[error("not a connection-oriented DCE/RPC v5 PDU (version {major}.{minor})")]
    BadVersion {
        /// `rpc_vers` as received.
        major: u8,
        /// `rpc_vers_minor` as received.
        minor: u8,
    },
    /// Only little-endian integer representation is implemented.
    #[error("unsupported data representation {0:02x?}")]
    UnsupportedDataRepresentation([u8; 4]),
    /// `frag_length` is smaller than the fixed part of the PDU, or `auth_length` does not fit.
    #[error("inconsistent fragment length {frag_length} (auth length {auth_length})")]
    BadFragmentLength {
        /// `frag_length` as received.
        frag_length: u16,
        /// `auth_length` as received.
        auth_length: u16,
    },
    /// A PDU type a server never accepts from a client (or an unknown type).
    #[error("PDU type {0} is not accepted from a client")]
    UnexpectedPdu(u8),
    /// The client keeps writing without reading; the outgoing queue is full.
    #[error("outgoing queue full ({0} bytes pending)")]
    QueueFull(usize),
    /// Stub or PDU body ended early (internal; surfaces as a fault / bind_nak).
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// Stub or PDU body is inconsistent (internal; surfaces as a fault / bind_nak).
    #[error("malformed {0}")]
    Malformed(&'static str),
}
