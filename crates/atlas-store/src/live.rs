//! What the live server reads often and in small pieces: a run's samples and app metrics
//! after a sequence number, and its latest sample. Each is one range read on the
//! (run_id, seq) key.

use rusqlite::{params, OptionalExtension};

use crate::{SeriesPoint, SqliteStore, StoreError};

/// One app metric value as the job printed it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricPoint {
    pub seq: i64,
    pub time: f64,
    pub phase: String,
    pub name: String,
    pub value: f64,
}

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

impl SqliteStore {
    /// The job samples of `run` after sequence number `after`, oldest first, at most `limit`:
    /// (seq, point).
    pub fn samples_after(
        &self,
        run: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, SeriesPoint)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {POINT_COLUMNS} FROM samples WHERE run_id = ?1 AND seq > ?2 AND scope = 'job' ORDER BY seq LIMIT ?3"
        ))?;
        let rows = stmt
            .query_map(params![run, after, limit as i64], point)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The latest job sample of `run`.
    pub fn latest_sample(&self, run: &str) -> Result<Option<(i64, SeriesPoint)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {POINT_COLUMNS} FROM samples WHERE run_id = ?1 AND scope = 'job' ORDER BY seq DESC LIMIT 1"
        ))?;
        Ok(stmt.query_row([run], point).optional()?)
    }

    /// The app metric values of `run` after sequence number `after`, oldest first.
    pub fn metrics_after(
        &self,
        run: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<MetricPoint>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
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
}
