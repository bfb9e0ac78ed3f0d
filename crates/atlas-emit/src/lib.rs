//! Workflow → the files other systems run: sbatch scripts, Containerfile + entrypoint +
//! Apptainer definition, Kubernetes/OpenShift objects ([`k8s`]), and a tenant's Slurm account
//! with its limits ([`account_script`]). Pure: no I/O, text in and out.

mod container;
pub mod k8s;
mod quote;
mod sbatch;
mod slurm_account;

pub use container::{container_files, ContainerError, ContainerFiles, DEFAULT_BASE};
pub use quote::{directive_quote, shell_quote, DirectiveValueError};
pub use sbatch::{sbatch_script, EmitError, SbatchOptions};
pub use slurm_account::{account_script, AccountError, AccountOptions};
