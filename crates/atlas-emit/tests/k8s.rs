//! `atlas emit k8s` objects for the fixtures' four shapes: a single task (Job), an array
//! (Indexed Job), multi-node torchrun (PyTorchJob) and MPI (MPIJob). Each is pinned with an insta
//! snapshot and read back into k8s-openapi's types, so required fields are present and every
//! field is where Kubernetes expects it.

use atlas_emit::k8s::{k8s_objects, to_yaml, Flavor, K8sOptions, Object, ServerVersion};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, PodTemplateSpec};

fn workflow(fixture: &str) -> atlas_spec::Workflow {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(fixture);
    let text = std::fs::read_to_string(&path).unwrap();
    atlas_import::import(&text, &atlas_import::ImportOptions::default())
        .unwrap()
        .workflow
}

fn options(openshift: bool) -> K8sOptions {
    K8sOptions {
        flavor: Flavor::Auto,
        openshift,
        image: None,
        containerfile: openshift.then(|| "FROM base\n".to_string()),
        agent_flags: Vec::new(),
        server: ServerVersion::NEWEST,
        gpu_products: Default::default(),
        placement: Default::default(),
    }
}

/// Every object read back into its typed form; the pod templates of custom resources too.
fn round_trip(objects: &[Object]) -> Vec<PodTemplateSpec> {
    let mut templates = Vec::new();
    for object in objects {
        let value = serde_json::to_value(object).unwrap();
        match value["kind"].as_str().unwrap() {
            "ConfigMap" => {
                let cm: ConfigMap = serde_json::from_value(value.clone()).unwrap();
                let yaml = &cm.data.unwrap()["workflow.yaml"];
                atlas_spec::parse_workflow("workflow.yaml", yaml)
                    .expect("the ConfigMap holds a valid workflow");
            }
            "PersistentVolumeClaim" => {
                let _: PersistentVolumeClaim = serde_json::from_value(value.clone()).unwrap();
            }
            "Job" => {
                let job: Job = serde_json::from_value(value.clone()).unwrap();
                templates.push(job.spec.unwrap().template);
            }
            "PyTorchJob" | "MPIJob" => {
                let key = if value["kind"] == "PyTorchJob" {
                    "pytorchReplicaSpecs"
                } else {
                    "mpiReplicaSpecs"
                };
                for (_, replica) in value["spec"][key].as_object().unwrap() {
                    templates.push(serde_json::from_value(replica["template"].clone()).unwrap());
                }
            }
            "JobSet" => {
                for job in value["spec"]["replicatedJobs"].as_array().unwrap() {
                    let spec: k8s_openapi::api::batch::v1::JobSpec =
                        serde_json::from_value(job["template"]["spec"].clone()).unwrap();
                    templates.push(spec.template);
                }
            }
            "BuildConfig" | "ImageStream" => {}
            other => panic!("unexpected kind {other}"),
        }
    }
    templates
}

fn check_pods(templates: &[PodTemplateSpec], openshift: bool) {
    assert!(!templates.is_empty());
    for t in templates {
        let spec = t.spec.as_ref().unwrap();
        assert_eq!(
            spec.restart_policy.as_deref(),
            Some("Never"),
            "a batch pod never restarts forever"
        );
        let security = spec.security_context.as_ref().unwrap();
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(
            security.run_as_user.is_none(),
            openshift,
            "no fixed UID on OpenShift"
        );
        for c in &spec.containers {
            let env = c.env.clone().unwrap_or_default();
            assert!(
                env.iter().all(|e| e.name != "NVIDIA_VISIBLE_DEVICES"),
                "GPUs only through the device plugin"
            );
        }
    }
}

fn emit(fixture: &str, openshift: bool) -> (Flavor, String, Vec<PodTemplateSpec>) {
    let emitted = k8s_objects(&workflow(fixture), &options(openshift)).unwrap();
    let templates = round_trip(&emitted.objects);
    check_pods(&templates, openshift);
    (emitted.flavor, to_yaml(&emitted.objects), templates)
}

#[test]
fn a_single_task_is_a_job() {
    let (flavor, yaml, templates) = emit("examples/biggan-mini/job.lsf", false);
    assert_eq!(flavor, Flavor::Job);
    assert_eq!(templates.len(), 1);
    insta::assert_snapshot!("job", yaml);
}

#[test]
fn an_array_is_an_indexed_job_with_the_scripts_variable() {
    let (flavor, yaml, templates) = emit("tests/fixtures/slurm/array.sbatch", false);
    assert_eq!(flavor, Flavor::IndexedJob);
    let command = templates[0].spec.as_ref().unwrap().containers[0]
        .command
        .clone()
        .unwrap();
    assert!(
        command[2].contains("export SLURM_ARRAY_TASK_ID=$((0 + JOB_COMPLETION_INDEX * 4))"),
        "{command:?}"
    );
    insta::assert_snapshot!("indexed_job", yaml);
}

