//! Windows metadata through the real `duetd` and smbclient: extended attributes, 8.3
//! names and a change time that reads back as set.

mod common;
use common::*;

fn ok(node: &Node, o: &std::process::Output) -> String {
    let t = text(o);
    assert!(
        o.status.success() && !t.contains("NT_STATUS_"),
        "smbclient failed:\n{t}\n--- duetd log ---\n{}",
        node.log()
    );
    t
}

#[test]
fn extended_attributes_round_trip() {
    let node = Node::start();
    std::fs::write(node.share.join("f.txt"), b"x").unwrap();
    let t = ok(
        &node,
        &node.smbclient(
            &[],
            "setea f.txt Foo bar; setea f.txt second value2; geteas f.txt",
        ),
    );
    // Stored and listed upper case, in name order, values intact.
    let foo = t.find("FOO (0) =").expect(&t);
    let second = t.find("SECOND (0) =").expect(&t);
    assert!(foo < second, "{t}");
    assert!(
        t.contains("62 61 72") && t.contains("76 61 6C 75 65 32"),
        "{t}"
    );
    // Kept as xattrs on the file.
    let names: Vec<String> = xattr_names(&node.share.join("f.txt"));
    assert!(names.contains(&"user.duet.ea.FOO".to_string()), "{names:?}");
    // Names are case-insensitive: "foo" replaces FOO; no value deletes it.
    let t = ok(
        &node,
        &node.smbclient(&[], "setea f.txt foo new; geteas f.txt"),
    );
    assert!(t.contains("6E 65 77") && !t.contains("62 61 72"), "{t}");
    let t = ok(&node, &node.smbclient(&[], "setea f.txt FOO; geteas f.txt"));
    assert!(!t.contains("FOO") && t.contains("SECOND"), "{t}");
}

#[test]
fn alternate_names_and_change_time() {
    let node = Node::start();
    std::fs::write(node.share.join("torture_search.txt"), b"abc").unwrap();
    std::fs::write(node.share.join("short.txt"), b"abc").unwrap();
    let t = ok(
        &node,
        &node.smbclient(
            &[],
            "utimes torture_search.txt 21:01:02-03:04:05 22:01:02-03:04:05 23:01:02-03:04:05 24:01:02-03:04:05; \
             allinfo torture_search.txt; allinfo short.txt",
        ),
    );
    let short = duet_fscc::short_name("torture_search.txt").unwrap();
    assert!(t.contains(&format!("altname: {short}")), "{t}");
    assert!(
        t.contains("altname: short.txt"),
        "an 8.3 name is its own short name:\n{t}"
    );
    // All four times read back as set, the change time included.
    for want in [
        "create_time:    Sat Jan  2 03:04:05 2021 UTC",
        "access_time:    Sun Jan  2 03:04:05 2022 UTC",
        "write_time:     Mon Jan  2 03:04:05 2023 UTC",
        "change_time:    Tue Jan  2 03:04:05 2024 UTC",
    ] {
        assert!(t.contains(want), "{want}:\n{t}");
    }
    // A data write moves mtime: the change time is the real one again.
    let src = node.dir.path().join("new.txt");
    std::fs::write(&src, b"more data").unwrap();
    let t = ok(
        &node,
        &node.smbclient(
            &[],
            &format!(
                "put {} torture_search.txt; allinfo torture_search.txt",
                src.display()
            ),
        ),
    );
    assert!(
        !t.contains("change_time:    Tue Jan  2 03:04:05 2024 UTC"),
        "{t}"
    );
}

fn xattr_names(p: &std::path::Path) -> Vec<String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: a valid path string and a writable buffer of the length passed.
    let n = unsafe { libc::listxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 0, "listxattr");
    buf.truncate(n as usize);
    buf.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}
