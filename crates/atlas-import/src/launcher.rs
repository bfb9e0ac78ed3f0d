//! Finding the parallel launcher in a command (`mpirun`, `srun`, `torchrun`, …).
//!
//! Every word of a command is looked at, so wrappers such as `time`, `nsys profile`, `env A=1`,
//! `numactl` or `singularity exec IMAGE` are passed over: they are not launchers. When one
//! launcher starts another (`srun torchrun …`), the inner one is the launcher, because it is
//! the one that decides ranks and world size.

use atlas_spec::LauncherKind;

/// A launcher found in a command, with its own options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub kind: LauncherKind,
    pub args: Vec<String>,
}

/// Programs whose arguments are text, not commands (`echo mpirun` launches nothing).
const NOT_COMMANDS: &[&str] = &[
    "echo", "printf", "grep", "cat", "which", "type", "command", "module", "ml", "man", "#",
];

/// Flags (options without a value) per launcher; any other option takes the next word.
fn flags(kind: LauncherKind) -> &'static [&'static str] {
    match kind {
        LauncherKind::Srun => &[
            "-l",
            "--label",
            "-u",
            "--unbuffered",
            "--exclusive",
            "--exact",
            "--overlap",
            "-K",
            "--kill-on-bad-exit",
            "-Q",
            "--quiet",
            "-v",
            "--verbose",
            "--multi-prog",
            "--pty",
            "-X",
            "--disable-status",
            "-Z",
            "--no-allocate",
            "-O",
            "--overcommit",
            "--spread-job",
            "--use-min-nodes",
            "--whole",
        ],
        LauncherKind::Mpirun => &[
            "--allow-run-as-root",
            "--oversubscribe",
            "-oversubscribe",
            "--report-bindings",
            "-report-bindings",
            "--display-map",
            "-display-map",
            "--tag-output",
            "-tag-output",
            "--timestamp-output",
            "-q",
            "--quiet",
            "-v",
            "--verbose",
            "--noprefix",
            "-noprefix",
            "-l",
            "-prepend-rank",
            "-print-rank-map",
            "-bind-to-core",
            "-bind-to-socket",
        ],
        LauncherKind::Torchrun => &[
            "--standalone",
            "--no-python",
            "--no_python",
            "-m",
            "--module",
            "--run-path",
            "--run_path",
            "--use-env",
            "--use_env",
        ],
        LauncherKind::Deepspeed => &[
            "--no_python",
            "--no_local_rank",
            "--force_multi",
            "--no_ssh_check",
            "--bind_cores_to_rank",
            "--module",
        ],
        LauncherKind::Accelerate => &[
            "--multi_gpu",
            "--cpu",
            "--use_deepspeed",
            "--use_fsdp",
            "--use_megatron_lm",
            "-m",
            "--module",
            "--no_python",
            "--debug",
            "-q",
            "--quiet",
        ],
        LauncherKind::Horovodrun => &[
            "--verbose",
            "--gloo",
            "--mpi",
            "--disable-cache",
            "--log-with-timestamp",
        ],
        LauncherKind::Jsrun | LauncherKind::Ddlrun | LauncherKind::Aprun | LauncherKind::None => {
            &["-v", "--verbose"]
        }
    }
}

fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

