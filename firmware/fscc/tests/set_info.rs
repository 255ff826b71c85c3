//! SET_INFO decoding (MS-FSCC 2.4): round trips from wire bytes built here,
//! and the length and value errors of MS-FSA 2.1.5.15.

use duet_fscc::consts::*;
use duet_fscc::{decode_set_file_info, encode_full_ea_list, FsccError, FullEa, SetFileInfo};

/// Builds the wire form of `v` the way a client does.
fn wire(v: &SetFileInfo) -> (u8, Vec<u8>) {
    let mut b = Vec::new();
    let class = match v {
        SetFileInfo::Basic {
            creation_time,
            last_access_time,
            last_write_time,
            change_time,
            attributes,
        } => {
            for t in [
                creation_time,
                last_access_time,
                last_write_time,
                change_time,
            ] {
                b.extend_from_slice(&t.to_le_bytes());
            }
            b.extend_from_slice(&attributes.to_le_bytes());
            b.extend_from_slice(&[0xEE; 4]); // Reserved: any value
            FILE_BASIC_INFORMATION
        }
        SetFileInfo::Rename {
            replace_if_exists,
            root_directory,
            file_name,
        }
        | SetFileInfo::Link {
            replace_if_exists,
            root_directory,
            file_name,
        } => {
            b.push(u8::from(*replace_if_exists));
            b.extend_from_slice(&[0xAB; 7]); // Reserved: any value
            b.extend_from_slice(&root_directory.to_le_bytes());
            let name: Vec<u8> = file_name
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes())
                .collect();
            b.extend_from_slice(&(name.len() as u32).to_le_bytes());
            b.extend_from_slice(&name);
            // Samba's client adds a terminator; Padding makes it >= 24.
            b.extend_from_slice(&[0, 0]);
            while b.len() < 24 {
                b.push(0);
            }
            if matches!(v, SetFileInfo::Rename { .. }) {
                FILE_RENAME_INFORMATION
            } else {
                FILE_LINK_INFORMATION
            }
        }
        SetFileInfo::Disposition { delete_pending } => {
            b.push(u8::from(*delete_pending));
            FILE_DISPOSITION_INFORMATION
        }
        SetFileInfo::DispositionEx { flags } => {
            b.extend_from_slice(&flags.to_le_bytes());
            FILE_DISPOSITION_INFORMATION_EX
        }
        SetFileInfo::Position(p) => {
            b.extend_from_slice(&p.to_le_bytes());
            FILE_POSITION_INFORMATION
        }
        SetFileInfo::Mode(m) => {
            b.extend_from_slice(&m.to_le_bytes());
            FILE_MODE_INFORMATION
        }
        SetFileInfo::Allocation(a) => {
            b.extend_from_slice(&a.to_le_bytes());
            FILE_ALLOCATION_INFORMATION
        }
        SetFileInfo::EndOfFile(e) => {
            b.extend_from_slice(&e.to_le_bytes());
            FILE_END_OF_FILE_INFORMATION
        }
        SetFileInfo::ValidDataLength(l) => {
            b.extend_from_slice(&l.to_le_bytes());
            FILE_VALID_DATA_LENGTH_INFORMATION
        }
        SetFileInfo::FullEa(eas) => {
            encode_full_ea_list(eas, usize::MAX, &mut b).unwrap();
            FILE_FULL_EA_INFORMATION
        }
    };
    (class, b)
}

