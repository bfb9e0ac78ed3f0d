//! One user never sees another's runs, nor one tenant another's: every API route, taken from
//! the OpenAPI document (so a route added without this check fails here), called with a
//! stranger's token on the first user's run and experiment ids, full and as prefixes, answers
//! 404 (never a 403 that confirms the id); a member of the run's tenant, a viewer too, reads
//! it; a prefix resolves among the caller's own runs only, its 404 naming what was typed; and
//! a token scoped to one tenant sees that tenant alone, at most its role, until revoked.

use atlas_store::NewRun;

use crate::support::http::send;
use crate::support::project::Project;
use crate::support::server::{Db, Kind, Server};

crate::on_both_stores!(
    every_api_route_answers_another_users_ids_with_404_and_none_of_their_data,
    another_tenant_gets_404_on_every_route_and_a_viewer_of_the_runs_tenant_reads_it,
    a_prefix_resolves_among_the_callers_own_runs_and_a_404_echoes_only_what_was_typed,
    a_token_scoped_to_one_tenant_sees_that_tenant_alone_and_is_revocable,
);

/// What of Ada's must never reach Bob: her ids, her workflow's name, her metric's name.
const ADA_RUN: &str = "r-fa512e3b";
const ADA_EXPERIMENT: &str = "e-fa512e3b";
const SECRETS: [&str; 6] = [
    ADA_RUN,
    ADA_EXPERIMENT,
    "ada-secret-flow",
    "ada_secret_metric",
    "ada-secret-node",
    "ada-secret-service",
];

/// A node sample of `node`, now.
fn node_sample(node: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    format!("{{\"target\":\"cluster\",\"node\":\"{node}\",\"time\":{now},\"cores\":0.5}}\n")
}

/// A storage service's status, as its operator pushes it.
fn service_status(name: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    format!("{{\"place\":\"local\",\"name\":\"{name}\",\"time\":{now},\"status\":{{\"phase\":\"Healthy\"}}}}\n")
}

fn create(db: &Db, run: &str, experiment: &str, owner: &str, workflow: &str) {
    create_in(db, run, experiment, owner, workflow, None);
}

fn create_in(
    db: &Db,
    run: &str,
    experiment: &str,
    owner: &str,
    workflow: &str,
    tenant: Option<&str>,
) {
    let mut store = db.open();
    let labels = serde_json::json!({});
    let _ = store.create_experiment(experiment, workflow, &labels, 1.0);
    store
        .create_run(&NewRun {
            spec: None,
            inputs: None,
            id: run.into(),
            experiment_id: Some(experiment.into()),
            workflow: workflow.into(),
            target: "local".into(),
            repetition: 0,
            run_dir: std::env::temp_dir().join(run).display().to_string(),
            labels,
            submitted_at: 1.0,
            owner: Some(owner.into()),
            tenant: tenant.map(String::from),
            cores: 0.0,
            gpus: 0.0,
        })
        .unwrap();
}

