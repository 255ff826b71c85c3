//! duetd: the duet NAS daemon. `smb` is the protocol core (no I/O of its own), `server` the
//! tokio shell around it, `config` the board configuration, `wire` the SMB2 byte layouts.

pub mod cluster;
pub mod config;
pub mod demo;
pub mod server;
pub mod service;
pub mod smb;
pub mod util;
pub mod wire;
