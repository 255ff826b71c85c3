//! SMB2 wire encoding for the bench client (MS-SMB2 2.2): request builders that append one
//! message to a buffer, and bounds-checked views of responses.
//!
//! Owns: byte layouts of the requests the bench sends and the response fields it reads.
//! Must never: do I/O, keep state between messages (the connection does), or panic on a
//! response's bytes (every read is checked and fails with an `Error`).

use crate::Error;

pub const PROTOCOL_ID: [u8; 4] = [0xfe, b'S', b'M', b'B'];
pub const HEADER_LEN: usize = 64;

/// Command codes (MS-SMB2 2.2.1.2).
pub mod cmd {
    pub const NEGOTIATE: u16 = 0x00;
    pub const SESSION_SETUP: u16 = 0x01;
    pub const LOGOFF: u16 = 0x02;
    pub const TREE_CONNECT: u16 = 0x03;
    pub const TREE_DISCONNECT: u16 = 0x04;
    pub const CREATE: u16 = 0x05;
    pub const CLOSE: u16 = 0x06;
    pub const READ: u16 = 0x08;
    pub const WRITE: u16 = 0x09;
    pub const QUERY_DIRECTORY: u16 = 0x0e;
    pub const QUERY_INFO: u16 = 0x10;
}

/// Header flags.
pub mod flags {
    pub const ASYNC_COMMAND: u32 = 0x02;
    pub const RELATED_OPERATIONS: u32 = 0x04;
    pub const SIGNED: u32 = 0x08;
}

/// NTSTATUS values the client looks at.
pub mod status {
    pub const SUCCESS: u32 = 0;
    pub const PENDING: u32 = 0x0000_0103;
    pub const NO_MORE_FILES: u32 = 0x8000_0006;
    pub const MORE_PROCESSING_REQUIRED: u32 = 0xc000_0016;
}

pub const DIALECT_202: u16 = 0x0202;
pub const DIALECT_210: u16 = 0x0210;
pub const DIALECT_300: u16 = 0x0300;
pub const DIALECT_302: u16 = 0x0302;
pub const DIALECT_311: u16 = 0x0311;

pub const SIGNING_REQUIRED: u16 = 0x02;
pub const CAP_DFS: u32 = 0x01;
pub const CAP_LEASING: u32 = 0x02;
pub const CAP_LARGE_MTU: u32 = 0x04;

/// Access mask bits (MS-SMB2 2.2.13.1).
pub mod access {
    pub const FILE_READ_DATA: u32 = 0x0000_0001;
    pub const FILE_WRITE_DATA: u32 = 0x0000_0002;
    pub const FILE_APPEND_DATA: u32 = 0x0000_0004;
    pub const FILE_READ_EA: u32 = 0x0000_0008;
    pub const FILE_WRITE_EA: u32 = 0x0000_0010;
    pub const FILE_LIST_DIRECTORY: u32 = 0x0000_0001;
    pub const FILE_READ_ATTRIBUTES: u32 = 0x0000_0080;
    pub const FILE_WRITE_ATTRIBUTES: u32 = 0x0000_0100;
    pub const DELETE: u32 = 0x0001_0000;
    pub const READ_CONTROL: u32 = 0x0002_0000;
    pub const SYNCHRONIZE: u32 = 0x0010_0000;
    pub const GENERIC_READ: u32 =
        FILE_READ_DATA | FILE_READ_EA | FILE_READ_ATTRIBUTES | READ_CONTROL | SYNCHRONIZE;
    pub const GENERIC_WRITE: u32 = FILE_WRITE_DATA
        | FILE_APPEND_DATA
        | FILE_WRITE_EA
        | FILE_WRITE_ATTRIBUTES
        | READ_CONTROL
        | SYNCHRONIZE;
}

pub const SHARE_ALL: u32 = 0x7;
pub const ATTR_NORMAL: u32 = 0x80;
pub const ATTR_DIRECTORY: u32 = 0x10;

/// CreateDisposition (MS-SMB2 2.2.13).
pub mod disposition {
    pub const OPEN: u32 = 1;
    pub const CREATE: u32 = 2;
    pub const OPEN_IF: u32 = 3;
    pub const OVERWRITE_IF: u32 = 5;
}

