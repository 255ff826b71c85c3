//! SIDs (MS-DTYP 2.4.2) and the default self-relative security descriptor
//! (MS-DTYP 2.4.6), checked with an independent parser.

use duet_fscc::consts::*;
use duet_fscc::{default_security_descriptor, FsccError, Sid};

#[test]
fn sid_string_round_trip() {
    for s in [
        "S-1-1-0",
        "S-1-5-18",
        "S-1-5-32-544",
        "S-1-5-21-1004336348-1177238915-682003330-512",
        "S-1-22-1-1000",
        "S-1-0x123456789ABC-1",
        "S-1-4294967295-4294967295",
        "S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15",
    ] {
        let sid: Sid = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(sid.to_string(), s);
        let bytes = sid.to_bytes();
        assert_eq!(bytes.len(), sid.byte_len());
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(Sid::from_bytes(&bytes), Ok((sid.clone(), bytes.len())));
    }
    // Lowercase prefix and hex digits are accepted; output is canonical.
    let sid: Sid = "s-1-0x0000000000aB-7".parse().unwrap();
    assert_eq!(sid.identifier_authority(), 0xAB);
    assert_eq!(sid.to_string(), "S-1-171-7");
}

#[test]
fn sid_packet_form() {
    let sid: Sid = "S-1-5-21-1-2-3".parse().unwrap();
    assert_eq!(
        sid.to_bytes(),
        [
            1, 4, 0, 0, 0, 0, 0, 5, // Revision, count, authority (big-endian)
            21, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0,
        ]
    );
    assert_eq!(
        Sid::everyone().to_bytes(),
        [1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    );
    assert_eq!(sid.sub_authorities(), &[21, 1, 2, 3]);
    // Trailing bytes are not taken.
    let mut b = sid.to_bytes();
    b.extend_from_slice(&[9, 9]);
    assert_eq!(Sid::from_bytes(&b), Ok((sid, 24)));
}

#[test]
fn bad_sids() {
    for s in [
        "",
        "S",
        "S-1",
        "S-1-5",
        "S-2-5-1",
        "X-1-5-1",
        "S-1-5-",
        "S-1--1",
        "S-1-05-1",
        "S-1-5-01",
        "S-1-5-4294967296",
        "S-1-4294967296-1",
        "S-1-0x1234-1",
        "S-1-0x12345678901G-1",
        "S-1-5-1x",
        "S-1-5-+1",
        "S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16",
        " S-1-5-1",
    ] {
        assert_eq!(s.parse::<Sid>(), Err(FsccError::InvalidSid), "{s:?}");
    }
    for b in [
        &[][..],
        &[1],
        &[1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        &[2, 0, 0, 0, 0, 0, 0, 1],
        &[1, 16, 0, 0, 0, 0, 0, 1],
    ] {
        assert_eq!(Sid::from_bytes(b), Err(FsccError::InvalidSid), "{b:?}");
    }
    assert!(Sid::new(1 << 48, &[1]).is_err());
    assert!(Sid::new(5, &[0; 16]).is_err());
    assert_eq!(Sid::new(5, &[]).unwrap().to_string(), "S-1-5");
    assert_eq!(FsccError::InvalidSid.ntstatus(), 0xC000_0078);
}

// ---- An independent reader of self-relative security descriptors. ----

#[derive(Debug)]
struct Ace {
    ace_type: u8,
    flags: u8,
    mask: u32,
    sid: Vec<u8>,
}

#[derive(Debug)]
struct Sd {
    control: u16,
    owner: Option<Vec<u8>>,
    group: Option<Vec<u8>>,
    sacl: bool,
    dacl: Option<Vec<Ace>>,
}

fn rd16(b: &[u8], o: usize) -> usize {
    u16::from_le_bytes([b[o], b[o + 1]]) as usize
}
fn rd32(b: &[u8], o: usize) -> usize {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize
}

/// The SID at `off`, which must lie inside `b`.
fn read_sid(b: &[u8], off: usize) -> Vec<u8> {
    assert_eq!(b[off], 1, "SID revision");
    let len = 8 + 4 * b[off + 1] as usize;
    assert!(off + len <= b.len(), "SID inside the buffer");
    b[off..off + len].to_vec()
}

fn parse_sd(b: &[u8]) -> Sd {
    assert!(b.len() >= 20);
    assert_eq!(b[0], 1, "Revision");
    assert_eq!(b[1], 0, "Sbz1");
    let control = rd16(b, 2) as u16;
    assert_ne!(control & 0x8000, 0, "SE_SELF_RELATIVE");
    let (o_owner, o_group, o_sacl, o_dacl) = (rd32(b, 4), rd32(b, 8), rd32(b, 12), rd32(b, 16));
    for o in [o_owner, o_group, o_sacl, o_dacl] {
        assert!(
            o == 0 || (20..b.len()).contains(&o),
            "offset {o} inside the buffer"
        );
        assert_eq!(o % 4, 0, "offset {o} aligned");
    }
    let owner = (o_owner != 0).then(|| read_sid(b, o_owner));
    let group = (o_group != 0).then(|| read_sid(b, o_group));
    assert_eq!(o_dacl != 0, control & 0x0004 != 0, "OffsetDacl iff DP");
    let dacl = (o_dacl != 0).then(|| {
        assert_eq!(b[o_dacl], 2, "AclRevision");
        let acl_size = rd16(b, o_dacl + 2);
        let count = rd16(b, o_dacl + 4);
        assert!(o_dacl + acl_size <= b.len(), "ACL inside the buffer");
        assert_eq!(acl_size % 4, 0);
        let mut aces = Vec::new();
        let mut at = o_dacl + 8;
        for _ in 0..count {
            let size = rd16(b, at + 2);
            assert_eq!(size % 4, 0, "AceSize multiple of 4");
            let sid = read_sid(b, at + 8);
            assert_eq!(size, 8 + sid.len(), "AceSize covers the SID exactly");
            aces.push(Ace {
                ace_type: b[at],
                flags: b[at + 1],
                mask: rd32(b, at + 4) as u32,
                sid,
            });
            at += size;
        }
        assert_eq!(at, o_dacl + acl_size, "AclSize is the sum of the ACEs");
        aces
    });
    // No part overlaps another.
    let mut parts: Vec<(usize, usize)> = Vec::new();
    if let Some(s) = &owner {
        parts.push((o_owner, s.len()));
    }
    if let Some(s) = &group {
        parts.push((o_group, s.len()));
    }
    if dacl.is_some() {
        parts.push((o_dacl, rd16(b, o_dacl + 2)));
    }
    parts.sort();
    for w in parts.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "parts overlap: {parts:?}");
    }
    let end = parts.last().map_or(20, |(o, l)| o + l);
    assert_eq!(end, b.len(), "no trailing bytes");
    Sd {
        control,
        owner,
        group,
        sacl: o_sacl != 0 || control & 0x0010 != 0,
        dacl,
    }
}

