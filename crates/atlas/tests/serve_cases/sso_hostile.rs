//! ID tokens a real provider never signs, refused: a hostile provider
//! (`tests/fixtures/hostile_oidc.py`, run with the Python of `scripts/oidc-up`'s virtualenv)
//! answers each login with a token that is forged (another key), tampered with, expired, for
//! another audience or issuer, with another nonce, or unsigned (`alg: none`). Each is refused
//! with 401, no session and no user made; a good token from the same provider signs in, so the
//! refusals are the checks' and not the harness's. Also: one client cannot fill the logins
//! under way for everybody.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::support::http::{send, set_cookie};
use crate::support::project::Project;
use crate::support::server::{free_port, Db, Kind, Server};

/// The hostile provider on a free port, while the value lives.
struct Hostile {
    child: Child,
    issuer: String,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python that has joserfc: `scripts/oidc-up`'s virtualenv (the tests run with it up).
fn python() -> Option<String> {
    std::env::var("ATLAS_TEST_OIDC")
        .ok()
        .filter(|v| !v.is_empty())?;
    let state = std::env::var("ATLAS_OIDC_STATE").unwrap_or_else(|_| "/var/lib/atlas/oidc".into());
    let python = format!("{state}/venv/bin/python");
    if std::path::Path::new(&python).exists() {
        return Some(python);
    }
    assert!(
        !std::env::var("ATLAS_REQUIRE_INTEGRATION").is_ok_and(|v| v == "1"),
        "{python} is missing: scripts/oidc-up makes it"
    );
    eprintln!("skipped: no provider virtualenv ({python}; scripts/oidc-up makes it)");
    None
}

fn hostile() -> Option<Hostile> {
    let python = python()?;
    let port = free_port();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/hostile_oidc.py"
    );
    let mut child = Command::new(python)
        .args([script, &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the hostile provider did not start");
    Some(Hostile {
        child,
        issuer: format!("http://127.0.0.1:{port}"),
    })
}

/// A login through the hostile provider answered with a `mode` token: the callback's answer.
fn login(server: &Server, mode: &str) -> crate::support::http::Reply {
    let start = send("GET", &format!("{}/auth/login", server.url), &[], b"");
    assert_eq!(start.status, 303, "{}", start.body);
    let state = set_cookie(&start, "atlas_oidc_state").unwrap();
    let authorize = format!("{}&mode={mode}", start.header("location"));
    let back = send("GET", &authorize, &[], b"");
    assert_eq!(back.status, 302, "{}", back.body);
    let cookie = format!("atlas_oidc_state={state}");
    send("GET", back.header("location"), &[("Cookie", &cookie)], b"")
}

#[test]
fn forged_tampered_expired_misaddressed_and_unsigned_id_tokens_are_refused() {
    let Some(provider) = hostile() else { return };
    let p = Project::new("serve-sso-hostile", "");
    let db = Db::new(Kind::Sqlite, &p.dir);
    let server = crate::sso::sso_server(&p, &db, &provider.issuer);
    for (mode, why) in [
        ("forged", "bad signature"),
        ("tampered", "bad signature"),
        ("expired", "ID token expired"),
        ("audience", "Invalid audiences"),
        ("issuer", "Invalid issuer"),
        ("nonce", "nonce mismatch"),
        ("none", "No signature found"),
    ] {
        let reply = login(&server, mode);
        assert_eq!(reply.status, 401, "{mode}: {}", reply.body);
        assert!(
            reply.body.contains("the ID token was refused: ") && reply.body.contains(why),
            "{mode}: expected {why:?}: {}",
            reply.body
        );
        assert!(set_cookie(&reply, "atlas_session").is_none(), "{mode}");
        let users = db.count(&format!(
            "SELECT count(*) FROM users WHERE name = 'mallory-{mode}'"
        ));
        assert_eq!(users, 0, "{mode}: no user made");
    }
    let good = login(&server, "good");
    assert_eq!(good.status, 303, "{}", good.body);
    assert!(set_cookie(&good, "atlas_session").is_some());
    assert_eq!(
        db.count("SELECT count(*) FROM users WHERE name = 'mallory-good'"),
        1
    );
}

#[test]
fn one_client_cannot_fill_the_logins_under_way() {
    let Some(provider) = hostile() else { return };
    let p = Project::new("serve-sso-flood", "");
    let db = Db::new(Kind::Sqlite, &p.dir);
    let server = crate::sso::sso_server(&p, &db, &provider.issuer);
    let start = || send("GET", &format!("{}/auth/login", server.url), &[], b"");
    for i in 0..20 {
        assert_eq!(start().status, 303, "login {i}");
    }
    let refused = start();
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body.contains("from your address"),
        "{}",
        refused.body
    );
    assert!(set_cookie(&refused, "atlas_oidc_state").is_none());
}
