//! `slurm`: the agent inside a batch job. The sbatch script comes from `atlas-emit` (the
//! importer's mapping in reverse, every value quoted), is submitted with `sbatch --parsable`,
//! watched with `squeue` and `scontrol show job`, and cancelled with `scancel`. The agent
//! writes its spool into the run directory, which the job sees on the shared filesystem.

use std::process::Command;
use std::time::{Duration, Instant};

use atlas_emit::{sbatch_script, SbatchOptions};

use crate::target::Named;
use crate::{data, process, Backend, BackendError, Collected, Figures, Job, JobEnd};

/// How often squeue is asked about a running job.
const POLL: Duration = Duration::from_millis(500);

/// Submits jobs to the Slurm controller reachable from here.
pub(crate) struct Slurm {
    target: Named,
    job_id: Option<String>,
    last_poll: Option<Instant>,
    /// The job's final state, once `watch` saw it end.
    end_state: Option<String>,
}

impl Slurm {
    pub(crate) fn new(target: Named) -> Self {
        Slurm {
            target,
            job_id: None,
            last_poll: None,
            end_state: None,
        }
    }
}

impl Backend for Slurm {
    fn agent_per_array_task(&self) -> bool {
        true
    }

    fn prepare(&mut self, job: &Job<'_>) -> Result<Figures, BackendError> {
        if let Some(missing) = ["sbatch", "squeue", "scancel", "scontrol"]
            .into_iter()
            .find(|p| !process::installed(p))
        {
            return Err(BackendError::Unusable(format!(
                "{missing} is not installed (Debian: slurm-client; a local cluster: scripts/slurm-up)"
            )));
        }
        let t = &self.target.target;
        let array = job.workflow.spec.scheduling.array.is_some();
        let options = SbatchOptions {
            // An array runs as a Slurm array: every task's agent has its own run and spool.
            command: std::iter::once(job.agent.display().to_string())
                .chain(crate::agent_args(job, job.workflow_file, job.run_dir))
                .chain(array.then(|| "--array-task".to_string()))
                .collect(),
            partition: t.partition.clone(),
            account: t.account.clone(),
            extra: t.sbatch_options.clone(),
            // Where the job starts, as on `local`: the workflow's directory, else the project.
            working_directory: match &job.workflow.spec.scheduling.working_directory {
                Some(dir) => dir.clone(),
                None => job.project_dir.display().to_string(),
            },
            output: job
                .run_dir
                .join(if array {
                    "slurm-%A_%a.out"
                } else {
                    "slurm-%j.out"
                })
                .display()
                .to_string(),
            host_sampler: crate::host_sampler(job, &job.agent.display().to_string(), job.run_dir),
        };
        let workflow = crate::without_gpus_if_none(&self.target, job);
        crate::with_target_environment(&self.target, job, &workflow)?;
        let script = sbatch_script(&workflow, &options)
            .map_err(|e| BackendError::Rejected(format!("cannot write the sbatch script: {e}")))?;
        let path = job.run_dir.join("job.sbatch");
        std::fs::write(&path, script)
            .map_err(|e| BackendError::Unusable(format!("cannot write {}: {e}", path.display())))?;
        data::stage_on_host(job, t)
    }

    fn submit(&mut self, job: &Job<'_>) -> Result<String, BackendError> {
        let path = job.run_dir.join("job.sbatch");
        let out = Command::new("sbatch")
            .arg("--parsable")
            // A run is one attempt: a job Slurm requeued (after a node failure) would run its
            // phases again into the same run.
            .arg("--no-requeue")
            .arg(&path)
            .output()
            .map_err(|e| {
                BackendError::Unusable(format!(
                    "cannot run sbatch: {e} (see `atlas targets check`)"
                ))
            })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let message = stderr
                .lines()
                .map(|l| l.trim().trim_start_matches("sbatch: error: "))
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(BackendError::Rejected(format!(
                "sbatch rejected the job: {message}"
            )));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let job_id = stdout
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        self.job_id = Some(job_id.clone());
        Ok(job_id)
    }

    fn watch(&mut self) -> Option<JobEnd> {
        let job_id = self.job_id.as_deref()?;
        if self.last_poll.is_some_and(|t| t.elapsed() < POLL) {
            return None;
        }
        self.last_poll = Some(Instant::now());
        if job_listed(job_id) {
            return None;
        }
        let state = final_state(job_id);
        self.end_state = Some(state.clone());
        Some(JobEnd { state })
    }

    fn cancel(&mut self) -> Result<(), BackendError> {
        if let Some(job_id) = &self.job_id {
            let status = Command::new("scancel").arg(job_id).status();
            if !status.as_ref().is_ok_and(|s| s.success()) {
                return Err(BackendError::Unusable(format!(
                    "scancel {job_id} failed: {}",
                    status.map_or_else(|e| e.to_string(), |s| s.to_string())
                )));
            }
        }
        Ok(())
    }

