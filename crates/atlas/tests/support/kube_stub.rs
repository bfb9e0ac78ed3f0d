//! A stand-in Kubernetes API server on 127.0.0.1 for the kubernetes backend's tests (no real
//! API server can run on these machines). It speaks the REST paths the backend uses, reads
//! every object into its k8s-openapi type (so a malformed one fails the test), and plays a
//! tiny kubelet: each Job's pods run the real `atlas agent` on this machine, with the pod's
//! env and args and the workflow from the ConfigMap, and their output is the pod log.
//! Deleting a Job sends SIGTERM to its pods; the Job is gone once they have ended.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use serde_json::{json, Value};

/// How the stub misbehaves.
#[derive(Default, Clone, Copy)]
pub struct Behaviour {
    /// The workflow's PersistentVolumeClaims exist already (POST gives 409).
    pub claims_exist: bool,
    /// Every Job exists already (POST gives 409).
    pub jobs_exist: bool,
}

/// One request as received: method, path with query, and the answer's status.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub status: u16,
}

#[derive(Default)]
struct PodSim {
    created: String,
    scheduled: Option<String>,
    started: Option<String>,
    exit: Option<i32>,
    pid: Option<u32>,
    log: Vec<u8>,
}

struct JobSim {
    job: Job,
    deleting: bool,
}

struct State {
    behaviour: Behaviour,
    requests: Vec<Request>,
    claims: BTreeMap<String, PersistentVolumeClaim>,
    config_maps: BTreeMap<String, ConfigMap>,
    jobs: BTreeMap<String, JobSim>,
    pods: BTreeMap<String, (String, PodSim)>,
    root: PathBuf,
}

/// The stand-in server; stops serving when dropped (its threads end with the test).
pub struct KubeStub {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

/// Now as RFC 3339 with a fraction, as the API server writes times.
fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

fn status(code: u16, reason: &str, message: String) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

impl KubeStub {
    /// Starts serving on a free port; pods work under `root`.
    pub fn start(root: &Path, behaviour: Behaviour) -> KubeStub {
        std::fs::create_dir_all(root).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            behaviour,
            requests: Vec::new(),
            claims: BTreeMap::new(),
            config_maps: BTreeMap::new(),
            jobs: BTreeMap::new(),
            pods: BTreeMap::new(),
            root: root.to_path_buf(),
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, state));
            }
        });
        KubeStub { port, state }
    }

    /// A kubeconfig naming this server as context `context`, written to `path`.
    pub fn write_kubeconfig(&self, path: &Path, context: &str) {
        write_kubeconfig(path, context, &format!("http://127.0.0.1:{}", self.port));
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The ConfigMaps created.
    pub fn config_maps(&self) -> Vec<ConfigMap> {
        self.state
            .lock()
            .unwrap()
            .config_maps
            .values()
            .cloned()
            .collect()
    }

    /// The Jobs created (deleted ones too).
    pub fn jobs(&self) -> Vec<Job> {
        let state = self.state.lock().unwrap();
        state.jobs.values().map(|j| j.job.clone()).collect()
    }
}

