//! QUERY_DIRECTORY (MS-SMB2 2.2.33/2.2.34, 3.3.5.18): directory enumeration with
//! wildcards, restart, single-entry and index semantics, in every information class
//! `duet_fscc` encodes.
//!
//! Owns: the per-open enumeration cursor. Never returns an entry twice in one scan, nor
//! one that was removed after the scan began.

use std::collections::HashMap;

use duet_fscc::{consts::*, DirEntryWriter, FileBasics};

use super::create::{fs_status, lookup_fid};
use super::info::basics;
use super::negotiate::MAX_IO;
use super::{Conn, Fail, FileId, HResult, Reply, Req};
use crate::wire::{status, utf16le, PutLe, HEADER_LEN};

const RESTART_SCANS: u8 = 0x01;
const RETURN_SINGLE_ENTRY: u8 = 0x02;
const INDEX_SPECIFIED: u8 = 0x04;
const REOPEN: u8 = 0x10;

/// One open's enumeration: the snapshot taken at the scan's start and the cursor in it.
pub struct DirEnum {
    pub pattern: String,
    pub entries: Vec<Entry>,
    pub next: usize,
    /// Whether any entry was returned since the scan began.
    pub returned_any: bool,
    /// The directory's (write, change) times when `entries` were last checked against it.
    version: (u64, u64),
}

/// One name of a scan's snapshot.
pub struct Entry {
    pub name: String,
    pub basics: FileBasics,
    /// Removed from the directory after the scan began: skipped.
    pub gone: bool,
}

impl DirEnum {
    /// Brings the entries not yet returned up to date with a new listing of the
    /// directory: names no longer in it are skipped from now on (as Windows, which reads
    /// the directory as the scan goes, never returns them), the others get their current
    /// metadata. Names added since the scan began are not picked up.
    fn refresh(&mut self, listing: &HashMap<String, FileBasics>) {
        for e in self.entries.iter_mut().skip(self.next) {
            if e.name == "." || e.name == ".." || e.gone {
                continue;
            }
            match listing.get(&e.name) {
                Some(b) => e.basics = b.clone(),
                None => e.gone = true,
            }
        }
    }
}

fn version_of(m: &duet_hal::fs::Meta) -> (u64, u64) {
    (m.write_time, m.change_time)
}

fn has_wildcard(p: &str) -> bool {
    p.contains(['*', '?', '<', '>', '"'])
}

