//! Reading the options of one directive line against a dialect's option table.

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arg {
    /// A flag.
    None,
    /// Always a value: attached (`-N2`, `--nodes=2`) or the next word.
    Required,
    /// Only an attached value (`--exclusive=user`); a flag otherwise.
    Optional,
}

/// One known option: its spellings, its argument, and what the dialect does with it.
pub(crate) struct OptDef<A: 'static> {
    pub names: &'static [&'static str],
    pub arg: Arg,
    pub action: A,
}

/// A table row: `opt(&["-N", "--nodes"], Arg::Required, action)`.
pub(crate) const fn opt<A>(names: &'static [&'static str], arg: Arg, action: A) -> OptDef<A> {
    OptDef { names, arg, action }
}

/// How a dialect writes options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// getopt_long: `-N2`, `-N 2`, `--nodes=2`, `--nodes 2`, unique prefixes of long names.
    Getopt,
    /// bsub: every option is a whole word (`-gpu`, `-alloc_flags`), its value the next word.
    Words,
}

/// One option occurrence found on a line.
pub(crate) struct Found<A: 'static> {
    /// As written, without an attached value.
    pub option: String,
    pub value: Option<String>,
    /// The table entry, `None` for an unknown option or stray word.
    pub def: Option<&'static OptDef<A>>,
    /// What is wrong with it, if anything.
    pub problem: Option<String>,
}

fn lookup<A>(table: &'static [OptDef<A>], name: &str, style: Style) -> Option<&'static OptDef<A>> {
    if let Some(def) = table.iter().find(|d| d.names.contains(&name)) {
        return Some(def);
    }
    if style == Style::Getopt && name.starts_with("--") && name.len() > 3 {
        let mut matches = table.iter().filter(|d| {
            d.names
                .iter()
                .any(|n| n.starts_with("--") && n.starts_with(name))
        });
        if let (Some(only), None) = (matches.next(), matches.next()) {
            return Some(only);
        }
    }
    None
}

/// Finds the options in `words`.
pub(crate) fn parse<A>(
    words: &[String],
    table: &'static [OptDef<A>],
    style: Style,
) -> Vec<Found<A>> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        if !word.starts_with('-') || word == "-" {
            found.push(Found {
                option: word.clone(),
                value: None,
                def: None,
                problem: Some("a word that is not an option".into()),
            });
            continue;
        }
        let (name, attached) = split_attached(word, table, style);
        let def = lookup(table, &name, style);
        let arg = def.map(|d| d.arg);
        let value = match (arg, attached) {
            (Some(Arg::None), Some(v)) => {
                found.push(Found {
                    option: name,
                    value: Some(v),
                    def,
                    problem: Some("this option takes no value".into()),
                });
                continue;
            }
            (_, Some(v)) => Some(v),
            (Some(Arg::Required), None) => {
                if i < words.len() {
                    i += 1;
                    Some(words[i - 1].clone())
                } else {
                    found.push(Found {
                        option: name,
                        value: None,
                        def,
                        problem: Some("the value is missing".into()),
                    });
                    continue;
                }
            }
            // An unknown option: take the next word as its value unless it is an option.
            (None, None) if i < words.len() && !words[i].starts_with('-') => {
                i += 1;
                Some(words[i - 1].clone())
            }
            _ => None,
        };
        let problem = value
            .as_deref()
            .filter(|v| v.contains('\u{FFFD}'))
            .map(|_| "the value holds bytes that are not UTF-8".to_string());
        found.push(Found {
            option: name,
            value,
            def,
            problem,
        });
    }
    found
}

/// Splits `--name=value` and getopt's `-Nvalue` into name and attached value.
fn split_attached<A>(
    word: &str,
    table: &'static [OptDef<A>],
    style: Style,
) -> (String, Option<String>) {
    if let Some((name, value)) = word.split_once('=').filter(|_| word.starts_with("--")) {
        return (name.to_string(), Some(value.to_string()));
    }
    if style == Style::Getopt && !word.starts_with("--") && word.len() > 2 {
        let (name, rest) = word.split_at(word.char_indices().nth(2).map_or(word.len(), |(i, _)| i));
        if lookup(table, name, style).is_some() || lookup(table, word, style).is_none() {
            return (name.to_string(), Some(rest.to_string()));
        }
    }
    (word.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    static TABLE: [OptDef<u8>; 4] = [
        OptDef {
            names: &["-N", "--nodes"],
            arg: Arg::Required,
            action: 1,
        },
        OptDef {
            names: &["--exclusive"],
            arg: Arg::Optional,
            action: 2,
        },
        OptDef {
            names: &["--mem-per-cpu"],
            arg: Arg::Required,
            action: 3,
        },
        OptDef {
            names: &["-H", "--hold"],
            arg: Arg::None,
            action: 4,
        },
    ];

    fn run(line: &str, style: Style) -> Vec<(String, Option<String>, Option<u8>)> {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse(&words, &TABLE, style)
            .into_iter()
            .map(|f| (f.option, f.value, f.def.map(|d| d.action)))
            .collect()
    }

    #[test]
    fn getopt_spellings() {
        let all = run("-N2 -N 3 --nodes=4 --nodes 5", Style::Getopt);
        let values: Vec<_> = all.iter().map(|f| f.1.clone().unwrap()).collect();
        assert_eq!(values, ["2", "3", "4", "5"]);
        assert!(all.iter().all(|f| f.2 == Some(1)));
    }

    #[test]
    fn unique_long_prefixes_are_accepted() {
        assert_eq!(run("--mem-per=4G", Style::Getopt)[0].2, Some(3));
        assert_eq!(run("--excl", Style::Getopt)[0].2, Some(2));
    }

    #[test]
    fn optional_values_only_attach() {
        let all = run("--exclusive -H", Style::Getopt);
        assert_eq!(all[0].1, None);
        assert_eq!(all[1].2, Some(4));
    }

    #[test]
    fn unknown_options_take_a_following_word() {
        let all = run("--frobnicate yes -N 1", Style::Getopt);
        assert_eq!((all[0].2, all[0].1.as_deref()), (None, Some("yes")));
        assert_eq!(all[1].2, Some(1));
    }
}
