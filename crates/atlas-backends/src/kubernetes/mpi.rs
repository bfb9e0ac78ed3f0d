//! An MPI workflow of several nodes on a cluster without the MPI Operator: the MPIJob that
//! `atlas emit k8s` makes, driven by Atlas itself with plain Jobs.
//!
//! - the ssh key of the run (made here) in a Secret `atlas-RUN-ssh`, mounted at the image's
//!   `~/.ssh` in every pod (mode 0444, owned by root: ssh accepts a key another user owns);
//! - the workers, one Job `atlas-RUN-workers` of NODES − 1 pods running sshd (the image's
//!   `--sshd` mode), ready once port 2222 answers, labelled `atlas.dev/run-workers` so the
//!   follower leaves them alone;
//! - once they are ready, a ConfigMap `atlas-RUN-hostfile`: `localhost` (the launcher runs rank
//!   0, as the operator's `runLauncherAsWorker` does) and each worker's pod IP, mounted at
//!   `/etc/mpi` where the launcher's `OMPI_MCA_orte_default_hostfile` points;
//! - the launcher: the MPIJob's Launcher template as the run's Job (the agent and its phases).
//!
//! The working directory is shared, as a cluster's shared filesystem is: an init container
//! copies the image's `/work` (the project) to the run's claim (`RUN-work` in `atlas-runs`),
//! which every pod mounts at `/work`, so what one phase writes there every rank reads.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use atlas_emit::k8s::crds::MpiJob;
use k8s_openapi::api::batch::v1::{Job as K8sJob, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EnvVar, Pod, PodTemplateSpec, Probe, Secret,
    SecretVolumeSource, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use super::connect::Cluster;
use crate::BackendError;

/// The label of a run's worker pods (not the run's own label: the follower reads those).
pub(crate) const WORKERS_LABEL: &str = "atlas.dev/run-workers";

/// Where the image's sshd listens and its ssh client connects (`atlas containerize`).
const SSH_PORT: i32 = 2222;

/// The objects an MPI run needs besides its launcher Job.
pub(crate) struct Mpi {
    pub run: String,
    pub secret: Secret,
    pub workers: Option<K8sJob>,
    pub workers_count: i32,
    pub slots: i32,
}

impl Mpi {
    fn hostfile_name(&self) -> String {
        format!("atlas-{}-hostfile", self.run)
    }
    fn workers_name(&self) -> String {
        format!("atlas-{}-workers", self.run)
    }
}

/// The launcher Job (named and labelled by the caller) and the rest, from the emitted MPIJob.
pub(crate) fn from_mpijob(
    mpijob: MpiJob,
    run: &str,
    run_dir: &Path,
) -> Result<(K8sJob, Mpi), BackendError> {
    let mut specs = mpijob.spec.mpi_replica_specs;
    let (Some(launcher), Some(worker)) = (specs.remove("Launcher"), specs.remove("Worker")) else {
        return Err(BackendError::Rejected(
            "the emitted MPIJob has no Launcher or Worker".into(),
        ));
    };
    let ssh = run_dir.join("ssh");
    crate::podman_nodes::make_key(&ssh, None)
        .map_err(|e| BackendError::Unusable(format!("cannot make the run's ssh key: {e}")))?;
    let read = |name: &str| {
        std::fs::read(ssh.join(name))
            .map(ByteString)
            .map_err(|e| BackendError::Unusable(format!("cannot read the run's ssh key: {e}")))
    };
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(format!("atlas-{run}-ssh")),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            ("id_rsa".to_string(), read("id_rsa")?),
            ("id_rsa.pub".to_string(), read("id_rsa.pub")?),
            ("authorized_keys".to_string(), read("authorized_keys")?),
        ])),
        ..Default::default()
    };
    let workers_count = (worker.replicas - 1).max(0);
    let mut mpi = Mpi {
        run: run.to_string(),
        secret,
        workers: None,
        workers_count,
        slots: mpijob.spec.slots_per_worker.max(1),
    };
    let deadline = mpijob.spec.run_policy.active_deadline_seconds;
    let mut launcher = launcher.template;
    // The follower reads the log of the run's container `main`.
    if let Some(container) = launcher
        .spec
        .as_mut()
        .and_then(|s| s.containers.first_mut())
    {
        container.name = "main".into();
    }
    let claim = runs_claim(&launcher)?;
    shared_pod(&mut launcher, &mpi, &claim, true);
    if workers_count > 0 {
        let mut template = worker.template;
        shared_pod(&mut template, &mpi, &claim, false);
        mpi.workers = Some(job(mpi.workers_name(), template, workers_count, deadline));
    }
    Ok((job(format!("atlas-{run}"), launcher, 1, deadline), mpi))
}

