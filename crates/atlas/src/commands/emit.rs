//! `atlas emit k8s WORKFLOW_OR_SCRIPT [--flavor …] [--openshift] [--image REF]
//! [--server-version X.Y | --context CTX] [-o DIR]`: the Kubernetes/OpenShift objects for a
//! workflow (atlas-emit's `k8s` module) as the given server supports them, as one YAML stream
//! on stdout or one file per object, with what has no Kubernetes counterpart on stderr.
//! `atlas emit slurm --tenant T`: the sacctmgr script of a tenant's Slurm account and limits.

use std::path::PathBuf;

use atlas_emit::k8s::{self, Flavor, K8sOptions, ServerVersion};

use crate::exit::Failure;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas emit k8s job.lsf\n  atlas emit k8s atlas.yaml --flavor jobset --openshift -o k8s/\n  atlas emit k8s sweep.sbatch --server-version 1.20\n  atlas emit k8s atlas.yaml --context atlas-test --kubeconfig /var/lib/atlas/k8s/admin.kubeconfig"
)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Kubernetes/OpenShift objects: Job, Indexed Job, JobSet, PyTorchJob or MPIJob, with the
    /// workflow's ConfigMap and volume claims.
    K8s(Box<K8sArgs>),
    /// A tenant's Slurm account: the sacctmgr script that makes it and sets its association
    /// limits from the tenant's quotas (run it as a Slurm administrator).
    Slurm(SlurmArgs),
    /// The CustomResourceDefinitions of the custom resources `emit k8s` writes (PyTorchJob,
    /// MPIJob, JobSet, BuildConfig, ImageStream), generated from Atlas's own types: on a
    /// cluster without their operators, the API server checks the objects against them.
    Crds,
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas emit slurm --tenant team-a > team-a.sh && sudo sh team-a.sh\n  atlas emit slurm --tenant team-a --user atlas | ssh head sudo sh"
)]
struct SlurmArgs {
    /// The tenant: the account's name, its quotas the limits.
    #[arg(long, value_name = "T")]
    tenant: String,
    /// A Unix user who submits for the tenant (repeatable; default: the tenant's members'
    /// names).
    #[arg(long = "user", value_name = "USER")]
    users: Vec<String>,
    /// The Slurm cluster's name, when slurmdbd serves several.
    #[arg(long)]
    cluster: Option<String>,
    /// The database the tenant is read from (default: $ATLAS_DB or
    /// $XDG_DATA_HOME/atlas/atlas.db).
    #[arg(long)]
    db: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FlavorArg {
    Auto,
    Job,
    IndexedJob,
    JobPerIndex,
    Jobset,
    Pytorchjob,
    Mpijob,
}

#[derive(clap::Args)]
struct K8sArgs {
    /// A Workflow (atlas.yaml) or a job script (imported first).
    #[arg(required_unless_present_any = ["node_agent", "tenant"])]
    workflow: Option<PathBuf>,
    /// Instead of a workflow's objects: tenant T's Namespace, ResourceQuota (its runs quota),
    /// LimitRange, and the ServiceAccount, Role and RoleBinding Atlas runs its Jobs as, with
    /// its members bound to the built-in admin/edit/view roles (from the store).
    #[arg(
        long,
        value_name = "T",
        conflicts_with_all = ["workflow", "node_agent", "flavor", "openshift", "image", "registry", "base_image", "gpu_product", "co_locate", "rdma_resource", "server_version", "context"]
    )]
    tenant: Option<String>,
    /// The database the tenant is read from (default: $ATLAS_DB or
    /// $XDG_DATA_HOME/atlas/atlas.db).
    #[arg(long, requires = "tenant")]
    db: Option<PathBuf>,
    /// Instead of a workflow's objects: `atlas node-agent` on every node, as a DaemonSet (with
    /// its Namespace and ServiceAccount); give --image (any image Atlas built has the binary).
    #[arg(
        long,
        conflicts_with_all = ["workflow", "flavor", "openshift", "registry", "base_image", "gpu_product", "co_locate", "rdma_resource", "server_version", "context"],
        requires = "image"
    )]
    node_agent: bool,
    /// The node agent's namespace.
    #[arg(long, default_value = "atlas-system", requires = "node_agent")]
    namespace: String,
    /// The node agents push to this `atlas serve` (the token from Secret `atlas-node-agent`,
    /// key `token`, in the namespace).
    #[arg(long, requires = "node_agent")]
    server: Option<String>,
    /// The target the nodes belong to, as atlas.toml names it (for the pushed samples).
    #[arg(long, default_value = "kubernetes", requires = "node_agent")]
    target: String,
    /// The job's shape (auto: from the array and the launcher).
    #[arg(long, value_enum, default_value = "auto")]
    flavor: FlavorArg,
    /// Also emit the OpenShift BuildConfig and ImageStream; no fixed runAsUser.
    #[arg(long)]
    openshift: bool,
    /// The image the pods run (default: REGISTRY/NAME:TAG with --registry, else NAME:latest).
    #[arg(long, conflicts_with = "registry")]
    image: Option<String>,
    /// The registry the cluster pulls the workflow's image from (`registry.example.org/team`).
    #[arg(long)]
    registry: Option<String>,
    /// The image's tag with --registry.
    #[arg(long, default_value = "latest", requires = "registry")]
    tag: String,
    /// The base image for --openshift's BuildConfig (default: the workflow's, else the local
    /// localhost/atlas-base:bookworm, which no other machine can pull).
    #[arg(long, value_name = "REF")]
    base_image: Option<String>,
    /// A GPU type's node label on this cluster, TYPE=PRODUCT (`a100=NVIDIA-A100-SXM4-80GB`),
    /// before Atlas's built-in table; repeatable.
    #[arg(long, value_name = "TYPE=PRODUCT", value_parser = parse_gpu_product)]
    gpu_product: Vec<(String, String)>,
    /// Every pod of the workflow on one node (a required pod affinity), so its ranks can share
    /// memory (`/dev/shm` is a memory-backed emptyDir) rather than talk over the pod network.
    #[arg(long)]
    co_locate: bool,
    /// An RDMA device plugin's resource for each rank (`rdma/hca_shared_devices_a`); not
    /// verified here.
    #[arg(long, value_name = "RESOURCE", value_parser = parse_resource_name)]
    rdma_resource: Option<String>,
    /// The API server's version the objects are for, e.g. 1.20 (default: the newest Atlas
    /// knows, 1.33).
    #[arg(long, value_name = "X.Y", conflicts_with = "context")]
    server_version: Option<ServerVersion>,
    /// Ask this kubeconfig context's API server for its version instead.
    #[arg(long, value_name = "CTX")]
    context: Option<String>,
    /// The kubeconfig `--context` is read from (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, requires = "context")]
    kubeconfig: Option<PathBuf>,
    /// Write one file per object into DIR instead of one YAML stream to stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// After-hours windows for a cluster without Atlas: TARGET's daily window
    /// (`[targets.TARGET.windows]` in atlas.toml) as two CronJobs that delete the workflow's
    /// Job at the close (its agent freezes it) and start it again at the open (it resumes),
    /// with the close's ServiceAccount, Role (list and delete Jobs) and RoleBinding.
    #[arg(long, value_name = "TARGET")]
    windows: Option<String>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let args = match args.what {
        What::K8s(args) => *args,
        What::Slurm(args) => return slurm_account(args),
        What::Crds => {
            let crds: Vec<String> = k8s::crds::definitions()
                .iter()
                .map(|crd| serde_yaml_ng::to_string(crd).unwrap_or_default())
                .collect();
            return super::write_output(None, &crds.join("---\n"));
        }
    };
    if args.node_agent {
        return node_agent(&args);
    }
    if let Some(tenant) = &args.tenant {
        return tenant_objects(&args, tenant);
    }
    let path = args.workflow.as_deref().unwrap_or(std::path::Path::new(""));
    let mut workflow = super::load_workflow_or_script(path)?;
    if let Some(base) = &args.base_image {
        workflow
            .spec
            .image
            .get_or_insert_with(Default::default)
            .base = Some(base.clone());
    }
    let mut gpu_products: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (kind, product) in &args.gpu_product {
        gpu_products
            .entry(kind.clone())
            .or_default()
            .push(product.clone());
    }
    let image = match (&args.image, &args.registry) {
        (Some(image), _) => Some(image.clone()),
        (None, Some(registry)) => Some(format!(
            "{}/{}:{}",
            registry.trim_end_matches('/'),
            atlas_spec::to_dns1123_label(&workflow.metadata.name, "atlas"),
            args.tag
        )),
        (None, None) => None,
    };
    let containerfile = if args.openshift {
        Some(
            atlas_emit::container_files(&workflow)
                .map_err(Failure::input)?
                .containerfile,
        )
    } else {
        None
    };
    let options = K8sOptions {
        flavor: match args.flavor {
            FlavorArg::Auto => Flavor::Auto,
            FlavorArg::Job => Flavor::Job,
            FlavorArg::IndexedJob => Flavor::IndexedJob,
            FlavorArg::JobPerIndex => Flavor::JobPerIndex,
            FlavorArg::Jobset => Flavor::Jobset,
            FlavorArg::Pytorchjob => Flavor::Pytorchjob,
            FlavorArg::Mpijob => Flavor::Mpijob,
        },
        openshift: args.openshift,
        image,
        containerfile,
        agent_flags: Vec::new(),
        server: server_version(&args)?,
        gpu_products,
        placement: k8s::Placement {
            co_locate: args.co_locate,
            rdma_resource: args.rdma_resource.clone(),
        },
    };
    let mut emitted = k8s::k8s_objects(&workflow, &options).map_err(Failure::input)?;
    if let Some(target) = &args.windows {
        let crons = window_crons(target)?;
        let name = atlas_spec::to_dns1123_label(&workflow.metadata.name, "atlas");
        k8s::windows::add(
            &mut emitted.objects,
            &workflow,
            &name,
            &crons,
            options.server,
        )
        .map_err(Failure::input)?;
        eprintln!(
            "windows of `{target}`: opens `{}`, closes `{}`{}",
            crons.open,
            crons.close,
            crons
                .time_zone
                .as_deref()
                .map(|z| format!(" ({z})"))
                .unwrap_or_default()
        );
    }
    write_objects(&args, &emitted.objects)?;
    eprintln!(
        "{}: flavor {} for Kubernetes {}",
        path.display(),
        emitted.flavor,
        options.server
    );
    for gap in &emitted.gaps {
        eprintln!("  {}: {}", gap.field, gap.note);
    }
    Ok(())
}

