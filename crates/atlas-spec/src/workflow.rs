//! The `Workflow` document (`apiVersion: atlas.dev/v1alpha1`, `kind: Workflow`) and its parts.
//!
//! Field names are camelCase in YAML/JSON, as in Kubernetes. Every optional field is omitted
//! from output when unset, so an imported workflow shows exactly what the job script said.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ArraySpec, Duration, Quantity};

/// The only `apiVersion` this version of Atlas reads and writes.
pub const API_VERSION: &str = "atlas.dev/v1alpha1";

/// `apiVersion` of a Workflow; one value today, an enum so a wrong one is reported with its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    /// `atlas.dev/v1alpha1`
    #[default]
    #[serde(rename = "atlas.dev/v1alpha1")]
    V1Alpha1,
}

/// `kind` of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum Kind {
    /// A batch workflow.
    #[default]
    Workflow,
}

/// A portable batch workflow: what to run, with which resources, under which scheduling rules.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workflow {
    /// Always `atlas.dev/v1alpha1`.
    pub api_version: ApiVersion,
    /// Always `Workflow`.
    pub kind: Kind,
    /// Name, labels and annotations.
    pub metadata: Metadata,
    /// What the workflow asks for and runs.
    pub spec: WorkflowSpec,
}

impl Workflow {
    /// The workflow at another node count (a scaling experiment's size): `nodes` set, and the
    /// total of tasks, when it is given, kept at the same tasks per node.
    pub fn with_nodes(&self, nodes: u32) -> Workflow {
        let mut workflow = self.clone();
        let r = &mut workflow.spec.resources;
        let before = r.nodes.unwrap_or(1).max(1);
        if let Some(tasks) = r.tasks {
            let per_node = *r.tasks_per_node.get_or_insert(tasks.div_ceil(before));
            r.tasks = Some(per_node.saturating_mul(nodes));
        }
        r.nodes = Some(nodes);
        workflow
    }

    /// The parts of the workflow that must match for runs to be compared like for like, each
    /// as one comparable text: commands (the phases' command lines), resources, environment,
    /// image. Shared by the check before an experiment and the one in the comparison report.
    pub fn comparable_aspects(&self) -> [(&'static str, String); 4] {
        let commands: Vec<&str> = self.spec.phases.iter().map(|p| p.run.as_str()).collect();
        [
            ("commands", commands.join(" ; ")),
            ("resources", compact_json(&self.spec.resources)),
            ("environment", compact_json(&self.spec.environment)),
            ("image", compact_json(&self.spec.image)),
        ]
    }
}

fn compact_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Kubernetes-style object metadata.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// A DNS-1123 label: lowercase letters, digits and `-`, at most 63 characters.
    pub name: String,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations; the importer keeps the job's original name in
    /// `atlas.dev/original-name` when it had to change it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The body of a Workflow.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Nodes, tasks, CPUs, GPUs, memory, walltime.
    #[serde(default)]
    pub resources: Resources,
    /// Further components of a heterogeneous job (Slurm `hetjob`), after the first one,
    /// which is `resources`/`scheduling.queue`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub het_components: Vec<HetComponent>,
    /// Queue, account, array, dependencies, mail, output paths.
    #[serde(default)]
    pub scheduling: Scheduling,
    /// How the job starts its parallel tasks (`mpirun`, `torchrun`, …).
    #[serde(default)]
    pub launcher: Launcher,
    /// Modules, conda/venv, environment variables.
    #[serde(default)]
    pub environment: Environment,
    /// The steps of the job, run in order.
    #[serde(default)]
    pub phases: Vec<Phase>,
    /// Inputs and outputs to stage.
    #[serde(default, skip_serializing_if = "Data::is_empty")]
    pub data: Data,
    /// The container image to build or use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    /// How the job saves its state when asked to stop for a while (an after-hours window's
    /// close, `atlas windows freeze`), and how to tell that it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// References and thresholds, per target or `*` for every target, as ReFrame users set
    /// them: `accuracy >= 0.9`, `wall <= 60s ±10%` (docs/compare.md). `atlas compare` reports
    /// pass or fail, and `--check` exits 1 on a failure; atlas.toml's `checks` add to them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, Vec<String>>,
}

/// How a job saves its state on request: the signal it reacts to, the file it writes, how long
/// it may take, and an optional command that tells a usable checkpoint from a broken one. A
/// checkpoint has landed when the file exists, is not empty, was written after the signal, and
/// the command (if any) exits 0. The job resumes from it when `ATLAS_RESUME=1` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checkpoint {
    /// The signal that asks the job to save its state: `USR1`, `USR2`, `TERM`, `INT`, `HUP`
    /// (default `USR1`).
    #[serde(default = "default_checkpoint_signal")]
    pub signal: String,
    /// The checkpoint file, relative to the phase's working directory (or absolute).
    pub path: String,
    /// How long the job has to write it (default 2 minutes), after which it is stopped anyway
    /// (`frozen without checkpoint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<Duration>,
    /// A command run in the phase's working directory that exits 0 for a usable checkpoint
    /// (`ATLAS_CHECKPOINT` holds its path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<String>,
}