#[test]
fn multi_node_torchrun_is_a_pytorchjob_with_gpus_through_the_device_plugin() {
    let (flavor, yaml, templates) = emit("tests/fixtures/slurm/torchrun_multinode.sbatch", false);
    assert_eq!(flavor, Flavor::Pytorchjob);
    assert_eq!(templates.len(), 2, "Master and Worker");
    let c = &templates[0].spec.as_ref().unwrap().containers[0];
    assert_eq!(c.name, "pytorch");
    let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["nvidia.com/gpu"].0, "4");
    assert!(c.command.as_ref().unwrap()[2].contains("export SLURM_NODEID=$PET_NODE_RANK"));
    insta::assert_snapshot!("pytorchjob", yaml);
}

#[test]
fn mpi_is_an_mpijob_with_a_launcher_and_workers_and_openshift_adds_a_build() {
    let (flavor, yaml, templates) = emit("tests/fixtures/lsf/biggan128_imagenet.lsf", true);
    assert_eq!(flavor, Flavor::Mpijob);
    assert_eq!(templates.len(), 2, "Launcher and Worker");
    assert!(yaml.contains("kind: BuildConfig") && yaml.contains("kind: ImageStream"));
    insta::assert_snapshot!("mpijob_openshift", yaml);
}

#[test]
fn co_located_ranks_share_a_node_and_an_rdma_resource_is_asked_for_and_flagged() {
    let w = workflow("tests/fixtures/lsf/biggan128_imagenet.lsf");
    let mut o = options(false);
    o.placement = atlas_emit::k8s::Placement {
        co_locate: true,
        rdma_resource: Some("rdma/hca_shared_devices_a".into()),
    };
    let emitted = k8s_objects(&w, &o).unwrap();
    let templates = round_trip(&emitted.objects);
    assert_eq!(templates.len(), 2, "Launcher and Worker");
    for t in &templates {
        let pod = t.spec.as_ref().unwrap();
        let term = &pod
            .affinity
            .as_ref()
            .unwrap()
            .pod_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()[0];
        assert_eq!(term.topology_key, "kubernetes.io/hostname");
        let labels = t.metadata.as_ref().unwrap().labels.as_ref().unwrap();
        let wanted = term
            .label_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap();
        assert!(
            wanted.iter().all(|(k, v)| labels.get(k) == Some(v)),
            "the pods select each other"
        );
        let limits = pod.containers[0]
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap();
        // The ranks ask for the device; the launcher only starts them.
        let rank = pod.containers[0].name != "launcher";
        assert_eq!(
            limits
                .get("rdma/hca_shared_devices_a")
                .map(|q| q.0.as_str()),
            rank.then_some("1"),
            "{}",
            pod.containers[0].name
        );
        let shm = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "shm")
            .unwrap();
        assert_eq!(
            shm.empty_dir.as_ref().unwrap().medium.as_deref(),
            Some("Memory")
        );
    }
    assert!(emitted
        .gaps
        .iter()
        .any(|g| g.field == "(rdma)" && g.note.contains("not verified")));
    // Without them, nothing of either.
    let plain = round_trip(&k8s_objects(&w, &options(false)).unwrap().objects);
    assert!(plain.iter().all(|t| t
        .spec
        .as_ref()
        .unwrap()
        .affinity
        .as_ref()
        .is_none_or(|a| a.pod_affinity.is_none())));
}

#[test]
fn a_jobset_can_be_asked_for_and_an_indexed_job_needs_an_array() {
    let w = workflow("tests/fixtures/slurm/torchrun_multinode.sbatch");
    let mut o = options(false);
    o.flavor = Flavor::Jobset;
    let emitted = k8s_objects(&w, &o).unwrap();
    let templates = round_trip(&emitted.objects);
    assert_eq!(templates.len(), 1);
    o.flavor = Flavor::IndexedJob;
    let err = k8s_objects(&w, &o).unwrap_err().to_string();
    assert!(err.contains("needs an array"), "{err}");
}

#[test]
fn on_1_20_an_array_is_one_job_per_index_with_the_walltime_per_task() {
    let w = workflow("tests/fixtures/slurm/array.sbatch");
    let mut o = options(false);
    o.server = "1.20".parse().unwrap();
    let emitted = k8s_objects(&w, &o).unwrap();
    assert_eq!(emitted.flavor, Flavor::JobPerIndex);
    let jobs: Vec<&Job> = emitted
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::Job(job) => Some(&**job),
            _ => None,
        })
        .collect();
    let count = w.spec.scheduling.array.as_ref().unwrap().task_count() as usize;
    assert_eq!(jobs.len(), count, "no task is dropped");
    for (index, job) in jobs.iter().enumerate() {
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.completion_mode, None, "1.20 has no Indexed Job");
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(
            pod.active_deadline_seconds,
            Some(3600),
            "the walltime is each task's"
        );
        let env = pod.containers[0].env.as_ref().unwrap();
        assert!(env
            .iter()
            .any(|e| e.name == "JOB_COMPLETION_INDEX" && e.value == Some(index.to_string())));
    }
    assert!(emitted
        .gaps
        .iter()
        .any(|g| g.note.contains("Kubernetes 1.20 has no Indexed Job")));
    // Asked for by name, an Indexed Job is refused there, with what to use instead.
    o.flavor = Flavor::IndexedJob;
    let err = k8s_objects(&w, &o).unwrap_err().to_string();
    assert!(err.contains("job-per-index"), "{err}");
}

