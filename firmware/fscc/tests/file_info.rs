//! Byte layouts of the QUERY_INFO file information classes (MS-FSCC 2.4).

use duet_fscc::consts::*;
use duet_fscc::{
    apply_output_buffer_length, encode_file_id_information, encode_file_info,
    encode_stream_information, file_info_min_output_size, FileBasics, FsccError, OpenInfo,
    StreamEntry,
};

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

fn file() -> FileBasics {
    FileBasics {
        creation_time: 0x0102_0304_0506_0708,
        last_access_time: 0x1112_1314_1516_1718,
        last_write_time: 0x2122_2324_2526_2728,
        change_time: 0x3132_3334_3536_3738,
        end_of_file: 5000,
        allocation_size: 8192,
        attributes: FILE_ATTRIBUTE_ARCHIVE | FILE_ATTRIBUTE_HIDDEN,
        file_id: 0xDEAD_BEEF_0000_0042,
        number_of_links: 1,
        is_directory: false,
        delete_pending: false,
        ea_size: 0x44,
    }
}

fn dir() -> FileBasics {
    FileBasics {
        end_of_file: 0,
        allocation_size: 0,
        attributes: 0,
        number_of_links: 3,
        is_directory: true,
        ..file()
    }
}

fn open(name: &str) -> OpenInfo<'_> {
    OpenInfo {
        name,
        access_mask: FILE_GENERIC_READ,
        position: 0x1234,
        mode: FILE_SEQUENTIAL_ONLY,
        alignment: FILE_LONG_ALIGNMENT,
    }
}

fn enc(class: u8, f: &FileBasics, o: &OpenInfo<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_file_info(class, f, o, &mut out).unwrap();
    out
}

#[test]
fn basic_information_is_40_bytes() {
    let b = enc(FILE_BASIC_INFORMATION, &file(), &open("a.txt"));
    assert_eq!(b.len(), 40);
    assert_eq!(u64_at(&b, 0), 0x0102_0304_0506_0708);
    assert_eq!(u64_at(&b, 8), 0x1112_1314_1516_1718);
    assert_eq!(u64_at(&b, 16), 0x2122_2324_2526_2728);
    assert_eq!(u64_at(&b, 24), 0x3132_3334_3536_3738);
    assert_eq!(
        u32_at(&b, 32),
        FILE_ATTRIBUTE_ARCHIVE | FILE_ATTRIBUTE_HIDDEN
    );
    assert_eq!(u32_at(&b, 36), 0, "Reserved");
}

#[test]
fn standard_information_is_24_bytes() {
    let b = enc(FILE_STANDARD_INFORMATION, &file(), &open("a.txt"));
    assert_eq!(b.len(), 24);
    assert_eq!(u64_at(&b, 0), 8192, "AllocationSize");
    assert_eq!(u64_at(&b, 8), 5000, "EndOfFile");
    assert_eq!(u32_at(&b, 16), 1, "NumberOfLinks");
    assert_eq!(b[20], 0, "DeletePending");
    assert_eq!(b[21], 0, "Directory");
    assert_eq!(u16_at(&b, 22), 0, "Reserved");

    let b = enc(FILE_STANDARD_INFORMATION, &dir(), &open("d"));
    assert_eq!(u32_at(&b, 16), 1, "a directory reports one link");
    assert_eq!(b[21], 1, "Directory");
}

#[test]
fn delete_pending_removes_a_link() {
    // As smbtorture's smb2.setinfo checks: delete pending, nlink 0.
    let f = FileBasics {
        delete_pending: true,
        ..file()
    };
    let b = enc(FILE_STANDARD_INFORMATION, &f, &open("a.txt"));
    assert_eq!(u32_at(&b, 16), 0);
    assert_eq!(b[20], 1);
    let f = FileBasics {
        delete_pending: true,
        number_of_links: 2,
        ..file()
    };
    let b = enc(FILE_STANDARD_INFORMATION, &f, &open("a.txt"));
    assert_eq!(u32_at(&b, 16), 1);
    assert_eq!(b[20], 1);
    // No link left at all means DeletePending (MS-FSA 2.1.5.12.27).
    let f = FileBasics {
        number_of_links: 0,
        ..file()
    };
    let b = enc(FILE_STANDARD_INFORMATION, &f, &open("a.txt"));
    assert_eq!((u32_at(&b, 16), b[20]), (0, 1));
}

