//! Workflow → the files other systems run: sbatch scripts today; Containerfiles, Apptainer
//! definitions and Kubernetes objects as their issues land. Pure: no I/O, text in and out.

mod quote;
mod sbatch;

pub use quote::{directive_quote, shell_quote, DirectiveValueError};
pub use sbatch::{sbatch_script, EmitError, SbatchOptions};
