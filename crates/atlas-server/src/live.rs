//! `GET /api/v1/runs/{id}/events`: server-sent events for the run page, read from the store
//! every 250 ms (whoever wrote them: `atlas run` following a spool, or an agent's push):
//!
//! - `run`: the run and its phases, whenever they changed;
//! - `samples`: the job samples after the last one sent (`[{seq, time, cpuSeconds, rssBytes,
//!   gpuPercent, phase}]`);
//! - `metrics`: the app metric values after the last one sent;
//! - `end`: once the run has ended and everything was sent; the stream then closes.
//!
//! `?after=SEQ` starts after a sample the page already has.

use std::convert::Infallible;
use std::time::Duration;

use atlas_store::Store;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;

use crate::api::{owned_run, Point};
use crate::auth::User;
use crate::error::ApiError;
use crate::AppState;

/// How often the store is read for news.
const TICK: Duration = Duration::from_millis(250);

#[derive(Deserialize)]
pub struct EventsQuery {
    after: Option<i64>,
}

struct Cursor {
    state: AppState,
    run: String,
    samples_after: i64,
    metrics_after: i64,
    last_run: String,
    ended: bool,
    first: bool,
}

fn ended(status: &str) -> bool {
    !matches!(status, "submitted" | "running")
}

/// What changed since the last tick, as events.
async fn tick(c: &mut Cursor) -> Result<Vec<Event>, ApiError> {
    let (run, samples_after, metrics_after) = (c.run.clone(), c.samples_after, c.metrics_after);
    let (detail, samples, metrics) = c
        .state
        .read(move |s| {
            Ok((
                s.run(&run)?,
                s.samples_after(&run, samples_after, 2000)?,
                s.metrics_after(&run, metrics_after, 2000)?,
            ))
        })
        .await?;
    let mut events = Vec::new();
    let summary = serde_json::to_string(&detail).unwrap_or_default();
    if summary != c.last_run {
        events.push(Event::default().event("run").data(&summary));
        c.last_run = summary;
    }
    let got_samples = !samples.is_empty();
    if let Some((seq, _)) = samples.last() {
        c.samples_after = *seq;
        let points: Vec<Point> = samples
            .into_iter()
            .map(|(seq, point)| Point { seq, point })
            .collect();
        events.push(
            Event::default()
                .event("samples")
                .data(json!(points).to_string()),
        );
    }
    let got_metrics = !metrics.is_empty();
    if let Some(last) = metrics.last() {
        c.metrics_after = last.seq;
        events.push(
            Event::default()
                .event("metrics")
                .data(json!(metrics).to_string()),
        );
    }
    if ended(&detail.run.status) && !got_samples && !got_metrics {
        events.push(Event::default().event("end").data(&detail.run.status));
        c.ended = true;
    }
    Ok(events)
}

/// `GET /api/v1/runs/{id}/events`.
pub async fn events(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let run = owned_run(&state, &user, id).await?.run.id;
    let cursor = Cursor {
        state,
        run,
        samples_after: q.after.unwrap_or(0),
        metrics_after: 0,
        last_run: String::new(),
        ended: false,
        first: true,
    };
    let stream = stream::unfold(cursor, |mut c| async move {
        if c.ended {
            return None;
        }
        if !c.first {
            tokio::time::sleep(TICK).await;
        }
        c.first = false;
        let events = match tick(&mut c).await {
            Ok(events) => events,
            Err(e) => {
                c.ended = true;
                vec![Event::default().event("error").data(e.message)]
            }
        };
        Some((stream::iter(events.into_iter().map(Ok)), c))
    })
    .flatten();
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
