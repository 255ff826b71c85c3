//! FILE_FULL_EA_INFORMATION lists (MS-FSCC 2.4.16): decoding for SET_INFO
//! and encoding for QUERY_INFO.

use crate::consts::FILE_NEED_EA;
use crate::wire::{get_u16, get_u32, get_u8, put_u16, put_u32, put_u8};
use crate::FsccError;

/// One extended attribute: (EaName, EaValue, Flags).
pub type FullEa = (String, Vec<u8>, u8);

/// FieldOffset(FILE_FULL_EA_INFORMATION.EaName).
pub(crate) const EA_HEADER: usize = 8;

/// MS-FSCC 2.4.16: an EaName is 1 to 254 ASCII characters, none of them
/// 0x00-0x1F or `\ / : * ? " < > | , + = [ ] ;`.
fn valid_ea_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() < 255
        && name
            .iter()
            .all(|&b| (0x20..0x7F).contains(&b) && !b"\\/:*?\"<>|,+=[];".contains(&b))
}

/// MS-FSCC 2.4.16: Flags is 0 or FILE_NEED_EA.
fn valid_ea_flags(flags: u8) -> bool {
    flags == 0 || flags == FILE_NEED_EA
}

/// Decodes a FILE_FULL_EA_INFORMATION list.
///
/// Structure is checked first (`EaListInconsistent`, MS-SMB2 3.3.5.21.1):
/// every entry lies inside `input`, its EaName is followed by a 0x00 byte,
/// and a non-zero NextEntryOffset is a multiple of 4 that reaches past the
/// entry. Then every entry's name and flags (`InvalidEaName`, MS-FSA
/// 2.1.5.15.6). A buffer shorter than one 8-byte header is
/// `InfoLengthMismatch`.
pub(crate) fn decode_full_ea_list(input: &[u8]) -> Result<Vec<FullEa>, FsccError> {
    if input.len() < EA_HEADER {
        return Err(FsccError::InfoLengthMismatch);
    }
    let mut raw: Vec<(u8, &[u8], &[u8])> = Vec::new();
    let mut off = 0usize;
    loop {
        let inconsistent = FsccError::EaListInconsistent;
        let next = get_u32(input, off).ok_or(inconsistent)? as usize;
        let flags = get_u8(input, off + 4).ok_or(inconsistent)?;
        let name_len = usize::from(get_u8(input, off + 5).ok_or(inconsistent)?);
        let value_len = usize::from(get_u16(input, off + 6).ok_or(inconsistent)?);
        let name_start = off + EA_HEADER;
        let name_end = name_start + name_len;
        // The terminator byte, then the value.
        let entry_end = name_end + 1 + value_len;
        if entry_end > input.len() || input[name_end] != 0 {
            return Err(inconsistent);
        }
        raw.push((
            flags,
            &input[name_start..name_end],
            &input[name_end + 1..entry_end],
        ));
        if next == 0 {
            break;
        }
        let next_off = off.checked_add(next).ok_or(inconsistent)?;
        if next & 3 != 0 || next_off < entry_end {
            return Err(inconsistent);
        }
        off = next_off;
    }
    raw.into_iter()
        .map(|(flags, name, value)| {
            if !valid_ea_name(name) || !valid_ea_flags(flags) {
                return Err(FsccError::InvalidEaName);
            }
            // valid_ea_name admits ASCII only, so this cannot fail.
            let name = String::from_utf8(name.to_vec()).map_err(|_| FsccError::InvalidEaName)?;
            Ok((name, value.to_vec(), flags))
        })
        .collect()
}

