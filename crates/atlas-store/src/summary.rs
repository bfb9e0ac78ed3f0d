//! What both stores compute the same way, in Rust: a batch's additions to its phases' sample
//! summaries ([`PhaseSummary`]), which records are lifecycle events (re-applied in sequence
//! order per run at ingest), and a phase's GPU figures. Each store folds these into its own SQL.

use atlas_spec::record::{GpuSample, Record, RecordBody};

use crate::model::{GpuSummary, WindowRow};

/// What a batch of new job samples adds to their phase's summary.
pub(crate) struct PhaseSummary<'a> {
    pub run: &'a str,
    pub phase: &'a str,
    pub samples: i64,
    pub gpu_samples: i64,
    pub peak_rss: i64,
    /// The most processes at once, and when that was first seen.
    pub peak_processes: (i64, f64),
    pub read: (i64, i64),
    pub write: (i64, i64),
}

impl<'a> PhaseSummary<'a> {
    pub(crate) fn add(summaries: &mut Vec<PhaseSummary<'a>>, r: &'a Record) {
        let RecordBody::Sample {
            phase: Some(phase),
            rss_bytes,
            read_bytes,
            write_bytes,
            gpus,
            processes,
            ..
        } = &r.body
        else {
            return;
        };
        let gpu = i64::from(!gpus.is_empty());
        let processes = i64::from(*processes);
        let (rss, read, write) = (*rss_bytes as i64, *read_bytes as i64, *write_bytes as i64);
        match summaries
            .iter_mut()
            .find(|s| s.run == r.run && s.phase == phase)
        {
            Some(s) => {
                s.samples += 1;
                s.gpu_samples += gpu;
                // The first time the peak was seen, whatever order the samples arrived in.
                if processes > s.peak_processes.0
                    || (processes == s.peak_processes.0 && r.time < s.peak_processes.1)
                {
                    s.peak_processes = (processes, r.time);
                }
                s.peak_rss = s.peak_rss.max(rss);
                s.read = (s.read.0.min(read), s.read.1.max(read));
                s.write = (s.write.0.min(write), s.write.1.max(write));
            }
            None => summaries.push(PhaseSummary {
                run: &r.run,
                phase,
                samples: 1,
                gpu_samples: gpu,
                peak_rss: rss,
                peak_processes: (processes, r.time),
                read: (read, read),
                write: (write, write),
            }),
        }
    }
}

/// The agent a runStart, or a wake by an agent started again, names: its host and process.
pub(crate) fn agent_of(body: &str) -> Option<(String, atlas_spec::record::AgentProcess)> {
    match serde_json::from_str::<RecordBody>(body).ok()? {
        RecordBody::RunStart { host, agent, .. } => agent.map(|a| (host, a)),
        RecordBody::Wake {
            host: Some(host),
            agent: Some(agent),
            ..
        } => Some((host, agent)),
        _ => None,
    }
}

/// The lifecycle records' types, as the events table names them (for the replay's query).
pub(crate) const LIFECYCLE_TYPES: &str =
    "'runStart', 'phaseStart', 'phaseEnd', 'runEnd', 'frozen', 'wake'";

/// A run's freezes and wakes, from its lifecycle records in sequence order, as JSON.
pub(crate) fn windows(events: &[Record]) -> String {
    let mut windows: Vec<WindowRow> = Vec::new();
    for r in events {
        match &r.body {
            RecordBody::Frozen {
                phase,
                clean,
                checkpoint_bytes,
                quiesce_seconds,
                stop_seconds,
                reason,
                lost_seconds,
            } => windows.push(WindowRow {
                phase: phase.clone(),
                frozen_at: r.time,
                clean: *clean,
                checkpoint_bytes: *checkpoint_bytes,
                quiesce_seconds: *quiesce_seconds,
                stop_seconds: *stop_seconds,
                reason: reason.clone(),
                lost_seconds: lost_seconds.filter(|s| s.is_finite() && *s >= 0.0),
                woken_at: None,
                frozen_seconds: None,
            }),
            RecordBody::Wake { frozen_seconds, .. } => {
                if let Some(last) = windows.last_mut().filter(|w| w.woken_at.is_none()) {
                    last.woken_at = Some(r.time);
                    last.frozen_seconds = Some(*frozen_seconds);
                }
            }
            _ => {}
        }
    }
    serde_json::to_string(&windows).unwrap_or_else(|_| "[]".into())
}

/// Peaks, means and energy of a phase's GPU samples (in Rust, so the SQL stays portable).
pub(crate) fn summarise_gpus(samples: &[Vec<GpuSample>]) -> Option<GpuSummary> {
    let all: Vec<&GpuSample> = samples.iter().flatten().collect();
    if all.is_empty() {
        return None;
    }
    let devices = all.iter().map(|g| g.index).max().map_or(0, |m| m + 1);
    let energy = (0..devices)
        .map(|d| {
            let mut counters = all
                .iter()
                .filter(|g| g.index == d)
                .filter_map(|g| g.energy_millijoules);
            let first = counters.next()?;
            Some(counters.next_back().unwrap_or(first).saturating_sub(first) as f64 / 1000.0)
        })
        .sum::<Option<f64>>();
    Some(GpuSummary {
        devices,
        peak_utilisation_percent: all.iter().map(|g| g.sm_percent).max().unwrap_or(0),
        mean_utilisation_percent: all.iter().map(|g| f64::from(g.sm_percent)).sum::<f64>()
            / all.len() as f64,
        peak_memory_bytes: all.iter().map(|g| g.memory_used_bytes).max().unwrap_or(0),
        peak_job_memory_bytes: all
            .iter()
            .filter_map(|g| g.job_memory_bytes)
            .max()
            .unwrap_or(0),
        energy_joules: energy,
    })
}

/// What a phase still running becomes when its run is ended from outside (`finish_run`).
pub(crate) fn ended_phase(run: &str) -> &'static str {
    if run == "succeeded" {
        "succeeded"
    } else {
        "failed"
    }
}
