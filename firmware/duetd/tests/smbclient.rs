//! The real `duetd` binary driven by the real smbclient: what a user does with a share.

mod common;
use common::*;

fn assert_ok(node: &Node, o: &std::process::Output) {
    assert!(
        o.status.success() && !text(o).contains("NT_STATUS_"),
        "smbclient failed:\n{}\n--- duetd log ---\n{}",
        text(o),
        node.log()
    );
}

#[test]
fn put_get_ls_with_signing_required_on_every_dialect() {
    let node = Node::start();
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let src = node.dir.path().join("src.bin");
    std::fs::write(&src, &payload).unwrap();
    for proto in ["SMB2_02", "SMB2_10", "SMB3_00", "SMB3_02", "SMB3_11"] {
        let name = format!("file-{proto}.bin");
        let back = node.dir.path().join(format!("back-{proto}.bin"));
        let o = node.smbclient(
            &[
                &format!("--option=client max protocol={proto}"),
                &format!("--option=client min protocol={proto}"),
            ],
            &format!(
                "put {} {name}; get {name} {}; ls",
                src.display(),
                back.display()
            ),
        );
        assert_ok(&node, &o);
        assert_eq!(
            std::fs::read(node.share.join(&name)).unwrap(),
            payload,
            "{proto}: data on disk"
        );
        assert_eq!(
            std::fs::read(&back).unwrap(),
            payload,
            "{proto}: data read back"
        );
        assert!(
            text(&o).contains(&name),
            "{proto}: ls lists the file:\n{}",
            text(&o)
        );
    }
}

#[test]
fn mkdir_rename_del_rmdir() {
    let node = Node::start();
    let src = node.dir.path().join("a.txt");
    std::fs::write(&src, b"hello duet\n").unwrap();
    let o = node.smbclient(
        &[],
        &format!(
            "mkdir docs; cd docs; put {} a.txt; rename a.txt b.txt; ls",
            src.display()
        ),
    );
    assert_ok(&node, &o);
    assert!(node.share.join("docs/b.txt").is_file());
    assert!(!node.share.join("docs/a.txt").exists());
    assert_eq!(
        std::fs::read(node.share.join("docs/b.txt")).unwrap(),
        b"hello duet\n"
    );

    let o = node.smbclient(&[], "cd docs; del b.txt; cd ..; rmdir docs; ls");
    assert_ok(&node, &o);
    assert!(
        !node.share.join("docs").exists(),
        "rmdir removed the directory"
    );

    // rmdir of a non-empty directory is refused and keeps it.
    std::fs::create_dir(node.share.join("full")).unwrap();
    std::fs::write(node.share.join("full/x"), b"x").unwrap();
    let o = node.smbclient(&[], "rmdir full");
    assert!(
        text(&o).contains("NT_STATUS_DIRECTORY_NOT_EMPTY"),
        "{}",
        text(&o)
    );
    assert!(node.share.join("full/x").exists());
}

#[test]
fn share_listing() {
    let node = Node::start();
    let o = std::process::Command::new("smbclient")
        .args([
            "-L",
            "//127.0.0.1",
            "-p",
            &node.port.to_string(),
            "-U",
            &format!("{USER}%{PASSWORD}"),
        ])
        .arg("--option=client signing=required")
        .output()
        .unwrap();
    let out = text(&o);
    assert!(
        o.status.success(),
        "smbclient -L failed:\n{out}\n{}",
        node.log()
    );
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("share") && l.contains("Disk")),
        "{out}"
    );
    assert!(out.contains("IPC$"), "{out}");
}

