//! `kubernetes`: the workflow's Job on a cluster, through its API server (kube-rs).
//!
//! 1. prepare: with a `registry` and no `image`, build the image (the project inside) with
//!    podman and push it ([`image`]); read the kubeconfig and context, and ask the API server
//!    its version (an unusable cluster fails the run with exit 3, naming the context and
//!    server), which decides the objects' shapes;
//! 2. submit: create the workflow's PersistentVolumeClaims (one that exists is reused), the
//!    Job `atlas-RUN` (or the first of one Job per array index) and its ConfigMap, owned by
//!    the Job ([`objects`]);
//! 3. watch: the Job's conditions and its pods, and each pod's log, where the agent writes
//!    its records ([`follow`]); queue wait = pod scheduled − pod created;
//! 4. cancel: delete the Job with foreground propagation (its pods get SIGTERM and the agent
//!    records the cancellation before the log ends);
//! 5. collect: the end of the pods' other output and why a pod never started.
//!
//! An MPI workflow of several nodes runs without the MPI Operator: Atlas starts the workers,
//! a key and a hostfile itself and runs the launcher as the run's Job ([`mpi`]).
//!
//! Without a `registry`, the target's `image` must hold atlas, the workflow's software and the
//! project (`atlas containerize`, pushed where the cluster pulls from).

mod connect;
mod follow;
mod image;
mod mpi;
mod objects;
mod stage;
pub mod window;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job as K8sJob;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use crate::target::Named;
use crate::{Backend, BackendError, Collected, Figures, Job, JobEnd};
pub(crate) use connect::connect;
use connect::Cluster;
use follow::{Pending, Shared};

/// How long a run waits for its first pod to start, unless the target says (seconds).
const DEFAULT_PENDING_TIMEOUT: u64 = 600;

/// Runs the workflow as a Job on a Kubernetes cluster.
pub(crate) struct Kubernetes {
    target: Named,
    runtime: Option<tokio::runtime::Runtime>,
    cluster: Option<Cluster>,
    /// The image the pods run: the target's, or the one `prepare` pushed.
    image: Option<String>,
    shared: Arc<Shared>,
    /// An MPI run's workers, key and hostfile (deleted at its end).
    mpi: Option<mpi::Mpi>,
}

impl Kubernetes {
    pub(crate) fn new(target: Named) -> Self {
        Kubernetes {
            image: target.target.image.clone(),
            target,
            runtime: None,
            cluster: None,
            shared: Arc::default(),
            mpi: None,
        }
    }

    fn runtime(&mut self) -> Result<&tokio::runtime::Runtime, BackendError> {
        if self.runtime.is_none() {
            // One worker: the client's connection tasks and the follower run on it while
            // `atlas run` polls from its own thread.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| BackendError::Unusable(format!("cannot start a runtime: {e}")))?;
            self.runtime = Some(runtime);
        }
        Ok(self.runtime.as_ref().expect("made above"))
    }
}

/// The version string of a kubeconfig context's API server (`v1.20.2`).
pub(crate) fn version(target: &Named) -> Result<String, BackendError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BackendError::Unusable(format!("cannot start a runtime: {e}")))?
        .block_on(connect::connect(target))
        .map(|cluster| cluster.version)
}

/// `atlas targets check`: whether the API server answers, and where jobs would go.
pub(crate) fn check(target: &Named) -> (bool, String) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return (false, format!("cannot start a runtime: {e}")),
    };
    runtime.block_on(async {
        match connect::connect(target).await {
            Err(e) => (false, e.to_string()),
            Ok(cluster) => {
                let t = &target.target;
                let image = match (&t.image, &t.registry) {
                    (Some(image), _) => format!("image {image}"),
                    (None, Some(registry)) => format!("images built and pushed to {registry}"),
                    (None, None) => "no `image` or `registry` set (runs need one)".into(),
                };
                (
                    t.image.is_some() || t.registry.is_some(),
                    format!(
                        "context {}, {} Kubernetes {}, namespace {}, {}, {image}",
                        cluster.context,
                        cluster.server,
                        cluster.version,
                        cluster.namespace,
                        nodes(&cluster).await
                    ),
                )
            }
        }
    })
}

