//! What the store returns: runs, phases and their summaries.

use std::collections::BTreeMap;

use atlas_spec::record::{PhaseState, RunStatus};
use serde::{Deserialize, Serialize};

/// A run as listed. (Its `Default` is for tests that build one: a submitted run of nothing, its
/// labels `null`.)
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRow {
    pub id: String,
    pub experiment_id: Option<String>,
    pub workflow: String,
    pub target: String,
    pub repetition: i64,
    pub status: RunStatus,
    pub cause: Option<String>,
    pub submitted_at: f64,
    pub started_at: Option<f64>,
    pub wall_seconds: Option<f64>,
    pub host: Option<String>,
    pub source: Option<String>,
    pub gpu: Option<String>,
    pub run_dir: Option<String>,
    pub labels: serde_json::Value,
    /// CPU seconds the agent itself used: its overhead.
    pub agent_cpu_seconds: Option<f64>,
    /// The job's id with its scheduler or runtime (Slurm job id, podman container name).
    pub scheduler_id: Option<String>,
    /// Figures of the launch itself, by name (`imageBuildSeconds`, `stageInSeconds`,
    /// `stageInBytes`, `containerStartSeconds`, …).
    pub figures: BTreeMap<String, f64>,
    /// The Atlas version of the agent that ran the job.
    pub agent_version: Option<String>,
    /// The node's type as the agent saw it (CPU model, CPUs, memory).
    pub node: Option<String>,
    /// The user who started the run.
    pub owner: Option<String>,
    /// The tenant (team) the run belongs to: its members see it. `None`: the owner's alone.
    pub tenant: Option<String>,
    /// Each time the run was frozen (a window's close, `atlas windows freeze`), in order.
    pub windows: Vec<WindowRow>,
    /// Where the job's working directory and inputs lay, as its agent saw them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<atlas_spec::record::StoragePlace>,
}

/// One freeze of a run, and its wake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowRow {
    /// The phase that was running.
    pub phase: String,
    /// When it was frozen (Unix seconds).
    pub frozen_at: f64,
    /// A checkpoint landed before the job was stopped.
    pub clean: bool,
    pub checkpoint_bytes: Option<u64>,
    /// Seconds from the signal to the checkpoint (or to the grace's end).
    pub quiesce_seconds: f64,
    /// Seconds from the signal to the job's processes gone.
    pub stop_seconds: f64,
    /// Why it was not clean.
    pub reason: Option<String>,
    /// Seconds of work the freeze lost (after the checkpoint, or the whole stretch without
    /// one); absent in records of agents before it was measured.
    #[serde(default)]
    pub lost_seconds: Option<f64>,
    /// When it was woken (Unix seconds), and how long it was frozen.
    pub woken_at: Option<f64>,
    pub frozen_seconds: Option<f64>,
}

/// A phase with what was measured in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseRow {
    pub name: String,
    pub position: Option<i64>,
    pub status: PhaseState,
    pub started_at: Option<f64>,
    pub wall_seconds: Option<f64>,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub cause: Option<String>,
    pub cpu_user_seconds: Option<f64>,
    pub cpu_system_seconds: Option<f64>,
    /// Largest single-process RSS (kernel rusage).
    pub max_rss_bytes: Option<i64>,
    /// Largest sampled RSS of all the job's processes together.
    pub peak_job_rss_bytes: Option<i64>,
    /// Bytes the job's processes read from and wrote to storage (`read_bytes`/`write_bytes`
    /// over the samples: page-cache misses and write-back, not the job's data volume).
    pub read_bytes: Option<i64>,
    pub write_bytes: Option<i64>,
    /// What the job's processes read and wrote through system calls: its data volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io: Option<atlas_spec::record::PhaseIo>,
    pub samples: i64,
    /// The most processes of the job at once, and when that was first sampled (unix time).
    pub peak_processes: Option<i64>,
    pub peak_processes_at: Option<f64>,
    pub metrics: Vec<MetricSummary>,
    /// GPU figures, when the phase's samples had GPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuSummary>,
}

/// The GPUs of one phase, over its samples.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuSummary {
    /// Devices seen.
    pub devices: u32,
    /// Highest utilisation of any device, percent.
    pub peak_utilisation_percent: u32,
    /// Mean utilisation over samples and devices, percent.
    pub mean_utilisation_percent: f64,
    /// Highest device memory in use (all processes), bytes.
    pub peak_memory_bytes: u64,
    /// Highest GPU memory of the job's own processes, bytes.
    pub peak_job_memory_bytes: u64,
    /// Energy used over the phase (counter difference, all devices), joules.
    pub energy_joules: Option<f64>,
}