#[test]
fn small_fixed_classes() {
    let f = file();
    let o = open("a.txt");
    assert_eq!(
        enc(FILE_INTERNAL_INFORMATION, &f, &o),
        0xDEAD_BEEF_0000_0042u64.to_le_bytes()
    );
    assert_eq!(enc(FILE_EA_INFORMATION, &f, &o), 0x44u32.to_le_bytes());
    assert_eq!(
        enc(FILE_ACCESS_INFORMATION, &f, &o),
        FILE_GENERIC_READ.to_le_bytes()
    );
    assert_eq!(
        enc(FILE_POSITION_INFORMATION, &f, &o),
        0x1234u64.to_le_bytes()
    );
    assert_eq!(
        enc(FILE_MODE_INFORMATION, &f, &o),
        FILE_SEQUENTIAL_ONLY.to_le_bytes()
    );
    assert_eq!(
        enc(FILE_ALIGNMENT_INFORMATION, &f, &o),
        FILE_LONG_ALIGNMENT.to_le_bytes()
    );
}

#[test]
fn attributes_follow_ms_fsa() {
    let o = open("x");
    let attrs = |f: &FileBasics| u32_at(&enc(FILE_BASIC_INFORMATION, f, &o), 32);
    let none = FileBasics {
        attributes: 0,
        ..file()
    };
    assert_eq!(attrs(&none), FILE_ATTRIBUTE_NORMAL, "no attribute: NORMAL");
    let normal_and_more = FileBasics {
        attributes: FILE_ATTRIBUTE_NORMAL | FILE_ATTRIBUTE_READONLY,
        ..file()
    };
    assert_eq!(
        attrs(&normal_and_more),
        FILE_ATTRIBUTE_READONLY,
        "NORMAL only alone"
    );
    assert_eq!(
        attrs(&dir()),
        FILE_ATTRIBUTE_DIRECTORY,
        "directories get DIRECTORY"
    );
    let file_with_dir_bit = FileBasics {
        attributes: FILE_ATTRIBUTE_DIRECTORY,
        ..file()
    };
    assert_eq!(
        attrs(&file_with_dir_bit),
        FILE_ATTRIBUTE_NORMAL,
        "files never get DIRECTORY"
    );
    // Every class that reports FileAttributes agrees.
    let d = dir();
    assert_eq!(
        u32_at(&enc(FILE_NETWORK_OPEN_INFORMATION, &d, &o), 48),
        FILE_ATTRIBUTE_DIRECTORY
    );
    assert_eq!(
        u32_at(&enc(FILE_ATTRIBUTE_TAG_INFORMATION, &d, &o), 0),
        FILE_ATTRIBUTE_DIRECTORY
    );
    assert_eq!(
        u32_at(&enc(FILE_ALL_INFORMATION, &d, &o), 32),
        FILE_ATTRIBUTE_DIRECTORY
    );
}

#[test]
fn name_information_has_a_leading_backslash() {
    let b = enc(FILE_NAME_INFORMATION, &file(), &open("dir\\sub\\a.txt"));
    let name = utf16("\\dir\\sub\\a.txt");
    assert_eq!(u32_at(&b, 0) as usize, name.len());
    assert_eq!(&b[4..], &name[..]);
    // The share root is "\".
    let b = enc(FILE_NAME_INFORMATION, &dir(), &open(""));
    assert_eq!(b, [2, 0, 0, 0, b'\\', 0]);
}

