//! What the shapes need beyond the pod: the variables a Slurm/LSF/PBS script reads, set from
//! what the pod has, and the gaps (workflow fields without a Kubernetes counterpart, and what
//! was done instead), listed as the importer's report lists directives.

use atlas_spec::{LauncherKind, Workflow};

use super::pod::PerNode;
use super::{Flavor, Gap, K8sOptions, ServerVersion};

/// Adds `export NAME=VALUE` for each of `names` the script uses.
fn set(out: &mut Vec<String>, used: &[String], names: &[&str], value: &str) {
    for name in names {
        if used.iter().any(|u| u == name) {
            out.push(format!("export {name}={value}"));
        }
    }
}

/// The variables a Slurm/LSF/PBS script reads, from what the pod has (shell `export` lines;
/// names and values are fixed here, never taken from the workflow).
pub(super) fn exports(workflow: &Workflow, flavor: Flavor, name: &str) -> Vec<String> {
    let used = &workflow.spec.environment.scheduler_variables;
    let mut out = Vec::new();
    if let (Flavor::IndexedJob | Flavor::JobPerIndex, Some(array)) =
        (flavor, &workflow.spec.scheduling.array)
    {
        let value = if array.additional_ranges.is_empty() {
            format!(
                "$(({} + JOB_COMPLETION_INDEX * {}))",
                array.start, array.step
            )
        } else {
            // A list such as 1,3,5-7: the index picks its task id from the whole list.
            let ids: Vec<String> = array
                .ranges()
                .flat_map(|r| (r.start..=r.end).step_by(r.step.max(1) as usize))
                .map(|id| id.to_string())
                .collect();
            format!(
                "$(ids=({}); echo \"${{ids[$JOB_COMPLETION_INDEX]}}\")",
                ids.join(" ")
            )
        };
        set(
            &mut out,
            used,
            &[
                "SLURM_ARRAY_TASK_ID",
                "LSB_JOBINDEX",
                "PBS_ARRAYID",
                "PBS_ARRAY_INDEX",
            ],
            &value,
        );
    }
    if let Some(world) = NodeWorld::of(workflow, flavor, name) {
        world.exports(workflow, used, &mut out);
    }
    let per_node = PerNode::of(workflow);
    set(
        &mut out,
        used,
        &["SLURM_CPUS_PER_TASK"],
        &workflow
            .spec
            .resources
            .cpus_per_task
            .unwrap_or(1)
            .to_string(),
    );
    set(
        &mut out,
        used,
        &["SLURM_NTASKS_PER_NODE"],
        &per_node.tasks.to_string(),
    );
    out
}

