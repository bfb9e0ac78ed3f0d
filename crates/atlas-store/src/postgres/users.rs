//! Users and their token hashes, runs' owners and browser sessions in PostgreSQL: SQLite's
//! `sqlite/users.rs` and `sqlite/sessions.rs` in PostgreSQL's dialect (`left` for `substr`).

use postgres::Client;

use crate::model::UserRow;
use crate::StoreError;

pub(super) fn add_user(
    c: &mut Client,
    name: &str,
    token_hash: &str,
    now: f64,
) -> Result<(), StoreError> {
    let added = c.execute(
        "INSERT INTO users (name, token_hash, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        &[&name, &token_hash, &now],
    )?;
    if added == 0 {
        return Err(StoreError::UserExists(name.into()));
    }
    Ok(())
}

pub(super) fn user_for_subject(
    c: &mut Client,
    subject: &str,
) -> Result<Option<String>, StoreError> {
    Ok(c.query_opt(
        "SELECT name FROM users WHERE oidc_subject = $1",
        &[&subject],
    )?
    .map(|r| r.get(0)))
}

pub(super) fn add_sso_user(
    c: &mut Client,
    name: &str,
    subject: &str,
    token_hash: &str,
    now: f64,
) -> Result<(), StoreError> {
    let added = c.execute(
        "INSERT INTO users (name, token_hash, created_at, oidc_subject) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        &[&name, &token_hash, &now, &subject],
    )?;
    if added == 0 {
        return Err(StoreError::UserExists(name.into()));
    }
    Ok(())
}

pub(super) fn user_for_token(
    c: &mut Client,
    token_hash: &str,
) -> Result<Option<String>, StoreError> {
    Ok(c.query_opt(
        "SELECT name FROM users WHERE token_hash = $1",
        &[&token_hash],
    )?
    .map(|r| r.get(0)))
}

pub(super) fn users(c: &mut Client) -> Result<Vec<UserRow>, StoreError> {
    Ok(
        c.query("SELECT name, created_at FROM users ORDER BY name", &[])?
            .iter()
            .map(|r| UserRow {
                name: r.get(0),
                created_at: r.get(1),
            })
            .collect(),
    )
}

pub(super) fn run_owner(c: &mut Client, run: &str) -> Result<Option<Option<String>>, StoreError> {
    Ok(
        c.query_opt("SELECT owner FROM runs WHERE id = $1", &[&run])?
            .map(|r| r.get(0)),
    )
}

pub(super) fn visible_run_id(
    c: &mut Client,
    owner: &str,
    prefix: &str,
) -> Result<Option<String>, StoreError> {
    let visible = crate::tenancy::visible_sql("runs", "$1");
    owned_id(
        c,
        &format!(
            "SELECT id FROM runs WHERE id LIKE $3 AND left(id, length($2)) = $2 AND {visible}
             ORDER BY id = $2 DESC LIMIT 2"
        ),
        owner,
        prefix,
    )
}

pub(super) fn visible_experiment_id(
    c: &mut Client,
    owner: &str,
    prefix: &str,
) -> Result<Option<String>, StoreError> {
    let visible = crate::tenancy::visible_sql("r", "$1");
    owned_id(
        c,
        &format!(
            "SELECT e.id FROM experiments e WHERE e.id LIKE $3 AND left(e.id, length($2)) = $2
               AND EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = e.id)
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = e.id AND NOT {visible})
             ORDER BY e.id = $2 DESC LIMIT 2"
        ),
        owner,
        prefix,
    )
}

/// Runs `sql` (at most two ids, an exact match first): the exact match or the only one. `$3`
/// is the prefix as a LIKE pattern (`\`, `%` and `_` escaped), which the `text_pattern_ops`
/// indexes of migration 11 answer whatever the database's collation; the exact `left` test
/// stays beside it.
fn owned_id(
    c: &mut Client,
    sql: &str,
    owner: &str,
    prefix: &str,
) -> Result<Option<String>, StoreError> {
    if prefix.is_empty() {
        return Ok(None);
    }
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for ch in prefix.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    let ids: Vec<String> = c
        .query(sql, &[&owner, &prefix, &pattern])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(match ids.as_slice() {
        [only] => Some(only.clone()),
        [exact, _] if exact == prefix => Some(exact.clone()),
        _ => None,
    })
}

pub(super) fn claim_run(c: &mut Client, run: &str, owner: &str) -> Result<(), StoreError> {
    c.execute(
        "UPDATE runs SET owner = $2 WHERE id = $1 AND owner IS NULL",
        &[&run, &owner],
    )?;
    Ok(())
}

pub(super) fn create_session(
    c: &mut Client,
    id_hash: &str,
    user: &str,
    now: f64,
    expires_at: f64,
) -> Result<(), StoreError> {
    let mut tx = c.transaction()?;
    tx.execute("DELETE FROM sessions WHERE expires_at <= $1", &[&now])?;
    tx.execute(
        "INSERT INTO sessions (id_hash, user_name, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        &[&id_hash, &user, &now, &expires_at],
    )?;
    tx.commit()?;
    Ok(())
}

pub(super) fn session_user(
    c: &mut Client,
    id_hash: &str,
    now: f64,
) -> Result<Option<String>, StoreError> {
    Ok(c.query_opt(
        "SELECT s.user_name FROM sessions s JOIN users u ON u.name = s.user_name
             WHERE s.id_hash = $1 AND s.expires_at > $2",
        &[&id_hash, &now],
    )?
    .map(|r| r.get(0)))
}

pub(super) fn delete_session(c: &mut Client, id_hash: &str) -> Result<(), StoreError> {
    c.execute("DELETE FROM sessions WHERE id_hash = $1", &[&id_hash])?;
    Ok(())
}

/// Which of `seqs` are stored as `run`'s events.
pub(super) fn known_event_seqs(
    c: &mut Client,
    run: &str,
    seqs: &[u64],
) -> Result<Vec<u64>, StoreError> {
    let wanted: Vec<i64> = seqs.iter().map(|&s| s as i64).collect();
    let rows = c.query(
        "SELECT seq FROM events WHERE run_id = $1 AND seq = ANY($2)",
        &[&run, &wanted],
    )?;
    Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
}
