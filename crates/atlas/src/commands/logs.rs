//! `atlas logs RUN [--phase NAME] [--follow]`: a run's phase output, from its run directory.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use atlas_spec::{RunDir, Stream};
use atlas_store::Store;

use crate::exit::Failure;

/// Which of a phase's outputs to print.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Which {
    /// Standard output only.
    Stdout,
    /// Standard error only.
    Stderr,
    /// Both: standard output, then what the phase wrote to standard error (as it arrives,
    /// with `--follow`), each part headed by the stream it came from.
    Both,
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas logs r-3f9a             every phase, stdout and stderr\n  atlas logs r-3f9a --phase train --stream stderr\n  atlas logs r-3f9a -f          follow until the run ends"
)]
pub struct Args {
    /// Run id (a unique prefix is enough).
    run: String,
    /// Only this phase.
    #[arg(long)]
    phase: Option<String>,
    /// Which output: stdout, stderr or both.
    #[arg(long, value_enum, default_value = "both")]
    stream: Which,
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
    let all: Vec<&str> = detail.phases.iter().map(|p| p.name.as_str()).collect();
    let phases: Vec<&str> = all
        .iter()
        .copied()
        .filter(|n| args.phase.as_deref().is_none_or(|want| want == *n))
        .collect();
    if phases.is_empty() {
        return Err(Failure::input(format!(
            "run {} has no phase `{}` (its phases: {})",
            detail.run.id,
            args.phase.unwrap_or_default().escape_debug(),
            all.join(", ")
        )));
    }
    let streams: &[Stream] = match args.stream {
        Which::Stdout => &[Stream::Stdout],
        Which::Stderr => &[Stream::Stderr],
        Which::Both => &[Stream::Stdout, Stream::Stderr],
    };
    let mut out = std::io::stdout().lock();
    for name in phases {
        let _ = writeln!(out, "==> {name} <==");
        if let Err(e) = dir.log(name, Stream::Stdout) {
            let _ = writeln!(out, "(no log: {e})");
            continue;
        }
        let mut shown = Shown::new(name, streams[0]);
        loop {
            let over = !args.follow || phase_over(&mut *store, &detail.run.id, name);
            // When the phase is over, this read takes what it wrote up to its end.
            for &stream in streams {
                shown.copy(&dir, stream, &mut out);
            }
            if over {
                shown.end_line(&mut out);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
    Ok(())
}

impl Shown<'_> {
    /// Ends a line the phase left open, so that what follows starts on a line of its own.
    fn end_line(&mut self, out: &mut impl Write) {
        if self.mid_line {
            let _ = writeln!(out);
            self.mid_line = false;
        }
    }
}

/// What of a phase's two logs has been printed, and which one was printed last.
struct Shown<'a> {
    phase: &'a str,
    offsets: [u64; 2],
    current: Stream,
    /// The last byte printed was not a line end (a phase that ended without one).
    mid_line: bool,
}

impl<'a> Shown<'a> {
    fn new(phase: &'a str, first: Stream) -> Self {
        Shown {
            phase,
            offsets: [0, 0],
            current: first,
            mid_line: false,
        }
    }

    /// Prints what `stream` gained since last time, under a header when the stream changes.
    fn copy(&mut self, dir: &RunDir, stream: Stream, out: &mut impl Write) {
        let slot = usize::from(stream == Stream::Stderr);
        let Ok(mut f) = atlas_agent::rundir_io::open_log(dir, self.phase, stream) else {
            return;
        };
        let _ = f.seek(SeekFrom::Start(self.offsets[slot]));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        if buf.is_empty() {
            return;
        }
        if stream != self.current {
            self.end_line(out);
            let label = match stream {
                Stream::Stdout => "stdout",
                Stream::Stderr => "stderr",
            };
            let _ = writeln!(out, "--- {} ({label}) ---", self.phase);
            self.current = stream;
        }
        self.offsets[slot] += buf.len() as u64;
        self.mid_line = buf.last() != Some(&b'\n');
        let _ = out.write_all(&buf);
        let _ = out.flush();
    }
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
