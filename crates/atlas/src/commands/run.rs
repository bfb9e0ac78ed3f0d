//! `atlas run WORKFLOW --on local [--repeat N] [--label k=v]… [--interval 1s]`: runs the
//! workflow (or a job script, imported first) under `atlas agent`, follows its spool into the
//! store while it runs, shows live progress on stderr, and prints a summary.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atlas_spec::record::{PhaseStatus, RecordBody};
use atlas_spec::Workflow;
use atlas_store::{NewRun, SqliteStore, Store};
use indicatif::{ProgressBar, ProgressStyle};

use super::format;
use crate::exit::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// A Workflow (atlas.yaml) or a job script (LSF, Slurm or PBS; imported first).
    workflow: PathBuf,
    /// Where to run: a target name from `atlas targets` (repeatable). This version runs local ones.
    #[arg(long = "on", required = true)]
    targets: Vec<String>,
    /// Runs per target.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    /// A label for the experiment and its runs (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Sampling interval of the agent.
    #[arg(long, default_value = "1s", value_parser = super::parse_interval)]
    interval: Duration,
    /// The database (default: $ATLAS_DB or $XDG_DATA_HOME/atlas/atlas.db).
    #[arg(long)]
    db: Option<PathBuf>,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{text}` is not key=value"))
}

/// A short random id with a prefix (`r-3f9a1c2e`).
fn new_id(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let hash = std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()));
    format!("{prefix}-{:08x}", hash as u32)
}

pub fn run(args: Args) -> Result<(), Failure> {
    let known = crate::targets::load(&crate::targets::config_files()).map_err(Failure::input)?;
    for name in &args.targets {
        let Some(target) = known.iter().find(|t| &t.name == name) else {
            let names: Vec<&str> = known.iter().map(|t| t.name.as_str()).collect();
            return Err(Failure::input(format!(
                "unknown target `{name}` (known: {}; see `atlas targets`)",
                names.join(", ")
            )));
        };
        if target.target.kind == crate::targets::Kind::Podman {
            return Err(Failure::input(format!(
                "target `{name}` is a podman target; this version runs workflows on local and slurm targets"
            )));
        }
    }
    let workflow = super::load_workflow_or_script(&args.workflow)?;
    if workflow.spec.phases.is_empty() {
        return Err(Failure::input(format!(
            "{}: the workflow has no phases to run",
            args.workflow.display()
        )));
    }
    let (mut store, db_path) = super::db::open(args.db.as_deref())?;
    let labels: BTreeMap<_, _> = args.labels.iter().cloned().collect();
    let labels = serde_json::to_value(&labels).unwrap_or_default();
    let experiment = new_id("e");
    store
        .create_experiment(
            &experiment,
            &workflow.metadata.name,
            &labels,
            atlas_agent::spool::unix_now(),
        )
        .map_err(Failure::environment)?;
    let total = args.repeat as usize * args.targets.len();
    eprintln!(
        "experiment {experiment}: {total} run(s) of {} on {}",
        workflow.metadata.name,
        args.targets.join(", ")
    );
    // Ctrl-C / SIGTERM: cancel the current job, let its agent record it, start no further runs.
    atlas_agent::signals::install();
    let mut interrupted = false;
    let mut failures = Vec::new();
    'runs: for repetition in 0..args.repeat {
        for target in &args.targets {
            if interrupted {
                break 'runs;
            }
            let run_id = new_id("r");
            let run_dir = super::db::run_dir(&db_path, &run_id);
            std::fs::create_dir_all(&run_dir).map_err(|e| {
                Failure::environment(format!("cannot create {}: {e}", run_dir.display()))
            })?;
            let workflow_file = run_dir.join("workflow.yaml");
            std::fs::write(&workflow_file, atlas_spec::to_yaml(&workflow)).map_err(|e| {
                Failure::environment(format!("cannot write {}: {e}", workflow_file.display()))
            })?;
            store
                .create_run(&NewRun {
                    id: run_id.clone(),
                    experiment_id: Some(experiment.clone()),
                    workflow: workflow.metadata.name.clone(),
                    target: target.clone(),
                    repetition: i64::from(repetition),
                    run_dir: run_dir.display().to_string(),
                    labels: labels.clone(),
                    submitted_at: atlas_agent::spool::unix_now(),
                })
                .map_err(Failure::environment)?;
            let target_def = known
                .iter()
                .find(|t| &t.name == target)
                .expect("checked above");
            let (status, was_interrupted) = run_one(
                &mut store,
                target_def,
                &workflow,
                &run_id,
                &run_dir,
                &workflow_file,
                args.interval,
            )?;
            let detail = store.run(&run_id).map_err(Failure::environment)?;
            eprint!("{}", super::show::table(&detail));
            interrupted |= was_interrupted;
            if status == PhaseStatus::Failed {
                failures.push(format!(
                    "{run_id}: {}",
                    detail.run.cause.unwrap_or_default()
                ));
            }
        }
    }
    eprintln!("\nexperiment {experiment}: {} of {total} run(s) succeeded; see `atlas runs`, `atlas show RUN`, `atlas logs RUN`", total - failures.len());
    if interrupted {
        return Err(Failure::JobFailed(format!(
            "interrupted; {}",
            failures.join("; ")
        )));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Failure::JobFailed(failures.join("; ")))
    }
}

/// Live figures of a run, from its records.
#[derive(Default)]
struct Live {
    phase: String,
    progress: Option<(u64, u64)>,
    cpu: Option<(f64, f64)>,
    cores: f64,
    rss: u64,
    metrics: BTreeMap<String, f64>,
    status: Option<PhaseStatus>,
}

impl Live {
    fn update(&mut self, body: &RecordBody, mono: f64, bar: &ProgressBar) {
        match body {
            RecordBody::PhaseStart { phase, .. } => {
                self.phase = phase.clone();
                self.progress = None;
                bar.suspend(|| eprintln!("  {phase}: started"));
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
                        "  {phase}: {} after {}{cause}",
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

/// Starts one run on its target and follows its spool into the store until the job ends.
fn run_one(
    store: &mut SqliteStore,
    target: &crate::targets::Named,
    workflow: &Workflow,
    run_id: &str,
    run_dir: &Path,
    workflow_file: &Path,
    interval: Duration,
) -> Result<(PhaseStatus, bool), Failure> {
    let now = atlas_agent::spool::unix_now;
    let (ended, canceller) =
        match crate::launch::start(target, workflow, run_id, run_dir, workflow_file, interval) {
            Ok(ended) => ended,
            Err(crate::launch::LaunchError::Rejected(cause)) => {
                eprintln!("  {run_id}: {cause}");
                store
                    .finish_run(run_id, "failed", &cause, now())
                    .map_err(Failure::environment)?;
                return Ok((PhaseStatus::Failed, false));
            }
            Err(crate::launch::LaunchError::Environment(failure)) => return Err(failure),
        };
    let (status, end, interrupted) = follow(store, run_id, run_dir, &ended, &canceller, interval)?;
    match status {
        Some(status) => Ok((status, interrupted)),
        None => {
            let cause = format!(
                "the job ended ({}) without its agent reporting the end; see {}",
                end.state,
                run_dir.display()
            );
            store
                .finish_run(run_id, "failed", &cause, now())
                .map_err(Failure::environment)?;
            Ok((PhaseStatus::Failed, interrupted))
        }
    }
}

/// Ingests the spool as it grows, showing progress, until `ended` says the job is over.
fn follow(
    store: &mut SqliteStore,
    run_id: &str,
    run_dir: &Path,
    ended: &std::sync::mpsc::Receiver<crate::launch::JobEnd>,
    canceller: &crate::launch::Canceller,
    interval: Duration,
) -> Result<(Option<PhaseStatus>, crate::launch::JobEnd, bool), Failure> {
    let mut interrupted = false;
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template(WITHOUT_BAR).expect("a valid template"));
    bar.set_prefix(run_id.to_string());
    bar.enable_steady_tick(Duration::from_millis(250));
    let spool = run_dir.join("spool.jsonl");
    let mut offset = 0;
    let mut live = Live::default();
    loop {
        let end = match ended.recv_timeout(Duration::from_millis(200).min(interval)) {
            Ok(end) => Some(end),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Some(crate::launch::JobEnd {
                state: "lost".into(),
            }),
        };
        if spool.exists() {
            let contents = atlas_agent::spool::read_spool(&spool, offset)
                .map_err(|e| Failure::environment(format!("reading {}: {e}", spool.display())))?;
            offset = contents.complete_bytes;
            for (line, why) in contents.bad_lines.iter().filter(|_| end.is_some()) {
                bar.suspend(|| eprintln!("warning: {}:{line}: {why}", spool.display()));
            }
            store
                .ingest(&contents.records)
                .map_err(Failure::environment)?;
            for r in &contents.records {
                live.update(&r.body, r.mono, &bar);
            }
            show_progress(&bar, &live);
        }
        if let Some(signal) = atlas_agent::signals::take().filter(|_| !interrupted) {
            bar.suspend(|| {
                eprintln!(
                    "  signal {signal}: cancelling {run_id}; waiting for its agent to record it"
                )
            });
            canceller.cancel();
            interrupted = true;
        }
        if let Some(end) = end {
            bar.finish_and_clear();
            return Ok((live.status, end, interrupted));
        }
    }
}
