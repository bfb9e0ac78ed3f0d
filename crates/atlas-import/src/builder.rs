//! `Builder`: collects what the directives say into a Workflow and its report, and implements
//! the rule all three schedulers share: when an option repeats, the last one wins, and both
//! lines say so in the report.

use std::collections::HashMap;

use atlas_spec::{Duration, Quantity, Resources, Workflow};

use crate::report::{ConversionReport, Dialect, DirectiveEntry, Status, Warning};

/// A Workflow field a directive can set, with "last one wins" semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    Name,
    Queue,
    Account,
    Qos,
    Reservation,
    Array,
    Dependencies,
    MailUsers,
    MailEvents,
    Output,
    Error,
    WorkingDirectory,
    Begin,
    ExportAll,
    Nodes,
    Tasks,
    TasksPerNode,
    CpusPerTask,
    GpusPerNode,
    GpusPerTask,
    Gpus,
    GpuType,
    MemoryPerNode,
    MemoryPerCpu,
    MemoryPerGpu,
    Walltime,
    Exclusive,
    Constraint,
    Requeue,
}

impl Field {
    /// Fields that belong to a job component's resources (and so to a hetjob component).
    fn is_resource(self) -> bool {
        matches!(
            self,
            Field::Nodes
                | Field::Tasks
                | Field::TasksPerNode
                | Field::CpusPerTask
                | Field::GpusPerNode
                | Field::GpusPerTask
                | Field::Gpus
                | Field::GpuType
                | Field::MemoryPerNode
                | Field::MemoryPerCpu
                | Field::MemoryPerGpu
                | Field::Walltime
                | Field::Exclusive
                | Field::Constraint
        )
    }

    fn key(self) -> &'static str {
        match self {
            Field::Name => "metadata.name",
            Field::Queue => "queue",
            Field::Account => "spec.scheduling.account",
            Field::Qos => "spec.scheduling.qos",
            Field::Reservation => "spec.scheduling.reservation",
            Field::Array => "spec.scheduling.array",
            Field::Dependencies => "spec.scheduling.dependencies",
            Field::MailUsers => "spec.scheduling.mail.users",
            Field::MailEvents => "spec.scheduling.mail.events",
            Field::Output => "spec.scheduling.output",
            Field::Error => "spec.scheduling.error",
            Field::WorkingDirectory => "spec.scheduling.workingDirectory",
            Field::Begin => "spec.scheduling.begin",
            Field::Requeue => "spec.scheduling.requeue",
            Field::ExportAll => "spec.environment.exportAll",
            Field::Nodes => "nodes",
            Field::Tasks => "tasks",
            Field::TasksPerNode => "tasksPerNode",
            Field::CpusPerTask => "cpusPerTask",
            Field::GpusPerNode => "gpusPerNode",
            Field::GpusPerTask => "gpusPerTask",
            Field::Gpus => "gpus",
            Field::GpuType => "gpuType",
            Field::MemoryPerNode => "memoryPerNode",
            Field::MemoryPerCpu => "memoryPerCpu",
            Field::MemoryPerGpu => "memoryPerGpu",
            Field::Walltime => "walltime",
            Field::Exclusive => "exclusive",
            Field::Constraint => "constraint",
        }
    }
}

/// The path of `field` in the Workflow, for job component `component` (0 = the main one).
fn path(field: Field, component: usize) -> String {
    match (field, component) {
        (Field::Queue, 0) => "spec.scheduling.queue".to_string(),
        (Field::Queue, c) => format!("spec.hetComponents[{}].queue", c - 1),
        (f, 0) if f.is_resource() => format!("spec.resources.{}", f.key()),
        (f, c) if f.is_resource() => format!("spec.hetComponents[{}].resources.{}", c - 1, f.key()),
        (f, _) => f.key().to_string(),
    }
}

