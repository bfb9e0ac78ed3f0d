//! When each pending job will start: the plan a backfill scheduler makes, made here from the same
//! queue, to check Atlas's model of the cluster against Slurm's own (`atlas backfill plan`).
//!
//! As Slurm's `sched/backfill` (22.05) does: pending jobs are taken in priority order (then by
//! id). Each is tried at now and at every step where the plan changes; at a step, the nodes
//! that no earlier job has reserved over its time limit are offered, and its start is the
//! earliest time enough of them are free of the running jobs (at their end times, CPU by CPU;
//! whole nodes for an exclusive job). It is kept there unless its window, on the plan's steps,
//! overlaps a reservation on the nodes it takes; it then reserves those nodes, whole, for that
//! window. Slurm keeps its plan in steps of `bf_resolution` (60 s by default): a reservation
//! starts and ends at its times rounded down to a step, so the next job may start on the step,
//! before the exact end. Nodes are taken in the order given (Slurm's: slurm.conf's), the first
//! that are free.
//!
//! Costs O(P² · N) for P pending jobs on N nodes: it is a check, not the planner that
//! `backfill suggest` runs at scale; at most [`MAX_PLANNED`] jobs are planned.

use serde::Serialize;

use crate::node::{Node, NodeState};

/// The most pending jobs planned (Slurm's `bf_max_job_test` is 500 by default).
pub const MAX_PLANNED: usize = 1000;

/// A job holding nodes now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Running {
    pub job: String,
    pub nodes: Vec<String>,
    pub cpus_per_node: f64,
    /// When it ends at the latest (its start plus its time limit; Unix seconds).
    pub ends_at: f64,
}

/// A job waiting.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    pub job: String,
    /// Higher first.
    pub priority: f64,
    pub nodes: u32,
    pub cpus_per_node: f64,
    /// Whole nodes (`--exclusive`): every CPU of each node it gets.
    pub exclusive: bool,
    /// Seconds; none: no limit (it is planned to run forever).
    pub time_limit: Option<f64>,
    /// When the scheduler expects it to start (Unix seconds), if it said.
    pub scheduler_start: Option<f64>,
}

/// A pending job's planned start.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Planned {
    pub job: String,
    /// Unix seconds; none: never within the plan (more nodes than there are, or CPUs).
    pub start: Option<f64>,
    pub nodes: Vec<String>,
    pub scheduler_start: Option<f64>,
}

/// A running job's CPUs on one node, until it ends.
#[derive(Debug, Clone, Copy)]
struct Held {
    until: f64,
    cpus: f64,
}

struct Lane {
    name: String,
    cpus: f64,
    running: Vec<Held>,
    /// Planned jobs' reservations, [from, to) on the plan's steps: the whole node.
    reserved: Vec<(f64, f64)>,
}

impl Lane {
    /// The earliest time at or after `from` when the running jobs leave `need` CPUs free.
    fn free_from(&self, from: f64, need: f64) -> f64 {
        let mut ends: Vec<f64> = self.running.iter().map(|h| h.until).collect();
        ends.sort_by(f64::total_cmp);
        std::iter::once(from)
            .chain(ends.into_iter().filter(|t| *t > from))
            .find(|t| {
                let held: f64 = self
                    .running
                    .iter()
                    .filter(|h| h.until > *t)
                    .map(|h| h.cpus)
                    .sum();
                held + need <= self.cpus + 1e-9
            })
            .unwrap_or(f64::INFINITY)
    }

    /// Whether a reservation overlaps [from, to).
    fn reserved_over(&self, from: f64, to: f64) -> bool {
        self.reserved.iter().any(|(a, b)| *a < to && *b > from)
    }
}

/// A reservation as Slurm's plan keeps it: from now at the earliest, at least one step long.
fn reservation(from: f64, to: f64, now: f64, step: f64) -> (f64, f64) {
    let from = from.max(now);
    (from, to.max(from + step))
}

fn round_down(t: f64, step: f64) -> f64 {
    if step > 0.0 && t.is_finite() {
        (t / step).floor() * step
    } else {
        t
    }
}