#[test]
fn normalized_name_has_no_leading_backslash() {
    let b = enc(
        FILE_NORMALIZED_NAME_INFORMATION,
        &file(),
        &open("torture_dIr1N\\dIr2Na"),
    );
    let name = utf16("torture_dIr1N\\dIr2Na");
    assert_eq!(u32_at(&b, 0) as usize, name.len());
    assert_eq!(&b[4..], &name[..]);
    // smbtorture smb2.getinfo.normalized: the root's name is empty.
    assert_eq!(
        enc(FILE_NORMALIZED_NAME_INFORMATION, &dir(), &open("")),
        [0, 0, 0, 0]
    );
}

#[test]
fn all_information_is_100_bytes_plus_name() {
    let f = file();
    let o = open("dir\\\u{00E9}t\u{00E9}.txt");
    let b = enc(FILE_ALL_INFORMATION, &f, &o);
    let name = utf16("\\dir\\\u{00E9}t\u{00E9}.txt");
    assert_eq!(b.len(), 100 + name.len());
    // Each part equals the class queried on its own.
    assert_eq!(&b[0..40], &enc(FILE_BASIC_INFORMATION, &f, &o)[..]);
    assert_eq!(&b[40..64], &enc(FILE_STANDARD_INFORMATION, &f, &o)[..]);
    assert_eq!(&b[64..72], &enc(FILE_INTERNAL_INFORMATION, &f, &o)[..]);
    assert_eq!(&b[72..76], &enc(FILE_EA_INFORMATION, &f, &o)[..]);
    assert_eq!(&b[76..80], &enc(FILE_ACCESS_INFORMATION, &f, &o)[..]);
    assert_eq!(&b[80..88], &enc(FILE_POSITION_INFORMATION, &f, &o)[..]);
    assert_eq!(&b[88..92], &enc(FILE_MODE_INFORMATION, &f, &o)[..]);
    assert_eq!(&b[92..96], &enc(FILE_ALIGNMENT_INFORMATION, &f, &o)[..]);
    assert_eq!(&b[96..], &enc(FILE_NAME_INFORMATION, &f, &o)[..]);
    // And the absolute offsets smbtorture's parser uses.
    assert_eq!(u64_at(&b, 0x40), f.file_id);
    assert_eq!(u32_at(&b, 0x48), f.ea_size);
    assert_eq!(u32_at(&b, 0x4C), o.access_mask);
    assert_eq!(u64_at(&b, 0x50), o.position);
    assert_eq!(u32_at(&b, 0x58), o.mode);
    assert_eq!(u32_at(&b, 0x60) as usize, name.len());
}

#[test]
fn alternate_name_is_the_short_name_of_the_last_component() {
    // An 8.3 name is its own short name, case kept.
    assert_eq!(
        enc(
            FILE_ALTERNATE_NAME_INFORMATION,
            &file(),
            &open("dir\\bufsize.txt")
        ),
        [&22u32.to_le_bytes()[..], &utf16("bufsize.txt")].concat()
    );
    // A long name gets the generated one, the same every time.
    let long = enc(
        FILE_ALTERNATE_NAME_INFORMATION,
        &file(),
        &open("\\d\\torture_search.txt"),
    );
    let short = duet_fscc::short_name("torture_search.txt").unwrap();
    assert_eq!(
        long,
        [&(2 * short.len() as u32).to_le_bytes()[..], &utf16(&short)].concat()
    );
    assert!(short.starts_with("TOR~") && short.ends_with(".TXT") && short.len() == 12);
    // The share root has none.
    let mut out = vec![0xAA];
    assert_eq!(
        encode_file_info(
            FILE_ALTERNATE_NAME_INFORMATION,
            &file(),
            &open(""),
            &mut out
        ),
        Err(FsccError::ObjectNameNotFound)
    );
    assert_eq!(out, [0xAA], "nothing appended on error");
    assert_eq!(FsccError::ObjectNameNotFound.ntstatus(), 0xC000_0034);
}