fn default_checkpoint_signal() -> String {
    "USR1".to_string()
}

/// The signals a checkpoint may be asked with, by name and number (Linux).
pub const CHECKPOINT_SIGNALS: &[(&str, i32)] = &[
    ("USR1", 10),
    ("USR2", 12),
    ("TERM", 15),
    ("INT", 2),
    ("HUP", 1),
];

impl Checkpoint {
    /// The signal's number, when its name is one of [`CHECKPOINT_SIGNALS`] (`SIG` prefix
    /// allowed).
    pub fn signal_number(&self) -> Option<i32> {
        let name = self.signal.strip_prefix("SIG").unwrap_or(&self.signal);
        CHECKPOINT_SIGNALS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, number)| *number)
    }

    /// The grace period (default 2 minutes).
    pub fn grace(&self) -> std::time::Duration {
        self.grace
            .map(std::time::Duration::from)
            .unwrap_or(std::time::Duration::from_secs(120))
    }
}

/// Resources requested for the job (or for the first component of a heterogeneous job).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// Number of nodes (hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<u32>,
    /// Total number of tasks (MPI ranks, LSF slots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u32>,
    /// Tasks on each node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_per_node: Option<u32>,
    /// CPU cores for each task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_per_task: Option<u32>,
    /// GPUs on each node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_per_node: Option<u32>,
    /// GPUs for each task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_per_task: Option<u32>,
    /// GPUs for the whole job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// GPU model as the site names it (`v100`, `TeslaV100_SXM2_32GB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_type: Option<String>,
    /// Memory on each node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_per_node: Option<Quantity>,
    /// Memory for each allocated CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_per_cpu: Option<Quantity>,
    /// Host memory for each allocated GPU (Slurm `--mem-per-gpu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_per_gpu: Option<Quantity>,
    /// Longest time the job may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walltime: Option<Duration>,
    /// Whole nodes, not shared with other jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<bool>,
    /// Node features the job requires (Slurm `--constraint`, LSF `select[]`, Torque properties).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
}

/// What a job asks for in all, from its [`Resources`] as the schedulers count them: nodes (1
/// when not said), tasks (`tasks`, else tasks per node × nodes, else 1), cores (tasks × CPUs
/// per task), GPUs (for the job, else per node × nodes, else per task × tasks) and memory.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Totals {
    pub nodes: u32,
    pub tasks: u32,
    pub cores: u32,
    pub gpus: u32,
    /// Bytes, when the job said (per node × nodes, else per CPU × cores).
    pub memory_bytes: Option<u64>,
}

impl Resources {
    /// What the job asks for in all.
    pub fn totals(&self) -> Totals {
        let nodes = self.nodes.unwrap_or(1).max(1);
        let tasks = self
            .tasks
            .or(self.tasks_per_node.map(|t| t.saturating_mul(nodes)))
            .unwrap_or(1)
            .max(1);
        let cores = tasks.saturating_mul(self.cpus_per_task.unwrap_or(1).max(1));
        let memory_bytes = self
            .memory_per_node
            .map(|m| m.bytes().saturating_mul(u64::from(nodes)))
            .or_else(|| {
                self.memory_per_cpu
                    .map(|m| m.bytes().saturating_mul(u64::from(cores)))
            });
        let gpus = self
            .gpus
            .or(self.gpus_per_node.map(|g| g.saturating_mul(nodes)))
            .or(self.gpus_per_task.map(|g| g.saturating_mul(tasks)))
            .unwrap_or(0);
        Totals {
            nodes,
            tasks,
            cores,
            gpus,
            memory_bytes,
        }
    }
}

/// One further component of a heterogeneous job.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HetComponent {
    /// The component's queue (partition), when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The component's resources.
    #[serde(default)]
    pub resources: Resources,
}

/// Where and when the job may run, and what the scheduler does around it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scheduling {
    /// Queue (LSF, PBS) or partition (Slurm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Account or project charged for the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Quality of service (Slurm `--qos`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// Advance reservation to run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<String>,
    /// Job array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array: Option<ArraySpec>,
    /// Jobs this one waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    /// Whether all dependencies must hold (the default) or any one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency_mode: Option<DependencyMode>,
    /// E-mail notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<Mail>,
    /// Standard output path; placeholders: `{jobId}`, `{arrayJobId}`, `{arrayIndex}`,
    /// `{jobName}`, `{user}`, `{node}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Standard error path (same placeholders); unset means merged into `output`
    /// when the scheduler does that by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Directory the job starts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// Whether the job may be stopped and started again (Slurm `--requeue`/`--no-requeue`,
    /// LSF `-r`/`-rn`, PBS `-r y|n`): `false` keeps after-hours windows from freezing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeue: Option<bool>,
    /// Earliest start time, as the script wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub begin: Option<String>,
}

