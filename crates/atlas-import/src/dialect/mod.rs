//! One module per scheduler dialect, and the value handling they share.

pub(crate) mod lsf;
mod lsf_resreq;
pub(crate) mod pbs;
mod pbs_resources;
pub(crate) mod slurm;

use atlas_spec::{ArraySpec, Dependency, DependencyCondition, DependencyMode};

use crate::builder::{Builder, Field};
use crate::options::{parse, OptDef, Style};
use crate::script::Line;
use crate::units::{output_pattern, ValueError};
use crate::words::words;

/// Splits a directive's text into words; an unterminated quote makes the line one `invalid`
/// entry and `None`. `comments`: an unquoted `#` ends the directive (Slurm).
pub(crate) fn split_directive(
    b: &mut Builder,
    line: &Line<'_>,
    rest: &str,
    comments: bool,
) -> Option<Vec<String>> {
    match words(rest, comments) {
        Ok(words) => Some(words),
        Err(why) => {
            let e = b.entry(line.number, line.text, rest.trim(), None);
            b.invalid(e, why);
            None
        }
    }
}

/// One report entry per option occurrence in `words`; known, well-formed options go to
/// `apply(builder, entry, action, value)`; unknown ones are `unsupported` with `unknown_note`.
pub(crate) fn apply_options<A: Copy + 'static>(
    b: &mut Builder,
    line: &Line<'_>,
    words: &[String],
    table: &'static [OptDef<A>],
    style: Style,
    unknown_note: &str,
    mut apply: impl FnMut(&mut Builder, usize, A, &str),
) {
    for found in parse(words, table, style) {
        let e = b.entry(
            line.number,
            line.text,
            &found.option,
            found.value.as_deref(),
        );
        match (found.def, found.problem) {
            (Some(_), Some(problem)) => b.invalid(e, problem),
            (None, Some(problem)) => b.unsupported(e, problem),
            (None, None) => b.unsupported(e, unknown_note),
            (Some(def), None) => apply(b, e, def.action, found.value.as_deref().unwrap_or("")),
        }
    }
}

/// Sets a whole-number field, or marks the entry invalid.
pub(crate) fn set_count(b: &mut Builder, e: usize, field: Field, value: &str) {
    match parse_count(value) {
        Ok(n) => b.set_count(e, field, n),
        Err(why) => b.invalid(e, why.to_string()),
    }
}

pub(crate) fn parse_count(value: &str) -> Result<u32, ValueError> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
        return Err(ValueError::NotWholeNumber(value.to_string()));
    }
    v.parse()
        .map_err(|_| ValueError::TooLarge(value.to_string()))
}

/// Sets a text field; an empty value is invalid.
pub(crate) fn set_text(b: &mut Builder, e: usize, field: Field, value: &str) {
    if value.trim().is_empty() {
        b.invalid(e, "the value is empty");
    } else {
        b.set_text(e, field, value.trim());
    }
}

/// Sets the job array from the shared `1-10:2%3` grammar.
pub(crate) fn set_array(b: &mut Builder, e: usize, value: &str) {
    match value.trim().parse::<ArraySpec>() {
        Ok(array) => {
            b.claim(e, Field::Array);
            b.workflow.spec.scheduling.array = Some(array);
        }
        Err(err) => b.invalid(e, err.to_string()),
    }
}

/// Sets an output or error path, rewriting the scheduler's `%` patterns.
pub(crate) fn set_path(
    b: &mut Builder,
    e: usize,
    field: Field,
    value: &str,
    tokens: &[(char, &str)],
) {
    if value.trim().is_empty() {
        return b.invalid(e, "the path is empty");
    }
    let (path, notes) = output_pattern(value.trim(), tokens);
    b.set_text(e, field, path);
    if !notes.is_empty() {
        b.note(e, notes.join(", "));
    }
}

/// `[type:]count`, as in Slurm's `--gpus-per-node=v100:2`.
pub(crate) fn typed_count(value: &str) -> Result<(Option<&str>, u32), ValueError> {
    match value.rsplit_once(':') {
        Some((kind, n)) => Ok((Some(kind), parse_count(n)?)),
        None => Ok((None, parse_count(value)?)),
    }
}

