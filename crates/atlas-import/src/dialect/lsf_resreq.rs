//! LSF resource requirement strings (`-R "select[…] rusage[…] span[…] affinity[…]"`) and
//! GPU requirements (`-gpu "num=2/task:gmodel=…"`), following the LSF documentation.

use crate::builder::{Builder, Field, MemoryCount};
use crate::units::{memory, MemoryDialect, ValueError};

use super::parse_count;

/// Splits `name[...] name[...]` into sections; text outside brackets is a bare select string.
fn sections(text: &str) -> Result<Vec<(String, String)>, ValueError> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        match rest.find('[') {
            Some(open) => {
                let name = rest[..open].trim().to_string();
                let close = rest[open..]
                    .find(']')
                    .ok_or_else(|| ValueError::Unclosed(text.to_string()))?
                    + open;
                let name = if name.is_empty() {
                    "select".to_string()
                } else {
                    name
                };
                out.push((name, rest[open + 1..close].to_string()));
                rest = rest[close + 1..].trim_start();
            }
            None => {
                out.push(("select".to_string(), rest.to_string()));
                break;
            }
        }
    }
    Ok(out)
}

/// Applies one `-R` string. Sections repeated across several `-R` options override each other
/// key by key (the last one wins).
pub(crate) fn apply_resreq(b: &mut Builder, e: usize, value: &str) {
    if value.contains("||") || value.contains('{') {
        return b.unsupported(
            e,
            "alternative or compound resource requirements have no portable counterpart",
        );
    }
    let sections = match sections(value) {
        Ok(s) => s,
        Err(why) => return b.invalid(e, why.to_string()),
    };
    let mut not_carried = Vec::new();
    for (name, body) in sections {
        match name.as_str() {
            "span" => span(b, e, &body, &mut not_carried),
            "rusage" => rusage(b, e, &body, &mut not_carried),
            "select" => {
                if !body.trim().is_empty() && body.trim() != "type==any" {
                    b.set_text(e, Field::Constraint, body.trim());
                    b.note(
                        e,
                        "select[] is kept as a constraint (a host expression of this cluster)",
                    );
                }
            }
            "affinity" => affinity(b, e, &body, &mut not_carried),
            "order" | "same" | "cu" => not_carried.push(format!("{name}[{body}]")),
            _ => not_carried.push(format!("{name}[{body}]")),
        }
    }
    if !not_carried.is_empty() {
        let what = format!("not carried over: {}", not_carried.join(" "));
        if b.report.directives[e].field.is_none() {
            b.unsupported(e, what);
        } else {
            b.note(e, what);
        }
    }
}

