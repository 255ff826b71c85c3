//! duetctl: command-line administration of duetd's users, shares and settings.
//!
//! Owns argument parsing, password input and output formatting. It talks to a running duetd
//! through its admin socket, or opens the state store itself when no daemon answers. Must never
//! echo, print or pass a password on the command line, and never touch the state database
//! except through duet-state.

use std::ffi::OsString;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use duet_state::admin::{self, AdminReply, AdminRequest, SOCKET_FILE};
use duet_state::{ShareConfig, Store, StoreError, UserInfo, STATE_FILE};

const DEFAULT_STATE_DIR: &str = "/var/lib/duet";
const STATE_ENV: &str = "DUET_STATE";

const HELP: &str = "\
duetctl - administer duetd users, shares and settings

Usage: duetctl [--state DIR] COMMAND

Commands:
  user add NAME          add a user; the password is read from standard input
  user passwd NAME       change a user's password (read like 'user add')
  user del NAME          remove a user
  user list              list users
  share add NAME PATH [--comment TEXT] [--read-only]
                         add a share of the directory PATH (absolute)
  share del NAME         remove a share
  share list             list shares
  set KEY VALUE          set a setting
  get KEY                print a setting (exit status 1 if it is not set)

Pair (two boxes, see README 'Two boxes'):
  pair init              make this box the first of a new pair: writes DIR/cluster.key
                         and prints the join line for the second box
  pair join LINE         make this (new, empty) box the second of the pair
  cluster status         role, epoch, mirroring, link and tie-breaker of the running node
  cluster switchover     move the service to the partner (planned; no handle lost)
  cluster takeover --force
                         serve now with this node's store: only when the partner is
                         down for good (it may lose what the partner acknowledged alone)
  help, --help, -h       show this help

Options:
  --state DIR            state directory (default: $DUET_STATE, else /var/lib/duet)

Passwords: on a terminal, duetctl prompts twice without echo. Otherwise it reads
one line from standard input, for scripts:
  printf 'pw\\n' | duetctl --state /var/lib/duet user add alice

duetctl goes through the running duetd's admin socket (DIR/duetd.sock) when one
answers, and otherwise opens DIR/state.redb itself.
User and share names are case-insensitive. Exit status: 0 on success, 1 on
error, 2 on a usage error.
";

/// A parsed command line.
#[derive(Debug)]
struct Cli {
    state_dir: PathBuf,
    command: Command,
}

#[derive(Debug)]
enum Command {
    Help,
    UserAdd(String),
    UserPasswd(String),
    UserDel(String),
    UserList,
    ShareAdd(ShareConfig),
    ShareDel(String),
    ShareList,
    Set(String, String),
    Get(String),
    PairInit,
    PairJoin(String),
    Cluster(admin::ClusterCommand),
}

/// A command-line mistake (exit status 2).
#[derive(Debug)]
struct Usage(String);

fn usage<T>(msg: impl Into<String>) -> Result<T, Usage> {
    Err(Usage(msg.into()))
}

