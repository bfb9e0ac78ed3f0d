//! Storage services' status pushed by their operator (`services`): the latest per owner,
//! tenant, place and name (an older push never replaces a newer one), seen by the runs' rule
//! (`tenancy::visible_sql`), those not heard from for [`crate::SERVICE_RETENTION_SECONDS`]
//! deleted on the way.

use rusqlite::{params, Connection};

use atlas_spec::service_record::ServiceRecord;

use crate::{StoreError, SERVICE_RETENTION_SECONDS};

/// Keeps `records` as `owner`'s latest (in `tenant`, when the token was scoped to one);
/// returns how many replaced or added a row.
pub(crate) fn put(
    conn: &mut Connection,
    owner: &str,
    tenant: Option<&str>,
    records: &[ServiceRecord],
    now: f64,
) -> Result<u64, StoreError> {
    let tx = conn.transaction()?;
    let mut kept = 0;
    {
        let mut delete = tx.prepare_cached(
            "DELETE FROM services WHERE owner = ?1 AND tenant IS ?2 AND place = ?3 AND name = ?4 AND time <= ?5",
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO services (owner, tenant, place, name, time, spec, status)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE NOT EXISTS (SELECT 1 FROM services
                 WHERE owner = ?1 AND tenant IS ?2 AND place = ?3 AND name = ?4)",
        )?;
        for r in records {
            delete.execute(params![owner, tenant, r.place, r.name, r.time])?;
            kept += insert.execute(params![
                owner,
                tenant,
                r.place,
                r.name,
                r.time,
                r.spec.to_string(),
                r.status.to_string()
            ])? as u64;
        }
    }
    tx.execute(
        "DELETE FROM services WHERE owner = ?1 AND time < ?2",
        params![owner, now - SERVICE_RETENTION_SECONDS],
    )?;
    tx.commit()?;
    Ok(kept)
}

/// The services `viewer` sees, by place and name.
pub(crate) fn list(conn: &Connection, viewer: &str) -> Result<Vec<ServiceRecord>, StoreError> {
    let mut query = conn.prepare_cached(&format!(
        "SELECT place, name, time, spec, status FROM services s WHERE {} ORDER BY place, name, owner",
        crate::tenancy::visible_sql("s", "?1")
    ))?;
    let rows = query.query_map(params![viewer], |r| {
        Ok(ServiceRecord {
            place: r.get(0)?,
            name: r.get(1)?,
            time: r.get(2)?,
            spec: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
            status: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
