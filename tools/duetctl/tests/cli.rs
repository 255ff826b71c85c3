//! Runs the real `duetctl` binary against temporary state directories, offline and through a
//! live admin socket.

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use duet_state::admin::{self, SOCKET_FILE};
use duet_state::{nt_hash, Store, STATE_FILE};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn duetctl_env(dir: Option<&Path>, env_state: Option<&Path>, args: &[&str], stdin: &str) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_duetctl"));
    if let Some(dir) = dir {
        cmd.arg("--state").arg(dir);
    }
    cmd.args(args).env_remove("DUET_STATE");
    if let Some(env_state) = env_state {
        cmd.env("DUET_STATE", env_state);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn duetctl");
    // The child may exit without reading (usage errors): ignore a broken pipe.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn duetctl(dir: &Path, args: &[&str], stdin: &str) -> Out {
    duetctl_env(Some(dir), None, args, stdin)
}

#[track_caller]
fn ok(dir: &Path, args: &[&str], stdin: &str) -> String {
    let out = duetctl(dir, args, stdin);
    assert_eq!(out.code, 0, "duetctl {args:?} failed: {}", out.stderr);
    assert!(out.stderr.is_empty(), "stderr: {}", out.stderr);
    out.stdout
}

#[track_caller]
fn fails(dir: &Path, args: &[&str], stdin: &str, code: i32, needle: &str) -> String {
    let out = duetctl(dir, args, stdin);
    assert_eq!(out.code, code, "duetctl {args:?}: {}", out.stderr);
    assert!(
        out.stderr.contains(needle),
        "stderr of {args:?} lacks {needle:?}: {}",
        out.stderr
    );
    assert!(out.stderr.starts_with("duetctl: "), "{}", out.stderr);
    out.stderr
}

/// The full command set; works the same offline and through the socket.
fn exercise(dir: &Path) {
    ok(dir, &["user", "add", "Alice"], "s3cret\n");
    ok(dir, &["user", "add", "bob"], "pw\r\n");
    let err = fails(dir, &["user", "add", "ALICE"], "x\n", 1, "already exists");
    assert_eq!(err.lines().count(), 1, "{err}");
    fails(dir, &["user", "add", "a@b"], "x\n", 1, "invalid user name");
    fails(dir, &["user", "add", "carol"], "", 1, "no password");
    fails(dir, &["user", "add", "carol"], "\n", 1, "invalid password");

    let users = ok(dir, &["user", "list"], "");
    let lines: Vec<&str> = users.lines().collect();
    assert_eq!(lines.len(), 3, "{users}");
    assert!(lines[0].starts_with("NAME   CREATED"), "{users}");
    assert!(lines[1].starts_with("Alice  20"), "{users}");
    assert!(lines[2].starts_with("bob    20"), "{users}");
    assert!(lines[1].ends_with(" UTC"), "{users}");

    ok(dir, &["user", "passwd", "ALICE"], "n3w\n");
    fails(
        dir,
        &["user", "passwd", "nobody"],
        "x\n",
        1,
        "does not exist",
    );

    ok(
        dir,
        &[
            "share",
            "add",
            "Docs",
            "/srv/docs",
            "--comment",
            "Team documents",
            "--read-only",
        ],
        "",
    );
    ok(dir, &["share", "add", "media", "/srv/media"], "");
    fails(
        dir,
        &["share", "add", "x", "rel/path"],
        "",
        1,
        "must be absolute",
    );
    fails(dir, &["share", "add", "IPC$", "/srv/x"], "", 1, "reserved");
    fails(
        dir,
        &["share", "add", "docs", "/srv/x"],
        "",
        1,
        "already exists",
    );
    let shares = ok(dir, &["share", "list"], "");
    assert_eq!(
        shares,
        "NAME   PATH        ACCESS  COMMENT\n\
         Docs   /srv/docs   ro      Team documents\n\
         media  /srv/media  rw\n"
    );

    ok(dir, &["set", "server.name", "NAS one"], "");
    assert_eq!(ok(dir, &["get", "server.name"], ""), "NAS one\n");
    fails(dir, &["get", "nope"], "", 1, "not set");
    fails(dir, &["set", "bad key", "v"], "", 1, "invalid setting key");

    ok(dir, &["share", "del", "DOCS"], "");
    ok(dir, &["user", "del", "BOB"], "");
    fails(dir, &["user", "del", "bob"], "", 1, "does not exist");
    assert_eq!(ok(dir, &["share", "list"], "").lines().count(), 2);
    assert_eq!(ok(dir, &["user", "list"], "").lines().count(), 2);
}

