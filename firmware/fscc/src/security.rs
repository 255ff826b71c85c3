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

// ---------------------------------------------------------------------
// ACEs, ACLs and self-relative security descriptors: parse and encode.
// ---------------------------------------------------------------------

/// ACE types whose body is Flags, ObjectType, InheritedObjectType, then the
/// SID (MS-DTYP 2.4.4.3): the *_OBJECT_ACE_TYPEs.
const OBJECT_ACE_TYPES: [u8; 8] = [0x05, 0x06, 0x07, 0x08, 0x0B, 0x0C, 0x0F, 0x10];
/// ACCESS_ALLOWED_COMPOUND_ACE_TYPE: reserved, never valid in a descriptor.
const COMPOUND_ACE_TYPE: u8 = 0x04;
/// The highest ACE type MS-DTYP 2.4.4.1 defines
/// (SYSTEM_SCOPED_POLICY_ID_ACE_TYPE is 0x13; 0x14 is
/// SYSTEM_PROCESS_TRUST_LABEL_ACE_TYPE).
const MAX_ACE_TYPE: u8 = 0x14;
/// ACE_OBJECT_TYPE_PRESENT / ACE_INHERITED_OBJECT_TYPE_PRESENT.
const ACE_OBJECT_TYPE_PRESENT: u32 = 0x1;
const ACE_INHERITED_OBJECT_TYPE_PRESENT: u32 = 0x2;
/// ACL revision with object ACEs (MS-DTYP 2.4.5).
const ACL_REVISION_DS: u8 = 4;
/// An ACL is at most this long: AclSize is 16 bits.
const ACL_MAX: usize = u16::MAX as usize;

fn rd_u16(b: &[u8], at: usize) -> Result<u16, FsccError> {
    b.get(at..at + 2)
        .map(|v| u16::from_le_bytes([v[0], v[1]]))
        .ok_or(FsccError::InvalidParameter)
}

fn rd_u32(b: &[u8], at: usize) -> Result<u32, FsccError> {
    b.get(at..at + 4)
        .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
        .ok_or(FsccError::InvalidParameter)
}

/// One access control entry (MS-DTYP 2.4.4). Every ACE type carries a
/// trustee SID; what an object ACE has before it (Flags and GUIDs) and what
/// a callback or attribute ACE has after it (ApplicationData) is kept as
/// bytes, so an ACE reads back exactly as it was written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ace {
    /// AceType (MS-DTYP 2.4.4.1).
    pub ace_type: u8,
    /// AceFlags: OBJECT_INHERIT_ACE, CONTAINER_INHERIT_ACE, ...
    pub flags: u8,
    /// The access mask.
    pub mask: u32,
    /// For object ACE types: Flags, ObjectType and InheritedObjectType as
    /// on the wire (4, 20 or 36 bytes); empty for the other types.
    pub object: Vec<u8>,
    /// The trustee.
    pub sid: Sid,
    /// The bytes after the SID up to AceSize (application data, padding).
    pub tail: Vec<u8>,
}

impl Ace {
    /// A plain ACE (ACCESS_ALLOWED, ACCESS_DENIED, SYSTEM_AUDIT...): header,
    /// mask, SID.
    pub fn new(ace_type: u8, flags: u8, mask: u32, sid: Sid) -> Self {
        Self {
            ace_type,
            flags,
            mask,
            object: Vec::new(),
            sid,
            tail: Vec::new(),
        }
    }

    /// AceSize: header, mask, object part, SID and tail.
    pub fn byte_len(&self) -> usize {
        8 + self.object.len() + self.sid.byte_len() + self.tail.len()
    }

    /// Whether this is one of the *_OBJECT_ACE types.
    pub fn is_object_ace(&self) -> bool {
        OBJECT_ACE_TYPES.contains(&self.ace_type)
    }