/// When a dependency is satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DependencyCondition {
    /// The other job started (Slurm `after`, LSF `started`).
    After,
    /// The other job succeeded (`afterok`, LSF `done`).
    AfterOk,
    /// The other job failed (`afternotok`, LSF `exit`).
    AfterNotOk,
    /// The other job ended in any way (`afterany`, LSF `ended`).
    AfterAny,
    /// Array task N waits for task N of the other array (Slurm `aftercorr`).
    AfterCorr,
    /// Only one job of this name and user at a time (Slurm `singleton`).
    Singleton,
}

/// One dependency on other jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dependency {
    /// What must have happened to the jobs.
    pub condition: DependencyCondition,
    /// Job ids or names (empty for `singleton`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<String>,
}

/// How several dependencies combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DependencyMode {
    /// Every dependency must hold.
    All,
    /// One dependency is enough.
    Any,
}

/// E-mail notifications.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mail {
    /// Addresses or user names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Events that send a mail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<MailEvent>,
}

/// A job event that can send a mail.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum MailEvent {
    /// The job started.
    Begin,
    /// The job ended.
    End,
    /// The job failed or was aborted.
    Fail,
    /// The job was requeued.
    Requeue,
    /// The job neared or reached its time limit.
    TimeLimit,
}

/// How the job starts its parallel tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LauncherKind {
    /// A single process, no parallel launcher.
    #[default]
    None,
    /// Slurm's `srun`.
    Srun,
    /// `mpirun` / `mpiexec`.
    Mpirun,
    /// IBM's `jsrun` (LSF CSM, Summit).
    Jsrun,
    /// `torchrun` or `python -m torch.distributed.run|launch`.
    Torchrun,
    /// DeepSpeed's launcher.
    Deepspeed,
    /// Hugging Face `accelerate launch`.
    Accelerate,
    /// Horovod's `horovodrun`.
    Horovodrun,
    /// IBM's `ddlrun` (PowerAI / WMLCE).
    Ddlrun,
    /// Cray's `aprun`.
    Aprun,
}

/// The launcher and its options (not the program it launches).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Launcher {
    /// Which launcher.
    #[serde(default)]
    pub kind: LauncherKind,
    /// The launcher's own options, verbatim (`-np`, `4`, `--hostfile`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The whole command line the launcher was found on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// 1-based line of that command in the original script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

/// The software environment the job sets up.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Environment {
    /// Environment modules loaded, in order (`module load cuda/10.2`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<String>,
    /// Conda environment activated (name or path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conda: Option<String>,
    /// Python virtual environment activated (path of the venv).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venv: Option<String>,
    /// Environment variables set for the job, values verbatim (unexpanded).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// Whether the submitting shell's whole environment is passed to the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_all: Option<bool>,
    /// Shell commands run before every phase, in the same shell (variables, `conda activate`):
    /// the lines of an imported script before its first `# atlas: phase` marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
    /// Scheduler-provided variables the job reads (`SLURM_ARRAY_TASK_ID`, `LSB_DJOB_HOSTFILE`…),
    /// which every place the workflow runs must provide.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduler_variables: Vec<String>,
}

/// One step of the workflow, run with `bash -c`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Phase {
    /// Short name (`preprocess`, `train`, `predict`).
    pub name: String,
    /// Shell commands, verbatim.
    pub run: String,
    /// Interpreter from the script's `#!` line, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// Directory to run in, when it differs from the job's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// Regular expressions with named groups; each match becomes a metric of this phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
    /// Keep going with later phases when this one fails.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_error: bool,
    /// Lines of the original script the commands came from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_lines: Vec<LineRange>,
}

/// An inclusive range of 1-based lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LineRange {
    /// First line.
    pub start: u32,
    /// Last line (inclusive).
    pub end: u32,
}

/// Data the job reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Data {
    /// Files or directories copied in before the job (LSF `-f "local > remote"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<DataItem>,
    /// Files or directories copied out after the job (LSF `-f "local < remote"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<DataItem>,
}

impl Data {
    /// True when there is nothing to stage.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty() && self.outputs.is_empty()
    }
}

/// One thing to stage.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataItem {
    /// Where the data lives where the job is submitted.
    pub source: String,
    /// Where the job sees it.
    pub path: String,
    /// The expected SHA-256 of the file (64 hex digits), checked before the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The expected size (bytes, or a quantity like 150Mi), checked before the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
}

/// The container image for the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Image {
    /// A ready image to use as is, or the base to build on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Distribution packages to install.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Python packages to install with pip.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pip: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_node_count_keeps_the_tasks_per_node() {
        let mut w = Workflow::default();
        w.spec.resources.nodes = Some(4);
        w.spec.resources.tasks = Some(8);
        let r = w.with_nodes(2).spec.resources;
        assert_eq!(
            (r.nodes, r.tasks, r.tasks_per_node),
            (Some(2), Some(4), Some(2))
        );
        let r = Workflow::default().with_nodes(3).spec.resources;
        assert_eq!((r.nodes, r.tasks, r.tasks_per_node), (Some(3), None, None));
    }
}
