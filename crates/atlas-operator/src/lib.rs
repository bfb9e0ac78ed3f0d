//! `atlas-operator`: an operator that keeps an HPC storage service well-behaved (issue 20).
//! The service is MooseFS, a parallel file system with Lustre's shape that runs in user space
//! (a metadata master ≈ Lustre's MDS, chunk servers ≈ OSS/OSTs, metaloggers, a FUSE client;
//! Debian 12 packages it). Its custom resource, `StorageService` ([`spec`]); the reconcile
//! logic, pure ([`reconcile`]): what to do next from the spec, the operator's memory and what
//! a driver observed; the master's view read from `mfscli` ([`mfscli`]); the status and
//! metrics a pass reports ([`status`]); the plain-host driver on podman ([`local`]) and its
//! loop ([`operate`]); the Kubernetes driver ([`cluster`]) and its controller ([`controller`]).

pub mod cluster;
pub mod controller;
pub mod local;
pub mod metrics_http;
pub mod mfscli;
pub mod operate;
pub mod reconcile;
pub mod spec;
pub mod status;

pub use spec::{check, crd, SpecError, StorageService, StorageServiceSpec, StorageServiceStatus};