fn parse(args: Vec<OsString>, env_state: Option<OsString>) -> Result<Cli, Usage> {
    let mut state_dir = env_state
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    let mut args = args.into_iter();
    let mut words = Vec::new();

    // Global options come before the command.
    while let Some(arg) = args.next() {
        let text = arg.to_str();
        match text {
            Some("--state") => match args.next() {
                Some(dir) if !dir.is_empty() => state_dir = PathBuf::from(dir),
                _ => return usage("--state needs a directory"),
            },
            Some(s) if s.starts_with("--state=") => {
                let dir = &s["--state=".len()..];
                if dir.is_empty() {
                    return usage("--state needs a directory");
                }
                state_dir = PathBuf::from(dir);
            }
            Some("-h" | "--help") => {
                return Ok(Cli {
                    state_dir,
                    command: Command::Help,
                })
            }
            Some(s) if s.starts_with('-') && s.len() > 1 => {
                return usage(format!("unknown option {s}"));
            }
            _ => {
                words.push(arg);
                break;
            }
        }
    }
    for arg in args {
        words.push(arg);
    }
    let words: Vec<String> = words
        .into_iter()
        .map(|w| {
            w.into_string()
                .map_err(|w| Usage(format!("argument {w:?} is not valid UTF-8")))
        })
        .collect::<Result<_, _>>()?;
    let words: Vec<&str> = words.iter().map(String::as_str).collect();

    let command = match words.as_slice() {
        [] => return usage("missing command"),
        ["help"] => Command::Help,
        ["user", "add", name] => Command::UserAdd(name.to_string()),
        ["user", "passwd", name] => Command::UserPasswd(name.to_string()),
        ["user", "del", name] => Command::UserDel(name.to_string()),
        ["user", "list"] => Command::UserList,
        ["user", "add" | "passwd" | "del", ..] => {
            return usage("expected: user add|passwd|del NAME")
        }
        ["user", ..] => return usage("expected: user add|passwd|del NAME, or user list"),
        ["share", "add", rest @ ..] => Command::ShareAdd(parse_share_add(rest)?),
        ["share", "del", name] => Command::ShareDel(name.to_string()),
        ["share", "list"] => Command::ShareList,
        ["share", "del", ..] => return usage("expected: share del NAME"),
        ["share", ..] => return usage("expected: share add|del|list"),
        ["set", key, value] => Command::Set(key.to_string(), value.to_string()),
        ["set", ..] => return usage("expected: set KEY VALUE"),
        ["get", key] => Command::Get(key.to_string()),
        ["get", ..] => return usage("expected: get KEY"),
        ["pair", "init"] => Command::PairInit,
        ["pair", "join", rest @ ..] if !rest.is_empty() => Command::PairJoin(rest.join(" ")),
        ["pair", ..] => return usage("expected: pair init, or pair join LINE"),
        ["cluster", "status"] => Command::Cluster(admin::ClusterCommand::Status),
        ["cluster", "switchover"] => Command::Cluster(admin::ClusterCommand::Switchover),
        ["cluster", "takeover", "--force"] => {
            Command::Cluster(admin::ClusterCommand::ForceTakeover)
        }
        ["cluster", "takeover", ..] => {
            return usage("cluster takeover needs --force (read 'duetctl help' first)")
        }
        ["cluster", ..] => return usage("expected: cluster status|switchover|takeover --force"),
        [other, ..] => return usage(format!("unknown command {other:?}")),
    };
    Ok(Cli { state_dir, command })
}

/// `share add NAME PATH [--comment TEXT] [--read-only]`; options may come anywhere, `--` ends
/// them.
fn parse_share_add(args: &[&str]) -> Result<ShareConfig, Usage> {
    let mut positional = Vec::new();
    let mut comment = String::new();
    let mut read_only = false;
    let mut it = args.iter();
    let mut options_done = false;
    while let Some(&arg) = it.next() {
        if options_done {
            positional.push(arg);
            continue;
        }
        match arg {
            "--" => options_done = true,
            "--read-only" => read_only = true,
            "--comment" => match it.next() {
                Some(&text) => comment = text.to_string(),
                None => return usage("--comment needs a text"),
            },
            _ if arg.starts_with("--comment=") => comment = arg["--comment=".len()..].to_string(),
            _ if arg.starts_with("--") => return usage(format!("unknown option {arg}")),
            _ => positional.push(arg),
        }
    }
    match positional.as_slice() {
        [name, path] => Ok(ShareConfig {
            name: name.to_string(),
            path: PathBuf::from(path),
            comment,
            read_only,
        }),
        _ => usage("expected: share add NAME PATH [--comment TEXT] [--read-only]"),
    }
}

// ---- password input ----

/// Reads a new password: prompted twice without echo on a terminal, else one stdin line.
fn read_new_password(user: &str) -> Result<String, String> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        let first = prompt_hidden(&format!("New password for {user}: "))?;
        let second = prompt_hidden("Retype new password: ")?;
        if first != second {
            return Err("passwords do not match".into());
        }
        Ok(first)
    } else {
        let mut line = String::new();
        let n = stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read password from standard input: {e}"))?;
        if n == 0 {
            return Err("no password on standard input".into());
        }
        Ok(strip_line_end(line))
    }
}

fn strip_line_end(mut line: String) -> String {
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    line
}

/// Restores the terminal's settings when dropped, whatever happens while echo is off.
struct EchoOff {
    saved: libc::termios,
}

impl EchoOff {
    fn new() -> io::Result<EchoOff> {
        let fd = libc::STDIN_FILENO;
        // SAFETY: tcgetattr fills the termios struct it is given; it is only read on success.
        let saved = unsafe {
            let mut t = std::mem::MaybeUninit::<libc::termios>::uninit();
            if libc::tcgetattr(fd, t.as_mut_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            t.assume_init()
        };
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: a valid termios, derived from the one the terminal gave us.
        if unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `new`.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSAFLUSH, &self.saved);
        }
    }
}

