//! `atlas serve`: an HTTP server (axum) over the same store `atlas run` writes.
//!
//! - REST API under `/api/v1/` (runs, phases, samples, app metrics, experiments, the
//!   comparison as `atlas compare --format json` makes it, targets), described by
//!   `/api/v1/openapi.json`;
//! - `POST /api/v1/records`: agents push their records (the spool's JSON lines) while they run;
//!   ingest is the store's idempotent path, so a replayed batch adds nothing;
//! - `/metrics`: Prometheus exposition of the running jobs;
//! - the dashboard: pages and assets embedded in the binary, live through server-sent events.
//!
//! Every route but the login page, the assets and the OpenAPI document needs a user's token
//! ([`auth`]); a user sees their own runs only.

pub mod api;
pub mod auth;
mod dashboard;
pub mod error;
mod ingest;
pub mod layers;
pub mod live;
pub mod net;
pub mod openapi;
mod prometheus;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use atlas_backends::target::Named;
use atlas_report::prices::PriceSheet;
use atlas_store::{SqliteStore, StoreError};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, MethodRouter};
use axum::Router;

use error::ApiError;
pub use net::{listen, serve, LISTEN_BACKLOG};

/// The largest record batch an agent may POST (bytes); larger ones get 413.
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// How many record batches are ingested at once; more wait their turn.
pub const INGEST_PERMITS: usize = 8;

/// How the server is set up (`atlas serve`'s flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// Session cookies get `Secure` (set when a TLS proxy is in front that does not say
    /// `X-Forwarded-Proto: https`), and the expected `Origin` of browser posts is `https://`.
    pub secure_cookies: bool,
    /// How long a client has to send a request's head ([`net::HEADER_TIMEOUT`]).
    pub header_timeout: std::time::Duration,
    /// Connections open at once ([`net::MAX_CONNECTIONS`]; see [`net::connection_cap`]).
    pub max_connections: usize,
    /// Server-sent event streams open at once, all runs together ([`live::MAX_STREAMS`]).
    pub max_event_streams: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            secure_cookies: false,
            header_timeout: net::HEADER_TIMEOUT,
            max_connections: net::MAX_CONNECTIONS,
            max_event_streams: live::MAX_STREAMS,
        }
    }
}

/// What the server knows: the store (a connection for writes, one for reads, WAL lets them
/// run together), the targets and prices of the directory it was started in.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<SqliteStore>,
    reader: Mutex<SqliteStore>,
    targets: Vec<Named>,
    prices: PriceSheet,
    config: Config,
    ingest_permits: tokio::sync::Semaphore,
    /// The open event streams (see [`live`]).
    streams: Mutex<live::Streams>,
    /// Records ingested since the server started (for /metrics).
    ingested: AtomicU64,
}

impl AppState {
    /// Opens the store at `db` (twice: reads and writes) with these targets.
    pub fn open(
        db: &Path,
        targets: Vec<Named>,
        prices: PriceSheet,
        config: Config,
    ) -> Result<AppState, StoreError> {
        Ok(AppState {
            inner: Arc::new(Inner {
                writer: Mutex::new(SqliteStore::open(db)?),
                reader: Mutex::new(SqliteStore::open(db)?),
                targets,
                prices,
                config,
                ingest_permits: tokio::sync::Semaphore::new(INGEST_PERMITS),
                streams: Mutex::default(),
                ingested: AtomicU64::new(0),
            }),
        })
    }

    /// Runs `f` on the read connection, off the async threads.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner.reader.lock().expect("not poisoned")))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::from)
    }

    /// Runs `f` on the write connection, off the async threads.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SqliteStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&mut inner.writer.lock().expect("not poisoned")))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::from)
    }

    /// How the server is set up.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    fn target_prices(&self) -> BTreeMap<String, String> {
        self.inner
            .targets
            .iter()
            .filter_map(|t| Some((t.name.clone(), t.target.price.clone()?)))
            .collect()
    }
}

/// The API's routes (and `/metrics`), each with its handlers. The OpenAPI document describes
/// exactly these paths (a test below checks), and the server's tests walk the document, so a
/// route added here is tested for tenancy without anyone remembering to.
pub fn api_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/api/v1/runs", get(api::runs)),
        ("/api/v1/runs/{id}", get(api::run)),
        ("/api/v1/runs/{id}/samples", get(api::samples)),
        ("/api/v1/runs/{id}/metrics", get(api::metrics)),
        ("/api/v1/runs/{id}/log", get(api::log)),
        ("/api/v1/runs/{id}/events", get(live::events)),
        ("/api/v1/experiments", get(api::experiments)),
        ("/api/v1/experiments/{id}", get(api::experiment)),
        ("/api/v1/experiments/{id}/comparison", get(api::comparison)),
        ("/api/v1/experiments/{id}/report", get(api::report_html)),
        ("/api/v1/targets", get(api::targets)),
        (
            "/api/v1/records",
            post(ingest::records).layer(DefaultBodyLimit::max(MAX_BATCH_BYTES)),
        ),
        ("/metrics", get(prometheus::metrics)),
    ]
}

/// Every route of the server: the API, the OpenAPI document, the dashboard and its login.
pub fn router(state: AppState) -> Router {
    let api = api_routes()
        .into_iter()
        .fold(Router::new(), |router, (path, handlers)| {
            router.route(path, handlers)
        });
    api.route("/api/v1/openapi.json", get(openapi::document))
        .route("/login", get(dashboard::login_page).post(dashboard::login))
        .route("/logout", post(dashboard::logout))
        .route("/", get(dashboard::page))
        .route("/runs/{id}", get(dashboard::page))
        .route("/experiments/{id}", get(dashboard::page))
        .route("/targets", get(dashboard::page))
        .route("/assets/{file}", get(dashboard::asset))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn(layers::bounded_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            layers::same_origin,
        ))
        .layer(axum::middleware::from_fn(layers::json_errors))
        .layer(axum::middleware::from_fn(layers::security_headers))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_describes_every_api_route() {
        let spec = openapi::spec();
        let documented: std::collections::BTreeSet<&str> = spec["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let served: std::collections::BTreeSet<&str> =
            api_routes().into_iter().map(|(path, _)| path).collect();
        assert_eq!(documented, served);
    }
}
