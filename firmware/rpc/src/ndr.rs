//! NDR20 (little-endian) marshalling helpers: a bounds-checked reader for request
//! stubs and a writer for response stubs. Alignment is relative to the start of the
//! stub, which is what NDR over connection-oriented RPC requires.
//!
//! Only what MS-SRVS / MS-WKST share browsing needs: `u32`, unique / full pointers
//! (referent ids), conformant varying UTF-16 strings, conformant arrays of flat
//! structures whose pointers are deferred after the array.

use crate::RpcError;

type Result<T> = core::result::Result<T, RpcError>;

/// Bounds-checked NDR reader over one request stub.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn align(&mut self, n: usize) -> Result<()> {
        let aligned = self.pos.next_multiple_of(n);
        if aligned > self.buf.len() {
            return Err(RpcError::Truncated("NDR padding"));
        }
        self.pos = aligned;
        Ok(())
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(RpcError::Truncated(what))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or(RpcError::Truncated(what))?;
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        self.align(4)?;
        let b = self.take(4, "NDR uint32")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A unique / full pointer's referent id; `true` when the referent follows.
    pub(crate) fn pointer(&mut self) -> Result<bool> {
        Ok(self.u32()? != 0)
    }

    /// A conformant varying UTF-16 string (`[string] wchar_t*` referent). Trailing
    /// NULs are dropped; invalid UTF-16 is replaced, not rejected.
    pub(crate) fn wstring(&mut self) -> Result<String> {
        let max = self.u32()?;
        let offset = self.u32()?;
        let actual = self.u32()?;
        if offset != 0 || actual > max {
            return Err(RpcError::Malformed("NDR string counts"));
        }
        let bytes = (actual as usize)
            .checked_mul(2)
            .ok_or(RpcError::Malformed("NDR string length"))?;
        let raw = self.take(bytes, "NDR string")?;
        let mut units: Vec<u16> = raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        while units.last() == Some(&0) {
            units.pop();
        }
        Ok(String::from_utf16_lossy(&units))
    }

    /// A conformant array of bytes (`[size_is(n)] unsigned char*` referent).
    pub(crate) fn byte_array(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()?;
        self.take(n as usize, "NDR byte array")
    }

    /// `[in, string, unique] wchar_t* ServerName`, the first argument of every call here.
    pub(crate) fn server_name(&mut self) -> Result<Option<String>> {
        if self.pointer()? {
            Ok(Some(self.wstring()?))
        } else {
            Ok(None)
        }
    }

    /// Skips (but validates) a client-supplied `*_CONTAINER { count; [size_is] T* }`
    /// whose element layout is `layout`.
    pub(crate) fn skip_container(&mut self, layout: &[Kind]) -> Result<()> {
        let _entries = self.u32()?;
        if !self.pointer()? {
            return Ok(());
        }
        let n = self.u32()? as usize;
        // Every element has at least one 4-byte scalar per field.
        let min = n
            .checked_mul(layout.len() * 4)
            .ok_or(RpcError::Malformed("NDR array count"))?;
        if min > self.remaining() {
            return Err(RpcError::Truncated("NDR array"));
        }
        let mut deferred = Vec::new();
        for _ in 0..n {
            for kind in layout {
                let v = self.u32()?;
                if *kind != Kind::U32 && v != 0 {
                    deferred.push(*kind);
                }
            }
        }
        for kind in deferred {
            match kind {
                Kind::Str => {
                    self.wstring()?;
                }
                Kind::Bytes => {
                    self.byte_array()?;
                }
                Kind::U32 => {}
            }
        }
        Ok(())
    }
}

/// Field kinds of a flat NDR structure (used to skip client-sent arrays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    U32,
    Str,
    Bytes,
}

/// One field of a flat structure being marshalled.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field<'a> {
    U32(u32),
    /// `[string] wchar_t*`; `None` marshals a NULL pointer.
    Str(Option<&'a str>),
}

