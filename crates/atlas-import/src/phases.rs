//! Phase markers in a job script: `# atlas: phase NAME` starts a phase, `# atlas: pattern REGEX`
//! adds an output pattern to it, `# atlas: packages NAME…` and `# atlas: pip SPEC…` list the
//! software a container image of the workflow needs (`spec.image`), `# atlas: checkpoint FILE
//! [signal=USR1] [grace=2m]` says how the job saves its state for after-hours windows
//! (`spec.checkpoint`). They are comments to every scheduler, so the script still runs
//! unchanged where it came from. Lines before the first marker are the setup that runs before
//! every phase; without markers the whole body is one phase, `main`.

use atlas_spec::Phase;

use crate::builder::Builder;
use crate::script::{ranges, trim_blank, Line};

enum Marker<'a> {
    Phase(&'a str),
    Pattern(&'a str),
    Packages(&'a str),
    Pip(&'a str),
    Checkpoint(&'a str),
}

fn marker<'a>(line: &Line<'a>) -> Option<Marker<'a>> {
    let rest = line
        .trimmed()
        .strip_prefix('#')?
        .trim_start()
        .strip_prefix("atlas:")?
        .trim_start();
    let (word, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let value = value.trim();
    match word {
        "phase" => Some(Marker::Phase(value)),
        "pattern" => Some(Marker::Pattern(value)),
        "packages" => Some(Marker::Packages(value)),
        "pip" => Some(Marker::Pip(value)),
        "checkpoint" => Some(Marker::Checkpoint(value)),
        _ => None,
    }
}

/// Adds the words of a `packages`/`pip` marker to `spec.image`.
fn add_image_software(b: &mut Builder, line: &Line<'_>, words: &str, pip: bool) {
    if words.is_empty() {
        b.warn(
            Some(line.number),
            "an `atlas: packages`/`atlas: pip` marker needs at least one name; ignored",
        );
        return;
    }
    let image = b.workflow.spec.image.get_or_insert_with(Default::default);
    let list = if pip {
        &mut image.pip
    } else {
        &mut image.packages
    };
    list.extend(words.split_whitespace().map(String::from));
}

/// Sets `spec.checkpoint` from a `checkpoint` marker: the file, then `signal=` and `grace=`
/// (which win over the directives'); whether it gave the signal and the grace.
fn set_checkpoint(b: &mut Builder, line: &Line<'_>, words: &str) -> (bool, bool) {
    let mut words = words.split_whitespace();
    let Some(path) = words.next() else {
        b.warn(
            Some(line.number),
            "an `atlas: checkpoint` marker needs the checkpoint's file; ignored",
        );
        return (false, false);
    };
    let mut given = (false, false);
    let mut checkpoint = atlas_spec::Checkpoint {
        signal: "USR1".into(),
        path: path.to_string(),
        grace: None,
        validate: None,
    };
    for word in words {
        match word.split_once('=') {
            Some(("signal", signal)) => {
                checkpoint.signal = signal.to_string();
                given.0 = true;
            }
            Some(("grace", grace)) => match grace.parse::<atlas_spec::Duration>() {
                Ok(grace) => {
                    checkpoint.grace = Some(grace);
                    given.1 = true;
                }
                Err(e) => b.warn(
                    Some(line.number),
                    format!("checkpoint grace `{grace}`: {e}; the default (2m) is kept"),
                ),
            },
            _ => b.warn(
                Some(line.number),
                format!("`{word}` is not `signal=SIG` or `grace=DURATION`; ignored"),
            ),
        }
    }
    if checkpoint.signal_number().is_none() {
        b.warn(
            Some(line.number),
            format!(
                "checkpoint signal `{}` is not USR1, USR2, TERM, INT or HUP; USR1 is used",
                checkpoint.signal
            ),
        );
        checkpoint.signal = "USR1".into();
    }
    b.workflow.spec.checkpoint = Some(checkpoint);
    given
}

/// The lines of one phase.
struct Section<'a> {
    name: String,
    line: u32,
    patterns: Vec<String>,
    lines: Vec<Line<'a>>,
}

fn text(lines: &[Line<'_>]) -> String {
    lines.iter().map(|l| l.text).collect::<Vec<_>>().join("\n")
}

/// Sets `spec.phases` (and `spec.environment.setup`) from the body lines.
pub(crate) fn split(b: &mut Builder, body: &[Line<'_>], shell: Option<String>) {
    let mut marker_gave = (false, false);
    split_sections(b, body, shell, &mut marker_gave);
    b.finish_checkpoint(marker_gave.0, marker_gave.1);
}

fn split_sections(
    b: &mut Builder,
    body: &[Line<'_>],
    shell: Option<String>,
    marker_gave: &mut (bool, bool),
) {
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
            Some(Marker::Packages(words)) => add_image_software(b, line, words, false),
            Some(Marker::Pip(words)) => add_image_software(b, line, words, true),
            Some(Marker::Checkpoint(words)) => *marker_gave = set_checkpoint(b, line, words),
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

    #[test]
    fn a_checkpoint_marker_sets_the_checkpoint() {
        let script = "#!/bin/bash\n#SBATCH -N 1\n# atlas: checkpoint ck.npz signal=SIGUSR2 grace=30s\n# atlas: phase a\necho a\n# atlas: checkpoint\n";
        let import = crate::import(script, &Default::default()).unwrap();
        let checkpoint = import.workflow.spec.checkpoint.unwrap();
        assert_eq!(checkpoint.path, "ck.npz");
        assert_eq!(checkpoint.signal_number(), Some(12));
        assert_eq!(checkpoint.grace().as_secs(), 30);
        assert!(import
            .report
            .warnings
            .iter()
            .any(|w| w.message.contains("needs the checkpoint's file")));
    }

    #[test]
    fn packages_and_pip_markers_fill_the_image() {
        let script = "#!/bin/bash\n#SBATCH -N 1\n# atlas: packages python3-numpy python3-sklearn\n# atlas: pip torch==2.3\n# atlas: phase a\n# atlas: packages\necho a\n";
        let imported = import(script, &ImportOptions::default()).unwrap();
        let image = imported.workflow.spec.image.unwrap();
        assert_eq!(image.packages, ["python3-numpy", "python3-sklearn"]);
        assert_eq!(image.pip, ["torch==2.3"]);
        assert_eq!(imported.workflow.spec.phases[0].run, "echo a");
        assert!(imported
            .report
            .warnings
            .iter()
            .any(|w| w.line == Some(6) && w.message.contains("at least one name")));
    }
}