fn prompt_hidden(prompt: &str) -> Result<String, String> {
    let mut stderr = io::stderr();
    let _ = write!(stderr, "{prompt}");
    let _ = stderr.flush();
    let _echo_off = EchoOff::new().map_err(|e| format!("cannot turn off terminal echo: {e}"))?;
    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read password: {e}"))?;
    Ok(strip_line_end(line))
}

// ---- dispatch ----

/// Runs `req` through the daemon's socket if one answers, else on the store directly.
fn dispatch(dir: &Path, req: AdminRequest) -> Result<AdminReply, String> {
    let sock = dir.join(SOCKET_FILE);
    match admin::request(&sock, &req) {
        Ok(reply) => return Ok(reply),
        // Nobody listening (no socket, or a stale one): no daemon, go offline.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            // Cluster commands are for the running node only; opening the store here would
            // also keep a (re)starting duetd from opening it.
            if matches!(req, AdminRequest::Cluster(_)) {
                return Err(format!(
                    "no duetd answers on {}: cluster commands need the running daemon",
                    sock.display()
                ));
            }
        }
        Err(e) => return Err(format!("admin socket {}: {e}", sock.display())),
    }

    let db = dir.join(STATE_FILE);
    if req.is_read_only() && !db.exists() {
        return Err(format!(
            "no state database at {} (wrong --state?)",
            db.display()
        ));
    }
    let store = Store::open(dir).map_err(|e| match e {
        StoreError::Locked { path } => format!(
            "{} is locked by another process (a running duetd?) and no daemon answers on {}; \
             start duetd's admin socket or stop the daemon",
            path.display(),
            sock.display()
        ),
        e => e.to_string(),
    })?;
    Ok(admin::execute(&store, req))
}

fn run(cli: Cli) -> Result<(), String> {
    let req = match cli.command {
        Command::Help => {
            print!("{HELP}");
            return Ok(());
        }
        Command::UserAdd(name) => AdminRequest::UserAdd {
            password: read_new_password(&name)?,
            name,
        },
        Command::UserPasswd(name) => AdminRequest::UserPasswd {
            password: read_new_password(&name)?,
            name,
        },
        Command::UserDel(name) => AdminRequest::UserDel { name },
        Command::UserList => AdminRequest::UserList,
        Command::ShareAdd(share) => AdminRequest::ShareAdd { share },
        Command::ShareDel(name) => AdminRequest::ShareDel { name },
        Command::ShareList => AdminRequest::ShareList,
        Command::Set(key, value) => AdminRequest::SettingSet { key, value },
        Command::Get(key) => AdminRequest::SettingGet { key: key.clone() },
        Command::PairInit => return pair_init(&cli.state_dir),
        Command::PairJoin(line) => return pair_join(&cli.state_dir, &line),
        Command::Cluster(c) => AdminRequest::Cluster(c),
    };
    let expects_done = !req.is_read_only();
    let get_key = match &req {
        AdminRequest::SettingGet { key } => Some(key.clone()),
        _ => None,
    };

    let mut out = String::new();
    match dispatch(&cli.state_dir, req)? {
        AdminReply::Error { message, .. } => return Err(message),
        AdminReply::Done if expects_done => {}
        AdminReply::Users(users) => out = format_users(&users),
        AdminReply::Shares(shares) => out = format_shares(&shares),
        AdminReply::Setting(Some(value)) => out = format!("{value}\n"),
        AdminReply::Text(mut text) => {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            out = text
        }
        AdminReply::Setting(None) => {
            return Err(format!(
                "setting {:?} is not set",
                get_key.unwrap_or_default()
            ))
        }
        other => return Err(format!("unexpected reply from duetd: {other:?}")),
    }
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write output: {e}"))
}

// ---- pair ----

fn pair_init(dir: &Path) -> Result<(), String> {
    use duet_state::pair::{NodeState, PairKey};
    let key = PairKey::generate().map_err(|e| format!("cannot generate a key: {e}"))?;
    key.save_new(dir).map_err(|e| e.to_string())?;
    NodeState::founder()
        .save_new(dir)
        .map_err(|e| e.to_string())?;
    println!("This box founds the pair (its shares, users and settings are the pair's).");
    println!("On the second box, with an empty state directory, run:");
    println!("  duetctl --state DIR pair join {}", key.to_line());
    Ok(())
}

