//! The importer against the schedulers' documented rules. Expected values come from the
//! bsub(1), sbatch(1) and qsub(1B)/pbs_resources(7) manual pages, quoted per test.

use atlas_import::{import, Dialect, Import, ImportOptions, Status};
use atlas_spec::{DependencyCondition, LauncherKind, MailEvent};

fn fixture(path: &str) -> Import {
    let text = std::fs::read_to_string(format!(
        "{}/../../tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    import(&text, &ImportOptions::default()).unwrap()
}

fn status_of(i: &Import, line: u32, option: &str) -> Status {
    i.report
        .directives
        .iter()
        .find(|d| d.line == line && d.option == option)
        .unwrap_or_else(|| panic!("no entry {line} {option}"))
        .status
}

const GI: u64 = 1 << 30;

#[test]
fn biggan_satori_script() {
    // -n 4 slots, span[ptile=1] one per host => 4 hosts; -gpu num=2 is per host by default.
    let i = fixture("lsf/biggan128_imagenet.lsf");
    let r = &i.workflow.spec.resources;
    assert_eq!(i.report.dialect, Dialect::Lsf);
    assert_eq!(
        (r.tasks, r.tasks_per_node, r.nodes, r.gpus_per_node),
        (Some(4), Some(1), Some(4), Some(2))
    );
    assert_eq!(i.workflow.spec.scheduling.queue.as_deref(), Some("normal"));
    assert_eq!(
        i.workflow.spec.scheduling.output.as_deref(),
        Some("BigGAN128-ImageNet.{jobId}")
    );
    assert_eq!(i.workflow.metadata.name, "biggan128-imagenet");
    assert_eq!(
        i.workflow.metadata.annotations["atlas.dev/original-name"],
        "BigGAN128-ImageNet"
    );
    assert_eq!(i.workflow.spec.launcher.kind, LauncherKind::Mpirun);
    assert_eq!(
        i.workflow.spec.environment.conda.as_deref(),
        Some("wmlce-1.6.2")
    );
    assert_eq!(
        i.workflow.spec.environment.scheduler_variables,
        ["LSB_DJOB_HOSTFILE"]
    );
    assert_eq!(status_of(&i, 1, "-L"), Status::Ignored);
    assert_eq!(i.report.directives.len(), 8);
}

#[test]
fn lsf_reads_indented_and_late_directives_and_the_last_one_wins() {
    let i = fixture("lsf/rules.lsf");
    let s = &i.workflow.spec;
    // "#BSUB -q long" after the module command overrides "-q short" on line 4.
    assert_eq!(s.scheduling.queue.as_deref(), Some("long"));
    assert_eq!(status_of(&i, 4, "-q"), Status::Ignored);
    // Indented line 5: -n 8 with span[ptile=4] => 2 hosts; rusage[mem=4GB].
    assert_eq!(
        (
            s.resources.tasks,
            s.resources.tasks_per_node,
            s.resources.nodes
        ),
        (Some(8), Some(4), Some(2))
    );
    assert_eq!(s.resources.memory_per_node.unwrap().bytes(), 4 * GI);
    // -J "prep[1-10:2]%3": array 1..10 step 2, at most 3 at once.
    let a = s.scheduling.array.as_ref().unwrap();
    assert_eq!(
        (a.start, a.end, a.step, a.max_parallel),
        (1, 10, 2, Some(3))
    );
    assert_eq!(i.workflow.metadata.name, "prep");
    // -W 1:30 is hour:minute.
    assert_eq!(s.resources.walltime.unwrap().as_secs(), 5400);
    // The second -gpu (num=2 per host) replaces the first (num=1/task, gmodel=…).
    assert_eq!(
        (
            s.resources.gpus_per_node,
            s.resources.gpus_per_task,
            s.resources.gpu_type.as_deref()
        ),
        (Some(2), None, None)
    );
    assert_eq!(status_of(&i, 9, "-gpu"), Status::Ignored);
    // -w 'done(1234) && ended("prep")'.
    let d = &s.scheduling.dependencies;
    assert_eq!(
        (d[0].condition, d[1].condition),
        (DependencyCondition::AfterOk, DependencyCondition::AfterAny)
    );
    assert_eq!(d[1].jobs, ["prep"]);
    // -B and -N: mail at begin and end; -x exclusive; -f staging.
    assert_eq!(
        s.scheduling.mail.as_ref().unwrap().events,
        [MailEvent::Begin, MailEvent::End]
    );
    assert_eq!(s.resources.exclusive, Some(true));
    assert_eq!(s.data.inputs[0].path, "/scratch/input.dat");
    // ##BSUB and # BSUB are comments: never listed.
    assert!(i
        .report
        .directives
        .iter()
        .all(|d| d.line != 6 && d.line != 7));
    assert_eq!(status_of(&i, 18, "-frobnicate"), Status::Unsupported);
    assert_eq!(s.launcher.kind, LauncherKind::Jsrun);
}

#[test]
fn lsf_legacy_gpu_hosts_one_and_default_kb_memory() {
    let i = fixture("lsf/legacy_gpu.lsf");
    let r = &i.workflow.spec.resources;
    // span[hosts=1]: every slot on one host; rusage[ngpus_excl_p=4]; affinity[core(5)].
    assert_eq!(
        (r.nodes, r.tasks_per_node, r.gpus_per_node, r.cpus_per_task),
        (Some(1), Some(2), Some(4), Some(5))
    );
    // -M 8192 with LSF_UNIT_FOR_LIMITS at its default (KB) overrides rusage[mem=8192].
    assert_eq!(r.memory_per_node.unwrap().bytes(), 8192 * 1024);
    assert_eq!(r.walltime.unwrap().as_secs(), 45 * 60);
    assert_eq!(i.workflow.spec.launcher.kind, LauncherKind::Ddlrun);
}

#[test]
fn slurm_rules() {
    let i = fixture("slurm/rules.sbatch");
    let s = &i.workflow.spec;
    assert_eq!(i.report.dialect, Dialect::Slurm);
    // The unquoted "# the name has a space" is a comment.
    assert_eq!(
        i.workflow.metadata.annotations["atlas.dev/original-name"],
        "train model"
    );
    // -N 2 --ntasks-per-node=4 => 8 tasks; --gres=gpu:v100:2 per node; --mem=64G per node.
    assert_eq!((s.resources.nodes, s.resources.tasks), (Some(2), Some(8)));
    assert_eq!(
        (s.resources.gpus_per_node, s.resources.gpu_type.as_deref()),
        (Some(2), Some("v100"))
    );
    assert_eq!(s.resources.memory_per_node.unwrap().bytes(), 64 * GI);
    // --time=1-12:00:00 is days-hours:minutes:seconds.
    assert_eq!(s.resources.walltime.unwrap().to_string(), "36h");
    let a = s.scheduling.array.as_ref().unwrap();
    assert_eq!(
        (a.start, a.end, a.step, a.max_parallel),
        (0, 15, 4, Some(2))
    );
    assert_eq!(s.scheduling.dependencies[0].jobs, ["1001", "1002"]);
    assert_eq!(
        s.scheduling.output.as_deref(),
        Some("logs/{jobName}-{arrayJobId}_{arrayIndex}.out")
    );
    assert_eq!(s.environment.variables["OMP_NUM_THREADS"], "8");
    assert_eq!(s.environment.export_all, Some(true));
    // Column 1 only, and only before the first command.
    assert_eq!(s.scheduling.queue.as_deref(), Some("gpu"));
    assert!(i.report.directives.iter().all(|d| d.line < 19));
    assert_eq!(
        i.report
            .warnings
            .iter()
            .filter(|w| w.line == Some(19) || w.line == Some(25))
            .count(),
        2
    );
    // srun torchrun: the inner launcher wins.
    assert_eq!(s.launcher.kind, LauncherKind::Torchrun);
    assert_eq!(s.environment.venv.as_deref(), Some("$HOME/venvs/torch"));
    assert_eq!(status_of(&i, 18, "--frobnicate"), Status::Unsupported);
}

#[test]
fn slurm_hetjob_components() {
    let i = fixture("slurm/hetjob.sbatch");
    let s = &i.workflow.spec;
    assert_eq!(s.scheduling.queue.as_deref(), Some("cpu"));
    assert_eq!(s.resources.memory_per_node.unwrap().bytes(), 4 * GI);
    let het = &s.het_components[0];
    assert_eq!(het.queue.as_deref(), Some("gpu"));
    assert_eq!(
        (het.resources.nodes, het.resources.gpus_per_node),
        (Some(2), Some(4))
    );
    // --mem-per-cpu=2000 is megabytes.
    assert_eq!(het.resources.memory_per_cpu.unwrap().bytes(), 2000 << 20);
    assert_eq!(het.resources.walltime.unwrap().as_secs(), 30 * 60);
}

#[test]
fn slurm_gpus_repeated_time_and_mem_zero() {
    let i = fixture("slurm/gpus.sbatch");
    let r = &i.workflow.spec.resources;
    assert_eq!(
        (r.gpus, r.gpus_per_task, r.tasks, r.cpus_per_task),
        (Some(8), Some(1), Some(8), Some(4))
    );
    assert_eq!(r.walltime.unwrap().as_secs(), 120 * 60);
    assert_eq!(r.memory_per_node, None);
    assert_eq!(status_of(&i, 6, "--mem"), Status::Ignored);
    assert_eq!(i.workflow.spec.launcher.kind, LauncherKind::Torchrun);
}

#[test]
fn pbs_select_model() {
    let i = fixture("pbs/select.pbs");
    let s = &i.workflow.spec;
    assert_eq!(i.report.dialect, Dialect::Pbs);
    // select=2:ncpus=8:mpiprocs=4:ngpus=2:mem=32gb: 2 chunks, 4 ranks each, 8/4 = 2 CPUs per rank.
    let r = &s.resources;
    assert_eq!(
        (
            r.nodes,
            r.tasks_per_node,
            r.cpus_per_task,
            r.gpus_per_node,
            r.tasks
        ),
        (Some(2), Some(4), Some(2), Some(2), Some(8))
    );
    assert_eq!(r.memory_per_node.unwrap().bytes(), 32 * GI);
    assert_eq!(r.walltime.unwrap().as_secs(), 7200);
    assert_eq!(r.exclusive, Some(true));
    assert_eq!(s.scheduling.queue.as_deref(), Some("workq"));
    let a = s.scheduling.array.as_ref().unwrap();
    assert_eq!(
        (a.start, a.end, a.step, a.max_parallel),
        (1, 10, 2, Some(3))
    );
    assert_eq!(
        s.scheduling.dependencies[0].jobs,
        ["123.pbsserver", "124.pbsserver"]
    );
    // -j oe: standard error joins the output file.
    assert_eq!(s.scheduling.error, s.scheduling.output);
    assert_eq!(
        s.scheduling.mail.as_ref().unwrap().events,
        [MailEvent::Begin, MailEvent::End, MailEvent::Fail]
    );
    assert_eq!(status_of(&i, 12, "-l"), Status::Unsupported);
    // qsub stops at the first command: line 15 is only a warning.
    assert!(i.report.warnings.iter().any(|w| w.line == Some(15)));
    assert_eq!(s.launcher.kind, LauncherKind::Mpirun);
}

#[test]
fn torque_nodes_ppn_is_the_select_model() {
    let i = fixture("pbs/torque_nodes.pbs");
    let r = &i.workflow.spec.resources;
    // nodes=2:ppn=8 == select=2:ncpus=8:mpiprocs=8; walltime=3600 is seconds.
    assert_eq!(
        (
            r.nodes,
            r.tasks_per_node,
            r.cpus_per_task,
            r.tasks,
            r.gpus_per_node
        ),
        (Some(2), Some(8), Some(1), Some(16), Some(1))
    );
    assert_eq!(r.constraint.as_deref(), Some("k80"));
    assert_eq!(r.walltime.unwrap().as_secs(), 3600);
    let a = i.workflow.spec.scheduling.array.as_ref().unwrap();
    assert_eq!((a.start, a.end, a.max_parallel), (1, 5, Some(2)));
    assert_eq!(r.memory_per_cpu.unwrap().bytes(), 2 * GI);
}

#[test]
fn pbs_job_wide_resources_are_one_chunk_and_an_empty_option_is_invalid() {
    let i = fixture("pbs/jobwide.pbs");
    let r = &i.workflow.spec.resources;
    assert_eq!(
        (r.nodes, r.tasks_per_node, r.cpus_per_task, r.gpus_per_node),
        (Some(1), Some(1), Some(16), Some(1))
    );
    assert_eq!(r.memory_per_node.unwrap().bytes(), 64 * GI);
    assert_eq!(r.walltime.unwrap().as_secs(), 45 * 60);
    assert_eq!(status_of(&i, 3, "-A"), Status::Invalid);
}

#[test]
fn malformed_values_are_invalid_with_their_line() {
    for (file, count) in [("bad/malformed.sbatch", 7), ("bad/malformed.lsf", 5)] {
        let i = fixture(file);
        assert_eq!(i.report.count(Status::Invalid), count, "{file}");
        assert!(
            i.report.directives.iter().all(|d| d.note.is_some()),
            "{file}: every invalid entry says why"
        );
    }
}

#[test]
fn crlf_tabs_and_no_final_newline() {
    let i = fixture("bad/crlf_tabs_no_newline.lsf");
    assert_eq!(i.workflow.spec.scheduling.queue.as_deref(), Some("normal"));
    assert_eq!(i.workflow.spec.phases[0].run, "echo hi");
}

#[test]
fn no_directives_is_an_error_unless_a_dialect_is_given() {
    let text = "#!/bin/bash\necho hi\n";
    assert!(import(text, &ImportOptions::default()).is_err());
    let given = ImportOptions {
        dialect: Some(Dialect::Slurm),
        ..Default::default()
    };
    assert_eq!(
        import(text, &given).unwrap().workflow.spec.phases[0].run,
        "echo hi"
    );
}

#[test]
fn a_script_of_the_largest_size_imports_and_a_larger_one_is_refused() {
    let line = "echo $SLURM_JOB_ID # a long body line that repeats\n";
    let mut text = String::from("#SBATCH -N 1\n");
    while text.len() + line.len() <= atlas_import::MAX_SCRIPT_BYTES {
        text.push_str(line);
    }
    let i = import(&text, &ImportOptions::default()).unwrap();
    assert_eq!(i.workflow.spec.resources.nodes, Some(1));
    text.push_str(line);
    let err = import(&text, &ImportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("at most"), "{err}");
}

#[test]
fn mixed_dialects_are_reported() {
    let text = "#SBATCH -N 2\n#SBATCH -t 10\n#BSUB -n 4\nsrun x\n";
    let i = import(text, &ImportOptions::default()).unwrap();
    assert_eq!(i.report.dialect, Dialect::Slurm);
    assert!(i
        .report
        .warnings
        .iter()
        .any(|w| w.message.contains("#BSUB")));
}

/// sbatch(1), -N: "If -N is not specified, the default behavior is to allocate enough nodes to
/// satisfy the requested resources": --ntasks-per-node alone, or one task, is one node; more
/// tasks without -N leave the node count to the cluster's node size, which a script cannot know.
#[test]
fn slurm_without_a_node_count_is_one_node_when_the_request_says_so() {
    let slurm = |directives: &str| {
        let text = format!("#!/bin/bash\n{directives}srun ./a.out\n");
        import(&text, &ImportOptions::default())
            .unwrap()
            .workflow
            .spec
            .resources
    };
    let per_node = slurm("#SBATCH --ntasks-per-node=4\n");
    assert_eq!((per_node.nodes, per_node.tasks), (Some(1), Some(4)));
    let one = slurm("#SBATCH --ntasks=1\n");
    assert_eq!((one.nodes, one.tasks), (Some(1), Some(1)));
    let eight = slurm("#SBATCH -n 8\n");
    assert_eq!((eight.nodes, eight.tasks), (None, Some(8)));
    let given = slurm("#SBATCH -N 2\n#SBATCH --ntasks-per-node=4\n");
    assert_eq!((given.nodes, given.tasks), (Some(2), Some(8)));
}

/// bsub(1): `-n 1` is one task on one host whatever `span[ptile=K]` asks per host; `-M` is a
/// memory limit and does not replace the `rusage[mem=]` reservation, in either order.
#[test]
fn lsf_one_task_is_one_per_host_and_a_limit_never_replaces_the_reservation() {
    let lsf = |directives: &str| {
        let text = format!("#!/bin/bash\n{directives}echo hi\n");
        import(&text, &ImportOptions::default())
            .unwrap()
            .workflow
            .spec
            .resources
    };
    let one = lsf("#BSUB -n 1\n#BSUB -R \"span[ptile=4]\"\n");
    assert_eq!(
        (one.nodes, one.tasks, one.tasks_per_node),
        (Some(1), Some(1), Some(1))
    );
    for order in [
        "#BSUB -M 2000\n#BSUB -R \"rusage[mem=8000]\"\n",
        "#BSUB -R \"rusage[mem=8000]\"\n#BSUB -M 2000\n",
    ] {
        let r = lsf(order);
        assert_eq!(r.memory_per_node.unwrap().bytes(), 8000 * 1024, "{order}");
    }
    let limit_only = lsf("#BSUB -M 2000\n");
    assert_eq!(limit_only.memory_per_node.unwrap().bytes(), 2000 * 1024);
}

fn script(text: &str) -> Import {
    import(text, &ImportOptions::default()).unwrap()
}

#[test]
fn whether_a_job_may_be_requeued_is_carried_from_each_dialect() {
    // sbatch(1): "--requeue Specifies that the batch job should be eligible for requeuing";
    // "--no-requeue Specifies that a batch job should never be requeued under any
    // circumstances". The last one given wins.
    let may = |text: &str| script(text).workflow.spec.scheduling.requeue;
    assert_eq!(may("#SBATCH --requeue\ntrue\n"), Some(true));
    assert_eq!(
        may("#SBATCH --requeue\n#SBATCH --no-requeue\ntrue\n"),
        Some(false)
    );
    let slurm = script("#SBATCH --no-requeue\ntrue\n");
    assert_eq!(status_of(&slurm, 1, "--no-requeue"), Status::Mapped);
    // bsub(1): "-r Reruns a job if the execution host or the system fails"; "-rn Specifies
    // that the job is never re-runnable".
    assert_eq!(may("#BSUB -r\ntrue\n"), Some(true));
    assert_eq!(may("#BSUB -rn\ntrue\n"), Some(false));
    // qsub(1B): "-r y|n Declares whether the job is rerunnable".
    assert_eq!(may("#PBS -r y\ntrue\n"), Some(true));
    assert_eq!(may("#PBS -r n\ntrue\n"), Some(false));
    let bad = script("#PBS -r maybe\ntrue\n");
    assert_eq!(bad.workflow.spec.scheduling.requeue, None);
    assert_eq!(status_of(&bad, 1, "-r"), Status::Invalid);
    // Nothing said: nothing set.
    assert_eq!(may("#SBATCH -t 10\ntrue\n"), None);
}

#[test]
fn a_warning_signal_before_the_limit_is_the_checkpoints_signal_and_grace() {
    // sbatch(1): "--signal=[{R|B}:]<sig_num>[@sig_time] ... send it sig_time seconds before
    // its end time ... Due to the resolution of event handling by Slurm, the signal may be sent
    // up to 60 seconds earlier than specified. sig_time ... by default 60."
    let with = script("#!/bin/bash\n#SBATCH --signal=B:USR1@120\n#SBATCH -t 10\n# atlas: checkpoint ck.npz\npython3 train.py\n");
    let checkpoint = with.workflow.spec.checkpoint.clone().unwrap();
    assert_eq!(
        (checkpoint.signal.as_str(), checkpoint.grace().as_secs()),
        ("USR1", 120)
    );
    assert_eq!(status_of(&with, 2, "--signal"), Status::Mapped);
    let default_lead = script("#SBATCH --signal=12\n# atlas: checkpoint ck.npz\ntrue\n");
    let checkpoint = default_lead.workflow.spec.checkpoint.unwrap();
    assert_eq!(
        (checkpoint.signal.as_str(), checkpoint.grace().as_secs()),
        ("USR2", 60)
    );
    // Without the marker there is no file to check: reported, not mapped.
    let without = script("#SBATCH --signal=USR1@90\ntrue\n");
    assert!(without.workflow.spec.checkpoint.is_none());
    assert_eq!(status_of(&without, 1, "--signal"), Status::Unsupported);
    let kill = script("#SBATCH --signal=KILL@30\n# atlas: checkpoint ck.npz\ntrue\n");
    assert_eq!(status_of(&kill, 1, "--signal"), Status::Unsupported);
    assert_eq!(
        kill.workflow.spec.checkpoint.clone().unwrap().signal,
        "USR1"
    );
    // bsub(1): "-wa 'signal' Specifies the job action to be taken before a job control action
    // occurs ... -wt '[hour:]minute' Specifies the amount of time before a job control action
    // occurs that a job warning action is to be taken." The marker's own words win.
    let lsf = script("#BSUB -wa USR2\n#BSUB -wt 1:30\n# atlas: checkpoint ck.npz\ntrue\n");
    let checkpoint = lsf.workflow.spec.checkpoint.unwrap();
    assert_eq!(
        (checkpoint.signal.as_str(), checkpoint.grace().as_secs()),
        ("USR2", 5400)
    );
    let long = script("#BSUB -wa USR1\n#BSUB -wt 8:00\n# atlas: checkpoint ck.npz\ntrue\n");
    assert_eq!(
        long.workflow.spec.checkpoint.unwrap().grace().as_secs(),
        6 * 3600
    );
    let marker_wins = script("#BSUB -wa USR2\n# atlas: checkpoint ck.npz signal=HUP\ntrue\n");
    assert_eq!(marker_wins.workflow.spec.checkpoint.unwrap().signal, "HUP");
}

/// lsf.conf(5), LSF_UNIT_FOR_LIMITS: the unit of a bare memory number in `-M` and `rusage[mem=]`
/// (KB unless the site sets it); a number with its own unit keeps it.
#[test]
fn the_sites_lsf_unit_reads_bare_memory_numbers() {
    let text =
        "#!/bin/bash\n#BSUB -R \"rusage[mem=4096]\"\n#BSUB -gpu \"num=1:gmem=2GB\"\necho hi\n";
    let with = |unit| {
        let options = ImportOptions {
            lsf_unit: unit,
            ..Default::default()
        };
        import(text, &options).unwrap()
    };
    let kb = with(atlas_import::LsfUnit::Kb).workflow.spec.resources;
    assert_eq!(kb.memory_per_node.unwrap().bytes(), 4096 << 10);
    let site = with(atlas_import::LsfUnit::Mb);
    let mb = &site.workflow.spec.resources;
    assert_eq!(mb.memory_per_node.unwrap().bytes(), 4096 << 20);
    assert_eq!(
        mb.memory_per_gpu, None,
        "gmem is the GPU's memory, not the host's"
    );
    let gpu_note = site.report.directives[1].note.clone().unwrap_or_default();
    assert!(
        gpu_note.contains("gmem=2Gi"),
        "a suffix keeps its unit: {gpu_note}"
    );
    let note = site.report.directives[0].note.clone().unwrap_or_default();
    assert!(note.contains("a bare number is MB"), "{note}");
}

/// PBS Pro Reference Guide, "Converting old-style node specifications": `nodes=N:ncpus=C` is
/// `select=N:ncpus=C` (mpiprocs 1 per chunk); Torque's `ppn=P` is the processes per host.
#[test]
fn pbs_pro_nodes_with_ncpus_is_one_process_of_c_cpus_per_host() {
    let pbs = |directives: &str| {
        let text = format!("#!/bin/bash\n{directives}mpirun ./a.out\n");
        import(&text, &ImportOptions::default()).unwrap()
    };
    let r = pbs("#PBS -l nodes=2:ncpus=4\n").workflow.spec.resources;
    assert_eq!(
        (r.nodes, r.tasks_per_node, r.cpus_per_task, r.tasks),
        (Some(2), Some(1), Some(4), Some(2))
    );
    let same = pbs("#PBS -l select=2:ncpus=4\n").workflow.spec.resources;
    assert_eq!(r, same, "the same request in the select model");
    // With ppn: `nodes=N:ppn=P:ncpus=C` is `select=N:ncpus=P*C:mpiprocs=P`.
    let both = pbs("#PBS -l nodes=2:ppn=8:ncpus=2\n")
        .workflow
        .spec
        .resources;
    let select = pbs("#PBS -l select=2:ncpus=16:mpiprocs=8\n")
        .workflow
        .spec
        .resources;
    assert_eq!(
        (both.tasks_per_node, both.cpus_per_task),
        (Some(8), Some(2))
    );
    assert_eq!(both, select);
}

/// A launcher one level down is the one that starts the ranks: `srun $CMD` with the command in
/// a variable, `srun bash -c "$LAUNCHER train.py"` with torchrun, `python -m
/// torch.distributed.run` or `accelerate launch` in the variable (bash(1): `-c` runs its
/// string; an unquoted variable is split into words).
#[test]
fn a_launcher_hidden_in_a_variable_or_a_shell_string_is_the_inner_one() {
    let launcher = |body: &str| {
        let text = format!("#!/bin/bash\n#SBATCH -N 2\n{body}");
        import(&text, &ImportOptions::default())
            .unwrap()
            .workflow
            .spec
            .launcher
            .kind
    };
    assert_eq!(
        launcher("CMD=\"torchrun --nproc_per_node 4 train.py\"\nsrun $CMD\n"),
        LauncherKind::Torchrun
    );
    assert_eq!(
        launcher(
            "LAUNCHER=\"accelerate launch --multi_gpu\"\nsrun bash -c \"$LAUNCHER train.py\"\n"
        ),
        LauncherKind::Accelerate
    );
    assert_eq!(
        launcher("export LAUNCHER=\"python -m torch.distributed.run --nproc_per_node 2\"\nsrun bash -c \"$LAUNCHER train.py\"\n"),
        LauncherKind::Torchrun
    );
    assert_eq!(launcher("srun bash -c \"hostname\"\n"), LauncherKind::Srun);
    // The shape of accelerate's own Slurm example: the value holds `$((…))`, `$(…)` and
    // variables that only the job knows; the command is assembled from several variables.
    let accelerate = "export GPUS_PER_NODE=4\n\
        head_node_ip=$(srun --nodes=1 --ntasks=1 -w \"$head_node\" hostname --ip-address)\n\
        export LAUNCHER=\"accelerate launch \\\n    --num_processes $((SLURM_NNODES * GPUS_PER_NODE)) \\\n    --num_machines $SLURM_NNODES \\\n    --main_process_ip $head_node_ip \\\n    \"\n\
        export SCRIPT=\"${ACCELERATE_DIR}/examples/nlp_example.py\"\n\
        export CMD=\"$LAUNCHER $SCRIPT --mixed_precision fp16\"\n\
        srun $CMD\n";
    assert_eq!(launcher(accelerate), LauncherKind::Accelerate);
    // A quoted argument is one word: it names torchrun but does not run it.
    assert_eq!(
        launcher("srun python report.py \"compare with torchrun\"\n"),
        LauncherKind::Srun
    );
}
