//! Board configuration: one TOML file per board under `board-configs/`, naming what the
//! hardware has (NICs, limits) and how the SMB service listens.
//!
//! Owns: parsing and validating the board file. Never reads the state store.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardConfig {
    pub board: Board,
    #[serde(default)]
    pub smb: Smb,
    #[serde(default)]
    pub limits: Limits,
    /// Network interfaces; used by the cluster issue (heartbeat, data).
    #[serde(default)]
    pub network: Network,
    /// Present on a node of a pair (see `crate::cluster`); absent: a standalone node.
    #[serde(default)]
    pub cluster: Option<Cluster>,
}

/// `[cluster]`: this box's place in a pair. The per-cluster key is not here: it is set when
/// the pair is joined (`duetctl pair init` / `pair join`) and kept in the state directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// `"a"` or `"b"`: the two boxes of the pair have different letters (a wins ties).
    pub node: String,
    /// UDP port of the cluster on both paths (heartbeat cable and data network).
    #[serde(default = "d_cluster_port")]
    pub port: u16,
    /// This box's own address on the data network (heartbeats travel there too).
    pub data_addr: std::net::Ipv4Addr,
    /// The partner box's own address on the data network.
    pub partner_data_addr: std::net::Ipv4Addr,
    /// The service address clients use, with its prefix length: `"192.0.2.100/24"`. The
    /// serving box adds it to `network.data_nic`.
    pub vip: String,
    /// An address on the data network both boxes should reach (the gateway): a box that
    /// cannot reach it never takes the service over and gives it up when it also lost
    /// the heartbeat link.
    pub tiebreaker: std::net::Ipv4Addr,
    #[serde(default = "d_hb_interval")]
    pub heartbeat_interval_ms: u64,
    /// The link counts as dead after this many intervals without a round trip.
    #[serde(default = "d_dead_after")]
    pub dead_after_misses: u32,
    /// A passive box waits this much longer before it takes over.
    #[serde(default = "d_grace")]
    pub takeover_grace_ms: u64,
    /// Give the service back to this box when it returns (`"a"` / `"b"`); default: never.
    #[serde(default)]
    pub failback_to: Option<String>,
    /// Who may write the shared storage (see `duet_hal::storage_role`).
    #[serde(default)]
    pub storage: Storage,
}

/// `[cluster.storage]`: `driver = "none" | "shared-dir" | "drbd"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, tag = "driver", rename_all = "kebab-case")]
pub enum Storage {
    /// Each box has its own copy of the shares' data (or something outside duet moves it).
    #[default]
    None,
    /// The lab's: both boxes see `dir`; the primary holds a lock in it.
    SharedDir { dir: std::path::PathBuf },
    /// DRBD: `drbdadm primary|secondary|role RESOURCE` unless the commands are given.
    Drbd {
        resource: String,
        #[serde(default)]
        promote: Option<Vec<String>>,
        #[serde(default)]
        demote: Option<Vec<String>>,
        #[serde(default)]
        status: Option<Vec<String>>,
        #[serde(default = "d_drbd_timeout")]
        timeout_secs: u64,
    },
}

impl Cluster {
    /// The VIP and its prefix length.
    pub fn vip(&self) -> Result<(std::net::Ipv4Addr, u8), String> {
        let (a, p) = self
            .vip
            .split_once('/')
            .ok_or_else(|| format!("cluster.vip {:?}: expected ADDRESS/PREFIX", self.vip))?;
        let addr = a
            .parse()
            .map_err(|_| format!("cluster.vip {:?}: bad address", self.vip))?;
        let prefix = p
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=32).contains(p))
            .ok_or_else(|| format!("cluster.vip {:?}: prefix must be 1-32", self.vip))?;
        Ok((addr, prefix))
    }

    pub fn node_id(&self) -> Result<duet_cluster::NodeId, String> {
        node_letter(&self.node, "cluster.node")
    }

    pub fn failback(&self) -> Result<Option<duet_cluster::NodeId>, String> {
        self.failback_to
            .as_deref()
            .map(|n| node_letter(n, "cluster.failback_to"))
            .transpose()
    }

    pub fn storage_role(&self) -> Option<duet_hal::storage_role::StorageRoleConfig> {
        use duet_hal::storage_role::{DrbdConfig, StorageRoleConfig};
        match &self.storage {
            Storage::None => None,
            Storage::SharedDir { dir } => Some(StorageRoleConfig::SharedDir(dir.clone())),
            Storage::Drbd {
                resource,
                promote,
                demote,
                status,
                timeout_secs,
            } => {
                let mut c = DrbdConfig::for_resource(resource);
                if let Some(v) = promote {
                    c.promote = v.clone();
                }
                if let Some(v) = demote {
                    c.demote = v.clone();
                }
                if let Some(v) = status {
                    c.status = v.clone();
                }
                c.timeout = std::time::Duration::from_secs(*timeout_secs);
                Some(StorageRoleConfig::Drbd(c))
            }
        }
    }
}

