//! The newcomer's demo node: one command makes a state directory with a share and a user
//! whose password it prints, then serves on loopback.
//!
//! Owns: first-run setup of a throwaway node. Never touches an existing user's password.

use std::path::{Path, PathBuf};

use duet_state::{ShareConfig, Store};

pub struct Demo {
    pub state_dir: PathBuf,
    pub share_dir: PathBuf,
    pub user: String,
    /// The password, when this run created the user (None when it already existed).
    pub password: Option<String>,
}

/// Creates (or reuses) DIR/state and DIR/share with user `demo` and share `share`.
pub fn prepare(dir: &Path) -> Result<Demo, String> {
    let share_dir = dir.join("share");
    let state_dir = dir.join("state");
    std::fs::create_dir_all(&share_dir)
        .map_err(|e| format!("cannot create {}: {e}", share_dir.display()))?;
    let share_dir = share_dir
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", share_dir.display()))?;
    let store = Store::open(&state_dir).map_err(|e| e.to_string())?;
    let user = "demo".to_string();
    let mut password = None;
    if store
        .user_nt_hash(&user)
        .map_err(|e| e.to_string())?
        .is_none()
    {
        let pw = random_password();
        store.add_user(&user, &pw).map_err(|e| e.to_string())?;
        password = Some(pw);
    }
    if store.share("share").map_err(|e| e.to_string())?.is_none() {
        store
            .add_share(&ShareConfig {
                name: "share".into(),
                path: share_dir.clone(),
                comment: "duet demo share".into(),
                read_only: false,
            })
            .map_err(|e| e.to_string())?;
    }
    Ok(Demo {
        state_dir,
        share_dir,
        user,
        password,
    })
}

fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut raw = [0u8; 14];
    crate::util::random_bytes(&mut raw);
    raw.iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}