fn samples() -> Vec<SetFileInfo> {
    vec![
        SetFileInfo::Basic {
            creation_time: 0x01D9_1234_5678_9ABC,
            last_access_time: 0,
            last_write_time: u64::MAX, // -1: stop updating
            change_time: u64::MAX - 1, // -2: resume updating
            attributes: FILE_ATTRIBUTE_READONLY | FILE_ATTRIBUTE_HIDDEN,
        },
        SetFileInfo::Rename {
            replace_if_exists: true,
            root_directory: 0,
            file_name: "dir\\new name \u{00E9}\u{1F600}.txt".into(),
        },
        SetFileInfo::Rename {
            replace_if_exists: false,
            root_directory: 0,
            file_name: "a".into(),
        },
        SetFileInfo::Link {
            replace_if_exists: false,
            root_directory: 7,
            file_name: "link".into(),
        },
        SetFileInfo::Disposition {
            delete_pending: true,
        },
        SetFileInfo::Disposition {
            delete_pending: false,
        },
        SetFileInfo::DispositionEx {
            flags: FILE_DISPOSITION_DELETE | FILE_DISPOSITION_POSIX_SEMANTICS,
        },
        SetFileInfo::Position(123_456),
        SetFileInfo::Mode(0),
        SetFileInfo::Mode(FILE_WRITE_THROUGH | FILE_SEQUENTIAL_ONLY),
        SetFileInfo::Mode(FILE_SYNCHRONOUS_IO_NONALERT),
        SetFileInfo::Allocation(4096),
        SetFileInfo::EndOfFile(37),
        SetFileInfo::EndOfFile(i64::MAX as u64),
        SetFileInfo::ValidDataLength(7),
        SetFileInfo::FullEa(vec![
            ("EAONE".into(), b"VALUE1".to_vec(), 0),
            ("SECONDEA".into(), b"ValueTwo".to_vec(), FILE_NEED_EA),
            ("gone".into(), Vec::new(), 0),
        ]),
        SetFileInfo::FullEa(vec![("X".into(), vec![0; 300], 0)]),
    ]
}

#[test]
fn round_trips() {
    for v in samples() {
        let (class, bytes) = wire(&v);
        assert_eq!(decode_set_file_info(class, &bytes), Ok(v.clone()), "{v:?}");
        // Longer buffers are fine: only the structure is read.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0x55; 9]);
        assert_eq!(
            decode_set_file_info(class, &longer),
            Ok(v.clone()),
            "{v:?} + slack"
        );
    }
}

#[test]
fn short_buffers_are_info_length_mismatch() {
    let fixed = [
        (FILE_BASIC_INFORMATION, 40),
        (FILE_RENAME_INFORMATION, 24),
        (FILE_LINK_INFORMATION, 24),
        (FILE_DISPOSITION_INFORMATION, 1),
        (FILE_DISPOSITION_INFORMATION_EX, 4),
        (FILE_POSITION_INFORMATION, 8),
        (FILE_MODE_INFORMATION, 4),
        (FILE_ALLOCATION_INFORMATION, 8),
        (FILE_END_OF_FILE_INFORMATION, 8),
        (FILE_VALID_DATA_LENGTH_INFORMATION, 8),
        (FILE_FULL_EA_INFORMATION, 8),
    ];
    for (class, size) in fixed {
        for len in 0..size {
            assert_eq!(
                decode_set_file_info(class, &vec![0; len]),
                Err(FsccError::InfoLengthMismatch),
                "class {class} len {len}"
            );
        }
    }
    assert_eq!(FsccError::InfoLengthMismatch.ntstatus(), 0xC000_0004);
}

fn rename_bytes(name_len: u32, name: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    b.extend_from_slice(&name_len.to_le_bytes());
    b.extend_from_slice(name);
    while b.len() < 24 {
        b.push(0);
    }
    b
}

