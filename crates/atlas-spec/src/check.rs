//! The one validation pass over a Workflow, for every rule the types alone cannot express.
//! Whatever passes here may be written into a generated file (Containerfile, Apptainer .def,
//! sbatch script, Kubernetes object) or used as a file name without further cleaning:
//! - names (`metadata.name` a DNS-1123 label; phases, metrics: [`check_name`]);
//! - no control character in any value, except line breaks and tabs in shell text
//!   (`run`, `environment.setup`, `launcher.command`); every value at most [`MAX_VALUE_LEN`];
//! - counts at least 1 and at most [`MAX_COUNT`]; a walltime between 1 s and [`MAX_WALLTIME`]
//!   (no walltime means no limit);
//! - at least one phase; patterns that compile, with valid metric names;
//! - environment variable names a shell can set.

use serde_json::Value;

use crate::names::{check_name, is_dns1123_label, NameError};
use crate::{Duration, Workflow};

/// The longest walltime a workflow may ask for: 366 days. Longer ones are refused rather than
/// handed to a scheduler or a clock that would overflow.
pub const MAX_WALLTIME: Duration = Duration::from_secs(366 * 86_400);
/// The largest node, task, CPU or GPU count.
pub const MAX_COUNT: u32 = 1_000_000;
/// The longest single value (bytes); shell text (`run`, `setup`) may be [`MAX_SCRIPT_LEN`].
pub const MAX_VALUE_LEN: usize = 64 << 10;
/// The longest shell text of a phase or of the setup (bytes).
pub const MAX_SCRIPT_LEN: usize = 4 << 20;
/// The longest output pattern (bytes).
pub const MAX_PATTERN_LEN: usize = 4096;
/// The longest environment variable name (bytes).
pub const MAX_VARIABLE_NAME_LEN: usize = 255;

/// One rule a Workflow breaks: where (a path like `spec.phases[1].name`), what, and the YAML key
/// and value to point at in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the offending field.
    pub path: String,
    /// What is wrong and what was expected (starts with the path).
    pub message: String,
    /// The YAML key to look for.
    pub key: String,
    /// The value to look for (may be empty).
    pub value: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn violation(path: String, key: &str, value: &str, why: String) -> Violation {
    Violation {
        message: format!("{path}: {why}"),
        path,
        key: key.to_string(),
        value: value.chars().take(200).collect(),
    }
}

/// Checks every rule; the first one broken is returned.
pub fn check_workflow(workflow: &Workflow) -> Result<(), Violation> {
    let name = &workflow.metadata.name;
    if !is_dns1123_label(name) {
        return Err(violation("metadata.name".into(), "name", name, format!("`{}` is not a DNS-1123 label (expected 1-63 of a-z, 0-9 and `-`, starting and ending with a letter or digit)", name.escape_debug())));
    }
    let tree = serde_json::to_value(workflow).unwrap_or(Value::Null);
    check_values(&tree, &mut String::new(), "")?;
    check_resources(workflow)?;
    if let Some(array) = &workflow.spec.scheduling.array {
        array.check().map_err(|why| {
            violation("spec.scheduling.array".into(), "array", "", why.to_string())
        })?;
    }
    check_phases(workflow)?;
    check_checkpoint(workflow)?;
    check_checks(workflow)?;
    check_variables(workflow)
}

/// The most references and thresholds per target.
pub const MAX_CHECKS: usize = 64;
/// The longest reference or threshold (`accuracy >= 0.9`).
pub const MAX_CHECK_LEN: usize = 200;

/// `spec.checks`: keyed by a target's name or `*`, each a short list of short texts (what they
/// say is judged by `atlas compare`, which names the one it cannot read).
fn check_checks(workflow: &Workflow) -> Result<(), Violation> {
    for (target, list) in &workflow.spec.checks {
        let path = format!("spec.checks.{target}");
        if target != "*" && !is_dns1123_label(target) {
            let why = format!(
                "`{}` is neither `*` nor a target's name",
                target.escape_debug()
            );
            return Err(violation(path, target, "", why));
        }
        if list.len() > MAX_CHECKS {
            let why = format!("{} checks, more than the {MAX_CHECKS} allowed", list.len());
            return Err(violation(path, target, "", why));
        }
        if let Some(long) = list
            .iter()
            .find(|c| c.len() > MAX_CHECK_LEN || c.trim().is_empty())
        {
            let why = format!("a check is empty or longer than {MAX_CHECK_LEN} bytes");
            return Err(violation(path, target, long, why));
        }
    }
    Ok(())
}

