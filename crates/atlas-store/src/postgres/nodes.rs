//! Node samples in PostgreSQL: SQLite's `sqlite/nodes.rs` in PostgreSQL's dialect (`floor`
//! for the bucket).

use postgres::Client;

use atlas_spec::node_record::NodeRecord;

use crate::{NodeBucket, StoreError, NODE_RETENTION_SECONDS};

pub(super) fn ingest(
    c: &mut Client,
    owner: &str,
    tenant: Option<&str>,
    samples: &[NodeRecord],
    now: f64,
) -> Result<u64, StoreError> {
    let mut tx = c.transaction()?;
    let insert = tx.prepare(
        "INSERT INTO node_samples (owner, target, node, time, cores, capacity, rss_bytes, processes, jobs, tenant)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
    )?;
    let mut added = 0;
    for s in samples {
        let jobs = serde_json::to_string(&s.jobs).unwrap_or_else(|_| "{}".into());
        let rss = s.rss_bytes.map(|b| b as i64);
        let processes = s.processes.map(i64::from);
        added += tx.execute(
            &insert,
            &[
                &owner,
                &s.target,
                &s.node,
                &s.time,
                &s.cores,
                &s.capacity,
                &rss,
                &processes,
                &jobs,
                &tenant,
            ],
        )?;
    }
    tx.execute(
        "DELETE FROM node_samples WHERE owner = $1 AND time < $2",
        &[&owner, &(now - NODE_RETENTION_SECONDS)],
    )?;
    tx.commit()?;
    Ok(added)
}

pub(super) fn latest(
    c: &mut Client,
    viewer: &str,
    since: f64,
) -> Result<Vec<NodeRecord>, StoreError> {
    let sql = format!(
        "SELECT target, node, time, cores, capacity, rss_bytes, processes, jobs FROM node_samples s
         WHERE {} AND time >= $2 AND time = (SELECT max(time) FROM node_samples t
             WHERE t.owner = s.owner AND t.tenant IS NOT DISTINCT FROM s.tenant
               AND t.target = s.target AND t.node = s.node)
         ORDER BY target, node",
        crate::tenancy::visible_sql("s", "$1::text")
    );
    let rows = c.query(&sql, &[&viewer, &since])?;
    Ok(rows
        .iter()
        .map(|r| NodeRecord {
            target: r.get(0),
            node: r.get(1),
            time: r.get(2),
            cores: r.get(3),
            capacity: r.get(4),
            rss_bytes: r.get::<_, Option<i64>>(5).map(|b| b.max(0) as u64),
            processes: r
                .get::<_, Option<i64>>(6)
                .map(|p| p.clamp(0, u32::MAX as i64) as u32),
            jobs: serde_json::from_str(&r.get::<_, String>(7)).unwrap_or_default(),
        })
        .collect())
}

pub(super) fn buckets(
    c: &mut Client,
    viewer: &str,
    since: f64,
    bucket: f64,
    limit: usize,
) -> Result<Vec<NodeBucket>, StoreError> {
    let sql = format!(
        "SELECT target, node, floor(time / $3)::BIGINT AS b, avg(cores), max(capacity)
         FROM node_samples s WHERE {} AND time >= $2
         GROUP BY target, node, b ORDER BY target, node, b LIMIT $4",
        crate::tenancy::visible_sql("s", "$1::text")
    );
    let rows = c.query(&sql, &[&viewer, &since, &bucket, &(limit as i64)])?;
    Ok(rows
        .iter()
        .map(|r| NodeBucket {
            target: r.get(0),
            node: r.get(1),
            start: r.get::<_, i64>(2) as f64 * bucket,
            cores: r.get(3),
            capacity: r.get(4),
        })
        .collect())
}