fn key_values(body: &str) -> impl Iterator<Item = (&str, &str)> {
    body.split([',', ':', ' '])
        .filter(|kv| !kv.trim().is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .map(|(k, v)| (k.trim(), v.trim()))
}

fn span(b: &mut Builder, e: usize, body: &str, not_carried: &mut Vec<String>) {
    for (key, value) in key_values(body) {
        match key {
            "ptile" => match parse_count(value) {
                Ok(n) => b.set_count(e, Field::TasksPerNode, n),
                Err(_) => not_carried.push(format!("span[ptile={value}]")),
            },
            "hosts" if value == "1" => {
                b.set_count(e, Field::Nodes, 1);
                b.note(e, "span[hosts=1]: all tasks on one node");
            }
            _ => not_carried.push(format!("span[{key}={value}]")),
        }
    }
}

fn rusage(b: &mut Builder, e: usize, body: &str, not_carried: &mut Vec<String>) {
    for (key, value) in key_values(body) {
        match key {
            "mem" => rusage_mem(b, e, value),
            "ngpus_excl_p" | "ngpus_shared" | "ngpus_excl_t" | "ngpus" => {
                match parse_count(value) {
                    Ok(n) => b.set_count(e, Field::GpusPerNode, n),
                    Err(why) => b.invalid(e, why.to_string()),
                }
            }
            "duration" | "decay" => {}
            _ => not_carried.push(format!("rusage[{key}={value}]")),
        }
    }
}

/// `rusage[mem=X[/task|/host|/job]]`: per host unless it says otherwise (LSF 10.1's
/// RESOURCE_RESERVE_PER_TASK aside, which is a cluster setting).
fn rusage_mem(b: &mut Builder, e: usize, value: &str) {
    let (amount, per) = value.split_once('/').unwrap_or((value, "host"));
    let count = match per.trim() {
        "host" => None,
        "task" => Some(MemoryCount::PerTask),
        "job" => Some(MemoryCount::PerJob),
        other => {
            return b.invalid(
                e,
                format!("rusage[mem=…/{other}]: expected /task, /host or /job"),
            )
        }
    };
    match memory(amount, MemoryDialect::Lsf(b.lsf_unit)) {
        Ok(q) => {
            b.set_quantity(e, Field::MemoryPerNode, q);
            b.memory_count = count.map(|c| (e, c));
            let unit = b.lsf_unit.name();
            let how = match count {
                None => "is per host (LSF's default)",
                Some(MemoryCount::PerTask) => "/task is for each task",
                Some(MemoryCount::PerJob) => "/job is for the whole job",
            };
            b.note(e, format!("rusage[mem] {how}; a bare number is {unit} (the site's LSF_UNIT_FOR_LIMITS; `atlas import --lsf-unit`)"));
        }
        Err(why) => b.invalid(e, why.to_string()),
    }
}

/// `affinity[core(N)…]`: N cores bound to each task.
fn affinity(b: &mut Builder, e: usize, body: &str, not_carried: &mut Vec<String>) {
    let cores = body
        .strip_prefix("core(")
        .and_then(|r| r.split([')', ',']).next())
        .and_then(|n| parse_count(n).ok());
    match cores {
        Some(n) => b.set_count(e, Field::CpusPerTask, n),
        None => not_carried.push(format!("affinity[{body}]")),
    }
}

/// `-gpu "num=G[/task|/host]:mode=…:gmodel=…:gmem=…"` or `-gpu -` (the site default).
pub(crate) fn apply_gpu(b: &mut Builder, e: usize, value: &str) {
    if value.trim() == "-" {
        b.set_count(e, Field::GpusPerNode, 1);
        return b.note(e, "`-` is the cluster's default GPU request (num=1 per host unless LSB_GPU_REQ says otherwise)");
    }
    let mut not_carried = Vec::new();
    let mut saw_num = false;
    for (key, val) in value
        .split(':')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
    {
        match key.trim() {
            "num" => {
                saw_num = true;
                let (n, per) = val.split_once('/').unwrap_or((val, "host"));
                let field = if per == "task" {
                    Field::GpusPerTask
                } else {
                    Field::GpusPerNode
                };
                match parse_count(n) {
                    Ok(n) => b.set_count(e, field, n),
                    Err(why) => b.invalid(e, why.to_string()),
                }
            }
            "gmodel" => b.set_text(e, Field::GpuType, val.trim()),
            // GPU memory: a property of the GPU model a host has, not host memory, which is
            // what memoryPerGpu asks for (Slurm's --mem-per-gpu); said, not mapped.
            "gmem" => match memory(val, MemoryDialect::Lsf(b.lsf_unit)) {
                Ok(q) => b.note(e, format!("gmem={q} is the GPU's own memory: no target reserves it; choose the GPU model (gpuType) that has it")),
                Err(why) => b.invalid(e, why.to_string()),
            },
            "" => {}
            other => not_carried.push(format!("{other}={val}")),
        }
    }
    if !saw_num && b.report.directives[e].status != crate::report::Status::Invalid {
        b.set_count(e, Field::GpusPerNode, 1);
        b.note(e, "no num=: one GPU per host (LSF's default)");
    }
    if !not_carried.is_empty() {
        b.note(
            e,
            format!(
                "GPU modes are left to the target: {}",
                not_carried.join(", ")
            ),
        );
    }
}