#[test]
fn a_flavor_that_would_drop_an_array_or_the_launcher_is_refused() {
    let w = workflow("tests/fixtures/slurm/array.sbatch");
    for flavor in [
        Flavor::Job,
        Flavor::Jobset,
        Flavor::Pytorchjob,
        Flavor::Mpijob,
    ] {
        let mut o = options(false);
        o.flavor = flavor;
        let err = k8s_objects(&w, &o).unwrap_err().to_string();
        assert!(err.contains("would drop the array's"), "{flavor}: {err}");
    }
    let torchrun = workflow("tests/fixtures/slurm/torchrun_multinode.sbatch");
    let mut o = options(false);
    o.flavor = Flavor::Mpijob;
    let err = k8s_objects(&torchrun, &o).unwrap_err().to_string();
    assert!(err.contains("use pytorchjob or jobset"), "{err}");
}

#[test]
fn an_index_list_maps_each_index_to_its_task_id() {
    let mut w = workflow("tests/fixtures/slurm/array.sbatch");
    let array = w.spec.scheduling.array.as_mut().unwrap();
    *array = "1,3,5-7".parse().unwrap();
    let emitted = k8s_objects(&w, &options(false)).unwrap();
    let templates = round_trip(&emitted.objects);
    let command = templates[0].spec.as_ref().unwrap().containers[0]
        .command
        .clone()
        .unwrap();
    assert!(command[2].contains("ids=(1 3 5 6 7)"), "{command:?}");
}

#[test]
fn a_gpu_type_becomes_the_labels_feature_discovery_sets_and_memory_per_gpu_is_requested() {
    let mut w = workflow("tests/fixtures/slurm/torchrun_multinode.sbatch");
    w.spec.resources.gpu_type = Some("a100".into());
    w.spec.resources.memory_per_node = None;
    w.spec.resources.memory_per_cpu = None;
    w.spec.resources.memory_per_gpu = Some("40Gi".parse().unwrap());
    let emitted = k8s_objects(&w, &options(false)).unwrap();
    let templates = round_trip(&emitted.objects);
    let pod = templates[0].spec.as_ref().unwrap();
    let terms = &pod
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms;
    let rule = &terms[0].match_expressions.as_ref().unwrap()[0];
    assert_eq!(
        (rule.key.as_str(), rule.operator.as_str()),
        ("nvidia.com/gpu.product", "In")
    );
    assert!(rule
        .values
        .as_ref()
        .unwrap()
        .contains(&"NVIDIA-A100-SXM4-80GB".to_string()));
    let requests = pod.containers[0]
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap();
    assert_eq!(requests["memory"].0, "160Gi", "4 GPUs × 40Gi");
    // A type nobody knows the label of: no constraint that would leave the pods Pending.
    w.spec.resources.gpu_type = Some("gtx1080".into());
    let emitted = k8s_objects(&w, &options(false)).unwrap();
    let templates = round_trip(&emitted.objects);
    assert!(templates[0].spec.as_ref().unwrap().affinity.is_none());
    assert!(emitted
        .gaps
        .iter()
        .any(|g| g.field == "spec.resources.gpuType" && g.note.starts_with("warning")));
    // The cluster's own table comes first.
    let mut o = options(false);
    o.gpu_products
        .insert("gtx1080".into(), vec!["NVIDIA-GeForce-GTX-1080".into()]);
    let emitted = k8s_objects(&w, &o).unwrap();
    assert!(to_yaml(&emitted.objects).contains("NVIDIA-GeForce-GTX-1080"));
}

#[test]
fn without_an_image_or_registry_the_report_says_where_pods_would_pull_from() {
    let emitted = k8s_objects(&workflow("examples/biggan-mini/job.lsf"), &options(false)).unwrap();
    assert!(emitted.gaps.iter().any(|g| g.field == "(image)"));
    let mut o = options(false);
    o.image = Some("registry.example.org/team/biggan-mini:1".into());
    let emitted = k8s_objects(&workflow("examples/biggan-mini/job.lsf"), &o).unwrap();
    assert!(!emitted.gaps.iter().any(|g| g.field == "(image)"));
}
