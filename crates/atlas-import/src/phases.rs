//! Phase markers in a job script: `# atlas: phase NAME` starts a phase, `# atlas: pattern REGEX`
//! adds an output pattern to it. They are comments to every scheduler, so the script still runs
//! unchanged where it came from. Lines before the first marker are the setup that runs before
//! every phase; without markers the whole body is one phase, `main`.

use atlas_spec::Phase;

use crate::body::ranges;
use crate::builder::Builder;
use crate::script::Line;

enum Marker<'a> {
    Phase(&'a str),
    Pattern(&'a str),
}

fn marker<'a>(line: &Line<'a>) -> Option<Marker<'a>> {
    let rest = line
        .trimmed()
        .strip_prefix('#')?
        .trim_start()
        .strip_prefix("atlas:")?
        .trim_start();
    if let Some(name) = rest.strip_prefix("phase") {
        return Some(Marker::Phase(name.trim()));
    }
    rest.strip_prefix("pattern")
        .map(|p| Marker::Pattern(p.trim()))
}

/// The lines of one phase.
struct Section<'a> {
    name: String,
    line: u32,
    patterns: Vec<String>,
    lines: Vec<Line<'a>>,
}

/// `lines` without leading and trailing blank lines.
pub(crate) fn trim_blank<'a, 'b>(lines: &'b [Line<'a>]) -> &'b [Line<'a>] {
    let start = lines
        .iter()
        .position(|l| !l.is_blank())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !l.is_blank())
        .map_or(start, |i| i + 1);
    &lines[start..end.max(start)]
}

fn text(lines: &[Line<'_>]) -> String {
    lines.iter().map(|l| l.text).collect::<Vec<_>>().join("\n")
}

/// Sets `spec.phases` (and `spec.environment.setup`) from the body lines.
pub(crate) fn split(b: &mut Builder, body: &[Line<'_>], shell: Option<String>) {
    let mut setup: Vec<Line<'_>> = Vec::new();
    let mut sections: Vec<Section<'_>> = Vec::new();
    for line in body {
        match marker(line) {
            Some(Marker::Phase(name)) => {
                let mut name = if name.is_empty() {
                    format!("phase-{}", sections.len() + 1)
                } else {
                    name.to_string()
                };
                if sections.iter().any(|s| s.name == name) {
                    let renamed = format!("{name}-{}", sections.len() + 1);
                    b.warn(
                        Some(line.number),
                        format!("a phase named `{name}` exists already; this one is `{renamed}`"),
                    );
                    name = renamed;
                }
                sections.push(Section {
                    name,
                    line: line.number,
                    patterns: Vec::new(),
                    lines: Vec::new(),
                });
            }
            Some(Marker::Pattern(pattern)) => match sections.last_mut() {
                Some(section) if !pattern.is_empty() => section.patterns.push(pattern.to_string()),
                _ => b.warn(
                    Some(line.number),
                    "an `atlas: pattern` marker needs a pattern and a phase before it; ignored",
                ),
            },
            None => match sections.last_mut() {
                Some(section) => section.lines.push(*line),
                None => setup.push(*line),
            },
        }
    }
    if sections.is_empty() {
        b.workflow.spec.phases = vec![Phase {
            name: "main".into(),
            run: text(body),
            shell,
            source_lines: ranges(body),
            ..Default::default()
        }];
        return;
    }
    let setup = trim_blank(&setup);
    if !setup.is_empty() {
        b.workflow.spec.environment.setup = Some(text(setup));
    }
    b.workflow.spec.phases = sections
        .into_iter()
        .map(|s| {
            let lines = trim_blank(&s.lines);
            if lines.is_empty() {
                b.warn(Some(s.line), format!("phase `{}` has no commands", s.name));
            }
            Phase {
                name: s.name,
                run: text(lines),
                shell: shell.clone(),
                patterns: s.patterns,
                source_lines: ranges(lines),
                ..Default::default()
            }
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use crate::{import, ImportOptions};

    #[test]
    fn markers_split_the_body_into_phases_with_patterns_and_setup() {
        let script = "#!/bin/bash\n#SBATCH -N 1\nexport A=1\n\n# atlas: phase prep\necho prep\n# atlas: phase train\n# atlas: pattern loss=(?P<loss>[0-9.]+)\necho loss=1\n";
        let w = import(script, &ImportOptions::default()).unwrap().workflow;
        assert_eq!(w.spec.environment.setup.as_deref(), Some("export A=1"));
        let names: Vec<_> = w.spec.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["prep", "train"]);
        assert_eq!(w.spec.phases[1].patterns, ["loss=(?P<loss>[0-9.]+)"]);
        assert_eq!(w.spec.phases[1].run, "echo loss=1");
        assert_eq!(w.spec.phases[1].source_lines[0].start, 9);
    }

    #[test]
    fn without_markers_there_is_one_phase() {
        let w = import("#SBATCH -N 1\necho hi\n", &ImportOptions::default())
            .unwrap()
            .workflow;
        assert_eq!(w.spec.phases.len(), 1);
        assert_eq!(w.spec.environment.setup, None);
    }
}
