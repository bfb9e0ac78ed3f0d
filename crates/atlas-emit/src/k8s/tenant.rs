//! `atlas emit k8s --tenant T`: a tenant's place on a cluster. Its Namespace (named as the
//! tenant), a ResourceQuota carrying the tenant's quotas that Kubernetes can hold (runs at once
//! as `count/jobs.batch`; hours have no counterpart and stay Atlas's check at submission), a
//! LimitRange so that pods that say nothing still ask for something the quota can count, and
//! the identity Atlas runs as there: a ServiceAccount with a Role that holds exactly what the
//! `kubernetes` target does (Jobs, their pods and logs, ConfigMaps, claims, events, and the
//! MPI key Secret) in this namespace only, bound by a RoleBinding. Members get the cluster's
//! built-in roles in the namespace (admin → `admin`, member → `edit`, viewer → `view`), by the
//! user names the API server authenticates (the OIDC `sub`/username claim).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
    ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Object;

/// The ServiceAccount, Role and RoleBinding Atlas runs Jobs as in a tenant's namespace.
pub const RUNNER: &str = "atlas-runner";
/// The ResourceQuota's name.
pub const QUOTA: &str = "atlas-quota";
/// The label every object carries with its tenant.
pub const TENANT_LABEL: &str = "atlas.dev/tenant";

/// A member's role, as the cluster's built-in ClusterRole it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRole {
    Admin,
    Member,
    Viewer,
}

impl MemberRole {
    fn cluster_role(self) -> &'static str {
        match self {
            MemberRole::Admin => "admin",
            MemberRole::Member => "edit",
            MemberRole::Viewer => "view",
        }
    }
}

/// What a tenant's objects are made from.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantOptions {
    /// The tenant's name: the namespace's too (a DNS label, not a system namespace).
    pub name: String,
    /// Runs at once (`count/jobs.batch`).
    pub runs: Option<u32>,
    /// Members and their roles.
    pub members: Vec<(String, MemberRole)>,
}

/// Why a tenant's objects cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error("tenant `{0}` is not a Kubernetes namespace name (lower-case letters, digits and `-`, at most 63, starting and ending with a letter or digit)")]
    NotANamespace(String),
    #[error(
        "tenant `{0}` is named as a namespace every cluster has; rename it to give it its own"
    )]
    SystemNamespace(String),
}

fn meta(name: &str, tenant: &str, namespaced: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespaced.then(|| tenant.to_string()),
        labels: Some(BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_string(),
                "atlas".to_string(),
            ),
            (TENANT_LABEL.to_string(), tenant.to_string()),
        ])),
        ..Default::default()
    }
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..Default::default()
    }
}

/// What the `kubernetes` target does in a namespace, and nothing more.
fn runner_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &["batch"],
            &["jobs"],
            &["create", "get", "list", "watch", "delete"],
        ),
        rule(&[""], &["pods"], &["get", "list", "watch"]),
        rule(&[""], &["pods/log"], &["get"]),
        rule(
            &[""],
            &["configmaps", "secrets"],
            &["create", "get", "delete"],
        ),
        rule(
            &[""],
            &["persistentvolumeclaims"],
            &["create", "get", "list"],
        ),
        rule(&[""], &["events"], &["list", "watch"]),
    ]
}

fn binding(name: &str, tenant: &str, role: RoleRef, subjects: Vec<Subject>) -> RoleBinding {
    RoleBinding {
        metadata: meta(name, tenant, true),
        role_ref: role,
        subjects: Some(subjects),
    }
}

