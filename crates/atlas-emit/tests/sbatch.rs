//! The sbatch writer checked against the reader: what `sbatch_script` writes, the Slurm
//! importer (which follows sbatch's documented rules) reads back the same.

use atlas_emit::{sbatch_script, SbatchOptions};
use atlas_import::{import, Dialect, ImportOptions, Status};
use atlas_spec::Workflow;
use proptest::prelude::*;

fn options() -> SbatchOptions {
    SbatchOptions {
        command: vec![
            "/opt/atlas/bin/atlas".into(),
            "agent".into(),
            "/runs/r 1/workflow.yaml".into(),
        ],
        partition: None,
        account: None,
        extra: vec!["--requeue".into()],
        working_directory: "/runs/r 1".into(),
        output: "/runs/r 1/slurm-%j.out".into(),
        host_sampler: None,
    }
}

fn read_back(script: &str) -> Workflow {
    let imported = import(
        script,
        &ImportOptions {
            dialect: Some(Dialect::Slurm),
            ..Default::default()
        },
    )
    .unwrap();
    let bad: Vec<_> = imported
        .report
        .directives
        .iter()
        .filter(|d| d.status == Status::Invalid || d.status == Status::Unsupported)
        .collect();
    assert!(bad.is_empty(), "{bad:?}\n{script}");
    imported.workflow
}

#[test]
fn the_biggan_resources_survive_the_round_trip() {
    let lsf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/slurm/rules.sbatch"
    ))
    .unwrap();
    let original = import(&lsf, &ImportOptions::default()).unwrap().workflow;
    let script = sbatch_script(&original, &options()).unwrap();
    let back = read_back(&script);
    let (a, b) = (&original.spec.resources, &back.spec.resources);
    assert_eq!(
        (
            a.nodes,
            a.tasks_per_node,
            a.cpus_per_task,
            a.gpus_per_node,
            &a.gpu_type
        ),
        (
            b.nodes,
            b.tasks_per_node,
            b.cpus_per_task,
            b.gpus_per_node,
            &b.gpu_type
        )
    );
    assert_eq!(
        (a.memory_per_node, a.walltime, a.exclusive),
        (b.memory_per_node, b.walltime, b.exclusive)
    );
    assert_eq!(original.spec.scheduling.array, back.spec.scheduling.array);
    assert_eq!(
        original.spec.scheduling.dependencies,
        back.spec.scheduling.dependencies
    );
    assert_eq!(original.spec.scheduling.queue, back.spec.scheduling.queue);
    assert!(
        script.ends_with("exec /opt/atlas/bin/atlas agent '/runs/r 1/workflow.yaml'\n"),
        "{script}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any name, partition or account either comes back exactly or is refused: nothing is
    /// silently changed and no value can spill into another directive.
    #[test]
    fn values_come_back_exactly_or_are_refused(name in "\\PC{1,30}", partition in "\\PC{1,20}", account in "\\PC{1,20}") {
        // U+FFFD is how the importer marks bytes that were not UTF-8; it reports them invalid.
        prop_assume!(![&name, &partition, &account].iter().any(|v| v.contains('\u{FFFD}')));
        let mut workflow = Workflow::default();
        workflow.metadata.name = name.clone();
        let opts = SbatchOptions { partition: Some(partition.clone()), account: Some(account.clone()), ..options() };
        if let Ok(script) = sbatch_script(&workflow, &opts) {
            let imported = import(&script, &ImportOptions { dialect: Some(Dialect::Slurm), ..Default::default() }).unwrap();
            let back = imported.workflow;
            prop_assert_eq!(back.metadata.annotations.get("atlas.dev/original-name").cloned().unwrap_or(back.metadata.name.clone()), name.trim());
            prop_assert_eq!(back.spec.scheduling.queue, Some(partition.trim().to_string()));
            prop_assert_eq!(back.spec.scheduling.account, Some(account.trim().to_string()));
            prop_assert!(imported.report.directives.iter().all(|d| d.status != Status::Invalid));
        }
    }
}
