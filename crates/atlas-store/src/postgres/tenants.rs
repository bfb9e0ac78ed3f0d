//! Tenants, their members and quotas, and their usage in PostgreSQL: `sqlite/tenants.rs` in
//! PostgreSQL's dialect.

use postgres::Client;

use crate::tenancy::{parse_role, usage_sql, Member, Quotas, Role, TenantRow, Usage};
use crate::StoreError;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

pub(super) fn add_tenant(c: &mut Client, name: &str, now: f64) -> Result<(), StoreError> {
    let added = c.execute(
        "INSERT INTO tenants (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        &[&name, &now],
    )?;
    if added == 0 {
        return Err(StoreError::TenantExists(name.into()));
    }
    Ok(())
}

pub(super) fn tenants(c: &mut Client) -> Result<Vec<TenantRow>, StoreError> {
    let mut rows: Vec<TenantRow> = c
        .query(
            "SELECT name, created_at, quotas FROM tenants ORDER BY name",
            &[],
        )?
        .iter()
        .map(|r| TenantRow {
            name: r.get(0),
            created_at: r.get(1),
            members: Vec::new(),
            quotas: serde_json::from_str(r.get(2)).unwrap_or_default(),
        })
        .collect();
    let members = c.query(
        "SELECT tenant, user_name, role FROM tenant_members ORDER BY tenant, user_name",
        &[],
    )?;
    for m in &members {
        let tenant: &str = m.get(0);
        if let Some(row) = rows.iter_mut().find(|t| t.name == tenant) {
            row.members.push(Member {
                user: m.get(1),
                role: parse_role(m.get(2))?,
            });
        }
    }
    Ok(rows)
}

fn require_tenant(c: &mut Client, tenant: &str) -> Result<(), StoreError> {
    match c.query_opt("SELECT 1 FROM tenants WHERE name = $1", &[&tenant])? {
        Some(_) => Ok(()),
        None => Err(StoreError::NoSuchTenant(tenant.into())),
    }
}

pub(super) fn set_member(
    c: &mut Client,
    tenant: &str,
    user: &str,
    role: Role,
) -> Result<(), StoreError> {
    require_tenant(c, tenant)?;
    c.execute(
        "INSERT INTO tenant_members (tenant, user_name, role) VALUES ($1, $2, $3)
         ON CONFLICT (tenant, user_name) DO UPDATE SET role = $3",
        &[&tenant, &user, &role.as_str()],
    )?;
    Ok(())
}

pub(super) fn remove_member(c: &mut Client, tenant: &str, user: &str) -> Result<bool, StoreError> {
    require_tenant(c, tenant)?;
    // Their tokens scoped to the tenant go too: rejoining later does not bring them back.
    c.execute(
        "DELETE FROM api_tokens WHERE tenant = $1 AND user_name = $2",
        &[&tenant, &user],
    )?;
    Ok(c.execute(
        "DELETE FROM tenant_members WHERE tenant = $1 AND user_name = $2",
        &[&tenant, &user],
    )? > 0)
}

pub(super) fn set_quotas(c: &mut Client, tenant: &str, quotas: &Quotas) -> Result<(), StoreError> {
    let text = serde_json::to_string(quotas).unwrap_or_else(|_| "{}".into());
    let n = c.execute(
        "UPDATE tenants SET quotas = $2 WHERE name = $1",
        &[&tenant, &text],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchTenant(tenant.into()));
    }
    Ok(())
}

pub(super) fn memberships(c: &mut Client, user: &str) -> Result<Vec<(String, Role)>, StoreError> {
    c.query(
        "SELECT tenant, role FROM tenant_members WHERE user_name = $1 ORDER BY tenant",
        &[&user],
    )?
    .iter()
    .map(|r| Ok((r.get(0), parse_role(r.get(1))?)))
    .collect()
}

pub(super) fn usage(
    c: &mut Client,
    tenant: &str,
    since: f64,
    now: f64,
) -> Result<Usage, StoreError> {
    let sql = usage_sql("$1::text", "$2::float8", "$3::float8");
    let row = c.query_one(&sql, &[&tenant, &since, &now])?;
    let (active, core_seconds, gpu_seconds): (i64, f64, f64) = (row.get(0), row.get(1), row.get(2));
    let storage_bytes: f64 = row.get(3);
    Ok(Usage {
        active_runs: active.max(0) as u64,
        core_hours: core_seconds / 3600.0,
        gpu_hours: gpu_seconds / 3600.0,
        storage_gib: storage_bytes / GIB,
    })
}
