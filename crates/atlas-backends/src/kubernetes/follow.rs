//! Following a run on the cluster: the Jobs' conditions and their pods' phases every half
//! second (one list call each), and each pod's log from the moment its container starts. An
//! array run as one Job per index gets its remaining Jobs created here, at most `%N` running
//! at a time. The agent writes its
//! records to the log as JSON lines (`--records-to-stdout`); they go into the run directory's
//! spool (an array task's into `tasks/N/spool.jsonl`), which `atlas run` follows as on every
//! other target. Any other log line goes to `container.log`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_spec::record::Record;
use futures_util::io::AsyncBufReadExt;
use futures_util::StreamExt;
use k8s_openapi::api::batch::v1::Job as K8sJob;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};

use super::connect::Cluster;
use super::objects::RUN_LABEL;
use crate::{Figures, JobEnd};

/// How often the Job and its pods are read.
const POLL: Duration = Duration::from_millis(500);
/// How long the API server may stay unreachable before the run is given up.
const LOST_AFTER: Duration = Duration::from_secs(60);
/// How long a node running one of the run's pods may stay not Ready before the run is given
/// up (after the node controller's own 40 s grace, so about 70 s after the kubelet went).
const NODE_LOST_AFTER: Duration = Duration::from_secs(30);

/// How long a Job deleted for a window may take to appear again after its wake.
const REAPPEAR: Duration = Duration::from_secs(60);

/// How long the logs may take to drain once the Job has ended.
const DRAIN: Duration = Duration::from_secs(20);

/// What the follower tells the backend.
#[derive(Default)]
pub(crate) struct Shared {
    pub end: Mutex<Option<JobEnd>>,
    pub figures: Mutex<Figures>,
    /// Why a pod is not running yet (unschedulable, image pull), the latest said.
    pub note: Mutex<Option<String>>,
    /// Set by `cancel`: a Job that disappears was deleted by us, and no more are created.
    pub cancelled: AtomicBool,
    /// The Jobs created so far (what `cancel` deletes).
    pub created: Mutex<Vec<String>>,
}

/// The Jobs of one run still to be created, and how many may run at once.
pub(crate) struct Pending {
    pub jobs: VecDeque<K8sJob>,
    pub max_parallel: Option<u32>,
    /// How long the run may wait for its first pod to start (unschedulable, image not
    /// pulled) before its Jobs are deleted and it fails with Kubernetes' reason.
    pub start_limit: Duration,
}

/// The run's control file here (`atlas windows` writes it): its word, and how long ago.
fn control(run_dir: &Path) -> Option<(String, Duration)> {
    let path = atlas_spec::RunDir::new(run_dir).control();
    let ago = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()?
        .elapsed()
        .unwrap_or_default();
    let word = std::fs::read_to_string(&path).ok()?;
    Some((word.trim().to_string(), ago))
}

/// Whether the run, frozen, was given back for a window: its control file says `release`
/// until the wake.
fn given_back(run_dir: &Path) -> bool {
    control(run_dir).is_some_and(|(word, _)| word == "release")
}

/// Whether the run was woken less than a minute ago: the Job deleted for its window may not be
/// there yet.
fn just_woken(run_dir: &Path) -> bool {
    control(run_dir).is_some_and(|(word, ago)| word == "wake" && ago < REAPPEAR)
}

/// Where one run's records and other output go.
#[derive(Clone)]
struct Sink {
    run_id: String,
    run_dir: PathBuf,
    /// The last seq written per record run: a log followed again after a broken stream starts
    /// from its beginning, and nothing is written twice.
    seen: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl Sink {
    /// The spool a record belongs to: the run's, or an array task's (`RUN-tN`).
    fn spool_for(&self, record_run: &str) -> Option<PathBuf> {
        let dir = atlas_spec::RunDir::new(&self.run_dir);
        if record_run == self.run_id {
            return Some(dir.spool());
        }
        let task = record_run.strip_prefix(&self.run_id)?.strip_prefix("-t")?;
        let index = task.parse::<u32>().ok()?;
        (atlas_spec::task_run_id(&self.run_id, index) == record_run)
            .then(|| dir.task(index).spool())
    }

    /// Routes one log line: a record to its spool, anything else to container.log (unless
    /// `records_only`: a second reading of a log).
    fn line(&self, pod: &str, line: &str, records_only: bool) {
        if let Ok(record) = Record::parse_line(line.as_bytes()) {
            if let Some(spool) = self.spool_for(&record.run) {
                let mut seen = self.seen.lock().expect("not poisoned");
                let last = seen.entry(record.run.clone()).or_insert(0);
                if record.seq > *last {
                    *last = record.seq;
                    append(&spool, line);
                }
                return;
            }
        }
        if records_only {
            return;
        }
        append(
            &self.run_dir.join("container.log"),
            &format!("{pod}: {line}"),
        );
    }
}

fn append(path: &Path, line: &str) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        let _ = file.write_all(&bytes);
    }
}

