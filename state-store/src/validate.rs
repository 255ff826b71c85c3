//! Validation of everything a caller or a partner node hands to the store, and the case
//! folding that makes user and share names case-insensitive.
//!
//! Owns the rules for what may be stored. Must never touch the database. `fold` defines the
//! table keys: changing it is an on-disk format change (a schema version bump with migration).

use std::path::{Component, Path};

use crate::model::{Caching, ClientConnection, DurableOpen, DurableVersion, SessionRecord};
use crate::StoreError;

pub(crate) const USER_NAME_MAX: usize = 64;
pub(crate) const SHARE_NAME_MAX: usize = 80;
pub(crate) const SHARE_PATH_MAX: usize = 4096;
pub(crate) const COMMENT_MAX: usize = 256;
/// Windows limits passwords to 256 UTF-16 code units.
pub(crate) const PASSWORD_MAX_UTF16: usize = 256;
pub(crate) const SETTING_KEY_MAX: usize = 128;
pub(crate) const SETTING_VALUE_MAX: usize = 4096;
/// SMB2 CREATE names are at most 32767 UTF-16 code units.
pub(crate) const OPEN_PATH_MAX_UTF16: usize = 32767;
/// User, domain and SID strings of durable opens and sessions.
pub(crate) const IDENTITY_MAX: usize = 256;
/// Byte-range locks kept per durable open.
pub(crate) const LOCKS_PER_OPEN_MAX: usize = 65536;

/// What a user or share name may be.
struct NameRules {
    what: &'static str,
    max_chars: usize,
    too_long: &'static str,
    forbidden: &'static [char],
    forbidden_msg: &'static str,
}

/// Windows' rules for account names.
const USER_RULES: NameRules = NameRules {
    what: "user name",
    max_chars: USER_NAME_MAX,
    too_long: "longer than 64 characters",
    forbidden: &[
        '/', '\\', '[', ']', ':', ';', '|', '=', ',', '+', '*', '?', '<', '>', '"', '@',
    ],
    forbidden_msg: "contains one of / \\ [ ] : ; | = , + * ? < > \" @",
};

/// Windows' rules for share names.
const SHARE_RULES: NameRules = NameRules {
    what: "share name",
    max_chars: SHARE_NAME_MAX,
    too_long: "longer than 80 characters",
    forbidden: &[
        '/', '\\', '[', ']', ':', ';', '|', '=', ',', '+', '*', '?', '<', '>', '"',
    ],
    forbidden_msg: "contains one of / \\ [ ] : ; | = , + * ? < > \"",
};