#[test]
fn wrong_password_and_anonymous_are_refused() {
    let node = Node::start();
    let o = smbclient_cmd(
        node.port,
        &format!("{USER}%wrong-password"),
        "//127.0.0.1/share",
        &[],
        Some("ls"),
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("NT_STATUS_LOGON_FAILURE"), "{}", text(&o));
    let o = smbclient_cmd(node.port, "nobody%x", "//127.0.0.1/share", &[], Some("ls"));
    assert!(text(&o).contains("NT_STATUS_LOGON_FAILURE"), "{}", text(&o));
    let o = std::process::Command::new("smbclient")
        .args([
            "//127.0.0.1/share",
            "-p",
            &node.port.to_string(),
            "-N",
            "-c",
            "ls",
        ])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "anonymous logon must fail: {}",
        text(&o)
    );
    // The right password still works afterwards.
    let o = node.smbclient(&[], "ls");
    assert_ok(&node, &o);
}

#[test]
fn unknown_share_and_escape_attempts() {
    let node = Node::start();
    let o = smbclient_cmd(
        node.port,
        &format!("{USER}%{PASSWORD}"),
        "//127.0.0.1/nope",
        &[],
        Some("ls"),
    );
    assert!(
        text(&o).contains("NT_STATUS_BAD_NETWORK_NAME"),
        "{}",
        text(&o)
    );
    // A symlink inside the share that leads outside it is not followed.
    std::os::unix::fs::symlink("/etc", node.share.join("etc-link")).unwrap();
    let o = node.smbclient(&[], "get etc-link/hostname /dev/null");
    assert!(
        text(&o).contains("NT_STATUS_"),
        "escape must fail: {}",
        text(&o)
    );
    assert!(!text(&o).contains("getting file"), "{}", text(&o));
}

#[test]
fn change_notify_sees_changes_from_another_connection() {
    let node = Node::start();
    std::fs::create_dir(node.share.join("watch")).unwrap();
    let mut watcher = std::process::Command::new("stdbuf")
        .args([
            "-o0",
            "smbclient",
            "//127.0.0.1/share",
            "-p",
            &node.port.to_string(),
            "-U",
        ])
        .arg(format!("{USER}%{PASSWORD}"))
        .args(["--option=client signing=required", "-c", "notify watch"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the watch is registered (its CHANGE_NOTIFY went async).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !node.log().contains("CHANGE_NOTIFY pending") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let src = node.dir.path().join("n.txt");
    std::fs::write(&src, b"x").unwrap();
    let o = node.smbclient(
        &[],
        &format!("put {} watch\\new.txt; mkdir watch\\sub", src.display()),
    );
    assert_ok(&node, &o);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _ = watcher.kill();
    let out = watcher.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("0001 new.txt"),
        "FILE_ACTION_ADDED for the file: {out}"
    );
    assert!(
        out.contains("0001 sub"),
        "FILE_ACTION_ADDED for the directory: {out}"
    );
}

#[test]
fn large_file_multi_credit_io() {
    let node = Node::start();
    let payload: Vec<u8> = (0..24u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let src = node.dir.path().join("big.bin");
    std::fs::write(&src, &payload).unwrap();
    let back = node.dir.path().join("big.back");
    let o = node.smbclient(
        &[],
        &format!(
            "put {} big.bin; get big.bin {}",
            src.display(),
            back.display()
        ),
    );
    assert_ok(&node, &o);
    assert!(
        std::fs::read(node.share.join("big.bin")).unwrap() == payload,
        "data on disk"
    );
    assert!(std::fs::read(&back).unwrap() == payload, "data read back");
}

#[test]
fn repeated_failed_logons_are_throttled() {
    let node = Node::start();
    // The lab board allows 10 failures per minute per user and per address.
    for _ in 0..10 {
        let o = smbclient_cmd(
            node.port,
            &format!("{USER}%bad"),
            "//127.0.0.1/share",
            &[],
            Some("ls"),
        );
        assert!(text(&o).contains("NT_STATUS_LOGON_FAILURE"), "{}", text(&o));
    }
    let o = node.smbclient(&[], "ls");
    assert!(
        text(&o).contains("NT_STATUS_ACCOUNT_LOCKED_OUT"),
        "the 11th attempt is refused even with the right password: {}",
        text(&o)
    );
    assert!(
        node.log().contains("too many failed logons"),
        "{}",
        node.log()
    );
}
