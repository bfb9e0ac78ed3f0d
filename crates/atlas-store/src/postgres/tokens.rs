//! API tokens scoped to one tenant and one role in PostgreSQL: SQLite's `sqlite/tokens.rs`
//! in PostgreSQL's dialect. Only a token's SHA-256 is kept.

use postgres::{Client, Row};

use crate::tenancy::{parse_role, TokenRow};
use crate::StoreError;

const COLUMNS: &str = "id, user_name, tenant, role, label, created_at";

fn token_row(r: &Row) -> Result<TokenRow, StoreError> {
    Ok(TokenRow {
        id: r.get(0),
        user: r.get(1),
        tenant: r.get(2),
        role: parse_role(r.get(3))?,
        label: r.get(4),
        created_at: r.get(5),
    })
}

pub(super) fn add_token(
    c: &mut Client,
    token: &TokenRow,
    token_hash: &str,
) -> Result<(), StoreError> {
    c.execute(
        &format!(
            "INSERT INTO api_tokens ({COLUMNS}, token_hash) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ),
        &[
            &token.id,
            &token.user,
            &token.tenant,
            &token.role.as_str(),
            &token.label,
            &token.created_at,
            &token_hash,
        ],
    )?;
    Ok(())
}

pub(super) fn tokens(c: &mut Client) -> Result<Vec<TokenRow>, StoreError> {
    c.query(
        &format!("SELECT {COLUMNS} FROM api_tokens ORDER BY user_name, created_at"),
        &[],
    )?
    .iter()
    .map(token_row)
    .collect()
}

pub(super) fn revoke_token(c: &mut Client, id: &str) -> Result<bool, StoreError> {
    Ok(c.execute("DELETE FROM api_tokens WHERE id = $1", &[&id])? > 0)
}

pub(super) fn scoped_token(
    c: &mut Client,
    token_hash: &str,
) -> Result<Option<TokenRow>, StoreError> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1"),
        &[&token_hash],
    )?
    .as_ref()
    .map(token_row)
    .transpose()
}
