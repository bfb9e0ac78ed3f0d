//! `atlas run WORKFLOW --on TARGET… [--repeat N] [--parallel] [--label k=v]… [--interval 1s]`:
//! one experiment of the workflow (or a job script, imported first) on every target. Inputs
//! are checked before anything is submitted; the like-for-like check is recorded with the
//! experiment; each run's agent spool is followed into the store with live progress on stderr.
//! Runs go one after another, interleaved (A B C A B C…), or with `--parallel` every target of
//! a repetition at once.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::time::Duration;

use atlas_backends::Named;
use atlas_store::Store;
use indicatif::MultiProgress;

use crate::exit::Failure;
use tracker::{Context, Outcome, Tracker};

mod live;
mod tracker;

#[derive(clap::Args)]
pub struct Args {
    /// A Workflow (atlas.yaml) or a job script (LSF, Slurm or PBS; imported first).
    workflow: PathBuf,
    /// Where to run: a target name from `atlas targets` (repeatable).
    #[arg(long = "on", required = true)]
    targets: Vec<String>,
    /// Runs per target.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    /// Run every target of a repetition at the same time (default: one after another).
    #[arg(long)]
    parallel: bool,
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
pub(super) fn new_id(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let hash = std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()));
    format!("{prefix}-{:08x}", hash as u32)
}

pub fn run(args: Args) -> Result<(), Failure> {
    let chosen = chosen_targets(&args.targets)?;
    let targets: Vec<&Named> = chosen.iter().collect();
    let workflow = super::load_workflow_or_script(&args.workflow)?;
    if workflow.spec.phases.is_empty() {
        return Err(Failure::input(format!(
            "{}: the workflow has no phases to run",
            args.workflow.display()
        )));
    }
    let project_dir = std::env::current_dir()
        .map_err(|e| Failure::environment(format!("cannot read the current directory: {e}")))?;
    let (mut store, db_path) = super::db::open(args.db.as_deref())?;
    let cache = db_path.parent().unwrap_or(&project_dir).join("inputs");
    let inputs = atlas_backends::data::verify(&workflow.spec.data.inputs, &project_dir, &cache)
        .map_err(|why| {
            Failure::input(format!(
                "{}: {why}; nothing was submitted",
                args.workflow.display()
            ))
        })?;
    let agent = std::env::current_exe()
        .map_err(|e| Failure::environment(format!("cannot find the atlas binary: {e}")))?;
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
    let total = args.repeat as usize * targets.len();
    eprintln!(
        "experiment {experiment}: {total} run(s) of {} on {}",
        workflow.metadata.name,
        args.targets.join(", ")
    );
    like_for_like(&mut *store, &experiment, &targets, &workflow)?;
    let ctx = Context {
        experiment: &experiment,
        workflow: &workflow,
        project_dir: &project_dir,
        db_path: &db_path,
        agent: &agent,
        interval: args.interval,
        inputs: &inputs,
        labels: &labels,
    };
    // Ctrl-C / SIGTERM: cancel the running jobs, let their agents record it, start no more.
    atlas_agent::signals::install();
    let bars = MultiProgress::new();
    let mut outcomes = Vec::new();
    let mut interrupted = false;
    'rounds: for repetition in 0..args.repeat {
        let rounds: Vec<&[&Named]> = if args.parallel {
            vec![&targets[..]]
        } else {
            targets.chunks(1).collect()
        };
        for round in rounds {
            if interrupted {
                break 'rounds;
            }
            let mut running = Vec::new();
            for target in round {
                let mut tracker = Tracker::new(&mut *store, &ctx, target, repetition, &bars)?;
                tracker.start(&mut *store, &ctx)?;
                running.push(tracker);
            }
            interrupted |= follow(&mut *store, &ctx, &mut running, interrupted)?;
            for tracker in running {
                let detail = store.run(&tracker.run_id).map_err(Failure::environment)?;
                eprint!("{}", super::show::table(&detail));
                outcomes.push((tracker.run_id, tracker.outcome));
            }
        }
    }
    finish(&experiment, total, &outcomes, interrupted)
}

