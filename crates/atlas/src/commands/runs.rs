//! `atlas runs`: every run in the store, newest first.

use std::path::PathBuf;

use atlas_store::Store;

use super::format;
use crate::exit::Failure;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value = "table")]
    format: ListFormat,
    /// The database (default: $ATLAS_DB or $XDG_DATA_HOME/atlas/atlas.db).
    #[arg(long)]
    db: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let (store, _) = super::db::open(args.db.as_deref())?;
    let runs = store.runs().map_err(Failure::environment)?;
    let text = match args.format {
        ListFormat::Json => {
            serde_json::to_string_pretty(&runs).map_err(Failure::environment)? + "\n"
        }
        ListFormat::Table => {
            let mut out = format!(
                "{:<12} {:<12} {:<20} {:<8} {:<10} {:>10}  {}\n",
                "RUN", "EXPERIMENT", "WORKFLOW", "TARGET", "STATUS", "WALL", "CAUSE"
            );
            for r in &runs {
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
    };
    super::write_output(None, &text)
}
