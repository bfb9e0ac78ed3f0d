//! A job script's GPU type (`--gres=gpu:a100:4`, `-gpu "…:gmodel=V100"`) as the node labels a
//! Kubernetes cluster really has: NVIDIA's GPU feature discovery labels each node with
//! `nvidia.com/gpu.product`, the product name with spaces as dashes (`NVIDIA-A100-SXM4-80GB`,
//! `Tesla-V100-SXM2-32GB`), never the short name a Slurm site uses. One type can be several
//! products (40 and 80 GB, PCIe and SXM), so the pod gets a required node affinity `In` the
//! list. The built-in table below covers the common data-centre GPUs; a cluster's own table
//! (`gpu_products` on a target, `--gpu-product TYPE=LABEL` on `atlas emit k8s`) comes first. A
//! type in neither gets no constraint and a warning in the report, never a selector that
//! leaves the pods Pending.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
};

/// The label GPU feature discovery sets.
pub const PRODUCT_LABEL: &str = "nvidia.com/gpu.product";

/// Short GPU types and the product labels GPU feature discovery gives them (lowercase keys).
const BUILT_IN: &[(&str, &[&str])] = &[
    ("a10", &["NVIDIA-A10"]),
    (
        "a100",
        &[
            "NVIDIA-A100-SXM4-40GB",
            "NVIDIA-A100-SXM4-80GB",
            "NVIDIA-A100-PCIE-40GB",
            "NVIDIA-A100-80GB-PCIe",
        ],
    ),
    (
        "a100-40gb",
        &["NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"],
    ),
    (
        "a100-80gb",
        &["NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"],
    ),
    ("a30", &["NVIDIA-A30"]),
    ("a40", &["NVIDIA-A40"]),
    (
        "h100",
        &[
            "NVIDIA-H100-80GB-HBM3",
            "NVIDIA-H100-PCIe",
            "NVIDIA-H100-NVL",
        ],
    ),
    ("h200", &["NVIDIA-H200"]),
    ("l4", &["NVIDIA-L4"]),
    ("l40s", &["NVIDIA-L40S"]),
    ("t4", &["Tesla-T4"]),
    (
        "v100",
        &[
            "Tesla-V100-SXM2-16GB",
            "Tesla-V100-SXM2-32GB",
            "Tesla-V100-PCIE-16GB",
            "Tesla-V100-PCIE-32GB",
        ],
    ),
    ("p100", &["Tesla-P100-PCIE-16GB", "Tesla-P100-SXM2-16GB"]),
];

/// The product labels for `gpu_type`: the cluster's table first, then the built-in one; a
/// full product label is taken as it is.
pub fn products(gpu_type: &str, cluster: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    let key = gpu_type.trim().to_ascii_lowercase();
    if let Some(labels) = cluster.iter().find(|(k, _)| k.to_ascii_lowercase() == key) {
        return Some(labels.1.clone());
    }
    if let Some((_, labels)) = BUILT_IN.iter().find(|(k, _)| *k == key) {
        return Some(labels.iter().map(|l| l.to_string()).collect());
    }
    let is_product = ["NVIDIA-", "Tesla-", "Quadro-"]
        .iter()
        .any(|p| gpu_type.starts_with(p));
    is_product.then(|| vec![gpu_type.to_string()])
}

/// The pod's required node affinity for `gpu_type`, or none when the type is not known.
pub(super) fn affinity(
    gpu_type: &str,
    cluster: &BTreeMap<String, Vec<String>>,
) -> Option<Affinity> {
    let values = products(gpu_type, cluster)?;
    Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: PRODUCT_LABEL.into(),
                        operator: "In".into(),
                        values: Some(values),
                    }]),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_types_become_the_labels_feature_discovery_sets() {
        let none = BTreeMap::new();
        let a100 = products("A100", &none).unwrap();
        assert!(a100.contains(&"NVIDIA-A100-SXM4-80GB".to_string()));
        assert_eq!(products("v100", &none).unwrap().len(), 4);
        assert_eq!(
            products("NVIDIA-L40S", &none).unwrap(),
            ["NVIDIA-L40S".to_string()]
        );
        assert_eq!(products("gtx1080", &none), None);
        let site = BTreeMap::from([("a100".to_string(), vec!["Our-A100".to_string()])]);
        assert_eq!(products("a100", &site).unwrap(), ["Our-A100".to_string()]);
    }
}
