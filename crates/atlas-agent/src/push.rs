//! Pushing records to `atlas serve` while the job runs (`ATLAS_SERVER` and `ATLAS_TOKEN` set).
//!
//! The spool stays the record of truth; the push is a copy for the live dashboard. A thread
//! sends what the spool wrote, in order, in batches of at most [`BATCH`] lines, as soon as the
//! spool flushes them. When the server cannot be reached (or answers 5xx, or 404 because the
//! run is not registered yet) the batch stays at the head of the backlog and is sent again after
//! a back-off (0.5 s doubling to 10 s); the server's ingest is idempotent, so a batch whose
//! answer was lost adds nothing the second time. A refusal that cannot heal (401, 403, 400,
//! 413) stops the pushing and is handed to the caller as an [`AgentWarning`]. At the end the agent waits up to
//! [`DRAIN`] for the backlog; what is left is in the spool (`atlas ingest` loads it).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::warning::{AgentWarning, Warnings};

/// Where a job agent's records go.
pub const RECORDS: &str = "/api/v1/records";
/// Where a node agent's samples go.
pub const NODE_SAMPLES: &str = "/api/v1/nodes/samples";
/// Where the storage-service operator's status goes.
pub const SERVICES: &str = "/api/v1/services/status";

/// What a pusher sends, and so how it treats the server's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// A job's records: the spool keeps them all, a 404 is a run not registered yet (retried),
    /// any other refusal stops the pushing.
    Records,
    /// A node agent's samples, with no spool behind them: at most `max_backlog` are kept while
    /// the server is away (the oldest go first); a batch the server refuses (400, 413) is
    /// dropped and the next ones still go; a wrong address or token (401, 403, 404, 405) stops
    /// the pushing; failing to reach the server is said once per outage.
    NodeSamples { max_backlog: usize },
    /// The storage-service operator's status of each service: treated as node samples are.
    Services { max_backlog: usize },
}

impl Lines {
    /// What the lines are, in a warning: one, then many.
    fn what(self) -> (&'static str, &'static str) {
        match self {
            Lines::Records => ("record(s)", "records"),
            Lines::NodeSamples { .. } => ("node sample(s)", "node samples"),
            Lines::Services { .. } => ("service status(es)", "services' status"),
        }
    }
}

/// Lines per POST at most.
pub const BATCH: usize = 500;
/// How long the agent waits at its end for the backlog to go out.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Where and as whom to push.
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// The server's base URL (`http://127.0.0.1:8080`).
    pub server: String,
    pub token: String,
}

impl PushTarget {
    /// From `ATLAS_SERVER` and `ATLAS_TOKEN`, when both are set.
    pub fn from_env() -> Option<PushTarget> {
        let server = std::env::var("ATLAS_SERVER")
            .ok()
            .filter(|s| !s.is_empty())?;
        let token = std::env::var("ATLAS_TOKEN")
            .ok()
            .filter(|s| !s.is_empty())?;
        Some(PushTarget {
            server: server.trim_end_matches('/').to_string(),
            token,
        })
    }
}

/// The spool's mirror that pushes: complete lines go to the pushing thread at each flush.
pub struct Pusher {
    pending: Vec<u8>,
    tx: Option<Sender<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl Pusher {
    /// Starts the pushing thread for a job's records; a refusal that ends the pushing goes to
    /// `warnings`. The backlog is unbounded: the spool holds the same lines.
    pub fn start(target: PushTarget, warnings: Warnings) -> Pusher {
        Pusher::start_for(target, Lines::Records, warnings)
    }

    /// Starts a pushing thread for `lines`.
    pub fn start_for(target: PushTarget, lines: Lines, warnings: Warnings) -> Pusher {
        let (path, max_backlog) = match lines {
            Lines::Records => (RECORDS, None),
            Lines::NodeSamples { max_backlog } => (NODE_SAMPLES, Some(max_backlog)),
            Lines::Services { max_backlog } => (SERVICES, Some(max_backlog)),
        };
        let (tx, rx) = channel();
        let thread = std::thread::Builder::new()
            .name("atlas-push".into())
            .spawn(move || {
                let route = Route {
                    target,
                    path,
                    max_backlog,
                    lines,
                };
                push_loop(&route, &rx, &warnings)
            })
            .ok();
        Pusher {
            pending: Vec::new(),
            tx: Some(tx),
            thread,
        }
    }
}

impl Write for Pusher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') {
            let lines: Vec<u8> = self.pending.drain(..=end).collect();
            if let Some(tx) = &self.tx {
                let _ = tx.send(lines);
            }
        }
        Ok(())
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        let _ = self.flush();
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a POST's answer means for the batch.
enum Sent {
    Done,
    Retry(String),
    GiveUp(String),
    /// Refused for what it holds: dropped, the next batch still goes.
    Drop(String),
}

/// Where a pushing thread posts, and how much it may hold.
struct Route {
    target: PushTarget,
    path: &'static str,
    max_backlog: Option<usize>,
    lines: Lines,
}

