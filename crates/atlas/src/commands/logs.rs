//! `atlas logs RUN [--phase NAME] [--follow]`: a run's phase output, from its run directory.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use atlas_store::Store;

use crate::exit::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// Run id (a unique prefix is enough).
    run: String,
    /// Only this phase.
    #[arg(long)]
    phase: Option<String>,
    /// Keep printing new output until the run ends.
    #[arg(long, short)]
    follow: bool,
    /// The database (default: $ATLAS_DB or $XDG_DATA_HOME/atlas/atlas.db).
    #[arg(long)]
    db: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let (store, _) = super::db::open(args.db.as_deref())?;
    let detail = store.run(&args.run).map_err(Failure::input)?;
    let dir = PathBuf::from(
        detail
            .run
            .run_dir
            .clone()
            .ok_or_else(|| Failure::input("this run has no run directory on this machine"))?,
    )
    .join("logs");
    let phases: Vec<String> = detail
        .phases
        .iter()
        .map(|p| p.name.clone())
        .filter(|n| args.phase.as_ref().is_none_or(|want| want == n))
        .collect();
    if phases.is_empty() {
        return Err(Failure::input(format!(
            "run {} has no phase `{}`",
            detail.run.id,
            args.phase.unwrap_or_default()
        )));
    }
    let mut out = std::io::stdout().lock();
    for name in &phases {
        let file_name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{file_name}.out"));
        let _ = writeln!(out, "==> {name} <==");
        let mut offset = 0;
        loop {
            if let Ok(mut f) = std::fs::File::open(&path) {
                let _ = f.seek(SeekFrom::Start(offset));
                let mut buf = Vec::new();
                let _ = f.read_to_end(&mut buf);
                offset += buf.len() as u64;
                let _ = out.write_all(&buf);
                let _ = out.flush();
            }
            if !args.follow
                || store
                    .run(&detail.run.id)
                    .map(|d| {
                        d.phases.iter().any(|p| {
                            &p.name == name
                                && matches!(p.status.as_str(), "succeeded" | "failed" | "skipped")
                        })
                    })
                    .unwrap_or(true)
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
    Ok(())
}
