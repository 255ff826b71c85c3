//! Parsing of getdents64(2) records (`struct linux_dirent64`), done on
//! bytes with bounds checks: a malformed buffer ends the batch with EIO,
//! never a panic.

use super::sys::Errno;

const NAME_OFFSET: usize = 19;

pub(crate) struct RawEntry<'a> {
    pub name: &'a [u8],
    /// Only a hint (DT_UNKNOWN on some filesystems): callers stat anyway.
    #[allow(dead_code)]
    pub d_type: u8,
}

/// Iterates over the records of one getdents64 batch.
pub(crate) struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Records<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Records<'a> {
        Records { buf, pos: 0 }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RawEntry<'a>, Errno>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let bad = Some(Err(Errno(libc::EIO)));
        let reclen = match rest.get(16..18) {
            Some(&[a, b]) => usize::from(u16::from_ne_bytes([a, b])),
            _ => {
                self.pos = self.buf.len();
                return bad;
            }
        };
        let Some(rec) = rest.get(..reclen).filter(|_| reclen > NAME_OFFSET) else {
            self.pos = self.buf.len();
            return bad;
        };
        self.pos += reclen;
        let d_type = rec[18];
        let raw = &rec[NAME_OFFSET..];
        let name = match raw.iter().position(|&b| b == 0) {
            Some(n) => &raw[..n],
            None => raw,
        };
        Some(Ok(RawEntry { name, d_type }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &[u8], d_type: u8) -> Vec<u8> {
        let reclen = (NAME_OFFSET + name.len() + 1).div_ceil(8) * 8;
        let mut r = vec![0u8; reclen];
        r[..8].copy_from_slice(&42u64.to_ne_bytes());
        r[16..18].copy_from_slice(&(reclen as u16).to_ne_bytes());
        r[18] = d_type;
        r[NAME_OFFSET..NAME_OFFSET + name.len()].copy_from_slice(name);
        r
    }

    #[test]
    fn parses_records() {
        let mut buf = record(b".", 4);
        buf.extend(record(b"a-much-longer-name.txt", 8));
        buf.extend(record(b"l", 10));
        let got: Vec<(Vec<u8>, u8)> = Records::new(&buf)
            .map(|r| r.map(|e| (e.name.to_vec(), e.d_type)))
            .collect::<Result<_, _>>()
            .expect("well-formed");
        assert_eq!(
            got,
            vec![
                (b".".to_vec(), 4),
                (b"a-much-longer-name.txt".to_vec(), 8),
                (b"l".to_vec(), 10)
            ]
        );
    }

    #[test]
    fn malformed_records_end_with_an_error() {
        let mut buf = record(b"ok", 8);
        let good = buf.len();
        buf.extend(record(b"x", 8));
        // reclen pointing past the end
        buf[good + 16..good + 18].copy_from_slice(&500u16.to_ne_bytes());
        let mut it = Records::new(&buf);
        assert!(matches!(it.next(), Some(Ok(_))));
        assert!(matches!(it.next(), Some(Err(Errno(libc::EIO)))));
        assert!(it.next().is_none());
        // zero reclen must not loop forever
        let mut z = record(b"z", 8);
        z[16..18].copy_from_slice(&0u16.to_ne_bytes());
        let mut it = Records::new(&z);
        assert!(matches!(it.next(), Some(Err(_))));
        assert!(it.next().is_none());
        // truncated header
        assert!(matches!(Records::new(&[0u8; 10]).next(), Some(Err(_))));
    }
}
