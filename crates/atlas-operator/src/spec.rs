//! The `StorageService` custom resource (`atlas.dev/v1alpha1`): what the service should be
//! (one metadata master, metaloggers, N chunk servers with their storage, the replication goal,
//! the MooseFS version and image, how upgrades go) and what it is (phase, ready chunk servers,
//! capacity and use, chunks under their goal, conditions). The CRD is generated from these
//! types (kube-derive); [`check`] refuses what the API server's schema cannot say: fewer chunk
//! servers than the goal, a storage size that is not a quantity.

use kube_core::CustomResourceExt;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// MooseFS keeps at most this many copies of a chunk.
pub const MAX_GOAL: u32 = 9;
/// The most chunk servers one service may ask for.
pub const MAX_CHUNK_SERVERS: u32 = 64;

/// A MooseFS service as it should be.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "atlas.dev",
    version = "v1alpha1",
    kind = "StorageService",
    plural = "storageservices",
    shortname = "mfs",
    namespaced,
    status = "StorageServiceStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyChunkServers"}"#,
    printcolumn = r#"{"name":"Wanted","type":"integer","jsonPath":".spec.chunkServers"}"#,
    printcolumn = r#"{"name":"Under goal","type":"integer","jsonPath":".status.underGoalChunks"}"#
)]
#[kube(derive = "PartialEq", crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageServiceSpec {
    /// Metadata masters: MooseFS's community edition has one.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1))]
    pub masters: u32,
    /// Metaloggers (copies of the master's metadata, to recover it from).
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 8))]
    pub metaloggers: u32,
    /// Chunk servers (never fewer than `goal`).
    #[schemars(range(min = 1, max = 64))]
    pub chunk_servers: u32,
    /// Copies of each chunk the file system keeps (MooseFS's goal).
    #[serde(default = "two")]
    #[schemars(range(min = 1, max = 9))]
    pub goal: u32,
    /// Storage of each chunk server, a Kubernetes quantity (`10Gi`).
    pub storage_per_chunk_server: String,
    /// The MooseFS version (`3.0.117`): a change is an upgrade, one server at a time.
    pub version: String,
    /// The image with MooseFS (`registry/moosefs:3.0.117`).
    pub image: String,
    /// How a new version is rolled out.
    #[serde(default)]
    pub update_strategy: UpdateStrategy,
    /// On Kubernetes (the nodes' network): the master's first port; it listens on `port` to
    /// `port+2`, chunk server N on `port+3+N`. Default 9419, MooseFS's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 65400))]
    pub port: Option<u16>,
}

/// MooseFS's own first port (the master's port for metaloggers).
pub const DEFAULT_PORT: u16 = 9419;

/// How a version change goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum UpdateStrategy {
    /// One server at a time, each only once no chunk is under its goal; a server that does not
    /// start again stops the upgrade and is rolled back.
    #[default]
    OneAtATimeWhenHealthy,
}

/// What the service is.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageServiceStatus {
    /// `Pending`, `Healthy`, `Degraded` (chunks under goal), `Scaling`, `Upgrading`, `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default)]
    pub ready_chunk_servers: u32,
    #[serde(default)]
    pub capacity_bytes: u64,
    #[serde(default)]
    pub used_bytes: u64,
    #[serde(default)]
    pub under_goal_chunks: u64,
    /// The spec's generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Why the service is in its phase, or what the operator waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where clients mount it (`ip:port`: `mfsmount DIR -H ip -P port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_address: Option<String>,
    /// Each instance: its image, state and restarts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceStatus>,
    /// What the operator remembers between passes (the last healthy image, a failed one).
    #[serde(default, flatten)]
    pub memory: crate::reconcile::Memory,
    /// The last events (a rollback, a recreated server), newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

/// One instance, as the status shows it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// `master`, `metalogger-0`, `chunkserver-2`.
    pub name: String,
    pub image: String,
    /// `Running`, `Starting`, `Exited`.
    pub state: String,
    pub serving: bool,
    #[serde(default)]
    pub restarts: u32,
    #[serde(default)]
    pub marked_for_removal: bool,
}

/// A condition, as Kubernetes objects report them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Available`, `Progressing`, `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    /// RFC 3339.
    pub last_transition_time: String,
}

fn one() -> u32 {
    1
}

fn two() -> u32 {
    2
}

/// Why a spec is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("chunkServers {servers} is fewer than the goal {goal}: every chunk needs {goal} servers to keep its copies")]
    FewerServersThanGoal { servers: u32, goal: u32 },
    #[error("{field} {value} is out of range ({range})")]
    OutOfRange {
        field: &'static str,
        value: u32,
        range: &'static str,
    },
    #[error("storagePerChunkServer {0:?} is not a quantity of bytes (`10Gi`, `500M`)")]
    Storage(String),
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("{field} must be at most 255 characters of {allowed}")]
    BadText {
        field: &'static str,
        allowed: &'static str,
    },
}

