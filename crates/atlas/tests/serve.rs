//! `atlas serve` over real HTTP on 127.0.0.1: the API and its tokens, agents pushing live
//! (also while the server is down), bad and concurrent posts, and a server killed mid-ingest.

mod support {
    pub mod http;
    pub mod project;
    pub mod server;
}

// The hardening cases, each class in its own file (tests/serve_cases/).
#[path = "serve_cases/connections.rs"]
mod connections;
#[path = "serve_cases/errors.rs"]
mod errors;
#[path = "serve_cases/limits.rs"]
mod limits;
#[path = "serve_cases/sessions.rs"]
mod sessions;
#[path = "serve_cases/sso.rs"]
mod sso;
#[path = "serve_cases/sso_hostile.rs"]
mod sso_hostile;
#[path = "serve_cases/tenancy.rs"]
mod tenancy;
#[path = "serve_cases/tenants.rs"]
mod tenants;
#[path = "serve_cases/tls.rs"]
mod tls;

use std::process::Command;

use atlas_store::NewRun;
use serde_json::Value;
use support::http::oversized_post;
use support::project::Project;
use support::server::{add_user, free_port, get, post, Db, Kind, Server};

on_both_stores!(
    the_api_needs_a_token_and_shows_a_user_their_own_runs,
    an_agent_pushes_its_records_and_a_replayed_batch_adds_nothing,
    records_pushed_while_the_server_is_down_arrive_in_order_when_it_returns,
    bad_posts_get_clear_statuses_and_the_server_goes_on,
    a_thousand_concurrent_pushes_are_all_ingested_once,
    every_acknowledged_record_survives_a_sigkill_during_ingest,
    the_runs_listing_filters_by_status_label_and_time_in_the_store,
);

const WORKFLOW: &str = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: live}\nspec:\n  phases:\n  - name: train\n    run: 'for i in 1 2 3 4; do echo loss=0.$i; sleep 0.4; done'\n    patterns: ['loss=(?P<loss>[0-9.]+)']\n  - {name: after, run: 'echo done'}\n";

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Registers run `id` owned by `owner` in the database, as `atlas run` would.
fn register(db: &Db, id: &str, owner: &str) {
    let mut store = db.open();
    store
        .create_run(&NewRun {
            spec: None,
            inputs: None,
            id: id.into(),
            experiment_id: None,
            workflow: "live".into(),
            target: "local".into(),
            repetition: 0,
            run_dir: std::env::temp_dir().join(id).display().to_string(),
            labels: serde_json::json!({}),
            submitted_at: 1.0,
            owner: Some(owner.into()),
            tenant: None,
            cores: 0.0,
            gpus: 0.0,
        })
        .unwrap();
}

/// `atlas agent` for run `id` with pushing to `server_url` as `token`: its spool's text.
fn agent(p: &Project, id: &str, server_url: &str, token: &str) -> String {
    let dir = p.dir.join("agent").join(id);
    let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["agent", "w.yaml", "--run-id", id, "--run-dir"])
        .arg(&dir)
        .args(["--interval", "200ms", "--quiet"])
        .current_dir(&p.dir)
        .env("ATLAS_SERVER", server_url)
        .env("ATLAS_TOKEN", token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.join("spool.jsonl")).unwrap()
}

fn event_count(db: &Db, run: &str) -> i64 {
    let detail = db.open().run(run).unwrap();
    detail.phases.iter().map(|p| p.samples).sum()
}

