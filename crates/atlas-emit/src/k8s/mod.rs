//! Workflow → Kubernetes/OpenShift objects, built from typed objects (k8s-openapi, and typed
//! structs for the custom resources), never YAML text:
//!
//! - one task → `batch/v1` Job; an array → Indexed Job with independent tasks
//!   (`backoffLimitPerIndex`, 1.29+), on older servers one Job per index; the index is mapped
//!   to the variable the script used and the walltime is per task (on the pod);
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

mod array;
pub mod crds;
pub mod gpu;
pub mod node_agent;
pub mod pod;
mod server;
mod shape;
pub mod tenant;
pub mod windows;

pub use server::ServerVersion;

use crds::*;
use pod::{PerNode, PodOptions};

/// The shape of the emitted job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    Auto,
    Job,
    IndexedJob,
    /// One Job per array index (servers without Indexed Job or `backoffLimitPerIndex`).
    JobPerIndex,
    Jobset,
    Pytorchjob,
    Mpijob,
}

impl Flavor {
    /// The name `--flavor` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Auto => "auto",
            Flavor::Job => "job",
            Flavor::IndexedJob => "indexed-job",
            Flavor::JobPerIndex => "job-per-index",
            Flavor::Jobset => "jobset",
            Flavor::Pytorchjob => "pytorchjob",
            Flavor::Mpijob => "mpijob",
        }
    }
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// The API server the objects are for ([`ServerVersion::NEWEST`] when unknown).
    pub server: ServerVersion,
    /// The cluster's GPU types → product labels, before the built-in table ([`gpu`]).
    pub gpu_products: BTreeMap<String, Vec<String>>,
    /// Where the ranks go: on one node (shared memory between them), with an RDMA device.
    pub placement: Placement,
}

/// Placement of a parallel job's pods: the Kubernetes counterpart of co-located containers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement {
    /// Every pod of the workflow on one node (a required pod affinity on the node's host name),
    /// so ranks can share memory instead of talking over the pod network.
    pub co_locate: bool,
    /// An RDMA device plugin's resource each rank asks for (`rdma/hca_shared_devices_a`, the
    /// name the k8s-rdma-shared-dev-plugin's sample config uses); not verified here.
    pub rdma_resource: Option<String>,
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
    Namespace(Box<k8s_openapi::api::core::v1::Namespace>),
    ServiceAccount(Box<k8s_openapi::api::core::v1::ServiceAccount>),
    DaemonSet(Box<k8s_openapi::api::apps::v1::DaemonSet>),
    ResourceQuota(Box<k8s_openapi::api::core::v1::ResourceQuota>),
    LimitRange(Box<k8s_openapi::api::core::v1::LimitRange>),
    Role(Box<k8s_openapi::api::rbac::v1::Role>),
    RoleBinding(Box<k8s_openapi::api::rbac::v1::RoleBinding>),
    /// A CronJob, as JSON: its apiVersion is the server's (`batch/v1beta1` before 1.21).
    CronJob(Box<serde_json::Value>),
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

