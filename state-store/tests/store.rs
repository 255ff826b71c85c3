//! Behaviour of `Store` through its public API.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use duet_state::{nt_hash, ChangeKind, NtHash, ShareConfig, Store, StoreError, STATE_FILE};

fn share(name: &str, path: &str) -> ShareConfig {
    ShareConfig {
        name: name.into(),
        path: PathBuf::from(path),
        comment: format!("{name} comment"),
        read_only: false,
    }
}

fn open(dir: &Path) -> Store {
    Store::open(dir).expect("open store")
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
}

#[test]
fn open_creates_dir_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/state");
    let store = open(&dir);
    assert!(dir.join(STATE_FILE).is_file());
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(STATE_FILE)), 0o600);
    assert_eq!(store.path(), dir.join(STATE_FILE));
    assert_eq!(store.last_seq().unwrap(), 0);
    assert!(store.list_users().unwrap().is_empty());
    assert!(store.list_shares().unwrap().is_empty());
}

#[test]
fn users_round_trip_case_insensitively() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    store.add_user("Alice", "s3cret").unwrap();
    store.add_user("bob", "other").unwrap();

    assert_eq!(
        store.user_nt_hash("alice").unwrap(),
        Some(nt_hash("s3cret"))
    );
    assert_eq!(
        store.user_nt_hash("ALICE").unwrap(),
        Some(nt_hash("s3cret"))
    );
    assert_eq!(store.user_nt_hash("carol").unwrap(), None);

    let users = store.list_users().unwrap();
    let names: Vec<_> = users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["Alice", "bob"]);
    assert!(users.iter().all(|u| u.created > 1_600_000_000));

    match store.add_user("ALICE", "x") {
        Err(StoreError::AlreadyExists { what: "user", name }) => assert_eq!(name, "Alice"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }

    store.set_password("aLiCe", "new").unwrap();
    assert_eq!(store.user_nt_hash("alice").unwrap(), Some(nt_hash("new")));
    // The display name and creation time survive a password change.
    assert_eq!(store.list_users().unwrap()[0], users[0]);

    store.remove_user("ALICE").unwrap();
    assert_eq!(store.user_nt_hash("alice").unwrap(), None);
    assert!(matches!(
        store.remove_user("alice"),
        Err(StoreError::NotFound { what: "user", .. })
    ));
    assert!(matches!(
        store.set_password("nobody", "pw"),
        Err(StoreError::NotFound { what: "user", .. })
    ));
}

#[test]
fn password_is_never_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let password = "Very-Distinctive-Passphrase-1234";
    store.add_user("alice", password).unwrap();
    drop(store);
    let bytes = fs::read(tmp.path().join(STATE_FILE)).unwrap();
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    for needle in [password.as_bytes(), utf16.as_slice()] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    }
}

#[test]
fn validation_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    for bad in ["", "a@b", "a/b", "x:y", "tab\there", &"n".repeat(65)] {
        assert!(
            matches!(
                store.add_user(bad, "pw"),
                Err(StoreError::Invalid {
                    what: "user name",
                    ..
                })
            ),
            "user {bad:?}"
        );
    }
    assert!(matches!(
        store.add_user("alice", ""),
        Err(StoreError::InvalidPassword { .. })
    ));
    for bad in ["IPC$", "ipc$", "a/b", "", &"s".repeat(81)] {
        assert!(
            matches!(
                store.add_share(&share(bad, "/srv/x")),
                Err(StoreError::Invalid {
                    what: "share name",
                    ..
                })
            ),
            "share {bad:?}"
        );
    }
    assert!(matches!(
        store.add_share(&share("docs", "relative/path")),
        Err(StoreError::Invalid {
            what: "share path",
            ..
        })
    ));
    let mut s = share("docs", "/srv/docs");
    s.comment = "line\nbreak".into();
    assert!(store.add_share(&s).is_err());
    assert!(store.set_setting("bad key", "v").is_err());
    assert!(store.set_setting("k", "bad\nvalue").is_err());
    // Nothing was committed by any of the failures.
    assert_eq!(store.last_seq().unwrap(), 0);
    // Messages are readable one-liners.
    let msg = store.add_user("a@b", "pw").unwrap_err().to_string();
    assert!(msg.starts_with("invalid user name \"a@b\""), "{msg}");
}

