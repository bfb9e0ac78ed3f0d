//! `atlas operator --server URL`: each pass's status of each service goes to `atlas serve`
//! (`POST /api/v1/services/status`, with `ATLAS_TOKEN`), for its services page. A push that
//! fails never stops the operator: the pusher keeps a short backlog while the server is away
//! and says once why it stopped when the server refuses for good.

use std::io::Write;
use std::sync::Arc;

use atlas_agent::push::{Lines, Pusher};
use atlas_operator::operate::Tick;
use atlas_spec::service_record::ServiceRecord;

use crate::exit::Failure;

/// Statuses kept while the server is away (the newest win: each is the whole status).
const BACKLOG: usize = 50;

/// Where the services' status goes, when `--server` (or `ATLAS_SERVER`) names a server.
pub struct StatusPush {
    pusher: Pusher,
}

impl StatusPush {
    /// Checks `--server` and `ATLAS_TOKEN`; `None` when no server is named.
    pub fn start(server: Option<&str>) -> Result<Option<StatusPush>, Failure> {
        let from_env = std::env::var("ATLAS_SERVER").ok().filter(|s| !s.is_empty());
        let Some(server) = server.map(str::to_string).or(from_env) else {
            return Ok(None);
        };
        let target = super::push_target(&server)?;
        let warnings: atlas_agent::Warnings =
            Arc::new(|w: atlas_agent::AgentWarning| eprintln!("atlas operator: {w}"));
        let lines = Lines::Services {
            max_backlog: BACKLOG,
        };
        Ok(Some(StatusPush {
            pusher: Pusher::start_for(target, lines, warnings),
        }))
    }

    /// Sends the status of `name` in `place` (`local`, or its namespace) after a pass.
    pub fn send(&mut self, place: &str, name: &str, tick: &Tick) {
        let Some(line) = record_line(place, name, tick) else {
            return;
        };
        let _ = self.pusher.write_all(line.as_bytes());
        let _ = self.pusher.flush();
    }
}

/// The status as one JSON line: the spec in brief and the whole status.
fn record_line(place: &str, name: &str, tick: &Tick) -> Option<String> {
    let spec = tick.spec.map(|s| {
        serde_json::json!({
            "chunkServers": s.chunk_servers,
            "goal": s.goal,
            "metaloggers": s.metaloggers,
            "storagePerChunkServer": s.storage_per_chunk_server,
            "version": s.version,
            "image": s.image,
        })
    });
    let record = ServiceRecord {
        place: place.to_string(),
        name: name.to_string(),
        time: atlas_agent::spool::unix_now(),
        spec: spec.unwrap_or_default(),
        status: serde_json::to_value(tick.status).ok()?,
    };
    let mut line = serde_json::to_string(&record).ok()?;
    line.push('\n');
    Some(line)
}
