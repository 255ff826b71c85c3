//! 8.3 short names (MS-FSCC 2.1.5.2.1) for FileAlternateNameInformation
//! and the ShortName of directory entries.
//!
//! Nothing is stored: the short name of a long name is computed from the
//! name alone, so it is the same in every listing and every query, on
//! every node. The scheme is this crate's own, shaped like Windows' hashed
//! form: up to three characters of the name, `~`, four base-36 characters
//! of a hash of the whole (upper-cased) name, and up to three characters
//! of the extension, all upper case, e.g. `torture_search.txt` ->
//! `TOR~XXXX.TXT`. Two long names of one directory share a short name only
//! if their hashes agree in those four characters (1 in 1.7 million).
//! Short names are not resolved on open.

/// Characters an 8.3 name may hold besides ASCII letters and digits
/// (MS-FSCC 2.1.5.2.1).
const EXTRA: &[u8] = b"!#$%&'()-@^_`{}~";

fn valid_83_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || (c.is_ascii() && EXTRA.contains(&(c as u8)))
}

/// Whether `name` is already a valid 8.3 name: 1 to 8 characters, then
/// optionally a dot and 1 to 3 characters, all of them valid 8.3
/// characters (letters of either case).
pub fn is_8_3(name: &str) -> bool {
    let (base, ext) = match name.split_once('.') {
        Some((b, e)) => (b, Some(e)),
        None => (name, None),
    };
    let ok = |s: &str, max: usize| {
        !s.is_empty() && s.chars().count() <= max && s.chars().all(valid_83_char)
    };
    ok(base, 8) && ext.is_none_or(|e| ok(e, 3))
}

/// The upper-case 8.3 form of the characters of `s`: spaces and dots are
/// dropped, anything else that is not a valid 8.3 character becomes `_`.
fn squeeze(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().filter(|&c| c != ' ' && c != '.').map(|c| {
        if valid_83_char(c) {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    })
}

/// FNV-1a (64 bit) of the upper-cased name: case-insensitive, like the
/// names clients see.
fn hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in name.chars().flat_map(char::to_uppercase) {
        let mut buf = [0u8; 4];
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The generated 8.3 short name of `name` (a single path component), or
/// `None` when it needs none: names that are already valid 8.3 names
/// (their short name is the name itself, and directory entries leave
/// ShortName empty, as Windows does), "." and "..", and "".
///
/// FileAlternateNameInformation reports `short_name(n).unwrap_or(n)`;
/// directory entries put `short_name(n)` in ShortName (empty for `None`).
pub fn short_name(name: &str) -> Option<String> {
    if name.is_empty() || name == "." || name == ".." || is_8_3(name) {
        return None;
    }
    // The extension follows the last dot, unless that dot leads the name.
    let (base, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i + 1..]),
        _ => (name, ""),
    };
    let mut out: String = squeeze(base).take(3).collect();
    if out.is_empty() {
        out.push('_');
    }
    out.push('~');
    let mut h = hash(name) % 36u64.pow(4);
    let mut code = [b'0'; 4];
    for slot in code.iter_mut().rev() {
        let d = (h % 36) as u8;
        *slot = if d < 10 { b'0' + d } else { b'A' + d - 10 };
        h /= 36;
    }
    out.extend(code.iter().map(|&b| char::from(b)));
    let ext: String = squeeze(ext).take(3).collect();
    if !ext.is_empty() {
        out.push('.');
        out.push_str(&ext);
    }
    Some(out)
}
