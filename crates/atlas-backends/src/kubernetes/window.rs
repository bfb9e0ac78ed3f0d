//! A window on a Kubernetes target. The freeze reaches the run's agent, its pod's PID 1,
//! through exec (`freeze` into the control file on the run's claim, then SIGUSR2), as on every
//! other target. Once the run is frozen, it gives the cluster back: `release` in the control
//! file (the stop that follows is not a cancel), then
//! - on servers with Job `suspend` (1.22+): the Job suspended; its pods are deleted;
//! - on older servers (the test cluster's 1.20): the Job and its ConfigMap saved into the
//!   run's directory here, the ConfigMap freed of its owner (kept), the Job deleted with its
//!   pods.
//!
//! The run's directory on the claim keeps its spool and a copy of its checkpoint (the agent
//! runs with `--keep-checkpoint`); the wake resumes the Job, or creates the saved one again,
//! and the new pod's agent resumes the run from there. `atlas run`, following the run, takes
//! a Job deleted while the run's control file here says `release` for a window, not an end.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job as K8sJob;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, AttachParams, DeleteParams, ListParams, Patch, PatchParams, PostParams};

use super::connect::Cluster;
use super::objects::RUN_LABEL;
use crate::target::Named;

/// How long pods may take to go beyond the checkpoint's grace.
const GONE_MARGIN: Duration = Duration::from_secs(30);
/// The Job and ConfigMap saved in the run's directory while it is deleted.
const SAVED_JOB: &str = "k8s-job.json";
const SAVED_CONFIG_MAP: &str = "k8s-configmap.json";

/// A Kubernetes target's cluster, for `atlas windows`.
pub struct Window {
    runtime: tokio::runtime::Runtime,
    cluster: Cluster,
}

