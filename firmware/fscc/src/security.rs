//! SIDs (MS-DTYP 2.4.2) and the self-relative SECURITY_DESCRIPTOR
//! (MS-DTYP 2.4.6) this server reports for files without stored ACLs.

use std::fmt;
use std::str::FromStr;

use crate::consts::*;
use crate::wire::{put_u16, put_u32, put_u8};
use crate::FsccError;

/// A security identifier (MS-DTYP 2.4.2): a 48-bit IdentifierAuthority and
/// 0 to 15 SubAuthority values. Its string form is "S-1-5-21-...".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sid {
    identifier_authority: u64,
    sub_authorities: Vec<u32>,
}

impl Sid {
    /// The most SubAuthority values a SID carries (MS-DTYP 2.4.2).
    pub const MAX_SUB_AUTHORITIES: usize = 15;
    /// SID Revision (MS-DTYP 2.4.2.2): MUST be 1.
    pub const REVISION: u8 = 1;

    /// A SID from its parts. `Err(InvalidSid)` if the authority does not fit
    /// in 48 bits or there are more than 15 sub-authorities.
    pub fn new(identifier_authority: u64, sub_authorities: &[u32]) -> Result<Self, FsccError> {
        if identifier_authority >= 1 << 48 || sub_authorities.len() > Self::MAX_SUB_AUTHORITIES {
            return Err(FsccError::InvalidSid);
        }
        Ok(Self {
            identifier_authority,
            sub_authorities: sub_authorities.to_vec(),
        })
    }

    /// Everyone, S-1-1-0 (MS-DTYP 2.4.2.4).
    pub fn everyone() -> Self {
        Self {
            identifier_authority: 1,
            sub_authorities: vec![0],
        }
    }

    /// IdentifierAuthority as a number (48 bits).
    pub fn identifier_authority(&self) -> u64 {
        self.identifier_authority
    }

    /// The SubAuthority values, most significant first.
    pub fn sub_authorities(&self) -> &[u32] {
        &self.sub_authorities
    }

    /// Size of the packet form: 8 + 4 * SubAuthorityCount (a multiple of 4).
    pub fn byte_len(&self) -> usize {
        8 + 4 * self.sub_authorities.len()
    }

    /// Appends the packet form (MS-DTYP 2.4.2.2): Revision,
    /// SubAuthorityCount, IdentifierAuthority (6 bytes, big-endian), then
    /// each SubAuthority little-endian.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        put_u8(out, Self::REVISION);
        put_u8(out, self.sub_authorities.len() as u8);
        out.extend_from_slice(&self.identifier_authority.to_be_bytes()[2..]);
        for &s in &self.sub_authorities {
            put_u32(out, s);
        }
    }

    /// The packet form (MS-DTYP 2.4.2.2).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.byte_len());
        self.write_to(&mut v);
        v
    }

    /// Parses the packet form at the start of `buf`; returns the SID and the
    /// bytes it took. `Err(InvalidSid)` for a revision other than 1, more than
    /// 15 sub-authorities, or a buffer too short for the count it declares.
    pub fn from_bytes(buf: &[u8]) -> Result<(Self, usize), FsccError> {
        let bad = FsccError::InvalidSid;
        let (&revision, &count) = match buf {
            [r, c, ..] => (r, c),
            _ => return Err(bad),
        };
        let count = usize::from(count);
        if revision != Self::REVISION || count > Self::MAX_SUB_AUTHORITIES {
            return Err(bad);
        }
        let len = 8 + 4 * count;
        let body = buf.get(..len).ok_or(bad)?;
        let mut auth = [0u8; 8];
        auth[2..].copy_from_slice(&body[2..8]);
        let sub_authorities = body[8..]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((
            Self {
                identifier_authority: u64::from_be_bytes(auth),
                sub_authorities,
            },
            len,
        ))
    }
}

/// The string form of MS-DTYP 2.4.2.1: the authority in decimal below 2^32,
/// otherwise "0x" and 12 hexadecimal digits.
impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S-1-")?;
        if self.identifier_authority < 1 << 32 {
            write!(f, "{}", self.identifier_authority)?;
        } else {
            write!(f, "0x{:012X}", self.identifier_authority)?;
        }
        for s in &self.sub_authorities {
            write!(f, "-{s}")?;
        }
        Ok(())
    }
}

