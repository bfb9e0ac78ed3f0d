//! The objects of one run: what `atlas emit k8s` makes for the workflow, named for the run.
//!
//! - the Job is `atlas-RUN` and its pods carry the label `atlas.dev/run=RUN`;
//! - the workflow's ConfigMap is `atlas-RUN-workflow`, owned by the Job (deleted with it);
//! - the PersistentVolumeClaims keep the workflow's names: they hold data shared by runs;
//! - the agent gets the run's id and interval, and writes its records to stdout as well, so
//!   the pod log carries them here (`--records-to-stdout`; `--array-task` in an Indexed Job).

use std::collections::BTreeMap;

use atlas_emit::k8s::{self, Flavor, K8sOptions, Object};
use atlas_spec::Workflow;
use k8s_openapi::api::batch::v1::Job as K8sJob;
use k8s_openapi::api::core::v1::{ConfigMap, EnvVar, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{BackendError, Job};

/// The label every object and pod of a run carries.
pub(crate) const RUN_LABEL: &str = "atlas.dev/run";

/// What to create for one run, in order: claims (shared), the Job, then its ConfigMap.
pub(crate) struct RunObjects {
    pub claims: Vec<PersistentVolumeClaim>,
    pub job: K8sJob,
    pub config_map: ConfigMap,
}

impl RunObjects {
    /// The Job's name.
    pub fn job_name(&self) -> &str {
        self.job.metadata.name.as_deref().unwrap_or_default()
    }
}

fn label(meta: &mut ObjectMeta, run: &str) {
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(RUN_LABEL.into(), run.into());
}

fn set_env(env: &mut Vec<EnvVar>, name: &str, value: String) {
    env.retain(|e| e.name != name);
    env.push(EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    });
}

/// The objects for `job`'s run of `workflow` with `image`.
pub(crate) fn run_objects(
    job: &Job<'_>,
    workflow: &Workflow,
    image: &str,
) -> Result<RunObjects, BackendError> {
    let indexed = workflow.spec.scheduling.array.is_some();
    let mut agent_flags = vec!["--records-to-stdout".to_string()];
    if indexed {
        agent_flags.push("--array-task".into());
    }
    let emitted = k8s::k8s_objects(
        workflow,
        &K8sOptions {
            flavor: Flavor::Auto,
            openshift: false,
            image: Some(image.into()),
            containerfile: None,
            agent_flags,
        },
    )
    .map_err(|e| BackendError::Rejected(e.to_string()))?;
    if !matches!(emitted.flavor, Flavor::Job | Flavor::IndexedJob) {
        return Err(BackendError::Rejected(format!(
            "this workflow is a {:?} (multi-node); the kubernetes backend runs Jobs and Indexed \
             Jobs only: `atlas emit k8s` writes the {:?} for kubectl and its operator",
            emitted.flavor, emitted.flavor
        )));
    }
    let name = format!("atlas-{}", job.run_id);
    let config_name = format!("{name}-workflow");
    let (mut claims, mut found_job, mut config_map) = (Vec::new(), None, None);
    for object in emitted.objects {
        match object {
            Object::Claim(claim) => claims.push(*claim),
            Object::Job(job) => found_job = Some(*job),
            Object::ConfigMap(map) => config_map = Some(*map),
            _ => {}
        }
    }
    let (Some(mut k8s_job), Some(mut config_map)) = (found_job, config_map) else {
        return Err(BackendError::Rejected(
            "atlas emit k8s made no Job for this workflow".into(),
        ));
    };
    config_map.metadata.name = Some(config_name.clone());
    label(&mut config_map.metadata, job.run_id);
    k8s_job.metadata.name = Some(name);
    label(&mut k8s_job.metadata, job.run_id);
    let template = &mut k8s_job
        .spec
        .as_mut()
        .expect("an emitted Job has a spec")
        .template;
    label(
        template.metadata.get_or_insert_with(Default::default),
        job.run_id,
    );
    let pod = template.spec.as_mut().expect("an emitted pod has a spec");
    for volume in pod.volumes.iter_mut().flatten() {
        if let Some(source) = volume.config_map.as_mut() {
            source.name = config_name.clone();
        }
    }
    for container in &mut pod.containers {
        let env = container.env.get_or_insert_with(Vec::new);
        set_env(env, "ATLAS_RUN_ID", job.run_id.into());
        set_env(
            env,
            "ATLAS_INTERVAL",
            format!("{}ms", job.interval.as_millis()),
        );
    }
    Ok(RunObjects {
        claims,
        job: k8s_job,
        config_map,
    })
}
