//! The like-for-like check of a comparison: what differs between the compared runs other than
//! the target, from what each run actually ran (its workflow copy, its checked inputs, the
//! agent's version), plus what `atlas run` recorded with the experiment.

use serde::Serialize;

use crate::RunInput;

/// One difference and the figures it makes doubtful.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    /// `commands`, `resources`, `environment`, `inputs`, `image`, `atlasVersion`, `nodeType`,
    /// `experiment`.
    pub aspect: String,
    pub detail: String,
    /// Figure keys (or key prefixes ending in `.`) the difference affects; `*` for all.
    pub affects: Vec<String>,
}

fn describe(aspect: &str, by_run: &[(String, String)], affects: &[&str]) -> Option<Difference> {
    let first = &by_run.first()?.1;
    if by_run.iter().all(|(_, v)| v == first) {
        return None;
    }
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for (run, value) in by_run {
        match groups.iter_mut().find(|(v, _)| v == value) {
            Some((_, runs)) => runs.push(run),
            None => groups.push((value.clone(), vec![run])),
        }
    }
    let detail = groups
        .iter()
        .map(|(value, runs)| format!("{}: {value}", runs.join(", ")))
        .collect::<Vec<_>>()
        .join(" | ");
    Some(Difference {
        aspect: aspect.into(),
        detail,
        affects: affects.iter().map(|s| s.to_string()).collect(),
    })
}

/// What differs between `runs` other than the target.
pub fn differences(runs: &[RunInput], recorded: &[String]) -> Vec<Difference> {
    let label = |r: &RunInput| format!("{} ({})", r.detail.run.id, r.detail.run.target);
    let mut out = Vec::new();
    // The workflow's own aspects; the image only among container runs (bare metal has none).
    let missing = || "(no workflow copy)".to_string();
    let aspects: Vec<(&RunInput, [(&str, String); 4])> = runs
        .iter()
        .map(|r| {
            let aspects = r.workflow.as_ref().map_or_else(
                || ["commands", "resources", "environment", "image"].map(|a| (a, missing())),
                |w| w.comparable_aspects(),
            );
            (r, aspects)
        })
        .collect();
    for (i, aspect) in ["commands", "resources", "environment", "image"]
        .into_iter()
        .enumerate()
    {
        let by_run: Vec<(String, String)> = aspects
            .iter()
            .filter(|(r, _)| aspect != "image" || r.detail.run.figures.contains_key("imageCached"))
            .map(|(r, a)| (label(r), a[i].1.clone()))
            .collect();
        out.extend(describe(aspect, &by_run, &["*"]));
    }
    let collect = |f: &dyn Fn(&RunInput) -> String| -> Vec<(String, String)> {
        runs.iter().map(|r| (label(r), f(r))).collect()
    };
    out.extend(describe(
        "inputs",
        &collect(&|r| r.inputs.clone().unwrap_or_else(|| "(none)".into())),
        &[
            "stageInSeconds",
            "inputBytes",
            "readBytes",
            "readRate",
            "wallSeconds",
            "phase.",
            "metric.",
        ],
    ));
    out.extend(describe(
        "atlasVersion",
        &collect(&|r| {
            r.detail
                .run
                .agent_version
                .clone()
                .unwrap_or_else(|| "?".into())
        }),
        &["*"],
    ));
    out.extend(describe(
        "nodeType",
        &collect(&|r| r.detail.run.node.clone().unwrap_or_else(|| "?".into())),
        &["*"],
    ));
    out.extend(recorded.iter().map(|line| Difference {
        aspect: "experiment".into(),
        detail: line.clone(),
        affects: vec!["*".into()],
    }));
    out
}

/// Whether `key` is affected by any of `differences`.
pub fn affected(key: &str, differences: &[Difference]) -> bool {
    differences.iter().any(|d| {
        d.affects
            .iter()
            .any(|a| a == "*" || a == key || (a.ends_with('.') && key.starts_with(a.as_str())))
    })
}
