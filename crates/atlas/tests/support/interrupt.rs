//! Interrupting a running `atlas run`, shared by the run and Slurm tests.

use std::path::Path;
use std::process::Command;

/// Starts `atlas run` in the background, waits until its (first) run's phase has started, sends
/// SIGINT to atlas alone (not the agent), and returns atlas's exit code and stderr.
pub fn interrupt_during_phase(db: &Path, cwd: &Path, args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(args)
        .current_dir(cwd)
        .env("ATLAS_DB", db)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        if std::time::Instant::now() >= deadline {
            let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
                .args(["runs", "--format", "json"])
                .env("ATLAS_DB", db)
                .output()
                .unwrap();
            let _ = child.kill();
            let atlas = child.wait_with_output().unwrap();
            panic!(
                "the phase never started: runs {} / atlas run said: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&atlas.stderr)
            );
        }
        let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
            .args(["runs", "--format", "json"])
            .env("ATLAS_DB", db)
            .output()
            .unwrap();
        let started = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|runs| {
                let dir = runs.as_array()?.last()?["runDir"].as_str()?.to_string();
                Some(
                    std::fs::read_to_string(Path::new(&dir).join("spool.jsonl"))
                        .ok()?
                        .contains("\"phaseStart\""),
                )
            });
        if started == Some(true) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
