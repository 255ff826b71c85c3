//! Workloads driven by smbclient, what users run: one smbclient process per measurement,
//! its commands fed on stdin (so 10,000 commands fit), signing required as a Windows 11
//! client would.
//!
//! Owns: the command scripts and reading smbclient's own transfer rate.
//! Must never: treat an NT_STATUS error in smbclient's output as success.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::servers::{PASSWORD, SHARE, USER};
use crate::Error;

pub fn available() -> bool {
    crate::servers::which("smbclient").is_some()
}

pub fn version() -> String {
    Command::new("smbclient")
        .arg("-V")
        .output()
        .map(|o| format!("smbclient {}", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|_| "smbclient (not installed)".into())
}

/// Servers reached from another network namespace (the pair's VIP): smbclient runs there.
static NETNS: std::sync::Mutex<Vec<(SocketAddr, String)>> = std::sync::Mutex::new(Vec::new());

/// From now on smbclient talks to `addr` from network namespace `netns`.
pub fn route_via_netns(addr: SocketAddr, netns: &str) {
    if let Ok(mut v) = NETNS.lock() {
        v.push((addr, netns.to_string()));
    }
}

fn smbclient_for(addr: SocketAddr) -> Command {
    let ns = NETNS
        .lock()
        .ok()
        .and_then(|v| v.iter().find(|(a, _)| *a == addr).map(|(_, n)| n.clone()));
    match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns, "smbclient"]);
            c
        }
        None => Command::new("smbclient"),
    }
}

/// Runs one smbclient with `script` on stdin; returns (wall seconds, output).
pub fn run(addr: SocketAddr, script: &str) -> Result<(f64, String), Error> {
    let start = Instant::now();
    let mut child = smbclient_for(addr)
        .arg(format!("//{}/{SHARE}", addr.ip()))
        .args([
            "-p",
            &addr.port().to_string(),
            "-U",
            &format!("{USER}%{PASSWORD}"),
        ])
        .arg("--option=client signing=required")
        .arg("--option=client max protocol=SMB3_11")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::other(format!("cannot run smbclient: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| Error::other("smbclient stdin"))?;
    let script = script.to_string();
    // Feed stdin from a thread so a full stdout pipe cannot stall the writer.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(script.as_bytes());
    });
    let out = child.wait_with_output()?;
    let secs = start.elapsed().as_secs_f64();
    let _ = feeder.join();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || text.contains("NT_STATUS_") {
        let line = text
            .lines()
            .find(|l| l.contains("NT_STATUS_"))
            .unwrap_or("smbclient failed")
            .trim()
            .to_string();
        return Err(Error::other(format!("smbclient: {line} ({})", out.status)));
    }
    Ok((secs, text))
}

/// smbclient's own average rate, in bytes per second: "(average 123.4 kb/s)" for put and
/// "(average 123.4 KiloBytes/sec)" for get, both in units of 1024 bytes.
pub fn reported_rate(output: &str) -> Option<f64> {
    let i = output.rfind("(average ")?;
    let rest = &output[i + "(average ".len()..];
    let num: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let v: f64 = num.parse().ok()?;
    Some(v * 1024.0)
}

/// put LOCAL as NAME; returns seconds for `bytes` (from smbclient's rate when it gives one).
pub fn put(addr: SocketAddr, local: &Path, name: &str, bytes: u64) -> Result<f64, Error> {
    let (wall, out) = run(addr, &format!("put {} {name}\n", local.display()))?;
    Ok(reported_rate(&out).map_or(wall, |r| bytes as f64 / r))
}

/// get NAME to /dev/null.
pub fn get(addr: SocketAddr, name: &str, bytes: u64) -> Result<f64, Error> {
    let (wall, out) = run(addr, &format!("get {name} /dev/null\n"))?;
    Ok(reported_rate(&out).map_or(wall, |r| bytes as f64 / r))
}

/// Wall seconds of one smbclient doing `cd dir` and then one command per item.
pub fn batch(
    addr: SocketAddr,
    prologue: &str,
    lines: impl Iterator<Item = String>,
) -> Result<f64, Error> {
    let mut s = String::from(prologue);
    for l in lines {
        s.push_str(&l);
        s.push('\n');
    }
    Ok(run(addr, &s)?.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_rates() {
        let put = "putting file /tmp/x as \\seq.bin (812345.6 kb/s) (average 812345.6 kb/s)\n";
        assert_eq!(super::reported_rate(put), Some(812345.6 * 1024.0));
        let get = "getting file \\seq.bin of size 1073741824 as /dev/null (1434567.0 KiloBytes/sec) (average 1434567.0 KiloBytes/sec)";
        assert_eq!(super::reported_rate(get), Some(1434567.0 * 1024.0));
        assert_eq!(super::reported_rate("nothing"), None);
    }
}
