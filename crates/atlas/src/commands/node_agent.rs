//! `atlas node-agent [--listen ADDR] [--interval 1s] [--server URL --target T]`: one per host.
//! Samples what runs on the node (`atlas_agent::node`) and serves it over HTTP: Prometheus text
//! at `/metrics`, and at `/usage?minutes=N` the average cores used over the last N minutes
//! (what `atlas nodes` reads). With `--server` (and the token in `ATLAS_TOKEN`, never on the
//! command line) it also pushes a sample every `--push-every` to `atlas serve`, for the
//! dashboard's nodes page: the same pushing thread as the job agent's, its backlog bounded to
//! an hour of samples while the server is away. `scripts/node-agents-up` starts one in every
//! host of the namespaced cluster; stop it by PID.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::BTreeMap;
use std::io::Write;

use atlas_agent::node::{NodeSampler, Scope};
use atlas_agent::push::{Lines, Pusher};
use atlas_spec::node_record::NodeRecord;
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
    /// Which processes are the node's: those in this UTS namespace (a host of the namespaced
    /// test cluster, a plain host), or every one this agent sees (a Kubernetes DaemonSet pod
    /// with the host's PID namespace, where each pod has a UTS namespace of its own).
    #[arg(long, value_enum, default_value = "uts")]
    scope: ScopeArg,
    /// Push samples to this `atlas serve` (its token in ATLAS_TOKEN).
    #[arg(long, requires = "target")]
    server: Option<String>,
    /// The target this node belongs to, as atlas.toml names it (for --server).
    #[arg(long)]
    target: Option<String>,
    /// The node's name (default: the host name; on Kubernetes, the node's, from NODE_NAME).
    #[arg(long)]
    node: Option<String>,
    /// The node's cores in all (default: the CPUs this process may use).
    #[arg(long)]
    cores: Option<f64>,
    /// How often a sample is pushed (the average since the last).
    #[arg(long, default_value = "5s", value_parser = super::parse_interval)]
    push_every: Duration,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ScopeArg {
    Uts,
    Host,
}

/// Samples kept while the server is away: an hour at the shortest push interval.
const PUSH_BACKLOG: usize = 3600;

#[derive(Clone)]
struct Shared {
    host: String,
    sampler: Arc<Mutex<NodeSampler>>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let host = match args
        .node
        .clone()
        .or_else(|| std::env::var("NODE_NAME").ok())
    {
        Some(name) => name,
        None => atlas_agent::host::host_name(0),
    };
    atlas_spec::check_name(&host)
        .map_err(|e| Failure::input(format!("the node's name `{host}`: {e} (give --node)")))?;
    let shared = Shared {
        host,
        sampler: Arc::new(Mutex::new(NodeSampler::with_scope(match args.scope {
            ScopeArg::Uts => Scope::Uts,
            ScopeArg::Host => Scope::Host,
        }))),
    };
    if let Some(server) = &args.server {
        start_pushing(&args, server, &shared)?;
    }
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

/// Checks the push settings and starts a thread that pushes a sample every `--push-every`.
fn start_pushing(args: &Args, server: &str, shared: &Shared) -> Result<(), Failure> {
    let target = args.target.clone().unwrap_or_default();
    atlas_spec::check_name(&target)
        .map_err(|e| Failure::input(format!("--target `{target}`: {e}")))?;
    let push = super::push_target(server)?;
    let most = atlas_spec::node_record::MAX_NODE_CORES;
    let capacity = match args.cores {
        Some(c) if c.is_finite() && c > 0.0 && c <= most => Some(c),
        Some(c) => {
            return Err(Failure::input(format!(
                "--cores {c}: give a positive number"
            )))
        }
        None => std::thread::available_parallelism()
            .ok()
            .map(|n| n.get() as f64),
    };
    let warnings: atlas_agent::Warnings =
        Arc::new(|w: atlas_agent::AgentWarning| eprintln!("atlas node-agent: {w}"));
    let lines = Lines::NodeSamples {
        max_backlog: PUSH_BACKLOG,
    };
    let mut pusher = Pusher::start_for(push, lines, warnings);
    let (sampler, node, every) = (shared.sampler.clone(), shared.host.clone(), args.push_every);
    std::thread::spawn(move || loop {
        std::thread::sleep(every);
        let line = {
            let s = sampler.lock().expect("not poisoned");
            let (Some((cores, _)), Some(latest)) =
                (s.average(every.as_secs_f64() / 60.0), s.latest())
            else {
                continue;
            };
            let record = NodeRecord {
                target: target.clone(),
                node: node.clone(),
                time: atlas_agent::spool::unix_now(),
                cores,
                capacity,
                rss_bytes: Some(latest.rss_bytes),
                processes: Some(latest.processes),
                jobs: busiest(&latest.jobs),
            };
            serde_json::to_string(&record).unwrap_or_default()
        };
        let _ = writeln!(pusher, "{line}");
        let _ = pusher.flush();
    });
    Ok(())
}

/// The jobs a sample may name (the server's bound): the busiest, when a node runs more.
fn busiest(jobs: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let most = atlas_spec::MAX_LIST_ITEMS;
    if jobs.len() <= most {
        return jobs.clone();
    }
    let mut all: Vec<(&String, &f64)> = jobs.iter().collect();
    all.sort_by(|a, b| b.1.total_cmp(a.1));
    all.into_iter()
        .take(most)
        .map(|(j, c)| (j.clone(), *c))
        .collect()
}

#[derive(serde::Deserialize)]
struct Window {
    minutes: Option<f64>,
}

async fn usage(
    State(shared): State<Shared>,
    Query(window): Query<Window>,
) -> Result<axum::Json<serde_json::Value>, (axum::http::StatusCode, String)> {
    let minutes = window.minutes.unwrap_or(10.0);
    if !(minutes.is_finite() && minutes > 0.0 && minutes <= 60.0) {
        return Err((
            axum::http::StatusCode::BAD_REQUEST,
            "minutes: give a number above 0 and at most 60\n".into(),
        ));
    }
    let sampler = shared.sampler.lock().expect("not poisoned");
    let (cores, covered) = sampler.average(minutes).unzip();
    let latest = sampler.latest();
    Ok(axum::Json(serde_json::json!({
        "host": shared.host,
        "cores": cores,
        "windowMinutes": covered,
        "rssBytes": latest.map(|s| s.rss_bytes),
        "processes": latest.map(|s| s.processes),
        "jobs": latest.map(|s| s.jobs.clone()),
    })))
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
            "CPU in use by each job's processes on the node (Slurm job id, or pod-UID), in cores.",
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
