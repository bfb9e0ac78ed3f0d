//! The dashboard in a real headless Chromium (Debian's chromium + chromium-driver): a run
//! started during the test appears in the runs list, and its charts get new points without
//! the page being loaded again. With `ATLAS_SCREENSHOTS=DIR` the pages are saved there as
//! PNGs (the demo keeps them in docs/); with `ATLAS_LATENCY_OUT=FILE` the sample-to-screen
//! latencies the page measured are written there (scripts/bench-dashboard).

mod support {
    pub mod project;
    pub mod server;
    pub mod webdriver;
}

use std::process::Command;

use support::project::Project;
use support::server::{free_port, get, post, Db, Kind, Server};
use support::webdriver::Browser;

const WORKFLOW: &str = r#"apiVersion: atlas.dev/v1alpha1
kind: Workflow
metadata: {name: live-chart}
spec:
  phases:
  - {name: prepare, run: 'sleep 1'}
  - name: train
    run: |
      python3 - <<'PY'
      import time
      x = []
      for i in range(16):
          x.append(bytearray(4 << 20))
          print(f"loss={1 / (i + 1):.3f}", flush=True)
          time.sleep(0.5)
      PY
    patterns: ['loss=(?P<loss>[0-9.]+)']
"#;

fn required() -> bool {
    std::env::var("ATLAS_REQUIRE_INTEGRATION").is_ok_and(|v| v == "1")
}

fn save(dir: &Option<String>, name: &str, png: Vec<u8>) {
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(std::path::Path::new(dir).join(name), png).unwrap();
    }
}

/// Logs in as a person would: the login page's form, typed into and submitted (the token is
/// never in a URL); the page comes back to the runs.
fn log_in(browser: &Browser, server: &Server, token: &str) {
    browser.goto(&format!("{}/login?next=/", server.url));
    browser.wait_for(
        "return document.querySelector('input[name=token]') !== null",
        20,
    );
    browser.eval(&format!(
        "document.querySelector('input[name=token]').value = '{token}'; document.querySelector('button[type=submit]').click(); return true"
    ));
}

