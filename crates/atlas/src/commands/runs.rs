//! `atlas runs`: every run in the store, newest first.

use atlas_store::RunRow;

use super::db::StoreView;
use super::format;
use crate::exit::Failure;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    view: StoreView,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let mut store = args.view.open()?;
    let mut runs = store.runs().map_err(Failure::environment)?;
    // A run whose agent died on this host is ended here, so it is not listed as running.
    let mut settled = false;
    for r in runs
        .iter()
        .filter(|r| r.status == atlas_spec::record::RunStatus::Running)
    {
        settled |= super::liveness::settle(&mut *store, &r.id)
            .is_ok_and(|l| l != super::liveness::Liveness::Unchanged);
    }
    if settled {
        runs = store.runs().map_err(Failure::environment)?;
    }
    let text = args.view.render(&runs, |runs| table(runs))?;
    super::write_output(None, &text)
}

fn table(runs: &[RunRow]) -> String {
    let mut out = format!(
        "{:<12} {:<12} {:<20} {:<8} {:<10} {:>10}  {}\n",
        "RUN", "EXPERIMENT", "WORKFLOW", "TARGET", "STATUS", "WALL", "CAUSE"
    );
    for r in runs {
        out += &format!(
            "{:<12} {:<12} {:<20} {:<8} {:<10} {:>10}  {}\n",
            r.id,
            r.experiment_id.as_deref().unwrap_or("-"),
            r.workflow,
            r.target,
            r.status,
            r.wall_seconds
                .map(format::seconds)
                .unwrap_or_else(|| "-".into()),
            r.cause.as_deref().unwrap_or("")
        );
    }
    out
}
