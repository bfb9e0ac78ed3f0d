//! `atlas serve --windows`: the after-hours controller beside the dashboard. A target whose
//! only window is long past is closed now, so the server's controller freezes its running run
//! by itself; the run is woken by hand once the server is gone.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{status, tiny};

#[test]
fn the_server_with_windows_freezes_a_run_of_a_closed_target_by_itself() {
    // The job counts for about 15 s (job.sh's 40 steps made 150).
    let (p, mut run, id) = tiny(
        "windows-serve",
        "  - {name: work, run: 'sed s/40/150/ job.sh > long.sh; exec bash long.sh'}\n",
        0,
    );
    let closed = "[targets.local]\nkind = \"local\"\ngpus = false\n[targets.local.windows]\ndates = [{open = \"2000-01-01T00:00\", close = \"2000-01-02T00:00\"}]\n";
    std::fs::write(p.dir.join("atlas.toml"), closed).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--windows",
            "1",
        ])
        .current_dir(&p.dir)
        .env("ATLAS_DB", p.dir.join("db/atlas.db"))
        .env("XDG_DATA_HOME", p.dir.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&p, &id) != "frozen" {
        assert!(
            Instant::now() < deadline,
            "the server's controller never froze the run"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    serve.kill().unwrap();
    let _ = serve.wait();
    let mut said = String::new();
    std::io::Read::read_to_string(serve.stdout.as_mut().unwrap(), &mut said).unwrap();
    assert!(said.contains("after-hours windows of `local`"), "{said}");
    assert!(said.contains("`local` is closed"), "{said}");
    let (code, stdout, stderr) = p.atlas(&["windows", "wake", "local"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(run.wait().unwrap().success(), "it ran to its end");
    assert_eq!(status(&p, &id), "succeeded");
    // Without a schedule the server refuses --windows before it listens.
    std::fs::write(
        p.dir.join("atlas.toml"),
        "[targets.local]\nkind = \"local\"\ngpus = false\n",
    )
    .unwrap();
    let (code, _, stderr) = p.atlas(&["serve", "--addr", "127.0.0.1:0", "--windows"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no target here has a window schedule"),
        "{stderr}"
    );
}
