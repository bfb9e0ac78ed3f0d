//! After-hours windows for a cluster without Atlas (`atlas emit k8s --windows TARGET`): the
//! workflow's Job made windowed, and two CronJobs that close and open its windows.
//!
//! - The Job carries the label `atlas.dev/window: NAME`; its agent runs with
//!   `--freeze-on-stop` (the SIGTERM of a pod deleted at the close is a freeze: checkpoint,
//!   kept on the run's claim, then a quiet exit) and with a run id that is the workflow's name
//!   rather than the pod's, so every Job of it works in the same run directory on the claim;
//!   the pod's grace is the checkpoint's plus 30 s.
//! - `NAME-windows-close` runs `atlas windows close-jobs --selector atlas.dev/window=NAME` in
//!   the workflow's image as the ServiceAccount `NAME-windows`, whose Role may only list and
//!   delete Jobs in the namespace: the Jobs are deleted, their pods stopped (frozen).
//! - `NAME-windows-open` is the workflow's Job as a CronJob's template: at the open it starts
//!   a Job whose agent resumes the run from its spool and checkpoint on the claim (a run that
//!   ended makes it a no-op). It needs no permission at all.
//!
//! This works on every server (no Job `suspend`: a Job deleted and another started); a
//! CronJob's `timeZone` needs 1.27, so older servers take hours in UTC only.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use atlas_spec::Workflow;

use super::{K8sError, Object, ServerVersion};

/// The label that marks a windowed workflow's Jobs.
pub const WINDOW_LABEL: &str = "atlas.dev/window";

/// A daily window's two schedules (`atlas_backends::schedule::Crons`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowCrons {
    pub open: String,
    pub close: String,
    pub time_zone: Option<String>,
}

/// Makes the emitted objects windowed: the Job changed, its CronJobs and their account added.
pub fn add(
    objects: &mut Vec<Object>,
    workflow: &Workflow,
    name: &str,
    crons: &WindowCrons,
    server: ServerVersion,
) -> Result<(), K8sError> {
    let refuse = |why: &str| Err(K8sError::Refused(format!("--windows: {why}")));
    let Some(checkpoint) = &workflow.spec.checkpoint else {
        return refuse("the workflow has no spec.checkpoint: a window's close would lose its work");
    };
    if workflow.spec.scheduling.array.is_some() {
        return refuse("an array's tasks would share one run directory; windows take a single job");
    }
    // CronJob names are at most 52 characters (the controller appends 11 to its Jobs').
    if name.len() + "-windows-close".len() > 52 {
        return refuse(&format!(
            "the CronJob `{name}-windows-close` would be longer than Kubernetes' 52 characters: give the workflow a name of at most 38"
        ));
    }
    if workflow.spec.scheduling.requeue == Some(false) {
        return refuse("the workflow says it must not be stopped and started again (spec.scheduling.requeue: false)");
    }
    if crons.time_zone.is_some()
        && server
            < (ServerVersion {
                major: 1,
                minor: 27,
            })
    {
        return refuse(&format!(
            "a CronJob's timeZone needs Kubernetes 1.27; for {server}, give the window's hours in UTC (no `timezone`)"
        ));
    }
    let jobs: Vec<&mut Job> = objects
        .iter_mut()
        .filter_map(|o| match o {
            Object::Job(job) => Some(job.as_mut()),
            _ => None,
        })
        .collect();
    let [job] = <[&mut Job; 1]>::try_from(jobs).map_err(|jobs| {
        K8sError::Refused(format!(
            "--windows: the workflow emits {} Jobs (an array, or another flavor); windows take one Job",
            jobs.len()
        ))
    })?;
    let grace = checkpoint.grace().as_secs() as i64 + 30;
    windowed(job, name, grace);
    let open = cron_job(server, name, "open", crons, &crons.open, job_template(job))?;
    let account = format!("{name}-windows");
    let close = cron_job(
        server,
        name,
        "close",
        crons,
        &crons.close,
        closer(job, name, &account),
    )?;
    objects.extend(account_objects(&account, name));
    objects.push(Object::CronJob(Box::new(open)));
    objects.push(Object::CronJob(Box::new(close)));
    Ok(())
}