    /// INHERIT_ONLY_ACE is set: the ACE does not apply to this object.
    pub fn is_inherit_only(&self) -> bool {
        self.flags & INHERIT_ONLY_ACE != 0
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        put_u8(out, self.ace_type);
        put_u8(out, self.flags);
        put_u16(out, self.byte_len() as u16);
        put_u32(out, self.mask);
        out.extend_from_slice(&self.object);
        self.sid.write_to(out);
        out.extend_from_slice(&self.tail);
    }

    /// Parses one ACE at the start of `buf`; returns it and AceSize.
    fn parse(buf: &[u8]) -> Result<(Self, usize), FsccError> {
        let bad = FsccError::InvalidParameter;
        let (&ace_type, &flags) = match buf {
            [t, f, ..] => (t, f),
            _ => return Err(bad),
        };
        let size = usize::from(rd_u16(buf, 2)?);
        if size < 8 || ace_type == COMPOUND_ACE_TYPE || ace_type > MAX_ACE_TYPE {
            return Err(bad);
        }
        let body = buf.get(..size).ok_or(bad)?;
        let mask = rd_u32(body, 4)?;
        let mut at = 8;
        if OBJECT_ACE_TYPES.contains(&ace_type) {
            let oflags = rd_u32(body, 8)?;
            at += 4;
            if oflags & ACE_OBJECT_TYPE_PRESENT != 0 {
                at += 16;
            }
            if oflags & ACE_INHERITED_OBJECT_TYPE_PRESENT != 0 {
                at += 16;
            }
        }
        let object = body.get(8..at).ok_or(bad)?.to_vec();
        let (sid, n) = Sid::from_bytes(body.get(at..).ok_or(bad)?)?;
        let tail = body[at + n..].to_vec();
        Ok((
            Self {
                ace_type,
                flags,
                mask,
                object,
                sid,
                tail,
            },
            size,
        ))
    }
}

/// An access control list (MS-DTYP 2.4.5): an ordered list of ACEs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Acl {
    /// AclRevision: 2, or 4 when it holds object ACEs.
    pub revision: u8,
    /// The ACEs in order.
    pub aces: Vec<Ace>,
}

impl Acl {
    /// An ACL of `aces`, revision 2 (4 if any is an object ACE).
    pub fn new(aces: Vec<Ace>) -> Self {
        let revision = if aces.iter().any(Ace::is_object_ace) {
            ACL_REVISION_DS
        } else {
            ACL_REVISION
        };
        Self { revision, aces }
    }

    /// AclSize of the encoded ACL (header and ACEs, no slack).
    pub fn byte_len(&self) -> usize {
        ACL_HEADER + self.aces.iter().map(Ace::byte_len).sum::<usize>()
    }

    /// Parses an ACL at the start of `buf`. `Err(InvalidParameter)` for a
    /// revision other than 2 to 4, an AclSize beyond the buffer or below the
    /// header, ACEs overrunning AclSize, or a malformed ACE; `InvalidSid`
    /// for a malformed trustee.
    pub fn from_bytes(buf: &[u8]) -> Result<Self, FsccError> {
        let bad = FsccError::InvalidParameter;
        let revision = *buf.first().ok_or(bad)?;
        if !(ACL_REVISION..=ACL_REVISION_DS).contains(&revision) {
            return Err(bad);
        }
        let size = usize::from(rd_u16(buf, 2)?);
        let count = usize::from(rd_u16(buf, 4)?);
        if size < ACL_HEADER {
            return Err(bad);
        }
        let body = buf.get(..size).ok_or(bad)?;
        // Every ACE takes at least 16 bytes (header, mask, a SID of 8).
        if count > (size - ACL_HEADER) / 16 {
            return Err(bad);
        }
        let mut aces = Vec::with_capacity(count);
        let mut at = ACL_HEADER;
        for _ in 0..count {
            let (ace, n) = Ace::parse(&body[at..])?;
            aces.push(ace);
            at += n;
        }
        Ok(Self { revision, aces })
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        put_u8(out, self.revision);
        put_u8(out, 0); // Sbz1
        put_u16(out, self.byte_len() as u16);
        put_u16(out, self.aces.len() as u16);
        put_u16(out, 0); // Sbz2
        for ace in &self.aces {
            ace.write_to(out);
        }
    }
}