#[test]
fn bad_rename_names_are_invalid_parameter() {
    let cases: [(&str, Vec<u8>); 6] = [
        ("empty name", rename_bytes(0, &[])),
        ("odd length", rename_bytes(3, &[b'a', 0, b'b', 0])),
        (
            "longer than the buffer",
            rename_bytes(6, &[b'a', 0, b'b', 0]),
        ),
        ("huge length", rename_bytes(u32::MAX, &[b'a', 0, b'b', 0])),
        (
            "lone high surrogate",
            rename_bytes(4, &[0x3D, 0xD8, b'a', 0]),
        ),
        ("lone low surrogate", rename_bytes(2, &[0x00, 0xDE])),
    ];
    for class in [FILE_RENAME_INFORMATION, FILE_LINK_INFORMATION] {
        for (what, bytes) in &cases {
            assert_eq!(
                decode_set_file_info(class, bytes),
                Err(FsccError::InvalidParameter),
                "class {class}: {what}"
            );
        }
    }
    // The name may use all of the padding.
    let ok = rename_bytes(4, &[b'a', 0, b'b', 0]);
    assert_eq!(ok.len(), 24);
    assert!(matches!(
        decode_set_file_info(FILE_RENAME_INFORMATION, &ok),
        Ok(SetFileInfo::Rename { ref file_name, .. }) if file_name == "ab"
    ));
    assert_eq!(FsccError::InvalidParameter.ntstatus(), 0xC000_000D);
}

#[test]
fn basic_times_below_minus_two_are_rejected() {
    for field in 0..4 {
        let mut b = vec![0u8; 40];
        b[field * 8..field * 8 + 8].copy_from_slice(&(-3i64).to_le_bytes());
        assert_eq!(
            decode_set_file_info(FILE_BASIC_INFORMATION, &b),
            Err(FsccError::InvalidParameter),
            "field {field}"
        );
        b[field * 8..field * 8 + 8].copy_from_slice(&i64::MIN.to_le_bytes());
        assert_eq!(
            decode_set_file_info(FILE_BASIC_INFORMATION, &b),
            Err(FsccError::InvalidParameter)
        );
    }
}

#[test]
fn negative_sizes_and_positions_are_rejected() {
    for class in [
        FILE_POSITION_INFORMATION,
        FILE_ALLOCATION_INFORMATION,
        FILE_END_OF_FILE_INFORMATION,
        FILE_VALID_DATA_LENGTH_INFORMATION,
    ] {
        for v in [-1i64, i64::MIN] {
            assert_eq!(
                decode_set_file_info(class, &v.to_le_bytes()),
                Err(FsccError::InvalidParameter),
                "class {class} value {v}"
            );
        }
    }
}

#[test]
fn mode_flags_follow_ms_fsa() {
    // smbtorture smb2.setinfo: mode 1 is INVALID_PARAMETER, 2 and 0 are fine.
    let mode = |m: u32| decode_set_file_info(FILE_MODE_INFORMATION, &m.to_le_bytes());
    assert_eq!(mode(1), Err(FsccError::InvalidParameter));
    assert_eq!(mode(2), Ok(SetFileInfo::Mode(2)));
    assert_eq!(mode(0), Ok(SetFileInfo::Mode(0)));
    assert_eq!(
        mode(FILE_NO_INTERMEDIATE_BUFFERING),
        Err(FsccError::InvalidParameter)
    );
    assert_eq!(mode(FILE_DELETE_ON_CLOSE), Err(FsccError::InvalidParameter));
    assert_eq!(
        mode(FILE_SYNCHRONOUS_IO_ALERT | FILE_SYNCHRONOUS_IO_NONALERT),
        Err(FsccError::InvalidParameter)
    );
}

#[test]
fn disposition_ex_undefined_flags_are_not_supported() {
    let ex = |f: u32| decode_set_file_info(FILE_DISPOSITION_INFORMATION_EX, &f.to_le_bytes());
    assert_eq!(ex(0x1F), Ok(SetFileInfo::DispositionEx { flags: 0x1F }));
    assert_eq!(ex(0x20), Err(FsccError::NotSupported));
    assert_eq!(ex(0x8000_0001), Err(FsccError::NotSupported));
    // Any non-zero byte is TRUE for FileDispositionInformation.
    assert_eq!(
        decode_set_file_info(FILE_DISPOSITION_INFORMATION, &[0x80]),
        Ok(SetFileInfo::Disposition {
            delete_pending: true
        })
    );
}