/// TARGET's window schedule (atlas.toml) as cron schedules.
fn window_crons(target: &str) -> Result<k8s::windows::WindowCrons, Failure> {
    let targets = atlas_backends::target::load(&atlas_backends::target::config_files())
        .map_err(Failure::input)?;
    let named = targets.iter().find(|t| t.name == target).ok_or_else(|| {
        Failure::input(format!(
            "--windows: no target `{target}` here (see `atlas targets`)"
        ))
    })?;
    let schedule = named.target.windows.as_ref().ok_or_else(|| {
        Failure::input(format!(
            "--windows: target `{target}` has no `[targets.{target}.windows]` in atlas.toml (docs/windows.md)"
        ))
    })?;
    let crons = schedule
        .crons()
        .map_err(|why| Failure::input(format!("--windows: target `{target}`: {why}")))?;
    Ok(k8s::windows::WindowCrons {
        open: crons.open,
        close: crons.close,
        time_zone: crons.time_zone,
    })
}

/// The objects as one YAML stream on stdout, or one file per object in `-o DIR`.
fn write_objects(args: &K8sArgs, objects: &[k8s::Object]) -> Result<(), Failure> {
    let Some(dir) = &args.output else {
        return super::write_output(None, &k8s::to_yaml(objects));
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::environment(format!("cannot create {}: {e}", dir.display())))?;
    for (i, object) in objects.iter().enumerate() {
        let (kind, name) = k8s::kind_and_name(object);
        let file = dir.join(format!("{:02}-{}-{name}.yaml", i + 1, kind.to_lowercase()));
        super::write_output(Some(&file), &k8s::to_yaml(std::slice::from_ref(object)))?;
    }
    eprintln!("wrote {} object(s) to {}", objects.len(), dir.display());
    Ok(())
}