fn seconds(time: &Time) -> f64 {
    time.0.as_millisecond() as f64 / 1000.0
}

/// When the pod was created, scheduled, and its first container started (Unix seconds).
fn pod_times(pod: &Pod) -> (Option<f64>, Option<f64>, Option<f64>) {
    let created = pod.metadata.creation_timestamp.as_ref().map(seconds);
    let status = pod.status.as_ref();
    let scheduled = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| {
            c.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "True")
        })
        .and_then(|c| c.last_transition_time.as_ref())
        .map(seconds);
    let state = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref());
    let started = state.and_then(|s| {
        s.running
            .as_ref()
            .and_then(|r| r.started_at.as_ref())
            .or_else(|| s.terminated.as_ref().and_then(|t| t.started_at.as_ref()))
            .map(seconds)
    });
    (created, scheduled, started)
}

/// A node of the run's running pods that is not Ready: its name and what its Ready condition
/// says.
async fn node_not_ready(cluster: &Cluster, pods: &[Pod]) -> Option<(String, String)> {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let mut names: Vec<&str> = pods
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|p| p.spec.as_ref()?.node_name.as_deref())
        .collect();
    names.dedup();
    for name in names {
        let Ok(node) = nodes.get(name).await else {
            continue;
        };
        let ready = node
            .status
            .and_then(|s| s.conditions)
            .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"));
        if let Some(ready) = ready.filter(|r| r.status != "True") {
            let why = format!(
                "{}: {}",
                ready.reason.unwrap_or_default(),
                ready.message.unwrap_or_default()
            );
            return Some((name.to_string(), why));
        }
    }
    None
}

/// The newest warning event about the run's pods (`FailedMount: …`): why a pod that has been
/// scheduled still does not start, when its status does not say.
async fn warning_event(cluster: &Cluster, run_id: &str) -> Option<String> {
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let list = events
        .list(&ListParams::default().fields("type=Warning,involvedObject.kind=Pod"))
        .await
        .ok()?;
    let prefix = format!("atlas-{run_id}");
    list.items
        .into_iter()
        .filter(|e| {
            e.involved_object
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .max_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0))
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default().trim()
            )
        })
}

/// Why the pod waits, when Kubernetes says (unschedulable, image pull back-off, …).
fn waiting_reason(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let unschedulable = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.is_some());
    if let Some(c) = unschedulable {
        return Some(format!(
            "{}: {}",
            c.reason.as_deref().unwrap_or_default(),
            c.message.as_deref().unwrap_or_default()
        ));
    }
    let waiting = status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .find(|w| w.reason.as_deref() != Some("ContainerCreating"))?;
    Some(format!(
        "{}: {}",
        waiting.reason.as_deref().unwrap_or("waiting"),
        waiting.message.as_deref().unwrap_or_default()
    ))
}

/// How all the run's Jobs ended: `Complete` when every one did, else the failures counted.
fn jobs_end(ends: &[JobEnd]) -> JobEnd {
    let failed: Vec<&JobEnd> = ends.iter().filter(|e| e.state != "Complete").collect();
    match (failed.first(), ends.len()) {
        (None, _) => JobEnd {
            state: "Complete".into(),
        },
        (Some(first), 1) => (*first).clone(),
        (Some(first), total) => JobEnd {
            state: format!(
                "{} of {total} Jobs failed; the first: {}",
                failed.len(),
                first.state
            ),
        },
    }
}

