//! The backfill planner at scale (BENCHMARKS.md): a generated cluster of 10,000 nodes and
//! 50,000 pending jobs (the first 5,000 reserved), planned R times; decisions per second on one
//! core and the process's peak memory.
//!
//! `cargo run --release -p atlas-capacity --example plan_at_scale [NODES] [JOBS] [R]`

use std::time::Instant;

use atlas_capacity::backfill::suggest;
use atlas_capacity::scenario::generate;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let nodes = args.first().copied().unwrap_or(10_000);
    let jobs = args.get(1).copied().unwrap_or(50_000);
    let repeat = args.get(2).copied().unwrap_or(5);
    let (cluster, reservations, candidates) = generate(42, nodes, jobs, jobs / 10);
    let mut rates = Vec::new();
    let mut fits = 0;
    for _ in 0..repeat {
        let started = Instant::now();
        let suggestions = suggest(&cluster, &reservations, &candidates);
        rates.push(jobs as f64 / started.elapsed().as_secs_f64());
        fits = suggestions.iter().filter(|s| s.fits).count();
    }
    rates.sort_by(f64::total_cmp);
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        })
        .unwrap_or_else(|| "?".into());
    println!(
        "{nodes} nodes, {jobs} pending ({} reserved): median {:.0} decisions/s (min {:.0}, max {:.0}, {repeat} runs), {fits} fit now, peak memory {peak} kB",
        reservations.len(),
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1]
    );
}
