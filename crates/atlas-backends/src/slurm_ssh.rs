//! `slurm` with a `host`: a Slurm cluster reached over SSH at its login node. The machine
//! `atlas run` is on need not be part of the cluster; everything goes over one multiplexed
//! ssh connection ([`crate::remote`]):
//!
//! 1. prepare: the agent binary is copied once per build to `WORKDIR/bin/atlas-ID` (ID from
//!    the binary's identity), the project to `WORKDIR/projects/NAME/` (rsync: files that did
//!    not change are not sent again), the inputs into it, and the run's directory
//!    `WORKDIR/runs/RUN/` gets the workflow and the sbatch script;
//! 2. submit: `sbatch --parsable` on the login node;
//! 3. watch: `squeue` there every second, and the run directory pulled back with
//!    `rsync --append` (the spool and logs only grow), so `atlas run` follows the spool here
//!    as on every other target; the pull after the job has left the queue is its last;
//! 4. cancel: `scancel --batch --signal=TERM` (the agent stops the phases and records the
//!    cancellation), `scancel` when asked again; collect: the job's output tail.
//!
//! The binary copied is this machine's: the login node must run the same architecture.

use std::time::{Duration, Instant};

use atlas_emit::{sbatch_script, SbatchOptions};

use crate::remote::{self, Ssh};
use crate::target::Named;
use crate::{Backend, BackendError, Collected, Figures, Job, JobEnd};

/// How often the job is looked at and the run directory pulled.
const POLL: Duration = Duration::from_secs(1);

/// Where runs go on the login node when the target names no `workdir`.
const DEFAULT_WORKDIR: &str = "/scratch/atlas";

/// Submits jobs over SSH to a Slurm login node.
pub(crate) struct SlurmSsh {
    target: Named,
    ssh: Ssh,
    workdir: String,
    remote_run: String,
    /// The run's directory here, where the remote one is pulled to.
    local_run: std::path::PathBuf,
    job_id: Option<String>,
    last_poll: Option<Instant>,
    /// The job's final state, once `watch` saw it end.
    end_state: Option<String>,
    /// How often cancel was asked (the second time cancels the whole job).
    cancels: u32,
}

impl SlurmSsh {
    pub(crate) fn new(target: Named, host: &str) -> Self {
        let workdir = target
            .target
            .workdir
            .clone()
            .unwrap_or_else(|| DEFAULT_WORKDIR.into());
        SlurmSsh {
            ssh: Ssh::new(host, target.target.ssh_config.as_deref()),
            target,
            workdir,
            remote_run: String::new(),
            local_run: Default::default(),
            job_id: None,
            last_poll: None,
            end_state: None,
            cancels: 0,
        }
    }

