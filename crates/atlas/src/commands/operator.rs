//! `atlas operator`: the storage-service operator's commands (issue 20). `crd` prints the
//! `StorageService` CustomResourceDefinition, generated from its Rust type; `check FILE` reads
//! a `StorageService` and says whether the operator would take it (the reasons the API
//! server's schema cannot give: fewer chunk servers than the goal, a storage size that is not
//! a quantity), with the file and line of a YAML error; `--local FILE` runs the service on
//! this machine with podman (`operator_local`).

use std::path::PathBuf;

use atlas_operator::StorageService;

use crate::exit::Failure;

#[derive(clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  atlas operator crd | kubectl apply -f -\n  atlas operator check storage.yaml\n  atlas operator --local storage.yaml                  # run it as podman containers; edit the file to scale or upgrade\n  atlas operator --local storage.yaml --until-healthy  # once it is up, return\n  atlas operator --local storage.yaml --down           # remove its containers and data\n  ATLAS_TOKEN=… atlas operator --local storage.yaml --server http://127.0.0.1:8080  # and show it on the dashboard's services page\n  atlas operator --namespace storage                   # on Kubernetes: installs the CRD, reconciles every StorageService there\n  kubectl apply -n storage -f storage.yaml"
)]
pub struct Args {
    #[command(subcommand)]
    what: Option<What>,
    /// Run the StorageService in FILE on this machine as podman containers (no Kubernetes):
    /// the same reconcile logic as on a cluster. The file is read again at each pass.
    #[arg(long, value_name = "FILE")]
    local: Option<PathBuf>,
    /// With --local: seconds between passes.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    interval: f64,
    /// With --local: return once the service is healthy with nothing left to do.
    #[arg(long)]
    until_healthy: bool,
    /// With --local: one pass, then return.
    #[arg(long)]
    once: bool,
    /// With --local: remove the service's containers, volumes (its data) and network.
    #[arg(long)]
    down: bool,
    /// With --local: write the status (JSON) to this file after each pass.
    #[arg(long, value_name = "FILE")]
    status_file: Option<PathBuf>,
    /// Push each service's status to `atlas serve` at this URL (its services page), as the
    /// user whose token is in ATLAS_TOKEN (default: $ATLAS_SERVER).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Serve Prometheus metrics on this address (`127.0.0.1:9464`).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Seconds an instance of a new image may take to start before it is rolled back.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    start_timeout: u64,
    /// On Kubernetes: the namespace to watch (every namespace when not given).
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// On Kubernetes: the kubeconfig (else $KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// On Kubernetes: the kubeconfig's context (else its current one).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
}

#[derive(clap::Subcommand)]
enum What {
    /// Print the StorageService CustomResourceDefinition (atlas.dev/v1alpha1).
    Crd,
    /// Check a StorageService file: what the operator would refuse, and why.
    Check { file: PathBuf },
}

pub fn run(args: Args) -> Result<(), Failure> {
    match (&args.what, &args.local) {
        (Some(What::Crd), _) => {
            let yaml = serde_yaml_ng::to_string(&atlas_operator::crd())
                .map_err(|e| Failure::environment(format!("cannot write the CRD: {e}")))?;
            super::write_output(None, &yaml)
        }
        (Some(What::Check { file }), _) => {
            let (name, service) = load(file)?;
            println!(
                "{}: StorageService {name}: {} chunk servers of {} each, goal {}, MooseFS {}: the operator takes it",
                file.display(),
                service.spec.chunk_servers,
                service.spec.storage_per_chunk_server,
                service.spec.goal,
                service.spec.version
            );
            Ok(())
        }
        (None, Some(file)) => super::operator_local::run(file, &args.local_options()),
        (None, None) => super::operator_cluster::run(&super::operator_cluster::Options {
            namespace: args.namespace.clone(),
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
            start_timeout: args.start_timeout,
            metrics: args.metrics,
            server: args.server.clone(),
        }),
    }
}

impl Args {
    fn local_options(&self) -> super::operator_local::Options {
        super::operator_local::Options {
            interval: self.interval,
            until_healthy: self.until_healthy,
            once: self.once,
            down: self.down,
            status_file: self.status_file.clone(),
            metrics: self.metrics,
            start_timeout: self.start_timeout,
            server: self.server.clone(),
        }
    }
}

/// A StorageService file, read and checked: its name and the resource.
pub fn load(file: &std::path::Path) -> Result<(String, StorageService), Failure> {
    let bytes = super::read_bytes(file)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Failure::input(format!("{}: not UTF-8", file.display())))?;
    let service: StorageService = serde_yaml_ng::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        Failure::input(format!("{}{at}: {e}", file.display()))
    })?;
    let refuse = |why: String| Failure::input(format!("{}: {why}", file.display()));
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).map_err(|e| refuse(e.to_string()))?;
    if value["apiVersion"].as_str() != Some("atlas.dev/v1alpha1")
        || value["kind"].as_str() != Some("StorageService")
    {
        return Err(refuse(
            "not a StorageService (apiVersion: atlas.dev/v1alpha1, kind: StorageService)".into(),
        ));
    }
    if let Some(extra) = value.as_mapping().into_iter().flatten().find_map(|(k, _)| {
        let k = k.as_str().unwrap_or("?");
        (!["apiVersion", "kind", "metadata", "spec", "status"].contains(&k)).then(|| k.to_string())
    }) {
        return Err(refuse(format!("unknown field `{extra}`")));
    }
    let name = service.metadata.name.clone().unwrap_or_default();
    if !atlas_spec::is_dns1123_label(&name) || name.len() > 40 {
        return Err(refuse(
            "metadata.name must be a DNS-1123 label (lowercase letters, digits and `-`, at most 40 here: it names containers and volumes)".into(),
        ));
    }
    atlas_operator::check(&service.spec).map_err(|e| refuse(e.to_string()))?;
    Ok((name, service))
}
