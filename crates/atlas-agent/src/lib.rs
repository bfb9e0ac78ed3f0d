//! The in-job agent: runs a Workflow's phases inside the job, samples the job's own processes
//! (never the node as if it were the job), reads app metrics from the output, and appends
//! everything to a spool of JSON lines that the store ingests. No async runtime.
//!
//! The same agent runs on bare metal, under Slurm, in a container and in a pod, so figures
//! from different places are comparable.

mod cgroup;
pub mod freeze;
pub mod gpu;
pub mod host;
mod load;
pub mod mounts;
pub mod node;
pub mod nvml;
pub mod output;
mod process;
pub mod procfs;
pub mod push;
pub mod rundir_io;
mod runner;
pub mod signals;
pub mod spool;
mod warning;

pub use load::{load_workflow, LoadError};
pub use runner::{run, AgentConfig, AgentError, RunOutcome};
pub use warning::{ignore_warnings, AgentWarning, Warnings};
