//! Tenant filtering, side by side in one run: the runs list (newest 200) of 10,000 runs across
//! 50 tenants (200 runs each, two members each) as a member sees it (`visible_to`: the
//! visibility rule in the query) against the same list unfiltered, and a run looked up by a
//! member (`visible_run_id` + `run`) against `run` alone; on SQLite and, when
//! `ATLAS_TEST_POSTGRES` names a server, on a fresh PostgreSQL database.
//! `cargo bench -p atlas-store --bench tenancy` (BENCHMARKS.md; goal ≤ 1.1×).

use atlas_store::postgres::scratch::ScratchDatabase;
use atlas_store::{NewRun, PgStore, Role, RunFilter, SqliteStore, Store};
use criterion::{criterion_group, criterion_main, Criterion};

const TENANTS: usize = 50;
const PER_TENANT: usize = 200;

/// 50 tenants of two members (`u0-a`, `u0-b`, …) and 200 runs each, interleaved in time.
fn fill(store: &mut dyn Store) {
    for t in 0..TENANTS {
        let tenant = format!("t{t}");
        store.add_tenant(&tenant, 1.0).unwrap();
        store
            .set_member(&tenant, &format!("u{t}-a"), Role::Admin)
            .unwrap();
        store
            .set_member(&tenant, &format!("u{t}-b"), Role::Member)
            .unwrap();
    }
    for i in 0..TENANTS * PER_TENANT {
        let t = i % TENANTS;
        store
            .create_run(&NewRun {
                id: format!("r-{i:08x}"),
                spec: None,
                inputs: None,
                experiment_id: None,
                workflow: "w".into(),
                target: "local".into(),
                repetition: 0,
                run_dir: format!("/tmp/r-{i:08x}"),
                labels: serde_json::json!({}),
                submitted_at: 1.7e9 + i as f64,
                owner: Some(format!("u{t}-a")),
                tenant: Some(format!("t{t}")),
                cores: 4.0,
                gpus: 0.0,
            })
            .unwrap();
    }
}

fn compare(c: &mut Criterion, name: &str, store: &dyn Store) {
    let mut group = c.benchmark_group(format!("tenancy-{name}"));
    group.sample_size(50);
    let all = RunFilter {
        limit: Some(200),
        ..RunFilter::default()
    };
    let mine = RunFilter {
        visible_to: Some("u17-b".into()),
        limit: Some(200),
        ..RunFilter::default()
    };
    assert_eq!(store.runs_filtered(&mine).unwrap().len(), PER_TENANT);
    group.bench_function("runs list, 200 of 10,000, unfiltered", |b| {
        b.iter(|| store.runs_filtered(&all).unwrap())
    });
    group.bench_function(
        "runs list, 200 of 10,000, as a member of 1 of 50 tenants",
        |b| b.iter(|| store.runs_filtered(&mine).unwrap()),
    );
    let id = format!("r-{:08x}", 17 + TENANTS * 100);
    group.bench_function("a run by id, unfiltered", |b| {
        b.iter(|| store.run(&id).unwrap())
    });
    group.bench_function("a run by id, as a member", |b| {
        b.iter(|| {
            let full = store.visible_run_id("u17-b", &id).unwrap().unwrap();
            store.run(&full).unwrap()
        })
    });
    // A token of the member scoped to the tenant (`atlas token add`): the same rule, asked
    // about `USER/TENANT`.
    let scoped = atlas_store::tenancy::principal("u17-b", Some("t17"));
    let scoped_list = RunFilter {
        visible_to: Some(scoped.clone()),
        limit: Some(200),
        ..RunFilter::default()
    };
    assert_eq!(store.runs_filtered(&scoped_list).unwrap().len(), PER_TENANT);
    group.bench_function("runs list, as a token scoped to the tenant", |b| {
        b.iter(|| store.runs_filtered(&scoped_list).unwrap())
    });
    group.bench_function("a run by id, as a token scoped to the tenant", |b| {
        b.iter(|| {
            let full = store.visible_run_id(&scoped, &id).unwrap().unwrap();
            store.run(&full).unwrap()
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("atlas-bench-tenancy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut sqlite = SqliteStore::open(&dir.join("atlas.db")).unwrap();
    fill(&mut sqlite);
    compare(c, "sqlite", &sqlite);
    match std::env::var("ATLAS_TEST_POSTGRES") {
        Ok(server) if !server.is_empty() => {
            let database = ScratchDatabase::create(&server, "bench_tenancy").unwrap();
            let mut pg = PgStore::open(database.url()).unwrap();
            fill(&mut pg);
            compare(c, "postgres", &pg);
        }
        _ => println!("PostgreSQL skipped: ATLAS_TEST_POSTGRES is not set (scripts/postgres-up)"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(tenancy_benches, benches);
criterion_main!(tenancy_benches);
