//! Backfill: where and until when a job could start now without delaying any reserved one.
//!
//! A node's hole is its free CPUs now, open until the earliest expected start of a pending job
//! planned on it (Slurm's `squeue --start` with its `SchedNodes`; a pending job with a start but
//! no node list closes every node's hole then, which is safe). A candidate fits when enough
//! nodes have the CPUs it asks for per node and its walltime ends before their holes close.
//! Each candidate gets its verdict and the reason, whether it fits or not.

use std::collections::HashMap;

use serde::Serialize;

use crate::node::{Node, NodeState};

/// A pending job with the start the scheduler expects for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub job: String,
    /// Seconds from now.
    pub starts_in: f64,
    /// The nodes it is planned on; empty: not said (it then closes every hole).
    pub nodes: Vec<String>,
}

/// What a candidate asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub name: String,
    pub nodes: u32,
    pub cpus_per_node: f64,
    /// Seconds; none: the job has no walltime and cannot be fitted before a reservation.
    pub walltime: Option<f64>,
}

/// Whether and where a candidate fits.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    pub candidate: Candidate,
    pub fits: bool,
    /// The nodes it would run on (when it fits).
    pub nodes: Vec<String>,
    /// Seconds from now until the chosen nodes' holes close (none: open; nothing reserved).
    pub until: Option<f64>,
    pub reason: String,
}

/// One node's hole: its free CPUs now and when it closes (seconds from now; infinite: never).
struct Hole {
    name: String,
    free: f64,
    closes: f64,
}

/// The holes of the usable nodes, the longest-open first. Each reservation is read once: a
/// node's hole closes at the earliest start planned on it, or of a reservation without nodes.
fn holes(nodes: &[Node], reservations: &[Reservation]) -> Vec<Hole> {
    let mut on_node: HashMap<&str, f64> = HashMap::new();
    let mut anywhere = f64::INFINITY;
    for r in reservations {
        let start = r.starts_in.max(0.0);
        if r.nodes.is_empty() {
            anywhere = anywhere.min(start);
        }
        for node in &r.nodes {
            let at = on_node.entry(node.as_str()).or_insert(f64::INFINITY);
            *at = at.min(start);
        }
    }
    let mut holes: Vec<Hole> = nodes
        .iter()
        .filter(|n| !matches!(n.state, NodeState::Down | NodeState::Other(_)))
        .map(|n| Hole {
            name: n.name.clone(),
            free: n.cpus.total - n.cpus.allocated,
            closes: on_node
                .get(n.name.as_str())
                .copied()
                .unwrap_or(f64::INFINITY)
                .min(anywhere),
        })
        .collect();
    holes.sort_by(|a, b| {
        b.closes
            .total_cmp(&a.closes)
            .then_with(|| a.name.cmp(&b.name))
    });
    holes
}

/// The most free CPUs over ranges of holes (a segment tree), to find the next hole with enough
/// free CPUs in O(log n).
struct MaxFree {
    size: usize,
    tree: Vec<f64>,
}

impl MaxFree {
    fn new(holes: &[Hole]) -> MaxFree {
        let size = holes.len().next_power_of_two().max(1);
        let mut tree = vec![f64::NEG_INFINITY; 2 * size];
        for (i, h) in holes.iter().enumerate() {
            tree[size + i] = h.free;
        }
        for i in (1..size).rev() {
            tree[i] = tree[2 * i].max(tree[2 * i + 1]);
        }
        MaxFree { size, tree }
    }

    fn set(&mut self, index: usize, free: f64) {
        let mut i = self.size + index;
        self.tree[i] = free;
        while i > 1 {
            i /= 2;
            self.tree[i] = self.tree[2 * i].max(self.tree[2 * i + 1]);
        }
    }

    /// The first index in `from..to` whose free CPUs are at least `need`.
    fn first(&self, from: usize, to: usize, need: f64) -> Option<usize> {
        self.search(1, 0, self.size, from, to, need)
    }

