//! Deterministic simulation of the pair over many seeds (see `duet_cluster::sim`).
//!
//! `sim_many_seeds` runs `DUET_SIM_SEEDS` seeds (default 2000) starting at
//! `DUET_SIM_FIRST_SEED` (default 1) on two threads; a failure prints the seed and the
//! events before it. `DUET_SIM_SEED=N cargo test -p duet-cluster sim_one_seed -- --nocapture`
//! replays seed N and prints its trace.

use duet_cluster::sim::{self, SimConfig};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn sim_many_seeds() {
    let seeds = env_u64("DUET_SIM_SEEDS").unwrap_or(2000);
    let first = env_u64("DUET_SIM_FIRST_SEED").unwrap_or(1);
    let threads = 2u64;
    let started = std::time::Instant::now();
    let results: Vec<Result<(u64, usize, u64, u64), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut acked = 0usize;
                    let mut takeovers = 0u64;
                    let mut refused = 0u64;
                    let mut seed = first + t;
                    while seed < first + seeds {
                        match sim::run(seed) {
                            Ok(o) => {
                                acked += o.changes_acked;
                                takeovers += o.takeovers;
                                refused += o.frames_refused;
                            }
                            Err(e) => return Err(e.to_string()),
                        }
                        seed += threads;
                    }
                    Ok((seeds / threads, acked, takeovers, refused))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("simulation thread panicked".into())))
            .collect()
    });
    let mut failures = Vec::new();
    let (mut acked, mut takeovers) = (0, 0);
    for r in results {
        match r {
            Ok((_, a, t, _)) => {
                acked += a;
                takeovers += t;
            }
            Err(e) => failures.push(e),
        }
    }
    eprintln!(
        "simulated {seeds} seeds from {first} in {:.1} s: {acked} changes acknowledged, {takeovers} takeovers",
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        panic!("{}", failures.join("\n\n"));
    }
}

#[test]
fn sim_one_seed() {
    let seed = env_u64("DUET_SIM_SEED").unwrap_or(1);
    let cfg = SimConfig::new(seed);
    match sim::run_with(&cfg) {
        Ok(o) => eprintln!("seed {seed}: {o:?}"),
        Err(e) => panic!("{e}"),
    }
}
