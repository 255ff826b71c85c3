//! CI-sized end-to-end run: `duet-bench --quick --servers duetd` against the duetd and
//! duetctl built next to it (same target directory and profile). Checks that the tool
//! runs and writes its results, never how fast anything is.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bench() -> &'static str {
    env!("CARGO_BIN_EXE_duet-bench")
}

/// duetd and duetctl from the same target directory as duet-bench. `cargo test
/// --workspace` (and tools/test.sh) builds them, since their own tests need them.
fn firmware_bins() -> Option<(PathBuf, PathBuf)> {
    let dir = Path::new(bench()).parent()?;
    let duetd = dir.join("duetd");
    let duetctl = dir.join("duetctl");
    (duetd.is_file() && duetctl.is_file()).then_some((duetd, duetctl))
}

#[test]
fn quick_run_against_duetd_writes_results() {
    let Some((duetd, duetctl)) = firmware_bins() else {
        eprintln!(
            "SKIPPED: duetd/duetctl not built next to {} (run `cargo build -p duetd -p duetctl` \
             with the same profile, or `cargo test --workspace`)",
            bench()
        );
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let res = Command::new(bench())
        .args(["--quick", "--servers", "duetd", "--out"])
        .arg(out.path())
        .arg("--workdir")
        .arg(work.path().join("run"))
        .arg("--duetd")
        .arg(&duetd)
        .arg("--duetctl")
        .arg(&duetctl)
        .output()
        .expect("run duet-bench");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(res.status.success(), "duet-bench --quick failed:\n{text}");

    let files: Vec<PathBuf> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let json = files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a JSON result");
    let md = files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "md"))
        .expect("a Markdown result");
    let json = std::fs::read_to_string(json).unwrap();
    let md = std::fs::read_to_string(md).unwrap();
    for id in [
        "seq-write-1m",
        "seq-read-64k",
        "create-4k",
        "stat",
        "delete",
        "mkdir",
        "rmdir",
        "list",
        "durable-4k",
        "clients",
    ] {
        assert!(
            json.contains(&format!("\"id\":\"{id}\"")),
            "{id} missing from:\n{json}"
        );
    }
    assert!(json.contains("\"mode\": \"quick\""));
    assert!(
        json.contains("\"rss_kib\""),
        "memory figures missing:\n{json}"
    );
    assert!(
        !json.contains("\"error\":") && !json.contains("\"errors\":[\""),
        "a measurement failed:\n{json}"
    );
    assert!(md.contains("| workload | client | unit | duetd |"), "{md}");
    assert!(
        json.contains("\"kernel_floor_cpu_s_per_gib\": {\"pread_write\":"),
        "kernel floor missing:\n{json}"
    );
    assert!(md.contains("## Kernel floor"), "{md}");
    // The scratch directory is removed after the run.
    assert!(!work.path().join("run").exists());
}

#[test]
fn bad_arguments_are_refused() {
    let res = Command::new(bench())
        .arg("--servers")
        .arg("nfs")
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("unknown server nfs"));
    let res = Command::new(bench()).arg("--help").output().unwrap();
    assert!(res.status.success());
    assert!(String::from_utf8_lossy(&res.stdout).contains("--quick"));
}
