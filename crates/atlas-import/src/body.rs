//! The script body (every line that is not a directive): the run commands kept verbatim, and
//! what they tell about the job: launcher, modules, conda/venv, exported variables, and the
//! scheduler's own variables that the commands read.

use std::collections::{BTreeSet, HashMap};

use atlas_spec::{Launcher, LauncherKind};

use crate::builder::Builder;
use crate::launcher;
use crate::script::{trim_blank, Line};
use crate::words::{split, Rules, Token};

/// Prefixes of the variables schedulers set in a job's environment.
const SCHEDULER_PREFIXES: &[&str] = &[
    "SLURM_", "SLURMD_", "SBATCH_", "LSB_", "LSF_", "LS_", "PBS_",
];
/// Scheduler variables without a telling prefix.
const SCHEDULER_NAMES: &[&str] = &["NCPUS", "NODEFILE"];

/// Fills the phase, environment and launcher from the body lines.
pub(crate) fn apply(b: &mut Builder, body: &[Line<'_>]) {
    let (shell, body) = match body.first() {
        Some(first) if first.number == 1 && first.text.starts_with("#!") => {
            (Some(first.text[2..].trim().to_string()), &body[1..])
        }
        _ => (None, body),
    };
    let body = trim_blank(body);
    if body.is_empty() {
        b.warn(None, "the script has no commands to run");
    }
    let mut analysis = Analysis::default();
    for (number, command) in commands(body) {
        analysis.command(b, number, &command);
    }
    analysis.finish(b, body);
    crate::phases::split(b, body, shell);
}

/// Logical command lines: continuation lines joined, comments and here-document bodies left out.
fn commands(lines: &[Line<'_>]) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(u32, String)> = None;
    let mut heredoc: Option<String> = None;
    for line in lines {
        if let Some(end) = &heredoc {
            if line.text.trim() == end {
                heredoc = None;
            }
            continue;
        }
        if pending.is_none() && (line.is_comment() || line.is_blank()) {
            continue;
        }
        let (number, mut text) = pending.take().unwrap_or((line.number, String::new()));
        match line.text.strip_suffix('\\') {
            Some(continued) => {
                text.push_str(continued);
                text.push(' ');
                pending = Some((number, text));
            }
            None => {
                text.push_str(line.text);
                heredoc = heredoc_end(&text);
                out.push((number, text));
            }
        }
    }
    out.extend(pending);
    out
}

/// The terminator of a here-document started on this line (`<<EOF`, `<<-'EOF'`).
fn heredoc_end(text: &str) -> Option<String> {
    let at = text.find("<<")?;
    let rest = text[at + 2..].trim_start_matches('-').trim_start();
    if rest.starts_with('<') {
        return None; // `<<<` is a here-string
    }
    let word: String = rest
        .chars()
        .filter(|c| *c != '\'' && *c != '"')
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

#[derive(Default)]
struct Analysis {
    /// Plain `NAME=value` assignments seen so far, for resolving module and env names.
    shell_vars: HashMap<String, String>,
    /// Every assignment seen so far, as far as it can be resolved, for finding the launcher.
    command_vars: HashMap<String, String>,
    launcher: Option<(u32, String, launcher::Found)>,
    scheduler_vars: BTreeSet<String>,
}

impl Analysis {
    fn command(&mut self, b: &mut Builder, number: u32, text: &str) {
        self.scan_variables(text);
        let rules = Rules {
            comments: true,
            separators: true,
        };
        let Ok(tokens) = split(text, rules) else {
            b.warn(
                Some(number),
                "a quote is not closed on this line; it was not analysed",
            );
            return;
        };
        for words in tokens.split(|t| *t == Token::Separator) {
            let words: Vec<String> = words
                .iter()
                .filter_map(|t| match t {
                    Token::Word(w) => Some(w.clone()),
                    Token::Separator => None,
                })
                .collect();
            if !words.is_empty() {
                self.simple_command(b, number, text, &words);
            }
        }
    }

    fn simple_command(&mut self, b: &mut Builder, number: u32, text: &str, words: &[String]) {
        let env = &mut b.workflow.spec.environment;
        match words[0].as_str() {
            "export" => {
                for assignment in &words[1..] {
                    if let Some((name, value)) = assignment.split_once('=') {
                        env.variables.insert(name.to_string(), value.to_string());
                        self.remember(name, value);
                    }
                }
            }
            "module"
                if matches!(
                    words.get(1).map(String::as_str),
                    Some("load" | "add" | "try-load")
                ) =>
            {
                env.modules
                    .extend(words[2..].iter().map(|m| self.resolve(m)));
            }
            "ml" if words.len() > 1
                && !words[1].starts_with('-')
                && !is_ml_subcommand(&words[1]) =>
            {
                env.modules
                    .extend(words[1..].iter().map(|m| self.resolve(m)));
            }
            "conda" if words.get(1).is_some_and(|w| w == "activate") => {
                env.conda = Some(words.get(2).map_or("base".to_string(), |n| self.resolve(n)));
            }
            "source" | "." => self.activate(b, &words[1..]),
            w if w.contains('=') && words.len() == 1 => {
                if let Some((name, value)) = w.split_once('=') {
                    self.remember(name, value);
                }
            }
            _ => {}
        }
        // The command as written, unless expanding it shows another launcher inside: then
        // that one (its options as the expansion gives them).
        let direct = launcher::detect(words);
        let found = match (direct, launcher::detect(&self.expanded(words))) {
            (Some(d), Some(x)) if d.kind != x.kind => Some(x),
            (Some(d), _) => Some(d),
            (None, x) => x,
        };
        if let Some(found) = found {
            match &self.launcher {
                None => self.launcher = Some((number, text.trim().to_string(), found)),
                Some((first_line, _, first)) if first.kind != found.kind => b.warn(
                    Some(number),
                    format!(
                        "this line launches with {:?}, but line {first_line} with {:?}; the workflow records the first",
                        found.kind, first.kind
                    ),
                ),
                Some(_) => {}
            }
        }
    }

    /// `source activate NAME`, `source …/bin/activate [NAME]`.
    fn activate(&mut self, b: &mut Builder, args: &[String]) {
        let Some(script) = args.first() else { return };
        let env = &mut b.workflow.spec.environment;
        if script == "activate" || script.ends_with("/bin/activate") && args.len() > 1 {
            env.conda = Some(args.get(1).map_or("base".to_string(), |n| self.resolve(n)));
        } else if let Some(venv) = script.strip_suffix("/bin/activate") {
            env.venv = Some(self.resolve(venv));
        }
    }

    /// The words as the shell would run them, for finding the launcher: a word that is a
    /// variable (`srun $CMD`) replaced by what was assigned to it earlier and split into words,
    /// and the command of `bash -c "…"`/`sh -c "…"` split into its words (`srun bash -c
    /// "$LAUNCHER train.py"` launches what `LAUNCHER` holds). Other words stay whole: a quoted
    /// argument that mentions `torchrun` launches nothing.
    fn expanded(&self, words: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut after_shell = false;
        for (i, word) in words.iter().enumerate() {
            let inline = after_shell && i > 0 && words[i - 1] == "-c";
            if inline || is_variable(word) {
                let value = substitute(word, &self.command_vars, true);
                out.extend(value.split_whitespace().map(String::from));
            } else {
                out.push(word.clone());
            }
            if out
                .last()
                .is_some_and(|w| matches!(w.rsplit('/').next(), Some("bash" | "sh" | "zsh")))
            {
                after_shell = true;
            }
        }
        out
    }

    fn remember(&mut self, name: &str, value: &str) {
        // For commands, whatever the value holds (`$(…)` and unknown variables as written).
        let command = substitute(value, &self.command_vars, true);
        self.command_vars.insert(name.to_string(), command);
        if !value.contains("$(") && !value.contains('`') {
            let resolved = self.resolve(value);
            self.shell_vars.insert(name.to_string(), resolved);
        }
    }

    /// Replaces `$NAME` and `${NAME}` by values assigned earlier in the script, when every
    /// reference is known; otherwise the text stays as written.
    fn resolve(&self, text: &str) -> String {
        substitute(text, &self.shell_vars, false)
    }

    fn scan_variables(&mut self, text: &str) {
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            rest = &rest[at + 1..];
            let name_text = rest.strip_prefix('{').unwrap_or(rest);
            let n = name_text
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(name_text.len());
            let name = &name_text[..n];
            if SCHEDULER_PREFIXES
                .iter()
                .any(|p| name.starts_with(p) && name.len() > p.len())
                || SCHEDULER_NAMES.contains(&name)
            {
                self.scheduler_vars.insert(name.to_string());
            }
        }
    }

    fn finish(self, b: &mut Builder, _body: &[Line<'_>]) {
        b.workflow.spec.environment.scheduler_variables = self.scheduler_vars.into_iter().collect();
        if let Some((line, command, found)) = self.launcher {
            b.workflow.spec.launcher = Launcher {
                kind: found.kind,
                args: found.args,
                command: Some(command),
                line: Some(line),
            };
        } else {
            b.workflow.spec.launcher.kind = LauncherKind::None;
        }
    }
}

fn is_ml_subcommand(word: &str) -> bool {
    matches!(
        word,
        "purge"
            | "list"
            | "avail"
            | "spider"
            | "show"
            | "help"
            | "unload"
            | "swap"
            | "save"
            | "restore"
            | "use"
            | "load"
    )
}

/// `$NAME` or `${NAME}`, nothing else.
fn is_variable(word: &str) -> bool {
    let Some(rest) = word.strip_prefix('$') else {
        return false;
    };
    let name = rest
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(rest);
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces `$NAME` and `${NAME}` by their values in `vars`. An unknown name leaves the whole
/// text as written, or with `partial`, only that reference.
fn substitute(text: &str, vars: &HashMap<String, String>, partial: bool) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(close) => (&inner[..close], close + 2),
                None if partial => {
                    out.push_str(&rest[at..]);
                    return out;
                }
                None => return text.to_string(),
            },
            None => {
                let n = after
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..n], n)
            }
        };
        match vars.get(name) {
            Some(value) => out.push_str(value),
            None if partial => out.push_str(&rest[at..at + 1 + len]),
            None => return text.to_string(),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Dialect;
    use crate::script::lines;
    use atlas_spec::LineRange;

    fn analyse(script: &str) -> Builder {
        let mut b = Builder::new(Dialect::Slurm);
        let all = lines(script);
        apply(&mut b, &all);
        b
    }

    #[test]
    fn commands_are_kept_verbatim_with_their_lines() {
        let b = analyse("#!/bin/bash -l\n\necho a\n\necho b\n\n");
        let phase = &b.workflow.spec.phases[0];
        assert_eq!(phase.run, "echo a\n\necho b");
        assert_eq!(phase.shell.as_deref(), Some("/bin/bash -l"));
        assert_eq!(phase.source_lines, [LineRange { start: 3, end: 5 }]);
    }

    #[test]
    fn modules_conda_and_exports_are_found() {
        let b = analyse(
            "ENV=wmlce-1.6.2\nmodule load cuda/10.2 gcc\nml openmpi\nconda activate $ENV\nexport OMP_NUM_THREADS=4 A=b\n",
        );
        let env = &b.workflow.spec.environment;
        assert_eq!(env.modules, ["cuda/10.2", "gcc", "openmpi"]);
        assert_eq!(env.conda.as_deref(), Some("wmlce-1.6.2"));
        assert_eq!(env.variables["OMP_NUM_THREADS"], "4");
    }

    #[test]
    fn venv_activation() {
        let b = analyse("source /home/u/venv/bin/activate\n");
        assert_eq!(
            b.workflow.spec.environment.venv.as_deref(),
            Some("/home/u/venv")
        );
    }

    #[test]
    fn scheduler_variables_are_listed_once() {
        let b =
            analyse("cd $PBS_O_WORKDIR\necho ${SLURM_ARRAY_TASK_ID} $SLURM_ARRAY_TASK_ID $HOME\n");
        assert_eq!(
            b.workflow.spec.environment.scheduler_variables,
            ["PBS_O_WORKDIR", "SLURM_ARRAY_TASK_ID"]
        );
    }

    #[test]
    fn launcher_is_found_across_continuation_lines_and_not_in_heredocs() {
        let b =
            analyse("cat > x.sh <<EOF\nsrun hostname\nEOF\nmpirun -np 4 \\\n  python train.py\n");
        let l = &b.workflow.spec.launcher;
        assert_eq!(l.kind, LauncherKind::Mpirun);
        assert_eq!(l.line, Some(4));
    }

    #[test]
    fn a_second_different_launcher_is_a_warning() {
        let b = analyse("srun ./a\nmpirun ./b\n");
        assert_eq!(b.workflow.spec.launcher.kind, LauncherKind::Srun);
        assert_eq!(b.report.warnings.len(), 1);
    }
}
