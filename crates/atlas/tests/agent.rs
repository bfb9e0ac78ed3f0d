//! The agent as a real process (`atlas agent`), running real phases: causes, walltime,
//! signals, SIGKILL of the agent, CPU and wall-time accuracy, daemonizing children.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atlas_spec::record::{FailureCause, PhaseStatus, Record, RecordBody};

struct Run {
    dir: PathBuf,
}

impl Run {
    fn new(tag: &str, phases: &[(&str, &str)], extra_spec: &str) -> Run {
        let dir = std::env::temp_dir().join(format!("atlas-agent-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut yaml = format!("apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata:\n  name: {tag}\nspec:\n{extra_spec}  phases:\n");
        for (name, run) in phases {
            yaml += &format!(
                "  - name: {name}\n    run: {}\n",
                serde_json::to_string(run).unwrap()
            );
        }
        std::fs::write(dir.join("workflow.yaml"), yaml).unwrap();
        Run { dir }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_atlas"));
        cmd.arg("agent")
            .arg(self.dir.join("workflow.yaml"))
            .args(["--run-id", "r-test", "--run-dir"])
            .arg(self.dir.join("run"))
            .args(["--interval", "100ms", "--grace", "1s", "--quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    fn run(&self) -> i32 {
        self.command().status().unwrap().code().unwrap_or(-1)
    }

    fn spool(&self) -> PathBuf {
        self.dir.join("run/spool.jsonl")
    }

    fn records(&self) -> Vec<Record> {
        atlas_agent::spool::read_spool(&self.spool(), 0)
            .unwrap()
            .records
    }

    fn phase_end(&self, name: &str) -> (PhaseStatus, Option<FailureCause>, f64, f64) {
        self.records()
            .into_iter()
            .find_map(|r| match r.body {
                RecordBody::PhaseEnd {
                    phase,
                    status,
                    cause,
                    cpu_user_seconds,
                    cpu_system_seconds,
                    ..
                } if phase == name => Some((status, cause, cpu_user_seconds, cpu_system_seconds)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no end of phase {name}"))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_failed_phase_stops_the_run_and_later_phases_are_skipped() {
    let run = Run::new(
        "fail",
        &[
            ("one", "echo one"),
            ("two", "exit 3"),
            ("three", "echo never"),
        ],
        "",
    );
    assert_eq!(run.run(), 1);
    assert_eq!(run.phase_end("one").0, PhaseStatus::Succeeded);
    assert_eq!(
        run.phase_end("two").1,
        Some(FailureCause::NonZeroExit { code: 3 })
    );
    assert_eq!(run.phase_end("three").0, PhaseStatus::Skipped);
    let log = std::fs::read_to_string(run.dir.join("run/logs/one.out")).unwrap();
    assert_eq!(log, "one\n");
}

#[test]
fn command_not_found_is_its_own_cause() {
    let run = Run::new("notfound", &[("one", "no-such-command-atlas --x")], "");
    assert_eq!(run.run(), 1);
    assert_eq!(run.phase_end("one").1, Some(FailureCause::CommandNotFound));
}

#[test]
fn a_sigkilled_phase_without_a_cgroup_is_out_of_memory_by_heuristic() {
    let run = Run::new("oom", &[("one", "kill -9 $$")], "");
    assert_eq!(run.run(), 1);
    match run.phase_end("one").1 {
        Some(FailureCause::OutOfMemory { evidence }) => {
            assert!(evidence.starts_with("heuristic"), "{evidence}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn continue_on_error_keeps_going() {
    let run = Run::new("cont", &[("one", "exit 1"), ("two", "echo two")], "");
    let yaml = std::fs::read_to_string(run.dir.join("workflow.yaml")).unwrap();
    let yaml = yaml.replace(
        "    run: \"exit 1\"\n",
        "    run: \"exit 1\"\n    continueOnError: true\n",
    );
    std::fs::write(run.dir.join("workflow.yaml"), yaml).unwrap();
    assert_eq!(run.run(), 1, "the run still failed");
    assert_eq!(run.phase_end("two").0, PhaseStatus::Succeeded);
}

#[test]
fn walltime_exceeded_is_stopped_and_recorded() {
    let run = Run::new(
        "wall",
        &[("one", "sleep 30"), ("two", "echo never")],
        "  resources:\n    walltime: 1s\n",
    );
    let started = Instant::now();
    assert_eq!(run.run(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped long before the sleep ended"
    );
    assert_eq!(
        run.phase_end("one").1,
        Some(FailureCause::WalltimeExceeded { limit_seconds: 1 })
    );
    assert_eq!(run.phase_end("two").0, PhaseStatus::Skipped);
}

#[test]
fn sigterm_to_the_agent_is_forwarded_and_recorded() {
    let run = Run::new("term", &[("one", "sleep 30")], "");
    let mut agent = run.command().spawn().unwrap();
    wait_for_record(&run.spool(), "phaseStart");
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert_eq!(agent.wait().unwrap().code(), Some(1));
    assert_eq!(
        run.phase_end("one").1,
        Some(FailureCause::Cancelled {
            signal: libc::SIGTERM
        })
    );
    assert!(run
        .records()
        .iter()
        .any(|r| matches!(r.body, RecordBody::Signal { signal } if signal == libc::SIGTERM)));
}

fn wait_for_record(spool: &Path, kind: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::fs::read_to_string(spool).is_ok_and(|s| s.contains(&format!("\"type\":\"{kind}\"")))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no {kind} record in {}", spool.display());
}

#[test]
fn sigkill_of_the_agent_leaves_a_readable_spool_that_ingests_once() {
    let run = Run::new(
        "kill",
        &[(
            "one",
            "for i in $(seq 100); do echo epoch $i/100; sleep 0.05; done",
        )],
        "",
    );
    let mut agent = run.command().spawn().unwrap();
    wait_for_record(&run.spool(), "progress");
    std::thread::sleep(Duration::from_millis(1500));
    agent.kill().unwrap();
    agent.wait().unwrap();
    let contents = atlas_agent::spool::read_spool(&run.spool(), 0).unwrap();
    let seqs: Vec<u64> = contents.records.iter().map(|r| r.seq).collect();
    assert!(
        seqs.len() > 5,
        "records fsync'ed before the kill are there: {}",
        seqs.len()
    );
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "in order, no gaps"
    );
    let db = run.dir.join("atlas.db");
    for expected_new in [seqs.len(), 0] {
        let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
            .arg("ingest")
            .arg(run.spool())
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap();
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{expected_new} new records")),
            "{stderr}"
        );
    }
    // The job's processes died with their agent's process group or were left: end them.
    let _ = Command::new("pkill").args(["-f", "echo epoch"]).status();
}

#[test]
fn sampled_cpu_of_a_busy_loop_matches_the_kernels_rusage() {
    // Burns 1.5 s of CPU whatever else the machine is doing (a wall-clock loop burns less on a
    // busy machine).
    let busy = "python3 -c 'import time\nwhile time.process_time() < 1.5: pass'";
    let run = Run::new("cpu", &[("busy", busy)], "");
    assert_eq!(run.run(), 0);
    let (_, _, user, system) = run.phase_end("busy");
    let rusage = user + system;
    let sampled = run
        .records()
        .iter()
        .filter_map(|r| match &r.body {
            RecordBody::Sample {
                phase: Some(p),
                cpu_user_seconds,
                cpu_system_seconds,
                ..
            } if p == "busy" => Some(cpu_user_seconds + cpu_system_seconds),
            _ => None,
        })
        .fold(0.0, f64::max);
    assert!(rusage >= 1.5, "the loop burnt CPU: {rusage}");
    // The last sample is taken with the phase a zombie, so its figures are final: they differ
    // from the kernel's rusage only by clock-tick rounding (a few ticks of 10 ms).
    assert!(
        (sampled - rusage).abs() <= 0.05,
        "sampled {sampled} vs rusage {rusage}"
    );
}

#[test]
fn run_wall_time_matches_an_outside_stopwatch() {
    let run = Run::new("wall-clock", &[("sleep", "sleep 2")], "");
    let started = Instant::now();
    assert_eq!(run.run(), 0);
    let outside = started.elapsed().as_secs_f64();
    let inside = run
        .records()
        .iter()
        .find_map(|r| match r.body {
            RecordBody::RunEnd { wall_seconds, .. } => Some(wall_seconds),
            _ => None,
        })
        .unwrap();
    // Bounds that hold on any machine, however busy: the phase slept 2 s, so the agent's
    // clock saw at least that; the outside stopwatch also holds the agent's own start and exit,
    // so it saw at least as much. How close the two are is a benchmark (BENCHMARKS.md), not a test.
    assert!(
        inside >= 2.0,
        "inside {inside} is less than the 2 s the phase slept"
    );
    assert!(inside <= outside, "inside {inside} > outside {outside}");
}

#[test]
fn a_daemonized_descendant_is_still_sampled() {
    // The inner shell starts a busy subshell in the background and exits at once: the busy
    // process is orphaned, re-parented to the agent (a subreaper), and must still count.
    // The orphan burns 1 s of CPU (however busy the machine) and then says so; the phase
    // waits for that, sleeping.
    let phase = "rm -f burnt; bash -c '( python3 -c \"import time\nwhile time.process_time() < 1.0: pass\"; touch burnt ) &'; \
                 while [ ! -e burnt ]; do sleep 0.1; done; sleep 0.5";
    let run = Run::new("daemon", &[("main", phase)], "");
    assert_eq!(run.run(), 0);
    let samples: Vec<(f64, u32)> = run
        .records()
        .iter()
        .filter_map(|r| match &r.body {
            RecordBody::Sample {
                cpu_user_seconds,
                cpu_system_seconds,
                processes,
                ..
            } => Some((cpu_user_seconds + cpu_system_seconds, *processes)),
            _ => None,
        })
        .collect();
    let max_cpu = samples.iter().map(|s| s.0).fold(0.0, f64::max);
    assert!(max_cpu >= 1.0, "the orphan's CPU is counted: {max_cpu}");
    // The phase's shell and the orphan (at least) were seen together.
    assert!(
        samples.iter().any(|s| s.1 >= 2),
        "the phase and the orphan were seen together"
    );
    let (_, _, user, system) = run.phase_end("main");
    assert!(
        user + system < 0.5,
        "the phase shell's own rusage does not hold the orphan: {}",
        user + system
    );
}

/// A memory cgroup (v1 or v2) of its own for one test, removed afterwards.
struct MemoryCgroup {
    dir: PathBuf,
}

impl MemoryCgroup {
    fn create(limit_bytes: u64) -> Result<MemoryCgroup, String> {
        let name = format!("atlas-test-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let (dir, limits): (PathBuf, Vec<(&str, String)>) =
            if v1.join("memory.limit_in_bytes").exists() {
                (
                    v1.join(&name),
                    vec![
                        ("memory.limit_in_bytes", limit_bytes.to_string()),
                        ("memory.memsw.limit_in_bytes", limit_bytes.to_string()),
                    ],
                )
            } else {
                (
                    Path::new("/sys/fs/cgroup").join(&name),
                    vec![
                        ("memory.max", limit_bytes.to_string()),
                        ("memory.swap.max", "0".into()),
                    ],
                )
            };
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for (file, value) in limits {
            // memsw / swap.max exist only with swap accounting; the memory limit is what matters.
            let _ = std::fs::write(dir.join(file), value);
        }
        Ok(MemoryCgroup { dir })
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn out_of_memory_in_the_jobs_own_cgroup_is_reported_from_the_cgroup() {
    let cgroup = match MemoryCgroup::create(64 << 20) {
        Ok(c) => c,
        Err(why) if std::env::var("ATLAS_REQUIRE_INTEGRATION").is_ok_and(|v| v == "1") => {
            panic!("a memory cgroup is required here (ATLAS_REQUIRE_INTEGRATION=1): {why}")
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let run = Run::new(
        "cgroup-oom",
        &[
            ("hog", "python3 -c \"b = b'x' * (300 << 20)\""),
            ("after", "echo never"),
        ],
        "",
    );
    // Enter the cgroup, then become the agent: everything the job starts is inside it.
    let procs = cgroup.dir.join("cgroup.procs");
    let cmd = run.command();
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg("echo $$ > \"$1\" && shift && exec \"$@\"")
        .arg("sh")
        .arg(&procs)
        .arg(program)
        .args(args)
        .env("ATLAS_OWN_CGROUP", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    drop(cmd);
    let status = shell.status().unwrap();
    assert_eq!(status.code(), Some(1));
    match run.phase_end("hog").1 {
        Some(FailureCause::OutOfMemory { evidence }) => {
            assert!(evidence.starts_with("cgroup"), "{evidence}")
        }
        other => panic!("expected out of memory from the cgroup, got {other:?}"),
    }
    assert_eq!(run.phase_end("after").0, PhaseStatus::Skipped);
    let start = run.records().into_iter().find_map(|r| match r.body {
        RecordBody::RunStart { source, .. } => Some(source),
        _ => None,
    });
    assert!(
        start.unwrap().contains("cgroup"),
        "the run says where its figures come from"
    );
}