/// Ada's run (of `tenant`, or hers alone), running, with a phase, a sample and a metric pushed
/// over the API.
fn ada_runs_something(server: &Server, ada: &str, tenant: Option<&str>) {
    create_in(
        &server.db,
        ADA_RUN,
        ADA_EXPERIMENT,
        "ada",
        "ada-secret-flow",
        tenant,
    );
    let head = |seq: u32, kind: &str| {
        format!("{{\"run\":\"{ADA_RUN}\",\"seq\":{seq},\"time\":{seq}.0,\"mono\":{seq}.0,\"type\":\"{kind}\"")
    };
    let body = [
        format!("{},\"workflow\":\"ada-secret-flow\",\"host\":\"h\",\"agentVersion\":\"0\",\"phases\":[\"train\"],\"intervalMs\":200,\"cpus\":1,\"gpu\":\"none\",\"source\":\"process tree\"}}", head(1, "runStart")),
        format!("{},\"phase\":\"train\",\"index\":0}}", head(2, "phaseStart")),
        format!("{},\"phase\":\"train\",\"cpuUserSeconds\":1.0,\"cpuSystemSeconds\":0.1,\"rssBytes\":1000,\"readBytes\":0,\"writeBytes\":0,\"threads\":1,\"processes\":1}}", head(3, "sample")),
        format!("{},\"phase\":\"train\",\"name\":\"ada_secret_metric\",\"value\":1.5}}", head(4, "metric")),
    ]
    .join("\n");
    let reply = send(
        "POST",
        &format!("{}/api/v1/records", server.url),
        &[("Authorization", &format!("Bearer {ada}"))],
        body.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = send(
        "POST",
        &format!("{}/api/v1/nodes/samples", server.url),
        &[("Authorization", &format!("Bearer {ada}"))],
        node_sample("ada-secret-node").as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = send(
        "POST",
        &format!("{}/api/v1/services/status", server.url),
        &[("Authorization", &format!("Bearer {ada}"))],
        service_status("ada-secret-service").as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// `method path` as `token`, with a record of Ada's run as the body of anything but GET (a
/// node sample of the caller's own for the node samples' route).
fn call(server: &Server, method: &str, path: &str, token: &str) -> crate::support::http::Reply {
    let record = format!(
        "{{\"run\":\"{ADA_RUN}\",\"seq\":99,\"time\":1.0,\"mono\":0.0,\"type\":\"signal\",\"signal\":15}}\n"
    );
    let sample = node_sample("bobs-node");
    let service = service_status("bobs-service");
    let body = if method == "get" || method == "delete" {
        &b""[..]
    } else if path.starts_with("/api/v1/tenants") {
        &br#"{"role": "admin"}"#[..]
    } else if path.starts_with("/api/v1/nodes") {
        sample.as_bytes()
    } else if path.starts_with("/api/v1/services") {
        service.as_bytes()
    } else {
        record.as_bytes()
    };
    send(
        &method.to_uppercase(),
        &format!("{}{path}", server.url),
        &[("Authorization", &format!("Bearer {token}"))],
        body,
    )
}

fn every_api_route_answers_another_users_ids_with_404_and_none_of_their_data(kind: Kind) {
    let p = Project::new(&format!("serve-tenancy-{kind:?}"), "");
    let server = Server::start(&p.dir, &Db::new(kind, &p.dir));
    let (ada, bob) = (server.add_user("ada"), server.add_user("bob"));
    ada_runs_something(&server, &ada, None);
    walk_as_a_stranger(&server, &bob);
    reads_adas_run(&server, &ada);
}

/// `atlas ARGS…` on the server's database; it must succeed. Its standard output.
fn atlas(server: &Server, args: &[&str]) -> String {
    let out = atlas_status(server, args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn atlas_status(server: &Server, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(args)
        .env("ATLAS_DB", &server.db.location)
        .output()
        .unwrap()
}

/// `atlas token add USER --tenant TENANT --role ROLE`: the token printed.
fn scoped_token(server: &Server, user: &str, tenant: &str, role: &str) -> String {
    let args = ["token", "add", user, "--tenant", tenant, "--role", role];
    atlas(server, &args).trim().to_string()
}

fn a_token_scoped_to_one_tenant_sees_that_tenant_alone_and_is_revocable(kind: Kind) {
    let p = Project::new(&format!("serve-scoped-{kind:?}"), "");
    let server = Server::start(&p.dir, &Db::new(kind, &p.dir));
    let (ada, vic) = (server.add_user("ada"), server.add_user("vic"));
    for args in [
        ["tenant", "add", "vision", "", "", ""],
        ["tenant", "add", "speech", "", "", ""],
        ["tenant", "member", "add", "vision", "ada", "--role=admin"],
        ["tenant", "member", "add", "speech", "ada", "--role=member"],
        ["tenant", "member", "add", "vision", "vic", "--role=viewer"],
    ] {
        let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
        atlas(&server, &args);
    }
    ada_runs_something(&server, &ada, Some("vision"));
    // Ada's own token sees her vision run; her token scoped to speech sees none of it.
    let speech = scoped_token(&server, "ada", "speech", "member");
    walk_as_a_stranger(&server, &speech);
    let me = call(&server, "get", "/api/v1/me", &speech).json();
    assert_eq!(me["tenants"].as_array().unwrap().len(), 1, "{me}");
    assert_eq!(me["token"]["tenant"], "speech", "{me}");
    // Scoped to vision as a viewer, it reads the run and pushes nothing.
    let viewer = scoped_token(&server, "ada", "vision", "viewer");
    reads_adas_run(&server, &viewer);
    for path in [
        "/api/v1/records",
        "/api/v1/nodes/samples",
        "/api/v1/services/status",
    ] {
        let reply = call(&server, "post", path, &viewer);
        assert_eq!(reply.status, 403, "{path}: {}", reply.body);
    }
    let reply = call(
        &server,
        "put",
        "/api/v1/tenants/vision/members/vic",
        &viewer,
    );
    assert_eq!(
        reply.status, 403,
        "a viewer's token manages nothing: {}",
        reply.body
    );
    // A member's token pushes node samples for the tenant: its viewers see those nodes, the
    // speech token does not.
    let member = scoped_token(&server, "ada", "vision", "member");
    let body = node_sample("vision-rack-7");
    let url = format!("{}/api/v1/nodes/samples", server.url);
    let auth = format!("Bearer {member}");
    let reply = send("POST", &url, &[("Authorization", &auth)], body.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    let nodes = |token: &str| call(&server, "get", "/api/v1/nodes", token).body;
    assert!(nodes(&vic).contains("vision-rack-7"), "{}", nodes(&vic));
    assert!(!nodes(&speech).contains("vision-rack-7"));
    assert!(
        !nodes(&vic).contains("ada-secret-node"),
        "Ada's own nodes stay hers"
    );
    // The same for a storage service's status.
    let url = format!("{}/api/v1/services/status", server.url);
    let body = service_status("vision-scratch");
    let reply = send("POST", &url, &[("Authorization", &auth)], body.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    let services = |token: &str| call(&server, "get", "/api/v1/services", token).body;
    assert!(
        services(&vic).contains("vision-scratch"),
        "{}",
        services(&vic)
    );
    assert!(!services(&speech).contains("vision-scratch"));
    assert!(!services(&vic).contains("ada-secret-service"));
    // No token above its user's role; none for a tenant they are not in.
    for (user, tenant, role) in [("vic", "vision", "member"), ("vic", "speech", "viewer")] {
        let out = atlas_status(
            &server,
            &["token", "add", user, "--tenant", tenant, "--role", role],
        );
        assert_eq!(out.status.code(), Some(2), "{user} {tenant} {role}");
        assert!(out.stdout.is_empty(), "no token printed");
    }
    // A stream opened with the viewer token ends once the token is revoked (below).
    let open = crate::limits::stream(&server, &viewer, ADA_RUN).expect("the stream opens");
    // A member's token whose user is now a viewer pushes nothing either.
    server.add_user("mel");
    atlas(
        &server,
        &["tenant", "member", "add", "vision", "mel", "--role=member"],
    );
    let mel = scoped_token(&server, "mel", "vision", "member");
    atlas(
        &server,
        &["tenant", "member", "add", "vision", "mel", "--role=viewer"],
    );
    let reply = call(&server, "post", "/api/v1/records", &mel);
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.body.contains("reads only"), "{}", reply.body);
    // Revoked, the viewer token is refused at once; the others still work.
    let list: serde_json::Value =
        serde_json::from_str(&atlas(&server, &["token", "list", "--format", "json"])).unwrap();
    let listed = list.as_array().unwrap();
    assert_eq!(listed.len(), 4, "{list}");
    assert!(!list.to_string().contains(&viewer[4..]), "no secret listed");
    let id = listed
        .iter()
        .find(|t| t["role"] == "viewer" && t["user"] == "ada")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    atlas(&server, &["token", "revoke", &id]);
    assert_eq!(call(&server, "get", "/api/v1/runs", &viewer).status, 401);
    assert_eq!(call(&server, "get", "/api/v1/runs", &member).status, 200);
    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(open.into_body().into_reader()));
    let ended = lines.find(|l| {
        l.as_ref()
            .is_ok_and(|l| l.contains("access to this run has ended"))
    });
    assert!(ended.is_some(), "the open stream ended with the revocation");
    an_ended_runs_lifecycle_is_not_rewritten(&server, &ada);
}

/// Ada's run ends; a late lifecycle record with a lower sequence number (its end rewritten)
/// is refused with 409, the same end again is a duplicate, and implausible figures are 400.
fn an_ended_runs_lifecycle_is_not_rewritten(server: &Server, ada: &str) {
    let end = |seq: u32, wall: &str| {
        format!("{{\"run\":\"{ADA_RUN}\",\"seq\":{seq},\"time\":{seq}.0,\"mono\":{seq}.0,\"type\":\"runEnd\",\"status\":\"succeeded\",\"wallSeconds\":{wall},\"runDirBytes\":4096}}\n")
    };
    let url = format!("{}/api/v1/records", server.url);
    let auth = format!("Bearer {ada}");
    let push = |body: String| send("POST", &url, &[("Authorization", &auth)], body.as_bytes());
    assert_eq!(push(end(20, "-1e12")).status, 400, "a negative wall time");
    let reply = push(end(20, "30"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = push(end(10, "0.5"));
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert!(reply.body.contains("has ended"), "{}", reply.body);
    let reply = push(end(20, "30"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["duplicates"], 1, "{}", reply.body);
    let run = call(server, "get", &format!("/api/v1/runs/{ADA_RUN}"), ada).json();
    assert_eq!(run["wallSeconds"], 30.0, "{run}");
}

fn another_tenant_gets_404_on_every_route_and_a_viewer_of_the_runs_tenant_reads_it(kind: Kind) {
    let p = Project::new(&format!("serve-tenants-{kind:?}"), "");
    let server = Server::start(&p.dir, &Db::new(kind, &p.dir));
    let (ada, bob, vic) = (
        server.add_user("ada"),
        server.add_user("bob"),
        server.add_user("vic"),
    );
    atlas(&server, &["tenant", "add", "vision"]);
    atlas(&server, &["tenant", "add", "speech"]);
    atlas(
        &server,
        &[
            "tenant", "member", "add", "vision", "ada", "--role", "admin",
        ],
    );
    atlas(
        &server,
        &[
            "tenant", "member", "add", "vision", "vic", "--role", "viewer",
        ],
    );
    atlas(
        &server,
        &[
            "tenant", "member", "add", "speech", "bob", "--role", "admin",
        ],
    );
    ada_runs_something(&server, &ada, Some("vision"));
    walk_as_a_stranger(&server, &bob);
    reads_adas_run(&server, &vic);
    // Vic reads the run but pushes no records for it: they are its owner's to push.
    let reply = call(&server, "post", "/api/v1/records", &vic);
    assert_eq!(reply.status, 403, "{}", reply.body);
    // Out of the tenant, Vic's token sees nothing of it any more.
    atlas(&server, &["tenant", "member", "remove", "vision", "vic"]);
    walk_as_a_stranger(&server, &vic);
}

/// Every route of the OpenAPI document, called as `stranger` with Ada's ids: 404 and none of
/// her data.
fn walk_as_a_stranger(server: &Server, stranger: &str) {
    let bob = stranger;
    let spec = send(
        "GET",
        &format!("{}/api/v1/openapi.json", server.url),
        &[],
        b"",
    )
    .json();
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 12, "the document lists the routes: {spec}");
    let mut walked = 0;
    for (template, operations) in paths {
        for method in operations.as_object().unwrap().keys() {
            if !template.contains('{') {
                let reply = call(server, method, template, bob);
                // Records of Ada's run: 404, as if it did not exist; Bob's own node samples: 200.
                let expected = if template == "/api/v1/records" {
                    404
                } else {
                    200
                };
                assert_eq!(
                    reply.status, expected,
                    "{method} {template}: {}",
                    reply.body
                );
                // A body names Ada's run (Bob typed it): only that may come back.
                let typed = if method == "get" { "" } else { ADA_RUN };
                for secret in SECRETS.iter().filter(|s| **s != typed) {
                    assert!(
                        !reply.body.contains(secret),
                        "{method} {template} showed Bob {secret}: {}",
                        reply.body
                    );
                }
                walked += 1;
                continue;
            }
            let param = template
                .split('{')
                .nth(1)
                .unwrap()
                .split('}')
                .next()
                .unwrap();
            if param == "tenant" {
                // Ada's tenant (in the tenant case; a tenant nobody made otherwise), with Bob
                // trying to make himself its admin or take Ada out.
                let path = template
                    .replace("{tenant}", "vision")
                    .replace("{user}", if method == "put" { "bob" } else { "ada" });
                let reply = call(server, method, &path, bob);
                assert_eq!(reply.status, 404, "{method} {path}: {}", reply.body);
                walked += 1;
                continue;
            }
            assert_eq!(
                param, "id",
                "{template}: a new path parameter needs its case here"
            );
            let full = if template.starts_with("/api/v1/experiments/") {
                ADA_EXPERIMENT
            } else {
                ADA_RUN
            };
            for typed in [full, &full[..5]] {
                let path = template.replace("{id}", typed);
                let reply = call(server, method, &path, bob);
                assert_eq!(reply.status, 404, "{method} {path}: {}", reply.body);
                assert!(
                    reply.json()["error"].is_string(),
                    "{method} {path}: {}",
                    reply.body
                );
                for secret in SECRETS.iter().filter(|s| **s != typed) {
                    assert!(
                        !reply.body.contains(secret),
                        "{method} {path} showed Bob {secret}: {}",
                        reply.body
                    );
                }
                walked += 1;
            }
        }
    }
    assert!(walked >= 20, "walked {walked} calls");
    // An array task of Ada's run: 404 too, before anything is said of its array.
    let task = format!(
        "{{\"run\":\"{ADA_RUN}-t1\",\"seq\":1,\"time\":1.0,\"mono\":0.0,\"type\":\"signal\",\"signal\":15}}\n"
    );
    let reply = send(
        "POST",
        &format!("{}/api/v1/records", server.url),
        &[("Authorization", &format!("Bearer {bob}"))],
        task.as_bytes(),
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
}

/// The check means something: `reader` (Ada, or a member of her run's tenant) sees her run
/// where a stranger saw nothing.
fn reads_adas_run(server: &Server, reader: &str) {
    for path in [
        "/api/v1/runs",
        "/api/v1/experiments",
        "/metrics",
        "/api/v1/runs/r-fa5/metrics",
    ] {
        let reply = call(server, "get", path, reader);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert!(
            SECRETS.iter().any(|s| reply.body.contains(s)),
            "{path}: {}",
            reply.body
        );
    }
}

fn a_prefix_resolves_among_the_callers_own_runs_and_a_404_echoes_only_what_was_typed(kind: Kind) {
    let p = Project::new(&format!("serve-prefix-{kind:?}"), "");
    let server = Server::start(&p.dir, &Db::new(kind, &p.dir));
    let (ada, bob) = (server.add_user("ada"), server.add_user("bob"));
    create(
        &server.db,
        ADA_RUN,
        ADA_EXPERIMENT,
        "ada",
        "ada-secret-flow",
    );
    create(&server.db, "r-fa9b0c", "e-fa9b0c", "bob", "bobs");
    // Bob's prefix finds his own run, although Ada's starts the same way.
    let reply = call(&server, "get", "/api/v1/runs/r-fa", &bob);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["id"], "r-fa9b0c");
    let reply = call(&server, "get", "/api/v1/experiments/e-fa", &bob);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["id"], "e-fa9b0c");
    // A prefix of only Ada's ids: 404, naming what Bob typed and not Ada's full id.
    for (path, typed) in [
        ("/api/v1/runs/r-fa5", "r-fa5"),
        ("/api/v1/experiments/e-fa5", "e-fa5"),
    ] {
        let reply = call(&server, "get", path, &bob);
        assert_eq!(reply.status, 404, "{}", reply.body);
        let message = reply.json()["error"].as_str().unwrap().to_string();
        assert!(message.contains(&format!("`{typed}`")), "{message}");
        assert!(
            !reply.body.contains(ADA_RUN) && !reply.body.contains(ADA_EXPERIMENT),
            "{message}"
        );
    }
    assert_eq!(
        call(&server, "get", "/api/v1/runs/r-fa5", &ada).json()["id"],
        ADA_RUN
    );
}