/// The nodes, as `node NAME Ready (2 CPU, 23.4 GiB)`, or why they cannot be listed.
async fn nodes(cluster: &Cluster) -> String {
    let api: Api<Node> = Api::all(cluster.client.clone());
    let list = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => return format!("nodes not listed ({})", connect::with_causes(&e)),
    };
    if list.is_empty() {
        return "no nodes".into();
    }
    let described: Vec<String> = list
        .iter()
        .map(|node| {
            let name = node.metadata.name.as_deref().unwrap_or("?");
            let status = node.status.as_ref();
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .map_or("Unknown", |c| match c.status.as_str() {
                    "True" => "Ready",
                    _ => "NotReady",
                });
            let allocatable = status.and_then(|s| s.allocatable.as_ref());
            let cpu = allocatable
                .and_then(|a| a.get("cpu"))
                .map_or("?".into(), |q| q.0.clone());
            let memory = allocatable
                .and_then(|a| a.get("memory"))
                .and_then(|q| q.0.parse::<atlas_spec::Quantity>().ok())
                .map_or("?".into(), |q| {
                    format!("{:.1} GiB", q.bytes() as f64 / f64::from(1 << 30))
                });
            format!("node {name} {ready} ({cpu} CPU, {memory})")
        })
        .collect();
    described.join(", ")
}

/// An API error as the run's cause; a transport error makes the cluster unusable.
pub(crate) fn api_error(cluster: &Cluster, what: &str, error: kube::Error) -> BackendError {
    match error {
        kube::Error::Api(status) => BackendError::Rejected(format!(
            "the API server of context `{}` refused {what}: {} {}: {}",
            cluster.context, status.code, status.reason, status.message
        )),
        other => cluster.unreachable(connect::with_causes(&other)),
    }
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// Creates the run's objects: claims (reused when they exist), the first Job, its ConfigMap;
/// the Jobs left for the follower to create (one per array index, `%N` at a time).
async fn create(
    cluster: &Cluster,
    objects: objects::RunObjects,
    shared: &Shared,
    start_limit: std::time::Duration,
    stage: Option<(&Job<'_>, &str)>,
    mpi: Option<&mpi::Mpi>,
) -> Result<Pending, BackendError> {
    let params = PostParams::default();
    let ns = &cluster.namespace;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), ns);
    for claim in &objects.claims {
        let name = claim.metadata.name.clone().unwrap_or_default();
        match claims.create(&params, claim).await {
            Ok(_) => {}
            // The claim holds data every run of the workflow shares: use the one there.
            Err(e) if is_conflict(&e) => {}
            Err(e) => {
                return Err(api_error(
                    cluster,
                    &format!("PersistentVolumeClaim {name}"),
                    e,
                ))
            }
        }
    }
    // The inputs onto their claim before any pod of the Job can read it.
    let inputs_claim = objects
        .claims
        .iter()
        .filter_map(|c| c.metadata.name.as_deref())
        .find(|n| n.ends_with("-inputs"));
    if let (Some((job, image)), Some(claim)) = (stage, inputs_claim) {
        if !job.inputs.is_empty() {
            let figures =
                stage::stage_inputs(cluster, job.run_id, claim, image, job.inputs).await?;
            shared.figures.lock().expect("not poisoned").extend(figures);
        }
    }
    if let Some(mpi) = mpi {
        mpi::start(cluster, mpi, start_limit).await?;
    }
    let mut rest: std::collections::VecDeque<K8sJob> = objects.jobs.into();
    let first = rest
        .pop_front()
        .expect("run_objects makes at least one Job");
    let name = first.metadata.name.clone().unwrap_or_default();
    let jobs: Api<K8sJob> = Api::namespaced(cluster.client.clone(), ns);
    let created = jobs.create(&params, &first).await.map_err(|e| match e {
        e if is_conflict(&e) => BackendError::Rejected(format!(
            "a Job named {name} already exists in namespace {ns} (context `{}`); nothing was started",
            cluster.context
        )),
        e => api_error(cluster, &format!("Job {name}"), e),
    })?;
    shared
        .created
        .lock()
        .expect("not poisoned")
        .push(name.clone());
    let mut config_map = objects.config_map;
    config_map.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: name.clone(),
        uid: created.metadata.uid.unwrap_or_default(),
        ..Default::default()
    }]);
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), ns);
    if let Err(e) = maps.create(&params, &config_map).await {
        let _ = jobs.delete(&name, &DeleteParams::background()).await;
        return Err(api_error(cluster, "the workflow's ConfigMap", e));
    }
    Ok(Pending {
        jobs: rest,
        max_parallel: objects.max_parallel,
        start_limit,
    })
}

impl Backend for Kubernetes {
    fn agent_per_array_task(&self) -> bool {
        true
    }