impl Window {
    /// Connects to `target`'s cluster.
    pub fn connect(target: &Named) -> Result<Window, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        let cluster = runtime
            .block_on(super::connect(target))
            .map_err(|e| e.to_string())?;
        Ok(Window { runtime, cluster })
    }

    /// The freeze: `freeze` in the control file of the run's running pod, and SIGUSR2 to its
    /// agent.
    pub fn freeze(&self, run_id: &str) -> Result<(), String> {
        self.runtime.block_on(async {
            self.the_job(run_id).await?;
            let pod = self.running_pod(run_id).await?;
            self.tell(&pod, "freeze", true).await
        })
    }

    /// Gives a frozen run's place back: its Job suspended, or saved and deleted; how long until
    /// none of its pods was left, and how.
    pub fn give_back(
        &self,
        run_id: &str,
        run_dir: &Path,
        grace: Duration,
    ) -> Result<String, String> {
        write_control(run_dir, "release")?;
        self.runtime.block_on(async {
            let (name, _) = self.the_job(run_id).await?;
            let pod = self.running_pod(run_id).await?;
            self.tell(&pod, "release", false).await?;
            let asked = Instant::now();
            let how = if self.cluster.api.has_job_suspend() {
                self.suspend(&name, true).await?;
                "suspended"
            } else {
                self.save_and_delete(&name, run_dir).await?;
                "deleted (its ConfigMap and the run's claim kept; Kubernetes 1.20 has no suspend)"
            };
            self.pods_gone(run_id, grace + GONE_MARGIN).await?;
            Ok(format!(
                "Job {name} {how}: none of its pods runs, {:.1} s after it was given back",
                asked.elapsed().as_secs_f64()
            ))
        })
    }

    /// The wake: the suspended Job resumed, or the saved one created again.
    pub fn wake(&self, run_id: &str, run_dir: &Path) -> Result<(), String> {
        write_control(run_dir, "wake")?;
        self.runtime.block_on(async {
            match self.the_job(run_id).await {
                Ok((name, suspended)) if suspended => self.suspend(&name, false).await,
                Ok((name, _)) => match self.running_pod(run_id).await {
                    // Frozen but never given back: its agent waits for the word.
                    Ok(pod) => self.tell(&pod, "wake", true).await,
                    Err(_) => Err(format!("Job {name} is there but none of its pods runs")),
                },
                Err(_) => self.create_saved(run_dir).await,
            }
        })
    }

    fn jobs(&self) -> Api<K8sJob> {
        Api::namespaced(self.cluster.client.clone(), &self.cluster.namespace)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.cluster.client.clone(), &self.cluster.namespace)
    }

    fn config_maps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.cluster.client.clone(), &self.cluster.namespace)
    }

    /// The run's one Job: its name and whether it is suspended.
    async fn the_job(&self, run_id: &str) -> Result<(String, bool), String> {
        let selector = ListParams::default().labels(&format!("{RUN_LABEL}={run_id}"));
        let jobs = self
            .jobs()
            .list(&selector)
            .await
            .map_err(|e| e.to_string())?;
        match jobs.items.as_slice() {
            [] => Err(format!(
                "no Job of run {run_id} in namespace {}",
                self.cluster.namespace
            )),
            [job] => Ok((
                job.metadata.name.clone().unwrap_or_default(),
                job.spec.as_ref().and_then(|s| s.suspend) == Some(true),
            )),
            many => Err(format!(
                "run {run_id} has {} Jobs (an array): windows freeze runs of one Job",
                many.len()
            )),
        }
    }

    async fn running_pod(&self, run_id: &str) -> Result<String, String> {
        let selector = ListParams::default().labels(&format!("{RUN_LABEL}={run_id}"));
        let pods = self
            .pods()
            .list(&selector)
            .await
            .map_err(|e| e.to_string())?;
        pods.items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .and_then(|p| p.metadata.name.clone())
            .ok_or_else(|| format!("no pod of run {run_id} is running"))
    }

    /// Writes `word` into the pod's control file (the run's directory on its claim), and
    /// signals its agent when `signal`. `word` is one of Atlas's own, passed as an argument.
    async fn tell(&self, pod: &str, word: &str, signal: bool) -> Result<(), String> {
        let control = format!("{}/control", atlas_emit::k8s::pod::RUN_DIR);
        let script = if signal {
            "printf '%s\\n' \"$1\" > \"$2\" && kill -USR2 1"
        } else {
            "printf '%s\\n' \"$1\" > \"$2\""
        };
        let params = AttachParams::default()
            .container("main")
            .stdout(false)
            .stderr(true);
        let mut process = self
            .pods()
            .exec(pod, ["sh", "-c", script, "sh", word, &control], &params)
            .await
            .map_err(|e| format!("cannot exec in pod {pod}: {e}"))?;
        let status = process.take_status().ok_or("no exit status from exec")?;
        let mut said = String::new();
        if let Some(mut stderr) = process.stderr() {
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut said).await;
        }
        let status = status.await;
        let _ = process.join().await;
        if status.as_ref().and_then(|s| s.status.as_deref()) != Some("Success") {
            let why = status.and_then(|s| s.message).unwrap_or_default();
            return Err(format!("exec in pod {pod} failed: {why} {}", said.trim()));
        }
        Ok(())
    }

    async fn suspend(&self, name: &str, suspend: bool) -> Result<(), String> {
        let patch = serde_json::json!({ "spec": { "suspend": suspend } });
        self.jobs()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "cannot {} Job {name}: {e}",
                    if suspend { "suspend" } else { "resume" }
                )
            })
    }

    /// Saves the Job and its ConfigMap in the run's directory, frees the ConfigMap of its
    /// owner (so it stays), and deletes the Job with its pods.
    async fn save_and_delete(&self, name: &str, run_dir: &Path) -> Result<(), String> {
        let job = self.jobs().get(name).await.map_err(|e| e.to_string())?;
        let config_name = format!("{name}-workflow");
        let config = self
            .config_maps()
            .get(&config_name)
            .await
            .map_err(|e| format!("ConfigMap {config_name}: {e}"))?;
        save(&run_dir.join(SAVED_JOB), &as_new_job(job))?;
        save(&run_dir.join(SAVED_CONFIG_MAP), &config)?;
        let free = serde_json::json!({ "metadata": { "ownerReferences": null } });
        self.config_maps()
            .patch(&config_name, &PatchParams::default(), &Patch::Merge(&free))
            .await
            .map_err(|e| format!("cannot keep ConfigMap {config_name}: {e}"))?;
        self.jobs()
            .delete(name, &DeleteParams::foreground())
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot delete Job {name}: {e}"))
    }

    /// Creates the saved Job again and makes it its ConfigMap's owner.
    async fn create_saved(&self, run_dir: &Path) -> Result<(), String> {
        let path = run_dir.join(SAVED_JOB);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("no Job to wake ({}: {e})", path.display()))?;
        let job: K8sJob =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = job.metadata.name.clone().unwrap_or_default();
        // A Job still going away (its foreground deletion) is waited for.
        let deadline = Instant::now() + GONE_MARGIN;
        let created = loop {
            match self.jobs().create(&PostParams::default(), &job).await {
                Ok(created) => break created,
                Err(kube::Error::Api(s)) if s.code == 409 && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(format!("cannot create Job {name} again: {e}")),
            }
        };
        let owner = serde_json::json!({ "metadata": { "ownerReferences": [OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: name.clone(),
            uid: created.metadata.uid.unwrap_or_default(),
            ..Default::default()
        }] } });
        let config_name = format!("{name}-workflow");
        let patched = self
            .config_maps()
            .patch(&config_name, &PatchParams::default(), &Patch::Merge(&owner))
            .await;
        if patched.is_err() {
            // Gone after all: created again from its copy.
            let text = std::fs::read_to_string(run_dir.join(SAVED_CONFIG_MAP))
                .map_err(|e| format!("ConfigMap {config_name} is gone and not saved: {e}"))?;
            let mut config: ConfigMap = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            config.metadata = fresh(config.metadata);
            self.config_maps()
                .create(&PostParams::default(), &config)
                .await
                .map_err(|e| format!("cannot create ConfigMap {config_name} again: {e}"))?;
        }
        Ok(())
    }

    async fn pods_gone(&self, run_id: &str, within: Duration) -> Result<(), String> {
        let selector = ListParams::default().labels(&format!("{RUN_LABEL}={run_id}"));
        let asked = Instant::now();
        loop {
            let left = self
                .pods()
                .list(&selector)
                .await
                .map_err(|e| e.to_string())?;
            if left.items.is_empty() {
                return Ok(());
            }
            if asked.elapsed() > within {
                return Err(format!(
                    "{} pod(s) of run {run_id} still there {} s after the Job was given back",
                    left.items.len(),
                    within.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The window's close for a cluster without Atlas (`atlas emit k8s --windows`'s CronJob):
/// deletes the Jobs that `selector` picks (their pods get SIGTERM, which their agents, run with
/// `--freeze-on-stop`, take for a freeze); the names deleted. In a pod the client is the pod's
/// own (its ServiceAccount, its namespace); elsewhere `kubeconfig` or $KUBECONFIG.
pub fn close_jobs(
    selector: &str,
    namespace: Option<&str>,
    kubeconfig: Option<&Path>,
) -> Result<Vec<String>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    super::connect::bounded_kubeconfigs(kubeconfig)?;
    runtime.block_on(async {
        let config = match kubeconfig {
            Some(path) => {
                let file = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                kube::Config::from_custom_kubeconfig(file, &Default::default())
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => kube::Config::infer()
                .await
                .map_err(|e| format!("no cluster to talk to (in a pod, or $KUBECONFIG): {e}"))?,
        };
        let namespace = namespace.map_or(config.default_namespace.clone(), String::from);
        let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
        let jobs: Api<K8sJob> = Api::namespaced(client, &namespace);
        let listed = jobs
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| format!("cannot list the Jobs `{selector}` in {namespace}: {e}"))?;
        let mut deleted = Vec::new();
        for job in listed.items {
            let Some(name) = job.metadata.name else {
                continue;
            };
            match jobs.delete(&name, &DeleteParams::foreground()).await {
                Ok(_) => deleted.push(name),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(format!("cannot delete Job {name}: {e}")),
            }
        }
        Ok(deleted)
    })
}

/// The control file of the run's directory here: what `atlas run`'s follower reads.
fn write_control(run_dir: &Path, word: &str) -> Result<(), String> {
    let control = atlas_spec::RunDir::new(run_dir).control();
    std::fs::write(&control, format!("{word}\n"))
        .map_err(|e| format!("cannot write {}: {e}", control.display()))
}

fn save<T: serde::Serialize>(path: &Path, object: &T) -> Result<(), String> {
    let text = serde_json::to_string_pretty(object).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// An object's metadata as for a create: what the server set is left out.
fn fresh(meta: ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        labels: meta.labels,
        annotations: meta.annotations,
        ..Default::default()
    }
}

/// A Job read from the server, as a new one to create: without the server's fields, its
/// generated selector and the labels that name the old Job's uid.
fn as_new_job(mut job: K8sJob) -> K8sJob {
    const SERVER_LABELS: [&str; 2] = ["controller-uid", "job-name"];
    job.metadata = fresh(job.metadata);
    job.status = None;
    for labels in job.metadata.labels.iter_mut() {
        labels.retain(|k, _| !SERVER_LABELS.contains(&k.as_str()));
    }
    if let Some(spec) = job.spec.as_mut() {
        spec.selector = None;
        spec.manual_selector = None;
        if let Some(labels) = spec
            .template
            .metadata
            .as_mut()
            .and_then(|m| m.labels.as_mut())
        {
            labels.retain(|k, _| !SERVER_LABELS.contains(&k.as_str()));
        }
    }
    job
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_read_back_is_made_new_without_the_old_uid() {
        let text = r#"{"metadata":{"name":"atlas-r-1","uid":"u1","resourceVersion":"9",
          "labels":{"atlas.dev/run":"r-1","controller-uid":"u1","job-name":"atlas-r-1"}},
          "spec":{"selector":{"matchLabels":{"controller-uid":"u1"}},
            "template":{"metadata":{"labels":{"atlas.dev/run":"r-1","controller-uid":"u1",
              "job-name":"atlas-r-1"}},"spec":{"containers":[{"name":"main"}]}}},
          "status":{"active":1}}"#;
        let job = as_new_job(serde_json::from_str(text).unwrap());
        let written = serde_json::to_string(&job).unwrap();
        assert!(!written.contains("u1"), "{written}");
        assert!(!written.contains("resourceVersion"), "{written}");
        assert!(written.contains(r#""atlas.dev/run":"r-1""#), "{written}");
        assert!(job.status.is_none());
    }
}
