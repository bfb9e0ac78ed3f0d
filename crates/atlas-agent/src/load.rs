//! Reading the workflow file the agent runs: the backend copied it next to the job, so the
//! agent reads it from there and checks it again with the spec's own parser.

use std::path::{Path, PathBuf};

use atlas_spec::{Workflow, WorkflowError};

/// Why the agent cannot read its workflow file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read (missing, unreadable, not UTF-8).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not a valid Workflow; the error points at file:line:column.
    #[error(transparent)]
    Parse(#[from] Box<WorkflowError>),
}

/// Reads a workflow file for the agent (the agent runs where the file was copied).
pub fn load_workflow(path: &Path) -> Result<Workflow, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(atlas_spec::parse_workflow(
        &path.display().to_string(),
        &text,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named() {
        let err = load_workflow(Path::new("/nonexistent/atlas.yaml")).unwrap_err();
        assert!(matches!(err, LoadError::Read { .. }));
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/atlas.yaml: "),
            "{err}"
        );
    }
}
