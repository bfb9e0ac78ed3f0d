//! `kubernetes`: the workflow's Job on a cluster, through its API server (kube-rs).
//!
//! 1. prepare: read the kubeconfig and context, and ask the API server its version (an
//!    unusable cluster fails the run with exit 3, naming the context and server);
//! 2. submit: create the workflow's PersistentVolumeClaims (one that exists is reused), the
//!    Job `atlas-RUN` and its ConfigMap, owned by the Job ([`objects`]);
//! 3. watch: the Job's conditions and its pods, and each pod's log, where the agent writes
//!    its records ([`follow`]); queue wait = pod scheduled − pod created;
//! 4. cancel: delete the Job with foreground propagation (its pods get SIGTERM and the agent
//!    records the cancellation before the log ends);
//! 5. collect: the end of the pods' other output and why a pod never started.
//!
//! The image must hold atlas and the workflow's software (`atlas containerize`, pushed where
//! the cluster pulls from): nothing is built here.

mod connect;
mod follow;
mod objects;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job as K8sJob;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, PostParams};

use crate::target::Named;
use crate::{Backend, BackendError, Collected, Figures, Job, JobEnd};
use connect::Cluster;
use follow::Shared;

/// Runs the workflow as a Job on a Kubernetes cluster.
pub(crate) struct Kubernetes {
    target: Named,
    runtime: Option<tokio::runtime::Runtime>,
    cluster: Option<Cluster>,
    job: Option<String>,
    shared: Arc<Shared>,
}

impl Kubernetes {
    pub(crate) fn new(target: Named) -> Self {
        Kubernetes {
            target,
            runtime: None,
            cluster: None,
            job: None,
            shared: Arc::default(),
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
                let image = match &target.target.image {
                    Some(image) => format!("image {image}"),
                    None => "no `image` set (runs need one)".into(),
                };
                (
                    target.target.image.is_some(),
                    format!(
                        "context {}, {} {}, namespace {}, {image}",
                        cluster.context, cluster.server, cluster.version, cluster.namespace
                    ),
                )
            }
        }
    })
}

/// An API error as the run's cause; a transport error makes the cluster unusable.
fn api_error(cluster: &Cluster, what: &str, error: kube::Error) -> BackendError {
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

/// Creates the run's objects: claims (reused when they exist), the Job, its ConfigMap.
async fn create(cluster: &Cluster, objects: objects::RunObjects) -> Result<String, BackendError> {
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
    let name = objects.job_name().to_string();
    let jobs: Api<K8sJob> = Api::namespaced(cluster.client.clone(), ns);
    let created = jobs.create(&params, &objects.job).await.map_err(|e| match e {
        e if is_conflict(&e) => BackendError::Rejected(format!(
            "a Job named {name} already exists in namespace {ns} (context `{}`); nothing was started",
            cluster.context
        )),
        e => api_error(cluster, &format!("Job {name}"), e),
    })?;
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
    Ok(name)
}

impl Backend for Kubernetes {
    fn agent_per_array_task(&self) -> bool {
        true
    }

    fn prepare(&mut self, _job: &Job<'_>) -> Result<Figures, BackendError> {
        if self.target.target.image.is_none() {
            return Err(BackendError::Unusable(format!(
                "target `{}` needs `image`: an image with atlas and the workflow's software \
                 (`atlas containerize`, pushed where the cluster pulls from)",
                self.target.name
            )));
        }
        let target = self.target.clone();
        let started = std::time::Instant::now();
        let cluster = self.runtime()?.block_on(connect::connect(&target))?;
        self.cluster = Some(cluster);
        Ok(Figures::from([(
            "apiConnectSeconds".to_string(),
            started.elapsed().as_secs_f64(),
        )]))
    }

    fn submit(&mut self, job: &Job<'_>) -> Result<String, BackendError> {
        let cluster = self
            .cluster
            .clone()
            .ok_or_else(|| BackendError::Unusable("submit before prepare".into()))?;
        let workflow = crate::without_gpus_if_none(&self.target, job);
        let image = self.target.target.image.clone().unwrap_or_default();
        let objects = objects::run_objects(job, &workflow, &image)?;
        let shared = self.shared.clone();
        let runtime = self.runtime()?;
        let name = runtime.block_on(create(&cluster, objects))?;
        runtime.spawn(follow::follow(
            cluster.clone(),
            name.clone(),
            job.run_id.to_string(),
            job.run_dir.to_path_buf(),
            shared,
        ));
        self.job = Some(name.clone());
        Ok(format!("{}/{name}", cluster.namespace))
    }

    fn watch(&mut self) -> Option<JobEnd> {
        self.shared.end.lock().expect("not poisoned").clone()
    }

    fn cancel(&mut self) -> Result<(), BackendError> {
        let (Some(cluster), Some(name)) = (self.cluster.clone(), self.job.clone()) else {
            return Ok(());
        };
        self.shared.cancelled.store(true, Ordering::SeqCst);
        let runtime = self.runtime()?;
        let jobs: Api<K8sJob> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
        runtime
            .block_on(jobs.delete(&name, &DeleteParams::foreground()))
            .map_err(|e| {
                BackendError::Unusable(format!(
                    "cannot delete Job {name}: {}",
                    api_error(&cluster, "the deletion", e)
                ))
            })?;
        Ok(())
    }

    fn collect(&mut self, job: &Job<'_>) -> Collected {
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
        }
    }
}
