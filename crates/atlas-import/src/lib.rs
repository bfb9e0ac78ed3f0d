//! LSF, Slurm and PBS job scripts to an Atlas [`Workflow`] and a [`ConversionReport`].
//!
//! Pure functions, no I/O: give [`import`] the script's text and get back the Workflow and,
//! for every directive option, what became of it (`mapped`, `ignored`, `unsupported`,
//! `invalid`). Nothing is dropped silently: unknown options are reported, never a failure.
//! Each dialect follows its scheduler's documented rules (see the module docs of
//! `dialect::lsf`, `dialect::slurm` and `dialect::pbs`).
//!
//! ```
//! use atlas_import::{import, ImportOptions, Status};
//! let script = "#!/bin/bash\n#SBATCH --nodes=2 --time=1:30:00\nsrun ./sim\n";
//! let result = import(script, &ImportOptions::default()).unwrap();
//! assert_eq!(result.workflow.spec.resources.nodes, Some(2));
//! assert_eq!(result.workflow.spec.resources.walltime.unwrap().to_string(), "1h30m");
//! assert!(result.report.directives.iter().all(|d| d.status == Status::Mapped));
//! ```

mod body;
mod builder;
mod dialect;
mod launcher;
mod options;
mod phases;
mod report;
mod script;
mod units;
mod words;

pub use atlas_spec::Workflow;
pub use report::{ConversionReport, Dialect, DirectiveEntry, Status, Warning};
pub use units::LsfUnit;

use atlas_spec::{is_dns1123_label, to_dns1123_label};

use builder::Builder;
use script::{directive, lines, Line};

/// Annotation that keeps a job name that had to be changed into a Kubernetes name.
pub const ORIGINAL_NAME_ANNOTATION: &str = "atlas.dev/original-name";

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The dialect, or `None` to detect it from the directives.
    pub dialect: Option<Dialect>,
    /// A name to use when the script names no job (usually the file's stem).
    pub fallback_name: Option<String>,
    /// What a bare LSF memory number counts: the site's `LSF_UNIT_FOR_LIMITS` (KB by default).
    pub lsf_unit: LsfUnit,
}

/// A converted script.
#[derive(Debug, Clone)]
pub struct Import {
    /// The portable workflow.
    pub workflow: Workflow,
    /// What became of every directive.
    pub report: ConversionReport,
}

/// Why a text could not be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// No `#BSUB`, `#SBATCH` or `#PBS` directive, and no dialect was given.
    #[error("no #BSUB, #SBATCH or #PBS directive found: this does not look like an LSF, Slurm or PBS job script (give --dialect to import a plain script)")]
    NoDirectives,
    /// The result breaks a rule of the Workflow spec (a phase marker's name, a control
    /// character in a value).
    #[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Invalid {
        /// The script line it came from, when known.
        line: Option<u32>,
        /// The spec's message.
        message: String,
    },
    /// The script is longer than [`MAX_SCRIPT_BYTES`].
    #[error("the script is {0} bytes; Atlas imports scripts of at most {MAX_SCRIPT_BYTES} bytes")]
    TooLarge(usize),
    /// The text contains NUL bytes: it is binary data, not a script.
    #[error("the file holds binary data (a NUL byte at offset {0}), not a job script")]
    Binary(usize),
}

