//! Durable-handle state through the public API: durable opens, sessions, client connections,
//! the group commit, feed pruning and snapshots.

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::thread;

use duet_state::{
    ByteRangeLock, Caching, Change, ChangeKind, ClientConnection, DurableOpen, DurableVersion,
    FileIdentity, Lease, SessionRecord, ShareConfig, Snapshot, Store, StoreError,
};

fn open_store(dir: &Path) -> Store {
    Store::open(dir).expect("open store")
}

fn durable_open(id: u64) -> DurableOpen {
    let mut lock_sequences = [0u8; 64];
    lock_sequences[3] = 0x15;
    lock_sequences[63] = 0xff;
    DurableOpen {
        persistent_id: id,
        volatile_id: id ^ 0xdead_beef,
        create_guid: [id as u8; 16],
        client_guid: [0xc1; 16],
        owner_user: "alice".into(),
        owner_sid: "S-1-5-21-1004336348-1177238915-682003330-1001".into(),
        share: "share".into(),
        path: format!("dir\\file {id}.txt"),
        granted_access: 0x0012_019f,
        share_access: 0x7,
        create_options: 0x40,
        version: DurableVersion::V2,
        persistent: false,
        caching: Caching::Lease(Lease {
            key: [0x1e; 16],
            state: 0x7,
            epoch: 3,
            version: 2,
            parent_key: Some([0x9a; 16]),
            flags: 0x4,
        }),
        locks: vec![
            ByteRangeLock {
                offset: 0,
                length: 10,
                exclusive: true,
                owner: 1,
            },
            ByteRangeLock {
                offset: u64::MAX - 1,
                length: 1,
                exclusive: false,
                owner: 2,
            },
        ],
        lock_sequences,
        timeout_ms: 60_000,
        disconnected_at_ms: None,
        app_instance_id: Some([0xa1; 16]),
        position: 4096,
        file: FileIdentity {
            dev: 0x803,
            inode: 1_234_567 + id,
            creation_time: 133_500_000_000_000_000,
        },
    }
}

fn session(id: u64) -> SessionRecord {
    SessionRecord {
        session_id: id,
        user: "alice".into(),
        domain: "WORKGROUP".into(),
        client_guid: [0xc1; 16],
        dialect: 0x0311,
    }
}

fn connection(id: u64) -> ClientConnection {
    ClientConnection {
        id,
        client: "192.0.2.10:49152".parse().unwrap(),
        server: "192.0.2.1:445".parse().unwrap(),
        client_guid: [0xc1; 16],
        connected_since_ms: 1_700_000_000_000 + id,
    }
}

fn kinds(store: &Store, since: u64) -> Vec<ChangeKind> {
    store
        .changes_since(since, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|c| c.kind)
        .collect()
}

