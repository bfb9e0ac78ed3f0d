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
    let json = |v: &dyn Fn(&atlas_spec::Workflow) -> String, r: &RunInput| {
        r.workflow
            .as_ref()
            .map_or_else(|| "(no workflow copy)".into(), v)
    };
    let label = |r: &RunInput| format!("{} ({})", r.detail.run.id, r.detail.run.target);
    let collect = |f: &dyn Fn(&RunInput) -> String| -> Vec<(String, String)> {
        runs.iter().map(|r| (label(r), f(r))).collect()
    };
    let mut out = Vec::new();
    let perf: &[&str] = &["*"];
    out.extend(describe(
        "commands",
        &collect(&|r| {
            json(
                &|w| {
                    w.spec
                        .phases
                        .iter()
                        .map(|p| p.run.clone())
                        .collect::<Vec<_>>()
                        .join(" ; ")
                },
                r,
            )
        }),
        perf,
    ));
    out.extend(describe(
        "resources",
        &collect(&|r| {
            json(
                &|w| serde_json::to_string(&w.spec.resources).unwrap_or_default(),
                r,
            )
        }),
        perf,
    ));
    out.extend(describe(
        "environment",
        &collect(&|r| {
            json(
                &|w| serde_json::to_string(&w.spec.environment).unwrap_or_default(),
                r,
            )
        }),
        perf,
    ));
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
    let containers: Vec<&RunInput> = runs
        .iter()
        .filter(|r| r.detail.run.figures.contains_key("imageCached"))
        .collect();
    let images: Vec<(String, String)> = containers
        .iter()
        .map(|r| {
            (
                label(r),
                r.workflow
                    .as_ref()
                    .map(|w| serde_json::to_string(&w.spec.image).unwrap_or_default())
                    .unwrap_or_default(),
            )
        })
        .collect();
    out.extend(describe("image", &images, perf));
    out.extend(describe(
        "atlasVersion",
        &collect(&|r| {
            r.detail
                .run
                .agent_version
                .clone()
                .unwrap_or_else(|| "?".into())
        }),
        perf,
    ));
    out.extend(describe(
        "nodeType",
        &collect(&|r| r.detail.run.node.clone().unwrap_or_else(|| "?".into())),
        perf,
    ));
    for line in recorded {
        out.push(Difference {
            aspect: "experiment".into(),
            detail: line.clone(),
            affects: vec!["*".into()],
        });
    }
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