/// The gaps: fields Kubernetes has no place for, and what was done instead.
pub(super) fn gaps(workflow: &Workflow, flavor: Flavor, options: &K8sOptions) -> Vec<Gap> {
    let server = options.server;
    let mut gaps = Vec::new();
    let mut gap = |field: &str, note: String| {
        gaps.push(Gap {
            field: field.into(),
            note,
        })
    };
    let s = &workflow.spec;
    gap("(project files)", "the scripts next to the workflow are not in the image: add COPY lines to the Containerfile or mount them at /work".into());
    if let Some(account) = &s.scheduling.account {
        gap(
            "spec.scheduling.account",
            format!(
                "`{account}`: no counterpart; use a namespace or Kueue ClusterQueue per account"
            ),
        );
    }
    if s.scheduling.queue.is_some() {
        gap("spec.scheduling.queue", "mapped to the Kueue label kueue.x-k8s.io/queue-name (a LocalQueue of that name must exist)".into());
    }
    if !s.scheduling.dependencies.is_empty() {
        gap("spec.scheduling.dependencies", "no counterpart in batch/v1; run dependent jobs with a workflow engine (Argo, Kueue) or `atlas run` in order".into());
    }
    if s.resources.exclusive == Some(true) {
        gap("spec.resources.exclusive", "no counterpart; the pod asks for its CPUs and memory (Guaranteed QoS), not the whole node".into());
    }
    if let Some(constraint) = &s.resources.constraint {
        gap(
            "spec.resources.constraint",
            format!("`{constraint}`: no node labels are known for it; add a nodeSelector by hand"),
        );
    }
    if !s.environment.modules.is_empty() {
        gap(
            "spec.environment.modules",
            "environment modules do not exist in the image; install the software with spec.image"
                .into(),
        );
    }
    if s.environment.conda.is_some() || s.environment.venv.is_some() {
        gap("spec.environment.conda/venv", "the environment on the cluster's shared filesystem is not in the image; list its packages in spec.image.pip".into());
    }
    if s.scheduling.output.is_some() || s.scheduling.error.is_some() {
        gap("spec.scheduling.output/error", "pods write to their log (kubectl logs); the agent also keeps each phase's output in the run volume".into());
    }
    if !s.het_components.is_empty() {
        gap("spec.hetComponents", format!("{} heterogeneous component(s) are not emitted: only the first component's resources are used", s.het_components.len()));
    }
    if let (Some(gpu_type), true) = (&s.resources.gpu_type, PerNode::of(workflow).gpus > 0) {
        match super::gpu::products(gpu_type, &options.gpu_products) {
            Some(products) => gap("spec.resources.gpuType", format!("`{gpu_type}`: a required node affinity on {} In [{}] (the labels NVIDIA's GPU feature discovery sets)", super::gpu::PRODUCT_LABEL, products.join(", "))),
            None => gap("spec.resources.gpuType", format!("warning: `{gpu_type}` is not a GPU type Atlas knows the node labels of: the pods get no GPU-type constraint and may land on any GPU; give --gpu-product {gpu_type}=LABEL (the node's {} label)", super::gpu::PRODUCT_LABEL)),
        }
    }
    let per_node = PerNode::of(workflow);
    if matches!(flavor, Flavor::Jobset | Flavor::Pytorchjob | Flavor::Mpijob) {
        gap("spec.resources.nodes", format!("{} node(s) of {} task(s) each: one pod per node with a stable host name; `scontrol show hostnames` lists them, SLURM_NNODES/SLURM_NODEID/SLURM_PROCID/SLURM_NTASKS/SLURM_JOB_NODELIST, PBS_NODEFILE, LSB_DJOB_HOSTFILE and LSB_HOSTS are set from them, and MASTER_ADDR/MASTER_PORT (29500) name the first for a torchrun rendezvous", per_node.nodes, per_node.tasks));
    }
    if let Some(array) = &s.scheduling.array {
        array_gaps(array, flavor, server, &mut gap);
    }
    if !server.has_job_ttl() {
        gap("(server)", format!("Kubernetes {server}: ttlSecondsAfterFinished is alpha (feature gate TTLAfterFinished); without it finished Jobs stay until deleted"));
    }
    match (s.launcher.kind, flavor) {
        (LauncherKind::Srun | LauncherKind::Torchrun, Flavor::Pytorchjob) => gap("spec.launcher", "run as a PyTorchJob, one pod per node: `srun` runs its command in the pod (only leading flag options are understood)".into()),
        (LauncherKind::Deepspeed | LauncherKind::Accelerate, Flavor::Pytorchjob) => gap("spec.launcher", "run as a PyTorchJob: the launcher's own multi-node options are replaced by the operator's MASTER_ADDR/RANK".into()),
        (LauncherKind::Horovodrun | LauncherKind::Ddlrun | LauncherKind::Aprun, Flavor::Mpijob) => gap("spec.launcher", "run as an MPIJob: the launcher must accept an MPI hostfile (/etc/mpi/hostfile)".into()),
        (_, Flavor::Mpijob) => gap("spec.launcher", "run as an MPIJob: a launcher of 1 CPU and 1 GiB runs the workflow and `mpirun` (`srun` becomes mpirun over /etc/mpi/hostfile); workers run sshd on port 2222 behind the entrypoint with the operator's keys at /home/atlas/.ssh (sshAuthMountPath); the generated Containerfile installs openssh".into()),
        _ => {}
    }
    gaps
}

/// What became of an array, and what the server changed.
fn array_gaps(
    array: &atlas_spec::ArraySpec,
    flavor: Flavor,
    server: ServerVersion,
    gap: &mut impl FnMut(&str, String),
) {
    let count = array.task_count();
    let mapping = if array.additional_ranges.is_empty() {
        format!(
            "the index i becomes the script's array variable as {} + i × {}",
            array.start, array.step
        )
    } else {
        "the index i picks the i-th task id of the list".to_string()
    };
    let walltime = "the walltime is each task's (the pod's activeDeadlineSeconds)";
    match flavor {
        Flavor::IndexedJob if server.has_backoff_limit_per_index() => gap(
            "spec.scheduling.array",
            format!("Indexed Job of {count} completions with backoffLimitPerIndex 0: a failed task is not retried and never stops the others; {mapping}; {walltime}"),
        ),
        Flavor::IndexedJob => gap(
            "spec.scheduling.array",
            format!("Indexed Job of {count} completions; Kubernetes {server} has no backoffLimitPerIndex (1.29+), so one failed task fails the Job and stops the others (job-per-index keeps them independent); {mapping}; {walltime}"),
        ),
        Flavor::JobPerIndex => {
            let why = if server.has_indexed_job() {
                format!("Kubernetes {server} has no backoffLimitPerIndex (1.29+) to keep Indexed Job tasks independent")
            } else {
                format!("Kubernetes {server} has no Indexed Job (1.21+)")
            };
            gap(
                "spec.scheduling.array",
                format!("{why}: {count} Jobs NAME-0 … NAME-{}, each with JOB_COMPLETION_INDEX set; {mapping}; {walltime}", count.saturating_sub(1)),
            );
            if let Some(parallel) = array.max_parallel {
                gap(
                    "spec.scheduling.array.maxParallel",
                    format!("at most {parallel} at a time is not enforced by separate Jobs: they start as room allows (`atlas run` on a kubernetes target creates them {parallel} at a time; Kueue can hold them)"),
                );
            }
        }
        _ => {}
    }
}

