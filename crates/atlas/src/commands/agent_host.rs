//! `atlas agent-host --run-id ID --run-dir DIR [--index N]`: the sampler of one host of a
//! multi-node job (atlas-agent's `host` module). The Slurm targets start one per node with
//! `srun --overlap` beside the main agent; users rarely call it themselves.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use atlas_agent::host::{run_host_sampler, HostConfig};

use crate::exit::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// The run's id (the job's processes carry it as ATLAS_RUN_ID).
    #[arg(long)]
    run_id: String,
    /// The run's directory (on a filesystem every host sees): the main agent's spool is read
    /// there, and this host's samples go to `hosts/HOST.jsonl`.
    #[arg(long)]
    run_dir: PathBuf,
    /// This host's index in the job (default: SLURM_NODEID, else 0).
    #[arg(long)]
    index: Option<u32>,
    /// Sampling interval (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = super::parse_interval)]
    interval: std::time::Duration,
}

pub fn run(args: Args) -> Result<(), Failure> {
    atlas_spec::check_name(&args.run_id).map_err(|e| Failure::input(format!("--run-id: {e}")))?;
    let index = args.index.unwrap_or_else(|| {
        std::env::var("SLURM_NODEID")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    });
    if index >= 1 << 20 {
        return Err(Failure::input(format!("--index {index}: at most 1048575")));
    }
    let stop = Arc::new(AtomicBool::new(false));
    atlas_agent::signals::install();
    let flag = stop.clone();
    atlas_agent::signals::on_signal(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
    let config = HostConfig {
        run_id: args.run_id,
        run_dir: args.run_dir,
        index,
        interval: args.interval,
    };
    run_host_sampler(&config, &stop)
        .map(|_| ())
        .map_err(|e| Failure::environment(format!("atlas agent-host: {e}")))
}
