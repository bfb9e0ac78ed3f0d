//! Slurm (`#SBATCH`), following sbatch(1): directives are read only at column 1 and only
//! before the first command; an unquoted `#` inside a directive starts a comment;
//! `#SBATCH hetjob` starts the next component of a heterogeneous job.

use atlas_spec::MailEvent;

use super::{
    apply_options, dependency_list, set_array, set_count, set_dependencies, set_name, set_path,
    set_text, split_directive, typed_count,
};
use crate::builder::{Builder, Field};
use crate::options::{opt, Arg, OptDef, Style};
use crate::script::{directive, Line};
use crate::units::{memory, slurm_time, MemoryDialect, ValueError};

/// What Atlas does with a Slurm option.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Act {
    Text(Field),
    Count(Field),
    Name,
    Nodes,
    Memory(Field),
    Time,
    Exclusive,
    Array,
    Dependency,
    Path(Field),
    MailType,
    MailUser,
    Gres,
    TypedGpus(Field),
    Export,
    Signal,
    Requeue(bool),
    Ignore(&'static str),
    Unsupported(&'static str),
}

use Act::*;
use Arg::{None as Flag, Optional as Opt, Required as Val};

/// sbatch's options (Slurm 22.05–24.x).
static OPTIONS: &[OptDef<Act>] = &[
    opt(&["-J", "--job-name"], Val, Name),
    opt(&["-p", "--partition"], Val, Text(Field::Queue)),
    opt(&["-A", "--account"], Val, Text(Field::Account)),
    opt(&["-q", "--qos"], Val, Text(Field::Qos)),
    opt(&["--reservation"], Val, Text(Field::Reservation)),
    opt(&["-N", "--nodes"], Val, Nodes),
    opt(&["-n", "--ntasks"], Val, Count(Field::Tasks)),
    opt(&["--ntasks-per-node"], Val, Count(Field::TasksPerNode)),
    opt(&["-c", "--cpus-per-task"], Val, Count(Field::CpusPerTask)),
    opt(&["--gres"], Val, Gres),
    opt(&["--gpus-per-node"], Val, TypedGpus(Field::GpusPerNode)),
    opt(&["--gpus-per-task"], Val, TypedGpus(Field::GpusPerTask)),
    opt(&["-G", "--gpus"], Val, TypedGpus(Field::Gpus)),
    opt(&["--mem"], Val, Memory(Field::MemoryPerNode)),
    opt(&["--mem-per-cpu"], Val, Memory(Field::MemoryPerCpu)),
    opt(&["--mem-per-gpu"], Val, Memory(Field::MemoryPerGpu)),
    opt(&["-t", "--time"], Val, Time),
    opt(&["--exclusive"], Opt, Exclusive),
    opt(&["-a", "--array"], Val, Array),
    opt(&["-d", "--dependency"], Val, Dependency),
    opt(&["-o", "--output"], Val, Path(Field::Output)),
    opt(&["-e", "--error"], Val, Path(Field::Error)),
    opt(&["--mail-type"], Val, MailType),
    opt(&["--mail-user"], Val, MailUser),
    opt(&["-D", "--chdir"], Val, Text(Field::WorkingDirectory)),
    opt(&["-C", "--constraint"], Val, Text(Field::Constraint)),
    opt(&["-b", "--begin"], Val, Text(Field::Begin)),
    opt(&["--export"], Val, Export),
    opt(
        &["--time-min"],
        Val,
        Ignore("a minimum time for backfill; the walltime is what Atlas enforces"),
    ),
    opt(&["--comment"], Val, Ignore("a free-text comment")),
    opt(
        &["--open-mode"],
        Val,
        Ignore("how output files are opened; Atlas writes its own logs"),
    ),
    opt(&["--requeue"], Flag, Requeue(true)),
    opt(&["--no-requeue"], Flag, Requeue(false)),
    opt(
        &["--parsable"],
        Flag,
        Ignore("affects sbatch's own output only"),
    ),
    opt(
        &["-Q", "--quiet"],
        Flag,
        Ignore("affects sbatch's own output only"),
    ),
    opt(
        &["-v", "--verbose"],
        Flag,
        Ignore("affects sbatch's own output only"),
    ),
    opt(
        &["-W", "--wait"],
        Flag,
        Ignore("Atlas always watches the job"),
    ),
    opt(
        &["--nice"],
        Opt,
        Ignore("priority adjustment is site policy"),
    ),
    opt(&["--priority"], Val, Ignore("priority is site policy")),
    opt(&["--hint"], Val, Ignore("a CPU binding hint")),
    opt(
        &["--cpu-freq"],
        Val,
        Ignore("CPU frequency control is site-specific"),
    ),
    opt(
        &["--gpu-bind"],
        Val,
        Ignore("GPU binding is done by the device plugin elsewhere"),
    ),
    opt(
        &["--gpu-freq"],
        Val,
        Ignore("GPU frequency control is site-specific"),
    ),
    opt(&["--gres-flags"], Val, Ignore("GRES placement flags")),
    opt(&["--mem-bind"], Val, Ignore("a memory binding hint")),
    opt(
        &["--acctg-freq"],
        Val,
        Ignore("Atlas samples the job itself"),
    ),
    opt(&["--profile"], Val, Ignore("Atlas samples the job itself")),
    opt(&["--propagate"], Opt, Ignore("resource limit propagation")),
    opt(
        &["--get-user-env"],
        Opt,
        Ignore("login environment loading"),
    ),
    opt(
        &["--kill-on-invalid-dep"],
        Val,
        Ignore("dependency failure policy"),
    ),
    opt(&["-k", "--no-kill"], Flag, Ignore("node failure policy")),
    opt(&["--wait-all-nodes"], Val, Ignore("boot wait policy")),
    opt(
        &["--wckey"],
        Val,
        Ignore("a workload characterisation key for accounting"),
    ),
    opt(&["--mcs-label"], Val, Ignore("a security label")),
    opt(&["--spread-job"], Flag, Ignore("a placement hint")),
    opt(&["--use-min-nodes"], Flag, Ignore("a placement hint")),
    opt(
        &["--test-only"],
        Flag,
        Ignore("affects sbatch's own behaviour only"),
    ),
    opt(
        &["--ignore-pbs"],
        Flag,
        Ignore("affects sbatch's own parsing only"),
    ),
    opt(&["--delay-boot"], Val, Ignore("node reboot policy")),
    opt(&["--reboot"], Flag, Ignore("node reboot policy")),
    opt(
        &["--power"],
        Val,
        Ignore("power management is site-specific"),
    ),
    opt(
        &["-w", "--nodelist"],
        Val,
        Unsupported("named hosts do not exist elsewhere"),
    ),
    opt(
        &["-x", "--exclude"],
        Val,
        Unsupported("named hosts do not exist elsewhere"),
    ),
    opt(
        &["-F", "--nodefile"],
        Val,
        Unsupported("named hosts do not exist elsewhere"),
    ),
    opt(
        &["--switches"],
        Val,
        Unsupported("network topology constraints are site-specific"),
    ),
    opt(
        &["-L", "--licenses"],
        Val,
        Unsupported("licenses are a Slurm-managed resource"),
    ),
    opt(&["--signal"], Val, Signal),
    opt(&["--cpus-per-gpu"], Val, Unsupported("CPUs per GPU")),
    opt(&["--ntasks-per-core"], Val, Unsupported("tasks per core")),
    opt(
        &["--ntasks-per-socket"],
        Val,
        Unsupported("tasks per socket"),
    ),
    opt(&["--ntasks-per-gpu"], Val, Unsupported("tasks per GPU")),
    opt(&["--gpus-per-socket"], Val, Unsupported("GPUs per socket")),
    opt(&["--sockets-per-node"], Val, Unsupported("a socket layout")),
    opt(&["--cores-per-socket"], Val, Unsupported("a core layout")),
    opt(&["--threads-per-core"], Val, Unsupported("a thread layout")),
    opt(
        &["-B", "--extra-node-info"],
        Val,
        Unsupported("a socket/core/thread layout"),
    ),
    opt(
        &["--mincpus"],
        Val,
        Unsupported("a minimum CPU count per node"),
    ),
    opt(&["--tmp"], Val, Unsupported("local disk space")),
    opt(
        &["-m", "--distribution"],
        Val,
        Unsupported("a task distribution"),
    ),
    opt(
        &["-O", "--overcommit"],
        Flag,
        Unsupported("overcommitting CPUs"),
    ),
    opt(
        &["-s", "--oversubscribe"],
        Flag,
        Unsupported("sharing nodes with other jobs"),
    ),
    opt(&["--contiguous"], Flag, Unsupported("contiguous nodes")),
    opt(
        &["-S", "--core-spec"],
        Val,
        Unsupported("specialised cores"),
    ),
    opt(&["--thread-spec"], Val, Unsupported("specialised threads")),
    opt(&["-H", "--hold"], Flag, Unsupported("submitting held")),
    opt(&["--deadline"], Val, Unsupported("a deadline")),
    opt(
        &["-i", "--input"],
        Val,
        Unsupported("standard input from a file"),
    ),
    opt(
        &["-M", "--clusters"],
        Val,
        Unsupported("Slurm federation clusters"),
    ),
    opt(
        &["--container"],
        Val,
        Unsupported("an OCI bundle; use spec.image"),
    ),
    opt(&["--bb", "--bbf"], Val, Unsupported("burst buffers")),
    opt(&["--network"], Val, Unsupported("a network specification")),
    opt(&["--uid"], Val, Unsupported("running as another user")),
    opt(&["--gid"], Val, Unsupported("running as another group")),
    opt(&["--wrap"], Val, Unsupported("a wrapped command line")),
    opt(&["--export-file"], Val, Unsupported("an environment file")),
    opt(&["--prefer"], Val, Unsupported("preferred node features")),
    opt(
        &["--tres-per-task"],
        Val,
        Unsupported("trackable resources per task"),
    ),
];

/// Slurm's output-file patterns (sbatch(1), "filename pattern").
const PATTERNS: &[(char, &str)] = &[
    ('j', "{jobId}"),
    ('J', "{jobId}"),
    ('A', "{arrayJobId}"),
    ('a', "{arrayIndex}"),
    ('x', "{jobName}"),
    ('u', "{user}"),
    ('N', "{node}"),
];

/// Reads the directives; returns the line numbers that were directives.
pub(crate) fn read(b: &mut Builder, lines: &[Line<'_>]) -> Vec<u32> {
    let mut directives = Vec::new();
    let mut in_header = true;
    for line in lines {
        let Some(rest) = directive(line, "#SBATCH", false) else {
            if directive(line, "#SBATCH", true).is_some() {
                b.warn(
                    Some(line.number),
                    "an indented #SBATCH is not a directive (sbatch reads them at column 1 only)",
                );
            }
            if in_header && !(line.is_blank() || line.is_comment()) {
                in_header = false;
            }
            continue;
        };
        directives.push(line.number);
        if !in_header {
            b.warn(
                Some(line.number),
                format!(
                    "`{}` comes after the first command; sbatch ignores it, and so does Atlas",
                    line.text.trim()
                ),
            );
            continue;
        }
        read_directive(b, line, rest);
    }
    directives
}

fn read_directive(b: &mut Builder, line: &Line<'_>, rest: &str) {
    let Some(words) = split_directive(b, line, rest, true) else {
        return;
    };
    if matches!(words.as_slice(), [w] if w == "hetjob" || w == "packjob") {
        let e = b.entry(line.number, line.text, &words[0], None);
        b.next_component();
        let n = b.workflow.spec.het_components.len();
        b.mark_field(e, &format!("spec.hetComponents[{}]", n - 1));
        return;
    }
    apply_options(
        b,
        line,
        &words,
        OPTIONS,
        Style::Getopt,
        "not an sbatch option Atlas knows",
        apply,
    );
}

/// `--signal=[{R|B}:]SIG[@SECONDS]`: Slurm sends SIG that long (default 60 s) before the time
/// limit (sbatch(1)); a checkpoint's signal and grace.
fn signal(b: &mut Builder, e: usize, value: &str) {
    let value = value.trim();
    let value = value
        .split_once(':')
        .filter(|(flags, _)| flags.chars().all(|c| matches!(c, 'R' | 'B')))
        .map_or(value, |(_, rest)| rest);
    let (signal, lead) = value.split_once('@').unwrap_or((value, "60"));
    let grace = match lead.trim().parse::<u64>() {
        Ok(seconds) if seconds > 0 => Some(atlas_spec::Duration::from_secs(seconds)),
        _ => return b.invalid(e, format!("`{lead}` is not a number of seconds")),
    };
    super::hint_checkpoint(b, e, Some(signal), grace);
}

fn apply(b: &mut Builder, e: usize, act: Act, value: &str) {
    match act {
        Text(field) => set_text(b, e, field, value),
        Count(field) => set_count(b, e, field, value),
        Name => set_name(b, e, value),
        Signal => signal(b, e, value),
        Requeue(may) => b.set_requeue(e, may),
        Nodes => nodes(b, e, value),
        Memory(field) => mem(b, e, field, value),
        Time => match slurm_time(value) {
            Ok(Some(d)) => b.set_walltime(e, d),
            Ok(None) => b.ignored(e, "no time limit; spec.resources.walltime stays unset"),
            Err(why) => b.invalid(e, why.to_string()),
        },
        Exclusive => match value {
            "" => b.set_exclusive(e, true),
            other => b.unsupported(
                e,
                format!("--exclusive={other} shares nodes among the user's or group's jobs"),
            ),
        },
        Array => set_array(b, e, value),
        Dependency => {
            let (deps, mode, unsupported) = dependency_list(value);
            set_dependencies(b, e, deps, mode, unsupported);
        }
        Path(field) => set_path(b, e, field, value, PATTERNS),
        MailType => mail_type(b, e, value),
        MailUser => {
            b.claim(e, Field::MailUsers);
            let mail = b
                .workflow
                .spec
                .scheduling
                .mail
                .get_or_insert_with(Default::default);
            mail.users = value
                .split(',')
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .collect();
        }
        Gres => gres(b, e, value),
        TypedGpus(field) => typed_gpus(b, e, field, value),
        Export => export(b, e, value),
        Ignore(why) => b.ignored(e, why),
        Unsupported(why) => b.unsupported(e, why),
    }
}

/// `--gpus[-per-node|-per-task]=[type:]N[,type:N…]` (sbatch(1): a comma-separated list of
/// types): the counts add up; the type is kept when there is one.
fn typed_gpus(b: &mut Builder, e: usize, field: Field, value: &str) {
    let mut total = 0u32;
    let mut kinds = Vec::new();
    for item in value.split(',').map(str::trim) {
        match typed_count(item) {
            Ok((kind, n)) => {
                total = total.saturating_add(n);
                kinds.extend(kind);
            }
            Err(why) => return b.invalid(e, why.to_string()),
        }
    }
    b.set_count(e, field, total);
    match kinds.as_slice() {
        [kind] => b.set_text(e, Field::GpuType, *kind),
        [] => {}
        several => b.note(
            e,
            format!(
                "GPUs of several types ({}): {total} in all, the type is not carried over",
                several.join(", ")
            ),
        ),
    }
}

fn nodes(b: &mut Builder, e: usize, value: &str) {
    let (min, max) = value.split_once('-').unwrap_or((value, ""));
    if min.trim().is_empty() {
        return b.invalid(
            e,
            format!("`{value}` is not a node count (expected N or MIN-MAX)"),
        );
    }
    set_count(b, e, Field::Nodes, min);
    if !max.is_empty() {
        b.note(e, format!("a range of nodes; the minimum ({min}) is used, the maximum ({max}) is not carried over"));
    }
}

fn mem(b: &mut Builder, e: usize, field: Field, value: &str) {
    if field == Field::MemoryPerNode && value.trim() == "0" {
        return b.ignored(
            e,
            "--mem=0 asks for all of each node's memory; memoryPerNode stays unset",
        );
    }
    match memory(value, MemoryDialect::Slurm) {
        Ok(q) => b.set_quantity(e, field, q),
        Err(why) => b.invalid(e, why.to_string()),
    }
}

fn mail_type(b: &mut Builder, e: usize, value: &str) {
    let mut events = Vec::new();
    let mut unknown = Vec::new();
    for item in value.split(',').map(|i| i.trim().to_ascii_uppercase()) {
        match item.as_str() {
            "NONE" => events.clear(),
            "BEGIN" => events.push(MailEvent::Begin),
            "END" => events.push(MailEvent::End),
            "FAIL" | "INVALID_DEPEND" => events.push(MailEvent::Fail),
            "REQUEUE" => events.push(MailEvent::Requeue),
            "ALL" => events.extend([
                MailEvent::Begin,
                MailEvent::End,
                MailEvent::Fail,
                MailEvent::Requeue,
            ]),
            t if t.starts_with("TIME_LIMIT") => events.push(MailEvent::TimeLimit),
            _ => unknown.push(item),
        }
    }
    if events.is_empty() && !unknown.is_empty() {
        return b.invalid(e, format!("unknown mail types: {}", unknown.join(", ")));
    }
    events.sort();
    events.dedup();
    b.claim(e, Field::MailEvents);
    b.workflow
        .spec
        .scheduling
        .mail
        .get_or_insert_with(Default::default)
        .events = events;
    if !unknown.is_empty() {
        b.note(e, format!("not carried over: {}", unknown.join(", ")));
    }
}

/// `--gres=gpu[:type]:N[,other…]`.
fn gres(b: &mut Builder, e: usize, value: &str) {
    let mut others = Vec::new();
    let mut any_gpu = false;
    for item in value.split(',').map(str::trim) {
        let item = item.strip_prefix("gres/").unwrap_or(item);
        let item = item.split('(').next().unwrap_or(item);
        let mut parts = item.split(':');
        if parts.next() != Some("gpu") {
            others.push(item.to_string());
            continue;
        }
        let rest: Vec<&str> = parts.collect();
        let (kind, count) = match rest.as_slice() {
            [] => (None, Ok(1)),
            [n] if n.bytes().all(|c| c.is_ascii_digit()) => (None, super::parse_count(n)),
            [kind] => (Some(*kind), Ok(1)),
            [kind, n] => (Some(*kind), super::parse_count(n)),
            _ => (None, Err(ValueError::NotGpuCount(item.to_string()))),
        };
        match count {
            Ok(n) => {
                any_gpu = true;
                b.set_count(e, Field::GpusPerNode, n);
                if let Some(kind) = kind {
                    b.set_text(e, Field::GpuType, kind);
                }
            }
            Err(why) => b.invalid(e, why.to_string()),
        }
    }
    if !others.is_empty() {
        let what = format!(
            "generic resources other than GPUs are not carried over: {}",
            others.join(", ")
        );
        if any_gpu {
            b.note(e, what);
        } else {
            b.unsupported(e, what);
        }
    }
}

/// `--export=ALL|NONE|[ALL,]VAR[=value],…`.
fn export(b: &mut Builder, e: usize, value: &str) {
    let mut passed = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item.to_ascii_uppercase().as_str() {
            "ALL" => {
                b.claim(e, Field::ExportAll);
                b.workflow.spec.environment.export_all = Some(true);
            }
            "NONE" => {
                b.claim(e, Field::ExportAll);
                b.workflow.spec.environment.export_all = Some(false);
            }
            _ => match item.split_once('=') {
                Some((name, val)) => {
                    b.workflow
                        .spec
                        .environment
                        .variables
                        .insert(name.to_string(), val.to_string());
                    b.mark_field(e, "spec.environment.variables");
                }
                None => passed.push(item.to_string()),
            },
        }
    }
    if !passed.is_empty() {
        b.note(
            e,
            format!(
                "taken from the submitting shell, with no value here: {}",
                passed.join(", ")
            ),
        );
        if b.report.directives[e].field.is_none() {
            b.unsupported(e, "");
        }
    }
}
