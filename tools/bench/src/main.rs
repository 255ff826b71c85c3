//! duet-bench: duetd side by side with Samba's smbd and the smb-server crate (issue 5).
//!
//! One run starts every server under test on loopback with the same share contents and
//! user, runs identical workloads against each (smbclient, and our own pipelined SMB
//! 3.1.1 client), interleaving the servers run by run, and reports per workload the
//! median, min and max, the ratio to smbd, server CPU per unit of work and resident
//! memory, as JSON and Markdown under bench/results/. See tools/bench/README.md.

mod client;
mod error;
mod floor;
mod pair;
mod pc;
mod procstat;
mod report;
mod sc;
mod servers;

use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use error::Error;
use pc::SmallOp;
use report::{Cell, MemRow, Report, WorkloadResult};
use servers::{Kind, Programs, Server};

const USAGE: &str = "usage: duet-bench [options]
  --quick               tiny sizes, one run: checks that everything runs (for CI)
  --runs N              runs per workload and server (default 5; --quick: 1)
  --servers LIST        comma-separated: duetd,smbd,smb-server,duetd-pair (default: the
                        first three; duetd-pair, two mirroring nodes in a namespace lab, needs root)
  --only GROUPS         comma-separated workload groups: seq,small,dirs,list,durable,
                        clients,smbclient,memory (default: all), or single
                        workloads by id (seq-write-1m, seq-read-64k, sc-put, ...)
  --out DIR             where results go (default: <repo>/bench/results)
  --workdir DIR         scratch directory for shares and state (default: <repo>/bench/tmp/run-PID)
  --keep                keep the scratch directory
  --duetd PATH, --duetctl PATH, --shim PATH, --board FILE
                        programs to use (default: next to duet-bench; the shim from
                        tools/bench/smb-server-shim/target/release, built if missing)
Needs smbclient for the smbclient workloads and root for smbd.";

/// Workload sizes.
#[derive(Debug, Clone)]
struct Sizes {
    seq_bytes: u64,
    small_files: usize,
    dirs: usize,
    list_entries: usize,
    sc_small: usize,
    sc_dirs: usize,
    durable: usize,
    clients: usize,
    per_client: usize,
    handles: usize,
    connections: usize,
}

