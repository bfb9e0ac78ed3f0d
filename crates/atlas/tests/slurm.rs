//! The agent inside real Slurm jobs (started by `scripts/slurm-up`): the sbatch script from
//! `atlas-emit` runs `atlas agent`, and the spool in the shared run directory tells what happened.
//! With `ATLAS_REQUIRE_INTEGRATION=1` a missing Slurm is a failure, not a skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use atlas_emit::{sbatch_script, SbatchOptions};
use atlas_spec::record::{FailureCause, PhaseStatus, Record, RecordBody};

fn slurm_available() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| matches!(l.trim(), "idle" | "mixed" | "allocated"))
        });
    if !up && std::env::var("ATLAS_REQUIRE_INTEGRATION").is_ok_and(|v| v == "1") {
        panic!("Slurm is required (ATLAS_REQUIRE_INTEGRATION=1): run scripts/slurm-up");
    }
    if !up {
        eprintln!("skipped: no Slurm (run scripts/slurm-up)");
    }
    up
}

struct Job {
    dir: PathBuf,
}

impl Job {
    /// Writes the workflow and its sbatch script into a fresh run directory.
    fn prepare(tag: &str, workflow_yaml: &str) -> (Job, PathBuf) {
        let dir = std::env::temp_dir().join(format!("atlas-slurm-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let workflow_file = dir.join("workflow.yaml");
        std::fs::write(&workflow_file, workflow_yaml).unwrap();
        let workflow = atlas_spec::parse_workflow("workflow.yaml", workflow_yaml).unwrap();
        let options = SbatchOptions {
            command: vec![
                env!("CARGO_BIN_EXE_atlas").into(),
                "agent".into(),
                workflow_file.display().to_string(),
                "--run-id".into(),
                format!("r-{tag}"),
                "--run-dir".into(),
                dir.join("run").display().to_string(),
                "--interval".into(),
                "200ms".into(),
                "--grace".into(),
                "1s".into(),
                "--quiet".into(),
            ],
            working_directory: dir.display().to_string(),
            output: dir.join("slurm-%j.out").display().to_string(),
            host_sampler: None,
            ..Default::default()
        };
        let script = dir.join("job.sbatch");
        std::fs::write(&script, sbatch_script(&workflow, &options).unwrap()).unwrap();
        (Job { dir }, script)
    }

    /// The spool's records so far (none while the job is still pending).
    fn records(&self) -> Vec<Record> {
        atlas_agent::spool::read_spool(&self.dir.join("run/spool.jsonl"), 0)
            .map_or_else(|_| Vec::new(), |c| c.records)
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh project directory holding `atlas_toml`; removed by the caller's test at the end.
fn project(tag: &str, atlas_toml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("atlas-slurm-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("atlas.toml"), atlas_toml).unwrap();
    dir
}

fn squeue_state(job_id: &str) -> String {
    let out = Command::new("squeue")
        .args(["-h", "-j", job_id, "-o", "%T"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_example_runs_under_the_agent_in_a_real_slurm_job() {
    if !slurm_available() {
        return;
    }
    let yaml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/atlas.yaml"),
    )
    .unwrap();
    let (job, script) = Job::prepare("example", &yaml);
    let out = Command::new("sbatch")
        .args(["--parsable", "--wait"])
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sbatch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = job.records();
    let ends: Vec<(String, PhaseStatus)> = records
        .iter()
        .filter_map(|r| match &r.body {
            RecordBody::PhaseEnd { phase, status, .. } => Some((phase.clone(), *status)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        [
            ("preprocess".to_string(), PhaseStatus::Succeeded),
            ("train".to_string(), PhaseStatus::Succeeded)
        ]
    );
    assert!(records.iter().any(|r| matches!(&r.body, RecordBody::Metric { name, value, .. } if name == "loss" && *value == 0.5)));
    let source = records.iter().find_map(|r| match &r.body {
        RecordBody::RunStart { source, .. } => Some(source.clone()),
        _ => None,
    });
    assert!(
        source.unwrap().contains("cgroup"),
        "inside Slurm the job's own cgroup is measured too"
    );
    assert!(records.iter().any(|r| matches!(
        &r.body,
        RecordBody::Sample {
            cgroup_memory_bytes: Some(_),
            ..
        }
    )));
}

#[test]
fn a_job_cancelled_with_scancel_is_recorded_as_cancelled() {
    if !slurm_available() {
        return;
    }
    let yaml = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: cancel-me}\nspec:\n  phases:\n  - {name: wait, run: 'sleep 60'}\n  - {name: after, run: 'echo never'}\n";
    let (job, script) = Job::prepare("cancel", yaml);
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sbatch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job_id = String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !job
        .records()
        .iter()
        .any(|r| matches!(r.body, RecordBody::PhaseStart { .. }))
    {
        assert!(Instant::now() < deadline, "the job never started its phase");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(Command::new("scancel")
        .arg(&job_id)
        .status()
        .unwrap()
        .success());
    while !squeue_state(&job_id).is_empty() {
        assert!(
            Instant::now() < deadline + Duration::from_secs(30),
            "the job did not end after scancel"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let records = job.records();
    let wait_end = records.iter().find_map(|r| match &r.body {
        RecordBody::PhaseEnd { phase, cause, .. } if phase == "wait" => Some(cause.clone()),
        _ => None,
    });
    assert_eq!(
        wait_end,
        Some(Some(FailureCause::Cancelled {
            signal: libc::SIGTERM
        }))
    );
    assert!(records.iter().any(|r| matches!(&r.body, RecordBody::PhaseEnd { phase, status: PhaseStatus::Skipped, .. } if phase == "after")));
}

#[test]
fn atlas_run_on_a_slurm_target_records_the_run_and_a_rejected_job() {
    if !slurm_available() {
        return;
    }
    let dir = project("run", "[targets.cluster]\nkind = \"slurm\"\npartition = \"debug\"\n\n[targets.nowhere]\nkind = \"slurm\"\npartition = \"no-such-partition\"\n");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/atlas.yaml");
    let atlas = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
            .args(args)
            .current_dir(&dir)
            .env("ATLAS_DB", dir.join("atlas.db"))
            .env("XDG_CONFIG_HOME", dir.join("none"))
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, stderr) = atlas(&[
        "run",
        example.to_str().unwrap(),
        "--on",
        "cluster",
        "--on",
        "nowhere",
        "--interval",
        "200ms",
    ]);
    assert_eq!(code, 1, "the rejected run fails the experiment: {stderr}");
    assert!(stderr.contains("cluster: r-"), "{stderr}");
    let (_, stdout, _) = atlas(&["runs", "--format", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let by_target = |t: &str| {
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["target"] == t)
            .unwrap()
            .clone()
    };
    let cluster = by_target("cluster");
    assert_eq!(cluster["status"], "succeeded");
    let job_id = cluster["schedulerId"].as_str().unwrap();
    assert!(
        job_id.parse::<u64>().is_ok(),
        "the Slurm job id is kept: {cluster}"
    );
    assert!(
        cluster["source"].as_str().unwrap().contains("cgroup"),
        "{cluster}"
    );
    assert!(
        cluster["startedAt"].as_f64().unwrap() >= cluster["submittedAt"].as_f64().unwrap(),
        "queue wait is not negative"
    );
    let nowhere = by_target("nowhere");
    assert_eq!(nowhere["status"], "failed");
    assert!(
        nowhere["cause"]
            .as_str()
            .unwrap()
            .contains("invalid partition"),
        "{nowhere}"
    );
    // The job starts where it was submitted, as on local: relative paths mean the same.
    std::fs::write(dir.join("here.yaml"), "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: here}\nspec:\n  phases:\n  - {name: look, run: 'test -f atlas.toml'}\n").unwrap();
    let (code, _, stderr) = atlas(&["run", "here.yaml", "--on", "cluster", "--on", "local"]);
    assert_eq!(
        code, 0,
        "both targets see the submission directory: {stderr}"
    );
    let (code, stdout, _) = atlas(&["show", cluster["id"].as_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0);
    let detail: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(detail["phases"].as_array().unwrap().len(), 2);
    assert_eq!(detail["phases"][1]["metrics"][0]["last"], 0.5);
    let _ = std::fs::remove_dir_all(&dir);
}

mod support {
    pub mod interrupt;
}

#[test]
fn ctrl_c_during_a_slurm_run_cancels_the_job() {
    if !slurm_available() {
        return;
    }
    let dir = project(
        "ctrlc",
        "[targets.cluster]\nkind = \"slurm\"\npartition = \"debug\"\n",
    );
    std::fs::write(dir.join("wait.yaml"), "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: wait}\nspec:\n  phases:\n  - {name: wait, run: 'sleep 60'}\n").unwrap();
    let db = dir.join("atlas.db");
    let (code, stderr) = support::interrupt::interrupt_during_phase(
        &db,
        &dir,
        &["run", "wait.yaml", "--on", "cluster"],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("cancelling"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["runs", "--format", "json"])
        .env("ATLAS_DB", &db)
        .output()
        .unwrap();
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        runs[0]["cause"].as_str().unwrap().starts_with("cancelled"),
        "{}",
        runs[0]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_array_runs_as_a_slurm_array_with_a_run_per_task() {
    if !slurm_available() {
        return;
    }
    let dir = project(
        "array",
        "[targets.cluster]\nkind = \"slurm\"\npartition = \"debug\"\n",
    );
    std::fs::write(
        dir.join("array.yaml"),
        "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: sweep}\nspec:\n  scheduling: {array: {start: 1, end: 3}}\n  phases:\n  - {name: task, run: 'echo task=$SLURM_ARRAY_TASK_ID; test $SLURM_ARRAY_TASK_ID != 2', patterns: ['task=(?P<task>[0-9]+)']}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args([
            "run",
            "array.yaml",
            "--on",
            "cluster",
            "--interval",
            "200ms",
        ])
        .current_dir(&dir)
        .env("ATLAS_DB", dir.join("atlas.db"))
        .env("XDG_CONFIG_HOME", dir.join("none"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "task 2 fails: {stderr}");
    let runs = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["runs", "--format", "json"])
        .env("ATLAS_DB", dir.join("atlas.db"))
        .output()
        .unwrap();
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 4, "the array's run and one per task: {runs:?}");
    let parent = runs
        .iter()
        .find(|r| !r["id"].as_str().unwrap().contains("-t"))
        .unwrap();
    let parent_id = parent["id"].as_str().unwrap();
    assert_eq!(parent["status"], "failed");
    let cause = parent["cause"].as_str().unwrap();
    assert!(
        cause.contains("2 of 3 tasks succeeded") && cause.contains(&format!("{parent_id}-t2")),
        "{cause}"
    );
    for task in 1..=3 {
        let run = runs
            .iter()
            .find(|r| r["id"] == format!("{parent_id}-t{task}"))
            .unwrap_or_else(|| panic!("no run for task {task}: {runs:?}"));
        let expected = if task == 2 { "failed" } else { "succeeded" };
        assert_eq!(run["status"], expected, "{run}");
        assert_eq!(run["experimentId"], parent["experimentId"]);
    }
    // One Slurm job with an array of tasks: `JOBID_N` output files under one job id.
    let job_id = parent["schedulerId"].as_str().unwrap();
    let outputs: Vec<String> = std::fs::read_dir(parent["runDir"].as_str().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("slurm-{job_id}_")))
        .collect();
    assert_eq!(outputs.len(), 3, "{outputs:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
