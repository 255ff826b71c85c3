//! Starting and stopping the servers under test on loopback, each on its own port with
//! its own state and share directory, the same share contents and the same user.
//!
//! Owns: duetd (state made with duetctl), Samba's smbd (our own smb.conf, set up like
//! ../shared/reference/start-smbd.sh: Samba's selftest share with acl_xattr and
//! xattr_tdb), and the smb-server crate through tools/bench/smb-server-shim.
//! Must never: signal a process it did not start (smbd's helpers are found by the path of
//! our own smb.conf on their command line), or touch a system smbd.

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::procstat::ProcSet;
use crate::Error;

/// The one user every server knows.
pub const USER: &str = "duetbench";
pub const PASSWORD: &str = "Bench-Pass-1";
pub const SHARE: &str = "share";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Duetd,
    Smbd,
    SmbServer,
    /// Two duetd mirroring to each other in the namespace lab (`crate::pair`).
    DuetdPair,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Duetd => "duetd",
            Kind::Smbd => "smbd",
            Kind::SmbServer => "smb-server",
            Kind::DuetdPair => "duetd-pair",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "duetd" => Some(Kind::Duetd),
            "smbd" | "samba" => Some(Kind::Smbd),
            "smb-server" | "smb_server" => Some(Kind::SmbServer),
            "duetd-pair" | "pair" => Some(Kind::DuetdPair),
            _ => None,
        }
    }
}

/// Where the programs are.
#[derive(Debug, Clone)]
pub struct Programs {
    pub duetd: PathBuf,
    pub duetctl: PathBuf,
    pub shim: PathBuf,
    pub board: PathBuf,
}

pub struct Server {
    pub kind: Kind,
    pub addr: SocketAddr,
    pub procs: ProcSet,
    pub version: String,
    child: Option<Child>,
    /// The pair's lab and daemons (`Kind::DuetdPair`).
    pub pair: Option<crate::pair::Pair>,
}

