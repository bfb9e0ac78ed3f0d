//! API tokens scoped to one tenant and one role, in SQLite (the `Store` methods of the same
//! names; `postgres/tokens.rs` is the same in PostgreSQL's dialect). Only a token's SHA-256
//! is kept.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::tenancy::{parse_role, TokenRow};
use crate::StoreError;

const COLUMNS: &str = "id, user_name, tenant, role, label, created_at";

fn token_row(r: &Row) -> rusqlite::Result<(TokenRow, String)> {
    Ok((
        TokenRow {
            id: r.get(0)?,
            user: r.get(1)?,
            tenant: r.get(2)?,
            role: crate::Role::Viewer,
            label: r.get(4)?,
            created_at: r.get(5)?,
        },
        r.get(3)?,
    ))
}

fn with_role((mut row, role): (TokenRow, String)) -> Result<TokenRow, StoreError> {
    row.role = parse_role(&role)?;
    Ok(row)
}

pub(crate) fn add_token(
    conn: &Connection,
    token: &TokenRow,
    token_hash: &str,
) -> Result<(), StoreError> {
    conn.execute(
        &format!(
            "INSERT INTO api_tokens ({COLUMNS}, token_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ),
        params![
            token.id,
            token.user,
            token.tenant,
            token.role.as_str(),
            token.label,
            token.created_at,
            token_hash
        ],
    )?;
    Ok(())
}

pub(crate) fn tokens(conn: &Connection) -> Result<Vec<TokenRow>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM api_tokens ORDER BY user_name, created_at"
    ))?;
    let rows: Vec<_> = stmt.query_map([], token_row)?.collect::<Result<_, _>>()?;
    rows.into_iter().map(with_role).collect()
}

pub(crate) fn revoke_token(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM api_tokens WHERE id = ?1", [id])? > 0)
}

pub(crate) fn scoped_token(
    conn: &Connection,
    token_hash: &str,
) -> Result<Option<TokenRow>, StoreError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = ?1"),
        [token_hash],
        token_row,
    )
    .optional()?
    .map(with_role)
    .transpose()
}