/// Builds a Workflow and its ConversionReport from directives, in script order.
pub(crate) struct Builder {
    pub workflow: Workflow,
    pub report: ConversionReport,
    /// Which entry last set each (component, field).
    owners: HashMap<(usize, Field), usize>,
    /// The fields each entry still owns, parallel to `report.directives`.
    owned: Vec<Vec<(usize, Field)>>,
    /// Current hetjob component (0 = the first).
    component: usize,
    /// The job name as the script wrote it.
    pub job_name: Option<String>,
    /// A signal the scheduler sends before the time limit (`--signal`, `-wa`/`-wt`): the
    /// checkpoint's signal and grace, with the entries that said them; `spec.checkpoint` takes
    /// them once a `# atlas: checkpoint FILE` marker gives the file ([`Builder::finish_checkpoint`]).
    pub checkpoint_hint: CheckpointHint,
    /// What a bare LSF memory number counts (the site's `LSF_UNIT_FOR_LIMITS`).
    pub lsf_unit: crate::units::LsfUnit,
    /// A memory request set as the memory per node but counted otherwise (LSF's
    /// `rusage[mem=X/task]`, `/job`; PBS's job-wide `mem`), with the entry that set it: made
    /// per node once the layout is known ([`Builder::derive_layout`]).
    pub memory_count: Option<(usize, MemoryCount)>,
}

/// How a memory request counts, where it is not per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemoryCount {
    /// For each task (process, LSF slot).
    PerTask,
    /// For the whole job, across its nodes.
    PerJob,
}

/// What the directives say about checkpointing.
#[derive(Debug, Default)]
pub(crate) struct CheckpointHint {
    pub signal: Option<String>,
    pub grace: Option<atlas_spec::Duration>,
    pub entries: Vec<usize>,
}

impl Builder {
    pub fn new(dialect: Dialect) -> Self {
        Builder {
            workflow: Workflow::default(),
            report: ConversionReport {
                dialect,
                directives: Vec::new(),
                warnings: Vec::new(),
            },
            owners: HashMap::new(),
            owned: Vec::new(),
            component: 0,
            job_name: None,
            checkpoint_hint: CheckpointHint::default(),
            lsf_unit: crate::units::LsfUnit::default(),
            memory_count: None,
        }
    }

    /// Fills `spec.checkpoint`'s signal and grace from the directives where the marker did not
    /// give them; without a marker the directives are reported as needing one.
    pub fn finish_checkpoint(&mut self, marker_signal: bool, marker_grace: bool) {
        let hint = std::mem::take(&mut self.checkpoint_hint);
        let Some(checkpoint) = self.workflow.spec.checkpoint.as_mut() else {
            for e in hint.entries {
                self.unsupported(
                    e,
                    "a signal before the time limit; with a `# atlas: checkpoint FILE` marker it becomes spec.checkpoint's signal and grace",
                );
            }
            return;
        };
        if let (Some(signal), false) = (hint.signal, marker_signal) {
            checkpoint.signal = signal;
        }
        if let (Some(grace), false) = (hint.grace, marker_grace) {
            checkpoint.grace = Some(grace);
        }
        for e in hint.entries {
            self.report.directives[e].field = Some("spec.checkpoint".into());
        }
    }

    /// Adds a report entry for one option occurrence, `mapped` until told otherwise.
    pub fn entry(&mut self, line: u32, text: &str, option: &str, value: Option<&str>) -> usize {
        self.report.directives.push(DirectiveEntry {
            line,
            text: text.trim().to_string(),
            option: option.to_string(),
            value: value.map(str::to_string),
            status: Status::Mapped,
            field: None,
            note: None,
        });
        self.owned.push(Vec::new());
        self.report.directives.len() - 1
    }

    /// Starts the next hetjob component; resource fields now go there.
    pub fn next_component(&mut self) {
        self.component += 1;
        self.workflow.spec.het_components.push(Default::default());
    }

    pub fn warn(&mut self, line: Option<u32>, message: impl Into<String>) {
        self.report.warnings.push(Warning {
            line,
            message: message.into(),
        });
    }

    fn set_status(&mut self, e: usize, status: Status, note: impl Into<String>) {
        self.report.directives[e].status = status;
        self.note(e, note);
    }

    pub fn ignored(&mut self, e: usize, note: impl Into<String>) {
        self.set_status(e, Status::Ignored, note);
    }

    pub fn unsupported(&mut self, e: usize, note: impl Into<String>) {
        self.set_status(e, Status::Unsupported, note);
    }

    /// Marks the entry invalid, unless it already mapped something (then only a note).
    pub fn invalid(&mut self, e: usize, note: impl Into<String>) {
        if self.owned[e].is_empty() {
            self.set_status(e, Status::Invalid, note);
        } else {
            self.note(e, note);
        }
    }

