//! What a node agent pushes to `atlas serve` (`POST /api/v1/nodes/samples`, one JSON object a
//! line): one sample of one node of one target, and the bounds a sample must keep before it is
//! stored ([`NodeRecord::check`]): target and node follow the name rule, numbers are finite and
//! within reason, at most [`MAX_LIST_ITEMS`] jobs, each id a short word.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::check_name;
use crate::record_check::{RecordError, MAX_LIST_ITEMS};

/// The most cores a node may claim (in use or in all).
pub const MAX_NODE_CORES: f64 = 1_000_000.0;
/// The longest job id a sample may name.
pub const MAX_JOB_ID_LEN: usize = 64;

/// One sample of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeRecord {
    /// The target the node belongs to (`cluster`, `kubernetes`), as atlas.toml names it.
    pub target: String,
    /// The node's name (the scheduler's, or the host name).
    pub node: String,
    /// When the sample was taken (Unix seconds).
    pub time: f64,
    /// Cores in use by the node's processes since the previous sample.
    pub cores: f64,
    /// The node's cores in all (as the scheduler or the agent's `--cores` says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<f64>,
    /// Resident memory of the node's processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// Processes on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u32>,
    /// Cores in use per job (Slurm job id, or a pod's namespace/name made a word).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub jobs: BTreeMap<String, f64>,
}

fn cores(field: &'static str, value: f64) -> Result<(), RecordError> {
    if value.is_finite() && (0.0..=MAX_NODE_CORES).contains(&value) {
        Ok(())
    } else {
        Err(RecordError::OutOfRange { field })
    }
}

impl NodeRecord {
    /// Whether every field may be stored.
    pub fn check(&self) -> Result<(), RecordError> {
        check_name(&self.target).map_err(|source| RecordError::Name {
            field: "target",
            source,
        })?;
        check_name(&self.node).map_err(|source| RecordError::Name {
            field: "node",
            source,
        })?;
        // From 2001 to 5138: a clock that far off is not a sample's.
        if !(self.time.is_finite() && (1e9..=1e11).contains(&self.time)) {
            return Err(RecordError::OutOfRange { field: "time" });
        }
        cores("cores", self.cores)?;
        if let Some(capacity) = self.capacity {
            cores("capacity", capacity)?;
            if capacity <= 0.0 {
                return Err(RecordError::OutOfRange { field: "capacity" });
            }
        }
        if self.rss_bytes.is_some_and(|b| b > i64::MAX as u64) {
            return Err(RecordError::OutOfRange { field: "rssBytes" });
        }
        if self.jobs.len() > MAX_LIST_ITEMS {
            return Err(RecordError::TooLong {
                field: "jobs",
                size: self.jobs.len(),
                limit: MAX_LIST_ITEMS,
                unit: "items",
            });
        }
        for (job, used) in &self.jobs {
            let word = !job.is_empty()
                && job.len() <= MAX_JOB_ID_LEN
                && job
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !word {
                return Err(RecordError::OutOfRange { field: "jobs" });
            }
            cores("jobs", *used)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeRecord {
        NodeRecord {
            target: "cluster".into(),
            node: "n1".into(),
            time: 1.8e9,
            cores: 0.5,
            capacity: Some(2.0),
            rss_bytes: Some(1 << 20),
            processes: Some(12),
            jobs: BTreeMap::from([("42".to_string(), 0.4)]),
        }
    }

    #[test]
    fn a_sample_round_trips_and_its_bounds_hold() {
        let good = sample();
        let line = serde_json::to_string(&good).unwrap();
        assert!(line.contains("\"rssBytes\""), "{line}");
        assert_eq!(serde_json::from_str::<NodeRecord>(&line).unwrap(), good);
        assert_eq!(good.check(), Ok(()));
        let field = |r: NodeRecord| r.check().unwrap_err().field();
        assert_eq!(
            field(NodeRecord {
                node: "../n1".into(),
                ..sample()
            }),
            "node"
        );
        assert_eq!(
            field(NodeRecord {
                cores: f64::NAN,
                ..sample()
            }),
            "cores"
        );
        assert_eq!(
            field(NodeRecord {
                time: 0.0,
                ..sample()
            }),
            "time"
        );
        let mut bad_job = sample();
        bad_job.jobs.insert("a b".into(), 1.0);
        assert_eq!(field(bad_job), "jobs");
        assert!(serde_json::from_str::<NodeRecord>(
            r#"{"target":"c","node":"n","time":2e9,"cores":1,"extra":1}"#
        )
        .is_err());
    }
}
