//! Reading a run directory that its job can write: the job may have replaced a log or the spool
//! with a symbolic link (to another run's log, to /etc/shadow, to /dev/zero) or a FIFO. Files
//! are opened without following links, in a directory opened without following links, and only
//! regular files are read; a bounded amount at a time. The directory's size (what a tenant's
//! storage quota counts) is summed without following links either, to a bounded depth and
//! number of entries.

use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::FromRawFd;
use std::path::Path;

use atlas_spec::{RunDir, Stream};

const FLAGS: libc::c_int = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;

fn c_path(path: &[u8]) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `file` must be a regular file.
fn regular(file: File, what: &Path) -> io::Result<File> {
    if file.metadata()?.file_type().is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", what.display()),
        ))
    }
}

/// Opens `path` for reading: not through a symbolic link at its last component, a regular file
/// only (a FIFO is neither waited on nor read).
pub fn open_regular(path: &Path) -> io::Result<File> {
    let name = c_path(path.as_os_str().as_bytes())?;
    // SAFETY: open(2) of a NUL-terminated path; the descriptor is owned by the File.
    let fd = unsafe { libc::open(name.as_ptr(), FLAGS) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    regular(unsafe { File::from_raw_fd(fd) }, path)
}

/// Opens a phase's log: the `logs` directory and the file each opened without following a
/// symbolic link, a regular file only. The phase name must be valid (see `RunDir::log`).
pub fn open_log(dir: &RunDir, phase: &str, stream: Stream) -> io::Result<File> {
    let path = dir
        .log(phase, stream)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let logs = c_path(dir.logs().as_os_str().as_bytes())?;
    // SAFETY: open(2) of a NUL-terminated path.
    let dirfd = unsafe { libc::open(logs.as_ptr(), FLAGS | libc::O_DIRECTORY) };
    if dirfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: dirfd is fresh and owned here; it is closed when `_guard` drops.
    let _guard = unsafe { File::from_raw_fd(dirfd) };
    let name = path.file_name().map(|n| n.as_bytes()).unwrap_or_default();
    let name = c_path(name)?;
    // SAFETY: openat(2) relative to an open directory; the result is owned by the File.
    let fd = unsafe { libc::openat(dirfd, name.as_ptr(), FLAGS) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    regular(unsafe { File::from_raw_fd(fd) }, &path)
}

/// At most this many entries are looked at when sizing a run directory.
const MAX_ENTRIES: u64 = 1_000_000;
/// Directories deeper than this are not entered.
const MAX_DEPTH: usize = 64;

/// The bytes `dir` takes on disk (allocated blocks), its links not followed; `None` when it
/// cannot be read or holds more than [`MAX_ENTRIES`] entries (the figure would be a guess).
pub fn dir_bytes(dir: &Path) -> Option<u64> {
    let mut total = 0u64;
    let mut entries = 0u64;
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((path, depth)) = stack.pop() {
        for entry in std::fs::read_dir(&path).ok()? {
            let Ok(entry) = entry else { continue };
            entries += 1;
            if entries > MAX_ENTRIES {
                return None;
            }
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            total = total.saturating_add(std::os::unix::fs::MetadataExt::blocks(&meta) * 512);
            if meta.is_dir() && depth < MAX_DEPTH {
                stack.push((entry.path(), depth + 1));
            }
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_fifos_in_a_run_directory_are_not_read() {
        let root = std::env::temp_dir().join(format!("atlas-rundir-io-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = RunDir::new(root.join("r-1"));
        std::fs::create_dir_all(dir.logs()).unwrap();
        std::fs::write(root.join("secret"), "secret").unwrap();
        std::os::unix::fs::symlink(root.join("secret"), dir.logs().join("a.out")).unwrap();
        assert!(open_log(&dir, "a", Stream::Stdout).is_err());
        std::fs::write(dir.logs().join("b.out"), "mine").unwrap();
        assert!(open_log(&dir, "b", Stream::Stdout).is_ok());
        // A `logs` directory replaced by a link to another run's.
        let other = RunDir::new(root.join("r-2"));
        std::fs::create_dir_all(other.root()).unwrap();
        std::os::unix::fs::symlink(dir.logs(), other.logs()).unwrap();
        assert!(open_log(&other, "b", Stream::Stdout).is_err());
        let fifo = c_path(dir.spool().as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo(3) of a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(open_regular(&dir.spool()).is_err());
        std::os::unix::fs::symlink("/dev/zero", root.join("zero")).unwrap();
        assert!(open_regular(&root.join("zero")).is_err());
    }

    #[test]
    fn a_run_directory_is_sized_without_following_links() {
        let root = std::env::temp_dir().join(format!("atlas-dir-bytes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("run/a/b")).unwrap();
        std::fs::create_dir_all(root.join("big")).unwrap();
        std::fs::write(root.join("big/file"), vec![7u8; 1 << 20]).unwrap();
        let empty = dir_bytes(&root.join("run")).unwrap();
        std::fs::write(root.join("run/a/b/data"), vec![1u8; 256 << 10]).unwrap();
        std::os::unix::fs::symlink(root.join("big"), root.join("run/link")).unwrap();
        let sized = dir_bytes(&root.join("run")).unwrap();
        // The file's 256 KiB are counted; the linked MiB is not.
        assert!(sized - empty >= 256 << 10, "{empty} -> {sized}");
        assert!(sized - empty < 1 << 20, "{empty} -> {sized}");
        assert_eq!(dir_bytes(&root.join("missing")), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