impl Sizes {
    fn full() -> Self {
        Sizes {
            seq_bytes: 1 << 30,
            small_files: 10_000,
            dirs: 2_000,
            list_entries: 10_000,
            sc_small: 2_000,
            sc_dirs: 2_000,
            durable: 10_000,
            clients: 32,
            per_client: 10_000 / 32,
            handles: 1_000,
            connections: 100,
        }
    }
    fn quick() -> Self {
        Sizes {
            seq_bytes: 4 << 20,
            small_files: 40,
            dirs: 20,
            list_entries: 100,
            sc_small: 10,
            sc_dirs: 10,
            durable: 20,
            clients: 4,
            per_client: 5,
            handles: 20,
            connections: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum W {
    SeqWrite1M,
    SeqRead1M,
    SeqWrite64K,
    SeqRead64K,
    Create,
    Stat,
    Delete,
    Mkdir,
    Rmdir,
    List,
    Durable,
    Clients,
    ScPut,
    ScGet,
    ScPutSmall,
    ScMkdir,
    ScRmdir,
    ScLs,
}

const ALL: [W; 18] = [
    W::SeqWrite1M,
    W::SeqRead1M,
    W::SeqWrite64K,
    W::SeqRead64K,
    W::Create,
    W::Stat,
    W::Delete,
    W::Mkdir,
    W::Rmdir,
    W::List,
    W::Durable,
    W::Clients,
    W::ScPut,
    W::ScGet,
    W::ScPutSmall,
    W::ScMkdir,
    W::ScRmdir,
    W::ScLs,
];

const DEPTH_1M: usize = 16;
const DEPTH_64K: usize = 32;
const DEPTH_SMALL: usize = 32;

impl W {
    fn id(self) -> &'static str {
        match self {
            W::SeqWrite1M => "seq-write-1m",
            W::SeqRead1M => "seq-read-1m",
            W::SeqWrite64K => "seq-write-64k",
            W::SeqRead64K => "seq-read-64k",
            W::Create => "create-4k",
            W::Stat => "stat",
            W::Delete => "delete",
            W::Mkdir => "mkdir",
            W::Rmdir => "rmdir",
            W::List => "list",
            W::Durable => "durable-4k",
            W::Clients => "clients",
            W::ScPut => "sc-put",
            W::ScGet => "sc-get",
            W::ScPutSmall => "sc-put-4k",
            W::ScMkdir => "sc-mkdir",
            W::ScRmdir => "sc-rmdir",
            W::ScLs => "sc-ls",
        }
    }
    fn group(self) -> &'static str {
        match self {
            W::SeqWrite1M | W::SeqRead1M | W::SeqWrite64K | W::SeqRead64K => "seq",
            W::Create | W::Stat | W::Delete => "small",
            W::Mkdir | W::Rmdir => "dirs",
            W::List => "list",
            W::Durable => "durable",
            W::Clients => "clients",
            _ => "smbclient",
        }
    }
    fn client(self) -> &'static str {
        if self.group() == "smbclient" {
            "smbclient"
        } else {
            "pipelined"
        }
    }
    fn is_bytes(self) -> bool {
        matches!(
            self,
            W::SeqWrite1M | W::SeqRead1M | W::SeqWrite64K | W::SeqRead64K | W::ScPut | W::ScGet
        )
    }
    fn title(self, s: &Sizes) -> String {
        let size = human_bytes(s.seq_bytes);
        match self {
            W::SeqWrite1M => format!("write {size}, 1 MiB I/O, QD {DEPTH_1M}"),
            W::SeqRead1M => format!("read {size}, 1 MiB I/O, QD {DEPTH_1M}"),
            W::SeqWrite64K => format!("write {size}, 64 KiB I/O, QD {DEPTH_64K}"),
            W::SeqRead64K => format!("read {size}, 64 KiB I/O, QD {DEPTH_64K}"),
            W::Create => format!(
                "{} x create+write 4 KiB+close, QD {DEPTH_SMALL}",
                s.small_files
            ),
            W::Stat => format!("{} x open+stat+close, QD {DEPTH_SMALL}", s.small_files),
            W::Delete => format!("{} x delete, QD {DEPTH_SMALL}", s.small_files),
            W::Mkdir => format!("{} x mkdir, QD {DEPTH_SMALL}", s.dirs),
            W::Rmdir => format!("{} x rmdir, QD {DEPTH_SMALL}", s.dirs),
            W::List => format!("list a directory of {} entries", s.list_entries),
            W::Durable => format!(
                "{} x DH2Q+lease create+write 4 KiB+close, QD {DEPTH_SMALL}",
                s.durable
            ),
            W::Clients => format!(
                "{} connections x {} files: create+stat+delete, QD 1 each",
                s.clients, s.per_client
            ),
            W::ScPut => format!("put {size}"),
            W::ScGet => format!("get {size} to /dev/null"),
            W::ScPutSmall => format!("{} x put 4 KiB (one smbclient)", s.sc_small),
            W::ScMkdir => format!("{} x mkdir (one smbclient)", s.sc_dirs),
            W::ScRmdir => format!("{} x rmdir (one smbclient)", s.sc_dirs),
            W::ScLs => format!("ls a directory of {} entries", s.list_entries),
        }
    }
}

fn human_bytes(b: u64) -> String {
    if b >= 1 << 30 && b.is_multiple_of(1 << 30) {
        format!("{} GiB", b >> 30)
    } else if b >= 1 << 20 {
        format!("{} MiB", b >> 20)
    } else {
        format!("{} KiB", b >> 10)
    }
}

