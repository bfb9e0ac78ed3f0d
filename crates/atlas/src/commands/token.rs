//! `atlas token add|list|revoke`: API tokens for agents and scripts, each scoped to one tenant
//! and one role (never more than its user's own role there), printed once (only its SHA-256
//! is kept), revocable by id. A user's own token (`atlas user add`) sees all they see.

use std::path::PathBuf;

use atlas_store::{Role, Store, TokenRow};

use crate::commands::format::ListFormat;
use crate::exit::Failure;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas token add ada --tenant vision --role member --label 'node agents'\n  atlas token add ada --tenant vision --role viewer\n  atlas token list\n  atlas token revoke tok-1f2e3d4c"
)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// The database (default: $ATLAS_DB or $XDG_DATA_HOME/atlas/atlas.db).
    #[arg(long, global = true)]
    db: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Make a token for USER in TENANT with a role, and print it (shown this once).
    Add {
        user: String,
        #[arg(long)]
        tenant: String,
        /// member: runs, pushes records and node samples, reads; viewer: reads only; admin:
        /// also manages the tenant's members. At most the user's own role in the tenant.
        #[arg(long, value_parser = ["admin", "member", "viewer"], default_value = "member")]
        role: String,
        /// What the token is for (at most 200 characters).
        #[arg(long)]
        label: Option<String>,
    },
    /// List the tokens (never their secrets).
    List {
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// Revoke a token by its id: requests with it get 401 at once.
    Revoke { id: String },
}

pub fn run(args: Args) -> Result<(), Failure> {
    let (mut store, _) = super::db::open(args.db.as_deref())?;
    let store = &mut *store;
    match args.action {
        Action::Add {
            user,
            tenant,
            role,
            label,
        } => add(store, user, tenant, &role, label),
        Action::List { format } => list(store, format),
        Action::Revoke { id } => {
            if !store.revoke_token(&id).map_err(Failure::environment)? {
                let shown: String = id.chars().take(64).collect();
                return Err(Failure::input(format!(
                    "no token `{shown}` (see `atlas token list`)"
                )));
            }
            eprintln!("revoked `{id}`: requests with it are refused from now on");
            Ok(())
        }
    }
}

fn add(
    store: &mut dyn Store,
    user: String,
    tenant: String,
    role: &str,
    label: Option<String>,
) -> Result<(), Failure> {
    super::tenant::checked("user", &user)?;
    let role = Role::parse(role).unwrap_or(Role::Member);
    if label
        .as_ref()
        .is_some_and(|l| l.chars().count() > 200 || l.chars().any(char::is_control))
    {
        return Err(Failure::input(
            "a label is at most 200 characters, without control characters or line breaks",
        ));
    }
    let own = store
        .memberships(&user)
        .map_err(Failure::environment)?
        .into_iter()
        .find(|(t, _)| *t == tenant)
        .map(|(_, r)| r);
    let Some(own) = own else {
        let shown: String = tenant.chars().take(64).collect();
        return Err(Failure::input(format!(
            "`{user}` is not a member of tenant `{shown}`: a token is scoped to one of its user's tenants (`atlas tenant member add {shown} {user} --role …`)"
        )));
    };
    if role > own {
        return Err(Failure::input(format!(
            "`{user}` is a {} of `{tenant}`: their token cannot be a {}",
            own.as_str(),
            role.as_str()
        )));
    }
    let secret = atlas_server::auth::new_token()
        .map_err(|e| Failure::environment(format!("cannot make a token: {e}")))?;
    let id = format!("tok-{}", &atlas_server::auth::hash_token(&secret)[..8]);
    let row = TokenRow {
        id: id.clone(),
        user,
        tenant,
        role,
        label,
        created_at: atlas_agent::spool::unix_now(),
    };
    store
        .add_token(&row, &atlas_server::auth::hash_token(&secret))
        .map_err(Failure::environment)?;
    eprintln!(
        "token `{id}` for `{}` in `{}` as a {} (shown once, keep it secret; `atlas token revoke {id}` ends it):",
        row.user,
        row.tenant,
        row.role.as_str()
    );
    println!("{secret}");
    Ok(())
}

fn list(store: &dyn Store, format: ListFormat) -> Result<(), Failure> {
    let tokens = store.tokens().map_err(Failure::environment)?;
    match format {
        ListFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&tokens).unwrap_or_default()
        ),
        ListFormat::Table => {
            if tokens.is_empty() {
                println!(
                    "no scoped tokens: `atlas token add USER --tenant T --role member|viewer`"
                );
            }
            for t in tokens {
                println!(
                    "{:<13} {:<16} {:<16} {:<7} {}",
                    t.id,
                    t.user,
                    t.tenant,
                    t.role.as_str(),
                    t.label.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}
