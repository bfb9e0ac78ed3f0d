//! The pod template every Kubernetes shape shares: the image running the Atlas agent,
//! resources from the workflow (CPU, memory, `nvidia.com/gpu` through the device plugin only,
//! the GPU type as a node selector), `/dev/shm` sized for data loaders, the workflow from a
//! ConfigMap, the run's spool on a volume, inputs and outputs on PersistentVolumeClaims, and a
//! security context that works under any UID.

use std::collections::BTreeMap;

use atlas_spec::Workflow;
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ObjectFieldSelector, PersistentVolumeClaimVolumeSource, PodAffinity,
    PodAffinityTerm, PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements,
    SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

/// The UID a plain Kubernetes pod runs as (OpenShift assigns its own: no `runAsUser` there).
pub const PLAIN_UID: i64 = 1_000_870_000;

/// Where the run's spool goes inside the pod.
pub const RUN_DIR: &str = "/atlas/run";

/// Where on the run's claim a run that can be frozen keeps its working directory.
pub const WORK_ON_CLAIM: &str = "$(ATLAS_RUN_ID)-work";

/// A container's security context: no privilege escalation, every capability dropped.
fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The init container of a run that can be frozen: the image's /work copied onto the claim
/// once (a marker says it was), so a pod created again keeps what the phases wrote there.
fn work_copy(image: &str, env: &[EnvVar]) -> Container {
    Container {
        name: "work".into(),
        image: Some(image.into()),
        command: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "test -e /claim/.atlas-work || { cp -R /work/. /claim/ && touch /claim/.atlas-work; }"
                .into(),
        ]),
        env: Some(
            env.iter()
                .filter(|e| e.name == "ATLAS_RUN_ID")
                .cloned()
                .collect(),
        ),
        volume_mounts: Some(vec![VolumeMount {
            name: "atlas-runs".into(),
            mount_path: "/claim".into(),
            sub_path_expr: Some(WORK_ON_CLAIM.into()),
            ..Default::default()
        }]),
        security_context: Some(restricted()),
        ..Default::default()
    }
}

/// What one pod (one node's share of the job) asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerNode {
    pub nodes: u32,
    pub tasks: u32,
    pub cpus: u32,
    pub memory_bytes: Option<u64>,
    pub gpus: u32,
}

impl PerNode {
    pub fn of(workflow: &Workflow) -> PerNode {
        let r = &workflow.spec.resources;
        let nodes = r.nodes.unwrap_or(1).max(1);
        let tasks = r
            .tasks_per_node
            .or(r.tasks.map(|t| t.div_ceil(nodes)))
            .unwrap_or(1)
            .max(1);
        let cpus = tasks * r.cpus_per_task.unwrap_or(1).max(1);
        let gpus = r
            .gpus_per_node
            .or(r.gpus.map(|g| g.div_ceil(nodes)))
            .or(r.gpus_per_task.map(|g| g * tasks))
            .unwrap_or(0);
        // Every form a job script gives memory in: per node, per CPU, per GPU (`--mem-per-gpu`).
        let memory_bytes = r
            .memory_per_node
            .map(|m| m.bytes())
            .or_else(|| {
                r.memory_per_cpu
                    .and_then(|m| m.checked_mul(u64::from(cpus)))
                    .map(|m| m.bytes())
            })
            .or_else(|| {
                r.memory_per_gpu
                    .filter(|_| gpus > 0)
                    .and_then(|m| m.checked_mul(u64::from(gpus)))
                    .map(|m| m.bytes())
            });
        PerNode {
            nodes,
            tasks,
            cpus,
            memory_bytes,
            gpus,
        }
    }
}

