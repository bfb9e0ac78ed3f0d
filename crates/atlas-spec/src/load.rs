//! Reading a Workflow from YAML text, with errors that point at file:line:column.

use miette::{Diagnostic, NamedSource, SourceSpan};

use crate::{is_dns1123_label, Workflow};

/// A Workflow file that could not be read: where, and what was expected there.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{file}:{line}:{column}: {message}")]
#[diagnostic(code(atlas::workflow::invalid))]
pub struct WorkflowError {
    /// File name as given by the caller.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
    #[source_code]
    source_text: NamedSource<String>,
    #[label("here")]
    span: SourceSpan,
}

impl WorkflowError {
    fn at(file: &str, text: &str, offset: usize, message: String) -> Self {
        let offset = offset.min(text.len());
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        WorkflowError {
            file: file.to_string(),
            line,
            column,
            message,
            source_text: NamedSource::new(file, text.to_string()),
            span: SourceSpan::from((offset, 0)),
        }
    }
}

/// Parses and checks a Workflow. `file` names the text in messages.
pub fn parse_workflow(file: &str, text: &str) -> Result<Workflow, Box<WorkflowError>> {
    let workflow: Workflow = serde_yaml_ng::from_str(text).map_err(|err| {
        let offset = err.location().map_or(0, |l| l.index());
        Box::new(WorkflowError::at(
            file,
            text,
            offset,
            strip_location(&err.to_string()),
        ))
    })?;
    check(&workflow).map_err(|(key, value, message)| {
        Box::new(WorkflowError::at(
            file,
            text,
            find_value(text, key, value),
            message,
        ))
    })?;
    Ok(workflow)
}

/// serde_yaml puts "at line L column C" into its messages; we print the place in front instead.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

type CheckFailure<'a> = (&'static str, &'a str, String);

/// Rules the types alone cannot express. On failure: the YAML key and value to point at.
fn check(workflow: &Workflow) -> Result<(), CheckFailure<'_>> {
    let name = &workflow.metadata.name;
    if !is_dns1123_label(name) {
        return Err((
            "name",
            name,
            format!("metadata.name: `{name}` is not a DNS-1123 label (expected 1-63 of a-z, 0-9 and `-`, starting and ending with a letter or digit)"),
        ));
    }
    if let Some(array) = &workflow.spec.scheduling.array {
        array
            .check()
            .map_err(|why| ("array", "", format!("spec.scheduling.array: {why}")))?;
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, phase) in workflow.spec.phases.iter().enumerate() {
        if phase.name.trim().is_empty() {
            return Err((
                "name",
                "",
                format!("spec.phases[{i}].name: expected a non-empty name"),
            ));
        }
        if !seen.insert(phase.name.as_str()) {
            return Err((
                "name",
                &phase.name,
                format!("spec.phases[{i}].name: a phase named `{}` already exists; phase names must be unique", phase.name),
            ));
        }
    }
    Ok(())
}

/// Byte offset of the last `key: value` line (the last, so a duplicate points at the repeat).
fn find_value(text: &str, key: &str, value: &str) -> usize {
    let mut offset = 0;
    let mut found = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_start().trim_start_matches("- ").trim_start();
        if let Some(rest) = body.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            let rest = rest.trim().trim_matches(|c| c == '"' || c == '\'');
            if value.is_empty() || rest == value {
                found = offset + (line.len() - body.len());
            }
        }
        offset += line.len();
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata:\n  name: demo\nspec:\n  resources:\n    memoryPerNode: 64Gi\n    walltime: 1h30m\n  phases:\n  - name: main\n    run: echo hi\n";

    #[test]
    fn reads_a_valid_workflow() {
        let w = parse_workflow("atlas.yaml", GOOD).unwrap();
        assert_eq!(w.spec.resources.memory_per_node.unwrap().bytes(), 64 << 30);
        assert_eq!(w.spec.resources.walltime.unwrap().as_secs(), 5400);
    }

    #[test]
    fn bad_quantity_points_at_its_line() {
        let text = GOOD.replace("64Gi", "lots");
        let err = parse_workflow("atlas.yaml", &text).unwrap_err();
        assert_eq!(err.line, 7, "{err}");
        assert!(err.message.contains("memoryPerNode"), "{err}");
        assert!(err.message.contains("expected a byte count"), "{err}");
    }

    #[test]
    fn unknown_field_is_named_with_the_expected_ones() {
        let text = GOOD.replace("walltime", "wallclock");
        let err = parse_workflow("atlas.yaml", &text).unwrap_err();
        assert_eq!((err.line, err.file.as_str()), (8, "atlas.yaml"));
        assert!(err.message.contains("unknown field `wallclock`"), "{err}");
    }

    #[test]
    fn wrong_api_version_is_reported() {
        let text = GOOD.replace("atlas.dev/v1alpha1", "batch/v1");
        let err = parse_workflow("w.yaml", &text).unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.to_string().starts_with("w.yaml:1:"), "{err}");
    }

    #[test]
    fn duplicate_phase_names_point_at_the_second() {
        let text = format!("{GOOD}  - name: main\n    run: echo again\n");
        let err = parse_workflow("w.yaml", &text).unwrap_err();
        assert_eq!(err.line, 12, "{err}");
    }

    #[test]
    fn invalid_name_is_reported() {
        let text = GOOD.replace("name: demo", "name: Demo_1");
        let err = parse_workflow("w.yaml", &text).unwrap_err();
        assert_eq!(err.line, 4, "{err}");
    }

    #[test]
    fn garbage_never_panics() {
        for text in ["", ":", "[", "\u{0}", "spec: [1, 2", "apiVersion: 3\n  - x"] {
            assert!(parse_workflow("g.yaml", text).is_err());
        }
    }
}
