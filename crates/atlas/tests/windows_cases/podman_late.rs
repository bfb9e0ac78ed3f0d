//! A podman run frozen and woken while its `podman run` returns late: on a busy machine the
//! attached `podman run` can return seconds after its container stopped, when the wake has
//! already said `wake` and its `podman start` has not yet made the container run. The stop is
//! still a window's (the agent's spool ends `frozen`), not the run's end: the run is not ended,
//! its container not removed under the wake, and it resumes and succeeds (CI saw the run ended
//! and the training never resumed, before the spool was asked).
//!
//! The podman here is the real one behind a wrapper that delays two of its answers: `run`
//! returns 5 s after its container stopped, `start` waits 1.5 s before it starts it.

use super::{freeze_and_wake_twice, podman_available, project};

/// The wrapper around the real podman at `REAL`.
const SLOW_PODMAN: &str = "#!/bin/sh\n# The real podman, with `run` returning 5 s late and `start` starting 1.5 s late.\nif [ \"$1\" = run ]; then REAL \"$@\"; rc=$?; sleep 5; exit $rc; fi\nif [ \"$1\" = start ]; then sleep 1.5; fi\nexec REAL \"$@\"\n";

/// The podman on `PATH`.
fn real_podman() -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("podman"))
        .find(|p| p.is_file())
        .expect("podman on PATH")
}

#[test]
fn a_podman_run_whose_podman_returns_after_the_wake_resumes_and_succeeds() {
    if !podman_available() {
        return;
    }
    let mut p = project("windows-podman-late");
    let bin = p.dir.join("slow-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let podman = bin.join("podman");
    let real = real_podman().display().to_string();
    std::fs::write(&podman, SLOW_PODMAN.replace("REAL", &real)).unwrap();
    let mut mode = std::fs::metadata(&podman).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o755);
    std::fs::set_permissions(&podman, mode).unwrap();
    p.path_first = Some(bin);
    let id = freeze_and_wake_twice(&p, "podman");
    let detail = p.show(&id);
    assert_eq!(detail["phases"][1]["status"], "succeeded", "{detail}");
}
