//! `atlas serve` started as its own process on a free loopback port for a test, with its own
//! database and users; stopped (SIGKILL) when dropped. The database is either store ([`Db`]):
//! a SQLite file in the test's project, or a PostgreSQL database of its own on the server
//! named by `ATLAS_TEST_POSTGRES` (`scripts/postgres-up`), dropped after the test.
//! [`on_both_stores!`] runs a case once on each.

#![allow(dead_code)] // each test binary uses part of this

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atlas_store::postgres::scratch::ScratchDatabase;

/// Which store a test's database is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // some test binaries use SQLite only
pub enum Kind {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server for tests: `None` to skip when `ATLAS_TEST_POSTGRES` is not set,
/// unless `ATLAS_REQUIRE_INTEGRATION` is set (then the test fails).
pub fn postgres_server() -> Option<String> {
    match std::env::var("ATLAS_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("ATLAS_REQUIRE_INTEGRATION").is_some() => panic!(
            "ATLAS_TEST_POSTGRES is not set and ATLAS_REQUIRE_INTEGRATION is: start PostgreSQL with scripts/postgres-up and export its URL"
        ),
        _ => {
            eprintln!("skipped: ATLAS_TEST_POSTGRES is not set (scripts/postgres-up prints the URL)");
            None
        }
    }
}

/// A test's database, of either kind: `location` is what `ATLAS_DB` gets. A PostgreSQL one
/// is dropped when the last clone is (a [`Server`] keeps one).
#[derive(Clone)]
pub struct Db {
    pub location: String,
    pub kind: Kind,
    _scratch: Option<std::sync::Arc<ScratchDatabase>>,
}

impl Db {
    /// A new database for the project in `dir`: `dir/db/atlas.db`, or a PostgreSQL database
    /// of its own (the server must be there: see [`postgres_server`]).
    pub fn new(kind: Kind, dir: &Path) -> Db {
        match kind {
            Kind::Sqlite => Db {
                location: dir.join("db/atlas.db").display().to_string(),
                kind,
                _scratch: None,
            },
            Kind::Postgres => {
                let server = postgres_server().expect("the macro skips without a server");
                let tag = dir.file_name().unwrap().to_string_lossy().into_owned();
                let scratch = ScratchDatabase::create(&server, &tag).unwrap();
                Db {
                    location: scratch.url().to_string(),
                    kind,
                    _scratch: Some(std::sync::Arc::new(scratch)),
                }
            }
        }
    }

    /// The store, opened as `atlas` opens it.
    #[allow(dead_code)]
    pub fn open(&self) -> Box<dyn atlas_store::Store + Send> {
        atlas_store::open(&self.location).unwrap()
    }

    /// The first column of each row of `sql`, as text (cast it in the query).
    #[allow(dead_code)] // not every test binary reads rows
    pub fn texts(&self, sql: &str) -> Vec<String> {
        match self.kind {
            Kind::Sqlite => {
                let conn = rusqlite::Connection::open(&self.location).unwrap();
                let mut stmt = conn.prepare(sql).unwrap();
                let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
                rows.map(Result::unwrap).collect()
            }
            Kind::Postgres => {
                let mut client =
                    postgres::Client::connect(&self.location, postgres::NoTls).unwrap();
                let rows = client.query(sql, &[]).unwrap();
                rows.iter().map(|r| r.get::<_, String>(0)).collect()
            }
        }
    }

    /// `count(*)`-like `sql`'s one number.
    #[allow(dead_code)]
    pub fn count(&self, sql: &str) -> i64 {
        let sql = format!("SELECT CAST(({sql}) AS TEXT)");
        self.texts(&sql)[0].parse().unwrap()
    }

    /// Runs a statement.
    #[allow(dead_code)]
    pub fn execute(&self, sql: &str) {
        match self.kind {
            Kind::Sqlite => {
                rusqlite::Connection::open(&self.location)
                    .unwrap()
                    .execute(sql, [])
                    .unwrap();
            }
            Kind::Postgres => {
                let mut client =
                    postgres::Client::connect(&self.location, postgres::NoTls).unwrap();
                client.batch_execute(sql).unwrap();
            }
        }
    }

    /// Records of `run` in the store (events, samples and metrics), straight from its tables.
    #[allow(dead_code)]
    pub fn records(&self, run: &str) -> i64 {
        ["events", "samples", "metrics"]
            .iter()
            .map(|table| {
                self.count(&format!(
                    "SELECT count(*) FROM {table} WHERE run_id = '{run}'"
                ))
            })
            .sum()
    }
}

/// Writes `#[test]`s that run each case (a `fn(Kind)`) once on SQLite (`on_sqlite::CASE`) and
/// once on PostgreSQL (`on_postgres::CASE`; skipped as [`postgres_server`] says).
#[macro_export]
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[test] fn $case() { super::$case($crate::support::server::Kind::Sqlite) })*
        }
        mod on_postgres {
            $(#[test] fn $case() {
                if $crate::support::server::postgres_server().is_some() {
                    super::$case($crate::support::server::Kind::Postgres)
                }
            })*
        }
    };
}

pub struct Server {
    pub url: String,
    /// The server's database.
    pub db: Db,
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
    pub fn start_on(dir: &Path, db: &Db, port: u16) -> Server {
        Server::start_with(dir, db, port, &[])
    }

    /// Starts `atlas serve` with more arguments (`--secure-cookies`, …).
    pub fn start_with(dir: &Path, db: &Db, port: u16, args: &[&str]) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_atlas"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .args(args)
            .current_dir(dir)
            .env("ATLAS_DB", &db.location)
            .env("XDG_CONFIG_HOME", dir.join("no-user-config"))
            .env("XDG_DATA_HOME", dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server {
            url: format!("http://127.0.0.1:{port}"),
            db: db.clone(),
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
    pub fn start(dir: &Path, db: &Db) -> Server {
        Server::start_on(dir, db, free_port())
    }

    /// `atlas user add NAME` on the server's database: the token.
    pub fn add_user(&self, name: &str) -> String {
        add_user(&self.db.location, name)
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

/// `atlas user add NAME` on database `db` (a file or URL; the server need not run): the token.
pub fn add_user(db: &str, name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["user", "add", name])
        .env("ATLAS_DB", db)
        .env(
            "XDG_DATA_HOME",
            std::env::temp_dir().join("atlas-test-data"),
        )
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