#[test]
fn stream_information_one_default_stream() {
    let b = enc(FILE_STREAM_INFORMATION, &file(), &open("a.txt"));
    let name = utf16("::$DATA");
    assert_eq!(b.len(), 24 + 14, "no padding after the last entry");
    assert_eq!(u32_at(&b, 0), 0, "NextEntryOffset of the last entry");
    assert_eq!(u32_at(&b, 4), 14, "StreamNameLength");
    assert_eq!(u64_at(&b, 8), 5000, "StreamSize");
    assert_eq!(u64_at(&b, 16), 8192, "StreamAllocationSize");
    assert_eq!(&b[24..], &name[..]);
    assert!(enc(FILE_STREAM_INFORMATION, &dir(), &open("d")).is_empty());
}

#[test]
fn stream_information_lists_named_streams() {
    let mut b = Vec::new();
    let streams = [
        StreamEntry {
            name: "::$DATA",
            size: 5,
            allocation: 8,
        },
        StreamEntry {
            name: ":ab:$DATA",
            size: 300,
            allocation: 304,
        },
    ];
    encode_stream_information(&streams, &mut b).unwrap();
    // 24 + 14 bytes, padded to 40; then 24 + 18, unpadded.
    assert_eq!(u32_at(&b, 0), 40, "NextEntryOffset, 8-byte aligned");
    assert_eq!(u32_at(&b, 4), 14);
    assert_eq!(&b[24..38], &utf16("::$DATA")[..]);
    assert_eq!(&b[38..40], &[0, 0]);
    assert_eq!(u32_at(&b, 40), 0, "the last entry");
    assert_eq!(u32_at(&b, 44), 18);
    assert_eq!((u64_at(&b, 48), u64_at(&b, 56)), (300, 304));
    assert_eq!(&b[64..], &utf16(":ab:$DATA")[..]);
    // A directory without named streams: nothing.
    let mut e = Vec::new();
    encode_stream_information(&[], &mut e).unwrap();
    assert!(e.is_empty());
}

#[test]
fn compression_information_is_16_bytes() {
    let b = enc(FILE_COMPRESSION_INFORMATION, &file(), &open("a.txt"));
    assert_eq!(b.len(), 16);
    assert_eq!(u64_at(&b, 0), 5000, "CompressedFileSize");
    assert_eq!(u16_at(&b, 8), COMPRESSION_FORMAT_NONE);
    assert_eq!(&b[10..16], &[0; 6]);
    let b = enc(FILE_COMPRESSION_INFORMATION, &dir(), &open("d"));
    assert_eq!(b, [0; 16]);
}

#[test]
fn network_open_information_is_56_bytes() {
    let f = file();
    let b = enc(FILE_NETWORK_OPEN_INFORMATION, &f, &open("a.txt"));
    assert_eq!(b.len(), 56);
    assert_eq!(u64_at(&b, 0), f.creation_time);
    assert_eq!(u64_at(&b, 8), f.last_access_time);
    assert_eq!(u64_at(&b, 16), f.last_write_time);
    assert_eq!(u64_at(&b, 24), f.change_time);
    assert_eq!(u64_at(&b, 32), 8192, "AllocationSize before EndOfFile");
    assert_eq!(u64_at(&b, 40), 5000);
    assert_eq!(u32_at(&b, 48), f.attributes);
    assert_eq!(u32_at(&b, 52), 0);
}

#[test]
fn attribute_tag_information_is_8_bytes() {
    let b = enc(FILE_ATTRIBUTE_TAG_INFORMATION, &file(), &open("a.txt"));
    assert_eq!(b.len(), 8);
    assert_eq!(
        u32_at(&b, 0),
        FILE_ATTRIBUTE_ARCHIVE | FILE_ATTRIBUTE_HIDDEN
    );
    assert_eq!(u32_at(&b, 4), 0, "ReparseTag");
}

