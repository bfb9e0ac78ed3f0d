//! `atlas completions bash|zsh|fish|elvish|powershell`: a shell completion script on stdout
//! (clap_complete), made from the same argument definitions the commands parse with.

use crate::exit::Failure;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas completions bash > /etc/bash_completion.d/atlas\n  atlas completions zsh > \"${fpath[1]}/_atlas\"\n  atlas completions fish > ~/.config/fish/completions/atlas.fish"
)]
pub struct Args {
    /// The shell.
    shell: clap_complete::Shell,
}

/// Writes the script for `args.shell` for the command line `command`.
pub fn run(args: Args, mut command: clap::Command) -> Result<(), Failure> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "atlas", &mut script);
    super::write_output(None, &String::from_utf8_lossy(&script))
}
