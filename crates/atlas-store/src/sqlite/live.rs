//! Reads of a run's samples in small pieces, for charts and the live server: evenly spaced
//! points of a time range, the samples and app metrics after a sequence number, the latest
//! sample. Each goes through the (run_id, seq) key.

use rusqlite::{params, Connection, OptionalExtension};

use crate::{MetricPoint, SeriesPoint, StoreError};

fn point(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, SeriesPoint)> {
    Ok((
        r.get(0)?,
        SeriesPoint {
            time: r.get(1)?,
            cpu_seconds: r.get::<_, Option<f64>>(2)?.unwrap_or(0.0),
            rss_bytes: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
            gpu_percent: r.get(4)?,
            phase: r.get(5)?,
        },
    ))
}

const POINT_COLUMNS: &str = "seq, time, cpu_user_seconds + cpu_system_seconds, rss_bytes, json_extract(gpus, '$[0].smPercent'), phase";

/// At most `points` job samples of `run` between `from` and `to` (Unix seconds; open when
/// `None`), evenly spaced by sequence number, the first and last kept: (seq, point). A few
/// hundred index lookups instead of a scan of a long run's samples.
pub(crate) fn series_between(
    conn: &Connection,
    run: &str,
    from: Option<f64>,
    to: Option<f64>,
    points: usize,
) -> Result<Vec<(i64, SeriesPoint)>, StoreError> {
    // The first and the last sample in the range, each found by walking the (run_id, seq) key
    // from its end (`min(seq)` with a time condition would read every sample of the run).
    let bounds = params![run, from.unwrap_or(f64::MIN), to.unwrap_or(f64::MAX)];
    let end = |order: &str| -> rusqlite::Result<Option<i64>> {
        conn.prepare_cached(&format!(
            "SELECT seq FROM samples WHERE run_id = ?1 AND scope = 'job' AND time >= ?2 AND time <= ?3 ORDER BY seq {order} LIMIT 1"
        ))?
        .query_row(bounds, |r| r.get(0))
        .optional()
    };
    let (first, last) = (end("ASC")?, end("DESC")?);
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {POINT_COLUMNS} FROM samples WHERE run_id = ?1 AND seq >= ?2 AND scope = 'job' ORDER BY seq LIMIT 1"
    ))?;
    let steps = points.max(2) as i64 - 1;
    let mut out: Vec<(i64, SeriesPoint)> = Vec::new();
    for k in 0..=steps {
        let at = first + (last - first) * k / steps;
        let row = stmt.query_row(params![run, at], point).optional()?;
        if let Some(row) = row.filter(|(seq, _)| out.last().is_none_or(|(l, _)| l != seq)) {
            out.push(row);
        }
    }
    Ok(out)
}

/// The job samples of `run` after sequence number `after`, oldest first, at most `limit`:
/// (seq, point).
pub(crate) fn samples_after(
    conn: &Connection,
    run: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, SeriesPoint)>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {POINT_COLUMNS} FROM samples WHERE run_id = ?1 AND seq > ?2 AND scope = 'job' ORDER BY seq LIMIT ?3"
    ))?;
    let rows = stmt
        .query_map(params![run, after, limit as i64], point)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The latest job sample of `run`.
pub(crate) fn latest_sample(
    conn: &Connection,
    run: &str,
) -> Result<Option<(i64, SeriesPoint)>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {POINT_COLUMNS} FROM samples WHERE run_id = ?1 AND scope = 'job' ORDER BY seq DESC LIMIT 1"
    ))?;
    Ok(stmt.query_row([run], point).optional()?)
}

/// The app metric values of `run` after sequence number `after`, oldest first.
pub(crate) fn metrics_after(
    conn: &Connection,
    run: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<MetricPoint>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, time, phase, name, value FROM metrics WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(params![run, after, limit as i64], |r| {
            Ok(MetricPoint {
                seq: r.get(0)?,
                time: r.get(1)?,
                phase: r.get(2)?,
                name: r.get(3)?,
                value: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
