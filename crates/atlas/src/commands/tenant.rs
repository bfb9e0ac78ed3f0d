//! `atlas tenant add|list|member add|member remove|quota set`: teams whose members see each
//! other's runs and nobody else's, with a role each and quotas checked before `atlas run`
//! submits. Also the run's side: which tenant a run belongs to ([`choose`]) and whether its
//! quotas let it start ([`check_quota`]).

use std::path::PathBuf;

use atlas_backends::{Kind, Named};
use atlas_store::tenancy::{self, Ask};
use atlas_store::{Quotas, Role, Store};

use crate::commands::format::ListFormat;
use crate::exit::Failure;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas tenant add vision\n  atlas tenant member add vision ada --role admin\n  atlas tenant quota set vision --runs 4 --core-hours 500 --period-days 30 --storage-gib 200\n  atlas tenant list --format json"
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
    /// Add a tenant (a team): lowercase letters, digits and `-` (it is also the tenant's
    /// Kubernetes namespace), at most 63.
    Add { name: String },
    /// List the tenants with their members, quotas and what they use now.
    List {
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// Manage a tenant's members.
    Member {
        #[command(subcommand)]
        action: MemberAction,
    },
    /// Manage a tenant's quotas.
    Quota {
        #[command(subcommand)]
        action: QuotaAction,
    },
}

#[derive(clap::Subcommand)]
enum MemberAction {
    /// Make USER a member of TENANT with a role (a member has their role changed).
    Add {
        tenant: String,
        user: String,
        /// admin: manages members; member: runs and reads; viewer: reads only.
        #[arg(long, value_parser = ["admin", "member", "viewer"], default_value = "member")]
        role: String,
    },
    /// Take USER out of TENANT (their sessions and tokens stop seeing its runs at once).
    Remove { tenant: String, user: String },
}

#[derive(clap::Subcommand)]
enum QuotaAction {
    /// Set a tenant's quotas; those not given are left as they are (`--clear` first removes all).
    Set {
        tenant: String,
        /// Runs active at once (submitted, running or frozen).
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
        runs: Option<u32>,
        /// Cores × hours over the period.
        #[arg(long, value_parser = hours)]
        core_hours: Option<f64>,
        /// GPUs × hours over the period.
        #[arg(long, value_parser = hours)]
        gpu_hours: Option<f64>,
        /// The period of the hour quotas, in days (default 30).
        #[arg(long, value_parser = days)]
        period_days: Option<f64>,
        /// GiB of run directories (each as its agent measured it when the run ended).
        #[arg(long, value_parser = hours)]
        storage_gib: Option<f64>,
        /// Remove every quota before setting those given.
        #[arg(long)]
        clear: bool,
    },
}

fn hours(text: &str) -> Result<f64, String> {
    bounded(text, 1e9)
}

fn days(text: &str) -> Result<f64, String> {
    bounded(text, 3660.0).and_then(|d| {
        if d > 0.0 {
            Ok(d)
        } else {
            Err("the period must be more than 0 days".into())
        }
    })
}

fn bounded(text: &str, max: f64) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=max).contains(&v) => Ok(v),
        _ => Err(format!("expected a number from 0 to {max}")),
    }
}

/// A tenant or user name: the name rule, in lowercase (as `atlas user add`).
pub(crate) fn checked(kind: &str, name: &str) -> Result<(), Failure> {
    if super::user::valid_name(name) {
        return Ok(());
    }
    let shown: String = name.chars().take(64).collect();
    Err(Failure::input(format!(
        "{shown:?} is not a {kind} name: 1-64 of lowercase letters, digits, `-`, `_` and `.`, starting with a letter or digit"
    )))
}

/// A tenant name: a DNS label (its Kubernetes namespace), not one every cluster has.
fn tenant_name(name: &str) -> Result<(), Failure> {
    let shown: String = name.chars().take(64).collect();
    if !atlas_spec::is_dns1123_label(name) {
        return Err(Failure::input(format!(
            "{shown:?} is not a tenant name: 1-63 of lowercase letters, digits and `-`, starting and ending with a letter or digit (it names the tenant's Kubernetes namespace too)"
        )));
    }
    if name == "default" || name.starts_with("kube-") || name.starts_with("openshift") {
        return Err(Failure::input(format!(
            "`{name}` is a namespace every cluster has: a tenant needs a name of its own"
        )));
    }
    Ok(())
}

