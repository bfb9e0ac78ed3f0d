//! `atlas emit k8s --node-agent`: `atlas node-agent` on every node of a cluster, as a
//! DaemonSet (with its Namespace and a ServiceAccount that holds no token and no role: the agent
//! reads the node's `/proc`, never the API).
//!
//! The pod shares the host's PID namespace (it sees every process of the node, and which pod
//! each belongs to from its cgroup) and network (it answers on the node's address, port
//! [`PORT`], where `atlas nodes` asks, and Prometheus scrapes by the annotations). It runs as
//! an unprivileged user with a read-only root, no capabilities and no privilege escalation,
//! tolerates every taint (a tainted node is still a node to watch), and asks for little
//! (10 m CPU, 32 MiB; at most 64 MiB). With a server it also pushes to `atlas serve`, its
//! token from a Secret the admin makes (`kubectl create secret generic … --from-literal=token=`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace,
    ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SecretKeySelector, SecurityContext, ServiceAccount, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Object;

/// The port the agent answers on, on the node's address.
pub const PORT: i32 = 9101;
/// The objects' name.
pub const NAME: &str = "atlas-node-agent";
/// The key of the token in the Secret named by [`NodeAgentOptions::token_secret`].
pub const TOKEN_KEY: &str = "token";

/// What the DaemonSet is for.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeAgentOptions {
    /// The namespace it runs in (made too).
    pub namespace: String,
    /// An image with `/usr/local/bin/atlas` (any image Atlas built for a workflow has it).
    pub image: String,
    /// The target the nodes belong to, as atlas.toml names it (for the pushed samples).
    pub target: String,
    /// An `atlas serve` to push to, with the Secret holding the token.
    pub server: Option<(String, String)>,
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        labels: Some(labels()),
        ..Default::default()
    }
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/name".to_string(), NAME.to_string())])
}

fn env_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container(options: &NodeAgentOptions) -> Container {
    let mut args: Vec<String> = [
        "node-agent",
        "--listen",
        &format!("0.0.0.0:{PORT}"),
        "--scope",
        "host",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut env = vec![env_field("NODE_NAME", "spec.nodeName")];
    if let Some((server, secret)) = &options.server {
        args.extend(["--server".into(), server.clone()]);
        args.extend(["--target".into(), options.target.clone()]);
        env.push(EnvVar {
            name: "ATLAS_TOKEN".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.clone(),
                    key: TOKEN_KEY.into(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let amount = |cpu: Option<&str>, memory: &str| {
        let mut map = BTreeMap::from([("memory".to_string(), Quantity(memory.into()))]);
        if let Some(cpu) = cpu {
            map.insert("cpu".into(), Quantity(cpu.into()));
        }
        Some(map)
    };
    Container {
        name: "node-agent".into(),
        image: Some(options.image.clone()),
        command: Some(vec!["/usr/local/bin/atlas".into()]),
        args: Some(args),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".into()),
            container_port: PORT,
            host_port: Some(PORT),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/usage".into()),
                port: IntOrString::Int(PORT),
                ..Default::default()
            }),
            period_seconds: Some(10),
            ..Default::default()
        }),
        resources: Some(ResourceRequirements {
            requests: amount(Some("10m"), "32Mi"),
            limits: amount(None, "64Mi"),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether a namespace exists on every cluster (`default`, `kube-*`): it is used, never
/// emitted, so that deleting the emitted objects cannot delete it.
pub fn is_system_namespace(name: &str) -> bool {
    name == "default" || name.starts_with("kube-")
}

/// The Namespace (unless it is a system one), ServiceAccount and DaemonSet.
pub fn node_agent_objects(options: &NodeAgentOptions) -> Vec<Object> {
    let namespace = Namespace {
        metadata: meta(&options.namespace, None),
        ..Default::default()
    };
    let account = ServiceAccount {
        metadata: meta(NAME, Some(&options.namespace)),
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    let mut template_meta = meta(NAME, None);
    template_meta.name = None;
    template_meta.annotations = Some(BTreeMap::from([
        ("prometheus.io/scrape".to_string(), "true".to_string()),
        ("prometheus.io/port".to_string(), PORT.to_string()),
    ]));
    let pod = PodSpec {
        service_account_name: Some(NAME.into()),
        automount_service_account_token: Some(false),
        host_pid: Some(true),
        host_network: Some(true),
        dns_policy: Some("ClusterFirstWithHostNet".into()),
        tolerations: Some(vec![Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        }]),
        security_context: Some(PodSecurityContext {
            run_as_user: Some(65534),
            run_as_group: Some(65534),
            run_as_non_root: Some(true),
            ..Default::default()
        }),
        containers: vec![container(options)],
        ..Default::default()
    };
    let daemon_set = DaemonSet {
        metadata: meta(NAME, Some(&options.namespace)),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(labels()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(template_meta),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let namespace =
        (!is_system_namespace(&options.namespace)).then(|| Object::Namespace(Box::new(namespace)));
    namespace
        .into_iter()
        .chain([
            Object::ServiceAccount(Box::new(account)),
            Object::DaemonSet(Box::new(daemon_set)),
        ])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_set_sees_the_host_and_holds_no_token_or_privilege() {
        let options = NodeAgentOptions {
            namespace: "atlas-system".into(),
            image: "127.0.0.1:5000/atlas-x:1".into(),
            target: "kubernetes".into(),
            server: Some(("http://10.0.0.1:8080".into(), "atlas-node-agent".into())),
        };
        let yaml = super::super::to_yaml(&node_agent_objects(&options));
        for expected in [
            "kind: DaemonSet",
            "hostPID: true",
            "hostNetwork: true",
            "automountServiceAccountToken: false",
            "readOnlyRootFilesystem: true",
            "allowPrivilegeEscalation: false",
            "runAsNonRoot: true",
            "- host",
            "fieldPath: spec.nodeName",
            "key: token",
            "hostPort: 9101",
        ] {
            assert!(yaml.contains(expected), "{expected} not in\n{yaml}");
        }
        assert!(!yaml.contains("privileged"), "{yaml}");
        let without = NodeAgentOptions {
            server: None,
            ..options
        };
        let yaml = super::super::to_yaml(&node_agent_objects(&without));
        assert!(
            !yaml.contains("ATLAS_TOKEN") && !yaml.contains("--server"),
            "{yaml}"
        );
    }
}
