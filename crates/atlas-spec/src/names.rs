//! Kubernetes object names (DNS-1123 labels): checking them and making one from any text.

/// Longest DNS-1123 label.
pub const MAX_NAME_LEN: usize = 63;

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

    proptest! {
        #[test]
        fn made_labels_are_valid(text in "\\PC{0,100}") {
            prop_assert!(is_dns1123_label(&to_dns1123_label(&text, "workflow")));
        }
    }
}
