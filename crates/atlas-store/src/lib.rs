//! The Atlas store: experiments, runs, phases, samples and app metrics, behind the [`Store`]
//! trait. [`SqliteStore`] is the embedded default (one file, WAL mode); the schema and queries
//! stay portable so a PostgreSQL store can implement the same trait for shared deployments.
//!
//! Ingest is idempotent on (run id, sequence number): ingesting a spool twice, or one that was
//! half-ingested before a crash, gives the same rows.

mod live;
mod model;
mod schema;
mod sessions;
mod sqlite;
mod users;

pub use live::MetricPoint;
pub use model::{
    ExperimentDetail, ExperimentRow, GpuSummary, IngestStats, MetricSummary, NewRun, PhaseRow,
    RunDetail, RunRow, SeriesPoint,
};
pub use sqlite::SqliteStore;
pub use users::UserRow;

use std::collections::BTreeMap;

use atlas_spec::record::Record;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file exists but is not an Atlas database.
    #[error("{path} is not an Atlas database: {reason}")]
    NotADatabase { path: String, reason: String },
    /// The database was made by a newer Atlas.
    #[error("{path} has schema version {found}, newer than this Atlas understands ({known})")]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    /// No run with this id.
    #[error("no run `{0}` in the store (see `atlas runs`)")]
    NoSuchRun(String),
    /// No experiment with this id.
    #[error("no experiment `{0}` in the store (see `atlas experiments`)")]
    NoSuchExperiment(String),
    /// A user with this name exists already.
    #[error("a user named `{0}` exists already (see `atlas user list`)")]
    UserExists(String),
    /// Anything else from the database, with the store it happened in (empty until known).
    #[error("{}{source}", if store.is_empty() { "database error: ".to_string() } else { format!("the store {store}: ") })]
    Database {
        /// The database file or URL.
        store: String,
        /// What the database said.
        source: rusqlite::Error,
    },
}

impl From<rusqlite::Error> for StoreError {
    fn from(source: rusqlite::Error) -> Self {
        StoreError::Database {
            store: String::new(),
            source,
        }
    }
}

impl StoreError {
    /// The same error, naming the store it happened in.
    pub fn in_store(self, store: &str) -> Self {
        match self {
            StoreError::Database { source, .. } => StoreError::Database {
                store: store.to_string(),
                source,
            },
            other => other,
        }
    }
}

/// Where runs and their measurements live.
pub trait Store {
    /// Registers an experiment (a group of runs of one workflow).
    fn create_experiment(
        &mut self,
        id: &str,
        workflow: &str,
        labels: &serde_json::Value,
        created_at: f64,
    ) -> Result<(), StoreError>;
    /// Registers a run before its agent starts.
    fn create_run(&mut self, run: &NewRun) -> Result<(), StoreError>;
    /// Ingests agent records; records already present are skipped.
    fn ingest(&mut self, records: &[Record]) -> Result<IngestStats, StoreError>;
    /// Ends a run its agent could not report on (rejected by the scheduler, lost), with the
    /// cause; a phase still running ends with the same status and cause, a pending one is skipped.
    fn finish_run(
        &mut self,
        id: &str,
        status: &str,
        cause: &str,
        ended_at: f64,
    ) -> Result<(), StoreError>;
    /// The host and process of a run's agent, as its runStart recorded them (`None` before
    /// the runStart arrived, or from agents that did not record it).
    fn agent_process(
        &self,
        run: &str,
    ) -> Result<Option<(String, atlas_spec::record::AgentProcess)>, StoreError>;
    /// Records what differs between an experiment's runs other than the target.
    fn set_differences(
        &mut self,
        experiment: &str,
        differences: &[String],
    ) -> Result<(), StoreError>;
    /// Records how a run was launched: its scheduler's job id, when it was submitted (after its
    /// image was built and its inputs staged) and launch figures (merged by name).
    fn record_launch(
        &mut self,
        run: &str,
        scheduler_id: Option<&str>,
        submitted_at: Option<f64>,
        figures: &BTreeMap<String, f64>,
    ) -> Result<(), StoreError>;
    /// A run's job samples over time, at most `points` of them, evenly spaced (each with its
    /// time, cumulative CPU seconds, RSS and GPU 0's SM activity).
    fn series(&self, run: &str, points: usize) -> Result<Vec<SeriesPoint>, StoreError>;
    /// All runs, newest first.
    fn runs(&self) -> Result<Vec<RunRow>, StoreError>;
    /// All experiments, newest first.
    fn experiments(&self) -> Result<Vec<ExperimentRow>, StoreError>;
    /// One experiment with its runs. A unique prefix of the id is enough.
    fn experiment(&self, id: &str) -> Result<ExperimentDetail, StoreError>;
    /// One run with its phases. A unique prefix of the id is enough.
    fn run(&self, id: &str) -> Result<RunDetail, StoreError>;
}