fn is_python(word: &str) -> bool {
    let name = basename(word);
    name == "python"
        || name
            .strip_prefix("python")
            .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// The launcher a word starts, and how many words that takes (2 for `accelerate launch`,
/// 3 or more for `python [-u] -m torch.distributed.run`).
fn launcher_at(words: &[String], i: usize) -> Option<(LauncherKind, usize)> {
    let kind = match basename(&words[i]) {
        "srun" => LauncherKind::Srun,
        "mpirun" | "mpiexec" | "mpiexec.hydra" | "orterun" => LauncherKind::Mpirun,
        "jsrun" => LauncherKind::Jsrun,
        "torchrun" => LauncherKind::Torchrun,
        "deepspeed" => LauncherKind::Deepspeed,
        "horovodrun" => LauncherKind::Horovodrun,
        "ddlrun" => LauncherKind::Ddlrun,
        "aprun" => LauncherKind::Aprun,
        "accelerate" if words.get(i + 1).is_some_and(|w| w == "launch") => {
            return Some((LauncherKind::Accelerate, 2))
        }
        w if is_python(w) => {
            let mut j = i + 1;
            while words
                .get(j)
                .is_some_and(|w| w.starts_with('-') && w != "-m")
            {
                j += 1;
            }
            let module = words.get(j + 1).filter(|_| words[j] == "-m")?;
            return matches!(
                module.as_str(),
                "torch.distributed.run" | "torch.distributed.launch"
            )
            .then_some((LauncherKind::Torchrun, j + 2 - i));
        }
        _ => return None,
    };
    Some((kind, 1))
}

/// The launcher's own options after position `start`: options and their values, up to the
/// program it launches.
fn launcher_args(words: &[String], start: usize, kind: LauncherKind) -> Vec<String> {
    let flags = flags(kind);
    let mut args = Vec::new();
    let mut i = start;
    while let Some(word) = words.get(i) {
        if word == "--" || !word.starts_with('-') {
            break;
        }
        args.push(word.clone());
        i += 1;
        let takes_value = !word.contains('=') && !flags.contains(&word.as_str());
        if takes_value {
            if let Some(value) = words.get(i) {
                args.push(value.clone());
                i += 1;
            }
        }
    }
    args
}

/// The innermost launcher of a command (its words, without separators).
pub(crate) fn detect(words: &[String]) -> Option<Found> {
    let first = words
        .iter()
        .position(|w| !w.contains('=') || w.starts_with('-'))?;
    if NOT_COMMANDS.contains(&basename(&words[first])) {
        return None;
    }
    let mut found = None;
    let mut i = first;
    while i < words.len() {
        match launcher_at(words, i) {
            Some((kind, len)) => {
                let args = launcher_args(words, i + len, kind);
                i += len + args.len();
                found = Some(Found { kind, args });
            }
            None => i += 1,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(line: &str) -> Option<(LauncherKind, Vec<String>)> {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        detect(&words).map(|f| (f.kind, f.args))
    }

    #[test]
    fn plain_launchers() {
        assert_eq!(
            kind("mpirun -np 4 python train.py").unwrap(),
            (LauncherKind::Mpirun, vec!["-np".into(), "4".into()])
        );
        assert_eq!(
            kind("mpiexec -n 2 ./a.out").unwrap().0,
            LauncherKind::Mpirun
        );
        assert_eq!(
            kind("jsrun -n 4 -g 1 python x.py").unwrap().0,
            LauncherKind::Jsrun
        );
        assert_eq!(kind("aprun -n 64 ./sim").unwrap().0, LauncherKind::Aprun);
        assert_eq!(
            kind("ddlrun --accelerators 4 python x.py").unwrap().0,
            LauncherKind::Ddlrun
        );
        assert_eq!(
            kind("horovodrun -np 4 python x.py").unwrap().0,
            LauncherKind::Horovodrun
        );
        assert_eq!(
            kind("deepspeed --num_gpus 2 train.py").unwrap().0,
            LauncherKind::Deepspeed
        );
        assert_eq!(
            kind("accelerate launch --multi_gpu train.py").unwrap().0,
            LauncherKind::Accelerate
        );
    }

    #[test]
    fn python_module_launchers_are_torchrun() {
        assert_eq!(
            kind("python -m torch.distributed.launch --nproc_per_node=4 t.py")
                .unwrap()
                .0,
            LauncherKind::Torchrun
        );
        assert_eq!(
            kind("python3 -u -m torch.distributed.run t.py").unwrap().0,
            LauncherKind::Torchrun
        );
        assert_eq!(kind("python -m pip install x"), None);
    }

    #[test]
    fn the_inner_launcher_wins() {
        let (k, args) =
            kind("srun --ntasks-per-node=1 torchrun --nnodes 2 --nproc_per_node 4 train.py")
                .unwrap();
        assert_eq!(k, LauncherKind::Torchrun);
        assert_eq!(args, ["--nnodes", "2", "--nproc_per_node", "4"]);
    }

    #[test]
    fn wrappers_and_prefixes_are_not_launchers() {
        assert_eq!(kind("time python train.py"), None);
        assert_eq!(
            kind("OMP_NUM_THREADS=4 nsys profile -o out python train.py"),
            None
        );
        assert_eq!(
            kind("env A=1 time srun -n 2 ./a.out").unwrap().0,
            LauncherKind::Srun
        );
        assert_eq!(
            kind("srun singularity exec img.sif python t.py").unwrap().0,
            LauncherKind::Srun
        );
        assert_eq!(kind("echo mpirun is here"), None);
    }
}