/// The nodes of a multi-node job as its pods see them: the host names (stable DNS names the
/// operators give each pod), which of them this pod is, and where the hostfile is.
struct NodeWorld {
    hosts: Vec<String>,
    /// A shell expression for this pod's node index.
    rank: &'static str,
    /// The MPI hostfile (MPIJob's own), else one the pod writes.
    hostfile: &'static str,
    mpi: bool,
}

impl NodeWorld {
    /// The world of `flavor` for a job of `nodes` pods named after `name` (a DNS label).
    fn of(workflow: &Workflow, flavor: Flavor, name: &str) -> Option<NodeWorld> {
        let nodes = PerNode::of(workflow).nodes;
        let written = "$HOME/.atlas-nodefile";
        match flavor {
            // JobSet's headless Service `NAME` gives each pod `NAME-nodes-0-I.NAME`.
            Flavor::Jobset => Some(NodeWorld {
                hosts: (0..nodes)
                    .map(|i| format!("{name}-nodes-0-{i}.{name}"))
                    .collect(),
                rank: "$JOB_COMPLETION_INDEX",
                hostfile: written,
                mpi: false,
            }),
            // The training operator's Service per pod: NAME-master-0, NAME-worker-I.
            Flavor::Pytorchjob => Some(NodeWorld {
                hosts: std::iter::once(format!("{name}-master-0"))
                    .chain((1..nodes).map(|i| format!("{name}-worker-{}", i - 1)))
                    .collect(),
                rank: "$PET_NODE_RANK",
                hostfile: written,
                mpi: false,
            }),
            // The MPI Operator's headless Service NAME-worker; the launcher is rank 0's host.
            Flavor::Mpijob => Some(NodeWorld {
                hosts: (0..nodes)
                    .map(|i| format!("{name}-worker-{i}.{name}-worker"))
                    .collect(),
                rank: "0",
                hostfile: "/etc/mpi/hostfile",
                mpi: true,
            }),
            _ => None,
        }
    }

    /// The shims and variables: `srun` runs its command here (MPI: through mpirun on every
    /// worker), `scontrol show hostnames` prints the hosts, the Slurm/PBS/LSF variables the
    /// script reads, and MASTER_ADDR/MASTER_PORT for a torchrun rendezvous.
    fn exports(&self, workflow: &Workflow, used: &[String], out: &mut Vec<String>) {
        let per_node = PerNode::of(workflow);
        let nodes = self.hosts.len();
        let tasks = nodes as u32 * per_node.tasks;
        let commands: String = workflow
            .spec
            .phases
            .iter()
            .map(|p| p.run.as_str())
            .chain(workflow.spec.launcher.command.as_deref())
            .collect();
        out.push(format!("export ATLAS_NODES='{}'", self.hosts.join(" ")));
        if commands.contains("srun ") {
            let run = if self.mpi {
                format!("mpirun --hostfile {} -np {tasks} \"$@\"", self.hostfile)
            } else {
                "\"$@\"".to_string()
            };
            out.push(format!("srun() {{ while [ $# -gt 0 ] && [ \"${{1#-}}\" != \"$1\" ]; do shift; done; {run}; }}; export -f srun"));
        }
        if commands.contains("scontrol ") {
            out.push("scontrol() { if [ \"$1 $2\" = \"show hostnames\" ]; then printf '%s\\n' $ATLAS_NODES; else echo \"scontrol: only 'show hostnames' exists in this pod\" >&2; return 1; fi; }; export -f scontrol".into());
        }
        if !self.mpi {
            out.push(format!("printf '%s\\n' $ATLAS_NODES > {}", self.hostfile));
        }
        out.push(format!(
            "export MASTER_ADDR=${{MASTER_ADDR:-{}}} MASTER_PORT=${{MASTER_PORT:-29500}}",
            self.hosts[0]
        ));
        set(
            out,
            used,
            &["SLURM_NNODES", "SLURM_JOB_NUM_NODES"],
            &nodes.to_string(),
        );
        set(out, used, &["SLURM_NODEID"], self.rank);
        set(
            out,
            used,
            &["SLURM_NTASKS", "SLURM_NPROCS"],
            &tasks.to_string(),
        );
        set(
            out,
            used,
            &["SLURM_PROCID"],
            &format!("$(({} * {}))", self.rank, per_node.tasks),
        );
        set(
            out,
            used,
            &["SLURM_JOB_NODELIST", "SLURM_NODELIST"],
            &self.hosts.join(","),
        );
        set(
            out,
            used,
            &["LSB_DJOB_HOSTFILE", "PBS_NODEFILE"],
            self.hostfile,
        );
        set(
            out,
            used,
            &["LSB_HOSTS"],
            &format!("'{}'", self.hosts.join(" ")),
        );
        set(out, used, &["PBS_NUM_NODES"], &nodes.to_string());
    }
}
