//! The Kubernetes driver: a `StorageService` as three StatefulSets (`NAME-master`,
//! `NAME-metalogger`, `NAME-chunkserver`), each with its headless Service and a
//! PersistentVolumeClaim per pod, and a PodDisruptionBudget of one chunk server at a time.
//! The pods use the node's network (this cluster, like many HPC sites' storage nodes, has no
//! service proxy): the master listens on `port`…`port+2`, chunk server N on `port+3+N`, and
//! clients on the nodes mount it at the master pod's host address. Upgrades are the
//! operator's (`OnDelete`): it sets the image and deletes one pod at a time. It observes the
//! pods and the master's view (`mfs-run view` in the master's pod) and carries out the
//! reconcile logic's actions with the API.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::mfscli::MasterView;
use crate::reconcile::{Member, Role};
use crate::spec::{bytes, StorageService};

/// Labels of every object of a service.
pub const SERVICE_LABEL: &str = "atlas.dev/storage-service";
pub const ROLE_LABEL: &str = "atlas.dev/role";

/// Why the API refused.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Exec(String),
}

fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Api { what, source }
}

/// One service in one namespace.
pub struct Cluster {
    client: Client,
    namespace: String,
    name: String,
    port: u16,
    service: StorageService,
    /// What the master said at the last observation.
    pub view: MasterView,
    /// The master pod's host address (`ip:port` for `mfsmount -H ip -P port`).
    pub master_address: Option<String>,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Master => "master",
        Role::Metalogger => "metalogger",
        Role::ChunkServer => "chunkserver",
    }
}

impl Cluster {
    pub fn new(client: Client, service: &StorageService) -> Self {
        Cluster {
            namespace: service.namespace().unwrap_or_else(|| "default".into()),
            name: service.name_any(),
            port: service.spec.port.unwrap_or(crate::spec::DEFAULT_PORT),
            service: service.clone(),
            client,
            view: MasterView::default(),
            master_address: None,
        }
    }

    fn set_name(&self, role: Role) -> String {
        format!("{}-{}", self.name, role_name(role))
    }

    fn pod_name(&self, member: Member) -> String {
        format!("{}-{}", self.set_name(member.role), member.index)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn sets(&self) -> Api<StatefulSet> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn owner(&self) -> OwnerReference {
        let mut owner = self.service.controller_owner_ref(&()).unwrap_or_default();
        owner.block_owner_deletion = Some(true);
        owner
    }

    fn labels(&self, role: Option<Role>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([(SERVICE_LABEL.to_string(), self.name.clone())]);
        if let Some(role) = role {
            labels.insert(ROLE_LABEL.into(), role_name(role).into());
        }
        labels
    }

    /// The headless Services and the PodDisruptionBudget, created when absent.
    pub async fn ensure_base(&self) -> Result<(), ClusterError> {
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        for role in [Role::Master, Role::Metalogger, Role::ChunkServer] {
            let name = self.set_name(role);
            if services.get_opt(&name).await.map_err(api(&name))?.is_some() {
                continue;
            }
            let service: Service = serde_json::from_value(json!({
                "metadata": { "name": name, "labels": self.labels(Some(role)),
                              "ownerReferences": [self.owner()] },
                "spec": { "clusterIP": "None", "selector": self.labels(Some(role)),
                          "ports": [{ "name": "mfs", "port": self.port_of(role) }] }
            }))
            .expect("a Service");
            services
                .create(&PostParams::default(), &service)
                .await
                .map_err(api(format!("create Service {name}")))?;
        }
        self.ensure_budget().await
    }

    /// The first port of a role (chunk server 0's for chunk servers).
    fn port_of(&self, role: Role) -> u16 {
        match role {
            Role::Master => self.port + 2,
            Role::Metalogger => self.port,
            Role::ChunkServer => self.port + 3,
        }
    }

    /// One chunk server down at a time, by eviction (policy/v1beta1 on 1.20, v1 from 1.21).
    async fn ensure_budget(&self) -> Result<(), ClusterError> {
        let name = self.set_name(Role::ChunkServer);
        for version in ["v1", "v1beta1"] {
            let gvk = GroupVersionKind::gvk("policy", version, "PodDisruptionBudget");
            let resource = ApiResource::from_gvk(&gvk);
            let budgets: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &self.namespace, &resource);
            let mut budget = DynamicObject::new(&name, &resource);
            budget.metadata.labels = Some(self.labels(Some(Role::ChunkServer)));
            budget.metadata.owner_references = Some(vec![self.owner()]);
            budget.data = json!({ "spec": { "maxUnavailable": 1,
                "selector": { "matchLabels": self.labels(Some(Role::ChunkServer)) } } });
            match budgets.create(&PostParams::default(), &budget).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => return Ok(()), // there already
                Err(kube::Error::Api(e)) if e.code == 404 => continue,      // version not served
                Err(e) => return Err(api(format!("create PodDisruptionBudget {name}"))(e)),
            }
        }
        Ok(())
    }

    /// A role's StatefulSet with `replicas` pods of `image`.
    fn set(&self, role: Role, replicas: u32, image: &str) -> StatefulSet {
        let storage = match role {
            Role::ChunkServer => self.service.spec.storage_per_chunk_server.clone(),
            _ => "1Gi".to_string(),
        };
        let storage = bytes(&storage).map_or("1Gi".to_string(), |_| storage);
        serde_json::from_value(json!({
            "metadata": { "name": self.set_name(role), "labels": self.labels(Some(role)),
                          "ownerReferences": [self.owner()] },
            "spec": {
                "replicas": replicas,
                "serviceName": self.set_name(role),
                "podManagementPolicy": "Parallel",
                "updateStrategy": { "type": "OnDelete" },
                "selector": { "matchLabels": self.labels(Some(role)) },
                "template": {
                    "metadata": { "labels": self.labels(Some(role)) },
                    "spec": {
                        "hostNetwork": true,
                        "dnsPolicy": "ClusterFirstWithHostNet",
                        "terminationGracePeriodSeconds": 10,
                        "containers": [{
                            "name": "mfs",
                            "image": image,
                            "args": [role_name(role)],
                            "env": [
                                { "name": "MFS_PORT_BASE", "value": self.port.to_string() },
                                { "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }
                            ],
                            "volumeMounts": [{ "name": "data", "mountPath": "/data" }]
                        }]
                    }
                },
                "volumeClaimTemplates": [{
                    "metadata": { "name": "data", "labels": self.labels(Some(role)) },
                    "spec": { "accessModes": ["ReadWriteOnce"],
                              "resources": { "requests": { "storage": storage } } }
                }]
            }
        }))
        .expect("a StatefulSet")
    }
}

#[path = "cluster_observe.rs"]
mod observe;