/// `emit slurm --tenant T`: the tenant's Slurm account and limits, from the store.
fn slurm_account(args: SlurmArgs) -> Result<(), Failure> {
    let (store, _) = super::db::open(args.db.as_deref())?;
    let row = find_tenant(&*store, &args.tenant)?;
    let users = if args.users.is_empty() {
        row.members.iter().map(|m| m.user.clone()).collect()
    } else {
        args.users
    };
    let options = atlas_emit::AccountOptions {
        tenant: row.name.clone(),
        runs: row.quotas.runs,
        core_hours: row.quotas.core_hours,
        gpu_hours: row.quotas.gpu_hours,
        users,
        cluster: args.cluster,
    };
    let script = atlas_emit::account_script(&options).map_err(|e| Failure::input(e.to_string()))?;
    print!("{script}");
    eprintln!(
        "run it as a Slurm administrator; `atlas run --tenant {}` on a Slurm target then submits with --account={} (unless the target names an account)",
        row.name, row.name
    );
    Ok(())
}

/// The tenant named `tenant`, from the store.
fn find_tenant(
    store: &dyn atlas_store::Store,
    tenant: &str,
) -> Result<atlas_store::TenantRow, Failure> {
    store
        .tenants()
        .map_err(Failure::environment)?
        .into_iter()
        .find(|t| t.name == tenant)
        .ok_or_else(|| {
            Failure::input(format!(
                "no tenant `{}` (see `atlas tenant list`)",
                tenant.escape_debug()
            ))
        })
}

