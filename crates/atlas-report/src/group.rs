//! What the comparison groups runs by (`atlas compare --by`): their target (the default), a
//! label (`label:lr`), a parameter of their command lines (`param:lr` finds `--lr 0.5` or
//! `--lr=0.5`), or each run on its own (`run`). A group is named `lr=0.5`, `lr unset`, the
//! target's name (with its host count in a scaling experiment: `cluster (2 hosts)`) or the
//! run's id.

use crate::RunInput;

/// How runs are grouped for the statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GroupBy {
    /// By target (the default).
    #[default]
    Target,
    /// By the value of a label.
    Label(String),
    /// By the value of a `--NAME` parameter in the phases' commands.
    Param(String),
    /// Each run alone.
    Run,
}

/// A `--by` value that is not one of the forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a grouping (expected target, run, label:KEY or param:NAME)")]
pub struct BadGrouping(pub String);

impl std::str::FromStr for GroupBy {
    type Err = BadGrouping;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let named = |rest: &str| {
            (!rest.is_empty() && rest.len() <= 64 && !rest.contains(char::is_whitespace))
                .then(|| rest.to_string())
                .ok_or_else(|| BadGrouping(text.into()))
        };
        match text.split_once(':') {
            None if text == "target" => Ok(GroupBy::Target),
            None if text == "run" => Ok(GroupBy::Run),
            Some(("label", key)) => named(key).map(GroupBy::Label),
            Some(("param", name)) => named(name).map(GroupBy::Param),
            _ => Err(BadGrouping(text.chars().take(64).collect())),
        }
    }
}

impl std::fmt::Display for GroupBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupBy::Target => f.write_str("target"),
            GroupBy::Run => f.write_str("run"),
            GroupBy::Label(key) => write!(f, "label:{key}"),
            GroupBy::Param(name) => write!(f, "param:{name}"),
        }
    }
}

impl GroupBy {
    /// The name of the group `run` belongs to.
    pub fn key(&self, run: &RunInput) -> String {
        let r = &run.detail.run;
        match self {
            // A scaling experiment's runs (`atlas run --nodes`, labelled `nodes`): one group
            // per target and size.
            GroupBy::Target => target_group(&r.target, &r.labels),
            GroupBy::Run => r.id.clone(),
            GroupBy::Label(key) => match r.labels.get(key).and_then(|v| v.as_str()) {
                Some(value) => format!("{key}={value}"),
                None => format!("{key} unset"),
            },
            GroupBy::Param(name) => {
                let commands = run
                    .workflow
                    .as_ref()
                    .map(|w| {
                        w.spec
                            .phases
                            .iter()
                            .map(|p| p.run.as_str())
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default();
                match param(&commands, name) {
                    Some(value) => format!("{name}={value}"),
                    None => format!("{name} unset"),
                }
            }
        }
    }
}

/// A run's labels as text (`lr` → `0.5`), for the runs table.
pub fn labels(labels: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), String::from),
            )
        })
        .collect()
}

/// The `--NAME VALUE` parameters of a run's commands (the last one of a name wins).
pub fn parameters(run: &RunInput) -> std::collections::BTreeMap<String, String> {
    let Some(w) = &run.workflow else {
        return Default::default();
    };
    let commands: Vec<&str> = w.spec.phases.iter().map(|p| p.run.as_str()).collect();
    crate::diff::parameters(&commands.join("\n"))
        .into_iter()
        .collect()
}

/// The value of `--NAME VALUE` or `--NAME=VALUE` in shell text (the last one given).
pub fn param(commands: &str, name: &str) -> Option<String> {
    let flag = format!("--{name}");
    let words: Vec<&str> = commands.split_whitespace().collect();
    let mut found = None;
    for (i, word) in words.iter().enumerate() {
        let word = word.trim_matches(|c| c == '"' || c == '\'');
        if let Some(value) = word.strip_prefix(&format!("{flag}=")) {
            found = Some(value.to_string());
        } else if word == flag {
            found = words
                .get(i + 1)
                .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string());
        }
    }
    found
}

/// A run's group by target: the target, and its host count when the run is labelled `nodes`.
fn target_group(target: &str, labels: &serde_json::Value) -> String {
    match labels.get("nodes").and_then(|v| v.as_str()) {
        Some("1") => format!("{target} (1 host)"),
        Some(n) => format!("{target} ({n} hosts)"),
        None => target.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groupings_parse_and_parameters_are_found() {
        assert_eq!("label:lr".parse(), Ok(GroupBy::Label("lr".into())));
        assert_eq!("param:lr".parse(), Ok(GroupBy::Param("lr".into())));
        assert_eq!("run".parse(), Ok(GroupBy::Run));
        assert!("label:".parse::<GroupBy>().is_err());
        assert!("colour".parse::<GroupBy>().is_err());
        assert_eq!(
            param("python train.py --lr 0.5 --epochs 3", "lr").as_deref(),
            Some("0.5")
        );
        assert_eq!(
            param("python train.py --lr=0.05", "lr").as_deref(),
            Some("0.05")
        );
        assert_eq!(param("python train.py --lrate 1", "lr"), None);
    }

    #[test]
    fn a_scaling_experiments_runs_are_grouped_by_target_and_size() {
        let group = |labels| target_group("cluster", &labels);
        assert_eq!(group(serde_json::json!({})), "cluster");
        assert_eq!(
            group(serde_json::json!({"nodes": "2"})),
            "cluster (2 hosts)"
        );
        assert_eq!(group(serde_json::json!({"nodes": "1"})), "cluster (1 host)");
    }
}