#[test]
fn a_running_job_appears_and_its_charts_grow_without_a_reload() {
    let Some(browser) = Browser::start() else {
        assert!(
            !required(),
            "chromium and chromium-driver are required (ATLAS_REQUIRE_INTEGRATION=1)"
        );
        eprintln!("skipped: no chromedriver (Debian: chromium-driver)");
        return;
    };
    let shots = std::env::var("ATLAS_SCREENSHOTS").ok();
    let p = Project::new(
        "dashboard",
        "[targets.local]\nkind = \"local\"\ngpus = false\n",
    );
    std::fs::write(p.dir.join("w.yaml"), WORKFLOW).unwrap();
    let db = p.dir.join("db/atlas.db");
    let server = Server::start(&p.dir, &Db::new(Kind::Sqlite, &p.dir));
    let token = server.add_user("ada");
    let mut run = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["run", "w.yaml", "--on", "local", "--interval", "1s"])
        .current_dir(&p.dir)
        .env("ATLAS_DB", &db)
        .env("ATLAS_USER", "ada")
        .env("ATLAS_SERVER", &server.url)
        .env("ATLAS_TOKEN", &token)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The run list, logged in through the form, while the run is going.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let id = loop {
        let (_, body) = get(&server, "/api/v1/runs", Some(&token));
        let runs: serde_json::Value = serde_json::from_str(&body).unwrap();
        if let Some(id) = runs[0]["id"].as_str() {
            break id.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no run appeared");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    log_in(&browser, &server, &token);
    browser.wait_for(
        &format!("return document.querySelector('tr[data-run=\"{id}\"]') !== null"),
        20,
    );
    save(&shots, "dashboard-runs.png", browser.screenshot());
    // The run's page: points arrive by server-sent events while the page stays loaded.
    browser.goto(&format!("{}/runs/{id}", server.url));
    let memory =
        "return Number(document.querySelector('[data-chart^=\"Memory\"]')?.dataset.points || 0)";
    let first = browser.wait_for(memory, 30).as_i64().unwrap();
    browser.wait_for(&format!("{memory} > {first}"), 30);
    let later = browser.eval(memory).as_i64().unwrap();
    assert!(later > first, "the chart grew: {first} → {later}");
    assert_eq!(browser.eval("return window.atlasPageLoads"), 1, "no reload");
    browser.wait_for(
        "return document.querySelector('[data-chart=\"metric: loss\"]') !== null",
        30,
    );
    browser.wait_for(
        "return document.querySelector('#timeline svg rect') !== null",
        30,
    );
    save(&shots, "dashboard-run.png", browser.screenshot());
    assert!(run.wait().unwrap().success());
    if let Ok(out) = std::env::var("ATLAS_LATENCY_OUT") {
        std::fs::write(out, browser.eval("return window.atlasLatency").to_string()).unwrap();
    }
    // Once it has ended: the status on the page, and the experiment's comparison.
    browser.wait_for("return document.title.includes('r-') && document.querySelector('.status.succeeded') !== null", 30);
    let (_, body) = get(&server, &format!("/api/v1/runs/{id}"), Some(&token));
    let detail = serde_json::from_str::<serde_json::Value>(&body).unwrap();
    let experiment = detail["experimentId"].as_str().unwrap().to_string();
    assert_eq!(detail["commands"][1]["phase"], "train", "{detail}");
    // The run page says what ran: its experiment (a link), each phase's command; its charts
    // have axes (ticks with values, the elapsed time).
    browser.wait_for(
        &format!("return document.getElementById('experiment-link')?.getAttribute('href') === '/experiments/{experiment}'"),
        20,
    );
    browser.wait_for(
        "return document.querySelector('#commands')?.textContent.includes('bytearray(4 << 20)') === true",
        20,
    );
    let ticks = browser
        .eval("return document.querySelectorAll('[data-chart^=\"Memory\"] text.tick').length");
    assert!(ticks.as_i64().unwrap() >= 5, "axes with ticks: {ticks}");
    browser.goto(&format!("{}/experiments/{experiment}", server.url));
    // The report is framed (same origin, its own policy) and drawn, not blocked.
    browser.wait_for(
        "return document.querySelector('iframe.report')?.contentDocument?.querySelector('table, svg') != null",
        30,
    );
    // The whole report is in the page: its frame grew past the stylesheet's 800 px to its
    // content's height (no fixed height, no scrollbar of its own).
    browser.wait_for(
        "const f = document.querySelector('iframe.report'); return f.clientHeight > 800 && f.clientHeight >= f.contentDocument.documentElement.scrollHeight",
        30,
    );
    std::thread::sleep(std::time::Duration::from_millis(800));
    save(&shots, "dashboard-experiment.png", browser.screenshot());
    browser.goto(&format!("{}/targets", server.url));
    browser.wait_for("return document.querySelector('table') !== null && document.body.innerText.includes('local')", 20);
}

/// A node agent pushing to the server as `token`'s user, stopped when dropped.
struct NodeAgent(std::process::Child);

impl NodeAgent {
    fn start(server: &Server, token: &str, node: &str) -> NodeAgent {
        let child = Command::new(env!("CARGO_BIN_EXE_atlas"))
            .args([
                "node-agent",
                "--listen",
                &format!("127.0.0.1:{}", free_port()),
            ])
            .args(["--server", &server.url, "--target", "local", "--node", node])
            .args(["--cores", "2", "--interval", "500ms", "--push-every", "1s"])
            .env("ATLAS_TOKEN", token)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        NodeAgent(child)
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_nodes_page_draws_the_node_agents_samples_live() {
    let Some(browser) = Browser::start() else {
        assert!(
            !required(),
            "chromium and chromium-driver are required (ATLAS_REQUIRE_INTEGRATION=1)"
        );
        return;
    };
    let shots = std::env::var("ATLAS_SCREENSHOTS").ok();
    let p = Project::new("dashboard-nodes", "");
    let server = Server::start(&p.dir, &Db::new(Kind::Sqlite, &p.dir));
    let (ada, bob) = (server.add_user("ada"), server.add_user("bob"));
    let _agents = [
        NodeAgent::start(&server, &ada, "node-a"),
        NodeAgent::start(&server, &ada, "node-b"),
    ];
    log_in(&browser, &server, &ada);
    browser.wait_for("return location.pathname === '/'", 20);
    // Ten minutes: buckets of 5 s, so new columns come while the test watches.
    browser.goto(&format!("{}/nodes?minutes=10", server.url));
    browser.wait_for(
        "return document.querySelector('tr[data-node=\"node-a\"]') !== null && document.querySelector('tr[data-node=\"node-b\"]') !== null",
        30,
    );
    let cells = "return Number(document.getElementById('heatmap')?.dataset.cells || 0)";
    let first = browser.wait_for(cells, 30).as_i64().unwrap();
    browser.wait_for(&format!("{cells} > {first}"), 40);
    assert_eq!(browser.eval("return window.atlasPageLoads"), 1, "no reload");
    save(&shots, "dashboard-nodes.png", browser.screenshot());
    // Bob sees none of Ada's nodes; a sample that is not one is refused with its line.
    let (code, body) = get(&server, "/api/v1/nodes", Some(&bob));
    assert_eq!(code, 200);
    let theirs: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(theirs["nodes"], serde_json::json!([]), "{theirs}");
    assert_eq!(theirs["buckets"], serde_json::json!([]), "{theirs}");
    let (code, body) = post(
        &server,
        "/api/v1/nodes/samples",
        &bob,
        b"{\"node\":\"x\"}\n",
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("line 1"), "{body}");
}

/// `atlas operator --local` of a MooseFS service (scripts/moosefs-image) pushing its status
/// to the server; stopped, and the service removed with its data, when dropped.
struct Operator {
    child: std::process::Child,
    file: std::path::PathBuf,
}

impl Operator {
    fn start(server: &Server, token: &str, dir: &std::path::Path, name: &str) -> Operator {
        let file = dir.join("storage.yaml");
        let yaml = format!("apiVersion: atlas.dev/v1alpha1\nkind: StorageService\nmetadata:\n  name: {name}\nspec:\n  chunkServers: 3\n  goal: 2\n  storagePerChunkServer: 1Gi\n  version: 3.0.117\n  image: localhost/atlas-moosefs:3.0.117\n");
        std::fs::write(&file, yaml).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_atlas"))
            .args(["operator", "--local"])
            .arg(&file)
            .args(["--interval", "1", "--server", &server.url])
            .env("ATLAS_TOKEN", token)
            .env("ATLAS_OPERATOR_STATE_DIR", dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Operator { child, file }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new(env!("CARGO_BIN_EXE_atlas"))
            .args(["operator", "--local"])
            .arg(&self.file)
            .arg("--down")
            .env("ATLAS_OPERATOR_STATE_DIR", self.file.parent().unwrap())
            .output();
    }
}

fn moosefs_images() -> bool {
    let here = Command::new("podman")
        .args(["image", "exists", "localhost/atlas-moosefs:3.0.117"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        here || !required(),
        "the MooseFS image is required (ATLAS_REQUIRE_INTEGRATION=1): run scripts/moosefs-image"
    );
    here
}

#[test]
fn the_services_page_shows_a_storage_service_heal_as_its_operator_pushes_it() {
    let Some(browser) = Browser::start() else {
        assert!(
            !required(),
            "chromium and chromium-driver are required (ATLAS_REQUIRE_INTEGRATION=1)"
        );
        return;
    };
    if !moosefs_images() {
        return;
    }
    let shots = std::env::var("ATLAS_SCREENSHOTS").ok();
    let p = Project::new("dashboard-services", "");
    let server = Server::start(&p.dir, &Db::new(Kind::Sqlite, &p.dir));
    let (ada, bob) = (server.add_user("ada"), server.add_user("bob"));
    let name = format!("t-page-{}", std::process::id());
    let _operator = Operator::start(&server, &ada, &p.dir, &name);
    log_in(&browser, &server, &ada);
    browser.wait_for("return location.pathname === '/'", 20);
    browser.goto(&format!("{}/services", server.url));
    let card = format!("document.querySelector('section[data-service=\"{name}\"]')");
    browser.wait_for(
        &format!("const c = {card}; return c !== null && c.querySelector('.ready').textContent === '3' && c.querySelector('.status').textContent === 'Healthy'"),
        180,
    );
    // A chunk server killed: the operator restarts it, and the page shows it without a reload.
    let killed = format!("atlas-mfs-{name}-chunkserver-1");
    let out = Command::new("podman")
        .args(["kill", &killed])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    browser.wait_for(
        &format!("return {card}.querySelector('tr[data-instance=\"chunkserver-1\"] .restarts').textContent === '1'"),
        120,
    );
    browser.wait_for(
        &format!("const c = {card}; return c.querySelector('.ready').textContent === '3' && c.querySelector('.events li') !== null"),
        120,
    );
    assert_eq!(browser.eval("return window.atlasPageLoads"), 1, "no reload");
    save(&shots, "dashboard-services.png", browser.screenshot());
    // Bob sees none of Ada's services; a status that is not one is refused with its line.
    let (code, body) = get(&server, "/api/v1/services", Some(&bob));
    assert_eq!(code, 200);
    assert!(!body.contains(&name), "{body}");
    let (code, body) = post(
        &server,
        "/api/v1/services/status",
        &bob,
        b"{\"name\":\"x\"}\n",
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("line 1"), "{body}");
}

#[test]
fn pages_without_a_session_go_to_the_login_page() {
    let Some(browser) = Browser::start() else {
        assert!(
            !required(),
            "chromium and chromium-driver are required (ATLAS_REQUIRE_INTEGRATION=1)"
        );
        return;
    };
    let p = Project::new("dashboard-login", "");
    let server = Server::start(&p.dir, &Db::new(Kind::Sqlite, &p.dir));
    browser.goto(&format!("{}/runs/r-anything", server.url));
    browser.wait_for("return location.pathname === '/login' && document.querySelector('input[name=token]') !== null", 20);
    log_in(&browser, &server, "atl_not_a_token");
    browser.wait_for(
        "return document.body.innerText.includes('not known here')",
        20,
    );
    // A new user with a good token sees no runs, and is told why and whose they would be.
    let token = server.add_user("newbie");
    log_in(&browser, &server, &token);
    let told = browser.wait_for(
        "return document.querySelector('#no-runs')?.innerText || null",
        20,
    );
    let told = told.as_str().unwrap();
    assert!(told.contains("signed in as newbie, in no tenant"), "{told}");
    assert!(told.contains("ATLAS_USER=newbie atlas run"), "{told}");
}

/// Single sign-on in the browser, through the real provider's own login page (scripts/oidc-up:
/// alice in group team-a, bob in team-b): each lands on the runs page showing their tenant's
/// run and not the other's, and logs out. The round trip (login page → provider → runs drawn)
/// is printed for BENCHMARKS.md.
#[test]
fn single_sign_on_through_the_providers_page_shows_each_user_their_tenants_run_only_until_logout_or_expiry(
) {
    let Some(browser) = Browser::start() else {
        assert!(
            !required(),
            "chromium and chromium-driver are required (ATLAS_REQUIRE_INTEGRATION=1)"
        );
        return;
    };
    let Some(issuer) = std::env::var("ATLAS_TEST_OIDC")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        assert!(
            !required(),
            "an OpenID Connect provider is required: ATLAS_TEST_OIDC=$(scripts/oidc-up | tail -1)"
        );
        return;
    };
    let p = Project::new("dashboard-sso", "");
    let db = Db::new(Kind::Sqlite, &p.dir);
    for t in ["team-a", "team-b"] {
        let (code, _, stderr) = p.atlas_on(&db.location, &["tenant", "add", t]);
        assert_eq!(code, 0, "{stderr}");
        db.open()
            .create_run(&atlas_store::NewRun {
                spec: None,
                inputs: None,
                id: format!("r-{}0000001", &t[5..]),
                experiment_id: None,
                workflow: format!("{t}-flow"),
                target: "local".into(),
                repetition: 0,
                run_dir: p.dir.join(t).display().to_string(),
                labels: serde_json::json!({}),
                submitted_at: 1.0,
                owner: Some("someone".into()),
                tenant: Some(t.into()),
                cores: 1.0,
                gpus: 0.0,
            })
            .unwrap();
    }
    let secret = p.dir.join("secret");
    std::fs::write(&secret, "s3cret").unwrap();
    let server = Server::start_with(
        &p.dir,
        &db,
        free_port(),
        &[
            "--oidc-issuer",
            &issuer,
            "--oidc-client-secret-file",
            &secret.display().to_string(),
            "--oidc-group",
            "team-a=team-a:admin",
            "--oidc-group",
            "team-b=team-b:member",
        ],
    );
    let mut rounds = Vec::new();
    for (user, own, other) in [
        ("alice", "r-a0000001", "r-b0000001"),
        ("bob", "r-b0000001", "r-a0000001"),
    ] {
        let started = std::time::Instant::now();
        browser.goto(&format!("{}/login", server.url));
        browser.wait_for("return document.querySelector('a.sso') !== null", 20);
        browser.eval("document.querySelector('a.sso').click(); return true");
        browser.wait_for(
            &format!("return location.port === '{}' && document.querySelector('input[name=sub]') !== null", issuer.rsplit(':').next().unwrap()),
            20,
        );
        browser.eval(&format!(
            "const i = document.querySelector('input[name=sub]'); i.value = '{user}'; i.form.submit(); return true"
        ));
        browser.wait_for(
            &format!("return document.querySelector('tr[data-run=\"{own}\"]') !== null"),
            20,
        );
        rounds.push(started.elapsed().as_secs_f64());
        assert_eq!(
            browser.eval(&format!(
                "return document.querySelector('tr[data-run=\"{other}\"]') === null"
            )),
            true,
            "{user} sees only their tenant's run"
        );
        assert_eq!(
            browser.eval("return document.querySelector('.user').innerText"),
            user
        );
        if user == "alice" {
            // Alice administers team-a: on the tenants page she adds carol as a viewer; a name
            // with no account is refused there, with the server's reason.
            browser.goto(&format!("{}/tenants", server.url));
            browser.wait_for("return document.querySelector('form.add') !== null", 20);
            browser.eval("const f = document.querySelector('form.add'); f.elements.user.value = 'carol'; f.requestSubmit(); return true");
            browser.wait_for("return document.querySelector('section .error')?.innerText.includes('no user') || null", 20);
            server.add_user("carol");
            browser.goto(&format!("{}/tenants", server.url));
            browser.wait_for("return document.querySelector('section[data-tenant=\"team-a\"] form.add') !== null", 20);
            browser.eval("const f = document.querySelector('form.add'); f.elements.user.value = 'carol'; f.elements.role.value = 'viewer'; f.requestSubmit(); return true");
            browser.wait_for("return document.querySelector('tr[data-user=\"carol\"] .role')?.value === 'viewer'", 20);
            let (_, list, _) = p.atlas_on(&db.location, &["tenant", "list", "--format", "json"]);
            assert!(list.contains("\"carol\""), "{list}");
        }
        if user == "bob" {
            // Bob's session expires (its time is up in the store): the next page is the login.
            db.execute("UPDATE sessions SET expires_at = 1 WHERE user_name = 'bob'");
            browser.goto(&format!("{}/tenants", server.url));
            browser.wait_for("return location.pathname === '/login'", 20);
            continue;
        }
        browser
            .eval("document.querySelector('form[action=\"/logout\"] button').click(); return true");
        browser.wait_for("return location.pathname === '/login'", 20);
    }
    rounds.sort_by(f64::total_cmp);
    eprintln!(
        "login round trip through the provider: median {:.2} s of {}",
        rounds[rounds.len() / 2],
        rounds.len()
    );
}