    fn collect(&mut self, job: &Job<'_>) -> Collected {
        let mut collected = collected(self.job_id.as_deref(), job);
        if let (Some(id), Some(state)) = (&self.job_id, &self.end_state) {
            let query = |args: &[&str]| process::output(args[0], &args[1..]).ok();
            collected.failure = scheduler_failure(id, state, &query);
        }
        collected
    }
}

/// What a Slurm job leaves outside the spool: the tail of its own output file.
pub(crate) fn collected(job_id: Option<&str>, job: &Job<'_>) -> Collected {
    Collected {
        output_tail: job_id
            .and_then(|id| crate::tail(&job.run_dir.join(format!("slurm-{id}.out")), 10)),
        ..Default::default()
    }
}

/// What Slurm says ended a job that did not end by itself, from its final state: for a node
/// failure, the job's nodes that are down with Slurm's reason. `query` runs a Slurm command
/// (here, or on the login node) and returns its output.
pub(crate) fn scheduler_failure(
    job_id: &str,
    state: &str,
    query: &dyn Fn(&[&str]) -> Option<String>,
) -> Option<String> {
    let state = state.split_whitespace().next().unwrap_or(state);
    match state {
        "NODE_FAIL" => {
            let nodes = query(&["scontrol", "show", "job", job_id, "-o"])
                .and_then(|o| field(&o, "NodeList="))
                .unwrap_or_default();
            let down = if nodes.is_empty() {
                String::new()
            } else {
                query(&["sinfo", "-h", "-N", "-n", &nodes, "-o", "%N|%T|%E"])
                    .map(|o| down_nodes(&o))
                    .unwrap_or_default()
            };
            Some(if down.is_empty() {
                format!("a node of the job failed (Slurm: NODE_FAIL on {nodes})")
            } else {
                format!("{down} (Slurm ended the job NODE_FAIL)")
            })
        }
        "TIMEOUT" => Some("Slurm ended the job at its time limit (TIMEOUT)".into()),
        "PREEMPTED" => Some("Slurm preempted the job (PREEMPTED)".into()),
        "BOOT_FAIL" => Some("a node of the job failed to boot (Slurm: BOOT_FAIL)".into()),
        "OUT_OF_MEMORY" => Some("Slurm ended the job: out of memory (OUT_OF_MEMORY)".into()),
        _ => None,
    }
}

/// `node1 is down (Not responding)` for every node of `sinfo -N -o '%N|%T|%E'` output that is
/// down or failing.
fn down_nodes(sinfo: &str) -> String {
    let mut seen = Vec::new();
    for line in sinfo.lines() {
        let [node, state, reason] = line.splitn(3, '|').collect::<Vec<_>>()[..] else {
            continue;
        };
        let state = state.trim_end_matches(['*', '~', '#', '!', '%', '$', '@', '^', '-']);
        if ["down", "fail", "failing", "not_responding"].contains(&state) {
            let item = format!("{node} is {state} ({})", reason.trim());
            if !seen.contains(&item) {
                seen.push(item);
            }
        }
    }
    seen.join("; ")
}

/// The value of `Key=` in `scontrol show … -o` output.
fn field(scontrol: &str, key: &str) -> Option<String> {
    scontrol
        .split_whitespace()
        .find_map(|f| f.strip_prefix(key).map(String::from))
        .filter(|v| v != "(null)")
}

/// The `JobState=` of `scontrol show job -o` output.
pub(crate) fn job_state(scontrol: &str) -> Option<String> {
    field(scontrol, "JobState=")
}

/// Whether squeue still lists the job (pending, running, completing).
fn job_listed(job_id: &str) -> bool {
    process::output("squeue", &["-h", "-j", job_id, "-o", "%T"]).is_ok_and(|o| !o.is_empty())
}

/// The job's final state from scontrol (kept for MinJobAge seconds after it ends).
fn final_state(job_id: &str) -> String {
    process::output("scontrol", &["show", "job", job_id, "-o"])
        .ok()
        .and_then(|o| job_state(&o))
        .unwrap_or_else(|| "UNKNOWN".into())
}

#[cfg(test)]
mod failure_tests {
    use super::*;

    #[test]
    fn a_node_failure_names_the_nodes_that_are_down() {
        let query = |args: &[&str]| {
            Some(match args[0] {
                "scontrol" => "JobId=7 JobState=NODE_FAIL NodeList=head,node1 Reason=None".into(),
                _ => {
                    "head|idle|none\nnode1|down*|Not responding\nnode1|down*|Not responding".into()
                }
            })
        };
        assert_eq!(
            scheduler_failure("7", "NODE_FAIL", &query).unwrap(),
            "node1 is down (Not responding) (Slurm ended the job NODE_FAIL)"
        );
        assert!(scheduler_failure("7", "TIMEOUT", &query)
            .unwrap()
            .contains("time limit"));
        assert_eq!(scheduler_failure("7", "COMPLETED", &query), None);
        assert_eq!(scheduler_failure("7", "FAILED", &query), None);
    }
}
