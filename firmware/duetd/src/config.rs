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
    }
}