fn node_letter(n: &str, key: &str) -> Result<duet_cluster::NodeId, String> {
    match n {
        "a" | "A" => Ok(duet_cluster::NodeId::A),
        "b" | "B" => Ok(duet_cluster::NodeId::B),
        other => Err(format!("{key} {other:?}: expected \"a\" or \"b\"")),
    }
}

fn d_cluster_port() -> u16 {
    duet_hal::net::link::DEFAULT_PORT
}
fn d_hb_interval() -> u64 {
    100
}
fn d_dead_after() -> u32 {
    5
}
fn d_grace() -> u64 {
    200
}
fn d_drbd_timeout() -> u64 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smb {
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    #[serde(default = "default_name")]
    pub netbios_name: String,
    #[serde(default = "default_domain")]
    pub workgroup: String,
    #[serde(default = "yes")]
    pub signing_required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "d_conns")]
    pub max_connections: usize,
    #[serde(default = "d_sessions")]
    pub max_sessions_per_connection: usize,
    #[serde(default = "d_opens")]
    pub max_opens_per_connection: usize,
    #[serde(default = "d_pending")]
    pub max_pending_per_connection: usize,
    #[serde(default = "d_credits")]
    pub max_credits: u16,
    #[serde(default = "d_failed")]
    pub max_failed_logons: u32,
    #[serde(default = "d_window")]
    pub failed_logon_window_secs: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default)]
    pub data_nic: Option<String>,
    #[serde(default)]
    pub heartbeat_nic: Option<String>,
}

fn default_listen() -> Vec<SocketAddr> {
    vec!["0.0.0.0:445".parse().expect("literal address")]
}
fn default_name() -> String {
    "DUET".into()
}
fn default_domain() -> String {
    "WORKGROUP".into()
}
fn yes() -> bool {
    true
}
fn d_conns() -> usize {
    1024
}
fn d_sessions() -> usize {
    64
}
fn d_opens() -> usize {
    16384
}
fn d_pending() -> usize {
    512
}
fn d_credits() -> u16 {
    8192
}
fn d_failed() -> u32 {
    10
}
fn d_window() -> u64 {
    60
}

impl Default for Smb {
    fn default() -> Self {
        Smb {
            listen: default_listen(),
            netbios_name: default_name(),
            workgroup: default_domain(),
            signing_required: true,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: d_conns(),
            max_sessions_per_connection: d_sessions(),
            max_opens_per_connection: d_opens(),
            max_pending_per_connection: d_pending(),
            max_credits: d_credits(),
            max_failed_logons: d_failed(),
            failed_logon_window_secs: d_window(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read board config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("board config {path} is not valid: {msg}")]
    Parse { path: String, msg: String },
}

impl BoardConfig {
    pub fn load(path: &Path) -> Result<BoardConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::parse(&text).map_err(|msg| ConfigError::Parse {
            path: path.display().to_string(),
            msg,
        })
    }

    pub fn parse(text: &str) -> Result<BoardConfig, String> {
        let cfg: BoardConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if cfg.smb.listen.is_empty() {
            return Err("smb.listen is empty".into());
        }
        let n = &cfg.smb.netbios_name;
        if n.is_empty() || n.len() > 15 || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(format!(
                "smb.netbios_name {n:?}: 1-15 letters, digits or '-'"
            ));
        }
        if cfg.limits.max_credits == 0 || cfg.limits.max_connections == 0 {
            return Err("limits must be positive".into());
        }
        if let Some(c) = &cfg.cluster {
            c.node_id()?;
            c.vip()?;
            c.failback()?;
            if cfg.network.data_nic.is_none() {
                return Err("a [cluster] node needs network.data_nic (the VIP goes there)".into());
            }
            if cfg.network.heartbeat_nic.is_none() {
                return Err("a [cluster] node needs network.heartbeat_nic (the cable)".into());
            }
            if c.port == 0 || c.heartbeat_interval_ms == 0 || c.dead_after_misses == 0 {
                return Err(
                    "cluster.port, heartbeat_interval_ms, dead_after_misses must be positive"
                        .into(),
                );
            }
            if c.data_addr == c.partner_data_addr {
                return Err("cluster.data_addr and partner_data_addr must differ".into());
            }
        }
        let max_failed = crate::smb::session::MAX_TRACKED_FAILURES as u32;
        if !(1..=max_failed).contains(&cfg.limits.max_failed_logons) {
            return Err(format!("limits.max_failed_logons must be 1..={max_failed}"));
        }
        Ok(cfg)
    }

