//! Ingest speed, side by side in one run: `Store::ingest` of 20,000 samples vs a raw bulk
//! insert of the same rows into the same table, for SQLite (rusqlite, one prepared INSERT per
//! row in one transaction) and, when `ATLAS_TEST_POSTGRES` names a server
//! (`scripts/postgres-up`), for PostgreSQL: `PgStore::ingest` vs a raw binary `COPY` and a raw
//! multi-row `INSERT … SELECT FROM unnest(…)` of the same rows, each into an emptied table.
//! `cargo bench -p atlas-store --bench ingest`.

use atlas_spec::record::{Record, RecordBody};
use atlas_store::postgres::scratch::ScratchDatabase;
use atlas_store::{PgStore, SqliteStore, Store};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
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

/// The job-sample columns of `records` as (run, seq, time, mono, phase, cpu user, cpu system,
/// rss, read, write, threads, processes).
type Row = (
    String,
    i64,
    f64,
    f64,
    String,
    f64,
    f64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

fn rows(records: &[Record]) -> Vec<Row> {
    records
        .iter()
        .filter_map(|r| match &r.body {
            RecordBody::Sample {
                phase,
                cpu_user_seconds,
                cpu_system_seconds,
                rss_bytes,
                read_bytes,
                write_bytes,
                threads,
                processes,
                ..
            } => Some((
                r.run.clone(),
                r.seq as i64,
                r.time,
                r.mono,
                phase.clone().unwrap_or_default(),
                *cpu_user_seconds,
                *cpu_system_seconds,
                *rss_bytes as i64,
                *read_bytes as i64,
                *write_bytes as i64,
                i64::from(*threads),
                i64::from(*processes),
            )),
            _ => None,
        })
        .collect()
}

const PG_COLUMNS: &str = "run_id, seq, time, mono, scope, phase, cpu_user_seconds, cpu_system_seconds, rss_bytes, read_bytes, write_bytes, threads, processes";

/// A binary COPY of the rows into `samples`, in one transaction.
fn raw_copy(client: &mut postgres::Client, rows: &[Row]) {
    let mut tx = client.transaction().unwrap();
    let sink = tx
        .copy_in(&format!("COPY samples ({PG_COLUMNS}) FROM STDIN BINARY"))
        .unwrap();
    let types = [
        Type::TEXT,
        Type::INT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::TEXT,
        Type::TEXT,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
    ];
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    for r in rows {
        writer
            .write(&[
                &r.0, &r.1, &r.2, &r.3, &"job", &r.4, &r.5, &r.6, &r.7, &r.8, &r.9, &r.10, &r.11,
            ])
            .unwrap();
    }
    writer.finish().unwrap();
    tx.commit().unwrap();
}

/// One multi-row INSERT of the rows (one array per column), without conflict handling.
fn raw_unnest(client: &mut postgres::Client, rows: &[Row]) {
    macro_rules! column {
        ($i:tt) => {
            rows.iter().map(|r| r.$i.clone()).collect::<Vec<_>>()
        };
    }
    let (run, seq, time, mono, phase) =
        (column!(0), column!(1), column!(2), column!(3), column!(4));
    let (user, system, rss, read, write) =
        (column!(5), column!(6), column!(7), column!(8), column!(9));
    let (threads, processes) = (column!(10), column!(11));
    let scope = vec!["job"; rows.len()];
    client
        .execute(
            &format!(
                "INSERT INTO samples ({PG_COLUMNS}) SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::float8[],
                 $5::text[], $6::text[], $7::float8[], $8::float8[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[])"
            ),
            &[&run, &seq, &time, &mono, &scope, &phase, &user, &system, &rss, &read, &write, &threads, &processes],
        )
        .unwrap();
}

/// The same 20,000 samples into PostgreSQL: the store's ingest against raw COPY and raw
/// multi-row INSERT. Each iteration starts from empty tables (emptied outside the timing).
fn postgres_benches(c: &mut Criterion, records: &[Record]) {
    let server = match std::env::var("ATLAS_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            println!("PostgreSQL benchmarks skipped: ATLAS_TEST_POSTGRES is not set (scripts/postgres-up)");
            return;
        }
    };
    let database = ScratchDatabase::create(&server, "bench_ingest").unwrap();
    let mut store = PgStore::open(database.url()).unwrap();
    let mut client = postgres::Client::connect(database.url(), postgres::NoTls).unwrap();
    let rows = rows(records);
    let mut empty = || {
        client
            .batch_execute("TRUNCATE samples, events, metrics, phases, runs")
            .unwrap()
    };
    let mut group = c.benchmark_group("ingest-postgres");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    group.bench_function("PgStore::ingest 20k samples", |b| {
        b.iter_batched(
            &mut empty,
            |_| store.ingest(records).unwrap(),
            BatchSize::PerIteration,
        )
    });
    let mut raw = postgres::Client::connect(database.url(), postgres::NoTls).unwrap();
    let mut empty = |c: &mut postgres::Client| {
        c.batch_execute("TRUNCATE samples, events, metrics, phases, runs")
            .unwrap()
    };
    group.bench_function("raw binary COPY 20k samples", |b| {
        b.iter_custom(|iterations| timed(iterations, &mut raw, &mut empty, |c| raw_copy(c, &rows)))
    });
    group.bench_function("raw multi-row INSERT 20k samples", |b| {
        b.iter_custom(|iterations| {
            timed(iterations, &mut raw, &mut empty, |c| raw_unnest(c, &rows))
        })
    });
    group.finish();
}

/// `iterations` runs of `work`, each after `reset` (not timed): their total time.
fn timed(
    iterations: u64,
    client: &mut postgres::Client,
    reset: &mut impl FnMut(&mut postgres::Client),
    work: impl Fn(&mut postgres::Client),
) -> std::time::Duration {
    let mut total = std::time::Duration::ZERO;
    for _ in 0..iterations {
        reset(client);
        let start = std::time::Instant::now();
        work(client);
        total += start.elapsed();
    }
    total
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
    postgres_benches(c, &records);
}

criterion_group!(ingest_benches, benches);
criterion_main!(ingest_benches);
