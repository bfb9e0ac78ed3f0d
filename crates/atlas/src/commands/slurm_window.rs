//! A window on a Slurm target (this machine's Slurm): the freeze reaches the run's agent as its
//! job's batch step (`scancel --batch --signal=USR2`: the batch script execs the agent, so
//! nothing else of the job gets the signal); once the run is frozen, its job is given back:
//! `release` in the run's control file (the agent leaves quietly on the stop that follows),
//! the job made requeueable (Atlas submits with `--no-requeue`) and `scontrol requeuehold`:
//! the job is pending and held, holding no node. The wake releases it (`scontrol release`,
//! then requeueable no more); the agent Slurm starts again finds the run frozen in its spool
//! and resumes it.

use std::process::Command;
use std::time::{Duration, Instant};

use atlas_store::RunRow;

/// How long the job may take to leave its nodes after `requeuehold`.
const GIVE_BACK: Duration = Duration::from_secs(60);

/// The run's Slurm job id (plain digits, as sbatch gave it).
fn job_id(run: &RunRow) -> Result<&str, String> {
    run.scheduler_id
        .as_deref()
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| "its Slurm job is not known".into())
}

/// Runs a Slurm command; its stdout, or why it failed.
fn slurm(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", args[0]))?;
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes `word` into the run's control file.
fn control(run: &RunRow, word: &str) -> Result<(), String> {
    let dir = run.run_dir.as_deref().ok_or("it has no run directory")?;
    let path = atlas_spec::RunDir::new(dir).control();
    std::fs::write(&path, format!("{word}\n"))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The freeze's signal to the run's agent: its job's batch step.
pub fn signal_batch_step(run: &RunRow) -> Result<(), String> {
    let job = job_id(run)?;
    slurm(&["scancel", "--batch", "--signal=USR2", job]).map(|_| ())
}

/// Gives a frozen run's job back to Slurm: requeued and held, on no node; prints how long
/// that took after the job's freeze was recorded.
pub fn give_back(run: &RunRow) -> Result<(), String> {
    let job = job_id(run)?;
    control(run, "release")?;
    slurm(&["scontrol", "update", &format!("JobId={job}"), "Requeue=1"])?;
    slurm(&["scontrol", "requeuehold", job])?;
    let asked = Instant::now();
    loop {
        let state = slurm(&["squeue", "-h", "-j", job, "-o", "%T|%r"])?;
        let state = state.trim();
        if state.starts_with("PENDING") {
            println!(
                "{}: job {job} requeued and held ({}): none of it runs, {:.1} s after it was given back",
                run.id,
                state.split('|').nth(1).unwrap_or("held"),
                asked.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if asked.elapsed() > GIVE_BACK {
            return Err(format!(
                "job {job} is still `{state}` {} s after requeuehold",
                GIVE_BACK.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The wake: the held job is released; Slurm starts it again, and its agent resumes the run.
pub fn release(run: &RunRow) -> Result<(), String> {
    let job = job_id(run)?;
    control(run, "wake")?;
    slurm(&["scontrol", "release", job])?;
    // Slurm holds a requeued job back for two minutes (its EligibleTime); a wake means now.
    slurm(&[
        "scontrol",
        "update",
        &format!("JobId={job}"),
        "StartTime=now",
    ])?;
    // One attempt from here on, as Atlas submitted it.
    slurm(&["scontrol", "update", &format!("JobId={job}"), "Requeue=0"])?;
    Ok(())
}
