//! The Atlas Workflow model.
//!
//! A [`Workflow`] is the portable form of a batch job: resources, scheduling rules, launcher,
//! environment and phases, in the Kubernetes style (`apiVersion: atlas.dev/v1alpha1`,
//! `kind: Workflow`). This crate holds the types, the value types they use ([`Quantity`],
//! [`Duration`], [`ArraySpec`]), reading a Workflow from YAML with errors that point at
//! file:line:column ([`parse_workflow`]), and its JSON Schema ([`json_schema`]).
//! It does no I/O.
//!
//! ```
//! let text = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: demo}\nspec:\n  resources: {memoryPerNode: 64Gi}\n  phases: [{name: main, run: echo hi}]\n";
//! let workflow = atlas_spec::parse_workflow("atlas.yaml", text).unwrap();
//! assert_eq!(workflow.spec.resources.memory_per_node.unwrap().to_string(), "64Gi");
//! ```

mod array;
mod check;
mod duration;
mod load;
mod names;
pub mod node_record;
mod quantity;
pub mod record;
mod record_check;
mod rundir;
pub mod service_record;
mod text_or_number;
mod workflow;

pub use array::{ArrayError, ArrayRuleError, ArraySpec, IndexRange};
pub use check::{
    check_pattern, check_workflow, is_variable_name, PatternError, Violation, MAX_COUNT,
    MAX_PATTERN_LEN, MAX_SCRIPT_LEN, MAX_VALUE_LEN, MAX_VARIABLE_NAME_LEN, MAX_WALLTIME,
};
pub use duration::{Duration, DurationError};
pub use load::{parse_workflow, WorkflowError, MAX_NESTING, MAX_WORKFLOW_BYTES};
pub use names::{
    check_name, is_dns1123_label, to_dns1123_label, NameError, MAX_IDENT_LEN, MAX_NAME_LEN,
};
pub use quantity::{AmountError, Quantity, QuantityError};
pub use record_check::{RecordError, MAX_LIST_ITEMS, MAX_TEXT_BYTES};
pub use rundir::{task_run_id, RunDir, Stream};
pub use workflow::*;

/// The JSON Schema of a Workflow document, generated from the types.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Workflow);
    serde_json::to_value(schema).expect("a generated schema is always valid JSON")
}

/// Serializes a Workflow as YAML.
pub fn to_yaml(workflow: &Workflow) -> String {
    serde_yaml_ng::to_string(workflow).expect("a Workflow always serializes")
}
