//! After-hours windows by hand on the local and podman targets: the example's training
//! (examples/biggan-mini, 12 epochs here) frozen twice with `atlas windows freeze TARGET` and woken
//! with `wake`, ends with the same model, bit for bit, and the same accuracy as a run that was
//! never frozen. Its
//! freezes are in the store (`windows`) with their checkpoints; a freeze without a checkpoint
//! is refused for a workflow that has none.

mod support {
    pub mod project;
}

// `atlas serve --windows`: the controller beside the dashboard.
#[path = "windows_cases/serve.rs"]
mod serve;

// `atlas agent --freeze-on-stop`: a stop taken for a window's close.
#[path = "windows_cases/freeze_on_stop.rs"]
mod freeze_on_stop;

// A podman whose `run` returns late, after the wake: still a window, not the run's end.
#[path = "windows_cases/podman_late.rs"]
mod podman_late;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::project::{copy_example, metric, Project};

/// The example's workflow, shortened to 12 epochs, with targets `local`, `podman` and `slurm`.
/// Frozen after epochs 2 and 4, it has 8 left to run after the second wake: long enough for
/// the test to see it running (an epoch can take under half a second).
fn project(tag: &str) -> Project {
    let p = Project::new(
        tag,
        "[targets.local]\nkind = \"local\"\ngpus = false\n[targets.podman]\nkind = \"podman\"\ngpus = false\n[targets.slurm]\nkind = \"slurm\"\npartition = \"debug\"\ngpus = false\n",
    );
    copy_example("biggan-mini", &p.dir, false);
    let workflow = std::fs::read_to_string(p.dir.join("atlas.yaml")).unwrap();
    assert!(
        workflow.contains("--epochs 20"),
        "the example trains 20 epochs"
    );
    std::fs::write(
        p.dir.join("atlas.yaml"),
        workflow.replace("--epochs 20", "--epochs 12"),
    )
    .unwrap();
    p
}