/// How to make one pod template.
pub struct PodOptions<'a> {
    /// The workflow's name, the prefix of every object's name.
    pub name: &'a str,
    pub image: &'a str,
    pub openshift: bool,
    /// `main`, `pytorch` (Kubeflow requires it), `launcher`, `worker`.
    pub container: &'a str,
    /// Shell `export` lines run before the agent (variables the script expects).
    pub exports: Vec<String>,
    /// Replaces the agent (MPI workers only wait for the launcher).
    pub command: Option<Vec<String>>,
    /// Whether this pod runs the workflow (mounts its data) or only serves it (MPI workers).
    pub runs_workflow: bool,
    /// More `atlas agent` flags after `--quiet`.
    pub agent_flags: &'a [String],
    /// GPU types → the product labels GPU feature discovery sets (the cluster's own table
    /// first, then the built-in one).
    pub gpu_products: &'a BTreeMap<String, Vec<String>>,
    /// Co-location and RDMA ([`super::Placement`]).
    pub placement: &'a super::Placement,
}

fn quantity(text: String) -> Quantity {
    Quantity(text)
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// The `/dev/shm` size: half the memory asked for (data loaders share tensors there), else 1Gi.
fn shm_size(per_node: &PerNode) -> String {
    match per_node.memory_bytes {
        Some(bytes) => format!("{}Mi", (bytes / 2 / (1 << 20)).max(64)),
        None => "1Gi".into(),
    }
}

/// `affinity` with, when asked for, every pod of the workflow required on one node.
fn co_locate(affinity: Option<Affinity>, options: &PodOptions<'_>) -> Option<Affinity> {
    if !options.placement.co_locate {
        return affinity;
    }
    let mut affinity = affinity.unwrap_or_default();
    affinity.pod_affinity = Some(PodAffinity {
        required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "atlas.dev/workflow".to_string(),
                    options.name.to_string(),
                )])),
                ..Default::default()
            }),
            topology_key: "kubernetes.io/hostname".into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    Some(affinity)
}