/// CreateOptions (MS-SMB2 2.2.13).
pub mod options {
    pub const DIRECTORY_FILE: u32 = 0x0000_0001;
    pub const NON_DIRECTORY_FILE: u32 = 0x0000_0040;
    pub const DELETE_ON_CLOSE: u32 = 0x0000_1000;
}

/// The FileId of the previous CREATE in a related compound (MS-SMB2 3.2.4.1.4).
pub const RELATED_FILE_ID: [u8; 16] = [0xff; 16];

pub const FILE_ID_BOTH_DIRECTORY_INFORMATION: u8 = 0x25;
pub const FILE_ALL_INFORMATION: u8 = 0x12;
pub const INFO_FILE: u8 = 0x01;

/// Negotiate context types (MS-SMB2 2.2.3.1).
pub const PREAUTH_INTEGRITY_CAPABILITIES: u16 = 0x0001;
pub const ENCRYPTION_CAPABILITIES: u16 = 0x0002;
pub const SIGNING_CAPABILITIES: u16 = 0x0008;

// ------------------------------------------------------------------ little-endian access

pub fn u16_at(b: &[u8], off: usize) -> Result<u16, Error> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| Error::proto("message too short"))
}

pub fn u32_at(b: &[u8], off: usize) -> Result<u32, Error> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| Error::proto("message too short"))
}

#[cfg(test)]
pub fn u64_at(b: &[u8], off: usize) -> Result<u64, Error> {
    let s = b
        .get(off..off + 8)
        .ok_or_else(|| Error::proto("message too short"))?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

pub fn slice_at(b: &[u8], off: usize, len: usize) -> Result<&[u8], Error> {
    off.checked_add(len)
        .and_then(|end| b.get(off..end))
        .ok_or_else(|| Error::proto("field points outside the message"))
}

fn put16(o: &mut Vec<u8>, v: u16) {
    o.extend_from_slice(&v.to_le_bytes());
}
fn put32(o: &mut Vec<u8>, v: u32) {
    o.extend_from_slice(&v.to_le_bytes());
}
fn put64(o: &mut Vec<u8>, v: u64) {
    o.extend_from_slice(&v.to_le_bytes());
}
fn pad8(o: &mut Vec<u8>, start: usize) {
    while !(o.len() - start).is_multiple_of(8) {
        o.push(0);
    }
}

pub fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

// ------------------------------------------------------------------ requests

/// The header fields a request sets (MS-SMB2 2.2.1.2).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReqHeader {
    pub command: u16,
    pub credit_charge: u16,
    pub credit_request: u16,
    pub flags: u32,
    pub message_id: u64,
    pub tree_id: u32,
    pub session_id: u64,
}

/// Appends a 64-byte sync header. NextCommand and Signature are left zero.
pub fn put_header(o: &mut Vec<u8>, h: &ReqHeader) {
    o.extend_from_slice(&PROTOCOL_ID);
    put16(o, 64);
    put16(o, h.credit_charge);
    put32(o, 0); // ChannelSequence/Reserved
    put16(o, h.command);
    put16(o, h.credit_request);
    put32(o, h.flags);
    put32(o, 0); // NextCommand
    put64(o, h.message_id);
    put32(o, 0xfeff); // Reserved (ProcessId)
    put32(o, h.tree_id);
    put64(o, h.session_id);
    o.extend_from_slice(&[0u8; 16]);
}

/// The body of one request: everything after the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body<'a> {
    /// Built in full by one of the `*_body` functions below.
    Raw(Vec<u8>),
    /// A WRITE: fixed part plus data taken from the caller's buffer.
    Write {
        offset: u64,
        file_id: [u8; 16],
        data: &'a [u8],
    },
}

/// One request of a (possibly compound) operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Req<'a> {
    pub command: u16,
    /// Bytes the request moves (READ length, WRITE length), for its CreditCharge.
    pub payload: u32,
    /// Part of a related compound after its first member (SMB2_FLAGS_RELATED_OPERATIONS).
    pub related: bool,
    pub body: Body<'a>,
}

impl Req<'_> {
    /// CreditCharge (MS-SMB2 3.1.5.2): one per started 64 KiB, at least one.
    pub fn charge(&self) -> u16 {
        (self.payload.div_ceil(65536)).max(1) as u16
    }
}

