//! Bounded input over real HTTP: a pushed record with an over-long field is refused whole,
//! naming the record and the field, and nothing of its batch is stored; event streams are
//! capped per run and in all, with a JSON 503 beyond, and a slot frees when its client goes.

use std::time::{Duration, Instant};

use atlas_store::NewRun;

use crate::support::http::send;
use crate::support::project::Project;
use crate::support::server::{free_port, Db, Kind, Server};

crate::on_both_stores!(
    only_the_tasks_of_a_runs_array_can_be_pushed,
    a_record_with_an_over_long_field_is_refused_naming_its_index_and_field,
    event_streams_are_capped_per_run_and_in_all,
);

fn register(db: &Db, id: &str) {
    let mut store = db.open();
    store
        .create_run(&NewRun {
            spec: None,
            inputs: None,
            id: id.into(),
            experiment_id: None,
            workflow: "w".into(),
            target: "local".into(),
            repetition: 0,
            run_dir: std::env::temp_dir().join(id).display().to_string(),
            labels: serde_json::json!({}),
            submitted_at: 1.0,
            owner: Some("ada".into()),
            tenant: None,
            cores: 0.0,
            gpus: 0.0,
        })
        .unwrap();
}

fn only_the_tasks_of_a_runs_array_can_be_pushed(kind: Kind) {
    let p = Project::new(&format!("serve-tasks-{kind:?}"), "");
    let server = Server::start(&p.dir, &Db::new(kind, &p.dir));
    let auth = format!("Bearer {}", server.add_user("ada"));
    let spec = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: w}\nspec:\n  scheduling: {array: {start: 0, end: 3}}\n  phases: [{name: main, run: 'true'}]\n";
    server
        .db
        .open()
        .create_run(&NewRun {
            id: "r-arr".into(),
            spec: Some(spec.into()),
            workflow: "w".into(),
            target: "slurm".into(),
            run_dir: std::env::temp_dir().join("r-arr").display().to_string(),
            labels: serde_json::json!({}),
            owner: Some("ada".into()),
            tenant: None,
            cores: 0.0,
            gpus: 0.0,
            ..NewRun::default()
        })
        .unwrap();
    let signal = |run: &str| {
        format!("{{\"run\":\"{run}\",\"seq\":1,\"time\":1.0,\"mono\":0.0,\"type\":\"signal\",\"signal\":15}}\n")
    };
    let url = format!("{}/api/v1/records", server.url);
    let push = |run: &str| {
        send(
            "POST",
            &url,
            &[("Authorization", &auth)],
            signal(run).as_bytes(),
        )
    };
    let inside = push("r-arr-t3");
    assert_eq!(inside.status, 200, "task 3 of 0-3: {}", inside.body);
    let beyond = push("r-arr-t7");
    assert_eq!(beyond.status, 400, "{}", beyond.body);
    assert!(beyond.body.contains("not a task"), "{}", beyond.body);
}

fn metric(seq: u32, name: &str) -> String {
    format!("{{\"run\":\"r-big\",\"seq\":{seq},\"time\":1.0,\"mono\":0.0,\"type\":\"metric\",\"phase\":\"train\",\"name\":\"{name}\",\"value\":1}}")
}

fn a_record_with_an_over_long_field_is_refused_naming_its_index_and_field(kind: Kind) {
    let p = Project::new(&format!("serve-field-limits-{kind:?}"), "");
    let server = Server::start(&p.dir, &Db::new(kind, &p.dir));
    let auth = format!("Bearer {}", server.add_user("ada"));
    register(&server.db, "r-big");
    let push = |body: String| {
        let url = format!("{}/api/v1/records", server.url);
        send("POST", &url, &[("Authorization", &auth)], body.as_bytes())
    };
    let host = "h".repeat(4097);
    let cases = [
        // A 1 MB metric name, second in its batch after a blank line.
        (format!("{}\n\n{}\n", metric(1, "loss"), metric(2, &"m".repeat(1 << 20))), 2, 3, "name"),
        (format!("{{\"run\":\"r-big\",\"seq\":3,\"time\":1.0,\"mono\":0.0,\"type\":\"runStart\",\"workflow\":\"w\",\"host\":\"{host}\",\"agentVersion\":\"0\",\"phases\":[\"train\"],\"intervalMs\":200,\"cpus\":1,\"gpu\":\"none\",\"source\":\"s\"}}"), 1, 1, "host"),
        (metric(4, &"p".repeat(atlas_spec::MAX_IDENT_LEN + 1)), 1, 1, "name"),
        (metric(6, "../../r-other/logs/train"), 1, 1, "name"),
    ];
    for (body, record, line, field) in cases {
        let reply = push(body);
        assert_eq!(
            reply.status,
            400,
            "{}",
            &reply.body[..reply.body.len().min(300)]
        );
        assert!(
            reply.body.len() < 1000,
            "the answer does not echo the field"
        );
        let answer = reply.json();
        assert_eq!(answer["record"], record, "{answer}");
        assert_eq!(answer["line"], line, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{answer}"
        );
    }
    let stored = server
        .db
        .count("SELECT count(*) FROM metrics WHERE run_id = 'r-big'");
    assert_eq!(
        stored, 0,
        "a refused batch stores nothing, not even its good records"
    );
    // At the bound it is taken.
    let reply = push(metric(5, &"n".repeat(atlas_spec::MAX_IDENT_LEN)));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Opens the event stream of `run`: the response (held open) or the status and body.
pub(crate) fn stream(
    server: &Server,
    token: &str,
    run: &str,
) -> Result<ureq::http::Response<ureq::Body>, (u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut response = agent
        .get(&format!("{}/api/v1/runs/{run}/events", server.url))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    match response.status().as_u16() {
        200 => Ok(response),
        status => Err((
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        )),
    }
}

fn event_streams_are_capped_per_run_and_in_all(kind: Kind) {
    let p = Project::new(&format!("serve-streams-{kind:?}"), "");
    let args = ["--max-event-streams", "20"];
    let server = Server::start_with(&p.dir, &Db::new(kind, &p.dir), free_port(), &args);
    let token = server.add_user("ada");
    for run in ["r-a", "r-b", "r-c"] {
        register(&server.db, run);
    }
    let mut open: Vec<_> = (0..16)
        .map(|_| stream(&server, &token, "r-a").unwrap())
        .collect();
    let (status, body) = stream(&server, &token, "r-a").unwrap_err();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("per run"), "{body}");
    open.extend((0..4).map(|_| stream(&server, &token, "r-b").unwrap()));
    let (status, body) = stream(&server, &token, "r-c").unwrap_err();
    assert_eq!(status, 503, "the 21st in all: {body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("20 event streams"),
        "{error}"
    );
    // A client that goes frees its slot (seen at the next keep-alive at the latest).
    drop(open.remove(0));
    let start = Instant::now();
    loop {
        match stream(&server, &token, "r-a") {
            Ok(response) => break open.push(response),
            Err((503, _)) if start.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(500))
            }
            Err(other) => panic!("no slot came free: {other:?}"),
        }
    }
}
