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
//!
//! Each stream reads the store four times a second, so they are bounded: at most
//! [`MAX_STREAMS_PER_RUN`] on one run, [`MAX_STREAMS_PER_USER`] for one user and [`crate::Config::max_event_streams`] (default
//! [`MAX_STREAMS`]) in all; beyond that 503 with a JSON error. A stream's slot is freed when
//! its client is gone (noticed at the next write: an event, or the keep-alive comment every
//! 15 s). Every 5 s a stream asks again whether its token or session still sees the run: one
//! revoked, logged out or taken out of the run's tenant gets an `error` event and the end.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;

use crate::api::{owned_run, Point};
use crate::auth::{credential_of, Credential, User};
use crate::error::ApiError;
use crate::AppState;

/// How often the store is read for news.
const TICK: Duration = Duration::from_millis(250);

/// Event streams on one run at once (a person's tabs, a few colleagues).
pub const MAX_STREAMS_PER_RUN: usize = 16;
/// Event streams at once in all, by default.
pub const MAX_STREAMS: usize = 256;
/// Event streams one user may hold at once (so one user cannot take every slot).
pub const MAX_STREAMS_PER_USER: usize = 32;

/// The open event streams: per run, and in all.
#[derive(Default)]
pub(crate) struct Streams {
    per_run: HashMap<String, usize>,
    per_user: HashMap<String, usize>,
    total: usize,
}

/// A stream's place in [`Streams`], given back when the stream is dropped.
struct Slot {
    state: AppState,
    run: String,
    user: String,
}

impl Slot {
    fn take(state: &AppState, run: &str, user: &str) -> Result<Slot, ApiError> {
        let mut streams = state.inner.streams.lock().expect("not poisoned");
        let limit = state.config().max_event_streams;
        let busy = |message: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message);
        if streams.total >= limit {
            return Err(busy(format!(
                "the server has {limit} event streams open, its limit; try again later"
            )));
        }
        if streams.per_user.get(user).copied().unwrap_or(0) >= MAX_STREAMS_PER_USER {
            return Err(busy(format!(
                "you have {MAX_STREAMS_PER_USER} event streams open, the limit per user; close a page"
            )));
        }
        let on_run = streams.per_run.entry(run.to_string()).or_default();
        if *on_run >= MAX_STREAMS_PER_RUN {
            return Err(busy(format!(
                "this run has {MAX_STREAMS_PER_RUN} event streams open, the limit per run; close a page that shows it"
            )));
        }
        *on_run += 1;
        *streams.per_user.entry(user.to_string()).or_default() += 1;
        streams.total += 1;
        Ok(Slot {
            state: state.clone(),
            run: run.to_string(),
            user: user.to_string(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut streams = self.state.inner.streams.lock().expect("not poisoned");
        streams.total -= 1;
        if let Some(n) = streams.per_run.get_mut(&self.run) {
            *n -= 1;
            if *n == 0 {
                streams.per_run.remove(&self.run);
            }
        }
        if let Some(n) = streams.per_user.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                streams.per_user.remove(&self.user);
            }
        }
    }
}

#[derive(Deserialize)]
pub struct EventsQuery {
    after: Option<i64>,
}

struct Cursor {
    _slot: Slot,
    state: AppState,
    run: String,
    /// What the stream was opened with, asked again every [`RECHECK`]: a token revoked, a
    /// session ended or a member taken out of the run's tenant ends the stream.
    credential: Option<Credential>,
    checked: std::time::Instant,
    samples_after: i64,
    metrics_after: i64,
    last_run: String,
    ended: bool,
    first: bool,
}

/// How often an open stream checks that its caller may still see the run.
const RECHECK: Duration = Duration::from_secs(5);

/// Whether the stream's credential still stands for someone who sees the run.
async fn still_allowed(c: &Cursor) -> Result<bool, ApiError> {
    let Some(user) = User::from_credential(c.credential.clone(), &c.state).await? else {
        return Ok(false);
    };
    let (principal, run) = (user.principal(), c.run.clone());
    let seen = c
        .state
        .read(move |s| s.visible_run_id(&principal, &run))
        .await?;
    Ok(seen.as_deref() == Some(c.run.as_str()))
}

/// What changed since the last tick, as events.
async fn tick(c: &mut Cursor) -> Result<Vec<Event>, ApiError> {
    if c.checked.elapsed() >= RECHECK {
        if !still_allowed(c).await? {
            c.ended = true;
            let why = "your access to this run has ended (token revoked, session over, or no longer in its tenant)";
            return Ok(vec![Event::default().event("error").data(why)]);
        }
        c.checked = std::time::Instant::now();
    }
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
    if detail.run.status.is_over() && !got_samples && !got_metrics {
        events.push(
            Event::default()
                .event("end")
                .data(detail.run.status.as_str()),
        );
        c.ended = true;
    }
    Ok(events)
}

/// `GET /api/v1/runs/{id}/events`.
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: User,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let run = owned_run(&state, &user, id).await?.run.id;
    let cursor = Cursor {
        _slot: Slot::take(&state, &run, &user.0)?,
        state,
        run,
        credential: credential_of(&headers),
        checked: std::time::Instant::now(),
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
