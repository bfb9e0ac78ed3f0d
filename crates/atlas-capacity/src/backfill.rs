//! Backfill: where and until when a job could start now without delaying any reserved one.
//!
//! A node's hole is its free CPUs now, open until the earliest expected start of a pending job
//! planned on it (Slurm's `squeue --start` with its `SchedNodes`; a pending job with a start but
//! no node list closes every node's hole then, which is safe). A candidate fits when enough
//! nodes have the CPUs it asks for per node and its walltime ends before their holes close.
//! Each candidate gets its verdict and the reason, whether it fits or not.

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

/// One node's hole: free CPUs now, and when it closes (seconds from now; none: never).
fn hole(node: &Node, reservations: &[Reservation]) -> Option<(f64, Option<f64>)> {
    if matches!(node.state, NodeState::Down | NodeState::Other(_)) {
        return None;
    }
    let free = node.cpus.total - node.cpus.allocated;
    let closes = reservations
        .iter()
        .filter(|r| r.nodes.is_empty() || r.nodes.contains(&node.name))
        .map(|r| r.starts_in.max(0.0))
        .min_by(f64::total_cmp);
    Some((free, closes))
}

/// The verdict for each candidate, in order. Candidates are placed one after another: the
/// CPUs an earlier fitting one takes are not offered to the next.
pub fn suggest(
    nodes: &[Node],
    reservations: &[Reservation],
    candidates: &[Candidate],
) -> Vec<Suggestion> {
    let mut holes: Vec<(String, f64, Option<f64>)> = nodes
        .iter()
        .filter_map(|n| hole(n, reservations).map(|(free, closes)| (n.name.clone(), free, closes)))
        .collect();
    candidates.iter().map(|c| place(c, &mut holes)).collect()
}

fn place(c: &Candidate, holes: &mut [(String, f64, Option<f64>)]) -> Suggestion {
    let verdict = |fits, nodes, until, reason: String| Suggestion {
        candidate: c.clone(),
        fits,
        nodes,
        until,
        reason,
    };
    let with_cpus: Vec<usize> = (0..holes.len())
        .filter(|i| holes[*i].1 >= c.cpus_per_node)
        .collect();
    if with_cpus.len() < c.nodes as usize {
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
    // Nodes whose hole outlasts the walltime, the longest-open first.
    let mut usable: Vec<usize> = with_cpus
        .into_iter()
        .filter(|i| match (holes[*i].2, c.walltime) {
            (None, _) => true,
            (Some(closes), Some(wall)) => wall <= closes,
            (Some(_), None) => false,
        })
        .collect();
    usable.sort_by(|a, b| {
        let open = |i: &usize| holes[*i].2.unwrap_or(f64::INFINITY);
        open(b).total_cmp(&open(a))
    });
    if usable.len() < c.nodes as usize {
        let why = match c.walltime {
            None => "it has no walltime, and a reservation starts on the free nodes".to_string(),
            Some(wall) => format!(
                "its walltime ({wall:.0} s) ends after the holes close on all but {} of the free node(s)",
                usable.len()
            ),
        };
        return verdict(false, Vec::new(), None, why);
    }
    let chosen = &usable[..c.nodes as usize];
    let until = chosen
        .iter()
        .filter_map(|i| holes[*i].2)
        .min_by(f64::total_cmp);
    let names: Vec<String> = chosen.iter().map(|i| holes[*i].0.clone()).collect();
    for i in chosen {
        holes[*i].1 -= c.cpus_per_node;
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