impl Drop for KubeStub {
    fn drop(&mut self) {
        let root = self.state.lock().map(|s| s.root.clone());
        if let Ok(root) = root {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

/// A kubeconfig with one cluster, user and context `context` for `server`.
pub fn write_kubeconfig(path: &Path, context: &str, server: &str) {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: stub\n  cluster:\n    server: {server}\n\
         users:\n- name: tester\n  user:\n    token: not-a-secret\n\
         contexts:\n- name: {context}\n  context:\n    cluster: stub\n    user: tester\n    namespace: atlas-test\n\
         current-context: {context}\n"
    );
    std::fs::write(path, text).unwrap();
}

fn read_request(stream: &mut BufReader<TcpStream>) -> Option<(String, String, String)> {
    let mut line = String::new();
    stream.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let mut length = 0;
    loop {
        let mut header = String::new();
        stream.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).ok()?;
    Some((method, path, String::from_utf8_lossy(&body).into_owned()))
}

fn respond(stream: &mut TcpStream, code: u16, body: &Value) {
    let body = body.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    // One request per connection: every answer says `Connection: close`.
    let Some((method, path, body)) = read_request(&mut reader) else {
        return;
    };
    let (route, query) = path.split_once('?').unwrap_or((&path, ""));
    let parts: Vec<&str> = route.trim_matches('/').split('/').collect();
    if method == "GET" && parts.len() == 7 && parts[6] == "log" {
        record(&state, &method, &path, 200);
        stream_log(&mut stream, &state, parts[5], query.contains("follow=true"));
        return;
    }
    let (code, answer) = handle(&state, &method, &parts, &body);
    record(&state, &method, &path, code);
    respond(&mut stream, code, &answer);
}

fn record(state: &Arc<Mutex<State>>, method: &str, path: &str, status: u16) {
    state.lock().unwrap().requests.push(Request {
        method: method.into(),
        path: path.into(),
        status,
    });
}

fn handle(state: &Arc<Mutex<State>>, method: &str, parts: &[&str], body: &str) -> (u16, Value) {
    let mut s = state.lock().unwrap();
    match (method, parts) {
        ("GET", ["version"]) => (
            200,
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0+atlas-stub",
                   "gitCommit": "0", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                   "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
        ),
        ("POST", ["api", "v1", "namespaces", _, "persistentvolumeclaims"]) => {
            let claim: PersistentVolumeClaim = serde_json::from_str(body).expect("a PVC");
            let name = claim.metadata.name.clone().unwrap();
            if s.behaviour.claims_exist || s.claims.contains_key(&name) {
                return status(
                    409,
                    "AlreadyExists",
                    format!("persistentvolumeclaims \"{name}\" already exists"),
                );
            }
            s.claims.insert(name, claim.clone());
            (201, serde_json::to_value(claim).unwrap())
        }
        ("POST", ["api", "v1", "namespaces", _, "configmaps"]) => {
            let map: ConfigMap = serde_json::from_str(body).expect("a ConfigMap");
            let name = map.metadata.name.clone().unwrap();
            s.config_maps.insert(name, map.clone());
            (201, serde_json::to_value(map).unwrap())
        }
        ("POST", ["apis", "batch", "v1", "namespaces", _, "jobs"]) => {
            let mut job: Job = serde_json::from_str(body).expect("a Job");
            let name = job.metadata.name.clone().unwrap();
            if s.behaviour.jobs_exist || s.jobs.contains_key(&name) {
                return status(
                    409,
                    "AlreadyExists",
                    format!("jobs.batch \"{name}\" already exists"),
                );
            }
            job.metadata.uid = Some(format!("uid-{name}"));
            s.jobs.insert(
                name.clone(),
                JobSim {
                    job: job.clone(),
                    deleting: false,
                },
            );
            let state = state.clone();
            std::thread::spawn(move || kubelet(state, name));
            (201, serde_json::to_value(job).unwrap())
        }
        ("GET", ["apis", "batch", "v1", "namespaces", _, "jobs"]) => {
            // Every job of the stub's one run: the backend lists them by the run's label.
            let items: Vec<Value> = s
                .jobs
                .iter()
                .filter(|(name, sim)| !(sim.deleting && job_pods_done(&s, name)))
                .map(|(_, sim)| serde_json::to_value(&sim.job).unwrap())
                .collect();
            (
                200,
                json!({"apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": items}),
            )
        }
        ("GET", ["apis", "batch", "v1", "namespaces", _, "jobs", name]) => {
            match s.jobs.get(*name) {
                Some(sim) if !(sim.deleting && job_pods_done(&s, name)) => {
                    (200, serde_json::to_value(&sim.job).unwrap())
                }
                _ => status(404, "NotFound", format!("jobs.batch \"{name}\" not found")),
            }
        }
        ("DELETE", ["apis", "batch", "v1", "namespaces", _, "jobs", name]) => {
            let Some(sim) = s.jobs.get_mut(*name) else {
                return status(404, "NotFound", format!("jobs.batch \"{name}\" not found"));
            };
            sim.deleting = true;
            let answer = serde_json::to_value(&sim.job).unwrap();
            for (job, pod) in s.pods.values() {
                if job == name {
                    if let (Some(pid), None) = (pod.pid, pod.exit) {
                        // SAFETY: kill(2) on a process this stub started.
                        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
                    }
                }
            }
            (200, answer)
        }
        ("GET", ["api", "v1", "namespaces", _, "pods"]) => {
            let items: Vec<Value> = s
                .pods
                .iter()
                .map(|(name, (job, pod))| pod_json(&s, name, job, pod))
                .collect();
            (
                200,
                json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}),
            )
        }
        _ => status(
            404,
            "NotFound",
            format!("the stub has no {method} {}", parts.join("/")),
        ),
    }
}