#[test]
fn shares_round_trip_case_insensitively() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let docs = ShareConfig {
        name: "Docs".into(),
        path: "/srv/docs".into(),
        comment: "Team documents".into(),
        read_only: true,
    };
    store.add_share(&docs).unwrap();
    store.add_share(&share("media$", "/srv/media")).unwrap();
    assert_eq!(store.share("docs").unwrap(), Some(docs.clone()));
    assert_eq!(store.share("DOCS").unwrap(), Some(docs.clone()));
    assert_eq!(store.share("nope").unwrap(), None);
    assert!(matches!(
        store.add_share(&share("DOCS", "/elsewhere")),
        Err(StoreError::AlreadyExists { what: "share", .. })
    ));
    let names: Vec<_> = store
        .list_shares()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["Docs", "media$"]);
    store.remove_share("dOcS").unwrap();
    assert_eq!(store.share("docs").unwrap(), None);
    assert!(matches!(
        store.remove_share("docs"),
        Err(StoreError::NotFound { what: "share", .. })
    ));
}

#[test]
fn settings_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    assert_eq!(store.setting("server.name").unwrap(), None);
    store.set_setting("server.name", "NAS one").unwrap();
    store.set_setting("server.name", "NAS two").unwrap();
    store.set_setting("empty", "").unwrap();
    assert_eq!(
        store.setting("server.name").unwrap().as_deref(),
        Some("NAS two")
    );
    assert_eq!(store.setting("empty").unwrap().as_deref(), Some(""));
    // Keys are case-sensitive.
    assert_eq!(store.setting("Server.Name").unwrap(), None);
}

#[test]
fn reopen_persists() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open(tmp.path());
        store.add_user("alice", "pw").unwrap();
        store.add_share(&share("docs", "/srv/docs")).unwrap();
        store.set_setting("k", "v").unwrap();
    }
    let store = open(tmp.path());
    assert_eq!(store.user_nt_hash("ALICE").unwrap(), Some(nt_hash("pw")));
    assert_eq!(
        store.share("docs").unwrap(),
        Some(share("docs", "/srv/docs"))
    );
    assert_eq!(store.setting("k").unwrap().as_deref(), Some("v"));
    assert_eq!(store.last_seq().unwrap(), 3);
    store.add_user("bob", "pw").unwrap();
    assert_eq!(store.last_seq().unwrap(), 4);
}

#[test]
fn second_open_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let _first = open(tmp.path());
    match Store::open(tmp.path()) {
        Err(StoreError::Locked { path }) => assert_eq!(path, tmp.path().join(STATE_FILE)),
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn change_feed_order_and_content() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    store.add_user("Alice", "pw1").unwrap();
    store.add_share(&share("docs", "/srv/docs")).unwrap();
    store.set_password("alice", "pw2").unwrap();
    store.set_setting("k", "v").unwrap();
    store.remove_share("DOCS").unwrap();
    store.remove_user("alice").unwrap();
    // Failed operations record nothing.
    assert!(store.remove_user("alice").is_err());
    assert_eq!(store.last_seq().unwrap(), 6);

    let all = store.changes_since(0, 100).unwrap();
    let seqs: Vec<u64> = all.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    assert!(matches!(
        &all[0].kind,
        ChangeKind::UserPut { name, nt_hash: NtHash(h), .. } if name == "Alice" && *h == nt_hash("pw1")
    ));
    assert_eq!(
        all[1].kind,
        ChangeKind::SharePut {
            share: share("docs", "/srv/docs")
        }
    );
    assert!(matches!(
        &all[2].kind,
        ChangeKind::UserPut { name, nt_hash: NtHash(h), .. } if name == "Alice" && *h == nt_hash("pw2")
    ));
    assert_eq!(
        all[3].kind,
        ChangeKind::SettingPut {
            key: "k".into(),
            value: "v".into()
        }
    );
    assert_eq!(
        all[4].kind,
        ChangeKind::ShareRemoved {
            name: "DOCS".into()
        }
    );
    assert_eq!(
        all[5].kind,
        ChangeKind::UserRemoved {
            name: "alice".into()
        }
    );

    // Paging.
    let page = store.changes_since(2, 2).unwrap();
    assert_eq!(page.iter().map(|c| c.seq).collect::<Vec<_>>(), [3, 4]);
    assert!(store.changes_since(6, 10).unwrap().is_empty());
    assert!(store.changes_since(0, 0).unwrap().is_empty());
    assert!(store.changes_since(u64::MAX, 10).unwrap().is_empty());
}

