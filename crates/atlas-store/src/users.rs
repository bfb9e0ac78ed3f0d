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

    /// The id of `owner`'s run that is `prefix`, or else the only one of theirs that starts with
    /// it; other users' runs are not looked at, so a prefix says nothing about them.
    pub fn owned_run_id(&self, owner: &str, prefix: &str) -> Result<Option<String>, StoreError> {
        self.owned_id(
            "SELECT id FROM runs WHERE owner = ?1 AND substr(id, 1, length(?2)) = ?2
             ORDER BY id = ?2 DESC LIMIT 2",
            owner,
            prefix,
        )
    }

    /// The id of `owner`'s experiment (one with runs, all of them `owner`'s) that is `prefix`,
    /// or else the only one of theirs that starts with it.
    pub fn owned_experiment_id(
        &self,
        owner: &str,
        prefix: &str,
    ) -> Result<Option<String>, StoreError> {
        self.owned_id(
            "SELECT e.id FROM experiments e WHERE substr(e.id, 1, length(?2)) = ?2
               AND EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = e.id)
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = e.id
                               AND (r.owner IS NULL OR r.owner <> ?1))
             ORDER BY e.id = ?2 DESC LIMIT 2",
            owner,
            prefix,
        )
    }

    /// Runs `sql` (at most two ids, an exact match first): the exact match or the only one.
    fn owned_id(&self, sql: &str, owner: &str, prefix: &str) -> Result<Option<String>, StoreError> {
        if prefix.is_empty() {
            return Ok(None);
        }
        let mut stmt = self.conn.prepare(sql)?;
        let ids: Vec<String> = stmt
            .query_map(params![owner, prefix], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(match ids.as_slice() {
            [only] => Some(only.clone()),
            [exact, _] if exact == prefix => Some(exact.clone()),
            _ => None,
        })
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

    #[test]
    fn a_prefix_resolves_among_the_owners_runs_and_experiments_only() {
        use crate::{NewRun, Store};
        let mut store = SqliteStore::open(&temp("prefix")).unwrap();
        let labels = serde_json::json!({});
        for (run, experiment, owner) in [
            ("r-fa1", "e-fa1", "ada"),
            ("r-fa2", "e-fa2", "bob"),
            ("r-fa23", "e-fa2", "bob"),
        ] {
            let _ = store.create_experiment(experiment, "w", &labels, 1.0);
            store
                .create_run(&NewRun {
                    id: run.into(),
                    experiment_id: Some(experiment.into()),
                    workflow: "w".into(),
                    target: "local".into(),
                    repetition: 0,
                    run_dir: String::new(),
                    labels: labels.clone(),
                    submitted_at: 1.0,
                    owner: Some(owner.into()),
                })
                .unwrap();
        }
        let run = |owner: &str, prefix: &str| store.owned_run_id(owner, prefix).unwrap();
        assert_eq!(
            run("ada", "r-fa").as_deref(),
            Some("r-fa1"),
            "bob's are not looked at"
        );
        assert_eq!(run("bob", "r-fa"), None, "two of bob's match");
        assert_eq!(
            run("bob", "r-fa2").as_deref(),
            Some("r-fa2"),
            "an exact id wins"
        );
        assert_eq!(run("bob", "r-fa1"), None);
        assert_eq!(run("ada", ""), None);
        assert_eq!(run("ada", "r-f_1"), None, "no LIKE wildcards");
        let experiment =
            |owner: &str, prefix: &str| store.owned_experiment_id(owner, prefix).unwrap();
        assert_eq!(experiment("ada", "e-f").as_deref(), Some("e-fa1"));
        assert_eq!(experiment("bob", "e-f").as_deref(), Some("e-fa2"));
        assert_eq!(experiment("carol", "e-f"), None);
    }
}