    pub fn server_config(&self) -> crate::smb::ServerConfig {
        crate::smb::ServerConfig {
            netbios_name: self.smb.netbios_name.to_uppercase(),
            domain: self.smb.workgroup.to_uppercase(),
            signing_required: self.smb.signing_required,
            max_credits: self.limits.max_credits,
            max_sessions_per_conn: self.limits.max_sessions_per_connection,
            max_opens_per_conn: self.limits.max_opens_per_connection,
            max_pending_per_conn: self.limits.max_pending_per_connection,
            max_failed_logons: self.limits.max_failed_logons,
            failed_logon_window_secs: self.limits.failed_logon_window_secs,
            torture_fsctls: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_configs_in_repo_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../board-configs");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                BoardConfig::load(&p).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 2, "expected the lab board and a real board");
    }

    #[test]
    fn errors_are_clear() {
        assert!(
            BoardConfig::parse("[board]\nname='x'\n[smb]\nnetbios_name='way-too-long-a-name'")
                .unwrap_err()
                .contains("netbios_name")
        );
        assert!(BoardConfig::parse("[board]\nname='x'\nbogus=1").is_err());
        let c = BoardConfig::parse("[board]\nname='x'").unwrap();
        assert_eq!(c.smb.listen[0].port(), 445);
        assert!(c.smb.signing_required);
        assert!(c.cluster.is_none());
    }

    const PAIR: &str = "[board]\nname='x'\n[network]\ndata_nic='eth0'\nheartbeat_nic='eth1'\n\
        [cluster]\nnode='b'\ndata_addr='192.0.2.12'\npartner_data_addr='192.0.2.11'\n\
        vip='192.0.2.100/24'\ntiebreaker='192.0.2.1'\n";

    #[test]
    fn cluster_section() {
        let c = BoardConfig::parse(PAIR).unwrap();
        let k = c.cluster.unwrap();
        assert_eq!(k.node_id().unwrap(), duet_cluster::NodeId::B);
        assert_eq!(k.vip().unwrap(), ("192.0.2.100".parse().unwrap(), 24));
        assert_eq!(k.heartbeat_interval_ms, 100);
        assert!(k.storage_role().is_none());
        let shared = format!("{PAIR}[cluster.storage]\ndriver='shared-dir'\ndir='/srv/lab'\n");
        let k = BoardConfig::parse(&shared).unwrap().cluster.unwrap();
        assert!(matches!(
            k.storage_role(),
            Some(duet_hal::storage_role::StorageRoleConfig::SharedDir(_))
        ));
        for (bad, word) in [
            (PAIR.replace("node='b'", "node='c'"), "cluster.node"),
            (PAIR.replace("/24", "/40"), "cluster.vip"),
            (PAIR.replace("/24", ""), "cluster.vip"),
            (PAIR.replace("heartbeat_nic='eth1'", ""), "heartbeat_nic"),
            (PAIR.replace("192.0.2.11'", "192.0.2.12'"), "must differ"),
        ] {
            let e = BoardConfig::parse(&bad).unwrap_err();
            assert!(e.contains(word), "{e}");
        }
    }
}
