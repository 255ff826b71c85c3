//! MS-FSA 2.1.4.4 name matching, including the DOS wildcards '<' (DOS_STAR),
//! '>' (DOS_QM) and '"' (DOS_DOT) that Windows clients send after the Win32
//! translation ("*.txt" -> "<.txt", "foo.*" -> "foo\"*", "?" -> ">").

use duet_fscc::name_matches;

#[track_caller]
fn check(table: &[(&str, &str, bool)]) {
    for &(pattern, name, expected) in table {
        assert_eq!(
            name_matches(pattern, name),
            expected,
            "name_matches({pattern:?}, {name:?})"
        );
    }
}

#[test]
fn special_cases_of_part_1() {
    check(&[
        ("", "", true),
        ("", "a", false),
        ("a", "", false),
        ("*", "", false),
        ("*", "a", true),
        ("*", ".", true),
        ("*", "..", true),
        ("*", "any name at all.tar.gz", true),
        ("*.*", "noext", true),
        ("*.*", "a.b", true),
        ("*.*", ".", true),
    ]);
}

#[test]
fn literals_are_case_insensitive() {
    check(&[
        ("abc", "abc", true),
        ("abc", "ABC", true),
        ("ABC", "abc", true),
        ("abc", "abd", false),
        ("abc", "abcd", false),
        ("abc", "ab", false),
        ("[a]", "[A]", true),
        ("\u{00C4}B*", "\u{00E4}bc", true),
        ("STRA\u{00DF}E", "stra\u{00DF}e", true),
        // Simple case folding only: no 'ß' -> "SS" expansion.
        ("stra\u{00DF}e", "STRASSE", false),
        ("\u{0416}\u{0416}", "\u{0436}\u{0436}", true),
    ]);
}

#[test]
fn star_and_question_mark() {
    check(&[
        ("*.txt", "a.txt", true),
        ("*.txt", "A.TXT", true),
        ("*.TXT", "readme.txt", true),
        ("*.txt", ".txt", true),
        ("*.txt", "a.b.txt", true),
        ("*.txt", "a.txt.bak", false),
        ("*.txt", "atxt", false),
        ("*.txt", "txt", false),
        ("*.", "abc", false),
        ("*.", "abc.", true),
        ("a?c", "abc", true),
        ("a?c", "aXc", true),
        ("a?c", "a.c", true),
        ("a?c", "ac", false),
        ("a?c", "abbc", false),
        ("??", "ab", true),
        ("??", "a", false),
        ("??", "abc", false),
        ("?", ".", true),
        ("a*c", "ac", true),
        ("a*c", "abbbc", true),
        ("a*c", "abcd", false),
        ("*a*b*", "xaxbx", true),
        ("*a*b*", "ab", true),
        ("*a*b*", "xbxa", false),
        ("a**b", "ab", true),
        ("*?", "a", true),
        ("*?", "", false),
        ("*??", "a", false),
    ]);
}

#[test]
fn dos_star() {
    check(&[
        // "*.txt" as Win32 sends it.
        ("<.txt", "a.txt", true),
        ("<.txt", "a.b.txt", true),
        ("<.txt", ".txt", true),
        ("<.txt", "txt", false),
        ("<.txt", "a.txt.x", false),
        // '<' stops at the final '.', which it may also consume.
        ("<txt", "a.txt", true),
        ("<", "abc", true),
        ("<", "a.b", false),
        ("<.<", "a.b.c", true),
        ("<.<", "abc", false),
        ("<b", "a.b", true),
        ("<.b", "a.b", true),
        ("<c", "a.b.c", true),
        ("<b.c", "a.b.c", true),
        ("<x", "a.b.c", false),
    ]);
}

#[test]
fn dos_qm() {
    check(&[
        ("a>c", "abc", true),
        ("a>c", "ac", false),
        ("ab>", "ab", true),
        ("ab>", "abc", true),
        ("ab>", "abcd", false),
        // "????????.???" as Win32 sends it.
        (">>>>>>>>\">>>", "readme.txt", true),
        (">>>>>>>>\">>>", "abc", true),
        (">>>>>>>>\">>>", "a.b", true),
        (">>>>>>>>\">>>", "toolongname.txt", false),
        (">>>>>>>>\">>>", "readme.text", false),
        // At a '.', '>' matches nothing and the expression moves on.
        ("a>.b", "a.b", true),
        ("a>>.b", "ax.b", true),
        ("a>.b", "axx.b", false),
        // Reaching the end through '>' at a '.' takes that '.' along, as in
        // FsRtlIsNameInExpression.
        ("a>", "a.", true),
    ]);
}

#[test]
fn dos_dot() {
    check(&[
        ("foo\"", "foo", true),
        ("foo\"", "foo.", true),
        ("foo\"", "foox", false),
        ("foo\"", "foo.txt", false),
        // "foo.*" as Win32 sends it: also matches "foo".
        ("foo\"*", "foo", true),
        ("foo\"*", "foo.txt", true),
        ("foo\"*", "foo.", true),
        ("foo\"*", "foobar", false),
        ("\"", ".", true),
        ("a\"b", "a.b", true),
        ("a\"b", "ab", false),
    ]);
}
