//! `atlas runs [--status S] [--label K=V]… [--target T] [--since 2h] [--limit N]`: the runs in
//! the store, newest first, filtered in the store's query (the target after it).

use atlas_spec::record::RunStatus;
use atlas_store::{RunFilter, RunRow};

use super::db::StoreView;
use super::format;
use crate::exit::Failure;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas runs --status failed --since 1d\n  atlas runs --label lr=0.5 --target slurm --format json"
)]
pub struct Args {
    #[command(flatten)]
    view: StoreView,
    /// Only runs with this status.
    #[arg(long, value_parser = parse_status)]
    status: Option<RunStatus>,
    /// Only runs with this label (repeatable: all must match).
    #[arg(long = "label", value_parser = super::parse_label)]
    labels: Vec<(String, String)>,
    /// Only runs on this target.
    #[arg(long)]
    target: Option<String>,
    /// Only runs submitted within this long (`90m`, `2h`, `1d`).
    #[arg(long, value_parser = super::parse_interval)]
    since: Option<std::time::Duration>,
    /// At most this many runs (the newest).
    #[arg(long)]
    limit: Option<usize>,
}

fn parse_status(text: &str) -> Result<RunStatus, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not a status (submitted, running, succeeded, failed)"))
}

pub fn run(args: Args) -> Result<(), Failure> {
    let mut store = args.view.open()?;
    let filter = RunFilter {
        status: args.status,
        labels: args.labels.clone(),
        submitted_from: args
            .since
            .map(|d| atlas_agent::spool::unix_now() - d.as_secs_f64()),
        // The target is filtered after the query, so the limit is applied after it too.
        limit: args.limit.filter(|_| args.target.is_none()),
        ..RunFilter::default()
    };
    let query = |store: &dyn atlas_store::Store| -> Result<Vec<RunRow>, Failure> {
        let mut runs = store.runs_filtered(&filter).map_err(Failure::environment)?;
        if let Some(target) = &args.target {
            runs.retain(|r| &r.target == target);
            runs.truncate(args.limit.unwrap_or(usize::MAX));
        }
        Ok(runs)
    };
    let mut runs = query(&*store)?;
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
        runs = query(&*store)?;
    }
    let text = args.view.render(&runs, |runs| table(runs))?;
    super::write_output(None, &text)
}

fn table(runs: &[RunRow]) -> String {
    let mut out = format!(
        "{:<12} {:<12} {:<20} {:<8} {:<10} {:<20} {:>10}  {:<16} {}\n",
        "RUN", "EXPERIMENT", "WORKFLOW", "TARGET", "STATUS", "STARTED", "WALL", "LABELS", "CAUSE"
    );
    for r in runs {
        let labels: Vec<String> = r
            .labels
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        out += &format!(
            "{:<12} {:<12} {:<20} {:<8} {:<10} {:<20} {:>10}  {:<16} {}\n",
            r.id,
            r.experiment_id.as_deref().unwrap_or("-"),
            r.workflow,
            r.target,
            r.status,
            r.started_at.map(format::time).unwrap_or_else(|| "-".into()),
            r.wall_seconds
                .map(format::seconds)
                .unwrap_or_else(|| "-".into()),
            if labels.is_empty() {
                "-".into()
            } else {
                labels.join(",")
            },
            r.cause.as_deref().unwrap_or("")
        );
    }
    out
}