#[test]
fn durable_open_put_get_list_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    assert_eq!(store.durable_open(7).unwrap(), None);

    let mut a = durable_open(7);
    let mut b = durable_open(3);
    b.version = DurableVersion::V1;
    b.caching = Caching::Batch;
    b.create_guid = [0; 16];
    b.app_instance_id = None;
    b.locks.clear();
    assert_eq!(store.put_durable_open(&a).unwrap(), 1);
    assert_eq!(store.put_durable_open(&b).unwrap(), 2);
    assert_eq!(store.durable_open(7).unwrap(), Some(a.clone()));
    assert_eq!(store.durable_open(3).unwrap(), Some(b.clone()));
    // Ordered by persistent id.
    assert_eq!(store.list_durable_opens().unwrap(), [b.clone(), a.clone()]);

    // A put replaces the open (new state after a lock, a lease break, a disconnect...).
    a.position = 1 << 40;
    a.caching = Caching::LevelII;
    a.disconnected_at_ms = Some(1_700_000_000_000);
    assert_eq!(store.put_durable_open(&a).unwrap(), 3);
    assert_eq!(store.durable_open(7).unwrap(), Some(a.clone()));
    assert_eq!(store.list_durable_opens().unwrap().len(), 2);

    assert_eq!(store.remove_durable_open(3).unwrap(), Some(4));
    // Removing what is not there records nothing.
    assert_eq!(store.remove_durable_open(3).unwrap(), None);
    assert_eq!(store.last_seq().unwrap(), 4);
    assert_eq!(store.list_durable_opens().unwrap(), [a.clone()]);

    // Each change carries the complete record.
    let mut first = durable_open(7);
    first.position = 4096;
    assert_eq!(
        kinds(&store, 0),
        [
            ChangeKind::DurableOpenPut {
                open: Box::new(first)
            },
            ChangeKind::DurableOpenPut {
                open: Box::new(b.clone())
            },
            ChangeKind::DurableOpenPut {
                open: Box::new(a.clone())
            },
            ChangeKind::DurableOpenRemoved { persistent_id: 3 },
        ]
    );

    // Everything survives a reopen.
    drop(store);
    let store = open_store(tmp.path());
    assert_eq!(store.list_durable_opens().unwrap(), [a]);
    assert_eq!(store.last_seq().unwrap(), 4);
}

#[test]
fn disconnected_opens_expire() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t0 = 1_700_000_000_000u64;
    // id -> (disconnected at, timeout)
    let cases = [
        (1, None, 60_000),
        (2, Some(t0), 60_000),
        (3, Some(t0 - 30_000), 60_000),
        (4, Some(t0), 0),
        (5, Some(u64::MAX - 5), u32::MAX),
    ];
    for (id, at, timeout) in cases {
        let mut o = durable_open(id);
        o.disconnected_at_ms = at;
        o.timeout_ms = timeout;
        store.put_durable_open(&o).unwrap();
    }
    let ids = |v: Vec<DurableOpen>| v.into_iter().map(|o| o.persistent_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.durable_opens_disconnected().unwrap()),
        [2, 3, 4, 5]
    );
    assert_eq!(durable_open(1).expires_at_ms(), None);

    // Nothing has run out before t0.
    assert!(store.expire_durable_opens(t0 - 1).unwrap().is_empty());
    let before = store.last_seq().unwrap();
    assert_eq!(before, 5);
    // At t0 the zero timeout has; at t0 + 30 s the open that left 30 s earlier.
    assert_eq!(ids(store.expire_durable_opens(t0).unwrap()), [4]);
    assert_eq!(ids(store.expire_durable_opens(t0 + 30_000).unwrap()), [3]);
    assert_eq!(ids(store.expire_durable_opens(t0 + 59_999).unwrap()), []);
    let removed = store.expire_durable_opens(t0 + 60_000).unwrap();
    assert_eq!(removed[0].disconnected_at_ms, Some(t0));
    assert_eq!(ids(removed), [2]);
    // The connected open and the one whose expiry saturates stay.
    assert_eq!(ids(store.list_durable_opens().unwrap()), [1, 5]);
    assert_eq!(
        kinds(&store, before),
        [4, 3, 2].map(|persistent_id| ChangeKind::DurableOpenRemoved { persistent_id })
    );
}

#[test]
fn startup_disconnects_every_connected_open() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = 1_700_000_000_000u64;
    {
        let store = open_store(tmp.path());
        let mut gone = durable_open(1);
        gone.disconnected_at_ms = Some(t0 - 1000);
        store.put_durable_open(&gone).unwrap();
        store.put_durable_open(&durable_open(2)).unwrap();
        store.put_durable_open(&durable_open(3)).unwrap();
    }
    let store = open_store(tmp.path());
    let changed = store.disconnect_durable_opens(t0).unwrap();
    assert_eq!(
        changed
            .iter()
            .map(|o| (o.persistent_id, o.disconnected_at_ms))
            .collect::<Vec<_>>(),
        [(2, Some(t0)), (3, Some(t0))]
    );
    let all = store.list_durable_opens().unwrap();
    assert_eq!(all[0].disconnected_at_ms, Some(t0 - 1000));
    assert_eq!(&all[1..], changed.as_slice());
    assert_eq!(store.last_seq().unwrap(), 5);
    assert!(store.disconnect_durable_opens(t0 + 1).unwrap().is_empty());
    assert_eq!(store.last_seq().unwrap(), 5);
}

