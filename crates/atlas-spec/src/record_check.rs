//! What a record may carry before it is stored (spool or push): a run id, phase, metric or
//! workflow name follows the name rule ([`check_name`]), any other text is at most
//! [`MAX_TEXT_BYTES`] without control characters (line breaks and tabs aside), a list (a run's
//! phases, a sample's GPUs) at most [`MAX_LIST_ITEMS`]. Without them a 4 MB metric name was
//! stored and sent to every dashboard watching the run, and a phase named `../../r-x/logs/train`
//! was stored as if it were a name.
//!
//! The checks destructure every record kind without `..`, so a field added to a record does
//! not compile until it is given its bound here.

use crate::names::{check_name, NameError};
use crate::record::{FailureCause, Record, RecordBody};

/// The longest other text in a record: a host, a node's description, a failure's message.
pub const MAX_TEXT_BYTES: usize = 4096;
/// The most items in a record's list: a run's phases, a sample's GPUs.
pub const MAX_LIST_ITEMS: usize = 1024;

/// A field of a record that may not be stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// A run, phase, metric or workflow name that breaks the name rule.
    #[error("`{field}`: {source}")]
    Name {
        /// The field, as named in the record's JSON.
        field: &'static str,
        /// Why the name is refused.
        source: NameError,
    },
    /// A text or list over its bound.
    #[error("`{field}` is {size} {unit}, more than the {limit} allowed")]
    TooLong {
        /// The field, as named in the record's JSON.
        field: &'static str,
        /// Its size.
        size: usize,
        /// The bound.
        limit: usize,
        /// `bytes` or `items`.
        unit: &'static str,
    },
    /// A number outside what a record may hold (seq 0 or beyond 2^63 - 1, a time that is not
    /// finite).
    #[error("`{field}` is out of range")]
    OutOfRange {
        /// The field, as named in the record's JSON.
        field: &'static str,
    },
    /// A control character (other than a line break or tab) in a text.
    #[error("`{field}` holds a control character ({found:?})")]
    Control {
        /// The field, as named in the record's JSON.
        field: &'static str,
        /// The character.
        found: char,
    },
}

impl RecordError {
    /// The field at fault, as named in the record's JSON.
    pub fn field(&self) -> &'static str {
        match self {
            RecordError::Name { field, .. }
            | RecordError::OutOfRange { field }
            | RecordError::TooLong { field, .. }
            | RecordError::Control { field, .. } => field,
        }
    }
}

fn name(field: &'static str, value: &str) -> Result<(), RecordError> {
    check_name(value).map_err(|source| RecordError::Name { field, source })
}

fn text(field: &'static str, value: &str) -> Result<(), RecordError> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(RecordError::TooLong {
            field,
            size: value.len(),
            limit: MAX_TEXT_BYTES,
            unit: "bytes",
        });
    }
    match value
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        Some(found) => Err(RecordError::Control { field, found }),
        None => Ok(()),
    }
}

/// The most seconds a run's figure may say: ten years.
pub const MAX_SECONDS: f64 = 10.0 * 366.0 * 86_400.0;
/// The most bytes a run directory may be said to hold: a pebibyte.
pub const MAX_RUN_DIR_BYTES: u64 = 1 << 50;

/// A duration a run reports (what tenants' hour quotas count): finite, 0 to [`MAX_SECONDS`].
fn seconds(field: &'static str, value: f64) -> Result<(), RecordError> {
    if value.is_finite() && (0.0..=MAX_SECONDS).contains(&value) {
        Ok(())
    } else {
        Err(RecordError::OutOfRange { field })
    }
}

fn items(field: &'static str, size: usize) -> Result<(), RecordError> {
    match size {
        size if size > MAX_LIST_ITEMS => Err(RecordError::TooLong {
            field,
            size,
            limit: MAX_LIST_ITEMS,
            unit: "items",
        }),
        _ => Ok(()),
    }
}