    /// Appends a note to an entry.
    pub fn note(&mut self, e: usize, note: impl Into<String>) {
        let note = note.into();
        if note.is_empty() {
            return;
        }
        let entry = &mut self.report.directives[e];
        if entry
            .note
            .as_deref()
            .is_some_and(|n| n.split("; ").any(|part| part == note))
        {
            return;
        }
        entry.note = Some(match entry.note.take() {
            Some(old) => format!("{old}; {note}"),
            None => note,
        });
    }

    /// Names a Workflow field an entry added to, where repeats add rather than override
    /// (environment variables, staged files, hetjob components).
    pub fn mark_field(&mut self, e: usize, path: &str) {
        let entry = &mut self.report.directives[e];
        match &mut entry.field {
            Some(old) if old.split(", ").any(|f| f == path) => {}
            Some(old) => {
                old.push_str(", ");
                old.push_str(path);
            }
            None => entry.field = Some(path.to_string()),
        }
    }

    /// Records that entry `e` sets `field`; an earlier owner loses it (the last one wins).
    pub fn claim(&mut self, e: usize, field: Field) {
        let component = if field.is_resource() || field == Field::Queue {
            self.component
        } else {
            0
        };
        let key = (component, field);
        let field_path = path(field, component);
        if let Some(previous) = self.owners.insert(key, e) {
            if previous != e {
                let line = self.report.directives[e].line;
                let previous_line = self.report.directives[previous].line;
                self.owned[previous].retain(|k| *k != key);
                self.note(
                    previous,
                    format!("{field_path} overridden by line {line} (the last one wins)"),
                );
                if self.owned[previous].is_empty() {
                    self.report.directives[previous].status = Status::Ignored;
                }
                self.note(e, format!("overrides line {previous_line}"));
            }
        }
        if !self.owned[e].contains(&key) {
            self.owned[e].push(key);
            let entry = &mut self.report.directives[e];
            entry.field = Some(match entry.field.take() {
                Some(old) => format!("{old}, {field_path}"),
                None => field_path,
            });
        }
    }

    /// Entry `e` replaces whatever earlier entries set for `fields` (a repeated option that
    /// may set other fields than its predecessor, such as LSF's `-gpu`): the values are
    /// cleared and the earlier entries say they were overridden.
    pub fn replace_all(&mut self, e: usize, fields: &[Field]) {
        for &field in fields {
            let key = (self.component, field);
            if self.owners.get(&key).is_none_or(|p| *p == e) {
                continue;
            }
            let previous = self.owners.remove(&key).unwrap_or(e);
            let (line, previous_line) = (
                self.report.directives[e].line,
                self.report.directives[previous].line,
            );
            self.owned[previous].retain(|k| *k != key);
            self.note(
                previous,
                format!(
                    "{} overridden by line {line} (the last one wins)",
                    path(field, key.0)
                ),
            );
            if self.owned[previous].is_empty() {
                self.report.directives[previous].status = Status::Ignored;
            }
            self.note(e, format!("overrides line {previous_line}"));
            let r = self.resources();
            match field {
                Field::GpusPerNode => r.gpus_per_node = None,
                Field::GpusPerTask => r.gpus_per_task = None,
                Field::Gpus => r.gpus = None,
                Field::GpuType => r.gpu_type = None,
                Field::MemoryPerGpu => r.memory_per_gpu = None,
                other => unreachable!("{other:?} cannot be replaced"),
            }
        }
    }

    /// The resources of the current component.
    pub fn resources(&mut self) -> &mut Resources {
        match self.component {
            0 => &mut self.workflow.spec.resources,
            c => &mut self.workflow.spec.het_components[c - 1].resources,
        }
    }

    fn u32_slot(&mut self, field: Field) -> &mut Option<u32> {
        let r = self.resources();
        match field {
            Field::Nodes => &mut r.nodes,
            Field::Tasks => &mut r.tasks,
            Field::TasksPerNode => &mut r.tasks_per_node,
            Field::CpusPerTask => &mut r.cpus_per_task,
            Field::GpusPerNode => &mut r.gpus_per_node,
            Field::GpusPerTask => &mut r.gpus_per_task,
            Field::Gpus => &mut r.gpus,
            other => unreachable!("{other:?} is not a count"),
        }
    }

