//! The image a run's pods pull, when the target names a `registry` and no `image`: the
//! workflow's image (built with podman as the `podman` target builds it, the same tag scheme)
//! with the project copied into `/work` on top, tagged by a hash of both and pushed to the
//! registry. An unchanged workflow and project are neither rebuilt nor pushed again; a push of
//! an image the registry holds moves no layers.

use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::podman::{self, unusable};
use crate::target::Named;
use crate::{data, process, BackendError, Figures, Job};

/// Builds (unless present) and pushes the run's image; its reference and the figures.
pub(crate) fn build_and_push(
    target: &Named,
    job: &Job<'_>,
    registry: &str,
) -> Result<(String, Figures), BackendError> {
    let (base, mut figures) = podman::prepare_image_and_project(target, job)?;
    let work = job.run_dir.join("work");
    let mut hasher = Sha256::new();
    hasher.update(base.as_bytes());
    tree_hash(&work, &work, &mut hasher)
        .map_err(|e| unusable(format!("cannot read {}: {e}", work.display())))?;
    let name = &job.workflow.metadata.name;
    let tag = format!(
        "{registry}/atlas-{name}:{}",
        &data::hex(&hasher.finalize())[..16]
    );
    if process::output("podman", &["image", "exists", &tag]).is_err() {
        let containerfile = job.run_dir.join("image-project.Containerfile");
        std::fs::write(
            &containerfile,
            format!(
                "# The workflow's image with the project at /work, for a cluster's pods.\n\
                 FROM {base}\nCOPY . /work/\n"
            ),
        )
        .map_err(|e| unusable(format!("cannot write {}: {e}", containerfile.display())))?;
        let started = Instant::now();
        podman::build(
            &containerfile,
            &work,
            &tag,
            &job.run_dir.join("image-build.log"),
        )?;
        figures.insert(
            "projectImageSeconds".into(),
            started.elapsed().as_secs_f64(),
        );
    }
    let started = Instant::now();
    let mut args = vec!["push", "--quiet"];
    if is_loopback(registry) {
        args.push("--tls-verify=false");
    }
    args.push(&tag);
    process::output("podman", &args).map_err(|why| {
        unusable(format!(
            "cannot push {tag} to the registry {registry}: {why} (is it running? \
             scripts/k8s-up starts one on 127.0.0.1:5000)"
        ))
    })?;
    figures.insert("imagePushSeconds".into(), started.elapsed().as_secs_f64());
    Ok((tag, figures))
}

/// A registry on this machine's loopback, reached over plain HTTP.
fn is_loopback(registry: &str) -> bool {
    let host = registry.split('/').next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// Hashes every file under `dir` by its path relative to `root` and its content, in name
/// order; symbolic links by their target.
fn tree_hash(root: &Path, dir: &Path, hasher: &mut Sha256) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap_or(&path);
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update([0]);
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            hasher.update(std::fs::read_link(&path)?.to_string_lossy().as_bytes());
        } else if kind.is_dir() {
            tree_hash(root, &path, hasher)?;
        } else {
            let mut file = std::fs::File::open(&path)?;
            std::io::copy(&mut file, hasher)?;
        }
        hasher.update([0]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_registries_go_without_tls() {
        assert!(is_loopback("127.0.0.1:5000/atlas"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("localhost"));
        assert!(!is_loopback("registry.example.com:5000/atlas"));
        assert!(!is_loopback("127.0.0.1.nip.io/atlas"));
    }

    #[test]
    fn the_tree_hash_follows_content_not_times() {
        let dir = std::env::temp_dir().join(format!("atlas-tree-hash-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.py"), "print(1)\n").unwrap();
        std::fs::write(dir.join("sub/b"), "x").unwrap();
        let hash = |dir: &Path| {
            let mut h = Sha256::new();
            tree_hash(dir, dir, &mut h).unwrap();
            data::hex(&h.finalize())
        };
        let first = hash(&dir);
        std::fs::write(dir.join("a.py"), "print(1)\n").unwrap();
        assert_eq!(hash(&dir), first);
        std::fs::write(dir.join("sub/b"), "y").unwrap();
        assert_ne!(hash(&dir), first);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
