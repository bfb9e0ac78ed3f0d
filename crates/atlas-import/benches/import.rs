//! Import speed: one typical 60-line script, and 10,000 scripts in one process.
//! Run with `cargo bench -p atlas-import`; figures go to BENCHMARKS.md.

use atlas_import::{import, ImportOptions};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// A typical script: the Slurm fixture padded with body lines to 60 lines.
fn typical_script() -> String {
    let mut text = include_str!("../../../tests/fixtures/slurm/rules.sbatch").to_string();
    let mut n = text.lines().count();
    while n < 60 {
        text.push_str(&format!(
            "python step{n}.py --input data/$SLURM_ARRAY_TASK_ID --epochs 10\n"
        ));
        n += 1;
    }
    text
}

fn benches(c: &mut Criterion) {
    let script = typical_script();
    let options = ImportOptions::default();
    let mut group = c.benchmark_group("import");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one 60-line script", |b| {
        b.iter(|| import(&script, &options).unwrap())
    });
    let scripts: Vec<String> = (0..10_000)
        .map(|i| script.replace("train model", &format!("job {i}")))
        .collect();
    group.throughput(Throughput::Elements(scripts.len() as u64));
    group.sample_size(10);
    group.bench_function("10,000 scripts", |b| {
        b.iter_batched(
            || (),
            |_| {
                scripts
                    .iter()
                    .map(|s| import(s, &options).unwrap().report.directives.len())
                    .sum::<usize>()
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(import_benches, benches);
criterion_main!(import_benches);
