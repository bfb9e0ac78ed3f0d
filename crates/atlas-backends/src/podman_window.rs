//! A window on a podman target: once a run is frozen (its agent, the container's PID 1, saw
//! its checkpoint land), the container is stopped (`release` in the run's control file first,
//! so the agent takes the stop for what it is and leaves its spool ending in `frozen`): nothing
//! of the run holds CPU or memory. The wake starts the same container again (`podman start`):
//! its agent finds the run frozen in the spool and resumes it from the checkpoint. A container
//! that can be frozen is kept when it stops (no `--rm`); the backend removes it at the end.
//!
//! Runs whose workflow saves no checkpoint of its own would need a transparent one (CRIU,
//! `podman container checkpoint`); [`criu_usable`] says whether this machine's CRIU works and,
//! when it does not, why (Debian 12's criu 3.17 cannot initialize on kernel 6.x's vDSO).

use std::time::{Duration, Instant};

use crate::process;

/// How long a container may take to stop beyond its agent's grace.
const STOP_MARGIN: Duration = Duration::from_secs(10);

/// The container's state as podman says it (`running`, `exited`, `created`, …).
pub fn state(container: &str) -> Result<String, String> {
    process::output(
        "podman",
        &[
            "container",
            "inspect",
            "--format",
            "{{.State.Status}}",
            container,
        ],
    )
}

/// Stops a frozen run's container (its control file already says `release`); how long the
/// container took to stop.
pub fn give_back(container: &str, grace: Duration) -> Result<Duration, String> {
    let asked = Instant::now();
    let seconds = grace.as_secs().max(1).to_string();
    process::output("podman", &["stop", "--time", &seconds, container])?;
    loop {
        let now = state(container)?;
        if now != "running" && now != "stopping" {
            return Ok(asked.elapsed());
        }
        if asked.elapsed() > grace + STOP_MARGIN {
            return Err(format!(
                "container {container} is still `{now}` {} s after podman stop",
                asked.elapsed().as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a stopped container again (its control file already says `wake`).
pub fn wake(container: &str) -> Result<(), String> {
    process::output("podman", &["start", container]).map(|_| ())
}

/// Whether CRIU can checkpoint processes on this machine: `criu check`'s first error when not.
pub fn criu_usable() -> Result<(), String> {
    if !process::installed("criu") {
        return Err("criu is not installed (Debian: criu)".into());
    }
    let out = std::process::Command::new("criu")
        .arg("check")
        .output()
        .map_err(|e| format!("cannot run criu: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let first = text
        .lines()
        .find(|l| l.starts_with("Error"))
        .or_else(|| text.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("no message");
    Err(format!(
        "`criu check` fails on this kernel: {}",
        first.trim()
    ))
}
