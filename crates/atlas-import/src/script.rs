//! A job script as numbered lines: CRLF and CR line ends are accepted, a missing final newline
//! is fine, and each line keeps its 1-based number. Helpers over runs of lines (blank ends
//! trimmed, line ranges) live here so that `body` and `phases` share them without a circle.

use atlas_spec::LineRange;

/// One line of the script.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    /// 1-based line number.
    pub number: u32,
    /// The text without its line end.
    pub text: &'a str,
}

impl<'a> Line<'a> {
    /// The text with leading white space removed.
    pub fn trimmed(&self) -> &'a str {
        self.text.trim_start()
    }

    /// Blank or only white space.
    pub fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }

    /// A shell comment (`#` after optional white space), including directives.
    pub fn is_comment(&self) -> bool {
        self.trimmed().starts_with('#')
    }
}

/// Splits a script into lines.
pub(crate) fn lines(script: &str) -> Vec<Line<'_>> {
    if script.is_empty() {
        return Vec::new();
    }
    let body = script.strip_suffix('\n').unwrap_or(script);
    body.split('\n')
        .enumerate()
        .map(|(i, text)| Line {
            number: u32::try_from(i + 1).unwrap_or(u32::MAX),
            text: text.strip_suffix('\r').unwrap_or(text),
        })
        .collect()
}

/// If `line` (after leading white space when `indent_ok`) starts with `prefix` followed by white
/// space or the end, the rest of the line.
pub(crate) fn directive<'a>(line: &Line<'a>, prefix: &str, indent_ok: bool) -> Option<&'a str> {
    let text = if indent_ok { line.trimmed() } else { line.text };
    let rest = text.strip_prefix(prefix)?;
    match rest.chars().next() {
        None => Some(rest),
        Some(c) if c.is_whitespace() => Some(rest),
        // sbatch reads the options right after the magic word, space or not
        // (`#SBATCH--nodes=2`).
        Some('-') if prefix == "#SBATCH" => Some(rest),
        _ => None,
    }
}

/// `lines` without leading and trailing blank lines.
pub(crate) fn trim_blank<'a, 'b>(lines: &'b [Line<'a>]) -> &'b [Line<'a>] {
    let start = lines
        .iter()
        .position(|l| !l.is_blank())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !l.is_blank())
        .map_or(start, |i| i + 1);
    &lines[start..end.max(start)]
}

/// Contiguous runs of line numbers.
pub(crate) fn ranges(lines: &[Line<'_>]) -> Vec<LineRange> {
    let mut out: Vec<LineRange> = Vec::new();
    for line in lines {
        match out.last_mut() {
            Some(r) if r.end + 1 == line.number => r.end = line.number,
            _ => out.push(LineRange {
                start: line.number,
                end: line.number,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_and_missing_final_newline() {
        let ls = lines("a\r\nb\r\nc");
        assert_eq!(
            ls.iter().map(|l| l.text).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(ls[2].number, 3);
        assert_eq!(lines("a\nb\n").len(), 2);
    }

    #[test]
    fn directive_prefix_needs_a_word_boundary() {
        let l = |t| Line { number: 1, text: t };
        assert_eq!(
            directive(&l("#SBATCH -N 2"), "#SBATCH", false),
            Some(" -N 2")
        );
        assert_eq!(directive(&l("#SBATCHX"), "#SBATCH", false), None);
        assert_eq!(directive(&l("  #SBATCH -N 2"), "#SBATCH", false), None);
        assert_eq!(directive(&l("  #BSUB -n 2"), "#BSUB", true), Some(" -n 2"));
        assert_eq!(directive(&l("##BSUB -n 2"), "#BSUB", true), None);
    }
}
