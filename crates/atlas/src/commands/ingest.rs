//! `atlas ingest SPOOL…`: loads agent spools into the store (idempotent: again is harmless).

use std::path::PathBuf;

use crate::exit::Failure;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  atlas ingest runs/r-3f9a/spool.jsonl")]
pub struct Args {
    /// Spool files (`spool.jsonl` in a run directory).
    #[arg(required = true)]
    spools: Vec<PathBuf>,
    /// The database (default: $ATLAS_DB or $XDG_DATA_HOME/atlas/atlas.db).
    #[arg(long)]
    db: Option<PathBuf>,
}

/// What an incomplete last line of a spool means.
pub const TORN: &str = "an incomplete last line (torn by a crash, or still being written)";

pub fn run(args: Args) -> Result<(), Failure> {
    let (mut store, _) = super::db::open(args.db.as_deref())?;
    for spool in &args.spools {
        let contents = atlas_agent::spool::read_spool(spool, 0)
            .map_err(|e| Failure::input(format!("cannot read {}: {e}", spool.display())))?;
        for (line, why) in &contents.bad_lines {
            eprintln!("warning: {}:{line}: {why}; skipped", spool.display());
        }
        if let Some(line) = contents.torn_line {
            eprintln!("warning: {}:{line}: {TORN}; skipped", spool.display());
        }
        let stats = store
            .ingest(&contents.records)
            .map_err(Failure::environment)?;
        eprintln!(
            "{}: {} new records, {} already in the store",
            spool.display(),
            stats.inserted,
            stats.duplicates
        );
    }
    Ok(())
}
