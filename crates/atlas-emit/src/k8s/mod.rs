//! Workflow → Kubernetes/OpenShift objects, built from typed objects (k8s-openapi, and typed
//! structs for the custom resources), never YAML text:
//!
//! - one task → `batch/v1` Job; an array → Indexed Job with the index mapped to the variable
//!   the script used;
//! - multi-node `torchrun` (or `srun python`) → Kubeflow PyTorchJob, or a JobSet;
//! - `mpirun`/`jsrun`/`srun` MPI → Kubeflow MPIJob (launcher + workers);
//! - a ConfigMap with the workflow, PersistentVolumeClaims for the spool, inputs and outputs;
//! - `--openshift`: BuildConfig (Docker strategy from the generated Containerfile) and
//!   ImageStream, and no fixed `runAsUser`.
//!
//! Every workflow field without a Kubernetes counterpart is listed in the gaps, as the
//! importer's report does.

use std::collections::BTreeMap;

use atlas_spec::{LauncherKind, Workflow};
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ObjectReference, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

pub mod crds;
pub mod pod;

use crds::*;
use pod::{PerNode, PodOptions};

/// The shape of the emitted job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    Auto,
    Job,
    IndexedJob,
    Jobset,
    Pytorchjob,
    Mpijob,
}

/// How to emit.
#[derive(Debug, Clone)]
pub struct K8sOptions {
    pub flavor: Flavor,
    pub openshift: bool,
    /// The image (default: `NAME:latest`, which an OpenShift ImageStream resolves).
    pub image: Option<String>,
    /// The Containerfile for the OpenShift BuildConfig.
    pub containerfile: Option<String>,
    /// More `atlas agent` flags after `--quiet` (the kubernetes backend adds
    /// `--records-to-stdout`, and `--array-task` for an Indexed Job).
    pub agent_flags: Vec<String>,
}

/// One emitted object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    ConfigMap(Box<ConfigMap>),
    Claim(Box<PersistentVolumeClaim>),
    Job(Box<Job>),
    PyTorchJob(Box<PyTorchJob>),
    MpiJob(Box<MpiJob>),
    JobSet(Box<JobSet>),
    BuildConfig(Box<BuildConfig>),
    ImageStream(Box<ImageStream>),
}

/// A workflow field with no Kubernetes counterpart, or mapped approximately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub field: String,
    pub note: String,
}

/// What `k8s_objects` made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct K8sEmit {
    /// The flavor chosen (never `auto`).
    pub flavor: Flavor,
    pub objects: Vec<Object>,
    pub gaps: Vec<Gap>,
}

/// Why a workflow cannot be emitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum K8sError {
    #[error("{0}")]
    Refused(String),
}

fn meta(name: &str, workflow: &Workflow) -> ObjectMeta {
    let mut labels = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            "atlas".to_string(),
        ),
        (
            "atlas.dev/workflow".to_string(),
            workflow.metadata.name.clone(),
        ),
    ]);
    if let Some(queue) = &workflow.spec.scheduling.queue {
        // Kueue's queue label: the scheduler queue becomes a LocalQueue of the same name.
        labels.insert("kueue.x-k8s.io/queue-name".to_string(), dns_label(queue));
    }
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(labels),
        ..Default::default()
    }
}

fn dns_label(text: &str) -> String {
    atlas_spec::to_dns1123_label(text, "atlas")
}

