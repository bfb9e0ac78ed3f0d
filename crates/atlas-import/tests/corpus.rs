//! Import quality on a corpus of job scripts written outside the importer's work:
//! `tests/fixtures/corpus/scripts/` holds 45 scripts in the shapes of HPC centres' own examples
//! (18 Slurm, 12 LSF, 8 PBS Pro, 7 Torque), and `expected/NAME.json` what each determines, by
//! the schedulers' manuals, written before their author saw the importer (see the corpus's
//! README). Every expected field must come out right; each miss is listed.

use std::collections::BTreeMap;

use atlas_import::{import, ImportOptions};
use serde_json::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/corpus");

/// What the import gave for one of the corpus's keys, in the corpus's units (bytes, seconds).
fn got(w: &atlas_spec::Workflow, key: &str) -> Value {
    let r = &w.spec.resources;
    let s = &w.spec.scheduling;
    let array = s.array.as_ref();
    let json = |v: Option<u64>| v.map_or(Value::Null, Value::from);
    match key {
        "nodes" => json(r.nodes.map(u64::from)),
        "tasks" => json(r.tasks.map(u64::from)),
        "tasksPerNode" => json(r.tasks_per_node.map(u64::from)),
        "cpusPerTask" => json(r.cpus_per_task.map(u64::from)),
        "gpusPerNode" => json(r.gpus_per_node.map(u64::from)),
        "gpusPerTask" => json(r.gpus_per_task.map(u64::from)),
        "gpus" => json(r.gpus.map(u64::from)),
        "gpuType" => r.gpu_type.clone().map_or(Value::Null, Value::from),
        "memoryPerNode" => json(r.memory_per_node.map(|q| q.bytes())),
        "memoryPerCpu" => json(r.memory_per_cpu.map(|q| q.bytes())),
        "walltimeSeconds" => json(r.walltime.map(|d| d.as_secs())),
        "exclusive" => r.exclusive.map_or(Value::Null, Value::from),
        "queue" => s.queue.clone().map_or(Value::Null, Value::from),
        "account" => s.account.clone().map_or(Value::Null, Value::from),
        "arrayStart" => json(array.map(|a| u64::from(a.start))),
        "arrayEnd" => json(array.map(|a| u64::from(a.end))),
        "arrayStep" => json(array.map(|a| u64::from(a.step))),
        "arrayMaxParallel" => json(array.and_then(|a| a.max_parallel).map(u64::from)),
        "jobName" => Value::from(
            w.metadata
                .annotations
                .get("atlas.dev/original-name")
                .cloned()
                .unwrap_or_else(|| w.metadata.name.clone()),
        ),
        other => panic!("the corpus names an unknown key `{other}`"),
    }
}

fn same(key: &str, want: &Value, got: &Value) -> bool {
    match (key, want, got) {
        ("gpuType", Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
        (_, Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == got,
    }
}

#[test]
fn every_expected_field_of_the_corpus_comes_out_right() {
    let mut scripts = BTreeMap::new();
    for entry in std::fs::read_dir(format!("{CORPUS}/scripts")).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        scripts.insert(stem, path);
    }
    let (mut fields, mut wrong) = (0, Vec::new());
    for (name, path) in &scripts {
        let expected: BTreeMap<String, Value> = serde_json::from_str(
            &std::fs::read_to_string(format!("{CORPUS}/expected/{name}.json")).unwrap(),
        )
        .unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let imported = match import(&text, &ImportOptions::default()) {
            Ok(i) => i,
            Err(e) => {
                wrong.push(format!("{name}: refused: {e}"));
                continue;
            }
        };
        for (key, want) in &expected {
            fields += 1;
            let got = got(&imported.workflow, key);
            if !same(key, want, &got) {
                wrong.push(format!("{name}: {key} is {got}, expected {want}"));
            }
        }
    }
    assert_eq!(scripts.len(), 45, "the corpus's scripts");
    assert!(fields > 350, "{fields} expected fields");
    assert!(
        wrong.is_empty(),
        "{} of {fields} fields wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