pub fn run(args: Args) -> Result<(), Failure> {
    let (mut store, _) = super::db::open(args.db.as_deref())?;
    let store = &mut *store;
    let now = atlas_agent::spool::unix_now();
    let input = |e: atlas_store::StoreError| Failure::input(e.to_string());
    match args.action {
        Action::Add { name } => {
            tenant_name(&name)?;
            store.add_tenant(&name, now).map_err(input)?;
            eprintln!("added tenant `{name}`; add members with `atlas tenant member add {name} USER --role admin|member|viewer`");
        }
        Action::List { format } => list(store, format, now)?,
        Action::Member { action } => match action {
            MemberAction::Add { tenant, user, role } => {
                checked("user", &user)?;
                let role = Role::parse(&role).unwrap_or(Role::Member);
                store.set_member(&tenant, &user, role).map_err(input)?;
                let article = if role == Role::Admin { "an" } else { "a" };
                eprintln!("`{user}` is now {article} {} of `{tenant}`", role.as_str());
            }
            MemberAction::Remove { tenant, user } => {
                if !store.remove_member(&tenant, &user).map_err(input)? {
                    return Err(Failure::input(format!(
                        "`{user}` is not a member of `{tenant}`"
                    )));
                }
                eprintln!("`{user}` is no longer a member of `{tenant}`");
            }
        },
        Action::Quota {
            action:
                QuotaAction::Set {
                    tenant,
                    runs,
                    core_hours,
                    gpu_hours,
                    period_days,
                    storage_gib,
                    clear,
                },
        } => {
            let row = find(store, &tenant)?;
            let mut quotas = if clear { Quotas::default() } else { row.quotas };
            quotas.runs = runs.or(quotas.runs);
            quotas.core_hours = core_hours.or(quotas.core_hours);
            quotas.gpu_hours = gpu_hours.or(quotas.gpu_hours);
            quotas.period_days = period_days.or(quotas.period_days);
            quotas.storage_gib = storage_gib.or(quotas.storage_gib);
            store.set_quotas(&tenant, &quotas).map_err(input)?;
            eprintln!("`{tenant}`: {}", describe(&quotas));
        }
    }
    Ok(())
}

fn find(store: &dyn Store, tenant: &str) -> Result<atlas_store::TenantRow, Failure> {
    store
        .tenants()
        .map_err(Failure::environment)?
        .into_iter()
        .find(|t| t.name == tenant)
        .ok_or_else(|| Failure::input(format!("no tenant `{tenant}` (see `atlas tenant list`)")))
}

/// A tenant's quotas in words.
fn describe(q: &Quotas) -> String {
    if q.is_empty() {
        return "no quotas".into();
    }
    let days = q.period_seconds() / 86_400.0;
    let mut parts = Vec::new();
    if let Some(n) = q.runs {
        parts.push(format!("{n} run(s) at once"));
    }
    if let Some(h) = q.core_hours {
        parts.push(format!("{h} core-hours per {days} days"));
    }
    if let Some(h) = q.gpu_hours {
        parts.push(format!("{h} GPU-hours per {days} days"));
    }
    if let Some(g) = q.storage_gib {
        parts.push(format!("{g} GiB of run directories"));
    }
    parts.join(", ")
}