#[test]
fn mirror_replays_feed() {
    let tmp = tempfile::tempdir().unwrap();
    let primary = open(&tmp.path().join("primary"));
    let mirror = open(&tmp.path().join("mirror"));
    primary.add_user("Alice", "pw").unwrap();
    primary.add_user("bob", "pw").unwrap();
    primary.add_share(&share("docs", "/srv/docs")).unwrap();
    primary.set_setting("k", "v").unwrap();
    primary.set_password("ALICE", "pw2").unwrap();
    primary.remove_user("bob").unwrap();

    // Ship in pages, as a replication loop would.
    loop {
        let from = mirror.last_seq().unwrap();
        let batch = primary.changes_since(from, 2).unwrap();
        if batch.is_empty() {
            break;
        }
        for change in &batch {
            mirror.apply_change(change).unwrap();
        }
    }

    assert_eq!(mirror.last_seq().unwrap(), primary.last_seq().unwrap());
    assert_eq!(mirror.list_users().unwrap(), primary.list_users().unwrap());
    assert_eq!(mirror.user_nt_hash("alice").unwrap(), Some(nt_hash("pw2")));
    assert_eq!(
        mirror.list_shares().unwrap(),
        primary.list_shares().unwrap()
    );
    assert_eq!(mirror.setting("k").unwrap().as_deref(), Some("v"));
    assert_eq!(
        mirror.changes_since(0, 100).unwrap(),
        primary.changes_since(0, 100).unwrap()
    );

    // Repeats and gaps are refused, and change nothing.
    let first = primary.changes_since(0, 1).unwrap().remove(0);
    assert!(matches!(
        mirror.apply_change(&first),
        Err(StoreError::ChangeOutOfOrder {
            last_seq: 6,
            got: 1,
            ..
        })
    ));
    let mut gap = first.clone();
    gap.seq = 9;
    assert!(matches!(
        mirror.apply_change(&gap),
        Err(StoreError::ChangeOutOfOrder { .. })
    ));
    // A change from a partner is validated like a local operation.
    let bad = duet_state::Change {
        seq: 7,
        kind: ChangeKind::UserRemoved { name: "a/b".into() },
    };
    assert!(matches!(
        mirror.apply_change(&bad),
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(mirror.last_seq().unwrap(), 6);
}

fn assert_names_file(err: &StoreError, file: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&file.display().to_string()),
        "error does not name {}: {msg}",
        file.display()
    );
}

#[test]
fn garbage_file_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(STATE_FILE);
    let garbage: Vec<u8> = (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    fs::write(&file, &garbage).unwrap();
    let err = Store::open(tmp.path()).unwrap_err();
    eprintln!("garbage: {err}");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert_names_file(&err, &file);
    // The file was left alone.
    assert_eq!(fs::read(&file).unwrap(), garbage);

    // Short junk too.
    fs::write(&file, b"not a database\n").unwrap();
    let err = Store::open(tmp.path()).unwrap_err();
    assert_names_file(&err, &file);
    assert_eq!(fs::read(&file).unwrap(), b"not a database\n");
}

#[test]
fn truncated_file_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(STATE_FILE);
    {
        let store = open(tmp.path());
        for i in 0..50 {
            store.add_user(&format!("user{i}"), "pw").unwrap();
        }
    }
    let full = fs::read(&file).unwrap();
    for len in [full.len() / 2, 4096, 100] {
        fs::write(&file, &full[..len]).unwrap();
        let err = Store::open(tmp.path()).unwrap_err();
        eprintln!("truncated to {len}: {err}");
        assert!(
            matches!(err, StoreError::Corrupt { .. }),
            "len {len}: {err:?}"
        );
        assert_names_file(&err, &file);
        assert_eq!(fs::read(&file).unwrap().len(), len, "file was modified");
    }
}

#[test]
fn error_for_unusable_dir_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let not_a_dir = tmp.path().join("plain-file");
    fs::write(&not_a_dir, b"x").unwrap();
    let err = Store::open(&not_a_dir).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert_names_file(&err, &not_a_dir);
}

#[test]
fn damaged_pages_are_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(STATE_FILE);
    {
        let store = open(tmp.path());
        for i in 0..50 {
            store.add_user(&format!("user{i}"), "pw").unwrap();
            store
                .add_share(&share(&format!("share{i}"), "/srv/x"))
                .unwrap();
        }
    }
    let pristine = fs::read(&file).unwrap();
    let mut refused = 0;
    for offset in (0..pristine.len()).step_by(4096).map(|o| o + 200) {
        let mut damaged = pristine.clone();
        for b in &mut damaged[offset..(offset + 64).min(pristine.len())] {
            *b ^= 0x5a;
        }
        fs::write(&file, &damaged).unwrap();
        match Store::open(tmp.path()) {
            Err(err) => {
                refused += 1;
                assert!(
                    matches!(err, StoreError::Corrupt { .. }),
                    "offset {offset}: {err:?}"
                );
                assert_names_file(&err, &file);
                assert!(
                    fs::read(&file).unwrap() == damaged,
                    "offset {offset}: file modified"
                );
            }
            // A page no committed tree uses: everything must still read back.
            Ok(store) => {
                assert_eq!(store.list_users().unwrap().len(), 50, "offset {offset}");
                assert_eq!(store.list_shares().unwrap().len(), 50, "offset {offset}");
            }
        }
    }
    assert!(refused > 0, "no damage was detected at all");
}