#[test]
fn sessions_put_get_list_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let mut s = session(0x4000_0000_0001);
    store.put_session(&s).unwrap();
    store.put_session(&session(5)).unwrap();
    assert_eq!(store.session(0x4000_0000_0001).unwrap(), Some(s.clone()));
    assert_eq!(store.session(6).unwrap(), None);
    s.dialect = 0x0302;
    store.put_session(&s).unwrap();
    assert_eq!(store.list_sessions().unwrap(), [session(5), s.clone()]);
    assert_eq!(store.remove_session(5).unwrap(), Some(4));
    assert_eq!(store.remove_session(5).unwrap(), None);
    assert_eq!(
        kinds(&store, 2),
        [
            ChangeKind::SessionPut { session: s.clone() },
            ChangeKind::SessionRemoved { session_id: 5 }
        ]
    );
    drop(store);
    assert_eq!(open_store(tmp.path()).list_sessions().unwrap(), [s]);
}

#[test]
fn client_connections_put_get_list_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let v4 = connection(2);
    let mut v6 = connection(1);
    v6.client = SocketAddr::V6(SocketAddrV6::new(
        "fe80::1".parse::<Ipv6Addr>().unwrap(),
        50000,
        7,
        3,
    ));
    v6.server = "[2001:db8::1]:445".parse().unwrap();
    store.put_client_connection(&v4).unwrap();
    store.put_client_connection(&v6).unwrap();
    assert_eq!(store.client_connection(1).unwrap(), Some(v6.clone()));
    assert_eq!(store.client_connection(3).unwrap(), None);
    assert_eq!(
        store.list_client_connections().unwrap(),
        [v6.clone(), v4.clone()]
    );
    assert_eq!(store.remove_client_connection(2).unwrap(), Some(3));
    assert_eq!(store.remove_client_connection(2).unwrap(), None);
    assert_eq!(
        kinds(&store, 2),
        [ChangeKind::ClientConnectionRemoved { id: 2 }]
    );
    drop(store);
    // Scope id and flow info survive.
    assert_eq!(
        open_store(tmp.path()).list_client_connections().unwrap(),
        [v6]
    );
}