/// The plan: each pending job's start, in the order they were planned.
pub fn plan_starts(
    nodes: &[Node],
    running: &[Running],
    pending: &[Pending],
    now: f64,
    resolution: f64,
) -> Vec<Planned> {
    let mut lanes: Vec<Lane> = nodes
        .iter()
        .filter(|n| !matches!(n.state, NodeState::Down | NodeState::Other(_)))
        .map(|n| Lane {
            name: n.name.clone(),
            cpus: n.cpus.total,
            running: Vec::new(),
            reserved: Vec::new(),
        })
        .collect();
    for job in running {
        for lane in lanes.iter_mut().filter(|l| job.nodes.contains(&l.name)) {
            lane.running.push(Held {
                until: job.ends_at,
                cpus: job.cpus_per_node,
            });
        }
    }
    let mut order: Vec<&Pending> = pending.iter().take(MAX_PLANNED).collect();
    order.sort_by(|a, b| {
        b.priority
            .total_cmp(&a.priority)
            .then_with(|| job_order(&a.job, &b.job))
    });
    order
        .into_iter()
        .map(|job| place(job, &mut lanes, now, resolution))
        .collect()
}

/// Job ids in numeric order where they are numbers (`9` before `10`).
fn job_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// The plan's records, as Slurm's `node_space` keeps them: from now, split wherever the nodes
/// no reservation holds change; each with those nodes.
struct Record {
    begin: f64,
    end: f64,
    free: Vec<bool>,
}

fn records(lanes: &[Lane], now: f64) -> Vec<Record> {
    let mut edges: Vec<f64> = std::iter::once(now)
        .chain(
            lanes
                .iter()
                .flat_map(|l| l.reserved.iter().flat_map(|(a, b)| [*a, *b])),
        )
        .filter(|t| t.is_finite() && *t >= now)
        .collect();
    edges.sort_by(f64::total_cmp);
    edges.dedup();
    let ends = edges.iter().skip(1).copied().chain([f64::INFINITY]);
    let mut merged: Vec<Record> = Vec::new();
    for (&begin, end) in edges.iter().zip(ends) {
        let free: Vec<bool> = lanes.iter().map(|l| !l.reserved_over(begin, end)).collect();
        // Slurm merges neighbours with the same free nodes: where the plan "changes" is
        // where the free nodes do.
        match merged.last_mut() {
            Some(last) if last.free == free => last.end = end,
            _ => merged.push(Record { begin, end, free }),
        }
    }
    merged
}