pub fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_listening(
    child: &mut Child,
    addr: SocketAddr,
    log: &Path,
    what: &str,
) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(Error::other(format!(
                "{what} exited during startup ({st}); log {}:\n{}",
                log.display(),
                tail(log)
            )));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::other(format!(
                "{what} did not listen on {addr} within 30 s; log:\n{}",
                tail(log)
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tail(p: &Path) -> String {
    let s = fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

pub fn run_checked(cmd: &mut Command, stdin: Option<&str>, what: &str) -> Result<String, Error> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::other(format!("{what}: cannot run {:?}: {e}", cmd.get_program())))?;
    if let (Some(input), Some(mut si)) = (stdin, child.stdin.take()) {
        si.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(Error::other(format!(
            "{what} failed ({}): {text}",
            out.status
        )));
    }
    Ok(text)
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Server {
    /// Starts `kind` serving `dir/share` (already filled by the caller).
    pub fn start(kind: Kind, dir: &Path, progs: &Programs) -> Result<Server, Error> {
        let share = dir.join("share");
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        match kind {
            Kind::Duetd => Self::start_duetd(dir, share, addr, progs),
            Kind::Smbd => Self::start_smbd(dir, share, addr),
            Kind::SmbServer => Self::start_shim(dir, share, addr, progs),
            Kind::DuetdPair => {
                let pair = crate::pair::start(&dir.join("pair"), &share, progs)?;
                crate::sc::route_via_netns(pair.addr, &pair.netns);
                Ok(Server {
                    kind: Kind::DuetdPair,
                    addr: pair.addr,
                    procs: ProcSet {
                        root: pair.first_pid,
                        marker: Some(pair.marker.clone()),
                    },
                    version: pair.version.clone(),
                    child: None,
                    pair: Some(pair),
                })
            }
        }
    }

    fn start_duetd(
        dir: &Path,
        share: PathBuf,
        addr: SocketAddr,
        p: &Programs,
    ) -> Result<Server, Error> {
        let state = dir.join("state");
        fs::create_dir_all(&state)?;
        run_checked(
            Command::new(&p.duetctl)
                .arg("--state")
                .arg(&state)
                .args(["user", "add", USER]),
            Some(&format!("{PASSWORD}\n")),
            "duetctl user add",
        )?;
        run_checked(
            Command::new(&p.duetctl)
                .arg("--state")
                .arg(&state)
                .args(["share", "add", SHARE])
                .arg(&share),
            None,
            "duetctl share add",
        )?;
        let log_path = dir.join("duetd.log");
        let mut child = Command::new(&p.duetd)
            .args(["run", "--board"])
            .arg(&p.board)
            .arg("--state")
            .arg(&state)
            .args(["--listen", &addr.to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log_path)?)
            .spawn()
            .map_err(|e| Error::other(format!("cannot start {}: {e}", p.duetd.display())))?;
        wait_listening(&mut child, addr, &log_path, "duetd")?;
        Ok(Server {
            kind: Kind::Duetd,
            addr,
            procs: ProcSet {
                root: child.id() as i32,
                marker: None,
            },
            version: duetd_version(&p.duetd),
            child: Some(child),
            pair: None,
        })
    }

    fn start_shim(
        dir: &Path,
        share: PathBuf,
        addr: SocketAddr,
        p: &Programs,
    ) -> Result<Server, Error> {
        let log_path = dir.join("smb-server.log");
        let mut child = Command::new(&p.shim)
            .args(["--listen", &addr.to_string(), "--root"])
            .arg(&share)
            .args(["--user", USER, "--password", PASSWORD, "--share", SHARE])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log_path)?)
            .spawn()
            .map_err(|e| Error::other(format!("cannot start {}: {e}", p.shim.display())))?;
        wait_listening(&mut child, addr, &log_path, "smb-server-shim")?;
        Ok(Server {
            kind: Kind::SmbServer,
            addr,
            procs: ProcSet {
                root: child.id() as i32,
                marker: None,
            },
            version: format!(
                "smb-server {} (crates.io, via smb-server-shim)",
                shim_crate_version(&p.shim)
            ),
            child: Some(child),
            pair: None,
        })
    }

    fn start_smbd(dir: &Path, share: PathBuf, addr: SocketAddr) -> Result<Server, Error> {
        if !is_root() {
            return Err(Error::other(
                "smbd needs root (it switches to the share user)",
            ));
        }
        let smbd = which("smbd").ok_or_else(|| {
            Error::other("smbd not found; install: apt-get install samba samba-vfs-modules")
        })?;
        let conf = dir.join("smb.conf");
        let st = dir.join("state");
        for d in [
            "private", "binddns", "lock", "state", "cache", "pid", "ncalrpc",
        ] {
            fs::create_dir_all(st.join(d))?;
        }
        // The share user: a local Unix account (no login, no home), as start-smbd.sh.
        if run_checked(Command::new("id").arg(USER), None, "id").is_err() {
            run_checked(
                Command::new("useradd").args(["-M", "-s", "/usr/sbin/nologin", USER]),
                None,
                "useradd",
            )?;
        }
        run_checked(
            Command::new("chown").args(["-R", USER]).arg(&share),
            None,
            "chown share",
        )?;
        let perms = |p: &Path, mode| {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(p, fs::Permissions::from_mode(mode))
        };
        perms(dir, 0o755)?;
        perms(&share, 0o775)?;
        let d = dir.display();
        let port = addr.port();
        let text = format!(
            "# Written by duet-bench: reference smbd, set up like shared/reference/start-smbd.sh
# (Samba's selftest share with vfs objects cut to acl_xattr xattr_tdb). Loopback only.
[global]
\tnetbios name = BENCHSMBD
\tworkgroup = WORKGROUP
\tserver role = standalone server
\tinterfaces = 127.0.0.1
\tbind interfaces only = yes
\tsmb ports = {port}
\tdisable netbios = yes
\tserver min protocol = SMB2_02
\tmap to guest = never
\tpassdb backend = tdbsam
\tprivate dir = {d}/state/private
\tbinddns dir = {d}/state/binddns
\tlock directory = {d}/state/lock
\tstate directory = {d}/state/state
\tcache directory = {d}/state/cache
\tpid directory = {d}/state/pid
\tncalrpc dir = {d}/state/ncalrpc
\tlog file = {d}/log.smbd
\tmax log size = 0
\tlog level = 1
\tdebug pid = yes
\tload printers = no
\tprinting = bsd
\tprintcap name = /dev/null
\tdisable spoolss = yes
\tsmbd:FSCTL_SMBTORTURE = yes
\tsmb2 leases = yes
\tkernel change notify = no

[{SHARE}]
\tpath = {share}
\tread only = no
\tguest ok = no
\tvfs objects = acl_xattr xattr_tdb
\txattr_tdb:file = {d}/state/xattr.tdb
\tstore dos attributes = yes
\tcreate mask = 755
\tdos filemode = yes
\tstrict rename = yes
\tmap hidden = no
\tmap system = no
\tmap readonly = no
\tdurable handles = yes
\tkernel oplocks = no
\tkernel share modes = no
\tposix locking = no
",
            share = share.display()
        );
        fs::write(&conf, text)?;
        let smbpasswd = which("smbpasswd").unwrap_or_else(|| PathBuf::from("smbpasswd"));
        run_checked(
            Command::new(smbpasswd)
                .arg("-c")
                .arg(&conf)
                .args(["-s", "-a", USER]),
            Some(&format!("{PASSWORD}\n{PASSWORD}\n")),
            "smbpasswd",
        )?;
        let log_path = dir.join("smbd.out");
        // Its own process group: on SIGTERM smbd signals its whole group.
        let mut child = Command::new(&smbd)
            .args(["--foreground", "--no-process-group", "-s"])
            .arg(&conf)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log_path)?)
            .spawn()
            .map_err(|e| Error::other(format!("cannot start smbd: {e}")))?;
        if let Err(e) = wait_listening(&mut child, addr, &log_path, "smbd") {
            return Err(Error::other(format!(
                "{e}\nlog.smbd:\n{}",
                tail(&dir.join("log.smbd"))
            )));
        }
        let version = Command::new(&smbd)
            .arg("-V")
            .output()
            .map(|o| format!("smbd {}", String::from_utf8_lossy(&o.stdout).trim()))
            .unwrap_or_else(|_| "smbd (version unknown)".into());
        Ok(Server {
            kind: Kind::Smbd,
            addr,
            procs: ProcSet {
                root: child.id() as i32,
                marker: Some(conf.to_string_lossy().into_owned()),
            },
            version,
            child: Some(child),
            pair: None,
        })
    }

    /// Stops the server: SIGTERM to the process we started, then SIGKILL to whatever of
    /// its set is left after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.pair.take() {
            p.stop();
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        let left = self.procs.pids();
        // SAFETY: kill(2) on a PID we spawned and have not reaped yet.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            let _ = child.wait();
        }
        // smbd's connection processes and helpers, found at start of stop(), if still here.
        std::thread::sleep(Duration::from_millis(200));
        let still = self.procs.pids();
        for p in left.into_iter().chain(still) {
            if p != self.procs.root && std::path::Path::new(&format!("/proc/{p}")).exists() {
                // SAFETY: kill(2) of a process of this server's set (descendant of the
                // server we started, or carrying our own smb.conf path).
                unsafe {
                    libc::kill(p, libc::SIGKILL);
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// duetd has no --version: the workspace version, the git revision and the build profile.
pub fn duetd_version(bin: &Path) -> String {
    let profile = if bin.components().any(|c| c.as_os_str() == "debug") {
        "debug build"
    } else {
        "release build"
    };
    format!(
        "duetd {} ({}, {profile})",
        env!("CARGO_PKG_VERSION"),
        git_revision()
    )
}

pub fn repo_root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    p.canonicalize().unwrap_or(p)
}

/// `git rev-parse` (read-only) of the workspace, with "-dirty" if the tree has changes.
pub fn git_revision() -> String {
    let root = repo_root();
    let rev = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(rev) = rev else {
        return "git revision unknown".into();
    };
    let dirty = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    format!("git {rev}{}", if dirty { "-dirty" } else { "" })
}

/// The smb-server version the shim was built with, from the shim's Cargo.lock.
fn shim_crate_version(shim: &Path) -> String {
    let lock = shim
        .ancestors()
        .map(|a| a.join("Cargo.lock"))
        .find(|p| p.is_file())
        .or_else(|| Some(repo_root().join("tools/bench/smb-server-shim/Cargo.lock")));
    let text = lock
        .and_then(|l| fs::read_to_string(l).ok())
        .unwrap_or_default();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "name = \"smb-server\"" {
            if let Some(v) = lines
                .next()
                .and_then(|v| v.trim().strip_prefix("version = "))
            {
                return v.trim_matches('"').to_string();
            }
        }
    }
    "0.8 (exact version unknown)".into()
}

/// Builds the shim (its own workspace, release) if it is not there yet.
pub fn ensure_shim(shim: &Path) -> Result<(), Error> {
    if shim.is_file() {
        return Ok(());
    }
    let manifest = repo_root().join("tools/bench/smb-server-shim/Cargo.toml");
    if !manifest.is_file() || !shim.starts_with(repo_root().join("tools/bench/smb-server-shim")) {
        return Err(Error::other(format!(
            "smb-server shim not found at {}",
            shim.display()
        )));
    }
    eprintln!("duet-bench: building the smb-server shim (once; a few minutes) ...");
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .status()?;
    if !st.success() || !shim.is_file() {
        return Err(Error::other(format!(
            "building {} failed",
            manifest.display()
        )));
    }
    Ok(())
}