/// Which flavor `auto` means for this workflow.
pub fn auto_flavor(workflow: &Workflow) -> Flavor {
    let per_node = PerNode::of(workflow);
    let kind = workflow.spec.launcher.kind;
    if workflow.spec.scheduling.array.is_some() {
        return Flavor::IndexedJob;
    }
    let parallel = per_node.nodes > 1 || per_node.tasks > 1;
    match kind {
        LauncherKind::Torchrun | LauncherKind::Deepspeed | LauncherKind::Accelerate
            if per_node.nodes > 1 =>
        {
            Flavor::Pytorchjob
        }
        LauncherKind::Mpirun
        | LauncherKind::Jsrun
        | LauncherKind::Horovodrun
        | LauncherKind::Ddlrun
        | LauncherKind::Aprun
            if parallel =>
        {
            Flavor::Mpijob
        }
        LauncherKind::Srun if parallel => {
            let python = workflow
                .spec
                .launcher
                .command
                .as_deref()
                .is_some_and(|c| c.contains("python") || c.contains("torchrun"));
            if python && per_node.nodes > 1 {
                Flavor::Pytorchjob
            } else {
                Flavor::Mpijob
            }
        }
        _ => Flavor::Job,
    }
}

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
fn exports(workflow: &Workflow, flavor: Flavor) -> Vec<String> {
    let used = &workflow.spec.environment.scheduler_variables;
    let mut out = Vec::new();
    if let (Flavor::IndexedJob, Some(array)) = (flavor, &workflow.spec.scheduling.array) {
        let value = format!(
            "$(({} + JOB_COMPLETION_INDEX * {}))",
            array.start, array.step
        );
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
    if flavor == Flavor::Pytorchjob {
        // The operator starts one pod per node: `srun` becomes "run it here" (leading options
        // dropped) and `scontrol show hostnames` names the master the operator chose.
        let commands: String = workflow
            .spec
            .phases
            .iter()
            .map(|p| p.run.as_str())
            .collect();
        if commands.contains("srun ") {
            out.push("srun() { while [ $# -gt 0 ] && [ \"${1#-}\" != \"$1\" ]; do shift; done; \"$@\"; }; export -f srun".into());
        }
        if commands.contains("scontrol ") {
            out.push("scontrol() { [ \"$1 $2\" = \"show hostnames\" ] && echo \"$MASTER_ADDR\"; }; export -f scontrol".into());
        }
        set(
            &mut out,
            used,
            &["SLURM_NNODES", "SLURM_JOB_NUM_NODES"],
            "$PET_NNODES",
        );
        set(&mut out, used, &["SLURM_NODEID"], "$PET_NODE_RANK");
        set(&mut out, used, &["SLURM_PROCID"], "$RANK");
        set(&mut out, used, &["SLURM_NTASKS"], "$WORLD_SIZE");
    }
    if flavor == Flavor::Mpijob {
        set(
            &mut out,
            used,
            &["LSB_DJOB_HOSTFILE", "PBS_NODEFILE"],
            "/etc/mpi/hostfile",
        );
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
fn gaps(workflow: &Workflow, flavor: Flavor) -> Vec<Gap> {
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
    if let (Some(array), Flavor::IndexedJob) = (&s.scheduling.array, flavor) {
        if !array.additional_ranges.is_empty() {
            gap(
                "spec.scheduling.array.additionalRanges",
                "index lists are not mapped: the Indexed Job covers start-end:step only".into(),
            );
        }
        gap("spec.scheduling.array", format!("Indexed Job of {} completions; the index becomes the script's array variable as start + index × step ({} + i × {})", array.task_count(), array.start, array.step));
    }
    match (s.launcher.kind, flavor) {
        (LauncherKind::Srun | LauncherKind::Torchrun, Flavor::Pytorchjob) => gap("spec.launcher", "run as a PyTorchJob, one pod per node: `srun` runs its command in the pod (only leading flag options are understood), `scontrol show hostnames` prints the operator's MASTER_ADDR, SLURM_NNODES/SLURM_NODEID/SLURM_PROCID/SLURM_NTASKS come from PET_NNODES/PET_NODE_RANK/RANK/WORLD_SIZE".into()),
        (LauncherKind::Deepspeed | LauncherKind::Accelerate, Flavor::Pytorchjob) => gap("spec.launcher", "run as a PyTorchJob: the launcher's own multi-node options are replaced by the operator's MASTER_ADDR/RANK".into()),
        (LauncherKind::Horovodrun | LauncherKind::Ddlrun | LauncherKind::Aprun, Flavor::Mpijob) => gap("spec.launcher", "run as an MPIJob: the launcher must accept an MPI hostfile (/etc/mpi/hostfile)".into()),
        (_, Flavor::Mpijob) => gap("spec.launcher", "MPIJob workers need sshd in the image (the MPI Operator starts the ranks over ssh); the generated Containerfile does not install it".into()),
        _ => {}
    }
    gaps
}

fn config_map(workflow: &Workflow, name: &str) -> ConfigMap {
    ConfigMap {
        metadata: meta(&format!("{name}-workflow"), workflow),
        data: Some(BTreeMap::from([(
            "workflow.yaml".to_string(),
            atlas_spec::to_yaml(workflow),
        )])),
        ..Default::default()
    }
}

fn claim(workflow: &Workflow, name: &str, mode: &str, size: String) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: meta(name, workflow),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![mode.into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The inputs' total size, rounded up to GiB (10Gi when the workflow gives no sizes).
fn inputs_size(workflow: &Workflow) -> String {
    let sizes: Vec<u64> = workflow
        .spec
        .data
        .inputs
        .iter()
        .filter_map(|i| i.size.map(|s| s.bytes()))
        .collect();
    if sizes.len() < workflow.spec.data.inputs.len() || sizes.is_empty() {
        return "10Gi".into();
    }
    let gib = sizes.iter().sum::<u64>().div_ceil(1 << 30).max(1);
    format!("{gib}Gi")
}

fn walltime_seconds(workflow: &Workflow) -> Option<i64> {
    workflow.spec.resources.walltime.map(|d| d.as_secs() as i64)
}

/// The objects for `workflow`.
pub fn k8s_objects(workflow: &Workflow, options: &K8sOptions) -> Result<K8sEmit, K8sError> {
    let name = dns_label(&workflow.metadata.name);
    let flavor = match options.flavor {
        Flavor::Auto => auto_flavor(workflow),
        Flavor::IndexedJob if workflow.spec.scheduling.array.is_none() => {
            return Err(K8sError::Refused(
                "--flavor indexed-job needs an array (spec.scheduling.array)".into(),
            ))
        }
        f => f,
    };
    let image = options
        .image
        .clone()
        .unwrap_or_else(|| format!("{name}:latest"));
    let per_node = PerNode::of(workflow);
    let exports = exports(workflow, flavor);
    let pod = |container: &str, command: Option<Vec<String>>, runs: bool| {
        pod::template(
            workflow,
            &PodOptions {
                name: &name,
                image: &image,
                openshift: options.openshift,
                container,
                exports: if runs { exports.clone() } else { Vec::new() },
                command,
                runs_workflow: runs,
                agent_flags: &options.agent_flags,
            },
        )
    };
    let mut objects = vec![Object::ConfigMap(Box::new(config_map(workflow, &name)))];
    objects.push(Object::Claim(Box::new(claim(
        workflow,
        &format!("{name}-atlas-runs"),
        "ReadWriteMany",
        "1Gi".into(),
    ))));
    if !workflow.spec.data.inputs.is_empty() {
        objects.push(Object::Claim(Box::new(claim(
            workflow,
            &format!("{name}-inputs"),
            "ReadOnlyMany",
            inputs_size(workflow),
        ))));
    }
    if !workflow.spec.data.outputs.is_empty() {
        objects.push(Object::Claim(Box::new(claim(
            workflow,
            &format!("{name}-outputs"),
            "ReadWriteMany",
            "10Gi".into(),
        ))));
    }
    let deadline = walltime_seconds(workflow);
    let job_spec =
        |template, completions: Option<i32>, parallelism: Option<i32>, indexed: bool| JobSpec {
            template,
            backoff_limit: Some(0),
            active_deadline_seconds: deadline,
            ttl_seconds_after_finished: Some(86_400),
            completions,
            parallelism,
            completion_mode: indexed.then(|| "Indexed".to_string()),
            ..Default::default()
        };
    let run_policy = RunPolicy {
        clean_pod_policy: Some("None".into()),
        active_deadline_seconds: deadline,
        backoff_limit: Some(0),
        ttl_seconds_after_finished: Some(86_400),
    };
    let job = match flavor {
        Flavor::Job | Flavor::Auto => Object::Job(Box::new(Job {
            metadata: meta(&name, workflow),
            spec: Some(job_spec(pod("main", None, true), None, None, false)),
            ..Default::default()
        })),
        Flavor::IndexedJob => {
            let array = workflow
                .spec
                .scheduling
                .array
                .as_ref()
                .expect("checked above");
            let count = i32::try_from(array.task_count()).unwrap_or(i32::MAX);
            let parallel = array.max_parallel.map_or(count, |m| (m as i32).min(count));
            Object::Job(Box::new(Job {
                metadata: meta(&name, workflow),
                spec: Some(job_spec(
                    pod("main", None, true),
                    Some(count),
                    Some(parallel),
                    true,
                )),
                ..Default::default()
            }))
        }
        Flavor::Jobset => {
            let nodes = per_node.nodes as i32;
            let template = JobTemplateSpec {
                metadata: None,
                spec: Some(job_spec(
                    pod("main", None, true),
                    Some(nodes),
                    Some(nodes),
                    true,
                )),
            };
            Object::JobSet(Box::new(JobSet {
                api_version: "jobset.x-k8s.io/v1alpha2".into(),
                kind: "JobSet".into(),
                metadata: meta(&name, workflow),
                spec: JobSetSpec {
                    replicated_jobs: vec![ReplicatedJob {
                        name: "nodes".into(),
                        replicas: 1,
                        template,
                    }],
                    ttl_seconds_after_finished: Some(86_400),
                },
            }))
        }
        Flavor::Pytorchjob => {
            let mut replicas = BTreeMap::new();
            replicas.insert(
                "Master".to_string(),
                ReplicaSpec {
                    replicas: 1,
                    restart_policy: "Never".into(),
                    template: pod("pytorch", None, true),
                },
            );
            if per_node.nodes > 1 {
                replicas.insert(
                    "Worker".to_string(),
                    ReplicaSpec {
                        replicas: per_node.nodes as i32 - 1,
                        restart_policy: "Never".into(),
                        template: pod("pytorch", None, true),
                    },
                );
            }
            let nproc = if per_node.gpus > 0 {
                per_node.gpus
            } else {
                per_node.tasks
            };
            Object::PyTorchJob(Box::new(PyTorchJob {
                api_version: "kubeflow.org/v1".into(),
                kind: "PyTorchJob".into(),
                metadata: meta(&name, workflow),
                spec: PyTorchJobSpec {
                    pytorch_replica_specs: replicas,
                    run_policy,
                    nproc_per_node: Some(nproc.to_string()),
                },
            }))
        }
        Flavor::Mpijob => {
            let mut replicas = BTreeMap::new();
            replicas.insert(
                "Launcher".to_string(),
                ReplicaSpec {
                    replicas: 1,
                    restart_policy: "Never".into(),
                    template: pod("launcher", None, true),
                },
            );
            // Workers only host the ranks the launcher starts over ssh.
            let sshd = vec!["/usr/sbin/sshd".to_string(), "-De".to_string()];
            replicas.insert(
                "Worker".to_string(),
                ReplicaSpec {
                    replicas: per_node.nodes as i32,
                    restart_policy: "Never".into(),
                    template: pod("worker", Some(sshd), false),
                },
            );
            Object::MpiJob(Box::new(MpiJob {
                api_version: "kubeflow.org/v2beta1".into(),
                kind: "MPIJob".into(),
                metadata: meta(&name, workflow),
                spec: MpiJobSpec {
                    slots_per_worker: per_node.tasks as i32,
                    run_policy,
                    mpi_replica_specs: replicas,
                },
            }))
        }
    };
    objects.push(job);
    let mut gaps = gaps(workflow, flavor);
    if options.openshift {
        objects.push(Object::ImageStream(Box::new(ImageStream {
            api_version: "image.openshift.io/v1".into(),
            kind: "ImageStream".into(),
            metadata: meta(&name, workflow),
            spec: ImageStreamSpec {
                lookup_policy: LookupPolicy { local: true },
            },
        })));
        if let Some(containerfile) = &options.containerfile {
            objects.push(Object::BuildConfig(Box::new(BuildConfig {
                api_version: "build.openshift.io/v1".into(),
                kind: "BuildConfig".into(),
                metadata: meta(&name, workflow),
                spec: BuildConfigSpec {
                    source: BuildSource {
                        kind: "Dockerfile".into(),
                        dockerfile: containerfile.clone(),
                    },
                    strategy: BuildStrategy {
                        kind: "Docker".into(),
                        docker_strategy: DockerStrategy {},
                    },
                    output: BuildOutput {
                        to: ObjectReference {
                            kind: Some("ImageStreamTag".into()),
                            name: Some(format!("{name}:latest")),
                            ..Default::default()
                        },
                    },
                },
            })));
            gap_openshift(&mut gaps);
        }
    }
    Ok(K8sEmit {
        flavor,
        objects,
        gaps,
    })
}

fn gap_openshift(gaps: &mut Vec<Gap>) {
    gaps.push(Gap {
        field: "(openshift)".into(),
        note: "BuildConfig and ImageStream are OpenShift-only; the BuildConfig's Dockerfile COPYs `atlas` and `entrypoint.sh`: start it with `oc start-build NAME --from-dir=DIR` on the directory `atlas containerize` wrote".into(),
    });
}

/// The objects as one multi-document YAML stream (`kubectl apply -f` reads it).
pub fn to_yaml(objects: &[Object]) -> String {
    objects
        .iter()
        .map(|o| serde_yaml_ng::to_string(o).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The object's kind and name, for file names and messages.
pub fn kind_and_name(object: &Object) -> (String, String) {
    let value = serde_json::to_value(object).unwrap_or_default();
    (
        value["kind"].as_str().unwrap_or("Object").to_string(),
        value["metadata"]["name"]
            .as_str()
            .unwrap_or("unnamed")
            .to_string(),
    )
}