/// The checkpoint's signal is one the agent may send, its path names a file, its grace is at
/// most an hour.
fn check_checkpoint(workflow: &Workflow) -> Result<(), Violation> {
    let Some(checkpoint) = &workflow.spec.checkpoint else {
        return Ok(());
    };
    if checkpoint.signal_number().is_none() {
        let known: Vec<&str> = crate::CHECKPOINT_SIGNALS.iter().map(|(n, _)| *n).collect();
        return Err(violation(
            "spec.checkpoint.signal".into(),
            "signal",
            &checkpoint.signal,
            format!(
                "`{}` is not a signal a checkpoint may be asked with ({})",
                checkpoint.signal.escape_debug(),
                known.join(", ")
            ),
        ));
    }
    let path = checkpoint.path.trim();
    let last = path.rsplit('/').next().unwrap_or("");
    if path.is_empty() || matches!(last, "" | "." | "..") {
        return Err(violation(
            "spec.checkpoint.path".into(),
            "path",
            &checkpoint.path,
            "the checkpoint's path must name a file".into(),
        ));
    }
    if checkpoint.grace() > std::time::Duration::from_secs(6 * 3600) || checkpoint.grace().is_zero()
    {
        return Err(violation(
            "spec.checkpoint.grace".into(),
            "grace",
            "",
            "the checkpoint's grace must be more than 0 and at most 6h".into(),
        ));
    }
    Ok(())
}

/// Fields that hold shell text, where line breaks and tabs belong: exactly
/// `spec.phases[N].run`, `spec.environment.setup` and `spec.launcher.command` (a map key that
/// merely ends in `.run`, such as a label's, is not one).
fn is_shell_text(path: &str) -> bool {
    let phase_run = path
        .strip_prefix("spec.phases[")
        .and_then(|rest| rest.strip_suffix("].run"))
        .is_some_and(|index| index.bytes().all(|b| b.is_ascii_digit()));
    phase_run || path == "spec.environment.setup" || path == "spec.launcher.command"
}