    fn search(
        &self,
        node: usize,
        lo: usize,
        hi: usize,
        from: usize,
        to: usize,
        need: f64,
    ) -> Option<usize> {
        if hi <= from || lo >= to || self.tree[node] < need {
            return None;
        }
        if hi - lo == 1 {
            return Some(lo);
        }
        let mid = (lo + hi) / 2;
        self.search(2 * node, lo, mid, from, to, need)
            .or_else(|| self.search(2 * node + 1, mid, hi, from, to, need))
    }

    /// Up to `count` indexes in `0..to` with at least `need` free CPUs, in order.
    fn take(&self, to: usize, need: f64, count: usize) -> Vec<usize> {
        let mut found = Vec::new();
        let mut from = 0;
        while found.len() < count {
            let Some(i) = self.first(from, to, need) else {
                break;
            };
            found.push(i);
            from = i + 1;
        }
        found
    }
}

/// The verdict for each candidate, in order. Candidates are placed one after another: the
/// CPUs an earlier fitting one takes are not offered to the next. O(log n) per node placed.
pub fn suggest(
    nodes: &[Node],
    reservations: &[Reservation],
    candidates: &[Candidate],
) -> Vec<Suggestion> {
    suggest_with_margin(nodes, reservations, candidates, 0.0)
}

/// Slurm plans in steps of `bf_resolution` (60 s unless set): a job fitted closer than that to
/// a reservation may wait for the main scheduler instead of starting now.
pub const SLURM_MARGIN_SECONDS: f64 = 60.0;

/// [`suggest`], fitting a job only when its walltime ends at least `margin` seconds before the
/// hole closes.
pub fn suggest_with_margin(
    nodes: &[Node],
    reservations: &[Reservation],
    candidates: &[Candidate],
    margin: f64,
) -> Vec<Suggestion> {
    let mut holes = holes(nodes, reservations);
    let mut free = MaxFree::new(&holes);
    let margin = if margin.is_finite() {
        margin.max(0.0)
    } else {
        0.0
    };
    candidates
        .iter()
        .map(|c| place(c, &mut holes, &mut free, margin))
        .collect()
}

