//! Names: the one rule for what a phase, run, target or metric may be called ([`check_name`]),
//! and Kubernetes object names (DNS-1123 labels): checking them and making one from any text.
//!
//! A name is never a path: the rule admits no `/`, no leading `.`, no whitespace or control
//! character, so a valid name used as a file name stays inside its directory and maps to a file
//! of its own (see [`crate::RunDir`]).

/// Longest DNS-1123 label.
pub const MAX_NAME_LEN: usize = 63;

/// Longest phase, run, target or metric name, in bytes.
pub const MAX_IDENT_LEN: usize = 64;

/// Why a text is not a valid phase, run, target or metric name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing at all.
    #[error("a name cannot be empty")]
    Empty,
    /// Longer than [`MAX_IDENT_LEN`].
    #[error("`{shown}…` is {len} bytes long; a name has at most {MAX_IDENT_LEN}")]
    TooLong {
        /// The first characters, for the message.
        shown: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A character outside the rule (shown escaped).
    #[error("{name:?} is not a valid name: {found} at position {at} (expected 1-{MAX_IDENT_LEN} of A-Z, a-z, 0-9, `.`, `_` and `-`, starting with a letter or digit)")]
    BadChar {
        /// The name, escaped.
        name: String,
        /// What was found there.
        found: String,
        /// 1-based position in characters.
        at: usize,
    },
}

/// Checks a phase, run, target or metric name: 1–64 bytes of ASCII letters, digits, `.`, `_`
/// and `-`, starting with a letter or digit. Such a name is a file name of its own: no
/// separators, no `.`/`..`, no hidden file, nothing a shell or a header would read specially.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_IDENT_LEN {
        return Err(NameError::TooLong {
            shown: name
                .chars()
                .take(24)
                .collect::<String>()
                .escape_debug()
                .to_string(),
            len: name.len(),
        });
    }
    for (i, c) in name.chars().enumerate() {
        let ok = c.is_ascii_alphanumeric() || (i > 0 && matches!(c, '.' | '_' | '-'));
        if !ok {
            let found = if i == 0 && matches!(c, '.' | '_' | '-') {
                format!("`{c}` first")
            } else {
                format!("{:?}", c)
            };
            return Err(NameError::BadChar {
                name: name.to_string(),
                found,
                at: i + 1,
            });
        }
    }
    Ok(())
}

/// True when `name` is a DNS-1123 label: 1–63 of `a-z0-9-`, starting and ending alphanumeric.
pub fn is_dns1123_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Makes a DNS-1123 label from `text`: lowercase, every run of other characters becomes one `-`,
/// trimmed to 63 characters; `fallback` when nothing usable is left.
pub fn to_dns1123_label(text: &str, fallback: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_NAME_LEN));
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= MAX_NAME_LEN {
            break;
        }
    }
    let trimmed = out.trim_end_matches('-');
    if trimmed.is_empty() {
        fallback.to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn checks_labels() {
        assert!(is_dns1123_label("biggan128-imagenet"));
        assert!(!is_dns1123_label("BigGAN"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label(""));
        assert!(!is_dns1123_label(&"a".repeat(64)));
    }

    #[test]
    fn makes_labels() {
        assert_eq!(
            to_dns1123_label("BigGAN128-ImageNet", "w"),
            "biggan128-imagenet"
        );
        assert_eq!(to_dns1123_label("my job_01 (test)", "w"), "my-job-01-test");
        assert_eq!(to_dns1123_label("___", "workflow"), "workflow");
    }

    #[test]
    fn names_are_never_paths() {
        for good in [
            "train",
            "stage.in",
            "train.v2",
            "a_b",
            "a-b",
            "Phase1",
            &"x".repeat(64),
        ] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "..",
            ".",
            ".hidden",
            "a/b",
            "../../r-x/logs/train",
            "a b",
            "é",
            "a\nb",
            "-x",
            "_x",
            "a\\b",
            "a\0",
            &"x".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_long_name_is_not_echoed_whole() {
        let message = check_name(&"x".repeat(4 << 20)).unwrap_err().to_string();
        assert!(message.len() < 200, "{}", message.len());
    }

    proptest! {
        #[test]
        fn made_labels_are_valid(text in "\\PC{0,100}") {
            prop_assert!(is_dns1123_label(&to_dns1123_label(&text, "workflow")));
        }
    }
}