/// Characters that break a line somewhere: the control characters, and Unicode's line and
/// paragraph separators, which YAML and some editors treat as line ends.
fn breaks_lines(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Walks every string (keys too): no control characters, bounded lengths.
fn check_values(value: &Value, path: &mut String, key: &str) -> Result<(), Violation> {
    match value {
        Value::String(text) => check_text(text, path, key),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                check_values(item, path, key)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(map) => {
            for (k, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                check_text(k, path, k)?;
                check_values(item, path, k)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_text(text: &str, path: &str, key: &str) -> Result<(), Violation> {
    let shell = is_shell_text(path);
    let limit = if shell { MAX_SCRIPT_LEN } else { MAX_VALUE_LEN };
    if text.len() > limit {
        return Err(violation(
            path.into(),
            key,
            "",
            format!("{} bytes is longer than the limit of {limit}", text.len()),
        ));
    }
    let allowed = |c: char| shell && matches!(c, '\n' | '\t');
    if let Some(c) = text.chars().find(|&c| breaks_lines(c) && !allowed(c)) {
        let what = if c == '\n' {
            "a line break"
        } else {
            "a control character"
        };
        return Err(violation(
            path.into(),
            key,
            text,
            format!("{what} ({c:?}) is not allowed here: it would change the files generated from this value"),
        ));
    }
    Ok(())
}

fn check_resources(workflow: &Workflow) -> Result<(), Violation> {
    let mut all = vec![("spec.resources".to_string(), &workflow.spec.resources)];
    for (i, het) in workflow.spec.het_components.iter().enumerate() {
        all.push((format!("spec.hetComponents[{i}].resources"), &het.resources));
    }
    for (path, r) in all {
        let at_least_one = [
            ("nodes", r.nodes),
            ("tasks", r.tasks),
            ("tasksPerNode", r.tasks_per_node),
            ("cpusPerTask", r.cpus_per_task),
        ];
        let any = [
            ("gpusPerNode", r.gpus_per_node),
            ("gpusPerTask", r.gpus_per_task),
            ("gpus", r.gpus),
        ];
        for (key, count, min) in at_least_one
            .iter()
            .map(|(k, c)| (k, c, 1))
            .chain(any.iter().map(|(k, c)| (k, c, 0)))
        {
            if let Some(n) = *count {
                if n < min || n > MAX_COUNT {
                    return Err(violation(
                        format!("{path}.{key}"),
                        key,
                        &n.to_string(),
                        format!("{n} is out of range (expected {min} to {MAX_COUNT})"),
                    ));
                }
            }
        }
        if let Some(w) = r.walltime {
            if w.as_secs() == 0 || w > MAX_WALLTIME {
                return Err(violation(format!("{path}.walltime"), "walltime", "", format!("{}s is out of range (expected 1s to {MAX_WALLTIME}; leave walltime out for no limit)", w.as_secs())));
            }
        }
    }
    Ok(())
}

fn check_phases(workflow: &Workflow) -> Result<(), Violation> {
    if workflow.spec.phases.is_empty() {
        return Err(violation(
            "spec.phases".into(),
            "phases",
            "",
            "a workflow needs at least one phase (`- name: main` with `run: …`)".into(),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, phase) in workflow.spec.phases.iter().enumerate() {
        let path = format!("spec.phases[{i}]");
        check_name(&phase.name)
            .map_err(|e| violation(format!("{path}.name"), "name", &phase.name, e.to_string()))?;
        if !seen.insert(phase.name.as_str()) {
            return Err(violation(
                format!("{path}.name"),
                "name",
                &phase.name,
                format!(
                    "a phase named `{}` already exists; phase names must be unique",
                    phase.name
                ),
            ));
        }
        for (j, pattern) in phase.patterns.iter().enumerate() {
            check_pattern(pattern).map_err(|why| {
                violation(
                    format!("{path}.patterns[{j}]"),
                    "patterns",
                    "",
                    why.to_string(),
                )
            })?;
        }
    }
    Ok(())
}

/// Why an output pattern cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatternError {
    /// Longer than [`MAX_PATTERN_LEN`] bytes.
    #[error("{0} bytes is longer than the limit of {MAX_PATTERN_LEN}")]
    TooLong(usize),
    /// The regex crate refuses it (syntax, or compiled size above 1 MiB).
    #[error("not a valid regular expression: {0}")]
    Invalid(#[source] regex::Error),
    /// A named group (`(?P<loss>…)`) whose name is not a metric name.
    #[error("the group name is not a valid metric name: {0}")]
    GroupName(#[source] NameError),
}

/// A pattern compiles (with bounded size) and each named group is a valid metric name.
pub fn check_pattern(pattern: &str) -> Result<(), PatternError> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(PatternError::TooLong(pattern.len()));
    }
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(PatternError::Invalid)?;
    for name in re.capture_names().flatten() {
        check_name(name).map_err(PatternError::GroupName)?;
    }
    Ok(())
}

/// A variable name a shell can set: `A-Z a-z 0-9 _`, not starting with a digit, bounded.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_VARIABLE_NAME_LEN
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_variables(workflow: &Workflow) -> Result<(), Violation> {
    for name in workflow.spec.environment.variables.keys() {
        if !is_variable_name(name) {
            return Err(violation(format!("spec.environment.variables.{}", name.escape_debug()), name, "", format!("`{}` is not a variable name a shell can set (expected A-Z, a-z, 0-9 and `_`, not starting with a digit)", name.escape_debug())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_error_says_which_rule_it_breaks() {
        assert!(check_pattern(r"loss=(?P<loss>[0-9.]+)").is_ok());
        let long = "a".repeat(MAX_PATTERN_LEN + 1);
        assert_eq!(
            check_pattern(&long),
            Err(PatternError::TooLong(MAX_PATTERN_LEN + 1))
        );
        let err = check_pattern("(unclosed").unwrap_err();
        assert!(matches!(err, PatternError::Invalid(_)), "{err}");
        assert!(err
            .to_string()
            .starts_with("not a valid regular expression: "));
        let err = check_pattern(r"(?P<_loss>[0-9]+)").unwrap_err();
        assert!(matches!(err, PatternError::GroupName(_)), "{err}");
    }

    fn workflow(extra: &str) -> Result<crate::Workflow, Box<crate::WorkflowError>> {
        let text = format!("apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata:\n  name: w\n{extra}spec:\n  phases:\n  - {{name: main, run: \"a\\nb\"}}\n");
        crate::parse_workflow("w.yaml", &text)
    }

    #[test]
    fn only_the_shell_fields_take_line_breaks() {
        workflow("").expect("a phase's run is shell text");
        for extra in [
            "  labels: {a.run: \"x\\ny: 1\"}\n",
            "  annotations: {launcher.command: \"x\\nkind: Secret\"}\n",
            "  labels: {a: \"x\\u2028y\"}\n",
        ] {
            assert!(workflow(extra).is_err(), "{extra}");
        }
    }
}