/// The Job labelled, its agent freezing on a stop, its run id the workflow's, its grace long
/// enough for the checkpoint.
fn windowed(job: &mut Job, name: &str, grace: i64) {
    let label = |meta: &mut ObjectMeta| {
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(WINDOW_LABEL.into(), name.into());
    };
    label(&mut job.metadata);
    let Some(spec) = job.spec.as_mut() else {
        return;
    };
    label(spec.template.metadata.get_or_insert_with(Default::default));
    let Some(pod) = spec.template.spec.as_mut() else {
        return;
    };
    pod.termination_grace_period_seconds = Some(grace);
    for init in pod.init_containers.iter_mut().flatten() {
        if let Some(env) = init.env.as_mut() {
            env.retain(|e| e.name != "ATLAS_RUN_ID");
            env.push(EnvVar {
                name: "ATLAS_RUN_ID".into(),
                value: Some(name.into()),
                ..Default::default()
            });
        }
    }
    for container in &mut pod.containers {
        let env = container.env.get_or_insert_with(Vec::new);
        env.retain(|e| e.name != "ATLAS_RUN_ID");
        env.insert(
            0,
            EnvVar {
                name: "ATLAS_RUN_ID".into(),
                value: Some(name.into()),
                ..Default::default()
            },
        );
        if let Some(args) = container.args.as_mut() {
            args.push("--freeze-on-stop".into());
        } else if let Some(command) = container.command.as_mut() {
            // `bash -c "…; exec /opt/atlas/entrypoint.sh ARGS"`: the flag at the end.
            if let Some(script) = command.last_mut() {
                script.push_str(" --freeze-on-stop");
            }
        }
    }
}

/// The Job's metadata and spec as a CronJob's `jobTemplate`.
fn job_template(job: &Job) -> serde_json::Value {
    let labels = job.metadata.labels.clone().unwrap_or_default();
    serde_json::json!({
        "metadata": { "labels": labels },
        "spec": job.spec,
    })
}

/// The close's Job: `atlas windows close-jobs` in the workflow's image, as `account`.
fn closer(job: &Job, name: &str, account: &str) -> serde_json::Value {
    let pod = job.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let image = pod
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let security = pod.and_then(|p| p.security_context.clone());
    serde_json::json!({
        "metadata": { "labels": { "app.kubernetes.io/managed-by": "atlas" } },
        "spec": {
            "backoffLimit": 2,
            "ttlSecondsAfterFinished": 86_400,
            "template": { "spec": {
                "serviceAccountName": account,
                "restartPolicy": "Never",
                "securityContext": security,
                "containers": [{
                    "name": "close",
                    "image": image,
                    "command": ["/usr/local/bin/atlas", "windows", "close-jobs",
                                "--selector", format!("{WINDOW_LABEL}={name}")],
                    "resources": {
                        "requests": { "cpu": "50m", "memory": "64Mi" },
                        "limits": { "cpu": "500m", "memory": "128Mi" }
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "capabilities": { "drop": ["ALL"] }
                    }
                }]
            }}
        }
    })
}

fn cron_job(
    server: ServerVersion,
    name: &str,
    which: &str,
    crons: &WindowCrons,
    schedule: &str,
    template: serde_json::Value,
) -> Result<serde_json::Value, K8sError> {
    let mut spec = serde_json::json!({
        "schedule": schedule,
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 300,
        "successfulJobsHistoryLimit": 1,
        "failedJobsHistoryLimit": 1,
        "jobTemplate": template,
    });
    if let Some(zone) = &crons.time_zone {
        spec["timeZone"] = zone.clone().into();
    }
    Ok(serde_json::json!({
        "apiVersion": server.cronjob_api_version(),
        "kind": "CronJob",
        "metadata": {
            "name": format!("{name}-windows-{which}"),
            "labels": {
                "app.kubernetes.io/managed-by": "atlas",
                "atlas.dev/workflow": name,
                WINDOW_LABEL: name,
            }
        },
        "spec": spec,
    }))
}

