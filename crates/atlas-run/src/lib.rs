//! The run lifecycle: one experiment of a workflow on several targets, each run registered in
//! the store, prepared and submitted by its target's backend, its agent's spool followed into
//! the store while it runs, and its end recorded, with a cause when the job ended without its
//! agent saying how. What happens is told to a [`RunObserver`] (the CLI draws progress bars;
//! a test records), never printed here.
//!
//! ```text
//! run_experiment(store, plan, observer)
//!   like-for-like check ──▶ rounds (A B C A B C…, or every target at once with `parallel`)
//!     Tracker::new (run dir, workflow, store row) ─▶ start (prepare, submit)
//!     follow: poll every tick (spool → store → observer; backend.watch) until all ended
//!   Summary (outcome per run)
//! ```
//!
//! kube-rs splits a client into core, client and runtime; here `atlas-backends` is the client,
//! this crate the runtime, and the binary only wires arguments, exit codes and the terminal.

mod experiment;
mod observer;
mod outcome;
mod tracker;

pub use experiment::{run_experiment, Plan};
pub use observer::RunObserver;
pub use outcome::{Outcome, Summary};

/// Why the lifecycle itself could not go on (a job's failure is an [`Outcome`], not this).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store refused a write or a read.
    #[error(transparent)]
    Store(#[from] atlas_store::StoreError),
    /// A file of the run directory could not be written or read.
    #[error("{path}: {source}")]
    File {
        /// The file or directory.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
}

impl RunError {
    fn file(path: &std::path::Path, source: std::io::Error) -> Self {
        RunError::File {
            path: path.display().to_string(),
            source,
        }
    }
}

/// A short random id with a prefix (`r-3f9a1c2e`): 32 bits from the clock and process id
/// through the standard library's randomly keyed hasher.
pub fn new_id(prefix: &str) -> String {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let hash = std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()));
    format!("{prefix}-{:08x}", hash as u32)
}
