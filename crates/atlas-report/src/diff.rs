//! `atlas diff RUN RUN`: what differs between two runs, aspect by aspect, from what each run
//! actually ran: where (target, host, node type, GPU, Atlas version), its labels, each phase's
//! command and the `--NAME VALUE` parameters in them, its resources, environment, image and
//! inputs, and how it went (status, wall time). In a differing value the words that differ are
//! marked (a word diff, `similar`), so `--lr 0.5` against `--lr 0.05` points at the number.

use serde::Serialize;

use crate::RunInput;

/// One aspect of the two runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// `target`, `command train`, `param lr`, `resources.nodes`, `label team`, …
    pub aspect: String,
    /// The first run's value; `None` (JSON `null`) when it has no such aspect.
    pub a: Option<String>,
    pub b: Option<String>,
    pub same: bool,
    /// The two values as words, those that differ marked (only when they differ).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<(Vec<Word>, Vec<Word>)>,
}

/// A word of a value (with the space after it), and whether it differs from the other run's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Word {
    pub text: String,
    pub changed: bool,
}

/// Values longer than this are compared whole, not word by word.
const MAX_WORD_DIFF: usize = 16 * 1024;

/// The aspects of one run, in order.
pub fn facts(run: &RunInput) -> Vec<(String, String)> {
    let r = &run.detail.run;
    let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
    let mut out = vec![
        ("workflow".to_string(), r.workflow.clone()),
        ("target".to_string(), r.target.clone()),
        ("status".to_string(), r.status.to_string()),
        ("host".to_string(), or_unknown(&r.host)),
        ("node type".to_string(), or_unknown(&r.node)),
        ("GPU".to_string(), or_unknown(&r.gpu)),
        ("atlas version".to_string(), or_unknown(&r.agent_version)),
        (
            "wall".to_string(),
            r.wall_seconds.map_or("?".into(), |w| format!("{w:.1} s")),
        ),
    ];
    if let Some(labels) = r.labels.as_object() {
        for (key, value) in labels {
            let value = value
                .as_str()
                .map_or_else(|| value.to_string(), String::from);
            out.push((format!("label {key}"), value));
        }
    }
    if let Some(w) = &run.workflow {
        for phase in &w.spec.phases {
            out.push((
                format!("command {}", phase.name),
                phase.run.trim().to_string(),
            ));
        }
        let commands: Vec<&str> = w.spec.phases.iter().map(|p| p.run.as_str()).collect();
        for (name, value) in parameters(&commands.join("\n")) {
            out.push((format!("param {name}"), value));
        }
        out.extend(fields("resources", &w.spec.resources));
        out.extend(fields("environment", &w.spec.environment));
        out.extend(fields("image", &w.spec.image));
    }
    for input in run.inputs.iter().flat_map(|i| i.split(',')) {
        if let Some((path, sha)) = input.split_once('=') {
            out.push((format!("input {path}"), sha.to_string()));
        }
    }
    out
}

/// Each top-level field of a section as `section.field`, its value as compact JSON.
fn fields<T: Serialize>(section: &str, value: &T) -> Vec<(String, String)> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| {
                let text = v.as_str().map_or_else(|| v.to_string(), String::from);
                (format!("{section}.{k}"), text)
            })
            .collect(),
        Ok(serde_json::Value::Null) | Err(_) => Vec::new(),
        Ok(other) => vec![(section.to_string(), other.to_string())],
    }
}

/// `--NAME VALUE` and `--NAME=VALUE` in commands, in order (a later one wins); a `--NAME`
/// followed by another option or nothing is a flag, `true`. A bare `--` ends a command line's
/// options; a name must start with a letter or digit.
pub fn parameters(commands: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in commands.lines() {
        line_parameters(line, &mut out);
    }
    out
}

