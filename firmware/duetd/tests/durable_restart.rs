//! Acceptance test of durable handles through a daemon crash: runs `durable_restart.py`
//! (an independent client, Python smbprotocol from PyPI, installed by the script into a
//! venv under the cargo target directory) against the real `duetd`, which the script kills
//! with SIGKILL and starts again on the same state directory. See the script for what is
//! checked.

use std::path::Path;
use std::process::Command;

#[test]
fn durable_handles_survive_kill_9_of_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let state = dir.path().join("state");
    let (user, password) = ("alice", "Durable-Pass-9");
    {
        let store = duet_state::Store::open(&state).unwrap();
        store.add_user(user, password).unwrap();
        store
            .add_share(&duet_state::ShareConfig {
                name: "share".into(),
                path: share.clone(),
                comment: String::new(),
                read_only: false,
            })
            .unwrap();
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("durable-venv");
    let out = Command::new("python3")
        .arg(manifest.join("tests/durable_restart.py"))
        .arg("--duetd")
        .arg(env!("CARGO_BIN_EXE_duetd"))
        .arg("--board")
        .arg(manifest.join("../../board-configs/lab.toml"))
        .arg("--state")
        .arg(&state)
        .args(["--user", user, "--password", password])
        .arg("--venv")
        .arg(&venv)
        .output()
        .expect("run python3");
    let log = std::fs::read_to_string(dir.path().join("duetd-acceptance.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "durable_restart.py failed\n--- stdout\n{}\n--- stderr\n{}\n--- duetd log (tail)\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log.lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("{}", String::from_utf8_lossy(&out.stdout));
}
