//! The property every fuzz input must satisfy, shared by the quick proptest run in the test
//! suite and the long time-bounded run (`cargo run --release --example fuzz`).

use atlas_import::{import, Dialect, ImportOptions};
use proptest::prelude::*;

/// Seed scripts that mutation starts from.
pub const FIXTURES: &[(&str, &str)] = &[
    (
        "lsf",
        include_str!("../../../../tests/fixtures/lsf/biggan128_imagenet.lsf"),
    ),
    (
        "lsf",
        include_str!("../../../../tests/fixtures/lsf/rules.lsf"),
    ),
    (
        "lsf",
        include_str!("../../../../tests/fixtures/lsf/legacy_gpu.lsf"),
    ),
    (
        "slurm",
        include_str!("../../../../tests/fixtures/slurm/rules.sbatch"),
    ),
    (
        "slurm",
        include_str!("../../../../tests/fixtures/slurm/hetjob.sbatch"),
    ),
    (
        "slurm",
        include_str!("../../../../tests/fixtures/slurm/gpus.sbatch"),
    ),
    (
        "pbs",
        include_str!("../../../../tests/fixtures/pbs/select.pbs"),
    ),
    (
        "pbs",
        include_str!("../../../../tests/fixtures/pbs/torque_nodes.pbs"),
    ),
    (
        "pbs",
        include_str!("../../../../tests/fixtures/pbs/jobwide.pbs"),
    ),
];

/// Pieces of directive syntax that mutations splice in, so they reach deep parser paths.
const TOKENS: &[&str] = &[
    "#SBATCH ",
    "#BSUB ",
    "#PBS ",
    " -l ",
    "select=",
    ":ncpus=",
    "+",
    "[",
    "]",
    "%",
    ":",
    "=",
    ",",
    "\"",
    "'",
    "\\",
    "#",
    "\r",
    "\n",
    "\t",
    "span[ptile=",
    "rusage[mem=",
    "-gpu num=",
    "/task",
    "--gres=gpu:",
    "--array=",
    "-J x[",
    "hetjob",
    "<<EOF",
    "mpirun ",
    "srun torchrun ",
    "${SLURM_",
    "99999999999999999999",
    "0",
    "-",
    "\u{FFFD}",
];

/// A script: random bytes, or a fixture with random splices, deletions and insertions.
pub fn script() -> impl Strategy<Value = String> {
    let random = proptest::collection::vec(any::<u8>(), 0..2048)
        .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let edits = proptest::collection::vec(
        (
            any::<prop::sample::Index>(),
            0usize..3,
            any::<prop::sample::Index>(),
            any::<u8>(),
        ),
        1..24,
    );
    let mutated = (prop::sample::select(FIXTURES), edits).prop_map(|((_, text), edits)| {
        let mut s: Vec<char> = text.chars().collect();
        for (at, kind, pick, byte) in edits {
            let i = at.index(s.len() + 1);
            match kind {
                0 => s
                    .splice(i..i, TOKENS[pick.index(TOKENS.len())].chars())
                    .for_each(drop),
                1 if i < s.len() => {
                    let end = (i + 1 + (byte as usize % 16)).min(s.len());
                    s.drain(i..end).for_each(drop);
                }
                _ => s.insert(i, char::from(byte)),
            }
        }
        s.into_iter().collect()
    });
    prop_oneof![1 => random, 4 => mutated]
}

/// Import must not panic; every workflow it returns must serialize, read back through the
/// spec's own parser unchanged, and every report line must exist in the script.
pub fn check(script: &str, dialect: Dialect) -> Result<(), String> {
    let options = ImportOptions {
        dialect: Some(dialect),
        fallback_name: Some("fuzz".into()),
        ..Default::default()
    };
    let Ok(result) = import(script, &options) else {
        return Ok(());
    };
    let lines = script.split('\n').count() as u32;
    for d in &result.report.directives {
        if d.line == 0 || d.line > lines {
            return Err(format!("report line {} outside 1..={lines}", d.line));
        }
    }
    let yaml = atlas_spec::to_yaml(&result.workflow);
    let back =
        atlas_spec::parse_workflow("fuzz.yaml", &yaml).map_err(|e| format!("{e}\n{yaml}"))?;
    if back != result.workflow {
        return Err(format!("the workflow changed when read back:\n{yaml}"));
    }
    Ok(())
}