fn line_parameters(line: &str, out: &mut Vec<(String, String)>) {
    let words: Vec<&str> = line.split_whitespace().collect();
    for (i, word) in words.iter().enumerate() {
        if *word == "--" {
            return;
        }
        let Some(option) = word
            .strip_prefix("--")
            .filter(|o| o.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()))
        else {
            continue;
        };
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => (name, value.to_string()),
            None => match words.get(i + 1) {
                Some(next) if !next.starts_with('-') || next.parse::<f64>().is_ok() => {
                    (option, next.to_string())
                }
                _ => (option, "true".to_string()),
            },
        };
        out.retain(|(n, _)| n != name);
        out.push((name.to_string(), value));
    }
}

/// The two runs, aspect by aspect (an aspect only one has shows `—` on the other side).
pub fn diff(a: &RunInput, b: &RunInput) -> Vec<Row> {
    let (fa, fb) = (facts(a), facts(b));
    let mut aspects: Vec<&String> = fa.iter().map(|(k, _)| k).collect();
    for (k, _) in &fb {
        if !aspects.contains(&k) {
            aspects.push(k);
        }
    }
    let value = |facts: &[(String, String)], key: &str| {
        facts.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    };
    aspects
        .into_iter()
        .map(|aspect| {
            let (va, vb) = (value(&fa, aspect), value(&fb, aspect));
            let same = va == vb;
            let words = (!same)
                .then(|| word_diff(va.as_deref().unwrap_or(""), vb.as_deref().unwrap_or("")));
            Row {
                aspect: aspect.clone(),
                a: va,
                b: vb,
                same,
                words,
            }
        })
        .collect()
}

/// The two values as words, those that differ marked; long values are marked whole.
fn word_diff(a: &str, b: &str) -> (Vec<Word>, Vec<Word>) {
    let whole = |text: &str| {
        vec![Word {
            text: text.to_string(),
            changed: true,
        }]
    };
    if a.len() > MAX_WORD_DIFF || b.len() > MAX_WORD_DIFF {
        return (whole(a), whole(b));
    }
    let diff = similar::TextDiff::from_words(a, b);
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for change in diff.iter_all_changes() {
        let word = |changed| Word {
            text: change.value().to_string(),
            changed,
        };
        match change.tag() {
            similar::ChangeTag::Equal => {
                left.push(word(false));
                right.push(word(false));
            }
            similar::ChangeTag::Delete => left.push(word(true)),
            similar::ChangeTag::Insert => right.push(word(true)),
        }
    }
    (left, right)
}

/// A value with its differing words marked `[like this]` (or with `mark`, a terminal's colour
/// codes, around them).
pub fn marked(words: &[Word], mark: (&str, &str)) -> String {
    let mut out = String::new();
    for w in words {
        let text = w.text.as_str();
        if w.changed && !text.trim().is_empty() {
            let core = text.trim_end();
            out.push_str(mark.0);
            out.push_str(core);
            out.push_str(mark.1);
            out.push_str(&text[core.len()..]);
        } else {
            out.push_str(text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_read_in_both_spellings_and_the_last_wins() {
        let p = parameters(
            "python train.py --lr 0.5 --epochs=20 --verbose --seed -3 --=x ---a\nx --lr 0.1 -- --not 1",
        );
        assert_eq!(
            p,
            vec![
                ("epochs".to_string(), "20".to_string()),
                ("verbose".to_string(), "true".to_string()),
                ("seed".to_string(), "-3".to_string()),
                ("lr".to_string(), "0.1".to_string()),
            ]
        );
    }

    #[test]
    fn only_the_differing_words_are_marked() {
        let (a, b) = word_diff(
            "python train.py --lr 0.5 --epochs 20",
            "python train.py --lr 0.05 --epochs 20",
        );
        assert_eq!(
            marked(&a, ("[", "]")),
            "python train.py --lr [0.5] --epochs 20"
        );
        assert_eq!(
            marked(&b, ("[", "]")),
            "python train.py --lr [0.05] --epochs 20"
        );
        let long = "x ".repeat(MAX_WORD_DIFF);
        let (a, _) = word_diff(&long, "y");
        assert_eq!(a.len(), 1);
        assert!(a[0].changed);
    }
}
