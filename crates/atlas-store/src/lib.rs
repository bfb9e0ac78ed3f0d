//! The Atlas store: experiments, runs, phases, samples, app metrics, users, tenants and browser
//! sessions, behind the [`Store`] trait. Two implementations: [`SqliteStore`], the embedded
//! default (one file, WAL mode), and [`PgStore`], PostgreSQL for shared deployments (several
//! `atlas serve` processes over one database). [`open`] picks one by its location.
//!
//! Ingest is idempotent on (run id, sequence number): ingesting a spool twice, or one that was
//! half-ingested before a crash, gives the same rows; lifecycle records are re-applied in
//! sequence order per run, so arrival order does not matter either. Both stores share that
//! logic (`summary.rs`) and are held to it by one test suite (`tests/suite.rs`).

mod model;
pub mod postgres;
mod schema;
mod sqlite;
mod summary;
pub mod tenancy;

pub use crate::postgres::PgStore;
pub use model::{
    ExperimentDetail, ExperimentRow, GpuSummary, HostRow, IngestStats, MetricPoint, MetricSummary,
    NewRun, NodeBucket, PhaseRow, RunDetail, RunFilter, RunRow, RunSpec, SeriesPoint, UserRow,
    WindowRow,
};
pub use sqlite::SqliteStore;
pub use tenancy::{Member, Quotas, Role, TenantRow, TokenRow, Usage};

use std::collections::BTreeMap;

use atlas_spec::node_record::NodeRecord;
use atlas_spec::record::{Record, RunStatus};
use atlas_spec::service_record::ServiceRecord;

/// How long node samples are kept (a week).
pub const NODE_RETENTION_SECONDS: f64 = 7.0 * 86_400.0;
/// How long a storage service not heard from is kept (a week).
pub const SERVICE_RETENTION_SECONDS: f64 = 7.0 * 86_400.0;

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
    /// More than one run starts with this prefix.
    #[error("`{0}` is the start of more than one run's id; give more of it (see `atlas runs`)")]
    AmbiguousRun(String),
    /// More than one experiment starts with this prefix.
    #[error("`{0}` is the start of more than one experiment's id; give more of it (see `atlas experiments`)")]
    AmbiguousExperiment(String),
    /// No experiment with this id.
    #[error("no experiment `{0}` in the store (see `atlas experiments`)")]
    NoSuchExperiment(String),
    /// A tenant with this name exists already.
    #[error("a tenant named `{0}` exists already (see `atlas tenant list`)")]
    TenantExists(String),
    /// No tenant with this name.
    #[error("no tenant `{0}` (see `atlas tenant list`)")]
    NoSuchTenant(String),
    /// A user with this name exists already.
    #[error("a user named `{0}` exists already (see `atlas user list`)")]
    UserExists(String),
    /// A value in the store this Atlas cannot read (a status word it does not know).
    #[error("the store holds a value this Atlas cannot read: {0}")]
    Corrupt(String),
    /// Anything else from the database, with the store it happened in (empty until known).
    #[error("{}{source}", if store.is_empty() { "database error: ".to_string() } else { format!("the store {store}: ") })]
    Database {
        /// The database file or URL.
        store: String,
        /// What the database said.
        source: rusqlite::Error,
    },
    /// A PostgreSQL location that is not a usable URL (the text is never repeated: it may
    /// hold a password).
    #[error("{0}")]
    BadLocation(String),
    /// The PostgreSQL server could not be reached or refused the login.
    #[error(
        "cannot connect to PostgreSQL at host {host}, port {port}, database {database}: {reason}"
    )]
    Connect {
        host: String,
        port: u16,
        database: String,
        /// Why, with any password taken out.
        reason: String,
    },
    /// An error from PostgreSQL, with the store (its URL without the password; empty until
    /// known).
    #[error("{}{reason}", if store.is_empty() { "database error: ".to_string() } else { format!("the store {store}: ") })]
    Postgres {
        /// The URL without its password.
        store: String,
        /// What the server or the driver said, with the cause chain.
        reason: String,
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

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        StoreError::Postgres {
            store: String::new(),
            reason: crate::postgres::describe(&e),
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
            StoreError::Postgres { reason, .. } => StoreError::Postgres {
                store: store.to_string(),
                reason,
            },
            other => other,
        }
    }
}

/// Opens the store at `location`: a `postgres://` or `postgresql://` URL is a [`PgStore`],
/// anything else the path of a [`SqliteStore`] file (created when missing). Either is migrated
/// to this Atlas's schema; a database of a newer schema is refused.
pub fn open(location: &str) -> Result<Box<dyn Store + Send>, StoreError> {
    if crate::postgres::is_url(location) {
        Ok(Box::new(PgStore::open(location)?))
    } else {
        Ok(Box::new(SqliteStore::open(std::path::Path::new(location))?))
    }
}