/// One app metric of a phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSummary {
    pub name: String,
    pub count: i64,
    pub first: f64,
    pub last: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

/// One point of a run's samples over time (see `Store::series`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesPoint {
    /// Unix time, seconds.
    pub time: f64,
    /// CPU seconds of the job's processes so far (per phase: it restarts with each phase).
    pub cpu_seconds: f64,
    /// RSS of the job's processes, bytes.
    pub rss_bytes: i64,
    /// SM activity of the first GPU, percent, when there is one.
    pub gpu_percent: Option<f64>,
    /// The phase the sample belongs to.
    pub phase: Option<String>,
}

/// A run with its phases.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunRow,
    pub phases: Vec<PhaseRow>,
    /// The hosts of a multi-node job whose samplers sent samples (none for one host).
    #[serde(default)]
    pub hosts: Vec<HostRow>,
}

/// One host of a multi-node job, from its sampler's `hostSample` records.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostRow {
    pub host: String,
    /// Samples it sent.
    pub samples: i64,
    /// The most CPU seconds (user + system) its share of the job had used.
    pub cpu_seconds: Option<f64>,
    /// The most resident memory of its share of the job, bytes.
    pub peak_rss_bytes: Option<i64>,
    /// The most processes of the job it held at once.
    pub peak_processes: Option<i64>,
}

/// An experiment: runs of one workflow on several targets, with repetitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentRow {
    pub id: String,
    pub workflow: String,
    pub created_at: f64,
    pub labels: serde_json::Value,
    /// Runs in the experiment.
    pub runs: i64,
    /// Runs that succeeded.
    pub succeeded: i64,
    /// Runs that failed.
    pub failed: i64,
    /// Targets, comma-separated, in first-run order.
    pub targets: String,
    /// What differs between the runs other than the target (the like-for-like check).
    pub differences: Vec<String>,
}

/// An experiment with its runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentDetail {
    #[serde(flatten)]
    pub experiment: ExperimentRow,
    #[serde(rename = "runList")]
    pub run_list: Vec<RunRow>,
}

/// A new run, before its agent reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewRun {
    pub id: String,
    /// The workflow the run was started with, as YAML (what its run directory's
    /// `workflow.yaml` holds), kept so a report does not need the run directory.
    pub spec: Option<String>,
    /// The inputs as checked before the run (JSON).
    pub inputs: Option<serde_json::Value>,
    pub experiment_id: Option<String>,
    pub workflow: String,
    pub target: String,
    pub repetition: i64,
    pub run_dir: String,
    pub labels: serde_json::Value,
    pub submitted_at: f64,
    /// The user the run belongs to.
    pub owner: Option<String>,
    /// The tenant it belongs to (its members see it); `None`: the owner's alone.
    pub tenant: Option<String>,
    /// The cores and GPUs it asks for, in all (a tenant's hour quotas count them).
    pub cores: f64,
    pub gpus: f64,
}

/// What a run was started with ([`NewRun::spec`], [`NewRun::inputs`]); `None` for runs
/// registered before the store kept them (schema 7) or by callers that had none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSpec {
    /// The workflow, as YAML.
    pub workflow: Option<String>,
    /// The checked inputs, as JSON.
    pub inputs: Option<serde_json::Value>,
}

/// What one ingest call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    /// Records that were new.
    pub inserted: u64,
    /// Records already in the store (a replay).
    pub duplicates: u64,
}

/// A user as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRow {
    pub name: String,
    pub created_at: f64,
}

/// One app metric value as the job printed it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricPoint {
    pub seq: i64,
    pub time: f64,
    pub phase: String,
    pub name: String,
    pub value: f64,
}

/// Which runs `Store::runs_filtered` lists (newest first); every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    /// Only the runs this user sees: their tenants' and their own of no tenant.
    pub visible_to: Option<String>,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs with every one of these labels (key, value).
    pub labels: Vec<(String, String)>,
    /// Only runs submitted at or after this time (Unix seconds).
    pub submitted_from: Option<f64>,
    /// Only runs submitted before this time (Unix seconds).
    pub submitted_before: Option<f64>,
    /// At most this many.
    pub limit: Option<usize>,
}

/// A node's average use over one time bucket (the dashboard's heat map).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeBucket {
    pub target: String,
    pub node: String,
    /// The bucket's start (Unix seconds).
    pub start: f64,
    /// Average cores in use over the bucket's samples.
    pub cores: f64,
    /// The node's cores in all, when its agent said.
    pub capacity: Option<f64>,
}
