//! PBS resource lists (`-l`): the `select` model of PBS Pro, Torque's `nodes=N:ppn=P`, job-wide
//! `ncpus`/`mem`/`ngpus` (which PBS turns into one chunk), `walltime` and `place`.

use crate::builder::{Builder, Field, MemoryCount};
use crate::units::{memory, pbs_time, MemoryDialect};

use super::parse_count;

/// What a `-l` list set that only makes sense once all directives are read.
#[derive(Default)]
pub(crate) struct Layout {
    /// Entry of a `select` or `nodes` request, if any.
    pub chunk_entry: Option<usize>,
    /// Entry of the first job-wide `ncpus`/`mem`/`ngpus`, if any.
    pub job_wide_entry: Option<usize>,
}

/// Applies one `-l` list (`select=2:ncpus=8,walltime=1:00:00`).
pub(crate) fn apply(b: &mut Builder, e: usize, value: &str, layout: &mut Layout) {
    if value.trim().is_empty() {
        return b.invalid(e, "the resource list is empty");
    }
    let mut not_carried = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, val) = item.split_once('=').unwrap_or((item, ""));
        match key {
            "select" => select(b, e, val, &mut not_carried, layout),
            "nodes" => nodes(b, e, val, &mut not_carried, layout),
            "walltime" => match pbs_time(val) {
                Ok(d) => b.set_walltime(e, d),
                Err(why) => b.invalid(e, why.to_string()),
            },
            "ncpus" | "mem" | "ngpus" | "gpus" | "naccelerators" => {
                layout.job_wide_entry.get_or_insert(e);
                chunk_resource(b, e, key, val, &mut not_carried);
                // pbs_resources(7): a job-wide `mem` is the job's, across all its hosts.
                if key == "mem" && b.owner(Field::MemoryPerNode) == Some(e) {
                    b.memory_count = Some((e, MemoryCount::PerJob));
                }
            }
            "pmem" => match memory(val, MemoryDialect::Pbs) {
                Ok(q) => {
                    b.set_quantity(e, Field::MemoryPerCpu, q);
                    b.note(e, "pmem (per process) is taken as memory per CPU");
                }
                Err(why) => b.invalid(e, why.to_string()),
            },
            "place" => place(b, e, val, &mut not_carried),
            "accelerator_model" | "gpu_model" | "gpu_type" => b.set_text(e, Field::GpuType, val),
            _ => not_carried.push(item.to_string()),
        }
    }
    let entry = &b.report.directives[e];
    if not_carried.is_empty()
        && entry.field.is_none()
        && entry.status == crate::report::Status::Mapped
    {
        b.ignored(e, "");
    }
    if !not_carried.is_empty() {
        let what = format!("not carried over: {}", not_carried.join(", "));
        if b.report.directives[e].field.is_none()
            && b.report.directives[e].status != crate::report::Status::Invalid
        {
            b.unsupported(e, what);
        } else {
            b.note(e, what);
        }
    }
}

/// One resource of a chunk (or a job-wide one, which PBS makes into a single chunk).
fn chunk_resource(b: &mut Builder, e: usize, key: &str, val: &str, not_carried: &mut Vec<String>) {
    match key {
        "ncpus" => count(b, e, Field::CpusPerTask, val),
        "ngpus" | "gpus" | "naccelerators" => count(b, e, Field::GpusPerNode, val),
        "mem" => match memory(val, MemoryDialect::Pbs) {
            Ok(q) => b.set_quantity(e, Field::MemoryPerNode, q),
            Err(why) => b.invalid(e, why.to_string()),
        },
        "accelerator_model" | "gpu_model" | "gpu_type" => b.set_text(e, Field::GpuType, val),
        "mpiprocs" | "ompthreads" => {}
        _ => not_carried.push(format!("{key}={val}")),
    }
}

fn count(b: &mut Builder, e: usize, field: Field, val: &str) {
    match parse_count(val) {
        Ok(n) => b.set_count(e, field, n),
        Err(why) => b.invalid(e, why.to_string()),
    }
}

