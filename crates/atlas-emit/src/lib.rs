//! Workflow → the files other systems run: sbatch scripts, Containerfile + entrypoint +
//! Apptainer definition, and Kubernetes/OpenShift objects ([`k8s`]). Pure: no I/O, text in and out.

mod container;
pub mod k8s;
mod quote;
mod sbatch;

pub use container::{container_files, ContainerError, ContainerFiles, DEFAULT_BASE};
pub use quote::{directive_quote, shell_quote, DirectiveValueError};
pub use sbatch::{sbatch_script, EmitError, SbatchOptions};