/// The claim behind the launcher's `atlas-runs` volume (the run directories).
fn runs_claim(template: &PodTemplateSpec) -> Result<String, BackendError> {
    template
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .find(|v| v.name == "atlas-runs")
        .and_then(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.clone())
        .ok_or_else(|| BackendError::Rejected("the MPIJob's launcher has no atlas-runs".into()))
}

fn job(name: String, template: PodTemplateSpec, pods: i32, deadline: Option<i64>) -> K8sJob {
    K8sJob {
        metadata: ObjectMeta {
            name: Some(name),
            ..Default::default()
        },
        spec: Some(JobSpec {
            parallelism: Some(pods),
            completions: Some(pods),
            backoff_limit: Some(0),
            active_deadline_seconds: deadline,
            template,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, sub_path: Option<String>) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        sub_path,
        ..Default::default()
    }
}

/// Adds what every pod of the run shares (the key, the working directory) and, to the
/// launcher, the hostfile, Open MPI's settings and the copy of the project; to a worker, its
/// readiness and label.
fn shared_pod(template: &mut PodTemplateSpec, mpi: &Mpi, claim: &str, launcher: bool) {
    let work = Some(format!("{}-work", mpi.run));
    let spec = template.spec.get_or_insert_with(Default::default);
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    volumes.push(Volume {
        name: "ssh".into(),
        secret: Some(SecretVolumeSource {
            secret_name: mpi.secret.metadata.name.clone(),
            default_mode: Some(0o444),
            ..Default::default()
        }),
        ..Default::default()
    });
    if launcher {
        volumes.push(Volume {
            name: "hostfile".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: mpi.hostfile_name(),
                ..Default::default()
            }),
            ..Default::default()
        });
    } else if !volumes.iter().any(|v| v.name == "atlas-runs") {
        volumes.push(Volume {
            name: "atlas-runs".into(),
            persistent_volume_claim: Some(
                k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                    claim_name: claim.to_string(),
                    ..Default::default()
                },
            ),
            ..Default::default()
        });
    }
    let main = &mut spec.containers[0];
    let mounts = main.volume_mounts.get_or_insert_with(Vec::new);
    mounts.push(mount("ssh", "/home/atlas/.ssh", None));
    // Its own shared working directory replaces a frozen run's (no windows for MPI runs).
    mounts.retain(|m| m.mount_path != "/work");
    mounts.push(mount("atlas-runs", "/work", work.clone()));
    if launcher {
        mounts.push(mount("hostfile", "/etc/mpi", None));
        let env = main.env.get_or_insert_with(Vec::new);
        for (name, value) in [
            ("OMPI_MCA_orte_default_hostfile", "/etc/mpi/hostfile"),
            // Open MPI passes only its own variables to ranks it starts over ssh.
            ("OMPI_MCA_mca_base_env_list", "ATLAS_RUN_ID;ATLAS_INTERVAL"),
        ] {
            env.push(EnvVar {
                name: name.into(),
                value: Some(value.into()),
                ..Default::default()
            });
        }
        let copy = Container {
            name: "project".into(),
            image: main.image.clone(),
            command: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                "cp -R /work/. /shared/".into(),
            ]),
            volume_mounts: Some(vec![mount("atlas-runs", "/shared", work)]),
            security_context: main.security_context.clone(),
            ..Default::default()
        };
        spec.init_containers = Some(vec![copy]);
    } else {
        main.readiness_probe = Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(SSH_PORT),
                ..Default::default()
            }),
            period_seconds: Some(1),
            ..Default::default()
        });
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(WORKERS_LABEL.into(), mpi.run.clone());
    }
}

