//! `atlas experiments`: every experiment with its run counts; and the experiment view of
//! `atlas show e-…` (its runs, targets, statuses, queue waits, causes).

use atlas_store::{ExperimentDetail, ExperimentRow};

use super::db::StoreView;
use super::format;
use crate::exit::Failure;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  atlas experiments\n  atlas experiments --format json")]
pub struct Args {
    #[command(flatten)]
    view: StoreView,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let all = args
        .view
        .open()?
        .experiments()
        .map_err(Failure::environment)?;
    let text = args.view.render(&all, |all| list_table(all))?;
    super::write_output(None, &text)
}

fn list_table(all: &[ExperimentRow]) -> String {
    let mut out = format!(
        "{:<12} {:<20} {:<20} {:>5} {:>5} {:>6}  {}\n",
        "EXPERIMENT", "WORKFLOW", "CREATED (UTC)", "RUNS", "OK", "FAILED", "TARGETS"
    );
    for e in all {
        out += &format!(
            "{:<12} {:<20} {:<20} {:>5} {:>5} {:>6}  {}\n",
            e.id,
            e.workflow,
            format::time(e.created_at),
            e.runs,
            e.succeeded,
            e.failed,
            e.targets
        );
    }
    out
}

/// An experiment and its runs as a table.
pub fn table(d: &ExperimentDetail) -> String {
    let e = &d.experiment;
    let mut out = format!(
        "experiment {}  workflow {}  created {} UTC  {} run(s): {} succeeded, {} failed\n\n",
        e.id,
        e.workflow,
        format::time(e.created_at),
        e.runs,
        e.succeeded,
        e.failed
    );
    out += &format!(
        "{:<12} {:<10} {:>4} {:<10} {:>10} {:>10}  {}\n",
        "RUN", "TARGET", "REP", "STATUS", "QUEUE", "WALL", "CAUSE"
    );
    for r in &d.run_list {
        let queue = r
            .started_at
            .map(|s| format::seconds((s - r.submitted_at).max(0.0)))
            .unwrap_or_else(|| "-".into());
        out += &format!(
            "{:<12} {:<10} {:>4} {:<10} {:>10} {:>10}  {}\n",
            r.id,
            r.target,
            r.repetition,
            r.status,
            queue,
            r.wall_seconds
                .map(format::seconds)
                .unwrap_or_else(|| "-".into()),
            r.cause.as_deref().unwrap_or("")
        );
    }
    out
}
