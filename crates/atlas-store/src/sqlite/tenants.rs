//! Tenants, their members and quotas, and their usage, in SQLite (the `Store` methods of the
//! same names; `postgres/tenants.rs` is the same in PostgreSQL's dialect).

use rusqlite::{params, Connection, OptionalExtension};

use crate::tenancy::{parse_role, usage_sql, Member, Quotas, Role, TenantRow, Usage};
use crate::StoreError;

pub(crate) fn add_tenant(conn: &Connection, name: &str, now: f64) -> Result<(), StoreError> {
    let added = conn.execute(
        "INSERT INTO tenants (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        params![name, now],
    )?;
    if added == 0 {
        return Err(StoreError::TenantExists(name.into()));
    }
    Ok(())
}

pub(crate) fn tenants(conn: &Connection) -> Result<Vec<TenantRow>, StoreError> {
    let mut stmt = conn.prepare("SELECT name, created_at, quotas FROM tenants ORDER BY name")?;
    let mut rows: Vec<TenantRow> = stmt
        .query_map([], |r| {
            Ok(TenantRow {
                name: r.get(0)?,
                created_at: r.get(1)?,
                members: Vec::new(),
                quotas: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut members = conn.prepare(
        "SELECT user_name, role FROM tenant_members WHERE tenant = ?1 ORDER BY user_name",
    )?;
    for row in &mut rows {
        for member in members.query_map([&row.name], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (user, role) = member?;
            row.members.push(Member {
                user,
                role: parse_role(&role)?,
            });
        }
    }
    Ok(rows)
}

fn require_tenant(conn: &Connection, tenant: &str) -> Result<(), StoreError> {
    let found: Option<i64> = conn
        .query_row("SELECT 1 FROM tenants WHERE name = ?1", [tenant], |r| {
            r.get(0)
        })
        .optional()?;
    found
        .map(|_| ())
        .ok_or_else(|| StoreError::NoSuchTenant(tenant.into()))
}

pub(crate) fn set_member(
    conn: &Connection,
    tenant: &str,
    user: &str,
    role: Role,
) -> Result<(), StoreError> {
    require_tenant(conn, tenant)?;
    conn.execute(
        "INSERT INTO tenant_members (tenant, user_name, role) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant, user_name) DO UPDATE SET role = ?3",
        params![tenant, user, role.as_str()],
    )?;
    Ok(())
}

pub(crate) fn remove_member(
    conn: &Connection,
    tenant: &str,
    user: &str,
) -> Result<bool, StoreError> {
    require_tenant(conn, tenant)?;
    // Their tokens scoped to the tenant go too: rejoining later does not bring them back.
    conn.execute(
        "DELETE FROM api_tokens WHERE tenant = ?1 AND user_name = ?2",
        params![tenant, user],
    )?;
    Ok(conn.execute(
        "DELETE FROM tenant_members WHERE tenant = ?1 AND user_name = ?2",
        params![tenant, user],
    )? > 0)
}

pub(crate) fn set_quotas(
    conn: &Connection,
    tenant: &str,
    quotas: &Quotas,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(quotas).unwrap_or_else(|_| "{}".into());
    let n = conn.execute(
        "UPDATE tenants SET quotas = ?2 WHERE name = ?1",
        params![tenant, text],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchTenant(tenant.into()));
    }
    Ok(())
}

pub(crate) fn memberships(
    conn: &Connection,
    user: &str,
) -> Result<Vec<(String, Role)>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT tenant, role FROM tenant_members WHERE user_name = ?1 ORDER BY tenant")?;
    let rows: Vec<(String, String)> = stmt
        .query_map([user], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(tenant, role)| Ok((tenant, parse_role(&role)?)))
        .collect()
}

pub(crate) fn usage(
    conn: &Connection,
    tenant: &str,
    since: f64,
    now: f64,
) -> Result<Usage, StoreError> {
    let (active, core_seconds, gpu_seconds, storage_bytes): (i64, f64, f64, f64) = conn.query_row(
        &usage_sql("?1", "?2", "?3"),
        params![tenant, since, now],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    Ok(Usage {
        active_runs: active.max(0) as u64,
        core_hours: core_seconds / 3600.0,
        gpu_hours: gpu_seconds / 3600.0,
        storage_gib: storage_bytes / (1024.0 * 1024.0 * 1024.0),
    })
}
