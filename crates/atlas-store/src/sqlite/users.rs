//! Users and their API tokens (only a token's SHA-256 is kept), and runs' owners, in SQLite
//! (the `Store` methods of the same names).

use rusqlite::{params, Connection, OptionalExtension};

use crate::{StoreError, UserRow};

/// Adds a user with the hash of their token; a name that exists is an error.
pub(crate) fn add_user(
    conn: &Connection,
    name: &str,
    token_hash: &str,
    now: f64,
) -> Result<(), StoreError> {
    let added = conn.execute(
        "INSERT INTO users (name, token_hash, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
        params![name, token_hash, now],
    )?;
    if added == 0 {
        return Err(StoreError::UserExists(name.into()));
    }
    Ok(())
}

/// The user made for single sign-on identity `subject`.
pub(crate) fn user_for_subject(
    conn: &Connection,
    subject: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT name FROM users WHERE oidc_subject = ?1",
            [subject],
            |r| r.get(0),
        )
        .optional()?)
}

/// Adds a user for a single sign-on identity; a name that exists is an error.
pub(crate) fn add_sso_user(
    conn: &Connection,
    name: &str,
    subject: &str,
    token_hash: &str,
    now: f64,
) -> Result<(), StoreError> {
    let added = conn.execute(
        "INSERT INTO users (name, token_hash, created_at, oidc_subject) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        params![name, token_hash, now, subject],
    )?;
    if added == 0 {
        return Err(StoreError::UserExists(name.into()));
    }
    Ok(())
}

/// The user whose token has this hash.
pub(crate) fn user_for_token(
    conn: &Connection,
    token_hash: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT name FROM users WHERE token_hash = ?1",
            [token_hash],
            |r| r.get(0),
        )
        .optional()?)
}

/// Every user, by name.
pub(crate) fn users(conn: &Connection) -> Result<Vec<UserRow>, StoreError> {
    let mut stmt = conn.prepare("SELECT name, created_at FROM users ORDER BY name")?;
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
pub(crate) fn run_owner(
    conn: &Connection,
    run: &str,
) -> Result<Option<Option<String>>, StoreError> {
    Ok(conn
        .query_row("SELECT owner FROM runs WHERE id = ?1", [run], |r| r.get(0))
        .optional()?)
}

/// The id of `owner`'s run that is `prefix`, or else the only one of theirs that starts with
/// it; other users' runs are not looked at, so a prefix says nothing about them.
pub(crate) fn visible_run_id(
    conn: &Connection,
    owner: &str,
    prefix: &str,
) -> Result<Option<String>, StoreError> {
    let visible = crate::tenancy::visible_sql("runs", "?1");
    owned_id(
        conn,
        &format!(
            "SELECT id FROM runs WHERE id >= ?2 AND id < ?2 || char(1114111)
               AND substr(id, 1, length(?2)) = ?2 AND {visible}
             ORDER BY id = ?2 DESC LIMIT 2"
        ),
        owner,
        prefix,
    )
}

/// The id of `owner`'s experiment (one with runs, all of them `owner`'s) that is `prefix`,
/// or else the only one of theirs that starts with it.
pub(crate) fn visible_experiment_id(
    conn: &Connection,
    owner: &str,
    prefix: &str,
) -> Result<Option<String>, StoreError> {
    let visible = crate::tenancy::visible_sql("r", "?1");
    owned_id(
        conn,
        &format!(
            "SELECT e.id FROM experiments e WHERE e.id >= ?2 AND e.id < ?2 || char(1114111)
               AND substr(e.id, 1, length(?2)) = ?2
               AND EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = e.id)
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = e.id AND NOT {visible})
             ORDER BY e.id = ?2 DESC LIMIT 2"
        ),
        owner,
        prefix,
    )
}

/// Runs `sql` (at most two ids, an exact match first): the exact match or the only one. The
/// queries bound the id to the range that starts with the prefix (ids sort bytewise, and
/// U+10FFFF after any text), so the primary key's index finds the candidates, and keep the
/// exact `substr` test beside it.
fn owned_id(
    conn: &Connection,
    sql: &str,
    owner: &str,
    prefix: &str,
) -> Result<Option<String>, StoreError> {
    if prefix.is_empty() {
        return Ok(None);
    }
    let mut stmt = conn.prepare(sql)?;
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
pub(crate) fn claim_run(conn: &Connection, run: &str, owner: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE runs SET owner = ?2 WHERE id = ?1 AND owner IS NULL",
        params![run, owner],
    )?;
    Ok(())
}

/// Which of `seqs` are stored as `run`'s events.
pub(crate) fn known_event_seqs(
    conn: &Connection,
    run: &str,
    seqs: &[u64],
) -> Result<Vec<u64>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM events WHERE run_id = ?1 AND seq = ?2")?;
    let mut known = Vec::new();
    for &seq in seqs {
        if stmt.exists(params![run, seq as i64])? {
            known.push(seq);
        }
    }
    Ok(known)
}
