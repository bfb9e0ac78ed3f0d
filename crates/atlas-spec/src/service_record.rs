//! What the storage-service operator pushes to `atlas serve` (`POST /api/v1/services/status`,
//! one JSON object a line): the status of one service at one time, as its `StorageService`
//! status holds it, and the bounds it must keep before it is stored ([`ServiceRecord::check`]).
//! The status is kept as the operator wrote it (its type lives with the operator); the server
//! checks its size and shape, never its meaning.

use serde::{Deserialize, Serialize};

use crate::names::check_name;
use crate::record_check::RecordError;

/// The largest status a record may carry, as JSON.
pub const MAX_STATUS_BYTES: usize = 64 * 1024;
/// The deepest nesting a status may have (objects and lists).
pub const MAX_STATUS_DEPTH: usize = 8;

/// One service's status at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceRecord {
    /// Where the service runs: `local` (podman on the operator's host) or the Kubernetes
    /// namespace it lives in.
    pub place: String,
    /// The service's name (its `StorageService`'s).
    pub name: String,
    /// When the operator observed it (Unix seconds).
    pub time: f64,
    /// What the spec asks for, in brief: chunk servers, goal, version.
    #[serde(default)]
    pub spec: serde_json::Value,
    /// The `StorageService`'s status: phase, ready chunk servers, capacity, instances, events.
    pub status: serde_json::Value,
}

fn depth(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

impl ServiceRecord {
    /// Whether the record may be stored.
    pub fn check(&self) -> Result<(), RecordError> {
        for (field, name) in [("place", &self.place), ("name", &self.name)] {
            check_name(name).map_err(|source| RecordError::Name { field, source })?;
        }
        if !(self.time.is_finite() && (1e9..=1e11).contains(&self.time)) {
            return Err(RecordError::OutOfRange { field: "time" });
        }
        for (field, value) in [("spec", &self.spec), ("status", &self.status)] {
            if !(value.is_object() || field == "spec" && value.is_null()) {
                return Err(RecordError::OutOfRange { field });
            }
            let size = value.to_string().len();
            if size > MAX_STATUS_BYTES {
                return Err(RecordError::TooLong {
                    field,
                    size,
                    limit: MAX_STATUS_BYTES,
                    unit: "bytes",
                });
            }
            let deep = depth(value);
            if deep > MAX_STATUS_DEPTH {
                return Err(RecordError::TooLong {
                    field,
                    size: deep,
                    limit: MAX_STATUS_DEPTH,
                    unit: "levels",
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> ServiceRecord {
        ServiceRecord {
            place: "local".into(),
            name: "scratch".into(),
            time: 1.8e9,
            spec: json!({"chunkServers": 3, "goal": 2}),
            status: json!({"phase": "Healthy", "instances": [{"name": "chunkserver-0"}]}),
        }
    }

    #[test]
    fn a_status_round_trips_and_its_bounds_hold() {
        let good = record();
        let line = serde_json::to_string(&good).unwrap();
        assert_eq!(serde_json::from_str::<ServiceRecord>(&line).unwrap(), good);
        assert_eq!(good.check(), Ok(()));
        let field = |r: ServiceRecord| r.check().unwrap_err().field();
        let named = |name: &str| ServiceRecord {
            name: name.into(),
            ..record()
        };
        assert_eq!(field(named("../etc")), "name");
        assert_eq!(
            field(ServiceRecord {
                place: String::new(),
                ..record()
            }),
            "place"
        );
        assert_eq!(
            field(ServiceRecord {
                time: f64::INFINITY,
                ..record()
            }),
            "time"
        );
        assert_eq!(
            field(ServiceRecord {
                status: json!("Healthy"),
                ..record()
            }),
            "status"
        );
        let big = json!({"events": ["x".repeat(MAX_STATUS_BYTES)]});
        assert!(matches!(
            ServiceRecord {
                status: big,
                ..record()
            }
            .check(),
            Err(RecordError::TooLong {
                field: "status",
                ..
            })
        ));
        let mut deep = json!(1);
        for _ in 0..=MAX_STATUS_DEPTH {
            deep = json!([deep]);
        }
        let err = ServiceRecord {
            status: json!({ "x": deep }),
            ..record()
        }
        .check()
        .unwrap_err();
        assert!(err.to_string().contains("levels"), "{err}");
        assert!(serde_json::from_str::<ServiceRecord>(
            r#"{"place":"local","name":"a","time":1.8e9,"status":{},"token":"x"}"#
        )
        .is_err());
    }
}
