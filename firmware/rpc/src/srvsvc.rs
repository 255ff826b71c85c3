//! srvsvc (MS-SRVS) 4b324fc8-1670-01d3-1278-5a47bf6ee188 v3.0: NetrShareEnum (15),
//! NetrShareGetInfo (16), NetrServerGetInfo (21). Other opnums fault with
//! nca_s_op_rng_error.

use crate::ndr::{element_size, Field, Kind, Reader, Writer};
use crate::pdu::{self, Syntax};
use crate::{RpcError, RpcHost, ShareInfo};

pub(crate) const SYNTAX: Syntax = Syntax {
    uuid: pdu::uuid(
        0x4b32_4fc8,
        0x1670,
        0x01d3,
        [0x12, 0x78, 0x5a, 0x47, 0xbf, 0x6e, 0xe1, 0x88],
    ),
    version: 3,
};

const OPNUM_SHARE_ENUM: u16 = 15;
const OPNUM_SHARE_GET_INFO: u16 = 16;
const OPNUM_SERVER_GET_INFO: u16 = 21;

pub(crate) const NERR_SUCCESS: u32 = 0;
pub(crate) const ERROR_INVALID_PARAMETER: u32 = 87;
pub(crate) const ERROR_INVALID_LEVEL: u32 = 124;
pub(crate) const ERROR_MORE_DATA: u32 = 234;
pub(crate) const NERR_NET_NAME_NOT_FOUND: u32 = 2310;

/// STYPE_CLUSTER_FS | STYPE_CLUSTER_SOFS | STYPE_CLUSTER_DFS: always cleared on the wire.
const STYPE_CLUSTER_BITS: u32 = 0x0E00_0000;
const SHI_USES_UNLIMITED: u32 = 0xFFFF_FFFF;

// SERVER_INFO_102 values the daemon has no setting for (MS-SRVS defaults).
const SV_USERS_UNLIMITED: u32 = 0xFFFF_FFFF;
const SV_NODISC: u32 = 0xFFFF_FFFF;
const SV_ANNOUNCE_SECS: u32 = 240;
const SV_ANNDELTA_MS: u32 = 3000;
const SV_USERPATH: &str = "c:\\";

pub(crate) fn dispatch(opnum: u16, stub: &[u8], host: &dyn RpcHost) -> Result<Vec<u8>, u32> {
    let r = match opnum {
        OPNUM_SHARE_ENUM => share_enum(stub, host),
        OPNUM_SHARE_GET_INFO => share_get_info(stub, host),
        OPNUM_SERVER_GET_INFO => server_get_info(stub, host),
        _ => return Err(pdu::NCA_S_OP_RNG_ERROR),
    };
    r.map_err(|_| pdu::RPC_X_BAD_STUB_DATA)
}

/// Element layout of the SHARE_INFO_* structures a SHARE_ENUM_STRUCT can carry.
fn enum_layout(level: u32) -> Option<&'static [Kind]> {
    use Kind::{Bytes, Str, U32};
    Some(match level {
        0 => &[Str],
        1 => &[Str, U32, Str],
        2 => &[Str, U32, Str, U32, U32, U32, Str, Str],
        501 => &[Str, U32, Str, U32],
        502 => &[Str, U32, Str, U32, U32, U32, Str, Str, U32, Bytes],
        _ => return None,
    })
}

/// SHARE_INFO_<level> for one share; `None` for levels we do not produce.
fn share_fields(s: &ShareInfo, level: u32) -> Option<Vec<Field<'_>>> {
    let name = Field::Str(Some(&s.name));
    let ty = Field::U32(s.share_type & !STYPE_CLUSTER_BITS);
    let remark = Field::Str(Some(&s.comment));
    // permissions (unused with user-level security), max_uses, current_uses,
    // path (not exposed to clients), passwd (none).
    let level2 = [
        Field::U32(0),
        Field::U32(SHI_USES_UNLIMITED),
        Field::U32(0),
        Field::Str(Some("")),
        Field::Str(None),
    ];
    Some(match level {
        0 => vec![name],
        1 => vec![name, ty, remark],
        2 => [&[name, ty, remark][..], &level2].concat(),
        // shi501_flags: CSC_CACHE_MANUAL_REFERENCE, no other SHI1005 flags.
        501 => vec![name, ty, remark, Field::U32(0)],
        // shi502_reserved = 0 and a NULL security descriptor.
        502 => [
            &[name, ty, remark][..],
            &level2,
            &[Field::U32(0), Field::Str(None)],
        ]
        .concat(),
        1005 => vec![Field::U32(0)],
        _ => return None,
    })
}

