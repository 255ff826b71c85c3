//! The SMB2 packet header (MS-SMB2 2.2.1) as a view over bytes.
//!
//! Owns: the byte layout of the 64-byte header and its field accessors. Never copies the
//! buffer, never panics on short input (`new_checked` validates the length once).

use super::WireError;

/// Byte ranges of the header fields (MS-SMB2 2.2.1.1 / 2.2.1.2).
pub mod field {
    use core::ops::Range;
    pub const PROTOCOL_ID: Range<usize> = 0..4;
    pub const STRUCTURE_SIZE: Range<usize> = 4..6;
    pub const CREDIT_CHARGE: Range<usize> = 6..8;
    /// Status in responses; ChannelSequence (2 bytes) + Reserved in 3.x requests.
    pub const STATUS: Range<usize> = 8..12;
    pub const COMMAND: Range<usize> = 12..14;
    pub const CREDIT: Range<usize> = 14..16;
    pub const FLAGS: Range<usize> = 16..20;
    pub const NEXT_COMMAND: Range<usize> = 20..24;
    pub const MESSAGE_ID: Range<usize> = 24..32;
    /// Sync header: Reserved (4) + TreeId (4). Async header: AsyncId (8).
    pub const ASYNC_ID: Range<usize> = 32..40;
    pub const TREE_ID: Range<usize> = 36..40;
    pub const SESSION_ID: Range<usize> = 40..48;
    pub const SIGNATURE: Range<usize> = 48..64;
}

pub const HEADER_LEN: usize = 64;
pub const PROTOCOL_ID: [u8; 4] = [0xFE, b'S', b'M', b'B'];
pub const SMB1_PROTOCOL_ID: [u8; 4] = [0xFF, b'S', b'M', b'B'];
pub const TRANSFORM_PROTOCOL_ID: [u8; 4] = [0xFD, b'S', b'M', b'B'];

/// SMB2 header flags (MS-SMB2 2.2.1.2).
pub mod flags {
    pub const SERVER_TO_REDIR: u32 = 0x0000_0001;
    pub const ASYNC_COMMAND: u32 = 0x0000_0002;
    pub const RELATED_OPERATIONS: u32 = 0x0000_0004;
    pub const SIGNED: u32 = 0x0000_0008;
    pub const PRIORITY_MASK: u32 = 0x0000_0070;
    pub const DFS_OPERATIONS: u32 = 0x1000_0000;
    pub const REPLAY_OPERATION: u32 = 0x2000_0000;
}

/// SMB2 commands (MS-SMB2 2.2.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Command {
    Negotiate = 0,
    SessionSetup = 1,
    Logoff = 2,
    TreeConnect = 3,
    TreeDisconnect = 4,
    Create = 5,
    Close = 6,
    Flush = 7,
    Read = 8,
    Write = 9,
    Lock = 10,
    Ioctl = 11,
    Cancel = 12,
    Echo = 13,
    QueryDirectory = 14,
    ChangeNotify = 15,
    QueryInfo = 16,
    SetInfo = 17,
    OplockBreak = 18,
}

impl Command {
    pub fn from_u16(v: u16) -> Option<Command> {
        use Command::*;
        Some(match v {
            0 => Negotiate,
            1 => SessionSetup,
            2 => Logoff,
            3 => TreeConnect,
            4 => TreeDisconnect,
            5 => Create,
            6 => Close,
            7 => Flush,
            8 => Read,
            9 => Write,
            10 => Lock,
            11 => Ioctl,
            12 => Cancel,
            13 => Echo,
            14 => QueryDirectory,
            15 => ChangeNotify,
            16 => QueryInfo,
            17 => SetInfo,
            18 => OplockBreak,
            _ => return None,
        })
    }
}

/// A read-only or mutable view of an SMB2 header at the start of a buffer.
#[derive(Debug, Clone, Copy)]
pub struct Header<T: AsRef<[u8]>> {
    buf: T,
}

