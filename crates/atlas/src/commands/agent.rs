//! `atlas agent WORKFLOW --run-id ID --run-dir DIR`: the in-job runner. Backends start it
//! inside the job; users rarely call it themselves.

use std::path::PathBuf;

use atlas_agent::gpu::{GpuDevices, NoGpus};
use atlas_agent::nvml::NvmlDevices;
use atlas_agent::AgentConfig;
use atlas_spec::record::PhaseStatus;

use crate::exit::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// The Workflow file.
    workflow: PathBuf,
    /// The run's id.
    #[arg(long)]
    run_id: String,
    /// Where the spool and logs go.
    #[arg(long)]
    run_dir: PathBuf,
    /// Sampling interval (100ms … ; e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = super::parse_interval)]
    interval: std::time::Duration,
    /// Time between SIGTERM and SIGKILL when a phase must stop.
    #[arg(long, default_value = "10s", value_parser = super::parse_interval)]
    grace: std::time::Duration,
    /// Do not copy the phases' output to this terminal (it is always in the logs).
    #[arg(long)]
    quiet: bool,
    /// In an array task: the run is `RUN_ID-tN` in `RUN_DIR/tasks/N`, N from
    /// `SLURM_ARRAY_TASK_ID` (Slurm) or `JOB_COMPLETION_INDEX` (a Kubernetes Indexed Job), so
    /// every task has its own spool.
    #[arg(long)]
    array_task: bool,
    /// Also write every record to stdout, flushed at least once a second (the backend reads
    /// them from the pod log). Implies not copying the phases' output there.
    #[arg(long)]
    records_to_stdout: bool,
    /// Keep a copy of each checkpoint a freeze lands in the run directory, and put it back at
    /// a resume when the working directory lost it (Kubernetes: the run directory is on a
    /// volume, the working directory in the pod's image).
    #[arg(long)]
    keep_checkpoint: bool,
    /// A SIGTERM while a phase runs is a window's close, not a cancel: the phase is frozen
    /// with its checkpoint (kept in the run directory) and the agent leaves quietly; an agent
    /// started later resumes the run, and one that finds nothing to resume exits 0.
    #[arg(long)]
    freeze_on_stop: bool,
}

/// The run id and directory of this agent: per array task when asked and in one.
fn run_identity(args: &Args) -> (String, PathBuf) {
    let task = std::env::var("SLURM_ARRAY_TASK_ID")
        .or_else(|_| std::env::var("JOB_COMPLETION_INDEX"))
        .ok()
        .filter(|_| args.array_task)
        .and_then(|t| t.parse::<u32>().ok());
    match task {
        Some(task) => (
            atlas_spec::task_run_id(&args.run_id, task),
            atlas_spec::RunDir::new(&args.run_dir)
                .task(task)
                .root()
                .to_path_buf(),
        ),
        None => (args.run_id.clone(), args.run_dir.clone()),
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    let workflow = atlas_agent::load_workflow(&args.workflow).map_err(Failure::input)?;
    let (run_id, run_dir) = run_identity(&args);
    let config = AgentConfig {
        run_id,
        run_dir,
        interval: args.interval,
        grace: args.grace,
        passthrough: !args.quiet && !args.records_to_stdout,
        records_to_stdout: args.records_to_stdout,
        keep_checkpoint: args.keep_checkpoint || args.freeze_on_stop,
        freeze_on_stop: args.freeze_on_stop,
        warnings: std::sync::Arc::new(|warning| eprintln!("atlas agent: {warning}")),
    };
    // The stop and control signals are blocked before any thread starts (NVML's may).
    atlas_agent::signals::install();
    let gpus: Box<dyn GpuDevices> = match NvmlDevices::load() {
        Some(nvml) => Box::new(nvml),
        None => Box::new(NoGpus),
    };
    let outcome = match atlas_agent::run(&workflow, &config, gpus) {
        // A window's open that finds the run ended, or under way in another agent.
        Err(atlas_agent::AgentError::NotResumable(why)) if args.freeze_on_stop => {
            eprintln!("atlas agent: nothing to resume: {why}");
            return Ok(());
        }
        other => other.map_err(Failure::environment)?,
    };
    if outcome.released {
        eprintln!("atlas agent: the run is frozen and its job given back to the scheduler; the agent started again at the wake resumes it");
        return Ok(());
    }
    match outcome.status {
        PhaseStatus::Failed => Err(Failure::JobFailed(
            outcome.cause.map(|c| c.to_string()).unwrap_or_default(),
        )),
        _ => Ok(()),
    }
}