struct Options {
    quick: bool,
    runs: usize,
    servers: Vec<Kind>,
    only: Option<Vec<String>>,
    out: PathBuf,
    workdir: PathBuf,
    keep: bool,
    programs: Programs,
}

fn parse_args() -> Result<Options, String> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let root = servers::repo_root();
    let mut o = Options {
        quick: false,
        runs: 0,
        servers: vec![Kind::Duetd, Kind::Smbd, Kind::SmbServer],
        only: None,
        out: root.join("bench/results"),
        workdir: root.join(format!("bench/tmp/run-{}", std::process::id())),
        keep: false,
        programs: Programs {
            duetd: exe_dir.join("duetd"),
            duetctl: exe_dir.join("duetctl"),
            shim: root.join("tools/bench/smb-server-shim/target/release/smb-server-shim"),
            board: root.join("board-configs/lab.toml"),
        },
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--runs" => {
                o.runs = val("--runs")?
                    .parse()
                    .map_err(|_| "--runs: expected a number")?
            }
            "--servers" => {
                o.servers = val("--servers")?
                    .split(',')
                    .map(|s| Kind::parse(s.trim()).ok_or_else(|| format!("unknown server {s}")))
                    .collect::<Result<_, _>>()?;
            }
            "--only" => {
                o.only = Some(
                    val("--only")?
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .collect(),
                )
            }
            "--out" => o.out = val("--out")?.into(),
            "--workdir" => o.workdir = val("--workdir")?.into(),
            "--keep" => o.keep = true,
            "--duetd" => o.programs.duetd = val("--duetd")?.into(),
            "--duetctl" => o.programs.duetctl = val("--duetctl")?.into(),
            "--shim" => o.programs.shim = val("--shim")?.into(),
            "--board" => o.programs.board = val("--board")?.into(),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.runs == 0 {
        o.runs = if o.quick { 1 } else { 5 };
    }
    if o.servers.is_empty() {
        return Err("--servers: none given".into());
    }
    if let Some(only) = &o.only {
        let groups = [
            "seq",
            "small",
            "dirs",
            "list",
            "durable",
            "clients",
            "smbclient",
            "memory",
        ];
        let known = |g: &str| groups.contains(&g) || ALL.iter().any(|w| w.id() == g);
        if let Some(bad) = only.iter().find(|g| !known(g)) {
            return Err(format!("--only: unknown group or workload {bad}"));
        }
    }
    Ok(o)
}

/// Set by SIGINT/SIGTERM: finish the current step, then stop the servers (smbd runs in
/// its own process group, so a terminal's Ctrl-C does not reach it) and write what was
/// measured.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn main() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("duet-bench: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    match run(&opts) {
        Ok(failed) => std::process::exit(if failed { 1 } else { 0 }),
        Err(e) => {
            eprintln!("duet-bench: {e}");
            std::process::exit(1);
        }
    }
}

/// Files every share starts with: the file the read workloads read and the directory
/// the listing workloads list.
fn fill_share(share: &Path, seq_src: &Path, list_entries: usize) -> Result<(), Error> {
    std::fs::create_dir_all(share)?;
    std::fs::copy(seq_src, share.join("seq.bin"))?;
    let list = share.join("list");
    std::fs::create_dir_all(&list)?;
    for i in 0..list_entries {
        std::fs::File::create(list.join(format!("e{i:05}")))?;
    }
    Ok(())
}

fn write_file(path: &Path, len: u64) -> Result<(), Error> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let block = pc::pattern(1 << 20);
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

