//! Quoting for the two places user values land in a generated batch script: the shell (the
//! commands in the body) and sbatch's directive parser (`#SBATCH --opt=VALUE`), whose rules differ.

/// Quotes `word` for a POSIX shell so it is read back as exactly one word, unchanged.
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Why a value cannot be put on a directive line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` cannot be written as a directive value: {reason}")]
pub struct DirectiveValueError {
    pub value: String,
    pub reason: &'static str,
}

/// Quotes a directive value the way sbatch reads it: a whole line, words split on white space,
/// `"…"` or `'…'` grouping (no escapes inside), an unquoted `#` starting a comment.
pub fn directive_quote(value: &str) -> Result<String, DirectiveValueError> {
    let fail = |reason| DirectiveValueError {
        value: value.to_string(),
        reason,
    };
    // sbatch reads a blank value as no value at all: it would not come back.
    if value.trim().is_empty() {
        return Err(fail("it is empty or only white space"));
    }
    // Unicode's line and paragraph separators count as line breaks too (as the Workflow's
    // validation says): a script holding one would not read back the same.
    if value
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Err(fail("it holds a line break or another control character"));
    }
    let plain = |c: char| !c.is_whitespace() && !"#\"'\\".contains(c);
    if value.chars().all(plain) {
        Ok(value.to_string())
    } else if !value.contains('"') && !value.contains('\\') {
        Ok(format!("\"{value}\""))
    } else if !value.contains('\'') && !value.contains('\\') {
        Ok(format!("'{value}'"))
    } else {
        Err(fail("it holds both quote characters or a backslash"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shell_quoting_keeps_safe_words_bare() {
        assert_eq!(shell_quote("train.py"), "train.py");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn directive_values_pick_a_quote_or_refuse() {
        assert_eq!(directive_quote("gpu").unwrap(), "gpu");
        assert_eq!(directive_quote("a b#c").unwrap(), "\"a b#c\"");
        assert_eq!(directive_quote("say \"hi\"").unwrap(), "'say \"hi\"'");
        assert!(directive_quote("a\nb").is_err());
        assert!(directive_quote("both ' and \"").is_err());
        assert!(directive_quote("").is_err());
        assert!(
            directive_quote(" \u{3000}").is_err(),
            "blank values do not come back"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Real bash reads every quoted word back unchanged: no value escapes its quotes.
        #[test]
        fn bash_reads_back_every_quoted_word(word in "[^\u{0}]{0,40}") {
            let script = format!("printf '%s' {}", shell_quote(&word));
            let out = std::process::Command::new("bash").arg("-c").arg(&script).output().unwrap();
            prop_assert!(out.status.success(), "{script}");
            prop_assert_eq!(String::from_utf8_lossy(&out.stdout), word);
        }
    }
}