/// `atlas run atlas.yaml --on TARGET` in the background.
fn start(p: &Project, target: &str) -> Child {
    p.command()
        .args(["run", "atlas.yaml", "--on", target, "--interval", "500ms"])
        .current_dir(&p.dir)
        .env("ATLAS_DB", p.dir.join("db/atlas.db"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the newest run (after the `before` there were) has printed `epochs` epochs in
/// its train phase.
fn wait_for_epochs(p: &Project, before: usize, epochs: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let runs = p.runs();
        if let Some(run) = runs.first().filter(|_| runs.len() > before) {
            let id = run["id"].as_str().unwrap().to_string();
            let detail = p.show(&id);
            let losses = detail["phases"][1]["metrics"]
                .as_array()
                .and_then(|m| m.iter().find(|m| m["name"] == "loss"))
                .and_then(|m| m["count"].as_u64())
                .unwrap_or(0);
            if detail["phases"][1]["status"] == "running" && losses >= epochs as u64 {
                return id;
            }
            // Ended before it got there: said now, not after the deadline.
            let status = detail["status"].as_str().unwrap_or("?");
            assert!(
                status != "succeeded" && status != "failed",
                "the run {status} at {losses} epochs, before train reached {epochs}: {detail}"
            );
        }
        assert!(
            Instant::now() < deadline,
            "train never reached {epochs} epochs"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn status(p: &Project, id: &str) -> String {
    p.show(id)["status"].as_str().unwrap().to_string()
}

/// Whether two saved models hold the same arrays, bit for bit.
fn same_model(a: &std::path::Path, b: &std::path::Path) -> bool {
    let script = "import sys, numpy as np\na, b = np.load(sys.argv[1]), np.load(sys.argv[2])\nsys.exit(0 if sorted(a.files) == sorted(b.files) and all(a[k].tobytes() == b[k].tobytes() for k in a.files) else 1)";
    // The interpreter the example runs with (Debian's, which has NumPy).
    let python = std::env::var("ATLAS_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    Command::new(python)
        .args(["-c", script])
        .arg(a)
        .arg(b)
        .status()
        .unwrap()
        .success()
}

/// Runs the workflow on `target`, freezing and waking it twice during training; checks each
/// freeze; returns the run's id once it succeeded.
fn freeze_and_wake_twice(p: &Project, target: &str) -> String {
    let before = p.runs().len();
    let mut run = start(p, target);
    let mut id = String::new();
    let mut saved_on_signal = 0;
    for round in 1..=2 {
        id = wait_for_epochs(p, before, round * 2);
        let (code, stdout, stderr) = p.atlas(&["windows", "freeze", target]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(
            stdout.contains("frozen in phase train, checkpoint"),
            "{stdout}"
        );
        let detail = p.show(&id);
        assert_eq!(detail["status"], "frozen");
        if target == "slurm" {
            // Frozen, the job holds no node: it is pending, held, until the wake.
            assert!(stdout.contains("requeued and held"), "{stdout}");
            let job = detail["schedulerId"].as_str().unwrap();
            let out = Command::new("squeue")
                .args(["-h", "-j", job, "-o", "%T"])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "PENDING");
        }
        if target == "podman" {
            // Frozen, its container is stopped (kept for the wake): nothing of it runs.
            assert!(stdout.contains("stopped: none of it runs"), "{stdout}");
            let name = detail["schedulerId"].as_str().unwrap();
            let out = Command::new("podman")
                .args([
                    "container",
                    "inspect",
                    "--format",
                    "{{.State.Status}}",
                    name,
                ])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "exited");
        }
        let window = &detail["windows"][round - 1];
        assert_eq!(window["clean"], true, "{window}");
        // Work lost: what the job computed after its checkpoint, before it stopped.
        let lost = window["lostSeconds"].as_f64().unwrap();
        assert!(
            lost >= 0.0 && lost <= window["stopSeconds"].as_f64().unwrap(),
            "{window}"
        );
        assert!(
            window["checkpointBytes"].as_u64().unwrap() > 1000,
            "{window}"
        );
        let dir = detail["runDir"].as_str().unwrap().to_string();
        let log = std::fs::read_to_string(format!("{dir}/logs/train.out")).unwrap();
        saved_on_signal = log.matches("checkpoint saved at").count();
        // Nothing of the job runs while it is frozen: its checkpoint stays as it was.
        let checkpoint = checkpoint_of(p, &dir);
        let written = std::fs::metadata(&checkpoint).unwrap().modified().unwrap();
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(
            std::fs::metadata(&checkpoint).unwrap().modified().unwrap(),
            written,
            "the job kept running while frozen"
        );
        let (code, stdout, stderr) = p.atlas(&["windows", "wake", target]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert_ne!(status(p, &id), "frozen", "{stdout}");
    }
    // The signal reached the training itself (bash had exec'd it), which saved on it. (A
    // freeze that meets an epoch's end may land that epoch's checkpoint first, a clean one
    // too: so not both freezes need to show it.)
    assert!(
        saved_on_signal >= 1,
        "the training never saved on the signal"
    );
    let ended = wait_for_end(&mut run, &id);
    let mut stderr = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(ended.success(), "{stderr}");
    let detail = p.show(&id);
    assert_eq!(detail["status"], "succeeded");
    assert_eq!(detail["windows"].as_array().unwrap().len(), 2, "{detail}");
    assert!(detail["windows"][1]["frozenSeconds"].as_f64().unwrap() >= 3.0);
    id
}

/// `atlas run`'s exit, within five minutes (killed and failed after that: a run the backend
/// never saw end must not hang the tests).
fn wait_for_end(run: &mut Child, id: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = run.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = run.kill();
            panic!("atlas run never ended after run {id}'s windows");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Where a run's checkpoint is: the project's `data/` here, its copy of the project in a
/// container's run directory.
fn checkpoint_of(p: &Project, run_dir: &str) -> std::path::PathBuf {
    let in_container = std::path::Path::new(run_dir).join("work/data/train.ckpt.npz");
    if in_container.exists() {
        in_container
    } else {
        p.dir.join("data/train.ckpt.npz")
    }
}

/// The model a run saved: in the project's `data/` here, in its copy of the project in a
/// container's run directory.
fn model_of(p: &Project, id: &str) -> std::path::PathBuf {
    let dir = p.show(id)["runDir"].as_str().unwrap().to_string();
    let in_container = std::path::Path::new(&dir).join("work/data/model.npz");
    if in_container.exists() {
        in_container
    } else {
        p.dir.join("data/model.npz")
    }
}

/// An uninterrupted run on `target`: its accuracy and a copy of its model.
fn uninterrupted(p: &Project, target: &str) -> (f64, std::path::PathBuf) {
    let (code, _, stderr) = p.atlas(&["run", "atlas.yaml", "--on", target]);
    assert_eq!(code, 0, "{stderr}");
    let plain = p.runs()[0]["id"].as_str().unwrap().to_string();
    let accuracy = metric(&p.show(&plain), 2, "accuracy").unwrap();
    let model = p.dir.join("plain-model.npz");
    std::fs::rename(model_of(p, &plain), &model).unwrap();
    (accuracy, model)
}

#[test]
fn a_run_frozen_and_woken_twice_ends_with_the_same_model_and_accuracy() {
    let p = project("windows");
    let (accuracy, model) = uninterrupted(&p, "local");
    let id = freeze_and_wake_twice(&p, "local");
    assert_eq!(metric(&p.show(&id), 2, "accuracy"), Some(accuracy));
    assert!(
        same_model(&model, &model_of(&p, &id)),
        "the resumed training computed a different model"
    );
    let (code, stdout, _) = p.atlas(&["windows", "wake", "local"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("no frozen run"), "{stdout}");
    // The freezes' figures are in the comparison's elasticity dimension.
    let (code, report, stderr) = p.atlas(&["compare", &id, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    for key in [
        "freezeStopSeconds",
        "frozenSeconds",
        "workLostSeconds",
        "checkpointBytes",
    ] {
        assert!(report.contains(key), "{key} not in {report}");
    }
}

#[test]
fn a_podman_run_frozen_and_woken_twice_ends_with_the_same_model() {
    if !podman_available() {
        return;
    }
    let p = project("windows-podman");
    let (accuracy, model) = uninterrupted(&p, "podman");
    let id = freeze_and_wake_twice(&p, "podman");
    assert_eq!(metric(&p.show(&id), 2, "accuracy"), Some(accuracy));
    assert!(
        same_model(&model, &model_of(&p, &id)),
        "the resumed training in the container computed a different model"
    );
    // Its container, kept for the windows, is removed at the run's end.
    let name = p.show(&id)["schedulerId"].as_str().unwrap().to_string();
    let left = Command::new("podman")
        .args(["container", "exists", &name])
        .status()
        .unwrap();
    assert!(!left.success(), "container {name} was left behind");
}

#[test]
fn a_slurm_run_frozen_twice_gives_its_node_back_and_resumes_to_the_same_model() {
    if !slurm_up() {
        return;
    }
    let p = project("windows-slurm");
    let (accuracy, model) = uninterrupted(&p, "slurm");
    let id = freeze_and_wake_twice(&p, "slurm");
    let detail = p.show(&id);
    assert_eq!(metric(&detail, 2, "accuracy"), Some(accuracy));
    assert!(
        same_model(&model, &model_of(&p, &id)),
        "the training resumed by a new agent computed a different model"
    );
    // One job all along (requeued twice), its training's wall time without the frozen time.
    let train = &detail["phases"][1];
    assert_eq!(train["status"], "succeeded", "{train}");
    let frozen: f64 = detail["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["frozenSeconds"].as_f64().unwrap())
        .sum();
    assert!(
        detail["wallSeconds"].as_f64().unwrap() > frozen,
        "the run's wall time counts from its start: {detail}"
    );
}

/// Whether this machine's Slurm (scripts/slurm-up) is up; without it the test is skipped,
/// unless ATLAS_REQUIRE_INTEGRATION=1, which fails it.
fn slurm_up() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-p", "debug", "-o", "%a"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "up");
    assert!(
        up || !std::env::var("ATLAS_REQUIRE_INTEGRATION").is_ok_and(|v| v == "1"),
        "Slurm is required (ATLAS_REQUIRE_INTEGRATION=1): run scripts/slurm-up"
    );
    if !up {
        eprintln!("skipped: no Slurm (scripts/slurm-up)");
    }
    up
}

/// The newest run's id once its phase `phase` is running (within two minutes).
fn wait_for_phase(p: &Project, phase: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let id = p
            .runs()
            .first()
            .map(|r| r["id"].as_str().unwrap().to_string());
        if let Some(id) = id.filter(|id| p.show(id)["phases"][phase]["status"] == "running") {
            return id;
        }
        assert!(Instant::now() < deadline, "phase {phase} never started");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn podman_available() -> bool {
    let up = Command::new("podman")
        .args(["image", "exists", "localhost/atlas-base:bookworm"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        up || !std::env::var("ATLAS_REQUIRE_INTEGRATION").is_ok_and(|v| v == "1"),
        "podman and the base image are required (ATLAS_REQUIRE_INTEGRATION=1): run scripts/base-image"
    );
    if !up {
        eprintln!("skipped: no podman or no base image (run scripts/base-image)");
    }
    up
}

#[test]
fn a_workflow_without_a_checkpoint_is_not_frozen() {
    let stderr = refused_without_checkpoint("local");
    assert!(!stderr.contains("CRIU"), "{stderr}");
}

#[test]
fn a_podman_workflow_without_a_checkpoint_says_whether_criu_could_take_one() {
    if !podman_available() {
        return;
    }
    let stderr = refused_without_checkpoint("podman");
    // Whatever this machine's CRIU can do, the refusal says it (never silent).
    let criu = Command::new("criu").arg("check").output();
    if criu.is_ok_and(|o| o.status.success()) {
        assert!(stderr.contains("CRIU works on this machine"), "{stderr}");
    } else {
        assert!(
            stderr.contains("a transparent checkpoint (CRIU) cannot be taken here"),
            "{stderr}"
        );
        eprintln!("CRIU: transparent checkpoints cannot be taken on this machine: {stderr}");
    }
}

/// A workflow without `spec.checkpoint` on `target`: `atlas windows freeze` refuses it (exit
/// 1) and the run goes on to its end; the refusal.
fn refused_without_checkpoint(target: &str) -> String {
    let p = Project::new(
        &format!("windows-none-{target}"),
        &format!("[targets.{target}]\nkind = \"{target}\"\ngpus = false\n"),
    );
    std::fs::write(
        p.dir.join("w.yaml"),
        "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: plain}\nspec:\n  phases: [{name: main, run: 'sleep 8'}]\n",
    )
    .unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["run", "w.yaml", "--on", target])
        .current_dir(&p.dir)
        .env("ATLAS_DB", p.dir.join("db/atlas.db"))
        .env("XDG_DATA_HOME", p.dir.join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while p
        .runs()
        .first()
        .map(|r| r["status"] != "running")
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, _, stderr) = p.atlas(&["windows", "freeze", target]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no spec.checkpoint"), "{stderr}");
    assert!(run.wait().unwrap().success(), "it ran to its end");
    stderr
}

/// A workflow of small shell phases with a checkpoint `ck` and a 2 s grace, started in the
/// background on the local target: the project, the `atlas run` and the run's id once its
/// phase `phase` has run for half a second.
#[allow(clippy::zombie_processes)] // the caller waits for it; a failed test leaves it to end
fn tiny(tag: &str, phases: &str, phase: usize) -> (Project, Child, String) {
    let p = Project::new(tag, "[targets.local]\nkind = \"local\"\ngpus = false\n");
    let workflow = format!(
        "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {{name: tiny}}\nspec:\n  checkpoint: {{path: ck, grace: 2s}}\n  phases:\n{phases}"
    );
    std::fs::write(p.dir.join("atlas.yaml"), workflow).unwrap();
    std::fs::write(
        p.dir.join("job.sh"),
        "echo resume=${ATLAS_RESUME:-no}\ntrap 'echo $i > ck' USR1\nfor i in $(seq 40); do sleep 0.1; done\n",
    )
    .unwrap();
    let child = start(&p, "local");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let id = p
            .runs()
            .first()
            .map(|r| r["id"].as_str().unwrap().to_string());
        if let Some(id) = id.filter(|id| p.show(id)["phases"][phase]["status"] == "running") {
            std::thread::sleep(Duration::from_millis(500));
            return (p, child, id);
        }
        assert!(Instant::now() < deadline, "the phase never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_script_run_by_bash_gets_the_signal_and_a_freeze_without_checkpoint_restarts_from_scratch() {
    // `bash job.sh` is exec'd by the phase's shell: the script itself traps USR1.
    let (p, mut run, id) = tiny(
        "windows-script",
        "  - {name: main, run: 'bash job.sh'}\n",
        0,
    );
    let (code, stdout, stderr) = p.atlas(&["windows", "freeze", "local"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(p.show(&id)["windows"][0]["clean"], true);
    let (code, stdout, _) = p.atlas(&["windows", "wake", "local"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("from its checkpoint"), "{stdout}");
    assert!(run.wait().unwrap().success());
    // A job that ignores the signal: frozen without checkpoint (exit 1), and woken without
    // ATLAS_RESUME, so it does not take an old file for its own.
    let (p, mut run, id) = tiny(
        "windows-deaf",
        "  - {name: main, run: \"trap '' USR1; bash job.sh\"}\n",
        0,
    );
    std::fs::write(p.dir.join("ck"), "stale").unwrap();
    let (code, stdout, stderr) = p.atlas(&["windows", "freeze", "local"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("frozen without checkpoint"), "{stdout}");
    assert_eq!(p.show(&id)["windows"][0]["clean"], false);
    // Without a checkpoint the whole stretch is lost: it had run half a second before the
    // freeze (`tiny` waits for that), and the grace of 2 s after it.
    let lost = p.show(&id)["windows"][0]["lostSeconds"].as_f64().unwrap();
    assert!(lost >= 2.5, "{lost}");
    let (code, stdout, _) = p.atlas(&["windows", "wake", "local"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("from the start of its phase"), "{stdout}");
    assert!(run.wait().unwrap().success());
    let dir = p.show(&id)["runDir"].as_str().unwrap().to_string();
    let log = std::fs::read_to_string(format!("{dir}/logs/main.out")).unwrap();
    assert_eq!(log.matches("resume=no").count(), 2, "{log}");
}

#[test]
fn a_phase_that_ends_during_the_grace_freezes_the_run_before_the_next_phase() {
    // The signal ends phase one's `sleep`; the shell goes on and the phase ends: the run is
    // frozen before phase two, which starts only at the wake.
    let phases = "  - {name: one, run: 'sleep 3; true'}\n  - {name: two, run: 'echo two'}\n";
    let (p, mut run, id) = tiny("windows-between", phases, 0);
    let (code, stdout, stderr) = p.atlas(&["windows", "freeze", "local"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("frozen before phase two"), "{stdout}");
    let detail = p.show(&id);
    assert_eq!(detail["status"], "frozen");
    assert_eq!(detail["phases"][1]["status"], "pending", "{detail}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(p.show(&id)["phases"][1]["status"], "pending");
    let (code, _, _) = p.atlas(&["windows", "wake", "local"]);
    assert_eq!(code, 0);
    assert!(run.wait().unwrap().success());
    let detail = p.show(&id);
    let woken = detail["windows"][0]["wokenAt"].as_f64().unwrap();
    assert!(
        detail["phases"][1]["startedAt"].as_f64().unwrap() >= woken,
        "{detail}"
    );
}

#[test]
fn the_window_schedule_freezes_at_its_close_and_wakes_at_its_open_by_an_injected_clock() {
    let (p, mut run, id) = tiny(
        "windows-schedule",
        "  - {name: work, run: 'bash job.sh'}\n",
        0,
    );
    let scheduled = "[targets.local]\nkind = \"local\"\ngpus = false\n[targets.local.windows]\nopen = \"19:00\"\nclose = \"07:00\"\ntimezone = \"Europe/Berlin\"\n";
    std::fs::write(p.dir.join("atlas.toml"), scheduled).unwrap();
    let look = |at: &str| p.atlas(&["windows", "run", "--once", "--at", at]);
    // 09:00 in Berlin: closed, so the running run is frozen.
    let (code, out, err) = look("2026-12-02T08:00:00Z");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("`local` is closed") && out.contains("freezing 1 run"),
        "{out}"
    );
    assert_eq!(status(&p, &id), "frozen");
    // Still closed at noon: nothing to do.
    let (code, out, _) = look("2026-12-02T11:00:00Z");
    assert_eq!(code, 0);
    assert!(!out.contains("freezing"), "{out}");
    // 19:30 in Berlin: open, so it is woken, and resumes from its checkpoint.
    let (code, out, err) = look("2026-12-02T18:30:00Z");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("`local` is open") && out.contains("waking 1 run"),
        "{out}"
    );
    assert_ne!(status(&p, &id), "frozen");
    assert!(run.wait().unwrap().success(), "it ran to its end");
    let dir = p.show(&id)["runDir"].as_str().unwrap().to_string();
    let log = std::fs::read_to_string(format!("{dir}/logs/work.out")).unwrap();
    assert!(log.contains("resume=1"), "{log}");
    // A schedule that makes no window is refused, naming the file and the target.
    let empty = scheduled.replace("07:00", "19:00");
    std::fs::write(p.dir.join("atlas.toml"), empty).unwrap();
    let (code, _, err) = look("2026-12-02T18:30:00Z");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("atlas.toml: target `local`: windows:") && err.contains("empty"),
        "{err}"
    );
}

#[test]
fn a_phase_that_does_not_catch_the_signal_is_frozen_without_checkpoint_not_failed() {
    let phases = "  - {name: prep, run: 'sleep 4'}\n  - {name: work, run: 'echo work-ran'}\n";
    let (p, mut run, id) = tiny("windows-uncaught", phases, 0);
    let (code, out, err) = p.atlas(&["windows", "freeze", "local"]);
    assert_eq!(
        code, 1,
        "a freeze without a checkpoint is no success: {out}{err}"
    );
    assert!(
        out.contains("frozen without checkpoint in phase prep")
            && out.contains("ended on the checkpoint signal"),
        "{out}"
    );
    let detail = p.show(&id);
    assert_eq!(detail["status"], "frozen", "not failed: {detail}");
    assert_eq!(detail["windows"][0]["clean"], false, "{detail}");
    let (code, out, err) = p.atlas(&["windows", "wake", "local"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        run.wait().unwrap().success(),
        "prep ran again from its start"
    );
    assert_eq!(p.show(&id)["status"], "succeeded");
}

#[test]
fn a_slurm_run_whose_atlas_run_is_gone_is_still_frozen_and_woken_from_its_spool() {
    if !slurm_up() {
        return;
    }
    let p = Project::new(
        "windows-orphan",
        "[targets.slurm]\nkind = \"slurm\"\npartition = \"debug\"\ngpus = false\n",
    );
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: tiny}\nspec:\n  checkpoint: {path: ck, grace: 5s}\n  phases:\n  - {name: work, run: 'bash job.sh'}\n";
    std::fs::write(p.dir.join("atlas.yaml"), workflow).unwrap();
    std::fs::write(
        p.dir.join("job.sh"),
        "echo resume=${ATLAS_RESUME:-no}\nfrom=$(cat ck 2>/dev/null || echo 0)\ntrap 'echo $i > ck' USR1\nfor i in $(seq $from 40); do sleep 0.1; done\n",
    )
    .unwrap();
    let mut run = start(&p, "slurm");
    let id = wait_for_phase(&p, 0);
    std::thread::sleep(Duration::from_millis(500));
    // `atlas run` is gone: nothing follows the run's spool any more but `atlas windows`.
    run.kill().unwrap();
    run.wait().unwrap();
    let (code, out, err) = p.atlas(&["windows", "freeze", "slurm"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("requeued and held"), "{out}");
    let (code, out, err) = p.atlas(&["windows", "wake", "slurm"]);
    assert_eq!(code, 0, "{out}{err}");
    // The job ends; the next look brings the store to its end.
    let job = p.show(&id)["schedulerId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Command::new("squeue")
        .args(["-h", "-j", &job])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty())
    {
        assert!(Instant::now() < deadline, "job {job} never ended");
        std::thread::sleep(Duration::from_millis(300));
    }
    let (code, out, _) = p.atlas(&["windows", "freeze", "slurm"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no running run"), "{out}");
    assert_eq!(p.show(&id)["status"], "succeeded");
}

#[test]
fn a_slurm_agent_that_pushes_to_a_server_is_frozen_not_killed_by_the_control_signal() {
    // Slurm starts the batch script with no signal blocked (a local agent inherits `atlas
    // run`'s mask): the agent's pusher thread (ATLAS_SERVER) once started before the signals
    // were blocked, the kernel gave it SIGUSR2, and its default action ended the agent.
    if !slurm_up() {
        return;
    }
    let p = Project::new(
        "windows-push",
        "[targets.slurm]\nkind = \"slurm\"\npartition = \"debug\"\ngpus = false\n",
    );
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: tiny}\nspec:\n  checkpoint: {path: ck, grace: 2s}\n  phases:\n  - {name: work, run: 'bash job.sh'}\n";
    std::fs::write(p.dir.join("atlas.yaml"), workflow).unwrap();
    std::fs::write(
        p.dir.join("job.sh"),
        "trap 'echo $i > ck' USR1\nfor i in $(seq 40); do sleep 0.1; done\n",
    )
    .unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["run", "atlas.yaml", "--on", "slurm", "--interval", "500ms"])
        .current_dir(&p.dir)
        .env("ATLAS_DB", p.dir.join("db/atlas.db"))
        .env("XDG_DATA_HOME", p.dir.join("data"))
        .env("XDG_CONFIG_HOME", p.dir.join("no-user-config"))
        // Nothing listens there: the pusher keeps a backlog, its thread alive.
        .env("ATLAS_SERVER", "http://127.0.0.1:9")
        .env("ATLAS_TOKEN", "atl_unused")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let id = wait_for_phase(&p, 0);
    std::thread::sleep(Duration::from_millis(500));
    let (code, out, err) = p.atlas(&["windows", "freeze", "slurm"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(status(&p, &id), "frozen");
    let (code, out, err) = p.atlas(&["windows", "wake", "slurm"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(run.wait().unwrap().success());
    assert_eq!(status(&p, &id), "succeeded");
}