/// The tenant's objects, in the order they apply.
pub fn tenant_objects(options: &TenantOptions) -> Result<Vec<Object>, TenantError> {
    let t = options.name.as_str();
    if !atlas_spec::is_dns1123_label(t) {
        return Err(TenantError::NotANamespace(t.escape_debug().to_string()));
    }
    if super::node_agent::is_system_namespace(t) || t.starts_with("openshift") {
        return Err(TenantError::SystemNamespace(t.into()));
    }
    let mut hard = quantities(&[]);
    if let Some(runs) = options.runs {
        hard.insert("count/jobs.batch".into(), Quantity(runs.to_string()));
    }
    let limits = LimitRangeItem {
        type_: "Container".into(),
        default_request: Some(quantities(&[("cpu", "100m"), ("memory", "128Mi")])),
        default: Some(quantities(&[("cpu", "1"), ("memory", "1Gi")])),
        ..Default::default()
    };
    let mut objects = vec![
        Object::Namespace(Box::new(Namespace {
            metadata: meta(t, t, false),
            ..Default::default()
        })),
        Object::ResourceQuota(Box::new(ResourceQuota {
            metadata: meta(QUOTA, t, true),
            spec: Some(ResourceQuotaSpec {
                hard: Some(hard),
                ..Default::default()
            }),
            ..Default::default()
        })),
        Object::LimitRange(Box::new(LimitRange {
            metadata: meta("atlas-defaults", t, true),
            spec: Some(LimitRangeSpec {
                limits: vec![limits],
            }),
        })),
        Object::ServiceAccount(Box::new(ServiceAccount {
            metadata: meta(RUNNER, t, true),
            ..Default::default()
        })),
        Object::Role(Box::new(Role {
            metadata: meta(RUNNER, t, true),
            rules: Some(runner_rules()),
        })),
        Object::RoleBinding(Box::new(binding(
            RUNNER,
            t,
            RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: RUNNER.into(),
            },
            vec![Subject {
                kind: "ServiceAccount".into(),
                name: RUNNER.into(),
                namespace: Some(t.into()),
                ..Default::default()
            }],
        ))),
    ];
    for role in [MemberRole::Admin, MemberRole::Member, MemberRole::Viewer] {
        let users: Vec<Subject> = options
            .members
            .iter()
            .filter(|(_, r)| *r == role)
            .map(|(user, _)| Subject {
                kind: "User".into(),
                name: user.clone(),
                api_group: Some("rbac.authorization.k8s.io".into()),
                ..Default::default()
            })
            .collect();
        if users.is_empty() {
            continue;
        }
        let name = format!("atlas-{}", role.cluster_role());
        objects.push(Object::RoleBinding(Box::new(binding(
            &name,
            t,
            RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: role.cluster_role().into(),
            },
            users,
        ))));
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(options: &TenantOptions) -> String {
        super::super::to_yaml(&tenant_objects(options).unwrap())
    }

    #[test]
    fn a_tenant_gets_its_namespace_quota_and_a_runner_that_can_do_only_its_jobs() {
        let options = TenantOptions {
            name: "vision".into(),
            runs: Some(3),
            members: vec![
                ("ada".into(), MemberRole::Admin),
                ("vic".into(), MemberRole::Viewer),
            ],
        };
        let text = yaml(&options);
        for expected in [
            "kind: Namespace",
            "count/jobs.batch: '3'",
            "kind: LimitRange",
            "kind: ServiceAccount",
            "name: atlas-runner",
            "kind: ClusterRole\n  name: admin",
            "name: atlas-view",
        ] {
            assert!(text.contains(expected), "{expected}:\n{text}");
        }
        assert!(
            !text.contains("atlas-edit"),
            "no members, no binding: {text}"
        );
        // Least privilege: nothing cluster-wide, no wildcard, no escalation verbs.
        assert!(
            !text.contains("ClusterRoleBinding") && !text.contains("'*'"),
            "{text}"
        );
        for verb in ["escalate", "bind", "impersonate", "patch", "update"] {
            assert!(!text.contains(verb), "{verb}: {text}");
        }
        assert_eq!(
            text.matches("namespace: vision").count(),
            8,
            "7 objects and the runner subject: {text}"
        );
    }

    #[test]
    fn names_that_are_not_a_tenants_own_namespace_are_refused() {
        for (name, system) in [
            ("kube-system", true),
            ("default", true),
            ("openshift-infra", true),
            ("Vision", false),
            ("a_b", false),
            ("", false),
        ] {
            let options = TenantOptions {
                name: name.into(),
                runs: None,
                members: Vec::new(),
            };
            let err = tenant_objects(&options).unwrap_err();
            assert_eq!(
                matches!(err, TenantError::SystemNamespace(_)),
                system,
                "{name}: {err}"
            );
        }
    }
}
