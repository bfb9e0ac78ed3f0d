//! Browsers over real HTTP: the login takes a token only in its form and starts an opaque,
//! expiring, server-side session; logout ends it; a login goes only to a local path; a post
//! made with the session cookie must come from the server's own origin; every response
//! carries the security headers.

use crate::support::http::{send, set_cookie, Reply};
use crate::support::project::Project;
use crate::support::server::{free_port, Db, Kind, Server};

crate::on_both_stores!(
    a_login_goes_only_to_a_local_path,
    a_browser_session_is_an_opaque_expiring_cookie_and_logout_ends_it,
    the_session_cookie_is_secure_under_https,
    a_token_in_the_url_logs_nobody_in,
    a_cookie_authenticated_post_from_another_origin_is_refused,
    every_response_carries_the_security_headers,
);

/// `POST /login` with this token and `next`, from the server's own origin unless `extra`
/// names another.
fn login(server: &Server, token: &str, next: &str, extra: &[(&str, &str)]) -> Reply {
    let body = format!("token={token}&next={}", form_escape(next));
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if !extra.iter().any(|(name, _)| *name == "Origin") {
        headers.push(("Origin", server.url.as_str()));
    }
    headers.extend_from_slice(extra);
    send(
        "POST",
        &format!("{}/login", server.url),
        &headers,
        body.as_bytes(),
    )
}

fn form_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A session cookie of Ada's: (server, project, token, cookie header).
fn logged_in(kind: Kind, tag: &str, args: &[&str]) -> (Server, Project, String, String) {
    let p = Project::new(&format!("{tag}-{kind:?}"), "");
    let server = Server::start_with(&p.dir, &Db::new(kind, &p.dir), free_port(), args);
    let token = server.add_user("ada");
    let reply = login(&server, &token, "/", &[]);
    assert_eq!(reply.status, 303, "{}", reply.body);
    let session = set_cookie(&reply, "atlas_session").expect("a session cookie");
    (server, p, token, format!("atlas_session={session}"))
}

fn get_with(server: &Server, path: &str, headers: &[(&str, &str)]) -> Reply {
    send("GET", &format!("{}{path}", server.url), headers, b"")
}

