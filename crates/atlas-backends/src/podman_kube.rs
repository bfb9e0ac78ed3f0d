//! `podman-kube`: the Pod that `atlas emit k8s` would create, run for real with
//! `podman kube play` (no Kubernetes API server can run on these machines). The pod template
//! comes from atlas-emit's `k8s::pod` with the cluster's volumes swapped for this machine's
//! directories (hostPath): the run directory for the spool, the project's copy at /work and
//! the inputs read-only. The image is built as for `podman`; the pod runs under a random high
//! UID with group 0, `imagePullPolicy: Never`.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use atlas_emit::k8s::pod::{self, PodOptions};
use k8s_openapi::api::core::v1::{EnvVar, HostPathVolumeSource, Pod, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::podman::{prepare_image_and_project, random_uid, submission, unusable};
use crate::target::Named;
use crate::{process, Backend, BackendError, Collected, Figures, Job, JobEnd};

/// Runs the workflow's Pod with `podman kube play`.
pub(crate) struct PodmanKube {
    target: Named,
    tag: Option<String>,
    pod: Option<String>,
    waiter: Option<Child>,
    /// Where the container's log is kept (the run directory's container.log).
    log: Option<std::path::PathBuf>,
}

impl PodmanKube {
    pub(crate) fn new(target: Named) -> Self {
        PodmanKube {
            target,
            tag: None,
            pod: None,
            waiter: None,
            log: None,
        }
    }
}

fn host_path(name: &str, path: &Path) -> Volume {
    Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource {
            path: path.display().to_string(),
            type_: Some("Directory".into()),
        }),
        ..Default::default()
    }
}

fn env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    }
}

/// The Pod for `job`, from the same template as `atlas emit k8s`.
pub(crate) fn pod_for(
    job: &Job<'_>,
    workflow: &atlas_spec::Workflow,
    name: &str,
    image: &str,
    uid: u32,
) -> Pod {
    let mut template = pod::template(
        workflow,
        &PodOptions {
            name: &workflow.metadata.name,
            image,
            openshift: false,
            container: "main",
            exports: Vec::new(),
            command: None,
            runs_workflow: false,
            agent_flags: &[],
            // podman has no GPU feature discovery labels to select on.
            gpu_products: &Default::default(),
            placement: &Default::default(),
        },
    );
    let spec = template.spec.as_mut().expect("the template has a spec");
    let mut volumes = spec.volumes.take().unwrap_or_default();
    volumes.push(host_path("run", job.run_dir));
    volumes.push(host_path("work", &job.run_dir.join("work")));
    let mut mounts = vec![
        VolumeMount {
            name: "run".into(),
            mount_path: crate::podman::IN_CONTAINER_RUN_DIR.into(),
            ..Default::default()
        },
        VolumeMount {
            name: "work".into(),
            mount_path: "/work".into(),
            ..Default::default()
        },
    ];
    for (i, input) in job.inputs.iter().enumerate() {
        let volume = format!("input-{i}");
        let kind = if input.source.is_dir() {
            "Directory"
        } else {
            "File"
        };
        volumes.push(Volume {
            name: volume.clone(),
            host_path: Some(HostPathVolumeSource {
                path: input.source.display().to_string(),
                type_: Some(kind.into()),
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: volume,
            mount_path: pod::work_path(&input.path),
            read_only: Some(true),
            ..Default::default()
        });
    }
    spec.volumes = Some(volumes);
    if let Some(security) = spec.security_context.as_mut() {
        security.run_as_user = Some(i64::from(uid));
        security.run_as_group = Some(0);
    }
    let container = &mut spec.containers[0];
    container.image_pull_policy = Some("Never".into());
    container
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .extend(mounts);
    container.env = Some(vec![
        env("ATLAS_RUN_ID", job.run_id.into()),
        env("ATLAS_RUN_DIR", crate::podman::IN_CONTAINER_RUN_DIR.into()),
        env("ATLAS_INTERVAL", format!("{}ms", job.interval.as_millis())),
        // The container's cgroup holds the job alone.
        env("ATLAS_OWN_CGROUP", "1".into()),
        env("HOME", "/home/atlas".into()),
    ]);
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: template.metadata.and_then(|m| m.labels),
            ..Default::default()
        },
        spec: template.spec,
        ..Default::default()
    }
}

impl Backend for PodmanKube {
    fn prepare(&mut self, job: &Job<'_>) -> Result<Figures, BackendError> {
        let (tag, figures) = prepare_image_and_project(&self.target, job)?;
        self.tag = Some(tag);
        Ok(figures)
    }

    fn submit(&mut self, job: &Job<'_>) -> Result<String, BackendError> {
        let (tag, name, workflow) = submission(self.tag.as_deref(), &self.target, job)?;
        let pod = pod_for(job, &workflow, &name, &tag, random_uid());
        let file = job.run_dir.join("pod.yaml");
        // JSON is YAML: podman reads it as the Pod manifest.
        let text = serde_json::to_string_pretty(&pod)
            .map_err(|e| unusable(format!("cannot write the pod: {e}")))?;
        std::fs::write(&file, text)
            .map_err(|e| unusable(format!("cannot write {}: {e}", file.display())))?;
        let out = Command::new("podman")
            .args(["kube", "play"])
            .arg(&file)
            .output()
            .map_err(|e| unusable(format!("cannot run podman: {e}")))?;
        if !out.status.success() {
            return Err(BackendError::Rejected(format!(
                "podman kube play refused the pod: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let container = format!("{name}-main");
        let waiter = Command::new("podman")
            .args(["wait", &container])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| unusable(format!("cannot run podman wait: {e}")))?;
        self.waiter = Some(waiter);
        self.pod = Some(name.clone());
        self.log = Some(job.run_dir.join("container.log"));
        Ok(name)
    }

    fn watch(&mut self) -> Option<JobEnd> {
        let end = process::child_ended(&mut self.waiter)?;
        self.remove_pod();
        Some(end)
    }

    fn cancel(&mut self) -> Result<(), BackendError> {
        if let Some(pod) = &self.pod {
            // The agent is the container's PID 1 and handles SIGTERM like everywhere else.
            process::output(
                "podman",
                &["kill", "--signal", "TERM", &format!("{pod}-main")],
            )
            .map_err(BackendError::Unusable)?;
        }
        Ok(())
    }

    fn collect(&mut self, _job: &Job<'_>) -> Collected {
        self.remove_pod();
        Collected {
            output_tail: self.log.as_deref().and_then(|log| crate::tail(log, 10)),
            ..Default::default()
        }
    }
}

impl PodmanKube {
    /// Keeps the container's log in the run directory, then removes the pod (once).
    fn remove_pod(&mut self) {
        let Some(pod) = self.pod.take() else {
            return;
        };
        if let (Some(log), Ok(out)) = (
            &self.log,
            Command::new("podman")
                .args(["logs", &format!("{pod}-main")])
                .output(),
        ) {
            let mut text = out.stdout;
            text.extend(out.stderr);
            let _ = std::fs::write(log, text);
        }
        let _ = process::output("podman", &["pod", "rm", "--force", &pod]);
    }
}