    fn quantity_slot(&mut self, field: Field) -> &mut Option<Quantity> {
        let r = self.resources();
        match field {
            Field::MemoryPerNode => &mut r.memory_per_node,
            Field::MemoryPerCpu => &mut r.memory_per_cpu,
            Field::MemoryPerGpu => &mut r.memory_per_gpu,
            other => unreachable!("{other:?} is not a quantity"),
        }
    }

    fn text_slot(&mut self, field: Field) -> &mut Option<String> {
        if field == Field::Queue && self.component > 0 {
            let c = self.component;
            return &mut self.workflow.spec.het_components[c - 1].queue;
        }
        match field {
            Field::Name => return &mut self.job_name,
            Field::GpuType => return &mut self.resources().gpu_type,
            Field::Constraint => return &mut self.resources().constraint,
            _ => {}
        }
        let s = &mut self.workflow.spec.scheduling;
        match field {
            Field::Queue => &mut s.queue,
            Field::Account => &mut s.account,
            Field::Qos => &mut s.qos,
            Field::Reservation => &mut s.reservation,
            Field::Output => &mut s.output,
            Field::Error => &mut s.error,
            Field::WorkingDirectory => &mut s.working_directory,
            Field::Begin => &mut s.begin,
            other => unreachable!("{other:?} is not a text"),
        }
    }

    /// Sets a count; nodes, tasks and CPUs of 0 (and any count above the spec's maximum) are
    /// invalid, since no scheduler runs a job on none of them.
    pub fn set_count(&mut self, e: usize, field: Field, value: u32) {
        let at_least_one = matches!(
            field,
            Field::Nodes | Field::Tasks | Field::TasksPerNode | Field::CpusPerTask
        );
        if (at_least_one && value == 0) || value > atlas_spec::MAX_COUNT {
            let min = u32::from(at_least_one);
            let max = atlas_spec::MAX_COUNT;
            return self.invalid(e, format!("{value} is out of range ({min} to {max})"));
        }
        self.claim(e, field);
        *self.u32_slot(field) = Some(value);
    }

    pub fn set_quantity(&mut self, e: usize, field: Field, value: Quantity) {
        self.claim(e, field);
        *self.quantity_slot(field) = Some(value);
    }

    pub fn set_text(&mut self, e: usize, field: Field, value: impl Into<String>) {
        self.claim(e, field);
        *self.text_slot(field) = Some(value.into());
    }

    /// Sets the walltime. 0 means no limit (sbatch `-t 0`, LSF `-W 0`, PBS `walltime=0`), so
    /// the walltime stays unset; one beyond the spec's maximum is invalid.
    pub fn set_walltime(&mut self, e: usize, value: Duration) {
        if value.as_secs() == 0 {
            return self.ignored(
                e,
                "0 means no time limit; spec.resources.walltime stays unset",
            );
        }
        if value > atlas_spec::MAX_WALLTIME {
            let max = atlas_spec::MAX_WALLTIME;
            return self.invalid(
                e,
                format!("{value} is longer than the longest walltime, {max}"),
            );
        }
        self.claim(e, Field::Walltime);
        self.resources().walltime = Some(value);
    }

    pub fn set_requeue(&mut self, e: usize, value: bool) {
        self.claim(e, Field::Requeue);
        self.workflow.spec.scheduling.requeue = Some(value);
    }

    pub fn set_exclusive(&mut self, e: usize, value: bool) {
        self.claim(e, Field::Exclusive);
        self.resources().exclusive = Some(value);
    }

    /// The entry that last set `field` of the main component, if any.
    pub fn owner(&self, field: Field) -> Option<usize> {
        self.owners.get(&(0, field)).copied()
    }