/// NDR writer for one response stub. Referent ids start at 0x00020000 and step by
/// 4, as the Microsoft NDR engine does.
pub(crate) struct Writer {
    buf: Vec<u8>,
    next_referent: u32,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Writer {
            buf: Vec::new(),
            next_referent: 0x0002_0000,
        }
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    fn align(&mut self, n: usize) {
        let target = self.buf.len().next_multiple_of(n);
        self.buf.resize(target, 0);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A non-NULL unique pointer: writes a fresh referent id.
    pub(crate) fn referent(&mut self) {
        let id = self.next_referent;
        self.next_referent = self.next_referent.wrapping_add(4);
        self.u32(id);
    }

    pub(crate) fn pointer(&mut self, present: bool) {
        if present {
            self.referent();
        } else {
            self.u32(0);
        }
    }

    /// Conformant varying UTF-16 string with its terminating NUL.
    pub(crate) fn wstring(&mut self, s: &str) {
        let units: Vec<u16> = s.encode_utf16().chain(core::iter::once(0)).collect();
        // A u32 count cannot overflow for any string the host can hold in memory
        // on the targets we build for; saturate rather than panic regardless.
        let n = u32::try_from(units.len()).unwrap_or(u32::MAX);
        self.u32(n);
        self.u32(0);
        self.u32(n);
        for u in units {
            self.buf.extend_from_slice(&u.to_le_bytes());
        }
    }

    fn scalars(&mut self, fields: &[Field<'_>]) {
        for f in fields {
            match f {
                Field::U32(v) => self.u32(*v),
                Field::Str(s) => self.pointer(s.is_some()),
            }
        }
    }

    fn deferred(&mut self, fields: &[Field<'_>]) {
        for f in fields {
            if let Field::Str(Some(s)) = f {
                self.wstring(s);
            }
        }
    }

    /// A flat structure: its scalars, then the referents of its pointers.
    pub(crate) fn structure(&mut self, fields: &[Field<'_>]) {
        self.align(4);
        self.scalars(fields);
        self.deferred(fields);
    }

    /// A conformant array of flat structures: the count, every element's scalars,
    /// then every element's pointer referents in order.
    pub(crate) fn array(&mut self, elements: &[Vec<Field<'_>>]) {
        let n = u32::try_from(elements.len()).unwrap_or(u32::MAX);
        self.u32(n);
        for e in elements {
            self.scalars(e);
        }
        for e in elements {
            self.deferred(e);
        }
    }
}

/// Marshalled size of one array element (scalars plus referents), used to honour
/// `PreferedMaximumLength`.
pub(crate) fn element_size(fields: &[Field<'_>]) -> usize {
    let mut w = Writer::new();
    w.structure(fields);
    w.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wstring_round_trip() {
        let mut w = Writer::new();
        w.wstring("IPC$");
        w.wstring("");
        let b = w.into_bytes();
        // 12 + 10 bytes, padding 2, 12 + 2.
        assert_eq!(b.len(), 12 + 10 + 2 + 12 + 2);
        let mut r = Reader::new(&b);
        assert_eq!(r.wstring().unwrap(), "IPC$");
        assert_eq!(r.wstring().unwrap(), "");
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn reader_rejects_lies() {
        // actual > max
        let b = [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0x41, 0, 0, 0];
        assert!(Reader::new(&b).wstring().is_err());
        // huge count, no data
        let b = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(Reader::new(&b).wstring().is_err());
        // container with a huge element count
        let b = [0, 0, 0, 0, 4, 0, 2, 0, 0xff, 0xff, 0xff, 0x7f];
        assert!(Reader::new(&b).skip_container(&[Kind::Str]).is_err());
        assert!(Reader::new(&[1, 2]).u32().is_err());
    }

    #[test]
    fn array_defers_pointers() {
        let mut w = Writer::new();
        w.array(&[
            vec![Field::Str(Some("a")), Field::U32(7)],
            vec![Field::Str(None), Field::U32(8)],
        ]);
        let b = w.into_bytes();
        let mut r = Reader::new(&b);
        assert_eq!(r.u32().unwrap(), 2);
        assert!(r.pointer().unwrap());
        assert_eq!(r.u32().unwrap(), 7);
        assert!(!r.pointer().unwrap());
        assert_eq!(r.u32().unwrap(), 8);
        assert_eq!(r.wstring().unwrap(), "a");
    }
}