pub fn handle_query_directory(conn: &mut Conn, req: &Req) -> HResult {
    let b = req.body();
    b.expect_structure_size(33)?;
    let class = b.u8(2)?;
    let flags = b.u8(3)?;
    let file_index = b.u32(4)?;
    let fid = FileId::parse(&b, 8)?;
    let name_off = b.u16(24)? as usize;
    let name_len = b.u16(26)? as usize;
    let out_len = b.u32(28)? as usize;
    let pattern = utf16le(b.buffer(name_off, name_len)?)
        .map_err(|_| Fail::Status(status::INVALID_PARAMETER))?;
    let vol = lookup_fid(conn, req, fid)?;
    super::io::check_charge(conn, req, out_len)?;
    let max = out_len.min(MAX_IO as usize);
    let mut writer =
        DirEntryWriter::new(class, max).map_err(|_| Fail::Status(status::INVALID_INFO_CLASS))?;
    let open = conn
        .opens
        .get_mut(&vol)
        .ok_or(Fail::Status(status::FILE_CLOSED))?;
    if !open.is_dir {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    if open.granted_access & FILE_LIST_DIRECTORY == 0 {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    if pattern.contains('\\') || pattern.contains('/') {
        return Err(Fail::Status(status::INVALID_PARAMETER));
    }
    let restart = flags & (RESTART_SCANS | REOPEN) != 0 || open.dir_enum.is_none();
    let handle = open
        .handle()
        .ok_or(Fail::Status(status::INVALID_PARAMETER))?
        .clone();
    // The directory's current path (another connection may have renamed it).
    let dir_path = open
        .key
        .and_then(|k| conn.server.files.lock().ok().and_then(|f| f.path_of(&k)))
        .unwrap_or_else(|| open.path.clone());
    if restart {
        let pattern = if pattern.is_empty() {
            "*".to_string()
        } else {
            pattern
        };
        let self_meta = handle.meta().map_err(|e| Fail::Status(fs_status(&e)))?;
        let mut entries = Vec::new();
        let dot = basics(&self_meta);
        let entry = |name: &str, basics: FileBasics| Entry {
            name: name.to_string(),
            basics,
            gone: false,
        };
        if duet_fscc::name_matches(&pattern, ".") {
            entries.push(entry(".", dot.clone()));
        }
        if duet_fscc::name_matches(&pattern, "..") {
            let parent = if dir_path.is_empty() {
                dot.clone()
            } else {
                let parent_path = dir_path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                open.root
                    .as_ref()
                    .and_then(|r| r.stat(parent_path).ok())
                    .map(|m| basics(&m))
                    .unwrap_or_else(|| dot.clone())
            };
            entries.push(entry("..", parent));
        }
        let exact = !has_wildcard(&pattern);
        let mut found_exact = false;
        if exact {
            if let Some(root) = open.root.as_ref() {
                let p = if dir_path.is_empty() {
                    pattern.clone()
                } else {
                    format!("{dir_path}/{pattern}")
                };
                if let Ok(m) = root.stat(&p) {
                    entries.push(entry(&pattern, basics(&m)));
                    found_exact = true;
                }
            }
        }
        if !found_exact {
            let list = handle.read_dir().map_err(|e| Fail::Status(fs_status(&e)))?;
            for e in list.entries {
                if duet_fscc::name_matches(&pattern, &e.name) {
                    entries.push(Entry {
                        basics: basics(&e.meta),
                        name: e.name,
                        gone: false,
                    });
                }
            }
        }
        let version = version_of(&self_meta);
        open.dir_enum = Some(DirEnum {
            pattern,
            entries,
            next: 0,
            returned_any: false,
            version,
        });
    }
    let Some(en) = open.dir_enum.as_mut() else {
        return Err(Fail::Status(status::INTERNAL_ERROR));
    };
    if !restart {
        // Entries added, removed or renamed since the snapshot move the directory's times.
        let meta = handle.meta().map_err(|e| Fail::Status(fs_status(&e)))?;
        let version = version_of(&meta);
        if version != en.version {
            let list = handle.read_dir().map_err(|e| Fail::Status(fs_status(&e)))?;
            let now: HashMap<String, FileBasics> = list
                .entries
                .into_iter()
                .map(|e| (e.name, basics(&e.meta)))
                .collect();
            en.refresh(&now);
            en.version = version;
        }
    }
    if flags & INDEX_SPECIFIED != 0 && !restart {
        en.next = (file_index as usize).min(en.entries.len());
    }
    let single = flags & RETURN_SINGLE_ENTRY != 0;
    while en.next < en.entries.len() {
        let e = &en.entries[en.next];
        if e.gone {
            en.next += 1;
            continue;
        }
        if !writer.push(en.next as u32 + 1, &e.name, &e.basics) {
            if writer.is_empty() {
                return Err(Fail::Status(status::INFO_LENGTH_MISMATCH));
            }
            break;
        }
        en.next += 1;
        if single {
            break;
        }
    }
    if writer.is_empty() {
        let st = if en.returned_any {
            status::NO_MORE_FILES
        } else {
            status::NO_SUCH_FILE
        };
        en.returned_any = true;
        return Err(Fail::Status(st));
    }
    en.returned_any = true;
    let data = writer.finish();
    let mut body = Vec::with_capacity(8 + data.len());
    body.put_u16(9);
    body.put_u16((HEADER_LEN + 8) as u16);
    body.put_u32(data.len() as u32);
    body.extend_from_slice(&data);
    Ok(Reply::ok(body))
}

#[cfg(test)]
mod tests {
    use super::super::create::{FILE_CREATE, FILE_DIRECTORY_FILE, FILE_OPEN};
    use super::super::testkit::{entry_names, CreateArgs, Kit};
    use super::*;

    fn fb(attributes: u32) -> FileBasics {
        FileBasics {
            creation_time: 0,
            last_access_time: 0,
            last_write_time: 0,
            change_time: 0,
            end_of_file: 0,
            allocation_size: 0,
            attributes,
            file_id: 0,
            number_of_links: 1,
            is_directory: false,
            delete_pending: false,
            ea_size: 0,
        }
    }

    #[test]
    fn refresh_skips_removed_names_and_updates_the_rest() {
        let e = |n: &str| Entry {
            name: n.into(),
            basics: fb(FILE_ATTRIBUTE_ARCHIVE),
            gone: false,
        };
        let mut en = DirEnum {
            pattern: "*".into(),
            entries: vec![e("."), e(".."), e("a"), e("b"), e("c")],
            next: 3,
            returned_any: true,
            version: (0, 0),
        };
        let mut now = HashMap::new();
        now.insert("c".to_string(), fb(FILE_ATTRIBUTE_HIDDEN));
        now.insert("new".to_string(), fb(0));
        en.refresh(&now);
        let state: Vec<_> = en
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.gone, e.basics.attributes))
            .collect();
        assert_eq!(
            state,
            [
                (".", false, FILE_ATTRIBUTE_ARCHIVE),
                ("..", false, FILE_ATTRIBUTE_ARCHIVE),
                // Already returned: left alone.
                ("a", false, FILE_ATTRIBUTE_ARCHIVE),
                ("b", true, FILE_ATTRIBUTE_ARCHIVE),
                ("c", false, FILE_ATTRIBUTE_HIDDEN),
            ]
        );
    }

    const BOTH: u8 = FILE_BOTH_DIRECTORY_INFORMATION;

    /// smb2.dir.fixed: names removed through another handle during a scan are not
    /// returned by the rest of it.
    #[test]
    fn names_removed_during_a_scan_are_not_returned() {
        let kit = Kit::new();
        let mut c = kit.client();
        let dir = CreateArgs {
            disposition: FILE_CREATE,
            options: FILE_DIRECTORY_FILE,
            ..CreateArgs::new("d")
        };
        let h = c.create(&dir).unwrap();
        for i in 0..20 {
            c.touch(&CreateArgs::new(&format!("d\\file{i:02}")))
                .unwrap();
        }
        let (st, data) = c.query_dir(h.fid, BOTH, RETURN_SINGLE_ENTRY, "*", 4096);
        assert_eq!(st, 0);
        assert_eq!(entry_names(BOTH, &data).len(), 1);
        // Delete half of them.
        for i in (0..20).step_by(2) {
            std::fs::remove_file(kit.path(&format!("d/file{i:02}"))).unwrap();
        }
        let mut seen = Vec::new();
        loop {
            let (st, data) = c.query_dir(h.fid, BOTH, 0, "*", 4096);
            if st == status::NO_MORE_FILES {
                break;
            }
            assert_eq!(st, 0);
            seen.extend(entry_names(BOTH, &data).into_iter().map(|(_, n)| n));
        }
        seen.retain(|n| n != "." && n != "..");
        seen.sort();
        let want: Vec<String> = (1..20).step_by(2).map(|i| format!("file{i:02}")).collect();
        assert_eq!(seen, want);
        // A new scan sees the directory as it is.
        let (_, data) = c.query_dir(h.fid, BOTH, RESTART_SCANS, "file*", 65536);
        assert_eq!(entry_names(BOTH, &data).len(), 10);
        assert_eq!(c.close(h.fid), 0);
    }

    /// A directory renamed through another connection: ".." is its new parent.
    #[test]
    fn dot_dot_follows_a_rename_by_another_connection() {
        let kit = Kit::new();
        let mut one = kit.client();
        let mut two = kit.client();
        let dir = |name: &str, attributes| CreateArgs {
            disposition: FILE_CREATE,
            options: FILE_DIRECTORY_FILE,
            attributes,
            ..CreateArgs::new(name)
        };
        one.touch(&dir("p1", FILE_ATTRIBUTE_HIDDEN)).unwrap();
        one.touch(&dir("p2", 0)).unwrap();
        let d1 = one.create(&dir("p1\\d", 0)).unwrap();
        let d2 = two
            .create(&CreateArgs {
                disposition: FILE_OPEN,
                options: FILE_DIRECTORY_FILE,
                ..CreateArgs::new("p1\\d")
            })
            .unwrap();
        assert_eq!(two.rename(d2.fid, "p2\\d", false), 0);
        let (st, data) = one.query_dir(
            d1.fid,
            FILE_DIRECTORY_INFORMATION,
            RESTART_SCANS,
            "..",
            4096,
        );
        assert_eq!(st, 0);
        let attrs = u32::from_le_bytes(data[56..60].try_into().unwrap());
        assert_eq!(attrs & FILE_ATTRIBUTE_HIDDEN, 0, "{attrs:#x}");
        assert_eq!(one.close(d1.fid), 0);
        assert_eq!(two.close(d2.fid), 0);
    }

    /// Both classes carry the 8.3 name of a long name (the one FileAlternateNameInformation
    /// reports), and none for a name that is already 8.3.
    #[test]
    fn both_classes_carry_short_names() {
        let kit = Kit::new();
        let mut c = kit.client();
        c.touch(&CreateArgs::new("torture_search.txt")).unwrap();
        c.touch(&CreateArgs::new("SHORT.TXT")).unwrap();
        let h = c
            .create(&CreateArgs {
                disposition: FILE_OPEN,
                options: FILE_DIRECTORY_FILE,
                ..CreateArgs::new("")
            })
            .unwrap();
        for (class, at) in [
            (FILE_BOTH_DIRECTORY_INFORMATION, 68),
            (FILE_ID_BOTH_DIRECTORY_INFORMATION, 68),
        ] {
            let (st, data) = c.query_dir(h.fid, class, RESTART_SCANS, "*", 65536);
            assert_eq!(st, 0);
            for (off, name) in entry_names(class, &data) {
                let len = data[off + at] as usize;
                let units: Vec<u16> = data[off + at + 2..off + at + 2 + len]
                    .chunks(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                let short = String::from_utf16(&units).unwrap();
                assert_eq!(
                    short,
                    duet_fscc::short_name(&name).unwrap_or_default(),
                    "{name}"
                );
                assert_eq!(short.is_empty(), name != "torture_search.txt", "{name}");
            }
        }
        assert_eq!(c.close(h.fid), 0);
    }
}