fn job_pods_done(s: &State, job: &str) -> bool {
    s.pods
        .values()
        .filter(|(j, _)| j == job)
        .all(|(_, p)| p.exit.is_some() || p.started.is_none())
}

fn pod_json(s: &State, name: &str, job: &str, pod: &PodSim) -> Value {
    let labels = s.jobs[job]
        .job
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone();
    let mut conditions = Vec::new();
    if let Some(at) = &pod.scheduled {
        conditions
            .push(json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": at}));
    }
    let state = match (&pod.started, pod.exit) {
        (None, _) => json!({"waiting": {"reason": "ContainerCreating"}}),
        (Some(at), None) => json!({"running": {"startedAt": at}}),
        (Some(at), Some(code)) => json!({"terminated": {"startedAt": at, "exitCode": code}}),
    };
    let phase = match (&pod.started, pod.exit) {
        (_, Some(0)) => "Succeeded",
        (_, Some(_)) => "Failed",
        (Some(_), None) => "Running",
        (None, None) => "Pending",
    };
    json!({"metadata": {"name": name, "labels": labels, "creationTimestamp": pod.created},
           "status": {"phase": phase, "conditions": conditions,
                      "containerStatuses": [{"name": "main", "image": "x", "imageID": "",
                        "ready": pod.exit.is_none(), "restartCount": 0, "state": state}]}})
}

/// Sends a pod's log; with `follow`, chunk by chunk until its container has ended.
fn stream_log(stream: &mut TcpStream, state: &Arc<Mutex<State>>, pod: &str, follow: bool) {
    let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    let mut sent = 0;
    loop {
        let (chunk, ended) = {
            let s = state.lock().unwrap();
            let Some((_, sim)) = s.pods.get(pod) else {
                break;
            };
            (sim.log[sent..].to_vec(), sim.exit.is_some())
        };
        if !chunk.is_empty() {
            sent += chunk.len();
            if write!(stream, "{:x}\r\n", chunk.len()).is_err()
                || stream.write_all(&chunk).is_err()
                || stream.write_all(b"\r\n").is_err()
            {
                return;
            }
        }
        if ended || !follow {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = stream.write_all(b"0\r\n\r\n");
}

/// Runs a Job's pods: each is scheduled after 300 ms, starts once its ConfigMap exists and
/// runs the real agent; then the Job gets its Complete or Failed condition.
fn kubelet(state: Arc<Mutex<State>>, job_name: String) {
    let (job, root) = {
        let s = state.lock().unwrap();
        (s.jobs[&job_name].job.clone(), s.root.clone())
    };
    let spec = job.spec.clone().unwrap();
    let count = spec.completions.unwrap_or(1);
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let mut workers = Vec::new();
    for index in 0..count {
        let pod = format!("{job_name}-{index}-x7k2p");
        state.lock().unwrap().pods.insert(
            pod.clone(),
            (
                job_name.clone(),
                PodSim {
                    created: now_rfc3339(),
                    ..Default::default()
                },
            ),
        );
        let (state, job, root) = (state.clone(), job.clone(), root.clone());
        workers.push(std::thread::spawn(move || {
            run_pod(&state, &job, &pod, indexed.then_some(index), &root)
        }));
    }
    let codes: Vec<i32> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let mut s = state.lock().unwrap();
    let sim = s.jobs.get_mut(&job_name).unwrap();
    let condition = if codes.iter().all(|c| *c == 0) {
        json!({"type": "Complete", "status": "True"})
    } else {
        json!({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
               "message": "Job has reached the specified backoff limit"})
    };
    sim.job.status = Some(serde_json::from_value(json!({"conditions": [condition]})).unwrap());
}

fn run_pod(
    state: &Arc<Mutex<State>>,
    job: &Job,
    pod: &str,
    index: Option<i32>,
    root: &Path,
) -> i32 {
    std::thread::sleep(Duration::from_millis(300));
    set_pod(state, pod, |p| p.scheduled = Some(now_rfc3339()));
    let template = job.spec.as_ref().unwrap().template.spec.clone().unwrap();
    let container = &template.containers[0];
    let map_name = template
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.config_map.as_ref().map(|c| c.name.clone()))
        .unwrap();
    // The kubelet waits for the ConfigMap the pod mounts.
    let workflow = loop {
        if let Some(map) = state.lock().unwrap().config_maps.get(&map_name) {
            break map.data.as_ref().unwrap()["workflow.yaml"].clone();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dir = root.join(pod);
    let (work, run) = (dir.join("work"), dir.join("run"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(dir.join("workflow.yaml"), workflow).unwrap();
    let entrypoint = dir.join("entrypoint.sh");
    std::fs::write(
        &entrypoint,
        format!(
            "#!/bin/bash\nexec '{}' agent '{}' --run-id \"$ATLAS_RUN_ID\" --run-dir \"$ATLAS_RUN_DIR\" --interval \"${{ATLAS_INTERVAL:-1s}}\" \"$@\"\n",
            env!("CARGO_BIN_EXE_atlas"),
            dir.join("workflow.yaml").display()
        ),
    )
    .unwrap();
    let mut command = match &container.command {
        Some(words) => {
            let mut c = Command::new(&words[0]);
            c.args(words[1..].iter().map(|w| {
                w.replace(
                    "/opt/atlas/entrypoint.sh",
                    &format!("bash {}", entrypoint.display()),
                )
            }));
            c
        }
        None => {
            let mut c = Command::new("bash");
            c.arg(&entrypoint);
            c
        }
    };
    command.args(container.args.iter().flatten());
    for env in container.env.iter().flatten() {
        if let Some(value) = &env.value {
            command.env(&env.name, value);
        }
    }
    if let Some(index) = index {
        command.env("JOB_COMPLETION_INDEX", index.to_string());
    }
    command.env("ATLAS_RUN_DIR", &run).current_dir(&work);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    set_pod(state, pod, |p| {
        p.started = Some(now_rfc3339());
        p.pid = Some(child.id());
    });
    let pumps: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|mut out| {
        let (state, pod) = (state.clone(), pod.to_string());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                set_pod(&state, &pod, |p| p.log.extend_from_slice(&buf[..n]));
            }
        })
    })
    .collect();
    let code = child.wait().unwrap().code().unwrap_or(143);
    for pump in pumps {
        pump.join().unwrap();
    }
    set_pod(state, pod, |p| p.exit = Some(code));
    code
}

fn set_pod(state: &Arc<Mutex<State>>, pod: &str, change: impl FnOnce(&mut PodSim)) {
    if let Some((_, sim)) = state.lock().unwrap().pods.get_mut(pod) {
        change(sim);
    }
}