fn pair_join(dir: &Path, line: &str) -> Result<(), String> {
    use duet_state::pair::{NodeState, PairKey};
    let key = PairKey::parse(line)
        .ok_or("not a pair join line (expected: duet-pair-1 ID KEY, as pair init printed it)")?;
    // The joining box takes everything from the founder: a store of its own would be
    // replaced by the founder's snapshot, so refuse one that holds anything.
    if dir.join(STATE_FILE).exists() {
        let store = Store::open(dir).map_err(|e| e.to_string())?;
        let last = store.last_seq().map_err(|e| e.to_string())?;
        if last != 0 {
            return Err(format!(
                "{} already holds state ({last} changes); a joining box starts empty \
                 (its store becomes a copy of the founder's)",
                dir.join(STATE_FILE).display()
            ));
        }
    }
    key.save_new(dir).map_err(|e| e.to_string())?;
    NodeState::default()
        .save_new(dir)
        .map_err(|e| e.to_string())?;
    println!("This box joined the pair; it serves only after it has heard its partner.");
    Ok(())
}

// ---- output ----

/// Left-aligned columns separated by two spaces; the last column is not padded.
fn format_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn format_users(users: &[UserInfo]) -> String {
    if users.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| vec![u.name.clone(), format_utc(u.created)])
        .collect();
    format_table(&["NAME", "CREATED"], &rows)
}

fn format_shares(shares: &[ShareConfig]) -> String {
    if shares.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = shares
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.path.display().to_string(),
                if s.read_only { "ro" } else { "rw" }.to_string(),
                s.comment.clone(),
            ]
        })
        .collect();
    format_table(&["NAME", "PATH", "ACCESS", "COMMENT"], &rows)
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the Unix epoch.
fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let cli = match parse(args, std::env::var_os(STATE_ENV)) {
        Ok(cli) => cli,
        Err(Usage(msg)) => {
            eprintln!("duetctl: {msg}\nRun 'duetctl help' for usage.");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("duetctl: {msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_commands_and_state_dir() {
        let cli = parse(args(&["user", "list"]), None).unwrap();
        assert_eq!(cli.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert!(matches!(cli.command, Command::UserList));

        let cli = parse(args(&["user", "list"]), Some("/env".into())).unwrap();
        assert_eq!(cli.state_dir, PathBuf::from("/env"));
        let cli = parse(args(&["--state", "/x", "get", "k"]), Some("/env".into())).unwrap();
        assert_eq!(cli.state_dir, PathBuf::from("/x"));
        let cli = parse(args(&["--state=/y", "user", "del", "bob"]), None).unwrap();
        assert_eq!(cli.state_dir, PathBuf::from("/y"));
        assert!(matches!(cli.command, Command::UserDel(n) if n == "bob"));

        let cli = parse(
            args(&[
                "share",
                "add",
                "--read-only",
                "docs",
                "/srv/d",
                "--comment",
                "Team docs",
            ]),
            None,
        )
        .unwrap();
        match cli.command {
            Command::ShareAdd(s) => {
                assert_eq!(s.name, "docs");
                assert_eq!(s.path, PathBuf::from("/srv/d"));
                assert_eq!(s.comment, "Team docs");
                assert!(s.read_only);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(args(&["--help"]), None).unwrap().command,
            Command::Help
        ));
        // A value that looks like an option is still a value where one is expected.
        assert!(matches!(
            parse(args(&["set", "k", "--x"]), None).unwrap().command,
            Command::Set(_, v) if v == "--x"
        ));
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["user"][..],
            &["user", "add"][..],
            &["user", "add", "a", "b"][..],
            &["share", "add", "docs"][..],
            &["share", "add", "docs", "/p", "--bogus"][..],
            &["share", "add", "docs", "/p", "--comment"][..],
            &["set", "k"][..],
            &["frobnicate"][..],
            &["--state"][..],
            &["--verbose", "user", "list"][..],
        ] {
            assert!(parse(args(bad), None).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn tables_align() {
        let out = format_table(
            &["NAME", "PATH"],
            &[
                vec!["a".into(), "/x".into()],
                vec!["longer".into(), "/y".into()],
            ],
        );
        assert_eq!(out, "NAME    PATH\na       /x\nlonger  /y\n");
    }

    #[test]
    fn line_ends() {
        assert_eq!(strip_line_end("pw\n".into()), "pw");
        assert_eq!(strip_line_end("pw\r\n".into()), "pw");
        assert_eq!(strip_line_end("pw".into()), "pw");
        assert_eq!(strip_line_end("p w \n".into()), "p w ");
    }
}