/// `select=N:ncpus=C:mpiprocs=M:ngpus=G:mem=X[+…]`: N nodes, M tasks per node, C/M CPUs per task.
fn select(
    b: &mut Builder,
    e: usize,
    spec: &str,
    not_carried: &mut Vec<String>,
    layout: &mut Layout,
) {
    let mut chunks = spec.split('+');
    let first = chunks.next().unwrap_or_default();
    layout.chunk_entry = Some(e);
    let mut parts = first.split(':');
    let head = parts.next().unwrap_or_default();
    let (nodes, rest): (u32, Vec<&str>) = match parse_count(head) {
        Ok(n) => (n, parts.collect()),
        Err(_) => (1, first.split(':').collect()),
    };
    b.set_count(e, Field::Nodes, nodes);
    let mut ncpus = 1;
    let mut mpiprocs = 1;
    for (key, val) in rest.iter().map(|kv| kv.split_once('=').unwrap_or((kv, ""))) {
        match key {
            "ncpus" => ncpus = parse_count(val).unwrap_or(0),
            "mpiprocs" => mpiprocs = parse_count(val).unwrap_or(0),
            "ompthreads" => {}
            _ => chunk_resource(b, e, key, val, not_carried),
        }
    }
    if ncpus == 0 || mpiprocs == 0 {
        return b.invalid(
            e,
            format!("`{first}`: ncpus and mpiprocs must be whole numbers above 0"),
        );
    }
    b.set_count(e, Field::TasksPerNode, mpiprocs);
    b.set_count(e, Field::CpusPerTask, (ncpus / mpiprocs).max(1));
    if ncpus % mpiprocs != 0 {
        b.note(
            e,
            format!(
                "ncpus={ncpus} is not a multiple of mpiprocs={mpiprocs}; cpusPerTask rounded down"
            ),
        );
    }
    let others: Vec<&str> = chunks.collect();
    if !others.is_empty() {
        not_carried.push(format!(
            "further chunks +{} (a heterogeneous request; only the first chunk is mapped)",
            others.join("+")
        ));
    }
}

/// Torque `nodes=N:ppn=P[:gpus=G][:property…]` = `select=N:ncpus=P:mpiprocs=P`; PBS Pro's
/// `nodes=N:ncpus=C` = `select=N:ncpus=C`, and `nodes=N:ppn=P:ncpus=C` =
/// `select=N:ncpus=P*C:mpiprocs=P`.
fn nodes(
    b: &mut Builder,
    e: usize,
    spec: &str,
    not_carried: &mut Vec<String>,
    layout: &mut Layout,
) {
    if spec.contains('+') {
        not_carried.push(format!(
            "nodes={spec} (several node specifications; only counts are portable)"
        ));
        return;
    }
    layout.chunk_entry = Some(e);
    let mut parts = spec.split(':');
    let head = parts.next().unwrap_or_default();
    match parse_count(head) {
        Ok(n) => b.set_count(e, Field::Nodes, n),
        Err(_) => {
            return not_carried.push(format!("nodes={spec} (named hosts do not exist elsewhere)"))
        }
    }
    let mut properties = Vec::new();
    let (mut ppn, mut ncpus) = (false, None);
    for part in parts {
        match part.split_once('=') {
            Some(("ppn", p)) => {
                ppn = true;
                count(b, e, Field::TasksPerNode, p);
                b.set_count(e, Field::CpusPerTask, 1);
            }
            // PBS Pro reads `nodes=N:ncpus=C` as `select=N:ncpus=C`: one process (mpiprocs
            // defaults to 1) of C CPUs on each of N hosts.
            Some(("ncpus", c)) => ncpus = Some(c),
            Some(("gpus", g)) => count(b, e, Field::GpusPerNode, g),
            Some((k, v)) => not_carried.push(format!("{k}={v}")),
            None => properties.push(part),
        }
    }
    // With ppn too, `nodes=N:ppn=P:ncpus=C` is `select=N:ncpus=P*C:mpiprocs=P`: P processes
    // of C CPUs each.
    if let Some(c) = ncpus {
        if !ppn {
            b.set_count(e, Field::TasksPerNode, 1);
        }
        count(b, e, Field::CpusPerTask, c);
        if ppn {
            b.note(e, format!("ppn processes per host of ncpus={c} CPUs each"));
        }
    }
    if !properties.is_empty() {
        b.set_text(e, Field::Constraint, properties.join("&"));
    }
}

/// `place=[arrangement][:sharing][:grouping]`.
fn place(b: &mut Builder, e: usize, spec: &str, not_carried: &mut Vec<String>) {
    for part in spec.split(':') {
        match part {
            "excl" | "exclhost" => b.set_exclusive(e, true),
            "shared" => b.set_exclusive(e, false),
            "free" | "scatter" | "vscatter" => {
                b.note(
                    e,
                    format!("place={part}: chunk placement is left to each target"),
                );
            }
            "pack" => not_carried.push("place=pack (all chunks on one host)".to_string()),
            other => not_carried.push(format!("place={other}")),
        }
    }
}
