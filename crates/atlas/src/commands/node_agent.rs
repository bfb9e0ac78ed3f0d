//! `atlas node-agent [--listen ADDR] [--interval 1s]`: one per host. Samples what runs on the
//! node (`atlas_agent::node`) and serves it over HTTP: Prometheus text at `/metrics`, and at
//! `/usage?minutes=N` the average cores used over the last N minutes (what `atlas nodes` reads).
//! `scripts/node-agents-up` starts one in every host of the namespaced cluster; stop it by PID.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_agent::node::NodeSampler;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;

use crate::exit::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// Where to serve /metrics and /usage.
    #[arg(long, default_value = "0.0.0.0:9101")]
    listen: SocketAddr,
    /// Sampling interval (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = super::parse_interval)]
    interval: Duration,
}

#[derive(Clone)]
struct Shared {
    host: String,
    sampler: Arc<Mutex<NodeSampler>>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let shared = Shared {
        host: atlas_agent::host::host_name(0),
        sampler: Arc::new(Mutex::new(NodeSampler::new())),
    };
    let sampler = shared.sampler.clone();
    let interval = args.interval;
    std::thread::spawn(move || loop {
        if let Ok(mut s) = sampler.lock() {
            s.sample();
        }
        std::thread::sleep(interval);
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::environment(format!("cannot start a runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| Failure::environment(format!("cannot listen on {}: {e}", args.listen)))?;
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/usage", get(usage))
            .with_state(shared);
        axum::serve(listener, app)
            .await
            .map_err(|e| Failure::environment(format!("atlas node-agent: {e}")))
    })
}

#[derive(serde::Deserialize)]
struct Window {
    minutes: Option<f64>,
}

async fn usage(
    State(shared): State<Shared>,
    Query(window): Query<Window>,
) -> axum::Json<serde_json::Value> {
    let minutes = window.minutes.unwrap_or(10.0).clamp(0.0, 60.0);
    let sampler = shared.sampler.lock().expect("not poisoned");
    let (cores, covered) = sampler.average(minutes).unzip();
    let latest = sampler.latest();
    axum::Json(serde_json::json!({
        "host": shared.host,
        "cores": cores,
        "windowMinutes": covered,
        "rssBytes": latest.map(|s| s.rss_bytes),
        "processes": latest.map(|s| s.processes),
        "jobs": latest.map(|s| s.jobs.clone()),
    }))
}

async fn metrics(State(shared): State<Shared>) -> String {
    let sampler = shared.sampler.lock().expect("not poisoned");
    let host = &shared.host;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, lines: Vec<(String, f64)>| {
        out += &format!("# HELP {name} {help}\n# TYPE {name} gauge\n");
        for (labels, value) in lines {
            out += &format!("{name}{{host=\"{host}\"{labels}}} {value}\n");
        }
    };
    if let Some(s) = sampler.latest() {
        gauge(
            "atlas_node_cpu_cores",
            "CPU in use by the node's processes, in cores, last sample.",
            vec![(String::new(), s.cores)],
        );
        gauge(
            "atlas_node_memory_rss_bytes",
            "Resident memory of the node's processes.",
            vec![(String::new(), s.rss_bytes as f64)],
        );
        gauge(
            "atlas_node_processes",
            "Processes on the node.",
            vec![(String::new(), f64::from(s.processes))],
        );
        let jobs = s
            .jobs
            .iter()
            .map(|(job, cores)| (format!(",job=\"{job}\""), *cores))
            .collect();
        gauge(
            "atlas_node_job_cpu_cores",
            "CPU in use by each Slurm job's processes on the node, in cores.",
            jobs,
        );
    }
    let windows = [1.0, 10.0]
        .iter()
        .filter_map(|m| {
            sampler
                .average(*m)
                .map(|(c, _)| (format!(",window_minutes=\"{m}\""), c))
        })
        .collect();
    gauge(
        "atlas_node_cpu_cores_average",
        "CPU in use by the node's processes, averaged over the window.",
        windows,
    );
    out
}
