//! Users and their API tokens (only a token's SHA-256 is kept), and runs' owners.

use rusqlite::{params, OptionalExtension};

use crate::{SqliteStore, StoreError};

/// A user as listed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRow {
    pub name: String,
    pub created_at: f64,
}

impl SqliteStore {
    /// Adds a user with the hash of their token; a name that exists is an error.
    pub fn add_user(&mut self, name: &str, token_hash: &str, now: f64) -> Result<(), StoreError> {
        let added = self.conn.execute(
            "INSERT INTO users (name, token_hash, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
            params![name, token_hash, now],
        )?;
        if added == 0 {
            return Err(StoreError::UserExists(name.into()));
        }
        Ok(())
    }

    /// The user whose token has this hash.
    pub fn user_for_token(&self, token_hash: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT name FROM users WHERE token_hash = ?1",
                [token_hash],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, created_at FROM users ORDER BY name")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(UserRow {
                    name: r.get(0)?,
                    created_at: r.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Who a run belongs to: `None` when there is no such run, `Some(None)` when it has no owner.
    pub fn run_owner(&self, run: &str) -> Result<Option<Option<String>>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT owner FROM runs WHERE id = ?1", [run], |r| r.get(0))
            .optional()?)
    }

    /// Gives an ownerless run (an array task the agent reported first) to `owner`.
    pub fn claim_run(&mut self, run: &str, owner: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE runs SET owner = ?2 WHERE id = ?1 AND owner IS NULL",
            params![run, owner],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("atlas-users-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("atlas.db")
    }

    #[test]
    fn a_token_hash_finds_its_user_and_names_are_unique() {
        let mut store = SqliteStore::open(&temp("add")).unwrap();
        store.add_user("ada", "h1", 1.0).unwrap();
        store.add_user("bob", "h2", 2.0).unwrap();
        assert_eq!(store.user_for_token("h2").unwrap().as_deref(), Some("bob"));
        assert_eq!(store.user_for_token("nope").unwrap(), None);
        assert!(matches!(
            store.add_user("ada", "h3", 3.0),
            Err(StoreError::UserExists(_))
        ));
        let names: Vec<String> = store.users().unwrap().into_iter().map(|u| u.name).collect();
        assert_eq!(names, ["ada", "bob"]);
    }
}
