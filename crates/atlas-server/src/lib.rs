//! `atlas serve`: an HTTP server (axum) over the same store `atlas run` writes.
//!
//! - REST API under `/api/v1/` (runs, phases, samples, app metrics, experiments, the
//!   comparison as `atlas compare --format json` makes it, targets), described by
//!   `/api/v1/openapi.json`;
//! - `POST /api/v1/records`: agents push their records (the spool's JSON lines) while they run;
//!   ingest is the store's idempotent path, so a replayed batch adds nothing;
//! - `POST /api/v1/nodes/samples`: node agents push node samples; `GET /api/v1/nodes` reads
//!   them back for the nodes page ([`nodes`]);
//! - `/metrics`: Prometheus exposition of the running jobs;
//! - the dashboard: pages and assets embedded in the binary, live through server-sent events.
//!
//! Every route but the login page, the assets and the OpenAPI document needs a user's token
//! ([`auth`]) or a session, started with a token or through single sign-on ([`oidc`]); a user
//! sees their tenants' runs and their own.

pub mod api;
pub mod auth;
mod batch;
mod dashboard;
pub mod error;
mod ingest;
pub mod layers;
pub mod live;
pub mod net;
pub mod nodes;
pub mod oidc;
pub mod openapi;
mod prometheus;
pub mod services;
mod tenants;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use atlas_backends::target::Named;
use atlas_report::prices::PriceSheet;
use atlas_store::{Store, StoreError};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put, MethodRouter};
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

/// The store as the server holds it: either kind, one connection per value.
pub type BoxedStore = Box<dyn Store + Send>;

/// Connections to one store, each used by one blocking task at a time: a free one is taken,
/// else the task waits for one (chosen round-robin).
struct Pool {
    stores: Vec<Mutex<BoxedStore>>,
    next: AtomicU64,
}

impl Pool {
    /// `count` connections to `location`.
    fn open(location: &str, count: usize) -> Result<Pool, StoreError> {
        let stores = (0..count.max(1))
            .map(|_| atlas_store::open(location).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(Pool {
            stores,
            next: AtomicU64::new(0),
        })
    }

    /// A connection: the first free one, else the next in turn once it is free.
    fn take(&self) -> std::sync::MutexGuard<'_, BoxedStore> {
        for store in &self.stores {
            if let Ok(guard) = store.try_lock() {
                return guard;
            }
        }
        let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.stores[turn as usize % self.stores.len()]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How many connections the server keeps, per kind of store: SQLite has one writer at a time
/// (one write connection, one read connection, WAL lets them run together); PostgreSQL takes
/// concurrent writers, so one write connection per ingest permit and four for reads.
fn pool_sizes(location: &str) -> (usize, usize) {
    if atlas_store::postgres::is_url(location) {
        (INGEST_PERMITS, 4)
    } else {
        (1, 1)
    }
}

/// What the server knows: the store (connections for writes and for reads), the targets and
/// prices of the directory it was started in.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    writers: Pool,
    readers: Pool,
    /// The store as messages name it (no password).
    location: String,
    targets: Vec<Named>,
    prices: PriceSheet,
    config: Config,
    ingest_permits: tokio::sync::Semaphore,
    /// The open event streams (see [`live`]).
    streams: Mutex<live::Streams>,
    /// Records ingested since the server started (for /metrics).
    ingested: AtomicU64,
    /// Single sign-on, when set up ([`AppState::set_oidc`]).
    oidc: std::sync::OnceLock<oidc::Oidc>,
}

impl AppState {
    /// Opens the store at `location` (a SQLite file or a PostgreSQL URL; see
    /// [`atlas_store::open`]) with connections for reads and writes, with these targets.
    pub fn open(
        location: &str,
        targets: Vec<Named>,
        prices: PriceSheet,
        config: Config,
    ) -> Result<AppState, StoreError> {
        let (writers, readers) = pool_sizes(location);
        let writers = Pool::open(location, writers)?;
        let readers = Pool::open(location, readers)?;
        let named = writers.take().location();
        Ok(AppState {
            inner: Arc::new(Inner {
                writers,
                readers,
                location: named,
                targets,
                prices,
                config,
                ingest_permits: tokio::sync::Semaphore::new(INGEST_PERMITS),
                streams: Mutex::default(),
                ingested: AtomicU64::new(0),
                oidc: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Runs `f` on a read connection, off the async threads.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(inner.readers.take().as_ref()))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::from)
    }

    /// Runs `f` on a write connection, off the async threads.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(inner.writers.take().as_mut()))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::from)
    }

    /// The store as messages name it (a file, or a URL without its password).
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// Sets up single sign-on (once; a second call is ignored).
    pub fn set_oidc(&self, oidc: oidc::Oidc) {
        let _ = self.inner.oidc.set(oidc);
    }

    /// Single sign-on, when set up.
    pub fn oidc(&self) -> Option<&oidc::Oidc> {
        self.inner.oidc.get()
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
        ("/api/v1/me", get(api::me)),
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
        (
            "/api/v1/nodes/samples",
            post(nodes::ingest).layer(DefaultBodyLimit::max(MAX_BATCH_BYTES)),
        ),
        ("/api/v1/nodes", get(nodes::nodes)),
        (
            "/api/v1/services/status",
            post(services::push).layer(DefaultBodyLimit::max(MAX_BATCH_BYTES)),
        ),
        ("/api/v1/services", get(services::list)),
        ("/api/v1/tenants", get(tenants::list)),
        (
            "/api/v1/tenants/{tenant}/members/{user}",
            put(tenants::set_member).delete(tenants::remove_member),
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
        .route("/auth/login", get(oidc::start))
        .route("/auth/callback", get(oidc::callback))
        .route("/", get(dashboard::page))
        .route("/runs/{id}", get(dashboard::page))
        .route("/experiments/{id}", get(dashboard::page))
        .route("/targets", get(dashboard::page))
        .route("/nodes", get(dashboard::page))
        .route("/services", get(dashboard::page))
        .route("/tenants", get(dashboard::page))
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
