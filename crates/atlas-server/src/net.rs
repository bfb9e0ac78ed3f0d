//! Listening and connections: the accept loop of `atlas serve`, bounded so that idle or slow
//! clients cannot hold the server.
//!
//! - A request's head (request line and headers) must arrive within the header timeout
//!   ([`crate::Config::header_timeout`], default [`HEADER_TIMEOUT`]), on a new connection as on
//!   a kept-alive one between requests; else hyper closes the connection.
//! - At most [`crate::Config::max_connections`] (default [`MAX_CONNECTIONS`]) connections are
//!   open at once, and never more than the process may open files less [`FD_RESERVE`]: a
//!   semaphore slot is taken before `accept`, so further clients wait in the listen backlog
//!   ([`LISTEN_BACKLOG`]) instead of the server failing to accept with `EMFILE`.
//! - With a certificate and key ([`tls_acceptor`]) every connection is TLS (rustls): the
//!   handshake too must end within the header timeout.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::{router, AppState};

/// How long a client has to send a request's head, by default.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections open at once, by default.
pub const MAX_CONNECTIONS: usize = 1024;

/// File descriptors kept for everything but connections: the store (two connections, each
/// with its database, WAL and shared-memory files), log files being read, the listener,
/// the runtime's own.
pub const FD_RESERVE: usize = 64;

/// How long a stopping server waits for open requests (event streams included) to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Connections waiting to be accepted. The standard library's (and tokio's) 128 is too few
/// for a burst of agents: 1,000 pushing at once overflowed it and some got no answer at all.
/// The kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `addr` with [`LISTEN_BACKLOG`]; call inside a tokio runtime.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The connection cap in force: `configured`, but at most the process's open-file limit
/// (`RLIMIT_NOFILE`, soft) less [`FD_RESERVE`], and at least 1.
pub fn connection_cap(configured: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let files = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        usize::MAX
    };
    configured.min(files.saturating_sub(FD_RESERVE)).max(1)
}

/// The largest certificate or key file read (`/dev/zero` is not a certificate).
const MAX_PEM_BYTES: u64 = 1 << 20;

/// A TLS acceptor for a PEM certificate chain and its PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |flag: &str, path: &std::path::Path| -> Result<Vec<u8>, String> {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| format!("{flag} {}: {e}", path.display()))?;
        if bytes.len() as u64 > MAX_PEM_BYTES {
            return Err(format!("{flag} {}: larger than 1 MiB", path.display()));
        }
        Ok(bytes)
    };
    let (cert_pem, key_pem) = (read("--tls-cert", cert)?, read("--tls-key", key)?);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate in it",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| format!("--tls-cert and --tls-key do not make a pair: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves on every listener (one connection cap for all) until Ctrl-C or SIGTERM, then gives
/// open requests [`SHUTDOWN_GRACE`] to finish; over TLS with an acceptor.
pub async fn serve(
    listeners: Vec<TcpListener>,
    state: AppState,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> std::io::Result<()> {
    let config = state.config().clone();
    let app = router(state);
    let slots = Arc::new(Semaphore::new(connection_cap(config.max_connections)));
    let graceful = GracefulShutdown::new();
    let mut stop = pin!(stop_signal());
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let accepting = listeners.iter().map(|l| Box::pin(l.accept()));
        let (stream, peer) = tokio::select! {
            (accepted, _, _) = futures_util::future::select_all(accepting) => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_timeout);
        // The peer's address, for what is limited per client (logins under way).
        let peer = axum::Extension(axum::extract::ConnectInfo(peer));
        let service = TowerToHyperService::new(tower_layer::Layer::layer(&peer, app.clone()));
        let Some(tls) = &tls else {
            let connection =
                graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                let _ = connection.await;
                drop(slot);
            });
            continue;
        };
        let (tls, watcher, timeout) = (tls.clone(), graceful.watcher(), config.header_timeout);
        tokio::spawn(async move {
            if let Ok(Ok(stream)) = tokio::time::timeout(timeout, tls.accept(stream)).await {
                let _ = watcher
                    .watch(builder.serve_connection(TokioIo::new(stream), service))
                    .await;
            }
            drop(slot);
        });
    }
    drop(listeners);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {}
    }
    Ok(())
}

/// After a failed `accept`: a client that gave up is nothing; out of file descriptors (another
/// part of the process holds them) waits a little for some to be closed.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::*;
    if !matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | Interrupted
    ) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending().await,
            }
        } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_leaves_room_for_the_stores_files() {
        assert!(connection_cap(usize::MAX) <= usize::MAX - FD_RESERVE);
        assert_eq!(connection_cap(3), 3);
        assert!(connection_cap(0) >= 1);
    }
}
