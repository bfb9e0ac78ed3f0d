//! Splitting a line into shell words: quotes, backslashes, and (optionally) comments and
//! command separators, the way a POSIX shell does for the cases job scripts use.

/// One token of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// A word with quotes removed.
    Word(String),
    /// A command separator: `;`, `&`, `|`, `&&`, `||` (only when asked for).
    Separator,
}

/// How to split.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rules {
    /// An unquoted `#` at the start of a word ends the line.
    pub comments: bool,
    /// Unquoted `;`, `&` and `|` separate commands.
    pub separators: bool,
}

/// Splits `line` into tokens. Fails on an unterminated quote, naming it.
pub(crate) fn split(line: &str, rules: Rules) -> Result<Vec<Token>, &'static str> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    tokens.push(Token::Word(std::mem::take(&mut word)));
                    in_word = false;
                }
            }
            '#' if rules.comments && !in_word => break,
            ';' | '&' | '|' if rules.separators => {
                if in_word {
                    tokens.push(Token::Word(std::mem::take(&mut word)));
                    in_word = false;
                }
                if chars.peek() == Some(&c) {
                    chars.next();
                }
                tokens.push(Token::Separator);
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(q) => word.push(q),
                        None => return Err("a single quote (') is not closed"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => word.push(e),
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Err("a double quote (\") is not closed"),
                        },
                        Some(q) => word.push(q),
                        None => return Err("a double quote (\") is not closed"),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(escaped) = chars.next() {
                    word.push(escaped);
                }
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        tokens.push(Token::Word(word));
    }
    Ok(tokens)
}

/// Splits into plain words (no separators), for directive lines.
pub(crate) fn words(line: &str, comments: bool) -> Result<Vec<String>, &'static str> {
    let rules = Rules {
        comments,
        separators: false,
    };
    Ok(split(line, rules)?
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w),
            Token::Separator => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_group_words() {
        assert_eq!(
            words(r#"-R "span[ptile=1] rusage[mem=4]" -J 'a b'"#, false).unwrap(),
            ["-R", "span[ptile=1] rusage[mem=4]", "-J", "a b"]
        );
    }

    #[test]
    fn unquoted_hash_starts_a_comment_only_when_asked() {
        assert_eq!(
            words("--time=1:00 # one hour", true).unwrap(),
            ["--time=1:00"]
        );
        assert_eq!(
            words("--job-name=\"a#b\" #c", true).unwrap(),
            ["--job-name=a#b"]
        );
        assert_eq!(
            words("-o a#b", true).unwrap(),
            ["-o", "a#b"],
            "# inside a word"
        );
        assert_eq!(words("x # y", false).unwrap(), ["x", "#", "y"]);
    }

    #[test]
    fn separators_split_commands() {
        let rules = Rules {
            comments: true,
            separators: true,
        };
        let tokens = split("a b && c; d | e", rules).unwrap();
        assert_eq!(tokens.iter().filter(|t| **t == Token::Separator).count(), 3);
    }

    #[test]
    fn unterminated_quotes_are_errors() {
        assert!(words("-J \"abc", false).is_err());
        assert!(words("-J 'abc", false).is_err());
    }
}
