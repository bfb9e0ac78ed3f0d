//! Scalability: when an experiment holds runs of one workflow at different sizes (hosts when
//! their node counts differ, else GPUs, or cores when there are no GPUs) on a target, the speed-up and parallel efficiency at each size
//! against that target's smallest.

use serde::Serialize;

use crate::figures::Request;
use crate::{RunInput, RunSummary};

/// One size on one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPoint {
    pub target: String,
    /// `hosts`, `gpus` or `cores`.
    pub resource: String,
    pub size: f64,
    pub runs: usize,
    pub median_wall_seconds: f64,
    /// Smallest size's median wall ÷ this size's.
    pub speedup: f64,
    /// Speed-up ÷ (size ÷ smallest size).
    pub efficiency: f64,
}

/// What a target's runs differ in: hosts when their node counts differ, else GPUs when they
/// asked for any, else cores.
fn resource_that_varies<'a>(requests: impl Iterator<Item = &'a Request> + Clone) -> &'static str {
    let mut nodes = requests.clone().map(|r| r.nodes);
    let first = nodes.next();
    if nodes.any(|n| Some(n) != first) {
        "hosts"
    } else if requests.clone().any(|r| r.gpus > 0.0) {
        "gpus"
    } else {
        "cores"
    }
}

/// The scaling points of every target that ran at more than one size (none otherwise).
pub fn points(runs: &[RunInput], summaries: &[RunSummary]) -> Vec<ScalingPoint> {
    let mut out = Vec::new();
    // Each target once, in run order (runs interleave: A B A B).
    let mut targets: Vec<&str> = Vec::new();
    for s in summaries {
        if !targets.contains(&s.target.as_str()) {
            targets.push(&s.target);
        }
    }
    for target in targets {
        let sized: Vec<(Request, f64)> = runs
            .iter()
            .zip(summaries)
            .filter(|(_, s)| s.target == target && s.excluded.is_none())
            .filter_map(|(r, s)| {
                let request = Request::of(r.workflow.as_ref());
                Some((request, *s.values.get("wallSeconds")?))
            })
            .collect();
        let resource = resource_that_varies(sized.iter().map(|(r, _)| r));
        let sized: Vec<(f64, &str, f64)> = sized
            .iter()
            .map(|(request, wall)| {
                let size = match resource {
                    "hosts" => request.nodes,
                    "gpus" => request.gpus,
                    _ => request.cores,
                };
                (size, resource, *wall)
            })
            .collect();
        let mut sizes: Vec<f64> = sized.iter().map(|(s, _, _)| *s).collect();
        sizes.sort_by(f64::total_cmp);
        sizes.dedup();
        if sizes.len() < 2 {
            continue;
        }
        let median_at = |size: f64| {
            let walls: Vec<f64> = sized
                .iter()
                .filter(|(s, _, _)| *s == size)
                .map(|(_, _, w)| *w)
                .collect();
            (crate::stats::median(&walls), walls.len())
        };
        let (base_wall, _) = median_at(sizes[0]);
        for size in &sizes {
            let (wall, n) = median_at(*size);
            let speedup = base_wall / wall;
            out.push(ScalingPoint {
                target: target.to_string(),
                resource: sized[0].1.to_string(),
                size: *size,
                runs: n,
                median_wall_seconds: wall,
                speedup,
                efficiency: speedup / (size / sizes[0]),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(nodes: f64, gpus: f64, cores: f64) -> Request {
        Request {
            cores,
            tasks: cores,
            memory_gib: None,
            gpus,
            nodes,
        }
    }

    #[test]
    fn hosts_win_when_the_node_counts_differ() {
        let runs = [request(1.0, 0.0, 1.0), request(2.0, 0.0, 2.0)];
        assert_eq!(resource_that_varies(runs.iter()), "hosts");
        let runs = [request(2.0, 1.0, 1.0), request(2.0, 2.0, 2.0)];
        assert_eq!(resource_that_varies(runs.iter()), "gpus");
        let runs = [request(1.0, 0.0, 1.0), request(1.0, 0.0, 4.0)];
        assert_eq!(resource_that_varies(runs.iter()), "cores");
    }
}
