//! QUERY_DIRECTORY entry layouts, NextEntryOffset chaining and 8-byte
//! alignment (MS-FSCC 2.4.8, 2.4.10, 2.4.15, 2.4.22, 2.4.24, 2.4.33).

use duet_fscc::consts::*;
use duet_fscc::{DirEntryWriter, FileBasics, FsccError};

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// (class, FieldOffset(FileName), offset of FileNameLength, offset of EaSize,
/// offset of FileId)
type Layout = (u8, usize, usize, Option<usize>, Option<usize>);

const CLASSES: [Layout; 6] = [
    (FILE_DIRECTORY_INFORMATION, 64, 60, None, None),
    (FILE_FULL_DIRECTORY_INFORMATION, 68, 60, Some(64), None),
    (FILE_BOTH_DIRECTORY_INFORMATION, 94, 60, Some(64), None),
    (FILE_NAMES_INFORMATION, 12, 8, None, None),
    (
        FILE_ID_BOTH_DIRECTORY_INFORMATION,
        104,
        60,
        Some(64),
        Some(96),
    ),
    (
        FILE_ID_FULL_DIRECTORY_INFORMATION,
        80,
        60,
        Some(64),
        Some(72),
    ),
];

fn basics(i: u64) -> FileBasics {
    FileBasics {
        creation_time: 0x1000 + i,
        last_access_time: 0x2000 + i,
        last_write_time: 0x3000 + i,
        change_time: 0x4000 + i,
        end_of_file: 100 * i,
        allocation_size: 4096 * i,
        attributes: if i == 0 { 0 } else { FILE_ATTRIBUTE_ARCHIVE },
        file_id: 0xF1D0_0000 + i,
        number_of_links: 1,
        is_directory: i == 0,
        delete_pending: false,
        ea_size: 0x10 + i as u32,
    }
}

/// Walks a QUERY_DIRECTORY buffer the way a client must (MS-FSCC: "use
/// this value to determine the location of the next entry"); returns each
/// entry's start offset, checking alignment, bounds and the zero padding.
fn walk(buf: &[u8], name_len_at: usize, fixed: usize) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut off = 0;
    loop {
        assert_eq!(off % 8, 0, "entry at {off} not 8-byte aligned");
        starts.push(off);
        let next = u32_at(buf, off) as usize;
        let end = off + fixed + u32_at(buf, off + name_len_at) as usize;
        assert!(end <= buf.len(), "entry at {off} overruns the buffer");
        if next == 0 {
            assert_eq!(end, buf.len(), "no padding after the last entry");
            return starts;
        }
        assert_eq!(
            next,
            (end - off).next_multiple_of(8),
            "NextEntryOffset is the aligned size"
        );
        assert!(
            buf[end..off + next].iter().all(|&b| b == 0),
            "padding is zero"
        );
        off += next;
    }
}

#[test]
fn every_class_chains_aligned_entries() {
    let names = [".", "..", "a.txt", "longer name \u{00FC}.dat", "x"];
    for (class, fixed, name_len_at, ea_at, id_at) in CLASSES {
        assert_eq!(DirEntryWriter::fixed_size(class), Some(fixed));
        let mut w = DirEntryWriter::new(class, 65536).unwrap();
        assert!(w.is_empty());
        for (i, name) in names.iter().enumerate() {
            assert!(
                w.push(i as u32 * 7, name, &basics(i as u64)),
                "class {class}"
            );
        }
        assert_eq!(w.len(), names.len());
        let buf = w.finish();
        let starts = walk(&buf, name_len_at, fixed);
        assert_eq!(starts.len(), names.len(), "class {class}");
        for (i, (&s, name)) in starts.iter().zip(names).enumerate() {
            let f = basics(i as u64);
            let n = utf16(name);
            assert_eq!(u32_at(&buf, s + 4), i as u32 * 7, "FileIndex");
            assert_eq!(
                u32_at(&buf, s + name_len_at) as usize,
                n.len(),
                "FileNameLength"
            );
            assert_eq!(&buf[s + fixed..s + fixed + n.len()], &n[..], "FileName");
            if class == FILE_NAMES_INFORMATION {
                continue;
            }
            assert_eq!(u64_at(&buf, s + 8), f.creation_time);
            assert_eq!(u64_at(&buf, s + 16), f.last_access_time);
            assert_eq!(u64_at(&buf, s + 24), f.last_write_time);
            assert_eq!(u64_at(&buf, s + 32), f.change_time);
            assert_eq!(u64_at(&buf, s + 40), f.end_of_file);
            assert_eq!(u64_at(&buf, s + 48), f.allocation_size);
            let attrs = if i == 0 {
                FILE_ATTRIBUTE_DIRECTORY
            } else {
                FILE_ATTRIBUTE_ARCHIVE
            };
            assert_eq!(u32_at(&buf, s + 56), attrs, "FileAttributes");
            if let Some(o) = ea_at {
                assert_eq!(u32_at(&buf, s + o), f.ea_size, "EaSize");
            }
            if let Some(o) = id_at {
                assert_eq!(u64_at(&buf, s + o), f.file_id, "FileId");
            }
            if matches!(
                class,
                FILE_BOTH_DIRECTORY_INFORMATION | FILE_ID_BOTH_DIRECTORY_INFORMATION
            ) {
                // ShortNameLength, Reserved, ShortName[24] (and Reserved2):
                // what FileAlternateNameInformation reports, none for
                // names that are 8.3 names already (and "." and "..").
                let short = duet_fscc::short_name(name);
                assert_eq!(
                    buf[s + 68] as usize,
                    short.as_ref().map_or(0, |x| 2 * x.len())
                );
                assert_eq!(buf[s + 69], 0, "Reserved1");
                let want = utf16(short.as_deref().unwrap_or(""));
                assert_eq!(&buf[s + 70..s + 70 + want.len()], &want[..], "ShortName");
                assert!(
                    buf[s + 70 + want.len()..s + 94].iter().all(|&b| b == 0),
                    "zero padded"
                );
                if name.starts_with("longer") {
                    assert!(short.is_some_and(|x| x.starts_with("LON~") && x.ends_with(".DAT")));
                }
            }
            if class == FILE_ID_BOTH_DIRECTORY_INFORMATION {
                assert_eq!(&buf[s + 94..s + 96], &[0, 0], "Reserved2");
            }
            if class == FILE_ID_FULL_DIRECTORY_INFORMATION {
                assert_eq!(u32_at(&buf, s + 68), 0, "Reserved");
            }
        }
    }
}

