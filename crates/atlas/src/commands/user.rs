//! `atlas user add NAME` (prints a new API token once; only its hash is kept) and
//! `atlas user list`. Runs belong to the user who started them: `$ATLAS_USER`, else `$USER`.

use std::path::PathBuf;

use crate::exit::Failure;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  atlas user add ada\n  atlas user list")]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// The database (default: $ATLAS_DB or $XDG_DATA_HOME/atlas/atlas.db).
    #[arg(long, global = true)]
    db: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Add a user and print their API token (shown this once).
    Add {
        /// Lowercase letters, digits, `-`, `_` and `.`.
        name: String,
    },
    /// List the users.
    List,
}

/// The user runs started here belong to: `$ATLAS_USER`, else `$USER`, else `local`.
pub fn current() -> String {
    ["ATLAS_USER", "USER"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "local".into())
}

/// A user name: the name rule (`atlas_spec::check_name`: no `.` or `..`, no separators), in
/// lowercase.
pub(crate) fn valid_name(name: &str) -> bool {
    atlas_spec::check_name(name).is_ok() && !name.bytes().any(|b| b.is_ascii_uppercase())
}

pub fn run(args: Args) -> Result<(), Failure> {
    let (mut store, _) = super::db::open(args.db.as_deref())?;
    match args.action {
        Action::Add { name } => {
            if !valid_name(&name) {
                let shown: String = name.chars().take(64).collect();
                return Err(Failure::input(format!(
                    "{shown:?} is not a user name: 1-64 of lowercase letters, digits, `-`, `_` and `.`, starting with a letter or digit"
                )));
            }
            let token = atlas_server::auth::new_token()
                .map_err(|e| Failure::environment(format!("cannot make a token: {e}")))?;
            let now = atlas_agent::spool::unix_now();
            store
                .add_user(&name, &atlas_server::auth::hash_token(&token), now)
                .map_err(|e| Failure::input(e.to_string()))?;
            eprintln!(
                "added user `{name}` to {}; their token (shown once, keep it secret):",
                store.location()
            );
            println!("{token}");
            eprintln!(
                "they log in to the dashboard at its /login with it (`atlas serve` prints the address, http://127.0.0.1:8080/login by default); agents and scripts send it as ATLAS_TOKEN"
            );
            Ok(())
        }
        Action::List => {
            let users = store.users().map_err(Failure::environment)?;
            for user in users {
                println!("{}", user.name);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn user_names_are_plain() {
        assert!(super::valid_name("ada.l-1_x"));
        assert!(!super::valid_name("Ada"));
        assert!(!super::valid_name("a b"));
        assert!(!super::valid_name(""));
    }
}