/// Appends the body of `req` to `o` (after its header).
pub fn put_body(o: &mut Vec<u8>, body: &Body<'_>) {
    match body {
        Body::Raw(b) => o.extend_from_slice(b),
        Body::Write {
            offset,
            file_id,
            data,
        } => {
            put16(o, 49);
            put16(o, (HEADER_LEN + 48) as u16); // DataOffset
            put32(o, data.len() as u32);
            put64(o, *offset);
            o.extend_from_slice(file_id);
            put32(o, 0); // Channel
            put32(o, 0); // RemainingBytes
            put16(o, 0); // WriteChannelInfoOffset
            put16(o, 0); // WriteChannelInfoLength
            put32(o, 0); // Flags
            if data.is_empty() {
                o.push(0);
            } else {
                o.extend_from_slice(data);
            }
        }
    }
}

/// NEGOTIATE (2.2.3) offering 2.0.2 to 3.1.1, with the 3.1.1 contexts a Windows 11 client
/// sends: SHA-512 preauth integrity, AES-128-GCM/CCM ciphers, AES-GMAC/AES-CMAC signing.
pub fn negotiate_body(client_guid: [u8; 16], salt: [u8; 32]) -> Vec<u8> {
    let dialects = [
        DIALECT_202,
        DIALECT_210,
        DIALECT_300,
        DIALECT_302,
        DIALECT_311,
    ];
    let mut o = Vec::with_capacity(200);
    put16(&mut o, 36);
    put16(&mut o, dialects.len() as u16);
    put16(&mut o, SIGNING_REQUIRED);
    put16(&mut o, 0);
    put32(&mut o, CAP_DFS | CAP_LEASING | CAP_LARGE_MTU);
    o.extend_from_slice(&client_guid);
    let ctx_off_pos = o.len();
    put32(&mut o, 0); // NegotiateContextOffset, patched
    put16(&mut o, 3);
    put16(&mut o, 0);
    for d in dialects {
        put16(&mut o, d);
    }
    // Offsets count from the start of the header; the body starts at 64 (8-aligned).
    pad8(&mut o, 0);
    let ctx_off = (HEADER_LEN + o.len()) as u32;
    o[ctx_off_pos..ctx_off_pos + 4].copy_from_slice(&ctx_off.to_le_bytes());
    let ctx = |o: &mut Vec<u8>, ty: u16, data: &[u8]| {
        pad8(o, 0);
        put16(o, ty);
        put16(o, data.len() as u16);
        put32(o, 0);
        o.extend_from_slice(data);
    };
    let mut pre = vec![1, 0, 32, 0, 1, 0]; // 1 algorithm, 32-byte salt, SHA-512
    pre.extend_from_slice(&salt);
    ctx(&mut o, PREAUTH_INTEGRITY_CAPABILITIES, &pre);
    ctx(&mut o, ENCRYPTION_CAPABILITIES, &[2, 0, 2, 0, 1, 0]); // GCM, CCM
    ctx(&mut o, SIGNING_CAPABILITIES, &[2, 0, 2, 0, 1, 0]); // AES-GMAC, AES-CMAC
    o
}

/// SESSION_SETUP (2.2.5).
pub fn session_setup_body(token: &[u8]) -> Vec<u8> {
    let mut o = Vec::with_capacity(24 + token.len());
    put16(&mut o, 25);
    o.push(0); // Flags
    o.push(SIGNING_REQUIRED as u8);
    put32(&mut o, CAP_DFS);
    put32(&mut o, 0); // Channel
    put16(&mut o, (HEADER_LEN + 24) as u16);
    put16(&mut o, token.len() as u16);
    put64(&mut o, 0); // PreviousSessionId
    o.extend_from_slice(token);
    o
}

/// TREE_CONNECT (2.2.9) to `\\server\share`.
pub fn tree_connect_body(unc: &str) -> Vec<u8> {
    let path = utf16(unc);
    let mut o = Vec::with_capacity(8 + path.len());
    put16(&mut o, 9);
    put16(&mut o, 0);
    put16(&mut o, (HEADER_LEN + 8) as u16);
    put16(&mut o, path.len() as u16);
    o.extend_from_slice(&path);
    o
}

