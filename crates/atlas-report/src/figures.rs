//! The figures of one run, by key, over the five dimensions: performance, elasticity, data
//! access, economics (and scalability, which needs several runs: see `scaling.rs`).

use std::collections::BTreeMap;

use atlas_spec::Workflow;
use atlas_store::RunDetail;
use serde::Serialize;

use crate::prices::{Price, Usage};
use crate::stats::Better;

/// The dimension a figure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Dimension {
    Performance,
    Elasticity,
    DataAccess,
    Economics,
}

impl Dimension {
    pub fn label(self) -> &'static str {
        match self {
            Dimension::Performance => "Performance",
            Dimension::Elasticity => "Elasticity",
            Dimension::DataAccess => "Data access",
            Dimension::Economics => "Economics",
        }
    }
}

/// How a figure's values read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Unit {
    Seconds,
    Bytes,
    BytesPerSecond,
    /// A fraction shown as percent.
    Fraction,
    Percent,
    Money,
    /// An application metric's own unit.
    Value,
}

/// What a figure is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FigureDef {
    pub key: String,
    pub dimension: Dimension,
    pub label: String,
    pub unit: Unit,
    pub better: Better,
}

fn def(key: &str, dimension: Dimension, label: &str, unit: Unit, better: Better) -> FigureDef {
    FigureDef {
        key: key.into(),
        dimension,
        label: label.into(),
        unit,
        better,
    }
}

/// Which way an application metric is better, from its name.
pub fn metric_direction(name: &str) -> Better {
    let n = name.to_ascii_lowercase();
    let higher = n.contains("per_s")
        || ["throughput", "accuracy", "acc", "score", "fps"]
            .iter()
            .any(|s| n.ends_with(s));
    let lower = ["loss", "error", "err", "latency", "time"]
        .iter()
        .any(|s| n.contains(s));
    match (higher, lower) {
        (true, _) => Better::Higher,
        (false, true) => Better::Lower,
        (false, false) => Better::Neither,
    }
}

/// What a run asked for: cores, memory (GiB, when it said), GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Request {
    pub cores: f64,
    pub tasks: f64,
    pub memory_gib: Option<f64>,
    pub gpus: f64,
    pub nodes: f64,
}

impl Request {
    /// From the workflow the run ran (its copy in the run directory).
    pub fn of(workflow: Option<&Workflow>) -> Request {
        let Some(w) = workflow else {
            return Request {
                cores: 1.0,
                tasks: 1.0,
                memory_gib: None,
                gpus: 0.0,
                nodes: 1.0,
            };
        };
        let t = w.spec.resources.totals();
        Request {
            cores: f64::from(t.cores),
            tasks: f64::from(t.tasks),
            memory_gib: t.memory_bytes.map(|b| b as f64 / f64::from(1u32 << 30)),
            gpus: f64::from(t.gpus),
            nodes: f64::from(t.nodes),
        }
    }
}

/// Everything known about one run that the figures come from.
pub struct RunData<'a> {
    pub detail: &'a RunDetail,
    pub request: Request,
    pub price: Option<&'a Price>,
    /// The app metric that counts the work done, for the cost per unit.
    pub unit: Option<&'a str>,
}