/// Creates pending Jobs while fewer than the limit run; an error ends the run's creating.
async fn create_pending(
    jobs: &Api<K8sJob>,
    pending: &mut Pending,
    running: usize,
    shared: &Shared,
) -> Result<(), String> {
    let mut running = running;
    while pending.max_parallel.is_none_or(|p| running < p as usize) {
        if shared.cancelled.load(Ordering::SeqCst) {
            pending.jobs.clear();
        }
        let Some(next) = pending.jobs.pop_front() else {
            return Ok(());
        };
        let name = next.metadata.name.clone().unwrap_or_default();
        jobs.create(&PostParams::default(), &next)
            .await
            .map_err(|e| format!("Job {name} could not be created: {e}"))?;
        shared
            .created
            .lock()
            .expect("not poisoned")
            .push(name.clone());
        if shared.cancelled.load(Ordering::SeqCst) {
            let _ = jobs.delete(&name, &DeleteParams::foreground()).await;
        }
        running += 1;
    }
    Ok(())
}

/// How the Job ended, from its conditions.
fn job_end(job: &K8sJob) -> Option<JobEnd> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some(JobEnd {
                state: "Complete".into(),
            }),
            "Failed" => Some(JobEnd {
                state: format!(
                    "Failed ({}: {})",
                    c.reason.as_deref().unwrap_or_default(),
                    c.message.as_deref().unwrap_or_default()
                ),
            }),
            _ => None,
        })
}

/// Follows one pod's log until its container ends (or the stream breaks); with `follow` off,
/// reads the whole log once.
async fn follow_log(pods: Api<Pod>, pod: String, sink: Sink, follow: bool) {
    let params = LogParams {
        follow,
        container: Some("main".into()),
        ..Default::default()
    };
    let Ok(stream) = pods.log_stream(&pod, &params).await else {
        return;
    };
    let mut lines = stream.lines();
    while let Some(Ok(line)) = lines.next().await {
        sink.line(&pod, &line, !follow);
    }
}