    /// The agent on the login node, copied there unless this build is there already.
    fn agent(&self, job: &Job<'_>, figures: &mut Figures) -> Result<String, BackendError> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(job.agent).map_err(|e| {
            BackendError::Unusable(format!("cannot read {}: {e}", job.agent.display()))
        })?;
        let id = format!("{:x}-{:x}-{:x}", meta.ino(), meta.size(), meta.mtime());
        let remote = format!("{}/bin/atlas-{id}", self.workdir);
        if self.ssh.output(&["test", "-x", &remote])?.status.success() {
            return Ok(remote);
        }
        let started = Instant::now();
        self.ssh.rsync(
            &[],
            &job.agent.display().to_string(),
            &self.ssh.remote(&remote),
        )?;
        figures.insert("agentCopySeconds".into(), started.elapsed().as_secs_f64());
        Ok(remote)
    }

    /// The project and inputs into `WORKDIR/projects/NAME/`: only what changed is sent.
    fn project(&self, job: &Job<'_>, figures: &mut Figures) -> Result<String, BackendError> {
        let remote = format!("{}/projects/{}", self.workdir, job.workflow.metadata.name);
        let started = Instant::now();
        let mut sent = 0.0;
        let from = format!("{}/", job.project_dir.display());
        let stats = self.ssh.rsync(
            &[
                "--exclude=/.git",
                "--exclude=/target",
                "--exclude=/node_modules",
                "--exclude=/data",
            ],
            &from,
            &self.ssh.remote(&format!("{remote}/")),
        )?;
        sent += remote::transferred(&stats);
        for input in job.inputs {
            let to = format!("{remote}/{}", input.path.trim_start_matches("./"));
            let parent = to
                .rsplit_once('/')
                .map_or(remote.as_str(), |(p, _)| p)
                .to_string();
            self.ssh.run(&["mkdir", "-p", &parent])?;
            let stats = self.ssh.rsync(
                &[],
                &input.source.display().to_string(),
                &self.ssh.remote(&to),
            )?;
            sent += remote::transferred(&stats);
        }
        figures.insert("projectBytes".into(), sent);
        figures.insert("projectCopySeconds".into(), started.elapsed().as_secs_f64());
        Ok(remote)
    }

    /// Pulls the run directory back (the spool and logs grow at their ends only).
    fn pull(&self) -> Result<(), BackendError> {
        self.ssh
            .rsync(
                &[
                    "--append",
                    "--inplace",
                    "--exclude=/job.sbatch",
                    "--exclude=/workflow.yaml",
                ],
                &self.ssh.remote(&format!("{}/", self.remote_run)),
                &format!("{}/", self.local_run.display()),
            )
            .map(|_| ())
    }

    /// Copies the agent and the project, writes the sbatch script and sends it with the
    /// workflow to the run's remote directory.
    fn stage(&mut self, job: &Job<'_>, mut figures: Figures) -> Result<Figures, BackendError> {
        let agent = self.agent(job, &mut figures)?;
        let project = self.project(job, &mut figures)?;
        let array = job.workflow.spec.scheduling.array.is_some();
        let remote_workflow = format!("{}/workflow.yaml", self.remote_run);
        let sampler = crate::host_sampler(job, &agent, std::path::Path::new(&self.remote_run));
        let options = SbatchOptions {
            host_sampler: sampler,
            command: std::iter::once(agent)
                .chain(crate::agent_args(
                    job,
                    std::path::Path::new(&remote_workflow),
                    std::path::Path::new(&self.remote_run),
                ))
                .chain(array.then(|| "--array-task".to_string()))
                .collect(),
            partition: self.target.target.partition.clone(),
            account: self.target.target.account.clone(),
            extra: self.target.target.sbatch_options.clone(),
            working_directory: project,
            output: format!(
                "{}/{}",
                self.remote_run,
                if array {
                    "slurm-%A_%a.out"
                } else {
                    "slurm-%j.out"
                }
            ),
        };
        let workflow = crate::without_gpus_if_none(&self.target, job);
        crate::with_target_environment(&self.target, job, &workflow)?;
        let script = sbatch_script(&workflow, &options)
            .map_err(|e| BackendError::Rejected(format!("cannot write the sbatch script: {e}")))?;
        let path = job.run_dir.join("job.sbatch");
        std::fs::write(&path, script)
            .map_err(|e| BackendError::Unusable(format!("cannot write {}: {e}", path.display())))?;
        for file in [&path, &job.workflow_file.to_path_buf()] {
            self.ssh.rsync(
                &[],
                &file.display().to_string(),
                &self.ssh.remote(&format!("{}/", self.remote_run)),
            )?;
        }
        Ok(figures)
    }
}

impl Backend for SlurmSsh {
    fn agent_per_array_task(&self) -> bool {
        true
    }

    fn prepare(&mut self, job: &Job<'_>) -> Result<Figures, BackendError> {
        for tool in ["ssh", "rsync"] {
            if !crate::process::installed(tool) {
                return Err(BackendError::Unusable(format!(
                    "{tool} is not installed here (Debian: openssh-client rsync)"
                )));
            }
        }
        let started = Instant::now();
        self.remote_run = format!("{}/runs/{}", self.workdir, job.run_id);
        self.local_run = job.run_dir.to_path_buf();
        let found = self.ssh.run(&[
            "sh",
            "-c",
            "for t in sbatch squeue scancel; do command -v \"$t\" || exit 1; done",
        ]);
        match found {
            Ok(found) if found.lines().count() == 3 => {}
            Ok(_) | Err(BackendError::Rejected(_)) => {
                return Err(BackendError::Unusable(format!(
                    "{} has no sbatch, squeue or scancel on its PATH (is it a Slurm login node?)",
                    self.ssh.host
                )))
            }
            Err(e) => return Err(e),
        }
        let figures = Figures::from([(
            "sshConnectSeconds".to_string(),
            started.elapsed().as_secs_f64(),
        )]);
        self.ssh.run(&[
            "mkdir",
            "-p",
            &format!("{}/bin", self.workdir),
            &format!("{}/projects/{}", self.workdir, job.workflow.metadata.name),
            &self.remote_run,
        ])?;
        match self.stage(job, figures) {
            Ok(figures) => Ok(figures),
            Err(e) => {
                // Nothing half-copied stays behind (the agent and project copies are written
                // under temporary names by rsync and are complete or absent).
                let _ = self.ssh.run(&["rm", "-rf", "--", &self.remote_run]);
                Err(e)
            }
        }
    }

