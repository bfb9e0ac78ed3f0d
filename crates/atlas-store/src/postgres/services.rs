//! Storage services' status in PostgreSQL: SQLite's `sqlite/services.rs` in PostgreSQL's
//! dialect (`IS NOT DISTINCT FROM` for the tenant).

use postgres::Client;

use atlas_spec::service_record::ServiceRecord;

use crate::{StoreError, SERVICE_RETENTION_SECONDS};

pub(super) fn put(
    c: &mut Client,
    owner: &str,
    tenant: Option<&str>,
    records: &[ServiceRecord],
    now: f64,
) -> Result<u64, StoreError> {
    let mut tx = c.transaction()?;
    let delete = tx.prepare(
        "DELETE FROM services WHERE owner = $1 AND tenant IS NOT DISTINCT FROM $2 AND place = $3 AND name = $4 AND time <= $5",
    )?;
    let insert = tx.prepare(
        "INSERT INTO services (owner, tenant, place, name, time, spec, status)
         SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT EXISTS (SELECT 1 FROM services
             WHERE owner = $1 AND tenant IS NOT DISTINCT FROM $2 AND place = $3 AND name = $4)
         ON CONFLICT DO NOTHING",
    )?;
    let mut kept = 0;
    for r in records {
        tx.execute(&delete, &[&owner, &tenant, &r.place, &r.name, &r.time])?;
        let (spec, status) = (r.spec.to_string(), r.status.to_string());
        kept += tx.execute(
            &insert,
            &[&owner, &tenant, &r.place, &r.name, &r.time, &spec, &status],
        )?;
    }
    tx.execute(
        "DELETE FROM services WHERE owner = $1 AND time < $2",
        &[&owner, &(now - SERVICE_RETENTION_SECONDS)],
    )?;
    tx.commit()?;
    Ok(kept)
}

pub(super) fn list(c: &mut Client, viewer: &str) -> Result<Vec<ServiceRecord>, StoreError> {
    let sql = format!(
        "SELECT place, name, time, spec, status FROM services s WHERE {} ORDER BY place, name, owner",
        crate::tenancy::visible_sql("s", "$1")
    );
    let rows = c.query(&sql, &[&viewer])?;
    Ok(rows
        .iter()
        .map(|r| ServiceRecord {
            place: r.get(0),
            name: r.get(1),
            time: r.get(2),
            spec: serde_json::from_str(r.get::<_, &str>(3)).unwrap_or_default(),
            status: serde_json::from_str(r.get::<_, &str>(4)).unwrap_or_default(),
        })
        .collect())
}
