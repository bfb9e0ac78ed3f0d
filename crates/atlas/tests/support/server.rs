//! `atlas serve` started as its own process on a free loopback port for a test, with its own
//! database and users; stopped (SIGKILL) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub url: String,
    pub db: PathBuf,
    child: Option<Child>,
}

/// A free loopback port (bound, then let go).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts `atlas serve` on `port` over `db`, in `dir`, and waits until it answers.
    pub fn start_on(dir: &Path, db: &Path, port: u16) -> Server {
        Server::start_with(dir, db, port, &[])
    }

    /// Starts `atlas serve` with more arguments (`--secure-cookies`, …).
    pub fn start_with(dir: &Path, db: &Path, port: u16, args: &[&str]) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_atlas"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .args(args)
            .current_dir(dir)
            .env("ATLAS_DB", db)
            .env("XDG_CONFIG_HOME", dir.join("no-user-config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server {
            url: format!("http://127.0.0.1:{port}"),
            db: db.to_path_buf(),
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&format!("{}/api/v1/openapi.json", server.url))
            .call()
            .is_err()
        {
            assert!(Instant::now() < deadline, "atlas serve did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Starts on a free port.
    pub fn start(dir: &Path, db: &Path) -> Server {
        Server::start_on(dir, db, free_port())
    }

    /// `atlas user add NAME` on the server's database: the token.
    pub fn add_user(&self, name: &str) -> String {
        add_user(&self.db, name)
    }

    /// The server's process id.
    #[allow(dead_code)] // not every test binary looks at the process
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `atlas user add NAME` on database `db` (the server need not run): the token.
pub fn add_user(db: &Path, name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["user", "add", name])
        .env("ATLAS_DB", db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// GET `path` with `token` (None: without): (status, body).
pub fn get(server: &Server, path: &str, token: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(&format!("{}{path}", server.url));
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let mut response = request.call().unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// POST `body` to `path` with `token`: (status, body).
#[allow(dead_code)] // not every test binary posts
pub fn post(server: &Server, path: &str, token: &str, body: &[u8]) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(&format!("{}{path}", server.url))
        .header("Authorization", &format!("Bearer {token}"))
        .send(body)
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}
