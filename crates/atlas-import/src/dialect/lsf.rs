//! LSF (`#BSUB`), following bsub(1): directives are read anywhere in the file, after optional
//! white space, also after commands; several options may share a line; for a repeated option
//! the last one wins. `##BSUB` and `# BSUB` are comments.

use atlas_spec::{DataItem, Dependency, DependencyCondition, DependencyMode, MailEvent};

use super::lsf_resreq::{apply_gpu, apply_resreq};
use super::{
    apply_options, set_array, set_count, set_dependencies, set_name, set_path, set_text,
    split_directive,
};
use crate::builder::{Builder, Field};
use crate::options::{opt, Arg, OptDef, Style};
use crate::script::{directive, Line};
use crate::units::{lsf_time, memory, MemoryDialect};

#[derive(Debug, Clone, Copy)]
pub(crate) enum Act {
    Text(Field),
    Count(Field),
    JobName,
    Tasks,
    Queue,
    ResReq,
    Gpu,
    MemLimit,
    Time,
    Exclusive,
    Path(Field),
    MailUser,
    Mail(MailEvent),
    Depend,
    Env,
    Stage,
    WarnAction,
    WarnTime,
    Rerun(bool),
    Ignore(&'static str),
    Unsupported(&'static str),
}

use Act::*;
use Arg::{None as Flag, Required as Val};

/// bsub's options (LSF 10.1).
static OPTIONS: &[OptDef<Act>] = &[
    opt(&["-J"], Val, JobName),
    opt(&["-q"], Val, Queue),
    opt(&["-P"], Val, Text(Field::Account)),
    opt(&["-n"], Val, Tasks),
    opt(&["-nnodes"], Val, Count(Field::Nodes)),
    opt(&["-R"], Val, ResReq),
    opt(&["-gpu"], Val, Gpu),
    opt(&["-M"], Val, MemLimit),
    opt(&["-W"], Val, Time),
    opt(&["-x"], Flag, Exclusive),
    opt(&["-o", "-oo"], Val, Path(Field::Output)),
    opt(&["-e", "-eo"], Val, Path(Field::Error)),
    opt(&["-u"], Val, MailUser),
    opt(&["-B"], Flag, Mail(MailEvent::Begin)),
    opt(&["-N"], Flag, Mail(MailEvent::End)),
    opt(&["-Ne"], Flag, Mail(MailEvent::Fail)),
    opt(&["-w"], Val, Depend),
    opt(&["-cwd"], Val, Text(Field::WorkingDirectory)),
    opt(&["-b"], Val, Text(Field::Begin)),
    opt(&["-env"], Val, Env),
    opt(&["-f"], Val, Stage),
    opt(
        &["-L"],
        Val,
        Ignore("login shell for the job; each target brings its own shell"),
    ),
    opt(
        &["-We"],
        Val,
        Ignore("an estimated run time, a scheduling hint"),
    ),
    opt(&["-Jd"], Val, Ignore("a job description")),
    opt(&["-sp"], Val, Ignore("user priority is site policy")),
    opt(&["-r"], Flag, Rerun(true)),
    opt(&["-rn"], Flag, Rerun(false)),
    opt(&["-K"], Flag, Ignore("Atlas always watches the job")),
    opt(&["-g"], Val, Ignore("an LSF job group")),
    opt(&["-hl"], Flag, Ignore("host-based memory/swap limits")),
    opt(&["-ul"], Flag, Ignore("user shell limits")),
    opt(
        &["-outdir"],
        Val,
        Ignore("the output directory; -o/-e paths are carried over"),
    ),
    opt(
        &["-freq"],
        Val,
        Ignore("CPU frequency control is site-specific"),
    ),
    opt(&["-G"], Val, Unsupported("an LSF fair-share user group")),
    opt(&["-app"], Val, Unsupported("an LSF application profile")),
    opt(&["-a"], Val, Unsupported("an LSF esub application")),
    opt(
        &["-m"],
        Val,
        Unsupported("named hosts or host groups do not exist elsewhere"),
    ),
    opt(
        &["-alloc_flags"],
        Val,
        Unsupported("site allocation flags (e.g. gpumps, smt4)"),
    ),
    opt(&["-csm"], Val, Unsupported("CSM allocation")),
    opt(&["-t"], Val, Unsupported("a termination deadline")),
    opt(&["-wa"], Val, WarnAction),
    opt(&["-wt"], Val, WarnTime),
    opt(&["-c"], Val, Unsupported("a CPU time limit")),
    opt(&["-C"], Val, Unsupported("a core file size limit")),
    opt(&["-D"], Val, Unsupported("a data segment limit")),
    opt(&["-F"], Val, Unsupported("a file size limit")),
    opt(&["-S"], Val, Unsupported("a stack size limit")),
    opt(&["-v"], Val, Unsupported("a swap limit")),
    opt(&["-p"], Val, Unsupported("a process count limit")),
    opt(&["-T"], Val, Unsupported("a thread count limit")),
    opt(&["-E"], Val, Unsupported("a pre-execution command")),
    opt(&["-Ep"], Val, Unsupported("a post-execution command")),
    opt(&["-k"], Val, Unsupported("LSF checkpointing")),
    opt(&["-H"], Flag, Unsupported("submitting held")),
    opt(
        &["-I", "-Ip", "-Is", "-IS", "-ISp", "-ISs", "-IX"],
        Flag,
        Unsupported("interactive jobs"),
    ),
    opt(
        &["-i", "-is"],
        Val,
        Unsupported("standard input from a file"),
    ),
    opt(&["-sla"], Val, Unsupported("an LSF service class")),
    opt(&["-XF"], Flag, Unsupported("X11 forwarding")),
    opt(
        &["-data"],
        Val,
        Unsupported("LSF Data Manager requirements"),
    ),
    opt(&["-jsdl", "-jsdl_strict"], Val, Unsupported("a JSDL file")),
    opt(
        &["-ext", "-extsched"],
        Val,
        Unsupported("external scheduler options"),
    ),
    opt(&["-network"], Val, Unsupported("a network requirement")),
    opt(&["-Zs"], Flag, Unsupported("spooling the command file")),
    opt(&["-tty"], Flag, Unsupported("a terminal")),
];

/// LSF's output-file patterns (bsub -o: `%J` job id, `%I` array index).
const PATTERNS: &[(char, &str)] = &[('J', "{jobId}"), ('I', "{arrayIndex}")];

/// Reads the directives; returns the line numbers that were directives.
pub(crate) fn read(b: &mut Builder, lines: &[Line<'_>]) -> Vec<u32> {
    let mut directives = Vec::new();
    for line in lines {
        let Some(rest) = directive(line, "#BSUB", true) else {
            continue;
        };
        directives.push(line.number);
        if let Some(words) = split_directive(b, line, rest, false) {
            apply_options(
                b,
                line,
                &words,
                OPTIONS,
                Style::Words,
                "not a bsub option Atlas knows",
                apply,
            );
        }
    }
    finish(b);
    directives
}

fn apply(b: &mut Builder, e: usize, act: Act, value: &str) {
    match act {
        Text(field) => set_text(b, e, field, value),
        Count(field) => set_count(b, e, field, value),
        JobName => job_name(b, e, value),
        Tasks => {
            let (min, max) = value.split_once(',').unwrap_or((value, ""));
            set_count(b, e, Field::Tasks, min);
            if !max.is_empty() {
                b.note(e, format!("a range of slots; the minimum ({min}) is used, the maximum ({max}) is not carried over"));
            }
        }
        Queue => {
            let mut queues = value.split_whitespace();
            set_text(b, e, Field::Queue, queues.next().unwrap_or(""));
            let rest: Vec<&str> = queues.collect();
            if !rest.is_empty() {
                b.note(
                    e,
                    format!(
                        "LSF picks among several queues; only the first is kept (also: {})",
                        rest.join(" ")
                    ),
                );
            }
        }
        ResReq => apply_resreq(b, e, value),
        Gpu => {
            let gpu_fields = [
                Field::GpusPerNode,
                Field::GpusPerTask,
                Field::GpuType,
                Field::MemoryPerGpu,
            ];
            b.replace_all(e, &gpu_fields);
            apply_gpu(b, e, value);
        }
        // bsub(1): `-M mem_limit[!]`; the `!` makes the limit hard (LSF kills at it).
        MemLimit => match memory(
            value.trim().trim_end_matches('!'),
            MemoryDialect::Lsf(b.lsf_unit),
        ) {
            // bsub(1): -M is a per-process (or per-job) limit, `rusage[mem=]` the per-host
            // reservation; the reservation is the request, so a limit never replaces it.
            Ok(_)
                if b.owner(Field::MemoryPerNode)
                    .is_some_and(|o| b.report.directives[o].option == "-R") =>
            {
                let line = b
                    .owner(Field::MemoryPerNode)
                    .map(|o| b.report.directives[o].line);
                b.ignored(e, format!("-M is a memory limit; the request is rusage[mem] (line {}), which it does not replace", line.unwrap_or(0)));
            }
            Ok(q) => {
                b.set_quantity(e, Field::MemoryPerNode, q);
                let unit = b.lsf_unit.name();
                b.note(e, format!("-M is LSF's memory limit, taken as the memory per node; a bare number is {unit} (the site's LSF_UNIT_FOR_LIMITS; `atlas import --lsf-unit`)"));
            }
            Err(why) => b.invalid(e, why.to_string()),
        },
        Time => {
            match lsf_time(value) {
                Ok((d, host)) => {
                    b.set_walltime(e, d);
                    if let Some(host) = host {
                        b.note(e, format!("the time was normalised to host `{host}`; Atlas keeps it as written"));
                    }
                }
                Err(why) => b.invalid(e, why.to_string()),
            }
        }
        Exclusive => b.set_exclusive(e, true),
        Rerun(may) => b.set_requeue(e, may),
        Path(field) => set_path(b, e, field, value, PATTERNS),
        MailUser => {
            b.claim(e, Field::MailUsers);
            b.workflow
                .spec
                .scheduling
                .mail
                .get_or_insert_with(Default::default)
                .users = vec![value.trim().to_string()];
        }
        Mail(event) => {
            b.mark_field(e, "spec.scheduling.mail.events");
            let mail = b
                .workflow
                .spec
                .scheduling
                .mail
                .get_or_insert_with(Default::default);
            if !mail.events.contains(&event) {
                mail.events.push(event);
                mail.events.sort();
            }
        }
        Depend => depend(b, e, value),
        Env => env(b, e, value),
        Stage => stage(b, e, value),
        // bsub(1): -wa sends the signal -wt ([hour:]minute) before the run limit.
        WarnAction => super::hint_checkpoint(b, e, Some(value.trim_matches('\'')), None),
        WarnTime => match lsf_time(value) {
            Ok((lead, _)) => super::hint_checkpoint(b, e, None, Some(lead)),
            Err(why) => b.invalid(e, why.to_string()),
        },
        Ignore(why) => b.ignored(e, why),
        Unsupported(why) => b.unsupported(e, why),
    }
}

/// `-J "name[1-10:2]%3"`: a name, and an array when there are brackets.
fn job_name(b: &mut Builder, e: usize, value: &str) {
    match value.split_once('[') {
        Some((name, rest)) => {
            let Some((indices, after)) = rest.split_once(']') else {
                return b.invalid(e, format!("`{value}`: the `[` of the array is not closed"));
            };
            if !name.is_empty() {
                set_name(b, e, name);
            }
            set_array(b, e, &format!("{indices}{after}"));
        }
        None => set_name(b, e, value),
    }
}

/// `-w 'done(1234) && ended("prep")'`.
fn depend(b: &mut Builder, e: usize, value: &str) {
    let any = value.contains("||");
    if (any && value.contains("&&")) || value.contains('!') {
        return b.unsupported(
            e,
            "a dependency expression mixing &&, || or ! has no portable counterpart",
        );
    }
    let mut deps = Vec::new();
    let mut unsupported = Vec::new();
    for term in value.split(if any { "||" } else { "&&" }).map(str::trim) {
        let Some((func, arg)) = term.strip_suffix(')').and_then(|t| t.split_once('(')) else {
            // A bare job id or name means done().
            if !term.is_empty() {
                deps.push(Dependency {
                    condition: DependencyCondition::AfterOk,
                    jobs: vec![term.trim_matches('"').to_string()],
                });
            }
            continue;
        };
        let job = arg
            .split(',')
            .next()
            .unwrap_or(arg)
            .trim()
            .trim_matches(['"', '\''])
            .to_string();
        let condition = match func.trim() {
            "done" => DependencyCondition::AfterOk,
            "ended" => DependencyCondition::AfterAny,
            "exit" => DependencyCondition::AfterNotOk,
            "started" => DependencyCondition::After,
            _ => {
                unsupported.push(term.to_string());
                continue;
            }
        };
        deps.push(Dependency {
            condition,
            jobs: vec![job],
        });
    }
    let mode = if any {
        DependencyMode::Any
    } else {
        DependencyMode::All
    };
    set_dependencies(b, e, deps, mode, unsupported);
}

/// `-env "all, A=1, B"` / `-env none`.
fn env(b: &mut Builder, e: usize, value: &str) {
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match (item.to_ascii_lowercase().as_str(), item.split_once('=')) {
            ("all", _) | ("none", _) => {
                b.claim(e, Field::ExportAll);
                b.workflow.spec.environment.export_all = Some(item.eq_ignore_ascii_case("all"));
            }
            (_, Some((name, val))) => {
                b.mark_field(e, "spec.environment.variables");
                b.workflow
                    .spec
                    .environment
                    .variables
                    .insert(name.trim().into(), val.trim().trim_matches('"').into());
            }
            (_, None) => b.note(
                e,
                format!("`{item}` is taken from the submitting shell and has no value here"),
            ),
        }
    }
}

/// `-f "local_file op [remote_file]"`: `>` copies in, `<` copies out, `<>`/`><` both.
fn stage(b: &mut Builder, e: usize, value: &str) {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let (local, op, remote) = match parts.as_slice() {
        [l, op] => (*l, *op, *l),
        [l, op, r] => (*l, *op, *r),
        _ => {
            return b.invalid(
                e,
                format!("`{value}` is not \"local_file op [remote_file]\""),
            )
        }
    };
    let item = DataItem {
        source: local.to_string(),
        path: remote.to_string(),
        ..Default::default()
    };
    let data = &mut b.workflow.spec.data;
    match op {
        ">" | ">>" => data.inputs.push(item),
        "<" | "<<" => data.outputs.push(DataItem {
            source: remote.into(),
            path: local.into(),
            ..Default::default()
        }),
        "<>" | "><" => {
            data.inputs.push(item);
            data.outputs.push(DataItem {
                source: remote.into(),
                path: local.into(),
                ..Default::default()
            });
        }
        other => {
            return b.invalid(
                e,
                format!("`{other}` is not a file transfer operator (>, <, <<, >>, <>, ><)"),
            )
        }
    }
    b.mark_field(e, "spec.data");
}

/// After all directives: `span[hosts=1]` puts every task on the one node.
fn finish(b: &mut Builder) {
    let r = &b.workflow.spec.resources;
    if let (Some(1), Some(tasks), None) = (r.nodes, r.tasks, r.tasks_per_node) {
        if let Some(e) = b.owner(Field::Nodes) {
            b.set_count(e, Field::TasksPerNode, tasks);
        }
    }
}