#[test]
fn invalid_records_are_refused_and_commit_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    type Spoil = Box<dyn Fn(&mut DurableOpen)>;
    let bad_opens: Vec<(&str, Spoil)> = vec![
        ("owner SID", Box::new(|o| o.owner_sid = "alice".into())),
        ("owner user name", Box::new(|o| o.owner_user.clear())),
        ("share name", Box::new(|o| o.share = "a/b".into())),
        ("open path", Box::new(|o| o.path = "a\nb".into())),
        ("open path", Box::new(|o| o.path = "x".repeat(32768))),
        (
            "durable open",
            Box::new(|o| {
                o.version = DurableVersion::V1;
                o.persistent = true;
            }),
        ),
        (
            "lease",
            Box::new(|o| {
                if let Caching::Lease(l) = &mut o.caching {
                    l.version = 3;
                }
            }),
        ),
        (
            "lease",
            Box::new(|o| {
                if let Caching::Lease(l) = &mut o.caching {
                    l.state = 0x8;
                }
            }),
        ),
        (
            "lease",
            Box::new(|o| {
                if let Caching::Lease(l) = &mut o.caching {
                    l.version = 1;
                }
            }),
        ),
        (
            "durable open",
            Box::new(|o| {
                o.locks = vec![o.locks[0]; 65537];
            }),
        ),
    ];
    for (what, spoil) in bad_opens {
        let mut o = durable_open(1);
        spoil(&mut o);
        match store.put_durable_open(&o) {
            Err(StoreError::Invalid { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{what}: expected Invalid, got {other:?}"),
        }
    }
    let mut s = session(1);
    s.dialect = 0x0201;
    assert!(matches!(
        store.put_session(&s),
        Err(StoreError::Invalid {
            what: "session dialect",
            ..
        })
    ));
    let mut s = session(1);
    s.user = "a\u{7}".into();
    assert!(store.put_session(&s).is_err());
    assert_eq!(store.last_seq().unwrap(), 0);
    // Limits are inclusive.
    let mut o = durable_open(1);
    o.path = "x".repeat(32767);
    o.locks = vec![o.locks[0]; 65536];
    store.put_durable_open(&o).unwrap();
    assert_eq!(store.durable_open(1).unwrap(), Some(o));
}

#[test]
fn submit_and_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let put = |id| ChangeKind::DurableOpenPut {
        open: Box::new(durable_open(id)),
    };
    let remove = |persistent_id| ChangeKind::DurableOpenRemoved { persistent_id };

    assert_eq!(store.submit(&put(1)).unwrap(), 1);
    // Users, shares and settings go through the same path.
    assert_eq!(
        store
            .submit(&ChangeKind::SettingPut {
                key: "k".into(),
                value: "v".into()
            })
            .unwrap(),
        2
    );
    assert!(matches!(
        store.submit(&remove(9)),
        Err(StoreError::NotFound {
            what: "durable open",
            ..
        })
    ));

    // A batch is atomic: a removal of a missing record fails all of it.
    match store.commit_batch(&[put(2), remove(9), put(3)]) {
        Err(StoreError::NotFound { name, .. }) => assert_eq!(name, "9"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(store.durable_open(2).unwrap(), None);
    // ... as is an invalid record anywhere in it.
    let mut bad = durable_open(4);
    bad.owner_sid.clear();
    assert!(store
        .commit_batch(&[
            put(2),
            ChangeKind::DurableOpenPut {
                open: Box::new(bad)
            }
        ])
        .is_err());
    assert_eq!(store.last_seq().unwrap(), 2);

    // Removals see the earlier changes of their batch.
    assert_eq!(
        store
            .commit_batch(&[put(2), remove(2), put(3), remove(1), put(1)])
            .unwrap(),
        [3, 4, 5, 6, 7]
    );
    assert!(matches!(
        store.commit_batch(&[remove(3), remove(3)]),
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.commit_batch(&[]).unwrap().is_empty());
    let ids: Vec<u64> = store
        .list_durable_opens()
        .unwrap()
        .iter()
        .map(|o| o.persistent_id)
        .collect();
    assert_eq!(ids, [1, 3]);
    assert_eq!(store.last_seq().unwrap(), 7);

    // Tickets.
    let tickets: Vec<_> = (10..20).map(|id| store.submit_nowait(&put(id))).collect();
    let seqs: Vec<u64> = tickets.into_iter().map(|t| t.wait().unwrap()).collect();
    assert_eq!(seqs, (8..18).collect::<Vec<_>>());
    let mut bad = durable_open(30);
    bad.share = String::new();
    let ticket = store.submit_nowait(&ChangeKind::DurableOpenPut {
        open: Box::new(bad),
    });
    assert!(ticket.is_done());
    assert!(matches!(ticket.wait(), Err(StoreError::Invalid { .. })));
    let ticket = store.submit_nowait(&remove(12));
    assert_eq!(ticket.wait().unwrap(), 18);
    let stats = store.commit_stats();
    assert!(stats.transactions >= 1 && stats.transactions <= stats.operations);
}

#[test]
fn dropping_the_store_commits_what_was_submitted() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let tickets: Vec<_> = (1..=50)
        .map(|id| {
            store.submit_nowait(&ChangeKind::DurableOpenPut {
                open: Box::new(durable_open(id)),
            })
        })
        .collect();
    drop(store);
    let seqs: Vec<u64> = tickets.into_iter().map(|t| t.wait().unwrap()).collect();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    assert_eq!(
        open_store(tmp.path()).list_durable_opens().unwrap().len(),
        50
    );
}

/// Many threads put and remove durable opens at once: every change commits once, with its
/// own sequence number, in the order each thread made them, and all of it is there after a
/// reopen.
#[test]
fn group_commit_many_threads() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 150;
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(open_store(tmp.path()));
    let start = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let mut log = Vec::new();
                for i in 0..PER_THREAD {
                    let id = (t << 32) | i;
                    let mut open = durable_open(id);
                    open.position = i;
                    let seq = store.put_durable_open(&open).unwrap();
                    log.push((seq, ChangeKind::DurableOpenPut { open: open.into() }));
                    // Remove every third one again, some through a ticket.
                    if i.is_multiple_of(3) {
                        let change = ChangeKind::DurableOpenRemoved { persistent_id: id };
                        let seq = if i.is_multiple_of(2) {
                            store.submit(&change).unwrap()
                        } else {
                            store.submit_nowait(&change).wait().unwrap()
                        };
                        log.push((seq, change));
                    }
                }
                log
            })
        })
        .collect();
    let mut all: BTreeMap<u64, ChangeKind> = BTreeMap::new();
    for h in handles {
        let log = h.join().unwrap();
        // Strictly increasing within a thread.
        assert!(log.windows(2).all(|w| w[0].0 < w[1].0));
        for (seq, kind) in log {
            assert!(
                all.insert(seq, kind).is_none(),
                "seq {seq} handed out twice"
            );
        }
    }
    let total = THREADS * (PER_THREAD + PER_THREAD.div_ceil(3));
    assert_eq!(all.len() as u64, total);
    // No gaps: 1..=total, exactly the last sequence number.
    assert_eq!(
        all.keys().copied().collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    let stats = store.commit_stats();
    eprintln!(
        "{} operations in {} transactions ({:.1} per transaction)",
        stats.operations,
        stats.transactions,
        stats.operations as f64 / stats.transactions as f64
    );
    assert_eq!(stats.operations, total);
    assert!(
        stats.transactions < stats.operations,
        "no transaction was shared"
    );
    drop(store);

    let store = open_store(tmp.path());
    assert_eq!(store.last_seq().unwrap(), total);
    // The feed holds every change under the sequence number its caller was told.
    let feed: BTreeMap<u64, ChangeKind> = store
        .changes_since(0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|c| (c.seq, c.kind))
        .collect();
    assert_eq!(feed, all);
    let expect: HashSet<u64> = (0..THREADS)
        .flat_map(|t| {
            (0..PER_THREAD)
                .filter(|i| !i.is_multiple_of(3))
                .map(move |i| (t << 32) | i)
        })
        .collect();
    let opens = store.list_durable_opens().unwrap();
    assert_eq!(opens.len(), expect.len());
    for o in opens {
        assert!(expect.contains(&o.persistent_id));
        assert_eq!(o.position, o.persistent_id & 0xffff_ffff);
    }
}

