//! The storage-role drivers: `drbd` with stand-in commands (/bin/true,
//! /bin/false, echo, sleep) for the success, failure, status and timeout
//! paths; `shared-dir` with two drivers on one directory, and with another
//! process holding the lock and dying. No root needed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use duet_hal::storage_role::{
    self, Drbd, DrbdConfig, Role, RoleError, SharedDir, StorageRole, StorageRoleConfig,
};

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

fn drbd(promote: &[&str], demote: &[&str], status: &[&str]) -> Drbd {
    Drbd::new(DrbdConfig {
        promote: argv(promote),
        demote: argv(demote),
        status: argv(status),
        timeout: Duration::from_secs(5),
    })
}

#[test]
fn drbd_commands_succeed_and_fail() {
    let mut ok = drbd(
        &["/bin/true"],
        &["/bin/true"],
        &["echo", "Primary/Secondary"],
    );
    ok.promote().expect("true promotes");
    ok.demote().expect("true demotes");
    assert_eq!(ok.status().unwrap(), Role::Primary);

    let mut bad = drbd(
        &["/bin/false"],
        &["sh", "-c", "echo 'r0: State change failed' >&2; exit 11"],
        &["echo", "Secondary"],
    );
    match bad.promote() {
        Err(RoleError::Failed { status, .. }) => assert_eq!(status.code(), Some(1)),
        other => panic!("false must fail the promote: {other:?}"),
    }
    match bad.demote() {
        Err(RoleError::Failed {
            status,
            stderr,
            command,
        }) => {
            assert_eq!(status.code(), Some(11));
            assert_eq!(stderr, "r0: State change failed");
            assert!(command.starts_with("sh -c"), "{command}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(bad.status().unwrap(), Role::Secondary);

    let mut odd = drbd(&["/bin/true"], &["/bin/true"], &["echo", "Unconfigured"]);
    assert!(matches!(odd.status(), Err(RoleError::Status(s)) if s == "Unconfigured"));
    let mut failing_status = drbd(&["/bin/true"], &["/bin/true"], &["/bin/false"]);
    assert!(matches!(
        failing_status.status(),
        Err(RoleError::Failed { .. })
    ));
}

#[test]
fn drbd_commands_that_cannot_run_or_hang() {
    let mut missing = drbd(
        &["/nonexistent/drbdadm", "primary", "r0"],
        &[],
        &["/bin/true"],
    );
    assert!(matches!(missing.promote(), Err(RoleError::Spawn { .. })));
    assert!(matches!(missing.demote(), Err(RoleError::Config(_))));

    // A hung command is killed at the limit, with what it started.
    let mut hung = Drbd::new(DrbdConfig {
        promote: argv(&["sh", "-c", "sleep 30 & sleep 30"]),
        demote: argv(&["/bin/true"]),
        status: argv(&["/bin/true"]),
        timeout: Duration::from_millis(300),
    });
    let t = Instant::now();
    assert!(matches!(hung.promote(), Err(RoleError::Timeout { .. })));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn shared_dir_has_one_primary() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = SharedDir::new(dir.path());
    let mut b = storage_role::open(&StorageRoleConfig::SharedDir(dir.path().to_owned()));
    assert_eq!(a.status().unwrap(), Role::Secondary);

    a.promote().expect("a promotes");
    a.promote().expect("promote is idempotent");
    assert_eq!(a.status().unwrap(), Role::Primary);
    assert!(matches!(b.promote(), Err(RoleError::HeldElsewhere)));
    assert_eq!(b.status().unwrap(), Role::Secondary);

    a.demote().expect("a demotes");
    a.demote().expect("demote is idempotent");
    assert_eq!(a.status().unwrap(), Role::Secondary);
    b.promote().expect("b promotes after a demoted");
    assert!(matches!(a.promote(), Err(RoleError::HeldElsewhere)));

    // The holder going away (drop, as a dying process) frees the storage.
    drop(b);
    a.promote().expect("a promotes after b is gone");
}

#[test]
fn shared_dir_lock_is_freed_when_the_holder_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut me = SharedDir::new(dir.path());
    let marker = me.marker().to_owned();
    // The other node: one process holding the lock (util-linux flock(1)
    // locks fd 9, which the shell keeps when it becomes `sleep`).
    let script = format!(
        "exec 9>'{}' && flock -x 9 && exec sleep 30",
        marker.display()
    );
    let mut other = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .expect("sh");
    let held = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        matches!(me.promote(), Err(RoleError::HeldElsewhere))
    });
    assert!(held, "the other process never held the lock");
    other.kill().expect("kill -9 the holder");
    other.wait().unwrap();
    me.promote().expect("promote after the holder died");
    assert_eq!(me.status().unwrap(), Role::Primary);
}
