//! The two small files that make a state directory a node of a pair, beside `state.redb`
//! and never mirrored (each box has its own):
//!
//! - `cluster.key`: the pair's identity and secret, the same on both boxes, written by
//!   `duetctl pair init` on the first box and `duetctl pair join` on the second (mode 0600).
//!   One line: `duet-pair-1 CLUSTER_ID KEY` (16 and 64 hex digits).
//! - `cluster.node`: what the cluster core must find again after a restart (its boot
//!   counter and the facts it persisted). One line: `duet-node-1 incarnation=N epoch=E
//!   served=0|1 alone=0|1 partner_incarnation=P`. Replaced atomically (write, fsync,
//!   rename, fsync of the directory), so a crash leaves the old or the new line.
//!
//! A damaged or missing file is an error naming it; nothing here guesses.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const KEY_FILE: &str = "cluster.key";
pub const NODE_FILE: &str = "cluster.node";

/// The pair's identity and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PairKey {
    pub cluster_id: u64,
    pub key: [u8; 32],
}

impl std::fmt::Debug for PairKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairKey")
            .field("cluster_id", &format_args!("{:016x}", self.cluster_id))
            .field("key", &"<redacted>")
            .finish()
    }
}

/// What the cluster core persisted, plus the boot counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeState {
    pub incarnation: u64,
    pub epoch: u64,
    pub served: bool,
    pub alone: bool,
    pub partner_incarnation: u64,
}

fn bad(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl PairKey {
    /// A new pair: random id and key from the kernel.
    pub fn generate() -> io::Result<PairKey> {
        let mut b = [0u8; 40];
        File::open("/dev/urandom")?.read_exact(&mut b)?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&b[8..]);
        Ok(PairKey {
            cluster_id: u64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
            key,
        })
    }

    /// The one-line form (also what `duetctl pair join` takes).
    pub fn to_line(&self) -> String {
        format!("duet-pair-1 {:016x} {}", self.cluster_id, hex(&self.key))
    }

    pub fn parse(line: &str) -> Option<PairKey> {
        let mut w = line.split_whitespace();
        if w.next()? != "duet-pair-1" {
            return None;
        }
        let id = unhex::<8>(w.next()?)?;
        let key = unhex::<32>(w.next()?)?;
        if w.next().is_some() {
            return None;
        }
        Some(PairKey {
            cluster_id: u64::from_be_bytes(id),
            key,
        })
    }

    pub fn load(dir: &Path) -> io::Result<PairKey> {
        let path = dir.join(KEY_FILE);
        let text = fs::read_to_string(&path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "{}: {e} (join the pair first: duetctl pair init / pair join)",
                    path.display()
                ),
            )
        })?;
        let line = text
            .lines()
            .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .unwrap_or("");
        PairKey::parse(line).ok_or_else(|| bad(&path, "not a duet pair key"))
    }

    /// Writes the key file (mode 0600); refuses to replace an existing one.
    pub fn save_new(&self, dir: &Path) -> io::Result<PathBuf> {
        fs::create_dir_all(dir)?;
        let path = dir.join(KEY_FILE);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        writeln!(f, "# duet pair key: the same on both boxes; keep it secret")?;
        writeln!(f, "{}", self.to_line())?;
        f.sync_all()?;
        Ok(path)
    }
}

impl NodeState {
    /// The node that founds the pair: its store is the pair's data, it may serve alone.
    pub fn founder() -> NodeState {
        NodeState {
            served: true,
            alone: true,
            ..NodeState::default()
        }
    }

    fn to_line(self) -> String {
        format!(
            "duet-node-1 incarnation={} epoch={} served={} alone={} partner_incarnation={}",
            self.incarnation,
            self.epoch,
            u8::from(self.served),
            u8::from(self.alone),
            self.partner_incarnation
        )
    }

    fn parse(line: &str) -> Option<NodeState> {
        let mut w = line.split_whitespace();
        if w.next()? != "duet-node-1" {
            return None;
        }
        let mut n = NodeState::default();
        let mut seen = 0;
        for field in w {
            let (k, v) = field.split_once('=')?;
            let num = v.parse::<u64>().ok()?;
            let flag = || match num {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            };
            match k {
                "incarnation" => n.incarnation = num,
                "epoch" => n.epoch = num,
                "served" => n.served = flag()?,
                "alone" => n.alone = flag()?,
                "partner_incarnation" => n.partner_incarnation = num,
                _ => return None,
            }
            seen += 1;
        }
        (seen == 5).then_some(n)
    }

    pub fn load(dir: &Path) -> io::Result<NodeState> {
        let path = dir.join(NODE_FILE);
        let text = fs::read_to_string(&path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "{}: {e} (join the pair first: duetctl pair init / pair join)",
                    path.display()
                ),
            )
        })?;
        NodeState::parse(text.trim()).ok_or_else(|| bad(&path, "not a duet node state"))
    }

    /// Replaces the node file atomically and durably.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let path = dir.join(NODE_FILE);
        let tmp = dir.join(format!("{NODE_FILE}.tmp"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        writeln!(f, "{}", self.to_line())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    }

    /// Writes the first node file of a box; refuses to replace an existing one (a box that
    /// was part of a pair keeps its history).
    pub fn save_new(&self, dir: &Path) -> io::Result<()> {
        let path = dir.join(NODE_FILE);
        if path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists: this box already belongs to a pair",
                    path.display()
                ),
            ));
        }
        self.save(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trip_and_refusals() {
        let k = PairKey::generate().unwrap();
        assert_eq!(PairKey::parse(&k.to_line()), Some(k.clone()));
        assert!(!format!("{k:?}").contains(&hex(&k.key)));
        let line = k.to_line();
        assert!(PairKey::parse(&line[..line.len() - 1]).is_none());
        assert!(PairKey::parse(&line.replace("duet-pair-1", "duet-pair-2")).is_none());
        assert!(PairKey::parse(&format!("{line} x")).is_none());
        let dir = tempfile::tempdir().unwrap();
        k.save_new(dir.path()).unwrap();
        assert_eq!(PairKey::load(dir.path()).unwrap(), k);
        assert!(k.save_new(dir.path()).is_err(), "never replaced");
        fs::write(dir.path().join(KEY_FILE), "garbage\n").unwrap();
        let e = PairKey::load(dir.path()).unwrap_err();
        assert!(e.to_string().contains(KEY_FILE), "{e}");
    }

    #[test]
    fn node_state_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert!(NodeState::load(dir.path()).is_err());
        let mut n = NodeState::founder();
        n.save_new(dir.path()).unwrap();
        assert!(n.save_new(dir.path()).is_err());
        assert_eq!(NodeState::load(dir.path()).unwrap(), n);
        n.incarnation = 7;
        n.epoch = 3;
        n.alone = false;
        n.partner_incarnation = 9;
        n.save(dir.path()).unwrap();
        assert_eq!(NodeState::load(dir.path()).unwrap(), n);
        fs::write(dir.path().join(NODE_FILE), "duet-node-1 incarnation=1\n").unwrap();
        assert!(NodeState::load(dir.path()).is_err());
        fs::write(
            dir.path().join(NODE_FILE),
            "duet-node-1 incarnation=1 epoch=2 served=2 alone=0 partner_incarnation=0\n",
        )
        .unwrap();
        assert!(NodeState::load(dir.path()).is_err());
    }
}