/// Reads a file once so every server reads it from the page cache.
fn warm(path: &Path) {
    if let Ok(mut f) = std::fs::File::open(path) {
        let mut buf = vec![0u8; 1 << 20];
        while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// Writes `bytes` to a scratch file in `dir` and deletes it again, just before a run that
/// moves a file's worth of data. On a VM that hands freed guest pages back to its host
/// (virtio free page reporting, as on this bench machine: pages free for ~2 s go back),
/// filling the page cache with such pages costs a host fault per page, ~1-2 s of CPU per
/// GiB, billed to whoever writes. Without this, a server whose write run follows another's
/// (whose file deletion had just freed a GiB of hot page-cache pages) got them for free and
/// the server before it paid: the order, not the server, decided the figure. Page-cache
/// pages freed here are what the kernel hands out next (anonymous memory freed the same
/// way was measured not to help), so every server starts with the same hot memory.
fn warm_page_cache(dir: &Path, bytes: u64) {
    let path = dir.join("warm.tmp");
    if let Ok(f) = std::fs::File::create(&path) {
        let chunk = vec![1u8; 1 << 20];
        let mut done = 0u64;
        while done < bytes {
            if std::os::unix::fs::FileExt::write_all_at(&f, &chunk, done).is_err() {
                break;
            }
            done += chunk.len() as u64;
        }
    }
    let _ = std::fs::remove_file(&path);
}

fn sync_disks() {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
}

struct Progress {
    total: usize,
    done: usize,
    start: Instant,
    tty: bool,
}

impl Progress {
    fn step(&mut self, what: &str) {
        self.done += 1;
        let el = self.start.elapsed().as_secs();
        let eta = if self.done > 1 {
            let per = self.start.elapsed().as_secs_f64() / (self.done - 1) as f64;
            format!(
                ", about {}s left",
                (per * (self.total - self.done + 1) as f64) as u64
            )
        } else {
            String::new()
        };
        let line = format!("[{}/{}] {what} ({el}s{eta})", self.done, self.total);
        if self.tty {
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
        let _ = std::io::stderr().flush();
    }
    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

struct Ctx<'a> {
    sizes: &'a Sizes,
    src_seq: PathBuf,
    src_small: PathBuf,
}

fn target(s: &Server) -> client::Target {
    client::Target {
        addr: s.addr,
        user: servers::USER.into(),
        password: servers::PASSWORD.into(),
        share: servers::SHARE.into(),
        netns: s.pair.as_ref().map(|p| p.netns.clone()),
    }
}

/// Runs one workload once on one server: (seconds, amount in bytes or operations).
fn run_once(
    w: W,
    s: &Server,
    run: usize,
    ctx: &Ctx<'_>,
    notes: &mut Vec<String>,
) -> Result<(f64, f64), Error> {
    let t = target(s);
    let z = ctx.sizes;
    let bytes = z.seq_bytes as f64;
    let addr: SocketAddr = s.addr;
    let small_dir = format!("small-{run}");
    let dirs_dir = format!("dirs-{run}");
    let sc_dirs = format!("scdirs-{run}");
    Ok(match w {
        W::SeqWrite1M | W::SeqWrite64K => {
            let io = if w == W::SeqWrite1M {
                1 << 20
            } else {
                64 << 10
            };
            let depth = if w == W::SeqWrite1M {
                DEPTH_1M
            } else {
                DEPTH_64K
            };
            let name = format!("w-{run}.bin");
            let r = pc::seq_write(&t, &name, z.seq_bytes, io, depth);
            let _ = pc::remove_file(&t, &name);
            sync_disks();
            (r?, bytes)
        }
        W::SeqRead1M => (
            pc::seq_read(&t, "seq.bin", z.seq_bytes, 1 << 20, DEPTH_1M)?,
            bytes,
        ),
        W::SeqRead64K => (
            pc::seq_read(&t, "seq.bin", z.seq_bytes, 64 << 10, DEPTH_64K)?,
            bytes,
        ),
        W::Create => (
            pc::small_ops(
                &t,
                SmallOp::Create,
                &small_dir,
                z.small_files,
                DEPTH_SMALL,
                true,
            )?,
            z.small_files as f64,
        ),
        W::Stat => (
            pc::small_ops(
                &t,
                SmallOp::Stat,
                &small_dir,
                z.small_files,
                DEPTH_SMALL,
                false,
            )?,
            z.small_files as f64,
        ),
        W::Delete => {
            let r = pc::small_ops(
                &t,
                SmallOp::Delete,
                &small_dir,
                z.small_files,
                DEPTH_SMALL,
                false,
            );
            let _ = pc::remove_tree(&t, &small_dir);
            (r?, z.small_files as f64)
        }
        W::Mkdir => (
            pc::small_ops(&t, SmallOp::Mkdir, &dirs_dir, z.dirs, DEPTH_SMALL, true)?,
            z.dirs as f64,
        ),
        W::Rmdir => {
            let r = pc::small_ops(&t, SmallOp::Rmdir, &dirs_dir, z.dirs, DEPTH_SMALL, false);
            let _ = pc::remove_tree(&t, &dirs_dir);
            (r?, z.dirs as f64)
        }
        W::List => {
            let (secs, n) = pc::list_dir(&t, "list")?;
            if n < z.list_entries {
                return Err(Error::other(format!(
                    "listed {n} entries of {}",
                    z.list_entries
                )));
            }
            (secs, n as f64)
        }
        W::Durable => {
            let d = format!("durable-{run}");
            let r = pc::durable_ops(&t, &d, z.durable, DEPTH_SMALL);
            let _ = pc::remove_tree(&t, &d);
            let (secs, (leases, durables)) = r?;
            if run == 0 {
                notes.push(format!(
                    "{}: of {} DH2Q+lease creates, {leases} got a lease and {durables} a durable handle",
                    s.kind.name(),
                    z.durable
                ));
            }
            (secs, z.durable as f64)
        }
        W::Clients => {
            let d = format!("clients-{run}");
            let r = pc::many_clients(&t, &d, z.clients, z.per_client);
            let _ = pc::remove_tree(&t, &d);
            let (secs, ops) = r?;
            (secs, ops as f64)
        }
        W::ScPut => {
            let name = format!("scput-{run}.bin");
            let r = sc::put(addr, &ctx.src_seq, &name, z.seq_bytes);
            let _ = pc::remove_file(&t, &name);
            sync_disks();
            (r?, bytes)
        }
        W::ScGet => (sc::get(addr, "seq.bin", z.seq_bytes)?, bytes),
        W::ScPutSmall => {
            let d = format!("scsmall-{run}");
            let src = ctx.src_small.display().to_string();
            let r = sc::batch(
                addr,
                &format!("mkdir {d}\ncd {d}\n"),
                (0..z.sc_small).map(|i| format!("put {src} f{i:05}")),
            );
            let _ = pc::remove_tree(&t, &d);
            (r?, z.sc_small as f64)
        }
        W::ScMkdir => (
            sc::batch(
                addr,
                &format!("mkdir {sc_dirs}\ncd {sc_dirs}\n"),
                (0..z.sc_dirs).map(|i| format!("mkdir d{i:05}")),
            )?,
            z.sc_dirs as f64,
        ),
        W::ScRmdir => {
            let r = sc::batch(
                addr,
                &format!("cd {sc_dirs}\n"),
                (0..z.sc_dirs).map(|i| format!("rmdir d{i:05}")),
            );
            let _ = pc::remove_tree(&t, &sc_dirs);
            (r?, z.sc_dirs as f64)
        }
        W::ScLs => (
            sc::batch(addr, "cd list\nls\n", std::iter::empty())?,
            z.list_entries as f64,
        ),
    })
}

fn machine_info() -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or("unknown".into(), |k| {
            format!("{:.1} GiB", k as f64 / 1048576.0)
        });
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    vec![
        ("cpu".into(), model),
        ("cores".into(), cores.to_string()),
        ("memory".into(), mem),
        ("kernel".into(), read("/proc/sys/kernel/osrelease")),
        ("hostname".into(), read("/proc/sys/kernel/hostname")),
    ]
}

/// UTC "YYYY-MM-DD HH:MM:SS" and a file-name form.
fn utc_now() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil from days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    (
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}"),
        format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}"),
    )
}

