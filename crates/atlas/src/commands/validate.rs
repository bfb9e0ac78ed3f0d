//! `atlas validate FILE`: reads a Workflow and says what is wrong, with file:line:column.

use std::path::PathBuf;

use crate::exit::Failure;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  atlas validate atlas.yaml")]
pub struct Args {
    /// The Workflow file (atlas.yaml).
    file: PathBuf,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let text = super::read_utf8(&args.file)?;
    let name = args.file.display().to_string();
    let workflow = atlas_spec::parse_workflow(&name, &text)
        .map_err(|e| Failure::Diagnostic(miette::Report::new(*e)))?;
    eprintln!(
        "{name}: valid Workflow `{}` ({} phase(s))",
        workflow.metadata.name,
        workflow.spec.phases.len()
    );
    Ok(())
}