fn the_api_needs_a_token_and_shows_a_user_their_own_runs(kind: Kind) {
    let p = Project::new(&format!("serve-api-{kind:?}"), "");
    std::fs::write(p.dir.join("w.yaml"), WORKFLOW).unwrap();
    let db = Db::new(kind, &p.dir);
    let server = Server::start(&p.dir, &db);
    let (ada, bob) = (server.add_user("ada"), server.add_user("bob"));
    let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["run", "w.yaml", "--on", "local", "--interval", "200ms"])
        .current_dir(&p.dir)
        .env("ATLAS_DB", &db.location)
        .env("XDG_DATA_HOME", p.dir.join("data"))
        .env("ATLAS_USER", "ada")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(get(&server, "/api/v1/runs", None).0, 401);
    assert_eq!(get(&server, "/api/v1/runs", Some("atl_wrong")).0, 401);
    let (code, body) = get(&server, "/api/v1/runs", Some(&ada));
    assert_eq!(code, 200, "{body}");
    let runs = json(&body);
    assert_eq!(runs.as_array().unwrap().len(), 1);
    let (id, experiment) = (
        runs[0]["id"].as_str().unwrap().to_string(),
        runs[0]["experimentId"].as_str().unwrap().to_string(),
    );
    assert_eq!(runs[0]["owner"], "ada");
    // Bob sees nothing of Ada's.
    assert_eq!(
        json(&get(&server, "/api/v1/runs", Some(&bob)).1),
        serde_json::json!([])
    );
    assert_eq!(
        get(&server, &format!("/api/v1/runs/{id}"), Some(&bob)).0,
        404
    );
    assert_eq!(
        get(
            &server,
            &format!("/api/v1/experiments/{experiment}/comparison"),
            Some(&bob)
        )
        .0,
        404
    );
    assert_eq!(
        json(&get(&server, "/api/v1/experiments", Some(&bob)).1),
        serde_json::json!([])
    );

    let detail = json(&get(&server, &format!("/api/v1/runs/{id}"), Some(&ada)).1);
    assert_eq!(detail["phases"][0]["name"], "train");
    let samples = json(
        &get(
            &server,
            &format!("/api/v1/runs/{id}/samples?width=5"),
            Some(&ada),
        )
        .1,
    );
    let n = samples.as_array().unwrap().len();
    assert!((2..=5).contains(&n), "downsampled to at most 5: {samples}");
    let metrics = json(&get(&server, &format!("/api/v1/runs/{id}/metrics"), Some(&ada)).1);
    let losses: Vec<f64> = metrics
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_f64().unwrap())
        .collect();
    assert_eq!(losses, [0.1, 0.2, 0.3, 0.4]);
    let log = json(
        &get(
            &server,
            &format!("/api/v1/runs/{id}/log?phase=train"),
            Some(&ada),
        )
        .1,
    );
    assert!(
        log["stdout"].as_str().unwrap().contains("loss=0.4"),
        "{log}"
    );
    // The comparison is what `atlas compare --format json` prints.
    let (code, body) = get(
        &server,
        &format!("/api/v1/experiments/{experiment}/comparison"),
        Some(&ada),
    );
    assert_eq!(code, 200, "{body}");
    let (_, cli, _) = p.atlas_on(&db.location, &["compare", &experiment, "--format", "json"]);
    assert_eq!(json(&body), json(&cli));
    let (code, metrics_text) = get(&server, "/metrics", Some(&ada));
    assert_eq!(code, 200);
    assert!(
        metrics_text.contains("# TYPE atlas_job_memory_rss_bytes gauge"),
        "{metrics_text}"
    );
    // Every documented path answers (no 404 for Ada's own ids).
    let spec = json(&get(&server, "/api/v1/openapi.json", None).1);
    for (path, ops) in spec["paths"].as_object().unwrap() {
        if ops.get("get").is_none() || path.ends_with("/events") {
            continue;
        }
        let id_for = if path.contains("experiments") {
            &experiment
        } else {
            &id
        };
        let concrete = path.replace("{id}", id_for);
        let (code, body) = get(&server, &concrete, Some(&ada));
        assert_eq!(code, 200, "{concrete}: {body}");
    }
}

fn an_agent_pushes_its_records_and_a_replayed_batch_adds_nothing(kind: Kind) {
    let p = Project::new(&format!("serve-push-{kind:?}"), "");
    std::fs::write(p.dir.join("w.yaml"), WORKFLOW).unwrap();
    let db = Db::new(kind, &p.dir);
    let server = Server::start(&p.dir, &db);
    let ada = server.add_user("ada");
    register(&db, "r-push1", "ada");
    // Nothing but the push puts records into this database.
    let spool = agent(&p, "r-push1", &server.url, &ada);
    let records = spool.lines().count() as i64;
    let detail = json(&get(&server, "/api/v1/runs/r-push1", Some(&ada)).1);
    assert_eq!(detail["status"], "succeeded", "{detail}");
    assert_eq!(detail["phases"].as_array().unwrap().len(), 2);
    let samples = event_count(&db, "r-push1");
    assert!(samples > 0);
    let (code, body) = post(&server, "/api/v1/records", &ada, spool.as_bytes());
    assert_eq!(code, 200, "{body}");
    let answer = json(&body);
    assert_eq!(
        (answer["inserted"].as_i64(), answer["duplicates"].as_i64()),
        (Some(0), Some(records))
    );
    assert_eq!(
        event_count(&db, "r-push1"),
        samples,
        "the replay added nothing"
    );
}