    fn submit(&mut self, _job: &Job<'_>) -> Result<String, BackendError> {
        let script = format!("{}/job.sbatch", self.remote_run);
        // One attempt per run (see the local Slurm target): never requeued.
        let out = self
            .ssh
            .output(&["sbatch", "--parsable", "--no-requeue", &script])?;
        if !out.status.success() {
            return Err(self.ssh.failure(&["sbatch"], &out));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let job_id = stdout
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        self.job_id = Some(job_id.clone());
        Ok(format!("{}:{job_id}", self.ssh.host))
    }

    fn watch(&mut self) -> Option<JobEnd> {
        let job_id = self.job_id.clone()?;
        if self.last_poll.is_some_and(|t| t.elapsed() < POLL) {
            return None;
        }
        self.last_poll = Some(Instant::now());
        let listed = self
            .ssh
            .output(&["squeue", "-h", "-j", &job_id, "-o", "%T"]);
        // What the agent wrote so far comes here (best effort while the job runs: a failed
        // pull is tried again next second; the last one, at the end, says when it fails).
        let pulled = self.pull();
        match listed {
            Ok(out) if out.status.success() && !out.stdout.trim_ascii().is_empty() => None,
            _ if pulled.is_err() => Some(JobEnd {
                state: format!(
                    "ended, but its run directory could not be pulled back: {}",
                    pulled.err().map(|e| e.to_string()).unwrap_or_default()
                ),
            }),
            Ok(out) if out.status.code() == Some(255) => Some(JobEnd {
                state: format!("lost ({})", self.ssh.failure(&["squeue"], &out)),
            }),
            _ => {
                let state = self
                    .ssh
                    .run(&["scontrol", "show", "job", &job_id, "-o"])
                    .ok()
                    .and_then(|o| crate::slurm::job_state(&o))
                    .unwrap_or_else(|| "UNKNOWN".into());
                self.end_state = Some(state.clone());
                Some(JobEnd { state })
            }
        }
    }

    fn cancel(&mut self) -> Result<(), BackendError> {
        let Some(job_id) = self.job_id.clone() else {
            return Ok(());
        };
        // First only the batch script's process (the agent, or the shell that passes it on):
        // the agent stops the phases and records the cancellation. Asked again, the whole job.
        if self.cancels == 0 {
            self.ssh
                .run(&["scancel", "--batch", "--signal=TERM", &job_id])?;
        } else {
            self.ssh.run(&["scancel", &job_id])?;
        }
        self.cancels += 1;
        Ok(())
    }

    fn collect(&mut self, job: &Job<'_>) -> Collected {
        let mut collected = crate::slurm::collected(self.job_id.as_deref(), job);
        if let (Some(id), Some(state)) = (&self.job_id, &self.end_state) {
            let query = |args: &[&str]| self.ssh.run(args).ok();
            collected.failure = crate::slurm::scheduler_failure(id, state, &query);
        }
        collected
    }
}

/// `atlas targets check` for a login node: the Slurm version, the partitions with their idle
/// nodes and CPUs, and the GPUs (generic resources) they offer.
pub(crate) fn check(target: &Named, host: &str) -> (bool, String) {
    let ssh = Ssh::new(host, target.target.ssh_config.as_deref());
    let version = match ssh.run(&["sinfo", "--version"]) {
        Ok(version) => version,
        Err(e) => return (false, e.to_string()),
    };
    let table = match ssh.run(&["sinfo", "-h", "-o", "%P|%a|%D|%t|%C|%G"]) {
        Ok(table) => table,
        Err(e) => return (false, e.to_string()),
    };
    let wanted = target.target.partition.as_deref();
    let mut parts = Vec::new();
    let mut usable = false;
    for row in table.lines().map(|l| l.split('|').collect::<Vec<_>>()) {
        let [partition, avail, nodes, state, cpus, gres] = row[..] else {
            continue;
        };
        let partition = partition.trim_end_matches('*');
        if wanted.is_some_and(|w| w != partition) {
            continue;
        }
        usable |= avail == "up";
        let idle_cpus = cpus.split('/').nth(1).unwrap_or("?");
        let gpus = if gres == "(null)" {
            "no GPUs".to_string()
        } else {
            format!("GPUs {gres}")
        };
        parts.push(format!(
            "{partition} {avail}: {nodes} node(s) {state}, {idle_cpus} CPUs idle, {gpus}"
        ));
    }
    if parts.is_empty() {
        return (
            false,
            format!(
                "{host}: {version}, partition `{}` does not exist",
                wanted.unwrap_or("?")
            ),
        );
    }
    (
        usable,
        format!("{host} over ssh: {version}; {}", parts.join("; ")),
    )
}