fn post(agent: &ureq::Agent, route: &Route, body: &[u8]) -> Sent {
    let target = &route.target;
    let url = format!("{}{}", target.server, route.path);
    match agent
        .post(&url)
        .header("Authorization", &format!("Bearer {}", target.token))
        .content_type("application/x-ndjson")
        .send(body)
    {
        Ok(_) => Sent::Done,
        Err(ureq::Error::StatusCode(code)) => {
            let why = format!("HTTP {code}");
            match (route.lines, code) {
                (_, c) if c >= 500 || c == 429 => Sent::Retry(why),
                (Lines::Records, 404) => Sent::Retry(why),
                (Lines::NodeSamples { .. } | Lines::Services { .. }, 400 | 413) => Sent::Drop(why),
                _ => Sent::GiveUp(why),
            }
        }
        Err(e) => Sent::Retry(e.to_string()),
    }
}

fn push_loop(route: &Route, rx: &Receiver<Vec<u8>>, warnings: &Warnings) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut backlog: VecDeque<Vec<u8>> = VecDeque::new();
    let mut backoff = Duration::from_millis(500);
    let mut next_try = Instant::now();
    let mut closed_at: Option<Instant> = None;
    let mut failing = false;
    loop {
        let wait = if backlog.is_empty() || closed_at.is_some() {
            Duration::from_millis(200)
        } else {
            next_try
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        };
        match rx.recv_timeout(wait) {
            Ok(lines) => {
                backlog.extend(lines.split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec));
                while let Ok(more) = rx.try_recv() {
                    backlog.extend(more.split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec));
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                closed_at.get_or_insert_with(Instant::now);
            }
        }
        if let Some(max) = route.max_backlog {
            let over = backlog.len().saturating_sub(max);
            backlog.drain(..over);
        }
        if closed_at.is_some_and(|at| backlog.is_empty() || at.elapsed() > DRAIN) {
            return;
        }
        if backlog.is_empty() || Instant::now() < next_try {
            continue;
        }
        let n = backlog.len().min(BATCH);
        let body: Vec<u8> = backlog.iter().take(n).flatten().copied().collect();
        match post(&agent, route, &body) {
            Sent::Done => {
                backlog.drain(..n);
                backoff = Duration::from_millis(500);
                next_try = Instant::now();
                failing = false;
            }
            Sent::Retry(why) => {
                if !failing && route.lines != Lines::Records {
                    warnings(AgentWarning::PushFailing {
                        server: route.target.server.clone(),
                        why,
                    });
                }
                failing = true;
                next_try = Instant::now() + backoff;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            Sent::Drop(why) => {
                warnings(AgentWarning::SamplesDropped {
                    server: route.target.server.clone(),
                    count: n,
                    what: route.lines.what().0,
                    why,
                });
                backlog.drain(..n);
            }
            Sent::GiveUp(why) => {
                let server = route.target.server.clone();
                warnings(match route.lines {
                    Lines::Records => AgentWarning::PushRefused { server, why },
                    lines => AgentWarning::NodePushStopped {
                        server,
                        what: lines.what().1,
                        why,
                    },
                });
                // Keep the spool's writes from piling up here.
                while rx.recv().is_ok() {}
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// Answers one request with `status` after reading it whole.
    fn answer_once(listener: TcpListener, status: &'static str) -> JoinHandle<()> {
        answer(listener, vec![status])
    }

    /// Answers one request per status, in order, each after reading it whole.
    fn answer(listener: TcpListener, statuses: Vec<&'static str>) -> JoinHandle<()> {
        std::thread::spawn(move || {
            for status in statuses {
                reply(&listener, status);
            }
        })
    }

    fn reply(listener: &TcpListener, status: &str) {
        {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let lower = line.to_ascii_lowercase();
                if let Some(n) = lower.strip_prefix("content-length:") {
                    length = n.trim().parse().unwrap();
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let reply =
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            reader.get_mut().write_all(reply.as_bytes()).unwrap();
        }
    }

    #[test]
    fn a_refusal_goes_to_the_callers_warnings_not_to_stderr() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = format!("http://{}", listener.local_addr().unwrap());
        let answering = answer_once(listener, "401 Unauthorized");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let target = PushTarget {
            server: server.clone(),
            token: "t".into(),
        };
        let mut pusher = Pusher::start(target, Arc::new(move |w| sink.lock().unwrap().push(w)));
        pusher.write_all(b"{\"seq\":0}\n").unwrap();
        pusher.flush().unwrap();
        answering.join().unwrap();
        drop(pusher);
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            [AgentWarning::PushRefused {
                server,
                why: "HTTP 401".into()
            }]
        );
    }

    #[test]
    fn a_refused_batch_of_node_samples_is_dropped_and_the_next_one_still_goes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = format!("http://{}", listener.local_addr().unwrap());
        let answering = answer(listener, vec!["400 Bad Request", "200 OK"]);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let target = PushTarget {
            server: server.clone(),
            token: "t".into(),
        };
        let lines = Lines::NodeSamples { max_backlog: 10 };
        let mut pusher = Pusher::start_for(
            target,
            lines,
            Arc::new(move |w| sink.lock().unwrap().push(w)),
        );
        pusher.write_all(b"{\"bad\":1}\n").unwrap();
        pusher.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        pusher.write_all(b"{\"good\":1}\n").unwrap();
        pusher.flush().unwrap();
        answering.join().unwrap();
        drop(pusher);
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            [AgentWarning::SamplesDropped {
                server,
                count: 1,
                what: "node sample(s)",
                why: "HTTP 400".into()
            }],
            "dropped once, then the second batch was taken"
        );
    }
}
