//! `atlas schema`: the Workflow JSON Schema, generated from the types.

use crate::exit::Failure;

pub fn run() -> Result<(), Failure> {
    let schema = atlas_spec::json_schema();
    let text = serde_json::to_string_pretty(&schema).map_err(Failure::environment)?;
    super::write_output(None, &(text + "\n"))
}