/// A SECURITY_DESCRIPTOR (MS-DTYP 2.4.6) in parsed form.
///
/// `dacl` and `sacl` mean something only with SE_DACL_PRESENT /
/// SE_SACL_PRESENT in `control`: present with `None` is a NULL ACL (no
/// policy: everyone gets everything), present with an empty list grants
/// nothing. [`SecurityDescriptor::to_bytes`] writes the self-relative form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SecurityDescriptor {
    /// The Control flags (SE_*).
    pub control: u16,
    /// OwnerSid, if present.
    pub owner: Option<Sid>,
    /// GroupSid, if present.
    pub group: Option<Sid>,
    /// The SACL (see the type's notes).
    pub sacl: Option<Acl>,
    /// The DACL (see the type's notes).
    pub dacl: Option<Acl>,
}

/// The control bits that belong to the DACL.
const DACL_CONTROL: u16 = SE_DACL_PRESENT
    | SE_DACL_DEFAULTED
    | SE_DACL_AUTO_INHERITED
    | SE_DACL_PROTECTED
    | SE_DACL_AUTO_INHERIT_REQ;
/// The control bits that belong to the SACL.
const SACL_CONTROL: u16 = SE_SACL_PRESENT
    | SE_SACL_DEFAULTED
    | SE_SACL_AUTO_INHERITED
    | SE_SACL_PROTECTED
    | SE_SACL_AUTO_INHERIT_REQ;
/// DI_REQ: DACL auto-inherit required (a request flag, never stored).
pub const SE_DACL_AUTO_INHERIT_REQ: u16 = 0x0100;
/// SI_REQ: SACL auto-inherit required (a request flag, never stored).
pub const SE_SACL_AUTO_INHERIT_REQ: u16 = 0x0200;

impl SecurityDescriptor {
    /// Whether the DACL is present and NULL (grants everything).
    pub fn has_null_dacl(&self) -> bool {
        self.control & SE_DACL_PRESENT != 0 && self.dacl.is_none()
    }

    /// The DACL if one is present and not NULL.
    pub fn dacl(&self) -> Option<&Acl> {
        if self.control & SE_DACL_PRESENT != 0 {
            self.dacl.as_ref()
        } else {
            None
        }
    }

    /// Parses the self-relative form. Offsets of 0 mean "absent"; an ACL is
    /// read only when its PRESENT bit is set (present with offset 0 is a
    /// NULL ACL). `Err(InvalidParameter)` for a revision other than 1, an
    /// offset into the header or past the end, or a malformed ACL;
    /// `Err(InvalidSid)` for a malformed SID.
    pub fn from_bytes(buf: &[u8]) -> Result<Self, FsccError> {
        let bad = FsccError::InvalidParameter;
        if buf.len() < SD_HEADER || buf[0] != SECURITY_DESCRIPTOR_REVISION {
            return Err(bad);
        }
        let control = rd_u16(buf, 2)?;
        let at = |field: usize| -> Result<Option<&[u8]>, FsccError> {
            let off = rd_u32(buf, field)? as usize;
            match off {
                0 => Ok(None),
                o if o < SD_HEADER || o >= buf.len() => Err(bad),
                o => Ok(Some(&buf[o..])),
            }
        };
        let sid = |field| -> Result<Option<Sid>, FsccError> {
            at(field)?
                .map(|b| Sid::from_bytes(b).map(|(s, _)| s))
                .transpose()
        };
        let acl = |field, present: u16| -> Result<Option<Acl>, FsccError> {
            if control & present == 0 {
                return Ok(None);
            }
            at(field)?.map(Acl::from_bytes).transpose()
        };
        Ok(Self {
            control,
            owner: sid(4)?,
            group: sid(8)?,
            sacl: acl(12, SE_SACL_PRESENT)?,
            dacl: acl(16, SE_DACL_PRESENT)?,
        })
    }

