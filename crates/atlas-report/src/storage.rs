//! Where each group's runs found their data, as their agents saw it (the working directory's
//! and each input's file system and mount), and whether the page cache was emptied before
//! the job: the context of the data-access figures, said once per group in the notes.

use std::collections::BTreeSet;

use crate::RunSummary;

/// The note: `local: . on ext4 (/); mfs: data/train.csv on fuse.mfs (/mnt/scratch), cold
/// cache`; none when no run says where its data lay.
pub fn note(
    summaries: &[RunSummary],
    groups: &[String],
    dropped: &[(String, bool)],
) -> Option<String> {
    let parts: Vec<String> = groups
        .iter()
        .filter_map(|group| {
            let places: BTreeSet<String> = summaries
                .iter()
                .filter(|s| &s.group == group)
                .flat_map(|s| &s.storage)
                .map(|p| format!("{} on {} ({})", p.path, p.filesystem, p.mount))
                .collect();
            if places.is_empty() {
                return None;
            }
            let cold = dropped
                .iter()
                .filter(|(g, _)| g == group)
                .map(|(_, d)| *d)
                .collect::<Vec<_>>();
            let cache = match (cold.iter().all(|d| *d), cold.iter().any(|d| *d)) {
                _ if cold.is_empty() => "",
                (true, _) => ", page cache emptied before each run",
                (false, true) => ", page cache emptied before some runs",
                (false, false) => ", page cache could not be emptied",
            };
            let list: Vec<String> = places.into_iter().collect();
            Some(format!("{group}: {}{cache}", list.join(", ")))
        })
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "where the data lay (as each job saw it): {}",
            parts.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_spec::record::StoragePlace;

    fn run(group: &str, places: &[(&str, &str, &str)]) -> RunSummary {
        RunSummary {
            id: format!("r-{group}"),
            group: group.into(),
            target: group.into(),
            repetition: 0,
            status: atlas_spec::record::RunStatus::Succeeded,
            cause: None,
            excluded: None,
            values: Default::default(),
            timeline: vec![],
            series: vec![],
            hosts: vec![],
            curves: Default::default(),
            storage: places
                .iter()
                .map(|(path, fs, mount)| StoragePlace {
                    path: path.to_string(),
                    filesystem: fs.to_string(),
                    mount: mount.to_string(),
                })
                .collect(),
            labels: Default::default(),
            parameters: Default::default(),
        }
    }

    #[test]
    fn each_group_says_where_its_data_lay_once() {
        let runs = [
            run("local", &[(".", "ext4", "/"), ("data/x.csv", "ext4", "/")]),
            run("local", &[(".", "ext4", "/"), ("data/x.csv", "ext4", "/")]),
            run("mfs", &[("data/x.csv", "fuse.mfs", "/mnt/s")]),
            run("old", &[]),
        ];
        let groups: Vec<String> = ["local", "mfs", "old"].map(String::from).to_vec();
        let dropped = [("mfs".to_string(), true)];
        assert_eq!(
            note(&runs, &groups, &dropped).unwrap(),
            "where the data lay (as each job saw it): local: . on ext4 (/), data/x.csv on ext4 (/); mfs: data/x.csv on fuse.mfs (/mnt/s), page cache emptied before each run"
        );
        assert_eq!(note(&runs[3..], &groups, &[]), None);
    }
}
