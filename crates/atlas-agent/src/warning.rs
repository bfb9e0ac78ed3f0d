//! What the agent tells its caller without stopping the run. The library never prints a
//! diagnostic itself: it hands each warning to the caller's [`Warnings`] callback (the
//! `atlas agent` command writes it on stderr; a test may collect it).

use std::sync::Arc;

/// Something went wrong beside the run; the run goes on and the spool stays complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentWarning {
    /// The server refused the pushed records in a way that will not heal (401, 403, 400,
    /// 413): pushing stops, and `atlas ingest` can load the spool later.
    #[error("{server} refused the records ({why}); no more pushing, the spool keeps them")]
    PushRefused {
        /// The server's base URL.
        server: String,
        /// What it answered (`HTTP 401`).
        why: String,
    },
    /// The server cannot be reached (said once per outage); the pusher keeps trying.
    #[error("cannot reach {server} ({why}); retrying")]
    PushFailing { server: String, why: String },
    /// The server refused a batch of node samples (or services' status) for what it held;
    /// they are dropped.
    #[error("{server} refused {count} {what} ({why}); dropped, the next ones still go")]
    SamplesDropped {
        server: String,
        count: usize,
        /// `node sample(s)`, `service status(es)`.
        what: &'static str,
        why: String,
    },
    /// The server refused node samples (or services' status) in a way that will not heal (a
    /// wrong address or token): the pushing stops (a node agent still serves /metrics and
    /// /usage, an operator still operates).
    #[error(
        "{server} refused the {what} ({why}): no more pushing; check --server and ATLAS_TOKEN"
    )]
    NodePushStopped {
        server: String,
        /// `node samples`, `services' status`.
        what: &'static str,
        why: String,
    },
    /// A freeze was asked for a run that cannot be frozen; it keeps running.
    #[error("cannot freeze: {why}")]
    CannotFreeze {
        /// Why.
        why: String,
    },
}

/// Where warnings go. Called from the agent's own threads (the pushing one among them).
pub type Warnings = Arc<dyn Fn(AgentWarning) + Send + Sync>;

/// A sink that drops every warning, for callers with nowhere to show them.
pub fn ignore_warnings() -> Warnings {
    Arc::new(|_| {})
}