/// Directive lines each dialect would read, by that dialect's own rules.
fn count_directives(lines: &[Line<'_>], dialect: Dialect) -> usize {
    match dialect {
        Dialect::Slurm => lines
            .iter()
            .filter(|l| directive(l, "#SBATCH", false).is_some())
            .count(),
        Dialect::Lsf | Dialect::Pbs => lines
            .iter()
            .filter(|l| directive(l, dialect.prefix(), true).is_some())
            .count(),
    }
}

/// The dialect whose directives the script has most of (Slurm, LSF, PBS on a tie).
pub fn detect_dialect(script: &str) -> Option<Dialect> {
    let all = lines(script);
    best_dialect(&all).map(|(d, _)| d)
}

fn best_dialect(lines: &[Line<'_>]) -> Option<(Dialect, usize)> {
    Dialect::ALL
        .iter()
        .map(|d| (*d, count_directives(lines, *d)))
        .filter(|(_, n)| *n > 0)
        .fold(None, |best: Option<(Dialect, usize)>, (d, n)| match best {
            Some((_, m)) if m >= n => best,
            _ => Some((d, n)),
        })
}

/// Converts a job script. Fails only when the text is not a script at all.
pub fn import(script: &str, options: &ImportOptions) -> Result<Import, ImportError> {
    if script.len() > MAX_SCRIPT_BYTES {
        return Err(ImportError::TooLarge(script.len()));
    }
    if let Some(offset) = script.find('\0') {
        return Err(ImportError::Binary(offset));
    }
    let all = lines(script);
    let dialect = match options.dialect {
        Some(d) => d,
        None => best_dialect(&all).ok_or(ImportError::NoDirectives)?.0,
    };
    let mut b = Builder::new(dialect);
    b.lsf_unit = options.lsf_unit;
    let directive_lines = match dialect {
        Dialect::Slurm => dialect::slurm::read(&mut b, &all),
        Dialect::Lsf => dialect::lsf::read(&mut b, &all),
        Dialect::Pbs => dialect::pbs::read(&mut b, &all),
    };
    if directive_lines.is_empty() {
        b.warn(
            None,
            format!(
                "no {} directives: only the commands were imported",
                dialect.prefix()
            ),
        );
    }
    warn_other_dialects(&mut b, &all, dialect);
    warn_replacement_characters(&mut b, &all);
    b.derive_layout();
    // A set: a script may hold 100,000 directive lines (a Vec's `contains` made this quadratic).
    let directive_set: std::collections::HashSet<u32> = directive_lines.iter().copied().collect();
    let body: Vec<Line<'_>> = all
        .iter()
        .filter(|l| !directive_set.contains(&l.number))
        .copied()
        .collect();
    body::apply(&mut b, &body);
    name_workflow(&mut b, options.fallback_name.as_deref());
    check(&b.workflow)?;
    Ok(Import {
        workflow: b.workflow,
        report: b.report,
    })
}

/// The imported workflow passes the same validation as a written one, or the import fails
/// naming the script line the offending phase came from.
fn check(workflow: &atlas_spec::Workflow) -> Result<(), ImportError> {
    atlas_spec::check_workflow(workflow).map_err(|v| {
        let phase = v
            .path
            .strip_prefix("spec.phases[")
            .and_then(|rest| rest.split(']').next())
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| workflow.spec.phases.get(i));
        ImportError::Invalid {
            line: phase.and_then(|p| p.source_lines.first()).map(|r| r.start),
            message: v.message,
        }
    })
}

/// The longest job script Atlas imports (bytes); the same bound as a phase's shell text.
pub const MAX_SCRIPT_BYTES: usize = atlas_spec::MAX_SCRIPT_LEN;

/// Directives of another dialect are not read; say so rather than drop them silently.
fn warn_other_dialects(b: &mut Builder, lines: &[Line<'_>], dialect: Dialect) {
    for other in Dialect::ALL.into_iter().filter(|d| *d != dialect) {
        let count = count_directives(lines, other);
        if count > 0 {
            b.warn(
                None,
                format!(
                    "{count} {} line(s) were not read: the script was read as {} (use --dialect to choose)",
                    other.prefix(),
                    dialect.display_name()
                ),
            );
        }
    }
}

/// Bytes that were not UTF-8 arrive as U+FFFD: each such line gets a warning (a directive value
/// holding one is `invalid`, see `options::parse`).
fn warn_replacement_characters(b: &mut Builder, lines: &[Line<'_>]) {
    for line in lines.iter().filter(|l| l.text.contains('\u{FFFD}')) {
        b.warn(
            Some(line.number),
            "this line holds bytes that are not UTF-8; they were replaced by U+FFFD",
        );
    }
}

/// `metadata.name`: the job name (or the fallback) as a DNS-1123 label; the original is kept
/// in an annotation when it had to change.
fn name_workflow(b: &mut Builder, fallback: Option<&str>) {
    let original = b.job_name.clone().or_else(|| fallback.map(str::to_string));
    let original = original.unwrap_or_else(|| "workflow".to_string());
    let name = to_dns1123_label(&original, "workflow");
    if !is_dns1123_label(&original) {
        b.workflow
            .metadata
            .annotations
            .insert(ORIGINAL_NAME_ANNOTATION.to_string(), original);
    }
    b.workflow.metadata.name = name;
}
