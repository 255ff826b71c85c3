//! The `drbd` storage-role driver: runs the commands the board config
//! names, e.g. `drbdadm primary r0`, `drbdadm secondary r0`, `drbdadm role
//! r0`, each as an argument vector (no shell), each with a time limit after
//! which it is killed with its process group.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Role, RoleError, StorageRole};

/// The commands of the `drbd` driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrbdConfig {
    /// Makes this node primary (`drbdadm primary r0`).
    pub promote: Vec<String>,
    /// Makes this node secondary (`drbdadm secondary r0`).
    pub demote: Vec<String>,
    /// Prints this node's role first on its output: `Primary` or
    /// `Secondary`, optionally followed by `/` and the peer's
    /// (`drbdadm role r0`, DRBD 8.4 and 9).
    pub status: Vec<String>,
    /// How long one command may run.
    pub timeout: Duration,
}

impl DrbdConfig {
    /// `drbdadm primary|secondary|role RESOURCE`, 10 s each.
    pub fn for_resource(resource: &str) -> Self {
        let cmd = |verb: &str| vec!["drbdadm".to_owned(), verb.to_owned(), resource.to_owned()];
        DrbdConfig {
            promote: cmd("primary"),
            demote: cmd("secondary"),
            status: cmd("role"),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The `drbd` driver.
#[derive(Debug)]
pub struct Drbd {
    config: DrbdConfig,
}

impl Drbd {
    /// A driver running `config`'s commands.
    pub fn new(config: DrbdConfig) -> Self {
        Drbd { config }
    }
}

impl StorageRole for Drbd {
    fn promote(&mut self) -> Result<(), RoleError> {
        run(&self.config.promote, self.config.timeout).map(drop)
    }

    fn demote(&mut self) -> Result<(), RoleError> {
        run(&self.config.demote, self.config.timeout).map(drop)
    }

    fn status(&mut self) -> Result<Role, RoleError> {
        let out = run(&self.config.status, self.config.timeout)?;
        parse_role(&out)
    }
}

/// The local role from `drbdadm role` output: `Primary`, `Secondary`,
/// `Primary/Secondary` (8.4: local/peer).
fn parse_role(out: &str) -> Result<Role, RoleError> {
    let first = out.split_whitespace().next().unwrap_or("");
    let local = first.split('/').next().unwrap_or("");
    if local.eq_ignore_ascii_case("primary") {
        Ok(Role::Primary)
    } else if local.eq_ignore_ascii_case("secondary") {
        Ok(Role::Secondary)
    } else {
        let mut shown: String = out.chars().take(200).collect();
        shown.truncate(shown.trim_end().len());
        Err(RoleError::Status(shown))
    }
}

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    let start = s.len().saturating_sub(512);
    let start = (start..=s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    s[start..].to_owned()
}

/// Runs `argv` with stdin closed; its stdout on success.
fn run(argv: &[String], limit: Duration) -> Result<String, RoleError> {
    let (program, args) = argv
        .split_first()
        .ok_or(RoleError::Config("empty storage-role command"))?;
    let command = argv.join(" ");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills what it started too.
        .process_group(0)
        .spawn()
        .map_err(|source| RoleError::Spawn {
            program: program.clone(),
            source,
        })?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
                    // SAFETY: kill(2) on the process group we created.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                }
                let _ = child.kill();
                let _ = child.wait();
                // The readers end when the group's pipes close; not joined
                // here so a stray holder of a pipe cannot hang us.
                return Err(RoleError::Timeout { command, limit });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => {
                return Err(RoleError::Io {
                    op: "wait for storage-role command",
                    source,
                })
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        return Err(RoleError::Failed {
            command,
            status,
            stderr: tail(&stderr),
        });
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_read() {
        assert_eq!(parse_role("Primary\n").unwrap(), Role::Primary);
        assert_eq!(parse_role("Secondary").unwrap(), Role::Secondary);
        assert_eq!(parse_role("Primary/Secondary\n").unwrap(), Role::Primary);
        assert_eq!(parse_role("secondary/Unknown").unwrap(), Role::Secondary);
        assert!(matches!(parse_role(""), Err(RoleError::Status(_))));
        assert!(matches!(
            parse_role("Diskless\n"),
            Err(RoleError::Status(_))
        ));
    }

    #[test]
    fn tails_are_cut_on_char_boundaries() {
        let long = "é".repeat(600);
        let t = tail(long.as_bytes());
        assert!(t.len() <= 512 && !t.is_empty());
    }

    #[test]
    fn defaults_name_drbdadm() {
        let c = DrbdConfig::for_resource("r0");
        assert_eq!(c.promote, ["drbdadm", "primary", "r0"]);
        assert_eq!(c.demote, ["drbdadm", "secondary", "r0"]);
        assert_eq!(c.status, ["drbdadm", "role", "r0"]);
    }
}
