//! The Kubernetes operator's loop (`atlas operator`): kube-rs's runtime `Controller` over
//! `StorageService` resources. Each reconcile observes the service (its StatefulSets, pods and
//! the master's view), plans with the same reconcile logic as the plain-host driver, carries
//! out the plan through the API and writes the status (its memory included) back to the
//! resource; then again 2 seconds later, or at once when the resource changes. A spec the
//! operator cannot take gets phase `Failed` and the reason, and nothing else is touched.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::cluster::{Cluster, ClusterError};
use crate::operate::Tick;
use crate::reconcile::{self, Timing};
use crate::spec::{check, crd, StorageService, StorageServiceStatus};
use crate::status;

/// What the caller is told after each reconcile: the service (`namespace/name`) and the pass.
pub type Report = dyn Fn(&str, &Tick) + Send + Sync;

struct Context {
    client: Client,
    timing: Timing,
    report: Box<Report>,
}

/// Installs or updates the CRD (server-side apply), then runs the controller over the
/// namespace (every namespace when `None`) until the future is dropped.
pub async fn run(
    client: Client,
    namespace: Option<&str>,
    timing: Timing,
    report: Box<Report>,
) -> Result<(), ClusterError> {
    install_crd(&client).await?;
    let services: Api<StorageService> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let context = Arc::new(Context {
        client,
        timing,
        report,
    });
    Controller::new(services, watcher::Config::default())
        .run(reconcile_one, on_error, context)
        .for_each(|_| futures::future::ready(()))
        .await;
    Ok(())
}

/// The CRD applied (created, or updated to this operator's schema) and established.
async fn install_crd(client: &Client) -> Result<(), ClusterError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = "storageservices.atlas.dev";
    crds.patch(
        name,
        &PatchParams::apply("atlas-operator").force(),
        &Patch::Apply(crd()),
    )
    .await
    .map_err(|source| ClusterError::Api {
        what: format!("apply the CRD {name}"),
        source,
    })?;
    for _ in 0..60 {
        let established = crds.get_opt(name).await.ok().flatten().is_some_and(|c| {
            c.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
        if established {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(ClusterError::Exec(format!(
        "the CRD {name} was not established within 30 s"
    )))
}

async fn reconcile_one(
    service: Arc<StorageService>,
    context: Arc<Context>,
) -> Result<Requeue, ClusterError> {
    let namespace = service.namespace().unwrap_or_else(|| "default".into());
    let name = service.name_any();
    let label = format!("{namespace}/{name}");
    let previous = service.status.clone().unwrap_or_default();
    let api: Api<StorageService> = Api::namespaced(context.client.clone(), &namespace);
    if let Err(why) = takes(&service) {
        let status = StorageServiceStatus {
            phase: Some("Failed".into()),
            reason: Some(why.clone()),
            observed_generation: service.metadata.generation,
            ..previous
        };
        write_status(&api, &name, &status).await?;
        report(&context, &label, &service.spec, &status, &[], &[why], &[]);
        return Ok(Requeue::requeue(Duration::from_secs(30)));
    }
    let mut cluster = Cluster::new(context.client.clone(), &service);
    cluster.ensure_base().await?;
    let seen = cluster.observe().await?;
    let plan = reconcile::plan(&service.spec, &previous.memory, &seen, context.timing);
    let (mut applied, mut problems) = (Vec::new(), Vec::new());
    for action in &plan.actions {
        match cluster.apply(action).await {
            Ok(()) => applied.push(action.clone()),
            Err(e) => problems.push(format!("{}: {e}", crate::operate::describe(action))),
        }
    }
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut status = status::status(&plan, &seen, &previous, service.metadata.generation, &now);
    status.master_address = cluster.master_address.clone();
    write_status(&api, &name, &status).await?;
    report(
        &context,
        &label,
        &service.spec,
        &status,
        &applied,
        &problems,
        &plan.events,
    );
    Ok(Requeue::requeue(Duration::from_secs(2)))
}

/// Whether the operator takes the resource: its spec's checks, and a name short enough for
/// its pods' names (`NAME-chunkserver-63`, a DNS label).
fn takes(service: &StorageService) -> Result<(), String> {
    let name = service.name_any();
    if name.len() > 40 {
        return Err(format!(
            "metadata.name {name:?} is longer than 40 characters: its pods' names would not fit"
        ));
    }
    check(&service.spec).map_err(|e| e.to_string())
}

async fn write_status(
    api: &Api<StorageService>,
    name: &str,
    status: &StorageServiceStatus,
) -> Result<(), ClusterError> {
    let patch = json!({ "status": status });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| ClusterError::Api {
            what: format!("write the status of StorageService {name}"),
            source,
        })?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn report(
    context: &Context,
    label: &str,
    spec: &crate::StorageServiceSpec,
    status: &StorageServiceStatus,
    applied: &[crate::reconcile::Action],
    problems: &[String],
    events: &[String],
) {
    (context.report)(
        label,
        &Tick {
            spec: Some(spec),
            status,
            applied,
            problems,
            events,
            actions_total: applied.len() as u64,
        },
    );
}

fn on_error(service: Arc<StorageService>, error: &ClusterError, context: Arc<Context>) -> Requeue {
    let label = format!(
        "{}/{}",
        service.namespace().unwrap_or_default(),
        service.name_any()
    );
    let status = service.status.clone().unwrap_or_default();
    report(
        &context,
        &label,
        &service.spec,
        &status,
        &[],
        &[error.to_string()],
        &[],
    );
    Requeue::requeue(Duration::from_secs(5))
}