/// Slurm and PBS dependency lists: `type:job[:job…]` items joined by `,` (all) or `?` (any).
/// Returns the dependencies, the mode, and items that have no portable counterpart.
pub(crate) fn dependency_list(value: &str) -> (Vec<Dependency>, DependencyMode, Vec<String>) {
    let mode = if value.contains('?') {
        DependencyMode::Any
    } else {
        DependencyMode::All
    };
    let mut dependencies = Vec::new();
    let mut unsupported = Vec::new();
    for item in value
        .split([',', '?'])
        .map(str::trim)
        .filter(|i| !i.is_empty())
    {
        let mut parts = item.split(':');
        let kind = parts.next().unwrap_or_default();
        let condition = match kind.to_ascii_lowercase().as_str() {
            "after" => DependencyCondition::After,
            "afterok" => DependencyCondition::AfterOk,
            "afternotok" => DependencyCondition::AfterNotOk,
            "afterany" => DependencyCondition::AfterAny,
            "aftercorr" => DependencyCondition::AfterCorr,
            "singleton" => DependencyCondition::Singleton,
            _ => {
                unsupported.push(item.to_string());
                continue;
            }
        };
        let jobs: Vec<String> = parts
            .map(|job| job.split('+').next().unwrap_or(job).to_string())
            .filter(|j| !j.is_empty())
            .collect();
        if jobs.is_empty() && condition != DependencyCondition::Singleton {
            unsupported.push(item.to_string());
            continue;
        }
        dependencies.push(Dependency { condition, jobs });
    }
    (dependencies, mode, unsupported)
}

/// Sets dependencies parsed by the dialect.
pub(crate) fn set_dependencies(
    b: &mut Builder,
    e: usize,
    deps: Vec<Dependency>,
    mode: DependencyMode,
    unsupported: Vec<String>,
) {
    if deps.is_empty() {
        return b.invalid(
            e,
            format!("no dependency understood in `{}`", unsupported.join(",")),
        );
    }
    b.claim(e, Field::Dependencies);
    let s = &mut b.workflow.spec.scheduling;
    s.dependencies = deps;
    s.dependency_mode = (mode == DependencyMode::Any).then_some(DependencyMode::Any);
    if !unsupported.is_empty() {
        b.note(e, format!("not carried over: {}", unsupported.join(", ")));
    }
}

/// The first hetjob-free name part of a job name, for `metadata.name`.
pub(crate) fn set_name(b: &mut Builder, e: usize, name: &str) {
    let name = name.trim();
    if name.is_empty() {
        return b.invalid(e, "the job name is empty");
    }
    b.set_text(e, Field::Name, name);
}

/// A signal as a directive names it (`USR1`, `SIGUSR1`, `10`) when it is one a checkpoint may
/// be asked with (`atlas_spec::CHECKPOINT_SIGNALS`), by its name.
pub(crate) fn checkpoint_signal(text: &str) -> Option<String> {
    let text = text.trim();
    let name = text.strip_prefix("SIG").unwrap_or(text);
    atlas_spec::CHECKPOINT_SIGNALS
        .iter()
        .find(|(n, number)| n.eq_ignore_ascii_case(name) || name.parse::<i32>() == Ok(*number))
        .map(|(n, _)| n.to_string())
}

/// Records a scheduler's warning signal (and its lead time) for `spec.checkpoint`.
pub(crate) fn hint_checkpoint(
    b: &mut Builder,
    e: usize,
    signal: Option<&str>,
    grace: Option<atlas_spec::Duration>,
) {
    if let Some(signal) = signal {
        match checkpoint_signal(signal) {
            Some(name) => b.checkpoint_hint.signal = Some(name),
            None => {
                return b.unsupported(
                    e,
                    format!(
                    "signal `{signal}`: a checkpoint is asked with USR1, USR2, TERM, INT or HUP"
                ),
                )
            }
        }
    }
    if let Some(grace) = grace {
        let most = atlas_spec::Duration::from_secs(6 * 3600);
        if grace.as_secs() > most.as_secs() {
            b.note(e, "a checkpoint's grace is at most 6h; 6h is used");
        }
        b.checkpoint_hint.grace = Some(if grace.as_secs() > most.as_secs() {
            most
        } else {
            grace
        });
    }
    b.checkpoint_hint.entries.push(e);
}
