//! [`PgStore`]: the store in a PostgreSQL database, for shared deployments: several
//! `atlas serve` processes (and `atlas` commands) over one database. The same `Store` as
//! [`crate::SqliteStore`], held to the same test suite; a synchronous client (`postgres`).
//!
//! - `schema.rs`: the migrations, numbered as SQLite's;
//! - `ingest.rs`: idempotent, order-independent ingest (SQLite's `replay` ported), with one
//!   advisory lock per run so that concurrent ingests of one run take turns;
//! - `queries.rs`: every read and small write but ingest and users;
//! - `users.rs`: users, owners and browser sessions;
//! - `scratch.rs`: a database made for one test or benchmark and dropped after.
//!
//! A URL's password is never part of an error or of [`Store::location`].

mod ingest;
mod nodes;
mod queries;
mod schema;
pub mod scratch;
mod services;
mod tenants;
mod tokens;
mod users;

use std::cell::{RefCell, RefMut};
use std::collections::BTreeMap;
use std::time::Duration;

use atlas_spec::record::{AgentProcess, Record};
use postgres::config::Host;
use postgres::{Client, Config, NoTls};

use crate::model::{
    ExperimentDetail, ExperimentRow, IngestStats, MetricPoint, NewRun, RunDetail, RunFilter,
    RunRow, RunSpec, SeriesPoint, UserRow,
};
use crate::{NodeBucket, Quotas, Role, Store, StoreError, TenantRow, TokenRow, Usage};
use atlas_spec::node_record::NodeRecord;
use atlas_spec::service_record::ServiceRecord;

pub use schema::MIGRATIONS;

/// Whether `location` is a PostgreSQL URL (`postgres://…` or `postgresql://…`).
pub fn is_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// The store in a PostgreSQL database. `Send`, not `Sync`: one connection, used by one thread
/// at a time (the server keeps several stores for concurrency).
pub struct PgStore {
    client: RefCell<Client>,
    config: Config,
    /// The URL without its password: what errors name.
    location: String,
    /// The password, to take out of any message that might echo it.
    password: String,
}

/// Host, port and database of a parsed URL (what a connection error names).
fn target(config: &Config) -> (String, u16, String) {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let database = config.get_dbname().unwrap_or(user).to_string();
    (host, port, database)
}

/// `text` with every occurrence of `secret` replaced.
fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "********")
    }
}

impl PgStore {
    /// Connects to the database at `url` and migrates it. A URL that does not parse, a server
    /// that cannot be reached or a refused login is an error naming host, port and database,
    /// never the password; a database of a newer schema is refused naming both versions.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let mut config: Config = url.parse().map_err(|_| {
            StoreError::BadLocation(
                "not a PostgreSQL URL Atlas can use: expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"
                    .into(),
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        let (host, port, database) = target(&config);
        let user = config.get_user().unwrap_or("");
        let location = format!("postgres://{user}@{host}:{port}/{database}");
        let mut client = connect(&config, &password)?;
        schema::migrate(&mut client, &location).map_err(|e| e.in_store(&location))?;
        Ok(PgStore {
            client: RefCell::new(client),
            config,
            location,
            password,
        })
    }

    /// The connection, opened again first when the server closed it (a restart).
    fn client(&self) -> Result<RefMut<'_, Client>, StoreError> {
        let mut client = self.client.borrow_mut();
        if client.is_closed() {
            *client = connect(&self.config, &self.password)?;
        }
        Ok(client)
    }

    /// Runs `f` on the connection; an error names the store.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut client = self.client()?;
        f(&mut client).map_err(|e| match e {
            StoreError::Postgres { reason, .. } => StoreError::Postgres {
                store: self.location.clone(),
                reason: redact(&reason, &self.password),
            },
            other => other,
        })
    }
}

/// A connection; a failure names host, port and database, with the password taken out.
fn connect(config: &Config, password: &str) -> Result<Client, StoreError> {
    config.connect(NoTls).map_err(|e| {
        let (host, port, database) = target(config);
        StoreError::Connect {
            host,
            port,
            database,
            reason: redact(&describe(&e), password),
        }
    })
}

/// What went wrong, with the server's message when it sent one.
pub(crate) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}: {}{}",
            db.severity(),
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        None => {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                let more = c.to_string();
                if !text.contains(&more) {
                    text = format!("{text}: {more}");
                }
                cause = c.source();
            }
            text
        }
    }
}