/// A body of StructureSize 4 and a reserved u16 (LOGOFF, TREE_DISCONNECT).
pub fn empty_body() -> Vec<u8> {
    vec![4, 0, 0, 0]
}

/// The parameters of a CREATE (2.2.13).
#[derive(Debug, Clone, Default)]
pub struct Create<'a> {
    pub name: &'a str,
    pub desired_access: u32,
    pub file_attributes: u32,
    pub share_access: u32,
    pub disposition: u32,
    pub options: u32,
    pub oplock_level: u8,
    /// Create contexts, already encoded as a chain (see [`create_contexts`]).
    pub contexts: Vec<u8>,
}

pub fn create_body(c: &Create<'_>) -> Vec<u8> {
    let name = utf16(c.name);
    let mut o = Vec::with_capacity(64 + name.len() + c.contexts.len());
    put16(&mut o, 57);
    o.push(0); // SecurityFlags
    o.push(c.oplock_level);
    put32(&mut o, 2); // Impersonation
    put64(&mut o, 0); // SmbCreateFlags
    put64(&mut o, 0); // Reserved
    put32(&mut o, c.desired_access);
    put32(&mut o, c.file_attributes);
    put32(&mut o, c.share_access);
    put32(&mut o, c.disposition);
    put32(&mut o, c.options);
    put16(&mut o, (HEADER_LEN + 56) as u16); // NameOffset
    put16(&mut o, name.len() as u16);
    let ctx_pos = o.len();
    put32(&mut o, 0);
    put32(&mut o, 0);
    if name.is_empty() {
        o.push(0);
    } else {
        o.extend_from_slice(&name);
    }
    if !c.contexts.is_empty() {
        pad8(&mut o, 0);
        let off = (HEADER_LEN + o.len()) as u32;
        o[ctx_pos..ctx_pos + 4].copy_from_slice(&off.to_le_bytes());
        o[ctx_pos + 4..ctx_pos + 8].copy_from_slice(&(c.contexts.len() as u32).to_le_bytes());
        o.extend_from_slice(&c.contexts);
    }
    o
}

