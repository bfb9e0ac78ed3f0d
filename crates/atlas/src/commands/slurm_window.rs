//! A window on a Slurm target, here or over SSH (`atlas_backends::slurm_place`): the freeze
//! reaches the run's agent as its job's batch step (`scancel --batch --signal=USR2`: the batch
//! script execs the agent, so nothing else of the job gets the signal); once the run is frozen,
//! its job is given back: `release` in the run's control file (the agent leaves quietly on the
//! stop that follows), the job made requeueable (Atlas submits with `--no-requeue`) and
//! `scontrol requeuehold`: the job is pending and held, holding no node. The wake releases it
//! (`scontrol release`, its start now, then requeueable no more); the agent Slurm starts again
//! finds the run frozen in its spool and resumes it.

use std::time::{Duration, Instant};

use atlas_backends::slurm_place::SlurmPlace;
use atlas_backends::Named;
use atlas_store::RunRow;

/// How long the job may take to leave its nodes after `requeuehold`.
const GIVE_BACK: Duration = Duration::from_secs(60);

/// The run's Slurm job id, and the place its commands run.
fn job(target: &Named, run: &RunRow) -> Result<(SlurmPlace, String), String> {
    let place = SlurmPlace::of(target);
    let job = run
        .scheduler_id
        .as_deref()
        .and_then(|id| place.job_id(id))
        .ok_or("its Slurm job is not known")?
        .to_string();
    Ok((place, job))
}

fn control(place: &SlurmPlace, run: &RunRow, word: &str) -> Result<(), String> {
    let dir = run.run_dir.as_deref().ok_or("it has no run directory")?;
    place.write_control(&run.id, dir, word)
}

/// The freeze: `freeze` in the control file, and the signal to the run's agent, its job's
/// batch step.
pub fn freeze(target: &Named, run: &RunRow) -> Result<(), String> {
    let (place, job) = job(target, run)?;
    control(&place, run, "freeze")?;
    place
        .run(&["scancel", "--batch", "--signal=USR2", &job])
        .map(|_| ())
}

/// Gives a frozen run's job back to Slurm: requeued and held, on no node; prints how long
/// that took.
pub fn give_back(target: &Named, run: &RunRow) -> Result<(), String> {
    let (place, job) = job(target, run)?;
    control(&place, run, "release")?;
    place.run(&["scontrol", "update", &format!("JobId={job}"), "Requeue=1"])?;
    place.run(&["scontrol", "requeuehold", &job])?;
    let asked = Instant::now();
    loop {
        let state = place.run(&["squeue", "-h", "-j", &job, "-o", "%T|%r"])?;
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

/// Whether a woken run's job is on its way in Slurm: still waiting in the queue (its reason),
/// as after a wake on a busy cluster, or started and its agent not yet heard from.
pub fn queued(target: &Named, run: &RunRow) -> Option<String> {
    let (place, job) = job(target, run).ok()?;
    let state = place
        .run(&["squeue", "-h", "-j", &job, "-o", "%T|%r"])
        .ok()?;
    let (state, reason) = state.split_once('|')?;
    match state.trim() {
        "PENDING" | "REQUEUED" => Some(format!("job {job} released and pending ({reason})")),
        // Started again, its agent not yet heard from (a busy machine): on its way.
        "CONFIGURING" | "RUNNING" => Some(format!("job {job} started again")),
        _ => None,
    }
}

/// The wake: the held job is released; Slurm starts it again, and its agent resumes the run.
pub fn wake(target: &Named, run: &RunRow) -> Result<(), String> {
    let (place, job) = job(target, run)?;
    control(&place, run, "wake")?;
    place.run(&["scontrol", "release", &job])?;
    // Slurm holds a requeued job back for two minutes (its EligibleTime); a wake means now.
    place.run(&[
        "scontrol",
        "update",
        &format!("JobId={job}"),
        "StartTime=now",
    ])?;
    // One attempt from here on, as Atlas submitted it.
    place.run(&["scontrol", "update", &format!("JobId={job}"), "Requeue=0"])?;
    Ok(())
}
