//! The terminal's view of a run's lifecycle ([`Terminal`], the CLI's `RunObserver`): what each
//! running job is doing, from its records (the phase, progress, cores and memory in use, the
//! latest app metrics) as one progress line per run, and a line per event on stderr.

use std::collections::BTreeMap;
use std::time::Duration;

use atlas_run::{Outcome, RunObserver};
use atlas_spec::record::{Record, RecordBody};
use atlas_store::RunDetail;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::commands::format;

/// Live figures of a run, from its records.
#[derive(Default)]
struct Live {
    /// Printed before each line about the run (its target).
    label: String,
    phase: String,
    progress: Option<(u64, u64)>,
    cpu: Option<(f64, f64)>,
    cores: f64,
    rss: u64,
    metrics: BTreeMap<String, f64>,
}

impl Live {
    /// Nothing seen yet; lines about the run start with `label`.
    fn new(label: &str) -> Self {
        Live {
            label: label.to_string(),
            ..Live::default()
        }
    }

    fn update(&mut self, body: &RecordBody, mono: f64, bar: &ProgressBar) {
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

const WITHOUT_BAR: &str = "{prefix} [{elapsed_precise}] {wide_msg}";
const WITH_BAR: &str = "{prefix} [{elapsed_precise}] {bar:24} {pos}/{len} {wide_msg}";

/// A bar where the phase reports progress (`epoch 3/10`), elapsed time and figures otherwise.
fn show_progress(bar: &ProgressBar, live: &Live) {
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

/// The CLI's observer: a progress line per running job, a line per event, the run's table at
/// its end, and Ctrl-C/SIGTERM as a request to stop.
pub(super) struct Terminal {
    /// `WORKFLOW on TARGET, TARGET`, for the first line.
    what: String,
    bars: MultiProgress,
    runs: BTreeMap<String, (ProgressBar, Live)>,
}

impl Terminal {
    pub(super) fn new(workflow: &str, targets: &[String]) -> Self {
        Terminal {
            what: format!("{workflow} on {}", targets.join(", ")),
            bars: MultiProgress::new(),
            runs: BTreeMap::new(),
        }
    }

    /// Prints a line without tearing the progress lines.
    fn say(&self, line: &str) {
        self.bars.suspend(|| eprintln!("{line}"));
    }
}

impl RunObserver for Terminal {
    fn experiment(&mut self, id: &str, runs: usize) {
        eprintln!("experiment {id}: {runs} run(s) of {}", self.what);
    }

    fn like_for_like(&mut self, differences: &[String], targets: usize) {
        if differences.is_empty() && targets > 1 {
            eprintln!("like-for-like: the runs differ only in target (same commands, environment, resources)");
        }
        for line in differences {
            eprintln!("warning: like-for-like: {line}");
        }
    }

    fn submitted(&mut self, run: &str, target: &str, scheduler_id: &str) {
        self.say(&format!("  {target}: {run} submitted ({scheduler_id})"));
        let bar = self.bars.add(ProgressBar::new(0));
        bar.set_style(ProgressStyle::with_template(WITHOUT_BAR).expect("a valid template"));
        bar.set_prefix(format!("{run} {target}"));
        bar.enable_steady_tick(Duration::from_millis(250));
        self.runs.insert(run.to_string(), (bar, Live::new(target)));
    }

    fn record(&mut self, run: &str, record: &Record) {
        if let Some((bar, live)) = self.runs.get_mut(run) {
            live.update(&record.body, record.mono, bar);
            show_progress(bar, live);
            if matches!(record.body, RecordBody::RunEnd { .. }) && record.run == run {
                bar.finish_and_clear();
            }
        }
    }

    fn note(&mut self, _run: &str, text: &str) {
        self.say(&format!("  {text}"));
    }

    fn warning(&mut self, _run: &str, message: &str) {
        self.say(&format!("warning: {message}"));
    }

    fn cancelling(&mut self, run: &str) {
        self.say(&format!(
            "  cancelling {run}; waiting for its agent to record it"
        ));
    }

    fn ended(&mut self, run: &RunDetail, outcome: &Outcome) {
        match self.runs.remove(&run.run.id) {
            Some((bar, _)) => bar.finish_and_clear(),
            None => {
                if let Outcome::Failed(cause) | Outcome::Unusable(cause) = outcome {
                    eprintln!("  {}: {cause}", run.run.id);
                }
            }
        }
        eprint!("{}", crate::commands::show::table(run));
    }

    fn stop_requested(&mut self) -> Option<String> {
        let signal = atlas_agent::signals::take()?;
        self.say(&format!("  signal {signal}: cancelling the running job(s)"));
        Some(format!("signal {signal}"))
    }
}