fn records_pushed_while_the_server_is_down_arrive_in_order_when_it_returns(kind: Kind) {
    let p = Project::new(&format!("serve-down-{kind:?}"), "");
    std::fs::write(p.dir.join("w.yaml"), WORKFLOW).unwrap();
    let db = Db::new(kind, &p.dir);
    let port = free_port();
    // The user and run exist; the server is not up yet.
    let token = add_user(&db.location, "ada");
    register(&db, "r-late", "ada");
    let url = format!("http://127.0.0.1:{port}");
    let (dir, db2) = (p.dir.clone(), db.clone());
    let starter = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        Server::start_on(&dir, &db2, port)
    });
    let spool = agent(&p, "r-late", &url, &token);
    let server = starter.join().unwrap();
    let detail = json(&get(&server, "/api/v1/runs/r-late", Some(&token)).1);
    assert_eq!(
        detail["status"], "succeeded",
        "the backlog arrived: {detail}"
    );
    let conn = db.records("r-late");
    assert_eq!(conn, spool.lines().count() as i64, "every record once");
}

fn bad_posts_get_clear_statuses_and_the_server_goes_on(kind: Kind) {
    let p = Project::new(&format!("serve-bad-{kind:?}"), "");
    let db = Db::new(kind, &p.dir);
    let server = Server::start(&p.dir, &db);
    let (ada, bob) = (server.add_user("ada"), server.add_user("bob"));
    register(&db, "r-ada", "ada");
    let record = |run: &str, seq: u64| {
        format!("{{\"run\":\"{run}\",\"seq\":{seq},\"time\":1.0,\"mono\":0.0,\"type\":\"signal\",\"signal\":15}}\n")
    };
    let send = |token: &str, body: &str| post(&server, "/api/v1/records", token, body.as_bytes());
    let (code, body) = send(&ada, &format!("{}{{oops\n", record("r-ada", 1)));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("line 2"), "{body}");
    assert_eq!(send("atl_nobody", &record("r-ada", 1)).0, 401);
    // Another user's run answers as one that does not exist: nothing confirms it.
    let (code, body) = send(&bob, &record("r-ada", 1));
    assert_eq!(code, 404, "{body}");
    assert_eq!(send(&ada, &record("r-nobody", 1)).0, 404);
    // Too large (announced, so the answer never races the upload).
    let bearer = format!("Bearer {ada}");
    assert_eq!(oversized_post(&server.url, &bearer, 5 << 20).0, 413);
    let (code, body) = send(&ada, &record("r-ada", 1));
    assert_eq!(code, 200, "still serving: {body}");
}