    /// Fills in what the layout implies: nodes from tasks ÷ tasks per node, tasks from
    /// nodes × tasks per node. Each derived value is noted on the entry it came from.
    pub fn derive_layout(&mut self) {
        for component in 0..=self.workflow.spec.het_components.len() {
            self.component = component;
            let r = self.resources().clone();
            let owner = self.owners.get(&(component, Field::TasksPerNode)).copied();
            // A node holds at most the job's tasks (LSF: `-n 1` is one task on one host
            // whatever `span[ptile=K]` says).
            if let (Some(tasks), Some(per_node), Some(e)) = (r.tasks, r.tasks_per_node, owner) {
                if per_node > tasks {
                    self.resources().tasks_per_node = Some(tasks);
                    self.note(e, format!("{per_node} per node is more than the job's {tasks} task(s): {tasks} per node"));
                }
            }
            let r = self.resources().clone();
            match (r.nodes, r.tasks, r.tasks_per_node, owner) {
                (None, Some(tasks), Some(per_node), Some(e)) if per_node > 0 => {
                    let nodes = tasks.div_ceil(per_node);
                    self.set_count(e, Field::Nodes, nodes);
                    self.note(
                        e,
                        format!("nodes = {tasks} tasks / {per_node} per node = {nodes} (derived)"),
                    );
                }
                // sbatch(1), -N: "If -N is not specified, the default behavior is to allocate
                // enough nodes to satisfy the requested resources": --ntasks-per-node alone, or
                // one task, asks for one node.
                (None, None, Some(per_node), Some(e)) if self.report.dialect == Dialect::Slurm => {
                    self.set_count(e, Field::Nodes, 1);
                    self.set_count(e, Field::Tasks, per_node);
                    self.note(
                        e,
                        format!("no -N: one node with {per_node} task(s) (sbatch allocates the nodes the request needs)"),
                    );
                }
                // One task (a Slurm task, an LSF slot) is on one host.
                (None, Some(1), _, _) if self.report.dialect != Dialect::Pbs => {
                    if let Some(e) = self.owners.get(&(component, Field::Tasks)).copied() {
                        self.set_count(e, Field::Nodes, 1);
                        self.note(
                            e,
                            match self.report.dialect {
                                Dialect::Slurm => {
                                    "no -N: one task needs one node (sbatch's default)"
                                }
                                _ => "one task is on one host",
                            },
                        );
                    }
                }
                (Some(nodes), None, Some(per_node), Some(e)) => {
                    if let Some(tasks) = nodes.checked_mul(per_node) {
                        self.set_count(e, Field::Tasks, tasks);
                        self.note(
                            e,
                            format!(
                                "tasks = {nodes} nodes x {per_node} per node = {tasks} (derived)"
                            ),
                        );
                    }
                }
                _ => {}
            }
            self.derive_gpus(component);
        }
        self.component = 0;
        self.count_memory_per_node();
    }

    /// GPUs the request implies (each noted as derived): per node from per task × tasks per
    /// node, or from the job's GPUs on one node; the job's from per node × nodes, or per task ×
    /// tasks.
    fn derive_gpus(&mut self, component: usize) {
        let r = self.resources().clone();
        let owner = |b: &Self, f: Field| b.owners.get(&(component, f)).copied();
        let per_node = match (
            r.gpus_per_node,
            r.gpus_per_task,
            r.tasks_per_node,
            r.gpus,
            r.nodes,
        ) {
            (Some(_), ..) => None,
            (None, Some(g), Some(t), _, _) => owner(self, Field::GpusPerTask)
                .zip(g.checked_mul(t))
                .map(|(e, n)| {
                    (
                        e,
                        n,
                        format!(
                            "GPUs per node = {g} per task x {t} tasks per node = {n} (derived)"
                        ),
                    )
                }),
            (None, None, _, Some(g), Some(1)) => owner(self, Field::Gpus).map(|e| {
                (
                    e,
                    g,
                    format!("GPUs per node = {g}: the job's GPUs on its one node (derived)"),
                )
            }),
            _ => None,
        };
        if let Some((e, n, note)) = per_node {
            self.set_count(e, Field::GpusPerNode, n);
            self.note(e, note);
        }
        let r = self.resources().clone();
        let total = match (r.gpus, r.gpus_per_node, r.nodes, r.gpus_per_task, r.tasks) {
            (Some(_), ..) => None,
            (None, Some(g), Some(nodes), _, _) => owner(self, Field::GpusPerNode)
                .zip(g.checked_mul(nodes))
                .map(|(e, n)| {
                    (
                        e,
                        n,
                        format!("GPUs for the job = {g} per node x {nodes} nodes = {n} (derived)"),
                    )
                }),
            (None, None, _, Some(g), Some(tasks)) => owner(self, Field::GpusPerTask)
                .zip(g.checked_mul(tasks))
                .map(|(e, n)| {
                    (
                        e,
                        n,
                        format!("GPUs for the job = {g} per task x {tasks} tasks = {n} (derived)"),
                    )
                }),
            _ => None,
        };
        if let Some((e, n, note)) = total {
            self.set_count(e, Field::Gpus, n);
            self.note(e, note);
        }
    }