/// Runs the whole benchmark; Ok(true) if some measurement failed.
fn run(o: &Options) -> Result<bool, Error> {
    let sizes = if o.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let (started, stamp) = utc_now();
    let in_group = |g: &str| o.only.as_ref().is_none_or(|v| v.iter().any(|x| x == g));
    let have_smbclient = sc::available();
    let mut notes = Vec::new();
    if !have_smbclient && in_group("smbclient") {
        notes.push("smbclient not installed: smbclient workloads skipped".to_string());
        eprintln!(
            "duet-bench: smbclient not found (apt-get install smbclient); skipping its workloads"
        );
    }
    let workloads: Vec<W> = ALL
        .iter()
        .copied()
        .filter(|w| {
            (in_group(w.group()) || in_group(w.id()))
                && (w.client() != "smbclient" || have_smbclient)
        })
        .collect();

    // Check programs before making anything.
    for k in &o.servers {
        match k {
            Kind::Duetd => {
                for p in [&o.programs.duetd, &o.programs.duetctl, &o.programs.board] {
                    if !p.is_file() {
                        return Err(Error::other(format!(
                            "{} not found (build with: cargo build --release -p duetd -p duetctl; or pass --duetd/--duetctl/--board)",
                            p.display()
                        )));
                    }
                }
            }
            Kind::SmbServer => servers::ensure_shim(&o.programs.shim)?,
            Kind::DuetdPair => {
                if !servers::is_root() {
                    return Err(Error::other(
                        "duetd-pair needs root (network namespaces); run as root or leave it out of --servers",
                    ));
                }
                for p in [&o.programs.duetd, &o.programs.duetctl] {
                    if !p.is_file() {
                        return Err(Error::other(format!(
                            "{} not found (build with: cargo build --release -p duetd -p duetctl)",
                            p.display()
                        )));
                    }
                }
            }
            Kind::Smbd => {
                if !servers::is_root() {
                    return Err(Error::other(
                        "smbd needs root; run as root or leave smbd out of --servers",
                    ));
                }
            }
        }
    }

    // Scratch: source files, then one share per server with the same contents.
    std::fs::create_dir_all(&o.workdir)?;
    let workdir = o.workdir.canonicalize()?;
    let src = workdir.join("src");
    std::fs::create_dir_all(&src)?;
    let ctx = Ctx {
        sizes: &sizes,
        src_seq: src.join("seq.bin"),
        src_small: src.join("small4k.bin"),
    };
    eprintln!("duet-bench: preparing shares in {} ...", workdir.display());
    write_file(&ctx.src_seq, sizes.seq_bytes)?;
    write_file(&ctx.src_small, 4096)?;
    // smbd's share user must be able to reach the share and read the sources.
    if o.servers.contains(&Kind::Smbd) {
        use std::os::unix::fs::PermissionsExt;
        for d in workdir.ancestors() {
            if let Ok(md) = std::fs::metadata(d) {
                if md.permissions().mode() & 0o001 == 0 {
                    notes.push(format!(
                        "{} is not searchable by others: smbd's user may not reach the share",
                        d.display()
                    ));
                }
            }
        }
        std::fs::set_permissions(&workdir, std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755))?;
    }
    let mut started_servers: Vec<Server> = Vec::new();
    for k in &o.servers {
        let dir = workdir.join(k.name());
        fill_share(&dir.join("share"), &ctx.src_seq, sizes.list_entries)?;
        warm(&dir.join("share/seq.bin"));
        eprintln!("duet-bench: starting {} ...", k.name());
        started_servers.push(Server::start(*k, &dir, &o.programs)?);
    }
    warm(&ctx.src_seq);
    std::thread::sleep(Duration::from_secs(1));
    let negotiated: Vec<String> = started_servers
        .iter()
        .map(|s| pc::probe(&target(s)).unwrap_or_else(|e| format!("nothing: {e}")))
        .collect();

    let nserv = started_servers.len();
    let floor = if workloads.iter().any(|w| w.group() == "seq") {
        eprintln!("duet-bench: measuring the kernel floor (no SMB) ...");
        match floor::measure(
            &ctx.src_seq,
            &workdir,
            sizes.seq_bytes,
            o.runs.min(3),
            || warm_page_cache(&workdir, sizes.seq_bytes),
        ) {
            Ok(f) => Some(f),
            Err(e) => {
                notes.push(format!("kernel floor not measured: {e}"));
                None
            }
        }
    } else {
        None
    };
    let measure_mem = in_group("memory");
    let mut memory = Vec::new();
    if measure_mem {
        memory.push(MemRow {
            label: "at rest (after start)".into(),
            values: started_servers
                .iter()
                .map(|s| Ok(s.procs.memory()))
                .collect(),
        });
    }

    let mut results: Vec<WorkloadResult> = workloads
        .iter()
        .map(|w| WorkloadResult {
            id: w.id(),
            client: w.client(),
            title: w.title(&sizes),
            unit: if w.is_bytes() {
                "MB/s"
            } else if matches!(w, W::List | W::ScLs) {
                "entries/s"
            } else {
                "ops/s"
            },
            cost_unit: if w.is_bytes() {
                "CPU s/GiB"
            } else if matches!(w, W::List | W::ScLs) {
                "CPU s/1k entries"
            } else {
                "CPU s/1k ops"
            },
            cells: vec![Cell::default(); nserv],
        })
        .collect();

    let mem_steps = if measure_mem { 2 * nserv } else { 0 };
    let mut progress = Progress {
        total: o.runs * workloads.len() * nserv + mem_steps,
        done: 0,
        start: Instant::now(),
        tty: std::io::stderr().is_terminal(),
    };
    'runs: for run in 0..o.runs {
        for (wi, w) in workloads.iter().enumerate() {
            for (si, s) in started_servers.iter().enumerate() {
                if interrupted() {
                    notes.push(format!(
                        "interrupted during run {}: figures are partial",
                        run + 1
                    ));
                    break 'runs;
                }
                progress.step(&format!(
                    "run {}/{} {} on {}",
                    run + 1,
                    o.runs,
                    w.id(),
                    s.kind.name()
                ));
                if w.is_bytes() {
                    warm_page_cache(&o.workdir, sizes.seq_bytes + (256 << 20));
                }
                let cpu0 = s.procs.cpu_seconds();
                let me0 = procstat::self_cpu_seconds();
                let r = run_once(*w, s, run, &ctx, &mut notes);
                let me = procstat::self_cpu_seconds() - me0;
                let cpu = s.procs.cpu_seconds() - cpu0;
                let cell = &mut results[wi].cells[si];
                match r {
                    Ok((secs, amount)) if secs > 0.0 => {
                        let (rate, per) = if w.is_bytes() {
                            (amount / secs / 1e6, amount / (1u64 << 30) as f64)
                        } else {
                            (amount / secs, amount / 1000.0)
                        };
                        cell.values.push(rate);
                        cell.cpu.push(cpu / per);
                        if w.client() == "pipelined" {
                            cell.client_cpu.push(me / per);
                        }
                    }
                    Ok(_) => cell.errors.push("took no measurable time".into()),
                    Err(e) => {
                        if progress.tty {
                            eprintln!();
                        }
                        eprintln!(
                            "duet-bench: {} on {} (run {}): {e}",
                            w.id(),
                            s.kind.name(),
                            run + 1
                        );
                        cell.errors.push(e.to_string());
                    }
                }
            }
        }
    }

    if measure_mem && !interrupted() {
        let mut after = Vec::new();
        let mut handles = Vec::new();
        let mut conns = Vec::new();
        for s in &started_servers {
            after.push(Ok(s.procs.memory()));
            progress.step(&format!(
                "memory with {} open handles on {}",
                sizes.handles,
                s.kind.name()
            ));
            handles.push(
                pc::hold_handles(&target(s), "handles", sizes.handles, || s.procs.memory())
                    .map_err(|e| e.to_string()),
            );
            progress.step(&format!(
                "memory with {} connections on {}",
                sizes.connections,
                s.kind.name()
            ));
            conns.push(
                pc::hold_connections(&target(s), sizes.connections, || s.procs.memory())
                    .map_err(|e| e.to_string()),
            );
        }
        memory.push(MemRow {
            label: "idle after the workloads".into(),
            values: after,
        });
        memory.push(MemRow {
            label: format!("{} open handles (one connection)", sizes.handles),
            values: handles,
        });
        memory.push(MemRow {
            label: format!(
                "{} connections (logged on, tree connected)",
                sizes.connections
            ),
            values: conns,
        });
    }
    progress.finish();

    let server_versions: Vec<(String, String)> = started_servers
        .iter()
        .zip(&negotiated)
        .map(|(s, n)| {
            (
                s.kind.name().to_string(),
                format!("{}; pipelined client negotiated {n}", s.version),
            )
        })
        .collect();
    for s in &mut started_servers {
        s.stop();
    }
    drop(started_servers);

    let mut settings = vec![
        ("sizes".to_string(), format!("{sizes:?}")),
        (
            "pipelined client".into(),
            "duet-bench's own: SMB 3.1.1 (2.0.2-3.1.1 offered), NTLMv2 in SPNEGO with MIC and key exchange, signing required (AES-GMAC offered before AES-CMAC), no encryption, no oplocks except the durable workload's lease; related compounds for small-file operations".into(),
        ),
        ("smbclient".into(), sc::version() + ", --option=client signing=required"),
        (
            "smbd share".into(),
            "as shared/reference/start-smbd.sh: vfs objects = acl_xattr xattr_tdb, store dos attributes, durable handles, kernel oplocks/share modes and posix locking off, log level 1".into(),
        ),
        ("duetd board".into(), o.programs.board.display().to_string()),
        (
            "duetd-pair".into(),
            "two duetd in the namespace lab (tools/lab/lab.sh, prefix bench), joined with duetctl pair init/join, signing required; every durable-handle change is committed on both nodes (mirrored over a veth 'cable') before the response; the client connects to the VIP from the lab's client namespace (one more hop than loopback)".into(),
        ),
        (
            "duet-bench build".into(),
            if cfg!(debug_assertions) { "debug" } else { "release" }.into(),
        ),
        ("share contents".into(), format!("seq.bin ({}), list/ ({} empty files)", human_bytes(sizes.seq_bytes), sizes.list_entries)),
        (
            "cost".into(),
            "server CPU = utime+stime of the server's processes (children included, reaped ones through cutime/cstime) over the measured run, connection setup included".into(),
        ),
    ];
    settings.push(("workspace".into(), servers::git_revision()));
    let reference = o.servers.iter().position(|k| *k == Kind::Smbd);
    let report = Report {
        started_utc: started,
        mode: if o.quick {
            "quick".into()
        } else {
            "full".into()
        },
        runs: o.runs,
        servers: server_versions,
        reference,
        machine: machine_info(),
        settings,
        workloads: results,
        memory,
        floor,
        notes,
    };
    let failed = report
        .workloads
        .iter()
        .any(|w| w.cells.iter().any(|c| !c.errors.is_empty()))
        || report
            .memory
            .iter()
            .any(|m| m.values.iter().any(|v| v.is_err()));

    std::fs::create_dir_all(&o.out)?;
    let base = o.out.join(format!("{stamp}-{}", report.mode));
    let md = report.to_markdown();
    std::fs::write(base.with_extension("json"), report.to_json())?;
    std::fs::write(base.with_extension("md"), &md)?;
    println!("{md}");
    eprintln!(
        "duet-bench: wrote {} and {}",
        base.with_extension("json").display(),
        base.with_extension("md").display()
    );
    if !o.keep {
        let _ = std::fs::remove_dir_all(&workdir);
    }
    Ok(failed)
}