/// The pod template for `workflow`.
pub fn template(workflow: &Workflow, options: &PodOptions<'_>) -> PodTemplateSpec {
    let per_node = PerNode::of(workflow);
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    requests.insert("cpu".to_string(), quantity(per_node.cpus.to_string()));
    limits.insert("cpu".to_string(), quantity(per_node.cpus.to_string()));
    if let Some(bytes) = per_node.memory_bytes {
        let memory = atlas_spec::Quantity::from_bytes(bytes).to_string();
        requests.insert("memory".to_string(), quantity(memory.clone()));
        limits.insert("memory".to_string(), quantity(memory));
    }
    if let Some(resource) = &options.placement.rdma_resource {
        requests.insert(resource.clone(), quantity("1".into()));
        limits.insert(resource.clone(), quantity("1".into()));
    }
    if per_node.gpus > 0 {
        // Through the device plugin only: never NVIDIA_VISIBLE_DEVICES=all.
        limits.insert(
            "nvidia.com/gpu".to_string(),
            quantity(per_node.gpus.to_string()),
        );
    }
    let mut env_vars = vec![
        EnvVar {
            name: "ATLAS_RUN_ID".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        env("ATLAS_RUN_DIR", RUN_DIR),
    ];
    env_vars.push(env("HOME", "/home/atlas"));
    let mut mounts = vec![VolumeMount {
        name: "shm".into(),
        mount_path: "/dev/shm".into(),
        ..Default::default()
    }];
    let mut volumes = vec![Volume {
        name: "shm".into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(quantity(shm_size(&per_node))),
        }),
        ..Default::default()
    }];
    if options.runs_workflow {
        mounts.push(VolumeMount {
            name: "workflow".into(),
            mount_path: "/opt/atlas/workflow.yaml".into(),
            sub_path: Some("workflow.yaml".into()),
            read_only: Some(true),
            ..Default::default()
        });
        volumes.push(Volume {
            name: "workflow".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: format!("{}-workflow", options.name),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: "atlas-runs".into(),
            mount_path: RUN_DIR.into(),
            sub_path_expr: Some("$(ATLAS_RUN_ID)".into()),
            ..Default::default()
        });
        if workflow.spec.checkpoint.is_some() {
            // A run that can be frozen keeps its working directory on the claim: a pod created
            // again at a window's open finds what the earlier phases wrote (before the inputs'
            // and outputs' mounts, which go inside it).
            mounts.push(VolumeMount {
                name: "atlas-runs".into(),
                mount_path: "/work".into(),
                sub_path_expr: Some(WORK_ON_CLAIM.into()),
                ..Default::default()
            });
        }
        volumes.push(pvc_volume(
            "atlas-runs",
            &format!("{}-atlas-runs", options.name),
            false,
        ));
        let data = &workflow.spec.data;
        for (i, input) in data.inputs.iter().enumerate() {
            mounts.push(VolumeMount {
                name: "inputs".into(),
                mount_path: work_path(&input.path),
                sub_path: Some(format!("input-{i}")),
                read_only: Some(true),
                ..Default::default()
            });
        }
        if !data.inputs.is_empty() {
            volumes.push(pvc_volume(
                "inputs",
                &format!("{}-inputs", options.name),
                true,
            ));
        }
        for (i, output) in data.outputs.iter().enumerate() {
            mounts.push(VolumeMount {
                name: "outputs".into(),
                mount_path: work_path(&output.source),
                sub_path: Some(format!("output-{i}")),
                ..Default::default()
            });
        }
        if !data.outputs.is_empty() {
            volumes.push(pvc_volume(
                "outputs",
                &format!("{}-outputs", options.name),
                false,
            ));
        }
    }
    let mut agent_args = vec!["--quiet".to_string()];
    if workflow.spec.checkpoint.is_some() && options.runs_workflow {
        // The run directory is on a claim; /work is the image's: a Job deleted at a window's
        // close and created again at its open finds its checkpoint there.
        agent_args.push("--keep-checkpoint".into());
    }
    agent_args.extend(options.agent_flags.iter().cloned());
    let command = match (&options.command, options.exports.is_empty()) {
        (Some(command), _) => Some(command.clone()),
        (None, true) => None,
        (None, false) => Some(vec![
            "/bin/bash".into(),
            "-c".into(),
            format!(
                "{}; exec /opt/atlas/entrypoint.sh {}",
                options.exports.join("; "),
                agent_args
                    .iter()
                    .map(|a| crate::quote::shell_quote(a))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ]),
    };
    let init = (options.runs_workflow && workflow.spec.checkpoint.is_some())
        .then(|| work_copy(options.image, &env_vars));
    let container = Container {
        name: options.container.into(),
        image: Some(options.image.into()),
        command,
        args: (options.command.is_none() && options.exports.is_empty()).then_some(agent_args),
        env: Some(env_vars),
        resources: Some(ResourceRequirements {
            requests: Some(requests),
            limits: Some(limits),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        working_dir: Some("/work".into()),
        security_context: Some(restricted()),
        ..Default::default()
    };
    let affinity = workflow
        .spec
        .resources
        .gpu_type
        .as_deref()
        .filter(|_| per_node.gpus > 0)
        .and_then(|t| super::gpu::affinity(t, options.gpu_products));
    let affinity = co_locate(affinity, options);
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(BTreeMap::from([(
                "atlas.dev/workflow".to_string(),
                options.name.to_string(),
            )])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            init_containers: init.map(|c| vec![c]),
            containers: vec![container],
            restart_policy: Some("Never".into()),
            volumes: Some(volumes),
            affinity,
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                // OpenShift's restricted SCC assigns the UID; elsewhere a fixed high one with
                // group 0, which the image is writable for.
                run_as_user: (!options.openshift).then_some(PLAIN_UID),
                run_as_group: (!options.openshift).then_some(0),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn pvc_volume(volume: &str, claim: &str, read_only: bool) -> Volume {
    Volume {
        name: volume.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.into(),
            read_only: read_only.then_some(true),
        }),
        ..Default::default()
    }
}

/// A workflow path as seen in the pod (relative paths are under /work).
pub fn work_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/work/{}", path.trim_start_matches("./"))
    }
}
