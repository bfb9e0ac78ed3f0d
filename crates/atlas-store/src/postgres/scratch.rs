//! [`ScratchDatabase`]: a PostgreSQL database made for one test or benchmark on a server the
//! caller names (a URL whose role may `CREATE DATABASE`, as `scripts/postgres-up` makes), and
//! dropped when the value is dropped, so that runs never see each other's rows.

use std::sync::atomic::{AtomicU64, Ordering};

use postgres::{Client, NoTls};

use crate::StoreError;

/// A fresh, empty database; dropped (`WITH (FORCE)`, closing its connections) on drop.
pub struct ScratchDatabase {
    server: String,
    name: String,
    url: String,
}

/// `url` with its database (the path) replaced by `database`; the query string is kept.
fn with_database(url: &str, database: &str) -> Option<String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://")? + 3;
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out = format!("{out}?{query}");
    }
    Some(out)
}

impl ScratchDatabase {
    /// Makes database `atlas_<tag>_<pid>_<n>` on the server of `server_url`.
    pub fn create(server_url: &str, tag: &str) -> Result<ScratchDatabase, StoreError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let tag: String = tag
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(30)
            .collect();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "atlas_{tag}_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let url = with_database(server_url, &name).ok_or_else(|| {
            StoreError::BadLocation("not a PostgreSQL URL: expected postgres://…/DATABASE".into())
        })?;
        admin(server_url)?.batch_execute(&format!("CREATE DATABASE \"{name}\""))?;
        Ok(ScratchDatabase {
            server: server_url.to_string(),
            name,
            url,
        })
    }

    /// The URL of the new database (with the server URL's role and password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A connection to the server's own database, for CREATE and DROP DATABASE.
fn admin(server_url: &str) -> Result<Client, StoreError> {
    // Opening through PgStore's parser would migrate; only a plain connection is wanted.
    let config: postgres::Config = server_url
        .parse()
        .map_err(|_| StoreError::BadLocation("not a PostgreSQL URL".into()))?;
    Ok(config.connect(NoTls)?)
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = admin(&self.server) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_of_a_url_is_replaced_and_its_query_kept() {
        let swap = |url| super::with_database(url, "t1");
        assert_eq!(
            swap("postgres://a:b@h:1/atlas").as_deref(),
            Some("postgres://a:b@h:1/t1")
        );
        assert_eq!(swap("postgres://a@h").as_deref(), Some("postgres://a@h/t1"));
        assert_eq!(
            swap("postgresql://h/x?sslmode=disable").as_deref(),
            Some("postgresql://h/t1?sslmode=disable")
        );
        assert_eq!(swap("nope"), None);
    }
}
