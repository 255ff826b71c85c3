//! Test harness: a real `duetd` process on a free loopback port with a fresh state
//! directory, a share and a user, stopped (SIGKILL) when dropped.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "Correct-Horse-7";

pub struct Node {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub share: PathBuf,
    child: Child,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn board_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../board-configs/lab.toml")
}

impl Node {
    pub fn start() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("share");
        std::fs::create_dir(&share).unwrap();
        let state = dir.path().join("state");
        {
            let store = duet_state::Store::open(&state).unwrap();
            store.add_user(USER, PASSWORD).unwrap();
            store
                .add_share(&duet_state::ShareConfig {
                    name: "share".into(),
                    path: share.clone(),
                    comment: "test share".into(),
                    read_only: false,
                })
                .unwrap();
        }
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("duetd.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_duetd"))
            .args(["run", "--board"])
            .arg(board_file())
            .arg("--state")
            .arg(&state)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "duetd=debug,info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start duetd");
        let node = Node {
            dir,
            port,
            share,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "duetd did not listen; log:\n{}",
                node.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("duetd.log")).unwrap_or_default()
    }

    /// Runs smbclient against the share; returns its output.
    pub fn smbclient(&self, extra: &[&str], commands: &str) -> Output {
        smbclient_cmd(
            self.port,
            &format!("{USER}%{PASSWORD}"),
            "//127.0.0.1/share",
            extra,
            Some(commands),
        )
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().map(|s| s.is_none()).unwrap_or(false)
    }
}

pub fn smbclient_cmd(
    port: u16,
    creds: &str,
    service: &str,
    extra: &[&str],
    commands: Option<&str>,
) -> Output {
    let mut c = Command::new("smbclient");
    c.arg(service)
        .args(["-p", &port.to_string(), "-U", creds])
        .arg("--option=client signing=required")
        .args(extra);
    if let Some(cmds) = commands {
        c.args(["-c", cmds]);
    }
    c.stdin(Stdio::null()).output().expect(
        "smbclient must be installed (apt-get install smbclient); README's test command does it",
    )
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