fn a_thousand_concurrent_pushes_are_all_ingested_once(kind: Kind) {
    let p = Project::new(&format!("serve-many-{kind:?}"), "");
    let db = Db::new(kind, &p.dir);
    let server = Server::start(&p.dir, &db);
    let ada = server.add_user("ada");
    register(&db, "r-many", "ada");
    let url = server.url.clone();
    let threads: Vec<_> = (1..=1000u64)
        .map(|seq| {
            let (url, token) = (url.clone(), ada.clone());
            std::thread::spawn(move || {
                let line = format!("{{\"run\":\"r-many\",\"seq\":{seq},\"time\":{seq}.0,\"mono\":0.0,\"type\":\"signal\",\"signal\":15}}\n");
                let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
                let response = agent
                    .post(&format!("{url}/api/v1/records"))
                    .header("Authorization", &format!("Bearer {token}"))
                    .send(line.as_bytes());
                match response {
                    Ok(r) => r.status().to_string(),
                    Err(e) => format!("no answer: {e}"),
                }
            })
        })
        .collect();
    let answers: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let bad: Vec<&String> = answers.iter().filter(|a| !a.starts_with("200")).collect();
    assert!(
        bad.is_empty(),
        "{} of 1000: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert_eq!(db.records("r-many"), 1000);
}

fn every_acknowledged_record_survives_a_sigkill_during_ingest(kind: Kind) {
    let p = Project::new(&format!("serve-kill-{kind:?}"), "");
    let db = Db::new(kind, &p.dir);
    let mut server = Server::start(&p.dir, &db);
    let ada = server.add_user("ada");
    register(&db, "r-kill", "ada");
    let url = server.url.clone();
    let token = ada.clone();
    let pusher = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut acknowledged = 0u64;
        for batch in 0..10_000u64 {
            let body: String = (0..200)
                .map(|i| {
                    let seq = batch * 200 + i + 1;
                    format!("{{\"run\":\"r-kill\",\"seq\":{seq},\"time\":{seq}.0,\"mono\":0.0,\"type\":\"signal\",\"signal\":15}}\n")
                })
                .collect();
            match agent
                .post(&format!("{url}/api/v1/records"))
                .header("Authorization", &format!("Bearer {token}"))
                .send(body.as_bytes())
            {
                Ok(r) if r.status().as_u16() == 200 => acknowledged = (batch + 1) * 200,
                _ => break,
            }
        }
        acknowledged
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    server.kill();
    let acknowledged = pusher.join().unwrap() as i64;
    assert!(
        acknowledged > 0,
        "some batches were acknowledged before the kill"
    );
    let _again = Server::start(&p.dir, &db);
    let stored = db.records("r-kill");
    assert!(
        stored >= acknowledged,
        "stored {stored} < acknowledged {acknowledged}"
    );
}

fn the_runs_listing_filters_by_status_label_and_time_in_the_store(kind: Kind) {
    let p = Project::new(&format!("serve-filter-{kind:?}"), "");
    let db = Db::new(kind, &p.dir);
    let server = Server::start(&p.dir, &db);
    let ada = server.add_user("ada");
    let mut store = db.open();
    for (i, team) in ["x", "y", "x"].iter().enumerate() {
        let mut run = NewRun {
            spec: None,
            inputs: None,
            id: format!("r-f{i}"),
            experiment_id: None,
            workflow: "w".into(),
            target: "local".into(),
            repetition: 0,
            run_dir: String::new(),
            labels: serde_json::json!({ "team": team }),
            submitted_at: 100.0 + i as f64,
            owner: Some("ada".into()),
            tenant: None,
            cores: 0.0,
            gpus: 0.0,
        };
        store.create_run(&run).unwrap();
        run.id = format!("r-bob{i}");
        run.owner = Some("bob".into());
        store.create_run(&run).unwrap();
    }
    store
        .finish_run("r-f0", atlas_spec::record::RunStatus::Failed, "test", 200.0)
        .unwrap();
    let ids = |query: &str| -> Vec<String> {
        let (code, body) = get(&server, &format!("/api/v1/runs{query}"), Some(&ada));
        assert_eq!(code, 200, "{query}: {body}");
        json(&body)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(""), ["r-f2", "r-f1", "r-f0"]);
    assert_eq!(ids("?label=team%3Dx"), ["r-f2", "r-f0"]);
    assert_eq!(ids("?status=failed"), ["r-f0"]);
    assert_eq!(ids("?from=101&to=102"), ["r-f1"]);
    assert_eq!(ids("?limit=1&label=team%3Dx"), ["r-f2"]);
    let (code, body) = get(&server, "/api/v1/runs?label=nokey", Some(&ada));
    assert_eq!(code, 400, "{body}");
}

/// Two `atlas serve` processes over one PostgreSQL database, the way a team runs it: agents
/// push to either at once; every record arrives once, a spool replayed to the other server
/// adds nothing, and both servers show the same runs.
#[test]
fn two_servers_on_one_postgres_database_take_pushes_from_agents_at_once() {
    if support::server::postgres_server().is_none() {
        return;
    }
    let p = Project::new("serve-two", "");
    std::fs::write(p.dir.join("w.yaml"), WORKFLOW).unwrap();
    let db = Db::new(Kind::Postgres, &p.dir);
    let servers = [Server::start(&p.dir, &db), Server::start(&p.dir, &db)];
    let ada = servers[0].add_user("ada");
    let runs: Vec<String> = (0..8).map(|i| format!("r-two{i}")).collect();
    for run in &runs {
        register(&db, run, "ada");
    }
    let spools: Vec<(String, String)> = std::thread::scope(|scope| {
        let agents: Vec<_> = runs
            .iter()
            .enumerate()
            .map(|(i, run)| {
                let (p, url, ada) = (&p, &servers[i % 2].url, &ada);
                scope.spawn(move || (run.clone(), agent(p, run, url, ada)))
            })
            .collect();
        agents.into_iter().map(|a| a.join().unwrap()).collect()
    });
    for (i, (run, spool)) in spools.iter().enumerate() {
        let lines = spool.lines().count() as i64;
        assert_eq!(db.records(run), lines, "{run}: every record once");
        let other = &servers[(i + 1) % 2];
        let (code, body) = post(other, "/api/v1/records", &ada, spool.as_bytes());
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            json(&body)["inserted"],
            0,
            "{run}: the replay to the other server added nothing"
        );
        assert_eq!(db.records(run), lines);
    }
    let listing = |s: &Server| json(&get(s, "/api/v1/runs", Some(&ada)).1);
    let (first, second) = (listing(&servers[0]), listing(&servers[1]));
    assert_eq!(first, second, "both servers show the same runs");
    assert_eq!(first.as_array().unwrap().len(), runs.len());
    for run in &runs {
        let detail = |s: &Server| json(&get(s, &format!("/api/v1/runs/{run}"), Some(&ada)).1);
        let (a, b) = (detail(&servers[0]), detail(&servers[1]));
        assert_eq!(a, b);
        assert_eq!(a["status"], "succeeded", "{a}");
    }
}
