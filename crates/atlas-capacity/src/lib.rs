//! The nodes of a cluster, what is allocated and used on each, and their class (idle,
//! under-used, busy, down, unknown), from the schedulers' own reports. Pure: callers bring the
//! text or figures they read. See the crate README.

pub mod backfill;
pub mod node;
pub mod plan;
pub mod scenario;
pub mod slurm;

pub use node::{classify, Class, Node, NodeState, Resources, Thresholds, Usage};