/// `--tenant T`: the tenant's namespace, quota and runner identity, from the store.
fn tenant_objects(args: &K8sArgs, tenant: &str) -> Result<(), Failure> {
    use k8s::tenant::{MemberRole, TenantOptions, RUNNER};
    let (store, _) = super::db::open(args.db.as_deref())?;
    let row = find_tenant(&*store, tenant)?;
    let members = row
        .members
        .iter()
        .map(|m| {
            let role = match m.role {
                atlas_store::Role::Admin => MemberRole::Admin,
                atlas_store::Role::Member => MemberRole::Member,
                atlas_store::Role::Viewer => MemberRole::Viewer,
            };
            (m.user.clone(), role)
        })
        .collect();
    let options = TenantOptions {
        name: row.name.clone(),
        runs: row.quotas.runs,
        members,
    };
    let objects = k8s::tenant::tenant_objects(&options).map_err(Failure::input)?;
    write_objects(args, &objects)?;
    if row.quotas.core_hours.is_some() || row.quotas.gpu_hours.is_some() {
        eprintln!("  core- and GPU-hour quotas have no Kubernetes counterpart: `atlas run` checks them before submitting");
    }
    eprintln!(
        "runs of `{tenant}` go to namespace {tenant} on kubernetes targets that name none; Atlas can run as ServiceAccount {RUNNER} there"
    );
    Ok(())
}

/// `--node-agent`: the DaemonSet that runs `atlas node-agent` on every node.
fn node_agent(args: &K8sArgs) -> Result<(), Failure> {
    let check = |what: &str, name: &str| {
        atlas_spec::check_name(name).map_err(|e| Failure::input(format!("{what} `{name}`: {e}")))
    };
    if !atlas_spec::is_dns1123_label(&args.namespace) {
        return Err(Failure::input(format!(
            "--namespace `{}` is not a Kubernetes namespace name (lower-case letters, digits and `-`, at most 63)",
            args.namespace.escape_debug()
        )));
    }
    check("--target", &args.target)?;
    let image = args.image.clone().unwrap_or_default();
    if image.is_empty()
        || image.len() > 512
        || image.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Failure::input(format!(
            "--image `{}` is not an image reference",
            image.escape_debug()
        )));
    }
    let server = match &args.server {
        Some(url) if super::is_http_url(url) => {
            Some((url.clone(), k8s::node_agent::NAME.to_string()))
        }
        Some(url) => {
            return Err(Failure::input(format!(
                "--server `{}` is not an http(s) URL",
                url.escape_debug()
            )))
        }
        None => None,
    };
    let options = k8s::node_agent::NodeAgentOptions {
        namespace: args.namespace.clone(),
        image,
        target: args.target.clone(),
        server,
    };
    write_objects(args, &k8s::node_agent::node_agent_objects(&options))?;
    if args.server.is_some() {
        eprintln!(
            "the agents read their token from Secret {} (key {}): kubectl -n {} create secret generic {} --from-literal={}=TOKEN",
            k8s::node_agent::NAME, k8s::node_agent::TOKEN_KEY, args.namespace, k8s::node_agent::NAME, k8s::node_agent::TOKEN_KEY
        );
    }
    Ok(())
}

/// The server version: given, asked of the context's API server, or the newest known.
fn server_version(args: &K8sArgs) -> Result<ServerVersion, Failure> {
    if let Some(version) = args.server_version {
        return Ok(version);
    }
    let Some(context) = &args.context else {
        return Ok(ServerVersion::NEWEST);
    };
    let said = atlas_backends::kubernetes_version(context, args.kubeconfig.as_deref())
        .map_err(|e| Failure::environment(e.to_string()))?;
    ServerVersion::parse(&said).ok_or_else(|| {
        Failure::environment(format!(
            "context `{context}`: the API server's version `{}` is not MAJOR.MINOR.PATCH",
            said.escape_debug()
        ))
    })
}

/// `TYPE=PRODUCT`, both plain label text.
fn parse_gpu_product(text: &str) -> Result<(String, String), String> {
    let (kind, product) = text
        .split_once('=')
        .ok_or_else(|| format!("`{}` is not TYPE=PRODUCT", text.escape_debug()))?;
    let label_value = |v: &str| {
        !v.is_empty()
            && v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if !label_value(kind) || !label_value(product) {
        return Err(format!(
            "`{}`: TYPE and PRODUCT must be 1-63 letters, digits, `-`, `_` or `.`",
            text.escape_debug()
        ));
    }
    Ok((kind.to_string(), product.to_string()))
}

/// An extended resource name, `DOMAIN/NAME` (`rdma/hca_shared_devices_a`).
fn parse_resource_name(text: &str) -> Result<String, String> {
    let ok = |part: &str, extra: &[char]| {
        !part.is_empty()
            && part.len() <= 63
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
            && part.starts_with(|c: char| c.is_ascii_alphanumeric())
    };
    match text.split_once('/') {
        Some((domain, name)) if ok(domain, &['.', '-']) && ok(name, &['.', '-', '_']) => {
            Ok(text.to_string())
        }
        _ => Err(format!(
            "`{}` is not an extended resource name DOMAIN/NAME (letters, digits, `.`, `-`, `_`)",
            text.escape_debug()
        )),
    }
}