/// Follows the run's Jobs until all have ended (creating the pending ones as room allows);
/// then drains the logs and says how they ended.
pub(crate) async fn follow(
    cluster: Cluster,
    mut pending: Pending,
    run_id: String,
    run_dir: PathBuf,
    shared: Arc<Shared>,
) {
    let jobs: Api<K8sJob> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let sink = Sink {
        run_id,
        run_dir,
        seen: Default::default(),
    };
    let selector = ListParams::default().labels(&format!("{RUN_LABEL}={}", sink.run_id));
    let mut followed: BTreeMap<String, tokio::task::JoinHandle<()>> = BTreeMap::new();
    let mut timed = BTreeSet::new();
    let mut failing_since: Option<std::time::Instant> = None;
    let mut refused: Option<String> = None;
    let waiting_since = std::time::Instant::now();
    let mut any_started = false;
    let mut node_lost_since: Option<std::time::Instant> = None;
    let end = loop {
        tokio::time::sleep(POLL).await;
        let listed = match jobs.list(&selector).await {
            Ok(list) => {
                failing_since = None;
                list.items
            }
            Err(e) => {
                let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > LOST_AFTER {
                    break JobEnd {
                        state: format!(
                            "lost ({})",
                            cluster.unreachable(super::connect::with_causes(&e))
                        ),
                    };
                }
                continue;
            }
        };
        // One list of the run's pods per poll: their logs, times and nodes all come from it.
        let listed_pods = pods.list(&selector).await.map(|l| l.items);
        if let Ok(list) = &listed_pods {
            for pod in list {
                let Some(pod_name) = pod.metadata.name.clone() else {
                    continue;
                };
                let (created, scheduled, started) = pod_times(pod);
                any_started |= started.is_some();
                if started.is_none() {
                    if let Some(reason) = waiting_reason(pod) {
                        *shared.note.lock().expect("not poisoned") = Some(reason);
                    }
                }
                if let (Some(created), Some(scheduled), Some(started)) =
                    (created, scheduled, started)
                {
                    if timed.is_empty() {
                        let mut figures = shared.figures.lock().expect("not poisoned");
                        figures.insert("queueWaitSeconds".into(), (scheduled - created).max(0.0));
                        figures.insert("podStartSeconds".into(), (started - scheduled).max(0.0));
                    }
                    timed.insert(pod_name.clone());
                }
                let running = followed.get(&pod_name).is_some_and(|h| !h.is_finished());
                let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                let ended = matches!(phase, Some("Succeeded" | "Failed"));
                // Follow a started container's log; again after a broken stream while it runs.
                if started.is_some() && !running && (!followed.contains_key(&pod_name) || !ended) {
                    let task = tokio::spawn(follow_log(
                        pods.clone(),
                        pod_name.clone(),
                        sink.clone(),
                        true,
                    ));
                    followed.insert(pod_name, task);
                }
            }
        }
        let listed_pods = listed_pods.unwrap_or_default();
        match node_not_ready(&cluster, &listed_pods).await {
            None => node_lost_since = None,
            Some((node, why)) => {
                let since = *node_lost_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > NODE_LOST_AFTER {
                    pending.jobs.clear();
                    let created = shared.created.lock().expect("not poisoned").clone();
                    for name in created {
                        let _ = jobs.delete(&name, &DeleteParams::background()).await;
                    }
                    break JobEnd {
                        state: format!(
                            "lost (node {node} is not Ready: {why}; the run's Jobs were deleted)"
                        ),
                    };
                }
            }
        }
        if !any_started && waiting_since.elapsed() > pending.start_limit {
            pending.jobs.clear();
            let noted = shared.note.lock().expect("not poisoned").clone();
            let why = match noted {
                Some(why) => Some(why),
                None => warning_event(&cluster, &sink.run_id).await,
            };
            let created = shared.created.lock().expect("not poisoned").clone();
            for name in created {
                let _ = jobs.delete(&name, &DeleteParams::foreground()).await;
            }
            break JobEnd {
                state: format!(
                    "Failed (no pod started within {} s; {}; its Jobs were deleted)",
                    pending.start_limit.as_secs(),
                    why.unwrap_or_else(|| "Kubernetes gave no reason".into())
                ),
            };
        }
        if !shared.cancelled.load(Ordering::SeqCst) && given_back(&sink.run_dir) {
            // Frozen and given back (`atlas windows`): its Job ends or goes away, and is
            // resumed or created again at the wake.
            continue;
        }
        let created = shared.created.lock().expect("not poisoned").clone();
        let by_name: BTreeMap<&str, &K8sJob> = listed
            .iter()
            .filter_map(|j| Some((j.metadata.name.as_deref()?, j)))
            .collect();
        if created
            .iter()
            .any(|name| !by_name.contains_key(name.as_str()))
        {
            if !shared.cancelled.load(Ordering::SeqCst) && just_woken(&sink.run_dir) {
                continue;
            }
            pending.jobs.clear();
            break JobEnd {
                state: if shared.cancelled.load(Ordering::SeqCst) {
                    "CANCELLED (Job deleted)".into()
                } else {
                    "Job deleted".into()
                },
            };
        }
        let ends: Vec<JobEnd> = created
            .iter()
            .filter_map(|name| job_end(by_name[name.as_str()]))
            .collect();
        if let Err(why) =
            create_pending(&jobs, &mut pending, created.len() - ends.len(), &shared).await
        {
            pending.jobs.clear();
            refused = Some(why);
        }
        let created = shared.created.lock().expect("not poisoned").len();
        if pending.jobs.is_empty() && ends.len() == created {
            break match refused {
                Some(why) => JobEnd {
                    state: format!("Failed ({why})"),
                },
                None => jobs_end(&ends),
            };
        }
    };
    // A stream that broke after its pod ended is not followed again, so each pod's whole log
    // is read once more at the end; records already routed are skipped by their seq.
    for (pod, task) in followed {
        let _ = tokio::time::timeout(DRAIN, task).await;
        let last = follow_log(pods.clone(), pod, sink.clone(), false);
        let _ = tokio::time::timeout(DRAIN, last).await;
    }
    *shared.end.lock().expect("not poisoned") = Some(end);
}