    fn prepare(&mut self, job: &Job<'_>) -> Result<Figures, BackendError> {
        let target = self.target.clone();
        let started = std::time::Instant::now();
        let cluster = self.runtime()?.block_on(connect::connect(&target))?;
        let mut figures = Figures::from([(
            "apiConnectSeconds".to_string(),
            started.elapsed().as_secs_f64(),
        )]);
        self.cluster = Some(cluster);
        match (&target.target.image, &target.target.registry) {
            (Some(_), _) => {}
            (None, Some(registry)) => {
                let (image, built) = image::build_and_push(&target, job, registry)?;
                figures.extend(built);
                self.image = Some(image);
            }
            (None, None) => {
                return Err(BackendError::Unusable(format!(
                    "target `{}` needs `registry` (images are built with podman and pushed \
                     there) or `image` (one with atlas, the workflow's software and the \
                     project, pushed where the cluster pulls from)",
                    self.target.name
                )))
            }
        }
        Ok(figures)
    }

    fn submit(&mut self, job: &Job<'_>) -> Result<String, BackendError> {
        let cluster = self
            .cluster
            .clone()
            .ok_or_else(|| BackendError::Unusable("submit before prepare".into()))?;
        // A run whose image was built here was told about GPUs then.
        let workflow = if self.target.target.image.is_none() {
            crate::alike::effective_workflow(&self.target, job.workflow)
        } else {
            crate::without_gpus_if_none(&self.target, job)
        };
        let image = self.image.clone().unwrap_or_default();
        let mut objects = objects::run_objects(
            job,
            &workflow,
            &image,
            cluster.api,
            &self.target.target.gpu_products,
        )?;
        self.mpi = objects.mpi.take();
        if let Some(mpi) = &self.mpi {
            job.notes.say(format!(
                "MPI without an operator: {} worker pod(s) running sshd, the launcher runs rank 0",
                mpi.workers_count
            ));
        }
        if objects.jobs.len() > 1 {
            job.notes.say(format!(
                "Kubernetes {} on context `{}`: the array runs as {} Jobs, one per index \
                 (no Indexed Job with independent tasks before 1.29)",
                cluster.api,
                cluster.context,
                objects.jobs.len()
            ));
        }
        let shared = self.shared.clone();
        let start_limit = std::time::Duration::from_secs(
            self.target
                .target
                .pending_timeout
                .unwrap_or(DEFAULT_PENDING_TIMEOUT),
        );
        let mpi = self.mpi.take();
        let runtime = self.runtime()?;
        let created = runtime.block_on(create(
            &cluster,
            objects,
            &shared,
            start_limit,
            Some((job, &image)),
            mpi.as_ref(),
        ));
        let pending = match created {
            Ok(pending) => pending,
            Err(e) => {
                if let Some(mpi) = &mpi {
                    runtime.block_on(mpi::stop(&cluster, mpi));
                }
                return Err(e);
            }
        };
        self.mpi = mpi;
        let runtime = self.runtime()?;
        runtime.spawn(follow::follow(
            cluster.clone(),
            pending,
            job.run_id.to_string(),
            job.run_dir.to_path_buf(),
            shared,
        ));
        Ok(format!("{}/atlas-{}", cluster.namespace, job.run_id))
    }

    fn watch(&mut self) -> Option<JobEnd> {
        self.shared.end.lock().expect("not poisoned").clone()
    }

    fn cancel(&mut self) -> Result<(), BackendError> {
        let Some(cluster) = self.cluster.clone() else {
            return Ok(());
        };
        self.shared.cancelled.store(true, Ordering::SeqCst);
        let created = self.shared.created.lock().expect("not poisoned").clone();
        let mpi = self.mpi.take();
        let runtime = self.runtime()?;
        if let Some(mpi) = &mpi {
            runtime.block_on(mpi::stop(&cluster, mpi));
        }
        let jobs: Api<K8sJob> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
        for name in created {
            match runtime.block_on(jobs.delete(&name, &DeleteParams::foreground())) {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => {
                    return Err(BackendError::Unusable(format!(
                        "cannot delete Job {name}: {}",
                        api_error(&cluster, "the deletion", e)
                    )))
                }
            }
        }
        Ok(())
    }

    fn collect(&mut self, job: &Job<'_>) -> Collected {
        if let (Some(mpi), Some(cluster)) = (self.mpi.take(), self.cluster.clone()) {
            if let Ok(runtime) = self.runtime() {
                runtime.block_on(mpi::stop(&cluster, &mpi));
            }
        }
        let note = self.shared.note.lock().expect("not poisoned").clone();
        let tail = crate::tail(&job.run_dir.join("container.log"), 10);
        let output_tail = match (note, tail) {
            (Some(note), Some(tail)) => Some(format!("{tail}\n(a pod waited: {note})")),
            (Some(note), None) => Some(format!("(a pod waited: {note})")),
            (None, tail) => tail,
        };
        Collected {
            output_tail,
            figures: self.shared.figures.lock().expect("not poisoned").clone(),
            ..Default::default()
        }
    }
}