fn list(store: &dyn Store, format: ListFormat, now: f64) -> Result<(), Failure> {
    let tenants = store.tenants().map_err(Failure::environment)?;
    let mut rows = Vec::new();
    for t in &tenants {
        let since = now - t.quotas.period_seconds();
        let usage = store
            .usage(&t.name, since, now)
            .map_err(Failure::environment)?;
        rows.push((t, usage));
    }
    match format {
        ListFormat::Json => {
            let list: Vec<serde_json::Value> = rows
                .iter()
                .map(|(t, usage)| {
                    let mut v = serde_json::to_value(t).unwrap_or_default();
                    v["usage"] = serde_json::to_value(usage).unwrap_or_default();
                    v
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            );
        }
        ListFormat::Table => {
            if rows.is_empty() {
                println!("no tenants yet: `atlas tenant add NAME`");
            }
            for (t, usage) in rows {
                let members: Vec<String> = t
                    .members
                    .iter()
                    .map(|m| format!("{} ({})", m.user, m.role.as_str()))
                    .collect();
                println!("{}", t.name);
                println!("  members: {}", or_none(&members.join(", ")));
                println!("  quotas:  {}", describe(&t.quotas));
                println!(
                    "  now:     {} run(s) active, {:.1} core-hours and {:.1} GPU-hours in the period, {:.2} GiB of run directories",
                    usage.active_runs, usage.core_hours, usage.gpu_hours, usage.storage_gib
                );
            }
        }
    }
    Ok(())
}

fn or_none(text: &str) -> &str {
    if text.is_empty() {
        "none"
    } else {
        text
    }
}

/// The tenant named by `ATLAS_TENANT`, when set and not empty.
pub fn from_env() -> Option<String> {
    std::env::var("ATLAS_TENANT")
        .ok()
        .filter(|t| !t.trim().is_empty())
}

/// The tenant `user`'s new runs belong to: the one asked for (`--tenant`/`ATLAS_TENANT`),
/// which they must be a member of with a role that runs; else their only tenant; `None` when
/// they are in none (the runs are theirs alone).
pub fn choose(
    store: &dyn Store,
    user: &str,
    asked: Option<&str>,
) -> Result<Option<String>, Failure> {
    let tenants = store.memberships(user).map_err(Failure::environment)?;
    let names = || {
        tenants
            .iter()
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (tenant, role) = match (asked, tenants.as_slice()) {
        (None, []) => return Ok(None),
        (None, [(tenant, role)]) => (tenant.clone(), *role),
        (None, _) => {
            return Err(Failure::input(format!(
                "`{user}` is a member of several tenants ({}): choose one with --tenant or ATLAS_TENANT",
                names()
            )))
        }
        (Some(asked), _) => match tenants.iter().find(|(t, _)| t == asked) {
            Some((tenant, role)) => (tenant.clone(), *role),
            None => {
                return Err(Failure::input(format!(
                    "`{user}` is not a member of tenant `{asked}` (theirs: {}; see `atlas tenant list`)",
                    or_none(&names())
                )))
            }
        },
    };
    if !role.can_run() {
        return Err(Failure::input(format!(
            "`{user}` is a viewer of tenant `{tenant}`: viewers read its runs but start none (a tenant admin can make them a member)"
        )));
    }
    Ok(Some(tenant))
}

/// The targets a tenant's runs go to: a Kubernetes target that names no namespace runs them in
/// the tenant's (`atlas emit k8s --tenant T` makes it, with its quota), and a Slurm target
/// that names no account submits them with the tenant's account (`atlas emit slurm --tenant
/// T` makes it, with its limits).
pub fn in_namespace(targets: &[Named], tenant: Option<&str>) -> Vec<Named> {
    targets
        .iter()
        .map(|t| {
            let mut t = t.clone();
            if let Some(tenant) = tenant {
                if t.target.kind == Kind::Kubernetes && t.target.namespace.is_none() {
                    t.target.namespace = Some(tenant.to_string());
                }
                if t.target.kind == Kind::Slurm && t.target.account.is_none() {
                    t.target.account = Some(tenant.to_string());
                }
            }
            t
        })
        .collect()
}

/// Whether `runs` runs of `workflow` fit `tenant`'s quotas now; the refusal names the figure
/// and the limit.
pub fn check_quota(
    store: &dyn Store,
    tenant: &str,
    workflow: &atlas_spec::Workflow,
    nodes: &[u32],
    runs: u64,
) -> Result<Quotas, Failure> {
    let row = find(store, tenant)?;
    if row.quotas.is_empty() {
        return Ok(row.quotas);
    }
    let now = atlas_agent::spool::unix_now();
    let since = now - row.quotas.period_seconds();
    let usage = store
        .usage(tenant, since, now)
        .map_err(Failure::environment)?;
    // Each run as it will be registered: at the largest node count asked for.
    let sizes: Vec<atlas_spec::Totals> = if nodes.is_empty() {
        vec![workflow.spec.resources.totals()]
    } else {
        nodes
            .iter()
            .map(|n| workflow.with_nodes(*n).spec.resources.totals())
            .collect()
    };
    let largest = |f: fn(&atlas_spec::Totals) -> u32| sizes.iter().map(f).max().unwrap_or(0);
    let ask = Ask {
        runs,
        cores: f64::from(largest(|t| t.cores)),
        gpus: f64::from(largest(|t| t.gpus)),
        walltime_hours: workflow
            .spec
            .resources
            .walltime
            .map(|w| std::time::Duration::from(w).as_secs_f64() / 3600.0),
    };
    tenancy::check(tenant, &row.quotas, &usage, &ask)
        .map_err(|why| Failure::input(format!("{why}; nothing was submitted")))?;
    Ok(row.quotas)
}