    /// The self-relative form: header, owner, group, SACL, DACL, with
    /// SE_SELF_RELATIVE set. An ACL is written only with its PRESENT bit.
    /// `Err(InvalidParameter)` if an ACL is longer than AclSize can say.
    pub fn to_bytes(&self) -> Result<Vec<u8>, FsccError> {
        let sacl = self.acl_part(self.sacl.as_ref(), SE_SACL_PRESENT)?;
        let dacl = self.acl_part(self.dacl.as_ref(), SE_DACL_PRESENT)?;
        let mut offset = SD_HEADER;
        let mut place = |len: Option<usize>| -> u32 {
            match len {
                Some(n) => {
                    let at = offset;
                    offset += n;
                    at as u32
                }
                None => 0,
            }
        };
        let o_owner = place(self.owner.as_ref().map(Sid::byte_len));
        let o_group = place(self.group.as_ref().map(Sid::byte_len));
        let o_sacl = place(sacl.map(Acl::byte_len));
        let o_dacl = place(dacl.map(Acl::byte_len));
        let mut out = Vec::with_capacity(offset);
        put_u8(&mut out, SECURITY_DESCRIPTOR_REVISION);
        put_u8(&mut out, 0); // Sbz1
        put_u16(&mut out, self.control | SE_SELF_RELATIVE);
        for o in [o_owner, o_group, o_sacl, o_dacl] {
            put_u32(&mut out, o);
        }
        for sid in [&self.owner, &self.group].into_iter().flatten() {
            sid.write_to(&mut out);
        }
        for acl in [sacl, dacl].into_iter().flatten() {
            acl.write_to(&mut out);
        }
        debug_assert_eq!(out.len(), offset);
        Ok(out)
    }