fn place(c: &Candidate, holes: &mut [Hole], free: &mut MaxFree, margin: f64) -> Suggestion {
    let verdict = |fits, nodes, until, reason: String| Suggestion {
        candidate: c.clone(),
        fits,
        nodes,
        until,
        reason,
    };
    let wanted = c.nodes as usize;
    let with_cpus = free.take(holes.len(), c.cpus_per_node, wanted);
    if with_cpus.len() < wanted {
        return verdict(
            false,
            Vec::new(),
            None,
            format!(
                "needs {} node(s) with {} free CPU(s); {} have them now",
                c.nodes,
                c.cpus_per_node,
                with_cpus.len()
            ),
        );
    }
    // The holes that outlast the walltime are a prefix (the longest-open come first).
    let lasting = match c.walltime {
        Some(wall) => holes.partition_point(|h| h.closes >= wall + margin),
        None => holes.partition_point(|h| h.closes.is_infinite()),
    };
    let chosen = free.take(lasting, c.cpus_per_node, wanted);
    if chosen.len() < wanted {
        let why = match c.walltime {
            None => "it has no walltime, and a reservation starts on the free nodes".to_string(),
            Some(wall) => format!(
                "only {} of the {wanted} node(s) it needs stay free for its walltime ({wall:.0} s{}) before a reservation",
                chosen.len(),
                if margin > 0.0 { format!(" + {margin:.0} s margin") } else { String::new() }
            ),
        };
        return verdict(false, Vec::new(), None, why);
    }
    let until = chosen
        .iter()
        .map(|i| holes[*i].closes)
        .filter(|c| c.is_finite())
        .min_by(f64::total_cmp);
    let names: Vec<String> = chosen.iter().map(|i| holes[*i].name.clone()).collect();
    for i in &chosen {
        holes[*i].free -= c.cpus_per_node;
        free.set(*i, holes[*i].free);
    }
    let reason = match (until, c.walltime) {
        (Some(until), Some(wall)) => format!(
            "{} free CPU(s) on {} until a reservation in {until:.0} s; its walltime is {wall:.0} s",
            c.cpus_per_node,
            names.join(",")
        ),
        _ => format!(
            "{} free CPU(s) on {}, nothing reserved there",
            c.cpus_per_node,
            names.join(",")
        ),
    };
    verdict(true, names, until, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Resources;

    fn node(name: &str, total: f64, allocated: f64) -> Node {
        Node {
            state: if allocated > 0.0 {
                NodeState::Mixed
            } else {
                NodeState::Idle
            },
            cpus: Resources::new(total, allocated),
            ..Node::new(name)
        }
    }

    fn candidate(nodes: u32, walltime: Option<f64>) -> Candidate {
        Candidate {
            name: "c".into(),
            nodes,
            cpus_per_node: 2.0,
            walltime,
        }
    }

    #[test]
    fn a_job_fits_only_if_its_walltime_ends_before_the_reservation() {
        let nodes = [node("a", 2.0, 0.0), node("b", 2.0, 0.0)];
        let reserved = [Reservation {
            job: "9".into(),
            starts_in: 600.0,
            nodes: vec!["a".into(), "b".into()],
        }];
        let s = suggest(&nodes, &reserved, &[candidate(1, Some(300.0))]);
        assert!(s[0].fits, "{s:?}");
        assert_eq!(s[0].until, Some(600.0));
        let s = suggest(&nodes, &reserved, &[candidate(1, Some(900.0))]);
        assert!(!s[0].fits);
        assert!(s[0].reason.contains("walltime (900 s)"), "{}", s[0].reason);
        // With Slurm's planning step as a margin: 500 s fits before 600 s, 580 s no longer.
        let fits = suggest_with_margin(&nodes, &reserved, &[candidate(1, Some(500.0))], 60.0);
        assert!(fits[0].fits, "{:?}", fits[0]);
        let s = suggest_with_margin(&nodes, &reserved, &[candidate(1, Some(580.0))], 60.0);
        assert!(
            !s[0].fits && s[0].reason.contains("+ 60 s margin"),
            "{}",
            s[0].reason
        );
        let s = suggest(&nodes, &reserved, &[candidate(1, None)]);
        assert!(!s[0].fits && s[0].reason.contains("no walltime"));
    }

    #[test]
    fn unreserved_nodes_are_preferred_and_cpus_are_taken_in_order() {
        let nodes = [
            node("a", 2.0, 0.0),
            node("b", 2.0, 0.0),
            node("c", 2.0, 2.0),
        ];
        let reserved = [Reservation {
            job: "9".into(),
            starts_in: 100.0,
            nodes: vec!["a".into()],
        }];
        let s = suggest(
            &nodes,
            &reserved,
            &[
                candidate(1, Some(50.0)),
                candidate(1, Some(50.0)),
                candidate(1, Some(50.0)),
            ],
        );
        assert_eq!(s[0].nodes, ["b"], "the open-ended hole first");
        assert_eq!(s[0].until, None);
        assert_eq!(s[1].nodes, ["a"]);
        assert!(!s[2].fits, "c is full and a, b are taken: {:?}", s[2]);
        assert!(s[2].reason.contains("0 have them"), "{}", s[2].reason);
    }

    #[test]
    fn a_reservation_without_nodes_closes_every_hole_and_down_nodes_offer_none() {
        let mut down = node("d", 8.0, 0.0);
        down.state = NodeState::Down;
        let nodes = [node("a", 2.0, 0.0), down];
        let reserved = [Reservation {
            job: "9".into(),
            starts_in: 10.0,
            nodes: Vec::new(),
        }];
        let s = suggest(&nodes, &reserved, &[candidate(1, Some(20.0))]);
        assert!(!s[0].fits);
        let s = suggest(&nodes, &[], &[candidate(2, Some(20.0))]);
        assert!(!s[0].fits, "the down node offers nothing");
    }
}