    /// Entry `e` no longer sets the field `key` (its value already cleared by the caller).
    fn disown(&mut self, e: usize, key: (usize, Field)) {
        self.owners.remove(&key);
        self.owned[e].retain(|k| *k != key);
        let field_path = path(key.1, key.0);
        if let Some(f) = &mut self.report.directives[e].field {
            *f = f
                .split(", ")
                .filter(|p| *p != field_path)
                .collect::<Vec<_>>()
                .join(", ");
        }
    }

    /// Turns a per-task or per-job memory request into the memory per node: × the tasks on a
    /// node, ÷ the nodes. Per task with no known tasks per node, it is the memory per CPU.
    fn count_memory_per_node(&mut self) {
        let Some((e, count)) = self.memory_count.take() else {
            return;
        };
        let key = (0, Field::MemoryPerNode);
        let r = self.workflow.spec.resources.clone();
        let (Some(memory), true) = (r.memory_per_node, self.owners.get(&key) == Some(&e)) else {
            return;
        };
        let nodes = r.nodes.unwrap_or(1).max(1);
        match count {
            MemoryCount::PerTask => {
                let per_node = r.tasks_per_node.or(r.tasks.filter(|_| r.nodes == Some(1)));
                match per_node.and_then(|n| memory.checked_mul(u64::from(n)).map(|m| (n, m))) {
                    Some((n, total)) => {
                        self.workflow.spec.resources.memory_per_node = Some(total);
                        self.note(
                            e,
                            format!("{memory} per task x {n} task(s) per node = {total} per node"),
                        );
                    }
                    None => {
                        self.workflow.spec.resources.memory_per_node = None;
                        self.disown(e, key);
                        self.set_quantity(e, Field::MemoryPerCpu, memory);
                        self.note(e, format!("{memory} per task, tasks per node not known: taken as the memory per CPU"));
                    }
                }
            }
            MemoryCount::PerJob if nodes > 1 => {
                let per_node = Quantity::from_bytes(memory.bytes().div_ceil(u64::from(nodes)));
                self.workflow.spec.resources.memory_per_node = Some(per_node);
                self.note(
                    e,
                    format!("{memory} for the job / {nodes} nodes = {per_node} per node"),
                );
            }
            MemoryCount::PerJob => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_one_wins_and_both_lines_say_so() {
        let mut b = Builder::new(Dialect::Lsf);
        let first = b.entry(3, "#BSUB -q a", "-q", Some("a"));
        b.set_text(first, Field::Queue, "a");
        let second = b.entry(5, "#BSUB -q b", "-q", Some("b"));
        b.set_text(second, Field::Queue, "b");
        assert_eq!(b.workflow.spec.scheduling.queue.as_deref(), Some("b"));
        let d = &b.report.directives;
        assert_eq!(d[0].status, Status::Ignored);
        assert!(d[0]
            .note
            .as_deref()
            .unwrap()
            .contains("overridden by line 5"));
        assert_eq!(d[1].status, Status::Mapped);
        assert!(d[1].note.as_deref().unwrap().contains("overrides line 3"));
    }

    #[test]
    fn an_entry_that_keeps_one_of_its_fields_stays_mapped() {
        let mut b = Builder::new(Dialect::Lsf);
        let first = b.entry(1, "", "-R", None);
        b.set_count(first, Field::TasksPerNode, 1);
        b.set_count(first, Field::GpusPerNode, 2);
        let second = b.entry(2, "", "-gpu", None);
        b.set_count(second, Field::GpusPerNode, 4);
        assert_eq!(b.report.directives[0].status, Status::Mapped);
    }

    #[test]
    fn nodes_are_derived_from_tasks_and_tasks_per_node() {
        let mut b = Builder::new(Dialect::Lsf);
        let n = b.entry(1, "", "-n", Some("4"));
        b.set_count(n, Field::Tasks, 4);
        let r = b.entry(2, "", "-R", Some("span[ptile=1]"));
        b.set_count(r, Field::TasksPerNode, 1);
        b.derive_layout();
        assert_eq!(b.workflow.spec.resources.nodes, Some(4));
        assert!(b.report.directives[1]
            .field
            .as_deref()
            .unwrap()
            .contains("spec.resources.nodes"));
    }
}