#[test]
fn exact_offsets_for_both_directory_information() {
    let mut w = DirEntryWriter::new(FILE_ID_BOTH_DIRECTORY_INFORMATION, 4096).unwrap();
    assert!(w.push(0, "abc", &basics(1))); // 104 + 6 = 110 -> next at 112
    assert!(w.push(0, "de", &basics(2))); // 104 + 4 = 108 -> next at 224
    assert!(w.push(0, "f", &basics(3))); // 104 + 2, last: no padding
    let buf = w.finish();
    assert_eq!(u32_at(&buf, 0), 112);
    assert_eq!(u32_at(&buf, 112), 112);
    assert_eq!(u32_at(&buf, 224), 0);
    assert_eq!(buf.len(), 224 + 106);
}

#[test]
fn names_information_layout() {
    let mut w = DirEntryWriter::new(FILE_NAMES_INFORMATION, 4096).unwrap();
    assert!(w.push(5, "a", &basics(1)));
    assert!(w.push(6, "bc", &basics(2)));
    let buf = w.finish();
    let mut expect = vec![16, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, b'a', 0, 0, 0];
    expect.extend_from_slice(&[0, 0, 0, 0, 6, 0, 0, 0, 4, 0, 0, 0, b'b', 0, b'c', 0]);
    assert_eq!(buf, expect);
}

#[test]
fn too_small_buffer_stops_cleanly() {
    // FileDirectoryInformation: "a.txt" takes 64 + 10 = 74 bytes, the
    // second starts at 80, so two entries need 154 bytes.
    let f = basics(1);
    let mut w = DirEntryWriter::new(FILE_DIRECTORY_INFORMATION, 154).unwrap();
    assert!(w.push(0, "a.txt", &f));
    assert!(w.push(0, "b.txt", &f), "fits exactly");
    assert!(!w.push(0, "c.txt", &f));
    assert!(!w.push(0, "", &f), "even an empty name needs 80 + 64 more");
    assert_eq!(w.len(), 2);
    let buf = w.finish();
    assert_eq!(buf.len(), 154);
    assert_eq!(u32_at(&buf, 0), 80);
    assert_eq!(u32_at(&buf, 80), 0, "the last pushed entry stays last");

    let mut w = DirEntryWriter::new(FILE_DIRECTORY_INFORMATION, 153).unwrap();
    assert!(w.push(0, "a.txt", &f));
    assert!(!w.push(0, "b.txt", &f), "one byte short");
    let buf = w.finish();
    assert_eq!(buf.len(), 74);
    assert_eq!(u32_at(&buf, 0), 0);

    // Not even the first entry: the SMB layer answers
    // STATUS_INFO_LENGTH_MISMATCH.
    let mut w = DirEntryWriter::new(FILE_DIRECTORY_INFORMATION, 73).unwrap();
    assert!(!w.push(0, "a.txt", &f));
    assert!(w.is_empty());
    assert!(w.finish().is_empty());
    let mut w = DirEntryWriter::new(FILE_NAMES_INFORMATION, 0).unwrap();
    assert!(!w.push(0, "a", &f));
    assert!(w.is_empty());
}

#[test]
fn only_directory_classes() {
    for class in [0u8, 4, 5, 9, 18, 22, 34, 39, 50, 60, 255] {
        assert_eq!(
            DirEntryWriter::new(class, 1024).err(),
            Some(FsccError::InvalidInfoClass),
            "class {class}"
        );
        assert_eq!(DirEntryWriter::fixed_size(class), None);
    }
}