#[test]
fn concurrent_refusals_do_not_disturb_the_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(open_store(tmp.path()));
    let handles: Vec<_> = (0..6u64)
        .map(|t| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                let mut ok = 0;
                for i in 0..100u64 {
                    let id = t * 1000 + i;
                    // Odd threads remove what was never there.
                    if t % 2 == 1 {
                        assert_eq!(store.remove_durable_open(id).unwrap(), None);
                    } else {
                        store.put_durable_open(&durable_open(id)).unwrap();
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let ok: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(store.last_seq().unwrap(), ok);
    assert_eq!(store.list_durable_opens().unwrap().len() as u64, ok);
}

fn populate(store: &Store, round: u64) {
    store
        .add_user(&format!("user{round}"), &format!("pw{round}"))
        .unwrap();
    store
        .add_share(&ShareConfig {
            name: format!("share{round}"),
            path: PathBuf::from(format!("/srv/s{round}")),
            comment: String::new(),
            read_only: round.is_multiple_of(2),
        })
        .unwrap();
    store.set_setting("round", &round.to_string()).unwrap();
    for i in 0..5 {
        let mut o = durable_open(round * 10 + i);
        o.disconnected_at_ms = i.is_multiple_of(2).then_some(1000 * round);
        o.timeout_ms = 500;
        store.put_durable_open(&o).unwrap();
    }
    store.remove_durable_open(round * 10).unwrap();
    store.put_session(&session(round)).unwrap();
    store.put_client_connection(&connection(round)).unwrap();
    if round > 0 && store.session(round - 1).unwrap().is_some() {
        store.remove_session(round - 1).unwrap();
        store.remove_client_connection(round - 1).unwrap();
        store.remove_user(&format!("USER{}", round - 1)).unwrap();
        store.remove_share(&format!("share{}", round - 1)).unwrap();
        store.set_password(&format!("user{round}"), "new").unwrap();
    }
    store.expire_durable_opens(1000 * round + 400).unwrap();
}

#[test]
fn snapshot_then_tail_reproduces_the_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let primary = open_store(&tmp.path().join("primary"));
    populate(&primary, 0);
    populate(&primary, 1);
    let snap = primary.snapshot().unwrap();
    assert_eq!(snap.seq, primary.last_seq().unwrap());
    assert_eq!(snap.users.len(), 1);
    assert!(!snap.durable_opens.is_empty());
    populate(&primary, 2);
    populate(&primary, 3);
    // The primary no longer needs what the snapshot covers.
    let pruned = primary.prune_changes_before(snap.seq + 1).unwrap();
    assert_eq!(pruned, snap.seq);

    // A mirror with stale state of its own: restoring replaces all of it.
    let mirror = open_store(&tmp.path().join("mirror"));
    populate(&mirror, 7);
    mirror.restore_snapshot(&snap).unwrap();
    assert_eq!(mirror.last_seq().unwrap(), snap.seq);
    assert_eq!(mirror.snapshot().unwrap(), snap);
    assert!(matches!(
        mirror.changes_since(0, 10),
        Err(StoreError::ChangesPruned { .. })
    ));

    let mut from = snap.seq;
    loop {
        let tail = primary.changes_since(from, 7).unwrap();
        let Some(last) = tail.last() else { break };
        from = last.seq;
        mirror.apply_changes(&tail).unwrap();
    }
    let want = primary.snapshot().unwrap();
    assert_eq!(mirror.snapshot().unwrap(), want);
    assert_eq!(
        mirror.list_durable_opens().unwrap(),
        primary.list_durable_opens().unwrap()
    );
    assert_eq!(mirror.list_users().unwrap(), primary.list_users().unwrap());
    assert_eq!(
        mirror.user_nt_hash("user3").unwrap(),
        Some(duet_state::nt_hash("new"))
    );
    // And from an empty store, after a reopen of both.
    drop(mirror);
    let fresh = open_store(&tmp.path().join("fresh"));
    fresh.restore_snapshot(&snap).unwrap();
    for c in primary.changes_since(snap.seq, usize::MAX).unwrap() {
        fresh.apply_change(&c).unwrap();
    }
    drop(fresh);
    assert_eq!(
        open_store(&tmp.path().join("fresh")).snapshot().unwrap(),
        want
    );
}

#[test]
fn restore_refuses_invalid_snapshots_without_change() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    populate(&store, 1);
    let before = store.snapshot().unwrap();
    let mut bad = before.clone();
    bad.seq = 1;
    bad.durable_opens[0].owner_sid = "nope".into();
    assert!(matches!(
        store.restore_snapshot(&bad),
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(store.snapshot().unwrap(), before);
    // An empty snapshot empties the store.
    let empty = Snapshot {
        seq: 0,
        users: vec![],
        shares: vec![],
        settings: vec![],
        durable_opens: vec![],
        sessions: vec![],
        connections: vec![],
    };
    store.restore_snapshot(&empty).unwrap();
    assert_eq!(store.snapshot().unwrap(), empty);
}

#[test]
fn pruning_the_feed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    for id in 1..=10 {
        store.put_durable_open(&durable_open(id)).unwrap();
    }
    assert_eq!(store.prune_changes_before(0).unwrap(), 0);
    assert_eq!(store.prune_changes_before(1).unwrap(), 0);
    assert_eq!(store.prune_changes_before(5).unwrap(), 4);
    assert_eq!(store.prune_changes_before(5).unwrap(), 0);
    assert_eq!(store.prune_changes_before(3).unwrap(), 0);
    // Reading from the first kept change on works; before it is an error naming the file.
    let seqs = |v: Vec<Change>| v.into_iter().map(|c| c.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(store.changes_since(4, 100).unwrap()),
        (5..=10).collect::<Vec<_>>()
    );
    let err = store.changes_since(3, 100).unwrap_err();
    match &err {
        StoreError::ChangesPruned {
            requested: 3,
            first_available: 5,
            path,
        } => assert_eq!(path, store.path()),
        other => panic!("expected ChangesPruned, got {other:?}"),
    }
    assert!(err.to_string().contains("state.redb"), "{err}");
    // Tables and the sequence are untouched.
    assert_eq!(store.list_durable_opens().unwrap().len(), 10);
    assert_eq!(store.last_seq().unwrap(), 10);
    // Pruning past the end stops at the last change; new changes continue the sequence.
    assert_eq!(store.prune_changes_before(u64::MAX).unwrap(), 6);
    assert!(store.changes_since(10, 100).unwrap().is_empty());
    assert!(store.changes_since(9, 100).is_err());
    drop(store);
    let store = open_store(tmp.path());
    assert!(store.changes_since(9, 100).is_err());
    assert_eq!(store.remove_durable_open(1).unwrap(), Some(11));
    assert_eq!(seqs(store.changes_since(10, 100).unwrap()), [11]);
}

#[test]
fn mirror_replays_durable_handle_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let primary = open_store(&tmp.path().join("p"));
    let mirror = open_store(&tmp.path().join("m"));
    let mut o = durable_open(1);
    primary.put_durable_open(&o).unwrap();
    o.disconnected_at_ms = Some(5);
    primary.put_durable_open(&o).unwrap();
    primary.put_session(&session(1)).unwrap();
    primary.put_client_connection(&connection(1)).unwrap();
    primary.remove_client_connection(1).unwrap();
    primary.expire_durable_opens(u64::MAX).unwrap();
    let feed = primary.changes_since(0, 100).unwrap();
    assert_eq!(feed.len(), 6);
    mirror.apply_changes(&feed).unwrap();
    assert_eq!(mirror.snapshot().unwrap(), primary.snapshot().unwrap());
    assert!(mirror.list_durable_opens().unwrap().is_empty());
    assert_eq!(mirror.list_sessions().unwrap(), [session(1)]);
    // A batch with a gap is refused as a whole.
    let mirror2 = open_store(&tmp.path().join("m2"));
    let gapped = [feed[0].clone(), feed[2].clone()];
    assert!(matches!(
        mirror2.apply_changes(&gapped),
        Err(StoreError::ChangeOutOfOrder { .. })
    ));
    assert_eq!(mirror2.last_seq().unwrap(), 0);
    assert!(mirror2.list_durable_opens().unwrap().is_empty());
}
