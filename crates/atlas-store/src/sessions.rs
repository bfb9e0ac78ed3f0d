//! Browser sessions of `atlas serve`: a session is the SHA-256 of an opaque random id (the
//! cookie's value; the store never holds the id itself), its user and when it expires. Kept
//! in the store, so that two servers over one database share them and a restart keeps them.

use rusqlite::{params, OptionalExtension};

use crate::{SqliteStore, StoreError};

impl SqliteStore {
    /// Starts a session for `user` until `expires_at` (Unix seconds); sessions that have
    /// expired by `now` are deleted on the way.
    pub fn create_session(
        &mut self,
        id_hash: &str,
        user: &str,
        now: f64,
        expires_at: f64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
        tx.execute(
            "INSERT INTO sessions (id_hash, user_name, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![id_hash, user, now, expires_at],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The user of the session whose id has this hash, if it has not expired at `now` and the
    /// user still exists.
    pub fn session_user(&self, id_hash: &str, now: f64) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT s.user_name FROM sessions s JOIN users u ON u.name = s.user_name
                 WHERE s.id_hash = ?1 AND s.expires_at > ?2",
                params![id_hash, now],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Ends a session (logging out); one that does not exist is no error.
    pub fn delete_session(&mut self, id_hash: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_finds_its_user_until_it_expires_or_is_deleted() {
        let dir = std::env::temp_dir().join(format!("atlas-sessions-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut store = SqliteStore::open(&dir.join("atlas.db")).unwrap();
        store.add_user("ada", "token-hash", 0.0).unwrap();
        store.create_session("s1", "ada", 10.0, 20.0).unwrap();
        store.create_session("s2", "ada", 10.0, 20.0).unwrap();
        store
            .create_session("s-nobody", "nobody", 10.0, 20.0)
            .unwrap();
        assert_eq!(
            store.session_user("s1", 19.0).unwrap().as_deref(),
            Some("ada")
        );
        assert_eq!(store.session_user("s1", 20.0).unwrap(), None, "expired");
        assert_eq!(
            store.session_user("s-nobody", 11.0).unwrap(),
            None,
            "no such user"
        );
        assert_eq!(store.session_user("token-hash", 11.0).unwrap(), None);
        store.delete_session("s2").unwrap();
        assert_eq!(store.session_user("s2", 11.0).unwrap(), None, "logged out");
        store.create_session("s3", "ada", 30.0, 40.0).unwrap();
        let left: i64 = store
            .conn
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1, "expired sessions were deleted when s3 began");
    }
}
