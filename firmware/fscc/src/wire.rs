//! Little-endian append helpers and bounds-checked readers shared by the
//! encoders and decoders. Nothing here panics on any input.

use crate::FsccError;

pub(crate) fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_zeros(out: &mut Vec<u8>, n: usize) {
    out.resize(out.len() + n, 0);
}

/// Appends `s` as UTF-16LE without terminator.
pub(crate) fn put_utf16(out: &mut Vec<u8>, s: &str) {
    for unit in s.encode_utf16() {
        put_u16(out, unit);
    }
}

/// Length in bytes of `s` encoded as UTF-16LE.
pub(crate) fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count() * 2
}

/// Length in bytes of `s` as UTF-16LE, as the u32 the wire carries.
/// Names longer than 2 GiB cannot be expressed; callers reject them.
pub(crate) fn utf16_len_u32(s: &str) -> Option<u32> {
    u32::try_from(utf16_len(s)).ok()
}

/// `v` rounded up to a multiple of `align` (a power of two), as in
/// MS-FSA 2.1.4.5 BlockAlign. `None` on overflow.
pub(crate) fn block_align(v: usize, align: usize) -> Option<usize> {
    Some(v.checked_add(align - 1)? & !(align - 1))
}

pub(crate) fn get_u8(buf: &[u8], off: usize) -> Option<u8> {
    buf.get(off).copied()
}

pub(crate) fn get_u16(buf: &[u8], off: usize) -> Option<u16> {
    let b = buf.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

pub(crate) fn get_u32(buf: &[u8], off: usize) -> Option<u32> {
    let b = buf.get(off..off.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    Some(u32::from_le_bytes(a))
}

pub(crate) fn get_u64(buf: &[u8], off: usize) -> Option<u64> {
    let b = buf.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// Decodes a UTF-16LE byte string. An odd byte count or an unpaired
/// surrogate is `InvalidParameter`.
pub(crate) fn decode_utf16le(bytes: &[u8]) -> Result<String, FsccError> {
    if bytes.len() & 1 != 0 {
        return Err(FsccError::InvalidParameter);
    }
    let units = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| FsccError::InvalidParameter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getters_are_bounds_checked() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(get_u8(&b, 7), Some(8));
        assert_eq!(get_u8(&b, 8), None);
        assert_eq!(get_u16(&b, 6), Some(0x0807));
        assert_eq!(get_u16(&b, 7), None);
        assert_eq!(get_u32(&b, 4), Some(0x0807_0605));
        assert_eq!(get_u32(&b, 5), None);
        assert_eq!(get_u64(&b, 0), Some(0x0807_0605_0403_0201));
        assert_eq!(get_u64(&b, 1), None);
        assert_eq!(get_u64(&b, usize::MAX), None);
    }

    #[test]
    fn utf16_decoding_rejects_bad_input() {
        assert_eq!(decode_utf16le(&[0x61, 0x00, 0x62, 0x00]).unwrap(), "ab");
        assert_eq!(decode_utf16le(&[0x61]), Err(FsccError::InvalidParameter));
        // Lone high surrogate, lone low surrogate.
        assert_eq!(
            decode_utf16le(&[0x00, 0xD8]),
            Err(FsccError::InvalidParameter)
        );
        assert_eq!(
            decode_utf16le(&[0x00, 0xDC, 0x61, 0x00]),
            Err(FsccError::InvalidParameter)
        );
        // A proper pair: U+1F600.
        assert_eq!(
            decode_utf16le(&[0x3D, 0xD8, 0x00, 0xDE]).unwrap(),
            "\u{1F600}"
        );
    }

    #[test]
    fn block_align_rounds_up() {
        assert_eq!(block_align(0, 8), Some(0));
        assert_eq!(block_align(1, 8), Some(8));
        assert_eq!(block_align(8, 8), Some(8));
        assert_eq!(block_align(102, 8), Some(104));
        assert_eq!(block_align(usize::MAX, 8), None);
    }
}
