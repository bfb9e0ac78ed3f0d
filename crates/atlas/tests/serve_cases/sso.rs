//! Single sign-on through a real OpenID Connect provider (`scripts/oidc-up`: oidc-provider-mock,
//! with alice in group team-a and bob in team-b), walked at the HTTP level as a browser walks
//! it: `/auth/login` → the provider's login form → `/auth/callback` → a session. Groups become
//! tenant roles and each user sees their tenant's runs only; a callback without its state, from
//! another browser, with a forged code or a second time is refused; a removed member's session
//! sees nothing of the tenant; a logged-out session is dead.

use atlas_store::NewRun;

use crate::support::http::{send, set_cookie};
use crate::support::project::Project;
use crate::support::server::{free_port, Db, Kind, Server};
use crate::tenants::admin;

/// The provider's issuer, when one is up (`ATLAS_TEST_OIDC`, set by the test command).
fn issuer() -> Option<String> {
    match std::env::var("ATLAS_TEST_OIDC") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                !std::env::var("ATLAS_REQUIRE_INTEGRATION").is_ok_and(|v| v == "1"),
                "an OpenID Connect provider is required (ATLAS_REQUIRE_INTEGRATION=1): ATLAS_TEST_OIDC=$(scripts/oidc-up | tail -1)"
            );
            eprintln!("skipped: no provider (ATLAS_TEST_OIDC; scripts/oidc-up starts one)");
            None
        }
    }
}

/// `atlas serve` with single sign-on through `issuer`: team-a's group makes members, team-b's
/// viewers.
pub(crate) fn sso_server(p: &Project, db: &Db, issuer: &str) -> Server {
    let secret = p.dir.join("oidc-secret");
    std::fs::write(&secret, "a-client-secret\n").unwrap();
    let secret = secret.display().to_string();
    Server::start_with(
        &p.dir,
        db,
        free_port(),
        &[
            "--oidc-issuer",
            issuer,
            "--oidc-client-secret-file",
            &secret,
            "--oidc-group",
            "team-a=team-a:member",
            "--oidc-group",
            "team-b=team-b:viewer",
        ],
    )
}

/// Tenants team-a and team-b, each with a run (`r-a…`, `r-b…`) of a user outside both.
pub(crate) fn two_tenants_with_a_run_each(p: &Project, db: &Db) {
    for t in ["team-a", "team-b"] {
        admin(p, db, &["tenant", "add", t]);
        let mut store = db.open();
        let run = format!("r-{}0000001", &t[5..]);
        store
            .create_run(&NewRun {
                spec: None,
                inputs: None,
                id: run.clone(),
                experiment_id: None,
                workflow: format!("{t}-flow"),
                target: "local".into(),
                repetition: 0,
                run_dir: std::env::temp_dir().join(&run).display().to_string(),
                labels: serde_json::json!({}),
                submitted_at: 1.0,
                owner: Some("someone".into()),
                tenant: Some(t.into()),
                cores: 1.0,
                gpus: 0.0,
            })
            .unwrap();
    }
}

/// The answer to GET `path` with the session cookie.
fn get(server: &Server, path: &str, session: &str) -> crate::support::http::Reply {
    let cookie = format!("atlas_session={session}");
    send(
        "GET",
        &format!("{}{path}", server.url),
        &[("Cookie", &cookie)],
        b"",
    )
}