#[test]
fn file_id_information_is_24_bytes() {
    let f = file();
    let b = enc(FILE_ID_INFORMATION, &f, &open("a.txt"));
    assert_eq!(b.len(), 24);
    assert_eq!(u64_at(&b, 0), 0);
    assert_eq!(u64_at(&b, 8), f.file_id);
    assert_eq!(u64_at(&b, 16), 0);
    let mut b = Vec::new();
    encode_file_id_information(0x1122_3344, &f, &mut b);
    assert_eq!(u64_at(&b, 0), 0x1122_3344);
    assert_eq!(&b[8..], &enc(FILE_ID_INFORMATION, &f, &open("a.txt"))[8..]);
}

#[test]
fn encoders_append() {
    let mut out = vec![1, 2, 3];
    encode_file_info(FILE_EA_INFORMATION, &file(), &open("a"), &mut out).unwrap();
    assert_eq!(out, [1, 2, 3, 0x44, 0, 0, 0]);
}

#[test]
fn unsupported_classes_are_invalid_info_class() {
    for class in [
        0u8, 1, 2, 3, 10, 11, 12, 13, 15, 19, 20, 23, 37, 38, 60, 64, 100, 255,
    ] {
        let mut out = vec![7];
        assert_eq!(
            encode_file_info(class, &file(), &open("a"), &mut out),
            Err(FsccError::InvalidInfoClass),
            "class {class}"
        );
        assert_eq!(out, [7]);
        assert_eq!(file_info_min_output_size(class), None, "class {class}");
    }
    assert_eq!(FsccError::InvalidInfoClass.ntstatus(), 0xC000_0003);
}

#[test]
fn fixed_classes_fill_their_minimum_exactly() {
    // The values of smbtorture smb2.getinfo.qfile_buffercheck.
    let table = [
        (FILE_BASIC_INFORMATION, 40),
        (FILE_STANDARD_INFORMATION, 24),
        (FILE_INTERNAL_INFORMATION, 8),
        (FILE_EA_INFORMATION, 4),
        (FILE_ACCESS_INFORMATION, 4),
        (FILE_POSITION_INFORMATION, 8),
        (FILE_MODE_INFORMATION, 4),
        (FILE_ALIGNMENT_INFORMATION, 4),
        (FILE_COMPRESSION_INFORMATION, 16),
        (FILE_NETWORK_OPEN_INFORMATION, 56),
        (FILE_ATTRIBUTE_TAG_INFORMATION, 8),
        (FILE_ID_INFORMATION, 24),
    ];
    for (class, size) in table {
        assert_eq!(
            file_info_min_output_size(class),
            Some(size),
            "class {class}"
        );
        assert_eq!(enc(class, &file(), &open("a")).len(), size, "class {class}");
    }
    assert_eq!(file_info_min_output_size(FILE_ALL_INFORMATION), Some(104));
    assert_eq!(
        file_info_min_output_size(FILE_ALTERNATE_NAME_INFORMATION),
        Some(8)
    );
    assert_eq!(file_info_min_output_size(FILE_STREAM_INFORMATION), Some(32));
    assert_eq!(file_info_min_output_size(FILE_NAME_INFORMATION), Some(8));
    assert_eq!(
        file_info_min_output_size(FILE_NORMALIZED_NAME_INFORMATION),
        Some(8)
    );
}

#[test]
fn output_buffer_length_handling() {
    let full = enc(FILE_ALL_INFORMATION, &file(), &open("abc"));
    assert_eq!(full.len(), 108);
    let min = file_info_min_output_size(FILE_ALL_INFORMATION).unwrap();
    // The loop of smb2.getinfo.qfile_buffercheck.
    for len in 0..=full.len() + 4 {
        let mut b = full.clone();
        let r = apply_output_buffer_length(&mut b, min, len);
        if len < min {
            assert_eq!(r, Err(FsccError::InfoLengthMismatch), "len {len}");
            assert_eq!(b, full);
        } else if len < full.len() {
            assert_eq!(r, Ok(true), "len {len}");
            assert_eq!(b[..], full[..len]);
        } else {
            assert_eq!(r, Ok(false), "len {len}");
            assert_eq!(b, full);
        }
    }
}