/// Case-folds a user or share name into its table key: each character is upper-cased when
/// that yields exactly one character (as Windows' one-to-one upcase table does), otherwise kept.
pub(crate) fn fold(name: &str) -> String {
    name.chars()
        .map(|c| {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

fn invalid(what: &'static str, value: &str, reason: &'static str) -> StoreError {
    StoreError::Invalid {
        what,
        value: value.to_owned(),
        reason,
    }
}

fn check_name(rules: &NameRules, name: &str) -> Result<(), StoreError> {
    let what = rules.what;
    let len = name.chars().count();
    if len == 0 {
        return Err(invalid(what, name, "must not be empty"));
    }
    if len > rules.max_chars {
        return Err(invalid(what, name, rules.too_long));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(what, name, "contains a control character"));
    }
    if name.contains(rules.forbidden) {
        return Err(invalid(what, name, rules.forbidden_msg));
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(invalid(what, name, "starts or ends with white space"));
    }
    if name.chars().all(|c| c == '.') {
        return Err(invalid(what, name, "consists only of dots"));
    }
    Ok(())
}

pub(crate) fn user_name(name: &str) -> Result<(), StoreError> {
    check_name(&USER_RULES, name)
}

pub(crate) fn share_name(name: &str) -> Result<(), StoreError> {
    check_name(&SHARE_RULES, name)?;
    if fold(name) == "IPC$" {
        return Err(invalid("share name", name, "IPC$ is reserved"));
    }
    Ok(())
}

/// Returns the path as UTF-8 (the form it is stored in).
pub(crate) fn share_path(path: &Path) -> Result<&str, StoreError> {
    let shown = path.to_string_lossy();
    let Some(s) = path.to_str() else {
        return Err(invalid("share path", &shown, "is not valid UTF-8"));
    };
    if !path.is_absolute() {
        return Err(invalid("share path", s, "must be absolute"));
    }
    if s.len() > SHARE_PATH_MAX {
        return Err(invalid("share path", s, "longer than 4096 bytes"));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid("share path", s, "contains a control character"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(invalid("share path", s, "must not contain '..'"));
    }
    Ok(s)
}

pub(crate) fn comment(comment: &str) -> Result<(), StoreError> {
    if comment.chars().count() > COMMENT_MAX {
        return Err(invalid(
            "share comment",
            comment,
            "longer than 256 characters",
        ));
    }
    if comment.chars().any(char::is_control) {
        return Err(invalid(
            "share comment",
            comment,
            "contains a control character",
        ));
    }
    Ok(())
}

pub(crate) fn password(password: &str) -> Result<(), StoreError> {
    if password.is_empty() {
        return Err(StoreError::InvalidPassword {
            reason: "must not be empty",
        });
    }
    if password.encode_utf16().count() > PASSWORD_MAX_UTF16 {
        return Err(StoreError::InvalidPassword {
            reason: "longer than 256 characters",
        });
    }
    Ok(())
}

pub(crate) fn setting_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(invalid("setting key", key, "must not be empty"));
    }
    if key.len() > SETTING_KEY_MAX {
        return Err(invalid("setting key", key, "longer than 128 characters"));
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid(
            "setting key",
            key,
            "may only contain ASCII letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

pub(crate) fn setting_value(value: &str) -> Result<(), StoreError> {
    if value.len() > SETTING_VALUE_MAX {
        return Err(invalid("setting value", value, "longer than 4096 bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(
            "setting value",
            value,
            "contains a control character",
        ));
    }
    Ok(())
}

fn identity(what: &'static str, value: &str, may_be_empty: bool) -> Result<(), StoreError> {
    if !may_be_empty && value.is_empty() {
        return Err(invalid(what, value, "must not be empty"));
    }
    if value.chars().count() > IDENTITY_MAX {
        return Err(invalid(what, value, "longer than 256 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(what, value, "contains a control character"));
    }
    Ok(())
}

/// A SID string: `S-` then at least two `-`-separated decimal numbers (`S-1-5-21-...`).
fn sid(value: &str) -> Result<(), StoreError> {
    let parts = value.strip_prefix("S-").map(|rest| rest.split('-'));
    let well_formed = parts.is_some_and(|parts| {
        let mut n = 0;
        for p in parts {
            if p.is_empty() || p.len() > 20 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            n += 1;
        }
        (2..=17).contains(&n)
    });
    if !well_formed {
        return Err(invalid("owner SID", value, "is not a SID string (S-1-...)"));
    }
    Ok(())
}

pub(crate) fn durable_open(open: &DurableOpen) -> Result<(), StoreError> {
    identity("owner user name", &open.owner_user, false)?;
    sid(&open.owner_sid)?;
    share_name(&open.share)?;
    if open.path.encode_utf16().count() > OPEN_PATH_MAX_UTF16 {
        return Err(invalid(
            "open path",
            &open.path,
            "longer than 32767 UTF-16 code units",
        ));
    }
    if open.path.chars().any(char::is_control) {
        return Err(invalid(
            "open path",
            &open.path,
            "contains a control character",
        ));
    }
    if open.persistent && open.version != DurableVersion::V2 {
        return Err(invalid(
            "durable open",
            &format!("{:#x}", open.persistent_id),
            "only a v2 durable open can be persistent",
        ));
    }
    if let Caching::Lease(lease) = &open.caching {
        let value = || format!("{:02x?}", lease.key);
        if !matches!(lease.version, 1 | 2) {
            return Err(invalid("lease", &value(), "version must be 1 or 2"));
        }
        if lease.state & !0x7 != 0 {
            return Err(invalid(
                "lease",
                &value(),
                "state has bits other than READ, HANDLE and WRITE caching",
            ));
        }
        if lease.version == 1 && lease.parent_key.is_some() {
            return Err(invalid("lease", &value(), "a v1 lease has no parent key"));
        }
    }
    if open.locks.len() > LOCKS_PER_OPEN_MAX {
        return Err(invalid(
            "durable open",
            &format!("{:#x}", open.persistent_id),
            "holds more than 65536 byte-range locks",
        ));
    }
    Ok(())
}

pub(crate) fn session(session: &SessionRecord) -> Result<(), StoreError> {
    identity("session user name", &session.user, true)?;
    identity("session domain", &session.domain, true)?;
    if !matches!(session.dialect, 0x0202 | 0x0210 | 0x0300 | 0x0302 | 0x0311) {
        return Err(invalid(
            "session dialect",
            &format!("{:#06x}", session.dialect),
            "is not an SMB2/3 dialect",
        ));
    }
    Ok(())
}

pub(crate) fn connection(_connection: &ClientConnection) -> Result<(), StoreError> {
    // Every field is a plain number or address; nothing can be out of range.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_is_case_insensitive_and_one_to_one() {
        assert_eq!(fold("Alice"), fold("aLICE"));
        assert_eq!(fold("Jürgen"), fold("JÜRGEN"));
        // 'ß' upper-cases to two characters; it is kept, as Windows does.
        assert_eq!(fold("straße"), "STRAßE");
    }

    #[test]
    fn user_names() {
        assert!(user_name("alice").is_ok());
        assert!(user_name("Jürgen Müller").is_ok());
        assert!(user_name(&"x".repeat(64)).is_ok());
        for bad in [
            "", "a@b", "a/b", "a\\b", "a\tb", "a\nb", " alice", "alice ", "..", "a\"b",
        ] {
            assert!(
                matches!(user_name(bad), Err(StoreError::Invalid { .. })),
                "{bad:?}"
            );
        }
        assert!(user_name(&"x".repeat(65)).is_err());
        // Length counts characters, not bytes.
        assert!(user_name(&"ü".repeat(64)).is_ok());
    }

    #[test]
    fn share_names() {
        assert!(share_name("docs").is_ok());
        assert!(share_name("admin$").is_ok());
        assert!(share_name("me@home").is_ok());
        assert!(share_name(&"s".repeat(80)).is_ok());
        assert!(share_name(&"s".repeat(81)).is_err());
        assert!(share_name("IPC$").is_err());
        assert!(share_name("ipc$").is_err());
        assert!(share_name("a:b").is_err());
        assert!(share_name("").is_err());
    }

    #[test]
    fn paths_comments_settings_passwords() {
        assert_eq!(share_path(Path::new("/srv/docs")).ok(), Some("/srv/docs"));
        assert!(share_path(Path::new("srv/docs")).is_err());
        assert!(share_path(Path::new("/srv/../etc")).is_err());
        assert!(comment("Team documents").is_ok());
        assert!(comment("a\nb").is_err());
        assert!(setting_key("server.name").is_ok());
        assert!(setting_key("server name").is_err());
        assert!(setting_key("").is_err());
        assert!(setting_value("").is_ok());
        assert!(setting_value("a\nb").is_err());
        assert!(password("x").is_ok());
        assert!(matches!(
            password(""),
            Err(StoreError::InvalidPassword { .. })
        ));
        assert!(password(&"p".repeat(257)).is_err());
    }

    #[test]
    fn sids() {
        assert!(sid("S-1-5-21-1004336348-1177238915-682003330-1001").is_ok());
        assert!(sid("S-1-1-0").is_ok());
        for bad in [
            "", "S-", "S-1", "S-1-", "s-1-5", "S-1-x", "S-1--5", "1-5-21",
        ] {
            assert!(sid(bad).is_err(), "{bad:?}");
        }
    }
}
