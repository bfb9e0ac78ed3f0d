//! What a running job is doing, from its records: the phase, progress, cores and memory in
//! use and the latest app metrics, drawn as one progress line per run.

use std::collections::BTreeMap;

use atlas_spec::record::{PhaseStatus, RecordBody};
use indicatif::{ProgressBar, ProgressStyle};

use crate::commands::format;

/// Live figures of a run, from its records.
#[derive(Default)]
pub(super) struct Live {
    /// Printed before each line about the run (its target).
    pub(super) label: String,
    phase: String,
    progress: Option<(u64, u64)>,
    cpu: Option<(f64, f64)>,
    cores: f64,
    rss: u64,
    metrics: BTreeMap<String, f64>,
    pub(super) status: Option<PhaseStatus>,
}

impl Live {
    /// Nothing seen yet; lines about the run start with `label`.
    pub(super) fn new(label: &str) -> Self {
        Live {
            label: label.to_string(),
            ..Live::default()
        }
    }

    pub(super) fn update(&mut self, body: &RecordBody, mono: f64, bar: &ProgressBar) {
        match body {
            RecordBody::PhaseStart { phase, .. } => {
                self.phase = phase.clone();
                self.progress = None;
                bar.suspend(|| eprintln!("  {} {phase}: started", self.label));
            }
            RecordBody::PhaseEnd {
                phase,
                status,
                wall_seconds,
                cause,
                ..
            } => {
                let cause = cause
                    .as_ref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default();
                bar.suspend(|| {
                    eprintln!(
                        "  {} {phase}: {} after {}{cause}",
                        self.label,
                        status.as_str(),
                        format::seconds(*wall_seconds)
                    )
                });
            }
            RecordBody::Sample {
                cpu_user_seconds,
                cpu_system_seconds,
                rss_bytes,
                ..
            } => {
                let cpu = cpu_user_seconds + cpu_system_seconds;
                if let Some((t0, c0)) = self.cpu.filter(|(t0, _)| mono > *t0) {
                    self.cores = (cpu - c0) / (mono - t0);
                }
                self.cpu = Some((mono, cpu));
                self.rss = *rss_bytes;
            }
            RecordBody::Progress { current, total, .. } => self.progress = Some((*current, *total)),
            RecordBody::Metric { name, value, .. } => {
                self.metrics.insert(name.clone(), *value);
            }
            RecordBody::RunEnd { status, .. } => self.status = Some(*status),
            _ => {}
        }
    }

    /// Phase, cores in use, memory and the latest app metrics (progress is the bar's).
    fn message(&self) -> String {
        let metrics: Vec<String> = self
            .metrics
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        format!(
            "{}  {:.1} cores  {}  {}",
            self.phase,
            self.cores,
            format::bytes(self.rss as i64),
            metrics.join("  ")
        )
    }
}

pub(super) const WITHOUT_BAR: &str = "{prefix} [{elapsed_precise}] {wide_msg}";
const WITH_BAR: &str = "{prefix} [{elapsed_precise}] {bar:24} {pos}/{len} {wide_msg}";

/// A bar where the phase reports progress (`epoch 3/10`), elapsed time and figures otherwise.
pub(super) fn show_progress(bar: &ProgressBar, live: &Live) {
    let template = match live.progress {
        Some((current, total)) => {
            bar.set_length(total);
            bar.set_position(current);
            WITH_BAR
        }
        None => WITHOUT_BAR,
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("█░ "),
    );
    bar.set_message(live.message());
}
