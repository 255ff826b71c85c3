//! Helpers shared by the integration tests: hex, the capture fixtures, and just enough
//! SMB2 header / SESSION_SETUP layout to find security buffers.
#![allow(dead_code)]

pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert_eq!(s.len() & 1, 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

pub fn hex16(s: &str) -> [u8; 16] {
    hex(s).try_into().expect("16 bytes")
}

pub fn hex64(s: &str) -> [u8; 64] {
    hex(s).try_into().expect("64 bytes")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    C2S,
    S2C,
}

/// One NetBIOS-session message of a capture.
#[derive(Debug, Clone)]
pub struct Frame {
    pub number: u32,
    pub dir: Dir,
    pub bytes: Vec<u8>,
}

/// Parses a fixture: `# comment` lines, then `frame direction hex` lines.
pub fn load(text: &str) -> Vec<Frame> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split_whitespace();
            let number = parts.next().unwrap().parse().unwrap();
            let dir = match parts.next().unwrap() {
                "c2s" => Dir::C2S,
                "s2c" => Dir::S2C,
                other => panic!("direction {other}"),
            };
            Frame {
                number,
                dir,
                bytes: hex(parts.next().unwrap()),
            }
        })
        .collect()
}

pub const SMB2_NEGOTIATE: u16 = 0x0000;
pub const SMB2_SESSION_SETUP: u16 = 0x0001;
pub const SMB2_READ: u16 = 0x0008;
pub const SMB2_WRITE: u16 = 0x0009;
pub const SMB2_FLAGS_SERVER_TO_REDIR: u32 = 0x1;
pub const SMB2_FLAGS_SIGNED: u32 = 0x8;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

pub fn is_transform(msg: &[u8]) -> bool {
    msg.starts_with(&[0xfd, b'S', b'M', b'B'])
}

pub fn command(msg: &[u8]) -> u16 {
    u16_at(msg, 12)
}

pub fn flags(msg: &[u8]) -> u32 {
    u32_at(msg, 16)
}

pub fn status(msg: &[u8]) -> u32 {
    u32_at(msg, 8)
}

pub fn is_signed(msg: &[u8]) -> bool {
    flags(msg) & SMB2_FLAGS_SIGNED != 0
}

/// SecurityBuffer of a NEGOTIATE response (MS-SMB2 2.2.4).
pub fn negotiate_response_security_buffer(msg: &[u8]) -> &[u8] {
    let off = usize::from(u16_at(msg, 64 + 56));
    let len = usize::from(u16_at(msg, 64 + 58));
    &msg[off..off + len]
}

/// DialectRevision of a NEGOTIATE response.
pub fn negotiate_response_dialect(msg: &[u8]) -> u16 {
    u16_at(msg, 64 + 4)
}

/// SecurityBuffer of a SESSION_SETUP request (2.2.5) or response (2.2.6).
pub fn session_setup_security_buffer(msg: &[u8]) -> &[u8] {
    let (off, len) = if flags(msg) & SMB2_FLAGS_SERVER_TO_REDIR != 0 {
        (u16_at(msg, 64 + 4), u16_at(msg, 64 + 6))
    } else {
        (u16_at(msg, 64 + 12), u16_at(msg, 64 + 14))
    };
    &msg[usize::from(off)..usize::from(off) + usize::from(len)]
}

/// Data of a WRITE request (2.2.21).
pub fn write_request_data(msg: &[u8]) -> &[u8] {
    let off = usize::from(u16_at(msg, 64 + 2));
    let len = u32_at(msg, 64 + 4) as usize;
    &msg[off..off + len]
}

/// Data of a READ response (2.2.20).
pub fn read_response_data(msg: &[u8]) -> &[u8] {
    let off = usize::from(msg[64 + 2]);
    let len = u32_at(msg, 64 + 4) as usize;
    &msg[off..off + len]
}

/// `'duet test vector\n' * 6`, cut to 100 bytes: the file every capture writes and reads.
pub fn hello_txt() -> Vec<u8> {
    b"duet test vector\n".repeat(6)[..100].to_vec()
}
