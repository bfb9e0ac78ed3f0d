//! Inputs (`spec.data.inputs`): checked before anything is submitted (the seed's "data
//! screening": the input exists, has the size and SHA-256 the workflow says), then staged per
//! target: on the host (local, Slurm) as the path itself or a copy, in a container as a
//! read-only bind mount. Sources are local paths (relative to the project), `file://` URLs and
//! `http(s)://` URLs (downloaded once into a cache and checked like any other file).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use atlas_spec::DataItem;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{BackendError, Figures, Job};

/// How a host target makes an input visible at its `path`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// A symbolic link at `path` to the source (nothing copied; the default).
    #[default]
    Path,
    /// A copy of the source at `path`.
    Copy,
}

/// An input that exists and matches what the workflow says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedInput {
    /// The file or directory on this machine (a download lands in the cache).
    pub source: PathBuf,
    /// Where the job expects it (relative to its working directory, or absolute).
    pub path: String,
    /// Its size; for a directory, of all its files.
    pub bytes: u64,
    /// The SHA-256 of a file (not computed for directories).
    pub sha256: Option<String>,
}

/// Why an input cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The workflow's checksum is not a SHA-256.
    #[error("sha256 `{0}` is not 64 hex digits")]
    BadChecksum(String),
    /// A file or directory that cannot be read.
    #[error("{} cannot be read: {source}", path.display())]
    Unreadable {
        /// What was read.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A checksum was given for a directory.
    #[error("is a directory; sha256 applies to a file (checksum an archive of it instead)")]
    ChecksumOfDirectory,
    /// The size differs from the workflow's.
    #[error("size mismatch: the workflow says {expected} bytes, {} has {found}", path.display())]
    SizeMismatch {
        /// The workflow's size.
        expected: u64,
        /// The file.
        path: PathBuf,
        /// Its size.
        found: u64,
    },
    /// The checksum differs from the workflow's.
    #[error("sha256 mismatch: the workflow says {expected}, {} has {found}", path.display())]
    ChecksumMismatch {
        /// The workflow's checksum.
        expected: String,
        /// The file.
        path: PathBuf,
        /// Its checksum.
        found: String,
    },
    /// A download that failed.
    #[error("download failed: {0}")]
    Download(String),
    /// A file of the cache that cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Unwritable {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// An input that cannot be used, with the input it is about.
#[derive(Debug, thiserror::Error)]
#[error("input `{input}`: {error}")]
pub struct InputError {
    /// The input's source, as the workflow names it.
    pub input: String,
    /// What is wrong with it.
    pub error: DataError,
}

fn unreadable(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Unreadable {
        path: path.to_path_buf(),
        source,
    }
}

fn unwritable(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Unwritable {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks every input; the first problem is the error, with the input it is about.
/// `project` resolves relative sources; `cache` receives downloads.
pub fn verify(
    inputs: &[DataItem],
    project: &Path,
    cache: &Path,
) -> Result<Vec<VerifiedInput>, InputError> {
    inputs
        .iter()
        .map(|item| {
            verify_one(item, project, cache).map_err(|error| InputError {
                input: item.source.clone(),
                error,
            })
        })
        .collect()
}

fn verify_one(item: &DataItem, project: &Path, cache: &Path) -> Result<VerifiedInput, DataError> {
    if let Some(expected) = &item.sha256 {
        if expected.len() != 64 || !expected.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(DataError::BadChecksum(expected.clone()));
        }
    }
    let source = if item.source.starts_with("http://") || item.source.starts_with("https://") {
        download(&item.source, cache)?
    } else {
        let path = item.source.strip_prefix("file://").unwrap_or(&item.source);
        project.join(path)
    };
    let meta = std::fs::metadata(&source).map_err(unreadable(&source))?;
    let (bytes, sha256) = if meta.is_dir() {
        if item.sha256.is_some() {
            return Err(DataError::ChecksumOfDirectory);
        }
        (directory_bytes(&source)?, None)
    } else {
        (meta.len(), Some(sha256_of(&source)?))
    };
    if let Some(size) = item.size {
        if size.bytes() != bytes {
            return Err(DataError::SizeMismatch {
                expected: size.bytes(),
                path: source,
                found: bytes,
            });
        }
    }
    if let (Some(expected), Some(found)) = (&item.sha256, &sha256) {
        if !expected.eq_ignore_ascii_case(found) {
            return Err(DataError::ChecksumMismatch {
                expected: expected.clone(),
                path: source,
                found: found.clone(),
            });
        }
    }
    Ok(VerifiedInput {
        source,
        path: item.path.clone(),
        bytes,
        sha256,
    })
}

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_of(path: &Path) -> Result<String, DataError> {
    let mut file = std::fs::File::open(path).map_err(unreadable(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(unreadable(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn directory_bytes(dir: &Path) -> Result<u64, DataError> {
    let mut total = 0;
    let entries = std::fs::read_dir(dir).map_err(unreadable(dir))?;
    for entry in entries {
        let entry = entry.map_err(unreadable(dir))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(unreadable(&path))?;
        total += if meta.is_dir() {
            directory_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Downloads `url` into `cache` once (the file name carries a hash of the URL).
fn download(url: &str, cache: &Path) -> Result<PathBuf, DataError> {
    let name = url
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("download");
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let key = &hex(&Sha256::digest(url.as_bytes()))[..16];
    let path = cache.join(format!("{key}-{name}"));
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(cache).map_err(unwritable(cache))?;
    let response = ureq::get(url)
        .call()
        .map_err(|e| DataError::Download(e.to_string()))?;
    let partial = path.with_extension("partial");
    let mut file = std::fs::File::create(&partial).map_err(unwritable(&partial))?;
    std::io::copy(&mut response.into_body().into_reader(), &mut file)
        .map_err(|e| DataError::Download(e.to_string()))?;
    file.sync_all().map_err(unwritable(&partial))?;
    std::fs::rename(&partial, &path).map_err(unwritable(&path))?;
    Ok(path)
}

/// Where `input` is seen from `working_dir`.
pub(crate) fn destination(working_dir: &Path, input: &VerifiedInput) -> PathBuf {
    working_dir.join(&input.path)
}

/// Makes every input visible at its path on this machine (local and Slurm: the job runs on the
/// shared filesystem): the input itself (a link or a copy, as `stage` says), or its copy in the
/// target's `data_dir`. Refuses to replace anything that is not already the input or a link
/// Atlas made to one of its copies.
pub(crate) fn stage_on_host(
    job: &Job<'_>,
    target: &crate::Target,
) -> Result<Figures, BackendError> {
    let started = Instant::now();
    let working_dir = job
        .workflow
        .spec
        .scheduling
        .working_directory
        .as_deref()
        .map_or_else(
            || job.project_dir.to_path_buf(),
            |d| job.project_dir.join(d),
        );
    let (inputs, mut copied, mode) = match target.data_dir.as_deref() {
        Some(dir) => {
            let (staged, copied) =
                crate::data_dir::stage_into(Path::new(dir), job.run_id, job.inputs)?;
            (staged, copied, Stage::Path)
        }
        None => (job.inputs.to_vec(), 0, target.stage),
    };
    for (input, original) in inputs.iter().zip(job.inputs) {
        let to = destination(&working_dir, input);
        if same_file(&to, &input.source) {
            continue;
        }
        if std::fs::symlink_metadata(&to).is_ok() {
            if !is_our_link(&to, &original.source) {
                return Err(BackendError::Rejected(format!(
                    "input `{}`: {} exists and is not {}; remove it or change the input's path",
                    input.path,
                    to.display(),
                    input.source.display()
                )));
            }
            std::fs::remove_file(&to).map_err(|e| {
                BackendError::Unusable(format!("cannot replace the link {}: {e}", to.display()))
            })?;
        }
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                BackendError::Unusable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let staged = match mode {
            Stage::Path => std::os::unix::fs::symlink(&input.source, &to),
            Stage::Copy => copy_tree(&input.source, &to).map(|n| copied += n),
        };
        staged.map_err(|e| {
            BackendError::Unusable(format!(
                "input `{}`: cannot stage {} at {}: {e}",
                input.path,
                input.source.display(),
                to.display()
            ))
        })?;
    }
    let mut figures = figures(job.inputs, started, copied);
    if target.drop_caches {
        crate::data_dir::drop_caches(&mut figures, job.notes);
    }
    Ok(figures)
}

/// Whether `path` is a link Atlas made for this input: to the input itself, or to a copy of
/// it in some target's `data_dir` (`…/atlas-inputs/…`).
fn is_our_link(path: &Path, source: &Path) -> bool {
    let Ok(points_to) = std::fs::read_link(path) else {
        return false;
    };
    points_to == source
        || same_file(&points_to, source)
        || points_to
            .components()
            .any(|c| c.as_os_str() == "atlas-inputs")
}

/// The data-access figures of a staging.
pub(crate) fn figures(inputs: &[VerifiedInput], started: Instant, copied: u64) -> Figures {
    let mut figures = Figures::new();
    if !inputs.is_empty() {
        figures.insert(
            "inputBytes".into(),
            inputs.iter().map(|i| i.bytes).sum::<u64>() as f64,
        );
        figures.insert("stageInBytes".into(), copied as f64);
        figures.insert("stageInSeconds".into(), started.elapsed().as_secs_f64());
    }
    figures
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Copies a file or a directory tree; the bytes copied.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    let meta = std::fs::symlink_metadata(from)?;
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        let mut total = 0;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            total += copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(total)
    } else if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)?;
        Ok(0)
    } else {
        std::fs::copy(from, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_spec::Quantity;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("atlas-data-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn item(source: &str, sha256: Option<&str>, size: Option<u64>) -> DataItem {
        DataItem {
            source: source.into(),
            path: "in/data.bin".into(),
            sha256: sha256.map(String::from),
            size: size.map(Quantity::from_bytes),
        }
    }

    // sha256("hello\n"), as `printf 'hello\n' | sha256sum` prints it.
    const HELLO: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

    #[test]
    fn a_matching_input_is_verified_and_a_changed_one_is_refused() {
        let dir = temp("verify");
        std::fs::write(dir.join("data.bin"), "hello\n").unwrap();
        let ok = verify(&[item("data.bin", Some(HELLO), Some(6))], &dir, &dir).unwrap();
        assert_eq!((ok[0].bytes, ok[0].sha256.as_deref()), (6, Some(HELLO)));
        let uri = format!("file://{}", dir.join("data.bin").display());
        assert!(verify(&[item(&uri, Some(HELLO), None)], &dir, &dir).is_ok());

        std::fs::write(dir.join("data.bin"), "hellO\n").unwrap();
        let err = verify(&[item("data.bin", Some(HELLO), None)], &dir, &dir).unwrap_err();
        assert!(
            matches!(err.error, DataError::ChecksumMismatch { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("input `data.bin`: sha256 mismatch"),
            "{err}"
        );
        let err = verify(&[item("data.bin", None, Some(7))], &dir, &dir).unwrap_err();
        assert!(
            matches!(
                err.error,
                DataError::SizeMismatch {
                    expected: 7,
                    found: 6,
                    ..
                }
            ),
            "{err}"
        );
        let err = verify(&[item("missing.bin", None, None)], &dir, &dir).unwrap_err();
        assert!(err.to_string().contains("cannot be read"), "{err}");
        let err = verify(&[item("data.bin", Some("abc"), None)], &dir, &dir).unwrap_err();
        assert!(matches!(err.error, DataError::BadChecksum(_)), "{err}");
    }

    #[test]
    fn directories_are_sized_but_not_checksummed() {
        let dir = temp("dir");
        std::fs::create_dir_all(dir.join("set/sub")).unwrap();
        std::fs::write(dir.join("set/a"), "12345").unwrap();
        std::fs::write(dir.join("set/sub/b"), "123").unwrap();
        let ok = verify(&[item("set", None, Some(8))], &dir, &dir).unwrap();
        assert_eq!((ok[0].bytes, ok[0].sha256.as_deref()), (8, None));
        assert!(verify(&[item("set", Some(HELLO), None)], &dir, &dir)
            .unwrap_err()
            .to_string()
            .contains("is a directory"));
    }
}
