//! A change is durable once `submit` returns: a child process commits durable opens from
//! several threads and reports each sequence number as its call returns; it is killed with
//! SIGKILL in mid-stream, and every reported change must be in the reopened store.

use std::collections::BTreeMap;
use std::env;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use duet_state::{
    Caching, ChangeKind, DurableOpen, DurableVersion, FileIdentity, Store, StoreError,
};

const CHILD_ENV: &str = "DUET_STATE_CRASH_CHILD_DIR";
const TEST_NAME: &str = "committed_changes_survive_kill_9";

fn open(id: u64) -> DurableOpen {
    DurableOpen {
        persistent_id: id,
        volatile_id: id,
        create_guid: [7; 16],
        client_guid: [8; 16],
        owner_user: "alice".into(),
        owner_sid: "S-1-5-21-1-2-3-1001".into(),
        share: "share".into(),
        path: format!("file{id}"),
        granted_access: 0x1f01ff,
        share_access: 7,
        create_options: 0,
        version: DurableVersion::V2,
        persistent: false,
        caching: Caching::Batch,
        locks: vec![],
        lock_sequences: [0; 64],
        timeout_ms: 60_000,
        disconnected_at_ms: None,
        app_instance_id: None,
        position: id,
        file: FileIdentity {
            dev: 1,
            inode: id,
            creation_time: 0,
        },
    }
}

/// The child: commits until killed (or for at most 30 s), printing `seq put|del id` after
/// each commit returned.
fn child(dir: &Path) {
    let store = Arc::new(Store::open(dir).unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let id = (t << 32) | i;
                    let seq = store.put_durable_open(&open(id)).unwrap();
                    report(&format!("{seq} put {id}"));
                    if i % 2 == 1 {
                        let seq = store.remove_durable_open(id - 1).unwrap().unwrap();
                        report(&format!("{seq} del {}", id - 1));
                    }
                    i += 1;
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "committed {line}").unwrap();
    out.flush().unwrap();
}

#[test]
fn committed_changes_survive_kill_9() {
    if let Some(dir) = env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut proc = Command::new(env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(proc.stdout.take().unwrap()).lines();
    let mut reported: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    let parse = |reported: &mut BTreeMap<u64, (String, u64)>, line: String| {
        if let Some(rest) = line.strip_prefix("committed ") {
            let f: Vec<&str> = rest.split(' ').collect();
            let seq = f[0].parse().unwrap();
            let prev = reported.insert(seq, (f[1].to_owned(), f[2].parse().unwrap()));
            assert!(prev.is_none(), "seq {seq} reported twice");
        }
    };
    while reported.len() < 600 {
        match lines.next() {
            Some(line) => parse(&mut reported, line.unwrap()),
            None => panic!("child ended early: {:?}", proc.wait()),
        }
    }
    // SIGKILL while the child's threads keep committing.
    proc.kill().unwrap();
    // Whatever it printed before dying was committed too.
    for line in lines {
        parse(&mut reported, line.unwrap());
    }
    proc.wait().unwrap();

    let store = match Store::open(tmp.path()) {
        Ok(store) => store,
        Err(e @ StoreError::Locked { .. }) => panic!("{e}"),
        Err(e) => panic!("store not usable after kill -9: {e}"),
    };
    let last = store.last_seq().unwrap();
    let max_reported = *reported.keys().last().unwrap();
    assert!(
        last >= max_reported,
        "last_seq {last} < reported {max_reported}"
    );
    let feed: BTreeMap<u64, ChangeKind> = store
        .changes_since(0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|c| (c.seq, c.kind))
        .collect();
    // No gaps, whatever was in flight.
    assert_eq!(feed.len() as u64, last);
    for (seq, (what, id)) in &reported {
        let kind = &feed[seq];
        match what.as_str() {
            "put" => assert!(
                matches!(kind, ChangeKind::DurableOpenPut { open } if open.persistent_id == *id),
                "seq {seq}: {kind:?}"
            ),
            _ => assert_eq!(
                *kind,
                ChangeKind::DurableOpenRemoved { persistent_id: *id },
                "seq {seq}"
            ),
        }
    }
    eprintln!(
        "{} changes reported before SIGKILL, {} found committed",
        reported.len(),
        last
    );
    // The store is fully usable afterwards.
    store.put_durable_open(&open(u64::MAX)).unwrap();
}
