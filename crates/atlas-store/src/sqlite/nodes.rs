//! Node samples pushed by node agents (`node_samples`): stored per owner (and tenant, when
//! pushed with a token scoped to one), idempotent on (owner, target, node, time), read back
//! as the latest sample of each node and as averages over time buckets (the dashboard's heat
//! map); a viewer sees their own and their tenants' (the runs' rule, `tenancy::visible_sql`).

use rusqlite::{params, Connection};

use atlas_spec::node_record::NodeRecord;

use crate::{NodeBucket, StoreError, NODE_RETENTION_SECONDS};

/// Stores `samples` as `owner`'s; those stored already are skipped, those older than
/// [`NODE_RETENTION_SECONDS`] before `now` deleted. Returns how many were added.
pub(crate) fn ingest(
    conn: &mut Connection,
    owner: &str,
    tenant: Option<&str>,
    samples: &[NodeRecord],
    now: f64,
) -> Result<u64, StoreError> {
    let tx = conn.transaction()?;
    let mut added = 0;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO node_samples (owner, target, node, time, cores, capacity, rss_bytes, processes, jobs, tenant)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
        )?;
        for s in samples {
            let jobs = serde_json::to_string(&s.jobs).unwrap_or_else(|_| "{}".into());
            added += insert.execute(params![
                owner,
                s.target,
                s.node,
                s.time,
                s.cores,
                s.capacity,
                s.rss_bytes.map(|b| b as i64),
                s.processes,
                jobs,
                tenant
            ])? as u64;
        }
    }
    tx.execute(
        "DELETE FROM node_samples WHERE owner = ?1 AND time < ?2",
        params![owner, now - NODE_RETENTION_SECONDS],
    )?;
    tx.commit()?;
    Ok(added)
}

/// The latest sample of each node `viewer` sees that has one since `since`.
pub(crate) fn latest(
    conn: &Connection,
    viewer: &str,
    since: f64,
) -> Result<Vec<NodeRecord>, StoreError> {
    let mut query = conn.prepare_cached(&format!(
        "SELECT target, node, time, cores, capacity, rss_bytes, processes, jobs FROM node_samples s
         WHERE {} AND time >= ?2 AND time = (SELECT max(time) FROM node_samples t
             WHERE t.owner = s.owner AND t.tenant IS s.tenant AND t.target = s.target AND t.node = s.node)
         ORDER BY target, node",
        crate::tenancy::visible_sql("s", "?1")
    ))?;
    let rows = query.query_map(params![viewer, since], |r| {
        Ok(NodeRecord {
            target: r.get(0)?,
            node: r.get(1)?,
            time: r.get(2)?,
            cores: r.get(3)?,
            capacity: r.get(4)?,
            rss_bytes: r.get::<_, Option<i64>>(5)?.map(|b| b.max(0) as u64),
            processes: r
                .get::<_, Option<i64>>(6)?
                .map(|p| p.clamp(0, u32::MAX as i64) as u32),
            jobs: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The node use `viewer` sees since `since`, averaged per node over buckets of `bucket`
/// seconds, at most `limit` buckets.
pub(crate) fn buckets(
    conn: &Connection,
    viewer: &str,
    since: f64,
    bucket: f64,
    limit: usize,
) -> Result<Vec<NodeBucket>, StoreError> {
    let mut query = conn.prepare_cached(&format!(
        "SELECT target, node, CAST(time / ?3 AS INTEGER) AS b, avg(cores), max(capacity)
         FROM node_samples s WHERE {} AND time >= ?2
         GROUP BY target, node, b ORDER BY target, node, b LIMIT ?4",
        crate::tenancy::visible_sql("s", "?1")
    ))?;
    let rows = query.query_map(params![viewer, since, bucket, limit as i64], |r| {
        Ok(NodeBucket {
            target: r.get(0)?,
            node: r.get(1)?,
            start: r.get::<_, i64>(2)? as f64 * bucket,
            cores: r.get(3)?,
            capacity: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
