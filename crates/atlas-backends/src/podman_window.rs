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

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
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

/// Whether a stopped container was stopped for a window, by its run's control file (`control`):
/// it says `release` (the freeze gave it back), or the run's spool beside it ends frozen (a
/// wake has written `wake`, its `podman start` has not yet run). Otherwise the stop was the
/// job's end.
pub fn stopped_for_window(control: &Path) -> bool {
    let released = std::fs::read_to_string(control).is_ok_and(|word| word.trim() == "release");
    released
        || control
            .parent()
            .is_some_and(|dir| frozen_in_spool(&atlas_spec::RunDir::new(dir).spool()))
}

/// How much of a spool's end [`frozen_in_spool`] reads: a frozen agent's last records are
/// there; a spool whose last freeze, wake or end lies further back is not frozen.
const SPOOL_TAIL: u64 = 1 << 20;

/// Whether a run's spool says it is frozen: of its `frozen`, `wake` and `runEnd` records in its
/// last MiB, the last is `frozen`. A container that stopped then was stopped for a window,
/// whatever the control file says by the time `podman run` returns (a wake may have written
/// `wake` already, its `podman start` not yet run).
pub fn frozen_in_spool(spool: &Path) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: String,
    }
    let Ok(mut file) = std::fs::File::open(spool) else {
        return false;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(SPOOL_TAIL);
    let mut tail = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut tail).is_err() {
        return false;
    }
    let text = String::from_utf8_lossy(&tail);
    // Read from the middle of the file, the first line is a piece of one.
    let whole = text.lines().skip(usize::from(from > 0));
    let mut frozen = false;
    for line in whole {
        if !["frozen", "wake", "runEnd"]
            .iter()
            .any(|w| line.contains(w))
        {
            continue;
        }
        match serde_json::from_str::<Kind>(line).map(|k| k.kind) {
            Ok(kind) if kind == "frozen" => frozen = true,
            Ok(kind) if kind == "wake" || kind == "runEnd" => frozen = false,
            _ => {}
        }
    }
    frozen
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

#[cfg(test)]
mod tests {
    use super::frozen_in_spool;

    /// A spool of these records' types (with a metric line that mentions `frozen` in its text).
    fn spool(name: &str, types: &[&str]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("atlas-spool-{name}-{}", std::process::id()));
        let mut text = String::new();
        for (seq, kind) in types.iter().enumerate() {
            text += &format!("{{\"run\":\"r-1\",\"seq\":{seq},\"time\":1.0,\"mono\":1.0,\"type\":\"{kind}\",\"phase\":\"train\"}}\n");
        }
        text += "{\"run\":\"r-1\",\"seq\":99,\"time\":1.0,\"mono\":1.0,\"type\":\"log\",\"line\":\"\\\"type\\\":\\\"frozen\\\"\"}\n";
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_spool_is_frozen_when_its_last_freeze_wake_or_end_is_a_freeze() {
        for (name, types, frozen) in [
            ("none", &["runStart", "phaseStart"][..], false),
            (
                "frozen",
                &["runStart", "phaseStart", "freeze", "frozen"][..],
                true,
            ),
            (
                "woken",
                &["runStart", "frozen", "wake", "metric"][..],
                false,
            ),
            ("again", &["runStart", "frozen", "wake", "frozen"][..], true),
            (
                "ended",
                &["runStart", "frozen", "wake", "runEnd"][..],
                false,
            ),
        ] {
            let path = spool(name, types);
            assert_eq!(frozen_in_spool(&path), frozen, "{name}");
            std::fs::remove_file(path).unwrap();
        }
        assert!(!frozen_in_spool(std::path::Path::new(
            "/nonexistent/spool.jsonl"
        )));
        // Only the last MiB is read: a freeze further back than that is not seen, one in it is.
        let path = spool("long", &["runStart", "frozen"]);
        assert!(frozen_in_spool(&path));
        let sample = "{\"run\":\"r-1\",\"seq\":7,\"time\":1.0,\"mono\":1.0,\"type\":\"sample\"}\n";
        let mut text = std::fs::read_to_string(&path).unwrap();
        text += &sample.repeat(super::SPOOL_TAIL as usize / sample.len() + 1);
        std::fs::write(&path, &text).unwrap();
        assert!(!frozen_in_spool(&path));
        text += "{\"run\":\"r-1\",\"seq\":8,\"time\":1.0,\"mono\":1.0,\"type\":\"frozen\"}\n";
        std::fs::write(&path, &text).unwrap();
        assert!(frozen_in_spool(&path));
        std::fs::remove_file(path).unwrap();
    }
}
