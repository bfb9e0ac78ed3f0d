//! Ingest speed: `Store::ingest` of 20,000 samples vs a raw rusqlite bulk insert of the same
//! rows into the same table, side by side. `cargo bench -p atlas-store --bench ingest`.

use atlas_spec::record::{Record, RecordBody};
use atlas_store::{SqliteStore, Store};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rusqlite::params;

const N: u64 = 20_000;

fn samples() -> Vec<Record> {
    (1..=N)
        .map(|seq| Record {
            run: "r-bench".into(),
            seq,
            time: 1.7e9 + seq as f64,
            mono: seq as f64,
            body: RecordBody::Sample {
                phase: Some("train".into()),
                cpu_user_seconds: seq as f64 * 0.9,
                cpu_system_seconds: seq as f64 * 0.1,
                rss_bytes: 400 << 20,
                read_bytes: seq * 4096,
                write_bytes: seq * 1024,
                threads: 8,
                processes: 3,
                cgroup_memory_bytes: None,
                gpus: vec![],
            },
        })
        .collect()
}

fn fresh(tag: &str) -> (std::path::PathBuf, SqliteStore) {
    let dir = std::env::temp_dir().join(format!("atlas-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("atlas.db");
    let store = SqliteStore::open(&path).unwrap();
    (path, store)
}

fn raw_insert(path: &std::path::Path, records: &[Record]) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare("INSERT INTO samples (run_id, seq, time, mono, scope, phase, cpu_user_seconds, cpu_system_seconds, rss_bytes, read_bytes, write_bytes, threads, processes) VALUES (?1, ?2, ?3, ?4, 'job', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")
            .unwrap();
        for r in records {
            if let RecordBody::Sample {
                phase,
                cpu_user_seconds,
                cpu_system_seconds,
                rss_bytes,
                read_bytes,
                write_bytes,
                threads,
                processes,
                ..
            } = &r.body
            {
                stmt.execute(params![
                    r.run,
                    r.seq as i64,
                    r.time,
                    r.mono,
                    phase,
                    cpu_user_seconds,
                    cpu_system_seconds,
                    *rss_bytes as i64,
                    *read_bytes as i64,
                    *write_bytes as i64,
                    threads,
                    processes
                ])
                .unwrap();
            }
        }
    }
    tx.commit().unwrap();
}

fn benches(c: &mut Criterion) {
    let records = samples();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    group.bench_function("Store::ingest 20k samples", |b| {
        b.iter_batched(
            || fresh("store"),
            |(_, mut store)| store.ingest(&records).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("raw rusqlite insert 20k samples", |b| {
        b.iter_batched(
            || fresh("raw"),
            |(path, store)| {
                drop(store);
                raw_insert(&path, &records)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(ingest_benches, benches);
criterion_main!(ingest_benches);