fn u16_at(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    u16::from_le_bytes([b[r.start], b[r.start + 1]])
}
fn u32_at(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[r]);
    u32::from_le_bytes(a)
}
fn u64_at(b: &[u8], r: core::ops::Range<usize>) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[r]);
    u64::from_le_bytes(a)
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps a buffer after checking it holds a whole header with the SMB2 protocol id and
    /// StructureSize 64.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::PROTOCOL_ID] != PROTOCOL_ID {
            return Err(WireError::BadProtocolId);
        }
        if u16_at(b, field::STRUCTURE_SIZE) != 64 {
            return Err(WireError::BadStructureSize);
        }
        Ok(Header { buf })
    }
    pub fn new_unchecked(buf: T) -> Self {
        Header { buf }
    }
    pub fn into_inner(self) -> T {
        self.buf
    }
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    pub fn credit_charge(&self) -> u16 {
        u16_at(self.b(), field::CREDIT_CHARGE)
    }
    pub fn status(&self) -> u32 {
        u32_at(self.b(), field::STATUS)
    }
    /// ChannelSequence of a 3.x request (low 16 bits of the Status field).
    pub fn channel_sequence(&self) -> u16 {
        u16_at(self.b(), field::STATUS.start..field::STATUS.start + 2)
    }
    pub fn command_raw(&self) -> u16 {
        u16_at(self.b(), field::COMMAND)
    }
    pub fn command(&self) -> Option<Command> {
        Command::from_u16(self.command_raw())
    }
    pub fn credit(&self) -> u16 {
        u16_at(self.b(), field::CREDIT)
    }
    pub fn flags(&self) -> u32 {
        u32_at(self.b(), field::FLAGS)
    }
    pub fn next_command(&self) -> u32 {
        u32_at(self.b(), field::NEXT_COMMAND)
    }
    pub fn message_id(&self) -> u64 {
        u64_at(self.b(), field::MESSAGE_ID)
    }
    pub fn async_id(&self) -> u64 {
        u64_at(self.b(), field::ASYNC_ID)
    }
    pub fn tree_id(&self) -> u32 {
        u32_at(self.b(), field::TREE_ID)
    }
    pub fn session_id(&self) -> u64 {
        u64_at(self.b(), field::SESSION_ID)
    }
    pub fn signature(&self) -> &[u8] {
        &self.b()[field::SIGNATURE]
    }
    pub fn is_async(&self) -> bool {
        self.flags() & flags::ASYNC_COMMAND != 0
    }
    pub fn is_related(&self) -> bool {
        self.flags() & flags::RELATED_OPERATIONS != 0
    }
    pub fn is_signed(&self) -> bool {
        self.flags() & flags::SIGNED != 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }
    pub fn set_protocol(&mut self) {
        self.bm()[field::PROTOCOL_ID].copy_from_slice(&PROTOCOL_ID);
        self.bm()[field::STRUCTURE_SIZE].copy_from_slice(&64u16.to_le_bytes());
    }
    pub fn set_credit_charge(&mut self, v: u16) {
        self.bm()[field::CREDIT_CHARGE].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_status(&mut self, v: u32) {
        self.bm()[field::STATUS].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_command(&mut self, v: u16) {
        self.bm()[field::COMMAND].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_credit(&mut self, v: u16) {
        self.bm()[field::CREDIT].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_flags(&mut self, v: u32) {
        self.bm()[field::FLAGS].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_next_command(&mut self, v: u32) {
        self.bm()[field::NEXT_COMMAND].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_message_id(&mut self, v: u64) {
        self.bm()[field::MESSAGE_ID].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_async_id(&mut self, v: u64) {
        self.bm()[field::ASYNC_ID].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_process_id(&mut self, v: u32) {
        self.bm()[32..36].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_tree_id(&mut self, v: u32) {
        self.bm()[field::TREE_ID].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_session_id(&mut self, v: u64) {
        self.bm()[field::SESSION_ID].copy_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_short_and_foreign() {
        assert_eq!(
            Header::new_checked(&[0u8; 10][..]).unwrap_err(),
            WireError::Truncated
        );
        let mut b = [0u8; 64];
        b[0..4].copy_from_slice(&SMB1_PROTOCOL_ID);
        assert_eq!(
            Header::new_checked(&b[..]).unwrap_err(),
            WireError::BadProtocolId
        );
        b[0..4].copy_from_slice(&PROTOCOL_ID);
        assert_eq!(
            Header::new_checked(&b[..]).unwrap_err(),
            WireError::BadStructureSize
        );
    }

    #[test]
    fn fields_round_trip() {
        let mut b = [0u8; 64];
        let mut h = Header::new_unchecked(&mut b[..]);
        h.set_protocol();
        h.set_command(Command::Read as u16);
        h.set_message_id(0x1122_3344_5566_7788);
        h.set_session_id(42);
        h.set_tree_id(7);
        h.set_flags(flags::SERVER_TO_REDIR | flags::SIGNED);
        h.set_credit(31);
        let h = Header::new_checked(&b[..]).unwrap();
        assert_eq!(h.command(), Some(Command::Read));
        assert_eq!(h.message_id(), 0x1122_3344_5566_7788);
        assert_eq!(h.session_id(), 42);
        assert_eq!(h.tree_id(), 7);
        assert!(h.is_signed() && !h.is_async());
        assert_eq!(h.credit(), 31);
    }
}
