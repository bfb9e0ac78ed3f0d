//! [`RunDir`]: the one owner of a run directory's layout. Every file of a run (spool, workflow,
//! inputs, phase logs, array tasks) is named here and nowhere else; agent, backends, `atlas run`,
//! `atlas logs` and the server ask it. Pure path arithmetic: no I/O.
//!
//! ```text
//! RUN_DIR/
//!   spool.jsonl            records, one JSON object per line
//!   workflow.yaml          the effective workflow
//!   inputs.json            the inputs as checked before the run
//!   logs/PHASE.out|.err    each phase's output (PHASE a valid name, see check_name)
//!   tasks/N/…              array task N: the same layout again
//! ```

use std::path::{Path, PathBuf};

use crate::names::{check_name, NameError};

/// Which of a phase's two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (`.out`).
    Stdout,
    /// Standard error (`.err`).
    Stderr,
}

impl Stream {
    /// The file extension of the stream's log.
    pub fn extension(self) -> &'static str {
        match self {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
        }
    }
}

/// A run's directory and the names of what lives in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What `atlas windows` asks of the agent (`freeze` or `wake`), read when the agent gets
    /// SIGUSR2.
    pub fn control(&self) -> PathBuf {
        self.root.join("control")
    }

    /// A copy of the run's checkpoint, kept by an agent started with `--keep-checkpoint` (the
    /// run directory is on a volume that outlives the pod; the working directory is not).
    pub fn kept_checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.kept")
    }

    /// The records the agent writes.
    pub fn spool(&self) -> PathBuf {
        self.root.join("spool.jsonl")
    }

    /// The effective workflow the run was started with.
    pub fn workflow(&self) -> PathBuf {
        self.root.join("workflow.yaml")
    }

    /// The inputs as they were checked before the run.
    pub fn inputs(&self) -> PathBuf {
        self.root.join("inputs.json")
    }

    /// The directory of the phases' logs.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// A phase's log for one stream. The phase name must be valid ([`check_name`]), which
    /// keeps the file inside [`RunDir::logs`] and distinct from every other phase's.
    pub fn log(&self, phase: &str, stream: Stream) -> Result<PathBuf, NameError> {
        check_name(phase)?;
        Ok(self.logs().join(format!("{phase}.{}", stream.extension())))
    }

    /// The directory holding the array tasks.
    pub fn tasks(&self) -> PathBuf {
        self.root.join("tasks")
    }

    /// Array task `index`'s own run directory.
    pub fn task(&self, index: u32) -> RunDir {
        RunDir::new(self.tasks().join(index.to_string()))
    }
}

/// The run id of array task `index` of run `run`.
pub fn task_run_id(run: &str, index: u32) -> String {
    format!("{run}-t{index}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Component;

    #[test]
    fn a_phase_name_cannot_reach_another_runs_log() {
        let dir = RunDir::new("/runs/r-mine");
        assert!(dir.log("../../r-other/logs/train", Stream::Stdout).is_err());
        assert_eq!(
            dir.log("train.v2", Stream::Stderr).unwrap(),
            Path::new("/runs/r-mine/logs/train.v2.err")
        );
    }

    #[test]
    fn task_directories_nest_the_same_layout() {
        let task = RunDir::new("/r").task(3);
        assert_eq!(task.spool(), Path::new("/r/tasks/3/spool.jsonl"));
        assert_eq!(task_run_id("r-1", 3), "r-1-t3");
    }

    proptest! {
        /// Any string is either refused or maps to a plain file directly inside `logs/`,
        /// and two different accepted names never map to the same file.
        #[test]
        fn any_phase_name_is_refused_or_stays_in_its_run(a in "\\PC{0,70}|[a-zA-Z0-9._/ -]{1,10}", b in "\\PC{0,70}|[a-zA-Z0-9._/ -]{1,10}") {
            let dir = RunDir::new("/runs/r-1");
            for (name, other) in [(&a, &b), (&b, &a)] {
                if let Ok(path) = dir.log(name, Stream::Stdout) {
                    let rest = path.strip_prefix(dir.logs()).unwrap();
                    let parts: Vec<_> = rest.components().collect();
                    prop_assert_eq!(parts.len(), 1);
                    prop_assert!(matches!(parts[0], Component::Normal(_)));
                    if let Ok(other_path) = dir.log(other, Stream::Stdout) {
                        prop_assert_eq!(name == other, path == other_path);
                    }
                }
            }
        }
    }
}