fn cause(cause: &Option<FailureCause>) -> Result<(), RecordError> {
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

/// Whether every field of `record` may be stored ([`Record::check`]).
pub(crate) fn check(record: &Record) -> Result<(), RecordError> {
    name("run", &record.run)?;
    // Agents count from 1; a store keeps seq as a signed 64-bit number.
    if record.seq == 0 || record.seq > i64::MAX as u64 {
        return Err(RecordError::OutOfRange { field: "seq" });
    }
    if !record.time.is_finite() || !record.mono.is_finite() {
        return Err(RecordError::OutOfRange { field: "time" });
    }
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
            agent: _,
            storage,
        } => {
            name("workflow", workflow)?;
            text("host", host)?;
            text("agentVersion", agent_version)?;
            items("phases", phases.len())?;
            phases.iter().try_for_each(|p| name("phases[]", p))?;
            text("gpu", gpu)?;
            text("source", source)?;
            items("storage", storage.len())?;
            storage.iter().try_for_each(|s| {
                text("storage[].path", &s.path)?;
                text("storage[].filesystem", &s.filesystem)?;
                text("storage[].mount", &s.mount)
            })?;
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
            io: _,
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
        RecordBody::HostSample {
            host,
            phase,
            cpu_user_seconds: _,
            cpu_system_seconds: _,
            rss_bytes: _,
            processes: _,
        } => {
            text("host", host)?;
            phase.as_deref().map_or(Ok(()), |p| name("phase", p))
        }
        RecordBody::NodeSample {
            load1: _,
            memory_total_bytes: _,
            memory_available_bytes: _,
            cpu_busy_fraction: _,
        }
        | RecordBody::Signal { signal: _ } => Ok(()),
        RecordBody::Freeze { phase, signal: _ } => name("phase", phase),
        RecordBody::Wake {
            phase,
            frozen_seconds: _,
            host,
            agent: _,
        } => {
            name("phase", phase)?;
            host.as_deref().map_or(Ok(()), |h| text("host", h))
        }
        RecordBody::Frozen {
            phase,
            reason,
            clean: _,
            checkpoint_bytes: _,
            quiesce_seconds: _,
            stop_seconds: _,
            lost_seconds: _,
        } => {
            name("phase", phase)?;
            reason.as_deref().map_or(Ok(()), |r| text("reason", r))
        }
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
            wall_seconds,
            agent_cpu_seconds,
            run_dir_bytes,
        } => {
            seconds("wallSeconds", *wall_seconds)?;
            seconds("agentCpuSeconds", *agent_cpu_seconds)?;
            if run_dir_bytes.is_some_and(|b| b > MAX_RUN_DIR_BYTES) {
                return Err(RecordError::OutOfRange {
                    field: "runDirBytes",
                });
            }
            cause(why)
        }
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
        let long = "x".repeat(crate::MAX_IDENT_LEN + 1);
        let metric = |n: &str| {
            record(&format!(
                r#""type":"metric","phase":"p","name":"{n}","value":1"#
            ))
        };
        assert_eq!(check(&metric(&"x".repeat(crate::MAX_IDENT_LEN))), Ok(()));
        let err = check(&metric(&long)).unwrap_err();
        assert_eq!(err.field(), "name");
        assert_eq!(check(&metric("../../x")).unwrap_err().field(), "name");
        let failed = record(&format!(
            r#""type":"runEnd","status":"failed","wallSeconds":1,"cause":{{"kind":"startFailed","message":"{}"}}"#,
            "m".repeat(MAX_TEXT_BYTES + 1)
        ));
        assert_eq!(check(&failed).unwrap_err().field(), "cause.message");
        let phases = vec!["\"p\""; MAX_LIST_ITEMS + 1].join(",");
        let start = record(&format!(
            r#""type":"runStart","workflow":"w","host":"h","agentVersion":"0","phases":[{phases}],"intervalMs":1,"cpus":1,"gpu":"g","source":"s""#
        ));
        assert!(matches!(
            check(&start).unwrap_err(),
            RecordError::TooLong { unit: "items", .. }
        ));
    }

    #[test]
    fn a_sequence_number_must_fit_the_store() {
        let mut r = record(r#""type":"signal","signal":15"#);
        r.seq = 0;
        assert_eq!(check(&r).unwrap_err().field(), "seq");
        r.seq = u64::MAX;
        assert_eq!(check(&r).unwrap_err().field(), "seq");
        r.seq = 1;
        assert_eq!(check(&r), Ok(()));
    }

    #[test]
    fn a_runs_figures_must_be_plausible() {
        let end = |wall: &str, bytes: &str| {
            record(&format!(
                r#""type":"runEnd","status":"succeeded","wallSeconds":{wall},"runDirBytes":{bytes}"#
            ))
        };
        assert_eq!(check(&end("12.5", "4096")), Ok(()));
        assert_eq!(
            check(&end("-1e12", "1")).unwrap_err().field(),
            "wallSeconds"
        );
        assert_eq!(
            check(&end("1e308", "1")).unwrap_err().field(),
            "wallSeconds"
        );
        let huge = end("1", "18446744073709551615");
        assert_eq!(check(&huge).unwrap_err().field(), "runDirBytes");
    }
}