fn ea_entry(next: u32, flags: u8, name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut b = next.to_le_bytes().to_vec();
    b.push(flags);
    b.push(name.len() as u8);
    b.extend_from_slice(&(value.len() as u16).to_le_bytes());
    b.extend_from_slice(name);
    b.push(0);
    b.extend_from_slice(value);
    b
}

#[test]
fn ea_list_wire_layout() {
    let eas: Vec<FullEa> = vec![
        ("AB".into(), b"xyz".to_vec(), 0),
        ("C".into(), Vec::new(), 0x80),
    ];
    let mut b = Vec::new();
    assert_eq!(encode_full_ea_list(&eas, 1024, &mut b), Ok(2));
    // First entry: 8 + 2 + 1 + 3 = 14, padded to 16.
    let mut expect = ea_entry(16, 0, b"AB", b"xyz");
    expect.extend_from_slice(&[0, 0]);
    expect.extend_from_slice(&ea_entry(0, 0x80, b"C", b""));
    assert_eq!(b, expect, "4-byte aligned, no padding after the last");
}

#[test]
fn ea_list_encoding_respects_max_output() {
    let eas: Vec<FullEa> = vec![
        ("AB".into(), b"xyz".to_vec(), 0),
        ("C".into(), Vec::new(), 0),
    ];
    // 14 bytes + 2 padding, then 10: exactly 26.
    let mut b = Vec::new();
    assert_eq!(encode_full_ea_list(&eas, 26, &mut b), Ok(2));
    assert_eq!(b.len(), 26);
    let mut b = Vec::new();
    assert_eq!(
        encode_full_ea_list(&eas, 25, &mut b),
        Ok(1),
        "BUFFER_OVERFLOW"
    );
    assert_eq!(b.len(), 14, "the last entry returned has no padding");
    assert_eq!(&b[0..4], &[0, 0, 0, 0], "and NextEntryOffset 0");
    let mut b = vec![1];
    assert_eq!(
        encode_full_ea_list(&eas, 13, &mut b),
        Err(FsccError::BufferTooSmall)
    );
    assert_eq!(b, [1]);
    assert_eq!(encode_full_ea_list(&[], 0, &mut b), Ok(0), "NO_EAS_ON_FILE");
    let bad: Vec<FullEa> = vec![("A:B".into(), Vec::new(), 0)];
    assert_eq!(
        encode_full_ea_list(&bad, 100, &mut b),
        Err(FsccError::InvalidEaName)
    );
    assert_eq!(b, [1]);
}

#[test]
fn malformed_ea_lists_are_inconsistent() {
    let class = FILE_FULL_EA_INFORMATION;
    let good = ea_entry(0, 0, b"NAME", b"value");
    assert!(decode_set_file_info(class, &good).is_ok());

    let mut no_terminator = good.clone();
    no_terminator[8 + 4] = b'x';
    let truncated = good[..good.len() - 1].to_vec();
    let mut unaligned_next = ea_entry(18, 0, b"NAME", b"value");
    unaligned_next.extend_from_slice(&ea_entry(0, 0, b"B", b""));
    let mut next_inside_entry = ea_entry(4, 0, b"NAME", b"value");
    next_inside_entry.extend_from_slice(&[0; 16]);
    let mut next_past_end = ea_entry(20, 0, b"NAME", b"value");
    next_past_end.extend_from_slice(&[0; 3]);
    let huge_next = ea_entry(0xFFFF_FFFC, 0, b"NAME", b"value");
    let value_overrun = {
        let mut b = good.clone();
        b[6] = 0xFF;
        b
    };
    for (what, b) in [
        ("no terminator", no_terminator),
        ("truncated", truncated),
        ("unaligned next", unaligned_next),
        ("next inside entry", next_inside_entry),
        ("next past end", next_past_end),
        ("huge next", huge_next),
        ("value overrun", value_overrun),
    ] {
        assert_eq!(
            decode_set_file_info(class, &b),
            Err(FsccError::EaListInconsistent),
            "{what}"
        );
    }
    assert_eq!(FsccError::EaListInconsistent.ntstatus(), 0x8000_0014);
}

