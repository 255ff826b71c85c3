//! CPU time and memory of a server's processes, from /proc.
//!
//! A server is a root PID plus its descendants (smbd forks one child per connection),
//! plus any process whose command line names a marker (smbd's config file, which the
//! samba-dcerpcd / rpcd_* helpers it starts carry too).
//! Owns: reading /proc/PID/{stat,status,smaps_rollup,cmdline}.
//! Must never: signal or otherwise touch the processes it reads.

use std::collections::HashMap;
use std::fs;

/// Clock ticks per second for /proc/PID/stat times.
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// (ppid, utime+stime, cutime+cstime) of one process, in ticks.
fn stat_of(pid: i32) -> Option<(i32, u64, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] = state (field 3), f[1] = ppid, f[11..15] = utime stime cutime cstime.
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((
        f.get(1)?.parse().ok()?,
        num(11)? + num(12)?,
        num(13)? + num(14)?,
    ))
}

/// CPU seconds this process (all its threads, not its children) has used.
pub fn self_cpu_seconds() -> f64 {
    stat_of(std::process::id() as i32).map_or(0.0, |(_, own, _)| own as f64 / ticks_per_sec())
}

fn all_pids() -> Vec<i32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The processes that make up one server.
#[derive(Debug, Clone)]
pub struct ProcSet {
    pub root: i32,
    /// A string that marks the server's helper processes in their command line.
    pub marker: Option<String>,
}

impl ProcSet {
    pub fn pids(&self) -> Vec<i32> {
        let pids = all_pids();
        let mut parent = HashMap::new();
        for &p in &pids {
            if let Some((pp, _, _)) = stat_of(p) {
                parent.insert(p, pp);
            }
        }
        let mut out: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|&p| {
                let mut cur = p;
                for _ in 0..64 {
                    if cur == self.root {
                        return true;
                    }
                    match parent.get(&cur) {
                        Some(&pp) if pp > 1 => cur = pp,
                        _ => return false,
                    }
                }
                false
            })
            .collect();
        if let Some(m) = &self.marker {
            for &p in &pids {
                if out.contains(&p) {
                    continue;
                }
                if let Ok(cmd) = fs::read(format!("/proc/{p}/cmdline")) {
                    let cmd = String::from_utf8_lossy(&cmd);
                    if cmd
                        .split('\0')
                        .any(|a| a == m || a.ends_with(&format!("={m}")))
                    {
                        out.push(p);
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// CPU seconds used so far by the set: each live process's own time plus the time of
    /// the children it has reaped (so a connection process that came and went between
    /// two samples is counted through its parent).
    pub fn cpu_seconds(&self) -> f64 {
        let ticks: u64 = self
            .pids()
            .iter()
            .filter_map(|&p| stat_of(p))
            .map(|(_, own, reaped)| own + reaped)
            .sum();
        ticks as f64 / ticks_per_sec()
    }

    /// Memory of the set now.
    pub fn memory(&self) -> Memory {
        let pids = self.pids();
        let mut m = Memory {
            processes: pids.len(),
            ..Default::default()
        };
        for p in pids {
            m.rss_kib += status_field(p, "VmRSS:").unwrap_or(0);
            m.pss_kib += fs::read_to_string(format!("/proc/{p}/smaps_rollup"))
                .ok()
                .and_then(|s| field(&s, "Pss:"))
                .unwrap_or(0);
        }
        m
    }
}

fn field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn status_field(pid: i32, key: &str) -> Option<u64> {
    field(
        &fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        key,
    )
}

/// Resident memory summed over a server's processes. RSS counts shared pages once per
/// process (what the issue asks for); PSS splits them, so it adds up honestly.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Memory {
    pub rss_kib: u64,
    pub pss_kib: u64,
    pub processes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_measured() {
        let me = ProcSet {
            root: std::process::id() as i32,
            marker: None,
        };
        assert!(me.pids().contains(&(std::process::id() as i32)));
        let m = me.memory();
        assert!(m.rss_kib > 0 && m.processes >= 1);
        // Burn a little CPU; the counter must not go backwards.
        let a = me.cpu_seconds();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(me.cpu_seconds() >= a);
    }

    #[test]
    fn field_parsing() {
        assert_eq!(field("Name:\tx\nVmRSS:\t  1234 kB\n", "VmRSS:"), Some(1234));
        assert_eq!(field("Pss: 7 kB", "Pss:"), Some(7));
        assert_eq!(field("", "Pss:"), None);
    }
}