/// Slurm's backfill for one job: from `now`, the nodes free of reservations over the job's
/// window (up to and including its end) are offered, and its start is the earliest time
/// enough of them are free of running work, but no earlier than the window's start. A start
/// beyond the record where the offered nodes change is tried again from there; a start whose
/// stepped window overlaps a reservation on the nodes it takes is tried again from that start.
fn place(job: &Pending, lanes: &mut [Lane], now: f64, step: f64) -> Planned {
    let length = job.time_limit.unwrap_or(f64::INFINITY);
    let wanted = job.nodes as usize;
    let need = |l: &Lane| {
        if job.exclusive {
            l.cpus
        } else {
            job.cpus_per_node
        }
    };
    let plan = records(lanes, now);
    let mut from = now;
    let mut tries = 0;
    let found = loop {
        tries += 1;
        if tries > 2 * plan.len() + 2 {
            break None;
        }
        let window_end = from + length;
        let mut offered: Vec<bool> = lanes.iter().map(|l| need(l) <= l.cpus).collect();
        let mut later: Option<f64> = None;
        for (i, r) in plan.iter().enumerate() {
            if r.end > from && later.is_none() {
                if let Some(next) = plan.get(i + 1) {
                    let current: Vec<bool> =
                        offered.iter().zip(&r.free).map(|(a, b)| *a && *b).collect();
                    if current.iter().zip(&next.free).any(|(c, n)| *n && !*c) {
                        later = Some(r.end);
                    }
                }
            }
            if r.end <= from {
                continue;
            } else if r.begin <= window_end {
                offered.iter_mut().zip(&r.free).for_each(|(o, f)| *o &= *f);
            } else {
                break;
            }
        }
        let mut ready: Vec<(usize, f64)> = offered
            .iter()
            .enumerate()
            .filter(|(_, o)| **o)
            .map(|(i, _)| (i, lanes[i].free_from(from, need(&lanes[i]))))
            .filter(|(_, t)| t.is_finite())
            .collect();
        let start = if ready.len() >= wanted && wanted > 0 {
            let mut times: Vec<f64> = ready.iter().map(|(_, t)| *t).collect();
            times.sort_by(f64::total_cmp);
            Some(times[wanted - 1].max(from))
        } else {
            None
        };
        let Some(start) = start.filter(|s| later.is_none_or(|l| *s <= l)) else {
            match later {
                Some(l) => {
                    from = l;
                    continue;
                }
                None => break None,
            }
        };
        ready.retain(|(_, t)| *t <= start);
        ready.truncate(wanted);
        let taken: Vec<usize> = ready.into_iter().map(|(i, _)| i).collect();
        let window = (round_down(start, step), round_down(start + length, step));
        let overlaps = start > now
            && taken.iter().any(|&i| {
                lanes[i]
                    .reserved
                    .iter()
                    .any(|(a, b)| a.max(now) < window.1 && *b > window.0.max(now))
            });
        if overlaps {
            from = start;
            continue;
        }
        break Some((start, taken, window));
    };
    let Some((start, taken, window)) = found else {
        return Planned {
            job: job.job.clone(),
            start: None,
            nodes: Vec::new(),
            scheduler_start: job.scheduler_start,
        };
    };
    for &i in &taken {
        lanes[i]
            .reserved
            .push(reservation(window.0, window.1, now, step));
    }
    Planned {
        job: job.job.clone(),
        start: Some(start),
        nodes: taken.iter().map(|&i| lanes[i].name.clone()).collect(),
        scheduler_start: job.scheduler_start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Resources;

    fn node(name: &str) -> Node {
        let mut n = Node::new(name);
        n.cpus = Resources::new(2.0, 0.0);
        n.state = NodeState::Idle;
        n
    }

    fn pending(job: &str, priority: f64, nodes: u32, minutes: f64) -> Pending {
        Pending {
            job: job.into(),
            priority,
            nodes,
            cpus_per_node: 1.0,
            exclusive: true,
            time_limit: Some(minutes * 60.0),
            scheduler_start: None,
        }
    }

    #[test]
    fn jobs_are_planned_in_priority_order_on_the_steps_slurm_keeps() {
        // Three nodes busy until 100, 103 and 103 (s after the epoch of this test, now 0).
        let nodes = [node("head"), node("node1"), node("node2")];
        let running: Vec<Running> = [
            ("1", "head", 100.0),
            ("2", "node1", 103.0),
            ("3", "node2", 103.0),
        ]
        .iter()
        .map(|(job, n, end)| Running {
            job: job.to_string(),
            nodes: vec![n.to_string()],
            cpus_per_node: 2.0,
            ends_at: *end,
        })
        .collect();
        let queue = [
            pending("6", 10.0, 3, 1.0),
            pending("7", 9.0, 1, 1.0),
            pending("8", 8.0, 2, 3.0),
            pending("9", 7.0, 4, 1.0),
        ];
        let plan = plan_starts(&nodes, &running, &queue, 0.0, 60.0);
        let starts: Vec<(&str, Option<f64>)> =
            plan.iter().map(|p| (p.job.as_str(), p.start)).collect();
        // Job 6 waits for every node (103); its reservation is kept as [60, 120), so 7 and 8
        // start at 120, not 163: what Slurm printed for the same queue.
        assert_eq!(
            starts,
            [
                ("6", Some(103.0)),
                ("7", Some(120.0)),
                ("8", Some(120.0)),
                ("9", None)
            ]
        );
        assert_eq!(plan[1].nodes, ["head"]);
        assert_eq!(plan[2].nodes, ["node1", "node2"]);
        // At a resolution of 1 s the plan is exact.
        let exact = plan_starts(&nodes, &running, &queue, 0.0, 1.0);
        assert_eq!(exact[1].start, Some(163.0));
    }

    /// A queue as Slurm 22.05 printed it on the test cluster (`squeue -o QUEUE_FORMAT`), with
    /// the starts its backfill expected: the plan must find the same ones.
    const SLURM_QUEUE: &str = "\
547|RUNNING|4294901414|1|2|2:00|2026-12-02T00:51:07|2026-12-02T00:53:07|head|NO
548|RUNNING|4294901413|1|2|3:00|2026-12-02T00:51:07|2026-12-02T00:54:07|node1|NO
549|RUNNING|4294901412|1|2|4:00|2026-12-02T00:51:07|2026-12-02T00:55:07|node2|NO
550|PENDING|4294901411|1|1|10:00|2026-12-02T00:53:07|2026-12-02T01:03:07||OK
551|PENDING|4294901410|1|1|2:00|2026-12-02T00:54:07|2026-12-02T00:56:07||NO
552|PENDING|4294901409|2|2|8:00|2026-12-02T00:56:00|2026-12-02T01:04:00||OK
553|PENDING|4294901408|1|1|8:00|2026-12-02T01:03:00|2026-12-02T01:11:00||NO
554|PENDING|4294901407|2|2|7:00|2026-12-02T01:04:00|2026-12-02T01:11:00||OK
555|PENDING|4294901406|3|3|8:00|2026-12-02T01:11:00|2026-12-02T01:19:00||NO
556|PENDING|4294901405|1|2|10:00|2026-12-02T01:19:00|2026-12-02T01:29:00||OK
557|PENDING|4294901404|1|1|1:00|2026-12-02T00:55:07|2026-12-02T00:56:07||NO
558|PENDING|4294901403|2|4|1:00|2026-12-02T01:19:00|2026-12-02T01:20:00||OK
559|PENDING|4294901402|3|3|4:00|2026-12-02T01:29:00|2026-12-02T01:33:00||OK
560|PENDING|4294901401|2|4|4:00|2026-12-02T01:20:00|2026-12-02T01:24:00||OK
561|PENDING|4294901400|2|2|4:00|2026-12-02T01:24:00|2026-12-02T01:28:00||NO
";

    #[test]
    fn the_plan_finds_the_starts_slurm_expected_for_a_real_queue() {
        let (running, pending) = crate::slurm::parse_queue(SLURM_QUEUE);
        let nodes = [node("head"), node("node1"), node("node2")];
        let now = crate::slurm::seconds("2026-12-02T00:51:12").unwrap();
        let plan = plan_starts(&nodes, &running, &pending, now, 60.0);
        let off: Vec<String> = plan
            .iter()
            .filter(|p| p.start != p.scheduler_start)
            .map(|p| {
                format!(
                    "{}: {:?} vs {:?}",
                    p.job,
                    p.start.map(|s| s - now),
                    p.scheduler_start.map(|s| s - now)
                )
            })
            .collect();
        assert!(off.is_empty(), "{off:?}");
    }

    #[test]
    fn a_job_that_shares_nodes_fits_beside_running_work() {
        let nodes = [node("a")];
        let running = [Running {
            job: "1".into(),
            nodes: vec!["a".into()],
            cpus_per_node: 1.0,
            ends_at: 500.0,
        }];
        let mut small = pending("2", 1.0, 1, 1.0);
        small.exclusive = false;
        let plan = plan_starts(&nodes, &running, &[small], 10.0, 60.0);
        assert_eq!(plan[0].start, Some(10.0), "one CPU is free now");
        let whole = pending("3", 1.0, 1, 1.0);
        let plan = plan_starts(&nodes, &running, &[whole], 10.0, 60.0);
        assert_eq!(plan[0].start, Some(500.0), "the whole node is free at 500");
    }
}
