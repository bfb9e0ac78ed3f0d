//! `atlas-operator`: an operator that keeps an HPC storage service well-behaved (issue 20).
//! The service is MooseFS, a parallel file system with Lustre's shape that runs in user space
//! (a metadata master ≈ Lustre's MDS, chunk servers ≈ OSS/OSTs, metaloggers, a FUSE client;
//! Debian 12 packages it). This first part is its custom resource, `StorageService`
//! ([`spec`]): the type the CRD is generated from, and the checks a spec must pass before
//! anything is reconciled. The reconcile loop and its two drivers (Kubernetes, plain hosts)
//! come next (docs/operator.md).

pub mod spec;

pub use spec::{check, crd, SpecError, StorageService, StorageServiceSpec, StorageServiceStatus};
