//! PBS Pro / OpenPBS / Torque (`#PBS`), following qsub(1B): directives may be indented and are
//! read until the first command; `-l` lists map onto the `select` model.

use atlas_spec::MailEvent;

use super::pbs_resources::{self, Layout};
use super::{
    apply_options, dependency_list, set_array, set_dependencies, set_name, set_path, set_text,
    split_directive,
};
use crate::builder::{Builder, Field};
use crate::options::{opt, Arg, OptDef, Style};
use crate::script::{directive, Line};

#[derive(Debug, Clone, Copy)]
pub(crate) enum Act {
    Text(Field),
    Name,
    Queue,
    Resources,
    Array,
    Attribute,
    Path(Field),
    Join,
    MailEvents,
    MailUsers,
    ExportAll,
    Variables,
    Rerunnable,
    NodeExclusive,
    Ignore(&'static str),
    Unsupported(&'static str),
}

use Act::*;
use Arg::{None as Flag, Required as Val};

/// qsub's options (PBS Pro 2021+, Torque 6).
static OPTIONS: &[OptDef<Act>] = &[
    opt(&["-N"], Val, Name),
    opt(&["-q"], Val, Queue),
    opt(&["-A"], Val, Text(Field::Account)),
    opt(&["-P"], Val, Text(Field::Account)),
    opt(&["-l"], Val, Resources),
    opt(&["-J", "-t"], Val, Array),
    opt(&["-W"], Val, Attribute),
    opt(&["-o"], Val, Path(Field::Output)),
    opt(&["-e"], Val, Path(Field::Error)),
    opt(&["-j"], Val, Join),
    opt(&["-m"], Val, MailEvents),
    opt(&["-M"], Val, MailUsers),
    opt(&["-V"], Flag, ExportAll),
    opt(&["-v"], Val, Variables),
    opt(&["-d", "-w"], Val, Text(Field::WorkingDirectory)),
    opt(&["-a"], Val, Text(Field::Begin)),
    opt(
        &["-S"],
        Val,
        Ignore("the shell; Atlas runs the commands with bash"),
    ),
    opt(&["-r"], Val, Rerunnable),
    // Torque's qsub(1): `-n` "node-exclusive" (PBS Pro has `-l place=excl` instead).
    opt(&["-n"], Flag, NodeExclusive),
    opt(&["-p"], Val, Ignore("priority is site policy")),
    opt(
        &["-k"],
        Val,
        Ignore("where output is kept on the execution host"),
    ),
    opt(&["-c"], Val, Ignore("PBS checkpointing")),
    opt(
        &["-C"],
        Val,
        Ignore("the directive prefix only changes on the command line"),
    ),
    opt(&["-h"], Flag, Unsupported("submitting held")),
    opt(&["-I"], Flag, Unsupported("interactive jobs")),
    opt(&["-X"], Flag, Unsupported("X11 forwarding")),
    opt(&["-u"], Val, Unsupported("running as another user")),
    opt(&["-G"], Flag, Unsupported("a GUI session")),
    opt(&["-R"], Val, Unsupported("removing output files")),
    opt(&["-z"], Flag, Ignore("affects qsub's own output only")),
    opt(&["-f"], Flag, Ignore("affects qsub's own behaviour only")),
    opt(&["-x"], Flag, Ignore("affects qsub's own behaviour only")),
];

/// Reads the directives; returns the line numbers that were directives.
pub(crate) fn read(b: &mut Builder, lines: &[Line<'_>]) -> Vec<u32> {
    let mut directives = Vec::new();
    let mut layout = Layout::default();
    let mut join = None;
    let header_end = lines
        .iter()
        .position(|l| !(l.is_blank() || l.is_comment()))
        .unwrap_or(lines.len());
    for line in &lines[header_end..] {
        if directive(line, "#PBS", true).is_some() {
            b.warn(
                Some(line.number),
                format!(
                    "`{}` comes after the first command; qsub ignores it, and so does Atlas",
                    line.text.trim()
                ),
            );
        }
    }
    for line in &lines[..header_end] {
        let Some(rest) = directive(line, "#PBS", true) else {
            continue;
        };
        directives.push(line.number);
        if let Some(words) = split_directive(b, line, rest, false) {
            apply_options(
                b,
                line,
                &words,
                OPTIONS,
                Style::Getopt,
                "not a qsub option Atlas knows",
                |b, e, act, value| {
                    if let Join = act {
                        join = Some((e, value.to_string()));
                    }
                    apply(b, e, act, value, &mut layout);
                },
            );
        }
    }
    finish(b, &layout, join);
    directives
}

fn apply(b: &mut Builder, e: usize, act: Act, value: &str, layout: &mut Layout) {
    match act {
        Text(field) => set_text(b, e, field, value),
        Name => set_name(b, e, value),
        Queue => {
            let (queue, server) = value.split_once('@').unwrap_or((value, ""));
            set_text(b, e, Field::Queue, queue);
            if !server.is_empty() {
                b.note(e, format!("the server `{server}` is not carried over"));
            }
        }
        Resources => pbs_resources::apply(b, e, value, layout),
        // qsub(1B): `-r y|n`, whether the job is rerunnable.
        Rerunnable => match value {
            "y" => b.set_requeue(e, true),
            "n" => b.set_requeue(e, false),
            other => b.invalid(e, format!("`-r {other}`: qsub takes `y` or `n`")),
        },
        NodeExclusive => {
            b.set_exclusive(e, true);
            b.note(e, "Torque's node-exclusive flag");
        }
        Array => set_array(b, e, value),
        Attribute => attribute(b, e, value),
        Path(field) => {
            let path = match value.split_once(':') {
                Some((host, path)) if !host.contains('/') => {
                    b.note(e, format!("the host `{host}` is not carried over"));
                    path
                }
                _ => value,
            };
            set_path(b, e, field, path, &[]);
        }
        Join => match value {
            "oe" | "eo" => {}
            "n" => b.ignored(e, "the two streams stay separate, as without -j"),
            other => b.invalid(e, format!("`{other}` is not oe, eo or n")),
        },
        MailEvents => mail_events(b, e, value),
        MailUsers => {
            b.claim(e, Field::MailUsers);
            b.workflow
                .spec
                .scheduling
                .mail
                .get_or_insert_with(Default::default)
                .users = value
                .split(',')
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .collect();
        }
        ExportAll => {
            b.claim(e, Field::ExportAll);
            b.workflow.spec.environment.export_all = Some(true);
        }
        Variables => {
            for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                match item.split_once('=') {
                    Some((name, val)) => {
                        b.mark_field(e, "spec.environment.variables");
                        b.workflow
                            .spec
                            .environment
                            .variables
                            .insert(name.into(), val.into());
                    }
                    None => b.note(
                        e,
                        format!(
                            "`{item}` is taken from the submitting shell and has no value here"
                        ),
                    ),
                }
            }
            if b.report.directives[e].field.is_none() {
                b.unsupported(e, "");
            }
        }
        Ignore(why) => b.ignored(e, why),
        Unsupported(why) => b.unsupported(e, why),
    }
}

/// `-W name=value`: `depend=…`, `group_list=…`, `umask=…`, `sandbox=…`.
fn attribute(b: &mut Builder, e: usize, value: &str) {
    let (name, val) = value.split_once('=').unwrap_or((value, ""));
    match name.trim() {
        "depend" => {
            let (deps, mode, unsupported) = dependency_list(val);
            set_dependencies(b, e, deps, mode, unsupported);
        }
        "umask" | "sandbox" | "block" | "run_count" => {
            b.ignored(e, format!("{name} is host or qsub behaviour"))
        }
        "group_list" => b.unsupported(e, "a UNIX group to run as"),
        "stagein" | "stageout" => {
            b.unsupported(e, "PBS file staging to named hosts; use spec.data")
        }
        other => b.unsupported(e, format!("the job attribute `{other}`")),
    }
}

/// `-m abe` / `-m n`.
fn mail_events(b: &mut Builder, e: usize, value: &str) {
    let mut events = Vec::new();
    for c in value.chars() {
        match c {
            'a' => events.push(MailEvent::Fail),
            'b' => events.push(MailEvent::Begin),
            'e' => events.push(MailEvent::End),
            'n' | 'j' => {}
            other => return b.invalid(e, format!("`{other}` is not a mail event (a, b, e, n)")),
        }
    }
    events.sort();
    b.claim(e, Field::MailEvents);
    b.workflow
        .spec
        .scheduling
        .mail
        .get_or_insert_with(Default::default)
        .events = events;
}

/// After all directives: a job-wide request without `select` is one chunk on one node;
/// `-j oe` sends standard error into the output file.
fn finish(b: &mut Builder, layout: &Layout, join: Option<(usize, String)>) {
    if let (None, Some(e)) = (layout.chunk_entry, layout.job_wide_entry) {
        b.set_count(e, Field::Nodes, 1);
        b.set_count(e, Field::TasksPerNode, 1);
        b.note(
            e,
            "job-wide resources are one chunk: select=1 (one node, one task)",
        );
    }
    if let Some((e, how)) = join {
        let s = &b.workflow.spec.scheduling;
        let (from, to) = match how.as_str() {
            "oe" => (s.output.clone(), Field::Error),
            "eo" => (s.error.clone(), Field::Output),
            _ => return,
        };
        let joined = from.unwrap_or_else(|| "{jobName}.o{jobId}".to_string());
        b.set_text(e, to, joined);
        b.note(e, "both streams go to one file");
    }
}
