//! Deterministic simulation of the pair over many seeds (see `duet_cluster::sim`).
//!
//! `sim_many_seeds` runs `DUET_SIM_SEEDS` seeds (default 2000) starting at
//! `DUET_SIM_FIRST_SEED` (default 1) on two threads; a failure prints the seed, the events
//! before it, and the command that replays it:
//! `DUET_SIM_SEED=N cargo test -p duet-cluster sim_one_seed -- --nocapture`.

use duet_cluster::sim::{self, SimConfig, SimOutcome};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[derive(Default)]
struct Totals {
    acked: usize,
    takeovers: [u64; 5],
    attacks: u64,
    refused: u64,
}

impl Totals {
    fn add(&mut self, o: &SimOutcome) {
        self.acked += o.changes_acked;
        for (t, n) in self.takeovers.iter_mut().zip(o.takeover_kinds) {
            *t += n;
        }
        self.attacks += o.attacks;
        self.refused += o.frames_refused;
    }
}

#[test]
fn sim_many_seeds() {
    let seeds = env_u64("DUET_SIM_SEEDS").unwrap_or(2000);
    let first = env_u64("DUET_SIM_FIRST_SEED").unwrap_or(1);
    let threads = 2u64;
    let started = std::time::Instant::now();
    let results: Vec<Result<Totals, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut totals = Totals::default();
                    let mut seed = first + t;
                    while seed < first + seeds {
                        match sim::run(seed) {
                            Ok(o) => totals.add(&o),
                            Err(e) => return Err(e.to_string()),
                        }
                        seed += threads;
                    }
                    Ok(totals)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("simulation thread panicked".into()))
            })
            .collect()
    });
    let mut failures = Vec::new();
    let mut all = Totals::default();
    for r in results {
        match r {
            Ok(t) => {
                all.acked += t.acked;
                for (x, y) in all.takeovers.iter_mut().zip(t.takeovers) {
                    *x += y;
                }
                all.attacks += t.attacks;
                all.refused += t.refused;
            }
            Err(e) => failures.push(e),
        }
    }
    let k = all.takeovers;
    eprintln!(
        "simulated {seeds} seeds from {first} in {:.1} s: {} changes acknowledged; \
         takeovers: {} partner silent, {} resumed alone, {} claimed, {} handovers; \
         {} attack frames, {} frames refused",
        started.elapsed().as_secs_f64(),
        all.acked,
        k[0],
        k[1],
        k[2],
        k[3],
        all.attacks,
        all.refused,
    );
    if !failures.is_empty() {
        panic!("{}", failures.join("\n\n"));
    }
}

#[test]
fn sim_one_seed() {
    let seed = env_u64("DUET_SIM_SEED").unwrap_or(1);
    match sim::run_with(&SimConfig::new(seed)) {
        Ok(o) => eprintln!("seed {seed}: {o:?}"),
        Err(e) => panic!("{e}"),
    }
}
