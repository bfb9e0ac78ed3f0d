//! What a run used of what it asked for, as Slurm's `seff` says it, for the whole run and for
//! each phase: CPU time against the cores allocated for the wall time, peak memory against the
//! request, GPU activity against the GPUs requested, and what went unused, in core-hours,
//! GPU-hours and, at the target's price, in money.

use atlas_store::{PhaseRow, RunDetail};
use serde::Serialize;

use crate::figures::Request;
use crate::prices::{Price, Usage};

/// One stretch of a run (the run, or a phase) against the request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Use {
    /// `run`, or the phase's name.
    pub name: String,
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    /// CPU time ÷ (cores requested × wall time); above 1 when the job used more than it asked.
    pub cpu_share: f64,
    pub peak_memory_bytes: u64,
    /// Peak ÷ the memory requested, when it was.
    pub memory_share: Option<f64>,
    /// Mean SM activity of the GPUs seen (0–1), when the agent saw GPUs.
    pub gpu_activity: Option<f64>,
    /// Cores × wall − CPU time, in hours (never below 0).
    pub unused_core_hours: f64,
    /// (Memory requested − peak) × wall, in GiB-hours, when memory was requested.
    pub unused_gib_hours: Option<f64>,
    /// GPUs × wall × (1 − activity), in hours, when GPUs were requested and seen.
    pub unused_gpu_hours: Option<f64>,
}

/// A run's efficiency: the request, the run as a whole and each phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Efficiency {
    pub cores: f64,
    pub memory_bytes: Option<f64>,
    pub gpus: f64,
    pub run: Use,
    pub phases: Vec<Use>,
    /// What the unused core-hours, GiB-hours and GPU-hours cost at the target's price.
    pub wasted_cost: Option<f64>,
}

/// The efficiency of an ended run (`None` while it runs or when it has no wall time).
pub fn of(d: &RunDetail, request: Request, price: Option<&Price>) -> Option<Efficiency> {
    let wall = d.run.wall_seconds.filter(|w| *w > 0.0)?;
    let memory_bytes = request
        .memory_gib
        .filter(|g| *g > 0.0)
        .map(|g| g * f64::from(1u32 << 30));
    let phases: Vec<Use> = d
        .phases
        .iter()
        .filter(|p| p.wall_seconds.is_some_and(|w| w > 0.0))
        .map(|p| {
            let stretch =
                Stretch::of_phases(std::slice::from_ref(p), p.wall_seconds.unwrap_or(0.0));
            stretch.against(&p.name, request, memory_bytes)
        })
        .collect();
    let run = Stretch::of_phases(&d.phases, wall).against("run", request, memory_bytes);
    let wasted_cost = price.map(|p| {
        p.cost(Usage {
            hours: 1.0,
            cores: run.unused_core_hours,
            memory_gib: run.unused_gib_hours.unwrap_or(0.0),
            gpus: run.unused_gpu_hours.unwrap_or(0.0),
        })
        .cost
    });
    Some(Efficiency {
        cores: request.cores.max(1.0),
        memory_bytes,
        gpus: request.gpus,
        run,
        phases,
        wasted_cost,
    })
}

/// What the agent measured over some phases.
struct Stretch {
    wall: f64,
    cpu: f64,
    peak: u64,
    gpu_activity: Option<f64>,
}

impl Stretch {
    fn of_phases(phases: &[PhaseRow], wall: f64) -> Stretch {
        let cpu = phases
            .iter()
            .map(|p| p.cpu_user_seconds.unwrap_or(0.0) + p.cpu_system_seconds.unwrap_or(0.0))
            .sum();
        let peak = phases
            .iter()
            .map(|p| {
                p.peak_job_rss_bytes
                    .unwrap_or(0)
                    .max(p.max_rss_bytes.unwrap_or(0))
            })
            .max()
            .unwrap_or(0);
        // Each phase's mean activity weighted by its wall time.
        let seen: Vec<(f64, f64)> = phases
            .iter()
            .filter_map(|p| {
                let g = p.gpu.as_ref()?;
                Some((
                    g.mean_utilisation_percent / 100.0,
                    p.wall_seconds.unwrap_or(0.0),
                ))
            })
            .collect();
        let weight: f64 = seen.iter().map(|(_, w)| w).sum();
        let gpu_activity = (!seen.is_empty()).then(|| {
            if weight > 0.0 {
                seen.iter().map(|(a, w)| a * w).sum::<f64>() / weight
            } else {
                seen.iter().map(|(a, _)| a).sum::<f64>() / seen.len() as f64
            }
        });
        Stretch {
            wall,
            cpu,
            peak: u64::try_from(peak).unwrap_or(0),
            gpu_activity,
        }
    }