impl Store for PgStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create_experiment(
        &mut self,
        id: &str,
        workflow: &str,
        labels: &serde_json::Value,
        created_at: f64,
    ) -> Result<(), StoreError> {
        self.with(|c| queries::create_experiment(c, id, workflow, labels, created_at))
    }

    fn create_run(&mut self, run: &NewRun) -> Result<(), StoreError> {
        self.with(|c| queries::create_run(c, run))
    }

    fn ingest(&mut self, records: &[Record]) -> Result<IngestStats, StoreError> {
        self.with(|c| ingest::ingest(c, records))
    }

    fn finish_run(
        &mut self,
        id: &str,
        status: atlas_spec::record::RunStatus,
        cause: &str,
        ended_at: f64,
    ) -> Result<(), StoreError> {
        self.with(|c| queries::finish_run(c, id, status, cause, ended_at))
    }

    fn run_spec(&self, run: &str) -> Result<RunSpec, StoreError> {
        self.with(|c| queries::run_spec(c, run))
    }

    fn agent_process(&self, run: &str) -> Result<Option<(String, AgentProcess)>, StoreError> {
        self.with(|c| queries::agent_process(c, run))
    }

    fn set_differences(
        &mut self,
        experiment: &str,
        differences: &[String],
    ) -> Result<(), StoreError> {
        self.with(|c| queries::set_differences(c, experiment, differences))
    }

    fn record_launch(
        &mut self,
        run: &str,
        scheduler_id: Option<&str>,
        submitted_at: Option<f64>,
        figures: &BTreeMap<String, f64>,
    ) -> Result<(), StoreError> {
        self.with(|c| queries::record_launch(c, run, scheduler_id, submitted_at, figures))
    }

    fn series(&self, run: &str, points: usize) -> Result<Vec<SeriesPoint>, StoreError> {
        let all = self.with(|c| queries::series_between(c, run, None, None, points))?;
        Ok(all.into_iter().map(|(_, point)| point).collect())
    }

    fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        self.with(|c| queries::runs_filtered(c, &RunFilter::default()))
    }

    fn runs_filtered(&self, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError> {
        self.with(|c| queries::runs_filtered(c, filter))
    }

    fn experiments(&self) -> Result<Vec<ExperimentRow>, StoreError> {
        self.with(|c| queries::experiments(c, None))
    }

    fn visible_experiments(&self, owner: &str) -> Result<Vec<ExperimentRow>, StoreError> {
        self.with(|c| queries::experiments(c, Some(owner)))
    }

    fn experiment(&self, id: &str) -> Result<ExperimentDetail, StoreError> {
        self.with(|c| queries::experiment(c, id))
    }

    fn run(&self, id: &str) -> Result<RunDetail, StoreError> {
        self.with(|c| queries::run(c, id))
    }

    fn add_user(&mut self, name: &str, token_hash: &str, now: f64) -> Result<(), StoreError> {
        self.with(|c| users::add_user(c, name, token_hash, now))
    }

    fn user_for_subject(&self, subject: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| users::user_for_subject(c, subject))
    }

    fn add_sso_user(
        &mut self,
        name: &str,
        subject: &str,
        token_hash: &str,
        now: f64,
    ) -> Result<(), StoreError> {
        self.with(|c| users::add_sso_user(c, name, subject, token_hash, now))
    }

    fn user_for_token(&self, token_hash: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| users::user_for_token(c, token_hash))
    }

    fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        self.with(users::users)
    }

    fn run_owner(&self, run: &str) -> Result<Option<Option<String>>, StoreError> {
        self.with(|c| users::run_owner(c, run))
    }

    fn visible_run_id(&self, owner: &str, prefix: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| users::visible_run_id(c, owner, prefix))
    }

    fn visible_experiment_id(
        &self,
        owner: &str,
        prefix: &str,
    ) -> Result<Option<String>, StoreError> {
        self.with(|c| users::visible_experiment_id(c, owner, prefix))
    }

    fn claim_run(&mut self, run: &str, owner: &str) -> Result<(), StoreError> {
        self.with(|c| users::claim_run(c, run, owner))
    }

    fn create_session(
        &mut self,
        id_hash: &str,
        user: &str,
        now: f64,
        expires_at: f64,
    ) -> Result<(), StoreError> {
        self.with(|c| users::create_session(c, id_hash, user, now, expires_at))
    }

    fn session_user(&self, id_hash: &str, now: f64) -> Result<Option<String>, StoreError> {
        self.with(|c| users::session_user(c, id_hash, now))
    }

    fn delete_session(&mut self, id_hash: &str) -> Result<(), StoreError> {
        self.with(|c| users::delete_session(c, id_hash))
    }

    fn add_tenant(&mut self, name: &str, now: f64) -> Result<(), StoreError> {
        self.with(|c| tenants::add_tenant(c, name, now))
    }

    fn tenants(&self) -> Result<Vec<TenantRow>, StoreError> {
        self.with(tenants::tenants)
    }

    fn set_member(&mut self, tenant: &str, user: &str, role: Role) -> Result<(), StoreError> {
        self.with(|c| tenants::set_member(c, tenant, user, role))
    }

    fn remove_member(&mut self, tenant: &str, user: &str) -> Result<bool, StoreError> {
        self.with(|c| tenants::remove_member(c, tenant, user))
    }

    fn set_quotas(&mut self, tenant: &str, quotas: &Quotas) -> Result<(), StoreError> {
        self.with(|c| tenants::set_quotas(c, tenant, quotas))
    }

    fn memberships(&self, user: &str) -> Result<Vec<(String, Role)>, StoreError> {
        self.with(|c| tenants::memberships(c, user))
    }

    fn usage(&self, tenant: &str, since: f64, now: f64) -> Result<Usage, StoreError> {
        self.with(|c| tenants::usage(c, tenant, since, now))
    }

    fn known_event_seqs(&self, run: &str, seqs: &[u64]) -> Result<Vec<u64>, StoreError> {
        self.with(|c| users::known_event_seqs(c, run, seqs))
    }

    fn add_token(&mut self, token: &TokenRow, token_hash: &str) -> Result<(), StoreError> {
        self.with(|c| tokens::add_token(c, token, token_hash))
    }

    fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        self.with(tokens::tokens)
    }

    fn revoke_token(&mut self, id: &str) -> Result<bool, StoreError> {
        self.with(|c| tokens::revoke_token(c, id))
    }

    fn scoped_token(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        self.with(|c| tokens::scoped_token(c, token_hash))
    }

    fn ingest_node_samples(
        &mut self,
        owner: &str,
        tenant: Option<&str>,
        samples: &[NodeRecord],
        now: f64,
    ) -> Result<u64, StoreError> {
        self.with(|c| nodes::ingest(c, owner, tenant, samples, now))
    }

    fn latest_node_samples(&self, owner: &str, since: f64) -> Result<Vec<NodeRecord>, StoreError> {
        self.with(|c| nodes::latest(c, owner, since))
    }

    fn put_services(
        &mut self,
        owner: &str,
        tenant: Option<&str>,
        records: &[ServiceRecord],
        now: f64,
    ) -> Result<u64, StoreError> {
        self.with(|c| services::put(c, owner, tenant, records, now))
    }

    fn services(&self, viewer: &str) -> Result<Vec<ServiceRecord>, StoreError> {
        self.with(|c| services::list(c, viewer))
    }

    fn node_buckets(
        &self,
        owner: &str,
        since: f64,
        bucket: f64,
        limit: usize,
    ) -> Result<Vec<NodeBucket>, StoreError> {
        self.with(|c| nodes::buckets(c, owner, since, bucket, limit))
    }

    fn series_between(
        &self,
        run: &str,
        from: Option<f64>,
        to: Option<f64>,
        points: usize,
    ) -> Result<Vec<(i64, SeriesPoint)>, StoreError> {
        self.with(|c| queries::series_between(c, run, from, to, points))
    }

    fn samples_after(
        &self,
        run: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, SeriesPoint)>, StoreError> {
        self.with(|c| queries::samples_after(c, run, after, limit))
    }

    fn latest_sample(&self, run: &str) -> Result<Option<(i64, SeriesPoint)>, StoreError> {
        self.with(|c| queries::latest_sample(c, run))
    }

    fn metrics_after(
        &self,
        run: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<MetricPoint>, StoreError> {
        self.with(|c| queries::metrics_after(c, run, after, limit))
    }
}
