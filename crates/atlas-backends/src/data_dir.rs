//! A target's `data_dir`: where its jobs read their inputs from (a parallel file system's
//! mount such as MooseFS's, a scratch disk), so one workflow can be compared reading its data
//! from different storage. Each input is copied there once per content (a file to
//! `DIR/atlas-inputs/SHA256[..16]/NAME`, a directory per run to `DIR/atlas-inputs/RUN/I-NAME`),
//! under a temporary name renamed when whole, so a job never reads half a copy; the job is
//! given that copy (a link at the input's path on a host, a bind mount in a container). With
//! `drop_caches` the page cache is emptied before the job starts, for cold-cache figures.

use std::path::{Path, PathBuf};

use crate::data::{copy_tree, VerifiedInput};
use crate::{BackendError, Figures};

/// Where `input` (the `index`th of run `run_id`) is copied under `dir`.
pub fn staged_path(dir: &Path, run_id: &str, index: usize, input: &VerifiedInput) -> PathBuf {
    let name = Path::new(&input.path)
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("input");
    let root = dir.join("atlas-inputs");
    match input.sha256.as_deref().filter(|s| s.len() >= 16) {
        Some(sha) => root.join(&sha[..16]).join(name),
        None => root.join(run_id).join(format!("{index}-{name}")),
    }
}

/// Copies the inputs into `dir` (those there already, same content, are kept); the inputs
/// as the job reads them (their copies) and the bytes copied.
pub(crate) fn stage_into(
    dir: &Path,
    run_id: &str,
    inputs: &[VerifiedInput],
) -> Result<(Vec<VerifiedInput>, u64), BackendError> {
    if !dir.is_dir() {
        return Err(BackendError::Unusable(format!(
            "data_dir {} is not a directory (is the file system mounted?)",
            dir.display()
        )));
    }
    let mut copied = 0;
    let mut staged = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let to = staged_path(dir, run_id, index, input);
        let there = std::fs::metadata(&to).is_ok_and(|m| m.is_file() && m.len() == input.bytes);
        if !(there && input.sha256.is_some()) {
            copied += copy_whole(&input.source, &to).map_err(|e| {
                BackendError::Unusable(format!(
                    "input `{}`: cannot copy {} to {}: {e}",
                    input.path,
                    input.source.display(),
                    to.display()
                ))
            })?;
        }
        staged.push(VerifiedInput {
            source: to,
            ..input.clone()
        });
    }
    Ok((staged, copied))
}

/// Copies `from` to `to` under a temporary name, then renames it.
fn copy_whole(from: &Path, to: &Path) -> std::io::Result<u64> {
    let parent = to.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent)?;
    let partial = parent.join(format!(
        ".partial-{}-{}",
        std::process::id(),
        to.file_name().and_then(|n| n.to_str()).unwrap_or("input")
    ));
    let _ = std::fs::remove_dir_all(&partial);
    let _ = std::fs::remove_file(&partial);
    let bytes = copy_tree(from, &partial)?;
    if to.is_dir() {
        std::fs::remove_dir_all(to)?;
    }
    std::fs::rename(&partial, to)?;
    Ok(bytes)
}

/// Empties the page cache (root only) so that the job's reads come from storage; the figure
/// `pageCacheDropped` says whether it was (1) or could not be (0), and a note says why not.
pub(crate) fn drop_caches(figures: &mut Figures, notes: &crate::Notes) {
    // Written pages must reach storage first, or dropping keeps them.
    let synced = std::process::Command::new("sync")
        .status()
        .is_ok_and(|s| s.success());
    let dropped = synced && std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok();
    if !dropped {
        notes.say("drop_caches: cannot empty the page cache (it needs root); the job's reads may come from memory");
    }
    figures.insert("pageCacheDropped".into(), if dropped { 1.0 } else { 0.0 });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(dir: &Path, path: &str, bytes: &[u8]) -> VerifiedInput {
        let source = dir.join(format!("source-{}", path.len()));
        std::fs::write(&source, bytes).unwrap();
        VerifiedInput {
            sha256: Some(crate::data::sha256_of(&source).unwrap()),
            source,
            path: path.into(),
            bytes: bytes.len() as u64,
        }
    }

    #[test]
    fn inputs_are_copied_once_per_content_and_named_by_their_last_component() {
        let dir = std::env::temp_dir().join(format!("atlas-data-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (project, data) = (dir.join("project"), dir.join("mnt"));
        std::fs::create_dir_all(&project).unwrap();
        let inputs = [
            input(&project, "data/train.csv", b"a,b\n1,2\n"),
            input(&project, "..", b"x"),
        ];
        let err = stage_into(&data, "r-1", &inputs).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
        std::fs::create_dir_all(&data).unwrap();
        let (staged, copied) = stage_into(&data, "r-1", &inputs).unwrap();
        assert_eq!(copied, 9);
        assert!(staged[0].source.starts_with(data.join("atlas-inputs")));
        assert!(staged[0].source.ends_with("train.csv"));
        assert!(staged[1].source.ends_with("input"), "`..` is no name");
        assert_eq!(std::fs::read(&staged[0].source).unwrap(), b"a,b\n1,2\n");
        // The same content again (another run): nothing copied.
        let (again, copied) = stage_into(&data, "r-2", &inputs).unwrap();
        assert_eq!((copied, &again[0].source), (0, &staged[0].source));
        let leftovers = std::fs::read_dir(staged[0].source.parent().unwrap())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".partial")
            })
            .count();
        assert_eq!(leftovers, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