/// NetrShareEnum: ServerName, SHARE_ENUM_STRUCT, PreferedMaximumLength, ResumeHandle.
fn share_enum(stub: &[u8], host: &dyn RpcHost) -> Result<Vec<u8>, RpcError> {
    let mut r = Reader::new(stub);
    r.server_name()?;
    let level = r.u32()?;
    let switch = r.u32()?;
    if switch != level {
        return Err(RpcError::Malformed("union discriminant"));
    }
    let layout = enum_layout(level);
    if let Some(layout) = layout {
        if r.pointer()? {
            r.skip_container(layout)?;
        }
    }
    let (pref_max, resume) = match read_enum_tail(&mut r) {
        Ok(t) => t,
        // An unknown level's arm is unknowable; answer ERROR_INVALID_LEVEL anyway.
        Err(_) if layout.is_none() => (u32::MAX, None),
        Err(e) => return Err(e),
    };

    let mut w = Writer::new();
    w.u32(level);
    w.u32(level);
    if layout.is_none() {
        w.u32(0); // TotalEntries
        w.pointer(false);
        w.u32(ERROR_INVALID_LEVEL);
        return Ok(w.into_bytes());
    }

    let shares = host.shares();
    let start = resume.unwrap_or(0) as usize;
    let rest = shares.get(start..).unwrap_or(&[]);
    let mut entries: Vec<Vec<Field<'_>>> = Vec::new();
    let mut used: usize = 0;
    let mut status = NERR_SUCCESS;
    for s in rest {
        let fields = share_fields(s, level).unwrap_or_default();
        let size = element_size(&fields);
        // Always return at least one entry so a resuming client makes progress.
        if !entries.is_empty() && used.saturating_add(size) > pref_max as usize {
            status = ERROR_MORE_DATA;
            break;
        }
        used = used.saturating_add(size);
        entries.push(fields);
    }
    let next = if status == ERROR_MORE_DATA {
        u32::try_from(start + entries.len()).unwrap_or(u32::MAX)
    } else {
        0
    };

    w.referent(); // SHARE_INFO_<level>_CONTAINER*
    w.u32(u32::try_from(entries.len()).unwrap_or(u32::MAX));
    w.pointer(!entries.is_empty());
    if !entries.is_empty() {
        w.array(&entries);
    }
    w.u32(u32::try_from(rest.len()).unwrap_or(u32::MAX)); // TotalEntries from here on
    w.pointer(resume.is_some());
    if resume.is_some() {
        w.u32(next);
    }
    w.u32(status);
    Ok(w.into_bytes())
}

/// PreferedMaximumLength and the optional ResumeHandle of an *Enum call.
pub(crate) fn read_enum_tail(r: &mut Reader<'_>) -> Result<(u32, Option<u32>), RpcError> {
    let pref_max = r.u32()?;
    let resume = if r.pointer()? { Some(r.u32()?) } else { None };
    Ok((pref_max, resume))
}

/// NetrShareGetInfo: ServerName, NetName, Level.
fn share_get_info(stub: &[u8], host: &dyn RpcHost) -> Result<Vec<u8>, RpcError> {
    let mut r = Reader::new(stub);
    r.server_name()?;
    let net_name = r.wstring()?;
    let level = r.u32()?;

    let mut w = Writer::new();
    w.u32(level);
    if !matches!(level, 0 | 1 | 2 | 501 | 502 | 1005) {
        w.u32(ERROR_INVALID_LEVEL);
        return Ok(w.into_bytes());
    }
    if net_name.is_empty() {
        w.pointer(false);
        w.u32(ERROR_INVALID_PARAMETER);
        return Ok(w.into_bytes());
    }
    let shares = host.shares();
    let found = shares.iter().find(|s| names_equal(&s.name, &net_name));
    match found.and_then(|s| share_fields(s, level)) {
        Some(fields) => {
            w.referent();
            w.structure(&fields);
            w.u32(NERR_SUCCESS);
        }
        None => {
            w.pointer(false);
            w.u32(NERR_NET_NAME_NOT_FOUND);
        }
    }
    Ok(w.into_bytes())
}

/// Share names compare case-insensitively, as SMB does.
fn names_equal(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_uppercase)
        .eq(b.chars().flat_map(char::to_uppercase))
}

/// NetrServerGetInfo: ServerName, Level.
fn server_get_info(stub: &[u8], host: &dyn RpcHost) -> Result<Vec<u8>, RpcError> {
    let mut r = Reader::new(stub);
    r.server_name()?;
    let level = r.u32()?;
    let mut w = Writer::new();
    w.u32(level);
    if !matches!(level, 100..=102) {
        w.u32(ERROR_INVALID_LEVEL);
        return Ok(w.into_bytes());
    }
    let sv = host.server();
    let mut fields = vec![Field::U32(sv.platform_id), Field::Str(Some(&sv.name))];
    if level >= 101 {
        fields.extend([
            Field::U32(sv.version_major),
            Field::U32(sv.version_minor),
            Field::U32(sv.server_type),
            Field::Str(Some(&sv.comment)),
        ]);
    }
    if level == 102 {
        fields.extend([
            Field::U32(SV_USERS_UNLIMITED),
            Field::U32(SV_NODISC),
            Field::U32(0), // hidden: FALSE
            Field::U32(SV_ANNOUNCE_SECS),
            Field::U32(SV_ANNDELTA_MS),
            Field::U32(0), // licenses: MUST be 0
            Field::Str(Some(SV_USERPATH)),
        ]);
    }
    w.referent();
    w.structure(&fields);
    w.u32(NERR_SUCCESS);
    Ok(w.into_bytes())
}
