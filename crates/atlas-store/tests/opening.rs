//! Opening a store: `atlas_store::open` picks the store by its location; a PostgreSQL URL that
//! does not parse, a server that is not there, a wrong password or database give errors that
//! name host, port and database and never the password; a database of a newer schema is
//! refused by both stores, naming both versions.

mod common;

use atlas_store::postgres::scratch::ScratchDatabase;
use atlas_store::{PgStore, SqliteStore, Store, StoreError};

/// The password in the URL at `url` replaced by `password`.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, host) = rest.split_once('@').unwrap();
    let user = auth.split(':').next().unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

#[test]
fn the_location_picks_the_store() {
    let f = common::sqlite("pick");
    assert!(!f.store.location().starts_with("postgres"));
    let err = atlas_store::open("postgresql://atlas:Pw1@127.0.0.1:1/x")
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Connect { .. }), "{err}");
}

#[test]
fn an_unreachable_server_is_named_without_the_password() {
    let secret = "Sekr1t-Passw0rd";
    let err = PgStore::open(&format!("postgres://atlas:{secret}@127.0.0.1:1/nodb"))
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(
        text.contains("host 127.0.0.1, port 1, database nodb"),
        "{text}"
    );
    assert!(!text.contains(secret), "{text}");
    assert!(!format!("{err:?}").contains(secret), "{err:?}");
}

#[test]
fn a_url_that_does_not_parse_is_refused_without_repeating_it() {
    let secret = "Sekr1t-Passw0rd";
    for url in [
        format!("postgres://atlas:{secret}@127.0.0.1:notaport/atlas"),
        format!("postgres://atlas:{secret}@127.0.0.1/atlas?sslmode=nonsense"),
    ] {
        let err = PgStore::open(&url).err().unwrap();
        let text = format!("{err} {err:?}");
        assert!(matches!(err, StoreError::BadLocation(_)), "{text}");
        assert!(!text.contains(secret), "{text}");
    }
}

#[test]
fn a_wrong_password_or_database_is_named_without_the_password() {
    let Some(server) = common::postgres_server() else {
        return;
    };
    let secret = "Wr0ng-Passw0rd-xyz";
    let err = PgStore::open(&with_password(&server, secret))
        .err()
        .unwrap();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, StoreError::Connect { .. }), "{text}");
    assert!(
        text.contains("host 127.0.0.1") && text.contains("database atlas"),
        "{text}"
    );
    assert!(!text.contains(secret), "{text}");
    let password = server
        .split_once("://")
        .unwrap()
        .1
        .split('@')
        .next()
        .unwrap();
    let password = password.split_once(':').map(|(_, p)| p).unwrap_or("");
    let missing = format!(
        "{}/atlas_no_such_database",
        server.rsplit_once('/').unwrap().0
    );
    let err = PgStore::open(&missing).err().unwrap();
    let text = format!("{err} {err:?}");
    assert!(text.contains("database atlas_no_such_database"), "{text}");
    assert!(password.is_empty() || !text.contains(password), "{text}");
}

#[test]
fn a_newer_postgres_schema_is_refused_naming_both_versions() {
    let Some(server) = common::postgres_server() else {
        return;
    };
    let database = ScratchDatabase::create(&server, "too_new").unwrap();
    let store = PgStore::open(database.url()).unwrap();
    assert!(store.location().ends_with(database.name()));
    drop(store);
    let mut client = postgres::Client::connect(database.url(), postgres::NoTls).unwrap();
    client
        .batch_execute("UPDATE atlas_schema SET version = 99")
        .unwrap();
    let err = PgStore::open(database.url()).err().unwrap().to_string();
    let known = atlas_store::postgres::MIGRATIONS.len();
    assert!(
        err.contains("schema version 99") && err.contains(&format!("({known})")),
        "{err}"
    );
}

#[test]
fn a_postgres_database_of_something_else_is_refused() {
    let Some(server) = common::postgres_server() else {
        return;
    };
    let database = ScratchDatabase::create(&server, "other").unwrap();
    let mut client = postgres::Client::connect(database.url(), postgres::NoTls).unwrap();
    client
        .batch_execute("CREATE TABLE invoices (id int)")
        .unwrap();
    let err = PgStore::open(database.url()).err().unwrap().to_string();
    assert!(err.contains("is not an Atlas database"), "{err}");
}

#[test]
fn two_stores_opening_a_new_postgres_database_at_once_both_succeed() {
    let Some(server) = common::postgres_server() else {
        return;
    };
    let database = ScratchDatabase::create(&server, "race").unwrap();
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let url = database.url().to_string();
            std::thread::spawn(move || PgStore::open(&url).map(|_| ()).map_err(|e| e.to_string()))
        })
        .collect();
    for opener in openers {
        assert_eq!(opener.join().unwrap(), Ok(()));
    }
}

#[test]
fn a_newer_sqlite_schema_is_refused_naming_both_versions() {
    let f = common::sqlite("too-new");
    drop(f.store);
    let conn = rusqlite::Connection::open(&f.location).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = SqliteStore::open(std::path::Path::new(&f.location))
        .err()
        .unwrap()
        .to_string();
    let known = atlas_store::postgres::MIGRATIONS.len();
    assert!(
        err.contains("schema version 99") && err.contains(&format!("({known})")),
        "{err}"
    );
}
