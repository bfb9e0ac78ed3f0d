//! Running the tools backends drive (sbatch, squeue, podman): always with an argument vector,
//! never through a shell.

use std::process::{Child, Command};

use crate::JobEnd;

/// Whether `program` is on PATH.
pub(crate) fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Runs a command; its trimmed stdout, or a one-line reason it failed.
pub(crate) fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{program} failed: {}",
            err.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("no message")
        ))
    }
}

/// Whether the child a backend waits on has ended; `None` while it runs. Once it has ended the
/// child is dropped (reaped), so its pid is never signalled again.
pub(crate) fn child_ended(child: &mut Option<Child>) -> Option<JobEnd> {
    let state = match child.as_mut()?.try_wait() {
        Ok(None) => return None,
        Ok(Some(status)) => format!("exit {}", status.code().unwrap_or(-1)),
        Err(e) => format!("lost: {e}"),
    };
    *child = None;
    Some(JobEnd { state })
}