fn a_login_goes_only_to_a_local_path(kind: Kind) {
    let p = Project::new(&format!("serve-redirect-{kind:?}"), "");
    let server = Server::start(&p.dir, &Db::new(kind, &p.dir));
    let token = server.add_user("ada");
    let cases = [
        ("/runs/r-1", "/runs/r-1"),
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("\n", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/caf\u{e9}", "/"),
    ];
    for (next, location) in cases {
        let reply = login(&server, &token, next, &[]);
        assert_eq!(reply.status, 303, "{next:?}: {}", reply.body);
        assert_eq!(reply.header("location"), location, "{next:?}");
        // The form carries `next` through; what it shows is already made safe.
        let page = get_with(&server, &format!("/login?next={}", form_escape(next)), &[]);
        assert_eq!(page.status, 200, "{next:?}: {}", page.body);
        assert!(
            page.body.contains(&format!(
                "name=\"next\" type=\"hidden\" value=\"{location}\""
            )),
            "{next:?}: {}",
            page.body
        );
    }
    // A page without a session goes to the login page, which comes back to it.
    let reply = get_with(&server, "/runs/r-1", &[]);
    assert_eq!(reply.header("location"), "/login?next=/runs/r-1");
}

fn a_browser_session_is_an_opaque_expiring_cookie_and_logout_ends_it(kind: Kind) {
    let (server, _p, token, cookie) = logged_in(kind, "serve-session", &[]);
    let reply = login(&server, &token, "/", &[]);
    let set = reply.header("set-cookie").to_string();
    for part in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    assert!(
        !set.contains(&token[4..]),
        "the token is not the cookie: {set}"
    );
    let session = cookie.trim_start_matches("atlas_session=");
    let runs = get_with(&server, "/api/v1/runs", &[("Cookie", &cookie)]);
    assert_eq!(runs.status, 200, "{}", runs.body);
    // The store keeps a hash of the id, and when it expires: 12 h after the login.
    let kept = &server.db.texts("SELECT id_hash FROM sessions")[0];
    assert_ne!(kept, session);
    let lifetime = server
        .db
        .count("SELECT CAST(expires_at - created_at AS BIGINT) FROM sessions LIMIT 1");
    assert_eq!(lifetime, 43200);
    // An expired session is refused.
    server.db.execute("UPDATE sessions SET expires_at = 1");
    assert_eq!(
        get_with(&server, "/api/v1/runs", &[("Cookie", &cookie)]).status,
        401
    );
    // Logout deletes the session: the cookie, replayed, no longer works.
    let again = login(&server, &token, "/", &[]);
    let cookie = format!(
        "atlas_session={}",
        set_cookie(&again, "atlas_session").unwrap()
    );
    assert_eq!(get_with(&server, "/", &[("Cookie", &cookie)]).status, 200);
    let origin = server.url.clone();
    let out = send(
        "POST",
        &format!("{}/logout", server.url),
        &[("Cookie", &cookie), ("Origin", &origin)],
        b"",
    );
    assert_eq!(out.status, 303, "{}", out.body);
    assert!(out.header("set-cookie").contains("Max-Age=0"));
    assert_eq!(
        get_with(&server, "/api/v1/runs", &[("Cookie", &cookie)]).status,
        401
    );
}

fn the_session_cookie_is_secure_under_https(kind: Kind) {
    let p = Project::new(&format!("serve-secure-{kind:?}"), "");
    let flag = ["--secure-cookies"];
    let server = Server::start_with(&p.dir, &Db::new(kind, &p.dir), free_port(), &flag);
    let token = server.add_user("ada");
    // The browser is on https://: its plain-http origin is not the server's.
    assert_eq!(login(&server, &token, "/", &[]).status, 403);
    let https = server.url.replace("http://", "https://");
    let reply = login(&server, &token, "/", &[("Origin", &https)]);
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert!(reply.header("set-cookie").contains("; Secure"));
    let p = Project::new(&format!("serve-proxied-{kind:?}"), "");
    let server = Server::start(&p.dir, &Db::new(kind, &p.dir));
    let token = server.add_user("ada");
    let https = server.url.replace("http://", "https://");
    let proxied = [("X-Forwarded-Proto", "https"), ("Origin", https.as_str())];
    let reply = login(&server, &token, "/", &proxied);
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert!(reply.header("set-cookie").contains("; Secure"));
}

fn a_token_in_the_url_logs_nobody_in(kind: Kind) {
    let p = Project::new(&format!("serve-token-url-{kind:?}"), "");
    let server = Server::start(&p.dir, &Db::new(kind, &p.dir));
    let token = server.add_user("ada");
    let reply = get_with(&server, &format!("/login?token={token}&next=/"), &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(set_cookie(&reply, "atlas_session"), None);
    assert!(reply.body.contains("<form"), "the form: {}", reply.body);
}

fn a_cookie_authenticated_post_from_another_origin_is_refused(kind: Kind) {
    let (server, _p, token, cookie) = logged_in(kind, "serve-csrf", &[]);
    let records = format!("{}/api/v1/records", server.url);
    let post = |headers: &[(&str, &str)]| send("POST", &records, headers, b"\n");
    for refused in [
        vec![
            ("Cookie", cookie.as_str()),
            ("Origin", "http://evil.example"),
        ],
        vec![("Cookie", cookie.as_str()), ("Origin", "null")],
        vec![("Cookie", cookie.as_str())],
        vec![
            ("Cookie", cookie.as_str()),
            ("Referer", "http://evil.example/x"),
        ],
    ] {
        let reply = post(&refused);
        assert_eq!(reply.status, 403, "{refused:?}: {}", reply.body);
        assert!(reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("own pages"));
    }
    let referer = format!("{}/runs/r-1", server.url);
    for allowed in [
        vec![("Cookie", cookie.as_str()), ("Origin", server.url.as_str())],
        vec![("Cookie", cookie.as_str()), ("Referer", referer.as_str())],
    ] {
        assert_eq!(post(&allowed).status, 200, "{allowed:?}");
    }
    // A bearer token is no browser's: no Origin needed.
    let bearer = format!("Bearer {token}");
    assert_eq!(post(&[("Authorization", bearer.as_str())]).status, 200);
    // Logging out, or in, from another site is refused too; the session lives on.
    let evil = [
        ("Cookie", cookie.as_str()),
        ("Origin", "http://evil.example"),
    ];
    assert_eq!(
        send("POST", &format!("{}/logout", server.url), &evil, b"").status,
        403
    );
    assert_eq!(
        login(&server, &token, "/", &[("Origin", "http://evil.example")]).status,
        403
    );
    assert_eq!(
        get_with(&server, "/api/v1/runs", &[("Cookie", &cookie)]).status,
        200
    );
}

fn every_response_carries_the_security_headers(kind: Kind) {
    let (server, _p, token, cookie) = logged_in(kind, "serve-headers", &[]);
    let bearer = format!("Bearer {token}");
    let cases = [
        ("/", cookie.as_str(), 200),
        ("/login", "", 200),
        ("/assets/app.js", "", 200),
        ("/api/v1/runs", bearer.as_str(), 200),
        ("/api/v1/runs/r-none", bearer.as_str(), 404),
        ("/api/v1/nowhere", "", 404),
        ("/api/v1/openapi.json", "", 200),
    ];
    for (path, credential, status) in cases {
        let headers: Vec<(&str, &str)> = match credential {
            "" => vec![],
            c if c.starts_with("Bearer") => vec![("Authorization", c)],
            c => vec![("Cookie", c)],
        };
        let reply = get_with(&server, path, &headers);
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        let csp = reply.header("content-security-policy");
        for part in [
            "default-src 'self'",
            "frame-ancestors 'none'",
            "script-src 'self'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(reply.header("x-frame-options"), "DENY", "{path}");
        assert_eq!(reply.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(reply.header("referrer-policy"), "same-origin", "{path}");
    }
}
