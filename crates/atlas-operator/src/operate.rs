//! The plain-host operator's loop (`atlas operator --local FILE`): read the resource (a file
//! the user edits as they would `kubectl apply` it), observe the service's podman containers
//! and its master, plan with the reconcile logic, carry out the plan, report; again every
//! interval until stopped. A resource that stops being valid is reported and the last valid
//! one kept; an action podman refuses is reported and tried again on the next pass.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::local::{LocalError, Podman};
use crate::reconcile::{self, Action, Timing};
use crate::spec::{StorageServiceSpec, StorageServiceStatus};
use crate::status;

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub interval: Duration,
    pub timing: Timing,
    /// Stop after the first pass that finds the service healthy with nothing to do.
    pub until_healthy: bool,
    /// Stop after one pass.
    pub once: bool,
    /// Where the operator keeps the service's status between runs (its memory: the last good
    /// image, an image that failed, restarts), written after every pass.
    pub state_file: Option<PathBuf>,
}

/// What one pass did, for the caller to print and serve.
#[derive(Debug)]
pub struct Tick<'a> {
    /// The spec the pass worked to (none while no valid one was read).
    pub spec: Option<&'a StorageServiceSpec>,
    pub status: &'a StorageServiceStatus,
    pub applied: &'a [Action],
    /// A resource that could not be read, an action podman refused.
    pub problems: &'a [String],
    /// What happened this pass that an operator should read (a rollback).
    pub events: &'a [String],
    pub actions_total: u64,
}

/// Runs the service `name` until `stop` is set (or as `options` say); its last status.
pub fn operate(
    name: &str,
    mut load: impl FnMut() -> Result<StorageServiceSpec, String>,
    options: &Options,
    stop: &AtomicBool,
    mut report: impl FnMut(&Tick),
) -> Result<StorageServiceStatus, LocalError> {
    let mut podman = Podman::new(name);
    let mut spec: Option<StorageServiceSpec> = None;
    let mut status = options
        .state_file
        .as_deref()
        .and_then(read_state)
        .unwrap_or_default();
    let mut actions_total = 0;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let mut problems = Vec::new();
        match load() {
            Ok(fresh) => spec = Some(fresh),
            Err(why) => problems.push(why),
        }
        let Some(spec) = &spec else {
            report(&Tick {
                spec: None,
                status: &status,
                applied: &[],
                problems: &problems,
                events: &[],
                actions_total,
            });
            return Ok(status);
        };
        let seen = podman.observe()?;
        let plan = reconcile::plan(spec, &status.memory, &seen, options.timing);
        let mut applied = Vec::new();
        for action in &plan.actions {
            match podman.apply(action) {
                Ok(()) => applied.push(action.clone()),
                Err(e) => problems.push(format!("{}: {e}", describe(action))),
            }
        }
        actions_total += applied.len() as u64;
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        status = status::status(&plan, &seen, &status, None, &now);
        status.master_address = podman.master_address().ok().map(|ip| format!("{ip}:9421"));
        if let Some(path) = &options.state_file {
            if let Err(e) = write_state(path, &status) {
                problems.push(e);
            }
        }
        report(&Tick {
            spec: Some(spec),
            status: &status,
            applied: &applied,
            problems: &problems,
            events: &plan.events,
            actions_total,
        });
        let healthy = plan.actions.is_empty() && plan.phase == reconcile::Phase::Healthy;
        if options.once || (options.until_healthy && healthy) {
            break;
        }
        sleep_until(started + options.interval, stop);
    }
    Ok(status)
}

/// Removes the service: its containers, volumes (its data) and network, and its state file.
pub fn delete(name: &str, state_file: Option<&Path>) -> Result<(), LocalError> {
    Podman::new(name).delete()?;
    if let Some(path) = state_file {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(LocalError::State(format!(
                    "cannot remove {}: {e}",
                    path.display()
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// A status kept by an earlier run; none when absent or unreadable (the operator then infers
/// what it can from the service itself).
fn read_state(path: &Path) -> Option<StorageServiceStatus> {
    let text = std::fs::read(path).ok()?;
    if text.len() > 1 << 20 {
        return None;
    }
    serde_json::from_slice(&text).ok()
}

/// The status, written whole (a temporary file renamed over the old one).
pub fn write_state(path: &Path, status: &StorageServiceStatus) -> Result<(), String> {
    let json = serde_json::to_string_pretty(status).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let partial = path.with_extension("partial");
    std::fs::write(&partial, json + "\n")
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub use crate::reconcile::describe;

fn sleep_until(deadline: Instant, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(200)));
    }
}