/// A login started at the server, the provider's form posted with `form` (`sub=NAME`), and the
/// callback followed with the state cookie: its answer, the callback URL and the state.
fn through_provider(server: &Server, form: &[u8]) -> (crate::support::http::Reply, String, String) {
    let start = send(
        "GET",
        &format!("{}/auth/login?next=/runs/x", server.url),
        &[],
        b"",
    );
    assert_eq!(start.status, 303, "{}", start.body);
    let state = set_cookie(&start, "atlas_oidc_state").expect("the state cookie");
    let login = send(
        "POST",
        start.header("location"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form,
    );
    assert_eq!(login.status, 302, "{}", login.body);
    let callback = login.header("location").to_string();
    assert!(
        callback.starts_with(&format!("{}/auth/callback?", server.url)),
        "{callback}"
    );
    let cookie = format!("atlas_oidc_state={state}");
    (
        send("GET", &callback, &[("Cookie", &cookie)], b""),
        callback,
        state,
    )
}

/// A login as `user` through the provider's form: the session, the callback URL and the state.
fn sign_in(server: &Server, user: &str) -> (String, String, String) {
    let (back, callback, state) = through_provider(server, format!("sub={user}").as_bytes());
    assert_eq!(back.status, 303, "{}", back.body);
    assert_eq!(
        back.header("location"),
        "/runs/x",
        "back where the login started"
    );
    let session = set_cookie(&back, "atlas_session").expect("a session cookie");
    (session, callback, state)
}

fn ids(reply: &crate::support::http::Reply) -> Vec<String> {
    reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn groups_become_tenant_roles_and_each_user_sees_their_tenants_runs_only() {
    let Some(issuer) = issuer() else { return };
    let p = Project::new("serve-sso", "");
    let db = Db::new(Kind::Sqlite, &p.dir);
    two_tenants_with_a_run_each(&p, &db);
    let server = sso_server(&p, &db, &issuer);
    let login = send("GET", &format!("{}/login", server.url), &[], b"");
    assert!(
        login.body.contains("href=\"/auth/login?next=/\""),
        "{}",
        login.body
    );

    let (alice, _, _) = sign_in(&server, "alice");
    let me = get(&server, "/api/v1/me", &alice).json();
    assert_eq!(me["user"], "alice");
    assert_eq!(
        me["tenants"],
        serde_json::json!([{"name": "team-a", "role": "member"}])
    );
    assert_eq!(ids(&get(&server, "/api/v1/runs", &alice)), ["r-a0000001"]);
    assert_eq!(get(&server, "/api/v1/runs/r-b0000001", &alice).status, 404);

    let (bob, _, _) = sign_in(&server, "bob");
    assert_eq!(
        get(&server, "/api/v1/me", &bob).json()["tenants"][0]["role"],
        "viewer"
    );
    assert_eq!(ids(&get(&server, "/api/v1/runs", &bob)), ["r-b0000001"]);
    assert_eq!(get(&server, "/api/v1/runs/r-a0000001", &bob).status, 404);

    // Taken out of the tenant, Alice's session sees none of it at once.
    admin(&p, &db, &["tenant", "member", "remove", "team-a", "alice"]);
    assert!(ids(&get(&server, "/api/v1/runs", &alice)).is_empty());
    // Logged out, the session is dead.
    let cookie = format!("atlas_session={bob}");
    let out = send(
        "POST",
        &format!("{}/logout", server.url),
        &[("Cookie", &cookie), ("Origin", &server.url)],
        b"",
    );
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(get(&server, "/api/v1/runs", &bob).status, 401);
}

#[test]
fn a_callback_without_its_state_from_another_browser_forged_or_replayed_is_refused() {
    let Some(issuer) = issuer() else { return };
    let p = Project::new("serve-sso-bad", "");
    let db = Db::new(Kind::Sqlite, &p.dir);
    let server = sso_server(&p, &db, &issuer);
    let callback = |query: &str, cookie: Option<&str>| {
        let cookie = cookie.map(|s| format!("atlas_oidc_state={s}"));
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
        send(
            "GET",
            &format!("{}/auth/callback?{query}", server.url),
            &headers,
            b"",
        )
    };
    let refused = |reply: crate::support::http::Reply, status: u16, why: &str| {
        assert_eq!(reply.status, status, "{}", reply.body);
        assert!(reply.body.contains(why), "expected {why:?}: {}", reply.body);
        assert!(set_cookie(&reply, "atlas_session").is_none(), "no session");
    };
    refused(callback("code=abc", None), 400, "no code or no state");
    refused(
        callback("code=abc&state=xyz", None),
        400,
        "not started in this browser",
    );
    refused(
        callback("error=access_denied&state=xyz", Some("xyz")),
        401,
        "access_denied",
    );
    // A state this server never made, even with a matching cookie.
    refused(
        callback("code=abc&state=xyz", Some("xyz")),
        400,
        "expired or was already used",
    );
    // A started login with a code the provider never issued.
    let start = send("GET", &format!("{}/auth/login", server.url), &[], b"");
    let state = set_cookie(&start, "atlas_oidc_state").unwrap();
    refused(
        callback(&format!("code=forged&state={state}"), Some(&state)),
        401,
        "did not accept the code",
    );
    // A real login's callback, replayed: its state was used.
    let (_, url, state) = sign_in(&server, "alice");
    let cookie = format!("atlas_oidc_state={state}");
    refused(
        send("GET", &url, &[("Cookie", &cookie)], b""),
        400,
        "already used",
    );
    // A provider user whose name is not an Atlas user name.
    refused(
        through_provider(&server, b"sub=Eve%2F..").0,
        401,
        "not an Atlas user name",
    );
    // A provider user named as an existing account (made with a token) does not take it over.
    crate::support::server::add_user(&db.location, "dave");
    refused(
        through_provider(&server, b"sub=dave").0,
        403,
        "belongs to another account",
    );
    // Alice again: the same account (found by her identity, not her name).
    let (session, _, _) = sign_in(&server, "alice");
    let cookie = format!("atlas_session={session}");
    let me = send(
        "GET",
        &format!("{}/api/v1/me", server.url),
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(me.json()["user"], "alice");
    // Without a provider, the single sign-on paths are not there.
    let plain = Server::start(&p.dir, &db);
    assert_eq!(
        send("GET", &format!("{}/auth/login", plain.url), &[], b"").status,
        404
    );
    assert!(!send("GET", &format!("{}/login", plain.url), &[], b"")
        .body
        .contains("/auth/login"));
}
