//! Starting a run's agent on its target and learning when the job has ended: a child process
//! for `local`, a batch job for `slurm` (the sbatch script from `atlas-emit`, watched with
//! squeue). Either way the agent writes the same spool into the run directory.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use atlas_emit::{sbatch_script, SbatchOptions};
use atlas_spec::Workflow;

use crate::exit::Failure;
use crate::targets::{Kind, Named};

/// How a job ended, as far as its scheduler says.
#[derive(Debug, Clone)]
pub struct JobEnd {
    /// `exit 0`, `COMPLETED`, `CANCELLED`, `FAILED`, …
    pub state: String,
}

/// Stops a started job: SIGTERM to a local agent, `scancel` for a Slurm job. Either way the
/// agent forwards the signal to the job and records the run as cancelled.
pub enum Canceller {
    Local(u32),
    Slurm(String),
}

impl Canceller {
    pub fn cancel(&self) {
        match self {
            // SAFETY: plain kill(2) on our own child.
            Canceller::Local(pid) => unsafe {
                libc::kill(*pid as i32, libc::SIGTERM);
            },
            Canceller::Slurm(job_id) => {
                let _ = Command::new("scancel").arg(job_id).status();
            }
        }
    }
}

/// Why a job did not start.
pub enum LaunchError {
    /// The scheduler refused the job (its message): the run fails, the experiment goes on.
    Rejected(String),
    /// This machine cannot launch at all.
    Environment(Failure),
}

/// The command line of the agent for one run.
fn agent_command(
    run_id: &str,
    run_dir: &Path,
    workflow_file: &Path,
    interval: Duration,
) -> Result<Vec<String>, LaunchError> {
    let exe = std::env::current_exe().map_err(|e| {
        LaunchError::Environment(Failure::environment(format!(
            "cannot find the atlas binary: {e}"
        )))
    })?;
    Ok(vec![
        exe.display().to_string(),
        "agent".into(),
        workflow_file.display().to_string(),
        "--run-id".into(),
        run_id.into(),
        "--run-dir".into(),
        run_dir.display().to_string(),
        "--interval".into(),
        format!("{}ms", interval.as_millis()),
        "--quiet".into(),
    ])
}

/// Starts the run's agent on `target`; the receiver hears once when the job has ended.
pub fn start(
    target: &Named,
    workflow: &Workflow,
    run_id: &str,
    run_dir: &Path,
    workflow_file: &Path,
    interval: Duration,
) -> Result<(Receiver<JobEnd>, Canceller), LaunchError> {
    let command = agent_command(run_id, run_dir, workflow_file, interval)?;
    let (tx, rx) = channel();
    let canceller = match target.target.kind {
        Kind::Local => {
            let mut child = Command::new(&command[0])
                .args(&command[1..])
                .stdin(Stdio::null())
                .spawn()
                .map_err(|e| {
                    LaunchError::Environment(Failure::environment(format!(
                        "cannot start the agent: {e}"
                    )))
                })?;
            let pid = child.id();
            std::thread::spawn(move || {
                let state = match child.wait() {
                    Ok(status) => format!("exit {}", status.code().unwrap_or(-1)),
                    Err(e) => format!("lost: {e}"),
                };
                let _ = tx.send(JobEnd { state });
            });
            Canceller::Local(pid)
        }
        Kind::Slurm => {
            let job_id = submit(target, workflow, run_dir, command)?;
            eprintln!("  submitted Slurm job {job_id}");
            let watched = job_id.clone();
            std::thread::spawn(move || {
                while job_listed(&watched) {
                    std::thread::sleep(Duration::from_millis(500));
                }
                let _ = tx.send(JobEnd {
                    state: final_state(&watched),
                });
            });
            Canceller::Slurm(job_id)
        }
        Kind::Podman => {
            return Err(LaunchError::Environment(Failure::input(format!(
                "target `{}` is a podman target; this version runs local and slurm targets",
                target.name
            ))))
        }
    };
    Ok((rx, canceller))
}

/// Writes the sbatch script into the run directory and submits it; the job id.
fn submit(
    target: &Named,
    workflow: &Workflow,
    run_dir: &Path,
    command: Vec<String>,
) -> Result<String, LaunchError> {
    let t = &target.target;
    let options = SbatchOptions {
        command,
        partition: t.partition.clone(),
        account: t.account.clone(),
        extra: t.sbatch_options.clone(),
        // Where the job starts, as on `local`: the workflow's directory, else where atlas was run
        // (sbatch's own default, the submission directory).
        working_directory: match &workflow.spec.scheduling.working_directory {
            Some(dir) => dir.clone(),
            None => {
                std::env::current_dir().map_or_else(|_| ".".into(), |d| d.display().to_string())
            }
        },
        output: run_dir.join("slurm-%j.out").display().to_string(),
    };
    let mut workflow = workflow.clone();
    if !t.gpus {
        let r = &mut workflow.spec.resources;
        if r.gpus_per_node.or(r.gpus_per_task).or(r.gpus).is_some() {
            eprintln!(
                "  target `{}` has no GPUs (gpus = false): the job's GPU request is left out",
                target.name
            );
        }
        (
            r.gpus_per_node,
            r.gpus_per_task,
            r.gpus,
            r.gpu_type,
            r.memory_per_gpu,
        ) = (None, None, None, None, None);
    }
    let script = sbatch_script(&workflow, &options)
        .map_err(|e| LaunchError::Rejected(format!("cannot write the sbatch script: {e}")))?;
    let path = run_dir.join("job.sbatch");
    std::fs::write(&path, script).map_err(|e| {
        LaunchError::Environment(Failure::environment(format!(
            "cannot write {}: {e}",
            path.display()
        )))
    })?;
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(&path)
        .output()
        .map_err(|e| {
            LaunchError::Environment(Failure::environment(format!(
                "cannot run sbatch: {e} (see `atlas targets check`)"
            )))
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message = stderr
            .lines()
            .map(|l| l.trim().trim_start_matches("sbatch: error: "))
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(LaunchError::Rejected(format!(
            "sbatch rejected the job: {message}"
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(stdout
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Whether squeue still lists the job (pending, running, completing).
fn job_listed(job_id: &str) -> bool {
    Command::new("squeue")
        .args(["-h", "-j", job_id, "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !String::from_utf8_lossy(&o.stdout).trim().is_empty())
}

/// The job's final state from scontrol (kept for MinJobAge seconds after it ends).
fn final_state(job_id: &str) -> String {
    let out = Command::new("scontrol")
        .args(["show", "job", job_id, "-o"])
        .output();
    out.ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .find_map(|f| f.strip_prefix("JobState=").map(String::from))
        })
        .unwrap_or_else(|| "UNKNOWN".into())
}
