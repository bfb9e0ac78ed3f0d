//! Bounds on what a pushed record may carry, checked at ingest before anything is stored: a
//! name (run, phase, metric, workflow) at most [`MAX_NAME_BYTES`], any other text (host, node,
//! a failure's message) at most [`MAX_TEXT_BYTES`], a list (a run's phases, a sample's GPUs)
//! at most [`MAX_LIST_ITEMS`]. Without them a 4 MB metric name was stored, and then sent to
//! every dashboard watching the run, every 250 ms.
//!
//! The checks destructure every record kind without `..`, so a field added to a record does
//! not compile until it is given its bound here.

use atlas_spec::record::{FailureCause, Record, RecordBody};

/// The longest name: a run id, a phase, a metric, a workflow (bytes).
pub const MAX_NAME_BYTES: usize = 128;
/// The longest other text in a record: a host, a node's description, a failure's message.
pub const MAX_TEXT_BYTES: usize = 4096;
/// The most items in a record's list: a run's phases, a sample's GPUs.
pub const MAX_LIST_ITEMS: usize = 1024;

/// A field over its bound.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{field}` is {size} {unit}, more than the {limit} allowed")]
pub struct TooLong {
    /// The field, as named in the record's JSON.
    pub field: &'static str,
    pub size: usize,
    pub limit: usize,
    /// `bytes` or `items`.
    pub unit: &'static str,
}

fn bytes(field: &'static str, value: &str, limit: usize) -> Result<(), TooLong> {
    match value.len() {
        size if size > limit => Err(TooLong {
            field,
            size,
            limit,
            unit: "bytes",
        }),
        _ => Ok(()),
    }
}

fn name(field: &'static str, value: &str) -> Result<(), TooLong> {
    bytes(field, value, MAX_NAME_BYTES)
}

fn text(field: &'static str, value: &str) -> Result<(), TooLong> {
    bytes(field, value, MAX_TEXT_BYTES)
}

fn items(field: &'static str, size: usize) -> Result<(), TooLong> {
    match size {
        size if size > MAX_LIST_ITEMS => Err(TooLong {
            field,
            size,
            limit: MAX_LIST_ITEMS,
            unit: "items",
        }),
        _ => Ok(()),
    }
}

fn cause(cause: &Option<FailureCause>) -> Result<(), TooLong> {
    match cause {
        Some(FailureCause::OutOfMemory { evidence }) => text("cause.evidence", evidence),
        Some(FailureCause::StartFailed { message }) => text("cause.message", message),
        Some(
            FailureCause::NonZeroExit { .. }
            | FailureCause::CommandNotFound
            | FailureCause::Signal { .. }
            | FailureCause::WalltimeExceeded { .. }
            | FailureCause::Cancelled { .. },
        )
        | None => Ok(()),
    }
}

/// Whether every field of `record` is within its bound.
pub fn check(record: &Record) -> Result<(), TooLong> {
    name("run", &record.run)?;
    match &record.body {
        RecordBody::RunStart {
            workflow,
            host,
            agent_version,
            phases,
            interval_ms: _,
            cpus: _,
            gpu,
            source,
            node,
        } => {
            name("workflow", workflow)?;
            text("host", host)?;
            text("agentVersion", agent_version)?;
            items("phases", phases.len())?;
            phases.iter().try_for_each(|p| name("phases[]", p))?;
            text("gpu", gpu)?;
            text("source", source)?;
            text("node", node)
        }
        RecordBody::PhaseStart { phase, index: _ } => name("phase", phase),
        RecordBody::PhaseEnd {
            phase,
            cause: why,
            status: _,
            exit_code: _,
            signal: _,
            wall_seconds: _,
            cpu_user_seconds: _,
            cpu_system_seconds: _,
            max_rss_bytes: _,
        } => name("phase", phase).and_then(|()| cause(why)),
        RecordBody::Sample {
            phase,
            gpus,
            cpu_user_seconds: _,
            cpu_system_seconds: _,
            rss_bytes: _,
            read_bytes: _,
            write_bytes: _,
            threads: _,
            processes: _,
            cgroup_memory_bytes: _,
        } => {
            phase.as_deref().map_or(Ok(()), |p| name("phase", p))?;
            items("gpus", gpus.len())
        }
        RecordBody::NodeSample {
            load1: _,
            memory_total_bytes: _,
            memory_available_bytes: _,
            cpu_busy_fraction: _,
        }
        | RecordBody::Signal { signal: _ } => Ok(()),
        RecordBody::Metric {
            phase,
            name: metric,
            value: _,
        } => name("phase", phase).and_then(|()| name("name", metric)),
        RecordBody::Progress {
            phase,
            current: _,
            total: _,
        } => name("phase", phase),
        RecordBody::RunEnd {
            status: _,
            cause: why,
            wall_seconds: _,
            agent_cpu_seconds: _,
        } => cause(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(body: &str) -> Record {
        serde_json::from_str(&format!(
            r#"{{"run":"r-1","seq":1,"time":1.0,"mono":0.0,{body}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn names_texts_and_lists_are_bounded() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        let metric = |n: &str| {
            record(&format!(
                r#""type":"metric","phase":"p","name":"{n}","value":1"#
            ))
        };
        assert_eq!(check(&metric(&"x".repeat(MAX_NAME_BYTES))), Ok(()));
        let err = check(&metric(&long)).unwrap_err();
        assert_eq!((err.field, err.size, err.limit), ("name", 129, 128));
        let failed = record(&format!(
            r#""type":"runEnd","status":"failed","wallSeconds":1,"cause":{{"kind":"startFailed","message":"{}"}}"#,
            "m".repeat(MAX_TEXT_BYTES + 1)
        ));
        assert_eq!(check(&failed).unwrap_err().field, "cause.message");
        let phases = vec!["\"p\""; MAX_LIST_ITEMS + 1].join(",");
        let start = record(&format!(
            r#""type":"runStart","workflow":"w","host":"h","agentVersion":"0","phases":[{phases}],"intervalMs":1,"cpus":1,"gpu":"g","source":"s""#
        ));
        assert_eq!(check(&start).unwrap_err().unit, "items");
    }
}