/// A decimal field of the SID string form: 1 to 10 digits, no leading '0'.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// Parses the string form of MS-DTYP 2.4.2.1 ("S-1-" is matched without
/// regard to case, as ABNF strings are): at least one sub-authority, no
/// leading zeros, a decimal authority below 2^32 or "0x" and exactly 12
/// hexadecimal digits. `Err(InvalidSid)` otherwise.
impl FromStr for Sid {
    type Err = FsccError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = FsccError::InvalidSid;
        let mut parts = s.split('-');
        match (parts.next(), parts.next()) {
            (Some(p), Some("1")) if p.eq_ignore_ascii_case("S") => {}
            _ => return Err(bad),
        }
        let auth = parts.next().ok_or(bad)?;
        let identifier_authority = match auth.get(..2) {
            Some(prefix) if prefix.eq_ignore_ascii_case("0x") => {
                let hex = &auth[2..];
                if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad);
                }
                u64::from_str_radix(hex, 16).map_err(|_| bad)?
            }
            _ => parse_decimal(auth).filter(|&v| v < 1 << 32).ok_or(bad)?,
        };
        let sub_authorities = parts
            .map(|p| {
                parse_decimal(p)
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or(bad)
            })
            .collect::<Result<Vec<u32>, _>>()?;
        if sub_authorities.is_empty() {
            return Err(bad);
        }
        Self::new(identifier_authority, &sub_authorities)
    }
}

/// ACL header size (MS-DTYP 2.4.5).
const ACL_HEADER: usize = 8;
/// ACE header plus Mask (MS-DTYP 2.4.4.2): the SID follows.
const ACCESS_ALLOWED_ACE_FIXED: usize = 8;
/// SECURITY_DESCRIPTOR header in self-relative form (MS-DTYP 2.4.6).
const SD_HEADER: usize = 20;

/// ACCESS_ALLOWED_ACE (MS-DTYP 2.4.4.2).
fn put_access_allowed_ace(out: &mut Vec<u8>, flags: u8, mask: u32, sid: &Sid) {
    put_u8(out, ACCESS_ALLOWED_ACE_TYPE);
    put_u8(out, flags);
    put_u16(out, (ACCESS_ALLOWED_ACE_FIXED + sid.byte_len()) as u16);
    put_u32(out, mask);
    sid.write_to(out);
}

/// A self-relative SECURITY_DESCRIPTOR (MS-DTYP 2.4.6) for a file without
/// stored ACLs: owner `owner`, group `group`, and a DACL with two
/// ACCESS_ALLOWED_ACEs granting FILE_ALL_ACCESS to `owner` and to Everyone
/// (S-1-1-0); on a directory both ACEs carry OBJECT_INHERIT_ACE |
/// CONTAINER_INHERIT_ACE.
///
/// Only the parts `additional_information` asks for (SECURITY_INFORMATION,
/// MS-DTYP 2.4.7: OWNER 1, GROUP 2, DACL 4, SACL 8) are included, in the
/// order owner, group, DACL (as MS-FSA 2.1.5.14 lays them out); a part
/// not asked for has offset 0. Control is SE_SELF_RELATIVE, plus
/// SE_DACL_PRESENT when the DACL is included. There is no SACL: asking for
/// it adds nothing.
pub fn default_security_descriptor(
    owner: &Sid,
    group: &Sid,
    is_directory: bool,
    additional_information: u32,
) -> Vec<u8> {
    let want_owner = additional_information & OWNER_SECURITY_INFORMATION != 0;
    let want_group = additional_information & GROUP_SECURITY_INFORMATION != 0;
    let want_dacl = additional_information & DACL_SECURITY_INFORMATION != 0;

    let everyone = Sid::everyone();
    let aces = [owner, &everyone];
    let acl_size = ACL_HEADER
        + aces
            .iter()
            .map(|s| ACCESS_ALLOWED_ACE_FIXED + s.byte_len())
            .sum::<usize>();

    let mut offset = SD_HEADER;
    let mut take = |wanted: bool, len: usize| -> u32 {
        if !wanted {
            return 0;
        }
        let at = offset;
        offset += len;
        at as u32
    };
    let offset_owner = take(want_owner, owner.byte_len());
    let offset_group = take(want_group, group.byte_len());
    let offset_dacl = take(want_dacl, acl_size);
    let total = offset;

    let mut control = SE_SELF_RELATIVE;
    if want_dacl {
        control |= SE_DACL_PRESENT;
    }

    let mut out = Vec::with_capacity(total);
    put_u8(&mut out, SECURITY_DESCRIPTOR_REVISION);
    put_u8(&mut out, 0); // Sbz1
    put_u16(&mut out, control);
    put_u32(&mut out, offset_owner);
    put_u32(&mut out, offset_group);
    put_u32(&mut out, 0); // OffsetSacl
    put_u32(&mut out, offset_dacl);
    if want_owner {
        owner.write_to(&mut out);
    }
    if want_group {
        group.write_to(&mut out);
    }
    if want_dacl {
        // ACL (MS-DTYP 2.4.5).
        put_u8(&mut out, ACL_REVISION);
        put_u8(&mut out, 0); // Sbz1
        put_u16(&mut out, acl_size as u16);
        put_u16(&mut out, aces.len() as u16);
        put_u16(&mut out, 0); // Sbz2
        let flags = if is_directory {
            OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE
        } else {
            0
        };
        for sid in aces {
            put_access_allowed_ace(&mut out, flags, FILE_ALL_ACCESS, sid);
        }
    }
    debug_assert_eq!(out.len(), total);
    out
}