/// The targets named with `--on`, each known; an unknown one is an input error.
fn chosen_targets(names: &[String]) -> Result<Vec<Named>, Failure> {
    let known = atlas_backends::target::load(&atlas_backends::target::config_files())
        .map_err(Failure::input)?;
    names
        .iter()
        .map(|name| {
            known
                .iter()
                .find(|t| &t.name == name)
                .cloned()
                .ok_or_else(|| {
                    let names: Vec<&str> = known.iter().map(|t| t.name.as_str()).collect();
                    Failure::input(format!(
                        "unknown target `{name}` (known: {}; see `atlas targets`)",
                        names.join(", ")
                    ))
                })
        })
        .collect()
}

/// Records and prints what differs between the runs other than the target.
fn like_for_like(
    store: &mut dyn Store,
    experiment: &str,
    targets: &[&Named],
    workflow: &atlas_spec::Workflow,
) -> Result<(), Failure> {
    let mut distinct: Vec<&Named> = Vec::new();
    for t in targets {
        if !distinct.iter().any(|d| d.name == t.name) {
            distinct.push(t);
        }
    }
    let differences = atlas_backends::alike::differences(&distinct, workflow);
    if differences.is_empty() {
        if distinct.len() > 1 {
            eprintln!("like-for-like: the runs differ only in target (same commands, environment, resources)");
        }
        return Ok(());
    }
    for line in &differences {
        eprintln!("warning: like-for-like: {line}");
    }
    store
        .set_differences(experiment, &differences)
        .map_err(Failure::environment)
}

/// Follows the running jobs until all have ended; true when a signal asked to stop.
fn follow(
    store: &mut dyn Store,
    ctx: &Context<'_>,
    running: &mut [Tracker],
    mut interrupted: bool,
) -> Result<bool, Failure> {
    // Short enough that a job's end is noticed at once; each tick is a stat of the spool and a
    // try_wait (Slurm's watch rate-limits its own squeue calls).
    let tick = Duration::from_millis(10).min(ctx.interval);
    while running.iter().any(|t| t.outcome.is_none()) {
        for tracker in running.iter_mut() {
            tracker.poll(store, ctx)?;
        }
        // Never wait after the end was seen.
        if running.iter().all(|t| t.outcome.is_some()) {
            break;
        }
        if let Some(signal) = atlas_agent::signals::take().filter(|_| !interrupted) {
            eprintln!("  signal {signal}: cancelling the running job(s)");
            running.iter_mut().for_each(Tracker::cancel);
            interrupted = true;
        }
        std::thread::sleep(tick);
    }
    Ok(interrupted)
}

/// The experiment's summary line and exit: 3 when a target was unusable, 1 when a run failed.
fn finish(
    experiment: &str,
    total: usize,
    outcomes: &[(String, Option<Outcome>)],
    interrupted: bool,
) -> Result<(), Failure> {
    let mut failures = Vec::new();
    let mut unusable = Vec::new();
    for (run, outcome) in outcomes {
        match outcome {
            Some(Outcome::Succeeded) => {}
            Some(Outcome::Failed(cause)) => failures.push(format!("{run}: {cause}")),
            Some(Outcome::Unusable(why)) => unusable.push(format!("{run}: {why}")),
            None => failures.push(format!("{run}: not followed to its end")),
        }
    }
    let succeeded = outcomes.len() - failures.len() - unusable.len();
    eprintln!("\nexperiment {experiment}: {succeeded} of {total} run(s) succeeded; see `atlas show {experiment}`, `atlas logs RUN`");
    let mut all = unusable.clone();
    all.extend(failures.iter().cloned());
    let prefix = if interrupted { "interrupted; " } else { "" };
    if !unusable.is_empty() {
        return Err(Failure::environment(format!("{prefix}{}", all.join("; "))));
    }
    if !failures.is_empty() || interrupted {
        return Err(Failure::JobFailed(format!("{prefix}{}", all.join("; "))));
    }
    Ok(())
}
