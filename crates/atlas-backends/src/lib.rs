//! Backends: the places a workflow runs (this machine, a Slurm cluster, podman containers, a
//! Kubernetes cluster).
//!
//! Every backend starts the same `atlas agent` inside the job, so phases, samples and causes are
//! recorded the same way everywhere; the agent writes its spool into the run directory, which
//! the caller follows into the store. A backend only starts, watches, cancels and cleans up:
//!
//! 1. [`Backend::prepare`] checks the tools and makes what the job needs (an sbatch script,
//!    an image, the staged inputs), returning figures such as the image build time;
//! 2. [`Backend::submit`] starts the job and returns its id with the scheduler or runtime;
//! 3. [`Backend::watch`] says, without blocking, whether the job has ended;
//! 4. [`Backend::cancel`] asks the job to stop (its agent records the run as cancelled);
//! 5. [`Backend::collect`] gathers what the job left outside the spool (the scheduler's output).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use atlas_spec::Workflow;

pub mod alike;
pub mod check;
pub mod data;
pub mod data_dir;
mod kubernetes;
mod local;
pub mod nodes;
mod podman;
mod podman_kube;
mod podman_nodes;
pub mod podman_window;
pub use kubernetes::window as k8s_window;
mod process;
mod remote;
pub mod schedule;
mod slurm;
pub mod slurm_place;
mod slurm_ssh;
pub mod target;

pub use data::VerifiedInput;
pub use target::{Kind, Named, Target};

/// Everything a backend needs to know about one run.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// The run's id (`r-3f9a1c2e`).
    pub run_id: &'a str,
    /// The run's directory on this machine: the agent's spool, logs, scripts.
    pub run_dir: &'a Path,
    /// The workflow as it will run.
    pub workflow: &'a Workflow,
    /// The workflow file the agent reads (inside `run_dir`).
    pub workflow_file: &'a Path,
    /// The project directory (where `atlas run` was started): the job's working directory.
    pub project_dir: &'a Path,
    /// The agent's sampling interval.
    pub interval: Duration,
    /// The atlas binary that runs as the agent.
    pub agent: &'a Path,
    /// The workflow's inputs, checked before the run.
    pub inputs: &'a [VerifiedInput],
    /// Where a backend says what the user should know (a GPU request left out, an image being
    /// built): the caller shows them; a library prints nothing.
    pub notes: &'a Notes,
}

/// What a backend has to say while it prepares or submits a job, in order.
#[derive(Debug, Default)]
pub struct Notes(std::sync::Mutex<Vec<String>>);

impl Notes {
    /// Adds a note.
    pub fn say(&self, note: impl Into<String>) {
        if let Ok(mut notes) = self.0.lock() {
            notes.push(note.into());
        }
    }

    /// The notes so far, leaving none.
    pub fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }
}

/// Figures of a launch, by name (`imageBuildSeconds`, `stageInSeconds`, …).
pub type Figures = BTreeMap<String, f64>;

/// How a job ended, as far as its scheduler or runtime says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEnd {
    /// `exit 0`, `COMPLETED`, `CANCELLED`, `FAILED`, …
    pub state: String,
}

/// Why a job could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The scheduler or runtime refused this job (its message): the run fails, the
    /// experiment goes on.
    #[error("{0}")]
    Rejected(String),
    /// The target cannot be used from here (a tool is missing, a daemon is down): the run
    /// fails with this cause and `atlas run` exits 3.
    #[error("{0}")]
    Unusable(String),
}

/// What the job left outside the spool.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collected {
    /// The last lines of the scheduler's or container's own output, when there were any.
    pub output_tail: Option<String>,
    /// Figures known only after the job (Kubernetes: `queueWaitSeconds` = pod scheduled −
    /// created, `podStartSeconds` = container started − scheduled).
    pub figures: Figures,
    /// What the scheduler says ended the job when the job did not end by itself (a node that
    /// failed, named; the time limit; preemption), for the run's cause.
    pub failure: Option<String>,
}

