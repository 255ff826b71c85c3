//! A duet pair as a server under test (`--servers duetd-pair`, root only): two `duetd` in
//! the namespace lab of tools/lab/lab.sh (prefix `bench`), joined with `duetctl pair
//! init/join`, mirroring every durable-handle change to the partner before answering. The
//! share directory is the one the other servers serve (both nodes see it, as the lab's
//! shared storage). The bench's client reaches the VIP from the lab's client namespace:
//! [`connect_in`] opens its socket there.
//!
//! Owns: the lab it builds and the two daemons. Must never: touch a lab it did not make
//! (its own prefix), or leave the namespaces behind (`stop`, also on drop).

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::servers::{repo_root, Programs, PASSWORD, SHARE, USER};
use crate::Error;

/// The lab's namespace prefix (its own, beside a person's `duet` lab).
pub const PREFIX: &str = "bench";
/// The service address the pair serves.
pub const VIP: [u8; 4] = [192, 0, 2, 100];

/// The running pair.
pub struct Pair {
    children: Vec<Child>,
    /// The namespace the client connects from.
    pub netns: String,
    pub addr: SocketAddr,
    pub version: String,
    /// A string in both daemons' command lines (their work directory).
    pub marker: String,
    pub first_pid: i32,
}

fn lab(verb: &str) -> Result<(), Error> {
    let out = Command::new(repo_root().join("tools/lab/lab.sh"))
        .arg(verb)
        .env("DUET_LAB_PREFIX", PREFIX)
        .stdout(Stdio::null())
        .output()
        .map_err(|e| Error::other(format!("tools/lab/lab.sh {verb}: {e}")))?;
    if !out.status.success() {
        return Err(Error::other(format!(
            "tools/lab/lab.sh {verb} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

fn duetctl(
    p: &Programs,
    state: &Path,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, Error> {
    crate::servers::run_checked(
        Command::new(&p.duetctl)
            .arg("--state")
            .arg(state)
            .args(args),
        input,
        &format!("duetctl {}", args.join(" ")),
    )
}

fn board(node: &str, me: &str, partner: &str) -> String {
    format!(
        "[board]\nname = \"bench-{node}\"\n[smb]\nlisten = [\"0.0.0.0:445\"]\nsigning_required = true\n\
         [network]\ndata_nic = \"eth0\"\nheartbeat_nic = \"eth1\"\n[cluster]\nnode = \"{node}\"\n\
         data_addr = \"{me}\"\npartner_data_addr = \"{partner}\"\nvip = \"192.0.2.100/24\"\n\
         tiebreaker = \"192.0.2.1\"\n"
    )
}

/// Builds the lab and starts the pair serving `share` (already filled), waiting until it
/// mirrors synchronously.
pub fn start(dir: &Path, share: &Path, p: &Programs) -> Result<Pair, Error> {
    if !crate::servers::is_root() {
        return Err(Error::other(
            "duetd-pair needs root (network namespaces, VIP, raw sockets)",
        ));
    }
    lab("up")?;
    let mut pair = Pair {
        children: Vec::new(),
        netns: format!("{PREFIX}-client"),
        addr: SocketAddr::from((VIP, 445)),
        version: String::new(),
        marker: dir.display().to_string(),
        first_pid: 0,
    };
    let state = |n: &str| dir.join(format!("state-{n}"));
    fs::create_dir_all(dir)?;
    duetctl(p, &state("a"), &["pair", "init"], None).and_then(|out| {
        let line = out
            .lines()
            .find_map(|l| l.find("duet-pair-1").map(|i| l[i..].to_string()))
            .ok_or_else(|| Error::other("duetctl pair init printed no join line"))?;
        duetctl(
            p,
            &state("a"),
            &["user", "add", USER],
            Some(&format!("{PASSWORD}\n")),
        )?;
        let share_s = share.display().to_string();
        duetctl(p, &state("a"), &["share", "add", SHARE, &share_s], None)?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut args = vec!["pair", "join"];
        args.extend(words);
        duetctl(p, &state("b"), &args, None).map(drop)
    })?;
    for (node, me, partner) in [
        ("a", "192.0.2.11", "192.0.2.12"),
        ("b", "192.0.2.12", "192.0.2.11"),
    ] {
        let board_path = dir.join(format!("{node}.toml"));
        fs::write(&board_path, board(node, me, partner))?;
        let log = fs::File::create(dir.join(format!("duetd-{node}.log")))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &format!("{PREFIX}-{node}")])
            .arg(&p.duetd)
            .arg("run")
            .arg("--board")
            .arg(&board_path)
            .arg("--state")
            .arg(state(node))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| Error::other(format!("cannot start {}: {e}", p.duetd.display())))?;
        if pair.first_pid == 0 {
            pair.first_pid = child.id() as i32;
        }
        pair.children.push(child);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = duetctl(p, &state("a"), &["cluster", "status"], None).unwrap_or_default();
        let b = duetctl(p, &state("b"), &["cluster", "status"], None).unwrap_or_default();
        let synchronous = |lead: &str, follow: &str| {
            lead.contains("serving: true")
                && lead.contains("mirror: Synchronous")
                && follow.contains("in_sync: true")
        };
        if synchronous(&a, &b) || synchronous(&b, &a) {
            break;
        }
        for c in &mut pair.children {
            if let Ok(Some(st)) = c.try_wait() {
                return Err(Error::other(format!(
                    "a duetd of the pair exited during startup ({st}); logs in {}",
                    dir.display()
                )));
            }
        }
        if Instant::now() > deadline {
            return Err(Error::other(format!(
                "the pair did not mirror synchronously within 30 s; logs in {}",
                dir.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Both ends answer on the service address only once the VIP is up and announced.
    let deadline = Instant::now() + Duration::from_secs(10);
    while connect_in(&pair.netns, pair.addr, Duration::from_millis(500)).is_err() {
        if Instant::now() > deadline {
            return Err(Error::other("the pair's VIP does not answer"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    pair.version = format!(
        "{} x2, mirrored over the lab's veth cable",
        crate::servers::duetd_version(&p.duetd)
    );
    Ok(pair)
}

impl Pair {
    /// Stops both daemons and removes the lab.
    pub fn stop(&mut self) {
        for c in &mut self.children {
            // SAFETY: kill(2) on a child we spawned and have not reaped.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for c in &mut self.children {
            while Instant::now() < deadline && !matches!(c.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !matches!(c.try_wait(), Ok(Some(_))) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        self.children.clear();
        let _ = lab("down");
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        if !self.children.is_empty() {
            self.stop();
        }
    }
}

/// A TCP connection to `addr` made from network namespace `netns` (a socket belongs to the
/// namespace it was created in): a short-lived thread enters the namespace, connects, and
/// hands the socket back; no other thread changes namespace.
pub fn connect_in(netns: &str, addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let path = PathBuf::from(format!("/run/netns/{netns}"));
    std::thread::scope(|s| {
        s.spawn(|| {
            let f = fs::File::open(&path)?;
            // SAFETY: setns(2) on an open namespace file, for this thread only.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            TcpStream::connect_timeout(&addr, timeout)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("connect thread panicked")))
    })
}
