//! The NT hash: MD4 (RFC 1320) of the UTF-16LE encoding of a password.
//!
//! Owns the one place a password is turned into what gets stored. Must never keep, log or
//! return the password.

use md4::{Digest, Md4};

/// The NT hash of `password`: MD4 over its UTF-16LE code units (MS-NLMP 3.3.1, NTOWFv1).
pub fn nt_hash(password: &str) -> [u8; 16] {
    let mut md4 = Md4::new();
    for unit in password.encode_utf16() {
        md4.update(unit.to_le_bytes());
    }
    md4.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn md4(data: &[u8]) -> [u8; 16] {
        Md4::digest(data).into()
    }

    #[test]
    fn known_nt_hashes() {
        assert_eq!(
            hex(&nt_hash("password")),
            "8846f7eaee8fb117ad06bdd830b7586c"
        );
        assert_eq!(hex(&nt_hash("")), "31d6cfe0d16ae931b73c59d7e0c089c0");
        // MS-NLMP 4.2.2.1.2 (NTOWFv1 of "Password").
        assert_eq!(
            hex(&nt_hash("Password")),
            "a4f49c406510bdcab6824ee7c30fd852"
        );
    }

    #[test]
    fn hashes_utf16le_code_units() {
        // 'ä' U+00E4, '€' U+20AC, '😀' U+1F600 = surrogates D83D DE00.
        let bytes = [0xe4, 0x00, 0xac, 0x20, 0x3d, 0xd8, 0x00, 0xde, b'x', 0x00];
        assert_eq!(nt_hash("ä€😀x"), md4(&bytes));
    }
}
