//! Browser sessions of `atlas serve`: a session is the SHA-256 of an opaque random id (the
//! cookie's value; the store never holds the id itself), its user and when it expires. Kept
//! in the store, so that two servers over one database share them and a restart keeps them.

use rusqlite::{params, Connection, OptionalExtension};

use crate::StoreError;

/// Starts a session for `user` until `expires_at` (Unix seconds); sessions that have
/// expired by `now` are deleted on the way.
pub(crate) fn create_session(
    conn: &mut Connection,
    id_hash: &str,
    user: &str,
    now: f64,
    expires_at: f64,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
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
pub(crate) fn session_user(
    conn: &Connection,
    id_hash: &str,
    now: f64,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT s.user_name FROM sessions s JOIN users u ON u.name = s.user_name
             WHERE s.id_hash = ?1 AND s.expires_at > ?2",
            params![id_hash, now],
            |r| r.get(0),
        )
        .optional()?)
}

/// Ends a session (logging out); one that does not exist is no error.
pub(crate) fn delete_session(conn: &Connection, id_hash: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
    Ok(())
}
