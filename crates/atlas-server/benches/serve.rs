//! `scripts/bench-serve` (or `cargo bench -p atlas-server --bench serve`): the real
//! `atlas serve` process (ATLAS_BIN, default target/release/atlas) on loopback, on SQLite and,
//! when `ATLAS_TEST_POSTGRES` names a server (`scripts/postgres-up`), on a fresh PostgreSQL
//! database, one after the other in one run:
//!
//! 1. ingest over HTTP: 100 agents push 20 batches of 50 job samples each at once
//!    (100,000 samples); samples per second from the first POST to the last answer;
//! 2. memory with 1,000 runs: 1,000 runs of 100 samples each in the store, the runs list,
//!    the experiments list and 50 run pages' samples read, then the server's VmRSS.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atlas_spec::record::{Record, RecordBody};
use atlas_store::postgres::scratch::ScratchDatabase;
use atlas_store::NewRun;

const AGENTS: u64 = 100;
const BATCHES: u64 = 20;
const PER_BATCH: u64 = 50;

fn sample(run: &str, seq: u64) -> Record {
    Record {
        run: run.into(),
        seq,
        time: 1.7e9 + seq as f64,
        mono: seq as f64,
        body: RecordBody::Sample {
            phase: Some("train".into()),
            cpu_user_seconds: seq as f64 * 0.9,
            cpu_system_seconds: seq as f64 * 0.1,
            rss_bytes: 1 << 30,
            read_bytes: seq * 4096,
            write_bytes: seq * 1024,
            threads: 8,
            processes: 2,
            cgroup_memory_bytes: None,
            gpus: Vec::new(),
        },
    }
}

fn batch(run: &str, first: u64, n: u64) -> Vec<u8> {
    let mut body = Vec::new();
    for seq in first..first + n {
        serde_json::to_writer(&mut body, &sample(run, seq)).unwrap();
        body.push(b'\n');
    }
    body
}

fn post(agent: &ureq::Agent, url: &str, token: &str, body: &[u8]) {
    let response = agent
        .post(&format!("{url}/api/v1/records"))
        .header("Authorization", &format!("Bearer {token}"))
        .send(body)
        .expect("the server answers");
    assert_eq!(response.status().as_u16(), 200);
}

fn register(db: &str, runs: std::ops::Range<u64>) {
    let mut store = atlas_store::open(db).unwrap();
    for i in runs {
        store
            .create_run(&NewRun {
                spec: None,
                inputs: None,
                id: format!("r-bench{i:04}"),
                experiment_id: None,
                workflow: "bench".into(),
                target: "local".into(),
                repetition: 0,
                run_dir: String::new(),
                labels: serde_json::json!({}),
                submitted_at: 1.7e9,
                owner: Some("bench".into()),
                tenant: None,
                cores: 0.0,
                gpus: 0.0,
            })
            .unwrap();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let atlas = std::env::var("ATLAS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/release/atlas"));
    assert!(
        atlas.exists(),
        "build it first: cargo build --release ({})",
        atlas.display()
    );
    let dir = std::env::temp_dir().join(format!("atlas-bench-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    println!("on SQLite:");
    bench(&atlas, &dir, &dir.join("atlas.db").display().to_string());
    match std::env::var("ATLAS_TEST_POSTGRES") {
        Ok(server) if !server.is_empty() => {
            let database = ScratchDatabase::create(&server, "bench_serve").unwrap();
            println!("on PostgreSQL:");
            bench(&atlas, &dir, database.url());
        }
        _ => println!(
            "on PostgreSQL: skipped (ATLAS_TEST_POSTGRES is not set; see scripts/postgres-up)"
        ),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Both figures for `atlas serve` over the store at `db` (a file or a URL).
fn bench(atlas: &Path, dir: &Path, db: &str) {
    let out = Command::new(atlas)
        .args(["user", "add", "bench"])
        .env("ATLAS_DB", db)
        .env("XDG_DATA_HOME", dir)
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    register(db, 0..AGENTS);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(atlas)
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .current_dir(dir)
        .env("ATLAS_DB", db)
        .env("XDG_DATA_HOME", dir)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    while ureq::get(&format!("{url}/api/v1/openapi.json"))
        .call()
        .is_err()
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    // 1. 100 agents pushing at once.
    let bodies: Vec<Vec<Vec<u8>>> = (0..AGENTS)
        .map(|a| {
            (0..BATCHES)
                .map(|b| batch(&format!("r-bench{a:04}"), b * PER_BATCH + 1, PER_BATCH))
                .collect()
        })
        .collect();
    let start = Instant::now();
    let threads: Vec<_> = bodies
        .into_iter()
        .map(|batches| {
            let (url, token) = (url.clone(), token.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
                for body in batches {
                    post(&agent, &url, &token, &body);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let samples = AGENTS * BATCHES * PER_BATCH;
    println!(
        "ingest over HTTP: {AGENTS} agents × {BATCHES} batches × {PER_BATCH} samples = {samples} samples in {secs:.2} s = {:.0} samples/s",
        samples as f64 / secs
    );
    // 2. 1,000 runs.
    register(db, AGENTS..1000);
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    for i in AGENTS..1000 {
        post(
            &agent,
            &url,
            &token,
            &batch(&format!("r-bench{i:04}"), 1, 100),
        );
    }
    let get = |path: &str| {
        agent
            .get(&format!("{url}{path}"))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    let t = Instant::now();
    let list = get("/api/v1/runs?limit=1000");
    let list_secs = t.elapsed().as_secs_f64();
    get("/api/v1/experiments");
    for i in (0..1000).step_by(20) {
        get(&format!("/api/v1/runs/r-bench{i:04}/samples?width=500"));
    }
    let runs = serde_json::from_str::<serde_json::Value>(&list)
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    let store_runs = atlas_store::open(db).unwrap().runs().unwrap().len();
    println!(
        "memory with {store_runs} runs ({runs} listed in {:.0} ms): server VmRSS {} MiB",
        list_secs * 1000.0,
        rss_kib(server.id()) / 1024
    );
    let _ = server.kill();
    let _ = server.wait();
}