/// Appends as many complete FILE_FULL_EA_INFORMATION entries of `eas` as
/// fit in `max_output` bytes (MS-FSA 2.1.5.12.12): entries 4-byte aligned
/// with zero padding, the last one's NextEntryOffset 0 and no padding after
/// it. Returns how many entries were appended: all of them means
/// STATUS_SUCCESS, fewer means STATUS_BUFFER_OVERFLOW, and an empty `eas`
/// (0) means STATUS_NO_EAS_ON_FILE for the SMB layer.
///
/// `Err(BufferTooSmall)` if the first entry does not fit;
/// `Err(InvalidEaName)` if a name or flags byte breaks MS-FSCC 2.4.16 or a
/// value is longer than 65535 bytes. On error nothing is appended.
pub fn encode_full_ea_list(
    eas: &[FullEa],
    max_output: usize,
    out: &mut Vec<u8>,
) -> Result<usize, FsccError> {
    for (name, value, flags) in eas {
        if !valid_ea_name(name.as_bytes()) || !valid_ea_flags(*flags) || value.len() > 0xFFFF {
            return Err(FsccError::InvalidEaName);
        }
    }
    let entry_len = |(name, value, _): &FullEa| EA_HEADER + name.len() + 1 + value.len();
    // Count what fits: each entry after the first starts 4-byte aligned.
    let mut used = 0usize;
    let mut fit = 0usize;
    for ea in eas {
        let start = if fit == 0 {
            0
        } else {
            used.next_multiple_of(4)
        };
        let end = start + entry_len(ea);
        if end > max_output {
            break;
        }
        used = end;
        fit += 1;
    }
    if fit == 0 && !eas.is_empty() {
        return Err(FsccError::BufferTooSmall);
    }
    let base = out.len();
    for (i, ea) in eas.iter().take(fit).enumerate() {
        let (name, value, flags) = ea;
        let next = if i + 1 < fit {
            // At most 8 + 254 + 1 + 65535 rounded up: fits in u32.
            entry_len(ea).next_multiple_of(4) as u32
        } else {
            0
        };
        put_u32(out, next);
        put_u8(out, *flags);
        put_u8(out, name.len() as u8);
        put_u16(out, value.len() as u16);
        out.extend_from_slice(name.as_bytes());
        put_u8(out, 0);
        out.extend_from_slice(value);
        if i + 1 < fit {
            let pad = (4 - (out.len() - base) % 4) % 4;
            out.resize(out.len() + pad, 0);
        }
    }
    Ok(fit)
}

/// Decodes a FILE_GET_EA_INFORMATION list (MS-FSCC 2.4.15.1), the EA names
/// a FileFullEaInformation query asks for, in list order.
///
/// Structure first (`EaListInconsistent`): every entry (NextEntryOffset,
/// EaNameLength, the name and its 0x00 terminator) lies inside `input`, and
/// a non-zero NextEntryOffset is a multiple of 4 that reaches past the
/// entry. Then each name (`InvalidEaName`, MS-FSCC 2.4.15). An empty
/// `input` is an empty list.
pub fn decode_get_ea_list(input: &[u8]) -> Result<Vec<String>, FsccError> {
    if input.is_empty() {
        return Ok(Vec::new());
    }
    let inconsistent = FsccError::EaListInconsistent;
    let mut names: Vec<&[u8]> = Vec::new();
    let mut off = 0usize;
    loop {
        let next = get_u32(input, off).ok_or(inconsistent)? as usize;
        let name_len = usize::from(get_u8(input, off + 4).ok_or(inconsistent)?);
        let name_start = off + 5;
        let name_end = name_start + name_len;
        if get_u8(input, name_end) != Some(0) {
            return Err(inconsistent);
        }
        names.push(&input[name_start..name_end]);
        if next == 0 {
            break;
        }
        let next_off = off.checked_add(next).ok_or(inconsistent)?;
        if next & 3 != 0 || next_off <= name_end {
            return Err(inconsistent);
        }
        off = next_off;
    }
    names
        .into_iter()
        .map(|n| {
            if !valid_ea_name(n) {
                return Err(FsccError::InvalidEaName);
            }
            String::from_utf8(n.to_vec()).map_err(|_| FsccError::InvalidEaName)
        })
        .collect()
}
