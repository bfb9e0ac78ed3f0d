//! Where the store and the run directories live: `--db`, else `ATLAS_DB`, else
//! `$XDG_DATA_HOME/atlas/atlas.db` (`~/.local/share/atlas/atlas.db`). A `postgres://` or
//! `postgresql://` URL is a PostgreSQL store. Run directories go next to a SQLite database, in
//! `runs/RUN_ID/`; with PostgreSQL they go next to the default SQLite location
//! (`$XDG_DATA_HOME/atlas/runs/RUN_ID/`), since a database server has no directory here.

use std::path::{Path, PathBuf};

use atlas_store::Store;
use serde::Serialize;

use super::format::ListFormat;

use crate::exit::Failure;

/// The store as `atlas` holds it: either kind, behind the trait.
pub type BoxedStore = Box<dyn Store + Send>;

/// The database path chosen by flag, environment or default, and whether it is the default.
fn choose(flag: Option<&Path>) -> (PathBuf, bool) {
    if let Some(p) = flag {
        return (p.to_path_buf(), false);
    }
    if let Some(p) = std::env::var_os("ATLAS_DB").filter(|p| !p.is_empty()) {
        return (PathBuf::from(p), false);
    }
    (default_location(), true)
}

/// The PostgreSQL URL chosen by flag or `ATLAS_DB`, if that is what was chosen.
pub fn postgres_url(flag: Option<&Path>) -> Option<String> {
    let (chosen, _) = choose(flag);
    let text = chosen.to_str()?;
    atlas_store::postgres::is_url(text).then(|| text.to_string())
}

/// Where to open the store again (`atlas serve` opens several connections): the URL (with its
/// password: never print it) or the database file. Call after [`open`].
pub fn location(flag: Option<&Path>) -> String {
    postgres_url(flag).unwrap_or_else(|| choose(flag).0.display().to_string())
}

/// Opens a PostgreSQL store. Its run directories and input cache go in the default data
/// directory (made private, 0700, as for the default SQLite store); the path returned is the
/// default SQLite location there, whose directory holds `runs/` and `inputs/` (the file is not
/// made).
fn open_postgres(url: &str) -> Result<(BoxedStore, PathBuf), Failure> {
    use std::os::unix::fs::DirBuilderExt;
    let store = atlas_store::PgStore::open(url).map_err(Failure::environment)?;
    let default = default_location();
    let dir = default.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Failure::environment(format!("cannot create {}: {e}", dir.display())))?;
    Ok((Box::new(store), default))
}

/// The default SQLite location, `$XDG_DATA_HOME/atlas/atlas.db`.
fn default_location() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("atlas").join("atlas.db")
}

/// Opens the store: the store, and the path whose directory holds the run directories and
/// the input cache (the database file; for PostgreSQL the default SQLite location, see the
/// module doc). Only the default location's directory is made (private, 0700); a path
/// given by flag or `ATLAS_DB` must be in a directory that exists, so a typo never becomes a
/// new empty store. A new database file is private to its user (0600; SQLite gives its WAL
/// and shared-memory files the same mode). A PostgreSQL server that cannot be reached is an
/// environment error (exit 3) naming host, port and database, never the password.
pub fn open(flag: Option<&Path>) -> Result<(BoxedStore, PathBuf), Failure> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(url) = postgres_url(flag) {
        return open_postgres(&url);
    }
    let (path, default) = choose(flag);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if default {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Failure::environment(format!("cannot create {}: {e}", dir.display())))?;
    } else if !dir.is_dir() {
        return Err(Failure::environment(format!(
            "the store {} is in a directory that does not exist; create {} first, or give another --db / ATLAS_DB",
            path.display(),
            dir.display()
        )));
    }
    // A FIFO or device would block SQLite or be written through: a store is a regular file.
    if let Ok(meta) = std::fs::metadata(&path) {
        if !meta.is_file() {
            return Err(Failure::environment(format!(
                "the store {} is not a regular file",
                path.display()
            )));
        }
    }
    // Made here, before SQLite makes it with the umask's mode; an existing file is untouched.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    let store = atlas_store::SqliteStore::open(&path).map_err(Failure::environment)?;
    Ok((Box::new(store), path))
}

/// The directory that holds the run directories (`runs/` next to the database).
pub fn runs_dir(db: &Path) -> PathBuf {
    db.parent().unwrap_or(Path::new(".")).join("runs")
}

/// `--format` and `--db`, shared by the commands that read the store (runs, experiments, show).
#[derive(clap::Args)]
pub struct StoreView {
    #[arg(long, value_enum, default_value = "table")]
    pub format: ListFormat,
    /// The database (default: $ATLAS_DB or $XDG_DATA_HOME/atlas/atlas.db).
    #[arg(long)]
    pub db: Option<PathBuf>,
}

impl StoreView {
    /// Opens the chosen database.
    pub fn open(&self) -> Result<BoxedStore, Failure> {
        open(self.db.as_deref()).map(|(store, _)| store)
    }

    /// `value` as pretty JSON, or as the table `table` makes of it.
    pub fn render<T: Serialize>(
        &self,
        value: &T,
        table: impl FnOnce(&T) -> String,
    ) -> Result<String, Failure> {
        match self.format {
            ListFormat::Json => {
                Ok(serde_json::to_string_pretty(value).map_err(Failure::environment)? + "\n")
            }
            ListFormat::Table => Ok(table(value)),
        }
    }
}
