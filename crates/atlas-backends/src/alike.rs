//! The like-for-like check of an experiment: before anything runs, what differs between the
//! targets' runs other than the target itself (resources, commands, image), so that a
//! comparison never silently puts a 2-GPU run next to a CPU-only one.

use atlas_spec::Workflow;

use crate::target::{Kind, Named};

/// The workflow as it will run on `target`: without its GPU request where the target has no
/// GPUs, with the target's base image where it names one, with the target's environment.
pub fn effective_workflow(target: &Named, workflow: &Workflow) -> Workflow {
    let mut workflow = workflow.clone();
    let t = &target.target;
    for (name, value) in &t.environment {
        let variables = &mut workflow.spec.environment.variables;
        variables
            .entry(name.clone())
            .or_insert_with(|| value.clone());
    }
    if !t.gpus {
        let r = &mut workflow.spec.resources;
        (
            r.gpus_per_node,
            r.gpus_per_task,
            r.gpus,
            r.gpu_type,
            r.memory_per_gpu,
        ) = (None, None, None, None, None);
    }
    if let (Kind::Podman | Kind::PodmanKube, Some(base)) = (t.kind, &t.image) {
        workflow
            .spec
            .image
            .get_or_insert_with(Default::default)
            .base = Some(base.clone());
    }
    workflow
}

/// The aspects of the run on `target` that a comparison needs alike (the image only among
/// container targets: bare metal has none to compare).
fn aspects(target: &Named, workflow: &Workflow) -> Vec<(&'static str, String)> {
    let container = matches!(target.target.kind, Kind::Podman | Kind::PodmanKube);
    effective_workflow(target, workflow)
        .comparable_aspects()
        .into_iter()
        .filter(|(aspect, _)| container || *aspect != "image")
        .collect()
}

/// What differs between the runs of `workflow` on `targets`, other than the target: one line
/// per aspect that is not the same everywhere it applies. Empty when the runs are alike.
pub fn differences(targets: &[&Named], workflow: &Workflow) -> Vec<String> {
    let per_target: Vec<(&str, Vec<(&str, String)>)> = targets
        .iter()
        .map(|t| (t.name.as_str(), aspects(t, workflow)))
        .collect();
    let mut lines = Vec::new();
    for aspect in ["commands", "resources", "environment", "image"] {
        let values: Vec<(&str, &String)> = per_target
            .iter()
            .filter_map(|(name, a)| {
                a.iter()
                    .find(|(k, _)| *k == aspect)
                    .map(|(_, v)| (*name, v))
            })
            .collect();
        let first = values.first().map(|(_, v)| *v);
        if values.iter().all(|(_, v)| Some(*v) == first) {
            continue;
        }
        let shown: Vec<String> = values.iter().map(|(n, v)| format!("{n}: {v}")).collect();
        lines.push(format!(
            "{aspect} differ between targets ({})",
            shown.join("; ")
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Target;

    fn target(name: &str, kind: &str, extra: &str) -> Named {
        let target: Target = toml::from_str(&format!("kind = \"{kind}\"\n{extra}")).unwrap();
        Named {
            name: name.into(),
            target,
            source: "test".into(),
        }
    }

    #[test]
    fn a_targets_environment_is_added_and_the_workflows_own_wins() {
        let mut workflow = Workflow::default();
        workflow
            .spec
            .environment
            .variables
            .insert("A".into(), "workflow".into());
        let t = target(
            "h",
            "local",
            "environment = { A = \"target\", B = \"target\" }",
        );
        let effective = effective_workflow(&t, &workflow);
        let v = &effective.spec.environment.variables;
        assert_eq!((v["A"].as_str(), v["B"].as_str()), ("workflow", "target"));
        let plain = target("p", "local", "");
        let lines = differences(&[&t, &plain], &workflow);
        assert!(
            lines.iter().any(|l| l.starts_with("environment")),
            "{lines:?}"
        );
    }

    #[test]
    fn a_target_without_gpus_makes_the_resources_differ() {
        let mut workflow = Workflow::default();
        workflow.spec.resources.gpus_per_node = Some(1);
        let local = target("local", "local", "");
        let slurm = target("slurm", "slurm", "partition = \"debug\"");
        let podman = target("podman", "podman", "gpus = false");
        assert!(differences(&[&local, &slurm], &workflow).is_empty());
        let lines = differences(&[&local, &slurm, &podman], &workflow);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("resources differ"), "{lines:?}");
        assert!(lines[0].contains("gpusPerNode"), "{lines:?}");
    }

    #[test]
    fn container_targets_with_different_images_differ() {
        let workflow = Workflow::default();
        let a = target("a", "podman", "image = \"localhost/x:1\"");
        let b = target("b", "podman", "");
        let lines = differences(&[&a, &b], &workflow);
        assert!(
            lines.iter().any(|l| l.starts_with("image differ")),
            "{lines:?}"
        );
    }
}