/// One place to run jobs; see the crate documentation for the order of the calls.
pub trait Backend: Send {
    /// Checks the tools and makes what the job needs before it is submitted.
    fn prepare(&mut self, job: &Job<'_>) -> Result<Figures, BackendError>;
    /// Starts the job; its id with the scheduler or runtime.
    fn submit(&mut self, job: &Job<'_>) -> Result<String, BackendError>;
    /// `Some` once the job has ended; never blocks.
    fn watch(&mut self) -> Option<JobEnd>;
    /// Asks the job to stop; its agent records the run as cancelled. An error says why the
    /// request could not be made (the job may then run on).
    fn cancel(&mut self) -> Result<(), BackendError>;
    /// After the end (called once): what the job left outside the spool.
    fn collect(&mut self, job: &Job<'_>) -> Collected;
    /// Whether an array workflow runs one agent per task here (a Slurm array, a Kubernetes
    /// Indexed Job), each writing `RUN_DIR/tasks/N/` as run `RUN-tN`; elsewhere the workflow
    /// runs once.
    fn agent_per_array_task(&self) -> bool {
        false
    }
}

/// The backend for a target.
pub fn backend(target: &Named) -> Box<dyn Backend> {
    match target.target.kind {
        Kind::Local => Box::new(local::Local::new(target.clone())),
        Kind::Slurm => match target.target.host.as_deref() {
            Some(host) => Box::new(slurm_ssh::SlurmSsh::new(target.clone(), host)),
            None => Box::new(slurm::Slurm::new(target.clone())),
        },
        Kind::Podman => Box::new(podman::Podman::new(target.clone())),
        Kind::PodmanKube => Box::new(podman_kube::PodmanKube::new(target.clone())),
        Kind::Kubernetes => Box::new(kubernetes::Kubernetes::new(target.clone())),
    }
}

/// The version of the API server a kubeconfig context names (`v1.20.2`): `atlas emit k8s
/// --context` asks it to emit what that server supports.
pub fn kubernetes_version(
    context: &str,
    kubeconfig: Option<&Path>,
) -> Result<String, BackendError> {
    let mut target = Target::local();
    target.kind = Kind::Kubernetes;
    target.context = Some(context.to_string());
    target.kubeconfig = kubeconfig.map(Path::to_path_buf);
    kubernetes::version(&Named {
        name: format!("context {context}"),
        target,
        source: "--context".into(),
    })
}

/// The agent's command line for `job`, after the program: the same on every backend.
pub(crate) fn agent_args(job: &Job<'_>, workflow_file: &Path, run_dir: &Path) -> Vec<String> {
    vec![
        "agent".into(),
        workflow_file.display().to_string(),
        "--run-id".into(),
        job.run_id.into(),
        "--run-dir".into(),
        run_dir.display().to_string(),
        "--interval".into(),
        format!("{}ms", job.interval.as_millis()),
        "--quiet".into(),
    ]
}

/// The host sampler's command for a multi-node job that is not an array (`atlas agent-host`
/// on every node, beside the main agent), else none.
pub(crate) fn host_sampler(job: &Job<'_>, agent: &str, run_dir: &Path) -> Option<Vec<String>> {
    let multi = job.workflow.spec.resources.nodes.is_some_and(|n| n > 1);
    (multi && job.workflow.spec.scheduling.array.is_none()).then(|| {
        vec![
            agent.to_string(),
            "agent-host".into(),
            "--run-id".into(),
            job.run_id.into(),
            "--run-dir".into(),
            run_dir.display().to_string(),
            "--interval".into(),
            format!("{}ms", job.interval.as_millis()),
        ]
    })
}

/// The workflow as it runs on the target ([`alike::effective_workflow`]); says on stderr when
/// a GPU request is left out because the target has none.
pub(crate) fn without_gpus_if_none(target: &Named, job: &Job<'_>) -> Workflow {
    let r = &job.workflow.spec.resources;
    if !target.target.gpus && r.gpus_per_node.or(r.gpus_per_task).or(r.gpus).is_some() {
        job.notes.say(format!(
            "target `{}` has no GPUs (gpus = false): the job's GPU request is left out",
            target.name
        ));
    }
    alike::effective_workflow(target, job.workflow)
}

/// On a target with an `environment`, the run's workflow file (which the agent reads and whose
/// variables it exports) becomes the workflow as it runs there, with the target's variables.
pub(crate) fn with_target_environment(
    target: &Named,
    job: &Job<'_>,
    workflow: &Workflow,
) -> Result<(), BackendError> {
    if target.target.environment.is_empty() {
        return Ok(());
    }
    std::fs::write(job.workflow_file, atlas_spec::to_yaml(workflow)).map_err(|e| {
        BackendError::Unusable(format!("cannot write {}: {e}", job.workflow_file.display()))
    })
}

/// The last `lines` lines of a file, when it has any.
pub(crate) fn tail(path: &Path, lines: usize) -> Option<String> {
    let text = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    (!all.is_empty()).then(|| all[all.len().saturating_sub(lines)..].join("\n"))
}