/// Encodes create contexts (2.2.13.2) as a chain: (4-byte name, data) each.
pub fn create_contexts(list: &[(&[u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut o = Vec::new();
    for (i, (name, data)) in list.iter().enumerate() {
        let start = o.len();
        put32(&mut o, 0); // Next, patched
        put16(&mut o, 16); // NameOffset
        put16(&mut o, 4); // NameLength
        put16(&mut o, 0);
        put16(&mut o, if data.is_empty() { 0 } else { 24 }); // DataOffset
        put32(&mut o, data.len() as u32);
        o.extend_from_slice(&name[..]);
        put32(&mut o, 0); // pad name to 8
        o.extend_from_slice(data);
        if i + 1 < list.len() {
            pad8(&mut o, start);
            let next = (o.len() - start) as u32;
            o[start..start + 4].copy_from_slice(&next.to_le_bytes());
        }
    }
    o
}

/// DH2Q data (2.2.13.2.11): Timeout, Flags, Reserved, CreateGuid.
pub fn dh2q_data(timeout_ms: u32, create_guid: [u8; 16]) -> Vec<u8> {
    let mut o = Vec::with_capacity(32);
    put32(&mut o, timeout_ms);
    put32(&mut o, 0);
    put64(&mut o, 0);
    o.extend_from_slice(&create_guid);
    o
}

/// RqLs version 2 data (2.2.13.2.10): key, state, flags, duration, parent key, epoch.
pub fn lease_v2_data(lease_key: [u8; 16], state: u32) -> Vec<u8> {
    let mut o = Vec::with_capacity(52);
    o.extend_from_slice(&lease_key);
    put32(&mut o, state);
    put32(&mut o, 0);
    put64(&mut o, 0);
    o.extend_from_slice(&[0u8; 16]);
    put16(&mut o, 0);
    put16(&mut o, 0);
    o
}

pub fn close_body(file_id: [u8; 16]) -> Vec<u8> {
    let mut o = Vec::with_capacity(24);
    put16(&mut o, 24);
    put16(&mut o, 0);
    put32(&mut o, 0);
    o.extend_from_slice(&file_id);
    o
}

pub fn read_body(file_id: [u8; 16], offset: u64, len: u32) -> Vec<u8> {
    let mut o = Vec::with_capacity(49);
    put16(&mut o, 49);
    o.push(0x50); // Padding: data right after the 16-byte response body
    o.push(0);
    put32(&mut o, len);
    put64(&mut o, offset);
    o.extend_from_slice(&file_id);
    put32(&mut o, 0); // MinimumCount
    put32(&mut o, 0); // Channel
    put32(&mut o, 0); // RemainingBytes
    put16(&mut o, 0);
    put16(&mut o, 0);
    o.push(0);
    o
}

pub fn query_directory_body(
    file_id: [u8; 16],
    pattern: &str,
    restart: bool,
    out_len: u32,
) -> Vec<u8> {
    let name = utf16(pattern);
    let mut o = Vec::with_capacity(32 + name.len());
    put16(&mut o, 33);
    o.push(FILE_ID_BOTH_DIRECTORY_INFORMATION);
    o.push(if restart { 0x01 } else { 0 });
    put32(&mut o, 0);
    o.extend_from_slice(&file_id);
    put16(&mut o, (HEADER_LEN + 32) as u16);
    put16(&mut o, name.len() as u16);
    put32(&mut o, out_len);
    o.extend_from_slice(&name);
    o
}

pub fn query_info_body(file_id: [u8; 16], info_type: u8, class: u8, out_len: u32) -> Vec<u8> {
    let mut o = Vec::with_capacity(41);
    put16(&mut o, 41);
    o.push(info_type);
    o.push(class);
    put32(&mut o, out_len);
    put16(&mut o, 0);
    put16(&mut o, 0);
    put32(&mut o, 0);
    put32(&mut o, 0);
    put32(&mut o, 0);
    o.extend_from_slice(&file_id);
    o.push(0);
    o
}

// ------------------------------------------------------------------ responses

/// A view of one response message (header + body) inside a received frame.
#[derive(Debug, Clone, Copy)]
pub struct Resp<'a> {
    pub msg: &'a [u8],
}

impl<'a> Resp<'a> {
    /// Checks the protocol id and length of one message.
    pub fn new(msg: &'a [u8]) -> Result<Self, Error> {
        if msg.len() < HEADER_LEN || msg[..4] != PROTOCOL_ID {
            return Err(Error::proto("not an SMB2 message"));
        }
        Ok(Self { msg })
    }
    pub fn status(&self) -> u32 {
        u32::from_le_bytes([self.msg[8], self.msg[9], self.msg[10], self.msg[11]])
    }
    pub fn command(&self) -> u16 {
        u16::from_le_bytes([self.msg[12], self.msg[13]])
    }
    pub fn credits(&self) -> u16 {
        u16::from_le_bytes([self.msg[14], self.msg[15]])
    }
    pub fn flags(&self) -> u32 {
        u32::from_le_bytes([self.msg[16], self.msg[17], self.msg[18], self.msg[19]])
    }
    pub fn next_command(&self) -> u32 {
        u32::from_le_bytes([self.msg[20], self.msg[21], self.msg[22], self.msg[23]])
    }
    pub fn message_id(&self) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.msg[24..32]);
        u64::from_le_bytes(a)
    }
    /// TreeId of a sync header (bytes 36..40).
    pub fn tree_id(&self) -> u32 {
        u32::from_le_bytes([self.msg[36], self.msg[37], self.msg[38], self.msg[39]])
    }
    pub fn session_id(&self) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.msg[40..48]);
        u64::from_le_bytes(a)
    }
    pub fn is_interim(&self) -> bool {
        self.status() == status::PENDING && self.flags() & flags::ASYNC_COMMAND != 0
    }
    pub fn body(&self) -> &'a [u8] {
        &self.msg[HEADER_LEN..]
    }
    /// A buffer given by an offset (from the header's start) and a length.
    pub fn buffer(&self, off: usize, len: usize) -> Result<&'a [u8], Error> {
        slice_at(self.msg, off, len)
    }
    /// FileId of a CREATE response.
    pub fn create_file_id(&self) -> Result<[u8; 16], Error> {
        let mut id = [0u8; 16];
        id.copy_from_slice(slice_at(self.body(), 64, 16)?);
        Ok(id)
    }
    /// OplockLevel and the names of the create contexts of a CREATE response.
    pub fn create_grants(&self) -> Result<(u8, Vec<[u8; 4]>), Error> {
        let b = self.body();
        let level = *b
            .get(2)
            .ok_or_else(|| Error::proto("short CREATE response"))?;
        let mut names = Vec::new();
        let off = u32_at(b, 80)? as usize;
        let len = u32_at(b, 84)? as usize;
        if len == 0 {
            return Ok((level, names));
        }
        let chain = self.buffer(off, len)?;
        let mut at = 0usize;
        loop {
            let ctx = chain
                .get(at..)
                .ok_or_else(|| Error::proto("bad create context chain"))?;
            let next = u32_at(ctx, 0)? as usize;
            let name_off = u16_at(ctx, 4)? as usize;
            let name_len = u16_at(ctx, 6)? as usize;
            if name_len == 4 {
                let mut n = [0u8; 4];
                n.copy_from_slice(slice_at(ctx, name_off, 4)?);
                names.push(n);
            }
            if next == 0 {
                return Ok((level, names));
            }
            at = at
                .checked_add(next)
                .ok_or_else(|| Error::proto("bad create context chain"))?;
        }
    }

    /// Data of a READ response.
    pub fn read_data(&self) -> Result<&'a [u8], Error> {
        let b = self.body();
        let off = *b
            .get(2)
            .ok_or_else(|| Error::proto("short READ response"))? as usize;
        let len = u32_at(b, 4)? as usize;
        self.buffer(off, len)
    }
    /// Count of a WRITE response.
    pub fn write_count(&self) -> Result<u32, Error> {
        u32_at(self.body(), 4)
    }
    /// The output buffer of a QUERY_DIRECTORY / QUERY_INFO response.
    pub fn output_buffer(&self) -> Result<&'a [u8], Error> {
        let b = self.body();
        let off = u16_at(b, 2)? as usize;
        let len = u32_at(b, 4)? as usize;
        if len == 0 {
            return Ok(&[]);
        }
        self.buffer(off, len)
    }
    /// Security buffer of a SESSION_SETUP response.
    pub fn session_setup_token(&self) -> Result<&'a [u8], Error> {
        let b = self.body();
        let off = u16_at(b, 4)? as usize;
        let len = u16_at(b, 6)? as usize;
        if len == 0 {
            return Ok(&[]);
        }
        self.buffer(off, len)
    }
}

