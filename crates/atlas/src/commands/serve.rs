//! `atlas serve [--addr 127.0.0.1:8080]… [--db FILE|URL]`: the REST API, Prometheus metrics,
//! agent ingest and the live dashboard over the store (crate `atlas-server`). On PostgreSQL
//! several servers may run over one database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::exit::Failure;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas user add ada && atlas serve\n  atlas serve --addr 0.0.0.0:8080 --secure-cookies"
)]
pub struct Args {
    /// Where to listen; give it again for more addresses (loopback and the test cluster's
    /// bridge, 10.231.0.1, so its hosts' agents can push). Loopback by default; anything else
    /// exposes the API to that network.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: Vec<SocketAddr>,
    /// The database: a file or a postgres:// URL (default: $ATLAS_DB or
    /// $XDG_DATA_HOME/atlas/atlas.db).
    #[arg(long)]
    db: Option<PathBuf>,
    /// The browser reaches the server over https (a TLS proxy in front that does not send
    /// `X-Forwarded-Proto: https`): session cookies get `Secure`, browser posts must come from
    /// `https://` pages.
    #[arg(long)]
    secure_cookies: bool,
    /// How long a client has to send a request's headers before its connection is closed
    /// (also between requests on a kept-alive connection).
    #[arg(long, default_value = "30s", value_parser = super::parse_interval)]
    header_timeout: Duration,
    /// Connections open at once (never more than the open-file limit allows); further clients
    /// wait to be accepted.
    #[arg(long, default_value_t = atlas_server::net::MAX_CONNECTIONS)]
    max_connections: usize,
    /// Server-sent event streams (live dashboard pages) open at once, all runs together; at
    /// most 16 on one run.
    #[arg(long, default_value_t = atlas_server::live::MAX_STREAMS)]
    max_event_streams: usize,
    /// Single sign-on: the OpenID Connect provider's issuer URL (exactly as its discovery
    /// document says it). The client secret comes from --oidc-client-secret-file or
    /// $ATLAS_OIDC_CLIENT_SECRET, never from the command line.
    #[arg(long, value_name = "URL")]
    oidc_issuer: Option<String>,
    /// The client id Atlas is registered under at the provider.
    #[arg(long, default_value = "atlas", requires = "oidc_issuer")]
    oidc_client_id: String,
    /// A file holding the client secret (one line).
    #[arg(long, value_name = "FILE", requires = "oidc_issuer")]
    oidc_client_secret_file: Option<PathBuf>,
    /// A provider group that makes its members a tenant's: GROUP=TENANT:ROLE (repeatable).
    #[arg(long, value_name = "GROUP=TENANT:ROLE", requires = "oidc_issuer", value_parser = atlas_server::oidc::GroupRule::parse)]
    oidc_group: Vec<atlas_server::oidc::GroupRule>,
    /// Serve HTTPS with this PEM certificate chain (and --tls-key): session cookies get
    /// `Secure`, browser posts must come from `https://` pages.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The address browsers reach this server at (for the login's callback and the printed
    /// login URL; default: http:// and the first --addr).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Also run the after-hours controller (`atlas windows run`) every SECONDS: the runs of the
    /// targets with a window schedule in atlas.toml here are frozen while their window is
    /// closed and woken while it is open.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "30",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    windows: Option<u64>,
}

/// The single sign-on settings, with the secret from its file or the environment.
fn oidc_settings(
    args: &Args,
    public: &str,
) -> Result<Option<atlas_server::oidc::Settings>, Failure> {
    let Some(issuer) = &args.oidc_issuer else {
        return Ok(None);
    };
    let secret = match &args.oidc_client_secret_file {
        Some(file) => std::fs::read_to_string(file).map_err(|e| {
            Failure::input(format!("--oidc-client-secret-file {}: {e}", file.display()))
        })?,
        None => std::env::var("ATLAS_OIDC_CLIENT_SECRET").map_err(|_| {
            Failure::input("--oidc-issuer needs the client secret: --oidc-client-secret-file FILE or $ATLAS_OIDC_CLIENT_SECRET")
        })?,
    };
    let secret = secret.trim().to_string();
    if secret.is_empty() || secret.len() > 4096 {
        return Err(Failure::input(
            "the OpenID Connect client secret is empty or longer than 4 KiB",
        ));
    }
    Ok(Some(atlas_server::oidc::Settings {
        issuer: issuer.clone(),
        client_id: args.oidc_client_id.clone(),
        client_secret: secret,
        redirect: format!("{public}/auth/callback"),
        groups: args.oidc_group.clone(),
    }))
}

pub fn run(args: Args) -> Result<(), Failure> {
    // Opened once here for the checks and messages of `db::open`, then by the server's pools.
    drop(super::db::open(args.db.as_deref())?);
    let location = super::db::location(args.db.as_deref());
    let targets = atlas_backends::target::load(&atlas_backends::target::config_files())
        .map_err(Failure::input)?;
    let prices = atlas_report::prices::PriceSheet::load(None).map_err(Failure::input)?;
    let config = atlas_server::Config {
        secure_cookies: args.secure_cookies || args.tls_cert.is_some(),
        header_timeout: args.header_timeout,
        max_connections: args.max_connections,
        max_event_streams: args.max_event_streams,
    };
    let state = atlas_server::AppState::open(&location, targets, prices, config)
        .map_err(Failure::environment)?;
    if let Some(every) = args.windows {
        super::window_schedule::start_beside(args.db.clone(), every)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::environment(format!("cannot start the server's runtime: {e}")))?;
    runtime.block_on(async {
        let listeners = args
            .addr
            .iter()
            .map(|addr| {
                atlas_server::listen(*addr)
                    .map_err(|e| Failure::environment(format!("cannot listen on {addr}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                Some(atlas_server::net::tls_acceptor(cert, key).map_err(Failure::input)?)
            }
            _ => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let addresses: Vec<String> = args
            .addr
            .iter()
            .map(|a| format!("{scheme}://{a}"))
            .collect();
        let public = args
            .public_url
            .clone()
            .unwrap_or_else(|| addresses[0].clone());
        let public = public.trim_end_matches('/').to_string();
        if let Some(oidc) = oidc_settings(&args, &public)? {
            let issuer = oidc.issuer.clone();
            let oidc = atlas_server::oidc::Oidc::discover(oidc)
                .await
                .map_err(Failure::environment)?;
            state.set_oidc(oidc);
            eprintln!("atlas serve: single sign-on through {issuer}");
        }
        let users = state
            .read(|s| s.users())
            .await
            .map(|u| u.len())
            .unwrap_or(0);
        let cap = atlas_server::net::connection_cap(args.max_connections);
        eprintln!(
            "atlas serve: {} (database {}; at most {cap} connections; {users} user(s){})",
            addresses.join(" and "),
            state.location(),
            if users == 0 {
                ": add one with `atlas user add NAME`"
            } else {
                ""
            }
        );
        eprintln!("atlas serve: log in at {public}/login");
        atlas_server::serve(listeners, state, tls)
            .await
            .map_err(|e| Failure::environment(format!("the server stopped: {e}")))
    })
}
