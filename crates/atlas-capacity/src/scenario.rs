//! A generated cluster and queue for the planner's benchmark and its invariant tests: nodes
//! of two kinds (CPU nodes of 64 cores, GPU nodes of 48 cores and 8 GPUs), partly allocated,
//! pending jobs of realistic mixes (1–16 nodes, 10 minutes to 48 hours, runs of identical array
//! tasks), the first of them reserved on planned nodes. Deterministic for a seed.

use crate::backfill::{Candidate, Reservation};
use crate::node::{Node, NodeState, Resources};

/// A small deterministic generator (SplitMix64): no dependency, the same scenario everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// `nodes` nodes and `jobs` pending jobs; the first `reserved` jobs have expected starts.
pub fn generate(
    seed: u64,
    nodes: usize,
    jobs: usize,
    reserved: usize,
) -> (Vec<Node>, Vec<Reservation>, Vec<Candidate>) {
    let mut rng = Rng::new(seed);
    let cluster: Vec<Node> = (0..nodes)
        .map(|i| {
            let gpu = rng.below(5) == 0;
            let total = if gpu { 48.0 } else { 64.0 };
            // A quarter idle, half partly allocated, a quarter full.
            let allocated = match rng.below(4) {
                0 => 0.0,
                3 => total,
                _ => (rng.below(total as u64) as f64).floor(),
            };
            Node {
                state: if rng.below(200) == 0 {
                    NodeState::Down
                } else if allocated == 0.0 {
                    NodeState::Idle
                } else {
                    NodeState::Mixed
                },
                cpus: Resources::new(total, allocated),
                gpus: Resources::new(if gpu { 8.0 } else { 0.0 }, 0.0),
                ..Node::new(format!("n{i:05}"))
            }
        })
        .collect();
    let mut candidates = Vec::with_capacity(jobs);
    let mut reservations = Vec::with_capacity(reserved);
    while candidates.len() < jobs {
        let id = candidates.len();
        let width = [1, 1, 1, 2, 4, 8, 16][rng.below(7) as usize];
        let cpus = [1.0, 4.0, 8.0, 16.0, 32.0, 64.0][rng.below(6) as usize];
        let walltime =
            [600.0, 3600.0, 4.0 * 3600.0, 12.0 * 3600.0, 48.0 * 3600.0][rng.below(5) as usize];
        // An array: several identical tasks in a row.
        let tasks = if rng.below(10) == 0 {
            1 + rng.below(20) as usize
        } else {
            1
        };
        for task in 0..tasks.min(jobs - candidates.len()) {
            let name = format!("job {id}_{task}");
            if candidates.len() < reserved {
                let start = rng.below(7 * 24 * 3600) as f64;
                let planned = (0..width)
                    .map(|_| format!("n{:05}", rng.below(nodes as u64)))
                    .collect();
                reservations.push(Reservation {
                    job: name.clone(),
                    starts_in: start,
                    nodes: planned,
                });
            }
            candidates.push(Candidate {
                name,
                nodes: width,
                cpus_per_node: cpus,
                walltime: Some(walltime),
            });
        }
    }
    (cluster, reservations, candidates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::suggest;
    use std::collections::HashMap;

    #[test]
    fn a_placed_job_never_overruns_a_reservation_nor_the_cpus() {
        for seed in 0..20 {
            let (nodes, reservations, candidates) = generate(seed, 200, 2000, 300);
            let suggestions = suggest(&nodes, &reservations, &candidates);
            let mut taken: HashMap<&str, f64> = HashMap::new();
            for s in suggestions.iter().filter(|s| s.fits) {
                let wall = s.candidate.walltime.unwrap();
                assert_eq!(s.nodes.len(), s.candidate.nodes as usize);
                for name in &s.nodes {
                    // No reservation planned on this node starts before the job would end.
                    let earliest = reservations
                        .iter()
                        .filter(|r| r.nodes.iter().any(|n| n == name))
                        .map(|r| r.starts_in)
                        .fold(f64::INFINITY, f64::min);
                    assert!(
                        wall <= earliest,
                        "seed {seed}: {} on {name} past {earliest}",
                        s.candidate.name
                    );
                    *taken.entry(name.as_str()).or_default() += s.candidate.cpus_per_node;
                }
            }
            for node in &nodes {
                let used =
                    node.cpus.allocated + taken.get(node.name.as_str()).copied().unwrap_or(0.0);
                assert!(
                    used <= node.cpus.total,
                    "seed {seed}: {} oversubscribed",
                    node.name
                );
                if node.state == NodeState::Down {
                    assert!(
                        !taken.contains_key(node.name.as_str()),
                        "a down node was used"
                    );
                }
            }
            assert!(suggestions.iter().any(|s| s.fits) && suggestions.iter().any(|s| !s.fits));
        }
    }
}
