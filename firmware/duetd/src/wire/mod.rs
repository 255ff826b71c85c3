//! SMB2 wire formats: the header view, NTSTATUS codes, transport framing, and bounds-checked
//! little-endian readers/writers used by each command's codec.
//!
//! Owns: byte layouts only. Never does I/O, never panics on input: every read is checked
//! and returns `WireError`.

pub mod header;
pub mod status;

pub use header::{Command, Header, HEADER_LEN};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message truncated")]
    Truncated,
    #[error("not an SMB2 protocol id")]
    BadProtocolId,
    #[error("bad structure size")]
    BadStructureSize,
    #[error("field out of range")]
    OutOfRange,
    #[error("bad UTF-16 string")]
    BadString,
}

/// A bounds-checked reader over one command body (the bytes after the header) that also
/// knows the whole message, because SMB2 buffer offsets count from the header's start.
#[derive(Clone, Copy)]
pub struct Body<'a> {
    /// The whole message, header included.
    pub msg: &'a [u8],
}

impl<'a> Body<'a> {
    pub fn new(msg: &'a [u8]) -> Self {
        Body { msg }
    }
    fn at(&self, off: usize, n: usize) -> Result<&'a [u8], WireError> {
        let s = HEADER_LEN.checked_add(off).ok_or(WireError::OutOfRange)?;
        self.msg.get(s..s + n).ok_or(WireError::Truncated)
    }
    pub fn u8(&self, off: usize) -> Result<u8, WireError> {
        Ok(self.at(off, 1)?[0])
    }
    pub fn u16(&self, off: usize) -> Result<u16, WireError> {
        let b = self.at(off, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32(&self, off: usize) -> Result<u32, WireError> {
        let b = self.at(off, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&self, off: usize) -> Result<u64, WireError> {
        let b = self.at(off, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub fn bytes(&self, off: usize, n: usize) -> Result<&'a [u8], WireError> {
        self.at(off, n)
    }
    /// Checks the command's StructureSize (first two body bytes).
    pub fn expect_structure_size(&self, size: u16) -> Result<(), WireError> {
        if self.u16(0)? != size {
            return Err(WireError::BadStructureSize);
        }
        Ok(())
    }
    /// A buffer given by an offset from the header's start and a length. A zero length
    /// yields an empty slice whatever the offset.
    pub fn buffer(&self, offset: usize, len: usize) -> Result<&'a [u8], WireError> {
        if len == 0 {
            return Ok(&[]);
        }
        let end = offset.checked_add(len).ok_or(WireError::OutOfRange)?;
        if offset < HEADER_LEN {
            return Err(WireError::OutOfRange);
        }
        self.msg.get(offset..end).ok_or(WireError::OutOfRange)
    }
}

/// Little-endian reads from any slice, checked.
pub fn le_u16(b: &[u8], off: usize) -> Result<u16, WireError> {
    let s = b.get(off..off + 2).ok_or(WireError::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}
pub fn le_u32(b: &[u8], off: usize) -> Result<u32, WireError> {
    let s = b.get(off..off + 4).ok_or(WireError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
pub fn le_u64(b: &[u8], off: usize) -> Result<u64, WireError> {
    let s = b.get(off..off + 8).ok_or(WireError::Truncated)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

/// Decodes UTF-16LE (odd length or unpaired surrogate -> BadString).
pub fn utf16le(b: &[u8]) -> Result<String, WireError> {
    if !b.len().is_multiple_of(2) {
        return Err(WireError::BadString);
    }
    let units = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| WireError::BadString)
}

pub fn put_utf16le(out: &mut Vec<u8>, s: &str) {
    for u in s.encode_utf16() {
        out.extend_from_slice(&u.to_le_bytes());
    }
}

/// Appends little-endian values to a response buffer.
pub trait PutLe {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn pad_to(&mut self, align: usize);
    fn set_u16(&mut self, at: usize, v: u16);
    fn set_u32(&mut self, at: usize, v: u32);
}

impl PutLe for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v)
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes())
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes())
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes())
    }
    fn pad_to(&mut self, align: usize) {
        while !self.len().is_multiple_of(align) {
            self.push(0)
        }
    }
    fn set_u16(&mut self, at: usize, v: u16) {
        self[at..at + 2].copy_from_slice(&v.to_le_bytes())
    }
    fn set_u32(&mut self, at: usize, v: u32) {
        self[at..at + 4].copy_from_slice(&v.to_le_bytes())
    }
}

/// Direct-TCP transport framing (MS-SMB2 2.1): a zero byte then a 24-bit big-endian length.
pub mod framing {
    /// The largest message we accept: an 8 MiB WRITE plus headers and a compound's slack.
    pub const MAX_MESSAGE: usize = 8 * 1024 * 1024 + 64 * 1024;

    pub fn decode_len(hdr: [u8; 4]) -> Option<usize> {
        if hdr[0] != 0 {
            return None;
        }
        Some(((hdr[1] as usize) << 16) | ((hdr[2] as usize) << 8) | hdr[3] as usize)
    }

    pub fn encode_len(len: usize) -> [u8; 4] {
        [0, (len >> 16) as u8, (len >> 8) as u8, len as u8]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_reads_are_checked() {
        let mut m = vec![0u8; 70];
        m[64] = 9;
        let b = Body::new(&m);
        assert_eq!(b.u16(0).unwrap(), 9);
        assert_eq!(b.u32(4), Err(WireError::Truncated));
        assert_eq!(b.buffer(10, 4), Err(WireError::OutOfRange));
        assert_eq!(b.buffer(66, 8), Err(WireError::OutOfRange));
        assert_eq!(b.buffer(usize::MAX, 8), Err(WireError::OutOfRange));
        assert_eq!(b.buffer(1, 0).unwrap(), &[] as &[u8]);
    }

    #[test]
    fn utf16_round_trip_and_errors() {
        let mut v = Vec::new();
        put_utf16le(&mut v, "dir\\fïle😀");
        assert_eq!(utf16le(&v).unwrap(), "dir\\fïle😀");
        assert_eq!(utf16le(&v[..3]), Err(WireError::BadString));
        assert_eq!(utf16le(&[0x00, 0xD8]), Err(WireError::BadString));
    }

    #[test]
    fn framing() {
        assert_eq!(
            framing::decode_len(framing::encode_len(0x12_3456)),
            Some(0x12_3456)
        );
        assert_eq!(framing::decode_len([0x85, 0, 0, 0]), None);
    }
}