/// The close's ServiceAccount, and a Role that may only list and delete Jobs, bound to it.
fn account_objects(account: &str, name: &str) -> Vec<Object> {
    let meta = ObjectMeta {
        name: Some(account.into()),
        labels: Some(BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_string(),
                "atlas".to_string(),
            ),
            (WINDOW_LABEL.to_string(), name.to_string()),
        ])),
        ..Default::default()
    };
    vec![
        Object::ServiceAccount(Box::new(ServiceAccount {
            metadata: meta.clone(),
            automount_service_account_token: Some(true),
            ..Default::default()
        })),
        Object::Role(Box::new(Role {
            metadata: meta.clone(),
            rules: Some(vec![PolicyRule {
                api_groups: Some(vec!["batch".into()]),
                resources: Some(vec!["jobs".into()]),
                verbs: vec!["list".into(), "delete".into()],
                ..Default::default()
            }]),
        })),
        Object::RoleBinding(Box::new(RoleBinding {
            metadata: meta,
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: account.into(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: account.into(),
                ..Default::default()
            }]),
        })),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::{k8s_objects, to_yaml, K8sOptions};
    use super::*;

    fn workflow(extra: &str) -> Workflow {
        let text = format!("apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {{name: train}}\nspec:\n{extra}  phases: [{{name: a, run: 'python3 train.py'}}]\n");
        atlas_spec::parse_workflow("w.yaml", &text).unwrap()
    }

    fn options(server: ServerVersion) -> K8sOptions {
        K8sOptions {
            flavor: super::super::Flavor::Auto,
            openshift: false,
            image: Some("registry.example/train:1".into()),
            containerfile: None,
            agent_flags: Vec::new(),
            server,
            gpu_products: Default::default(),
            placement: Default::default(),
        }
    }

    fn emit(w: &Workflow, server: ServerVersion, zone: Option<&str>) -> Result<String, K8sError> {
        let mut objects = k8s_objects(w, &options(server))?.objects;
        let crons = WindowCrons {
            open: "0 19 * * 1-5".into(),
            close: "0 7 * * 2-6".into(),
            time_zone: zone.map(String::from),
        };
        add(&mut objects, w, "train", &crons, server)?;
        Ok(to_yaml(&objects))
    }

    const OLD: ServerVersion = ServerVersion {
        major: 1,
        minor: 20,
    };

    #[test]
    fn the_job_is_windowed_and_the_close_may_only_list_and_delete_jobs() {
        let w = workflow("  checkpoint: {path: ck, grace: 1m}\n");
        let yaml = emit(&w, OLD, None).unwrap();
        assert_eq!(
            yaml.matches("apiVersion: batch/v1beta1\nkind: CronJob")
                .count(),
            2,
            "{yaml}"
        );
        assert!(yaml.contains("schedule: 0 7 * * 2-6") && yaml.contains("schedule: 0 19 * * 1-5"));
        assert!(
            yaml.contains("--freeze-on-stop") && yaml.contains("terminationGracePeriodSeconds: 90")
        );
        assert!(yaml.contains("atlas.dev/window: train"));
        assert!(yaml.contains("- close-jobs\n") && yaml.contains("- atlas.dev/window=train\n"));
        assert!(yaml.contains("verbs:\n  - list\n  - delete\n"), "{yaml}");
        assert!(!yaml.contains("timeZone"));
        // The run id is the workflow's, not the pod's: every Job of it shares the run directory.
        assert!(!yaml.contains("fieldPath: metadata.name"), "{yaml}");
        assert!(yaml.contains("- name: ATLAS_RUN_ID\n") && yaml.contains("value: train\n"));
        let new = emit(&w, ServerVersion::NEWEST, Some("Europe/Berlin")).unwrap();
        assert!(
            new.contains("apiVersion: batch/v1\nkind: CronJob")
                && new.contains("timeZone: Europe/Berlin")
        );
    }

    #[test]
    fn what_cannot_be_windowed_is_refused_with_the_reason() {
        let refused = |w: &Workflow, server, zone| emit(w, server, zone).unwrap_err().to_string();
        assert!(refused(&workflow(""), OLD, None).contains("no spec.checkpoint"));
        let zoned = workflow("  checkpoint: {path: ck}\n");
        assert!(
            refused(&zoned, OLD, Some("Europe/Berlin")).contains("timeZone needs Kubernetes 1.27")
        );
        let no_requeue = workflow("  checkpoint: {path: ck}\n  scheduling: {requeue: false}\n");
        assert!(refused(&no_requeue, OLD, None).contains("requeue: false"));
        let array =
            workflow("  checkpoint: {path: ck}\n  scheduling: {array: {start: 0, end: 3}}\n");
        assert!(refused(&array, OLD, None).contains("an array's tasks"));
        assert!(refused(&array, ServerVersion::NEWEST, None).contains("an array's tasks"));
        let w = workflow("  checkpoint: {path: ck}\n");
        let objects = || k8s_objects(&w, &options(OLD)).unwrap().objects;
        let long = "b".repeat(39);
        let crons = WindowCrons {
            open: "0 1 * * *".into(),
            close: "0 2 * * *".into(),
            time_zone: None,
        };
        let said = add(&mut objects(), &w, &long, &crons, OLD)
            .unwrap_err()
            .to_string();
        assert!(said.contains("52 characters"), "{said}");
        assert!(add(&mut objects(), &w, &long[..38], &crons, OLD).is_ok());
    }
}
