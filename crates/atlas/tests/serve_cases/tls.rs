//! `atlas serve --tls-cert --tls-key`: HTTPS in the server itself, with a certificate made by
//! openssl for 127.0.0.1 and checked by curl against it (no `-k`); plain HTTP to the port gets
//! no answer; a login's session cookie is `Secure`; a key that does not match is refused at
//! start with exit 2.

use std::process::{Command, Stdio};

use crate::support::project::Project;
use crate::support::server::{add_user, free_port, Db, Kind};

/// A self-signed certificate for 127.0.0.1 and its key: (cert, key).
fn certificate(dir: &std::path::Path, name: &str) -> (String, String) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert.display().to_string(), key.display().to_string())
}

/// `curl` trusting `cert`: (exit code, headers and body).
fn curl(cert: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10", "--cacert", cert])
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_server_speaks_https_with_its_certificate_and_its_cookies_are_secure() {
    let p = Project::new("serve-tls", "");
    let db = Db::new(Kind::Sqlite, &p.dir);
    let token = add_user(&db.location, "ada");
    let (cert, key) = certificate(&p.dir, "server");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ])
        .env("ATLAS_DB", &db.location)
        .env("XDG_CONFIG_HOME", p.dir.join("no-user-config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (code, text) = loop {
        let (code, text) = curl(&cert, &[&format!("{url}/api/v1/openapi.json")]);
        if code == 0 || std::time::Instant::now() > deadline {
            break (code, text);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("\"openapi\""), "{text}");
    // Plain HTTP to the TLS port: no HTTP answer.
    let (code, text) = curl(
        &cert,
        &[&format!("http://127.0.0.1:{port}/api/v1/openapi.json")],
    );
    assert_ne!(code, 0, "{text}");
    // A login over HTTPS gets a Secure session cookie.
    let (code, text) = curl(
        &cert,
        &[
            "-H",
            &format!("Origin: {url}"),
            "--data-urlencode",
            &format!("token={token}"),
            &format!("{url}/login"),
        ],
    );
    assert_eq!(code, 0, "{text}");
    let cookie = text
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: atlas_session=")
        })
        .unwrap_or_else(|| panic!("no session cookie: {text}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    let _ = child.kill();
    let _ = child.wait();
    // A key that is not the certificate's: refused at start, exit 2, naming the files.
    let (_, other) = certificate(&p.dir, "other");
    let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{}", free_port()),
            "--tls-cert",
            &cert,
            "--tls-key",
            &other,
        ])
        .env("ATLAS_DB", &db.location)
        .env("XDG_CONFIG_HOME", p.dir.join("no-user-config"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("do not make a pair"), "{stderr}");
}
