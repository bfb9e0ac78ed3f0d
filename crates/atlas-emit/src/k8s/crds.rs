//! Typed objects for the custom resources Atlas emits, shaped after their published schemas:
//! Kubeflow's PyTorchJob (kubeflow.org/v1) and MPIJob (kubeflow.org/v2beta1), JobSet
//! (jobset.x-k8s.io/v1alpha2), and OpenShift's BuildConfig (build.openshift.io/v1) and
//! ImageStream (image.openshift.io/v1). Only the fields Atlas sets are modelled.
//!
//! The top-level types are made by kube-derive from their specs, which also gives each its
//! CustomResourceDefinition ([`definitions`]): on a cluster without the operators (the test
//! cluster has none), these CRDs let the API server check the objects Atlas emits against the
//! schema of Atlas's own types. They are not the operators' CRDs and do not replace them.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::JobTemplateSpec;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_core::CustomResourceExt;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One replica group of a Kubeflow job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSpec {
    pub replicas: i32,
    pub restart_policy: String,
    pub template: PodTemplateSpec,
}

/// Kubeflow's run policy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clean_pod_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// kubeflow.org/v1 PyTorchJob.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeflow.org",
    version = "v1",
    kind = "PyTorchJob",
    plural = "pytorchjobs",
    namespaced
)]
#[kube(derive = "PartialEq", crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct PyTorchJobSpec {
    pub pytorch_replica_specs: BTreeMap<String, ReplicaSpec>,
    pub run_policy: RunPolicy,
    /// Processes per node (torchrun's `--nproc_per_node`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nproc_per_node: Option<String>,
}

/// kubeflow.org/v2beta1 MPIJob.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeflow.org",
    version = "v2beta1",
    kind = "MPIJob",
    plural = "mpijobs",
    namespaced
)]
#[kube(derive = "PartialEq", crates(kube_core = "::kube_core"))]
#[kube(root = "MpiJob")]
#[serde(rename_all = "camelCase")]
pub struct MpiJobSpec {
    pub slots_per_worker: i32,
    pub run_policy: RunPolicy,
    pub mpi_replica_specs: BTreeMap<String, ReplicaSpec>,
    /// Where the operator mounts the generated ssh keys (the image's `$HOME/.ssh`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_auth_mount_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicatedJob {
    pub name: String,
    pub replicas: i32,
    pub template: JobTemplateSpec,
}

/// jobset.x-k8s.io/v1alpha2 JobSet.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "jobset.x-k8s.io",
    version = "v1alpha2",
    kind = "JobSet",
    plural = "jobsets",
    namespaced
)]
#[kube(derive = "PartialEq", crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct JobSetSpec {
    pub replicated_jobs: Vec<ReplicatedJob>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// Where a build's input comes from: an inline Dockerfile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildSource {
    #[serde(rename = "type")]
    pub kind: String,
    pub dockerfile: String,
}

/// The Docker build strategy (the Containerfile as written).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DockerStrategy {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildStrategy {
    #[serde(rename = "type")]
    pub kind: String,
    pub docker_strategy: DockerStrategy,
}

/// What a build produces: an ImageStreamTag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildOutput {
    pub to: k8s_openapi::api::core::v1::ObjectReference,
}

/// build.openshift.io/v1 BuildConfig.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "build.openshift.io",
    version = "v1",
    kind = "BuildConfig",
    plural = "buildconfigs",
    namespaced
)]
#[kube(derive = "PartialEq", crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct BuildConfigSpec {
    pub source: BuildSource,
    pub strategy: BuildStrategy,
    pub output: BuildOutput,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LookupPolicy {
    /// Pods in the namespace may use `NAME:TAG` for this stream's images.
    pub local: bool,
}

/// image.openshift.io/v1 ImageStream.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "image.openshift.io",
    version = "v1",
    kind = "ImageStream",
    plural = "imagestreams",
    namespaced
)]
#[kube(derive = "PartialEq", crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamSpec {
    pub lookup_policy: LookupPolicy,
}

/// The CustomResourceDefinitions of the custom resources Atlas emits, from their types.
pub fn definitions() -> Vec<CustomResourceDefinition> {
    vec![
        PyTorchJob::crd(),
        MpiJob::crd(),
        JobSet::crd(),
        BuildConfig::crd(),
        ImageStream::crd(),
    ]
}