    fn against(&self, name: &str, request: Request, memory_bytes: Option<f64>) -> Use {
        let cores = request.cores.max(1.0);
        let hours = self.wall / 3600.0;
        Use {
            name: name.to_string(),
            wall_seconds: self.wall,
            cpu_seconds: self.cpu,
            cpu_share: self.cpu / (self.wall * cores),
            peak_memory_bytes: self.peak,
            memory_share: memory_bytes.map(|m| self.peak as f64 / m),
            gpu_activity: self.gpu_activity,
            unused_core_hours: (cores * self.wall - self.cpu).max(0.0) / 3600.0,
            unused_gib_hours: memory_bytes
                .map(|m| (m - self.peak as f64).max(0.0) / f64::from(1u32 << 30) * hours),
            unused_gpu_hours: (request.gpus > 0.0)
                .then_some(self.gpu_activity)
                .flatten()
                .map(|a| request.gpus * hours * (1.0 - a.min(1.0))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prices::Cloud;

    fn phase(name: &str, wall: f64, cpu: f64, peak: i64, gpu: Option<f64>) -> PhaseRow {
        PhaseRow {
            name: name.into(),
            position: None,
            status: atlas_spec::record::PhaseState::Succeeded,
            started_at: None,
            wall_seconds: Some(wall),
            exit_code: Some(0),
            signal: None,
            cause: None,
            cpu_user_seconds: Some(cpu),
            cpu_system_seconds: Some(0.0),
            max_rss_bytes: None,
            peak_job_rss_bytes: Some(peak),
            read_bytes: None,
            write_bytes: None,
            io: None,
            samples: 1,
            peak_processes: None,
            peak_processes_at: None,
            metrics: Vec::new(),
            gpu: gpu.map(|pct| atlas_store::GpuSummary {
                devices: 2,
                mean_utilisation_percent: pct,
                ..Default::default()
            }),
        }
    }

    fn detail(wall: Option<f64>, phases: Vec<PhaseRow>) -> RunDetail {
        RunDetail {
            run: atlas_store::RunRow {
                id: "r-1".into(),
                status: atlas_spec::record::RunStatus::Succeeded,
                started_at: Some(0.0),
                wall_seconds: wall,
                ..Default::default()
            },
            phases,
            hosts: Vec::new(),
        }
    }

    const GIB: i64 = 1 << 30;

    // Worked by hand: 4 cores for 1 h is 4 core-hours; 3,600 CPU-seconds used is 1; so 25 %
    // and 3 core-hours unused; 8 GiB asked and 4 GiB at peak leave 4 GiB-hours. 2 GPUs for 1 h
    // at 37.5 % SM activity leave 1.25 GPU-hours. At 0.05 per vCPU-hour, 0.01 per GiB-hour and
    // 2.00 per GPU-hour: 3 × 0.05 + 4 × 0.01 + 1.25 × 2 = 2.69.
    #[test]
    fn a_quarter_used_leaves_three_quarters_unused_and_priced() {
        let request = Request {
            cores: 4.0,
            tasks: 4.0,
            memory_gib: Some(8.0),
            gpus: 2.0,
            nodes: 1.0,
        };
        let price = Price::Cloud(Cloud {
            vcpu_hour: 0.05,
            gib_hour: 0.01,
            gpu_hour: 2.0,
            source: "test".into(),
        });
        let d = detail(
            Some(3600.0),
            vec![
                phase("prep", 1200.0, 2400.0, 2 * GIB, None),
                phase("train", 2400.0, 1200.0, 4 * GIB, Some(37.5)),
            ],
        );
        let e = of(&d, request, Some(&price)).unwrap();
        assert!((e.run.cpu_share - 0.25).abs() < 1e-9);
        assert!((e.run.unused_core_hours - 3.0).abs() < 1e-9);
        assert_eq!(e.run.peak_memory_bytes, 4 << 30);
        assert!((e.run.memory_share.unwrap() - 0.5).abs() < 1e-9);
        // Activity is the train phase's only (the one phase where GPUs were seen).
        assert!((e.run.gpu_activity.unwrap() - 0.375).abs() < 1e-9);
        assert!((e.run.unused_gpu_hours.unwrap() - 2.0 * 0.625).abs() < 1e-9);
        // 8 GiB asked, 4 GiB peak: 4 GiB-hours unused.
        assert!((e.run.unused_gib_hours.unwrap() - 4.0).abs() < 1e-9);
        assert!((e.wasted_cost.unwrap() - (3.0 * 0.05 + 4.0 * 0.01 + 1.25 * 2.0)).abs() < 1e-9);
        // Per phase: prep used 2,400 of 4 × 1,200 CPU-seconds (50 %), train 1,200 of 9,600.
        assert_eq!(e.phases.len(), 2);
        assert!((e.phases[0].cpu_share - 0.5).abs() < 1e-9);
        assert!((e.phases[1].cpu_share - 0.125).abs() < 1e-9);
        assert_eq!(
            e.phases[1].unused_gpu_hours.map(|h| (h * 1e6).round()),
            Some(833_333.0)
        );
    }

    #[test]
    fn no_wall_time_no_efficiency_and_no_price_no_money() {
        let request = Request {
            cores: 1.0,
            tasks: 1.0,
            ..Default::default()
        };
        assert_eq!(of(&detail(None, Vec::new()), request, None), None);
        let e = of(
            &detail(Some(10.0), vec![phase("main", 10.0, 12.0, 0, None)]),
            request,
            None,
        )
        .unwrap();
        assert_eq!(e.wasted_cost, None);
        assert_eq!(
            e.run.unused_core_hours, 0.0,
            "more CPU than asked is not negative waste"
        );
        assert_eq!(e.run.unused_gpu_hours, None, "no GPUs asked");
        assert_eq!(e.run.memory_share, None, "no memory asked");
    }
}
