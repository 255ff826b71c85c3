//! Property tests: decoders never panic on arbitrary bytes, the matcher
//! never panics and agrees with a plain glob where the DOS wildcards are
//! absent, and encoders stay within their limits.

use duet_fscc::consts::*;
use duet_fscc::{
    decode_set_file_info, encode_full_ea_list, name_matches, DirEntryWriter, FileBasics, FullEa,
    SetFileInfo, Sid,
};
use proptest::prelude::*;

const SET_CLASSES: [u8; 11] = [
    FILE_BASIC_INFORMATION,
    FILE_RENAME_INFORMATION,
    FILE_LINK_INFORMATION,
    FILE_DISPOSITION_INFORMATION,
    FILE_DISPOSITION_INFORMATION_EX,
    FILE_POSITION_INFORMATION,
    FILE_MODE_INFORMATION,
    FILE_ALLOCATION_INFORMATION,
    FILE_END_OF_FILE_INFORMATION,
    FILE_VALID_DATA_LENGTH_INFORMATION,
    FILE_FULL_EA_INFORMATION,
];

/// Plain '*' / '?' glob, case-insensitive for ASCII, by backtracking.
fn glob(p: &[char], n: &[char]) -> bool {
    match (p.first(), n.first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some('*'), _) => glob(&p[1..], n) || (!n.is_empty() && glob(p, &n[1..])),
        (Some(_), None) => false,
        (Some('?'), Some(_)) => glob(&p[1..], &n[1..]),
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b) && glob(&p[1..], &n[1..]),
    }
}

fn ea_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 ._#@$-]{1,20}"
}

proptest! {
    #[test]
    fn set_info_decoding_never_panics(class in any::<u8>(), input in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_set_file_info(class, &input);
    }

    #[test]
    fn set_info_decoding_never_panics_on_known_classes(
        idx in 0..SET_CLASSES.len(),
        input in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let _ = decode_set_file_info(SET_CLASSES[idx], &input);
    }

    #[test]
    fn ea_list_looks_fine_with_header_fuzz(
        next in any::<u32>(), flags in any::<u8>(), name_len in any::<u8>(), value_len in any::<u16>(),
        tail in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut b = next.to_le_bytes().to_vec();
        b.push(flags);
        b.push(name_len);
        b.extend_from_slice(&value_len.to_le_bytes());
        b.extend_from_slice(&tail);
        let _ = decode_set_file_info(FILE_FULL_EA_INFORMATION, &b);
    }

    #[test]
    fn ea_lists_round_trip(
        eas in proptest::collection::vec(
            (ea_name(), proptest::collection::vec(any::<u8>(), 0..40), prop_oneof![Just(0u8), Just(FILE_NEED_EA)]),
            1..6,
        ),
    ) {
        let eas: Vec<FullEa> = eas;
        let mut b = Vec::new();
        prop_assert_eq!(encode_full_ea_list(&eas, usize::MAX, &mut b), Ok(eas.len()));
        prop_assert_eq!(decode_set_file_info(FILE_FULL_EA_INFORMATION, &b), Ok(SetFileInfo::FullEa(eas)));
    }

    #[test]
    fn name_matches_never_panics(pattern in "\\PC{0,24}", name in "\\PC{0,24}") {
        let _ = name_matches(&pattern, &name);
    }

    #[test]
    fn name_matches_never_panics_on_wildcards(pattern in "[*?<>\".aß]{0,16}", name in "[.aAß]{0,16}") {
        let _ = name_matches(&pattern, &name);
    }

    #[test]
    fn name_matches_is_a_glob_without_dos_wildcards(pattern in "[*?.aAb]{1,8}", name in "[.aAbB]{1,10}") {
        prop_assume!(pattern != "*.*");
        let p: Vec<char> = pattern.chars().collect();
        let n: Vec<char> = name.chars().collect();
        prop_assert_eq!(name_matches(&pattern, &name), glob(&p, &n), "{:?} {:?}", pattern, name);
    }

    #[test]
    fn dir_entries_stay_within_max_output(
        class_idx in 0usize..6,
        max_output in 0usize..2000,
        names in proptest::collection::vec("\\PC{0,30}", 0..40),
    ) {
        let class = [1u8, 2, 3, 12, 37, 38][class_idx];
        let fixed = DirEntryWriter::fixed_size(class).unwrap();
        let mut w = DirEntryWriter::new(class, max_output).unwrap();
        let mut pushed = 0;
        for name in &names {
            if w.push(0, name, &FileBasics::default()) {
                pushed += 1;
            }
        }
        prop_assert_eq!(w.len(), pushed);
        let buf = w.finish();
        prop_assert!(buf.len() <= max_output);
        // Walk the chain.
        let mut off = 0;
        let mut seen = 0;
        while !buf.is_empty() {
            seen += 1;
            prop_assert_eq!(off % 8, 0);
            let next = u32::from_le_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
            if next == 0 {
                prop_assert!(buf.len() - off >= fixed);
                break;
            }
            off += next;
            prop_assert!(off < buf.len());
        }
        prop_assert_eq!(seen, pushed);
    }

    #[test]
    fn sids_round_trip(auth in 0u64..(1 << 48), subs in proptest::collection::vec(any::<u32>(), 1..=15)) {
        let sid = Sid::new(auth, &subs).unwrap();
        let s = sid.to_string();
        prop_assert_eq!(s.parse::<Sid>(), Ok(sid.clone()));
        let b = sid.to_bytes();
        prop_assert_eq!(Sid::from_bytes(&b), Ok((sid, b.len())));
    }

    #[test]
    fn sid_parsing_never_panics(s in "\\PC{0,40}", b in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = s.parse::<Sid>();
        let _ = Sid::from_bytes(&b);
    }
}