/// Where runs and their measurements live. Object-safe: the binary and the server hold a
/// `Box<dyn Store + Send>` ([`open`]). Reads take `&self`, writes `&mut self`.
pub trait Store {
    /// The store as errors and messages name it: the file, or the URL without its password.
    fn location(&self) -> String;

    // Experiments and runs.

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
        status: RunStatus,
        cause: &str,
        ended_at: f64,
    ) -> Result<(), StoreError>;
    /// What a run was started with: its workflow (YAML) and checked inputs (JSON).
    fn run_spec(&self, run: &str) -> Result<RunSpec, StoreError>;
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
    /// The runs `filter` selects, newest first; the filtering is done by the database.
    fn runs_filtered(&self, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError>;
    /// All experiments, newest first.
    fn experiments(&self) -> Result<Vec<ExperimentRow>, StoreError>;
    /// The experiments `user` sees (those with runs, all of them seen by `user`: see
    /// [`tenancy::visible_sql`]), newest first.
    fn visible_experiments(&self, user: &str) -> Result<Vec<ExperimentRow>, StoreError>;
    /// One experiment with its runs. A unique prefix of the id is enough.
    fn experiment(&self, id: &str) -> Result<ExperimentDetail, StoreError>;
    /// One run with its phases. A unique prefix of the id is enough.
    fn run(&self, id: &str) -> Result<RunDetail, StoreError>;

    // Users, owners and browser sessions (`atlas serve`).

    /// Adds a user with the hash of their token; a name that exists is an error.
    fn add_user(&mut self, name: &str, token_hash: &str, now: f64) -> Result<(), StoreError>;
    /// The user made for single sign-on identity `subject` (the issuer and the ID token's `sub`).
    fn user_for_subject(&self, subject: &str) -> Result<Option<String>, StoreError>;
    /// Adds a user for single sign-on identity `subject`, with an API token nobody is shown
    /// (`token_hash`); a name that exists is [`StoreError::UserExists`]: a provider's user
    /// never takes over an account of the same name.
    fn add_sso_user(
        &mut self,
        name: &str,
        subject: &str,
        token_hash: &str,
        now: f64,
    ) -> Result<(), StoreError>;
    /// The user whose token has this hash.
    fn user_for_token(&self, token_hash: &str) -> Result<Option<String>, StoreError>;
    /// Every user, by name.
    fn users(&self) -> Result<Vec<UserRow>, StoreError>;
    /// Who a run belongs to: `None` when there is no such run, `Some(None)` when it has no owner.
    fn run_owner(&self, run: &str) -> Result<Option<Option<String>>, StoreError>;
    /// The id of the run `user` sees that is `prefix`, or else the only one they see that
    /// starts with it; runs they do not see are not looked at, so a prefix says nothing of them.
    fn visible_run_id(&self, user: &str, prefix: &str) -> Result<Option<String>, StoreError>;
    /// The id of the experiment `user` sees (one with runs, all of them seen by `user`) that is
    /// `prefix`, or else the only one they see that starts with it.
    fn visible_experiment_id(&self, user: &str, prefix: &str)
        -> Result<Option<String>, StoreError>;
    /// Which of `seqs` are stored as `run`'s events (lifecycle records: start, phases, end,
    /// freezes, wakes).
    fn known_event_seqs(&self, run: &str, seqs: &[u64]) -> Result<Vec<u64>, StoreError>;
    /// Gives an ownerless run (an array task the agent reported first) to `owner`.
    fn claim_run(&mut self, run: &str, owner: &str) -> Result<(), StoreError>;
    /// Starts a session for `user` until `expires_at` (Unix seconds); sessions that have
    /// expired by `now` are deleted on the way.
    fn create_session(
        &mut self,
        id_hash: &str,
        user: &str,
        now: f64,
        expires_at: f64,
    ) -> Result<(), StoreError>;
    /// The user of the session whose id has this hash, if it has not expired at `now` and the
    /// user still exists.
    fn session_user(&self, id_hash: &str, now: f64) -> Result<Option<String>, StoreError>;
    /// Ends a session (logging out); one that does not exist is no error.
    fn delete_session(&mut self, id_hash: &str) -> Result<(), StoreError>;

    // Live reads: a run's samples in small pieces, through the (run id, seq) key.

    /// At most `points` job samples of `run` between `from` and `to` (Unix seconds; open when
    /// `None`), evenly spaced by sequence number, the first and last kept: (seq, point).
    fn series_between(
        &self,
        run: &str,
        from: Option<f64>,
        to: Option<f64>,
        points: usize,
    ) -> Result<Vec<(i64, SeriesPoint)>, StoreError>;
    /// The job samples of `run` after sequence number `after`, oldest first, at most `limit`.
    fn samples_after(
        &self,
        run: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, SeriesPoint)>, StoreError>;
    /// The latest job sample of `run`.
    fn latest_sample(&self, run: &str) -> Result<Option<(i64, SeriesPoint)>, StoreError>;
    /// The app metric values of `run` after sequence number `after`, oldest first.
    fn metrics_after(
        &self,
        run: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<MetricPoint>, StoreError>;

    // Tenants (teams): members with roles, quotas, usage.

    /// Adds a tenant; a name that exists is an error.
    fn add_tenant(&mut self, name: &str, now: f64) -> Result<(), StoreError>;
    /// Every tenant with its members and quotas, by name.
    fn tenants(&self) -> Result<Vec<TenantRow>, StoreError>;
    /// Makes `user` a member of `tenant` with `role` (a member already has their role changed).
    fn set_member(&mut self, tenant: &str, user: &str, role: Role) -> Result<(), StoreError>;
    /// Takes `user` out of `tenant`; whether they were a member.
    fn remove_member(&mut self, tenant: &str, user: &str) -> Result<bool, StoreError>;
    /// Replaces `tenant`'s quotas.
    fn set_quotas(&mut self, tenant: &str, quotas: &Quotas) -> Result<(), StoreError>;
    /// The tenants `user` is a member of, with their role, by tenant name.
    fn memberships(&self, user: &str) -> Result<Vec<(String, Role)>, StoreError>;
    /// What `tenant`'s runs hold now and have used since `since` (Unix seconds; running runs
    /// count up to `now`).
    fn usage(&self, tenant: &str, since: f64, now: f64) -> Result<Usage, StoreError>;

    // API tokens scoped to one tenant and one role.

    /// Adds a scoped token with the hash of its secret.
    fn add_token(&mut self, token: &TokenRow, token_hash: &str) -> Result<(), StoreError>;
    /// Every scoped token, by user and age.
    fn tokens(&self) -> Result<Vec<TokenRow>, StoreError>;
    /// Revokes the token with this id; whether there was one.
    fn revoke_token(&mut self, id: &str) -> Result<bool, StoreError>;
    /// The scoped token whose secret has this hash.
    fn scoped_token(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError>;

    // Node samples (`atlas node-agent --server`): the pusher's own, or their tenant's when
    // pushed with a token scoped to it; seen by the runs' rule.

    /// Stores `samples` as `owner`'s (in `tenant`, when the token was scoped to one); samples
    /// stored already (same target, node and time) are skipped, and `owner`'s samples older
    /// than [`NODE_RETENTION_SECONDS`] before `now` are deleted on the way. Returns how many
    /// were added.
    fn ingest_node_samples(
        &mut self,
        owner: &str,
        tenant: Option<&str>,
        samples: &[NodeRecord],
        now: f64,
    ) -> Result<u64, StoreError>;
    /// The latest sample of each node `viewer` (a [`tenancy::principal`]) sees that has one
    /// since `since`.
    fn latest_node_samples(&self, viewer: &str, since: f64) -> Result<Vec<NodeRecord>, StoreError>;
    /// The node use `viewer` sees since `since`, averaged per node over buckets of `bucket`
    /// seconds (by target, node and time), at most `limit` buckets.
    fn node_buckets(
        &self,
        viewer: &str,
        since: f64,
        bucket: f64,
        limit: usize,
    ) -> Result<Vec<NodeBucket>, StoreError>;

    // Storage services (`atlas operator --server`): the latest status of each, the pusher's
    // own or their tenant's; seen by the runs' rule.

    /// Keeps each of `records` as `owner`'s latest status of that service (in `tenant`, when
    /// the token was scoped to one), unless a newer one is kept already; services of `owner`'s
    /// not heard from for [`SERVICE_RETENTION_SECONDS`] before `now` are deleted on the way.
    /// Returns how many were kept.
    fn put_services(
        &mut self,
        owner: &str,
        tenant: Option<&str>,
        records: &[ServiceRecord],
        now: f64,
    ) -> Result<u64, StoreError>;
    /// The services `viewer` (a [`tenancy::principal`]) sees, by place and name.
    fn services(&self, viewer: &str) -> Result<Vec<ServiceRecord>, StoreError>;
}
