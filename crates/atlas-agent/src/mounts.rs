//! Where the job's data lies: the file system of its working directory and of each input, as
//! the job sees them (`/proc/self/mountinfo`: inside a container, a bind mount shows the type
//! of what is bound, `fuse.mfs` for a MooseFS mount). The report sets the data-access figures
//! beside it, so a comparison says what storage each run read.

use std::path::{Path, PathBuf};

use atlas_spec::record::StoragePlace;
use atlas_spec::Workflow;

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(digits) if bytes[i] == b'\\' => {
                let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A FUSE file system named by its client: MooseFS's mfsmount mounts `fuse` with the source
/// `mfs#HOST:PORT`, which reads as `fuse.mfs` (as clients that set a subtype show it).
fn fuse_subtype(fstype: &str, source: &str) -> String {
    match source.split_once('#') {
        Some((client, _)) if matches!(fstype, "fuse" | "fuseblk") && !client.is_empty() => {
            format!("{fstype}.{client}")
        }
        _ => fstype.to_string(),
    }
}

/// The file system type and mount point `path` (absolute, links resolved) lies on: the
/// longest mount point that holds it; the last mounted wins a tie (the one on top).
pub fn filesystem_of(mountinfo: &str, path: &Path) -> Option<(String, String)> {
    let mut best: Option<(usize, String, String)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(mount), Some(fstype)) = (fields.get(4), fields.get(dash + 1)) else {
            continue;
        };
        let fstype = fuse_subtype(
            fstype,
            &unescape(fields.get(dash + 2).copied().unwrap_or("")),
        );
        let mount = unescape(mount);
        if !path.starts_with(&mount) {
            continue;
        }
        let depth = Path::new(&mount).components().count();
        if best.as_ref().is_none_or(|(d, _, _)| depth >= *d) {
            best = Some((depth, fstype.to_string(), mount));
        }
    }
    best.map(|(_, fstype, mount)| (fstype, mount))
}

/// Where the working directory `dir` and the workflow's inputs (relative to it) lie.
pub fn storage(workflow: &Workflow, dir: &Path) -> Vec<StoragePlace> {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut paths: Vec<(String, PathBuf)> = vec![(".".into(), dir.to_path_buf())];
    paths.extend(
        workflow
            .spec
            .data
            .inputs
            .iter()
            .map(|i| (i.path.clone(), dir.join(&i.path))),
    );
    paths
        .into_iter()
        .filter_map(|(name, path)| {
            let real = std::fs::canonicalize(&path).ok()?;
            let (filesystem, mount) = filesystem_of(&mountinfo, &real)?;
            Some(StoragePlace {
                path: name,
                filesystem,
                mount,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
25 22 0:22 / /proc rw,nosuid shared:12 - proc proc rw
301 22 0:63 / /mnt/atlas\\040scratch rw,nosuid,nodev,relatime shared:150 - fuse.mfs mfs#10.89.1.250:9421 rw,user_id=0
302 22 0:64 / /mnt/atlas rw shared:151 - tmpfs tmpfs rw
120 109 254:0 /work/main/examples/data-access/dataset.bin /work/data/dataset.bin ro,relatime - ext4 /dev/vda rw
303 22 0:65 / /mnt/mfs rw shared:152 - fuse mfs\\04310.89.1.250:9421 rw,user_id=0
";

    #[test]
    fn the_longest_mount_point_holds_the_path() {
        let of = |p: &str| filesystem_of(MOUNTINFO, Path::new(p));
        assert_eq!(
            of("/mnt/atlas scratch/atlas-inputs/ab/train.csv"),
            Some(("fuse.mfs".into(), "/mnt/atlas scratch".into()))
        );
        assert_eq!(of("/root/project"), Some(("ext4".into(), "/".into())));
        // A path component, not a prefix of a name.
        assert_eq!(of("/mnt/atlasx/y"), Some(("ext4".into(), "/".into())));
        assert_eq!(
            of("/mnt/atlas/y"),
            Some(("tmpfs".into(), "/mnt/atlas".into()))
        );
        assert_eq!(
            of("/mnt/mfs/a"),
            Some(("fuse.mfs".into(), "/mnt/mfs".into()))
        );
        assert_eq!(filesystem_of("garbage\n", Path::new("/")), None);
    }

    #[test]
    fn this_process_sees_its_own_directory() {
        let here = std::env::current_dir().unwrap();
        let places = storage(&Workflow::default(), &here);
        assert_eq!(places.len(), 1);
        assert_eq!(places[0].path, ".");
        assert!(!places[0].filesystem.is_empty());
    }
}
