//! RC4 (ARCFOUR), as MS-NLMP uses it: to unwrap the EncryptedRandomSessionKey
//! (RC4K, 3.4.5.1) and to seal NTLMSSP message-signature checksums (3.4.4.2).
//!
//! Owns: the keystream state. Must never: be used for anything but those two legacy
//! purposes (RC4 is broken as a general cipher).

/// RC4 keystream state; `apply` continues the stream across calls (an NTLM "handle").
#[derive(Clone)]
pub struct Rc4 {
    s: [u8; 256],
    i: u8,
    j: u8,
}

impl Rc4 {
    /// Key schedule. An empty key is treated as a single zero byte.
    pub fn new(key: &[u8]) -> Self {
        let mut s = [0u8; 256];
        for (n, b) in s.iter_mut().enumerate() {
            *b = n as u8;
        }
        let key: &[u8] = if key.is_empty() { &[0] } else { key };
        let mut j = 0u8;
        for n in 0..256 {
            j = j.wrapping_add(s[n]).wrapping_add(key[n % key.len()]);
            s.swap(n, usize::from(j));
        }
        Self { s, i: 0, j: 0 }
    }

    /// XORs the next keystream bytes into `data`.
    pub fn apply(&mut self, data: &mut [u8]) {
        for b in data {
            self.i = self.i.wrapping_add(1);
            self.j = self.j.wrapping_add(self.s[usize::from(self.i)]);
            self.s.swap(usize::from(self.i), usize::from(self.j));
            let k = self.s[usize::from(
                self.s[usize::from(self.i)].wrapping_add(self.s[usize::from(self.j)]),
            )];
            *b ^= k;
        }
    }
}

/// RC4K(key, data) of MS-NLMP 6: a fresh keystream over one buffer.
pub fn rc4k(key: &[u8], data: &[u8; 16]) -> [u8; 16] {
    let mut out = *data;
    Rc4::new(key).apply(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // Classic test vectors ("Key"/"Plaintext", "Wiki"/"pedia").
        let mut d = *b"Plaintext";
        Rc4::new(b"Key").apply(&mut d);
        assert_eq!(d, [0xbb, 0xf3, 0x16, 0xe8, 0xd9, 0x40, 0xaf, 0x0a, 0xd3]);
        let mut d = *b"pedia";
        Rc4::new(b"Wiki").apply(&mut d);
        assert_eq!(d, [0x10, 0x21, 0xbf, 0x04, 0x20]);
    }

    #[test]
    fn stream_continues_across_calls() {
        let mut a = [0u8; 10];
        Rc4::new(b"k").apply(&mut a);
        let mut b = [0u8; 10];
        let mut st = Rc4::new(b"k");
        st.apply(&mut b[..3]);
        st.apply(&mut b[3..]);
        assert_eq!(a, b);
    }
}
