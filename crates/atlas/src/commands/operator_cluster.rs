//! `atlas operator` on Kubernetes: connects with the kubeconfig (`--kubeconfig`, `--context`,
//! else kube's usual search), installs or updates the `StorageService` CRD and runs the
//! controller over `--namespace` (or every namespace) until SIGINT/SIGTERM, printing each
//! service's actions, events and changes of phase. The services keep running when it stops.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_operator::reconcile::Timing;

use super::operator_local::Printer;
use crate::exit::Failure;

/// What the Kubernetes mode was asked.
pub struct Options {
    pub namespace: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub start_timeout: u64,
    pub metrics: Option<std::net::SocketAddr>,
    pub server: Option<String>,
}

/// Each service's last status and the actions taken for it, for the metrics.
type Seen = std::collections::BTreeMap<String, (atlas_operator::StorageServiceStatus, u64)>;

pub fn run(options: &Options) -> Result<(), Failure> {
    if let Some(ns) = &options.namespace {
        if !atlas_spec::is_dns1123_label(ns) {
            return Err(Failure::input(format!(
                "--namespace {ns:?}: a namespace is a DNS-1123 label"
            )));
        }
    }
    let push = Mutex::new(super::operator_push::StatusPush::start(
        options.server.as_deref(),
    )?);
    let stop = Arc::new(AtomicBool::new(false));
    atlas_agent::signals::install();
    let flag = stop.clone();
    atlas_agent::signals::on_signal(move || flag.store(true, Ordering::SeqCst));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::environment(format!("cannot start the async runtime: {e}")))?;
    let text = Arc::new(Mutex::new(String::new()));
    if let Some(addr) = options.metrics {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| Failure::environment(format!("--metrics {addr}: {e}")))?;
        let shared = text.clone();
        std::thread::spawn(move || atlas_operator::metrics_http::serve(listener, shared));
        println!("metrics on http://{addr}/metrics");
    }
    runtime.block_on(async {
        let client = client(options).await?;
        let printers: Mutex<std::collections::HashMap<String, Printer>> = Mutex::default();
        let seen: Mutex<Seen> = Mutex::default();
        let report = Box::new(move |service: &str, tick: &atlas_operator::operate::Tick| {
            let mut printers = printers.lock().unwrap_or_else(|e| e.into_inner());
            printers
                .entry(service.to_string())
                .or_default()
                .print(service, tick);
            if let Some(push) = push.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                let (place, name) = service.split_once('/').unwrap_or(("default", service));
                push.send(place, name, tick);
            }
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            let entry = seen.entry(service.to_string()).or_default();
            entry.0 = tick.status.clone();
            entry.1 += tick.actions_total;
            let all: Vec<(&str, &atlas_operator::StorageServiceStatus, u64)> =
                seen.iter().map(|(n, (s, a))| (n.as_str(), s, *a)).collect();
            *text.lock().unwrap_or_else(|e| e.into_inner()) = atlas_operator::status::metrics(&all);
        });
        let timing = Timing {
            start_timeout_secs: options.start_timeout,
            ..Timing::default()
        };
        println!(
            "atlas operator: watching StorageServices in {}",
            options.namespace.as_deref().unwrap_or("every namespace")
        );
        let controller =
            atlas_operator::controller::run(client, options.namespace.as_deref(), timing, report);
        tokio::select! {
            done = controller => done.map_err(|e| Failure::environment(format!("atlas operator: {e}"))),
            () = stopped(&stop) => Ok(()),
        }
    })
}

async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn client(options: &Options) -> Result<kube::Client, Failure> {
    use kube::config::{Config, KubeConfigOptions, Kubeconfig};
    let unusable = |e: &dyn std::fmt::Display| Failure::environment(format!("atlas operator: {e}"));
    let kube_options = KubeConfigOptions {
        context: options.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &options.kubeconfig {
        Some(path) => {
            let meta = std::fs::metadata(path)
                .map_err(|e| Failure::input(format!("--kubeconfig {}: {e}", path.display())))?;
            if !meta.is_file() || meta.len() > 1 << 20 {
                return Err(Failure::input(format!(
                    "--kubeconfig {}: not a regular file of at most 1 MiB",
                    path.display()
                )));
            }
            let file = Kubeconfig::read_from(path).map_err(|e| unusable(&e))?;
            Config::from_custom_kubeconfig(file, &kube_options)
                .await
                .map_err(|e| unusable(&e))?
        }
        None => Config::from_kubeconfig(&kube_options)
            .await
            .map_err(|e| unusable(&e))?,
    };
    kube::Client::try_from(config).map_err(|e| unusable(&e))
}