/// The figures of one run, with their definitions.
pub fn of_run(run: &RunData<'_>) -> (Vec<FigureDef>, BTreeMap<String, f64>) {
    use Better::{Higher, Lower, Neither};
    use Dimension::*;
    let d = run.detail;
    let r = &d.run;
    let mut defs = Vec::new();
    let mut values = BTreeMap::new();
    let mut put = |def: FigureDef, value: Option<f64>| {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            values.insert(def.key.clone(), v);
            defs.push(def);
        }
    };
    let wall = r.wall_seconds;
    put(
        def(
            "wallSeconds",
            Performance,
            "time to completion",
            Unit::Seconds,
            Lower,
        ),
        wall,
    );
    for p in &d.phases {
        put(
            def(
                &format!("phase.{}.seconds", p.name),
                Performance,
                &format!("phase {}", p.name),
                Unit::Seconds,
                Lower,
            ),
            p.wall_seconds,
        );
    }
    let cpu: f64 = d
        .phases
        .iter()
        .map(|p| p.cpu_user_seconds.unwrap_or(0.0) + p.cpu_system_seconds.unwrap_or(0.0))
        .sum();
    put(
        def(
            "cpuSeconds",
            Performance,
            "CPU time",
            Unit::Seconds,
            Neither,
        ),
        Some(cpu),
    );
    put(
        def(
            "cpuEfficiency",
            Performance,
            "CPU efficiency",
            Unit::Fraction,
            Higher,
        ),
        wall.filter(|w| *w > 0.0)
            .map(|w| cpu / (w * run.request.cores)),
    );
    let peak = d
        .phases
        .iter()
        .filter_map(|p| p.peak_job_rss_bytes.or(p.max_rss_bytes))
        .max();
    put(
        def(
            "peakMemoryBytes",
            Performance,
            "peak memory",
            Unit::Bytes,
            Lower,
        ),
        peak.map(|b| b as f64),
    );
    let gpu: Vec<f64> = d
        .phases
        .iter()
        .filter_map(|p| p.gpu.map(|g| g.mean_utilisation_percent))
        .collect();
    put(
        def(
            "gpuSmPercent",
            Performance,
            "GPU SM activity (mean)",
            Unit::Percent,
            Higher,
        ),
        (!gpu.is_empty()).then(|| gpu.iter().sum::<f64>() / gpu.len() as f64),
    );
    for p in &d.phases {
        for m in &p.metrics {
            let better = metric_direction(&m.name);
            // Rates are averaged over the phase; other metrics are read at the end.
            let value = if better == Higher && m.name.contains("per_s") {
                m.mean
            } else {
                m.last
            };
            // `comm_*` metrics measure the path between ranks (latency, bandwidth): data access.
            let (dimension, label) = match m.name.strip_prefix("comm_") {
                Some(rest) => (
                    DataAccess,
                    format!("communication {}", rest.replace('_', " ")),
                ),
                None => (Performance, m.name.clone()),
            };
            put(
                def(
                    &format!("metric.{}", m.name),
                    dimension,
                    &label,
                    Unit::Value,
                    better,
                ),
                Some(value),
            );
        }
    }
    // A backend that saw the queue itself (Kubernetes: pod scheduled − created) says so;
    // elsewhere it is the agent's start − submit.
    let queue = r
        .figures
        .get("queueWaitSeconds")
        .copied()
        .or_else(|| r.started_at.map(|s| (s - r.submitted_at).max(0.0)));
    put(
        def(
            "queueWaitSeconds",
            Elasticity,
            "queue wait / container start",
            Unit::Seconds,
            Lower,
        ),
        queue,
    );
    put(
        def(
            "imageBuildSeconds",
            Elasticity,
            "image build",
            Unit::Seconds,
            Lower,
        ),
        r.figures.get("imageBuildSeconds").copied(),
    );
    put(
        def(
            "podStartSeconds",
            Elasticity,
            "pod start (image pull + start)",
            Unit::Seconds,
            Lower,
        ),
        r.figures.get("podStartSeconds").copied(),
    );
    let first_start = d
        .phases
        .iter()
        .filter_map(|p| p.started_at)
        .reduce(f64::min);
    put(
        def(
            "startLatencySeconds",
            Elasticity,
            "submit to first phase",
            Unit::Seconds,
            Lower,
        ),
        first_start.map(|s| (s - r.submitted_at).max(0.0)),
    );
    // Several tasks or nodes: how long after its phase started the job had all its processes
    // (the most it ever had), for the phase where that took longest.
    let scale_out = (run.request.tasks > 1.0 || run.request.nodes > 1.0)
        .then(|| {
            d.phases
                .iter()
                .filter(|p| p.peak_processes.is_some_and(|n| n > 1))
                .filter_map(|p| Some((p.peak_processes_at? - p.started_at?).max(0.0)))
                .reduce(f64::max)
        })
        .flatten();
    put(
        def(
            "scaleOutSeconds",
            Elasticity,
            "time to scale out (all tasks running)",
            Unit::Seconds,
            Lower,
        ),
        scale_out,
    );
    // After-hours windows: how long a freeze took to empty the target, and the time frozen.
    if !r.windows.is_empty() {
        let longest_stop = r.windows.iter().map(|w| w.stop_seconds).reduce(f64::max);
        put(
            def(
                "freezeStopSeconds",
                Elasticity,
                "freeze: close to no job process (longest)",
                Unit::Seconds,
                Lower,
            ),
            longest_stop,
        );
        let frozen: f64 = r.windows.iter().filter_map(|w| w.frozen_seconds).sum();
        put(
            def(
                "frozenSeconds",
                Elasticity,
                "time frozen (windows closed)",
                Unit::Seconds,
                Neither,
            ),
            Some(frozen),
        );
        let lost: Option<f64> = r
            .windows
            .iter()
            .filter_map(|w| w.lost_seconds)
            .reduce(|a, b| a + b);
        put(
            def(
                "workLostSeconds",
                Elasticity,
                "work lost to freezes (in all)",
                Unit::Seconds,
                Lower,
            ),
            lost,
        );
        let checkpoint = r.windows.iter().filter_map(|w| w.checkpoint_bytes).max();
        put(
            def(
                "checkpointBytes",
                Elasticity,
                "checkpoint size (largest)",
                Unit::Bytes,
                Neither,
            ),
            checkpoint.map(|b| b as f64),
        );
    }
    put(
        def(
            "stageInSeconds",
            DataAccess,
            "stage-in time",
            Unit::Seconds,
            Lower,
        ),
        r.figures.get("stageInSeconds").copied(),
    );
    put(
        def(
            "inputBytes",
            DataAccess,
            "input bytes",
            Unit::Bytes,
            Neither,
        ),
        r.figures.get("inputBytes").copied(),
    );
    for p in &d.phases {
        let wall = p.wall_seconds.filter(|w| *w > 0.0);
        if let Some(io) = p.io {
            for (what, bytes) in [("read", io.read_chars), ("written", io.write_chars)] {
                let key = format!("phase.{}.logical.{what}", p.name);
                put(
                    def(
                        &format!("{key}Bytes"),
                        DataAccess,
                        &format!("phase {}: bytes {what} by the job", p.name),
                        Unit::Bytes,
                        Neither,
                    ),
                    Some(bytes as f64),
                );
                // The job's own throughput over the phase (its reads and writes, cache or
                // storage): what a file system gives it, beside what it computes.
                put(
                    def(
                        &format!("{key}Rate"),
                        DataAccess,
                        &format!("phase {}: {what} by the job per second", p.name),
                        Unit::BytesPerSecond,
                        Neither,
                    ),
                    wall.filter(|_| bytes > 0).map(|w| bytes as f64 / w),
                );
            }
        }
        for (what, bytes) in [("read", p.read_bytes), ("written", p.write_bytes)] {
            let Some(bytes) = bytes else { continue };
            let key = format!("phase.{}.{what}", p.name);
            put(
                def(
                    &format!("{key}Bytes"),
                    DataAccess,
                    &format!("phase {}: storage bytes {what}", p.name),
                    Unit::Bytes,
                    Neither,
                ),
                Some(bytes as f64),
            );
            put(
                def(
                    &format!("{key}Rate"),
                    DataAccess,
                    &format!("phase {}: {what} rate", p.name),
                    Unit::BytesPerSecond,
                    Neither,
                ),
                wall.map(|w| bytes as f64 / w),
            );
        }
    }
    let read: i64 = d.phases.iter().filter_map(|p| p.read_bytes).sum();
    let written: i64 = d.phases.iter().filter_map(|p| p.write_bytes).sum();
    if d.phases.iter().any(|p| p.io.is_some()) {
        let io: Vec<_> = d.phases.iter().filter_map(|p| p.io).collect();
        let logical = |f: fn(&atlas_spec::record::PhaseIo) -> u64| io.iter().map(f).sum::<u64>();
        put(
            def(
                "logicalReadBytes",
                DataAccess,
                "bytes read by the job (its read calls; cache or storage)",
                Unit::Bytes,
                Neither,
            ),
            Some(logical(|i| i.read_chars) as f64),
        );
        put(
            def(
                "logicalWriteBytes",
                DataAccess,
                "bytes written by the job (its write calls)",
                Unit::Bytes,
                Neither,
            ),
            Some(logical(|i| i.write_chars) as f64),
        );
    }
    put(
        def(
            "readBytes",
            DataAccess,
            "storage bytes read (page-cache misses)",
            Unit::Bytes,
            Neither,
        ),
        Some(read as f64),
    );
    put(
        def(
            "writeBytes",
            DataAccess,
            "storage bytes written",
            Unit::Bytes,
            Neither,
        ),
        Some(written as f64),
    );
    if let Some(w) = wall.filter(|w| *w > 0.0) {
        put(
            def(
                "readRate",
                DataAccess,
                "storage read rate",
                Unit::BytesPerSecond,
                Neither,
            ),
            Some(read as f64 / w),
        );
        put(
            def(
                "writeRate",
                DataAccess,
                "storage write rate",
                Unit::BytesPerSecond,
                Neither,
            ),
            Some(written as f64 / w),
        );
    }
    if let (Some(price), Some(w)) = (run.price, wall) {
        let memory = run
            .request
            .memory_gib
            .or(peak.map(|b| (b as f64 / f64::from(1u32 << 30)).max(0.001)))
            .unwrap_or(0.0);
        let cost = price.cost(Usage {
            hours: w / 3600.0,
            cores: run.request.cores,
            memory_gib: memory,
            gpus: run.request.gpus,
        });
        put(
            def("cost", Economics, "cost per run", Unit::Money, Lower),
            Some(cost.cost),
        );
        put(
            def(
                "charged",
                Economics,
                "charged to the user (TCS)",
                Unit::Money,
                Lower,
            ),
            cost.charged,
        );
        if let Some(unit) = run.unit {
            let work = d
                .phases
                .iter()
                .flat_map(|p| &p.metrics)
                .filter(|m| m.name == unit)
                .map(|m| m.last)
                .reduce(f64::max);
            put(
                def(
                    "costPer1000Units",
                    Economics,
                    &format!("cost per 1,000 {unit}"),
                    Unit::Money,
                    Lower,
                ),
                work.filter(|w| *w > 0.0)
                    .map(|work| cost.cost / work * 1000.0),
            );
        }
    }
    (defs, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_directions_come_from_their_names() {
        assert_eq!(metric_direction("imgs_per_s"), Better::Higher);
        assert_eq!(metric_direction("accuracy"), Better::Higher);
        assert_eq!(metric_direction("loss"), Better::Lower);
        assert_eq!(metric_direction("val_error"), Better::Lower);
        assert_eq!(metric_direction("samples"), Better::Neither);
    }

    #[test]
    fn the_request_counts_cores_memory_and_gpus() {
        let mut w = Workflow::default();
        w.spec.resources.tasks = Some(2);
        w.spec.resources.cpus_per_task = Some(3);
        w.spec.resources.memory_per_cpu = Some(atlas_spec::Quantity::from_bytes(1 << 30));
        w.spec.resources.gpus_per_task = Some(1);
        let r = Request::of(Some(&w));
        assert_eq!((r.cores, r.memory_gib, r.gpus), (6.0, Some(6.0), 2.0));
        assert_eq!(Request::of(None).cores, 1.0);
    }
}