    fn acl_part<'a>(
        &self,
        acl: Option<&'a Acl>,
        present: u16,
    ) -> Result<Option<&'a Acl>, FsccError> {
        match acl {
            Some(a) if self.control & present != 0 => {
                if a.byte_len() > ACL_MAX || a.aces.len() > ACL_MAX {
                    return Err(FsccError::InvalidParameter);
                }
                Ok(Some(a))
            }
            _ => Ok(None),
        }
    }

    /// The parts `security_information` asks for (OWNER 1, GROUP 2, DACL 4,
    /// SACL 8): the others are dropped with their control bits, as a
    /// QUERY_INFO answer has them.
    pub fn select(&self, security_information: u32) -> Self {
        let want = |bit: u32| security_information & bit != 0;
        let mut control = self.control | SE_SELF_RELATIVE;
        let mut sd = self.clone();
        if !want(OWNER_SECURITY_INFORMATION) {
            sd.owner = None;
            control &= !SE_OWNER_DEFAULTED;
        }
        if !want(GROUP_SECURITY_INFORMATION) {
            sd.group = None;
            control &= !SE_GROUP_DEFAULTED;
        }
        if !want(DACL_SECURITY_INFORMATION) {
            sd.dacl = None;
            control &= !DACL_CONTROL;
        }
        if !want(SACL_SECURITY_INFORMATION) {
            sd.sacl = None;
            control &= !SACL_CONTROL;
        }
        sd.control = control;
        sd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(s: &str) -> Sid {
        s.parse().unwrap()
    }

    fn sample() -> SecurityDescriptor {
        SecurityDescriptor {
            control: SE_DACL_PRESENT | SE_DACL_PROTECTED,
            owner: Some(sid("S-1-5-21-1-2-3-1000")),
            group: Some(sid("S-1-5-32-545")),
            sacl: None,
            dacl: Some(Acl::new(vec![
                Ace::new(
                    ACCESS_DENIED_ACE_TYPE,
                    0,
                    FILE_WRITE_DATA_BIT,
                    sid("S-1-1-0"),
                ),
                Ace::new(
                    ACCESS_ALLOWED_ACE_TYPE,
                    OBJECT_INHERIT_ACE | INHERIT_ONLY_ACE,
                    FILE_ALL_ACCESS,
                    sid("S-1-3-0"),
                ),
            ])),
        }
    }
    const FILE_WRITE_DATA_BIT: u32 = 0x2;

    #[test]
    fn round_trip_and_layout() {
        let sd = sample();
        let b = sd.to_bytes().unwrap();
        assert_eq!(b[0], 1);
        assert_eq!(
            u16::from_le_bytes([b[2], b[3]]),
            SE_SELF_RELATIVE | SE_DACL_PRESENT | SE_DACL_PROTECTED
        );
        // owner at 20, group after it, no SACL, DACL last.
        assert_eq!(rd_u32(&b, 4).unwrap(), 20);
        assert_eq!(rd_u32(&b, 8).unwrap(), 20 + 28);
        assert_eq!(rd_u32(&b, 12).unwrap(), 0);
        assert_eq!(rd_u32(&b, 16).unwrap(), 20 + 28 + 16);
        let back = SecurityDescriptor::from_bytes(&b).unwrap();
        let mut want = sd.clone();
        want.control |= SE_SELF_RELATIVE;
        assert_eq!(back, want);
        assert_eq!(back.to_bytes().unwrap(), b);
        // AclSize and AceCount.
        let d = 20 + 28 + 16;
        assert_eq!(rd_u16(&b, d + 2).unwrap() as usize, b.len() - d);
        assert_eq!(rd_u16(&b, d + 4).unwrap(), 2);
    }

    #[test]
    fn null_and_empty_dacls_differ() {
        let mut sd = SecurityDescriptor {
            control: SE_DACL_PRESENT,
            ..Default::default()
        };
        let b = sd.to_bytes().unwrap();
        assert_eq!(rd_u32(&b, 16).unwrap(), 0, "a NULL DACL has no offset");
        let p = SecurityDescriptor::from_bytes(&b).unwrap();
        assert!(p.has_null_dacl());
        assert!(p.dacl().is_none());
        sd.dacl = Some(Acl::new(vec![]));
        let b = sd.to_bytes().unwrap();
        assert_eq!(b.len(), 28);
        let p = SecurityDescriptor::from_bytes(&b).unwrap();
        assert!(!p.has_null_dacl());
        assert_eq!(p.dacl().map(|a| a.aces.len()), Some(0));
        // Without the PRESENT bit an ACL at an offset is not read.
        let mut b2 = b.clone();
        b2[2] = 0;
        let p = SecurityDescriptor::from_bytes(&b2).unwrap();
        assert!(p.dacl.is_none() && !p.has_null_dacl());
        // ...and not written.
        let mut sd = sample();
        sd.control = 0;
        assert_eq!(sd.to_bytes().unwrap().len(), 20 + 28 + 16);
    }

    #[test]
    fn select_keeps_only_the_parts_asked_for() {
        let sd = sample();
        let s = sd.select(OWNER_SECURITY_INFORMATION);
        assert_eq!(s.control, SE_SELF_RELATIVE);
        assert!(s.owner.is_some() && s.group.is_none() && s.dacl.is_none());
        let s = sd.select(DACL_SECURITY_INFORMATION);
        assert_eq!(
            s.control,
            SE_SELF_RELATIVE | SE_DACL_PRESENT | SE_DACL_PROTECTED
        );
        assert!(s.owner.is_none() && s.group.is_none() && s.dacl.is_some());
        let s = sd.select(GROUP_SECURITY_INFORMATION | SACL_SECURITY_INFORMATION);
        assert!(s.group.is_some() && s.owner.is_none() && s.dacl.is_none());
        assert_eq!(sd.select(0).to_bytes().unwrap().len(), 20);
    }

    #[test]
    fn object_and_callback_aces_read_back_unchanged() {
        let everyone = Sid::everyone().to_bytes();
        // ACCESS_ALLOWED_OBJECT_ACE with an ObjectType GUID.
        let mut obj = vec![0x05, 0x00, 0, 0];
        obj.extend_from_slice(&0x10u32.to_le_bytes());
        obj.extend_from_slice(&1u32.to_le_bytes());
        obj.extend_from_slice(&[0xAB; 16]);
        obj.extend_from_slice(&everyone);
        let n = obj.len() as u16;
        obj[2..4].copy_from_slice(&n.to_le_bytes());
        // ACCESS_ALLOWED_CALLBACK_ACE with 4 bytes of application data.
        let mut cb = vec![0x09, 0x00, 0, 0];
        cb.extend_from_slice(&0x1u32.to_le_bytes());
        cb.extend_from_slice(&everyone);
        cb.extend_from_slice(b"artx");
        let n = cb.len() as u16;
        cb[2..4].copy_from_slice(&n.to_le_bytes());
        let mut acl = vec![4, 0, 0, 0, 2, 0, 0, 0];
        acl.extend_from_slice(&obj);
        acl.extend_from_slice(&cb);
        let n = acl.len() as u16;
        acl[2..4].copy_from_slice(&n.to_le_bytes());
        let a = Acl::from_bytes(&acl).unwrap();
        assert_eq!(a.aces[0].object.len(), 20);
        assert_eq!(
            Acl::new(a.aces.clone()).revision,
            4,
            "object ACEs: ACL_REVISION_DS"
        );
        assert_eq!(Acl::new(a.aces[1..].to_vec()).revision, ACL_REVISION);
        assert_eq!(a.aces[0].sid, Sid::everyone());
        assert!(a.aces[0].is_object_ace());
        assert_eq!(a.aces[1].tail, b"artx");
        assert_eq!(a.aces[1].sid, Sid::everyone());
        let mut out = Vec::new();
        a.write_to(&mut out);
        assert_eq!(out, acl);
    }

    #[test]
    fn malformed_input_is_refused() {
        let good = sample().to_bytes().unwrap();
        let d = 20 + 28 + 16;
        let bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            SecurityDescriptor::from_bytes(&b)
        };
        assert!(SecurityDescriptor::from_bytes(&good[..19]).is_err());
        assert!(bad(&|b| b[0] = 2).is_err(), "revision");
        assert!(bad(&|b| b[4] = 8).is_err(), "owner offset into the header");
        assert!(bad(&|b| b[4] = 200).is_err(), "owner offset past the end");
        assert!(bad(&|b| b[d] = 1).is_err(), "ACL revision");
        assert!(bad(&|b| b[d + 2] = 7).is_err(), "AclSize below the header");
        assert!(bad(&|b| b[d + 2] = 0xff).is_err(), "AclSize past the end");
        assert!(bad(&|b| b[d + 4] = 3).is_err(), "more ACEs than fit");
        assert!(bad(&|b| b[d + 8] = 4).is_err(), "compound ACE");
        assert!(bad(&|b| b[d + 8] = 0x15).is_err(), "unknown ACE type");
        assert!(bad(&|b| b[d + 10] = 4).is_err(), "AceSize below its SID");
        assert!(bad(&|b| b[d + 16] = 5).is_err(), "bad SID revision");
        assert!(bad(&|b| b[d + 17] = 200).is_err(), "SID past its ACE");
        // Truncation anywhere is an error, never a panic.
        for n in 0..good.len() {
            let _ = SecurityDescriptor::from_bytes(&good[..n]);
        }
        // Slack after the ACEs inside AclSize is allowed (and dropped).
        let mut b = good.clone();
        b.extend_from_slice(&[0; 8]);
        let size = rd_u16(&b, d + 2).unwrap() + 8;
        b[d + 2..d + 4].copy_from_slice(&size.to_le_bytes());
        assert_eq!(
            SecurityDescriptor::from_bytes(&b)
                .unwrap()
                .to_bytes()
                .unwrap(),
            good
        );
    }

    #[test]
    fn an_acl_too_long_to_encode_is_an_error() {
        let ace = Ace::new(ACCESS_ALLOWED_ACE_TYPE, 0, 1, sid("S-1-5-21-1-2-3-4"));
        let sd = SecurityDescriptor {
            control: SE_DACL_PRESENT,
            dacl: Some(Acl::new(vec![ace; 65536 / 28 + 1])),
            ..Default::default()
        };
        assert_eq!(sd.to_bytes(), Err(FsccError::InvalidParameter));
    }
}
