//! `atlas operator --local FILE`: the storage-service operator on this machine, the service's
//! instances as podman containers. Wires the crate's loop to the terminal (a line per action,
//! event and change of phase), a status file, a Prometheus endpoint and `atlas serve`
//! (`--server`); SIGINT/SIGTERM stop the operator and leave the service running.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_operator::operate::{self, Tick};
use atlas_operator::reconcile::Timing;

use crate::exit::Failure;

/// What `--local` was asked.
pub struct Options {
    pub interval: f64,
    pub until_healthy: bool,
    pub once: bool,
    pub down: bool,
    pub status_file: Option<PathBuf>,
    pub metrics: Option<std::net::SocketAddr>,
    pub start_timeout: u64,
    pub server: Option<String>,
}

pub fn run(file: &Path, options: &Options) -> Result<(), Failure> {
    let (name, _) = super::operator::load(file)?;
    let state_file = state_dir().join(format!("{name}.json"));
    if options.down {
        operate::delete(&name, Some(&state_file))
            .map_err(|e| Failure::environment(format!("{name}: {e}")))?;
        println!("StorageService {name}: its containers, volumes and network are removed");
        return Ok(());
    }
    if !(0.2..=3600.0).contains(&options.interval) {
        return Err(Failure::input("--interval: 0.2 to 3600 seconds"));
    }
    let mut push = super::operator_push::StatusPush::start(options.server.as_deref())?;
    let stop = Arc::new(AtomicBool::new(false));
    atlas_agent::signals::install();
    let flag = stop.clone();
    atlas_agent::signals::on_signal(move || flag.store(true, Ordering::SeqCst));
    let metrics = Arc::new(Mutex::new(String::new()));
    if let Some(addr) = options.metrics {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| Failure::environment(format!("--metrics {addr}: {e}")))?;
        println!(
            "metrics on http://{}/metrics",
            listener.local_addr().map_err(io)?
        );
        let shared = metrics.clone();
        std::thread::spawn(move || atlas_operator::metrics_http::serve(listener, shared));
    }
    let loop_options = operate::Options {
        interval: Duration::from_secs_f64(options.interval),
        timing: Timing {
            start_timeout_secs: options.start_timeout,
            ..Timing::default()
        },
        until_healthy: options.until_healthy,
        once: options.once,
        state_file: Some(state_file),
    };
    let load = || {
        super::operator::load(file)
            .map(|(_, service)| service.spec)
            .map_err(|e| match e {
                Failure::Input(why) | Failure::Environment(why) => {
                    format!("{why}; keeping the last valid spec")
                }
                _ => "the file cannot be read; keeping the last valid spec".to_string(),
            })
    };
    let mut printer = Printer::default();
    let mut on_tick = |tick: &Tick| {
        printer.print(&name, tick);
        if let Some(push) = push.as_mut() {
            push.send("local", &name, tick);
        }
        *metrics.lock().unwrap_or_else(|e| e.into_inner()) =
            atlas_operator::status::metrics(&[(&name, tick.status, tick.actions_total)]);
        if let Some(path) = &options.status_file {
            if let Err(e) = write_status(path, tick) {
                eprintln!("atlas operator: {e}");
            }
        }
    };
    operate::operate(&name, load, &loop_options, &stop, &mut on_tick)
        .map_err(|e| Failure::environment(format!("StorageService {name}: {e}")))?;
    Ok(())
}

fn io(e: std::io::Error) -> Failure {
    Failure::environment(e.to_string())
}

fn write_status(path: &Path, tick: &Tick) -> Result<(), String> {
    operate::write_state(path, tick.status)
}

/// Where the local operator keeps each service's state between runs
/// (`ATLAS_OPERATOR_STATE_DIR`, else /var/lib/atlas/operator).
fn state_dir() -> PathBuf {
    std::env::var_os("ATLAS_OPERATOR_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/atlas/operator"))
}

/// Prints what changed since the last pass: actions, events, problems, phase and reason.
#[derive(Default)]
pub struct Printer {
    last: Option<(String, String)>,
}

impl Printer {
    pub fn print(&mut self, name: &str, tick: &Tick) {
        use std::io::Write;
        // A closed stdout (`| head`) is not the operator's failure: lines are dropped, never a panic.
        let mut out = std::io::stdout().lock();
        let time = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
        for action in tick.applied {
            let _ = writeln!(out, "{time} {name}: {}", operate::describe(action));
        }
        for problem in tick.problems {
            let _ = writeln!(std::io::stderr(), "{time} {name}: {problem}");
        }
        for event in tick.events {
            let _ = writeln!(out, "{time} {name}: {event}");
        }
        let status = tick.status;
        let now = (
            status.phase.clone().unwrap_or_default(),
            status.reason.clone().unwrap_or_default(),
        );
        if self.last.as_ref() != Some(&now) {
            let _ = writeln!(
                out,
                "{time} {name}: {} ({}) · {} chunk servers ready · {} chunks under goal · master {}",
                now.0,
                now.1,
                status.ready_chunk_servers,
                status.under_goal_chunks,
                status.master_address.as_deref().unwrap_or("-")
            );
            self.last = Some(now);
        }
    }
}
