//! `atlas logs RUN [--phase NAME] [--follow]`: a run's phase output, from its run directory.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use atlas_spec::{RunDir, Stream};
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
    let (mut store, _) = super::db::open(args.db.as_deref())?;
    let detail = store.run(&args.run).map_err(Failure::input)?;
    let dir = RunDir::new(
        detail
            .run
            .run_dir
            .clone()
            .ok_or_else(|| Failure::input("this run has no run directory on this machine"))?,
    );
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
            args.phase.unwrap_or_default().escape_debug()
        )));
    }
    let mut out = std::io::stdout().lock();
    for name in &phases {
        let _ = writeln!(out, "==> {name} <==");
        if let Err(e) = dir.log(name, Stream::Stdout) {
            let _ = writeln!(out, "(no log: {e})");
            continue;
        }
        let mut offset = 0;
        loop {
            offset += copy_from(&dir, name, offset, &mut out);
            if !args.follow || phase_over(&mut *store, &detail.run.id, name) {
                // What the phase wrote between the last read and its end.
                copy_from(&dir, name, offset, &mut out);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
    Ok(())
}

/// Copies a phase's output from byte `offset` to `out`; the number of bytes copied.
/// (Never through a link the job may have planted there: see `rundir_io`.)
fn copy_from(dir: &RunDir, phase: &str, offset: u64, out: &mut impl Write) -> u64 {
    let Ok(mut f) = atlas_agent::rundir_io::open_log(dir, phase, Stream::Stdout) else {
        return 0;
    };
    let _ = f.seek(SeekFrom::Start(offset));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let _ = out.write_all(&buf);
    let _ = out.flush();
    buf.len() as u64
}

/// Whether a phase can write no more: it ended, or its run did (however it ended, a dead
/// agent included), or the run is gone from the store.
fn phase_over(store: &mut dyn Store, run: &str, phase: &str) -> bool {
    let _ = crate::commands::liveness::settle(store, run);
    store
        .run(run)
        .map(|d| {
            d.run.status.is_over()
                || d.phases
                    .iter()
                    .any(|p| p.name == phase && p.status.is_over())
        })
        .unwrap_or(true)
}
