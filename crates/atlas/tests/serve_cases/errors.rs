//! Errors over real HTTP: every error, including those axum makes itself (a query string it
//! cannot parse, 405, 413, an unknown route), is the API's `{"error": …}`; the bearer scheme is
//! accepted in any case.

use crate::support::http::{oversized_post, send};
use crate::support::project::Project;
use crate::support::server::{Db, Kind, Server};

crate::on_both_stores!(
    every_error_is_json_in_the_apis_shape,
    the_bearer_scheme_is_accepted_in_any_case,
);

fn every_error_is_json_in_the_apis_shape(kind: Kind) {
    let p = Project::new(&format!("serve-errors-{kind:?}"), "");
    let server = Server::start(&p.dir, &Db::new(kind, &p.dir));
    let auth = format!("Bearer {}", server.add_user("ada"));
    let cases = [
        ("GET", "/api/v1/runs?limit=many", 400),
        ("GET", "/api/v1/runs/r-x/samples?width=-1", 400),
        ("GET", "/api/v1/no/such/route", 404),
        ("GET", "/api/v1/runs/r-none", 404),
        ("DELETE", "/api/v1/runs", 405),
        ("GET", "/api/v1/records", 405),
        ("GET", "/assets/nope.js", 404),
        ("GET", "/api/v1/runs", 401),
    ];
    for (method, path, status) in cases {
        let headers: &[(&str, &str)] = if status == 401 {
            &[]
        } else {
            &[("Authorization", &auth)]
        };
        let reply = send(method, &format!("{}{path}", server.url), headers, b"");
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        assert!(
            reply.header("content-type").starts_with("application/json"),
            "{method} {path}: {}",
            reply.header("content-type")
        );
        let message = reply.json()["error"].as_str().unwrap_or("").to_string();
        assert!(!message.is_empty(), "{method} {path}: {}", reply.body);
    }
    // Too large: announced by Content-Length and sent only after `100 Continue`, the way a
    // careful client does, so the answer never races the body (a server may close the
    // connection while a 5 MiB body is still being written).
    let (status, body) = oversized_post(&server.url, &auth, 5 << 20);
    assert_eq!(status, 413, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("too large"),
        "{body}"
    );
}

fn the_bearer_scheme_is_accepted_in_any_case(kind: Kind) {
    let p = Project::new(&format!("serve-bearer-{kind:?}"), "");
    let server = Server::start(&p.dir, &Db::new(kind, &p.dir));
    let token = server.add_user("ada");
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let reply = send(
            "GET",
            &format!("{}/api/v1/runs", server.url),
            &[("Authorization", &format!("{scheme} {token}"))],
            b"",
        );
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.body);
    }
}
