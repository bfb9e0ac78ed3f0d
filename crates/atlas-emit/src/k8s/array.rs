//! An array on Kubernetes, with Slurm's meaning kept: every task runs (none is dropped), each
//! task has the walltime (on its pod, never on the whole array), and a failed task never stops
//! the others.
//!
//! - servers with `backoffLimitPerIndex` (1.29+): one Indexed Job, `backoffLimitPerIndex: 0`
//!   (a failed index is not retried and the others go on), `parallelism` from `%N`;
//! - older servers: one plain Job per index, `NAME-I`, each setting `JOB_COMPLETION_INDEX=I`
//!   itself so the pod sees what an Indexed Job's would; `%N` is not enforced by the server
//!   then (the gaps say so; `atlas run` creates them N at a time);
//! - `--flavor indexed-job` on 1.21–1.28: one Indexed Job with `backoffLimit: 0`, where one
//!   failed task ends the Job (the gaps say so).

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{EnvVar, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use atlas_spec::Workflow;

use super::{Flavor, K8sError, Object, ServerVersion};

/// The most Jobs one array becomes on a server without Indexed Job.
pub const MAX_JOBS_PER_ARRAY: u64 = 1000;

/// The label that carries a task's index on its Job and pod.
pub const INDEX_LABEL: &str = "atlas.dev/array-index";

/// The Jobs for `workflow`'s array as `flavor` (IndexedJob or JobPerIndex).
pub(super) fn jobs(
    workflow: &Workflow,
    flavor: Flavor,
    server: ServerVersion,
    meta: ObjectMeta,
    mut template: PodTemplateSpec,
) -> Result<Vec<Object>, K8sError> {
    let array = workflow
        .spec
        .scheduling
        .array
        .as_ref()
        .ok_or_else(|| K8sError::Refused(format!("--flavor {flavor} needs an array")))?;
    let count = array.task_count();
    if !array.additional_ranges.is_empty() && count > MAX_JOBS_PER_ARRAY {
        return Err(K8sError::Refused(format!(
            "the array lists {count} task ids; each pod picks its id from the list, and lists \
             of more than {MAX_JOBS_PER_ARRAY} are refused: use start-end:step ranges"
        )));
    }
    if let Some(pod) = template.spec.as_mut() {
        // The walltime is each task's, as in Slurm.
        pod.active_deadline_seconds = workflow.spec.resources.walltime.map(|d| d.as_secs() as i64);
    }
    let spec = |template, completions, parallelism, indexed: bool| JobSpec {
        template,
        completions,
        parallelism,
        completion_mode: indexed.then(|| "Indexed".to_string()),
        backoff_limit: (!(indexed && server.has_backoff_limit_per_index())).then_some(0),
        backoff_limit_per_index: (indexed && server.has_backoff_limit_per_index()).then_some(0),
        ttl_seconds_after_finished: Some(86_400),
        ..Default::default()
    };
    if flavor == Flavor::IndexedJob {
        let count = i32::try_from(count).unwrap_or(i32::MAX);
        let parallel = array.max_parallel.map_or(count, |m| (m as i32).min(count));
        return Ok(vec![Object::Job(Box::new(Job {
            metadata: meta,
            spec: Some(spec(template, Some(count), Some(parallel), true)),
            ..Default::default()
        }))]);
    }
    if count > MAX_JOBS_PER_ARRAY {
        return Err(K8sError::Refused(format!(
            "the array has {count} tasks; on Kubernetes {server} (no Indexed Job with \
             independent tasks) each becomes its own Job, and more than {MAX_JOBS_PER_ARRAY} \
             Jobs are refused: split the array or use a 1.29+ server"
        )));
    }
    let name = meta.name.clone().unwrap_or_default();
    Ok((0..count)
        .map(|index| {
            let mut meta = meta.clone();
            meta.name = Some(format!("{name}-{index}"));
            meta.labels
                .get_or_insert_with(Default::default)
                .insert(INDEX_LABEL.into(), index.to_string());
            let mut template = template.clone();
            template
                .metadata
                .get_or_insert_with(Default::default)
                .labels
                .get_or_insert_with(Default::default)
                .insert(INDEX_LABEL.into(), index.to_string());
            for container in template
                .spec
                .iter_mut()
                .flat_map(|p| p.containers.iter_mut())
            {
                container.env.get_or_insert_with(Vec::new).push(EnvVar {
                    name: "JOB_COMPLETION_INDEX".into(),
                    value: Some(index.to_string()),
                    ..Default::default()
                });
            }
            Object::Job(Box::new(Job {
                metadata: meta,
                spec: Some(spec(template, None, None, false)),
                ..Default::default()
            }))
        })
        .collect())
}