/// Creates the key and the workers, waits until every worker answers on its ssh port, then
/// writes the hostfile. [`stop`] deletes them (the follower watches the launcher only).
pub(crate) async fn start(
    cluster: &Cluster,
    mpi: &Mpi,
    limit: Duration,
) -> Result<(), BackendError> {
    let ns = &cluster.namespace;
    let params = PostParams::default();
    let fail = |what: &str, e| super::api_error(cluster, what, e);
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), ns);
    secrets
        .create(&params, &mpi.secret)
        .await
        .map_err(|e| fail("the run's ssh Secret", e))?;
    let mut ips = Vec::new();
    if let Some(workers) = &mpi.workers {
        let jobs: Api<K8sJob> = Api::namespaced(cluster.client.clone(), ns);
        jobs.create(&params, workers)
            .await
            .map_err(|e| fail("the workers' Job", e))?;
        ips = ready_workers(cluster, mpi, limit).await?;
    }
    let mut hostfile = format!("localhost slots={}\n", mpi.slots);
    for ip in ips {
        hostfile += &format!("{ip} slots={}\n", mpi.slots);
    }
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), ns);
    let map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(mpi.hostfile_name()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("hostfile".to_string(), hostfile)])),
        ..Default::default()
    };
    maps.create(&params, &map)
        .await
        .map_err(|e| fail("the hostfile ConfigMap", e))?;
    Ok(())
}

/// The pod IPs of the workers once all are ready, or why they are not within `limit`.
async fn ready_workers(
    cluster: &Cluster,
    mpi: &Mpi,
    limit: Duration,
) -> Result<Vec<String>, BackendError> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let selector = ListParams::default().labels(&format!("{WORKERS_LABEL}={}", mpi.run));
    let started = Instant::now();
    loop {
        let list = pods
            .list(&selector)
            .await
            .map_err(|e| super::api_error(cluster, "the workers' pods", e))?;
        let ready: Vec<String> = list
            .items
            .iter()
            .filter_map(|p| {
                let status = p.status.as_ref()?;
                let ready = status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                ready.then(|| status.pod_ip.clone()).flatten()
            })
            .collect();
        if ready.len() as i32 >= mpi.workers_count {
            return Ok(ready);
        }
        if started.elapsed() > limit {
            let states: Vec<String> = list
                .items
                .iter()
                .map(|p| {
                    let status = p.status.as_ref();
                    let why = status
                        .and_then(|s| s.conditions.iter().flatten().find(|c| c.status != "True"))
                        .and_then(|c| c.message.clone().or(c.reason.clone()))
                        .unwrap_or_else(|| "not ready".into());
                    format!("{}: {why}", p.metadata.name.clone().unwrap_or_default())
                })
                .collect();
            return Err(BackendError::Rejected(format!(
                "{} of {} MPI workers ready after {} s ({})",
                ready.len(),
                mpi.workers_count,
                limit.as_secs(),
                states.join("; ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes the workers, the key and the hostfile (the launcher is the run's own Job).
pub(crate) async fn stop(cluster: &Cluster, mpi: &Mpi) {
    let ns = &cluster.namespace;
    let jobs: Api<K8sJob> = Api::namespaced(cluster.client.clone(), ns);
    let _ = jobs
        .delete(&mpi.workers_name(), &DeleteParams::background())
        .await;
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), ns);
    if let Some(name) = &mpi.secret.metadata.name {
        let _ = secrets.delete(name, &DeleteParams::default()).await;
    }
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), ns);
    let _ = maps
        .delete(&mpi.hostfile_name(), &DeleteParams::default())
        .await;
}