#[test]
fn offline_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    exercise(&dir);
    // What duetctl wrote is what the daemon will read.
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.user_nt_hash("alice").unwrap(), Some(nt_hash("n3w")));
    assert_eq!(store.user_nt_hash("bob").unwrap(), None);
    assert_eq!(
        store.share("MEDIA").unwrap().unwrap().path,
        Path::new("/srv/media")
    );
    assert_eq!(
        store.setting("server.name").unwrap().as_deref(),
        Some("NAS one")
    );
}

#[test]
fn through_live_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The test plays duetd: it holds the store open, so an offline open would fail with
    // "locked" -- every command below must go through the socket.
    let store = Arc::new(Store::open(dir).unwrap());
    admin::serve(Arc::clone(&store), &dir.join(SOCKET_FILE)).unwrap();
    exercise(dir);
    assert_eq!(store.user_nt_hash("ALICE").unwrap(), Some(nt_hash("n3w")));
    // bob's password had a CRLF line end, stripped.
    let first_bob = store
        .changes_since(0, 100)
        .unwrap()
        .into_iter()
        .find_map(|c| match c.kind {
            duet_state::ChangeKind::UserPut { name, nt_hash, .. } if name == "bob" => Some(nt_hash),
            _ => None,
        })
        .unwrap();
    assert_eq!(first_bob.0, nt_hash("pw"));
    assert_eq!(
        store.setting("server.name").unwrap().as_deref(),
        Some("NAS one")
    );
}

#[test]
fn locked_without_socket_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let _daemon = Store::open(tmp.path()).unwrap();
    let err = fails(tmp.path(), &["user", "list"], "", 1, "locked");
    assert!(err.contains(STATE_FILE), "{err}");
    assert!(err.contains(SOCKET_FILE), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // A stale socket file (nobody listening) changes nothing.
    drop(UnixListener::bind(tmp.path().join(SOCKET_FILE)).unwrap());
    fails(tmp.path(), &["user", "list"], "", 1, "locked");
}

#[test]
fn stale_socket_falls_back_to_offline() {
    let tmp = tempfile::tempdir().unwrap();
    drop(UnixListener::bind(tmp.path().join(SOCKET_FILE)).unwrap());
    ok(tmp.path(), &["set", "k", "v"], "");
    assert_eq!(ok(tmp.path(), &["get", "k"], ""), "v\n");
}

#[test]
fn read_commands_do_not_create_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("typo");
    fails(&dir, &["user", "list"], "", 1, "no state database");
    fails(&dir, &["get", "k"], "", 1, "no state database");
    assert!(!dir.exists());
}

#[test]
fn corrupted_state_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(STATE_FILE);
    std::fs::write(&file, b"garbage garbage garbage").unwrap();
    let err = fails(tmp.path(), &["user", "list"], "", 1, "corrupted");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"garbage garbage garbage");
}

#[test]
fn state_dir_from_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let out = duetctl_env(None, Some(tmp.path()), &["set", "k", "from-env"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(ok(tmp.path(), &["get", "k"], ""), "from-env\n");
    // --state wins over the environment.
    let other = tempfile::tempdir().unwrap();
    let out = duetctl_env(
        Some(other.path()),
        Some(tmp.path()),
        &["set", "k", "flag"],
        "",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(ok(tmp.path(), &["get", "k"], ""), "from-env\n");
    assert_eq!(ok(other.path(), &["get", "k"], ""), "flag\n");
}

#[test]
fn help_and_usage() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [&["help"][..], &["--help"][..], &["-h"][..]] {
        let help = ok(tmp.path(), args, "");
        assert!(help.contains("Usage: duetctl"), "{help}");
        assert!(
            help.contains("printf 'pw\\n' | duetctl --state"),
            "help lacks the non-interactive form: {help}"
        );
    }
    fails(tmp.path(), &[], "", 2, "missing command");
    fails(tmp.path(), &["frobnicate"], "", 2, "unknown command");
    fails(tmp.path(), &["user", "add"], "", 2, "expected");
    fails(
        tmp.path(),
        &["share", "add", "x", "/p", "--bogus"],
        "",
        2,
        "unknown option",
    );
    // Usage errors touch nothing.
    assert!(!tmp.path().join(STATE_FILE).exists());
}
