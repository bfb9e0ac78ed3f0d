//! References and thresholds, as ReFrame users set them: per target, `accuracy >= 0.9`,
//! `wall <= 60s ±10%`. A check names a figure of the report (its key, `wall`/`time` for the wall
//! time, `cost`, or an app metric's name), a comparison, a value (seconds may be written `60s`,
//! `2m`, `1h`) and an optional tolerance in percent, which widens the limit in the failing
//! direction. Each is judged on the group's median; a figure the group does not have fails.

use serde::Serialize;

use crate::Report;

/// The longest check text.
pub const MAX_CHECK_LEN: usize = 200;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = ">")]
    Above,
    #[serde(rename = "<")]
    Below,
}

/// One parsed check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub text: String,
    /// The name as written (`accuracy`, `wall`, `wallSeconds`).
    pub name: String,
    pub op: Op,
    pub value: f64,
    /// Percent.
    pub tolerance: f64,
}

/// A check judged on one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub target: String,
    pub check: String,
    /// The figure it was judged on (its key), when the report has it.
    pub figure: Option<String>,
    /// The group's median.
    pub value: Option<f64>,
    /// The limit, the tolerance applied.
    pub limit: f64,
    pub pass: bool,
}

/// Parses `NAME OP VALUE[s|m|h] [±N%|+-N%]`.
pub fn parse(text: &str) -> Result<Check, String> {
    if text.len() > MAX_CHECK_LEN {
        return Err(format!("a check is at most {MAX_CHECK_LEN} characters"));
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let (name, op, value, tolerance) = match words[..] {
        [name, op, value] => (name, op, value, None),
        [name, op, value, tolerance] => (name, op, value, Some(tolerance)),
        _ => {
            return Err(format!(
                "`{text}`: expected NAME OP VALUE [±N%], e.g. `accuracy >= 0.9`"
            ))
        }
    };
    let op = match op {
        ">=" => Op::AtLeast,
        "<=" => Op::AtMost,
        ">" => Op::Above,
        "<" => Op::Below,
        other => return Err(format!("`{other}` is not one of >=, <=, >, <")),
    };
    let (number, scale) = match value.char_indices().last() {
        Some((i, 's')) => (&value[..i], 1.0),
        Some((i, 'm')) => (&value[..i], 60.0),
        Some((i, 'h')) => (&value[..i], 3600.0),
        _ => (value, 1.0),
    };
    let value = number
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("`{value}` is not a number (seconds may end in s, m or h)"))?
        * scale;
    let tolerance = match tolerance {
        None => 0.0,
        Some(t) => t
            .strip_prefix('±')
            .or_else(|| t.strip_prefix("+-"))
            .and_then(|t| t.strip_suffix('%'))
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|t| t.is_finite() && (0.0..=100.0).contains(t))
            .ok_or_else(|| format!("`{t}` is not a tolerance like ±10%"))?,
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !name_ok {
        return Err(format!("`{name}` is not a figure or metric name"));
    }
    Ok(Check {
        text: text.split_whitespace().collect::<Vec<_>>().join(" "),
        name: name.to_string(),
        op,
        value,
        tolerance,
    })
}

/// The figure key a check's name stands for in `report`.
fn figure_key(report: &Report, name: &str) -> Option<String> {
    let alias = match name {
        "wall" | "time" | "time_to_completion" => "wallSeconds",
        other => other,
    };
    let metric = format!("metric.{alias}");
    let found = [alias, metric.as_str()]
        .into_iter()
        .find(|key| report.figures.iter().any(|f| f.def.key == *key))
        .map(str::to_string);
    found
}

/// Judges each target's checks on its group's median.
pub fn evaluate(report: &Report, checks: &[(String, Vec<Check>)]) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for (target, list) in checks {
        for check in list {
            let tol = check.tolerance / 100.0;
            let limit = match check.op {
                Op::AtLeast | Op::Above => check.value - check.value.abs() * tol,
                Op::AtMost | Op::Below => check.value + check.value.abs() * tol,
            };
            let figure = figure_key(report, &check.name);
            let value = figure.as_ref().and_then(|key| {
                let row = report.figures.iter().find(|f| &f.def.key == key)?;
                let group = row.targets.iter().find(|t| &t.target == target)?;
                group.estimate.as_ref().map(|e| e.median)
            });
            let pass = value.is_some_and(|v| match check.op {
                Op::AtLeast => v >= limit,
                Op::AtMost => v <= limit,
                Op::Above => v > limit,
                Op::Below => v < limit,
            });
            out.push(CheckResult {
                target: target.clone(),
                check: check.text.clone(),
                figure,
                value,
                limit,
                pass,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_read_as_written() {
        let c = parse("wall <= 1m ±10%").unwrap();
        assert_eq!((c.op, c.value, c.tolerance), (Op::AtMost, 60.0, 10.0));
        let c = parse("accuracy >= 0.9").unwrap();
        assert_eq!(
            (c.name.as_str(), c.value, c.tolerance),
            ("accuracy", 0.9, 0.0)
        );
        assert_eq!(
            parse("wall +-5% <= 3").unwrap_err(),
            "`+-5%` is not one of >=, <=, >, <"
        );
        assert!(parse("accuracy => 0.9").is_err());
        assert!(parse("accuracy >= high").is_err());
        assert!(parse("acc;rm >= 1").is_err());
        assert!(parse("wall <= 60 ±200%").is_err());
        assert!(parse("wall").is_err());
    }
}