#[test]
fn full_descriptor_for_a_file() {
    let owner: Sid = "S-1-5-21-1-2-3-1000".parse().unwrap();
    let group: Sid = "S-1-5-21-1-2-3-513".parse().unwrap();
    let sd = default_security_descriptor(&owner, &group, false, 0x7);
    let p = parse_sd(&sd);
    assert_eq!(p.control, SE_SELF_RELATIVE | SE_DACL_PRESENT);
    assert_eq!(p.owner.as_deref(), Some(&owner.to_bytes()[..]));
    assert_eq!(p.group.as_deref(), Some(&group.to_bytes()[..]));
    assert!(!p.sacl);
    let aces = p.dacl.unwrap();
    assert_eq!(aces.len(), 2);
    for (ace, sid) in aces
        .iter()
        .zip([owner.to_bytes(), Sid::everyone().to_bytes()])
    {
        assert_eq!(ace.ace_type, ACCESS_ALLOWED_ACE_TYPE);
        assert_eq!(ace.flags, 0, "no inheritance on files");
        assert_eq!(ace.mask, FILE_ALL_ACCESS);
        assert_eq!(ace.sid, sid);
    }
    // Layout: header, owner, group, DACL.
    assert_eq!(rd32(&sd, 4), 20);
    assert_eq!(rd32(&sd, 8), 20 + 28);
    assert_eq!(rd32(&sd, 16), 20 + 28 + 28);
}

#[test]
fn directories_inherit() {
    let owner: Sid = "S-1-22-1-1000".parse().unwrap();
    let group: Sid = "S-1-22-2-1000".parse().unwrap();
    let sd = default_security_descriptor(&owner, &group, true, 0x4);
    let p = parse_sd(&sd);
    assert!(p.owner.is_none() && p.group.is_none());
    for ace in p.dacl.unwrap() {
        assert_eq!(ace.flags, OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE);
        assert_eq!(ace.mask, 0x001F_01FF);
    }
}

#[test]
fn only_the_parts_asked_for() {
    let owner: Sid = "S-1-5-32-544".parse().unwrap();
    let group: Sid = "S-1-5-18".parse().unwrap();
    for info in 0u32..16 {
        let sd = default_security_descriptor(&owner, &group, info % 2 == 0, info);
        let p = parse_sd(&sd);
        assert_eq!(p.owner.is_some(), info & 1 != 0, "info {info}");
        assert_eq!(p.group.is_some(), info & 2 != 0, "info {info}");
        assert_eq!(p.dacl.is_some(), info & 4 != 0, "info {info}");
        assert!(!p.sacl, "there is no SACL to return");
        if info & 4 == 0 {
            assert_eq!(p.control, SE_SELF_RELATIVE);
        }
    }
    // Nothing asked for: a bare header.
    let sd = default_security_descriptor(&owner, &group, false, 0);
    assert_eq!(
        sd,
        [1, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
}