/// Splits a frame into its (compound) members. Each member runs to its NextCommand or
/// to the end of the frame.
pub fn split_compound(frame: &[u8]) -> Result<Vec<Resp<'_>>, Error> {
    let mut out = Vec::with_capacity(1);
    let mut off = 0usize;
    loop {
        let rest = frame
            .get(off..)
            .ok_or_else(|| Error::proto("NextCommand points past the frame"))?;
        let head = Resp::new(rest)?;
        let next = head.next_command() as usize;
        if next == 0 {
            out.push(head);
            return Ok(out);
        }
        if next < HEADER_LEN || next > rest.len() {
            return Err(Error::proto("bad NextCommand"));
        }
        out.push(Resp::new(&rest[..next])?);
        off += next;
    }
}

/// What the client needs from a NEGOTIATE response (2.2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiateResp {
    pub security_mode: u16,
    pub dialect: u16,
    pub capabilities: u32,
    pub max_read: u32,
    pub max_write: u32,
    /// SigningAlgorithmId chosen in SMB2_SIGNING_CAPABILITIES, if the server sent one.
    pub signing_algorithm: Option<u16>,
    pub security_buffer: Vec<u8>,
}

pub fn parse_negotiate(r: &Resp<'_>) -> Result<NegotiateResp, Error> {
    let b = r.body();
    if u16_at(b, 0)? != 65 {
        return Err(Error::proto("NEGOTIATE response: bad StructureSize"));
    }
    let dialect = u16_at(b, 4)?;
    let sec_off = u16_at(b, 56)? as usize;
    let sec_len = u16_at(b, 58)? as usize;
    let security_buffer = if sec_len == 0 {
        Vec::new()
    } else {
        r.buffer(sec_off, sec_len)?.to_vec()
    };
    let mut signing_algorithm = None;
    if dialect == DIALECT_311 {
        let count = u16_at(b, 6)? as usize;
        let mut off = u32_at(b, 60)? as usize;
        for _ in 0..count {
            off = off.next_multiple_of(8);
            let ty = u16_at(r.msg, off)?;
            let len = u16_at(r.msg, off + 2)? as usize;
            let data = slice_at(r.msg, off + 8, len)?;
            if ty == SIGNING_CAPABILITIES && u16_at(data, 0)? >= 1 {
                signing_algorithm = Some(u16_at(data, 2)?);
            }
            off += 8 + len;
        }
    }
    Ok(NegotiateResp {
        security_mode: u16_at(b, 2)?,
        dialect,
        capabilities: u32_at(b, 24)?,
        max_read: u32_at(b, 32)?,
        max_write: u32_at(b, 36)?,
        signing_algorithm,
        security_buffer,
    })
}

