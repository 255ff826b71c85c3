//! 8.3 short names: which names are 8.3 already, and the generated form.

use duet_fscc::{is_8_3, short_name};
use proptest::prelude::*;

#[test]
fn names_that_are_already_8_3() {
    for n in [
        "A",
        "README",
        "readme.txt",
        "BUFSIZE.TXT",
        "a.b",
        "12345678.123",
        "x~1.$$$",
        "{a}.(b)",
    ] {
        assert!(is_8_3(n), "{n}");
        assert_eq!(short_name(n), None, "{n}: no separate short name");
    }
    for n in [
        "",
        ".",
        "..",
        "123456789",
        "a.1234",
        "a.b.c",
        ".profile",
        "a.",
        "has space.txt",
        "plus+.txt",
        "caf\u{e9}.txt",
        "semi;.a",
        "br[a].c",
    ] {
        assert!(!is_8_3(n), "{n}");
    }
    assert_eq!(short_name("."), None);
    assert_eq!(short_name(".."), None);
    assert_eq!(short_name(""), None);
}

#[test]
fn generated_names_have_the_documented_shape() {
    let s = short_name("torture_search.txt").unwrap();
    assert_eq!(s.len(), 12);
    assert!(s.starts_with("TOR~") && s.ends_with(".TXT"), "{s}");
    assert!(s[4..8]
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
    // Stable, and case-insensitive like the names clients see.
    assert_eq!(short_name("torture_search.txt"), Some(s.clone()));
    assert_eq!(short_name("TORTURE_SEARCH.TXT"), Some(s.clone()));
    // Another long name with the same start differs.
    assert_ne!(short_name("torture_search2.txt"), Some(s));
    // The extension follows the last dot; spaces and inner dots go; bad
    // characters become '_'; a leading dot is not an extension.
    let t = short_name("my archive.tar.gz").unwrap();
    assert!(t.starts_with("MYA~") && t.ends_with(".GZ"), "{t}");
    let p = short_name(".profile").unwrap();
    assert!(p.starts_with("PRO~") && !p.contains('.'), "{p}");
    let b = short_name("a+b=c.jpeg").unwrap();
    assert!(b.starts_with("A_B~") && b.ends_with(".JPE"), "{b}");
    let u = short_name("\u{fc}ber.txt").unwrap();
    assert!(u.starts_with("_BE~"), "{u}");
    let d = short_name("...").unwrap();
    assert!(d.starts_with("_~"), "{d}");
}

proptest! {
    #[test]
    fn every_short_name_is_an_upper_case_8_3_name(name in "\\PC{1,40}") {
        if let Some(s) = short_name(&name) {
            prop_assert!(is_8_3(&s), "{:?} -> {:?}", name, s);
            prop_assert_eq!(s.to_ascii_uppercase(), s.clone());
            prop_assert!(s.contains('~'));
            prop_assert_eq!(short_name(&name), Some(s));
        } else {
            prop_assert!(is_8_3(&name) || name == "." || name == "..");
        }
    }
}
