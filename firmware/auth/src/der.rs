//! Minimal DER (ITU-T X.690) reader and writer: just what SPNEGO (RFC 4178) needs.
//!
//! Owns: tag-length-value framing with single-byte tags and definite lengths.
//! Must never: panic or read past its input; accept indefinite lengths or
//! multi-byte tags (neither appears in SPNEGO tokens); allocate while reading.

use crate::AuthError;

/// Universal tag: INTEGER-like ENUMERATED.
pub const TAG_ENUMERATED: u8 = 0x0a;
/// Universal tag: OBJECT IDENTIFIER.
pub const TAG_OID: u8 = 0x06;
/// Universal tag: OCTET STRING.
pub const TAG_OCTET_STRING: u8 = 0x04;
/// Universal tag: SEQUENCE (constructed).
pub const TAG_SEQUENCE: u8 = 0x30;
/// Universal tag: GeneralString.
pub const TAG_GENERAL_STRING: u8 = 0x1b;
/// `[APPLICATION 0]` constructed: the GSS-API InitialContextToken (RFC 2743 3.1).
pub const TAG_APPLICATION_0: u8 = 0x60;

/// Context-specific constructed tag `[n]` (n < 31).
pub const fn context(n: u8) -> u8 {
    0xa0 | n
}

/// One decoded TLV: its tag, its content, and the whole encoding (tag and length included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

/// A cursor over a run of TLVs.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Reads the next TLV, whatever its tag.
    pub fn next_tlv(&mut self) -> Result<Tlv<'a>, AuthError> {
        let data = self.rest;
        let (&tag, after_tag) = data
            .split_first()
            .ok_or(AuthError::Malformed("DER: truncated tag"))?;
        if tag & 0x1f == 0x1f {
            return Err(AuthError::Malformed("DER: multi-byte tag"));
        }
        let (&first, after_len0) = after_tag
            .split_first()
            .ok_or(AuthError::Malformed("DER: truncated length"))?;
        let (len, after_len) = if first < 0x80 {
            (usize::from(first), after_len0)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 {
                return Err(AuthError::Malformed("DER: indefinite length"));
            }
            if n > 4 {
                return Err(AuthError::Malformed("DER: length too large"));
            }
            let bytes = after_len0
                .get(..n)
                .ok_or(AuthError::Malformed("DER: truncated length"))?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &after_len0[n..])
        };
        let content = after_len
            .get(..len)
            .ok_or(AuthError::Malformed("DER: content runs past its container"))?;
        let header = data.len() - after_len.len();
        let raw = &data[..header + len];
        self.rest = &after_len[len..];
        Ok(Tlv { tag, content, raw })
    }

    /// Reads the next TLV and checks its tag.
    pub fn expect(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>, AuthError> {
        let tlv = self.next_tlv()?;
        if tlv.tag != tag {
            return Err(AuthError::Malformed(what));
        }
        Ok(tlv)
    }
}

/// Appends one TLV with a minimal definite length.
pub fn write_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

/// One TLV as a new vector.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    write_tlv(&mut out, tag, content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        for len in [0usize, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000] {
            let content = vec![0x5a; len];
            let enc = tlv(TAG_OCTET_STRING, &content);
            let mut r = Reader::new(&enc);
            let t = r.next_tlv().unwrap();
            assert_eq!(t.tag, TAG_OCTET_STRING);
            assert_eq!(t.content.len(), len);
            assert_eq!(t.raw, &enc[..]);
            assert!(r.is_empty());
        }
        assert_eq!(tlv(0x04, &[0; 0x80])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(tlv(0x04, &[0; 0x100])[..4], [0x04, 0x82, 0x01, 0x00]);
    }

    #[test]
    fn rejects_bad_framing() {
        for bad in [
            &[][..],
            &[0x04],
            &[0x04, 0x02, 0x00],
            &[0x04, 0x80],
            &[0x04, 0x85, 1, 1, 1, 1, 1],
            &[0x04, 0x82, 0x01],
            &[0x1f, 0x01, 0x00],
        ] {
            assert!(Reader::new(bad).next_tlv().is_err(), "{bad:02x?}");
        }
    }
}