/// Which flavor `auto` means for this workflow on `server`.
pub fn auto_flavor(workflow: &Workflow, server: ServerVersion) -> Flavor {
    let per_node = PerNode::of(workflow);
    let kind = workflow.spec.launcher.kind;
    if workflow.spec.scheduling.array.is_some() {
        // Slurm's array tasks are independent: one failing never stops the others.
        return if server.has_backoff_limit_per_index() {
            Flavor::IndexedJob
        } else {
            Flavor::JobPerIndex
        };
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

/// The flavor to emit: `auto` resolved, and a flavor asked for that would lose something
/// (an array's tasks, the launcher) refused with what to use instead.
fn resolve_flavor(workflow: &Workflow, options: &K8sOptions) -> Result<Flavor, K8sError> {
    let array = workflow.spec.scheduling.array.as_ref();
    let refuse = |why: String| Err(K8sError::Refused(why));
    match (options.flavor, array) {
        (Flavor::Auto, _) => Ok(auto_flavor(workflow, options.server)),
        (f @ (Flavor::IndexedJob | Flavor::JobPerIndex), None) => refuse(format!(
            "--flavor {f} needs an array (spec.scheduling.array)"
        )),
        (Flavor::IndexedJob, Some(_)) if !options.server.has_indexed_job() => refuse(format!(
            "Kubernetes {} has no Indexed Job (1.21+): use --flavor job-per-index (or auto)",
            options.server
        )),
        (f @ (Flavor::Job | Flavor::Jobset | Flavor::Pytorchjob | Flavor::Mpijob), Some(a)) => {
            refuse(format!(
                "--flavor {f} would drop the array's {} tasks: use indexed-job or job-per-index \
                 (or auto)",
                a.task_count()
            ))
        }
        (Flavor::Mpijob, None)
            if matches!(
                workflow.spec.launcher.kind,
                LauncherKind::Torchrun | LauncherKind::Deepspeed | LauncherKind::Accelerate
            ) =>
        {
            refuse(format!(
                "--flavor mpijob starts the ranks with mpirun over ssh, but this workflow's \
                 launcher is {:?}: use pytorchjob or jobset (or auto)",
                workflow.spec.launcher.kind
            ))
        }
        (f, _) => Ok(f),
    }
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
    let flavor = resolve_flavor(workflow, options)?;
    let image = options
        .image
        .clone()
        .unwrap_or_else(|| format!("{name}:latest"));
    let image_gap = options.image.is_none().then(|| Gap {
        field: "(image)".into(),
        note: format!("no --image or --registry: the pods run `{image}`, which a cluster pulls from its default registry (docker.io), not from this machine; push the image `atlas containerize` describes and give --registry REGISTRY (or --image REF)"),
    });
    let per_node = PerNode::of(workflow);
    let exports = shape::exports(workflow, flavor, &name);
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
                gpu_products: &options.gpu_products,
                placement: &options.placement,
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
    let jobs = match flavor {
        Flavor::Job | Flavor::Auto => vec![Object::Job(Box::new(Job {
            metadata: meta(&name, workflow),
            spec: Some(job_spec(pod("main", None, true), None, None, false)),
            ..Default::default()
        }))],
        Flavor::IndexedJob | Flavor::JobPerIndex => array::jobs(
            workflow,
            flavor,
            options.server,
            meta(&name, workflow),
            pod("main", None, true),
        )?,
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
            vec![Object::JobSet(Box::new(JobSet {
                metadata: meta(&name, workflow),
                spec: JobSetSpec {
                    replicated_jobs: vec![ReplicatedJob {
                        name: "nodes".into(),
                        replicas: 1,
                        template,
                    }],
                    ttl_seconds_after_finished: Some(86_400),
                },
            }))]
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
            vec![Object::PyTorchJob(Box::new(PyTorchJob {
                metadata: meta(&name, workflow),
                spec: PyTorchJobSpec {
                    pytorch_replica_specs: replicas,
                    run_policy,
                    nproc_per_node: Some(nproc.to_string()),
                },
            }))]
        }
        Flavor::Mpijob => {
            let mut replicas = BTreeMap::new();
            replicas.insert(
                "Launcher".to_string(),
                ReplicaSpec {
                    replicas: 1,
                    restart_policy: "Never".into(),
                    template: launcher_sized(pod("launcher", None, true)),
                },
            );
            // Workers only host the ranks the launcher starts over ssh: sshd behind the
            // entrypoint, which first gives the random UID its passwd entry.
            let sshd = vec!["/opt/atlas/entrypoint.sh".to_string(), "--sshd".to_string()];
            replicas.insert(
                "Worker".to_string(),
                ReplicaSpec {
                    replicas: per_node.nodes as i32,
                    restart_policy: "Never".into(),
                    template: pod("worker", Some(sshd), false),
                },
            );
            vec![Object::MpiJob(Box::new(MpiJob {
                metadata: meta(&name, workflow),
                spec: MpiJobSpec {
                    slots_per_worker: per_node.tasks as i32,
                    run_policy,
                    mpi_replica_specs: replicas,
                    ssh_auth_mount_path: Some("/home/atlas/.ssh".into()),
                },
            }))]
        }
    };
    objects.extend(jobs);
    let mut gaps = shape::gaps(workflow, flavor, options);
    gaps.extend(image_gap);
    if let Some(resource) = &options.placement.rdma_resource {
        gaps.push(Gap {
            field: "(rdma)".into(),
            note: format!("each rank asks for one `{resource}` from an RDMA device plugin: not verified here (this machine has no RDMA device); the image needs the verbs libraries and Open MPI's UCX for the ranks to use it")
        });
    }
    if options.openshift {
        objects.push(Object::ImageStream(Box::new(ImageStream {
            metadata: meta(&name, workflow),
            spec: ImageStreamSpec {
                lookup_policy: LookupPolicy { local: true },
            },
        })));
        if let Some(containerfile) = &options.containerfile {
            objects.push(Object::BuildConfig(Box::new(BuildConfig {
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

/// The MPIJob launcher only runs `mpirun` and the agent: one CPU and 1 GiB, no GPUs, whatever
/// the workers ask for.
fn launcher_sized(
    mut template: k8s_openapi::api::core::v1::PodTemplateSpec,
) -> k8s_openapi::api::core::v1::PodTemplateSpec {
    let size = BTreeMap::from([
        ("cpu".to_string(), Quantity("1".into())),
        ("memory".to_string(), Quantity("1Gi".into())),
    ]);
    for container in template
        .spec
        .iter_mut()
        .flat_map(|p| p.containers.iter_mut())
    {
        container.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
            requests: Some(size.clone()),
            limits: Some(size.clone()),
            ..Default::default()
        });
    }
    template
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