/// Whether a spec can be reconciled; the first reason it cannot.
pub fn check(spec: &StorageServiceSpec) -> Result<(), SpecError> {
    let range = |field, value, min, max, range| {
        if (min..=max).contains(&value) {
            Ok(())
        } else {
            Err(SpecError::OutOfRange {
                field,
                value,
                range,
            })
        }
    };
    range("masters", spec.masters, 1, 1, "MooseFS has one master: 1")?;
    range("goal", spec.goal, 1, MAX_GOAL, "1 to 9")?;
    range(
        "chunkServers",
        spec.chunk_servers,
        1,
        MAX_CHUNK_SERVERS,
        "1 to 64",
    )?;
    range("metaloggers", spec.metaloggers, 0, 8, "0 to 8")?;
    if let Some(port) = spec.port {
        range("port", u32::from(port), 1024, 65400, "1024 to 65400")?;
    }
    if spec.chunk_servers < spec.goal {
        return Err(SpecError::FewerServersThanGoal {
            servers: spec.chunk_servers,
            goal: spec.goal,
        });
    }
    if bytes(&spec.storage_per_chunk_server).is_none() {
        return Err(SpecError::Storage(spec.storage_per_chunk_server.clone()));
    }
    if spec.version.trim().is_empty() {
        return Err(SpecError::Empty("version"));
    }
    if spec.image.trim().is_empty() {
        return Err(SpecError::Empty("image"));
    }
    text("version", &spec.version, "letters, digits and `._-`", "._-")?;
    text(
        "image",
        &spec.image,
        "an image reference (letters, digits and `._-/:@`)",
        "._-/:@",
    )?;
    Ok(())
}

/// A short text of letters, digits and `extra` (a version, an image reference).
fn text(
    field: &'static str,
    value: &str,
    allowed: &'static str,
    extra: &str,
) -> Result<(), SpecError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || extra.contains(c);
    if value.len() > 255 || !value.chars().all(ok) {
        return Err(SpecError::BadText { field, allowed });
    }
    Ok(())
}

/// A Kubernetes quantity of bytes (`10Gi`, `500M`, `1024`), when it is one.
pub fn bytes(text: &str) -> Option<u64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() || number.len() > 24 {
        return None;
    }
    let number: f64 = number.parse().ok()?;
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    let bytes = number * factor as f64;
    (bytes >= 1.0 && bytes < u64::MAX as f64 && bytes.fract() == 0.0).then_some(bytes as u64)
}

/// The CustomResourceDefinition of `StorageService`, generated from the type.
pub fn crd() -> CustomResourceDefinition {
    StorageService::crd()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(servers: u32, goal: u32) -> StorageServiceSpec {
        StorageServiceSpec {
            masters: 1,
            metaloggers: 1,
            chunk_servers: servers,
            goal,
            storage_per_chunk_server: "10Gi".into(),
            version: "3.0.117".into(),
            image: "localhost/moosefs:3.0.117".into(),
            update_strategy: UpdateStrategy::default(),
            port: None,
        }
    }

    #[test]
    fn a_spec_needs_at_least_as_many_chunk_servers_as_its_goal() {
        assert_eq!(check(&spec(3, 2)), Ok(()));
        assert_eq!(check(&spec(2, 2)), Ok(()));
        assert_eq!(
            check(&spec(1, 2)),
            Err(SpecError::FewerServersThanGoal {
                servers: 1,
                goal: 2
            })
        );
        assert!(matches!(
            check(&spec(3, 10)),
            Err(SpecError::OutOfRange { field: "goal", .. })
        ));
        let mut two_masters = spec(3, 2);
        two_masters.masters = 2;
        assert!(check(&two_masters)
            .unwrap_err()
            .to_string()
            .contains("one master"));
        let mut bad_size = spec(3, 2);
        bad_size.storage_per_chunk_server = "lots".into();
        assert_eq!(check(&bad_size), Err(SpecError::Storage("lots".into())));
    }

    #[test]
    fn quantities_of_bytes_are_read_as_kubernetes_writes_them() {
        assert_eq!(bytes("10Gi"), Some(10 << 30));
        assert_eq!(bytes("500M"), Some(500_000_000));
        assert_eq!(bytes("1024"), Some(1024));
        assert_eq!(bytes("1.5Gi"), Some(3 << 29));
        for bad in [" 10Gi", "10Gi ", "0.5", "1.2.3Gi"] {
            assert_eq!(bytes(bad), None, "{bad}");
        }
        for bad in ["", "Gi", "10 Gi", "10Xi", "0", "99999999999999999999Ti"] {
            assert_eq!(bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_crd_is_namespaced_with_its_status_and_ranges() {
        let crd = serde_json::to_value(crd()).unwrap();
        assert_eq!(crd["spec"]["group"], "atlas.dev");
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert!(version["subresources"]["status"].is_object());
        let props = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(props["goal"]["maximum"], 9.0);
        assert_eq!(props["chunkServers"]["minimum"], 1.0);
    }
}
