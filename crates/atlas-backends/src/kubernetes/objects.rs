//! The objects of one run: what `atlas emit k8s` makes for the workflow, named for the run.
//!
//! - the Job is `atlas-RUN` (an array on a server without independent Indexed Job tasks:
//!   `atlas-RUN-I`, one per index) and its pods carry the label `atlas.dev/run=RUN`;
//! - the workflow's ConfigMap is `atlas-RUN-workflow`, owned by the Job (deleted with it);
//! - the PersistentVolumeClaims keep the workflow's names: they hold data shared by runs;
//! - the agent gets the run's id and interval, and writes its records to stdout as well, so
//!   the pod log carries them here (`--records-to-stdout`; `--array-task` in an Indexed Job).

use std::collections::BTreeMap;

use atlas_emit::k8s::{self, Flavor, K8sOptions, Object, ServerVersion};
use atlas_spec::Workflow;
use k8s_openapi::api::batch::v1::Job as K8sJob;
use k8s_openapi::api::core::v1::{ConfigMap, EnvVar, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{BackendError, Job};

/// The label every object and pod of a run carries.
pub(crate) const RUN_LABEL: &str = "atlas.dev/run";

/// What to create for one run, in order: claims (shared), the Jobs, then their ConfigMap.
pub(crate) struct RunObjects {
    pub claims: Vec<PersistentVolumeClaim>,
    /// One Job, or one per array index.
    pub jobs: Vec<K8sJob>,
    pub config_map: ConfigMap,
    /// At most this many of the Jobs run at once (an array's `%N` with one Job per index).
    pub max_parallel: Option<u32>,
    /// An MPI workflow's workers, key and hostfile (the Job above is its launcher).
    pub mpi: Option<super::mpi::Mpi>,
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
    server: ServerVersion,
    gpu_products: &BTreeMap<String, Vec<String>>,
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
            server,
            gpu_products: gpu_products.clone(),
            placement: Default::default(),
        },
    )
    .map_err(|e| BackendError::Rejected(e.to_string()))?;
    if !matches!(
        emitted.flavor,
        Flavor::Job | Flavor::IndexedJob | Flavor::JobPerIndex | Flavor::Mpijob
    ) {
        return Err(BackendError::Rejected(format!(
            "this workflow is a {:?} (multi-node); the kubernetes backend runs Jobs, Indexed \
             Jobs and MPI jobs only: `atlas emit k8s` writes the {:?} for kubectl and its operator",
            emitted.flavor, emitted.flavor
        )));
    }
    let name = format!("atlas-{}", job.run_id);
    let config_name = format!("{name}-workflow");
    let (mut claims, mut jobs, mut config_map, mut mpi) = (Vec::new(), Vec::new(), None, None);
    for object in emitted.objects {
        match object {
            Object::Claim(claim) => claims.push(*claim),
            Object::Job(job) => jobs.push(*job),
            Object::ConfigMap(map) => config_map = Some(*map),
            Object::MpiJob(mpijob) => {
                let (launcher, parts) = super::mpi::from_mpijob(*mpijob, job.run_id, job.run_dir)?;
                jobs.push(launcher);
                mpi = Some(parts);
            }
            _ => {}
        }
    }
    let Some(mut config_map) = config_map.filter(|_| !jobs.is_empty()) else {
        return Err(BackendError::Rejected(
            "atlas emit k8s made no Job for this workflow".into(),
        ));
    };
    config_map.metadata.name = Some(config_name.clone());
    label(&mut config_map.metadata, job.run_id);
    let per_index = jobs.len() > 1;
    for (index, k8s_job) in jobs.iter_mut().enumerate() {
        k8s_job.metadata.name = Some(if per_index {
            format!("{name}-{index}")
        } else {
            name.clone()
        });
        for_run(k8s_job, job, &config_name);
    }
    Ok(RunObjects {
        claims,
        jobs,
        config_map,
        max_parallel: workflow
            .spec
            .scheduling
            .array
            .as_ref()
            .and_then(|a| a.max_parallel)
            .filter(|_| per_index),
        mpi,
    })
}

/// Names one emitted Job's pods and volumes for the run: the run label, the run's ConfigMap,
/// the run's id and interval for the agent.
fn for_run(k8s_job: &mut K8sJob, job: &Job<'_>, config_name: &str) {
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
        if let Some(source) = volume
            .config_map
            .as_mut()
            .filter(|_| volume.name == "workflow")
        {
            source.name = config_name.to_string();
        }
    }
    for init in pod.init_containers.iter_mut().flatten() {
        // The working directory's copy onto the claim, under the run's id.
        if let Some(env) = init.env.as_mut() {
            set_env(env, "ATLAS_RUN_ID", job.run_id.into());
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
}