/// Appends the 4-byte Direct TCP transport header (MS-SMB2 2.1) for `len` bytes.
pub fn transport_header(len: usize) -> Result<[u8; 4], Error> {
    if len > 0x00ff_ffff {
        return Err(Error::proto("message too large for the transport header"));
    }
    let l = len as u32;
    Ok([0, (l >> 16) as u8, (l >> 8) as u8, l as u8])
}

/// Names and attributes in a FileIdBothDirectoryInformation buffer (MS-FSCC 2.4.17).
pub fn dir_entry_names(buf: &[u8]) -> Result<Vec<(String, u32)>, Error> {
    let mut out = Vec::new();
    if buf.is_empty() {
        return Ok(out);
    }
    let mut off = 0usize;
    loop {
        let e = buf
            .get(off..)
            .ok_or_else(|| Error::proto("bad directory entry offset"))?;
        let next = u32_at(e, 0)? as usize;
        let attrs = u32_at(e, 56)?;
        let len = u32_at(e, 60)? as usize;
        let name = slice_at(e, 104, len)?;
        let units: Vec<u16> = name
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        out.push((String::from_utf16_lossy(&units), attrs));
        if next == 0 {
            return Ok(out);
        }
        off = off
            .checked_add(next)
            .ok_or_else(|| Error::proto("bad NextEntryOffset"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let mut o = Vec::new();
        put_header(
            &mut o,
            &ReqHeader {
                command: cmd::CREATE,
                credit_charge: 1,
                credit_request: 33,
                flags: flags::SIGNED,
                message_id: 0x0102,
                tree_id: 7,
                session_id: 0xaabb,
            },
        );
        assert_eq!(o.len(), HEADER_LEN);
        let r = Resp::new(&o).unwrap();
        assert_eq!(r.command(), cmd::CREATE);
        assert_eq!(r.credits(), 33);
        assert_eq!(u16_at(&o, 6).unwrap(), 1);
        assert_eq!(r.flags(), flags::SIGNED);
        assert_eq!(r.message_id(), 0x0102);
        assert_eq!(r.tree_id(), 7);
        assert_eq!(r.session_id(), 0xaabb);
        assert_eq!(u16_at(&o, 4).unwrap(), 64);
    }

    #[test]
    fn credit_charge_rounds_up() {
        let req = |payload| Req {
            command: cmd::READ,
            payload,
            related: false,
            body: Body::Raw(vec![]),
        };
        assert_eq!(req(0).charge(), 1);
        assert_eq!(req(65536).charge(), 1);
        assert_eq!(req(65537).charge(), 2);
        assert_eq!(req(1 << 20).charge(), 16);
    }

    #[test]
    fn fixed_body_sizes_match_structure_sizes() {
        // StructureSize counts the fixed part plus one byte of the variable buffer.
        assert_eq!(close_body([0; 16]).len(), 24);
        assert_eq!(read_body([0; 16], 0, 1).len(), 49);
        assert_eq!(query_info_body([0; 16], 1, 18, 10).len(), 41);
        let c = create_body(&Create {
            name: "a",
            ..Default::default()
        });
        assert_eq!(c.len(), 56 + 2);
        assert_eq!(u16_at(&c, 44).unwrap() as usize, HEADER_LEN + 56);
        let mut w = Vec::new();
        put_body(
            &mut w,
            &Body::Write {
                offset: 9,
                file_id: [1; 16],
                data: b"hello",
            },
        );
        assert_eq!(w.len(), 48 + 5);
        assert_eq!(u16_at(&w, 2).unwrap() as usize, HEADER_LEN + 48);
        assert_eq!(u32_at(&w, 4).unwrap(), 5);
        assert_eq!(u64_at(&w, 8).unwrap(), 9);
    }

    #[test]
    fn negotiate_contexts_are_aligned() {
        let b = negotiate_body([3; 16], [4; 32]);
        let ctx_off = u32_at(&b, 28).unwrap() as usize;
        assert_eq!(ctx_off % 8, 0);
        let mut off = ctx_off - HEADER_LEN;
        let mut types = vec![];
        for _ in 0..u16_at(&b, 32).unwrap() {
            off = off.next_multiple_of(8);
            types.push(u16_at(&b, off).unwrap());
            off += 8 + u16_at(&b, off + 2).unwrap() as usize;
        }
        assert_eq!(off, b.len());
        assert_eq!(
            types,
            [
                PREAUTH_INTEGRITY_CAPABILITIES,
                ENCRYPTION_CAPABILITIES,
                SIGNING_CAPABILITIES
            ]
        );
    }

    #[test]
    fn create_context_chain() {
        let chain = create_contexts(&[
            (b"DH2Q", dh2q_data(0, [9; 16])),
            (b"RqLs", lease_v2_data([7; 16], 7)),
        ]);
        let next = u32_at(&chain, 0).unwrap() as usize;
        assert_eq!(next, 24 + 32);
        assert_eq!(&chain[16..20], b"DH2Q");
        assert_eq!(&chain[next + 16..next + 20], b"RqLs");
        assert_eq!(u32_at(&chain, next).unwrap(), 0);
        assert_eq!(u32_at(&chain, next + 12).unwrap(), 52);
        assert_eq!(chain.len(), next + 24 + 52);
    }

    /// Two FileIdBothDirectoryInformation entries, the second one last.
    #[test]
    fn directory_entries() {
        let entry = |name: &str, attrs: u32, next: u32| {
            let n = utf16(name);
            let mut e = vec![0u8; 104];
            e[0..4].copy_from_slice(&next.to_le_bytes());
            e[56..60].copy_from_slice(&attrs.to_le_bytes());
            e[60..64].copy_from_slice(&(n.len() as u32).to_le_bytes());
            e.extend_from_slice(&n);
            e
        };
        let mut buf = entry("a.txt", ATTR_NORMAL, 0);
        buf.resize(120, 0); // 8-aligned next entry
        let first_len = buf.len() as u32;
        buf[0..4].copy_from_slice(&first_len.to_le_bytes());
        buf.extend_from_slice(&entry("dir", ATTR_DIRECTORY, 0));
        assert_eq!(
            dir_entry_names(&buf).unwrap(),
            vec![
                ("a.txt".to_string(), ATTR_NORMAL),
                ("dir".to_string(), ATTR_DIRECTORY)
            ]
        );
        // A NextEntryOffset or name running past the buffer is an error, not a panic.
        buf[0..4].copy_from_slice(&4000u32.to_le_bytes());
        assert!(dir_entry_names(&buf).is_err());
        assert!(dir_entry_names(&buf[..50]).is_err());
        assert!(dir_entry_names(&[]).unwrap().is_empty());
    }

    #[test]
    fn split_compound_members() {
        let mut frame = Vec::new();
        put_header(
            &mut frame,
            &ReqHeader {
                message_id: 1,
                ..Default::default()
            },
        );
        frame.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0]);
        let next = frame.len() as u32;
        frame[20..24].copy_from_slice(&next.to_le_bytes());
        put_header(
            &mut frame,
            &ReqHeader {
                message_id: 2,
                ..Default::default()
            },
        );
        let parts = split_compound(&frame).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].message_id(), 2);
        // A NextCommand past the end is an error, not a panic.
        frame[20..24].copy_from_slice(&1000u32.to_le_bytes());
        assert!(split_compound(&frame).is_err());
        assert!(split_compound(&frame[..10]).is_err());
    }
}