#[test]
fn bad_ea_names_and_flags() {
    let class = FILE_FULL_EA_INFORMATION;
    for name in [
        &b""[..],
        b"A:B",
        b"A*",
        b"A\x01",
        b"A B\x7F",
        b"\xC3\xA9",
        b"x=y",
        b"[x]",
    ] {
        assert_eq!(
            decode_set_file_info(class, &ea_entry(0, 0, name, b"v")),
            Err(FsccError::InvalidEaName),
            "{name:?}"
        );
    }
    assert_eq!(
        decode_set_file_info(class, &ea_entry(0, 0x01, b"OK", b"v")),
        Err(FsccError::InvalidEaName)
    );
    // Spaces and most punctuation are allowed.
    assert!(decode_set_file_info(class, &ea_entry(0, 0, b"user.my attr-1", b"v")).is_ok());
    assert_eq!(FsccError::InvalidEaName.ntstatus(), 0x8000_0013);
}

#[test]
fn classes_not_settable() {
    for class in [
        FILE_PIPE_INFORMATION,
        FILE_QUOTA_INFORMATION,
        FILE_SHORT_NAME_INFORMATION,
        FILE_RENAME_INFORMATION_EX,
    ] {
        assert_eq!(
            decode_set_file_info(class, &[0; 64]),
            Err(FsccError::NotSupported),
            "class {class}"
        );
    }
    for class in [
        0u8, 1, 5, 6, 7, 8, 9, 12, 18, 21, 22, 34, 35, 48, 59, 200, 255,
    ] {
        assert_eq!(
            decode_set_file_info(class, &[0; 64]),
            Err(FsccError::InvalidInfoClass),
            "class {class}"
        );
    }
}

fn get_ea_entry(next: u32, name: &[u8]) -> Vec<u8> {
    let mut b = next.to_le_bytes().to_vec();
    b.push(name.len() as u8);
    b.extend_from_slice(name);
    b.push(0);
    b
}

#[test]
fn get_ea_lists_decode_in_order() {
    use duet_fscc::decode_get_ea_list;
    assert_eq!(decode_get_ea_list(&[]), Ok(vec![]));
    let mut two = get_ea_entry(12, b"EAONE"); // 5 + 5 + 1 = 11 -> 12
    two.push(0);
    two.extend(get_ea_entry(0, b"SecondEA"));
    assert_eq!(
        decode_get_ea_list(&two),
        Ok(vec!["EAONE".to_string(), "SecondEA".to_string()])
    );
    // Structure: a missing terminator, an overrun, a misaligned or short
    // NextEntryOffset.
    let inconsistent = Err(FsccError::EaListInconsistent);
    let mut no_nul = get_ea_entry(0, b"AB");
    no_nul[7] = b'C';
    assert_eq!(decode_get_ea_list(&no_nul), inconsistent);
    assert_eq!(
        decode_get_ea_list(&get_ea_entry(0, b"ABC")[..7]),
        inconsistent
    );
    assert_eq!(decode_get_ea_list(&[1, 2, 3]), inconsistent);
    let mut odd = two.clone();
    odd[0] = 10;
    assert_eq!(decode_get_ea_list(&odd), inconsistent);
    let mut short = two.clone();
    short[0] = 8;
    assert_eq!(decode_get_ea_list(&short), inconsistent);
    let mut past = two.clone();
    past[0] = 64;
    assert_eq!(decode_get_ea_list(&past), inconsistent);
    // Then names.
    assert_eq!(
        decode_get_ea_list(&get_ea_entry(0, b"a:b")),
        Err(FsccError::InvalidEaName)
    );
    assert_eq!(
        decode_get_ea_list(&get_ea_entry(0, b"")),
        Err(FsccError::InvalidEaName)
    );
}
